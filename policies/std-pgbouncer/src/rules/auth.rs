//! `pgbouncer.auth`: pgbouncer accepts clients without a strong password check.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

use super::{has_target, poolers};

pub const RULE: RuleDocs = RuleDocs {
    id: "pgbouncer.auth",
    default_severity: Severity::Error,
    summary: "pgbouncer authenticates clients weakly, or mixes admin and application users",
    what: "For every pgbouncer (`pooler` of a `postgres`): `auth-type` must be `scram-sha-256`, \
           `hba` or `cert`; `trust`, `any` and `plain` are errors, and `md5` (pgbouncer's own \
           default) is a warning. `admin-users` and `stats-users` must not name the application \
           user (the database's `user`). When pgbouncer runs on a host (the systemd or \
           pgbouncer target) and its `listen-addr` is neither loopback nor a private address, \
           `client-tls-sslmode` must be `require`, `verify-ca` or `verify-full`.",
    why: "With `trust` or `any`, anyone who reaches the port is the database user; `plain` \
          keeps cleartext passwords in the auth file and on the wire. MD5 verifiers are \
          password-equivalent and deprecated in PostgreSQL 18. An application user in \
          `admin_users` can `SHUTDOWN`, `PAUSE` or `RECONNECT` every pool from a compromised \
          app. Passwords crossing a public network need TLS.",
    example: "postgres db {\n    pooler pgbouncer {\n        auth-type \"trust\"\n    }\n}",
    instead: "postgres db {\n    pooler pgbouncer {\n        auth-type \"scram-sha-256\"\n    }\n}",
    upstream: &[
        "PB config.md auth_type",
        "PB config.md admin_users",
        "PB config.md client_tls_sslmode",
        "PG 18 release notes",
    ],
};

fn listed<'a>(pooler: &'a Value, key: &str) -> Vec<&'a str> {
    pooler
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is_private(addr: &str) -> bool {
    let a = addr.trim().trim_start_matches('[').trim_end_matches(']');
    if a == "localhost"
        || a == "::1"
        || a.starts_with("127.")
        || a.starts_with("fc")
        || a.starts_with("fd")
    {
        return true;
    }
    let o: Vec<u8> = a.split('.').filter_map(|p| p.parse().ok()).collect();
    o.len() == 4
        && matches!(
            (o[0], o[1]),
            (10, _) | (172, 16..=31) | (192, 168) | (100, 64..=127)
        )
}

pub fn check(input: &Input) -> Vec<Finding> {
    let on_host = has_target(input, "systemd") || has_target(input, "pgbouncer");
    let mut out = Vec::new();
    for (db, pg, pooler) in poolers(input) {
        let at = |key: &str| json_pointer(["postgres", db, "pooler", key]);
        let auth = pooler
            .get("auth-type")
            .and_then(Value::as_str)
            .unwrap_or("md5");
        match auth {
            "trust" | "any" | "plain" => {
                let why = match auth {
                    "plain" => "keeps and checks cleartext passwords",
                    "any" => "accepts any user name without a password",
                    _ => "accepts clients without a password",
                };
                out.push(
                    Finding::new(RULE.id, format!("the pgbouncer of `{db}` uses auth_type {auth}, which {why}"))
                        .at(at("auth-type"))
                        .help("use `auth-type \"scram-sha-256\"` with SCRAM verifiers in the auth file (the pgbouncer preset's default)"),
                );
            }
            "md5" => out.push(
                Finding::new(RULE.id, format!("the pgbouncer of `{db}` uses auth_type md5, which is deprecated"))
                    .at(at("auth-type"))
                    .help("use `auth-type \"scram-sha-256\"` (and `password_encryption scram-sha-256` in PostgreSQL)")
                    .severity(Severity::Warn),
            ),
            _ => {}
        }
        if let Some(app) = pg
            .get("user")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
        {
            for key in ["admin-users", "stats-users"] {
                if listed(pooler, key).contains(&app) {
                    out.push(
                        Finding::new(
                            RULE.id,
                            format!(
                                "the pgbouncer of `{db}` lists the application user `{app}` in {}",
                                key.replace('-', "_")
                            ),
                        )
                        .at(at(key))
                        .help(format!(
                            "give pgbouncer's console its own user: `{key} \"pgbouncer_{}\"`",
                            &key[..key.len() - 6]
                        )),
                    );
                }
            }
        }
        let addr = pooler
            .get("listen-addr")
            .and_then(Value::as_str)
            .unwrap_or("127.0.0.1");
        let sslmode = pooler
            .get("client-tls-sslmode")
            .and_then(Value::as_str)
            .unwrap_or("disable");
        let public = addr.split(',').any(|a| !is_private(a));
        if on_host && public && !matches!(sslmode, "require" | "verify-ca" | "verify-full") {
            out.push(
                Finding::new(RULE.id, format!("the pgbouncer of `{db}` listens on `{addr}` but does not require TLS from clients (client_tls_sslmode {sslmode})"))
                    .at(at("client-tls-sslmode"))
                    .help("set `client-tls-sslmode \"require\"` (with a certificate), or listen on loopback or a private address"),
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

    fn spec(pooler: Value) -> Value {
        let mut p = json!({"auth-type": "scram-sha-256", "listen-addr": "127.0.0.1", "admin-users": ["pgbouncer_admin"], "stats-users": ["pgbouncer_stats"], "client-tls-sslmode": null});
        for (k, v) in pooler.as_object().unwrap() {
            p[k] = v.clone();
        }
        json!({"targets": ["systemd"], "postgres": {"db": {"user": "app", "pooler": p}, "plain": {"user": "x", "pooler": null}}})
    }

    fn run(pooler: Value) -> Vec<(String, Option<Severity>)> {
        check(&input(spec(pooler)))
            .into_iter()
            .map(|f| (f.path.unwrap(), f.severity))
            .collect()
    }

    #[test]
    fn auth_types() {
        for ok in ["scram-sha-256", "hba", "cert"] {
            assert!(run(json!({"auth-type": ok})).is_empty(), "{ok}");
        }
        for bad in ["trust", "any", "plain"] {
            assert_eq!(
                run(json!({"auth-type": bad})),
                [("/postgres/db/pooler/auth-type".to_owned(), None)],
                "{bad}"
            );
        }
        assert_eq!(run(json!({"auth-type": "md5"}))[0].1, Some(Severity::Warn));
    }

    #[test]
    fn console_users() {
        assert_eq!(
            run(json!({"admin-users": ["app"]}))[0].0,
            "/postgres/db/pooler/admin-users"
        );
        assert_eq!(
            run(json!({"stats-users": ["monitor", "app"]}))[0].0,
            "/postgres/db/pooler/stats-users"
        );
        assert!(run(json!({"admin-users": []})).is_empty());
    }

    #[test]
    fn tls_on_public_listeners() {
        assert!(run(json!({"listen-addr": "10.0.0.5"})).is_empty());
        assert_eq!(
            run(json!({"listen-addr": "0.0.0.0"}))[0].0,
            "/postgres/db/pooler/client-tls-sslmode"
        );
        assert_eq!(
            run(json!({"listen-addr": "*", "client-tls-sslmode": "prefer"})).len(),
            1
        );
        assert!(run(json!({"listen-addr": "0.0.0.0", "client-tls-sslmode": "require"})).is_empty());
        let mut s = spec(json!({"listen-addr": "0.0.0.0"}));
        s["targets"] = json!(["compose", "k8s"]);
        assert!(check(&input(s)).is_empty());
    }
}
