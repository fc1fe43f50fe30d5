#!/usr/bin/env bash
# Big objects in slices (--slice-size): cp/sync from gs:// to a local directory reads an object bigger than a slice as
# ranged reads of the listed generation by several workers at once, written at their offsets into one temporary file,
# and commits it only when the slices' CRC32Cs combine to the object's. Checked against the project's GCS test server:
# the bytes (cmp), how many media requests the server saw (the slices really were separate reads), what is refused
# (a flipped byte, a short or padded answer, a generation replaced meanwhile), that a server ignoring Range
# still gives the right bytes, that a killed job
# leaves no final file and its rerun completes, and when objects are not sliced (-j 1, --slice-size 0, gzip-encoded,
# below the size). And --composite-upload, local -> gs://: parts uploaded by several workers, composed (in levels of 32),
# checked by CRC32C, deleted; failures leave no part behind.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

gcs_start
gcs_bucket bkt
S="$T/src"
mkdir -p "$S"
head -c $((5 * 1048576 + 12345)) /dev/urandom >"$S/big.bin" # 6 slices of 1 MiB, the last one short
head -c 1000 /dev/urandom >"$S/small.bin"
run "$SLUICE" cp -r "$S" gs://bkt/d -q "${FAST[@]}"
expect_rc 0

say "cp: a 5 MiB object in 1 MiB slices at -j 4: the same bytes, 6 media reads for it, the fingerprint recorded"
# GETs of the same copy unsliced: the media reads plus what finding the objects costs
gcs_stats_reset
run "$SLUICE" cp -r gs://bkt/d "$T/base" --slice-size 0 -j 4 -q
expect_rc 0
base=$(gcs_requests storage.objects.get)
gcs_stats_reset
run "$SLUICE" cp -r gs://bkt/d "$T/out" --slice-size 1M -j 4 -q
expect_rc 0
cmp "$S/big.bin" "$T/out/big.bin" || fail "sliced copy" "the same bytes" "different"
cmp "$S/small.bin" "$T/out/small.bin" || fail "small object" "the same bytes" "different"
expect_eq "GETs: 5 more than unsliced (6 slices instead of 1 read)" $((base + 5)) "$(gcs_requests storage.objects.get)"
no_tmp_files "$T/out"
fp=$(sl_record "$T/out/big.bin")
case "$fp" in *"size=$((5 * 1048576 + 12345)) "*"crc32c="*) ;; *) fail "fingerprint" "size and crc32c" "$fp" ;; esac

say "the output records its own CRC32C (the slices' combined one, the object's): --verify keeps it, and redoes it torn"
want=$(gcs_meta bkt d/big.bin 'd["crc32c"]' | python3 -c 'import base64, sys; print(base64.b64decode(sys.stdin.read().strip().strip("\"")).hex())')
case "$fp" in *"out_crc32c=$want") ;; *) fail "the sliced output's own CRC32C" "out_crc32c=$want" "$fp" ;; esac
run "$SLUICE" cp -r gs://bkt/d "$T/out" --slice-size 1M -j 4 --verify --report "$T/v.json" -q
expect_rc 0
expect_eq "skipped after reading back" 2 "$(json_field "$T/v.json" 'd["objects"]["skipped"]')"
python3 - "$T/out/big.bin" <<'PY'
import os, sys
p = sys.argv[1]
st = os.stat(p)
with open(p, "r+b") as f:
    f.seek(3 * 1048576 + 17)
    f.write(b"\0" * 4096)
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
PY
run "$SLUICE" cp -r gs://bkt/d "$T/out" --slice-size 1M -j 4 --verify --report "$T/v.json" -q
expect_rc 0
expect_eq "skipped with a torn output" 1 "$(json_field "$T/v.json" 'd["objects"]["skipped"]')"
cmp "$S/big.bin" "$T/out/big.bin" || fail "the torn sliced output after --verify" "the object's bytes" "still torn"

