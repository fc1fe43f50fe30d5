#!/usr/bin/env bash
# Every command end to end on s3://, against the project's S3 test server (every request's signature checked by
# botocore) and then against s3rver (an independent implementation): ls (one level, -r, -l), du, cat (--range), cp
# local->s3, s3->local, multipart uploads (--upload-chunk 256K), checksums on the server, a rerun that skips everything,
# sync, map, rm, s3->s3 server-side copy, gs<->s3 through this machine, corrupted downloads caught, resume after
# kill -9. Where a local directory can answer the same question, the s3:// answer must be identical to the local one;
# otherwise the server's own listing is the oracle.
set -euo pipefail
# s3rver's npm ci (once per build tree) needs the caller's network settings, which gcs_lib.sh replaces with closed
# loopback proxies: it is installed first, where s3_lib.sh will look for it. A failure shows again at s3rver_start.
if command -v node >/dev/null && command -v npm >/dev/null; then
    if [ -z "${S3RVER_DIR:-}" ] && [ -n "${SL_TEST_TMP:-}" ] && [ "$(basename "$SL_TEST_TMP")" = tmp ]; then
        export S3RVER_DIR="$(dirname "$SL_TEST_TMP")/s3rver"
    fi
    bash "$(dirname "$0")/../s3/s3rver.sh" install >/dev/null 2>&1 || true
fi
. "$(dirname "$0")/gcs_lib.sh"
. "$(dirname "$0")/s3_lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(13)
files = {
    "top.txt": b"hello\n",
    "empty": b"",
    "z-last": b"zzz",
    "a/one.bin": b"\x00",
    "a/b/deep.bin": bytes(rng.randrange(256) for _ in range(4096)),
    "a/b/c/big.bin": os.urandom(1024 * 1024 + 512 * 1024),
    "c/text.csv": b"".join(b"id%d,user%d,%d\n" % (i, i % 7, i * 3) for i in range(500)),
    "c/all256.bin": bytes(range(256)) * 3,
    "odd/a b+c=d&e%f~g": b"odd name\n",
    "odd/\xc3\xa9t\xc3\xa9": b"utf-8 name\n",
}
for k, v in files.items():
    p = os.path.join(root.encode(), k.encode("latin-1") if "\xc3" in k else k.encode())
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(v)
PY
N=$(find "$S" -type f | wc -l)
B=$(find "$S" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
keys() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }
same_tree() { # same_tree A B WHAT
    diff -r "$1" "$2" >"$T/diff.txt" 2>&1 || fail "$3" "no difference between $1 and $2" "$(head -5 "$T/diff.txt")"
}
# server_matches_tree BUCKET PREFIX DIR [CHECKSUM]: the objects under s3://BUCKET/PREFIX are exactly the files of DIR
# with their sizes; single-part objects have the MD5 of the local bytes as ETag; CHECKSUM (default CRC32C; "null"
# for s3rver) is the algorithm the server says each object was uploaded with.
server_matches_tree() {
    s3_objects "$1" "$2" >"$T/objs.jsonl"
    python3 - "$T/objs.jsonl" "$2" "$3" "${4:-CRC32C}" <<'PY' || fail "objects under s3://$1/$2" "exactly the files of $3" "see above"
import hashlib, json, os, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
prefix, root, algo = sys.argv[2], sys.argv[3].encode(), sys.argv[4]
want = {}
for d, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(d, f)
        want[prefix + os.path.relpath(p, root).decode("utf-8")] = open(p, "rb").read()
got = {o["Key"]: o for o in objs}
assert sorted(got) == sorted(want), ("names differ", sorted(set(got) ^ set(want)))
for name, data in want.items():
    o = got[name]
    assert o["Size"] == len(data), (name, o["Size"], len(data))
    etag = o["ETag"].replace("&quot;", '"').strip('"')
    if "-" not in etag:
        assert etag == hashlib.md5(data).hexdigest(), (name, "ETag", etag)
    assert str(o["ChecksumAlgorithm"]) == ("None" if algo == "null" else algo), (name, o["ChecksumAlgorithm"])
PY
}

