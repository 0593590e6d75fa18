//! Helpers shared by kiln's in-process benchmarks (`xtask/examples/*.rs`, see
//! bench/README.md): load and build a project from disk the way the CLI does,
//! start the policy host, and the native entry points of the standard policies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln::build::{self, Build};
use kiln::policy::Policy;
use kiln_policy_host::{HostConfig, PolicyHost};
use kiln_policy_sdk::{Finding, Input};

/// A standard policy's `check`, called natively (the std crates are rlibs too).
pub type NativeCheck = fn(&Input) -> Vec<Finding>;

/// Every standard policy by id, with its native `check`.
pub const NATIVE: &[(&str, NativeCheck)] = &[
    ("http", std_http::check),
    ("net", std_net::check),
    ("nginx", std_nginx::check),
    ("pg", std_pg::check),
    ("pgbouncer", std_pgbouncer::check),
    ("redis", std_redis::check),
    ("run", std_run::check),
    ("secret", std_secret::check),
    ("tls", std_tls::check),
    ("web", std_web::check),
    ("worker", std_worker::check),
];

/// The native `check` of the standard policy `id`.
pub fn native(id: &str) -> Option<NativeCheck> {
    NATIVE.iter().find(|(n, _)| *n == id).map(|(_, f)| *f)
}

/// Reads `dir/kiln.kdl` and its includes from disk.
pub fn load(dir: &Path) -> (kiln_core::project::Project, Vec<kiln_core::Diagnostic>) {
    let mut loader = |rel: &str| -> Result<String, String> {
        std::fs::read_to_string(dir.join(rel)).map_err(|e| e.to_string())
    };
    kiln_core::project::load(&mut loader)
}

/// Loads and builds every environment (resolve + emit), without policies.
pub fn load_and_build(dir: &Path) -> Build {
    let (project, diags) = load(dir);
    build::build(project, diags, &[])
}

/// A policy host configured as the CLI configures it (cache in `KILN_CACHE_DIR`, …).
pub fn host() -> PolicyHost {
    PolicyHost::new(HostConfig {
        cache: kiln_policy_host::CacheDir::for_user(),
        ..HostConfig::default()
    })
    .expect("policy host")
}

/// The embedded standard library, loaded through `host`.
pub fn stdlib(host: &PolicyHost) -> Vec<Arc<Policy>> {
    kiln::stdlib::load(host).expect("standard library loads")
}

/// The command line of an example: `PROJECT_DIR [--reps N]`, `reps` when not given.
pub fn args(usage: &str, reps: usize) -> (PathBuf, usize) {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut reps) = (None, reps);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().and_then(|r| r.parse().ok()).expect("--reps N"),
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    (dir.unwrap_or_else(|| panic!("usage: {usage}")), reps)
}

/// The median of some timings.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `1.23 ms` / `456 µs`.
pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
