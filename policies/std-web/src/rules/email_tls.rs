//! `web.email-tls`: the app sends mail without TLS in production.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity};
use serde_json::Value;

use crate::util::env_pointer;

pub const RULE: RuleDocs = RuleDocs {
    id: "web.email-tls",
    default_severity: Severity::Warn,
    summary: "the app sends mail to its SMTP server without TLS",
    what: "In production, a service whose `EMAIL_USE_TLS` (Django's STARTTLS switch, under the \
           project's `settings-prefix` too) is explicitly false while `EMAIL_USE_SSL` is not \
           true, and which names an `EMAIL_HOST` other than a loopback address: its mail \
           (password-reset links, sign-in codes) crosses the network in clear text. Only \
           explicit values are judged; a loopback relay (a local MTA that sends onward with \
           TLS) passes.",
    why: "Password-reset and verification mails carry credentials in all but name: anyone on \
          the path to the SMTP server reads them, and the SMTP login itself goes in clear \
          text. Every mail provider accepts STARTTLS on port 587.",
    example: "env {\n    EMAIL_HOST \"smtp.example.com\"\n    EMAIL_USE_TLS #false\n}",
    instead: "env {\n    EMAIL_HOST \"smtp.example.com\"\n    EMAIL_PORT 587\n    EMAIL_USE_TLS #true\n}",
    upstream: &["proposal"],
};

fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    if !input.is_production() {
        return Vec::new();
    }
    let tls_var = input.setting_name("EMAIL_USE_TLS");
    let ssl_var = input.setting_name("EMAIL_USE_SSL");
    let host_var = input.setting_name("EMAIL_HOST");
    let mut out: Vec<Finding> = Vec::new();
    for (name, s) in input.services() {
        let Some(env) = s.get("env") else { continue };
        if truthy(env.get(&tls_var)) != Some(false) || truthy(env.get(&ssl_var)) == Some(true) {
            continue;
        }
        let host = env.get(&host_var).and_then(Value::as_str).unwrap_or("");
        if host.is_empty() || host == "localhost" || host.starts_with("127.") || host == "::1" {
            continue;
        }
        let at = env_pointer(input, name, &tls_var);
        if out.iter().any(|f| f.path.as_deref() == Some(at.as_str())) {
            continue;
        }
        out.push(
            Finding::new(
                RULE.id,
                format!("`{name}` sends mail to {host} without TLS ({tls_var} is false)"),
            )
            .at(at)
            .help(format!(
                "set `{tls_var} #true` (STARTTLS, port 587) or `{ssl_var} #true` (port 465)"
            )),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::Tier;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn run(env: Value) -> usize {
        let mut i = input(json!({"services": {"web": {"env": env}}}));
        i.tier = Tier::Production;
        check(&i).len()
    }

    #[test]
    fn mail() {
        assert_eq!(
            run(json!({"EMAIL_HOST": "smtp.example.com", "EMAIL_USE_TLS": false})),
            1
        );
        assert_eq!(
            run(json!({"EMAIL_HOST": "smtp.example.com", "EMAIL_USE_TLS": "False"})),
            1
        );
        assert_eq!(
            run(json!({"EMAIL_HOST": "smtp.example.com", "EMAIL_USE_TLS": true})),
            0
        );
        assert_eq!(
            run(
                json!({"EMAIL_HOST": "smtp.example.com", "EMAIL_USE_TLS": false, "EMAIL_USE_SSL": true})
            ),
            0
        );
        assert_eq!(
            run(json!({"EMAIL_HOST": "127.0.0.1", "EMAIL_USE_TLS": false})),
            0
        );
        assert_eq!(
            run(json!({"EMAIL_HOST": "smtp.example.com"})),
            0,
            "only explicit values"
        );
    }
}