# suite BUCKET WHAT: the commands that need nothing but an S3 server (run against both).
suite() {
    local bk=$1 what=$2 algo=${3:-CRC32C}
    say "$what: cp local -> s3://: every file arrives with the same name, size, MD5 (ETag) and checksum"
    run "$SLUICE" cp "$S" "s3://$bk/in" -j 4
    expect_rc 0
    expect_err_contains "sluice: cp: $N done (0 skipped), 0 failed of $N objects"
    server_matches_tree "$bk" in/ "$S" "$algo"

    say "$what: ls one level and -r, identical to ls of the local directory"
    for sub in "" /a /a/b /c /odd; do
        run "$SLUICE" ls "$S$sub"
        cp "$OUT" "$T/ls.local"
        run "$SLUICE" ls "s3://$bk/in$sub"
        expect_rc 0
        expect_err_empty
        expect_out_file "$T/ls.local"
    done
    run "$SLUICE" ls -r "$S"
    cp "$OUT" "$T/ls.local"
    run "$SLUICE" ls -r "s3://$bk/in"
    expect_rc 0
    expect_out_file "$T/ls.local"
    run "$SLUICE" ls "s3://$bk"
    expect_out "in/"

    say "$what: du and ls -l totals"
    run "$SLUICE" du "s3://$bk/in"
    expect_rc 0
    expect_eq "du" "$N objects, $B bytes" "$(cut -d'(' -f1 <"$OUT" | sed 's/ $//')"
    run "$SLUICE" du --json "s3://$bk/in/c"
    expect_out "{\"objects\":2,\"bytes\":$(($(stat -c %s "$S/c/text.csv") + 768))}"

    say "$what: cat, the exact bytes of every object, and --range"
    while read -r k; do
        run "$SLUICE" cat "s3://$bk/in/$k"
        expect_rc 0
        expect_out_file "$S/$k"
    done < <(keys "$S")
    run "$SLUICE" cat --range 100-199 "s3://$bk/in/a/b/deep.bin"
    expect_rc 0
    tail -c +101 "$S/a/b/deep.bin" | head -c 100 >"$T/want.range"
    expect_out_file "$T/want.range"
    run "$SLUICE" cat --range -10 "s3://$bk/in/c/text.csv"
    tail -c 10 "$S/c/text.csv" >"$T/want.range"
    expect_out_file "$T/want.range"

    say "$what: cat of a missing object: exit 3, one line naming it"
    run "$SLUICE" cat "s3://$bk/in/no-such-object"
    expect_rc 3
    expect_err_one_line "s3://$bk/in/no-such-object"

    say "$what: cp s3:// -> local: the tree comes back byte for byte"
    run "$SLUICE" cp "s3://$bk/in" "$T/back-$bk" -j 3
    expect_rc 0
    same_tree "$S" "$T/back-$bk" "cp s3:// -> local"

    say "$what: a rerun skips every object"
    run "$SLUICE" cp "$S" "s3://$bk/in"
    expect_rc 0
    expect_err_contains "$N done ($N skipped)"

    say "$what: multipart upload (--upload-chunk 256K): read back identical"
    run "$SLUICE" cp "$S/a/b/c" "s3://$bk/mp" --upload-chunk 256K
    expect_rc 0
    run "$SLUICE" cat "s3://$bk/mp/big.bin"
    expect_rc 0
    expect_out_file "$S/a/b/c/big.bin"
    s3_objects "$bk" mp/ >"$T/mp.jsonl"
    # s3rver gives a multipart object the MD5 of its bytes as ETag, not S3's "<md5 of the parts' MD5s>-<parts>".
    [ "$algo" = null ] || grep -q -- '-6\\""' "$T/mp.jsonl" ||
        fail "multipart object" "an ETag of 6 parts" "$(cat "$T/mp.jsonl")"
    run "$SLUICE" cp "$S/a/b/c" "s3://$bk/mp" --upload-chunk 256K
    expect_err_contains "1 done (1 skipped)"

    say "$what: sync copies nothing the second time; map --op md5 to s3://"
    run "$SLUICE" sync "$S" "s3://$bk/sync"
    expect_rc 0
    expect_err_contains "$N done (0 skipped)"
    run "$SLUICE" sync "$S" "s3://$bk/sync"
    expect_err_contains "$N done ($N skipped)"
    run "$SLUICE" map "s3://$bk/in/c" "s3://$bk/md5" --op md5 --suffix .md5
    expect_rc 0
    expect_eq "md5 of text.csv" "$(md5sum <"$S/c/text.csv" | cut -d' ' -f1)" \
        "$("$SLUICE" cat "s3://$bk/md5/text.csv.md5" | python3 -c 'import json,sys; print(json.load(sys.stdin)["md5"])')"
    run "$SLUICE" map "s3://$bk/in/c" "$T/exec-$bk" --exec 'tr a-z A-Z'
    expect_rc 0
    tr a-z A-Z <"$S/c/text.csv" >"$T/want.up"
    cmp -s "$T/want.up" "$T/exec-$bk/text.csv" || fail "map --exec from s3://" "upper-cased text" "other bytes"

    say "$what: s3 -> s3 (same endpoint), then rm one object and rm -r"
    run "$SLUICE" cp "s3://$bk/in" "s3://$bk/copy"
    expect_rc 0
    expect_err_contains "$N done (0 skipped)"
    server_matches_tree "$bk" copy/ "$S" "$algo"
    run "$SLUICE" rm "s3://$bk/copy/top.txt"
    expect_rc 0
    run "$SLUICE" ls "s3://$bk/copy/top.txt"
    expect_rc 3
    run "$SLUICE" rm -r "s3://$bk/copy"
    expect_rc 0
    expect_eq "objects left under copy/" "" "$(s3_objects "$bk" copy/)"
}

