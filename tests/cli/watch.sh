#!/usr/bin/env bash
# sluice watch: the leak verdict on programs with the shape of the real bug (tests/mem/leaky_pool.c and .py: a thread
# pool that makes a client per task and keeps it = growing; one client per thread = flat; one big block then steady
# work = flat), every run; exit status, signal and stdin/stdout passthrough; short-lived programs; a forking program
# summed with shared pages counted once; --chart, --timeline, --report, --json; usage errors and missing commands.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
PY_POOL="$HERE/../mem/leaky_pool.py"
# The pool runs under the interpreter itself, not the `python3` PATH gives: that may be a version manager's shim
# (pyenv's is a shell script that runs more processes before the interpreter), which on a loaded machine spends a
# second of a 2-second run before Python starts; the interpreter's start then falls after the warm-up the verdict
# skips, and a steady pool reads as growing.
PY=$(python3 -c 'import sys; print(sys.executable)')
C_POOL="${SL_LEAKY_POOL:-}"
if [ -z "$C_POOL" ]; then # run by hand, outside CTest: build the fixture here
    C_POOL="$T/leaky_pool"
    cc -O2 -pthread -o "$C_POOL" "$HERE/../mem/leaky_pool.c"
fi
MIB=$((1024 * 1024))
RUNS=3
TASKS=1200 # x 10 ms / 8 threads = 1.5 s per run; leak mode keeps 1200 x 64 KiB = 75 MiB

# result FIELD: a field of the JSON object that `sluice watch --json` printed as the last line of $ERR
result() {
    tail -n 1 "$ERR" >"$T/result.json"
    json_field "$T/result.json" "$1"
}

# verdict_is WANT: the trend of the last run, with the whole JSON shown on a mismatch
verdict_is() {
    local got
    got=$(result 'd["verdict"]["trend"]') || fail "JSON result on stderr" "one JSON object" "$(tail -n 1 "$ERR")"
    [ "$got" = "$1" ] || fail "verdict of: $LAST_CMD" "$1" "$got: $(tail -n 1 "$ERR")"
}

# ---- the leak verdict, every run ----

# run_fields: one python for the whole JSON of a run: trend, samples, peak, bytes/s, duration -> $TREND $SAMPLES ...
run_fields() {
    tail -n 1 "$ERR" >"$T/result.json"
    read -r TREND SAMPLES PEAK RATE DURATION < <(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
v = d["verdict"]
print(v["trend"], d["samples"], d["peak_bytes"], int(v["bytes_per_second"]), d["duration_s"])' "$T/result.json") ||
        fail "JSON result on stderr" "one JSON object" "$(tail -n 1 "$ERR")"
}

# A leak must grow at about the rate it leaks (one 64 KiB client per task), not just "some": between a third and three
# times tasks * 64 KiB / duration (Python's objects add their own overhead; threads start staggered).
check_leak_rate() {
    local expect
    expect=$(awk -v t="$TASKS" -v d="$DURATION" 'BEGIN { printf "%d", t * 65536 / d }')
    [ "$RATE" -ge $((expect / 3)) ] && [ "$RATE" -le $((expect * 3)) ] ||
        fail "leak rate of: $LAST_CMD" "about $expect B/s (x1/3..x3)" "$RATE B/s"
}

declare -A PASSED=()
for lang in c python; do
    for mode in leak fixed plateau; do
        case "$lang" in
        c) prog=("$C_POOL") ;;
        python) prog=("$PY" "$PY_POOL") ;;
        esac
        want=flat
        [ "$mode" = leak ] && want=growing
        say "$lang leaky_pool $mode: verdict '$want' in each of $RUNS runs"
        for ((i = 1; i <= RUNS; i++)); do
            run "$SLUICE" watch --interval 50 --json -- "${prog[@]}" "$mode" --tasks "$TASKS"
            expect_rc 0
            grep -q "^$mode: $TASKS tasks" "$OUT" || fail "the program's stdout passed through" "$mode: $TASKS tasks..." \
                "$(head -c 200 "$OUT")"
            run_fields
            [ "$TREND" = "$want" ] || fail "verdict of run $i of: $LAST_CMD" "$want" "$TREND: $(tail -n 1 "$ERR")"
            [ "$SAMPLES" -ge 20 ] || fail "samples at --interval 50 over 1.5 s" ">= 20" "$SAMPLES"
            case "$mode" in
            leak)
                check_leak_rate
                [ "$PEAK" -ge $((60 * MIB)) ] || fail "leak peak" ">= 60 MiB" "$PEAK"
                ;;
            plateau) [ "$PEAK" -ge $((200 * MIB)) ] || fail "plateau peak" ">= 200 MiB" "$PEAK" ;;
            fixed) [ "$PEAK" -lt $((40 * MIB)) ] || fail "fixed peak" "< 40 MiB" "$PEAK" ;;
            esac
            PASSED[$lang.$mode]=$((${PASSED[$lang.$mode]:-0} + 1))
        done
    done
