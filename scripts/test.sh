#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies, then builds and runs every test three times —
# plain (warnings are errors), under AddressSanitizer + UndefinedBehaviorSanitizer, and the threaded core under
# ThreadSanitizer — and finally runs every libFuzzer target for a fixed time (scripts/fuzz.sh; SL_FUZZ_SECONDS,
# default 20 s per target). The container test (label container: it builds the image from the sources with podman,
# scripts/podman.sh) runs in the plain run only, which leaves the image cached in build/podman.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
jobs=$(nproc)

run() { # run NAME CMAKE_FLAGS... -- CTEST_FLAGS...
  local name=$1; shift
  local cmake_flags=() ctest_flags=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cmake_flags+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  ctest_flags=("$@")
  echo "=== $name ==="
  cmake -S . -B "build/$name" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSL_WERROR=ON "${cmake_flags[@]}" >/dev/null
  cmake --build "build/$name" -j "$jobs" >/dev/null
  (cd "build/$name" && ctest --output-on-failure -j "$jobs" "${ctest_flags[@]}")
}

run plain
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run asan -DCMAKE_C_COMPILER=clang -DSL_SANITIZE=ON -- -LE container
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run tsan -DCMAKE_C_COMPILER=clang -DSL_TSAN=ON -- -L unit
./scripts/fuzz.sh "${SL_FUZZ_SECONDS:-20}"
