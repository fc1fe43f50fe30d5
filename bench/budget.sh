#!/usr/bin/env bash
# The memory budget: peak RSS of sluice against its --memory-limit, for every command, -j from 1 to 256, upload chunks
# from 256K to 1G and objects from 0 bytes to 1 GiB, against the local GCS test server (tests/gcs/gcs_server.py).
#
#   bench/budget.sh          ~10 min on 2 cores; BIG=0 leaves out the 1 GiB object (~5 min)
#
# The claim under test: peak RSS <= --memory-limit + OVERHEAD (16 MiB), whatever the flags. --memory-limit budgets
# everything that grows with workers or chunk size (each worker's state and store clients, transfer buffers, gs://
# upload buffers); OVERHEAD is what does not: the binary and its libraries, the listers and their pages, the memory
# sampler. ls and cat run no job and have no budget: their bound is OVERHEAD alone.
#
# Each row runs once (REPS runs: the table shows the median peak and each run's) under GNU time, whose "Maximum
# resident set size" is the peak RSS of the sluice process (see bench/README.md); a job's --report says how many
# workers the budget fed. Rows that write use --force, so that every run does the whole work again (a rerun would
# otherwise skip every object already done), except the sync that is there to find everything done. The table has the limit, the bound, the peak and the margin left; the script exits 1 if any
# peak is over its bound. Rows run in order: the uploads at the top make the objects the later rows read.
#
# Trees (made once under /tmp/sluice-bench, reused): 2,000 x 4 KiB in 20 folders, 300 empty files, 32 x 8,000,000
# bytes, and (BIG=1) one 1 GiB file. The server keeps every object in memory: with BIG=1 it peaks at 3-4 GiB.
#
# Environment: REPS (1), BIG (1), OVERHEAD_MIB (16), SLUICE (default: the release build, made in build/release if
# missing), OUT (the table and raw figures; default build/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${REPS:-1}
BIG=${BIG:-1}
OVERHEAD_MIB=${OVERHEAD_MIB:-16}
BASE=/tmp/sluice-bench
OUT=${OUT:-$ROOT/build/bench}
mkdir -p "$OUT" "$BASE"

if [ -z "${SLUICE:-}" ]; then
    SLUICE=$ROOT/build/release/sluice
    if [ ! -x "$SLUICE" ]; then
        echo "== building the release binary (build/release)" >&2
        cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
        cmake --build build/release -j2 >/dev/null
    fi
fi
for tool in /usr/bin/time python3 curl; do
    command -v "$tool" >/dev/null || { echo "bench/budget.sh: $tool is required (scripts/deps.sh installs it)" >&2; exit 2; }
done

# --- isolation: nothing but 127.0.0.1 -------------------------------------------------------------------------
WORK=$(mktemp -d "$BASE/budget.XXXXXX")
mkdir -p "$WORK/home" "$WORK/gcloud"
export HOME=$WORK/home CLOUDSDK_CONFIG=$WORK/gcloud
export GCE_METADATA_HOST=127.0.0.1:1 GCE_METADATA_IP=127.0.0.1:1
unset GOOGLE_APPLICATION_CREDENTIALS GOOGLE_OAUTH_ACCESS_TOKEN CLOUD_STORAGE_EMULATOR_ENDPOINT GOOGLE_CLOUD_PROJECT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1

