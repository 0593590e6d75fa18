//! The `compose` target: `compose/compose.yaml`, `compose/.env.example`, and the
//! container flavour of the nginx and pgbouncer files under `compose/nginx/` and
//! `compose/pgbouncer/` (rendered by those emitters, mounted read-only here).
//!
//! Shape of `compose.yaml`: one service per app service, then each PostgreSQL (and
//! its pgbouncer), each Redis, and `nginx` when the environment has sites.
//! Invariants, by construction:
//! - Only nginx publishes ports (its HTTP and HTTPS ports); no datastore ever does
//!   (POLICIES #42). Data services sit on the `data` network, which is `internal`.
//! - No secret value: every secret is a reference into `compose/.env`, the one place
//!   the operator writes it: `${NAME:?…}` when required (compose refuses to start
//!   without it), `NAME: null` when optional (passed through only when set), and a
//!   value embedding one (DATABASE_URL) interpolates it. Each service lists exactly
//!   its own variables, so a secret scoped to one service reaches no other (an
//!   `env_file: .env` would hand every service every secret).
//! - Every service: `no-new-privileges`, `cap_drop: [ALL]`, a memory and CPU limit,
//!   a pids limit, a read-only root where the process allows it. App services run as
//!   the model's `uid:gid`; PostgreSQL and Redis as their images' own non-root users,
//!   so no capability is added back; only nginx (master as root) gets a minimal set.
//! - A literal `$` is written `$$` (compose interpolates every string).

pub(crate) mod containers;

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::Artifact;
use kiln_core::model::{
    Condition, EnvValue, Model, Part, Resources, SECRET_FILES_DIR, Service, ServiceKind, Target,
    pointer, pointer_segment, secret_file_variable,
};

use crate::yaml::{self, Node};
use crate::{Output, Unsupported, Writer, header_text};
use containers::*;

pub fn emit(model: &Model) -> Output {
    let mut cx = Cx {
        model,
        unsupported: Vec::new(),
        env_doc: Vec::new(),
        images: Vec::new(),
        file_secrets: BTreeSet::new(),
    };
    let mut artifacts = Vec::new();
    // The container flavour of the nginx and pgbouncer files, from their emitters; what
    // they cannot express is reported here too (this deployment runs them).
    let nginx_out = nginx_files(model);
    let pgbouncer_out = pgbouncer_files(model);
    for u in nginx_out
        .unsupported
        .iter()
        .chain(&pgbouncer_out.unsupported)
    {
        cx.unsupported(
            u.pointer.clone(),
            format!("{} (in compose): {}", u.target.as_str(), u.message),
        );
    }
    let (nginx_files, pgbouncer_files) = (nginx_out.artifacts, pgbouncer_out.artifacts);

    let mut services = Node::map();
    let mut volumes = Node::map();
    let mut networks: BTreeSet<&str> = BTreeSet::new();
    for (name, s) in &model.services {
        services.set(
            name.clone(),
            cx.app_service(name, s, &mut volumes, &mut networks),
        );
        if s.balancer.is_some() {
            match crate::haproxy::config(model, name) {
                Some(cfg) => {
                    services.set(crate::haproxy::lb_name(name), cx.balancer(name, &cfg.path));
                    artifacts.push(cfg);
                    networks.insert("front");
                }
                None => cx.unsupported(
                    sp(name, "balancer"),
                    format!("service `{name}` has no port: there is nothing to balance"),
                ),
            }
        }
    }
    for name in model.postgres.keys() {
        let script = crate::postgres::init_script(model, name, crate::postgres::Flavor::Container);
        artifacts.push(script.finish(format!(
            "compose/postgres/{}",
            crate::postgres::init_file(name)
        )));
        let (db, pooler) = cx.postgres(name, &pgbouncer_files, &mut volumes);
        services.set(name.clone(), db);
        for (rname, replica) in cx.postgres_replicas(name, &mut volumes) {
            services.set(rname, replica);
        }
        if let Some(backup) = cx.postgres_backup(name, &mut volumes) {
            services.set(crate::postgres::backup_name(name), backup);
        }
        if let Some((pname, p)) = pooler {
            services.set(pname, p);
        }
        networks.insert("data");
    }
    for name in model.redis.keys() {
        for (host, n) in cx.redis_group(name, &mut volumes) {
            services.set(host, n);
        }
        networks.insert("data");
    }
    let statics = image_statics(model);
    for st in &statics {
        services.set(st.copier.clone(), cx.static_copier(st));
        volumes.set(
            st.volume.clone(),
            Node::map().from_all(&st.from).comment(format!(
                "{}'s static files, copied from its image by {} at every start",
                st.service, st.copier
            )),
        );
    }
    if !model.sites.is_empty() {
        let name = proxy_name(model);
        services.set(name, cx.nginx(&nginx_files, &statics));
        networks.insert("front");
    }
    if model.fail2ban.is_some() && !model.targets.contains(&Target::Systemd) {
        cx.unsupported(
            "/fail2ban".into(),
            "fail2ban runs on the host, not in compose: add the systemd target, which writes its jails",
        );
    }
    if let Some(fw) = &model.firewall {
        let published: Vec<String> = published_ports(model)
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        let allowed: Vec<&str> = fw.allow.values().map(|r| r.port.as_str()).collect();
        let missing: Vec<&String> = published
            .iter()
            .filter(|p| !allowed.contains(&p.as_str()))
            .collect();
        let mut msg = "compose cannot express host firewall rules: apply them on the host (the systemd target's host, ufw). \
                       Docker's published ports bypass ufw's INPUT rules"
            .to_owned();
        if missing.is_empty() {
            msg.push_str(&format!(
                "; nginx publishes {} here, which the firewall allows",
                published.join(" and ")
            ));
        } else {
            msg.push_str(&format!(
                "; nginx publishes {} here, which the firewall does not allow",
                published.join(" and ")
            ));
        }
        cx.unsupported("/firewall".into(), msg);
    }

    let mut root = Node::map()
        .with(
            "name",
            Node::str(&model.compose.project_name).from(&["/compose/project-name"]),
        )
        .with("services", services);
    let mut nets = Node::map();
    for n in &networks {
        let node = match *n {
            "data" => Node::map()
                .with("internal", Node::bool(true))
                .comment("data: PostgreSQL, pgbouncer, Redis and the app services that use them; internal (no route out, nothing published)"),
            "front" => Node::map().comment("front: nginx and the web services it proxies to (and their way out)"),
            _ => Node::map().comment("egress: app services that serve nothing but call out (SMTP, APIs)"),
        };
        nets.set(*n, node);
    }
    if !nets.is_empty() {
        root.set("networks", nets);
    }
    if !volumes.is_empty() {
        root.set("volumes", volumes);
    }
    if !cx.file_secrets.is_empty() {
        let mut secrets = Node::map();
        for name in &cx.file_secrets {
            let sp = format!("/secrets/{}", pointer_segment(name));
            secrets.set(
                name.clone(),
                Node::map()
                    .with("environment", Node::str(name))
                    .from(&[&sp, &format!("{sp}/deliver")]),
            );
        }
        root.set(
            "secrets",
            secrets.comment("deliver=file: each value is read from compose/.env and written to /run/secrets/NAME in the containers that get it, never into their environment"),
        );
    }

    let header = vec![
        header_text(model),
        "Secrets: fill in compose/.env (see .env.example); this file holds none.".to_owned(),
        "Run from this folder: docker compose up -d".to_owned(),
    ];
    artifacts.push(yaml::document("compose/compose.yaml", &header, &root));
    artifacts.push(cx.env_example());
    for (name, s) in &model.services {
        for (path, file) in &s.files {
            let text = file.render(&|h| model.container_host(h));
            artifacts.push(crate::app_file(
                model,
                format!("compose/files/{name}{path}"),
                file,
                text,
                &crate::app_file_pointer(name, path),
            ));
        }
    }

    for (dir, files) in [("nginx", nginx_files), ("pgbouncer", pgbouncer_files)] {
        for mut a in files {
            if !contained(&a.path) {
                cx.unsupported(
                    String::new(),
                    format!(
                        "the {dir} emitter returned `{}`, a path outside its folder: skipped",
                        a.path
                    ),
                );
                continue;
            }
            a.path = format!("compose/{dir}/{}", a.path);
            artifacts.push(a);
        }
    }
    Output {
        artifacts,
        unsupported: cx.unsupported,
        ..Default::default()
    }
}

