#!/usr/bin/env bash
# --metrics-addr: while a job runs, GET /metrics answers in the Prometheus text exposition format (checked here line by
# line by a parser of the format's grammar, in Python): counters that only grow, the job's labels (command, shard,
# shards), sluice's RSS, the cgroup's figures (from a fake cgroup tree), and the memory verdict as a state set with
# exactly one state at 1. A malformed address is exit 2, a port already taken exit 3, both before anything runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/src"
for i in $(seq 0 59); do echo "$i" >"$T/src/f$i"; done
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cat >"$T/scrape.py" <<'PY'
# scrape.py URL OUT.json: one GET, the exposition parsed strictly; {name: {labels-as-json: value}} and the TYPE lines
import json, re, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    assert r.status == 200, r.status
    ctype = r.headers.get("Content-Type")
    assert ctype == "text/plain; version=0.0.4; charset=utf-8", ctype
    text = r.read().decode("utf-8")
assert text.endswith("\n"), "the exposition must end with a newline"
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label_re = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
sample = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)$" % (name_re, label_re, label_re))
series, types, helps = {}, {}, set()
for line in text.split("\n")[:-1]:
    if line.startswith("# HELP "):
        name = line.split(" ")[2]
        assert re.fullmatch(name_re, name) and name not in helps, line
        helps.add(name)
    elif line.startswith("# TYPE "):
        _, _, name, typ = line.split(" ")
        assert typ in ("counter", "gauge") and name not in types and name in helps, line
        types[name] = typ
    else:
        m = sample.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        assert name in types, "a sample before its TYPE line: %r" % line
        if types[name] == "counter":
            assert name.endswith("_total") and value >= 0, line
        lab = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
        series.setdefault(name, {})[json.dumps(lab, sort_keys=True)] = value
json.dump({"series": series, "types": types}, open(sys.argv[2], "w"))
PY
val() { # val FILE NAME [LABEL=VALUE]: the one series of NAME (with that extra label), or "none"
    python3 - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["series"].get(sys.argv[2], {})
extra = dict(a.split("=", 1) for a in sys.argv[3:])
hits = [v for k, v in d.items() if all(json.loads(k).get(a) == b for a, b in extra.items())]
print(("%.17g" % hits[0]) if len(hits) == 1 else "none" if not hits else "several")
PY
}

say "while a map runs (shard 1 of 2, a fake cgroup with a 64 MiB limit): /metrics in the text format, counters growing"
PORT=$(free_port)
FAKE="$T/fake/ctr"
mkdir -p "$FAKE"
echo "0::/ctr" >"$T/proc-cgroup"
echo $((64 * 1024 * 1024)) >"$FAKE/memory.max"
echo $((20 * 1024 * 1024)) >"$FAKE/memory.current"
printf 'active_file 1048576\ninactive_file 1048576\nanon 1000000\n' >"$FAKE/memory.stat"
SLUICE_CGROUP_ROOT="$T/fake" SLUICE_PROC_CGROUP="$T/proc-cgroup" \
    "$SLUICE" map "$T/src" "$T/out" -q -j 2 --shard 1/2 --mem-interval 50 --exec 'sleep 0.4' \
    --metrics-addr "127.0.0.1:$PORT" --report "$T/r.json" 2>"$T/err" &
job=$!
for _ in $(seq 100); do
    python3 "$T/scrape.py" "http://127.0.0.1:$PORT/metrics" "$T/m1.json" 2>/dev/null && break
    kill -0 $job 2>/dev/null || fail "the job" "running" "exited: $(cat "$T/err")"
    sleep 0.05
done
[ -s "$T/m1.json" ] || python3 "$T/scrape.py" "http://127.0.0.1:$PORT/metrics" "$T/m1.json"
sleep 1.5
python3 "$T/scrape.py" "http://127.0.0.1:$PORT/metrics" "$T/m2.json" || fail "second scrape" "the format" "see above"
run curl -s --noproxy '*' -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/other"
expect_out 404
labels=(command=map shard=1 shards=2)
for n in objects_listed objects_done objects_failed bytes_read bytes_written; do
    a=$(val "$T/m1.json" "sluice_${n}_total" "${labels[@]}")
    b=$(val "$T/m2.json" "sluice_${n}_total" "${labels[@]}")
    [ "$a" != none ] && [ "$b" != none ] || fail "sluice_${n}_total with labels ${labels[*]}" "one series" "$a / $b"
    python3 -c 'import sys; a, b = map(float, sys.argv[1:]); sys.exit(0 if b >= a else 1)' "$a" "$b" ||
        fail "sluice_${n}_total" "never decreasing between scrapes" "$a then $b"
