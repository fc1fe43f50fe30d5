#!/usr/bin/env bash
# The seed job at full scale: `sluice map gs://synth/obj gs://sink/out --op md5` over 1,400,000 objects of ~36 KiB
# (26 to 54 KiB, 50 GB in all) read from the synthetic bucket (bench/synthbucket.c: no storage, correct CRC32Cs) with
# DELAY_MS (20) of latency on every request, each MD5 written back as an object of its own (an upload per object):
# two requests of 20 ms per object, so the ideal is J / 40 ms objects/s.
#
#   bench/seed.sh           ~10 min on 2 cores (SEED_OBJECTS=1400000)
#
# 1. A sweep over -j (SWEEP: 16 32 64 128 256), PER_J (200) objects per worker each, a fresh server per row:
#    objects/s against the ideal J / (2 x DELAY_MS), sluice's CPU per object (user+sys of sluice alone, GNU time),
#    peak RSS, and how long the workers waited for the listing.
# 2. The seed run: SEED_OBJECTS at -j SEED_JOBS (256) with --chart, --report and --timeline kept in OUT: wall time,
#    objects/s, CPU per object, peak RSS, the memory verdict, the listing's wait share, and the extrapolation to a
#    16-core node with the arithmetic shown.
#
# The server (one thread, its CPU read from /proc and reported apart) and sluice share this machine's cores.
# -j 256 needs more than the default --memory-limit of 256M by the budget's worst-case count (1.5 MiB a worker for
# gs:// -> gs://; sluice says so and lowers -j otherwise): MEMORY_LIMIT (512M) is given to every row.
#
# Environment: DELAY_MS, SWEEP, PER_J, SEED_OBJECTS, SEED_JOBS, SIZE (36K), MEMORY_LIMIT, OUT (build/bench/seed),
# SLUICE and SYNTH (the release build's, built if missing). Only 127.0.0.1 is contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DELAY_MS=${DELAY_MS:-20}
SWEEP=${SWEEP:-16 32 64 128 256}
PER_J=${PER_J:-200}
SEED_OBJECTS=${SEED_OBJECTS:-1400000}
SEED_JOBS=${SEED_JOBS:-256}
SIZE=${SIZE:-36K}
MEMORY_LIMIT=${MEMORY_LIMIT:-512M}
OUT=${OUT:-$ROOT/build/bench/seed}
mkdir -p "$OUT"
. bench/lib.sh
bench_release sl-synthbucket
[ -x /usr/bin/time ] || { echo "bench/seed.sh: GNU time (/usr/bin/time) is required" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'synth_stop; rm -rf "$WORK"' EXIT
bench_isolate "$WORK"
CLK_TCK=$(getconf CLK_TCK)

start_server() { # start_server OBJECTS
    synth_start bench/seed.sh "$WORK" --objects "$1" --size "$SIZE" --delay-ms "$DELAY_MS" --max-connections 8192
}
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SYNTH_PID/stat"; }

# run NAME J EXTRA...: one job, its report, GNU time's figures and the server's CPU in $OUT/NAME.*
run() {
    local name=$1 j=$2 t0 t1
    shift 2
    t0=$(server_ticks)
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/$name.time" "$SLUICE" map gs://synth/obj "gs://sink/$name" --op md5 \
        -j "$j" --memory-limit "$MEMORY_LIMIT" -q --report "$OUT/$name.json" "$@"
    t1=$(server_ticks)
    echo "$(((t1 - t0)))" >"$OUT/$name.server_ticks"
}

echo "== sweep over -j: $SWEEP ($PER_J objects per worker, $DELAY_MS ms per request)" >&2
for j in $SWEEP; do
    start_server $((j * PER_J))
    run "sweep-$j" "$j"
    synth_stop
done
echo "== the seed run: $SEED_OBJECTS objects at -j $SEED_JOBS (a few minutes)" >&2
start_server "$SEED_OBJECTS"
run seed "$SEED_JOBS" --chart "$OUT/seed.svg" --timeline "$OUT/seed.csv" --mem-interval 1000
synth_stop

python3 - "$OUT" "$DELAY_MS" "$CLK_TCK" "$SEED_JOBS" "$SWEEP" <<'PY'
import json, sys
out, delay, hz, seed_j, sweep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split()

def row(name):
    r = json.load(open(f"{out}/{name}.json"))
    wall, user, sys_, rss_kib = (float(x) for x in open(f"{out}/{name}.time").read().split())
    srv = int(open(f"{out}/{name}.server_ticks").read()) / hz
    done = r["objects"]["done"]
    j = r["jobs"]
    ideal = j / (2 * delay / 1000)
    rate = done / r["duration_s"]
    return {"j": j, "done": done, "failed": r["objects"]["failed"], "wall": r["duration_s"], "rate": rate,
            "ideal": ideal, "of_ideal": rate / ideal, "cpu_us": (user + sys_) / done * 1e6,
            "cpu_share": (user + sys_) / wall, "srv_us": srv / done * 1e6, "rss": rss_kib / 1024,
            "verdict": r["memory"]["verdict"], "wait": r["listing_wait"]["share"]}

print(f"### Sweep over -j ({delay} ms per request, 2 requests per object, ideal = J / {2 * delay} ms)\n")
print("| -j | objects | wall | objects/s | ideal | of ideal | sluice CPU / object | sluice cores | server CPU / object "
      "| peak RSS | listing wait share |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for j in sweep:
    x = row(f"sweep-{j}")
    print(f"| {x['j']} | {x['done']:,} | {x['wall']:.1f} s | {x['rate']:,.0f} | {x['ideal']:,.0f} | "
          f"{x['of_ideal'] * 100:.0f} % | {x['cpu_us']:.0f} µs | {x['cpu_share']:.2f} | {x['srv_us']:.0f} µs | "
          f"{x['rss']:.1f} MiB | {x['wait']:.4f} |")
s = row("seed")
print(f"\n### The seed run: {s['done']:,} objects at -j {s['j']}\n")
print(f"- wall {s['wall']:.1f} s ({s['wall'] / 60:.1f} min), {s['rate']:,.0f} objects/s = {s['of_ideal'] * 100:.0f} % "
      f"of the ideal {s['ideal']:,.0f}/s; {s['failed']} failed")
print(f"- sluice's CPU: {s['cpu_us']:.0f} µs per object ({s['cpu_share']:.2f} cores on average); the server's "
      f"{s['srv_us']:.0f} µs per object, on the same 2 cores")
print(f"- peak RSS {s['rss']:.1f} MiB; memory verdict: {s['verdict']}; workers waiting for the listing: "
      f"{s['wait'] * 100:.2f} % of their time")
c = s["cpu_us"] / 1e6
cpu_cap = 4 / c
need_j = 2350 * 2 * delay / 1000
print("\n### Extrapolation to a 16-core node, the client on at most 4 cores\n")
print(f"- CPU bound: 4 cores / {s['cpu_us']:.0f} µs per object = {cpu_cap:,.0f} objects/s")
print(f"- latency bound: J / {2 * delay} ms: 2,350 objects/s (1.4 M in 10 min) needs J >= 2,350 x {2 * delay / 1000} s "
      f"= {need_j:.0f}; at -j {s['j']}: {s['ideal']:,.0f} objects/s")
best = min(cpu_cap, s["ideal"] * s["of_ideal"])
print(f"- so min({cpu_cap:,.0f}, {s['ideal'] * s['of_ideal']:,.0f} measured here) = {best:,.0f} objects/s: 1,400,000 "
      f"objects in {1.4e6 / best / 60:.1f} min (target 10 min)")
PY
