#!/usr/bin/env bash
# sluice against the project's S3 test server (tests/s3/s3_server.py: in memory, Python, every request's SigV4
# signature checked with botocore, 127.0.0.1 only), side by side with rclone, the AWS CLI (`aws s3`) and s3cmd.
#
#   bench/s3.sh             ~6 min on 2 cores
#
# 1. transfer: FILES (2,000) x SIZE (4 KiB) files in DIRS (20) folders, upload (DIR -> s3://) and download
#    (s3:// -> DIR), -j JOBS (8) for the clients that have a setting for it:
#      sluice   sluice cp TREE s3://upload -j 8 -q                      sluice cp s3://src DIR -j 8 -q
#      rclone   rclone copy TREE emu:upload --transfers 8 -q            rclone copy emu:src DIR --transfers 8 -q
#      aws      aws s3 cp TREE s3://upload --recursive (8 concurrent)   aws s3 cp s3://src DIR --recursive
#      s3cmd    s3cmd put -r -q TREE/ s3://upload/ (one at a time)      s3cmd get -r -q s3://src/ DIR/
#    Every client's result is checked before timing: each uploads the tree under its own prefix, which is listed
#    back and compared file by file (name, size, MD5 = the ETag the server computed: s3_check.py), and each
#    downloads what another client uploaded, compared with the tree by `diff -r`.
# 2. listing: LIST_SMALL (10,000) and LIST_LARGE (100,000) objects seeded through the server's /_sluice/seed (no
#    upload), listed by every client to /dev/null (`sluice ls -r`, `rclone ls`, `aws s3 ls --recursive`,
#    `s3cmd ls -r`), each listing's line count checked first.
#
# Timing: RUNS (5) rounds for the transfers and LIST_RUNS (3) for the listings, every client once per round, in an
# order that rotates from round to round, so that a change in the machine's load hits all alike. Wall time, user and
# sys CPU and peak RSS of the client process alone come from wait4's rusage (sl-rusage, bench/rusage.c: GNU time's
# figures, with the CPU times to the microsecond rather than the hundredth of a second, for the client started by
# posix_spawn from a small C process, not by a fork of a larger one); the figures are medians. The server is
# another process: its CPU (from /proc/PID/stat around each run) is reported apart, never added to the client's,
# with its share of the wall time (1.0 = one core busy, about the most a CPython server gets: then the server, not
# the client, sets the wall time). Uploads start from an empty bucket; each download from an empty directory (the
# previous one is moved aside and all are deleted at the end, see bench/commit.sh for why).
#
# Isolation: HOME, XDG_*, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, RCLONE_CONFIG and s3cmd's config are fresh
# files in a temp dir, every AWS_* and RCLONE_* variable and proxy is unset, the credentials are the test server's
# (environment for sluice and aws, the config files for rclone and s3cmd), AWS_EC2_METADATA_DISABLED=true and
# AWS_ENDPOINT_URL / --endpoint-url / endpoint = http://127.0.0.1:PORT (path style). Nothing but 127.0.0.1 is
# contacted.
#
# Environment: FILES, SIZE, DIRS, JOBS, RUNS, SETTLE (35 s of quiet before the downloads), LIST_SMALL, LIST_LARGE,
# LIST_RUNS, CLIENTS ("sluice rclone aws s3cmd"; a peer that is not installed is skipped with a note), SLUICE (the
# release binary), RCLONE (rclone), AWS (/usr/bin/aws, Debian's awscli, else aws), S3CMD (s3cmd), DST_BASE (where
# downloads go; /tmp/sluice-bench), OUT (raw figures; build/bench), DL_SHM (a tmpfs for the same download without a
# disk file system; /dev/shm, "" skips).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FILES=${FILES:-2000}
SIZE=${SIZE:-4096}
DIRS=${DIRS:-20}
JOBS=${JOBS:-8}
RUNS=${RUNS:-5}
LIST_SMALL=${LIST_SMALL:-10000}
LIST_LARGE=${LIST_LARGE:-100000}
LIST_RUNS=${LIST_RUNS:-3}
CLIENTS=${CLIENTS:-sluice rclone aws s3cmd}
RCLONE=${RCLONE-rclone}
if [ -z "${AWS+set}" ]; then
    AWS=aws
    [ -x /usr/bin/aws ] && AWS=/usr/bin/aws # Debian's awscli, not a version manager's shim that may be first on PATH
