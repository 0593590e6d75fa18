//! The spec language, as data. Every node kiln accepts is a [`NodeSpec`] in this
//! file; validation, "did you mean", and the language reference all read it.
//!
//! A node without children whose value is a single scalar is a *setting* and
//! may also be written as a property of its parent: `resources memory="4Gi"` is
//! `resources { memory "4Gi" }`.

use crate::diagnostic::{Diagnostic, unknown_name_help};
use crate::syntax::{Node, Scalar, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ty {
    /// Any string.
    Str,
    /// A DNS label: lowercase letters, digits and `-` (service, database and cache names).
    Name,
    /// A system or database identifier: letters, digits, `_`, `-`, `.`.
    Ident,
    /// An environment variable name.
    EnvName,
    Int,
    Bool,
    /// An integer, a decimal, or a numeric string (`"0.5"`, `"500m"` for CPUs).
    Number,
    /// A memory size: an integer (bytes) or a string such as `"512mb"`, `"4Gi"`; units are binary (`mb` = MiB).
    Size,
    /// A duration: an integer (seconds) or a string such as `"60s"`, `"30d"`.
    Duration,
    Port,
    /// An absolute path.
    Path,
    /// A host name (`api.tulia.example`).
    Host,
    /// An IPv4/IPv6 address or CIDR block.
    Cidr,
    /// An nginx request rate: `"10r/s"`, `"600r/m"`.
    Rate,
    /// A calendar date `YYYY-MM-DD`.
    Date,
    /// Any scalar (environment values).
    Scalar,
    /// An option of the program a `run` names: checked against the program's declaration in
    /// the catalog (`stdlib/programs.kdl`, or the project's `program` nodes) when resolving.
    ProgramOption,
    Enum(&'static [&'static str]),
    /// A firewall port: a number, `"8000:8010"`, or a service name (`ssh`, `http`, `https`).
    PortOrName,
}

#[derive(Clone, Copy, Debug)]
pub enum Values {
    None,
    One(Ty),
    Optional(Ty),
    /// One or more.
    Many(Ty),
    /// Zero or more (`run workers=2` changes an option of an inherited process).
    AnyNumber(Ty),
}

impl Values {
    /// The type of the values, if any.
    pub fn ty(self) -> Option<Ty> {
        match self {
            Values::None => None,
            Values::One(t) | Values::Optional(t) | Values::Many(t) | Values::AnyNumber(t) => {
                Some(t)
            }
        }
    }
}

#[derive(Debug)]
pub struct NodeSpec {
    pub name: &'static str,
    pub doc: &'static str,
    /// The first argument names the node (`service web`): layers merge nodes by it.
    pub key: Option<Ty>,
    /// Arguments after the key.
    pub values: Values,
    pub children: &'static [NodeSpec],
    /// Children with any name, each holding one value of this type (`env { DEBUG #false }`).
    pub free: Option<Ty>,
    /// Every occurrence is kept (no merging by key): `waive`.
    pub repeat: bool,
    /// A layer that changes the first value replaces the node whole (`run gunicorn` →
    /// `run uvicorn`), so options of the old value do not leak into the new one.
    pub replace_on_change: bool,
    /// A plain setting: lowered by this declaration alone, into its parent's `options` in the
    /// model (`/sites/…/gzip/options/vary`), with provenance; the emitters read it there.
    /// Adding one touches this table and the emitter that renders it, nothing else.
    pub plain: bool,
}

impl NodeSpec {
    pub const fn is_setting(&self) -> bool {
        self.key.is_none()
            && self.children.is_empty()
            && self.free.is_none()
            && !matches!(self.values, Values::None)
    }

    pub fn child(&self, name: &str) -> Option<&'static NodeSpec> {
        self.children.iter().find(|c| c.name == name)
    }
}

const fn setting(name: &'static str, ty: Ty, doc: &'static str) -> NodeSpec {
    NodeSpec {
        name,
        doc,
        key: None,
        values: Values::One(ty),
        children: &[],
        free: None,
        repeat: false,
        replace_on_change: false,
        plain: false,
    }
}

/// A [plain](NodeSpec::plain) setting.
const fn plain(name: &'static str, ty: Ty, doc: &'static str) -> NodeSpec {
    NodeSpec {
        plain: true,
        ..setting(name, ty, doc)
    }
}

const fn list(name: &'static str, ty: Ty, doc: &'static str) -> NodeSpec {
    NodeSpec {
        name,
        doc,
        key: None,
        values: Values::Many(ty),
        children: &[],
        free: None,
        repeat: false,
        replace_on_change: false,
        plain: false,
    }
}

const fn block(name: &'static str, doc: &'static str, children: &'static [NodeSpec]) -> NodeSpec {
    NodeSpec {
        name,
        doc,
        key: None,
        values: Values::None,
        children,
        free: None,
        repeat: false,
        replace_on_change: false,
        plain: false,
    }
}

const fn free_block(name: &'static str, ty: Ty, doc: &'static str) -> NodeSpec {
    NodeSpec {
        name,
        doc,
        key: None,
        values: Values::None,
        children: &[],
        free: Some(ty),
        repeat: false,
        replace_on_change: false,
        plain: false,
    }
}

const fn keyed(
    name: &'static str,
    key: Ty,
    values: Values,
    doc: &'static str,
    children: &'static [NodeSpec],
) -> NodeSpec {
    NodeSpec {
        name,
        doc,
        key: Some(key),
        values,
        children,
        free: None,
        repeat: false,
        replace_on_change: false,
        plain: false,
    }
}

// ---------------------------------------------------------------------------
// The language

