//! Hardening defaults of the outputs, each pinned by one test.

mod support;

use kiln_targets::k8s;
use support::file;

fn spec(kubernetes: &str) -> String {
    format!(
        r#"
project shop {{ output "generated" }}
environment production {{
    tier production
    {kubernetes}
    service web preset=django-web {{
        image "ghcr.io/shop/app:1.0.0"
        port 8000
        health "/healthz/"
    }}
    service worker preset=celery-worker {{
        image "ghcr.io/shop/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    }}
    targets k8s
}}
"#
    )
}

#[test]
fn pull_policy_follows_whether_the_image_is_pinned() {
    let out = k8s::emit(&support::model(&spec(""), "production"));
    assert!(
        file(&out, "deployment-web.yaml").contains("imagePullPolicy: Always"),
        "a tag can move: pull it"
    );
    assert!(
        file(&out, "deployment-worker.yaml").contains("imagePullPolicy: IfNotPresent"),
        "a digest cannot: the cached copy is the same bytes"
    );
    let out = k8s::emit(&support::model(
        &spec("kubernetes { image-pull-policy IfNotPresent }"),
        "production",
    ));
    assert!(file(&out, "deployment-web.yaml").contains("imagePullPolicy: IfNotPresent"));
}
