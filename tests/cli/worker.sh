#!/usr/bin/env bash
# map --worker: long-lived worker processes speaking docs/worker-protocol.md, with the real Python module
# (python/sluice_worker.py) and its examples, and with hand-made workers that break the protocol on purpose
# (tests/cli/fake_worker.py): results equal to --op md5 and to --exec, streaming of 0-byte and 100 MiB objects in a
# flat sluice, keys with newlines and bytes that are not UTF-8, garbage, truncated frames, prints to stdout, workers
# exiting between objects or in the middle, never reading, start failures (exit 3), recycling by count and by RSS,
# signals and --grace with busy workers, kill -9 leaving no worker behind, and resume.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
FAKE="$REPO/tests/cli/fake_worker.py"
EDGE="$REPO/tests/python/edge_worker.py"
LEAKY="$REPO/tests/cli/leaky_worker.py"
MD5W="$REPO/bench/md5_worker.py"

S="$T/src"
python3 - "$S" <<'PY'
import os, sys
root = os.fsencode(sys.argv[1])
keys = [b"alpha.txt", b"empty", b"sub/beta.csv", b"sub/deep/gamma", b"line\nbreak", b"not-utf8-\xff\xfe.bin",
        b"quote\"back\\slash", b"big.bin"]
for i, k in enumerate(keys):
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if k == b"empty":
        data = b""
    elif k == b"big.bin":  # more than a pipe buffer and than one transfer buffer
        data = bytes(range(256)) * 4096 + b"tail"
    else:
        data = b"object %d: %s\n" % (i, k) * (i + 1)
    with open(p, "wb") as f:
        f.write(data)
PY
sorted_out() { LC_ALL=C sort "$OUT"; }

say "md5_worker.py gives exactly the lines of --op md5 (0-byte object, keys with a newline, a quote, bytes not UTF-8)"
run "$SLUICE" map "$S" - --op md5 -q
expect_rc 0
LC_ALL=C sort "$OUT" >"$T/md5.want"
for py in python3 /usr/bin/python3; do
    run "$SLUICE" map "$S" - --worker "$py $MD5W" -q -j 3
    expect_rc 0
    expect_err_empty
    sorted_out >"$T/md5.got"
    cmp -s "$T/md5.want" "$T/md5.got" || fail "--worker '$py md5_worker.py' lines" "$(cat "$T/md5.want")" "$(cat "$T/md5.got")"
    run "$SLUICE" map "$S" - --worker "$py $MD5W --stream" -q -j 2
    sorted_out >"$T/md5.got"
    cmp -s "$T/md5.want" "$T/md5.got" || fail "--worker '$py md5_worker.py --stream' lines" "$(cat "$T/md5.want")" "$(cat "$T/md5.got")"
done

say "with a destination, the output objects of md5_worker.py are those of --op md5 (the result line and LF)"
run "$SLUICE" map "$S" "$T/md5-op" --op md5 --suffix .md5 -q
expect_rc 0
run "$SLUICE" map "$S" "$T/md5-worker" --worker "python3 $MD5W" --suffix .md5 -q
expect_rc 0
diff -r "$T/md5-op" "$T/md5-worker" >/dev/null || fail "outputs of --worker vs --op md5" "identical trees" "$(diff -r "$T/md5-op" "$T/md5-worker" | head -5)"
no_tmp_files "$T/md5-worker"

say "examples/worker/aggregate.py writes what examples/exec/aggregate.py writes through --exec"
E="$T/events"
python3 - "$E" <<'PY'
import json, os, random, sys
random.seed(7)
os.makedirs(os.path.join(sys.argv[1], "day=01"))
for n in range(12):
    with open(os.path.join(sys.argv[1], "day=01", "events-%03d.jsonl" % n), "w") as f:
        for i in range(n * 37):
            f.write(json.dumps({"user": "u%d" % random.randint(0, 20), "amount": round(random.random() * 500, 2)}) + "\n")
        if n % 3 == 0:
            f.write("not json\n")
PY
run "$SLUICE" map "$E" "$T/agg-exec" --exec "python3 -S $REPO/examples/exec/aggregate.py" --suffix .json -q
expect_rc 0
run "$SLUICE" map "$E" "$T/agg-worker" --worker "python3 $REPO/examples/worker/aggregate.py" --suffix .json -q -j 3
expect_rc 0
diff -r "$T/agg-exec" "$T/agg-worker" >/dev/null || fail "aggregate outputs, --worker vs --exec" "identical" "$(diff -r "$T/agg-exec" "$T/agg-worker" | head -5)"
[ -s "$T/agg-worker/day=01/events-005.jsonl.json" ] || fail "aggregate output" "a non-empty result line" "empty"

