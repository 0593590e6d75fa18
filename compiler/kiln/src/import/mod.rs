//! `kiln import`: a docker compose file as a kiln spec. Each compose service becomes what
//! kiln would say of it — `postgres`, `redis`, a pgbouncer `pooler`, or a `service` whose
//! `run` is read from its command against the program catalog — and everything kiln cannot
//! say (or says itself) is reported at the line of the compose file that holds it. Secret
//! values are never copied: a variable that looks like a secret becomes a `secret`
//! declaration, its value left to the env file.

mod command;
mod yaml;

use std::collections::BTreeMap;
use std::fmt::Write;

use kiln_core::diagnostic::Diagnostic;
use kiln_core::source::{Origin, Sources, Span};
use kiln_core::{FileId, programs};

use yaml::{Node, Value};

/// What an import wrote, and what it could not map.
pub struct Imported {
    /// The spec: `kiln.kdl`, formatted.
    pub spec: String,
    /// Warnings (lost) and information (kiln does it itself), at their compose lines.
    pub report: Vec<Diagnostic>,
    /// The compose file, for rendering the report.
    pub sources: Sources,
}

/// The largest compose file kiln imports.
pub const MAX_COMPOSE_BYTES: usize = 8 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Postgres,
    Redis,
    Pooler,
    Proxy,
    App,
}

fn role(image: &str) -> Role {
    // `docker.io/library/postgres:15-alpine` → `postgres`
    let repo = image.split(['@', ':']).next().unwrap_or(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    match last {
        "postgres" | "postgis" | "postgresql" | "timescaledb" => Role::Postgres,
        "redis" | "valkey" | "redis-stack-server" => Role::Redis,
        "pgbouncer" => Role::Pooler,
        "nginx" | "traefik" | "caddy" | "haproxy" | "nginx-proxy" => Role::Proxy,
        _ => Role::App,
    }
}

/// The major version in an image tag: `15`, `15.4-alpine`, `7-alpine` → 15, 15, 7.
fn major(image: &str) -> Option<u32> {
    let tag = image.split('@').next()?.rsplit_once(':')?.1;
    tag.split(['.', '-']).next()?.parse().ok()
}

/// A kiln name for a compose one: lowercase, `-` for `_`.
fn kiln_name(compose: &str) -> String {
    let mut name: String = compose
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .collect();
    name = name.trim_matches('-').to_owned();
    if name.is_empty() { "app".into() } else { name }
}

/// Whether a variable holds a secret, by its name; and the kind kiln judges it as.
fn secret_kind(var: &str) -> Option<&'static str> {
    let v = var.to_ascii_uppercase();
    if v.contains("PASSWORD") || v.ends_with("_PASS") {
        Some("password")
    } else if v == "SECRET_KEY" || v.ends_with("_SECRET_KEY") || v == "DJANGO_SECRET_KEY" {
        Some("generic")
    } else if v.contains("API_KEY") || v.ends_with("_KEY") && v.contains("ACCESS") {
        Some("api-key")
    } else if v.contains("TOKEN") || v.contains("SECRET") {
        Some("token")
    } else if v.ends_with("_DSN") {
        Some("url")
    } else {
        None
    }
}

fn q(s: &str) -> String {
    format!("{s:?}")
}

struct Importer<'a> {
    file: FileId,
    text: &'a str,
    line_starts: Vec<usize>,
    report: Vec<Diagnostic>,
    secrets: BTreeMap<String, &'static str>,
    catalog: programs::Catalog,
}

