//! `run.alerts`: a production environment with no alerting rules, or rules that cannot fire.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, Tier};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "run.alerts",
    default_severity: Severity::Warn,
    summary: "a production environment has no alerting rules, or thresholds that never alert",
    what: "A production environment must have an `alerts` block, so kiln writes \
           `prometheus/alerts.yml` for what it runs (sites down, certificates expiring, the \
           5xx rate, disk space, PostgreSQL, replication lag, Redis memory, Celery queues). \
           Its thresholds must be able to fire: an `error-rate` below 100 percent, a \
           `disk-free` above 0, a `cert-expiry` of at least a day.",
    why: "Without alerts an outage is found by users: the deployment checklist's \"alerting \
          rules configured\" and \"uptime monitoring configured\". A threshold that cannot be \
          reached is the same as no rule, and it reads as if the team were covered. Routing \
          (PagerDuty, Slack) is Alertmanager's, outside the spec; the rules are what decide \
          that something is wrong.",
    example: "alerts error-rate=100",
    instead: "alerts error-rate=1",
    upstream: &["proposal"],
};

pub fn check(input: &Input) -> Vec<Finding> {
    if !matches!(input.tier, Tier::Production | Tier::Other) {
        return Vec::new();
    }
    let Some(alerts) = input.pointer("/alerts").filter(|a| a.is_object()) else {
        return vec![
            Finding::new(RULE.id, "the production environment declares no alerting rules")
                .at("/alerts")
                .help("add `alerts` (every threshold has a default): kiln writes prometheus/alerts.yml for what the environment runs"),
        ];
    };
    let num = |k: &str| alerts.get(k).and_then(Value::as_f64);
    let mut out = Vec::new();
    let mut never = |field: &str, why: String, fix: &str| {
        out.push(
            Finding::new(
                RULE.id,
                format!("alert threshold `{field}` never fires: {why}"),
            )
            .at(format!("/alerts/{field}"))
            .help(fix.to_owned()),
        );
    };
    if let Some(r) = num("error-rate").filter(|r| *r >= 100.0) {
        never(
            "error-rate",
            format!("{r}% of 5xx responses is never exceeded"),
            "use a share the site can exceed: 1 to 5 percent is common",
        );
    }
    if num("disk-free") == Some(0.0) {
        never(
            "disk-free",
            "free space never falls below 0%".into(),
            "alert with room left to act: 10 or 15 percent",
        );
    }
    if let Some(s) = num("cert-expiry").filter(|s| *s < 86_400.0) {
        never(
            "cert-expiry",
            format!("{s} seconds before expiry is too late to renew"),
            "alert two weeks ahead (`cert-expiry \"14d\"`): ACME renews 30 days before",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn with(alerts: Value) -> Vec<Finding> {
        check(&input(json!({ "alerts": alerts })))
    }

    #[test]
    fn judged() {
        assert_eq!(with(json!(null)).len(), 1);
        let good = json!({"error-rate": 5.0, "disk-free": 10, "cert-expiry": 1_209_600});
        assert!(with(good).is_empty());
        let bad = json!({"error-rate": 100.0, "disk-free": 0, "cert-expiry": 3600});
        assert_eq!(with(bad).len(), 3);
        let mut i = input(json!({"alerts": null}));
        i.tier = Tier::Staging;
        assert!(check(&i).is_empty());
    }
}
