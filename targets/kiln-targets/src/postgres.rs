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
    format!("init-{}.sh", crate::file_part(name))
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
                    crate::file_part(&model.project.name)
                ),
                Some(pw) => format!(
                    "sudo sed -n 's/^{pw}=//p' /etc/{}/{}.env",
                    crate::file_part(&model.project.name),
                    crate::file_part(&model.environment)
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
    let repl = pg.replicas > 0;
    let rp = p("replication-password");
    let repl_secret = pg
        .replication_password
        .as_deref()
        .unwrap_or("the replication password");
    let mut env_prefix = "KILN_PW=$kiln_pw".to_owned();
    if repl {
        w.line("kiln_repl_pw=${KILN_REPLICATION_PASSWORD:-}", &[&rp]);
        w.line("if [ -z \"$kiln_repl_pw\" ]; then", &[&rp]);
        w.line(
            format!(
                "    echo \"{file}: KILN_REPLICATION_PASSWORD is empty: role {} needs its password ({repl_secret})\" >&2",
                pg.replication_user
            ),
            &[&rp, &p("replication-user")],
        );
        w.line("    return 1 2>/dev/null || exit 1", &[]);
        w.line("fi", &[]);
        env_prefix.push_str(" KILN_REPL_PW=$kiln_repl_pw");
    }
    w.line(
        format!(
            "{env_prefix} psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username \"${{POSTGRES_USER:-postgres}}\" --port \"${{PGPORT:-{}}}\" --dbname postgres <<'SQL'",
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
    if repl {
        let ru = &pg.replication_user;
        let from = [p("replication-user"), rp.clone(), p("replicas")];
        let from: Vec<&str> = from.iter().map(String::as_str).collect();
        w.line(
            "-- The role the replicas stream as: replication, nothing else.",
            &from,
        );
        w.line("\\set kiln_repl_pw `printf '%s' \"$KILN_REPL_PW\"`", &from);
        w.line(
            format!(
                "SELECT format('CREATE ROLE %I', {}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) \\gexec",
                literal(ru),
                literal(ru)
            ),
            &from,
        );
        w.line(
            format!(
                "ALTER ROLE {} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'kiln_repl_pw';",
                ident(ru)
            ),
            &from,
        );
        w.line("\\unset kiln_repl_pw", &[]);
    }
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
    if repl && flavor == Flavor::Container {
        let line = format!(
            "{} replication {} all {}",
            tcp_kind(pg),
            ident(&pg.replication_user),
            password_method(pg)
        );
        w.line(
            "# The image's pg_hba.conf has no replication line: the replicas' role, by password (over TLS when the server has it).",
            &[&p("replicas"), &p("tls")],
        );
        w.line(
            format!(
                "grep -qsxF '{line}' \"$PGDATA/pg_hba.conf\" || printf '%s\\n' '{line}' >>\"$PGDATA/pg_hba.conf\""
            ),
            &[&p("replicas"), &p("replication-user")],
        );
    }
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
        crate::file_part(name)
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
            crate::file_part(name)
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
    if let Some(t) = &pg.tls {
        let tp = format!("{base}/tls");
        let dir = format!("/etc/postgresql/{v}/{cl}/tls");
        let store = format!("/etc/credstore/{}", crate::file_part(&model.project.name));
        w.line(
            "# TLS: install the secrets' files here, readable by postgres only:",
            &[&tp],
        );
        let mut files = vec![
            (&t.cert, "server.crt", "cert"),
            (&t.key, "server.key", "key"),
        ];
        if let Some(ca) = &t.ca {
            files.push((ca, "ca.crt", "ca"));
        }
        for (secret, file, _) in &files {
            w.line(
                format!(
                    "#   install -D -o postgres -g postgres -m 0600 {store}/{secret} {dir}/{file}"
                ),
                &[&tp],
            );
        }
        w.line("ssl = on", &[&tp]);
        for (_, file, field) in &files {
            let setting = match *field {
                "cert" => "ssl_cert_file",
                "key" => "ssl_key_file",
                _ => "ssl_ca_file",
            };
            w.line(
                format!("{setting} = {}", literal(&format!("{dir}/{file}"))),
                &[&format!("{tp}/{field}")],
            );
        }
    }
    for (k, val) in &pg.settings {
        let ptr = pointer(&["postgres", name, "settings", k]);
        if pg.tls.is_some()
            && matches!(
                k.as_str(),
                "ssl" | "ssl_cert_file" | "ssl_key_file" | "ssl_ca_file"
            )
        {
            continue;
        }
        if !conf_key(k) {
            skipped.push((
                ptr,
                format!(
                    "`{k}` is not a PostgreSQL setting name: it is left out of postgresql/{}.conf",
                    crate::file_part(name)
                ),
            ));
            continue;
        }
        w.line(format!("{k} = {}", conf_value(val)), &[&ptr]);
    }
    (
        w.finish(format!("postgresql/{}.conf", crate::file_part(name))),
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

/// The pg_hba.conf connection type of TCP clients: `hostssl` (TLS required) when the spec
/// turns TLS on, else `host`.
fn tcp_kind(pg: &Postgres) -> &'static str {
    match pg.settings.get("ssl") {
        _ if pg.tls.is_some() => "hostssl",
        Some(serde_json::Value::Bool(true)) => "hostssl",
        Some(serde_json::Value::String(s)) if matches!(s.as_str(), "on" | "true") => "hostssl",
        _ => "host",
    }
}

/// `postgresql/pg_hba-<name>.conf`: who may log in to a host PostgreSQL, and how.
pub(crate) fn host_hba(model: &Model, name: &str) -> Artifact {
    let pg = &model.postgres[name];
    let base = pointer(&["postgres", name]);
    let method = password_method(pg);
    let tcp = tcp_kind(pg);
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
            crate::file_part(name)
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
    w.finish(format!("postgresql/pg_hba-{}.conf", crate::file_part(name)))
}

/// The name of the scheduled dump of postgres `name` (compose service, CronJob, unit part).
pub(crate) fn backup_name(name: &str) -> String {
    format!("{name}-backup")
}

/// The dump files of a database: `<database>-<UTC time>.dump`.
fn dump_glob(pg: &Postgres) -> String {
    format!("{}-*.dump", crate::file_part(&pg.database))
}

/// One dump, in sh, written to `dir`: pg_dump into a `.part` file, the proof that it
/// restores, then the rename (a dump is complete when it has its name) and the pruning.
/// Each step runs only when the one before succeeded, whatever the shell's `-e`. With
/// `restore`, the proof is a full restore into a scratch database (needs CREATEDB: the host's
/// superuser); else `pg_restore --list` reads the whole archive. The connection comes from
/// the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD).
fn dump_steps(pg: &Postgres, dir: &str, restore: bool) -> Vec<String> {
    let b = pg.backup.as_ref();
    let db = crate::file_part(&pg.database);
    let mut steps = vec![
        format!("f={dir}/{db}-$(date -u +%Y%m%dT%H%M%SZ).dump"),
        "pg_dump --format=custom --file=\"$f.part\"".to_owned(),
    ];
    if b.is_some_and(|b| b.verify) {
        if restore {
            let scratch: String = format!("{db}_restore_check").chars().take(63).collect();
            steps.push(format!("dropdb --if-exists {scratch}"));
            steps.push(format!("createdb {scratch}"));
            steps.push(format!(
                "pg_restore --exit-on-error --no-owner --no-privileges --dbname={scratch} \"$f.part\""
            ));
            steps.push(format!("dropdb {scratch}"));
        } else {
            steps.push("pg_restore --list \"$f.part\" >/dev/null".to_owned());
        }
    }
    steps.push("mv \"$f.part\" \"$f\"".to_owned());
    if let Some(days) = b.and_then(|b| b.keep) {
        steps.push(format!(
            "find {dir} -name \"{}\" -mtime +{} -delete",
            dump_glob(pg),
            days.saturating_sub(1)
        ));
    }
    steps.push("echo \"backup: $f\"".to_owned());
    steps
}

/// The script of a container's scheduled dump: the password from PGPASSWORD or the file
/// PGPASSWORD_FILE names, then one dump now with `KILN_BACKUP_ONCE=1` (a Kubernetes Job, a
/// test), else a loop that sleeps until each scheduled time (UTC, GNU date
/// of the Debian-based image). A failed dump is reported and the loop goes on.
pub(crate) fn container_backup_script(pg: &Postgres, dir: &str) -> String {
    let b = pg.backup.as_ref();
    let (every, hour, minute) = b.map_or(("daily", 2, 0), |b| (b.every.as_str(), b.hour, b.minute));
    let steps = dump_steps(pg, dir, false).join(" && ");
    let next = match every {
        "hourly" => {
            format!("next=$(date -u -d \"$(date -u +%Y-%m-%dT%H):{minute:02}\" +%s); step=3600")
        }
        "weekly" => format!("next=$(date -u -d \"sunday {hour:02}:{minute:02}\" +%s); step=604800"),
        _ => format!("next=$(date -u -d \"today {hour:02}:{minute:02}\" +%s); step=86400"),
    };
    format!(
        "[ -z \"${{PGPASSWORD_FILE:-}}\" ] || PGPASSWORD=$(cat \"$PGPASSWORD_FILE\"); export PGPASSWORD\n\
         mkdir -p {dir}\n\
         dump() {{ {steps}; }}\n\
         if [ \"${{KILN_BACKUP_ONCE:-}}\" = 1 ]; then dump; exit; fi\n\
         while :; do\n  now=$(date -u +%s); {next}\n  [ \"$next\" -gt \"$now\" ] || next=$((next + step))\n  sleep $((next - now))\n  dump || echo \"backup: the dump failed\" >&2\ndone\n"
    )
}

/// A Kubernetes CronJob schedule (UTC) for the backup.
pub(crate) fn cron_schedule(pg: &Postgres) -> String {
    let (every, hour, minute) = pg
        .backup
        .as_ref()
        .map_or(("daily", 2, 0), |b| (b.every.as_str(), b.hour, b.minute));
    match every {
        "hourly" => format!("{minute} * * * *"),
        "weekly" => format!("{minute} {hour} * * 0"),
        _ => format!("{minute} {hour} * * *"),
    }
}

/// A systemd `OnCalendar=` for the backup (UTC).
fn on_calendar(pg: &Postgres) -> String {
    let (every, hour, minute) = pg
        .backup
        .as_ref()
        .map_or(("daily", 2, 0), |b| (b.every.as_str(), b.hour, b.minute));
    match every {
        "hourly" => format!("*-*-* *:{minute:02}:00 UTC"),
        "weekly" => format!("Sun *-*-* {hour:02}:{minute:02}:00 UTC"),
        _ => format!("*-*-* {hour:02}:{minute:02}:00 UTC"),
    }
}

/// A systemd command line word: `$` and `%` as systemd reads them literally.
fn systemd_literal(s: &str) -> String {
    s.replace('%', "%%").replace('$', "$$")
}

/// The host's scheduled dump of postgres `name`: a oneshot service run as the `postgres` OS
/// user (peer authentication over the socket: no password anywhere) into a state directory
/// only it reads, and its timer. `project_unit` is the project's unit name part.
pub(crate) fn host_backup_units(model: &Model, name: &str, project_unit: &str) -> [Artifact; 2] {
    let pg = &model.postgres[name];
    let base = pointer(&["postgres", name]);
    let bp = format!("{base}/backup");
    let unit = format!("{project_unit}-{}", backup_name(&crate::file_part(name)));
    let state = format!("{project_unit}-backups/{}", crate::file_part(name));
    let server = host_unit(model, name);
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line("[Unit]", &[]);
    w.line(
        format!(
            "Description={project_unit}: dump of PostgreSQL `{name}` (database {}), environment {}",
            pg.database, model.environment
        ),
        &[&bp],
    );
    w.line(format!("After={server}"), &[&base]);
    w.line(format!("Requires={server}"), &[&base]);
    w.line("", &[]);
    w.line("[Service]", &[]);
    w.line("Type=oneshot", &[]);
    w.line(
        "# The server's own OS user: peer authentication on the socket, no password to keep.",
        &[],
    );
    w.line("User=postgres", &[]);
    w.line("Group=postgres", &[]);
    w.line(
        format!("# Dumps in /var/lib/{state}, readable by postgres only."),
        &[&bp],
    );
    w.line(format!("StateDirectory={state}"), &[&bp]);
    w.line("StateDirectoryMode=0700", &[]);
    w.line("UMask=0077", &[]);
    w.line(
        format!("Environment=PGPORT={} PGDATABASE={}", pg.port, pg.database),
        &[&format!("{base}/port"), &format!("{base}/database")],
    );
    let steps = dump_steps(pg, &format!("/var/lib/{state}"), true);
    let script = steps.join(" && ");
    w.line(
        format!("ExecStart=/bin/sh -c '{}'", systemd_literal(&script)),
        &[&bp, &format!("{bp}/verify"), &format!("{bp}/keep")],
    );
    for line in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "CapabilityBoundingSet=",
        "IPAddressDeny=any",
    ] {
        w.line(line, &[]);
    }
    let service = w.finish(format!("systemd/{unit}.service"));

    let mut t = Writer::new();
    t.line(format!("# {}", header_text(model)), &[]);
    t.line("[Unit]", &[]);
    t.line(
        format!(
            "Description={project_unit}: {} dump of PostgreSQL `{name}`",
            pg.backup.as_ref().map_or("daily", |b| b.every.as_str())
        ),
        &[&bp],
    );
    t.line("", &[]);
    t.line("[Timer]", &[]);
    t.line(
        format!("OnCalendar={}", on_calendar(pg)),
        &[&format!("{bp}/every"), &format!("{bp}/at")],
    );
    t.line(
        "# A dump missed while the host was off runs at the next boot.",
        &[],
    );
    t.line("Persistent=true", &[]);
    t.line("", &[]);
    t.line("[Install]", &[]);
    t.line("WantedBy=timers.target", &[]);
    let timer = t.finish(format!("systemd/{unit}.timer"));
    [service, timer]
}

/// The network name of read replica `i` (from 1) of postgres `name`.
pub(crate) fn replica_name(name: &str, i: u32) -> String {
    format!("{name}-replica-{i}")
}

/// The replication slot of replica `i`: a name PostgreSQL accepts (`[a-z0-9_]`).
fn slot_name(name: &str, i: u32) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{s}_replica_{i}")
}

/// The entrypoint of replica `i` of `pg` (whose primary is at `primary`): on an empty data
/// folder, pg_basebackup from the primary (retried until the primary takes it), with the
/// standby's settings written (`--write-recovery-conf`) and a slot of its own (created, or
/// reused when the replica is re-cloned); then `postgres` with the primary's settings as a
/// hot standby. The password comes from PGPASSWORD. Extra arguments go to `postgres`.
pub(crate) fn replica_script(pg: &Postgres, primary: &str, i: u32) -> String {
    let slot = slot_name(&crate::file_part(primary), i);
    let mut conn = format!(
        "--host={primary} --port={} --username={}",
        pg.port, pg.replication_user
    );
    // The primary requires TLS of its replicas when it has it (`hostssl replication`); the
    // standby keeps `sslmode=require` in the primary_conninfo it writes.
    if tcp_kind(pg) == "hostssl" {
        conn.push_str(" --dbname=sslmode=require");
    }
    let args: Vec<String> = crate::compose::containers::postgres_args("", pg)
        .into_iter()
        .map(|(a, _)| format!("-c {}", crate::sh_word(&a)))
        .collect();
    let mut exec = String::from("exec postgres -c hot_standby=on");
    for a in &args {
        exec.push(' ');
        exec.push_str(a);
    }
    exec.push_str(" \"$@\"");
    format!(
        "if [ ! -s \"$PGDATA/PG_VERSION\" ]; then\n\
         \x20 mkdir -p \"$PGDATA\"\n\
         \x20 until pg_basebackup --pgdata=\"$PGDATA\" {conn} --wal-method=stream --write-recovery-conf --checkpoint=fast --slot={slot} --create-slot ||\n\
         \x20   pg_basebackup --pgdata=\"$PGDATA\" {conn} --wal-method=stream --write-recovery-conf --checkpoint=fast --slot={slot}; do\n\
         \x20   echo \"replica: cannot clone the primary yet, retrying\" >&2; rm -rf \"$PGDATA\"/*; sleep 5\n\
         \x20 done\n\
         fi\n\
         chmod 0700 \"$PGDATA\"\n\
         {exec}\n"
    )
}

/// `-c` settings of a container's TLS: the secrets' files under /run/secrets, the key at
/// `key_path` (compose copies it to a private file first: PostgreSQL refuses a key others
/// can read). Each with its pointer.
pub(crate) fn tls_args(name: &str, pg: &Postgres, key_path: &str) -> Vec<(String, String)> {
    let Some(t) = &pg.tls else {
        return Vec::new();
    };
    let dir = kiln_core::model::SECRET_FILES_DIR;
    let p = |f: &str| pointer(&["postgres", name, "tls", f]);
    let mut out = vec![
        ("ssl=on".to_owned(), pointer(&["postgres", name, "tls"])),
        (format!("ssl_cert_file={dir}/{}", t.cert), p("cert")),
        (format!("ssl_key_file={key_path}"), p("key")),
    ];
    if let Some(ca) = &t.ca {
        out.push((format!("ssl_ca_file={dir}/{ca}"), p("ca")));
    }
    out
}

/// The secrets a container's PostgreSQL reads as files: its password's, then its TLS files.
pub(crate) fn file_secrets(model: &Model, pg: &Postgres) -> Vec<String> {
    let mut out: Vec<String> = pg
        .password
        .iter()
        .filter(|pw| model.secrets.get(*pw).is_some_and(|s| s.as_file))
        .cloned()
        .collect();
    if let Some(t) = &pg.tls {
        out.push(t.cert.clone());
        out.push(t.key.clone());
        out.extend(t.ca.clone());
    }
    out.dedup();
    out
}
