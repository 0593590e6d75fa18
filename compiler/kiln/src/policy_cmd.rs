//! Loading policy modules (the embedded standard library and the modules a
//! spec declares, pinned by blake3) and the `policy`, `secrets` and
//! `explain RULE` commands.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use kiln::build::Build;
use kiln::lock::{PolicyEntry, hash};
use kiln::policy::{Date, Policy};
use kiln::report::RuleInfo;
use kiln_core::diagnostic::{Diagnostic, did_you_mean, normalize};
use kiln_core::source::Sources;
use kiln_policy_host::{HostConfig, PolicyHost};

use crate::cli::{Format, PolicyCommand, SecretsCommand};
use crate::cmd::{EXIT_ERROR, EXIT_OK, Ui, out};

fn host() -> &'static Result<PolicyHost, String> {
    static HOST: OnceLock<Result<PolicyHost, String>> = OnceLock::new();
    HOST.get_or_init(|| {
        let config = HostConfig {
            cache_dir: kiln_policy_host::default_cache_dir(),
            ..HostConfig::default()
        };
        PolicyHost::new(config).map_err(|e| format!("{e:#}"))
    })
}

/// The standard library, loaded (compiled or fetched from the cache) once.
fn stdlib() -> Result<&'static [Arc<Policy>], String> {
    static STD: OnceLock<Result<Vec<Arc<Policy>>, String>> = OnceLock::new();
    STD.get_or_init(|| kiln::stdlib::load(host().as_ref().map_err(Clone::clone)?))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

pub fn policy_entries() -> BTreeMap<String, PolicyEntry> {
    kiln::stdlib::lock_entries()
}

pub fn rule_infos() -> BTreeMap<String, RuleInfo> {
    kiln::stdlib::rule_infos()
}

fn std_metas() -> &'static [(String, String, kiln_policy_host::PolicyMeta)] {
    kiln::stdlib::metas()
}

fn today() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Date::from_unix_days((secs / 86_400) as i64)
}

/// Loads the modules each environment's spec declares, checking their pins.
fn spec_modules(
    root: &Path,
    b: &Build,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Vec<Arc<Policy>>> {
    let mut out: BTreeMap<String, Vec<Arc<Policy>>> = BTreeMap::new();
    let mut cache: BTreeMap<String, Arc<Policy>> = BTreeMap::new();
    for env in &b.envs {
        let Some(model) = &env.model else { continue };
        for (path, m) in &model.policies.modules {
            let label = |d: Diagnostic| match m.span {
                Some(s) => d.with_label(s, "declared here"),
                None => d,
            };
            if let Some(p) = cache.get(path) {
                out.entry(env.name.clone()).or_default().push(p.clone());
                continue;
            }
            if !kiln::build::safe_relative(path) {
                diags.push(label(
                    Diagnostic::error(
                        "module-path",
                        format!("module path `{}` leaves the project folder", path),
                    )
                    .with_help(
                        "keep policy modules inside the project and name them by relative path",
                    ),
                ));
                continue;
            }
            let bytes = match std::fs::read(root.join(path)) {
                Ok(b) => b,
                Err(e) => {
                    diags.push(label(
                        Diagnostic::error(
                            "module-missing",
                            format!("cannot read policy module `{}`: {e}", path),
                        )
                        .with_help("check the path; it is relative to the project folder"),
                    ));
                    continue;
                }
            };
            let actual = hash(&bytes);
            match &m.blake3 {
                None => {
                    diags.push(label(
                        Diagnostic::error("module-unpinned", format!("policy module `{}` is not pinned", path)).with_help(format!("add `blake3=\"{actual}\"` so a changed module cannot slip in unreviewed")),
                    ));
                    continue;
                }
                Some(pin) if *pin != actual => {
                    diags.push(label(
                        Diagnostic::error("module-hash-mismatch", format!("policy module `{}` does not match its pin", path))
                            .with_help(format!("the file's blake3 is {actual}; if this change is intended and reviewed, update the pin"))
                            .with_note(format!("pinned: {pin}")),
                    ));
                    continue;
                }
                Some(_) => {}
            }
            let host = match host() {
                Ok(h) => h,
                Err(e) => {
                    diags.push(
                        Diagnostic::error(
                            "policy-host",
                            format!("cannot start the policy engine: {e}"),
                        )
                        .with_help("this is a bug in kiln; please report it"),
                    );
                    return out;
                }
            };
            match host.load(path, &bytes) {
                Ok(module) => {
                    let p = Arc::new(Policy {
                        module,
                        declared_at: m.span,
                        spec_path: Some(path.clone()),
                    });
                    cache.insert(path.clone(), p.clone());
                    out.entry(env.name.clone()).or_default().push(p);
                }
                Err(e) => diags.push(label(
                    Diagnostic::error(
                        "policy-invalid",
                        format!("policy module `{}` cannot be used: {}", path, e.kind()),
                    )
                    .with_help(e.help()),
                )),
            }
        }
    }
    out
}

/// The policy stage of a build.
pub fn check_policies(root: &Path, mut b: Build) -> Build {
    if b.has_errors() || b.envs.is_empty() {
        return b;
    }
    let std = match stdlib() {
        Ok(s) => s,
        Err(e) => {
            b.diagnostics.push(
                Diagnostic::error("policy-host", e)
                    .with_help("this is a bug in kiln; please report it"),
            );
            return b;
        }
    };
    let mut diags = Vec::new();
    let extra = spec_modules(root, &b, &mut diags);
    b.diagnostics.extend(diags);
    kiln::policy::run(&mut b, std, &extra, today());
    normalize(&mut b.diagnostics);
    b
}

pub fn policy(ui: &Ui, command: PolicyCommand) -> Result<u8> {
    match command {
        PolicyCommand::List {
            project,
            env,
            format,
        } => list(ui, &project.dir, env.as_deref(), format),
        PolicyCommand::Test { dir } => crate::policy_test::run(ui, &dir),
    }
}

fn list(ui: &Ui, dir: &Path, env: Option<&str>, format: Format) -> Result<u8> {
    let mut overrides = BTreeMap::new();
    let mut title = "standard library".to_owned();
    if let Some(env) = env {
        let (_, project, mut diags) = match crate::cmd::load(dir) {
            Ok(x) => x,
            Err(d) => {
                ui.diagnostics(&[*d], &Sources::new());
                return Ok(EXIT_ERROR);
            }
        };
        let (model, mut d) = kiln_core::resolve::resolve(&project, env);
        diags.append(&mut d);
        normalize(&mut diags);
        ui.diagnostics(&diags, &project.sources);
        let Some(model) = model else {
            return Ok(EXIT_ERROR);
        };
        if diags.iter().any(Diagnostic::is_error) {
            return Ok(EXIT_ERROR);
        }
        title = format!(
            "environment {} (tier {})",
            model.environment,
            model.tier.as_str()
        );
        overrides = model.policies.rules.clone();
    }
    let mut rows = Vec::new();
    for (name, h, meta) in std_metas() {
        for r in &meta.rules {
            let o = overrides.get(&r.id);
            rows.push(serde_json::json!({
                "policy": meta.id, "version": meta.version, "module": format!("stdlib/policies/{name}.wasm"), "blake3": h,
                "rule": r.id, "default-severity": r.default_severity.as_str(),
                "severity": o.map_or(r.default_severity.as_str(), |o| o.severity.as_str()),
                "reason": o.and_then(|o| o.reason.clone()), "summary": r.summary, "upstream": r.upstream,
            }));
        }
    }
    match format {
        Format::Json | Format::Sarif => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({"policies": rows}))?
        ))?,
        Format::Human | Format::Github => {
            let mut text = format!(
                "Policies in force for the {title} (severities: default in production; policies lower them in other tiers)\n\n"
            );
            let mut last = String::new();
            for r in &rows {
                let policy = r["policy"].as_str().unwrap_or("");
                if policy != last {
                    text.push_str(&format!(
                        "{policy} {} ({})\n",
                        r["version"].as_str().unwrap_or(""),
                        r["module"].as_str().unwrap_or("")
                    ));
                    last = policy.to_owned();
                }
                let sev = r["severity"].as_str().unwrap_or("");
                let changed = if sev != r["default-severity"].as_str().unwrap_or("") {
                    " (set by the spec)"
                } else {
                    ""
                };
                text.push_str(&format!(
                    "  {:<36} {:<6}{changed} {}\n",
                    r["rule"].as_str().unwrap_or(""),
                    sev,
                    r["summary"].as_str().unwrap_or("")
                ));
            }
            out(&text)?;
        }
    }
    Ok(EXIT_OK)
}

