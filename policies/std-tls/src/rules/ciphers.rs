//! `tls.ciphers`: a TLS listener offers broken cipher suites, or ones without forward
//! secrecy or authenticated encryption.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "tls.ciphers",
    default_severity: Severity::Error,
    summary: "a TLS listener offers broken cipher suites, or suites without forward secrecy or AEAD",
    what: "Reads the OpenSSL cipher list of every TLS listener: each site's `tls { ciphers … }` \
           (nginx `ssl_ciphers`) and PostgreSQL's `ssl_ciphers` setting. A suite or class that \
           is broken is an error: RC4, DES and 3DES, MD5, NULL, EXPORT, anonymous key exchange \
           (ADH, AECDH, `aNULL` not excluded), RC2, IDEA, SEED, and the `ALL`, `LOW`, `MEDIUM` \
           classes. Suites Mozilla's intermediate profile leaves out are a warning: static RSA \
           key exchange (no forward secrecy), CBC-mode suites (no AEAD), and the `HIGH` or \
           `DEFAULT` classes, which admit both. An entry excluded with `!` or `-` is fine. \
           TLS 1.3's suites are not configured here and are always sound.",
    why: "The cipher list decides what a TLS 1.2 client can negotiate. RC4, 3DES (SWEET32) and \
          export suites are broken outright; without ECDHE/DHE key exchange, whoever obtains \
          the server's key later decrypts every recorded session; CBC suites are the ones \
          Lucky13 and POODLE-style padding oracles keep finding. Mozilla's intermediate list \
          (the nginx-site preset's) is ECDHE with AES-GCM or ChaCha20-Poly1305 only, and every \
          browser still in support speaks it.",
    example: "site \"shop.example.com\" {\n    tls acme {\n        ciphers \"HIGH:!aNULL:!MD5:RC4-SHA\"\n    }\n}",
    instead: "site \"shop.example.com\" {\n    tls acme {\n        ciphers \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305\"\n    }\n}",
    upstream: &["MZ 6.0", "MZ postgresql.js"],
};

/// What is wrong with one entry of an OpenSSL cipher list, if anything: `Some((true, …))`
/// broken, `Some((false, …))` short of Mozilla's intermediate profile.
fn judge(entry: &str) -> Option<(bool, &'static str)> {
    let e = entry.trim();
    if e.is_empty() || e.starts_with('!') || e.starts_with('-') || e.starts_with('@') {
        return None;
    }
    let e = e.trim_start_matches('+');
    let u = e.to_ascii_uppercase();
    let has = |s: &str| u.split(['-', '+']).any(|p| p == s) || u == s;
    if matches!(
        u.as_str(),
        "ALL"
            | "COMPLEMENTOFALL"
            | "LOW"
            | "MEDIUM"
            | "EXP"
            | "EXPORT"
            | "ANULL"
            | "ENULL"
            | "NULL"
    ) || has("RC4")
        || has("DES")
        || has("3DES")
        || u.contains("DES-CBC")
        || has("MD5")
        || has("NULL")
        || u.contains("EXPORT")
        || u.starts_with("EXP-")
        || has("ADH")
        || has("AECDH")
        || has("RC2")
        || has("IDEA")
        || has("SEED")
    {
        return Some((true, "broken"));
    }
    if matches!(u.as_str(), "HIGH" | "DEFAULT") {
        return Some((false, "a class that admits static-RSA and CBC suites"));
    }
    // A named suite: forward secrecy needs ECDHE/DHE/EDH, AEAD needs GCM, CCM or ChaCha20.
    if u.contains('-') && (u.contains("AES") || u.contains("CAMELLIA") || u.contains("ARIA")) {
        let fs = u.starts_with("ECDHE") || u.starts_with("DHE") || u.starts_with("EDH");
        let aead = u.contains("GCM") || u.contains("CCM") || u.contains("CHACHA20");
        if !fs {
            return Some((false, "no forward secrecy (static RSA key exchange)"));
        }
        if !aead {
            return Some((false, "no AEAD (CBC mode)"));
        }
    } else if u.starts_with("AES") && !u.contains("GCM") && !u.contains("CCM") {
        return Some((false, "no forward secrecy (static RSA key exchange)"));
    }
    None
}

fn judge_list(list: &str) -> (Vec<String>, Vec<String>) {
    let (mut broken, mut weak) = (Vec::new(), Vec::new());
    for entry in list.split([':', ' ', ',']) {
        match judge(entry) {
            Some((true, why)) => broken.push(format!("`{}` ({why})", entry.trim())),
            Some((false, why)) => weak.push(format!("`{}` ({why})", entry.trim())),
            None => {}
        }
    }
    (broken, weak)
}

fn findings(out: &mut Vec<Finding>, what: &str, at: String, list: &str) {
    let (broken, weak) = judge_list(list);
    if !broken.is_empty() {
        out.push(
            Finding::new(RULE.id, format!("{what} offers {}", broken.join(", ")))
                .at(&at)
                .help("use Mozilla's intermediate list (the nginx-site preset's): ECDHE with AES-GCM or ChaCha20-Poly1305"),
        );
    } else if !weak.is_empty() {
        out.push(
            Finding::new(RULE.id, format!("{what} offers {}", weak.join(", ")))
                .at(&at)
                .help("keep ECDHE/DHE suites with AES-GCM or ChaCha20-Poly1305 (Mozilla intermediate)")
                .severity(Severity::Warn),
        );
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, site) in input.sites() {
        if site.pointer("/tls/mode").and_then(Value::as_str) == Some("off") {
            continue;
        }
        if let Some(list) = site.pointer("/tls/ciphers").and_then(Value::as_str) {
            findings(
                &mut out,
                &format!("site `{key}`"),
                json_pointer(["sites", key, "tls", "ciphers"]),
                list,
            );
        }
    }
    for (name, pg) in input.entries("/postgres") {
        if let Some(list) = pg.pointer("/settings/ssl_ciphers").and_then(Value::as_str) {
            findings(
                &mut out,
                &format!("postgres `{name}`"),
                json_pointer(["postgres", name, "settings", "ssl_ciphers"]),
                list,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judged() {
        let mozilla = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256";
        assert_eq!(judge_list(mozilla), (vec![], vec![]));
        let (b, w) = judge_list("HIGH:!aNULL:!MD5");
        assert!(b.is_empty() && w.len() == 1, "{b:?} {w:?}");
        for broken in [
            "RC4-SHA",
            "DES-CBC3-SHA",
            "ALL",
            "EXP-RC4-MD5",
            "ADH-AES128-SHA",
            "aNULL",
            "NULL-SHA256",
            "IDEA-CBC-SHA",
        ] {
            assert_eq!(judge_list(broken).0.len(), 1, "{broken}");
        }
        for weak in [
            "AES128-GCM-SHA256",
            "ECDHE-RSA-AES256-SHA384",
            "AES256-SHA",
            "DEFAULT",
        ] {
            let (b, w) = judge_list(weak);
            assert!(b.is_empty() && w.len() == 1, "{weak}: {b:?} {w:?}");
        }
    }
}
