//! `web.allowed-hosts`: ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS against the sites nginx serves.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

use crate::Settings;
use crate::util::{
    env_pointer, host_matches, is_django, is_loopback, is_python_app_server, is_web, list_entries,
    server_names, sites_of,
};

pub const RULE: RuleDocs = RuleDocs {
    id: "web.allowed-hosts",
    default_severity: Severity::Error,
    summary: "ALLOWED_HOSTS or CSRF_TRUSTED_ORIGINS does not match the sites in front of the app",
    what: "For every Django web service: `ALLOWED_HOSTS` must be set and non-empty, and must not \
           be `*` in production (kiln's proposal; setting `allow-wildcard-in-production`). Each \
           entry must match a server name of a site that proxies to the service (Django's \
           matching: `.example.com` covers its subdomains); loopback names (`localhost`, \
           `127.0.0.1`, `::1`) are allowed for local health checks. Every server name of those \
           sites must be allowed, or its requests fail with 400. Each `CSRF_TRUSTED_ORIGINS` \
           entry must be `https://<allowed host>` (`http://` only for a loopback host). When \
           no site proxies to the service, only emptiness and `*` are checked. A Django \
           web service is one a WSGI/ASGI server runs (gunicorn, uvicorn, daphne, hypercorn, \
           granian) with a settings module or a Django preset: a dashboard or mail catcher \
           of the same environment is not judged as Django. Another framework's app that a \
           Python server runs and that has `ALLOWED_HOSTS` (FastAPI's `TrustedHostMiddleware` reads it in many \
           apps) is judged on what it sets: no `*` in production, and entries and server \
           names as above. With the project's `settings-prefix` \
           (`DJANGO_`), the variables read and suggested are `DJANGO_ALLOWED_HOSTS` and \
           `DJANGO_CSRF_TRUSTED_ORIGINS`.",
    why: "ALLOWED_HOSTS is Django's defence against Host header attacks: with `*` or a stale \
          entry, a forged Host header reaches password-reset links, cache keys and absolute \
          URLs. An entry that no nginx server name serves is dead weight that hides typos, and \
          a server name Django does not allow answers every request with 400. CSRF trusted \
          origins over plain HTTP, or for hosts the app does not serve, widen what may post \
          forms to the app.",
    example: "env {\n    ALLOWED_HOSTS \"*\"\n}",
    instead: "env {\n    ALLOWED_HOSTS \"shop.example.com\"\n}",
    upstream: &["DJ W020", "DJ 4_0.E001"],
};

pub fn check(input: &Input) -> Vec<Finding> {
    let settings: Settings = input.settings().unwrap_or_default();
    let mut findings: Vec<Finding> = Vec::new();
    let hosts_var = input.setting_name("ALLOWED_HOSTS");
    for (name, service) in input.services() {
        if !is_web(service) {
            continue;
        }
        // Another framework's app that reads ALLOWED_HOSTS (FastAPI's TrustedHostMiddleware,
        // Starlette, Flask-Talisman setups) is judged on what it sets: a wildcard in
        // production and names nginx does not serve are as wrong there. Only Django must set
        // it, and only Django reads CSRF_TRUSTED_ORIGINS.
        let django = is_django(service);
        let sets_hosts = is_python_app_server(service)
            && service
                .get("env")
                .and_then(|e| e.get(&hosts_var))
                .is_some_and(|v| !v.is_null());
        if !django && !sets_hosts {
            continue;
        }
        for f in check_service(input, &settings, name, service, django) {
            let duplicate = findings
                .iter()
                .any(|g| g.path == f.path && g.message == f.message);
            if !duplicate {
                findings.push(f);
            }
        }
    }
    findings
}

