//! The `systemd` target: one hardened service unit per app process
//! (`<project>-<service>.service`), a `<project>.target` that wants them all, and
//! `<project>.env.example`, the template of the environment file that holds the secrets.
//!
//! Decisions:
//! - `Type=exec` everywhere (`notify` needs gunicorn built with systemd support); one-off
//!   tasks are `Type=oneshot`.
//! - `replicas` > 1 becomes a template unit: a web process gets one instance per port
//!   (`<project>-web@8000` … `@8002`, consecutive ports, and the nginx host upstream lists
//!   every one: [`host_ports`] is the single plan both targets read); a Celery worker gets
//!   numbered instances with distinct node names. When the consecutive ports are not free,
//!   or for a beat (a second scheduler runs every periodic task twice) or a task, one unit
//!   is emitted and the replicas are reported as unsupported.
//! - No secret value, ever: secrets and wired values holding one come only from
//!   `EnvironmentFile=`; the units name them in a comment.
//! - Sandboxing aims at `systemd-analyze security` "OK" (≤ 2.0) while keeping a Python web
//!   app working: network stays open (it talks to databases and outside APIs), and
//!   `MemoryDenyWriteExecute=` stays off (cffi callbacks and JITs need W+X pages; POLICIES #40
//!   keeps it a warning).

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::Artifact;
use kiln_core::model::{
    Condition, EnvValue, Model, Part, Service, ServiceKind, Target, pointer, pointer_segment,
    secret_file_variable,
};

use crate::{Output, Unsupported, Writer, header_text};

/// The secret behind a variable when it is delivered as a file (`deliver=file`).
fn file_secret<'m>(model: &Model, value: &'m EnvValue) -> Option<&'m str> {
    match value {
        EnvValue::Secret(sec) if model.secrets.get(sec).is_some_and(|x| x.as_file) => Some(sec),
        _ => None,
    }
}

/// Where the host keeps a file-delivered secret: systemd's credential store, one folder per
/// project (root-owned, mode 0600 files; `LoadCredential=` reads them).
fn credential_path(model: &Model, secret: &str) -> String {
    format!("/etc/credstore/{}/{secret}", unit_part(&model.project.name))
}

/// Open files per process: Debian's default soft limit (1024) is short for a busy web app.
const LIMIT_NOFILE: u32 = 65536;

pub fn emit(model: &Model) -> Output {
    let mut cx = Cx {
        model,
        unsupported: Vec::new(),
    };
    let mut out = Output::default();
    if model.services.is_empty() {
        return out;
    }
    let ports = host_ports(model);
    let mut wanted: Vec<(String, String)> = Vec::new();
    let plans: BTreeMap<&str, Plan> = model
        .services
        .iter()
        .map(|(name, service)| (name.as_str(), cx.plan(name, service, &ports)))
        .collect();
    for (name, s) in &model.services {
        if s.balancer.is_some() {
            cx.unsupported(
                pointer(&["services", name, "balancer"]),
                format!("service `{name}`: on a host nginx balances the instances itself (its upstream, with max_fails); kiln writes no HAProxy for hosts"),
            );
        }
    }
    let supervised = model.host.process_manager == "supervisor";
    if supervised {
        let (conf, mut skipped) = crate::supervisor::emit(model);
        out.artifacts.push(conf);
        cx.unsupported.append(&mut skipped);
    }
    for (name, service) in &model.services {
        if supervised {
            break;
        }
        let plan = &plans[name.as_str()];
        out.artifacts.push(cx.unit(name, service, plan, &plans));
        if service.replicas == 0 {
            continue;
        }
        for instance in &plan.instances {
            wanted.push((instance.clone(), pointer(&["services", name])));
        }
    }
    cx.app_files(&mut out.artifacts);
    for (name, pg) in &model.postgres {
        if is_local(&pg.host) {
            let (conf, skipped) = crate::postgres::host_conf(model, name);
            out.artifacts.push(conf);
            for (pointer, message) in skipped {
                cx.unsupported(pointer, message);
            }
            out.artifacts.push(crate::postgres::host_hba(model, name));
            if pg.replicas > 0 {
                cx.unsupported(
                    pointer(&["postgres", name, "replicas"]),
                    format!("{} read replica(s) of `{name}`: a replica runs on another host, which this host's files do not configure; the init script creates the replication role", pg.replicas),
                );
            }
            let script = crate::postgres::init_script(model, name, crate::postgres::Flavor::Host);
            out.artifacts
                .push(script.finish(format!("postgresql/{}", crate::postgres::init_file(name))));
            if pg.backup.is_some() {
                let [service, timer] = crate::postgres::host_backup_units(
                    model,
                    name,
                    &unit_part(&model.project.name),
                );
                wanted.push((
                    timer.path.trim_start_matches("systemd/").to_owned(),
                    pointer(&["postgres", name, "backup"]),
                ));
                out.artifacts.push(service);
                out.artifacts.push(timer);
            }
        } else if pg.backup.is_some() {
            cx.unsupported(
                pointer(&["postgres", name, "backup"]),
                format!("postgres `{name}` is not on this host ({}): its backups are the server's (a managed database's snapshots), not this host's", pg.host),
            );
        }
    }
    for (name, r) in &model.redis {
        if is_local(&r.host) {
            out.artifacts.push(redis_conf(model, name, r));
        }
        if r.replicas > 0 {
            cx.unsupported(
                pointer(&["redis", name, "replicas"]),
                format!("{} read replica(s) of redis `{name}`: a replica (and a sentinel) runs on another host, which this host's files do not configure; this host's redis.conf is the primary's", r.replicas),
            );
        }
        if r.sentinel.is_some() {
            cx.unsupported(
                pointer(&["redis", name, "sentinel"]),
                format!("the sentinels of redis `{name}` run on other hosts, so that one host's loss leaves a majority: `${{{name}.sentinel-url}}` names hosts this target does not configure"),
            );
        }
    }
    out.artifacts.push(logrotate(model));
    out.artifacts.extend(crate::firewall::emit(model));
    let (jails, skipped) = crate::fail2ban::emit(model);
    out.artifacts.extend(jails);
    for (pointer, message) in skipped {
        cx.unsupported(pointer, message);
    }
    if !supervised {
        out.artifacts.push(cx.target(&wanted));
    }
    out.artifacts.push(cx.env_example());
    out.unsupported = cx.unsupported;
    out
}

