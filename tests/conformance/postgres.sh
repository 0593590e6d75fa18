#!/usr/bin/env bash
# postgres.sh ENV_DIR
#
# The PostgreSQL files kiln writes, run by the real PostgreSQL (Debian's, whatever major it is)
# in a private network namespace, as the `postgres` OS user:
#
# host flavour — ENV_DIR/postgresql/NAME.conf, pg_hba-NAME.conf, init-NAME.sh (systemd target):
#   a fresh cluster includes the generated settings (only file paths are rewritten, to a
#   throwaway PKI) and uses the generated pg_hba.conf as its hba_file, on the generated address
#   and port. pg_file_settings and pg_hba_file_rules must report no error. The init script runs
#   as the postgres OS user (peer, over the socket), twice (idempotent), with the password on
#   stdin as its header says.
# replicas — compose's NAME-replica-I services (their entrypoint): started against the
#   primary (run with the spec's settings), each must clone it with pg_basebackup, stream
#   (pg_stat_replication), over TLS when the primary has it (pg_stat_ssl), and serve a row written
#   on the primary as a hot standby.
# backups — the host's NAME-backup.service (its ExecStart, as systemd hands it to sh), compose's
#   NAME-backup service and the k8s CronJob NAME-backup (their command, with
#   KILN_BACKUP_ONCE=1): run once against the server, each must leave one complete dump (no
#   .part file, no scratch database) that pg_restore restores with the app's rows, and delete
#   only the dumps older than `keep` days.
# container flavour — ENV_DIR/compose/postgres/init-NAME.sh and the `init.sh` of the k8s
#   ConfigMap NAME-init: a cluster set up as the official image sets it up (initdb's trust
#   lines, then `host all all all scram-sha-256`, the superuser's password = POSTGRES_PASSWORD,
#   POSTGRES_DB created), then the script is *sourced* by bash under `set -Eeo pipefail`, as the
#   entrypoint sources it. Without a password, sourcing must fail.
#
# Then, for both: the app role logs in over TCP with its password (SCRAM), is no superuser and
# has no CREATEDB/CREATEROLE/REPLICATION, can create a table in `public` (migrations), finds
# every declared extension; the superuser cannot log in over TCP with any password, and the
# app cannot reach another database.
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=postgres

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
bindir=$(pg_bindir)
unshare --net -- true 2>/dev/null || usage_die "unshare --net does not work here (needs root)"

if [[ ${KILN_PG_NS:-} != 1 ]]; then
  # Re-run inside a private network namespace: the generated ports are nobody else's.
  exec unshare --net -- env KILN_PG_NS=1 bash "${BASH_SOURCE[0]}" "$ENV_DIR"
fi
ip link set lo up
# An address that is not the loopback, for the image's `host all all all` line.
ip addr add 192.0.2.10/32 dev lo