say "an output body streams to the destination both ways (simple and streaming forms): bytes upper-cased"
for form in "" "--stream"; do
    run "$SLUICE" map "$S" "$T/up$form" --worker "python3 $EDGE $form" -q
    expect_rc 0
    while IFS= read -r -d '' f; do
        k="${f#"$S"/}"
        tr a-z A-Z <"$f" >"$T/want"
        cmp -s "$T/want" "$T/up$form/$k" || fail "output of edge_worker.py $form for $k" "the upper-cased input" "differs"
    done < <(find "$S" -type f -print0)
done

say "the request: key, url, output_key exact (_b64 for bytes not UTF-8), size, SLUICE_WORKER_ID, SLUICE_JOBS, setup once"
I="$T/info"
mkdir -p "$I/info"
printf 'abc' >"$I/info/x"
printf '' >"$I/info/$(printf 'n\nl')"
printf 'z' >"$I/info/$(printf 'u\xff')"
run "$SLUICE" map "$I" - --worker "python3 $EDGE" -q -j 1
expect_rc 0
python3 - "$OUT" "$I" <<'PY' || fail "the request's fields as the worker saw them" "see above" "$(cat "$OUT")"
import json, sys
rows = {r["key"]: r for r in map(json.loads, open(sys.argv[1], encoding="utf-8"))}
root = sys.argv[2]
want = {"info/x": b"info/x", "info/n\nl": b"info/n\nl", "info/u\u00ff": b"info/u\xff"}
assert set(rows) == set(want), rows.keys()
for k, raw in want.items():
    r = rows[k]
    assert bytes.fromhex(r["key_hex"]) == raw, (k, r)
    assert bytes.fromhex(r["url_hex"]) == b"file://" + root.encode() + b"/" + raw, (k, r)
    assert r["output_key_hex"] is None, r
    assert r["worker_id"] == "0", r
    assert r["setup_calls"] == 1 and r["setup_count"] == 1, r
    assert "updated" in r["metadata"], r
assert rows["info/x"]["object_size"] == 3
assert len({r["pid"] for r in rows.values()}) == 1, "one process for the thread"
PY

say "an exception fails its object alone (type, message, traceback in the failure record); prints reach stderr only"
P="$T/py"
mkdir -p "$P/raise" "$P/print" "$P/plain"
printf 'boom' >"$P/raise/x"
printf 'hello' >"$P/print/y"
printf 'fine' >"$P/plain/z"
run "$SLUICE" map "$P" "$T/py-out" --worker "python3 $EDGE" --failures "$T/py.fail" -j 1
expect_rc 1
expect_eq "outputs" "HELLO FINE" "$(cat "$T/py-out/print/y") $(cat "$T/py-out/plain/z")"
[ ! -e "$T/py-out/raise/x" ] || fail "output of a failed object" "none" "$T/py-out/raise/x exists"
expect_eq "failure record" "raise/x SL_ECHILD" "$(json_field "$T/py.fail" 'd["key"] + " " + d["code"]')"
grep -qF 'worker: ValueError: bad object raise/x' "$T/py.fail" || fail "failure reason" "worker: ValueError: bad object raise/x" "$(cat "$T/py.fail")"
grep -qF 'Traceback' "$T/py.fail" || fail "failure reason" "the traceback" "$(cat "$T/py.fail")"

F="$T/fake"
mkdir -p "$F"
for k in ok1 ok2 bad1 ok3 ok4; do printf 'data of %s\n' "$k" >"$F/$k"; done
fake_ok_lines() { # the lines of the ok objects, pids left out
    grep -v '"bad' "$OUT" | sed 's/,"pid":[0-9]*//' | LC_ALL=C sort
}
OK_WANT='{"key":"ok1","size":12,"n":12}
{"key":"ok2","size":12,"n":12}
{"key":"ok3","size":12,"n":12}
{"key":"ok4","size":12,"n":12}'

