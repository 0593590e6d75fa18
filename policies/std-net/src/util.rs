//! Addresses, published ports and firewall rules.

use kiln_policy_sdk::scan::{YamlNode, mentions, yaml_only};
use kiln_policy_sdk::{Artifact, Input};
use serde_json::Value;

/// Whether the environment renders `target`.
pub fn has_target(input: &Input, target: &str) -> bool {
    input
        .pointer("/targets")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == target))
}

/// Loopback: reachable from the same host only.
pub fn is_loopback(addr: &str) -> bool {
    let a = addr.trim().trim_start_matches('[').trim_end_matches(']');
    a == "localhost" || a == "::1" || a.starts_with("127.")
}

/// Loopback or a private network (RFC 1918, RFC 4193, CGNAT, link-local): not the internet.
pub fn is_private(addr: &str) -> bool {
    let a = addr
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if is_loopback(&a) {
        return true;
    }
    let octets: Vec<u8> = a.split('.').filter_map(|p| p.parse().ok()).collect();
    if octets.len() == 4 && a.split('.').count() == 4 {
        return matches!(
            (octets[0], octets[1]),
            (10, _) | (172, 16..=31) | (192, 168) | (100, 64..=127) | (169, 254)
        );
    }
    a.starts_with("fc") || a.starts_with("fd") || a.starts_with("fe80:")
}

/// Every address, or a public one.
pub fn is_public(addr: &str) -> bool {
    let a = addr.trim().trim_start_matches('-');
    matches!(a, "*" | "0.0.0.0" | "::" | "[::]" | "::*" | "") || !is_private(a)
}

/// The well-known ports of the datastores and brokers this policy protects.
pub const DATASTORE_PORTS: &[(u16, &str)] = &[
    (5432, "PostgreSQL"),
    (6432, "pgbouncer"),
    (6379, "Redis"),
    (5672, "AMQP"),
    (5555, "Flower"),
];

/// The names and ports of the spec's datastores: postgres, their poolers, redis.
pub fn datastores(input: &Input) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for (name, pg) in input.entries("/postgres") {
        out.push((
            name.to_owned(),
            pg.get("port").and_then(Value::as_u64).unwrap_or(5432) as u16,
        ));
        if let Some(p) = pg.get("pooler").filter(|p| p.is_object()) {
            let pname = p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            out.push((
                pname,
                p.get("port").and_then(Value::as_u64).unwrap_or(6432) as u16,
            ));
        }
    }
    for (name, r) in input.entries("/redis") {
        out.push((
            name.to_owned(),
            r.get("port").and_then(Value::as_u64).unwrap_or(6379) as u16,
        ));
    }
    out
}

/// One published port of a compose service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub service: String,
    /// The host address it binds (`""` for every interface).
    pub host_ip: String,
    /// The host port (`None`: Docker picks one).
    pub host_port: Option<u16>,
    pub container_port: Option<u16>,
    pub proto: String,
    pub line: u32,
}

fn port(text: &str) -> Option<u16> {
    // A range publishes its first port and more; the first is enough to judge it.
    text.trim().split('-').next()?.trim().parse().ok()
}

