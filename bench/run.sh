#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md (wall-clock medians with hyperfine, peak memory with
# /usr/bin/time -v, policy evaluation WebAssembly vs native).
#
#   bench/run.sh [SECTION...]     sections: check fixtures cold scale policies (default: all)
#
# Environment: KILN=/path/to/kiln (default: cargo build --release -p kiln), SCALE="10 100 300
# 1000" (environments of the generated projects), RUNS (hyperfine runs, default 20; fewer at
# large N). Results are printed and exported as JSON/Markdown under $OUT (default:
# target/bench/). Needs hyperfine (apt-get install hyperfine), python3, GNU time.
#
# Everything runs on copies in a temporary folder: fixtures/ is never written.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(check fixtures cold scale policies)
RUNS="${RUNS:-20}"
SCALE="${SCALE:-10 100 300 1000}"
OUT="${OUT:-$root/target/bench}"
mkdir -p "$OUT"

for tool in hyperfine python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "bench: $tool not found (apt-get install hyperfine time python3)" >&2
        exit 2
    }
done
if [ -z "${KILN:-}" ]; then
    (cd "$root" && cargo build --release -p kiln --quiet)
    KILN="$root/target/release/kiln"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export NO_COLOR=1
warm="$tmp/cache-warm"

machine() {
    echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)," \
        "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other processes compete for the cores when > 0)"
}

# An up-to-date copy of a fixture, compiled with the warm cache.
fixture() {
    local name="$1"
    cp -R "$root/fixtures/$name" "$tmp/$name"
    rm -rf "$tmp/$name/generated" "$tmp/$name/kiln.lock"
    KILN_CACHE_DIR="$warm" "$KILN" compile "$tmp/$name" >/dev/null 2>&1
}

peak_rss() {
    # Peak resident memory (MiB) and CPU seconds of one run.
    /usr/bin/time -f '%M %U %S' "$@" 2>&1 >/dev/null | tail -n 1 |
        awk '{printf "peak RSS %.0f MiB, CPU %.2f s (user %.2f + sys %.2f)\n", $1 / 1024, $2 + $3, $2, $3}'
}

FIXTURES=(tulia tdah taskassistant ascai)
for f in "${FIXTURES[@]}"; do fixture "$f"; done
machine | tee "$OUT/machine.txt"

for section in "${sections[@]}"; do
    case "$section" in
    check)
        echo "== compile --check, up to date (fixtures/tulia)"
        KILN_CACHE_DIR="$warm" hyperfine -N --warmup 5 --runs 100 \
            --export-json "$OUT/check.json" --export-markdown "$OUT/check.md" \
            "$KILN compile --check $tmp/tulia"
        KILN_CACHE_DIR="$warm" peak_rss "$KILN" compile --check "$tmp/tulia"
        ;;
    fixtures)
        echo "== full compile, warm policy cache (outputs up to date: nothing written but the lock)"
        cmds=()
        for f in "${FIXTURES[@]}"; do cmds+=("$KILN compile $tmp/$f"); done
        KILN_CACHE_DIR="$warm" hyperfine -N --warmup 2 --runs "$RUNS" \
            --export-json "$OUT/fixtures-warm.json" --export-markdown "$OUT/fixtures-warm.md" "${cmds[@]}"
        echo "== the same, every policy evaluated (KILN_NO_RESULT_CACHE=1: module cache warm, no memoized outputs)"
        KILN_CACHE_DIR="$warm" KILN_NO_RESULT_CACHE=1 hyperfine -N --warmup 2 --runs "$RUNS" \
            --export-json "$OUT/fixtures-warm-eval.json" "${cmds[@]}"
        for f in "${FIXTURES[@]}"; do
            echo -n "$f: "
            KILN_CACHE_DIR="$warm" peak_rss "$KILN" compile "$tmp/$f"
        done
        ;;
    cold)
        echo "== full compile, cold policy cache (every standard module compiled by Cranelift)"
        cold="$tmp/cache-cold"
        cmds=()
        for f in "${FIXTURES[@]}"; do cmds+=("$KILN compile $tmp/$f"); done
        KILN_CACHE_DIR="$cold" hyperfine -N --runs 5 --prepare "rm -rf $cold" \
            --export-json "$OUT/fixtures-cold.json" --export-markdown "$OUT/fixtures-cold.md" "${cmds[@]}"
        rm -rf "$cold"
        echo -n "tulia, cold: "
        KILN_CACHE_DIR="$cold" peak_rss "$KILN" compile "$tmp/tulia"
        ;;
    scale)
        echo "== generated projects: N environments x 8 services, all targets, whole standard library"
        for n in $SCALE; do
            python3 "$root/bench/gen.py" "$tmp/gen$n" --envs "$n" >/dev/null
            echo -n "N=$n first compile (writes every file): "
            KILN_CACHE_DIR="$warm" peak_rss "$KILN" compile "$tmp/gen$n"
            runs=$((n >= 1000 ? 2 : n >= 300 ? 3 : 5))
            KILN_CACHE_DIR="$warm" hyperfine -N --warmup 0 --runs "$runs" \
                --export-json "$OUT/gen$n.json" "$KILN compile $tmp/gen$n"
            echo -n "N=$n recompile: "
            KILN_CACHE_DIR="$warm" peak_rss "$KILN" compile "$tmp/gen$n"
            echo -n "N=$n recompile, every policy evaluated (KILN_NO_RESULT_CACHE=1): "
            KILN_CACHE_DIR="$warm" KILN_NO_RESULT_CACHE=1 peak_rss "$KILN" compile "$tmp/gen$n"
            KILN_CACHE_DIR="$warm" hyperfine -N --warmup 1 --runs 20 \
                --export-json "$OUT/gen$n-check.json" "$KILN compile --check $tmp/gen$n"
            rm -rf "$tmp/gen$n"
        done
        ;;
    policies)
        echo "== policy evaluation: WebAssembly (LoadedPolicy::check) vs native (the same crates as rlibs)"
        (cd "$root" && cargo build --release -p xtask --example policy-bench --quiet)
        for f in tulia taskassistant; do
            KILN_CACHE_DIR="$warm" "$root/target/release/examples/policy-bench" "$tmp/$f" --reps 20
            echo
        done
        python3 "$root/bench/gen.py" "$tmp/gen10" --envs 10 >/dev/null
        KILN_CACHE_DIR="$warm" "$root/target/release/examples/policy-bench" "$tmp/gen10" --reps 5
        ;;
    *)
        echo "bench: unknown section $section (check fixtures cold scale policies)" >&2
        exit 2
        ;;
    esac
done
machine | tail -n 1
