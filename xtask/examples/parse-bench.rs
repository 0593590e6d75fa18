//! Throughput of kiln's KDL reader (`kiln_core::reader`) on large inputs of one shape each:
//! comments, nodes, strings. Prints MB/s, median of `--reps` runs (default 5).
//!
//!   cargo run --release -p xtask --example parse-bench [-- --mb 50 --reps 5]

use std::time::Instant;

use kiln_core::FileId;
use xtask::median;

fn main() {
    let mut mb = 50usize;
    let mut reps = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut n = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .expect("parse-bench [--mb N] [--reps N]")
        };
        match a.as_str() {
            "--mb" => mb = n(),
            "--reps" => reps = n(),
            _ => panic!("parse-bench [--mb N] [--reps N]"),
        }
    }
    let target = mb << 20;
    let shapes: [(&str, &str); 5] = [
        (
            "line comments",
            "// a comment line of about the length lines have in specs\n",
        ),
        (
            "block comments",
            "/* a block comment of about the same length, once more */\n",
        ),
        (
            "nodes",
            "    service web preset=django-web { replicas 3; port 8000 }\n",
        ),
        (
            "strings",
            "    env { SETTING \"a quoted value with \\\"escapes\\\" and more text\" }\n",
        ),
        (
            "multi-line strings",
            "    csp \"\"\"\n        default-src 'self'; script-src 'self'\n        \"\"\"\n",
        ),
    ];
    println!("{:<20} {:>10} {:>12}", "shape", "MB", "MB/s (median)");
    for (name, line) in shapes {
        let body = line.repeat(target / line.len());
        let text = match name {
            "line comments" | "block comments" => body,
            _ => format!("environment e {{\n{body}}}\n"),
        };
        let times = (0..reps)
            .map(|_| {
                let started = Instant::now();
                let read = kiln_core::reader::read(&text, FileId(0)).expect("the input reads");
                let took = started.elapsed();
                std::hint::black_box(read);
                took
            })
            .collect();
        let mb = text.len() as f64 / 1e6;
        println!(
            "{name:<20} {mb:>10.1} {:>12.0}",
            mb / median(times).as_secs_f64()
        );
    }
}
