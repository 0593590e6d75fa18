//! Rough timing of policy calls (not a test):
//!
//! ```text
//! cargo run --release -p kiln-policy-host --example call_latency -- [MODULE.wasm|.wat] [INPUT.json]
//! ```
//!
//! Without arguments it times `policies/examples/minimal.wat` on the host's test input. It
//! prints the load time (cold, then from the disk cache) and the latency of warm `check` calls.

use std::time::Instant;

use kiln_policy_host::{HostConfig, PolicyHost};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let module = args
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{root}/policies/examples/minimal.wat"));
    let input = match args.get(1) {
        Some(path) => std::fs::read(path)?,
        None => include_bytes!("../tests/input.json").to_vec(),
    };
    let bytes = std::fs::read(&module)?;
    let wasm = if module.ends_with(".wat") {
        wat::parse_bytes(&bytes)?.into_owned()
    } else {
        bytes
    };
    let cache = tempfile::tempdir()?;
    let config = HostConfig {
        cache: Some(kiln_policy_host::CacheDir::new(
            cache.path(),
            kiln_policy_host::CacheKey::random()?,
        )),
        ..HostConfig::default()
    };

    let started = Instant::now();
    let policy = PolicyHost::new(config.clone())?.load(&module, &wasm)?;
    println!(
        "load, compile ({:?}): {:?}",
        policy.cache_outcome(),
        started.elapsed()
    );
    let started = Instant::now();
    let policy = PolicyHost::new(config)?.load(&module, &wasm)?;
    println!(
        "load, new host ({:?}): {:?}",
        policy.cache_outcome(),
        started.elapsed()
    );
    println!(
        "policy {} {} (ABI {:?}), {} bytes, blake3 {}, input {} bytes",
        policy.meta().id,
        policy.meta().version,
        policy.abi_version(),
        wasm.len(),
        policy.module_hash().to_hex(),
        input.len()
    );

    let output = policy.check(&input)?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    if policy.has_validate_settings() {
        println!(
            "validate_settings({{}}): {:?}",
            policy.validate_settings(b"{}")?
        );
    }

    const CALLS: u32 = 2000;
    let started = Instant::now();
    for _ in 0..CALLS {
        policy.check(&input)?;
    }
    println!(
        "warm check: {:?} per call ({CALLS} calls)",
        started.elapsed() / CALLS
    );
    if policy.has_validate_settings() {
        // Almost no work in the module: what remains is the cost of a fresh instance.
        let started = Instant::now();
        for _ in 0..CALLS {
            policy.validate_settings(b"{}")?;
        }
        println!(
            "warm validate_settings({{}}): {:?} per call",
            started.elapsed() / CALLS
        );
    }
    Ok(())
}
