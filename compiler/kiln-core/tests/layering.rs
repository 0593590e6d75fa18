//! Property tests of layering: for random base/override layers of variables
//! and services, the resolved environment follows the documented rules
//! (override, add, `#null` unsets, `(remove)` removes, a changed first value
//! replaces the node).

use std::collections::BTreeMap;

use kiln_core::model::EnvValue;
use kiln_core::{project, resolve};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum VarOp {
    Set(i64),
    Unset,
}

#[derive(Clone, Debug)]
enum SvcOp {
    Replicas(u32),
    Remove,
    Touch,
}

fn layer_strategy() -> impl Strategy<Value = (BTreeMap<String, VarOp>, BTreeMap<String, SvcOp>)> {
    let vars = proptest::collection::btree_map(
        prop::sample::select(vec!["A", "B", "C", "D", "E"]).prop_map(str::to_owned),
        prop_oneof![(0i64..100).prop_map(VarOp::Set), Just(VarOp::Unset)],
        0..5,
    );
    let svcs = proptest::collection::btree_map(
        prop::sample::select(vec!["w1", "w2", "w3"]).prop_map(str::to_owned),
        prop_oneof![
            (1u32..5).prop_map(SvcOp::Replicas),
            Just(SvcOp::Remove),
            Just(SvcOp::Touch)
        ],
        0..3,
    );
    (vars, svcs)
}