fi
S3CMD=${S3CMD-s3cmd}
BASE=/tmp/sluice-bench
DST_BASE=${DST_BASE:-$BASE}
OUT=${OUT:-$ROOT/build/bench}
TREE=$BASE/tree-${FILES}x${SIZE}-${DIRS}d
mkdir -p "$OUT" "$BASE" "$DST_BASE"

for tool in python3 curl; do
    command -v "$tool" >/dev/null || { echo "bench/s3.sh: $tool is required" >&2; exit 2; }
done
declare -A BIN=([rclone]=$RCLONE [aws]=$AWS [s3cmd]=$S3CMD)
declare -A PKG=([rclone]=rclone [aws]=awscli [s3cmd]=s3cmd)
WHO=()
for who in $CLIENTS; do
    case $who in
    sluice) ;;
    rclone | aws | s3cmd)
        if [ -z "${BIN[$who]}" ] || ! command -v "${BIN[$who]}" >/dev/null || ! [ -x "$(command -v "${BIN[$who]}")" ]; then
            echo "bench/s3.sh: NOTE: ${BIN[$who]:-$who} not found (apt-get install ${PKG[$who]}): its rows are skipped" >&2
            continue
        fi
        BIN[$who]=$(command -v "${BIN[$who]}")
        ;;
    *) echo "bench/s3.sh: unknown client '$who' in CLIENTS (sluice rclone aws s3cmd)" >&2; exit 2 ;;
    esac
    WHO+=("$who")
done
[ "${#WHO[@]}" -gt 0 ] || { echo "bench/s3.sh: no client to measure" >&2; exit 2; }
if [[ " ${WHO[*]} " == *" sluice "* ]] && [ -z "${SLUICE:-}" ]; then
    SLUICE=$ROOT/build/release/sluice
    if [ ! -x "$SLUICE" ]; then
        echo "== building the release binary (build/release)" >&2
        cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
        cmake --build build/release -j2 --target sluice_cli >/dev/null
    fi
fi
RUSAGE=$ROOT/build/release/sl-rusage
if [ ! -x "$RUSAGE" ]; then
    echo "== building sl-rusage (build/release)" >&2
    if [ -f build/release/CMakeCache.txt ]; then
        cmake build/release >/dev/null # a tree configured before the target existed learns it
    else
        cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
    fi
    cmake --build build/release -j2 --target sl-rusage >/dev/null
fi

# --- isolation: nothing but 127.0.0.1 -------------------------------------------------------------------------
WORK=$(mktemp -d "$BASE/s3.XXXXXX")
SRV_PID= SHM= MNT= DL=
cleanup() {
    if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
    rm -rf "$DL"
    [ -z "$MNT" ] || umount "$MNT"
    rm -rf "$WORK"
    [ -z "$SHM" ] || rm -rf "$SHM"
}
trap cleanup EXIT
# DL_FS (default ext4 when run as root): the disk downloads go to a file system made for this run, an ext4 image
# (with the journal mkfs.ext4 gives it) loop-mounted under WORK, so that every client writes to the same fresh file
# system whatever the history of the machine's own: ext4 makes new inodes cost more kernel time near recently
# deleted ones, and one without a journal reads a candidate inode's table block for each. DL_FS="" (or not root, or
# no mkfs.ext4): DST_BASE as it is.
DL_FS=${DL_FS-ext4}
if [ -n "$DL_FS" ] && [ "$(id -u)" = 0 ] && command -v "mkfs.$DL_FS" >/dev/null; then
    truncate -s 4G "$WORK/dl.img"
    "mkfs.$DL_FS" -q -F "$WORK/dl.img"
    mkdir -p "$WORK/mnt"
    if mount -o loop "$WORK/dl.img" "$WORK/mnt"; then MNT=$WORK/mnt; DST_BASE=$MNT; fi
