#!/usr/bin/env bash
# Every store lists in the same byte order: the same odd keys in a local tree and in gs:// (the test server) come out
# of `sluice ls -r` (and --json) in the same sequence, which is the byte order of the keys (Python's sorted() of the
# UTF-8 bytes as the oracle). Resume merge-joins two listings and relies on this.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

# Keys around '/', '.', '-', ' ', '%', '~', '+', digits, upper case, and multi-byte UTF-8 (2, 3 and 4 bytes), with
# prefixes of one another at several depths: "a" sorts after "a b", "a-b", "a.b" and "a/c" only as a directory does.
python3 - "$T/src" "$T/keys" <<'PY'
import os, sys
root, out = sys.argv[1], sys.argv[2]
keys = ["a-b", "a/c", "a b", "a%", "a%2F", "a.b", "a0", "a~", "a+b", "A", "Z", "_", "a/b/c", "a/b-c", "a/b.c",
        "a/b/c-d", "a.c/d", "ab", "abc/d", "é", "e\u0301", "日本/語", "日本語", "😀", "\u00ff", "a/\u00e9", "a/z",
        "z/a b/c", "z/a-b/c", "z/a/b", "1", "10", "2", "-", ".x", "x.", "x!", "x#", "x$", "x&", "x'", "x(", "x=",
        "x@", "x[", "x]", "x^", "x`", "x{", "x}", "x,", "x;"]
with open(out, "wb") as f:
    for k in sorted(keys, key=lambda k: k.encode()):
        f.write(k.encode() + b"\n")
for k in keys:
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(k.encode())
PY
n=$(wc -l <"$T/keys")

gcs_start --bucket sl-order
run "$SLUICE" cp "$T/src" gs://sl-order/p -q
expect_rc 0

say "ls -r of the local tree: the $n keys in byte order"
run "$SLUICE" ls -r "$T/src"
expect_rc 0
expect_out_file "$T/keys"
cp "$OUT" "$T/local.txt"

say "ls -r of the same keys in gs://: the same sequence"
run "$SLUICE" ls -r gs://sl-order/p
expect_rc 0
expect_out_file "$T/local.txt"

say "ls -r --json: the same sequence of exact names in both stores"
run "$SLUICE" ls -r --json "$T/src"
expect_rc 0
python3 -c 'import json,sys; [print(json.loads(l)["key"]) for l in open(sys.argv[1], encoding="utf-8")]' "$OUT" >"$T/local.json.keys"
cmp -s "$T/local.json.keys" "$T/keys" || fail "local --json keys" "the keys in byte order" "$(head -5 "$T/local.json.keys")"
run "$SLUICE" ls -r --json gs://sl-order/p
expect_rc 0
python3 -c 'import json,sys; [print(json.loads(l)["key"]) for l in open(sys.argv[1], encoding="utf-8")]' "$OUT" >"$T/gs.json.keys"
cmp -s "$T/gs.json.keys" "$T/keys" || fail "gs:// --json keys" "the keys in byte order" "$(head -5 "$T/gs.json.keys")"

say "one level (no -r): prefixes and objects interleaved in the same order in both stores"
run "$SLUICE" ls "$T/src"
expect_rc 0
cp "$OUT" "$T/local1.txt"
run "$SLUICE" ls gs://sl-order/p
expect_rc 0
expect_out_file "$T/local1.txt"

say "the merge-join that relies on it: a rerun of cp between the two stores skips every key, both ways"
run "$SLUICE" cp "$T/src" gs://sl-order/p -q --report "$T/r1.json"
expect_rc 0
expect_eq "local -> gs rerun skipped" "$n" "$(json_field "$T/r1.json" 'd["objects"]["skipped"]')"
run "$SLUICE" cp gs://sl-order/p "$T/back" -q
expect_rc 0
run "$SLUICE" cp gs://sl-order/p "$T/back" -q --report "$T/r2.json"
expect_rc 0
expect_eq "gs -> local rerun skipped" "$n" "$(json_field "$T/r2.json" 'd["objects"]["skipped"]')"

gcs_finish
