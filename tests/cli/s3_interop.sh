#!/usr/bin/env bash
# s3:// interoperability with the AWS CLI and rclone, through the S3 test server (tests/s3/s3_server.py, SigV4
# checked by botocore): objects sluice writes (small ones with odd keys: spaces, '+', '%', UTF-8; an empty one; a
# multipart upload with a small --upload-chunk) read back byte for byte with `aws s3 cp` and `rclone copy`, their
# ETags and CRC32C checksums accepted by both (`aws s3api get-object --checksum-mode ENABLED` validates the CRC32C,
# `rclone copy` and `rclone check` the MD5 ETag of single-part objects); objects `aws s3 cp` writes (single-part,
# and multipart above a lowered multipart_threshold), that `aws s3api` writes with CRC32C checksums (a PutObject and
# a multipart upload with part checksums) and that rclone writes (multipart above --s3-upload-cutoff) read by
# sluice with cat, cp and sync, a second sync fetching none of them. The peers also read each other's objects, and
# each peer is shown to reject a corrupted download, so that their acceptance of sluice's objects means something.
#
# Needs Debian's AWS CLI (awscli: /usr/bin/aws) and rclone; without either the test is skipped (exit 77).
# scripts/deps.sh installs both.
set -euo pipefail
. "$(dirname "$0")/s3_lib.sh"

# exe NAME: the path of an executable NAME on PATH, or nothing (bash's `command -v` also names a file that is not
# executable when no executable one is found)
exe() {
    local p
    p=$(command -v "$1" || true)
    [ -n "$p" ] && [ -x "$p" ] && echo "$p"
    return 0
}
# Debian's AWS CLI only: another `aws` first on PATH (pip's, a version manager's) may lack the CRT that CRC32C needs.
AWS_BIN=/usr/bin/aws
[ -x "$AWS_BIN" ] || AWS_BIN=""
RCLONE_BIN=$(exe rclone)
if [ -z "$AWS_BIN" ] || [ -z "$RCLONE_BIN" ]; then
    skip_note "needs Debian's AWS CLI and rclone (apt-get install awscli rclone; scripts/deps.sh installs them):" \
        "${AWS_BIN:-no /usr/bin/aws}, ${RCLONE_BIN:-no rclone}"
    cd /
    rm -rf "$T"
    SL_FINISHED=1
    exit 77
fi

# The peers' own settings: fresh files, nothing of the machine's. AWS_CA_BUNDLE (set on some machines) would make
# rclone's S3 client fail before its first request; every RCLONE_* variable would override its config file.
unset AWS_CA_BUNDLE AWS_PAGER
while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(RCLONE_[A-Z0-9_]*\)=.*/\1/p')
export AWS_CONFIG_FILE="$T/aws-config" AWS_SHARED_CREDENTIALS_FILE="$T/aws-credentials" AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER='' RCLONE_CONFIG="$T/rclone.conf"

s3_start --bucket interop --min-part-size 65536
# The AWS CLI's smallest part is 5 MiB (its chunk size is raised to that); a multipart_threshold of 1 MB makes it
# upload big.bin (6 MiB + 1,000 bytes) in two parts.
cat >"$AWS_CONFIG_FILE" <<EOF
[default]
region = us-east-1
s3 =
    addressing_style = path
    multipart_threshold = 1MB
    multipart_chunksize = 5MB
EOF
cat >"$RCLONE_CONFIG" <<EOF
[emu]
type = s3
provider = Other
env_auth = false
access_key_id = $S3_KEY
secret_access_key = $S3_SECRET
region = us-east-1
endpoint = $S3
force_path_style = true
EOF
awscli() { "$AWS_BIN" --endpoint-url "$S3" "$@"; } # the AWS CLI before 2.13 does not read AWS_ENDPOINT_URL
rclone() { "$RCLONE_BIN" "$@"; }
say "peers: $("$AWS_BIN" --version 2>&1 | cut -d' ' -f1-2), $("$RCLONE_BIN" version | head -1)"

