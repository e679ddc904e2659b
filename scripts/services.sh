#!/usr/bin/env bash
# Start or stop the local broker servers the integration tests use, each on
# loopback with its state under build/services. Usage: services.sh start|stop|status
#   redis-server  127.0.0.1:${FS_REDIS_PORT:-6379}
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${FS_SERVICES_DIR:-$ROOT/build/services}"
REDIS_PORT="${FS_REDIS_PORT:-6379}"

wait_for() { # wait_for SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}

start_redis() {
  command -v redis-server >/dev/null || { echo "services: redis-server not installed" >&2; return 1; }
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then return 0; fi
  mkdir -p "$STATE/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE/redis" \
    --appendonly yes --appendfsync always --save "" --daemonize yes \
    --pidfile "$STATE/redis/redis.pid" --logfile "$STATE/redis/redis.log"
  wait_for 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping || { echo "services: redis did not start" >&2; return 1; }
  echo "services: redis-server on 127.0.0.1:$REDIS_PORT"
}

stop_pidfile() {
  local f="$1"
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

case "${1:-}" in
  start) start_redis ;;
  stop) stop_pidfile "$STATE/redis/redis.pid" ;;
  status) redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
