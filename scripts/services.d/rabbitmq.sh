# rabbitmq-server on 127.0.0.1:${FS_RABBITMQ_PORT:-26672} (AMQP) and
# ${FS_RABBITMQ_TLS_PORT:-26671} (AMQPS, certificates of a test CA made here
# under $STATE/rabbitmq/tls: ca.pem, server.pem/key for "localhost" and
# 127.0.0.1, client.pem/key), without systemd: Debian's /usr/sbin wrapper
# su's to the rabbitmq user, so the real script runs directly, with HOME (the
# Erlang cookie), the node's state and logs under $STATE/rabbitmq, its own
# epmd on ${FS_RABBITMQ_EPMD_PORT:-24369} and the distribution port
# ${FS_RABBITMQ_DIST_PORT:-26673} bound to loopback only. Ready after 5-10 s.
RABBITMQ_PORT="${FS_RABBITMQ_PORT:-26672}"
RABBITMQ_TLS_PORT="${FS_RABBITMQ_TLS_PORT:-26671}"
RABBITMQ_DIST="${FS_RABBITMQ_DIST_PORT:-26673}"
RABBITMQ_EPMD="${FS_RABBITMQ_EPMD_PORT:-24369}"
RABBITMQ_BIN=/usr/lib/rabbitmq/bin

rabbitmq_available() { [ -x "$RABBITMQ_BIN/rabbitmq-server" ] && command -v openssl >/dev/null; }

rabbitmq_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

rabbitmq_status() { rabbitmq_port_open "$RABBITMQ_PORT"; }

rabbitmq_url() { echo "amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT/"; }

# The environment of the node and of rabbitmqctl (a subshell's: nothing leaks).
rabbitmq_env() {
  local d="$STATE/rabbitmq"
  export HOME="$d/home"
  export RABBITMQ_NODENAME="fs$RABBITMQ_PORT@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$RABBITMQ_PORT"
  export RABBITMQ_DIST_PORT="$RABBITMQ_DIST"
  export ERL_EPMD_PORT="$RABBITMQ_EPMD"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$d/log"
  export RABBITMQ_LOGS="$d/log/rabbit.log"
  export RABBITMQ_PID_FILE="$d/rabbit.pid"
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
  export RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# A test CA, a server certificate for localhost/127.0.0.1 and a client certificate.
rabbitmq_tls() {
  local t="$1"
  [ -f "$t/client.pem" ] && return 0
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=faststream test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" >/dev/null 2>&1 || return 1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$t/server.ext"
  local who
  for who in server client; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$([ $who = server ] && echo localhost || echo fs-client)" \
      -keyout "$t/$who.key" -out "$t/$who.csr" >/dev/null 2>&1 || return 1
    openssl x509 -req -in "$t/$who.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
      -days 3650 $([ $who = server ] && echo "-extfile $t/server.ext") \
      -out "$t/$who.pem" >/dev/null 2>&1 || return 1
  done
  chmod 0644 "$t"/*.key
}

rabbitmq_start() {
  rabbitmq_available || { echo "services: rabbitmq-server is not installed" >&2; return 1; }
  rabbitmq_status && return 0
  local d="$STATE/rabbitmq"
  mkdir -p "$d/home" "$d/mnesia" "$d/log"
  rabbitmq_tls "$d/tls" || { echo "services: rabbitmq: cannot make the test CA" >&2; return 1; }
  printf '[].\n' > "$d/enabled_plugins"
  : > "$d/rabbitmq-env.conf"
  printf '[].\n' > "$d/advanced.config"
  cat > "$d/rabbitmq.conf" <<CONF
loopback_users = none
listeners.tcp.default = 127.0.0.1:$RABBITMQ_PORT
listeners.ssl.default = 127.0.0.1:$RABBITMQ_TLS_PORT
ssl_options.cacertfile = $d/tls/ca.pem
ssl_options.certfile = $d/tls/server.pem
ssl_options.keyfile = $d/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
log.console = false
log.file.level = warning
CONF
  (
    rabbitmq_env
    cd "$d" || exit 1
    "$RABBITMQ_BIN/rabbitmq-server" > "$d/log/stdout.log" 2>&1 < /dev/null &
    echo $! > "$d/server-sh.pid"
  )
  # Up to 60 s, unless the node gave up (e.g. its port was taken): then at once.
  local i
  for ((i = 0; i < 600; i++)); do
    rabbitmq_status && break
    alive "$(cat "$d/server-sh.pid")" || break
    sleep 0.1
  done
  rabbitmq_status || {
    echo "services: rabbitmq did not start, see $d/log" >&2
    stop_pidfile "$d/server-sh.pid" 5
    (rabbitmq_env; epmd -kill >/dev/null 2>&1) || true
    return 1
  }
  (
    rabbitmq_env
    "$RABBITMQ_BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" await_startup --timeout 60 >/dev/null 2>&1
  ) || { echo "services: rabbitmq did not finish starting, see $d/log" >&2; return 1; }
  # The node deletes its pid file as it stops: keep the beam's pid.
  [ -s "$d/rabbit.pid" ] && cp "$d/rabbit.pid" "$d/beam.pid"
  echo "services: rabbitmq-server on 127.0.0.1:$RABBITMQ_PORT (TLS $RABBITMQ_TLS_PORT)"
}

rabbitmq_stop() {
  local d="$STATE/rabbitmq"
  [ -f "$d/beam.pid" ] || [ -f "$d/server-sh.pid" ] || return 0
  [ -f "$d/beam.pid" ] && stop_pidfile "$d/beam.pid" 30
  stop_pidfile "$d/server-sh.pid" 5
  (rabbitmq_env; epmd -kill >/dev/null 2>&1) || true
}
