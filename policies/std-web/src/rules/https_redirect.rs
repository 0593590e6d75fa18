//! `web.https-redirect`: nothing redirects plain HTTP to HTTPS in front of a Django app.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};

use crate::util::{env_pointer, is_django, is_web, sites_of, tls_on, truthy, with_severity};

pub const RULE: RuleDocs = RuleDocs {
    id: "web.https-redirect",
    default_severity: Severity::Error,
    summary: "plain HTTP reaches a Django app without a redirect to HTTPS",
    what: "For every Django web service, at least one layer must send plain-HTTP clients to \
           HTTPS: a site with TLS in front of it (kiln's nginx answers its port 80 with \
           `return 308 https://$host$request_uri`, the site's `redirect-code`), or \
           `SECURE_SSL_REDIRECT` set to true. Reports a site with `tls off` in front of the \
           service, or a service no TLS site serves, when `SECURE_SSL_REDIRECT` is not on. \
           Error in production, warn in staging, info in development.",
    why: "Without a redirect, a user who types the bare host name, or follows an old http:// \
          link, talks to the app in clear text: session cookies, CSRF tokens and passwords \
          cross the network readable and modifiable, and HSTS is never learned because \
          browsers ignore it over HTTP.",
    example: "site \"shop.example.com\" {\n    tls off\n}\nenv {\n    SECURE_SSL_REDIRECT #false\n}",
    instead: "site \"shop.example.com\" {\n    tls acme\n}",
    upstream: &["DJ W008", "MZ", "HP"],
};

pub fn check(input: &Input) -> Vec<Finding> {
    let severity = input.tiered(RULE.default_severity);
    let mut findings: Vec<Finding> = Vec::new();
    for (name, service) in input.services() {
        if !is_web(service) || !is_django(service) {
            continue;
        }
        let var = input.setting_name("SECURE_SSL_REDIRECT");
        let redirect = service.get("env").and_then(|e| e.get(&var));
        if redirect.and_then(truthy) == Some(true) {
            continue;
        }
        let sites = sites_of(input, name);
        if sites.iter().any(|(_, site)| tls_on(site)) {
            continue;
        }
        let redirect_ptr = env_pointer(input, name, &var);
        let finding = match sites.first() {
            Some((key, _)) => Finding::new(
                RULE.id,
                format!(
                    "site `{key}` serves `{name}` over plain HTTP and {var} is not on"
                ),
            )
            .at(json_pointer(["sites", key, "tls", "mode"]))
            .help("serve the site over HTTPS (`tls acme` or `tls files cert=… key=…`): kiln then redirects port 80 to HTTPS")
            .related(redirect_ptr, var.clone()),
            None if redirect.is_some() => Finding::new(
                RULE.id,
                format!(
                    "{var} is off and no TLS site serves `{name}`, so nothing redirects HTTP to HTTPS"
                ),
            )
            .at(redirect_ptr)
            .help(format!("set `{var} #true`, or put a `site` with TLS in front of the service")),
            None => Finding::new(
                RULE.id,
                format!(
                    "no TLS site serves `{name}` and SECURE_SSL_REDIRECT is not set, so nothing redirects HTTP to HTTPS"
                ),
            )
            .at(json_pointer(["services", name]))
            .help("put a `site` with TLS in front of the service, or set `SECURE_SSL_REDIRECT #true` in its `env`"),
        };
        if !findings.iter().any(|f| f.path == finding.path) {
            findings.push(with_severity(finding, severity, RULE.default_severity));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::Tier;
    use kiln_policy_sdk::test_support::input;
    use serde_json::{Value, json};

    fn spec(redirect: Value, tls: &str) -> Value {
        json!({
            "env": {"SECURE_SSL_REDIRECT": redirect},
            "services": {
                "web": {"kind": "web", "preset": "django-web", "run": {"program": "gunicorn"}, "env": {"SECURE_SSL_REDIRECT": redirect}},
                "worker": {"kind": "worker", "env": {}},
            },
            "sites": {"shop.example.com": {"server-names": ["shop.example.com"], "upstream": "web", "tls": {"mode": tls}}}
        })
    }

    #[test]
    fn one_layer_is_enough() {
        assert!(check(&input(spec(json!(true), "off"))).is_empty());
        assert!(check(&input(spec(json!(false), "acme"))).is_empty());
        assert!(check(&input(spec(json!("True"), "acme"))).is_empty());
        assert!(check(&input(spec(json!(null), "files"))).is_empty());
    }

    #[test]
    fn plain_site_without_redirect() {
        let f = check(&input(spec(json!(false), "off")));
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].path.as_deref(),
            Some("/sites/shop.example.com/tls/mode")
        );
        assert_eq!(f[0].related[0].path, "/env/SECURE_SSL_REDIRECT");
        assert_eq!(f[0].severity, None);
    }

    #[test]
    fn no_site_at_all() {
        let mut s = spec(json!("0"), "acme");
        s["sites"] = json!({});
        let f = check(&input(s.clone()));
        assert_eq!(f[0].path.as_deref(), Some("/env/SECURE_SSL_REDIRECT"));
        s["env"] = json!({});
        s["services"]["web"]["env"] = json!({});
        let f = check(&input(s));
        assert_eq!(f[0].path.as_deref(), Some("/services/web"));
    }

    #[test]
    fn tiers_and_non_django() {
        let mut i = input(spec(json!(false), "off"));
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Warn));
        i.tier = Tier::Development;
        assert_eq!(check(&i)[0].severity, Some(Severity::Info));
        let mut s = spec(json!(false), "off");
        s["services"]["web"]["preset"] = json!("fastapi-web");
        assert!(check(&input(s)).is_empty());
    }
}
