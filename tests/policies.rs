//! The standard policy library end to end: its documentation is complete, every
//! rule's example triggers exactly that rule on a clean project and its "use
//! instead" does not, the policy test cases pass, and the four findings the
//! product is known for land on the exact spec line with exit code 1.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln::policy::{Date, Policy};
use kiln_core::diagnostic::{Diagnostic, Severity};

use common::kiln;

fn stdlib() -> Vec<Arc<Policy>> {
    let config = kiln_policy_host::HostConfig {
        cache: Some(common::test_cache_dir()),
        ..Default::default()
    };
    let host = kiln_policy_host::PolicyHost::new(config).expect("host");
    kiln::stdlib::load(&host).expect("the standard library loads")
}

/// Compiles a spec in memory with the standard library; returns its policy findings.
fn findings(text: &str, std: &[Arc<Policy>]) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let (project, diags) = common::load_text(text);
    let mut b = kiln::build::build(project, diags, &[]);
    let spec_errors: Vec<Diagnostic> = b
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    kiln::policy::run(&mut b, std, &BTreeMap::new(), Date(2026, 11, 22));
    let policy: Vec<Diagnostic> = b
        .diagnostics
        .into_iter()
        .filter(|d| d.code.contains('.') && d.severity != Severity::Info)
        .collect();
    (spec_errors, policy)
}

fn clean_spec() -> String {
    std::fs::read_to_string(common::root().join("policies/testdata/clean/kiln.kdl"))
        .expect("policies/testdata/clean/kiln.kdl")
}

/// `clean` with an extra environment `probe` extending its production.
fn with_snippet(clean: &str, snippet: &str) -> String {
    format!("{clean}\nenvironment probe extends=production {{\n{snippet}\n}}\n")
}