done
python3 -c 'import sys; a, b = map(float, sys.argv[1:]); sys.exit(0 if b > a else 1)' \
    "$(val "$T/m1.json" sluice_objects_done_total)" "$(val "$T/m2.json" sluice_objects_done_total)" ||
    fail "objects done" "more at the second scrape (1.5 s later)" "$(val "$T/m1.json" sluice_objects_done_total) then $(val "$T/m2.json" sluice_objects_done_total)"
expect_eq "running" 1 "$(val "$T/m2.json" sluice_running)"
expect_eq "workers" 2 "$(val "$T/m2.json" sluice_workers)"
expect_eq "cgroup limit" $((64 * 1024 * 1024)) "$(val "$T/m2.json" sluice_cgroup_memory_limit_bytes)"
expect_eq "cgroup usage (the working set: minus the inactive file cache)" $((20 * 1024 * 1024 - 1048576)) \
    "$(val "$T/m2.json" sluice_cgroup_memory_usage_bytes)"
expect_eq "cgroup unreclaimable (usage minus page cache)" $((20 * 1024 * 1024 - 2 * 1048576)) \
    "$(val "$T/m2.json" sluice_cgroup_memory_unreclaimable_bytes)"
python3 -c 'import sys; v = float(sys.argv[1]); sys.exit(0 if 1 << 20 < v < 1 << 30 else 1)' "$(val "$T/m2.json" sluice_rss_bytes)" ||
    fail "sluice_rss_bytes" "between 1 MiB and 1 GiB" "$(val "$T/m2.json" sluice_rss_bytes)"
expect_eq "verdict series" 3 "$(python3 -c 'import json, sys
print(len(json.load(open(sys.argv[1]))["series"]["sluice_memory_verdict"]))' "$T/m2.json")"
expect_eq "verdict states at 1" 1 "$(python3 -c 'import json, sys
print(int(sum(json.load(open(sys.argv[1]))["series"]["sluice_memory_verdict"].values())))' "$T/m2.json")"
wait $job || fail "the job" "exit 0" "$? $(cat "$T/err")"
# The listing feeds a bounded queue, so objects_listed grows as the workers take objects until the listing is done.
python3 -c 'import sys; scraped, final, done = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
sys.exit(0 if scraped <= final and (scraped == final or not done) else 1)' \
    "$(val "$T/m2.json" sluice_objects_listed_total)" "$(json_field "$T/r.json" 'd["objects"]["listed"]')" \
    "$(val "$T/m2.json" sluice_listing_done)" ||
    fail "objects listed at the last scrape" "at most the report's, and equal once the listing was done" \
        "$(val "$T/m2.json" sluice_objects_listed_total) (listing done: $(val "$T/m2.json" sluice_listing_done)), report $(json_field "$T/r.json" 'd["objects"]["listed"]')"
# Once the job is gone, so is the server.
python3 "$T/scrape.py" "http://127.0.0.1:$PORT/metrics" "$T/m3.json" 2>/dev/null &&
    fail "after the job" "no server" "an answer"

say "a malformed address is exit 2, a taken port exit 3, one line each, nothing done"
run "$SLUICE" cp "$T/src" "$T/never" --metrics-addr 127.0.0.1
expect_rc 2
expect_err_one_line "--metrics-addr takes HOST:PORT"
run "$SLUICE" cp "$T/src" "$T/never" --metrics-addr 300.1.2.3:80
expect_rc 2
PORT=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); open(sys.argv[2], "w").close(); time.sleep(30)' \
    "$PORT" "$T/holding" &
holder=$!
for _ in $(seq 100); do [ -e "$T/holding" ] && break; sleep 0.05; done
run "$SLUICE" cp "$T/src" "$T/never" --metrics-addr "127.0.0.1:$PORT"
kill $holder 2>/dev/null || true
wait $holder 2>/dev/null || true
expect_rc 3
expect_err_one_line "cannot serve there: Address already in use"
[ ! -e "$T/never" ] || fail "refused runs" "nothing written" "$T/never exists"

finish
