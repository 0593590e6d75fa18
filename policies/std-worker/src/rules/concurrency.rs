//! `worker.concurrency`: a production Celery worker that leaves its concurrency to Celery's
//! default.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, Tier, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "worker.concurrency",
    default_severity: Severity::Warn,
    summary: "a production Celery worker sets no concurrency, so it starts one process per CPU of the machine",
    what: "For every service of a production environment whose command runs `celery … worker`: \
           the command line must set `--concurrency` (`-c`), as the `celery-worker` preset \
           does (`run celery worker concurrency=N`).",
    why: "Without it Celery starts as many pool processes as the machine has CPUs \
          (`os.cpu_count()`), not as many as the container or unit may use: a worker limited \
          to one CPU and 1 GiB on a 32-core host forks 32 processes, each with the app loaded, \
          and is killed for memory or throttled into timeouts (Celery docs, \"Workers Guide: \
          Concurrency\"; the deployment checklist's \"Celery worker concurrency configured\").",
    example: "service worker {\n    run command \"celery\" \"-A\" \"config\" \"worker\"\n}",
    instead: "service worker preset=celery-worker {\n    run celery worker app=\"config\" concurrency=2\n}",
    upstream: &["CE workers concurrency"],
};

fn argv(service: &Value) -> Vec<&str> {
    service
        .pointer("/run/argv")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `celery … worker …`: the program is celery (or `python -m celery`) and `worker` is its
/// subcommand.
fn is_celery_worker(args: &[&str]) -> bool {
    let celery = args
        .iter()
        .position(|a| *a == "celery" || a.ends_with("/celery"));
    let module = args.windows(2).position(|w| w == ["-m", "celery"]);
    match celery.or(module) {
        Some(i) => args[i..].contains(&"worker"),
        None => false,
    }
}

fn sets_concurrency(args: &[&str]) -> bool {
    args.iter().any(|a| {
        *a == "-c"
            || *a == "--concurrency"
            || a.starts_with("--concurrency=")
            || (a.starts_with("-c") && !a.starts_with("--") && a.len() > 2)
    })
}

pub fn check(input: &Input) -> Vec<Finding> {
    if !matches!(input.tier, Tier::Production | Tier::Other) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, service) in input.entries("/services") {
        let args = argv(service);
        if !is_celery_worker(&args) || sets_concurrency(&args) {
            continue;
        }
        out.push(
            Finding::new(
                RULE.id,
                format!("Celery worker `{name}` sets no concurrency: it starts one process per CPU of the machine, not of its limit"),
            )
            .at(json_pointer(["services", name, "run"]))
            .help("set it: `run celery worker app=\"config\" concurrency=2` (about one process per CPU of the service's `resources`), or add \"--concurrency=2\" to the command"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn with(argv: &[&str]) -> Vec<Finding> {
        check(&input(json!({"services": {"w": {"run": {"argv": argv}}}})))
    }

    #[test]
    fn judged() {
        assert_eq!(with(&["celery", "-A", "config", "worker"]).len(), 1);
        assert_eq!(
            with(&["python", "-m", "celery", "-A", "x", "worker"]).len(),
            1
        );
        assert_eq!(
            with(&[
                "/opt/app/venv/bin/celery",
                "-A",
                "x",
                "worker",
                "-l",
                "info"
            ])
            .len(),
            1
        );
        assert!(with(&["celery", "-A", "config", "worker", "--concurrency=2"]).is_empty());
        assert!(with(&["celery", "-A", "config", "worker", "-c", "4"]).is_empty());
        assert!(with(&["celery", "-A", "config", "worker", "-c4"]).is_empty());
        assert!(with(&["celery", "-A", "config", "beat"]).is_empty());
        assert!(with(&["gunicorn", "worker"]).is_empty());
        let mut i = input(json!({"services": {"w": {"run": {"argv": ["celery", "worker"]}}}}));
        i.tier = Tier::Staging;
        assert!(check(&i).is_empty());
    }
}
