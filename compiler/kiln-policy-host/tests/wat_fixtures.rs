//! Data-driven tests of the host against hand-written modules in `tests/wat/*.wat`.
//!
//! Each fixture starts with comment lines that say how to run it and what must happen:
//!
//! ```text
//! ;; call: check | load | validate-settings   (default: check)
//! ;; fuel: 10000000 | max                     (default: HostConfig's)
//! ;; backstop-ms: 300                         (default: HostConfig's)
//! ;; expect: ok | <PolicyErrorKind variant>   (required)
//! ```
//!
//! The `expect` line is checked mechanically; the full rendering of the outcome (the findings,
//! or the error's message and help) is an insta snapshot in `tests/snapshots/`. Adding a case
//! means adding a `.wat` file and accepting its snapshot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_policy_host::{HostConfig, PolicyError, PolicyHost};

/// No fixture may take longer than this, whatever its module does.
const TIME_BOUND: Duration = Duration::from_secs(8);

const INPUT: &[u8] = include_bytes!("input.json");

struct Directives {
    call: String,
    fuel: Option<u64>,
    backstop: Option<Duration>,
    expect: String,
}

fn directives(text: &str, name: &str) -> Directives {
    let mut d = Directives {
        call: "check".into(),
        fuel: None,
        backstop: None,
        expect: String::new(),
    };
    for line in text.lines().map_while(|l| l.strip_prefix(";;")) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "call" => d.call = value.to_owned(),
            "fuel" if value == "max" => d.fuel = Some(u64::MAX),
            "fuel" => d.fuel = Some(value.parse().expect("`fuel` is a number or `max`")),
            "backstop-ms" => {
                d.backstop = Some(Duration::from_millis(
                    value.parse().expect("`backstop-ms` is a number"),
                ))
            }
            "expect" => d.expect = value.to_owned(),
            _ => {}
        }
    }
    assert!(!d.expect.is_empty(), "{name}: no `;; expect:` line");
    d
}

/// The variant name of an error kind (`OutOfFuel`), from its `Debug` text.
fn variant(err: &PolicyError) -> String {
    format!("{:?}", err.kind())
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn render_error(err: &PolicyError) -> String {
    format!(
        "error: {}\nmessage: {err}\nhelp: {}\n",
        variant(err),
        err.help()
    )
}

/// Runs one module as its directives say; returns the outcome kind and its rendering.
fn run(name: &str, wasm: &[u8], d: &Directives) -> (String, String) {
    let mut config = HostConfig::default();
    if let Some(fuel) = d.fuel {
        config.fuel_per_call = fuel;
    }
    if let Some(backstop) = d.backstop {
        config.wall_clock_backstop = backstop;
    }
    let host = PolicyHost::new(config).expect("wasmtime works on this machine");
    let policy = match host.load(name, wasm) {
        Ok(policy) => policy,
        Err(err) => return (variant(&err), render_error(&err)),
    };
    let result = match d.call.as_str() {
        "load" => Ok(format!(
            "loaded: {} {} (ABI {:?})\n",
            policy.meta().id,
            policy.meta().version,
            policy.abi_version()
        )),
        "check" => policy.check(INPUT).map(|out| {
            format!(
                "findings: {}\n",
                serde_json::to_string_pretty(&out.findings).expect("findings serialize")
            )
        }),
        "validate-settings" => policy
            .validate_settings(br#"{"max-age":60}"#)
            .map(|errors| format!("settings errors: {errors:#?}\n")),
        other => panic!("{name}: unknown `call: {other}`"),
    };
    match result {
        Ok(text) => ("ok".into(), text),
        Err(err) => (variant(&err), render_error(&err)),
    }
}

fn check(path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let d = directives(&text, &name);
    let wasm = wat::parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let started = Instant::now();
    let (kind, rendering) = run(&name, &wasm, &d);
    let elapsed = started.elapsed();
    eprintln!("{name}: {kind} in {elapsed:?}");
    assert!(elapsed < TIME_BOUND, "{name} took {elapsed:?}");
    assert_eq!(
        kind, d.expect,
        "{name}: expected {}, got:\n{rendering}",
        d.expect
    );
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
        description => format!("tests/wat/{name}"),
        omit_expression => true,
    }, {
        insta::assert_snapshot!(path.file_stem().unwrap().to_string_lossy().as_ref(), rendering);
    });
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wat");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/wat exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wat"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn wat_fixtures() {
    let paths = fixtures();
    assert!(paths.len() > 20, "the fixtures are missing");
    for path in paths {
        check(&path);
    }
}

/// The smoke test: one fixture, runnable by name.
#[test]
fn smoke() {
    check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wat/finding-reported.wat"));
}
