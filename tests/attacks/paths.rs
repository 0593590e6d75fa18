//! The project boundary holds on the file system, not only on path text: symbolic links,
//! FIFOs, devices and huge files committed by a branch (issue 12, D2–D4).

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

/// tulia's spec with one more line.
fn tulia_with(line: &str) -> tempfile::TempDir {
    let dir = fixture("tulia");
    let spec = read(dir.path(), "kiln.kdl");
    write(dir.path(), "kiln.kdl", &format!("{spec}\n{line}\n"));
    dir
}

fn assert_refused(o: &std::process::Output, what: &str) {
    let err = stderr(o);
    assert_eq!(code(o), 2, "{err}");
    assert!(
        err.contains("unsafe-path"),
        "no unsafe-path diagnostic:\n{err}"
    );
    assert!(
        says(&err, what),
        "the diagnostic does not name `{what}`:\n{err}"
    );
}

/// D2: `ln -s /proc/self/environ env.kdl` printed the process environment (CI tokens).
#[test]
fn an_include_linked_out_of_the_project_is_refused_unread() {
    let dir = tulia_with("include \"env.kdl\"");
    symlink("/proc/self/environ", dir.path().join("env.kdl")).unwrap();
    let o = crate::common::kiln_command(&["compile", "--check"], dir.path())
        .env("CI_DEPLOY_TOKEN", "tok-5f3a9c1e-never-print-me")
        .output()
        .unwrap();
    assert_refused(&o, "/proc/self/environ");
    assert!(!stderr(&o).contains("never-print-me"), "{}", stderr(&o));

    let dir = tulia_with("include \"users.kdl\"");
    symlink("/etc/passwd", dir.path().join("users.kdl")).unwrap();
    let o = kiln(&["compile"], dir.path());
    assert_refused(&o, "/etc/passwd");
    assert!(!stderr(&o).contains("root:"), "{}", stderr(&o));
    // Through a linked folder too.
    let dir = tulia_with("include \"etc/passwd.kdl\"");
    symlink("/etc", dir.path().join("etc")).unwrap();
    assert_refused(
        &kiln(&["compile"], dir.path()),
        "`etc` is a symbolic link to `/etc`",
    );
}

/// The text of a file reached through a link inside the project is not the project's own (a
/// CI job may have written `.env` into the checkout): a diagnostic cites its line only.
#[test]
fn a_linked_file_inside_the_project_is_never_quoted() {
    let dir = tulia_with("include \"extra.kdl\"");
    write(
        dir.path(),
        ".env",
        "SECRET_KEY=9d8f7e6a5b4c3d2e1f-the-secret\n",
    );
    symlink(".env", dir.path().join("extra.kdl")).unwrap();
    let o = kiln(&["compile"], dir.path());
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("kdl-syntax"), "{err}");
    assert!(err.contains("at extra.kdl:1:"), "no position:\n{err}");
    assert!(
        !err.contains("the-secret"),
        "the secret was printed:\n{err}"
    );
    // And an include of a file that is not a spec is never read at all.
    let dir = tulia_with("include \".env\"");
    write(
        dir.path(),
        ".env",
        "SECRET_KEY=9d8f7e6a5b4c3d2e1f-the-secret\n",
    );
    let o = kiln(&["compile"], dir.path());
    assert!(stderr(&o).contains("include-not-kdl"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("the-secret"));
}

