//! The `k8s` target: one resource per file under `k8s/`, and `k8s/kustomization.yaml`
//! listing them.
//!
//! Resources: the Namespace (Pod Security `restricted` enforced when every pod meets
//! it), a ServiceAccount without token, a ConfigMap `<project>-env` with the variables
//! every app service shares, per app service a Deployment (a Job for one-off tasks), a
//! Service per web port and a PodDisruptionBudget when it has 2+ replicas; per site an
//! Ingress (plus one per path that needs its own ingress-nginx annotations); per
//! PostgreSQL a StatefulSet with a headless Service, its pgbouncer as Deployment +
//! Service + ConfigMap; per Redis a StatefulSet with a headless Service; and
//! NetworkPolicies: default-deny ingress, web from the ingress controller only,
//! datastores from the app pods that use them only.
//!
//! Invariants, by construction:
//! - No secret value: every secret is a `secretKeyRef` into `<project>-secrets` (key =
//!   the variable name); a value that embeds one is written `$(NAME)` after `NAME`'s
//!   own entry (dependent variables expand in order). Other `$(` are escaped.
//! - Every pod: `runAsNonRoot`, numeric uid/gid, seccomp `RuntimeDefault`, no privilege
//!   escalation, all capabilities dropped, no service-account token, no service links. The
//!   datastores run as high uids of their own (10997–10999), not their images' 70 and 999.
//! - File names are `<kind>-<name>.yaml` with `/` impossible, so nothing escapes `k8s/`.

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::Artifact;
use kiln_core::model::{
    Condition, EnvValue, LocationKind, Model, Part, Resources, SECRET_FILES_DIR, Service,
    ServiceKind, Site, Target, pointer, pointer_segment, secret_file_variable,
};
use kiln_core::schema::{parse_duration, parse_rate};

use crate::compose::containers::*;
use crate::yaml::{self, Node};
use crate::{Output, Unsupported, header_text};

pub fn emit(model: &Model) -> Output {
    let mut cx = Cx {
        model,
        unsupported: Vec::new(),
        files: BTreeMap::new(),
        shared_env: shared_env(model),
    };
    cx.namespace();
    cx.service_account();
    cx.env_config_map();
    for (name, s) in &model.services {
        // A task others wait for runs as their init containers, not as a Job of its own
        // (which would run it once more, racing them).
        let awaited = model.services.values().any(|o| {
            o.depends_on
                .get(name)
                .is_some_and(|d| d.condition == Condition::Completed)
        });
        if s.kind == ServiceKind::Task && awaited {
            continue;
        }
        cx.app(name, s);
    }
    for (name, s) in &model.services {
        cx.files_config_map(name, s);
    }
    cx.volumes();
    for (key, site) in &model.sites {
        cx.ingress(key, site);
    }
    for name in model.postgres.keys() {
        cx.postgres(name);
    }
    for name in model.redis.keys() {
        cx.redis(name);
    }
    cx.network_policies();
    for u in pgbouncer_files(model).unsupported {
        cx.unsupported(
            u.pointer,
            format!("{} (in k8s): {}", u.target.as_str(), u.message),
        );
    }
    for (name, s) in &model.services {
        if s.balancer.is_some() {
            cx.unsupported(
                sp(name, "balancer"),
                format!("service `{name}`: a Kubernetes Service balances the replicas and its readiness probe (the `health` path) takes a failing one out, so no HAProxy is emitted"),
            );
        }
    }
    if model.fail2ban.is_some() && !model.targets.contains(&Target::Systemd) {
        cx.unsupported(
            "/fail2ban".into(),
            "Kubernetes has no host to run fail2ban on: rate limits belong to the ingress controller (limit-rps annotations)",
        );
    }
    if model.firewall.is_some() {
        cx.unsupported(
            "/firewall".into(),
            "Kubernetes has no host firewall: the cluster's nodes are firewalled outside kiln; pod traffic is limited by the NetworkPolicies (networkpolicy-*.yaml)",
        );
    }
    cx.finish()
}

/// The ConfigMap of a service's static sidecar.
fn static_name(service: &str) -> String {
    format!("{service}-static")
}

/// The folders of `service`'s image that sites serve (`static … from=SERVICE`), each with
/// the locations serving it.
fn static_roots(model: &Model, service: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for p in crate::pod_served(model, service) {
        if p.served != crate::Served::Image {
            continue;
        }
        let root = crate::trim_slash(p.location.root.as_deref().unwrap_or("/"));
        match out.iter_mut().find(|(r, _)| *r == root) {
            Some((_, f)) => f.push(p.pointer),
            None => out.push((root, vec![p.pointer])),
        }
    }
    out
}

/// The service whose pod serves the location at `pointer` itself (its sidecar), if any.
fn serving_pod(model: &Model, pointer: &str) -> Option<String> {
    model.services.keys().find_map(|name| {
        crate::pod_served(model, name)
            .iter()
            .any(|p| p.pointer == pointer)
            .then(|| name.clone())
    })
}

/// The pointers of the locations `service`'s sidecar serves.
fn sidecar_pointers(model: &Model, service: &str) -> Vec<String> {
    crate::pod_served(model, service)
        .into_iter()
        .map(|p| p.pointer)
        .collect()
}

/// The limits of the static copy and sidecar containers: a copy, a small nginx.
fn static_resources() -> Node {
    Node::map()
        .with(
            "requests",
            Node::map()
                .with("cpu", Node::str("50m"))
                .with("memory", Node::str("32Mi")),
        )
        .with(
            "limits",
            Node::map()
                .with("cpu", Node::str("500m"))
                .with("memory", Node::str("128Mi")),
        )
        .comment("kiln's defaults for the static-file containers")
}

/// The size of a database's claims (its data, its backups): the spec's `storage` in whole Gi,
/// rounded up, else kiln's 10Gi.
fn claim_size(pg: &kiln_core::model::Postgres) -> String {
    pg.storage.map_or_else(
        || "10Gi".to_owned(),
        |b| format!("{}Gi", b.div_ceil(1 << 30).max(1)),
    )
}

/// The ConfigMap of postgres `name`'s init script.
fn init_name(name: &str) -> String {
    format!("{name}-init")
}

/// The ConfigMap of a service's app files.
fn files_name(service: &str) -> String {
    format!("{service}-files")
}

/// The ConfigMap key of each app file of `s`: its path without the leading `/`, `/`
/// written `_`, and numbered when two paths give the same key.
fn file_keys(s: &Service) -> Vec<(&String, String)> {
    let mut taken = BTreeSet::new();
    s.files
        .keys()
        .map(|path| {
            let base: String = path
                .trim_start_matches('/')
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut key = base.clone();
            let mut n = 2;
            while !taken.insert(key.clone()) {
                key = format!("{base}-{n}");
                n += 1;
            }
            (path, key)
        })
        .collect()
}

/// The blake3 digest (first 16 hex digits) of the app files of these services, `None`
/// when they have none.
fn files_digest(model: &Model, services: &[(&str, &Service)]) -> Option<String> {
    let mut h = blake3::Hasher::new();
    let mut any = false;
    for (name, s) in services {
        for (path, f) in &s.files {
            any = true;
            let text = f.render(&|host| model.container_host(host));
            for part in [name, path.as_str(), f.mode.as_str(), text.as_str()] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
    }
    any.then(|| h.finalize().to_hex()[..16].to_owned())
}

/// The name of the Secret holding every secret variable (key = variable name).
fn secrets_name(model: &Model) -> String {
    format!("{}-secrets", model.project.name)
}

fn userlist_name(model: &Model) -> String {
    format!("{}-pgbouncer-userlist", model.project.name)
}

/// Escapes `$` where Kubernetes would expand it (`$(…)`, `$$`) in env values, command and args.
fn k8s_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '(')) {
            out.push('$');
        }
    }
    out
}

/// An ingress-nginx annotation: name (without its prefix), value, the pointers behind it.
type Annotation = (String, String, Vec<String>);

/// A path of an Ingress: path, upstream service, pointers.
type Route = (String, String, Vec<String>);

/// A path with an Ingress of its own: path, upstream, its own annotations, pointers.
type OwnPath = (String, String, Vec<Annotation>, Vec<String>);

/// A label value: at most 63 characters, starting and ending with a letter or digit
/// (resource names are DNS-safe already; host names of Ingresses can be longer).
fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(63)
        .collect();
    while v.ends_with(['-', '_', '.']) {
        v.pop();
    }
    v.trim_start_matches(['-', '_', '.']).to_owned()
}

/// Millicores as a quantity (`"500m"`, `"2"`).
fn cpu_quantity(m: u64) -> String {
    if m.is_multiple_of(1000) {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

/// Bytes as a quantity (`"4Gi"`, `"512Mi"`).
fn memory_quantity(b: u64) -> String {
    for (unit, sz) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if b >= sz && b.is_multiple_of(sz) {
            return format!("{}{unit}", b / sz);
        }
    }
    b.to_string()
}

/// Non-secret variables every app service has with the same value: the shared ConfigMap.
fn shared_env(model: &Model) -> BTreeMap<String, String> {
    let host = |h: &str| model.container_host(h);
    let mut services = model.services.values();
    let Some(first) = services.next() else {
        return BTreeMap::new();
    };
    let mut shared: BTreeMap<String, String> = first
        .env
        .iter()
        .filter(|(_, v)| !v.is_secret())
        .filter_map(|(k, v)| v.render(&host).map(|r| (k.clone(), r)))
        .collect();
    for s in services {
        shared.retain(|k, v| {
            s.env
                .get(k)
                .filter(|e| !e.is_secret())
                .and_then(|e| e.render(&host))
                .as_ref()
                == Some(v)
        });
    }
    shared
}

struct Cx<'a> {
    model: &'a Model,
    unsupported: Vec<Unsupported>,
    /// File name (under `k8s/`) → resource.
    files: BTreeMap<String, Node>,
    shared_env: BTreeMap<String, String>,
}

