#!/usr/bin/env bash
# Fault injection end to end: every storage-testbench instruction (tests/gcs/README.md) on every kind of request
# sluice makes, each checked against the real binary and the GCS test server:
#   storage.objects.list     ls -r, cp gs:// -> local
#   storage.objects.get      cp gs:// -> local and cat (the media download)
#   storage.objects.insert   cp local -> gs://, one multipart request and a resumable session (--upload-chunk)
#   storage.objects.rewrite  cp gs:// -> gs://
#   storage.objects.delete   rm -r gs://. (The DELETE that cancels a resumable upload session is counted by the
#                            server as storage.objects.insert, and checked below through open_upload_sessions.)
# Retryable answers (408, 429, 500, 503, a reset, a broken stream) must end in the same result as no fault, with
# exactly the requests sluice's design promises (a download resumes at the byte it reached, an upload whose answer
# was lost is not sent twice); non-retryable ones (400, 403, 404) fail that object alone, at once; corrupted data
# is caught by CRC32C and the object tried again; retries that run out fail the object alone with its HTTP status.
# Every case ends with gcs_expect_consumed: the fault was really hit. Commands run with -j 1 so the order in which
# the requests consume the instructions is known.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

BKT=sl-faults
NOOP=stall-for-0s-after-0K # an instruction that changes nothing: puts the next one on a later request
RETRYABLE=(return-503 return-500 return-429 return-408 return-reset-connection)
FATAL=(return-400 return-403 return-404)

python3 - "$T" <<'PY'
import os, random, sys
t = sys.argv[1]
rng = random.Random(7)
def put(path, n):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(rng.randbytes(n))
for name in ("s1", "s2", "s3"):
    put(os.path.join(t, "small", name), 4096)
put(os.path.join(t, "big", "big.bin"), 1 << 20)                # downloads: 1 MiB
put(os.path.join(t, "res", "r.bin"), (1 << 20) + 100 * 1024)   # 256K chunks: start, 4 chunks, the last one
put(os.path.join(t, "res1m", "r.bin"), 5 * 512 * 1024)         # 1M chunks: start, 2 chunks, the last one
PY

# --verbose: the server logs each request with its status and body size, which shows where a download resumed.
gcs_start --bucket "$BKT" --verbose
GLOG="${GCS_LOGS[-1]}"
run "$SLUICE" cp "$T/small" "gs://$BKT/small" -q
expect_rc 0
run "$SLUICE" cp "$T/big" "gs://$BKT/big" -q
expect_rc 0
gcs_seed "{\"bucket\": \"$BKT\", \"count\": 30, \"name_format\": \"list/{:04d}\", \"size\": 10}"
gcs_objects "$BKT" list/ | python3 -c 'import json, sys
for l in sys.stdin: print(json.loads(l)["name"][len("list/"):])' >"$T/list.want"

