#!/usr/bin/env bash
# setup.sh — install what the conformance suite needs. Idempotent, quiet on success, fast when
# everything is there already. Needs root only when something must be installed with apt.
#
#   apt:  nginx pgbouncer postgresql redis-server redis-sentinel logrotate nftables ufw fail2ban supervisor prometheus (promtool) haproxy openssl curl util-linux (unshare,
#         setpriv) iproute2
#         python3-venv (systemd-analyze comes with systemd)
#   venv: ${KILN_CONFORMANCE_VENV:-~/.cache/kiln-conformance/venv} with the exact pins of
#         tests/conformance/requirements.txt
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=setup

APT_PKGS=(nginx pgbouncer postgresql redis-server redis-sentinel logrotate nftables ufw fail2ban supervisor prometheus haproxy openssl curl util-linux iproute2
  python3 python3-venv systemd ca-certificates)

missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || usage_die "missing Debian packages (${missing[*]}); run as root to install them"
  export DEBIAN_FRONTEND=noninteractive
  # Do not let the packages' postinst start nginx / a PostgreSQL cluster on this machine.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  log=$(mktemp)
  # Another apt/dpkg may be running (e.g. a provisioning step): wait for the lock.
  if ! { apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=600 \
    --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    ((made_policy)) && rm -f /usr/sbin/policy-rc.d
    die "apt-get install ${missing[*]} failed"
  fi
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  rm -f "$log"
fi

for tool in nginx pgbouncer psql redis-server redis-sentinel redis-cli logrotate nft ufw fail2ban-client supervisord promtool haproxy openssl curl unshare setpriv systemd-analyze ip; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || usage_die "$tool not found after install"
done
pg_bindir >/dev/null

# Python venv, rebuilt when requirements.txt changes.
req="$CONF_DIR/requirements.txt"
stamp="$KILN_CONFORMANCE_VENV/.kiln-requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x $VPY || ! -f $stamp || $(cat "$stamp") != "$want" ]] ||
  ! "$VPY" -c 'import crossplane, ruamel.yaml, yaml' 2>/dev/null; then
  # Debian's python3 + python3-venv: independent of any pyenv/conda python on PATH.
  py=/usr/bin/python3
  [[ -x $py ]] || py=$(command -v python3)
  rm -rf "$KILN_CONFORMANCE_VENV"
  mkdir -p "$(dirname "$KILN_CONFORMANCE_VENV")"
  log=$(mktemp)
  if ! { "$py" -m venv "$KILN_CONFORMANCE_VENV" &&
    "$VPY" -m pip install -q --disable-pip-version-check --no-input -r "$req"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -rf "$KILN_CONFORMANCE_VENV"
    die "creating the python venv at $KILN_CONFORMANCE_VENV failed"
  fi
  rm -f "$log"
  printf '%s\n' "$want" >"$stamp"
fi
