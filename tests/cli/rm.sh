#!/usr/bin/env bash
# sluice rm, on local disk and on gs:// (test server): one object, a prefix only with -r, --dry-run deletes nothing,
# --include/--exclude, a prefix never reaches its siblings (p vs p2), thousands of objects deleted while the listing
# pages on, missing objects (exit 3, and the -r hint only for a prefix that is there), bad arguments.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

# mk DIR N: N small files under DIR/p (in 10 folders), plus DIR/p2/keep and DIR/p.txt (siblings that must survive)
mk() {
    python3 - "$1" "$2" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
def put(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
for i in range(n):
    put("p/d%d/f%05d" % (i % 10, i), b"object %d\n" % i)
put("p2/keep", b"sibling prefix\n")
put("p.txt", b"sibling object\n")
PY
}
count_files() { find "$1" -type f 2>/dev/null | wc -l; }

# ---- local ----
L="$T/local"
mk "$L" 20

say "local: a prefix without -r is refused (exit 2), one line, nothing deleted"
run "$SLUICE" rm "$L/p"
expect_rc 2
expect_err_one_line "add -r"
expect_eq "files after a refused rm" 22 "$(count_files "$L")"

say "local: one object"
run "$SLUICE" rm "$L/p/d3/f00003" -q
expect_rc 0
[ ! -e "$L/p/d3/f00003" ] || fail "rm of one object" "the file gone" "it is still there"
expect_eq "files after deleting one" 21 "$(count_files "$L")"

say "local: --dry-run prints what would go and deletes nothing"
run "$SLUICE" rm -r "$L/p" --dry-run -q
expect_rc 0
expect_eq "dry-run lines" 19 "$(grep -c '"dry_run":true' "$OUT")"
expect_eq "files after a dry run" 21 "$(count_files "$L")"

say "local: -r with --exclude: every object under p/ but the excluded folder; p2/ and p.txt untouched"
run "$SLUICE" rm -r "$L/p" --exclude 'd7/**' --report "$T/rm1.json"
expect_rc 0
expect_eq "files left under p/" 2 "$(count_files "$L/p")"
expect_eq "the files left" "$L/p/d7/f00007 $L/p/d7/f00017" "$(find "$L/p" -type f | sort | tr '\n' ' ' | sed 's/ $//')"
[ -f "$L/p2/keep" ] && [ -f "$L/p.txt" ] || fail "siblings of p" "p2/keep and p.txt untouched" "$(find "$L" -type f)"
expect_eq "report: command" rm "$(json_field "$T/rm1.json" 'd["command"]')"
expect_eq "report: done" 17 "$(json_field "$T/rm1.json" 'd["objects"]["done"]')"

say "local: a missing object is no object (exit 3, no -r hint); -r of a missing path: exit 3"
run "$SLUICE" rm "$L/p/nothing-here"
expect_rc 3
expect_err_one_line "p/nothing-here: no such object (no such file or directory)"
run "$SLUICE" rm -r "$L/nothing-here"
expect_rc 3
expect_err_one_line "no such file or directory"

say "local: 3,000 files at -j 8, deleted while the listing goes on"
mk "$T/many" 3000
run "$SLUICE" rm -r "$T/many/p" -j 8 -q
expect_rc 0
expect_eq "files left under many/p" 0 "$(count_files "$T/many/p")"
expect_eq "siblings left" 2 "$(count_files "$T/many")"

say "bad arguments: no URL, two URLs, a destination-style option"
run "$SLUICE" rm
expect_rc 2
expect_err_one_line "expected one URL"
run "$SLUICE" rm -r "$L/p" "$L/p2"
expect_rc 2
expect_err_one_line "expected one URL"
run "$SLUICE" rm -r "$L/p" --suffix .x
expect_rc 2

# ---- gs:// ----
gcs_start --bucket rmb
G="$T/g"
mk "$G" 2500
run "$SLUICE" cp "$G" gs://rmb/ -j 8 -q
expect_rc 0
expect_eq "objects uploaded" 2502 "$(gcs_objects rmb | wc -l)"

say "gs: a prefix without -r is refused, nothing deleted"
run "$SLUICE" rm gs://rmb/p
expect_rc 2
expect_err_one_line "add -r"
expect_eq "objects after a refused rm" 2502 "$(gcs_objects rmb | wc -l)"

say "gs: one object"
gcs_stats_reset
run "$SLUICE" rm gs://rmb/p/d0/f00000 -q
expect_rc 0
expect_eq "objects after deleting one" 2501 "$(gcs_objects rmb | wc -l)"
expect_eq "delete requests" 1 "$(gcs_requests storage.objects.delete)"

say "gs: -r gs://rmb/p: 2,499 objects over three listing pages, deleted as they are listed; p2/ and p.txt stay"
gcs_stats_reset
run "$SLUICE" rm -r gs://rmb/p -j 16 --report "$T/rm2.json" -q
expect_rc 0
gcs_objects rmb | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))' >"$T/left"
expect_eq "objects left in the bucket" "p.txt p2/keep" "$(cat "$T/left")"
expect_eq "delete requests" 2499 "$(gcs_requests storage.objects.delete)"
expect_eq "report: done" 2499 "$(json_field "$T/rm2.json" 'd["objects"]["done"]')"

say "gs: a missing object is no object (exit 3, no -r hint); -r of a prefix that holds nothing: exit 3"
run "$SLUICE" rm gs://rmb/p/d0/f00000
expect_rc 3
expect_err_one_line "sluice: rm: gs://rmb/p/d0/f00000: no such object"
run "$SLUICE" rm -r gs://rmb/p/d0
expect_rc 3
expect_err_one_line "sluice: rm: gs://rmb/p/d0: no such object or prefix"

gcs_finish