impl Importer<'_> {
    /// The span of a line's text (without its indentation).
    fn line(&self, line: usize) -> Span {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |e| e - 1);
        let body = &self.text[start..end];
        let indent = body.len() - body.trim_start().len();
        let len = body.trim().len();
        Span::new(self.file, start + indent, len)
    }

    fn lost(&mut self, line: usize, message: String, help: &str) {
        let d = Diagnostic::warning("import-unmapped", message)
            .with_label(self.line(line), "not in the spec")
            .with_help(help);
        self.report.push(d);
    }

    fn by_kiln(&mut self, line: usize, message: String) {
        let d = Diagnostic::new(kiln_core::Severity::Info, "import-by-kiln", message)
            .with_label(self.line(line), "kiln writes its own");
        self.report.push(d);
    }

    /// `environment:` as a map or a list of `KEY=value`, in order, with each value's line.
    fn environment(node: &Node) -> Vec<(String, Option<String>, usize)> {
        match &node.value {
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| {
                    Some((k.str()?.to_owned(), v.str().map(str::to_owned), k.line))
                })
                .collect(),
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| {
                    let s = i.str()?;
                    let (k, v) = match s.split_once('=') {
                        Some((k, v)) => (k, Some(v.to_owned())),
                        None => (s, None),
                    };
                    Some((k.to_owned(), v, i.line))
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A list that compose also accepts as one string (`env_file`, `depends_on`, `command`).
    fn list(node: &Node) -> Vec<(String, usize)> {
        match &node.value {
            Value::Scalar(s) => vec![(s.clone(), node.line)],
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| Some((i.str()?.to_owned(), i.line)))
                .collect(),
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, _)| Some((k.str()?.to_owned(), k.line)))
                .collect(),
            Value::Null => Vec::new(),
        }
    }

    fn argv(node: &Node) -> Vec<String> {
        match &node.value {
            Value::Scalar(s) => command::words(s),
            _ => Self::list(node).into_iter().map(|(w, _)| w).collect(),
        }
    }

    /// The variables of a service, as `env` children and `secret` declarations. Returns the
    /// `env` lines.
    fn variables(&mut self, svc: &str, node: &Node, skip: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for (key, value, line) in Self::environment(node) {
            if skip.contains(&key.as_str()) {
                continue;
            }
            if let Some(kind) = secret_kind(&key) {
                self.secrets.entry(key.clone()).or_insert(kind);
                if value
                    .as_deref()
                    .is_some_and(|v| !v.is_empty() && !v.contains("${"))
                {
                    self.lost(
                        line,
                        format!("the value of `{key}` (service `{svc}`) is not copied into the spec"),
                        "it is declared as a `secret`: put its value in the environment's env file, never in the spec",
                    );
                }
                continue;
            }
            match value {
                Some(v) if v.contains("${") => self.lost(
                    line,
                    format!(
                        "`{key}` of service `{svc}` is set from the shell's environment (`{v}`)"
                    ),
                    "say its value in the spec (per environment), or declare it a `secret`",
                ),
                Some(v) => out.push(format!("{key} {}", q(&v))),
                None => self.lost(
                    line,
                    format!("`{key}` of service `{svc}` passes the shell's variable through"),
                    "say its value in the spec (per environment), or declare it a `secret`",
                ),
            }
        }
        out
    }
}

/// Imports the compose file `name` (its text).
/// What stops an import: the diagnostic, with the compose file it points into.
pub type Failed = Box<(Sources, Diagnostic)>;