s3_start --bucket sl-s3 --bucket sl-other --min-part-size 1
suite sl-s3 "S3 test server"

say "rm -r gathers keys: DeleteObjects of up to 1,000 keys each, no DeleteObject; a key the server fails fails alone"
s3_seed '{"bucket": "sl-del", "count": 2500, "name_format": "d/{:05d}", "size": 10}'
s3_stats_reset
run "$SLUICE" rm -r s3://sl-del/d -j 2 --report "$T/del.json"
expect_rc 0
expect_eq "objects left" "" "$(s3_objects sl-del d/)"
expect_eq "DeleteObject requests" 0 "$(s3_requests s3.DeleteObject)"
batches=$(s3_requests s3.DeleteObjects)
[ "$batches" -ge 3 ] && [ "$batches" -le 6 ] || fail "DeleteObjects requests for 2,500 keys at -j 2" "3 to 6" "$batches"
expect_eq "done" 2500 "$(json_field "$T/del.json" 'd["objects"]["done"]')"
s3_seed '{"bucket": "sl-del", "count": 40, "name_format": "e/{:03d}", "size": 10}'
s3_config '{"bucket_modes": {"sl-del": ["delete-errors"]}}'
run "$SLUICE" rm -r s3://sl-del/e -j 1 --failures "$T/del-f.jsonl" --retries 0
s3_config '{"bucket_modes": {"sl-del": []}}'
expect_rc 1
expect_eq "failed keys (every second of the batch)" 20 "$(wc -l <"$T/del-f.jsonl")"
expect_eq "objects left: exactly the failed ones" "$(python3 -c 'import json, sys
print("\n".join(sorted("e/" + json.loads(l)["key"] for l in open(sys.argv[1]))))' "$T/del-f.jsonl")" \
    "$(s3_objects sl-del e/ | python3 -c 'import json, sys
print("\n".join(sorted(json.loads(l)["Key"] for l in sys.stdin)))')"
grep -q '"error":"[^"]*InternalError' "$T/del-f.jsonl" || fail "a failed key's error" "the server's code" "$(head -1 "$T/del-f.jsonl")"

say "server-side copy: CopyObject, no byte through this machine; to another bucket too"
s3_stats_reset
run "$SLUICE" cp "s3://sl-s3/in" "s3://sl-other/x"
expect_rc 0
expect_eq "CopyObject requests" "$N" "$(s3_requests s3.CopyObject)"
expect_eq "GetObject requests" 0 "$(s3_requests s3.GetObject)"
server_matches_tree sl-other x/ "$S"
say "  ... and a rerun (sync) skips every copy by the fingerprint the copy recorded: nothing read, nothing copied"
s3_stats_reset
run "$SLUICE" sync "s3://sl-s3/in" "s3://sl-other/x" --report "$T/copy-again.json"
expect_rc 0
expect_eq "skipped" "$N" "$(json_field "$T/copy-again.json" 'd["objects"]["skipped"]')"
expect_eq "bytes read" 0 "$(json_field "$T/copy-again.json" 'd["bytes"]["read"]')"
expect_eq "CopyObject and GetObject requests" "0 0" "$(s3_requests s3.CopyObject) $(s3_requests s3.GetObject)"

