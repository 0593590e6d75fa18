//! The pure pipeline behind `kiln compile`: resolve every selected
//! environment, check it, emit its targets, and compute the lock. Nothing here
//! touches the disk: the CLI writes what [`Build`] holds.

use std::collections::{BTreeMap, HashMap};

use kiln_core::diagnostic::{Diagnostic, normalize, unknown_name_help};
use kiln_core::model::Model;
use kiln_core::project::{Project, STDLIB_PRESETS};
use kiln_core::{Artifact, Span};
use rayon::prelude::*;

use crate::lock::{Lock, hash};

pub const COMPILER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One environment's result.
#[derive(Debug)]
pub struct EnvBuild {
    pub name: String,
    pub model: Option<Model>,
    /// Paths relative to the project folder (`generated/production/nginx/nginx.conf`).
    pub artifacts: Vec<Artifact>,
    /// Outputs found identical on disk while building, by path, with their blake3: `kiln
    /// compile` moves them here out of `artifacts` as soon as the environment is judged, so
    /// that a recompile of many environments does not hold the text of files it will not
    /// write. Empty for every other command.
    pub settled: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Build {
    pub project: Project,
    pub diagnostics: Vec<Diagnostic>,
    pub envs: Vec<EnvBuild>,
}

/// Which environments a command works on: the named ones, or every compiled one.
pub fn select_environments(
    project: &Project,
    requested: &[String],
    diags: &mut Vec<Diagnostic>,
) -> Vec<String> {
    if requested.is_empty() {
        return project
            .compiled_environments()
            .into_iter()
            .map(str::to_owned)
            .collect();
    }
    let known: Vec<&str> = project.environments.keys().map(String::as_str).collect();
    let mut out = Vec::new();
    for name in requested {
        match project.environments.get(name) {
            Some(e) if e.is_abstract => diags.push(
                Diagnostic::error(
                    "abstract-environment",
                    format!("environment `{name}` is abstract and is not compiled"),
                )
                .with_label(e.name_span, "declared `abstract=#true` here")
                .with_help("pick an environment that extends it"),
            ),
            Some(_) => out.push(name.clone()),
            None => diags.push(
                Diagnostic::error(
                    "unknown-environment",
                    format!("no environment named `{name}`"),
                )
                .with_help(unknown_name_help(name, "environment", &known)),
            ),
        }
    }
    out
}

/// Resolves and emits the selected environments, in parallel.
pub fn build(project: Project, diagnostics: Vec<Diagnostic>, requested: &[String]) -> Build {
    build_with(project, diagnostics, requested, |_, _| Vec::new()).0
}

/// [`build`], running `each` on every environment as soon as it is built, on
/// the same thread, when neither the project nor that environment has an
/// error. `each` may take from the environment what later stages will not
/// need (`kiln compile` drops the model and the line provenance once the
/// policies ran, so that a build of many environments holds little more than
/// their files). Returns what `each` reported separately, in environment
/// order, for the caller to keep or discard.
pub fn build_with<F>(
    project: Project,
    mut diagnostics: Vec<Diagnostic>,
    requested: &[String],
    each: F,
) -> (Build, Vec<Diagnostic>)
where
    F: Fn(&Project, &mut EnvBuild) -> Vec<Diagnostic> + Sync,
{
    let syntax_broken = diagnostics
        .iter()
        .any(|d| d.code == "kdl-syntax" || d.code == "no-project");
    let selected = select_environments(&project, requested, &mut diagnostics);
    if syntax_broken {
        normalize(&mut diagnostics);
        let b = Build {
            project,
            diagnostics,
            envs: Vec::new(),
        };
        return (b, Vec::new());
    }
    let project_ok = !diagnostics.iter().any(Diagnostic::is_error);
    let results: Vec<(EnvBuild, Vec<Diagnostic>, Vec<Diagnostic>)> = selected
        .par_iter()
        .map(|env| {
            let (mut env, diags) = build_env(&project, env, project_ok);
            let reported = match project_ok && !diags.iter().any(Diagnostic::is_error) {
                true => each(&project, &mut env),
                false => Vec::new(),
            };
            (env, diags, reported)
        })
        .collect();
    let mut envs = Vec::new();
    let mut reported = Vec::new();
    for (env, mut d, mut r) in results {
        diagnostics.append(&mut d);
        reported.append(&mut r);
        envs.push(env);
    }
    merge_across_environments(&mut diagnostics);
    normalize(&mut diagnostics);
    let b = Build {
        project,
        diagnostics,
        envs,
    };
    (b, reported)
}

/// Information, per process: the resource limits a preset chose for it and no spec line
/// overrides. They bound the process in every target (a host's systemd unit too), so the
/// user should see them once: with `--verbose`, at the preset line.
fn preset_limits(
    model: &Model,
    sources: &kiln_core::source::Sources,
    env: &str,
) -> Vec<Diagnostic> {
    const FIELDS: [&str; 3] = ["cpu", "memory", "pids"];
    let mut by_owner: BTreeMap<&str, (String, Vec<String>)> = BTreeMap::new();
    for (pointer, origins) in &model.provenance.map {
        let Some((owner, field)) = pointer.rsplit_once('/') else {
            continue;
        };
        let Some(owner) = owner.strip_suffix("/resources") else {
            continue;
        };
        let Some(preset) = origins[0].layer.strip_prefix("preset ") else {
            continue;
        };
        if !FIELDS.contains(&field) {
            continue;
        }
        let Some(r) = resources_at(model, owner) else {
            continue;
        };
        let shown = match field {
            "cpu" => r.cpu.map(|m| format!("cpu {}", millicores(m))),
            "memory" => r.memory.map(|b| format!("memory {}", bytes(b))),
            _ => r.pids.map(|p| format!("pids {p}")),
        };
        let Some(shown) = shown else {
            continue;
        };
        let entry = by_owner
            .entry(owner)
            .or_insert_with(|| (preset.to_owned(), Vec::new()));
        entry.1.push(shown);
    }
    let mut out = Vec::new();
    for (owner, (preset, mut limits)) in by_owner {
        limits.sort_by_key(|l| FIELDS.iter().position(|f| l.starts_with(f)));
        let mut d = Diagnostic::new(
            kiln_core::Severity::Info,
            "preset-limits",
            format!(
                "{} runs under preset {preset}'s resource limits: {}",
                describe_owner(owner),
                limits.join(", ")
            ),
        )
        .with_help(
            "they bound the process in every target (systemd CPUQuota/MemoryMax/TasksMax, compose, Kubernetes limits); write `resources …` in its block to choose your own",
        );
        let first = FIELDS
            .iter()
            .map(|f| format!("{owner}/resources/{f}"))
            .find(|p| {
                model
                    .provenance
                    .map
                    .get(p)
                    .is_some_and(|o| o[0].layer.starts_with("preset "))
            })
            .unwrap_or_else(|| format!("{owner}/resources"));
        crate::place::place(&mut d, model, &first, sources);
        d.notes.retain(|n| !n.starts_with("the value comes from"));
        d.notes.push(format!("environment {env}"));
        out.push(d);
    }
    out
}

/// The unescaped segments of a model pointer (`/postgres/db/pooler` → postgres, db, pooler).
fn owner_segments(owner: &str) -> Vec<String> {
    owner
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The resources of the process at `owner` (`/services/web`, `/postgres/db/pooler`), read from
/// the model itself (no JSON rendering of it per environment).
fn resources_at<'m>(model: &'m Model, owner: &str) -> Option<&'m kiln_core::model::Resources> {
    let parts = owner_segments(owner);
    match parts
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["services", name] => model.services.get(*name).map(|s| &s.resources),
        ["postgres", name] => model.postgres.get(*name).map(|p| &p.resources),
        ["postgres", name, "pooler"] => model
            .postgres
            .get(*name)
            .and_then(|p| p.pooler.as_ref())
            .map(|p| &p.resources),
        ["redis", name] => model.redis.get(*name).map(|r| &r.resources),
        _ => None,
    }
}

