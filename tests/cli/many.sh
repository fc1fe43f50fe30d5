#!/usr/bin/env bash
# 10,000 small files in 100 directories: listing order and count, du totals, cp + diff -r, and sync's skip logic
# (second run copies nothing; a same-size rewrite and an append are copied, nothing else).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
D="$T/dst"
say "generating 10,000 files in 100 directories (plus siblings a-b, a/c, a.txt, a0 at several levels)"
python3 - "$S" <<'PY'
import os, sys
root = sys.argv[1]
n = 0
def put(key, data):
    global n
    p = os.path.join(root, key)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    n += 1
# directories whose order per component (d05 < d05-x < d05.x < d050) differs from the order of full keys
# (d05-x/.. < d05.x/.. < d05/.. < d050/..)
dirs = ["d%02d" % i for i in range(96)] + ["d05-x", "d05.x", "d050", "D05"]
for i, d in enumerate(dirs):
    for j in range(100 if i < 92 else 99):
        put("%s/f%03d%s" % (d, j, ["", ".txt", "-b", "0"][j % 4]), b"%d/%d\n" % (i, j) * (1 + (i * j) % 37))
for k in ["a-b", "a/c", "a.txt", "a0", "d01/a-b", "d01/a/c", "d01/a.txt", "d01/a0"]:
    put(k, k.encode())
assert n == 10000, n
PY
python3 - "$S" >"$T/want.keys" <<'PY'
import os, sys
root = os.fsencode(sys.argv[1])
keys = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs]
sys.stdout.buffer.write(b"".join(k + b"\n" for k in sorted(keys)))
PY
expect_eq "files generated" 10000 "$(wc -l <"$T/want.keys")"

say "ls -r: 10,000 keys, in Python's sorted() order of the key bytes"
run "$SLUICE" ls -r "$S"
expect_rc 0
expect_err_empty
expect_eq "ls -r line count" 10000 "$(wc -l <"$OUT")"
expect_out_file "$T/want.keys"

say "du: totals equal Python's"
read -r n b < <(python3 -c '
import os, sys
fs = [os.path.join(d, f) for d, _, x in os.walk(sys.argv[1]) for f in x]
print(len(fs), sum(os.path.getsize(f) for f in fs))' "$S")
run "$SLUICE" du --json "$S"
expect_rc 0
expect_out "{\"objects\":$n,\"bytes\":$b}"

say "cp SRC DST copies every file: diff -r finds no difference; report counts 10,000"
run "$SLUICE" cp "$S" "$D" -q --report "$T/cp.json"
expect_rc 0
expect_err_empty
diff -r "$S" "$D" >"$T/diff.txt" || fail "diff -r SRC DST after cp" "no difference" "$(head -5 "$T/diff.txt")"
expect_eq "cp report objects" '{"listed": 10000, "done": 10000, "skipped": 0, "failed": 0}' \
    "$(json_field "$T/cp.json" 'd["objects"]')"
expect_eq "cp report bytes" "{\"listed\": $b, \"read\": $b, \"written\": $b}" "$(json_field "$T/cp.json" 'd["bytes"]')"
no_tmp_files "$D"

say "sync right after: copies nothing (objects.skipped == 10000, bytes.written == 0), changes nothing"
find "$D" -type f -printf '%P %T@\n' | sort >"$T/mtimes.before"
run "$SLUICE" sync "$S" "$D" -q --report "$T/sync1.json"
expect_rc 0
expect_eq "sync report objects.skipped" 10000 "$(json_field "$T/sync1.json" 'd["objects"]["skipped"]')"
expect_eq "sync report objects.done" 10000 "$(json_field "$T/sync1.json" 'd["objects"]["done"]')"
expect_eq "sync report bytes.written" 0 "$(json_field "$T/sync1.json" 'd["bytes"]["written"]')"
find "$D" -type f -printf '%P %T@\n' | sort >"$T/mtimes.after"
cmp -s "$T/mtimes.before" "$T/mtimes.after" || fail "sync without changes" "no file rewritten" \
    "$(diff "$T/mtimes.before" "$T/mtimes.after" | head -4)"

say "sync after a same-size rewrite of one file and an append to another: copies exactly those two"
f1="d37/f009.txt"
f2="d01/a/c"
python3 - "$S/$f1" <<'PY'
import sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
data[0] ^= 0x20  # same size, different content (and a different CRC32C)
open(p, "wb").write(bytes(data))
PY
touch -r "$D/$f1" "$S/$f1" # same mtime too: only the content tells them apart
printf 'appended' >>"$S/$f2"
run "$SLUICE" sync "$S" "$D" --report "$T/sync2.json"
expect_rc 0
expect_eq "objects after the change" '{"listed": 10000, "done": 10000, "skipped": 9998, "failed": 0}' \
    "$(json_field "$T/sync2.json" 'd["objects"]')"
expect_eq "bytes written = size of the two changed files" \
    "$(($(stat -c %s "$S/$f1") + $(stat -c %s "$S/$f2")))" "$(json_field "$T/sync2.json" 'd["bytes"]["written"]')"
expect_err_contains "10000 done (9998 skipped), 0 failed of 10000 objects"
diff -r "$S" "$D" >"$T/diff.txt" || fail "diff -r after sync" "no difference" "$(head -5 "$T/diff.txt")"
find "$D" -type f -printf '%P %T@\n' | sort >"$T/mtimes.after2"
expect_eq "files rewritten by sync" "$(printf '%s\n' "$f2" "$f1" | sort)" \
    "$(diff "$T/mtimes.after" "$T/mtimes.after2" | sed -n 's/^> \(.*\) [0-9.]*$/\1/p' | sort)"
no_tmp_files "$D"

say "sync never deletes: an extra file at DST stays"
echo extra >"$D/only-in-dst"
run "$SLUICE" sync "$S" "$D" -q --report "$T/sync3.json"
expect_rc 0
expect_eq "skipped" 10000 "$(json_field "$T/sync3.json" 'd["objects"]["skipped"]')"
[ -f "$D/only-in-dst" ] || fail "sync keeps files only at DST" "$D/only-in-dst kept" "deleted"

say "map --op md5 over 10,000 files: one line per file, each equal to md5sum"
run "$SLUICE" map "$S" - --op md5 -q
expect_rc 0
python3 - "$S" "$OUT" <<'PY' || fail "map --op md5 over 10,000 files" "one correct line per file" "see above"
import hashlib, json, os, sys
root = sys.argv[1]
seen = set()
for line in open(sys.argv[2], "rb"):
    d = json.loads(line)
    data = open(os.path.join(root, d["key"]), "rb").read()
    assert d["md5"] == hashlib.md5(data).hexdigest() and d["size"] == len(data), d
    assert d["key"] not in seen, d
    seen.add(d["key"])
assert len(seen) == 10000, len(seen)
PY

finish
