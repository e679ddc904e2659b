#!/usr/bin/env bash
# consume.sh BUILD_DIR CONSUMER_SRC WORK_DIR [SANITIZERS]
# Installs BUILD_DIR into WORK_DIR/prefix, then builds and runs the consumer
# project in CONSUMER_SRC against it, once through the CMake package config
# and once through pkg-config. Fails on the first error.
set -euo pipefail
build=$1 src=$2 work=$3 san=${4:-}
rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

flags=""
[ -n "$san" ] && flags="-fsanitize=$san -fno-omit-frame-pointer"
libdir=$(find "$prefix" -name 'libfaststream-metrics.so*' -printf '%h\n' -quit)
[ -n "$libdir" ] || { echo "no installed libfaststream-metrics" >&2; exit 1; }
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== find_package(faststream)"
cmake -S "$src" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
out=$("$work/cmake-build/consumer")
echo "$out"
grep -q '^consumer_runs_total 1$' <<<"$out"

echo "== pkg-config faststream-metrics"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists faststream-metrics
# shellcheck disable=SC2046
cc -std=c11 $flags -o "$work/consumer-pc" "$src/consumer.c" $(pkg-config --cflags --libs faststream-metrics)
out=$("$work/consumer-pc")
grep -q '^consumer_runs_total 1$' <<<"$out"

if pkg-config --exists faststream; then
  echo "== pkg-config faststream"
  pkg-config --cflags --libs faststream >/dev/null
fi
echo "packaging: ok"
