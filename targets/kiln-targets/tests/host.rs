//! The host targets (nginx, systemd, pgbouncer) over every fixture project and every
//! compiled environment, as insta snapshots: one per fixture × environment × target
//! (and per flavour for nginx and pgbouncer), files concatenated with `--- path` lines.
//!
//! `KILN_HOST_DUMP=DIR cargo test -p kiln-targets --test host` also writes every file to
//! `DIR/<fixture>/<environment>/…` (the container flavours under `compose/`), for the
//! real programs to check.

use std::path::{Path, PathBuf};

use kiln_core::Artifact;
use kiln_core::model::{Model, Target};
use kiln_targets::nginx::Flavor;
use kiln_targets::{Output, nginx, pgbouncer, systemd};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the fixtures folder exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("kiln.kdl").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Every compiled environment of a fixture, resolved.
fn models(dir: &Path) -> Vec<Model> {
    models_with(&dir.display().to_string(), &mut |p: &str| {
        std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string())
    })
}

fn models_with(what: &str, loader: &mut dyn FnMut(&str) -> Result<String, String>) -> Vec<Model> {
    let (project, diags) = kiln_core::project::load(loader);
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == kiln_core::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
    project
        .compiled_environments()
        .into_iter()
        .map(|env| {
            let (model, diags) = kiln_core::resolve::resolve(&project, env);
            let errors: Vec<_> = diags
                .iter()
                .filter(|d| d.severity == kiln_core::Severity::Error)
                .collect();
            assert!(errors.is_empty(), "{what} {env}: {errors:#?}");
            model.expect("a model without errors")
        })
        .collect()
}

fn render(out: &Output) -> String {
    let mut text = String::new();
    for a in &out.artifacts {
        text.push_str(&format!("--- {}\n{}", a.path, a.text));
    }
    for u in &out.unsupported {
        text.push_str(&format!(
            "--- unsupported {} {}: {}\n",
            u.target.as_str(),
            u.pointer,
            u.message
        ));
    }
    text
}

/// What every generated file must be, whatever the target.
fn check_shape(model: &Model, out: &Output) {
    let header = kiln_targets::header_text(model);
    for a in &out.artifacts {
        assert!(
            a.text.ends_with('\n') && !a.text.contains('\r'),
            "{}: LF endings and a final newline",
            a.path
        );
        let first = a.text.lines().next().unwrap_or_default();
        assert!(
            first.ends_with(&header) && (first.starts_with("# ") || first.starts_with("; ")),
            "{}: header comment first, got {first:?}",
            a.path
        );
        assert_eq!(
            a.lines.len(),
            a.text.lines().count(),
            "{}: provenance for every line",
            a.path
        );
        for ptrs in &a.lines {
            for p in ptrs {
                assert!(p.starts_with('/'), "{}: JSON pointer {p:?}", a.path);
            }
        }
        assert!(
            !a.path.contains("..") && !a.path.starts_with('/'),
            "{}: stays in the output folder",
            a.path
        );
    }
}

fn prefixed(prefix: &str, artifacts: Vec<Artifact>) -> Output {
    Output {
        artifacts: artifacts
            .into_iter()
            .map(|a| Artifact {
                path: format!("{prefix}/{}", a.path),
                ..a
            })
            .collect(),
        unsupported: Vec::new(),
        ..Default::default()
    }
}

fn dump(fixture: &str, model: &Model, out: &Output) {
    let Some(root) = std::env::var_os("KILN_HOST_DUMP") else {
        return;
    };
    for a in &out.artifacts {
        let path = Path::new(&root)
            .join(fixture)
            .join(&model.environment)
            .join(&a.path);
        std::fs::create_dir_all(path.parent().expect("a file has a folder"))
            .expect("create the dump folder");
        std::fs::write(&path, &a.text).expect("write a dumped file");
    }
}

