#!/usr/bin/env bash
# sluice against the local GCS test server (tests/gcs/gcs_server.py: in memory, Python, 127.0.0.1 only).
#
#   bench/gcs.sh            ~8 min on 2 cores
#
# 1. transfer: FILES (2,000) x SIZE (4 KiB) files in DIRS (20) folders, upload (DIR -> gs://) and download
#    (gs:// -> DIR): `sluice cp -j 8` next to `rclone copy --transfers 8` (gcs backend, anonymous, endpoint = the
#    test server, configured by a temporary config file). Both sides' results are checked first (object names,
#    sizes and MD5s on the server for uploads, `diff -r` for downloads). Wall time: one hyperfine run per
#    direction (--warmup 1 --runs RUNS), each run starting from an empty destination (--prepare). CPU (user+sys)
#    and peak RSS: GNU time of the client process alone, median of CPU_RUNS runs, sluice and rclone interleaved.
#    The server is another process: its CPU is read from /proc/PID/stat around each run and reported separately,
#    never added to the client's.
#    The same download to a tmpfs (DL_SHM) takes the disk's file system out; a last pair takes files out
#    altogether (sluice fsyncs and renames every file it writes, rclone does not): download + MD5 in memory, `sluice map gs://src - --op md5` vs `rclone hashsum md5 --download`, both
#    checked against md5sum of the tree.
# 2. listing: `sluice ls -r gs://B > /dev/null` over LIST_SMALL (10,000) and LIST_LARGE (100,000) objects seeded
#    through the server's /_seed (no upload): objects per CPU-second and peak RSS (median of LIST_RUNS), then one
#    run of each under `valgrind --tool=callgrind` for an instruction count per object (CALLGRIND=0 skips it).
# 3. latency: the server sleeps DELAY_MS (20) in every API request; `sluice map gs://B - --op crc32c -q -j J` over
#    2,000 seeded 4 KiB objects for J in LAT_JOBS (8 32 128), and the same with no delay (the server's ceiling).
#    Objects/s vs the ideal J / delay, with the client's and the server's CPU (median of LAT_RUNS).
#
# Isolation: HOME, CLOUDSDK_CONFIG, XDG_* and RCLONE_CONFIG point into a fresh temp dir, credentials variables and
# proxies are unset, GCE_METADATA_HOST=127.0.0.1:1, STORAGE_EMULATOR_HOST=127.0.0.1:PORT (sluice: plain http,
# anonymous). Nothing but 127.0.0.1 is contacted.
#
# Environment: FILES, SIZE, DIRS, JOBS (8), RUNS (5), CPU_RUNS (7), LIST_SMALL, LIST_LARGE, LIST_RUNS (5),
# CALLGRIND (1), DELAY_MS, LAT_JOBS, LAT_FILES (2000), LAT_RUNS (3), DL_SHM (/dev/shm), SLUICE (the release binary), RCLONE (rclone),
# OUT (hyperfine exports and raw figures; default build/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FILES=${FILES:-2000}
SIZE=${SIZE:-4096}
DIRS=${DIRS:-20}
JOBS=${JOBS:-8}
RUNS=${RUNS:-5}
CPU_RUNS=${CPU_RUNS:-7}
LIST_SMALL=${LIST_SMALL:-10000}
LIST_LARGE=${LIST_LARGE:-100000}
LIST_RUNS=${LIST_RUNS:-5}
CALLGRIND=${CALLGRIND:-1}
DELAY_MS=${DELAY_MS:-20}
LAT_JOBS=${LAT_JOBS:-8 32 128}
LAT_FILES=${LAT_FILES:-2000}
LAT_RUNS=${LAT_RUNS:-3}
RCLONE=${RCLONE:-rclone}
BASE=/tmp/sluice-bench
OUT=${OUT:-$ROOT/build/bench}
TREE=$BASE/tree-${FILES}x${SIZE}-${DIRS}d
mkdir -p "$OUT" "$BASE"

if [ -z "${SLUICE:-}" ]; then
    SLUICE=$ROOT/build/release/sluice
    if [ ! -x "$SLUICE" ]; then
        echo "== building the release binary (build/release)" >&2
        cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
        cmake --build build/release -j2 >/dev/null
    fi
