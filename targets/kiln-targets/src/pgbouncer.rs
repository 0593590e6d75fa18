//! The `pgbouncer` target: one `pgbouncer.ini` for the poolers of the model's databases.
//!
//! [`Flavor::Host`] is Debian's pgbouncer next to the systemd units (listening on the
//! pooler's `listen-addr`, logs and pid file where Debian's package keeps them);
//! [`Flavor::Container`] runs inside the compose deployment (databases by container name,
//! listening on every interface of the container, logging to stderr).
//!
//! Invariants: no password ever (clients authenticate against the SCRAM verifiers of
//! `auth_file`); only keys that exist in `versions.pgbouncer` (a key from a later version is
//! reported, never emitted: pgbouncer refuses to start on an unknown key).

use kiln_core::Artifact;
use kiln_core::model::{Model, Pooler, Target, Versions, pointer};

pub use crate::nginx::Flavor;
use crate::{Output, Unsupported, Writer, header_text};

/// The host flavour, under `pgbouncer/`.
pub fn emit(model: &Model) -> Output {
    let mut out = render_output(model, Flavor::Host);
    for a in &mut out.artifacts {
        a.path = format!("pgbouncer/{}", a.path);
    }
    out
}

/// The files of one flavour, paths relative to the pgbouncer folder (`pgbouncer.ini`).
pub fn render(model: &Model, flavor: Flavor) -> Vec<Artifact> {
    render_output(model, flavor).artifacts
}

