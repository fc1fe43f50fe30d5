#!/usr/bin/env bash
# Hostile object names through gs://: spaces, UTF-8, '#', '?', '%', '+', a newline, shell metacharacters and names of
# 1,000+ bytes round-trip exactly local -> gs -> local (compared with Python's os.walk on bytes and with the
# server's own listing and ls --json); '//' names (which a directory cannot hold) survive gs -> gs exactly and fail
# clearly towards a local directory; names GCS cannot take (over 1,024 bytes, not UTF-8) fail clearly, alone.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

S="$T/src"
# Every name is written into its file as the content, so a mix-up between two objects shows.
python3 - "$S" "$T/keys.json" <<'PY'
import json, os, sys
root, out = os.fsencode(sys.argv[1]), sys.argv[2]
keys = [
    "with space.txt", "  two  leading spaces", "trailing space ", "caf\u00e9.txt", "\u65e5\u672c/\u65e5\u672c.txt",
    "hash#frag", "#start", "q?mark", "?x=1&y=2", "pct%41%2F%", "%", "100%", "plus+", "a+b=c", "new\nline",
    "tab\tchar", "back\\slash", "quote'single", 'quote"double', "dollar$HOME", "semi;colon", "amp&", "pipe|",
    "star*", "br[ack]", "brace{a,b}", "tilde~", "bang!", "at@", "colon:x", "comma,", "-leading-dash", ".hidden",
    "emoji-\U0001F600", "dir with space/file with space", "cr\rchar", "esc\x1bchar", "del\x7fchar", "nbsp\u00a0x",
    "x" * 255,
    "L/" + "a" * 250 + "/" + "b" * 250 + "/" + "c" * 250 + "/" + "d" * 245,        # 1,000 bytes
    "M/" + ("\u65e5" * 83 + "/") * 3 + "e" * 254,                                    # 1,003 bytes of UTF-8
    "N/" + "f" * 250 + "/" + "g" * 250 + "/" + "h" * 250 + "/" + "i" * 250 + "/jj",  # 1,012 bytes
    "O/" + "k" * 250 + "/" + "l" * 250 + "/" + "m" * 250 + "/" + "n" * 250 + "/" + "p" * 12,  # 1,021: 1,024 in gs
]
for k in keys:
    assert len(("rt/" + k).encode()) <= 1024, (k[:10], len(("rt/" + k).encode()))
allk = [k.encode() for k in keys]
for k in allk:
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(k)
json.dump([k.hex() for k in allk], open(out, "w"))
PY
NK=$(json_field "$T/keys.json" 'len(d)')

# walk DIR: sorted "name-hex content-hex" lines, via os.walk on bytes
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
expect_eq "files created" "$NK" "$(wc -l <"$T/src.walk")"
cut -d' ' -f1 "$T/src.walk" >"$T/src.names"

gcs_start --bucket sl-names --allow-newline-names

say "cp local -> gs://: the server holds exactly these $NK names (its own listing, compared as bytes)"
run "$SLUICE" cp "$S" gs://sl-names/rt -q
expect_rc 0
expect_err_empty
gcs_objects sl-names rt/ | python3 -c '
import json, sys
for l in sys.stdin:
    print(json.loads(l)["name"][3:].encode().hex())' | sort >"$T/server.names"
cmp -s "$T/src.names" "$T/server.names" || fail "names on the server" "the local names" \
    "$(diff "$T/src.names" "$T/server.names" | head -6)"

say "ls --json -r gives the exact names (JSON-decoded, as bytes)"
run "$SLUICE" ls --json -r gs://sl-names/rt
expect_rc 0
python3 -c '
import json, sys
for l in open(sys.argv[1], "rb"):
    print(json.loads(l)["key"].encode().hex())' "$OUT" | sort >"$T/ls.names"
cmp -s "$T/src.names" "$T/ls.names" || fail "names in ls --json" "the local names" \
    "$(diff "$T/src.names" "$T/ls.names" | head -6)"

say "ls -r of gs:// and of the local directory print the same escaped lines"
run "$SLUICE" ls -r "$S"
cp "$OUT" "$T/ls.local"
run "$SLUICE" ls -r gs://sl-names/rt
expect_rc 0
expect_out_file "$T/ls.local"

say "cp gs:// -> local: every name and content comes back exactly (os.walk)"
run "$SLUICE" cp gs://sl-names/rt "$T/back" -q
expect_rc 0
expect_err_empty
walk "$T/back" | sort >"$T/back.walk"
cmp -s "$T/src.walk" "$T/back.walk" || fail "names after local -> gs -> local" "the same (name, content) pairs" \
    "$(diff "$T/src.walk" "$T/back.walk" | head -6)"
no_tmp_files "$T/back"

