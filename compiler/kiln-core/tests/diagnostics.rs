//! Invalid specs in `fixtures/invalid/*.kdl`: each marks the diagnostics it must
//! produce with `// error: CODE` (or `// warning: CODE`) on the offending line.
//! The markers are checked mechanically; the full rendering is an insta snapshot.

use std::path::{Path, PathBuf};

use kiln_core::diagnostic::{RenderOptions, Severity, normalize, render};
use kiln_core::{project, resolve};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/invalid")
}

/// Loads one spec as `kiln.kdl` and resolves every environment.
fn run(text: &str) -> (project::Project, Vec<kiln_core::Diagnostic>) {
    let mut loader = |p: &str| {
        if p == project::ROOT_FILE {
            Ok(text.to_owned())
        } else {
            Err("no such file".to_owned())
        }
    };
    let (project, mut diags) = project::load(&mut loader);
    if !diags.iter().any(|d| d.code == "kdl-syntax") {
        for env in project.compiled_environments() {
            let (_, mut d) = resolve::resolve(&project, env);
            diags.append(&mut d);
        }
    }
    normalize(&mut diags);
    (project, diags)
}

fn expected_markers(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for sev in ["error", "warning"] {
            let marker = format!("// {sev}: ");
            if let Some(pos) = line.find(&marker) {
                let code = line[pos + marker.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                out.push((i + 1, sev.to_owned(), code));
            }
        }
    }
    out.sort();
    out
}

fn check(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let (project, diags) = run(&text);
    let mut actual: Vec<(usize, String, String)> = diags
        .iter()
        .filter_map(|d| {
            let span = d.primary_span()?;
            let file = project.sources.get(span.file);
            (file.name == project::ROOT_FILE).then(|| {
                let sev = match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                };
                (file.line_col(span.start).0, sev.to_owned(), d.code.clone())
            })
        })
        .collect();
    actual.sort();
    actual.dedup();
    let rendered = render(
        &diags,
        &project.sources,
        RenderOptions {
            color: false,
            width: 80,
        },
    );
    let expected = expected_markers(&text);
    if actual != expected {
        return Err(format!(
            "{}: diagnostics differ from the markers\n  expected {expected:?}\n  actual   {actual:?}\n{rendered}",
            path.display()
        ));
    }
    if let Some(d) = diags
        .iter()
        .find(|d| d.message.is_empty() || d.help.is_none())
    {
        return Err(format!(
            "{}: diagnostic `{}` has no help line",
            path.display(),
            d.code
        ));
    }
    let name = path
        .file_stem()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    insta::assert_snapshot!(name, rendered);
    Ok(())
}

#[test]
fn invalid_specs() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/invalid exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "expected the invalid fixtures");
    let failures: Vec<String> = paths.iter().filter_map(|p| check(p).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n\n")
    );
}

/// Smoke test: run a single case by name while working on it.
#[test]
fn unknown_node_smoke() {
    check(&fixtures().join("unknown-node.kdl")).unwrap();
}