/// The host ports of each web process's instances: `port`, `port + 1`, … for `replicas` > 1
/// when all of them are free on the host, otherwise the one `port`. The nginx host flavour
/// lists exactly these in its upstream.
pub fn host_ports(model: &Model) -> BTreeMap<String, Vec<u16>> {
    let mut taken: BTreeSet<u16> = BTreeSet::new();
    taken.extend(model.services.values().filter_map(|s| s.port));
    for pg in model.postgres.values() {
        taken.insert(pg.port);
        if let Some(p) = &pg.pooler {
            taken.insert(p.port);
        }
    }
    taken.extend(model.redis.values().map(|r| r.port));
    for site in model.sites.values() {
        taken.extend([site.listen.http, site.listen.https]);
    }
    let mut out = BTreeMap::new();
    for (name, s) in &model.services {
        let Some(port) = s.port else { continue };
        let mut ports = vec![port];
        // Instances on several ports only when kiln passes the port on the command line.
        let takes_port =
            s.run.command_line("127.0.0.1", None) != s.run.command_line("127.0.0.1", Some(port));
        if s.kind == ServiceKind::Web && s.replicas > 1 && takes_port {
            let extra: Option<Vec<u16>> = (1..s.replicas)
                .map(|i| u16::try_from(i).ok().and_then(|i| port.checked_add(i)))
                .collect();
            if let Some(extra) = extra
                && extra.iter().all(|p| !taken.contains(p))
            {
                taken.extend(&extra);
                ports.extend(extra);
            }
        }
        out.insert(name.clone(), ports);
    }
    out
}

/// How one service becomes units.
struct Plan {
    /// The unit file name (`tulia-web.service` or `tulia-web@.service`).
    file: String,
    /// The units to start (`tulia-web@8000.service` …, or the one unit).
    instances: Vec<String>,
    /// What `%i` is, for a template.
    template: Option<TemplateKind>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TemplateKind {
    /// `%i` is the port.
    Port,
    /// `%i` is the instance number.
    Number,
}

struct Cx<'a> {
    model: &'a Model,
    unsupported: Vec<Unsupported>,
}

/// A unit name component: what systemd allows, nothing else.
/// A service's unit name, without `.service`: the spec's `unit`, else `<project>-<service>`.
pub(crate) fn unit_file_name(model: &Model, service: &str) -> String {
    match model.services.get(service).and_then(|s| s.unit.as_ref()) {
        Some(unit) => unit_part(unit),
        None => format!("{}-{}", unit_part(&model.project.name), unit_part(service)),
    }
}

fn unit_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ":_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Escapes `%` (specifiers), for every setting systemd expands specifiers in.
fn spec(s: &str) -> String {
    s.replace('%', "%%")
}

/// C-style escapes of a value that goes inside double quotes.
fn c_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// One word of a command line: `%` and `$` escaped (both are expanded in `ExecStart=`),
/// quoted when it holds white space, quotes, backslashes or is a lone `;`.
fn exec_word(s: &str) -> String {
    let e = spec(s).replace('$', "$$");
    let plain = !e.is_empty()
        && e != ";"
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\".contains(c));
    if plain {
        e
    } else {
        format!("\"{}\"", c_escape(&e))
    }
}

/// A path in a space-separated list setting.
fn path_word(s: &str) -> String {
    let e = spec(s);
    if e.chars().any(|c| c.is_whitespace() || "\"'\\".contains(c)) {
        format!("\"{}\"", c_escape(&e))
    } else {
        e
    }
}

/// `4294967296` → `4G`: systemd's suffixes are powers of 1024.
fn bytes(n: u64) -> String {
    crate::binary_size(
        n,
        &[
            ("T", 1 << 40),
            ("G", 1 << 30),
            ("M", 1 << 20),
            ("K", 1 << 10),
        ],
    )
}

/// Millicores → `CPUQuota=` percent (`2000` → `200%`, `250` → `25%`, `125` → `12.5%`).
fn cpu_quota(millicores: u64) -> String {
    if millicores.is_multiple_of(10) {
        format!("{}%", millicores / 10)
    } else {
        format!("{}.{}%", millicores / 10, millicores % 10)
    }
}

/// The Debian unit that runs Redis `name` on this host, from `redis/redis-<name>.conf`.
fn redis_unit(name: &str) -> String {
    format!("redis-server@{}.service", unit_part(name))
}

/// Where the host keeps the password of Redis `name`: an include only root and redis read.
fn redis_auth_path(name: &str) -> String {
    format!("/etc/redis/redis-{}.auth.conf", unit_part(name))
}

/// `redis/redis-<name>.conf`: a Redis on the host, for Debian's template unit
/// `redis-server@<name>` (which passes `--supervised systemd --daemonize no` and runs it as
/// `redis` under a strict sandbox). Loopback only; the spec's memory, eviction, persistence
/// and settings; the password from an include kiln never writes, so no secret is in the
/// output and Redis refuses to start until the operator has put it there.
fn redis_conf(model: &Model, name: &str, r: &kiln_core::model::Redis) -> Artifact {
    let base = pointer(&["redis", name]);
    let file = unit_part(name);
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line(
        format!("# Redis `{name}` on this host: install as /etc/redis/redis-{file}.conf, then"),
        &[&base],
    );
    w.line(
        format!(
            "# `systemctl enable --now {}` (the app units wait for it).",
            redis_unit(name)
        ),
        &[&base],
    );
    w.line("", &[]);
    w.line(
        "# Loopback only: nothing outside this host reaches it.",
        &[],
    );
    w.line(format!("bind {} -::1", r.host), &[&format!("{base}/host")]);
    w.line("protected-mode yes", &[]);
    w.line(format!("port {}", r.port), &[&format!("{base}/port")]);
    w.line("dir /var/lib/redis", &[]);
    w.line(format!("dbfilename {file}.rdb"), &[&base]);
    w.line(format!("appendfilename \"{file}.aof\""), &[&base]);
    w.line(
        format!("appendonly {}", if r.appendonly { "yes" } else { "no" }),
        &[&format!("{base}/appendonly")],
    );
    if let Some(m) = r.maxmemory {
        w.line(
            format!("maxmemory {}", crate::compose::containers::redis_size(m)),
            &[&format!("{base}/maxmemory")],
        );
    }
    if let Some(e) = &r.eviction {
        w.line(
            format!("maxmemory-policy {e}"),
            &[&format!("{base}/eviction"), &format!("{base}/role")],
        );
    }
    for (k, v) in &r.settings {
        let text = crate::compose::containers::setting_text(v, "yes", "no");
        w.line(
            format!("{k} {}", redis_quote(&text)),
            &[&pointer(&["redis", name, "settings", k])],
        );
    }
    if let Some(pw) = &r.password {
        let pp = format!("{base}/password");
        w.line("", &[]);
        w.line(
            format!(
                "# The password (secret {pw}) is not in this file: write `requirepass <{pw}>` to"
            ),
            &[&pp],
        );
        w.line(
            format!(
                "# {} (owner root, group redis, mode 0640). Redis will not start without it.",
                redis_auth_path(name)
            ),
            &[&pp],
        );
        w.line(format!("include {}", redis_auth_path(name)), &[&pp]);
    }
    w.finish(format!("redis/redis-{file}.conf"))
}

