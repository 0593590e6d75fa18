//! `http.baseline-headers`: an HTTPS site lacks one of OWASP's baseline response headers.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity};

use crate::util::{header, header_pointer, tls_on};

pub const RULE: RuleDocs = RuleDocs {
    id: "http.baseline-headers",
    default_severity: Severity::Warn,
    summary: "an HTTPS site lacks a baseline security header, or sends a weak value",
    what: "For every site with TLS, the headers nginx adds to every response (`always`, so \
           error pages and static files carry them too) must include: \
           `X-Content-Type-Options: nosniff`; `X-Frame-Options` `DENY` or `SAMEORIGIN`, or a \
           Content-Security-Policy whose `frame-ancestors` names no wildcard (`'none'`, \
           `'self'`, named origins); a `Referrer-Policy` of \
           `no-referrer`, `same-origin` or `strict-origin-when-cross-origin`; \
           `Cross-Origin-Opener-Policy: same-origin`; a `Content-Security-Policy`; and a \
           `Permissions-Policy`. A CSP whose script sources (`script-src`, else `default-src`) \
           allow `'unsafe-inline'` without a nonce or hash is reported as info. The nginx-site \
           preset sets all of them; this rule catches a site that removes or weakens one.",
    why: "These headers turn whole classes of attack off in the browser: MIME sniffing of \
          uploads into scripts, clickjacking through frames, leaking full URLs (with tokens in \
          them) to other sites, cross-window attacks, and injected script. Set on nginx with \
          `always`, they also cover 4xx/5xx responses and static files that never reach \
          Django's middleware.",
    example: "site \"shop.example.com\" {\n    header Referrer-Policy \"unsafe-url\"\n}",
    instead: "site \"shop.example.com\" {\n    header Referrer-Policy \"strict-origin-when-cross-origin\"\n}",
    upstream: &["OS headers_add.json", "DJ W006", "DJ W019", "DJ W022"],
};

const REFERRER_POLICIES: [&str; 3] = [
    "no-referrer",
    "same-origin",
    "strict-origin-when-cross-origin",
];

