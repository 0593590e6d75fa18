//! `pg.replica-tls`: a production database streams to its replicas without TLS.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, Tier, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "pg.replica-tls",
    default_severity: Severity::Warn,
    summary: "a production database with read replicas has no TLS, so it streams its WAL in the clear",
    what: "For every `postgres` of a production environment with `replicas`: the server must \
           have `tls` (or `ssl on` in its settings). With it, kiln's replication line in \
           pg_hba.conf is `hostssl` and each replica connects with `sslmode=require`, so \
           replication cannot fall back to plain TCP.",
    why: "A replica receives the primary's write-ahead log: every row written, every password \
          hash, every token the app stores. Without TLS anyone on the path between the two \
          servers (another container on the network, a compromised host, a cloud's shared \
          segment) reads it, and can pose as the primary to the replica (PostgreSQL \
          documentation, \"Secure TCP/IP Connections with SSL\" and \"Log-Shipping Standby \
          Servers\").",
    example: "secret REPLICATION_PASSWORD kind=password apps=#false\npostgres db {\n    replicas 1\n    replication-password REPLICATION_PASSWORD\n}",
    instead: "secret REPLICATION_PASSWORD kind=password apps=#false\nsecret PG_TLS_CERT kind=generic deliver=file apps=#false\nsecret PG_TLS_KEY kind=generic deliver=file apps=#false\npostgres db {\n    replicas 1\n    replication-password REPLICATION_PASSWORD\n    tls cert=PG_TLS_CERT key=PG_TLS_KEY\n}",
    upstream: &["PG ssl-tcp", "PG warm-standby"],
};

/// TLS on: a `tls` block, or `ssl` on in the settings.
fn has_tls(pg: &Value) -> bool {
    if pg.get("tls").is_some_and(Value::is_object) {
        return true;
    }
    match pg.pointer("/settings/ssl") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "on" | "true"),
        _ => false,
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    if !matches!(input.tier, Tier::Production | Tier::Other) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, pg) in input.entries("/postgres") {
        let replicas = pg.get("replicas").and_then(Value::as_u64).unwrap_or(0);
        if replicas == 0 || has_tls(pg) {
            continue;
        }
        out.push(
            Finding::new(
                RULE.id,
                format!("postgres `{name}` streams to {replicas} replica(s) without TLS"),
            )
            .at(json_pointer(["postgres", name, "replicas"]))
            .help("add `tls cert=PG_TLS_CERT key=PG_TLS_KEY` (secrets with `deliver=file`): replication then requires TLS"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn with(pg: Value) -> Vec<Finding> {
        check(&input(json!({"postgres": {"db": pg}})))
    }

    #[test]
    fn judged() {
        assert!(with(json!({"replicas": 0})).is_empty());
        assert_eq!(with(json!({"replicas": 2, "tls": null})).len(), 1);
        assert!(with(json!({"replicas": 2, "tls": {"cert": "C", "key": "K"}})).is_empty());
        assert!(with(json!({"replicas": 1, "settings": {"ssl": "on"}})).is_empty());
        assert_eq!(
            with(json!({"replicas": 1, "settings": {"ssl": "off"}})).len(),
            1
        );
        let mut i = input(json!({"postgres": {"db": {"replicas": 1}}}));
        i.tier = Tier::Staging;
        assert!(check(&i).is_empty());
    }
}
