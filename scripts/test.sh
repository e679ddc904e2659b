#!/usr/bin/env bash
# Build and run every test: the whole suite under AddressSanitizer and
# UBSan, then the concurrency tests under ThreadSanitizer. Starts the local
# servers first when they are not running, and then stops them at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
JOBS="${JOBS:-$(nproc)}"

"$ROOT/scripts/install-deps.sh"

cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DFS_SANITIZE=address,undefined \
  -DFS_BUILD_BENCH=OFF >/dev/null
cmake --build build/asan -j "$JOBS"

# Start the servers that are not running yet, and stop at the end only those
# this run started: one that was already up (another checkout's, a
# developer's) is left running.
started=()
for name in $("$ROOT/scripts/services.sh" list); do
  "$ROOT/scripts/services.sh" status "$name" >/dev/null 2>&1 || started+=("$name")
done
if [ ${#started[@]} -gt 0 ]; then
  trap '"$ROOT/scripts/services.sh" stop "${started[@]}"' EXIT
  "$ROOT/scripts/services.sh" start "${started[@]}"
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
echo "== ASan+UBSan: all tests"
(cd build/asan && ctest --output-on-failure -j "$JOBS")

cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DFS_SANITIZE=thread \
  -DFS_BUILD_BENCH=OFF >/dev/null
cmake --build build/tsan -j "$JOBS"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp"
echo "== ThreadSanitizer: concurrency tests"
(cd build/tsan && ctest --output-on-failure -j "$JOBS" -L concurrency)

# The unit tests again under valgrind (no sanitizer): it sees reads of freed
# memory that ASan's interceptors let through and uninitialised reads.
cmake -S . -B build/valgrind -DCMAKE_BUILD_TYPE=Debug -DFS_BUILD_BENCH=OFF -DFS_BUILD_EXAMPLES=OFF \
  "-DCMAKE_CROSSCOMPILING_EMULATOR=valgrind;--error-exitcode=99;--quiet;--leak-check=no" >/dev/null
cmake --build build/valgrind -j "$JOBS"
echo "== valgrind: unit tests"
# (test_prometheus_backlog is left out: its scrape-time budget does not hold at valgrind's pace.)
(cd build/valgrind && ctest --output-on-failure -j "$JOBS" -L unit -LE "integration|redis" \
  -E '^test_prometheus_backlog$')

# The fuzz targets (tests/fuzz) as libFuzzer binaries in a clang build: each
# fuzzes for a few seconds from its committed corpus (`make fuzz`: minutes).
CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DFS_SANITIZE=address,undefined \
  -DFS_BUILD_BENCH=OFF -DFS_BUILD_EXAMPLES=OFF -DFS_FUZZ_SECONDS=5 >/dev/null
cmake --build build/fuzz -j "$JOBS" --target fuzz_all
echo "== libFuzzer: every fuzz target for 5 s"
(cd build/fuzz && ctest --output-on-failure -j "$JOBS" -L fuzz)