/// `logrotate/<project>`: the log folder's `*.log`, rotated as the spec says. The app keeps
/// its log files open (Python's FileHandler does not reopen on a signal), so they are copied
/// and truncated in place: nothing to signal, at the cost of lines written during the copy.
/// `su` because the folder belongs to the app's user (logrotate refuses an unsafe parent).
fn logrotate(model: &Model) -> Artifact {
    let h = &model.host;
    let r = &h.log_rotation;
    let rp = "/host/log-rotation";
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line(
        format!(
            "# Install as /etc/logrotate.d/{}; Debian's logrotate.timer runs it daily.",
            unit_part(&model.project.name)
        ),
        &[],
    );
    w.line(
        "# The app keeps its logs open: they are copied and truncated in place (copytruncate).",
        &[],
    );
    w.line(
        format!("{}/*.log {{", h.log_dir.trim_end_matches('/')),
        &["/host/log-dir"],
    );
    w.line(format!("    {}", r.every), &[rp, &format!("{rp}/every")]);
    w.line(
        format!("    rotate {}", r.keep),
        &[rp, &format!("{rp}/keep")],
    );
    if let Some(m) = r.max_size {
        w.line(
            format!("    maxsize {}", logrotate_size(m)),
            &[&format!("{rp}/max-size")],
        );
    }
    for line in [
        "missingok",
        "notifempty",
        "compress",
        "delaycompress",
        "copytruncate",
    ] {
        w.line(format!("    {line}"), &[]);
    }
    w.line(
        format!("    su {} {}", h.user, h.group),
        &["/host/user", "/host/group"],
    );
    w.line("}", &[]);
    w.finish(format!("logrotate/{}", unit_part(&model.project.name)))
}