fi
for tool in hyperfine /usr/bin/time python3 curl "$RCLONE"; do
    command -v "$tool" >/dev/null || { echo "bench/gcs.sh: $tool is required" >&2; exit 2; }
done
if [ "$CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then
    echo "bench/gcs.sh: valgrind not found (apt-get install -y valgrind), skipping callgrind" >&2
    CALLGRIND=0
fi

# --- isolation: nothing but 127.0.0.1 -------------------------------------------------------------------------
WORK=$(mktemp -d "$BASE/gcs.XXXXXX")
mkdir -p "$WORK/home" "$WORK/gcloud" "$WORK/xdg-config" "$WORK/xdg-cache"
export HOME=$WORK/home CLOUDSDK_CONFIG=$WORK/gcloud XDG_CONFIG_HOME=$WORK/xdg-config XDG_CACHE_HOME=$WORK/xdg-cache
export GCE_METADATA_HOST=127.0.0.1:1 GCE_METADATA_IP=127.0.0.1:1
unset GOOGLE_APPLICATION_CREDENTIALS GOOGLE_OAUTH_ACCESS_TOKEN CLOUD_STORAGE_EMULATOR_ENDPOINT GOOGLE_CLOUD_PROJECT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1
export RCLONE_CONFIG=$WORK/rclone.conf
# rclone's own environment options would override the config file
while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(RCLONE_[A-Z0-9_]*\)=.*/\1/p' | grep -vx RCLONE_CONFIG)

SRV_PID=
cleanup() {
    if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
    [ -z "${SHM:-}" ] || rm -rf "$SHM"
}
trap cleanup EXIT

python3 tests/gcs/gcs_server.py --port 0 --port-file "$WORK/port" >"$WORK/server.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "bench/gcs.sh: the test server did not start" >&2; cat "$WORK/server.log" >&2; exit 3; }
PORT=$(cat "$WORK/port")
EMU=http://127.0.0.1:$PORT
export STORAGE_EMULATOR_HOST=127.0.0.1:$PORT
cat >"$RCLONE_CONFIG" <<EOF
[emu]
type = google cloud storage
anonymous = true
endpoint = $EMU/storage/v1/
EOF
CLK_TCK=$(getconf CLK_TCK)
echo "== test server on $EMU (pid $SRV_PID), work dir $WORK" >&2

ctl() { curl -sSf -X POST "$EMU/$1" -H 'Content-Type: application/json' -d "$2" >/dev/null; } # ctl PATH JSON
srv_ticks() { awk '{ print $14 + $15 }' "/proc/$SRV_PID/stat"; }                             # server user+sys
# new_bucket NAME: drop bucket NAME (if any) and create it empty
new_bucket() { ctl _reset "{\"buckets\": [\"$1\"]}" && ctl _seed "{\"bucket\": \"$1\"}"; }

# once PREP CMD: run PREP (untimed), then CMD under GNU time; prints "user sys maxrss_kib wall server_cpu_s"
# (the server's CPU from /proc around the run).
once() {
    local s0 s1
    sh -c "$1"
    s0=$(srv_ticks)
    /usr/bin/time -f '%U %S %M %e' -o "$WORK/.time" sh -c "exec $2"
    s1=$(srv_ticks)
    echo "$(tail -1 "$WORK/.time") $(awk -v d=$((s1 - s0)) -v t="$CLK_TCK" 'BEGIN { printf "%.2f", d / t }')"
}
measure() { # measure PREP CMD N: N runs of `once`, one line each
    local i
    for ((i = 0; i < $3; i++)); do once "$1" "$2"; done
}
# pair NAME PREP CMD_SLUICE CMD_RCLONE: CPU_RUNS runs of each, interleaved (sluice, rclone, sluice, ...) so that a
# change in the machine's load hits both alike; into $OUT/gcs-NAME-sluice.time and $OUT/gcs-NAME-rclone.time.
pair() {
    local i
    : >"$OUT/gcs-$1-sluice.time"
    : >"$OUT/gcs-$1-rclone.time"
    for ((i = 0; i < CPU_RUNS; i++)); do
        once "$2" "$3" >>"$OUT/gcs-$1-sluice.time"
        once "$2" "$4" >>"$OUT/gcs-$1-rclone.time"
    done
}

# --- 1. transfer: sluice vs rclone ------------------------------------------------------------------------------
if [ ! -f "$TREE.done" ]; then
    echo "== generating $FILES files of $SIZE bytes in $DIRS folders under $TREE" >&2
    python3 bench/gen_tree.py "$TREE" --files "$FILES" --size "$SIZE" --dirs "$DIRS"
    touch "$TREE.done"
fi
find "$TREE" -type f -print0 | xargs -0 cat >/dev/null # warm the page cache

echo "== checking both clients' results" >&2
ctl _seed '{"bucket": "check"}'
"$SLUICE" cp "$TREE" gs://check/sluice -j "$JOBS" -q
python3 bench/gcs_check.py "$EMU" check sluice/ "$TREE" | sed 's/^/sluice upload: /' >&2
"$RCLONE" copy "$TREE" emu:check/rclone --transfers "$JOBS" -q
python3 bench/gcs_check.py "$EMU" check rclone/ "$TREE" | sed 's/^/rclone upload: /' >&2
for who in sluice rclone; do # each downloads what the other uploaded
    other=$([ $who = sluice ] && echo rclone || echo sluice)
    if [ $who = sluice ]; then
        "$SLUICE" cp gs://check/$other "$WORK/dl-check" -j "$JOBS" -q
    else
        "$RCLONE" copy emu:check/$other "$WORK/dl-check" --transfers "$JOBS" -q
    fi
    diff -r "$TREE" "$WORK/dl-check" >/dev/null ||
        { echo "bench/gcs.sh: $who's download of gs://check/$other differs from $TREE" >&2; exit 1; }
    echo "$who download: $(find "$WORK/dl-check" -type f | wc -l) files, identical to $TREE (diff -r)" >&2
    rm -rf "$WORK/dl-check"
done
ctl _reset '{"buckets": ["check"]}'

# The download source, uploaded once by sluice (checked above to be byte-identical either way).
ctl _seed '{"bucket": "src"}'
"$SLUICE" cp "$TREE" gs://src -j "$JOBS" -q
PREP_UP="curl -sSf -X POST $EMU/_reset -d '{\"buckets\": [\"upload\"]}' >/dev/null &&"
PREP_UP+=" curl -sSf -X POST $EMU/_seed -d '{\"bucket\": \"upload\"}' >/dev/null" # an empty bucket "upload"
# Each download run starts from an empty destination, but the previous run's files are moved aside, not deleted:
# on an ext4 without a journal (this VM's root file system) every new inode is checked against the recently deleted
# ones (ext4 recently_deleted()), so deleting 2,000 files before each run makes the next run's file creation cost
# more and more kernel time, the same for both clients, and swamps what is being compared. They are deleted at the
# end. DL_SHM (default /dev/shm, "" to skip) is a tmpfs: the same download there measures the clients without the
# disk's file system.
mkdir -p "$WORK/old"
rm -f "$OUT"/gcs-shm*
PREP_DOWN="[ ! -e $WORK/dl ] || mv $WORK/dl \$(mktemp -d -p $WORK/old)/"
DL_SHM=${DL_SHM-/dev/shm}
SHM=
if [ -n "$DL_SHM" ] && [ -d "$DL_SHM" ]; then
    SHM=$(mktemp -d -p "$DL_SHM" sluice-bench.XXXXXX)
fi
PREP_SHM="rm -rf $SHM/dl"
UP_SLUICE="$SLUICE cp $TREE gs://upload -j $JOBS -q"
UP_RCLONE="$RCLONE copy $TREE emu:upload --transfers $JOBS -q"
DOWN_SLUICE="$SLUICE cp gs://src $WORK/dl -j $JOBS -q"
DOWN_RCLONE="$RCLONE copy emu:src $WORK/dl --transfers $JOBS -q"
SHM_SLUICE="$SLUICE cp gs://src $SHM/dl -j $JOBS -q"
SHM_RCLONE="$RCLONE copy emu:src $SHM/dl --transfers $JOBS -q"
# The same download without the local filesystem: fetch every object and MD5 it in memory.
MD5_SLUICE="$SLUICE map gs://src - --op md5 -q -j $JOBS"
MD5_RCLONE="$RCLONE hashsum md5 --download emu:src --checkers $JOBS --transfers $JOBS"
(cd "$TREE" && find . -type f -print0 | xargs -0 md5sum) | sed 's|  \./| |' | sort >"$WORK/md5.want"
$MD5_SLUICE | python3 -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l); print(d["md5"], d["key"])' | sort >"$WORK/md5.sluice"
$MD5_RCLONE | sed 's/  / /' | sort >"$WORK/md5.rclone"
for who in sluice rclone; do
    cmp -s "$WORK/md5.want" "$WORK/md5.$who" || { echo "bench/gcs.sh: $who's MD5s of gs://src are wrong" >&2; exit 1; }
    echo "$who download+md5: $(wc -l <"$WORK/md5.$who") MD5s, all equal to md5sum's" >&2
