#!/usr/bin/env bash
# ls: byte order of the full key, one-level vs recursive, -l and --json formats, filters, single objects, URLs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
# Siblings chosen so that "sort by component" and "sort by full key" disagree: '-' (0x2d) < '.' (0x2e) < '/' (0x2f)
# < '0' (0x30), upper case before lower case, and a prefix before its extensions.
python3 - "$S" <<'PY'
import os, sys
root = sys.argv[1]
keys = ["a-b", "a/c", "a/b/d", "a.txt", "a0", "a", "A", "Z/z", "b", "ab", "a-c/x", "a!", "a~",
        "\u00e9t\u00e9", "e", "z", "~", "a/c0", "a/c-", "a/empty/"]
n = 0
for k in keys:
    if k.endswith("/"):
        os.makedirs(os.path.join(root, k), exist_ok=True)  # an empty directory: not an object
        continue
    # 'a' cannot be a file and a directory at once: the file "a" lives in a sub-tree, "x/a"
    if k == "a" or k == "b":
        k = "x/" + k
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    n += 1
    with open(p, "wb") as f:
        f.write(b"x" * n)
PY

# python_keys DIR: every file under DIR, relative, sorted by the bytes of the full key (what GCS/S3 do).
python_keys() {
    python3 - "$1" <<'PY'
import os, sys
root = os.fsencode(sys.argv[1])
keys = []
for d, dirs, files in os.walk(root):
    for f in files:
        keys.append(os.path.relpath(os.path.join(d, f), root))
for k in sorted(keys):
    sys.stdout.buffer.write(k + b"\n")
PY
}
python_keys "$S" >"$T/want.keys"

say "ls -r lists every object in byte order of the full key (a-b < a.txt < a/c < a0), like Python sorted(bytes)"
run "$SLUICE" ls -r "$S"
expect_rc 0
expect_err_empty
expect_out_file "$T/want.keys"
# the order must not be the per-component (directory-walk) order
grep -n . "$OUT" | grep -q '^[0-9]*:a\.txt$' || fail "a.txt listed" "present" "missing"
expect_eq "a-b < a-c/x < a.txt < a/b/d < a/c < a0" "a-b a-c/x a.txt a/b/d a/c a0" \
    "$(grep -xE 'a-b|a-c/x|a\.txt|a/b/d|a/c|a0' "$OUT" | tr '\n' ' ' | sed 's/ $//')"

say "ls (one level) shows objects and sub-prefixes ending in '/', in byte order, without recursing"
run "$SLUICE" ls "$S"
expect_rc 0
python3 - "$S" >"$T/want.level" <<'PY'
import os, sys
root = os.fsencode(sys.argv[1])
out = []
for e in os.listdir(root):
    p = os.path.join(root, e)
    if os.path.isdir(p):
        # an empty directory holds no object; listings of object stores have no such prefix
        has = any(files for _, _, files in os.walk(p))
        if has:
            out.append(e + b"/")
    else:
        out.append(e)
for k in sorted(out):
    sys.stdout.buffer.write(k + b"\n")
PY
expect_out_file "$T/want.level"

say "ls of a sub-directory lists keys relative to it; trailing '/' and file:// URLs give the same output"
run "$SLUICE" ls -r "$S/a"
expect_rc 0
expect_out "b/d" "c" "c-" "c0"
for url in "$S/a/" "file://$S/a" "file://$S/a/"; do
    run "$SLUICE" ls -r "$url"
    expect_rc 0
    expect_out "b/d" "c" "c-" "c0"
done
say "a relative path works like the absolute one"
(cd "$S" && run "$SLUICE" ls -r a && expect_rc 0 && expect_out "b/d" "c" "c-" "c0")

say "ls -l: size, UTC time, key per line, then a TOTAL line that matches Python's sum"
run "$SLUICE" ls -l -r "$S"
expect_rc 0
python3 - "$S" "$OUT" <<'PY' || fail "ls -l format" "SIZE  YYYY-MM-DDTHH:MM:SSZ  KEY lines matching os.stat, then TOTAL" "see above"
import os, re, sys, time
root, out = sys.argv[1], open(sys.argv[2], "rb").read().decode().split("\n")
assert out[-1] == "", "no final newline"
lines, total = out[:-2], out[-2]
keys, size_sum = [], 0
for line in lines:
    m = re.fullmatch(r" *(\d+)  (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)  (.+)", line)
    assert m, "bad line %r" % line
    st = os.stat(os.path.join(root, m.group(3)))
    assert int(m.group(1)) == st.st_size, line
    assert m.group(2) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)), (line, st.st_mtime)
    assert line[:12].lstrip() == m.group(1) and line[12:14] == "  ", "size right-aligned in 12 columns: %r" % line
    size_sum += st.st_size
    keys.append(m.group(3))
assert keys == sorted(keys, key=lambda k: k.encode()), keys
n = len(keys)
human = "%d B" % size_sum if size_sum < 1024 else None
assert total.startswith("TOTAL: %d objects, %d bytes (" % (n, size_sum)), total
if human:
    assert total == "TOTAL: %d objects, %d bytes (%s)" % (n, size_sum, human), total
PY

say "ls --json: one object per line with the exact key, size and updated time; same order as ls -r"
run "$SLUICE" ls -r --json "$S"
expect_rc 0
python3 - "$S" "$OUT" "$T/want.keys" <<'PY' || fail "ls --json" "valid JSON lines with key/size/updated matching os.stat" "see above"
import json, os, sys, datetime
root, out, want = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read().split(b"\n")[:-1]
got = []
for line in open(out, "rb").read().split(b"\n")[:-1]:
    d = json.loads(line)
    st = os.stat(os.path.join(root, d["key"]))
    assert d["size"] == st.st_size, d
    assert isinstance(d["updated"], str) and d["updated"].endswith("Z"), d
    t = datetime.datetime.strptime(d["updated"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert abs(t.timestamp() - st.st_mtime) < 0.002, (d, st.st_mtime)
    got.append(d["key"].encode())
assert got == want, (got, want)
PY

say "ls --include/--exclude filter keys (exclude wins); '*' stays in one component, '**' crosses '/'"
run "$SLUICE" ls -r "$S" --include 'a*'
expect_rc 0
expect_out "a!" "a-b" "a.txt" "a0" "ab" "a~" "x/a"
run "$SLUICE" ls -r "$S" --include 'a/*'
expect_out "a/c" "a/c-" "a/c0"
run "$SLUICE" ls -r "$S" --include 'a/**'
expect_out "a/b/d" "a/c" "a/c-" "a/c0"
run "$SLUICE" ls -r "$S" --include 'a*' --exclude 'a[0-9~]' --exclude 'x/**'
expect_out "a!" "a-b" "a.txt" "ab"
run "$SLUICE" ls -r "$S" --include '{a0,b}' --include 'Z/?'
expect_out "Z/z" "a0" "x/b"

say "ls of a single object prints its name"
run "$SLUICE" ls "$S/a/c0"
expect_rc 0
expect_out "c0"
run "$SLUICE" ls --json "$S/a/c0"
expect_rc 0
expect_eq "ls --json of one object: key and size" "c0 " \
    "$(python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); print(d["key"], d["size"])' "$OUT" |
        sed 's/[0-9]*$//')"

say "ls of a missing path exits 3 with a one-line message naming it"
run "$SLUICE" ls "$T/nope"
expect_rc 3
expect_out
expect_err_one_line "$T/nope"

finish
