#!/usr/bin/env bash
# A server that stops answering in the middle of a job: the retry budget is per job as well as per request.
#   - killed mid-copy (every connection refused from then on): the job stops once the server has answered nothing for
#     --retry-deadline-ms, exit 3, one line "gs://...: server unreachable for N s (...); ... rerun to resume";
#     objects in flight are abandoned (SL_ECANCELED in the failure log, "objects_aborted" in the report), the rest
#     not started; none counts as failed, every file present is whole, no temp file is left;
#   - the same for every job kind, through the test server's outage mode (every API connection reset): sync, map,
#     rm -r, an upload, --retry-failed;
#   - an outage shorter than the deadline costs nothing: the requests wait for the server and the job ends with every
#     object done (downloads and uploads);
#   - a server that answers, even 503 to everything, is not unreachable: its objects fail by the per-request rules,
#     and the job goes on past the deadline.
# Start-up requests (the probe of the source, the bucket check) and ls/du/cat are single requests, bounded by the
# per-request retry rules; SIGTERM during them is tested in signals.sh.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

BKT=outage
N=3000 # objects: at 20 ms a request and 8 workers a job takes ~8 s, so it is well under way when the server goes

# The content the server generates for an object of `size` bytes: its name and a newline, repeated, cut to size.
python3 - "$T/gen" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    name = "p/%05d" % i
    os.makedirs(os.path.join(root, "p"), exist_ok=True)
    with open(os.path.join(root, name), "wb") as f:
        f.write(((name + "\n").encode() * 20)[:100])
PY
seed() { # seed PREFIX: N objects of 100 bytes under PREFIX/
    gcs_seed "{\"bucket\": \"$BKT\", \"count\": $N, \"name_format\": \"$1/{:05d}\", \"size\": 100}"
}
server() { # a fresh server holding p/ and del/, answering each API request after 20 ms
    gcs_start --bucket "$BKT"
    seed p
    seed del
    gcs_config '{"delay_ms": 20}'
}

# bg CMD...: sluice in the background (stdout/stderr to $OUT/$ERR); sets JOB
bg() {
    LAST_CMD="$(s_quote "$SLUICE" "$@") &"
    "$SLUICE" "$@" >"$OUT" 2>"$ERR" &
    JOB=$!
}
# under_way N: until the server has had N API requests since the last stats reset (at most 30 s)
under_way() {
    local i
    for i in $(seq 300); do
        [ "$(gcs_stat 'd["requests_total"]')" -ge "$1" ] && return 0
        kill -0 "$JOB" 2>/dev/null || fail "the job is under way" "still running after $1 requests" "it exited"
        sleep 0.1
    done
    fail "the job is under way" "$1 requests within 30 s" "$(gcs_stat 'd["requests_total"]')"
}
# wait_job LIMIT_S: waits for JOB, at most LIMIT_S seconds from T0; sets RC and MS (ms since T0)
wait_job() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        kill -0 "$JOB" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$JOB" 2>/dev/null; then
        kill -KILL "$JOB"
        wait "$JOB" || true
        fail "the job stops" "exit within $1 s of the outage" "still running (copied so far: $(head -c 300 "$ERR"))"
    fi
    RC=0
    wait "$JOB" || RC=$?
    MS=$((($(date +%s%N) - T0) / 1000000))
}
# gave_up DEADLINE_MS REPORT FAILURES WHAT: the checks every job stopped by an unreachable server passes
gave_up() {
    local deadline=$1 report=$2 failures=$3 what=$4
    expect_rc 3
    expect_err_one_line
    local re="^sluice: [a-z]+: gs://$BKT/[a-z]+: server unreachable for [0-9.]+ s \(http://127\.0\.0\.1:[0-9]+: .+\); "
    re+="[0-9]+ objects done, 0 failed, [0-9]+ abandoned, [0-9]+ listed but not started: rerun to resume$"
    grep -qE -- "$re" "$ERR" || fail "$what: the message" "one line matching /$re/" "$(cat "$ERR")"
    expect_out
    # Not before the deadline (the outage began before T0), and long before each object could have run out of its
    # own retries; the upper bound is generous for a loaded machine.
    [ "$MS" -ge $((deadline - 500)) ] || fail "$what: the deadline is honoured" "no exit before ~$deadline ms" "$MS ms"
    [ "$MS" -le $((deadline + 12000)) ] || fail "$what: stop after the deadline" "within $deadline + 12000 ms" "$MS ms"
    expect_eq "$what: report (error, aborted, none failed, listed = done + abandoned + not started, message)" \
        '["error", true, 0, true, true]' "$(json_field "$report" '[d["outcome"], d["stop"]["aborted"],
            d["objects"]["failed"], d["objects"]["listed"] == d["objects"]["done"] + d["stop"]["objects_aborted"]
            + d["stop"]["objects_not_started"], "server unreachable for" in d["error"]]')"
    local aborted
    aborted=$(json_field "$report" 'd["stop"]["objects_aborted"]')
    [ "$aborted" -le 8 ] || fail "$what: objects abandoned" "at most the 8 in flight" "$aborted"
    expect_eq "$what: failure log: the abandoned objects, as abandoned (SL_ECANCELED), nothing else" "$aborted" \
        "$(python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert d["code"] == "SL_ECANCELED" and "server was unreachable" in d["error"], d
    n += 1
