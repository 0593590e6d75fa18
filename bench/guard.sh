#!/usr/bin/env bash
# Performance regression guard: counts instructions with callgrind (deterministic, unlike
# wall-clock time on a shared CI machine) and fails if a count exceeds its committed
# baseline (bench/baseline.txt) by more than 50%.
#
#   bench/guard.sh                  build the release binary, measure, compare with bench/baseline.txt
#   bench/guard.sh --update         measure and rewrite the baseline (after a deliberate change)
#   bench/guard.sh --profile dev    the same with the dev build (target/debug/kiln, which
#                                   `cargo test` has just built) and bench/baseline-dev.txt: what
#                                   CI runs, so that the guard costs no second build of wasmtime
#
# Set KILN=/path/to/kiln to measure an existing binary of that profile instead of building one.
# Needs valgrind (callgrind) and python3. About 1.5 minutes on 2 cores, plus the release
# build when it is not already there (cargo build --release -p kiln: ~13 min from scratch,
# mostly wasmtime).
#
# What it measures (KILN_CACHE_DIR is a fresh temporary folder):
#   check-tulia      `kiln compile --check` on an up-to-date copy of fixtures/tulia: it derives
#                    everything (parse, resolve, emit, every policy) and compares. Also
#                    asserts that, with a warm cache, it never runs Cranelift: policy outputs
#                    come from the result cache, and no module is compiled.
#   compile-gen10    `kiln compile` of bench/gen.py --envs 10 --services 1 --targets systemd,
#   compile-gen50    and of --envs 50: whole pipeline (parse, resolve, emit, all 10 standard
#                    policies, lock, compare with the disk), outputs already up to date.
#                    The policy modules are compiled beforehand into the cache under
#                    `valgrind --tool=none` (callgrind sees other CPU features than the
#                    machine, so it needs its own cache entries). The per-environment cost,
#                    (gen50 - gen10) / 40, is printed: it stays flat if the cost is linear.
#                    Both with KILN_NO_RESULT_CACHE=1: every policy is evaluated.
#   recompile-gen50  the same compile with the policy result cache warm (a pre-commit hook's
#                    common case: nothing or little changed).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
headroom_pct=150
update=0
profile=release
while [ $# -gt 0 ]; do
    case "$1" in
    --update) update=1 ;;
    --profile)
        profile="${2:-}"
        shift
        ;;
    *)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
    esac
    shift
done
case "$profile" in
release)
    baseline="$root/bench/baseline.txt"
    build=(cargo build --release -p kiln --quiet)
    default_kiln="$root/target/release/kiln"
    ;;
dev)
    baseline="$root/bench/baseline-dev.txt"
    build=(cargo build -p kiln --quiet)
    default_kiln="$root/target/debug/kiln"
    ;;
*)
    echo "guard: --profile is release or dev" >&2
    exit 2
    ;;
esac

for tool in valgrind callgrind_annotate python3; do
    command -v "$tool" >/dev/null || {
        echo "guard: $tool not found (apt-get install valgrind python3)" >&2
        exit 2
    }
done

if [ -z "${KILN:-}" ]; then
    (cd "$root" && "${build[@]}")
    KILN="$default_kiln"
fi
[ -x "$KILN" ] || {
    echo "guard: $KILN is not an executable" >&2
    exit 2
}

started=$SECONDS
tmp="$(mktemp -d "${TMPDIR:-/tmp}/kiln-guard.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export KILN_CACHE_DIR="$tmp/cache" KILN_CACHE_KEY_FILE="$tmp/cache-key" NO_COLOR=1

# Instruction count of one kiln run under callgrind; fails the guard if kiln fails.
count() {
    local name="$1"
    shift
    if ! valgrind --tool=callgrind --callgrind-out-file="$tmp/$name.cg" "$KILN" "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        echo "guard: kiln $* failed under valgrind:" >&2
        tail -n 30 "$tmp/$name.err" >&2
        exit 1
    fi
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$tmp/$name.err"
}

