#!/usr/bin/env bash
# scripts/demo.sh BUILD_DIR BROKER [DEMO_ARGS...]: run the demo services on
# BROKER (memory, redis, kafka, rabbitmq, nats, mqtt). For a broker other
# than the in-process one, start its local server (scripts/services.sh) and
# pass its URL; a server this script started is stopped when the demo ends.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD=$1 BROKER=$2
shift 2
DEMO="$BUILD/examples/demo/faststream-demo"
case "$BROKER" in
  memory) exec "$DEMO" "$@" ;;
  redis | kafka | rabbitmq | nats | mqtt) ;;
  *) echo "demo: unknown broker '$BROKER' (memory, redis, kafka, rabbitmq, nats, mqtt)" >&2; exit 2 ;;
esac
if ! ls "$BUILD/src/brokers/$BROKER"/libfaststream-"$BROKER".* >/dev/null 2>&1; then
  echo "demo: the $BROKER adapter is not built in $BUILD (its client library is missing, or it is not written yet)" >&2
  exit 2
fi
if ! "$ROOT/scripts/services.sh" status "$BROKER" >/dev/null 2>&1; then
  trap '"$ROOT/scripts/services.sh" stop "$BROKER"' EXIT
  "$ROOT/scripts/services.sh" start "$BROKER"
fi
URL=$("$ROOT/scripts/services.sh" url "$BROKER")
echo "demo: $BROKER at $URL"
"$DEMO" --broker "$URL" "$@"
