#!/usr/bin/env bash
# run.sh [-v] [ENV_DIR…]
#
# The conformance suite: every generated file must be accepted by the real program that reads
# it. Runs setup.sh once, then every validator whose target folder exists in each env output
# dir (…/generated/<env>). Default env dirs: fixtures/*/generated/*/ plus fixtures/*/<output>/*/
# for a fixture whose kiln.kdl sets another output folder.
#
# Prints one line per (env, validator): PASS/FAIL (the validator's messages follow a FAIL, its
# "info:" lines follow a PASS; -v shows everything), then exactly one summary line
#   conformance: N passed, M failed
# Exit 0 when nothing failed (also when there is nothing to check yet), 1 otherwise.
#
# Environment: KILN_CONFORMANCE_VENV (venv location), KILN_CONFORMANCE_SKIP_SETUP=1,
# KILN_CONFORMANCE_MAX_EXPOSURE=N (systemd), KILN_CONFORMANCE_KEEP=1 (keep temp dirs).
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=conformance
ROOT=$(cd "$CONF_DIR/../.." && pwd)

verbose=0
if [[ ${1:-} == -v ]]; then
  verbose=1
  shift
fi

envs=()
if (($#)); then
  for d in "$@"; do envs+=("$(env_dir_arg "$d")"); done
else
  shopt -s nullglob
  cands=("$ROOT"/fixtures/*/generated/*/)
  for kdl in "$ROOT"/fixtures/*/kiln.kdl; do
    out=$(sed -nE 's/^[[:space:]]*output[[:space:]]+"?([A-Za-z0-9._-]+)"?.*/\1/p' "$kdl" | head -n 1)
    if [[ -n $out && $out != generated ]]; then
      cands+=("$(dirname "$kdl")/$out"/*/)
    fi
  done
  shopt -u nullglob
  for d in "${cands[@]}"; do
    d=${d%/}
    for t in nginx pgbouncer postgresql systemd supervisor prometheus redis compose k8s; do
      if [[ -d $d/$t ]]; then
        envs+=("$d")
        break
      fi
    done
  done
fi

if ((${#envs[@]} == 0)); then
  echo "conformance: no generated env dirs found (fixtures/*/generated/*/): nothing to check yet"
  echo "conformance: 0 passed, 0 failed"
  exit 0
fi

if [[ -z ${KILN_CONFORMANCE_SKIP_SETUP:-} ]]; then
  bash "$CONF_DIR/setup.sh" || { echo "conformance: setup failed"; echo "conformance: 0 passed, 1 failed"; exit 1; }
fi

WORK=$(make_work)
pg_started=""
cleanup() {
  if [[ -n $pg_started ]]; then bash "$CONF_DIR/pg-cluster.sh" stop "$WORK/pg" || true; fi
  [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# One throwaway PKI and (if needed) one PostgreSQL cluster for the whole run.
bash "$CONF_DIR/pki.sh" "$WORK/pki"
export KILN_CONFORMANCE_PKI="$WORK/pki"

has_target() { # ENV VALIDATOR
  local e=$1
  case $2 in
  nginx) [[ -d $e/nginx || -d $e/compose/nginx ]] ;;
  pgbouncer) [[ -f $e/pgbouncer/pgbouncer.ini || -f $e/compose/pgbouncer/pgbouncer.ini ]] ;;
  systemd) [[ -d $e/systemd ]] ;;
  redis) [[ -n $(find "$e/redis" -name 'redis-*.conf' -print -quit 2>/dev/null) ]] ;;
  postgres) [[ -d $e/postgresql || -d $e/compose/postgres ]] ||
    [[ -n $(find "$e/k8s" -name 'configmap-*-init.yaml' -print -quit 2>/dev/null) ]] ;;
  logrotate) [[ -n $(find "$e/logrotate" -type f -print -quit 2>/dev/null) ]] ;;
  firewall) [[ -n $(find "$e/firewall" -type f -print -quit 2>/dev/null) ]] ;;
  fail2ban) [[ -n $(find "$e/fail2ban" -name '*.local' -print -quit 2>/dev/null) ]] ;;
  supervisor) [[ -n $(find "$e/supervisor" -name '*.conf' -print -quit 2>/dev/null) ]] ;;
  prometheus) [[ -f $e/prometheus/alerts.yml ]] ;;
  haproxy) [[ -n $(find "$e/compose/haproxy" -name '*.cfg' -print -quit 2>/dev/null) ]] ;;
  sentinel) grep -qs -- '^        exec redis-sentinel ' "$e/compose/compose.yaml" ;;
  compose) [[ -d $e/compose ]] ;;
  k8s) [[ -d $e/k8s ]] ;;
  static) [[ -n $(find "$e/k8s" -name 'configmap-*-static.yaml' -print -quit 2>/dev/null) ]] ||
    grep -qs -- ':/kiln-static' "$e/compose/compose.yaml" ;;
  yaml) [[ -n $(find "$e" -type f \( -name '*.yaml' -o -name '*.yml' \) -print -quit) ]] ;;
  esac
}

VALIDATORS=(nginx pgbouncer postgres systemd redis sentinel logrotate firewall fail2ban supervisor prometheus haproxy compose k8s static yaml)
for e in "${envs[@]}"; do
  if has_target "$e" pgbouncer; then
    mkdir -p "$WORK/pg"
    if bash "$CONF_DIR/pg-cluster.sh" start "$WORK/pg" 2>"$WORK/pg.err"; then
      pg_started=1
      export KILN_CONFORMANCE_PG="$WORK/pg"
    else
      sed 's/^/    /' "$WORK/pg.err"
      echo "conformance: could not start the shared PostgreSQL cluster; pgbouncer.sh starts its own"
    fi
    break
  fi
done

passed=0
failed=0
start=$SECONDS
for e in "${envs[@]}"; do
  rel=${e#"$ROOT"/}
  for v in "${VALIDATORS[@]}"; do
    has_target "$e" "$v" || continue
    log="$WORK/$passed-$failed-$v.log"
    t0=$SECONDS
    set +e
    bash "$CONF_DIR/$v.sh" "$e" >"$log" 2>&1 </dev/null
    r=$?
    set -e
    dt=$((SECONDS - t0))
    if ((r == 0)); then
      passed=$((passed + 1))
      printf 'PASS  %-9s %s (%ss)\n' "$v" "$rel" "$dt"
      if ((verbose)); then
        sed 's/^/    /' "$log"
      else
        grep '^info:' "$log" | sed 's/^info: /    /' || true
      fi
    else
      failed=$((failed + 1))
      printf 'FAIL  %-9s %s (%ss)%s\n' "$v" "$rel" "$dt" "$( ((r == 2)) && echo ' [the check could not run]')"
      sed 's/^/    /' "$log"
    fi
  done
done
echo "conformance: ${#envs[@]} env dirs checked in $((SECONDS - start))s"
echo "conformance: $passed passed, $failed failed"
((failed == 0))
