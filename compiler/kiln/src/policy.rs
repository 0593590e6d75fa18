//! The policy stage: every environment × policy module evaluated in parallel,
//! findings mapped through provenance to the spec lines that caused them, then
//! the spec's severity overrides and waivers applied. Pure: modules arrive
//! loaded, and today's date (for waiver expiry) is a parameter.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use kiln_core::Artifact;
use kiln_core::diagnostic::{Diagnostic, Severity, did_you_mean, unknown_name_help};
use kiln_core::diagnostic::{quote_for_terminal, sanitize_for_terminal};
use kiln_core::model::Model;
use kiln_core::source::{Sources, Span};
use kiln_policy_host::{
    InputKind, LoadedPolicy, PolicyError, PolicyMeta, PolicyOutput, RawFinding,
};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::build::{Build, EnvBuild};
use crate::place::place;

/// A loaded policy module and where it came from.
pub struct Policy {
    pub module: LoadedPolicy,
    /// `None` for the standard library; the spec's `module` span otherwise.
    pub declared_at: Option<Span>,
    /// The module's path in the spec (`policies/org.wasm`); `None` for the standard library.
    pub spec_path: Option<String>,
}

impl Policy {
    pub fn id(&self) -> &str {
        &self.module.meta().id
    }
}

/// The policies that failed during one build. kiln does not run a policy again once it has
/// failed (a module that loops would otherwise burn its whole fuel budget in every
/// environment); the environments judged after the failure are not judged by it, and the
/// build fails on the failure anyway.
#[derive(Default)]
pub struct Tripped(std::sync::Mutex<std::collections::HashSet<blake3::Hash>>);

impl Tripped {
    fn has(&self, policy: &Policy) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&policy.module.module_hash())
    }

    fn trip(&self, policy: &Policy) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(policy.module.module_hash());
    }
}

/// A calendar date, for waiver expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub i32, pub u32, pub u32);

impl Date {
    pub fn parse(s: &str) -> Option<Date> {
        let mut it = s.split('-');
        let d = Date(
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
        );
        it.next().is_none().then_some(d)
    }

    /// The civil date of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
    pub fn from_unix_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
        Date(y, m, d)
    }
}

/// The input document of a policy call.
pub fn input_document(
    policy: &Policy,
    model: &Model,
    spec: &Value,
    artifacts: &[Artifact],
    secret_values: Option<&BTreeMap<String, String>>,
) -> Value {
    let meta = policy.module.meta();
    input_document_for(
        meta,
        policy.spec_path.as_deref(),
        model,
        spec,
        artifacts,
        secret_values,
    )
}

fn input_document_for(
    meta: &PolicyMeta,
    spec_path: Option<&str>,
    model: &Model,
    spec: &Value,
    artifacts: &[Artifact],
    secret_values: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut doc = json!({
        "abi": kiln_policy_host::ABI_VERSION,
        "policy": {"id": meta.id, "settings": settings(spec_path, &meta.id, model)},
        "environment": model.environment,
        "tier": model.tier.as_str(),
        "spec": spec,
    });
    if meta.wants_artifacts() {
        doc["artifacts"] = artifact_inputs(model, artifacts)
            .filter(|a| meta.reads_target(a.target))
            .map(|a| json!({"target": a.target, "path": a.path, "text": a.text}))
            .collect();
    }
    if let Some(values) = secret_values
        && meta.inputs.contains(&InputKind::SecretValues)
    {
        doc["secret-values"] = json!(values);
    }
    doc
}

/// A policy's settings: a spec module's live in its `module` block; others under `settings ID`.
fn settings(spec_path: Option<&str>, id: &str, model: &Model) -> Value {
    let from_module = spec_path
        .and_then(|p| model.policies.modules.get(p))
        .filter(|m| !m.settings.is_empty());
    match from_module {
        Some(m) => Value::Object(m.settings.clone().into_iter().collect()),
        None => model
            .policies
            .settings
            .get(id)
            .cloned()
            .unwrap_or_else(|| json!({})),
    }
}

