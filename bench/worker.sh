#!/usr/bin/env bash
# The code-per-object benchmark for map --worker: MD5 of 20,000 files of 4 KiB in 100 folders, page cache warm, output to
# /dev/null, each command's wall time, its own CPU and its children's CPU (bench/cpu_of.py: read from /proc while the
# finished process is a zombie, so sluice's own CPU is apart from its workers') and sluice's peak RSS (--report):
#
#   (a) map --exec 'python3 -S md5x.py'            a process per object (run over EXEC_FILES files only, scaled up)
#   (b) map --worker 'python3 bench/md5_worker.py' the Python module, one process per worker thread
#   (c) map --plugin libmd5_openssl_plugin.so      in process (bench/plugin.sh compares it with (d) in detail)
#   (d) map --op md5                               the built-in
#   (e) python3 bench/py_threadpool_md5.py DIR     the hand-written thread pool
#
#   bench/worker.sh [DIR]   DIR defaults to /tmp/sluice-bench/tree-20000x4096-100d (generated once, reused)
#
# Commands run alternately RUNS times (default 5); the table gives medians. (b) and (d) must first give the same lines.
# Then the same (b) and (d) over gs:// from the synthetic bucket (bench/synthbucket.c, sl-synthbucket, on a free
# 127.0.0.1 port: fast enough not to be the limit) with GCS_DELAY_MS (20) of latency in every request, -j GCS_JOBS
# (32), GCS_FILES (40,000: 32 interpreters starting take about a second of the two cores, which a short run would
# count against (b)) objects of SIZE, GCS_RUNS (3) runs: objects/s against the ideal GCS_JOBS / latency (Little's
# law). GCS=0 skips it.
#
# Environment: FILES, SIZE, DIRS, RUNS, EXEC_FILES (default 500), JOBS (-j for sluice; default: sluice's), PYTHON
# (default python3), SLUICE (default build/release/sluice, built if missing), GCS, GCS_DELAY_MS, GCS_JOBS, GCS_FILES,
# GCS_RUNS, SYNTH (sl-synthbucket beside SLUICE), LOCAL=0 to run the gs:// part alone.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-20000}
SIZE=${SIZE:-4096}
DIRS=${DIRS:-100}
RUNS=${RUNS:-5}
EXEC_FILES=${EXEC_FILES:-500}
PYTHON=${PYTHON:-python3}
DIR=${1:-/tmp/sluice-bench/tree-${FILES}x${SIZE}-${DIRS}d}
. bench/lib.sh
bench_release libmd5_openssl_plugin.so $([ "${GCS:-1}" = 0 ] || echo sl-synthbucket)
PLUGIN=${PLUGIN:-$(dirname "$SLUICE")/libmd5_openssl_plugin.so}
J=()
[ -z "${JOBS:-}" ] || J=(-j "$JOBS")
tmp=$(mktemp -d)
trap 'synth_stop; rm -rf "$tmp"' EXIT
measure() { # measure NAME CMD...: one run, a JSON line appended to $tmp/NAME.runs
    local name=$1
    shift
    python3 bench/cpu_of.py "$@" >>"$tmp/$name.runs"
}

# --- local files (LOCAL=0 skips them) -------------------------------------------------------------------------------
if [ "${LOCAL:-1}" = 1 ]; then
if [ ! -f "$DIR.done" ]; then
    echo "== generating $FILES files of $SIZE bytes in $DIRS folders under $DIR" >&2
    python3 bench/gen_tree.py "$DIR" --files "$FILES" --size "$SIZE" --dirs "$DIRS"
    touch "$DIR.done"
fi
# (a)'s per-object command, and the subset it runs over (a process per object: 20,000 of them take minutes).
cat >"$tmp/md5x.py" <<'PY'
import hashlib, json, os, sys
data = sys.stdin.buffer.read()
sys.stdout.write(json.dumps({"key": os.environ["SLUICE_KEY"], "size": len(data),
                             "md5": hashlib.md5(data).hexdigest()}, separators=(",", ":")) + "\n")
PY
python3 - "$DIR" "$tmp/subset" "$EXEC_FILES" <<'PY'
import os, shutil, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst)
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs)[:n]
for p in paths:
    shutil.copy(p, os.path.join(dst, os.path.basename(p)))
PY
echo "== warming the page cache" >&2
find "$DIR" "$tmp/subset" -type f -print0 | xargs -0 cat >/dev/null

"$SLUICE" map "$DIR" - --op md5 -q | LC_ALL=C sort >"$tmp/d"
"$SLUICE" map "$DIR" - --worker "$PYTHON bench/md5_worker.py" -q | LC_ALL=C sort >"$tmp/b"
cmp -s "$tmp/b" "$tmp/d" || { echo "bench/worker.sh: --worker and --op md5 disagree" >&2; exit 1; }
[ "$(wc -l <"$tmp/d")" = "$FILES" ] || { echo "bench/worker.sh: expected $FILES lines" >&2; exit 1; }

for ((i = 0; i < RUNS; i++)); do
    echo "== run $((i + 1)) of $RUNS" >&2
    measure a "$SLUICE" map "$tmp/subset" - "${J[@]}" --exec "$PYTHON -S $tmp/md5x.py" -q --report "$tmp/a.r$i.json"
    measure b "$SLUICE" map "$DIR" - "${J[@]}" --worker "$PYTHON bench/md5_worker.py" -q --report "$tmp/b.r$i.json"
    measure c "$SLUICE" map "$DIR" - "${J[@]}" --plugin "$PLUGIN" -q --report "$tmp/c.r$i.json"
    measure d "$SLUICE" map "$DIR" - "${J[@]}" --op md5 -q --report "$tmp/d.r$i.json"
    measure e "$PYTHON" bench/py_threadpool_md5.py "$DIR"
