//! What the secret rules judge: literal values of secret-looking variables written in the spec,
//! and (during `kiln secrets check`) the real values of declared secrets.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use kiln_policy_sdk::{Input, json_pointer};
use serde_json::Value;

use crate::judge::{Kind, kind_from_name, url_password};

/// A quick hash for short names (variables), for maps that live through one check: the
/// default hash is built to resist attacks on keys nobody attacks here, and costs more than
/// the lookup it serves.
#[derive(Default)]
pub struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mix =
            |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.0 = mix(
                self.0,
                u64::from_le_bytes(chunk.try_into().unwrap_or_default()),
            );
        }
        let tail = chunks
            .remainder()
            .iter()
            .fold(0u64, |word, &b| (word << 8) | u64::from(b));
        self.0 = mix(self.0, tail);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One value to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject<'a> {
    /// The variable (or declared secret) name.
    pub name: &'a str,
    pub kind: Kind,
    /// The text to judge: the whole value, or the password inside a URL.
    pub value: &'a str,
    /// Whether `value` is the password part of a URL.
    pub url_password: bool,
    /// Where findings point: the literal's env entry, or `/secrets/NAME`.
    pub path: String,
    /// Written in the spec (`env { DB_PASSWORD "…" }`), not a real value from an env file.
    pub literal: bool,
    /// The app's own minimum length, declared with the secret (`min-length=50`).
    pub min_length: Option<usize>,
}

impl Subject<'_> {
    /// How messages name the value: `DB_PASSWORD`, or `the password in DATABASE_URL`.
    pub fn label(&self) -> String {
        if self.url_password {
            format!("the password in {}", self.name)
        } else {
            self.name.to_owned()
        }
    }
}

/// The JWT algorithm the app declares, for the key size of `JWT_SECRET`-like variables.
fn jwt_algorithm(env: Option<&Value>) -> Option<&str> {
    let env = env?;
    ["JWT_ALGORITHM", "SIMPLE_JWT_ALGORITHM"]
        .iter()
        .find_map(|k| env.get(*k).and_then(Value::as_str))
}

/// `/app/ssl/client-key.pem`: a path to a key file (`DB_SSL_KEY`), not a key. Base64 has no
/// `.`, so a random value never looks like this.
pub fn is_file_path(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let plain = segments.iter().all(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    });
    let extension = segments
        .last()
        .and_then(|s| s.rsplit_once('.'))
        .is_some_and(|(name, ext)| {
            !name.is_empty()
                && (2..=5).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphabetic())
        });
    plain && extension
}

/// A literal value worth judging, or `None`: booleans, numbers, short digit strings and
/// values of variables whose names do not look secret (unless they embed a URL password).
fn literal<'a>(
    name: &'a str,
    value: &'a Value,
    jwt_algorithm: Option<&str>,
    path: impl FnOnce() -> String,
) -> Option<Subject<'a>> {
    let text = value.as_str()?;
    let guessed = kind_from_name(name, jwt_algorithm);
    if let Some(password) = url_password(text) {
        return Some(Subject {
            min_length: None,
            name,
            kind: Kind::Url,
            value: password,
            url_password: true,
            path: path(),
            literal: true,
        });
    }
    let kind = guessed?;
    let t = text.trim();
    let short_number = t.len() < 8 && !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let boolean = matches!(
        t.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "none" | "null"
    );
    if short_number || boolean || is_file_path(t) {
        return None;
    }
    Some(Subject {
        min_length: None,
        name,
        kind,
        value: text,
        url_password: false,
        path: path(),
        literal: true,
    })
}

/// Secret-looking literals of the spec: the environment-wide `env` first, then each service's
/// own values (a service value equal to the environment-wide one is not repeated).
pub fn literals(input: &Input) -> Vec<Subject<'_>> {
    let mut out = Vec::new();
    let shared = input.pointer("/env");
    let jwt = jwt_algorithm(shared);
    for (name, value) in input.entries("/env") {
        if let Some(s) = literal(name, value, jwt, || json_pointer(["env", name])) {
            out.push(s);
        }
    }
    // The environment-wide values by name, for every value of every service.
    let shared: HashMap<&str, &Value, BuildHasherDefault<NameHasher>> = shared
        .and_then(Value::as_object)
        .map(|map| map.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default();
    for (service, body) in input.services() {
        let Some(env) = body.get("env") else { continue };
        let Some(map) = env.as_object() else { continue };
        let jwt = jwt_algorithm(Some(env));
        for (name, value) in map {
            if shared.get(name.as_str()).copied() == Some(value) {
                continue;
            }
            let path = || json_pointer(["services", service, "env", name]);
            if let Some(s) = literal(name, value, jwt, path) {
                out.push(s);
            }
        }
    }
    out
}

