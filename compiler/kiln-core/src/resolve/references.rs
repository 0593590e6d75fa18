//! Endpoint references: `${db.host}`, `${cache.url}`, `${api.port}` inside a string value say
//! "this fact of that declared resource, as this target reaches it". Each becomes [`Part`]s,
//! so the host is the compose service, the Kubernetes Service or the configured host address
//! depending on the target, and a password is a secret, never a value. `${NAME}` (no dot)
//! embeds the declared secret `NAME`. `$${` writes a literal `${`.
//!
//! `uses` wiring is made of the same facts ([`fact`]): `uses db` sets `DATABASE_URL` to what
//! `${db.url}` is.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::model::{
    EnvValue, Model, Part, Redis, Sentinel, ServiceKind, Target, pointer_segment, sentinel_host,
};
use crate::source::Span;

use super::Lower;

/// The facts of a PostgreSQL database (through its pooler when it has one; `direct-…` past
/// the pooler).
pub const POSTGRES_FACTS: &[&str] = &[
    "host",
    "port",
    "database",
    "user",
    "password",
    "url",
    "direct-host",
    "direct-port",
    "direct-url",
];
/// The facts of a Redis server (and `url:N`, the URL of logical database N).
pub const REDIS_FACTS: &[&str] = &[
    "host",
    "port",
    "password",
    "url",
    "url:1",
    "sentinel-url",
    "sentinels",
    "sentinel-master",
];
/// The facts of a web service of the environment.
pub const SERVICE_FACTS: &[&str] = &["host", "port", "url"];

/// Why a reference cannot be resolved.
pub struct Unresolved {
    pub message: String,
    pub help: String,
}

/// A fact of the resource `name`, as parts.
pub fn fact(model: &Model, name: &str, fact: &str) -> Result<Vec<Part>, Unresolved> {
    if let Some(pg) = model.postgres.get(name) {
        let direct = fact.starts_with("direct-");
        let (host, port) = match (&pg.pooler, direct) {
            (Some(p), false) => (p.name.clone(), p.port),
            _ => (name.to_owned(), pg.port),
        };
        let password = || match &pg.password {
            Some(pw) => Ok(Part::Secret(pw.clone())),
            None => Err(Unresolved {
                message: format!("`{name}` has no password to refer to"),
                help: format!("declare one: `postgres {name} {{ password DB_PASSWORD }}`"),
            }),
        };
        return Ok(match fact {
            "host" | "direct-host" => vec![Part::Host(host)],
            "port" | "direct-port" => vec![Part::Text(port.to_string())],
            "database" => vec![Part::Text(pg.database.clone())],
            "user" => vec![Part::Text(pg.user.clone())],
            "password" => vec![password()?],
            "url" | "direct-url" => {
                let mut parts = vec![Part::Text(format!("{}://{}", pg.url_scheme, pg.user))];
                if pg.password.is_some() {
                    parts.push(Part::Text(":".into()));
                    parts.push(password()?);
                }
                parts.push(Part::Text("@".into()));
                parts.push(Part::Host(host));
                parts.push(Part::Text(format!(":{port}/{}", pg.database)));
                if let Some(q) = &pg.url_query {
                    parts.push(Part::Text(format!("?{q}")));
                }
                parts
            }
            other => {
                return Err(unknown_fact(
                    name,
                    "a PostgreSQL database",
                    other,
                    POSTGRES_FACTS,
                ));
            }
        });
    }
    if let Some(r) = model.redis.get(name) {
        // `url:N`: the URL of logical database N (a cache on 1 beside a broker on 0).
        if let Some(n) = fact.strip_prefix("url:") {
            return match n.parse::<u32>() {
                Ok(db) if db < 16 => Ok(redis_url(model, name, db)),
                _ => Err(Unresolved {
                    message: format!("`{n}` is not a Redis database number"),
                    help: format!(
                        "write `${{{name}.url:1}}`: a number from 0 to 15 (Redis's `databases 16`)"
                    ),
                }),
            };
        }
        return Ok(match fact {
            "host" => vec![Part::Host(name.to_owned())],
            "port" => vec![Part::Text(r.port.to_string())],
            "password" => match &r.password {
                Some(pw) => vec![Part::Secret(pw.clone())],
                None => {
                    return Err(Unresolved {
                        message: format!("`{name}` has no password to refer to"),
                        help: format!("declare one: `redis {name} password=REDIS_PASSWORD`"),
                    });
                }
            },
            "url" => redis_url(model, name, 0),
            "sentinel-url" | "sentinels" | "sentinel-master" => {
                let Some(sentinel) = &r.sentinel else {
                    return Err(Unresolved {
                        message: format!("`{name}` has no sentinel group to refer to"),
                        help: format!(
                            "declare one: `redis {name} {{ replicas 2; sentinel }}`, or refer to `${{{name}.url}}`"
                        ),
                    });
                };
                sentinel_facts(name, r, sentinel, fact)
            }
            other => return Err(unknown_fact(name, "a Redis server", other, REDIS_FACTS)),
        });
    }
    if let Some(s) = model.services.get(name) {
        let port = match (s.kind, s.port) {
            (ServiceKind::Web, Some(port)) => port,
            _ => {
                return Err(Unresolved {
                    message: format!("service `{name}` listens on no port, so it has no address"),
                    help: "refer to a web service (one with a `port`)".into(),
                });
            }
        };
        return Ok(match fact {
            "host" => vec![Part::Host(name.to_owned())],
            "port" => vec![Part::Text(port.to_string())],
            "url" => vec![
                Part::Text("http://".into()),
                Part::Host(name.to_owned()),
                Part::Text(format!(":{port}")),
            ],
            other => return Err(unknown_fact(name, "a service", other, SERVICE_FACTS)),
        });
    }
    let mut names: Vec<&str> = model
        .postgres
        .keys()
        .chain(model.redis.keys())
        .chain(model.services.keys())
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    Err(Unresolved {
        message: format!("`${{{name}.{fact}}}` refers to `{name}`, which is not declared"),
        help: match did_you_mean(name, names.iter().copied()) {
            Some(n) => format!("did you mean `{n}`?"),
            None => "refer to a declared postgres, redis or web service".into(),
        },
    })
}

