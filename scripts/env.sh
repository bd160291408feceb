# Shared environment for `make run` (sourced). Every value can be overridden
# from the caller's environment, e.g. MONGO_URL / AMQP_URL for real servers.
export CRM_DATA_DIR="${CRM_DATA_DIR:-$PWD/.data}"
export STORE_PORT="${STORE_PORT:-27018}"
export MONGO_URL="${MONGO_URL:-mongodb://127.0.0.1:${STORE_PORT}/?directConnection=true}"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}"
export FORM_GRPC_ADDR="${FORM_GRPC_ADDR:-127.0.0.1:50051}"
export RECORD_GRPC_ADDR="${RECORD_GRPC_ADDR:-127.0.0.1:50052}"
export GATEWAY_PORT="${GATEWAY_PORT:-8080}"
export TENANT_TZ="${TENANT_TZ:-Asia/Shanghai}"
export LOG_LEVEL="${LOG_LEVEL:-INFO}"
export PYTHONUNBUFFERED=1
mkdir -p "$CRM_DATA_DIR/mongo"
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