/// The host targets the environment asks for, and the container flavours when it
/// asks for compose (the compose target places them under `compose/`).
fn outputs(model: &Model) -> Vec<(&'static str, Output)> {
    let mut out = Vec::new();
    if model.has_target(Target::Nginx) {
        out.push(("nginx", nginx::emit(model)));
    }
    if model.has_target(Target::Compose) && !model.sites.is_empty() {
        out.push((
            "nginx-container",
            with_report(
                prefixed("compose/nginx", nginx::render(model, Flavor::Container)),
                nginx::render_output(model, Flavor::Container),
            ),
        ));
    }
    if model.has_target(Target::Pgbouncer) {
        out.push(("pgbouncer", pgbouncer::emit(model)));
    }
    if model.has_target(Target::Compose) && model.postgres.values().any(|p| p.pooler.is_some()) {
        out.push((
            "pgbouncer-container",
            with_report(
                prefixed(
                    "compose/pgbouncer",
                    pgbouncer::render(model, Flavor::Container),
                ),
                pgbouncer::render_output(model, Flavor::Container),
            ),
        ));
    }
    if model.has_target(Target::Systemd) {
        out.push(("systemd", systemd::emit(model)));
    }
    out
}

fn with_report(mut out: Output, report: Output) -> Output {
    out.unsupported = report.unsupported;
    out
}

#[test]
fn fixtures_snapshot() {
    let fixtures = fixtures();
    assert!(!fixtures.is_empty(), "no fixture projects found");
    for dir in fixtures {
        let fixture = dir
            .file_name()
            .expect("a fixture folder name")
            .to_string_lossy()
            .into_owned();
        for model in models(&dir) {
            for (target, out) in outputs(&model) {
                check_shape(&model, &out);
                dump(&fixture, &model, &out);
                insta::assert_snapshot!(
                    format!("{fixture}-{}-{target}", model.environment),
                    render(&out)
                );
            }
        }
    }
}

#[test]
fn output_is_deterministic() {
    for dir in fixtures() {
        for model in models(&dir) {
            for target in [Target::Nginx, Target::Pgbouncer, Target::Systemd] {
                let a = kiln_targets::emit(&model, target);
                let b = kiln_targets::emit(&model, target);
                assert_eq!(
                    a.artifacts,
                    b.artifacts,
                    "{} {} {target:?}",
                    dir.display(),
                    model.environment
                );
            }
        }
    }
}

