#!/usr/bin/env bash
# MD5 of 20,000 files of 4 KiB in 100 folders: sluice vs find|xargs -P16 md5sum vs a Python ThreadPoolExecutor(16).
#
#   bench/md5.sh [DIR]      DIR defaults to /tmp/sluice-bench/tree-20000x4096-100d (generated once, reused)
#
# Wall time: one hyperfine run (--warmup 2 --runs 10) of the three commands, page cache warm. Peak RSS: GNU time's
# "Maximum resident set size", median of 5 runs each. GNU time reports ru_maxrss from wait4() for the process it
# started, which covers that process and the descendants it reaped: the largest *single* process of the tree, not
# the sum of processes alive at once. For the xargs pipeline (timed as `sh -c 'find | xargs ...'`) that is the
# biggest of sh, find, xargs and any one md5sum; 16 md5sum processes run at once, so their combined footprint is
# larger (reported as an estimate: 16 x one md5sum). sluice and Python are single processes, so theirs is exact.
#
# Environment: FILES (20000), SIZE (4096), DIRS (100), RUNS (10), RSS_RUNS (5), SLUICE (the release binary),
# OUT (where hyperfine's JSON/Markdown go; default build/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FILES=${FILES:-20000}
SIZE=${SIZE:-4096}
DIRS=${DIRS:-100}
RUNS=${RUNS:-10}
RSS_RUNS=${RSS_RUNS:-5}
DIR=${1:-/tmp/sluice-bench/tree-${FILES}x${SIZE}-${DIRS}d}
OUT=${OUT:-$ROOT/build/bench}
mkdir -p "$OUT"

if [ -z "${SLUICE:-}" ]; then
    SLUICE=$ROOT/build/release/sluice
    if [ ! -x "$SLUICE" ]; then
        echo "== building the release binary (build/release)" >&2
        cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
        cmake --build build/release -j2 >/dev/null
    fi
fi
for tool in hyperfine /usr/bin/time python3 md5sum xargs; do
    command -v "$tool" >/dev/null || { echo "bench/md5.sh: $tool is required" >&2; exit 2; }
done

if [ ! -f "$DIR.done" ]; then
    echo "== generating $FILES files of $SIZE bytes in $DIRS folders under $DIR" >&2
    python3 bench/gen_tree.py "$DIR" --files "$FILES" --size "$SIZE" --dirs "$DIRS"
    touch "$DIR.done"
fi
n=$(find "$DIR" -type f | wc -l)
[ "$n" = "$FILES" ] || { echo "bench/md5.sh: $DIR holds $n files, expected $FILES (remove $DIR.done to regenerate)" >&2; exit 2; }

echo "== warming the page cache" >&2
find "$DIR" -type f -print0 | xargs -0 cat >/dev/null

# The three commands must agree before we time them.
"$SLUICE" map "$DIR" - --op md5 -q | python3 -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l); print(d["md5"], d["key"])' | sort >"$OUT/md5.sluice"
(cd "$DIR" && find . -type f -print0 | xargs -0 -P16 -n100 md5sum) | sed 's|  \./| |' | sort >"$OUT/md5.xargs"
cmp -s "$OUT/md5.sluice" "$OUT/md5.xargs" || { echo "bench/md5.sh: sluice and md5sum disagree" >&2; exit 1; }

CMD_SLUICE="$SLUICE map $DIR - --op md5 -q >/dev/null"
CMD_XARGS="find $DIR -type f -print0 | xargs -0 -P16 -n100 md5sum >/dev/null"
CMD_PY="python3 $ROOT/bench/py_threadpool_md5.py $DIR >/dev/null"

echo "== hyperfine (warmup 2, runs $RUNS)" >&2
hyperfine --warmup 2 --runs "$RUNS" --style basic \
    --export-json "$OUT/md5.json" --export-markdown "$OUT/md5.md" \
    -n sluice "$CMD_SLUICE" -n xargs-md5sum "$CMD_XARGS" -n python-threadpool "$CMD_PY"

# rss_median CMD: median over RSS_RUNS of GNU time's maximum resident set size, in KiB
rss_median() {
    local i
    for ((i = 0; i < RSS_RUNS; i++)); do
        /usr/bin/time -f %M -o "$OUT/.rss" sh -c "$1"
        tail -1 "$OUT/.rss"
    done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
echo "== peak RSS (GNU time, median of $RSS_RUNS)" >&2
rss_sluice=$(rss_median "exec $CMD_SLUICE")
rss_xargs=$(rss_median "$CMD_XARGS")
rss_md5sum=$(rss_median "md5sum $DIR/d000/f0000000.bin >/dev/null")
rss_py=$(rss_median "exec $CMD_PY")

python3 - "$OUT/md5.json" "$rss_sluice" "$rss_xargs" "$rss_py" "$rss_md5sum" "$FILES" "$SIZE" "$DIRS" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rss_s, rss_x, rss_p, rss_one = (int(v) for v in sys.argv[2:6])
files, size, dirs = sys.argv[6:9]
med = {k: res[k]["median"] for k in ("sluice", "xargs-md5sum", "python-threadpool")}
mib = lambda kib: kib / 1024.0
print()
print("MD5 of %s files x %s bytes in %s folders (page cache warm); time = hyperfine median, RSS = GNU time max RSS,"
      " median of runs" % (files, size, dirs))
print()
print("| command | median time | min..max | peak RSS |")
print("|---|---:|---:|---:|")
for k, label in (("sluice", "`sluice map DIR - --op md5 -q`"),
                 ("xargs-md5sum", "`find \\| xargs -0 -P16 -n100 md5sum`"),
                 ("python-threadpool", "Python `ThreadPoolExecutor(16)` + hashlib")):
    r = res[k]
    rss = {"sluice": rss_s, "xargs-md5sum": rss_x, "python-threadpool": rss_p}[k]
    extra = " (largest single process; 16 md5sum at once ~ %.1f MiB)" % (16 * mib(rss_one)) if k == "xargs-md5sum" else ""
    print("| %s | %.3f s | %.3f..%.3f s | %.1f MiB%s |" % (label, r["median"], r["min"], r["max"], mib(rss), extra))
print()
rx = med["sluice"] / med["xargs-md5sum"]
rp = med["sluice"] / med["python-threadpool"]
ok = lambda b: "PASS" if b else "FAIL"
print("| target | measured | result |")
print("|---|---:|---|")
print("| sluice time <= 0.6 x xargs | %.2f x | %s |" % (rx, ok(rx <= 0.6)))
print("| sluice time <= 0.25 x python | %.2f x | %s |" % (rp, ok(rp <= 0.25)))
print("| sluice peak RSS <= 16 MiB | %.1f MiB | %s |" % (mib(rss_s), ok(mib(rss_s) <= 16)))
PY
