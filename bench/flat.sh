#!/usr/bin/env bash
# Flat memory: peak RSS of `sluice map DIR - --op crc32c -q` over 20,000 files and over 200,000 files (same layout:
# 4 KiB files in 100 folders), median of 3 runs each, and the difference in percent. Target: <= 5 %.
#
#   bench/flat.sh [BASE]     trees go under BASE (default /tmp/sluice-bench), generated once and reused
#
# Peak RSS is GNU time's "Maximum resident set size" of the sluice process (it is a single process). The page cache
# is warmed before measuring so both runs read from memory. Environment: SIZE (4096), DIRS (100), RUNS (3),
# SMALL (20000), LARGE (200000), SLUICE (the release binary).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${1:-/tmp/sluice-bench}
SIZE=${SIZE:-4096}
DIRS=${DIRS:-100}
RUNS=${RUNS:-3}
SMALL=${SMALL:-20000}
LARGE=${LARGE:-200000}

if [ -z "${SLUICE:-}" ]; then
    SLUICE=$ROOT/build/release/sluice
    if [ ! -x "$SLUICE" ]; then
        echo "== building the release binary (build/release)" >&2
        cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
        cmake --build build/release -j2 >/dev/null
    fi
fi
[ -x /usr/bin/time ] || { echo "bench/flat.sh: GNU time (/usr/bin/time) is required" >&2; exit 2; }

tree() { # tree N: path of the tree of N files, generated if missing
    local dir="$BASE/tree-$1x$SIZE-${DIRS}d"
    if [ ! -f "$dir.done" ]; then
        echo "== generating $1 files of $SIZE bytes in $DIRS folders under $dir" >&2
        python3 "$ROOT/bench/gen_tree.py" "$dir" --files "$1" --size "$SIZE" --dirs "$DIRS"
        touch "$dir.done"
    fi
    echo "$dir"
}

measure() { # measure N: prints "N kib,kib,... s,s,..." (one value per run)
    local dir i kib="" sec="" k t
    dir=$(tree "$1")
    find "$dir" -type f -print0 | xargs -0 cat >/dev/null # warm the page cache
    "$SLUICE" map "$dir" - --op crc32c -q | wc -l | grep -qx "$1" ||
        { echo "bench/flat.sh: sluice did not produce $1 results for $dir" >&2; exit 1; }
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -f '%M %e' -o "$BASE/.rss" "$SLUICE" map "$dir" - --op crc32c -q >/dev/null
        read -r k t < <(tail -1 "$BASE/.rss")
        kib+="${kib:+,}$k"
        sec+="${sec:+,}$t"
    done
    echo "$1 $kib $sec"
}

small=$(measure "$SMALL")
large=$(measure "$LARGE")

python3 - "$small" "$large" <<'PY'
import statistics, sys
rows = []
for arg in sys.argv[1:3]:
    n, kib, sec = arg.split()
    kib = [int(v) for v in kib.split(",")]
    sec = [float(v) for v in sec.split(",")]
    rows.append((int(n), statistics.median(kib), kib, statistics.median(sec)))
print()
print("Peak RSS of `sluice map DIR - --op crc32c -q` (GNU time max RSS; median of %d runs; 4 KiB files, 100 folders)"
      % len(rows[0][2]))
print()
print("| objects | peak RSS (median) | runs (KiB) | wall time (median) |")
print("|---:|---:|---|---:|")
for n, med, kib, s in rows:
    print("| %s | %.2f MiB | %s | %.2f s |" % (format(n, ","), med / 1024.0, ", ".join(map(str, kib)), s))
diff = (rows[1][1] - rows[0][1]) * 100.0 / rows[0][1]
print()
print("| target | measured | result |")
print("|---|---:|---|")
print("| peak RSS at %s objects within 5 %% of %s | %+.1f %% | %s |"
      % (format(rows[1][0], ","), format(rows[0][0], ","), diff, "PASS" if diff <= 5 else "FAIL"))
PY
