//! `run.image-pinned`: an image is `:latest`, untagged, or (in production) not pinned by digest.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, Tier, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "run.image-pinned",
    default_severity: Severity::Error,
    summary: "an image is `:latest` or untagged, or not pinned by digest in production",
    what: "Checks every container image the compose and Kubernetes targets run: app services' \
           `image`, PostgreSQL's, pgbouncer's and Redis's `image`, and `compose { nginx-image }`. \
           A `:latest` tag or no tag at all (kube-linter's `.*:(latest)$`, `^[^:]*$` and \
           `(.*/[^:]+)$`) is an error, as is an app service without an image when a container \
           target is on. A tag without an `@sha256:` digest is a warning in production and \
           info in staging. Without the compose and k8s targets, images are not used and not \
           checked.",
    why: "`latest` and missing tags mean a different image on every pull: a rollback does not \
          roll back, two replicas can run different code, and a compromised or broken upstream \
          push goes live on the next restart. A tag can still be moved; only a digest names \
          exactly the bytes that were reviewed and scanned.",
    example: "service web {\n    image \"ghcr.io/acme/storefront:latest\"\n}",
    instead: "service web {\n    image \"ghcr.io/acme/storefront:2.4.1@sha256:8d9001d32c6a703d95921a77115050f33dd823d3f1730bd35215dcbecad6dc20\"\n}",
    upstream: &[
        "KL latest-tag",
        "CKV_K8S_14",
        "CKV_K8S_43",
        "PO tagNotSpecified",
        "KS container-image-tag",
    ],
};

/// What an image reference lacks: `Some(true)` when unusable (latest or untagged),
/// `Some(false)` when only the digest is missing.
fn problem(image: &str) -> Option<(bool, &'static str)> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let pinned = digest.is_some_and(|d| {
        d.strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match tag {
        Some("latest") if !pinned => Some((true, "uses the `latest` tag")),
        None if !pinned => Some((true, "has no tag")),
        _ if !pinned => Some((false, "is not pinned by digest (`@sha256:…`)")),
        _ => None,
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    let targets: Vec<&str> = input
        .pointer("/targets")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let compose = targets.contains(&"compose");
    if !compose && !targets.contains(&"k8s") {
        return Vec::new();
    }
    let mut images: Vec<(String, Vec<String>, Option<&str>)> = Vec::new();
    for (name, s) in input.services() {
        images.push((
            format!("service `{name}`"),
            vec!["services".into(), name.into(), "image".into()],
            s.get("image").and_then(Value::as_str),
        ));
    }
    for (name, pg) in input.entries("/postgres") {
        images.push((
            format!("postgres `{name}`"),
            vec!["postgres".into(), name.into(), "image".into()],
            pg.get("image").and_then(Value::as_str),
        ));
        if let Some(p) = pg.get("pooler").filter(|p| p.is_object()) {
            images.push((
                format!("the pgbouncer of `{name}`"),
                vec![
                    "postgres".into(),
                    name.into(),
                    "pooler".into(),
                    "image".into(),
                ],
                p.get("image").and_then(Value::as_str),
            ));
        }
    }
    for (name, r) in input.entries("/redis") {
        images.push((
            format!("redis `{name}`"),
            vec!["redis".into(), name.into(), "image".into()],
            r.get("image").and_then(Value::as_str),
        ));
    }
    if compose && input.sites().next().is_some() {
        images.push((
            "the nginx container".to_owned(),
            vec!["compose".into(), "nginx-image".into()],
            input
                .pointer("/compose/nginx-image")
                .and_then(Value::as_str),
        ));
    }
    let digest_severity = match input.tier {
        Tier::Production | Tier::Other => Some(Severity::Warn),
        Tier::Staging => Some(Severity::Info),
        Tier::Development => None,
    };
    let mut out = Vec::new();
    for (what, path, image) in images {
        let at = json_pointer(&path);
        let Some(image) = image.filter(|i| !i.trim().is_empty()) else {
            out.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "{what} has no image, but the compose or k8s target runs it in a container"
                    ),
                )
                .at(at)
                .help("add `image \"registry/app:1.2.3@sha256:…\"`"),
            );
            continue;
        };
        match problem(image) {
            Some((true, why)) => out.push(
                Finding::new(RULE.id, format!("the image of {what} {why}"))
                    .at(at)
                    .help("pin a version tag and its digest: `image \"registry/app:1.2.3@sha256:…\"` (`docker buildx imagetools inspect` prints the digest)"),
            ),
            Some((false, why)) => {
                if let Some(severity) = digest_severity {
                    out.push(
                        Finding::new(RULE.id, format!("the image of {what} {why}"))
                            .at(at)
                            .help("append the digest of the tag you tested: `…:1.2.3@sha256:…` (`docker buildx imagetools inspect` prints it)")
                            .severity(severity),
                    );
                }
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    const DIGEST: &str = "sha256:8d9001d32c6a703d95921a77115050f33dd823d3f1730bd35215dcbecad6dc20";

    #[test]
    fn references() {
        assert_eq!(
            problem("nginx:latest"),
            Some((true, "uses the `latest` tag"))
        );
        assert_eq!(problem("nginx"), Some((true, "has no tag")));
        assert_eq!(
            problem("registry:5000/team/app"),
            Some((true, "has no tag"))
        );
        assert_eq!(
            problem("registry:5000/team/app:1.2").map(|p| p.0),
            Some(false)
        );
        assert_eq!(problem(&format!("app:1.2@{DIGEST}")), None);
        assert_eq!(problem(&format!("app@{DIGEST}")), None);
        assert_eq!(problem(&format!("app:latest@{DIGEST}")), None);
        assert_eq!(problem("app:1.2@sha256:abc").map(|p| p.0), Some(false));
    }

    fn spec(image: Value, targets: &[&str]) -> Value {
        json!({"targets": targets, "services": {"web": {"image": image}}, "postgres": {}, "redis": {},
               "sites": {"a": {}}, "compose": {"nginx-image": format!("nginx:1.27@{DIGEST}")}})
    }

    #[test]
    fn tiers_and_targets() {
        let f = check(&input(spec(json!("app:1.2"), &["compose"])));
        assert_eq!((f.len(), f[0].severity), (1, Some(Severity::Warn)));
        let mut i = input(spec(json!("app:1.2"), &["k8s"]));
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Info));
        i.tier = Tier::Development;
        assert!(check(&i).is_empty());
        i.spec["services"]["web"]["image"] = json!("app:latest");
        assert_eq!(check(&i)[0].severity, None);
        assert!(check(&input(spec(json!("app"), &["systemd", "nginx"]))).is_empty());
    }

    #[test]
    fn every_image_is_checked() {
        let spec = json!({
            "targets": ["compose"],
            "services": {"web": {"image": null}},
            "postgres": {"db": {"image": "postgres:16", "pooler": {"image": "pgbouncer"}}},
            "redis": {"cache": {"image": "redis:latest"}},
            "sites": {"a": {}},
            "compose": {"nginx-image": "nginx:1.27-alpine"},
        });
        let paths: Vec<String> = check(&input(spec))
            .into_iter()
            .map(|f| f.path.unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/services/web/image",
                "/postgres/db/image",
                "/postgres/db/pooler/image",
                "/redis/cache/image",
                "/compose/nginx-image"
            ]
        );
    }
}
