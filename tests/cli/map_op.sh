#!/usr/bin/env bash
# map --op: md5, sha256, crc32c, count and gunzip to '-' compared with md5sum, sha256sum, a Python CRC32C, wc and
# gzip -dc; the same ops to a real DST (one JSON line per output object; gunzip writes the decompressed bytes).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import gzip, os, random, sys
root = sys.argv[1]
rng = random.Random(11)
def put(k, data):
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
put("empty", b"")
put("one-byte", b"a")
put("no-final-newline.txt", b"one\ntwo\nthree")
put("only-newlines", b"\n" * 1000)
put("crlf.txt", b"a\r\nb\r\n")
put("bin/random-300k", bytes(rng.randrange(256) for _ in range(300 * 1024 + 7)))  # > one 256 KiB buffer
put("bin/zeros-1m", b"\0" * (1 << 20))
put("text/lorem.txt", b"".join(b"lorem ipsum %d dolor\n" % i for i in range(20000)))
for i in range(20):
    put("many/f%02d" % i, bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 3000))) + b"\n" * (i % 3))
PY
keys() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

# sorted_out: the JSON lines of $OUT sorted by key (results arrive in completion order)
sorted_out() {
    python3 -c '
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1], "rb")]
for d in sorted(ls, key=lambda d: d["key"].encode()):
    print(json.dumps(d, sort_keys=True, ensure_ascii=False))' "$OUT"
}

# expected LINE-MAKER: one JSON line per object computed by a shell tool; $1 is a function KEY -> fields
want_lines() {
    local fn="$1" k
    if [ "$fn" = cat ]; then cat; else
        while IFS= read -r k; do
            "$fn" "$k"
        done < <(keys "$S")
    fi | python3 -c '
import json, sys
for l in sys.stdin:
    print(json.dumps(json.loads(l), sort_keys=True, ensure_ascii=False))'
}
line_md5() { printf '{"key":"%s","size":%d,"md5":"%s"}\n' "$1" "$(stat -c %s "$S/$1")" "$(md5sum <"$S/$1" | cut -d' ' -f1)"; }
line_sha256() { printf '{"key":"%s","size":%d,"sha256":"%s"}\n' "$1" "$(stat -c %s "$S/$1")" "$(sha256sum <"$S/$1" | cut -d' ' -f1)"; }
line_count() { printf '{"key":"%s","size":%d,"bytes":%d,"lines":%d}\n' "$1" "$(stat -c %s "$S/$1")" "$(wc -c <"$S/$1")" "$(wc -l <"$S/$1")"; }

# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): a small table implementation; one JSON line per file
cat >"$T/crc32c.py" <<'PY'
import json, os, sys
T = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
assert crc32c(b"123456789") == 0xE3069283  # the standard check value
root = sys.argv[1]
for key in sys.stdin.read().splitlines():
    data = open(os.path.join(root, key), "rb").read()
    print(json.dumps({"key": key, "size": len(data), "crc32c": "%08x" % crc32c(data)}))
PY
check_op() { # check_op OP: map --op OP to '-' equals the lines made by line_OP
    say "--op $1 to '-' matches $2 for every object"
    run "$SLUICE" map "$S" - --op "$1" -q
    expect_rc 0
    expect_err_empty
    sorted_out >"$T/got.$1"
    if [ "$1" = crc32c ]; then
        keys "$S" | python3 "$T/crc32c.py" "$S" | want_lines cat >"$T/want.$1"
    else
        want_lines "line_$1" >"$T/want.$1"
    fi
    cmp -s "$T/want.$1" "$T/got.$1" || fail "map --op $1" "the lines in $T/want.$1" "$(diff "$T/want.$1" "$T/got.$1" | head -6)"
}
check_op md5 md5sum
check_op sha256 sha256sum
check_op crc32c "a Python CRC-32C"
check_op count "wc -c / wc -l"

say "every result line is one JSON object and ends in a newline; stderr has only the summary without -q"
run "$SLUICE" map "$S" - --op md5
expect_rc 0
expect_eq "result lines" "$(keys "$S" | wc -l)" "$(wc -l <"$OUT")"
[ "$(tail -c 1 "$OUT" | od -An -c | tr -d ' ')" = '\n' ] || fail "last byte of stdout" "newline" "$(tail -c 1 "$OUT" | od -An -c)"
expect_eq "stderr lines" 1 "$(wc -l <"$ERR")"
expect_err_contains "$(keys "$S" | wc -l) done (0 skipped), 0 failed of $(keys "$S" | wc -l) objects"

