//! `secret.strength`: a password is short or does not look random.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity};

use crate::Settings;
use crate::judge::{Kind, strength};
use crate::subjects::{self, Subject};

pub const RULE: RuleDocs = RuleDocs {
    id: "secret.strength",
    default_severity: Severity::Error,
    summary: "a password is too short or does not look random",
    what: "Judges passwords: secrets declared `kind=password`, passwords inside URLs (`kind=url` \
           values and literal URLs such as `postgres://user:…@host`), and literal values of \
           variables named `*PASSWORD*`. Error below 16 characters; warn below 32 (kiln's \
           proposal, settings `min-password-length` and `recommended-password-length`). A \
           password of the recommended length or more is warned about when its Shannon \
           entropy per character is below detect-secrets' 4.5 bits (base64-class values) or \
           3.0 (hex), or gitleaks' 3.5 (anything else), capped below what random values of \
           that length and alphabet reach (log2(length) − 1.1 and log2(alphabet) − 1.2 bits). Judges real values during `kiln secrets \
           check`, and literal values in every compile. Messages give lengths and entropy, \
           never the value.",
    why: "Database, Redis and broker passwords are attacked online and, once a hash or a \
          captured handshake leaks, offline; redis.conf warns that Redis answers so fast that \
          an outside attacker can try 150k passwords per second. A short or patterned \
          password falls to that quickly. A value generated from /dev/urandom (`openssl rand \
          -base64 33`) costs nothing and ends the question.",
    example: "env {\n    ADMIN_PASSWORD \"Xk9#mQ2$vL7\"\n}",
    instead: "secret ADMIN_PASSWORD kind=password",
    upstream: &["DS limits 4.5/3.0", "GL entropy 3.5", "RD requirepass"],
};

/// The finding for one subject, if it is a weak password.
pub fn judge(subject: &Subject, settings: &Settings) -> Option<Finding> {
    if !(subject.kind == Kind::Password || subject.url_password) {
        return None;
    }
    let (error, problem) = strength(
        subject.value,
        &subject.label(),
        settings.min_password_length,
        settings.recommended_password_length,
    )?;
    let what = if subject.literal {
        format!("{problem} (a value written in the spec)")
    } else {
        problem
    };
    let finding = Finding::new(RULE.id, what)
        .at(subject.path.clone())
        .help(super::fix(subject));
    Some(if error {
        finding
    } else {
        finding.severity(Severity::Warn)
    })
}

pub fn check(input: &Input) -> Vec<Finding> {
    check_subjects(input, &subjects::all(input))
}

/// `check` over subjects already collected (`subjects::all`).
pub fn check_subjects(input: &Input, subjects: &[Subject]) -> Vec<Finding> {
    let settings: Settings = input.settings().unwrap_or_default();
    subjects
        .iter()
        .filter_map(|s| judge(s, &settings))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn value(v: &str) -> kiln_policy_sdk::Input {
        let mut i = input(
            json!({"secrets": {"DB_PASSWORD": {"kind": "password"}, "API": {"kind": "api-key"}}}),
        );
        i.secret_values.insert("DB_PASSWORD".into(), v.into());
        i.secret_values.insert("API".into(), "short".into());
        i
    }

    #[test]
    fn boundaries() {
        let f = check(&value(&"Xk9#mQ2$vL7pB3n"[..15]));
        assert_eq!((f.len(), f[0].severity), (1, None));
        let f = check(&value("Xk9#mQ2$vL7pB3nH"));
        assert_eq!(f[0].severity, Some(Severity::Warn));
        assert!(check(&value("Xk9#mQ2$vL7pB3nH6jF1dS5gA0cE!uY2")).is_empty());
    }

    #[test]
    fn settings_move_the_thresholds() {
        let mut i = value("Xk9#mQ2$vL7pB3nH");
        i.policy.settings = json!({"min-password-length": 20, "recommended-password-length": 24});
        let f = check(&i);
        assert_eq!(
            f[0].message,
            "DB_PASSWORD is 16 characters long; passwords need at least 20"
        );
        assert_eq!(f[0].severity, None);
    }

    #[test]
    fn literal_passwords_and_urls() {
        let i = input(
            json!({"env": {"ADMIN_PASSWORD": "Xk9#mQ2$vL7", "BROKER_URL": "amqp://u:Xk9!mQ2$vL7@mq//"}}),
        );
        let f = check(&i);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0].message,
            "ADMIN_PASSWORD is 11 characters long; passwords need at least 16 (a value written in the spec)"
        );
        assert_eq!(
            f[1].message,
            "the password in BROKER_URL is 11 characters long; passwords need at least 16 (a value written in the spec)"
        );
    }
}