say "sync both ways after that: nothing copied"
run "$SLUICE" sync "$S" gs://sl-names/rt -q --report "$T/s1.json"
expect_rc 0
expect_eq "sync local->gs skipped" "$NK" "$(json_field "$T/s1.json" 'd["objects"]["skipped"]')"
run "$SLUICE" sync gs://sl-names/rt "$T/back" -q --report "$T/s2.json"
expect_rc 0
expect_eq "sync gs->local skipped" "$NK" "$(json_field "$T/s2.json" 'd["objects"]["skipped"]')"

say "cat of single objects named by URL: '#', '?', '%', '+', spaces, UTF-8 are part of the name"
for k in "hash#frag" "#start" "q?mark" "?x=1&y=2" "pct%41%2F%" "%" "100%" "plus+" "a+b=c" "with space.txt" \
    "caf$(printf '\303\251').txt" "dir with space/file with space" "trailing space "; do
    run "$SLUICE" cat "gs://sl-names/rt/$k"
    expect_rc 0
    expect_out_file "$S/$k"
done

say "map gives the exact key to the command (\$SLUICE_KEY) and in its JSON lines"
run "$SLUICE" map gs://sl-names/rt - --op count -q
expect_rc 0
python3 -c '
import json, sys
for l in open(sys.argv[1], "rb"):
    print(json.loads(l)["key"].encode().hex())' "$OUT" | sort >"$T/map.names"
cmp -s "$T/src.names" "$T/map.names" || fail "keys in map JSON lines" "the local names" \
    "$(diff "$T/src.names" "$T/map.names" | head -6)"
run "$SLUICE" map gs://sl-names/rt "$T/keyecho" --shell --exec 'printf "%s" "$SLUICE_KEY"' -q
expect_rc 0
walk "$T/keyecho" | sort >"$T/keyecho.walk"
cmp -s "$T/src.walk" "$T/keyecho.walk" || fail "\$SLUICE_KEY of each object" "its exact name" \
    "$(diff "$T/src.walk" "$T/keyecho.walk" | head -6)"

say "'//' in names (and a leading '/', a trailing '/'): exact through ls --json and gs -> gs"
gcs_seed '{"bucket": "sl-names", "objects": [{"name": "dd/a//b", "data": "1"}, {"name": "dd//lead", "data": "2"},
  {"name": "dd/x///y//", "data": "3"}, {"name": "dd/ok", "data": "4"}]}'
run "$SLUICE" ls --json -r gs://sl-names/dd
expect_rc 0
expect_eq "keys" '["/lead", "a//b", "ok", "x///y//"]' "$(python3 -c '
import json, sys
print(json.dumps([json.loads(l)["key"] for l in open(sys.argv[1])]))' "$OUT")"
run "$SLUICE" cp gs://sl-names/dd gs://sl-names/dd2 -q
expect_rc 0
expect_eq "names after gs -> gs" '["dd2//lead", "dd2/a//b", "dd2/ok", "dd2/x///y//"]' \
    "$(gcs_objects sl-names dd2/ | python3 -c 'import json, sys; print(json.dumps([json.loads(l)["name"] for l in sys.stdin]))')"
for k in /lead a//b ok x///y//; do
    expect_eq "content of dd2/$k" "$(gcs_meta sl-names "dd/$k" 'd["crc32c"]')" "$(gcs_meta sl-names "dd2/$k" 'd["crc32c"]')"
done

say "'//' names towards a local directory: each fails alone with a clear reason, the rest is copied"
run "$SLUICE" cp gs://sl-names/dd "$T/dd"
expect_rc 1
expect_eq "files written" "ok" "$(cd "$T/dd" && find . -type f | sed 's|^\./||')"
expect_err_contains "FAILED a//b"
expect_err_contains "FAILED /lead"
expect_err_contains "FAILED x///y//"
expect_err_contains "1 done (0 skipped), 3 failed of 4 objects"

say "a name over GCS's 1,024 bytes and a name that is not UTF-8: each fails alone, clearly"
mkdir -p "$T/bad/P"
python3 - "$T/bad" <<'PY'
import os, sys
root = os.fsencode(sys.argv[1])
long = b"P/" + b"q" * 250 + b"/" + b"r" * 250 + b"/" + b"s" * 250 + b"/" + b"t" * 250 + b"/uvw"  # 1,015 bytes
for k in [long, b"bad\xffbyte", b"good"]:
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "wb").write(b"x")
PY
run "$SLUICE" cp "$T/bad" gs://sl-names/bad/prefix-making-it-long
expect_rc 1
expect_err_contains "1 done (0 skipped), 2 failed of 3 objects"
expect_err_contains "1024"
expect_eq "what landed" "bad/prefix-making-it-long/good" \
    "$(gcs_objects sl-names bad/ | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')"

gcs_finish