say "an object over CopyObject's limit (5 GiB; lowered here by SLUICE_S3_COPY_OBJECT_MAX): copied on the server in parts"
head -c $((11 * 1048576 + 4321)) /dev/urandom >"$T/big11"
run "$SLUICE" cp "$T/big11" s3://sl-s3/parts/
expect_rc 0
s3_stats_reset
run env SLUICE_S3_COPY_OBJECT_MAX=1048576 "$SLUICE" cp s3://sl-s3/parts/ s3://sl-other/parts-copy/ --report "$T/pc.json"
expect_rc 0
expect_eq "UploadPartCopy (parts of --upload-chunk, 8M), Complete, CopyObject, GetObject, PutObject" "2 1 0 0 0" \
    "$(s3_requests s3.UploadPartCopy) $(s3_requests s3.CompleteMultipartUpload) $(s3_requests s3.CopyObject) $(s3_requests s3.GetObject) $(s3_requests s3.PutObject)"
expect_eq "open uploads" 0 "$(s3_stat 'd["open_multipart_uploads"]')"
run "$SLUICE" cat s3://sl-other/parts-copy/big11
expect_rc 0
cmp -s "$OUT" "$T/big11" || fail "the copy made of parts" "the source's bytes" "other bytes"
run env SLUICE_S3_COPY_OBJECT_MAX=1048576 "$SLUICE" sync s3://sl-s3/parts/ s3://sl-other/parts-copy/ --report "$T/pc2.json"
expect_rc 0
expect_eq "the rerun: skipped (the copy's fingerprint)" 1 "$(json_field "$T/pc2.json" 'd["objects"]["skipped"]')"

say "multipart: CreateMultipartUpload, 6 UploadParts (each with its CRC32C), one Complete; none left open"
s3_stats_reset
run "$SLUICE" cp "$S/a/b/c" "s3://sl-other/mp2" --upload-chunk 256K
expect_rc 0
expect_eq "CreateMultipartUpload" 1 "$(s3_requests s3.CreateMultipartUpload)"
expect_eq "UploadPart" 6 "$(s3_requests s3.UploadPart)"
expect_eq "CompleteMultipartUpload" 1 "$(s3_requests s3.CompleteMultipartUpload)"
expect_eq "open uploads" 0 "$(s3_stat 'd["open_multipart_uploads"]')"

say "a tight --memory-limit: writers hold a minimum part (5 MiB) each and send what the budget allows as parts"
mkdir -p "$T/bigs"
for i in 1 2 3; do head -c $((7 * 1024 * 1024 + i)) /dev/urandom >"$T/bigs/b$i"; done
s3_stats_reset
run "$SLUICE" cp "$T/bigs" s3://sl-other/bigs -j 3 --memory-limit 16M --report "$T/budget.json"
expect_rc 0
python3 - "$T/budget.json" <<'PY' || fail "the budget" "peak within the limit" "$(cat "$T/budget.json")"
import json, sys
b = json.load(open(sys.argv[1]))["budget"]
assert 0 < b["peak_bytes"] <= b["limit_bytes"], b
PY
run "$SLUICE" cp s3://sl-other/bigs "$T/bigs-back"
expect_rc 0
same_tree "$T/bigs" "$T/bigs-back" "multipart objects under a tight budget"

say "corrupted download bytes are caught by the CRC32C and read again"
id=$(s3_retry_test '{"s3.GetObject": ["return-corrupted-data"]}')
run "$SLUICE" cp "s3://sl-s3/in/a/b/deep.bin" "$T/corrupt-out/" --header "x-retry-test-id: $id"
expect_rc 0
s3_expect_consumed "$id"
cmp -s "$S/a/b/deep.bin" "$T/corrupt-out/deep.bin" || fail "corrupted download" "the right bytes" "others"
id=$(s3_retry_test '{"s3.GetObject": ["return-corrupted-data"]}')
run "$SLUICE" cat "s3://sl-s3/in/a/b/deep.bin" --header "x-retry-test-id: $id"
expect_rc 3
expect_err_contains "CRC32C mismatch"

