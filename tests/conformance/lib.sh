# shellcheck shell=bash
# Shared helpers for the conformance validators. Source it; do not run it.

CONF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KILN_CONFORMANCE_VENV="${KILN_CONFORMANCE_VENV:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/kiln-conformance/venv}"
VPY="$KILN_CONFORMANCE_VENV/bin/python"
# shellcheck disable=SC2034 # used by the scripts that source this file
VBIN="$KILN_CONFORMANCE_VENV/bin"
export KILN_CONFORMANCE_VENV

# Print a failure line naming the validator (set VALIDATOR before use).
err() { printf '%s: %s\n' "${VALIDATOR:-conformance}" "$*" >&2; }
die() { err "$@"; exit 1; }
# exit 2 = the suite itself cannot run (missing tool, bad invocation)
usage_die() { err "$@"; exit 2; }

require_venv() {
  [[ -x $VPY ]] || usage_die "python venv missing at $KILN_CONFORMANCE_VENV: run tests/conformance/setup.sh"
}

# ENV_DIR argument: an existing directory, returned as an absolute path.
env_dir_arg() {
  local d=${1:-}
  [[ -n $d ]] || usage_die "usage: $(basename "$0") ENV_DIR   (ENV_DIR = …/generated/<env>)"
  [[ -d $d ]] || usage_die "not a directory: $d"
  (cd "$d" && pwd)
}

# A private, world-traversable work dir (nginx workers and the postgres user read from it).
make_work() {
  local w
  w=$(mktemp -d "${TMPDIR:-/tmp}/kiln-conformance.XXXXXX")
  chmod 755 "$w"
  printf '%s\n' "$w"
}

# Kill a process we started, by PID: TERM, wait up to ~5 s, then KILL.
stop_pid() {
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# A TCP port on 127.0.0.1 that is free right now.
free_port() {
  "$VPY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Throwaway PKI (CA, leaf for localhost/127.0.0.1 with an OCSP URL on loopback, ffdhe2048).
# Reuses $KILN_CONFORMANCE_PKI when run.sh made one already.
ensure_pki() {
  local dir=$1
  if [[ -n ${KILN_CONFORMANCE_PKI:-} && -s ${KILN_CONFORMANCE_PKI}/fullchain.pem ]]; then
    # shellcheck disable=SC2034 # read by the caller
    PKI=$KILN_CONFORMANCE_PKI
    return 0
  fi
  bash "$CONF_DIR/pki.sh" "$dir" || usage_die "could not create the throwaway PKI"
  # shellcheck disable=SC2034 # read by the caller
  PKI=$dir
}

# Where the PostgreSQL server binaries live (Debian: /usr/lib/postgresql/<major>/bin).
pg_bindir() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $d && -x $d/initdb ]] || usage_die "PostgreSQL server binaries not found (apt-get install postgresql)"
  printf '%s\n' "$d"
}

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

# The kiln binary (for `kiln inspect`: what the spec says, to check an output against):
# $KILN, else the newer of the workspace's release and debug builds. Empty when there is none.
kiln_bin() {
  local root
  root=$(cd "$CONF_DIR/../.." && pwd)
  if [[ -n ${KILN:-} ]]; then printf '%s\n' "$KILN"; return; fi
  # The newer of the two builds: the other may predate the spec's features.
  local b best=""
  for b in "$root/target/release/kiln" "$root/target/debug/kiln"; do
    [[ -x $b ]] || continue
    if [[ -z $best || $b -nt $best ]]; then best=$b; fi
  done
  [[ -z $best ]] || printf '%s\n' "$best"
}

# The resolved environment of ENV_DIR (…/<project>/<output>/<env>) as JSON in FILE, from
# `kiln inspect`; fails when there is no kiln binary or no kiln.kdl two levels up.
inspect_env() { # ENV_DIR FILE
  local kiln project
  kiln=$(kiln_bin)
  project=$(cd "$1/../.." && pwd)
  [[ -n $kiln && -f $project/kiln.kdl ]] || return 1
  "$kiln" inspect -q --env "$(basename "$1")" "$project" >"$2" 2>/dev/null
}
