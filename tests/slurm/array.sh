#!/usr/bin/env bash
# deploy/slurm/sluice-array.sbatch on a real single-node Slurm cluster (scripts/slurm-cluster.sh: Debian's slurmctld,
# slurmd and munged, all under this test's scratch directory): a 4-task array over 20,000 local objects does every
# object exactly once, in the shard its task computes, and `sluice report` says so; a task killed mid-run with
# scancel, then requeued with scontrol, resumes (its report counts what it had done as skipped) and the merge then
# says the job is complete.
#
# Exit 77 (skipped) only when Slurm cannot run here at all (scripts/slurm-cluster.sh says why). Every wait is bounded
# (10 minutes: a loaded 2-core machine runs the 20,000 objects of each phase in about a minute) and says what it
# waited for.
set -euo pipefail
. "$(dirname "$0")/../cli/lib.sh"

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SBATCH_SCRIPT="$ROOT/deploy/slurm/sluice-array.sbatch"
CLUSTER="$T/slurm"
N_OBJECTS=20000
JOBS_PER_TASK=2

# The cluster is stopped whatever happens (its daemons are this test's children no more: they run detached).
s_teardown() {
    local rc=$?
    if [ -f "$CLUSTER/etc/slurm.conf" ]; then
        "$ROOT/scripts/slurm-cluster.sh" down "$CLUSTER" >/dev/null 2>&1 || true
    fi
    return $rc
}
trap 's_teardown; s_on_exit' EXIT

say "bringing up a single-node Slurm cluster"
cluster_rc=0
"$ROOT/scripts/slurm-cluster.sh" up "$CLUSTER" >"$T/cluster.out" 2>"$T/cluster.err" || cluster_rc=$?
if [ "$cluster_rc" = 77 ]; then
    skip_note "$(cat "$T/cluster.err")"
    SL_FINISHED=1
    rm -rf "$T"
    exit 77
fi
[ "$cluster_rc" = 0 ] || fail "scripts/slurm-cluster.sh up" "exit 0" "exit $cluster_rc: $(cat "$T/cluster.err")"
. "$CLUSTER/env.sh"
say "cluster up ($(sinfo -h -o '%N %T %c CPUs'))"

python3 - "$T/src" "$N_OBJECTS" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.txt" % i), "w") as f:
        f.write("object %d\n" % i)
PY
# shard_of KEY N, as the README documents it (FNV-1a 64, splitmix64's finaliser, modulo N); here to check that each
# task took the objects of its own shard, and to count one shard's outputs.
cat >"$T/shards.py" <<'PY'
import os, sys
def shard_of(key, n):
    h = 0xcbf29ce484222325
    for b in key:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 30; h = (h * 0xbf58476d1ce4e5b9) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 27; h = (h * 0x94d049bb133111eb) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 31
    return h % n
def keys(root):
    for d, _, files in os.walk(root):
        for f in files:
            if not f.startswith("."):
                yield os.path.relpath(os.path.join(d, f), root)
cmd = sys.argv[1]
if cmd == "count":    # count DIR N I: files under DIR whose key is in shard I of N
    root, n, i = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(sum(1 for k in keys(root) if shard_of(k.encode(), n) == i))
elif cmd == "check":  # check LOG N TOTAL MAX_REPEATS REPEAT_TASK: the exec log of a run, as "TASK KEY" lines
    log, n, total, max_rep, rep_task = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    seen = {}
    for line in open(log, "rb"):
        task, key = line.rstrip(b"\n").split(b" ", 1)
        if shard_of(key, n) != int(task):
            sys.exit("key %r was done by task %s, but its shard is %d" % (key, task.decode(), shard_of(key, n)))
        seen.setdefault(key, []).append(task.decode())
    if len(seen) != total:
        sys.exit("%d distinct keys done, not %d" % (len(seen), total))
    rep = {k: t for k, t in seen.items() if len(t) > 1}
    if len(rep) > max_rep or any(t != [rep_task, rep_task] for t in rep.values()):
        sys.exit("objects done more than once: %d (at most %d, each twice by task %s): %r"
                 % (len(rep), max_rep, rep_task, sorted(rep.items())[:5]))
    print(len(rep))
PY

# The command each task runs: one line "TASK KEY" per object into $EXEC_LOG (appended whole: one short write), a
# half-second sleep on 1 object in 100 so that a task lasts long enough to be killed mid-run, then the bytes through.
# The objects that sleep, f00000-f00099 and f10000-f10099, are in every directory, at its start and in its middle: a
# task sleeps all along its run (at least 50 x 0.5 s / 2 workers), not only at first.
EXEC='printf "%s %s\n" "$SLURM_ARRAY_TASK_ID" "$SLUICE_KEY" >>"$EXEC_LOG"; case "$SLUICE_KEY" in */f?00??.txt) sleep 0.5;; esac; exec cat'
export SLUICE_JOBS=$JOBS_PER_TASK

