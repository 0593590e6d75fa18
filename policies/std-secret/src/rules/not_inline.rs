//! `secret.not-inline`: a secret is written as a literal value into the spec or a rendered file.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::scan::{
    YamlNode, lines, mentions, mentions_any, unit, unquote, yaml, yaml_only,
};
use kiln_policy_sdk::{Artifact, Finding, Input, Severity};

use crate::Settings;
use crate::judge::{kind_from_name, url_password};
use crate::rules::{active, key_format, no_placeholder, strength};
use crate::subjects::{self, NameHasher, Subject};

pub const RULE: RuleDocs = RuleDocs {
    id: "secret.not-inline",
    default_severity: Severity::Error,
    summary: "a secret is written as a literal value instead of a declared secret",
    what: "Reports secret values written as literals: in the spec, an `env` value of a \
           variable whose name looks secret (`*SECRET*`, `*PASSWORD*`, `*TOKEN*`, `*_KEY`, \
           `*_DSN` …) or a URL with a password in it; in the rendered files, a secret-looking \
           or declared secret variable with a literal value in compose `environment:`, a \
           Kubernetes `env[].value` or ConfigMap, a systemd `Environment=`, a `password=` in \
           pgbouncer.ini's `[databases]`, or an nginx `proxy_set_header Authorization`. \
           References are fine: compose `${NAME}`, Kubernetes `$(NAME)` and `secretKeyRef`, \
           systemd `EnvironmentFile=` and `LoadCredential=`. A literal that \
           `secret.no-placeholder`, `secret.key-format` or `secret.strength` already reports is \
           not reported again here (unless that rule is turned off or waived), so each literal \
           gets one finding.",
    why: "A literal in the spec is committed to git, copied into every generated file, shown \
          in `docker inspect`, `kubectl get -o yaml` and `systemctl show`, and readable by \
          anyone who can read the world-readable nginx and pgbouncer configuration. kiln \
          delivers declared secrets through each target's secret channel (an env file with \
          mode 0600, a Kubernetes Secret, `EnvironmentFile=`), so the value never enters the \
          repository.",
    example: "env {\n    STRIPE_API_KEY \"sk_live_4eC39HqLyjWDarjtT1zdp7dc\"\n}",
    instead: "secret STRIPE_API_KEY kind=api-key",
    upstream: &[
        "KL env-var-secret",
        "PO sensitiveContainerEnvVar",
        "CKV_K8S_35",
        "SE",
        "ODC rule 12",
        "CIS 4.10",
    ],
};

pub fn check(input: &Input) -> Vec<Finding> {
    check_literals(input, &subjects::literals(input))
}

/// `check` with the spec's literals already collected (`subjects::literals`).
pub fn check_literals(input: &Input, literals: &[Subject]) -> Vec<Finding> {
    let settings: Settings = input.settings().unwrap_or_default();
    let mut findings = Vec::new();
    for subject in literals {
        let reported = [
            no_placeholder::judge(subject).map(|_| no_placeholder::RULE.id),
            key_format::judge(subject).map(|_| key_format::RULE.id),
            strength::judge(subject, &settings).map(|_| strength::RULE.id),
        ];
        if reported
            .into_iter()
            .flatten()
            .any(|rule| active(input, rule, &subject.path))
        {
            continue;
        }
        let what = if subject.url_password {
            format!(
                "{} holds a password inline, written in the spec",
                subject.name
            )
        } else {
            format!(
                "{} is a secret written in the spec as a literal value",
                subject.name
            )
        };
        findings.push(
            Finding::new(RULE.id, what)
                .at(subject.path.clone())
                .help(super::fix(subject)),
        );
    }
    // Rendered files: what the spec-level check above cannot see (a target that renders a
    // declared secret's value, or a value an emitter adds itself).
    let known: Vec<&str> = literals.iter().map(|s| s.name).collect();
    let declared: Vec<&str> = input.entries("/secrets").map(|(k, _)| k).collect();
    let scan = Scan {
        known: &known,
        declared: &declared,
        names: RefCell::new(HashMap::default()),
    };
    for artifact in &input.artifacts {
        findings.extend(scan.artifact(artifact));
    }
    findings
}

