#!/usr/bin/env bash
# haproxy.sh ENV_DIR
#
# ENV_DIR/compose/haproxy/*.cfg (`balancer haproxy`), by the real HAProxy:
#   1. `haproxy -c -f` accepts the file;
#   2. live, in a private network namespace: a stand-in DNS on 127.0.0.11 (Docker's, which the
#      file's resolvers name) answers the service's name with three addresses, stand-in app
#      servers listen on two of them, the third is down. With the check interval shortened
#      and the listen address on the loopback (the only rewrites), HAProxy must mark the dead one DOWN, send every request to the two
#      live ones (both answer: it balances), and its health checks must ask for the file's
#      path with the public Host and X-Forwarded-Proto https.
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=haproxy

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
command -v haproxy >/dev/null || usage_die "haproxy not installed"
shopt -s nullglob
cfgs=("$ENV_DIR"/compose/haproxy/*.cfg)
((${#cfgs[@]})) || usage_die "no compose/haproxy/*.cfg in $ENV_DIR"
unshare --net -- true 2>/dev/null || usage_die "unshare --net does not work here (needs root)"
if [[ ${KILN_HAPROXY_NS:-} != 1 ]]; then
  exec unshare --net -- env KILN_HAPROXY_NS=1 bash "${BASH_SOURCE[0]}" "$ENV_DIR"
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
rc=0
for cfg in "${cfgs[@]}"; do
  rel=${cfg#"$ENV_DIR"/}
  if ! out=$(haproxy -c -f "$cfg" 2>&1); then
    err "$rel: haproxy -c: $out"
    rc=1
    continue
  fi
  t="$WORK/$(basename "$cfg" .cfg)"
  mkdir -p "$t"
  sed -E -e 's/ inter [0-9]+s / inter 1s /' -e 's/^( *bind ):([0-9]+)$/\1127.0.0.1:\2/' "$cfg" >"$t/haproxy.cfg"
  read -r tmpl_name _ target < <(sed -nE 's/^ *server-template ([^ ]+) ([0-9]+) ([^ ]+)$/\1 \2 \3/p' "$cfg")
  host=${target%:*}
  port=${target##*:}
  listen=$(sed -nE 's/^ *bind :([0-9]+)$/\1/p' "$cfg" | head -n 1)
  path=$(sed -nE 's/.*http-check send meth GET uri ([^ ]+) .*/\1/p' "$cfg")
  vhost=$(sed -nE 's/.* hdr Host ([^ ]+) .*/\1/p' "$cfg")
  printf '{"%s": ["127.0.1.1", "127.0.1.2", "127.0.1.3"]}\n' "$host" >"$t/dns.json"
  "$VPY" "$CONF_DIR/dns.py" "$t/dns.json" 127.0.0.11:53 >"$t/dns.out" 2>&1 &
  pids+=($!)
  KILN_UPSTREAM_LOG="$t/requests.log" "$VPY" "$CONF_DIR/upstream.py" "127.0.1.1:$port" "127.0.1.2:$port" >"$t/up.out" 2>&1 &
  pids+=($!)
  for ((i = 0; i < 50; i++)); do
    grep -q ready "$t/dns.out" 2>/dev/null && grep -q ready "$t/up.out" 2>/dev/null && break
    sleep 0.1
  done
  haproxy -f "$t/haproxy.cfg" -db >"$t/haproxy.log" 2>&1 &
  hpid=$!
  pids+=("$hpid")
  # Two checks to come up (rise 2), three to go down (fall 3): a few seconds at 1s.
  sleep 5
  served=""
  bad=0
  for ((i = 0; i < 12; i++)); do
    out=$(curl -s -o /dev/null -D - --max-time 3 -H "Host: ${vhost:-localhost}" "http://127.0.0.1:$listen/" || true)
    code=$(sed -nE 's/^HTTP\/[0-9.]+ ([0-9]+).*/\1/p' <<<"$out" | head -n 1)
    from=$(sed -nE 's/^X-Kiln-Upstream: ([^\r]+).*/\1/pI' <<<"$out" | head -n 1)
    [[ $code == 200 ]] || bad=$((bad + 1))
    served+="$from "
  done
  n=$(tr ' ' '\n' <<<"$served" | grep -c . || true)
  distinct=$(tr ' ' '\n' <<<"$served" | grep . | sort -u | wc -l)
  if ((bad)); then
    err "$rel: $bad of 12 requests through HAProxy failed (the dead replica was not taken out?): $(tail -n 5 "$t/haproxy.log")"
    rc=1
  elif ((distinct < 2)); then
    err "$rel: every request went to one replica ($served): no balancing"
    rc=1
  fi
  if [[ -n $path ]]; then
    if ! grep -q "^$path $vhost https$" "$t/requests.log" 2>/dev/null; then
      err "$rel: no health check asked for $path with Host $vhost and X-Forwarded-Proto https: $(sort -u "$t/requests.log" | head -n 3)"
      rc=1
    fi
  fi
  stop_pid "$hpid"
  echo "  $rel: haproxy -c ok; live: the dead replica out, $n requests over $distinct live replicas, health checks on ${path:-TCP}"
done
exit "$rc"
