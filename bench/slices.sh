#!/usr/bin/env bash
# One big object in slices: a SIZE (1G) object of the synthetic bucket (bench/synthbucket.c) whose every connection is
# capped at RATE (100M) bytes/s, downloaded to DEST (a tmpfs by default, so that the disk is not what is measured) by
# `sluice cp` as one stream (--slice-size 0) and in slices (--slice-size SLICE, 64M) at -j JOBS (8), each verified
# against the object's CRC32C. RUNS (3) of each, alternately; medians of the wall time, sluice's CPU (user+sys, GNU
# time) and peak RSS; the speed-up and the client's CPU throughput (bytes verified per CPU-second).
#
#   bench/slices.sh         ~2 min
#
# Environment: SIZE, RATE, SLICE, JOBS, RUNS, DEST (/dev/shm), THREADS (the server's, 2), SLUICE, SYNTH.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE=${SIZE:-1G}
RATE=${RATE:-100M}
SLICE=${SLICE:-64M}
JOBS=${JOBS:-8}
RUNS=${RUNS:-3}
DEST=${DEST:-/dev/shm}
THREADS=${THREADS:-2}
. bench/lib.sh
bench_release sl-synthbucket
WORK=$(mktemp -d)
OUTDIR=$(mktemp -d "$DEST/sluice-slices.XXXXXX")
trap 'synth_stop; rm -rf "$WORK" "$OUTDIR"' EXIT
bench_isolate "$WORK"
synth_start bench/slices.sh "$WORK" --objects 1 --size "$SIZE" --jitter 0 --rate-per-conn "$RATE" --threads "$THREADS"

one() { # one NAME ARGS...: a download into a fresh directory, its figures appended to $WORK/NAME
    local name=$1
    shift
    rm -rf "$OUTDIR/$name"
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/t" "$SLUICE" cp -r gs://synth/obj "$OUTDIR/$name" -q --report "$WORK/r.json" "$@"
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if r["objects"]["done"] == 1 and r["objects"]["failed"] == 0 else 1)' "$WORK/r.json" ||
        { echo "bench/slices.sh: the download failed" >&2; exit 1; }
    cat "$WORK/t" >>"$WORK/$name"
}
for ((i = 0; i < RUNS; i++)); do
    echo "== run $((i + 1)) of $RUNS" >&2
    one stream -j "$JOBS" --slice-size 0
    one sliced -j "$JOBS" --slice-size "$SLICE"
done
bytes=$(stat -c %s "$OUTDIR/sliced"/*)
python3 - "$WORK" "$bytes" "$RATE" "$SLICE" "$JOBS" <<'PY'
import statistics, sys
work, size, rate, sl, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def med(name, i):
    return statistics.median(float(l.split()[i]) for l in open(f"{work}/{name}"))
print(f"{size / 2**30:.2f} GiB object, every connection capped at {rate}/s, -j {jobs}, median of "
      f"{len(open(f'{work}/stream').readlines())} runs\n")
print("| download | wall | sluice CPU | bytes verified per CPU-second | peak RSS |")
print("|---|---|---|---|---|")
rows = {}
for name, label in (("stream", "one stream (--slice-size 0)"), ("sliced", f"slices of {sl}")):
    wall, cpu, rss = med(name, 0), med(name, 1) + med(name, 2), med(name, 3) / 1024
    rows[name] = wall
    print(f"| {label} | {wall:.2f} s | {cpu:.2f} s | {size / cpu / 1e9:.2f} GB/s | {rss:.1f} MiB |")
print(f"\nspeed-up: {rows['stream'] / rows['sliced']:.1f}x (target >= 4x)")
PY