SRV_PID=
cleanup() {
    if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- trees --------------------------------------------------------------------------------------------------------
tree() { # tree NAME FILES SIZE DIRS: makes $BASE/budget-NAME once
    local dir=$BASE/budget-$1
    if [ ! -e "$dir/.done" ]; then
        echo "== making $dir ($2 x $3 bytes)" >&2
        python3 bench/gen_tree.py "$dir" --files "$2" --size "$3" --dirs "$4" >/dev/null
        touch "$dir/.done"
    fi
    echo "$dir"
}
SMALL=$(tree small 2000 4096 20)
ZERO=$(tree zero 300 0 3)
MID=$(tree mid 32 8000000 2)
HUGE=
[ "$BIG" = 0 ] || HUGE=$(tree huge 1 1073741824 1)

python3 tests/gcs/gcs_server.py --port 0 --port-file "$WORK/port" --bucket budget >"$WORK/server.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "bench/budget.sh: the test server did not start" >&2; cat "$WORK/server.log" >&2; exit 3; }
export STORAGE_EMULATOR_HOST=127.0.0.1:$(cat "$WORK/port")
echo "== test server on $STORAGE_EMULATOR_HOST (pid $SRV_PID), work dir $WORK" >&2

# --- rows -----------------------------------------------------------------------------------------------------------
TABLE=$OUT/budget.txt
RAW=$OUT/budget.raw
: >"$RAW"
FAILED=0
printf '%-28s %5s %6s %7s %8s %8s %9s %8s  %s\n' row -j chunk limit workers bound "peak" margin "peak of each run (MiB)" |
    tee "$TABLE"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
bytes() { # bytes SIZE: 64M -> 67108864
    awk -v s="$1" 'BEGIN { n = s + 0; u = substr(s, length(s)); m = u == "K" ? 1024 : u == "M" ? 1048576 : u == "G" ? 1073741824 : 1; printf "%d", n * m }'
}

# row NAME LIMIT|- JOBS|- CHUNK|- ARGS...: runs `sluice ARGS` REPS times (with -j, --memory-limit and --upload-chunk
# when given, and a --report for jobs); output to /dev/null.
row() {
    local name=$1 limit=$2 jobs=$3 chunk=$4
    shift 4
    local args=("$@") peaks=() workers=- i
    [ "$jobs" = - ] || args+=(-j "$jobs")
    [ "$limit" = - ] || args+=(--memory-limit "$limit")
    [ "$chunk" = - ] || args+=(--upload-chunk "$chunk")
    case "$1" in ls | cat) ;; *) args+=(-q --report "$WORK/r.json") ;; esac
    local reps=${ONCE:+1}
    for ((i = 0; i < ${reps:-$REPS}; i++)); do
        [ -z "${PREP:-}" ] || eval "$PREP"
        rm -f "$WORK/r.json"
        local rc=0
        /usr/bin/time -f %M -o "$WORK/time" "$SLUICE" "${args[@]}" >/dev/null 2>"$WORK/err" || rc=$?
        if [ "$rc" != 0 ]; then
            echo "bench/budget.sh: row $name: exit $rc: sluice ${args[*]}" >&2
            cat "$WORK/err" >&2
            exit 1
        fi
        peaks+=($(($(tail -1 "$WORK/time") * 1024)))
        [ ! -s "$WORK/r.json" ] || workers=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"])' "$WORK/r.json")
    done
    PREP="" ONCE=""
    local sorted median bound margin list=""
    sorted=$(printf '%s\n' "${peaks[@]}" | sort -n)
    median=$(echo "$sorted" | sed -n "$(((${#peaks[@]} + 1) / 2))p")
    for i in "${peaks[@]}"; do list+="$(mib "$i") "; done
    bound=$((OVERHEAD_MIB << 20))
    [ "$limit" = - ] || bound=$((bound + $(bytes "$limit")))
    margin=$((bound - median))
    local mark=""
    if [ "$margin" -lt 0 ]; then
        mark="  OVER THE BOUND"
        FAILED=1
    fi
    printf '%-28s %5s %6s %7s %8s %8s %9s %8s  %s%s\n' "$name" "$jobs" "$chunk" "$limit" "$workers" \
        "$(mib "$bound")" "$(mib "$median")" "$(mib "$margin")" "$list" "$mark" | tee -a "$TABLE"
    echo "$name $limit $jobs $chunk $workers $bound ${peaks[*]}" >>"$RAW"
}

