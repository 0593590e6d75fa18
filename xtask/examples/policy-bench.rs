//! Policy evaluation, WebAssembly vs native: every standard policy over every
//! environment of a project, on the same input bytes.
//!
//!     cargo run --release -p xtask --example policy-bench -- PROJECT_DIR [--reps N]
//!
//! For each policy: the median time of one `LoadedPolicy::check` call (fresh
//! instance, copy in, `kiln_check` with fuel, parse and validate the output),
//! and natively through the same crate compiled as an rlib: parse the input
//! (`serde_json::from_slice::<Input>`), `check`, serialize the findings (what
//! the wasm side does inside the module), and `check` alone. Also checks that
//! both give the same findings.

use std::time::{Duration, Instant};

use kiln_policy_sdk::Input;
use xtask::{fmt, median};

fn main() {
    let (dir, reps) = xtask::args("policy-bench PROJECT_DIR [--reps N]", 20);
    let b = xtask::load_and_build(&dir);
    assert!(!b.has_errors(), "the project has errors");
    let host = xtask::host();
    let std = xtask::stdlib(&host);

    println!(
        "{} environments of {}, {} repetitions per call (medians per call)\n",
        b.envs.len(),
        dir.display(),
        reps
    );
    println!(
        "{:<10} {:>9} {:>11} {:>11} {:>12} {:>8} {:>8} {:>11}",
        "policy", "input", "wasm", "native", "native check", "ratio", "findings", "empty call"
    );
    let (mut total_wasm, mut total_native) = (Duration::ZERO, Duration::ZERO);
    for p in &std {
        let id = p.id().to_owned();
        let native = xtask::native(&id).unwrap_or_else(|| panic!("no native check for {id}"));
        let (mut wasm_t, mut native_t, mut check_t) = (Vec::new(), Vec::new(), Vec::new());
        let (mut input_len, mut findings) = (0, 0);
        for env in &b.envs {
            let model = env.model.as_ref().expect("model");
            let spec = model.to_json();
            let doc = kiln::policy::input_document(p, model, &spec, &env.artifacts, None);
            let bytes = serde_json::to_vec(&doc).expect("json");
            input_len = input_len.max(bytes.len());
            let out = p.module.check(&bytes).expect("policy runs");
            let input: Input = serde_json::from_slice(&bytes).expect("input");
            let native_findings = native(&input);
            assert_eq!(
                out.findings.len(),
                native_findings.len(),
                "{id} on {}: wasm and native disagree",
                env.name
            );
            for (w, n) in out.findings.iter().zip(&native_findings) {
                assert_eq!(
                    (&w.rule, &w.path),
                    (&n.rule, &n.path),
                    "{id} on {}",
                    env.name
                );
            }
            findings += out.findings.len();
            for _ in 0..reps {
                let t = Instant::now();
                let out = p.module.check(&bytes).expect("policy runs");
                wasm_t.push(t.elapsed());
                std::hint::black_box(out);

                let t = Instant::now();
                let input: Input = serde_json::from_slice(&bytes).expect("input");
                let f = native(&input);
                let json = serde_json::to_vec(&f).expect("json");
                native_t.push(t.elapsed());
                std::hint::black_box(json);

                let t = Instant::now();
                std::hint::black_box(native(&input));
                check_t.push(t.elapsed());
            }
        }
        // The fixed cost of a call: an input with an empty spec.
        let empty = format!(
            r#"{{"abi":"1.0","policy":{{"id":"{id}","settings":{{}}}},"environment":"e","tier":"production","spec":{{}}}}"#
        );
        let empty_t: Vec<Duration> = (0..reps.max(20))
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(p.module.check(empty.as_bytes()).ok());
                t.elapsed()
            })
            .collect();
        let (w, n, c) = (median(wasm_t), median(native_t), median(check_t));
        total_wasm += w;
        total_native += n;
        println!(
            "{:<10} {:>7} K {:>11} {:>11} {:>12} {:>7.1}x {:>8} {:>11}",
            id,
            input_len / 1024,
            fmt(w),
            fmt(n),
            fmt(c),
            w.as_secs_f64() / n.as_secs_f64(),
            findings,
            fmt(median(empty_t))
        );
    }
    println!(
        "{:<10} {:>9} {:>11} {:>11} {:>12} {:>7.1}x",
        "all 10",
        "",
        fmt(total_wasm),
        fmt(total_native),
        "",
        total_wasm.as_secs_f64() / total_native.as_secs_f64()
    );
}
