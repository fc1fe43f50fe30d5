#!/usr/bin/env bash
# Interruption and closed pipes: SIGINT / SIGTERM during a map job (exit 130 / 143, in-flight objects complete, no
# temp files, every output present is whole, the report says which signal and how many objects were not started);
# --grace: in-flight commands that outlast it are killed (their whole process group) and the job exits within the
# grace plus a small margin, with nothing under a final name, while commands that fit in it finish and are committed;
# a second signal abandons what is in flight at once; uploads to gs:// hanging on a slow server are dropped when the
# grace runs out (the request itself is abandoned); a request hanging before the job has started (the probe of the
# source, the check of the destination bucket) is abandoned when the grace runs out, or at once on a second signal, and
# ls, du and cat stop at once; and a reader that goes away (| head) gives exit 141 without an error message.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh" # lib.sh, plus the GCS test server for the upload case

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
    [ -f "$dst.json" ] || fail "report after SIG$sig" "written" "missing"
    expect_eq "report after SIG$sig: outcome not ok, done == outputs present, none failed" true \
        "$(json_field "$dst.json" 'd["outcome"] != "ok" and d["objects"]["done"] == '"$n"' and d["objects"]["failed"] == 0')"
    expect_eq "report after SIG$sig: interrupted by" "SIG$sig" "$(json_field "$dst.json" 'd["interrupted"]')"
    expect_eq "report after SIG$sig: nothing abandoned (0.2 s commands, 25 s grace), the rest not started" \
        "[false, 0, true]" "$(json_field "$dst.json" '[d["stop"]["aborted"], d["stop"]["objects_aborted"],
            d["stop"]["objects_not_started"] == d["objects"]["listed"] - d["objects"]["done"] > 0]')"
    say "  exit $RC $(((t1 - t0) / 1000000)) ms after SIG$sig; $n complete outputs, no temp files"
}

say "SIGINT during map --exec over 200 objects (-j 2, 0.2 s each): exit 130 within seconds"
interrupt INT 130 "$T/int"

say "SIGTERM: exit 143, the same guarantees"
interrupt TERM 143 "$T/term"

# wait_children PID N: until PID has N children (at most 10 s)
wait_children() {
    local i
    for i in $(seq 100); do
        [ "$(pgrep -P "$1" | wc -l)" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "children of sluice" "$2 commands running within 10 s" "$(pgrep -P "$1" | wc -l)"
}

# keys_of PIDS...: the SLUICE_KEY of each command, sorted
keys_of() {
    local p
    for p in "$@"; do tr '\0' '\n' <"/proc/$p/environ" | sed -n 's/^SLUICE_KEY=//p'; done | sort
}

# group_left PGID...: processes still alive in these process groups (each command leads its own)
group_left() {
    local g
    for g in "$@"; do ps -eo pid=,pgid=,stat=,args= | awk -v g="$g" '$2 == g && $3 !~ /^Z/'; done
}

say "--grace 1s, SIGTERM while two commands that need 30 s run: they are killed after the grace, exit 143"
dst="$T/grace"
LAST_CMD="$(s_quote "$SLUICE" map "$S" "$dst" -j 2 --shell --exec 'sleep 30; cat' --grace 1s) & ...; kill -TERM"
"$SLUICE" map "$S" "$dst" -j 2 --shell --exec 'sleep 30; cat' --grace 1s --report "$dst.json" \
    --failures "$dst.failures" >"$OUT" 2>"$ERR" &
pid=$!
wait_children "$pid" 2
sleep 0.3 # the shells have started their `sleep 30`
children=$(pgrep -P "$pid" | tr '\n' ' ')
# shellcheck disable=SC2086 # one pid per word
inflight=$(keys_of $children)
t0=$(date +%s%N)
kill -TERM "$pid"
sleep 0.5
kill -0 "$pid" 2>/dev/null || fail "SIGTERM with --grace 1s" "still draining 0.5 s later" "exited"
if ! wait_gone "$pid" 10; then
    kill -KILL "$pid"
    fail "stop after the grace" "exit within 1 s + a margin" "still running after 10 s"
fi
RC=0
wait "$pid" || RC=$?
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
expect_rc 143
[ "$ms" -ge 900 ] || fail "the grace is honoured" "exit no sooner than 1 s after SIGTERM" "$ms ms"
[ "$ms" -le 4000 ] || fail "the grace bounds the stop" "exit within 1 s + 3 s of margin" "$ms ms"
# shellcheck disable=SC2086
left=$(group_left $children)
[ -z "$left" ] || fail "commands after the grace" "killed with everything they started" "$left"
expect_eq "outputs after the grace ran out" "" "$(find "$dst" -type f 2>/dev/null)"
expect_err_contains "interrupted by SIGTERM"
expect_err_contains "2 abandoned when the 1.0 s grace ran out"
expect_eq "report: interrupted, aborted, 2 abandoned, none done or failed, the rest not started" \
    '["SIGTERM", 1.0, true, 2, 0, 0, true]' "$(json_field "$dst.json" '[d["interrupted"], d["stop"]["grace_s"],
        d["stop"]["aborted"], d["stop"]["objects_aborted"], d["objects"]["done"], d["objects"]["failed"],
        d["stop"]["objects_not_started"] == d["objects"]["listed"] - 2]')"
