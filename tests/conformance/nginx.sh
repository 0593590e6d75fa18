#!/usr/bin/env bash
# nginx.sh [--no-live] ENV_DIR
#
# Checks ENV_DIR/nginx (host flavour) and ENV_DIR/compose/nginx (compose flavour), whichever
# exist. For each: a copy gets only its host-specific lines rewritten (throwaway cert/key/CA/
# dhparam, log/pid/root/alias/temp paths mirrored into a temp dir, non-loopback listen
# addresses -> loopback, a `user` this machine lacks removed; in the compose flavour every
# upstream host name must be a service of compose/compose.yaml), then, inside a private
# network + mount namespace (`unshare --mount --net`, /etc/hosts bind-mounted so upstream names
# such as `web` resolve to loopback addresses):
#   1. `nginx -t` — any [warn] or worse is a failure;
#   2. live: nginx started with a stand-in upstream, curl proves the port-80 redirect (301/308
#      to https) and the ACME location, the TLS handshake, and HSTS (max-age >= 31536000),
#      nosniff, Referrer-Policy plus every server-level add_header on proxied, static, 404,
#      upstream-500 and upstream-down (5xx) responses of every location; then, where upstreams
#      are named (the compose flavour), the upstream comes back at another address and every
#      proxied location must reach it (nginx re-resolves names: a stand-in DNS, dns.py, answers
#      the config's `resolver`).
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=nginx

live_flag=()
if [[ ${1:-} == --no-live ]]; then
  live_flag=(--no-live)
  shift
fi
ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || usage_die "nginx not installed"
export PATH="$PATH:/usr/sbin:/sbin"
unshare --mount --net -- true 2>/dev/null ||
  usage_die "unshare --mount --net does not work here (needs root / CAP_SYS_ADMIN): cannot isolate the check"

WORK=$(make_work)
cleanup() { [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT
ensure_pki "$WORK/pki"

flavours=()
[[ -d $ENV_DIR/nginx ]] && flavours+=(nginx)
[[ -d $ENV_DIR/compose/nginx ]] && flavours+=(compose/nginx)
((${#flavours[@]})) || usage_die "no nginx/ or compose/nginx/ in $ENV_DIR"

rc=0
for fl in "${flavours[@]}"; do
  w="$WORK/${fl//\//-}"
  mkdir -p "$w"
  chmod 755 "$w"
  echo "== $fl"
  compose_file=()
  if [[ $fl == compose/nginx ]]; then
    for n in compose.yaml compose.yml docker-compose.yaml docker-compose.yml; do
      if [[ -f $ENV_DIR/compose/$n ]]; then compose_file=("$ENV_DIR/compose/$n"); break; fi
    done
  fi
  set +e
  "$VPY" "$CONF_DIR/nginx_check.py" prepare "$ENV_DIR/$fl" "$w/copy" "$PKI" "${compose_file[@]}"
  r=$?
  set -e
  if ((r == 2)); then exit 2; fi
  if ((r != 0)); then
    rc=1
    continue
  fi
  # The namespace holds every process the check starts (nginx, the stand-in upstream, curl);
  # the helper stops them by PID, and nothing it does can reach beyond this namespace's lo.
  set +e
  unshare --mount --net -- "$VPY" "$CONF_DIR/nginx_check.py" ns "$w/copy" "${live_flag[@]}"
  r=$?
  set -e
  if ((r == 2)); then exit 2; fi
  ((r == 0)) || rc=1
done
exit "$rc"
