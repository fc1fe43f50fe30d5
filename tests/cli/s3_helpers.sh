#!/usr/bin/env bash
# The S3 test servers as the s3:// tests start them (tests/cli/s3_lib.sh): s3_server.py and s3rver start on
# loopback, and the helpers' oracle (requests signed by botocore, the server's own listing, the counters, fault
# instructions) sees what was done.
set -euo pipefail
. "$(dirname "$0")/s3_lib.sh"

say "s3_server.py: seed, list, signed requests, counters"
s3_start --bucket hb --bucket eu@eu-west-1
s3_seed '{"bucket": "hb", "count": 1200, "name_format": "d/{:05d}", "size": 10}'
s3_objects hb d/ >"$T/listing"
expect_eq "objects listed (two pages)" 1200 "$(wc -l <"$T/listing")"
md5=$(printf 'd/00000\nd/' | md5sum | cut -d' ' -f1)
expect_eq "first key" '{"Key": "d/00000", "Size": 10, "ETag": "\"'"$md5"'\"", "ChecksumAlgorithm": "CRC32C"}' \
    "$(head -1 "$T/listing")"
printf 'hello s3\n' >"$T/up"
s3_stats_reset
s3_signed PUT "/hb/dir/a%20b" "$T/up" "x-amz-meta-sluice-source:test" >/dev/null
expect_eq "object read back" "hello s3" "$(s3_signed GET "/hb/dir/a%20b")"
expect_eq "PutObject requests" 1 "$(s3_requests s3.PutObject)"
expect_eq "objects created" 1 "$(s3_stat 'd["objects_created"]')"
S3_OK_STATUS=301 s3_signed GET "/eu?list-type=2" >"$T/redirect.xml"
expect_eq "wrong region" "301" "$(cat "$T/.status")"
grep -q '<Code>PermanentRedirect</Code>' "$T/redirect.xml" ||
    fail "301 body" "PermanentRedirect" "$(cat "$T/redirect.xml")"
AWS_SECRET_ACCESS_KEY=wrong S3_OK_STATUS=403 s3_signed GET "/hb?list-type=2" >"$T/bad.xml"
grep -q '<Code>SignatureDoesNotMatch</Code>' "$T/bad.xml" ||
    fail "wrong secret" "SignatureDoesNotMatch" "$(cat "$T/bad.xml")"
id=$(s3_retry_test '{"s3.GetObject": ["return-503-slowdown"]}')
S3_OK_STATUS=503 s3_signed GET "/hb/dir/a%20b" "" "x-retry-test-id:$id" >"$T/slow.xml"
grep -q '<Code>SlowDown</Code>' "$T/slow.xml" || fail "fault" "SlowDown" "$(cat "$T/slow.xml")"
s3_expect_consumed "$id"
expect_eq "credential endpoints answer" "sluice-test-role" \
    "$(curl -sS --noproxy '*' "$S3_META/latest/meta-data/iam/security-credentials/")"
s3_stop

say "s3rver: starts, answers botocore"
if s3rver_start --bucket hb; then
    s3_signed PUT "/hb/x" "$T/up" >/dev/null
    expect_eq "s3rver read back" "hello s3" "$(s3_signed GET /hb/x)"
    md5=$(md5sum <"$T/up" | cut -d' ' -f1)
    expect_eq "s3rver listing" '{"Key": "x", "Size": 9, "ETag": "\"'"$md5"'\"", "ChecksumAlgorithm": null}' \
        "$(s3_objects hb)"
    s3_stop
fi
s3_finish