expect_eq "failure log: the 2 in-flight objects, abandoned" "$inflight" "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert d["code"] == "SL_ECANCELED" and "aborted" in d["error"], d
    print(d["key"])' "$dst.failures" | sort)"
say "  exit 143 $ms ms after SIGTERM; no process of the commands left, nothing under a final name"

say "--grace 10s, SIGINT while two 1 s commands run: they finish and are committed; exit 130"
dst="$T/fits"
LAST_CMD="$(s_quote "$SLUICE" map "$S" "$dst" -j 2 --shell --exec 'sleep 1; cat' --grace 10s) & ...; kill -INT"
"$SLUICE" map "$S" "$dst" -j 2 --shell --exec 'sleep 1; cat' --grace 10s --report "$dst.json" \
    --failures "$dst.failures" >"$OUT" 2>"$ERR" &
pid=$!
wait_children "$pid" 2
children=$(pgrep -P "$pid" | tr '\n' ' ')
# shellcheck disable=SC2086
inflight=$(keys_of $children)
t0=$(date +%s%N)
kill -INT "$pid"
if ! wait_gone "$pid" 10; then
    kill -KILL "$pid"
    fail "stop after SIGINT" "exit once the 1 s commands are done" "still running after 10 s"
fi
RC=0
wait "$pid" || RC=$?
ms=$((($(date +%s%N) - t0) / 1000000))
expect_rc 130
[ "$ms" -le 4000 ] || fail "stop after SIGINT" "exit soon after the in-flight commands end (about 1 s)" "$ms ms"
while IFS= read -r k; do
    cmp -s "$S/$k" "$dst/$k" || fail "in-flight $k at SIGINT" "finished and committed" "missing or different"
done <<<"$inflight"
no_tmp_files "$dst"
n=$(find "$dst" -type f | wc -l)
expect_eq "report: SIGINT, nothing abandoned, done == outputs" "[\"SIGINT\", false, 0, $n, 0]" \
    "$(json_field "$dst.json" '[d["interrupted"], d["stop"]["aborted"], d["stop"]["objects_aborted"],
        d["objects"]["done"], d["objects"]["failed"]]')"
expect_eq "failure log after a drain" 0 "$(wc -c <"$dst.failures")"
say "  exit 130 $ms ms after SIGINT; the in-flight objects were committed ($n outputs)"

say "a second SIGINT abandons in-flight commands at once (they would take 30 s; grace 25 s)"
dst="$T/twice"
LAST_CMD="$(s_quote "$SLUICE" map "$S" "$dst" -j 2 --shell --exec 'sleep 30; cat') & kill -INT; kill -INT"
"$SLUICE" map "$S" "$dst" -j 2 --shell --exec 'sleep 30; cat' --report "$dst.json" >"$OUT" 2>"$ERR" &
pid=$!
wait_children "$pid" 2
sleep 0.3
children=$(pgrep -P "$pid" | tr '\n' ' ')
kill -INT "$pid"
sleep 0.5
kill -0 "$pid" 2>/dev/null || fail "first SIGINT" "waits for the in-flight commands (30 s)" "exited at once"
t0=$(date +%s%N)
kill -INT "$pid"
if ! wait_gone "$pid" 5; then
    kill -KILL "$pid"
    fail "second SIGINT" "exit at once" "still running 5 s later"
fi
RC=0
wait "$pid" || RC=$?
ms=$((($(date +%s%N) - t0) / 1000000))
expect_rc 130
[ "$ms" -le 2000 ] || fail "second SIGINT" "exit within 2 s" "$ms ms"
# shellcheck disable=SC2086
left=$(group_left $children)
[ -z "$left" ] || fail "commands after the second SIGINT" "killed with everything they started" "$left"
expect_eq "report after the second SIGINT" '["SIGINT", true, 2, 0]' \
    "$(json_field "$dst.json" '[d["interrupted"], d["stop"]["aborted"], d["stop"]["objects_aborted"],
        d["objects"]["done"]]')"
