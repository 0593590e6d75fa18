//! Programs as data: the shipped catalog's command lines, a program the project declares
//! (checked options, kind, probe, stop signal in every target), and its diagnostics.

mod support;

use kiln_core::model::{Model, ServiceKind};
use kiln_targets::{compose, k8s, systemd};

/// The project of `body`: declarations, `---`, then the environment's services.
fn spec(body: &str) -> String {
    let (decls, services) = body.split_once("---").unwrap_or(("", body));
    format!(
        "project shop {{ output \"generated\" }}\n{decls}\nenvironment production {{\n    tier production\n    redis cache\n    {services}\n    targets compose systemd k8s\n}}\n"
    )
}

fn resolve(body: &str) -> (Option<Model>, Vec<kiln_core::Diagnostic>) {
    support::resolve(&spec(body), "production")
}

fn model(body: &str) -> Model {
    support::model(&spec(body), "production")
}

#[test]
fn shipped_programs_build_their_command_lines() {
    let m = model(
        r#"---
    service a { image "x:1"; port 8000; run hypercorn "app:app" workers=2 worker-class="uvloop" }
    service b { image "x:1"; port 8001; run granian "app:app" workers=2 }
    service c { image "x:1"; port 5555; run celery flower app=config url-prefix="flower" }
    service d { image "x:1"; run rq worker url="redis://cache:6379/0" { queues "high" "default"; }; }
    service e { image "x:1"; run dramatiq "app.tasks" processes=2 { queues "a" "b"; }; }
    service f { image "x:1"; run manage "migrate" "--noinput" }"#,
    );
    let argv = |s: &str| m.services[s].run.argv.join(" ");
    assert_eq!(
        argv("a"),
        "hypercorn app:app --bind=0.0.0.0:8000 --workers=2 --worker-class=uvloop --access-logfile=- --error-logfile=-"
    );
    assert_eq!(
        argv("b"),
        "granian --host 0.0.0.0 --port 8001 --interface=asgi --workers=2 --access-log app:app"
    );
    assert_eq!(
        argv("c"),
        "celery -A config flower --address=0.0.0.0 --port=5555 --url_prefix=flower"
    );
    assert_eq!(
        argv("d"),
        "rq worker --url=redis://cache:6379/0 high default"
    );
    assert_eq!(argv("e"), "dramatiq app.tasks --processes=2 --queues a b");
    assert_eq!(argv("f"), "python manage.py migrate --noinput");
    let kinds: Vec<ServiceKind> = ["a", "c", "d", "e", "f"]
        .iter()
        .map(|s| m.services[*s].kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ServiceKind::Web,
            ServiceKind::Web,
            ServiceKind::Worker,
            ServiceKind::Worker,
            ServiceKind::Task
        ]
    );
    // Python programs are probed with Python, not wget or curl.
    let compose = compose::emit(&m);
    let yaml = &compose
        .artifacts
        .iter()
        .find(|a| a.path.ends_with("compose.yaml"))
        .unwrap()
        .text;
    assert!(!yaml.contains("wget"), "{yaml}");
}

const HUEY: &str = r#"
program huey {
    doc "A Huey consumer."
    kind worker
    runtime python
    app required
    argv "huey_consumer.py" "{app}"
    option workers type=int flag="--workers={}"
    option worker-type flag="--worker-type={}"
    option verbose type=bool if-true="--verbose"
    probe "pgrep -f huey_consumer > /dev/null"
    stop-signal "SIGINT"
}
---
    service tasks { image "x:1"; run huey "app.huey" workers=4 worker-type="thread" verbose=#true; }"#;

#[test]
fn a_program_the_project_declares_reaches_every_target() {
    let m = model(HUEY);
    let s = &m.services["tasks"];
    assert_eq!(s.kind, ServiceKind::Worker);
    assert_eq!(
        s.run.argv,
        [
            "huey_consumer.py",
            "app.huey",
            "--workers=4",
            "--worker-type=thread",
            "--verbose"
        ]
    );
    let compose = compose::emit(&m);
    let yaml = &compose
        .artifacts
        .iter()
        .find(|a| a.path.ends_with("compose.yaml"))
        .unwrap()
        .text;
    assert!(yaml.contains("stop_signal: SIGINT"), "{yaml}");
    assert!(yaml.contains("pgrep -f huey_consumer"), "no probe:\n{yaml}");
    let units = systemd::emit(&m);
    let unit = &units
        .artifacts
        .iter()
        .find(|a| a.path.ends_with("shop-tasks.service"))
        .unwrap()
        .text;
    assert!(unit.contains("KillSignal=SIGINT"), "{unit}");
    assert!(
        unit.contains("ExecStart=/opt/shop/venv/bin/huey_consumer.py"),
        "{unit}"
    );
    let manifests = k8s::emit(&m);
    let all: String = manifests
        .artifacts
        .iter()
        .map(|a| a.text.as_str())
        .collect();
    assert!(all.contains("pgrep -f huey_consumer"), "no liveness probe");
    assert!(
        manifests
            .unsupported
            .iter()
            .any(|u| u.message.contains("SIGINT")),
        "no warning about the stop signal"
    );
}

#[test]
fn a_declared_programs_options_are_checked() {
    let bad = HUEY
        .replace("workers=4", "wokers=4")
        .replace("verbose=#true", "verbose=\"yes\"");
    let (_, diags) = resolve(&bad);
    let found: Vec<(String, String)> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            (
                d.code.clone(),
                format!("{} / {}", d.message, d.help.clone().unwrap_or_default()),
            )
        })
        .collect();
    assert!(
        found
            .iter()
            .any(|(c, m)| c == "unknown-property" && m.contains("did you mean `workers`")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|(c, m)| c == "type-mismatch"
            && m.contains("`verbose` of huey must be `#true` or `#false`")),
        "{found:#?}"
    );
    // It may not take a shipped program's name or `run` words.
    let clash = HUEY.replace("program huey {", "program gunicorn {");
    let (_, diags) = resolve(&clash);
    assert!(diags.iter().any(|d| d.code == "duplicate"), "{diags:#?}");
}
