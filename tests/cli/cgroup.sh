#!/usr/bin/env bash
# sluice in a real memory cgroup, and its memory guard.
#
# 1. In a memory cgroup the test creates (v1: memory.limit_in_bytes; v2: memory.max) with a 64 MiB limit, sluice finds
#    it through /proc/self/cgroup: the report's "memory" object carries the limit and the cgroup's usage, and the
#    default --memory-limit follows the limit (a quarter of it: 16 MiB caps -j 200 at the workers it feeds).
# 2. A 100,000-object `map --op crc32c` runs to completion inside 64 MiB without an OOM kill (exit status, and the
#    kernel's own count: v1 memory.oom_control oom_kill, v2 memory.events oom_kill).
# 3. The guard, deterministically, with a fake cgroup tree (SLUICE_CGROUP_ROOT, SLUICE_PROC_CGROUP) whose usage file
#    the test raises while the job's workers are held at a gate: one warning line with the slope, workers halved, the
#    same warning in the report; usage that falls and rises again past 80 % does not warn a second time.
# 4. The guard judges what the kernel cannot reclaim: in a 64 MiB cgroup first filled with page cache (a file read
#    three times from inside it, so its pages are active: the working set Kubernetes counts is over 80 % of the
#    limit), a job runs without a warning and with its workers; a command that holds 48 MiB of anonymous memory in the
#    same cgroup still makes it warn, naming the figure it judged.
#
# 1, 2 and 4 need a memory cgroup this process may create (root, or a delegated subtree): a v1 memory hierarchy, or v2
# with the memory controller available to the children of this process's cgroup. Without one they print a SKIP line
# saying why and the rest still runs. Created cgroups are removed on exit, any process left in them moved back first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

LIMIT=$((64 * 1024 * 1024))

# ---- finding a place for a memory cgroup ----

CG_VERSION=0       # 1 or 2 once a parent is found
CG_PARENT=""       # this process's memory cgroup directory, where children are made
CG_ROOT=""         # what SLUICE_CGROUP_ROOT must be for sluice to find them (v1: the directory holding memory/)
CG_WHY="no memory cgroup hierarchy is mounted"
CG_CREATED=()      # directories to remove on exit
CG_ENABLED_MEMORY="" # v2: the subtree_control where this test turned the memory controller on

