//! kiln standard policy `run`: runtime hardening of every process, judged once for compose,
//! Kubernetes and systemd (non-root, no new privileges, resource limits, pinned images), and
//! the alerting rules a production environment needs.

pub mod rules;

use kiln_policy_sdk::rule::PolicyDocs;
use kiln_policy_sdk::{Finding, Input, SettingsError};
use serde_json::Value;

kiln_policy_sdk::kiln_policy! {
    metadata: include_str!("../policy.json"),
    check: check,
    validate_settings: validate_settings,
}

/// The policy's metadata; `policy.json` is generated from it.
pub const POLICY: PolicyDocs = PolicyDocs {
    id: "run",
    version: "1.2.0",
    summary: "Runtime hardening of every process on every target: non-root, no new privileges, resource limits, pinned images; alerting rules in production",
    inputs: &["spec", "artifacts"],
    targets: &["compose", "k8s", "systemd"],
    rules: &[
        &rules::non_root::RULE,
        &rules::no_new_privileges::RULE,
        &rules::resource_limits::RULE,
        &rules::image_pinned::RULE,
        &rules::image_consistent::RULE,
        &rules::alerts::RULE,
    ],
    settings_schema: r#"{"type": "object", "additionalProperties": false}"#,
};

pub fn check(input: &Input) -> Vec<Finding> {
    let mut findings = rules::non_root::check(input);
    findings.extend(rules::no_new_privileges::check(input));
    findings.extend(rules::resource_limits::check(input));
    findings.extend(rules::image_pinned::check(input));
    findings.extend(rules::image_consistent::check(input));
    findings.extend(rules::alerts::check(input));
    findings
}

/// The policy takes no settings.
pub fn validate_settings(settings: &Value) -> Vec<SettingsError> {
    match settings.as_object() {
        Some(map) => map
            .keys()
            .map(|k| {
                SettingsError::new(
                    format!("/{}", kiln_policy_sdk::escape_pointer_segment(k)),
                    format!("unknown setting `{k}`: this policy takes no settings"),
                )
            })
            .collect(),
        None => vec![SettingsError::new("", "settings must be an object")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const CLEAN: &str = include_str!("../../testdata/inputs/clean-production.json");

    /// Runs the policy as kiln's host would (declared rules, JSON pointers, artifact lines) and
    /// checks that every declared rule reported something.
    fn assert_all_rules(doc: &Value) {
        let findings = kiln_policy_sdk::test_support::run(
            include_str!("../policy.json"),
            check,
            &doc.to_string(),
        );
        for rule in POLICY.rules {
            assert!(
                findings.iter().any(|f| f.rule == rule.id),
                "{} did not fire: {findings:#?}",
                rule.id
            );
        }
    }
    #[test]
    fn every_rule_fires_through_the_host_checks() {
        let mut doc: Value = serde_json::from_str(CLEAN).unwrap();
        let web = &mut doc["spec"]["services"]["web"];
        web["user"] = json!("0:0");
        web["cap-add"] = json!(["SYS_ADMIN"]);
        web["image"] = json!("ghcr.io/acme/shop:latest");
        web["resources"]["memory"] = json!(null);
        doc["spec"]["services"]["worker"]["image"] = json!("ghcr.io/acme/shop:2.4.0");
        doc["spec"]["alerts"] = json!(null);
        assert_all_rules(&doc);
    }

    #[test]
    fn odd_input_does_not_panic() {
        let odd = [
            json!({}),
            json!({"services": {"web": "x", "w": {"env": 1, "run": [], "user": 0, "image": 5, "replicas": "2"}},
                   "sites": {"a": {"tls": "x", "headers": [1], "listen": {"https": "x"}, "hsts": 1}},
                   "env": {"DEBUG": {"secret": "X"}, "ALLOWED_HOSTS": 5},
                   "postgres": {"db": {"pooler": 1, "settings": "x"}, "p2": {"pooler": {"mode": 5, "admin-users": "x"}}},
                   "redis": {"c": null, "d": {"settings": {"bind": 1}, "password": 7}},
                   "firewall": {"allow": {"x": 1, "y": {"port": "a:b"}}}, "secrets": 5, "targets": "compose",
                   "versions": {"nginx": 1}, "policies": {"rules": 1, "waivers": {}}}),
            json!({"services": [], "sites": "x", "env": [], "postgres": [], "redis": "x", "firewall": [], "targets": [1]}),
        ];
        for spec in odd {
            let mut input = kiln_policy_sdk::test_support::input(spec);
            input
                .secret_values
                .insert("X".into(), "\u{0}\u{ffff}é".into());
            for (path, text) in [
                (
                    "compose/compose.yaml",
                    "services:\n  a:\n    ports: [\"x\", \"1:2:3:4\"]\n    environment:\n      - =\n      -\n",
                ),
                (
                    "nginx/nginx.conf",
                    "http { server { location { add_header } if ( { } } } } }\ninclude nginx.conf;\n\"é",
                ),
                (
                    "k8s/x.yaml",
                    "kind: Service\nspec:\n  type: NodePort\n  ports: 5\n- - -\n  containers:\n    - env: [1]\n",
                ),
                (
                    "systemd/x.service",
                    "[Service\nNoNewPrivileges\n[Service]\nEnvironment=\"A\\\n",
                ),
                ("pgbouncer/pgbouncer.ini", "[databases]\n= password=\n["),
            ] {
                input.artifacts.push(kiln_policy_sdk::Artifact {
                    target: path.split('/').next().unwrap_or("").into(),
                    path: path.into(),
                    text: text.into(),
                });
            }
            let _ = check(&input);
        }
    }

    #[test]
    fn policy_json_is_up_to_date() {
        POLICY
            .check_file(concat!(env!("CARGO_MANIFEST_DIR"), "/policy.json"))
            .unwrap();
    }

    #[test]
    fn clean_project_has_no_findings() {
        let input = kiln_policy_sdk::test_support::parse_input(include_str!(
            "../../testdata/inputs/clean-production.json"
        ));
        assert_eq!(check(&input), []);
    }

    #[test]
    fn settings_are_validated() {
        assert!(validate_settings(&json!({})).is_empty());
        assert_eq!(validate_settings(&json!({"x": 1})).len(), 1);
    }
}
