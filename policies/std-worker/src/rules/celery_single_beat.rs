//! `worker.celery-single-beat`: more than one Celery beat runs the same schedule.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "worker.celery-single-beat",
    default_severity: Severity::Error,
    summary: "more than one Celery beat runs the same schedule",
    what: "Counts the Celery beat instances of each schedule (a Celery app and its broker): \
           every replica of a `celery beat` service, and every replica of a worker started \
           with `-B`/`--beat`. Reports a beat service with `replicas` above 1, a second beat \
           service (or a worker with `-B` next to a beat service) for the same schedule, and a \
           worker with `-B` that runs more than one replica. The same model drives compose \
           (`deploy.replicas`), Kubernetes (the Deployment's `replicas`) and systemd (one unit \
           per instance), so one finding covers every target.",
    why: "Celery beat keeps no lock: every running beat sends every periodic task when it is \
          due. Two beats double every scheduled job (two invoices, two reminder e-mails, two \
          nightly exports); with `-B` on a scaled worker, each replica adds another scheduler. \
          Celery's documentation asks for exactly one beat per schedule.",
    example: "service beat {\n    replicas 2\n}",
    instead: "service beat {\n    replicas 1\n}",
    upstream: &["CE periodic tasks"],
};

/// One process that schedules: a beat service or a worker with `-B`.
struct Scheduler<'a> {
    service: &'a str,
    replicas: u64,
    embedded: bool,
}

fn replicas(service: &Value) -> u64 {
    service.get("replicas").and_then(Value::as_u64).unwrap_or(1)
}

fn argv(service: &Value) -> Vec<&str> {
    service
        .pointer("/run/argv")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether a worker's command line embeds beat (`-B`, `--beat`, or `-B` among short flags).
fn embeds_beat(service: &Value) -> bool {
    let args = argv(service);
    let celery_worker = args.contains(&"worker");
    celery_worker
        && args.iter().any(|a| {
            *a == "--beat"
                || a.starts_with("--beat=")
                || (a.starts_with('-') && !a.starts_with("--") && a[1..].contains('B'))
        })
}

fn is_beat(service: &Value) -> bool {
    service.get("kind").and_then(Value::as_str) == Some("beat")
        || service.pointer("/run/program").and_then(Value::as_str) == Some("celery-beat")
}

/// What identifies a schedule: the Celery app and the broker it reads its queue from.
fn schedule_key(service: &Value) -> (String, String) {
    let app = service
        .pointer("/run/app")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let broker = match service.pointer("/env/CELERY_BROKER_URL") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("template")
            .or_else(|| o.get("secret"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        _ => String::new(),
    };
    (app, broker)
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut groups: Vec<((String, String), Vec<Scheduler>)> = Vec::new();
    for (name, service) in input.services() {
        let embedded = !is_beat(service) && embeds_beat(service);
        if !is_beat(service) && !embedded {
            continue;
        }
        let key = schedule_key(service);
        let scheduler = Scheduler {
            service: name,
            replicas: replicas(service),
            embedded,
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(scheduler),
            None => groups.push((key, vec![scheduler])),
        }
    }
    let mut findings = Vec::new();
    for (_, schedulers) in &groups {
        for s in schedulers.iter().filter(|s| s.replicas > 1) {
            let what = if s.embedded {
                format!(
                    "worker `{}` runs beat (`-B`) in each of its {} replicas, so every periodic task is sent {} times",
                    s.service, s.replicas, s.replicas
                )
            } else {
                format!(
                    "beat `{}` runs {} replicas, so every periodic task is sent {} times",
                    s.service, s.replicas, s.replicas
                )
            };
            let help = if s.embedded {
                "drop `-B` from the worker and run one `service beat preset=celery-beat` instead"
            } else {
                "set `replicas 1`: scale the workers, never the beat"
            };
            findings.push(
                Finding::new(RULE.id, what)
                    .at(json_pointer(["services", s.service, "replicas"]))
                    .help(help),
            );
        }
        let Some((first, rest)) = schedulers.split_first() else {
            continue;
        };
        for s in rest {
            let (path, help) = if s.embedded {
                (
                    json_pointer(["services", s.service, "run", "options", "args"]),
                    format!(
                        "drop `-B` from worker `{}`: `{}` already schedules",
                        s.service, first.service
                    ),
                )
            } else {
                (
                    json_pointer(["services", s.service]),
                    format!(
                        "remove one of the beat services `{}` and `{}`",
                        first.service, s.service
                    ),
                )
            };
            findings.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "`{}` is a second beat for the schedule `{}` already runs, so every periodic task is sent twice",
                        s.service, first.service
                    ),
                )
                .at(path)
                .help(help)
                .related(json_pointer(["services", first.service]), "the first beat"),
            );
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn beat(replicas: u64) -> Value {
        json!({"kind": "beat", "replicas": replicas,
               "run": {"program": "celery-beat", "app": "config", "argv": ["celery", "-A", "config", "beat"]},
               "env": {"CELERY_BROKER_URL": {"template": "redis://:${P}@cache:6379/1", "secrets": ["P"]}}})
    }

    fn worker(replicas: u64, args: &[&str]) -> Value {
        let mut argv = vec!["celery", "-A", "config", "worker", "--loglevel=info"];
        argv.extend_from_slice(args);
        json!({"kind": "worker", "replicas": replicas,
               "run": {"program": "celery-worker", "app": "config", "argv": argv},
               "env": {"CELERY_BROKER_URL": {"template": "redis://:${P}@cache:6379/1", "secrets": ["P"]}}})
    }

    fn paths(spec: Value) -> Vec<String> {
        check(&input(spec))
            .into_iter()
            .map(|f| f.path.unwrap())
            .collect()
    }

    #[test]
    fn one_beat_passes() {
        assert!(paths(json!({"services": {"beat": beat(1), "worker": worker(4, &[])}})).is_empty());
        assert!(paths(json!({"services": {"worker": worker(1, &["-B"])}})).is_empty());
    }

    #[test]
    fn replicas_boundary() {
        assert!(paths(json!({"services": {"beat": beat(1)}})).is_empty());
        assert_eq!(
            paths(json!({"services": {"beat": beat(2)}})),
            ["/services/beat/replicas"]
        );
        let f = check(&input(json!({"services": {"beat": beat(3)}})));
        assert_eq!(
            f[0].message,
            "beat `beat` runs 3 replicas, so every periodic task is sent 3 times"
        );
    }

    #[test]
    fn second_beat_for_the_same_schedule() {
        let f = check(&input(
            json!({"services": {"beat": beat(1), "scheduler": beat(1)}}),
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path.as_deref(), Some("/services/scheduler"));
        assert_eq!(f[0].related[0].path, "/services/beat");
        // Another Celery app has its own schedule.
        let mut other = beat(1);
        other["run"]["app"] = json!("reports");
        assert!(paths(json!({"services": {"beat": beat(1), "reports-beat": other}})).is_empty());
    }

    #[test]
    fn embedded_beat() {
        assert_eq!(
            paths(json!({"services": {"beat": beat(1), "worker": worker(1, &["--beat"])}})),
            ["/services/worker/run/options/args"]
        );
        assert_eq!(
            paths(json!({"services": {"worker": worker(2, &["-B"])}})),
            ["/services/worker/replicas"]
        );
        assert_eq!(
            paths(json!({"services": {"worker": worker(2, &["-EB"])}})).len(),
            1
        );
        assert!(
            paths(json!({"services": {"worker": worker(2, &["--loglevel=DEBUG"])}})).is_empty()
        );
    }
}
