//! Shared set-up: projects in temporary folders, runs of the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

pub use crate::common::kiln;

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("kiln exited (no signal)")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A copy of a fixture's spec files (not its outputs or lock) in a fresh folder.
pub fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = crate::common::root().join("fixtures").join(name);
    copy_specs(&src, &src, dir.path());
    dir
}

fn copy_specs(src: &Path, base: &Path, to: &Path) {
    for e in std::fs::read_dir(src).expect("readable").flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).expect("under base");
        if rel.starts_with("generated") || rel == Path::new("kiln.lock") {
            continue;
        }
        if p.is_dir() {
            copy_specs(&p, base, to);
        } else {
            let dest = to.join(rel);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::copy(&p, &dest).expect("copy");
        }
    }
}

/// A project whose kiln.kdl is `spec`.
pub fn project(spec: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "kiln.kdl", spec);
    dir
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

pub fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).expect("read")
}

/// Compiles and asserts success.
pub fn compile_ok(dir: &Path) {
    let o = kiln(&["compile"], dir);
    assert_eq!(code(&o), 0, "compile failed:\n{}", stderr(&o));
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(
                files(&p)
                    .into_iter()
                    .map(|f| Path::new(&e.file_name()).join(f)),
            );
        } else {
            out.push(PathBuf::from(e.file_name()));
        }
    }
    out.sort();
    out
}

/// The lock line of `what` (`input "kiln.kdl"`, `output "generated/…"`) with its hash
/// replaced by the blake3 of `bytes`: what an attacker writes to make the lock "match".
pub fn forge_lock_line(dir: &Path, what: &str, bytes: &[u8]) {
    let lock = read(dir, "kiln.lock");
    let hash = blake3::hash(bytes).to_hex().to_string();
    let mut found = false;
    let forged: Vec<String> = lock
        .lines()
        .map(|line| {
            if line.starts_with(what) {
                found = true;
                let start = line.find("blake3=\"").expect("a hash") + 8;
                format!("{}{hash}\"", &line[..start])
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(found, "no lock line starts with {what}");
    write(dir, "kiln.lock", &(forged.join("\n") + "\n"));
}

/// Whether `haystack` (human output, wrapped at 80 columns inside miette's frame) says
/// `needle`: compared with all whitespace and frame characters removed.
pub fn says(haystack: &str, needle: &str) -> bool {
    let flat = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '·'))
            .collect()
    };
    flat(haystack).contains(&flat(needle))
}
