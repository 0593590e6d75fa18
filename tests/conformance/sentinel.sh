#!/usr/bin/env bash
# sentinel.sh ENV_DIR
#
# Every Redis group of ENV_DIR/compose/compose.yaml (a NAME service with NAME-replica-I and
# NAME-sentinel-I services) runs from its generated commands in the real redis-server and
# redis-sentinel, inside private network and mount namespaces: /etc/hosts maps each service
# name to a loopback address of its own (as Docker's DNS does), and each process gets its own
# folder. A copy of each command gets only that: `--bind ADDRESS` (all of them share one
# network namespace) and the sentinel's file path moved from /tmp into its folder.
#   1. the spec's numbers: as many replica and sentinel services as `kiln inspect` says, each
#      sentinel monitoring the spec's master name;
#   2. every replica streams from the primary (INFO replication: master_link_status:up);
#   3. every sentinel names the primary for the master name, and sees every replica and every
#      other sentinel;
#   4. servers and sentinels refuse an unauthenticated client;
#   5. failover: the primary is stopped; the sentinels promote a replica, which accepts a
#      write with the password, and the other replicas follow it.
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=sentinel

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
for tool in redis-server redis-sentinel redis-cli unshare; do
  command -v "$tool" >/dev/null || usage_die "$tool not installed"
done
compose=$ENV_DIR/compose/compose.yaml
[[ -f $compose ]] || usage_die "no compose/compose.yaml in $ENV_DIR"

if [[ ${KILN_SENTINEL_NS:-} != 1 ]]; then
  unshare --net --mount -- true 2>/dev/null || usage_die "unshare --net --mount does not work here (needs root)"
  exec unshare --net --mount -- env KILN_SENTINEL_NS=1 bash "${BASH_SOURCE[0]}" "$ENV_DIR"
fi
ip link set lo up

WORK=$(make_work)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do stop_pid "$p"; done
  [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

PW=kiln-conformance-redis-password
inspect_env "$ENV_DIR" "$WORK/spec.json" || usage_die "kiln inspect failed (build kiln first)"

# The groups: one folder each, a script per process ($$ → $), an address per host name.
"$VPY" - "$compose" "$WORK/spec.json" "$WORK/groups" <<'PY' || exit 2
import json, pathlib, re, sys
import yaml
services = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))["services"]
spec = json.load(open(sys.argv[2], encoding="utf-8"))
out = pathlib.Path(sys.argv[3])
hosts, n = [], 10
for name, r in sorted(spec.get("redis", {}).items()):
    if not r.get("sentinel"):
        continue
    g = out / name
    g.mkdir(parents=True)
    (g / "expect").write_text(f'{r["replicas"]} {r["sentinel"]["count"]} {r["sentinel"]["master-name"]} {r["sentinel"]["port"]} {r["port"]}\n')
    members = [name] + sorted(s for s in services if re.fullmatch(re.escape(name) + r"-(replica|sentinel)-\d+", s))
    for s in members:
        cmd = services[s]["command"]
        script = cmd[2] if cmd[:2] == ["sh", "-c"] else " ".join(cmd)
        (g / f"{s}.sh").write_text(script.replace("$$", "$"))
        n += 1
        hosts.append(f"127.0.0.{n} {s}")
