//! `run.resource-limits`: a workload has no memory, CPU or process limit.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "run.resource-limits",
    default_severity: Severity::Warn,
    summary: "a workload has no memory limit, CPU limit or request, or process limit",
    what: "Every workload kiln runs (app services, PostgreSQL, pgbouncer, Redis) needs \
           `resources` with a `memory` limit and a `cpu` limit or `cpu-request`; app services \
           also need `pids` (for data services the emitters fall back to a process limit of \
           their own). The same values become compose `deploy.resources.limits` (with \
           `pids`), Kubernetes requests and limits, and systemd `MemoryMax=`, `CPUQuota=` and \
           `TasksMax=` (the systemd part is kiln's proposal), so one finding per workload names \
           what is missing. The presets set all three for app services.",
    why: "Without a memory limit, one leaking Celery task or a runaway query takes the whole \
          host down, and the kernel's OOM killer picks a victim, often the database. Without \
          a CPU limit or request, the scheduler cannot place or throttle the workload; without \
          a process limit, a fork bomb or a thread leak exhausts the host's PIDs.",
    example: "service worker {\n    resources memory=#null\n}",
    instead: "service worker {\n    resources memory=\"1Gi\"\n}",
    upstream: &[
        "CIS 5.11",
        "CIS 5.12",
        "CIS 5.29",
        "KL unset-cpu-requirements",
        "KL unset-memory-requirements",
        "CKV_K8S_10",
        "CKV_K8S_11",
        "CKV_K8S_12",
        "CKV_K8S_13",
        "PO cpuLimitsMissing",
        "KS container-resources",
    ],
};

/// What a `resources` object lacks (`pids` only where kiln has no default for it).
fn missing(resources: Option<&Value>, need_pids: bool) -> Vec<&'static str> {
    let has = |k: &str| {
        resources
            .and_then(|r| r.get(k))
            .is_some_and(|v| !v.is_null())
    };
    let mut out = Vec::new();
    if !has("memory") {
        out.push("a memory limit (`memory`)");
    }
    if !has("cpu") && !has("cpu-request") {
        out.push("a CPU limit or request (`cpu`)");
    }
    if need_pids && !has("pids") {
        out.push("a process limit (`pids`)");
    }
    out
}

fn list(items: &[&str]) -> String {
    match items {
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
        [] => String::new(),
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    // App services need all three; for data services the emitters fall back to a pids limit
    // of their own (compose `pids`), so memory and CPU are enough there.
    let mut workloads: Vec<(String, Vec<String>, Option<&Value>)> = Vec::new();
    let services = input.services().count();
    for (name, s) in input.services() {
        workloads.push((
            format!("service `{name}`"),
            vec!["services".into(), name.into()],
            s.get("resources"),
        ));
    }
    for (name, pg) in input.entries("/postgres") {
        workloads.push((
            format!("postgres `{name}`"),
            vec!["postgres".into(), name.into()],
            pg.get("resources"),
        ));
        if let Some(pooler) = pg.get("pooler").filter(|p| p.is_object()) {
            workloads.push((
                format!("the pgbouncer of `{name}`"),
                vec!["postgres".into(), name.into(), "pooler".into()],
                pooler.get("resources"),
            ));
        }
    }
    for (name, r) in input.entries("/redis") {
        workloads.push((
            format!("redis `{name}`"),
            vec!["redis".into(), name.into()],
            r.get("resources"),
        ));
    }
    let mut out = Vec::new();
    for (i, (what, mut path, resources)) in workloads.into_iter().enumerate() {
        let lacks = missing(resources, i < services);
        if lacks.is_empty() {
            continue;
        }
        path.push("resources".into());
        let example = "resources cpu=1 memory=\"1Gi\" pids=256";
        out.push(
            Finding::new(RULE.id, format!("{what} lacks {}", list(&lacks)))
                .at(json_pointer(&path))
                .help(format!("set all three, such as `{example}`")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    #[test]
    fn complete_resources_pass() {
        let r = json!({"cpu": 1000, "memory": 1, "pids": 64});
        let spec = json!({
            "services": {"web": {"resources": r}},
            "postgres": {"db": {"resources": r, "pooler": {"resources": {"cpu-request": 10, "memory": 1, "pids": 1}}}},
            "redis": {"cache": {"resources": r}},
        });
        assert!(check(&input(spec)).is_empty());
    }

    #[test]
    fn each_missing_part() {
        let spec = json!({
            "services": {"web": {"resources": {"cpu": 1000, "memory": null, "pids": 64}},
                         "task": {"resources": {}}},
            "postgres": {"db": {"resources": {"cpu": 1, "memory": 1}, "pooler": null}},
            "redis": {"cache": {}},
        });
        let f: Vec<(String, String)> = check(&input(spec))
            .into_iter()
            .map(|f| (f.path.unwrap(), f.message))
            .collect();
        assert_eq!(
            f,
            [
                ("/services/web/resources".to_owned(), "service `web` lacks a memory limit (`memory`)".to_owned()),
                ("/services/task/resources".to_owned(), "service `task` lacks a memory limit (`memory`), a CPU limit or request (`cpu`) and a process limit (`pids`)".to_owned()),
                ("/redis/cache/resources".to_owned(), "redis `cache` lacks a memory limit (`memory`) and a CPU limit or request (`cpu`)".to_owned()),
            ]
        );
    }
}
