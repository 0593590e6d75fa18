//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Every fixture project (a folder of fixtures/ holding kiln.kdl).
pub fn fixture_projects() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures"))
        .expect("fixtures/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("kiln.kdl").is_file())
        .collect();
    out.sort();
    out
}

/// Every spec file: fixture projects' kiln.kdl and the invalid specs.
pub fn spec_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fixture_projects()
        .iter()
        .map(|p| p.join("kiln.kdl"))
        .collect();
    let mut invalid: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/invalid"))
        .expect("fixtures/invalid")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .collect();
    invalid.sort();
    out.extend(invalid);
    out
}

/// Loads one spec text as a project's kiln.kdl.
pub fn load_text(text: &str) -> (kiln_core::Project, Vec<kiln_core::Diagnostic>) {
    let mut loader = |p: &str| {
        if p == "kiln.kdl" {
            Ok(text.to_owned())
        } else {
            Err("no such file".to_owned())
        }
    };
    kiln_core::project::load(&mut loader)
}

pub fn kiln_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kiln")
}
