//! The commands. Each returns the process exit code: 0 clean, 1 policy
//! findings or drift, 2 invalid spec, invocation, I/O or internal error.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kiln::build::{self, Build, COMPILER_VERSION, safe_relative};
use kiln::compare::{self, Difference, State};
use kiln::lock::{LOCK_FILE, Lock};
use kiln_core::diagnostic::{Diagnostic, JsonDiagnostic, RenderOptions, render};
use kiln_core::project::{self, Project, ROOT_FILE};
use kiln_core::source::Sources;

use crate::cli::{Cli, Color, Command, DiffFormat, Format};
use crate::disk;
use crate::policy_cmd::Keep;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

pub fn run(cli: Cli) -> Result<u8> {
    let ui = Ui::new(cli.color, cli.verbose, cli.quiet);
    match cli.command {
        Command::Compile {
            project,
            envs,
            check,
            format,
        } => compile(&ui, &project.dir, &envs, check, format),
        Command::Diff {
            project,
            envs,
            format,
            base,
            exit_code,
            max_chars,
        } => diff(
            &ui,
            &project.dir,
            &envs,
            DiffOptions {
                format,
                base,
                exit_code,
                max_chars,
            },
        ),
        Command::Inspect { project, env } => inspect(&ui, &project.dir, &env),
        Command::Explain { what, project } => explain(&ui, &what, project.as_deref()),
        Command::Fmt { project, check } => fmt(&ui, &project.dir, check),
        Command::Policy { command } => crate::policy_cmd::policy(&ui, command),
        Command::Secrets { command } => crate::policy_cmd::secrets(&ui, command),
        Command::Init { dir, preset, name } => crate::init::init(&dir, preset, name.as_deref()),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "kiln", &mut buf);
            out(&String::from_utf8_lossy(&buf))?;
            Ok(EXIT_OK)
        }
        Command::Lsp => crate::lsp::serve(),
        Command::Import {
            file,
            out,
            name,
            format,
        } => crate::import_cmd::import(&ui, &file, &out, name.as_deref(), format),
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            out(&String::from_utf8_lossy(&buf))?;
            Ok(EXIT_OK)
        }
    }
}

/// Terminal settings, decided once.
pub struct Ui {
    pub color: bool,
    pub width: usize,
    pub verbose: bool,
    /// `--quiet`: errors and drift only.
    pub quiet: bool,
}

