//! `secret.no-placeholder`: a secret's value is a placeholder.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity};

use crate::judge::placeholder;
use crate::subjects::{self, Subject};

pub const RULE: RuleDocs = RuleDocs {
    id: "secret.no-placeholder",
    default_severity: Severity::Error,
    summary: "a secret's value is a placeholder",
    what: "Judges every secret value: the real values of declared secrets during `kiln secrets \
           check --env NAME --env-file FILE`, and, in every compile, literal values of \
           variables whose names look secret (`*SECRET*`, `*PASSWORD*`, `*TOKEN*`, `*_KEY`, \
           `*_DSN` …) and passwords written into URLs. It rejects, case-insensitively: empty \
           values; templates (`<…>`, `{…}`, `${…}`, `{{…}}`, `%(…)s`); a value equal to its own \
           variable name; the denylist words `changeme`, `change-me`, `change_me`, \
           `replace-me`, `your-secret-key`, `secret`, `password`, `passw0rd`, `default`, \
           `example`, `sample`, `dummy`, `test`, `todo`, `foobar`, `foobared`, \
           `django-insecure-` and `insecure` anywhere in the value (and `xxx` as a word); \
           values that repeat a short pattern or run through consecutive characters (`aaaa…`, \
           `abab…`, `abcdef…`, `0123…`), and six or more such characters in a row. Messages \
           never quote the value.",
    why: "Placeholders are the secrets attackers try first: `changeme`, the sample value from \
          a README or `.env.example`, `foobared` from redis.conf, Django's `django-insecure-` \
          development key. A template that was never filled in (`${DB_PASSWORD}` taken \
          literally) is just as public. detect-secrets and gitleaks skip such values as \
          obviously fake; in a deployment they are the real credential.",
    example: "env {\n    STRIPE_API_KEY \"your-secret-key-here\"\n}",
    instead: "secret STRIPE_API_KEY kind=api-key",
    upstream: &[
        "DS heuristic.py",
        "GL stopwords",
        "DJ W009",
        "RD requirepass",
    ],
};

/// The finding for one subject, if its value is a placeholder.
pub fn judge(subject: &Subject) -> Option<Finding> {
    let reason = placeholder(subject.value, subject.name)?;
    let what = if subject.literal {
        format!("{}, written in the spec, {reason}", subject.label())
    } else {
        format!("{} {reason}", subject.label())
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
    fn literals_and_values() {
        let mut i = input(json!({
            "env": {"STRIPE_API_KEY": "your-secret-key-here", "GITHUB_TOKEN": "ghp_R4nd0mT0kenV4lue8x2Lq"},
            "secrets": {"SECRET_KEY": {"kind": "django-secret-key", "optional": false}},
        }));
        i.secret_values
            .insert("SECRET_KEY".into(), "django-insecure-0123".into());
        let f = check(&i);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].path.as_deref(), Some("/env/STRIPE_API_KEY"));
        assert!(
            f[0].message
                .starts_with("STRIPE_API_KEY, written in the spec, contains a placeholder word")
        );
        assert!(
            f[0].help
                .as_ref()
                .unwrap()
                .contains("`secret STRIPE_API_KEY kind=api-key`")
        );
        assert_eq!(f[1].path.as_deref(), Some("/secrets/SECRET_KEY"));
        for finding in &f {
            assert!(!finding.message.contains("your-secret") && !finding.message.contains("0123"));
        }
    }

    #[test]
    fn url_passwords_and_own_names() {
        let mut i = input(
            json!({"env": {"DATABASE_URL": "postgres://app:changeme@db/app"},
                                 "secrets": {"REDIS_PASSWORD": {"kind": "password"}}}),
        );
        i.secret_values
            .insert("REDIS_PASSWORD".into(), "redis_password".into());
        let f = check(&i);
        assert_eq!(f.len(), 2);
        assert!(
            f[0].message
                .starts_with("the password in DATABASE_URL, written in the spec,")
        );
        assert_eq!(f[1].message, "REDIS_PASSWORD equals its own variable name");
    }
}
