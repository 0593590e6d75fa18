//! The compose and k8s targets over every fixture (`fixtures/*/kiln.kdl`, every compiled
//! environment), and the YAML emitter's quoting.
//!
//! - One insta snapshot per fixture × environment × target the environment asks for
//!   (the files concatenated under `--- path` lines, then what is unsupported). The nginx
//!   and pgbouncer files inside `compose/` belong to those emitters' own tests: listed
//!   by path only.
//! - Invariants checked on every environment for both targets, asked for or not: no
//!   secret rendered as a value, YAML that a 1.2 reader loads, byte-stable output,
//!   provenance for every line, only nginx publishes ports, kustomization lists every
//!   manifest.
//! - `KILN_TARGETS_DUMP=DIR cargo test -p kiln-targets --test compose_k8s` also writes
//!   every artifact to `DIR/<fixture>/<env>/…`, for the real validators (compose-spec
//!   schema, kubernetes-validate, yamllint, `docker compose config`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiln_core::Artifact;
use kiln_core::model::{EnvValue, Model, Target};
use kiln_targets::yaml::{self, Node};
use kiln_targets::{Output, compose, k8s};
use proptest::prelude::*;
use yaml_rust2::{Yaml, YamlLoader};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Every fixture project with a `kiln.kdl`, by folder name.
fn fixtures() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir()).expect("fixtures/ exists") {
        let dir = entry.expect("readable fixtures/").path();
        if dir.join("kiln.kdl").is_file() {
            out.push((
                dir.file_name()
                    .expect("a folder")
                    .to_string_lossy()
                    .into_owned(),
                dir,
            ));
        }
    }
    out.sort();
    out
}

/// Every compiled environment's model of a fixture.
fn models(dir: &Path) -> Vec<Model> {
    load_models(&dir.display().to_string(), &mut |p| {
        std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string())
    })
}

fn load_models(what: &str, loader: &mut dyn FnMut(&str) -> Result<String, String>) -> Vec<Model> {
    let (project, diags) = kiln_core::project::load(loader);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.severity == kiln_core::Severity::Error)
        .map(|d| format!("{d:?}"))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
    project
        .compiled_environments()
        .into_iter()
        .map(|env| {
            let (model, diags) = kiln_core::resolve::resolve(&project, env);
            let errors: Vec<String> = diags
                .iter()
                .filter(|d| d.severity == kiln_core::Severity::Error)
                .map(|d| format!("{d:?}"))
                .collect();
            assert!(errors.is_empty(), "{what} {env}: {errors:#?}");
            model.expect("a model without errors")
        })
        .collect()
}

