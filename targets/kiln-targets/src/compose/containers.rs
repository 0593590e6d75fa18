//! What the two container targets (compose and k8s) share: how data services are
//! reached and checked, the official images' users, and the container flavour of
//! the nginx and pgbouncer files (rendered by their own emitters).

use kiln_core::Artifact;

use crate::Output;
use kiln_core::model::{
    LocationKind, Model, Pooler, Postgres, Redis, Service, ServiceKind, pointer,
};

/// uid/gid of the `postgres` user in the official Debian-based image (`postgres:15`).
/// Running as it from the start needs no capabilities: the entrypoint supports an
/// arbitrary `--user` when the data directory is writable.
pub(crate) const POSTGRES_UID: u32 = 999;
/// uid/gid of the `redis` user in the official images (Debian and Alpine alike).
pub(crate) const REDIS_UID: u32 = 999;
/// uid/gid of the `postgres` user the pgbouncer image runs as (edoburu/pgbouncer, Alpine).
pub(crate) const PGBOUNCER_UID: u32 = 70;

/// On Kubernetes the datastores run as high uids of their own instead (CIS 5.2.6, NSA/CISA:
/// a uid no host account has, so a container escape lands on nobody's files). The images
/// support it: postgres' entrypoint fakes the passwd entry (nss_wrapper) and initialises a
/// PGDATA folder inside the volume, redis needs only a writable /data, and pgbouncer reads
/// its mounted files; `fsGroup` makes each volume writable by that uid.
pub(crate) const K8S_POSTGRES_UID: u32 = 10999;
pub(crate) const K8S_REDIS_UID: u32 = 10998;
pub(crate) const K8S_PGBOUNCER_UID: u32 = 10997;

/// Fallback `pids` limits when the model has none for a data service (kiln's proposal:
/// PostgreSQL forks a backend per connection; the others are a few threads).
pub(crate) const POSTGRES_PIDS: u32 = 512;
pub(crate) const REDIS_PIDS: u32 = 128;
pub(crate) const PGBOUNCER_PIDS: u32 = 128;
pub(crate) const NGINX_PIDS: u32 = 512;
/// nginx's limits when the model has none (it has no resources for the proxy yet).
pub(crate) const NGINX_CPUS: &str = "1";
pub(crate) const NGINX_MEMORY: &str = "256M";

/// A data service an app service waits for and talks to.
pub(crate) struct Dependency {
    /// Network name (compose service, k8s Service): the pooler when there is one.
    pub service: String,
    /// The pointer of the data service in the model.
    pub pointer: String,
}

/// What `uses NAME` connects to.
pub(crate) fn dependency(model: &Model, used: &str) -> Option<Dependency> {
    if let Some(pg) = model.postgres.get(used) {
        return Some(match &pg.pooler {
            Some(p) => Dependency {
                service: model.container_host(&p.name),
                pointer: pointer(&["postgres", used, "pooler"]),
            },
            None => Dependency {
                service: model.container_host(used),
                pointer: pointer(&["postgres", used]),
            },
        });
    }
    model.redis.get(used).map(|_| Dependency {
        service: model.container_host(used),
        pointer: pointer(&["redis", used]),
    })
}

/// The app services whose pods talk to data service `name` (a postgres, redis, or a postgres
/// through its pooler): those that `use` it, and in Kubernetes those whose init containers
/// run a task that does (`depends-on` a task).
pub(crate) fn clients<'m>(model: &'m Model, name: &str) -> Vec<&'m str> {
    let uses = |s: &kiln_core::model::Service| s.uses.iter().any(|u| u == name);
    model
        .services
        .iter()
        .filter(|(_, s)| {
            uses(s)
                || s.depends_on.iter().any(|(dep, d)| {
                    d.condition == kiln_core::model::Condition::Completed
                        && model.services.get(dep).is_some_and(uses)
                })
        })
        .map(|(k, _)| k.as_str())
        .collect()
}