done

echo "== hyperfine: upload (warmup 1, runs $RUNS)" >&2
hyperfine --warmup 1 --runs "$RUNS" --style basic --prepare "$PREP_UP" \
    --export-json "$OUT/gcs-up.json" --export-markdown "$OUT/gcs-up.md" \
    -n sluice "$UP_SLUICE" -n rclone "$UP_RCLONE"
echo "== hyperfine: download (warmup 1, runs $RUNS)" >&2
hyperfine --warmup 1 --runs "$RUNS" --style basic --prepare "$PREP_DOWN" \
    --export-json "$OUT/gcs-down.json" --export-markdown "$OUT/gcs-down.md" \
    -n sluice "$DOWN_SLUICE" -n rclone "$DOWN_RCLONE"
if [ -n "$SHM" ]; then
    echo "== hyperfine: download to tmpfs $DL_SHM (warmup 1, runs $RUNS)" >&2
    hyperfine --warmup 1 --runs "$RUNS" --style basic --prepare "$PREP_SHM" \
        --export-json "$OUT/gcs-shm.json" --export-markdown "$OUT/gcs-shm.md" \
        -n sluice "$SHM_SLUICE" -n rclone "$SHM_RCLONE"
fi
echo "== hyperfine: download + MD5, no local disk (warmup 1, runs $RUNS)" >&2
hyperfine --warmup 1 --runs "$RUNS" --style basic \
    --export-json "$OUT/gcs-md5.json" --export-markdown "$OUT/gcs-md5.md" \
    -n sluice "$MD5_SLUICE >/dev/null" -n rclone "$MD5_RCLONE >/dev/null"

