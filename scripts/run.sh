#!/usr/bin/env bash
# Start the whole platform on this machine (called by `make run` after set-up).
# Each unit gets its own port; GRPC_PORT/HTTP_PORT are set per unit here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# The supervisor passes its environment to every process; per-unit ports are
# set with a small wrapper so the Procfile stays readable.
export FORM_HTTP_PORT="${FORM_HTTP_PORT:-8081}" RECORD_HTTP_PORT="${RECORD_HTTP_PORT:-8082}" RELAY_HTTP_PORT="${RELAY_HTTP_PORT:-8083}" \
  WORKFLOW_HTTP_PORT="${WORKFLOW_HTTP_PORT:-8084}" WORKER_HTTP_PORT="${WORKER_HTTP_PORT:-8085}" \
  WORKFLOW_RELAY_HTTP_PORT="${WORKFLOW_RELAY_HTTP_PORT:-8086}"
# A unit that crashes is restarted with backoff while the others keep serving
# (honcho would stop them all); `ready` only announces the URL and may exit.
# The stores are stopped after the services, which shut down against a live database.
exec .venv/bin/python -m crm_runtime.supervise -f Procfile --oneshot ready \
  --stop-last record-store --stop-last form-store --stop-last gateway-store --stop-last workflow-store