impl Cx<'_> {
    fn unsupported(&mut self, pointer: String, message: impl Into<String>) {
        self.unsupported.push(Unsupported {
            target: Target::K8s,
            pointer,
            message: message.into(),
            security: false,
        });
    }

    /// [`Self::unsupported`] for a lost security control: always a warning (issue 15: the
    /// Ingress carried none of a site's headers and only `--verbose` said so).
    fn unsupported_security(&mut self, pointer: String, message: impl Into<String>) {
        self.unsupported.push(Unsupported {
            target: Target::K8s,
            pointer,
            message: message.into(),
            security: true,
        });
    }

    fn add(&mut self, kind: &str, name: &str, node: Node) {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let file = format!("{}-{safe}.yaml", kind.to_ascii_lowercase());
        debug_assert!(!self.files.contains_key(&file), "two resources in {file}");
        self.files.insert(file, node);
    }

    fn labels(&self, name: &str, component: &str) -> Node {
        Node::map()
            .with("app.kubernetes.io/name", Node::str(label_value(name)))
            .with("app.kubernetes.io/component", Node::str(component))
            .with(
                "app.kubernetes.io/part-of",
                Node::str(&self.model.project.name),
            )
            .with("app.kubernetes.io/managed-by", Node::str("kiln"))
    }

    fn selector(&self, name: &str) -> Node {
        Node::map()
            .with("app.kubernetes.io/name", Node::str(label_value(name)))
            .with(
                "app.kubernetes.io/part-of",
                Node::str(&self.model.project.name),
            )
    }

    fn metadata(&self, name: &str, component: &str) -> Node {
        Node::map()
            .with("name", Node::str(name))
            .with(
                "namespace",
                Node::str(&self.model.kubernetes.namespace).from(&["/kubernetes/namespace"]),
            )
            .with("labels", self.labels(name, component))
    }

    /// The `imagePullPolicy` of a container running `image`: the spec's, else
    /// `IfNotPresent` for an image pinned by digest (its bytes cannot change) and `Always`
    /// for a tag, which can move to other bytes.
    fn pull_policy(&self, image: &str) -> Node {
        match &self.model.kubernetes.image_pull_policy {
            Some(p) => Node::str(p).from(&["/kubernetes/image-pull-policy"]),
            None if image.contains("@sha256:") => Node::str("IfNotPresent"),
            None => Node::str("Always"),
        }
    }

    fn resource(&self, api: &str, kind: &str, meta: Node) -> Node {
        Node::map()
            .with("apiVersion", Node::str(api))
            .with("kind", Node::str(kind))
            .with("metadata", meta)
    }

    fn namespace(&mut self) {
        let ns = &self.model.kubernetes.namespace;
        let restricted = self
            .model
            .services
            .values()
            .all(|s| s.cap_add.iter().all(|c| c == "NET_BIND_SERVICE"));
        let level = if restricted { "restricted" } else { "baseline" };
        let mut labels = Node::map()
            .with(
                "app.kubernetes.io/part-of",
                Node::str(&self.model.project.name),
            )
            .with("app.kubernetes.io/managed-by", Node::str("kiln"))
            .with("pod-security.kubernetes.io/enforce", Node::str(level))
            .with("pod-security.kubernetes.io/warn", Node::str("restricted"));
        if !restricted {
            labels = labels.comment("an app service adds a capability beyond NET_BIND_SERVICE: restricted is warned, not enforced");
        }
        let node = Node::map()
            .with("apiVersion", Node::str("v1"))
            .with("kind", Node::str("Namespace"))
            .with(
                "metadata",
                Node::map()
                    .with("name", Node::str(ns).from(&["/kubernetes/namespace"]))
                    .with("labels", labels),
            );
        self.add("Namespace", ns, node);
    }

    fn service_account(&mut self) {
        let name = self.model.project.name.clone();
        let node = self
            .resource(
                "v1",
                "ServiceAccount",
                self.metadata(&name, "service-account"),
            )
            .with(
                "automountServiceAccountToken",
                Node::bool(false).comment("no workload here talks to the Kubernetes API"),
            );
        self.add("ServiceAccount", &name, node);
    }

    fn env_config_map(&mut self) {
        if self.shared_env.is_empty() {
            return;
        }
        let name = format!("{}-env", self.model.project.name);
        let mut data = Node::map();
        for (k, v) in &self.shared_env {
            let from: Vec<String> = if self.model.env.contains_key(k) {
                vec![format!("/env/{}", pointer_segment(k))]
            } else {
                self.model
                    .services
                    .keys()
                    .map(|s| env_pointer(s, k))
                    .collect()
            };
            data.set(k.clone(), Node::str(v).from_all(&from));
        }
        let node = self
            .resource("v1", "ConfigMap", self.metadata(&name, "config"))
            .with(
                "data",
                data.comment(
                    "the non-secret variables every app service shares (secrets: Secret `"
                        .to_owned()
                        + &secrets_name(self.model)
                        + "`)",
                ),
            );
        self.add("ConfigMap", &name, node);
    }

    /// The ConfigMap holding the `nginx.conf` of service `name`'s static sidecar.
    fn static_config_map(&mut self, name: &str, conf: Artifact) {
        let cm = static_name(name);
        if self.files.contains_key(&format!("configmap-{cm}.yaml")) {
            return;
        }
        let data = Node::map().with("nginx.conf", Node::str(&conf.text));
        let node = self
            .resource("v1", "ConfigMap", self.metadata(&cm, "static"))
            .with("data", data);
        self.add("ConfigMap", &cm, node);
    }

    /// The ConfigMap holding service `name`'s app files.
    fn files_config_map(&mut self, name: &str, s: &Service) {
        if s.files.is_empty() {
            return;
        }
        let model = self.model;
        let cm = files_name(name);
        if self.files.contains_key(&format!("configmap-{cm}.yaml")) {
            self.unsupported(
                sp(name, "files"),
                format!("the ConfigMap `{cm}` of `{name}`'s files is taken by another resource: rename the service"),
            );
            return;
        }
        let mut data = Node::map();
        for (path, key) in file_keys(s) {
            let file = &s.files[path];
            let text = crate::app_file_text(model, file, file.render(&|h| model.container_host(h)));
            data.set(
                key,
                Node::str(text).from(&[&crate::app_file_pointer(name, path)]),
            );
        }
        let node = self
            .resource("v1", "ConfigMap", self.metadata(&cm, "files"))
            .with(
                "data",
                data.comment(format!(
                    "{name}'s files, each mounted read-only at its path"
                )),
            );
        self.add("ConfigMap", &cm, node);
    }

    fn pod_security(&mut self, uid: u32, gid: u32, from: &[&str]) -> Node {
        Node::map()
            .with("runAsNonRoot", Node::bool(true))
            .with("runAsUser", Node::int(uid).from(from))
            .with("runAsGroup", Node::int(gid).from(from))
            .with("fsGroup", Node::int(gid).from(from))
            .with(
                "seccompProfile",
                Node::map().with("type", Node::str("RuntimeDefault")),
            )
    }

    fn container_security(
        read_only: bool,
        read_only_from: &[&str],
        cap_add: &[String],
        cap_from: &[&str],
    ) -> Node {
        let mut caps = Node::map().with("drop", Node::strs(["ALL"]));
        if !cap_add.is_empty() {
            caps.set("add", Node::strs(cap_add.iter().cloned()).from(cap_from));
        }
        Node::map()
            .with("allowPrivilegeEscalation", Node::bool(false))
            .with(
                "readOnlyRootFilesystem",
                Node::bool(read_only).from(read_only_from),
            )
            .with("runAsNonRoot", Node::bool(true))
            .with("capabilities", caps)
    }

    /// The pod's user from the service's `uid:gid`, or the host's uid when it is not numeric.
    fn app_user(&mut self, name: &str, s: &Service) -> (u32, u32) {
        match parse_user(&s.user) {
            Some((0, _)) => {
                self.unsupported(
                    sp(name, "user"),
                    format!(
                        "`{}` is root, which runAsNonRoot forbids: the pod runs as {} instead",
                        s.user, self.model.host.uid
                    ),
                );
                (self.model.host.uid, self.model.host.gid)
            }
            Some((u, g)) => (u, g.unwrap_or(u)),
            None => {
                self.unsupported(
                    sp(name, "user"),
                    format!("`{}` is not numeric; Kubernetes needs a uid to check runAsNonRoot: the pod runs as {}:{}", s.user, self.model.host.uid, self.model.host.gid),
                );
                (self.model.host.uid, self.model.host.gid)
            }
        }
    }

    fn secret_ref(&self, var: &str, key: &str, optional: bool, from: &[&str]) -> Node {
        let mut r = Node::map()
            .with("name", Node::str(secrets_name(self.model)))
            .with("key", Node::str(key));
        if optional {
            r.set("optional", Node::bool(true));
        }
        Node::map()
            .with("name", Node::str(var))
            .with("valueFrom", Node::map().with("secretKeyRef", r))
            .from(from)
    }

    /// The container of service `name`, and the volumes of its pod (named with
    /// `vol_prefix`, so that an init container's do not clash with the main container's).
    fn container(&mut self, name: &str, s: &Service, vol_prefix: &str) -> (Node, Node) {
        let model = self.model;
        let p = |f: &str| sp(name, f);
        let base = pointer(&["services", name]);
        let image = match &s.image {
            Some(i) => i.clone(),
            None => {
                let placeholder = format!("{}-{name}", model.project.name);
                self.unsupported(
                    p("image"),
                    format!("service `{name}` names no image: the manifest uses the placeholder `{placeholder}`; set `image` in the spec or override it with kustomize `images:`"),
                );
                placeholder
            }
        };
        let mut c = Node::map()
            .with("name", Node::str(name))
            .with("image", Node::str(&image).from(&[&p("image")]))
            .with("imagePullPolicy", self.pull_policy(&image));
        if let Some((exe, args)) = s.run.argv.split_first() {
            c.set("command", Node::strs([k8s_escape(exe)]).from(&[&p("run")]));
            if !args.is_empty() {
                c.set(
                    "args",
                    Node::strs(args.iter().map(|a| k8s_escape(a))).from(&[&p("run")]),
                );
            }
        }
        if let (ServiceKind::Web, Some(port)) = (s.kind, s.port) {
            c.set(
                "ports",
                Node::seq().item(
                    Node::map()
                        .with("name", Node::str("http"))
                        .with("containerPort", Node::int(port))
                        .with("protocol", Node::str("TCP"))
                        .from(&[&p("port")]),
                ),
            );
        }

        // Environment: the shared ConfigMap, then secrets, own values, values embedding secrets.
        if !self.shared_env.is_empty() {
            c.set(
                "envFrom",
                Node::seq()
                    .item(Node::map().with(
                        "configMapRef",
                        Node::map().with("name", Node::str(format!("{}-env", model.project.name))),
                    ))
                    .from(&["/env"]),
            );
        }
        let host = |h: &str| model.container_host(h);
        let mut secret_entries: BTreeMap<String, Node> = BTreeMap::new();
        let mut plain = Vec::new();
        let mut wired = Vec::new();
        let mut file_secrets: Vec<(String, String)> = Vec::new();
        for (var, v) in &s.env {
            let ep = env_pointer(name, var);
            match v {
                EnvValue::Secret(sec) if model.secrets.get(sec).is_some_and(|x| x.as_file) => {
                    plain.push(
                        Node::map()
                            .with("name", Node::str(secret_file_variable(var)))
                            .with("value", Node::str(format!("{SECRET_FILES_DIR}/{sec}")))
                            .from(&[&ep]),
                    );
                    file_secrets.push((sec.clone(), ep));
                }
                EnvValue::Secret(sec) => {
                    let optional = model.secrets.get(sec).is_some_and(|x| x.optional);
                    secret_entries.insert(var.clone(), self.secret_ref(var, sec, optional, &[&ep]));
                }
                EnvValue::Wired(parts) if v.is_secret() => {
                    let value: String = parts
                        .iter()
                        .map(|part| match part {
                            Part::Text(t) => k8s_escape(t),
                            Part::Host(h) => host(h),
                            Part::Secret(sec) => format!("$({sec})"),
                        })
                        .collect();
                    wired.push(
                        Node::map()
                            .with("name", Node::str(var))
                            .with("value", Node::str(value))
                            .from(&[&ep]),
                    );
                    for sec in v.secrets() {
                        if !secret_entries.contains_key(sec) && !s.env.contains_key(sec) {
                            let optional = model.secrets.get(sec).is_some_and(|x| x.optional);
                            let sp = format!("/secrets/{}", pointer_segment(sec));
                            secret_entries.insert(
                                sec.to_owned(),
                                self.secret_ref(sec, sec, optional, &[&sp]),
                            );
                        }
                    }
                }
                other if !self.shared_env.contains_key(var) => {
                    let value = other.render(&host).unwrap_or_default();
                    plain.push(
                        Node::map()
                            .with("name", Node::str(var))
                            .with("value", Node::str(k8s_escape(&value)))
                            .from(&[&ep]),
                    );
                }
                _ => {}
            }
        }
        let mut env = Node::seq();
        for n in secret_entries.into_values().chain(plain) {
            env.push(n);
        }
        for (i, n) in wired.into_iter().enumerate() {
            env.push(if i == 0 { n.comment("after the secrets they embed: $(NAME) expands only variables defined before it") } else { n });
        }
        if !env.is_empty() {
            c.set("env", env);
        }
        if let Some(r) = resources(&format!("{base}/resources"), &s.resources) {
            c.set("resources", r);
        }
        self.app_probes(name, s, &mut c);

        let mut mounts = Node::seq();
        let mut vols = Node::seq();
        for t in &s.tmpfs {
            let vname = format!("{vol_prefix}tmpfs-{}", dns_label(t));
            mounts.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with("mountPath", Node::str(t))
                    .from(&[&p("tmpfs")]),
            );
            vols.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with("emptyDir", Node::map())
                    .from(&[&p("tmpfs")]),
            );
        }
        for (vol, v) in &s.volumes {
            let vp = format!("{base}/volumes/{}", pointer_segment(vol));
            let vname = format!("{vol_prefix}volume-{}", dns_label(vol));
            let mut m = Node::map()
                .with("name", Node::str(&vname))
                .with("mountPath", Node::str(&v.path));
            if v.read_only {
                m.set(
                    "readOnly",
                    Node::bool(true).from(&[&format!("{vp}/read-only")]),
                );
            }
            mounts.push(m.from(&[&vp]));
            vols.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with(
                        "persistentVolumeClaim",
                        Node::map().with("claimName", Node::str(vol)),
                    )
                    .from(&[&vp]),
            );
        }
        // App files: one ConfigMap per service, each file mounted read-only by subPath.
        if !s.files.is_empty() {
            let vname = format!("{vol_prefix}files");
            let mut items = Node::seq();
            for (path, key) in file_keys(s) {
                let fp = crate::app_file_pointer(name, path);
                mounts.push(
                    Node::map()
                        .with("name", Node::str(&vname))
                        .with("mountPath", Node::str(path))
                        .with("subPath", Node::str(&key))
                        .with("readOnly", Node::bool(true))
                        .from(&[&fp]),
                );
                let mode = &s.files[path].mode;
                items.push(
                    Node::map()
                        .with("key", Node::str(&key))
                        .with("path", Node::str(&key))
                        .with(
                            "mode",
                            Node::int(i64::from_str_radix(mode, 8).unwrap_or(0o444))
                                .comment(format!("{mode} (decimal here)")),
                        )
                        .from(&[&fp, &format!("{fp}/mode")]),
                );
            }
            vols.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with(
                        "configMap",
                        Node::map()
                            .with("name", Node::str(files_name(name)))
                            .with("items", items),
                    )
                    .from(&[&p("files")]),
            );
        }
        // Secrets delivered as files: the project Secret's keys, read-only, owned by the pod's
        // fsGroup and readable by it alone.
        if !file_secrets.is_empty() {
            let vname = format!("{vol_prefix}secrets");
            let from: Vec<&str> = file_secrets.iter().map(|(_, ep)| ep.as_str()).collect();
            mounts.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with("mountPath", Node::str(SECRET_FILES_DIR))
                    .with("readOnly", Node::bool(true))
                    .from(&from),
            );
            let mut items = Node::seq();
            for (sec, ep) in &file_secrets {
                items.push(
                    Node::map()
                        .with("key", Node::str(sec))
                        .with("path", Node::str(sec))
                        .from(&[ep]),
                );
            }
            let mut secret = Node::map()
                .with("secretName", Node::str(secrets_name(model)))
                .with("items", items)
                .with(
                    "defaultMode",
                    Node::int(0o440)
                        .comment("0440 (decimal here): the pod's group (fsGroup) reads them"),
                );
            if file_secrets
                .iter()
                .all(|(sec, _)| model.secrets.get(sec).is_some_and(|x| x.optional))
            {
                secret.set("optional", Node::bool(true));
            }
            vols.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with("secret", secret)
                    .from(&from),
            );
        }
        if !mounts.is_empty() {
            c.set("volumeMounts", mounts);
        }
        c.set(
            "securityContext",
            Self::container_security(
                s.read_only,
                &[&p("read-only")],
                &s.cap_add,
                &[&p("cap-add")],
            ),
        );

        (c, vols)
    }

    fn app(&mut self, name: &str, s: &Service) {
        let model = self.model;
        let p = |f: &str| sp(name, f);
        let base = pointer(&["services", name]);
        let component = match s.kind {
            ServiceKind::Web => "web",
            ServiceKind::Worker => "worker",
            ServiceKind::Beat => "beat",
            ServiceKind::Task => "task",
        };

        let (c, mut vols) = self.container(name, s, "");
        // Tasks it depends on run first, as init containers: the pod starts only once each
        // has succeeded (and a failed one keeps it from starting).
        let mut init = Node::seq();
        for (dep, d) in &s.depends_on {
            let Some(task) = model.services.get(dep) else {
                continue;
            };
            let from = format!("{}/{}", p("depends-on"), pointer_segment(dep));
            match d.condition {
                Condition::Completed => {
                    let (ic, ivols) = self.container(dep, task, &format!("{}-", dns_label(dep)));
                    init.push(ic.from(&[&from]));
                    for v in ivols.into_items() {
                        vols.push(v);
                    }
                }
                Condition::Healthy | Condition::Started => self.unsupported(
                    from,
                    format!("`depends-on {dep}`: Kubernetes starts a Deployment's pods without waiting for another's; `{name}` must retry until `{dep}` answers (its readiness probe keeps traffic away meanwhile)"),
                ),
            }
        }
        // Static files in the image: init containers copy each folder into an emptyDir, a
        // sidecar nginx serves them to the ingress controller on its own port.
        let mut sidecar = None;
        if let Some(conf) = crate::nginx::static_sidecar(model, name) {
            let roots = static_roots(model, name);
            let mut sidecar_mounts = Node::seq();
            for (i, (root, from)) in roots.iter().enumerate() {
                let from: Vec<&str> = from.iter().map(String::as_str).collect();
                let vname = format!("static-{}", i + 1);
                let command = crate::compose::copy_command(s, root, "/kiln-static");
                let image = c.get("image").cloned().unwrap_or_else(|| Node::str(name));
                init.push(
                    Node::map()
                        .with("name", Node::str(format!("static-copy-{}", i + 1)))
                        .with("image", image)
                        .with(
                            "imagePullPolicy",
                            self.pull_policy(s.image.as_deref().unwrap_or_default()),
                        )
                        .with("command", Node::strs(command.iter().map(|a| k8s_escape(a))))
                        .with(
                            "volumeMounts",
                            Node::seq().item(
                                Node::map()
                                    .with("name", Node::str(&vname))
                                    .with("mountPath", Node::str("/kiln-static")),
                            ),
                        )
                        .with("resources", static_resources())
                        .with(
                            "securityContext",
                            Self::container_security(true, &[], &[], &[]),
                        )
                        .from_all(&from)
                        .comment(format!(
                            "copies {root} out of the image, for the `static` sidecar"
                        )),
                );
                vols.push(
                    Node::map()
                        .with("name", Node::str(&vname))
                        .with("emptyDir", Node::map())
                        .from_all(&from),
                );
                sidecar_mounts.push(
                    Node::map()
                        .with("name", Node::str(&vname))
                        .with("mountPath", Node::str(root))
                        .with("readOnly", Node::bool(true))
                        .from_all(&from),
                );
            }
            // The service's own volumes it serves (uploads): the pod's claim, read-only.
            let mut mounted = BTreeSet::new();
            for p in crate::pod_served(model, name) {
                let crate::Served::Volume(vol, vpath) = &p.served else {
                    continue;
                };
                if mounted.insert(vol.clone()) {
                    sidecar_mounts.push(
                        Node::map()
                            .with("name", Node::str(format!("volume-{}", dns_label(vol))))
                            .with("mountPath", Node::str(vpath))
                            .with("readOnly", Node::bool(true))
                            .from(&[
                                &format!(
                                    "{}/volumes/{}",
                                    pointer(&["services", name]),
                                    pointer_segment(vol)
                                ),
                                &p.pointer,
                            ]),
                    );
                }
            }
            sidecar_mounts.push(
                Node::map()
                    .with("name", Node::str("static-config"))
                    .with("mountPath", Node::str("/etc/nginx/nginx.conf"))
                    .with("subPath", Node::str("nginx.conf"))
                    .with("readOnly", Node::bool(true)),
            );
            sidecar_mounts.push(
                Node::map()
                    .with("name", Node::str("static-tmp"))
                    .with("mountPath", Node::str("/tmp")),
            );
            vols.push(Node::map().with("name", Node::str("static-config")).with(
                "configMap",
                Node::map().with("name", Node::str(static_name(name))),
            ));
            vols.push(
                Node::map()
                    .with("name", Node::str("static-tmp"))
                    .with("emptyDir", Node::map()),
            );
            let all_from = sidecar_pointers(model, name);
            sidecar = Some(
                Node::map()
                    .with("name", Node::str("static"))
                    .with(
                        "image",
                        Node::str(&model.compose.nginx_image).from(&["/compose/nginx-image"]),
                    )
                    .with(
                        "imagePullPolicy",
                        self.pull_policy(&model.compose.nginx_image),
                    )
                    .with(
                        "command",
                        Node::strs(["nginx", "-g", "daemon off;"])
                            .comment("the image's entrypoint would rewrite its configuration"),
                    )
                    .with(
                        "ports",
                        Node::seq().item(
                            Node::map()
                                .with("name", Node::str("static"))
                                .with(
                                    "containerPort",
                                    Node::int(crate::nginx::STATIC_SIDECAR_PORT),
                                )
                                .with("protocol", Node::str("TCP")),
                        ),
                    )
                    .with(
                        "readinessProbe",
                        Node::map()
                            .with("tcpSocket", Node::map().with("port", Node::str("static")))
                            .with("periodSeconds", Node::int(10)),
                    )
                    .with("resources", static_resources())
                    .with("volumeMounts", sidecar_mounts)
                    .with(
                        "securityContext",
                        Self::container_security(true, &[], &[], &[]),
                    )
                    .from_all(&all_from),
            );
            self.static_config_map(name, conf);
        }
        let (uid, gid) = self.app_user(name, s);
        let mut pod = Node::map()
            .with("serviceAccountName", Node::str(&model.project.name))
            .with("automountServiceAccountToken", Node::bool(false))
            .with(
                "enableServiceLinks",
                Node::bool(false).comment(
                    "no <SERVICE>_PORT variables: they would clash with the app's (DB_PORT …)",
                ),
            )
            .with(
                "securityContext",
                self.pod_security(uid, gid, &[&p("user")]),
            );
        if s.run.stop_signal != "SIGTERM" {
            self.unsupported(
                p("run"),
                format!(
                    "{} stops gracefully on {}, but Kubernetes sends SIGTERM: add a preStop hook that sends it, or rely on the grace period",
                    s.run.program, s.run.stop_signal
                ),
            );
        }
        if let Some(t) = s.stop_timeout {
            pod.set(
                "terminationGracePeriodSeconds",
                Node::int(t as i64).from(&[&p("stop-timeout")]),
            );
        }
        let selector = self.selector(name);
        let mut replicas = s.replicas;
        if s.kind == ServiceKind::Beat && replicas != 1 {
            self.unsupported(p("replicas"), format!("celery beat must run exactly once per schedule: {replicas} replicas emitted as 1"));
            replicas = 1;
        }
        if s.kind == ServiceKind::Web && replicas >= 2 {
            pod.set(
                "topologySpreadConstraints",
                Node::seq().item(
                    Node::map()
                        .with("maxSkew", Node::int(1))
                        .with("topologyKey", Node::str("kubernetes.io/hostname"))
                        .with("whenUnsatisfiable", Node::str("ScheduleAnyway"))
                        .with(
                            "labelSelector",
                            Node::map().with("matchLabels", selector.clone()),
                        )
                        .from(&[&p("replicas")]),
                ),
            );
        }
        if s.kind == ServiceKind::Task {
            let policy = if s.restart == "no" {
                "Never"
            } else {
                "OnFailure"
            };
            pod.set("restartPolicy", Node::str(policy).from(&[&p("restart")]));
        } else if !matches!(s.restart.as_str(), "always" | "unless-stopped") {
            self.unsupported(
                p("restart"),
                format!(
                    "restart `{}`: a Deployment always restarts its pods",
                    s.restart
                ),
            );
        }
        if !init.is_empty() {
            pod.set("initContainers", init);
        }
        let mut containers = Node::seq().item(c);
        if let Some(sc) = sidecar.take() {
            containers.push(sc);
        }
        pod.set("containers", containers);
        if !vols.is_empty() {
            pod.set("volumes", vols);
        }
        let mut template_meta = Node::map().with("labels", self.labels(name, component));
        // The files mounted by subPath never change in a running pod: their digest in the
        // template makes a changed file roll the pods.
        let mut with_files: Vec<(&str, &Service)> = vec![(name, s)];
        for (dep, d) in &s.depends_on {
            if let (Condition::Completed, Some(task)) = (d.condition, model.services.get(dep)) {
                with_files.push((dep, task));
            }
        }
        if let Some(digest) = files_digest(model, &with_files) {
            template_meta.set(
                "annotations",
                Node::map().with(
                    "kiln.dev/files-digest",
                    Node::str(digest)
                        .from(&[&p("files")])
                        .comment("blake3 of the app files: a changed file rolls the pods"),
                ),
            );
        }
        let template = Node::map()
            .with("metadata", template_meta)
            .with("spec", pod);

        let node = if s.kind == ServiceKind::Task {
            let spec = Node::map()
                .with("backoffLimit", Node::int(2))
                .with(
                    "ttlSecondsAfterFinished",
                    Node::int(600).comment(
                        "removed 10 minutes after it ends, so the next apply runs it again",
                    ),
                )
                .with("template", template);
            self.resource("batch/v1", "Job", self.metadata(name, component))
                .with("spec", spec.from(&[&base]))
        } else {
            let mut spec = Node::map()
                .with("replicas", Node::int(replicas).from(&[&p("replicas")]))
                .with("revisionHistoryLimit", Node::int(5))
                .with(
                    "selector",
                    Node::map().with("matchLabels", selector.clone()),
                );
            if s.kind == ServiceKind::Beat {
                spec.set(
                    "strategy",
                    Node::map()
                        .with("type", Node::str("Recreate"))
                        .comment("never two beats at once, not even during a rollout"),
                );
            }
            spec.set("template", template);
            self.resource("apps/v1", "Deployment", self.metadata(name, component))
                .with("spec", spec.from(&[&base]))
        };
        let kind = if s.kind == ServiceKind::Task {
            "Job"
        } else {
            "Deployment"
        };
        self.add(kind, name, node.from(&[&base]));

        if let (ServiceKind::Web, Some(port)) = (s.kind, s.port) {
            let svc = self
                .resource("v1", "Service", self.metadata(name, component))
                .with(
                    "spec",
                    Node::map()
                        .with("type", Node::str("ClusterIP"))
                        .with("selector", selector.clone())
                        .with("ports", {
                            let mut ports = Node::seq().item(
                                Node::map()
                                    .with("name", Node::str("http"))
                                    .with("port", Node::int(port))
                                    .with("targetPort", Node::str("http"))
                                    .with("protocol", Node::str("TCP"))
                                    .from(&[&p("port")]),
                            );
                            let from = sidecar_pointers(model, name);
                            if !from.is_empty() {
                                ports.push(
                                    Node::map()
                                        .with("name", Node::str("static"))
                                        .with("port", Node::int(crate::nginx::STATIC_SIDECAR_PORT))
                                        .with("targetPort", Node::str("static"))
                                        .with("protocol", Node::str("TCP"))
                                        .from_all(&from),
                                );
                            }
                            ports
                        }),
                );
            self.add("Service", name, svc.from(&[&base]));
            if replicas >= 2 {
                let pdb = self
                    .resource(
                        "policy/v1",
                        "PodDisruptionBudget",
                        self.metadata(name, component),
                    )
                    .with(
                        "spec",
                        Node::map()
                            .with("maxUnavailable", Node::int(1))
                            .with("selector", Node::map().with("matchLabels", selector))
                            .from(&[&p("replicas")]),
                    );
                self.add("PodDisruptionBudget", name, pdb);
            }
        }
    }

    /// Web: readiness (HTTP on the health path, often) and liveness (TCP, patient) that
    /// differ; workers: liveness only (a broker ping to themselves); beat and tasks: none.
    fn app_probes(&mut self, name: &str, s: &Service, c: &mut Node) {
        let p = |f: &str| sp(name, f);
        match s.kind {
            ServiceKind::Web if s.port.is_some() => {
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
                let hp = p("health");
                let readiness = match path {
                    Some(path) => {
                        let mut get = Node::map()
                            .with("path", Node::str(path).from(&[&format!("{hp}/path")]))
                            .with("port", Node::str("http"));
                        let mut headers = Node::seq();
                        if let Some(h) = public_host(self.model, name) {
                            let site = site_upstreams(self.model)
                                .into_iter()
                                .find(|(_, u)| *u == name)
                                .map(|(s, _)| pointer(&["sites", s]))
                                .unwrap_or_default();
                            headers.push(
                                Node::map()
                                    .with("name", Node::str("Host"))
                                    .with("value", Node::str(h))
                                    .from(&[&site]),
                            );
                        }
                        headers.push(
                            Node::map()
                                .with("name", Node::str("X-Forwarded-Proto"))
                                .with("value", Node::str("https")),
                        );
                        get.set(
                            "httpHeaders",
                            headers.comment(
                                "as nginx sends them: passes ALLOWED_HOSTS, no HTTPS redirect",
                            ),
                        );
                        Node::map().with("httpGet", get)
                    }
                    None => {
                        Node::map().with("tcpSocket", Node::map().with("port", Node::str("http")))
                    }
                };
                c.set(
                    "readinessProbe",
                    readiness
                        .with("initialDelaySeconds", Node::int(5))
                        .with("periodSeconds", Node::int(10))
                        .with("timeoutSeconds", Node::int(timeout as i64).from(&[&format!("{hp}/timeout")]))
                        .with("failureThreshold", Node::int(retries).from(&[&format!("{hp}/retries")]))
                        .from(&[&hp])
                        .comment("readiness: the app answers its health path; out of the Service while it does not"),
                );
                c.set(
                    "livenessProbe",
                    Node::map()
                        .with("tcpSocket", Node::map().with("port", Node::str("http")))
                        .with("initialDelaySeconds", Node::int(start as i64).from(&[&format!("{hp}/start-period")]))
                        .with("periodSeconds", Node::int(interval as i64).from(&[&format!("{hp}/interval")]))
                        .with("timeoutSeconds", Node::int(timeout as i64).from(&[&format!("{hp}/timeout")]))
                        .with("failureThreshold", Node::int((retries * 2).max(3)).from(&[&format!("{hp}/retries")]))
                        .from(&[&hp])
                        .comment("liveness: the server still accepts connections (restart only when it is wedged, not when a dependency is down)"),
                );
            }
            ServiceKind::Worker => {
                if let Some(ping) = worker_probe(s, "$") {
                    c.set(
                        "livenessProbe",
                        Node::map()
                            .with("exec", Node::map().with("command", Node::strs(["sh".to_owned(), "-c".into(), ping])))
                            .with("initialDelaySeconds", Node::int(30))
                            .with("periodSeconds", Node::int(60))
                            .with("timeoutSeconds", Node::int(20))
                            .with("failureThreshold", Node::int(3))
                            .from(&[&p("run")])
                            .comment(match s.run.program.as_str() {
                                "celery-worker" => "a worker answers a broker ping addressed to itself (celery@<pod name>)",
                                _ => "the program's own liveness check (its `probe` in the catalog)",
                            }),
                    );
                }
            }
            _ => {}
        }
    }

    /// PersistentVolumeClaims of the app services' named volumes.
    fn volumes(&mut self) {
        let mut users: BTreeMap<&str, (u32, Vec<String>)> = BTreeMap::new();
        for (name, s) in &self.model.services {
            for vol in s.volumes.keys() {
                let e = users.entry(vol).or_default();
                e.0 += s.replicas.max(1);
                e.1.push(format!(
                    "{}/volumes/{}",
                    pointer(&["services", name]),
                    pointer_segment(vol)
                ));
            }
        }
        for (vol, (pods, from)) in users {
            let mode = if pods > 1 {
                "ReadWriteMany"
            } else {
                "ReadWriteOnce"
            };
            let node = self
                .resource("v1", "PersistentVolumeClaim", self.metadata(vol, "storage"))
                .with(
                    "spec",
                    Node::map()
                        .with(
                            "accessModes",
                            Node::strs([mode]).comment(if pods > 1 {
                                "mounted by several pods"
                            } else {
                                "mounted by one pod"
                            }),
                        )
                        .with(
                            "resources",
                            Node::map().with(
                                "requests",
                                Node::map().with(
                                    "storage",
                                    Node::str("10Gi")
                                        .comment("kiln's default: the spec has no size"),
                                ),
                            ),
                        )
                        .from_all(&from),
                );
            self.add("PersistentVolumeClaim", vol, node);
        }
    }

    fn ingress(&mut self, key: &str, site: &Site) {
        let model = self.model;
        let sp = pointer(&["sites", key]);
        let nginx = model.kubernetes.ingress_class == "nginx";
        let tls_on = site.tls.mode != "off";
        let class_ptr = "/kubernetes/ingress-class";

        self.controller_wide(key, site);

        // Site-level annotations (inherited by every per-path Ingress of the site).
        let mut site_ann: Vec<Annotation> = Vec::new();
        if let Some(b) = &site.max_body_size {
            if nginx {
                site_ann.push((
                    "proxy-body-size".into(),
                    b.clone(),
                    vec![format!("{sp}/max-body-size")],
                ));
            } else {
                self.unsupported(
                    format!("{sp}/max-body-size"),
                    format!(
                        "ingress class `{}` has no body-size annotation kiln knows",
                        model.kubernetes.ingress_class
                    ),
                );
            }
        }
        for (field, value) in [
            ("connect", &site.timeouts.connect),
            ("send", &site.timeouts.send),
            ("read", &site.timeouts.read),
        ] {
            if let Some(v) = value {
                let ptr = format!("{sp}/timeouts/{field}");
                match (nginx, parse_duration(v)) {
                    (true, Some(secs)) => site_ann.push((
                        format!("proxy-{field}-timeout"),
                        secs.to_string(),
                        vec![ptr],
                    )),
                    _ => self.unsupported(
                        ptr,
                        format!("the {field} timeout `{v}` cannot be set on this Ingress"),
                    ),
                }
            }
        }
        let site_zones: Vec<&str> = site
            .rate_limits
            .iter()
            .filter(|(_, r)| r.site_wide)
            .map(|(z, _)| z.as_str())
            .collect();
        if let Some(zone) = site_zones.first() {
            site_ann.extend(self.rate_annotations(key, site, zone, nginx));
        }
        for zone in site_zones.iter().skip(1) {
            self.unsupported(
                format!("{sp}/rate-limits/{}", pointer_segment(zone)),
                format!("ingress-nginx applies one rate limit per Ingress: `{zone}` is left out"),
            );
        }

        // Paths: `/` and every proxy location go to their upstream; a location whose
        // settings ingress-nginx can only set per Ingress gets an Ingress of its own.
        let mut main_paths: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        main_paths.insert(
            "/".into(),
            (site.upstream.clone(), vec![format!("{sp}/upstream")]),
        );
        let mut own: Vec<OwnPath> = Vec::new();
        let mut zone_paths: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (zone, r) in &site.rate_limits {
            for path in &r.paths {
                zone_paths
                    .entry(path.as_str())
                    .or_default()
                    .push(zone.as_str());
            }
        }
        let mut paths: BTreeSet<&str> = site.locations.keys().map(String::as_str).collect();
        paths.extend(zone_paths.keys().copied());
        for path in paths {
            let lp = format!("{sp}/locations/{}", pointer_segment(path));
            let loc = site.locations.get(path);
            if loc.is_some_and(|l| matches!(l.kind, LocationKind::Static | LocationKind::Media))
                && let Some(svc) = serving_pod(model, &lp)
            {
                // Served by that pod's static sidecar (its port `static`).
                main_paths.insert(path.to_owned(), (svc, vec![lp.clone()]));
                continue;
            }
            if let Some(l) = loc
                && matches!(l.kind, LocationKind::Static | LocationKind::Media)
            {
                self.unsupported(
                    lp.clone(),
                    format!(
                        "an Ingress cannot serve files from a folder: `{path}` goes to `{}`, so the app must serve them (e.g. WhiteNoise), or run a separate static-file Deployment",
                        site.upstream
                    ),
                );
                continue;
            }
            if !path.starts_with('/') {
                continue;
            }
            let upstream = loc
                .and_then(|l| l.upstream.clone())
                .unwrap_or_else(|| site.upstream.clone());
            let mut ann: Vec<Annotation> = Vec::new();
            if let Some(l) = loc {
                if !l.access_log {
                    ann.push((
                        "enable-access-log".into(),
                        "false".into(),
                        vec![format!("{lp}/access-log")],
                    ));
                }
                if let Some(b) = &l.max_body_size {
                    ann.push((
                        "proxy-body-size".into(),
                        b.clone(),
                        vec![format!("{lp}/max-body-size")],
                    ));
                }
                let read =
                    l.read_timeout
                        .as_deref()
                        .or(if l.websocket { Some("3600s") } else { None });
                if let Some(t) = read {
                    match parse_duration(t) {
                        Some(secs) => {
                            let from = vec![format!("{lp}/read-timeout")];
                            ann.push(("proxy-read-timeout".into(), secs.to_string(), from.clone()));
                            if l.websocket {
                                ann.push(("proxy-send-timeout".into(), secs.to_string(), from));
                            }
                        }
                        None => self.unsupported(
                            format!("{lp}/read-timeout"),
                            format!("read timeout `{t}` is not a duration"),
                        ),
                    }
                }
                if !l.allow.is_empty() {
                    ann.push((
                        "whitelist-source-range".into(),
                        l.allow.join(","),
                        vec![format!("{lp}/allow")],
                    ));
                }
                if let Some(z) = &l.rate_limit {
                    ann.extend(self.rate_annotations(key, site, z, nginx));
                }
                if l.cache_control.is_some() || l.expires.is_some() {
                    self.unsupported(lp.clone(), format!("`{path}` sets caching headers, which ingress-nginx adds only through snippets (forbidden, POLICIES #38): set them in the app"));
                }
            }
            for z in zone_paths.get(path).into_iter().flatten() {
                ann.extend(self.rate_annotations(key, site, z, nginx));
            }
            let from = if loc.is_some() {
                vec![lp.clone()]
            } else {
                Vec::new()
            };
            if ann.is_empty() {
                main_paths.insert(path.to_owned(), (upstream, from));
            } else if !nginx {
                self.unsupported(lp, format!("`{path}` needs per-path settings that only ingress-nginx annotations express; class `{}` gets them nowhere", model.kubernetes.ingress_class));
                main_paths.insert(path.to_owned(), (upstream, from));
            } else {
                own.push((path.to_owned(), upstream, ann, from));
            }
        }

        // A `/` location with settings of its own gives them to the site's Ingress; the
        // other paths then need an Ingress each, so they do not inherit them.
        let mut main_ann = site_ann.clone();
        if let Some(i) = own.iter().position(|(p, ..)| p == "/") {
            let (_, upstream, ann_root, from) = own.remove(i);
            for (k, v, f) in ann_root {
                main_ann.retain(|(x, ..)| *x != k);
                main_ann.push((k, v, f));
            }
            let others: Vec<(String, (String, Vec<String>))> = std::mem::take(&mut main_paths)
                .into_iter()
                .filter(|(p, _)| p != "/")
                .collect();
            for (p, (u, f)) in others {
                own.push((p, u, Vec::new(), f));
            }
            main_paths.insert("/".into(), (upstream, from));
        }

        // The site's Ingress: TLS, every host, the plain paths.
        let mut ann = Node::map();
        if tls_on && site.tls.mode == "acme" {
            match &model.kubernetes.cluster_issuer {
                Some(issuer) => ann.set("cert-manager.io/cluster-issuer", Node::str(issuer).from(&["/kubernetes/cluster-issuer", &format!("{sp}/tls")])),
                None => self.unsupported(
                    format!("{sp}/tls"),
                    format!("`tls acme` needs cert-manager: set `kubernetes {{ cluster-issuer \"…\" }}`, or create the Secret `{key}-tls` yourself"),
                ),
            }
        }
        if tls_on && site.tls.mode == "files" {
            self.unsupported(
                format!("{sp}/tls/cert"),
                format!("certificate files live on a host: create the Secret `{key}-tls` from them (`kubectl create secret tls {key}-tls --cert=… --key=…`)"),
            );
        }
        if tls_on
            && nginx
            && let Some(ciphers) = &site.tls.ciphers
        {
            ann.set(
                "nginx.ingress.kubernetes.io/ssl-ciphers",
                Node::str(ciphers).from(&[&format!("{sp}/tls/ciphers")]),
            );
            ann.set(
                "nginx.ingress.kubernetes.io/ssl-prefer-server-ciphers",
                Node::str(if site.tls.prefer_server_ciphers {
                    "true"
                } else {
                    "false"
                })
                .from(&[&format!("{sp}/tls/prefer-server-ciphers")]),
            );
        }
        for (k, v, from) in &main_ann {
            ann.set(
                format!("nginx.ingress.kubernetes.io/{k}"),
                Node::str(v).from_all(from),
            );
        }
        let tls_section = Node::seq().item(
            Node::map()
                .with(
                    "hosts",
                    Node::strs(site.server_names.iter().cloned())
                        .from(&[&sp, &format!("{sp}/aliases")]),
                )
                .with("secretName", Node::str(format!("{key}-tls")))
                .from(&[&format!("{sp}/tls")]),
        );
        let mut spec = Node::map().with(
            "ingressClassName",
            Node::str(&model.kubernetes.ingress_class).from(&[class_ptr]),
        );
        if tls_on {
            spec.set("tls", tls_section.clone());
        }
        spec.set(
            "rules",
            self.rules(
                site,
                &sp,
                main_paths
                    .into_iter()
                    .map(|(p, (u, f))| (p, u, f))
                    .collect(),
            ),
        );
        let mut meta = self.metadata(key, "ingress");
        if !ann.is_empty() {
            meta.set("annotations", ann);
        }
        let node = self
            .resource("networking.k8s.io/v1", "Ingress", meta)
            .with("spec", spec);
        self.add("Ingress", key, node.from(&[&sp]));

        // One Ingress per path with its own settings; ingress-nginx merges them into the
        // host's server (TLS comes from the site's Ingress).
        for (path, upstream, ann_here, from) in own {
            // Unique among every Ingress, the sites' own included.
            let base = format!("{key}-{}", dns_label(&path));
            let mut name = base.clone();
            let mut i = 2;
            while model.sites.contains_key(&name)
                || self.files.contains_key(&format!("ingress-{name}.yaml"))
            {
                name = format!("{base}-{i}");
                i += 1;
            }
            let mut merged: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
            for (k, v, f) in site_ann.iter().chain(ann_here.iter()) {
                merged.insert(k.clone(), (v.clone(), f.clone()));
            }
            let mut a = Node::map();
            for (k, (v, f)) in merged {
                a.set(
                    format!("nginx.ingress.kubernetes.io/{k}"),
                    Node::str(v).from_all(&f),
                );
            }
            let mut spec = Node::map().with(
                "ingressClassName",
                Node::str(&model.kubernetes.ingress_class).from(&[class_ptr]),
            );
            if tls_on {
                spec.set(
                    "tls",
                    tls_section.clone().comment(
                        "the same certificate: this host's HTTPS redirect applies here too",
                    ),
                );
            }
            spec.set(
                "rules",
                self.rules(site, &sp, vec![(path.clone(), upstream, from.clone())]),
            );
            let meta = self.metadata(&name, "ingress").with(
                "annotations",
                a.comment(format!(
                    "the settings of `{path}` alone (certificates: the site's Ingress `{key}`)"
                )),
            );
            let node = self
                .resource("networking.k8s.io/v1", "Ingress", meta)
                .with("spec", spec);
            self.add("Ingress", &name, node.from(&[&sp]).from_all(&from));
        }
    }

    fn rules(&self, site: &Site, sp: &str, paths: Vec<Route>) -> Node {
        let mut rules = Node::seq();
        for host in &site.server_names {
            let mut list = Node::seq();
            for (path, upstream, from) in &paths {
                let port = self.model.services.get(upstream).and_then(|s| s.port);
                let sidecar = from
                    .iter()
                    .any(|p| serving_pod(self.model, p).as_deref() == Some(upstream.as_str()));
                let port_node = match port {
                    _ if sidecar => Node::map().with("name", Node::str("static")),
                    Some(_) => Node::map().with("name", Node::str("http")),
                    None => Node::map().with("number", Node::int(80)),
                };
                list.push(
                    Node::map()
                        .with("path", Node::str(path))
                        .with("pathType", Node::str("Prefix"))
                        .with(
                            "backend",
                            Node::map().with(
                                "service",
                                Node::map()
                                    .with("name", Node::str(upstream))
                                    .with("port", port_node),
                            ),
                        )
                        .from_all(from),
                );
            }
            rules.push(
                Node::map()
                    .with("host", Node::str(host))
                    .with("http", Node::map().with("paths", list))
                    .from(&[sp]),
            );
        }
        rules
    }

    /// ingress-nginx `limit-rps`/`limit-rpm` + burst multiplier for zone `zone` of a site.
    fn rate_annotations(
        &mut self,
        key: &str,
        site: &Site,
        zone: &str,
        nginx: bool,
    ) -> Vec<Annotation> {
        let rp = format!(
            "{}/rate-limits/{}",
            pointer(&["sites", key]),
            pointer_segment(zone)
        );
        let Some(r) = site.rate_limits.get(zone) else {
            return Vec::new();
        };
        if !nginx {
            self.unsupported(rp, format!("rate limit `{zone}`: ingress class `{}` has no rate-limit annotation kiln knows", self.model.kubernetes.ingress_class));
            return Vec::new();
        }
        let Some((n, unit)) = parse_rate(&r.rate) else {
            self.unsupported(
                format!("{rp}/rate"),
                format!("rate `{}` is not N r/s or N r/m", r.rate),
            );
            return Vec::new();
        };
        let name = if unit == 's' {
            "limit-rps"
        } else {
            "limit-rpm"
        };
        let mut out = vec![(name.to_owned(), n.to_string(), vec![format!("{rp}/rate")])];
        if let Some(b) = r.burst {
            let mult = (u64::from(b)).div_ceil(n.max(1)).max(1);
            if u64::from(b) != mult * n {
                self.unsupported(format!("{rp}/burst"), format!("ingress-nginx sets the burst as a multiple of the rate: burst {b} becomes {}", mult * n));
            }
            out.push((
                "limit-burst-multiplier".into(),
                mult.to_string(),
                vec![format!("{rp}/burst")],
            ));
        }
        if !r.nodelay {
            self.unsupported(
                format!("{rp}/nodelay"),
                "ingress-nginx always applies `nodelay` to its rate limits",
            );
        }
        out
    }

    /// Site settings the ingress controller owns for every site at once.
    fn controller_wide(&mut self, key: &str, site: &Site) {
        let sp = pointer(&["sites", key]);
        let tls = &site.tls;
        if site.tls.mode != "off" {
            let mut owned = Vec::new();
            if tls.protocols != ["TLSv1.2", "TLSv1.3"] {
                owned.push(format!("ssl-protocols \"{}\"", tls.protocols.join(" ")));
            }
            if let Some(c) = &tls.ecdh_curve {
                owned.push(format!("ssl-ecdh-curve \"{c}\""));
            }
            if let Some(t) = &tls.session_timeout {
                owned.push(format!("ssl-session-timeout \"{t}\""));
            }
            if tls.session_tickets {
                owned.push("ssl-session-tickets \"true\"".into());
            }
            if tls.stapling {
                owned.push("enable-ocsp \"true\"".into());
            }
            if !owned.is_empty() {
                self.unsupported(
                    format!("{sp}/tls"),
                    format!("TLS settings are the ingress controller's, for every site at once: set {} in its ConfigMap", owned.join(", ")),
                );
            }
            match &site.hsts {
                Some(h) if h.max_age != 31_536_000 || !h.include_subdomains || h.preload => self.unsupported(
                    format!("{sp}/hsts"),
                    format!(
                        "HSTS is set by the ingress controller for every site: set hsts-max-age \"{}\", hsts-include-subdomains \"{}\", hsts-preload \"{}\" in its ConfigMap",
                        h.max_age, h.include_subdomains, h.preload
                    ),
                ),
                None => self.unsupported(format!("{sp}/hsts"), "ingress-nginx sends HSTS by default: set hsts \"false\" in its ConfigMap to turn it off"),
                _ => {}
            }
        }
        if !site.headers.is_empty() {
            let names: Vec<&str> = site.headers.keys().map(String::as_str).collect();
            self.unsupported_security(
                format!("{sp}/headers"),
                format!(
                    "response headers ({}) need ingress-nginx snippets, which POLICIES #38 forbids: send them from the app (Django SecurityMiddleware) or the controller's add-headers ConfigMap",
                    names.join(", ")
                ),
            );
        }
        if site.gzip.is_some() {
            self.unsupported(format!("{sp}/gzip"), "gzip is the ingress controller's setting (use-gzip in its ConfigMap), for every site at once");
        }
        if site.redirect_code != 308 && site.tls.mode != "off" {
            self.unsupported(format!("{sp}/redirect-code"), format!("ingress-nginx redirects HTTP to HTTPS with 308 (http-redirect-code in its ConfigMap), not {}", site.redirect_code));
        }
        if site.server_tokens {
            self.unsupported(format!("{sp}/server-tokens"), "server tokens are the ingress controller's setting (server-tokens in its ConfigMap)");
        }
        if site.listen.http != 80 || site.listen.https != 443 {
            self.unsupported(
                format!("{sp}/listen"),
                "an Ingress serves on the controller's ports (80 and 443)",
            );
        }
    }

    fn postgres(&mut self, name: &str) {
        let model = self.model;
        let pg = &model.postgres[name];
        let base = pointer(&["postgres", name]);
        let pp = |f: &str| format!("{base}/{f}");
        if pg.replicas > 0 {
            self.unsupported(pp("replicas"), format!("{} read replica(s) of `{name}`: a replica's failover and re-cloning need a controller, which plain manifests are not; kiln emits the primary (with the replication role) and leaves the replicas to an operator (CloudNativePG …)", pg.replicas));
        }
        for key in file_settings(pg) {
            self.unsupported(
                pp(&format!("settings/{key}")),
                format!("`{key}` names a file inside the PostgreSQL container, which this StatefulSet does not provide: mount it from a Secret"),
            );
        }
        let mut args = Node::seq().item(Node::str("postgres"));
        // A secret volume's files are root-owned, 0440: PostgreSQL accepts such a key.
        let tls_key = pg
            .tls
            .as_ref()
            .map(|t| format!("{SECRET_FILES_DIR}/{}", t.key))
            .unwrap_or_default();
        let mut pg_args = postgres_args(name, pg);
        pg_args.extend(crate::postgres::tls_args(name, pg, &tls_key));
        for (arg, ptr) in pg_args {
            args.push(Node::str("-c").from(&[&ptr]));
            args.push(Node::str(k8s_escape(&arg)).from(&[&ptr]));
        }
        let mut env = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("POSTGRES_DB"))
                    .with("value", Node::str(k8s_escape(&pg.database)))
                    .from(&[&pp("database")]),
            )
            .item(
                Node::map()
                    .with("name", Node::str("POSTGRES_USER"))
                    .with("value", Node::str("postgres"))
                    .comment(format!(
                        "the superuser, for administration over the socket only: the app logs in as `{}`, made by ConfigMap {}",
                        pg.user,
                        init_name(name)
                    )),
            );
        match &pg.password {
            Some(pw) if model.secrets.get(pw).is_some_and(|x| x.as_file) => {
                env.push(
                    Node::map()
                        .with("name", Node::str("POSTGRES_PASSWORD_FILE"))
                        .with("value", Node::str(format!("{SECRET_FILES_DIR}/{pw}")))
                        .from(&[&pp("password")]),
                );
            }
            Some(pw) => env.push(self.secret_ref("POSTGRES_PASSWORD", pw, false, &[&pp("password")])),
            None => self.unsupported(base.clone(), format!("postgres `{name}` has no password: the official image refuses to start without POSTGRES_PASSWORD")),
        }
        if let Some(serde_json::Value::String(m)) = pg.settings.get("password_encryption")
            && matches!(m.as_str(), "scram-sha-256" | "md5")
        {
            env.push(
                Node::map()
                    .with("name", Node::str("POSTGRES_HOST_AUTH_METHOD"))
                    .with("value", Node::str(m))
                    .from(&[&pp("settings/password_encryption")]),
            );
        }
        if let (true, Some(rpw)) = (pg.replicas > 0, &pg.replication_password) {
            env.push(self.secret_ref(
                "KILN_REPLICATION_PASSWORD",
                rpw,
                false,
                &[&pp("replication-password")],
            ));
        }
        if pg.version < 18 {
            // From 18 on, the image's PGDATA is a folder inside the volume already.
            env.push(
                Node::map()
                    .with("name", Node::str("PGDATA"))
                    .with("value", Node::str("/var/lib/postgresql/data/pgdata"))
                    .from(&[&pp("version")])
                    .comment(
                        "a folder inside the volume: its root holds lost+found, which initdb refuses",
                    ),
            );
        }
        let isready = Node::strs([
            "pg_isready".to_owned(),
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            pg.port.to_string(),
            "-U".into(),
            pg.user.clone(),
            "-d".into(),
            pg.database.clone(),
        ]);
        let c = Node::map()
            .with("name", Node::str("postgres"))
            .with("image", Node::str(&pg.image).from(&[&pp("image")]))
            .with("imagePullPolicy", self.pull_policy(&pg.image))
            .with("args", args)
            .with(
                "ports",
                Node::seq().item(
                    Node::map()
                        .with("name", Node::str("postgres"))
                        .with("containerPort", Node::int(pg.port))
                        .with("protocol", Node::str("TCP"))
                        .from(&[&pp("port")]),
                ),
            )
            .with("env", env)
            .with(
                "readinessProbe",
                Node::map()
                    .with("exec", Node::map().with("command", isready))
                    .with("initialDelaySeconds", Node::int(5))
                    .with("periodSeconds", Node::int(10))
                    .with("timeoutSeconds", Node::int(5)),
            )
            .with(
                "livenessProbe",
                Node::map()
                    .with("tcpSocket", Node::map().with("port", Node::str("postgres")))
                    .with("initialDelaySeconds", Node::int(30))
                    .with("periodSeconds", Node::int(30))
                    .with("timeoutSeconds", Node::int(5))
                    .with("failureThreshold", Node::int(6)),
            );
        let mut c = c;
        if let Some(r) = resources(&pp("resources"), &pg.resources) {
            c.set("resources", r);
        }
        let mut mounts = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("data"))
                    .with("mountPath", Node::str(postgres_data_mount(pg)))
                    .from(&[&pp("version")]),
            )
            .item(
                Node::map()
                    .with("name", Node::str("run"))
                    .with("mountPath", Node::str("/var/run/postgresql")),
            )
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("mountPath", Node::str("/tmp")),
            )
            .item(
                Node::map()
                    .with("name", Node::str("shm"))
                    .with("mountPath", Node::str("/dev/shm")),
            )
            .item(
                Node::map()
                    .with("name", Node::str("init"))
                    .with("mountPath", Node::str("/docker-entrypoint-initdb.d"))
                    .with("readOnly", Node::bool(true))
                    .from(&[&pp("user"), &pp("database"), &pp("extensions")]),
            );
        let file_keys = crate::postgres::file_secrets(model, pg);
        if !file_keys.is_empty() {
            mounts.push(
                Node::map()
                    .with("name", Node::str("secrets"))
                    .with("mountPath", Node::str(SECRET_FILES_DIR))
                    .with("readOnly", Node::bool(true))
                    .from(&[&pp("password")]),
            );
        }
        c.set("volumeMounts", mounts);
        c.set(
            "securityContext",
            Self::container_security(true, &[], &[], &[]),
        );
        let mut volumes = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("run"))
                    .with("emptyDir", Node::map()),
            )
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("emptyDir", Node::map()),
            )
            .item(
                Node::map()
                    .with("name", Node::str("shm"))
                    .with(
                        "emptyDir",
                        Node::map()
                            .with("medium", Node::str("Memory"))
                            .with("sizeLimit", Node::str("256Mi")),
                    )
                    .comment("parallel queries use /dev/shm; the runtime's default is 64Mi"),
            )
            .item(
                Node::map()
                    .with("name", Node::str("init"))
                    .with(
                        "configMap",
                        Node::map()
                            .with("name", Node::str(init_name(name)))
                            .with(
                                "items",
                                Node::seq().item(
                                    Node::map()
                                        .with("key", Node::str("init.sh"))
                                        .with("path", Node::str(crate::postgres::init_file(name))),
                                ),
                            ),
                    )
                    .comment("the app's role, database, grants and extensions, made when the volume is initialised"),
            );
        if !file_keys.is_empty() {
            let mut items = Node::seq();
            for key in &file_keys {
                items.push(
                    Node::map()
                        .with("key", Node::str(key))
                        .with("path", Node::str(key)),
                );
            }
            volumes.push(
                Node::map()
                    .with("name", Node::str("secrets"))
                    .with(
                        "secret",
                        Node::map()
                            .with("secretName", Node::str(secrets_name(model)))
                            .with("items", items)
                            .with(
                                "defaultMode",
                                Node::int(0o440).comment(
                                    "0440 (decimal here): the pod's group (fsGroup) reads it",
                                ),
                            ),
                    )
                    .from(&[&pp("password")]),
            );
        }
        let pod = self.data_pod(
            K8S_POSTGRES_UID,
            c,
            volumes,
            "a high uid of its own (the image runs as any user: nss_wrapper, PGDATA inside the volume)",
        );
        let storage = claim_size(pg);
        self.stateful_set(name, "database", &base, pod, &storage, 120);
        let script = crate::postgres::init_script(model, name, crate::postgres::Flavor::Container)
            .finish("init.sh");
        let init = init_name(name);
        let node = self
            .resource("v1", "ConfigMap", self.metadata(&init, "database"))
            .with(
                "data",
                Node::map().with(
                    "init.sh",
                    Node::str(script.text).from(&[&pp("user"), &pp("database"), &pp("extensions")]),
                ),
            );
        self.add("ConfigMap", &init, node.from(&[&base]));
        if pg.backup.is_some() {
            self.postgres_backup(name);
        }
        self.headless_service(name, "database", "postgres", pg.port, &pp("port"), &base);

        if pg.pooler.is_some() {
            self.pooler(name);
        }
    }

    /// The scheduled dump of postgres `name`: a CronJob running kiln's dump once in the
    /// server's image, as the app's role (it owns every object), into a claim of its own.
    fn postgres_backup(&mut self, name: &str) {
        let model = self.model;
        let pg = &model.postgres[name];
        let base = pointer(&["postgres", name]);
        let bp = format!("{base}/backup");
        let pp = |f: &str| format!("{base}/{f}");
        let job = crate::postgres::backup_name(name);
        let dir = "/backups";
        let script = crate::postgres::container_backup_script(pg, dir);
        let mut env = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("KILN_BACKUP_ONCE"))
                    .with("value", Node::str("1")),
            )
            .item(
                Node::map()
                    .with("name", Node::str("PGHOST"))
                    .with("value", Node::str(name)),
            )
            .item(
                Node::map()
                    .with("name", Node::str("PGPORT"))
                    .with("value", Node::str(pg.port.to_string()))
                    .from(&[&pp("port")]),
            )
            .item(
                Node::map()
                    .with("name", Node::str("PGUSER"))
                    .with("value", Node::str(k8s_escape(&pg.user)))
                    .from(&[&pp("user")]),
            )
            .item(
                Node::map()
                    .with("name", Node::str("PGDATABASE"))
                    .with("value", Node::str(k8s_escape(&pg.database)))
                    .from(&[&pp("database")]),
            );
        let file_secret = pg
            .password
            .as_ref()
            .filter(|pw| model.secrets.get(*pw).is_some_and(|x| x.as_file));
        let mut mounts = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("backups"))
                    .with("mountPath", Node::str(dir)),
            )
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("mountPath", Node::str("/tmp")),
            );
        let mut volumes = Node::seq()
            .item(Node::map().with("name", Node::str("backups")).with(
                "persistentVolumeClaim",
                Node::map().with("claimName", Node::str(&job)),
            ))
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("emptyDir", Node::map()),
            );
        match (&pg.password, file_secret) {
            (Some(pw), Some(_)) => {
                env.push(
                    Node::map()
                        .with("name", Node::str("PGPASSWORD_FILE"))
                        .with("value", Node::str(format!("{SECRET_FILES_DIR}/{pw}")))
                        .from(&[&pp("password")]),
                );
                mounts.push(
                    Node::map()
                        .with("name", Node::str("secrets"))
                        .with("mountPath", Node::str(SECRET_FILES_DIR))
                        .with("readOnly", Node::bool(true)),
                );
                volumes.push(
                    Node::map().with("name", Node::str("secrets")).with(
                        "secret",
                        Node::map()
                            .with("secretName", Node::str(secrets_name(model)))
                            .with(
                                "items",
                                Node::seq().item(
                                    Node::map()
                                        .with("key", Node::str(pw))
                                        .with("path", Node::str(pw)),
                                ),
                            )
                            .with("defaultMode", Node::int(0o440)),
                    ),
                );
            }
            (Some(pw), None) => {
                env.push(self.secret_ref("PGPASSWORD", pw, false, &[&pp("password")]))
            }
            (None, _) => {}
        }
        let container = Node::map()
            .with("name", Node::str("backup"))
            .with("image", Node::str(&pg.image).from(&[&pp("image")]))
            .with("imagePullPolicy", self.pull_policy(&pg.image))
            .with(
                "command",
                Node::strs(["/bin/sh".to_owned(), "-c".into(), script])
                    .from(&[&bp, &format!("{bp}/keep"), &format!("{bp}/verify")])
                    .comment("pg_dump, the proof it restores (pg_restore --list), the rename and the pruning"),
            )
            .with("env", env)
            .with(
                "resources",
                Node::map()
                    .with("requests", Node::map().with("cpu", Node::str("100m")).with("memory", Node::str("128Mi")))
                    .with("limits", Node::map().with("cpu", Node::str("1")).with("memory", Node::str("512Mi")))
                    .comment("kiln's defaults for a dump"),
            )
            .with("volumeMounts", mounts)
            .with("securityContext", Self::container_security(true, &[], &[], &[]));
        let mut pod = self.data_pod(
            K8S_POSTGRES_UID,
            container,
            volumes,
            "the database's uid: fsGroup makes the claim writable",
        );
        pod.set("restartPolicy", Node::str("OnFailure"));
        let spec = Node::map()
            .with(
                "schedule",
                Node::str(crate::postgres::cron_schedule(pg))
                    .from(&[&format!("{bp}/every"), &format!("{bp}/at")]),
            )
            .with("timeZone", Node::str("Etc/UTC"))
            .with(
                "concurrencyPolicy",
                Node::str("Forbid").comment("one dump at a time"),
            )
            .with("startingDeadlineSeconds", Node::int(3600))
            .with("successfulJobsHistoryLimit", Node::int(3))
            .with("failedJobsHistoryLimit", Node::int(3))
            .with(
                "jobTemplate",
                Node::map().with(
                    "spec",
                    Node::map().with("backoffLimit", Node::int(2)).with(
                        "template",
                        Node::map()
                            .with(
                                "metadata",
                                Node::map().with("labels", self.labels(&job, "backup")),
                            )
                            .with("spec", pod),
                    ),
                ),
            );
        let node = self
            .resource("batch/v1", "CronJob", self.metadata(&job, "backup"))
            .with("spec", spec);
        self.add("CronJob", &job, node.from(&[&bp]));
        let storage = claim_size(pg);
        let claim = self
            .resource("v1", "PersistentVolumeClaim", self.metadata(&job, "backup"))
            .with(
                "spec",
                Node::map()
                    .with("accessModes", Node::strs(["ReadWriteOnce"]))
                    .with(
                        "resources",
                        Node::map().with(
                            "requests",
                            Node::map().with(
                                "storage",
                                Node::str(storage)
                                    .from(&[&pp("storage")])
                                    .comment("the database's size: room for the kept dumps"),
                            ),
                        ),
                    ),
            );
        self.add("PersistentVolumeClaim", &job, claim.from(&[&bp]));
    }

    fn data_pod(&mut self, uid: u32, container: Node, volumes: Node, why: &str) -> Node {
        Node::map()
            .with("serviceAccountName", Node::str(&self.model.project.name))
            .with("automountServiceAccountToken", Node::bool(false))
            .with("enableServiceLinks", Node::bool(false))
            .with(
                "securityContext",
                self.pod_security(uid, uid, &[]).comment(why),
            )
            .with("containers", Node::seq().item(container))
            .with("volumes", volumes)
    }

    fn stateful_set(
        &mut self,
        name: &str,
        component: &str,
        base: &str,
        mut pod: Node,
        storage: &str,
        grace: i64,
    ) {
        pod.set("terminationGracePeriodSeconds", Node::int(grace));
        let spec = Node::map()
            .with("serviceName", Node::str(name))
            .with("replicas", Node::int(1))
            .with(
                "selector",
                Node::map().with("matchLabels", self.selector(name)),
            )
            .with(
                "template",
                Node::map()
                    .with(
                        "metadata",
                        Node::map().with("labels", self.labels(name, component)),
                    )
                    .with("spec", pod),
            )
            .with(
                "volumeClaimTemplates",
                Node::seq().item(
                    Node::map()
                        .with("metadata", Node::map().with("name", Node::str("data")))
                        .with(
                            "spec",
                            Node::map()
                                .with("accessModes", Node::strs(["ReadWriteOnce"]))
                                .with(
                                    "resources",
                                    Node::map().with(
                                        "requests",
                                        Node::map().with(
                                            "storage",
                                            Node::str(storage)
                                                .comment("kiln's default: the spec has no size"),
                                        ),
                                    ),
                                ),
                        ),
                ),
            );
        let node = self
            .resource("apps/v1", "StatefulSet", self.metadata(name, component))
            .with("spec", spec);
        self.add("StatefulSet", name, node.from(&[base]));
    }

    fn headless_service(
        &mut self,
        name: &str,
        component: &str,
        port_name: &str,
        port: u16,
        port_ptr: &str,
        base: &str,
    ) {
        let node = self.resource("v1", "Service", self.metadata(name, component)).with(
            "spec",
            Node::map()
                .with("clusterIP", Node::str("None").comment("headless: the name resolves to the pod (and is the StatefulSet's serviceName)"))
                .with("selector", self.selector(name))
                .with(
                    "ports",
                    Node::seq().item(
                        Node::map()
                            .with("name", Node::str(port_name))
                            .with("port", Node::int(port))
                            .with("targetPort", Node::str(port_name))
                            .with("protocol", Node::str("TCP"))
                            .from(&[port_ptr]),
                    ),
                ),
        );
        self.add("Service", name, node.from(&[base]));
    }

    fn pooler(&mut self, pg_name: &str) {
        let model = self.model;
        let pg = &model.postgres[pg_name];
        let pool = pg.pooler.as_ref().expect("called for a pooler");
        let base = format!("{}/pooler", pointer(&["postgres", pg_name]));
        let pl = |f: &str| format!("{base}/{f}");
        let name = pool.name.clone();
        let files = pgbouncer_files(model).artifacts;
        let ini_name = pooler_ini_name(&files, pg_name, pool);
        let ini = files.iter().find(|a| a.path == ini_name);

        if let Some(ini) = ini {
            let mut data = Node::map();
            data.set("pgbouncer.ini", Node::str(&ini.text).from(&[&base]));
            let cm = self
                .resource("v1", "ConfigMap", self.metadata(&name, "pooler"))
                .with("data", data);
            self.add("ConfigMap", &name, cm.from(&[&base]));
        }
        let auth_file = pool.auth_file.clone();
        let userlist = userlist_name(model);
        let c = Node::map()
            .with("name", Node::str("pgbouncer"))
            .with("image", Node::str(&pool.image).from(&[&pl("image")]))
            .with("imagePullPolicy", self.pull_policy(&pool.image))
            .with(
                "command",
                Node::strs(["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"])
                    .comment("the files are mounted: no entrypoint generates them"),
            )
            .with(
                "ports",
                Node::seq().item(
                    Node::map()
                        .with("name", Node::str("pgbouncer"))
                        .with("containerPort", Node::int(pool.port))
                        .with("protocol", Node::str("TCP"))
                        .from(&[&pl("port")]),
                ),
            )
            .with(
                "readinessProbe",
                Node::map()
                    .with(
                        "tcpSocket",
                        Node::map().with("port", Node::str("pgbouncer")),
                    )
                    .with("initialDelaySeconds", Node::int(2))
                    .with("periodSeconds", Node::int(10))
                    .with("timeoutSeconds", Node::int(3)),
            )
            .with(
                "livenessProbe",
                Node::map()
                    .with(
                        "tcpSocket",
                        Node::map().with("port", Node::str("pgbouncer")),
                    )
                    .with("initialDelaySeconds", Node::int(10))
                    .with("periodSeconds", Node::int(30))
                    .with("timeoutSeconds", Node::int(5))
                    .with("failureThreshold", Node::int(6)),
            );
        let mut c = c;
        if let Some(r) = resources(&pl("resources"), &pool.resources) {
            c.set("resources", r);
        }
        c.set(
            "volumeMounts",
            Node::seq()
                .item(
                    Node::map()
                        .with("name", Node::str("config"))
                        .with("mountPath", Node::str("/etc/pgbouncer/pgbouncer.ini"))
                        .with("subPath", Node::str("pgbouncer.ini"))
                        .with("readOnly", Node::bool(true)),
                )
                .item(
                    Node::map()
                        .with("name", Node::str("userlist"))
                        .with("mountPath", Node::str(&auth_file))
                        .with("subPath", Node::str("userlist.txt"))
                        .with("readOnly", Node::bool(true))
                        .from(&[&pl("auth-file")]),
                )
                .item(
                    Node::map()
                        .with("name", Node::str("tmp"))
                        .with("mountPath", Node::str("/tmp")),
                ),
        );
        c.set(
            "securityContext",
            Self::container_security(true, &[], &[], &[]),
        );
        let volumes = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("config"))
                    .with("configMap", Node::map().with("name", Node::str(&name))),
            )
            .item(
                Node::map()
                    .with("name", Node::str("userlist"))
                    .with(
                        "secret",
                        Node::map().with("secretName", Node::str(&userlist)).with(
                            "defaultMode",
                            Node::int(0o440).comment("0440: readable by the pod's group only"),
                        ),
                    )
                    .from(&[&pl("auth-file")])
                    .comment(format!(
                        "create it: userlist.txt with the line \"{}\" \"<the DB_PASSWORD value>\"",
                        pg.user
                    )),
            )
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("emptyDir", Node::map()),
            );
        let mut pod = self.data_pod(
            K8S_PGBOUNCER_UID,
            c,
            volumes,
            "a high uid of its own: pgbouncer only reads its mounted files",
        );
        pod.set("terminationGracePeriodSeconds", Node::int(30));
        let mut template_meta = Node::map().with("labels", self.labels(&name, "pooler"));
        if let Some(ini) = ini {
            template_meta.set(
                "annotations",
                Node::map().with(
                    "kiln.dev/config-hash",
                    Node::str(format!("{:016x}", fnv1a(ini.text.as_bytes())))
                        .comment("rolls the pods when pgbouncer.ini changes"),
                ),
            );
        }
        let spec = Node::map()
            .with("replicas", Node::int(1))
            .with("revisionHistoryLimit", Node::int(5))
            .with(
                "selector",
                Node::map().with("matchLabels", self.selector(&name)),
            )
            .with(
                "template",
                Node::map()
                    .with("metadata", template_meta)
                    .with("spec", pod),
            );
        let node = self
            .resource("apps/v1", "Deployment", self.metadata(&name, "pooler"))
            .with("spec", spec);
        self.add("Deployment", &name, node.from(&[&base]));
        let svc = self
            .resource("v1", "Service", self.metadata(&name, "pooler"))
            .with(
                "spec",
                Node::map()
                    .with("type", Node::str("ClusterIP"))
                    .with("selector", self.selector(&name))
                    .with(
                        "ports",
                        Node::seq().item(
                            Node::map()
                                .with("name", Node::str("pgbouncer"))
                                .with("port", Node::int(pool.port))
                                .with("targetPort", Node::str("pgbouncer"))
                                .with("protocol", Node::str("TCP"))
                                .from(&[&pl("port")]),
                        ),
                    ),
            );
        self.add("Service", &name, svc.from(&[&base]));
    }

    fn redis(&mut self, name: &str) {
        let model = self.model;
        let r = &model.redis[name];
        let base = pointer(&["redis", name]);
        let rp = |f: &str| format!("{base}/{f}");
        if r.replicas > 0 {
            self.unsupported(rp("replicas"), format!("{} read replica(s) of redis `{name}`: failing over and re-pointing replicas needs a controller, which plain manifests are not; kiln emits the primary and leaves the group to an operator or chart (Redis Sentinel in the Bitnami chart, Spotahome's redis-operator)", r.replicas));
        }
        if r.sentinel.is_some() {
            self.unsupported(rp("sentinel"), format!("the sentinels of redis `{name}` need the replicas above: `${{{name}.sentinel-url}}` names sentinels these manifests do not run"));
        }
        let ptrs = redis_pointers(name, r);
        let mut c = Node::map()
            .with("name", Node::str("redis"))
            .with("image", Node::str(&r.image).from(&[&rp("image")]))
            .with("imagePullPolicy", self.pull_policy(&r.image));
        match &r.password {
            Some(pw) => {
                c.set(
                    "command",
                    Node::strs(["sh".to_owned(), "-c".into(), k8s_escape(&redis_script(name, r, RedisNode::Alone, "REDISCLI_AUTH", "$"))])
                        .from_all(&ptrs)
                        .comment("requirepass arrives on stdin (`redis-server -`), so the password is in no command line"),
                );
                c.set(
                    "env",
                    Node::seq().item(self.secret_ref(
                        "REDISCLI_AUTH",
                        pw,
                        false,
                        &[&rp("password")],
                    )),
                );
            }
            None => {
                let mut cmd = vec!["redis-server".to_owned()];
                for (flag, value, _) in redis_options(name, r) {
                    cmd.push(flag);
                    cmd.push(k8s_escape(&value));
                }
                c.set("command", Node::strs(cmd).from_all(&ptrs));
            }
        }
        c.set(
            "ports",
            Node::seq().item(
                Node::map()
                    .with("name", Node::str("redis"))
                    .with("containerPort", Node::int(r.port))
                    .with("protocol", Node::str("TCP"))
                    .from(&[&rp("port")]),
            ),
        );
        c.set(
            "readinessProbe",
            Node::map()
                .with(
                    "exec",
                    Node::map().with(
                        "command",
                        Node::strs([
                            "sh".to_owned(),
                            "-c".into(),
                            format!("redis-cli -p {} ping | grep -q PONG", r.port),
                        ]),
                    ),
                )
                .with("initialDelaySeconds", Node::int(5))
                .with("periodSeconds", Node::int(10))
                .with("timeoutSeconds", Node::int(5)),
        );
        c.set(
            "livenessProbe",
            Node::map()
                .with("tcpSocket", Node::map().with("port", Node::str("redis")))
                .with("initialDelaySeconds", Node::int(15))
                .with("periodSeconds", Node::int(30))
                .with("timeoutSeconds", Node::int(5))
                .with("failureThreshold", Node::int(6)),
        );
        if let Some(res) = resources(&rp("resources"), &r.resources) {
            c.set("resources", res);
        }
        c.set(
            "volumeMounts",
            Node::seq()
                .item(
                    Node::map()
                        .with("name", Node::str("data"))
                        .with("mountPath", Node::str("/data")),
                )
                .item(
                    Node::map()
                        .with("name", Node::str("tmp"))
                        .with("mountPath", Node::str("/tmp")),
                ),
        );
        c.set(
            "securityContext",
            Self::container_security(true, &[], &[], &[]),
        );
        let volumes = Node::seq().item(
            Node::map()
                .with("name", Node::str("tmp"))
                .with("emptyDir", Node::map()),
        );
        let pod = self.data_pod(
            K8S_REDIS_UID,
            c,
            volumes,
            "a high uid of its own: redis needs only a writable /data (fsGroup)",
        );
        // Room for the RDB/AOF files: twice maxmemory, at least 1Gi.
        let gi = r.maxmemory.map_or(1, |m| (2 * m).div_ceil(1 << 30).max(1));
        self.stateful_set(name, "cache", &base, pod, &format!("{gi}Gi"), 60);
        self.headless_service(name, "cache", "redis", r.port, &rp("port"), &base);
    }

    fn network_policies(&mut self) {
        let model = self.model;
        let ns = model.kubernetes.namespace.clone();
        let deny = Node::map()
            .with("apiVersion", Node::str("networking.k8s.io/v1"))
            .with("kind", Node::str("NetworkPolicy"))
            .with(
                "metadata",
                Node::map()
                    .with("name", Node::str("default-deny"))
                    .with("namespace", Node::str(&ns).from(&["/kubernetes/namespace"]))
                    .with("labels", Node::map().with("app.kubernetes.io/part-of", Node::str(&model.project.name)).with("app.kubernetes.io/managed-by", Node::str("kiln"))),
            )
            .with(
                "spec",
                Node::map()
                    .with("podSelector", Node::map().comment("every pod of the namespace: no ingress unless a policy below allows it"))
                    .with("policyTypes", Node::strs(["Ingress"])),
            );
        self.add("NetworkPolicy", "default-deny", deny);

        // Web services from the ingress controller.
        let controller_ns = if model.kubernetes.ingress_class == "nginx" {
            "ingress-nginx".to_owned()
        } else {
            self.unsupported(
                "/kubernetes/ingress-class".into(),
                format!("kiln assumes the `{0}` ingress controller runs in namespace `{0}` (the web services accept traffic from it only)", model.kubernetes.ingress_class),
            );
            model.kubernetes.ingress_class.clone()
        };
        for (name, s) in &model.services {
            let Some(port) = s
                .port
                .filter(|_| s.kind == ServiceKind::Web && is_upstream(model, name))
            else {
                continue;
            };
            let from = Node::seq().item(Node::map().with(
                "namespaceSelector",
                Node::map().with(
                    "matchLabels",
                    Node::map().with("kubernetes.io/metadata.name", Node::str(&controller_ns)),
                ),
            ));
            let mut ports = vec![(port, sp(name, "port"))];
            if let Some(first) = sidecar_pointers(model, name).into_iter().next() {
                ports.push((crate::nginx::STATIC_SIDECAR_PORT, first));
            }
            self.allow(name, "web", from, &ports, "the ingress controller only");
        }
        // Datastores from the pods that use them.
        for (pg_name, pg) in &model.postgres {
            let base = pointer(&["postgres", pg_name]);
            let backup = pg
                .backup
                .as_ref()
                .map(|_| crate::postgres::backup_name(pg_name));
            match &pg.pooler {
                Some(pool) => {
                    let mut direct = vec![pool.name.as_str()];
                    direct.extend(backup.as_deref());
                    let from = self.pods(&direct);
                    self.allow(
                        pg_name,
                        "database",
                        from,
                        &[(pg.port, format!("{base}/port"))],
                        "its pgbouncer only",
                    );
                    let clients = clients(model, pg_name);
                    let from = self.pods(&clients);
                    self.allow(
                        &pool.name,
                        "pooler",
                        from,
                        &[(pool.port, format!("{base}/pooler/port"))],
                        "the app services that use it only",
                    );
                }
                None => {
                    let mut clients = clients(model, pg_name);
                    clients.extend(backup.as_deref());
                    let from = self.pods(&clients);
                    self.allow(
                        pg_name,
                        "database",
                        from,
                        &[(pg.port, format!("{base}/port"))],
                        "the app services that use it only",
                    );
                }
            }
        }
        for (name, r) in &model.redis {
            let clients = clients(model, name);
            let from = self.pods(&clients);
            self.allow(
                name,
                "cache",
                from,
                &[(r.port, pointer(&["redis", name, "port"]))],
                "the app services that use it only",
            );
        }
    }

    fn pods(&self, names: &[&str]) -> Node {
        let mut seq = Node::seq();
        for n in names {
            seq.push(
                Node::map()
                    .with(
                        "podSelector",
                        Node::map().with("matchLabels", self.selector(n)),
                    )
                    .from(&[&sp(n, "uses")]),
            );
        }
        seq
    }

    fn allow(
        &mut self,
        name: &str,
        component: &str,
        from: Node,
        ports: &[(u16, String)],
        who: &str,
    ) {
        let mut rule = Node::map();
        if from.is_empty() {
            // No client: the policy selects the pods and allows nothing.
        } else {
            rule.set("from", from);
            let mut list = Node::seq();
            for (port, ptr) in ports {
                list.push(
                    Node::map()
                        .with("protocol", Node::str("TCP"))
                        .with("port", Node::int(*port))
                        .from(&[ptr]),
                );
            }
            rule.set("ports", list);
        }
        let ingress = if rule.is_empty() {
            Node::seq()
        } else {
            Node::seq().item(rule)
        };
        let spec = Node::map()
            .with(
                "podSelector",
                Node::map().with("matchLabels", self.selector(name)),
            )
            .with("policyTypes", Node::strs(["Ingress"]))
            .with(
                "ingress",
                ingress.comment(format!("`{name}` accepts connections from {who}")),
            );
        let pname = format!("{name}-ingress");
        let node = self
            .resource(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                self.metadata(&pname, component),
            )
            .with("spec", spec);
        self.add("NetworkPolicy", &pname, node);
    }

    fn finish(self) -> Output {
        let model = self.model;
        let header = vec![header_text(model)];
        let mut artifacts: Vec<Artifact> = Vec::new();
        let mut names = Vec::new();
        for (file, node) in &self.files {
            names.push(file.clone());
            artifacts.push(yaml::document(format!("k8s/{file}"), &header, node));
        }
        // kustomization.yaml: every file, and the Secrets it expects (kiln never holds their values).
        let mut secret_keys: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        for (svc, s) in &model.services {
            for (var, v) in &s.env {
                for sec in v.secrets() {
                    let key = if matches!(v, EnvValue::Secret(_)) {
                        var.as_str()
                    } else {
                        sec
                    };
                    let optional = model.secrets.get(sec).is_some_and(|x| x.optional);
                    secret_keys
                        .entry(key.to_owned())
                        .or_insert((optional, Vec::new()))
                        .1
                        .push(env_pointer(svc, var));
                }
            }
        }
        for (name, pg) in &model.postgres {
            if let Some(pw) = &pg.password {
                secret_keys
                    .entry(pw.clone())
                    .or_insert((false, Vec::new()))
                    .1
                    .push(pointer(&["postgres", name, "password"]));
            }
        }
        for (name, r) in &model.redis {
            if let Some(pw) = &r.password {
                secret_keys
                    .entry(pw.clone())
                    .or_insert((false, Vec::new()))
                    .1
                    .push(pointer(&["redis", name, "password"]));
            }
        }
        let mut resources = Node::seq();
        for n in &names {
            resources.push(Node::str(n));
        }
        let root = Node::map()
            .with("apiVersion", Node::str("kustomize.config.k8s.io/v1beta1"))
            .with("kind", Node::str("Kustomization"))
            .with("resources", resources);
        let mut w = crate::Writer::new();
        w.line(format!("# {}", header_text(model)), &[]);
        if !secret_keys.is_empty() {
            w.line(
                format!("# Needs the Secret `{}` in namespace {} (kiln never holds secret values), keys:", secrets_name(model), model.kubernetes.namespace),
                &["/secrets"],
            );
            for (k, (optional, from)) in &secret_keys {
                let from: Vec<&str> = from.iter().map(String::as_str).collect();
                w.line(
                    format!("#   {k}{}", if *optional { " (optional)" } else { "" }),
                    &from,
                );
            }
        }
        for (name, pg) in &model.postgres {
            if pg.pooler.is_some() {
                w.line(
                    format!("# Needs the Secret `{}` with key userlist.txt (pgbouncer's auth_file): \"{}\" \"<password>\"", userlist_name(model), pg.user),
                    &[&pointer(&["postgres", name, "pooler", "auth-file"])],
                );
            }
        }
        yaml::write(&mut w, &root);
        artifacts.push(w.finish("k8s/kustomization.yaml"));
        Output {
            artifacts,
            unsupported: self.unsupported,
            ..Default::default()
        }
    }
}

