//! `kiln import` on real compose files (fixtures/import/, from public projects of kiln's
//! shape): the spec it writes and its report are pinned, the spec compiles (policy findings
//! allowed, spec errors not), and no secret value reaches the spec.

mod common;

use std::path::{Path, PathBuf};

use common::kiln;

fn compose_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(common::root().join("fixtures/import"))
        .expect("fixtures/import")
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            std::fs::read_dir(e.path())
                .ok()?
                .flatten()
                .map(|f| f.path())
                .find(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        })
        .collect();
    out.sort();
    out
}

/// The report as lines: `LINE severity code: message`.
fn report(json: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(json).expect("a JSON report");
    doc["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            let line = d["location"]["line"].as_u64().unwrap_or(0);
            format!(
                "{line:>4} {} {}: {}",
                d["severity"].as_str().unwrap(),
                d["code"].as_str().unwrap(),
                d["message"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(compose: &Path) {
    let name = compose
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join(&name);
    let args = [
        "import",
        compose.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ];
    let o = kiln(&args, out.path());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let spec = std::fs::read_to_string(dir.join("kiln.kdl")).expect("kiln.kdl written");
    insta::assert_snapshot!(format!("import-{name}-spec"), spec);
    insta::assert_snapshot!(
        format!("import-{name}-report"),
        report(&String::from_utf8_lossy(&o.stdout))
    );

    // The spec is kiln's: it compiles, and what stops it is policy (exit 1), never the spec.
    let c = kiln(
        &["compile", dir.to_str().unwrap(), "--format", "json"],
        out.path(),
    );
    let stdout = String::from_utf8_lossy(&c.stdout);
    assert_ne!(
        c.status.code(),
        Some(2),
        "{name}: the imported spec is invalid: {stdout}"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    for d in doc["diagnostics"].as_array().unwrap() {
        let code = d["code"].as_str().unwrap();
        assert!(
            d["severity"] != "error" || code.contains('.'),
            "{name}: a spec error in the imported spec: {d}"
        );
    }

    // No secret value is copied: a literal value of a secret-like variable is not in it
    // (unless the compose file also gives that value to a setting that is not secret, as
    // saleor's `POSTGRES_USER=saleor` beside `POSTGRES_PASSWORD=saleor`).
    let text = std::fs::read_to_string(compose).unwrap();
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("- ");
            l.split_once('=').or_else(|| l.split_once(": "))
        })
        .collect();
    let secretish = |key: &str| {
        ["PASSWORD", "SECRET", "TOKEN"]
            .iter()
            .any(|s| key.contains(s))
    };
    for (key, value) in &pairs {
        let public = pairs.iter().any(|(k, v)| v == value && !secretish(k));
        if secretish(key) && !value.is_empty() && !value.contains("${") && !public {
            assert!(
                !spec.contains(value),
                "{name}: the value of {key} is in the spec"
            );
        }
    }
}

#[test]
fn real_compose_files_import() {
    let files = compose_files();
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        check(f);
    }
}

#[test]
fn what_cannot_be_imported_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("not-yaml.yml", "services:\n  web: [unclosed\n", "not YAML"),
        (
            "no-services.yml",
            "version: '3'\nvolumes: {}\n",
            "no `services:`",
        ),
        ("alias-bomb.yml", &bomb(), "aliases"),
    ];
    for (file, text, says) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let out = dir.path().join(format!("out-{file}"));
        let o = kiln(
            &[
                "import",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains("import-invalid") && stderr.contains(says),
            "{file}: {stderr}"
        );
        assert!(!out.join("kiln.kdl").exists(), "{file}: nothing is written");
    }
    // An existing spec is never overwritten.
    let compose = common::root().join("fixtures/import/fastapi-celery/docker-compose.yml");
    std::fs::write(dir.path().join("kiln.kdl"), "project mine\n").unwrap();
    let o = kiln(&["import", compose.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("import-exists"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("kiln.kdl")).unwrap(),
        "project mine\n"
    );
}

/// Nested aliases that would expand to ten billion nodes.
fn bomb() -> String {
    let mut text = String::from("x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..11 {
        let p = i - 1;
        text.push_str(&format!(
            "x-a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("services:\n  web:\n    command: *a10\n");
    text
}
