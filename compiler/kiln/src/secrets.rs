//! `kiln secrets check --env NAME --env-file FILE`: judges the real values of
//! an environment's declared secrets by their kinds, through the policies that
//! ask for secret values. No value is ever printed: not in diagnostics, not in
//! errors about the file's syntax.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use kiln_core::diagnostic::{Diagnostic, normalize};
use kiln_core::source::Sources;

use crate::cli::Format;
use crate::cmd::{EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, Ui, out};

/// Parses `KEY=value` lines (`export KEY=value`, quotes, `#` comments).
/// Problems are reported by line number only, never with the line's text.
pub fn parse_env_file(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            problems.push(format!("line {}: not a KEY=value line", i + 1));
            continue;
        };
        let key = key.trim();
        if !kiln_core::schema::is_env_name(key) {
            problems.push(format!(
                "line {}: `{}` is not a variable name",
                i + 1,
                key.chars().take(40).collect::<String>()
            ));
            continue;
        }
        let value = value.trim();
        let value = match (value.chars().next(), value.chars().last()) {
            (Some(q @ ('"' | '\'')), Some(e)) if e == q && value.len() >= 2 => {
                &value[1..value.len() - 1]
            }
            _ => value.split(" #").next().unwrap_or(value).trim_end(),
        };
        values.insert(key.to_owned(), value.to_owned());
    }
    (values, problems)
}

pub fn check(ui: &Ui, dir: &Path, env: &str, env_file: &Path, format: Format) -> Result<u8> {
    let (root, project, diags) = match crate::cmd::load(dir) {
        Ok(x) => x,
        Err(d) => {
            ui.diagnostics(&[*d], &Sources::new());
            return Ok(EXIT_ERROR);
        }
    };
    let b = kiln::build::build(project, diags, &[env.to_owned()]);
    if b.has_errors() || b.envs.is_empty() {
        ui.diagnostics(&b.diagnostics, &b.project.sources);
        return Ok(EXIT_ERROR);
    }
    let _ = root;
    let text = match std::fs::read(env_file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                eprintln!("kiln: {} is not UTF-8", env_file.display());
                return Ok(EXIT_ERROR);
            }
        },
        Err(e) => {
            eprintln!("kiln: cannot read {}: {e}", env_file.display());
            return Ok(EXIT_ERROR);
        }
    };
    let (values, problems) = parse_env_file(&text);
    let model = b.envs[0].model.as_ref().expect("built without errors");
    let file = env_file.display().to_string();
    let mut diags: Vec<Diagnostic> = problems
        .iter()
        .map(|p| {
            Diagnostic::error("env-file-syntax", format!("{file}, {p}"))
                .with_help("write one `NAME=value` per line; `#` starts a comment")
        })
        .collect();

    // Every secret the processes receive, with where it is declared.
    let mut declared: BTreeMap<String, (bool, String)> = model
        .secrets
        .iter()
        .map(|(k, s)| (k.clone(), (s.optional, s.kind.clone())))
        .collect();
    for svc in model.services.values() {
        for (name, v) in &svc.env {
            if let kiln_core::model::EnvValue::Secret(s) = v {
                declared.entry(name.clone()).or_insert((false, s.clone()));
            }
        }
    }
    let mut secret_values = BTreeMap::new();
    for (name, (optional, kind)) in &declared {
        let span = model
            .provenance
            .lookup(&format!("/secrets/{name}"))
            .map(|(_, o)| o[0].span);
        match values.get(name).filter(|v| !v.is_empty()) {
            Some(v) => {
                secret_values.insert(name.clone(), v.clone());
            }
            None if *optional => {}
            None => {
                let mut d = Diagnostic::error(
                    "secret-missing",
                    format!("secret `{name}` ({kind}) is not set in {file}"),
                )
                .with_help(format!(
                    "add `{name}=…` to {file}; the spec declares it required"
                ));
                if let Some(s) = span {
                    d = d.with_label(s, "declared here");
                }
                diags.push(d);
            }
        }
    }
    diags.extend(crate::policy_cmd::secret_policies(&b, &secret_values)?);
    normalize(&mut diags);
    let errors = diags.iter().filter(|d| d.is_error()).count();
    match format {
        Format::Json => {
            let list: Vec<_> = diags
                .iter()
                .map(|d| kiln_core::diagnostic::JsonDiagnostic::new(d, &b.project.sources))
                .collect();
            out(&format!(
                "{}\n",
                serde_json::to_string_pretty(
                    &serde_json::json!({"checked": secret_values.len(), "diagnostics": list})
                )?
            ))?;
        }
        _ => {
            ui.diagnostics(&diags, &b.project.sources);
            eprintln!(
                "kiln: checked {} secret value(s) of environment {env}: {errors} error(s)",
                secret_values.len()
            );
        }
    }
    Ok(if errors > 0 { EXIT_FINDINGS } else { EXIT_OK })
}
