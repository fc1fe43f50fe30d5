#!/usr/bin/env bash
# Hostile object names: spaces, UTF-8, shell and glob metacharacters, a leading '-', newline, tab, backslash, a
# 255-byte component, bytes that are not UTF-8. cp round-trips them exactly; ls escapes them one per line; ls --json
# and map's $SLUICE_KEY give the exact bytes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
# Every name is written into the file as its content, so a mix-up between two files shows.
python3 - "$S" "$T/keys.json" <<'PY'
import json, os, sys
root, out = os.fsencode(sys.argv[1]), sys.argv[2]
keys = [
    "with space.txt", "  two  leading spaces", "trailing space ", "caf\u00e9.txt", "\u65e5\u672c/\u65e5\u672c.txt",
    "hash#frag", "pct%41%2F%", "q?mark", "star*", "br[ack", "br]ack", "-leading-dash", "--double", "new\nline",
    "tab\tchar", "back\\slash", "quote'single", 'quote"double', "dollar$HOME", "semi;colon", "amp&", "pipe|",
    "paren(x)", "lt<gt>", "brace{a,b}", "tilde~", "bang!", "eq=sign", "plus+", "comma,", "at@", "caret^",
    "x" * 255, "d/" + "y" * 255, "\u65e5" * 85, "z" * 200 + "/" + "w" * 255, "dir with space/file with space",
    "emoji-\U0001F600", "dot.", ".hidden", "..double-dot-prefix", "cr\rchar", "esc\x1bchar", "del\x7fchar",
]
raw = [b"bad\xffbyte", b"latin1-\xe9t\xe9", b"\xc3"]  # not UTF-8
allk = [k.encode() for k in keys] + raw
for k in allk:
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(k)
json.dump([k.hex() for k in allk], open(out, "w"))
PY

# walk DIR: sorted list of (relative path bytes, content) as hex, via os.walk on bytes
walk() {
    python3 - "$1" <<'PY'
import os, sys
root = os.fsencode(sys.argv[1])
for d, dirs, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        print(os.path.relpath(p, root).hex(), open(p, "rb").read().hex())
PY
}
walk "$S" | sort >"$T/src.walk"
expect_eq "files created" "$(json_field "$T/keys.json" 'len(d)')" "$(wc -l <"$T/src.walk")"

say "cp round-trips every name and content exactly (compared with Python os.walk on bytes)"
run "$SLUICE" cp "$S" "$T/dst" -q
expect_rc 0
expect_err_empty
walk "$T/dst" | sort >"$T/dst.walk"
cmp -s "$T/src.walk" "$T/dst.walk" || fail "names after cp" "the same (name, content) pairs" \
    "$(diff "$T/src.walk" "$T/dst.walk" | head -6)"
no_tmp_files "$T/dst"

say "sync after cp skips every one of them"
run "$SLUICE" sync "$S" "$T/dst" -q --report "$T/sync.json"
expect_rc 0
expect_eq "sync skipped" "$(json_field "$T/keys.json" 'len(d)')" "$(json_field "$T/sync.json" 'd["objects"]["skipped"]')"