# About a hundred cases: the helpers below read the server's JSON with grep and sed rather than a Python start each.
CASE=0
# rt METHOD INSTRUCTION...: a new retry test; sets ID and HDR (the header that applies it), resets the counters
rt() {
    local m=$1 j
    shift
    j=$(printf '"%s",' "$@")
    ID=$(gcs_api POST /retry_test "{\"instructions\": {\"$m\": [${j%,}]}}" | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p')
    [ -n "$ID" ] || fail "creating a retry test for $m" "an id" "none"
    HDR=(--header "x-retry-test-id: $ID")
    CASE=$((CASE + 1))
    gcs_stats_reset
    LOG_AT=$(wc -l <"$GLOG")
    T0=$(date +%s%N)
}
elapsed_ms() { echo $((($(date +%s%N) - T0) / 1000000)); }
stat_int() { # stat_int KEY: an integer from /_stats ("storage.objects.get" is looked up in "requests"), 0 if absent
    local v
    v=$(gcs_api GET /_stats | grep -o "\"$1\": *[0-9]*" | sed 's/.*: *//')
    echo "${v:-0}"
}
stat_prefix() { gcs_api GET "/storage/v1/b/$BKT/o?prefix=$1" | { grep -o '"name"' || true; } | wc -l; } # objects
expect_requests() { expect_eq "$1 requests ($2)" "$3" "$(stat_int "$1")"; }
log_since() { tail -n +"$((LOG_AT + 1))" "$GLOG"; }

same_dir() { # same_dir WANT GOT
    diff -r "$1" "$2" >/dev/null || fail "files in $2" "the same files and bytes as $1" "$(diff -rq "$1" "$2" | head -5)"
    no_tmp_files "$2"
}

server_has() { # server_has PREFIX DIR: the objects under PREFIX are exactly DIR's files (names, sizes, MD5)
    python3 - "$GCS" "$BKT" "$1" "$2" <<'PY' || fail "objects under gs://$BKT/$1" "the files of $2" "see above"
import base64, hashlib, json, os, sys, urllib.parse, urllib.request
base, bucket, prefix, root = sys.argv[1:5]
url = "%s/storage/v1/b/%s/o?%s" % (base, bucket, urllib.parse.urlencode({"prefix": prefix}))
page = json.load(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url))
objs = {o["name"]: o for o in page.get("items", [])}
want = {prefix + f: open(os.path.join(root, f), "rb").read() for f in os.listdir(root)}
assert sorted(objs) == sorted(want), ("names", sorted(objs), sorted(want))
for name, data in want.items():
    o = objs[name]
    assert int(o["size"]) == len(data), (name, "size")
    assert o["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode(), (name, "md5")
PY
}

# After a failure of one of the three small objects: exactly one FAILED line, naming MESSAGE; the summary counts
# 2 done, 1 failed; exit 1. Sets FAILED_KEY.
expect_one_failed() { # expect_one_failed MESSAGE
    expect_rc 1
    local n
    n=$(grep -c ': FAILED ' "$ERR" || true)
    expect_eq "FAILED lines" 1 "$n"
    expect_err_contains "$1"
    expect_err_contains "2 done (0 skipped), 1 failed of 3 objects"
    FAILED_KEY=$(sed -n 's/^sluice: cp: FAILED \([^:]*\):.*/\1/p' "$ERR")
    case "$FAILED_KEY" in s1 | s2 | s3) ;; *) fail "the failed key" "one of s1 s2 s3" "'$FAILED_KEY'" ;; esac
}

# The two small objects that did not fail arrived in DIR, the failed one is absent, no temp file is left.
expect_others_local() { # expect_others_local DIR
    local k
    for k in s1 s2 s3; do
        if [ "$k" = "$FAILED_KEY" ]; then
            [ ! -e "$1/$k" ] || fail "the failed object $k" "no file at $1/$k" "a file is there"
        else
            cmp -s "$T/small/$k" "$1/$k" || fail "object $k (did not fail)" "copied byte for byte to $1" "missing or different"
        fi
    done
    no_tmp_files "$1"
}

expect_others_server() { # expect_others_server PREFIX
    mkdir -p "$T/want$CASE"
    local k
    for k in s1 s2 s3; do [ "$k" = "$FAILED_KEY" ] || cp "$T/small/$k" "$T/want$CASE/"; done
    server_has "$1" "$T/want$CASE"
}

# ---- storage.objects.list ----

for f in "${RETRYABLE[@]}" return-broken-stream return-broken-stream-after-1K; do
    say "list, $f: ls -r retries the page and prints the whole listing once"
    rt storage.objects.list "$f"
    run "$SLUICE" ls -r "gs://$BKT/list/" "${FAST[@]}" "${HDR[@]}"
    expect_rc 0
    expect_err_empty
    expect_out_file "$T/list.want"
    expect_requests storage.objects.list "$f" 2
    gcs_expect_consumed "$ID"
done

say "list, stall-for-1s-after-0K: a 1 s pause is waited out (sluice's stall timeout is 60 s), no second request"
rt storage.objects.list stall-for-1s-after-0K
run "$SLUICE" ls -r "gs://$BKT/list/" "${FAST[@]}" "${HDR[@]}"
expect_rc 0
expect_out_file "$T/list.want"
expect_requests storage.objects.list stall 1
ms=$(elapsed_ms)
[ "$ms" -ge 1000 ] || fail "ls -r through a 1 s stall: elapsed time" ">= 1000 ms (the stall happened)" "$ms ms"
gcs_expect_consumed "$ID"

