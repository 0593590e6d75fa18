//! `net.firewall-baseline`: the host firewall is missing, or opens more than it should.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, Tier, json_pointer};
use serde_json::Value;

use crate::Settings;
use crate::util::{has_target, rule_is_public, rule_ports};

pub const RULE: RuleDocs = RuleDocs {
    id: "net.firewall-baseline",
    default_severity: Severity::Error,
    summary: "the host firewall is missing, or opens a port it should not",
    what: "For environments that run on hosts (the systemd or compose target): a `firewall` \
           block must exist (an error in production, a warning in staging, nothing in \
           development), and deny inbound traffic by default. Ports open to everyone are \
           limited to 80 and 443 (kiln's proposal; setting `public-ports`, like `[\"80/tcp\", \
           \"443/tcp\"]`) and the ports a site listens on: a site is public by declaration, \
           and nginx fronts it the same way on 5555 as on 443, so the port number alone is no \
           finding (the site's TLS and headers are judged by their own rules). SSH (22) is allowed only `from` declared admin addresses or with \
           `limit=#true`. Every other opened port must belong to something the spec declares: \
           a site's `listen` port, a service's `port`, or a PostgreSQL, pgbouncer or Redis port. \
           ufw applies each rule to IPv4 and IPv6 alike, so the rules need no IPv6 mirror in \
           the spec. One finding per rule, for its first problem.",
    why: "A host without a firewall exposes every service that binds a public address by \
          mistake, or by default. Open ports beyond the web ports are attack surface: SSH open \
          to the world with no rate limit draws password spraying around the clock, and a port \
          left open for a service that no longer exists is the one nobody watches.",
    example: "firewall {\n    allow 8080\n}",
    instead: "firewall {\n    allow https\n}",
    upstream: &["proposal", "DD Docker and ufw", "CE broker", "RD bind"],
};

/// The TCP ports nginx serves one site on: plain HTTP always, HTTPS when TLS is on.
pub(crate) fn site_listen_ports(site: &Value) -> Vec<u16> {
    let tls = site.pointer("/tls/mode").and_then(Value::as_str) != Some("off");
    [("http", true), ("https", tls)]
        .into_iter()
        .filter(|(_, on)| *on)
        .filter_map(|(which, _)| {
            site.pointer(&format!("/listen/{which}"))
                .and_then(Value::as_u64)
                .map(|p| p as u16)
        })
        .collect()
}

/// The TCP ports nginx serves sites on.
fn site_ports(input: &Input) -> Vec<u16> {
    input
        .sites()
        .flat_map(|(_, site)| site_listen_ports(site))
        .collect()
}

fn list_ports(input: &Input) -> Vec<u16> {
    let mut out = Vec::new();
    let mut add = |v: Option<&Value>| {
        if let Some(p) = v.and_then(Value::as_u64) {
            out.push(p as u16);
        }
    };
    for (_, site) in input.sites() {
        add(site.pointer("/listen/http"));
        add(site.pointer("/listen/https"));
    }
    for (_, s) in input.services() {
        add(s.get("port"));
    }
    for (_, pg) in input.entries("/postgres") {
        add(pg.get("port"));
        add(pg.pointer("/pooler/port"));
    }
    for (_, r) in input.entries("/redis") {
        add(r.get("port"));
    }
    out
}

