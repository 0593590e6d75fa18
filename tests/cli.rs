//! The CLI contract, end to end: exit codes, streams, determinism, every
//! `compile --check` state, atomic writes, and paths that must not escape.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::kiln;

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of a fixture's spec files (not its output) in a fresh folder.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = common::root().join("fixtures").join(name);
    for entry in walk(&src) {
        let rel = entry.strip_prefix(&src).expect("under src");
        if rel.starts_with("generated") || rel == Path::new("kiln.lock") {
            continue;
        }
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &to).expect("copy");
    }
    dir
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every file under `dir` (relative path → bytes).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir)
                    .expect("under")
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect()
}

fn compile_ok(dir: &Path) {
    let o = kiln(&["compile"], dir);
    assert_eq!(code(&o), 0, "compile failed:\n{}", text(&o.stderr));
}

#[test]
fn compiles_and_checks_clean() {
    let dir = copy_fixture("tulia");
    compile_ok(dir.path());
    assert!(dir.path().join("kiln.lock").is_file());
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
}

#[test]
fn same_bytes_in_two_folders_and_twice() {
    let a = copy_fixture("tulia");
    let b = copy_fixture("tulia");
    compile_ok(a.path());
    compile_ok(b.path());
    let first = snapshot(a.path());
    assert_eq!(first, snapshot(b.path()), "output differs between folders");
    compile_ok(a.path());
    assert_eq!(first, snapshot(a.path()), "output differs between runs");
    let lock = text(&first["kiln.lock"]);
    assert!(
        !lock.contains(&a.path().to_string_lossy().into_owned()),
        "the lock holds an absolute path"
    );
}

#[test]
fn inspect_is_byte_identical_across_runs() {
    let root = common::root();
    for project in common::fixture_projects() {
        let p = project.to_string_lossy().into_owned();
        let one = kiln(&["inspect", &p, "--env", "production"], &root);
        let two = kiln(&["inspect", &p, "--env", "production"], &root);
        assert_eq!(code(&one), 0, "{p}: {}", text(&one.stderr));
        assert_eq!(one.stdout, two.stdout, "{p}: inspect differs between runs");
        assert!(
            one.stderr.is_empty(),
            "{p}: inspect printed diagnostics:\n{}",
            text(&one.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&one.stdout).expect("inspect prints JSON");
    }
}

fn first_output(dir: &Path, suffix: &str) -> PathBuf {
    walk(&dir.join("generated"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no generated file ending in {suffix}"))
}

#[test]
fn check_reports_every_state() {
    let dir = copy_fixture("tulia");
    compile_ok(dir.path());
    let nginx = first_output(dir.path(), "nginx.conf");
    let name = nginx
        .strip_prefix(dir.path())
        .expect("under")
        .to_string_lossy()
        .into_owned();

    // Edited by hand.
    let original = std::fs::read_to_string(&nginx).expect("read");
    std::fs::write(&nginx, format!("{original}# tuned by hand\n")).expect("write");
    let o = kiln(&["compile", "--check"], dir.path());
    let err = text(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains(&name) && err.contains("edited by hand") && err.contains("-# tuned by hand"),
        "{err}"
    );
    compile_ok(dir.path());
    assert_eq!(std::fs::read_to_string(&nginx).expect("read"), original);

    // Missing.
    std::fs::remove_file(&nginx).expect("rm");
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains(&format!("{name} is missing")),
        "{}",
        text(&o.stderr)
    );
    compile_ok(dir.path());

    // Orphan.
    let orphan = dir.path().join("generated/production/nginx/notes.txt");
    std::fs::write(&orphan, "mine\n").expect("write");
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("notes.txt is not generated by kiln"),
        "{}",
        text(&o.stderr)
    );
    // compile never removes a file kiln did not generate.
    compile_ok(dir.path());
    assert!(orphan.is_file());
    std::fs::remove_file(&orphan).expect("rm");

    // Stale: the spec changed.
    let spec = dir.path().join("kiln.kdl");
    let s = std::fs::read_to_string(&spec)
        .expect("read")
        .replace("replicas 3", "replicas 4");
    std::fs::write(&spec, s).expect("write");
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("out of date"),
        "{}",
        text(&o.stderr)
    );
    compile_ok(dir.path());
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
}