echo "== CPU and peak RSS (GNU time, $CPU_RUNS runs each, interleaved)" >&2
pair up "$PREP_UP" "$UP_SLUICE" "$UP_RCLONE"
pair down "$PREP_DOWN" "$DOWN_SLUICE" "$DOWN_RCLONE"
[ -z "$SHM" ] || pair shm "$PREP_SHM" "$SHM_SLUICE" "$SHM_RCLONE"
pair md5 true "$MD5_SLUICE >/dev/null" "$MD5_RCLONE >/dev/null"
rm -rf "$WORK/dl" "$WORK/old"
[ -z "$SHM" ] || rm -rf "$SHM"
ctl _reset '{"buckets": ["upload", "src"]}'

# --- 2. listing -------------------------------------------------------------------------------------------------
echo "== seeding $LIST_SMALL and $LIST_LARGE objects" >&2
for n in "$LIST_SMALL" "$LIST_LARGE"; do
    ctl _seed "{\"bucket\": \"list$n\", \"count\": $n, \"name_format\": \"events/2026-11-25/part-{:07d}.json\"}"
    got=$("$SLUICE" ls -r "gs://list$n" | wc -l)
    [ "$got" = "$n" ] || { echo "bench/gcs.sh: sluice ls listed $got objects of gs://list$n, expected $n" >&2; exit 1; }
done
echo "== sluice ls -r ($LIST_RUNS runs each)" >&2
for n in "$LIST_SMALL" "$LIST_LARGE"; do
    measure true "$SLUICE ls -r gs://list$n >/dev/null" "$LIST_RUNS" >"$OUT/gcs-ls-$n.time"
