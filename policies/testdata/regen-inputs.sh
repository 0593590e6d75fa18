#!/usr/bin/env bash
# Regenerates policies/testdata/inputs/*.json: the policy input documents (spec and rendered
# files, as kiln's host sends them) of the clean project, which the standard policies' native
# tests read. Run it after the model or an emitter changes:
#
#   policies/testdata/regen-inputs.sh
#
# Needs jq and a kiln that compiles the clean project without findings (it builds one with
# cargo). The documents hold no secret values: the clean project declares its secrets.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$root"
command -v jq >/dev/null || { echo "regen-inputs.sh: jq not found" >&2; exit 2; }
cargo build -q -p kiln
kiln="$root/target/debug/kiln"

work="$(mktemp -d "${TMPDIR:-/tmp}/kiln-testdata.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp policies/testdata/clean/kiln.kdl "$work/kiln.kdl"
"$kiln" compile "$work" --color never >/dev/null 2>"$work/compile.log" || {
    cat "$work/compile.log" >&2
    echo "regen-inputs.sh: the clean project does not compile cleanly" >&2
    exit 1
}

mkdir -p policies/testdata/inputs
for env in production; do
    out="$work/generated/$env"
    "$kiln" inspect "$work" --env "$env" --color never >"$work/spec.json"
    artifacts="[]"
    while IFS= read -r path; do
        artifacts="$(jq --arg path "$path" --rawfile text "$out/$path" \
            '. + [{target: ($path | split("/")[0]), path: $path, text: $text}]' <<<"$artifacts")"
    done < <(cd "$out" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
    jq -n --arg env "$env" --slurpfile spec "$work/spec.json" --argjson artifacts "$artifacts" \
        '{abi: "1.0", policy: {id: "clean", settings: {}}, environment: $env, tier: $spec[0].tier,
          spec: $spec[0], artifacts: $artifacts}' >"policies/testdata/inputs/clean-$env.json"
    echo "wrote policies/testdata/inputs/clean-$env.json"
done
