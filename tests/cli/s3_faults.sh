#!/usr/bin/env bash
# s3:// under faults, through the S3 test server's fault instructions: throttling (503 SlowDown), 500s, resets and
# 400 RequestTimeout are retried; a download broken in the middle resumes at the byte it reached, pinned to the ETag
# it started with (If-Match), and a replaced object is not mixed in; an upload whose bytes were damaged on the way
# (BadDigest) is sent again; a multipart part is retried alone; a CompleteMultipartUpload answered 200 with an
# <Error> body is not taken for success; ExpiredToken refreshes the credentials once; a 301 to the bucket's region is
# followed; a server that stops answering ends the job with exit 3; a server that answers 403 fails in one line.
# Servers that misbehave (bucket modes): answers cut short or padded are never committed, a Range answered 200 still
# gives the bytes asked for (also when resuming), and listings that cycle through their tokens, sort by UTF-16, repeat
# or reverse pages or ignore the prefix stop with exit 3.
set -euo pipefail
. "$(dirname "$0")/s3_lib.sh"

s3_start --bucket sl-f --bucket sl-eu@eu-west-1 --min-part-size 1
head -c 700000 /dev/urandom >"$T/big"
printf 'small object\n' >"$T/small"
mkdir -p "$T/tree"
for i in 1 2 3 4 5; do head -c $((i * 1000)) /dev/urandom >"$T/tree/f$i"; done
run "$SLUICE" cp "$T/big" s3://sl-f/obj/
expect_rc 0
run "$SLUICE" cp "$T/small" s3://sl-f/obj/
expect_rc 0
fast=(--retry-initial-ms 10 --retry-max-ms 50)

say "503 SlowDown, 500 InternalError, a reset and 400 RequestTimeout on GetObject: retried, the bytes are right"
id=$(s3_retry_test '{"s3.GetObject": ["return-503-slowdown", "return-500-internal", "return-reset-connection",
    "return-400-request-timeout"]}')
run "$SLUICE" cat s3://sl-f/obj/big --header "x-retry-test-id: $id" "${fast[@]}"
expect_rc 0
expect_out_file "$T/big"
s3_expect_consumed "$id"

say "a download broken mid-stream resumes at the byte it reached (a Range with If-Match)"
s3_stats_reset
id=$(s3_retry_test '{"s3.GetObject": ["return-broken-stream-after-200K", "return-broken-stream-after-100K"]}')
run "$SLUICE" cat s3://sl-f/obj/big --header "x-retry-test-id: $id" "${fast[@]}"
expect_rc 0
expect_out_file "$T/big"
s3_expect_consumed "$id"
expect_eq "GetObject requests (1 + 2 resumes)" 3 "$(s3_requests s3.GetObject)"

say "retries run out: exit 3 for cat, one line naming the object and S3's code"
id=$(s3_retry_test '{"s3.GetObject": ["return-503-slowdown", "return-503-slowdown", "return-503-slowdown"]}')
run "$SLUICE" cat s3://sl-f/obj/small --header "x-retry-test-id: $id" --retries 2 "${fast[@]}"
expect_rc 3
expect_err_one_line "s3://sl-f/obj/small: SlowDown: Please reduce your request rate."

say "PutObject: 503, a reset, then bytes damaged on the way (BadDigest): sent again until it lands"
id=$(s3_retry_test '{"s3.PutObject": ["return-503", "return-reset-connection", "return-corrupted-data"]}')
run "$SLUICE" cp "$T/tree" s3://sl-f/put --header "x-retry-test-id: $id" "${fast[@]}" -j 1
expect_rc 0
s3_expect_consumed "$id"
run "$SLUICE" cp s3://sl-f/put "$T/put-back"
diff -r "$T/tree" "$T/put-back" >/dev/null || fail "uploads under faults" "the tree read back" "a difference"

say "a PutObject whose answer was lost but which landed is not sent twice over someone's object"
s3_stats_reset
id=$(s3_retry_test '{"s3.PutObject": ["reset-then-execute-after-0s"]}')
run "$SLUICE" cp "$T/small" s3://sl-f/lost/ --header "x-retry-test-id: $id" "${fast[@]}"
expect_rc 0
s3_expect_consumed "$id"
run "$SLUICE" cat s3://sl-f/lost/small
expect_out_file "$T/small"

say "multipart: a failing part is retried alone; a 200 with <Error> to Complete is not success"
s3_stats_reset
id=$(s3_retry_test '{"s3.UploadPart": ["pass", "return-503", "return-reset-connection"],
    "s3.CompleteMultipartUpload": ["return-200-error"]}')
