//! `web.cors-origins`: the app lets any origin, or a plain-HTTP one, make credentialed calls.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, Tier};
use serde_json::Value;

use crate::util::{env_pointer, is_loopback, list_entries};

pub const RULE: RuleDocs = RuleDocs {
    id: "web.cors-origins",
    default_severity: Severity::Error,
    summary: "CORS allows any origin, or an origin over plain HTTP",
    what: "For every service, the CORS variables of django-cors-headers, FastAPI/Starlette \
           `CORSMiddleware` setups and the like (`CORS_ALLOWED_ORIGINS`, `CORS_ORIGINS`, \
           `ALLOWED_ORIGINS`, `CORS_ORIGIN_WHITELIST`, under the project's `settings-prefix` \
           too) must not hold `*`, nor an `http://` origin other than a loopback one, and \
           `CORS_ALLOW_ALL_ORIGINS` / `CORS_ORIGIN_ALLOW_ALL` must not be true: an error in \
           production, a warning in staging, nothing in development (where `http://localhost` \
           front ends are the norm).",
    why: "CORS decides which other web pages may call the API from a visitor's browser and read \
          the answer. `*` (or allow-all) lets any page do so; an `http://` origin can be \
          impersonated by anyone on the visitor's network, since nothing authenticates a \
          plain-HTTP page. With credentials allowed, either one hands the visitor's session \
          to a third party.",
    example: "env {\n    CORS_ALLOWED_ORIGINS \"*\"\n}",
    instead: "env {\n    CORS_ALLOWED_ORIGINS \"https://shop.example.com\"\n}",
    upstream: &["proposal", "OS Access-Control-Allow-Origin"],
};

const LISTS: [&str; 4] = [
    "CORS_ALLOWED_ORIGINS",
    "CORS_ORIGINS",
    "ALLOWED_ORIGINS",
    "CORS_ORIGIN_WHITELIST",
];
const ALLOW_ALL: [&str; 2] = ["CORS_ALLOW_ALL_ORIGINS", "CORS_ORIGIN_ALLOW_ALL"];

/// The host of an origin `scheme://host[:port]`.
fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    if input.tier == Tier::Development {
        return Vec::new();
    }
    let severity = input.tiered(RULE.default_severity);
    let mut out: Vec<Finding> = Vec::new();
    let names = |base: &str| {
        let prefixed = input.setting_name(base);
        if prefixed == base {
            vec![prefixed]
        } else {
            vec![prefixed, base.to_owned()]
        }
    };
    for (service, s) in input.services() {
        let Some(env) = s.get("env").and_then(Value::as_object) else {
            continue;
        };
        let mut problems: Vec<(String, String, &'static str)> = Vec::new();
        for var in LISTS.iter().flat_map(|b| names(b)) {
            let Some(Value::String(text)) = env.get(&var) else {
                continue;
            };
            for origin in list_entries(text) {
                if origin == "*" {
                    problems.push((
                        var.clone(),
                        "allows any origin (`*`)".into(),
                        "list the front ends' HTTPS origins instead",
                    ));
                } else if origin.to_ascii_lowercase().starts_with("http://")
                    && !is_loopback(origin_host(&origin))
                {
                    problems.push((
                        var.clone(),
                        format!("trusts `{origin}` over plain HTTP"),
                        "use the `https://` origin",
                    ));
                }
            }
        }
        for var in ALLOW_ALL.iter().flat_map(|b| names(b)) {
            let on = match env.get(&var) {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(t)) => {
                    matches!(t.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
                }
                _ => false,
            };
            if on {
                problems.push((
                    var.clone(),
                    "allows every origin".into(),
                    "turn it off and list the front ends' HTTPS origins",
                ));
            }
        }
        for (var, what, help) in problems {
            let at = env_pointer(input, service, &var);
            if out
                .iter()
                .any(|f| f.path.as_deref() == Some(at.as_str()) && f.message.contains(&what))
            {
                continue; // an environment-level value shared by every service: said once
            }
            let f = Finding::new(RULE.id, format!("{var} {what} (service `{service}`)"))
                .at(at)
                .help(help);
            out.push(if severity == RULE.default_severity {
                f
            } else {
                f.severity(severity)
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn run(env: Value, tier: Tier) -> Vec<String> {
        let mut i = input(json!({"services": {"api": {"env": env}}}));
        i.tier = tier;
        check(&i).into_iter().map(|f| f.message).collect()
    }

    #[test]
    fn origins() {
        let p = Tier::Production;
        assert_eq!(
            run(
                json!({"CORS_ALLOWED_ORIGINS": "https://a.example,https://b.example"}),
                p
            )
            .len(),
            0
        );
        assert_eq!(run(json!({"CORS_ORIGINS": "*"}), p).len(), 1);
        assert_eq!(
            run(
                json!({"ALLOWED_ORIGINS": "http://a.example, https://b.example"}),
                p
            )
            .len(),
            1
        );
        assert_eq!(
            run(json!({"CORS_ALLOWED_ORIGINS": "http://localhost:3000"}), p).len(),
            0
        );
        assert_eq!(run(json!({"CORS_ALLOW_ALL_ORIGINS": true}), p).len(), 1);
        assert_eq!(run(json!({"CORS_ORIGIN_ALLOW_ALL": "True"}), p).len(), 1);
        assert!(run(json!({"CORS_ORIGINS": "*"}), Tier::Development).is_empty());
        let mut i = input(json!({"services": {"api": {"env": {"CORS_ORIGINS": "*"}}}}));
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Warn));
    }
}