say "--fsync: the sliced output goes through the committer (a syncfs) like every other"
rm -rf "$T/fs"
run "$SLUICE" cp -r gs://bkt/d "$T/fs" --slice-size 1M -j 4 --fsync -q
expect_rc 0
cmp "$S/big.bin" "$T/fs/big.bin" || fail "a sliced copy with --fsync" "the same bytes" "different"

say "a rerun skips it (resume works on sliced outputs); sync likewise"
gcs_stats_reset
run "$SLUICE" cp -r gs://bkt/d "$T/base" --slice-size 0 -j 4 -q
expect_rc 0
skip_gets=$(gcs_requests storage.objects.get) # a rerun that reads nothing
gcs_stats_reset
run "$SLUICE" cp -r gs://bkt/d "$T/out" --slice-size 1M -j 4 --report "$T/r.json" -q
expect_rc 0
expect_eq "skipped" 2 "$(json_field "$T/r.json" 'd["objects"]["skipped"]')"
expect_eq "GETs on the rerun (nothing read)" "$skip_gets" "$(gcs_requests storage.objects.get)"
run "$SLUICE" sync gs://bkt/d "$T/sync" --slice-size 1M -j 3 -q
expect_rc 0
cmp "$S/big.bin" "$T/sync/big.bin" || fail "sliced sync" "the same bytes" "different"

say "not sliced: -j 1, --slice-size 0, an object not bigger than a slice (one media read each)"
gcs_stats_reset
run "$SLUICE" cp gs://bkt/d/small.bin "$T/one" -q
expect_rc 0
one=$(gcs_requests storage.objects.get) # the GETs of one object's copy
for args in "-j 1 --slice-size 1M" "-j 4 --slice-size 0" "-j 4 --slice-size 6M"; do
    rm -rf "$T/one"
    gcs_stats_reset
    # shellcheck disable=SC2086
    run "$SLUICE" cp gs://bkt/d/big.bin "$T/one" $args -q
    expect_rc 0
    cmp "$S/big.bin" "$T/one/big.bin" || fail "copy with $args" "the same bytes" "different"
    expect_eq "GETs with $args" "$one" "$(gcs_requests storage.objects.get)"
done

say "a flipped byte in one slice: the combined CRC32C differs, nothing committed, tried again, then it succeeds"
rm -rf "$T/c"
tid=$(gcs_retry_test '{"storage.objects.get": ["pass", "pass", "return-corrupted-data"]}')
run "$SLUICE" cp gs://bkt/d/big.bin "$T/c" --slice-size 1M -j 2 -q --header "x-retry-test-id: $tid" \
    --report "$T/c.json"
expect_rc 0
gcs_expect_consumed "$tid"
cmp "$S/big.bin" "$T/c/big.bin" || fail "after a corrupted slice" "the same bytes" "different"
expect_eq "failures" 0 "$(json_field "$T/c.json" 'd["objects"]["failed"]')"
say "  ... and every slice corrupted: the object fails with the CRC32C mismatch named, no file, no temp file"
rm -rf "$T/c2"
mkdir -p "$T/c2"
tid=$(gcs_retry_test "$(python3 -c 'import json; print(json.dumps({"storage.objects.get": ["return-corrupted-data"] * 40}))')")
run "$SLUICE" cp gs://bkt/d/big.bin "$T/c2" --slice-size 1M -j 2 --header "x-retry-test-id: $tid" \
    --failures "$T/c2.fail"
expect_rc 1
expect_err_contains "CRC32C mismatch: the 6 slices read combine to"
[ ! -e "$T/c2/big.bin" ] || fail "a corrupted object" "no output file" "$(ls -la "$T/c2")"
no_tmp_files "$T/c2"

