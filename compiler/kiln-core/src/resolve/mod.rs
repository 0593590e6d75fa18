//! Resolution: an environment's layers (project policies, its `extends` chain,
//! presets) merged and lowered into the typed [`Model`], with wiring, defaults,
//! reference checks and the provenance of every value.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, did_you_mean, normalize, unknown_name_help};
use crate::merge::merge;
use crate::model::*;
use crate::project::Project;
use crate::schema::{self, parse_cpu, parse_duration, parse_size};
use crate::syntax::{Layer, Node, Scalar, Value};

mod data;
mod depends;
mod host;
mod patch;
mod policies;
pub mod references;
mod service;
mod site;

/// Resolves one environment. Returns the model (when the spec is sound enough
/// to build one) and every diagnostic found.
pub fn resolve(project: &Project, env: &str) -> (Option<Model>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let Some(decl) = project.environments.get(env) else {
        let names = project.compiled_environments();
        diags.push(
            Diagnostic::error(
                "unknown-environment",
                format!("no environment named `{env}`"),
            )
            .with_help(if names.is_empty() {
                "declare one: `environment production { tier production … }`".to_owned()
            } else {
                unknown_name_help(env, "environment", &names)
            }),
        );
        return (None, diags);
    };
    let Some(chain) = project.chain(env) else {
        return (None, diags); // dangling extends or cycle: reported by project::load
    };

    // Phase 1 finds each node's preset from the merged layers; phase 2 merges again
    // with the presets as the lowest layer, so `(remove)` and `(replace)` in any
    // environment reach preset content too.
    let mut scratch = Vec::new();
    let first_pass = layer(project, &chain, Vec::new(), &mut scratch);
    let presets = preset_layer(project, &first_pass, &mut diags);
    let merged = layer(project, &chain, presets, &mut diags);

    let celery = merged.iter().filter(|n| n.name == "service").any(|s| {
        s.child("run")
            .and_then(|r| r.args.first())
            .and_then(|a| a.value.as_str())
            == Some("celery")
    });
    let mut lower = Lower {
        project,
        diags,
        prov: Provenance::default(),
        celery,
        images: BTreeMap::new(),
    };
    let model = lower.environment(decl.name.as_str(), decl.name_span, &merged);
    let mut diags = lower.diags;
    normalize(&mut diags);
    (model, diags)
}

fn default_preset(kind: &str) -> Option<&'static str> {
    match kind {
        "postgres" => Some("postgres"),
        "redis" => Some("redis"),
        "site" => Some("nginx-site"),
        "pooler" => Some("pgbouncer"),
        _ => None,
    }
}