fn render_layer(
    vars: &BTreeMap<String, VarOp>,
    svcs: &BTreeMap<String, SvcOp>,
    base: bool,
) -> String {
    let mut out = String::from("    env {\n");
    for (k, op) in vars {
        match op {
            VarOp::Set(v) => out.push_str(&format!("        {k} {v}\n")),
            VarOp::Unset => out.push_str(&format!("        {k} #null\n")),
        }
    }
    out.push_str("    }\n");
    for (name, op) in svcs {
        match op {
            SvcOp::Remove if !base => out.push_str(&format!("    (remove)service {name}\n")),
            SvcOp::Remove | SvcOp::Touch => out.push_str(&format!("    service {name} preset=celery-worker {{ image \"x/{name}:1\"; }}\n")),
            SvcOp::Replicas(r) => out.push_str(&format!("    service {name} preset=celery-worker {{ image \"x/{name}:1\"; replicas {r}; }}\n")),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn override_add_unset_remove((bv, bs) in layer_strategy(), (ov, os) in layer_strategy()) {
        let text = format!(
            "project p {{}}\nenvironment base abstract=#true {{\n    tier production\n{}}}\nenvironment production extends=base {{\n{}}}\n",
            render_layer(&bv, &bs, true),
            render_layer(&ov, &os, false),
        );
        let mut loader = |p: &str| if p == "kiln.kdl" { Ok(text.clone()) } else { Err("none".to_owned()) };
        let (project, diags) = project::load(&mut loader);
        prop_assert!(diags.iter().all(|d| !d.is_error()), "{text}\n{diags:?}");
        let (model, diags) = resolve::resolve(&project, "production");
        prop_assert!(diags.iter().all(|d| !d.is_error()), "{text}\n{diags:?}");
        let model = model.expect("model");

        // Variables: the override's value wins, #null unsets, otherwise the base's.
        for k in ["A", "B", "C", "D", "E"] {
            let expected = match (bv.get(k), ov.get(k)) {
                (_, Some(VarOp::Set(v))) => Some(*v),
                (_, Some(VarOp::Unset)) => None,
                (Some(VarOp::Set(v)), None) => Some(*v),
                _ => None,
            };
            prop_assert_eq!(model.env.get(k).cloned(), expected.map(EnvValue::Int), "variable {} in\n{}", k, text);
        }
        // Services: present unless removed by the override; replicas from the last layer that set them.
        for name in ["w1", "w2", "w3"] {
            let in_base = bs.contains_key(name);
            let expected_present = match os.get(name) {
                Some(SvcOp::Remove) => false,
                Some(_) => true,
                None => in_base,
            };
            prop_assert_eq!(model.services.contains_key(name), expected_present, "service {} in\n{}", name, text);
            if expected_present {
                let replicas = match (bs.get(name), os.get(name)) {
                    (_, Some(SvcOp::Replicas(r))) => *r,
                    (Some(SvcOp::Replicas(r)), Some(SvcOp::Touch) | None) => *r,
                    _ => 1,
                };
                prop_assert_eq!(model.services[name].replicas, replicas, "replicas of {} in\n{}", name, text);
            }
        }
    }
}

#[test]
fn changed_program_replaces_the_process() {
    let text = r#"project p {}
environment base abstract=#true {
    tier production
    service web preset=django-web { image "x/web:1"; }
}
environment production extends=base {
    service web {
        run uvicorn "app.main:app"
    }
}
"#;
    let mut loader = |p: &str| {
        if p == "kiln.kdl" {
            Ok(text.to_owned())
        } else {
            Err("none".to_owned())
        }
    };
    let (project, diags) = project::load(&mut loader);
    assert!(diags.is_empty(), "{diags:?}");
    let (model, diags) = resolve::resolve(&project, "production");
    assert!(diags.is_empty(), "{diags:?}");
    let run = &model.expect("model").services["web"].run;
    assert_eq!(run.program, "uvicorn");
    // gunicorn's worker-tmp-dir from the preset must not leak into uvicorn.
    assert!(
        !run.options.contains_key("worker-tmp-dir"),
        "{:?}",
        run.options
    );
}

#[test]
fn provenance_records_the_override_chain() {
    let text = "project p {}\nenvironment base abstract=#true {\n    tier production\n    env { LOG \"INFO\" }\n}\nenvironment production extends=base {\n    env { LOG \"WARNING\" }\n}\n";
    let mut loader = |p: &str| {
        if p == "kiln.kdl" {
            Ok(text.to_owned())
        } else {
            Err("none".to_owned())
        }
    };
    let (project, _) = project::load(&mut loader);
    let (model, _) = resolve::resolve(&project, "production");
    let model = model.expect("model");
    let (_, origins) = model.provenance.lookup("/env/LOG").expect("recorded");
    let layers: Vec<&str> = origins.iter().map(|o| o.layer.as_str()).collect();
    assert_eq!(layers, ["production", "base"]);
    let lines: Vec<usize> = origins
        .iter()
        .map(|o| project.sources.location(o.span).line)
        .collect();
    assert_eq!(lines, [7, 4]);
    // The nearest parent answers for values that were not set directly.
    assert!(model.provenance.lookup("/env/LOG/nested").is_some());
}

fn resolve_text(text: &str, env: &str) -> kiln_core::Model {
    let mut loader = |p: &str| {
        if p == "kiln.kdl" {
            Ok(text.to_owned())
        } else {
            Err("none".to_owned())
        }
    };
    let (project, diags) = project::load(&mut loader);
    assert!(diags.is_empty(), "{diags:?}");
    let (model, diags) = resolve::resolve(&project, env);
    assert!(diags.is_empty(), "{diags:?}");
    model.expect("model")
}

const SITE_BASE: &str = r#"project p {}
environment base abstract=#true {
    tier production
    service web preset=django-web { image "x/web:1"; }
    site "app.p.example" upstream=web
}
"#;

/// Regression: presets were merged after the extends chain, so `(remove)` in an
/// environment could not reach a preset's content.
#[test]
fn remove_reaches_preset_content() {
    let text = format!(
        "{SITE_BASE}environment production extends=base {{\n    site \"app.p.example\" {{\n        (remove)header X-Frame-Options\n    }}\n}}\n"
    );
    let model = resolve_text(&text, "production");
    let headers = &model.sites["app.p.example"].headers;
    assert!(!headers.contains_key("X-Frame-Options"), "{headers:?}");
    assert!(headers.contains_key("X-Content-Type-Options"));
}