/// One element of the `artifacts` member (paths relative to the environment's
/// folder), borrowed: serializes like the object [`input_document_for`] builds,
/// without copying the text.
#[derive(serde::Serialize)]
struct ArtifactInput<'a> {
    target: &'a str,
    path: &'a str,
    text: &'a str,
}

fn artifact_inputs<'a>(
    model: &Model,
    artifacts: &'a [Artifact],
) -> impl Iterator<Item = ArtifactInput<'a>> {
    let env_prefix = format!("{}/{}/", model.project.output, model.environment);
    artifacts.iter().map(move |a| {
        let path = a.path.strip_prefix(&env_prefix).unwrap_or(&a.path);
        let target = path.split('/').next().unwrap_or("");
        ArtifactInput {
            target,
            path,
            text: &a.text,
        }
    })
}

/// What every policy call on one environment shares, serialized once per
/// environment instead of once per policy: the spec (tens of KB) and, built on
/// first use, each rendered file (hundreds of KB in all), which are spliced
/// into the input of every policy that reads their target.
pub struct EnvInput<'a> {
    model: &'a Model,
    artifacts: &'a [Artifact],
    spec: Vec<u8>,
    /// Each artifact's target and its element of the `artifacts` array.
    artifacts_json: OnceLock<Vec<(&'a str, Vec<u8>)>>,
    /// For [`EnvInput::identity`], built on first use.
    digests: OnceLock<Digests>,
}

/// What an identity hashes instead of the spec and the files' text.
struct Digests {
    /// The blake3 of the serialized spec.
    spec: blake3::Hash,
    /// Each artifact's element of the `artifacts` array with an empty text, and the blake3 of
    /// its text.
    files: Vec<(Vec<u8>, blake3::Hash)>,
}

/// Where [`EnvInput::write`] puts a document: its bytes, or its identity.
trait Sink {
    /// JSON text of the document's envelope.
    fn raw(&mut self, bytes: &[u8]);
    /// The `spec` member's value.
    fn spec(&mut self);
    /// The element of the `artifacts` array for the `index`th artifact.
    fn file(&mut self, index: usize);
}

/// The document's bytes.
struct DocumentBytes<'e, 'a> {
    input: &'e EnvInput<'a>,
    out: Vec<u8>,
}

impl Sink for DocumentBytes<'_, '_> {
    fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
    fn spec(&mut self) {
        self.out.extend_from_slice(&self.input.spec);
    }
    fn file(&mut self, index: usize) {
        self.out
            .extend_from_slice(&self.input.artifacts_json()[index].1);
    }
}

/// The document's identity: the same stream with the spec and each file's text replaced by
/// a NUL byte and their blake3. JSON text has no raw NUL, so the stream still names exactly
/// one document; and since it is written by the same [`EnvInput::write`], any change to the
/// document's shape changes the identity too.
struct DocumentIdentity<'e, 'a> {
    input: &'e EnvInput<'a>,
    hasher: blake3::Hasher,
}

impl Sink for DocumentIdentity<'_, '_> {
    fn raw(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }
    fn spec(&mut self) {
        self.hasher.update(b"\0");
        self.hasher.update(self.input.digests().spec.as_bytes());
    }
    fn file(&mut self, index: usize) {
        let (envelope, text) = &self.input.digests().files[index];
        self.hasher.update(envelope);
        self.hasher.update(b"\0");
        self.hasher.update(text.as_bytes());
    }
}