done
say "verdicts right in every run: $(for k in "${!PASSED[@]}"; do printf '%s=%s/%s ' "$k" "${PASSED[$k]}" "$RUNS"; done)"

# ---- passthrough ----

say "stdin and stdout pass through: printf abc | sluice watch -- cat prints abc"
printf abc >"$T/abc"
run "$SLUICE" watch -- cat <"$T/abc"
expect_rc 0
printf abc >"$T/want"
expect_out_file "$T/want"
expect_err_contains "verdict"

say "stderr passes through; everything of sluice's own goes to stderr after it"
run "$SLUICE" watch -- sh -c 'echo to-stdout; echo to-stderr >&2'
expect_rc 0
expect_out to-stdout
[ "$(head -n 1 "$ERR")" = to-stderr ] || fail "first stderr line" "to-stderr" "$(head -n 1 "$ERR")"

say "exit status passes through: exit 3 -> 3, with the verdict still printed"
run "$SLUICE" watch -- sh -c 'exit 3'
expect_rc 3
expect_err_contains "exit status 3"

say "killed by a signal: SIGKILL -> 137 (128 + 9), as a shell reports it"
run "$SLUICE" watch --json -- sh -c 'kill -KILL $$'
expect_rc 137
expect_eq "JSON signal" 9 "$(result 'd["signal"]')"
expect_eq "JSON exit_code" 137 "$(result 'd["exit_code"]')"

# sig_to_sluice SIG WANT_RC: SIG sent to sluice (not to the child) is passed on; the child dies of it; sluice returns
# 128 + its number. The child restores the default action (bash starts background jobs with SIGINT ignored).
sig_to_sluice() {
    local sig="$1" want="$2" pid rc=0
    "$SLUICE" watch -- python3 -c 'import signal, sys, time
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, signal.SIG_DFL)
print("ready", flush=True)
time.sleep(60)' >"$T/sig.out" 2>"$T/sig.err" &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        grep -q ready "$T/sig.out" 2>/dev/null && break
        sleep 0.05
    done
    kill -"$sig" "$pid"
    wait "$pid" || rc=$?
    LAST_CMD="sluice watch -- python3 (sleeps), then kill -$sig sluice"
    expect_eq "exit status after SIG$sig to sluice" "$want" "$rc"
    grep -q verdict "$T/sig.err" || fail "verdict after SIG$sig" "a verdict block on stderr" "$(cat "$T/sig.err")"
}
say "SIGTERM to sluice is passed on to the command: 143"
sig_to_sluice TERM 143
say "SIGINT to sluice is passed on to the command: 130"
sig_to_sluice INT 130

# ---- short programs ----

