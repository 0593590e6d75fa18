//! `http.csp-asset-origins`: the site's CSP blocks an origin the app is configured to load
//! its scripts or styles from.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

use crate::util::{header, header_pointer};

pub const RULE: RuleDocs = RuleDocs {
    id: "http.csp-asset-origins",
    default_severity: Severity::Warn,
    summary: "the site's Content-Security-Policy blocks an origin the app loads assets from",
    what: "For every site with a `Content-Security-Policy` header, looks at the services it \
           proxies for the origins they are configured to load assets from: an absolute \
           http(s) URL in a variable named `…STATIC_URL`, `…MEDIA_URL`, `…CDN_URL` or \
           `…ASSETS_URL`, and any URL of a public CDN (jsDelivr, cdnjs, unpkg, the Bootstrap, \
           jQuery, Google and Font Awesome CDNs, Tailwind's) in a variable or an app file. \
           Each such origin must be allowed by the CSP's `script-src` and `style-src` (or its \
           `default-src` where one is absent): by `*`, by its scheme (`https:`), by the origin \
           or host itself, or by a `*.domain` wildcard. The rule sees the spec, not the app's \
           templates: a CDN named only in HTML is invisible to it.",
    why: "A policy of `default-src 'self'` (the nginx-site preset's) makes browsers refuse \
          every script and stylesheet from another origin: an app that loads Bootstrap from a \
          CDN, or serves its static files from one, renders unstyled and without its \
          JavaScript, and the only trace is in each visitor's browser console.",
    example: "service web {\n    env {\n        STATIC_URL \"https://cdn.jsdelivr.net/gh/acme/shop@2.4.1/static/\"\n    }\n}",
    instead: "site \"shop.example.com\" {\n    header Content-Security-Policy \"default-src 'self' https://cdn.jsdelivr.net; frame-ancestors 'self'; base-uri 'self'; form-action 'self'\"\n}\nservice web {\n    env {\n        STATIC_URL \"https://cdn.jsdelivr.net/gh/acme/shop@2.4.1/static/\"\n    }\n}",
    upstream: &["proposal"],
};

/// Hosts of public CDNs that serve scripts and styles.
const CDN_HOSTS: [&str; 13] = [
    "cdn.jsdelivr.net",
    "cdnjs.cloudflare.com",
    "unpkg.com",
    "stackpath.bootstrapcdn.com",
    "maxcdn.bootstrapcdn.com",
    "code.jquery.com",
    "ajax.googleapis.com",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "use.fontawesome.com",
    "kit.fontawesome.com",
    "cdn.tailwindcss.com",
    "cdn.datatables.net",
];

/// Variables whose value is where the app's assets are served from.
const ASSET_VARIABLES: [&str; 4] = ["STATIC_URL", "MEDIA_URL", "CDN_URL", "ASSETS_URL"];

/// Every `scheme://host[:port]` of an http(s) URL in `text`, with its host.
fn origins(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("http") {
        let tail = &rest[at..];
        let scheme = if tail.starts_with("https://") {
            "https"
        } else if tail.starts_with("http://") {
            "http"
        } else {
            rest = &rest[at + 4..];
            continue;
        };
        let after = &tail[scheme.len() + 3..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-.:".contains(c)))
            .unwrap_or(after.len());
        let authority = &after[..end];
        let host = authority.split(':').next().unwrap_or("");
        if host.contains('.')
            && !out
                .iter()
                .any(|(o, _): &(String, String)| o.ends_with(authority))
        {
            out.push((format!("{scheme}://{authority}"), host.to_ascii_lowercase()));
        }
        rest = &after[end..];
    }
    out
}

/// The sources of directive `name`, else of `default-src`; `None` when neither is set
/// (the browser then allows everything).
fn sources<'a>(csp: &'a str, name: &str) -> Option<Vec<&'a str>> {
    let find = |want: &str| {
        csp.split(';').find_map(|d| {
            let mut words = d.split_whitespace();
            words
                .next()
                .filter(|w| w.eq_ignore_ascii_case(want))
                .map(|_| words.collect::<Vec<_>>())
        })
    };
    find(name).or_else(|| find("default-src"))
}

