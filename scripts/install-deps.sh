#!/usr/bin/env bash
# Install the Debian packages faststream-c needs to build, test, benchmark and
# run its demo. Installs only what is missing; safe to run again.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang-format curl
  libmicrohttpd-dev zlib1g-dev libcmocka-dev
  libhiredis-dev redis-server
  prometheus python3-prometheus-client
  librdkafka-dev
  librabbitmq-dev rabbitmq-server
  libnats-dev nats-server
  libpaho-mqtt-dev libmosquitto-dev mosquitto mosquitto-clients
  libgnutls28-dev libcrypt-dev openssl
  # what pkg-config --static names behind gnutls and rdkafka (linking a
  # static faststream install: tests/packaging)
  libunistring-dev liblz4-dev libsasl2-dev libzstd-dev
  clang libclang-rt-14-dev valgrind
  locales
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Packaged daemons (redis, prometheus, rabbitmq, nats, mosquitto) must not start system-wide services:
# the test scripts start their own instances on loopback.
$SUDO env RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