# The fixture: odd keys, an empty object, one object big enough for every client's multipart upload.
FX="$T/fx"
mkdir -p "$FX/deep/dir" "$FX/ünï cödé"
printf 'plain\n' >"$FX/plain.txt"
printf 'a space\n' >"$FX/a b.txt"
printf 'plus\n' >"$FX/plus+sign.txt"
printf 'percent\n' >"$FX/100%%.txt"
printf 'escapes that are not\n' >"$FX/pct%%2B%%20x.txt"
printf 'utf-8\n' >"$FX/ünï cödé/日本語 +%%.txt"
: >"$FX/empty.txt"
head -c 3000 /dev/urandom >"$FX/deep/dir/x.bin"
head -c $((6 * 1024 * 1024 + 1000)) /dev/urandom >"$FX/big.bin"
KEYS=()
while IFS= read -r -d '' f; do KEYS+=("${f#"$FX"/}"); done < <(find "$FX" -type f -print0 | sort -z)
NKEYS=${#KEYS[@]}
BIG_SIZE=$(stat -c %s "$FX/big.bin")

# same_tree WHAT DIR: DIR holds exactly the fixture's files, byte for byte
same_tree() {
    diff -r "$FX" "$2" >"$T/.diff" 2>&1 || fail "$1" "the fixture, byte for byte (diff -r)" "$(head -c 1500 "$T/.diff")"
    expect_eq "$1: files" "$NKEYS" "$(find "$2" -type f | wc -l)"
}
# objects PREFIX: the server's own listing of s3://interop/PREFIX as "key<TAB>size<TAB>etag<TAB>checksum" lines
objects() {
    s3_objects interop "$1" | "$S3_PYTHON" -c '
import json, sys
p = sys.argv[1]
for l in sys.stdin:
    d = json.loads(l)
    print("%s\t%d\t%s\t%s" % (d["Key"][len(p):], d["Size"], d["ETag"].strip("\""), d["ChecksumAlgorithm"]))' "$1"
}
# expect_etags WHAT PREFIX PARTS: the listing has the fixture's keys; every object but big.bin has its MD5 as ETag
# (single-part), big.bin the ETag of a multipart upload of PARTS parts
expect_etags() {
    objects "$2" >"$T/.objects"
    expect_eq "$1: keys listed" "$(printf '%s\n' "${KEYS[@]}" | sort)" "$(cut -f1 "$T/.objects" | sort)"
    local k size etag sum
    while IFS=$'\t' read -r k size etag _; do
        expect_eq "$1: size of $k" "$(stat -c %s "$FX/$k")" "$size"
        if [ "$k" = big.bin ]; then
            [[ "$etag" =~ ^[0-9a-f]{32}-$3$ ]] || fail "$1: ETag of big.bin" "a multipart ETag of $3 parts" "$etag"
        else
            expect_eq "$1: ETag of $k (the MD5 of a single-part object)" "$(md5sum <"$FX/$k" | cut -d' ' -f1)" "$etag"
        fi
    done <"$T/.objects"
}
# global_fault JSON: a retry test that applies to requests without the header (the peers cannot send it); its id in
# FAULT_ID
global_fault() {
    s3_api POST /retry_test "{\"instructions\": $1, \"global\": true}" >"$T/.rt.json"
    FAULT_ID=$(json_field "$T/.rt.json" 'd["id"]')
}

# --- the peers among themselves ---------------------------------------------------------------------------------
say "aws s3 cp writes the fixture (big.bin as a multipart upload of 2 parts); rclone reads it back identically"
run awscli s3 cp "$FX" s3://interop/aws/ --recursive --only-show-errors
expect_rc 0
expect_etags "aws s3 cp upload" aws/ 2
run rclone copy emu:interop/aws "$T/rclone-of-aws"
expect_rc 0
same_tree "rclone copy of aws's objects" "$T/rclone-of-aws"

say "rclone copy writes the fixture (big.bin multipart above --s3-upload-cutoff 1M); aws reads it back identically"
run rclone copy "$FX" emu:interop/rclone --s3-upload-cutoff 1M --s3-chunk-size 5M
expect_rc 0
expect_etags "rclone copy upload" rclone/ 2
run awscli s3 cp s3://interop/rclone/ "$T/aws-of-rclone" --recursive --only-show-errors
expect_rc 0
same_tree "aws s3 cp of rclone's objects" "$T/aws-of-rclone"

say "aws s3api writes with CRC32C checksums: a PutObject, and a multipart upload with a checksum per part"
for k in "${KEYS[@]}"; do
    [ "$k" = big.bin ] && continue
    run awscli s3api put-object --bucket interop --key "awssum/$k" --body "$FX/$k" --checksum-algorithm CRC32C
    expect_rc 0
done
head -c $((5 * 1024 * 1024)) "$FX/big.bin" >"$T/part1"
tail -c +$((5 * 1024 * 1024 + 1)) "$FX/big.bin" >"$T/part2"
run awscli s3api create-multipart-upload --bucket interop --key awssum/big.bin --checksum-algorithm CRC32C
expect_rc 0
UPLOAD_ID=$(json_field "$OUT" 'd["UploadId"]')
parts=""
for n in 1 2; do
    run awscli s3api upload-part --bucket interop --key awssum/big.bin --upload-id="$UPLOAD_ID" --part-number "$n" \
        --body "$T/part$n" --checksum-algorithm CRC32C
    expect_rc 0
    parts+="${parts:+, }{\"PartNumber\": $n, \"ETag\": $(json_field "$OUT" 'json.dumps(d["ETag"])'),"
    parts+=" \"ChecksumCRC32C\": \"$(json_field "$OUT" 'd["ChecksumCRC32C"]')\"}"
done
run awscli s3api complete-multipart-upload --bucket interop --key awssum/big.bin --upload-id="$UPLOAD_ID" \
    --multipart-upload "{\"Parts\": [$parts]}"
expect_rc 0
expect_etags "aws s3api upload" awssum/ 2
expect_eq "aws s3api objects with a CRC32C checksum" "$NKEYS" "$(cut -f4 "$T/.objects" | grep -c '^CRC32C$')"
run rclone copy emu:interop/awssum "$T/rclone-of-awssum"
expect_rc 0
same_tree "rclone copy of aws's checksummed objects" "$T/rclone-of-awssum"

say "the peers' checks are real: a corrupted download fails aws's CRC32C check and rclone's MD5 check"
global_fault '{"s3.GetObject": ["return-corrupted-data"]}'
run awscli s3api get-object --bucket interop --key "awssum/a b.txt" --checksum-mode ENABLED "$T/corrupt-aws"
[ "$RC" != 0 ] || fail "aws get-object of a corrupted body" "a checksum error" "exit 0: $(head -c 300 "$T/corrupt-aws")"
grep -qi 'checksum' "$ERR" || fail "aws get-object of a corrupted body" "a message about the checksum" "$(cat "$ERR")"
s3_expect_consumed "$FAULT_ID"
global_fault '{"s3.GetObject": ["return-corrupted-data"]}'
run rclone copyto "emu:interop/aws/plain.txt" "$T/corrupt-rclone" --retries 1 --low-level-retries 1
[ "$RC" != 0 ] || fail "rclone copy of a corrupted body" "an MD5 error" "exit 0"
grep -qi 'md5' "$ERR" || fail "rclone copy of a corrupted body" "a message about the MD5" "$(cat "$ERR")"
s3_expect_consumed "$FAULT_ID"
s3_api DELETE "/retry_test/$FAULT_ID" >/dev/null

# --- sluice writes, the peers read ------------------------------------------------------------------------------
BIG_PARTS=$(((BIG_SIZE + 262143) / 262144))
say "sluice cp writes the fixture: odd keys, an empty object, big.bin in $BIG_PARTS parts of --upload-chunk 256K"
run "$SLUICE" cp "$FX" s3://interop/sluice -q --upload-chunk 256K
expect_rc 0
expect_err_empty
expect_etags "sluice cp upload" sluice/ "$BIG_PARTS"
expect_eq "sluice's objects with a CRC32C checksum (sent with every upload)" "$NKEYS" \
    "$(cut -f4 "$T/.objects" | grep -c '^CRC32C$')"

say "aws reads sluice's objects: s3 cp --recursive, and get-object --checksum-mode ENABLED (CRC32C validated)"
run awscli s3 cp s3://interop/sluice/ "$T/aws-of-sluice" --recursive --only-show-errors
expect_rc 0
same_tree "aws s3 cp of sluice's objects" "$T/aws-of-sluice"
for k in "${KEYS[@]}"; do
    run awscli s3api get-object --bucket interop --key "sluice/$k" --checksum-mode ENABLED "$T/one"
    expect_rc 0
    cmp -s "$FX/$k" "$T/one" || fail "aws get-object of sluice/$k" "the fixture's bytes" "different bytes"
    # A whole-object CRC32C is validated by botocore; a multipart upload's may be composite ("...-PARTS"), which
    # botocore leaves alone.
    crc=$(json_field "$OUT" 'd.get("ChecksumCRC32C", "none")')
    [[ "$crc" =~ ^[A-Za-z0-9+/]{6}==$ ]] || { [ "$k" = big.bin ] && [[ "$crc" =~ ^[A-Za-z0-9+/]{6}==-$BIG_PARTS$ ]]; } ||
        fail "aws get-object --checksum-mode ENABLED of sluice/$k" "a CRC32C checksum" "$crc"
done

say "rclone reads sluice's objects: copy (single-part objects' MD5 checked against their ETag) and check"
run rclone copy emu:interop/sluice "$T/rclone-of-sluice"
expect_rc 0
same_tree "rclone copy of sluice's objects" "$T/rclone-of-sluice"
run rclone check "$FX" emu:interop/sluice
expect_rc 0

# --- the peers write, sluice reads ------------------------------------------------------------------------------
for who in aws rclone awssum; do
    say "sluice reads what ${who/awssum/aws s3api (CRC32C)} wrote: cat of every key, cp, sync, and a second sync fetching nothing"
    for k in "${KEYS[@]}"; do
        run "$SLUICE" cat "s3://interop/$who/$k"
        expect_rc 0
        expect_out_file "$FX/$k"
    done
    run "$SLUICE" cp "s3://interop/$who" "$T/sluice-cp-$who" -q
    expect_rc 0
    expect_err_empty
    same_tree "sluice cp of $who's objects" "$T/sluice-cp-$who"
    run "$SLUICE" sync "s3://interop/$who" "$T/sluice-sync-$who" -q
    expect_rc 0
    expect_err_empty
    same_tree "sluice sync of $who's objects" "$T/sluice-sync-$who"
    s3_stats_reset
    run "$SLUICE" sync "s3://interop/$who" "$T/sluice-sync-$who" -q
    expect_rc 0
    expect_err_empty
    expect_eq "GetObject requests of a second sync of $who's objects" 0 "$(s3_requests s3.GetObject)"
    same_tree "sluice sync of $who's objects, again" "$T/sluice-sync-$who"
done

say "sluice's checks on the peers' objects are real: a corrupted body of aws's CRC32C object and of rclone's single-part object (MD5 ETag) is caught and read again"
for obj in "awssum/a b.txt" "rclone/plain.txt"; do
    id=$(s3_retry_test '{"s3.GetObject": ["return-corrupted-data"]}')
    s3_stats_reset
    run "$SLUICE" cp "s3://interop/$obj" "$T/corrupt-sluice/" -q --header "x-retry-test-id: $id"
    expect_rc 0
    s3_expect_consumed "$id"
    cmp -s "$FX/${obj#*/}" "$T/corrupt-sluice/$(basename "$obj")" ||
        fail "sluice cp of s3://interop/$obj with a corrupted first answer" "the right bytes" "others"
    expect_eq "GetObject requests for s3://interop/$obj (the corrupted one and one more)" 2 \
        "$(s3_requests s3.GetObject)"
done

s3_finish
