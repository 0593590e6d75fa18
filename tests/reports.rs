//! Machine formats: SARIF 2.1.0 (validated against the official schema and
//! the serde-sarif model), GitHub annotations, JSON; `kiln diff` and
//! `kiln explain` read back the spec lines behind generated lines.

mod common;

use std::path::PathBuf;

use common::kiln;

/// The SARIF 2.1.0 schema that ships inside the serde-sarif crate's source.
fn sarif_schema() -> serde_json::Value {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    let src = cargo_home.join("registry/src");
    let path = std::fs::read_dir(&src)
        .expect("cargo registry sources")
        .flatten()
        .map(|index| index.path().join("serde-sarif-0.8.0/src/schema.json"))
        .find(|p| p.is_file())
        .expect("serde-sarif's schema.json in the cargo registry");
    let mut schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema readable"))
            .expect("schema is JSON");
    // Erratum in the published schema: the `language` patterns (of `run` and
    // `toolComponent`) have an unbalanced `]`, which a strict validator refuses to
    // compile. Use the intended pattern.
    let fixed = fix_language_patterns(&mut schema);
    assert_eq!(fixed, 2, "the erratum changed; revisit this workaround");
    schema
}

fn fix_language_patterns(v: &mut serde_json::Value) -> usize {
    const BROKEN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    match v {
        serde_json::Value::Object(map) => {
            let mut n = 0;
            for (k, child) in map.iter_mut() {
                if k == "pattern" && child == BROKEN {
                    *child = serde_json::Value::from("^[a-zA-Z]{2}(-[a-zA-Z]{2})?$");
                    n += 1;
                } else {
                    n += fix_language_patterns(child);
                }
            }
            n
        }
        serde_json::Value::Array(items) => items.iter_mut().map(fix_language_patterns).sum(),
        _ => 0,
    }
}

/// A project with spec errors and one with policy findings.
fn spec_with_errors() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kiln.kdl"),
        "project p {}\nenvironment production {\n    tier production\n    servise web {}\n    redis cache maxmemroy=\"1gb\"\n}\n",
    )
    .expect("write");
    dir
}

fn check_sarif(stdout: &[u8]) {
    let doc: serde_json::Value = serde_json::from_slice(stdout).expect("SARIF is JSON");
    let schema = sarif_schema();
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF does not validate:\n{}\n{doc:#}",
        errors.join("\n")
    );
    let typed: serde_sarif::sarif::Sarif =
        serde_json::from_value(doc.clone()).expect("fits the serde-sarif model");
    assert_eq!(typed.runs.len(), 1);
}

#[test]
fn sarif_validates_against_the_schema() {
    let dir = spec_with_errors();
    let o = kiln(&["compile", "--format", "sarif"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    check_sarif(&o.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let results = doc["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ruleId"], "unknown-node");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        4
    );
}

#[test]
fn sarif_of_policy_findings_carries_rule_metadata() {
    let root = common::root();
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = std::fs::read_to_string(root.join("fixtures/tulia/kiln.kdl")).expect("fixture");
    let spec = spec.replacen("DEBUG #false", "DEBUG #true", 1);
    std::fs::write(dir.path().join("kiln.kdl"), spec).expect("write");
    let o = kiln(&["compile", "--format", "sarif"], dir.path());
    check_sarif(&o.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let rules = doc["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    if let Some(rule) = rules.iter().find(|r| r["id"] == "web.debug-off") {
        assert!(rule["help"]["text"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(
            rule["properties"]["upstream"]
                .as_array()
                .is_some_and(|u| !u.is_empty())
        );
        assert_eq!(o.status.code(), Some(1), "an error-level finding exits 1");
    }
}

#[test]
fn github_annotations_point_at_the_spec() {
    let dir = spec_with_errors();
    let o = kiln(&["compile", "--format", "github"], dir.path());
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("::error file=kiln.kdl,line=4,col=5,endLine=4,endColumn=12,title=unknown-node::unknown node `servise`"), "{out}");
    assert!(lines[1].contains("line=5"), "{out}");
}

fn compiled_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec =
        std::fs::read_to_string(common::root().join("fixtures/tulia/kiln.kdl")).expect("fixture");
    std::fs::write(dir.path().join("kiln.kdl"), spec).expect("write");
    let o = kiln(&["compile"], dir.path());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    dir
}

#[test]
fn diff_names_the_spec_line_behind_each_change() {
    let dir = compiled_copy();
    let spec_path = dir.path().join("kiln.kdl");
    let spec = std::fs::read_to_string(&spec_path).expect("read");
    let line = spec
        .lines()
        .position(|l| l.contains("replicas 3"))
        .expect("replicas line")
        + 1;
    std::fs::write(&spec_path, spec.replace("replicas 3", "replicas 5")).expect("write");
    let o = kiln(&["diff"], dir.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("=== production / "), "{out}");
    assert!(out.contains("+") && out.contains('5'), "{out}");
    assert!(
        out.contains(&format!("set in production at kiln.kdl:{line}: replicas 5")),
        "the diff names the spec line:\n{out}"
    );
    let md = kiln(&["diff", "--format", "markdown"], dir.path());
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.contains("```diff") && md.contains(&format!("kiln.kdl:{line}")),
        "{md}"
    );
    // Nothing was written.
    assert_eq!(
        kiln(&["compile", "--check"], dir.path()).status.code(),
        Some(1)
    );
}

#[test]
fn explain_maps_an_output_line_to_the_spec() {
    let dir = compiled_copy();
    // Three replicas on one host: a templated unit, one instance per port.
    let unit = dir
        .path()
        .join("generated/production/systemd/tulia-web@.service");
    let text = std::fs::read_to_string(&unit).expect("the web unit");
    let n = text
        .lines()
        .position(|l| l.contains("--workers"))
        .expect("ExecStart with --workers")
        + 1;
    let o = kiln(&["explain", &format!("{}:{n}", unit.display())], dir.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("kiln.kdl:") && out.contains("workers=4"),
        "{out}"
    );
    // The explanation alone: the compile's warnings (tulia has several) are not repeated.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("⚠") && !err.contains("target-unsupported"),
        "{err}"
    );
    let o = kiln(
        &["--verbose", "explain", &format!("{}:{n}", unit.display())],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("target-unsupported"));
}