/// A recompile compares each environment's files with the disk while it builds
/// and keeps only the text of those that differ: it rewrites exactly the files
/// that changed, and its lock (whose hashes of the others come from that
/// comparison) is the lock of a fresh compile.
#[test]
fn a_recompile_writes_only_what_changed() {
    let dir = copy_fixture("tulia");
    compile_ok(dir.path());
    let fresh = snapshot(dir.path());
    let outputs = text(&fresh["kiln.lock"]).matches("\noutput ").count();
    assert!(outputs > 10);

    let nginx = first_output(dir.path(), "nginx.conf");
    let original = std::fs::read_to_string(&nginx).expect("read");
    std::fs::write(&nginx, format!("{original}# tuned by hand\n")).expect("write");
    std::fs::remove_file(first_output(dir.path(), "compose.yaml")).expect("rm");
    let o = kiln(&["compile"], dir.path());
    let err = text(&o.stderr);
    assert_eq!(code(&o), 0, "{err}");
    let summary = format!("2 written, {} unchanged, 0 removed", outputs - 2);
    assert!(err.contains(&summary), "expected `{summary}`:\n{err}");
    assert!(
        snapshot(dir.path()) == fresh,
        "the recompile did not restore the fresh output"
    );

    let o = kiln(&["compile"], dir.path());
    let summary = format!("0 written, {outputs} unchanged, 0 removed");
    assert!(text(&o.stderr).contains(&summary), "{}", text(&o.stderr));
}

/// Human output of a project with many environments stays readable: a note
/// names at most 8 environments, and warnings of one code beyond the first 25
/// are counted, not drawn; `--verbose` and `--format json` keep everything.
#[test]
fn many_environments_keep_human_output_short() {
    let dir = copy_fixture("tulia");
    let spec = dir.path().join("kiln.kdl");
    let mut s = std::fs::read_to_string(&spec).expect("read");
    // 30 environments, each with a site of its own: a `static` folder k8s cannot serve is one
    // warning per environment, at its own line.
    for i in 1..=30 {
        s.push_str(&format!(
            "environment e{i:02} extends=development {{\n    env {{ ALLOWED_HOSTS \"api.dev.tulia.example,e{i:02}.example.com\"; }}\n    site \"e{i:02}.example.com\" upstream=web {{ static \"/static/\" root=\"/srv/static/\"; }}\n}}\n"
        ));
    }
    std::fs::write(&spec, s).expect("write");

    let o = kiln(&["compile", "--check"], dir.path());
    let err = text(&o.stderr);
    assert!(
        err.contains("environments e01, e02, e03, e04, e05, e06, e07, e08 and 22 more"),
        "{err}"
    );
    assert!(!err.contains("e09, e10"), "{err}");
    assert!(
        err.contains("more warning(s) like the ones above hidden (target-unsupported ×"),
        "{err}"
    );
    let drawn = err.matches("an Ingress cannot serve files").count();
    assert!((10..30).contains(&drawn), "{drawn} drawn:\n{err}");

    let o = kiln(&["compile", "--check", "--verbose"], dir.path());
    let verbose = text(&o.stderr);
    assert!(!verbose.contains("more warning(s)"), "{verbose}");
    assert!(verbose.matches("an Ingress cannot serve files").count() > 30);
    let o = kiln(&["compile", "--check", "--format", "json"], dir.path());
    let json = text(&o.stdout);
    assert!(
        json.contains("e29, e30") || json.contains("e29 (development), e30"),
        "{json}"
    );
}

