#!/usr/bin/env bash
# Checks every standard rule's docs example through the real compiler: each `example` applied
# to the clean project as `environment production extends=base { <example> }` must give exactly
# one finding, of that rule; each `instead` must give none of that rule. The clean project
# itself must give no finding at all. (The same check as the lead's docs harness, runnable
# before it exists.)
#
#   policies/testdata/check-examples.sh [RULE…]
#
# Needs jq, and stdlib/policies/*.wasm built from the current sources (policies/build.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$root"
command -v jq >/dev/null || { echo "check-examples.sh: jq not found" >&2; exit 2; }
cargo build -q -p kiln
kiln="$root/target/debug/kiln"
clean="$root/policies/testdata/clean/kiln.kdl"
work="$(mktemp -d "${TMPDIR:-/tmp}/kiln-examples.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The clean project without its production environment (the last block of the file).
head_lines="$(grep -n '^environment production extends=base {' "$clean" | cut -d: -f1)"
head -n "$((head_lines - 1))" "$clean" >"$work/head.kdl"

# Prints `code` of every policy finding (codes shaped `group.rule`), one per line; a spec
# error (any other error) prints `spec-error:CODE`.
findings() {
    "$kiln" compile "$1" --color never --format json 2>/dev/null |
        jq -r '.diagnostics[] | if (.code | test("^[a-z0-9-]+\\.[a-z0-9-]+$")) then .code
               elif .severity == "error" then "spec-error:" + .code else empty end' || true
}

project() {
    rm -rf "$work/p" && mkdir -p "$work/p"
    { cat "$work/head.kdl"; printf 'environment production extends=base {\n%s\n}\n' "$1"; } >"$work/p/kiln.kdl"
    echo "$work/p"
}

status=0
got="$(findings "$(project "tier production")")"
if [ -n "$got" ]; then
    echo "FAIL clean project: $(echo "$got" | tr '\n' ' ')"
    status=1
else
    echo "ok   clean project: no findings"
fi

for meta in policies/std-*/policy.json; do
    count="$(jq '.rules | length' "$meta")"
    for i in $(seq 0 $((count - 1))); do
        rule="$(jq -r ".rules[$i].id" "$meta")"
        if [ $# -gt 0 ] && [[ " $* " != *" $rule "* ]]; then
            continue
        fi
        example="$(jq -r ".rules[$i].docs.example" "$meta")"
        instead="$(jq -r ".rules[$i].docs.instead" "$meta")"
        got="$(findings "$(project "$example")")"
        if [ "$got" = "$rule" ]; then
            echo "ok   $rule example: one finding"
        else
            echo "FAIL $rule example: [$(echo "$got" | tr '\n' ' ')]"
            status=1
        fi
        all="$(findings "$(project "$instead")")"
        got="$(grep -cx -e "$rule" -e 'spec-error:.*' <<<"$all" || true)"
        if [ "$got" = 0 ]; then
            echo "ok   $rule instead: none"
        else
            echo "FAIL $rule instead: [$(echo "$all" | tr '\n' ' ')]"
            status=1
        fi
    done
done
exit $status
