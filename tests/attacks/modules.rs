//! Hostile policy modules: their text cannot act on a terminal, their failures cost one run,
//! and their findings must name what exists (issue 12, D10, D11, D17).

use std::path::Path;

use crate::support::*;

/// A module reporting `findings` (a JSON array) for every environment, or looping forever.
fn module_wat(findings: &str, artifacts: bool, loops: bool) -> String {
    let inputs = match artifacts {
        true => r#",\"inputs\":[\"spec\",\"artifacts\"]"#,
        false => "",
    };
    let output = format!("{{\"findings\":{findings}}}");
    let escaped = output.replace('\\', "\\\\").replace('"', "\\\"");
    let body = match loops {
        true => "(loop $l (br $l)) (unreachable)".to_owned(),
        false => format!(
            "(i64.or (i64.shl (i64.const 1048576) (i64.const 32)) (i64.const {}))",
            output.len()
        ),
    };
    format!(
        r#"(module
  (@custom "kiln.policy.v1" "{{\"id\":\"evil\",\"version\":\"1.0.0\",\"summary\":\"s\"{inputs},\"rules\":[{{\"id\":\"evil.rule\",\"default_severity\":\"error\",\"summary\":\"s\",\"docs\":{{\"what\":\"w\",\"why\":\"w\",\"example\":\"e\",\"instead\":\"i\"}}}}]}}")
  (memory (export "memory") 64)
  (func (export "kiln_abi_version") (result i32) (i32.const 0x10000))
  (func (export "kiln_alloc") (param i32) (result i32) (i32.const 2097152))
  (data (i32.const 1048576) "{escaped}")
  (func (export "kiln_check") (param i32 i32) (result i64) {body})
)"#
    )
}

/// tulia with the module in `policies/evil.wasm`, pinned, and `extra` appended to the spec.
fn with_module(wat: &str, extra: &str) -> tempfile::TempDir {
    let dir = fixture("tulia");
    let wasm = wat::parse_str(wat).expect("the test module assembles");
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/evil.wasm"), &wasm).unwrap();
    let spec = read(dir.path(), "kiln.kdl");
    let pin = blake3::hash(&wasm).to_hex();
    write(
        dir.path(),
        "kiln.kdl",
        &format!(
            "{spec}\npolicies {{\n    module \"policies/evil.wasm\" blake3=\"{pin}\"\n}}\n{extra}"
        ),
    );
    dir
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    kiln(args, dir)
}

/// No byte a terminal acts on: ESC, BEL, CR, other C0 and C1 controls.
fn assert_inert(text: &str, what: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect();
    assert!(
        bad.is_empty(),
        "{what} holds raw control characters {bad:?}:\n{text}"
    );
}

/// D10: finding messages, help and related text reached stderr raw (clear-screen, OSC title,
/// CR) even with `--color never`; raw ESC reached `--format github` too.
#[test]
fn policy_text_is_escaped_in_every_format() {
    let evil = r#"\u001b[2J\u001b]0;pwned\u0007\rfake: all good\u009b"#;
    let findings = format!(
        r#"[{{"rule":"evil.rule","message":"m{evil}","help":"h{evil}","path":"/services/web","related":[{{"path":"/services/web","message":"r{evil}"}}]}}]"#
    );
    let dir = with_module(&module_wat(&findings, false, false), "");
    for args in [
        &["compile", "--color", "never"][..],
        &["compile", "--color", "always"],
        &["compile", "--format", "github"],
        &["compile", "--format", "json"],
        &["compile", "--format", "sarif"],
        &["compile", "--check", "--format", "github"],
    ] {
        let o = run(dir.path(), args);
        assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
        let (out, err) = (stdout(&o), stderr(&o));
        // ESC is expected in `--color always` as colour codes only: none may come from the module.
        let err = match args.contains(&"always") {
            true => strip_sgr(&err),
            false => err,
        };
        assert_inert(&err, &format!("stderr of {args:?}"));
        assert_inert(&out, &format!("stdout of {args:?}"));
        assert!(
            says(&err, "pwned") || out.contains("pwned"),
            "{args:?}: the text vanished"
        );
        if args.contains(&"json") || args.contains(&"sarif") {
            // Decoded, the strings hold no control character either.
            let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_inert(&strings(&doc).join("\n"), &format!("decoded {args:?}"));
        }
    }
}

/// Colour escape sequences (`ESC [ … m`), which kiln itself writes under `--color always`.
fn strip_sgr(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\u{1b}[") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        match tail.find(|c: char| !(c.is_ascii_digit() || c == ';')) {
            Some(end) if tail[end..].starts_with('m') => rest = &tail[end + 1..],
            _ => {
                out.push('\u{1b}');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().flat_map(strings).collect(),
        serde_json::Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// D11: a module that loops burned its full fuel in every environment (30.7 s on 60).
#[test]
fn a_module_that_fails_is_not_run_again() {
    let mut extra = String::new();
    for i in 0..12 {
        extra.push_str(&format!(
            "environment copy{i} extends=production {{\n    tier staging\n}}\n"
        ));
    }
    let dir = with_module(&module_wat("[]", false, true), &extra);
    let o = crate::common::kiln_command(&["compile", "--format", "json"], dir.path())
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let failures: Vec<&serde_json::Value> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "policy-failed")
        .collect();
    // 14 environments; with two threads at most two calls are under way when the first fails.
    assert!(
        (1..=2).contains(&failures.len()),
        "{} runs of a looping module",
        failures.len()
    );
    let message = failures[0]["message"].as_str().unwrap();
    assert!(message.contains("ran out of fuel"), "{message}");
}

/// D17: `artifact.path` was not checked against the artifacts (`../../../../etc/passwd` was
/// accepted), a pointer to nothing was shown without the pointer, and `related` entries that
/// pointed at nothing were dropped silently.
#[test]
fn findings_must_name_what_exists() {
    let escape = r#"[{"rule":"evil.rule","message":"m","artifact":{"path":"../../../../etc/passwd","line":1}}]"#;
    let dir = with_module(&module_wat(escape, true, false), "");
    let o = run(dir.path(), &["compile"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        says(
            &stderr(&o),
            "which is not one of the files the module was given"
        ),
        "{}",
        stderr(&o)
    );

    let past_end = r#"[{"rule":"evil.rule","message":"m","artifact":{"path":"nginx/nginx.conf","line":100000}}]"#;
    let dir = with_module(&module_wat(past_end, true, false), "");
    let o = run(dir.path(), &["compile"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        says(&stderr(&o), "at line 100000 of `nginx/nginx.conf`"),
        "{}",
        stderr(&o)
    );

    let nowhere = r#"[{"rule":"evil.rule","message":"m","path":"/no/such/thing","related":[{"path":"/nor/this","message":"see there"}]}]"#;
    let dir = with_module(&module_wat(nowhere, false, false), "");
    let o = run(dir.path(), &["compile"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        says(
            &err,
            "the policy points at `/no/such/thing`, which is nothing in the resolved model"
        ),
        "{err}"
    );
    assert!(
        says(&err, "see there (at `/nor/this`"),
        "the related entry was dropped:\n{err}"
    );
}