run "$SLUICE" cp "$T/big" s3://sl-f/mp/ --upload-chunk 256K --header "x-retry-test-id: $id" "${fast[@]}"
expect_rc 0
s3_expect_consumed "$id"
expect_eq "UploadPart requests (3 parts, 2 retried)" 5 "$(s3_requests s3.UploadPart)"
expect_eq "CompleteMultipartUpload requests" 2 "$(s3_requests s3.CompleteMultipartUpload)"
expect_eq "open uploads" 0 "$(s3_stat 'd["open_multipart_uploads"]')"
run "$SLUICE" cat s3://sl-f/mp/big
expect_out_file "$T/big"

say "multipart that fails for good is aborted: no upload left open, no object made"
id=$(s3_retry_test '{"s3.UploadPart": ["pass", "return-403"]}')
run "$SLUICE" cp "$T/big" s3://sl-f/mpfail/ --upload-chunk 256K --header "x-retry-test-id: $id" "${fast[@]}"
expect_rc 1
expect_err_contains "AccessDenied"
expect_eq "open uploads" 0 "$(s3_stat 'd["open_multipart_uploads"]')"
expect_eq "objects under mpfail/" "" "$(s3_objects sl-f mpfail/)"

say "truncate-upload: an object stored short is not accepted (its CRC32C is not the bytes sent), and sent again"
id=$(s3_retry_test '{"s3.PutObject": ["truncate-upload"]}')
run "$SLUICE" cp "$T/small" s3://sl-f/trunc/ --header "x-retry-test-id: $id" "${fast[@]}"
expect_rc 0
s3_expect_consumed "$id"
run "$SLUICE" cat s3://sl-f/trunc/small
expect_out_file "$T/small"

say "a bucket in another region: the 301 (x-amz-bucket-region) is followed once"
run "$SLUICE" cp "$T/tree" s3://sl-eu/t
expect_rc 0
run "$SLUICE" ls s3://sl-eu/t
expect_rc 0
expect_out f1 f2 f3 f4 f5
s3_config '{"wrong_region": "malformed"}'
run "$SLUICE" cat s3://sl-eu/t/f1
expect_rc 0
expect_out_file "$T/tree/f1"
s3_config '{"wrong_region": "redirect"}'

say "ExpiredToken: the credentials are fetched again once (container credentials), the request retried"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    export AWS_CONTAINER_CREDENTIALS_FULL_URI="$S3_META/container/creds"
    s3_stats_reset
    id=$(s3_retry_test '{"s3.GetObject": ["return-400-expired-token"]}')
    run "$SLUICE" cat s3://sl-f/obj/small --header "x-retry-test-id: $id"
    expect_rc 0
    expect_out_file "$T/small"
    s3_expect_consumed "$id"
    expect_eq "credentials issued" 2 "$(s3_stat 'd["credentials_issued"]["container"]')"
)

say "403 AccessDenied: one line, no retry, exit 1 for the object"
s3_stats_reset
id=$(s3_retry_test '{"s3.GetObject": ["return-403"]}')
run "$SLUICE" cp s3://sl-f/obj/small "$T/denied/" --header "x-retry-test-id: $id" "${fast[@]}"
expect_rc 1
expect_err_contains "AccessDenied"
expect_eq "GetObject requests" 1 "$(s3_requests s3.GetObject)"

say "a server that stops answering: the job stops after --retry-deadline-ms, exit 3"
s3_config '{"outage_s": 30}'
run "$SLUICE" cp "$T/tree" s3://sl-f/outage --retry-deadline-ms 1500 "${fast[@]}"
expect_rc 3
expect_err_contains "unreachable"
s3_config '{"outage_s": 0}'

say "a wrong secret: SignatureDoesNotMatch in one line, exit 3 for ls"
AWS_SECRET_ACCESS_KEY=wrong run "$SLUICE" ls s3://sl-f/obj/
expect_rc 3
expect_err_one_line "SignatureDoesNotMatch"

