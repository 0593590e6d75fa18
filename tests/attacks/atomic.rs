//! A compile is atomic as a whole (issue 12, D15, D16, D18): killed at any point it leaves
//! the old outputs or the new ones, `--check` says which, and the next compile finishes.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

/// Every file and folder under `dir` (folders end with `/`), relative.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.push(if e.file_type().is_dir() {
            format!("{rel}/")
        } else {
            rel
        });
    }
    out
}

fn bump_images(dir: &Path) {
    let spec = read(dir, "kiln.kdl").replace("api:1.8.2", "api:1.8.3");
    write(dir, "kiln.kdl", &spec);
}

/// D15: SIGKILL between renames left new files with the old lock. Now the compile has
/// committed a journal before its first rename: `--check` reports the interrupted compile,
/// and the next compile finishes it.
#[test]
fn a_compile_killed_between_renames_is_reported_then_finished() {
    let dir = fixture("tulia");
    compile_ok(dir.path());
    bump_images(dir.path());
    let o = crate::common::kiln_command(&["compile"], dir.path())
        .env("KILN_TEST_ABORT_AFTER_RENAMES", "3")
        .output()
        .unwrap();
    assert!(
        o.status.code().is_none(),
        "kiln was not killed: {}",
        stderr(&o)
    );
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        says(&stderr(&o), "journal of an interrupted `kiln compile`"),
        "{}",
        stderr(&o)
    );
    let o = kiln(&["compile"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("finished an interrupted compile"),
        "{}",
        stderr(&o)
    );
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The result is exactly a compile from scratch.
    let fresh = fixture("tulia");
    bump_images(fresh.path());
    compile_ok(fresh.path());
    assert_eq!(tree(dir.path()), tree(fresh.path()));
    for f in files(&fresh.path().join("generated")) {
        let rel = format!("generated/{}", f.display());
        assert_eq!(read(dir.path(), &rel), read(fresh.path(), &rel), "{rel}");
    }
}

/// D18: a full disk left a 0-byte temporary file and empty environment folders.
#[test]
fn a_failed_write_leaves_nothing_behind() {
    let dir = fixture("tulia");
    compile_ok(dir.path());
    let before = tree(dir.path());
    let spec = read(dir.path(), "kiln.kdl");
    write(
        dir.path(),
        "kiln.kdl",
        &format!("{spec}\nenvironment staging extends=production {{\n    tier staging\n}}\n"),
    );
    for n in ["0", "5", "30"] {
        let o = crate::common::kiln_command(&["compile"], dir.path())
            .env("KILN_TEST_FAIL_AFTER_WRITES", n)
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert_eq!(tree(dir.path()), before, "after failing at write {n}");
    }
    compile_ok(dir.path());
    assert!(dir.path().join("generated/staging").is_dir());
}

/// D16: deleting the output folder while kiln compiled gave exit 0 and "575 unchanged" files
/// that were no longer on disk.
#[test]
fn an_output_folder_removed_mid_compile_is_an_error() {
    let dir = fixture("tulia");
    compile_ok(dir.path());
    let signal = dir.path().join("pause");
    let child = crate::common::kiln_command(&["compile"], dir.path())
        .env("KILN_TEST_PAUSE_BEFORE_COMMIT", &signal)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.path().join("pause.ready").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "kiln never paused"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_dir_all(dir.path().join("generated")).unwrap();
    std::fs::write(dir.path().join("pause.go"), b"").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        says(&stderr(&o), "was removed or replaced while kiln compiled"),
        "{}",
        stderr(&o)
    );
    // Nothing was written in its place; the next compile writes everything.
    assert!(!dir.path().join("generated").exists());
    compile_ok(dir.path());
    assert_eq!(code(&kiln(&["compile", "--check"], dir.path())), 0);
}

/// Killed (SIGKILL) after staging every file but before committing: the old state stands,
/// `--check` passes on it, and the next compile sweeps the staged files away.
#[test]
fn a_compile_killed_before_committing_leaves_the_old_state() {
    let dir = fixture("tulia");
    compile_ok(dir.path());
    let old_lock = read(dir.path(), "kiln.lock");
    bump_images(dir.path());
    let signal = dir.path().join("pause");
    let mut child = crate::common::kiln_command(&["compile"], dir.path())
        .env("KILN_TEST_PAUSE_BEFORE_COMMIT", &signal)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.path().join("pause.ready").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "kiln never paused"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::fs::remove_file(dir.path().join("pause.ready")).unwrap();
    assert_eq!(read(dir.path(), "kiln.lock"), old_lock);
    let staged: Vec<String> = tree(dir.path())
        .into_iter()
        .filter(|p| p.ends_with(".kiln-tmp"))
        .collect();
    assert!(!staged.is_empty(), "nothing was staged before the pause");
    // The spec changed, so --check reports stale files, not an interrupted compile.
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 1);
    assert!(!stderr(&o).contains("interrupted"), "{}", stderr(&o));
    compile_ok(dir.path());
    assert!(tree(dir.path()).iter().all(|p| !p.ends_with(".kiln-tmp")));
    assert_eq!(code(&kiln(&["compile", "--check"], dir.path())), 0);
}