/// Regression: `tls files` replaced the preset's `tls acme` whole, dropping the Mozilla ciphers.
#[test]
fn tls_mode_change_keeps_the_profile() {
    let text = format!(
        "{SITE_BASE}environment production extends=base {{\n    site \"app.p.example\" {{\n        tls files cert=\"/etc/ssl/app.pem\" key=\"/etc/ssl/app.key\"\n    }}\n}}\n"
    );
    let tls = resolve_text(&text, "production").sites["app.p.example"]
        .tls
        .clone();
    assert_eq!(tls.mode, "files");
    assert!(
        tls.ciphers
            .is_some_and(|c| c.contains("ECDHE-ECDSA-AES128-GCM-SHA256"))
    );
    assert_eq!(tls.cert.as_deref(), Some("/etc/ssl/app.pem"));
}

/// Regression: changing one option of an inherited process needed the program restated.
#[test]
fn run_option_override_keeps_the_program() {
    let text = format!(
        "{SITE_BASE}environment production extends=base {{\n    service web {{\n        run workers=8\n    }}\n}}\n"
    );
    let run = resolve_text(&text, "production").services["web"]
        .run
        .clone();
    assert_eq!(run.program, "gunicorn");
    assert_eq!(run.options["workers"], 8);
    assert_eq!(
        run.options["worker-tmp-dir"], "/dev/shm",
        "the preset's other options stay"
    );
}

#[test]
fn project_presets_extend_stdlib_presets() {
    let text = r#"project p {}
preset hardened-site for=site extends=nginx-site {
    header Content-Security-Policy "default-src 'none'"
}
environment production {
    tier production
    service web preset=django-web { image "x/web:1"; }
    site "app.p.example" upstream=web preset=hardened-site
}
"#;
    let site = resolve_text(text, "production").sites["app.p.example"].clone();
    assert_eq!(
        site.headers["Content-Security-Policy"],
        "default-src 'none'"
    );
    assert!(site.hsts.is_some(), "nginx-site's HSTS is inherited");
    assert!(site.tls.ciphers.is_some());
}

#[test]
fn celery_variables_only_when_celery_runs() {
    let web_only = "project p {}\nenvironment production {\n    tier production\n    redis cache\n    service web preset=django-web { image \"x/web:1\"; uses cache; }\n}\n";
    let env = resolve_text(web_only, "production").services["web"]
        .env
        .clone();
    assert!(
        env.contains_key("REDIS_URL") && !env.contains_key("CELERY_BROKER_URL"),
        "{env:?}"
    );
    let with_worker = web_only.replace("uses cache; }\n", "uses cache; }\n    service worker preset=celery-worker { image \"x/web:1\"; uses cache; }\n");
    let env = resolve_text(&with_worker, "production").services["web"]
        .env
        .clone();
    assert!(env.contains_key("CELERY_BROKER_URL") && env.contains_key("CELERY_RESULT_BACKEND"));
}

#[test]
fn secrets_reach_only_the_services_they_name() {
    let text = r#"project p {}
environment production {
    tier production
    secret SECRET_KEY kind=django-secret-key
    secret JWT_KEY kind=jwt-hs256 services="api"
    service api preset=fastapi-web { image "x/api:1"; }
    service front preset=django-web {
        image "x/front:1"
        port 8080
        secret FRONT_TOKEN kind=token
    }
}
"#;
    let model = resolve_text(text, "production");
    let api = &model.services["api"].env;
    let front = &model.services["front"].env;
    assert!(
        api.contains_key("SECRET_KEY")
            && api.contains_key("JWT_KEY")
            && !api.contains_key("FRONT_TOKEN")
    );
    assert!(
        front.contains_key("SECRET_KEY")
            && !front.contains_key("JWT_KEY")
            && front.contains_key("FRONT_TOKEN")
    );
    // A service's own secret is a declared secret too (so `secrets check` judges it).
    assert_eq!(model.secrets["FRONT_TOKEN"].services, ["front"]);
}

#[test]
fn sizes_are_binary() {
    assert_eq!(kiln_core::schema::parse_size("512mb"), Some(512 << 20));
    assert_eq!(kiln_core::schema::parse_size("4Gi"), Some(4 << 30));
    assert_eq!(kiln_core::schema::parse_size("10M"), Some(10 << 20));
}
