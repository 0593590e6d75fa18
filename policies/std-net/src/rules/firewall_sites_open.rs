//! `net.firewall-sites-open`: a site listens on a port the host firewall keeps closed.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

use crate::rules::firewall_baseline::site_listen_ports;
use crate::util::{has_target, rule_is_public, rule_ports};

pub const RULE: RuleDocs = RuleDocs {
    id: "net.firewall-sites-open",
    default_severity: Severity::Warn,
    summary: "a site listens on a port the host firewall does not open",
    what: "For environments whose nginx runs on the host (the systemd target, without \
           compose: with compose, net.docker-ufw-bypass reports the same site) and that declare \
           a `firewall`: every port a site listens on (its `listen` http port, and its https port \
           when TLS is on) must be opened to every address, by a rule for that TCP port or a \
           range holding it. The other half of the cross-check, a port opened that nothing \
           serves, is net.firewall-baseline's. One finding per site and port.",
    why: "The firewall is written by hand next to the site, and the two drift: a site moved to \
          another port, or an `allow https` forgotten, and the deployment answers nobody while \
          every check on the site itself passes. ACME's HTTP-01 challenge also needs port 80 \
          open, so the certificate stops renewing.",
    example: "targets systemd nginx\nsite \"shop.example.com\" {\n    listen {\n        https 8443\n    }\n}",
    instead: "targets systemd nginx\nsite \"shop.example.com\" {\n    listen {\n        https 443\n    }\n}",
    upstream: &["proposal"],
};

pub fn check(input: &Input) -> Vec<Finding> {
    if !has_target(input, "systemd") || has_target(input, "compose") {
        return Vec::new();
    }
    let Some(rules) = input.pointer("/firewall/allow").and_then(Value::as_object) else {
        return Vec::new();
    };
    let open = |port: u16| {
        rules.values().any(|r| {
            r.get("proto").and_then(Value::as_str).unwrap_or("tcp") == "tcp"
                && rule_is_public(r)
                && rule_ports(r).is_some_and(|(lo, hi)| (lo..=hi).contains(&port))
        })
    };
    let mut out = Vec::new();
    for (key, site) in input.sites() {
        for port in site_listen_ports(site) {
            if !open(port) {
                out.push(
                    Finding::new(
                        RULE.id,
                        format!("site `{key}` listens on {port}/tcp, which the firewall does not open: nobody outside this host reaches it"),
                    )
                    .at(json_pointer(["sites", key, "listen"]))
                    .help(format!("add `allow {port}` to the firewall (`allow http`/`allow https` for 80/443)")),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn spec(allow: Value) -> Value {
        json!({
            "targets": ["systemd"],
            "sites": {"a.example": {"listen": {"http": 80, "https": 443}, "tls": {"mode": "acme"}}},
            "firewall": {"backend": "ufw", "default-incoming": "deny", "allow": allow},
        })
    }

    fn rule(port: &str, from: &[&str]) -> Value {
        json!({"port": port, "proto": "tcp", "from": from, "limit": false})
    }

    #[test]
    fn open_sites_pass() {
        let allow = json!({"http": rule("80", &[]), "https": rule("443", &[])});
        assert!(check(&input(spec(allow))).is_empty());
        let range = json!({"web": rule("80:443", &[])});
        assert!(check(&input(spec(range))).is_empty());
        let mut no_firewall = spec(json!({}));
        no_firewall["firewall"] = Value::Null;
        assert!(check(&input(no_firewall)).is_empty());
    }

    #[test]
    fn closed_ports_are_found() {
        let f = check(&input(spec(json!({"http": rule("80", &[])}))));
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("443/tcp"), "{}", f[0].message);
        let f = check(&input(spec(
            json!({"http": rule("80", &[]), "https": rule("443", &["10.0.0.0/8"])}),
        )));
        assert_eq!(
            f.len(),
            1,
            "a port open to a few addresses only is closed to the public"
        );
    }
}
