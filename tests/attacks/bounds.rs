//! Every input has a bounded cost (issue 12, D7, D8, D13): deep nesting, long lines, huge
//! maps and long `extends` chains end in a diagnostic or a result, never a crash or a hang.
//!
//! These are not timing tests: the watchdog is minutes, far above what the linear code
//! takes, and far below what the quadratic code took on the same input.

use std::time::{Duration, Instant};

use crate::support::*;

/// Runs kiln, killing it (and failing) if it runs past `limit`.
fn bounded(args: &[&str], dir: &std::path::Path, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    let mut child = crate::common::kiln_command(args, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the pipes on threads, so a chatty child cannot block on a full pipe.
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("kiln {args:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

const MINUTES: Duration = Duration::from_secs(120);

/// D7: 1 280 levels of nesting (a 3.8 KB spec) overflowed the stack; `fmt --check` too.
#[test]
fn deep_nesting_is_a_diagnostic() {
    let depth = 100_000;
    let spec = format!(
        "project p {{ output \"generated\" }}\nenvironment dev {{\n    tier development\n    x {}{}\n}}\n",
        "a {".repeat(depth),
        "}".repeat(depth)
    );
    let dir = project(&spec);
    for args in [
        &["compile"][..],
        &["fmt", "--check"],
        &["inspect", "--env", "dev"],
    ] {
        let o = bounded(args, dir.path(), MINUTES);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(
            says(&stderr(&o), "blocks nest more than 64 deep"),
            "{}",
            stderr(&o)
        );
    }
}

/// D8: a diagnostic past column 65 535 made miette panic ("Formatting argument out of
/// range", exit 101).
#[test]
fn a_diagnostic_far_along_a_line_is_drawn_without_its_line() {
    let spec = format!(
        "project p {{ output \"generated\" }}\nenvironment dev {{ tier development; env {{ A \"{}\" }}; nonsense 1 }}\n",
        "x".repeat(70_000)
    );
    let dir = project(&spec);
    let o = bounded(&["compile"], dir.path(), MINUTES);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("unknown-node"), "{err}");
    assert!(err.contains("at kiln.kdl:2:700"), "no position:\n{err}");
    assert!(!err.contains(&"x".repeat(1000)), "the long line was drawn");
}

/// D13: env maps were quadratic (4 MB took 37 s), and so was every level of many nodes.
#[test]
fn a_huge_env_map_costs_linear_time() {
    let vars: String = (0..200_000)
        .map(|i| format!("        VAR_{i} \"value {i}\"\n"))
        .collect();
    let spec = format!(
        "project p {{ output \"generated\" }}\nenvironment base abstract=#true {{\n    tier development\n    env {{\n{vars}    }}\n}}\nenvironment dev extends=base {{\n    env {{ VAR_7 \"changed\" }}\n}}\n"
    );
    let dir = project(&spec);
    let o = bounded(&["inspect", "--env", "dev"], dir.path(), MINUTES);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let model: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(model["env"]["VAR_7"], "changed", "{}", &stdout(&o)[..500]);
    assert_eq!(model["env"].as_object().unwrap().len(), 200_000);
}

/// D13: an `extends` chain of 5 000 took 155 s (the cycle check was cubic).
#[test]
fn a_long_extends_chain_is_refused_at_once() {
    let mut spec =
        String::from("project p { output \"generated\" }\nenvironment e0 { tier development }\n");
    for i in 1..5_000 {
        spec.push_str(&format!("environment e{i} extends=e{} {{}}\n", i - 1));
    }
    let dir = project(&spec);
    let o = bounded(&["compile"], dir.path(), MINUTES);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        says(
            &err,
            "environment `e64` is more than 64 `extends` away from its root"
        ),
        "{err}"
    );
    assert_eq!(
        err.matches("extends-depth").count(),
        1,
        "one diagnostic per chain:\n{err}"
    );
}

/// D20: with a fixed fuel budget the standard policies ran out at a few thousand services
/// ("a bug in the policy module"); fuel now grows with the input.
#[test]
fn a_large_environment_is_judged_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let generator = crate::common::root().join("bench/gen.py");
    let status = std::process::Command::new("python3")
        .arg(generator)
        .arg(dir.path())
        .args(["--envs", "1", "--services", "3400", "--targets", "compose"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs bench/gen.py");
    assert!(status.success());
    let o = crate::common::kiln_command(&["compile", "--format", "json"], dir.path())
        .env("KILN_NO_RESULT_CACHE", "1")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "policy-failed")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