struct Scan<'a> {
    /// Variables already reported (or judged) in the spec.
    known: &'a [&'a str],
    /// Declared secrets: always secret, whatever their name.
    declared: &'a [&'a str],
    /// What `name` tells about each variable seen so far (the same variables recur in every
    /// service and file): (already known, secret).
    names: RefCell<HashMap<String, (bool, bool), BuildHasherDefault<NameHasher>>>,
}

/// Whether a rendered value refers to a secret instead of holding it (or holds nothing: YAML's
/// `null` and `~` pass the variable through from the environment).
fn is_reference(value: &str) -> bool {
    (value.contains('$') && (value.contains("${") || value.contains("$(")))
        || matches!(value.trim(), "" | "null" | "~" | "Null" | "NULL")
}

impl Scan<'_> {
    /// Whether `name = value` puts a secret into a file as a literal.
    fn literal_secret(&self, name: &str, value: &str) -> bool {
        let (known, secret) = self.name(name);
        if known {
            return false;
        }
        if let Some(password) = url_password(value) {
            return !is_reference(password);
        }
        if !secret || is_reference(value) {
            return false;
        }
        let t = value.trim();
        let trivial = (t.len() < 8 && t.bytes().all(|b| b.is_ascii_digit()))
            || matches!(
                t.to_ascii_lowercase().as_str(),
                "true" | "false" | "yes" | "no" | "on" | "off"
            );
        !trivial && !subjects::is_file_path(t)
    }

    /// Whether variable `name` was already judged in the spec, and whether it is secret
    /// (declared, or by its name).
    fn name(&self, name: &str) -> (bool, bool) {
        if let Some(&seen) = self.names.borrow().get(name) {
            return seen;
        }
        let seen = (
            self.known.contains(&name),
            self.declared.contains(&name) || kind_from_name(name, None).is_some(),
        );
        self.names.borrow_mut().insert(name.to_owned(), seen);
        seen
    }

    fn finding(&self, a: &Artifact, line: u32, name: &str, place: &str) -> Finding {
        let declared = self.declared.contains(&name);
        let help = if declared {
            format!(
                "`{name}` is a declared secret: the {} target must deliver it by reference; this is a bug in that emitter, please report it",
                a.target
            )
        } else {
            format!(
                "declare `secret {name} kind=…` instead of a literal: kiln then delivers it through {}'s secret channel",
                a.target
            )
        };
        Finding::new(
            RULE.id,
            format!(
                "{name} is written into {} ({place}) as a literal value",
                a.path
            ),
        )
        .at_artifact(a.path.clone(), line)
        .help(help)
    }

    fn artifact(&self, a: &Artifact) -> Vec<Finding> {
        let path = a.path.as_str();
        if path.ends_with(".yaml") || path.ends_with(".yml") {
            // Skips the files that cannot hold what each reader looks for, unparsed.
            let text = &a.text;
            if a.target == "compose" || path.contains("compose") {
                if !(mentions(text, "services") && mentions(text, "environment")) {
                    return Vec::new();
                }
                // Only `services.*.environment` is read.
                let doc = yaml_only(text, &[&["services", "*", "environment"]]);
                self.compose(a, doc.root())
            } else {
                if !mentions_any(text, &["ConfigMap", "ontainers"]) {
                    return Vec::new();
                }
                self.kubernetes(a, yaml(text).root())
            }
        } else if path.ends_with(".service") {
            if !mentions(&a.text, "Environment") {
                return Vec::new();
            }
            self.systemd(a)
        } else if path.ends_with("pgbouncer.ini") {
            // A finding needs a `password=` pair.
            if !a.text.contains("password=") {
                return Vec::new();
            }
            self.pgbouncer(a)
        } else if path.ends_with(".conf") && (a.target == "nginx" || path.contains("nginx/")) {
            // A finding needs a line that starts with `proxy_set_header`.
            if !a.text.contains("proxy_set_header") {
                return Vec::new();
            }
            self.nginx(a)
        } else {
            Vec::new()
        }
    }

    /// compose: `services.<name>.environment`, as a map or as `- KEY=value` items.
    fn compose(&self, a: &Artifact, doc: YamlNode) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(services) = doc.get("services") else {
            return out;
        };
        for service in services.entries() {
            let Some(env) = service.get("environment") else {
                continue;
            };
            for entry in env.entries() {
                let name = entry.key().unwrap_or("");
                if self.literal_secret(name, entry.text()) {
                    out.push(self.finding(a, entry.line(), name, "compose `environment:`"));
                }
            }
            for item in env.list() {
                let pair = item.text().split_once('=');
                if let Some((name, _)) =
                    pair.filter(|&(name, value)| self.literal_secret(name, value))
                {
                    out.push(self.finding(a, item.line(), name, "compose `environment:`"));
                }
            }
        }
        out
    }

    /// Kubernetes: `env[].value` of every container, and ConfigMap `data`.
    fn kubernetes(&self, a: &Artifact, doc: YamlNode) -> Vec<Finding> {
        let mut out = Vec::new();
        let config_map = doc.get("kind").map(YamlNode::text) == Some("ConfigMap");
        if let Some(data) = doc.get("data").filter(|_| config_map) {
            for entry in data.entries() {
                let name = entry.key().unwrap_or("");
                if self.literal_secret(name, entry.text()) {
                    out.push(self.finding(a, entry.line(), name, "a ConfigMap"));
                }
            }
        }
        for node in doc.descendants() {
            if !matches!(node.key(), Some("containers" | "initContainers")) {
                continue;
            }
            for container in node.list() {
                for var in container.items("env") {
                    let (Some(name), Some(value)) = (var.get("name"), var.get("value")) else {
                        continue;
                    };
                    if self.literal_secret(name.text(), value.text()) {
                        out.push(self.finding(
                            a,
                            value.line(),
                            name.text(),
                            "a container's `env[].value`",
                        ));
                    }
                }
            }
        }
        out
    }

    /// systemd: every assignment of every `Environment=` line.
    fn systemd(&self, a: &Artifact) -> Vec<Finding> {
        let mut out = Vec::new();
        let u = unit(&a.text);
        for entry in u.all("Service", "Environment") {
            for word in words(&entry.value) {
                let pair = word.split_once('=');
                if let Some((name, _)) =
                    pair.filter(|&(name, value)| self.literal_secret(name, value))
                {
                    out.push(self.finding(a, entry.line, name, "`Environment=`"));
                }
            }
        }
        out
    }

    /// pgbouncer.ini: `password=` in a `[databases]` connection string.
    fn pgbouncer(&self, a: &Artifact) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut section = String::new();
        for (number, line) in lines(&a.text) {
            let t = line.trim();
            if t.starts_with('[') && t.ends_with(']') {
                section = t[1..t.len() - 1].to_owned();
                continue;
            }
            if section != "databases" || t.starts_with(';') || t.starts_with('#') {
                continue;
            }
            let Some((db, conn)) = t.split_once('=') else {
                continue;
            };
            let has_password = conn.split_whitespace().any(|kv| {
                kv.split_once('=')
                    .is_some_and(|(k, v)| k == "password" && !v.is_empty())
            });
            if has_password {
                out.push(self.finding(
                    a,
                    number,
                    &format!("the password of database `{}`", db.trim()),
                    "`[databases]`",
                ));
            }
        }
        out
    }

    /// nginx: `proxy_set_header Authorization "Basic …"` with a literal credential.
    fn nginx(&self, a: &Artifact) -> Vec<Finding> {
        let mut out = Vec::new();
        for (number, line) in lines(&a.text) {
            let t = line.trim();
            let Some(rest) = t.strip_prefix("proxy_set_header") else {
                continue;
            };
            let rest = rest.trim_start();
            if !rest.to_ascii_lowercase().starts_with("authorization") {
                continue;
            }
            let value = rest["authorization".len()..].trim().trim_end_matches(';');
            let value = unquote(value);
            if !value.contains('$') && !value.trim().is_empty() {
                out.push(self.finding(a, number, "an Authorization header", "`proxy_set_header`"));
            }
        }
        out
    }
}

