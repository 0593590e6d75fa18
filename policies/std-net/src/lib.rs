//! kiln standard policy `net`: network exposure (datastores never public, Docker's published
//! ports against ufw, the host firewall's baseline).

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
    id: "net",
    version: "1.2.0",
    summary: "Network exposure: datastores never public, compose's published ports against ufw, the host firewall baseline and the sites it must open",
    inputs: &["spec", "artifacts"],
    targets: &["compose", "k8s"],
    rules: &[
        &rules::datastore_not_public::RULE,
        &rules::docker_ufw_bypass::RULE,
        &rules::firewall_baseline::RULE,
        &rules::firewall_sites_open::RULE,
    ],
    settings_schema: r#"{
        "type": "object",
        "properties": {
            "public-ports": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[0-9]+(/(tcp|udp))?$"},
                "default": ["80/tcp", "443/tcp"],
                "description": "net.firewall-baseline: the ports the firewall may open to every address (kiln's proposal: 80 and 443); add \"443/udp\" for HTTP/3"
            }
        },
        "additionalProperties": false
    }"#,
};

/// The policy's settings.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub public_ports: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            public_ports: vec!["80/tcp".into(), "443/tcp".into()],
        }
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    // The compose files are read once for both rules that judge their published ports.
    let publishes = util::compose_publishes(&input.artifacts);
    let mut findings = rules::datastore_not_public::check_with(input, &publishes);
    findings.extend(rules::docker_ufw_bypass::check_with(input, &publishes));
    findings.extend(rules::firewall_baseline::check(input));
    findings.extend(rules::firewall_sites_open::check(input));
    findings
}

pub fn validate_settings(settings: &Value) -> Vec<SettingsError> {
    let s = match Settings::deserialize(settings) {
        Ok(s) => s,
        Err(e) => return vec![SettingsError::new("", e.to_string())],
    };
    s.public_ports
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let (port, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            port.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp")
        })
        .map(|(i, p)| {
            SettingsError::new(
                format!("/public-ports/{i}"),
                format!("`{p}` is not PORT or PORT/tcp or PORT/udp"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const CLEAN: &str = include_str!("../../testdata/inputs/clean-production.json");

    /// Runs the policy as kiln's host would (declared rules, JSON pointers, artifact lines) on
    /// each document and checks that every declared rule reported something in one of them.
    fn assert_all_rules(docs: &[Value]) {
        let findings: Vec<_> = docs
            .iter()
            .flat_map(|doc| {
                kiln_policy_sdk::test_support::run(
                    include_str!("../policy.json"),
                    check,
                    &doc.to_string(),
                )
            })
            .collect();
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
        doc["spec"]["redis"]["cache"]["settings"]["bind"] = json!("0.0.0.0");
        doc["spec"]["sites"]["shop.example.com"]["listen"]["https"] = json!(8443);
        doc["spec"]["firewall"]["allow"]["8080"] =
            json!({"port": "8080", "proto": "tcp", "from": [], "limit": false, "comment": null});
        // nginx on the host, no compose: the firewall must open the site's 8443 itself.
        let mut host = doc.clone();
        host["spec"]["targets"] = json!(["systemd", "nginx"]);
        assert_all_rules(&[doc, host]);
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
        assert!(validate_settings(&json!({"public-ports": ["80", "443/udp"]})).is_empty());
        assert_eq!(
            validate_settings(&json!({"public-ports": ["80", "x/tcp", "443/sctp"]})).len(),
            2
        );
        assert_eq!(validate_settings(&json!({"ports": []})).len(), 1);
    }
}
