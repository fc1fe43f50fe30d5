#!/usr/bin/env bash
# Every command end to end against the GCS test server: ls (one level, -r, -l, --json), du, cat (--range, 416
# cases), cp local->gs, gs->local, gs->gs (server-side rewrite, multi-step), sync (a second run copies nothing),
# map --exec and --op from gs:// to gs://, to a local directory and to '-'. Where a local directory can answer the
# same question, the gs:// answer must be identical to the local one; otherwise the server's own JSON is the oracle.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(11)
files = {
    "top.txt": b"hello\n",
    "empty": b"",
    "z-last": b"zzz",
    "a/one.bin": b"\x00",
    "a/b/deep.bin": bytes(rng.randrange(256) for _ in range(4096)),
    "a/b/c/big.bin": os.urandom(1024 * 1024 + 512 * 1024),
    "c/text.csv": b"".join(b"id%d,user%d,%d\n" % (i, i % 7, i * 3) for i in range(500)),
    "c/all256.bin": bytes(range(256)) * 3,
}
for k, v in files.items():
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(v)
PY
N=8
B=$(find "$S" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
keys() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }
same_tree() { # same_tree A B WHAT
    diff -r "$1" "$2" >"$T/diff.txt" 2>&1 || fail "$3" "no difference between $1 and $2" "$(head -5 "$T/diff.txt")"
}
human() {
    python3 -c '
import sys
b = float(sys.argv[1]); u = 0
units = ["B", "KiB", "MiB", "GiB", "TiB"]
while b >= 1024 and u < 4: b /= 1024; u += 1
print("%.0f %s" % (b, units[u]) if u == 0 else "%.1f %s" % (b, units[u]))' "$1"
}
# server_matches_tree BUCKET PREFIX DIR: the objects under gs://BUCKET/PREFIX are exactly the files of DIR, with the
# same sizes and the CRC32C and MD5 of the local bytes (computed here in Python).
server_matches_tree() {
    gcs_objects "$1" "$2" >"$T/objs.jsonl"
    python3 - "$T/objs.jsonl" "$2" "$3" <<'PY' || fail "objects on the server under gs://$1/$2" "exactly the files of $3" "see above"
import base64, hashlib, json, os, struct, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
prefix, root = sys.argv[2], sys.argv[3]
table = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return base64.b64encode(struct.pack(">I", crc ^ 0xFFFFFFFF)).decode()
want = {}
for d, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(d, f)
        want[prefix + os.path.relpath(p, root)] = open(p, "rb").read()
got = {o["name"]: o for o in objs}
assert sorted(got) == sorted(want), ("names differ", sorted(set(got) ^ set(want)))
for name, data in want.items():
    o = got[name]
    assert int(o["size"]) == len(data), (name, o["size"], len(data))
    assert o["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode(), (name, "md5")
    assert o["crc32c"] == crc32c(data), (name, "crc32c", o["crc32c"], crc32c(data))
PY
}

gcs_start --bucket sl-test --bucket sl-copy

say "cp local -> gs://: every file arrives with the same name, size, MD5 and CRC32C (server's metadata)"
run "$SLUICE" cp "$S" gs://sl-test/in -j 4
expect_rc 0
expect_eq "stderr: one summary line" 1 "$(wc -l <"$ERR")"
expect_err_contains "sluice: cp: $N done (0 skipped), 0 failed of $N objects"
server_matches_tree sl-test in/ "$S"

say "ls one level: files and sub-prefixes (with '/'), byte order, identical to ls of the local directory"
for sub in "" /a /a/b /c; do
    run "$SLUICE" ls "$S$sub"
    expect_rc 0
    cp "$OUT" "$T/ls.local"
    run "$SLUICE" ls "gs://sl-test/in$sub"
    expect_rc 0
    expect_err_empty
    expect_out_file "$T/ls.local"
    run "$SLUICE" ls "gs://sl-test/in$sub/"
    expect_rc 0
    expect_out_file "$T/ls.local"
done
run "$SLUICE" ls gs://sl-test/in
expect_out "a/" "c/" "empty" "top.txt" "z-last"

say "ls of the bucket root and of a prefix that is not a '/' boundary"
run "$SLUICE" ls gs://sl-test
expect_rc 0
expect_out "in/"

say "ls -r: every key relative to the URL, byte order, identical to the local listing"
run "$SLUICE" ls -r "$S"
cp "$OUT" "$T/ls.local"
run "$SLUICE" ls -r gs://sl-test/in
expect_rc 0
expect_err_empty
expect_out_file "$T/ls.local"
expect_eq "ls -r line count" "$N" "$(wc -l <"$OUT")"

say "ls -l -r: size, updated (UTC, seconds) and key from the server's metadata, then a TOTAL line"
gcs_objects sl-test in/ >"$T/objs.jsonl"
python3 - "$T/objs.jsonl" "$(human "$B")" >"$T/want" <<'PY'
import json, sys
objs = sorted((json.loads(l) for l in open(sys.argv[1])), key=lambda o: o["name"].encode())
total = 0
for o in objs:
    total += int(o["size"])
    print("%12d  %-20s  %s" % (int(o["size"]), o["updated"][:19] + "Z", o["name"][len("in/"):]))
print("TOTAL: %d objects, %d bytes (%s)" % (len(objs), total, sys.argv[2]))
PY
run "$SLUICE" ls -l -r gs://sl-test/in
expect_rc 0
expect_out_file "$T/want"

say "ls -l one level: prefixes have empty size and time columns"
run "$SLUICE" ls -l gs://sl-test/in/a
expect_rc 0
expect_out "$(printf '%12s  %-20s  b/' '' '')" "$(grep ' a/one.bin$' "$T/want" | sed 's| a/one.bin$| one.bin|')" \
    "TOTAL: 1 objects, 1 bytes (1 B)"

say "ls --json -r: key, size, updated, generation, crc32c and md5 (hex) equal the server's object resources"
run "$SLUICE" ls --json -r gs://sl-test/in
expect_rc 0
python3 - "$T/objs.jsonl" "$OUT" <<'PY' || fail "ls --json" "the server's metadata" "see the assertion above"
import base64, json, sys
objs = sorted((json.loads(l) for l in open(sys.argv[1])), key=lambda o: o["name"].encode())
lines = [json.loads(l) for l in open(sys.argv[2], "rb")]
assert len(lines) == len(objs), (len(lines), len(objs))
for o, l in zip(objs, lines):
    want = {"key": o["name"][3:], "size": int(o["size"]), "updated": o["updated"], "generation": o["generation"],
            "crc32c": base64.b64decode(o["crc32c"]).hex(), "md5": base64.b64decode(o["md5Hash"]).hex()}
    assert l == want, (l, want)
PY
run "$SLUICE" ls --json gs://sl-test/in/a/b
expect_rc 0
expect_eq "ls --json one level, first line" '{"prefix":"c/"}' "$(head -1 "$OUT")"
expect_eq "ls --json one level, lines" 2 "$(wc -l <"$OUT")"

say "ls of one object's URL lists that object; --include filters"
run "$SLUICE" ls "$S/c/text.csv"
cp "$OUT" "$T/ls.local"
run "$SLUICE" ls gs://sl-test/in/c/text.csv
expect_rc 0
expect_out_file "$T/ls.local"
run "$SLUICE" ls -r gs://sl-test/in --include '*.bin'
expect_out "a/b/c/big.bin" "a/b/deep.bin" "a/one.bin" "c/all256.bin"

say "du: count and bytes, plain and --json, with --include"
run "$SLUICE" du gs://sl-test/in
expect_rc 0
expect_err_empty
expect_out "$N objects, $B bytes ($(human "$B"))	gs://sl-test/in"
run "$SLUICE" du --json gs://sl-test/in/c
expect_out "{\"objects\":2,\"bytes\":$(($(stat -c %s "$S/c/text.csv") + 768))}"
run "$SLUICE" du --json gs://sl-test/in --include '*.bin' --exclude 'a/b/c/*'
expect_out '{"objects":3,"bytes":4865}'

say "cat: the exact bytes of every object"
while read -r k; do
    run "$SLUICE" cat "gs://sl-test/in/$k"
    expect_rc 0
    expect_err_empty
    expect_out_file "$S/$k"
done < <(keys "$S")

say "cat of a missing object or bucket: exit 3 and one line"
run "$SLUICE" cat gs://sl-test/in/no-such-object
expect_rc 3
expect_err_one_line "gs://sl-test/in/no-such-object"
run "$SLUICE" cat gs://no-such-bucket/x
expect_rc 3
expect_err_one_line "no-such-bucket"

say "ls/du of a bucket that does not exist: exit 3, one line naming it"
run "$SLUICE" ls gs://no-such-bucket/x
expect_rc 3
expect_err_one_line "no such bucket"
run "$SLUICE" du gs://no-such-bucket
expect_rc 3
expect_err_one_line "no such bucket"

say "cp gs:// -> local: the tree comes back byte for byte, no temp files"
run "$SLUICE" cp gs://sl-test/in "$T/back" -j 3
expect_rc 0
expect_err_contains "sluice: cp: $N done (0 skipped), 0 failed of $N objects"
same_tree "$S" "$T/back" "gs -> local"
no_tmp_files "$T/back"

say "cp of one gs:// object copies it to DST/<its name>"
run "$SLUICE" cp gs://sl-test/in/c/text.csv "$T/single"
expect_rc 0
expect_eq "files in DST" "text.csv" "$(keys "$T/single")"
cmp -s "$S/c/text.csv" "$T/single/text.csv" || fail "single object copy" "same bytes" "different"

say "cp gs:// -> gs://: server-side rewrite only (no upload, no download), identical objects"
gcs_stats_reset
run "$SLUICE" cp gs://sl-test/in gs://sl-copy/out -j 4
expect_rc 0
expect_err_contains "sluice: cp: $N done (0 skipped), 0 failed of $N objects"
expect_eq "storage.objects.rewrite requests" "$N" "$(gcs_requests storage.objects.rewrite)"
expect_eq "storage.objects.insert requests" 0 "$(gcs_requests storage.objects.insert)"
server_matches_tree sl-copy out/ "$S"

say "cp gs:// -> gs:// with a 1 MiB rewrite chunk: multi-step rewrites (rewriteToken) complete"
gcs_config '{"rewrite_chunk": 1048576}'
gcs_stats_reset
run "$SLUICE" cp gs://sl-test/in gs://sl-copy/out2 -j 2
expect_rc 0
# 7 objects below 1 MiB take one call each; the 1.5 MiB one takes 2.
expect_eq "storage.objects.rewrite requests" $((N - 1 + 2)) "$(gcs_requests storage.objects.rewrite)"
server_matches_tree sl-copy out2/ "$S"
gcs_config '{"rewrite_chunk": 0}'

say "sync local -> gs://: a second run copies nothing (--report), uploads nothing"
gcs_stats_reset
run "$SLUICE" sync "$S" gs://sl-test/in --report "$T/sync1.json"
expect_rc 0
expect_eq "sync skipped" "$N" "$(json_field "$T/sync1.json" 'd["objects"]["skipped"]')"
expect_eq "sync done" "$N" "$(json_field "$T/sync1.json" 'd["objects"]["done"]')"
expect_eq "sync bytes written" 0 "$(json_field "$T/sync1.json" 'd["bytes"]["written"]')"
expect_eq "storage.objects.insert requests" 0 "$(gcs_requests storage.objects.insert)"

say "sync local -> gs:// after a change copies exactly the changed object"
printf 'hello again\n' >"$S/top.txt"
run "$SLUICE" sync "$S" gs://sl-test/in --report "$T/sync2.json"
expect_rc 0
expect_eq "sync skipped" $((N - 1)) "$(json_field "$T/sync2.json" 'd["objects"]["skipped"]')"
expect_eq "sync bytes written" 12 "$(json_field "$T/sync2.json" 'd["bytes"]["written"]')"
server_matches_tree sl-test in/ "$S"

say "sync gs:// -> local and gs:// -> gs://: first run copies, second run copies nothing"
run "$SLUICE" sync gs://sl-test/in "$T/back" --report "$T/sync3.json"
expect_rc 0
expect_eq "sync gs->local first run skipped" $((N - 1)) "$(json_field "$T/sync3.json" 'd["objects"]["skipped"]')"
same_tree "$S" "$T/back" "sync gs -> local"
run "$SLUICE" sync gs://sl-test/in "$T/back" --report "$T/sync4.json"
expect_rc 0
expect_eq "sync gs->local second run skipped" "$N" "$(json_field "$T/sync4.json" 'd["objects"]["skipped"]')"
expect_eq "sync gs->local second run written" 0 "$(json_field "$T/sync4.json" 'd["bytes"]["written"]')"
gcs_stats_reset
run "$SLUICE" sync gs://sl-test/in gs://sl-copy/out --report "$T/sync5.json"
expect_rc 0
expect_eq "sync gs->gs skipped" $((N - 1)) "$(json_field "$T/sync5.json" 'd["objects"]["skipped"]')"
expect_eq "storage.objects.rewrite requests" 1 "$(gcs_requests storage.objects.rewrite)"
gcs_stats_reset
run "$SLUICE" sync gs://sl-test/in gs://sl-copy/out --report "$T/sync6.json"
expect_rc 0
expect_eq "sync gs->gs second run skipped" "$N" "$(json_field "$T/sync6.json" 'd["objects"]["skipped"]')"
expect_eq "storage.objects.rewrite requests" 0 "$(gcs_requests storage.objects.rewrite)"
expect_eq "storage.objects.insert requests" 0 "$(gcs_requests storage.objects.insert)"
server_matches_tree sl-copy out/ "$S"

say "map --exec gs:// -> gs://: each output object is the command's stdout"
run "$SLUICE" map gs://sl-test/in/c gs://sl-copy/upper --exec 'tr a-z A-Z' --suffix .up
expect_rc 0
mkdir -p "$T/upper"
for f in text.csv all256.bin; do tr a-z A-Z <"$S/c/$f" >"$T/upper/$f.up"; done
server_matches_tree sl-copy upper/ "$T/upper"

say "map --exec gs:// -> local: same outputs as the same map over the local directory"
run "$SLUICE" map "$S" "$T/m-local" --shell --exec 'printf "%s %s " "$SLUICE_KEY" "$SLUICE_SIZE"; wc -c' --suffix .n
expect_rc 0
run "$SLUICE" map gs://sl-test/in "$T/m-gs" --shell --exec 'printf "%s %s " "$SLUICE_KEY" "$SLUICE_SIZE"; wc -c' \
    --suffix .n
expect_rc 0
same_tree "$T/m-local" "$T/m-gs" "map --exec gs -> local vs local -> local"

say "map --op to '-': one JSON line per object, same lines as over the local directory"
for op in md5 crc32c sha256 count; do
    run "$SLUICE" map "$S" - --op "$op" -q
    expect_rc 0
    sort "$OUT" >"$T/op.local"
    run "$SLUICE" map gs://sl-test/in - --op "$op" -q
    expect_rc 0
    expect_err_empty
    sort "$OUT" >"$T/op.gs"
    cmp -s "$T/op.local" "$T/op.gs" || fail "map --op $op gs:// vs local" "same lines" "$(diff "$T/op.local" "$T/op.gs" | head -6)"
done
expect_eq "md5 of big.bin from map --op md5" "$(md5sum <"$S/a/b/c/big.bin" | cut -d' ' -f1)" \
    "$("$SLUICE" map gs://sl-test/in/a/b/c - --op md5 -q | python3 -c 'import json,sys; print(json.load(sys.stdin)["md5"])')"

say "map --op gs:// -> gs:// and gs:// -> local: output objects equal those of the local run"
run "$SLUICE" map "$S" "$T/op-local" --op count --suffix .count
expect_rc 0
run "$SLUICE" map gs://sl-test/in gs://sl-copy/counts --op count --suffix .count
expect_rc 0
server_matches_tree sl-copy counts/ "$T/op-local"
run "$SLUICE" map gs://sl-test/in "$T/op-gs" --op count --suffix .count
expect_rc 0
same_tree "$T/op-local" "$T/op-gs" "map --op count gs -> local"

say "map --exec to '-': the output field carries the command's stdout"
run "$SLUICE" map gs://sl-test/in/c - --exec 'wc -l' -q
expect_rc 0
expect_eq "lines" 2 "$(wc -l <"$OUT")"
python3 - "$OUT" <<'PY' || fail "map --exec to -" "text.csv: output '500\\n'" "$(cat "$OUT")"
import json, sys
d = {l["key"]: l for l in map(json.loads, open(sys.argv[1]))}
assert d["text.csv"]["output"] == "500\n", d
PY

say "map --exec: a failing command fails that object alone (exit 1), others are written to gs://"
run "$SLUICE" map gs://sl-test/in/c gs://sl-copy/fail --shell --exec 'test "$SLUICE_KEY" != text.csv && cat'
expect_rc 1
expect_err_contains "FAILED text.csv"
expect_eq "objects written" "fail/all256.bin" "$(gcs_objects sl-copy fail/ | json_field /dev/stdin 'd["name"]')"

say "cp local -> a bucket that does not exist: the job fails (non-zero), nothing pretends to be done"
run "$SLUICE" cp "$S/c" gs://no-such-bucket/x
[ "$RC" != 0 ] || fail "cp to a missing bucket" "a non-zero exit" "0"
expect_err_contains "no-such-bucket"

# Last because it takes a while; every pair of A-B around the sizes of the objects.
say "cat --range: same bytes and exit status as on the local store (A-B, A-, -N, clamped ends, 416 cases)"
small_ranges="0-0 0-9 5- -1 -10 -100000 10-20 700-9999 767-767 767- 768- 768-800 1000-2000 6-6 5-5 6- 1- 0-"
for k in c/all256.bin empty top.txt a/one.bin a/b/c/big.bin; do
    ranges=$small_ranges
    [ "$k" != a/b/c/big.bin ] || ranges="0-0 -10 1572863- 1572864- 1572860-1600000 1048576-1310719 99-300000"
    for r in $ranges; do
        run "$SLUICE" cat --range "$r" "$S/$k"
        lrc=$RC
        cp "$OUT" "$T/cat.local"
        run "$SLUICE" cat --range "$r" "gs://sl-test/in/$k"
        [ "$RC" = "$lrc" ] || fail "cat --range $r of $k: exit status like the local store" "$lrc" "$RC"
        expect_out_file "$T/cat.local"
        if [ "$RC" != 0 ]; then
            expect_err_one_line
        else
            expect_err_empty
        fi
    done
done
run "$SLUICE" cat --range 5000- gs://sl-test/in/c/all256.bin
expect_rc 3
expect_err_one_line "past the end"

gcs_finish
