#!/usr/bin/env bash
# du totals against Python; cat of whole objects and of byte ranges (A-B, A-, -N), bad ranges, odd sources.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for i in range(60):
    p = os.path.join(root, "d%d" % (i % 7), "f%02d.bin" % i)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 5000))))
with open(os.path.join(root, "all256.bin"), "wb") as f:
    f.write(bytes(range(256)) * 3)
with open(os.path.join(root, "ten"), "wb") as f:
    f.write(b"0123456789")
PY

# py_du DIR [SUFFIX]: "objects bytes" of the files under DIR (whose name ends in SUFFIX).
py_du() {
    python3 - "$1" "${2:-}" <<'PY'
import os, sys
n = b = 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(sys.argv[2]):
            n += 1
            b += os.path.getsize(os.path.join(d, f))
print(n, b)
PY
}

human() { # the README's human size: B below 1 KiB, else one decimal and KiB/MiB/GiB
    python3 -c '
import sys
b = float(sys.argv[1]); u = 0
units = ["B", "KiB", "MiB", "GiB", "TiB"]
while b >= 1024 and u < 4: b /= 1024; u += 1
print("%.0f %s" % (b, units[u]) if u == 0 else "%.1f %s" % (b, units[u]))' "$1"
}

say "du counts objects and bytes exactly like Python's os.walk"
read -r n b < <(py_du "$S")
run "$SLUICE" du "$S"
expect_rc 0
expect_err_empty
expect_out "$n objects, $b bytes ($(human "$b"))	$S"
run "$SLUICE" du --json "$S"
expect_rc 0
expect_out "{\"objects\":$n,\"bytes\":$b}"

say "du of a sub-prefix and with --include/--exclude"
read -r n b < <(py_du "$S/d3")
run "$SLUICE" du --json "$S/d3"
expect_out "{\"objects\":$n,\"bytes\":$b}"
read -r n b < <(py_du "$S" .bin)
run "$SLUICE" du --json "$S" --include '*.bin'
expect_out "{\"objects\":$n,\"bytes\":$b}"
read -r n2 b2 < <(py_du "$S/d0" .bin)
run "$SLUICE" du --json "$S" --include '*.bin' --exclude 'd0/*'
expect_out "{\"objects\":$((n - n2)),\"bytes\":$((b - b2))}"

say "du of a single file counts that file"
run "$SLUICE" du --json "$S/ten"
expect_rc 0
expect_out '{"objects":1,"bytes":10}'

say "cat writes the exact bytes of an object (binary, all 256 byte values; every file of the tree)"
run "$SLUICE" cat "$S/all256.bin"
expect_rc 0
expect_err_empty
expect_out_file "$S/all256.bin"
for f in "$S"/d*/f*.bin; do
    run "$SLUICE" cat "$f"
    expect_rc 0
    expect_out_file "$f"
done
run "$SLUICE" cat "file://$S/ten"
expect_rc 0
expect_out_file "$S/ten"

say "cat --range A-B (inclusive), A- (to the end), -N (last N), --range=X"
check_range() { # check_range RANGE EXPECTED_BYTES
    run "$SLUICE" cat --range "$1" "$S/ten"
    expect_rc 0
    expect_err_empty
    printf '%s' "$2" >"$T/want"
    expect_out_file "$T/want"
}
check_range 0-0 0
check_range 2-4 234
check_range 0-9 0123456789
check_range 9-9 9
check_range 7- 789
check_range 0- 0123456789
check_range -3 789
check_range -1 9
check_range -10 0123456789
say "a range that runs past the end is cut at the end; -N larger than the object gives all of it"
check_range 8-30 89
check_range -30 0123456789
run "$SLUICE" cat --range=3-5 "$S/ten"
expect_rc 0
printf 345 >"$T/want"
expect_out_file "$T/want"
say "ranges inside a larger binary object match dd"
for r in "100-355" "256-" "-17" "0-767" "700-9999"; do
    run "$SLUICE" cat --range "$r" "$S/all256.bin"
    expect_rc 0
    python3 - "$S/all256.bin" "$r" >"$T/want" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
r = sys.argv[2]
if r.startswith("-"):
    out = data[-int(r[1:]):]
else:
    a, b = r.split("-")
    out = data[int(a):(int(b) + 1 if b else None)]
sys.stdout.buffer.write(out)
PY
    expect_out_file "$T/want"
done

say "bad ranges: exit 2, nothing on stdout, a one-line message showing the accepted forms"
for r in 5-2 abc "" 1-2-3 - x-3 3-x +1-2 1-+2 1--2 0x1-2 99999999999999999999999-; do
    run "$SLUICE" cat --range "$r" "$S/ten"
    expect_rc 2
    expect_out
    expect_err_one_line "A-B"
done
say "a range that starts past the end: exit 3 (a fact about the object, not a usage error), message says past the end"
run "$SLUICE" cat --range 20-30 "$S/ten"
expect_rc 3
expect_out
expect_err_one_line "past the end"
run "$SLUICE" cat --range 11- "$S/ten"
expect_rc 3
expect_err_one_line "past the end"

say "cat of a directory: exit 3, one line suggesting ls"
run "$SLUICE" cat "$S/d1"
expect_rc 3
expect_out
expect_err_one_line "sluice ls"
run "$SLUICE" cat "$S"
expect_rc 3
expect_err_one_line "not an object"

say "cat of a missing object: exit 3, one line naming it"
run "$SLUICE" cat "$S/nope.bin"
expect_rc 3
expect_out
expect_err_one_line "nope.bin"

say "cat takes exactly one URL"
run "$SLUICE" cat "$S/ten" "$S/ten"
expect_rc 2
expect_out
expect_err_one_line "sluice cat --help"

say "-N and B accept digits only: '--3', '-+3', '- 3', ' 1-2', '1- 2' are usage errors (exit 2), not whole-object reads"
for r in --3 -+3 "- 3" " 1-2" "1- 2"; do
    run "$SLUICE" cat --range "$r" "$S/ten"
    expect_rc 2
    expect_out
    expect_err_one_line "A-B"
done

finish