/// The sources of one CSP directive, or `None` when the policy does not have it.
fn csp_directive<'a>(csp: &'a str, name: &str) -> Option<Vec<&'a str>> {
    csp.split(';').find_map(|d| {
        let mut words = d.split_whitespace();
        let directive = words.next()?;
        directive
            .eq_ignore_ascii_case(name)
            .then(|| words.collect())
    })
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, site) in input.sites() {
        if !tls_on(site) {
            continue;
        }
        let missing = |name: &str, value: &str| {
            Finding::new(
                RULE.id,
                format!("site `{key}` does not send {name} on its HTTPS responses"),
            )
            .at(header_pointer(key, None))
            .help(format!("add `header {name} \"{value}\"` to the site"))
        };
        let weak = |name: &str, problem: String, value: &str| {
            Finding::new(RULE.id, format!("site `{key}` {problem}"))
                .at(header_pointer(key, Some(name)))
                .help(format!("write `header {name} \"{value}\"`"))
        };
        let csp = header(site, "Content-Security-Policy");

        match header(site, "X-Content-Type-Options") {
            None => out.push(missing("X-Content-Type-Options", "nosniff")),
            Some((name, v)) if !v.trim().eq_ignore_ascii_case("nosniff") => out.push(weak(
                name,
                "sends X-Content-Type-Options without `nosniff`".into(),
                "nosniff",
            )),
            _ => {}
        }

        // `frame-ancestors` replaces X-Frame-Options where browsers know it; without a
        // wildcard it names exactly who may frame the site.
        let frame_ancestors_closed = csp
            .and_then(|(_, v)| csp_directive(v, "frame-ancestors"))
            .is_some_and(|sources| {
                !sources.is_empty()
                    && sources.iter().all(|s| {
                        !s.contains('*')
                            && !matches!(
                                s.to_ascii_lowercase().as_str(),
                                "http:" | "https:" | "data:" | "blob:"
                            )
                    })
            });
        match header(site, "X-Frame-Options") {
            _ if frame_ancestors_closed => {}
            None => out.push(missing("X-Frame-Options", "SAMEORIGIN")),
            Some((name, v))
                if !v.trim().eq_ignore_ascii_case("DENY")
                    && !v.trim().eq_ignore_ascii_case("SAMEORIGIN") =>
            {
                out.push(weak(
                    name,
                    format!("sends X-Frame-Options `{}`, which browsers ignore (only `DENY` and `SAMEORIGIN` exist), and its CSP does not say who may frame it: any site can", v.trim()),
                    "SAMEORIGIN",
                ))
            }
            _ => {}
        }

        match header(site, "Referrer-Policy") {
            None => out.push(missing(
                "Referrer-Policy",
                "strict-origin-when-cross-origin",
            )),
            Some((name, v)) => {
                // Browsers use the last policy they understand.
                let last = v
                    .split(',')
                    .map(str::trim)
                    .rfind(|p| !p.is_empty())
                    .unwrap_or("");
                if !REFERRER_POLICIES
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(last))
                {
                    out.push(weak(
                        name,
                        format!(
                            "sends Referrer-Policy `{last}`, which leaks URLs to other origins"
                        ),
                        "strict-origin-when-cross-origin",
                    ));
                }
            }
        }

        match header(site, "Cross-Origin-Opener-Policy") {
            None => out.push(missing("Cross-Origin-Opener-Policy", "same-origin")),
            Some((name, v)) if !v.trim().eq_ignore_ascii_case("same-origin") => out.push(weak(
                name,
                "sends Cross-Origin-Opener-Policy other than `same-origin`".into(),
                "same-origin",
            )),
            _ => {}
        }

        match csp {
            None => out.push(missing(
                "Content-Security-Policy",
                "default-src 'self'; frame-ancestors 'self'; base-uri 'self'; form-action 'self'",
            )),
            Some((name, v)) => {
                let scripts =
                    csp_directive(v, "script-src").or_else(|| csp_directive(v, "default-src"));
                if let Some(sources) = scripts {
                    let unsafe_inline = sources
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case("'unsafe-inline'"));
                    let nonce_or_hash = sources.iter().any(|s| {
                        let s = s.to_ascii_lowercase();
                        s.starts_with("'nonce-")
                            || s.starts_with("'sha256-")
                            || s.starts_with("'sha384-")
                            || s.starts_with("'sha512-")
                    });
                    if unsafe_inline && !nonce_or_hash {
                        out.push(
                            Finding::new(
                                RULE.id,
                                format!("site `{key}` has a Content-Security-Policy that allows inline scripts (`'unsafe-inline'`)"),
                            )
                            .at(header_pointer(key, Some(name)))
                            .help("move inline scripts to files, or allow them by nonce or hash instead of `'unsafe-inline'`")
                            .severity(Severity::Info),
                        );
                    }
                }
            }
        }

        if header(site, "Permissions-Policy").is_none() {
            out.push(missing(
                "Permissions-Policy",
                "camera=(), microphone=(), geolocation=(), payment=()",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::{Value, json};

    fn preset() -> Value {
        json!({
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
            "Referrer-Policy": "strict-origin-when-cross-origin",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY"
        })
    }

    fn run(headers: Value, tls: &str) -> Vec<(String, String)> {
        let spec = json!({"sites": {"a.example": {"tls": {"mode": tls}, "headers": headers}}});
        check(&input(spec))
            .into_iter()
            .map(|f| (f.path.unwrap(), f.message))
            .collect()
    }

    fn with(name: &str, value: Value) -> Value {
        let mut h = preset();
        match value {
            Value::Null => {
                h.as_object_mut().unwrap().remove(name);
            }
            v => h[name] = v,
        }
        h
    }

    #[test]
    fn preset_headers_pass() {
        assert!(run(preset(), "acme").is_empty());
        assert!(run(json!({}), "off").is_empty());
    }

    #[test]
    fn each_missing_header() {
        for name in [
            "X-Content-Type-Options",
            "Referrer-Policy",
            "Cross-Origin-Opener-Policy",
            "Content-Security-Policy",
            "Permissions-Policy",
        ] {
            let f = run(with(name, Value::Null), "acme");
            assert_eq!(f.len(), 1, "{name}: {f:?}");
            assert_eq!(f[0].0, "/sites/a.example/headers");
            assert!(f[0].1.contains(name));
        }
        // X-Frame-Options may go when the CSP has frame-ancestors 'none'.
        assert!(run(with("X-Frame-Options", Value::Null), "acme").is_empty());
        let mut h = with("X-Frame-Options", Value::Null);
        h["Content-Security-Policy"] = json!("default-src 'self'");
        assert_eq!(run(h, "acme").len(), 1);
    }

    #[test]
    fn weak_values() {
        assert_eq!(
            run(with("Referrer-Policy", json!("unsafe-url")), "acme")[0].0,
            "/sites/a.example/headers/Referrer-Policy"
        );
        assert!(
            run(
                with(
                    "Referrer-Policy",
                    json!("no-referrer, strict-origin-when-cross-origin")
                ),
                "acme"
            )
            .is_empty()
        );
        assert_eq!(
            run(
                with("Referrer-Policy", json!("same-origin, origin")),
                "acme"
            )
            .len(),
            1
        );
        assert_eq!(
            run(with("X-Content-Type-Options", json!("sniff")), "acme").len(),
            1
        );
        assert_eq!(
            run(
                with("Cross-Origin-Opener-Policy", json!("unsafe-none")),
                "acme"
            )
            .len(),
            1
        );
        // SAMEORIGIN, or a frame-ancestors without a wildcard, keeps other sites out.
        let mut h = with("X-Frame-Options", json!("SAMEORIGIN"));
        h["Content-Security-Policy"] = json!("default-src 'self'; frame-ancestors 'self'");
        assert!(run(h, "acme").is_empty());
        let mut h = with("X-Frame-Options", json!("SAMEORIGIN"));
        h["Content-Security-Policy"] = json!("default-src 'self'");
        assert!(run(h, "acme").is_empty());
        // A value browsers ignore, with a CSP that lets anyone frame it, is reported, and
        // its text says so.
        let mut h = with("X-Frame-Options", json!("ALLOW-FROM https://a.example"));
        h["Content-Security-Policy"] = json!("default-src 'self'; frame-ancestors *");
        let f = run(h, "acme");
        assert_eq!(f.len(), 1);
        assert!(f[0].1.contains("browsers ignore"), "{}", f[0].1);
        let mut h = with("X-Frame-Options", json!("ALLOW-FROM https://a.example"));
        h["Content-Security-Policy"] =
            json!("default-src 'self'; frame-ancestors https://a.example");
        assert!(run(h, "acme").is_empty());
    }

    #[test]
    fn unsafe_inline_is_info() {
        let h = with(
            "Content-Security-Policy",
            json!("default-src 'self'; script-src 'self' 'unsafe-inline'"),
        );
        let f = check(&input(
            json!({"sites": {"a.example": {"tls": {"mode": "acme"}, "headers": h}}}),
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Some(Severity::Info));
        let h = with(
            "Content-Security-Policy",
            json!("script-src 'self' 'unsafe-inline' 'nonce-abc'"),
        );
        assert!(run(h, "acme").is_empty());
    }
}
