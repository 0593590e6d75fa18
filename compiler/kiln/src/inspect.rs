//! `kiln inspect`: the resolved environment, as the policies receive it.

use std::path::Path;

use anyhow::{Context, Result};
use kiln::build::{self};
use kiln_core::diagnostic::Diagnostic;
use kiln_core::source::Sources;

use crate::ui::{EXIT_ERROR, EXIT_OK, Ui, load, out};

pub fn inspect(ui: &Ui, dir: &Path, env: &str) -> Result<u8> {
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
