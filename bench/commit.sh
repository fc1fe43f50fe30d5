#!/usr/bin/env bash
# What a local commit costs: FILES (2,000) x SIZE (4 KiB) objects downloaded from the GCS test server
# (tests/gcs/gcs_server.py, 127.0.0.1 only) to a directory on the disk's file system (ext4 here), -j JOBS (8):
#
#   default    sluice cp gs://src DIR -j 8 -q              atomic, not synced (temp file + rename)
#   fsync      sluice cp gs://src DIR -j 8 -q --fsync      durable: group commit (syncfs per batch, directory fsync)
#   old        the same command with OLD_SLUICE            per-file fsync before each rename (the previous commit path)
#   rclone     rclone copy emu:src DIR --transfers 8 -q    (no fsync, writes the final name directly... see README)
#
# RUNS (7) rounds, the four interleaved in each round so that a change in the machine's load hits all alike. Wall
# time, user and sys CPU and peak RSS of the client process alone come from GNU time (the server is another
# process). Every download is checked against the tree (diff -r) before timing. Downloads are moved aside, not
# deleted, between runs (ext4's allocator checks new inodes against recently deleted ones: deleting 2,000 files
# before each run makes creating files cost more kernel time run after run) and all deleted at the end.
#
# Environment: FILES, SIZE, DIRS (20), JOBS, RUNS, SETTLE (35 s of quiet before timing), SLUICE (default: the release build of this tree), OLD_SLUICE
# (default: a release build of OLD_REV, 339c328, made in /tmp/sluice-bench/old-OLD_REV), RCLONE (rclone; empty: skip),
# DST_BASE (where the downloads go; default /tmp/sluice-bench), OUT (raw figures; default build/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FILES=${FILES:-2000}
SIZE=${SIZE:-4096}
DIRS=${DIRS:-20}
JOBS=${JOBS:-8}
RUNS=${RUNS:-7}
OLD_REV=${OLD_REV:-339c328}
RCLONE=${RCLONE-rclone}
BASE=/tmp/sluice-bench
DST_BASE=${DST_BASE:-$BASE}
OUT=${OUT:-$ROOT/build/bench}
TREE=$BASE/tree-${FILES}x${SIZE}-${DIRS}d
mkdir -p "$OUT" "$BASE" "$DST_BASE"

release() { # release SRC_DIR BUILD_DIR: the release binary of a source tree
    if [ ! -x "$2/sluice" ]; then
        echo "== building $1 in $2" >&2
        cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
        cmake --build "$2" -j2 --target sluice_cli >/dev/null
    fi
}
if [ -z "${SLUICE:-}" ]; then
    release "$ROOT" "$ROOT/build/release"
    SLUICE=$ROOT/build/release/sluice
fi
if [ -z "${OLD_SLUICE:-}" ]; then
    OLD_SRC=$BASE/old-$OLD_REV
    [ -d "$OLD_SRC" ] || git worktree add --detach "$OLD_SRC" "$OLD_REV" >/dev/null
    release "$OLD_SRC" "$OLD_SRC/build/release"
    OLD_SLUICE=$OLD_SRC/build/release/sluice
fi
for tool in /usr/bin/time python3 curl; do
    command -v "$tool" >/dev/null || { echo "bench/commit.sh: $tool is required" >&2; exit 2; }
done
if [ -n "$RCLONE" ] && ! command -v "$RCLONE" >/dev/null; then
    echo "bench/commit.sh: $RCLONE not found (apt-get install rclone), its row is skipped" >&2
    RCLONE=
fi

# --- isolation: nothing but 127.0.0.1 (as bench/gcs.sh) --------------------------------------------------------
WORK=$(mktemp -d "$BASE/commit.XXXXXX")
DL=$(mktemp -d "$DST_BASE/commit-dl.XXXXXX")
mkdir -p "$WORK/home" "$WORK/gcloud" "$WORK/xdg-config" "$WORK/xdg-cache"
export HOME=$WORK/home CLOUDSDK_CONFIG=$WORK/gcloud XDG_CONFIG_HOME=$WORK/xdg-config XDG_CACHE_HOME=$WORK/xdg-cache
export GCE_METADATA_HOST=127.0.0.1:1 GCE_METADATA_IP=127.0.0.1:1
unset GOOGLE_APPLICATION_CREDENTIALS GOOGLE_OAUTH_ACCESS_TOKEN CLOUD_STORAGE_EMULATOR_ENDPOINT GOOGLE_CLOUD_PROJECT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1
export RCLONE_CONFIG=$WORK/rclone.conf
while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(RCLONE_[A-Z0-9_]*\)=.*/\1/p' | grep -vx RCLONE_CONFIG)

