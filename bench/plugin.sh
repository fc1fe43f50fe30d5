#!/usr/bin/env bash
# A plugin against the built-in it imitates: map --plugin with the example MD5 plugins (examples/plugin) against
# the built-in map --op md5, over 20,000 files of 4 KiB in 100 folders, page cache warm, output to /dev/null. (c) is
# the self-contained example (RFC 1321's MD5 in plain C), (c') the same plugin with OpenSSL's MD5, the one --op md5
# uses: (c')/(d) is what the plugin interface itself costs, (c)/(d) adds the slower MD5 code.
#
#   bench/plugin.sh [DIR]   DIR defaults to /tmp/sluice-bench/tree-20000x4096-100d (generated once, reused)
#
# The two commands run alternately RUNS times (default 15), so that a busy neighbour slows both alike; each run's wall
# time, CPU (user+sys) and peak RSS come from GNU time, and the table gives the medians and the ratio (c)/(d). Both
# must first give the same lines. Environment: FILES, SIZE, DIRS, RUNS, SLUICE (default build/release/sluice, built
# if missing), PLUGIN and PLUGIN_OPENSSL (default the libmd5_plugin.so and libmd5_openssl_plugin.so beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-20000}
SIZE=${SIZE:-4096}
DIRS=${DIRS:-100}
RUNS=${RUNS:-15}
DIR=${1:-/tmp/sluice-bench/tree-${FILES}x${SIZE}-${DIRS}d}
. bench/lib.sh
bench_release libmd5_plugin.so libmd5_openssl_plugin.so
PLUGIN=${PLUGIN:-$(dirname "$SLUICE")/libmd5_plugin.so}
PLUGIN_OPENSSL=${PLUGIN_OPENSSL:-$(dirname "$SLUICE")/libmd5_openssl_plugin.so}
command -v /usr/bin/time >/dev/null || { echo "bench/plugin.sh: GNU time (/usr/bin/time) is required" >&2; exit 2; }
if [ ! -f "$DIR.done" ]; then
    echo "== generating $FILES files of $SIZE bytes in $DIRS folders under $DIR" >&2
    python3 bench/gen_tree.py "$DIR" --files "$FILES" --size "$SIZE" --dirs "$DIRS"
    touch "$DIR.done"
fi
echo "== warming the page cache" >&2
find "$DIR" -type f -print0 | xargs -0 cat >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$SLUICE" map "$DIR" - --op md5 -q | LC_ALL=C sort >"$tmp/d"
"$SLUICE" map "$DIR" - --plugin "$PLUGIN" -q | LC_ALL=C sort >"$tmp/c"
"$SLUICE" map "$DIR" - --plugin "$PLUGIN_OPENSSL" -q | LC_ALL=C sort >"$tmp/c2"
cmp -s "$tmp/c" "$tmp/d" || { echo "bench/plugin.sh: --plugin and --op md5 disagree" >&2; exit 1; }
cmp -s "$tmp/c2" "$tmp/d" || { echo "bench/plugin.sh: --plugin (OpenSSL) and --op md5 disagree" >&2; exit 1; }
[ "$(wc -l <"$tmp/d")" = "$FILES" ] || { echo "bench/plugin.sh: expected $FILES lines" >&2; exit 1; }

for ((i = 0; i < RUNS; i++)); do
    /usr/bin/time -a -o "$tmp/d.times" -f '%e %U %S %M' "$SLUICE" map "$DIR" - --op md5 -q >/dev/null
    /usr/bin/time -a -o "$tmp/c.times" -f '%e %U %S %M' "$SLUICE" map "$DIR" - --plugin "$PLUGIN" -q >/dev/null
    /usr/bin/time -a -o "$tmp/c2.times" -f '%e %U %S %M' "$SLUICE" map "$DIR" - --plugin "$PLUGIN_OPENSSL" -q \
        >/dev/null
done
python3 - "$tmp" "$RUNS" "$FILES" <<'PY'
import statistics, sys
tmp, runs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    rows = [list(map(float, l.split())) for l in open(f"{tmp}/{name}.times") if l.strip()]
    wall = statistics.median(r[0] for r in rows)
    cpu = statistics.median(r[1] + r[2] for r in rows)
    rss = statistics.median(r[3] for r in rows) / 1024
    return wall, cpu, rss
d, c, c2 = load("d"), load("c"), load("c2")
print(f"| command ({files} files, median of {runs}) | wall | CPU (user+sys) | CPU per object | peak RSS |")
print("|---|---|---|---|---|")
for label, (w, u, m) in (("(c) map --plugin libmd5_plugin.so", c), ("(c') map --plugin libmd5_openssl_plugin.so", c2),
                         ("(d) map --op md5", d)):
    print(f"| {label} | {w:.3f} s | {u:.3f} s | {u / files * 1e6:.1f} µs | {m:.1f} MiB |")
print(f"\n(c)/(d): wall {c[0] / d[0]:.3f}, CPU {c[1] / d[1]:.3f}; (c')/(d): wall {c2[0] / d[0]:.3f}, "
      f"CPU {c2[1] / d[1]:.3f} (target: within 10 %)")
PY