# Servers that misbehave by bucket (the test server's bucket modes, as hostile.sh does for gs://).
say "answers cut short or padded: cat exits 3 saying the bytes written are not the object's; cp commits nothing"
mkdir -p "$T/m"
python3 - "$T/m/data" "$T/m/big1m" <<'PY'
import sys
open(sys.argv[1], "wb").write(bytes((i * 7 + i // 256) % 256 for i in range(550)))
open(sys.argv[2], "wb").write(bytes((i * 131 + i // 1000) % 256 for i in range(1 << 20)))
PY
for b in sl-short sl-long sl-norange sl-cycle sl-u16 sl-repeat sl-reverse sl-noprefix; do
    s3_seed "{\"bucket\": \"$b\"}"
done
for b in sl-short sl-long sl-norange; do
    run "$SLUICE" cp "$T/m" "s3://$b/m" -q
    expect_rc 0
done
s3_config '{"bucket_modes": {"sl-short": ["short-body"], "sl-long": ["long-body"], "sl-norange": ["ignore-range"]}}'
run "$SLUICE" cat s3://sl-short/m/data "${fast[@]}"
expect_rc 3
expect_err_one_line
expect_err_matches "s3://sl-short/m/data: .*the 275 bytes written to stdout are not the object's"
run "$SLUICE" cat s3://sl-long/m/data "${fast[@]}"
expect_rc 3
expect_err_one_line
expect_err_matches "s3://sl-long/m/data: .*the 566 bytes written to stdout are not the object's"
for b in sl-short sl-long; do
    run "$SLUICE" cp "s3://$b/m/" "$T/bad-$b" "${fast[@]}"
    expect_rc 1
    expect_err_contains "0 done (0 skipped), 2 failed of 2 objects"
    expect_eq "files committed from $b" "" "$(find "$T/bad-$b" -type f 2>/dev/null)"
done

say "a Range answered 200 with the whole object: the bytes asked for, not the whole object"
for r in 100-119 -10 500- 0-0 549- 550-; do
    run "$SLUICE" cat --range "$r" s3://sl-norange/m/data
    expect_rc 0
    python3 - "$T/m/data" "$OUT" "$r" <<'PY' || fail "cat --range $r of a server that ignores Range" "the range" "other bytes"
import sys
d, o, r = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), sys.argv[3]
a, b = r.split("-")
want = d[-int(b):] if a == "" else d[int(a):] if b == "" else d[int(a):int(b) + 1]
sys.exit(0 if o == want else 1)
PY
done
id=$(s3_retry_test '{"s3.GetObject": ["return-broken-stream-after-200K", "return-broken-stream-after-100K"]}')
run "$SLUICE" cp s3://sl-norange/m/big1m "$T/norange/" -j 1 --header "x-retry-test-id: $id" "${fast[@]}"
expect_rc 0
s3_expect_consumed "$id"
cmp -s "$T/m/big1m" "$T/norange/big1m" || fail "a resumed download whose Range was ignored" "the object" "other bytes"

say "listings that misbehave stop with exit 3 and one line: a token cycle, UTF-16 order, pages repeated or reversed,"
say "keys outside the prefix"
for b in sl-cycle sl-u16 sl-repeat sl-reverse sl-noprefix; do
    s3_seed "{\"bucket\": \"$b\", \"count\": 10, \"name_format\": \"r/{:02d}\", \"size\": 5}"
    s3_seed "{\"bucket\": \"$b\", \"objects\": [{\"name\": \"s/x\", \"data\": \"outside\"},
        {\"name\": \"r/\\ue000\"}, {\"name\": \"r/\\ud83d\\ude00\"}]}"
done
s3_config '{"bucket_modes": {"sl-cycle": ["token-cycle"], "sl-u16": ["utf16-order"],
    "sl-repeat": ["repeat-last", "page-size-3"], "sl-reverse": ["reverse-pages", "page-size-4"],
    "sl-noprefix": ["ignore-prefix"]}}'
listing_stops() { # listing_stops BUCKET MESSAGE
    run timeout 60 "$SLUICE" du "s3://$1/r"
    expect_rc 3
    expect_err_one_line
    expect_err_matches "s3://$1/r/?: $2"
}
listing_stops sl-cycle "the server repeated a continuation token \(its pages go round in a cycle; [0-9]+ pages read\)"
listing_stops sl-u16 "the listing is not in byte order: .*\(the server sorts by UTF-16 code units, not by bytes\); stopped"
listing_stops sl-repeat "the listing is not in byte order: '02' came after '02' \(the same key twice\); stopped"
listing_stops sl-reverse "the listing is not in byte order: .*\(it went backwards\); stopped"
listing_stops sl-noprefix "the server listed 's/x', which is not under the prefix asked for; listing stopped"
s3_config '{"bucket_modes": {"sl-cycle": [], "sl-u16": [], "sl-repeat": [], "sl-reverse": [], "sl-noprefix": [],
    "sl-short": [], "sl-long": [], "sl-norange": []}}'
run "$SLUICE" du s3://sl-cycle/r
expect_rc 0
expect_err_empty
s3_finish
