//! `kiln compile` and `kiln compile --check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;
use kiln::build::{Build, safe_relative};
use kiln::compare::{self, Difference, State};
use kiln::lock::{LOCK_FILE, Lock};
use kiln_core::diagnostic::Diagnostic;
use kiln_core::source::Sources;

use crate::checked::Keep;
use crate::cli::Format;
use crate::disk;
use crate::ui::{
    EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, Ui, exit_code, load, load_and_build, report,
    report_diagnostics,
};

pub fn compile(ui: &Ui, dir: &Path, envs: &[String], check: bool, format: Format) -> Result<u8> {
    if check {
        return compile_check(ui, dir, envs, format);
    }
    crate::checked::prefetch_stdlib();
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
    let b = crate::checked::build_checked(&root, project, diags, envs, keep, show);
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

pub(crate) fn selected_names(b: &Build) -> BTreeSet<String> {
    b.envs.iter().map(|e| e.name.clone()).collect()
}

/// The lock after compiling some environments: their outputs replaced, other
/// environments' entries kept.
fn merged_lock(b: &Build, previous: Option<&Lock>, requested: &[String]) -> Lock {
    let mut lock = b.lock(&crate::checked::policy_entries());
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
pub(crate) fn in_envs(path: &str, output: &str, envs: &BTreeSet<String>) -> bool {
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
