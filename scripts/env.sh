# Shared environment for `make run` (sourced). Every value can be overridden
# from the caller's environment, e.g. MONGO_URL / AMQP_URL for real servers.
export CRM_DATA_DIR="${CRM_DATA_DIR:-$PWD/.data}"
# Each service owns its database, and locally each its own SecantusDB process
# (which also spreads the store's single-core work over the cores): the record
# service's records, history and outbox on STORE_PORT, the form service's forms
# on FORM_STORE_PORT, the gateway's users and sessions on GATEWAY_STORE_PORT, the
# workflow's automations, runs and timers on WORKFLOW_STORE_PORT.
export STORE_PORT="${STORE_PORT:-27018}"
export FORM_STORE_PORT="${FORM_STORE_PORT:-27019}"
export GATEWAY_STORE_PORT="${GATEWAY_STORE_PORT:-27020}"
export WORKFLOW_STORE_PORT="${WORKFLOW_STORE_PORT:-27021}"
local_store() { echo "mongodb://127.0.0.1:$1/?directConnection=true"; }
# MONGO_URL set by the caller (one real MongoDB) is every service's database
# unless a service's own URL is given as well.
if [[ -n "${MONGO_URL:-}" ]]; then
  export RECORD_MONGO_URL="${RECORD_MONGO_URL:-$MONGO_URL}"
  export FORM_MONGO_URL="${FORM_MONGO_URL:-$MONGO_URL}"
  export GATEWAY_MONGO_URL="${GATEWAY_MONGO_URL:-$MONGO_URL}"
  export WORKFLOW_MONGO_URL="${WORKFLOW_MONGO_URL:-$MONGO_URL}"
else
  export RECORD_MONGO_URL="${RECORD_MONGO_URL:-$(local_store "$STORE_PORT")}"
  export FORM_MONGO_URL="${FORM_MONGO_URL:-$(local_store "$FORM_STORE_PORT")}"
  export GATEWAY_MONGO_URL="${GATEWAY_MONGO_URL:-$(local_store "$GATEWAY_STORE_PORT")}"
  export WORKFLOW_MONGO_URL="${WORKFLOW_MONGO_URL:-$(local_store "$WORKFLOW_STORE_PORT")}"
  export MONGO_URL="$RECORD_MONGO_URL"
fi
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}"
export FORM_GRPC_ADDR="${FORM_GRPC_ADDR:-127.0.0.1:50051}"
export RECORD_GRPC_ADDR="${RECORD_GRPC_ADDR:-127.0.0.1:50052}"
export WORKFLOW_GRPC_ADDR="${WORKFLOW_GRPC_ADDR:-127.0.0.1:50053}"
export GATEWAY_PORT="${GATEWAY_PORT:-8080}"
export TENANT_TZ="${TENANT_TZ:-Asia/Shanghai}"
export LOG_LEVEL="${LOG_LEVEL:-INFO}"
export PYTHONUNBUFFERED=1
# Up to now one store held every database in $CRM_DATA_DIR/mongo: each service's
# store starts from a copy of it (the other services' databases in a copy are unused).
if [[ -d "$CRM_DATA_DIR/mongo" && ! -e "$CRM_DATA_DIR/mongo-record" && ! -e "$CRM_DATA_DIR/mongo-form" && ! -e "$CRM_DATA_DIR/mongo-gateway" ]]; then
  echo "env.sh: moving $CRM_DATA_DIR/mongo to one store per service (mongo-record, mongo-form, mongo-gateway)" >&2
  cp -a "$CRM_DATA_DIR/mongo" "$CRM_DATA_DIR/mongo-form"
  cp -a "$CRM_DATA_DIR/mongo" "$CRM_DATA_DIR/mongo-gateway"
  mv "$CRM_DATA_DIR/mongo" "$CRM_DATA_DIR/mongo-record"
fi
mkdir -p "$CRM_DATA_DIR/mongo-record" "$CRM_DATA_DIR/mongo-form" "$CRM_DATA_DIR/mongo-gateway" "$CRM_DATA_DIR/mongo-workflow"
# Secrets: generated once per installation and kept under .data (never committed).
secret() {
  local file="$CRM_DATA_DIR/$1"
  if [[ ! -s "$file" ]]; then
    (umask 077; .venv/bin/python -c "$2" > "$file")
  fi
  cat "$file"
}
export JWT_SECRET="${JWT_SECRET:-$(secret jwt-secret 'import secrets; print(secrets.token_urlsafe(48))')}"
# signs principal tokens between the gateway and the services (docs/security.md)
export CRM_INTERNAL_SECRET="${CRM_INTERNAL_SECRET:-$(secret internal-secret 'import secrets; print(secrets.token_urlsafe(48))')}"
export FIELD_ENCRYPTION_KEY="${FIELD_ENCRYPTION_KEY:-$(secret field-key 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}"
