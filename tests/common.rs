//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// The binary under test: this build's, or `$KILN_TEST_BIN` (to show that a regression test
/// fails on an older kiln).
pub fn kiln_bin() -> PathBuf {
    std::env::var_os("KILN_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")))
}

/// The tests' shared policy cache folder, and the file of the key that authenticates it (kept
/// beside it, not in the user's home, so tests neither read nor make the user's key).
pub fn test_cache() -> (PathBuf, PathBuf) {
    let target = root().join("target");
    (
        target.join("kiln-test-cache"),
        target.join("kiln-test-cache.key"),
    )
}

/// The tests' policy cache, as a host configuration.
pub fn test_cache_dir() -> kiln_policy_host::CacheDir {
    let (dir, key) = test_cache();
    let key = kiln_policy_host::CacheKey::load_or_create(&key).expect("the test cache key");
    kiln_policy_host::CacheDir::new(dir, key)
}

/// `kiln` in `dir`, with no color, no stdin and the tests' policy cache.
pub fn kiln_command(args: &[&str], dir: &Path) -> Command {
    let (cache, key) = test_cache();
    let mut cmd = Command::new(kiln_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("KILN_CACHE_DIR", cache)
        .env("KILN_CACHE_KEY_FILE", key)
        .stdin(Stdio::null());
    cmd
}

/// Runs `kiln` in `dir` (see [`kiln_command`]).
pub fn kiln(args: &[&str], dir: &Path) -> Output {
    kiln_command(args, dir).output().expect("kiln runs")
}

/// A copy of a whole folder (outputs and lock included) in a temporary directory.
pub fn copy_tree(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in walkdir::WalkDir::new(src) {
        let entry = entry.expect("walk");
        let rel = entry.path().strip_prefix(src).expect("under src");
        let to = dir.path().join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).expect("mkdir");
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
    dir
}