fn emit(model: &Model, target: Target) -> Output {
    let mut out = match target {
        Target::Compose => compose::emit(model),
        Target::K8s => k8s::emit(model),
        other => panic!("not this suite's target: {other:?}"),
    };
    out.artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn render(out: &Output) -> String {
    let mut s = String::new();
    for a in &out.artifacts {
        if a.path.starts_with("compose/nginx/") || a.path.starts_with("compose/pgbouncer/") {
            s.push_str(&format!("--- {} (rendered by its own emitter)\n", a.path));
        } else {
            s.push_str(&format!("--- {}\n{}", a.path, a.text));
        }
    }
    s.push_str("--- unsupported\n");
    for u in &out.unsupported {
        s.push_str(&format!(
            "{}: {}\n",
            if u.pointer.is_empty() {
                "(none)"
            } else {
                &u.pointer
            },
            u.message
        ));
    }
    s
}

#[test]
fn snapshots() {
    let dump = std::env::var_os("KILN_TARGETS_DUMP").map(PathBuf::from);
    let mut seen = 0;
    for (fixture, dir) in fixtures() {
        for model in models(&dir) {
            for target in [Target::Compose, Target::K8s] {
                let out = emit(&model, target);
                check_invariants(&fixture, &model, target, &out);
                if let Some(root) = &dump {
                    for a in &out.artifacts {
                        let path = root.join(&fixture).join(&model.environment).join(&a.path);
                        std::fs::create_dir_all(path.parent().expect("a parent"))
                            .expect("dump folder");
                        std::fs::write(&path, &a.text).expect("dump file");
                    }
                    let mut notes = String::new();
                    for u in &out.unsupported {
                        notes.push_str(&format!("{}: {}\n", u.pointer, u.message));
                    }
                    let path = root
                        .join(&fixture)
                        .join(&model.environment)
                        .join(format!("{}.unsupported", target.as_str()));
                    std::fs::write(path, notes).expect("dump file");
                }
                if model.has_target(target) {
                    insta::assert_snapshot!(
                        format!("{fixture}__{}__{}", model.environment, target.as_str()),
                        render(&out)
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen > 0, "no fixture asks for compose or k8s");
}

/// What the fixtures do not exercise: `$` and YAML-1.1 words in values, an image-less
/// service, a Redis without password, a non-default port, scaled beat, a `/` location
/// with its own settings, per-path settings, rate limits ingress-nginx cannot express,
/// another ingress class, a capability added back.
const EDGE: &str = r#"
project edge {
    output "generated"
}

environment production {
    tier production
    env {
        DOLLAR_VALUE "pa$$word$(HOME)$${X}"
        ON_WORD "on"
        COLONS "22:22"
        MULTI "line one\nline two"
    }
    secret SECRET_KEY kind=django-secret-key
    secret DB_PASSWORD kind=password
    secret SENTRY_DSN kind=url optional=#true

    postgres main {
        version 18
        database app
        user app
        password DB_PASSWORD
        port 5433
    }
    redis queue {
        version 7
        maxmemory "100mb"
    }

    service web preset=django-web {
        run gunicorn "config.wsgi:application"
        port 8000
        uses main queue
        volume media "/app/media"
        cap-add "NET_BIND_SERVICE"
        replicas 2
    }
    service beat preset=celery-beat {
        image "ghcr.io/edge/app:1.0.0"
        replicas 2
        uses main queue
    }
    service ws preset=daphne {
        image "ghcr.io/edge/app:1.0.0"
        port 8001
        uses queue
    }
    site "edge.example" upstream=web {
        aliases "www.edge.example"
        rate-limit api rate="30r/m" burst=7 nodelay=#false
        rate-limit other rate="5r/s"
        location "/" websocket=#true
        websocket "/ws/" upstream=ws
        location "/admin/" allow="10.0.0.0/8" max-body-size="1m"
    }
    kubernetes {
        namespace "edge"
    }
    compose {
        project-name "edge-prod"
    }
    targets compose k8s
}

environment traefik {
    tier staging
    service web preset=django-web {
        image "ghcr.io/edge/app:1.0.0"
        port 8000
    }
    site "edge.example" upstream=web {
        max-body-size "1m"
        location "/admin/" allow="10.0.0.0/8"
    }
    kubernetes {
        ingress-class "traefik"
    }
    targets compose k8s
}
"#;

#[test]
fn edge_cases() {
    let dump = std::env::var_os("KILN_TARGETS_DUMP").map(PathBuf::from);
    let models = load_models("edge", &mut |p| match p {
        "kiln.kdl" => Ok(EDGE.to_owned()),
        other => Err(format!("no file {other}")),
    });
    assert_eq!(models.len(), 2);
    for model in models {
        for target in [Target::Compose, Target::K8s] {
            let out = emit(&model, target);
            check_invariants("edge", &model, target, &out);
            if let Some(root) = &dump {
                for a in &out.artifacts {
                    let path = root.join("edge").join(&model.environment).join(&a.path);
                    std::fs::create_dir_all(path.parent().expect("a parent")).expect("dump folder");
                    std::fs::write(&path, &a.text).expect("dump file");
                }
            }
            insta::assert_snapshot!(
                format!("edge__{}__{}", model.environment, target.as_str()),
                render(&out)
            );
        }
    }
}

/// One trivial case, runnable by name.
#[test]
fn smoke_tulia_production_compose() {
    let model = models(&fixtures_dir().join("tulia"))
        .into_iter()
        .find(|m| m.environment == "production")
        .expect("tulia production");
    let out = emit(&model, Target::Compose);
    let compose = out
        .artifacts
        .iter()
        .find(|a| a.path == "compose/compose.yaml")
        .expect("compose.yaml");
    assert!(compose.text.starts_with("# generated by kiln"));
    assert!(compose.text.contains("\nservices:\n  beat:\n"));
}

fn load(a: &Artifact) -> Yaml {
    let docs = YamlLoader::load_from_str(&a.text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}\n{}", a.path, a.text));
    assert_eq!(docs.len(), 1, "{}: one document per file", a.path);
    docs.into_iter().next().expect("one document")
}

fn check_invariants(fixture: &str, model: &Model, target: Target, out: &Output) {
    let ctx = format!("{fixture} {} {}", model.environment, target.as_str());
    let again = emit(model, target);
    assert_eq!(
        out.artifacts, again.artifacts,
        "{ctx}: the same model gives the same bytes"
    );
    assert_eq!(out.unsupported, again.unsupported, "{ctx}: stable reports");

    let prefix = format!("{}/", target.as_str());
    let mut paths = BTreeSet::new();
    for a in &out.artifacts {
        assert!(
            a.path.starts_with(&prefix),
            "{ctx}: {} outside {prefix}",
            a.path
        );
        assert!(
            a.path
                .split('/')
                .all(|c| !c.is_empty() && c != ".." && c != "."),
            "{ctx}: {} escapes",
            a.path
        );
        assert!(paths.insert(a.path.clone()), "{ctx}: {} twice", a.path);
        assert!(
            a.text.ends_with('\n') && !a.text.contains('\r'),
            "{ctx}: {}: LF and a final newline",
            a.path
        );
        let first = a.text.lines().next().unwrap_or_default();
        assert!(
            first
                .trim_start_matches(['#', ';', ' '])
                .starts_with("generated by kiln"),
            "{ctx}: {}: header",
            a.path
        );
        assert_eq!(
            a.lines.len(),
            a.text.lines().count(),
            "{ctx}: {}: provenance for every line",
            a.path
        );
        assert!(
            a.text.lines().all(|l| l == l.trim_end()),
            "{ctx}: {}: trailing whitespace",
            a.path
        );
        if a.path.ends_with(".yaml")
            && !a.path.starts_with("compose/nginx/")
            && !a.path.starts_with("compose/pgbouncer/")
        {
            load(a);
        }
    }
    match target {
        Target::Compose => check_compose(&ctx, model, out),
        Target::K8s => check_k8s(&ctx, model, out),
        _ => unreachable!(),
    }
}

fn secret_names(model: &Model) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = model.secrets.keys().cloned().collect();
    for s in model.services.values() {
        for v in s.env.values() {
            names.extend(v.secrets().into_iter().map(str::to_owned));
        }
    }
    names
}

fn check_compose(ctx: &str, model: &Model, out: &Output) {
    let file = out
        .artifacts
        .iter()
        .find(|a| a.path == "compose/compose.yaml")
        .expect("compose.yaml");
    let doc = load(file);
    let services = &doc["services"];
    for name in secret_names(model) {
        assert!(
            !file.text.contains(&format!("$({name})")),
            "{ctx}: k8s syntax for {name} in compose"
        );
        assert!(
            !file.text.contains(&format!("${{{name}}}")),
            "{ctx}: `${{{name}}}` without a required check"
        );
    }
    for (svc, s) in &model.services {
        let node = &services[svc.as_str()];
        assert!(!node.is_badvalue(), "{ctx}: service {svc} missing");
        assert!(
            node["ports"].is_badvalue(),
            "{ctx}: app service {svc} publishes a port"
        );
        assert_eq!(
            node["cap_drop"][0].as_str(),
            Some("ALL"),
            "{ctx}: {svc} cap_drop"
        );
        for (var, v) in &s.env {
            let value = &node["environment"][var.as_str()];
            match v {
                EnvValue::Secret(sec)
                    if model.secrets.get(sec).is_some_and(|x| x.optional) && sec == var =>
                {
                    assert!(
                        value.is_null(),
                        "{ctx}: optional secret {svc}.{var} must pass through (null), got {value:?}"
                    );
                }
                v if v.is_secret() => {
                    let text = value
                        .as_str()
                        .unwrap_or_else(|| panic!("{ctx}: {svc}.{var} missing"));
                    for sec in v.secrets() {
                        assert!(
                            text.contains(&format!("${{{sec}:?")),
                            "{ctx}: {svc}.{var} must interpolate {sec}: {text}"
                        );
                    }
                }
                _ => assert!(
                    value.as_str().is_some(),
                    "{ctx}: {svc}.{var} must be a string"
                ),
            }
        }
    }
    if let Some(h) = services.as_hash() {
        for (name, node) in h {
            if !node["ports"].is_badvalue() {
                assert_eq!(
                    node["image"].as_str(),
                    Some(model.compose.nginx_image.as_str()),
                    "{ctx}: only nginx publishes ports, not {name:?}"
                );
            }
        }
    }
    let example = out
        .artifacts
        .iter()
        .find(|a| a.path == "compose/.env.example")
        .expect(".env.example");
    for line in example.text.lines() {
        let l = line.trim_start_matches("# ");
        if let Some((name, value)) = l.split_once('=')
            && model.secrets.contains_key(name)
        {
            assert!(
                value.is_empty(),
                "{ctx}: .env.example gives secret {name} a value"
            );
        }
    }
}

fn check_k8s(ctx: &str, model: &Model, out: &Output) {
    for name in secret_names(model) {
        for a in &out.artifacts {
            assert!(
                !a.text.contains(&format!("${{{name}")),
                "{ctx}: {}: compose syntax for {name}",
                a.path
            );
        }
    }
    let secret_vars: BTreeSet<&str> = model
        .services
        .values()
        .flat_map(|s| {
            s.env
                .iter()
                .filter(|(_, v)| v.is_secret())
                .map(|(k, _)| k.as_str())
        })
        .collect();
    let mut files = Vec::new();
    for a in &out.artifacts {
        let file = a.path.strip_prefix("k8s/").expect("under k8s/");
        if file == "kustomization.yaml" {
            continue;
        }
        files.push(file.to_owned());
        let doc = load(a);
        let kind = doc["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: {}: no kind", a.path));
        if kind != "Namespace" {
            assert_eq!(
                doc["metadata"]["namespace"].as_str(),
                Some(model.kubernetes.namespace.as_str()),
                "{ctx}: {}: namespace",
                a.path
            );
        }
        if kind == "ConfigMap"
            && let Some(data) = doc["data"].as_hash()
        {
            for k in data.keys() {
                assert!(
                    !secret_vars.contains(k.as_str().unwrap_or_default()),
                    "{ctx}: {}: secret {k:?} in a ConfigMap",
                    a.path
                );
            }
        }
        if kind == "Service" {
            let t = doc["spec"]["type"].as_str().unwrap_or("ClusterIP");
            assert!(
                t == "ClusterIP",
                "{ctx}: {}: only ClusterIP Services",
                a.path
            );
        }
        let pod = match kind {
            "Deployment" | "StatefulSet" => &doc["spec"]["template"]["spec"],
            "Job" => &doc["spec"]["template"]["spec"],
            _ => continue,
        };
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{ctx}: {}: runAsNonRoot",
            a.path
        );
        assert_eq!(
            pod["automountServiceAccountToken"].as_bool(),
            Some(false),
            "{ctx}: {}: token",
            a.path
        );
        for c in pod["containers"].as_vec().expect("containers") {
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{ctx}: {}",
                a.path
            );
            assert_eq!(
                c["securityContext"]["capabilities"]["drop"][0].as_str(),
                Some("ALL"),
                "{ctx}: {}",
                a.path
            );
            let mut defined: Vec<String> = Vec::new();
            for e in c["env"].as_vec().map(Vec::as_slice).unwrap_or_default() {
                let name = e["name"].as_str().expect("env name");
                if !e["valueFrom"]["secretKeyRef"].is_badvalue() {
                    defined.push(name.to_owned());
                    continue;
                }
                let value = e["value"].as_str().unwrap_or_else(|| {
                    panic!(
                        "{ctx}: {}: {name} has neither value nor secretKeyRef",
                        a.path
                    )
                });
                if secret_vars.contains(name)
                    || name == "POSTGRES_PASSWORD"
                    || name == "REDISCLI_AUTH"
                {
                    let mut rest = value;
                    let mut refs = 0;
                    while let Some(i) = rest.find("$(") {
                        let end = rest[i..].find(')').expect("closed reference");
                        let var = &rest[i + 2..i + end];
                        assert!(
                            defined.iter().any(|d| d == var),
                            "{ctx}: {}: {name} uses $({var}) before it is defined",
                            a.path
                        );
                        refs += 1;
                        rest = &rest[i + end..];
                    }
                    assert!(
                        refs > 0,
                        "{ctx}: {}: secret variable {name} rendered as a literal value",
                        a.path
                    );
                }
                defined.push(name.to_owned());
            }
        }
    }
    let kustomization = out
        .artifacts
        .iter()
        .find(|a| a.path == "k8s/kustomization.yaml")
        .expect("kustomization.yaml");
    let k = load(kustomization);
    let listed: Vec<String> = k["resources"]
        .as_vec()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file").to_owned())
        .collect();
    files.sort();
    assert_eq!(
        listed, files,
        "{ctx}: kustomization lists every manifest, sorted"
    );
}

// ---- YAML quoting -------------------------------------------------------------------------

/// YAML 1.1's implicit resolvers (PyYAML `resolver.py`, plus `y`/`n` of the 1.1 spec and
/// Go's yaml.v2): a plain scalar matching one of them is not a string to a 1.1 reader.
fn yaml11_not_a_string(s: &str) -> bool {
    const PATTERNS: &[&str] = &[
        r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        r"^(?:<<)$",
        r"^(?:~|null|Null|NULL|)$",
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
        r"^(?:=)$",
        // YAML 1.2 core schema numbers, for good measure.
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+)$",
    ];
    PATTERNS
        .iter()
        .any(|p| regex::Regex::new(p).expect("valid pattern").is_match(s))
}

