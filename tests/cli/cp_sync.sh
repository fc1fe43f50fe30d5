#!/usr/bin/env bash
# cp and sync on a small tree: a single file SRC, file:// URLs, overwriting, --dry-run, filters, -j 1 vs -j 64,
# a tiny --memory-limit, the --report fields, and no temp files left behind.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(3)
sizes = [0, 1, 100, 4095, 4096, 4097, 65536, 262143, 262144, 262145, 700000]
for i, n in enumerate(sizes):
    p = os.path.join(root, ["", "a/", "a/b/", "c/"][i % 4], "file%02d.dat" % i)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(bytes(rng.randrange(256) for _ in range(n)))
with open(os.path.join(root, "notes.txt"), "w") as f:
    f.write("hello\n")
PY
keys() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }
same_tree() { # same_tree A B WHAT
    diff -r "$1" "$2" >"$T/diff.txt" 2>&1 || fail "$3" "no difference between $1 and $2" "$(head -5 "$T/diff.txt")"
}

say "cp SRC DST: every file copied byte for byte (sizes around the 4 KiB and 256 KiB boundaries)"
run "$SLUICE" cp "$S" "$T/d1" --report "$T/cp.json"
expect_rc 0
same_tree "$S" "$T/d1" "cp"
n=$(keys "$S" | wc -l)
b=$(find "$S" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
expect_eq "stderr: one summary line" 1 "$(wc -l <"$ERR")"
expect_err_contains "sluice: cp: $n done (0 skipped), 0 failed of $n objects"
no_tmp_files "$T/d1"

say "--report has the documented fields with the right values"
python3 - "$T/cp.json" "$n" "$b" "$S" "$T/d1" <<'PY' || fail "--report fields" "see the assertion above" "$(cat "$T/cp.json")"
import json, sys
d = json.load(open(sys.argv[1]))
n, b = int(sys.argv[2]), int(sys.argv[3])
for f in ["sluice_version", "command", "source", "destination", "outcome", "objects", "bytes", "duration_s",
          "objects_per_s", "jobs", "peak_rss_bytes", "dry_run", "failures_log", "failures_sample"]:
    assert f in d, "missing field " + f
assert d["outcome"] == "ok", d["outcome"]
assert d["objects"] == {"listed": n, "done": n, "skipped": 0, "failed": 0}, d["objects"]
assert d["bytes"] == {"listed": b, "read": b, "written": b}, d["bytes"]
assert isinstance(d["duration_s"], (int, float)) and d["duration_s"] >= 0, d["duration_s"]
assert isinstance(d["objects_per_s"], (int, float)) and d["objects_per_s"] >= 0
assert isinstance(d["jobs"], int) and d["jobs"] >= 1, d["jobs"]
assert isinstance(d["peak_rss_bytes"], int) and 1 << 20 < d["peak_rss_bytes"] < 1 << 32, d["peak_rss_bytes"]
assert d["dry_run"] is False and d["failures_log"] is None and d["failures_sample"] == []
assert d["source"] == sys.argv[4] and d["destination"] == sys.argv[5], (d["source"], d["destination"])
assert d["command"].split()[0] == "cp", d["command"]
import re
assert re.fullmatch(r"\d+\.\d+\.\d+", d["sluice_version"]), d["sluice_version"]
PY
expect_eq "report version == --version" "$("$SLUICE" --version)" "sluice $(json_field "$T/cp.json" 'd["sluice_version"]')"

say "cp overwrites changed files at DST and leaves files that exist only at DST"
echo "stale" >"$T/d1/notes.txt"
echo "mine" >"$T/d1/only-here"
run "$SLUICE" cp "$S" "$T/d1" -q
expect_rc 0
expect_eq "notes.txt after cp" hello "$(cat "$T/d1/notes.txt")"
expect_eq "only-here after cp" mine "$(cat "$T/d1/only-here")"
rm "$T/d1/only-here"
same_tree "$S" "$T/d1" "cp over an existing copy"

say "cp of a single file SRC to a DST directory writes DST/<name>"
run "$SLUICE" cp "$S/a/b/file02.dat" "$T/single" -q
expect_rc 0
expect_eq "files in DST" "file02.dat" "$(keys "$T/single")"
cmp -s "$S/a/b/file02.dat" "$T/single/file02.dat" || fail "single-file copy" "identical" "differs"
run "$SLUICE" cp "$S/notes.txt" "$T/single" -q
expect_rc 0
expect_eq "files in DST after a second single-file cp" "$(printf '%s\n' file02.dat notes.txt)" "$(keys "$T/single")"
run "$SLUICE" sync "$S/notes.txt" "$T/single" -q --report "$T/one.json"
expect_rc 0
expect_eq "sync of one unchanged file: skipped" 1 "$(json_field "$T/one.json" 'd["objects"]["skipped"]')"

say "file:// URLs and a relative path work like the plain path"
run "$SLUICE" cp "file://$S" "file://$T/d2" -q
expect_rc 0
same_tree "$S" "$T/d2" "cp file:// -> file://"
(cd "$T" && run "$SLUICE" cp src d3 -q && expect_rc 0)
same_tree "$S" "$T/d3" "cp with relative paths"
run "$SLUICE" cp "$S/" "$T/d4/" -q
expect_rc 0
same_tree "$S" "$T/d4" "cp with trailing slashes"
run "$SLUICE" cp "$S/a" "$T/d5" -q
expect_rc 0
same_tree "$S/a" "$T/d5" "cp of a sub-directory"

say "--dry-run: nothing created, one JSON line per object with its destination, exit 0"
run "$SLUICE" cp "$S" "$T/dry" --dry-run
expect_rc 0
[ ! -e "$T/dry" ] || fail "cp --dry-run" "nothing created" "$(find "$T/dry" | head)"
python3 - "$OUT" "$T/dry" <<'PY' || fail "cp --dry-run output" "a JSON line per object with key and dst" "see above"
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1], "rb")]
assert len(ls) == 12, len(ls)
for d in ls:
    assert d["dst"] == "file://" + sys.argv[2] + "/" + d["key"], d