/// The words of a systemd value: space-separated, with `"…"` and `'…'` quoting. A word is a
/// slice of `value` unless unquoting joins parts of it (`A="x y"`, escapes).
fn words(value: &str) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    let mut word = Word {
        value,
        run: (0, 0),
        joined: None,
    };
    let bytes = value.as_bytes();
    // The character at `at` and its length (ASCII without decoding).
    let char_at = |at: usize| -> (char, usize) {
        match bytes[at] {
            b if b < 0x80 => (char::from(b), 1),
            _ => {
                let c = value[at..].chars().next().unwrap_or_default();
                (c, c.len_utf8())
            }
        }
    };
    let mut quote: Option<char> = None;
    let mut at = 0;
    while at < bytes.len() {
        let (c, len) = char_at(at);
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => {
                if at + len < bytes.len() {
                    let (_, next) = char_at(at + len);
                    word.push(at + len, next);
                    at += next;
                }
            }
            (Some(q), _) => {
                // The run of plain ASCII up to what ends it or needs a closer look.
                let run = run_len(&bytes[at..], |b| b != q as u8 && b != b'\\');
                word.push(at, run.max(len));
                at += run.max(len);
                continue;
            }
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c.is_whitespace() => out.extend(word.take()),
            (None, _) => {
                let run = run_len(&bytes[at..], |b| {
                    !(b.is_ascii_whitespace() || b == 0x0B || b == b'"' || b == b'\'')
                });
                word.push(at, run.max(len));
                at += run.max(len);
                continue;
            }
        }
        at += len;
    }
    out.extend(word.take());
    out
}