print(n)' "$failures")"
}
# whole DIR: every file in DIR is its object's whole content; no temp file; prints how many there are
whole() {
    python3 - "$T/gen/p" "$1" <<'PY' || fail "files in $1" "each identical to its object" "see above"
import os, sys
want, got = sys.argv[1:3]
n = 0
for dp, _, fs in os.walk(got):
    for f in fs:
        rel = os.path.relpath(os.path.join(dp, f), got)
        assert open(os.path.join(dp, f), "rb").read() == open(os.path.join(want, rel), "rb").read(), rel
        n += 1
print(n)
PY
    no_tmp_files "$1"
}

say "the server is killed 1/10 into a copy of $N objects (-j 8, --retry-deadline-ms 3000): exit 3 about 3 s later"
server
gcs_stats_reset
bg cp "gs://$BKT/p" "$T/kill" -j 8 --retry-deadline-ms 3000 --report "$T/kill.json" --failures "$T/kill.failures"
under_way 300
gcs_stop # SIGTERM: the server exits, its port refuses every connection from now on
T0=$(date +%s%N)
wait_job 30
gave_up 3000 "$T/kill.json" "$T/kill.failures" "server killed"
n=$(whole "$T/kill")
expect_eq "report: done == whole files present" "$n" "$(json_field "$T/kill.json" 'd["objects"]["done"]')"
[ "$n" -gt 0 ] && [ "$n" -lt "$N" ] || fail "files copied before the server died" "some, not all" "$n"
say "  exit 3 $MS ms after the server died; $n whole files, $(json_field "$T/kill.json" 'd["stop"]["objects_aborted"]') abandoned"

say "the same for every job kind, through an outage of the server (every API connection reset; --retry-deadline-ms 2000)"
server
mkdir -p "$T/up-src"
cp -r "$T/gen/p/." "$T/up-src/"
python3 - "$N" >"$T/retry.log" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"key": "%05d" % i, "error": "earlier", "code": "SL_EIO", "attempts": 1}))
PY
outage_case() { # outage_case NAME CMD...: start, outage once under way, then the checks
    local name=$1
    shift
    gcs_config '{"outage_s": 0}'
    gcs_stats_reset
    bg "$@" -j 8 --retry-deadline-ms 2000 --report "$T/$name.json" --failures "$T/$name.failures"
    under_way 200
    gcs_config '{"outage_s": 600}'
    T0=$(date +%s%N)
    wait_job 30
    gave_up 2000 "$T/$name.json" "$T/$name.failures" "$name"
    say "  $name: exit 3 $MS ms after the outage began"
}
outage_case sync sync "gs://$BKT/p" "$T/sync"
whole "$T/sync" >/dev/null
outage_case map map "gs://$BKT/p" "$T/map" --op md5
outage_case rm rm -r "gs://$BKT/del"
gcs_config '{"outage_s": 0}'
left=$(gcs_objects "$BKT" del/ | wc -l)
expect_eq "rm -r: objects left == not deleted (listed - done)" "$left" \
    "$(json_field "$T/rm.json" "$N - d[\"objects\"][\"done\"]")"
outage_case upload cp "$T/up-src" "gs://$BKT/up"
outage_case retry-failed cp "gs://$BKT/p" "$T/retry" --retry-failed "$T/retry.log"
whole "$T/retry" >/dev/null
gcs_config '{"outage_s": 0}'

say "an outage of 2 s, shorter than the deadline (30 s): every request waits for the server, nothing fails, exit 0"
for dir in down up; do
    gcs_stats_reset
    if [ "$dir" = down ]; then
        bg cp "gs://$BKT/p" "$T/short" -j 8 --retry-deadline-ms 30000 --report "$T/short-$dir.json"
    else
        bg cp "$T/up-src" "gs://$BKT/short" -j 8 --retry-deadline-ms 30000 --report "$T/short-$dir.json"
    fi
    under_way 300
    gcs_config '{"outage_s": 2}'
    T0=$(date +%s%N)
    wait_job 60
    expect_rc 0
    expect_eq "$dir: report after a 2 s outage: ok, all done, none failed" "[\"ok\", $N, 0]" \
        "$(json_field "$T/short-$dir.json" '[d["outcome"], d["objects"]["done"], d["objects"]["failed"]]')"
    [ "$(gcs_stat 'd["requests_total"]')" -gt $((N + 20)) ] ||
        fail "$dir: requests during the outage" "some requests met the outage and were tried again" "none"
    say "  $dir: exit 0 $MS ms after the outage began"
