#!/usr/bin/env bash
# pgbouncer.sh ENV_DIR
#
# Checks ENV_DIR/pgbouncer/pgbouncer.ini (host flavour) and ENV_DIR/compose/pgbouncer/
# pgbouncer.ini (compose flavour), whichever exist: pgbouncer 1.18 has no dry-run, so each one
# is started for real in front of a throwaway PostgreSQL 15 cluster (unknown keys and bad values
# are fatal at start and the pgbouncer log is printed), with only host-specific keys rewritten in
# a copy, and psql must get through it with SCRAM (SELECT 1, a transaction, the admin console).
#
# Uses the cluster in $KILN_CONFORMANCE_PG (started by run.sh via pg-cluster.sh) when set,
# otherwise starts and stops its own.
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=pgbouncer

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
command -v pgbouncer >/dev/null 2>&1 || usage_die "pgbouncer not installed"

inis=()
[[ -f $ENV_DIR/pgbouncer/pgbouncer.ini ]] && inis+=("$ENV_DIR/pgbouncer/pgbouncer.ini")
[[ -f $ENV_DIR/compose/pgbouncer/pgbouncer.ini ]] && inis+=("$ENV_DIR/compose/pgbouncer/pgbouncer.ini")
((${#inis[@]})) || usage_die "no pgbouncer/pgbouncer.ini or compose/pgbouncer/pgbouncer.ini in $ENV_DIR"

WORK=$(make_work)
own_pg=""
cleanup() {
  if [[ -n $own_pg ]]; then bash "$CONF_DIR/pg-cluster.sh" stop "$own_pg" || true; fi
  [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
ensure_pki "$WORK/pki"

pg=${KILN_CONFORMANCE_PG:-}
if [[ -z $pg || ! -f $pg/port || ! -f $pg/postgres.pid ]]; then
  own_pg="$WORK/pg"
  mkdir -p "$own_pg"
  bash "$CONF_DIR/pg-cluster.sh" start "$own_pg" || exit 2
  pg=$own_pg
fi

rc=0
i=0
for ini in "${inis[@]}"; do
  i=$((i + 1))
  echo "== ${ini#"$ENV_DIR"/}"
  w="$WORK/run$i"
  mkdir -p "$w"
  set +e
  "$VPY" "$CONF_DIR/pgbouncer_check.py" "$ini" "$w" "$pg" "$PKI" "$ENV_DIR"
  r=$?
  set -e
  if ((r == 2)); then exit 2; fi
  ((r == 0)) || rc=1
done
exit "$rc"
