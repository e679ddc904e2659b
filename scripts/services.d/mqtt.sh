# mosquitto (MQTT 3.1.1 and 5) on 127.0.0.1:${FS_MQTT_PORT:-11883}, and a TLS
# listener on 127.0.0.1:${FS_MQTT_TLS_PORT:-11884} that requires a client
# certificate signed by a test CA made here ($STATE/mqtt/certs: ca.pem,
# server.pem/.key, client.pem/.key). Persistence on (persistent sessions keep
# their QoS 1/2 messages across a restart).
#
# Pitfalls: as root, mosquitto 2.0 drops to user "mosquitto" and then cannot
# write its pid file under a root-owned dir (exit 1), hence `user root`;
# max_queued_messages defaults to 1000 per session and silently drops the
# rest for an offline persistent session, hence the raise.
MQTT_PORT="${FS_MQTT_PORT:-11883}"
MQTT_TLS_PORT="${FS_MQTT_TLS_PORT:-11884}"

mqtt_available() { command -v mosquitto >/dev/null && command -v openssl >/dev/null; }

mqtt_status() { (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null; }

mqtt_url() { echo "mqtt://127.0.0.1:$MQTT_PORT"; }

# A test CA, a server certificate for 127.0.0.1/localhost and a client certificate.
mqtt_certs() {
  local d="$1"
  [ -f "$d/client.pem" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=faststream test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=faststream test client" \
    -keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -out "$d/client.pem" 2>/dev/null
  chmod 0644 "$d"/*.key
}

mqtt_start() {
  mqtt_available || { echo "services: mosquitto (or openssl) is not installed" >&2; return 1; }
  mqtt_status && return 0
  local d="$STATE/mqtt"
  mkdir -p "$d/data"
  mqtt_certs "$d/certs" || { echo "services: cannot make the MQTT test certificates" >&2; return 1; }
  cat >"$d/mosquitto.conf" <<CONF
user root
pid_file $d/mosquitto.pid
log_dest file $d/mosquitto.log
log_type error
log_type warning
log_type notice
persistence true
persistence_location $d/data/
autosave_interval 60
max_queued_messages 100000
max_inflight_messages 100
allow_anonymous true
listener $MQTT_PORT 127.0.0.1
listener $MQTT_TLS_PORT 127.0.0.1
cafile $d/certs/ca.pem
certfile $d/certs/server.pem
keyfile $d/certs/server.key
require_certificate true
CONF
  mosquitto -c "$d/mosquitto.conf" -d 2>>"$d/mosquitto.log" # (its root warning)
  wait_for 10 mqtt_status || { echo "services: mosquitto did not start (see $d/mosquitto.log)" >&2; return 1; }
  echo "services: mosquitto on 127.0.0.1:$MQTT_PORT (TLS $MQTT_TLS_PORT)"
}

mqtt_stop() { stop_pidfile "$STATE/mqtt/mosquitto.pid" 10; }