#[test]
fn an_interrupted_compile_leaves_the_previous_files() {
    let dir = copy_fixture("tulia");
    compile_ok(dir.path());
    let before = snapshot(dir.path());
    let spec = dir.path().join("kiln.kdl");
    let s = std::fs::read_to_string(&spec).expect("read");
    std::fs::write(
        &spec,
        s.replace("\"1.8.2\"", "\"1.8.3\"")
            .replace("api:1.8.2", "api:1.8.3"),
    )
    .expect("write");
    for n in ["0", "1", "3"] {
        let o = common::kiln_command(&["compile"], dir.path())
            .env("KILN_TEST_FAIL_AFTER_WRITES", n)
            .output()
            .expect("runs");
        assert_eq!(
            code(&o),
            2,
            "the simulated failure must fail the compile: {}",
            text(&o.stderr)
        );
        let mut after = snapshot(dir.path());
        after.remove("kiln.kdl");
        let mut expected = before.clone();
        expected.remove("kiln.kdl");
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "temp files left behind or files lost"
        );
        assert!(after == expected, "a failed compile changed files");
    }
}

#[test]
fn exit_codes_and_streams() {
    let root = common::root();
    // Invalid spec: 2, diagnostics on stderr, nothing on stdout.
    let bad = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        bad.path().join("kiln.kdl"),
        "project p {}\nenvironment production { tier prod }\n",
    )
    .expect("write");
    let o = kiln(&["compile"], bad.path());
    assert_eq!(code(&o), 2);
    assert!(o.stdout.is_empty());
    assert!(
        text(&o.stderr).contains("did you mean `production`?"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !bad.path().join("generated").exists(),
        "wrote output for an invalid spec"
    );
    // Unknown flag and unknown command: 2.
    assert_eq!(code(&kiln(&["compile", "--frobnicate"], &root)), 2);
    assert_eq!(code(&kiln(&["frobnicate"], &root)), 2);
    // No project: 2.
    let empty = tempfile::tempdir().expect("tempdir");
    let o = kiln(&["compile"], empty.path());
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("no kiln.kdl"),
        "{}",
        text(&o.stderr)
    );
    // Unknown environment: 2 with a suggestion.
    let o = kiln(&["inspect", "fixtures/tulia", "--env", "prodution"], &root);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("did you mean `production`?"),
        "{}",
        text(&o.stderr)
    );
    // --help and --version: 0 on stdout.
    let o = kiln(&["--help"], &root);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout).contains("compile"));
}

#[test]
fn json_format_is_machine_readable() {
    let bad = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        bad.path().join("kiln.kdl"),
        "project p {}\nenvironment production {\n    tier production\n    servise web {}\n}\n",
    )
    .expect("write");
    let o = kiln(&["compile", "--format", "json"], bad.path());
    assert_eq!(code(&o), 2);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let d = &doc["diagnostics"][0];
    assert_eq!(d["code"], "unknown-node");
    assert_eq!(d["location"]["line"], 4);
    assert_eq!(d["location"]["column"], 5);
    let o = kiln(&["compile", "--format", "github"], bad.path());
    assert!(
        text(&o.stdout).starts_with("::error file=kiln.kdl,line=4,col=5"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn broken_pipe_exits_zero() {
    let root = common::root();
    let mut child = Command::new(common::kiln_bin())
        .args(["inspect", "fixtures/tulia", "--env", "production"])
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // the reader goes away at once
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn outputs_never_escape_the_output_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project");
    std::fs::create_dir(&project).expect("mkdir");
    std::fs::write(
        project.join("kiln.kdl"),
        "project p {\n    output \"../escaped\"\n}\nenvironment production { tier production; }\n",
    )
    .expect("write");
    let o = kiln(&["compile"], &project);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("invalid-output"),
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.path().join("escaped").exists());
    // Environment and site names cannot smuggle path segments either.
    std::fs::write(
        project.join("kiln.kdl"),
        "project p {}\nenvironment production {\n    tier production\n    site \"../../x\"\n}\n",
    )
    .expect("write");
    let o = kiln(&["compile"], &project);
    assert_eq!(code(&o), 2);
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        1,
        "something was written next to the project"
    );
}

#[test]
fn fmt_check_and_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kiln.kdl"),
        "project p {}\nenvironment production {   tier production\n}\n",
    )
    .expect("write");
    let o = kiln(&["fmt", "--check"], dir.path());
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert_eq!(code(&kiln(&["fmt"], dir.path())), 0);
    assert_eq!(code(&kiln(&["fmt", "--check"], dir.path())), 0);
    // The formatted spec means the same.
    assert_eq!(
        code(&kiln(&["inspect", ".", "--env", "production"], dir.path())),
        0
    );
}