/// Merges project policies and the environment chain over `base`.
fn layer(
    project: &Project,
    chain: &[&crate::project::EnvDecl],
    base: Vec<Node>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Node> {
    let mut merged = base;
    if let Some(first) = project.policies.first() {
        let policies = Node {
            name: "policies".to_owned(),
            name_span: first.name_span,
            span: first.span,
            annotation: None,
            args: Vec::new(),
            children: project.policies.clone(),
            from_prop: false,
            layer: Layer::from("project"),
            overrides: Vec::new(),
        };
        merge(
            &mut merged,
            std::slice::from_ref(&policies),
            schema::ENV_BODY,
            None,
            diags,
        );
    }
    for env in chain {
        merge(&mut merged, &env.body, schema::ENV_BODY, None, diags);
    }
    merged
}

/// The preset layer: for every node that has a preset (its own `preset=`, or
/// its kind's default), a node of the same name and key holding the preset's body.
fn preset_layer(project: &Project, merged: &[Node], diags: &mut Vec<Diagnostic>) -> Vec<Node> {
    let mut out = Vec::new();
    for node in merged {
        let kind = node.name.as_str();
        if !matches!(kind, "service" | "postgres" | "redis" | "site") {
            continue;
        }
        let mut children = preset_children(project, node, kind, diags).unwrap_or_default();
        if kind == "postgres"
            && let Some(pooler) = node.child("pooler")
            && let Some(body) = preset_children(project, pooler, "pooler", diags)
        {
            children.retain(|c| c.name != "pooler");
            children.push(Node {
                children: body,
                ..shell(pooler)
            });
        }
        if !children.is_empty() {
            out.push(Node {
                children,
                ..shell(node)
            });
        }
    }
    out
}

/// A node's identity (name, key, spans) without its content.
fn shell(node: &Node) -> Node {
    Node {
        name: node.name.clone(),
        name_span: node.name_span,
        span: node.span,
        annotation: None,
        args: node.args.clone(),
        children: Vec::new(),
        from_prop: false,
        layer: node.layer.clone(),
        overrides: Vec::new(),
    }
}

/// The body of the preset a node uses, checking that it exists and fits.
fn preset_children(
    project: &Project,
    node: &Node,
    kind: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<Node>> {
    let explicit = node
        .child("preset")
        .and_then(|p| p.args.first())
        .and_then(|v| v.value.as_str().map(|s| (s.to_owned(), v.span)));
    let name = match &explicit {
        Some((name, _)) => name.clone(),
        None => default_preset(kind)?.to_owned(),
    };
    let Some(preset) = project.presets.get(&name) else {
        if let Some((name, span)) = &explicit {
            let candidates: Vec<&str> = project
                .presets
                .values()
                .filter(|p| p.kind == kind)
                .map(|p| p.name.as_str())
                .collect();
            diags.push(
                Diagnostic::error("unknown-reference", format!("unknown preset `{name}`"))
                    .with_label(*span, "no such preset")
                    .with_help(unknown_name_help(name, "preset", &candidates)),
            );
        }
        return None;
    };
    if preset.kind != kind {
        let span = explicit.as_ref().map_or(node.name_span, |e| e.1);
        diags.push(
            Diagnostic::error(
                "type-mismatch",
                format!("preset `{name}` is for a {}, not a {kind}", preset.kind),
            )
            .with_label(span, format!("a {} preset", preset.kind))
            .with_help(format!("use a preset made for a {kind}")),
        );
        return None;
    }
    project.preset_body(&name)
}

struct Lower<'a> {
    project: &'a Project,
    diags: Vec<Diagnostic>,
    prov: Provenance,
    /// Some service runs Celery: wiring adds the broker and result backend.
    celery: bool,
    /// The environment's `images`: name → (reference, its node's origins).
    images: BTreeMap<String, (String, Vec<Origin>)>,
}

fn origins(node: &Node) -> Vec<Origin> {
    let mut v = vec![Origin {
        span: node.value_span(),
        layer: node.layer.to_string(),
    }];
    v.extend(node.overrides.iter().map(|(span, layer)| Origin {
        span: *span,
        layer: layer.to_string(),
    }));
    v
}

fn scalar_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => serde_json::Value::from(s.as_str()),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::Bool(b) => serde_json::Value::from(*b),
        Value::Null => serde_json::Value::Null,
    }
}

