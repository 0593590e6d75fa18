//! Every fixture project resolves every environment without a diagnostic, and
//! its resolved model (what `kiln inspect` prints) is pinned by a snapshot.

use std::path::{Path, PathBuf};

use kiln_core::diagnostic::{RenderOptions, render};
use kiln_core::{project, resolve};

fn projects() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut out: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("fixtures/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("kiln.kdl").is_file())
        .collect();
    out.sort();
    out
}

fn check(dir: &Path) -> Result<(), String> {
    let mut loader = |p: &str| std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string());
    let (project, mut diags) = project::load(&mut loader);
    let name = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    for env in project.compiled_environments() {
        let (model, mut d) = resolve::resolve(&project, env);
        diags.append(&mut d);
        if let Some(model) = model {
            let json = serde_json::to_string_pretty(&model.to_json()).expect("JSON");
            insta::assert_snapshot!(format!("{name}-{env}"), json);
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name}:\n{}",
            render(&diags, &project.sources, RenderOptions::default())
        ))
    }
}

#[test]
fn fixtures_resolve_cleanly() {
    let all = projects();
    assert!(
        all.len() >= 5,
        "expected the four reference fixtures and inventory"
    );
    let failures: Vec<String> = all.iter().filter_map(|p| check(p).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