# The directory of a hierarchy for a /proc/self/cgroup path: MOUNTPOINT + PATH relative to the mount's root. With
# PATH "": the mount point.
cg_dir_of() { # cg_dir_of FSTYPE OPTION_REGEX PATH -> prints the directory, or fails
    local fstype=$1 opt=$2 path=$3 line root mnt rest
    while IFS= read -r line; do
        rest=${line#* - }
        # shellcheck disable=SC2086
        set -- $rest
        [ "$1" = "$fstype" ] || continue
        [[ ",$3," =~ $opt ]] || continue
        # shellcheck disable=SC2086
        set -- $line
        root=$4 mnt=$5
        if [ -z "$path" ] || [ "$root" = / ]; then
            printf '%s%s\n' "$mnt" "$path"
        elif [ "${path#"$root"}" != "$path" ]; then
            printf '%s%s\n' "$mnt" "${path#"$root"}"
        else
            continue
        fi
        return 0
    done </proc/self/mountinfo
    return 1
}

cg_probe() {
    local line v1_path="" v2_path="" dir
    while IFS= read -r line; do
        local id=${line%%:*} rest=${line#*:}
        local ctrl=${rest%%:*} path=${rest#*:}
        if [ "$id" = 0 ] && [ -z "$ctrl" ]; then
            v2_path=$path
        elif [[ ",$ctrl," == *,memory,* ]]; then
            v1_path=$path
        fi
    done </proc/self/cgroup
    if [ -n "$v1_path" ] && dir=$(cg_dir_of cgroup ',memory,' "$v1_path") && [ -f "$dir/memory.limit_in_bytes" ]; then
        local mnt
        mnt=$(cg_dir_of cgroup ',memory,' "")
        if [ "$(basename "$mnt")" != memory ]; then
            CG_WHY="the v1 memory hierarchy is mounted at $mnt, not at a directory named memory"
            return
        fi
        CG_VERSION=1 CG_PARENT=${dir%/} CG_ROOT=$(dirname "$mnt")
        return
    fi
    if [ -n "$v2_path" ] && dir=$(cg_dir_of cgroup2 '.*' "$v2_path"); then
        dir=${dir%/}
        if ! grep -qw memory "$dir/cgroup.controllers" 2>/dev/null; then
            CG_WHY="cgroup v2 at $dir has no memory controller to give to children (cgroup.controllers: $(cat "$dir/cgroup.controllers" 2>/dev/null))"
            return
        fi
        if ! grep -qw memory "$dir/cgroup.subtree_control" 2>/dev/null; then
            if ! echo +memory 2>/dev/null >"$dir/cgroup.subtree_control"; then
                CG_WHY="cannot enable the memory controller in $dir/cgroup.subtree_control (not delegated, or processes live in that cgroup)"
                return
            fi
            CG_ENABLED_MEMORY="$dir/cgroup.subtree_control"
        fi
        CG_VERSION=2 CG_PARENT=$dir CG_ROOT=$(cg_dir_of cgroup2 '.*' "")
        return
    fi
    [ -n "$v1_path$v2_path" ] && CG_WHY="this process's cgroup directory is not visible under any mount in /proc/self/mountinfo"
}

# Makes a child cgroup with a memory limit, in CG_DIR. Fails (with CG_WHY set) when it cannot. Not in a $(...)
# subshell: CG_CREATED must remember it.
cg_create() { # cg_create NAME LIMIT_BYTES
    local dir="$CG_PARENT/sluice-test-$$-$1"
    CG_DIR=""
    if ! mkdir "$dir" 2>/dev/null; then
        CG_WHY="cannot create a cgroup in $CG_PARENT (not root, or not delegated)"
        return 1
    fi
    CG_CREATED+=("$dir")
    local file=memory.max
    [ "$CG_VERSION" = 1 ] && file=memory.limit_in_bytes
    if ! echo "$2" 2>/dev/null >"$dir/$file"; then
        CG_WHY="cannot set $dir/$file"
        return 1
    fi
    CG_DIR=$dir
}

cg_cleanup() {
    local dir pid
    for dir in "${CG_CREATED[@]}"; do
        [ -d "$dir" ] || continue
        # A process still inside (a test interrupted mid-run) goes back to the parent, or rmdir fails with EBUSY.
        while read -r pid; do
            echo "$pid" 2>/dev/null >"$CG_PARENT/cgroup.procs" || true
        done <"$dir/cgroup.procs"
        rmdir "$dir" 2>/dev/null || echo "warning: could not remove cgroup $dir" >&2
    done
    if [ -n "$CG_ENABLED_MEMORY" ]; then
        echo -memory 2>/dev/null >"$CG_ENABLED_MEMORY" || true
    fi
}
job=""
GATE="$T/gate"
# On a failure while a job waits at its gate: open the gate and stop the job before removing the cgroups.
trap 'rc=$?; [ -z "$job" ] || { touch "$GATE"; kill "$job" 2>/dev/null; wait "$job" 2>/dev/null; }; cg_cleanup
      (exit "$rc"); s_on_exit' EXIT

# Runs a command inside the cgroup DIR from its first instruction: a shell puts itself in, then execs the command.
in_cgroup() { # in_cgroup DIR CMD ARGS...
    local dir=$1
    shift
    sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$dir" "$@"
}

# The kernel's count of OOM kills in a cgroup (0 when the kernel does not report them).
cg_oom_kills() { # cg_oom_kills DIR
    local f=memory.events
    [ "$CG_VERSION" = 1 ] && f=memory.oom_control
    awk '$1 == "oom_kill" { n = $2 } END { print n + 0 }' "$1/$f"
}

# The kernel's usage of a cgroup (page cache included).
cg_usage() { # cg_usage DIR
    if [ "$CG_VERSION" = 1 ]; then cat "$1/memory.usage_in_bytes"; else cat "$1/memory.current"; fi
}

# The kernel's peak usage of a cgroup, or "unknown".
cg_peak() { # cg_peak DIR
    local f=memory.peak
    [ "$CG_VERSION" = 1 ] && f=memory.max_usage_in_bytes
    if [ -r "$1/$f" ]; then cat "$1/$f"; else echo unknown; fi
}

mib() { awk -v b="$1" 'BEGIN { if (b ~ /^[0-9]+$/) printf "%.1f MiB", b / 1048576; else print b }'; }

make_tree() { # make_tree DIR COUNT: COUNT small files (16 to 400 bytes) in 100 directories
    python3 - "$1" "$2" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for d in range(100):
    os.makedirs(os.path.join(root, "d%02d" % d), exist_ok=True)
for i in range(count):
    with open(os.path.join(root, "d%02d" % (i % 100), "obj-%06d.txt" % i), "wb") as f:
        f.write((b"line %d of a small object\n" % i) * (1 + i % 15))
PY
}

cg_probe

# ---- 1. a real cgroup is found: limit, usage, the default memory limit ----

say "1. sluice in a real 64 MiB memory cgroup: report shows its limit and usage, -j 200 is capped by a 16 MiB budget"
make_tree "$T/small" 2000
if [ "$CG_VERSION" = 0 ]; then
    skip_note "1 and 2 (real memory cgroup): $CG_WHY"
elif ! cg_create find "$LIMIT"; then
    skip_note "1 and 2 (real memory cgroup): $CG_WHY"
    CG_VERSION=0
else
    CG1=$CG_DIR
    say "  cgroup v$CG_VERSION at $CG1 (SLUICE_CGROUP_ROOT=$CG_ROOT)"
    run in_cgroup "$CG1" env SLUICE_CGROUP_ROOT="$CG_ROOT" \
        "$SLUICE" map "$T/small" - --op crc32c -j 200 --mem-interval 50 --report "$T/r1.json"
    expect_rc 0
    expect_eq "result lines" 2000 "$(wc -l <"$OUT")"
    expect_eq "report memory.limit_bytes (the cgroup's)" "$LIMIT" "$(json_field "$T/r1.json" 'd["memory"]["limit_bytes"]')"
    expect_eq "report memory.cgroup_limit_bytes" "$LIMIT" "$(json_field "$T/r1.json" 'd["memory"]["cgroup_limit_bytes"]')"
    usage=$(json_field "$T/r1.json" 'd["memory"]["cgroup_usage_bytes"]')
    peak=$(cg_peak "$CG1")
    [ "$usage" -gt 0 ] || fail "report memory.cgroup_usage_bytes" "> 0 (sluice itself is in the cgroup)" "$usage"
    if [ "$peak" != unknown ]; then
        # Reported usage is the working set (usage minus inactive page cache), never above what the kernel saw.
        [ "$usage" -le "$peak" ] || fail "report memory.cgroup_usage_bytes" "<= the kernel's peak usage $peak" "$usage"
    fi
    expect_eq "report budget.limit_bytes: 64 MiB / 4" $((LIMIT / 4)) "$(json_field "$T/r1.json" 'd["budget"]["limit_bytes"]')"
    expect_eq "workers: as many as 16 MiB feeds" \
        "$(json_field "$T/r1.json" 'min(200, d["budget"]["limit_bytes"] // d["budget"]["per_worker_bytes"])')" \
        "$(json_field "$T/r1.json" 'd["jobs"]')"
    expect_eq "no warning far below the limit" null "$(json_field "$T/r1.json" 'd["memory"]["warning"]')"
    say "  cgroup usage at the end $(mib "$usage"), kernel's peak $(mib "$peak") of $(mib "$LIMIT")"
fi

# ---- 2. 100,000 objects in 64 MiB, no OOM kill ----

say "2. map --op crc32c over 100,000 objects inside a 64 MiB memory cgroup: completes, no OOM kill"
if [ "$CG_VERSION" = 0 ]; then
    skip_note "2: $CG_WHY"
elif sanitized; then
    skip_note "2: sanitized binary: ASan's shadow memory and quarantine are not sluice's memory and do not fit 64 MiB"
elif ! cg_create big "$LIMIT"; then
    skip_note "2: $CG_WHY"
else
    CG2=$CG_DIR
    # The OOM check must be able to fail: a program that needs 128 MiB in a 64 MiB cgroup is killed and counted.
    cg_create control "$LIMIT" || fail "a second test cgroup" "created" "$CG_WHY"
    rc=0
    in_cgroup "$CG_DIR" python3 -c 'b = b"x" * (128 << 20); print(len(b))' >/dev/null 2>&1 || rc=$?
    expect_eq "control: exit status of 128 MiB allocated in 64 MiB (SIGKILL)" 137 "$rc"
    expect_eq "control: OOM kills counted" 1 "$(cg_oom_kills "$CG_DIR")"
    # Written from inside the cgroup, so that its page cache, dentries and inodes are charged to it: the job starts in
    # a cgroup already full to its limit, as a pod that has just written its inputs is.
    in_cgroup "$CG2" bash -c "$(declare -f make_tree); make_tree '$T/big' 100000"
    say "  tree written in the cgroup; its usage now $(mib "$(cg_usage "$CG2")")"
    started=$SECONDS
    run in_cgroup "$CG2" env SLUICE_CGROUP_ROOT="$CG_ROOT" \
        "$SLUICE" map "$T/big" - --op crc32c --mem-interval 200 --report "$T/r2.json"
    took=$((SECONDS - started))
    kills=$(cg_oom_kills "$CG2")
    expect_eq "OOM kills in the cgroup" 0 "$kills"
    expect_rc 0
    expect_eq "result lines" 100000 "$(wc -l <"$OUT")"
    expect_eq "report objects.done" 100000 "$(json_field "$T/r2.json" 'd["objects"]["done"]')"
    expect_eq "report outcome" ok "$(json_field "$T/r2.json" 'd["outcome"]')"
    expect_eq "report memory.limit_bytes" "$LIMIT" "$(json_field "$T/r2.json" 'd["memory"]["limit_bytes"]')"
    rss=$(json_field "$T/r2.json" 'd["memory"]["peak_rss_bytes"]')
    trend=$(json_field "$T/r2.json" 'd["memory"]["trend"]')
    case "$trend" in flat | unknown) ;; *) fail "report memory.trend" "flat (nothing is kept per object)" "$trend" ;; esac
    warning=$(json_field "$T/r2.json" 'd["memory"]["warning"]')
    failcnt=""
    [ "$CG_VERSION" = 1 ] && failcnt="; memory.failcnt $(cat "$CG2/memory.failcnt")"
    say "  guard: $warning$failcnt"
    say "  ${took}s; sluice peak RSS $(mib "$rss"); cgroup peak $(mib "$(cg_peak "$CG2")") of $(mib "$LIMIT");" \
        "verdict: $(json_field "$T/r2.json" 'd["memory"]["verdict"]')"
fi

# ---- 3. the guard, deterministic with a fake tree ----

say "3. fake cgroup: usage raised past 80 % while the workers wait at a gate: one warning, workers 4 -> 2, in the report"
FAKE="$T/fake/kubepods/pod1/ctr"
mkdir -p "$FAKE"
echo "0::/kubepods/pod1/ctr" >"$T/proc-cgroup"
echo max >"$T/fake/kubepods/memory.max"
echo "$LIMIT" >"$FAKE/memory.max"
set_usage() { # atomically, so that the sampler never reads a half-written file
    echo "$1" >"$FAKE/.current.tmp"
    mv "$FAKE/.current.tmp" "$FAKE/memory.current"
}
set_usage $((10 * 1024 * 1024))
# Samples so far with cgroup usage $1 (column 5 of the timeline).
samples_at() {
    if [ -f "$T/t3.csv" ]; then awk -F, -v u="$1" 'NR > 1 && $5 == u { n++ } END { print n + 0 }' "$T/t3.csv"; else echo 0; fi
}
wait_samples() { # wait_samples USAGE N: until N samples have seen USAGE (10 s at most)
    for _ in $(seq 500); do
        [ "$(samples_at "$1")" -ge "$2" ] && return 0
        kill -0 "$job" 2>/dev/null || fail "the job" "still running at its gate" "it exited: $(cat "$T/err3")"
        sleep 0.02
    done
    fail "timeline" "$2 samples at usage $1 within 10 s" "$(tail -3 "$T/t3.csv")"
}

SLUICE_CGROUP_ROOT="$T/fake" SLUICE_PROC_CGROUP="$T/proc-cgroup" GATE="$GATE" \
    "$SLUICE" map "$T/small" - -j 4 --mem-interval 20 --timeline "$T/t3.csv" --report "$T/r3.json" \
    --shell --exec 'while [ ! -e "$GATE" ]; do sleep 0.01; done; wc -c' >"$T/out3" 2>"$T/err3" &
job=$!
wait_samples $((10 * 1024 * 1024)) 5
[ ! -s "$T/err3" ] || fail "stderr at 16 % of the limit" "nothing" "$(cat "$T/err3")"
set_usage $((56 * 1024 * 1024)) # 87.5 %
wait_samples $((56 * 1024 * 1024)) 5
set_usage $((20 * 1024 * 1024)) # back under: the guard does not reset
wait_samples $((20 * 1024 * 1024)) 5
set_usage $((60 * 1024 * 1024)) # past 80 % again
wait_samples $((60 * 1024 * 1024)) 5
touch "$GATE"
rc3=0
wait "$job" || rc3=$?
job=""
LAST_CMD="sluice map ... -j 4 --mem-interval 20 --shell --exec '<wait for the gate>; wc -c' (fake cgroup)"
cp "$T/err3" "$ERR"
cp "$T/out3" "$OUT"
RC=$rc3
expect_rc 0
expect_eq "result lines" 2000 "$(wc -l <"$OUT")"
expect_eq "warning lines" 1 "$(grep -c 'warning' "$ERR")"
warn=$(grep 'warning' "$ERR")
pattern='^sluice: warning: memory at 88% of the 64\.0 MiB limit: 56\.0 MiB of cgroup memory that is not page cache \((flat, [-+][0-9.]+ [KMG]?i?B/min|growing: .*/min.*|unknown: .*)\); lowering workers from 4 to 2$'
[[ "$warn" =~ $pattern ]] || fail "warning line" "$pattern" "$warn"
expect_eq "stderr lines (warning + summary)" 2 "$(wc -l <"$ERR")"
expect_eq "report memory.warning" "${warn#sluice: warning: }" "$(json_field "$T/r3.json" 'd["memory"]["warning"]')"
expect_eq "report memory.cgroup_limit_bytes" "$LIMIT" "$(json_field "$T/r3.json" 'd["memory"]["cgroup_limit_bytes"]')"
expect_eq "report memory.cgroup_usage_bytes (the last sample)" $((60 * 1024 * 1024)) \
    "$(json_field "$T/r3.json" 'd["memory"]["cgroup_usage_bytes"]')"
say "  $warn"

# ---- 4. page cache is not memory pressure; anonymous memory is ----

say "4. a 64 MiB cgroup full of active page cache: no warning, workers kept; 48 MiB of anonymous memory still warns"
if [ "$CG_VERSION" = 0 ]; then
    skip_note "4: $CG_WHY"
elif sanitized; then
    skip_note "4: sanitized binary: ASan's shadow memory is anonymous memory of its own and would be judged"
elif ! cg_create cache "$LIMIT"; then
    skip_note "4: $CG_WHY"
else
    CG4=$CG_DIR
    stat_of() { # stat_of DIR KEY: a memory.stat counter (v1: its total_ version)
        local k=$2
        [ "$CG_VERSION" = 1 ] && k=total_$2
        awk -v k="$k" '$1 == k { print $2 }' "$1/memory.stat"
    }
    # A file smaller than the limit, written and then read three times inside the cgroup: its pages become active
    # page cache charged to the cgroup.
    in_cgroup "$CG4" sh -c 'head -c 56M /dev/zero >"$0"; for i in 1 2 3; do cat "$0" >/dev/null; done' "$T/cache.bin"
    usage=$(cg_usage "$CG4")
    working=$((usage - $(stat_of "$CG4" inactive_file)))
    say "  cgroup usage $(mib "$usage"), working set $(mib "$working"), active page cache $(mib "$(stat_of "$CG4" active_file)")"
    # What an earlier guard judged (the working set) must be past 80 % here, or this test proves nothing.
    [ "$working" -ge $((LIMIT * 8 / 10)) ] ||
        fail "the cgroup's working set before the job" ">= 80 % of $(mib "$LIMIT") (active page cache)" "$(mib "$working")"
    run in_cgroup "$CG4" env SLUICE_CGROUP_ROOT="$CG_ROOT" \
        "$SLUICE" map "$T/small" - --op crc32c -j 8 --mem-interval 20 --report "$T/r4.json"
    expect_rc 0
    expect_eq "result lines" 2000 "$(wc -l <"$OUT")"
    expect_eq "stderr: only the summary (no warning)" 1 "$(wc -l <"$ERR")"
    expect_eq "report memory.warning" null "$(json_field "$T/r4.json" 'd["memory"]["warning"]')"
    expect_eq "report jobs" 8 "$(json_field "$T/r4.json" 'd["jobs"]')"
    unreclaimable=$(json_field "$T/r4.json" 'd["memory"]["cgroup_unreclaimable_bytes"]')
    [ "$unreclaimable" -gt 0 ] && [ "$unreclaimable" -lt $((LIMIT * 8 / 10)) ] ||
        fail "report memory.cgroup_unreclaimable_bytes" "between 0 and 80 % of the limit" "$unreclaimable"
    say "  job: no warning; the cgroup's memory without page cache at the end $(mib "$unreclaimable")"
    # Real anonymous memory in the same cgroup (a command of the job holding 48 MiB) is judged as it should be.
    run in_cgroup "$CG4" env SLUICE_CGROUP_ROOT="$CG_ROOT" \
        "$SLUICE" map "$T/small" - --include d00/obj-000000.txt -j 8 --mem-interval 20 --report "$T/r5.json" --shell \
        --exec 'python3 -c "import time; b = b\"x\" * (48 << 20); time.sleep(1.5)"; wc -c'
    expect_rc 0
    expect_eq "OOM kills in the cgroup" 0 "$(cg_oom_kills "$CG4")"
    warn=$(grep 'warning' "$ERR" || true)
    pattern='^sluice: warning: memory at (8[0-9]|9[0-9])% of the 64\.0 MiB limit: [0-9.]+ MiB of cgroup memory that is not page cache \(.*\); lowering workers from 8 to 4$'
    [[ "$warn" =~ $pattern ]] || fail "warning line" "$pattern" "$warn"
    expect_eq "report memory.warning" "${warn#sluice: warning: }" "$(json_field "$T/r5.json" 'd["memory"]["warning"]')"
    say "  $warn"
fi

finish
