#!/usr/bin/env bash
# `--report PLACE/` and `sluice report PLACE`: each shard of a job writes shard-I-of-N.json into a local directory or a
# gs:// prefix (atomically, like every output), and the merge says which shards are there, missing or unfinished, the
# totals, the first failures and where the logs are, the memory verdict per shard and the worst one, with an exit
# status a pipeline can branch on (0 complete, 1 complete with failed objects, 3 incomplete, 2 usage).
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

python3 - "$T/src" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(300):
    d = os.path.join(root, "d%d" % (i % 5))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d.txt" % i), "w") as f:
        f.write("%d\n" % i)
PY
# The merge's figures are checked against the shards' own reports, summed here in Python.
sum_reports() { # sum_reports FIELD FILES...: the sum of d["objects"][FIELD] over the files
    local field=$1
    shift
    python3 -c 'import json, sys
print(sum(json.load(open(f))["objects"][sys.argv[1]] for f in sys.argv[2:]))' "$field" "$@"
}

say "3 of 4 shards into a local place: the merge says shard 3 is missing, exit 3"
for i in 0 1 2; do
    run "$SLUICE" cp "$T/src" "$T/out" -q --shard "$i/4" --report "$T/r/"
    expect_rc 0
done
expect_eq "files in the place" "shard-0-of-4.json shard-1-of-4.json shard-2-of-4.json" "$(ls "$T/r" | tr '\n' ' ' | sed 's/ $//')"
run "$SLUICE" report "$T/r"
expect_rc 3
grep -q "^$T/r: 3 of 4 shards: incomplete: shards missing$" "$OUT" || fail "first line" "3 of 4 shards: incomplete" "$(cat "$OUT")"
grep -qx "missing: 3" "$OUT" || fail "missing line" "missing: 3" "$(cat "$OUT")"
run "$SLUICE" report --json "$T/r"
expect_rc 3
expect_eq "--json: missing" "[3]" "$(json_field "$OUT" 'd["shards"]["missing"]')"
expect_eq "--json: done" "$(sum_reports done "$T"/r/shard-*)" "$(json_field "$OUT" 'd["objects"]["done"]')"

say "the last shard comes: complete, exit 0, totals those of the four reports, every object done once"
run "$SLUICE" cp "$T/src" "$T/out" -q --shard 3/4 --report "$T/r/"
expect_rc 0
run "$SLUICE" report --json "$T/r"
expect_rc 0
expect_eq "complete" "true" "$(json_field "$OUT" 'd["complete"]')"
expect_eq "done" 300 "$(json_field "$OUT" 'd["objects"]["done"]')"
expect_eq "done (the reports' sum)" "$(sum_reports done "$T"/r/shard-*)" "$(json_field "$OUT" 'd["objects"]["done"]')"
expect_eq "bytes written" "$(du -b --apparent-size -s "$T/src" | python3 -c 'import os, sys
print(sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(sys.argv[1]) for f in fs))' "$T/src")" \
    "$(json_field "$OUT" 'd["bytes"]["written"]')"
diff -r "$T/src" "$T/out" >/dev/null || fail "the 4 shards' outputs" "the source's tree" "a difference"
run "$SLUICE" report "$T/r/"
expect_rc 0
grep -q ": 4 of 4 shards: complete$" "$OUT" || fail "text" "4 of 4 shards: complete" "$(cat "$OUT")"

say "a shard with failed objects: exit 1, the failures named with their shard, the failure logs listed"
run "$SLUICE" map "$T/src" "$T/mapped" -q --shard 0/2 --shell --exec 'case "$SLUICE_KEY" in d1/*) exit 3;; esac; cat' \
    --failures "$T/f0.jsonl" --report "$T/m/"