for f in "${FATAL[@]}"; do
    say "list, $f: ls fails at once (exit 3, one line naming the error), no retry"
    rt storage.objects.list "$f"
    run "$SLUICE" ls -r "gs://$BKT/list/" "${FAST[@]}" "${HDR[@]}"
    expect_rc 3
    expect_out
    if [ "$f" = return-404 ]; then
        expect_err_one_line "gs://$BKT: no such bucket"
    else
        expect_err_one_line "HTTP ${f#return-}"
    fi
    expect_requests storage.objects.list "$f" 1
    gcs_expect_consumed "$ID"
done

say "list, return-503 during cp gs:// -> local: the copy completes"
rt storage.objects.list return-503
run "$SLUICE" cp "gs://$BKT/small/" "$T/l$CASE" -j 1 "${FAST[@]}" "${HDR[@]}"
expect_rc 0
same_dir "$T/small" "$T/l$CASE"
expect_requests storage.objects.list return-503 2
gcs_expect_consumed "$ID"

say "list, return-403 during cp gs:// -> local: the job cannot run (exit 3), nothing is written"
rt storage.objects.list return-403
run "$SLUICE" cp "gs://$BKT/small/" "$T/l$CASE" -j 1 "${FAST[@]}" "${HDR[@]}"
expect_rc 3
expect_err_contains "HTTP 403"
expect_requests storage.objects.list return-403 1
[ -z "$(ls -A "$T/l$CASE" 2>/dev/null)" ] || fail "cp after a failed listing" "no file written" "$(ls -A "$T/l$CASE")"
gcs_expect_consumed "$ID"

# ---- storage.objects.get: the media download ----
# cp of "gs://.../big/" (a prefix, ending in '/') lists once and downloads big.bin: the instructions go to the
# downloads alone.

dl() { # dl INSTRUCTION...: cp gs://BKT/big/ -> $T/d$CASE with the instructions on storage.objects.get
    rt storage.objects.get "$@"
    run "$SLUICE" cp "gs://$BKT/big/" "$T/d$CASE" -j 1 "${FAST[@]}" "${HDR[@]}"
}

for f in "${RETRYABLE[@]}"; do
    say "get, $f: the download is tried again and the file is byte-identical"
    dl "$f"
    expect_rc 0
    same_dir "$T/big" "$T/d$CASE"
    expect_requests storage.objects.get "$f" 2
    gcs_expect_consumed "$ID"
done