pub fn compose(name: &str, text: &str, project: &str) -> Result<Imported, Failed> {
    let mut sources = Sources::new();
    let file = sources.add(name.to_owned(), text.to_owned(), Origin::Project);
    let mut im = Importer {
        file,
        text,
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        report: Vec::new(),
        secrets: BTreeMap::new(),
        catalog: programs::stdlib(&mut Sources::new(), &mut Vec::new()),
    };
    let fail = |im: &Importer, line: usize, message: String, help: &str| {
        Diagnostic::error("import-invalid", message)
            .with_label(im.line(line), "here")
            .with_help(help)
    };
    if text.len() > MAX_COMPOSE_BYTES {
        let d = Diagnostic::error(
            "import-invalid",
            format!("the compose file is larger than {MAX_COMPOSE_BYTES} bytes"),
        );
        return Err(Box::new((sources, d)));
    }
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let d = fail(
                &im,
                e.line,
                format!("not YAML: {}", e.message),
                "import a compose file (`docker compose config` prints the one compose reads)",
            );
            return Err(Box::new((sources, d)));
        }
    };
    let Some(services) = doc.get("services").filter(|s| !s.entries().is_empty()) else {
        let d = fail(
            &im,
            doc.line,
            "no `services:` in the file".into(),
            "import a compose file with services",
        );
        return Err(Box::new((sources, d)));
    };
    for (key, _) in doc.entries() {
        let Some(k) = key.str() else { continue };
        match k {
            "services" | "volumes" => {}
            "version" | "name" => im.by_kiln(key.line, format!("compose `{k}`: kiln writes the compose file's header itself")),
            _ if k.starts_with("x-") => {}
            _ => im.lost(
                key.line,
                format!("top-level `{k}` has no kiln equivalent"),
                "kiln writes compose's networks itself; say what the services need (`uses`, `depends-on`)",
            ),
        }
    }

    // Each service's role, and its kiln name.
    let mut roles: Vec<(String, String, &Node, Role, usize)> = Vec::new();
    for (key, svc) in services.entries() {
        let Some(compose_name) = key.str() else {
            continue;
        };
        let image = svc.get("image").and_then(Node::str).unwrap_or("");
        let entry = (
            compose_name.to_owned(),
            kiln_name(compose_name),
            svc,
            role(image),
            key.line,
        );
        roles.push(entry);
    }
    // What becomes a node of the spec: data services, and processes with a command.
    let imported = |svc: &Node, role: Role| match role {
        Role::Postgres | Role::Redis => true,
        Role::App => svc.get("command").is_some() || svc.get("entrypoint").is_some(),
        Role::Pooler | Role::Proxy => false,
    };
    let name_of = |compose: &str| {
        roles
            .iter()
            .find(|(c, ..)| c == compose)
            .filter(|(_, _, svc, r, _)| imported(svc, *r))
            .map(|(_, n, _, r, _)| (n.clone(), *r))
    };

    let mut body: Vec<String> = Vec::new();
    let has_pooler = roles.iter().any(|r| r.3 == Role::Pooler);
    for (compose_name, name, svc, role, line) in &roles {
        let at = *line;
        if name != compose_name {
            im.by_kiln(at, format!("service `{compose_name}` is `{name}` in kiln (names are lowercase, digits and `-`)"));
        }
        match role {
            Role::Postgres => body.extend(postgres(&mut im, name, svc, has_pooler, project)),
            Role::Redis => body.extend(redis(&mut im, name, svc)),
            Role::Pooler => {
                im.by_kiln(at, format!("`{compose_name}` (pgbouncer): kiln runs the pooler of a `postgres` with `pooler pgbouncer`"));
            }
            Role::Proxy => im.lost(
                at,
                format!("`{compose_name}` is a reverse proxy: kiln writes its own nginx, from `site` nodes"),
                "say each site: `site \"app.example.com\" upstream=web { tls … }`",
            ),
            Role::App => body.extend(service(&mut im, name, svc, at, &name_of)),
        }
    }

    let tier = if name.contains("prod") {
        "production"
    } else if name.contains("stag") {
        "staging"
    } else {
        "development"
    };
    let mut spec = String::new();
    let _ = writeln!(spec, "// Imported by `kiln import` from {name}.");
    let _ = writeln!(
        spec,
        "// Review each `kiln import:` note; `kiln compile` says what the policies think."
    );
    let _ = writeln!(spec, "project {}\n", kiln_name(project));
    let _ = writeln!(spec, "environment {tier} {{");
    let _ = writeln!(spec, "tier {tier}");
    let _ = writeln!(spec, "targets compose");
    for (var, kind) in &im.secrets {
        let _ = writeln!(spec, "secret {var} kind={kind}");
    }
    for line in body {
        spec.push_str(&line);
        spec.push('\n');
    }
    spec.push_str("}\n");
    let spec = match crate::format::format_kdl(&spec) {
        Ok(s) => s,
        Err(e) => {
            let d = Diagnostic::error(
                "import-bug",
                format!("kiln wrote a spec it cannot read: {e}"),
            )
            .with_help("this is a bug in kiln import; please report it with the compose file");
            return Err(Box::new((sources, d)));
        }
    };
    Ok(Imported {
        spec,
        report: im.report,
        sources,
    })
}