impl Ui {
    fn new(color: Color, verbose: bool, quiet: bool) -> Ui {
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

/// Loads and builds; on a missing project, reports the diagnostic in `format`.
fn load_and_build(
    ui: &Ui,
    dir: &Path,
    envs: &[String],
    keep: Keep,
    format: Format,
) -> Result<(disk::ProjectDir, Build), u8> {
    crate::policy_cmd::prefetch_stdlib();
    let (root, project, diags) = match load(dir) {
        Ok(x) => x,
        Err(d) => {
            // (A report that cannot be written has nothing left to say.)
            let _ = report_diagnostics(ui, dir, &[*d], &Sources::new(), format, &[]);
            return Err(EXIT_ERROR);
        }
    };
    let show = format == Format::Human && !ui.quiet;
    let b = crate::policy_cmd::build_checked(&root, project, diags, envs, keep, show);
    Ok((root, b))
}

fn compile(ui: &Ui, dir: &Path, envs: &[String], check: bool, format: Format) -> Result<u8> {
    if check {
        return compile_check(ui, dir, envs, format);
    }
    crate::policy_cmd::prefetch_stdlib();
    let (root, project, diags) = match load(dir) {
        Ok(x) => x,
        Err(d) => {
            report_diagnostics(ui, dir, &[*d], &Sources::new(), format, &[])?;
            return Ok(EXIT_ERROR);
        }
    };
    // When the output folder exists, hold its lock for the whole compile: each
    // environment's files are then compared with the disk as soon as they are built, and
    // the text of those already there is not kept until the write. A compile that was
    // killed after committing is finished first, so the comparison sees its result.
    let early = match safe_relative(&project.output) && !diags.iter().any(Diagnostic::is_error) {
        true => disk::OutputLock::existing(&root, &project.output)?,
        false => None,
    };
    if let Some(guard) = &early
        && let Some(n) = disk::recover(&root, guard)?
        && format == Format::Human
    {
        eprintln!("kiln: finished an interrupted compile ({n} file(s) put in place)");
    }
    let keep = match &early {
        Some(guard) => Keep::Changed { output: guard },
        None => Keep::Files,
    };
    let show = format == Format::Human && !ui.quiet;
    let b = crate::policy_cmd::build_checked(&root, project, diags, envs, keep, show);
    let code = exit_code(&b.diagnostics);
    report(ui, dir, &b, format, &[])?;
    if code != EXIT_OK {
        if format == Format::Human {
            eprintln!("kiln: nothing written ({})", summary_counts(&b.diagnostics));
        }
        return Ok(code);
    }
    let guard = match early {
        Some(guard) => guard,
        None => disk::OutputLock::create(&root, &b.project.output)?,
    };
    let previous = match root.read_lock()? {
        Some(Ok(lock)) => Some(lock),
        _ => None,
    };
    let lock = merged_lock(&b, previous.as_ref(), envs);
    let bytes: BTreeMap<&str, &[u8]> = b
        .files()
        .into_iter()
        .map(|(p, a)| (p, a.text.as_bytes()))
        .collect();
    let previous_for_removal = previous
        .as_ref()
        .map(|p| scoped_lock(p, &b.project.output, &selected_names(&b)));
    let written = disk::write_compile(
        &root,
        &guard,
        &bytes,
        &b.settled(),
        previous_for_removal.as_ref(),
        &lock,
        &mut disk::Faults::from_env(),
    )?;
    if format == Format::Human {
        for kept in &written.kept {
            eprintln!(
                "kiln: warning: {kept} is no longer generated, but it is not what kiln wrote (edited by hand?); left in place, delete it yourself if it is not needed"
            );
        }
    }
    if format == Format::Human && !ui.quiet {
        let envs: Vec<&str> = b.envs.iter().map(|e| e.name.as_str()).collect();
        // A monorepo's thousand environment names would bury the counts.
        let envs = match envs.len() {
            0..=8 => envs.join(", "),
            n => format!("{n} environments"),
        };
        eprintln!(
            "kiln: compiled {} ({}): {} written, {} unchanged, {} removed",
            b.project.name,
            envs,
            written.written.len(),
            written.unchanged,
            written.removed.len()
        );
    }
    Ok(EXIT_OK)
}

fn selected_names(b: &Build) -> BTreeSet<String> {
    b.envs.iter().map(|e| e.name.clone()).collect()
}

/// The lock after compiling some environments: their outputs replaced, other
/// environments' entries kept.
fn merged_lock(b: &Build, previous: Option<&Lock>, requested: &[String]) -> Lock {
    let mut lock = b.lock(&crate::policy_cmd::policy_entries());
    if !requested.is_empty()
        && let Some(prev) = previous
    {
        let selected = selected_names(b);
        for (path, h) in &prev.outputs {
            if !in_envs(path, &b.project.output, &selected) {
                lock.outputs.insert(path.clone(), h.clone());
            }
        }
    }
    lock
}

/// Whether `path` is under `{output}/{env}/` for one of `envs` (environment
/// names are DNS labels: no `/`). A set lookup, not a scan of every
/// environment: this runs for every output file.
fn in_envs(path: &str, output: &str, envs: &BTreeSet<String>) -> bool {
    path.strip_prefix(output)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(env, _)| envs.contains(env))
}

/// The previous lock restricted to the environments being compiled.
fn scoped_lock(prev: &Lock, output: &str, envs: &BTreeSet<String>) -> Lock {
    let mut l = prev.clone();
    l.outputs.retain(|p, _| in_envs(p, output, envs));
    l
}

/// `kiln compile --check`: derives the outputs and the findings from the spec, the
/// presets and the policies, and compares them with the files on disk and with
/// `kiln.lock`. It never trusts the lock or the outputs (a branch can edit them with the
/// spec); the lock only tells a stale file from one edited by hand. What makes it fast is
/// the policy result cache, which kiln itself wrote under its own key.
fn compile_check(ui: &Ui, dir: &Path, envs: &[String], format: Format) -> Result<u8> {
    let (root, b) = match load_and_build(ui, dir, envs, Keep::Files, format) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let actual_lock = root.lock_text()?;
    let lock = match actual_lock.as_deref().map(Lock::parse) {
        Some(Ok(lock)) => Some(lock),
        Some(Err(e)) => {
            eprintln!("kiln: {LOCK_FILE} is unreadable ({e}); checking against a fresh build");
            None
        }
        None => None,
    };
    let code = exit_code(&b.diagnostics);
    if code != EXIT_OK {
        report(ui, dir, &b, format, &[])?;
        return Ok(code);
    }
    let output = root.output(&b.project.output)?;
    let mut disk_files = match &output {
        Some(out) => out.read_all()?,
        None => BTreeMap::new(),
    };
    if !envs.is_empty() {
        let selected = selected_names(&b);
        disk_files.retain(|p, _| in_envs(p, &b.project.output, &selected));
    }
    let mut diffs = compare::compare(&b.files(), &disk_files, lock.as_ref());
    // The lock itself must match what this build would write.
    let expected_lock = merged_lock(&b, lock.as_ref(), envs);
    let expected_text = expected_lock.render();
    if actual_lock.as_deref() != Some(expected_text.as_str()) {
        diffs.push(Difference {
            path: LOCK_FILE.to_owned(),
            state: if actual_lock.is_none() {
                State::Missing
            } else {
                State::Stale
            },
            expected: Some(expected_text),
            actual: actual_lock,
        });
    }
    if let Some(out) = &output
        && disk::interrupted(out)
    {
        diffs.insert(
            0,
            Difference {
                path: format!("{}/{}", b.project.output, disk::JOURNAL),
                state: State::Interrupted,
                expected: None,
                actual: None,
            },
        );
    }
    report(ui, dir, &b, format, &diffs)?;
    if format == Format::Human {
        for d in &diffs {
            eprintln!("kiln: {} {}", d.path, d.state.describe());
            let shown = match d.state {
                State::Interrupted => false,
                State::Orphan | State::Removed => d.actual.is_some(),
                _ => true,
            };
            if shown {
                eprint!("{}", compare::unified_diff(d));
            }
        }
        if diffs.is_empty() {
            if !ui.quiet {
                eprintln!("kiln: up to date");
            }
        } else {
            eprintln!(
                "kiln: {} file(s) differ; run `kiln compile` to regenerate",
                diffs.len()
            );
        }
    }
    Ok(if diffs.is_empty() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    })
}

