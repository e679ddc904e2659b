# nats-server -js on 127.0.0.1:${FS_NATS_PORT:-14222}, monitoring on
# ${FS_NATS_MONITOR_PORT:-18222} (/healthz says when it is ready), JetStream
# file storage under $STATE/nats/data.
NATS_PORT="${FS_NATS_PORT:-14222}"
NATS_MONITOR_PORT="${FS_NATS_MONITOR_PORT:-18222}"

nats_available() { command -v nats-server >/dev/null; }

nats_status() { curl -fs "http://127.0.0.1:$NATS_MONITOR_PORT/healthz" 2>/dev/null | grep -q ok; }

nats_url() { echo "nats://127.0.0.1:$NATS_PORT"; }

nats_start() {
  nats_available || { echo "services: nats-server is not installed" >&2; return 1; }
  nats_status && return 0
  mkdir -p "$STATE/nats/data"
  # Its output goes to the log file, never to our stdout (a pipe would stay open).
  nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -js -sd "$STATE/nats/data" \
    -P "$STATE/nats/nats.pid" -l "$STATE/nats/nats.log" </dev/null >/dev/null 2>&1 &
  wait_for 10 nats_status || { echo "services: nats-server did not start" >&2; return 1; }
  echo "services: nats-server -js on 127.0.0.1:$NATS_PORT (monitor $NATS_MONITOR_PORT)"
}

nats_stop() { stop_pidfile "$STATE/nats/nats.pid"; }
