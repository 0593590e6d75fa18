//! `kiln compile --check` proves, never trusts: the lock, the outputs and the policy cache
//! can all be written by the branch under test.

use crate::support::*;

const DEBUG_OFF: &str = "DEBUG #false";
const DEBUG_ON: &str = "DEBUG #true  // slipped in";

/// tulia's production spec with DEBUG switched on, and the lock "updated" to match.
fn debug_on_with_forged_lock() -> tempfile::TempDir {
    let dir = fixture("tulia");
    compile_ok(dir.path());
    let spec = read(dir.path(), "kiln.kdl");
    let prod = spec
        .find("environment production")
        .expect("a production environment");
    let at = prod + spec[prod..].find(DEBUG_OFF).expect("production sets DEBUG");
    let hostile = format!("{}{DEBUG_ON}{}", &spec[..at], &spec[at + DEBUG_OFF.len()..]);
    write(dir.path(), "kiln.kdl", &hostile);
    forge_lock_line(dir.path(), "input \"kiln.kdl\"", hostile.as_bytes());
    dir
}

/// D1: a policy error hidden behind a lock whose input hash was rewritten.
#[test]
fn a_forged_lock_does_not_hide_a_policy_error() {
    let dir = debug_on_with_forged_lock();
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(
        code(&o),
        1,
        "--check passed a DEBUG-on production:\n{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("web.debug-off"), "{}", stderr(&o));
    // The machine formats gate CI: they must carry the finding too.
    let o = kiln(&["compile", "--check", "--format", "sarif"], dir.path());
    assert_eq!(code(&o), 1);
    let sarif: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("SARIF is JSON");
    let rules: Vec<&str> = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["ruleId"].as_str())
        .collect();
    assert!(rules.contains(&"web.debug-off"), "{rules:?}");
    let o = kiln(&["compile", "--check", "--format", "json"], dir.path());
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("web.debug-off"));
}

/// D1: a hand-edited output whose `output` lock line was rewritten to match.
#[test]
fn a_hand_edited_output_with_a_forged_lock_line_is_drift() {
    let dir = fixture("tulia");
    compile_ok(dir.path());
    let rel = "generated/production/nginx/nginx.conf";
    let edited = read(dir.path(), rel).replace("server_tokens off;", "server_tokens on;");
    assert!(
        edited.contains("server_tokens on;"),
        "the site sets server_tokens"
    );
    write(dir.path(), rel, &edited);
    forge_lock_line(dir.path(), &format!("output \"{rel}\""), edited.as_bytes());
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains(rel), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("-    server_tokens on;"),
        "{}",
        stderr(&o)
    );
}

/// D6: the policy result cache rewritten with "no findings" and a valid checksum, as a cache
/// restored in CI from another branch's run could be.
#[test]
fn a_forged_result_cache_cannot_switch_a_rule_off() {
    let dir = debug_on_with_forged_lock();
    let cache = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        crate::common::kiln_command(args, dir.path())
            .env("KILN_CACHE_DIR", cache.path())
            .output()
            .expect("kiln runs")
    };
    let o = run(&["compile"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("web.debug-off"));
    // Every stored output becomes `{"findings":[]}`, under a correct blake3 of the new bytes.
    let forged = br#"{"findings":[]}"#;
    let mut rewritten = 0;
    for entry in walkdir::WalkDir::new(cache.path().join("policy-results")) {
        let entry = entry.expect("walk");
        if !entry.file_type().is_file() {
            continue;
        }
        let mut bytes = std::fs::read(entry.path()).expect("read");
        let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
            continue;
        };
        let header = newline + 1 + 32;
        if bytes.len() < header {
            continue;
        }
        bytes.truncate(header);
        bytes[header - 32..].copy_from_slice(blake3::hash(forged).as_bytes());
        bytes.extend_from_slice(forged);
        std::fs::write(entry.path(), bytes).expect("forge");
        rewritten += 1;
    }
    assert!(rewritten > 0, "the compile stored no policy outputs");
    for args in [&["compile"][..], &["compile", "--check"]] {
        let o = run(args);
        assert_eq!(
            code(&o),
            1,
            "kiln {args:?} trusted a forged cache:\n{}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("web.debug-off"), "{}", stderr(&o));
    }
}

/// A value only one target gets is judged like any other: `DEBUG #false k8s=#true` must not
/// slip a DEBUG-on Kubernetes deployment past the policies, whose model view of every other
/// target has DEBUG off.
#[test]
fn a_per_target_value_cannot_hide_from_the_policies() {
    let dir = fixture("tulia");
    let spec = read(dir.path(), "kiln.kdl");
    let prod = spec
        .find("environment production")
        .expect("a production environment");
    let at = prod + spec[prod..].find(DEBUG_OFF).expect("production sets DEBUG");
    let hostile = format!(
        "{}DEBUG #false k8s=#true{}",
        &spec[..at],
        &spec[at + DEBUG_OFF.len()..]
    );
    write(dir.path(), "kiln.kdl", &hostile);
    let o = kiln(&["compile"], dir.path());
    assert_eq!(
        code(&o),
        1,
        "a DEBUG-on k8s output compiled:\n{}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(err.contains("web.debug-off"), "{err}");
    assert!(err.contains("in the k8s output"), "{err}");
    assert!(
        err.contains("k8s=#true"),
        "the finding points at the k8s value:\n{err}"
    );
    let o = kiln(&["compile", "--check"], dir.path());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}