/// requests and limits from the model.
fn resources(ptr: &str, r: &Resources) -> Option<Node> {
    let mut requests = Node::map();
    if let Some(c) = r.cpu_request {
        requests.set(
            "cpu",
            Node::str(cpu_quantity(c))
                .from(&[&format!("{ptr}/cpu-request"), &format!("{ptr}/cpu")]),
        );
    }
    if let Some(m) = r.memory_request {
        requests.set(
            "memory",
            Node::str(memory_quantity(m))
                .from(&[&format!("{ptr}/memory-request"), &format!("{ptr}/memory")]),
        );
    }
    let mut limits = Node::map();
    if let Some(c) = r.cpu {
        limits.set(
            "cpu",
            Node::str(cpu_quantity(c)).from(&[&format!("{ptr}/cpu")]),
        );
    }
    if let Some(m) = r.memory {
        limits.set(
            "memory",
            Node::str(memory_quantity(m)).from(&[&format!("{ptr}/memory")]),
        );
    }
    let mut out = Node::map();
    if !requests.is_empty() {
        out.set("requests", requests);
    }
    if !limits.is_empty() {
        out.set("limits", limits);
    }
    (!out.is_empty()).then_some(out)
}

/// 64-bit FNV-1a: a stable content hash for the config-hash annotation.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_quantity(500), "500m");
        assert_eq!(cpu_quantity(2000), "2");
        assert_eq!(memory_quantity(4 << 30), "4Gi");
        assert_eq!(memory_quantity(128 << 20), "128Mi");
        assert_eq!(memory_quantity(1000), "1000");
    }

    #[test]
    fn label_values() {
        assert_eq!(label_value("web"), "web");
        assert_eq!(
            label_value(&format!("{}.example", "a".repeat(60))),
            "a".repeat(60) + ".ex"
        );
        assert_eq!(
            label_value(&format!("{}-b", "a".repeat(62))),
            "a".repeat(62)
        );
    }

    #[test]
    fn dollar_escaping() {
        assert_eq!(k8s_escape("a$b"), "a$b");
        assert_eq!(k8s_escape("$(X)"), "$$(X)");
        assert_eq!(k8s_escape("$$"), "$$$");
        assert_eq!(k8s_escape("x$"), "x$");
    }
}
