# redis-server on 127.0.0.1:${FS_REDIS_PORT:-6379}, append-only file on.
REDIS_PORT="${FS_REDIS_PORT:-6379}"

redis_available() { command -v redis-server >/dev/null; }

redis_status() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_url() { echo "redis://127.0.0.1:$REDIS_PORT"; }

redis_start() {
  redis_available || { echo "services: redis-server is not installed" >&2; return 1; }
  redis_status && return 0
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE/redis" \
    --appendonly yes --appendfsync always --save "" --daemonize yes \
    --pidfile "$STATE/redis/redis.pid" --logfile "$STATE/redis/redis.log"
  wait_for 10 redis_status || { echo "services: redis did not start" >&2; return 1; }
  echo "services: redis-server on 127.0.0.1:$REDIS_PORT"
}

redis_stop() { stop_pidfile "$STATE/redis/redis.pid"; }