/// How many bytes `bytes` starts with that are ASCII and `plain`.
#[inline]
fn run_len(bytes: &[u8], plain: impl Fn(u8) -> bool) -> usize {
    bytes
        .iter()
        .position(|&b| b >= 0x80 || !plain(b))
        .unwrap_or(bytes.len())
}

/// The word [`words`] is reading: `value[run.0..run.1]` while it is one run of the text,
/// `joined` once unquoting joins parts of it.
struct Word<'a> {
    value: &'a str,
    run: (usize, usize),
    joined: Option<String>,
}

impl<'a> Word<'a> {
    #[inline(always)]
    fn push(&mut self, at: usize, len: usize) {
        let (start, end) = self.run;
        match &mut self.joined {
            Some(text) => text.push_str(&self.value[at..at + len]),
            None if start == end => self.run = (at, at + len),
            None if end == at => self.run.1 += len,
            None => {
                let mut text = self.value[start..end].to_owned();
                text.push_str(&self.value[at..at + len]);
                self.joined = Some(text);
            }
        }
    }

    /// The word read, if any; starts the next one.
    #[inline]
    fn take(&mut self) -> Option<Cow<'a, str>> {
        let (start, end) = std::mem::take(&mut self.run);
        match self.joined.take() {
            Some(text) => Some(Cow::Owned(text)),
            None => (start < end).then(|| Cow::Borrowed(&self.value[start..end])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::{input, parse_input};
    use serde_json::json;

    fn clean() -> Input {
        parse_input(include_str!(
            "../../../testdata/inputs/clean-production.json"
        ))
    }

    fn with_artifact(path: &str, text: &str) -> Input {
        let mut i = clean();
        let target = path.split('/').next().unwrap().to_owned();
        i.artifacts = vec![kiln_policy_sdk::Artifact {
            target,
            path: path.into(),
            text: text.into(),
        }];
        i
    }

    #[test]
    fn spec_literals() {
        let i = input(
            json!({"env": {"STRIPE_API_KEY": "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "DATABASE_URL": "postgres://u:Zq8rT2mW9xK4vL7pB3nH6jF1dS5gA0cE@db/x"}}),
        );
        let f = check(&i);
        let messages: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "STRIPE_API_KEY is a secret written in the spec as a literal value",
                "DATABASE_URL holds a password inline, written in the spec",
            ]
        );
        assert_eq!(f[0].path.as_deref(), Some("/env/STRIPE_API_KEY"));
        assert!(!f[0].message.contains("sk_live"));
    }

    #[test]
    fn one_finding_per_literal_unless_the_other_rule_is_off() {
        let mut i = input(json!({"env": {"ADMIN_PASSWORD": "changeme"}}));
        assert!(check(&i).is_empty());
        i.spec["policies"] = json!({"rules": {"secret.no-placeholder": {"severity": "off", "reason": "r"}}, "waivers": []});
        // strength still reports it (8 characters).
        assert!(check(&i).is_empty());
        i.spec["policies"]["waivers"] =
            json!([{"rule": "secret.strength", "path": "/env", "reason": "r"}]);
        assert_eq!(check(&i).len(), 1);
    }

    #[test]
    fn rendered_files_of_the_clean_project_hold_no_literal() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn compose_literals() {
        let text = "services:\n  web:\n    environment:\n      SECRET_KEY: \"${SECRET_KEY:?set it}\"\n      SENTRY_DSN: null\n      API_TOKEN: abcd1234efgh5678\n      DEBUG: \"false\"\n  worker:\n    environment:\n      - WEBHOOK_SECRET=whsec_123456789\n      - LOG_LEVEL=INFO\n";
        let f = check(&with_artifact("compose/compose.yaml", text));
        let lines: Vec<(u32, &str)> = f
            .iter()
            .map(|f| (f.artifact.as_ref().unwrap().line, f.message.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (
                    6,
                    "API_TOKEN is written into compose/compose.yaml (compose `environment:`) as a literal value"
                ),
                (
                    10,
                    "WEBHOOK_SECRET is written into compose/compose.yaml (compose `environment:`) as a literal value"
                ),
            ]
        );
    }

    #[test]
    fn kubernetes_literals() {
        let text = "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          env:\n            - name: SECRET_KEY\n              valueFrom:\n                secretKeyRef:\n                  name: s\n                  key: SECRET_KEY\n            - name: DATABASE_URL\n              value: postgres://u:$(DB_PASSWORD)@db/x\n            - name: GITHUB_TOKEN\n              value: ghp_abcdefghij123\n";
        let f = check(&with_artifact("k8s/deployment-web.yaml", text));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].artifact.as_ref().unwrap().line, 16);
        let cm = "kind: ConfigMap\ndata:\n  LOG_LEVEL: INFO\n  SECRET_KEY: abc-literal-value\n  TLS_KEY: /etc/ssl/private/tls.key\n";
        let f = check(&with_artifact("k8s/configmap-env.yaml", cm));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].artifact.as_ref().unwrap().line, 4);
        assert!(f[0].help.as_ref().unwrap().contains("declared secret"));
    }

    #[test]
    fn systemd_pgbouncer_and_nginx_literals() {
        let unit = "[Service]\nEnvironmentFile=/etc/app/prod.env\nEnvironment=\"LOG_LEVEL=INFO\" \"REDIS_PASSWORD=Zq8rT2mW9xK4vL7p\"\nEnvironment=DEBUG=false\n";
        let f = check(&with_artifact("systemd/app-web.service", unit));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].artifact.as_ref().unwrap().line, 3);
        let ini = "[databases]\napp = host=127.0.0.1 dbname=app\nother = host=db password=hunter2hunter2\n[pgbouncer]\nauth_type = scram-sha-256\n";
        let f = check(&with_artifact("pgbouncer/pgbouncer.ini", ini));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].artifact.as_ref().unwrap().line, 3);
        let conf = "server {\n    proxy_set_header Authorization \"Basic dXNlcjpwYXNz\";\n    proxy_set_header Authorization $http_authorization;\n}\n";
        let f = check(&with_artifact("nginx/sites/a.conf", conf));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].artifact.as_ref().unwrap().line, 2);
    }

    #[test]
    fn systemd_words() {
        assert_eq!(words("\"A=1 2\" B=3 'C=\\'x'"), ["A=1 2", "B=3", "C='x"]);
    }

    /// `words` as it was written first, one `char` at a time into a `String`.
    fn words_by_char(value: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        let mut quote: Option<char> = None;
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), '\\') => {
                    if let Some(n) = chars.next() {
                        current.push(n);
                    }
                }
                (Some(_), c) => current.push(c),
                (None, '"' | '\'') => quote = Some(c),
                (None, c) if c.is_whitespace() => {
                    if !current.is_empty() {
                        out.push(std::mem::take(&mut current));
                    }
                }
                (None, c) => current.push(c),
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    #[test]
    fn systemd_words_borrow_what_they_can() {
        for value in [
            "",
            "   ",
            "\"\"",
            "A=1",
            "\"A=1\"  'B=2'\tC=3\u{a0}D=4\u{2003}é=ü",
            "A=\"x y\"z",
            "\"A=\\\"q\\\" \\é\" B",
            "'unterminated x",
            "\"A\\",
            "x\\y \"\\\"",
            "é\"é\"é 'ü'ü",
        ] {
            let got: Vec<String> = words(value).into_iter().map(Cow::into_owned).collect();
            assert_eq!(got, words_by_char(value), "{value:?}");
        }
        assert!(matches!(words("\"A=1\"")[0], Cow::Borrowed("A=1")));
    }
}