/// The keys of a service every role reads or reports the same way.
fn unmapped(im: &mut Importer, name: &str, svc: &Node, handled: &[&str]) {
    for (k, _) in svc.entries() {
        let Some(key) = k.str() else { continue };
        if handled.contains(&key) {
            continue;
        }
        match key {
            "container_name" | "hostname" | "networks" | "links" => im.by_kiln(
                k.line,
                format!("`{key}` of `{name}`: kiln names and connects the containers itself"),
            ),
            _ => im.lost(
                k.line,
                format!("`{key}` of `{name}` has no kiln equivalent"),
                "if the deployment needs it, keep it in a compose override file beside kiln's output",
            ),
        }
    }
}

fn env_of(svc: &Node) -> Vec<(String, Option<String>, usize)> {
    svc.get("environment")
        .map(Importer::environment)
        .unwrap_or_default()
}

fn postgres(im: &mut Importer, name: &str, svc: &Node, pooled: bool, project: &str) -> Vec<String> {
    let mut out = vec![format!("postgres {name} {{")];
    let image = svc.get("image").and_then(Node::str).unwrap_or("");
    if let Some(v) = major(image) {
        out.push(format!("version {v}"));
    }
    let env = env_of(svc);
    let literal_of = |var: &str| {
        env.iter()
            .find(|(k, ..)| k == var)
            .and_then(|(_, v, _)| v.clone())
            .filter(|v| !v.contains("${") && !v.is_empty())
    };
    // kiln needs both, and the app connects as its own non-superuser role: where compose
    // leaves them to the shell or an env file, the project's name stands in.
    let fallback = kiln_name(project).replace('-', "_");
    // `postgres` is the bootstrap superuser (compose's default): not a role for the app.
    let user = literal_of("POSTGRES_USER").filter(|u| u != "postgres");
    let database = literal_of("POSTGRES_DB").or_else(|| user.clone());
    for (setting, value) in [("database", database), ("user", user)] {
        match value {
            Some(v) => out.push(format!("{setting} {}", q(&v))),
            None => {
                out.push(format!(
                    "// kiln import: not in the compose file; the project's name stands in\n{setting} {}",
                    q(&fallback)
                ));
                let at = env
                    .iter()
                    .find(|(k, ..)| {
                        k == if setting == "user" {
                            "POSTGRES_USER"
                        } else {
                            "POSTGRES_DB"
                        }
                    })
                    .map_or(svc.line, |(_, _, l)| *l);
                im.lost(
                    at,
                    format!("the {setting} of `{name}` is not in the compose file (the shell or an env file sets it)"),
                    "kiln wrote the project's name: change it to the one your app uses",
                );
            }
        }
    }
    for (key, value, line) in &env {
        let literal = value
            .as_deref()
            .filter(|v| !v.contains("${") && !v.is_empty());
        match (key.as_str(), literal) {
            ("POSTGRES_DB" | "POSTGRES_USER", _) => {}
            ("POSTGRES_PASSWORD", _) => {
                im.secrets.insert("POSTGRES_PASSWORD".into(), "password");
                out.push("password POSTGRES_PASSWORD".into());
                if literal.is_some() {
                    im.lost(
                        *line,
                        format!(
                            "the value of `POSTGRES_PASSWORD` ({name}) is not copied into the spec"
                        ),
                        "it is the `secret POSTGRES_PASSWORD`: put its value in the env file",
                    );
                }
            }
            ("PGDATA", _) => im.by_kiln(*line, "`PGDATA`: kiln chooses the data folder".into()),
            (k, _) => im.lost(
                *line,
                format!("`{k}` of `{name}` is not a setting kiln reads for PostgreSQL"),
                "say PostgreSQL settings in `postgres { settings { … } }`",
            ),
        }
    }
    if pooled {
        out.push("pooler pgbouncer".into());
    }
    out.push("}".into());
    for key in ["volumes", "healthcheck", "ports", "restart"] {
        if let Some(n) = svc.get(key) {
            let what = match key {
                "volumes" => "its data volume",
                "healthcheck" => "a `pg_isready` health check",
                "ports" => "no published port: the database stays on the private network",
                _ => "its restart policy",
            };
            im.by_kiln(n.line, format!("`{key}` of `{name}`: kiln writes {what}"));
        }
    }
    if let Some(n) = svc.get("env_file") {
        im.lost(
            n.line,
            format!("`env_file` of `{name}` is not read"),
            "say `database` and `user` in the spec; the password is the `secret POSTGRES_PASSWORD`",
        );
    }
    unmapped(
        im,
        name,
        svc,
        &[
            "image",
            "environment",
            "volumes",
            "healthcheck",
            "ports",
            "restart",
            "env_file",
        ],
    );
    out
}

