//! Where a full compile's time goes, phase by phase, in one process:
//!
//!     cargo run --release -p xtask --example phases -- PROJECT_DIR [--reps N]
//!
//! Phases: load (read + parse every spec file), build (resolve + emit every
//! environment, in parallel), stdlib (load the standard policies: compile or
//! fetch from the cache), policies (every policy over every environment, in
//! parallel), lock (hash every output). Prints the median of N repetitions
//! (stdlib: first repetition only, later ones are in memory) and the CPU time
//! of the process. `RAYON_NUM_THREADS=1` gives single-core costs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kiln::policy::Date;
use xtask::{fmt, median};

fn cpu_time() -> Duration {
    // utime + stime of this process, from /proc (Linux only; zero elsewhere).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields after the command name: state is index 0, utime 11, stime 12; 100 ticks/s.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Resident and peak resident memory of this process, in MiB (Linux only).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kib("VmRSS:") / 1024, kib("VmHWM:") / 1024)
}

fn main() {
    let (dir, reps) = xtask::args("phases PROJECT_DIR [--reps N]", 5);
    let host = xtask::host();
    let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut std = None;
    let mut envs = 0;
    let mut memory = None;
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    for _ in 0..reps {
        let t = Instant::now();
        let (project, diags) = xtask::load(&dir);
        times.entry("1 load").or_default().push(t.elapsed());

        let t = Instant::now();
        let mut b = kiln::build::build(project, diags, &[]);
        times.entry("2 build").or_default().push(t.elapsed());
        let after_build = rss();
        assert!(!b.has_errors(), "the project has errors");
        envs = b.envs.len();

        if std.is_none() {
            let t = Instant::now();
            std = Some(xtask::stdlib(&host));
            times.entry("3 stdlib").or_default().push(t.elapsed());
        }

        let t = Instant::now();
        kiln::policy::run(
            &mut b,
            std.as_deref().expect("loaded"),
            &BTreeMap::new(),
            Date(2000, 1, 1),
        );
        times.entry("4 policies").or_default().push(t.elapsed());
        let after_policies = rss();
        memory = Some((after_build, after_policies));

        let t = Instant::now();
        let lock = b.lock(&kiln::stdlib::lock_entries());
        std::hint::black_box(lock.render());
        times.entry("5 lock").or_default().push(t.elapsed());
    }
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    println!("{} ({envs} environments), median of {reps}:", dir.display());
    let mut total = Duration::ZERO;
    for (name, t) in times {
        let m = median(t);
        total += m;
        println!(
            "  {:<12} {:>10}  {:>10} per environment",
            &name[2..],
            fmt(m),
            fmt(m / envs as u32)
        );
    }
    println!("  {:<12} {:>10}", "total", fmt(total));
    if let Some(((b, bp), (p, pp))) = memory {
        println!(
            "  memory: {b} MiB resident after build (peak {bp}), {p} MiB after policies (peak {pp})"
        );
    }
    println!(
        "  process: {} wall, {} CPU for {reps} repetitions ({:.2} cores busy)",
        fmt(wall),
        fmt(cpu),
        cpu.as_secs_f64() / wall.as_secs_f64()
    );
}