/// The sentinels of a Redis, as clients are told them: `sentinel-master` is the name they ask
/// for; `sentinels` is `HOST:PORT,…` (redis-py, django-redis); `sentinel-url` is kombu's
/// (Celery's) `sentinel://[:PASSWORD@]HOST:PORT;…`, with the server's password.
fn sentinel_facts(name: &str, r: &Redis, sentinel: &Sentinel, fact: &str) -> Vec<Part> {
    if fact == "sentinel-master" {
        return vec![Part::Text(sentinel.master_name.clone())];
    }
    let mut parts = Vec::new();
    for i in 1..=sentinel.count {
        match (fact, i) {
            ("sentinels", 1) => {}
            ("sentinels", _) => parts.push(Part::Text(",".into())),
            (_, 1) => parts.push(Part::Text("sentinel://".into())),
            _ => parts.push(Part::Text(";sentinel://".into())),
        }
        if let (Some(pw), "sentinel-url") = (&r.password, fact) {
            parts.push(Part::Text(":".into()));
            parts.push(Part::Secret(pw.clone()));
            parts.push(Part::Text("@".into()));
        }
        parts.push(Part::Host(sentinel_host(name, i)));
        parts.push(Part::Text(format!(":{}", sentinel.port)));
    }
    parts
}

/// `redis://[:PASSWORD@]HOST:PORT/DB`.
pub fn redis_url(model: &Model, name: &str, db: u32) -> Vec<Part> {
    let Some(r) = model.redis.get(name) else {
        return Vec::new();
    };
    let mut parts = vec![Part::Text("redis://".into())];
    if let Some(pw) = &r.password {
        parts.push(Part::Text(":".into()));
        parts.push(Part::Secret(pw.clone()));
        parts.push(Part::Text("@".into()));
    }
    parts.push(Part::Host(name.to_owned()));
    parts.push(Part::Text(format!(":{}/{db}", r.port)));
    parts
}