done
expect_eq "whole files after the outage" "$N" "$(whole "$T/short")"
gcs_objects "$BKT" short/ | python3 -c '
import json, sys
items = [json.loads(l) for l in sys.stdin]
assert len(items) == int(sys.argv[1]) and all(int(o["size"]) == 100 for o in items), len(items)' "$N" ||
    fail "objects uploaded through the outage" "$N objects of 100 bytes" "see above"

say "the token endpoint (a server of its own) dies while the storage server answers: the same, once tokens run out"
# Credentials whose tokens live 2 s come from a second server; sluice talks to the storage server through --endpoint
# (no emulator variable: it sends those tokens). Once that token server is gone, no request can be sent: the job
# judges that outage as a whole instead of failing every object on its own.
RT="1//outage-refresh-token"
GCS_NO_EMULATOR=1 gcs_start --refresh-token "$RT" --client-id cid --client-secret csecret --token-lifetime-s 2
TOKEN_PID=$GCS_PID TOKEN_URI="$GCS/token"
GCS_NO_EMULATOR=1 server
unset STORAGE_EMULATOR_HOST
python3 - "$T/user.json" "$TOKEN_URI" "$RT" <<'PY'
import json, sys
json.dump({"type": "authorized_user", "client_id": "cid", "client_secret": "csecret", "refresh_token": sys.argv[3],
           "token_uri": sys.argv[2]}, open(sys.argv[1], "w"))
PY
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$T/user.json" bg cp "gs://$BKT/p" "$T/tok" --endpoint "$GCS" -j 8 \
    --retry-deadline-ms 3000 --report "$T/tok.json" --failures "$T/tok.failures"
under_way 300
kill "$TOKEN_PID"
wait "$TOKEN_PID" 2>/dev/null || true
T0=$(date +%s%N)
wait_job 30
expect_rc 3
expect_err_one_line
re="^sluice: cp: gs://$BKT/p: server unreachable for [0-9.]+ s \(.*cannot reach the token endpoint "
re+="http://127\.0\.0\.1:[0-9]+/token: .*\); [0-9]+ objects done, 0 failed, [0-9]+ abandoned, .*rerun to resume$"
grep -qE -- "$re" "$ERR" || fail "the message" "one line matching /$re/" "$(cat "$ERR")"
expect_out
# The token in hand lasts up to 2 s after the kill, then the 3 s deadline runs; generous for a loaded machine.
[ "$MS" -ge 2500 ] && [ "$MS" -le 20000 ] || fail "stop after the token endpoint died" "3 to 20 s later" "$MS ms"
expect_eq "report (error, aborted, none failed)" '["error", true, 0]' \
    "$(json_field "$T/tok.json" '[d["outcome"], d["stop"]["aborted"], d["objects"]["failed"]]')"
n=$(whole "$T/tok")
[ "$n" -gt 0 ] && [ "$n" -lt "$N" ] || fail "files copied before the token endpoint died" "some, not all" "$n"
say "  exit 3 $MS ms after the token endpoint died; $n whole files"
export STORAGE_EMULATOR_HOST="127.0.0.1:$GCS_PORT"

say "a server that answers 503 to everything is not unreachable: each object fails by its own retries, past the deadline"
# The outage must last well past the deadline: 90 objects or more still to do when it starts, each failing after 3
# answers of 50 ms, 4 at a time, take over 3 s. Until then every answer takes 500 ms, so that the time this shell needs
# to start the outage once the job is under way (seconds on a loaded machine) costs 8 objects a second at most, where
# answers of 50 ms let the job finish most of its objects before the outage began.
gcs_config '{"outage_s": 0, "delay_ms": 500}'
gcs_seed "{\"bucket\": \"$BKT\", \"count\": 120, \"name_format\": \"few/{:03d}\", \"size\": 10}"
gcs_stats_reset
bg cp "gs://$BKT/few/" "$T/few" -j 4 --retries 2 "${FAST[@]}" --retry-deadline-ms 500 --report "$T/few.json"
under_way 4
gcs_config '{"outage_s": 600, "outage_status": 503, "delay_ms": 50}'
T0=$(date +%s%N)
wait_job 60
gcs_config '{"outage_s": 0, "outage_status": 0, "delay_ms": 0}'
expect_rc 1
grep -q 'unreachable' "$ERR" && fail "503 answers" "not taken for an unreachable server" "$(grep unreachable "$ERR")"
expect_err_contains "HTTP 503"
expect_eq "report: partial, failed == listed - done, nothing abandoned" '["partial", true, false]' \
    "$(json_field "$T/few.json" '[d["outcome"], d["objects"]["failed"] == d["objects"]["listed"] - d["objects"]["done"]
        and d["objects"]["failed"] > 0, d["stop"]["aborted"]]')"
[ "$MS" -gt 1000 ] || fail "the 503s lasted past the deadline (else this case proves nothing)" "> 1000 ms" "$MS ms"
say "  exit 1 after $MS ms of 503 answers (deadline 500 ms); $(json_field "$T/few.json" 'd["objects"]["failed"]') failed"

gcs_finish
