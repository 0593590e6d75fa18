//! `kiln diff`: what a compile would change, or what the spec changes since a commit.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use kiln::compare::{self};
use kiln_core::diagnostic::Diagnostic;
use kiln_core::source::Sources;

use crate::checked::Keep;
use crate::cli::{DiffFormat, Format};
use crate::compile::{in_envs, selected_names};
use crate::ui::{EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, Ui, exit_code, load_and_build, out};

pub struct DiffOptions {
    pub format: DiffFormat,
    pub base: Option<String>,
    pub exit_code: bool,
    pub max_chars: Option<usize>,
}

pub fn diff(ui: &Ui, dir: &Path, envs: &[String], opts: DiffOptions) -> Result<u8> {
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
