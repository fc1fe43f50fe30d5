#!/usr/bin/env bash
# Listing gs:// at scale: 5,500 objects over 6 pages come out exactly once each, in byte order; a one-level
# listing whose prefixes and items interleave (a, a-b, a/, a0, ...) across page boundaries (prefixes count toward
# a page's 1,000 entries); UTF-8 byte order; du and --include over many pages.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

gcs_start --bucket sl-list

say "seed 5,500 objects (many/NNNNN) and 4,200 names that mix items and prefixes at one level (mix/...)"
gcs_seed '{"bucket": "sl-list", "count": 5500, "name_format": "many/{:05d}", "size": 7}'
python3 - "$T/mix.json" "$T/mix.names" <<'PY'
import json, sys
names = []
for i in range(600):
    k = "g%03d" % i
    # byte order: "g001" < "g001-b" < "g001/..." < "g0010"... and '-' (0x2d) < '/' (0x2f) < '0' (0x30)
    names += ["mix/" + k, "mix/" + k + "-b", "mix/" + k + "/x", "mix/" + k + "/y/z", "mix/" + k + ".txt"]
    if i % 3 == 0:
        names += ["mix/" + k + "0", "mix/" + k + "/0"]
# UTF-8 byte order (not UTF-16 or code point order mistakes): 'Z' < 'a' < '~' < U+00E9 < U+4E00 < U+1F600
for s in ["Z", "a", "~", "\u00e9", "\u00e9/x", "\u4e00", "\U0001F600", "\U0001F600/p", "\uFF5E"]:
    names.append("mix/" + s)
json.dump({"bucket": "sl-list", "objects": [{"name": n, "data": n} for n in names]}, open(sys.argv[1], "w"))
with open(sys.argv[2], "wb") as f:
    for n in names:
        f.write(n.encode() + b"\n")
PY
gcs_api POST /_seed "@$T/mix.json" >/dev/null

say "ls -r over 5,500 objects: each exactly once, in byte order, 6 list requests of at most 1,000"
python3 -c 'print("\n".join("%05d" % i for i in range(5500)))' >"$T/many.want"
gcs_stats_reset
run "$SLUICE" ls -r gs://sl-list/many
expect_rc 0
expect_err_empty
expect_out_file "$T/many.want"
expect_eq "storage.objects.list requests" 6 "$(gcs_requests storage.objects.list)"

say "du over 5,500 objects; --include over many pages"
run "$SLUICE" du --json gs://sl-list/many
expect_out '{"objects":5500,"bytes":38500}'
run "$SLUICE" ls -r gs://sl-list/many --include '*99'
expect_rc 0
expect_out_file <(grep '99$' "$T/many.want")

say "ls -r of mixed names: every name once, UTF-8 byte order (Python's sort of the encoded names)"
python3 - "$T/mix.names" >"$T/mix.r.want" <<'PY'
import sys
names = sorted(l[:-1] for l in open(sys.argv[1], "rb"))
for n in names:
    sys.stdout.buffer.write(n[len(b"mix/"):] + b"\n")
PY
run "$SLUICE" ls -r gs://sl-list/mix
expect_rc 0
expect_out_file "$T/mix.r.want"

say "ls one level of mixed names: items and 'name/' prefixes interleaved in byte order, each prefix once"
python3 - "$T/mix.names" >"$T/mix.1.want" <<'PY'
import sys
entries = set()
for l in open(sys.argv[1], "rb"):
    rest = l[len(b"mix/"):-1]
    entries.add(rest[:rest.index(b"/") + 1] if b"/" in rest else rest)
for e in sorted(entries):
    sys.stdout.buffer.write(e + b"\n")
PY
expect_eq "the one-level listing spans several pages" 1 "$([ "$(wc -l <"$T/mix.1.want")" -gt 2000 ] && echo 1)"
gcs_stats_reset
run "$SLUICE" ls gs://sl-list/mix
expect_rc 0
expect_err_empty
expect_out_file "$T/mix.1.want"
pages=$(gcs_requests storage.objects.list)
[ "$pages" -ge 3 ] || fail "one-level listing pages" "at least 3 list requests" "$pages"

say "ls --json one level: {\"prefix\":..} lines and object lines, same order"
run "$SLUICE" ls --json gs://sl-list/mix
expect_rc 0
python3 - "$OUT" >"$T/mix.json.keys" <<'PY'
import json, sys
for l in open(sys.argv[1], "rb"):
    d = json.loads(l)
    k = d["prefix"] if "prefix" in d else d["key"]
    sys.stdout.buffer.write(k.encode() + b"\n")
PY
cmp -s "$T/mix.json.keys" "$T/mix.1.want" || fail "ls --json one level keys" "the expected listing" \
    "$(diff "$T/mix.1.want" "$T/mix.json.keys" | head -5)"

say "a name that is both an object and a prefix: without '/' both (as one level of the parent shows them, and -r
every object of both, keyed from the parent), with '/' what is under it"
run "$SLUICE" ls gs://sl-list/mix/g000
expect_rc 0
expect_out "g000" "g000/"
run "$SLUICE" ls -r gs://sl-list/mix/g000
expect_rc 0
expect_out "g000" "g000/0" "g000/x" "g000/y/z"
run "$SLUICE" ls gs://sl-list/mix/g000/
expect_rc 0
expect_out "0" "x" "y/"

say "the report's listing_wait: at 100 ms a request, 2 objects per page starve 8 workers, 1,000 per page do not"
gcs_seed '{"bucket": "sl-wait", "count": 40, "size": 10, "name_format": "w{:03d}"}'
for mode in page-size-2 none; do
    gcs_config "{\"list_modes\": {\"sl-wait\": [$([ $mode = none ] || echo "\"$mode\"")]}, \"delay_ms\": 100}"
    run "$SLUICE" map gs://sl-wait - --op count -q -j 8 --report "$T/wait-$mode.json"
    expect_rc 0
done
gcs_config '{"list_modes": {"sl-wait": []}, "delay_ms": 0}'
slow=$(json_field "$T/wait-page-size-2.json" 'd["listing_wait"]["share"]')
fast=$(json_field "$T/wait-none.json" 'd["listing_wait"]["share"]')
# 20 pages of 100 ms feed 2 objects each to 8 workers: ~3/4 of their time waiting. One page: its first 100 ms, then 5
# rounds of work: ~1/6. Bounds leave room for a loaded machine.
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0.5 and float(sys.argv[2]) < 0.35 else 1)' "$slow" "$fast" ||
    fail "listing_wait share, 2 per page / 1,000 per page" "> 0.5 / < 0.35" "$slow / $fast"

gcs_finish