say "ls -r: one line per key, in byte order, with \\n \\t \\r \\xHH \\\\ escapes; nothing else changed"
run "$SLUICE" ls -r "$S"
expect_rc 0
expect_err_empty
python3 - "$T/keys.json" >"$T/want.ls" <<'PY'
import json, sys
keys = sorted(bytes.fromhex(h) for h in json.load(open(sys.argv[1])))
named = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
def esc(k):
    out = ""
    for ch in k.decode("utf-8", "surrogateescape"):
        if ch in named:
            out += named[ch]
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out += "\\x%02x" % ord(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that is not part of valid UTF-8
            out += "\\x%02x" % (ord(ch) - 0xDC00)
        else:
            out += ch
    return out.encode()
sys.stdout.buffer.write(b"".join(esc(k) + b"\n" for k in keys))
PY
expect_out_file "$T/want.ls"
grep -qxF 'new\nline' "$OUT" || fail "newline in a name" "the line 'new\\nline'" "missing"
grep -qxF 'back\\slash' "$OUT" || fail "backslash in a name" "the line 'back\\\\slash'" "missing"
grep -qxF 'bad\xffbyte' "$OUT" || fail "invalid UTF-8 in a name" "the line 'bad\\xffbyte'" "$(grep -a bad "$OUT")"

say "ls --json: json.loads gives back every exact name (valid UTF-8), in byte order; invalid bytes as \\u00XX"
run "$SLUICE" ls -r --json "$S"
expect_rc 0
python3 - "$T/keys.json" "$OUT" <<'PY' || fail "ls --json names" "exact names" "see above"
import json, sys
keys = sorted(bytes.fromhex(h) for h in json.load(open(sys.argv[1])))
got = [json.loads(l) for l in open(sys.argv[2], "rb").read().split(b"\n")[:-1]]
assert len(got) == len(keys), (len(got), len(keys))
for k, d in zip(keys, got):
    try:
        want = k.decode("utf-8")
    except UnicodeDecodeError:
        want = k.decode("latin-1")  # here every non-ASCII byte is invalid UTF-8: each one becomes U+00XX
    assert d["key"] == want, (k, d["key"])
    assert d["size"] == len(k), d
PY

say "ls of the one-level listing of a directory with a space and of a file whose name starts with '-'"
run "$SLUICE" ls "$S/dir with space"
expect_rc 0
expect_out "file with space"
run "$SLUICE" ls -- "$S/-leading-dash"
expect_rc 0
expect_out "-leading-dash"
(cd "$S" && run "$SLUICE" cat -- -leading-dash && expect_rc 0 && expect_out_file "$S/-leading-dash")

say "cat and cp of single objects with odd names"
for k in "new"$'\n'"line" "pct%41%2F%" "br[ack" "star*" "$(printf 'x%.0s' $(seq 255))"; do
    run "$SLUICE" cat "$S/$k"
    expect_rc 0
    expect_out_file "$S/$k"
    run "$SLUICE" cp "$S/$k" "$T/single" -q
    expect_rc 0
    cmp -s "$S/$k" "$T/single/$k" || fail "cp of the single file '$k'" "an identical copy" "differs or missing"
done

say "map --shell --exec 'printf %s \"\$SLUICE_KEY\"' sees the exact key of every object (to a DST)"
run "$SLUICE" map "$S" "$T/keysout" -q --shell --exec 'printf %s "$SLUICE_KEY"'
expect_rc 0
expect_err_empty
# each output holds the key; the file's content is also the key, so walk() gives name == content
walk "$T/keysout" | sort >"$T/keysout.walk"
cmp -s "$T/src.walk" "$T/keysout.walk" || fail "\$SLUICE_KEY" "the exact key of each object" \
    "$(diff "$T/src.walk" "$T/keysout.walk" | head -6)"

say "map --exec (no shell) with DST '-': \"output\" equals the key (the object's content) for every object"
run "$SLUICE" map "$S" - -q --exec 'sh -c "printf %s \"\$SLUICE_KEY\""'
expect_rc 0
python3 - "$T/keys.json" "$OUT" <<'PY' || fail "map - output" "one line per key, output == key" "see above"
import json, sys
keys = set(bytes.fromhex(h) for h in json.load(open(sys.argv[1])))
lines = open(sys.argv[2], "rb").read().split(b"\n")[:-1]
assert len(lines) == len(keys), (len(lines), len(keys))
seen = set()
for l in lines:
    d = json.loads(l)
    assert d["output"] == d["key"], d
    seen.add(d["key"])
assert len(seen) == len(keys)
PY

say "--include with metacharacters escaped matches the literal names only"
run "$SLUICE" ls -r "$S" --include 'star\*' --include 'q\?mark' --include 'br\[ack' --include '-*'
expect_rc 0
expect_out "--double" "-leading-dash" "br[ack" "q?mark" "star*"

finish
