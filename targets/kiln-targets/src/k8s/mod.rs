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

mod app;
mod data;
mod ingress;
mod network;

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
