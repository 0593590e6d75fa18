//! `pgbouncer.transaction-pooling`: Django settings that break behind pgbouncer's pooling mode.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

use super::poolers;
use crate::Settings;

pub const RULE: RuleDocs = RuleDocs {
    id: "pgbouncer.transaction-pooling",
    default_severity: Severity::Error,
    summary: "a Django process is set up in a way pgbouncer's pooling mode breaks",
    what: "For every database behind pgbouncer: `mode statement` is an error (Django wraps \
           requests and `atomic()` blocks in multi-statement transactions). With `mode \
           transaction`, every Django process that `uses` the database (gunicorn, uvicorn or \
           daphne serving Django, Celery workers and beat with a `DJANGO_SETTINGS_MODULE`) \
           must set `DISABLE_SERVER_SIDE_CURSORS` to true (error). A persistent connection age \
           (`CONN_MAX_AGE` or `DB_CONN_MAX_AGE` of `None`, or above `max-conn-max-age` \
           seconds, default 300, kiln's proposal) is info. A process that turns on psycopg 3 \
           server-side binding (`DB_SERVER_SIDE_BINDING`, `SERVER_SIDE_BINDING`) needs \
           `max-prepared-statements` above 0, and `max-prepared-statements` needs pgbouncer \
           1.21 or later in `versions` (warnings).",
    why: "In transaction mode a client gets a server connection only for one transaction. \
          Django's server-side cursors (`.iterator()` on PostgreSQL) live across transactions \
          and fail with `cursor does not exist` once pgbouncer hands the connection to \
          someone else; Django's documentation asks for DISABLE_SERVER_SIDE_CURSORS behind \
          transaction pooling. Protocol-level prepared statements break the same way unless \
          pgbouncer tracks them (1.21+), and statement mode cannot run transactions at all.",
    example: "env {\n    DISABLE_SERVER_SIDE_CURSORS #false\n}",
    instead: "env {\n    DISABLE_SERVER_SIDE_CURSORS #true\n}",
    upstream: &[
        "DJ databases transaction pooling",
        "PB features",
        "PB config.md max_prepared_statements",
    ],
};