pub const TIERS: &[&str] = &["production", "staging", "development"];
pub const TARGETS: &[&str] = &["compose", "systemd", "nginx", "pgbouncer", "k8s"];
pub const SECRET_KINDS: &[&str] = &[
    "django-secret-key",
    "fernet",
    "base64-key",
    "jwt-hs256",
    "jwt-hs384",
    "jwt-hs512",
    "password",
    "api-key",
    "token",
    "url",
    "generic",
];
pub const SERVICE_KINDS: &[&str] = &["web", "worker", "beat", "task"];
pub const LOG_LEVELS: &[&str] = &["debug", "info", "warning", "error", "critical"];
pub const POOL_MODES: &[&str] = &["session", "transaction", "statement"];
pub const PGBOUNCER_AUTH: &[&str] = &[
    "scram-sha-256",
    "md5",
    "hba",
    "cert",
    "trust",
    "plain",
    "any",
];
pub const TLS_SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];
pub const EVICTIONS: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];
pub const TLS_MODES: &[&str] = &["acme", "files", "off"];
pub const TLS_PROFILES: &[&str] = &["intermediate", "modern"];
pub const TLS_PROTOCOLS: &[&str] = &["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
pub const SEVERITIES: &[&str] = &["error", "warn", "info", "off"];
pub const RESTART: &[&str] = &["always", "on-failure", "unless-stopped", "no"];
pub const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
pub const PROTOCOLS: &[&str] = &["tcp", "udp"];
pub const FIREWALL_BACKENDS: &[&str] = &["ufw", "nftables"];
pub const POOLERS: &[&str] = &["pgbouncer"];
pub const BACKUP_EVERY: &[&str] = &["hourly", "daily", "weekly"];
/// The fail2ban jails kiln writes, each with the log kiln knows it reads.
pub const FAIL2BAN_JAILS: &[&str] = &[
    "sshd",
    "nginx-limit-req",
    "nginx-botsearch",
    "nginx-http-auth",
    "nginx-bad-request",
    "recidive",
];

const BACKUP: NodeSpec = block(
    "backup",
    "Scheduled dumps of the database (`pg_dump --format=custom`), kept `keep` days: a systemd timer on a host, a scheduled service in compose, a CronJob on Kubernetes.",
    &[
        setting(
            "every",
            Ty::Enum(BACKUP_EVERY),
            "How often (default `daily`).",
        ),
        setting(
            "at",
            Ty::Str,
            "Time of day, `HH:MM` UTC, of a daily or weekly dump (weekly: on Sundays; default `\"02:00\"`); an hourly dump runs at minute MM.",
        ),
        setting(
            "keep",
            Ty::Int,
            "Days a dump is kept before it is deleted (none: kept forever).",
        ),
        setting(
            "verify",
            Ty::Bool,
            "After each dump, prove it restores (default `#true`): on a host into a scratch database that is dropped again; in containers, where the app's role cannot create databases, `pg_restore --list` reads the whole archive.",
        ),
    ],
);

const RESOURCES: NodeSpec = block(
    "resources",
    "CPU and memory limits (and requests) of a process.",
    &[
        setting(
            "cpu",
            Ty::Number,
            "CPU limit in cores (`2`, `\"0.5\"`, `\"500m\"`).",
        ),
        setting("memory", Ty::Size, "Memory limit (`\"4Gi\"`, `\"512mb\"`)."),
        setting(
            "cpu-request",
            Ty::Number,
            "CPU the scheduler reserves (k8s requests); defaults to half the limit.",
        ),
        setting(
            "memory-request",
            Ty::Size,
            "Memory the scheduler reserves (k8s requests); defaults to half the limit.",
        ),
        setting(
            "pids",
            Ty::Int,
            "Maximum number of processes/threads (compose `pids_limit`, systemd `TasksMax=`).",
        ),
    ],
);

const SECRET: NodeSpec = keyed(
    "secret",
    Ty::EnvName,
    Values::None,
    "Declares a secret: its name and kind, never its value. Delivered through each target's secret channel, as an environment variable or (`deliver=file`) a read-only file.",
    &[
        setting(
            "kind",
            Ty::Enum(SECRET_KINDS),
            "What the secret is; `kiln secrets check` judges real values by it.",
        ),
        setting(
            "optional",
            Ty::Bool,
            "The app runs without it (default `#false`).",
        ),
        setting("description", Ty::Str, "Shown in `.env.example`."),
        list(
            "services",
            Ty::Name,
            "Only these services receive it (default: every application process).",
        ),
        setting(
            "apps",
            Ty::Bool,
            "`#false`: no application process receives it, only the data services that name it (a `replication-password`).",
        ),
        setting(
            "min-length",
            Ty::Int,
            "The app's own minimum length (`min-length=50` for peppers the app refuses shorter); `kiln secrets check` holds every value to it.",
        ),
        setting(
            "deliver",
            Ty::Enum(&["env", "file"]),
            "How processes receive it: `env` (default) as the variable itself, `file` as a read-only file whose path is in `NAME_FILE` (compose secret, Kubernetes Secret volume, systemd credential), so the value is in no process environment.",
        ),
    ],
);

const ENV: NodeSpec = free_block(
    "env",
    Ty::Scalar,
    "Environment variables: one child per variable, `NAME value`. `NAME #null` removes an inherited variable.",
);

const RUN: NodeSpec = NodeSpec {
    name: "run",
    doc: "The process: `run gunicorn \"config.wsgi:application\"`, `run uvicorn \"app.main:app\"`, `run daphne \"config.asgi:application\"`, `run celery worker`, `run celery beat`, `run command \"python\" \"manage.py\" \"migrate\"`.",
    key: None,
    values: Values::AnyNumber(Ty::Str),
    children: &[
        setting(
            "app",
            Ty::Str,
            "The WSGI/ASGI application (`config.wsgi:application`), or the Celery app (`-A`).",
        ),
        setting("workers", Ty::Int, "gunicorn/uvicorn worker processes."),
        setting("threads", Ty::Int, "gunicorn threads per worker."),
        setting("timeout", Ty::Duration, "gunicorn worker timeout."),
        setting(
            "graceful-timeout",
            Ty::Duration,
            "gunicorn graceful shutdown timeout.",
        ),
        setting(
            "keep-alive",
            Ty::Duration,
            "Keep-alive timeout (gunicorn `--keep-alive`, uvicorn `--timeout-keep-alive`).",
        ),
        setting(
            "worker-class",
            Ty::Str,
            "gunicorn worker class (`uvicorn.workers.UvicornWorker`).",
        ),
        setting(
            "worker-connections",
            Ty::Int,
            "gunicorn `--worker-connections`.",
        ),
        setting(
            "max-requests",
            Ty::Int,
            "Restart a worker after this many requests.",
        ),
        setting(
            "max-requests-jitter",
            Ty::Int,
            "Random jitter added to `max-requests`.",
        ),
        setting(
            "worker-tmp-dir",
            Ty::Path,
            "gunicorn heartbeat folder (`/dev/shm` on a read-only root).",
        ),
        setting(
            "forwarded-allow-ips",
            Ty::Str,
            "Proxies trusted for X-Forwarded-* headers.",
        ),
        setting(
            "proxy-headers",
            Ty::Bool,
            "uvicorn/daphne: trust X-Forwarded-* from the proxy.",
        ),
        setting("log-level", Ty::Enum(LOG_LEVELS), "Log level."),
        setting("access-log", Ty::Bool, "Log requests to stdout."),
        setting("concurrency", Ty::Int, "celery worker `--concurrency`."),
        list(
            "queues",
            Ty::Str,
            "celery worker queues (`queues default integrations` or `queues=\"default,integrations\"`).",
        ),
        setting(
            "pool",
            Ty::Enum(&["prefork", "threads", "solo", "gevent", "eventlet"]),
            "celery worker pool.",
        ),
        setting(
            "max-tasks-per-child",
            Ty::Int,
            "celery `--max-tasks-per-child`.",
        ),
        setting(
            "max-memory-per-child",
            Ty::Int,
            "celery `--max-memory-per-child` (KiB).",
        ),
        setting("time-limit", Ty::Int, "celery hard time limit (seconds)."),
        setting(
            "soft-time-limit",
            Ty::Int,
            "celery soft time limit (seconds).",
        ),
        setting(
            "prefetch-multiplier",
            Ty::Int,
            "celery `--prefetch-multiplier`.",
        ),
        setting("scheduler", Ty::Str, "celery beat scheduler class."),
        list(
            "args",
            Ty::Str,
            "Extra arguments appended to the command line.",
        ),
    ],
    // Options of programs the project declares: checked against the program when resolving.
    free: Some(Ty::ProgramOption),
    repeat: false,
    replace_on_change: true,
    plain: false,
};

const HEALTH: NodeSpec = NodeSpec {
    name: "health",
    doc: "HTTP health endpoint of a web process (`health \"/v1/health\"`): container healthchecks, k8s probes, nginx's health location.",
    key: None,
    values: Values::One(Ty::Str),
    children: &[
        setting(
            "interval",
            Ty::Duration,
            "Time between checks (default 30s).",
        ),
        setting(
            "timeout",
            Ty::Duration,
            "Time before a check fails (default 5s).",
        ),
        setting("retries", Ty::Int, "Failures before unhealthy (default 3)."),
        setting(
            "start-period",
            Ty::Duration,
            "Grace period at start (default 20s).",
        ),
    ],
    free: None,
    repeat: false,
    replace_on_change: false,
    plain: false,
};

const VOLUME: NodeSpec = keyed(
    "volume",
    Ty::Name,
    Values::One(Ty::Path),
    "A persistent, writable folder of a process: `volume media \"/app/media\"`.",
    &[setting("read-only", Ty::Bool, "Mount it read-only.")],
);

/// What a Redis server is used for.
pub const REDIS_ROLES: &[&str] = &["cache", "queue", "broker"];

/// When a process may start after one it depends on.
pub const CONDITIONS: &[&str] = &["started", "healthy", "completed"];

const DEPENDS_ON: NodeSpec = keyed(
    "depends-on",
    Ty::Name,
    Values::None,
    "Start only after another service of the environment: `depends-on migrate` (a task: after it completed successfully), `depends-on api condition=healthy`. The default condition is `completed` for a task, `healthy` for a service with a health check, `started` otherwise. In every target: compose `depends_on` conditions, systemd `Requires=`/`After=`, Kubernetes init containers.",
    &[setting(
        "condition",
        Ty::Enum(CONDITIONS),
        "`started`, `healthy` (it has a `health` check) or `completed` (a task).",
    )],
);

const APP_FILE: NodeSpec = keyed(
    "file",
    Ty::Path,
    Values::None,
    "A text file the process reads, at that path inside it: `file \"/app/gunicorn.conf.py\" { text \"\"\" … \"\"\" }`. The text may refer to resource facts (`${db.host}`); a secret never: read it from its variable. compose bind-mounts it, Kubernetes mounts it from a ConfigMap, systemd expects it installed at that path.",
    &[
        setting(
            "text",
            Ty::Str,
            "The file's content (a multi-line string), with `${NAME.FACT}` references.",
        ),
        setting("mode", Ty::Str, "Its permissions, octal (default `0444`)."),
        setting(
            "comment",
            Ty::Str,
            "What starts a comment in it, for kiln's first line (`generated by kiln … do not edit`): `#` by default, `//`, `;`, `--`; `\"\"` for none (a `.json` file has none).",
        ),
    ],
);

pub const SERVICE_BODY: &[NodeSpec] = &[
    setting(
        "preset",
        Ty::Name,
        "A preset from the stdlib or the project, the lowest layer of this service.",
    ),
    setting(
        "kind",
        Ty::Enum(SERVICE_KINDS),
        "web, worker, beat or task; derived from `run` when omitted.",
    ),
    setting(
        "image",
        Ty::Str,
        "Container image, pinned by tag and preferably digest; `\"${images.app}\"` names a shared one (see [`images`](#images)).",
    ),
    RUN,
    setting(
        "port",
        Ty::Port,
        "The port the process listens on (web processes).",
    ),
    HEALTH,
    setting(
        "balancer",
        Ty::Enum(&["haproxy"]),
        "A load balancer in front of the service's replicas, with active health checks of its `health` path: `balancer haproxy` (compose: a `<name>-lb` service the sites proxy to).",
    ),
    setting(
        "replicas",
        Ty::Int,
        "Number of instances (containers, pods).",
    ),
    RESOURCES,
    list(
        "uses",
        Ty::Name,
        "Data services this process connects to; kiln wires DATABASE_URL, REDIS_URL, CELERY_BROKER_URL …",
    ),
    DEPENDS_ON,
    APP_FILE,
    ENV,
    SECRET,
    VOLUME,
    setting(
        "read-only",
        Ty::Bool,
        "Read-only root file system (default `#true`).",
    ),
    list(
        "tmpfs",
        Ty::Path,
        "Writable in-memory folders (default `/tmp`).",
    ),
    setting(
        "user",
        Ty::Str,
        "Container user `uid:gid` (defaults to the host block's uid and gid).",
    ),
    list(
        "cap-add",
        Ty::Str,
        "Linux capabilities added back after dropping all.",
    ),
    setting(
        "restart",
        Ty::Enum(RESTART),
        "Restart policy (default `always`; `no` for tasks).",
    ),
    setting(
        "stop-timeout",
        Ty::Duration,
        "Grace period before the process is killed.",
    ),
    setting(
        "unit",
        Ty::Ident,
        "Its systemd unit's name, without `.service` (default `<project>-<service>`): `unit \"netbox\"` keeps a guide's `systemctl restart netbox` true.",
    ),
];

const POOLER: NodeSpec = NodeSpec {
    name: "pooler",
    doc: "A connection pooler in front of the database: `pooler pgbouncer mode=transaction`. Apps that `use` the database connect through it.",
    key: None,
    values: Values::One(Ty::Enum(POOLERS)),
    children: &[
        setting(
            "preset",
            Ty::Name,
            "Preset for the pooler (default `pgbouncer`).",
        ),
        setting("image", Ty::Str, "Container image of the pooler."),
        setting("port", Ty::Port, "Listen port (default 6432)."),
        setting(
            "listen-addr",
            Ty::Str,
            "Listen address on a host (default `127.0.0.1`).",
        ),
        setting("mode", Ty::Enum(POOL_MODES), "pgbouncer `pool_mode`."),
        setting(
            "auth-type",
            Ty::Enum(PGBOUNCER_AUTH),
            "pgbouncer `auth_type`.",
        ),
        setting(
            "auth-file",
            Ty::Path,
            "pgbouncer `auth_file` (SCRAM verifiers, never passwords in the config).",
        ),
        setting("max-client-conn", Ty::Int, "pgbouncer `max_client_conn`."),
        setting(
            "default-pool-size",
            Ty::Int,
            "pgbouncer `default_pool_size`.",
        ),
        setting("min-pool-size", Ty::Int, "pgbouncer `min_pool_size`."),
        setting(
            "reserve-pool-size",
            Ty::Int,
            "pgbouncer `reserve_pool_size`.",
        ),
        setting(
            "reserve-pool-timeout",
            Ty::Int,
            "pgbouncer `reserve_pool_timeout` (seconds).",
        ),
        setting(
            "max-db-connections",
            Ty::Int,
            "pgbouncer `max_db_connections`.",
        ),
        setting(
            "server-idle-timeout",
            Ty::Int,
            "pgbouncer `server_idle_timeout` (seconds).",
        ),
        setting(
            "server-lifetime",
            Ty::Int,
            "pgbouncer `server_lifetime` (seconds).",
        ),
        setting(
            "query-wait-timeout",
            Ty::Int,
            "pgbouncer `query_wait_timeout` (seconds).",
        ),
        setting(
            "max-prepared-statements",
            Ty::Int,
            "pgbouncer ≥ 1.21 `max_prepared_statements`.",
        ),
        list("admin-users", Ty::Ident, "pgbouncer `admin_users`."),
        list("stats-users", Ty::Ident, "pgbouncer `stats_users`."),
        list(
            "ignore-startup-parameters",
            Ty::Str,
            "pgbouncer `ignore_startup_parameters`.",
        ),
        setting(
            "client-tls-sslmode",
            Ty::Enum(TLS_SSLMODES),
            "pgbouncer `client_tls_sslmode`.",
        ),
        setting(
            "server-tls-sslmode",
            Ty::Enum(TLS_SSLMODES),
            "pgbouncer `server_tls_sslmode`.",
        ),
        RESOURCES,
    ],
    free: None,
    repeat: false,
    replace_on_change: false,
    plain: false,
};

pub const POSTGRES_BODY: &[NodeSpec] = &[
    setting("preset", Ty::Name, "Preset (default `postgres`)."),
    setting("version", Ty::Int, "PostgreSQL major version."),
    setting(
        "image",
        Ty::Str,
        "Container image (default `postgres:<version>`).",
    ),
    setting("database", Ty::Ident, "Database name."),
    setting("user", Ty::Ident, "Application role."),
    setting(
        "password",
        Ty::EnvName,
        "The secret holding the role's password.",
    ),
    setting("port", Ty::Port, "Listen port (default 5432)."),
    setting(
        "host",
        Ty::Str,
        "Address on a host deployment (default `127.0.0.1`).",
    ),
    setting("replicas", Ty::Int, "Streaming read replicas."),
    setting(
        "replication-user",
        Ty::Ident,
        "The role replicas stream as (default `replicator`): REPLICATION and LOGIN, nothing else.",
    ),
    setting(
        "replication-password",
        Ty::EnvName,
        "The secret holding the replication role's password (required with `replicas`).",
    ),
    setting(
        "storage",
        Ty::Size,
        "Size of the data volume where a target sizes it (the Kubernetes PersistentVolumeClaim, in whole Gi rounded up; default `\"10Gi\"`). Compose volumes and a host's disk have no size to set.",
    ),
    list(
        "extensions",
        Ty::Ident,
        "Extensions the init script creates in the database (`CREATE EXTENSION IF NOT EXISTS`), as the superuser, before the app connects.",
    ),
    setting(
        "url-scheme",
        Ty::Str,
        "Scheme of the wired DATABASE_URL (default `postgres`; `postgresql+asyncpg` for SQLAlchemy with asyncpg).",
    ),
    setting(
        "url-query",
        Ty::Str,
        "Query string appended to the wired DATABASE_URL (`sslmode=require`).",
    ),
    free_block(
        "settings",
        Ty::Scalar,
        "postgresql.conf settings (`shared_buffers \"4GB\"`).",
    ),
    POOLER,
    BACKUP,
    block(
        "tls",
        "TLS for clients (`ssl on`): `tls cert=PG_TLS_CERT key=PG_TLS_KEY ca=PG_TLS_CA`, each a secret delivered as a file (`deliver=file`), never a file in the spec or the image.",
        &[
            setting(
                "cert",
                Ty::EnvName,
                "The secret holding the server certificate (PEM, with its chain).",
            ),
            setting(
                "key",
                Ty::EnvName,
                "The secret holding the server's private key (PEM).",
            ),
            setting(
                "ca",
                Ty::EnvName,
                "The secret holding the CA that signs client certificates (`ssl_ca_file`), if clients present one.",
            ),
        ],
    ),
    RESOURCES,
];

pub const REDIS_BODY: &[NodeSpec] = &[
    setting("preset", Ty::Name, "Preset (default `redis`)."),
    setting("version", Ty::Int, "Redis major version."),
    setting(
        "image",
        Ty::Str,
        "Container image (default `redis:<version>`).",
    ),
    setting("port", Ty::Port, "Listen port (default 6379)."),
    setting(
        "host",
        Ty::Str,
        "Address on a host deployment (default `127.0.0.1`).",
    ),
    setting("maxmemory", Ty::Size, "`maxmemory`."),
    setting(
        "role",
        Ty::Enum(REDIS_ROLES),
        "What the server holds: `cache` (entries that may be lost), `queue` or `broker` (jobs that must not be). Default: `broker` when a Celery process uses it, else `cache`.",
    ),
    setting(
        "eviction",
        Ty::Enum(EVICTIONS),
        "`maxmemory-policy` (default `allkeys-lru` for a cache, `noeviction` for a queue or broker).",
    ),
    setting(
        "password",
        Ty::EnvName,
        "The secret holding the password (`requirepass`).",
    ),
    setting("appendonly", Ty::Bool, "AOF persistence."),
    setting(
        "replicas",
        Ty::Int,
        "Read replicas, each `replicaof` the primary with its password (`masterauth`); compose only.",
    ),
    block(
        "sentinel",
        "Redis Sentinel: a group of sentinels that watches the primary and promotes a replica when it fails (needs `replicas`; compose only). Clients find the primary through `${NAME.sentinel-url}` and `${NAME.sentinel-master}`.",
        &[
            setting(
                "count",
                Ty::Int,
                "Sentinel processes (default 3: a majority survives the loss of one).",
            ),
            setting("port", Ty::Port, "The sentinels' port (default 26379)."),
            setting(
                "master-name",
                Ty::Ident,
                "The name clients ask for (default: the server's name).",
            ),
            setting(
                "quorum",
                Ty::Int,
                "Sentinels that must agree the primary is down (default: a majority of `count`).",
            ),
            setting(
                "down-after",
                Ty::Duration,
                "Time without a reply before the primary is deemed down (default `\"5s\"`).",
            ),
            setting(
                "failover-timeout",
                Ty::Duration,
                "Time a failover may take before it is retried (default `\"60s\"`).",
            ),
        ],
    ),
    free_block("settings", Ty::Scalar, "Other redis.conf settings."),
    RESOURCES,
];

const LOCATION_SETTINGS: &[NodeSpec] = &[
    setting(
        "upstream",
        Ty::Name,
        "The service requests are proxied to (default: the site's).",
    ),
    setting(
        "root",
        Ty::Path,
        "Serve files from this folder instead of proxying.",
    ),
    setting(
        "from",
        Ty::Name,
        "The service whose image holds `root` (collected static files): in containers they are copied into a volume nginx serves; on a host, `root` is the host folder.",
    ),
    setting("expires", Ty::Duration, "`expires` for served files."),
    setting(
        "cache-control",
        Ty::Str,
        "`Cache-Control` for served files.",
    ),
    setting("access-log", Ty::Bool, "Log requests (default `#true`)."),
    setting("rate-limit", Ty::Name, "A `rate-limit` zone applied here."),
    setting("read-timeout", Ty::Duration, "`proxy_read_timeout`."),
    setting("max-body-size", Ty::Size, "`client_max_body_size` here."),
    list(
        "allow",
        Ty::Cidr,
        "Only these addresses may reach this location (`deny all` for the rest).",
    ),
    setting("websocket", Ty::Bool, "Proxy WebSocket upgrades."),
];

const LOCATION: NodeSpec = keyed(
    "location",
    Ty::Str,
    Values::None,
    "A path prefix with its own behaviour: `location \"/v1/health\" access-log=#false`.",
    LOCATION_SETTINGS,
);

pub const SITE_BODY: &[NodeSpec] = &[
    setting(
        "preset",
        Ty::Name,
        "Preset (default `nginx-site`: Mozilla intermediate TLS, OWASP baseline headers).",
    ),
    list("aliases", Ty::Host, "More server names."),
    setting(
        "upstream",
        Ty::Name,
        "The web service this site proxies to.",
    ),
    NodeSpec {
        name: "tls",
        doc: "TLS: `tls acme` (Let's Encrypt paths), `tls files cert=… key=…`, or `tls off`.",
        key: None,
        values: Values::One(Ty::Enum(TLS_MODES)),
        children: &[
            setting("cert", Ty::Path, "Certificate chain."),
            setting("key", Ty::Path, "Private key."),
            setting(
                "profile",
                Ty::Enum(TLS_PROFILES),
                "Mozilla profile (default `intermediate`).",
            ),
            list("protocols", Ty::Enum(TLS_PROTOCOLS), "`ssl_protocols`."),
            setting("ciphers", Ty::Str, "`ssl_ciphers` for TLS 1.2."),
            setting("ecdh-curve", Ty::Str, "`ssl_ecdh_curve`."),
            setting(
                "prefer-server-ciphers",
                Ty::Bool,
                "`ssl_prefer_server_ciphers`.",
            ),
            setting("session-timeout", Ty::Duration, "`ssl_session_timeout`."),
            setting("session-cache", Ty::Str, "`ssl_session_cache`."),
            setting("session-tickets", Ty::Bool, "`ssl_session_tickets`."),
            setting("http2", Ty::Bool, "Serve HTTP/2."),
            setting(
                "stapling",
                Ty::Bool,
                "OCSP stapling (off by default: Let's Encrypt ended OCSP in 2025).",
            ),
        ],
        free: None,
        repeat: false,
        replace_on_change: false,
        plain: false,
    },
    NodeSpec {
        name: "hsts",
        doc: "`Strict-Transport-Security`: `hsts max-age=63072000 include-subdomains=#true preload=#false`, or `hsts #false`.",
        key: None,
        values: Values::Optional(Ty::Bool),
        children: &[
            setting("max-age", Ty::Int, "Seconds."),
            setting("include-subdomains", Ty::Bool, "`includeSubDomains`."),
            setting(
                "preload",
                Ty::Bool,
                "`preload` (only with hstspreload.org's requirements met).",
            ),
        ],
        free: None,
        repeat: false,
        replace_on_change: false,
        plain: false,
    },
    keyed(
        "header",
        Ty::Str,
        Values::One(Ty::Str),
        "A response header on every response (`always`): `header Content-Security-Policy \"default-src 'self'\"`. `(remove)header NAME` drops a preset header.",
        &[],
    ),
    keyed(
        "static",
        Ty::Str,
        Values::None,
        "Static files: `static \"/static/\" root=\"/var/www/app/static/\" expires=\"30d\"`.",
        LOCATION_SETTINGS,
    ),
    keyed(
        "media",
        Ty::Str,
        Values::None,
        "User-uploaded media files, like `static`.",
        LOCATION_SETTINGS,
    ),
    keyed(
        "websocket",
        Ty::Str,
        Values::None,
        "A WebSocket path: `websocket \"/ws/\" upstream=asgi`.",
        LOCATION_SETTINGS,
    ),
    LOCATION,
    keyed(
        "rate-limit",
        Ty::Name,
        Values::None,
        "A request rate limit zone: `rate-limit api rate=\"10r/s\" burst=20`. Applied to the whole site unless `paths` is given.",
        &[
            setting("rate", Ty::Rate, "`\"10r/s\"` or `\"600r/m\"`."),
            setting("burst", Ty::Int, "Requests allowed above the rate."),
            setting("nodelay", Ty::Bool, "Serve the burst without delay."),
            setting("size", Ty::Str, "Zone size (default `10m`)."),
            list("paths", Ty::Str, "Only these locations."),
        ],
    ),
    setting("max-body-size", Ty::Size, "`client_max_body_size`."),
    NodeSpec {
        name: "gzip",
        doc: "Compression: `gzip #true` or `gzip #true { types \"text/css\" … }`.",
        key: None,
        values: Values::Optional(Ty::Bool),
        children: &[
            list("types", Ty::Str, "`gzip_types`."),
            setting("min-length", Ty::Int, "`gzip_min_length`."),
            plain(
                "vary",
                Ty::Bool,
                "`gzip_vary`: tell caches that the response varies with `Accept-Encoding` (default `#true`).",
            ),
        ],
        free: None,
        repeat: false,
        replace_on_change: false,
        plain: false,
    },
    block(
        "timeouts",
        "Proxy timeouts.",
        &[
            setting("connect", Ty::Duration, "`proxy_connect_timeout`."),
            setting("send", Ty::Duration, "`proxy_send_timeout`."),
            setting("read", Ty::Duration, "`proxy_read_timeout`."),
        ],
    ),
    setting(
        "deny-hidden",
        Ty::Bool,
        "Refuse paths with a dot segment such as `/.git` (default `#true`; `/.well-known/` stays open).",
    ),
    setting(
        "redirect-code",
        Ty::Enum(&["301", "302", "307", "308"]),
        "Status of the HTTP → HTTPS redirect (default 308).",
    ),
    setting(
        "acme-root",
        Ty::Path,
        "Folder served at `/.well-known/acme-challenge/`.",
    ),
    setting(
        "server-tokens",
        Ty::Bool,
        "Show the nginx version (default `#false`).",
    ),
    block(
        "listen",
        "Listen ports.",
        &[
            setting("http", Ty::Port, "Plain HTTP port (80)."),
            setting("https", Ty::Port, "TLS port (443)."),
            setting("ipv6", Ty::Bool, "Also listen on IPv6."),
        ],
    ),
];

pub const POLICIES_BODY: &[NodeSpec] = &[
    keyed(
        "module",
        Ty::Str,
        Values::None,
        "An extra policy module, by path relative to the project, pinned by hash: `module \"policies/org.wasm\" blake3=\"…\"`.",
        &[
            setting("blake3", Ty::Str, "The module's blake3 hash (hex)."),
            free_block("settings", Ty::Scalar, "Settings passed to the module."),
        ],
    ),
    NodeSpec {
        name: "settings",
        doc: "Settings for a policy: `settings secret { min-length 24 }`.",
        key: Some(Ty::Str),
        values: Values::None,
        children: &[],
        free: Some(Ty::Scalar),
        repeat: false,
        replace_on_change: false,
        plain: false,
    },
    keyed(
        "rule",
        Ty::Str,
        Values::None,
        "Changes a rule's severity: `rule http.baseline-headers severity=warn`; `severity=off` needs a `reason`.",
        &[
            setting(
                "severity",
                Ty::Enum(SEVERITIES),
                "error, warn, info or off.",
            ),
            setting("reason", Ty::Str, "Why."),
        ],
    ),
    NodeSpec {
        name: "waive",
        doc: "Accepts one finding: `waive net.firewall-baseline path=\"/firewall/allow/ssh\" reason=\"…\" expires=\"2027-01-01\"`.",
        key: Some(Ty::Str),
        values: Values::None,
        children: &[
            setting(
                "path",
                Ty::Str,
                "The finding's JSON pointer (or a prefix of it); all findings of the rule when omitted.",
            ),
            setting("reason", Ty::Str, "Why (required)."),
            setting(
                "expires",
                Ty::Date,
                "After this date the waiver is an error.",
            ),
        ],
        free: None,
        repeat: true,
        replace_on_change: false,
        plain: false,
    },
];

pub const PATCH_TARGETS: &[&str] = &["nginx", "systemd", "compose"];
pub const UNIT_SECTIONS: &[&str] = &["Unit", "Service", "Install"];

const PATCH: NodeSpec = NodeSpec {
    name: "patch",
    doc: "An escape hatch for what the language does not say: lines added to one generated file, with provenance, judged by the policies like the rest. `patch nginx site=\"app.example.com\" location=\"/api/\" { directive \"proxy_buffer_size\" \"16k\" }`, `patch systemd service=web { set \"OOMScoreAdjust\" -100 }`, `patch compose service=web { set \"stop_grace_period\" \"30s\" }`. A patch whose target is not in the output is an error.",
    key: Some(Ty::Enum(PATCH_TARGETS)),
    values: Values::None,
    children: &[
        setting("site", Ty::Host, "nginx: the site (its first server name)."),
        setting(
            "location",
            Ty::Str,
            "nginx: a location of the site, by its path; without it, the site's server block.",
        ),
        setting("service", Ty::Name, "systemd, compose: the service."),
        setting(
            "section",
            Ty::Enum(UNIT_SECTIONS),
            "systemd: the unit's section (default `Service`).",
        ),
        NodeSpec {
            repeat: true,
            ..list(
                "directive",
                Ty::Scalar,
                "nginx: a directive and its arguments: `directive \"proxy_buffer_size\" \"16k\"` writes `proxy_buffer_size 16k;`.",
            )
        },
        NodeSpec {
            repeat: true,
            ..keyed(
                "set",
                Ty::Str,
                Values::One(Ty::Scalar),
                "systemd: a key of the section (`set \"OOMScoreAdjust\" -100` writes `OOMScoreAdjust=-100`); compose: a key of the service, replacing kiln's if it has one.",
                &[],
            )
        },
    ],
    free: None,
    repeat: true,
    replace_on_change: false,
    plain: false,
};

pub const ENV_BODY: &[NodeSpec] = &[
    setting("extends", Ty::Name, "The environment this one layers on."),
    setting(
        "abstract",
        Ty::Bool,
        "Only a layer for others: not compiled.",
    ),
    setting(
        "tier",
        Ty::Enum(TIERS),
        "production, staging or development: selects policy severities.",
    ),
    block(
        "versions",
        "Versions of the programs that read the output (they decide which directives kiln may emit).",
        &[
            setting(
                "nginx",
                Ty::Str,
                "nginx version (default \"1.22\", Debian bookworm).",
            ),
            setting(
                "pgbouncer",
                Ty::Str,
                "pgbouncer version (default \"1.18\").",
            ),
            setting(
                "openssl",
                Ty::Str,
                "OpenSSL version of nginx (default \"3.0\").",
            ),
            setting("systemd", Ty::Int, "systemd version (default 252)."),
        ],
    ),
    block(
        "host",
        "The Linux host layout (systemd target).",
        &[
            setting(
                "user",
                Ty::Ident,
                "System user running the app (default: the project name).",
            ),
            setting("group", Ty::Ident, "System group (default: the user)."),
            setting(
                "uid",
                Ty::Int,
                "Numeric uid, also the container user (default 10001).",
            ),
            setting("gid", Ty::Int, "Numeric gid (default the uid)."),
            setting(
                "root",
                Ty::Path,
                "Application folder, the WorkingDirectory (default `/opt/<project>`).",
            ),
            setting(
                "venv",
                Ty::Path,
                "Python virtualenv (default `<root>/venv`).",
            ),
            setting(
                "env-file",
                Ty::Path,
                "File holding secrets and settings (default `/etc/<project>/<env>.env`).",
            ),
            setting(
                "log-dir",
                Ty::Path,
                "Log folder (default `/var/log/<project>`).",
            ),
            setting(
                "process-manager",
                Ty::Enum(&["systemd", "supervisor"]),
                "What runs the app's processes on the host (default `systemd`: a unit each); `supervisor`: one `supervisor/<project>.conf` of programs instead.",
            ),
            block(
                "log-rotation",
                "How logrotate rotates the log folder's `*.log`: `log-rotation every=daily keep=14 max-size=\"100M\"` (the default: daily, 14 kept, compressed).",
                &[
                    setting(
                        "every",
                        Ty::Enum(&["daily", "weekly", "monthly"]),
                        "How often (default `daily`).",
                    ),
                    setting(
                        "keep",
                        Ty::Int,
                        "How many rotated logs to keep (default 14).",
                    ),
                    setting(
                        "max-size",
                        Ty::Size,
                        "Also rotate a log as soon as it is this large (`\"100M\"`).",
                    ),
                ],
            ),
            list(
                "writable",
                Ty::Path,
                "More writable folders (`ReadWritePaths=`).",
            ),
        ],
    ),
    ENV,
    free_block(
        "images",
        Ty::Str,
        "Images several processes share, said once: `images { app \"ghcr.io/shop/app:1.4.2\" }`; a process says `image \"${images.app}\"`.",
    ),
    SECRET,
    keyed(
        "service",
        Ty::Name,
        Values::None,
        "An application process: web server, Celery worker or beat, one-off task.",
        SERVICE_BODY,
    ),
    keyed(
        "postgres",
        Ty::Name,
        Values::None,
        "A PostgreSQL database, optionally behind pgbouncer.",
        POSTGRES_BODY,
    ),
    keyed(
        "redis",
        Ty::Name,
        Values::None,
        "A Redis cache/broker.",
        REDIS_BODY,
    ),
    keyed(
        "site",
        Ty::Host,
        Values::None,
        "A public site served by nginx.",
        SITE_BODY,
    ),
    block(
        "firewall",
        "Host firewall (ufw): default deny inbound, then the allowed ports.",
        &[
            setting(
                "backend",
                Ty::Enum(FIREWALL_BACKENDS),
                "Firewall program (default `ufw`): the systemd target writes `firewall/ufw-<project>.sh` (ufw commands) or `firewall/<project>.nft` (an nftables table).",
            ),
            keyed(
                "allow",
                Ty::PortOrName,
                Values::None,
                "An open port: `allow ssh from=\"203.0.113.0/24\"`, `allow https`, `allow 8443 proto=udp`.",
                &[
                    list("from", Ty::Cidr, "Sources allowed (default: anywhere)."),
                    setting("proto", Ty::Enum(PROTOCOLS), "tcp (default) or udp."),
                    setting("limit", Ty::Bool, "Rate-limit connections (ufw `limit`)."),
                    setting("comment", Ty::Str, "Why it is open."),
                ],
            ),
        ],
    ),
    block(
        "alerts",
        "Prometheus alerting rules for what the environment runs (`prometheus/alerts.yml`): sites down and certificates expiring (blackbox_exporter), 5xx rate of the web services, disk space, PostgreSQL, replication lag, Redis memory, Celery queues. Each threshold has a default.",
        &[
            setting(
                "error-rate",
                Ty::Number,
                "Percent of 5xx responses over 5 minutes that alerts (default 5).",
            ),
            setting(
                "disk-free",
                Ty::Int,
                "Percent of free disk space below which it alerts (default 10).",
            ),
            setting(
                "cert-expiry",
                Ty::Duration,
                "Alert when a site's certificate expires within this (default `\"14d\"`).",
            ),
            setting(
                "replication-lag",
                Ty::Duration,
                "Alert when a replica lags more than this (default `\"30s\"`).",
            ),
            setting(
                "queue-length",
                Ty::Int,
                "Alert when a Celery queue holds more tasks than this for 10 minutes (default 1000).",
            ),
            setting(
                "connections",
                Ty::Int,
                "Percent of PostgreSQL's max_connections in use that alerts (default 80).",
            ),
        ],
    ),
    block(
        "fail2ban",
        "Brute-force bans on a host (fail2ban): the jails kiln knows, reading the logs kiln's units and nginx write, banning through the firewall's backend.",
        &[
            setting(
                "ban-time",
                Ty::Duration,
                "How long a ban lasts (default `\"1h\"`).",
            ),
            setting(
                "find-time",
                Ty::Duration,
                "The window failures are counted in (default `\"10m\"`).",
            ),
            setting(
                "max-retry",
                Ty::Int,
                "Failures in `find-time` that earn a ban (default 5).",
            ),
            keyed(
                "jail",
                Ty::Enum(FAIL2BAN_JAILS),
                Values::None,
                "A jail: `jail sshd`, `jail nginx-limit-req max-retry=10`; each takes `ban-time`, `find-time`, `max-retry` of its own.",
                &[
                    setting("ban-time", Ty::Duration, "This jail's ban time."),
                    setting("find-time", Ty::Duration, "This jail's window."),
                    setting("max-retry", Ty::Int, "This jail's failures before a ban."),
                ],
            ),
        ],
    ),
    PATCH,
    list(
        "targets",
        Ty::Enum(TARGETS),
        "What to emit: compose, systemd, nginx, pgbouncer, k8s.",
    ),
    block(
        "kubernetes",
        "Kubernetes settings.",
        &[
            setting(
                "namespace",
                Ty::Name,
                "Namespace (default `<project>-<environment>`).",
            ),
            setting(
                "ingress-class",
                Ty::Str,
                "`ingressClassName` (default `nginx`).",
            ),
            setting(
                "cluster-issuer",
                Ty::Str,
                "cert-manager ClusterIssuer for `tls acme`.",
            ),
            setting(
                "image-pull-policy",
                Ty::Enum(PULL_POLICIES),
                "`imagePullPolicy` of every container (default: `IfNotPresent` for an image pinned by digest, `Always` for a tag).",
            ),
        ],
    ),
    block(
        "compose",
        "Docker compose settings.",
        &[
            setting(
                "project-name",
                Ty::Name,
                "Compose project `name` (default `<project>-<environment>`).",
            ),
            setting("nginx-image", Ty::Str, "Image of the nginx container."),
        ],
    ),
    block(
        "policies",
        "Policy configuration for this environment.",
        POLICIES_BODY,
    ),
];

pub const PRESET_KINDS: &[&str] = &["service", "postgres", "redis", "site", "pooler"];

/// The types of a program's options.
pub const OPTION_TYPES: &[&str] = &["string", "int", "bool", "duration", "list"];

const PROGRAM_OPTION: NodeSpec = NodeSpec {
    repeat: false,
    ..keyed(
        "option",
        Ty::Ident,
        Values::None,
        "An option `run` may set: `option workers type=int flag=\"--workers={}\"`. Options are written into the command line in the order they are declared.",
        &[
            setting(
                "type",
                Ty::Enum(OPTION_TYPES),
                "`string` (default), `int`, `bool`, `duration` (seconds) or `list`.",
            ),
            setting(
                "flag",
                Ty::Str,
                "The argument it becomes, `{}` standing for the value (a list's items joined by `join`, or one argument each).",
            ),
            setting(
                "default",
                Ty::Scalar,
                "The value when `run` sets none (written into the command line).",
            ),
            setting(
                "if-true",
                Ty::Str,
                "For a `bool`: the argument when it is true.",
            ),
            setting(
                "if-false",
                Ty::Str,
                "For a `bool`: the argument when it is false.",
            ),
            setting(
                "otherwise",
                Ty::Str,
                "The argument when the option is not set and has no default.",
            ),
            setting(
                "join",
                Ty::Str,
                "For a `list` with a `flag`: the separator of its items (`,`).",
            ),
            setting("doc", Ty::Str, "What the option does."),
        ],
    )
};

/// How kiln may probe a program: HTTP on the service's `health` path (web programs), a
/// command, or not at all.
pub const PROBES: &[&str] = &["http", "none"];

const PROGRAM: NodeSpec = keyed(
    "program",
    Ty::Name,
    Values::None,
    "A program `run` can start: its command line, options, kind, probe and stop signal. kiln ships gunicorn, uvicorn, daphne, hypercorn, granian, celery worker and beat, flower, rq worker, dramatiq, Django's manage.py and `command` (stdlib/programs.kdl); a project declares more the same way.",
    &[
        list(
            "run",
            Ty::Str,
            "The words after `run` that select it (default: the program's name): `run \"celery\" \"worker\"`.",
        ),
        setting(
            "kind",
            Ty::Enum(SERVICE_KINDS),
            "What a service running it is: `web`, `worker`, `beat` or `task`.",
        ),
        setting(
            "runtime",
            Ty::Enum(&["python", "other"]),
            "`python` when the image surely has Python (kiln then probes with it rather than curl or wget).",
        ),
        setting(
            "app",
            Ty::Enum(&["required", "optional", "none"]),
            "Whether it takes an application (`config.wsgi:application`, the Celery app): the first word after the `run` words, or `app=`.",
        ),
        list(
            "argv",
            Ty::Str,
            "The start of the command line: `{app}`, `{host}`, `{port}` stand for the application and where it listens; `{command}` for the words after the `run` words.",
        ),
        PROGRAM_OPTION,
        list(
            "after",
            Ty::Str,
            "Arguments after the options (`{app}` allowed).",
        ),
        setting(
            "probe",
            Ty::Str,
            "A shell command that succeeds while the process is healthy (a worker's liveness): `{app}` stands for the shell-quoted application, `$` is a literal dollar.",
        ),
        setting(
            "health",
            Ty::Enum(PROBES),
            "`http` (default for web programs): probed on the service's `health` path; `none`.",
        ),
        setting(
            "stop-signal",
            Ty::Enum(&[
                "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH",
            ]),
            "The signal that stops it gracefully (default SIGTERM).",
        ),
        setting("doc", Ty::Str, "What the program is."),
    ],
);

pub const TOP: &[NodeSpec] = &[
    keyed(
        "project",
        Ty::Name,
        Values::None,
        "The project: its name and where output goes.",
        &[
            setting(
                "output",
                Ty::Str,
                "Output folder, relative to the project (default `generated`).",
            ),
            setting("description", Ty::Str, "Free text."),
            setting(
                "settings-prefix",
                Ty::EnvName,
                "The prefix the app reads its framework settings under (`DJANGO_`: `DJANGO_ALLOWED_HOSTS`, `DJANGO_SECURE_SSL_REDIRECT`): the policies read and suggest those names.",
            ),
        ],
    ),
    NodeSpec {
        repeat: true,
        ..list(
            "include",
            Ty::Str,
            "More spec files, relative to this one: `include \"environments/production.kdl\"`. Any spec file may include others; each `.kdl` file is read once, and a file that includes itself, directly or not, is an error.",
        )
    },
    keyed(
        "environment",
        Ty::Name,
        Values::None,
        "A deployment environment.",
        ENV_BODY,
    ),
    NodeSpec {
        name: "preset",
        doc: "A project preset: `preset hardened-web for=service extends=django-web { … }`, used with `preset=hardened-web`; `extends` layers it on another preset.",
        key: Some(Ty::Name),
        values: Values::None,
        children: &[],
        free: None,
        repeat: false,
        replace_on_change: false,
        plain: false,
    },
    PROGRAM,
    block(
        "policies",
        "Policy configuration for every environment.",
        POLICIES_BODY,
    ),
];

/// The nodes under a schema path: `environment`, `environment/site/gzip`, `preset:service`
/// (a preset's body), `top`.
pub fn level(path: &str) -> Option<&'static [NodeSpec]> {
    if path == "top" {
        return Some(TOP);
    }
    let mut parts = path.split('/');
    let first = parts.next()?;
    let mut specs: &'static [NodeSpec] = match first.strip_prefix("preset:") {
        Some(kind) => preset_body(kind)?,
        None => TOP.iter().find(|s| s.name == first)?.children,
    };
    for part in parts {
        specs = specs.iter().find(|s| s.name == part)?.children;
    }
    Some(specs)
}