say "answers to ranges: cut short or padded (refused, as unsliced), the Range ignored (200: the bytes before dropped)"
head -c $((3 * 1048576 + 7)) /dev/urandom >"$T/m.bin"
python3 - "$T/m.bin" "$T/m.json" <<'PY'
import base64, json, sys
data = base64.b64encode(open(sys.argv[1], "rb").read()).decode()
objects = [{"name": f"m/{m}.bin", "data_b64": data, "serve": [m]} for m in ("short-body", "long-body", "ignore-range")]
json.dump({"bucket": "bkt", "objects": objects}, open(sys.argv[2], "w"))
PY
gcs_seed "@$T/m.json"
run "$SLUICE" cp gs://bkt/m/ignore-range.bin "$T/m" --slice-size 1M -j 3 -q "${FAST[@]}"
expect_rc 0
cmp "$T/m.bin" "$T/m/ignore-range.bin" || fail "ranges ignored" "the same bytes" "different"
for mode in short-body long-body; do
    run "$SLUICE" cp gs://bkt/m/$mode.bin "$T/m" --slice-size 1M -j 3 "${FAST[@]}"
    expect_rc 1
    expect_err_contains "not accepted"
    [ ! -e "$T/m/$mode.bin" ] || fail "$mode" "no output file" "a file"
done
no_tmp_files "$T/m"

say "the object replaced while its slices are read: the pinned generation is gone, nothing committed; a rerun copies the new one"
gcs_config '{"delay_ms": 300}'
rm -rf "$T/g"
gcs_stats_reset
"$SLUICE" cp gs://bkt/d/big.bin "$T/g" --slice-size 256K -j 2 --retries 0 >"$T/g.out" 2>"$T/g.err" &
pid=$!
# Replaced once a few slices have been read (21 slices at 2 per 300 ms take > 3 s): the server's count of object reads
# says when, however slowly a loaded machine starts the job.
for _ in $(seq 400); do
    [ "$(gcs_requests storage.objects.get)" -ge 4 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
done
mkdir -p "$T/new"
head -c $((5 * 1048576 + 12345)) /dev/urandom >"$T/new/big.bin"
"$SLUICE" cp "$T/new/big.bin" gs://bkt/d -q >"$T/up.out" 2>&1 &
upid=$!
RC=0
wait $pid || RC=$?
wait $upid || { cat "$T/up.out" >&2; fail "the upload of a new version" "exit 0" "exit $?"; }
gcs_config '{"delay_ms": 0}'
LAST_CMD="sluice cp gs://bkt/d/big.bin (replaced meanwhile)"
cp "$T/g.err" "$ERR"
expect_rc 1
[ ! -e "$T/g/big.bin" ] || fail "a replaced object" "no output file" "a file"
no_tmp_files "$T/g"
run "$SLUICE" cp gs://bkt/d/big.bin "$T/g" --slice-size 1M -j 4 -q
expect_rc 0
cmp "$T/new/big.bin" "$T/g/big.bin" || fail "the rerun" "the new object" "different"

say "kill -9 during a sliced download: no final file; the rerun (of the listing: it removes leftover temp files) completes"
gcs_config '{"delay_ms": 200}'
rm -rf "$T/k"
"$SLUICE" cp -r gs://bkt/d "$T/k" --slice-size 256K -j 3 -q >/dev/null 2>&1 &
pid=$!
sleep 1.2
kill -9 $pid
wait $pid 2>/dev/null || true
gcs_config '{"delay_ms": 0}'
[ ! -e "$T/k/big.bin" ] || fail "killed mid-download" "no final file" "a file"
# Where the file system has O_TMPFILE, a write without --fsync is a file without a name until it is complete: a kill
# leaves nothing behind at all.
if python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600))' "$T/k" 2>/dev/null; then
    [ -z "$(find "$T/k" -name '.sluice-tmp-*')" ] || fail "killed mid-download (unnamed files)" "no temp file left" \
        "$(find "$T/k" -name '.sluice-tmp-*')"
fi
run "$SLUICE" cp -r gs://bkt/d "$T/k" --slice-size 1M -j 3 -q
expect_rc 0
cmp "$T/new/big.bin" "$T/k/big.bin" || fail "after kill -9" "the object" "different"
no_tmp_files "$T/k"