for case in "garbage|worker protocol violation: not a JSON object" \
    "truncated|worker exited with status 1 in the middle of its answer (the answer ended in the middle of a chunk (90 bytes short)): fake_worker: dying in the middle of a chunk" \
    "stdout|worker protocol violation: not a JSON object ('[' or '{' expected near 'hello'): 'hello from user code'" \
    "exit-mid|worker exited with status 1 without a byte of answer: fake_worker: leaving in the middle of bad1"; do
    mode="${case%%|*}" reason="${case#*|}"
    say "a worker answering bad1 with '$mode': bad1 fails alone (reason + stderr), the worker is replaced, the rest is done"
    for j in 1 2; do
        run "$SLUICE" map "$F" - --worker "python3 $FAKE $mode" -j $j --failures "$T/fake.fail"
        expect_rc 1
        expect_eq "lines of the other objects (-j $j)" "$OK_WANT" "$(fake_ok_lines)"
        expect_eq "failed objects" "bad1" "$(json_field "$T/fake.fail" 'd["key"]')"
        grep -qF -- "$reason" "$T/fake.fail" || fail "failure reason ($mode)" "$reason" "$(cat "$T/fake.fail")"
    done
done

say "a worker exiting with status 0 between objects (after 2 answers): nothing fails, one process per 2 objects"
run "$SLUICE" map "$F" - --worker "python3 $FAKE exit-after 2" -j 1
expect_rc 0
expect_eq "processes" 3 "$(sed 's/.*"pid":\([0-9]*\).*/\1/' "$OUT" | sort -u | wc -l)"
expect_eq "objects done" 5 "$(wc -l <"$OUT")"

say "--worker-max-objects 2: each process answers 2 objects, then gets EOF and a fresh one takes over"
run "$SLUICE" map "$F" - --worker "python3 $FAKE slow 0" -j 1 --worker-max-objects 2 -q
expect_rc 0
expect_eq "processes" 3 "$(sed 's/.*"pid":\([0-9]*\).*/\1/' "$OUT" | sort -u | wc -l)"
run "$SLUICE" map "$F" - --worker "python3 $FAKE slow 0" -j 1 -q
expect_eq "processes without recycling" 1 "$(sed 's/.*"pid":\([0-9]*\).*/\1/' "$OUT" | sort -u | wc -l)"

say "a worker that never reads, with --timeout 1s and a 100 MiB object: that object fails, killed, no hang"
B="$T/big"
mkdir -p "$B"
python3 -c 'import sys
with open(sys.argv[1], "wb") as f:
    for i in range(100 * 1024):
        f.write(b"%1023d\n" % i)' "$B/big.bin"
t0=$(date +%s)
run "$SLUICE" map "$B" - --worker "python3 $FAKE never-reads" --timeout 1s --failures "$T/nr.fail"
expect_rc 1
[ $(($(date +%s) - t0)) -le 8 ] || fail "time of a job whose worker never reads" "at most 8 s" "$(($(date +%s) - t0)) s"
grep -qF 'worker timed out after 1s (killed)' "$T/nr.fail" || fail "failure reason" "worker timed out after 1s (killed)" "$(cat "$T/nr.fail")"

say "a 100 MiB object streams through a worker and back (--stream, upper-cased) with sluice's RSS flat"
run "$SLUICE" map "$B" "$T/big-out" --worker "python3 $EDGE --stream" --report "$T/big.json" -q
expect_rc 0
cmp -s "$B/big.bin" "$T/big-out/big.bin" || fail "100 MiB through the worker" "identical (digits only: upper-casing changes nothing)" "differs"
if sanitized; then
    skip_note "peak RSS not checked: sanitized binary"
else
    peak=$(json_field "$T/big.json" 'd["peak_rss_bytes"]')
    [ "$peak" -le $((24 * 1024 * 1024)) ] || fail "sluice's peak RSS for a 100 MiB object" "at most 24 MiB" "$peak bytes"
fi
run "$SLUICE" map "$S" - --worker "python3 $EDGE" -q --include empty
expect_out '{"key":"empty","size":0,"output":""}'

say "workers that cannot start: exit 3 with one line after 5 tries, not one failure per object"
M="$T/many"
mkdir -p "$M"
for i in $(seq 1 200); do printf '%d' "$i" >"$M/o$i"; done
for case in "crash|failed to start 5 times in a row: worker exited with status 1 before its hello: boom: cannot import foo" \
    "not-worker|failed to start 5 times in a row: its first line is not a worker's hello" \
    "version2|speaks protocol version 2; this sluice speaks 1"; do
    mode="${case%%|*}" reason="${case#*|}"
    t0=$(date +%s)
    run "$SLUICE" map "$M" - --worker "python3 $FAKE $mode" -j 4 -q --report "$T/start.json"
    expect_rc 3
    expect_err_one_line "the worker 'python3 $FAKE $mode' $reason"
    failed=$(json_field "$T/start.json" 'd["objects"]["failed"]')
    [ "$failed" -le 8 ] || fail "objects failed before the job stopped ($mode)" "at most 8" "$failed"
    [ $(($(date +%s) - t0)) -le 15 ] || fail "time to give up ($mode)" "at most 15 s" "$(($(date +%s) - t0)) s"