say "a store without checksums: a corrupted download is caught by the ETag's MD5"
s3_config '{"bucket_modes": {"sl-s3": ["no-checksum"]}}'
id=$(s3_retry_test '{"s3.GetObject": ["return-corrupted-data"]}')
run "$SLUICE" cat "s3://sl-s3/in/a/b/deep.bin" --header "x-retry-test-id: $id"
expect_rc 3
expect_err_contains "MD5 mismatch"
s3_config '{"bucket_modes": {"sl-s3": []}}'

say "gs:// <-> s3://: streamed through this machine both ways"
gcs_start --bucket sl-gcs
run "$SLUICE" cp "s3://sl-s3/in" gs://sl-gcs/from-s3
expect_rc 0
expect_err_contains "$N done"
run "$SLUICE" cp gs://sl-gcs/from-s3 "s3://sl-other/from-gs"
expect_rc 0
server_matches_tree sl-other from-gs/ "$S"
run "$SLUICE" cp gs://sl-gcs/from-s3 "s3://sl-other/from-gs"
expect_err_contains "$N done ($N skipped)"

say "resume after kill -9: the rerun skips what was done and completes the rest"
python3 - "$T/many" <<'PY'
import os, sys
os.makedirs(sys.argv[1])
for i in range(200):
    with open(os.path.join(sys.argv[1], "f%03d" % i), "wb") as f:
        f.write(b"%d\n" % i * 50)
PY
s3_config '{"delay_ms": 20}'
"$SLUICE" cp "$T/many" s3://sl-other/many -j 2 -q >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do
    [ "$(s3_requests s3.PutObject)" -ge 30 ] && break
    sleep 0.05
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
s3_config '{"delay_ms": 0}'
done_before=$(s3_objects sl-other many/ | wc -l)
[ "$done_before" -gt 0 ] && [ "$done_before" -lt 200 ] || fail "killed run" "some objects done" "$done_before"
run "$SLUICE" cp "$T/many" s3://sl-other/many
expect_rc 0
expect_err_contains "200 done ($done_before skipped)"
server_matches_tree sl-other many/ "$T/many"

say "keys with dot segments are asked for as they are: 'a/../b' is not the object 'b'"
# A client that lets libcurl remove dot segments asks for dots/b instead of dots/a/../b: signed, the server refuses
# the signature (made for the path as given); unsigned, it would serve the other object's bytes.
s3_seed '{"bucket": "sl-other", "objects": [{"name": "dots/a/../b", "data": "the object a/../b\n"},
    {"name": "dots/b", "data": "the object b\n"}, {"name": "dots/./c", "data": "the object ./c\n"}]}'
run "$SLUICE" cat "s3://sl-other/dots/a/../b"
expect_rc 0
expect_out "the object a/../b"
run "$SLUICE" cat "s3://sl-other/dots/./c"
expect_rc 0
expect_out "the object ./c"
run "$SLUICE" cp s3://sl-other/dots/ s3://sl-other/dots-copy/
expect_rc 0
expect_err_contains "3 done (0 skipped), 0 failed of 3 objects"
run "$SLUICE" cat "s3://sl-other/dots-copy/a/../b"
expect_out "the object a/../b"
# A local directory refuses them (they would name a file outside it), and only them.
run "$SLUICE" cp s3://sl-other/dots/ "$T/dots-local"
expect_rc 1
expect_err_contains "FAILED a/../b: $T/dots-local/a/../b: object key is unsafe for a local directory"
expect_err_contains "1 done (0 skipped), 2 failed of 3 objects"
expect_eq "the one safe key, downloaded" "the object b" "$(cat "$T/dots-local/b")"
s3_stop
gcs_stop

say "s3rver"
if s3rver_start --bucket sl-s3rver; then
    suite sl-s3rver "s3rver" null
fi
s3_finish