done
IR_SMALL=0 IR_LARGE=0
if [ "$CALLGRIND" = 1 ]; then
    echo "== callgrind: sluice ls -r (one run each)" >&2
    for n in "$LIST_SMALL" "$LIST_LARGE"; do
        valgrind --tool=callgrind --callgrind-out-file="$OUT/gcs-ls-$n.callgrind" -q \
            "$SLUICE" ls -r "gs://list$n" >/dev/null
        callgrind_annotate "$OUT/gcs-ls-$n.callgrind" >"$OUT/gcs-ls-$n.callgrind.txt" 2>/dev/null || true
    done
    IR_SMALL=$(awk '/^(summary|totals):/ { print $2; exit }' "$OUT/gcs-ls-$LIST_SMALL.callgrind")
    IR_LARGE=$(awk '/^(summary|totals):/ { print $2; exit }' "$OUT/gcs-ls-$LIST_LARGE.callgrind")
fi
ctl _reset "{\"buckets\": [\"list$LIST_SMALL\", \"list$LIST_LARGE\"]}"

# --- 3. latency -------------------------------------------------------------------------------------------------
ctl _seed "{\"bucket\": \"lat\", \"count\": $LAT_FILES, \"size\": $SIZE, \"name_format\": \"d{:07d}.bin\"}"
got=$("$SLUICE" map gs://lat - --op crc32c -q -j 8 | wc -l)
[ "$got" = "$LAT_FILES" ] || { echo "bench/gcs.sh: map gave $got results, expected $LAT_FILES" >&2; exit 1; }
: >"$OUT/gcs-lat.time"
for delay in 0 "$DELAY_MS"; do
    ctl _config "{\"delay_ms\": $delay}"
    for j in $LAT_JOBS; do
        echo "== map --op crc32c, delay $delay ms, -j $j ($LAT_RUNS runs)" >&2
        measure true "$SLUICE map gs://lat - --op crc32c -q -j $j >/dev/null" "$LAT_RUNS" |
            sed "s/^/$delay $j /" >>"$OUT/gcs-lat.time"
    done
done
ctl _config '{"delay_ms": 0}'

# --- report -----------------------------------------------------------------------------------------------------
python3 - "$OUT" "$FILES" "$SIZE" "$DIRS" "$JOBS" "$LIST_SMALL" "$LIST_LARGE" "$IR_SMALL" "$IR_LARGE" \
    "$DELAY_MS" "$LAT_FILES" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
files, size, dirs, jobs, n_small, n_large, ir_small, ir_large, delay, lat_files = (int(v) for v in sys.argv[2:12])
med = statistics.median
mib = lambda kib: kib / 1024.0
ok = lambda b: "PASS" if b else "FAIL"

def runs(name):
    rows = [l.split() for l in open("%s/%s" % (out, name)) if l.strip()]
    return [[float(v) for v in r] for r in rows]

def summary(rows, off=0):  # rows: [.., user, sys, kib, wall, srv]; off = index of user
    return {"cpu": med([r[off] + r[off + 1] for r in rows]), "user": med([r[off] for r in rows]),
            "sys": med([r[off + 1] for r in rows]), "rss": med([r[off + 2] for r in rows]),
            "rss_all": [int(r[off + 2]) for r in rows], "wall": med([r[off + 3] for r in rows]),
            "srv": med([r[off + 4] for r in rows])}

print()
print("1. %d files x %d bytes in %d folders, -j %d / --transfers %d; wall = hyperfine median, CPU = user+sys of the"
      " client (GNU time), median; RSS = GNU time max RSS, median; server CPU = the Python server's, median"
      % (files, size, dirs, jobs, jobs))
print()
print("| direction | client | wall (median) | min..max | client CPU / object | of which user / sys | peak RSS"
      " | server CPU / run |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
cpu = {}
rss_s = []
DIRS = (("up", "upload local -> gs://"), ("down", "download gs:// -> local disk"),
        ("shm", "download gs:// -> tmpfs"), ("md5", "download + MD5, no disk"))
DIRS = tuple(d for d in DIRS if os.path.exists("%s/gcs-%s-sluice.time" % (out, d[0])))
for d, label in DIRS:
    res = {r["command"]: r for r in json.load(open("%s/gcs-%s.json" % (out, d)))["results"]}
    for who in ("sluice", "rclone"):
        s = summary(runs("gcs-%s-%s.time" % (d, who)))
        cpu[(d, who)] = s["cpu"] / files
        if who == "sluice":
            rss_s.append(s["rss"])
        r = res[who]
        print("| %s | %s | %.2f s | %.2f..%.2f s | %.0f µs | %.0f / %.0f µs | %.1f MiB | %.2f s |" % (
            label, who, r["median"], r["min"], r["max"], 1e6 * s["cpu"] / files, 1e6 * s["user"] / files,
            1e6 * s["sys"] / files, mib(s["rss"]), s["srv"]))
print()
print("| target | measured | result |")
print("|---|---:|---|")
for d, label in DIRS:
    ratio = cpu[(d, "sluice")] / cpu[(d, "rclone")]
    print("| %s: sluice CPU/object <= 1/3 of rclone's | %.2f x (1/%.1f) | %s |"
          % (label, ratio, 1 / ratio, ok(ratio <= 1 / 3.0)))
print("| sluice peak RSS <= 32 MiB | %.1f MiB (largest of the three) | %s |"
      % (mib(max(rss_s)), ok(mib(max(rss_s)) <= 32)))

print()
print("2. `sluice ls -r gs://B > /dev/null` (objects seeded via /_seed; names like"
      " events/2026-11-25/part-0000000.json); median of runs")
print()
print("| objects | wall | client CPU | objects / CPU-s | peak RSS | runs (KiB) | server CPU"
      " | instructions / object (callgrind) |")
print("|---:|---:|---:|---:|---:|---|---:|---:|")
ls = {}
for n, ir in ((n_small, ir_small), (n_large, ir_large)):
    s = summary(runs("gcs-ls-%d.time" % n))
    ls[n] = s
    print("| %s | %.2f s | %.2f s | %s | %.2f MiB | %s | %.2f s | %s |" % (
        format(n, ","), s["wall"], s["cpu"], format(int(n / s["cpu"]), ",") if s["cpu"] else "-", mib(s["rss"]),
        ", ".join(map(str, s["rss_all"])), s["srv"], format(int(ir / n), ",") if ir else "-"))
if ir_small and ir_large:
    print()
    print("callgrind: %s instructions for %s objects, %s for %s: %s per additional object"
          % (format(ir_small, ","), format(n_small, ","), format(ir_large, ","), format(n_large, ","),
             format(int((ir_large - ir_small) / (n_large - n_small)), ",")))
rate = n_large / ls[n_large]["cpu"]
diff = (ls[n_large]["rss"] - ls[n_small]["rss"]) * 100.0 / ls[n_small]["rss"]
print()
print("| target | measured | result |")
print("|---|---:|---|")
print("| listing >= 100,000 objects / CPU-s (at %s) | %s | %s |" % (format(n_large, ","), format(int(rate), ","),
                                                                    ok(rate >= 100000)))
print("| peak RSS at %s within 5 %% of %s | %+.1f %% | %s |" % (format(n_large, ","), format(n_small, ","), diff,
                                                              ok(abs(diff) <= 5)))

print()
print("3. `sluice map gs://B - --op crc32c -q -j J` over %d objects of %d bytes; ideal = J / delay; server CPU"
      " share = server CPU / wall (1.0 = one core, the most a CPython server gets); medians" % (lat_files, size))
print()
print("| delay | -j | wall | objects/s | ideal objects/s | of ideal | client CPU / object | client CPU share"
      " | server CPU share | peak RSS |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
rows = runs("gcs-lat.time")
for key in sorted({(int(r[0]), int(r[1])) for r in rows}):
    s = summary([r for r in rows if (int(r[0]), int(r[1])) == key], off=2)
    d, j = key
    ideal = j / (d / 1000.0) if d else None
    rate = lat_files / s["wall"]
    print("| %d ms | %d | %.2f s | %.0f | %s | %s | %.0f µs | %.2f | %.2f | %.1f MiB |" % (
        d, j, s["wall"], rate, "%.0f" % ideal if ideal else "-", "%.0f %%" % (100 * rate / ideal) if ideal else "-",
        1e6 * s["cpu"] / lat_files, s["cpu"] / s["wall"], s["srv"] / s["wall"], mib(s["rss"])))
PY