done
run "$SLUICE" map "$M" - --worker "$T/no-such-worker" -q
expect_rc 3
expect_err_one_line "command not found: '$T/no-such-worker'"

say "--worker-max-rss: a leaking worker finishes 20,000 objects, every worker under the cap, the job's memory flat"
L="$T/leak"
python3 - "$L" <<'PY'
import os, sys
for i in range(20000):
    d = os.path.join(sys.argv[1], "d%02d" % (i % 40))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(b"%d\n" % i * 20)
PY
LEAK_KIB=16 run "$SLUICE" map "$L" - --worker "python3 $LEAKY" -j 2 --worker-max-rss 32M --mem-interval 50 \
    --report "$T/leak.json" -q
expect_rc 0
python3 - "$OUT" <<'PY' || fail "--worker-max-rss 32M" "20,000 results, each worker's RSS at most 32 MiB + one leak step, recycled" "see above"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
top = max(r["rss"] for r in rows)
pids = len({r["pid"] for r in rows})
print("results %d, largest worker RSS %.2f MiB, %d processes" % (len(rows), top / 2**20, pids))
assert len(rows) == 20000
assert top <= 32 * 2**20 + 16 * 1024 + 256 * 1024, top
assert pids >= 6, pids
PY
expect_eq "the job's memory verdict (sluice and its workers)" flat "$(json_field "$T/leak.json" 'd["memory"]["verdict"]')"
wpeak=$(json_field "$T/leak.json" 'd["memory"]["workers_peak_bytes"]')
# A worker between fork and exec shares sluice's pages and counts half of them: a sanitized sluice's are many.
wmax=$((2 * 33 * 1024 * 1024))
! sanitized || wmax=$((2 * 80 * 1024 * 1024))
[ "$wpeak" -gt $((8 * 1024 * 1024)) ] && [ "$wpeak" -le "$wmax" ] ||
    fail "report memory.workers_peak_bytes (2 workers under 32 MiB each)" "8 MiB to $((wmax >> 20)) MiB" "$wpeak"
if ! sanitized; then
    speak=$(json_field "$T/leak.json" 'd["peak_rss_bytes"]')
    [ "$speak" -le $((16 * 1024 * 1024)) ] || fail "sluice's own peak RSS" "at most 16 MiB" "$speak"
fi
run "$SLUICE" map "$F" - --worker "python3 $FAKE slow 0" -j 1 --mem-interval 20
expect_rc 0
expect_err_contains "worker processes' peak PSS"
expect_err_contains "); memory (sluice and its workers): "

say "SIGTERM with busy workers: no new object, the busy ones finish within --grace, exit 143, no worker left"
"$SLUICE" map "$F" - --worker "python3 $FAKE slow 2" -j 2 >"$OUT" 2>"$ERR" &
pid=$!
sleep 1
kill -TERM $pid
RC=0
wait $pid || RC=$?
expect_rc 143
expect_eq "objects answered by busy workers" 2 "$(wc -l <"$OUT")"
sleep 0.3
! pgrep -f "bin/python3 $FAKE slow" >/dev/null || fail "workers after the job" "none" "$(pgrep -af "bin/python3 $FAKE slow")"

say "SIGTERM with --grace 1s and workers busy for 30 s: abandoned, stopped with their group, exit 143 quickly"
t0=$(date +%s)
"$SLUICE" map "$F" - --worker "python3 $FAKE slow 30" -j 2 --grace 1s >"$OUT" 2>"$ERR" &
pid=$!
sleep 1
kill -TERM $pid
RC=0
wait $pid || RC=$?
expect_rc 143
[ $(($(date +%s) - t0)) -le 8 ] || fail "time to stop" "at most 8 s" "$(($(date +%s) - t0)) s"
expect_err_contains "2 abandoned when the 1.0 s grace ran out"
! pgrep -f "bin/python3 $FAKE slow" >/dev/null || fail "workers after the job" "none" "$(pgrep -af "bin/python3 $FAKE slow")"