/// Whether a source list lets the browser load from `origin` (host `host`).
fn allows(list: &[&str], origin: &str, host: &str) -> bool {
    let scheme = origin.split(':').next().unwrap_or("");
    list.iter().any(|s| {
        let s = s.trim_end_matches('/').to_ascii_lowercase();
        if s == "*" || s == format!("{scheme}:") || (scheme == "http" && s == "https:") {
            return s != "https:" || scheme == "https";
        }
        let bare = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(&s);
        let bare = bare.split('/').next().unwrap_or(bare);
        let bare_host = bare.split(':').next().unwrap_or(bare);
        match bare_host.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => bare_host == host,
        }
    })
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, site) in input.sites() {
        let Some((spelled, csp)) = header(site, "Content-Security-Policy") else {
            continue;
        };
        let mut names: Vec<&str> = site
            .get("upstream")
            .and_then(Value::as_str)
            .into_iter()
            .collect();
        if let Some(locs) = site.get("locations").and_then(Value::as_object) {
            for u in locs
                .values()
                .filter_map(|l| l.get("upstream").and_then(Value::as_str))
            {
                if !names.contains(&u) {
                    names.push(u);
                }
            }
        }
        let mut reported: Vec<String> = Vec::new();
        for name in names {
            let Some(service) = input.pointer(&json_pointer(["services", name])) else {
                continue;
            };
            // (origin, host, where it is said)
            let mut found: Vec<(String, String, String, String)> = Vec::new();
            if let Some(env) = service.get("env").and_then(Value::as_object) {
                for (var, v) in env {
                    let Some(text) = v.as_str() else { continue };
                    let asset_var = ASSET_VARIABLES.iter().any(|a| var.ends_with(a));
                    for (origin, host) in origins(text) {
                        if asset_var || CDN_HOSTS.contains(&host.as_str()) {
                            found.push((
                                origin,
                                host,
                                json_pointer(["services", name, "env", var]),
                                format!("`{var}`"),
                            ));
                        }
                    }
                }
            }
            if let Some(files) = service.get("files").and_then(Value::as_object) {
                for (path, f) in files {
                    let Some(text) = f.get("text").and_then(Value::as_str) else {
                        continue;
                    };
                    for (origin, host) in origins(text) {
                        if CDN_HOSTS.contains(&host.as_str()) {
                            found.push((
                                origin,
                                host,
                                json_pointer(["services", name, "files", path]),
                                format!("its file `{path}`"),
                            ));
                        }
                    }
                }
            }
            for (origin, host, at, said) in found {
                let blocked: Vec<&str> = ["script-src", "style-src"]
                    .into_iter()
                    .filter(|d| sources(csp, d).is_some_and(|list| !allows(&list, &origin, &host)))
                    .collect();
                if blocked.is_empty() || reported.contains(&origin) {
                    continue;
                }
                reported.push(origin.clone());
                out.push(
                    Finding::new(
                        RULE.id,
                        format!(
                            "the Content-Security-Policy of site `{key}` blocks {origin} ({}), where `{name}` loads assets from ({said})",
                            blocked.join(", ")
                        ),
                    )
                    .at(header_pointer(key, Some(spelled)))
                    .help(format!(
                        "allow the origin in the site's policy (`default-src 'self' {origin}`, or in `script-src` and `style-src`), or let the app send its own Content-Security-Policy, which replaces the site's"
                    ))
                    .related(at, "the origin is named here"),
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

    fn spec(csp: &str, env: Value) -> Value {
        json!({
            "sites": {"a.example": {"upstream": "web", "headers": {"Content-Security-Policy": csp}}},
            "services": {"web": {"env": env, "files": {}}},
        })
    }

    fn count(csp: &str, env: Value) -> usize {
        check(&input(spec(csp, env))).len()
    }

    #[test]
    fn origins_in_text() {
        assert_eq!(
            origins(
                "a https://cdn.jsdelivr.net/npm/x and http://h.example:8080/y https://cdn.jsdelivr.net/z"
            ),
            [
                (
                    "https://cdn.jsdelivr.net".to_owned(),
                    "cdn.jsdelivr.net".to_owned()
                ),
                ("http://h.example:8080".to_owned(), "h.example".to_owned()),
            ]
        );
        assert!(origins("httpx://a.b http://localhost/").is_empty());
    }

    #[test]
    fn blocked_and_allowed() {
        let cdn = json!({"STATIC_URL": "https://cdn.jsdelivr.net/gh/a/b/static/"});
        let preset = "default-src 'self'; frame-ancestors 'self'";
        assert_eq!(count(preset, cdn.clone()), 1);
        assert_eq!(
            count("default-src 'self' https://cdn.jsdelivr.net", cdn.clone()),
            0
        );
        assert_eq!(count("default-src 'self' cdn.jsdelivr.net", cdn.clone()), 0);
        assert_eq!(count("default-src 'self' *.jsdelivr.net", cdn.clone()), 0);
        assert_eq!(count("default-src https:", cdn.clone()), 0);
        assert_eq!(
            count("frame-ancestors 'self'", cdn.clone()),
            0,
            "no fetch directive: all allowed"
        );
        // script-src allows it, but style-src falls back to default-src, which does not.
        assert_eq!(
            count(
                "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net",
                cdn
            ),
            1
        );
        // A same-origin STATIC_URL, an unrelated URL in another variable: nothing to say.
        assert_eq!(
            count(
                preset,
                json!({"STATIC_URL": "/static/", "API_BASE": "https://api.example.com"})
            ),
            0
        );
        // A known CDN in any variable; an asset variable with any origin.
        assert_eq!(
            count(
                preset,
                json!({"BOOTSTRAP_CSS": "https://cdn.jsdelivr.net/npm/bootstrap.css"})
            ),
            1
        );
        assert_eq!(
            count(
                preset,
                json!({"DJANGO_MEDIA_URL": "https://media.shop.example/"})
            ),
            1
        );
    }

    #[test]
    fn app_files_and_the_finding() {
        let mut s = spec("default-src 'self'", json!({}));
        s["services"]["web"]["files"] = json!({"/app/settings.py": {"text": "CDN = 'https://cdnjs.cloudflare.com/ajax/libs/x'\n"}});
        let f = check(&input(s));
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].path.as_deref(),
            Some("/sites/a.example/headers/Content-Security-Policy")
        );
        assert_eq!(
            f[0].related[0].path,
            "/services/web/files/~1app~1settings.py"
        );
        assert!(
            f[0].message.contains("script-src, style-src"),
            "{}",
            f[0].message
        );
    }
}