# An up-to-date copy of the tulia fixture.
cp -R "$root/fixtures/tulia" "$tmp/tulia"
rm -rf "$tmp/tulia/generated" "$tmp/tulia/kiln.lock"
"$KILN" compile "$tmp/tulia" >/dev/null 2>&1
"$KILN" compile --check "$tmp/tulia" >/dev/null 2>&1 || {
    echo "guard: tulia is not up to date right after compiling it" >&2
    exit 1
}

# Generated projects, compiled once so that the measured compile finds its outputs in place.
for n in 10 50; do
    python3 "$root/bench/gen.py" "$tmp/gen$n" --envs "$n" --services 1 --targets systemd
    "$KILN" compile "$tmp/gen$n" >/dev/null 2>&1 || {
        echo "guard: the generated project (--envs $n) does not compile:" >&2
        "$KILN" compile "$tmp/gen$n" >&2 || true
        exit 1
    }
done

declare -A measured
measured[check-tulia]="$(count check-tulia compile --check "$tmp/tulia")"
hits="$(callgrind_annotate --auto=no --threshold=100 "$tmp/check-tulia.cg" 2>/dev/null | grep -ciE 'regalloc2|cranelift_codegen::machinst|cranelift_codegen::context' || true)"
if [ "$hits" != 0 ]; then
    echo "guard: FAIL: \`kiln compile --check\` on an up-to-date project with a warm cache ran Cranelift" >&2
    echo "       (policy outputs must come from the result cache):" >&2
    callgrind_annotate --auto=no --threshold=100 "$tmp/check-tulia.cg" 2>/dev/null | grep -iE 'regalloc2|cranelift_codegen::machinst|cranelift_codegen::context' | head -5 >&2
    exit 1
fi

# The module cache as valgrind's CPU sees it, filled by the fastest valgrind tool.
KILN_NO_RESULT_CACHE=1 valgrind --tool=none "$KILN" compile "$tmp/gen10" >/dev/null 2>&1
measured[compile-gen10]="$(KILN_NO_RESULT_CACHE=1 count compile-gen10 compile "$tmp/gen10")"
measured[compile-gen50]="$(KILN_NO_RESULT_CACHE=1 count compile-gen50 compile "$tmp/gen50")"

# The result cache was filled by the compiles above (outputs are the same on any CPU).
measured[recompile-gen50]="$(count recompile-gen50 compile "$tmp/gen50")"
names=(check-tulia compile-gen10 compile-gen50 recompile-gen50)
per_env=$(((measured[compile-gen50] - measured[compile-gen10]) / 40))

if [ "$update" = 1 ]; then
    {
        echo "# Instruction counts (callgrind) of bench/guard.sh, on the $profile build."
        echo "# bench/guard.sh fails when a measurement exceeds its value here by more than 50%."
        echo "# Refresh with bench/guard.sh --update after a deliberate change (new policies, rules, targets)."
        echo "# Recorded $(date -u +%Y-%m-%d) with kiln $("$KILN" --version 2>/dev/null | awk '{print $NF}')."
        for name in "${names[@]}"; do
            echo "$name ${measured[$name]}"
        done
    } >"$baseline"
    echo "guard: wrote $baseline"
fi

declare -A base
while read -r name value; do
    case "$name" in "" | "#"*) continue ;; esac
    base[$name]="$value"
done <"$baseline"

status=0
printf '%-15s %15s %15s %7s\n' measurement instructions baseline ratio
for name in "${names[@]}"; do
    m="${measured[$name]}"
    b="${base[$name]:-}"
    if [ -z "$b" ]; then
        printf '%-15s %15s %15s %7s  no baseline (run --update)\n' "$name" "$m" - -
        status=1
        continue
    fi
    ratio="$(python3 -c "print(f'{$m / $b:.2f}')")"
    verdict=ok
    if [ $((m * 100)) -gt $((b * headroom_pct)) ]; then
        verdict="FAIL: over ${headroom_pct}% of the baseline"
        status=1
    elif [ $((m * headroom_pct)) -lt $((b * 100)) ]; then
        verdict="ok (much faster: consider --update)"
    fi
    printf '%-15s %15s %15s %7s  %s\n' "$name" "$m" "$b" "$ratio" "$verdict"
done
echo "per environment (gen50 - gen10) / 40: $per_env instructions"
echo "guard: $((SECONDS - started)) s"
exit "$status"