/// Every service a site routes to (its upstream and its locations' upstreams).
pub(crate) fn site_upstreams(model: &Model) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for (key, site) in &model.sites {
        if !site.upstream.is_empty() {
            out.push((key.as_str(), site.upstream.as_str()));
        }
        for loc in site.locations.values() {
            if let Some(u) = &loc.upstream
                && matches!(loc.kind, LocationKind::Proxy | LocationKind::Websocket)
            {
                out.push((key.as_str(), u.as_str()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `true` when a site routes requests to `service`.
pub(crate) fn is_upstream(model: &Model, service: &str) -> bool {
    site_upstreams(model).iter().any(|(_, s)| *s == service)
}

/// The public host name requests to `service` carry (its first site's first name), for
/// health checks that must pass Django's ALLOWED_HOSTS.
pub(crate) fn public_host<'m>(model: &'m Model, service: &str) -> Option<&'m str> {
    let (site, _) = site_upstreams(model)
        .into_iter()
        .find(|(_, s)| *s == service)?;
    model
        .sites
        .get(site)
        .and_then(|s| s.server_names.first())
        .map(String::as_str)
}

/// `uid:gid` → the numbers, when numeric.
pub(crate) fn parse_user(user: &str) -> Option<(u32, Option<u32>)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u.parse().ok()?;
    let gid = match g {
        Some(g) => Some(g.parse().ok()?),
        None => None,
    };
    Some((uid, gid))
}

/// A JSON setting as the text a config file or flag takes (`true` → `on` for
/// PostgreSQL, `yes` for Redis).
pub(crate) fn setting_text(v: &serde_json::Value, yes: &str, no: &str) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(true) => yes.to_owned(),
        serde_json::Value::Bool(false) => no.to_owned(),
        other => other.to_string(),
    }
}

/// `-c name=value` arguments of `postgres` (after the image's entrypoint): the port
/// when not 5432, then every setting. Each with its pointer.
pub(crate) fn postgres_args(name: &str, pg: &Postgres) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if pg.port != 5432 {
        out.push((
            format!("port={}", pg.port),
            pointer(&["postgres", name, "port"]),
        ));
    }
    for (k, v) in &pg.settings {
        out.push((
            format!("{k}={}", setting_text(v, "on", "off")),
            pointer(&["postgres", name, "settings", k]),
        ));
    }
    out
}

/// Where the data volume goes in the official image: its parent folder from PostgreSQL 18
/// on (the image keeps PGDATA in `/var/lib/postgresql/<major>/docker` and refuses to start
/// with a volume on the old `/var/lib/postgresql/data`), `/var/lib/postgresql/data` before.
pub(crate) fn postgres_data_mount(pg: &Postgres) -> &'static str {
    if pg.version >= 18 {
        "/var/lib/postgresql"
    } else {
        "/var/lib/postgresql/data"
    }
}

/// Settings that name a file inside the server's container, which neither container
/// target provides.
pub(crate) fn file_settings(pg: &Postgres) -> Vec<&str> {
    pg.settings
        .keys()
        .filter(|k| {
            k.ends_with("_file") || matches!(k.as_str(), "data_directory" | "ssl_dh_params_file")
        })
        .map(String::as_str)
        .collect()
}

/// `redis-server` options from the model: port, memory, eviction, persistence,
/// then every free setting. Each as (`--name`, value, pointer).
pub(crate) fn redis_options(name: &str, r: &Redis) -> Vec<(String, String, String)> {
    let p = |field: &str| pointer(&["redis", name, field]);
    let mut out = vec![("--port".to_owned(), r.port.to_string(), p("port"))];
    if let Some(m) = r.maxmemory {
        out.push(("--maxmemory".into(), redis_size(m), p("maxmemory")));
    }
    if let Some(e) = &r.eviction {
        out.push(("--maxmemory-policy".into(), e.clone(), p("eviction")));
    }
    out.push((
        "--appendonly".into(),
        if r.appendonly { "yes" } else { "no" }.into(),
        p("appendonly"),
    ));
    for (k, v) in &r.settings {
        out.push((
            format!("--{k}"),
            setting_text(v, "yes", "no"),
            pointer(&["redis", name, "settings", k]),
        ));
    }
    out
}

