#!/usr/bin/env bash
# --shard I/N and --shard auto: N processes each take the objects whose key hashes to their index, so that between
# them every object is done exactly once; the hash is the documented one (checked here against an implementation of
# it in Python, not against sluice's); resume ignores shards; the scheduler's environment (Kubernetes Indexed Jobs,
# Slurm job arrays) gives I and N, and a missing or inconsistent one is a usage error naming the variables.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=600
python3 - "$T/src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    name = ["f%04d.bin" % i, "caf\u00e9 %d" % i, "x+%d~" % i][i % 3]
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"%d\n" % i * (i % 5 + 1))
PY

# shard_of KEY N, as the README documents it: FNV-1a 64 of the key's bytes, splitmix64's finaliser, modulo N.
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
# shards.py SRC N I: the keys of shard I of N, sorted
root, n, i = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keys = []
for d, _, files in os.walk(root):
    for f in files:
        keys.append(os.path.relpath(os.path.join(d, f), root).encode())
for k in sorted(k for k in keys if shard_of(k, n) == i):
    sys.stdout.buffer.write(k + b"\n")
PY
keys_of() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

say "4 shards into one destination: each does exactly the objects of its index by the documented hash"
total=0
for i in 0 1 2 3; do
    run "$SLUICE" cp "$T/src" "$T/one/s$i" -q --shard "$i/4" --report "$T/r$i.json"
    expect_rc 0
    python3 "$T/shards.py" "$T/src" 4 "$i" >"$T/want$i"
    [ -s "$T/want$i" ] || fail "shard $i" "some objects" "none"
    expect_eq "objects of shard $i/4" "$(cat "$T/want$i")" "$(keys_of "$T/one/s$i")"
    expect_eq "shard $i's report: done" "$(wc -l <"$T/want$i")" "$(json_field "$T/r$i.json" 'd["objects"]["done"]')"
    expect_eq "shard $i's report: listed (its own objects, as with --include)" "$(wc -l <"$T/want$i")" \
        "$(json_field "$T/r$i.json" 'd["objects"]["listed"]')"
    expect_eq "shard $i's report: shard" '{"index": '"$i"', "count": 4}' "$(json_field "$T/r$i.json" 'd["shard"]')"
    total=$((total + $(wc -l <"$T/want$i")))
done
expect_eq "objects done by the 4 shards together" "$N" "$total"
cat "$T"/want[0-3] | LC_ALL=C sort >"$T/union"
keys_of "$T/src" >"$T/all"
cmp -s "$T/union" "$T/all" || fail "the union of the shards" "every object once" "$(diff "$T/union" "$T/all" | head)"

say "the same 4 shards into one shared destination, then reruns: a shard alone, and the job with another N, skip all"
for i in 0 1 2 3; do
    run "$SLUICE" cp "$T/src" "$T/shared" -q --shard "$i/4"
    expect_rc 0
done
diff -r "$T/src" "$T/shared" >/dev/null || fail "4 shards into one destination" "the source's tree" "a difference"
run "$SLUICE" cp "$T/src" "$T/shared" -q --shard 2/4 --report "$T/again.json"
expect_rc 0
expect_eq "shard 2 rerun: done (skipped ones included)" "$(wc -l <"$T/want2")" "$(json_field "$T/again.json" 'd["objects"]["done"]')"
expect_eq "shard 2 rerun: bytes written" 0 "$(json_field "$T/again.json" 'd["bytes"]["written"]')"
expect_eq "shard 2 rerun: skipped" "$(wc -l <"$T/want2")" "$(json_field "$T/again.json" 'd["objects"]["skipped"]')"
for i in 0 1 2; do
    run "$SLUICE" cp "$T/src" "$T/shared" -q --shard "$i/3" --report "$T/three$i.json"
    expect_rc 0
    expect_eq "3 shards over what 4 did: skipped by shard $i/3 (all it took)" \
        "$(json_field "$T/three$i.json" 'd["objects"]["listed"]')" "$(json_field "$T/three$i.json" 'd["objects"]["skipped"]')"
    expect_eq "3 shards over what 4 did: bytes written by shard $i/3" 0 "$(json_field "$T/three$i.json" 'd["bytes"]["written"]')"
done
run "$SLUICE" cp "$T/src" "$T/shared" -q --report "$T/all.json"
expect_rc 0
expect_eq "no shard over what the shards did: skipped" "$N" "$(json_field "$T/all.json" 'd["objects"]["skipped"]')"

say "map and rm take --shard too: a map of shard 1/2 hashes exactly its objects; rm -r of shard 0/2 deletes exactly its own"
run "$SLUICE" map "$T/src" - --op md5 -q --shard 1/2
expect_rc 0
python3 -c 'import json, sys
print("\n".join(sorted(json.loads(l)["key"] for l in open(sys.argv[1]))))' "$OUT" >"$T/mapped"
python3 "$T/shards.py" "$T/src" 2 1 >"$T/want_map"
cmp -s "$T/mapped" "$T/want_map" || fail "map --shard 1/2" "the keys of shard 1 of 2" "$(diff "$T/mapped" "$T/want_map" | head -5)"
cp -r "$T/src" "$T/victim"
run "$SLUICE" rm -r "$T/victim" -q --shard 0/2
expect_rc 0
python3 "$T/shards.py" "$T/src" 2 1 >"$T/left"
expect_eq "what rm --shard 0/2 left" "$(cat "$T/left")" "$(keys_of "$T/victim")"