task_state() { # task_state JOBID_I: the task's state as squeue says (PENDING, RUNNING, COMPLETED, CANCELLED, ...)
    squeue -h -t all -j "$1" -o %T 2>/dev/null | head -1
}
wait_states() { # wait_states WHAT SECONDS STATE TASK...: until every task is in STATE
    local what=$1 limit=$2 want=$3 t
    shift 3
    local deadline=$((SECONDS + limit))
    while :; do
        local all=1 states=""
        for t in "$@"; do
            local s
            s=$(task_state "$t")
            states+="$t=$s "
            [ "$s" = "$want" ] || all=0
            case "$s" in FAILED | NODE_FAIL | TIMEOUT | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
                s_show_job_logs
                fail "$what" "$want" "$states"
                ;;
            esac
        done
        [ "$all" = 1 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            s_show_job_logs
            fail "$what (waited $limit s)" "every task $want" "$states"
        fi
        sleep 0.5
    done
}
s_show_job_logs() {
    local f
    for f in "$T"/work/*.out "$CLUSTER"/log/slurmctld.log; do
        [ -f "$f" ] || continue
        echo "--- $f (last lines)" >&2
        tail -n 15 "$f" >&2
    done
    return 0
}
submit() { # submit PHASE: the 4-task array into $T/PHASE-out, reports in $T/PHASE-reports/; prints the job id
    local phase=$1
    mkdir -p "$T/work"
    SLUICE_REPORTS="$T/$phase-reports/" SLUICE_FAILURES="$T/$phase-failures" EXEC_LOG="$T/$phase-exec.log" \
        sbatch --parsable --array=0-3 --cpus-per-task=1 --mem=256M -D "$T/work" --output="$T/work/$phase-%A_%a.out" \
        "$SBATCH_SCRIPT" map "$T/src" "$T/$phase-out" --shell --exec "$EXEC"
}

say "phase 1: a 4-task array over $N_OBJECTS objects, every task to the end"
started=$SECONDS
job=$(submit p1)
wait_states "phase 1's tasks" 600 COMPLETED "${job}_0" "${job}_1" "${job}_2" "${job}_3"
say "phase 1: 4 tasks completed in $((SECONDS - started)) s"
for i in 0 1 2 3; do
    expect_eq "task $i's exit code" "0:0" "$(scontrol show job "${job}_$i" | sed -n 's/.* ExitCode=\([^ ]*\).*/\1/p')"
done
expect_eq "reports" "shard-0-of-4.json shard-1-of-4.json shard-2-of-4.json shard-3-of-4.json" \
    "$(ls "$T/p1-reports" | tr '\n' ' ' | sed 's/ $//')"
run "$SLUICE" report --json "$T/p1-reports"
expect_rc 0
expect_eq "merged: complete" true "$(json_field "$OUT" 'd["complete"]')"
expect_eq "merged: done" "$N_OBJECTS" "$(json_field "$OUT" 'd["objects"]["done"]')"
expect_eq "merged: listed (each shard's own)" "$N_OBJECTS" "$(json_field "$OUT" 'd["objects"]["listed"]')"
expect_eq "merged: skipped, failed" "0 0" "$(json_field "$OUT" '"%d %d" % (d["objects"]["skipped"], d["objects"]["failed"])')"
for i in 0 1 2 3; do
    expect_eq "shard $i's report: shard" "{\"index\": $i, \"count\": 4}" \
        "$(json_field "$T/p1-reports/shard-$i-of-4.json" 'd["shard"]')"
    [ -f "$T/p1-failures/failures-$i-of-4.jsonl" ] && [ ! -s "$T/p1-failures/failures-$i-of-4.jsonl" ] ||
        fail "shard $i's failure log" "an empty $T/p1-failures/failures-$i-of-4.jsonl" "$(ls -l "$T/p1-failures")"
done
run "$SLUICE" report "$T/p1-reports"
expect_rc 0
grep -q ": 4 of 4 shards: complete$" "$OUT" || fail "merged text" "4 of 4 shards: complete" "$(cat "$OUT")"
grep -q "^objects: $N_OBJECTS listed, $N_OBJECTS done (0 skipped), 0 failed;" "$OUT" ||
    fail "merged text" "objects: $N_OBJECTS listed, $N_OBJECTS done (0 skipped), 0 failed" "$(cat "$OUT")"
diff -r "$T/src" "$T/p1-out" >/dev/null || fail "phase 1's outputs" "the source's tree, byte for byte" "a difference"
no_tmp_files "$T/p1-out"
# Each object went through the command exactly once, in the task of its shard.
run python3 "$T/shards.py" check "$T/p1-exec.log" 4 "$N_OBJECTS" 0 -
expect_rc 0
expect_out 0

say "phase 2: the same array; task 2 killed mid-run with scancel, then requeued"
started=$SECONDS
job=$(submit p2)
deadline=$((SECONDS + 600))
while :; do
    n2=$(grep -c '^2 ' "$T/p2-exec.log" 2>/dev/null || true)
    [ "${n2:-0}" -ge 300 ] && break
    [ "$SECONDS" -lt "$deadline" ] || { s_show_job_logs; fail "task 2 starts" "300 objects begun within 600 s" "${n2:-0}"; }
    sleep 0.2
done
state=$(task_state "${job}_2")
[ "$state" = RUNNING ] || fail "task 2 before scancel (too fast to be killed mid-run?)" RUNNING "$state"
scancel "${job}_2"
say "phase 2: scancel ${job}_2 after $((SECONDS - started)) s, $n2 objects begun by task 2"
wait_states "the killed task" 120 CANCELLED "${job}_2"
wait_states "the other tasks" 600 COMPLETED "${job}_0" "${job}_1" "${job}_3"
# sluice had SIGTERM and wrote its report on the way out (scancel's SIGKILL comes KillWait = 30 s later).
for _ in $(seq 100); do
    [ -f "$T/p2-reports/shard-2-of-4.json" ] && break
    sleep 0.1
done
expect_eq "the killed shard's report: interrupted" SIGTERM \
    "$(json_field "$T/p2-reports/shard-2-of-4.json" 'd["interrupted"]')"
done_before=$(python3 "$T/shards.py" count "$T/p2-out" 4 2)
shard2_size=$(json_field "$T/p1-reports/shard-2-of-4.json" 'd["objects"]["listed"]')
[ "$done_before" -gt 0 ] && [ "$done_before" -lt "$shard2_size" ] ||
    fail "shard 2's outputs when killed" "some of its $shard2_size objects, not all" "$done_before"
run "$SLUICE" report --json "$T/p2-reports"
expect_rc 3
expect_eq "merged with the killed shard: unfinished" "[2]" "$(json_field "$OUT" 'd["shards"]["unfinished"]')"
expect_eq "merged with the killed shard: complete" false "$(json_field "$OUT" 'd["complete"]')"

scontrol requeue "${job}_2"
# A requeued job is held for a while (its BeginTime); let it start now.
scontrol update jobid="${job}_2" StartTime=now
wait_states "the requeued task" 600 COMPLETED "${job}_2"
say "phase 2: requeued task completed; $((SECONDS - started)) s for the phase"
expect_eq "the requeued task's restarts" 1 "$(scontrol show job "${job}_2" | sed -n 's/.* Restarts=\([0-9]*\).*/\1/p')"
run "$SLUICE" report --json "$T/p2-reports"
expect_rc 0
expect_eq "merged after the rerun: complete" true "$(json_field "$OUT" 'd["complete"]')"
expect_eq "merged after the rerun: done" "$N_OBJECTS" "$(json_field "$OUT" 'd["objects"]["done"]')"
expect_eq "merged after the rerun: failed" 0 "$(json_field "$OUT" 'd["objects"]["failed"]')"
expect_eq "merged after the rerun: skipped (shard 2's outputs from before the kill)" "$done_before" \
    "$(json_field "$OUT" 'd["objects"]["skipped"]')"
expect_eq "the rerun shard's report: skipped" "$done_before" \
    "$(json_field "$T/p2-reports/shard-2-of-4.json" 'd["objects"]["skipped"]')"
expect_eq "the rerun shard's report: interrupted" null \
    "$(json_field "$T/p2-reports/shard-2-of-4.json" 'd["interrupted"]')"
diff -r "$T/src" "$T/p2-out" >/dev/null || fail "phase 2's outputs" "the source's tree, byte for byte" "a difference"
no_tmp_files "$T/p2-out"
# Every object went through the command, in its shard's task; the only ones done twice are those task 2 had begun
# when it was killed (at most its -j), redone by its rerun.
run python3 "$T/shards.py" check "$T/p2-exec.log" 4 "$N_OBJECTS" "$JOBS_PER_TASK" 2
expect_rc 0
say "phase 2: $(cat "$OUT") object(s) begun by the killed task done again by its rerun"

say "stopping the cluster"
"$ROOT/scripts/slurm-cluster.sh" down "$CLUSTER"
say "cluster stopped"
finish
