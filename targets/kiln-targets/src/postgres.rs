//! PostgreSQL's own files.
//!
//! Every target gets one idempotent init script for the app's role, its database, the grants
//! and the extensions: the app logs in as a role of its own that owns the database and holds
//! no superuser, CREATEDB, CREATEROLE or replication right, and PostgreSQL's bootstrap
//! superuser (`postgres`) is kept for administration. A host also gets the server's settings
//! as a `conf.d` drop-in and its `pg_hba.conf`.
//!
//! Decisions:
//! - The script is POSIX sh around one psql session, so the official image's entrypoint can
//!   source it from `/docker-entrypoint-initdb.d` (a mounted file need not be executable)
//!   and an operator can run it on a host as the `postgres` OS user. It never calls `exit`
//!   while sourced (that would end the entrypoint) and never puts the password on a command
//!   line: psql reads it from the environment of its own backtick command.
//! - In a container the image gives the superuser the app's password (POSTGRES_PASSWORD):
//!   the script takes it away (`PASSWORD NULL`), so the superuser logs in only over the
//!   container's own socket (`docker compose exec`, `kubectl exec`).
//! - `REVOKE CREATE ON SCHEMA public FROM PUBLIC` (PostgreSQL 15's default, CVE-2018-1058) and
//!   `GRANT USAGE, CREATE ON SCHEMA public` to the app (migrations create tables there).
//! - pg_hba on a host: the superuser by `peer` on the socket, the app by the password method
//!   of `password_encryption` (SCRAM unless the spec says md5) on the socket and the loopback,
//!   nothing else: a line per need, no `all all`.

use kiln_core::Artifact;
use kiln_core::model::{Model, Postgres, pointer};

use crate::{Writer, header_text};

/// Who runs the init script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// The official image's entrypoint, once, when it initialises an empty data volume.
    Container,
    /// The operator, on the host, as the `postgres` OS user.
    Host,
}

/// The file name of the init script of postgres `name` (the same in every target's folder).
pub(crate) fn init_file(name: &str) -> String {
    format!("init-{}.sh", file_part(name))
}

