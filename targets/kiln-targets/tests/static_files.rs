//! Files nginx serves are the files the app has: static files collected into the image
//! (`static … from=web`) are copied out of it in containers, and a media folder that is an
//! app volume is that volume in nginx too. (The conformance suite runs the copies and the
//! Kubernetes sidecar for real: tests/conformance/static_check.py.)

mod support;

use kiln_targets::{compose, k8s, nginx};
use support::file;

const SPEC: &str = r#"
project shop { output "generated" }
environment production {
    tier production
    service web preset=django-web {
        image "ghcr.io/shop/app:1.0.0"
        port 8000
        health "/healthz/"
        volume media "/app/media"
    }
    site "shop.example.com" upstream=web {
        tls acme
        static "/static/" root="/app/staticfiles/" from=web expires="30d" cache-control="public, immutable"
        media "/media/" root="/app/media/"
    }
    targets compose k8s nginx
}
"#;

#[test]
fn compose_copies_the_image_folder_into_the_volume_nginx_mounts() {
    let model = support::model(SPEC, "production");
    let out = compose::emit(&model);
    let yaml = file(&out, "compose.yaml");
    for expected in [
        // The copier: the web image, offline, once, into the volume.
        "  web-static:\n    # web's image: its files at /app/staticfiles\n    image: ghcr.io/shop/app:1.0.0\n    command:\n      - python\n      - -c\n",
        "      - /app/staticfiles\n      - /kiln-static\n",
        "    network_mode: none\n    volumes:\n      - web-static:/kiln-static\n",
        // nginx waits for it and mounts the volume where the copier read.
        "      web-static:\n        condition: service_completed_successfully\n",
        "      - web-static:/app/staticfiles:ro\n",
        // The media folder is the app's own volume, not a host folder.
        "      - media:/app/media:ro\n",
    ] {
        assert!(yaml.contains(expected), "no {expected:?}:\n{yaml}");
    }
    assert!(
        !yaml.contains("/app/media/:/app/media/"),
        "a host folder where the app writes to a volume:\n{yaml}"
    );
    assert!(
        out.unsupported
            .iter()
            .all(|u| !u.pointer.contains("locations")),
        "{:#?}",
        out.unsupported
    );
}

#[test]
fn kubernetes_serves_them_from_a_sidecar_the_ingress_routes_to() {
    let model = support::model(SPEC, "production");
    let out = k8s::emit(&model);
    let deployment = file(&out, "deployment-web.yaml");
    for expected in [
        "- name: static-copy-1",
        "mountPath: /kiln-static",
        "- name: static\n          image: nginx:",
        "containerPort: 8080",
        "mountPath: /app/staticfiles\n              readOnly: true",
        "name: web-static",
    ] {
        assert!(
            deployment.contains(expected),
            "no {expected:?}:\n{deployment}"
        );
    }
    let service = file(&out, "service-web.yaml");
    assert!(
        service.contains("- name: static\n      port: 8080\n      targetPort: static"),
        "{service}"
    );
    let ingress = file(&out, "ingress-shop.example.com.yaml");
    assert!(
        ingress.contains("- path: /static/\n            pathType: Prefix\n            backend:\n              service:\n                name: web\n                port:\n                  name: static"),
        "{ingress}"
    );
    let policy = file(&out, "networkpolicy-web-ingress.yaml");
    assert!(policy.contains("port: 8080"), "{policy}");
    // The media folder is web's volume: the sidecar mounts that claim read-only and serves
    // it too, so nothing is left to the app.
    assert!(
        deployment.contains("- name: volume-media\n              mountPath: /app/media\n              readOnly: true"),
        "{deployment}"
    );
    assert!(
        ingress.contains("- path: /media/\n            pathType: Prefix\n            backend:\n              service:\n                name: web\n                port:\n                  name: static"),
        "{ingress}"
    );
    let warned: Vec<&str> = out
        .unsupported
        .iter()
        .filter(|u| u.pointer.contains("locations"))
        .map(|u| u.pointer.as_str())
        .collect();
    assert!(warned.is_empty(), "{warned:?}");
}

#[test]
fn the_sidecar_config_serves_with_the_location_headers() {
    let model = support::model(SPEC, "production");
    let conf = nginx::static_sidecar(&model, "web")
        .expect("a sidecar")
        .text;
    for expected in [
        "pid /tmp/nginx.pid;",
        "listen 8080;",
        "location /static/ {",
        "location /media/ {",
        "alias /app/media/;",
        "alias /app/staticfiles/;",
        "add_header Cache-Control \"public, immutable\";",
        "expires 30d;",
    ] {
        assert!(conf.contains(expected), "no {expected:?}:\n{conf}");
    }
    assert!(nginx::static_sidecar(&model, "nope").is_none());
}