say "  ... and of a single-object cp: its rerun lists the destination's top for the leftover temp file and removes it"
# --fsync: its writes have a temp name from the start (the group commit renames them), so the kill leaves one.
gcs_config '{"delay_ms": 200}'
rm -rf "$T/k1"
"$SLUICE" cp gs://bkt/d/big.bin "$T/k1" --slice-size 256K -j 3 -q --fsync >/dev/null 2>&1 &
pid=$!
sleep 1.2
kill -9 $pid
wait $pid 2>/dev/null || true
gcs_config '{"delay_ms": 0}'
[ -n "$(find "$T/k1" -name '.sluice-tmp-*' 2>/dev/null)" ] || fail "killed mid-download" "a temp file left" "none"
[ ! -e "$T/k1/big.bin" ] || fail "killed mid-download" "no final file" "a file"
run "$SLUICE" cp gs://bkt/d/big.bin "$T/k1" --slice-size 1M -j 3 -q
expect_rc 0
cmp "$T/new/big.bin" "$T/k1/big.bin" || fail "after kill -9" "the object" "different"
no_tmp_files "$T/k1"

say "a gzip-encoded object is not sliced (its CRC32C is of the stored bytes): one read, decompressed"
head -c 3000000 /dev/urandom | base64 >"$T/plain.txt"
gzip -c "$T/plain.txt" >"$T/plain.txt.gz"
python3 - "$T/plain.txt.gz" "$T/z.json" <<'PY'
import base64, json, sys
data = base64.b64encode(open(sys.argv[1], "rb").read()).decode()
json.dump({"bucket": "bkt", "objects": [{"name": "z/p.txt", "data_b64": data, "contentEncoding": "gzip"}]},
          open(sys.argv[2], "w"))
PY
gcs_seed "@$T/z.json"
gcs_stats_reset
run "$SLUICE" cp gs://bkt/z/p.txt "$T/z" --slice-size 256K -j 4 -q
expect_rc 0
cmp "$T/plain.txt" "$T/z/p.txt" || fail "gzip-encoded" "the decompressed bytes" "different"
expect_eq "GETs" "$one" "$(gcs_requests storage.objects.get)"

say "--composite-upload: local -> gs:// in 37 parts of 256 KiB (two levels of compose), no MD5, nothing else left"
mkdir -p "$T/up"
head -c $((9 * 1048576 + 5)) /dev/urandom >"$T/up/big.bin"
head -c 100 /dev/urandom >"$T/up/small.bin"
gcs_stats_reset
run "$SLUICE" cp "$T/up" gs://bkt/up --composite-upload --slice-size 256K -j 4 -q
expect_rc 0
expect_eq "componentCount" 37 "$(gcs_meta bkt up/big.bin 'd.get("componentCount")')"
expect_eq "md5Hash of a composite" null "$(gcs_meta bkt up/big.bin 'd.get("md5Hash")')"
case "$(gcs_meta bkt up/big.bin 'd["metadata"]["sluice-source"]')" in
*"size=$((9 * 1048576 + 5)) "*out_crc32c=*) ;;
*) fail "the composite's fingerprint" "size=... out_crc32c=..." "$(gcs_meta bkt up/big.bin 'd.get("metadata")')" ;;
esac
expect_eq "compose requests (2 of 32 and 5, then the 2 composed)" 3 "$(gcs_requests storage.objects.compose)"
expect_eq "objects under up/ (no part, no intermediate left)" "up/big.bin up/small.bin" \
    "$(gcs_objects bkt up/ | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')"
