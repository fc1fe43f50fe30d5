#!/usr/bin/env bash
# Interruption and closed pipes: SIGINT / SIGTERM during a map job (exit 130 / 143, in-flight objects complete, no
# temp files, every output present is whole), a second signal stops at once, and a reader that goes away
# (| head) gives exit 141 without an error message.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(200):
    p = os.path.join(root, "d%d" % (i % 4), "obj%03d.txt" % i)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(b"object %d\n" % i * (200 + i))
PY

# wait_gone PID SECONDS: true once PID has exited (polls every 0.1 s)
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$1" 2>/dev/null
}

# interrupt SIG EXPECTED_RC DST: a slow map in the background, SIG after ~1 s, then the checks
interrupt() {
    local sig="$1" want="$2" dst="$3" pid t0 t1 n
    LAST_CMD="$(s_quote "$SLUICE" map "$S" "$dst" -j 2 --shell --exec 'sleep 0.2; cat') & ...; kill -$sig"
    "$SLUICE" map "$S" "$dst" -j 2 --shell --exec 'sleep 0.2; cat' --report "$dst.json" >"$OUT" 2>"$ERR" &
    pid=$!
    # signal it once it is well under way: some outputs committed (at most 10 s, for slow sanitized builds)
    for _ in $(seq 100); do
        [ -n "$(find "$dst" -type f 2>/dev/null | head -1)" ] && break
        sleep 0.1
    done
    sleep 0.5
    t0=$(date +%s%N)
    kill -"$sig" "$pid"
    if ! wait_gone "$pid" 10; then
        kill -KILL "$pid"
        fail "stop after SIG$sig" "exit within 10 s (in-flight objects take 0.2 s)" "still running after 10 s"
    fi
    RC=0
    wait "$pid" || RC=$?
    t1=$(date +%s%N)
    expect_rc "$want"
    no_tmp_files "$dst"
    n=$( (cd "$dst" 2>/dev/null && find . -type f | wc -l) || echo 0)
    [ "$n" -lt 200 ] || fail "SIG$sig stops the job early" "fewer than 200 outputs" "$n"
    [ "$n" -gt 0 ] || fail "outputs before SIG$sig" "some objects done before the signal" "none"
    while IFS= read -r k; do # every output present is complete: identical to its source
        cmp -s "$S/$k" "$dst/$k" || fail "output $k after SIG$sig" "complete (identical to the source)" "differs"
    done < <(cd "$dst" && find . -type f)
    expect_err_contains "interrupted"
    if [ -f "$dst.json" ]; then
        expect_eq "report after SIG$sig: outcome not ok, done == outputs present, none failed" true \
            "$(json_field "$dst.json" 'd["outcome"] != "ok" and d["objects"]["done"] == '"$n"' and d["objects"]["failed"] == 0')"
    fi
    say "  exit $RC $(((t1 - t0) / 1000000)) ms after SIG$sig; $n complete outputs, no temp files"
}

say "SIGINT during map --exec over 200 objects (-j 2, 0.2 s each): exit 130 within seconds"
interrupt INT 130 "$T/int"

say "SIGTERM: exit 143, the same guarantees"
interrupt TERM 143 "$T/term"

say "a second SIGINT stops at once (in-flight commands that would take 30 s)"
LAST_CMD="$(s_quote "$SLUICE" map "$S" "$T/twice" -j 2 --exec 'sleep 30') & kill -INT; kill -INT"
"$SLUICE" map "$S" "$T/twice" -j 2 --exec 'sleep 30' >"$OUT" 2>"$ERR" &
pid=$!
for _ in $(seq 100); do # until its first commands run (at most 10 s)
    [ -n "$(pgrep -P "$pid" || true)" ] && break
    sleep 0.1
done
kill -INT "$pid"
sleep 0.5
kill -0 "$pid" 2>/dev/null || fail "first SIGINT" "waits for the in-flight commands (30 s)" "exited at once"
children=$(pgrep -P "$pid" || true) # the 'sleep 30' commands sluice started; ended by pid below
kill -INT "$pid"
if ! wait_gone "$pid" 5; then
    kill -KILL "$pid"
    fail "second SIGINT" "exit at once" "still running 5 s later"
fi
RC=0
wait "$pid" || RC=$?
for c in $children; do kill "$c" 2>/dev/null || true; done
expect_rc 130
say "  after the hard stop: nothing under a final name, listings show no temp file"
if [ -d "$T/twice" ]; then
    run "$SLUICE" ls -r "$T/twice"
    expect_rc 0
    expect_out
fi

say "a reader that goes away (| head -1): exactly one line; sluice exits 141 with nothing on stderr"
B="$T/many"
python3 - "$B" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(3000):  # ~150 KB of listing and ~250 KB of md5 lines: more than a pipe buffer
    p = os.path.join(root, "dir%02d" % (i % 30), "a-rather-long-object-name-number-%05d.txt" % i)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(b"%d\n" % i)
PY
pipe_check() { # pipe_check WHAT CMD...: CMD | head -1 -> exactly one line, CMD exits 141, stderr empty
    local what="$1"
    shift
    LAST_CMD="$(s_quote "$@") | head -1"
    set +o pipefail
    "$@" 2>"$ERR" | head -1 >"$OUT"
    local ps=("${PIPESTATUS[@]}")
    set -o pipefail
    RC=${ps[0]}
    expect_eq "$what: lines out of head -1" 1 "$(wc -l <"$OUT")"
    expect_rc 141
    expect_err_empty
}
pipe_check "ls -r" "$SLUICE" ls -r "$B"
pipe_check "ls -r --json" "$SLUICE" ls -r --json "$B"
head -c 3000000 /dev/zero | tr '\0' '\n' >"$T/newlines"
pipe_check "cat" "$SLUICE" cat "$T/newlines"
pipe_check "map --op md5 -q" "$SLUICE" map "$B" - --op md5 -q
pipe_check "map --op md5 (no -q)" "$SLUICE" map "$B" - --op md5
pipe_check "map --op crc32c -j 1" "$SLUICE" map "$B" - --op crc32c -j 1
pipe_check "map --exec cat" "$SLUICE" map "$B" - --exec cat

finish
