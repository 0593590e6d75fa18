//! `web.debug-off`: DEBUG (or DJANGO_DEBUG) is on for a process of the app.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};

use crate::util::{and_list, truthy, with_severity};

pub const RULE: RuleDocs = RuleDocs {
    id: "web.debug-off",
    default_severity: Severity::Error,
    summary: "DEBUG is on for a process of the app",
    what: "Reports `DEBUG` or `DJANGO_DEBUG` set to a true value (`#true`, 1, or any of `1`, \
           `true`, `yes`, `on` in any case) for any process of the app: web, worker, beat and \
           one-off tasks alike. A value set in the environment's `env` block is reported once \
           there; a service that sets its own is reported at the service. Severity follows the \
           tier: error in production, warn in staging, info in development.",
    why: "With DEBUG on, Django answers every error with a page that shows the stack trace, \
          local variables, the settings (with most secrets only partly masked) and the SQL it \
          ran, to anyone who can trigger an error. It also keeps every query in memory, and \
          Celery workers with DEBUG on leak memory until they are killed.",
    example: "env {\n    DEBUG #true\n}",
    instead: "env {\n    DEBUG #false\n}",
    upstream: &["DJ W018"],
};

/// The variables Django projects read DEBUG from.
const VARS: [&str; 2] = ["DEBUG", "DJANGO_DEBUG"];

pub fn check(input: &Input) -> Vec<Finding> {
    let severity = input.tiered(RULE.default_severity);
    let mut findings = Vec::new();
    // And the name under the project's settings prefix (`MYAPP_DEBUG`).
    let prefixed = input.setting_name("DEBUG");
    let mut vars: Vec<&str> = VARS.to_vec();
    if !vars.contains(&prefixed.as_str()) {
        vars.push(&prefixed);
    }
    for var in vars {
        let shared = input.pointer(&json_pointer(["env", var]));
        let mut inheriting: Vec<&str> = Vec::new();
        for (name, service) in input.services() {
            let Some(value) = service.get("env").and_then(|e| e.get(var)) else {
                continue;
            };
            if truthy(value) != Some(true) {
                continue;
            }
            if shared == Some(value) {
                inheriting.push(name);
                continue;
            }
            findings.push(with_severity(
                Finding::new(RULE.id, format!("{var} is on for service `{name}`"))
                    .at(json_pointer(["services", name, "env", var]))
                    .help(format!(
                        "set `{var} #false` in the `env` block of service `{name}`, or remove it there"
                    )),
                severity,
                RULE.default_severity,
            ));
        }
        let shared_on = shared.is_some_and(|v| truthy(v) == Some(true));
        if shared_on && (!inheriting.is_empty() || input.services().next().is_none()) {
            let who = if inheriting.is_empty() {
                "every process of the app".to_owned()
            } else {
                format!("every process of the app ({})", and_list(&inheriting))
            };
            findings.insert(
                0,
                with_severity(
                    Finding::new(RULE.id, format!("{var} is on for {who}"))
                        .at(json_pointer(["env", var]))
                        .help(format!(
                            "set `{var} #false` in this environment's `env` block; keep `#true` only in a development environment"
                        )),
                    severity,
                    RULE.default_severity,
                ),
            );
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::Tier;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn spec(shared: serde_json::Value, web: serde_json::Value) -> serde_json::Value {
        json!({
            "env": {"DEBUG": shared},
            "services": {
                "web": {"env": {"DEBUG": web}},
                "worker": {"env": {"DEBUG": shared}},
            }
        })
    }

    #[test]
    fn shared_value_is_reported_once() {
        let f = check(&input(spec(json!(true), json!(true))));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path.as_deref(), Some("/env/DEBUG"));
        assert_eq!(
            f[0].message,
            "DEBUG is on for every process of the app (web and worker)"
        );
        assert_eq!(f[0].severity, None);
    }

    #[test]
    fn true_spellings() {
        for v in [
            json!(true),
            json!(1),
            json!("1"),
            json!("TRUE"),
            json!("Yes"),
            json!("on"),
        ] {
            assert_eq!(check(&input(spec(json!(false), v.clone()))).len(), 1, "{v}");
        }
        for v in [
            json!(false),
            json!(0),
            json!("0"),
            json!("False"),
            json!("no"),
            json!("off"),
        ] {
            assert!(
                check(&input(spec(json!(false), v.clone()))).is_empty(),
                "{v}"
            );
        }
    }

    #[test]
    fn service_override_is_reported_at_the_service() {
        let f = check(&input(spec(json!(false), json!("true"))));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path.as_deref(), Some("/services/web/env/DEBUG"));
        assert_eq!(f[0].message, "DEBUG is on for service `web`");
    }

    #[test]
    fn django_debug_and_tiers() {
        let mut i = input(json!({
            "env": {"DJANGO_DEBUG": "on"},
            "services": {"beat": {"env": {"DJANGO_DEBUG": "on"}}},
        }));
        assert_eq!(check(&i)[0].path.as_deref(), Some("/env/DJANGO_DEBUG"));
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Warn));
        i.tier = Tier::Development;
        assert_eq!(check(&i)[0].severity, Some(Severity::Info));
    }

    #[test]
    fn env_without_services_and_overridden_everywhere() {
        assert_eq!(check(&input(json!({"env": {"DEBUG": true}}))).len(), 1);
        // Every service turns it off: nothing runs with DEBUG on.
        assert!(check(&input(spec(json!(true), json!(false)))).len() == 1);
        let all_off =
            json!({"env": {"DEBUG": true}, "services": {"web": {"env": {"DEBUG": false}}}});
        assert!(check(&input(all_off)).is_empty());
    }
}
