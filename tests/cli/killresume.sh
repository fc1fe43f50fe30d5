#!/usr/bin/env bash
# Proof by killing: `sluice map` over 5,000 objects is killed with SIGKILL at random moments, to a local
# destination and to gs:// (the test server), and each time rerun to completion. After every kill, whatever
# outputs exist are complete and byte-identical to an uninterrupted reference run (nothing partial is visible);
# after every rerun, every expected output exists exactly once, byte-identical to the reference, with no temp file
# left (local) and no extra object (gs://), and the rerun skipped the work the killed run had finished.
#
# The kill moments are drawn from the reference run's duration with a seed printed first; rerun a failure with
#   SL_KILL_SEED=<seed> ctest -R cli.killresume
# SL_KILLS (default 20) sets the number of kills per destination.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

N=5000
KILLS="${SL_KILLS:-20}"
SEED="${SL_KILL_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
JOBS=8
say "seed $SEED (rerun with SL_KILL_SEED=$SEED), $KILLS kills per destination, $N objects"

# Small objects in 50 directories, and a few keys that are prefixes of others ("f00100" and "f00100.b"): with
# --suffix .out their outputs sort the other way round ("f00100.b.out" < "f00100.out"), so the rerun also has to
# find outputs the merge-join cannot (sluice looks those up one by one).
python3 - "$T/src" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(11)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 50))
    os.makedirs(d, exist_ok=True)
    name = "f%05d" % i
    if i % 100 == 99:
        name = "f%05d.b" % (i - 1)
    with open(os.path.join(d, name), "wb") as f:
        f.write(rng.randbytes(rng.randrange(0, 300)))
PY
MAP=(map --op sha256 --suffix .out -j "$JOBS" -q)

# check MODE REF GOT: REF and GOT are "key size digest" lines. MODE "subset": every output in GOT (temp files aside)
# is in REF with the same bytes, once; "equal": also the other way round, temp files included.
cat >"$T/check.py" <<'PY'
import sys
mode, ref, got = sys.argv[1:4]
def load(path):
    out = {}
    for line in open(path, "rb"):
        key, rest = line.rstrip(b"\n").split(b" ", 1)
        if key in out:
            print("%r is there twice" % key); sys.exit(1)
        out[key] = rest
    return out
r, g = load(ref), load(got)
if mode == "subset":  # temp files are left by the kill; the rerun must remove them
    g = {k: v for k, v in g.items() if not k.rsplit(b"/", 1)[-1].startswith(b".sluice-tmp-")}
bad = [k for k in g if r.get(k) != g[k]]
missing = [k for k in r if k not in g] if mode == "equal" else []
if bad or missing:
    print("%d outputs differ from the reference or should not exist (%s); %d missing (%s)"
          % (len(bad), bad[:5], len(missing), missing[:5]))
    sys.exit(1)
print(len(g))
PY
# local_digests DIR: "key size sha256" of every file under DIR, temp files included (by their names).
local_digests() {
    python3 - "$1" <<'PY'
import hashlib, os, sys
root = sys.argv[1]
for d, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(d, f)
        data = open(p, "rb").read()
        print(os.path.relpath(p, root), len(data), hashlib.sha256(data).hexdigest())
PY
}
# gs_digests PREFIX: "key size md5" of every object under gs://sl-kill/PREFIX/, from the server's own listing.
gs_digests() {
    gcs_objects sl-kill "$1/" | python3 -c '
import json, sys
pfx = sys.argv[1] + "/"
for line in sys.stdin:
    d = json.loads(line)
    print(d["name"][len(pfx):], d["size"], d["md5Hash"])' "$1"
}

gcs_start --bucket sl-kill

say "reference runs (uninterrupted): local and gs://"
t0=$(date +%s%N)
run "$SLUICE" "${MAP[@]}" "$T/src" "$T/ref"
expect_rc 0
t1=$(date +%s%N)
run "$SLUICE" "${MAP[@]}" "$T/src" gs://sl-kill/ref
expect_rc 0
t2=$(date +%s%N)
REF_LOCAL_MS=$(((t1 - t0) / 1000000))
REF_GS_MS=$(((t2 - t1) / 1000000))
local_digests "$T/ref" >"$T/ref.local"
gs_digests ref >"$T/ref.gs"
expect_eq "reference outputs (local)" "$N" "$(python3 "$T/check.py" equal "$T/ref.local" "$T/ref.local")"
expect_eq "reference outputs (gs://)" "$N" "$(python3 "$T/check.py" equal "$T/ref.gs" "$T/ref.gs")"
cmp -s <(cut -d' ' -f1 "$T/ref.local" | sort) <(cut -d' ' -f1 "$T/ref.gs" | sort) ||
    fail "reference runs" "the same output keys locally and in gs://" "different keys"
say "reference run: local ${REF_LOCAL_MS} ms, gs:// ${REF_GS_MS} ms"

