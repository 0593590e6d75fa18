//! A variable's value for one target (`NAME value systemd="…"`) reaches that target only;
//! a service's own value replaces the environment's, per-target values included.

mod support;

use kiln_core::model::Target;
use kiln_targets::emit;
use support::file;

const SPEC: &str = r#"
project shop { output "generated" }
environment production {
    tier production
    redis cache
    env {
        EMAIL_HOST "mailpit" systemd="127.0.0.1"
        LOG_DIR "/app/logs" k8s="/tmp/logs"
        CACHE_HOST "${cache.host}" systemd="10.0.0.9"
    }
    service web preset=django-web {
        image "ghcr.io/shop/app:1.0.0"
        port 8000
        health "/healthz/"
    }
    service worker preset=celery-worker {
        image "ghcr.io/shop/app:1.0.0"
        env { EMAIL_HOST "relay" }
    }
    targets compose systemd k8s
}
"#;

#[test]
fn each_target_gets_its_own_value() {
    let model = support::model(SPEC, "production");
    let compose = emit(&model, Target::Compose);
    let yaml = file(&compose, "compose.yaml");
    for expected in [
        "EMAIL_HOST: mailpit",
        "LOG_DIR: /app/logs",
        "CACHE_HOST: cache",
        "EMAIL_HOST: relay",
    ] {
        assert!(
            yaml.contains(expected),
            "compose lacks {expected:?}:\n{yaml}"
        );
    }

    let systemd = emit(&model, Target::Systemd);
    let web = file(&systemd, "shop-web.service");
    for expected in [
        "Environment=\"EMAIL_HOST=127.0.0.1\"",
        "Environment=\"LOG_DIR=/app/logs\"",
        "Environment=\"CACHE_HOST=10.0.0.9\"",
    ] {
        assert!(web.contains(expected), "systemd lacks {expected:?}:\n{web}");
    }
    // The worker's own value replaces the environment's, and its systemd value with it.
    let worker = file(&systemd, "shop-worker.service");
    assert!(
        worker.contains("Environment=\"EMAIL_HOST=relay\""),
        "{worker}"
    );

    let k8s = emit(&model, Target::K8s);
    let all: String = k8s.artifacts.iter().map(|a| a.text.as_str()).collect();
    assert!(all.contains("LOG_DIR: /tmp/logs"), "{all}");
    assert!(
        all.contains("EMAIL_HOST: mailpit") || all.contains("value: mailpit"),
        "{all}"
    );
    assert!(!all.contains("127.0.0.1"), "a systemd value in k8s:\n{all}");
}

#[test]
fn views_for_policies_exist_only_when_something_varies() {
    let model = support::model(SPEC, "production");
    let views = model.target_views();
    let targets: Vec<_> = views.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        targets,
        [
            Some(Target::Compose),
            Some(Target::Systemd),
            Some(Target::K8s)
        ]
    );
    let (_, k8s) = &views[2];
    assert!(!k8s.varies_by_target());
    let plain = support::model(
        &SPEC
            .replace(" systemd=\"127.0.0.1\"", "")
            .replace(" k8s=\"/tmp/logs\"", "")
            .replace(" systemd=\"10.0.0.9\"", ""),
        "production",
    );
    assert_eq!(plain.target_views().len(), 1);
    assert!(plain.target_views()[0].0.is_none());
}