fn summary_counts(diags: &[Diagnostic]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags
        .iter()
        .filter(|d| d.severity == kiln_core::Severity::Warning)
        .count();
    format!("{errors} error(s), {warnings} warning(s)")
}

/// Reports diagnostics (and file differences) in the chosen format. SARIF and GitHub
/// annotations carry errors and warnings (information too with `--verbose`): a code-scanning
/// alert per informational note would bury the findings.
fn report(ui: &Ui, dir: &Path, b: &Build, format: Format, diffs: &[Difference]) -> Result<()> {
    report_diagnostics(ui, dir, &b.diagnostics, &b.project.sources, format, diffs)
}

pub(crate) fn report_diagnostics(
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
                &crate::policy_cmd::rule_infos(),
                diffs,
                &paths,
            ))?
        ))?,
        Format::Github => out(&kiln::report::github(&annotated, sources, diffs, &paths))?,
    }
    Ok(())
}

struct DiffOptions {
    format: DiffFormat,
    base: Option<String>,
    exit_code: bool,
    max_chars: Option<usize>,
}

fn diff(ui: &Ui, dir: &Path, envs: &[String], opts: DiffOptions) -> Result<u8> {
    let (root, b) = match load_and_build(ui, dir, envs, Keep::All, Format::Human) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if opts.format != DiffFormat::Json {
        ui.diagnostics(&b.diagnostics, &b.project.sources);
    }
    let code = exit_code(&b.diagnostics);
    let format = match opts.format {
        DiffFormat::Human => kiln::DiffFormat::Human,
        DiffFormat::Markdown => kiln::DiffFormat::Markdown,
        DiffFormat::Json => kiln::DiffFormat::Json,
    };
    let files = b.files();
    if code == EXIT_ERROR {
        if opts.format == DiffFormat::Json {
            out(&kiln::report::diff_report(
                &b,
                &files,
                &[],
                format,
                &Default::default(),
            ))?;
        }
        return Ok(code);
    }
    let selected = selected_names(&b);
    let (mut old_files, lock) = match &opts.base {
        None => (
            match root.output(&b.project.output)? {
                Some(out) => out.read_all()?,
                None => BTreeMap::new(),
            },
            root.read_lock()?.and_then(Result::ok),
        ),
        Some(rev) => match crate::git::committed_outputs(dir, rev, &b.project.output) {
            Ok(f) => (f, None),
            Err(why) => {
                ui.diagnostics(
                    &[Diagnostic::error("diff-base", format!("cannot read the generated files of `{rev}`: {why}"))
                        .with_help("pass a commit of this repository (`--base origin/main`; in CI fetch it first: `git fetch origin main`)")],
                    &Sources::new(),
                );
                return Ok(EXIT_ERROR);
            }
        },
    };
    old_files.retain(|p, _| in_envs(p, &b.project.output, &selected));
    let diffs = compare::compare(&files, &old_files, lock.as_ref());
    let options = kiln::report::DiffOptions {
        base: opts.base.clone(),
        max_chars: opts.max_chars.or(match opts.format {
            DiffFormat::Markdown => Some(kiln::report::COMMENT_CHARS),
            _ => None,
        }),
    };
    let text = kiln::report::diff_report(&b, &files, &diffs, format, &options);
    out(&text)?;
    Ok(match (opts.exit_code, diffs.is_empty()) {
        (true, false) => EXIT_FINDINGS,
        (true, true) if code == EXIT_OK => EXIT_OK,
        _ => code,
    })
}