impl<'a> EnvInput<'a> {
    /// `spec` is `model.to_json()`.
    pub fn new(model: &'a Model, spec: &Value, artifacts: &'a [Artifact]) -> EnvInput<'a> {
        EnvInput {
            model,
            artifacts,
            spec: serde_json::to_vec(spec).expect("JSON serializes"),
            artifacts_json: OnceLock::new(),
            digests: OnceLock::new(),
        }
    }

    /// The input document of `policy`'s call, serialized: the same bytes as
    /// `serde_json::to_vec(&input_document(…))`, without copying the spec and
    /// the files into a new document for every policy.
    pub fn bytes(
        &self,
        policy: &Policy,
        secret_values: Option<&BTreeMap<String, String>>,
    ) -> Vec<u8> {
        let meta = policy.module.meta();
        self.bytes_for(meta, policy.spec_path.as_deref(), secret_values)
    }

    /// Names the input document of `policy`'s call (without secret values) for the result
    /// cache (`LoadedPolicy::check_memoized`) without building it: the document's stream with
    /// the spec and each file's text replaced by their blake3 (see `DocumentIdentity`). A
    /// recompile served from the cache hashes each environment's spec and files once,
    /// instead of serializing and hashing every policy's document (hundreds of KB each).
    pub fn identity(&self, policy: &Policy) -> blake3::Hash {
        self.identity_for(policy.module.meta(), policy.spec_path.as_deref())
    }

    fn identity_for(&self, meta: &PolicyMeta, spec_path: Option<&str>) -> blake3::Hash {
        let mut sink = DocumentIdentity {
            input: self,
            hasher: blake3::Hasher::new_derive_key("kiln 2026 policy input document identity"),
        };
        self.write(meta, spec_path, None, &mut sink);
        sink.hasher.finalize()
    }

    fn bytes_for(
        &self,
        meta: &PolicyMeta,
        spec_path: Option<&str>,
        secret_values: Option<&BTreeMap<String, String>>,
    ) -> Vec<u8> {
        let files_len: usize = match meta.wants_artifacts() {
            true => self.artifacts_json().iter().map(|(_, j)| j.len() + 1).sum(),
            false => 0,
        };
        let mut sink = DocumentBytes {
            input: self,
            out: Vec::with_capacity(self.spec.len() + files_len + 512),
        };
        self.write(meta, spec_path, secret_values, &mut sink);
        sink.out
    }

    fn artifacts_json(&self) -> &[(&'a str, Vec<u8>)] {
        self.artifacts_json.get_or_init(|| {
            artifact_inputs(self.model, self.artifacts)
                .map(|a| (a.target, serde_json::to_vec(&a).expect("JSON serializes")))
                .collect()
        })
    }

    fn digests(&self) -> &Digests {
        self.digests.get_or_init(|| {
            let files = artifact_inputs(self.model, self.artifacts)
                .map(|a| {
                    let text = blake3::hash(a.text.as_bytes());
                    let envelope = ArtifactInput { text: "", ..a };
                    (
                        serde_json::to_vec(&envelope).expect("JSON serializes"),
                        text,
                    )
                })
                .collect();
            Digests {
                spec: blake3::hash(&self.spec),
                files,
            }
        })
    }

    /// The one writer of the input document, for both sinks.
    fn write(
        &self,
        meta: &PolicyMeta,
        spec_path: Option<&str>,
        secret_values: Option<&BTreeMap<String, String>>,
        sink: &mut impl Sink,
    ) {
        let model = self.model;
        sink.raw(br#"{"abi":""#);
        sink.raw(kiln_policy_host::ABI_VERSION.as_bytes());
        sink.raw(br#"","policy":{"id":"#);
        sink.raw(&compact(&meta.id));
        sink.raw(br#","settings":"#);
        sink.raw(&compact(&settings(spec_path, &meta.id, model)));
        sink.raw(br#"},"environment":"#);
        sink.raw(&compact(&model.environment));
        sink.raw(br#","tier":"#);
        sink.raw(&compact(model.tier.as_str()));
        sink.raw(br#","spec":"#);
        sink.spec();
        if meta.wants_artifacts() {
            sink.raw(br#","artifacts":["#);
            let files = artifact_inputs(model, self.artifacts)
                .enumerate()
                .filter(|(_, a)| meta.reads_target(a.target));
            for (n, (index, _)) in files.enumerate() {
                if n > 0 {
                    sink.raw(b",");
                }
                sink.file(index);
            }
            sink.raw(b"]");
        }
        if let Some(values) = secret_values
            && meta.inputs.contains(&InputKind::SecretValues)
        {
            sink.raw(br#","secret-values":"#);
            sink.raw(&compact(values));
        }
        sink.raw(b"}");
    }
}

/// `value` as compact JSON.
fn compact<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON serializes")
}

/// Runs every policy over every built environment and appends the findings.
///
/// Environments and, inside each, policies run in parallel (see [`check_env`]).
pub fn run(
    b: &mut Build,
    stdlib: &[Arc<Policy>],
    extra: &BTreeMap<String, Vec<Arc<Policy>>>,
    today: Date,
) {
    let sources = &b.project.sources;
    let tripped = Tripped::default();
    let diags: Vec<Diagnostic> = b
        .envs
        .par_iter()
        .flat_map_iter(|env| {
            let extra = extra.get(&env.name).map_or(&[][..], Vec::as_slice);
            check_env(env, stdlib, extra, today, sources, &tripped)
        })
        .collect();
    b.diagnostics.extend(diags);
    crate::build::merge_across_environments(&mut b.diagnostics);
    kiln_core::diagnostic::normalize(&mut b.diagnostics);
}

/// Every policy (the standard library, then the spec's own modules) over one
/// built environment, in parallel: their findings, their failures, and the
/// errors of the spec's policy configuration (unknown rules, expired waivers).
/// The environment's spec and files are serialized once, for all its policies.
pub fn check_env(
    env: &EnvBuild,
    stdlib: &[Arc<Policy>],
    extra: &[Arc<Policy>],
    today: Date,
    sources: &Sources,
    tripped: &Tripped,
) -> Vec<Diagnostic> {
    let Some(model) = &env.model else {
        return Vec::new();
    };
    let policies: Vec<&Arc<Policy>> = stdlib.iter().chain(extra).collect();
    // The model as each target deploys it, when a variable varies by target: a value only
    // one target gets is judged like any other.
    let views = model.target_views();
    let mut judged: Vec<(Diagnostic, Vec<kiln_core::model::Target>)> = Vec::new();
    let mut index: std::collections::HashMap<Diagnostic, usize> = std::collections::HashMap::new();
    for (target, view) in &views {
        let input = EnvInput::new(view, &view.to_json(), &env.artifacts);
        let found: Vec<Diagnostic> = policies
            .par_iter()
            .filter(|policy| !tripped.has(policy))
            .flat_map_iter(|policy| {
                let result = policy
                    .module
                    .check_memoized(&input.identity(policy), || input.bytes(policy, None).into());
                if result.is_err() {
                    tripped.trip(policy);
                }
                findings_of(policy, view, result, &env.artifacts, None, sources)
            })
            .collect();
        for d in found {
            match index.get(&d) {
                Some(&i) => judged[i].1.extend(*target),
                None => {
                    index.insert(d.clone(), judged.len());
                    judged.push((d, target.iter().copied().collect()));
                }
            }
        }
    }
    let mut out: Vec<Diagnostic> = judged
        .into_iter()
        .map(|(mut d, targets)| {
            if !targets.is_empty() && targets.len() < views.len() {
                let names: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
                d.notes
                    .push(format!("in the {} output", names.join(" and ")));
            }
            d
        })
        .collect();
    out.extend(check_config(model, &policies, today, sources));
    out
}

/// One policy over one environment: its findings as diagnostics, or the module's failure.
pub fn evaluate(
    policy: &Policy,
    model: &Model,
    spec: &Value,
    artifacts: &[Artifact],
    secret_values: Option<&BTreeMap<String, String>>,
    sources: &Sources,
) -> Vec<Diagnostic> {
    let bytes = EnvInput::new(model, spec, artifacts).bytes(policy, secret_values);
    // Through the host's result cache unless the input holds real secret values (the cache is
    // a folder of files).
    let result = match secret_values {
        None => policy.module.check_cached(&bytes),
        Some(_) => policy.module.check(&bytes),
    };
    findings_of(policy, model, result, artifacts, secret_values, sources)
}

/// The diagnostics of one policy's call on one environment: its findings, or its failure.
fn findings_of(
    policy: &Policy,
    model: &Model,
    result: Result<PolicyOutput, PolicyError>,
    artifacts: &[Artifact],
    secret_values: Option<&BTreeMap<String, String>>,
    sources: &Sources,
) -> Vec<Diagnostic> {
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            let mut d = Diagnostic::error("policy-failed", format!("policy `{}` failed on environment {}: {}", quote_for_terminal(policy.module.display_name()), model.environment, quote_for_terminal(&e.kind().to_string())))
                .with_help(e.help())
                .with_note("the other policies still ran; kiln runs a policy no more once it has failed, so environments after this one were not judged by it; this compile fails until the module is fixed or removed");
            if let Some(span) = policy.declared_at {
                d = d.with_label(span, "this module");
            }
            return vec![d];
        }
    };
    let mut out = Vec::new();
    for f in output.findings {
        if let Some(d) = finding(policy, model, artifacts, &f, sources) {
            out.push(d);
        }
    }
    if let Some(values) = secret_values {
        for d in &mut out {
            redact(d, values);
        }
    }
    out
}

/// Replaces any secret value a (possibly hostile) policy echoed in its text.
fn redact(d: &mut Diagnostic, values: &BTreeMap<String, String>) {
    let scrub = |s: &mut String| {
        for v in values.values() {
            if v.len() >= 4 && s.contains(v.as_str()) {
                *s = s.replace(v.as_str(), "«redacted»");
            }
        }
    };
    scrub(&mut d.message);
    if let Some(h) = &mut d.help {
        scrub(h);
    }
    for n in &mut d.notes {
        scrub(n);
    }
    for l in &mut d.labels {
        scrub(&mut l.message);
    }
}

fn severity_of(policy: &Policy, f: &RawFinding) -> Severity {
    let raw = f.severity.or_else(|| {
        policy
            .module
            .meta()
            .rule(&f.rule)
            .map(|r| r.default_severity)
    });
    match raw.map(|s| s.as_str()) {
        Some("error") => Severity::Error,
        Some("warn") | Some("warning") => Severity::Warning,
        _ => Severity::Info,
    }
}

/// Maps one raw finding to a diagnostic at the spec line behind it, applying
/// the spec's overrides and waivers. `None` when turned off or waived.
fn finding(
    policy: &Policy,
    model: &Model,
    artifacts: &[Artifact],
    f: &RawFinding,
    sources: &Sources,
) -> Option<Diagnostic> {
    let mut severity = severity_of(policy, f);
    if let Some(o) = model.policies.rules.get(&f.rule) {
        severity = match o.severity.as_str() {
            "off" => return None,
            "error" => Severity::Error,
            "warn" => Severity::Warning,
            _ => Severity::Info,
        };
    }
    if let Some(a) = &f.artifact
        && let Err(why) = check_artifact_ref(model, artifacts, &a.path, a.line as usize)
    {
        return Some(
            Diagnostic::error(
                "policy-failed",
                format!(
                    "policy `{}` reported a finding of rule `{}` {why}",
                    quote_for_terminal(policy.module.display_name()),
                    f.rule
                ),
            )
            .with_help("this is a bug in the policy module: findings may name only the artifacts, and lines, the module was given"),
        );
    }
    let pointer = f.path.clone().or_else(|| {
        let a = f.artifact.as_ref()?;
        artifact_pointer(model, artifacts, &a.path, a.line as usize)
    });
    if model.policies.waivers.iter().any(|w| {
        w.rule == f.rule
            && w.reason.is_some()
            && w.path.as_deref().is_none_or(|p| {
                pointer
                    .as_deref()
                    .is_some_and(|fp| fp == p || fp.starts_with(&format!("{p}/")))
            })
    }) {
        return None;
    }
    // Text from a module reaches terminals, CI logs and code-scanning UIs: escaped once
    // here, it is harmless in every format.
    let mut d = Diagnostic::new(severity, f.rule.clone(), quote_for_terminal(&f.message));
    d.pointer = pointer
        .as_deref()
        .map(|p| quote_for_terminal(p).into_owned());
    if let Some(ptr) = &pointer {
        let resolved = model
            .provenance
            .lookup(ptr)
            .is_some_and(|(found, _)| !found.is_empty() || ptr.is_empty());
        place(&mut d, model, ptr, sources);
        if !resolved {
            // No spec line set it: one of kiln's defaults, or nothing at all.
            let note = match model.to_json().pointer(ptr).is_some() {
                true => format!(
                    "`{}` is kiln's default: no spec line sets it; set it to change it",
                    quote_for_terminal(ptr)
                ),
                false => format!(
                    "the policy points at `{}`, which is nothing in the resolved model",
                    quote_for_terminal(ptr)
                ),
            };
            d.notes.push(note);
        }
    }
    if let Some(a) = &f.artifact {
        d = d.with_note(format!(
            "in generated file {}/{}/{}, line {}",
            model.project.output, model.environment, a.path, a.line
        ));
    }
    for r in &f.related {
        let message = quote_for_terminal(&r.message).into_owned();
        match model.provenance.lookup(&r.path) {
            Some((found, origins)) if !found.is_empty() || r.path.is_empty() => {
                d = d.with_label(origins[0].span, message)
            }
            _ => d.notes.push(format!(
                "{message} (at `{}`, which is nothing in the resolved model)",
                quote_for_terminal(&r.path)
            )),
        }
    }
    d.help = Some(match &f.help {
        Some(help) => sanitize_for_terminal(help).into_owned(),
        None => format!("see `kiln explain {}`", f.rule),
    });
    d.notes.push(format!(
        "policy {} {}",
        policy.id(),
        policy.module.meta().version
    ));
    d.notes.push(format!(
        "environment {} ({})",
        model.environment,
        model.tier.as_str()
    ));
    Some(d)
}

/// Whether a finding's `artifact` names a file the module was given, and a line of it.
fn check_artifact_ref(
    model: &Model,
    artifacts: &[Artifact],
    path: &str,
    line: usize,
) -> Result<(), String> {
    let full =
        |a: &ArtifactInput| format!("{}/{}/{}", model.project.output, model.environment, a.path);
    let Some(a) = artifact_inputs(model, artifacts).find(|a| a.path == path || full(a) == path)
    else {
        return Err(format!(
            "in `{}`, which is not one of the files the module was given",
            quote_for_terminal(path)
        ));
    };
    let lines = a.text.lines().count();
    if line > lines {
        return Err(format!(
            "at line {line} of `{path}`, which has {lines} line(s)"
        ));
    }
    Ok(())
}

/// The model pointer behind a line of a rendered artifact.
fn artifact_pointer(
    model: &Model,
    artifacts: &[Artifact],
    path: &str,
    line: usize,
) -> Option<String> {
    let full = format!("{}/{}/{path}", model.project.output, model.environment);
    let a = artifacts
        .iter()
        .find(|a| a.path == full || a.path == path)?;
    a.lines.get(line.checked_sub(1)?)?.first().cloned()
}

/// The longest prefix of `path` that points at a value of `json` (`""` for the root).
fn nearest_existing(json: &Value, path: &str) -> String {
    let mut p = path;
    while !p.is_empty() {
        p = p.rsplit_once('/').map_or("", |(head, _)| head);
        if json.pointer(p).is_some() {
            break;
        }
    }
    if p.is_empty() {
        "/".to_owned()
    } else {
        p.to_owned()
    }
}

/// The spec's policy configuration: unknown rules and policies, settings, expired waivers.
fn check_config(
    model: &Model,
    policies: &[&Arc<Policy>],
    today: Date,
    _sources: &Sources,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let rules: Vec<&str> = policies
        .iter()
        .flat_map(|p| p.module.meta().rules.iter().map(|r| r.id.as_str()))
        .collect();
    for (id, o) in &model.policies.rules {
        if !rules.contains(&id.as_str()) {
            let mut d = Diagnostic::error("unknown-rule", format!("no policy has a rule `{id}`"))
                .with_help(unknown_name_help(id, "rule", &rules));
            if let Some(span) = o.span {
                d = d.with_label(span, "unknown rule");
            }
            out.push(d);
        }
    }
    let mut spec_json: Option<Value> = None;
    for w in &model.policies.waivers {
        let span = w.span;
        if !rules.contains(&w.rule.as_str()) {
            let mut d = Diagnostic::error(
                "unknown-rule",
                format!("the waiver names rule `{}`, which no policy has", w.rule),
            )
            .with_help(unknown_name_help(&w.rule, "rule", &rules));
            if let Some(s) = span {
                d = d.with_label(s, "unknown rule");
            }
            out.push(d);
        }
        // A path that points at nothing waives nothing: a typo, or a value since renamed.
        if let Some(path) = &w.path {
            let json = spec_json.get_or_insert_with(|| model.to_json());
            if json.pointer(path).is_none() {
                let parent = nearest_existing(json, path);
                let mut d = Diagnostic::error(
                    "waiver-path",
                    format!("the waiver of `{}` names `{path}`, which is nothing in the model", w.rule),
                )
                .with_help(format!(
                    "a path is a JSON pointer into the model (`kiln inspect --env {}` prints it; each finding's pointer is in `--verbose` and JSON output); the nearest value that exists is `{parent}`",
                    model.environment
                ));
                if let Some(s) = span {
                    d = d.with_label(s, "matches nothing");
                }
                out.push(d);
            }
        }
        if let Some(exp) = &w.expires
            && let Some(date) = Date::parse(exp)
            && date < today
        {
            let mut d = Diagnostic::error("waiver-expired", format!("the waiver of `{}` expired on {exp}", w.rule))
                .with_help("fix what the rule reports and delete the waiver, or renew it with a new `expires` and a reason");
            if let Some(s) = span {
                d = d.with_label(s, "expired waiver");
            }
            out.push(d);
        }
    }
    let ids: Vec<&str> = policies.iter().map(|p| p.id()).collect();
    for (id, settings) in &model.policies.settings {
        let ptr = format!(
            "/policies/settings/{}",
            kiln_core::model::pointer_segment(id)
        );
        let span = model.provenance.lookup(&ptr).map(|(_, o)| o[0].span);
        let Some(policy) = policies.iter().find(|p| p.id() == id) else {
            let mut d = Diagnostic::error(
                "unknown-policy",
                format!("settings for `{id}`, which is not a policy in force"),
            )
            .with_help(match did_you_mean(id, ids.iter().copied()) {
                Some(b) => format!("did you mean `{b}`?"),
                None => format!("policies in force: {}", ids.join(", ")),
            });
            if let Some(s) = span {
                d = d.with_label(s, "no such policy");
            }
            out.push(d);
            continue;
        };
        let bytes = serde_json::to_vec(settings).expect("JSON");
        match policy.module.validate_settings(&bytes) {
            Ok(Some(errors)) => {
                for e in errors {
                    let sub = format!("{ptr}{}", e.path);
                    let s = model
                        .provenance
                        .lookup(&sub)
                        .map(|(_, o)| o[0].span)
                        .or(span);
                    let mut d = Diagnostic::error(
                        "invalid-settings",
                        format!(
                            "settings of policy `{id}`: {}",
                            quote_for_terminal(&e.message)
                        ),
                    )
                    .with_help(format!("see the settings of `{id}` in `kiln policy list`"));
                    if let Some(s) = s {
                        d = d.with_label(s, "rejected by the policy");
                    }
                    out.push(d);
                }
            }
            Ok(None) => {}
            Err(e) => out.push(
                Diagnostic::error(
                    "policy-failed",
                    format!(
                        "policy `{id}` failed to validate its settings: {}",
                        quote_for_terminal(&e.kind().to_string())
                    ),
                )
                .with_help(e.help()),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a fixture without policies.
    fn fixture(name: &str) -> Build {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures")
            .join(name);
        let mut loader = |rel: &str| -> Result<String, String> {
            std::fs::read_to_string(root.join(rel)).map_err(|e| e.to_string())
        };
        let (project, diags) = kiln_core::project::load(&mut loader);
        crate::build::build(project, diags, &[])
    }

    #[test]
    fn serialized_input_is_the_input_document() {
        let values: BTreeMap<String, String> = [
            ("SECRET_KEY".to_owned(), "s3cr\"et\u{e9}".to_owned()),
            ("DB_PASSWORD".to_owned(), "pw".to_owned()),
        ]
        .into();
        let mut checked = 0;
        for name in ["tulia", "taskassistant", "ascai"] {
            let b = fixture(name);
            assert!(!b.has_errors(), "{name}: {:?}", b.diagnostics);
            for env in &b.envs {
                let model = env.model.as_ref().expect("model");
                let spec = model.to_json();
                let input = EnvInput::new(model, &spec, &env.artifacts);
                for (_, _, meta) in crate::stdlib::metas() {
                    for secrets in [None, Some(&values)] {
                        let doc =
                            input_document_for(meta, None, model, &spec, &env.artifacts, secrets);
                        let expected = serde_json::to_vec(&doc).expect("JSON");
                        assert!(
                            input.bytes_for(meta, None, secrets) == expected,
                            "{name}/{}: policy {}",
                            env.name,
                            meta.id
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 0);
    }

    /// The result cache is sound only if an input's identity determines its bytes: over every
    /// environment of the fixtures and every standard policy, and with one file changed, equal
    /// identities mean equal documents and different documents different identities.
    #[test]
    fn identity_names_exactly_one_input_document() {
        let mut seen: BTreeMap<[u8; 32], Vec<u8>> = BTreeMap::new();
        let mut documents = std::collections::BTreeSet::new();
        let mut record = |identity: blake3::Hash, bytes: Vec<u8>| {
            documents.insert(bytes.clone());
            let previous = seen
                .entry(*identity.as_bytes())
                .or_insert_with(|| bytes.clone());
            assert!(*previous == bytes, "one identity for two documents");
        };
        for name in ["tulia", "tdah", "taskassistant", "ascai"] {
            let b = fixture(name);
            for env in &b.envs {
                let model = env.model.as_ref().expect("model");
                let spec = model.to_json();
                let mut changed = env.artifacts.clone();
                for a in changed
                    .iter_mut()
                    .filter(|a| a.path.contains("/k8s/"))
                    .take(1)
                {
                    a.text.push('\n');
                }
                for artifacts in [&env.artifacts, &changed] {
                    let input = EnvInput::new(model, &spec, artifacts);
                    for (_, _, meta) in crate::stdlib::metas() {
                        record(
                            input.identity_for(meta, None),
                            input.bytes_for(meta, None, None),
                        );
                    }
                }
            }
        }
        assert_eq!(
            seen.len(),
            documents.len(),
            "one document under two identities"
        );
        assert!(seen.len() > 40);
    }
}