/// The real values of `kiln secrets check`, judged by their declared kind. Empty values of
/// optional secrets are left out (the secret is simply not used).
pub fn values(input: &Input) -> Vec<Subject<'_>> {
    let mut out = Vec::new();
    for (name, value) in &input.secret_values {
        let declared = input.pointer(&json_pointer(["secrets", name]));
        let optional = declared
            .and_then(|d| d.get("optional"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if optional && value.trim().is_empty() {
            continue;
        }
        let kind = match declared.and_then(|d| d.get("kind")).and_then(Value::as_str) {
            Some(k) => Kind::parse(k),
            None => kind_from_name(name, None).unwrap_or(Kind::Generic),
        };
        let path = if declared.is_some() {
            json_pointer(["secrets", name])
        } else {
            "/secrets".to_owned()
        };
        let (value, url) = match (kind, url_password(value)) {
            (Kind::Url, Some(password)) => (password, true),
            _ => (value.as_str(), false),
        };
        let min_length = declared
            .and_then(|d| d.get("min-length"))
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        out.push(Subject {
            name,
            kind,
            value,
            url_password: url,
            path,
            literal: false,
            min_length,
        });
    }
    out
}

/// Every subject: the spec's literals, then the real values.
pub fn all(input: &Input) -> Vec<Subject<'_>> {
    let mut out = literals(input);
    out.extend(values(input));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    #[test]
    fn literals_are_attributed_once() {
        let i = input(json!({
            "env": {"API_TOKEN": "t0k3n-value-long", "DEBUG": false, "LOG_LEVEL": "INFO"},
            "services": {
                "web": {"env": {"API_TOKEN": "t0k3n-value-long", "DB_PASSWORD": "x", "PIN_PASSWORD": "1234",
                                "DATABASE_URL": "postgres://u:hunter2@db/x", "SECRET_KEY": {"secret": "SECRET_KEY"}}},
            }
        }));
        let got: Vec<(String, Kind, bool)> = literals(&i)
            .into_iter()
            .map(|s| (s.path, s.kind, s.url_password))
            .collect();
        assert_eq!(
            got,
            [
                ("/env/API_TOKEN".to_owned(), Kind::Token, false),
                (
                    "/services/web/env/DB_PASSWORD".to_owned(),
                    Kind::Password,
                    false
                ),
                ("/services/web/env/DATABASE_URL".to_owned(), Kind::Url, true),
            ]
        );
        let url = literals(&i).into_iter().find(|s| s.url_password).unwrap();
        assert_eq!(url.value, "hunter2");
        assert_eq!(url.label(), "the password in DATABASE_URL");
    }

    #[test]
    fn key_file_paths_are_not_keys() {
        let i = input(
            json!({"env": {"DB_SSL_KEY": "/app/ssl/client-key.pem", "SSH_KEY": "/Zq8r/T2mW9xK4vL7pB3nH6jF1dS5g"}}),
        );
        let names: Vec<&str> = literals(&i).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["SSH_KEY"]);
        assert!(is_file_path("/etc/ssl/private/site.key"));
        assert!(!is_file_path("/etc/ssl/private/"));
        assert!(!is_file_path("relative/key.pem"));
    }

    #[test]
    fn jwt_algorithm_sets_the_key_size() {
        let i = input(json!({"env": {"JWT_SECRET": "k", "JWT_ALGORITHM": "HS512"}}));
        assert_eq!(literals(&i)[0].kind, Kind::Jwt(512));
    }

    #[test]
    fn secret_values_by_declared_kind() {
        let mut i = input(json!({"secrets": {
            "SECRET_KEY": {"kind": "django-secret-key", "optional": false},
            "BROKER": {"kind": "url", "optional": false},
            "SENTRY_DSN": {"kind": "url", "optional": true},
        }}));
        for (k, v) in [
            ("SECRET_KEY", "abc"),
            ("BROKER", "amqp://u:pw@mq//"),
            ("SENTRY_DSN", ""),
            ("EXTRA_TOKEN", "t"),
        ] {
            i.secret_values.insert(k.into(), v.into());
        }
        let got: Vec<(&str, Kind, &str, String)> = values(&i)
            .into_iter()
            .map(|s| (s.name, s.kind, s.value, s.path))
            .collect();
        assert_eq!(
            got,
            [
                ("BROKER", Kind::Url, "pw", "/secrets/BROKER".to_owned()),
                ("EXTRA_TOKEN", Kind::Token, "t", "/secrets".to_owned()),
                (
                    "SECRET_KEY",
                    Kind::DjangoSecretKey,
                    "abc",
                    "/secrets/SECRET_KEY".to_owned()
                ),
            ]
        );
    }
}