/// D4: an include of `/dev/zero` read until the OOM killer came; a FIFO blocked forever.
#[test]
fn special_and_huge_files_cost_nothing() {
    let dir = tulia_with("include \"zero.kdl\" \"pipe.kdl\" \"huge.kdl\"");
    symlink("/dev/zero", dir.path().join("zero.kdl")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("pipe.kdl"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // 1 GiB, sparse: nothing is written, and kiln must not read it either.
    std::fs::File::create(dir.path().join("huge.kdl"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let started = Instant::now();
    let mut child = crate::common::kiln_command(&["compile"], dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("kiln blocked on a FIFO or an endless file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        says(&err, "`zero.kdl` is a symbolic link to `/dev/zero`"),
        "{err}"
    );
    assert!(says(&err, "`pipe.kdl` is a FIFO"), "{err}");
    assert!(
        err.contains("file-too-large") && err.contains("huge.kdl"),
        "{err}"
    );
}

fn outside() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "victim.conf", "precious\n");
    dir
}

/// D3: an output folder that is a link: 76 files were written elsewhere.
#[test]
fn an_output_folder_that_is_a_link_is_refused() {
    let target = outside();
    let dir = fixture("tulia");
    symlink(target.path(), dir.path().join("generated")).unwrap();
    for args in [&["compile"][..], &["compile", "--check"]] {
        let o = kiln(args, dir.path());
        assert_refused(&o, "`generated` is a symbolic link");
    }
    assert_eq!(files(target.path()), [Path::new("victim.conf")]);
}

/// D3: a folder link inside the output folder (24 files were written outside), and a
/// `kiln.lock` entry for a stale file under it (the file outside was deleted).
#[test]
fn links_inside_the_output_folder_are_never_followed() {
    let target = outside();
    let dir = fixture("tulia");
    compile_ok(dir.path());
    let nginx = dir.path().join("generated/production/nginx");
    std::fs::remove_dir_all(&nginx).unwrap();
    symlink(target.path(), &nginx).unwrap();
    for args in [&["compile"][..], &["compile", "--check"]] {
        assert_refused(&kiln(args, dir.path()), "generated/production/nginx");
    }
    assert_eq!(files(target.path()), [Path::new("victim.conf")]);

    // The stale entry: a lock line for a file under a link, with the file's true hash.
    std::fs::remove_file(&nginx).unwrap();
    compile_ok(dir.path());
    symlink(
        target.path(),
        dir.path().join("generated/production/linked"),
    )
    .unwrap();
    let lock = read(dir.path(), "kiln.lock");
    let victim = format!(
        "output \"generated/production/linked/victim.conf\" blake3=\"{}\"\n",
        blake3::hash(b"precious\n").to_hex()
    );
    write(dir.path(), "kiln.lock", &format!("{lock}{victim}"));
    let o = kiln(&["compile"], dir.path());
    assert_eq!(
        read(target.path(), "victim.conf"),
        "precious\n",
        "{}",
        stderr(&o)
    );
}

/// D3: policy module paths were followed through links.
#[test]
fn a_policy_module_linked_out_of_the_project_is_refused() {
    let target = tempfile::tempdir().unwrap();
    let wasm =
        wat::parse_file(crate::common::root().join("policies/examples/minimal.wat")).unwrap();
    std::fs::write(target.path().join("org.wasm"), &wasm).unwrap();
    let pin = blake3::hash(&wasm).to_hex();
    let dir = tulia_with(&format!(
        "policies {{\n    module \"policies/org.wasm\" blake3=\"{pin}\"\n}}"
    ));
    symlink(target.path(), dir.path().join("policies")).unwrap();
    let o = kiln(&["compile"], dir.path());
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("unsafe-path"), "{}", stderr(&o));
    assert!(
        says(&stderr(&o), "leads out of the project"),
        "{}",
        stderr(&o)
    );
}

/// A `kiln.lock` linked to a file outside is not read (its text would reach a diff).
#[test]
fn a_lock_linked_out_of_the_project_is_refused() {
    let dir = fixture("tulia");
    compile_ok(dir.path());
    std::fs::remove_file(dir.path().join("kiln.lock")).unwrap();
    symlink("/etc/passwd", dir.path().join("kiln.lock")).unwrap();
    let o = kiln(&["compile", "--check"], dir.path());
    assert_refused(&o, "/etc/passwd");
    assert!(!stderr(&o).contains("root:"));
}
