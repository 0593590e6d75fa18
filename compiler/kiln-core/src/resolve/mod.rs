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

mod depends;
pub mod references;

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

    /// A `patch`: its target, and its lines checked so that none can end the directive,
    /// key or block it is written into.
    fn patch(&mut self, node: &Node, ptr: &str) -> Option<Patch> {
        let kind = node.key()?;
        self.record(ptr, node);
        let required = |lower: &mut Self, name: &str| -> Option<String> {
            let v = node
                .child(name)
                .and_then(|c| c.args.first())
                .map(|a| a.value.to_text());
            if v.is_none() {
                lower.diags.push(
                    Diagnostic::error("missing-value", format!("a `patch {kind}` needs `{name}=`"))
                        .with_label(node.name_span, format!("no `{name}`"))
                        .with_help(format!("say what it patches: `patch {kind} {name}=…`")),
                );
            }
            v
        };
        let text = |name: &str| {
            node.child(name)
                .and_then(|c| c.args.first())
                .map(|a| a.value.to_text())
        };
        let target = match kind.as_str() {
            "nginx" => PatchTarget::Nginx {
                site: required(self, "site")?,
                location: text("location"),
            },
            "systemd" => PatchTarget::Systemd {
                service: required(self, "service")?,
                section: text("section").unwrap_or_else(|| "Service".into()),
            },
            _ => PatchTarget::Compose {
                service: required(self, "service")?,
            },
        };
        let (wanted, other) = match kind.as_str() {
            "nginx" => ("directive", "set"),
            _ => ("set", "directive"),
        };
        let mut lines = Vec::new();
        for child in &node.children {
            if child.name == other {
                self.diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("a `patch {kind}` takes `{wanted}`, not `{other}`"),
                    )
                    .with_label(child.name_span, format!("not a line of a `patch {kind}`"))
                    .with_help(format!("write `{wanted} …`")),
                );
                continue;
            }
            if child.name != wanted {
                continue;
            }
            let Some((name, values)) = child.args.split_first() else {
                continue;
            };
            let name_text = name.value.to_text();
            let name_ok = match kind.as_str() {
                "nginx" => name_text
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "systemd" => name_text.chars().all(|c| c.is_ascii_alphanumeric()),
                _ => name_text
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            } && !name_text.is_empty();
            if !name_ok {
                self.diags.push(
                    Diagnostic::error("invalid-value", format!("`{name_text}` is not {}", match kind.as_str() {
                        "nginx" => "an nginx directive name",
                        "systemd" => "a systemd key",
                        _ => "a compose key",
                    }))
                        .with_label(name.span, "not a name")
                        .with_help(match kind.as_str() {
                            "nginx" => "an nginx directive is lowercase letters, digits and `_`",
                            "systemd" => "a unit key is letters and digits (`LimitNOFILE`)",
                            _ => "a compose key is lowercase letters, digits and `_` (`stop_grace_period`)",
                        }),
                );
                continue;
            }
            // A value may not end the line or block it is written into.
            let bad = values.iter().find(|v| {
                v.value.to_text().chars().any(|c| {
                    c.is_control()
                        || matches!(
                            (kind.as_str(), c),
                            ("nginx", ';' | '{' | '}' | '"' | '\'' | '\\' | '#')
                        )
                })
            });
            if let Some(v) = bad {
                self.diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        "this value would end the line or block it is written into",
                    )
                    .with_label(
                        v.span,
                        "a control character, or one of ; { } \" ' \\ # in an nginx argument",
                    )
                    .with_help("a patch adds lines; it cannot open or close blocks"),
                );
                continue;
            }
            let line_ptr = format!("{ptr}/lines/{}", lines.len());
            self.record(&line_ptr, child);
            lines.push(PatchLine {
                name: name_text,
                values: values
                    .iter()
                    .map(|v| match &v.value {
                        Value::Bool(b) => serde_json::Value::from(*b),
                        Value::Int(i) => serde_json::Value::from(*i),
                        Value::Float(f) => serde_json::Value::from(*f),
                        other => serde_json::Value::from(other.to_text()),
                    })
                    .collect(),
            });
        }
        Some(Patch { target, lines })
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

    fn postgres_all(
        &mut self,
        root: &Node,
        secrets: &BTreeMap<String, Secret>,
    ) -> BTreeMap<String, Postgres> {
        let mut out = BTreeMap::new();
        for node in root.children_named("postgres") {
            let Some(key) = node.key() else { continue };
            let ptr = format!("/postgres/{}", pointer_segment(&key));
            self.record(&ptr, node);
            let version = self
                .uint(node, "version", &format!("{ptr}/version"))
                .unwrap_or(15);
            let pooler = node
                .child("pooler")
                .map(|p| self.pooler(p, &key, &format!("{ptr}/pooler")));
            let database = self.string(node, "database", &format!("{ptr}/database"));
            let user = self.string(node, "user", &format!("{ptr}/user"));
            for (what, v) in [("database", &database), ("user", &user)] {
                if v.is_none() {
                    self.diags.push(
                        Diagnostic::error(
                            "missing-value",
                            format!("postgres `{key}` has no {what}"),
                        )
                        .with_label(node.value_span(), format!("no `{what}`"))
                        .with_help(format!("add `{what} NAME` to the postgres block")),
                    );
                }
            }
            if let Some(at) = node.child("replicas")
                && self
                    .uint(node, "replicas", &format!("{ptr}/replicas"))
                    .unwrap_or(0)
                    > 0
                && node.child("replication-password").is_none()
            {
                self.diags.push(
                    Diagnostic::error(
                        "missing-value",
                        format!("postgres `{key}` has replicas but no `replication-password`"),
                    )
                    .with_label(at.value_span(), "streaming replicas log in to the primary")
                    .with_help("declare `secret REPLICATION_PASSWORD kind=password` and add `replication-password REPLICATION_PASSWORD`: the replicas' role gets it, the app's password stays the app's"),
                );
            }
            if let (Some(u), Some(at)) = (&user, node.child("user"))
                && u == "postgres"
            {
                self.diags.push(
                    Diagnostic::error(
                        "superuser-role",
                        format!("postgres `{key}`: the app cannot log in as `postgres`, PostgreSQL's bootstrap superuser"),
                    )
                    .with_label(at.value_span(), "the superuser")
                    .with_help("name the app's own role (`user app`): kiln creates it without superuser rights, owning the database, and keeps `postgres` for administration"),
                );
            }
            let pg = Postgres {
                url_scheme: self
                    .string(node, "url-scheme", &format!("{ptr}/url-scheme"))
                    .unwrap_or_else(|| "postgres".into()),
                url_query: self.string(node, "url-query", &format!("{ptr}/url-query")),
                image: self
                    .image(node, &format!("{ptr}/image"))
                    .unwrap_or_else(|| format!("postgres:{version}")),
                version,
                database: database.unwrap_or_default(),
                user: user.unwrap_or_default(),
                password: self.secret_ref(node, "password", &format!("{ptr}/password"), secrets),
                port: self
                    .uint(node, "port", &format!("{ptr}/port"))
                    .map_or(5432, |p| p as u16),
                host: self
                    .string(node, "host", &format!("{ptr}/host"))
                    .unwrap_or_else(|| "127.0.0.1".into()),
                replicas: self
                    .uint(node, "replicas", &format!("{ptr}/replicas"))
                    .unwrap_or(0),
                replication_user: self
                    .string(node, "replication-user", &format!("{ptr}/replication-user"))
                    .unwrap_or_else(|| "replicator".into()),
                replication_password: self.secret_ref(
                    node,
                    "replication-password",
                    &format!("{ptr}/replication-password"),
                    secrets,
                ),
                settings: self.free_map(node.child("settings"), &format!("{ptr}/settings")),
                pooler,
                resources: self.resources(node, &format!("{ptr}/resources")),
                storage: self
                    .string(node, "storage", &format!("{ptr}/storage"))
                    .and_then(|s| parse_size(&s)),
                extensions: self.list(node, "extensions", &format!("{ptr}/extensions")),
                backup: node
                    .child("backup")
                    .map(|b| self.backup(b, &format!("{ptr}/backup"))),
                tls: node
                    .child("tls")
                    .and_then(|t| self.pg_tls(t, &format!("{ptr}/tls"), secrets)),
            };
            out.insert(key, pg);
        }
        out
    }

    /// `postgres { tls cert= key= ca= }`: each a declared secret delivered as a file.
    fn pg_tls(
        &mut self,
        node: &Node,
        ptr: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Option<PgTls> {
        self.record(ptr, node);
        let get = |l: &mut Self, field: &str| -> Option<String> {
            let name = l.secret_ref(node, field, &format!("{ptr}/{field}"), secrets)?;
            if !secrets.get(&name).is_some_and(|s| s.as_file) {
                let span = node
                    .child(field)
                    .map_or_else(|| node.value_span(), Node::value_span);
                l.diags.push(
                    Diagnostic::error(
                        "secret-not-file",
                        format!("TLS `{field}` names secret `{name}`, which is not delivered as a file"),
                    )
                    .with_label(span, "PostgreSQL reads it from a file")
                    .with_help(format!("declare it `secret {name} kind=generic deliver=file`: the server gets a read-only file, never the PEM in its environment")),
                );
                return None;
            }
            Some(name)
        };
        let cert = get(self, "cert");
        let key = get(self, "key");
        let ca = node.child("ca").and_then(|_| get(self, "ca"));
        if cert.is_none() || key.is_none() {
            if node.child("cert").is_none() || node.child("key").is_none() {
                self.diags.push(
                    Diagnostic::error("missing-value", "PostgreSQL TLS needs both `cert` and `key`")
                        .with_label(node.name_span, "incomplete")
                        .with_help("write `tls cert=PG_TLS_CERT key=PG_TLS_KEY`, each a secret with `deliver=file`"),
                );
            }
            return None;
        }
        Some(PgTls {
            cert: cert?,
            key: key?,
            ca,
        })
    }

    fn backup(&mut self, node: &Node, ptr: &str) -> Backup {
        self.record(ptr, node);
        let at = self.string(node, "at", &format!("{ptr}/at"));
        let (hour, minute) = match at.as_deref().map(parse_hh_mm) {
            None => (2, 0),
            Some(Some(hm)) => hm,
            Some(None) => {
                let span = node
                    .child("at")
                    .map_or_else(|| node.value_span(), Node::value_span);
                self.diags.push(
                    Diagnostic::error("type-mismatch", "`at` is not a time of day `HH:MM`")
                        .with_label(span, "expected `HH:MM` (UTC), such as \"02:00\"")
                        .with_help("write the hour (00–23) and the minute (00–59): `at=\"02:30\"`"),
                );
                (2, 0)
            }
        };
        Backup {
            every: self
                .string(node, "every", &format!("{ptr}/every"))
                .unwrap_or_else(|| "daily".into()),
            hour,
            minute,
            keep: self.uint(node, "keep", &format!("{ptr}/keep")),
            verify: self.boolean(node, "verify", &format!("{ptr}/verify"), true),
        }
    }

    /// `redis NAME { sentinel { … } }`: a majority quorum by default, and a group that can
    /// reach one (a quorum no larger than the group, a replica to promote).
    fn sentinel(&mut self, node: &Node, redis: &str, replicas: u32, ptr: &str) -> Sentinel {
        self.record(ptr, node);
        let count = self
            .uint(node, "count", &format!("{ptr}/count"))
            .unwrap_or(3);
        let quorum = self
            .uint(node, "quorum", &format!("{ptr}/quorum"))
            .unwrap_or(count / 2 + 1);
        let at = |field: &str| {
            node.child(field)
                .map_or_else(|| node.value_span(), Node::value_span)
        };
        if count == 0 {
            self.diags.push(
                Diagnostic::error("invalid-value", "a sentinel group of 0 sentinels")
                    .with_label(at("count"), "no sentinel would watch the primary")
                    .with_help(
                        "write `count 3`: three sentinels, so a majority survives the loss of one",
                    ),
            );
        } else if quorum == 0 || quorum > count {
            self.diags.push(
                Diagnostic::error(
                    "invalid-value",
                    format!("a quorum of {quorum} in a group of {count} sentinel(s)"),
                )
                .with_label(at("quorum"), "the sentinels could never agree the primary is down")
                .with_help(format!("write a quorum from 1 to {count}; a majority (`quorum {}`) is the usual choice", count / 2 + 1)),
            );
        }
        if replicas == 0 {
            self.diags.push(
                Diagnostic::error(
                    "missing-value",
                    format!("redis `{redis}` has a sentinel group but no replicas"),
                )
                .with_label(node.name_span, "a sentinel fails over to a replica")
                .with_help("add `replicas 2` to the redis block: the sentinels promote one of them when the primary fails"),
            );
        }
        Sentinel {
            count,
            port: self
                .uint(node, "port", &format!("{ptr}/port"))
                .map_or(26379, |p| p as u16),
            master_name: self
                .string(node, "master-name", &format!("{ptr}/master-name"))
                .unwrap_or_else(|| redis.to_owned()),
            quorum,
            down_after: self
                .duration(node, "down-after", &format!("{ptr}/down-after"))
                .unwrap_or(5),
            failover_timeout: self
                .duration(node, "failover-timeout", &format!("{ptr}/failover-timeout"))
                .unwrap_or(60),
        }
    }

    fn pooler(&mut self, node: &Node, db: &str, ptr: &str) -> Pooler {
        self.record(ptr, node);
        let u = |l: &mut Self, n: &str| l.uint(node, n, &format!("{ptr}/{n}"));
        let s = |l: &mut Self, n: &str| l.string(node, n, &format!("{ptr}/{n}"));
        Pooler {
            kind: node
                .args
                .first()
                .map(|v| v.value.to_text())
                .unwrap_or_else(|| "pgbouncer".into()),
            name: format!("{db}-pgbouncer"),
            image: self
                .image(node, &format!("{ptr}/image"))
                .unwrap_or_else(|| "edoburu/pgbouncer:v1.23.1-p3".into()),
            port: u(self, "port").map_or(6432, |p| p as u16),
            listen_addr: s(self, "listen-addr").unwrap_or_else(|| "127.0.0.1".into()),
            mode: s(self, "mode").unwrap_or_else(|| "transaction".into()),
            auth_type: s(self, "auth-type").unwrap_or_else(|| "scram-sha-256".into()),
            auth_file: s(self, "auth-file").unwrap_or_else(|| "/etc/pgbouncer/userlist.txt".into()),
            max_client_conn: u(self, "max-client-conn"),
            default_pool_size: u(self, "default-pool-size"),
            min_pool_size: u(self, "min-pool-size"),
            reserve_pool_size: u(self, "reserve-pool-size"),
            reserve_pool_timeout: u(self, "reserve-pool-timeout"),
            max_db_connections: u(self, "max-db-connections"),
            server_idle_timeout: u(self, "server-idle-timeout"),
            server_lifetime: u(self, "server-lifetime"),
            query_wait_timeout: u(self, "query-wait-timeout"),
            max_prepared_statements: u(self, "max-prepared-statements"),
            admin_users: self.list(node, "admin-users", &format!("{ptr}/admin-users")),
            stats_users: self.list(node, "stats-users", &format!("{ptr}/stats-users")),
            ignore_startup_parameters: self.list(
                node,
                "ignore-startup-parameters",
                &format!("{ptr}/ignore-startup-parameters"),
            ),
            client_tls_sslmode: s(self, "client-tls-sslmode"),
            server_tls_sslmode: s(self, "server-tls-sslmode"),
            resources: self.resources(node, &format!("{ptr}/resources")),
        }
    }

    fn redis_all(
        &mut self,
        root: &Node,
        secrets: &BTreeMap<String, Secret>,
    ) -> BTreeMap<String, Redis> {
        let mut out = BTreeMap::new();
        for node in root.children_named("redis") {
            let Some(key) = node.key() else { continue };
            let ptr = format!("/redis/{}", pointer_segment(&key));
            self.record(&ptr, node);
            let version = self
                .uint(node, "version", &format!("{ptr}/version"))
                .unwrap_or(7);
            let maxmemory = match self
                .value(node, "maxmemory", &format!("{ptr}/maxmemory"))
                .map(|v| &v.value)
            {
                Some(Value::Int(i)) => u64::try_from(*i).ok(),
                Some(Value::Str(s)) => parse_size(s),
                _ => None,
            };
            let r = Redis {
                image: self
                    .image(node, &format!("{ptr}/image"))
                    .unwrap_or_else(|| format!("redis:{version}")),
                version,
                port: self
                    .uint(node, "port", &format!("{ptr}/port"))
                    .map_or(6379, |p| p as u16),
                host: self
                    .string(node, "host", &format!("{ptr}/host"))
                    .unwrap_or_else(|| "127.0.0.1".into()),
                maxmemory,
                // Empty: derived once the services are known (`derive_redis_roles`).
                role: self
                    .string(node, "role", &format!("{ptr}/role"))
                    .unwrap_or_default(),
                eviction: self.string(node, "eviction", &format!("{ptr}/eviction")),
                password: self.secret_ref(node, "password", &format!("{ptr}/password"), secrets),
                appendonly: self.boolean(node, "appendonly", &format!("{ptr}/appendonly"), false),
                settings: self.free_map(node.child("settings"), &format!("{ptr}/settings")),
                resources: self.resources(node, &format!("{ptr}/resources")),
                replicas: self
                    .uint(node, "replicas", &format!("{ptr}/replicas"))
                    .unwrap_or(0),
                sentinel: None,
            };
            let sentinel = node
                .child("sentinel")
                .map(|s| self.sentinel(s, &key, r.replicas, &format!("{ptr}/sentinel")));
            out.insert(key, Redis { sentinel, ..r });
        }
        out
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

    fn service(&mut self, node: &Node, model: &Model) -> Option<(String, Service)> {
        let key = node.key()?;
        let ptr = format!("/services/{}", pointer_segment(&key));
        self.record(&ptr, node);
        let Some(run_node) = node.child("run") else {
            let preset_unknown = node
                .child("preset")
                .and_then(|p| p.args.first())
                .and_then(|v| v.value.as_str())
                .is_some_and(|p| !self.project.presets.contains_key(p));
            if preset_unknown {
                return None; // the unknown preset is reported
            }
            self.diags.push(
                Diagnostic::error("missing-value", format!("service `{key}` has nothing to run"))
                    .with_label(node.value_span(), "no `run` and no preset that sets one")
                    .with_help("add `preset=django-web` (or fastapi-web, daphne, celery-worker, celery-beat), or `run gunicorn \"config.wsgi:application\"`"),
            );
            return None;
        };
        let (run, derived_kind) = self.process(run_node, &format!("{ptr}/run"))?;
        let kind = match self.string(node, "kind", &format!("{ptr}/kind")).as_deref() {
            Some("web") => ServiceKind::Web,
            Some("worker") => ServiceKind::Worker,
            Some("beat") => ServiceKind::Beat,
            Some("task") => ServiceKind::Task,
            _ => derived_kind,
        };
        let port = self
            .uint(node, "port", &format!("{ptr}/port"))
            .map(|p| p as u16);
        let mut run = run;
        run.argv = run.command_line("0.0.0.0", port);
        if kind == ServiceKind::Web && port.is_none() && node.child("port").is_none() {
            self.diags.push(
                Diagnostic::error("missing-value", format!("web service `{key}` has no port"))
                    .with_label(node.value_span(), "no `port`")
                    .with_help("add `port 8000`"),
            );
        }
        // `health` is an HTTP path: a process that serves no HTTP would silently get none.
        if kind != ServiceKind::Web
            && let Some(h) = node.child("health")
        {
            let probe = match &run.probe {
                Some(_) => format!(
                    "kiln probes it with its program's own check (`{}`)",
                    run.program
                ),
                None => format!(
                    "`{}` declares no probe: declare the program with a `probe` (see Programs) to have one",
                    run.program
                ),
            };
            self.diags.push(
                Diagnostic::error(
                    "unexpected-value",
                    format!(
                        "`health` is an HTTP check, and `{key}` is a {} that serves no HTTP",
                        format!("{kind:?}").to_lowercase()
                    ),
                )
                .with_label(h.value_span(), "never probed")
                .with_help(format!("remove it: {probe}")),
            );
        }
        let health = node.child("health").and_then(|h| {
            let path = h.args.first()?.value.as_str()?.to_owned();
            let hp = format!("{ptr}/health");
            self.record(&hp, h);
            Some(Health {
                path,
                interval: self
                    .duration(h, "interval", &format!("{hp}/interval"))
                    .unwrap_or(30),
                timeout: self
                    .duration(h, "timeout", &format!("{hp}/timeout"))
                    .unwrap_or(5),
                retries: self
                    .uint(h, "retries", &format!("{hp}/retries"))
                    .unwrap_or(3),
                start_period: self
                    .duration(h, "start-period", &format!("{hp}/start-period"))
                    .unwrap_or(20),
            })
        });

        // Env: project env < wiring < secrets < service env.
        let mut env = model.env.clone();
        let uses = self.list(node, "uses", &format!("{ptr}/uses"));
        self.wire(node, &key, &uses, model, &ptr, &mut env);
        for (name, secret) in &model.secrets {
            if secret.apps && (secret.services.is_empty() || secret.services.contains(&key)) {
                env.insert(name.clone(), EnvValue::Secret(name.clone()));
                if let Some(o) = self
                    .prov
                    .map
                    .get(&format!("/secrets/{}", pointer_segment(name)))
                    .cloned()
                {
                    self.prov
                        .record(format!("{ptr}/env/{}", pointer_segment(name)), o);
                }
            }
        }
        // The project's per-target values hold where the service keeps the project's value.
        let mut env_targets = model.env_targets.clone();
        env_targets.retain(|var, _| env.get(var) == model.env.get(var));
        if let Some(env_node) = node.child("env") {
            self.env_block(
                env_node,
                &format!("{ptr}/env"),
                &model.secrets,
                &mut env,
                &mut env_targets,
            );
        }
        for name in model.env.keys() {
            let from = format!("/env/{}", pointer_segment(name));
            let to = format!("{ptr}/env/{}", pointer_segment(name));
            if !self.prov.map.contains_key(&to)
                && let Some(o) = self.prov.map.get(&from).cloned()
            {
                self.prov.record(to, o);
            }
        }

        let mut volumes = BTreeMap::new();
        for v in node.children_named("volume") {
            let Some(vk) = v.key() else { continue };
            let Some(path) = v.args.get(1).and_then(|a| a.value.as_str()) else {
                continue;
            };
            let vp = format!("{ptr}/volumes/{}", pointer_segment(&vk));
            self.record(&vp, v);
            volumes.insert(
                vk,
                Volume {
                    path: path.to_owned(),
                    read_only: self.boolean(v, "read-only", &format!("{vp}/read-only"), false),
                },
            );
        }
        let depends_on = self.depends_on(node, &ptr);
        let tmpfs = match node.child("tmpfs") {
            Some(_) => self.list(node, "tmpfs", &format!("{ptr}/tmpfs")),
            None => vec!["/tmp".to_owned()],
        };
        let mounts: Vec<&str> = tmpfs
            .iter()
            .chain(volumes.values().map(|v| &v.path))
            .map(String::as_str)
            .collect();
        let files = self.app_files(node, &ptr, &mounts);
        let service = Service {
            kind,
            preset: node
                .child("preset")
                .and_then(|p| p.args.first())
                .map(|v| v.value.to_text()),
            image: self.image(node, &format!("{ptr}/image")),
            run,
            port,
            health,
            balancer: self.string(node, "balancer", &format!("{ptr}/balancer")),
            replicas: self
                .uint(node, "replicas", &format!("{ptr}/replicas"))
                .unwrap_or(1),
            resources: self.resources(node, &format!("{ptr}/resources")),
            uses,
            depends_on,
            env,
            env_targets,
            volumes,
            files,
            read_only: self.boolean(node, "read-only", &format!("{ptr}/read-only"), true),
            tmpfs,
            user: self
                .string(node, "user", &format!("{ptr}/user"))
                .unwrap_or_else(|| format!("{}:{}", model.host.uid, model.host.gid)),
            cap_add: self.list(node, "cap-add", &format!("{ptr}/cap-add")),
            restart: self
                .string(node, "restart", &format!("{ptr}/restart"))
                .unwrap_or_else(|| {
                    if kind == ServiceKind::Task {
                        "no".into()
                    } else {
                        "always".into()
                    }
                }),
            stop_timeout: self.duration(node, "stop-timeout", &format!("{ptr}/stop-timeout")),
            unit: self.unit_name(node, &ptr),
        };
        Some((key, service))
    }

    /// `uses db cache` → DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, CELERY_RESULT_BACKEND.
    fn wire(
        &mut self,
        node: &Node,
        service: &str,
        uses: &[String],
        model: &Model,
        ptr: &str,
        env: &mut BTreeMap<String, EnvValue>,
    ) {
        let uses_node = node.child("uses");
        let mut pg_count = 0;
        let mut redis_count = 0;
        for (i, name) in uses.iter().enumerate() {
            let span = uses_node
                .and_then(|u| {
                    if u.from_prop {
                        u.args.first()
                    } else {
                        u.args.get(i)
                    }
                })
                .map_or(node.value_span(), |a| a.span);
            let origin = vec![Origin {
                span,
                layer: uses_node.map_or_else(|| "wiring".to_owned(), |u| u.layer.to_string()),
            }];
            let set = |lower: &mut Self,
                       env: &mut BTreeMap<String, EnvValue>,
                       var: String,
                       parts: Vec<Part>| {
                lower.prov.record(
                    format!("{ptr}/env/{}", pointer_segment(&var)),
                    origin.clone(),
                );
                env.insert(var, EnvValue::Wired(parts));
            };
            if model.postgres.contains_key(name) {
                for (var, parts) in references::postgres_wiring(model, name, pg_count == 0) {
                    set(self, env, var, parts);
                }
                pg_count += 1;
            } else if model.redis.contains_key(name) {
                let prefix = if redis_count == 0 {
                    String::new()
                } else {
                    format!("{}_", env_prefix(name))
                };
                redis_count += 1;
                let url = |db| references::redis_url(model, name, db);
                set(self, env, format!("{prefix}REDIS_URL"), url(0));
                if self.celery {
                    set(self, env, format!("{prefix}CELERY_BROKER_URL"), url(1));
                    set(self, env, format!("{prefix}CELERY_RESULT_BACKEND"), url(2));
                }
            } else {
                let mut candidates: Vec<&str> = model
                    .postgres
                    .keys()
                    .chain(model.redis.keys())
                    .map(String::as_str)
                    .collect();
                candidates.sort();
                let help = if uses_node.is_some_and(|_| name == service) {
                    "a service cannot use itself".to_owned()
                } else {
                    match unknown_name_help(name, "data service", &candidates) {
                        h if h.starts_with("did you mean") => h,
                        _ if candidates.is_empty() => {
                            "declare it: `postgres db { … }` or `redis cache { … }`".to_owned()
                        }
                        h => h,
                    }
                };
                self.diags.push(
                    Diagnostic::error("unknown-reference", format!("service `{service}` uses `{name}`, which is not a declared database or cache"))
                        .with_label(span, "no such data service")
                        .with_help(help),
                );
            }
        }
    }

    /// A `run` node through the program catalog: the process and the kind the program is.
    fn process(&mut self, node: &Node, ptr: &str) -> Option<(Process, ServiceKind)> {
        self.record(ptr, node);
        let args: Vec<String> = node.args.iter().map(|a| a.value.to_text()).collect();
        let Some(first) = node.args.first() else {
            self.diags.push(
                Diagnostic::error("missing-value", "`run` names no program")
                    .with_label(node.name_span, "no program, and no inherited `run` to change")
                    .with_help("write `run gunicorn \"config.wsgi:application\"`, or use a preset such as `preset=django-web`"),
            );
            return None;
        };
        let catalog = &self.project.programs;
        let Some(def) = catalog.select(&args) else {
            // A first word that some program starts with: the second word is what is wrong.
            let starts: Vec<&crate::programs::ProgramDef> = catalog
                .programs
                .values()
                .filter(|p| p.run.len() > 1 && p.run[0] == args[0])
                .collect();
            if !starts.is_empty() {
                let span = node.args.get(1).map_or(first.span, |a| a.span);
                let seconds: Vec<String> =
                    starts.iter().map(|p| format!("`{}`", p.run[1])).collect();
                self.diags.push(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`run {}` needs {}", args[0], seconds.join(" or ")),
                    )
                    .with_label(span, format!("expected {}", seconds.join(" or ")))
                    .with_help(format!(
                        "write `run {} {} app=config`",
                        args[0], starts[0].run[1]
                    )),
                );
                return None;
            }
            let words = catalog.first_words();
            self.diags.push(
                Diagnostic::error("type-mismatch", format!("unknown program `{}`", args[0]))
                    .with_label(first.span, "not a known program")
                    .with_help(match unknown_name_help(&args[0], "program", &words) {
                        h if h.starts_with("did you mean") => h,
                        _ => format!(
                            "the catalog has {}; declare your own with `program NAME {{ argv … }}`, or run it as `run command \"prog\" \"arg\" …`",
                            words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
                        ),
                    }),
            );
            return None;
        };
        let program = def.name.as_str();
        let rest = &args[def.run.len()..];
        let mut options = BTreeMap::new();
        let allowed = def.option_names();
        for child in &node.children {
            if !allowed.contains(&child.name.as_str()) {
                self.diags.push(
                    Diagnostic::error(
                        "unknown-property",
                        format!("`{}` is not an option of {program}", child.name),
                    )
                    .with_label(child.name_span, format!("does not apply to {program}"))
                    .with_help(unknown_name_help(
                        &child.name,
                        "option",
                        &allowed,
                    )),
                );
                continue;
            }
            let p = format!("{ptr}/options/{}", child.name);
            let ty = def.option(&child.name).map(|o| o.ty);
            if child.name == "args" || ty == Some(crate::programs::OptionType::List) {
                let v = self.list(node, &child.name, &p);
                options.insert(child.name.clone(), serde_json::Value::from(v));
            } else if let Some(v) = child.args.first().filter(|v| v.value != Value::Null) {
                self.record(&p, child);
                let json = match (&v.value, ty) {
                    (Value::Str(s), Some(crate::programs::OptionType::Duration)) => {
                        parse_duration(s)
                            .map_or_else(|| scalar_json(&v.value), serde_json::Value::from)
                    }
                    _ => scalar_json(&v.value),
                };
                if let Some(problem) = option_type_problem(&json, ty) {
                    self.diags.push(
                        Diagnostic::error(
                            "type-mismatch",
                            format!("`{}` of {program} must be {problem}", child.name),
                        )
                        .with_label(v.span, format!("this is {}", v.value.type_name()))
                        .with_help(format!(
                            "see the `{program}` program in `kiln explain` or docs/spec.md"
                        )),
                    );
                    continue;
                }
                options.insert(child.name.clone(), json);
            }
        }
        let app = options
            .remove("app")
            .and_then(|v| v.as_str().map(str::to_owned))
            .or_else(|| match def.app {
                crate::programs::AppArg::None => None,
                _ => rest.first().cloned(),
            });
        let takes_command = def.argv.iter().chain(&def.after).any(|a| a == "{command}");
        let extra_positional = match (def.app, takes_command) {
            (_, true) => &[][..],
            (crate::programs::AppArg::None, false) => rest,
            _ if rest.len() > 1 => &rest[1..],
            _ => &[][..],
        };
        if let Some(extra) = extra_positional.first() {
            let idx = node
                .args
                .iter()
                .position(|a| a.value.to_text() == *extra)
                .unwrap_or(0);
            self.diags.push(
                Diagnostic::error(
                    "unexpected-value",
                    match def.app {
                        crate::programs::AppArg::None => {
                            format!("{program} takes no positional argument")
                        }
                        _ => format!("{program} takes one application argument"),
                    },
                )
                .with_label(node.args[idx].span, "extra argument")
                .with_help("pass other flags with `args \"--flag\" \"value\"`"),
            );
        }
        if takes_command && rest.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    "missing-value",
                    format!("`run {program}` needs the command to run"),
                )
                .with_label(first.span, "nothing to run")
                .with_help(match program {
                    "manage" => "write `run manage \"migrate\" \"--noinput\"`",
                    _ => "write `run command \"python\" \"manage.py\" \"migrate\"`",
                }),
            );
            return None;
        }
        if def.app == crate::programs::AppArg::Required && app.is_none() {
            self.diags.push(
                Diagnostic::error("missing-value", format!("{program} needs an application"))
                    .with_label(first.span, "no application given")
                    .with_help(match def.kind {
                        ServiceKind::Web => format!(
                            "add the application: `run {} \"config.wsgi:application\"`",
                            def.run.join(" ")
                        ),
                        _ => format!("add `app=config` (the application `{program}` loads)"),
                    }),
            );
            return None;
        }
        if takes_command {
            options.insert("command".into(), serde_json::Value::from(rest.to_vec()));
        }
        let app_text = app.clone().unwrap_or_default();
        let template = command_template(def, &app_text, rest, &options);
        let mut process = Process {
            program: program.to_owned(),
            app,
            options,
            argv: Vec::new(),
            template,
            runtime: def.runtime.clone(),
            probe: def
                .probe
                .as_ref()
                .map(|p| p.replace("{app}", &sh_quote(&app_text))),
            stop_signal: def.stop_signal.clone(),
        };
        process.argv = process.command_line("0.0.0.0", None);
        Some((process, def.kind))
    }

    /// Two services whose systemd units would share a name (a `unit` equal to another's).
    fn check_unit_names(&mut self, model: &Model) {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (name, s) in &model.services {
            let unit = s
                .unit
                .clone()
                .unwrap_or_else(|| format!("{}-{name}", model.project.name));
            if let Some(other) = seen.insert(unit.clone(), name) {
                // Blamed where it is written last; the other one is named too.
                let span_of = |svc: &str| {
                    let ptr = format!("/services/{}/unit", pointer_segment(svc));
                    self.prov
                        .lookup(&ptr)
                        .filter(|(found, _)| *found == ptr)
                        .map(|(_, o)| o[0].span)
                };
                let mut spans: Vec<crate::Span> = [span_of(name), span_of(other)]
                    .into_iter()
                    .flatten()
                    .collect();
                spans.sort_by_key(|s| (s.file, std::cmp::Reverse(s.start)));
                let mut d = Diagnostic::error(
                    "duplicate",
                    format!("services `{other}` and `{name}` would both be the systemd unit `{unit}.service`"),
                )
                .with_help("give one of them another `unit`");
                for (i, span) in spans.into_iter().enumerate() {
                    d = d.with_label(
                        span,
                        if i == 0 {
                            "this unit name"
                        } else {
                            "taken here"
                        },
                    );
                }
                self.diags.push(d);
            }
        }
    }

    /// A service's own systemd unit name: not one systemd reserves, without its suffix.
    fn unit_name(&mut self, node: &Node, ptr: &str) -> Option<String> {
        let unit = self.string(node, "unit", &format!("{ptr}/unit"))?;
        let span = node.child("unit").map(Node::value_span);
        let problem = if unit.ends_with(".service") {
            Some("ends with `.service`, which kiln adds")
        } else if unit.contains('@') {
            Some("holds `@`, which makes a template unit")
        } else if [
            "network",
            "multi-user",
            "default",
            "basic",
            "sysinit",
            "shutdown",
        ]
        .iter()
        .any(|t| unit == *t)
            || unit.starts_with("systemd-")
        {
            Some("is a name systemd itself uses")
        } else {
            None
        };
        if let Some(problem) = problem {
            let mut d = Diagnostic::error("invalid-value", format!("unit `{unit}` {problem}"))
                .with_help(format!(
                    "write the name alone: `unit \"{}\"`",
                    unit.trim_end_matches(".service").replace('@', "-")
                ));
            if let Some(span) = span {
                d = d.with_label(span, "this name");
            }
            self.diags.push(d);
            return None;
        }
        Some(unit)
    }

    fn site(&mut self, node: &Node, model: &Model) -> Option<(String, Site)> {
        let key = node.key()?;
        let ptr = format!("/sites/{}", pointer_segment(&key));
        self.record(&ptr, node);
        let mut server_names = vec![key.clone()];
        server_names.extend(self.list(node, "aliases", &format!("{ptr}/aliases")));
        // A server name is a name: a client sends no SNI for an address (nginx then refuses
        // the handshake) and the Kubernetes API rejects an Ingress host that is one.
        for (i, name) in server_names.iter().enumerate() {
            if name.parse::<std::net::IpAddr>().is_err()
                && !name
                    .rsplit('.')
                    .next()
                    .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let span = match i {
                0 => Some(node.value_span()),
                _ => node.child("aliases").and_then(|a| {
                    a.args
                        .iter()
                        .find(|v| v.value.as_str() == Some(name.as_str()))
                        .map(|v| v.span)
                }),
            };
            let mut d = Diagnostic::error(
                "invalid-value",
                format!("`{name}` is an address, not a server name"),
            )
            .with_help("a site is reached by name: TLS clients send no server name for an address (nginx refuses the handshake) and an Ingress host must be a DNS name; give the address a name in DNS and use that");
            if let Some(span) = span {
                d = d.with_label(span, "an IP address");
            }
            self.diags.push(d);
        }

        let web_services: Vec<&str> = model
            .services
            .iter()
            .filter(|(_, s)| s.kind == ServiceKind::Web)
            .map(|(k, _)| k.as_str())
            .collect();
        let upstream = match node.child("upstream").and_then(|u| u.args.first()) {
            Some(v) => {
                let name = v.value.to_text();
                self.record(
                    &format!("{ptr}/upstream"),
                    node.child("upstream").expect("present"),
                );
                self.check_upstream(&name, v.span, model, &web_services);
                name
            }
            None => match web_services.as_slice() {
                [one] => one.to_string(),
                _ => {
                    self.diags.push(
                        Diagnostic::error("missing-value", format!("site `{key}` has no upstream"))
                            .with_label(node.value_span(), "no `upstream`")
                            .with_help(match web_services.first() {
                                Some(w) => format!("add `upstream={w}`"),
                                None => "declare a web service (`service web preset=django-web { … }`) and add `upstream=web`".into(),
                            }),
                    );
                    String::new()
                }
            },
        };

        let tls_node = node
            .child("tls")
            .cloned()
            .unwrap_or_else(|| empty("tls", node.name_span));
        let tp = format!("{ptr}/tls");
        if node.child("tls").is_some() {
            self.record(&tp, &tls_node);
        }
        let mode = tls_node
            .args
            .first()
            .map_or_else(|| "acme".to_owned(), |v| v.value.to_text());
        let mut cert = self.string(&tls_node, "cert", &format!("{tp}/cert"));
        let mut tkey = self.string(&tls_node, "key", &format!("{tp}/key"));
        if mode == "acme" {
            cert.get_or_insert_with(|| format!("/etc/letsencrypt/live/{key}/fullchain.pem"));
            tkey.get_or_insert_with(|| format!("/etc/letsencrypt/live/{key}/privkey.pem"));
        } else if mode == "files" && (cert.is_none() || tkey.is_none()) {
            self.diags.push(
                Diagnostic::error("missing-value", "`tls files` needs `cert` and `key`")
                    .with_label(tls_node.value_span(), "certificate files not given")
                    .with_help("write `tls files cert=\"/etc/ssl/site.pem\" key=\"/etc/ssl/site.key\"`, or `tls acme`"),
            );
        }
        let tls = Tls {
            cert,
            key: tkey,
            profile: self
                .string(&tls_node, "profile", &format!("{tp}/profile"))
                .unwrap_or_else(|| "intermediate".into()),
            protocols: {
                let p = self.list(&tls_node, "protocols", &format!("{tp}/protocols"));
                if p.is_empty() {
                    vec!["TLSv1.2".into(), "TLSv1.3".into()]
                } else {
                    p
                }
            },
            ciphers: self.string(&tls_node, "ciphers", &format!("{tp}/ciphers")),
            ecdh_curve: self.string(&tls_node, "ecdh-curve", &format!("{tp}/ecdh-curve")),
            prefer_server_ciphers: self.boolean(
                &tls_node,
                "prefer-server-ciphers",
                &format!("{tp}/prefer-server-ciphers"),
                false,
            ),
            session_timeout: self.duration_text(
                &tls_node,
                "session-timeout",
                &format!("{tp}/session-timeout"),
            ),
            session_cache: self.string(&tls_node, "session-cache", &format!("{tp}/session-cache")),
            session_tickets: self.boolean(
                &tls_node,
                "session-tickets",
                &format!("{tp}/session-tickets"),
                false,
            ),
            http2: self.boolean(&tls_node, "http2", &format!("{tp}/http2"), true),
            stapling: self.boolean(&tls_node, "stapling", &format!("{tp}/stapling"), false),
            mode,
        };

        let hsts = match node.child("hsts") {
            Some(h)
                if h.args
                    .first()
                    .is_some_and(|v| v.value == Value::Bool(false)) =>
            {
                self.record(&format!("{ptr}/hsts"), h);
                None
            }
            Some(h) => {
                let hp = format!("{ptr}/hsts");
                self.record(&hp, h);
                Some(Hsts {
                    max_age: self
                        .int(h, "max-age", &format!("{hp}/max-age"))
                        .map_or(63_072_000, |v| v.max(0) as u64),
                    include_subdomains: self.boolean(
                        h,
                        "include-subdomains",
                        &format!("{hp}/include-subdomains"),
                        true,
                    ),
                    preload: self.boolean(h, "preload", &format!("{hp}/preload"), false),
                })
            }
            None => None,
        };

        let mut headers = BTreeMap::new();
        for h in node.children_named("header") {
            if let (Some(name), Some(value)) =
                (h.key(), h.args.get(1).and_then(|v| v.value.as_str()))
            {
                self.record(&format!("{ptr}/headers/{}", pointer_segment(&name)), h);
                headers.insert(name, value.to_owned());
            }
        }

        let mut rate_limits = BTreeMap::new();
        for r in node.children_named("rate-limit") {
            let Some(zone) = r.key() else { continue };
            let rp = format!("{ptr}/rate-limits/{}", pointer_segment(&zone));
            self.record(&rp, r);
            let Some(rate) = self.string(r, "rate", &format!("{rp}/rate")) else {
                self.diags.push(
                    Diagnostic::error("missing-value", format!("rate limit `{zone}` has no rate"))
                        .with_label(r.value_span(), "no `rate`")
                        .with_help("add `rate=\"10r/s\"`"),
                );
                continue;
            };
            rate_limits.insert(
                zone,
                RateLimit {
                    site_wide: false,
                    rate,
                    burst: self.uint(r, "burst", &format!("{rp}/burst")),
                    nodelay: self.boolean(r, "nodelay", &format!("{rp}/nodelay"), false),
                    size: self
                        .string(r, "size", &format!("{rp}/size"))
                        .unwrap_or_else(|| "10m".into()),
                    paths: self.list(r, "paths", &format!("{rp}/paths")),
                },
            );
        }

        let mut locations = BTreeMap::new();
        for (node_name, kind) in [
            ("location", LocationKind::Proxy),
            ("static", LocationKind::Static),
            ("media", LocationKind::Media),
            ("websocket", LocationKind::Websocket),
        ] {
            for l in node.children_named(node_name) {
                let Some(path) = l.key() else { continue };
                let lp = format!("{ptr}/locations/{}", pointer_segment(&path));
                self.record(&lp, l);
                if !path.starts_with('/') {
                    self.diags.push(
                        Diagnostic::error(
                            "type-mismatch",
                            format!("location `{path}` must start with `/`"),
                        )
                        .with_label(l.value_span(), "not a path")
                        .with_help(format!("write \"/{path}\"")),
                    );
                    continue;
                }
                if locations.contains_key(&path) {
                    self.diags.push(
                        Diagnostic::error(
                            "duplicate",
                            format!("path `{path}` is declared twice in site `{key}`"),
                        )
                        .with_label(l.value_span(), "declared again")
                        .with_help("each path prefix can have one behaviour"),
                    );
                    continue;
                }
                let root = self.string(l, "root", &format!("{lp}/root"));
                let mut kind = kind;
                if kind == LocationKind::Proxy && root.is_some() {
                    kind = LocationKind::Static;
                }
                if matches!(kind, LocationKind::Static | LocationKind::Media) && root.is_none() {
                    self.diags.push(
                        Diagnostic::error(
                            "missing-value",
                            format!("`{node_name} \"{path}\"` has no folder"),
                        )
                        .with_label(l.value_span(), "no `root`")
                        .with_help(format!(
                            "add `root=\"/var/www/{}/static/\"`",
                            model.project.name
                        )),
                    );
                }
                let from = match l.child("from").and_then(|u| u.args.first()) {
                    Some(v) => {
                        let name = v.value.to_text();
                        self.record(&format!("{lp}/from"), l.child("from").expect("present"));
                        if !model.services.contains_key(&name) {
                            let names: Vec<&str> =
                                model.services.keys().map(String::as_str).collect();
                            self.diags.push(
                                Diagnostic::error(
                                    "unknown-reference",
                                    format!("`from={name}` names no service of this environment"),
                                )
                                .with_label(v.span, "no such service")
                                .with_help(unknown_name_help(&name, "service", &names)),
                            );
                        } else if root.is_none() && kind == LocationKind::Proxy {
                            self.diags.push(
                                Diagnostic::error(
                                    "missing-value",
                                    format!("`from={name}` says whose image holds the files, but `{path}` serves no folder"),
                                )
                                .with_label(v.span, "without `root`")
                                .with_help(format!("add the folder inside `{name}`'s image: `root=\"/app/staticfiles/\"`")),
                            );
                        }
                        Some(name)
                    }
                    None => None,
                };
                let upstream = match l.child("upstream").and_then(|u| u.args.first()) {
                    Some(v) => {
                        let name = v.value.to_text();
                        self.record(
                            &format!("{lp}/upstream"),
                            l.child("upstream").expect("present"),
                        );
                        self.check_upstream(&name, v.span, model, &web_services);
                        Some(name)
                    }
                    None => None,
                };
                let rate_limit = match l.child("rate-limit").and_then(|u| u.args.first()) {
                    Some(v) => {
                        let zone = v.value.to_text();
                        if !rate_limits.contains_key(&zone) {
                            let zones: Vec<&str> = rate_limits.keys().map(String::as_str).collect();
                            self.diags.push(
                                Diagnostic::error(
                                    "unknown-reference",
                                    format!("rate limit `{zone}` is not declared in site `{key}`"),
                                )
                                .with_label(v.span, "no such zone")
                                .with_help(
                                    match unknown_name_help(&zone, "zone", &zones) {
                                        h if h.starts_with("did you mean") => h,
                                        _ => format!(
                                            "declare it: `rate-limit {zone} rate=\"10r/s\"`"
                                        ),
                                    },
                                ),
                            );
                        }
                        self.record(
                            &format!("{lp}/rate-limit"),
                            l.child("rate-limit").expect("present"),
                        );
                        Some(zone)
                    }
                    None => None,
                };
                let location = Location {
                    kind,
                    upstream,
                    root,
                    from,
                    expires: self.duration_text(l, "expires", &format!("{lp}/expires")),
                    cache_control: self.string(l, "cache-control", &format!("{lp}/cache-control")),
                    access_log: self.boolean(l, "access-log", &format!("{lp}/access-log"), true),
                    rate_limit,
                    read_timeout: self.duration_text(
                        l,
                        "read-timeout",
                        &format!("{lp}/read-timeout"),
                    ),
                    max_body_size: self.string(l, "max-body-size", &format!("{lp}/max-body-size")),
                    allow: self.list(l, "allow", &format!("{lp}/allow")),
                    websocket: kind == LocationKind::Websocket
                        || self.boolean(l, "websocket", &format!("{lp}/websocket"), false),
                };
                locations.insert(path, location);
            }
        }

        let gzip = match node.child("gzip") {
            Some(g)
                if !g
                    .args
                    .first()
                    .is_some_and(|v| v.value == Value::Bool(false)) =>
            {
                let gp = format!("{ptr}/gzip");
                self.record(&gp, g);
                Some(Gzip {
                    types: self.list(g, "types", &format!("{gp}/types")),
                    min_length: self.uint(g, "min-length", &format!("{gp}/min-length")),
                    options: self.options(g, "environment/site/gzip", &gp),
                })
            }
            _ => None,
        };
        let timeouts = match node.child("timeouts") {
            Some(t) => Timeouts {
                connect: self.duration_text(t, "connect", &format!("{ptr}/timeouts/connect")),
                send: self.duration_text(t, "send", &format!("{ptr}/timeouts/send")),
                read: self.duration_text(t, "read", &format!("{ptr}/timeouts/read")),
            },
            None => Timeouts::default(),
        };
        let listen_node = node
            .child("listen")
            .cloned()
            .unwrap_or_else(|| empty("listen", node.name_span));
        // A zone applies to the whole site unless it lists paths or a location names it.
        for (zone, limit) in rate_limits.iter_mut() {
            limit.site_wide = limit.paths.is_empty()
                && !locations
                    .values()
                    .any(|l: &Location| l.rate_limit.as_deref() == Some(zone.as_str()));
        }
        let site = Site {
            preset: node
                .child("preset")
                .and_then(|p| p.args.first())
                .map(|v| v.value.to_text())
                .or_else(|| Some("nginx-site".into())),
            server_names,
            upstream,
            tls,
            hsts,
            headers,
            locations,
            rate_limits,
            max_body_size: self.string(node, "max-body-size", &format!("{ptr}/max-body-size")),
            gzip,
            timeouts,
            deny_hidden: self.boolean(node, "deny-hidden", &format!("{ptr}/deny-hidden"), true),
            redirect_code: self
                .string(node, "redirect-code", &format!("{ptr}/redirect-code"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(308),
            acme_root: self
                .string(node, "acme-root", &format!("{ptr}/acme-root"))
                .unwrap_or_else(|| "/var/www/letsencrypt".into()),
            server_tokens: self.boolean(
                node,
                "server-tokens",
                &format!("{ptr}/server-tokens"),
                false,
            ),
            listen: Listen {
                http: self
                    .uint(&listen_node, "http", &format!("{ptr}/listen/http"))
                    .map_or(80, |p| p as u16),
                https: self
                    .uint(&listen_node, "https", &format!("{ptr}/listen/https"))
                    .map_or(443, |p| p as u16),
                ipv6: self.boolean(&listen_node, "ipv6", &format!("{ptr}/listen/ipv6"), true),
            },
        };
        Some((key, site))
    }

    fn check_upstream(
        &mut self,
        name: &str,
        span: crate::source::Span,
        model: &Model,
        web: &[&str],
    ) {
        match model.services.get(name) {
            Some(s) if s.kind == ServiceKind::Web => {}
            Some(_) => self.diags.push(
                Diagnostic::error(
                    "unknown-reference",
                    format!("upstream `{name}` is not a web service"),
                )
                .with_label(span, "this service serves no HTTP")
                .with_help(match web.first() {
                    Some(w) => format!("point it at a web service such as `{w}`"),
                    None => "declare a web service to proxy to".into(),
                }),
            ),
            None => self.diags.push(
                Diagnostic::error(
                    "unknown-reference",
                    format!("upstream `{name}` is not a declared service"),
                )
                .with_label(span, "no such service")
                .with_help(unknown_name_help(name, "web service", web)),
            ),
        }
    }

    fn fail2ban(&mut self, node: &Node) -> Fail2ban {
        self.record("/fail2ban", node);
        let mut jails = BTreeMap::new();
        for jail in node.children_named("jail") {
            let Some(key) = jail.key() else { continue };
            let jp = format!("/fail2ban/jails/{}", pointer_segment(&key));
            self.record(&jp, jail);
            jails.insert(
                key,
                Jail {
                    ban_time: self.duration(jail, "ban-time", &format!("{jp}/ban-time")),
                    find_time: self.duration(jail, "find-time", &format!("{jp}/find-time")),
                    max_retry: self.uint(jail, "max-retry", &format!("{jp}/max-retry")),
                },
            );
        }
        Fail2ban {
            ban_time: self
                .duration(node, "ban-time", "/fail2ban/ban-time")
                .unwrap_or(3600),
            find_time: self
                .duration(node, "find-time", "/fail2ban/find-time")
                .unwrap_or(600),
            max_retry: self
                .uint(node, "max-retry", "/fail2ban/max-retry")
                .unwrap_or(5),
            jails,
        }
    }

    fn firewall(&mut self, node: &Node) -> Firewall {
        self.record("/firewall", node);
        let mut allow = BTreeMap::new();
        for rule in node.children_named("allow") {
            let Some(key) = rule.key() else { continue };
            let rp = format!("/firewall/allow/{}", pointer_segment(&key));
            self.record(&rp, rule);
            let port = match key.as_str() {
                "ssh" => "22".to_owned(),
                "http" => "80".to_owned(),
                "https" => "443".to_owned(),
                other => other.to_owned(),
            };
            allow.insert(
                key,
                FirewallRule {
                    port,
                    proto: self
                        .string(rule, "proto", &format!("{rp}/proto"))
                        .unwrap_or_else(|| "tcp".into()),
                    from: self.list(rule, "from", &format!("{rp}/from")),
                    limit: self.boolean(rule, "limit", &format!("{rp}/limit"), false),
                    comment: self.string(rule, "comment", &format!("{rp}/comment")),
                },
            );
        }
        Firewall {
            backend: self
                .string(node, "backend", "/firewall/backend")
                .unwrap_or_else(|| "ufw".into()),
            default_incoming: "deny".into(),
            allow,
        }
    }

    fn policies(&mut self, node: &Node) -> PolicyConfig {
        let mut config = PolicyConfig::default();
        for child in &node.children {
            let Some(key) = child.key() else { continue };
            match child.name.as_str() {
                "module" => {
                    let mp = format!("/policies/modules/{}", pointer_segment(&key));
                    self.record(&mp, child);
                    let module = ModuleRef {
                        blake3: self.string(child, "blake3", &format!("{mp}/blake3")),
                        settings: self.free_map(child.child("settings"), &format!("{mp}/settings")),
                        span: Some(child.value_span()),
                    };
                    config.modules.insert(key, module);
                }
                "settings" => {
                    let sp = format!("/policies/settings/{}", pointer_segment(&key));
                    let map = self.free_map(Some(child), &sp);
                    config
                        .settings
                        .insert(key, serde_json::Value::Object(map.into_iter().collect()));
                }
                "rule" => {
                    let rp = format!("/policies/rules/{}", pointer_segment(&key));
                    self.record(&rp, child);
                    let severity = self
                        .string(child, "severity", &format!("{rp}/severity"))
                        .unwrap_or_else(|| "error".into());
                    let reason = self.string(child, "reason", &format!("{rp}/reason"));
                    if severity == "off" && reason.is_none() {
                        self.diags.push(
                            Diagnostic::error("missing-value", format!("rule `{key}` is turned off without a reason"))
                                .with_label(child.value_span(), "no `reason`")
                                .with_help("add `reason=\"…\"`: reviewers need to know why a check does not apply"),
                        );
                    }
                    config.rules.insert(
                        key,
                        RuleOverride {
                            severity,
                            reason,
                            span: Some(child.value_span()),
                        },
                    );
                }
                "waive" => {
                    let reason = child
                        .child("reason")
                        .and_then(|r| r.args.first())
                        .map(|v| v.value.to_text());
                    if reason.is_none() {
                        self.diags.push(
                            Diagnostic::error(
                                "missing-value",
                                format!("the waiver of `{key}` has no reason"),
                            )
                            .with_label(child.value_span(), "no `reason`")
                            .with_help(
                                "add `reason=\"…\"`, and preferably `expires=\"YYYY-MM-DD\"`",
                            ),
                        );
                    }
                    config.waivers.push(Waiver {
                        rule: key,
                        path: child
                            .child("path")
                            .and_then(|r| r.args.first())
                            .map(|v| v.value.to_text()),
                        reason,
                        expires: child
                            .child("expires")
                            .and_then(|r| r.args.first())
                            .map(|v| v.value.to_text()),
                        span: Some(child.value_span()),
                    });
                }
                _ => {}
            }
        }
        config
    }

    /// The spans to blame for a site's `listen` ports: the spec's `http`/`https` lines when it
    /// sets them, else the site's name.
    fn listen_spans(&self, root: &Node, key: &str) -> [crate::source::Span; 2] {
        let sources = &self.project.sources;
        let Some(site) = root
            .children_named("site")
            .find(|n| n.key().as_deref() == Some(key))
        else {
            return [root.name_span; 2];
        };
        ["http", "https"].map(
            |proto| match site.child("listen").and_then(|l| l.child(proto)) {
                Some(p)
                    if sources.get(p.value_span().file).origin
                        == crate::source::Origin::Project =>
                {
                    p.value_span()
                }
                _ => site.value_span(),
            },
        )
    }

    /// One port speaks one protocol: nginx cannot serve plain HTTP and TLS on the same
    /// socket (`nginx -t`: "a duplicate default server", or a handshake that never comes),
    /// in any target that runs it.
    fn check_site_listeners(&mut self, root: &Node, model: &Model) {
        // port -> (protocol, site, span) of its first claim
        let mut taken: BTreeMap<u16, (&str, &str, crate::source::Span)> = BTreeMap::new();
        for (key, site) in &model.sites {
            let [http_span, https_span] = self.listen_spans(root, key);
            let mut claims = vec![("plain HTTP", site.listen.http, http_span)];
            if site.tls.mode != "off" {
                claims.push(("TLS", site.listen.https, https_span));
            }
            for (proto, port, span) in claims {
                match taken.get(&port) {
                    Some(&(other, owner, first)) if other != proto => {
                        let message = if owner == key.as_str() {
                            format!(
                                "site `{key}` listens on port {port} for both {other} and {proto}"
                            )
                        } else {
                            format!(
                                "port {port} would carry {other} for site `{owner}` and {proto} for site `{key}`"
                            )
                        };
                        self.diags.push(
                            Diagnostic::error("port-collision", message)
                            .with_label(span, format!("{proto} on {port}"))
                            .with_label(first, format!("{other} on {port}"))
                            .with_help("one port speaks one protocol: give the TLS and the plain HTTP listeners different ports (`listen { http 80; https 443; }`)")
                            .with_note("nginx refuses the configuration: a port can be a TLS listener or a plain one, not both"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        taken.insert(port, (proto, key, span));
                    }
                }
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

/// Why an option's value does not fit its declared type, if it does not.
fn option_type_problem(
    v: &serde_json::Value,
    ty: Option<crate::programs::OptionType>,
) -> Option<&'static str> {
    use crate::programs::OptionType;
    match (ty?, v) {
        (OptionType::Int | OptionType::Duration, serde_json::Value::Number(n)) if n.is_i64() => {
            None
        }
        (OptionType::Int, _) => Some("an integer"),
        (OptionType::Duration, _) => Some("a duration (`60s`, or seconds)"),
        (OptionType::Bool, serde_json::Value::Bool(_)) => None,
        (OptionType::Bool, _) => Some("`#true` or `#false`"),
        _ => None,
    }
}

/// A program's command line with everything but where it listens (`{host}`, `{port}`)
/// filled in: the argv template, the options in the order the program declares them, the
/// arguments after them, then `args`.
fn command_template(
    def: &crate::programs::ProgramDef,
    app: &str,
    command: &[String],
    options: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    use crate::programs::OptionType;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = Vec::new();
    let expand = |out: &mut Vec<String>, part: &str| match part {
        "{command}" => out.extend(command.iter().cloned()),
        p => out.push(p.replace("{app}", app)),
    };
    for part in &def.argv {
        expand(&mut out, part);
    }
    for o in &def.options {
        let value = options.get(&o.name).or(o.default.as_ref());
        match (o.ty, value) {
            (OptionType::Bool, Some(v)) => {
                let arg = match v.as_bool() {
                    Some(true) => &o.if_true,
                    _ => &o.if_false,
                };
                out.extend(arg.iter().cloned());
            }
            (OptionType::List, Some(serde_json::Value::Array(items))) => {
                let items: Vec<String> = items.iter().map(text).collect();
                match (&o.flag, &o.join) {
                    (Some(flag), Some(sep)) => out.push(flag.replace("{}", &items.join(sep))),
                    (Some(flag), None) if flag.contains("{}") => {
                        out.extend(items.iter().map(|i| flag.replace("{}", i)))
                    }
                    (Some(flag), None) => {
                        out.push(flag.clone());
                        out.extend(items);
                    }
                    (None, _) => out.extend(items),
                }
            }
            (_, Some(v)) => match &o.flag {
                Some(flag) => out.push(flag.replace("{}", &text(v))),
                None => out.push(text(v)),
            },
            (_, None) => out.extend(o.otherwise.iter().cloned()),
        }
    }
    for part in &def.after {
        expand(&mut out, part);
    }
    if let Some(serde_json::Value::Array(extra)) = options.get("args") {
        out.extend(extra.iter().map(text));
    }
    out
}

impl Process {
    /// The command line, listening on `bind` and `port` (`${PORT}` when none is given).
    pub fn command_line(&self, bind: &str, port: Option<u16>) -> Vec<String> {
        let port_text = match port.unwrap_or(0) {
            0 => "${PORT}".to_owned(),
            p => p.to_string(),
        };
        self.template
            .iter()
            .map(|a| a.replace("{host}", bind).replace("{port}", &port_text))
            .collect()
    }

    /// The executable (argv[0]).
    pub fn executable(&self) -> String {
        self.command_line("0.0.0.0", Some(1))
            .into_iter()
            .next()
            .unwrap_or_default()
    }
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