fn redis(im: &mut Importer, name: &str, svc: &Node) -> Vec<String> {
    let image = svc.get("image").and_then(Node::str).unwrap_or("");
    let mut props = String::new();
    if let Some(v) = major(image) {
        let _ = write!(props, " version={v}");
    }
    if let Some(cmd) = svc.get("command") {
        let argv = Importer::argv(cmd);
        let mut i = usize::from(argv.first().is_some_and(|a| a.contains("redis-server")));
        while i < argv.len() {
            let flag = argv[i].clone();
            let value = argv.get(i + 1).cloned().unwrap_or_default();
            i += 2;
            match flag.as_str() {
                "--requirepass" => {
                    im.secrets.insert("REDIS_PASSWORD".into(), "password");
                    props.push_str(" password=REDIS_PASSWORD");
                    im.lost(
                        cmd.line,
                        format!("the password of `{name}` is not copied into the spec"),
                        "it is the `secret REDIS_PASSWORD`: put its value in the env file",
                    );
                }
                "--maxmemory" => {
                    let _ = write!(props, " maxmemory={}", q(&value));
                }
                "--maxmemory-policy" => {
                    let _ = write!(props, " eviction={}", q(&value));
                }
                "--appendonly" => {
                    let on = value == "yes";
                    let _ = write!(props, " appendonly={}", if on { "#true" } else { "#false" });
                }
                _ => {
                    i -= 1;
                    im.lost(
                        cmd.line,
                        format!("`{flag}` of `{name}`'s command has no kiln setting"),
                        "say Redis settings in `redis { settings { … } }`",
                    );
                }
            }
        }
    }
    for key in ["volumes", "healthcheck", "ports", "restart"] {
        if let Some(n) = svc.get(key) {
            im.by_kiln(
                n.line,
                format!("`{key}` of `{name}`: kiln writes Redis's own"),
            );
        }
    }
    unmapped(
        im,
        name,
        svc,
        &[
            "image",
            "command",
            "volumes",
            "healthcheck",
            "ports",
            "restart",
        ],
    );
    vec![format!("redis {name}{props}")]
}

/// Compose's memory sizes (`512M`, `1g`) in kiln's (`"512Mi"`, `"1Gi"`).
fn size(v: &str) -> String {
    let t = v.trim().trim_end_matches(['b', 'B']);
    match t.chars().last() {
        Some(u @ ('k' | 'K' | 'm' | 'M' | 'g' | 'G')) => {
            format!("{}{}i", &t[..t.len() - 1], u.to_ascii_uppercase())
        }
        _ => t.to_owned(),
    }
}