SRV_PID=
cleanup() {
    if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
    rm -rf "$WORK" "$DL"
}
trap cleanup EXIT

python3 tests/gcs/gcs_server.py --port 0 --port-file "$WORK/port" >"$WORK/server.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "bench/commit.sh: the test server did not start" >&2; cat "$WORK/server.log" >&2; exit 3; }
PORT=$(cat "$WORK/port")
EMU=http://127.0.0.1:$PORT
export STORAGE_EMULATOR_HOST=127.0.0.1:$PORT
cat >"$RCLONE_CONFIG" <<EOF
[emu]
type = google cloud storage
anonymous = true
endpoint = $EMU/storage/v1/
EOF
echo "== test server on $EMU (pid $SRV_PID); downloads in $DL ($(stat -f -c %T "$DL"))" >&2

if [ ! -f "$TREE.done" ]; then
    echo "== generating $FILES files of $SIZE bytes in $DIRS folders under $TREE" >&2
    python3 bench/gen_tree.py "$TREE" --files "$FILES" --size "$SIZE" --dirs "$DIRS"
    touch "$TREE.done"
fi
curl -sSf -X POST "$EMU/_seed" -H 'Content-Type: application/json' -d '{"bucket": "src"}' >/dev/null
"$SLUICE" cp "$TREE" gs://src -j "$JOBS" -q

declare -A CMD=(
    [default]="$SLUICE cp gs://src DIR -j $JOBS -q"
    [fsync]="$SLUICE cp gs://src DIR -j $JOBS -q --fsync"
    [old]="$OLD_SLUICE cp gs://src DIR -j $JOBS -q"
)
MODES=(default fsync old)
if [ -n "$RCLONE" ]; then
    CMD[rclone]="$RCLONE copy emu:src DIR --transfers $JOBS -q"
    MODES+=(rclone)
fi

echo "== checking every client's download" >&2
for m in "${MODES[@]}"; do
    d=$DL/check-$m
    ${CMD[$m]//DIR/$d}
    diff -r "$TREE" "$d" >/dev/null || { echo "bench/commit.sh: $m: the download differs from the tree" >&2; exit 1; }
done

# Deleted inodes make new files cost more kernel time for a while (ext4's allocator avoids inodes deleted within the
# last dirty_expire_centisecs, 30 s): let whatever was deleted before this run (a previous run's cleanup) age first.
sync
sleep "${SETTLE:-35}"
for m in "${MODES[@]}"; do : >"$OUT/commit-$m.time"; done
for ((r = 0; r < RUNS; r++)); do
    for m in "${MODES[@]}"; do
        d=$DL/run$r-$m
        /usr/bin/time -f '%e %U %S %M' -o "$WORK/.time" sh -c "exec ${CMD[$m]//DIR/$d}"
        tail -1 "$WORK/.time" >>"$OUT/commit-$m.time"
    done
done

python3 - "$OUT" "$FILES" "${MODES[@]}" <<'PY'
import statistics, sys
out, n, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {}
for m in modes:
    runs = [list(map(float, l.split())) for l in open("%s/commit-%s.time" % (out, m)) if l.strip()]
    wall = statistics.median(r[0] for r in runs)
    user = statistics.median(r[1] for r in runs)
    sys_ = statistics.median(r[2] for r in runs)
    cpu = statistics.median(r[1] + r[2] for r in runs)
    rss = statistics.median(r[3] for r in runs) / 1024
    rows[m] = (wall, user, sys_, cpu, rss, min(r[0] for r in runs), max(r[0] for r in runs))
print("| mode | wall (median) | min..max | user | sys | client CPU | CPU / object | peak RSS |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for m in modes:
    wall, user, sys_, cpu, rss, lo, hi = rows[m]
    print("| %s | %.2f s | %.2f..%.2f s | %.2f s | %.2f s | %.2f s | %.0f µs | %.1f MiB |"
          % (m, wall, lo, hi, user, sys_, cpu, cpu / n * 1e6, rss))
print()
if "rclone" in rows:
    r = rows["default"][3] / rows["rclone"][3]
    print("default client CPU / rclone's: %.2f x (target <= 0.5): %s" % (r, "PASS" if r <= 0.5 else "FAIL"))
r = rows["fsync"][0] / rows["default"][0]
print("--fsync wall / default's: %.2f x (target <= 2): %s" % (r, "PASS" if r <= 2 else "FAIL"))
print("old (per-file fsync) wall / default's: %.2f x, sys %.2f s vs %.2f s"
      % (rows["old"][0] / rows["default"][0], rows["old"][2], rows["default"][2]))
PY