G=gs://budget
F=--force
# local -> gs: the two cases that first showed it (382 and 612 MiB peaks before the budget covered upload buffers).
row "cp local->gs 8MB x32"     64M  64  -    cp "$MID" $G/mid $F
row "cp local->gs 8MB 1G chunk" 64M 4  1G   cp "$MID" $G/mid1g $F
row "cp local->gs 256K chunks" 32M  16 256K cp "$MID" $G/mid256k $F
row "cp local->gs 8MB -j 1"    16M   1 64M  cp "$MID" $G/mid-j1 $F
row "cp local->gs 4K x2000"    64M 256  -   cp "$SMALL" $G/small $F
row "cp local->gs 4K 256M"    256M 256  -   cp "$SMALL" $G/small256 $F
row "cp local->gs 0B x300"     32M 256  -   cp "$ZERO" $G/zero $F
if [ "$BIG" = 1 ]; then
    row "cp local->gs 1GiB 1G chunk" 64M 4 1G cp "$HUGE" $G/huge $F
fi
# gs -> local
PREP='rm -rf "$WORK/down"'
row "cp gs->local 8MB x32"     64M  64  -   cp $G/mid "$WORK/down"
PREP='rm -rf "$WORK/down"'
row "cp gs->local 4K x2000"    64M 256  -   cp $G/small "$WORK/down"
if [ "$BIG" = 1 ]; then
    PREP='rm -rf "$WORK/down"'
    row "cp gs->local 1GiB -j 1"   16M  1  -   cp $G/huge "$WORK/down"
fi
rm -rf "$WORK/down"
# gs -> gs: server-side copies
row "cp gs->gs 4K x2000"       64M 256  -   cp $G/small $G/small-copy $F
row "cp gs->gs 8MB x32"        64M  64  -   cp $G/mid $G/mid-copy $F
# map
row "map --exec local->gs"     32M  16  -   map "$MID" $G/cat --exec cat $F
row "map --exec gs->gs 1G chunk" 64M 64 1G  map $G/mid $G/cat2 --exec cat $F
PREP='rm -rf "$WORK/out"'
row "map --exec local->local"  64M 256  -   map "$SMALL" "$WORK/out" --exec 'head -c 60000 /dev/zero'
rm -rf "$WORK/out"
row "map --exec local->-"     256M 256  -   map "$SMALL" - --shell --exec 'head -c 60000 /dev/zero | tr "\0" a'
row "map --op md5 gs->-"       64M 256  -   map $G/small - --op md5
row "map --op crc32c local->-" 32M  64  -   map "$MID" - --op crc32c
# sync: one that finds everything done, one that uploads everything
row "sync local->gs (no-op)"   64M  64  -   sync "$SMALL" $G/small
row "sync local->gs 512K"      32M  32 512K sync "$MID" $G/mid-sync $F
# rm (each run deletes what a server-side copy made just before)
PREP='"$SLUICE" cp $G/small $G/small-copy -q -j 64'
row "rm -r gs"                 32M 256  -   rm -r $G/small-copy
# no job, no budget
row "ls -r gs"                 -    -    -   ls -r $G
row "cat gs 8MB"               -    -    -   cat $G/mid/d000/f0000000.bin
if [ "$BIG" = 1 ]; then
    row "cat gs 1GiB"          -    -    -   cat $G/huge/d000/f0000000.bin
    ONCE=1
    row "rm gs 1GiB (one run)" 16M  1    -   rm $G/huge/d000/f0000000.bin
fi

echo "== table in $TABLE, raw peaks (bytes) in $RAW" >&2
if [ "$FAILED" = 1 ]; then
    echo "bench/budget.sh: FAIL: a peak over --memory-limit + ${OVERHEAD_MIB} MiB (marked above)" >&2
    exit 1
fi
echo "== every peak within --memory-limit + ${OVERHEAD_MIB} MiB" >&2
