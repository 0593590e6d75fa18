//! `kiln policy list`, `kiln policy test` and `kiln explain RULE|CODE`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use kiln_core::diagnostic::{Diagnostic, did_you_mean, normalize};
use kiln_core::source::Sources;

use crate::checked::{SpecModules, std_metas};
use crate::cli::{ListFormat, PolicyCommand};
use crate::ui::{EXIT_ERROR, EXIT_OK, Ui, out};

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

fn list(ui: &Ui, dir: &Path, env: Option<&str>, format: ListFormat) -> Result<u8> {
    let mut overrides = BTreeMap::new();
    let mut title = "standard library".to_owned();
    // The project's own modules in force for the environment: (path, hash, metadata).
    let mut own: Vec<(String, String, kiln_policy_host::PolicyMeta)> = Vec::new();
    if let Some(env) = env {
        let (root, project, mut diags) = match crate::ui::load(dir) {
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
        let (modules, failed) = SpecModules::new(&root).for_env(&model);
        if !failed.is_empty() {
            ui.diagnostics(&failed, &project.sources);
            return Ok(EXIT_ERROR);
        }
        for p in modules {
            own.push((
                p.spec_path.clone().unwrap_or_default(),
                p.module.module_hash().to_hex().to_string(),
                p.module.meta().clone(),
            ));
        }
    }
    let mut rows = Vec::new();
    let std: Vec<(String, String, kiln_policy_host::PolicyMeta)> = std_metas()
        .iter()
        .map(|(name, h, meta)| {
            (
                format!("stdlib/policies/{name}.wasm"),
                h.to_string(),
                meta.clone(),
            )
        })
        .collect();
    for (module, h, meta) in std.iter().chain(&own) {
        for r in &meta.rules {
            let o = overrides.get(&r.id);
            rows.push(serde_json::json!({
                "policy": meta.id, "version": meta.version, "module": module, "blake3": h,
                "rule": r.id, "default-severity": r.default_severity.as_str(),
                "severity": o.map_or(r.default_severity.as_str(), |o| o.severity.as_str()),
                "reason": o.and_then(|o| o.reason.clone()), "summary": r.summary, "upstream": r.upstream,
            }));
        }
    }
    match format {
        ListFormat::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "format_version": kiln::report::JSON_FORMAT_VERSION,
                "kiln": kiln::build::COMPILER_VERSION,
                "policies": rows,
            }))?
        ))?,
        ListFormat::Human => {
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
            out(&kiln_core::diagnostic::sanitize_for_terminal(&text))?;
        }
    }
    Ok(EXIT_OK)
}

/// The spec language's diagnostic codes, from the table of docs/spec.md's Diagnostics
/// section (one source for the documentation and `kiln explain CODE`): code, severity, when.
pub fn spec_codes() -> Vec<(String, String, String)> {
    const SPEC: &str = include_str!("../../../docs/spec.md");
    let Some(start) = SPEC.find("\n## Diagnostics") else {
        return Vec::new();
    };
    let section = &SPEC[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut out = Vec::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
        let [code, severity, when] = cells[..] else {
            continue;
        };
        // A cell may name two codes: `include-depth` / `include-count`.
        for code in code.split(" / ") {
            let Some(code) = code
                .trim()
                .strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
            else {
                continue;
            };
            let when = when.replace('`', "");
            out.push((
                code.to_owned(),
                severity.trim().to_owned(),
                when.trim().to_owned(),
            ));
        }
    }
    out
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
            out(&kiln_core::diagnostic::sanitize_for_terminal(&text))?;
            return Ok(EXIT_OK);
        }
    }
    let codes = spec_codes();
    if let Some((_, severity, when)) = codes.iter().find(|(c, _, _)| c == rule) {
        let text = format!(
            "{rule} — a kiln check of the spec ({severity})\n\nwhen: {when}\n\nSee the Diagnostics section of docs/spec.md.\n"
        );
        out(&text)?;
        return Ok(EXIT_OK);
    }
    let mut ids: Vec<String> = std_metas()
        .iter()
        .flat_map(|(_, _, m)| m.rules.iter().map(|r| r.id.clone()))
        .collect();
    ids.extend(codes.into_iter().map(|(c, _, _)| c));
    let help = match did_you_mean(rule, ids.iter().map(String::as_str)) {
        Some(b) => format!("did you mean `{b}`?"),
        None => "pass a generated file (`generated/production/nginx/nginx.conf:12`), a rule id from `kiln policy list`, or a diagnostic code (`port-collision`)".into(),
    };
    ui.diagnostics(
        &[Diagnostic::error(
            "unknown-rule",
            format!("`{rule}` is neither a file, a rule nor a diagnostic code"),
        )
        .with_help(help)],
        &Sources::new(),
    );
    Ok(EXIT_ERROR)
}