impl Lower<'_> {
    fn record(&mut self, ptr: &str, node: &Node) {
        self.prov.record(ptr.to_owned(), origins(node));
    }

    /// The plain settings of `node`, whose schema level is `path` (`environment/site/gzip`),
    /// lowered by their declarations alone (at `{ptr}/options/NAME`).
    fn options(&mut self, node: &Node, path: &str, ptr: &str) -> Options {
        let mut out = Options::new();
        for spec in schema::level(path)
            .unwrap_or_default()
            .iter()
            .filter(|s| s.plain)
        {
            let Some(child) = node.child(spec.name) else {
                continue;
            };
            let value = match child.args.first().map(|a| &a.value) {
                Some(Value::Bool(b)) => serde_json::Value::from(*b),
                Some(Value::Int(i)) => serde_json::Value::from(*i),
                Some(Value::Float(f)) => serde_json::Value::from(*f),
                Some(Value::Str(s)) => serde_json::Value::from(s.as_str()),
                Some(Value::Null) | None => continue,
            };
            self.record(&format!("{ptr}/options/{}", spec.name), child);
            out.insert(spec.name.to_owned(), value);
        }
        out
    }

    /// The value of setting `name` under `parent` (recording its provenance at `ptr`).
    fn value<'n>(&mut self, parent: &'n Node, name: &str, ptr: &str) -> Option<&'n Scalar> {
        let node = parent.child(name)?;
        let v = node.args.first().filter(|v| v.value != Value::Null)?;
        self.record(ptr, node);
        Some(v)
    }

    /// The `image` of `parent`, with `${images.NAME}` replaced by the environment's shared
    /// image (its provenance is then the `images` line: a finding about the image lands
    /// where the tag is said).
    fn image(&mut self, parent: &Node, ptr: &str) -> Option<String> {
        let text = self.string(parent, "image", ptr)?;
        if !text.contains("${images.") {
            return Some(text);
        }
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("${images.") {
            out.push_str(&rest[..at]);
            let after = &rest[at + "${images.".len()..];
            let Some(close) = after.find('}') else {
                out.push_str(&rest[at..]);
                rest = "";
                break;
            };
            let name = &after[..close];
            match self.images.get(name) {
                Some((reference, o)) => {
                    out.push_str(reference);
                    self.prov.record(ptr.to_owned(), o.clone());
                }
                None => {
                    let known = self.images.keys().map(String::as_str);
                    let help = match did_you_mean(name, known) {
                        Some(s) => format!("did you mean `${{images.{s}}}`?"),
                        None => format!(
                            "declare it in the environment: `images {{ {name} \"registry/app:1.2.3\" }}`"
                        ),
                    };
                    let mut d = Diagnostic::error(
                        "unknown-reference",
                        format!("`${{images.{name}}}` names no declared image"),
                    )
                    .with_help(help);
                    if let Some(n) = parent.child("image") {
                        d = d.with_label(n.value_span(), "this image");
                    }
                    self.diags.push(d);
                    return None;
                }
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn string(&mut self, parent: &Node, name: &str, ptr: &str) -> Option<String> {
        match &self.value(parent, name, ptr)?.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            _ => None,
        }
    }

    fn int(&mut self, parent: &Node, name: &str, ptr: &str) -> Option<i64> {
        match &self.value(parent, name, ptr)?.value {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn uint(&mut self, parent: &Node, name: &str, ptr: &str) -> Option<u32> {
        self.int(parent, name, ptr)
            .and_then(|i| u32::try_from(i).ok())
    }

    fn boolean(&mut self, parent: &Node, name: &str, ptr: &str, default: bool) -> bool {
        match self.value(parent, name, ptr).map(|v| &v.value) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        }
    }

    fn duration(&mut self, parent: &Node, name: &str, ptr: &str) -> Option<u64> {
        match &self.value(parent, name, ptr)?.value {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::Str(s) => parse_duration(s),
            _ => None,
        }
    }

    /// A duration kept as written, for nginx (`"60s"`, `86400` → `"86400s"`).
    fn duration_text(&mut self, parent: &Node, name: &str, ptr: &str) -> Option<String> {
        match &self.value(parent, name, ptr)?.value {
            Value::Int(i) => Some(format!("{i}s")),
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A list setting: the arguments of a child node, or a comma-separated property.
    fn list(&mut self, parent: &Node, name: &str, ptr: &str) -> Vec<String> {
        let Some(node) = parent.child(name) else {
            return Vec::new();
        };
        if matches!(node.args.as_slice(), [v] if v.value == Value::Null) {
            return Vec::new();
        }
        self.record(ptr, node);
        let mut out = Vec::new();
        for arg in &node.args {
            let text = arg.value.to_text();
            if node.from_prop || text.contains(',') {
                out.extend(
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            } else {
                out.push(text);
            }
        }
        out
    }

    fn free_map(
        &mut self,
        parent: Option<&Node>,
        ptr: &str,
    ) -> BTreeMap<String, serde_json::Value> {
        let mut out = BTreeMap::new();
        let Some(parent) = parent else { return out };
        for child in &parent.children {
            if let Some(v) = child.args.first() {
                let p = format!("{ptr}/{}", pointer_segment(&child.name));
                self.record(&p, child);
                out.insert(child.name.clone(), scalar_json(&v.value));
            }
        }
        out
    }

    fn environment(
        &mut self,
        name: &str,
        name_span: crate::source::Span,
        nodes: &[Node],
    ) -> Option<Model> {
        let root = Node {
            name: "environment".to_owned(),
            name_span,
            span: name_span,
            annotation: None,
            args: Vec::new(),
            children: nodes.to_vec(),
            from_prop: false,
            layer: Layer::from(name),
            overrides: Vec::new(),
        };
        let project = self.project;
        let pname = if project.name.is_empty() {
            "app".to_owned()
        } else {
            project.name.clone()
        };

        let tier = match self
            .string(&root, "tier", "/tier")
            .as_deref()
            .and_then(Tier::parse)
        {
            Some(t) => t,
            None => match Tier::parse(name) {
                Some(t) => t,
                None if root.child("tier").is_some() => Tier::Development, // invalid value: reported by the schema
                None => {
                    self.diags.push(
                        Diagnostic::error("missing-value", format!("environment `{name}` has no tier"))
                            .with_label(name_span, "no `tier`")
                            .with_help("add `tier production`, `tier staging` or `tier development`: it decides how strict the policies are"),
                    );
                    Tier::Development
                }
            },
        };

        let versions_node = root
            .child("versions")
            .cloned()
            .unwrap_or_else(|| empty("versions", name_span));
        let versions = Versions {
            nginx: self
                .string(&versions_node, "nginx", "/versions/nginx")
                .unwrap_or_else(|| "1.22".into()),
            pgbouncer: self
                .string(&versions_node, "pgbouncer", "/versions/pgbouncer")
                .unwrap_or_else(|| "1.18".into()),
            openssl: self
                .string(&versions_node, "openssl", "/versions/openssl")
                .unwrap_or_else(|| "3.0".into()),
            systemd: self
                .uint(&versions_node, "systemd", "/versions/systemd")
                .unwrap_or(252),
        };

        let host_node = root
            .child("host")
            .cloned()
            .unwrap_or_else(|| empty("host", name_span));
        let user = self
            .string(&host_node, "user", "/host/user")
            .unwrap_or_else(|| pname.replace('-', "_"));
        let uid = self.uint(&host_node, "uid", "/host/uid").unwrap_or(10001);
        let app_root = self
            .string(&host_node, "root", "/host/root")
            .unwrap_or_else(|| format!("/opt/{pname}"));
        let host = Host {
            group: self
                .string(&host_node, "group", "/host/group")
                .unwrap_or_else(|| user.clone()),
            gid: self.uint(&host_node, "gid", "/host/gid").unwrap_or(uid),
            venv: self
                .string(&host_node, "venv", "/host/venv")
                .unwrap_or_else(|| format!("{app_root}/venv")),
            env_file: self
                .string(&host_node, "env-file", "/host/env-file")
                .unwrap_or_else(|| format!("/etc/{pname}/{name}.env")),
            log_dir: self
                .string(&host_node, "log-dir", "/host/log-dir")
                .unwrap_or_else(|| format!("/var/log/{pname}")),
            log_rotation: self.log_rotation(&host_node),
            process_manager: self
                .string(&host_node, "process-manager", "/host/process-manager")
                .unwrap_or_else(|| "systemd".into()),
            writable: self.list(&host_node, "writable", "/host/writable"),
            user,
            uid,
            root: app_root,
        };

        // Secrets: the environment's, then each service's own (scoped to it).
        let mut secrets = BTreeMap::new();
        let mut secret_spans: BTreeMap<String, crate::source::Span> = BTreeMap::new();
        let mut declare = |lower: &mut Self,
                           node: &Node,
                           owner: Option<&str>,
                           secrets: &mut BTreeMap<String, Secret>| {
            let Some((k, mut s)) = lower.secret(node, "") else {
                return;
            };
            if let Some(first) = secret_spans.get(&k) {
                lower.diags.push(
                    Diagnostic::error("duplicate", format!("secret `{k}` is declared twice"))
                        .with_label(node.value_span(), "declared again here")
                        .with_label(*first, "first declared here")
                        .with_help(
                            "declare it once; limit who receives it with `services=\"web,worker\"`",
                        ),
                );
                return;
            }
            if let Some(owner) = owner {
                s.services = vec![owner.to_owned()];
            }
            secret_spans.insert(k.clone(), node.value_span());
            secrets.insert(k, s);
        };
        for node in root.children_named("secret") {
            declare(self, node, None, &mut secrets);
        }
        for svc in root.children_named("service") {
            let Some(owner) = svc.key() else { continue };
            for node in svc.children_named("secret") {
                declare(self, node, Some(&owner), &mut secrets);
            }
        }
        if let Some(images) = root.child("images") {
            for n in &images.children {
                if let Some(Value::Str(reference)) = n.args.first().map(|v| &v.value) {
                    self.record(&format!("/images/{}", pointer_segment(&n.name)), n);
                    self.images
                        .insert(n.name.clone(), (reference.clone(), origins(n)));
                }
            }
        }
        let mut env = BTreeMap::new();
        let mut env_targets = EnvTargets::new();
        if let Some(env_node) = root.child("env") {
            self.env_block(env_node, "/env", &secrets, &mut env, &mut env_targets);
        }

        let postgres = self.postgres_all(&root, &secrets);
        let redis = self.redis_all(&root, &secrets);

        let targets = match root.child("targets") {
            Some(t) => {
                self.record("/targets", t);
                let mut v: Vec<Target> = t
                    .args
                    .iter()
                    .filter_map(|a| a.value.as_str().and_then(Target::parse))
                    .collect();
                v.sort();
                v.dedup();
                v
            }
            None => Target::ALL.to_vec(),
        };

        let k8s_node = root
            .child("kubernetes")
            .cloned()
            .unwrap_or_else(|| empty("kubernetes", name_span));
        let namespace = self
            .string(&k8s_node, "namespace", "/kubernetes/namespace")
            .unwrap_or_else(|| format!("{pname}-{name}"));
        if !schema::is_dns_label(&namespace) {
            self.diags.push(
                Diagnostic::error(
                    "invalid-name",
                    format!("namespace `{namespace}` is not a valid Kubernetes name"),
                )
                .with_label(name_span, "derived from the project and environment names")
                .with_help("set `kubernetes { namespace \"short-name\" }` (at most 63 characters)"),
            );
        }
        let kubernetes = Kubernetes {
            namespace,
            ingress_class: self
                .string(&k8s_node, "ingress-class", "/kubernetes/ingress-class")
                .unwrap_or_else(|| "nginx".into()),
            cluster_issuer: self.string(&k8s_node, "cluster-issuer", "/kubernetes/cluster-issuer"),
            image_pull_policy: self.string(
                &k8s_node,
                "image-pull-policy",
                "/kubernetes/image-pull-policy",
            ),
        };
        let compose_node = root
            .child("compose")
            .cloned()
            .unwrap_or_else(|| empty("compose", name_span));
        let compose = Compose {
            project_name: self
                .string(&compose_node, "project-name", "/compose/project-name")
                .unwrap_or_else(|| format!("{pname}-{name}")),
            nginx_image: self
                .string(&compose_node, "nginx-image", "/compose/nginx-image")
                .unwrap_or_else(|| "nginx:1.27-alpine".into()),
        };

        let mut model = Model {
            schema: MODEL_SCHEMA,
            project: ProjectInfo {
                name: pname,
                output: project.output.clone(),
                settings_prefix: project.settings_prefix.clone(),
            },
            environment: name.to_owned(),
            tier,
            versions,
            host,
            env,
            env_targets,
            secrets,
            services: BTreeMap::new(),
            postgres,
            redis,
            sites: BTreeMap::new(),
            firewall: None,
            fail2ban: None,
            alerts: None,
            targets,
            kubernetes,
            compose,
            policies: PolicyConfig::default(),
            patches: Vec::new(),
            provenance: Provenance::default(),
        };

        self.check_names(&root, &model);
        for node in root.children_named("service") {
            if let Some((k, s)) = self.service(node, &model) {
                model.services.insert(k, s);
            }
        }
        for node in root.children_named("site") {
            if let Some((k, s)) = self.site(node, &model) {
                model.sites.insert(k, s);
            }
        }
        if let Some(a) = root.child("alerts") {
            self.record("/alerts", a);
            let error_rate = match self
                .value(a, "error-rate", "/alerts/error-rate")
                .map(|v| &v.value)
            {
                Some(Value::Int(i)) => *i as f64,
                Some(Value::Float(f)) => *f,
                Some(Value::Str(s)) => s.trim_end_matches('%').parse().unwrap_or(5.0),
                _ => 5.0,
            };
            model.alerts = Some(Alerts {
                error_rate,
                disk_free: self.uint(a, "disk-free", "/alerts/disk-free").unwrap_or(10),
                cert_expiry: self
                    .duration(a, "cert-expiry", "/alerts/cert-expiry")
                    .unwrap_or(14 * 86400),
                replication_lag: self
                    .duration(a, "replication-lag", "/alerts/replication-lag")
                    .unwrap_or(30),
                queue_length: self
                    .uint(a, "queue-length", "/alerts/queue-length")
                    .unwrap_or(1000),
                connections: self
                    .uint(a, "connections", "/alerts/connections")
                    .unwrap_or(80),
            });
        }
        if let Some(f) = root.child("fail2ban") {
            model.fail2ban = Some(self.fail2ban(f));
        }
        if let Some(fw) = root.child("firewall") {
            model.firewall = Some(self.firewall(fw));
        }
        if let Some(p) = root.child("policies") {
            model.policies = self.policies(p);
        }
        for node in root.children_named("patch") {
            let ptr = format!("/patches/{}", model.patches.len());
            if let Some(p) = self.patch(node, &ptr) {
                model.patches.push(p);
            }
        }
        self.check_ports(&root, &model);
        self.check_site_listeners(&root, &model);
        self.check_dependencies(&mut model);
        self.resolve_references(&mut model);
        self.check_unit_names(&model);
        derive_redis_roles(&mut model);
        for (name, secret) in &model.secrets {
            for svc in &secret.services {
                if !model.services.contains_key(svc) {
                    let names: Vec<&str> = model.services.keys().map(String::as_str).collect();
                    let mut d = Diagnostic::error(
                        "unknown-reference",
                        format!("secret `{name}` is for service `{svc}`, which is not declared"),
                    )
                    .with_help(unknown_name_help(svc, "service", &names));
                    if let Some((_, o)) = self
                        .prov
                        .lookup(&format!("/secrets/{}/services", pointer_segment(name)))
                    {
                        d = d.with_label(o[0].span, "no such service");
                    }
                    self.diags.push(d);
                }
            }
        }
        model.provenance = std::mem::take(&mut self.prov);
        Some(model)
    }

    fn secret(&mut self, node: &Node, prefix: &str) -> Option<(String, Secret)> {
        let key = node.key()?;
        let ptr = format!("{prefix}/secrets/{}", pointer_segment(&key));
        self.record(&ptr, node);
        let secret = Secret {
            kind: self
                .string(node, "kind", &format!("{ptr}/kind"))
                .unwrap_or_else(|| "generic".into()),
            optional: self.boolean(node, "optional", &format!("{ptr}/optional"), false),
            description: self.string(node, "description", &format!("{ptr}/description")),
            services: self.list(node, "services", &format!("{ptr}/services")),
            apps: self.boolean(node, "apps", &format!("{ptr}/apps"), true),
            min_length: self.uint(node, "min-length", &format!("{ptr}/min-length")),
            as_file: self
                .string(node, "deliver", &format!("{ptr}/deliver"))
                .as_deref()
                == Some("file"),
        };
        Some((key, secret))
    }

    fn env_block(
        &mut self,
        env_node: &Node,
        ptr: &str,
        secrets: &BTreeMap<String, Secret>,
        out: &mut BTreeMap<String, EnvValue>,
        targets: &mut EnvTargets,
    ) {
        for child in &env_node.children {
            let Some(v) = child.args.first() else {
                continue;
            };
            if secrets.contains_key(&child.name) && v.value != Value::Null {
                self.diags.push(
                    Diagnostic::error("secret-literal", format!("`{}` is a secret, but a value is written here", child.name))
                        .with_label(v.span, "a secret value in the spec")
                        .with_help("remove this line: the secret is delivered at deploy time through the env file or the k8s Secret, and kiln never holds its value"),
                );
                continue;
            }
            let Some(value) = env_scalar(&v.value) else {
                continue;
            };
            self.record(&format!("{ptr}/{}", pointer_segment(&child.name)), child);
            out.insert(child.name.clone(), value);
            // Its values for some targets (`systemd="…"`), replacing any it inherited.
            targets.remove(&child.name);
            let tp = format!("{}-targets/{}", ptr, pointer_segment(&child.name));
            for prop in child.children.iter().filter(|c| c.from_prop) {
                let (Some(target), Some(v)) = (Target::parse(&prop.name), prop.args.first()) else {
                    continue;
                };
                let Some(value) = env_scalar(&v.value) else {
                    continue;
                };
                self.record(&format!("{tp}/{}", prop.name), prop);
                targets
                    .entry(child.name.clone())
                    .or_default()
                    .insert(target, value);
            }
        }
    }

    fn secret_ref(
        &mut self,
        parent: &Node,
        name: &str,
        ptr: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Option<String> {
        let v = self.value(parent, name, ptr)?;
        let s = v.value.as_str()?.to_owned();
        if !secrets.contains_key(&s) {
            let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
            self.diags.push(
                Diagnostic::error(
                    "unknown-reference",
                    format!("`{name}` names secret `{s}`, which is not declared"),
                )
                .with_label(v.span, "no such secret")
                .with_help(match unknown_name_help(&s, "secret", &names) {
                    h if h.starts_with("did you mean") => h,
                    _ => format!("declare it in the environment: `secret {s} kind=password`"),
                }),
            );
            return None;
        }
        Some(s)
    }

    fn log_rotation(&mut self, host: &Node) -> LogRotation {
        let ptr = "/host/log-rotation";
        let Some(node) = host.child("log-rotation") else {
            return LogRotation {
                every: "daily".into(),
                keep: 14,
                max_size: None,
            };
        };
        self.record(ptr, node);
        LogRotation {
            every: self
                .string(node, "every", &format!("{ptr}/every"))
                .unwrap_or_else(|| "daily".into()),
            keep: self
                .uint(node, "keep", &format!("{ptr}/keep"))
                .unwrap_or(14),
            max_size: self
                .string(node, "max-size", &format!("{ptr}/max-size"))
                .and_then(|s| parse_size(&s)),
        }
    }

    fn resources(&mut self, parent: &Node, ptr: &str) -> Resources {
        let Some(node) = parent.child("resources") else {
            return Resources::default();
        };
        let cpu =
            |l: &mut Self, n: &str| match l.value(node, n, &format!("{ptr}/{n}")).map(|v| &v.value)
            {
                Some(Value::Int(i)) => u64::try_from(*i).ok().map(|c| c * 1000),
                Some(Value::Float(f)) => Some((f * 1000.0).round() as u64),
                Some(Value::Str(s)) => parse_cpu(s),
                _ => None,
            };
        let mem =
            |l: &mut Self, n: &str| match l.value(node, n, &format!("{ptr}/{n}")).map(|v| &v.value)
            {
                Some(Value::Int(i)) => u64::try_from(*i).ok(),
                Some(Value::Str(s)) => parse_size(s),
                _ => None,
            };
        let mut r = Resources {
            cpu: cpu(self, "cpu"),
            memory: mem(self, "memory"),
            cpu_request: cpu(self, "cpu-request"),
            memory_request: mem(self, "memory-request"),
            pids: self.uint(node, "pids", &format!("{ptr}/pids")),
        };
        if r.cpu_request.is_none() {
            r.cpu_request = r.cpu.map(|c| (c / 2).max(1));
        }
        if r.memory_request.is_none() {
            r.memory_request = r.memory.map(|m| m / 2);
        }
        r
    }

    /// Services, databases, caches and poolers share one network namespace.
    fn check_names(&mut self, root: &Node, model: &Model) {
        let mut claims: Vec<(crate::source::Span, String, &'static str)> = Vec::new();
        for (kind, label) in [
            ("postgres", "database"),
            ("redis", "cache"),
            ("service", "service"),
        ] {
            for node in root.children_named(kind) {
                let Some(k) = node.key() else { continue };
                if kind == "postgres"
                    && let Some(p) = model.postgres.get(&k).and_then(|pg| pg.pooler.as_ref())
                {
                    claims.push((
                        node.child("pooler")
                            .map_or(node.value_span(), |p| p.name_span),
                        p.name.clone(),
                        "pooler",
                    ));
                }
                claims.push((node.value_span(), k, label));
            }
        }
        claims.sort_by_key(|c| c.0);
        let mut seen: BTreeMap<String, (&str, crate::source::Span)> = BTreeMap::new();
        for (span, name, kind) in claims {
            if let Some((other, first)) = seen.get(&name) {
                self.diags.push(
                    Diagnostic::error("duplicate", format!("`{name}` names both a {other} and a {kind}"))
                        .with_label(span, format!("the {kind}"))
                        .with_label(*first, format!("the {other}"))
                        .with_help("services, databases, caches and poolers share one network: give each a distinct name"),
                );
            } else {
                seen.insert(name, (kind, span));
            }
        }
    }

    /// On a host deployment every listener shares one address space.
    fn check_ports(&mut self, root: &Node, model: &Model) {
        if !model.has_target(Target::Systemd) {
            return; // containers and pods each have their own ports
        }
        let mut taken: Vec<(u16, String, crate::source::Span)> = Vec::new();
        let sources = &self.project.sources;
        // Blame the user's spec: the `port` line when the spec sets it, else the node's name.
        let span_of = |kind: &str, name: &str| -> crate::source::Span {
            root.children_named(kind)
                .find(|n| n.key().as_deref() == Some(name))
                .map(|n| match n.child("port") {
                    Some(p)
                        if sources.get(p.value_span().file).origin
                            == crate::source::Origin::Project =>
                    {
                        p.value_span()
                    }
                    _ => n.value_span(),
                })
                .unwrap_or(root.name_span)
        };
        let mut claims: Vec<(u16, String, crate::source::Span)> = Vec::new();
        for (name, s) in &model.services {
            if let Some(p) = s.port {
                claims.push((p, format!("service `{name}`"), span_of("service", name)));
            }
        }
        for (name, pg) in &model.postgres {
            claims.push((
                pg.port,
                format!("postgres `{name}`"),
                span_of("postgres", name),
            ));
            if let Some(pool) = &pg.pooler {
                claims.push((
                    pool.port,
                    format!("pgbouncer of `{name}`"),
                    span_of("postgres", name),
                ));
            }
        }
        for (name, r) in &model.redis {
            claims.push((r.port, format!("redis `{name}`"), span_of("redis", name)));
        }
        // nginx holds every port a site listens on (sites share them by name; the
        // protocol clash between sites is check_site_listeners').
        for (key, site) in &model.sites {
            let [http, https] = self.listen_spans(root, key);
            claims.push((site.listen.http, "nginx".into(), http));
            if site.tls.mode != "off" {
                claims.push((site.listen.https, "nginx".into(), https));
            }
        }
        claims.sort_by_key(|c| c.2);
        for (port, who, span) in claims {
            if let Some((_, other, first)) = taken.iter().find(|(p, o, _)| *p == port && *o != who)
            {
                self.diags.push(
                    Diagnostic::error("port-collision", format!("port {port} is used by both {other} and {who}"))
                        .with_label(span, format!("{who} listens on {port}"))
                        .with_label(*first, format!("{other} listens on {port}"))
                        .with_help("give each listener its own port: on a host (systemd) they share one address"),
                );
            } else {
                taken.push((port, who, span));
            }
        }
    }
}

fn empty(name: &str, span: crate::source::Span) -> Node {
    Node {
        name: name.to_owned(),
        name_span: span,
        span,
        annotation: None,
        args: Vec::new(),
        children: Vec::new(),
        from_prop: false,
        layer: Layer::from("default"),
        overrides: Vec::new(),
    }
}

/// A Redis server's role, when the spec does not say: `broker` if a Celery process uses it
/// (its queued tasks must survive a full memory), else `cache`; and its eviction policy, when
/// the spec does not say: `allkeys-lru` for a cache, `noeviction` for a queue or broker.
fn derive_redis_roles(model: &mut Model) {
    for (name, redis) in &mut model.redis {
        if redis.role.is_empty() {
            let celery = model
                .services
                .values()
                .any(|s| s.run.program.starts_with("celery") && s.uses.iter().any(|u| u == name));
            redis.role = if celery { "broker" } else { "cache" }.to_owned();
        }
        if redis.eviction.is_none() {
            let default = match redis.role.as_str() {
                "cache" => "allkeys-lru",
                _ => "noeviction",
            };
            redis.eviction = Some(default.to_owned());
        }
    }
}

fn env_prefix(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// A variable's value as written (`#null`, which removes one, is none).
fn env_scalar(v: &Value) -> Option<EnvValue> {
    Some(match v {
        Value::Str(s) => EnvValue::Str(s.clone()),
        Value::Int(i) => EnvValue::Int(*i),
        Value::Float(f) => EnvValue::Float(*f),
        Value::Bool(b) => EnvValue::Bool(*b),
        Value::Null => return None,
    })
}

/// `HH:MM` (24-hour) → (hour, minute).
fn parse_hh_mm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}
