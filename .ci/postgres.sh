#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the tagging-service tests.
#
#   eval "$(.ci/postgres.sh)"      # exports MLCIL_TEST_POSTGRES_URL (and MLCIL_TEST_POSTGRES_STOP)
#
# Installs Debian's postgresql when absent (needs root, as on CI), runs the server as the
# postgres user with a fresh data directory under /tmp on a free port, creates the database
# mlcil_test and prints the export lines on stdout (everything else goes to stderr).
# Stop it with: eval "$MLCIL_TEST_POSTGRES_STOP"
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "installing postgresql (apt-get)..." >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
DATA=$(mktemp -d /tmp/mlcil-pg.XXXXXX)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DATA"; fi
chmod 700 "$DATA"
as_postgres "$BIN/initdb" -D "$DATA/db" -A trust -U postgres --no-sync >&2
as_postgres "$BIN/pg_ctl" -D "$DATA/db" -l "$DATA/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=on -c max_connections=300" start >&2
as_postgres "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres mlcil_test >&2
echo "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, data in $DATA" >&2
echo "export MLCIL_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$PORT/mlcil_test"
if [ "$(id -u)" = 0 ]; then
  echo "export MLCIL_TEST_POSTGRES_STOP='runuser -u postgres -- $BIN/pg_ctl -D $DATA/db -m fast stop && rm -rf $DATA'"
else
  echo "export MLCIL_TEST_POSTGRES_STOP='$BIN/pg_ctl -D $DATA/db -m fast stop && rm -rf $DATA'"
fi