/// Every fixture's generated files and lock are committed, and are exactly what
/// `kiln compile` produces now (including passing every standard policy).
#[test]
fn committed_fixture_outputs_are_up_to_date() {
    let root = common::root();
    let mut stale = Vec::new();
    for project in common::fixture_projects() {
        let o = kiln(&["compile", "--check", &project.to_string_lossy()], &root);
        if code(&o) != 0 {
            stale.push(format!("{}:\n{}", project.display(), text(&o.stderr)));
        }
    }
    assert!(
        stale.is_empty(),
        "run `cargo run --release -- compile fixtures/<name>` and commit the result:\n{}",
        stale.join("\n")
    );
}

fn cache_files(dir: &Path) -> usize {
    let results = dir.join("policy-results");
    if results.exists() {
        walk(&results).len()
    } else {
        0
    }
}

#[test]
fn policy_result_cache_changes_nothing_and_never_sees_secret_values() {
    let project = copy_fixture("tulia");
    let cache = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str], cached: bool| {
        let mut cmd = common::kiln_command(args, project.path());
        cmd.env("KILN_CACHE_DIR", cache.path());
        if !cached {
            cmd.env("KILN_NO_RESULT_CACHE", "1");
        }
        cmd.output().expect("kiln runs")
    };
    // Twice, so that the one to compare with also finds its outputs up to date.
    run(&["compile", "."], false);
    let fresh = run(&["compile", "."], false);
    assert_eq!(code(&fresh), 0, "{}", text(&fresh.stderr));
    assert_eq!(
        cache_files(cache.path()),
        0,
        "KILN_NO_RESULT_CACHE=1 stores nothing"
    );
    let filling = run(&["compile", "."], true);
    let entries = cache_files(cache.path());
    assert!(entries > 0, "a compile stores policy outputs");
    let served = run(&["compile", "."], true);
    assert_eq!(
        cache_files(cache.path()),
        entries,
        "the second run only reads"
    );
    for out in [&filling, &served] {
        assert_eq!(code(out), code(&fresh));
        assert_eq!(text(&out.stderr), text(&fresh.stderr));
        assert_eq!(text(&out.stdout), text(&fresh.stdout));
    }

    // `secrets check` judges real values: its inputs never reach the cache folder.
    let env_file = project.path().join("production.env");
    std::fs::write(
        &env_file,
        "SECRET_KEY=changeme\nENCRYPTION_KEY=changeme\nDB_PASSWORD=hunter2\n",
    )
    .expect("write env file");
    let judged = run(
        &[
            "secrets",
            "check",
            ".",
            "--env",
            "production",
            "--env-file",
            "production.env",
        ],
        true,
    );
    assert_eq!(code(&judged), 1, "{}", text(&judged.stderr));
    assert_eq!(cache_files(cache.path()), entries);
}

