#!/usr/bin/env bash
# --version and --help: exit codes, where the text goes, and that each command's help names its flags.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

say "--version prints 'sluice X.Y.Z' and exits 0"
run "$SLUICE" --version
expect_rc 0
expect_err_empty
grep -qxE 'sluice [0-9]+\.[0-9]+\.[0-9]+' "$OUT" || fail "--version output" "one line 'sluice X.Y.Z'" "$(cat "$OUT")"
expect_eq "--version line count" 1 "$(wc -l <"$OUT")"

say "--help / -h / help print the usage on stdout and exit 0"
for h in --help -h help; do
    run "$SLUICE" "$h"
    expect_rc 0
    expect_err_empty
    grep -q '^usage: sluice COMMAND' "$OUT" || fail "usage line" "'usage: sluice COMMAND ...'" "$(head -1 "$OUT")"
    for cmd in ls du cat cp sync map; do
        grep -qE "^  $cmd " "$OUT" || fail "main help lists '$cmd'" "a line '  $cmd ...'" "missing"
    done
done

say "the main help documents every exit status of the README (0 1 2 3 130 141 143)"
run "$SLUICE" --help
for code in 130 141 143; do
    grep -A3 -i 'exit status' "$OUT" | grep -qw "$code" ||
        fail "main --help exit status section" "mentions $code" "$(grep -A3 -i 'exit status' "$OUT")"
done

say "no arguments: usage on stderr, exit 2"
run "$SLUICE"
expect_rc 2
[ ! -s "$OUT" ] || fail "stdout" "empty" "$(head -c 200 "$OUT")"
expect_err_contains "usage: sluice"

# check_help CMD FLAG...: `sluice CMD --help` exits 0, prints only on stdout, starts with the usage line and
# mentions every FLAG; `sluice help CMD` and `sluice CMD -h` print the same text.
check_help() {
    local cmd="$1"
    shift
    say "sluice $cmd --help mentions: $*"
    run "$SLUICE" "$cmd" --help
    expect_rc 0
    expect_err_empty
    grep -q "^usage: sluice $cmd " "$OUT" || fail "first line" "usage: sluice $cmd ..." "$(head -1 "$OUT")"
    local f
    for f in "$@"; do
        grep -qF -- "$f" "$OUT" || fail "sluice $cmd --help mentions $f" "'$f' in the help" "not there"
    done
    cp "$OUT" "$T/help.$cmd"
    run "$SLUICE" "$cmd" -h
    expect_rc 0
    expect_out_file "$T/help.$cmd"
    run "$SLUICE" help "$cmd"
    expect_rc 0
    expect_out_file "$T/help.$cmd"
}

check_help ls -l --long -r --recursive --json --include --exclude
check_help du --json --include --exclude
check_help cat --range A-B A- -N
jobopts=(--include --exclude -j --jobs --memory-limit --dry-run --force --report --failures --retry-failed --grace --timeline --chart --mem-interval -q --quiet -h --help)
check_help cp "${jobopts[@]}"
check_help sync "${jobopts[@]}" CRC32C
check_help map "${jobopts[@]}" complete user.sluice.source sluice-source --exec --shell --op --plugin --plugin-arg sluice_plugin --suffix SLUICE_KEY md5 sha256 crc32c count gunzip

say "--help wins over missing arguments (sluice map --help exits 0 without SRC/DST)"
run "$SLUICE" map --help
expect_rc 0

finish