/// A static folder that lives in an app service's image (`static … from=SERVICE`): a
/// one-shot service of that image copies it into a volume, which nginx mounts read-only at
/// the same path once the copy has succeeded. It runs at every `up`, so the volume holds
/// exactly the running image's files.
struct ImageStatic {
    service: String,
    /// The folder inside the image, which is also where nginx serves it from.
    root: String,
    volume: String,
    copier: String,
    /// The locations that serve it.
    from: Vec<String>,
}

fn image_statics(model: &Model) -> Vec<ImageStatic> {
    let mut out: Vec<ImageStatic> = Vec::new();
    let taken = |name: &str| {
        model.services.contains_key(name)
            || model.postgres.contains_key(name)
            || model.redis.contains_key(name)
            || model
                .postgres
                .values()
                .any(|p| p.pooler.as_ref().is_some_and(|p| p.name == name))
    };
    for (key, site) in &model.sites {
        for (path, loc) in &site.locations {
            let (Some(service), Some(root)) = (&loc.from, &loc.root) else {
                continue;
            };
            let lp = format!(
                "{}/locations/{}",
                pointer(&["sites", key]),
                pointer_segment(path)
            );
            let root = crate::trim_slash(root);
            if let Some(st) = out
                .iter_mut()
                .find(|s| s.service == *service && s.root == root)
            {
                st.from.push(lp);
                continue;
            }
            let n = out.iter().filter(|s| s.service == *service).count();
            let mut volume = format!("{service}-static");
            if n > 0 {
                volume = format!("{volume}-{}", n + 1);
            }
            let mut copier = volume.clone();
            while taken(&copier) || out.iter().any(|s| s.copier == copier) {
                copier.push_str("-copy");
            }
            out.push(ImageStatic {
                service: service.clone(),
                root,
                volume,
                copier,
                from: vec![lp],
            });
        }
    }
    out
}

/// The copier's limits: one copy of a folder.
const COPIER_CPUS: &str = "0.5";
const COPIER_MEMORY: &str = "256M";
const COPIER_PIDS: i64 = 16;

/// Where the copier mounts the volume it fills.
const STATIC_OUT: &str = "/kiln-static";

/// Empties the volume, then copies the image's folder into it (Python, which an image
/// running a Python program surely has). Symbolic links are left out: nginx would resolve
/// them in its own container, where an absolute one reaches its certificates.
const COPY_PY: &str = "import os, shutil, sys; src, dst = sys.argv[1:3]; \
[shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p) \
for p in (os.path.join(dst, n) for n in os.listdir(dst))]; \
shutil.copytree(src, dst, dirs_exist_ok=True, \
ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])";

/// The same with the POSIX shell and coreutils, for other images.
const COPY_SH: &str =
    "find \"$1\" -mindepth 1 -delete && cp -R \"$0\"/. \"$1\"/ && find \"$1\" -type l -delete";

/// The command that copies folder `src` of `s`'s image into the empty folder `dst`,
/// without symbolic links (compose and Kubernetes run it alike).
pub(crate) fn copy_command(s: &Service, src: &str, dst: &str) -> Vec<String> {
    let (exe, script) = if s.run.runtime.as_deref() == Some("python") {
        ("python", COPY_PY)
    } else {
        ("sh", COPY_SH)
    };
    [exe, "-c", script, src, dst].map(str::to_owned).to_vec()
}

/// The nginx service's name: `nginx`, unless an app service took it.
fn proxy_name(model: &Model) -> String {
    let taken = model.services.contains_key("nginx")
        || model.postgres.contains_key("nginx")
        || model.redis.contains_key("nginx")
        || model
            .postgres
            .values()
            .any(|p| p.pooler.as_ref().is_some_and(|p| p.name == "nginx"));
    if taken {
        "nginx-proxy".to_owned()
    } else {
        "nginx".to_owned()
    }
}

/// Ports nginx listens on (HTTP always, HTTPS when a site has TLS).
fn published_ports(model: &Model) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    for site in model.sites.values() {
        ports.insert(site.listen.http);
        if site.tls.mode != "off" {
            ports.insert(site.listen.https);
        }
    }
    ports.into_iter().collect()
}

struct Cx<'a> {
    model: &'a Model,
    unsupported: Vec<Unsupported>,
    /// (services, variable, documented value, pointers) for `.env.example`.
    env_doc: Vec<(String, String, String, Vec<String>)>,
    /// Variables that name an app service's image when the spec gives none.
    images: Vec<(String, String)>,
    /// Secrets delivered as files (`deliver=file`): compose reads each from its variable in
    /// compose/.env (`environment:` source) and writes it into the containers that get it.
    file_secrets: BTreeSet<String>,
}

/// Escapes `$` for compose interpolation.
fn dollar(s: &str) -> String {
    s.replace('$', "$$")
}

/// Seconds as a compose duration.
fn secs(n: u64) -> String {
    format!("{n}s")
}

/// Millicores as compose `cpus` (`"0.25"`, `"2"`).
fn cpus(m: u64) -> String {
    let whole = m / 1000;
    let frac = m % 1000;
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// Bytes as a compose size (`"4G"`, `"512M"`; compose units are powers of 1024).
fn size(bytes: u64) -> String {
    for (unit, sz) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes >= sz && bytes.is_multiple_of(sz) {
            return format!("{}{unit}", bytes / sz);
        }
    }
    format!("{bytes}b")
}

/// The message of a required interpolation.
fn required(var: &str) -> String {
    format!("${{{var}:?set {var} in compose/.env}}")
}

