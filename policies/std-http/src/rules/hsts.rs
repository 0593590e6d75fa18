//! `http.hsts`: Strict-Transport-Security is missing, weak, sent over HTTP, or set twice.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

use crate::util::{
    django_upstreams, env_pointer, header, header_pointer, int, tls_on, truthy, with_severity,
};

pub const RULE: RuleDocs = RuleDocs {
    id: "http.hsts",
    default_severity: Severity::Error,
    summary: "HSTS is missing, too short, sent over HTTP, or set differently by nginx and Django",
    what: "For every site with TLS: nginx must send `Strict-Transport-Security` (kiln sends it \
           `always`, from the site's `hsts` or a `header Strict-Transport-Security`). \
           `max-age` below 31536000 (one year; 63072000 recommended) and a missing \
           `includeSubDomains` are warnings. With `preload`, hstspreload.org's requirements \
           must hold, so both become errors (kiln always redirects HTTP to HTTPS on the same \
           host). A site with `tls off` must not send the header. When Django also sends HSTS \
           (`SECURE_HSTS_SECONDS` above 0 for a service behind the site), its max-age, \
           `SECURE_HSTS_INCLUDE_SUBDOMAINS` and `SECURE_HSTS_PRELOAD` must agree with nginx's, \
           and Django alone is not enough: nginx serves static files and error pages itself. \
           Error in production, warn in staging, info in development; the warnings one step \
           lower.",
    why: "Without HSTS, the first request of every visit can be downgraded to HTTP by anyone \
          on the network path (sslstrip), whatever the redirect says. A short max-age lets \
          the protection lapse between visits; without includeSubDomains, a forgotten \
          subdomain can set cookies for the whole domain. Two layers sending different \
          values make browsers keep whichever header comes first, which is not what either \
          layer was configured to say.",
    example: "site \"shop.example.com\" {\n    hsts max-age=86400\n}",
    instead: "site \"shop.example.com\" {\n    hsts max-age=63072000 include-subdomains=#true\n}",
    upstream: &[
        "MZ hsts_min_age",
        "OS Strict-Transport-Security",
        "HP",
        "DJ W004",
        "DJ W005",
        "DJ W021",
    ],
};

/// One year, the minimum of Mozilla's guideline and of hstspreload.org.
const MIN_AGE: u64 = 31_536_000;

/// The HSTS policy nginx sends for a site, and where it is set.
struct Policy {
    max_age: Option<u64>,
    include_subdomains: bool,
    preload: bool,
    /// Pointers to blame: (the whole policy, max-age, includeSubDomains).
    at: (String, String, String),
}

fn from_hsts(key: &str, hsts: &Value) -> Policy {
    let base = json_pointer(["sites", key, "hsts"]);
    Policy {
        max_age: hsts.get("max-age").and_then(Value::as_u64),
        include_subdomains: hsts.get("include-subdomains").and_then(Value::as_bool) == Some(true),
        preload: hsts.get("preload").and_then(Value::as_bool) == Some(true),
        at: (
            base.clone(),
            format!("{base}/max-age"),
            format!("{base}/include-subdomains"),
        ),
    }
}