fi
[ -n "$MNT" ] || echo "bench/s3.sh: NOTE: downloads go to $DST_BASE as it is (DL_FS: needs root and mkfs.${DL_FS:-ext4})" >&2
DL=$(mktemp -d "$DST_BASE/s3-dl.XXXXXX")
mkdir -p "$WORK/home" "$WORK/xdg-config" "$WORK/xdg-cache" "$DL/old"
while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(AWS_[A-Z0-9_]*\)=.*/\1/p; s/^\(RCLONE_[A-Z0-9_]*\)=.*/\1/p')
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY S3CMD_CONFIG
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/xdg-config XDG_CACHE_HOME=$WORK/xdg-cache
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1
KEY=AKIDSLUICEBENCH
SECRET=sluice-bench-secret
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=$WORK/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-credentials AWS_PAGER=
export RCLONE_CONFIG=$WORK/rclone.conf

# DL_SHM (default /dev/shm; empty: skip) is a tmpfs: the same download there measures the clients without the disk's
# file system.
DL_SHM=${DL_SHM-/dev/shm}
if [ -n "$DL_SHM" ] && [ -d "$DL_SHM" ]; then SHM=$(mktemp -d -p "$DL_SHM" sluice-s3bench.XXXXXX); fi

python3 tests/s3/s3_server.py --port 0 --port-file "$WORK/port" --access-key "$KEY:$SECRET" >"$WORK/server.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 200); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "bench/s3.sh: the test server did not start" >&2; cat "$WORK/server.log" >&2; exit 3; }
PORT=$(tr -d '\n' <"$WORK/port")
EMU=http://127.0.0.1:$PORT
export AWS_ENDPOINT_URL=$EMU
cat >"$AWS_CONFIG_FILE" <<EOF
[default]
region = us-east-1
s3 =
    addressing_style = path
    max_concurrent_requests = $JOBS
EOF
cat >"$RCLONE_CONFIG" <<EOF
[emu]
type = s3
provider = Other
env_auth = false
access_key_id = $KEY
secret_access_key = $SECRET
region = us-east-1
endpoint = $EMU
force_path_style = true
EOF
cat >"$WORK/s3cmd.cfg" <<EOF
[default]
access_key = $KEY
secret_key = $SECRET
host_base = 127.0.0.1:$PORT
host_bucket = 127.0.0.1:$PORT
use_https = False
signature_v2 = False
bucket_location = us-east-1
progress_meter = False
EOF
CLK_TCK=$(getconf CLK_TCK)
echo "== test server on $EMU (pid $SRV_PID), work dir $WORK, downloads in $DL; clients: ${WHO[*]}" >&2

# The commands; BUCKET, PREFIX and DIR are filled in where they are used.
declare -A UP DOWN LS VERSION
UP[sluice]="${SLUICE:-sluice} cp $TREE s3://BUCKET/PREFIX -j $JOBS -q"
DOWN[sluice]="${SLUICE:-sluice} cp s3://BUCKET/PREFIX DIR -j $JOBS -q"
LS[sluice]="${SLUICE:-sluice} ls -r s3://BUCKET"
UP[rclone]="${BIN[rclone]} copy $TREE emu:BUCKET/PREFIX --transfers $JOBS -q"
DOWN[rclone]="${BIN[rclone]} copy emu:BUCKET/PREFIX DIR --transfers $JOBS -q"
LS[rclone]="${BIN[rclone]} ls emu:BUCKET"
UP[aws]="${BIN[aws]} s3 cp $TREE s3://BUCKET/PREFIX --recursive --only-show-errors --endpoint-url $EMU"
DOWN[aws]="${BIN[aws]} s3 cp s3://BUCKET/PREFIX DIR --recursive --only-show-errors --endpoint-url $EMU"
LS[aws]="${BIN[aws]} s3 ls s3://BUCKET --recursive --endpoint-url $EMU"
UP[s3cmd]="${BIN[s3cmd]} -c $WORK/s3cmd.cfg put -r -q $TREE/ s3://BUCKET/PREFIX"
DOWN[s3cmd]="${BIN[s3cmd]} -c $WORK/s3cmd.cfg get -r -q s3://BUCKET/PREFIX DIR/"
LS[s3cmd]="${BIN[s3cmd]} -c $WORK/s3cmd.cfg ls -r s3://BUCKET"
for who in "${WHO[@]}"; do
    case $who in
    sluice) VERSION[$who]="$("$SLUICE" --version 2>&1 | head -1 || true)" ;;
    rclone) VERSION[$who]="$("${BIN[rclone]}" version 2>&1 | head -1 || true)" ;;
    aws) VERSION[$who]="$("${BIN[aws]}" --version 2>&1 | head -1 | cut -d' ' -f1-2 || true)" ;;
    s3cmd) VERSION[$who]="$("${BIN[s3cmd]}" --version 2>&1 | head -1 || true)" ;;
    esac
