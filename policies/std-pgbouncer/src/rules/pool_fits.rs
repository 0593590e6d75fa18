//! `pgbouncer.pool-fits`: pgbouncer may open more server connections than PostgreSQL accepts.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "pgbouncer.pool-fits",
    default_severity: Severity::Error,
    summary: "pgbouncer may open more server connections than PostgreSQL accepts",
    what: "For every `postgres` with a `pooler`: the server connections one pgbouncer may \
           open to it, `default-pool-size` plus `reserve-pool-size` (or `max-db-connections` \
           when that is lower), must fit in PostgreSQL's `max_connections` (the `settings` \
           value, else PostgreSQL's default of 100) minus `superuser_reserved_connections` \
           (default 3). kiln's pooler serves one database and user, so that is one pool.",
    why: "When the pool asks for more connections than the server has, PostgreSQL refuses the \
          extra ones with `too many clients already`: under load the pool never reaches its \
          size, clients queue in pgbouncer until `query_wait_timeout`, and the failure shows \
          up as timeouts far from its cause (a pool of 500 against `max_connections 100`).",
    example: "postgres db {\n    pooler pgbouncer {\n        default-pool-size 500\n    }\n}",
    instead: "postgres db {\n    pooler pgbouncer {\n        default-pool-size 20\n    }\n}",
    upstream: &["PB default_pool_size", "PG max_connections"],
};

fn number(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, pg) in input.entries("/postgres") {
        let Some(pooler) = pg.get("pooler").filter(|p| p.is_object()) else {
            continue;
        };
        let pool = number(pooler.get("default-pool-size")).unwrap_or(20)
            + number(pooler.get("reserve-pool-size")).unwrap_or(0);
        let pool = match number(pooler.get("max-db-connections")).filter(|m| *m > 0) {
            Some(m) => pool.min(m),
            None => pool,
        };
        let max = number(pg.pointer("/settings/max_connections")).unwrap_or(100);
        let reserved = number(pg.pointer("/settings/superuser_reserved_connections")).unwrap_or(3);
        let room = max.saturating_sub(reserved);
        if pool > room {
            out.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "the pgbouncer of `{name}` may open {pool} server connections, but PostgreSQL accepts {room} ({max} max_connections, {reserved} reserved for superusers)"
                    ),
                )
                .at(json_pointer(["postgres", name, "pooler", "default-pool-size"]))
                .help(format!(
                    "lower `default-pool-size` (with `reserve-pool-size`) to {room} or less, or raise `settings {{ max_connections … }}` of `{name}`"
                )),
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

    fn run(pooler: Value, settings: Value) -> usize {
        check(&input(
            json!({"postgres": {"db": {"pooler": pooler, "settings": settings}}}),
        ))
        .len()
    }

    #[test]
    fn pools() {
        assert_eq!(
            run(
                json!({"default-pool-size": 20, "reserve-pool-size": 5}),
                json!({})
            ),
            0
        );
        assert_eq!(run(json!({"default-pool-size": 500}), json!({})), 1);
        assert_eq!(
            run(
                json!({"default-pool-size": 95, "reserve-pool-size": 5}),
                json!({})
            ),
            1
        );
        assert_eq!(
            run(
                json!({"default-pool-size": 500}),
                json!({"max_connections": 600})
            ),
            0
        );
        assert_eq!(
            run(
                json!({"default-pool-size": 500, "max-db-connections": 90}),
                json!({})
            ),
            0
        );
        assert_eq!(
            run(
                json!({"default-pool-size": 500}),
                json!({"max_connections": "600"})
            ),
            0
        );
    }
}