/// Parses compose's short syntax: `[IP:][HOST:]CONTAINER[/PROTO]`, IPv6 in brackets.
fn short(text: &str) -> (String, Option<u16>, Option<u16>, String) {
    let (body, proto) = match text.rsplit_once('/') {
        Some((b, p)) => (b, p.to_owned()),
        None => (text, "tcp".to_owned()),
    };
    let (ip, rest) = match body.strip_prefix('[') {
        Some(v6) => match v6.split_once("]:") {
            Some((ip, rest)) => (ip.to_owned(), rest),
            None => (String::new(), body),
        },
        None => (String::new(), body),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    match (ip.is_empty(), parts.as_slice()) {
        (true, [c]) => (String::new(), None, port(c), proto),
        (true, [h, c]) => (String::new(), port(h), port(c), proto),
        (true, [ip, h, c]) => ((*ip).to_owned(), port(h), port(c), proto),
        (false, [h, c]) => (ip, port(h), port(c), proto),
        (false, [c]) => (ip, None, port(c), proto),
        _ => (String::new(), None, None, proto),
    }
}

/// Every `ports:` entry of every compose file among the artifacts: every YAML file with
/// `services` (a file that cannot mention `services` and `ports` is not parsed).
pub fn compose_publishes(artifacts: &[Artifact]) -> Vec<(&Artifact, Publish)> {
    let mut out = Vec::new();
    for a in artifacts {
        if !(a.path.ends_with(".yaml") || a.path.ends_with(".yml"))
            || !mentions(&a.text, "services")
            || !mentions(&a.text, "ports")
        {
            continue;
        }
        // Only `services.*.ports` is read.
        let doc = yaml_only(&a.text, &[&["services", "*", "ports"]]);
        let Some(services) = doc.root().get("services") else {
            continue;
        };
        for service in services.entries() {
            let name = service.key().unwrap_or("");
            for entry in service.items("ports") {
                let publish = if entry.key().is_some() {
                    let get = |k: &str| entry.get(k).map(YamlNode::text).unwrap_or("");
                    Publish {
                        service: name.to_owned(),
                        host_ip: get("host_ip").to_owned(),
                        host_port: port(get("published")),
                        container_port: port(get("target")),
                        proto: match get("protocol") {
                            "" => "tcp".to_owned(),
                            p => p.to_owned(),
                        },
                        line: entry.line(),
                    }
                } else {
                    let (host_ip, host_port, container_port, proto) = short(entry.text());
                    Publish {
                        service: name.to_owned(),
                        host_ip,
                        host_port,
                        container_port,
                        proto,
                        line: entry.line(),
                    }
                };
                out.push((a, publish));
            }
        }
    }
    out
}

/// A firewall rule's ports: `"22"`, `"8000:8010"` (ufw ranges), or a service name ufw knows.
pub fn rule_ports(rule: &Value) -> Option<(u16, u16)> {
    let port = rule.get("port").and_then(Value::as_str)?;
    let named = match port {
        "ssh" => Some(22),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    if let Some(p) = named {
        return Some((p, p));
    }
    match port.split_once(':') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let p = port.trim().parse().ok()?;
            Some((p, p))
        }
    }
}

/// Whether a firewall rule lets anyone in: no `from`, or `from` naming the whole internet.
pub fn rule_is_public(rule: &Value) -> bool {
    let from: Vec<&str> = rule
        .get("from")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    from.is_empty()
        || from
            .iter()
            .any(|f| matches!(*f, "0.0.0.0/0" | "::/0" | "any" | "0.0.0.0" | "::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for a in ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(a) && is_private(a) && !is_public(a), "{a}");
        }
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert!(!is_loopback(a) && is_private(a) && !is_public(a), "{a}");
        }
        for a in [
            "0.0.0.0",
            "*",
            "::",
            "203.0.113.5",
            "172.32.0.1",
            "2001:db8::1",
            "-::*",
        ] {
            assert!(is_public(a), "{a}");
        }
    }

    #[test]
    fn short_syntax() {
        assert_eq!(
            short("6379"),
            (String::new(), None, Some(6379), "tcp".into())
        );
        assert_eq!(
            short("6379:6379"),
            (String::new(), Some(6379), Some(6379), "tcp".into())
        );
        assert_eq!(
            short("127.0.0.1:5432:5432"),
            ("127.0.0.1".into(), Some(5432), Some(5432), "tcp".into())
        );
        assert_eq!(
            short("[::1]:80:80/udp"),
            ("::1".into(), Some(80), Some(80), "udp".into())
        );
        assert_eq!(
            short("8000-8010:8000-8010"),
            (String::new(), Some(8000), Some(8000), "tcp".into())
        );
    }

    #[test]
    fn compose_ports() {
        let a = Artifact {
            target: "compose".into(),
            path: "compose/compose.yaml".into(),
            text: "services:\n  cache:\n    ports:\n      - \"6379:6379\"\n      - target: 6380\n        published: 6380\n        host_ip: 127.0.0.1\n".into(),
        };
        let p = compose_publishes(std::slice::from_ref(&a));
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].1.host_port, p[0].1.line), (Some(6379), 4));
        assert_eq!(
            (p[1].1.host_ip.as_str(), p[1].1.container_port, p[1].1.line),
            ("127.0.0.1", Some(6380), 5)
        );
    }

    #[test]
    fn firewall_rules() {
        let r = serde_json::json!({"port": "8000:8010", "from": ["10.0.0.0/8"]});
        assert_eq!(rule_ports(&r), Some((8000, 8010)));
        assert!(!rule_is_public(&r));
        assert!(rule_is_public(
            &serde_json::json!({"port": "ssh", "from": []})
        ));
        assert_eq!(
            rule_ports(&serde_json::json!({"port": "https"})),
            Some((443, 443))
        );
    }
}