fn inspect(ui: &Ui, dir: &Path, env: &str) -> Result<u8> {
    let (_, project, mut diags) = match load(dir) {
        Ok(x) => x,
        Err(d) => {
            ui.diagnostics(&[*d], &Sources::new());
            return Ok(EXIT_ERROR);
        }
    };
    let selected = build::select_environments(&project, &[env.to_owned()], &mut diags);
    let model = if selected.is_empty() || diags.iter().any(|d| d.code == "kdl-syntax") {
        None
    } else {
        let (model, mut d) = kiln_core::resolve::resolve(&project, env);
        diags.append(&mut d);
        model
    };
    kiln_core::diagnostic::normalize(&mut diags);
    ui.diagnostics(&diags, &project.sources);
    if diags.iter().any(Diagnostic::is_error) {
        return Ok(EXIT_ERROR);
    }
    let model = model.context("internal error: no model without an error")?;
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(&model.to_json())?
    ))?;
    Ok(EXIT_OK)
}

fn explain(ui: &Ui, what: &str, project_dir: Option<&Path>) -> Result<u8> {
    let (file_part, line) = match what.rsplit_once(':') {
        Some((f, l)) if l.parse::<usize>().is_ok() => (f, l.parse::<usize>().ok()),
        _ => (what, None),
    };
    let path = Path::new(file_part);
    if !path.exists() && !file_part.contains('/') {
        return crate::policy_cmd::explain_rule(ui, what);
    }
    let abs = std::fs::canonicalize(path).with_context(|| format!("cannot open {file_part}"))?;
    let root = match project_dir {
        Some(p) => {
            std::fs::canonicalize(p).with_context(|| format!("cannot open {}", p.display()))?
        }
        None => match abs
            .ancestors()
            .skip(1)
            .find(|d| d.join(ROOT_FILE).is_file())
        {
            Some(r) => r.to_path_buf(),
            None => {
                ui.diagnostics(
                    &[Diagnostic::error(
                        "no-project",
                        format!("no {ROOT_FILE} above `{file_part}`"),
                    )
                    .with_help("pass the project with `--project DIR`")],
                    &Sources::new(),
                );
                return Ok(EXIT_ERROR);
            }
        },
    };
    let rel = abs
        .strip_prefix(&root)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    let (root, project, diags) = match load(&root) {
        Ok(x) => x,
        Err(d) => {
            ui.diagnostics(&[*d], &Sources::new());
            return Ok(EXIT_ERROR);
        }
    };
    let env = rel
        .strip_prefix(&format!("{}/", project.output))
        .and_then(|r| r.split('/').next())
        .map(str::to_owned);
    let Some(env) = env else {
        ui.diagnostics(
            &[Diagnostic::error(
                "not-generated",
                format!("`{rel}` is not in the output folder `{}`", project.output),
            )
            .with_help(
                "explain a file kiln generated, such as generated/production/nginx/nginx.conf",
            )],
            &Sources::new(),
        );
        return Ok(EXIT_ERROR);
    };
    let _ = root;
    let b = build::build(project, diags, std::slice::from_ref(&env));
    // The explanation is the output: the compile's warnings are `kiln compile`'s to tell
    // (with --verbose they are shown); an error, which can leave the file unexplained, is.
    let shown: Vec<Diagnostic> = b
        .diagnostics
        .iter()
        .filter(|d| ui.verbose || d.is_error())
        .cloned()
        .collect();
    ui.diagnostics(&shown, &b.project.sources);
    let files = b.files();
    let Some(artifact) = files.get(rel.as_str()) else {
        eprintln!("kiln: `{rel}` is not generated by the current spec");
        return Ok(EXIT_ERROR);
    };
    let model = b
        .envs
        .iter()
        .find(|e| e.name == env)
        .and_then(|e| e.model.as_ref())
        .context("no model")?;
    if let Some(n) = line
        && (n == 0 || n > artifact.text.lines().count())
    {
        eprintln!(
            "kiln: `{rel}` has {} line(s); there is no line {n}",
            artifact.text.lines().count()
        );
        return Ok(EXIT_ERROR);
    }
    let text = kiln::report::explain_lines(&b.project.sources, model, artifact, line);
    out(&text)?;
    Ok(EXIT_OK)
}

