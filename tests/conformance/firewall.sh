#!/usr/bin/env bash
# firewall.sh ENV_DIR
#
# The host firewall kiln writes (systemd target, ENV_DIR/firewall/):
#
# ufw-*.sh — `sh -n`, then every `ufw …` command of it through ufw's own `--dry-run` (which
#   parses the rule and prints the iptables rules it would add, changing nothing): each must
#   exit 0 without an ERROR.
# *.nft — `nft -c -f` in a private network namespace, then live: the ruleset is loaded in a
#   "host" namespace joined by a veth pair to a "client" namespace, a TCP listener runs on every
#   allowed port and on data ports no rule opens (5432, 6379, 6432), and the client connects
#   from an address inside each rule's `from` blocks (or any address when none) and from one
#   outside them. Allowed ports must answer the right sources and drop the others; the data
#   ports must be dropped for everyone; a `limit` rule must drop a burst of new connections
#   from one address. The allowed rules are the spec's (`kiln inspect` of the environment,
#   with the workspace's kiln build); without a kiln binary, the file's own rules (an info line
#   says so).
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=firewall

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
shopt -s nullglob
ufws=("$ENV_DIR"/firewall/ufw-*.sh)
nfts=("$ENV_DIR"/firewall/*.nft)
((${#ufws[@]} + ${#nfts[@]})) || usage_die "no firewall/ufw-*.sh or firewall/*.nft in $ENV_DIR"

WORK=$(make_work)
cleanup() {
  ip netns del kiln-fw-host 2>/dev/null || true
  ip netns del kiln-fw-client 2>/dev/null || true
  [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
rc=0

for f in "${ufws[@]}"; do
  rel=${f#"$ENV_DIR"/}
  command -v ufw >/dev/null || usage_die "ufw not installed"
  sh -n "$f" || { err "$rel: sh -n failed"; rc=1; continue; }
  n=0
  while IFS= read -r line; do
    [[ $line == ufw\ * ]] || continue
    n=$((n + 1))
    # The script's own words, as sh would split them; --dry-run after `ufw`.
    eval "set -- ${line#ufw }"
    if ! out=$(ufw --dry-run "$@" 2>&1) || grep -q '^ERROR' <<<"$out"; then
      err "$rel: \`$line\` is refused by ufw: $out"
      rc=1
    fi
  done <"$f"
  ((n)) || { err "$rel: no ufw command"; rc=1; }
  echo "  $rel: $n ufw commands accepted by ufw --dry-run"
done

for f in "${nfts[@]}"; do
  rel=${f#"$ENV_DIR"/}
  command -v nft >/dev/null || usage_die "nft not installed"
  if ! out=$(unshare --net -- nft -c -f "$f" 2>&1); then
    err "$rel: nft -c -f refused it: $out"
    rc=1
    continue
  fi
  # Live: two namespaces, one veth link, the ruleset in the host one.
  ip netns add kiln-fw-host
  ip netns add kiln-fw-client
  ip link add kfw-h type veth peer name kfw-c
  ip link set kfw-h netns kiln-fw-host
  ip link set kfw-c netns kiln-fw-client
  H() { ip netns exec kiln-fw-host "$@"; }
  C() { ip netns exec kiln-fw-client "$@"; }
  H ip link set lo up
  C ip link set lo up
  H ip addr add 10.99.0.1/32 dev kfw-h
  H ip link set kfw-h up
  C ip link set kfw-c up
  H ip route add default dev kfw-h
  C ip route add default dev kfw-c
  if ! out=$(H nft -f "$f" 2>&1); then
    err "$rel: nft -f failed: $out"
    rc=1
    ip netns del kiln-fw-host
    ip netns del kiln-fw-client
    continue
  fi
  spec=""
  if inspect_env "$ENV_DIR" "$WORK/env.json"; then
    spec="$WORK/env.json"
  else
    echo "info: no kiln build to read the spec with: $rel is checked against its own rules"
  fi
  set +e
  H "$VPY" - "$f" "$WORK" "$spec" <<'PY'
import ipaddress, json, re, socket, subprocess, sys, threading, time

path, work, spec = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
rules = []  # (port, proto, [cidrs], limited)
if spec:
    fw = json.load(open(spec)).get("firewall") or {}
    for r in (fw.get("allow") or {}).values():
        port = int(str(r["port"]).replace("-", ":").split(":")[0])
        rules.append([port, r["proto"], list(r["from"]), bool(r["limit"])])
for line in ([] if spec else text.splitlines()):
    m = re.match(r"\s*(?:(ip6?) saddr \{ ([^}]*) \} )?(tcp|udp) dport (\d+)(?:-\d+)? (?:ct state new add @\S+ .* drop|accept)", line)
    if not m:
        continue
    fam, cidrs, proto, port = m.groups()
    limited = "ct state new add @" in line
    key = (int(port), proto)
    r = next((r for r in rules if (r[0], r[1]) == key), None)
    if r is None:
        r = [int(port), proto, [], False]
        rules.append(r)
    if cidrs:
        for c in cidrs.split(","):
            if c.strip() not in r[2]:
                r[2].append(c.strip())
    r[3] = r[3] or limited
if not rules:
    print(f"firewall: {path}: no allow rule found to check", file=sys.stderr)
    sys.exit(1)

def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    def serve():
        while True:
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                return
    threading.Thread(target=serve, daemon=True).start()

tcp = [r for r in rules if r[1] == "tcp"]
data_ports = [p for p in (5432, 6379, 6432) if p not in {r[0] for r in tcp}]
for r in tcp:
    listen(r[0])
for p in data_ports:
    listen(p)

outside = "198.51.100.77"
addresses = {outside}
for r in tcp:
    for c in r[2]:
        net = ipaddress.ip_network(c, strict=False)
        if net.version == 4:
            addresses.add(str(next(net.hosts(), net.network_address)))
for a in addresses:
    subprocess.run(["ip", "netns", "exec", "kiln-fw-client", "ip", "addr", "add", f"{a}/32", "dev", "kfw-c"], check=True)

def connect(src, port, timeout=1.0):
    r = subprocess.run(["ip", "netns", "exec", "kiln-fw-client", sys.executable, "-c",
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(float(sys.argv[3])); s.bind((sys.argv[1],0))\n"
        "try:\n s.connect(('10.99.0.1',int(sys.argv[2]))); print('open')\n"
        "except OSError as e: print('closed', e)\n",
        src, str(port), str(timeout)], capture_output=True, text=True)
    return r.stdout.startswith("open")

bad = 0
checked = 0
for port, proto, cidrs, limited in tcp:
    v4 = [c for c in cidrs if ":" not in c]
    if cidrs and not v4:
        continue  # IPv6-only sources: not exercised on this IPv4 link
    inside = [str(next(ipaddress.ip_network(c, strict=False).hosts(), ipaddress.ip_network(c, strict=False).network_address)) for c in v4] or [outside]
    for src in inside:
        checked += 1
        if not connect(src, port):
            print(f"firewall: {path}: port {port}/tcp is closed to {src}, which a rule allows", file=sys.stderr)
            bad += 1
    if v4:
        checked += 1
        if connect(outside, port):
            print(f"firewall: {path}: port {port}/tcp is open to {outside}, outside {', '.join(v4)}", file=sys.stderr)
            bad += 1
    if limited:
        src = inside[0]
        time.sleep(0.2)
        results = [connect(src, port, 0.5) for _ in range(12)]
        checked += 1
        if all(results):
            print(f"firewall: {path}: port {port}/tcp is limited, yet 12 new connections from {src} in a row all got through", file=sys.stderr)
            bad += 1
for p in data_ports:
    for src in sorted(addresses):
        checked += 1
        if connect(src, p, 0.5):
            print(f"firewall: {path}: data port {p}/tcp is open to {src}; no rule allows it", file=sys.stderr)
            bad += 1
print(f"  {path.rsplit('/', 2)[-2]}/{path.rsplit('/', 1)[-1]}: {checked} live connection checks "
      f"(ports {', '.join(str(r[0]) for r in tcp)} allowed as written, {', '.join(map(str, data_ports))} dropped)")
sys.exit(1 if bad else 0)
PY
  r=$?
  set -e
  ((r == 0)) || rc=1
  ip netns del kiln-fw-host
  ip netns del kiln-fw-client
done
exit "$rc"
