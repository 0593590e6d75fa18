//! kiln standard policy `secret`: secret values (placeholders, key formats, password
//! strength) and where secrets live (declared secrets, never literals).
//!
//! In a normal compile the value rules judge literal values of secret-looking variables in
//! the spec; during `kiln secrets check --env NAME --env-file FILE` they also judge the real
//! values of declared secrets, which reach this policy (and only policies that ask for
//! `"secret-values"`) as the input's `secret-values`. No finding ever quotes a value.

// `x % n == 0`, not `is_multiple_of`: the wasm toolchain (Debian's rustc-web) is Rust 1.85.
#![allow(clippy::manual_is_multiple_of)]

mod judge;
pub mod rules;
mod subjects;

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
    id: "secret",
    version: "1.2.0",
    summary: "Secrets: no placeholders, keys of the right format, strong passwords, no literals in the spec or the rendered files",
    inputs: &["spec", "artifacts", "secret-values"],
    targets: &[],
    rules: &[
        &rules::no_placeholder::RULE,
        &rules::key_format::RULE,
        &rules::strength::RULE,
        &rules::not_inline::RULE,
    ],
    settings_schema: r#"{
        "type": "object",
        "properties": {
            "min-password-length": {
                "type": "integer",
                "minimum": 1,
                "default": 16,
                "description": "secret.strength: passwords shorter than this are an error (kiln's proposal: 16)"
            },
            "recommended-password-length": {
                "type": "integer",
                "minimum": 1,
                "default": 32,
                "description": "secret.strength: passwords shorter than this are a warning (kiln's proposal: 32); at least min-password-length"
            }
        },
        "additionalProperties": false
    }"#,
};

/// The policy's settings.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub min_password_length: usize,
    pub recommended_password_length: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            min_password_length: 16,
            recommended_password_length: 32,
        }
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    // The subjects once for every rule: the spec's literals, then the real values
    // (`subjects::all`).
    let mut all = subjects::literals(input);
    let literals = all.len();
    all.extend(subjects::values(input));
    let mut findings = rules::no_placeholder::check_subjects(&all);
    findings.extend(rules::key_format::check_subjects(&all));
    findings.extend(rules::strength::check_subjects(input, &all));
    findings.extend(rules::not_inline::check_literals(input, &all[..literals]));
    findings
}

pub fn validate_settings(settings: &Value) -> Vec<SettingsError> {
    let s = match Settings::deserialize(settings) {
        Ok(s) => s,
        Err(e) => return vec![SettingsError::new("", e.to_string())],
    };
    let mut errors = Vec::new();
    if s.min_password_length == 0 {
        errors.push(SettingsError::new(
            "/min-password-length",
            "must be at least 1",
        ));
    }
    if s.recommended_password_length < s.min_password_length {
        errors.push(SettingsError::new(
            "/recommended-password-length",
            format!(
                "must be at least min-password-length ({})",
                s.min_password_length
            ),
        ));
    }
    errors
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
        doc["spec"]["env"]["STRIPE_API_KEY"] = json!("changeme-later");
        doc["spec"]["env"]["OTHER_TOKEN"] = json!("sk_live_4eC39HqLyjWDarjtT1zdp7dc");
        doc["secret-values"] = json!({
            "SECRET_KEY": "too-short",
            "ENCRYPTION_KEY": "0nAFxLt6y4t9Q2PZ3bXbNV0f5rqgR1zX8yKq3VhS-aM=",
            "DB_PASSWORD": "Xk9#mQ2$vL7",
        });
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
        assert!(
            validate_settings(
                &json!({"min-password-length": 20, "recommended-password-length": 40})
            )
            .is_empty()
        );
        assert_eq!(
            validate_settings(&json!({"min-password-length": 40}))[0].path,
            "/recommended-password-length"
        );
        assert_eq!(
            validate_settings(&json!({"min-password-length": 0}))[0].path,
            "/min-password-length"
        );
        assert_eq!(validate_settings(&json!({"min-length": 3})).len(), 1);
        assert_eq!(
            validate_settings(&json!({"min-password-length": -1})).len(),
            1
        );
    }

    #[test]
    fn no_finding_quotes_a_value() {
        let mut input = kiln_policy_sdk::test_support::input(json!({
            "secrets": {
                "SECRET_KEY": {"kind": "django-secret-key"},
                "FERNET_KEYS": {"kind": "fernet"},
                "JWT": {"kind": "jwt-hs256"},
                "DB_PASSWORD": {"kind": "password"},
                "BROKER_URL": {"kind": "url"},
                "API_KEY": {"kind": "api-key"},
            },
            "env": {"ADMIN_PASSWORD": "qwe", "OTHER_TOKEN": "Zq8rT2mW9xK4vL7pB3nH"},
        }));
        let values = [
            ("SECRET_KEY", "django-insecure-q8rT2mW9xK4vL7pB3n"),
            ("FERNET_KEYS", "Zq8rT2mW9xK4vL7pB3nH,QWERTYUIOPasdfghjkl"),
            ("JWT", "shortjwtkeyvalue"),
            ("DB_PASSWORD", "hunter2hunter"),
            ("BROKER_URL", "amqp://user:mqpassword1@mq//"),
            ("API_KEY", "<paste-here>"),
        ];
        for (k, v) in values {
            input.secret_values.insert(k.into(), v.into());
        }
        let findings = check(&input);
        assert!(findings.len() >= 7, "{findings:#?}");
        let mut parts: Vec<&str> = values.iter().map(|(_, v)| *v).collect();
        parts.extend([
            "qwe",
            "Zq8rT2mW9xK4vL7pB3nH",
            "hunter2",
            "mqpassword1",
            "paste",
        ]);
        for f in &findings {
            let text = format!("{} {}", f.message, f.help.as_deref().unwrap_or(""));
            for part in &parts {
                assert!(!text.contains(part), "`{part}` leaks in {text}");
            }
        }
    }
}