fn fmt(ui: &Ui, dir: &Path, check: bool) -> Result<u8> {
    let (root, project, diags) = match load(dir) {
        Ok(x) => x,
        Err(d) => {
            ui.diagnostics(&[*d], &Sources::new());
            return Ok(EXIT_ERROR);
        }
    };
    let syntax: Vec<Diagnostic> = diags
        .into_iter()
        .filter(|d| d.code == "kdl-syntax")
        .collect();
    if !syntax.is_empty() {
        ui.diagnostics(&syntax, &project.sources);
        return Ok(EXIT_ERROR);
    }
    let mut unformatted = Vec::new();
    for &file in &project.files {
        let f = project.sources.get(file);
        let formatted =
            kiln::format::format_kdl(&f.text).map_err(|e| anyhow::anyhow!("{}: {e}", f.name))?;
        if formatted != *f.text {
            unformatted.push(f.name.clone());
            if check {
                // What `kiln fmt` would change, as a unified diff (stdout: a patch).
                let d = Difference {
                    path: f.name.clone(),
                    state: State::Edited,
                    expected: Some(formatted),
                    actual: Some(f.text.to_string()),
                };
                out(&compare::unified_diff(&d))?;
            } else {
                root.replace(&f.name, formatted.as_bytes())?;
            }
        }
    }
    for name in &unformatted {
        eprintln!(
            "kiln: {name} {}",
            if check {
                "is not formatted (the diff above is what `kiln fmt` changes)"
            } else {
                "formatted"
            }
        );
    }
    Ok(if check && !unformatted.is_empty() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}