(out / "hosts").write_text("127.0.0.1 localhost\n" + "\n".join(hosts) + "\n")
PY
shopt -s nullglob
groups=("$WORK"/groups/*/)
((${#groups[@]})) || usage_die "no Redis with a sentinel group in $ENV_DIR"
mount --bind "$WORK/groups/hosts" /etc/hosts

addr() { awk -v h="$1" '$2 == h { print $1 }' /etc/hosts; }
cli() { redis-cli -h "$1" -p "$2" --no-auth-warning -a "$PW" "${@:3}" 2>&1; }

# Start one process from its script: in its own folder, bound to its own address.
start() { # GROUP_DIR HOST
  local g=$1 host=$2 dir script ip
  dir="$WORK/run/$host"
  mkdir -p "$dir"
  ip=$(addr "$host")
  script=$(sed -E -e "s#^(exec redis-server -)#\1 --bind $ip#" \
    -e "s#/tmp/sentinel\.conf#$dir/sentinel.conf#g" -e "s#^dir /tmp\$#dir $dir#" \
    -e "s#^(exec redis-sentinel [^ ]+)\$#\1 --bind $ip#" "$g/$host.sh")
  (cd "$dir" && REDISCLI_AUTH=$PW exec sh -c "$script") >"$dir/log" 2>&1 &
  pids+=($!)
  printf '%s\n' "$!" >"$dir/pid"
}

# Poll CMD until its output matches REGEX (up to SECONDS); prints the last output.
wait_for() { # SECONDS REGEX CMD…
  local t=$1 re=$2 out="" i
  shift 2
  for ((i = 0; i < t * 10; i++)); do
    out=$("$@" 2>&1 || true)
    if [[ $out =~ $re ]]; then printf '%s' "$out"; return 0; fi
    sleep 0.1
  done
  printf '%s' "$out"
  return 1
}

rc=0
for g in "${groups[@]}"; do
  g=${g%/}
  name=$(basename "$g")
  read -r want_replicas want_sentinels master sport port <"$g/expect"
  replicas=("$g/$name"-replica-*.sh)
  sentinels=("$g/$name"-sentinel-*.sh)
  fail() { err "redis $name: $*"; rc=1; }
  # 1. the spec's numbers
  ((${#replicas[@]} == want_replicas)) || fail "${#replicas[@]} replica services, the spec says $want_replicas"
  ((${#sentinels[@]} == want_sentinels)) || fail "${#sentinels[@]} sentinel services, the spec says $want_sentinels"
  for s in "${sentinels[@]}"; do
    grep -Eq "^sentinel monitor $master $name $port " "$s" || fail "$(basename "$s" .sh) does not monitor $master at $name:$port"
  done

  start "$g" "$name"
  if ! wait_for 10 PONG cli "$name" "$port" ping >/dev/null; then
    fail "the primary did not start: $(tail -n 5 "$WORK/run/$name/log")"
    continue
  fi
  for r in "${replicas[@]}"; do start "$g" "$(basename "$r" .sh)"; done
  # 2. replicas stream
  for r in "${replicas[@]}"; do
    h=$(basename "$r" .sh)
    if ! wait_for 20 'master_link_status:up' cli "$h" "$port" info replication >/dev/null; then
      fail "$h does not stream from $name: $(tail -n 5 "$WORK/run/$h/log")"
    fi
  done
  ((rc == 0)) || continue
  for s in "${sentinels[@]}"; do start "$g" "$(basename "$s" .sh)"; done
  # 3. each sentinel knows the group
  for s in "${sentinels[@]}"; do
    h=$(basename "$s" .sh)
    if ! out=$(wait_for 20 "^$name"$'\n'"$port\$" cli "$h" "$sport" sentinel get-master-addr-by-name "$master"); then
      fail "$h does not name $name as $master's primary (got '${out//$'\n'/ }'): $(tail -n 5 "$WORK/run/$h/log")"
      continue
    fi
    if ! wait_for 30 "^$want_replicas"$'\n'"$((want_sentinels - 1))\$" \
      sh -c "redis-cli -h $h -p $sport --no-auth-warning -a $PW sentinel replicas $master | grep -c '^name\$'; redis-cli -h $h -p $sport --no-auth-warning -a $PW sentinel sentinels $master | grep -c '^name\$'" >/dev/null; then
      fail "$h does not see $want_replicas replica(s) and $((want_sentinels - 1)) other sentinel(s)"
    fi
  done
  # 4. no password, no entry
  for h in "$name" "$(basename "${replicas[0]}" .sh)"; do
    [[ $(redis-cli -h "$h" -p "$port" ping 2>&1) == *NOAUTH* ]] || fail "$h answers a client without the password"
  done
  h=$(basename "${sentinels[0]}" .sh)
  [[ $(redis-cli -h "$h" -p "$sport" ping 2>&1) == *NOAUTH* ]] || fail "$h answers a client without the password"
  ((rc == 0)) || continue
  echo "  redis $name: ${#replicas[@]} replica(s) streaming, ${#sentinels[@]} sentinel(s) agreeing on $master = $name:$port, no entry without the password"

  # 5. failover
  stop_pid "$(cat "$WORK/run/$name/pid")"
  h=$(basename "${sentinels[0]}" .sh)
  if ! new=$(wait_for 60 "^$name-replica-[0-9]+"$'\n'"$port\$" cli "$h" "$sport" sentinel get-master-addr-by-name "$master"); then
    fail "no replica was promoted after the primary stopped (sentinel says '${new//$'\n'/ }')"
    continue
  fi
  new=${new%%$'\n'*}
  if ! wait_for 20 'role:master' cli "$new" "$port" info replication >/dev/null ||
    [[ $(cli "$new" "$port" set kiln-probe ok) != OK ]]; then
    fail "the promoted $new does not accept a write"
    continue
  fi
  for r in "${replicas[@]}"; do
    o=$(basename "$r" .sh)
    [[ $o == "$new" ]] && continue
    follows="master_host:$new"$'\r\n'"(.*"$'\n'")?master_link_status:up"
    wait_for 30 "$follows" cli "$o" "$port" info replication >/dev/null ||
      fail "$o does not follow the new primary $new"
  done
  ((rc == 0)) && echo "  redis $name: failover: the sentinels promoted $new when $name stopped; it takes writes, the other replicas follow it"
done
exit "$rc"
