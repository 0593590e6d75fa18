//! The shared layer of the commands: terminal settings, exit codes, stdout, opening and
//! loading a project, and reporting diagnostics in each output format. Every command file
//! builds on it; none of them on another command.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use kiln::build::{Build, COMPILER_VERSION};
use kiln::compare::{self, Difference};
use kiln_core::diagnostic::{Diagnostic, JsonDiagnostic, RenderOptions, render};
use kiln_core::project::{self, Project, ROOT_FILE};
use kiln_core::source::Sources;

use crate::checked::Keep;
use crate::cli::{Color, Format};
use crate::disk;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// Terminal settings, decided once.
pub struct Ui {
    pub color: bool,
    pub width: usize,
    pub verbose: bool,
    /// `--quiet`: errors and drift only.
    pub quiet: bool,
}

impl Ui {
    pub fn new(color: Color, verbose: bool, quiet: bool) -> Ui {
        let is_tty = std::io::stderr().is_terminal();
        let color = match color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
                    && is_tty
            }
        };
        let width = if is_tty {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(100)
        } else {
            80
        };
        Ui {
            color,
            width,
            verbose,
            quiet,
        }
    }

    /// Renders diagnostics to stderr; information-level ones only with `--verbose`.
    ///
    /// Without `--verbose`, a project of many environments stays readable: a note
    /// naming environments names at most [`ENV_NAMES_SHOWN`] of them, and of the
    /// warnings sharing one code only the first [`SAME_CODE_SHOWN`] are drawn,
    /// the rest counted. Errors are always drawn in full.
    pub fn diagnostics(&self, diags: &[Diagnostic], sources: &Sources) {
        let mut per_code: BTreeMap<&str, usize> = BTreeMap::new();
        let mut folded: BTreeMap<&str, usize> = BTreeMap::new();
        let mut shown: Vec<Diagnostic> = Vec::new();
        let mut info = 0;
        for d in diags {
            if self.quiet && !d.is_error() {
                continue;
            }
            if self.verbose {
                let mut d = d.clone();
                if let Some(p) = &d.pointer {
                    d.notes.push(format!(
                        "model path {p} (what `waive {} path=…` names)",
                        d.code
                    ));
                }
                shown.push(d);
                continue;
            }
            if d.severity == kiln_core::Severity::Info {
                info += 1;
                continue;
            }
            let seen = per_code.entry(&d.code).or_default();
            *seen += 1;
            if !d.is_error() && *seen > SAME_CODE_SHOWN {
                *folded.entry(&d.code).or_default() += 1;
                continue;
            }
            let mut d = d.clone();
            for note in &mut d.notes {
                shorten_environment_list(note);
            }
            shown.push(d);
        }
        let mut text = render(
            &shown,
            sources,
            RenderOptions {
                color: self.color,
                width: self.width,
            },
        );
        if !folded.is_empty() {
            let total: usize = folded.values().sum();
            let codes: Vec<String> = folded.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
            text.push_str(&format!(
                "kiln: {total} more warning(s) like the ones above hidden ({}); --verbose shows them\n",
                codes.join(", ")
            ));
        }
        if info > 0 {
            text.push_str(&format!(
                "kiln: {info} informational note(s) hidden; --verbose shows them\n"
            ));
        }
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// How many environments a note names in human output without `--verbose`.
const ENV_NAMES_SHOWN: usize = 8;
/// How many warnings of one code human output draws without `--verbose`.
const SAME_CODE_SHOWN: usize = 25;

/// Shortens "environments a (production), b (production), …" to its first
/// [`ENV_NAMES_SHOWN`] names and a count of the rest.
fn shorten_environment_list(note: &mut String) {
    let Some(list) = note.strip_prefix("environments ") else {
        return;
    };
    let names: Vec<&str> = list.split(", ").collect();
    if names.len() > ENV_NAMES_SHOWN {
        *note = format!(
            "environments {} and {} more",
            names[..ENV_NAMES_SHOWN].join(", "),
            names.len() - ENV_NAMES_SHOWN
        );
    }
}

/// Exit code for a set of diagnostics: 2 for spec errors, 1 for policy errors only.
pub fn exit_code(diags: &[Diagnostic]) -> u8 {
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    if errors.is_empty() {
        EXIT_OK
    } else if errors.iter().all(|d| is_policy_code(&d.code)) {
        EXIT_FINDINGS
    } else {
        EXIT_ERROR
    }
}

/// Policy rule ids are `policy.rule`; kiln's own checks have no dot.
pub fn is_policy_code(code: &str) -> bool {
    code.contains('.')
}

pub fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

pub fn project_root(dir: &Path) -> Result<PathBuf, Box<Diagnostic>> {
    if dir.join(ROOT_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let what = if dir.is_dir() {
        format!("no {ROOT_FILE} in `{}`", dir.display())
    } else {
        format!("`{}` is not a folder", dir.display())
    };
    Err(Box::new(Diagnostic::error("no-project", what).with_help(
        "pass the folder holding kiln.kdl: `kiln compile path/to/project`",
    )))
}

/// Opens the project folder `dir` and loads its specs through [`disk::ProjectDir`].
pub fn load(dir: &Path) -> Result<(disk::ProjectDir, Project, Vec<Diagnostic>), Box<Diagnostic>> {
    let root = project_root(dir)?;
    let root = disk::ProjectDir::open(&root).map_err(|e| {
        Box::new(
            Diagnostic::error(
                "no-project",
                format!("cannot open the project folder: {e:#}"),
            )
            .with_help("pass the folder holding kiln.kdl"),
        )
    })?;
    let (project, diags) = {
        let mut loader = root.loader();
        project::load(&mut loader)
    };
    Ok((root, project, diags))
}

pub fn report_diagnostics(
    ui: &Ui,
    dir: &Path,
    diagnostics: &[Diagnostic],
    sources: &Sources,
    format: Format,
    diffs: &[Difference],
) -> Result<()> {
    let paths = kiln::report::Paths::for_project(dir);
    let annotated: Vec<Diagnostic> = diagnostics
        .iter()
        .filter(|d| ui.verbose || d.severity != kiln_core::Severity::Info)
        .cloned()
        .collect();
    match format {
        Format::Human => ui.diagnostics(diagnostics, sources),
        Format::Json => {
            let doc = serde_json::json!({
                "format_version": kiln::report::JSON_FORMAT_VERSION,
                "kiln": COMPILER_VERSION,
                "ok": exit_code(diagnostics) == EXIT_OK && diffs.is_empty(),
                "diagnostics": diagnostics.iter().map(|d| JsonDiagnostic::new(d, sources)).collect::<Vec<_>>(),
                "files": diffs.iter().map(|d| serde_json::json!({"path": d.path, "state": d.state, "diff": compare::unified_diff(d)})).collect::<Vec<_>>(),
            });
            out(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
        }
        Format::Sarif => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&kiln::report::sarif(
                &annotated,
                sources,
                &crate::checked::rule_infos(),
                diffs,
                &paths,
            ))?
        ))?,
        Format::Github => out(&kiln::report::github(&annotated, sources, diffs, &paths))?,
    }
    Ok(())
}

/// Loads and builds; on a missing project, reports the diagnostic in `format`.
pub fn load_and_build(
    ui: &Ui,
    dir: &Path,
    envs: &[String],
    keep: Keep,
    format: Format,
) -> Result<(disk::ProjectDir, Build), u8> {
    crate::checked::prefetch_stdlib();
    let (root, project, diags) = match load(dir) {
        Ok(x) => x,
        Err(d) => {
            // (A report that cannot be written has nothing left to say.)
            let _ = report_diagnostics(ui, dir, &[*d], &Sources::new(), format, &[]);
            return Err(EXIT_ERROR);
        }
    };
    let show = format == Format::Human && !ui.quiet;
    let b = crate::checked::build_checked(&root, project, diags, envs, keep, show);
    Ok((root, b))
}

/// Reports diagnostics (and file differences) in the chosen format. SARIF and GitHub
/// annotations carry errors and warnings (information too with `--verbose`): a code-scanning
/// alert per informational note would bury the findings.
pub fn report(ui: &Ui, dir: &Path, b: &Build, format: Format, diffs: &[Difference]) -> Result<()> {
    report_diagnostics(ui, dir, &b.diagnostics, &b.project.sources, format, diffs)
}
