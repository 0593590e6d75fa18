//! `tls.protocols`: a TLS listener accepts protocol versions older than TLS 1.2.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "tls.protocols",
    default_severity: Severity::Error,
    summary: "a TLS listener accepts SSLv3, TLS 1.0 or TLS 1.1",
    what: "Checks the protocol versions of every TLS listener in the spec: each site's \
           `tls { protocols … }` (nginx `ssl_protocols`) must be a subset of TLSv1.2 and \
           TLSv1.3 (Mozilla's intermediate profile), or TLSv1.3 alone for a site whose profile \
           is `modern` (a modern site that also allows TLSv1.2 is a warning). The same floor \
           applies to PostgreSQL's `ssl_min_protocol_version` (and `ssl_max_protocol_version`) \
           and Redis's `tls-protocols` in their `settings`. SSLv2, SSLv3, TLSv1 and TLSv1.1 \
           are errors in every tier.",
    why: "SSLv3, TLS 1.0 and TLS 1.1 are deprecated (RFC 8996) and broken in practice: POODLE, \
          BEAST, and no AEAD cipher suites. No browser still in support needs them, and \
          PCI DSS forbids them. Allowing them only helps an attacker who can force a \
          downgrade.",
    example: "site \"shop.example.com\" {\n    tls acme {\n        protocols \"TLSv1.1\" \"TLSv1.2\" \"TLSv1.3\"\n    }\n}",
    instead: "site \"shop.example.com\" {\n    tls acme {\n        protocols \"TLSv1.2\" \"TLSv1.3\"\n    }\n}",
    upstream: &["MZ 6.0", "MZ postgresql.js", "MZ redis.js"],
};

/// Protocol versions below the floor, in any spelling nginx, PostgreSQL and Redis accept.
fn obsolete(protocol: &str) -> bool {
    matches!(
        protocol.to_ascii_lowercase().as_str(),
        "sslv2" | "sslv3" | "tlsv1" | "tlsv1.0" | "tlsv1.1"
    )
}

fn list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, site) in input.sites() {
        if site.pointer("/tls/mode").and_then(Value::as_str) == Some("off") {
            continue;
        }
        let protocols: Vec<&str> = site
            .pointer("/tls/protocols")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let at = json_pointer(["sites", key, "tls", "protocols"]);
        let bad: Vec<&str> = protocols.iter().copied().filter(|p| obsolete(p)).collect();
        if !bad.is_empty() {
            out.push(
                Finding::new(
                    RULE.id,
                    format!("site `{key}` accepts {} (older than TLS 1.2)", list(&bad)),
                )
                .at(at)
                .help("write `protocols \"TLSv1.2\" \"TLSv1.3\"` (Mozilla intermediate), or leave it to the nginx-site preset"),
            );
            continue;
        }
        let modern = site.pointer("/tls/profile").and_then(Value::as_str) == Some("modern");
        if modern && protocols.iter().any(|p| *p != "TLSv1.3") {
            out.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "site `{key}` has profile `modern` but also accepts {}",
                        list(
                            &protocols
                                .iter()
                                .copied()
                                .filter(|p| *p != "TLSv1.3")
                                .collect::<Vec<_>>()
                        )
                    ),
                )
                .at(at)
                .help("write `protocols \"TLSv1.3\"`, or use `profile intermediate`")
                .severity(Severity::Warn),
            );
        }
    }
    for (name, pg) in input.entries("/postgres") {
        for setting in ["ssl_min_protocol_version", "ssl_max_protocol_version"] {
            let value = pg
                .pointer(&format!("/settings/{setting}"))
                .and_then(Value::as_str);
            if let Some(v) = value.filter(|v| obsolete(v.trim_matches('\''))) {
                out.push(
                    Finding::new(
                        RULE.id,
                        format!("postgres `{name}` sets {setting} to `{v}`, older than TLS 1.2"),
                    )
                    .at(json_pointer(["postgres", name, "settings", setting]))
                    .help(format!("set `{setting} \"TLSv1.2\"` (or remove it: PostgreSQL 12 and later default to TLSv1.2)")),
                );
            }
        }
    }
    for (name, redis) in input.entries("/redis") {
        if let Some(v) = redis
            .pointer("/settings/tls-protocols")
            .and_then(Value::as_str)
        {
            let bad: Vec<&str> = v.split_whitespace().filter(|p| obsolete(p)).collect();
            if !bad.is_empty() {
                out.push(
                    Finding::new(
                        RULE.id,
                        format!(
                            "redis `{name}` accepts {} in tls-protocols (older than TLS 1.2)",
                            list(&bad)
                        ),
                    )
                    .at(json_pointer(["redis", name, "settings", "tls-protocols"]))
                    .help("write `tls-protocols \"TLSv1.2 TLSv1.3\"`"),
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

    fn site(protocols: &[&str], profile: &str, mode: &str) -> Value {
        json!({"sites": {"a.example": {"tls": {"mode": mode, "profile": profile, "protocols": protocols}}}})
    }

    #[test]
    fn sites() {
        assert!(
            check(&input(site(
                &["TLSv1.2", "TLSv1.3"],
                "intermediate",
                "acme"
            )))
            .is_empty()
        );
        assert!(check(&input(site(&["TLSv1.3"], "modern", "acme"))).is_empty());
        assert!(check(&input(site(&["TLSv1"], "intermediate", "off"))).is_empty());
        let f = check(&input(site(
            &["TLSv1", "TLSv1.1", "TLSv1.2"],
            "intermediate",
            "files",
        )));
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].message,
            "site `a.example` accepts `TLSv1`, `TLSv1.1` (older than TLS 1.2)"
        );
        assert_eq!(f[0].path.as_deref(), Some("/sites/a.example/tls/protocols"));
        assert_eq!(
            check(&input(site(&["SSLv3", "TLSv1.3"], "modern", "acme"))).len(),
            1
        );
        let f = check(&input(site(&["TLSv1.2", "TLSv1.3"], "modern", "acme")));
        assert_eq!(f[0].severity, Some(Severity::Warn));
    }

    #[test]
    fn postgres_and_redis() {
        let spec = json!({
            "postgres": {"db": {"settings": {"ssl_min_protocol_version": "TLSv1.1"}}, "ok": {"settings": {"ssl_min_protocol_version": "TLSv1.2"}}},
            "redis": {"cache": {"settings": {"tls-protocols": "TLSv1.1 TLSv1.2"}}, "ok": {"settings": {"tls-protocols": "TLSv1.3"}}},
        });
        let paths: Vec<String> = check(&input(spec))
            .into_iter()
            .map(|f| f.path.unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/postgres/db/settings/ssl_min_protocol_version",
                "/redis/cache/settings/tls-protocols"
            ]
        );
    }
}