/// A spec's own module: loaded when its pin matches (its finding reported at the module's
/// declaration), refused with the file's real hash when it does not, refused when unpinned.
#[test]
fn spec_modules_load_only_when_their_pin_matches() {
    let wasm = wat::parse_file(common::root().join("policies/examples/minimal.wat"))
        .expect("the ABI example assembles");
    let real = kiln::lock::hash(&wasm);
    let dir = copy_fixture("tulia");
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/org.wasm"), &wasm).unwrap();
    let spec = std::fs::read_to_string(dir.path().join("kiln.kdl")).unwrap();
    let with_module = |pin: &str| {
        std::fs::write(
            dir.path().join("kiln.kdl"),
            format!("{spec}\npolicies {{\n    module \"policies/org.wasm\" {pin}\n}}\n"),
        )
        .unwrap();
    };

    with_module(&format!("blake3=\"{real}\""));
    let o = kiln(&["compile", "--verbose", "--format", "json"], dir.path());
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("example.input-size"), "{out}");
    // `policy list --env` lists the project's own module with the standard library.
    let o = kiln(
        &["policy", "list", "--env", "production", "--format", "json"],
        dir.path(),
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let own = doc["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|p| p["rule"] == "example.input-size")
        .expect("the project's rule is listed");
    assert_eq!(own["module"], "policies/org.wasm");
    assert_eq!(own["blake3"], real.as_str());

    let wrong = "0".repeat(64);
    with_module(&format!("blake3=\"{wrong}\""));
    let o = kiln(&["compile"], dir.path());
    let err = text(&o.stderr);
    assert_ne!(code(&o), 0, "{err}");
    assert!(err.contains("module-hash-mismatch"), "{err}");
    assert!(err.contains(&real), "the help names the file's hash: {err}");
    assert!(err.contains("nothing written"), "{err}");

    with_module("");
    let o = kiln(&["compile"], dir.path());
    let err = text(&o.stderr);
    assert_ne!(code(&o), 0, "{err}");
    assert!(err.contains("module-unpinned"), "{err}");
}

/// Limits a preset chose and no spec line overrides are said once, as information, at the
/// preset line (issue 13: "preset resource limits apply silently on a host").
#[test]
fn preset_limits_are_shown_in_verbose_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kiln.kdl"),
        r#"project p { output "generated" }
environment production {
    tier production
    service web preset=django-web { image "app:1"; run gunicorn "app.wsgi"; }
    service api preset=django-web { image "app:1"; run gunicorn "app.wsgi"; port 8001; resources cpu=2; }
    service own preset=django-web {
        image "app:1"
        run gunicorn "app.wsgi"
        port 8002
        resources cpu=2 memory="2Gi" pids=64
    }
    targets systemd
}
"#,
    )
    .expect("write");
    let o = kiln(&["compile", "--verbose", "--format", "json"], dir.path());
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let mut limits: Vec<&str> = doc["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == "preset-limits")
        .map(|d| d["message"].as_str().expect("message"))
        .collect();
    limits.sort_unstable();
    assert_eq!(
        limits,
        [
            "service `api` runs under preset django-web's resource limits: memory 1Gi, pids 256",
            "service `web` runs under preset django-web's resource limits: cpu 1, memory 1Gi, pids 256",
        ],
        "{doc:#}"
    );
    let human = text(&kiln(&["compile", "--verbose"], dir.path()).stderr);
    assert!(human.contains("presets/django-web.kdl"), "{human}");
    let quiet = text(&kiln(&["compile"], dir.path()).stderr);
    assert!(!quiet.contains("preset-limits"), "{quiet}");
}

/// `kiln init` → `kiln compile` exits 0 on a fresh folder, for every preset; the spec is
/// `fmt`-clean and checks clean; init never replaces a spec (or writes through a link).
#[test]
fn init_then_compile() {
    for preset in ["django", "fastapi"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let project = dir.path().join("My Shop");
        let o = kiln(&["init", "--preset", preset, "My Shop"], dir.path());
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let spec = std::fs::read_to_string(project.join("kiln.kdl")).expect("kiln.kdl");
        assert!(spec.contains("project my-shop {"), "{spec}");
        let o = kiln(&["compile"], &project);
        assert_eq!(code(&o), 0, "{preset}: {}", text(&o.stderr));
        assert!(!text(&o.stderr).contains('×'), "{}", text(&o.stderr));
        assert_eq!(code(&kiln(&["fmt", "--check"], &project)), 0, "{preset}");
        assert_eq!(
            code(&kiln(&["compile", "--check"], &project)),
            0,
            "{preset}"
        );
        // A second init changes nothing.
        let o = kiln(&["init"], &project);
        assert_eq!(code(&o), 2);
        assert!(
            text(&o.stderr).contains("already exists"),
            "{}",
            text(&o.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(project.join("kiln.kdl")).expect("read"),
            spec
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink("/tmp/kiln-init-target", dir.path().join("kiln.kdl"))
        .expect("symlink");
    assert_eq!(code(&kiln(&["init"], dir.path())), 2);
    assert!(!Path::new("/tmp/kiln-init-target").exists());
}

/// The README's example, pasted into an empty folder, compiles with no error and is
/// `fmt`-clean (issue 14: it exited 1 with two policy errors).
#[test]
fn readme_example_compiles_clean() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).expect("README");
    let start = readme.find("```kdl\n").expect("a kdl block") + "```kdl\n".len();
    let end = start + readme[start..].find("```").expect("its end");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kiln.kdl"), &readme[start..end]).expect("write");
    let o = kiln(&["compile"], dir.path());
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains('×'), "{}", text(&o.stderr));
    assert_eq!(code(&kiln(&["fmt", "--check"], dir.path())), 0);
}