fn check_service(
    input: &Input,
    settings: &Settings,
    name: &str,
    service: &Value,
    django: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let sites = sites_of(input, name);
    let names: Vec<(&str, &str)> = sites
        .iter()
        .flat_map(|(key, site)| server_names(site).into_iter().map(move |n| (*key, n)))
        .collect();
    let served = names
        .iter()
        .map(|(_, n)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let site_ptr = |key: &str| json_pointer(["sites", key]);
    // The names the app reads them under (the project's `settings-prefix`).
    let hosts_var = input.setting_name("ALLOWED_HOSTS");
    let origins_var = input.setting_name("CSRF_TRUSTED_ORIGINS");

    let ptr = env_pointer(input, name, &hosts_var);
    let value = service.get("env").and_then(|e| e.get(&hosts_var));
    let hosts: Vec<String> = match value {
        None | Some(Value::Null) => {
            let suggestion = names.first().map_or("app.example.com", |(_, n)| n);
            out.push(
                Finding::new(RULE.id, format!("{hosts_var} is not set for service `{name}`"))
                    .at(json_pointer(["services", name, "env"]))
                    .help(format!(
                        "add `{hosts_var} \"{suggestion}\"` to the `env` block: Django refuses every request when it is empty and DEBUG is off"
                    )),
            );
            return out;
        }
        Some(Value::String(s)) => list_entries(s),
        // A secret or a wired value: not ours to read.
        Some(_) => return out,
    };
    if hosts.is_empty() {
        out.push(
            Finding::new(
                RULE.id,
                format!("{hosts_var} is empty for service `{name}`"),
            )
            .at(ptr.clone())
            .help(format!(
                "list the host names the app serves, such as `{hosts_var} \"app.example.com\"`"
            )),
        );
        return out;
    }
    let wildcard = hosts.iter().any(|h| h == "*");
    if wildcard && input.is_production() && !settings.allow_wildcard_in_production {
        let mut f = Finding::new(
            RULE.id,
            format!("{hosts_var} allows any host name (`*`) for service `{name}`"),
        )
        .at(ptr.clone())
        .help(match names.first() {
            Some((_, n)) => format!("list the names nginx serves instead: `{hosts_var} \"{n}\"`"),
            None => "list the host names the app serves instead of `*`".to_owned(),
        });
        if let Some((key, _)) = names.first() {
            f = f.related(site_ptr(key), "the site's server names");
        }
        out.push(f);
    }

    if !names.is_empty() {
        for host in hosts.iter().filter(|h| *h != "*" && !is_loopback(h)) {
            if !names.iter().any(|(_, n)| host_matches(host, n)) {
                let (key, _) = names[0];
                out.push(
                    Finding::new(
                        RULE.id,
                        format!(
                            "{hosts_var} entry `{host}` matches no server name of the sites in front of `{name}` ({served})"
                        ),
                    )
                    .at(ptr.clone())
                    .help("remove the entry, or add the name to a site with `aliases`")
                    .related(site_ptr(key), "the site's server names"),
                );
            }
        }
        for (key, server) in &names {
            if !hosts.iter().any(|h| host_matches(h, server)) {
                out.push(
                    Finding::new(
                        RULE.id,
                        format!(
                            "{hosts_var} does not allow `{server}`, so {} answers every request to it with 400",
                            if django { "Django" } else { "the app" }
                        ),
                    )
                    .at(ptr.clone())
                    .help(format!("add `{server}` to {hosts_var}"))
                    .related(site_ptr(key), "nginx serves this name"),
                );
            }
        }
    }

    if !django {
        return out;
    }
    let origins_ptr = env_pointer(input, name, &origins_var);
    if let Some(Value::String(origins)) = service.get("env").and_then(|e| e.get(&origins_var)) {
        for origin in list_entries(origins) {
            if let Some(problem) = origin_problem(&origin, &hosts) {
                out.push(
                    Finding::new(RULE.id, format!("{origins_var} entry `{origin}` {problem}"))
                        .at(origins_ptr.clone())
                        .help(match hosts.iter().find(|h| *h != "*" && !is_loopback(h)) {
                            Some(h) => format!(
                                "write origins as `https://<allowed host>`, such as `https://{}`",
                                h.trim_start_matches('.')
                            ),
                            None => "write origins as `https://<allowed host>`".to_owned(),
                        })
                        .related(ptr.clone(), hosts_var.clone()),
                );
            }
        }
    }
    out
}

/// What is wrong with one CSRF trusted origin, if anything.
fn origin_problem(origin: &str, hosts: &[String]) -> Option<String> {
    let (scheme, rest) = match origin.split_once("://") {
        Some(parts) => parts,
        None => return Some("has no scheme: Django 4.0 and later need `https://`".into()),
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or("")),
        None => authority.split(':').next().unwrap_or("").to_owned(),
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && !(scheme == "http" && is_loopback(&host)) {
        return Some(format!("uses `{scheme}://`: trusted origins must be HTTPS"));
    }
    // `https://*.example.com` (Django 4.0+) trusts every subdomain.
    let allowed = match host.strip_prefix("*.") {
        Some(domain) => hosts
            .iter()
            .any(|h| h == "*" || h.eq_ignore_ascii_case(&format!(".{domain}"))),
        None => hosts.iter().any(|h| host_matches(h, &host)),
    };
    if !allowed && !is_loopback(&host) {
        return Some(format!(
            "names host `{host}`, which ALLOWED_HOSTS does not allow"
        ));
    }
    None
}

#[cfg(test)]
mod tests {

    /// A FastAPI app that sets ALLOWED_HOSTS "*" in production is judged too (issue 15: only
    /// Django was); one that does not set it is not required to.
    #[test]
    fn other_frameworks_that_set_allowed_hosts() {
        let spec = |env: serde_json::Value| {
            serde_json::json!({
                "services": {"api": {"kind": "web", "port": 8000, "run": {"program": "uvicorn"}, "env": env}},
                "sites": {"api.example.com": {"upstream": "api", "server-names": ["api.example.com"]}},
            })
        };
        let mut i =
            kiln_policy_sdk::test_support::input(spec(serde_json::json!({"ALLOWED_HOSTS": "*"})));
        i.tier = kiln_policy_sdk::Tier::Production;
        let f = check(&i);
        assert!(
            f.iter().any(|f| f.message.contains("allows any host name")),
            "{f:#?}"
        );
        let mut i = kiln_policy_sdk::test_support::input(spec(serde_json::json!({})));
        i.tier = kiln_policy_sdk::Tier::Production;
        assert!(
            check(&i).is_empty(),
            "not Django: ALLOWED_HOSTS is not required"
        );
        let mut i = kiln_policy_sdk::test_support::input(spec(
            serde_json::json!({"ALLOWED_HOSTS": "api.example.com", "CSRF_TRUSTED_ORIGINS": "http://x"}),
        ));
        i.tier = kiln_policy_sdk::Tier::Production;
        assert!(check(&i).is_empty(), "CSRF_TRUSTED_ORIGINS is Django's");
    }
    use super::*;
    use kiln_policy_sdk::Tier;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn spec(hosts: Value, origins: Value) -> Value {
        json!({
            "env": {"ALLOWED_HOSTS": hosts, "CSRF_TRUSTED_ORIGINS": origins},
            "services": {
                "web": {"kind": "web", "preset": "django-web", "run": {"program": "gunicorn"}, "env": {
                    "DJANGO_SETTINGS_MODULE": "config.settings",
                    "ALLOWED_HOSTS": hosts, "CSRF_TRUSTED_ORIGINS": origins}},
                "api": {"kind": "web", "preset": "fastapi-web", "run": {"program": "uvicorn", "app": "app.main:app"}, "env": {}},
                "worker": {"kind": "worker", "env": {"DJANGO_SETTINGS_MODULE": "config.settings"}},
            },
            "sites": {"shop.example.com": {"server-names": ["shop.example.com", "www.shop.example.com"], "upstream": "web"}}
        })
    }

    fn messages(spec: Value) -> Vec<String> {
        check(&input(spec)).into_iter().map(|f| f.message).collect()
    }

    /// A project that says its app reads `DJANGO_ALLOWED_HOSTS` is judged (and helped) by
    /// that name; a dashboard or mail catcher that inherits DJANGO_SETTINGS_MODULE is not
    /// judged as Django.
    #[test]
    fn settings_prefix_and_non_django_processes() {
        let side = json!({"kind": "web", "run": {"program": "flower"}, "env": {"DJANGO_SETTINGS_MODULE": "config.settings"}});
        let mail = json!({"kind": "web", "run": {"program": "command"}, "env": {"DJANGO_SETTINGS_MODULE": "config.settings"}});
        let mut s = spec(json!("shop.example.com,www.shop.example.com"), json!(null));
        s["services"]["flower"] = side;
        s["services"]["mailpit"] = mail;
        assert!(messages(s.clone()).is_empty(), "{:?}", messages(s.clone()));

        // The app reads DJANGO_ALLOWED_HOSTS: ALLOWED_HOSTS is not what it reads.
        s["project"] = json!({"settings-prefix": "DJANGO_"});
        let m = messages(s.clone());
        assert_eq!(
            m,
            ["DJANGO_ALLOWED_HOSTS is not set for service `web`"],
            "{m:?}"
        );
        let f = check(&input(s.clone()));
        assert!(
            f[0].help
                .as_deref()
                .unwrap_or("")
                .contains("`DJANGO_ALLOWED_HOSTS \"shop.example.com\"`")
        );
        s["services"]["web"]["env"]["DJANGO_ALLOWED_HOSTS"] =
            json!("shop.example.com,www.shop.example.com");
        assert!(messages(s).is_empty());
    }

    #[test]
    fn matching_hosts_pass() {
        assert!(
            messages(spec(
                json!("shop.example.com,www.shop.example.com"),
                json!("https://shop.example.com")
            ))
            .is_empty()
        );
        assert!(
            messages(spec(
                json!(".shop.example.com, localhost"),
                json!("https://*.shop.example.com")
            ))
            .is_empty()
        );
        assert!(
            messages(spec(
                json!("shop.example.com www.shop.example.com 127.0.0.1"),
                json!("http://localhost:3000")
            ))
            .is_empty()
        );
    }

    #[test]
    fn wildcard_only_in_production() {
        let f = check(&input(spec(json!("*"), json!(null))));
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].message,
            "ALLOWED_HOSTS allows any host name (`*`) for service `web`"
        );
        assert_eq!(f[0].path.as_deref(), Some("/env/ALLOWED_HOSTS"));
        assert_eq!(f[0].related[0].path, "/sites/shop.example.com");
        let mut i = input(spec(json!("*"), json!(null)));
        i.tier = Tier::Staging;
        assert!(check(&i).is_empty());
        let mut i = input(spec(json!("*"), json!(null)));
        i.policy.settings = json!({"allow-wildcard-in-production": true});
        assert!(check(&i).is_empty());
    }

    #[test]
    fn missing_empty_and_stale_entries() {
        assert_eq!(
            messages(spec(json!(null), json!(null))),
            ["ALLOWED_HOSTS is not set for service `web`"]
        );
        assert_eq!(
            messages(spec(json!(" , "), json!(null))),
            ["ALLOWED_HOSTS is empty for service `web`"]
        );
        assert_eq!(
            messages(spec(
                json!("shop.example.com,www.shop.example.com,old.example.com"),
                json!(null)
            )),
            [
                "ALLOWED_HOSTS entry `old.example.com` matches no server name of the sites in front of `web` (`shop.example.com`, `www.shop.example.com`)"
            ]
        );
        assert_eq!(
            messages(spec(json!("shop.example.com"), json!(null))),
            [
                "ALLOWED_HOSTS does not allow `www.shop.example.com`, so Django answers every request to it with 400"
            ]
        );
    }

    #[test]
    fn csrf_origins() {
        let hosts = json!("shop.example.com,www.shop.example.com");
        assert_eq!(
            messages(spec(hosts.clone(), json!("http://shop.example.com"))),
            [
                "CSRF_TRUSTED_ORIGINS entry `http://shop.example.com` uses `http://`: trusted origins must be HTTPS"
            ]
        );
        assert_eq!(
            messages(spec(hosts.clone(), json!("shop.example.com"))),
            [
                "CSRF_TRUSTED_ORIGINS entry `shop.example.com` has no scheme: Django 4.0 and later need `https://`"
            ]
        );
        assert_eq!(
            messages(spec(hosts.clone(), json!("https://evil.example.net:8443"))),
            [
                "CSRF_TRUSTED_ORIGINS entry `https://evil.example.net:8443` names host `evil.example.net`, which ALLOWED_HOSTS does not allow"
            ]
        );
        assert_eq!(
            messages(spec(hosts, json!("https://*.example.net"))).len(),
            1
        );
    }

    #[test]
    fn services_without_sites_and_secrets() {
        let mut s = spec(json!("internal.example"), json!(null));
        s["sites"] = json!({});
        assert!(messages(s).is_empty());
        let mut s = spec(json!({"secret": "HOSTS"}), json!(null));
        s["services"]["web"]["env"]["ALLOWED_HOSTS"] = json!({"secret": "HOSTS"});
        assert!(messages(s).is_empty());
    }
}
