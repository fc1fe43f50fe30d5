#!/usr/bin/env bash
# map --exec: outputs of a succeeding command, per-object failures (exit status, stderr text, --failures log,
# --report), commands that never read their stdin, crashes, --suffix, DST '-', --dry-run, --include/--exclude,
# -j 1 vs -j 64, and no temp files left behind.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import os, sys
root = sys.argv[1]
keys = ["alpha.txt", "bad-one.txt", "beta.csv", "sub/gamma.txt", "sub/bad-two.csv", "sub/deep/delta.txt",
        "sub/deep/bad3", "zeta", "empty.txt", "big.txt"]
for i, k in enumerate(keys):
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if k == "empty.txt":
        data = b""
    elif k == "big.txt":  # larger than a pipe buffer and than one 256 KiB transfer buffer
        data = b"".join(b"line %d of the big file, mixed Case\n" % n for n in range(40000))
    else:
        data = ("%s: Hello, World %d\nsecond line\n" % (k, i)).encode() * (i + 1)
    with open(p, "wb") as f:
        f.write(data)
PY
keys_all() { (cd "$S" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

say "--exec 'tr a-z A-Z' writes each object's upper-cased bytes to DST/<key>"
run "$SLUICE" map "$S" "$T/up" --exec 'tr a-z A-Z' -q --report "$T/up.json"
expect_rc 0
expect_err_empty
expect_eq "outputs" "$(keys_all)" "$(cd "$T/up" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)"
while IFS= read -r k; do
    tr a-z A-Z <"$S/$k" >"$T/want"
    cmp -s "$T/want" "$T/up/$k" || fail "output of tr for $k" "the upper-cased input" "differs"
done < <(keys_all)
expect_eq "report outcome" ok "$(json_field "$T/up.json" 'd["outcome"]')"
expect_eq "report objects" '{"listed": 10, "done": 10, "skipped": 0, "failed": 0}' "$(json_field "$T/up.json" 'd["objects"]')"
total=$(find "$S" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
expect_eq "report bytes.read and bytes.written = total size" "$total $total" \
    "$(json_field "$T/up.json" 'd["bytes"]["read"]') $(json_field "$T/up.json" 'd["bytes"]["written"]')"
no_tmp_files "$T/up"

say "the child's environment: SLUICE_KEY, SLUICE_SIZE, SLUICE_URL, SLUICE_OUTPUT_KEY (with --suffix)"
run "$SLUICE" map "$S" "$T/env" --suffix .env -q --include 'gamma.txt' \
    --shell --exec 'printf "%s|%s|%s|%s\n" "$SLUICE_KEY" "$SLUICE_SIZE" "$SLUICE_URL" "$SLUICE_OUTPUT_KEY"'
expect_rc 0
expect_eq "environment of the command" "sub/gamma.txt|$(stat -c %s "$S/sub/gamma.txt")|file://$S/sub/gamma.txt|sub/gamma.txt.env" \
    "$(cat "$T/env/sub/gamma.txt.env")"

say "from -j 32 up glibc's per-thread malloc cache is off in sluice (GLIBC_TUNABLES, one exec at start), as it was for its commands"
# Each command prints what it sees of GLIBC_TUNABLES, whether sluice (its parent) was started with tcache_count=0 (glibc
# cuts its copy of the variable into pieces at the colons, so the piece is looked for), and sluice's name.
TUNCMD='printf "%s|%s|%s\n" "${GLIBC_TUNABLES-unset}" "$(tr "\0:" "\n\n" </proc/$PPID/environ | grep -c "tcache_count=0$")" "$(cat /proc/$PPID/comm)"'
run env -u GLIBC_TUNABLES "$SLUICE" map "$S" "$T/tun1" -q -j 32 --include 'gamma.txt' --shell --exec "$TUNCMD"
expect_rc 0
expect_eq "unset for the command; tcache off in sluice; its name kept" "unset|1|sluice" \
    "$(cat "$T/tun1/sub/gamma.txt")"
run env GLIBC_TUNABLES=glibc.malloc.perturb=0 "$SLUICE" map "$S" "$T/tun2" -q -j 32 --include 'gamma.txt' --shell \
    --exec "$TUNCMD"
expect_rc 0
expect_eq "the caller's value for the command; appended to in sluice" \
    "glibc.malloc.perturb=0|1|sluice" "$(cat "$T/tun2/sub/gamma.txt")"
run env GLIBC_TUNABLES=glibc.malloc.tcache_count=3 "$SLUICE" map "$S" "$T/tun3" -q -j 32 --include 'gamma.txt' --shell \
    --exec "$TUNCMD"
expect_rc 0
expect_eq "a caller that sets tcache_count itself is obeyed (no exec)" \
    "glibc.malloc.tcache_count=3|0|sluice" "$(cat "$T/tun3/sub/gamma.txt")"
run env -u GLIBC_TUNABLES "$SLUICE" map "$S" "$T/tun5" -q -j 31 --include 'gamma.txt' --shell --exec "$TUNCMD"
expect_rc 0
expect_eq "below -j 32 no exec (the caches are small; a second start costs more)" "unset|0|sluice" \
    "$(cat "$T/tun5/sub/gamma.txt")"
run env -u GLIBC_TUNABLES "$SLUICE" map "$S" "$T/tun4" -q -j 32 --include 'gamma.txt' --shell \
    --exec 'env | grep -c "^SLUICE_GLIBC" || true'
expect_rc 0
expect_eq "sluice's own marker variable is not passed on" "0" "$(cat "$T/tun4/sub/gamma.txt")"

say "a command that fails for some objects: exit 1, exactly those missing from DST, stderr + --failures say 'oops'"
FAILCMD='case "$SLUICE_KEY" in *bad*) echo oops >&2; exit 3;; *) cat;; esac'
run "$SLUICE" map "$S" "$T/part" --shell --exec "$FAILCMD" --failures "$T/failures.jsonl" --report "$T/part.json"
expect_rc 1
expect_eq "outputs present (the good ones)" "$(keys_all | grep -v bad)" \
    "$(cd "$T/part" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)"
while IFS= read -r k; do
    cmp -s "$S/$k" "$T/part/$k" || fail "output of cat for $k" "identical to the input" "differs"
done < <(keys_all | grep -v bad)
for k in bad-one.txt sub/bad-two.csv sub/deep/bad3; do
    grep -q "^sluice: map: FAILED $k: .*oops" "$ERR" ||
        fail "failure line on stderr for $k" "'sluice: map: FAILED $k: ... oops'" "$(cat "$ERR")"
done
expect_eq "FAILED lines on stderr" 3 "$(grep -c 'FAILED' "$ERR")"
expect_err_contains "7 done (0 skipped), 3 failed of 10 objects"
python3 - "$T/failures.jsonl" <<'PY' || fail "--failures file" "3 JSON lines {key, error containing oops, code}" "$(cat "$T/failures.jsonl")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], "rb")]
assert sorted(r["key"] for r in recs) == ["bad-one.txt", "sub/bad-two.csv", "sub/deep/bad3"], recs
for r in recs:
    assert "oops" in r["error"], r
    assert "3" in r["error"], r  # the exit status is part of the explanation
    assert isinstance(r["code"], str) and r["code"], r
PY
expect_eq "report outcome" partial "$(json_field "$T/part.json" 'd["outcome"]')"
expect_eq "report objects" '{"listed": 10, "done": 7, "skipped": 0, "failed": 3}' "$(json_field "$T/part.json" 'd["objects"]')"
expect_eq "report failures_sample keys" '["bad-one.txt", "sub/bad-two.csv", "sub/deep/bad3"]' \
    "$(json_field "$T/part.json" 'sorted(f["key"] for f in d["failures_sample"])')"
expect_eq "report failures_sample errors mention oops" true \
    "$(json_field "$T/part.json" 'all("oops" in f["error"] for f in d["failures_sample"])')"
expect_eq "report failures_log" "\"$T/failures.jsonl\"" "$(json_field "$T/part.json" 'json.dumps(d["failures_log"])')"
no_tmp_files "$T/part"

say "-q keeps the exit status and the --failures log but prints nothing"
run "$SLUICE" map "$S" "$T/partq" -q --shell --exec "$FAILCMD" --failures "$T/failures2.jsonl"
expect_rc 1
expect_err_empty
expect_eq "failure records with -q" 3 "$(wc -l <"$T/failures2.jsonl")"

say "a failed object's old output is left untouched (no partial overwrite)"
echo "previous output" >"$T/part/bad-one.txt"
run "$SLUICE" map "$S" "$T/part" -q --shell --exec "$FAILCMD"
expect_rc 1
expect_eq "old output kept" "previous output" "$(cat "$T/part/bad-one.txt")"

say "commands that do not read their stdin: 'true' and 'head -c 1' succeed (exit 0)"
run "$SLUICE" map "$S" "$T/true" --exec true -q
expect_rc 0
expect_err_empty
expect_eq "outputs of true: 10 empty files" "10 0" \
    "$(find "$T/true" -type f | wc -l) $(find "$T/true" -type f -size +0 | wc -l)"
run "$SLUICE" map "$S" "$T/head" --exec 'head -c 1' -q
expect_rc 0
expect_err_empty
while IFS= read -r k; do
    head -c 1 "$S/$k" >"$T/want"
    cmp -s "$T/want" "$T/head/$k" || fail "output of head -c 1 for $k" "the first byte" "$(od -c "$T/head/$k" | head -2)"
done < <(keys_all)

say "a command that crashes (SIGSEGV): every object fails, exit 1, the signal is named"
run "$SLUICE" map "$S" "$T/crash" --exec 'sh -c "kill -SEGV \$\$"' --failures "$T/crash.jsonl"
expect_rc 1
expect_eq "FAILED lines" 10 "$(grep -c FAILED "$ERR")"
expect_err_contains "SIGSEGV"
expect_eq "failure records" 10 "$(wc -l <"$T/crash.jsonl")"
[ -z "$(find "$T/crash" -type f 2>/dev/null)" ] || fail "outputs of a crashing command" "none" "$(find "$T/crash" -type f)"

say "--suffix: outputs are DST/<key><suffix>"
run "$SLUICE" map "$S" "$T/sfx" --exec cat --suffix .out -q
expect_rc 0
expect_eq "outputs with suffix" "$(keys_all | sed 's/$/.out/')" \
    "$(cd "$T/sfx" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)"
cmp -s "$S/sub/gamma.txt" "$T/sfx/sub/gamma.txt.out" || fail "content with suffix" "identical" "differs"
run "$SLUICE" map "$S" "$T/sfx2" --exec cat --suffix a/b
expect_rc 2
expect_err_one_line "--suffix"

say "DST '-': one JSON line per object with the command's stdout as \"output\", nothing written anywhere"
run "$SLUICE" map "$S" - --exec 'tr a-z A-Z' -q --exclude big.txt
expect_rc 0
python3 - "$S" "$OUT" <<'PY' || fail "map --exec to -" "a JSON line per object with output == upper-cased input" "see above"
import json, os, sys
root = sys.argv[1]
lines = open(sys.argv[2], "rb").read().split(b"\n")
assert lines[-1] == b"", "missing final newline"
got = {}
for l in lines[:-1]:
    d = json.loads(l)
    assert set(d) >= {"key", "size", "output"}, d
    data = open(os.path.join(root, d["key"]), "rb").read()
    assert d["size"] == len(data), d
    assert d["output"] == data.decode().upper(), d
    got[d["key"]] = 1
assert len(got) == 9 and "big.txt" not in got, sorted(got)
PY
run "$SLUICE" map "$S" - --shell --exec "$FAILCMD" -q --exclude big.txt
expect_rc 1
expect_eq "JSON lines for the good objects only (big.txt excluded)" 6 "$(wc -l <"$OUT")"

say "--dry-run creates nothing, prints one JSON line per object, exits 0"
run "$SLUICE" map "$S" "$T/dry" --exec 'tr a-z A-Z' --dry-run
expect_rc 0
[ ! -e "$T/dry" ] || fail "--dry-run" "$T/dry not created" "$(find "$T/dry")"
expect_eq "dry-run keys" "$(keys_all)" \
    "$(python3 -c 'import json,sys; [print(json.loads(l)["key"]) for l in open(sys.argv[1])]' "$OUT" | LC_ALL=C sort)"
expect_err_contains "dry run"
run "$SLUICE" map "$S" "$T/dry" --shell --exec 'touch "$SLUICE_KEY.ran"' -n -q
expect_rc 0
[ -z "$(find "$T" -name '*.ran')" ] || fail "--dry-run runs no command" "no .ran file" "$(find "$T" -name '*.ran')"
[ ! -e "$T/dry" ] || fail "-n" "$T/dry not created" "created"

say "--include/--exclude select exactly the matching keys (exclude wins)"
check_sel() { # check_sel EXPECTED_KEYS_NEWLINE_SEPARATED ARGS...
    local want="$1"
    shift
    rm -rf "$T/sel"
    run "$SLUICE" map "$S" "$T/sel" --exec cat -q "$@"
    expect_rc 0
    expect_eq "selection $*" "$want" "$( (cd "$T/sel" 2>/dev/null && find . -type f | sed 's|^\./||' | LC_ALL=C sort) || true)"
}
check_sel "$(printf '%s\n' alpha.txt big.txt empty.txt sub/deep/delta.txt sub/gamma.txt)" --include '*.txt' --exclude '*bad*'
check_sel "$(printf '%s\n' beta.csv sub/bad-two.csv)" --include '*.csv'
check_sel "$(printf '%s\n' sub/bad-two.csv sub/gamma.txt)" --include 'sub/*'
check_sel "$(printf '%s\n' sub/bad-two.csv sub/deep/bad3 sub/deep/delta.txt sub/gamma.txt)" --include 'sub/**'
check_sel "$(printf '%s\n' alpha.txt beta.csv zeta)" --exclude '*/**' --exclude '*bad*' --exclude '{big,empty}.txt' --include '**'
check_sel "$(printf '%s\n' sub/deep/bad3 zeta)" --include '?eta' --include 'bad[0-9]' --exclude 'beta*'
check_sel "" --include 'nothing-matches'
# "**/" is zero or more whole directories: "**/*.txt" also matches top-level keys
check_sel "$(printf '%s\n' alpha.txt bad-one.txt big.txt empty.txt sub/deep/delta.txt sub/gamma.txt)" --include '**/*.txt'
check_sel "sub/deep/delta.txt" --include 'sub/**/d*'

say "-j 1 and -j 64 give identical outputs"
run "$SLUICE" map "$S" "$T/j1" --shell --exec "$FAILCMD" -q -j 1
expect_rc 1
run "$SLUICE" map "$S" "$T/j64" --shell --exec "$FAILCMD" -q -j 64 --report "$T/j64.json"
expect_rc 1
diff -r "$T/j1" "$T/j64" >"$T/diff.txt" || fail "-j 1 vs -j 64" "identical trees" "$(head -5 "$T/diff.txt")"
diff -r "$T/part" "$T/j64" >"$T/diff.txt" || true
run "$SLUICE" map "$S" - --op md5 -q -j 1
sort "$OUT" >"$T/j1.md5"
run "$SLUICE" map "$S" - --op md5 -q -j 64
sort "$OUT" >"$T/j64.md5"
cmp -s "$T/j1.md5" "$T/j64.md5" || fail "map --op md5 -j 1 vs -j 64" "the same lines" "$(diff "$T/j1.md5" "$T/j64.md5")"

say "map of a single object"
run "$SLUICE" map "$S/sub/gamma.txt" "$T/one" --exec 'tr a-z A-Z' -q
expect_rc 0
expect_eq "output of a single-file map" "$(tr a-z A-Z <"$S/sub/gamma.txt")" "$(cat "$T/one/gamma.txt")"

say "no .sluice-tmp- files anywhere"
no_tmp_files "$T"

say "DST '-' with an output too large for a JSON line: that object fails with a hint to give a destination"
run "$SLUICE" map "$S/big.txt" - --exec cat
expect_rc 1
expect_out
expect_err_contains "FAILED big.txt"
expect_err_contains "destination"

say "DST '-': an output just under the documented 64 KiB (JSON-escaped) is accepted, one just over is not"
mkdir "$T/lim"
head -c 65000 /dev/zero | tr '\0' a >"$T/lim/near"
run "$SLUICE" map "$T/lim" - --exec cat -q
expect_rc 0
expect_eq "output length" 65000 "$(json_field "$OUT" 'len(d["output"])')"
head -c 65600 /dev/zero | tr '\0' a >"$T/lim/near"
run "$SLUICE" map "$T/lim" - --exec cat
expect_rc 1
expect_err_contains "give a destination"

finish