for f in return-broken-stream:524288 return-broken-stream-after-256K:262144; do
    cut=${f#*:}
    f=${f%:*}
    say "get, $f: the download resumes at byte $cut (a 206 for the rest), the file is byte-identical"
    dl "$f"
    expect_rc 0
    same_dir "$T/big" "$T/d$CASE"
    expect_requests storage.objects.get "$f" 2
    # The second request asked for the rest only: its answer is a 206 of (1 MiB - cut) bytes, not the whole object.
    log_since | grep -q "alt=media.* 206 $((1048576 - cut))\$" ||
        fail "resumed download after $f" "a 206 answer of $((1048576 - cut)) bytes in the server log" \
            "$(log_since | grep alt=media)"
    gcs_expect_consumed "$ID"
done

say "get, stall-for-1s-after-256K: the download waits the stall out, one request, byte-identical"
dl stall-for-1s-after-256K
expect_rc 0
same_dir "$T/big" "$T/d$CASE"
expect_requests storage.objects.get stall 1
ms=$(elapsed_ms)
[ "$ms" -ge 1000 ] || fail "download through a 1 s stall: elapsed time" ">= 1000 ms (the stall happened)" "$ms ms"
gcs_expect_consumed "$ID"

for n in 1 2; do
    say "get, return-corrupted-data x$n: CRC32C catches it, the object is read again, byte-identical"
    faults=()
    for ((i = 0; i < n; i++)); do faults+=(return-corrupted-data); done
    dl "${faults[@]}"
    expect_rc 0
    same_dir "$T/big" "$T/d$CASE"
    expect_requests storage.objects.get "corrupted x$n" $((n + 1))
    gcs_expect_consumed "$ID"
done

say "get, return-corrupted-data on every attempt (3): that object FAILED, no file under its name, no temp file"
rt storage.objects.get return-corrupted-data return-corrupted-data return-corrupted-data
run "$SLUICE" cp "gs://$BKT/small/" "$T/d$CASE" -j 1 "${FAST[@]}" "${HDR[@]}"
expect_one_failed "CRC32C mismatch"
expect_others_local "$T/d$CASE"
expect_requests storage.objects.get "3 corrupted attempts, then 2 objects" 5
gcs_expect_consumed "$ID"

for f in "${FATAL[@]}"; do
    say "get, $f: that object fails at once (no retry, HTTP ${f#return-} named), the others are copied"
    rt storage.objects.get "$f"
    run "$SLUICE" cp "gs://$BKT/small/" "$T/d$CASE" -j 1 "${FAST[@]}" "${HDR[@]}"
    expect_one_failed "HTTP ${f#return-}"
    expect_others_local "$T/d$CASE"
    expect_requests storage.objects.get "$f: one per object" 3
    gcs_expect_consumed "$ID"
done

say "get, retries exhausted (--retries 2, 5 x return-503): one object fails naming HTTP 503, the others are copied"
rt storage.objects.get return-503 return-503 return-503 return-503 return-503
run "$SLUICE" cp "gs://$BKT/small/" "$T/d$CASE" -j 1 --retries 2 "${FAST[@]}" "${HDR[@]}"
expect_one_failed "HTTP 503"
expect_others_local "$T/d$CASE"
# 3 attempts for the object that failed, 2 x 503 and a success for the next one, 1 for the last one.
expect_requests storage.objects.get "retries exhausted" 7
gcs_expect_consumed "$ID"

# cat first looks the URL up (objects.get of the metadata); the NOOP lets that request through.
say "cat, return-broken-stream-after-256K on the download: resumes, stdout byte-identical"
rt storage.objects.get "$NOOP" return-broken-stream-after-256K
run "$SLUICE" cat "gs://$BKT/big/big.bin" "${FAST[@]}" "${HDR[@]}"
expect_rc 0
expect_err_empty
expect_out_file "$T/big/big.bin"
expect_requests storage.objects.get "lookup, broken download, rest" 3
log_since | grep -q "alt=media.* 206 786432\$" || fail "cat resumed" "a 206 of 786432 bytes" "$(log_since | grep alt=media)"
gcs_expect_consumed "$ID"

for f in return-503 return-reset-connection; do
    say "cat, $f on the download: stdout byte-identical"
    rt storage.objects.get "$NOOP" "$f"
    run "$SLUICE" cat "gs://$BKT/big/big.bin" "${FAST[@]}" "${HDR[@]}"
    expect_rc 0
    expect_out_file "$T/big/big.bin"
    expect_requests storage.objects.get "lookup, $f, download" 3
    gcs_expect_consumed "$ID"
done

say "cat, return-corrupted-data: the bytes already went to stdout, so cat exits 3 naming the CRC32C mismatch"
rt storage.objects.get "$NOOP" return-corrupted-data
run "$SLUICE" cat "gs://$BKT/big/big.bin" "${FAST[@]}" "${HDR[@]}"
expect_rc 3
expect_err_one_line "CRC32C mismatch"
gcs_expect_consumed "$ID"

say "cat, return-403 on the download: exit 3, one line naming HTTP 403, one request"
rt storage.objects.get "$NOOP" return-403
run "$SLUICE" cat "gs://$BKT/big/big.bin" "${FAST[@]}" "${HDR[@]}"
expect_rc 3
expect_out
expect_err_one_line "HTTP 403"
expect_requests storage.objects.get "lookup, 403" 2
gcs_expect_consumed "$ID"

say "cp of one object's URL, return-403 on its lookup: exit 3 naming HTTP 403 (not an empty listing), nothing written"
rt storage.objects.get return-403
run "$SLUICE" cp "gs://$BKT/big/big.bin" "$T/one$CASE" "${FAST[@]}" "${HDR[@]}"
expect_rc 3
expect_err_one_line "HTTP 403"
[ -z "$(ls -A "$T/one$CASE" 2>/dev/null)" ] || fail "cp after a failed lookup" "no file written" "$(ls -A "$T/one$CASE")"
gcs_expect_consumed "$ID"

say "cp of one object's URL, retries exhausted on its lookup (--retries 1, 2 x return-503): exit 3 naming HTTP 503"
rt storage.objects.get return-503 return-503
run "$SLUICE" cp "gs://$BKT/big/big.bin" "$T/one$CASE" --retries 1 "${FAST[@]}" "${HDR[@]}"
expect_rc 3
expect_err_one_line "HTTP 503"
gcs_expect_consumed "$ID"

# ---- storage.objects.insert, one multipart request per object ----

up() { # up INSTRUCTION...: cp $T/small -> gs://BKT/u$CASE/ with the instructions on storage.objects.insert
    rt storage.objects.insert "$@"
    run "$SLUICE" cp "$T/small" "gs://$BKT/u$CASE/" -j 1 "${FAST[@]}" "${HDR[@]}"
}

for f in "${RETRYABLE[@]}"; do
    say "insert (multipart), $f: the upload is sent again, every object lands intact"
    up "$f"
    expect_rc 0
    server_has "u$CASE/" "$T/small"
    expect_requests storage.objects.insert "$f" 4
    gcs_expect_consumed "$ID"
done

for f in return-broken-stream return-broken-stream-after-0K; do
    say "insert (multipart), $f: the object landed but the answer broke; sluice sees it landed and does not resend"
    up "$f"
    expect_rc 0
    server_has "u$CASE/" "$T/small"
    expect_requests storage.objects.insert "$f" 3
    gcs_expect_consumed "$ID"
done

say "insert (multipart), stall-for-1s-after-1K: the server stops reading for 1 s; one request, intact"
up stall-for-1s-after-1K
expect_rc 0
server_has "u$CASE/" "$T/small"
expect_requests storage.objects.insert stall 3
ms=$(elapsed_ms)
[ "$ms" -ge 1000 ] || fail "upload through a 1 s stall: elapsed time" ">= 1000 ms (the stall happened)" "$ms ms"
gcs_expect_consumed "$ID"

say "insert (multipart), return-corrupted-data: the server refuses the bad CRC32C, sluice sends the object again"
up return-corrupted-data
expect_rc 0
server_has "u$CASE/" "$T/small"
expect_requests storage.objects.insert corrupted 4
gcs_expect_consumed "$ID"

say "insert (multipart), return-corrupted-data on every attempt (3): that object FAILED, nothing stored for it"
up return-corrupted-data return-corrupted-data return-corrupted-data
expect_one_failed "doesn't match calculated CRC32C"
expect_others_server "u$CASE/"
expect_requests storage.objects.insert "3 corrupted attempts, then 2 objects" 5
gcs_expect_consumed "$ID"

for f in "${FATAL[@]}"; do
    say "insert (multipart), $f: that object fails at once (HTTP ${f#return-} named), the others land"
    up "$f"
    expect_one_failed "HTTP ${f#return-}"
    expect_others_server "u$CASE/"
    expect_requests storage.objects.insert "$f: one per object" 3
    gcs_expect_consumed "$ID"
done

say "insert (multipart), retries exhausted (--retries 2, 5 x return-503): one object fails naming HTTP 503"
rt storage.objects.insert return-503 return-503 return-503 return-503 return-503
run "$SLUICE" cp "$T/small" "gs://$BKT/u$CASE/" -j 1 --retries 2 "${FAST[@]}" "${HDR[@]}"
expect_one_failed "HTTP 503"
expect_others_server "u$CASE/"
expect_requests storage.objects.insert "retries exhausted" 7
gcs_expect_consumed "$ID"

# ---- storage.objects.insert, resumable ----
# r.bin is 1 MiB + 100 KiB; with --upload-chunk 256K it takes 6 requests: the session start (#0), four 256 KiB
# chunks (#1-#4, each answered 308) and the last chunk (#5, 200). "at #N" puts the fault on request N.

sessions() { stat_int open_upload_sessions; }

resumable() { # resumable POS INSTRUCTION...: cp $T/res with the instructions at request POS of the session
    local pos=$1 i
    shift
    local faults=()
    for ((i = 0; i < pos; i++)); do faults+=("$NOOP"); done
    SESSIONS_BEFORE=$(sessions)
    rt storage.objects.insert "${faults[@]}" "$@"
    run "$SLUICE" cp "$T/res" "gs://$BKT/r$CASE/" -j 1 --upload-chunk 256K "${FAST[@]}" "${HDR[@]}"
}

say "insert (resumable), no fault: 6 requests (a session, not one multipart request)"
resumable 0 "$NOOP"
expect_rc 0
server_has "r$CASE/" "$T/res"
expect_requests storage.objects.insert "no fault" 6
gcs_expect_consumed "$ID"

for pos in 0 2 5; do
    for f in "${RETRYABLE[@]}"; do
        # A failed start is repeated (7); a failed chunk costs a status query and the chunk again (8). A reset on
        # a chunk is the exception: the chunk goes over a reused connection that died before any answer byte, and
        # libcurl itself sends such a request again on a new connection (its "Connection died, retrying a fresh
        # connect"), before sluice sees an error (7). The start is the first request of its connection: sluice's
        # own retry handles the reset there.
        want=8
        [ "$pos" != 0 ] && [ "$f" != return-reset-connection ] || want=7
        say "insert (resumable), $f at #$pos: the upload completes intact"
        resumable "$pos" "$f"
        expect_rc 0
        server_has "r$CASE/" "$T/res"
        expect_requests storage.objects.insert "$f at #$pos" "$want"
        gcs_expect_consumed "$ID"
    done
    say "insert (resumable), return-broken-stream at #$pos: the request took effect, the answer broke; completes"
    resumable "$pos" return-broken-stream
    expect_rc 0
    server_has "r$CASE/" "$T/res"
    # #0: a second session is started. #2: the status query says the chunk is persisted. #5: it says the upload
    # is complete. Either way one request more, and nothing is sent twice.
    expect_requests storage.objects.insert "broken stream at #$pos" 7
    gcs_expect_consumed "$ID"
done

say "insert (resumable), stall-for-1s-after-64K at #2: the chunk waits the stall out; intact, no extra request"
resumable 2 stall-for-1s-after-64K
expect_rc 0
server_has "r$CASE/" "$T/res"
expect_requests storage.objects.insert "stall at #2" 6
gcs_expect_consumed "$ID"

say "insert (resumable), return-corrupted-data at #2: the final CRC32C check refuses the upload, it is sent again"
resumable 2 return-corrupted-data
expect_rc 0
server_has "r$CASE/" "$T/res"
# 6 requests for the refused session, 1 DELETE cancelling it (no retry-test header: not an instruction), 6 more.
expect_requests storage.objects.insert "corrupted at #2" 13
expect_eq "open upload sessions after the upload" "$SESSIONS_BEFORE" "$(sessions)"
gcs_expect_consumed "$ID"

say "insert (resumable), corrupted data in every attempt (3): FAILED, nothing stored, no session left open"
bad=("$NOOP" "$NOOP" return-corrupted-data "$NOOP" "$NOOP" "$NOOP")
resumable 0 "${bad[@]}" "${bad[@]}" "${bad[@]}"
expect_rc 1
expect_err_contains "FAILED r.bin"
expect_err_contains "doesn't match calculated CRC32C"
expect_eq "objects under r$CASE/" 0 "$(stat_prefix "r$CASE/")"
expect_eq "open upload sessions after the failure" "$SESSIONS_BEFORE" "$(sessions)"
gcs_expect_consumed "$ID"

for pos in 0 2 5; do
    for f in "${FATAL[@]}"; do
        say "insert (resumable), $f at #$pos: FAILED at once naming HTTP ${f#return-}, nothing stored, session cancelled"
        resumable "$pos" "$f"
        expect_rc 1
        expect_err_contains "FAILED r.bin"
        expect_err_contains "HTTP ${f#return-}"
        expect_eq "objects under r$CASE/" 0 "$(stat_prefix "r$CASE/")"
        expect_eq "open upload sessions after the failure" "$SESSIONS_BEFORE" "$(sessions)"
        # The failed request, the ones before it, and (after a session started) the DELETE that cancels it.
        want=$((pos + 1))
        [ "$pos" = 0 ] || want=$((pos + 2))
        expect_requests storage.objects.insert "$f at #$pos" "$want"
        gcs_expect_consumed "$ID"
    done
done

say "insert (resumable), return-503-after-512K on a 1 MiB chunk: half is persisted, the upload resumes, intact"
rt storage.objects.insert "$NOOP" return-503-after-512K
run "$SLUICE" cp "$T/res1m" "gs://$BKT/r$CASE/" -j 1 --upload-chunk 1M "${FAST[@]}" "${HDR[@]}"
expect_rc 0
server_has "r$CASE/" "$T/res1m"
# start, chunk 1 (503), status query (308 bytes=0-524287), the rest of chunk 1, chunk 2, the last chunk.
expect_requests storage.objects.insert "503 after 512K" 6
gcs_expect_consumed "$ID"

say "insert (resumable), retries exhausted at #2 (--retries 2, 3 x return-503 on the chunk and its re-sends)"
SESSIONS_BEFORE=$(sessions)
# The chunk (#2), the status query, the chunk again, the query, the chunk a third time: each chunk try fails.
rt storage.objects.insert "$NOOP" "$NOOP" return-503 "$NOOP" return-503 "$NOOP" return-503
run "$SLUICE" cp "$T/res" "gs://$BKT/r$CASE/" -j 1 --retries 2 --upload-chunk 256K "${FAST[@]}" "${HDR[@]}"
expect_rc 1
expect_err_contains "FAILED r.bin"
expect_err_contains "HTTP 503"
expect_eq "objects under r$CASE/" 0 "$(stat_prefix "r$CASE/")"
expect_eq "open upload sessions after the failure" "$SESSIONS_BEFORE" "$(sessions)"
gcs_expect_consumed "$ID"

# ---- storage.objects.rewrite: cp gs:// -> gs:// ----

rw() { # rw INSTRUCTION...: cp gs://BKT/small/ -> gs://BKT/c$CASE/ with the instructions on objects.rewrite
    rt storage.objects.rewrite "$@"
    run "$SLUICE" cp "gs://$BKT/small/" "gs://$BKT/c$CASE/" -j 1 "${FAST[@]}" "${HDR[@]}"
}

# return-corrupted-data is left out: it changes media and uploaded data only, a rewrite answer carries neither.
for f in "${RETRYABLE[@]}" return-broken-stream return-broken-stream-after-0K; do
    say "rewrite, $f: the rewrite is repeated (it is idempotent), every copy is intact"
    rw "$f"
    expect_rc 0
    server_has "c$CASE/" "$T/small"
    expect_requests storage.objects.rewrite "$f" 4
    expect_requests storage.objects.insert "$f (server-side copy)" 0
    gcs_expect_consumed "$ID"
done

say "rewrite, stall-for-1s-after-0K: waited out, one request per object"
rw stall-for-1s-after-0K
expect_rc 0
server_has "c$CASE/" "$T/small"
expect_requests storage.objects.rewrite stall 3
gcs_expect_consumed "$ID"

for f in "${FATAL[@]}"; do
    say "rewrite, $f: that object fails at once (HTTP ${f#return-} named), the others are copied"
    rw "$f"
    expect_one_failed "HTTP ${f#return-}"
    expect_others_server "c$CASE/"
    expect_requests storage.objects.rewrite "$f: one per object" 3
    gcs_expect_consumed "$ID"
done

say "rewrite, retries exhausted (--retries 2, 5 x return-503): one object fails naming HTTP 503"
rt storage.objects.rewrite return-503 return-503 return-503 return-503 return-503
run "$SLUICE" cp "gs://$BKT/small/" "gs://$BKT/c$CASE/" -j 1 --retries 2 "${FAST[@]}" "${HDR[@]}"
expect_one_failed "HTTP 503"
expect_others_server "c$CASE/"
expect_requests storage.objects.rewrite "retries exhausted" 7
gcs_expect_consumed "$ID"

# ---- storage.objects.delete ----

# rmf INSTRUCTION...: 3 fresh objects under del$CASE/, then rm -r of them with the instructions on delete
rmf() {
    rt storage.objects.delete "$@"
    gcs_seed "{\"bucket\": \"$BKT\", \"count\": 3, \"name_format\": \"del$CASE/s{:d}\", \"size\": 100}"
    gcs_stats_reset
    run "$SLUICE" rm -r "gs://$BKT/del$CASE/" -j 1 "${FAST[@]}" "${HDR[@]}"
}
left() { stat_prefix "del$CASE/"; }

for f in "${RETRYABLE[@]}"; do
    say "delete, $f: the delete is tried again; every object is gone, exit 0"
    rmf "$f"
    expect_rc 0
    expect_eq "objects left" 0 "$(left)"
    expect_requests storage.objects.delete "$f" 4
    gcs_expect_consumed "$ID"
done

for f in return-broken-stream return-broken-stream-after-0K; do
    say "delete, $f: the answer is lost; the retry finds the object gone or deletes it; all gone, exit 0"
    rmf "$f"
    expect_rc 0
    expect_eq "objects left" 0 "$(left)"
    gcs_expect_consumed "$ID"
done

say "delete, stall-for-1s-after-0K: waited out; all gone, one request per object"
rmf stall-for-1s-after-0K
expect_rc 0
expect_eq "objects left" 0 "$(left)"
expect_requests storage.objects.delete stall 3
gcs_expect_consumed "$ID"

for f in "${FATAL[@]}"; do
    say "delete, $f: that object fails at once naming HTTP ${f#return-}, the other two are deleted, exit 1"
    rmf "$f"
    expect_rc 1
    expect_eq "FAILED lines" 1 "$(grep -c ': FAILED ' "$ERR" || true)"
    expect_err_contains "HTTP ${f#return-}"
    expect_err_contains "2 done (0 skipped), 1 failed of 3 objects"
    expect_eq "objects left (the failed one)" 1 "$(left)"
    expect_requests storage.objects.delete "$f: one per object" 3
    gcs_expect_consumed "$ID"
done

say "delete, retries exhausted (--retries 2, 5 x return-503): one object fails naming HTTP 503, exit 1"
rt storage.objects.delete return-503 return-503 return-503 return-503 return-503
gcs_seed "{\"bucket\": \"$BKT\", \"count\": 3, \"name_format\": \"del$CASE/s{:d}\", \"size\": 100}"
gcs_stats_reset
run "$SLUICE" rm -r "gs://$BKT/del$CASE/" -j 1 --retries 2 "${FAST[@]}" "${HDR[@]}"
expect_rc 1
expect_err_contains "HTTP 503"
expect_eq "objects left (the failed one)" 1 "$(left)"
expect_requests storage.objects.delete "retries exhausted" 7
gcs_expect_consumed "$ID"

# ---- a large download broken mid-stream ----
say "get, 100 MiB object, return-broken-stream-after-51200K: resumes at byte 52428800 (one 206 for the other half,
#      nothing downloaded twice), the file is byte-identical"
gcs_seed "{\"bucket\": \"$BKT\", \"count\": 1, \"name_format\": \"huge/h.bin\", \"size\": 104857600}"
rt storage.objects.get return-broken-stream-after-51200K
run "$SLUICE" cp "gs://$BKT/huge/" "$T/h$CASE" -j 1 "${FAST[@]}" "${HDR[@]}" --report "$T/h$CASE.json"
expect_rc 0
want=$(python3 -c 'import hashlib
d = b"huge/h.bin\n"
n = 104857600
print(hashlib.md5((d * (n // len(d) + 1))[:n]).hexdigest())')
got=$(md5sum "$T/h$CASE/h.bin" | cut -d' ' -f1)
expect_eq "md5 of the resumed 100 MiB download" "$want" "$got"
expect_requests storage.objects.get "100 MiB broken once" 2
log_since | grep -q "alt=media.* 206 52428800\$" ||
    fail "resumed 100 MiB download" "a 206 answer of 52428800 bytes (the second half only)" \
        "$(log_since | grep alt=media)"
read_bytes=$(json_field "$T/h$CASE.json" 'd["bytes"]["read"]' 2>/dev/null || echo "?")
[ "$read_bytes" = 104857600 ] ||
    fail "bytes read by the resumed download (report bytes.read)" "104857600: each byte once" "$read_bytes"
no_tmp_files "$T/h$CASE"
gcs_expect_consumed "$ID"

gcs_finish
