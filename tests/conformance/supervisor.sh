#!/usr/bin/env bash
# supervisor.sh ENV_DIR
#
# ENV_DIR/supervisor/*.conf (systemd target, `host { process-manager supervisor }`), run by the
# real supervisord: a copy of the file, with only host paths rewritten (the app folder,
# virtualenv, env file and log folder into a temp folder; the app's user to `nobody`), is
# included by a throwaway supervisord.conf. Stand-in programs take the virtualenv's place:
# each writes its environment and arguments to a file and sleeps (a task, `… manage.py …`,
# exits 0). The env file holds every variable of the environment's .env.example.
#   1. `supervisorctl avail` lists every [program:] of the file, in its group;
#   2. the programs that start by themselves reach RUNNING, a task started by hand exits 0;
#   3. each program got the spec's variables and the env file's secrets (sh sourced it).
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=supervisor

ENV_DIR=$(env_dir_arg "${1:-}")
command -v supervisord >/dev/null || usage_die "supervisor not installed"
shopt -s nullglob
confs=("$ENV_DIR"/supervisor/*.conf)
((${#confs[@]})) || usage_die "no supervisor/*.conf in $ENV_DIR"
examples=("$ENV_DIR"/systemd/*.env.example)

WORK=$(make_work)
spid=""
cleanup() {
  [[ -z $spid ]] || stop_pid "$spid"
  [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
rc=0
for conf in "${confs[@]}"; do
  rel=${conf#"$ENV_DIR"/}
  t="$WORK/$(basename "$conf" .conf)"
  mkdir -p "$t/conf.d" "$t/root" "$t/logs" "$t/out" "$t/venv/bin"
  root=$(sed -nE 's/^directory=(.*)$/\1/p' "$conf" | head -n 1)
  envfile=$(sed -nE 's/.*set -a; \. ([^;]+); set \+a.*/\1/p' "$conf" | head -n 1)
  venv=$(sed -nE 's/.*export PATH=([^:;]+)\/bin:.*/\1/p' "$conf" | head -n 1)
  logdir=$(sed -nE 's/^stdout_logfile=(.*)\/[^/]*$/\1/p' "$conf" | head -n 1)
  [[ -n $root && -n $envfile && -n $venv && -n $logdir ]] ||
    { err "$rel: no directory=, env file, virtualenv or log folder found"; rc=1; continue; }
  sed -e "s|$venv|$t/venv|g" -e "s|$envfile|$t/env|g" -e "s|$logdir|$t/logs|g" \
    -e "s|^directory=.*|directory=$t/root|" -e "s|^user=.*|user=nobody|" "$conf" >"$t/conf.d/app.conf"
  # The env file: every variable of .env.example, with a recognisable value.
  : >"$t/env"
  for ex in "${examples[@]}"; do
    sed -nE 's/^#? ?([A-Za-z_][A-Za-z0-9_]*)=.*/\1/p' "$ex" | sort -u | while read -r k; do
      printf "%s='kiln-test-%s'\n" "$k" "$k" >>"$t/env"
    done
  done
  # Stand-ins for every program the commands exec.
  for exe in $(grep -oE "exec $t/venv/bin/[^ \"']+" "$t/conf.d/app.conf" | sort -u | sed 's/^exec //'); do
    cat >"$exe" <<FAKE
#!/bin/sh
{ echo "ARGS=\$*"; env; } >"$t/out/\$(basename "\$0")-\$\$.env"
case " \$* " in *" manage.py "*) exit 0 ;; esac
exec sleep 300
FAKE
    chmod 755 "$exe"
  done
  chmod -R a+rX "$t"
  chmod 777 "$t/out" "$t/logs"
  cat >"$t/supervisord.conf" <<SUP
[unix_http_server]
file=$t/supervisor.sock
chmod=0700
[supervisord]
logfile=$t/supervisord.log
pidfile=$t/supervisord.pid
childlogdir=$t/logs
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$t/supervisor.sock
[include]
files=$t/conf.d/*.conf
SUP
  supervisord -c "$t/supervisord.conf" >"$t/supervisord.out" 2>&1 &
  spid=$!
  ctl() { supervisorctl -c "$t/supervisord.conf" "$@"; }
  up=0
  for ((i = 0; i < 50; i++)); do
    if ctl status >/dev/null 2>&1 || [[ $? -eq 3 ]]; then up=1; break; fi
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.2
  done
  if ((!up)); then
    err "$rel: supervisord did not start with it: $(cat "$t/supervisord.out" "$t/supervisord.log" 2>/dev/null | tail -n 5)"
    rc=1
    stop_pid "$spid"; spid=""
    continue
  fi
  group=$(sed -nE 's/^\[group:(.*)\]$/\1/p' "$conf")
  avail=$(ctl avail)
  for p in $(sed -nE 's/^\[program:(.*)\]$/\1/p' "$conf"); do
    grep -q "^$group:$p" <<<"$avail" || { err "$rel: supervisorctl avail does not list $group:$p"; rc=1; }
  done
  # The tasks, by hand, as the header says.
  tasks=$(awk '/^\[program:/{p=$0; sub(/^\[program:/,"",p); sub(/\]$/,"",p)} /^autostart=false$/{print p}' "$conf")
  for task in $tasks; do
    ctl start "$group:$task" >/dev/null 2>&1 || true
  done
  # startsecs=5: RUNNING after five seconds up.
  ok=0
  for ((i = 0; i < 40; i++)); do
    status=$(ctl status 2>/dev/null || true)
    if ! grep -vE ' (RUNNING|EXITED) ' <<<"$status" | grep -q .; then ok=1; break; fi
    sleep 0.5
  done
  ((ok)) || { err "$rel: not every program runs: $(grep -vE ' (RUNNING|EXITED) ' <<<"$status")"; rc=1; }
  for task in $tasks; do
    grep -qE "^$group:$task +EXITED .*" <<<"$status" || { err "$rel: task $task did not exit: $(grep "$task" <<<"$status")"; rc=1; }
  done
  n=$(find "$t/out" -name '*.env' | wc -l)
  ((n > 0)) || { err "$rel: no program ran"; rc=1; }
  secret=$(grep -m1 -oE "^[A-Z_]+='kiln-test-" "$t/env" | cut -d= -f1 || true)
  for f in "$t"/out/*.env; do
    if [[ -n $secret ]] && ! grep -q "^$secret=kiln-test-$secret$" "$f"; then
      err "$rel: $(head -n 1 "$f"): the env file's $secret did not reach the program"
      rc=1
    fi
    grep -q "^PATH=$t/venv/bin:" "$f" || { err "$rel: the spec's PATH did not reach $(basename "$f")"; rc=1; }
  done
  echo "  $rel: supervisord loads it; $(grep -c '^\[program:' "$conf") programs in group $group, $n started, env file sourced"
  ctl shutdown >/dev/null 2>&1 || true
  stop_pid "$spid"
  spid=""
done
exit "$rc"