pub fn check(input: &Input) -> Vec<Finding> {
    let settings: Settings = input.settings().unwrap_or_default();
    let on_hosts = has_target(input, "systemd") || has_target(input, "compose");
    let Some(firewall) = input.pointer("/firewall").filter(|f| f.is_object()) else {
        let severity = match input.tier {
            Tier::Production | Tier::Other => Severity::Error,
            Tier::Staging => Severity::Warn,
            Tier::Development => return Vec::new(),
        };
        if !on_hosts {
            return Vec::new();
        }
        let mut f = Finding::new(
            RULE.id,
            "the environment runs on hosts but declares no firewall",
        )
        .at("/firewall")
        .help(
            "add `firewall { allow ssh from=\"ADMIN-CIDR\" limit=#true; allow http; allow https }`",
        );
        if severity != RULE.default_severity {
            f = f.severity(severity);
        }
        return vec![f];
    };
    let mut out = Vec::new();
    let default = firewall
        .get("default-incoming")
        .and_then(Value::as_str)
        .unwrap_or("deny");
    if !matches!(default, "deny" | "reject") {
        out.push(
            Finding::new(
                RULE.id,
                format!("the firewall accepts inbound traffic by default (`{default}`)"),
            )
            .at("/firewall/default-incoming")
            .help("deny inbound traffic by default and allow ports one by one"),
        );
    }
    let has_sites = input.sites().next().is_some();
    let declared = list_ports(input);
    let served = site_ports(input);
    let Some(rules) = firewall.get("allow").and_then(Value::as_object) else {
        return out;
    };
    for (key, rule) in rules {
        let at = json_pointer(["firewall", "allow", key]);
        let proto = rule.get("proto").and_then(Value::as_str).unwrap_or("tcp");
        let Some((lo, hi)) = rule_ports(rule) else {
            continue;
        };
        let public = rule_is_public(rule);
        let label = if lo == hi {
            format!("{lo}/{proto}")
        } else {
            format!("{lo}:{hi}/{proto}")
        };
        if lo == 22 && hi == 22 && proto == "tcp" {
            let limit = rule.get("limit").and_then(Value::as_bool) == Some(true);
            if public && !limit {
                out.push(
                    Finding::new(RULE.id, "SSH is open to every address without rate limiting")
                        .at(at)
                        .help("allow it only from the admins' addresses (`allow ssh from=\"203.0.113.0/24\"`), or at least add `limit=#true`"),
                );
            }
            continue;
        }
        let public_ok = settings.public_ports.iter().any(|p| {
            p == &label || (!p.contains('/') && *p == lo.to_string() && lo == hi && proto == "tcp")
        }) || (lo == hi && proto == "tcp" && served.contains(&lo));
        if public && !public_ok {
            out.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "the firewall opens {label} to every address; only {} should be public",
                        settings.public_ports.join(", ")
                    ),
                )
                .at(at)
                .help("restrict it with `from=\"CIDR\"`, or remove the rule"),
            );
            continue;
        }
        let web = has_sites && (lo == 80 || lo == 443) && lo == hi && proto == "tcp";
        let mapped = web || declared.iter().any(|p| (lo..=hi).contains(p));
        if !mapped {
            out.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "the firewall opens {label}, but nothing the spec declares listens there"
                    ),
                )
                .at(at)
                .help("remove the rule, or declare what listens on it"),
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

    fn spec(allow: Value) -> Value {
        json!({
            "targets": ["systemd"],
            "sites": {"a.example": {"listen": {"http": 80, "https": 443}}},
            "services": {"web": {"port": 8000}},
            "postgres": {"db": {"port": 5432, "pooler": {"port": 6432}}},
            "firewall": {"backend": "ufw", "default-incoming": "deny", "allow": allow},
        })
    }

    fn rule(port: &str, from: &[&str], limit: bool) -> Value {
        json!({"port": port, "proto": "tcp", "from": from, "limit": limit})
    }

    fn paths(spec: Value) -> Vec<String> {
        check(&input(spec))
            .into_iter()
            .map(|f| f.path.unwrap())
            .collect()
    }

    #[test]
    fn baseline_passes() {
        let allow = json!({"ssh": rule("22", &["198.51.100.0/24"], false), "http": rule("80", &[], false), "https": rule("443", &[], false)});
        assert!(paths(spec(allow)).is_empty());
        assert!(paths(spec(json!({"ssh": rule("22", &[], true)}))).is_empty());
        assert!(paths(spec(json!({"6432": rule("6432", &["10.0.0.0/8"], false)}))).is_empty());
    }

    #[test]
    fn problems() {
        assert_eq!(
            paths(spec(json!({"ssh": rule("22", &[], false)}))),
            ["/firewall/allow/ssh"]
        );
        assert_eq!(
            paths(spec(json!({"ssh": rule("22", &["0.0.0.0/0"], false)}))),
            ["/firewall/allow/ssh"]
        );
        assert_eq!(
            paths(spec(json!({"5432": rule("5432", &[], false)}))),
            ["/firewall/allow/5432"]
        );
        assert_eq!(
            paths(spec(json!({"9000": rule("9000", &["10.0.0.0/8"], false)}))),
            ["/firewall/allow/9000"]
        );
        assert_eq!(
            paths(spec(
                json!({"udp": {"port": "443", "proto": "udp", "from": []}})
            )),
            ["/firewall/allow/udp"]
        );
        let mut s = spec(json!({}));
        s["firewall"]["default-incoming"] = json!("allow");
        assert_eq!(paths(s), ["/firewall/default-incoming"]);
        let mut s = spec(json!({"http": rule("80", &[], false)}));
        s["sites"] = json!({});
        assert_eq!(paths(s), ["/firewall/allow/http"]);
    }

    #[test]
    fn missing_firewall_by_tier() {
        let mut s = spec(json!({}));
        s["firewall"] = json!(null);
        let f = check(&input(s.clone()));
        assert_eq!(
            (f[0].path.as_deref(), f[0].severity),
            (Some("/firewall"), None)
        );
        let mut i = input(s.clone());
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Warn));
        i.tier = Tier::Development;
        assert!(check(&i).is_empty());
        s["targets"] = json!(["k8s"]);
        assert!(check(&input(s)).is_empty());
    }

    #[test]
    fn public_ports_setting() {
        let mut i = input(spec(
            json!({"udp": {"port": "443", "proto": "udp", "from": []}}),
        ));
        assert_eq!(check(&i).len(), 1);
        i.policy.settings = json!({"public-ports": ["80/tcp", "443/tcp", "443/udp"]});
        assert!(check(&i).is_empty());
    }

    /// A site is public by declaration: the port nginx serves it on is no finding by its
    /// number (issue 13: Flower's site on 5555 was refused, the same exposure on 443 passed).
    #[test]
    fn site_ports_are_public_whatever_their_number() {
        let mut i = input(spec(json!({"5555": rule("5555", &[], false)})));
        assert_eq!(check(&i).len(), 1, "nothing listens on 5555 yet");
        i.spec["sites"]["flower.example"] = json!({"listen": {"http": 80, "https": 5555}});
        assert!(check(&i).is_empty());
        // With TLS off the https port is not served: still a finding.
        i.spec["sites"]["flower.example"]["tls"] = json!({"mode": "off"});
        assert_eq!(check(&i).len(), 1);
    }
}