fn from_header(key: &str, name: &str, value: &str) -> Policy {
    let mut max_age = None;
    let mut include_subdomains = false;
    let mut preload = false;
    for directive in value.split(';') {
        let d = directive.trim();
        let lower = d.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse().ok();
        } else if lower == "includesubdomains" {
            include_subdomains = true;
        } else if lower == "preload" {
            preload = true;
        }
    }
    let at = header_pointer(key, Some(name));
    Policy {
        max_age,
        include_subdomains,
        preload,
        at: (at.clone(), at.clone(), at),
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    let error = input.tiered(Severity::Error);
    let warn = input.tiered(Severity::Warn);
    let mut out = Vec::new();
    let mut push = |f: Finding, severity: Severity| {
        out.push(with_severity(f, severity, RULE.default_severity));
    };
    for (key, site) in input.sites() {
        let sts_header = header(site, "Strict-Transport-Security");
        if !tls_on(site) {
            if let Some((name, _)) = sts_header {
                push(
                    Finding::new(
                        RULE.id,
                        format!("site `{key}` has `tls off` but sends Strict-Transport-Security over plain HTTP"),
                    )
                    .at(header_pointer(key, Some(name)))
                    .help("remove the header: browsers ignore HSTS over HTTP; serve the site with TLS and use `hsts` instead"),
                    error,
                );
            }
            continue;
        }
        let django = django_upstreams(&input.spec, site);
        let django_hsts: Vec<(&str, i64)> = django
            .iter()
            .filter_map(|(name, s)| {
                let var = input.setting_name("SECURE_HSTS_SECONDS");
                let seconds = s.get("env").and_then(|e| e.get(&var)).and_then(int)?;
                (seconds > 0).then_some((*name, seconds))
            })
            .collect();
        let policy = match (site.get("hsts").filter(|h| h.is_object()), sts_header) {
            (Some(h), _) => from_hsts(key, h),
            (None, Some((name, value))) => from_header(key, name, value),
            (None, None) => {
                let (message, help) = match django_hsts.first() {
                    Some((service, _)) => (
                        format!(
                            "site `{key}` leaves HSTS to Django (`{service}`), so what nginx serves itself (static files, error pages) goes without it"
                        ),
                        "add `hsts max-age=63072000 include-subdomains=#true` to the site",
                    ),
                    None => (
                        format!(
                            "site `{key}` serves HTTPS without a Strict-Transport-Security header"
                        ),
                        "add `hsts max-age=63072000 include-subdomains=#true` to the site (the nginx-site preset has it)",
                    ),
                };
                push(
                    Finding::new(RULE.id, message)
                        .at(json_pointer(["sites", key, "hsts"]))
                        .help(help),
                    error,
                );
                continue;
            }
        };
        let (severity, why) = if policy.preload {
            (error, " (hstspreload.org requires it with `preload`)")
        } else {
            (warn, "")
        };
        match policy.max_age {
            Some(age) if age >= MIN_AGE => {}
            age => push(
                Finding::new(
                    RULE.id,
                    match age {
                        Some(age) => format!("site `{key}` sends HSTS with max-age {age}, below one year (31536000){why}"),
                        None => format!("site `{key}` sends HSTS without a valid max-age{why}"),
                    },
                )
                .at(policy.at.1.clone())
                .help("use `max-age=63072000` (two years, Mozilla's recommendation)"),
                severity,
            ),
        }
        if !policy.include_subdomains {
            push(
                Finding::new(
                    RULE.id,
                    format!("site `{key}` sends HSTS without includeSubDomains{why}"),
                )
                .at(policy.at.2.clone())
                .help("set `include-subdomains=#true` once every subdomain serves HTTPS"),
                severity,
            );
        }
        for (service, seconds) in django_hsts {
            let svc = &input.spec["services"][service];
            let mut differences = Vec::new();
            if Some(seconds as u64) != policy.max_age {
                differences.push(format!("max-age {seconds}"));
            }
            let flag = |var: &str| {
                svc.get("env")
                    .and_then(|e| e.get(input.setting_name(var)))
                    .and_then(truthy)
                    .unwrap_or(false)
            };
            let seconds_var = input.setting_name("SECURE_HSTS_SECONDS");
            if flag("SECURE_HSTS_INCLUDE_SUBDOMAINS") != policy.include_subdomains {
                differences.push("includeSubDomains".to_owned());
            }
            if flag("SECURE_HSTS_PRELOAD") != policy.preload {
                differences.push("preload".to_owned());
            }
            if differences.is_empty() {
                continue;
            }
            push(
                Finding::new(
                    RULE.id,
                    format!(
                        "Django (`{service}`) and nginx (site `{key}`) both send HSTS, and they differ in {}",
                        differences.join(", ")
                    ),
                )
                .at(env_pointer(&input.spec, service, &seconds_var))
                .help(format!("let one layer send it: remove {seconds_var} (nginx's header also covers static files and errors), or make both say the same"))
                .related(policy.at.0.clone(), "nginx's HSTS"),
                error,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::Tier;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn spec(hsts: Value, headers: Value, tls: &str) -> Value {
        json!({
            "services": {"web": {"kind": "web", "preset": "django-web", "run": {"program": "gunicorn"}, "env": {}}},
            "sites": {"shop.example.com": {"upstream": "web", "tls": {"mode": tls}, "hsts": hsts, "headers": headers}}
        })
    }

    fn run(spec: Value) -> Vec<(String, Option<Severity>, String)> {
        check(&input(spec))
            .into_iter()
            .map(|f| (f.path.unwrap(), f.severity, f.message))
            .collect()
    }

    fn hsts(age: u64, sub: bool, preload: bool) -> Value {
        json!({"max-age": age, "include-subdomains": sub, "preload": preload})
    }

    #[test]
    fn good_policy_passes() {
        assert!(run(spec(hsts(63_072_000, true, false), json!({}), "acme")).is_empty());
        assert!(run(spec(hsts(31_536_000, true, true), json!({}), "files")).is_empty());
        let header = json!({"Strict-Transport-Security": "max-age=31536000; includeSubDomains"});
        assert!(run(spec(json!(null), header, "acme")).is_empty());
    }

    #[test]
    fn max_age_boundary_and_preload() {
        let f = run(spec(hsts(31_535_999, true, false), json!({}), "acme"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "/sites/shop.example.com/hsts/max-age");
        assert_eq!(f[0].1, Some(Severity::Warn));
        let f = run(spec(hsts(86_400, true, true), json!({}), "acme"));
        assert_eq!(f[0].1, None);
        assert!(
            f[0].2
                .ends_with("(hstspreload.org requires it with `preload`)")
        );
        let f = run(spec(hsts(63_072_000, false, false), json!({}), "acme"));
        assert_eq!(
            (f[0].0.as_str(), f[0].1),
            (
                "/sites/shop.example.com/hsts/include-subdomains",
                Some(Severity::Warn)
            )
        );
    }

    #[test]
    fn missing_and_plain_http() {
        let f = run(spec(json!(null), json!({}), "acme"));
        assert_eq!(
            f,
            [(
                "/sites/shop.example.com/hsts".to_owned(),
                None,
                "site `shop.example.com` serves HTTPS without a Strict-Transport-Security header"
                    .to_owned()
            )]
        );
        let f = run(spec(
            json!(null),
            json!({"strict-transport-security": "max-age=63072000"}),
            "off",
        ));
        assert_eq!(
            f[0].0,
            "/sites/shop.example.com/headers/strict-transport-security"
        );
        assert!(run(spec(hsts(63_072_000, true, false), json!({}), "off")).is_empty());
        let f = run(spec(
            json!(null),
            json!({"Strict-Transport-Security": "max-age=600"}),
            "acme",
        ));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn django_and_nginx() {
        let mut s = spec(hsts(63_072_000, true, false), json!({}), "acme");
        s["services"]["web"]["env"] =
            json!({"SECURE_HSTS_SECONDS": 63_072_000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": true});
        assert!(run(s.clone()).is_empty());
        s["services"]["web"]["env"]["SECURE_HSTS_SECONDS"] = json!("3600");
        let f = run(s.clone());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "/services/web/env/SECURE_HSTS_SECONDS");
        assert!(f[0].2.ends_with("they differ in max-age 3600"));
        s["sites"]["shop.example.com"]["hsts"] = json!(null);
        let f = run(s);
        assert_eq!(f.len(), 1);
        assert!(f[0].2.contains("leaves HSTS to Django"));
    }

    #[test]
    fn tiers() {
        let mut i = input(spec(json!(null), json!({}), "acme"));
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Warn));
        let mut i = input(spec(hsts(600, true, false), json!({}), "acme"));
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Info));
        i.tier = Tier::Development;
        assert_eq!(check(&i)[0].severity, Some(Severity::Info));
    }
}