expect_rc 1
run "$SLUICE" map "$T/src" "$T/mapped" -q --shard 1/2 --exec cat --report "$T/m/"
expect_rc 0
run "$SLUICE" report --json "$T/m"
expect_rc 1
expect_eq "failed" "$(wc -l <"$T/f0.jsonl")" "$(json_field "$OUT" 'd["objects"]["failed"]')"
expect_eq "shards with failures" "[0]" "$(json_field "$OUT" 'd["shards"]["with_failures"]')"
expect_eq "failure logs" "[{\"shard\": 0, \"failures_log\": \"$T/f0.jsonl\"}]" "$(json_field "$OUT" 'd["failures_logs"]')"
expect_eq "failures sampled (each from shard 0, under d1/)" "true" \
    "$(json_field "$OUT" 'all(f["shard"] == 0 and f["key"].startswith("d1/") for f in d["failures_sample"]) and len(d["failures_sample"]) > 0')"
run "$SLUICE" report "$T/m"
expect_rc 1
grep -q "^failure log of shard 0: $T/f0.jsonl$" "$OUT" || fail "text: failure log" "named" "$(cat "$OUT")"

say "an interrupted shard (SIGTERM) did not finish: exit 3, named"
python3 - "$T/slow" <<'PY'
import os, sys
os.makedirs(sys.argv[1])
for i in range(40):
    open(os.path.join(sys.argv[1], "s%02d" % i), "w").write("x")
PY
export MARK="$T/started"
"$SLUICE" map "$T/slow" "$T/slow-out" -q -j 2 --shard 0/1 --shell --exec 'touch "$MARK"; sleep 1' --grace 0 \
    --report "$T/i/" 2>/dev/null &
pid=$!
for _ in $(seq 400); do [ -e "$MARK" ] && break; sleep 0.05; done # the run has begun: objects are in flight
kill -TERM $pid
wait $pid 2>/dev/null || true
run "$SLUICE" report --json "$T/i"
expect_rc 3
expect_eq "unfinished" "[0]" "$(json_field "$OUT" 'd["shards"]["unfinished"]')"

say "a place with reports of two runs (N=4 and N=2): exit 2 unless --shards picks one"
cp "$T"/m/shard-*-of-2.json "$T/r/"
run "$SLUICE" report "$T/r"
expect_rc 2
expect_err_one_line "holds reports of runs with different numbers of shards"
run "$SLUICE" report "$T/r" --shards 4
expect_rc 0
run "$SLUICE" report "$T/r" --shards 2 --json
expect_rc 1
expect_eq "--shards 2: failed" "$(wc -l <"$T/f0.jsonl")" "$(json_field "$OUT" 'd["objects"]["failed"]')"

say "a report that is not JSON is taken as missing, with one line saying so; no report at all: exit 3"
printf '{"objects": ' >"$T/r/shard-1-of-4.json"
run "$SLUICE" report "$T/r" --shards 4 --json
expect_rc 3
expect_eq "unreadable" "[1]" "$(json_field "$OUT" 'd["shards"]["unreadable"]')"
expect_err_one_line "shard-1-of-4.json in $T/r is not JSON"
mkdir -p "$T/empty"
run "$SLUICE" report "$T/empty"
expect_rc 3
expect_err_one_line "no shard report (shard-I-of-N.json) in $T/empty"

say "the place can be a gs:// prefix: each shard's report is an object there, merged the same way"
gcs_start --bucket reports
for i in 0 1; do
    run "$SLUICE" cp "$T/src" "$T/gout" -q --shard "$i/2" --report gs://reports/job-1/
    expect_rc 0
done
expect_eq "objects in the bucket" "job-1/shard-0-of-2.json job-1/shard-1-of-2.json" \
    "$(gcs_objects reports job-1/ | python3 -c 'import json, sys
print(" ".join(json.loads(l)["name"] for l in sys.stdin))')"
run "$SLUICE" report --json gs://reports/job-1
expect_rc 0
expect_eq "gs://: done" 300 "$(json_field "$OUT" 'd["objects"]["done"]')"