/// The body schema of a preset for a node kind.
pub fn preset_body(kind: &str) -> Option<&'static [NodeSpec]> {
    Some(match kind {
        "service" => SERVICE_BODY,
        "postgres" => POSTGRES_BODY,
        "redis" => REDIS_BODY,
        "site" => SITE_BODY,
        "pooler" => POOLER.children,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Validation

/// Checks nodes against a schema level: unknown names, value types, required
/// arguments, duplicates. Reports everything it finds.
pub fn check(
    nodes: &[Node],
    specs: &'static [NodeSpec],
    free: Option<Ty>,
    parent: &str,
    diags: &mut Vec<Diagnostic>,
) {
    // Keys already seen at this level, to the first node that had them: a map, so that a
    // level of many children (an `env` block of thousands of variables) costs linear time.
    let mut seen: std::collections::HashMap<String, &Node> = std::collections::HashMap::new();
    for node in nodes {
        let spec = specs.iter().find(|s| s.name == node.name);
        check_annotation(node, diags);
        match (spec, free) {
            (Some(spec), _) => {
                check_node(node, spec, diags);
                if !spec.repeat && node.annotation.is_none() {
                    let key = match spec.key {
                        Some(_) => format!("{} {}", node.name, node.key().unwrap_or_default()),
                        None => node.name.clone(),
                    };
                    match seen.entry(key) {
                        std::collections::hash_map::Entry::Occupied(first) => {
                            diags.push(duplicate(node, first.get(), spec.key.is_some()))
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(node);
                        }
                    }
                }
            }
            (None, Some(ty)) => {
                check_free(node, ty, parent == "`env`", diags);
                match seen.entry(node.name.clone()) {
                    std::collections::hash_map::Entry::Occupied(first) => {
                        diags.push(duplicate(node, first.get(), false))
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(node);
                    }
                }
            }
            (None, None) => diags.push(unknown(node, specs, parent)),
        }
    }
}

fn duplicate(node: &Node, first: &Node, keyed: bool) -> Diagnostic {
    let what = if keyed {
        format!("`{} {}`", node.name, node.key().unwrap_or_default())
    } else {
        format!("`{}`", node.name)
    };
    Diagnostic::error("duplicate", format!("{what} is declared twice"))
        .with_label(node.value_span_or_name(), "declared again here")
        .with_label(first.value_span_or_name(), "first declared here")
        .with_help("remove one of them; to change an inherited value, set it in the environment that extends this one")
}

impl Node {
    fn value_span_or_name(&self) -> crate::source::Span {
        if self.from_prop {
            self.name_span
        } else {
            self.args.first().map_or(self.name_span, |a| a.span)
        }
    }
}

fn unknown(node: &Node, specs: &[NodeSpec], parent: &str) -> Diagnostic {
    let names: Vec<&str> = if node.from_prop {
        specs
            .iter()
            .filter(|s| s.is_setting())
            .map(|s| s.name)
            .collect()
    } else {
        specs.iter().map(|s| s.name).collect()
    };
    let what = if node.from_prop { "property" } else { "node" };
    let code = if node.from_prop {
        "unknown-property"
    } else {
        "unknown-node"
    };
    let mut help = unknown_name_help(&node.name, what, &names);
    if node.from_prop && specs.iter().any(|s| s.name == node.name) {
        help = format!(
            "`{}` is a block: write it as a child node `{} {{ … }}`",
            node.name, node.name
        );
    }
    Diagnostic::error(code, format!("unknown {what} `{}` in {parent}", node.name))
        .with_label(node.name_span, format!("not a {parent} {what}"))
        .with_help(help)
}

fn check_annotation(node: &Node, diags: &mut Vec<Diagnostic>) {
    if let Some((ann, span)) = &node.annotation
        && ann != "remove"
        && ann != "replace"
    {
        let help = unknown_name_help(ann, "annotation", &["remove", "replace"]);
        diags.push(
            Diagnostic::error(
                "invalid-annotation",
                format!("unknown annotation `({ann})`"),
            )
            .with_label(*span, "not `(remove)` or `(replace)`")
            .with_help(help),
        );
    }
}

fn check_node(node: &Node, spec: &'static NodeSpec, diags: &mut Vec<Diagnostic>) {
    let removing = matches!(&node.annotation, Some((a, _)) if a == "remove");
    let mut args: &[Scalar] = &node.args;
    if let Some(key_ty) = spec.key {
        match args.first() {
            Some(key) => {
                check_type(key, key_ty, &format!("the name of `{}`", node.name), diags);
                args = &args[1..];
            }
            None => {
                diags.push(
                    Diagnostic::error("missing-value", format!("`{}` needs a name", node.name))
                        .with_label(node.name_span, "no name given")
                        .with_help(format!("write `{} NAME {{ … }}`", node.name)),
                );
                return;
            }
        }
    }
    if removing {
        return;
    }
    let what = format!("`{}`", node.name);
    match spec.values {
        Values::None => {
            if let Some(extra) = args.first() {
                let (code, message, help) = if spec.name == "secret" {
                    (
                        "secret-literal",
                        format!("a literal value is given to secret `{}`", node.key().unwrap_or_default()),
                        "a spec declares a secret's name and kind, never its value: remove the value and provide it at deploy time (env file, k8s Secret); `kiln secrets check` verifies it".to_owned(),
                    )
                } else {
                    (
                        "unexpected-value",
                        format!("{what} takes no value here"),
                        format!("remove it, or set it as a child of {what}"),
                    )
                };
                diags.push(
                    Diagnostic::error(code, message)
                        .with_label(extra.span, "unexpected value")
                        .with_help(help),
                );
            }
        }
        Values::One(ty) | Values::Optional(ty) => {
            match args.first() {
                None if matches!(spec.values, Values::One(_)) => {
                    diags.push(missing_value(node, ty))
                }
                None => {}
                Some(v) if v.value == Value::Null && spec.is_setting() => {} // `#null` unsets
                Some(v) => {
                    check_type(v, ty, &what, diags);
                }
            }
            if let Some(extra) = args.get(1) {
                diags.push(
                    Diagnostic::error("unexpected-value", format!("{what} takes one value"))
                        .with_label(extra.span, "extra value")
                        .with_help("remove the extra values"),
                );
            }
        }
        Values::Many(ty) | Values::AnyNumber(ty) => {
            if args.is_empty() && matches!(spec.values, Values::Many(_)) {
                diags.push(missing_value(node, ty));
            }
            for v in args {
                if v.value == Value::Null && spec.is_setting() && args.len() == 1 {
                    continue;
                }
                match &v.value {
                    // `allow="10.0.0.0/8,192.168.0.0/16"`: a list written as one property.
                    Value::Str(list) if node.from_prop && list.contains(',') => {
                        for item in list.split(',').map(str::trim) {
                            check_type(
                                &Scalar {
                                    value: Value::Str(item.to_owned()),
                                    span: v.span,
                                },
                                ty,
                                &what,
                                diags,
                            );
                        }
                    }
                    _ => {
                        check_type(v, ty, &what, diags);
                    }
                }
            }
        }
    }
    if node.from_prop {
        return;
    }
    if spec.name == "preset" && spec.key.is_some() {
        return; // a preset's body is checked against its kind's schema
    }
    check(
        &node.children,
        spec.children,
        spec.free,
        &format!("`{}`", node.name),
        diags,
    );
}

/// The targets a variable may take another value for (`NAME value systemd="…"`): the
/// ones that run the app's processes.
pub const ENV_TARGETS: [&str; 3] = ["compose", "systemd", "k8s"];

fn check_free(node: &Node, ty: Ty, per_target: bool, diags: &mut Vec<Diagnostic>) {
    if node.annotation.is_some() || ty == Ty::ProgramOption {
        return;
    }
    match node.args.as_slice() {
        [] => diags.push(missing_value(node, ty)),
        [v] => {
            check_type(v, ty, &format!("`{}`", node.name), diags);
        }
        [_, extra, ..] => diags.push(
            Diagnostic::error(
                "unexpected-value",
                format!("`{}` takes one value", node.name),
            )
            .with_label(extra.span, "extra value")
            .with_help("quote the whole value as one string"),
        ),
    }
    for child in &node.children {
        if per_target && child.from_prop && ENV_TARGETS.contains(&child.name.as_str()) {
            // `NAME value systemd="…"`: that target's value, a plain one.
            match child.args.as_slice() {
                [v] if v.value != Value::Null => {
                    check_type(v, ty, &format!("`{}` for {}", node.name, child.name), diags);
                }
                _ => diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("`{}` has no value for {}", node.name, child.name),
                    )
                    .with_label(child.span, "no value for this target")
                    .with_help(format!(
                        "write the value {} takes in {}: `{}=\"…\"`",
                        node.name, child.name, child.name
                    )),
                ),
            }
            continue;
        }
        let (message, label, help) = if per_target && child.from_prop {
            (
                format!("`{}` has no target `{}`", node.name, child.name),
                "not a target that runs the app",
                format!(
                    "a variable takes another value per target only: {}",
                    ENV_TARGETS.map(|t| format!("`{t}=\"…\"`")).join(", ")
                ),
            )
        } else {
            (
                format!("`{}` takes no children", node.name),
                "unexpected child",
                "a variable holds a single value".to_owned(),
            )
        };
        diags.push(
            Diagnostic::error("unexpected-block", message)
                .with_label(child.name_span, label)
                .with_help(help),
        );
        break;
    }
    if ty == Ty::Scalar
        && !is_env_name(&node.name)
        && node
            .name
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
    {
        diags.push(
            Diagnostic::error(
                "invalid-name",
                format!("`{}` is not a valid name here", node.name),
            )
            .with_label(node.name_span, "invalid characters")
            .with_help("use letters, digits and `_`"),
        );
    }
}

