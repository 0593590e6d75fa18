//! `web.health-check`: a production web service declares no HTTP health check.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, Tier, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "web.health-check",
    default_severity: Severity::Warn,
    summary: "a production web service has no HTTP health check",
    what: "In production, every web service with a port (a process a site or another service \
           sends requests to) declares `health \"/path\"`. Without it kiln's probes can only \
           check that the port accepts connections (compose's healthcheck, Kubernetes' \
           probes, the load balancer's checks).",
    why: "A web process whose workers are all stuck, whose database is gone or whose \
          migrations did not run still accepts TCP connections: a port check keeps it in \
          rotation and rollouts carry on. An HTTP check that exercises the app takes it out, \
          restarts it, and stops a bad rollout (the deployment checklist's \"health checks \
          passing\").",
    example: "service web {\n    (remove)health\n}",
    instead: "service web {\n    health \"/healthz\"\n}",
    upstream: &["proposal", "KS probes", "PO readinessProbeMissing"],
};

pub fn check(input: &Input) -> Vec<Finding> {
    if !matches!(input.tier, Tier::Production | Tier::Other) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, s) in input.services() {
        let web = s.get("kind").and_then(Value::as_str) == Some("web");
        let port = s.get("port").is_some_and(|p| !p.is_null());
        let running = s.get("replicas").and_then(Value::as_u64) != Some(0);
        if web && port && running && s.get("health").is_none_or(Value::is_null) {
            out.push(
                Finding::new(
                    RULE.id,
                    format!("web service `{name}` has no HTTP health check: only its port is probed"),
                )
                .at(json_pointer(["services", name]))
                .help("add `health \"/healthz\"` with a path that answers 200 only when the app can serve (a view that touches the database)"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    #[test]
    fn judged() {
        let spec = |health: Value| {
            json!({"services": {"web": {"kind": "web", "port": 8000, "replicas": 1, "health": health},
                                                       "worker": {"kind": "worker", "port": null, "health": null}}})
        };
        assert_eq!(check(&input(spec(Value::Null))).len(), 1);
        assert!(check(&input(spec(json!({"path": "/healthz"})))).is_empty());
        let mut i = input(spec(Value::Null));
        i.tier = Tier::Staging;
        assert!(check(&i).is_empty());
    }
}