say "  exit 130 $ms ms after the second SIGINT; nothing under a final name, no temp file"
expect_eq "outputs after the hard stop" "" "$(find "$dst" -type f 2>/dev/null)"

say "--grace takes 30s, 500ms, 2m or plain seconds; anything else is a usage error"
for g in 30s 500ms 2m 1.5 0; do
    run "$SLUICE" map "$S" "$T/g-ok" --exec cat --grace "$g" --dry-run -q
    expect_rc 0
done
for g in 3x -1 "" 25h 1e9 s; do
    run "$SLUICE" map "$S" "$T/g-bad" --exec cat --grace "$g"
    expect_rc 2
    expect_err_one_line "--grace takes a duration"
done

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

say "gs://: SIGTERM while uploads hang on a slow server: abandoned when a 0.5 s grace runs out, exit 143 at once"
gcs_start
gcs_bucket dst
gcs_config '{"delay_ms": 50}' # 200 uploads by 2 workers take 5 s: still busy when the server slows down further
dst=gs://dst/up
LAST_CMD="$(s_quote "$SLUICE" cp "$S" "$dst" -j 2 --grace 500ms) & ...; server delay 20 s; kill -TERM"
"$SLUICE" cp "$S" "$dst" -j 2 --grace 500ms --report "$T/up.json" >"$OUT" 2>"$ERR" &
pid=$!
for _ in $(seq 100); do # until some objects are up (at most 10 s)
    gcs_objects dst up/ >"$T/probe"
    [ -s "$T/probe" ] && break
    sleep 0.1
done
gcs_config '{"delay_ms": 20000}' # every request from now on hangs 20 s before the server looks at it
sleep 1
t0=$(date +%s%N)
kill -TERM "$pid"
if ! wait_gone "$pid" 10; then
    kill -KILL "$pid"
    fail "uploads after the grace" "abandoned: exit soon after 0.5 s" "still running 10 s after SIGTERM"
fi
RC=0
wait "$pid" || RC=$?
ms=$((($(date +%s%N) - t0) / 1000000))
expect_rc 143
[ "$ms" -le 3000 ] || fail "uploads hanging on the server" "abandoned within 0.5 s + a margin" "$ms ms"
expect_eq "report: interrupted, the 2 hanging uploads abandoned" '["SIGTERM", true, 2]' \
    "$(json_field "$T/up.json" '[d["interrupted"], d["stop"]["aborted"], d["stop"]["objects_aborted"]]')"
gcs_config '{"delay_ms": 0}'
sleep 0.2
gcs_objects dst up/ >"$T/up.objects"
n=$(wc -l <"$T/up.objects")
[ "$n" -gt 0 ] && [ "$n" -lt 200 ] || fail "objects uploaded before SIGTERM" "some, not all 200" "$n"
# Whatever the server holds under a final name is whole: size and CRC32C of the source file.
python3 - "$T/up.objects" "$S" <<'PY' || fail "objects at gs://dst/up" "each identical to its source" "see above"
import base64, json, os, struct, sys
table = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
def crc(data):
    c = 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return base64.b64encode(struct.pack(">I", c ^ 0xFFFFFFFF)).decode()
for line in open(sys.argv[1]):
    o = json.loads(line)
    data = open(os.path.join(sys.argv[2], o["name"][len("up/"):]), "rb").read()
    assert int(o["size"]) == len(data) and o["crc32c"] == crc(data), o["name"]
PY
say "  exit 143 $ms ms after SIGTERM with uploads hanging; $n whole objects at the destination, no partial one"