fn missing_value(node: &Node, ty: Ty) -> Diagnostic {
    Diagnostic::error("missing-value", format!("`{}` needs a value", node.name))
        .with_label(node.name_span, format!("expected {}", describe(ty)))
        .with_help(format!("write `{} {}`", node.name, example(ty)))
}

pub fn describe(ty: Ty) -> String {
    match ty {
        Ty::Str => "a string".into(),
        Ty::Name => "a name (lowercase letters, digits, `-`)".into(),
        Ty::Ident => "an identifier (letters, digits, `_`, `-`, `.`)".into(),
        Ty::EnvName => "a variable name (letters, digits, `_`)".into(),
        Ty::Int => "an integer".into(),
        Ty::Bool => "`#true` or `#false`".into(),
        Ty::Number => "a number".into(),
        Ty::Size => "a size such as \"512mb\" or \"4Gi\"".into(),
        Ty::Duration => "a duration such as 60 (seconds), \"60s\" or \"30d\"".into(),
        Ty::Port => "a port number (1–65535)".into(),
        Ty::Path => "an absolute path (no spaces, no `..`)".into(),
        Ty::Host => "a host name".into(),
        Ty::Cidr => "an address or CIDR block".into(),
        Ty::Rate => "a rate such as \"10r/s\"".into(),
        Ty::Date => "a date YYYY-MM-DD".into(),
        Ty::Scalar => "a value".into(),
        Ty::ProgramOption => "a value of the program's option".into(),
        Ty::Enum(options) => format!(
            "one of {}",
            options
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ty::PortOrName => "a port number, a range \"8000:8010\", or `ssh`/`http`/`https`".into(),
    }
}

fn example(ty: Ty) -> String {
    match ty {
        Ty::Str | Ty::Scalar | Ty::ProgramOption => "\"…\"".into(),
        Ty::Name => "web".into(),
        Ty::Ident => "app_user".into(),
        Ty::EnvName => "SECRET_KEY".into(),
        Ty::Int | Ty::Number => "2".into(),
        Ty::Bool => "#true".into(),
        Ty::Size => "\"512mb\"".into(),
        Ty::Duration => "\"60s\"".into(),
        Ty::Port => "8000".into(),
        Ty::Path => "\"/var/www/app\"".into(),
        Ty::Host => "\"app.example.com\"".into(),
        Ty::Cidr => "\"10.0.0.0/8\"".into(),
        Ty::Rate => "\"10r/s\"".into(),
        Ty::Date => "\"2027-01-31\"".into(),
        Ty::Enum(options) => options.first().copied().unwrap_or("…").into(),
        Ty::PortOrName => "https".into(),
    }
}

/// Checks one value against a type; reports a `type-mismatch` at the value.
pub fn check_type(v: &Scalar, ty: Ty, what: &str, diags: &mut Vec<Diagnostic>) -> bool {
    let ok = match (&v.value, ty) {
        (_, Ty::Scalar | Ty::ProgramOption) => true,
        (Value::Str(_), Ty::Str) => true,
        (Value::Str(s), Ty::Name) => is_dns_label(s),
        (Value::Str(s), Ty::Ident) => is_ident(s),
        (Value::Str(s), Ty::EnvName) => is_env_name(s),
        (Value::Int(_), Ty::Int) => true,
        (Value::Bool(_), Ty::Bool) => true,
        (Value::Int(i), Ty::Number) => *i >= 0,
        (Value::Float(f), Ty::Number) => *f >= 0.0,
        (Value::Str(s), Ty::Number) => parse_cpu(s).is_some(),
        (Value::Int(i), Ty::Size) => *i >= 0,
        (Value::Str(s), Ty::Size) => parse_size(s).is_some(),
        (Value::Int(i), Ty::Duration) => *i >= 0,
        (Value::Str(s), Ty::Duration) => parse_duration(s).is_some(),
        (Value::Int(i), Ty::Port) => (1..=65535).contains(i),
        (Value::Str(s), Ty::Path) => {
            s.starts_with('/')
                && !s.contains("/../")
                && !s.ends_with("/..")
                && !s.contains(char::is_whitespace)
        }
        (Value::Str(s), Ty::Host) => is_host(s),
        (Value::Str(s), Ty::Cidr) => is_cidr(s),
        (Value::Str(s), Ty::Rate) => parse_rate(s).is_some(),
        (Value::Str(s), Ty::Date) => is_date(s),
        (Value::Str(s), Ty::Enum(options)) => options.contains(&s.as_str()),
        (Value::Int(i), Ty::Enum(options)) => options.contains(&i.to_string().as_str()),
        (Value::Int(i), Ty::PortOrName) => (1..=65535).contains(i),
        (Value::Str(s), Ty::PortOrName) => {
            ["ssh", "http", "https"].contains(&s.as_str()) || parse_port_range(s).is_some()
        }
        _ => false,
    };
    if !ok {
        let mut diag =
            Diagnostic::error("type-mismatch", format!("{what} must be {}", describe(ty)))
                .with_label(v.span, format!("this is {}", v.value.type_name()));
        diag = match (ty, &v.value) {
            (Ty::Enum(options), Value::Str(s)) => {
                diag.with_help(unknown_name_help(s, "value", options))
            }
            (Ty::Int | Ty::Port, Value::Str(s)) if s.parse::<i64>().is_ok() => {
                diag.with_help(format!("write the number without quotes: {s}"))
            }
            (Ty::Bool, Value::Str(s))
                if ["true", "false", "yes", "no"].contains(&s.to_lowercase().as_str()) =>
            {
                diag.with_help("booleans are `#true` and `#false` in KDL v2")
            }
            _ => diag.with_help(format!(
                "write {}, for example `{}`",
                describe(ty),
                example(ty)
            )),
        };
        diags.push(diag);
    }
    ok
}

pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
}