pub fn explain_rule(ui: &Ui, rule: &str) -> Result<u8> {
    for (name, _, meta) in std_metas() {
        if let Some(r) = meta.rule(rule) {
            let mut text = format!(
                "{} — {}\n\npolicy {} {} (stdlib/policies/{name}.wasm), default severity {}\n",
                r.id,
                r.summary,
                meta.id,
                meta.version,
                r.default_severity.as_str()
            );
            if !r.upstream.is_empty() {
                text.push_str(&format!("upstream: {}\n", r.upstream.join(", ")));
            }
            for (title, body) in [
                ("What it does", &r.docs.what),
                ("Why is this bad?", &r.docs.why),
                ("Example", &r.docs.example),
                ("Use instead", &r.docs.instead),
            ] {
                text.push_str(&format!("\n## {title}\n\n{}\n", body.trim_end()));
            }
            out(&text)?;
            return Ok(EXIT_OK);
        }
    }
    let ids: Vec<String> = std_metas()
        .iter()
        .flat_map(|(_, _, m)| m.rules.iter().map(|r| r.id.clone()))
        .collect();
    let help = match did_you_mean(rule, ids.iter().map(String::as_str)) {
        Some(b) => format!("did you mean `{b}`?"),
        None => "pass a generated file (`generated/production/nginx/nginx.conf:12`) or a rule id from `kiln policy list`".into(),
    };
    ui.diagnostics(
        &[Diagnostic::error(
            "unknown-rule",
            format!("`{rule}` is neither a file nor a rule"),
        )
        .with_help(help)],
        &Sources::new(),
    );
    Ok(EXIT_ERROR)
}

pub fn secrets(ui: &Ui, command: SecretsCommand) -> Result<u8> {
    let SecretsCommand::Check {
        project,
        env,
        env_file,
        format,
    } = command;
    crate::secrets::check(ui, &project.dir, &env, &env_file, format)
}

/// Evaluates every policy that asks for secret values over one environment.
pub fn secret_policies(b: &Build, values: &BTreeMap<String, String>) -> Result<Vec<Diagnostic>> {
    let std = stdlib().map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    for env in &b.envs {
        let Some(model) = &env.model else { continue };
        let spec = model.to_json();
        for p in std.iter().filter(|p| {
            p.module
                .meta()
                .inputs
                .contains(&kiln_policy_host::InputKind::SecretValues)
        }) {
            out.extend(kiln::policy::evaluate(
                p,
                model,
                &spec,
                &env.artifacts,
                Some(values),
                &b.project.sources,
            ));
        }
    }
    Ok(out)
}