done
python3 - "$tmp" "$RUNS" "$FILES" "$EXEC_FILES" "$(nproc)" <<'PY'
import glob, json, statistics, sys
tmp, runs, files, exec_files, cpus = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def med(name, key):
    return statistics.median(json.loads(l)[key] for l in open(f"{tmp}/{name}.runs"))
def rss(name):
    reports = glob.glob(f"{tmp}/{name}.r*.json")
    return statistics.median(json.load(open(r))["peak_rss_bytes"] for r in reports) / 2**20 if reports else None
rows = {}
labels = {"a": "(a) --exec 'python3 -S md5x.py'", "b": "(b) --worker 'python3 md5_worker.py'",
          "c": "(c) --plugin libmd5_openssl_plugin.so", "d": "(d) --op md5", "e": "(e) py_threadpool_md5.py"}
print(f"{files} x 4 KiB files, {cpus} CPUs, median of {runs} runs; (a) ran over {exec_files} files, scaled to {files}\n")
print("| command | wall | sluice's CPU per object | children's CPU per object | sluice's peak RSS |")
print("|---|---|---|---|---|")
for k in "abcde":
    n = exec_files if k == "a" else files
    scale = files / n
    wall, own, kids = med(k, "wall_s") * scale, med(k, "self_cpu_s") / n, med(k, "children_cpu_s") / n
    rows[k] = wall
    r = rss(k)
    own_text = f"{own * 1e6:.1f} µs" if k != "e" else f"({own * 1e6:.1f} µs: Python's own)"
    print(f"| {labels[k]} | {wall:.2f} s{' (scaled)' if k == 'a' else ''} | {own_text} | {kids * 1e6:.1f} µs | "
          f"{'%.1f MiB' % r if r is not None else '-'} |")
print(f"\n(a)/(b): {rows['a'] / rows['b']:.0f}x (target >= 50x); (b)/(e): {rows['b'] / rows['e']:.2f} (target <= 0.7); "
      f"(c)/(d): {rows['c'] / rows['d']:.2f} (target within 10 %)")
PY
fi

[ "${GCS:-1}" = 1 ] || exit 0
# --- (b) and (d) over gs:// behind latency -------------------------------------------------------------------------
GCS_DELAY_MS=${GCS_DELAY_MS:-20}
GCS_JOBS=${GCS_JOBS:-32}
GCS_FILES=${GCS_FILES:-40000}
GCS_RUNS=${GCS_RUNS:-3}
bench_isolate "$tmp"
synth_start bench/worker.sh "$tmp" --objects "$GCS_FILES" --size "$SIZE" --jitter 0 --delay-ms "$GCS_DELAY_MS"
"$SLUICE" map gs://synth/obj - -j "$GCS_JOBS" --op md5 -q | LC_ALL=C sort >"$tmp/gd"
"$SLUICE" map gs://synth/obj - -j "$GCS_JOBS" --worker "$PYTHON bench/md5_worker.py" -q | LC_ALL=C sort >"$tmp/gb"
cmp -s "$tmp/gb" "$tmp/gd" || { echo "bench/worker.sh: over gs://, --worker and --op md5 disagree" >&2; exit 1; }
[ "$(wc -l <"$tmp/gd")" = "$GCS_FILES" ] || { echo "bench/worker.sh: expected $GCS_FILES lines over gs://" >&2; exit 1; }
for ((i = 0; i < GCS_RUNS; i++)); do
    echo "== gs://, ${GCS_DELAY_MS} ms per request, -j $GCS_JOBS: run $((i + 1)) of $GCS_RUNS" >&2
    measure gb "$SLUICE" map gs://synth/obj - -j "$GCS_JOBS" --worker "$PYTHON bench/md5_worker.py" -q --report "$tmp/gb.r$i.json"
    measure gd "$SLUICE" map gs://synth/obj - -j "$GCS_JOBS" --op md5 -q --report "$tmp/gd.r$i.json"
done
python3 - "$tmp" "$GCS_RUNS" "$GCS_FILES" "$GCS_JOBS" "$GCS_DELAY_MS" <<'PY'
import glob, json, statistics, sys
tmp, runs, files, jobs, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ideal = jobs / (delay / 1000)
print(f"\ngs:// from the synthetic bucket, {delay} ms per request, -j {jobs}, {files} x 4 KiB objects, median of {runs} runs; "
      f"ideal = {jobs} / {delay} ms = {ideal:.0f} objects/s\n")
print("| command | wall | objects/s | of ideal | sluice's CPU per object | children's CPU per object | sluice's peak RSS | "
      "workers' peak PSS |")
print("|---|---|---|---|---|---|---|---|")
for k, label in (("gb", "(b) --worker 'python3 md5_worker.py'"), ("gd", "(d) --op md5")):
    lines = [json.loads(l) for l in open(f"{tmp}/{k}.runs")]
    wall = statistics.median(l["wall_s"] for l in lines)
    own = statistics.median(l["self_cpu_s"] for l in lines) / files
    kids = statistics.median(l["children_cpu_s"] for l in lines) / files
    reports = [json.load(open(r)) for r in glob.glob(f"{tmp}/{k}.r*.json")]
    rss = statistics.median(r["peak_rss_bytes"] for r in reports)
    wrk = statistics.median(r["memory"]["workers_peak_bytes"] for r in reports)
    print(f"| {label} | {wall:.2f} s | {files / wall:.0f} | {files / wall / ideal * 100:.0f} % | {own * 1e6:.1f} µs | "
          f"{kids * 1e6:.1f} µs | {rss / 2**20:.1f} MiB | {'%.1f MiB' % (wrk / 2**20) if wrk else '-'} |")
PY
