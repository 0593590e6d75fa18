#!/usr/bin/env bash
# systemd.sh [--max-exposure N] ENV_DIR
#
# `systemd-analyze verify` (systemd 252) over every unit in ENV_DIR/systemd inside a fake root
# (copy of /lib/systemd/system, stub executables for every Exec*= path, the units under
# /etc/systemd/system): any output at all fails, since bad keys only print "…, ignoring".
# Then `systemd-analyze security --offline=yes --root=…` per service: prints each exposure
# score as an "info:" line; with --max-exposure N (or $KILN_CONFORMANCE_MAX_EXPOSURE) a score
# above N fails. Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=systemd

max=(${KILN_CONFORMANCE_MAX_EXPOSURE:+--max-exposure "$KILN_CONFORMANCE_MAX_EXPOSURE"})
if [[ ${1:-} == --max-exposure ]]; then
  [[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage_die "--max-exposure needs a number"
  max=(--max-exposure "$2")
  shift 2
fi
ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
command -v systemd-analyze >/dev/null 2>&1 || usage_die "systemd-analyze not found"
[[ -d $ENV_DIR/systemd ]] || usage_die "no systemd/ in $ENV_DIR"

WORK=$(make_work)
cleanup() { [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT

"$VPY" "$CONF_DIR/systemd_check.py" "$ENV_DIR/systemd" "$WORK/root" "${max[@]}"