# The kill moments: uniform over 3 %..90 % of the reference run's duration.
python3 - "$SEED" "$KILLS" "$REF_LOCAL_MS" "$REF_GS_MS" >"$T/delays" <<'PY'
import random, sys
seed, kills, local_ms, gs_ms = (int(a) for a in sys.argv[1:5])
rng = random.Random(seed)
for i in range(kills):
    print("%.3f %.3f" % (rng.uniform(0.03, 0.9) * local_ms / 1000, rng.uniform(0.03, 0.9) * gs_ms / 1000))
PY

# kill_at SECONDS DST: starts the map, kills it with SIGKILL after SECONDS; KILLED=1 if it was still running.
kill_at() {
    "$SLUICE" "${MAP[@]}" "$T/src" "$2" >"$T/killed.$3.out" 2>"$T/killed.$3.err" &
    local pid=$!
    sleep "$1"
    KILLED=0
    kill -KILL "$pid" 2>/dev/null && KILLED=1
    local rc=0
    wait "$pid" || rc=$?
    if [ "$KILLED" = 1 ] && [ "$rc" != 137 ]; then
        KILLED=0 # it had finished on its own just before the signal
    fi
    if [ "$KILLED" = 0 ] && [ "$rc" != 0 ]; then
        fail "the run to be killed ($2)" "exit 0 or 137 (killed)" "exit $rc: $(head -c 400 "$T/killed.$3.err")"
    fi
}

gcs_quiet() { # until the GCS server handles no API request (at most 10 s)
    local i
    for i in $(seq 100); do
        [ "$(gcs_stat 'd["api_in_flight"]')" = 0 ] && return 0
        sleep 0.1
    done
    fail "the server finishes the killed run's requests" "none in flight within 10 s" "$(gcs_stat 'd["api_in_flight"]')"
}

# round WHERE I SECONDS: one kill and one rerun to completion, checked; appends "killed skipped" to $T/WHERE.tally.
round() {
    local where=$1 i=$2 delay=$3 dst digests n s m
    if [ "$where" = local ]; then
        dst="$T/k$i"
        digests() { local_digests "$dst"; }
    else
        dst="gs://sl-kill/k$i"
        digests() { gs_digests "k$i"; }
    fi
    kill_at "$delay" "$dst" "$where"
    # A request the killed process had sent whole may still be completing on the server: what it holds is judged once
    # it has finished every request.
    [ "$where" = local ] || gcs_quiet
    digests >"$T/got.$where"
    n=$(python3 "$T/check.py" subset "$T/ref.$where" "$T/got.$where") ||
        fail "$where kill $i at ${delay}s: outputs present after the kill" "complete, identical to the reference" "$n"
    run "$SLUICE" "${MAP[@]}" "$T/src" "$dst" --report "$T/r.$where.json"
    expect_rc 0
    expect_eq "rerun $i ($where): objects done" "$N" "$(json_field "$T/r.$where.json" 'd["objects"]["done"]')"
    expect_eq "rerun $i ($where): objects failed" 0 "$(json_field "$T/r.$where.json" 'd["objects"]["failed"]')"
    s=$(json_field "$T/r.$where.json" 'd["objects"]["skipped"]')
    [ "$s" -le "$n" ] || fail "$where rerun $i: skipped" "at most the $n outputs present after the kill" "$s"
    digests >"$T/got.$where"
    m=$(python3 "$T/check.py" equal "$T/ref.$where" "$T/got.$where") ||
        fail "$where rerun $i: outputs (temp files included)" "exactly the reference's, once each" "$m"
    say "$where kill $i at ${delay}s: killed=$KILLED, $n outputs were there, the rerun skipped $s"
    echo "$KILLED $((s > 0 ? 1 : 0))" >>"$T/$where.tally"
    [ "$where" = gs ] || rm -rf "$dst"
}

# The local and the gs:// rounds run side by side (the one waits on fsync, the other on the test server), each with
# its own output files.
(
    OUT="$T/.stdout.local" ERR="$T/.stderr.local"
    i=0
    while read -r d _; do
        i=$((i + 1))
        round local "$i" "$d"
    done <"$T/delays"
) >"$T/local.log" 2>&1 &
LOCAL_PID=$!
i=0
while read -r _ d; do
    i=$((i + 1))
    round gs "$i" "$d"
done <"$T/delays"
local_rc=0
wait "$LOCAL_PID" || local_rc=$?
cat "$T/local.log"
[ "$local_rc" = 0 ] || fail "the local rounds" "all passed" "exit $local_rc (see above)"

half=$(((KILLS + 1) / 2))
for where in local gs; do
    killed=$(awk '{ k += $1 } END { print k + 0 }' "$T/$where.tally")
    skipped=$(awk '{ s += $2 } END { print s + 0 }' "$T/$where.tally")
    say "$where: $killed of $KILLS runs killed mid-run, $skipped reruns skipped finished work"
    [ "$killed" -ge "$half" ] || fail "$where runs killed mid-run" "at least $half of $KILLS" "$killed"
    [ "$skipped" -ge "$half" ] || fail "$where reruns that skipped work" "at least $half of $KILLS" "$skipped"
done

gcs_finish