say "a program that runs for < 0.2 s still gets a verdict and its peak"
# Its peak is measured twice: by the kernel (max_rss_bytes, the largest single process's maximum RSS), exact however
# loaded the machine, so checked in every run; and by the samplers (peak_bytes, the tree's PSS every 20 ms, with the
# kernel's figure as a floor when they saw fewer than 5 samples). A sampler thread can be kept off the CPUs of a busy
# 2-core machine for longer than the 0.1 s the block is held, after it has taken its 5 samples: then the sampled peak
# is what was resident when it last ran (22 MiB has been seen). So the sampled peak must reach 30 MiB in one of up to
# 5 runs, not in each: missing it 5 times in a row takes a machine too starved to run the rest of this file.
sampled=""
for ((i = 1; i <= 5; i++)); do
    run "$SLUICE" watch --json -- python3 -c 'import time; b = bytearray(b"x") * (30 << 20); time.sleep(0.1)'
    expect_rc 0
    tail -n 1 "$ERR" >"$T/result.json"
    read -r duration peak max_rss text_len < <(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["duration_s"], d["peak_bytes"], d["max_rss_bytes"] or 0, len(d["verdict"]["text"]))' "$T/result.json") ||
        fail "JSON result on stderr" "one JSON object" "$(tail -n 1 "$ERR")"
    [ "$text_len" -gt 0 ] || fail "verdict text" "not empty" "''"
    [ "$max_rss" -ge $((30 * MIB)) ] ||
        fail "kernel's peak (max_rss_bytes) of a 0.2 s program holding 30 MiB" ">= 30 MiB" "$max_rss ($duration s)"
    [ "$peak" -gt 0 ] || fail "sampled peak of a 0.2 s program" "> 0" "$peak"
    sampled="$sampled $((peak / MIB)) MiB in $duration s;"
    [ "$peak" -lt $((30 * MIB)) ] || break
done
[ "$peak" -ge $((30 * MIB)) ] || fail "sampled peak of a 0.2 s program holding 30 MiB" ">= 30 MiB in one of 5 runs" "$sampled"

say "a program that exits at once: a verdict (too few samples is fine), exit 0"
run "$SLUICE" watch --json -- true
expect_rc 0
result 'd["verdict"]["text"]' >/dev/null
run "$SLUICE" watch -- true
expect_err_contains "verdict"
expect_err_contains "peak memory"

# ---- process trees ----

say "a program that forks 4 workers is summed, and the block they share counts once"
cat >"$T/forker.py" <<'PY'
import os, time
shared = bytearray(b"s") * (50 << 20)  # touched before fork: shared copy-on-write by all 4 workers
pids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        own = bytearray(b"w") * (20 << 20)
        time.sleep(1.5)
        os._exit(0 if own[-1] == ord("w") and shared[0] == ord("s") else 1)
    pids.append(pid)
status = 0
for pid in pids:
    status |= os.waitpid(pid, 0)[1]
raise SystemExit(1 if status else 0)
PY
run "$SLUICE" watch --interval 50 --json -- python3 "$T/forker.py"
expect_rc 0
peak=$(result 'd["peak_bytes"]')
[ "$peak" -ge $(((50 + 4 * 20) * MIB)) ] ||
    fail "peak of a parent with a 50 MiB block + 4 workers x 20 MiB" ">= 130 MiB (the tree summed)" "$peak"
[ "$peak" -lt $((200 * MIB)) ] ||
    fail "peak of 4 workers sharing a 50 MiB block" "< 200 MiB (RSS summing would give >= 280 MiB)" "$peak"

# ---- output files ----

say "--chart writes well-formed SVG with the verdict; --timeline a CSV; --report the JSON of --json"
run "$SLUICE" watch --interval 50 --chart "$T/c.svg" --timeline "$T/t.csv" --report "$T/r.json" --json -- \
    "$C_POOL" leak --tasks 800
