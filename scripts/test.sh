#!/usr/bin/env bash
# The whole suite: unit, integration (real SecantusDB + RabbitMQ) and end-to-end
# (the platform started as processes, driven through the gateway's REST API).
# Called by `make test` after set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}"
dirs=()
for d in services/runtime/tests services/schema/tests services/form/tests services/record/tests services/workflow/tests gateway/tests tests/e2e; do
  [[ -d "$d" ]] && dirs+=("$d")
done
set +e
.venv/bin/python -m pytest "${dirs[@]}" "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure here." >&2
  exit 1
fi
exit $rc