/// Bytes as logrotate writes sizes: `100M`, `1G`, `512k`, or bytes.
fn logrotate_size(bytes: u64) -> String {
    crate::binary_size(bytes, &[("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)])
}

/// A value in redis.conf: bare when it is one plain word, else double-quoted.
fn redis_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
    {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Where a process's program is on the host: an absolute path as it is, a relative one under
/// the app's folder, a bare name in the app's virtualenv (python, alembic, celery …; system
/// programs are named by absolute path in the spec).
pub(crate) fn host_exe(model: &Model, exe: &str) -> String {
    if exe.starts_with('/') {
        exe.to_owned()
    } else if exe.contains('/') {
        format!("{}/{exe}", model.host.root.trim_end_matches('/'))
    } else {
        format!("{}/bin/{exe}", model.host.venv)
    }
}

pub(crate) fn is_local(addr: &str) -> bool {
    addr == "localhost" || addr == "::1" || addr.starts_with("127.")
}

fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The model option behind a command-line flag, for provenance.
fn option_of(arg: &str, options: &BTreeMap<String, serde_json::Value>) -> Option<String> {
    let name = arg.strip_prefix("--")?.split('=').next()?;
    let key = match name {
        "loglevel" => "log-level",
        "timeout-keep-alive" => "keep-alive",
        "access-logfile" | "access-log" | "no-access-log" => "access-log",
        other => other,
    };
    options.contains_key(key).then(|| key.to_owned())
}

impl Cx<'_> {
    fn unsupported(&mut self, pointer: String, message: impl Into<String>) {
        self.unsupported.push(Unsupported {
            target: Target::Systemd,
            pointer,
            message: message.into(),
            security: false,
        });
    }

    /// The unit's name: the spec's `unit`, else `<project>-<service>`.
    fn unit_name(&self, service: &str) -> String {
        unit_file_name(self.model, service)
    }

    fn plan(&mut self, name: &str, service: &Service, ports: &BTreeMap<String, Vec<u16>>) -> Plan {
        let base = self.unit_name(name);
        let single = Plan {
            file: format!("{base}.service"),
            instances: vec![format!("{base}.service")],
            template: None,
        };
        let rp = format!("{}/replicas", pointer(&["services", name]));
        if service.replicas <= 1 {
            return single;
        }
        let n = service.replicas;
        match service.kind {
            ServiceKind::Web => match ports.get(name) {
                Some(list) if list.len() > 1 => Plan {
                    file: format!("{base}@.service"),
                    instances: list.iter().map(|p| format!("{base}@{p}.service")).collect(),
                    template: Some(TemplateKind::Port),
                },
                _ => {
                    let port = service.port.unwrap_or(0);
                    let why = if service.run.command_line("127.0.0.1", None)
                        == service.run.command_line("127.0.0.1", Some(port))
                    {
                        format!(
                            "{n} replicas of `{name}`: its command does not take the port from kiln, so instances cannot listen on ports of their own: one instance"
                        )
                    } else {
                        format!(
                            "{n} replicas of `{name}` need ports {port}–{} on the host, and some are taken: one instance on port {port}",
                            u32::from(port) + n - 1
                        )
                    };
                    self.unsupported(rp, why);
                    single
                }
            },
            ServiceKind::Worker => Plan {
                file: format!("{base}@.service"),
                instances: (1..=n).map(|i| format!("{base}@{i}.service")).collect(),
                template: Some(TemplateKind::Number),
            },
            ServiceKind::Beat => {
                self.unsupported(rp, format!("{n} replicas of beat `{name}`: a host runs exactly one scheduler (a second runs every periodic task twice)"));
                single
            }
            ServiceKind::Task => {
                self.unsupported(
                    rp,
                    format!("{n} replicas of task `{name}`: a one-off task runs once per host"),
                );
                single
            }
        }
    }

    fn unit(
        &mut self,
        name: &str,
        service: &Service,
        plan: &Plan,
        plans: &BTreeMap<&str, Plan>,
    ) -> Artifact {
        let model = self.model;
        let host = &model.host;
        let svp = pointer(&["services", name]);
        let mut w = Writer::new();
        w.line(format!("# {}", header_text(model)), &[]);
        match plan.template {
            Some(TemplateKind::Port) => w.line(
                format!(
                    "# Template: one instance per port, {} (all wanted by {}.target).",
                    plan.instances.join(" "),
                    unit_part(&model.project.name)
                ),
                &[&format!("{svp}/replicas")],
            ),
            Some(TemplateKind::Number) => w.line(
                format!(
                    "# Template: {} numbered instances, {} (all wanted by {}.target).",
                    plan.instances.len(),
                    plan.instances.join(" "),
                    unit_part(&model.project.name)
                ),
                &[&format!("{svp}/replicas")],
            ),
            None => {}
        }
        if service.replicas == 0 {
            w.line(
                format!(
                    "# replicas 0: not wanted by {}.target; start it by hand.",
                    unit_part(&model.project.name)
                ),
                &[&format!("{svp}/replicas")],
            );
        }

        // [Unit]
        w.blank();
        w.line("[Unit]", &[]);
        let (project, program) = (spec(&model.project.name), spec(&service.run.program));
        let instance = match plan.template {
            Some(TemplateKind::Port) => " on port %i",
            Some(TemplateKind::Number) => " instance %i",
            None => "",
        };
        let description = format!(
            "{project} {} ({program}){instance}, environment {}",
            spec(name),
            spec(&model.environment)
        );
        w.line(format!("Description={description}"), &[&svp]);
        let mut after = vec!["network-online.target".to_owned()];
        let mut deps_from = vec![format!("{svp}/uses")];
        for used in &service.uses {
            if let Some(pg) = model.postgres.get(used) {
                if is_local(&pg.host) {
                    after.push(crate::postgres::host_unit(model, used));
                }
                if pg.pooler.is_some() {
                    after.push("pgbouncer.service".into());
                }
                deps_from.push(pointer(&["postgres", used]));
            } else if let Some(r) = model.redis.get(used) {
                if is_local(&r.host) {
                    after.push(redis_unit(used));
                }
                deps_from.push(pointer(&["redis", used]));
            }
        }
        let mut seen = BTreeSet::new();
        after.retain(|u| seen.insert(u.clone()));
        let deps_from: Vec<&str> = deps_from.iter().map(String::as_str).collect();
        w.line(format!("After={}", after.join(" ")), &deps_from);
        w.line(format!("Wants={}", after.join(" ")), &deps_from);
        // Services it depends on: ordered after them; a task must have succeeded (its unit
        // is a oneshot that stays active), a healthy one must have started (systemd has no
        // health checks: the unit is up once its process runs).
        for (dep, d) in &service.depends_on {
            let Some(dep_plan) = plans.get(dep.as_str()) else {
                continue;
            };
            let units = dep_plan.instances.join(" ");
            let from = format!("{svp}/depends-on/{}", pointer_segment(dep));
            let (verb, why) = match d.condition {
                Condition::Completed => ("Requires", "it must have completed successfully"),
                Condition::Healthy => (
                    "Requires",
                    "it must be running (systemd cannot probe health)",
                ),
                Condition::Started => ("Wants", "it is started first"),
            };
            w.line(format!("# depends-on {}: {why}", spec(dep)), &[&from]);
            w.line(format!("After={units}"), &[&from]);
            w.line(format!("{verb}={units}"), &[&from]);
        }
        w.line(
            format!("PartOf={}.target", unit_part(&model.project.name)),
            &[],
        );
        // App files: kiln writes them under files/; the operator installs them, and the
        // unit refuses to start without them.
        for (path, f) in &service.files {
            let fp = crate::app_file_pointer(name, path);
            w.line(
                format!(
                    "# app file: install -D -m {} -g {} files{} {}",
                    f.mode,
                    spec(&model.host.group),
                    spec(path),
                    spec(path)
                ),
                &[&fp, &format!("{fp}/mode"), "/host/group"],
            );
            w.line(format!("AssertPathExists={}", path_word(path)), &[&fp]);
        }

        // [Service]
        w.blank();
        w.line("[Service]", &[]);
        let oneshot = service.kind == ServiceKind::Task;
        // `exec` (240+) reports a missing binary as a failed start; `simple` before it.
        let service_type = match (oneshot, model.versions.systemd >= 240) {
            (true, _) => "oneshot",
            (false, true) => "exec",
            (false, false) => "simple",
        };
        w.line(
            format!("Type={service_type}"),
            &[&format!("{svp}/run"), "/versions/systemd"],
        );
        // A task others wait for stays active once it succeeded, so that their `Requires=`
        // holds and a restart of one of them does not run it again.
        let awaited: Vec<String> = model
            .services
            .iter()
            .filter(|(_, s)| s.depends_on.contains_key(name))
            .map(|(k, _)| {
                format!(
                    "{}/depends-on/{}",
                    pointer(&["services", k]),
                    pointer_segment(name)
                )
            })
            .collect();
        if oneshot && !awaited.is_empty() {
            let from: Vec<&str> = awaited.iter().map(String::as_str).collect();
            w.line("RemainAfterExit=yes", &from);
        }
        w.line(format!("User={}", spec(&host.user)), &["/host/user"]);
        w.line(format!("Group={}", spec(&host.group)), &["/host/group"]);
        w.line(
            format!("WorkingDirectory={}", spec(&host.root)),
            &["/host/root"],
        );
        self.environment(&mut w, name, service);
        self.exec_start(&mut w, name, service, plan);
        let restart = match service.restart.as_str() {
            "always" | "unless-stopped" => "always",
            "on-failure" => "on-failure",
            "no" => "no",
            other => {
                self.unsupported(
                    format!("{svp}/restart"),
                    format!("restart policy `{other}` has no systemd equivalent: using on-failure"),
                );
                "on-failure"
            }
        };
        let restart = if oneshot && restart == "always" {
            self.unsupported(
                format!("{svp}/restart"),
                "a one-off task cannot restart `always` under systemd: using on-failure",
            );
            "on-failure"
        } else {
            restart
        };
        w.line(format!("Restart={restart}"), &[&format!("{svp}/restart")]);
        if restart != "no" {
            w.line("RestartSec=5", &[]);
        }
        if let Some(t) = service.stop_timeout {
            w.line(
                format!("TimeoutStopSec={t}"),
                &[&format!("{svp}/stop-timeout")],
            );
        }
        if service.run.stop_signal != "SIGTERM" {
            w.line(
                format!("KillSignal={}", service.run.stop_signal),
                &[&format!("{svp}/run")],
            );
        }
        if !oneshot {
            let why = match service.kind {
                ServiceKind::Worker if service.run.program == "celery-worker" => {
                    "# SIGTERM is Celery's warm shutdown: running tasks finish, then the stop timeout's SIGKILL hits what is left."
                }
                ServiceKind::Worker => {
                    "# The stop signal asks the worker to finish what it runs; the stop timeout's SIGKILL hits what is left."
                }
                ServiceKind::Beat => {
                    "# SIGTERM stops the scheduler; the main process alone gets it, SIGKILL reaches the rest after the stop timeout."
                }
                _ => {
                    "# SIGTERM asks for a graceful shutdown, sent to the main process only; SIGKILL reaches what is left after the stop timeout."
                }
            };
            w.line(why, &[]);
            w.line("KillSignal=SIGTERM", &[]);
            w.line("KillMode=mixed", &[]);
        }

        w.blank();
        w.line("# Resources", &[&format!("{svp}/resources")]);
        let r = &service.resources;
        if let Some(m) = r.memory {
            w.line(
                format!("MemoryMax={}", bytes(m)),
                &[&format!("{svp}/resources/memory")],
            );
        }
        if let Some(c) = r.cpu {
            w.line(
                format!("CPUQuota={}", cpu_quota(c)),
                &[&format!("{svp}/resources/cpu")],
            );
        }
        if let Some(p) = r.pids {
            w.line(format!("TasksMax={p}"), &[&format!("{svp}/resources/pids")]);
        }
        w.line(format!("LimitNOFILE={LIMIT_NOFILE}"), &[]);

        self.sandbox(&mut w, name, service);

        w.blank();
        w.line("[Install]", &[]);
        w.line(
            format!("WantedBy={}.target", unit_part(&model.project.name)),
            &[],
        );
        w.finish(format!("systemd/{}", plan.file))
    }

    fn environment(&mut self, w: &mut Writer, name: &str, service: &Service) {
        let model = self.model;
        let svp = pointer(&["services", name]);
        let secret_names: Vec<&str> = service
            .env
            .iter()
            .filter(|(_, v)| v.is_secret() && file_secret(model, v).is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        w.line(
            format!("# Secrets reach the process only through this file: root-owned, mode 0600, read by systemd before it drops privileges (template: {}.env.example).", unit_part(&model.project.name)),
            &["/host/env-file"],
        );
        if !secret_names.is_empty() {
            w.line(
                format!("# It holds {}.", secret_names.join(", ")),
                &[&format!("{svp}/env")],
            );
        }
        w.line(
            format!("EnvironmentFile={}", spec(&model.host.env_file)),
            &["/host/env-file"],
        );
        if !service.env.contains_key("PATH") {
            w.line(
                format!(
                    "Environment=\"PATH={}/bin:/usr/local/bin:/usr/bin:/bin\"",
                    c_escape(&spec(&model.host.venv))
                ),
                &["/host/venv"],
            );
        }
        for (key, value) in &service.env {
            let ep = format!("{svp}/env/{}", pointer_segment(key));
            if let Some(sec) = file_secret(model, value) {
                // A credential: systemd copies the root-owned file into the unit's private
                // credentials folder (%d), readable by the service's user alone.
                w.line(
                    format!("LoadCredential={sec}:{}", credential_path(model, sec)),
                    &[&ep, &format!("/secrets/{}/deliver", pointer_segment(sec))],
                );
                w.line(
                    format!("Environment=\"{}=%d/{sec}\"", secret_file_variable(key)),
                    &[&ep],
                );
                continue;
            }
            let Some(text) = value.render(&|h| model.host_address(h)) else {
                continue;
            };
            if !valid_env_name(key) {
                self.unsupported(
                    ep,
                    format!("`{key}` is not a variable name systemd accepts"),
                );
                continue;
            }
            w.line(
                format!("Environment=\"{key}={}\"", c_escape(&spec(&text))),
                &[&ep],
            );
        }
    }

    fn exec_start(&mut self, w: &mut Writer, name: &str, service: &Service, plan: &Plan) {
        let model = self.model;
        let svp = pointer(&["services", name]);
        let run = &service.run;
        let with_port = run.command_line("127.0.0.1", service.port);
        // Without a port the listening arguments say `${PORT}`: that is where `%i` goes.
        let without_port = run.command_line("127.0.0.1", None);
        let Some(exe) = with_port.first() else {
            self.unsupported(
                format!("{svp}/run"),
                format!("service `{name}` has nothing to run"),
            );
            return;
        };
        let exe_path = host_exe(model, exe);
        let mut words: Vec<(String, Vec<String>)> = vec![(
            exec_word(&exe_path),
            vec![format!("{svp}/run"), "/host/venv".into()],
        )];
        let extra: BTreeSet<&str> = match run.options.get("args") {
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => BTreeSet::new(),
        };
        for (i, a) in with_port.iter().enumerate().skip(1) {
            let port_arg = without_port.get(i).is_some_and(|b| b != a);
            let mut from = Vec::new();
            let word = if port_arg && plan.template == Some(TemplateKind::Port) {
                from.push(format!("{svp}/port"));
                from.push(format!("{svp}/replicas"));
                exec_word(&without_port[i]).replace("$${PORT}", "%i")
            } else {
                if port_arg {
                    from.push(format!("{svp}/port"));
                }
                exec_word(a)
            };
            if let Some(key) = option_of(a, &run.options) {
                from.push(format!("{svp}/run/options/{}", pointer_segment(&key)));
            } else if extra.contains(a.as_str()) {
                from.push(format!("{svp}/run/options/args"));
            }
            if from.is_empty() {
                from.push(format!("{svp}/run"));
            }
            words.push((word, from));
        }
        if plan.template == Some(TemplateKind::Number) && run.program == "celery-worker" {
            // Distinct node names, or the instances collide in Celery's remote control.
            words.push((
                format!("--hostname={}%i@%H", exec_word(name)),
                vec![format!("{svp}/replicas")],
            ));
        }
        // A flag and its value share a line (`-A config`, `--backlog 2048`).
        let mut lines: Vec<(String, Vec<String>)> = Vec::new();
        for (word, from) in words {
            let after_exe = lines.len() > 1;
            match lines.last_mut() {
                Some((prev, pfrom))
                    if after_exe
                        && prev.starts_with('-')
                        && !prev.contains('=')
                        && !prev.contains(' ')
                        && !word.starts_with('-') =>
                {
                    prev.push(' ');
                    prev.push_str(&word);
                    pfrom.extend(
                        from.into_iter()
                            .filter(|f| !pfrom.contains(f))
                            .collect::<Vec<_>>(),
                    );
                }
                _ => lines.push((word, from)),
            }
        }
        let last = lines.len() - 1;
        for (i, (word, from)) in lines.iter().enumerate() {
            let from: Vec<&str> = from.iter().map(String::as_str).collect();
            let text = if i == 0 {
                format!("ExecStart={word}")
            } else {
                format!("    {word}")
            };
            let cont = if i == last { "" } else { " \\" };
            w.line(format!("{text}{cont}"), &from);
        }
    }

    fn sandbox(&mut self, w: &mut Writer, name: &str, service: &Service) {
        let model = self.model;
        let host = &model.host;
        let svp = pointer(&["services", name]);
        let under_home = |p: &str| {
            ["/home", "/root", "/run/user"]
                .iter()
                .any(|h| p == *h || p.starts_with(&format!("{h}/")))
        };

        // Writable paths: logs, the host's writable folders, the service's volumes.
        let mut writable: Vec<(String, String)> = Vec::new();
        for p in &host.writable {
            writable.push((p.clone(), "/host/writable".into()));
        }
        for (vk, v) in &service.volumes {
            if !v.read_only {
                writable.push((
                    v.path.clone(),
                    format!("{svp}/volumes/{}", pointer_segment(vk)),
                ));
            }
        }
        let version = model.versions.systemd;
        // LogsDirectory= (235+) creates the folder, owned by the service user.
        let logs_dir = host
            .log_dir
            .strip_prefix("/var/log/")
            .filter(|d| !d.is_empty() && !d.contains("..") && version >= 235);
        if logs_dir.is_none() {
            writable.push((host.log_dir.clone(), "/host/log-dir".into()));
        }
        let mut seen = BTreeSet::new();
        writable.retain(|(p, _)| seen.insert(p.clone()));
        writable.sort();

        let home_read: Vec<&str> = {
            let mut v: Vec<&str> = Vec::new();
            let files = service.files.keys().map(String::as_str);
            for p in [host.root.as_str(), host.venv.as_str()]
                .into_iter()
                .chain(files)
            {
                if under_home(p) && !v.iter().any(|q| p == *q || p.starts_with(&format!("{q}/"))) {
                    v.push(p);
                }
            }
            v
        };
        // ProtectHome=tmpfs (242+) with bind mounts; before it, read-only homes.
        let home_tmpfs = version >= 242;
        let (home_rw, rw): (Vec<_>, Vec<_>) = writable
            .iter()
            .partition(|(p, _)| home_tmpfs && under_home(p));

        w.blank();
        w.line(
            "# Sandbox (systemd-analyze security). The network stays open: the app reaches its",
            &[],
        );
        w.line(
            "# databases and outside APIs, so PrivateNetwork= and IPAddressDeny= would break it.",
            &[],
        );
        w.line("NoNewPrivileges=yes", &[]);
        w.line("ProtectSystem=strict", &[]);
        if let Some(d) = logs_dir {
            w.line(
                format!("LogsDirectory={}", path_word(d)),
                &["/host/log-dir"],
            );
        }
        if !rw.is_empty() {
            let from: Vec<&str> = rw.iter().map(|(_, f)| f.as_str()).collect();
            w.line(
                format!(
                    "ReadWritePaths={}",
                    rw.iter()
                        .map(|(p, _)| path_word(p))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                &from,
            );
        }
        if home_read.is_empty() && !writable.iter().any(|(p, _)| under_home(p)) {
            w.line("ProtectHome=yes", &[]);
        } else if !home_tmpfs {
            w.line(
                "ProtectHome=read-only",
                &["/host/root", "/versions/systemd"],
            );
        } else {
            w.line(
                "# The app lives under /home: every home is hidden except its own folders.",
                &["/host/root"],
            );
            w.line("ProtectHome=tmpfs", &["/host/root"]);
            if !home_read.is_empty() {
                w.line(
                    format!(
                        "BindReadOnlyPaths={}",
                        home_read
                            .iter()
                            .map(|p| path_word(p))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    &["/host/root", "/host/venv"],
                );
            }
            if !home_rw.is_empty() {
                let from: Vec<&str> = home_rw.iter().map(|(_, f)| f.as_str()).collect();
                w.line(
                    format!(
                        "BindPaths={}",
                        home_rw
                            .iter()
                            .map(|(p, _)| path_word(p))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    &from,
                );
            }
        }
        let tp = format!("{svp}/tmpfs");
        w.line("PrivateTmp=yes", &[&tp]);
        for t in &service.tmpfs {
            if !matches!(
                t.as_str(),
                "/tmp" | "/var/tmp" | "/dev/shm" | "/run" | "/var/run"
            ) {
                self.unsupported(tp.clone(), format!("tmpfs `{t}` is a container folder: on the host only /tmp and /var/tmp are private (PrivateTmp=yes)"));
            }
        }
        // Directives newer than the host's systemd would only be "unknown key, ignoring".
        let since = |w: &mut Writer, min: u32, line: &str| {
            if version >= min {
                w.line(line, &["/versions/systemd"]);
            }
        };
        for line in ["PrivateDevices=yes", "DevicePolicy=closed"] {
            w.line(line, &[]);
        }
        let cp = format!("{svp}/cap-add");
        if service.cap_add.is_empty() {
            w.line("PrivateUsers=yes", &[]);
        } else {
            // Capabilities inside a private user namespace do not reach the host's network.
            w.line(
                "# PrivateUsers= stays off: the added capabilities must act on the host.",
                &[&cp],
            );
        }
        for (min, line) in [
            (248, "PrivateIPC=yes"),
            (239, "PrivateMounts=yes"),
            (232, "ProtectKernelTunables=yes"),
            (232, "ProtectKernelModules=yes"),
            (244, "ProtectKernelLogs=yes"),
            (232, "ProtectControlGroups=yes"),
            (245, "ProtectClock=yes"),
            (242, "ProtectHostname=yes"),
            (247, "ProtectProc=invisible"),
            (247, "ProcSubset=pid"),
            (211, "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"),
            (233, "RestrictNamespaces=yes"),
            (231, "RestrictRealtime=yes"),
            (242, "RestrictSUIDSGID=yes"),
            (235, "LockPersonality=yes"),
            (232, "RemoveIPC=yes"),
            (1, "UMask=0027"),
        ] {
            since(w, min, line);
        }
        let caps: Vec<String> = service
            .cap_add
            .iter()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if c.starts_with("CAP_") {
                    c
                } else {
                    format!("CAP_{c}")
                }
            })
            .filter(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
            .collect();
        w.line(format!("CapabilityBoundingSet={}", caps.join(" ")), &[&cp]);
        w.line(format!("AmbientCapabilities={}", caps.join(" ")), &[&cp]);
        w.line("SystemCallArchitectures=native", &[]);
        w.line("SystemCallFilter=@system-service", &[]);
        w.line("SystemCallFilter=~@privileged @resources", &[]);
        w.line(
            "# A refused system call fails with EPERM instead of killing the process.",
            &[],
        );
        w.line("SystemCallErrorNumber=EPERM", &[]);
        w.line(
            "# MemoryDenyWriteExecute= stays off: cffi callbacks and JIT compilers need writable",
            &[],
        );
        w.line(
            "# executable memory, and a Python app cannot tell in advance which of its wheels do.",
            &[],
        );
    }

    /// The app files of every service under `systemd/files/`, at their path on the host.
    /// The services share the host: two that want different text at one path cannot both
    /// have it.
    fn app_files(&mut self, artifacts: &mut Vec<Artifact>) {
        let model = self.model;
        let mut written: BTreeMap<&str, (&str, String)> = BTreeMap::new();
        for (name, service) in &model.services {
            for (path, f) in &service.files {
                let text = f.render(&|h| model.host_address(h));
                let fp = crate::app_file_pointer(name, path);
                match written.get(path.as_str()) {
                    Some((_, other)) if *other == text => {}
                    Some((first, _)) => self.unsupported.push(Unsupported {
                        target: Target::Systemd,
                        pointer: fp,
                        message: format!(
                            "`{name}` and `{first}` want different files at {path}, and on one host they are one file: `{first}`'s is written; give them different paths"
                        ),
                        security: false,
                    }),
                    None => {
                        artifacts.push(crate::app_file(
                            model,
                            format!("systemd/files{path}"),
                            f,
                            text.clone(),
                            &fp,
                        ));
                        written.insert(path, (name, text));
                    }
                }
            }
        }
    }

    fn target(&mut self, wanted: &[(String, String)]) -> Artifact {
        let model = self.model;
        let project = unit_part(&model.project.name);
        let mut w = Writer::new();
        w.line(format!("# {}", header_text(model)), &[]);
        w.line(format!("# `systemctl start {project}.target` starts every process; `systemctl enable {project}.target` at boot."), &[]);
        w.blank();
        w.line("[Unit]", &[]);
        w.line(
            format!(
                "Description={} (environment {}): every process",
                spec(&model.project.name),
                spec(&model.environment)
            ),
            &[],
        );
        for (unit, from) in wanted {
            w.line(
                format!("Wants={unit}"),
                &[&format!("{from}/replicas"), from],
            );
        }
        w.blank();
        w.line("[Install]", &[]);
        w.line("WantedBy=multi-user.target", &[]);
        w.finish(format!("systemd/{project}.target"))
    }

    fn env_example(&mut self) -> Artifact {
        let model = self.model;
        let project = unit_part(&model.project.name);
        let mut w = Writer::new();
        w.line(format!("# {}", header_text(model)), &[]);
        if model.host.process_manager == "supervisor" {
            w.line(format!("# The environment file of every {project} program: copy it to {} (owner root, group {}, mode 0640:", model.host.env_file, spec(&model.host.group)), &["/host/env-file", "/host/process-manager"]);
            w.line("# the programs' sh reads it as the app's user). Values are read by sh: quote them as sh does.", &["/host/process-manager"]);
        } else {
            w.line(format!("# The environment file of every {project} unit: copy it to {} (owned by root, mode 0600)", model.host.env_file), &["/host/env-file"]);
        }
        w.line(format!("# and fill in the secrets; `kiln secrets check --env {} --env-file FILE` judges them.", model.environment), &[]);
        w.line("# Values here override the units' Environment= lines.", &[]);

        // variable → (value kind, services)
        let mut secrets: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut credentials: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut wired: BTreeMap<&str, (String, Vec<&str>)> = BTreeMap::new();
        let mut plain: BTreeMap<&str, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
        for (svc, service) in &model.services {
            for (key, value) in &service.env {
                match value {
                    EnvValue::Secret(sec) if file_secret(model, value).is_some() => {
                        credentials.entry(sec).or_default().push(svc);
                    }
                    EnvValue::Secret(_) => secrets.entry(key).or_default().push(svc),
                    EnvValue::Wired(parts) if value.is_secret() => {
                        let shape: String = parts
                            .iter()
                            .map(|p| match p {
                                Part::Text(t) => t.clone(),
                                Part::Host(h) => model.host_address(h),
                                Part::Secret(s) => format!("<{s}>"),
                            })
                            .collect();
                        wired
                            .entry(key)
                            .or_insert_with(|| (shape, Vec::new()))
                            .1
                            .push(svc);
                    }
                    other => {
                        if let Some(text) = other.render(&|h| model.host_address(h)) {
                            plain
                                .entry(key)
                                .or_default()
                                .entry(text)
                                .or_default()
                                .push(svc);
                        }
                    }
                }
            }
        }
        let all = model.services.len();
        let used_by = |svcs: &[&str]| {
            if svcs.len() == all {
                String::new()
            } else {
                format!(", used by {}", svcs.join(", "))
            }
        };
        if !secrets.is_empty() {
            w.blank();
            w.line("# Secrets", &["/secrets"]);
            for (key, svcs) in &secrets {
                let sp = pointer(&["secrets", key]);
                let (kind, need) = match model.secrets.get(*key) {
                    Some(s) => (
                        s.kind.clone(),
                        if s.optional { "optional" } else { "required" },
                    ),
                    None => ("generic".to_owned(), "required"),
                };
                w.line(
                    format!("# kind: {kind} ({need}{})", used_by(svcs)),
                    &[&sp, &format!("{sp}/kind"), &format!("{sp}/optional")],
                );
                w.line(format!("{key}="), &[&sp]);
            }
        }
        if !credentials.is_empty() {
            w.blank();
            w.line("# Secrets delivered as files (deliver=file): not in this file. Write each value to its", &["/secrets"]);
            w.line("# credential, root-owned, mode 0600; systemd hands the unit a private copy (LoadCredential=):", &["/secrets"]);
            for (sec, svcs) in &credentials {
                let sp = pointer(&["secrets", sec]);
                let who = used_by(svcs);
                let who = who.trim_start_matches(", ");
                w.line(
                    format!(
                        "#   install -D -m 0600 -o root -g root /dev/stdin {}{}",
                        credential_path(model, sec),
                        if who.is_empty() {
                            String::new()
                        } else {
                            format!("   ({who})")
                        }
                    ),
                    &[&sp, &format!("{sp}/deliver")],
                );
            }
        }
        if !wired.is_empty() {
            w.blank();
            w.line("# Connection URLs wired by kiln from `uses`: they hold secrets, so they live here too.", &[]);
            for (key, (shape, svcs)) in &wired {
                let from: Vec<String> = svcs
                    .iter()
                    .map(|s| format!("{}/env/{}", pointer(&["services", s]), pointer_segment(key)))
                    .collect();
                let from: Vec<&str> = from.iter().map(String::as_str).collect();
                w.line(
                    format!(
                        "# {key}={shape}{}",
                        if svcs.len() == all {
                            String::new()
                        } else {
                            format!("  ({})", svcs.join(", "))
                        }
                    ),
                    &from,
                );
                w.line(format!("{key}="), &from);
            }
        }
        if !plain.is_empty() {
            w.blank();
            w.line(
                "# Not secret: set by Environment= in the units, shown for reference.",
                &["/env"],
            );
            for (key, values) in &plain {
                for (text, svcs) in values {
                    let from: Vec<String> = svcs
                        .iter()
                        .map(|s| {
                            format!("{}/env/{}", pointer(&["services", s]), pointer_segment(key))
                        })
                        .collect();
                    let from: Vec<&str> = from.iter().map(String::as_str).collect();
                    let text = text.replace('\n', "\\n");
                    let note = if svcs.len() == all {
                        String::new()
                    } else {
                        format!("  ({})", svcs.join(", "))
                    };
                    w.line(format!("# {key}={text}{note}"), &from);
                }
            }
        }
        w.finish(format!("systemd/{project}.env.example"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_words_escape_specifiers_variables_and_quotes() {
        assert_eq!(exec_word("--workers=4"), "--workers=4");
        assert_eq!(exec_word("%(h)s"), "%%(h)s");
        assert_eq!(exec_word("$HOME"), "$$HOME");
        assert_eq!(exec_word("a b"), "\"a b\"");
        assert_eq!(exec_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(exec_word("C:\\tmp"), "\"C:\\\\tmp\"");
        assert_eq!(exec_word(";"), "\";\"");
        assert_eq!(exec_word(""), "\"\"");
        assert_eq!(exec_word("it's"), "\"it's\"");
    }

    #[test]
    fn environment_values_are_c_escaped() {
        assert_eq!(
            c_escape(&spec("50% \"off\" C:\\t")),
            "50%% \\\"off\\\" C:\\\\t"
        );
        assert_eq!(c_escape("a\nb\u{1}"), "a\\nb\\x01");
    }

    #[test]
    fn sizes_and_quotas() {
        assert_eq!(bytes(4 << 30), "4G");
        assert_eq!(bytes(512 << 20), "512M");
        assert_eq!(bytes(512_000_000), "500000K");
        assert_eq!(bytes(1000), "1000");
        assert_eq!(cpu_quota(2000), "200%");
        assert_eq!(cpu_quota(250), "25%");
        assert_eq!(cpu_quota(125), "12.5%");
    }

    #[test]
    fn flags_map_to_their_options() {
        let options: BTreeMap<String, serde_json::Value> = ["log-level", "keep-alive", "workers"]
            .iter()
            .map(|k| (k.to_string(), serde_json::Value::Null))
            .collect();
        assert_eq!(
            option_of("--loglevel=info", &options).as_deref(),
            Some("log-level")
        );
        assert_eq!(
            option_of("--timeout-keep-alive=5", &options).as_deref(),
            Some("keep-alive")
        );
        assert_eq!(
            option_of("--workers=4", &options).as_deref(),
            Some("workers")
        );
        assert_eq!(option_of("--bind=127.0.0.1:8000", &options), None);
        assert_eq!(option_of("config", &options), None);
    }
}
