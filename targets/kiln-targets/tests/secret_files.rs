//! Secrets delivered as files (`deliver=file`): in every target the process gets
//! `NAME_FILE` (a path) and a read-only file, and the variable `NAME` reaches no process.

mod support;

use support::file;

const SPEC: &str = r#"
project shop { output "generated" }
environment production {
    tier production
    secret SECRET_KEY kind=django-secret-key deliver=file
    secret DB_PASSWORD kind=password deliver=file
    secret API_TOKEN kind=token
    env { ALLOWED_HOSTS "shop.example.com"; DB_HOST "${db.host}"; }
    postgres db { database shop; user shop; password DB_PASSWORD; }
    service web preset=django-web { image "ghcr.io/shop/app:1.0.0"; }
    targets compose systemd k8s
}
"#;

#[test]
fn compose_writes_each_into_run_secrets() {
    let out = kiln_targets::compose::emit(&support::model(SPEC, "production"));
    let compose = file(&out, "compose/compose.yaml");
    for expected in [
        "      SECRET_KEY_FILE: /run/secrets/SECRET_KEY\n",
        "      DB_PASSWORD_FILE: /run/secrets/DB_PASSWORD\n",
        "      POSTGRES_PASSWORD_FILE: /run/secrets/DB_PASSWORD\n",
        "      - source: SECRET_KEY\n        target: /run/secrets/SECRET_KEY\n",
        "secrets:\n  DB_PASSWORD:\n    environment: DB_PASSWORD\n  SECRET_KEY:\n    environment: SECRET_KEY\n",
    ] {
        assert!(compose.contains(expected), "no {expected:?} in\n{compose}");
    }
    // The variable itself reaches no container; the other secret still does.
    assert!(!compose.contains("SECRET_KEY:?"), "{compose}");
    assert!(!compose.contains("POSTGRES_PASSWORD:"), "{compose}");
    assert!(compose.contains("API_TOKEN: \"${API_TOKEN:?"), "{compose}");
    // Its value still comes from compose/.env (the `environment:` source reads it there).
    let example = file(&out, "compose/.env.example");
    assert!(example.contains("SECRET_KEY="), "{example}");
}

#[test]
fn kubernetes_mounts_the_secret_keys_read_only() {
    let out = kiln_targets::k8s::emit(&support::model(SPEC, "production"));
    let web = file(&out, "deployment-web.yaml");
    for expected in [
        "- name: SECRET_KEY_FILE\n              value: /run/secrets/SECRET_KEY\n",
        "- name: secrets\n              mountPath: /run/secrets\n              readOnly: true\n",
        "secretName: shop-secrets\n            items:\n              - key: DB_PASSWORD\n                path: DB_PASSWORD\n              - key: SECRET_KEY\n                path: SECRET_KEY\n",
        "defaultMode: 288\n",
    ] {
        assert!(web.contains(expected), "no {expected:?} in\n{web}");
    }
    assert!(!web.contains("- name: SECRET_KEY\n"), "{web}");
    let db = file(&out, "statefulset-db.yaml");
    assert!(db.contains("- name: POSTGRES_PASSWORD_FILE\n"), "{db}");
    assert!(!db.contains("- name: POSTGRES_PASSWORD\n"), "{db}");
}

#[test]
fn systemd_loads_each_as_a_credential() {
    let out = kiln_targets::systemd::emit(&support::model(SPEC, "production"));
    let unit = file(&out, "shop-web.service");
    for expected in [
        "LoadCredential=SECRET_KEY:/etc/credstore/shop/SECRET_KEY\n",
        "Environment=\"SECRET_KEY_FILE=%d/SECRET_KEY\"\n",
        "LoadCredential=DB_PASSWORD:/etc/credstore/shop/DB_PASSWORD\n",
    ] {
        assert!(unit.contains(expected), "no {expected:?} in\n{unit}");
    }
    assert!(unit.contains("# It holds API_TOKEN."), "{unit}");
    let example = file(&out, "shop.env.example");
    assert!(!example.contains("\nSECRET_KEY="), "{example}");
    assert!(
        example.contains(
            "install -D -m 0600 -o root -g root /dev/stdin /etc/credstore/shop/SECRET_KEY"
        ),
        "{example}"
    );
    assert!(example.contains("\nAPI_TOKEN="), "{example}");
}
