//! `net.docker-ufw-bypass`: compose publishes a port the host firewall does not allow.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Artifact, Finding, Input, Severity, json_pointer};
use serde_json::Value;

use crate::util::{
    Publish, compose_publishes, has_target, is_loopback, rule_is_public, rule_ports,
};

pub const RULE: RuleDocs = RuleDocs {
    id: "net.docker-ufw-bypass",
    default_severity: Severity::Error,
    summary: "compose publishes a port that the host firewall does not allow for everyone",
    what: "When the environment has a host `firewall` and the compose target, every port compose \
           publishes on a non-loopback address must be allowed in the firewall for everyone. \
           kiln's compose file publishes nginx's `listen` ports of each site (HTTP, and HTTPS \
           with TLS), so a site listening on a port the firewall does not open is reported at \
           the site; any other non-loopback `ports:` entry in the rendered compose files is \
           reported at its line. A port the firewall allows only `from` some addresses is \
           reported too: Docker ignores that restriction.",
    why: "Docker publishes ports with DNAT rules in the nat table, before ufw's INPUT chain \
          sees the packet, so ufw's default deny and its `from` restrictions do not apply to \
          published ports. The firewall then documents a policy the host does not enforce, \
          and a port meant to stay closed is open to the internet.",
    example: "site \"shop.example.com\" {\n    listen {\n        https 8443\n    }\n}",
    instead: "site \"shop.example.com\" {\n    listen {\n        https 443\n    }\n}",
    upstream: &["DD Docker and ufw", "ODC rule 5a"],
};

/// How the firewall treats `port`: `None` not allowed, `Some((rule, public))` allowed by it.
fn allowed<'a>(firewall: &'a Value, port: u16, proto: &str) -> Option<(&'a str, bool)> {
    let rules = firewall.get("allow")?.as_object()?;
    let mut best: Option<(&str, bool)> = None;
    for (key, rule) in rules {
        let rule_proto = rule.get("proto").and_then(Value::as_str).unwrap_or("tcp");
        let Some((lo, hi)) = rule_ports(rule) else {
            continue;
        };
        if rule_proto == proto && (lo..=hi).contains(&port) {
            let public = rule_is_public(rule);
            if public {
                return Some((key, true));
            }
            best.get_or_insert((key, false));
        }
    }
    best
}

pub fn check(input: &Input) -> Vec<Finding> {
    check_with(input, &compose_publishes(&input.artifacts))
}

/// `check`, with the compose files' published ports already read (`compose_publishes`).
pub fn check_with(input: &Input, publishes: &[(&Artifact, Publish)]) -> Vec<Finding> {
    if !has_target(input, "compose") {
        return Vec::new();
    }
    let Some(firewall) = input.pointer("/firewall").filter(|f| f.is_object()) else {
        return Vec::new();
    };
    let backend = firewall
        .get("backend")
        .and_then(Value::as_str)
        .unwrap_or("ufw");
    let mut out = Vec::new();
    let mut predicted: Vec<u16> = Vec::new();
    for (key, site) in input.sites() {
        let tls = site.pointer("/tls/mode").and_then(Value::as_str) != Some("off");
        for (which, on) in [("http", true), ("https", tls)] {
            let Some(port) = site
                .pointer(&format!("/listen/{which}"))
                .and_then(Value::as_u64)
            else {
                continue;
            };
            let port = port as u16;
            if !on || predicted.contains(&port) {
                continue;
            }
            predicted.push(port);
            let at = json_pointer(["sites", key, "listen", which]);
            match allowed(firewall, port, "tcp") {
                Some((_, true)) => {}
                None => out.push(
                    Finding::new(
                        RULE.id,
                        format!("compose publishes port {port} (site `{key}`) on every interface, but {backend} does not allow it; Docker's NAT bypasses {backend}"),
                    )
                    .at(at)
                    .help(format!("listen on a port the firewall opens (80, 443), or open it with `allow {port}` in `firewall`")),
                ),
                Some((rule, false)) => out.push(
                    Finding::new(
                        RULE.id,
                        format!("compose publishes port {port} (site `{key}`) to everyone, though {backend} allows it only `from` some addresses; Docker's NAT bypasses that"),
                    )
                    .at(at)
                    .help("restrict the site in nginx (`allow` on its locations) instead of the firewall, or serve it on a loopback-bound port behind a VPN")
                    .related(json_pointer(["firewall", "allow", rule]), "the firewall rule Docker bypasses"),
                ),
            }
        }
    }
    for (a, p) in publishes {
        if is_loopback(&p.host_ip) {
            continue;
        }
        let Some(port) = p.host_port.or(p.container_port) else {
            continue;
        };
        if p.proto == "tcp" && predicted.contains(&port) {
            continue;
        }
        let verdict = allowed(firewall, port, &p.proto);
        if matches!(verdict, Some((_, true))) {
            continue;
        }
        out.push(
            Finding::new(
                RULE.id,
                format!("compose publishes port {port}/{} of `{}` on a non-loopback address that {backend} does not allow for everyone; Docker's NAT bypasses {backend}", p.proto, p.service),
            )
            .at_artifact(a.path.clone(), p.line)
            .help("bind it to loopback (`\"127.0.0.1:PORT:PORT\"`) or stop publishing it"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::{input, parse_input};
    use serde_json::json;

    fn spec(https: u16, allow: Value) -> Value {
        json!({
            "targets": ["compose"],
            "sites": {"a.example": {"tls": {"mode": "acme"}, "listen": {"http": 80, "https": https}}},
            "firewall": {"backend": "ufw", "allow": allow},
        })
    }

    fn web() -> Value {
        json!({"http": {"port": "80", "proto": "tcp", "from": []}, "https": {"port": "443", "proto": "tcp", "from": []}})
    }

    #[test]
    fn published_site_ports() {
        assert!(check(&input(spec(443, web()))).is_empty());
        let f = check(&input(spec(8443, web())));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path.as_deref(), Some("/sites/a.example/listen/https"));
        let mut allow = web();
        allow["8443"] = json!({"port": "8443", "proto": "tcp", "from": ["10.0.0.0/8"]});
        let f = check(&input(spec(8443, allow.clone())));
        assert_eq!(f[0].related[0].path, "/firewall/allow/8443");
        allow["8443"]["from"] = json!([]);
        assert!(check(&input(spec(8443, allow))).is_empty());
    }

    #[test]
    fn without_firewall_or_compose() {
        let mut s = spec(8443, web());
        s["firewall"] = json!(null);
        assert!(check(&input(s)).is_empty());
        let mut s = spec(8443, web());
        s["targets"] = json!(["systemd"]);
        assert!(check(&input(s)).is_empty());
    }

    #[test]
    fn other_published_ports() {
        let mut i = parse_input(include_str!(
            "../../../testdata/inputs/clean-production.json"
        ));
        assert!(check(&i).is_empty());
        let a = i
            .artifacts
            .iter_mut()
            .find(|a| a.path == "compose/compose.yaml")
            .unwrap();
        a.text = a.text.replace(
            "  worker:\n    image:",
            "  worker:\n    ports:\n      - \"5555:5555\"\n      - \"127.0.0.1:8080:8080\"\n      - \"443:443/udp\"\n    image:",
        );
        let f = check(&i);
        let messages: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("compose publishes port 5555/tcp of `worker`"));
        assert!(messages[1].starts_with("compose publishes port 443/udp of `worker`"));
    }
}
