#!/usr/bin/env bash
# A job's own memory: --timeline, --chart, --mem-interval and the "memory" object of --report on a map over 2,000
# small files; the summary carries the verdict. A fake cgroup past 80 % of its limit gives one warning and the job
# still completes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(2000):
    d = os.path.join(root, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(b"object %d\n" % i * (i % 5 + 1))
PY

say "map --op crc32c with --timeline, --chart, --report, --mem-interval 20: files written, summary has the verdict"
run "$SLUICE" map "$S" - --op crc32c --timeline "$T/t.csv" --chart "$T/c.svg" --report "$T/r.json" --mem-interval 20
expect_rc 0
expect_eq "result lines" 2000 "$(wc -l <"$OUT")"
for f in t.csv c.svg r.json; do
    [ -s "$T/$f" ] || fail "$f" "a non-empty file" "missing or empty"
done
expect_eq "timeline header" "t_s,rss_bytes,objects,bytes,cgroup_usage_bytes,cgroup_limit_bytes" "$(head -1 "$T/t.csv")"
lines=$(($(wc -l <"$T/t.csv") - 1))
[ "$lines" -ge 2 ] || fail "timeline samples" "at least 2 (the first and the last)" "$lines"
expect_eq "objects in the last sample" 2000 "$(tail -1 "$T/t.csv" | cut -d, -f3)"
if command -v xmllint >/dev/null 2>&1; then
    xmllint --noout "$T/c.svg" 2>"$T/xmllint.err" || fail "chart" "well-formed XML (xmllint)" "$(head -5 "$T/xmllint.err")"
else
    skip_note "xmllint not installed: the chart's well-formedness is not checked"
fi
grep -q '<svg' "$T/c.svg" || fail "chart" "an <svg> element" "$(head -c 200 "$T/c.svg")"
trend=$(json_field "$T/r.json" 'd["memory"]["trend"]')
case "$trend" in flat | unknown) ;; *) fail "report memory.trend" "flat or unknown (2,000 small objects do not leak)" "$trend" ;; esac
expect_eq "report memory.samples = timeline lines" "$lines" "$(json_field "$T/r.json" 'd["memory"]["samples"]')"
json_field "$T/r.json" 'd["memory"]["verdict"]' >/dev/null
[ "$(json_field "$T/r.json" 'd["memory"]["peak_rss_bytes"] > 0')" = true ] ||
    fail "report memory.peak_rss_bytes" "> 0" "$(json_field "$T/r.json" 'd["memory"]')"
expect_eq "stderr: one summary line" 1 "$(wc -l <"$ERR")"
expect_err_contains "sluice: map: 2000 done (0 skipped), 0 failed of 2000 objects"
expect_err_contains "; memory: $trend"

say "-q: no summary, so no verdict on stderr; the files are still written"
rm -f "$T/t.csv"
run "$SLUICE" map "$S" - --op count -q --timeline "$T/t.csv" --mem-interval 20
expect_rc 0
expect_err_empty
expect_eq "timeline header" "t_s,rss_bytes,objects,bytes,cgroup_usage_bytes,cgroup_limit_bytes" "$(head -1 "$T/t.csv")"

say "bad --mem-interval and an unwritable --timeline are refused"
run "$SLUICE" map "$S" - --op count --mem-interval 0
expect_rc 2
expect_err_one_line "--mem-interval"
run "$SLUICE" map "$S" - --op count --timeline "$T/no-such-dir/t.csv"
expect_rc 3
expect_err_one_line "no-such-dir/t.csv"

say "a fake container at 94 % of its 64 MiB limit: one warning line, workers halved, every object done"
mkdir -p "$T/cg/pod/ctr"
echo 67108864 >"$T/cg/pod/ctr/memory.max"
echo 62914560 >"$T/cg/pod/ctr/memory.current"
echo "0::/pod/ctr" >"$T/proc-cgroup"
run env SLUICE_CGROUP_ROOT="$T/cg" SLUICE_PROC_CGROUP="$T/proc-cgroup" \
    "$SLUICE" cp "$S" "$T/dst" -j 8 --mem-interval 20 --report "$T/r2.json"
expect_rc 0
expect_eq "warning lines" 1 "$(grep -c '^sluice: warning: memory at 94% of the 64.0 MiB limit: 60.0 MiB of cgroup memory that is not page cache (.*); lowering workers from 8 to 4$' "$ERR")"
expect_eq "stderr lines (warning + summary)" 2 "$(wc -l <"$ERR")"
expect_err_contains "sluice: cp: 2000 done (0 skipped), 0 failed of 2000 objects"
expect_eq "report memory.limit_bytes" 67108864 "$(json_field "$T/r2.json" 'd["memory"]["limit_bytes"]')"
expect_eq "copied files" 2000 "$(find "$T/dst" -type f | wc -l)"

finish