# ---- signals while a request hangs before the job has started, and in ls, du, cat ----
gcs_start --bucket stall
gcs_seed '{"bucket": "stall", "count": 5, "name_format": "p/{:02d}", "size": 10}'
# stalled METHOD CMD...: CMD in the background with a header that makes the server stall its first METHOD request for
# 60 s (headers sent, then silence); returns once that request is in flight. Sets pid.
stalled() {
    local m=$1 id
    shift
    id=$(gcs_retry_test "{\"$m\": [\"stall-for-60s-after-0K\"]}")
    gcs_stats_reset
    LAST_CMD="$(s_quote "$SLUICE" "$@" --header "x-retry-test-id: $id") & ...; kill"
    "$SLUICE" "$@" --header "x-retry-test-id: $id" >"$OUT" 2>"$ERR" &
    pid=$!
    for _ in $(seq 100); do # until the stalled request is in flight (at most 10 s)
        [ "$(gcs_requests "$m")" -ge 1 ] && break
        sleep 0.1
    done
    [ "$(gcs_requests "$m")" -ge 1 ] || fail "$m request of: $*" "in flight within 10 s" "none"
    sleep 0.3
    kill -0 "$pid" 2>/dev/null || fail "$*" "hanging on the stalled $m request" "exited"
}
# stopped SIG LIMIT_MS: sends SIG, waits for the exit (at most 15 s, against the server's 60 s); sets RC and ms
stopped() {
    local t0
    t0=$(date +%s%N)
    kill -"$1" "$pid"
    if ! wait_gone "$pid" 15; then
        kill -KILL "$pid"
        fail "SIG$1 while a request hangs" "exit within 15 s (the server stalls 60 s)" "still running"
    fi
    RC=0
    wait "$pid" || RC=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -le "$2" ] || fail "SIG$1 while a request hangs" "exit within $2 ms" "$ms ms"
}

for what in "objects.get:probe of the source" "buckets.get:check of the destination bucket"; do
    m="storage.${what%%:*}"
    say "--grace 1s, SIGTERM while the $m start-up request (${what#*:}) hangs: exit 143 after the grace, one line"
    dst="$T/start-${m##*.}"
    if [ "$m" = storage.objects.get ]; then
        stalled "$m" cp gs://stall/p "$dst" --grace 1s --report "$dst.json"
    else
        stalled "$m" cp "$S" gs://stall/up --grace 1s --report "$dst.json"
    fi
    stopped TERM 6000 # the 1 s grace, then the request is abandoned: bounded generously for a loaded machine
    expect_rc 143
    [ "$ms" -ge 900 ] || fail "the grace is given to the hanging request" "no exit before ~1 s" "$ms ms"
    expect_err_one_line "interrupted by SIGTERM while starting, nothing was done"
    expect_out
    [ ! -e "$dst" ] && [ ! -e "$dst.json" ] || fail "after SIGTERM at start-up" "nothing written" "$(ls -d "$dst"*)"
    expect_eq "objects uploaded" "" "$(gcs_objects stall up/)"
    say "  exit 143 $ms ms after SIGTERM"
done

say "--grace 1s, SIGTERM while the destination listing of a job (its first request) hangs: exit 143 after the grace"
stalled storage.objects.list cp "$S" gs://stall/up --grace 1s -q --report "$T/dlist.json"
stopped TERM 6000
expect_rc 143
expect_err_one_line "interrupted by SIGTERM: 0 objects done, 0 failed"
expect_eq "objects uploaded" "" "$(gcs_objects stall up/)"
expect_eq "report: SIGTERM, nothing done" '["SIGTERM", 0]' \
    "$(json_field "$T/dlist.json" '[d["interrupted"], d["objects"]["done"]]')"
say "  exit 143 $ms ms after SIGTERM"

say "the default 25 s grace, two SIGINTs while the probe of the source hangs: the second stops it at once"
stalled storage.objects.get rm -r gs://stall/p
kill -INT "$pid"
sleep 0.5
kill -0 "$pid" 2>/dev/null || fail "first SIGINT at start-up" "the request gets the grace (25 s)" "exited at once"
stopped INT 3000
expect_rc 130
expect_err_one_line "interrupted by SIGINT while starting, nothing was done"
expect_eq "objects left under p/ (nothing deleted)" 5 "$(gcs_objects stall p/ | wc -l)"
say "  exit 130 $ms ms after the second SIGINT"

for c in "ls:TERM:143:storage.objects.list:gs://stall/p/" "du:TERM:143:storage.objects.list:gs://stall/p/" \
    "cat:INT:130:storage.objects.get:gs://stall/p/00" "ls:INT:130:storage.objects.get:gs://stall/p/00"; do
    IFS=: read -r cmd sig code m url <<<"$c"
    say "$cmd $url, SIG$sig while its $m request hangs: exit $code at once, nothing on stdout or stderr"
    stalled "$m" "$cmd" "$url"
    stopped "$sig" 3000 # no grace for a command with nothing in flight to finish
    expect_rc "$code"
    expect_err_empty
    expect_out
    say "  exit $code $ms ms after SIG$sig"
done

gcs_finish