/// What GitHub code scanning enforces on top of the schema: every result has a rule id, a
/// message and a location in a repository file, with a line.
fn check_github_rules(doc: &serde_json::Value, root: &std::path::Path) {
    for r in doc["runs"][0]["results"].as_array().expect("results") {
        assert!(
            r["ruleId"].as_str().is_some_and(|id| !id.is_empty()),
            "{r:#}"
        );
        assert!(
            r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{r:#}"
        );
        let loc = &r["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().expect("a uri");
        assert!(!uri.starts_with('<') && !uri.starts_with('/'), "{r:#}");
        assert!(
            root.join(uri).is_file(),
            "{uri} is no file of the project: {r:#}"
        );
        assert!(
            loc["region"]["startLine"].as_u64().is_some_and(|l| l >= 1),
            "{r:#}"
        );
    }
}

/// SARIF and annotations from `compile --check`, on every fixture, up to date and drifted:
/// schema-valid, never empty, a location on every result, drift as `kiln/drift` results
/// (issue 14: 0 bytes when up to date, results without locations, no drift at all).
#[test]
fn check_reports_are_accepted_in_every_state() {
    for project in common::fixture_projects() {
        let dir = common::copy_tree(&project);
        let p = dir.path();
        let clean = kiln(&["compile", "--check", "--format", "sarif"], p);
        assert_eq!(clean.status.code(), Some(0), "{}", project.display());
        check_sarif(&clean.stdout);
        let doc: serde_json::Value = serde_json::from_slice(&clean.stdout).expect("JSON");
        check_github_rules(&doc, p);
        // Drift: an edited output, a deleted one, a stray file.
        let outputs: Vec<PathBuf> = walkdir::WalkDir::new(p.join("generated"))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect();
        let edited = &outputs[0];
        let mut text = std::fs::read_to_string(edited).expect("read");
        text.push_str("# edited by hand\n");
        std::fs::write(edited, text).expect("write");
        std::fs::remove_file(&outputs[1]).expect("remove");
        std::fs::write(p.join("generated/stray.txt"), "x\n").expect("write");
        let dirty = kiln(&["compile", "--check", "--format", "sarif"], p);
        assert_eq!(dirty.status.code(), Some(1), "{}", project.display());
        check_sarif(&dirty.stdout);
        let doc: serde_json::Value = serde_json::from_slice(&dirty.stdout).expect("JSON");
        check_github_rules(&doc, p);
        let drift: Vec<&serde_json::Value> = doc["runs"][0]["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r["ruleId"] == "kiln/drift")
            .collect();
        let states: Vec<&str> = drift
            .iter()
            .map(|r| r["properties"]["state"].as_str().expect("state"))
            .collect();
        for state in ["edited", "missing", "orphan"] {
            assert!(
                states.contains(&state),
                "{states:?} in {}",
                project.display()
            );
        }
        let rel = edited
            .strip_prefix(p)
            .expect("under p")
            .to_str()
            .expect("utf-8");
        let at_edit = drift
            .iter()
            .find(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == rel)
            .expect("the edited file's result");
        let lines = std::fs::read_to_string(edited)
            .expect("read")
            .lines()
            .count() as u64;
        assert_eq!(
            at_edit["locations"][0]["physicalLocation"]["region"]["startLine"], lines,
            "points at the first changed line"
        );
        // The annotations: one per finding and drifted file, each with a file and a line.
        let gh = kiln(&["compile", "--check", "--format", "github"], p);
        let gh = String::from_utf8_lossy(&gh.stdout);
        assert!(gh.lines().count() >= 3, "{gh}");
        for line in gh.lines() {
            assert!(line.contains(" file=") && line.contains(",line="), "{line}");
        }
    }
}

/// A failure before any build (no kiln.kdl) is still a valid SARIF log with a located result.
#[test]
fn sarif_of_a_missing_project_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = kiln(&["compile", "--check", "--format", "sarif"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    check_sarif(&o.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let r = &doc["runs"][0]["results"][0];
    assert_eq!(r["ruleId"], "no-project", "{doc:#}");
    assert_eq!(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "kiln.kdl"
    );
}

/// In GitHub Actions paths are the repository's: a project in a subfolder gets its prefix.
#[test]
fn report_paths_are_relative_to_the_github_workspace() {
    let ws = tempfile::tempdir().expect("tempdir");
    let project = ws.path().join("deploy");
    std::fs::create_dir(&project).expect("mkdir");
    std::fs::write(
        project.join("kiln.kdl"),
        "project p {}\nenvironment production {\n    tier production\n    servise web {}\n}\n",
    )
    .expect("write");
    let mut cmd = common::kiln_command(&["compile", "--format", "github"], &project);
    cmd.env("GITHUB_WORKSPACE", ws.path());
    let o = cmd.output().expect("run kiln");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("::error file=deploy/kiln.kdl,line=4,"),
        "{out}"
    );
    let mut cmd = common::kiln_command(&["compile", "--format", "sarif"], &project);
    cmd.env("GITHUB_WORKSPACE", ws.path());
    let doc: serde_json::Value =
        serde_json::from_slice(&cmd.output().expect("run").stdout).expect("JSON");
    assert_eq!(
        doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "deploy/kiln.kdl"
    );
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let o = std::process::Command::new("git")
        .args([
            "-c",
            "user.email=kiln@example.com",
            "-c",
            "user.name=kiln",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `kiln diff --base REV` on a real two-commit history: the change between the committed
/// outputs and what the spec now compiles to, with the spec line behind it, an exit code,
/// and nothing for the revision the outputs already match.
#[test]
fn diff_against_a_base_revision() {
    let repo = tempfile::tempdir().expect("tempdir");
    let project = repo.path().join("deploy");
    let copy = common::copy_tree(&common::root().join("fixtures/tulia"));
    std::fs::rename(copy.path(), &project).expect("move");
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    let spec = project.join("kiln.kdl");
    let text = std::fs::read_to_string(&spec).expect("read");
    let line = text
        .lines()
        .position(|l| l.contains("replicas 3"))
        .expect("replicas")
        + 1;
    std::fs::write(&spec, text.replace("replicas 3", "replicas 5")).expect("write");
    assert_eq!(kiln(&["compile"], &project).status.code(), Some(0));
    git(repo.path(), &["commit", "-q", "-am", "five web replicas"]);

    let o = kiln(&["diff", "--base", "HEAD~1", "--exit-code"], &project);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("change since `HEAD~1`"), "{out}");
    assert!(out.contains("-  replicas: 3\n+  replicas: 5"), "{out}");
    assert!(
        out.contains(&format!("kiln.kdl:{line}: replicas 5")),
        "{out}"
    );
    let md = kiln(
        &["diff", "--base", "HEAD~1", "--format", "markdown"],
        &project,
    );
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("| `production` | `k8s` | 0 | 1 | 0 |"), "{md}");
    let json = kiln(&["diff", "--base", "HEAD~1", "--format", "json"], &project);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(doc["base"], "HEAD~1");
    assert!(
        doc["files"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["change"] == "changed"))
    );
    // HEAD's outputs are what the spec compiles to: nothing changes.
    let o = kiln(&["diff", "--base", "HEAD", "--exit-code"], &project);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no changes since `HEAD`"));
    // Not a revision: exit 2 with a diagnostic, not a crash or an empty report.
    for bad in ["no-such-rev", "--output=/tmp/x"] {
        let o = kiln(&["diff", &format!("--base={bad}")], &project);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("diff-base"),
            "{bad}"
        );
    }
}

/// A one-line change to the shared base of a 1 000-environment project: the markdown fits a
/// pull-request comment (issue 14 measured 11 MB), counts every changed file, and says how
/// many diffs it left out.
#[test]
fn diff_of_a_thousand_environments_fits_a_comment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = String::from(
        "project many { output \"generated\" }\nenvironment base abstract=#true {\n    env { ALLOWED_HOSTS \"a.example\"; DEBUG #false; }\n    service web preset=fastapi-web { image \"ghcr.io/many/app:1.0.0\"; replicas 1; }\n    targets compose\n}\n",
    );
    for i in 0..1000 {
        spec.push_str(&format!(
            "environment e{i:04} extends=base {{ tier development }}\n"
        ));
    }
    std::fs::write(dir.path().join("kiln.kdl"), &spec).expect("write");
    assert_eq!(kiln(&["compile", "-q"], dir.path()).status.code(), Some(0));
    std::fs::write(
        dir.path().join("kiln.kdl"),
        spec.replace("replicas 1", "replicas 2"),
    )
    .expect("write");
    let md = kiln(&["diff", "--format", "markdown"], dir.path());
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.chars().count() < 65_536,
        "{} characters",
        md.chars().count()
    );
    assert!(
        md.contains("### kiln: 1000 generated file(s) change"),
        "{}",
        &md[..500]
    );
    assert!(
        md.contains("more environment/target pair(s), 960 file(s)"),
        "{}",
        &md[..4000]
    );
    assert!(
        md.contains("more file(s) changed but are not shown here"),
        "{}",
        &md[md.len() - 500..]
    );
    assert!(md.contains("```diff"), "some diffs fit");
}

/// Validates `stdout` against the published schema `docs/schemas/NAME.schema.json`.
fn check_schema(name: &str, stdout: &[u8]) -> serde_json::Value {
    let path = common::root().join(format!("docs/schemas/{name}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema")).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let doc: serde_json::Value = serde_json::from_slice(stdout).expect("JSON output");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {}\n{doc:#}", errors.join("\n"));
    assert_eq!(doc["format_version"], 1);
    doc
}

/// Every command's `--format json` matches its published JSON Schema (docs/schemas/), in
/// clean, drifted and failing states.
#[test]
fn json_outputs_match_their_published_schemas() {
    let dir = common::copy_tree(&common::root().join("fixtures/taskassistant"));
    let p = dir.path();
    check_schema(
        "compile",
        &kiln(&["compile", "--check", "--format", "json"], p).stdout,
    );
    check_schema("diff", &kiln(&["diff", "--format", "json"], p).stdout);
    check_schema(
        "policy-list",
        &kiln(&["policy", "list", "--format", "json"], p).stdout,
    );
    check_schema(
        "policy-list",
        &kiln(
            &["policy", "list", "--env", "production", "--format", "json"],
            p,
        )
        .stdout,
    );
    std::fs::write(p.join("prod.env"), "SECRET_KEY=short\nDB_PASSWORD=x\n").expect("write");
    let o = kiln(
        &[
            "secrets",
            "check",
            "--env",
            "production",
            "--env-file",
            "prod.env",
            "--format",
            "json",
        ],
        p,
    );
    let doc = check_schema("secrets-check", &o.stdout);
    assert!(doc["checked"].as_u64().is_some_and(|n| n >= 1), "{doc:#}");
    // A failure before any value is read is reported in the format asked for, too.
    let args = [
        "secrets",
        "check",
        "--env",
        "production",
        "--env-file",
        "no-such.env",
    ];
    let o = kiln(&[&args[..], &["--format", "json"]].concat(), p);
    assert_eq!(o.status.code(), Some(2));
    let doc = check_schema("secrets-check", &o.stdout);
    assert_eq!(doc["diagnostics"][0]["code"], "env-file");
    let o = kiln(&[&args[..], &["--format", "sarif"]].concat(), p);
    check_sarif(&o.stdout);
    // Drift, a spec error, a policy error.
    let any_output = walkdir::WalkDir::new(p.join("generated"))
        .into_iter()
        .flatten()
        .find(|e| e.file_type().is_file())
        .expect("an output")
        .into_path();
    std::fs::write(&any_output, "edited\n").expect("write");
    let doc = check_schema(
        "compile",
        &kiln(&["compile", "--check", "--format", "json"], p).stdout,
    );
    assert_eq!(doc["ok"], false);
    check_schema("diff", &kiln(&["diff", "--format", "json"], p).stdout);
    let spec = p.join("kiln.kdl");
    let text = std::fs::read_to_string(&spec).expect("read");
    std::fs::write(&spec, text.replacen("DEBUG #false", "DEBUG #true", 1)).expect("write");
    let doc = check_schema("diff", &kiln(&["diff", "--format", "json"], p).stdout);
    assert!(
        !doc["diagnostics"].as_array().expect("array").is_empty(),
        "a policy error is reported"
    );
    std::fs::write(&spec, format!("{text}\nservise x {{}}\n")).expect("write");
    check_schema("compile", &kiln(&["compile", "--format", "json"], p).stdout);
    check_schema("diff", &kiln(&["diff", "--format", "json"], p).stdout);
}
