//! `pg.backups`: a database with no scheduled dump, none kept for a bounded time, or
//! none proven to restore.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, Tier, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "pg.backups",
    default_severity: Severity::Warn,
    summary: "a production database has no scheduled backup, no retention, or backups never proven to restore",
    what: "For every `postgres` of a production environment that kiln deploys (compose, \
           Kubernetes, or a server on the systemd target's host; a managed database's \
           backups are its provider's): a `backup` block must schedule dumps, with `keep` \
           (days) so old dumps are deleted, and without `verify=#false`, so each dump is \
           proven to restore. In staging a missing `backup` is no finding, but a declared one \
           is judged the same way.",
    why: "A database without backups loses everything to one bad migration, one `DROP`, one \
          failed disk. Dumps kept forever fill the volume they share, and the day the disk is \
          full the next dump fails too. A dump never restored is a hope, not a backup: \
          truncated files, missing extensions and permission errors show up only at restore \
          time, when it is too late (the deployment checklist's \"backup restoration tested\").",
    example: "postgres db {\n    backup every=daily verify=#false\n}",
    instead: "postgres db {\n    backup every=daily at=\"02:00\" keep=30\n}",
    upstream: &["proposal"],
};

fn deploys(input: &Input, pg: &Value) -> bool {
    let targets: Vec<&str> = input
        .pointer("/targets")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let host = pg
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1");
    let local = host == "localhost" || host == "::1" || host.starts_with("127.");
    targets.contains(&"compose")
        || targets.contains(&"k8s")
        || (targets.contains(&"systemd") && local)
}

pub fn check(input: &Input) -> Vec<Finding> {
    if !matches!(input.tier, Tier::Production | Tier::Staging | Tier::Other) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, pg) in input.entries("/postgres") {
        if !deploys(input, pg) {
            continue;
        }
        let at = json_pointer(["postgres", name]);
        let Some(backup) = pg.get("backup").filter(|b| b.is_object()) else {
            if input.tier != Tier::Staging {
                out.push(
                    Finding::new(RULE.id, format!("postgres `{name}` has no scheduled backup"))
                        .at(at)
                        .help("add `backup every=daily at=\"02:00\" keep=30`: kiln writes the timer, the scheduled service or the CronJob"),
                );
            }
            continue;
        };
        let bp = json_pointer(["postgres", name, "backup"]);
        if backup.get("keep").is_none_or(Value::is_null) {
            out.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "the backups of postgres `{name}` are never deleted: they fill their volume"
                    ),
                )
                .at(&bp)
                .help(
                    "add `keep=DAYS` (30 is common): older dumps are deleted after each good one",
                ),
            );
        }
        if backup.get("verify").and_then(Value::as_bool) == Some(false) {
            out.push(
                Finding::new(RULE.id, format!("the backups of postgres `{name}` are never proven to restore"))
                    .at(format!("{bp}/verify"))
                    .help("drop `verify=#false`: each dump is then restored (on a host) or read whole (in containers) before it counts"),
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

    fn with(pg: Value, targets: &[&str]) -> Vec<Finding> {
        check(&input(json!({"targets": targets, "postgres": {"db": pg}})))
    }

    #[test]
    fn judged() {
        let good = json!({"backup": {"every": "daily", "keep": 30, "verify": true}});
        assert!(with(good, &["compose"]).is_empty());
        assert_eq!(with(json!({}), &["k8s"]).len(), 1);
        let bad = json!({"backup": {"every": "daily", "keep": null, "verify": false}});
        assert_eq!(with(bad, &["compose"]).len(), 2);
        // A managed database (remote host, systemd only): its provider's backups.
        assert!(with(json!({"host": "db.internal"}), &["systemd"]).is_empty());
        let mut i = input(json!({"targets": ["compose"], "postgres": {"db": {}}}));
        i.tier = Tier::Staging;
        assert!(check(&i).is_empty());
        i.tier = Tier::Development;
        assert!(check(&i).is_empty());
    }
}