impl Cx<'_> {
    fn unsupported(&mut self, pointer: String, message: impl Into<String>) {
        self.unsupported.push(Unsupported {
            target: Target::Compose,
            pointer,
            message: message.into(),
            security: false,
        });
    }

    /// An environment value: plain text, with data service hosts by container name and
    /// embedded secrets as required interpolations.
    /// A service's grant of a file-delivered secret, at /run/secrets/NAME. Compose ignores
    /// `uid`/`gid`/`mode` outside Swarm (and says so), so none are written: the file is
    /// root-owned and readable inside the container, which runs one user.
    fn secret_file(&mut self, secret: &str, from: &str) -> Node {
        self.file_secrets.insert(secret.to_owned());
        Node::map()
            .with("source", Node::str(secret))
            .with("target", Node::str(format!("{SECRET_FILES_DIR}/{secret}")))
            .from(&[from])
    }

    fn env_value(&self, v: &EnvValue) -> String {
        let host = |h: &str| self.model.container_host(h);
        match v {
            EnvValue::Secret(s) => required(s),
            EnvValue::Wired(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => dollar(t),
                    Part::Host(h) => host(h),
                    Part::Secret(s) => required(s),
                })
                .collect(),
            other => dollar(&other.render(&host).unwrap_or_default()),
        }
    }

    fn app_service(
        &mut self,
        name: &str,
        s: &Service,
        volumes: &mut Node,
        networks: &mut BTreeSet<&'static str>,
    ) -> Node {
        let model = self.model;
        let p = |f: &str| sp(name, f);
        let mut n = Node::map();

        match &s.image {
            Some(img) => n.set("image", Node::str(dollar(img)).from(&[&p("image")])),
            None => {
                let var = format!("{}_IMAGE", name.to_ascii_uppercase().replace('-', "_"));
                n.set(
                    "image",
                    Node::str(required(&var))
                        .from(&[&p("image")])
                        .comment("the spec names no image: set it in compose/.env"),
                );
                self.images.push((var, p("image")));
            }
        }
        if !s.run.argv.is_empty() {
            n.set(
                "command",
                Node::strs(s.run.argv.iter().map(|a| dollar(a))).from(&[&p("run")]),
            );
        }
        n.set("user", Node::str(&s.user).from(&[&p("user")]));
        n.set("restart", Node::str(&s.restart).from(&[&p("restart")]));

        // Environment: every variable of this service, and no other. A secret is a
        // reference into compose/.env: `${NAME:?…}` when required, `NAME: null` (passed
        // through only when set there) when optional.
        let mut env = Node::map();
        let mut has_secrets = false;
        let mut file_secrets = Node::seq();
        for (var, v) in &s.env {
            let ep = env_pointer(name, var);
            has_secrets |= v.is_secret();
            if let EnvValue::Secret(sec) = v
                && model.secrets.get(sec).is_some_and(|x| x.as_file)
            {
                env.set(
                    secret_file_variable(var),
                    Node::str(format!("{SECRET_FILES_DIR}/{sec}")).from(&[&ep]),
                );
                file_secrets.push(self.secret_file(sec, &ep));
                continue;
            }
            let node = match v {
                EnvValue::Secret(sec) if model.secrets.get(sec).is_some_and(|x| x.optional) => {
                    if sec == var {
                        Node::null()
                    } else {
                        Node::str(format!("${{{sec}:-}}"))
                    }
                }
                EnvValue::Secret(_) => Node::str(self.env_value(v)),
                _ => {
                    let host = |h: &str| model.container_host(h);
                    self.env_doc.push((
                        name.to_owned(),
                        var.clone(),
                        v.template(&host),
                        vec![ep.clone()],
                    ));
                    Node::str(self.env_value(v))
                }
            };
            env.set(var.clone(), node.from(&[&ep]));
        }
        if has_secrets {
            env = env.comment("secrets come from compose/.env: ${NAME:?…} must be set there; NAME: null is optional (unset when missing)");
        }
        if !env.is_empty() {
            n.set("environment", env);
        }
        if !file_secrets.is_empty() {
            n.set("secrets", file_secrets);
        }

        // Start after the data services it uses are healthy.
        let mut deps = Node::map();
        for used in &s.uses {
            if let Some(d) = dependency(model, used) {
                deps.set(
                    d.service,
                    Node::map()
                        .with("condition", Node::str("service_healthy"))
                        .from(&[&p("uses"), &d.pointer]),
                );
            }
        }
        // And after the services it depends on (a migration task completed …).
        for (dep, d) in &s.depends_on {
            let condition = match d.condition {
                Condition::Started => "service_started",
                Condition::Healthy => "service_healthy",
                Condition::Completed => "service_completed_successfully",
            };
            deps.set(
                dep.clone(),
                Node::map()
                    .with("condition", Node::str(condition))
                    .from(&[&format!("{}/{}", p("depends-on"), pointer_segment(dep))]),
            );
        }
        if !deps.is_empty() {
            n.set("depends_on", deps);
        }

        if let Some(hc) = self.app_healthcheck(name, s) {
            n.set("healthcheck", hc);
        }

        let mut nets = Vec::new();
        if s.kind == ServiceKind::Web {
            nets.push("front");
        } else {
            nets.push("egress");
        }
        if s.uses.iter().any(|u| dependency(model, u).is_some()) {
            nets.push("data");
        }
        nets.sort();
        for net in &nets {
            networks.insert(net);
        }
        n.set("networks", Node::strs(nets.iter().copied()));

        let mut list = Node::seq();
        if !s.volumes.is_empty() {
            for (vol, v) in &s.volumes {
                let vp = format!(
                    "{}/volumes/{}",
                    pointer(&["services", name]),
                    kiln_core::model::pointer_segment(vol)
                );
                let data_volume = model
                    .postgres
                    .keys()
                    .chain(model.redis.keys())
                    .any(|d| format!("{d}-data") == *vol);
                if data_volume {
                    self.unsupported(vp, format!("volume `{vol}` is the name of a datastore's data volume: not mounted, so `{name}` cannot touch that data; rename it"));
                    continue;
                }
                let ro = if v.read_only { ":ro" } else { "" };
                list.push(Node::str(format!("{vol}:{}{ro}", dollar(&v.path))).from(&[&vp]));
                volumes.set(vol.clone(), Node::map().from(&[&vp]));
            }
        }
        // App files: written under files/<service>/, bind-mounted read-only at their path.
        for path in s.files.keys() {
            let local = format!("./files/{name}{path}");
            list.push(
                Node::str(format!("{}:{}:ro", dollar(&local), dollar(path)))
                    .from(&[&crate::app_file_pointer(name, path)]),
            );
        }
        if !list.is_empty() {
            n.set("volumes", list);
        }
        self.hardening(&mut n, name, s);
        n.from(&[&pointer(&["services", name])])
    }

    fn app_healthcheck(&mut self, name: &str, s: &Service) -> Option<Node> {
        let p = |f: &str| sp(name, f);
        match s.kind {
            ServiceKind::Web => {
                let port = s.port?;
                let (path, interval, timeout, retries, start) = match &s.health {
                    Some(h) => (
                        Some(h.path.as_str()),
                        h.interval,
                        h.timeout,
                        h.retries,
                        h.start_period,
                    ),
                    None => (None, 30, 5, 3, 20),
                };
                let host = public_host(self.model, name);
                let test = match (is_python(s), path) {
                    (true, Some(path)) => Node::strs([
                        "CMD".to_owned(),
                        "python".into(),
                        "-c".into(),
                        dollar(&python_health(port, path, host, timeout)),
                    ]),
                    (true, None) => Node::strs([
                        "CMD".to_owned(),
                        "python".into(),
                        "-c".into(),
                        python_tcp(port, timeout),
                    ]),
                    (false, Some(path)) => Node::strs([
                        "CMD-SHELL".to_owned(),
                        dollar(&shell_health(port, path, host)),
                    ]),
                    (false, None) => {
                        // No Python to probe with, and no path to ask: nothing kiln can be
                        // sure the image has (nc, wget, curl) is assumed.
                        return Some(disabled_healthcheck(
                            &p("health"),
                            "no probe kiln can be sure the image runs: set `health \"/path\"`, or a program with `runtime python`",
                        ));
                    }
                };
                let hp = p("health");
                Some(
                    Node::map()
                        .with("test", test.from(&[&format!("{hp}/path"), &p("port")]))
                        .with(
                            "interval",
                            Node::str(secs(interval)).from(&[&format!("{hp}/interval")]),
                        )
                        .with(
                            "timeout",
                            Node::str(secs(timeout)).from(&[&format!("{hp}/timeout")]),
                        )
                        .with(
                            "retries",
                            Node::int(retries).from(&[&format!("{hp}/retries")]),
                        )
                        .with(
                            "start_period",
                            Node::str(secs(start)).from(&[&format!("{hp}/start-period")]),
                        )
                        .from(&[&hp]),
                )
            }
            ServiceKind::Worker => match worker_probe(s, "$$") {
                Some(ping) => Some(
                    Node::map()
                        .with("test", Node::strs(["CMD-SHELL".to_owned(), ping]))
                        .with("interval", Node::str("60s"))
                        .with("timeout", Node::str("20s"))
                        .with("retries", Node::int(3))
                        .with("start_period", Node::str("30s"))
                        .from(&[&p("run")])
                        .comment(match s.run.program.as_str() {
                            "celery-worker" => "a worker answers a broker ping addressed to itself",
                            _ => "the program's own liveness check (its `probe` in the catalog)",
                        }),
                ),
                None => Some(disabled_healthcheck(
                    &p("run"),
                    "this worker has no ping command kiln knows",
                )),
            },
            ServiceKind::Beat => Some(disabled_healthcheck(
                &p("run"),
                match s.run.program.as_str() {
                    "celery-beat" => {
                        "celery beat answers no ping; disabled so it does not inherit the image's HEALTHCHECK (often the web's)"
                    }
                    _ => {
                        "a scheduler answers no ping; disabled so it does not inherit the image's HEALTHCHECK (often the web's)"
                    }
                },
            )),
            ServiceKind::Task => Some(disabled_healthcheck(
                &p("run"),
                "a one-off task: nothing to probe",
            )),
        }
    }

    /// `security_opt`, caps, read-only root, tmpfs, pids, stop grace period and `deploy`.
    fn hardening(&mut self, n: &mut Node, name: &str, s: &Service) {
        let p = |f: &str| sp(name, f);
        if s.read_only {
            n.set("read_only", Node::bool(true).from(&[&p("read-only")]));
        }
        if !s.tmpfs.is_empty() {
            n.set(
                "tmpfs",
                Node::strs(s.tmpfs.iter().map(|t| dollar(t))).from(&[&p("tmpfs")]),
            );
        }
        n.set("security_opt", Node::strs(["no-new-privileges:true"]));
        n.set("cap_drop", Node::strs(["ALL"]));
        if !s.cap_add.is_empty() {
            n.set(
                "cap_add",
                Node::strs(s.cap_add.iter().cloned()).from(&[&p("cap-add")]),
            );
        }
        if let Some(t) = s.stop_timeout {
            n.set(
                "stop_grace_period",
                Node::str(secs(t)).from(&[&p("stop-timeout")]),
            );
        }
        if s.run.stop_signal != "SIGTERM" {
            n.set(
                "stop_signal",
                Node::str(&s.run.stop_signal).from(&[&p("run")]),
            );
        }
        let mut replicas = s.replicas;
        if s.kind == ServiceKind::Beat && replicas != 1 {
            self.unsupported(p("replicas"), format!("celery beat must run exactly once per schedule: {replicas} replicas emitted as 1"));
            replicas = 1;
        }
        let mut deploy = Node::map().with("replicas", Node::int(replicas).from(&[&p("replicas")]));
        let pids = s
            .resources
            .pids
            .map(|v| Node::int(v).from(&[&p("resources/pids")]));
        if let Some(res) = resources(
            &pointer(&["services", name, "resources"]),
            &s.resources,
            pids,
        ) {
            deploy.set("resources", res);
        }
        n.set("deploy", deploy);
    }

    fn postgres(
        &mut self,
        name: &str,
        pgbouncer_files: &[Artifact],
        volumes: &mut Node,
    ) -> (Node, Option<(String, Node)>) {
        let model = self.model;
        let pg = &model.postgres[name];
        let pp = |f: &str| format!("{}/{f}", pointer(&["postgres", name]));
        let base = pointer(&["postgres", name]);
        for key in file_settings(pg) {
            self.unsupported(
                pp(&format!("settings/{key}")),
                format!("`{key}` names a file inside the PostgreSQL container, which compose does not provide: mount it (or build an image with it)"),
            );
        }
        let mut n = Node::map().with("image", Node::str(dollar(&pg.image)).from(&[&pp("image")]));
        let mut args = postgres_args(name, pg);
        // The key, copied from the secret's file (world-readable in compose) to a file only
        // the server's user reads: PostgreSQL refuses any other.
        const KEY_COPY: &str = "/var/run/postgresql/server.key";
        args.extend(crate::postgres::tls_args(name, pg, KEY_COPY));
        if let Some(t) = &pg.tls {
            n.set(
                "entrypoint",
                Node::strs([
                    "sh".to_owned(),
                    "-c".into(),
                    format!("install -m 0600 {SECRET_FILES_DIR}/{} {KEY_COPY} && exec docker-entrypoint.sh \"$$@\"", t.key),
                    "sh".into(),
                ])
                .from(&[&pp("tls/key")])
                .comment("PostgreSQL reads its key only from a file no one else can read: a private copy, then the image's entrypoint"),
            );
        }
        if !args.is_empty() {
            let mut cmd = Node::seq().item(Node::str("postgres"));
            for (arg, ptr) in &args {
                cmd.push(Node::str("-c").from(&[ptr]));
                cmd.push(Node::str(dollar(arg)).from(&[ptr]));
            }
            n.set("command", cmd);
        }
        n.set(
            "user",
            Node::str(format!("{POSTGRES_UID}:{POSTGRES_UID}")).comment(
                "the image's own postgres user: runs non-root from the start, no capability needed",
            ),
        );
        n.set("restart", Node::str("always"));
        let mut env = Node::map()
            .with(
                "POSTGRES_DB",
                Node::str(dollar(&pg.database)).from(&[&pp("database")]),
            )
            .with(
                "POSTGRES_USER",
                Node::str("postgres").comment(format!(
                    "the superuser, for administration over the socket only: the app logs in as `{}`, made by postgres/{}",
                    pg.user,
                    crate::postgres::init_file(name)
                )),
            );
        let mut pg_secrets = Node::seq();
        if let Some(t) = &pg.tls {
            let mut files = vec![(&t.cert, "cert"), (&t.key, "key")];
            if let Some(ca) = &t.ca {
                files.push((ca, "ca"));
            }
            for (secret, field) in files {
                let grant = self.secret_file(secret, &pp(&format!("tls/{field}")));
                pg_secrets.push(grant);
            }
        }
        match &pg.password {
            Some(pw) if model.secrets.get(pw).is_some_and(|x| x.as_file) => {
                env.set(
                    "POSTGRES_PASSWORD_FILE",
                    Node::str(format!("{SECRET_FILES_DIR}/{pw}")).from(&[&pp("password")]),
                );
                let grant = self.secret_file(pw, &pp("password"));
                pg_secrets.push(grant);
            }
            Some(pw) => env.set("POSTGRES_PASSWORD", Node::str(required(pw)).from(&[&pp("password")])),
            None => self.unsupported(
                base.clone(),
                format!("postgres `{name}` has no password: the official image refuses to start without POSTGRES_PASSWORD; add `password DB_PASSWORD`"),
            ),
        }
        if let Some(serde_json::Value::String(m)) = pg.settings.get("password_encryption")
            && matches!(m.as_str(), "scram-sha-256" | "md5")
        {
            env.set(
                "POSTGRES_HOST_AUTH_METHOD",
                Node::str(m).from(&[&pp("settings/password_encryption")]),
            );
        }
        if let (true, Some(rpw)) = (pg.replicas > 0, &pg.replication_password) {
            env.set(
                "KILN_REPLICATION_PASSWORD",
                Node::str(required(rpw))
                    .from(&[&pp("replication-password")])
                    .comment("the replicas' role, made by the init script"),
            );
        }
        self.doc_env(name, &env);
        n.set("environment", env);
        if !pg_secrets.is_empty() {
            n.set("secrets", pg_secrets);
        }
        n.set(
            "healthcheck",
            Node::map()
                .with(
                    "test",
                    Node::strs([
                        "CMD".to_owned(),
                        "pg_isready".into(),
                        "-h".into(),
                        "127.0.0.1".into(),
                        "-p".into(),
                        pg.port.to_string(),
                        "-U".into(),
                        dollar(&pg.user),
                        "-d".into(),
                        dollar(&pg.database),
                    ])
                    .from(&[&pp("port"), &pp("user"), &pp("database")])
                    .comment("over TCP: the entrypoint's init-time server listens on the socket only, so it never looks ready too early"),
                )
                .with("interval", Node::str("10s"))
                .with("timeout", Node::str("5s"))
                .with("retries", Node::int(5))
                .with("start_period", Node::str("30s")),
        );
        n.set("networks", Node::strs(["data"]));
        let vol = format!("{name}-data");
        n.set(
            "volumes",
            Node::seq()
                .item(
                    Node::str(format!("{vol}:{}", postgres_data_mount(pg)))
                        .from(&[&base, &pp("version")]),
                )
                .item(
                    Node::str(format!(
                        "./postgres/{0}:/docker-entrypoint-initdb.d/{0}:ro",
                        crate::postgres::init_file(name)
                    ))
                    .from(&[&pp("user"), &pp("database"), &pp("extensions")])
                    .comment("the app's role, database, grants and extensions, made when the volume is initialised"),
                ),
        );
        volumes.set(vol, Node::map().from(&[&base]));
        n.set("read_only", Node::bool(true));
        n.set("tmpfs", Node::strs(["/tmp", "/var/run/postgresql"]));
        n.set(
            "shm_size",
            Node::str("256m").comment("parallel queries use /dev/shm; docker's default is 64m"),
        );
        self.data_hardening(&mut n, &pp("resources"), &pg.resources, POSTGRES_PIDS);
        n.set(
            "stop_grace_period",
            Node::str("60s").comment("time for a clean shutdown checkpoint"),
        );
        let n = n.from(&[&base]);

        let pooler = pg.pooler.as_ref().map(|pool| {
            let pl = |f: &str| format!("{base}/pooler/{f}");
            let lp = format!("{base}/pooler");
            let ini = pooler_ini_name(pgbouncer_files, name, pool);
            let auth_dir = match pool.auth_file.rsplit_once('/') {
                Some((d, _)) if !d.is_empty() => d.to_owned(),
                _ => "/etc/pgbouncer".to_owned(),
            };
            // The userlist is written at start from the .env secret, into a tmpfs: the
            // password is written once (compose/.env) and never lands on disk.
            let mut env = Node::map().with("PGBOUNCER_AUTH_USER", Node::str(dollar(&pg.user)).from(&[&pp("user")]));
            if let Some(pw) = &pg.password {
                env.set("PGBOUNCER_AUTH_PASSWORD", Node::str(required(pw)).from(&[&pp("password")]));
            }
            self.doc_env(&pool.name, &env);
            let script = pgbouncer_script(&pool.auth_file, pg.password.is_some(), "$$");
            let mut p = Node::map()
                .with("image", Node::str(dollar(&pool.image)).from(&[&pl("image")]))
                .with(
                    "entrypoint",
                    Node::strs(["/bin/sh".to_owned(), "-c".into(), script])
                        .from(&[&pl("auth-file"), &pp("password")])
                        .comment("writes auth_file from the environment (a shell builtin: the password is in no command line), then runs pgbouncer"),
                )
                .with("user", Node::str(format!("{PGBOUNCER_UID}:{PGBOUNCER_UID}")).comment("the image's own non-root user"))
                .with("restart", Node::str("always"))
                .with("environment", env)
                .with("depends_on", healthy(name))
                .with(
                    "healthcheck",
                    Node::map()
                        .with(
                            "test",
                            Node::strs([
                                "CMD".to_owned(),
                                "pg_isready".into(),
                                "-h".into(),
                                "127.0.0.1".into(),
                                "-p".into(),
                                pool.port.to_string(),
                                "-U".into(),
                                dollar(&pg.user),
                                "-d".into(),
                                dollar(&pg.database),
                            ])
                            .from(&[&pl("port")]),
                        )
                        .with("interval", Node::str("10s"))
                        .with("timeout", Node::str("5s"))
                        .with("retries", Node::int(5))
                        .with("start_period", Node::str("10s")),
                )
                .with("networks", Node::strs(["data"]))
                .with("volumes", Node::strs([format!("./pgbouncer/{ini}:/etc/pgbouncer/pgbouncer.ini:ro")]).from(&[&lp]))
                .with("read_only", Node::bool(true))
                .with("tmpfs", Node::strs(["/tmp".to_owned(), auth_dir.clone()]).from(&[&pl("auth-file")]));
            self.data_hardening(&mut p, &pl("resources"), &pool.resources, PGBOUNCER_PIDS);
            (pool.name.clone(), p.from(&[&lp]))
        });
        (n, pooler)
    }

    /// HAProxy in front of service `name`'s replicas: its config mounted read-only, the
    /// image's own unprivileged user, started once the service is healthy.
    fn balancer(&mut self, name: &str, cfg_path: &str) -> Node {
        let bp = sp(name, "balancer");
        let file = cfg_path.trim_start_matches("compose/");
        let mut n = Node::map()
            .with("image", Node::str(crate::haproxy::IMAGE).from(&[&bp]))
            .with("restart", Node::str("always"))
            .with("depends_on", healthy(name))
            .with("networks", Node::strs(["front"]))
            .with(
                "volumes",
                Node::strs([format!("./{file}:/usr/local/etc/haproxy/haproxy.cfg:ro")])
                    .from(&[&bp]),
            )
            .with("read_only", Node::bool(true))
            .with("tmpfs", Node::strs(["/tmp", "/var/lib/haproxy"]));
        self.data_hardening(&mut n, &sp(name, "resources"), &Resources::default(), 128);
        n.from(&[&bp])
    }

    /// The streaming read replicas of postgres `name`: the server's image, cloned from the
    /// primary by pg_basebackup on first start (with a replication slot of its own, so the
    /// primary keeps the WAL it has not received), then a hot standby.
    fn postgres_replicas(&mut self, name: &str, volumes: &mut Node) -> Vec<(String, Node)> {
        let model = self.model;
        let pg = &model.postgres[name];
        let base = pointer(&["postgres", name]);
        let pp = |f: &str| format!("{base}/{f}");
        let mut out = Vec::new();
        for i in 1..=pg.replicas {
            let rname = crate::postgres::replica_name(name, i);
            let script = crate::postgres::replica_script(pg, &model.container_host(name), i)
                .replace('$', "$$");
            let mut env = Node::map();
            if let Some(rpw) = &pg.replication_password {
                env.set(
                    "PGPASSWORD",
                    Node::str(required(rpw))
                        .from(&[&pp("replication-password")])
                        .comment("pg_basebackup's and the standby's login as the replication role"),
                );
            }
            self.doc_env(&rname, &env);
            let vol = format!("{rname}-data");
            let mut n = Node::map()
                .with("image", Node::str(dollar(&pg.image)).from(&[&pp("image")]))
                .with(
                    "entrypoint",
                    Node::strs(["sh".to_owned(), "-c".into(), script])
                        .from(&[&pp("replicas"), &pp("replication-user"), &pp("settings")])
                        .comment(
                            "clones the primary once (pg_basebackup), then runs as a hot standby",
                        ),
                )
                .with(
                    "user",
                    Node::str(format!("{POSTGRES_UID}:{POSTGRES_UID}"))
                        .comment("the image's own postgres user"),
                )
                .with("restart", Node::str("always"))
                .with("environment", env)
                .with("depends_on", healthy(name))
                .with(
                    "healthcheck",
                    Node::map()
                        .with(
                            "test",
                            Node::strs([
                                "CMD".to_owned(),
                                "pg_isready".into(),
                                "-h".into(),
                                "127.0.0.1".into(),
                                "-p".into(),
                                pg.port.to_string(),
                            ])
                            .from(&[&pp("port")]),
                        )
                        .with("interval", Node::str("10s"))
                        .with("timeout", Node::str("5s"))
                        .with("retries", Node::int(5))
                        .with("start_period", Node::str("120s")),
                )
                .with("networks", Node::strs(["data"]))
                .with(
                    "volumes",
                    Node::strs([format!("{vol}:{}", postgres_data_mount(pg))])
                        .from(&[&pp("replicas"), &pp("version")]),
                )
                .with("read_only", Node::bool(true))
                .with("tmpfs", Node::strs(["/tmp", "/var/run/postgresql"]))
                .with("shm_size", Node::str("256m"));
            volumes.set(vol, Node::map().from(&[&pp("replicas")]));
            self.data_hardening(&mut n, &pp("resources"), &pg.resources, POSTGRES_PIDS);
            n.set("stop_grace_period", Node::str("60s"));
            out.push((rname, n.from(&[&pp("replicas")])));
        }
        out
    }

    /// The scheduled dump of postgres `name`: the server's image running kiln's backup loop
    /// as the image's postgres user, connected as the app's role (it owns every object), into
    /// a volume of its own. The volume is mounted on the image's postgres home, so a new
    /// volume belongs to that user.
    fn postgres_backup(&mut self, name: &str, volumes: &mut Node) -> Option<Node> {
        let model = self.model;
        let pg = &model.postgres[name];
        pg.backup.as_ref()?;
        let base = pointer(&["postgres", name]);
        let bp = format!("{base}/backup");
        let pp = |f: &str| format!("{base}/{f}");
        let dir = "/var/lib/postgresql/backups";
        let script = crate::postgres::container_backup_script(pg, dir).replace('$', "$$");
        let mut env = Node::map()
            .with("PGHOST", Node::str(model.container_host(name)))
            .with(
                "PGPORT",
                Node::str(pg.port.to_string()).from(&[&pp("port")]),
            )
            .with("PGUSER", Node::str(dollar(&pg.user)).from(&[&pp("user")]))
            .with(
                "PGDATABASE",
                Node::str(dollar(&pg.database)).from(&[&pp("database")]),
            );
        let mut secrets = Node::seq();
        match &pg.password {
            Some(pw) if model.secrets.get(pw).is_some_and(|x| x.as_file) => {
                env.set(
                    "PGPASSWORD_FILE",
                    Node::str(format!("{SECRET_FILES_DIR}/{pw}")).from(&[&pp("password")]),
                );
                let grant = self.secret_file(pw, &pp("password"));
                secrets.push(grant);
            }
            Some(pw) => env.set(
                "PGPASSWORD",
                Node::str(required(pw)).from(&[&pp("password")]),
            ),
            None => {}
        }
        self.doc_env(&crate::postgres::backup_name(name), &env);
        let vol = format!("{}s", crate::postgres::backup_name(name));
        let mut n = Node::map()
            .with("image", Node::str(dollar(&pg.image)).from(&[&pp("image")]))
            .with(
                "command",
                Node::strs(["sh".to_owned(), "-c".into(), script])
                    .from(&[&bp, &format!("{bp}/every"), &format!("{bp}/at"), &format!("{bp}/keep"), &format!("{bp}/verify")])
                    .comment("sleeps until each scheduled time (UTC), then pg_dump, the proof it restores (pg_restore --list), the rename and the pruning"),
            )
            .with(
                "user",
                Node::str(format!("{POSTGRES_UID}:{POSTGRES_UID}"))
                    .comment("the image's own postgres user, who owns the volume's root"),
            )
            .with("restart", Node::str("always"))
            .with("environment", env);
        if !secrets.is_empty() {
            n.set("secrets", secrets);
        }
        n.set("depends_on", healthy(name));
        n.set("networks", Node::strs(["data"]));
        n.set(
            "volumes",
            Node::strs([format!("{vol}:/var/lib/postgresql")])
                .from(&[&bp])
                .comment(format!("the dumps, in {dir}")),
        );
        volumes.set(vol, Node::map().from(&[&bp]));
        n.set("read_only", Node::bool(true));
        n.set("tmpfs", Node::strs(["/tmp"]));
        self.data_hardening(&mut n, &pp("resources"), &Resources::default(), 64);
        Some(n.from(&[&bp]))
    }

    /// The servers of redis `name`: the primary under its own name, then its read replicas
    /// and its sentinels.
    fn redis_group(&mut self, name: &str, volumes: &mut Node) -> Vec<(String, Node)> {
        let r = &self.model.redis[name];
        let group = r.replicas > 0;
        let primary = if group {
            RedisNode::Primary
        } else {
            RedisNode::Alone
        };
        let mut out = vec![(name.to_owned(), self.redis(name, primary, volumes))];
        for i in 1..=r.replicas {
            out.push((
                kiln_core::model::redis_replica_host(name, i),
                self.redis(name, RedisNode::Replica(i), volumes),
            ));
        }
        if let Some(s) = &r.sentinel {
            for i in 1..=s.count {
                out.push((
                    kiln_core::model::sentinel_host(name, i),
                    self.sentinel(name, i),
                ));
            }
        }
        out
    }

    fn redis(&mut self, name: &str, node: RedisNode, volumes: &mut Node) -> Node {
        let model = self.model;
        let r = &model.redis[name];
        let base = pointer(&["redis", name]);
        let rp = |f: &str| format!("{base}/{f}");
        let host = match node {
            RedisNode::Replica(i) => kiln_core::model::redis_replica_host(name, i),
            _ => name.to_owned(),
        };
        let mut n = Node::map().with("image", Node::str(dollar(&r.image)).from(&[&rp("image")]));
        let mut ptrs = redis_pointers(name, r);
        if node != RedisNode::Alone {
            ptrs.push(rp("replicas"));
        }
        let mut env = Node::map();
        match &r.password {
            Some(pw) => {
                let script = redis_script(name, r, node, "REDISCLI_AUTH", "$$");
                n.set(
                    "command",
                    Node::strs(["sh".to_owned(), "-c".into(), script])
                        .from_all(&ptrs)
                        .comment("requirepass arrives on stdin (`redis-server -`), so the password is in no command line"),
                );
                env.set(
                    "REDISCLI_AUTH",
                    Node::str(required(pw))
                        .from(&[&rp("password")])
                        .comment("read by the command above and by redis-cli"),
                );
            }
            None => {
                let mut cmd = vec!["redis-server".to_owned()];
                for (flag, value, _) in redis_options(name, r) {
                    cmd.push(flag);
                    cmd.push(dollar(&value));
                }
                for mut line in redis_replication(name, r, node) {
                    line[0] = format!("--{}", line[0]);
                    cmd.extend(line);
                }
                n.set("command", Node::strs(cmd).from_all(&ptrs));
            }
        }
        n.set(
            "user",
            Node::str(format!("{REDIS_UID}:{REDIS_UID}")).comment(
                "the image's own redis user: runs non-root from the start, no capability needed",
            ),
        );
        n.set("restart", Node::str("always"));
        if !env.is_empty() {
            self.doc_env(&host, &env);
            n.set("environment", env);
        }
        if let RedisNode::Replica(_) = node {
            n.set("depends_on", healthy(name));
        }
        n.set("healthcheck", redis_ping(r.port, &rp("port")));
        n.set("networks", Node::strs(["data"]));
        let vol = format!("{host}-data");
        let from = match node {
            RedisNode::Replica(_) => rp("replicas"),
            _ => base.clone(),
        };
        n.set(
            "volumes",
            Node::strs([format!("{vol}:/data")]).from(&[&from]),
        );
        volumes.set(vol, Node::map().from(&[&from]));
        n.set("read_only", Node::bool(true));
        n.set("tmpfs", Node::strs(["/tmp"]));
        self.data_hardening(&mut n, &rp("resources"), &r.resources, REDIS_PIDS);
        n.from(&[&from])
    }

    /// Sentinel `i` of redis `name`: the server's image running `redis-sentinel`, with the
    /// server's password both to reach the servers (`auth-pass`) and to admit clients.
    fn sentinel(&mut self, name: &str, i: u32) -> Node {
        let model = self.model;
        let r = &model.redis[name];
        let Some(s) = &r.sentinel else {
            return Node::map();
        };
        let sp = pointer(&["redis", name, "sentinel"]);
        let host = kiln_core::model::sentinel_host(name, i);
        let script = sentinel_script(name, r, s, i, "REDISCLI_AUTH", "$$");
        let mut n = Node::map()
            .with(
                "image",
                Node::str(dollar(&r.image)).from(&[&pointer(&["redis", name, "image"])]),
            )
            .with(
                "command",
                Node::strs(["sh".to_owned(), "-c".into(), script])
                    .from(&[&sp])
                    .comment("the configuration is written to a private tmpfs: Sentinel rewrites it as it learns the group"),
            )
            .with(
                "user",
                Node::str(format!("{REDIS_UID}:{REDIS_UID}"))
                    .comment("the image's own redis user"),
            )
            .with("restart", Node::str("always"));
        if let Some(pw) = &r.password {
            let env = Node::map().with(
                "REDISCLI_AUTH",
                Node::str(required(pw))
                    .from(&[&pointer(&["redis", name, "password"])])
                    .comment("the servers' password, also the sentinels' own"),
            );
            self.doc_env(&host, &env);
            n.set("environment", env);
        }
        n.set("depends_on", healthy(name));
        n.set("healthcheck", redis_ping(s.port, &format!("{sp}/port")));
        n.set("networks", Node::strs(["data"]));
        n.set("read_only", Node::bool(true));
        n.set("tmpfs", Node::strs(["/tmp"]));
        self.data_hardening(&mut n, &sp, &Resources::default(), 64);
        n.from(&[&sp])
    }

    /// Hardening of a service that runs as its image's own user.
    fn data_hardening(&mut self, n: &mut Node, res_ptr: &str, res: &Resources, default_pids: u32) {
        n.set("security_opt", Node::strs(["no-new-privileges:true"]));
        n.set("cap_drop", Node::strs(["ALL"]));
        let pids = match res.pids {
            Some(p) => Node::int(p).from(&[&format!("{res_ptr}/pids")]),
            None => {
                Node::int(default_pids).comment("kiln's default: the spec sets no pids limit here")
            }
        };
        let mut deploy = Node::map();
        if let Some(r) = resources(res_ptr, res, Some(pids)) {
            deploy.set("resources", r);
        }
        if !deploy.is_empty() {
            n.set("deploy", deploy);
        }
    }

    /// The one-shot service that copies a static folder out of an app service's image.
    fn static_copier(&mut self, st: &ImageStatic) -> Node {
        let model = self.model;
        let s = &model.services[&st.service];
        let from: Vec<&str> = st.from.iter().map(String::as_str).collect();
        let image = match &s.image {
            Some(img) => dollar(img),
            None => required(&format!(
                "{}_IMAGE",
                st.service.to_ascii_uppercase().replace('-', "_")
            )),
        };
        let command = copy_command(s, &st.root, STATIC_OUT);
        Node::map()
            .with(
                "image",
                Node::str(image)
                    .from(&[&sp(&st.service, "image")])
                    .comment(format!("{}'s image: its files at {}", st.service, st.root)),
            )
            .with("command", Node::strs(command.iter().map(|a| dollar(a))).from_all(&from))
            .with(
                "user",
                Node::str("0:0").comment("root without any capability: docker creates the volume owned by root; it reads the image's files and writes nothing else"),
            )
            .with("restart", Node::str("no"))
            .with("network_mode", Node::str("none"))
            .with(
                "volumes",
                Node::strs([format!("{}:{STATIC_OUT}", st.volume)]),
            )
            .with("read_only", Node::bool(true))
            .with("security_opt", Node::strs(["no-new-privileges:true"]))
            .with("cap_drop", Node::strs(["ALL"]))
            .with(
                "deploy",
                Node::map().with(
                    "resources",
                    Node::map().with(
                        "limits",
                        Node::map()
                            .with("cpus", Node::str(COPIER_CPUS))
                            .with("memory", Node::str(COPIER_MEMORY))
                            .with("pids", Node::int(COPIER_PIDS))
                            .comment("kiln's defaults for a copy"),
                    ),
                ),
            )
            .from_all(&from)
    }

    fn nginx(&mut self, files: &[Artifact], statics: &[ImageStatic]) -> Node {
        let model = self.model;
        let mut n = Node::map().with(
            "image",
            Node::str(dollar(&model.compose.nginx_image)).from(&["/compose/nginx-image"]),
        );
        n.set("restart", Node::str("always"));
        let mut ports = Node::seq();
        for port in published_ports(model) {
            let from: Vec<String> = model
                .sites
                .iter()
                .flat_map(|(k, s)| {
                    let sp = pointer(&["sites", k]);
                    let mut v = Vec::new();
                    if s.listen.http == port {
                        v.push(format!("{sp}/listen/http"));
                    }
                    if s.tls.mode != "off" && s.listen.https == port {
                        v.push(format!("{sp}/listen/https"));
                    }
                    v
                })
                .collect();
            ports.push(Node::str(format!("{port}:{port}")).from_all(&from));
        }
        n.set(
            "ports",
            ports.comment("the only published ports of the deployment"),
        );

        // nginx resolves every upstream when it starts, so it waits for each to exist; for a
        // site's own upstream to be healthy too (when it has a health check), but not for a
        // side service under a path (a dashboard): one that never turns healthy must not
        // keep the whole site down.
        let mut deps = Node::map();
        for (_, svc) in site_upstreams(model) {
            let main = model.sites.values().any(|site| site.upstream == svc);
            let probed = model.services.get(svc).is_some_and(|s| {
                s.kind == ServiceKind::Web
                    && s.port.is_some()
                    && (is_python(s) || s.health.is_some())
            });
            let cond = if main && probed {
                "service_healthy"
            } else {
                "service_started"
            };
            deps.set(
                svc.to_owned(),
                Node::map()
                    .with("condition", Node::str(cond))
                    .from(&[&sp(svc, "port")]),
            );
        }
        for st in statics {
            deps.set(
                st.copier.clone(),
                Node::map()
                    .with("condition", Node::str("service_completed_successfully"))
                    .from_all(&st.from),
            );
        }
        if !deps.is_empty() {
            n.set("depends_on", deps);
        }
        n.set(
            "healthcheck",
            Node::map()
                .with(
                    "test",
                    Node::strs(["CMD", "nginx", "-t", "-q"]).comment(
                        "reloads nothing: checks the configuration and the certificates still load",
                    ),
                )
                .with("interval", Node::str("60s"))
                .with("timeout", Node::str("10s"))
                .with("retries", Node::int(3)),
        );
        n.set("networks", Node::strs(["front"]));

        // Read-only mounts: the container flavour of the nginx files, certificates, ACME
        // challenges and static folders.
        let mut mounts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut add = |m: String, from: String| mounts.entry(m).or_default().push(from);
        if files.iter().any(|a| a.path == "nginx.conf") || files.is_empty() {
            add(
                "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro".into(),
                "/sites".into(),
            );
        }
        for dir in ["sites", "snippets"] {
            if files.iter().any(|a| a.path.starts_with(&format!("{dir}/"))) {
                add(
                    format!("./nginx/{dir}:/etc/nginx/{dir}:ro"),
                    "/sites".into(),
                );
            }
        }
        for (key, site) in &model.sites {
            let sp = pointer(&["sites", key]);
            let tls = &site.tls;
            if tls.mode != "off" {
                let le = |p: &Option<String>| {
                    p.as_deref()
                        .is_none_or(|p| p.starts_with("/etc/letsencrypt/"))
                };
                if tls.mode == "acme" && le(&tls.cert) && le(&tls.key) {
                    add(
                        "/etc/letsencrypt:/etc/letsencrypt:ro".into(),
                        format!("{sp}/tls"),
                    );
                }
                for (field, path) in [("cert", &tls.cert), ("key", &tls.key)] {
                    if let Some(path) = path
                        && !path.starts_with("/etc/letsencrypt/")
                    {
                        add(
                            format!("{0}:{0}:ro", dollar(path)),
                            format!("{sp}/tls/{field}"),
                        );
                    }
                }
                if tls.mode == "acme" {
                    add(
                        format!("{0}:{0}:ro", dollar(&site.acme_root)),
                        format!("{sp}/acme-root"),
                    );
                }
            }
            for (path, loc) in &site.locations {
                let Some(root) = &loc.root else { continue };
                let lp = format!("{sp}/locations/{}", kiln_core::model::pointer_segment(path));
                // The same path is the same storage as in the app: the image's files copied
                // into a volume, or the app's own volume (uploads), else the host folder.
                if let Some(st) = statics.iter().find(|st| st.from.contains(&lp)) {
                    add(
                        format!("{}:{}:ro", st.volume, dollar(&st.root)),
                        format!("{lp}/from"),
                    );
                } else if let Some((owner, vol, vpath)) = crate::volume_holding(model, root) {
                    let vp = format!(
                        "{}/volumes/{}",
                        pointer(&["services", &owner]),
                        pointer_segment(&vol)
                    );
                    add(format!("{vol}:{}:ro", dollar(&vpath)), vp);
                } else {
                    add(format!("{0}:{0}:ro", dollar(root)), format!("{lp}/root"));
                }
            }
        }
        let mut list = Node::seq();
        for (m, from) in mounts {
            list.push(Node::str(m).from_all(&from));
        }
        n.set("volumes", list);
        n.set("read_only", Node::bool(true));
        n.set("tmpfs", Node::strs(["/tmp", "/var/cache/nginx", "/run"]));
        n.set(
            "environment",
            Node::map().with("NGINX_ENTRYPOINT_QUIET_LOGS", Node::str("1")),
        );
        n.set("security_opt", Node::strs(["no-new-privileges:true"]));
        n.set("cap_drop", Node::strs(["ALL"]));
        n.set(
            "cap_add",
            Node::strs(["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"])
                .comment("the master runs as root: binds 80/443 (NET_BIND_SERVICE), creates its cache folders for")
                .comment("the workers (CHOWN) and switches them to the nginx user (SETUID, SETGID); nothing else"),
        );
        let limits = Node::map()
            .with("cpus", Node::str(NGINX_CPUS))
            .with("memory", Node::str(NGINX_MEMORY))
            .with("pids", Node::int(NGINX_PIDS))
            .comment("kiln's defaults: the spec has no resources for nginx");
        n.set(
            "deploy",
            Node::map().with("resources", Node::map().with("limits", limits)),
        );
        n.from(&["/sites"])
    }

    /// Records a data service's variables for `.env.example`.
    fn doc_env(&mut self, service: &str, env: &Node) {
        if let yaml::Value::Map(entries) = &env.value {
            for (k, v) in entries {
                if let yaml::Value::Str(s) = &v.value {
                    let shown = unescape_required(s);
                    self.env_doc
                        .push((service.to_owned(), k.to_string(), shown, v.from.to_vec()));
                }
            }
        }
    }

    fn env_example(&self) -> Artifact {
        let model = self.model;
        let mut w = Writer::new();
        w.line(format!("# {}", header_text(model)), &[]);
        w.line(
            "# Copy to compose/.env (next to compose.yaml), `chmod 600` it, and fill in every",
            &[],
        );
        w.line(
            "# required secret. Compose reads it for the ${VAR} references of compose.yaml: each",
            &[],
        );
        w.line(
            "# service receives only the secrets it declares, never the whole file.",
            &[],
        );
        w.line(
            "# Wrap a value in single quotes if it contains `$`. Never commit the filled-in file.",
            &[],
        );

        // Which variables embed each secret, in which services, to say where it ends up.
        let mut used_in: BTreeMap<&str, BTreeMap<String, BTreeSet<&str>>> = BTreeMap::new();
        for (svc, s) in &model.services {
            for (var, v) in &s.env {
                for sec in v.secrets() {
                    if sec != var {
                        used_in
                            .entry(sec)
                            .or_default()
                            .entry(var.clone())
                            .or_default()
                            .insert(svc);
                    }
                }
            }
        }
        for (name, pg) in &model.postgres {
            if let Some(pw) = &pg.password {
                used_in
                    .entry(pw.as_str())
                    .or_default()
                    .entry("POSTGRES_PASSWORD".into())
                    .or_default()
                    .insert(name);
                if let Some(pool) = &pg.pooler {
                    used_in
                        .entry(pw.as_str())
                        .or_default()
                        .entry("auth_file".into())
                        .or_default()
                        .insert(&pool.name);
                }
            }
        }
        for (name, r) in &model.redis {
            if let Some(pw) = &r.password {
                used_in
                    .entry(pw.as_str())
                    .or_default()
                    .entry("requirepass".into())
                    .or_default()
                    .insert(name);
            }
        }
        let mut secrets: BTreeMap<&str, (&str, bool, String)> = BTreeMap::new();
        for (name, s) in &model.secrets {
            secrets.insert(
                name,
                (
                    s.kind.as_str(),
                    s.optional,
                    format!("/secrets/{}", kiln_core::model::pointer_segment(name)),
                ),
            );
        }
        for (svc, s) in &model.services {
            for (var, v) in &s.env {
                if let EnvValue::Secret(sec) = v
                    && sec == var
                    && !secrets.contains_key(sec.as_str())
                {
                    secrets.insert(sec, ("generic", false, env_pointer(svc, var)));
                }
            }
        }
        if !secrets.is_empty() || !self.images.is_empty() {
            w.blank();
            w.line("# --- secrets: one value each, never committed ---", &[]);
        }
        for (name, (kind, optional, ptr)) in &secrets {
            let mut about = format!(
                "# kind: {kind} ({})",
                if *optional {
                    "optional: leave commented out to keep it unset"
                } else {
                    "required"
                }
            );
            let receivers: Vec<&str> = model
                .services
                .iter()
                .filter(|(_, s)| {
                    s.env
                        .get(*name)
                        .is_some_and(|v| matches!(v, EnvValue::Secret(x) if x == name))
                })
                .map(|(k, _)| k.as_str())
                .collect();
            if receivers.len() < model.services.len() {
                about.push_str(&format!(
                    "; given to {}",
                    if receivers.is_empty() {
                        "no service directly".to_owned()
                    } else {
                        receivers.join(", ")
                    }
                ));
            }
            if let Some(uses) = used_in.get(name) {
                let list: Vec<String> = uses
                    .iter()
                    .map(|(var, svcs)| {
                        format!(
                            "{var} ({})",
                            svcs.iter().copied().collect::<Vec<_>>().join(", ")
                        )
                    })
                    .collect();
                about.push_str(&format!(
                    "; also in {}: keep it URL-safe (e.g. `openssl rand -hex 32`)",
                    list.join(", ")
                ));
            }
            w.line(about, &[ptr]);
            w.line(
                if *optional {
                    format!("# {name}=")
                } else {
                    format!("{name}=")
                },
                &[ptr],
            );
        }
        for (var, ptr) in &self.images {
            w.line(
                "# the image of a service whose spec names none (required)",
                &[ptr],
            );
            w.line(format!("{var}="), &[ptr]);
        }

        // What compose.yaml sets inline, grouped by the services that share the same values.
        let mut per_service: BTreeMap<&str, Vec<DocLine>> = BTreeMap::new();
        for (svc, var, val, from) in &self.env_doc {
            per_service
                .entry(svc)
                .or_default()
                .push((var, val, from.clone()));
        }
        let mut groups: Vec<(Vec<&str>, Vec<DocLine>)> = Vec::new();
        for (svc, vars) in per_service {
            let key: Vec<(&str, &str)> = vars.iter().map(|(k, v, _)| (*k, *v)).collect();
            match groups
                .iter_mut()
                .find(|(_, g)| g.iter().map(|(k, v, _)| (*k, *v)).collect::<Vec<_>>() == key)
            {
                Some((names, g)) => {
                    names.push(svc);
                    for (entry, (_, _, from)) in g.iter_mut().zip(&vars) {
                        entry.2.extend(from.iter().cloned());
                    }
                }
                None => groups.push((vec![svc], vars)),
            }
        }
        if !groups.is_empty() {
            w.blank();
            w.line("# --- set by compose.yaml itself (for reference: changing them here has no effect) ---", &[]);
        }
        for (names, vars) in groups {
            w.line(format!("# {}:", names.join(", ")), &[]);
            for (var, val, from) in vars {
                let from: Vec<&str> = from.iter().map(String::as_str).collect();
                w.line(format!("#   {var}={}", val.replace('\n', "\\n")), &from);
            }
        }
        w.finish("compose/.env.example")
    }
}

