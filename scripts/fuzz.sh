#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz) with clang in build/fuzz and fuzz
# each for FUZZ_SECONDS (default 120), JOBS at a time. New inputs go to
# build/fuzz/tests/fuzz/corpus/NAME; a crash leaves its input in
# build/fuzz/tests/fuzz/artifacts/ and fails the run. To keep an input as a
# seed, copy it into tests/fuzz/corpus/NAME and commit it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
JOBS="${JOBS:-2}"
SECONDS_EACH="${FUZZ_SECONDS:-120}"
BUILD=build/fuzz

CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DFS_SANITIZE=address,undefined \
  -DFS_BUILD_BENCH=OFF -DFS_BUILD_EXAMPLES=OFF -DFS_FUZZ_SECONDS="$SECONDS_EACH" >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target fuzz_all
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
echo "== fuzzing every target for ${SECONDS_EACH}s, ${JOBS} at a time"
(cd "$BUILD" && ctest --output-on-failure -j "$JOBS" -L fuzz)
