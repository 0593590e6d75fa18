//! `secret.key-format`: a key does not have the format its kind needs.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity};

use crate::judge::key_format;
use crate::subjects::{self, Subject};

pub const RULE: RuleDocs = RuleDocs {
    id: "secret.key-format",
    default_severity: Severity::Error,
    summary: "a key does not have the length or encoding its kind needs",
    what: "Judges keys by kind (declared with `secret NAME kind=…`, or guessed from the name of \
           a literal: `SECRET_KEY`, `FERNET_KEY(S)`, `ENCRYPTION_KEY`, `JWT_SECRET` …). \
           `django-secret-key`: at least 50 characters, at least 5 distinct characters, no \
           `django-insecure-` prefix (each entry of `SECRET_KEY_FALLBACKS` too). `fernet`: \
           strict URL-safe base64 with padding that decodes to exactly 32 bytes (44 \
           characters), for each key of a comma-separated MultiFernet list. `base64-key`: \
           standard or URL-safe base64 of at least 32 bytes (`base64.b64encode(os.urandom(32))`). \
           `token`: at least 32 characters; `api-key`: at least 16. `jwt-hs256`, \
           `jwt-hs384`, `jwt-hs512`: at least 32, 48 or 64 bytes of key material, counting a \
           hex value as half its length, a base64 value as three quarters, anything else as \
           its bytes (for literals, `JWT_ALGORITHM` picks the size). Any kind: at least the \
           `min-length` the secret declares (`secret API_TOKEN_PEPPER kind=token \
           min-length=50`), the app's own rule. Judges real values during `kiln secrets \
           check`, and literal values in every compile.",
    why: "Django signs sessions, password-reset tokens and messages with SECRET_KEY: a short or \
          low-variety key can be brute-forced offline from one signed cookie, and a \
          `django-insecure-` key is the one from a development checkout. `Fernet(key)` raises \
          at start-up unless the key is 32 bytes of URL-safe base64, so a malformed key is an \
          outage at deploy time. RFC 7518 requires an HMAC key at least as long as the hash: \
          shorter JWT keys make forged tokens cheaper.",
    example: "env {\n    FERNET_KEY \"dGhpcyBpcyBub3QgMzIgYnl0ZXM=\"\n}",
    instead: "secret FERNET_KEY kind=fernet",
    upstream: &["RFC 7518 §3.2", "FS", "DJ W009"],
};

/// The finding for one subject, if its format is wrong for its kind.
pub fn judge(subject: &Subject) -> Option<Finding> {
    let too_short = subject.min_length.and_then(|min| {
        let len = subject.value.chars().count();
        (len < min).then(|| {
            format!(
                "{} is {len} characters long; the app needs at least {min} (its `min-length`)",
                subject.label()
            )
        })
    });
    let problem = too_short.or_else(|| key_format(subject.value, subject.kind, subject.name))?;
    let what = if subject.literal {
        format!("{problem} (a value written in the spec)")
    } else {
        problem
    };
    Some(
        Finding::new(RULE.id, what)
            .at(subject.path.clone())
            .help(super::fix(subject)),
    )
}

pub fn check(input: &Input) -> Vec<Finding> {
    check_subjects(&subjects::all(input))
}

/// `check` over subjects already collected (`subjects::all`).
pub fn check_subjects(subjects: &[Subject]) -> Vec<Finding> {
    subjects.iter().filter_map(judge).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    #[test]
    fn a_declared_minimum_length_is_the_apps_rule() {
        let mut i = input(json!({"secrets": {
            "API_TOKEN_PEPPER_1": {"kind": "token", "min-length": 50},
        }}));
        i.secret_values.insert(
            "API_TOKEN_PEPPER_1".into(),
            "q8rT2mW9xK4vL7pB3nH6jF1d".into(),
        );
        let f = check(&i);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].message
                .contains("24 characters long; the app needs at least 50")
        );
        i.secret_values.insert(
            "API_TOKEN_PEPPER_1".into(),
            "q8rT2mW9xK4vL7pB3nH6jF1d".repeat(3),
        );
        assert!(check(&i).is_empty());
    }

    #[test]
    fn values_by_kind() {
        let mut i = input(json!({"secrets": {
            "SECRET_KEY": {"kind": "django-secret-key"},
            "ENCRYPTION_KEY": {"kind": "fernet"},
            "JWT_KEY": {"kind": "jwt-hs512"},
            "DB_PASSWORD": {"kind": "password"},
        }}));
        i.secret_values.insert(
            "SECRET_KEY".into(),
            "k3$Zq8rT2mW9xK4vL7pB3nH6jF1dS5gA0cE!uY2tR5eW8qO1i".into(),
        );
        i.secret_values.insert(
            "ENCRYPTION_KEY".into(),
            "0nAFxLt6y4t9Q2PZ3bXbNV0f5rqgR1zX8yKq3VhS-aM=".into(),
        );
        i.secret_values.insert("JWT_KEY".into(), "ab".repeat(48));
        i.secret_values.insert("DB_PASSWORD".into(), "short".into());
        let f = check(&i);
        let messages: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "JWT_KEY holds 48 bytes of key material (read as hex); HS512 needs at least 64",
                "SECRET_KEY is 49 characters long; a django-secret-key needs at least 50",
            ]
        );
        assert_eq!(f[1].path.as_deref(), Some("/secrets/SECRET_KEY"));
        assert!(
            f[1].help
                .as_ref()
                .unwrap()
                .contains("get_random_secret_key")
        );
    }

    #[test]
    fn literals_by_name() {
        let i = input(json!({"env": {"FERNET_KEY": "dGhpcyBpcyBub3QgMzIgYnl0ZXM="}}));
        let f = check(&i);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].message,
            "FERNET_KEY decodes to 20 bytes; a Fernet key is exactly 32 bytes of URL-safe base64 (44 characters) (a value written in the spec)"
        );
    }
}
