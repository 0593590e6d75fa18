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
use crate::cli::SecretsCommand;
use crate::ui::{EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, Ui, out};

/// Parses `KEY=value` lines (`export KEY=value`, quotes, `#` comments). Problems are
/// reported by line and column only, never with any of the line's text: in an env file, any
/// part of a line may be a secret (`KEY value==` has no name at all, and a PEM or base64
/// line is nothing but the secret).
pub fn parse_env_file(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            problems.push(format!("line {}: not a `NAME=value` line (no `=`)", i + 1));
            continue;
        };
        let key = key.trim();
        if !kiln_core::schema::is_env_name(key) {
            // The column of the first character that cannot be in a name: a position, not text.
            let bad = key
                .char_indices()
                .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |(at, _)| key[..at].chars().count());
            problems.push(format!(
                "line {}, column {}: what comes before `=` is not a variable name",
                i + 1,
                indent + bad + 1
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

/// The most an env file may hold: a file of secrets, not a data set.
const MAX_ENV_FILE: u64 = 4 << 20;

/// The env file's text. It is the user's own path (not the branch's), so it may be a pipe
/// (`--env-file <(vault read …)`); it is read to at most [`MAX_ENV_FILE`] bytes.
fn read_env_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err("it is a folder".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_ENV_FILE {
        return Err(format!("it is larger than {} MiB", MAX_ENV_FILE >> 20));
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8".to_owned())
}

/// The report in `format`: in every state, a failure before any value was read included
/// (`checked` 0), so a CI step that parses it never gets an empty stdout.
fn emit(
    ui: &Ui,
    format: Format,
    paths: &kiln::report::Paths,
    diags: &[Diagnostic],
    sources: &Sources,
    checked: usize,
) -> Result<()> {
    match format {
        Format::Json => {
            let list: Vec<_> = diags
                .iter()
                .map(|d| kiln_core::diagnostic::JsonDiagnostic::new(d, sources))
                .collect();
            out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&serde_json::json!({
                    "format_version": kiln::report::JSON_FORMAT_VERSION,
                    "kiln": kiln::build::COMPILER_VERSION,
                    "checked": checked,
                    "diagnostics": list,
                }))?
            ))?;
        }
        Format::Sarif => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&kiln::report::sarif(
                diags,
                sources,
                &crate::checked::rule_infos(),
                &[],
                paths,
            ))?
        ))?,
        Format::Github => out(&kiln::report::github(diags, sources, &[], paths))?,
        Format::Human => ui.diagnostics(diags, sources),
    }
    Ok(())
}

pub fn check(ui: &Ui, dir: &Path, env: &str, env_file: &Path, format: Format) -> Result<u8> {
    let paths = kiln::report::Paths::for_project(dir);
    let (root, project, diags) = match crate::ui::load(dir) {
        Ok(x) => x,
        Err(d) => {
            emit(ui, format, &paths, &[*d], &Sources::new(), 0)?;
            return Ok(EXIT_ERROR);
        }
    };
    let b = kiln::build::build(project, diags, &[env.to_owned()]);
    if b.has_errors() || b.envs.is_empty() {
        emit(ui, format, &paths, &b.diagnostics, &b.project.sources, 0)?;
        return Ok(EXIT_ERROR);
    }
    let _ = root;
    let text = match read_env_file(env_file) {
        Ok(text) => text,
        Err(why) => {
            let d = Diagnostic::error(
                "env-file",
                format!(
                    "cannot use the env file {}: {why}",
                    kiln_core::diagnostic::quote_for_terminal(&env_file.display().to_string())
                ),
            )
            .with_help("pass a readable file of `NAME=value` lines");
            emit(ui, format, &paths, &[d], &Sources::new(), 0)?;
            return Ok(EXIT_ERROR);
        }
    };
    let (values, problems) = parse_env_file(&text);
    let model = b.envs[0].model.as_ref().expect("built without errors");
    let file = env_file.display().to_string();
    let mut diags: Vec<Diagnostic> = problems
        .iter()
        .map(|p| {
            Diagnostic::error(
                "env-file-syntax",
                format!("{}, {p}", kiln_core::diagnostic::quote_for_terminal(&file)),
            )
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
    diags.extend(crate::checked::secret_policies(&b, &secret_values)?);
    normalize(&mut diags);
    let errors = diags.iter().filter(|d| d.is_error()).count();
    emit(
        ui,
        format,
        &paths,
        &diags,
        &b.project.sources,
        secret_values.len(),
    )?;
    if format == Format::Human {
        eprintln!(
            "kiln: checked {} secret value(s) of environment {env}: {errors} error(s)",
            secret_values.len()
        );
    }
    Ok(if errors > 0 { EXIT_FINDINGS } else { EXIT_OK })
}

/// `kiln secrets …`.
pub fn secrets(ui: &Ui, command: SecretsCommand) -> Result<u8> {
    let SecretsCommand::Check {
        project,
        env,
        env_file,
        format,
    } = command;
    check(ui, &project.dir, &env, &env_file, format)
}