fn unknown_fact(name: &str, what: &str, fact: &str, facts: &[&str]) -> Unresolved {
    Unresolved {
        message: format!("`{name}` is {what}, which has no fact `{fact}`"),
        help: match did_you_mean(fact, facts.iter().copied()) {
            Some(f) => format!("did you mean `${{{name}.{f}}}`?"),
            None => format!(
                "its facts are {}",
                facts
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// A template's problem, at a byte range of the text.
struct TemplateError {
    start: usize,
    end: usize,
    problem: Unresolved,
}

/// The parts of `text`, or `None` when it holds no reference (nothing to expand).
fn expand(model: &Model, text: &str) -> Result<Option<Vec<Part>>, TemplateError> {
    expand_with(model, text, false)
}

/// [`expand`], but when `facts_only` a `${NAME}` without a dot is left as written: in a
/// command line it is the shell's (`${PORT}`, `${HOME}`).
fn expand_with(
    model: &Model,
    text: &str,
    facts_only: bool,
) -> Result<Option<Vec<Part>>, TemplateError> {
    if !text.contains("${") {
        return Ok(None);
    }
    let mut parts: Vec<Part> = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find("${") {
        // `$${` is a literal `${`.
        if rest[..at].ends_with('$') {
            literal.push_str(&rest[..at - 1]);
            literal.push_str("${");
            offset += at + 2;
            rest = &rest[at + 2..];
            continue;
        }
        literal.push_str(&rest[..at]);
        let start = offset + at;
        let Some(close) = rest[at..].find('}') else {
            return Err(TemplateError {
                start,
                end: text.len(),
                problem: Unresolved {
                    message: "`${` is never closed".into(),
                    help: "write `${db.host}`, or `$${` for a literal `${`".into(),
                },
            });
        };
        let inner = &rest[at + 2..at + close];
        let end = start + close + 1;
        if facts_only && !inner.contains('.') {
            literal.push_str(&rest[at..at + close + 1]);
            offset = end;
            rest = &text[end..];
            continue;
        }
        let resolved = match inner.split_once('.') {
            Some((name, what)) => fact(model, name.trim(), what.trim()),
            None => {
                let name = inner.trim();
                match model.secrets.contains_key(name) {
                    true => Ok(vec![Part::Secret(name.to_owned())]),
                    false => Err(Unresolved {
                        message: format!("`${{{name}}}` names no declared secret"),
                        help: match did_you_mean(name, model.secrets.keys().map(String::as_str)) {
                            Some(s) => format!("did you mean `${{{s}}}`?"),
                            None => "declare it (`secret NAME kind=…`), or refer to a resource fact: `${db.host}`".into(),
                        },
                    }),
                }
            }
        };
        let resolved = resolved.map_err(|problem| TemplateError {
            start,
            end,
            problem,
        })?;
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal)));
        }
        parts.extend(resolved);
        offset = end;
        rest = &text[end..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    // Adjacent texts as one.
    let mut merged: Vec<Part> = Vec::with_capacity(parts.len());
    for p in parts {
        match (merged.last_mut(), p) {
            (Some(Part::Text(a)), Part::Text(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    Ok(Some(merged))
}

/// Words that, before `_HOST` or `_URL`, name a kind of resource.
fn kind_words(var: &str) -> Option<&'static str> {
    let prefix = var
        .strip_suffix("_HOST")
        .or_else(|| var.strip_suffix("_URL"))
        .unwrap_or(var);
    let word = |w: &str| prefix == w || prefix.ends_with(&format!("_{w}"));
    if [
        "DB",
        "DATABASE",
        "POSTGRES",
        "POSTGRESQL",
        "PG",
        "PGBOUNCER",
    ]
    .iter()
    .any(|w| word(w))
    {
        Some("postgres")
    } else if ["REDIS", "CACHE", "BROKER", "QUEUE", "RQ"]
        .iter()
        .any(|w| word(w))
    {
        Some("redis")
    } else {
        None
    }
}

/// An absolute path to a file: every component a plain name.
fn is_file_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && rest.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-+@".contains(ch))
        })
}

fn is_loopback(host: &str) -> bool {
    matches!(
        host,
        "localhost" | "127.0.0.1" | "::1" | "[::1]" | "0.0.0.0"
    ) || host.starts_with("127.")
}

impl Lower<'_> {
    /// The `file` nodes of a service, their text as written.
    pub(super) fn app_files(
        &mut self,
        node: &crate::syntax::Node,
        ptr: &str,
        mounts: &[&str],
    ) -> BTreeMap<String, crate::model::AppFile> {
        let mut out = BTreeMap::new();
        for f in node.children_named("file") {
            let Some(path) = f.key() else { continue };
            let fp = format!("{ptr}/files/{}", pointer_segment(&path));
            self.record(&fp, f);
            // (A path that is not absolute, or climbs, is the schema's type error already.)
            let schema_refused = !path.starts_with('/')
                || path.split('/').any(|c| c == "..")
                || path.contains(char::is_whitespace);
            if !is_file_path(&path) && !schema_refused {
                let mut d = Diagnostic::error(
                    "invalid-value",
                    format!("`{path}` is not a file path kiln can deliver"),
                )
                .with_help("write an absolute path to a file: names of letters, digits and `._-+@`, without `.`, `..`, `//` or a trailing `/`: `/app/gunicorn.conf.py`");
                d = d.with_label(f.value_span(), "this path");
                self.diags.push(d);
                continue;
            }
            if schema_refused {
                continue;
            }
            // A tmpfs or a volume mounted there or above would hide the file (systemd's
            // PrivateTmp=, a volume's own content): refused in every target alike.
            if let Some(m) = mounts.iter().find(|m| {
                let m = m.trim_end_matches('/');
                path == m || path.starts_with(&format!("{m}/"))
            }) {
                self.diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("the file `{path}` is inside `{m}`, which is mounted over it"),
                    )
                    .with_label(f.value_span(), "hidden by that mount")
                    .with_help(format!(
                        "`{m}` is a tmpfs or a volume of this service: put the file elsewhere (`/etc/{}/…`, `/app/…`)",
                        self.project.name
                    )),
                );
                continue;
            }
            let text = self
                .string(f, "text", &format!("{fp}/text"))
                .unwrap_or_default();
            let mode = self
                .string(f, "mode", &format!("{fp}/mode"))
                .unwrap_or_else(|| "0444".into());
            if mode.len() != 4
                || !mode.starts_with('0')
                || !mode.chars().all(|c| ('0'..='7').contains(&c))
            {
                let mut d = Diagnostic::error(
                    "invalid-value",
                    format!("`{mode}` is not an octal file mode"),
                )
                .with_help("write four octal digits: `0444` (read-only), `0640`");
                if let Some((_, o)) = self.prov.lookup(&format!("{fp}/mode")) {
                    d = d.with_label(o[0].span, "not a mode");
                }
                self.diags.push(d);
                continue;
            }
            let comment = match self.string(f, "comment", &format!("{fp}/comment")) {
                Some(c) if c.is_empty() => None,
                Some(c) => Some(c),
                None if path.ends_with(".json") => None,
                None => Some("#".to_owned()),
            };
            // The references are expanded once every service is known (`resolve_references`).
            out.insert(
                path,
                crate::model::AppFile {
                    text: vec![Part::Text(text)],
                    mode,
                    comment,
                },
            );
        }
        out
    }

    /// Expands the references in every service's variables, and refuses a loopback address
    /// written for a declared resource's host where a target would reach the process itself.
    pub(super) fn resolve_references(&mut self, model: &mut Model) {
        let mut updates: Vec<(String, String, EnvValue)> = Vec::new();
        for (name, service) in &model.services {
            for (var, value) in &service.env {
                let EnvValue::Str(text) = value else { continue };
                let ptr = format!(
                    "/services/{}/env/{}",
                    pointer_segment(name),
                    pointer_segment(var)
                );
                match expand(model, text) {
                    Ok(Some(parts)) => {
                        updates.push((name.clone(), var.clone(), EnvValue::Wired(parts)))
                    }
                    Ok(None) => self.check_loopback(model, var, text, &ptr),
                    Err(e) => {
                        let span = self.text_span(&ptr, text, e.start, e.end);
                        let mut d = Diagnostic::error("unknown-reference", e.problem.message)
                            .with_help(e.problem.help);
                        if let Some(span) = span {
                            d = d.with_label(span, "this reference");
                        }
                        self.diags.push(d);
                    }
                }
            }
        }
        for (service, var, value) in updates {
            if let Some(s) = model.services.get_mut(&service) {
                s.env.insert(var, value);
            }
        }
        // Per-target values: references expand the same way (the value is that target's
        // own choice, so no loopback check).
        let mut updates: Vec<(String, String, Target, EnvValue)> = Vec::new();
        for (name, service) in &model.services {
            for (var, by) in &service.env_targets {
                for (target, value) in by {
                    let EnvValue::Str(text) = value else { continue };
                    let own = format!(
                        "/services/{}/env-targets/{}/{}",
                        pointer_segment(name),
                        pointer_segment(var),
                        target.as_str()
                    );
                    let ptr = if self.prov.lookup(&own).is_some_and(|(p, _)| p == own) {
                        own
                    } else {
                        format!("/env-targets/{}/{}", pointer_segment(var), target.as_str())
                    };
                    match expand(model, text) {
                        Ok(Some(parts)) => updates.push((
                            name.clone(),
                            var.clone(),
                            *target,
                            EnvValue::Wired(parts),
                        )),
                        Ok(None) => {}
                        Err(e) => {
                            let span = self.text_span(&ptr, text, e.start, e.end);
                            let mut d = Diagnostic::error("unknown-reference", e.problem.message)
                                .with_help(e.problem.help);
                            if let Some(span) = span {
                                d = d.with_label(span, "this reference");
                            }
                            self.diags.push(d);
                        }
                    }
                }
            }
        }
        for (service, var, target, value) in updates {
            if let Some(s) = model.services.get_mut(&service)
                && let Some(by) = s.env_targets.get_mut(&var)
            {
                by.insert(target, value);
            }
        }
        self.file_references(model);
        self.command_references(model);
        self.file_secrets_whole(model);
    }

    /// A secret delivered as a file (`deliver=file`) reaches a process as a path, never as
    /// its value: a variable that embeds it (a URL with the password) cannot be built.
    fn file_secrets_whole(&mut self, model: &Model) {
        let as_file = |s: &str| model.secrets.get(s).is_some_and(|x| x.as_file);
        for (name, service) in &model.services {
            let values = service.env.iter().chain(
                service
                    .env_targets
                    .iter()
                    .flat_map(|(var, by)| by.values().map(move |v| (var, v))),
            );
            let mut said = std::collections::BTreeSet::new();
            for (var, v) in values {
                if !matches!(v, EnvValue::Wired(_)) {
                    continue;
                }
                for secret in v.secrets().into_iter().filter(|s| as_file(s)) {
                    if !said.insert((var.clone(), secret.to_owned())) {
                        continue;
                    }
                    let ptr = format!(
                        "/services/{}/env/{}",
                        pointer_segment(name),
                        pointer_segment(var)
                    );
                    let mut d = Diagnostic::error(
                        "secret-file-embedded",
                        format!("`{var}` of `{name}` embeds the secret `{secret}`, which is delivered as a file"),
                    )
                    .with_help(format!(
                        "a file-delivered secret reaches the process as a path (`{secret}_FILE`), so no variable can hold its value: let the app read the file and build `{var}` itself, or deliver `{secret}` as a variable (drop `deliver=file`)"
                    ));
                    if let Some((_, o)) = self.prov.lookup(&ptr) {
                        d = d.with_label(o[0].span, "embeds it here");
                    }
                    let sp = format!("/secrets/{}", pointer_segment(secret));
                    if let Some((_, o)) = self.prov.lookup(&format!("{sp}/deliver")) {
                        d = d.with_label(o[0].span, "delivered as a file here");
                    }
                    self.diags.push(d);
                }
            }
        }
    }

    /// Expands the resource facts (`${NAME.FACT}`) in every command line: the container
    /// one with container hosts, the host one (systemd) with host addresses. A `${NAME}`
    /// without a dot is the shell's and stays. A secret is refused: a command line is
    /// visible to every process of the machine (`ps`).
    fn command_references(&mut self, model: &mut Model) {
        let mut updates: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for (name, service) in &model.services {
            let run = &service.run;
            if !run
                .argv
                .iter()
                .chain(&run.template)
                .any(|a| a.contains("${"))
            {
                continue;
            }
            let ptr = format!("/services/{}/run", pointer_segment(name));
            let mut failed = false;
            let mut render = |args: &[String], host: &dyn Fn(&str) -> String| -> Vec<String> {
                let mut out = Vec::with_capacity(args.len());
                for arg in args {
                    let parts = match expand_with(model, arg, true) {
                        Ok(Some(parts)) => parts,
                        Ok(None) => {
                            out.push(arg.clone());
                            continue;
                        }
                        Err(e) => {
                            if !failed {
                                let mut d =
                                    Diagnostic::error("unknown-reference", e.problem.message)
                                        .with_help(e.problem.help);
                                if let Some((_, o)) = self.prov.lookup(&ptr) {
                                    d = d.with_label(o[0].span, "in this command line");
                                }
                                self.diags.push(d);
                            }
                            failed = true;
                            out.push(arg.clone());
                            continue;
                        }
                    };
                    let mut text = String::new();
                    for p in parts {
                        match p {
                            Part::Text(t) => text.push_str(&t),
                            Part::Host(h) => text.push_str(&host(&h)),
                            Part::Secret(secret) => {
                                if !failed {
                                    let mut d = Diagnostic::error(
                                        "secret-in-command",
                                        format!("the command line of `{name}` would hold the secret `{secret}`"),
                                    )
                                    .with_help(format!(
                                        "every process of the machine can read a command line (`ps`): pass `{secret}` as a variable (the program reads it from the environment, or `env {{ … }}` sets the one it reads)"
                                    ));
                                    if let Some((_, o)) = self.prov.lookup(&ptr) {
                                        d = d
                                            .with_label(o[0].span, "a secret in this command line");
                                    }
                                    self.diags.push(d);
                                }
                                failed = true;
                            }
                        }
                    }
                    out.push(text);
                }
                out
            };
            let argv = render(&run.argv, &|h| model.container_host(h));
            let template = render(&run.template, &|h| model.host_address(h));
            if !failed {
                updates.push((name.clone(), argv, template));
            }
        }
        for (name, argv, template) in updates {
            if let Some(s) = model.services.get_mut(&name) {
                s.run.argv = argv;
                s.run.template = template;
            }
        }
    }

    /// Expands the references of every app file. A secret in a file is refused: files are
    /// written out in every target, so the app must read the secret from its variable.
    fn file_references(&mut self, model: &mut Model) {
        let mut updates: Vec<(String, String, Vec<Part>)> = Vec::new();
        for (name, service) in &model.services {
            for (path, file) in &service.files {
                let [Part::Text(text)] = file.text.as_slice() else {
                    continue;
                };
                let tp = format!(
                    "/services/{}/files/{}/text",
                    pointer_segment(name),
                    pointer_segment(path)
                );
                let parts = match expand(model, text) {
                    Ok(Some(parts)) => parts,
                    Ok(None) => continue,
                    Err(e) => {
                        let span = self.text_span(&tp, text, e.start, e.end);
                        let mut d = Diagnostic::error("unknown-reference", e.problem.message)
                            .with_help(e.problem.help);
                        if let Some(span) = span {
                            d = d.with_label(span, "this reference");
                        }
                        self.diags.push(d);
                        continue;
                    }
                };
                if let Some(Part::Secret(secret)) =
                    parts.iter().find(|p| matches!(p, Part::Secret(_)))
                {
                    let mut d = Diagnostic::error(
                        "secret-in-file",
                        format!("the file `{path}` would hold the secret `{secret}`"),
                    )
                    .with_help(format!(
                        "files are written out in every target; read the secret from its variable instead (`os.environ[\"{secret}\"]`)"
                    ));
                    if let Some((_, o)) = self.prov.lookup(&tp) {
                        d = d.with_label(o[0].span, "a secret in a file");
                    }
                    self.diags.push(d);
                    updates.push((name.clone(), path.clone(), Vec::new()));
                    continue;
                }
                updates.push((name.clone(), path.clone(), parts));
            }
        }
        for (service, path, parts) in updates {
            if let Some(f) = model
                .services
                .get_mut(&service)
                .and_then(|s| s.files.get_mut(&path))
            {
                f.text = parts;
            }
        }
    }

    /// The span of `text[start..end]` inside the spec value at `ptr`: exact when the value was
    /// written as a plain quoted string, else the whole value.
    fn text_span(&self, ptr: &str, text: &str, start: usize, end: usize) -> Option<Span> {
        let (_, origins) = self.prov.lookup(ptr)?;
        let span = origins[0].span;
        let written = self.project.sources.slice(span);
        if written.len() == text.len() + 2 && written.get(1..written.len() - 1) == Some(text) {
            return Some(Span::new(
                span.file,
                span.start as usize + 1 + start,
                end - start,
            ));
        }
        Some(span)
    }

    /// `DB_HOST "127.0.0.1"` (or a `postgres://…@localhost/…` URL) for a declared database:
    /// in a container the loopback address is the process itself.
    fn check_loopback(&mut self, model: &Model, var: &str, text: &str, ptr: &str) {
        let Some(kind) = kind_words(var) else { return };
        let host = match var.ends_with("_URL") {
            true => {
                let Some((_, after)) = text.split_once("://") else {
                    return;
                };
                let authority = after.split(['/', '?']).next().unwrap_or("");
                let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                hostport
                    .rsplit_once(':')
                    .filter(|(h, _)| !h.is_empty())
                    .map_or(hostport, |(h, _)| h)
            }
            false => text,
        };
        if !is_loopback(host) {
            return;
        }
        let resources: Vec<&String> = match kind {
            "postgres" => model.postgres.keys().collect(),
            _ => model.redis.keys().collect(),
        };
        // The resource the variable names: its name in the prefix, else the only one.
        let named = resources
            .iter()
            .find(|r| var.starts_with(&format!("{}_", super::env_prefix(r))))
            .or(if resources.len() == 1 {
                resources.first()
            } else {
                None
            });
        let Some(resource) = named else { return };
        let wrong: Vec<&str> = model
            .targets
            .iter()
            .filter(|t| match t {
                Target::Compose | Target::K8s => true,
                Target::Systemd => !is_loopback(&model.host_address(resource)),
                _ => false,
            })
            .map(|t| t.as_str())
            .collect();
        if wrong.is_empty() {
            return;
        }
        let fact = if var.ends_with("_URL") { "url" } else { "host" };
        let mut d = Diagnostic::error(
            "host-literal",
            format!(
                "`{var}` is `{host}`, which in {} is the process itself, not `{resource}`",
                wrong.join(" and ")
            ),
        )
        .with_help(format!(
            "write `{var} \"${{{resource}.{fact}}}\"`: each target then gives `{resource}`'s address as it reaches it"
        ));
        if let Some((_, o)) = self.prov.lookup(ptr) {
            d = d.with_label(o[0].span, "a loopback address");
        }
        self.diags.push(d);
    }
}

/// The variables `uses NAME` wires for a PostgreSQL database: `DATABASE_URL` (or
/// `NAME_DATABASE_URL` after the first), from the same fact as `${NAME.url}`.
pub fn postgres_wiring(model: &Model, name: &str, first: bool) -> BTreeMap<String, Vec<Part>> {
    let var = match first {
        true => "DATABASE_URL".to_owned(),
        false => format!("{}_DATABASE_URL", super::env_prefix(name)),
    };
    fact(model, name, "url")
        .map(|parts| BTreeMap::from([(var, parts)]))
        .unwrap_or_default()
}
