//! One rule per file: its docs (`RULE`) and its `check`.

pub mod key_format;
pub mod no_placeholder;
pub mod not_inline;
pub mod strength;

use kiln_policy_sdk::{Input, escape_pointer_segment};
use serde_json::Value;

use crate::judge::Kind;
use crate::subjects::Subject;

/// Whether the spec leaves rule `rule` on for a finding at `path`: not turned off, not waived.
pub fn active(input: &Input, rule: &str, path: &str) -> bool {
    let severity = input
        .pointer(&format!(
            "/policies/rules/{}/severity",
            escape_pointer_segment(rule)
        ))
        .and_then(Value::as_str);
    if severity == Some("off") {
        return false;
    }
    let waivers = input
        .pointer("/policies/waivers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    !waivers.iter().any(|w| {
        w.get("rule").and_then(Value::as_str) == Some(rule)
            && w.get("reason").is_some_and(|r| !r.is_null())
            && match w.get("path").and_then(Value::as_str) {
                None => true,
                Some(p) => path == p || path.starts_with(&format!("{p}/")),
            }
    })
}

/// What to do about a bad value: declare a literal as a secret, or generate a new real value.
pub fn fix(subject: &Subject) -> String {
    if subject.literal {
        let kind = match subject.kind {
            Kind::Url if subject.url_password => "password",
            k => k.as_str(),
        };
        let name = if subject.url_password {
            "a secret for the password (and let `uses` wire the URL)".to_owned()
        } else {
            format!("`secret {} kind={kind}`", subject.name)
        };
        return format!(
            "remove the value from `env` and declare {name}; its value then lives only in the deployment's env file or secret store"
        );
    }
    let generate = match subject.kind {
        Kind::DjangoSecretKey => {
            "python -c 'from django.core.management.utils import get_random_secret_key as g; print(g())'"
        }
        Kind::Fernet => {
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        }
        Kind::Jwt(_) => "openssl rand -base64 64",
        Kind::Base64Key => "openssl rand -base64 32",
        Kind::Token => "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        Kind::Password | Kind::Url => "openssl rand -base64 33",
        Kind::ApiKey | Kind::Generic => {
            return format!(
                "replace {} in the env file with the real credential from its provider",
                subject.name
            );
        }
    };
    format!(
        "replace {} in the env file with a random value, such as the output of `{generate}`",
        subject.name
    )
}
