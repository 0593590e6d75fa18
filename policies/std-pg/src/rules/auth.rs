//! `pg.auth`: how PostgreSQL authenticates: passwords stored and checked as MD5.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "pg.auth",
    default_severity: Severity::Error,
    summary: "PostgreSQL stores or checks passwords as MD5",
    what: "kiln's pg_hba.conf and the official image authenticate with the method of \
           `password_encryption`. `settings { password_encryption \"md5\" }` makes every \
           pg_hba line `md5` and stores MD5 hashes: a warning (MD5 is deprecated, not yet \
           removed). The rest of the catalog's check holds by construction: kiln writes no \
           `trust` line and never sets POSTGRES_HOST_AUTH_METHOD to `trust` (the superuser has \
           `peer` on the socket, the app its password).",
    why: "An MD5 verifier is the password's equivalent: whoever reads it (a backup, \
          pg_authid, a log) logs in with it, and the challenge is replayable. SCRAM-SHA-256 \
          (PostgreSQL 10+, the default since 14) stores a salted, iterated verifier and \
          proves the password without sending it; PostgreSQL 18 deprecates MD5 passwords.",
    example: "postgres db {\n    settings {\n        password_encryption \"md5\"\n    }\n}",
    instead: "postgres db {\n    settings {\n        password_encryption \"scram-sha-256\"\n    }\n}",
    upstream: &[
        "PG auth-trust",
        "PG 18 release notes",
        "DL postgres entrypoint",
    ],
};

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, pg) in input.entries("/postgres") {
        let method = pg
            .pointer("/settings/password_encryption")
            .and_then(Value::as_str);
        if method != Some("md5") {
            continue;
        }
        let f = Finding::new(
            RULE.id,
            format!("postgres `{name}` stores and checks passwords as MD5"),
        )
        .at(json_pointer(["postgres", name, "settings", "password_encryption"]))
        .help("use `password_encryption \"scram-sha-256\"` (the preset's), then reset the app's password so it is stored as SCRAM")
        .severity(Severity::Warn);
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    #[test]
    fn md5_only() {
        let spec = |m: &str| json!({"postgres": {"db": {"settings": {"password_encryption": m}}}});
        assert_eq!(check(&input(spec("md5"))).len(), 1);
        assert!(check(&input(spec("scram-sha-256"))).is_empty());
        assert_eq!(check(&input(spec("md5")))[0].severity, Some(Severity::Warn));
    }
}