say "--shard auto: a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, N from --shards or SLUICE_SHARDS)"
run env JOB_COMPLETION_INDEX=3 "$SLUICE" cp "$T/src" "$T/k8s" -q --shard auto --shards 4
expect_rc 0
expect_eq "JOB_COMPLETION_INDEX=3 --shards 4" "$(cat "$T/want3")" "$(keys_of "$T/k8s")"
rm -rf "$T/k8s"
run env JOB_COMPLETION_INDEX=1 SLUICE_SHARDS=4 "$SLUICE" cp "$T/src" "$T/k8s" -q --shard auto
expect_rc 0
expect_eq "JOB_COMPLETION_INDEX=1 SLUICE_SHARDS=4" "$(cat "$T/want1")" "$(keys_of "$T/k8s")"

say "--shard auto: a Slurm job array (SLURM_ARRAY_TASK_ID, _COUNT, and _MIN/_STEP for --array=5-8 or 10-16:2)"
run env SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=4 "$SLUICE" cp "$T/src" "$T/slurm0" -q --shard auto
expect_rc 0
expect_eq "SLURM_ARRAY_TASK_ID=2 of 4" "$(cat "$T/want2")" "$(keys_of "$T/slurm0")"
run env SLURM_ARRAY_TASK_ID=6 SLURM_ARRAY_TASK_COUNT=4 SLURM_ARRAY_TASK_MIN=5 SLURM_ARRAY_TASK_MAX=8 \
    "$SLUICE" cp "$T/src" "$T/slurm1" -q --shard auto
expect_rc 0
expect_eq "SLURM_ARRAY_TASK_ID=6 of 5-8" "$(cat "$T/want1")" "$(keys_of "$T/slurm1")"
run env SLURM_ARRAY_TASK_ID=16 SLURM_ARRAY_TASK_COUNT=4 SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_STEP=2 \
    "$SLUICE" cp "$T/src" "$T/slurm3" -q --shard auto
expect_rc 0
expect_eq "SLURM_ARRAY_TASK_ID=16 of 10-16:2" "$(cat "$T/want3")" "$(keys_of "$T/slurm3")"

say "usage errors: exit 2, one line naming what is wrong, nothing done"
bad() { # bad WHAT EXPECTED_TEXT ENV... -- ARGS...
    local what=$1 text=$2 envs=()
    shift 2
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    rm -rf "$T/bad"
    run env "${envs[@]}" "$SLUICE" cp "$T/src" "$T/bad" "$@"
    expect_rc 2
    expect_err_one_line "$text"
    [ ! -e "$T/bad" ] || fail "$what" "nothing written" "$(ls "$T/bad" | head -3)"
}
bad "index past N" "--shard takes I/N with N from 1 to 1000000 and I from 0 to N-1, not '4/4'" X=1 -- --shard 4/4
bad "not I/N" "--shard takes I/N" X=1 -- --shard 2
bad "N of 0" "--shard takes I/N with N from 1" X=1 -- --shard 0/0
bad "--shards without auto" "--shards goes with --shard auto" X=1 -- --shards 4
bad "auto, no scheduler" "neither JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID" X=1 -- --shard auto
bad "auto, K8s without N" "give --shards N or set SLUICE_SHARDS" JOB_COMPLETION_INDEX=0 -- --shard auto
bad "auto, K8s index past N" "JOB_COMPLETION_INDEX is 4, not below the 4 shards --shards says" JOB_COMPLETION_INDEX=4 -- --shard auto --shards 4
bad "auto, K8s index not a number" "JOB_COMPLETION_INDEX is 'x'" JOB_COMPLETION_INDEX=x -- --shard auto --shards 4
bad "auto, both schedulers" "both JOB_COMPLETION_INDEX (Kubernetes) and SLURM_ARRAY_TASK_ID (Slurm)" JOB_COMPLETION_INDEX=0 SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=2 -- --shard auto --shards 2
bad "auto, Slurm without a count" "SLURM_ARRAY_TASK_COUNT is not" SLURM_ARRAY_TASK_ID=1 -- --shard auto
bad "auto, Slurm id past the count" "SLURM_ARRAY_TASK_ID=7 is not below SLURM_ARRAY_TASK_COUNT=4" SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_COUNT=4 -- --shard auto
bad "auto, Slurm id off the step" "SLURM_ARRAY_TASK_ID=11 is not one of the SLURM_ARRAY_TASK_COUNT=4 tasks" SLURM_ARRAY_TASK_ID=11 SLURM_ARRAY_TASK_COUNT=4 SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_STEP=2 -- --shard auto
bad "auto, --shards against Slurm's count" "--shards 3 disagrees with SLURM_ARRAY_TASK_COUNT=4" SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=4 -- --shard auto --shards 3

finish