/// `s` survives as a value, a key and a sequence item, read back by a YAML 1.2 reader;
/// when written plain, no YAML 1.1 resolver claims it.
fn round_trips(s: &str) {
    let root = Node::map()
        .with("value", Node::str(s))
        .with("list", Node::strs([s]));
    let text = yaml::document("t.yaml", &[], &root).text;
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{s:?} → {text:?}: {e}"));
    assert_eq!(
        docs[0]["value"].as_str(),
        Some(s),
        "{s:?} as a value: {text:?}"
    );
    assert_eq!(
        docs[0]["list"][0].as_str(),
        Some(s),
        "{s:?} as an item: {text:?}"
    );
    let keyed = Node::map().with(s.to_owned(), Node::str("v"));
    let text = yaml::document("t.yaml", &[], &keyed).text;
    let docs =
        YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("key {s:?} → {text:?}: {e}"));
    let key = docs[0]
        .as_hash()
        .and_then(|h| h.keys().next())
        .and_then(Yaml::as_str);
    assert_eq!(key, Some(s), "{s:?} as a key: {text:?}");
    if yaml::scalar(s) == s {
        assert!(
            !yaml11_not_a_string(s),
            "{s:?} is written plain but YAML 1.1 does not read it as a string"
        );
    }
}

#[test]
fn ambiguous_words_are_quoted() {
    for s in [
        "on",
        "off",
        "yes",
        "no",
        "y",
        "n",
        "Y",
        "N",
        "true",
        "false",
        "True",
        "NO",
        "On",
        "OFF",
        "null",
        "Null",
        "~",
        "",
        "1.0",
        "0755",
        "1e3",
        "1E3",
        "5432:5432",
        "22:22",
        "190:20:30.15",
        "0x1F",
        "0b101",
        "0o17",
        "1_000",
        "+1",
        "-1",
        "2024-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "<<",
        "=",
        ".inf",
        "-.inf",
        ".nan",
        ".5",
        "-",
        "---",
        "...",
        "? x",
        "- x",
        "a: b",
        "a #b",
        "#x",
        "&a",
        "*a",
        "!tag",
        "|",
        ">",
        "'q'",
        "\"q\"",
        "%x",
        "@x",
        "`x",
        "{}",
        "[]",
        " lead",
        "trail ",
        "a\nb",
        "tab\there",
        "a:",
    ] {
        assert!(
            yaml::scalar(s).starts_with('"'),
            "{s:?} must be quoted, got {}",
            yaml::scalar(s)
        );
        round_trips(s);
    }
    for s in [
        "web",
        "postgres:15",
        "ghcr.io/tulia/api:1.8.2",
        "/v1/health",
        "--bind=0.0.0.0:8000",
        "-A",
        "ALL",
        "no-new-privileges:true",
        "$$HOSTNAME",
    ] {
        assert_eq!(yaml::scalar(s), s, "{s:?} is plainly safe");
        round_trips(s);
    }
}

#[test]
fn multi_line_text_is_a_literal_block() {
    let ini = "[pgbouncer]\nlisten_port = 6432\n\n# comment\nauth_type = scram-sha-256\n";
    let root = Node::map().with("data", Node::map().with("pgbouncer.ini", Node::str(ini)));
    let text = yaml::document("t.yaml", &[], &root).text;
    assert!(
        text.contains("pgbouncer.ini: |\n    [pgbouncer]\n"),
        "{text}"
    );
    round_trips(ini);
    round_trips("no final newline\nsecond");
    round_trips("  leading spaces\nx\n");
    round_trips("trailing space \nx\n");
    round_trips("two final newlines\n\n");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_string_round_trips(s in any::<String>()) {
        round_trips(&s);
    }

    #[test]
    fn yaml_looking_strings_round_trip(s in "[-a-zA-Z0-9 :#,\\[\\]{}'\"&*!|>%@`?~=<+._/\\\\$\n\t]{0,14}") {
        round_trips(&s);
    }

    #[test]
    fn number_like_strings_round_trip(s in "[-+.]?[0-9_]{0,4}[.:eExXob]?[0-9a-fA-F_:]{0,6}") {
        round_trips(&s);
    }
}