say "a worker that ignores EOF and SIGTERM at the end: killed after --grace, a warning, the job still succeeds"
run "$SLUICE" map "$F" - --worker "python3 $FAKE ignore-eof" -j 1 --grace 1s -q
expect_rc 0
expect_err_contains "did not exit within --grace after EOF: killed"
! pgrep -f "bin/python3 $FAKE ignore-eof" >/dev/null || fail "workers after the job" "none" "$(pgrep -af "bin/python3 $FAKE ignore-eof")"

say "kill -9 of sluice: its workers (which ignore EOF and SIGTERM) die with it (PR_SET_PDEATHSIG)"
"$SLUICE" map "$F" - --worker "python3 $FAKE ignore-eof" -j 2 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do
    [ "$(pgrep -fc "bin/python3 $FAKE ignore-eof" || true)" -ge 2 ] && break
    sleep 0.1
done
expect_eq "workers running" 2 "$(pgrep -fc "bin/python3 $FAKE ignore-eof" || true)"
kill -9 $pid
wait $pid || true
for _ in $(seq 20); do
    pgrep -f "bin/python3 $FAKE ignore-eof" >/dev/null || break
    sleep 0.1
done
! pgrep -f "bin/python3 $FAKE ignore-eof" >/dev/null || fail "orphan workers after kill -9" "none" "$(pgrep -af "bin/python3 $FAKE ignore-eof")"

say "the memory guard lowers the workers 4 -> 2 (a fake cgroup past 80 %): the 2 surplus worker processes exit"
# The listing must still be running when the guard holds workers back (a thread that finds the listing done exits and
# ends its worker anyway): 300 objects of 30 ms each behind a bounded queue keep it running for seconds.
CGF="$T/cg/kubepods/pod1/ctr"
mkdir -p "$CGF" "$T/gated"
for i in $(seq 1 300); do printf 'ok%d' "$i" >"$T/gated/ok$i"; done
echo "0::/kubepods/pod1/ctr" >"$T/proc-cgroup"
echo max >"$T/cg/kubepods/memory.max"
echo $((64 * 1024 * 1024)) >"$CGF/memory.max"
echo $((10 * 1024 * 1024)) >"$CGF/memory.current"
GATE="$T/gate" SLUICE_CGROUP_ROOT="$T/cg" SLUICE_PROC_CGROUP="$T/proc-cgroup" \
    "$SLUICE" map "$T/gated" - -j 4 --mem-interval 20 --worker "python3 $FAKE gate" >"$OUT" 2>"$ERR" &
pid=$!
count_gated() { pgrep -fc "bin/python3 $FAKE gate" || true; }
for _ in $(seq 100); do [ "$(count_gated)" -ge 4 ] && break; sleep 0.05; done
expect_eq "worker processes before the guard" 4 "$(count_gated)"
echo $((60 * 1024 * 1024)) >"$CGF/memory.current.tmp"
mv "$CGF/memory.current.tmp" "$CGF/memory.current"
for _ in $(seq 100); do grep -q 'lowering workers from 4 to 2' "$ERR" && break; sleep 0.05; done
touch "$T/gate"
sleep 1
during=$(count_gated)
RC=0
wait $pid || RC=$?
expect_rc 0
expect_err_contains "lowering workers from 4 to 2"
expect_eq "worker processes 1 s later, the job going on with 2 workers" 2 "$during"
expect_eq "objects done" 300 "$(wc -l <"$OUT")"

say "resume: a rerun of the same worker command skips complete outputs (job=worker:...); other words redo them"
run "$SLUICE" map "$S" "$T/md5-worker" --worker "python3 $MD5W" --suffix .md5 --report "$T/rerun.json" -q
expect_rc 0
expect_eq "skipped on a rerun" 8 "$(json_field "$T/rerun.json" 'd["objects"]["skipped"]')"
run "$SLUICE" map "$S" "$T/md5-worker" --worker "python3 $MD5W --stream" --suffix .md5 --report "$T/rerun.json" -q
expect_eq "skipped with another command" 0 "$(json_field "$T/rerun.json" 'd["objects"]["skipped"]')"

say "usage: recycling options without --worker, --shell with --worker"
run "$SLUICE" map "$S" - --op md5 --worker-max-objects 3
expect_rc 2
expect_err_one_line "--worker-max-objects and --worker-max-rss go with --worker"
run "$SLUICE" map "$S" - --worker "python3 $MD5W" --worker-max-rss 0
expect_rc 2
expect_err_one_line "--worker-max-rss takes a size above 0"
run "$SLUICE" map "$S" - --shell --worker "exec python3 $MD5W" -q --include alpha.txt
expect_rc 0
expect_out "$(grep alpha.txt "$T/md5.want")"

finish
