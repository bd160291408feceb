#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers at AMQP_URL (default: the local one).
# Uses the running broker, else starts the local rabbitmq-server, else installs
# it from the OS packages when running as root. Says clearly when it cannot.
set -euo pipefail
url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}"
hostport=$(python3 - "$url" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
print(f"{u.hostname or '127.0.0.1'} {u.port or 5672}")
PY
)
read -r host port <<< "$hostport"
up() { python3 -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('$host', $port)))"; }
if up; then exit 0; fi
if [[ "$host" != "127.0.0.1" && "$host" != "localhost" ]]; then
  echo "RabbitMQ at $host:$port (AMQP_URL) does not answer; start it or point AMQP_URL elsewhere." >&2
  exit 1
fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "RabbitMQ is not installed; installing it from the OS packages..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  else
    echo "RabbitMQ is not running and not installed. Install rabbitmq-server (or run as root so that" >&2
    echo "this script can), or set AMQP_URL to a running broker." >&2
    exit 1
  fi
fi
echo "Starting the local RabbitMQ..." >&2
rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 1 60); do
  if up; then exit 0; fi
  sleep 1
done
echo "RabbitMQ did not come up on $host:$port within 60 s; see /var/log/rabbitmq." >&2
exit 1
