#!/usr/bin/env bash
# How many requests/s the synthetic bucket (sl-synthbucket) serves on one core: the server pinned to CPU 0, the load
# generator (sl-synthload, a few microseconds per request) to CPU 1, 127.0.0.1 only.
#
#   bench/synth.sh          ~1 min
#
# Rows: 1 KiB media GETs (64 connections), the same objects' metadata, listing pages of 1,000 items of ~36 KiB
# objects, then 1 KiB media GETs behind --delay-ms 20 on 256 and 1,024 connections (ideal: connections / 20 ms).
# For each: requests/s, and the server's CPU per request read from /proc/PID/stat around the run, which gives what one
# core could serve (1 s / CPU per request) whatever else the machine is doing.
#
# Environment: SECONDS_PER_ROW (10), SERVER_CPU (0), LOAD_CPU (1), BUILD (build/release; built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECONDS_PER_ROW:-10}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BUILD=${BUILD:-$ROOT/build/release}
if [ ! -x "$BUILD/sl-synthbucket" ] || [ ! -x "$BUILD/sl-synthload" ]; then
    echo "== building sl-synthbucket and sl-synthload ($BUILD)" >&2
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
    cmake --build "$BUILD" -j2 --target sl-synthbucket sl-synthload >/dev/null
fi
WORK=$(mktemp -d)
SRV=
trap '[ -z "$SRV" ] || { kill "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null; }; rm -rf "$WORK"' EXIT
CLK_TCK=$(getconf CLK_TCK)

start() { # start SERVER OPTIONS...
    rm -f "$WORK/port"
    taskset -c "$SERVER_CPU" "$BUILD/sl-synthbucket" --port 0 --port-file "$WORK/port" "$@" >/dev/null &
    SRV=$!
    for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
    PORT=$(cat "$WORK/port")
}
stop() { kill "$SRV"; wait "$SRV" || true; SRV=; }
ticks() { awk '{ print $14 + $15 }' "/proc/$SRV/stat"; }
row() { # row NAME LOAD OPTIONS...
    local name=$1 t0 t1 out
    shift
    t0=$(ticks)
    out=$(taskset -c "$LOAD_CPU" "$BUILD/sl-synthload" --port "$PORT" --seconds "$SECS" "$@")
    t1=$(ticks)
    echo "$out" | awk -v name="$name" -v d=$((t1 - t0)) -v hz="$CLK_TCK" '{
        n = $1; rps = $6; cpu = d / hz
        printf "| %s | %s | %.0f | %.1f µs | %.0f |\n", name, $0 ~ /failed 0$/ ? "ok" : "ERRORS", rps, cpu / n * 1e6, n / cpu }'
}

echo "| row | answers | requests/s | server CPU per request | requests/s one core can serve |"
echo "|---|---|---:|---:|---:|"
start --objects 100000 --size 1K --jitter 0
row "media GET, 1 KiB, 64 connections" --connections 64 --objects 100000
row "metadata GET, 64 connections" --connections 64 --objects 100000 --kind meta
stop
start --objects 1400000 --size 36K
row "listing page of 1,000 (36 KiB objects), 8 connections" --connections 8 --kind list
stop
start --objects 100000 --size 1K --jitter 0 --delay-ms 20
row "media GET, 1 KiB, 20 ms delay, 256 connections (ideal 12,800/s)" --connections 256 --objects 100000
row "media GET, 1 KiB, 20 ms delay, 1,024 connections (ideal 51,200/s)" --connections 1024 --objects 100000
stop