expect_rc 0
verdict_is growing
text=$(result 'd["verdict"]["text"]')
xmllint --noout "$T/c.svg" 2>"$T/xmllint.err" || fail "xmllint --noout c.svg" "well-formed" "$(cat "$T/xmllint.err")"
grep -qF -- "$text" "$T/c.svg" || fail "chart carries the verdict" "'$text' in the SVG" "not there"
# The curve is the tree's PSS, and the chart says so: nowhere does it call it RSS.
grep -qF 'process tree PSS (MiB)' "$T/c.svg" || fail "chart's memory axis" "'process tree PSS (MiB)'" "$(grep -o 'fill="#1f77b4">[^<]*' "$T/c.svg")"
grep -qF 'process tree PSS (left axis)' "$T/c.svg" || fail "chart's legend" "'process tree PSS (left axis)'" "not there"
! grep -q 'RSS' "$T/c.svg" || fail "chart" "no mention of RSS" "$(grep -o '[^>]*RSS[^<]*' "$T/c.svg" | head -3)"
expect_eq "CSV header" "t_s,rss_bytes,objects,bytes,cgroup_usage_bytes,cgroup_limit_bytes" "$(head -n 1 "$T/t.csv")"
lines=$(($(wc -l <"$T/t.csv") - 1))
[ "$lines" -ge 15 ] || fail "CSV lines for a 1 s run at --interval 50" ">= 15" "$lines"
awk -F, 'NR > 1 && (NF != 6 || $1 + 0 < prev) { exit 1 } NR > 1 { prev = $1 + 0 }' "$T/t.csv" ||
    fail "CSV rows" "6 fields each, time never going back" "$(head -5 "$T/t.csv")"
expect_eq "--report holds the same JSON as --json" "$(tail -n 1 "$ERR")" "$(cat "$T/r.json")"

say "the text block: peak, duration, samples, verdict, on stderr only"
run "$SLUICE" watch --interval 50 -- "$C_POOL" fixed --tasks 400
expect_rc 0
for w in "peak memory" duration samples "verdict      flat"; do
    expect_err_contains "$w"
done
grep -q '^fixed: 400 tasks' "$OUT" || fail "stdout is the program's alone" "fixed: 400 tasks..." "$(cat "$OUT")"
expect_eq "stdout lines" 1 "$(wc -l <"$OUT")"

# ---- errors ----

say "command not found: exit 127, one line"
run "$SLUICE" watch -- "$T/no-such-program" arg
expect_rc 127
expect_err_one_line "command not found"
run "$SLUICE" watch -- no-such-program-on-path-sl
expect_rc 127
expect_err_one_line "no-such-program-on-path-sl: command not found"

say "not executable: exit 126, one line"
printf 'data\n' >"$T/not-exec"
run "$SLUICE" watch -- "$T/not-exec"
expect_rc 126
expect_err_one_line "cannot run"

say "usage errors: exit 2, one line, nothing run"
for args in "--bogus -- true" "--interval -- true" "--interval 5 -- true" "--interval abc -- true" \
    "--limit 12X -- true" "" "--json"; do
    # shellcheck disable=SC2086
    run "$SLUICE" watch $args
    expect_rc 2
    expect_err_one_line "watch"
done
run "$SLUICE" watch --chart "$T/no/such/dir/c.svg" -- touch "$T/ran"
expect_rc 2
expect_err_one_line "--chart"
[ ! -e "$T/ran" ] || fail "nothing runs after a usage error" "no $T/ran" "it exists"

say "options end at the first word that is not one: the command's own flags are its own"
run "$SLUICE" watch sh -c 'echo "$1"' sh --json
expect_rc 0
expect_out --json

say "--help: usage on stdout, exit 0, the same text from 'sluice help watch'"
run "$SLUICE" watch --help
expect_rc 0
expect_err_empty
grep -q '^usage: sluice watch ' "$OUT" || fail "first line" "usage: sluice watch ..." "$(head -1 "$OUT")"
for f in --interval --chart --timeline --json --report --live --limit; do
    grep -qF -- "$f" "$OUT" || fail "watch --help mentions $f" "'$f'" "not there"
done
cp "$OUT" "$T/help"
run "$SLUICE" help watch
expect_out_file "$T/help"
run "$SLUICE" --help
grep -qE '^  watch ' "$OUT" || fail "main help lists watch" "a line '  watch ...'" "missing"

finish
