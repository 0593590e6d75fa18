#!/usr/bin/env bash
# logrotate.sh ENV_DIR
#
# Every ENV_DIR/logrotate/* must be accepted and obeyed by the real logrotate. A copy gets only
# its host paths rewritten (the log folder to a temp folder, `su` to the user running the
# check), then:
#   1. `logrotate -d` (dry run) reports no error;
#   2. a forced rotation of a log the app still writes: the log is kept in place and empty
#      (copytruncate), its old lines in LOG.1 (delaycompress: not yet compressed);
#   3. a second forced rotation compresses that one (LOG.2.gz) and keeps at most `rotate`.
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=logrotate

ENV_DIR=$(env_dir_arg "${1:-}")
command -v logrotate >/dev/null || [[ -x /usr/sbin/logrotate ]] || usage_die "logrotate not installed"
export PATH="$PATH:/usr/sbin"
shopt -s nullglob
files=("$ENV_DIR"/logrotate/*)
((${#files[@]})) || usage_die "no logrotate/ files in $ENV_DIR"

WORK=$(make_work)
cleanup() { [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT

rc=0
me=$(id -un)
my_group=$(id -gn)
for f in "${files[@]}"; do
  name=$(basename "$f")
  w="$WORK/$name"
  mkdir -p "$w/logs"
  chmod 755 "$w" "$w/logs"
  sed -E -e "s|^[^#[:space:]][^{]*/\*\.log \{|$w/logs/*.log {|" \
    -e "s|^([[:space:]]*)su .*|\1su $me $my_group|" "$f" >"$w/conf"
  if ! grep -q "^$w/logs/\*.log {" "$w/conf"; then
    err "$name: no '<log-dir>/*.log {' block to check"
    rc=1
    continue
  fi
  printf 'line one\nline two\n' >"$w/logs/app.log"
  out=$(logrotate -d -s "$w/state" "$w/conf" 2>&1) || { err "$name: logrotate -d failed:"; printf '%s\n' "$out" | sed 's/^/    /' >&2; rc=1; continue; }
  if grep -qi '^error' <<<"$out"; then
    err "$name: logrotate -d reports errors:"
    grep -i '^error' <<<"$out" | sed 's/^/    /' >&2
    rc=1
    continue
  fi
  if ! out=$(logrotate -f -s "$w/state" "$w/conf" 2>&1); then
    err "$name: a forced rotation failed:"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
    rc=1
    continue
  fi
  if [[ ! -f $w/logs/app.log || -s $w/logs/app.log ]]; then
    err "$name: after rotation app.log must still be there, empty (copytruncate)"
    rc=1
  fi
  if ! grep -q 'line two' "$w/logs/app.log.1" 2>/dev/null; then
    err "$name: the old lines are not in app.log.1"
    rc=1
  fi
  printf 'line three\n' >>"$w/logs/app.log"
  logrotate -f -s "$w/state" "$w/conf" >/dev/null 2>&1 || { err "$name: the second rotation failed"; rc=1; }
  if grep -q compress "$w/conf" && [[ ! -f $w/logs/app.log.2.gz ]]; then
    err "$name: the second rotation did not compress app.log.2.gz"
    rc=1
  fi
  ((rc)) || echo "info: $name: logrotate -d clean; rotates in place (copytruncate), then compresses"
done
exit "$rc"
