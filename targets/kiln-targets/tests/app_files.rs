//! App files (`file PATH { text … }`) reach the process in every target: compose
//! bind-mounts them read-only, Kubernetes mounts them from a ConfigMap (and rolls the
//! pods when one changes), systemd writes them for the operator to install and refuses
//! to start without them. Their references resolve per target, like variables'.

mod support;

use kiln_core::model::Model;
use kiln_targets::{compose, k8s, systemd};
use support::file;

fn spec(settings: &str) -> String {
    format!(
        r#"
project shop {{ output "generated" }}
environment production {{
    tier production
    secret DB_PASSWORD kind=password
    postgres db {{
        database shop
        user shop_app
        password DB_PASSWORD
        host "10.0.0.5"
    }}
    redis cache
    service api preset=django-web {{
        image "ghcr.io/shop/app:1.0.0"
        port 8000
        health "/healthz/"
        file "/app/shop/local_settings.py" {{
            text """
                DB_HOST = "${{db.host}}"
                CACHE = "${{cache.url:2}}"
                {settings}
                """
        }}
        file "/etc/shop/banner" mode="0440" {{ text "hello" }}
    }}
    targets compose systemd k8s
}}
"#
    )
}

fn model(settings: &str) -> Model {
    support::model(&spec(settings), "production")
}

#[test]
fn compose_bind_mounts_each_file_read_only() {
    let out = compose::emit(&model("DEBUG = False"));
    assert_eq!(
        file(&out, "compose/files/api/app/shop/local_settings.py"),
        "DB_HOST = \"db\"\nCACHE = \"redis://cache:6379/2\"\nDEBUG = False\n"
    );
    assert_eq!(file(&out, "compose/files/api/etc/shop/banner"), "hello\n");
    let yaml = file(&out, "compose/compose.yaml");
    for mount in [
        "- \"./files/api/app/shop/local_settings.py:/app/shop/local_settings.py:ro\"",
        "- \"./files/api/etc/shop/banner:/etc/shop/banner:ro\"",
    ] {
        assert!(yaml.contains(mount), "no {mount}:\n{yaml}");
    }
}

#[test]
fn kubernetes_mounts_a_config_map_and_rolls_on_change() {
    let out = k8s::emit(&model("DEBUG = False"));
    let cm = file(&out, "k8s/configmap-api-files.yaml");
    assert!(
        cm.contains("  app_shop_local_settings.py: |\n    DB_HOST = \"db\"\n"),
        "{cm}"
    );
    let deployment = file(&out, "k8s/deployment-api.yaml");
    for expected in [
        "mountPath: /app/shop/local_settings.py\n              subPath: app_shop_local_settings.py\n              readOnly: true",
        "mountPath: /etc/shop/banner\n              subPath: etc_shop_banner\n              readOnly: true",
        "name: api-files",
        "mode: 288",
    ] {
        assert!(
            deployment.contains(expected),
            "no {expected:?}:\n{deployment}"
        );
    }
    let digest = |d: &str| {
        d.lines()
            .find(|l| l.contains("kiln.dev/files-digest"))
            .map(str::to_owned)
            .expect("a digest")
    };
    let changed = k8s::emit(&model("DEBUG = True"));
    assert_ne!(
        digest(deployment),
        digest(file(&changed, "k8s/deployment-api.yaml")),
        "a changed file must change the pod template"
    );
}

#[test]
fn systemd_writes_files_and_requires_them() {
    let out = systemd::emit(&model("DEBUG = False"));
    assert_eq!(
        file(&out, "systemd/files/app/shop/local_settings.py"),
        "DB_HOST = \"10.0.0.5\"\nCACHE = \"redis://127.0.0.1:6379/2\"\nDEBUG = False\n"
    );
    let unit = file(&out, "systemd/shop-api.service");
    for expected in [
        "AssertPathExists=/app/shop/local_settings.py",
        "AssertPathExists=/etc/shop/banner",
        "install -D -m 0440 -g shop files/etc/shop/banner /etc/shop/banner",
    ] {
        assert!(unit.contains(expected), "no {expected:?}:\n{unit}");
    }
}

#[test]
fn systemd_refuses_two_texts_at_one_host_path() {
    let spec = r#"
project shop { output "generated" }
environment production {
    tier production
    service api preset=django-web {
        image "x:1"; port 8000; health "/healthz/"
        file "/etc/shop/app.ini" { text "role = api" }
    }
    service admin preset=django-web {
        image "x:1"; port 8001; health "/healthz/"
        file "/etc/shop/app.ini" { text "role = admin" }
    }
    service worker preset=celery-worker {
        image "x:1"
        file "/etc/shop/app.ini" { text "role = api" }
    }
    targets systemd compose
}
"#;
    let model = support::model(spec, "production");
    let out = systemd::emit(&model);
    let written: Vec<_> = out
        .artifacts
        .iter()
        .filter(|a| a.path == "systemd/files/etc/shop/app.ini")
        .collect();
    assert_eq!(written.len(), 1);
    assert_eq!(
        written[0].text, "role = admin\n",
        "the first service's text"
    );
    let conflicts: Vec<_> = out
        .unsupported
        .iter()
        .filter(|u| u.pointer.contains("/files/"))
        .collect();
    let blamed: Vec<&str> = conflicts.iter().map(|u| u.pointer.as_str()).collect();
    assert_eq!(
        blamed,
        [
            "/services/api/files/~1etc~1shop~1app.ini",
            "/services/worker/files/~1etc~1shop~1app.ini"
        ],
        "every service whose text differs from the one written"
    );
    // In containers each service has its own file system: no conflict.
    let compose = compose::emit(&model);
    assert!(
        compose
            .unsupported
            .iter()
            .all(|u| !u.pointer.contains("/files/"))
    );
    assert_eq!(
        compose
            .artifacts
            .iter()
            .filter(|a| a.path.ends_with("app.ini"))
            .count(),
        3
    );
}