run "$SLUICE" cat gs://bkt/up/big.bin
cmp "$T/up/big.bin" "$OUT" || fail "the composite's bytes" "the file's" "different"
gcs_stats_reset
run "$SLUICE" cp "$T/up" gs://bkt/up --composite-upload --slice-size 256K -j 4 --report "$T/up.json" -q
expect_rc 0
expect_eq "skipped on the rerun" 2 "$(json_field "$T/up.json" 'd["objects"]["skipped"]')"
expect_eq "uploads on the rerun" 0 "$(gcs_requests storage.objects.insert)"
say "  ... without the flag: one upload, an MD5"
run "$SLUICE" cp "$T/up" gs://bkt/plain --slice-size 256K -j 4 -q
expect_rc 0
expect_eq "componentCount without the flag" null "$(gcs_meta bkt plain/big.bin 'd.get("componentCount")')"
[ "$(gcs_meta bkt plain/big.bin 'd.get("md5Hash")')" != null ] || fail "md5Hash" "present" "null"

say "  ... a key too long for its parts' names (1,010 bytes: + .sluice-part-... passes GCS's 1,024) goes up in one piece"
long="$(printf 'a%.0s' $(seq 250))/$(printf 'b%.0s' $(seq 250))/$(printf 'c%.0s' $(seq 250))/$(printf 'd%.0s' $(seq 250))"
mkdir -p "$T/lng/$(dirname "$long")"
head -c $((1048576 + 3)) /dev/urandom >"$T/lng/$long"
run "$SLUICE" cp "$T/lng" gs://bkt/lg --composite-upload --slice-size 256K -j 4 -q
expect_rc 0
expect_eq "componentCount of the long key" null "$(gcs_meta bkt "lg/$long" 'd.get("componentCount")')"
run "$SLUICE" cat "gs://bkt/lg/$long"
cmp "$T/lng/$long" "$OUT" || fail "the long key's object" "the file's bytes" "different"

say "--composite-upload failing: a part that cannot be uploaded, a compose refused: the object fails, no part left"
tid=$(gcs_retry_test "$(python3 -c 'import json; print(json.dumps({"storage.objects.insert": ["pass"] * 3 + ["return-400"] * 20}))')")
run "$SLUICE" cp "$T/up" gs://bkt/f1 --include big.bin --composite-upload --slice-size 1M -j 3 --header "x-retry-test-id: $tid" "${FAST[@]}"
expect_rc 1
expect_err_contains "FAILED big.bin"
expect_eq "objects under f1/" "" \
    "$(gcs_objects bkt f1/ | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')"
tid=$(gcs_retry_test '{"storage.objects.compose": ["return-400"]}')
run "$SLUICE" cp "$T/up" gs://bkt/f2 --include big.bin --composite-upload --slice-size 1M -j 3 --header "x-retry-test-id: $tid" "${FAST[@]}"
expect_rc 1
gcs_expect_consumed "$tid"
expect_err_contains "composing 10 parts into gs://bkt/f2/big.bin: HTTP 400"
expect_eq "objects under f2/" "" \
    "$(gcs_objects bkt f2/ | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')"

say "--composite-upload of a file that changes while its parts go up: refused (size or modification time), no part left"
gcs_config '{"delay_ms": 150}'
"$SLUICE" cp "$T/up" gs://bkt/f3 --composite-upload --slice-size 256K -j 2 --include big.bin >"$T/f3.out" 2>"$T/f3.err" &
pid=$!
sleep 1
printf 'more' >>"$T/up/big.bin"
RC=0
wait $pid || RC=$?
gcs_config '{"delay_ms": 0}'
LAST_CMD="sluice cp --composite-upload (the file grows meanwhile)"
cp "$T/f3.err" "$ERR"
expect_rc 1
expect_err_contains "changed since it was listed"
expect_eq "objects under f3/" "" \
    "$(gcs_objects bkt f3/ | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')"

say "--slice-size: usage"
run "$SLUICE" cp -r gs://bkt/d "$T/u" --slice-size 1K
expect_rc 2
expect_err_one_line "--slice-size takes a size of at least 256K"
run "$SLUICE" map gs://bkt/d - --op md5 --slice-size 1M
expect_rc 2
run "$SLUICE" map gs://bkt/d - --op md5 --composite-upload
expect_rc 2

gcs_finish
