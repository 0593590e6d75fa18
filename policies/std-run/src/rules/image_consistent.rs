//! `run.image-consistent`: processes that share an image repository run different versions.

use std::collections::BTreeMap;

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "run.image-consistent",
    default_severity: Severity::Warn,
    summary: "app services built from one image repository run different tags or digests",
    what: "Groups the app services by image repository (the reference without its tag and \
           digest) and reports each service whose reference differs from the one most of the \
           group runs (ties: the first service's, by name). Data services and nginx are not \
           compared: their images are other repositories. Waive it for a deliberate canary.",
    why: "The web process, the workers and the migration task of one app are one release: a \
          worker one tag behind runs old task code against a schema the new migration changed, \
          and it happens when a diff bumps four of five `image` lines. Saying the image once \
          (`images { app \"…\" }`, `image \"${images.app}\"`) makes the mistake impossible; \
          this rule catches it where the image is still said per service.",
    example: "service worker {\n    image \"ghcr.io/acme/shop:2.4.0@sha256:7c9001d32c6a703d95921a77115050f33dd823d3f1730bd35215dcbecad6dc20\"\n}",
    instead: "service worker {\n    image \"ghcr.io/acme/shop:2.4.1@sha256:8d9001d32c6a703d95921a77115050f33dd823d3f1730bd35215dcbecad6dc20\"\n}",
    upstream: &["proposal"],
};

/// The repository of an image reference: without `@digest` and without the last segment's
/// `:tag` (a registry's `:port` stays).
fn repository(image: &str) -> &str {
    let name = image.split_once('@').map_or(image, |(n, _)| n);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].find(':') {
        Some(colon) => &name[..last + colon],
        None => name,
    }
}

pub fn check(input: &Input) -> Vec<Finding> {
    // repository -> reference -> services running it
    let mut groups: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for (name, s) in input.services() {
        if let Some(image) = s.get("image").and_then(Value::as_str) {
            groups
                .entry(repository(image))
                .or_default()
                .entry(image)
                .or_default()
                .push(name);
        }
    }
    let mut out = Vec::new();
    for (repo, refs) in groups {
        if refs.len() < 2 {
            continue;
        }
        // The reference most services run; ties go to the first service by name.
        let (main, main_services) = refs
            .iter()
            .max_by(|a, b| {
                a.1.len()
                    .cmp(&b.1.len())
                    .then_with(|| b.1.iter().min().cmp(&a.1.iter().min()))
            })
            .map(|(r, s)| (*r, s.clone()))
            .expect("two or more references");
        for (image, services) in &refs {
            if *image == main {
                continue;
            }
            for service in services {
                out.push(
                    Finding::new(
                        RULE.id,
                        format!(
                            "service `{service}` runs `{image}`, but {} of {repo} run `{main}`",
                            main_services
                                .iter()
                                .map(|s| format!("`{s}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .at(json_pointer(["services", service, "image"]))
                    .help("say the image once: `images { app \"…\" }` in the environment and `image \"${images.app}\"` in each service; waive this for a deliberate canary")
                    .related(
                        json_pointer(["services", main_services[0], "image"]),
                        "the version the others run",
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn services(images: &[(&str, &str)]) -> Vec<String> {
        let mut s = serde_json::Map::new();
        for (name, image) in images {
            s.insert((*name).into(), json!({ "image": image }));
        }
        check(&input(json!({ "services": s })))
            .into_iter()
            .map(|f| f.path.unwrap())
            .collect()
    }

    #[test]
    fn repositories() {
        assert_eq!(repository("ghcr.io/a/app:1.2@sha256:00"), "ghcr.io/a/app");
        assert_eq!(repository("registry:5000/app:1"), "registry:5000/app");
        assert_eq!(repository("registry:5000/app"), "registry:5000/app");
        assert_eq!(repository("app"), "app");
    }

    #[test]
    fn the_odd_one_out() {
        let a = "ghcr.io/a/app:4.1.11";
        let old = "ghcr.io/a/app:4.1.10";
        assert!(services(&[("web", a), ("worker", a), ("dash", "ghcr.io/a/dash:1")]).is_empty());
        assert_eq!(
            services(&[("web", a), ("worker", old), ("migrate", a)]),
            ["/services/worker/image"]
        );
        // A tie: the first service's (by name) is the reference.
        assert_eq!(services(&[("a", old), ("b", a)]), ["/services/b/image"]);
        // The same tag with and without a digest differ too.
        assert_eq!(
            services(&[
                ("web", a),
                ("worker", &format!("{a}@sha256:00")),
                ("beat", a)
            ]),
            ["/services/worker/image"]
        );
    }
}
