//! `kiln fmt`: canonical layout for the project's spec files.

use std::path::Path;

use anyhow::Result;
use kiln::compare::{self, Difference, State};
use kiln_core::diagnostic::Diagnostic;
use kiln_core::source::Sources;

use crate::ui::{EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, Ui, load, out};

pub fn fmt(ui: &Ui, dir: &Path, check: bool) -> Result<u8> {
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