fn truthy(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a service is a Django process: web servers serving Django, Celery with Django.
fn runs_django(service: &Value) -> bool {
    let program = service
        .pointer("/run/program")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !matches!(
        program,
        "gunicorn" | "uvicorn" | "daphne" | "celery-worker" | "celery-beat"
    ) {
        return false;
    }
    service
        .pointer("/env/DJANGO_SETTINGS_MODULE")
        .is_some_and(|v| !v.is_null())
        || matches!(
            service.get("preset").and_then(Value::as_str),
            Some("django-web" | "daphne")
        )
}

fn uses(service: &Value, db: &str) -> bool {
    service
        .get("uses")
        .and_then(Value::as_array)
        .is_some_and(|u| u.iter().any(|x| x == db))
}

/// `/env/VAR` when the service inherits the value unchanged, else the service's own.
fn env_pointer(input: &Input, service: &str, var: &str) -> String {
    let own = input.pointer(&json_pointer(["services", service, "env", var]));
    let shared = input.pointer(&json_pointer(["env", var]));
    match (own, shared) {
        (Some(a), Some(b)) if a == b => json_pointer(["env", var]),
        _ => json_pointer(["services", service, "env", var]),
    }
}

fn at_least(version: &str, min: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(version) >= parse(min)
}

pub fn check(input: &Input) -> Vec<Finding> {
    let settings: Settings = input.settings().unwrap_or_default();
    let version = input
        .pointer("/versions/pgbouncer")
        .and_then(Value::as_str)
        .unwrap_or("1.18");
    let mut out: Vec<Finding> = Vec::new();
    let mut push = |f: Finding| {
        if !out
            .iter()
            .any(|g| g.path == f.path && g.message == f.message)
        {
            out.push(f);
        }
    };
    for (db, _, pooler) in poolers(input) {
        let mode = pooler
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("session");
        let at = |key: &str| json_pointer(["postgres", db, "pooler", key]);
        let prepared = pooler
            .get("max-prepared-statements")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if prepared > 0 && !at_least(version, "1.21") {
            push(
                Finding::new(RULE.id, format!("the pgbouncer of `{db}` sets max_prepared_statements, which pgbouncer {version} does not know"))
                    .at(at("max-prepared-statements"))
                    .help("set `versions pgbouncer=\"1.21\"` (or later) if that is what runs, or drop `max-prepared-statements`")
                    .severity(Severity::Warn),
            );
        }
        if mode == "statement" {
            push(
                Finding::new(RULE.id, format!("the pgbouncer of `{db}` uses statement pooling, which cannot run Django's transactions"))
                    .at(at("mode"))
                    .help("use `mode transaction` (with DISABLE_SERVER_SIDE_CURSORS) or `mode session`"),
            );
            continue;
        }
        if mode != "transaction" {
            continue;
        }
        let mut binding_users: Vec<&str> = Vec::new();
        for (name, service) in input.services() {
            if !uses(service, db) || !runs_django(service) {
                continue;
            }
            let cursors = service.pointer("/env/DISABLE_SERVER_SIDE_CURSORS");
            if cursors.and_then(truthy) != Some(true) {
                let path = match cursors {
                    Some(_) => env_pointer(input, name, "DISABLE_SERVER_SIDE_CURSORS"),
                    None => json_pointer(["services", name, "uses"]),
                };
                let whom = if path.starts_with("/env/") {
                    "the app".to_owned()
                } else {
                    format!("`{name}`")
                };
                push(
                    Finding::new(
                        RULE.id,
                        format!("{whom} reaches `{db}` through pgbouncer in transaction mode without DISABLE_SERVER_SIDE_CURSORS"),
                    )
                    .at(path)
                    .help("set `DISABLE_SERVER_SIDE_CURSORS #true` in `env` (and read it into DATABASES[…][\"DISABLE_SERVER_SIDE_CURSORS\"])")
                    .related(at("mode"), "transaction pooling"),
                );
            }
            for var in ["CONN_MAX_AGE", "DB_CONN_MAX_AGE"] {
                let Some(v) = service.pointer(&format!("/env/{var}")) else {
                    continue;
                };
                let persistent = match v {
                    Value::Null => false,
                    Value::String(s)
                        if matches!(s.trim().to_ascii_lowercase().as_str(), "none" | "null") =>
                    {
                        true
                    }
                    Value::Number(n) => n
                        .as_f64()
                        .is_some_and(|f| f > settings.max_conn_max_age as f64),
                    Value::String(s) => s
                        .trim()
                        .parse::<f64>()
                        .is_ok_and(|f| f > settings.max_conn_max_age as f64),
                    _ => false,
                };
                if persistent {
                    push(
                        Finding::new(
                            RULE.id,
                            format!("{var} keeps Django's connections to pgbouncer open longer than {} seconds", settings.max_conn_max_age),
                        )
                        .at(env_pointer(input, name, var))
                        .help(format!("set `{var} 0` (or a short age): pgbouncer already pools the server connections"))
                        .severity(Severity::Info),
                    );
                }
            }
            let binding = [
                "DB_SERVER_SIDE_BINDING",
                "SERVER_SIDE_BINDING",
                "DATABASE_SERVER_SIDE_BINDING",
            ]
            .iter()
            .any(|v| service.pointer(&format!("/env/{v}")).and_then(truthy) == Some(true));
            if binding {
                binding_users.push(name);
            }
        }
        if !binding_users.is_empty() && prepared == 0 {
            let who = binding_users
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let verb = if binding_users.len() == 1 {
                "uses"
            } else {
                "use"
            };
            push(
                Finding::new(
                    RULE.id,
                    format!("{who} {verb} server-side binding (protocol-level prepared statements), but the pgbouncer of `{db}` does not track them"),
                )
                .at(at("max-prepared-statements"))
                .help("set `max-prepared-statements 200` (pgbouncer 1.21+), or turn server-side binding off")
                .severity(Severity::Warn),
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

    fn spec(mode: &str, env: Value) -> Value {
        let svc = |program: &str| json!({"run": {"program": program}, "uses": ["db", "cache"], "env": env});
        json!({
            "versions": {"pgbouncer": "1.23"},
            "env": env,
            "postgres": {"db": {"pooler": {"mode": mode, "max-prepared-statements": null}}},
            "services": {
                "web": svc("gunicorn"), "worker": svc("celery-worker"), "beat": svc("celery-beat"),
                "api": {"run": {"program": "uvicorn"}, "uses": ["db"], "env": {}},
                "other": {"run": {"program": "gunicorn"}, "uses": ["cache"], "env": env},
            }
        })
    }

    fn run(spec: Value) -> Vec<(String, Option<Severity>, String)> {
        check(&input(spec))
            .into_iter()
            .map(|f| (f.path.unwrap(), f.severity, f.message))
            .collect()
    }

    #[test]
    fn transaction_mode_needs_the_setting() {
        let django = json!({"DJANGO_SETTINGS_MODULE": "config.settings", "DISABLE_SERVER_SIDE_CURSORS": true, "CONN_MAX_AGE": 0});
        assert!(run(spec("transaction", django.clone())).is_empty());
        let mut off = django.clone();
        off["DISABLE_SERVER_SIDE_CURSORS"] = json!("False");
        let f = run(spec("transaction", off));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "/env/DISABLE_SERVER_SIDE_CURSORS");
        assert_eq!(
            f[0].2,
            "the app reaches `db` through pgbouncer in transaction mode without DISABLE_SERVER_SIDE_CURSORS"
        );
        let mut missing = django.clone();
        missing
            .as_object_mut()
            .unwrap()
            .remove("DISABLE_SERVER_SIDE_CURSORS");
        let paths: Vec<String> = run(spec("transaction", missing.clone()))
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            paths,
            [
                "/services/web/uses",
                "/services/worker/uses",
                "/services/beat/uses"
            ]
        );
        assert!(run(spec("session", missing)).is_empty());
    }

    #[test]
    fn statement_mode() {
        let f = run(spec("statement", json!({})));
        assert_eq!(f, [("/postgres/db/pooler/mode".to_owned(), None, "the pgbouncer of `db` uses statement pooling, which cannot run Django's transactions".to_owned())]);
    }

    #[test]
    fn connection_age_boundary() {
        let env = |age: Value| json!({"DJANGO_SETTINGS_MODULE": "c", "DISABLE_SERVER_SIDE_CURSORS": "1", "DB_CONN_MAX_AGE": age});
        assert!(run(spec("transaction", env(json!(300)))).is_empty());
        let f = run(spec("transaction", env(json!(301))));
        assert_eq!((f.len(), f[0].1), (1, Some(Severity::Info)));
        assert_eq!(run(spec("transaction", env(json!("None")))).len(), 1);
        let mut i = input(spec("transaction", env(json!(600))));
        i.policy.settings = json!({"max-conn-max-age": 600});
        assert!(check(&i).is_empty());
    }

    #[test]
    fn prepared_statements() {
        let env = json!({"DJANGO_SETTINGS_MODULE": "c", "DISABLE_SERVER_SIDE_CURSORS": true, "DB_SERVER_SIDE_BINDING": "true"});
        let f = run(spec("transaction", env.clone()));
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].0.as_str(), f[0].1),
            (
                "/postgres/db/pooler/max-prepared-statements",
                Some(Severity::Warn)
            )
        );
        let mut s = spec("transaction", env);
        s["postgres"]["db"]["pooler"]["max-prepared-statements"] = json!(200);
        assert!(run(s.clone()).is_empty());
        s["versions"]["pgbouncer"] = json!("1.18");
        assert!(run(s)[0].2.contains("pgbouncer 1.18 does not know"));
    }
}
