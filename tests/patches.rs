//! `patch`: lines a spec adds to generated files. They keep their provenance (`explain`
//! names the patch's line), the policies judge the patched files, and a patch whose target
//! is gone is an error at its line. (The conformance suite runs nginx, systemd-analyze and
//! the compose loader on tulia's patched files.)

mod common;

use common::kiln;

const BASE: &str = r#"project demo { output "generated" }
environment production {
    tier production
    secret DJANGO_SECRET_KEY kind=django-secret-key
    service web preset=django-web {
        image "ghcr.io/demo/web:1.0.0@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        run gunicorn "demo.wsgi:application"
        port 8000
        health "/healthz/"
        env { ALLOWED_HOSTS "demo.example.com"; DEBUG #false; SECURE_SSL_REDIRECT #true }
    }
    site "demo.example.com" upstream=web { tls acme }
    PATCH
    targets nginx systemd compose
}
"#;

fn compile(patch: &str) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kiln.kdl"), BASE.replace("PATCH", patch)).unwrap();
    let o = kiln(&["compile", ".", "--format", "json"], dir.path());
    let json = serde_json::from_slice(&o.stdout).expect("a JSON report");
    (o.status.code().unwrap(), json)
}

fn findings<'j>(json: &'j serde_json::Value, code: &str) -> Vec<&'j serde_json::Value> {
    json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == code)
        .collect()
}

#[test]
fn a_patch_whose_target_is_gone_is_an_error_at_its_line() {
    for (patch, says) in [
        (
            "patch nginx site=\"gone.example.com\" { directive \"gzip_comp_level\" 5 }",
            "site `gone.example.com`",
        ),
        (
            "patch nginx site=\"demo.example.com\" location=\"/gone/\" { directive \"gzip_comp_level\" 5 }",
            "no location `/gone/`",
        ),
        (
            "patch systemd service=gone { set \"LimitNOFILE\" 65536 }",
            "service `gone`",
        ),
        (
            "patch compose service=gone { set \"stop_signal\" \"SIGINT\" }",
            "no service `gone`",
        ),
    ] {
        let (code, json) = compile(patch);
        assert_eq!(code, 2, "{patch}: {json}");
        let d = findings(&json, "patch-target-missing");
        assert_eq!(d.len(), 1, "{patch}: {json}");
        assert!(
            d[0]["message"].as_str().unwrap().contains(says),
            "{patch}: {}",
            d[0]
        );
        // At the patch's line: line 13 of the spec.
        assert_eq!(d[0]["location"]["line"], 13, "{patch}: {}", d[0]);
    }
}

#[test]
fn the_policies_judge_the_patched_files() {
    // An `add_header` in a location drops the server's security headers there: the nginx
    // policy reads the generated file, patched, and says so at the patch line.
    let patch = "patch nginx site=\"demo.example.com\" location=\"/\" { directive \"add_header\" \"X-Robots-Tag\" \"noindex\" \"always\" }";
    let (code, json) = compile(patch);
    let d = findings(&json, "nginx.add-header-inheritance");
    assert!(!d.is_empty(), "exit {code}: {json}");
    let (_, clean) = compile("");
    assert!(
        findings(&clean, "nginx.add-header-inheritance").is_empty(),
        "{clean}"
    );
}

#[test]
fn patched_lines_are_explained_by_their_patch() {
    let root = common::root();
    let spec = std::fs::read_to_string(root.join("fixtures/tulia/kiln.kdl")).unwrap();
    let spec_line = |needle: &str| spec.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (file, added, needle) in [
        (
            "nginx/sites/api.tulia.example.conf",
            "proxy_buffer_size 16k;",
            "\"proxy_buffer_size\"",
        ),
        (
            "systemd/tulia-web@.service",
            "OOMScoreAdjust=-100",
            "\"OOMScoreAdjust\"",
        ),
        (
            "compose/compose.yaml",
            "stop_grace_period: \"75s\"",
            "\"stop_grace_period\"",
        ),
    ] {
        let path = format!("fixtures/tulia/generated/production/{file}");
        let text = std::fs::read_to_string(root.join(&path)).unwrap();
        let line = text
            .lines()
            .position(|l| l.trim() == added)
            .unwrap_or_else(|| panic!("{added} in {file}"))
            + 1;
        let o = kiln(&["explain", &format!("{path}:{line}")], &root);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!("kiln.kdl:{}", spec_line(needle))),
            "{file}:{line}: {out}"
        );
    }
}