/// Bytes in Redis units (`512mb` = 512 × 1024²).
pub(crate) fn redis_size(bytes: u64) -> String {
    crate::binary_size(bytes, &[("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)])
}

/// Which server of a Redis group a container runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedisNode {
    /// The only server: the target runs no replicas.
    Alone,
    /// The primary of a group with replicas.
    Primary,
    /// Read replica `i` (from 1).
    Replica(u32),
}

/// Replication directives of `node` (besides the password's `masterauth`): a replica follows
/// the primary, and every server of a group announces its service name, not its container
/// address, so the sentinels still find it after a restart gives it another address.
pub(crate) fn redis_replication(name: &str, r: &Redis, node: RedisNode) -> Vec<Vec<String>> {
    let announce = |host: String| vec!["replica-announce-ip".to_owned(), host];
    match node {
        RedisNode::Alone => Vec::new(),
        RedisNode::Primary => vec![announce(name.to_owned())],
        RedisNode::Replica(i) => vec![
            vec!["replicaof".to_owned(), name.to_owned(), r.port.to_string()],
            announce(kiln_core::model::redis_replica_host(name, i)),
        ],
    }
}

/// The shell script that starts Redis. With a password, `requirepass` (and, in a group,
/// `masterauth`) reaches `redis-server` on stdin (`-` reads the config from it) through a
/// here-document, so the password is in no command line (`ps`) and no file; `env` names the
/// variable holding it. `$` is written as `dollar` (compose escapes it as `$$`).
pub(crate) fn redis_script(
    name: &str,
    r: &Redis,
    node: RedisNode,
    env: &str,
    dollar: &str,
) -> String {
    let mut cmd = String::from("exec redis-server -");
    for (flag, value, _) in redis_options(name, r) {
        cmd.push_str(&format!(" {flag} {}", sh_quote(&value)));
    }
    let mut conf = format!("requirepass {dollar}{env}\n");
    if node != RedisNode::Alone {
        conf.push_str(&format!("masterauth {dollar}{env}\n"));
    }
    for line in redis_replication(name, r, node) {
        conf.push_str(&line.join(" "));
        conf.push('\n');
    }
    format!("{cmd} <<EOF\n{conf}EOF\n")
}

/// The script of sentinel `i` of redis `name`: its configuration written to the container's
/// private tmpfs (Sentinel rewrites its file, so it cannot be a read-only mount), with the
/// password from `env`, then `redis-sentinel` as PID 1. A restarted sentinel starts from the
/// spec and learns the current primary from the others' announcements.
pub(crate) fn sentinel_script(
    name: &str,
    r: &Redis,
    s: &kiln_core::model::Sentinel,
    i: u32,
    env: &str,
    dollar: &str,
) -> String {
    let m = &s.master_name;
    let mut conf = format!(
        "port {}\ndir /tmp\nsentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n\
         sentinel announce-ip {}\nsentinel monitor {m} {name} {} {}\n\
         sentinel down-after-milliseconds {m} {}\nsentinel failover-timeout {m} {}\n\
         sentinel parallel-syncs {m} 1\n",
        s.port,
        kiln_core::model::sentinel_host(name, i),
        r.port,
        s.quorum,
        s.down_after * 1000,
        s.failover_timeout * 1000,
    );
    if r.password.is_some() {
        conf.push_str(&format!(
            "sentinel auth-pass {m} {dollar}{env}\nrequirepass {dollar}{env}\n"
        ));
    }
    format!(
        "umask 077\ncat > /tmp/sentinel.conf <<EOF\n{conf}EOF\nexec redis-sentinel /tmp/sentinel.conf\n"
    )
}

/// The start script of pgbouncer in compose: `auth_file` (on a tmpfs) gets the line
/// `"user" "password"` from PGBOUNCER_AUTH_USER and PGBOUNCER_AUTH_PASSWORD (`printf` is
/// a builtin, so the password is in no command line), then pgbouncer runs as PID 1.
/// The password must not contain `"` (it is URL-safe anyway: DATABASE_URL embeds it).
pub(crate) fn pgbouncer_script(auth_file: &str, password: bool, dollar: &str) -> String {
    let file = sh_quote(auth_file);
    let write = if password {
        format!(
            "printf '\"%s\" \"%s\"\\n' \"{dollar}PGBOUNCER_AUTH_USER\" \"{dollar}PGBOUNCER_AUTH_PASSWORD\" > {file}"
        )
    } else {
        format!(": > {file}")
    };
    format!("umask 077\n{write}\nexec pgbouncer /etc/pgbouncer/pgbouncer.ini\n")
}

/// Pointers behind the Redis command line.
pub(crate) fn redis_pointers(name: &str, r: &Redis) -> Vec<String> {
    let mut v: Vec<String> = redis_options(name, r)
        .into_iter()
        .map(|(_, _, p)| p)
        .collect();
    if r.password.is_some() {
        v.push(pointer(&["redis", name, "password"]));
    }
    v
}

pub(crate) use kiln_core::model::sh_quote;

/// A Python string literal.
fn py_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A health request to the web process from inside its container, with Python's
/// standard library (present in every Python image; no curl needed). It sends the
/// site's host name and `X-Forwarded-Proto: https` as nginx would, so Django's
/// ALLOWED_HOSTS and SECURE_SSL_REDIRECT do not turn the check into a 400 or a redirect.
pub(crate) fn python_health(port: u16, path: &str, host: Option<&str>, timeout: u64) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut headers = Vec::new();
    if let Some(h) = host {
        headers.push(format!("'Host': {}", py_str(h)));
    }
    headers.push("'X-Forwarded-Proto': 'https'".to_owned());
    format!(
        "import urllib.request as r; r.urlopen(r.Request({}, headers={{{}}}), timeout={})",
        py_str(&url),
        headers.join(", "),
        timeout.max(1)
    )
}

/// A TCP connection to the port (a web service without a health path).
pub(crate) fn python_tcp(port: u16, timeout: u64) -> String {
    format!(
        "import socket; socket.create_connection(('127.0.0.1', {port}), timeout={}).close()",
        timeout.max(1)
    )
}

/// The same request for images without Python: wget (busybox or GNU), else curl.
pub(crate) fn shell_health(port: u16, path: &str, host: Option<&str>) -> String {
    let url = sh_quote(&format!("http://127.0.0.1:{port}{path}"));
    let (wh, ch) = match host {
        Some(h) => (
            format!(" --header {}", sh_quote(&format!("Host: {h}"))),
            format!(" -H {}", sh_quote(&format!("Host: {h}"))),
        ),
        None => (String::new(), String::new()),
    };
    format!("wget -q -O /dev/null{wh} {url} || curl -fsS -o /dev/null{ch} {url}")
}

/// `true` when the service's program runs on Python (the program catalog says so): the
/// image then surely has `python`, and probes use it rather than wget or curl.
pub(crate) fn is_python(s: &Service) -> bool {
    s.run.runtime.as_deref() == Some("python")
}

/// The program's own liveness probe of a worker (the catalog's `probe`: for a Celery worker,
/// a broker ping addressed to itself); `dollar` is how a literal `$` is written in the target.
pub(crate) fn worker_probe(s: &Service, dollar: &str) -> Option<String> {
    if s.kind != ServiceKind::Worker {
        return None;
    }
    s.run.probe.as_ref().map(|p| p.replace('$', dollar))
}

/// The model's pointer of a service field.
pub(crate) fn sp(service: &str, field: &str) -> String {
    format!("{}/{}", pointer(&["services", service]), field)
}

/// The model's pointer of a service's variable.
pub(crate) fn env_pointer(service: &str, var: &str) -> String {
    let mut out = String::with_capacity(service.len() + var.len() + 16);
    out.push_str("/services/");
    kiln_core::model::push_pointer_segment(&mut out, service);
    out.push_str("/env/");
    kiln_core::model::push_pointer_segment(&mut out, var);
    out
}

/// The container flavour of the nginx files, paths relative to the nginx folder
/// (`nginx.conf`, `sites/…`, `snippets/…`), and what nginx cannot do of the spec.
pub(crate) fn nginx_files(model: &Model) -> Output {
    if model.sites.is_empty() {
        return Output::default();
    }
    crate::nginx::render_output(model, crate::nginx::Flavor::Container)
}

/// The container flavour of the pgbouncer files, paths relative to the pgbouncer folder
/// (`pgbouncer.ini`), and what pgbouncer cannot do of the spec.
pub(crate) fn pgbouncer_files(model: &Model) -> Output {
    crate::pgbouncer::render_output(model, crate::pgbouncer::Flavor::Container)
}

/// The ini file of one pooler among the pgbouncer files: `<pooler>.ini`, `<postgres>.ini`,
/// or the single `pgbouncer.ini`.
pub(crate) fn pooler_ini_name(files: &[Artifact], pg_name: &str, pooler: &Pooler) -> String {
    for candidate in [format!("{}.ini", pooler.name), format!("{pg_name}.ini")] {
        if files.iter().any(|a| a.path == candidate) {
            return candidate;
        }
    }
    "pgbouncer.ini".to_owned()
}

/// Text of a relative path that stays inside its folder (no absolute paths, no `..`).
pub(crate) fn contained(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// A DNS-label-safe name made from free text (a path or a folder): lower-case letters,
/// digits and `-`, at most 63 characters.
pub(crate) fn dns_label(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_owned();
    out.truncate(63);
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "root".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("allkeys-lru"), "allkeys-lru");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn labels() {
        assert_eq!(dns_label("/var/cache/nginx"), "var-cache-nginx");
        assert_eq!(dns_label("/"), "root");
        assert_eq!(dns_label("/Health/DB_perf/"), "health-db-perf");
    }

    #[test]
    fn containment() {
        assert!(contained("sites/a.conf"));
        assert!(!contained("../x"));
        assert!(!contained("/etc/x"));
        assert!(!contained("a//b"));
    }

    #[test]
    fn redis_sizes() {
        assert_eq!(redis_size(512 << 20), "512mb");
        assert_eq!(redis_size(3 << 30), "3gb");
        assert_eq!(redis_size(512_000_000), "500000kb");
        assert_eq!(redis_size(1001), "1001");
    }
}
