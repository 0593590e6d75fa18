//! `redis.auth-acl`: Redis accepts clients without a password, or keeps dangerous commands.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "redis.auth-acl",
    default_severity: Severity::Error,
    summary: "Redis has no password, or enables commands that should stay off",
    what: "Every `redis` needs `password=SECRET` naming a declared secret (kiln renders it as \
           `requirepass`, never in a command line): missing is an error in production, a \
           warning in staging and info in development. The secret should be declared \
           `kind=password`, so that `kiln secrets check` judges its strength (a warning \
           otherwise). In `settings`, a literal `requirepass` is an error (a password written \
           in the spec), as are `rename-command` (deprecated: use ACLs) and \
           `enable-debug-command`, `enable-module-command` or `enable-protected-configs` set to \
           anything but `no`.",
    why: "The official Redis image compiles protected mode off, so any client that reaches the \
          port can read and write every key, and `CONFIG SET dir`/`dbfilename` turns that into \
          writing files on the server. Redis answers fast enough for an outside attacker to \
          try 150k passwords per second, so the password must be long and random. The debug, \
          module and protected-config commands let a client load code or change the server's \
          files; redis.conf keeps them off by default.",
    example: "redis cache {\n    password #null\n}",
    instead: "redis cache {\n    password REDIS_PASSWORD\n}",
    upstream: &[
        "RD SECURITY",
        "RD ACL",
        "RD requirepass",
        "DL redis Dockerfile",
    ],
};

pub fn check(input: &Input) -> Vec<Finding> {
    let missing_severity = input.tiered(RULE.default_severity);
    let mut out = Vec::new();
    for (name, redis) in input.entries("/redis") {
        let at = |parts: &[&str]| {
            let mut p = vec!["redis", name];
            p.extend_from_slice(parts);
            json_pointer(p)
        };
        let settings = redis.get("settings").and_then(Value::as_object);
        let literal = settings
            .and_then(|s| s.get("requirepass"))
            .is_some_and(|v| !v.is_null());
        if literal {
            out.push(
                Finding::new(RULE.id, format!("redis `{name}` has its password written in the spec (`requirepass` in settings)"))
                    .at(at(&["settings", "requirepass"]))
                    .help("remove `requirepass` from `settings`; declare `secret REDIS_PASSWORD kind=password` and write `password=REDIS_PASSWORD`"),
            );
        }
        match redis.get("password").and_then(Value::as_str) {
            None if !literal => {
                let f = Finding::new(RULE.id, format!("redis `{name}` accepts every client without a password"))
                    .at(at(&["password"]))
                    .help("declare `secret REDIS_PASSWORD kind=password` and add `password=REDIS_PASSWORD` to the redis block; `uses` then puts it into REDIS_URL and CELERY_BROKER_URL");
                out.push(if missing_severity == RULE.default_severity {
                    f
                } else {
                    f.severity(missing_severity)
                });
            }
            None => {}
            Some(secret) => {
                let kind = input
                    .pointer(&json_pointer(["secrets", secret, "kind"]))
                    .and_then(Value::as_str)
                    .unwrap_or("generic");
                if kind != "password" {
                    out.push(
                        Finding::new(
                            RULE.id,
                            format!("the password of redis `{name}` is declared `kind={kind}`, so `kiln secrets check` does not judge its strength"),
                        )
                        .at(json_pointer(["secrets", secret]))
                        .help(format!("declare it `secret {secret} kind=password`"))
                        .severity(Severity::Warn),
                    );
                }
            }
        }
        let Some(settings) = settings else { continue };
        if settings.get("rename-command").is_some_and(|v| !v.is_null()) {
            out.push(
                Finding::new(
                    RULE.id,
                    format!("redis `{name}` uses `rename-command`, which is deprecated"),
                )
                .at(at(&["settings", "rename-command"]))
                .help("remove it; restrict commands with an ACL user (`-@dangerous`) instead"),
            );
        }
        for key in [
            "enable-debug-command",
            "enable-module-command",
            "enable-protected-configs",
        ] {
            if let Some(v) = settings.get(key).filter(|v| !v.is_null()) {
                let off = match v {
                    Value::Bool(b) => !b,
                    Value::String(s) => s.trim().eq_ignore_ascii_case("no"),
                    _ => false,
                };
                if !off {
                    out.push(
                        Finding::new(RULE.id, format!("redis `{name}` turns on `{key}`"))
                            .at(at(&["settings", key]))
                            .help(format!("remove `{key}` (it defaults to `no`)")),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::Tier;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn spec(password: Value, kind: &str, settings: Value) -> Value {
        json!({
            "secrets": {"REDIS_PASSWORD": {"kind": kind}},
            "redis": {"cache": {"password": password, "settings": settings}},
        })
    }

    fn run(spec: Value) -> Vec<(String, Option<Severity>)> {
        check(&input(spec))
            .into_iter()
            .map(|f| (f.path.unwrap(), f.severity))
            .collect()
    }

    #[test]
    fn password_declared() {
        assert!(run(spec(json!("REDIS_PASSWORD"), "password", json!({}))).is_empty());
        assert_eq!(
            run(spec(json!(null), "password", json!({}))),
            [("/redis/cache/password".to_owned(), None)]
        );
        assert_eq!(
            run(spec(json!("REDIS_PASSWORD"), "generic", json!({}))),
            [("/secrets/REDIS_PASSWORD".to_owned(), Some(Severity::Warn))]
        );
    }

    #[test]
    fn missing_password_by_tier() {
        let mut i = input(spec(json!(null), "password", json!({})));
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Warn));
        i.tier = Tier::Development;
        assert_eq!(check(&i)[0].severity, Some(Severity::Info));
    }

    #[test]
    fn settings() {
        assert_eq!(
            run(spec(json!(null), "password", json!({"requirepass": "x"}))),
            [("/redis/cache/settings/requirepass".to_owned(), None)]
        );
        let f = run(spec(
            json!("REDIS_PASSWORD"),
            "password",
            json!({
                "rename-command": "FLUSHALL \"\"", "enable-debug-command": "local",
                "enable-module-command": "no", "enable-protected-configs": true,
            }),
        ));
        let paths: Vec<&str> = f.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/redis/cache/settings/rename-command",
                "/redis/cache/settings/enable-debug-command",
                "/redis/cache/settings/enable-protected-configs"
            ]
        );
    }
}