say "failure logs per shard: --failures PLACE/ writes failures-I-of-N.jsonl; --retry-failed PLACE/ retries each shard's own"
fail_d1=(--shell --exec 'case "$SLUICE_KEY" in d1/*) [ -e "$FIXED" ] || exit 3;; esac; cat')
export FIXED="$T/fixed"
for i in 0 1; do
    run "$SLUICE" map "$T/src" "$T/fl" -q --shard "$i/2" "${fail_d1[@]}" --failures "$T/logs/" --report "$T/fr/"
    expect_rc 1
done
expect_eq "logs in the place" "failures-0-of-2.jsonl failures-1-of-2.jsonl" "$(ls "$T/logs" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "shard 1's report names its log" "$T/logs/failures-1-of-2.jsonl" "$(json_field "$T/fr/shard-1-of-2.json" 'd["failures_log"]')"
expect_eq "failed objects, all under d1/" 60 "$(cat "$T"/logs/*.jsonl | grep -c '"key":"d1/')"
run "$SLUICE" report "$T/fr"
expect_rc 1
grep -q "^failure log of shard 1: $T/logs/failures-1-of-2.jsonl$" "$OUT" || fail "report" "names shard 1's log" "$(cat "$OUT")"
touch "$FIXED"
for i in 0 1; do
    run "$SLUICE" map "$T/src" "$T/fl" -q --shard "$i/2" "${fail_d1[@]}" --retry-failed "$T/logs/" --failures "$T/logs2/" \
        --report "$T/rr$i.json"
    expect_rc 0
    expect_eq "shard $i retried its own failures" "$(wc -l <"$T/logs/failures-$i-of-2.jsonl")" \
        "$(json_field "$T/rr$i.json" 'd["objects"]["done"]')"
    expect_eq "shard $i's retry names the log it read" "$T/logs/failures-$i-of-2.jsonl" "$(json_field "$T/rr$i.json" 'd["retry_failed"]')"
done
diff -r "$T/src" "$T/fl" >/dev/null || fail "after the retries" "every output" "a difference"
run "$SLUICE" map "$T/src" "$T/fl" -q --shard 0/2 --exec cat --retry-failed "$T/logs/" --failures "$T/logs/"
expect_rc 2
expect_err_one_line "is the log --retry-failed reads: give --failures another place"

say "... in a bucket: each shard's log uploaded when it ends, and retried from there"
rm -f "$FIXED"
run "$SLUICE" map "$T/src" "$T/gl" -q --shard 1/2 "${fail_d1[@]}" --failures gs://reports/logs/ --report "$T/g1.json"
expect_rc 1
expect_eq "shard 1's report names its log in the bucket" "gs://reports/logs/failures-1-of-2.jsonl" \
    "$(json_field "$T/g1.json" 'd["failures_log"]')"
run "$SLUICE" cat gs://reports/logs/failures-1-of-2.jsonl
expect_rc 0
[ "$(sort "$OUT")" = "$(sort "$T/logs/failures-1-of-2.jsonl")" ] ||
    fail "the uploaded log" "shard 1's failures, as the local run logged them (in any order)" "$(head -3 "$OUT")"
touch "$FIXED"
run "$SLUICE" map "$T/src" "$T/gl" -q --shard 1/2 "${fail_d1[@]}" --retry-failed gs://reports/logs/ --report "$T/g2.json"
expect_rc 0
expect_eq "retried from the bucket" "$(wc -l <"$T/logs/failures-1-of-2.jsonl")" "$(json_field "$T/g2.json" 'd["objects"]["done"]')"
ls "${TMPDIR:-/tmp}"/sluice-failures-* "${TMPDIR:-/tmp}"/sluice-retry-* 2>/dev/null | grep -q . &&
    fail "temp files" "none left" "$(ls "${TMPDIR:-/tmp}"/sluice-failures-* "${TMPDIR:-/tmp}"/sluice-retry-* 2>/dev/null)"

say "a report place that cannot be written is refused before anything runs (exit 3)"
touch "$T/afile"
run "$SLUICE" cp "$T/src" "$T/never" -q --report "$T/afile/"
expect_rc 3
[ ! -e "$T/never" ] || fail "a refused report place" "nothing done" "$T/never exists"

finish