/// A variable of `.env.example`'s reference section: name, documented value, pointers.
type DocLine<'a> = (&'a str, &'a str, Vec<String>);

/// `${X:?set X in compose/.env}` → `${X}` for documentation.
fn unescape_required(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match (after.find(":?"), after.find('}')) {
            (Some(q), Some(end)) if q < end => {
                out.push_str(&format!("${{{}}}", &after[..q]));
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("$$", "$")
}

fn disabled_healthcheck(from: &str, why: &str) -> Node {
    Node::map()
        .with("disable", Node::bool(true))
        .from(&[from])
        .comment(why)
}

/// `deploy.resources` from the model (limits and reservations). The pids limit lives in
/// `limits.pids`: compose rejects a `pids_limit` beside a `limits` block without it.
fn resources(ptr: &str, r: &Resources, pids: Option<Node>) -> Option<Node> {
    let mut limits = Node::map();
    if let Some(c) = r.cpu {
        limits.set("cpus", Node::str(cpus(c)).from(&[&format!("{ptr}/cpu")]));
    }
    if let Some(m) = r.memory {
        limits.set(
            "memory",
            Node::str(size(m)).from(&[&format!("{ptr}/memory")]),
        );
    }
    if let Some(p) = pids {
        limits.set("pids", p);
    }
    let mut reservations = Node::map();
    if let Some(c) = r.cpu_request {
        reservations.set(
            "cpus",
            Node::str(cpus(c)).from(&[&format!("{ptr}/cpu-request"), &format!("{ptr}/cpu")]),
        );
    }
    if let Some(m) = r.memory_request {
        reservations.set(
            "memory",
            Node::str(size(m)).from(&[&format!("{ptr}/memory-request"), &format!("{ptr}/memory")]),
        );
    }
    let mut out = Node::map();
    if !limits.is_empty() {
        out.set("limits", limits);
    }
    if !reservations.is_empty() {
        out.set("reservations", reservations);
    }
    (!out.is_empty()).then_some(out)
}

/// The health check of a Redis server or sentinel: `redis-cli ping` on `port` (with the
/// password from REDISCLI_AUTH), `port_ptr` the pointer behind the port.
fn redis_ping(port: u16, port_ptr: &str) -> Node {
    Node::map()
        .with(
            "test",
            Node::strs([
                "CMD-SHELL".to_owned(),
                format!("redis-cli -p {port} ping | grep -q PONG"),
            ])
            .from(&[port_ptr]),
        )
        .with("interval", Node::str("10s"))
        .with("timeout", Node::str("5s"))
        .with("retries", Node::int(5))
        .with("start_period", Node::str("10s"))
}

/// `depends_on` one service, once its health check passes.
fn healthy(name: &str) -> Node {
    Node::map().with(
        name.to_owned(),
        Node::map().with("condition", Node::str("service_healthy")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(cpus(250), "0.25");
        assert_eq!(cpus(2000), "2");
        assert_eq!(cpus(1500), "1.5");
        assert_eq!(cpus(1), "0.001");
        assert_eq!(size(4 << 30), "4G");
        assert_eq!(size(512 << 20), "512M");
        assert_eq!(size(1000), "1000b");
    }

    #[test]
    fn documented_interpolation() {
        assert_eq!(
            unescape_required("postgres://u:${DB_PASSWORD:?set DB_PASSWORD in compose/.env}@h/db"),
            "postgres://u:${DB_PASSWORD}@h/db"
        );
        assert_eq!(unescape_required("a$$b"), "a$b");
    }
}
