#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan) in build/fuzz and runs each one for SECONDS
# (default 20), starting from its committed seeds in tests/fuzz/corpus/<target>/, with the tokens of
# tests/fuzz/<target>.dict when there is one. New inputs the fuzzer finds go to a temporary directory, never into the
# committed corpus. Fails on the first crash, leak, sanitizer report or timeout;
# the input that caused it is kept as build/fuzz/artifacts/<target>/crash-* (add it to the corpus once fixed).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 60 fuzz_glob
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
case "$seconds" in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSL_WERROR=ON -DSL_FUZZ=ON \
      -DBUILD_TESTING=OFF >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for src in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi
cmake --build build/fuzz -j "$(nproc)" --target "${targets[@]}" >/dev/null

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
    seeds="tests/fuzz/corpus/${t#fuzz_}"
    [ -d "$seeds" ] || { echo "fuzz: $t: no seed corpus at $seeds" >&2; exit 1; }
    dict=()
    [ -f "tests/fuzz/${t#fuzz_}.dict" ] && dict=(-dict="tests/fuzz/${t#fuzz_}.dict")
    mkdir -p "$scratch/$t" "build/fuzz/artifacts/$t"
    echo "=== $t: ${seconds}s from $(find "$seeds" -type f | wc -l) seeds ==="
    # The scratch dir comes first: libFuzzer writes new inputs only to the first corpus directory.
    if ! build/fuzz/tests/fuzz/"$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t/" "${dict[@]}" "$scratch/$t" "$seeds" \
        >"$scratch/$t.log" 2>&1; then
        tail -60 "$scratch/$t.log" >&2
        echo "fuzz: $t FAILED; reproducer: $(ls -t "build/fuzz/artifacts/$t"/* 2>/dev/null | head -1)" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE' "$scratch/$t.log" | tr '\n' ' '
    echo
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
