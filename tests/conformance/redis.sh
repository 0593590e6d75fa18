#!/usr/bin/env bash
# redis.sh ENV_DIR
#
# Every ENV_DIR/redis/redis-*.conf (the host's Redis) must run in the real redis-server, in a
# private network namespace: a copy gets only its host paths rewritten (`dir` to a temp folder,
# the password include to a temp file holding a test password), then
#   1. without the password include, redis-server must refuse to start (fail closed);
#   2. with it, redis-server starts; an unauthenticated PING is refused (NOAUTH), the password
#      is accepted, and CONFIG GET reports the file's port, bind, maxmemory, maxmemory-policy
#      and appendonly;
#   3. the conf holds no password (only the include).
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=redis

ENV_DIR=$(env_dir_arg "${1:-}")
command -v redis-server >/dev/null || usage_die "redis-server not installed"
command -v redis-cli >/dev/null || usage_die "redis-cli not installed"
shopt -s nullglob
confs=("$ENV_DIR"/redis/redis-*.conf)
((${#confs[@]})) || usage_die "no redis/redis-*.conf in $ENV_DIR"
unshare --net -- true 2>/dev/null || usage_die "unshare --net does not work here (needs root)"

WORK=$(make_work)
cleanup() { [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT

if [[ ${1:-} != --ns && ${KILN_REDIS_NS:-} != 1 ]]; then
  # Re-run inside a private network namespace: the servers' ports are nobody else's.
  exec unshare --net -- env KILN_REDIS_NS=1 bash "${BASH_SOURCE[0]}" "$ENV_DIR"
fi
ip link set lo up

rc=0
for conf in "${confs[@]}"; do
  name=$(basename "$conf")
  w="$WORK/${name%.conf}"
  mkdir -p "$w/data"
  if grep -Eq '^\s*(requirepass|user\s)' "$conf"; then
    err "$name: holds a password; it must come from the include only"
    rc=1
  fi
  include=$(sed -nE 's/^include[[:space:]]+(.*)$/\1/p' "$conf" | head -n 1)
  port=$(sed -nE 's/^port[[:space:]]+([0-9]+)$/\1/p' "$conf" | head -n 1)
  # The copy: host paths into the work folder.
  sed -E -e "s|^dir .*|dir $w/data|" -e "s|^include .*|include $w/auth.conf|" "$conf" >"$w/redis.conf"
  if [[ -n $include ]]; then
    # 1. No password file: refuse to start.
    if timeout 10 redis-server "$w/redis.conf" >"$w/noauth.log" 2>&1; then
      err "$name: redis-server started without $include (it must refuse)"
      rc=1
    fi
    printf 'requirepass kiln-conformance-password\n' >"$w/auth.conf"
    chmod 640 "$w/auth.conf"
  fi
  redis-server "$w/redis.conf" --daemonize no >"$w/server.log" 2>&1 &
  pid=$!
  up=0
  for ((i = 0; i < 100; i++)); do
    if redis-cli -p "$port" --no-auth-warning -a kiln-conformance-password ping 2>/dev/null | grep -q PONG ||
      redis-cli -p "$port" ping 2>/dev/null | grep -q -e PONG -e NOAUTH; then
      up=1
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ((!up)); then
    err "$name: redis-server did not start:"
    sed 's/^/    /' "$w/server.log" >&2
    stop_pid "$pid"
    rc=1
    continue
  fi
  cli=(redis-cli -p "$port")
  if [[ -n $include ]]; then
    if ! "${cli[@]}" ping 2>&1 | grep -q NOAUTH; then
      err "$name: an unauthenticated client was not refused"
      rc=1
    fi
    cli+=(--no-auth-warning -a kiln-conformance-password)
  fi
  if ! "${cli[@]}" ping | grep -q PONG; then
    err "$name: the password was not accepted"
    rc=1
  fi
  # 2. The file's settings are the running server's.
  for key in port bind maxmemory maxmemory-policy appendonly; do
    want=$(sed -nE "s/^$key[[:space:]]+(.*)$/\1/p" "$conf" | head -n 1)
    [[ -n $want ]] || continue
    got=$("${cli[@]}" --raw config get "$key" | sed -n 2p)
    if [[ $key == maxmemory ]]; then
      want=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)(kb|mb|gb)?', sys.argv[1]); print(int(m[1])*{None:1,'kb':1024,'mb':1024**2,'gb':1024**3}[m[2]])" "$want")
    fi
    if [[ $got != "$want" ]]; then
      err "$name: $key is '$got' in the running server, '$want' in the file"
      rc=1
    fi
  done
  echo "info: $name: runs, refuses unauthenticated clients, settings as written"
  "${cli[@]}" shutdown nosave >/dev/null 2>&1 || true
  stop_pid "$pid"
done
exit "$rc"
