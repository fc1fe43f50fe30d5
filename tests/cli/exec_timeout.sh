#!/usr/bin/env bash
# map --exec --timeout: a command still running when its time is up is stopped (SIGTERM to its process group, SIGKILL
# 2 s later if it ignores that) and its object fails alone, with "command timed out after ..." on stderr, in
# --failures and in --report, nothing committed and no temp file or process left; the other objects are done and the
# exit status is that of any per-object failure. A command that exits within the limit without reading its stdin is
# unaffected, a command that closes its output and hangs is caught as well, a signal still stops a job with a
# timeout, and --timeout outside map --exec is a usage error.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
mkdir -p "$S/sub"
for k in a.txt hang-1.txt b.txt sub/c.txt sub/hang-2.txt sub/d.txt; do
    printf 'object %s\nsecond line\n' "$k" >"$S/$k"
done
keys_all() { (cd "$S" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }
keys_out() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

# Sleep durations unique to this run (another run of this test may be going on at the same time), so that what is
# left of a command can be found by its command line.
M1="1000.$$1"
M2="1000.$$2"
M3="1000.$$3"
M4="1000.$$4"
# left MARK: the processes whose command line runs `sleep MARK`
left() { pgrep -af "sleep ${1//./\\.}([^0-9]|\$)" || true; }
# When a check fails (or a broken timeout leaves them), the commands of this run do not outlive it.
kill_left() {
    local m p
    for m in "$M1" "$M2" "$M3" "$M4"; do
        for p in $(left "$m" | cut -d' ' -f1); do kill -KILL "$p" 2>/dev/null || true; done
    done
}
on_exit() {
    local rc=$?
    kill_left
    set +e
    (exit "$rc")
    s_on_exit
}
trap on_exit EXIT

# A broken timeout would hang the job: bound every run so that the test fails instead.
SL=(timeout -k 5 60 "$SLUICE")
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

say "what any per-object failure gives today (a command that exits 3): the exit status to expect"
run "${SL[@]}" map "$S" "$T/fail" --shell --exec 'case "$SLUICE_KEY" in *hang*) exit 3;; *) cat;; esac' -q
partial_rc=$RC
expect_eq "exit status of a run with failed objects" 1 "$partial_rc"

say "--timeout 1s -j 4, two commands sleep: exactly those fail as timed out, the others are done, in well under 20 s"
HANG='case "$SLUICE_KEY" in *hang*) echo about to hang >&2; sleep '"$M1"';; *) cat;; esac'
t0=$(date +%s%N)
run "${SL[@]}" map "$S" "$T/out" --shell --exec "$HANG" --timeout 1s -j 4 --failures "$T/failures.jsonl" \
    --report "$T/report.json"
ms=$(ms_since "$t0")
expect_rc "$partial_rc"
[ "$ms" -lt 20000 ] || fail "duration" "well under the 1000 s sleep (< 20 s)" "$ms ms"
[ "$ms" -ge 900 ] || fail "duration" "at least the 1 s limit" "$ms ms"
for k in hang-1.txt sub/hang-2.txt; do
    grep -qF "sluice: map: FAILED $k: command timed out after 1s (killed): about to hang" "$ERR" ||
        fail "failure line on stderr for $k" "'FAILED $k: command timed out after 1s (killed): about to hang'" \
            "$(cat "$ERR")"
done
expect_eq "FAILED lines on stderr" 2 "$(grep -c 'FAILED' "$ERR")"
expect_err_contains "4 done (0 skipped), 2 failed of 6 objects"
python3 - "$T/failures.jsonl" <<'PY' || fail "--failures file" "2 lines for the hung keys, timed out" "$(cat "$T/failures.jsonl")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], "rb")]
assert sorted(r["key"] for r in recs) == ["hang-1.txt", "sub/hang-2.txt"], recs
for r in recs:
    assert r["error"].startswith("command timed out after 1s (killed)"), r
    assert r["code"] == "SL_ECHILD", r
PY
expect_eq "report outcome" partial "$(json_field "$T/report.json" 'd["outcome"]')"
expect_eq "report objects" '{"listed": 6, "done": 4, "skipped": 0, "failed": 2}' \
    "$(json_field "$T/report.json" 'd["objects"]')"
expect_eq "report failures_sample: the hung keys, timed out" '[["hang-1.txt", true], ["sub/hang-2.txt", true]]' \
    "$(json_field "$T/report.json" 'sorted([f["key"], "timed out after 1s" in f["error"]] for f in d["failures_sample"])')"
expect_eq "outputs: all but the hung keys" "$(keys_all | grep -v hang)" "$(keys_out "$T/out")"
while IFS= read -r k; do
    cmp -s "$S/$k" "$T/out/$k" || fail "output of cat for $k" "identical to the input" "differs"
done < <(keys_all | grep -v hang)
no_tmp_files "$T/out"
expect_eq "sleep processes left" "" "$(left "$M1")"

say "a command that ignores SIGTERM is killed (SIGKILL) 2 s after it and fails"
t0=$(date +%s%N)
run "${SL[@]}" map "$S" "$T/term" --include 'a.txt' --shell --exec 'trap "" TERM; sleep '"$M2" --timeout 500ms \
    --failures "$T/term.jsonl"
ms=$(ms_since "$t0")
expect_rc "$partial_rc"
expect_err_contains "FAILED a.txt: command timed out after 500ms (killed)"
expect_err_contains "0 done (0 skipped), 1 failed of 1 objects"
[ "$ms" -ge 2400 ] || fail "SIGKILL after the grace" "no sooner than 0.5 s + 2 s" "$ms ms"
[ "$ms" -lt 20000 ] || fail "duration" "well under the 1000 s sleep (< 20 s)" "$ms ms"
expect_eq "--failures keys" "a.txt" "$(json_field "$T/term.jsonl" 'd["key"]')"
expect_eq "outputs" "" "$(find "$T/term" -type f 2>/dev/null)"
expect_eq "sleep processes left" "" "$(left "$M2")"

say "a command that closes its stdout and stderr and then hangs is caught too"
run "${SL[@]}" map "$S" "$T/closed" --include 'b.txt' --shell --exec 'exec >&- 2>&-; sleep '"$M3" --timeout 1s
expect_rc "$partial_rc"
expect_err_contains "FAILED b.txt: command timed out after 1s (killed)"
expect_eq "outputs" "" "$(find "$T/closed" -type f 2>/dev/null)"
expect_eq "sleep processes left" "" "$(left "$M3")"

say "commands that never read their stdin (one larger than a pipe buffer) and exit within the limit: unaffected"
head -c 300000 /dev/zero | tr '\0' x >"$S/big.txt"
run "${SL[@]}" map "$S" "$T/quick" --shell --exec 'sleep 0.2; echo "done $SLUICE_KEY"' --timeout 1.5s -q
expect_rc 0
expect_err_empty
expect_eq "outputs" "$(keys_all)" "$(keys_out "$T/quick")"
expect_eq "output of big.txt" "done big.txt" "$(cat "$T/quick/big.txt")"
rm "$S/big.txt"

say "SIGINT with --timeout set: the job still stops (exit 130), the command killed when the grace runs out"
LAST_CMD="$(s_quote "$SLUICE" map "$S" "$T/int" --include a.txt --shell --exec "sleep $M4" --timeout 60s \
    --grace 500ms) & ...; kill -INT"
"$SLUICE" map "$S" "$T/int" --include a.txt --shell --exec "sleep $M4" --timeout 60s --grace 500ms \
    >"$OUT" 2>"$ERR" &
pid=$!
# The command itself (`left` also matches sluice, whose arguments name it): a SIGINT sent before sluice has installed
# its handler would be lost, as a background job of a script starts with SIGINT ignored.
for _ in $(seq 100); do
    pgrep -P "$pid" >/dev/null && [ -n "$(left "$M4" | grep -v sluice)" ] && break
    sleep 0.1
done
[ -n "$(left "$M4" | grep -v sluice)" ] || fail "the command" "running within 10 s" "not started"
t0=$(date +%s%N)
kill -INT "$pid"
RC=0
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    fail "SIGINT with --timeout 60s" "exit within a few seconds" "still running after 10 s"
fi
wait "$pid" || RC=$?
ms=$(ms_since "$t0")
expect_rc 130
[ "$ms" -lt 8000 ] || fail "stop after the grace" "well before the 60 s timeout" "$ms ms"
expect_eq "outputs" "" "$(find "$T/int" -type f 2>/dev/null)"
expect_eq "sleep processes left" "" "$(left "$M4")"

say "usage errors: --timeout with --op, with cp, and a malformed duration: exit 2, one line"
run "$SLUICE" map "$S" "$T/u" --op md5 --timeout 1s
expect_rc 2
expect_err_one_line "--timeout applies to map --exec/--worker only"
run "$SLUICE" cp "$S" "$T/u" --timeout 1s
expect_rc 2
expect_err_one_line "--timeout applies to map --exec/--worker only"
run "$SLUICE" map "$S" "$T/u" --exec cat --timeout abc
expect_rc 2
expect_err_one_line "--timeout takes a duration"
expect_eq "nothing written by a usage error" "" "$(find "$T/u" -type f 2>/dev/null)"

say "--help documents --timeout"
run "$SLUICE" map --help
expect_rc 0
grep -q -- '--timeout DURATION' "$OUT" || fail "map --help" "a --timeout DURATION line" "$(cat "$OUT")"

finish