/// A file name component: what is safe in a path and a shell word, nothing else.
pub(crate) fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `"name"`: an SQL identifier, quoted.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'text'`: an SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The authentication method pg_hba gives the app: what its password is stored as.
pub(crate) fn password_method(pg: &Postgres) -> &'static str {
    match pg.settings.get("password_encryption") {
        Some(serde_json::Value::String(m)) if m == "md5" => "md5",
        _ => "scram-sha-256",
    }
}

/// The text of the init script of postgres `name`, line by line with its pointers.
pub(crate) fn init_script(model: &Model, name: &str, flavor: Flavor) -> Writer {
    let pg = &model.postgres[name];
    let base = pointer(&["postgres", name]);
    let p = |f: &str| format!("{base}/{f}");
    let (user, db) = (&pg.user, &pg.database);
    let file = init_file(name);
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line(
        format!(
            "# postgres `{name}`: the app logs in as role `{user}`, which owns database `{db}`"
        ),
        &[&p("user"), &p("database")],
    );
    w.line(
        "# and holds no superuser, CREATEDB, CREATEROLE or replication right.",
        &[&p("user")],
    );
    let secret = pg.password.as_deref().unwrap_or("the app's password");
    match flavor {
        Flavor::Container => {
            w.line(
                "# Mounted in /docker-entrypoint-initdb.d: the image's entrypoint sources it once, when it",
                &[&base],
            );
            w.line(
                format!(
                    "# initialises an empty data volume, with POSTGRES_PASSWORD set ({secret})."
                ),
                &[&p("password")],
            );
            w.line(
                "# On a volume initialised before, run it once by hand as the superuser, over the socket.",
                &[&base],
            );
        }
        Flavor::Host => {
            let source = match &pg.password {
                Some(pw) if model.secrets.get(pw).is_some_and(|s| s.as_file) => format!(
                    "sudo cat /etc/credstore/{}/{pw}",
                    file_part(&model.project.name)
                ),
                Some(pw) => format!(
                    "sudo sed -n 's/^{pw}=//p' /etc/{}/{}.env",
                    file_part(&model.project.name),
                    file_part(&model.environment)
                ),
                None => "printf '%s' \"$PASSWORD\"".to_owned(),
            };
            w.line(
                "# Run it on the host as the postgres OS user, the password on its stdin (or in",
                &[&base],
            );
            w.line(
                "# POSTGRES_PASSWORD or the file POSTGRES_PASSWORD_FILE names), e.g.",
                &[&base],
            );
            w.line(
                format!("#   {source} | sudo -u postgres sh {file}"),
                &[&p("password")],
            );
        }
    }
    w.line(
        "# Idempotent: a second run changes nothing but the password.",
        &[],
    );
    w.line("kiln_pw=${POSTGRES_PASSWORD:-}", &[&p("password")]);
    w.line(
        "if [ -z \"$kiln_pw\" ] && [ -n \"${POSTGRES_PASSWORD_FILE:-}\" ]; then",
        &[&p("password")],
    );
    w.line(
        "    kiln_pw=$(cat \"$POSTGRES_PASSWORD_FILE\")",
        &[&p("password")],
    );
    w.line(
        "elif [ -z \"$kiln_pw\" ] && [ ! -t 0 ]; then",
        &[&p("password")],
    );
    w.line("    IFS= read -r kiln_pw || true", &[&p("password")]);
    w.line("fi", &[&p("password")]);
    w.line("if [ -z \"$kiln_pw\" ]; then", &[&p("password")]);
    w.line(
        format!("    echo \"{file}: POSTGRES_PASSWORD is empty: role {user} needs its password ({secret})\" >&2"),
        &[&p("password")],
    );
    w.line(
        "    return 1 2>/dev/null || exit 1 # sourced by the entrypoint: no exit",
        &[],
    );
    w.line("fi", &[]);
    w.line(
        format!(
            "KILN_PW=$kiln_pw psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username \"${{POSTGRES_USER:-postgres}}\" --port \"${{PGPORT:-{}}}\" --dbname postgres <<'SQL'",
            pg.port
        ),
        &[&p("port")],
    );
    w.line(
        "-- The password reaches the server only in ALTER ROLE: keep it out of the server log.",
        &[],
    );
    for set in [
        "SET log_statement = 'none';",
        "SET log_min_duration_statement = -1;",
        "SET log_min_error_statement = 'panic';",
    ] {
        w.line(set, &[]);
    }
    w.line(
        "\\set kiln_pw `printf '%s' \"$KILN_PW\"`",
        &[&p("password")],
    );
    w.line(
        format!(
            "SELECT format('CREATE ROLE %I', {}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) \\gexec",
            literal(user),
            literal(user)
        ),
        &[&p("user")],
    );
    w.line(
        format!(
            "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'kiln_pw';",
            ident(user)
        ),
        &[&p("user"), &p("password")],
    );
    w.line("\\unset kiln_pw", &[]);
    w.line(
        format!(
            "SELECT format('CREATE DATABASE %I OWNER %I', {}, {}) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {}) \\gexec",
            literal(db),
            literal(user),
            literal(db)
        ),
        &[&p("database"), &p("user")],
    );
    w.line(
        format!("ALTER DATABASE {} OWNER TO {};", ident(db), ident(user)),
        &[&p("database"), &p("user")],
    );
    w.line(
        "-- Only the owner (and the superuser) connects: no other role of the server reaches it.",
        &[],
    );
    w.line(
        format!("REVOKE ALL ON DATABASE {} FROM PUBLIC;", ident(db)),
        &[&p("database")],
    );
    w.line(format!("\\connect {}", ident(db)), &[&p("database")]);
    for ext in &pg.extensions {
        w.line(
            format!("CREATE EXTENSION IF NOT EXISTS {};", ident(ext)),
            &[&p("extensions")],
        );
    }
    w.line(
        "-- PostgreSQL 15's default on every version (CVE-2018-1058); the app's migrations create here.",
        &[],
    );
    w.line("REVOKE CREATE ON SCHEMA public FROM PUBLIC;", &[]);
    w.line(
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {};", ident(user)),
        &[&p("user")],
    );
    if flavor == Flavor::Container {
        w.line(
            "-- The image gave the superuser POSTGRES_PASSWORD, the app's: take it away. The superuser",
            &[&p("password")],
        );
        w.line(
            "-- now logs in only over the container's socket (`docker compose exec`, `kubectl exec`).",
            &[],
        );
        w.line("ALTER ROLE CURRENT_USER PASSWORD NULL;", &[&p("password")]);
        w.line(
            "-- The image's maintenance database is every role's by default: the app's is its own.",
            &[],
        );
        w.line("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;", &[]);
    }
    w.line("SQL", &[]);
    w
}

/// The systemd unit of a host PostgreSQL (Debian's per-cluster template).
pub(crate) fn host_unit(model: &Model, name: &str) -> String {
    let pg = &model.postgres[name];
    format!("postgresql@{}-{}.service", pg.version, cluster(model, name))
}

/// The Debian cluster a host PostgreSQL is: the packaged `main` when the host runs one,
/// else one cluster per server, named after it.
pub(crate) fn cluster(model: &Model, name: &str) -> String {
    let local = model
        .postgres
        .values()
        .filter(|pg| crate::systemd::is_local(&pg.host))
        .count();
    if local <= 1 {
        "main".to_owned()
    } else {
        file_part(name)
    }
}