#[test]
fn every_rule_is_documented() {
    let mut problems = Vec::new();
    let mut count = 0;
    for (name, _, meta) in kiln::stdlib::metas() {
        for r in &meta.rules {
            count += 1;
            for (section, text) in [
                ("what", &r.docs.what),
                ("why", &r.docs.why),
                ("example", &r.docs.example),
                ("instead", &r.docs.instead),
            ] {
                if text.trim().is_empty() {
                    problems.push(format!("{name}: {} has no `{section}`", r.id));
                }
            }
            if r.upstream.is_empty() {
                problems.push(format!("{name}: {} lists no upstream id", r.id));
            }
        }
    }
    assert!(count >= 22, "the first wave has 22 rules, found {count}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_clean_project_has_no_findings() {
    let std = stdlib();
    let (errors, found) = findings(&clean_spec(), &std);
    assert!(errors.is_empty(), "{errors:#?}");
    let codes: Vec<String> = found
        .iter()
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert!(found.is_empty(), "{}", codes.join("\n"));
}

#[test]
fn every_example_triggers_exactly_its_rule() {
    let std = stdlib();
    let clean = clean_spec();
    let mut problems = Vec::new();
    for (_, _, meta) in kiln::stdlib::metas() {
        for r in &meta.rules {
            if r.docs.example.contains("Cannot be triggered from a spec") {
                // An artifact guard: kiln's own output cannot trigger it; a hand edit can.
                if let Err(e) = artifact_guard_fires(&clean, &std, &r.id) {
                    problems.push(format!("{}: {e}", r.id));
                }
                continue;
            }
            let (errors, found) = findings(&with_snippet(&clean, &r.docs.example), &std);
            let probe: Vec<&Diagnostic> = found
                .iter()
                .filter(|d| d.notes.iter().any(|n| n.contains("probe")))
                .collect();
            let mine = probe.iter().filter(|d| d.code == r.id).count();
            let others: Vec<String> = probe
                .iter()
                .filter(|d| d.code != r.id)
                .map(|d| d.code.clone())
                .collect();
            if !errors.is_empty() {
                problems.push(format!(
                    "{}: the example is not a valid spec: {:?}",
                    r.id,
                    errors.iter().map(|e| &e.message).collect::<Vec<_>>()
                ));
            } else if mine != 1 || !others.is_empty() {
                problems.push(format!(
                    "{}: the example gives {mine} finding(s) of the rule and {others:?} of others",
                    r.id
                ));
            }
            let (errors, found) = findings(&with_snippet(&clean, &r.docs.instead), &std);
            let bad = found
                .iter()
                .filter(|d| d.code == r.id && d.notes.iter().any(|n| n.contains("probe")))
                .count();
            if !errors.is_empty() || bad > 0 {
                problems.push(format!(
                    "{}: `instead` still gives {bad} finding(s) (spec errors: {})",
                    r.id,
                    errors.len()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Compiles the clean project, removes the header include from a location of its
/// generated nginx site (the hand edit the rule guards against), and runs the
/// rule's policy on the edited files.
fn artifact_guard_fires(clean: &str, std: &[Arc<Policy>], rule: &str) -> Result<(), String> {
    let (project, diags) = common::load_text(clean);
    let mut b = kiln::build::build(project, diags, &["production".to_owned()]);
    let env = b.envs.pop().ok_or("no production environment")?;
    let model = env.model.ok_or("no model")?;
    let mut artifacts = env.artifacts;
    let mut edited = 0;
    for site in artifacts
        .iter_mut()
        .filter(|a| a.path.contains("/nginx/sites/"))
    {
        // The innermost block of each line: drop the first include of the
        // security headers that sits directly in a `location` block.
        let mut blocks: Vec<bool> = Vec::new(); // is_location per open block
        let mut removed = false;
        let mut kept = Vec::new();
        for line in site.text.lines() {
            let t = line.trim();
            if !removed
                && blocks.last() == Some(&true)
                && t.starts_with("include ")
                && t.contains("security-headers")
            {
                removed = true;
                continue;
            }
            if t.ends_with('{') {
                blocks.push(t.starts_with("location "));
            } else if t == "}" {
                blocks.pop();
            }
            kept.push(line);
        }
        if removed {
            site.text = kept.join("\n") + "\n";
            edited += 1;
        }
    }
    if edited == 0 {
        return Err("no location of the clean site includes the security headers".into());
    }
    let policy = std
        .iter()
        .find(|p| p.module.meta().rule(rule).is_some())
        .ok_or("no policy has the rule")?;
    let spec = model.to_json();
    let found = kiln::policy::evaluate(policy, &model, &spec, &artifacts, None, &b.project.sources);
    match found.iter().filter(|d| d.code == rule).count() {
        0 => Err(format!(
            "a location that drops the security headers is not reported (found: {:?})",
            found.iter().map(|d| &d.code).collect::<Vec<_>>()
        )),
        _ => Ok(()),
    }
}

#[test]
fn policy_test_cases_pass() {
    let root = common::root();
    let o = kiln(&["policy", "test", "policies/testdata/cases"], &root);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains(" 0 failed"), "{out}");
}

/// The four checks the product is known for, on a production fixture: each makes
/// `kiln compile` exit 1, with the rule's diagnostic on the line that caused it,
/// and nothing is written.
#[test]
fn known_findings_land_on_their_line() {
    let tulia =
        std::fs::read_to_string(common::root().join("fixtures/tulia/kiln.kdl")).expect("fixture");
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "web.debug-off",
            "        DEBUG #false\n        ALLOWED_HOSTS \"api.tulia.example\"",
            "        DEBUG #true\n        ALLOWED_HOSTS \"api.tulia.example\"",
            "DEBUG #true",
        ),
        (
            "http.hsts",
            "        max-body-size \"10M\"\n        rate-limit api",
            "        max-body-size \"10M\"\n        hsts #false\n        rate-limit api",
            "hsts #false",
        ),
        (
            "net.datastore-not-public",
            "pooler pgbouncer mode=transaction",
            "pooler pgbouncer listen-addr=\"0.0.0.0\" mode=transaction",
            "listen-addr=\"0.0.0.0\"",
        ),
        (
            "secret.no-placeholder",
            "        SENTRY_RELEASE \"1.8.2\"",
            "        SENTRY_RELEASE \"1.8.2\"\n        API_SECRET \"changeme\"",
            "API_SECRET \"changeme\"",
        ),
    ];
    for (rule, from, to, line_text) in cases {
        assert!(
            tulia.contains(from),
            "{rule}: the fixture changed; update this test"
        );
        let spec = tulia.replacen(from, to, 1);
        let at = tulia.find(from).expect("found");
        let line = spec[at..]
            .lines()
            .position(|l| l.contains(line_text))
            .expect("edited line")
            + spec[..at].matches('\n').count()
            + 1;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("kiln.kdl"), &spec).expect("write");
        let o = kiln(
            &["compile", "--env", "production", "--format", "json"],
            dir.path(),
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "{rule}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let hit = doc["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .any(|d| {
                d["code"] == rule
                    && d["severity"] == "error"
                    && d["location"]["file"] == "kiln.kdl"
                    && d["location"]["line"] == line
            });
        assert!(
            hit,
            "{rule}: no error at kiln.kdl:{line}:\n{:#}",
            doc["diagnostics"]
        );
        assert!(
            !dir.path().join("generated").exists(),
            "{rule}: wrote output despite an error finding"
        );
    }
}

/// A waiver whose path points at nothing waives nothing: an error at its line, naming the
/// nearest value that exists (issue 13); one that points at a value still waives.
#[test]
fn a_waiver_path_that_matches_nothing_is_an_error() {
    let std = stdlib();
    let clean = clean_spec();
    let spec = with_snippet(
        &clean,
        "    service worker { user \"0:0\"; }\n    policies {\n        waive run.non-root path=\"/services/wroker\" reason=\"typo\" expires=\"2027-06-01\"\n    }",
    );
    let (project, diags) = common::load_text(&spec);
    let mut b = kiln::build::build(project, diags, &[]);
    kiln::policy::run(&mut b, &std, &BTreeMap::new(), Date(2026, 11, 22));
    let bad: Vec<&Diagnostic> = b
        .diagnostics
        .iter()
        .filter(|d| d.code == "waiver-path")
        .collect();
    assert_eq!(bad.len(), 1, "{:#?}", b.diagnostics);
    assert!(bad[0].is_error());
    assert!(
        bad[0].help.as_deref().unwrap_or("").contains("`/services`"),
        "{:?}",
        bad[0].help
    );
    assert!(!bad[0].labels.is_empty(), "at the waiver's line");
    assert!(
        b.diagnostics.iter().any(|d| d.code == "run.non-root"),
        "the finding stands"
    );

    let spec = spec.replace("/services/wroker", "/services/worker");
    let (_, policy) = findings(&spec, &std);
    assert!(
        policy.iter().all(|d| d.code != "run.non-root"),
        "{policy:#?}"
    );
}

/// Each finding carries its JSON pointer (what a waiver names): in the diagnostic, hence in
/// `--format json` and SARIF `properties` (issue 13).
#[test]
fn findings_carry_their_pointer() {
    let std = stdlib();
    let spec = with_snippet(&clean_spec(), "    service worker { user \"0:0\"; }");
    let (project, diags) = common::load_text(&spec);
    let mut b = kiln::build::build(project, diags, &[]);
    kiln::policy::run(&mut b, &std, &BTreeMap::new(), Date(2026, 11, 22));
    let d = b
        .diagnostics
        .iter()
        .find(|d| d.code == "run.non-root")
        .expect("a run.non-root finding");
    assert_eq!(
        d.pointer.as_deref(),
        Some("/services/worker/user"),
        "{d:#?}"
    );
    let sarif = kiln::report::sarif(
        &b.diagnostics,
        &b.project.sources,
        &BTreeMap::new(),
        &[],
        &kiln::report::Paths::default(),
    );
    let pointers: Vec<&str> = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["properties"]["pointer"].as_str())
        .collect();
    assert!(pointers.contains(&"/services/worker/user"), "{pointers:?}");
}

#[test]
fn the_policies_readme_lists_every_rule() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/README.md"
    ))
    .expect("policies/README.md");
    let missing: Vec<String> = kiln::stdlib::metas()
        .iter()
        .flat_map(|(_, _, meta)| meta.rules.iter().map(|r| r.id.clone()))
        .filter(|id| !readme.contains(&format!("`{id}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "policies/README.md's table lacks {missing:?}"
    );
}