/// Where the TLS key and certificate of the client side are expected (the model names none).
const CLIENT_TLS_KEY: &str = "/etc/pgbouncer/tls/server.key";
const CLIENT_TLS_CERT: &str = "/etc/pgbouncer/tls/server.crt";
/// The system trust store, for `server_tls_sslmode` verify-ca / verify-full.
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Like [`render`], with what the spec asks for that pgbouncer cannot do.
pub fn render_output(model: &Model, flavor: Flavor) -> Output {
    let mut unsupported = Vec::new();
    let mut report = |pointer: String, message: String| {
        unsupported.push(Unsupported {
            target: Target::Pgbouncer,
            pointer,
            message,
            security: false,
        })
    };
    let mut pooled: Vec<(&String, &kiln_core::model::Postgres, &Pooler)> = model
        .postgres
        .iter()
        .filter_map(|(name, pg)| pg.pooler.as_ref().map(|p| (name, pg, p)))
        .collect();
    // The pooler most services use comes first: its settings are the [pgbouncer] section.
    let users = |name: &str| {
        model
            .services
            .values()
            .filter(|s| s.uses.iter().any(|u| u == name))
            .count()
    };
    pooled.sort_by_key(|&(name, _, _)| std::cmp::Reverse(users(name)));
    let Some(&(first_name, _, first)) = pooled.first() else {
        return Output::default();
    };
    let fp = format!("{}/pooler", pointer(&["postgres", first_name]));

    let mut w = Writer::new();
    w.line(format!("; {}", header_text(model)), &[]);
    w.line(
        format!("; pgbouncer {}: no passwords here, clients authenticate against the SCRAM verifiers in auth_file.", model.versions.pgbouncer),
        &["/versions/pgbouncer"],
    );

    w.blank();
    w.line("[databases]", &[]);
    let mut members: Vec<(&String, &Pooler)> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for &(name, pg, pooler) in &pooled {
        let pp = pointer(&["postgres", name]);
        let pop = format!("{pp}/pooler");
        if pooler.port != first.port
            || (flavor == Flavor::Host && pooler.listen_addr != first.listen_addr)
        {
            report(
                format!("{pop}/port"),
                format!(
                    "the pooler of `{name}` listens on port {}, the one of `{first_name}` on port {}: one pgbouncer serves one address, so `{name}` gets no pooler here",
                    pooler.port, first.port
                ),
            );
            continue;
        }
        if names.contains(&pg.database.as_str()) {
            report(
                format!("{pp}/database"),
                format!(
                    "database `{}` is pooled twice: `{name}` gets no pooler",
                    pg.database
                ),
            );
            continue;
        }
        if !ini_key_ok(&pg.database) {
            report(
                format!("{pp}/database"),
                format!(
                    "pgbouncer cannot name database `{}` in [databases] (letters, digits, `_`, `.` and `-` only): `{name}` gets no pooler",
                    pg.database
                ),
            );
            continue;
        }
        names.push(&pg.database);
        let host = match flavor {
            Flavor::Host => model.host_address(name),
            Flavor::Container => model.container_host(name),
        };
        let mut entry = format!(
            "{} = host={} port={} dbname={}",
            pg.database,
            conn_value(&host),
            pg.port,
            conn_value(&pg.database)
        );
        // Per-database values where this pooler differs from the first one.
        if pooler.mode != first.mode {
            entry.push_str(&format!(" pool_mode={}", pooler.mode));
        }
        if pooler.default_pool_size != first.default_pool_size
            && let Some(n) = pooler.default_pool_size
        {
            entry.push_str(&format!(" pool_size={n}"));
        }
        if pooler.reserve_pool_size != first.reserve_pool_size
            && let Some(n) = pooler.reserve_pool_size
        {
            entry.push_str(&format!(" reserve_pool={n}"));
        }
        if pooler.max_db_connections != first.max_db_connections
            && let Some(n) = pooler.max_db_connections
        {
            entry.push_str(&format!(" max_db_connections={n}"));
        }
        w.line(
            entry,
            &[
                &pp,
                &format!("{pp}/database"),
                &format!("{pp}/host"),
                &format!("{pp}/port"),
                &pop,
            ],
        );
        members.push((name, pooler));
    }
    for (name, pooler) in &members[1..] {
        let pop = format!("{}/pooler", pointer(&["postgres", name]));
        let differs = [
            ("auth-type", pooler.auth_type != first.auth_type),
            ("auth-file", pooler.auth_file != first.auth_file),
            (
                "max-client-conn",
                pooler.max_client_conn != first.max_client_conn,
            ),
            ("min-pool-size", pooler.min_pool_size != first.min_pool_size),
            (
                "reserve-pool-timeout",
                pooler.reserve_pool_timeout != first.reserve_pool_timeout,
            ),
            (
                "server-idle-timeout",
                pooler.server_idle_timeout != first.server_idle_timeout,
            ),
            (
                "server-lifetime",
                pooler.server_lifetime != first.server_lifetime,
            ),
            (
                "query-wait-timeout",
                pooler.query_wait_timeout != first.query_wait_timeout,
            ),
            (
                "max-prepared-statements",
                pooler.max_prepared_statements != first.max_prepared_statements,
            ),
            ("admin-users", pooler.admin_users != first.admin_users),
            ("stats-users", pooler.stats_users != first.stats_users),
            (
                "ignore-startup-parameters",
                pooler.ignore_startup_parameters != first.ignore_startup_parameters,
            ),
            (
                "client-tls-sslmode",
                pooler.client_tls_sslmode != first.client_tls_sslmode,
            ),
            (
                "server-tls-sslmode",
                pooler.server_tls_sslmode != first.server_tls_sslmode,
            ),
        ];
        for (key, _) in differs.iter().filter(|(_, d)| *d) {
            report(
                format!("{pop}/{key}"),
                format!(
                    "`{key}` of the pooler of `{name}` differs from `{first_name}`'s, and one pgbouncer has one value: `{first_name}`'s applies"
                ),
            );
        }
    }

    w.blank();
    w.line("[pgbouncer]", &[]);
    let kv = |w: &mut Writer, key: &str, value: &str, from: &str| {
        w.line(format!("{key} = {value}"), &[from])
    };
    match flavor {
        Flavor::Host => kv(
            &mut w,
            "listen_addr",
            &first.listen_addr,
            &format!("{fp}/listen-addr"),
        ),
        Flavor::Container => w.line("listen_addr = 0.0.0.0", &[]),
    }
    kv(
        &mut w,
        "listen_port",
        &first.port.to_string(),
        &format!("{fp}/port"),
    );
    match flavor {
        Flavor::Host => w.line("unix_socket_dir = /var/run/postgresql", &[]),
        Flavor::Container => w.line("unix_socket_dir =", &[]),
    }
    if ![
        "scram-sha-256",
        "md5",
        "hba",
        "cert",
        "trust",
        "plain",
        "any",
        "pam",
    ]
    .contains(&first.auth_type.as_str())
    {
        report(
            format!("{fp}/auth-type"),
            format!("pgbouncer has no auth_type `{}`", first.auth_type),
        );
    } else {
        kv(
            &mut w,
            "auth_type",
            &first.auth_type,
            &format!("{fp}/auth-type"),
        );
    }
    kv(
        &mut w,
        "auth_file",
        &first.auth_file,
        &format!("{fp}/auth-file"),
    );
    if first.auth_type == "hba" {
        report(
            format!("{fp}/auth-type"),
            "auth_type hba needs auth_hba_file, which the model does not name".to_owned(),
        );
    }
    kv(&mut w, "pool_mode", &first.mode, &format!("{fp}/mode"));
    for (key, value, setting) in [
        ("max_client_conn", first.max_client_conn, "max-client-conn"),
        (
            "default_pool_size",
            first.default_pool_size,
            "default-pool-size",
        ),
        ("min_pool_size", first.min_pool_size, "min-pool-size"),
        (
            "reserve_pool_size",
            first.reserve_pool_size,
            "reserve-pool-size",
        ),
        (
            "reserve_pool_timeout",
            first.reserve_pool_timeout,
            "reserve-pool-timeout",
        ),
        (
            "max_db_connections",
            first.max_db_connections,
            "max-db-connections",
        ),
        (
            "server_idle_timeout",
            first.server_idle_timeout,
            "server-idle-timeout",
        ),
        ("server_lifetime", first.server_lifetime, "server-lifetime"),
        (
            "query_wait_timeout",
            first.query_wait_timeout,
            "query-wait-timeout",
        ),
    ] {
        if let Some(v) = value {
            kv(&mut w, key, &v.to_string(), &format!("{fp}/{setting}"));
        }
    }
    if let Some(n) = first.max_prepared_statements {
        if Versions::at_least(&model.versions.pgbouncer, "1.21") {
            kv(
                &mut w,
                "max_prepared_statements",
                &n.to_string(),
                &format!("{fp}/max-prepared-statements"),
            );
        } else {
            report(
                format!("{fp}/max-prepared-statements"),
                format!(
                    "max_prepared_statements needs pgbouncer 1.21 or later (versions.pgbouncer is {}): not emitted, pgbouncer would refuse to start",
                    model.versions.pgbouncer
                ),
            );
        }
    }
    for (key, list, setting) in [
        ("admin_users", &first.admin_users, "admin-users"),
        ("stats_users", &first.stats_users, "stats-users"),
        (
            "ignore_startup_parameters",
            &first.ignore_startup_parameters,
            "ignore-startup-parameters",
        ),
    ] {
        if !list.is_empty() {
            kv(&mut w, key, &list.join(","), &format!("{fp}/{setting}"));
        }
    }
    if let Some(mode) = &first.client_tls_sslmode {
        let tp = format!("{fp}/client-tls-sslmode");
        kv(&mut w, "client_tls_sslmode", mode, &tp);
        if mode != "disable" {
            w.line(format!("client_tls_key_file = {CLIENT_TLS_KEY}"), &[&tp]);
            w.line(format!("client_tls_cert_file = {CLIENT_TLS_CERT}"), &[&tp]);
        }
    }
    if let Some(mode) = &first.server_tls_sslmode {
        let tp = format!("{fp}/server-tls-sslmode");
        kv(&mut w, "server_tls_sslmode", mode, &tp);
        if mode.starts_with("verify") {
            w.line(format!("server_tls_ca_file = {SYSTEM_CA}"), &[&tp]);
        }
    }
    if flavor == Flavor::Host {
        w.line("logfile = /var/log/postgresql/pgbouncer.log", &[]);
        w.line("pidfile = /var/run/postgresql/pgbouncer.pid", &[]);
    }
    Output {
        artifacts: vec![w.finish("pgbouncer.ini")],
        unsupported,
        ..Default::default()
    }
}

/// What pgbouncer's ini parser takes as a key (1.18 has no quoting).
fn ini_key_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A libpq-style connection string value: single-quoted when it holds spaces or quotes.
fn conn_value(s: &str) -> String {
    if !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}
