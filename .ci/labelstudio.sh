#!/usr/bin/env bash
# Start a throwaway Label Studio server on loopback for the Label Studio ML backend tests.
#
#   eval "$(.ci/labelstudio.sh)"   # exports MLCIL_TEST_LABEL_STUDIO (URL), MLCIL_TEST_LABEL_STUDIO_TOKEN
#                                  # and MLCIL_TEST_LABEL_STUDIO_STOP
#
# Installs label-studio (pinned) into its own virtual environment (.venv-ls in this clone, or
# $MLCIL_LABEL_STUDIO_VENV) when it is not there yet: its pins clash with the project's, so never
# into the project's environment. Starts it offline (no version check, no analytics) on 127.0.0.1
# and a free port with a fresh SQLite data directory under /tmp and a known admin user and API
# token (legacy token auth on), waits until /health answers, and prints the export lines on stdout
# (everything else goes to stderr). Loopback ML backends and webhooks are allowed
# (ML_BLOCK_LOCAL_IP, SSRF_PROTECTION_ENABLED off: the ML backend runs on this machine).
# Stop it with: eval "$MLCIL_TEST_LABEL_STUDIO_STOP"
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.23.2
VENV="${MLCIL_LABEL_STUDIO_VENV:-$PWD/.venv-ls}"
started=$SECONDS
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('label-studio') == '$VERSION'" 2>/dev/null; then
  echo "installing label-studio==$VERSION into $VENV (pip)..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet "label-studio==$VERSION" >&2
  echo "label-studio installed in $((SECONDS - started)) s" >&2
fi
DATA=$(mktemp -d /tmp/mlcil-ls.XXXXXX)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
USER_EMAIL=admin@mlcil.test
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
env LABEL_STUDIO_BASE_DATA_DIR="$DATA" LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false SENTRY_DSN= \
    FRONTEND_SENTRY_DSN= LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true ML_BLOCK_LOCAL_IP=false \
    SSRF_PROTECTION_ENABLED=false WEBHOOK_TIMEOUT="${MLCIL_LS_WEBHOOK_TIMEOUT:-30}" \
    ML_TIMEOUT_SETUP=30 ML_TIMEOUT_HEALTH=10 DJANGO_DB=sqlite LOG_LEVEL=WARNING \
    nohup "$VENV/bin/label-studio" start --no-browser --internal-host 127.0.0.1 --port "$PORT" \
    --data-dir "$DATA/data" --database "$DATA/label_studio.sqlite3" --username "$USER_EMAIL" \
    --password "$PASSWORD" --user-token "$TOKEN" --enable-legacy-api-token \
    >"$DATA/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "label-studio exited; its log:" >&2; tail -n 40 "$DATA/server.log" >&2; exit 1
  fi
  if python3 - "$PORT" "$TOKEN" <<'EOF_PY' 2>/dev/null; then break; fi
import json, sys, urllib.request
port, token = sys.argv[1:]
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/current-user/whoami",
                             headers={"Authorization": f"Token {token}"})
with urllib.request.urlopen(req, timeout=2) as r:
    assert json.load(r)["email"]
EOF_PY
  sleep 1
done
if ! kill -0 "$PID" 2>/dev/null || [ "$((SECONDS - started))" -ge 1200 ]; then
  echo "label-studio did not become healthy; its log:" >&2; tail -n 40 "$DATA/server.log" >&2; exit 1
fi
echo "Label Studio $VERSION on 127.0.0.1:$PORT (pid $PID, data in $DATA): up in $((SECONDS - started)) s" >&2
echo "export MLCIL_TEST_LABEL_STUDIO=http://127.0.0.1:$PORT"
echo "export MLCIL_TEST_LABEL_STUDIO_TOKEN=$TOKEN"
echo "export MLCIL_TEST_LABEL_STUDIO_USER=$USER_EMAIL"
echo "export MLCIL_TEST_LABEL_STUDIO_PASSWORD=$PASSWORD"
echo "export MLCIL_TEST_LABEL_STUDIO_STOP='kill $PID; sleep 1; kill -9 $PID 2>/dev/null; rm -rf $DATA'"