/// `/services/web` → "service `web`"; `/postgres/db/pooler` → "the pooler of postgres `db`".
fn describe_owner(owner: &str) -> String {
    let parts = owner_segments(owner);
    let kind = |k: &str| match k {
        "services" => "service".to_owned(),
        other => other.to_owned(),
    };
    match parts.as_slice() {
        [k, name] => format!("{} `{name}`", kind(k)),
        [k, name, rest @ ..] => format!("the {} of {} `{name}`", rest.join(" "), kind(k)),
        _ => format!("`{owner}`"),
    }
}

/// Millicores as the spec writes them: `1`, `0.25`.
fn millicores(m: u64) -> String {
    if m.is_multiple_of(1000) {
        (m / 1000).to_string()
    } else {
        let s = format!("{}.{:03}", m / 1000, m % 1000);
        s.trim_end_matches('0').to_owned()
    }
}

/// Bytes as the spec writes them: `1Gi`, `512Mi`.
fn bytes(b: u64) -> String {
    kiln_targets::binary_size(b, &[("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)])
}

fn build_env(project: &Project, env: &str, project_ok: bool) -> (EnvBuild, Vec<Diagnostic>) {
    let (model, mut diags) = kiln_core::resolve::resolve(project, env);
    let mut artifacts = Vec::new();
    if let Some(model) = &model
        && !diags.iter().any(Diagnostic::is_error)
    {
        let out = kiln_targets::emit_all(model);
        for u in &out.unsupported {
            let target = u.target.as_str();
            let mut d = Diagnostic::warning("target-unsupported", format!("{target} cannot express this setting: {}", u.message))
                .with_help(format!("the {target} output leaves it out; set it another way for that target, or drop {target} from `targets`"));
            // A setting the user wrote is a warning; a preset default the target
            // cannot express is only information.
            if !crate::place::place(&mut d, model, &u.pointer, &project.sources) && !u.security {
                d.severity = kiln_core::Severity::Info;
            }
            d.notes.push(format!("environment {env}"));
            diags.push(d);
        }
        for f in &out.failed_patches {
            let mut d = Diagnostic::error("patch-target-missing", format!("this patch applies to nothing: {}", f.message))
                .with_help("patch what the environment emits (its sites, services and `targets`), or remove the patch");
            crate::place::place(&mut d, model, &f.pointer, &project.sources);
            d.notes.push(format!("environment {env}"));
            diags.push(d);
        }
        // Information is noise beside errors: only a sound spec hears about its presets.
        if project_ok {
            diags.extend(preset_limits(model, &project.sources, env));
        }
        for mut a in out.artifacts {
            match safe_relative(&a.path) {
                true => {
                    a.path = format!("{}/{env}/{}", project.output, a.path);
                    artifacts.push(a);
                }
                false => diags.push(Diagnostic::error(
                    "unsafe-output-path",
                    format!("refusing to write `{}` outside the output folder", a.path),
                )),
            }
        }
    }
    (
        EnvBuild {
            name: env.to_owned(),
            model,
            artifacts,
            settled: Vec::new(),
        },
        diags,
    )
}

/// The same diagnostic from several environments (a shared layer) is reported
/// once, naming every environment. Linear: each diagnostic is looked up by hash
/// among those already kept (a thousand environments report tens of thousands).
pub fn merge_across_environments(diags: &mut Vec<Diagnostic>) {
    let mut merged: Vec<(Diagnostic, Vec<String>)> = Vec::new();
    let mut index: HashMap<Diagnostic, usize> = HashMap::new();
    for mut d in diags.drain(..) {
        let (envs, rest): (Vec<String>, Vec<String>) = std::mem::take(&mut d.notes)
            .into_iter()
            .partition(|n| n.starts_with("environment "));
        d.notes = rest;
        let names = envs
            .into_iter()
            .map(|n| n.trim_start_matches("environment ").to_owned());
        match index.get(&d) {
            Some(&i) => merged[i].1.extend(names),
            None => {
                index.insert(d.clone(), merged.len());
                merged.push((d, names.collect()));
            }
        }
    }
    for (mut d, names) in merged {
        match names.len() {
            0 => {}
            1 => d.notes.push(format!("environment {}", names[0])),
            _ => d.notes.push(format!("environments {}", names.join(", "))),
        }
        diags.push(d);
    }
}

/// The span that set the value at `pointer` (or its nearest parent).
pub fn span_of(model: &Model, pointer: &str) -> Option<Span> {
    model
        .provenance
        .lookup(pointer)
        .map(|(_, origins)| origins[0].span)
}

/// A relative path with no `..`, no empty or `.` segments, no backslashes.
pub fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

impl Build {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Every generated file whose text this build holds (all of them, unless
    /// some were [settled](EnvBuild::settled)), by path relative to the project
    /// folder.
    pub fn files(&self) -> BTreeMap<&str, &Artifact> {
        self.envs
            .iter()
            .flat_map(|e| e.artifacts.iter())
            .map(|a| (a.path.as_str(), a))
            .collect()
    }

    /// The lock describing this build's inputs and outputs.
    pub fn lock(&self, policies: &BTreeMap<String, crate::lock::PolicyEntry>) -> Lock {
        let inputs = self
            .project
            .files
            .iter()
            .map(|&f| {
                let file = self.project.sources.get(f);
                (file.name.clone(), hash(file.text.as_bytes()))
            })
            .collect();
        Lock {
            compiler: COMPILER_VERSION.to_owned(),
            inputs,
            presets: preset_hashes(),
            policies: policies.clone(),
            // Hashed in parallel: a large project has tens of thousands of files.
            outputs: self
                .files()
                .into_par_iter()
                .map(|(p, a)| (p.to_owned(), hash(a.text.as_bytes())))
                .chain(
                    self.envs
                        .par_iter()
                        .flat_map_iter(|e| e.settled.iter().cloned()),
                )
                .collect(),
        }
    }

    /// The outputs found identical on disk while building (see [`EnvBuild::settled`]).
    pub fn settled(&self) -> std::collections::BTreeSet<&str> {
        self.envs
            .iter()
            .flat_map(|e| &e.settled)
            .map(|(p, _)| p.as_str())
            .collect()
    }
}

/// blake3 of every embedded stdlib preset.
pub fn preset_hashes() -> BTreeMap<String, String> {
    STDLIB_PRESETS
        .iter()
        .map(|(name, text)| ((*name).to_owned(), hash(text.as_bytes())))
        .collect()
}