say "--op gunzip to '-': bytes_out equals the size gzip -dc gives (single and multi-member files)"
G="$T/gz"
mkdir -p "$G/sub"
gzip -c -n "$S/text/lorem.txt" >"$G/lorem.txt.gz"
gzip -c -n "$S/bin/random-300k" >"$G/sub/random.gz"
gzip -c -n </dev/null >"$G/empty.gz"
{ gzip -c -n "$S/crlf.txt"; gzip -c -n "$S/no-final-newline.txt"; gzip -c -n "$S/bin/zeros-1m"; } >"$G/multi.gz"
run "$SLUICE" map "$G" - --op gunzip -q
expect_rc 0
sorted_out >"$T/got.gunzip"
for k in $(keys "$G"); do
    printf '{"key":"%s","size":%d,"bytes_out":%d}\n' "$k" "$(stat -c %s "$G/$k")" "$(gzip -dc "$G/$k" | wc -c)"
done | python3 -c '
import json, sys
for l in sys.stdin:
    print(json.dumps(json.loads(l), sort_keys=True))' >"$T/want.gunzip"
cmp -s "$T/want.gunzip" "$T/got.gunzip" || fail "map --op gunzip -" "$(cat "$T/want.gunzip")" "$(cat "$T/got.gunzip")"

say "--op gunzip to a DST writes the decompressed bytes (== gzip -dc), with --suffix"
run "$SLUICE" map "$G" "$T/gunz" --op gunzip -q --suffix .raw
expect_rc 0
for k in $(keys "$G"); do
    gzip -dc "$G/$k" >"$T/want"
    cmp -s "$T/want" "$T/gunz/$k.raw" || fail "gunzip output of $k" "the bytes of gzip -dc" "differs"
done
no_tmp_files "$T/gunz"

say "--op gunzip on data that is not gzip: that object fails (exit 1) with a message, the others are done"
printf 'not gzip at all' >"$G/broken.gz"
head -c 100 "$G/lorem.txt.gz" >"$G/truncated.gz"
run "$SLUICE" map "$G" "$T/gunz2" --op gunzip --failures "$T/gz.fail"
expect_rc 1
expect_err_contains "FAILED broken.gz"
expect_err_contains "FAILED truncated.gz"
expect_eq "failed keys" "$(printf '%s\n' broken.gz truncated.gz)" \
    "$(python3 -c 'import json,sys; [print(json.loads(l)["key"]) for l in open(sys.argv[1])]' "$T/gz.fail" | sort)"
expect_eq "outputs (no partial output for the failed ones)" "$(printf '%s\n' empty.gz lorem.txt.gz multi.gz sub/random.gz)" \
    "$(keys "$T/gunz2")"
no_tmp_files "$T/gunz2"

say "--op md5/sha256/crc32c/count to a real DST: one output object per input holding that object's JSON line"
for op in md5 sha256 crc32c count; do
    run "$SLUICE" map "$S" "$T/op-$op" --op "$op" -q --suffix ".$op"
    expect_rc 0
    expect_eq "outputs of --op $op" "$(keys "$S" | sed "s/\$/.$op/")" "$(keys "$T/op-$op")"
    python3 - "$T/op-$op" "$op" "$T/want.$op" <<'PY' || fail "--op $op output objects" "each file: exactly one JSON object == the '-' line" "see above"
import json, os, sys
root, op, want = sys.argv[1], sys.argv[2], sys.argv[3]
want = {json.loads(l)["key"]: json.loads(l) for l in open(want, "rb")}
n = 0
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        raw = open(p, "rb").read()
        body = raw[:-1] if raw.endswith(b"\n") else raw
        assert b"\n" not in body, (p, raw)  # one line
        obj = json.loads(body)
        key = os.path.relpath(p, root)[: -len("." + op)]
        assert obj == want[key], (obj, want[key])
        n += 1
assert n == len(want), (n, len(want))
PY
done

say "sync uses CRC32C: an output made by --op crc32c agrees with sync's view (sync to a copy skips all)"
run "$SLUICE" cp "$S" "$T/copy" -q
expect_rc 0
run "$SLUICE" sync "$S" "$T/copy" -q --report "$T/sync.json"
expect_rc 0
expect_eq "skipped" "$(keys "$S" | wc -l)" "$(json_field "$T/sync.json" 'd["objects"]["skipped"]')"

say "unknown --op: exit 2, one line listing the built-ins"
run "$SLUICE" map "$S" - --op md6
expect_rc 2
expect_out
expect_err_one_line "md5"
expect_err_contains "md6"

finish
