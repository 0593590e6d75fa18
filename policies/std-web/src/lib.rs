//! kiln standard policy `web`: the Django settings a deployment must get right (DEBUG,
//! ALLOWED_HOSTS and CSRF origins against the sites nginx serves, the HTTPS redirect).

pub mod rules;
mod util;

use kiln_policy_sdk::rule::PolicyDocs;
use kiln_policy_sdk::{Finding, Input, SettingsError};
use serde::Deserialize;
use serde_json::Value;

kiln_policy_sdk::kiln_policy! {
    metadata: include_str!("../policy.json"),
    check: check,
    validate_settings: validate_settings,
}

/// The policy's metadata; `policy.json` is generated from it.
pub const POLICY: PolicyDocs = PolicyDocs {
    id: "web",
    version: "1.5.0",
    summary: "Django deployment settings: DEBUG, ALLOWED_HOSTS and CSRF origins against the sites, the HTTPS redirect",
    inputs: &["spec"],
    targets: &[],
    rules: &[
        &rules::debug_off::RULE,
        &rules::allowed_hosts::RULE,
        &rules::https_redirect::RULE,
        &rules::cors_origins::RULE,
        &rules::email_tls::RULE,
        &rules::health_check::RULE,
    ],
    settings_schema: r#"{
        "type": "object",
        "properties": {
            "allow-wildcard-in-production": {
                "type": "boolean",
                "default": false,
                "description": "web.allowed-hosts: accept `*` in ALLOWED_HOSTS in production (kiln's proposal forbids it)"
            }
        },
        "additionalProperties": false
    }"#,
};

/// The policy's settings (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub allow_wildcard_in_production: bool,
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut findings = rules::debug_off::check(input);
    findings.extend(rules::allowed_hosts::check(input));
    findings.extend(rules::https_redirect::check(input));
    findings.extend(rules::cors_origins::check(input));
    findings.extend(rules::email_tls::check(input));
    findings.extend(rules::health_check::check(input));
    findings
}

pub fn validate_settings(settings: &Value) -> Vec<SettingsError> {
    match Settings::deserialize(settings) {
        Ok(_) => Vec::new(),
        Err(e) => vec![SettingsError::new("", e.to_string())],
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
        for (var, value) in [
            ("DEBUG", json!(true)),
            ("ALLOWED_HOSTS", json!("*")),
            ("SECURE_SSL_REDIRECT", json!(false)),
            ("CORS_ALLOWED_ORIGINS", json!("*")),
            ("EMAIL_HOST", json!("smtp.example.com")),
            ("EMAIL_USE_TLS", json!(false)),
        ] {
            doc["spec"]["env"][var] = value.clone();
            for service in doc["spec"]["services"]
                .as_object_mut()
                .unwrap()
                .values_mut()
            {
                service["env"][var] = value.clone();
            }
        }
        doc["spec"]["sites"]["shop.example.com"]["tls"]["mode"] = json!("off");
        doc["spec"]["services"]["web"]["health"] = json!(null);
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
        assert!(validate_settings(&json!({"allow-wildcard-in-production": true})).is_empty());
        assert_eq!(validate_settings(&json!({"allow-wildcard": true})).len(), 1);
        assert_eq!(
            validate_settings(&json!({"allow-wildcard-in-production": "yes"})).len(),
            1
        );
    }
}
