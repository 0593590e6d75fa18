#!/usr/bin/env bash
# pg-cluster.sh start DIR   — initdb a throwaway PostgreSQL cluster in DIR/data (as the
#                             `postgres` user) and start it on 127.0.0.1:<free port>, with its
#                             unix socket in DIR/sock, SCRAM for TCP, trust for the socket, and
#                             TLS on (throwaway cert; its CA in DIR/ca.pem). Writes DIR/port
#                             and DIR/postgres.pid.
# pg-cluster.sh stop DIR    — stop that server (by its PID) and leave DIR for the caller.
# Quiet on success; on failure prints the server log.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=postgres

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || usage_die "usage: pg-cluster.sh start|stop DIR"

case $cmd in
start)
  require_venv
  bindir=$(pg_bindir)
  mkdir -p "$dir/sock"
  ensure_pki "$dir/pki"
  install -m 600 "$PKI/cert.pem" "$dir/server.crt"
  install -m 600 "$PKI/key.pem" "$dir/server.key"
  install -m 644 "$PKI/ca.pem" "$dir/ca.pem" # what a client verifies the server with
  chown -R postgres:postgres "$dir"
  chmod 755 "$dir"
  if ! as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --no-sync --no-instructions -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  fi
  port=$(free_port)
  # setpriv execs postgres, so $! is the server's own PID
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$bindir/postgres" -D "$dir/data" \
    -c listen_addresses=127.0.0.1 -c port="$port" -c unix_socket_directories="$dir/sock" \
    -c password_encryption=scram-sha-256 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=50 -c shared_buffers=16MB \
    -c ssl=on -c ssl_cert_file="$dir/server.crt" -c ssl_key_file="$dir/server.key" \
    -c logging_collector=off >"$dir/postgres.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/postgres.pid"
  echo "$port" >"$dir/port"
  for ((i = 0; i < 100; i++)); do
    if "$bindir/pg_isready" -q -h "$dir/sock" -p "$port" 2>/dev/null; then exit 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  cat "$dir/postgres.log" >&2
  stop_pid "$pid"
  die "PostgreSQL did not start"
  ;;
stop)
  [[ -f $dir/postgres.pid ]] || exit 0
  pid=$(cat "$dir/postgres.pid")
  # SIGINT = fast shutdown; stop_pid escalates if needed
  kill -INT "$pid" 2>/dev/null || true
  stop_pid "$pid"
  rm -f "$dir/postgres.pid"
  ;;
*) usage_die "usage: pg-cluster.sh start|stop DIR" ;;
esac
