//! The host firewall of the systemd target, from `firewall { … }`: inbound denied but for the
//! allowed ports, outbound open.
//!
//! - `backend ufw` → `firewall/ufw-<project>.sh`, the ufw commands in order (ufw keeps its
//!   own rule files; a script of its commands is what an operator can read and re-run).
//! - `backend nftables` → `firewall/<project>.nft`, one `inet` table of its own that the file
//!   replaces atomically (`nft -f`), so it never touches another table.
//!
//! `limit` is ufw's: a source opening 6 or more connections in 30 seconds is refused. nftables
//! gets a per-source meter of its own (a dynamic set per address family): more than 6 new
//! connections a minute from one address, after a burst of 5, are dropped.

use kiln_core::Artifact;
use kiln_core::model::{Firewall, FirewallRule, Model, pointer};

use crate::{Writer, header_text};

/// The firewall file of the environment, when it has a firewall.
pub(crate) fn emit(model: &Model) -> Option<Artifact> {
    let fw = model.firewall.as_ref()?;
    Some(match fw.backend.as_str() {
        "nftables" => nftables(model, fw),
        _ => ufw(model, fw),
    })
}

fn rule_pointer(key: &str) -> String {
    pointer(&["firewall", "allow", key])
}

/// `'text'` for sh: single quotes, each `'` closed, escaped and reopened.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn project_part(model: &Model) -> String {
    crate::file_part(&model.project.name)
}

fn ufw(model: &Model, fw: &Firewall) -> Artifact {
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line(
        "# The host firewall (ufw): run as root on the host. It adds the",
        &["/firewall"],
    );
    w.line(
        "# rules below (ufw skips a rule it has already) and enables ufw; rules added by hand stay.",
        &["/firewall"],
    );
    w.line("set -eu", &[]);
    w.line(
        format!("ufw default {} incoming", fw.default_incoming),
        &["/firewall"],
    );
    w.line("ufw default allow outgoing", &["/firewall"]);
    for (key, rule) in &fw.allow {
        let rp = rule_pointer(key);
        let verb = if rule.limit { "limit" } else { "allow" };
        let port = rule.port.replace('-', ":");
        let sources: Vec<&str> = if rule.from.is_empty() {
            vec!["any"]
        } else {
            rule.from.iter().map(String::as_str).collect()
        };
        for from in sources {
            let mut cmd = format!(
                "ufw {verb} proto {} from {from} to any port {port}",
                rule.proto
            );
            if let Some(c) = &rule.comment {
                // ufw refuses an ASCII apostrophe in a comment ("Invalid syntax").
                let c = c.replace('\'', "\u{2019}").replace(['\n', '\r'], " ");
                cmd.push_str(&format!(" comment {}", sh_quote(&c)));
            }
            w.line(cmd, &[&rp]);
        }
    }
    w.line("ufw --force enable", &["/firewall"]);
    w.finish(format!("firewall/ufw-{}.sh", project_part(model)))
}

/// The nftables text of a comment: nft strings have no escapes, so `"` becomes `'`.
fn nft_comment(c: &str) -> String {
    format!(
        "comment \"{}\"",
        c.replace('"', "'").replace(['\n', '\r'], " ")
    )
}

fn nftables(model: &Model, fw: &Firewall) -> Artifact {
    let table = format!("kiln_{}", project_part(model).replace(['-', '.'], "_"));
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line(
        format!(
            "# The host firewall (nftables): install as /etc/nftables.d/{}.nft and include it from",
            project_part(model)
        ),
        &["/firewall"],
    );
    w.line(
        "# /etc/nftables.conf, or load it with `nft -f`. It replaces only its own table.",
        &["/firewall"],
    );
    w.line(format!("table inet {table}"), &[]);
    w.line(format!("delete table inet {table}"), &[]);
    w.line(format!("table inet {table} {{"), &["/firewall"]);
    let limited: Vec<(&String, &FirewallRule)> = fw.allow.iter().filter(|(_, r)| r.limit).collect();
    for (key, _) in &limited {
        let set = set_name(key);
        for (family, ty) in [("4", "ipv4_addr"), ("6", "ipv6_addr")] {
            w.line(
                format!("    set {set}{family} {{ type {ty}; flags dynamic; timeout 30s; }}"),
                &[&rule_pointer(key)],
            );
        }
    }
    w.line("    chain input {", &["/firewall"]);
    w.line(
        format!(
            "        type filter hook input priority filter; policy {};",
            if fw.default_incoming == "allow" {
                "accept"
            } else {
                "drop"
            }
        ),
        &["/firewall"],
    );
    for line in [
        "ct state established,related accept",
        "ct state invalid drop",
        "iif \"lo\" accept",
        "# ICMP: path MTU discovery, and IPv6 neighbour discovery, which IPv6 cannot do without",
        "meta l4proto { icmp, ipv6-icmp } accept",
    ] {
        w.line(format!("        {line}"), &[]);
    }
    for (key, rule) in &fw.allow {
        let rp = rule_pointer(key);
        let port = rule.port.replace(':', "-");
        let comment = rule
            .comment
            .as_deref()
            .map(|c| format!(" {}", nft_comment(c)))
            .unwrap_or_default();
        let (v4, v6): (Vec<&str>, Vec<&str>) = rule
            .from
            .iter()
            .map(String::as_str)
            .partition(|c| !c.contains(':'));
        let matches: Vec<String> = if rule.from.is_empty() {
            vec![String::new()]
        } else {
            let mut m = Vec::new();
            if !v4.is_empty() {
                m.push(format!("ip saddr {{ {} }} ", v4.join(", ")));
            }
            if !v6.is_empty() {
                m.push(format!("ip6 saddr {{ {} }} ", v6.join(", ")));
            }
            m
        };
        for m in matches {
            if rule.limit {
                let set = set_name(key);
                for (family, addr) in [("4", "ip"), ("6", "ip6")] {
                    if (family == "4" && m.starts_with("ip6 "))
                        || (family == "6" && m.starts_with("ip saddr"))
                    {
                        continue;
                    }
                    w.line(
                        format!(
                            "        {m}{} dport {port} ct state new add @{set}{family} {{ {addr} saddr limit rate over 6/minute burst 5 packets }} drop",
                            rule.proto
                        ),
                        &[&rp],
                    );
                }
            }
            w.line(
                format!("        {m}{} dport {port} accept{comment}", rule.proto),
                &[&rp],
            );
        }
    }
    w.line("    }", &[]);
    w.line("}", &[]);
    w.finish(format!("firewall/{}.nft", project_part(model)))
}

/// The dynamic set that counts new connections of a `limit` rule, per address family.
fn set_name(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("limit_{s}_")
}