/// No secret reaches a host file: the secrets' names appear only in comments, in the
/// environment file template as empty assignments, or as `<NAME>` placeholders.
#[test]
fn no_secret_values() {
    for dir in fixtures() {
        for model in models(&dir) {
            let mut all = systemd::emit(&model).artifacts;
            all.extend(nginx::emit(&model).artifacts);
            all.extend(pgbouncer::emit(&model).artifacts);
            for a in &all {
                for line in a.text.lines() {
                    if line.starts_with('#') || line.starts_with(';') {
                        continue;
                    }
                    if a.path.ends_with(".env.example") {
                        assert!(
                            line.is_empty() || line.ends_with('='),
                            "{}: {line:?} assigns a value",
                            a.path
                        );
                    }
                    if let Some(env) = line.strip_prefix("Environment=\"") {
                        let key = env.split('=').next().unwrap_or_default();
                        for service in model.services.values() {
                            if let Some(v) = service.env.get(key) {
                                assert!(!v.is_secret(), "{}: secret {key} in Environment=", a.path);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A smoke test to run one fixture by name.
#[test]
fn tulia_production_smoke() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tulia");
    let model = models(&dir)
        .into_iter()
        .find(|m| m.environment == "production")
        .expect("tulia has production");
    let nginx = nginx::emit(&model);
    let site = nginx
        .artifacts
        .iter()
        .find(|a| a.path == "nginx/sites/api.tulia.example.conf")
        .expect("a site file");
    assert!(
        site.text.contains("listen 443 ssl http2;"),
        "nginx 1.22 has no `http2 on`"
    );
    assert!(site.text.contains("return 308 https://$host$request_uri;"));
    let web = &model.services["web"];
    let ports = systemd::host_ports(&model)["web"].clone();
    assert_eq!(ports.len(), web.replicas as usize);
    for p in ports {
        assert!(
            site.text.contains(&format!("server 127.0.0.1:{p};")),
            "upstream lists instance {p}"
        );
    }
}

/// Corners the reference fixtures do not reach: version gates, collisions, escaping,
/// an app under /home, several sites and poolers. `edge` pins nginx 1.22 / OpenSSL 3.0 /
/// pgbouncer 1.18 (what Debian bookworm ships); `modern` nginx 1.27, OpenSSL 3.5,
/// pgbouncer 1.23, systemd 249; `legacy` nginx 1.18 and systemd 239.
const EDGE: &str = r#"
project edge {
    output "generated"
}

environment edge {
    tier production
    versions nginx="1.22" pgbouncer="1.18" openssl="3.0" systemd=252
    host {
        user edge
        root "/home/edge/app"
        writable "/home/edge/app/media" "/srv/edge/uploads"
        log-dir "/srv/edge/logs"
    }
    env {
        GREETING "50% off \"today\" C:\\tmp $HOME"
        EMPTY ""
    }
    secret SECRET_KEY kind=django-secret-key
    secret DB_PASSWORD kind=password
    postgres db {
        database edge_db
        user edge_user
        password DB_PASSWORD
        pooler pgbouncer mode=transaction max-prepared-statements=200 client-tls-sslmode=require server-tls-sslmode=verify-full
    }
    postgres analytics {
        database "edge-analytics"
        user edge_ro
        port 5433
        pooler pgbouncer mode=session default-pool-size=5 max-client-conn=50 port=6433
    }
    redis cache
    service web preset=django-web {
        run gunicorn "config.wsgi:application" workers=2 {
            args "--access-logformat" "%(h)s \"%(r)s\" $x"
        }
        port 6430
        replicas 3
        uses db cache
        volume media "/home/edge/app/media"
        cap-add "NET_BIND_SERVICE"
    }
    service ws preset=daphne {
        run daphne "config.asgi:application"
        port 8001
        replicas 2
        uses db
    }
    service beat preset=celery-beat {
        replicas 2
        uses cache
    }
    service tool {
        run command "manage-things" "--flag" "a b" ";"
        restart "always"
    }
    site "edge.example" upstream=web {
        aliases "www.edge.example"
        tls files cert="/etc/ssl/edge/fullchain.pem" key="/etc/ssl/edge/privkey.pem" {
            ecdh-curve "X25519MLKEM768:X25519:prime256v1:secp384r1"
            session-tickets #false
        }
        header X-Bad "costs $5"
        header Content-Security-Policy "default-src 'self'"
        listen https=8443 ipv6=#false
        gzip #true
        static "/static" root="/srv/edge/static"
        media "/media/" root="/srv/edge/media/" expires="7d"
        websocket "/ws/" upstream=ws
        location "/admin/" allow="10.0.0.0/8,192.168.0.0/16" max-body-size="100M" read-timeout="120s"
        rate-limit api rate="10r/s" burst=20
        rate-limit login rate="30r/m" burst=20 nodelay=#true paths="/login/,/admin/"
    }
    site "other.example" upstream=web {
        tls off
        rate-limit api rate="50r/s" burst=50
        deny-hidden #false
    }
    targets compose systemd nginx pgbouncer
}

environment modern extends=edge {
    versions nginx="1.27.3" pgbouncer="1.23" openssl="3.5" systemd=249
    site "edge.example" {
        tls files {
            stapling #true
        }
    }
}

environment legacy extends=edge {
    versions nginx="1.18" systemd=239
    targets systemd nginx
}
"#;

#[test]
fn edge_cases_snapshot() {
    let mut loader = |p: &str| {
        if p == "kiln.kdl" {
            Ok(EDGE.to_owned())
        } else {
            Err(format!("no file {p}"))
        }
    };
    for model in models_with("edge", &mut loader) {
        for (target, out) in outputs(&model) {
            check_shape(&model, &out);
            dump("edge", &model, &out);
            insta::assert_snapshot!(format!("edge-{}-{target}", model.environment), render(&out));
        }
    }
}