PY
expect_err_contains "(dry run)"

say "--include/--exclude select exactly the matching keys"
run "$SLUICE" cp "$S" "$T/sel" -q --include '*.dat' --exclude 'a/b/*' --exclude 'file0[0-3].dat'
expect_rc 0
expect_eq "selected keys" "$(keys "$S" | grep '\.dat$' | grep -v '^a/b/' | grep -v 'file0[0-3]\.dat$')" "$(keys "$T/sel")"

say "-j 1, -j 64 and a 512K --memory-limit (room for one worker only) give identical copies"
run "$SLUICE" cp "$S" "$T/j1" -q -j 1
expect_rc 0
run "$SLUICE" cp "$S" "$T/j64" -q -j 64 --report "$T/j64.json"
expect_rc 0
run "$SLUICE" cp "$S" "$T/small" -q --memory-limit 512K -j 8 --report "$T/small.json"
expect_rc 0
expect_eq "report jobs for a 512K budget" 1 "$(json_field "$T/small.json" 'd["jobs"]')"
same_tree "$S" "$T/j1" "-j 1"
same_tree "$S" "$T/j64" "-j 64"
same_tree "$S" "$T/small" "--memory-limit 512K"
expect_eq "report jobs for -j 64 (at most 64)" true "$(json_field "$T/j64.json" '1 <= d["jobs"] <= 64')"

say "sync: copies what differs (content, size, missing), skips the rest"
run "$SLUICE" sync "$S" "$T/j1" -q --report "$T/s0.json"
expect_rc 0
expect_eq "no change: skipped all" '{"listed": 12, "done": 12, "skipped": 12, "failed": 0}' "$(json_field "$T/s0.json" 'd["objects"]')"
rm "$T/j1/c/file03.dat"
printf 'x' >>"$T/j1/a/file01.dat"
python3 -c 'import sys; p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[-1]^=1; open(p,"wb").write(d)' "$T/j1/file08.dat"
run "$SLUICE" sync "$S" "$T/j1" -q --report "$T/s1.json"
expect_rc 0
expect_eq "after 3 changes at DST" '{"listed": 12, "done": 12, "skipped": 9, "failed": 0}' "$(json_field "$T/s1.json" 'd["objects"]')"
same_tree "$S" "$T/j1" "sync repairs DST"

say "no .sluice-tmp- files anywhere"
no_tmp_files "$T"

say "sync --dry-run lists only the objects sync would copy (not the ones it would skip), and changes nothing"
echo changed >"$T/d1/notes.txt"
run "$SLUICE" sync "$S" "$T/d1" -n -q
expect_rc 0
expect_eq "sync --dry-run changed nothing" changed "$(cat "$T/d1/notes.txt")"
expect_eq "sync --dry-run lists only what would be copied" notes.txt \
    "$(python3 -c 'import json,sys; [print(json.loads(l)["key"]) for l in open(sys.argv[1])]' "$OUT")"

finish
