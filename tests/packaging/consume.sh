#!/usr/bin/env bash
# consume.sh BUILD_DIR CONSUMER_SRC WORK_DIR [SANITIZERS]
# consume.sh --static SOURCE_DIR CONSUMER_SRC WORK_DIR
# Installs BUILD_DIR into WORK_DIR/prefix (with --static: first configures
# and builds SOURCE_DIR with static libraries in WORK_DIR/build), then builds
# and runs the consumer project in CONSUMER_SRC against it: through the CMake
# package config (find_package(faststream COMPONENTS ...) with every adapter
# installed) and through pkg-config (--static for a static install). Fails
# on the first error.
set -euo pipefail
static=
if [ "${1:-}" = --static ]; then
  static=1
  shift
fi
build=$1 src=$2 work=$3 san=${4:-}
rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"
if [ -n "$static" ]; then
  echo "== static build of $build"
  cmake -S "$build" -B "$work/build" -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Debug \
    -DFS_BUILD_TESTS=OFF -DFS_BUILD_BENCH=OFF -DFS_BUILD_EXAMPLES=OFF -DFS_DASHBOARD=OFF >/dev/null
  cmake --build "$work/build" -j 2 >/dev/null
  build=$work/build
fi
cmake --install "$build" --prefix "$prefix" >/dev/null

flags=""
[ -n "$san" ] && flags="-fsanitize=$san -fno-omit-frame-pointer"
libdir=$(find "$prefix" -name 'libfaststream-metrics.*' -printf '%h\n' -quit)
[ -n "$libdir" ] || { echo "no installed libfaststream-metrics" >&2; exit 1; }
if [ -n "$static" ]; then
  if find "$libdir" -name 'libfaststream*.so*' | grep -q .; then
    echo "a static build installed shared libraries" >&2
    exit 1
  fi
else
  export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
adapters=()
for pc in "$libdir"/pkgconfig/faststream-*.pc; do
  a=$(basename "$pc" .pc) a=${a#faststream-}
  [ "$a" = metrics ] || adapters+=("$a")
done
want=$((${#adapters[@]} + 1))
echo "adapters: ${adapters[*]}"

echo "== find_package(faststream COMPONENTS metrics faststream ${adapters[*]})"
cmake -S "$src" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  "-DFS_ADAPTERS=$(IFS=';'; echo "${adapters[*]}")" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
out=$("$work/cmake-build/consumer")
echo "$out"
grep -q '^consumer_runs_total 1$' <<<"$out"
out=$("$work/cmake-build/broker")
echo "$out"
grep -qx "consumer_adapters $want" <<<"$out"

# A component the install does not have is refused, naming it.
mkdir -p "$work/missing"
printf '%s\n' 'cmake_minimum_required(VERSION 3.25)' 'project(missing LANGUAGES C)' \
  'find_package(faststream REQUIRED COMPONENTS nosuchbroker)' >"$work/missing/CMakeLists.txt"
if cmake -S "$work/missing" -B "$work/missing/build" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$work/missing.log" 2>&1; then
  echo "find_package accepted a component that is not installed" >&2
  exit 1
fi
grep -q 'nosuchbroker (not in this install)' "$work/missing.log"

pcflags=()
[ -n "$static" ] && pcflags=(--static)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
echo "== pkg-config ${pcflags[*]} faststream-metrics"
pkg-config --exists faststream-metrics
# shellcheck disable=SC2046,SC2086
cc -std=c11 $flags -o "$work/consumer-pc" "$src/consumer.c" \
  $(pkg-config "${pcflags[@]}" --cflags --libs faststream-metrics)
out=$("$work/consumer-pc")
grep -q '^consumer_runs_total 1$' <<<"$out"

pcs=(faststream "${adapters[@]/#/faststream-}")
echo "== pkg-config ${pcflags[*]} ${pcs[*]}"
defs=()
for a in "${adapters[@]}"; do defs+=("-DFS_HAVE_${a^^}"); done
# shellcheck disable=SC2046,SC2086
cc -std=c11 $flags "${defs[@]}" -o "$work/broker-pc" "$src/broker.c" \
  $(pkg-config "${pcflags[@]}" --cflags --libs "${pcs[@]}")
out=$("$work/broker-pc")
grep -qx "consumer_adapters $want" <<<"$out"
echo "packaging: ok"