/// `-q`: errors and drift only, for hooks (issue 14: 161 unrelated warnings for a one-line
/// change).
#[test]
fn quiet_prints_only_errors_and_drift() {
    let dir = common::copy_tree(&common::root().join("fixtures/tulia"));
    let o = kiln(&["compile", "--check", "-q"], dir.path());
    assert_eq!(code(&o), 0);
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    let loud = kiln(&["compile", "--check"], dir.path());
    assert!(text(&loud.stderr).contains('⚠'), "tulia has warnings");
    let nginx = dir.path().join("generated/production/nginx/nginx.conf");
    let mut t = std::fs::read_to_string(&nginx).expect("read");
    t.push_str("# hand edit\n");
    std::fs::write(&nginx, t).expect("write");
    let o = kiln(&["compile", "--check", "-q"], dir.path());
    assert_eq!(code(&o), 1);
    let err = text(&o.stderr);
    assert!(err.contains("nginx.conf was edited by hand"), "{err}");
    assert!(!err.contains('⚠'), "{err}");
    assert_eq!(
        code(&kiln(&["compile", "-q", "-v"], dir.path())),
        2,
        "-q and -v conflict"
    );
}

/// Shell completions and the man page come from the same definition as `--help`.
#[test]
fn completions_and_man_page() {
    let root = common::root();
    for shell in ["bash", "zsh", "fish"] {
        let o = kiln(&["completions", shell], &root);
        assert_eq!(code(&o), 0, "{shell}");
        assert!(text(&o.stdout).contains("compile"), "{shell}");
    }
    assert_eq!(code(&kiln(&["completions", "tcsh"], &root)), 2);
    let o = kiln(&["man"], &root);
    assert_eq!(code(&o), 0);
    let man = text(&o.stdout);
    assert!(man.contains(".TH kiln 1") && man.contains("init"), "{man}");
}