pub fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

pub fn is_host(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub fn is_cidr(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let max = if addr.parse::<std::net::Ipv4Addr>().is_ok() {
        32
    } else if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        128
    } else {
        return false;
    };
    prefix.is_none_or(|p| p.parse::<u32>().is_ok_and(|p| p <= max))
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
        && (1..=12).contains(&parts[1].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&parts[2].parse::<u32>().unwrap_or(0))
}

/// Bytes in a size such as `512mb`, `4Gi`, `10M` (nginx style), `1024`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    // Binary, as nginx, Redis (`mb`) and Docker read them: 512mb = 512m = 512Mi = 512 MiB.
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        "t" | "tb" | "ti" | "tib" => 1 << 40,
        _ => return None,
    };
    (num >= 0.0 && num.is_finite()).then_some((num * mult as f64) as u64)
}

/// Seconds in a duration such as `60s`, `10m`, `1h`, `30d`, `1y`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "s" => 1,
        "ms" => return Some(num / 1000),
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "M" => 2_592_000,
        "y" => 31_536_000,
        _ => return None,
    };
    num.checked_mul(mult)
}

/// Millicores in a CPU amount such as `2`, `0.5`, `500m`.
pub fn parse_cpu(s: &str) -> Option<u64> {
    if let Some(m) = s.strip_suffix('m') {
        return m.parse::<u64>().ok().filter(|&v| v > 0);
    }
    let v: f64 = s.parse().ok()?;
    (v > 0.0 && v.is_finite()).then(|| (v * 1000.0).round() as u64)
}

pub fn parse_rate(s: &str) -> Option<(u64, char)> {
    let (n, unit) = s.split_once("r/")?;
    let unit = match unit {
        "s" => 's',
        "m" => 'm',
        _ => return None,
    };
    Some((n.parse().ok().filter(|&n| n > 0)?, unit))
}

pub fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once(':') {
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
            (a > 0 && a <= b).then_some((a, b))
        }
        None => s.parse::<u16>().ok().filter(|&p| p > 0).map(|p| (p, p)),
    }
}