/// `postgresql/<name>.conf`: the server's settings on a host, a drop-in for Debian's
/// `conf.d` (the packaged postgresql.conf includes it): the listen address and port, the
/// password method, then every setting of the spec.
pub(crate) fn host_conf(model: &Model, name: &str) -> (Artifact, Vec<(String, String)>) {
    let pg = &model.postgres[name];
    let base = pointer(&["postgres", name]);
    let cl = cluster(model, name);
    let v = pg.version;
    let mut skipped = Vec::new();
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line(
        format!(
            "# PostgreSQL {v} `{name}` on this host: install as /etc/postgresql/{v}/{cl}/conf.d/kiln.conf"
        ),
        &[&base, &format!("{base}/version")],
    );
    w.line(
        format!(
            "# with pg_hba-{}.conf as /etc/postgresql/{v}/{cl}/pg_hba.conf, then `systemctl restart postgresql@{v}-{cl}`.",
            file_part(name)
        ),
        &[&base],
    );
    w.line("", &[]);
    w.line(
        format!("listen_addresses = {}", literal(&pg.host)),
        &[&format!("{base}/host")],
    );
    w.line(format!("port = {}", pg.port), &[&format!("{base}/port")]);
    let method = if password_method(pg) == "md5" {
        "md5"
    } else {
        "scram-sha-256"
    };
    if !pg.settings.contains_key("password_encryption") {
        w.line(format!("password_encryption = {}", literal(method)), &[]);
    }
    for (k, val) in &pg.settings {
        let ptr = pointer(&["postgres", name, "settings", k]);
        if !conf_key(k) {
            skipped.push((
                ptr,
                format!(
                    "`{k}` is not a PostgreSQL setting name: it is left out of postgresql/{}.conf",
                    file_part(name)
                ),
            ));
            continue;
        }
        w.line(format!("{k} = {}", conf_value(val)), &[&ptr]);
    }
    (
        w.finish(format!("postgresql/{}.conf", file_part(name))),
        skipped,
    )
}

/// A postgresql.conf parameter name.
fn conf_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A value as postgresql.conf reads it: numbers and booleans bare, text single-quoted with
/// its quotes doubled and its backslashes and line breaks escaped (the file's own escapes).
fn conf_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Bool(b) => if *b { "on" } else { "off" }.to_owned(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            let s = crate::compose::containers::setting_text(other, "on", "off");
            let mut out = String::from("'");
            for c in s.chars() {
                match c {
                    '\'' => out.push_str("''"),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        }
    }
}

/// `postgresql/pg_hba-<name>.conf`: who may log in to a host PostgreSQL, and how.
pub(crate) fn host_hba(model: &Model, name: &str) -> Artifact {
    let pg = &model.postgres[name];
    let base = pointer(&["postgres", name]);
    let method = password_method(pg);
    // TLS required of TCP clients when the spec turns it on.
    let tcp = match pg.settings.get("ssl") {
        Some(serde_json::Value::Bool(true)) => "hostssl",
        Some(serde_json::Value::String(s)) if matches!(s.as_str(), "on" | "true") => "hostssl",
        _ => "host",
    };
    let (db, user) = (ident(&pg.database), ident(&pg.user));
    let from = [
        format!("{base}/database"),
        format!("{base}/user"),
        format!("{base}/settings/password_encryption"),
        format!("{base}/settings/ssl"),
    ];
    let from: Vec<&str> = from.iter().map(String::as_str).collect();
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line(
        format!(
            "# Who logs in to PostgreSQL `{name}`: install as /etc/postgresql/{}/{}/pg_hba.conf (see {}.conf).",
            pg.version,
            cluster(model, name),
            file_part(name)
        ),
        &[&base],
    );
    w.line(
        "# A line per need and nothing else: any other connection is refused.",
        &[],
    );
    w.line(
        "# TYPE  DATABASE        USER            ADDRESS                 METHOD",
        &[],
    );
    w.line(
        "# Administration: `sudo -u postgres psql` (the OS user is the role).",
        &[],
    );
    w.line(
        format!(
            "{:<7} {:<15} {:<15} {:<23} peer",
            "local", "all", "postgres", ""
        ),
        &[],
    );
    w.line(format!("# The app, with its password ({method})."), &from);
    w.line(
        format!("{:<7} {db:<15} {user:<15} {:<23} {method}", "local", ""),
        &from,
    );
    for addr in ["127.0.0.1/32", "::1/128"] {
        w.line(
            format!("{tcp:<7} {db:<15} {user:<15} {addr:<23} {method}"),
            &from,
        );
    }
    w.finish(format!("postgresql/pg_hba-{}.conf", file_part(name)))
}