WORK=$(make_work)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -INT "$p" 2>/dev/null || true
    stop_pid "$p"
  done
  [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
ensure_pki "$WORK/pki"
PW='kiln-conformance-app-password'
RPW='kiln-conformance-replication-password'

# sql_value SCRIPT PATTERN: the first quoted identifier after PATTERN in the script's SQL.
sql_value() { sed -nE "s/^$2 \"([^\"]+)\".*/\1/p" "$1" | head -n 1; }

server_pid=""
start_server() { # DIR PORT → starts postgres on DIR/data (PID in server_pid), waits for it
  local d=$1 port=$2 pid i
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$bindir/postgres" -D "$d/data" \
    >"$d/server.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  server_pid=$pid
  for ((i = 0; i < 100; i++)); do
    if "$bindir/pg_isready" -q -h "$d/sock" -p "$port" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$d/server.log" >&2
  return 1
}

stop_server() { # the server start_server started last (fast shutdown)
  [[ -n $server_pid ]] || return 0
  kill -INT "$server_pid" 2>/dev/null || true
  stop_pid "$server_pid"
  server_pid=""
}

as_pg_psql() { # DIR PORT SQL → psql as the superuser over the socket (peer or trust)
  as_postgres psql -X -At -v ON_ERROR_STOP=1 -h "$1/sock" -p "$2" -U postgres -d postgres -c "$3"
}

tcp_psql() { # HOST PORT USER PASSWORD DB SQL
  PGPASSWORD=$4 PGCONNECT_TIMEOUT=5 psql -X -At -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U "$3" -d "$5" -c "$6"
}

# The checks both flavours share: the app's rights, the superuser's, the extensions.
check_roles() { # LABEL SCRIPT HOST PORT SUPERUSER_PASSWORD
  local label=$1 script=$2 host=$3 port=$4 su_pw=$5 user db out ext
  user=$(sql_value "$script" 'ALTER ROLE')
  db=$(sql_value "$script" 'ALTER DATABASE')
  [[ -n $user && -n $db ]] || { err "$label: no ALTER ROLE / ALTER DATABASE in the script"; return 1; }
  if ! out=$(tcp_psql "$host" "$port" "$user" "$PW" "$db" \
    "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user" 2>&1); then
    err "$label: the app ($user) cannot log in to $db over TCP with its password: $out"
    return 1
  fi
  [[ $out == 'f|f|f|f|f' ]] || { err "$label: $user has rights it must not have (super|createdb|createrole|replication|bypassrls = $out)"; return 1; }
  if ! out=$(tcp_psql "$host" "$port" "$user" "$PW" "$db" \
    "CREATE TABLE kiln_probe (id int); INSERT INTO kiln_probe VALUES (1); DROP TABLE kiln_probe" 2>&1); then
    err "$label: $user cannot create a table in $db (migrations would fail): $out"
    return 1
  fi
  for ext in $(sed -nE 's/^CREATE EXTENSION IF NOT EXISTS "([^"]+)";$/\1/p' "$script"); do
    out=$(tcp_psql "$host" "$port" "$user" "$PW" "$db" "SELECT count(*) FROM pg_extension WHERE extname = '$ext'")
    [[ $out == 1 ]] || { err "$label: extension $ext is not in $db"; return 1; }
  done
  if out=$(tcp_psql "$host" "$port" postgres "$su_pw" postgres "SELECT 1" 2>&1); then
    err "$label: the superuser logs in over TCP with a password; it must not"
    return 1
  fi
  if out=$(tcp_psql "$host" "$port" "$user" "$PW" postgres "SELECT 1" 2>&1); then
    err "$label: $user reaches database postgres; only its own database is its"
    return 1
  fi
  echo "  $label: $user logs in to $db (SCRAM), owns it, no superuser; superuser refused over TCP"
}

# The scheduled dump, run once against the cluster: it must leave one complete dump (no
# .part, no scratch database) that restores with the app's data, and prune only the dumps
# older than `keep` days.
check_backup() { # LABEL SCRIPT(sh, already unescaped) DIR-IN-SCRIPT ENVFILE HOST PORT DB USER SOCKDIR
  local label=$1 script=$2 dir=$3 envfile=$4 host=$5 port=$6 db=$7 user=$8 sock=$9 t out keep glob n
  t=$(mktemp -d "$WORK/backup.XXXXXX")
  mkdir -p "$t/dumps"
  chown -R postgres:postgres "$t"
  sed "s|$dir|$t/dumps|g" "$script" >"$t/run.sh"
  tcp_psql "$host" "$port" "$user" "$PW" "$db" \
    "SET client_min_messages = warning; DROP TABLE IF EXISTS kiln_backup_probe; CREATE TABLE kiln_backup_probe (id int); INSERT INTO kiln_backup_probe VALUES (1), (2), (3)" >/dev/null
  keep=$(sed -nE 's/.*-mtime \+([0-9]+) -delete.*/\1/p' "$t/run.sh" | head -n 1)
  glob=$(sed -nE 's/.*-name "([^"]+)" -mtime.*/\1/p' "$t/run.sh" | head -n 1)
  if [[ -n $keep ]]; then
    as_postgres touch -d "$((keep + 2)) days ago" "$t/dumps/${glob/\*/20000101T000000Z}"
    as_postgres touch -d "$((keep > 0 ? keep - 1 : 0)) days ago" "$t/dumps/${glob/\*/20000102T000000Z}"
  fi
  if ! out=$(cd "$t" && as_postgres env -i PATH="$PATH" HOME=/tmp KILN_BACKUP_ONCE=1 $(cat "$envfile") sh -c "$(cat "$t/run.sh")" 2>&1); then
    err "$label: the dump failed: $out"
    return 1
  fi
  n=$(find "$t/dumps" -name '*.dump' -newer "$t/run.sh" | wc -l)
  [[ $n == 1 ]] || { err "$label: $n new dumps (one expected): $(ls "$t/dumps")"; return 1; }
  if [[ -n $(find "$t/dumps" -name '*.part') ]]; then err "$label: a .part file is left"; return 1; fi
  out=$(as_pg_psql "$sock" "$port" "SELECT count(*) FROM pg_database WHERE datname LIKE '%restore_check'")
  [[ $out == 0 ]] || { err "$label: the scratch database of the restore check is left"; return 1; }
  as_pg_psql "$sock" "$port" "DROP DATABASE IF EXISTS kiln_restored" >/dev/null 2>&1
  as_pg_psql "$sock" "$port" "CREATE DATABASE kiln_restored" >/dev/null
  if ! out=$(as_postgres pg_restore --exit-on-error --no-owner -h "$sock/sock" -p "$port" -U postgres \
    -d kiln_restored "$(find "$t/dumps" -name '*.dump' -newer "$t/run.sh")" 2>&1); then
    err "$label: the dump does not restore: $out"
    return 1
  fi
  out=$(as_postgres psql -X -At -h "$sock/sock" -p "$port" -U postgres -d kiln_restored -c "SELECT count(*) FROM kiln_backup_probe")
  [[ $out == 3 ]] || { err "$label: the restored dump holds $out rows of 3"; return 1; }
  if [[ -n $keep ]]; then
    [[ ! -e $t/dumps/${glob/\*/20000101T000000Z} ]] || { err "$label: a dump older than $keep days was kept"; return 1; }
    [[ -e $t/dumps/${glob/\*/20000102T000000Z} ]] || { err "$label: a dump younger than $keep days was deleted"; return 1; }
  fi
  echo "  $label: one dump, complete, restores the app's rows${keep:+; older than $((keep + 1)) days pruned}"
}

# A streaming replica, from its entrypoint: cloned from the running primary (at 192.0.2.10)
# by its own pg_basebackup, then a hot standby on 192.0.2.11. The primary must report it
# streaming in pg_stat_replication, and a row written on the primary must be read on it.
check_replica() { # LABEL SCRIPT PRIMARY_DIR PORT
  local label=$1 script=$2 pd=$3 port=$4 r out i rpid
  r=$(mktemp -d "$WORK/replica.XXXXXX")
  mkdir -p "$r/sock"
  sed -E -e "s/--host=[^ ]+/--host=192.0.2.10/g" \
    -e "s|ssl_cert_file=[^ ]+|ssl_cert_file=$pd/server.crt|; s|ssl_key_file=[^ ]+|ssl_key_file=$pd/server.key|; s|ssl_ca_file=[^ ]+|ssl_ca_file=$pd/ca.crt|" \
    "$script" >"$r/entry.sh"
  chown -R postgres:postgres "$r"
  ip addr add 192.0.2.11/32 dev lo 2>/dev/null || true
  setpriv --reuid=postgres --regid=postgres --init-groups -- env -i PATH="$PATH" HOME=/tmp \
    PGDATA="$r/data" PGPASSWORD="$RPW" sh -c "$(cat "$r/entry.sh")" sh \
    -c listen_addresses=192.0.2.11 -c unix_socket_directories="$r/sock" -c shared_buffers=32MB \
    -c effective_cache_size=128MB -c fsync=off >"$r/replica.log" 2>&1 &
  rpid=$!
  pids+=("$rpid")
  out=""
  for ((i = 0; i < 150; i++)); do
    out=$(as_pg_psql "$pd" "$port" "SELECT state FROM pg_stat_replication" 2>/dev/null || true)
    [[ $out == streaming ]] && break
    kill -0 "$rpid" 2>/dev/null || break
    sleep 0.2
  done
  if [[ $out != streaming ]]; then
    err "$label: the replica does not stream (pg_stat_replication: '${out}'): $(tail -n 8 "$r/replica.log")"
    kill -INT "$rpid" 2>/dev/null || true; stop_pid "$rpid"
    return 1
  fi
  # A primary with TLS streams to its replicas over TLS only.
  local tls=""
  if grep -qx "ssl = 'on'" "$pd/data/postgresql.conf"; then
    out=$(as_pg_psql "$pd" "$port" "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)" 2>&1 || true)
    if [[ $out != t ]]; then
      err "$label: the primary has TLS but the replica streams without it (pg_stat_ssl: '$out')"
      kill -INT "$rpid" 2>/dev/null || true; stop_pid "$rpid"
      return 1
    fi
    tls=" over TLS"
  fi
  as_pg_psql "$pd" "$port" "CREATE TABLE IF NOT EXISTS kiln_replica_probe (id int); INSERT INTO kiln_replica_probe VALUES (42)" >/dev/null
  for ((i = 0; i < 50; i++)); do
    out=$(as_postgres psql -X -At -h "$r/sock" -p "$port" -U postgres -d postgres \
      -c "SELECT pg_is_in_recovery()::text || ' ' || count(*) FROM kiln_replica_probe" 2>/dev/null || true)
    [[ $out == "true 1" ]] && break
    sleep 0.2
  done
  kill -INT "$rpid" 2>/dev/null || true
  stop_pid "$rpid"
  [[ $out == "true 1" ]] || { err "$label: the primary's row did not reach the standby ('$out')"; return 1; }
  echo "  $label: cloned by pg_basebackup, streaming$tls (pg_stat_replication), a hot standby with the primary's rows"
}

rc=0
n=0

# --- host flavour ---------------------------------------------------------------------------
shopt -s nullglob
for conf in "$ENV_DIR"/postgresql/*.conf; do
  base=$(basename "$conf" .conf)
  [[ $base == pg_hba-* ]] && continue
  hba="$ENV_DIR/postgresql/pg_hba-$base.conf"
  script="$ENV_DIR/postgresql/init-$base.sh"
  [[ -f $hba && -f $script ]] || { err "postgresql/$base.conf without pg_hba-$base.conf and init-$base.sh"; rc=1; continue; }
  n=$((n + 1))
  d="$WORK/host-$base"
  mkdir -p "$d/sock"
  install -m 600 "$PKI/cert.pem" "$d/server.crt"
  install -m 600 "$PKI/key.pem" "$d/server.key"
  install -m 644 "$PKI/ca.pem" "$d/ca.crt"
  # Host file paths (TLS files) point at the throwaway PKI; nothing else changes.
  sed -E -e "s|^ssl_cert_file = .*|ssl_cert_file = '$d/server.crt'|" \
    -e "s|^ssl_key_file = .*|ssl_key_file = '$d/server.key'|" \
    -e "s|^ssl_ca_file = .*|ssl_ca_file = '$d/ca.crt'|" "$conf" >"$d/kiln.conf"
  cp "$hba" "$d/pg_hba.conf"
  cp "$script" "$d/init.sh"
  chown -R postgres:postgres "$d"
  port=$(sed -nE 's/^port = ([0-9]+)$/\1/p' "$d/kiln.conf")
  if ! as_postgres "$bindir/initdb" -D "$d/data" -U postgres --auth=peer --no-sync \
    --no-instructions -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1; then
    cat "$d/initdb.log" >&2
    exit 2
  fi
  {
    echo "include '$d/kiln.conf'"
    echo "hba_file = '$d/pg_hba.conf'"
    echo "unix_socket_directories = '$d/sock'"
    echo "fsync = off"
  } >>"$d/data/postgresql.conf"
  if ! start_server "$d" "$port"; then
    err "postgresql/$base.conf: PostgreSQL does not start with it and pg_hba-$base.conf"
    rc=1
    stop_server
    continue
  fi
  out=$(as_pg_psql "$d" "$port" "SELECT sourcefile || ':' || sourceline || ' ' || name || ': ' || error FROM pg_file_settings WHERE error IS NOT NULL")
  [[ -z $out ]] || { err "postgresql/$base.conf: $out"; rc=1; }
  out=$(as_pg_psql "$d" "$port" "SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL")
  [[ -z $out ]] || { err "postgresql/pg_hba-$base.conf: line $out"; rc=1; }
  # Every setting of the file is the server's (none shadowed by another file).
  out=$(as_pg_psql "$d" "$port" "SELECT name FROM pg_file_settings WHERE sourcefile = '$d/kiln.conf' AND NOT applied")
  [[ -z $out ]] || { err "postgresql/$base.conf: not applied: $out"; rc=1; }
  for run in 1 2; do
    if ! out=$(cd "$d" && printf '%s\n' "$PW" | as_postgres env PGHOST="$d/sock" sh init.sh 2>&1); then
      err "postgresql/init-$base.sh (run $run) failed: $out"
      rc=1
      stop_server
      continue 2
    fi
  done
  check_roles "postgresql/init-$base.sh" "$d/init.sh" 127.0.0.1 "$port" "$PW" || rc=1
  # The host's pgbouncer in front of this server, with the roles the init script made: the app
  # logs in through it by SCRAM with its own password.
  pgb_ini="$ENV_DIR/pgbouncer/pgbouncer.ini"
  db=$(sql_value "$d/init.sh" 'ALTER DATABASE')
  if [[ -f $pgb_ini ]] && grep -Eq "dbname=$db( |\$)" "$pgb_ini"; then
    require_venv
    mkdir -p "$d/pgb-cluster" "$d/pgb"
    printf '%s\n' "$port" >"$d/pgb-cluster/port"
    ln -sfn "$d/sock" "$d/pgb-cluster/sock"
    cp "$PKI/ca.pem" "$d/pgb-cluster/ca.pem"
    if out=$(KILN_PGB_APP_USER=$(sql_value "$d/init.sh" 'ALTER ROLE') KILN_PGB_APP_PASSWORD=$PW \
      "$VPY" "$CONF_DIR/pgbouncer_check.py" "$pgb_ini" "$d/pgb" "$d/pgb-cluster" "$PKI" 2>&1); then
      echo "  pgbouncer/pgbouncer.ini in front of postgresql/$base.conf, with init-$base.sh's roles:"
      printf '%s\n' "$out" | sed 's/^/  /'
    else
      err "pgbouncer/pgbouncer.ini in front of postgresql/$base.conf: $out"
      rc=1
    fi
  fi
  for unit in "$ENV_DIR"/systemd/*-"$base"-backup.service; do
    # The unit's one ExecStart, as sh gets it from systemd ($$ → $, %% → %).
    sed -nE "s/^ExecStart=\/bin\/sh -c '(.*)'$/\1/p" "$unit" | sed -e 's/\$\$/$/g' -e 's/%%/%/g' >"$d/backup.sh"
    dir=$(sed -nE 's/^StateDirectory=(.*)$/\/var\/lib\/\1/p' "$unit")
    sed -nE 's/^Environment=(.*)$/\1/p' "$unit" | tr ' ' '\n' >"$d/backup.env"
    echo "PGHOST=$d/sock" >>"$d/backup.env"
    user=$(sql_value "$d/init.sh" 'ALTER ROLE')
    db=$(sql_value "$d/init.sh" 'ALTER DATABASE')
    check_backup "systemd/$(basename "$unit")" "$d/backup.sh" "$dir" "$d/backup.env" 127.0.0.1 "$port" "$db" "$user" "$d" || rc=1
  done
  stop_server
done

# --- container flavour ----------------------------------------------------------------------
container_scripts=("$ENV_DIR"/compose/postgres/init-*.sh)
if [[ -f $ENV_DIR/compose/compose.yaml ]]; then
  mkdir -p "$WORK/compose"
  # compose's scheduled dumps, next to the init scripts they belong to ($$ → $).
  "$VPY" - "$ENV_DIR/compose/compose.yaml" "$WORK/compose" <<'PY'
import pathlib, sys, yaml
doc, out = yaml.safe_load(open(sys.argv[1])), pathlib.Path(sys.argv[2])
import re
for name, svc in (doc.get("services") or {}).items():
    if (svc.get("image") or "").startswith("postgres") and isinstance(svc.get("command"), list) \
            and svc["command"][:1] == ["postgres"]:
        # The primary's own settings (`-c k=v` pairs), as postgresql.conf lines.
        args = [a.replace("$$", "$") for a in svc["command"][1:]]
        lines = [f"{a.split('=', 1)[0]} = '{a.split('=', 1)[1]}'" for a in args if a != "-c" and "=" in a]
        (out / f"init-{name}.settings").write_text("\n".join(lines) + "\n")
    m = re.fullmatch(r"(.+)-replica-(\d+)", name)
    if m and isinstance(svc.get("entrypoint"), list):
        (out / f"init-{m.group(1)}.replica-{m.group(2)}").write_text(svc["entrypoint"][2].replace("$$", "$"))
    if not name.endswith("-backup") or "command" not in svc:
        continue
    db = name.removesuffix("-backup")
    (out / f"init-{db}.backup").write_text(svc["command"][2].replace("$$", "$"))
    env = svc.get("environment") or {}
    (out / f"init-{db}.backup.env").write_text("".join(f"{k}={env[k]}\n" for k in ("PGUSER", "PGDATABASE") if k in env))
PY
fi
if [[ -d $ENV_DIR/k8s ]]; then
  mkdir -p "$WORK/k8s"
  "$VPY" - "$ENV_DIR/k8s" "$WORK/k8s" <<'PY'
import pathlib, sys, yaml
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(src.glob("configmap-*-init.yaml")):
    doc = yaml.safe_load(f.read_text())
    (out / (f.stem.removeprefix("configmap-") + ".sh")).write_text(doc["data"]["init.sh"])
for f in sorted(src.glob("cronjob-*-backup.yaml")):
    c = yaml.safe_load(f.read_text())["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    name = f.stem.removeprefix("cronjob-").removesuffix("-backup")
    (out / f"{name}-init.backup").write_text(c["command"][2])
    env = [f"{e['name']}={e['value']}" for e in c.get("env", []) if "value" in e and e["name"] in ("PGUSER", "PGDATABASE")]
    (out / f"{name}-init.backup.env").write_text("\n".join(env) + "\n")
PY
  container_scripts+=("$WORK"/k8s/*.sh)
fi
for script in "${container_scripts[@]}"; do
  label=${script#"$ENV_DIR"/}
  label=${label#"$WORK"/}
  n=$((n + 1))
  d="$WORK/c$n"
  mkdir -p "$d/sock"
  cp "$script" "$d/init.sh"
  printf '%s\n' "$PW" >"$d/pwfile"
  chown -R postgres:postgres "$d"
  port=$(sed -nE 's/.*--port "\$\{PGPORT:-([0-9]+)\}".*/\1/p' "$d/init.sh" | head -n 1)
  db=$(sql_value "$d/init.sh" 'ALTER DATABASE')
  # As the image's entrypoint: initdb with the superuser's password, its trust lines, then
  # `host all all all scram-sha-256` (POSTGRES_HOST_AUTH_METHOD).
  if ! as_postgres "$bindir/initdb" -D "$d/data" -U postgres --pwfile="$d/pwfile" --no-sync \
    --no-instructions -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1; then
    cat "$d/initdb.log" >&2
    exit 2
  fi
  echo "host all all all scram-sha-256" >>"$d/data/pg_hba.conf"
  # compose's primary runs with the spec's settings: so does this one (file paths to the
  # throwaway PKI, shared_buffers kept small; a replica must match the primary's limits).
  settings="$WORK/compose/$(basename "${script%.sh}").settings"
  if [[ $script != "$WORK"/k8s/* && -f $settings ]]; then
    install -o postgres -m 600 "$PKI/cert.pem" "$d/server.crt"
    install -o postgres -m 600 "$PKI/key.pem" "$d/server.key"
    install -o postgres -m 644 "$PKI/ca.pem" "$d/ca.crt"
    sed -E -e "s|^ssl_cert_file = .*|ssl_cert_file = '$d/server.crt'|" \
      -e "s|^ssl_key_file = .*|ssl_key_file = '$d/server.key'|" \
      -e "s|^ssl_ca_file = .*|ssl_ca_file = '$d/ca.crt'|" \
      -e "/^(shared_buffers|effective_cache_size|port) = /d" "$settings" >>"$d/data/postgresql.conf"
  fi
  {
    echo "listen_addresses = '127.0.0.1,192.0.2.10'"
    echo "port = $port"
    echo "unix_socket_directories = '$d/sock'"
    echo "password_encryption = 'scram-sha-256'"
    echo "fsync = off"
  } >>"$d/data/postgresql.conf"
  start_server "$d" "$port" || { err "$label: the image-like cluster did not start"; exit 2; }
  as_pg_psql "$d" "$port" "CREATE DATABASE \"$db\"" >/dev/null
  entry() { # PASSWORD → sources the script as docker-entrypoint.sh does
    (cd "$d" && as_postgres env -i PATH="$PATH" HOME=/tmp PGHOST="$d/sock" POSTGRES_USER=postgres \
      POSTGRES_DB="$db" POSTGRES_PASSWORD="$1" KILN_REPLICATION_PASSWORD="$RPW" PGDATA="$d/data" \
      bash -c 'set -Eeo pipefail; . ./init.sh; echo kiln-sourced-ok')
  }
  if out=$(entry "" 2>&1); then
    err "$label: sourced without POSTGRES_PASSWORD, it succeeded; it must fail"
    rc=1
  fi
  if ! out=$(entry "$PW" 2>&1) || [[ $out != *kiln-sourced-ok* ]]; then
    err "$label: sourcing it as the entrypoint does failed: $out"
    rc=1
    stop_server
    continue
  fi
  check_roles "$label" "$d/init.sh" 192.0.2.10 "$port" "$PW" || rc=1
  if grep -qx "ssl = 'on'" "$d/data/postgresql.conf"; then
    user=$(sql_value "$d/init.sh" 'ALTER ROLE')
    if ! out=$(PGSSLMODE=verify-full PGSSLROOTCERT="$PKI/ca.pem" PGPASSWORD=$PW psql -X -At -h 127.0.0.1 -p "$port" -U "$user" -d "$db" \
      -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>&1) || [[ $out != t ]]; then
      err "$label: the spec's TLS settings do not serve TLS: $out"
      rc=1
    else
      echo "  $label: TLS from the spec's settings (verify-full against the throwaway CA)"
    fi
  fi
  # The image's entrypoint restarts the server after the init scripts: pg_hba.conf is re-read.
  as_pg_psql "$d" "$port" "SELECT pg_reload_conf()" >/dev/null
  for replica in "$WORK/compose/$(basename "${script%.sh}")".replica-*; do
    [[ $script != "$WORK"/k8s/* ]] || break
    pname=$(basename "${script%.sh}")
    check_replica "compose service ${pname#init-}-replica-${replica##*.replica-}" "$replica" "$d" "$port" || rc=1
  done
  # The scheduled dump that goes with this server (compose service, k8s CronJob).
  case $script in
  "$WORK"/k8s/*) backup=${script%.sh}.backup ;;
  *) backup="$WORK/compose/$(basename "${script%.sh}").backup" ;;
  esac
  if [[ -f $backup ]]; then
    { cat "$backup.env"; echo "PGHOST=192.0.2.10"; echo "PGPORT=$port"; echo "PGPASSWORD=$PW"; } >"$d/backup.env"
    user=$(sql_value "$d/init.sh" 'ALTER ROLE')
    dir=$(sed -nE 's/^mkdir -p (.*)$/\1/p' "$backup" | head -n 1)
    case $script in
    "$WORK"/k8s/*) blabel="k8s CronJob $(basename "${script%-init.sh}")-backup" ;;
    *) blabel="compose service $(basename "${script%.sh}" | sed 's/^init-//')-backup" ;;
    esac
    check_backup "$blabel" "$backup" "$dir" "$d/backup.env" 192.0.2.10 "$port" "$db" "$user" "$d" || rc=1
  fi
  stop_server
done

((n)) || usage_die "no postgresql/*.conf, compose/postgres/init-*.sh or k8s init ConfigMap in $ENV_DIR"
exit "$rc"
