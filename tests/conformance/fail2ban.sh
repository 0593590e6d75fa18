#!/usr/bin/env bash
# fail2ban.sh ENV_DIR
#
# ENV_DIR/fail2ban/jail.d/*.local (systemd target): copied next to Debian's own fail2ban
# configuration in a temp folder (the nginx log paths pointed at temp files, nothing else
# changed), then `fail2ban-client -c DIR -t` must pass: every jail's filter, action (the
# banaction for the firewall backend) and log exist and parse. Then each nginx jail's filter,
# with the jail's own options, must match a line in the format the host nginx writes for it
# (`fail2ban-regex`): a limit_req rejection for nginx-limit-req, a probe for a missing file for
# nginx-botsearch.
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=fail2ban

ENV_DIR=$(env_dir_arg "${1:-}")
command -v fail2ban-client >/dev/null || usage_die "fail2ban not installed"
[[ -d /etc/fail2ban/filter.d ]] || usage_die "no /etc/fail2ban (apt-get install fail2ban)"
shopt -s nullglob
jails=("$ENV_DIR"/fail2ban/jail.d/*.local)
((${#jails[@]})) || usage_die "no fail2ban/jail.d/*.local in $ENV_DIR"

WORK=$(make_work)
cleanup() { [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT
rc=0
for jail in "${jails[@]}"; do
  rel=${jail#"$ENV_DIR"/}
  d="$WORK/$(basename "$jail" .local)"
  cp -r /etc/fail2ban "$d"
  rm -f "$d"/jail.d/*
  mkdir -p "$d/logs"
  : >"$d/logs/error.log"
  : >"$d/logs/access.log"
  : >"$d/logs/fail2ban.log"
  sed -e "s|^logpath = /var/log/nginx/|logpath = $d/logs/|" \
    -e "s|^logpath = /var/log/fail2ban.log|logpath = $d/logs/fail2ban.log|" "$jail" >"$d/jail.d/kiln.local"
  if ! out=$(fail2ban-client -c "$d" -t 2>&1) || grep -q 'ERROR' <<<"$out"; then
    err "$rel: fail2ban-client -t failed: $(grep -E 'ERROR' <<<"$out" | head -n 5)"
    rc=1
    continue
  fi
  n=$(grep -c '^\[' "$jail")
  # Each nginx jail's filter against a line as nginx writes it.
  checked=""
  while IFS= read -r name; do
    case $name in
    nginx-limit-req)
      line='2026/12/07 18:00:00 [error] 4242#4242: *17 limiting requests, excess: 5.600 by zone "login", client: 198.51.100.7, server: example.org, request: "POST /accounts/login/ HTTP/1.1", host: "example.org"' ;;
    nginx-botsearch)
      line='2026/12/07 18:00:00 [error] 4242#4242: *18 open() "/var/www/html/wp-login.php" failed (2: No such file or directory), client: 198.51.100.7, server: example.org, request: "GET /wp-login.php HTTP/1.1", host: "example.org"' ;;
    *) continue ;;
    esac
    printf '%s\n' "$line" >"$d/logs/sample-$name.log"
    if ! out=$(fail2ban-regex "$d/logs/sample-$name.log" "$d/filter.d/$name.conf" 2>&1) ||
      ! grep -qE '^Lines: 1 lines, 0 ignored, 1 matched' <<<"$out"; then
      err "$rel: the $name filter does not match nginx's line for it: $(grep -E '^Lines:' <<<"$out")"
      rc=1
    fi
    checked+=" $name"
  done < <(sed -nE 's/^\[([a-z0-9-]+)\]$/\1/p' "$jail" | grep -v DEFAULT)
  echo "  $rel: fail2ban-client -t ok ($((n - 1)) jails); filters matched on nginx's lines:${checked:- none}"
done
exit "$rc"
