#!/usr/bin/env bash
# Start the whole platform on this machine (called by `make run` after set-up).
# Each unit gets its own port; GRPC_PORT/HTTP_PORT are set per unit here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# honcho passes its environment to every process; per-unit ports are set with
# a small wrapper so the Procfile stays readable.
export FORM_HTTP_PORT="${FORM_HTTP_PORT:-8081}" RECORD_HTTP_PORT="${RECORD_HTTP_PORT:-8082}" RELAY_HTTP_PORT="${RELAY_HTTP_PORT:-8083}"
exec .venv/bin/honcho -f Procfile start