fn service(
    im: &mut Importer,
    name: &str,
    svc: &Node,
    at: usize,
    name_of: &dyn Fn(&str) -> Option<(String, Role)>,
) -> Vec<String> {
    let mut argv = svc
        .get("entrypoint")
        .map(Importer::argv)
        .unwrap_or_default();
    argv.extend(svc.get("command").map(Importer::argv).unwrap_or_default());
    if argv.is_empty() {
        im.lost(
            at,
            format!("service `{name}` is not imported: it runs its image's own command"),
            "kiln runs the processes it can name (`run gunicorn …`, `run command …`): add a `command:` and import again, or keep it in a compose override file",
        );
        return Vec::new();
    }
    let mut out = vec![format!("service {name} {{")];
    match (svc.get("image").and_then(Node::str), svc.get("build")) {
        (Some(image), _) if !image.contains("${") => out.push(format!("image {}", q(image))),
        (image, build) => {
            let line = build.or(svc.get("image")).map_or(at, |n| n.line);
            out.push(format!(
                "// kiln import: set the image your CI builds and pushes\nimage {}",
                q(&format!("{name}:latest"))
            ));
            let why = match image {
                Some(i) => format!("the image of `{name}` is interpolated (`{i}`)"),
                None => format!("`{name}` is built by compose (`build:`): kiln deploys images"),
            };
            im.lost(
                line,
                why,
                "set `image` to the tag your CI pushes (pinned by digest in production)",
            );
        }
    }
    let run = command::read(&im.catalog, argv);
    let line = svc
        .get("command")
        .or(svc.get("entrypoint"))
        .map_or(at, |n| n.line);
    let mut run_line = format!("run {}", run.words.join(" "));
    for a in &run.args {
        let _ = write!(run_line, " {}", q(a));
    }
    for (k, v) in &run.options {
        let _ = write!(run_line, " {k}={v}");
    }
    if !run.extra.is_empty() {
        run_line.push_str(" {\nargs");
        for a in &run.extra {
            let _ = write!(run_line, " {}", q(a));
        }
        run_line.push_str("\n}");
        im.by_kiln(
            line,
            format!(
                "`{}` of `{name}`'s command: kept as `args`, not as an option kiln knows",
                run.extra.join(" ")
            ),
        );
    }
    out.push(run_line);
    for (word, why) in &run.dropped {
        im.lost(
            line,
            format!("`{word}` of `{name}`'s command is dropped: {why}"),
            "kiln starts servers for deployment",
        );
    }
    // The port: from the command, else the container side of `ports`/`expose`.
    let mut port = run.port;
    for key in ["ports", "expose"] {
        for (p, l) in svc.get(key).map(Importer::list).unwrap_or_default() {
            let container = p
                .rsplit(':')
                .next()
                .unwrap_or(&p)
                .split('/')
                .next()
                .unwrap_or("");
            match container.parse::<u16>() {
                Ok(c) if port.is_none() || port == Some(c) => port = Some(c),
                _ => im.lost(
                    l,
                    format!("`{p}` of `{name}`: kiln gives a service one port"),
                    "a second listener is a second service",
                ),
            }
            if key == "ports" && p.contains(':') {
                im.by_kiln(l, format!("`{p}` of `{name}`: kiln publishes web services through its nginx `site`, not the container's port"));
            }
        }
    }
    if let Some(p) = port {
        out.push(format!("port {p}"));
    }
    // A program kiln knows as a one-off task that listens on a port, or names a worker, is a
    // long-running process here (`manage.py runserver`, `npm start`, `manage.py rqworker`).
    if run.kind == kiln_core::model::ServiceKind::Task {
        let says = |w: &str| run.args.iter().any(|a| a.contains(w));
        if port.is_some() || says("runserver") {
            out.push("kind web".into());
        } else if says("worker") {
            out.push("kind worker".into());
        }
    }
    // What it uses and waits for.
    let mut uses = Vec::new();
    if let Some(deps) = svc.get("depends_on") {
        for (dep, l) in Importer::list(deps) {
            let condition = deps
                .get(&dep)
                .and_then(|d| d.get("condition"))
                .and_then(Node::str);
            match name_of(&dep) {
                Some((n, Role::Postgres | Role::Redis)) => uses.push(n),
                Some((_, Role::Pooler | Role::Proxy)) | None => im.lost(
                    l,
                    format!("`{name}` depends on `{dep}`, which is not imported"),
                    "kiln orders the services it runs itself",
                ),
                Some((n, Role::App)) => {
                    let c = match condition {
                        Some("service_healthy") => " condition=healthy",
                        Some("service_completed_successfully") => " condition=completed",
                        Some("service_started") => " condition=started",
                        _ => "",
                    };
                    out.push(format!("depends-on {n}{c}"));
                }
            }
        }
    }
    if !uses.is_empty() {
        out.push(format!("uses {}", uses.join(" ")));
    }
    if let Some(env) = svc.get("environment") {
        let vars = im.variables(name, env, &[]);
        if !vars.is_empty() {
            out.push("env {".into());
            out.extend(vars);
            out.push("}".into());
        }
    }
    if let Some(files) = svc.get("env_file") {
        for (f, l) in Importer::list(files) {
            im.lost(l, format!("`env_file` `{f}` of `{name}` is not read"), "say its settings in `env { … }` and declare its secrets with `secret`; kiln writes the env file the deployment reads");
        }
    }
    if let Some(check) = svc.get("healthcheck") {
        let test = check.get("test").map(Importer::argv).unwrap_or_default();
        let url = test
            .iter()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"));
        let path = url
            .and_then(|u| u.splitn(4, '/').nth(3))
            .map(|p| format!("/{p}"));
        match path {
            Some(path) => {
                let mut h = format!("health {}", q(&path));
                for (k, kiln) in [("interval", "interval"), ("timeout", "timeout"), ("retries", "retries"), ("start_period", "start-period")] {
                    if let Some(v) = check.get(k).and_then(Node::str) {
                        let v = if k == "retries" { v.to_owned() } else { q(v) };
                        let _ = write!(h, " {kiln}={v}");
                    }
                }
                out.push(h);
            }
            None => im.lost(check.line, format!("the health check of `{name}` is not an HTTP request"), "kiln checks web services over HTTP (`health \"/path\"`) and workers by their program's probe"),
        }
    }
    for (v, l) in svc.get("volumes").map(Importer::list).unwrap_or_default() {
        let parts: Vec<&str> = v.split(':').collect();
        match parts.as_slice() {
            [source, target, ..] if !source.starts_with(['.', '/', '~']) => {
                out.push(format!("volume {} {}", kiln_name(source), q(target)));
            }
            _ => im.lost(l, format!("the bind mount `{v}` of `{name}` is not imported"), "kiln deploys images, not source folders; a persistent folder is a `volume NAME \"/path\"`"),
        }
    }
    if let Some(r) = svc.get("restart").and_then(Node::str) {
        out.push(format!("restart {}", q(r)));
    }
    if let Some(u) = svc.get("user").and_then(Node::str) {
        im.lost(
            svc.get("user").map_or(svc.line, |n| n.line),
            format!("`user: {u}` of `{name}`"),
            "kiln runs every process as the project's user (`host { uid … }`)",
        );
    }
    if let Some(deploy) = svc.get("deploy") {
        if let Some(n) = deploy.get("replicas").and_then(Node::str) {
            out.push(format!("replicas {n}"));
        }
        let limits = deploy.get("resources").and_then(|r| r.get("limits"));
        let cpu = limits.and_then(|l| l.get("cpus")).and_then(Node::str);
        let memory = limits.and_then(|l| l.get("memory")).and_then(Node::str);
        if cpu.is_some() || memory.is_some() {
            let mut r = String::from("resources");
            if let Some(c) = cpu {
                let _ = write!(r, " cpu={}", q(c));
            }
            if let Some(m) = memory {
                let _ = write!(r, " memory={}", q(&size(m)));
            }
            out.push(r);
        }
        for (k, _) in deploy.entries() {
            if !matches!(k.str(), Some("replicas" | "resources")) {
                im.lost(
                    k.line,
                    format!(
                        "`deploy.{}` of `{name}` has no kiln equivalent",
                        k.str().unwrap_or("")
                    ),
                    "kiln chooses the update and placement policy",
                );
            }
        }
    }
    out.push("}".into());
    unmapped(
        im,
        name,
        svc,
        &[
            "image",
            "build",
            "command",
            "entrypoint",
            "ports",
            "expose",
            "depends_on",
            "environment",
            "env_file",
            "healthcheck",
            "volumes",
            "restart",
            "user",
            "deploy",
        ],
    );
    out
}