/// The pre-commit hook finds each changed file's project (a subfolder, or several) and
/// checks it quietly; files outside any project are ignored (issue 14: a project in a
/// subfolder failed the hook until `args:` was added).
#[test]
fn pre_commit_hook_checks_the_projects_of_the_changed_files() {
    let repo = tempfile::tempdir().expect("tempdir");
    let tulia = repo.path().join("deploy/tulia");
    std::fs::create_dir_all(tulia.parent().expect("parent")).expect("mkdir");
    let copy = common::copy_tree(&common::root().join("fixtures/tulia"));
    std::fs::rename(copy.path(), &tulia).expect("move");
    std::fs::write(repo.path().join("README.md"), "x\n").expect("write");
    let hook = common::root().join("compiler/kiln/pre-commit-hook.sh");
    let run = |args: &[&str]| {
        std::process::Command::new("bash")
            .arg(&hook)
            .args(args)
            .current_dir(repo.path())
            .env("KILN", common::kiln_bin())
            .env("KILN_CACHE_DIR", common::test_cache().0)
            .env("KILN_CACHE_KEY_FILE", common::test_cache().1)
            .output()
            .expect("run the hook")
    };
    let o = run(&["check", "deploy/tulia/kiln.kdl", "README.md"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "quiet: {}", text(&o.stderr));
    let nginx = tulia.join("generated/production/nginx/nginx.conf");
    let mut t = std::fs::read_to_string(&nginx).expect("read");
    t.push_str("# hand edit\n");
    std::fs::write(&nginx, t).expect("write");
    let o = run(&[
        "check",
        "deploy/tulia/generated/production/nginx/nginx.conf",
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("edited by hand"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        code(&run(&["check", "README.md"])),
        0,
        "no project: nothing to do"
    );
    assert_eq!(code(&run(&["fmt", "deploy/tulia/kiln.kdl"])), 0);
}

/// Every diagnostic code kiln can emit is documented in docs/spec.md, so `kiln explain CODE`
/// answers for each (issue 14: `kiln explain` failed for the spec's codes), and a line past
/// a file's end is an error, not an empty success.
#[test]
fn every_diagnostic_code_is_explained() {
    let root = common::root();
    let mut codes = std::collections::BTreeSet::new();
    for dir in ["compiler", "targets"] {
        for entry in walkdir::WalkDir::new(root.join(dir)).into_iter().flatten() {
            let p = entry.path();
            if p.extension().is_none_or(|e| e != "rs")
                || p.components().any(|c| c.as_os_str() == "tests")
            {
                continue;
            }
            let text = std::fs::read_to_string(p).expect("source");
            for opener in ["Diagnostic::error(", "Diagnostic::warning("] {
                for (at, _) in text.match_indices(opener) {
                    let rest = text[at + opener.len()..].trim_start();
                    if let Some(code) = rest.strip_prefix('"').and_then(|r| r.split('"').next())
                        && code.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    {
                        codes.insert(code.to_owned());
                    }
                }
            }
        }
    }
    assert!(codes.len() > 40, "{codes:?}");
    for c in &codes {
        let o = kiln(&["explain", c], &root);
        assert_eq!(code(&o), 0, "`kiln explain {c}`: {}", text(&o.stderr));
        assert!(
            text(&o.stdout).contains("when:"),
            "{c}: {}",
            text(&o.stdout)
        );
    }
    let o = kiln(
        &[
            "explain",
            "fixtures/tulia/generated/production/nginx/nginx.conf:9999",
        ],
        &root,
    );
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("there is no line 9999"),
        "{}",
        text(&o.stderr)
    );
}

/// A long compile on a terminal shows its progress; without a terminal (CI logs, pipes) or
/// with `-q` nothing is drawn (issue 14: 35 s without a line).
#[test]
fn progress_only_on_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = String::from(
        "project many { output \"generated\" }\nenvironment base abstract=#true {\n    env { ALLOWED_HOSTS \"a.example\"; DEBUG #false; }\n    service web preset=fastapi-web { image \"ghcr.io/many/app:1.0.0\"; }\n    targets compose\n}\n",
    );
    for i in 0..40 {
        spec.push_str(&format!(
            "environment e{i:02} extends=base {{ tier development }}\n"
        ));
    }
    std::fs::write(dir.path().join("kiln.kdl"), &spec).expect("write");
    let o = kiln(&["compile", "--check"], dir.path());
    assert!(
        !text(&o.stderr).contains("kiln: compiling"),
        "{}",
        text(&o.stderr)
    );
    // util-linux `script` gives the command a terminal.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("no `script` here: the terminal half is not checked");
        return;
    }
    let (cache, key) = common::test_cache();
    let line = format!(
        "KILN_CACHE_DIR={} KILN_CACHE_KEY_FILE={} {} compile --check {}",
        cache.display(),
        key.display(),
        common::kiln_bin().display(),
        dir.path().display()
    );
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains("kiln: compiling"), "{shown}");
    assert!(shown.contains("/40 environments"), "{shown}");
    let quiet = Command::new("script")
        .args(["-qec", &format!("{line} -q"), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    assert!(!String::from_utf8_lossy(&quiet.stdout).contains("kiln: compiling"));
}

/// A Kubernetes Ingress that cannot carry the preset's security headers says so in a plain
/// compile, not only with `--verbose` (issue 15).
#[test]
fn lost_ingress_headers_are_a_plain_warning() {
    let dir = common::copy_tree(&common::root().join("fixtures/tulia"));
    let o = kiln(&["compile", "--check"], dir.path());
    let err = text(&o.stderr);
    assert!(
        err.contains("k8s cannot express this setting: response headers (Content-Security-"),
        "{err}"
    );
}
