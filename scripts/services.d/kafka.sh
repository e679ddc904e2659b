# Kafka: librdkafka's mock cluster (no Kafka server package exists for Debian
# 12) run as a stand-alone process, tools/kafka-mock/fs_kafka_mock.c, which
# this recipe compiles into $STATE/kafka with cc and pkg-config rdkafka (so a
# fresh clone needs no build directory). The mock listens on ephemeral
# 127.0.0.1 ports (3 brokers) and writes its bootstrap list to
# $STATE/kafka/bootstrap; `url kafka` prints kafka://THAT_LIST.
# FS_KAFKA_BOOTSTRAP=host:port[,...] names a cluster that runs already: then
# nothing is started or stopped, and the URL is that list.
KAFKA_STATE="$STATE/kafka"
KAFKA_BOOTFILE="$KAFKA_STATE/bootstrap"

kafka_available() {
  [ -n "${FS_KAFKA_BOOTSTRAP:-}" ] && return 0
  command -v cc >/dev/null && pkg-config --exists rdkafka 2>/dev/null
}

kafka_bootstraps() {
  if [ -n "${FS_KAFKA_BOOTSTRAP:-}" ]; then echo "$FS_KAFKA_BOOTSTRAP"; return 0; fi
  [ -s "$KAFKA_BOOTFILE" ] && head -n1 "$KAFKA_BOOTFILE"
}

kafka_status() {
  local list first host port
  list=$(kafka_bootstraps) || return 1
  [ -n "$list" ] || return 1
  if [ -z "${FS_KAFKA_BOOTSTRAP:-}" ]; then
    [ -f "$KAFKA_STATE/kafka.pid" ] && alive "$(cat "$KAFKA_STATE/kafka.pid")" || return 1
  fi
  first=${list%%,*}
  host=${first%:*} port=${first##*:}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

kafka_url() {
  local list
  list=$(kafka_bootstraps) || { echo "services: kafka is not running (scripts/services.sh start kafka)" >&2; return 1; }
  echo "kafka://$list"
}

kafka_start() {
  kafka_status && return 0
  [ -n "${FS_KAFKA_BOOTSTRAP:-}" ] && { echo "services: no Kafka answers at $FS_KAFKA_BOOTSTRAP" >&2; return 1; }
  kafka_available || { echo "services: kafka needs cc and librdkafka-dev (pkg-config rdkafka)" >&2; return 1; }
  local src="$ROOT/tools/kafka-mock/fs_kafka_mock.c" bin="$KAFKA_STATE/fs_kafka_mock"
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
    # shellcheck disable=SC2046
    cc -O2 -o "$bin.tmp" "$src" $(pkg-config --cflags --libs rdkafka) &&
      mv "$bin.tmp" "$bin" || { echo "services: cannot build $bin" >&2; return 1; }
  fi
  rm -f "$KAFKA_BOOTFILE"
  nohup "$bin" "$KAFKA_BOOTFILE" 3 >"$KAFKA_STATE/kafka.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_STATE/kafka.pid"
  wait_for 15 kafka_status || { echo "services: the kafka mock cluster did not start (see $KAFKA_STATE/kafka.log)" >&2; return 1; }
  echo "services: kafka mock cluster on $(kafka_bootstraps)"
}

kafka_stop() {
  [ -n "${FS_KAFKA_BOOTSTRAP:-}" ] && return 0
  stop_pidfile "$KAFKA_STATE/kafka.pid"
  rm -f "$KAFKA_BOOTFILE"
}
