//! The resolved environment: what `kiln inspect --env NAME` prints, what every
//! policy receives as `spec`, and what every target emits from. Its JSON form is
//! versioned ([`MODEL_SCHEMA`]) and documented in `docs/model.md`; maps are keyed
//! by stable names, never by positions.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::source::Span;

pub const MODEL_SCHEMA: &str = "kiln.model/v1";

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Model {
    pub schema: &'static str,
    pub project: ProjectInfo,
    pub environment: String,
    pub tier: Tier,
    pub versions: Versions,
    pub host: Host,
    pub env: BTreeMap<String, EnvValue>,
    /// Other values of `env` variables for some targets (`NAME value systemd="…"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env_targets: EnvTargets,
    pub secrets: BTreeMap<String, Secret>,
    pub services: BTreeMap<String, Service>,
    pub postgres: BTreeMap<String, Postgres>,
    pub redis: BTreeMap<String, Redis>,
    pub sites: BTreeMap<String, Site>,
    pub firewall: Option<Firewall>,
    pub fail2ban: Option<Fail2ban>,
    pub alerts: Option<Alerts>,
    pub targets: Vec<Target>,
    pub kubernetes: Kubernetes,
    pub compose: Compose,
    pub policies: PolicyConfig,
    /// Lines the spec adds to generated files (`patch`), in spec order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    /// Which spec spans set each value, keyed by JSON pointer into this document.
    #[serde(skip)]
    pub provenance: Provenance,
}

/// A `patch`: lines added to one generated file, for what the language does not say.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Patch {
    #[serde(flatten)]
    pub target: PatchTarget,
    /// What it adds, in order: nginx directives, systemd keys or compose keys, each a name
    /// and its values.
    pub lines: Vec<PatchLine>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "target", rename_all = "kebab-case")]
pub enum PatchTarget {
    Nginx {
        site: String,
        location: Option<String>,
    },
    Systemd {
        service: String,
        section: String,
    },
    Compose {
        service: String,
    },
}

impl PatchTarget {
    pub fn target(&self) -> Target {
        match self {
            PatchTarget::Nginx { .. } => Target::Nginx,
            PatchTarget::Systemd { .. } => Target::Systemd,
            PatchTarget::Compose { .. } => Target::Compose,
        }
    }
}

