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
  stop_server
done

# --- container flavour ----------------------------------------------------------------------
container_scripts=("$ENV_DIR"/compose/postgres/init-*.sh)
if [[ -d $ENV_DIR/k8s ]]; then
  mkdir -p "$WORK/k8s"
  "$VPY" - "$ENV_DIR/k8s" "$WORK/k8s" <<'PY'
import pathlib, sys, yaml
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(src.glob("configmap-*-init.yaml")):
    doc = yaml.safe_load(f.read_text())
    (out / (f.stem.removeprefix("configmap-") + ".sh")).write_text(doc["data"]["init.sh"])
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
      POSTGRES_DB="$db" POSTGRES_PASSWORD="$1" bash -c 'set -Eeo pipefail; . ./init.sh; echo kiln-sourced-ok')
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
  stop_server
done

((n)) || usage_die "no postgresql/*.conf, compose/postgres/init-*.sh or k8s init ConfigMap in $ENV_DIR"
exit "$rc"