done
cmd() { # cmd TABLE WHO BUCKET PREFIX DIR: a command with its placeholders filled in
    local -n t=$1
    local c=${t[$2]}
    c=${c//BUCKET/$3}
    c=${c//PREFIX/$4}
    echo "${c//DIR/$5}"
}

ctl() { curl -sSf -X POST "$EMU/_sluice/$1" -H 'Content-Type: application/json' -d "$2" >/dev/null; }
srv_ticks() { awk '{ print $14 + $15 }' "/proc/$SRV_PID/stat"; } # the server's user+sys
# new_bucket NAME: drop bucket NAME (if any) and create it empty
new_bucket() { ctl reset "{\"buckets\": [\"$1\"]}" && ctl seed "{\"bucket\": \"$1\"}"; }

# once PREP CMD: run PREP (untimed), then CMD under sl-rusage; prints "user sys maxrss_kib wall server_cpu_s"
once() {
    local s0 s1
    sh -c "$1"
    s0=$(srv_ticks)
    "$RUSAGE" -o "$WORK/.time" sh -c "exec $2" ||
        { echo "bench/s3.sh: failed: $2" >&2; exit 1; }
    s1=$(srv_ticks)
    echo "$(tail -1 "$WORK/.time") $(awk -v d=$((s1 - s0)) -v t="$CLK_TCK" 'BEGIN { printf "%.2f", d / t }')"
}
# rounds N NAME: N rounds; in round r every client runs once, starting with client r mod #clients; round_prep WHO
# and round_cmd WHO (functions set by the caller) give the preparation and the command; into
# $OUT/s3-NAME-WHO.time, one line per run.
rounds() {
    local r i nw=${#WHO[@]} who
    for who in "${WHO[@]}"; do : >"$OUT/s3-$2-$who.time"; done
    for ((r = 0; r < $1; r++)); do
        for ((i = 0; i < nw; i++)); do
            who=${WHO[$(((r + i) % nw))]}
            once "$(round_prep "$who")" "$(round_cmd "$who")" >>"$OUT/s3-$2-$who.time"
        done
    done
}

# --- 1. transfer ----------------------------------------------------------------------------------------------
if [ ! -f "$TREE.done" ]; then
    echo "== generating $FILES files of $SIZE bytes in $DIRS folders under $TREE" >&2
    python3 bench/gen_tree.py "$TREE" --files "$FILES" --size "$SIZE" --dirs "$DIRS"
    touch "$TREE.done"
fi
find "$TREE" -type f -print0 | xargs -0 cat >/dev/null # warm the page cache

echo "== checking every client's results" >&2
new_bucket check
for who in "${WHO[@]}"; do
    sh -c "$(cmd UP "$who" check "$who/" "")" || { echo "bench/s3.sh: $who's upload failed" >&2; exit 1; }
    python3 bench/s3_check.py "$EMU" check "$who/" "$TREE" | sed "s/^/$who upload: /" >&2
done
n=${#WHO[@]}
for ((i = 0; i < n; i++)); do # each downloads what the next one uploaded
    who=${WHO[$i]}
    other=${WHO[$(((i + 1) % n))]}
    chk=$DL/old/check-$who
    mkdir -p "$chk"
    sh -c "$(cmd DOWN "$who" check "$other/" "$chk")" ||
        { echo "bench/s3.sh: $who's download of s3://check/$other/ failed" >&2; exit 1; }
    diff -r "$TREE" "$chk" >/dev/null ||
        { echo "bench/s3.sh: $who's download of s3://check/$other/ differs from $TREE" >&2; exit 1; }
    echo "$who download of $other's upload: $(find "$chk" -type f | wc -l) files, identical to the tree (diff -r)" >&2
done
ctl reset '{"buckets": ["check"]}'

# The download source: the tree uploaded once (by the first client, checked above).
new_bucket src
sh -c "$(cmd UP "${WHO[0]}" src "" "")"
python3 bench/s3_check.py "$EMU" src "" "$TREE" >/dev/null

echo "== upload and download, $RUNS rounds" >&2
round_prep() { echo "curl -sSf -X POST $EMU/_sluice/reset -d '{\"buckets\": [\"upload\"]}' >/dev/null &&
    curl -sSf -X POST $EMU/_sluice/seed -d '{\"bucket\": \"upload\"}' >/dev/null"; }
round_cmd() { cmd UP "$1" upload "" ""; }
rounds "$RUNS" up
# Deleted inodes make new files cost more kernel time for a while (ext4's allocator avoids inodes deleted within the
# last dirty_expire_centisecs, 30 s; on a file system without a journal it reads inode tables to find them): let
# whatever was deleted before the downloads (a previous run's cleanup, the checks above) age first, as bench/commit.sh
# does.
sync
sleep "${SETTLE:-35}"
# the previous download moved aside (deleted at the end), then an empty directory (s3cmd wants it to exist)
round_prep() { echo "{ [ ! -e $DL/dl ] || mv $DL/dl \$(mktemp -d -p $DL/old)/; } && mkdir $DL/dl"; }
round_cmd() { cmd DOWN "$1" src "" "$DL/dl"; }
rounds "$RUNS" down
rm -f "$OUT"/s3-shm-*.time
if [ -n "$SHM" ]; then
    echo "== download to tmpfs ($DL_SHM), $RUNS rounds" >&2
    round_prep() { echo "rm -rf $SHM/dl && mkdir $SHM/dl"; }
    round_cmd() { cmd DOWN "$1" src "" "$SHM/dl"; }
    rounds "$RUNS" shm
    rm -rf "$SHM/dl"
fi
rm -rf "$DL/dl" "$DL/old"
ctl reset '{"buckets": ["upload", "src"]}'

# --- 2. listing -------------------------------------------------------------------------------------------------
for n in "$LIST_SMALL" "$LIST_LARGE"; do
    echo "== seeding and listing $n objects, $LIST_RUNS rounds" >&2
    ctl seed "{\"bucket\": \"list$n\", \"count\": $n, \"name_format\": \"events/2026-11-25/part-{:07d}.json\"}"
    for who in "${WHO[@]}"; do
        got=$(sh -c "$(cmd LS "$who" "list$n" "" "")" | wc -l)
        [ "$got" = "$n" ] || { echo "bench/s3.sh: $who listed $got objects of s3://list$n, expected $n" >&2; exit 1; }
    done
    echo "every client's listing of s3://list$n has $n lines" >&2
    round_prep() { echo true; }
    round_cmd() { echo "$(cmd LS "$1" "list$n" "" "") >/dev/null"; } # n: this loop's, not a local of rounds()
    rounds "$LIST_RUNS" "ls-$n"
    ctl reset "{\"buckets\": [\"list$n\"]}"
done

# --- report -----------------------------------------------------------------------------------------------------
for who in "${WHO[@]}"; do echo "$who ${VERSION[$who]}"; done >"$OUT/s3-versions.txt"
python3 - "$OUT" "$FILES" "$SIZE" "$DIRS" "$JOBS" "$LIST_SMALL" "$LIST_LARGE" "${WHO[@]}" <<'PY'
import os, statistics, sys
out = sys.argv[1]
files, size, dirs, jobs, n_small, n_large = (int(v) for v in sys.argv[2:8])
who = sys.argv[8:]
peers = [w for w in who if w != "sluice"]
med = statistics.median
mib = lambda kib: kib / 1024.0
ok = lambda b: "PASS" if b else "**FAIL**"
num = lambda v: format(int(round(v)), ",")
versions = dict(l.rstrip("\n").split(" ", 1) for l in open("%s/s3-versions.txt" % out))

def summary(name, w):
    rows = [[float(v) for v in l.split()] for l in open("%s/s3-%s-%s.time" % (out, name, w)) if l.strip()]
    return {"cpu": med([r[0] + r[1] for r in rows]), "user": med([r[0] for r in rows]), "sys": med([r[1] for r in rows]),
            "rss": med([r[2] for r in rows]), "rss_all": [int(r[2]) for r in rows], "wall": med([r[3] for r in rows]),
            "wmin": min(r[3] for r in rows), "wmax": max(r[3] for r in rows), "srv": med([r[4] for r in rows]),
            "share": med([r[4] / r[3] if r[3] else 0 for r in rows])}

print()
print("clients: " + "; ".join("%s (%s)" % (w, versions.get(w, "?")) for w in who))
print()
print("1. %d files x %d bytes in %d folders, -j %d where the client has it (s3cmd: one at a time); medians; CPU ="
      " user+sys of the client (wait4's rusage, in µs); server CPU share = the server's CPU / wall (1.0 = one core)"
      % (files, size, dirs, jobs))
print()
print("| direction | client | wall | min..max | client CPU / object | user / sys | peak RSS | server CPU / run"
      " | server CPU share |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
cpu, rss_s = {}, []
DIRS = [("up", "upload local -> s3://"), ("down", "download s3:// -> local disk")]
if os.path.exists("%s/s3-shm-%s.time" % (out, who[0])):
    DIRS.append(("shm", "download s3:// -> tmpfs"))
SHORT = {"up": "upload", "down": "download to disk", "shm": "download to tmpfs"}
for d, label in DIRS:
    for w in who:
        s = summary(d, w)
        cpu[(d, w)] = s["cpu"] / files
        if w == "sluice":
            rss_s.append(s["rss"])
        print("| %s | %s | %.2f s | %.2f..%.2f s | %s µs | %s / %s µs | %.1f MiB | %.2f s | %.2f |" % (
            label, w, s["wall"], s["wmin"], s["wmax"], num(1e6 * s["cpu"] / files), num(1e6 * s["user"] / files),
            num(1e6 * s["sys"] / files), mib(s["rss"]), s["srv"], s["share"]))

print()
print("2. listing to /dev/null (objects seeded via /_sluice/seed, names like events/2026-11-25/part-0000000.json);"
      " medians")
print()
print("| objects | client | wall | client CPU | objects / CPU-s | peak RSS | runs (KiB) | server CPU | server CPU share |")
print("|---:|---|---:|---:|---:|---:|---|---:|---:|")
ls = {}
for n in (n_small, n_large):
    for w in who:
        s = summary("ls-%d" % n, w)
        ls[(n, w)] = s
        print("| %s | %s | %.2f s | %.2f s | %s | %.2f MiB | %s | %.2f s | %.2f |" % (
            format(n, ","), w, s["wall"], s["cpu"], num(n / s["cpu"]) if s["cpu"] else "-", mib(s["rss"]),
            ", ".join(map(str, s["rss_all"])), s["srv"], s["share"]))

if "sluice" in who:
    print()
    print("| target | measured | result |")
    print("|---|---:|---|")
    for d, label in DIRS:
        if peers:
            best = min(peers, key=lambda w: cpu[(d, w)])
            ratio = cpu[(d, "sluice")] / cpu[(d, best)]
            print("| %s: sluice CPU / object <= 1/3 of the best peer's (%s, %s µs) | %s µs = %.2f x | %s |" % (
                SHORT[d], best, num(1e6 * cpu[(d, best)]), num(1e6 * cpu[(d, "sluice")]), ratio, ok(ratio <= 1 / 3.0)))
    rss_s += [ls[(n, "sluice")]["rss"] for n in (n_small, n_large)]
    print("| sluice peak RSS <= 32 MiB | %.1f MiB (largest of its rows) | %s |" % (mib(max(rss_s)), ok(mib(max(rss_s)) <= 32)))
    s = ls[(n_large, "sluice")]
    rate = n_large / max(s["cpu"], 1e-6)
    print("| listing >= 100,000 objects / CPU-s (at %s) | %s%s | %s |" % (
        format(n_large, ","), "" if s["cpu"] else ">= ", num(rate), ok(rate >= 100000)))
    a, b = ls[(n_small, "sluice")]["rss"], ls[(n_large, "sluice")]["rss"]
    diff = (b - a) * 100.0 / a
    print("| sluice peak RSS flat: %s objects within 5 %% of %s | %.2f MiB -> %.2f MiB (%+.1f %%) | %s |" % (
        format(n_large, ","), format(n_small, ","), mib(a), mib(b), diff, ok(abs(diff) <= 5)))
PY