/// One line of a patch: a directive or key, and its values as the spec gives them.
#[derive(Clone, Debug, Serialize)]
pub struct PatchLine {
    pub name: String,
    pub values: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProjectInfo {
    pub name: String,
    pub output: String,
    /// The prefix the app reads its framework settings under (`DJANGO_`).
    pub settings_prefix: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Production,
    Staging,
    Development,
}

impl Tier {
    pub fn parse(s: &str) -> Option<Tier> {
        Some(match s {
            "production" => Tier::Production,
            "staging" => Tier::Staging,
            "development" => Tier::Development,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Production => "production",
            Tier::Staging => "staging",
            Tier::Development => "development",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Versions {
    pub nginx: String,
    pub pgbouncer: String,
    pub openssl: String,
    pub systemd: u32,
}

impl Versions {
    /// `true` when `version` (like "1.22" or "1.29.3") is at least `min`.
    pub fn at_least(version: &str, min: &str) -> bool {
        let parse = |v: &str| {
            v.split('.')
                .map(|p| p.parse::<u32>().unwrap_or(0))
                .collect::<Vec<_>>()
        };
        parse(version) >= parse(min)
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Host {
    pub user: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
    pub root: String,
    pub venv: String,
    pub env_file: String,
    pub log_dir: String,
    /// How logrotate rotates `<log-dir>/*.log` (the systemd target's `logrotate/<project>`).
    pub log_rotation: LogRotation,
    pub writable: Vec<String>,
    /// `systemd` (a unit per process) or `supervisor` (programs in one supervisord file).
    pub process_manager: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogRotation {
    /// `daily`, `weekly` or `monthly`.
    pub every: String,
    pub keep: u32,
    /// Bytes: rotate sooner when a log reaches it.
    pub max_size: Option<u64>,
}

/// Per variable, its value in the targets that take another one than the default.
pub type EnvTargets = BTreeMap<String, BTreeMap<Target, EnvValue>>;

/// A node's [plain settings](crate::schema::NodeSpec::plain), by name: lowered from their
/// declaration alone, read by the emitters that render them. Sizes and durations keep the
/// spec's text; other values their type.
pub type Options = BTreeMap<String, serde_json::Value>;

/// A value of an environment variable.
#[derive(Clone, Debug, PartialEq)]
pub enum EnvValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// The variable is the secret of that name.
    Secret(String),
    /// Derived by wiring; holds secrets when any part is a secret.
    Wired(Vec<Part>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    /// The network address of a data service (differs between containers and hosts).
    Host(String),
    Secret(String),
}

impl EnvValue {
    /// Names of the secrets this value holds.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            EnvValue::Secret(s) => vec![s],
            EnvValue::Wired(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Secret(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_secret(&self) -> bool {
        !self.secrets().is_empty()
    }

    /// The plain text of a non-secret value, with data service hosts given by `host`.
    /// `None` for secret values.
    pub fn render(&self, host: &dyn Fn(&str) -> String) -> Option<String> {
        Some(match self {
            EnvValue::Str(s) => s.clone(),
            EnvValue::Int(i) => i.to_string(),
            EnvValue::Float(f) => f.to_string(),
            EnvValue::Bool(b) => b.to_string(),
            EnvValue::Secret(_) => return None,
            EnvValue::Wired(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Host(h) => out.push_str(&host(h)),
                        Part::Secret(_) => return None,
                    }
                }
                out
            }
        })
    }

    /// The value's shape with secrets shown as `${NAME}`: for `.env.example`
    /// comments and the model's JSON. Never holds a secret's value.
    pub fn template(&self, host: &dyn Fn(&str) -> String) -> String {
        match self {
            EnvValue::Secret(s) => format!("${{{s}}}"),
            EnvValue::Wired(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.clone(),
                    Part::Host(h) => host(h),
                    Part::Secret(s) => format!("${{{s}}}"),
                })
                .collect(),
            other => other.render(host).unwrap_or_default(),
        }
    }
}

impl Serialize for EnvValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            EnvValue::Str(v) => s.serialize_str(v),
            EnvValue::Int(v) => s.serialize_i64(*v),
            EnvValue::Float(v) => s.serialize_f64(*v),
            EnvValue::Bool(v) => s.serialize_bool(*v),
            EnvValue::Secret(name) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("secret", name)?;
                m.end()
            }
            EnvValue::Wired(_) if !self.is_secret() => {
                s.serialize_str(&self.template(&|h| h.to_owned()))
            }
            EnvValue::Wired(_) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("template", &self.template(&|h| h.to_owned()))?;
                m.serialize_entry("secrets", &self.secrets())?;
                m.end()
            }
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Secret {
    pub kind: String,
    pub optional: bool,
    pub description: Option<String>,
    /// The services that receive it; empty means every application process.
    pub services: Vec<String>,
    /// `false` (`apps=#false`): no application process receives it; a data service's own
    /// secret (a replication password).
    pub apps: bool,
    /// The app's own minimum length for its value.
    pub min_length: Option<u32>,
    /// `deliver=file`: processes get a read-only file, its path in `<VAR>_FILE`, instead of
    /// the variable (see [`SECRET_FILES_DIR`]).
    #[serde(rename = "deliver", serialize_with = "ser_deliver")]
    pub as_file: bool,
}

fn ser_deliver<S: serde::Serializer>(as_file: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *as_file { "file" } else { "env" })
}

/// Where containers (compose, Kubernetes) find a secret delivered as a file.
pub const SECRET_FILES_DIR: &str = "/run/secrets";

/// The variable that holds the path of a secret delivered as a file, for variable `var`.
pub fn secret_file_variable(var: &str) -> String {
    format!("{var}_FILE")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Web,
    Worker,
    Beat,
    Task,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Service {
    pub kind: ServiceKind,
    pub preset: Option<String>,
    pub image: Option<String>,
    pub run: Process,
    pub port: Option<u16>,
    pub health: Option<Health>,
    /// `haproxy`: a load balancer with health checks in front of the replicas.
    pub balancer: Option<String>,
    pub replicas: u32,
    pub resources: Resources,
    pub uses: Vec<String>,
    /// Services of the environment this one starts after, and when.
    pub depends_on: BTreeMap<String, Dependency>,
    /// Every variable the process gets: project env, wiring, secrets, its own env.
    pub env: BTreeMap<String, EnvValue>,
    /// Other values of some of them for some targets (`NAME value systemd="…"`), its own or
    /// inherited with the project's value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env_targets: EnvTargets,
    pub volumes: BTreeMap<String, Volume>,
    /// Text files the process reads, by their path inside it.
    pub files: BTreeMap<String, AppFile>,
    pub read_only: bool,
    pub tmpfs: Vec<String>,
    /// Container user `uid:gid`.
    pub user: String,
    pub cap_add: Vec<String>,
    pub restart: String,
    pub stop_timeout: Option<u64>,
    /// Its systemd unit's name (without `.service`) when the spec gives one.
    pub unit: Option<String>,
}

/// A text file a process reads (`file PATH { text … }`).
#[derive(Clone, Debug)]
pub struct AppFile {
    /// The content: text and resource hosts, never a secret.
    pub text: Vec<Part>,
    /// Octal permissions (`0444`).
    pub mode: String,
    /// What starts a comment in it, for kiln's header line; `None`: no header (JSON).
    pub comment: Option<String>,
}

impl AppFile {
    /// The content with data service hosts given by `host`, ending in a newline (a KDL
    /// multi-line string drops its last one; a text file keeps it).
    pub fn render(&self, host: &dyn Fn(&str) -> String) -> String {
        let mut text: String = self
            .text
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Host(h) => host(h),
                Part::Secret(_) => String::new(),
            })
            .collect();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

impl Serialize for AppFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("text", &self.render(&|h| h.to_owned()))?;
        m.serialize_entry("mode", &self.mode)?;
        m.serialize_entry("comment", &self.comment)?;
        m.end()
    }
}

/// One `depends-on` of a service.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Dependency {
    pub condition: Condition,
    /// The spec wrote the condition (rather than taking the default for the service's kind).
    #[serde(skip)]
    pub explicit: bool,
}

/// When a dependent may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// Once the other process has started.
    Started,
    /// Once its health check passes.
    Healthy,
    /// Once the task has finished successfully.
    Completed,
}

impl Condition {
    pub fn parse(s: &str) -> Option<Condition> {
        match s {
            "started" => Some(Condition::Started),
            "healthy" => Some(Condition::Healthy),
            "completed" => Some(Condition::Completed),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Process {
    /// gunicorn, uvicorn, daphne, celery-worker, celery-beat or command.
    pub program: String,
    pub app: Option<String>,
    pub options: BTreeMap<String, serde_json::Value>,
    /// The command line inside a container (listening on 0.0.0.0).
    pub argv: Vec<String>,
    /// `python` when the program runs on Python (the image then surely has it: probes use it).
    pub runtime: Option<String>,
    /// A shell command that succeeds while the process is healthy (a worker's liveness), `$`
    /// a literal dollar.
    pub probe: Option<String>,
    /// The signal that stops it gracefully.
    pub stop_signal: String,
    /// The command line with `{host}` and `{port}` left open (see `command_line`).
    #[serde(skip)]
    pub template: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Health {
    pub path: String,
    pub interval: u64,
    pub timeout: u64,
    pub retries: u32,
    pub start_period: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Resources {
    /// Millicores.
    pub cpu: Option<u64>,
    /// Bytes.
    pub memory: Option<u64>,
    pub cpu_request: Option<u64>,
    pub memory_request: Option<u64>,
    pub pids: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Volume {
    pub path: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Postgres {
    pub version: u32,
    pub image: String,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    pub port: u16,
    pub host: String,
    pub replicas: u32,
    /// The role replicas stream as (`REPLICATION`, no other right).
    pub replication_user: String,
    /// The secret holding its password (required with replicas).
    pub replication_password: Option<String>,
    /// Scheme of the wired DATABASE_URL (`postgres`, `postgresql+asyncpg`).
    pub url_scheme: String,
    /// Query string of the wired DATABASE_URL, without `?`.
    pub url_query: Option<String>,
    pub settings: BTreeMap<String, serde_json::Value>,
    pub pooler: Option<Pooler>,
    pub resources: Resources,
    /// Bytes of the data volume (a Kubernetes PersistentVolumeClaim), when the spec says.
    pub storage: Option<u64>,
    /// Extensions created in the database by the init script (`CREATE EXTENSION`).
    pub extensions: Vec<String>,
    pub backup: Option<Backup>,
    /// TLS for clients: the certificate, key and CA as secrets delivered as files.
    pub tls: Option<PgTls>,
}

/// The server's TLS files, each the **name** of a secret delivered as a file.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PgTls {
    pub cert: String,
    pub key: String,
    pub ca: Option<String>,
}

/// Scheduled dumps of a database.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Backup {
    /// `hourly`, `daily` or `weekly`.
    pub every: String,
    /// Hour and minute (UTC) of a daily or weekly dump; the minute of an hourly one.
    pub hour: u8,
    pub minute: u8,
    /// Days a dump is kept; `None`: forever.
    pub keep: Option<u32>,
    /// Prove each dump restores.
    pub verify: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Pooler {
    pub kind: String,
    /// Network name of the pooler (`<database>-pgbouncer`).
    pub name: String,
    pub image: String,
    pub port: u16,
    pub listen_addr: String,
    pub mode: String,
    pub auth_type: String,
    pub auth_file: String,
    pub max_client_conn: Option<u32>,
    pub default_pool_size: Option<u32>,
    pub min_pool_size: Option<u32>,
    pub reserve_pool_size: Option<u32>,
    pub reserve_pool_timeout: Option<u32>,
    pub max_db_connections: Option<u32>,
    pub server_idle_timeout: Option<u32>,
    pub server_lifetime: Option<u32>,
    pub query_wait_timeout: Option<u32>,
    pub max_prepared_statements: Option<u32>,
    pub admin_users: Vec<String>,
    pub stats_users: Vec<String>,
    pub ignore_startup_parameters: Vec<String>,
    pub client_tls_sslmode: Option<String>,
    pub server_tls_sslmode: Option<String>,
    pub resources: Resources,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Redis {
    pub version: u32,
    pub image: String,
    pub port: u16,
    pub host: String,
    pub maxmemory: Option<u64>,
    /// `cache`, `queue` or `broker` (declared, or `broker` when a Celery process uses it).
    pub role: String,
    /// `maxmemory-policy`: declared, else `allkeys-lru` for a cache and `noeviction` for a
    /// queue or broker.
    pub eviction: Option<String>,
    pub password: Option<String>,
    pub appendonly: bool,
    pub settings: BTreeMap<String, serde_json::Value>,
    pub resources: Resources,
    /// Read replicas (`replicaof` the primary).
    pub replicas: u32,
    /// A Sentinel group that watches the primary and promotes a replica when it fails.
    pub sentinel: Option<Sentinel>,
}

/// The host name of read replica `i` (from 1) of redis `name`.
pub fn redis_replica_host(name: &str, i: u32) -> String {
    format!("{name}-replica-{i}")
}

/// The host name of sentinel `i` (from 1) of redis `name`.
pub fn sentinel_host(name: &str, i: u32) -> String {
    format!("{name}-sentinel-{i}")
}

/// `redis { sentinel { … } }`: Redis Sentinel for a primary and its replicas.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Sentinel {
    /// Sentinel processes (default 3: a majority survives one loss).
    pub count: u32,
    pub port: u16,
    /// The name clients ask the sentinels for (default: the server's name).
    pub master_name: String,
    /// Sentinels that must agree the primary is down (default: a majority of `count`).
    pub quorum: u32,
    /// Seconds without a reply before a sentinel deems the primary down.
    pub down_after: u64,
    /// Seconds a failover may take before another sentinel retries it.
    pub failover_timeout: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Site {
    pub preset: Option<String>,
    pub server_names: Vec<String>,
    pub upstream: String,
    pub tls: Tls,
    pub hsts: Option<Hsts>,
    /// Headers sent on every response, `always`.
    pub headers: BTreeMap<String, String>,
    /// Keyed by path prefix (`/static/`: pointer segment `~1static~1`).
    pub locations: BTreeMap<String, Location>,
    pub rate_limits: BTreeMap<String, RateLimit>,
    pub max_body_size: Option<String>,
    pub gzip: Option<Gzip>,
    pub timeouts: Timeouts,
    pub deny_hidden: bool,
    pub redirect_code: u16,
    pub acme_root: String,
    pub server_tokens: bool,
    pub listen: Listen,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Tls {
    pub mode: String,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub profile: String,
    pub protocols: Vec<String>,
    pub ciphers: Option<String>,
    pub ecdh_curve: Option<String>,
    pub prefer_server_ciphers: bool,
    pub session_timeout: Option<String>,
    pub session_cache: Option<String>,
    pub session_tickets: bool,
    pub http2: bool,
    pub stapling: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Hsts {
    pub max_age: u64,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Hsts {
    pub fn header_value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LocationKind {
    Proxy,
    Static,
    Media,
    Websocket,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Location {
    pub kind: LocationKind,
    pub upstream: Option<String>,
    pub root: Option<String>,
    /// The app service whose image holds `root` (`static … from=web`).
    pub from: Option<String>,
    pub expires: Option<String>,
    pub cache_control: Option<String>,
    pub access_log: bool,
    pub rate_limit: Option<String>,
    pub read_timeout: Option<String>,
    pub max_body_size: Option<String>,
    pub allow: Vec<String>,
    pub websocket: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RateLimit {
    /// Applied to the whole site: no `paths`, and no location names the zone.
    pub site_wide: bool,
    pub rate: String,
    pub burst: Option<u32>,
    pub nodelay: bool,
    pub size: String,
    pub paths: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Gzip {
    pub types: Vec<String>,
    pub min_length: Option<u32>,
    #[serde(skip_serializing_if = "Options::is_empty")]
    pub options: Options,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Timeouts {
    pub connect: Option<String>,
    pub send: Option<String>,
    pub read: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Listen {
    pub http: u16,
    pub https: u16,
    pub ipv6: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Firewall {
    pub backend: String,
    pub default_incoming: String,
    /// Keyed by what the spec names (`ssh`, `https`, `8443`).
    pub allow: BTreeMap<String, FirewallRule>,
}

/// Prometheus alerting thresholds. Durations in seconds, rates and shares in percent.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Alerts {
    pub error_rate: f64,
    pub disk_free: u32,
    pub cert_expiry: u64,
    pub replication_lag: u64,
    pub queue_length: u32,
    pub connections: u32,
}

/// fail2ban on a host: defaults and jails. Durations in seconds.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Fail2ban {
    pub ban_time: u64,
    pub find_time: u64,
    pub max_retry: u32,
    /// Keyed by the jail's name (`sshd`, `nginx-limit-req`).
    pub jails: BTreeMap<String, Jail>,
}

/// One jail's own settings; `None`: the defaults of its `fail2ban` block.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Jail {
    pub ban_time: Option<u64>,
    pub find_time: Option<u64>,
    pub max_retry: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FirewallRule {
    pub port: String,
    pub proto: String,
    pub from: Vec<String>,
    pub limit: bool,
    pub comment: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Compose,
    Systemd,
    Nginx,
    Pgbouncer,
    K8s,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Compose,
        Target::Systemd,
        Target::Nginx,
        Target::Pgbouncer,
        Target::K8s,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Compose => "compose",
            Target::Systemd => "systemd",
            Target::Nginx => "nginx",
            Target::Pgbouncer => "pgbouncer",
            Target::K8s => "k8s",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubernetes {
    pub namespace: String,
    pub ingress_class: String,
    pub cluster_issuer: Option<String>,
    /// `imagePullPolicy` for every container; `None`: per image, `IfNotPresent` when it is
    /// pinned by digest (its bytes cannot change), `Always` for a tag (which can move).
    pub image_pull_policy: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Compose {
    pub project_name: String,
    pub nginx_image: String,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PolicyConfig {
    /// Keyed by the module's path relative to the project.
    pub modules: BTreeMap<String, ModuleRef>,
    pub settings: BTreeMap<String, serde_json::Value>,
    pub rules: BTreeMap<String, RuleOverride>,
    pub waivers: Vec<Waiver>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModuleRef {
    pub blake3: Option<String>,
    pub settings: BTreeMap<String, serde_json::Value>,
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RuleOverride {
    pub severity: String,
    pub reason: Option<String>,
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Waiver {
    pub rule: String,
    pub path: Option<String>,
    pub reason: Option<String>,
    pub expires: Option<String>,
    #[serde(skip)]
    pub span: Option<Span>,
}

/// One step of a value's history: the span that set it, in which layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Origin {
    #[serde(skip)]
    pub span: Span,
    /// `production`, `base`, `preset django-web`, `wiring`, `default`.
    pub layer: String,
}

/// JSON pointer → the origins of that value, the one in force first.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    pub map: BTreeMap<String, Vec<Origin>>,
}

impl Provenance {
    pub fn record(&mut self, pointer: String, origins: Vec<Origin>) {
        if !origins.is_empty() {
            self.map.insert(pointer, origins);
        }
    }

    /// The origins of the value at `pointer`, or of its nearest recorded parent.
    pub fn lookup(&self, pointer: &str) -> Option<(&str, &[Origin])> {
        let mut p = pointer;
        loop {
            if let Some((k, v)) = self.map.get_key_value(p) {
                return Some((k.as_str(), v.as_slice()));
            }
            let cut = p.rfind('/')?;
            p = &p[..cut];
            if p.is_empty() {
                return None;
            }
        }
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn pointer_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_pointer_segment(&mut out, s);
    out
}

/// Appends one escaped JSON pointer segment (RFC 6901) to `out`.
pub fn push_pointer_segment(out: &mut String, s: &str) {
    if !s.contains(['~', '/']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// Builds a JSON pointer from segments.
pub fn pointer(segments: &[&str]) -> String {
    let mut out = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
    for s in segments {
        out.push('/');
        push_pointer_segment(&mut out, s);
    }
    out
}

/// `s` quoted for a POSIX shell when it needs quoting.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Model {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the model serializes to JSON")
    }

    /// Whether some variable takes another value in some target.
    pub fn varies_by_target(&self) -> bool {
        !self.env_targets.is_empty() || self.services.values().any(|s| !s.env_targets.is_empty())
    }

    /// The model as `target` deploys it: every variable with that target's value, and no
    /// per-target values left. Itself when nothing varies.
    pub fn for_target(&self, target: Target) -> std::borrow::Cow<'_, Model> {
        if !self.varies_by_target() {
            return std::borrow::Cow::Borrowed(self);
        }
        // Each replaced value, and where the spec wrote it: the variable's pointer now leads
        // to the target's value (a finding about it points there).
        fn apply(
            env: &mut BTreeMap<String, EnvValue>,
            targets: &mut EnvTargets,
            target: Target,
            base: &str,
            prov: &mut Provenance,
        ) {
            for (var, mut by) in std::mem::take(targets) {
                let Some(v) = by.remove(&target) else {
                    continue;
                };
                let seg = pointer_segment(&var);
                let written = [
                    format!("{base}/env-targets/{seg}/{}", target.as_str()),
                    format!("/env-targets/{seg}/{}", target.as_str()),
                ]
                .into_iter()
                .find_map(|p| prov.map.get(&p).cloned());
                if let Some(origins) = written {
                    prov.map.insert(format!("{base}/env/{seg}"), origins);
                }
                env.insert(var, v);
            }
        }
        let mut m = self.clone();
        let mut prov = std::mem::take(&mut m.provenance);
        apply(&mut m.env, &mut m.env_targets, target, "", &mut prov);
        for (name, s) in m.services.iter_mut() {
            let base = pointer(&["services", name]);
            apply(&mut s.env, &mut s.env_targets, target, &base, &mut prov);
        }
        m.provenance = prov;
        std::borrow::Cow::Owned(m)
    }

    /// What the policies judge: the model as each of its targets that runs the app's
    /// processes deploys it, when a variable varies by target (a value that only one
    /// target has is judged too); otherwise the model alone (`None`).
    pub fn target_views(&self) -> Vec<(Option<Target>, std::borrow::Cow<'_, Model>)> {
        let runs: Vec<Target> = self
            .targets
            .iter()
            .copied()
            .filter(|t| matches!(t, Target::Compose | Target::Systemd | Target::K8s))
            .collect();
        if !self.varies_by_target() || runs.is_empty() {
            return vec![(None, std::borrow::Cow::Borrowed(self))];
        }
        runs.into_iter()
            .map(|t| (Some(t), self.for_target(t)))
            .collect()
    }

    /// Network name of a data service inside containers (compose and k8s DNS).
    pub fn container_host(&self, name: &str) -> String {
        name.to_owned()
    }

    /// Address of a data service on a host deployment (systemd).
    pub fn host_address(&self, name: &str) -> String {
        if let Some(pg) = self.postgres.get(name) {
            return pg.host.clone();
        }
        if let Some(r) = self.redis.get(name) {
            return r.host.clone();
        }
        for pg in self.postgres.values() {
            if let Some(p) = &pg.pooler
                && p.name == name
            {
                return p.listen_addr.clone();
            }
        }
        "127.0.0.1".to_owned()
    }

    pub fn has_target(&self, t: Target) -> bool {
        self.targets.contains(&t)
    }
}
