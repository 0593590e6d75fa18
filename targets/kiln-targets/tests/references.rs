//! Endpoint references (`${db.host}` …) reach each target as that target reaches the
//! resource: the compose service, the Kubernetes Service, the host's configured address;
//! through the pooler unless `direct-…`; a password only through the secret channel.

mod support;

use kiln_core::model::Model;
use kiln_targets::{compose, k8s, systemd};
use support::file;

const SPEC: &str = r#"
project shop { output "generated" }
environment production {
    tier production
    secret DB_PASSWORD kind=password
    secret REDIS_PASSWORD kind=password
    postgres db {
        database shop
        user shop_app
        password DB_PASSWORD
        host "10.0.0.5"
        pooler pgbouncer
    }
    redis cache password=REDIS_PASSWORD
    service api preset=django-web {
        image "ghcr.io/shop/app:1.0.0"
        port 8000
        health "/healthz/"
    }
    service worker preset=celery-worker {
        image "ghcr.io/shop/app:1.0.0"
        env {
            DB_HOST "${db.host}"
            DB_PORT "${db.port}"
            DB_NAME "${db.database}"
            DB_USER "${db.user}"
            DB_DIRECT_HOST "${db.direct-host}:${db.direct-port}"
            DB_PASSWORD_COPY "${db.password}"
            REDIS_HOST "${cache.host}"
            API_BASE "${api.url}/v1/"
            LITERAL "$${not.a.reference}"
        }
    }
    targets compose systemd k8s
}
"#;

fn model() -> Model {
    support::model(SPEC, "production")
}

#[test]
fn each_target_resolves_references_its_own_way() {
    let model = model();
    let compose = compose::emit(&model);
    let yaml = file(&compose, "compose.yaml");
    for expected in [
        "DB_HOST: db-pgbouncer",
        "DB_PORT: \"6432\"",
        "DB_NAME: shop",
        "DB_USER: shop_app",
        "DB_DIRECT_HOST: db:5432",
        "DB_PASSWORD_COPY: \"${DB_PASSWORD:?",
        "REDIS_HOST: cache",
        "API_BASE: http://api:8000/v1/",
        "LITERAL: \"$${not.a.reference}\"",
    ] {
        assert!(
            yaml.contains(expected),
            "compose lacks {expected:?}:\n{yaml}"
        );
    }

    let units = systemd::emit(&model);
    let unit = file(&units, "shop-worker.service");
    for expected in [
        "Environment=\"DB_HOST=127.0.0.1\"",
        "Environment=\"DB_PORT=6432\"",
        "Environment=\"DB_DIRECT_HOST=10.0.0.5:5432\"",
        "Environment=\"REDIS_HOST=127.0.0.1\"",
        "Environment=\"API_BASE=http://127.0.0.1:8000/v1/\"",
    ] {
        assert!(
            unit.contains(expected),
            "systemd lacks {expected:?}:\n{unit}"
        );
    }
    assert!(
        !unit.contains("DB_PASSWORD_COPY="),
        "a secret in Environment=:\n{unit}"
    );

    let manifests = k8s::emit(&model);
    let all: String = manifests
        .artifacts
        .iter()
        .map(|a| a.text.as_str())
        .collect();
    for expected in [
        "- name: DB_HOST\n              value: db-pgbouncer",
        "- name: DB_DIRECT_HOST\n              value: db:5432",
        "- name: API_BASE\n              value: http://api:8000/v1/",
    ] {
        assert!(all.contains(expected), "k8s lacks {expected:?}:\n{all}");
    }
    assert!(
        all.contains("name: DB_PASSWORD_COPY\n              value: $(DB_PASSWORD)"),
        "the password is not a secret reference"
    );
}

#[test]
fn the_model_shows_references_by_resource_name() {
    let model = model();
    let env = &model.to_json()["services"]["worker"]["env"];
    assert_eq!(env["DB_HOST"], "db-pgbouncer");
    assert_eq!(env["DB_PASSWORD_COPY"]["secrets"][0], "DB_PASSWORD");
}

/// Program options take references too: each target writes the fact as it reaches the
/// resource; a `${NAME}` without a dot is the shell's and stays; a secret is refused.
#[test]
fn command_lines_resolve_references_per_target() {
    let spec = r#"
project shop { output "generated" }
environment production {
    tier production
    secret REDIS_PASSWORD kind=password
    redis queue
    redis cache port=6380 password=REDIS_PASSWORD
    service rq { image "x:1"; run rq worker url="${queue.url:1}" }
    service sh { image "x:1"; run command "sh" "-c" "exec ping ${queue.host} -c ${COUNT}" }
    targets compose systemd k8s
}
"#;
    let model = support::model(spec, "production");
    let yaml = file(&compose::emit(&model), "compose.yaml").to_owned();
    assert!(yaml.contains("- --url=redis://queue:6379/1"), "{yaml}");
    assert!(
        yaml.contains("- \"exec ping queue -c $${COUNT}\""),
        "{yaml}"
    );
    let units = systemd::emit(&model);
    let unit = file(&units, "shop-rq.service");
    assert!(unit.contains("redis://127.0.0.1:6379/1"), "{unit}");
    let all: String = k8s::emit(&model)
        .artifacts
        .iter()
        .map(|a| a.text.as_str())
        .collect();
    assert!(all.contains("- --url=redis://queue:6379/1"), "{all}");

    let (_, diags) = support::resolve(
        &spec.replace("${queue.url:1}", "${cache.url:1}"),
        "production",
    );
    assert!(
        diags.iter().any(|d| d.code == "secret-in-command"),
        "a password in a command line: {diags:#?}"
    );
    let (_, diags) = support::resolve(&spec.replace("${queue.host}", "${queu.host}"), "production");
    assert!(
        diags.iter().any(|d| d.code == "unknown-reference"),
        "{diags:#?}"
    );
}
