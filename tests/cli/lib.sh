# shellcheck shell=bash
# Shared helpers for the end-to-end tests of the `sluice` binary (tests/cli/*.sh). Sourced, never run.
#
# Environment (set by CTest, see tests/CMakeLists.txt):
#   SLUICE       path to the binary under test (required)
#   SL_TEST_TMP  scratch directory; each script makes its own `mktemp -d` below it and removes it on success
#                (default: $TMPDIR or /tmp)
#   SL_SANITIZED set to 1 to declare the binary sanitized (ASan/UBSan/TSan) when auto-detection misses it; that
#                only disables assertions on peak RSS, which sanitizers inflate. Set to 0 to force them on.
#
# Style (zstd cli-tests, curl): every check compares an exit code or an output exactly and, on the first mismatch,
# prints the command, what was expected and what came, then exits 1. Each script prints what it checks.
#
#   run CMD ARGS...          run a command; stdout -> $OUT, stderr -> $ERR (files), exit code -> $RC. Never fails.
#   expect_rc N              $RC must be N
#   expect_out LINE...       stdout must be exactly these lines (no argument: empty)
#   expect_out_file FILE     stdout must equal FILE byte for byte
#   expect_err_empty         nothing on stderr
#   expect_err_contains S    stderr contains S
#   expect_err_one_line S    stderr is exactly one line, starting with "sluice: " and containing S
#   expect_eq WHAT EXPECTED ACTUAL
#   fail WHAT EXPECTED ACTUAL
#   no_tmp_files DIR         no temp file of sluice's (".sluice-tmp-XXXXXX") anywhere under DIR
#   json_field FILE EXPR     python expression on the parsed JSON file `d`, printed (e.g. 'd["objects"]["done"]')
#   sanitized                true if the binary is built with a sanitizer
#   say TEXT / skip_note TEXT  print what is checked / what is skipped and why
#   finish                   remove the scratch dir, print PASS (call last)

set -euo pipefail

: "${SLUICE:?set SLUICE to the sluice binary under test}"
case "$SLUICE" in /*) ;; *) SLUICE="$(cd "$(dirname "$SLUICE")" && pwd)/$(basename "$SLUICE")" ;; esac
[ -x "$SLUICE" ] || { echo "FAIL: SLUICE=$SLUICE is not an executable file" >&2; exit 1; }
SL_TEST_TMP="${SL_TEST_TMP:-${TMPDIR:-/tmp}}"
mkdir -p "$SL_TEST_TMP"

SL_TEST_NAME="$(basename "$0" .sh)"
SL_CLI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
T="$(mktemp -d "$SL_TEST_TMP/$SL_TEST_NAME.XXXXXX")"
OUT="$T/.stdout"
ERR="$T/.stderr"
RC=0
LAST_CMD=""
SL_FINISHED=0
# The binary never sees a terminal in these tests, so no progress line; a fixed locale keeps sort/tr/wc stable.
export LC_ALL=C

s_on_exit() {
    local rc=$?
    if [ "$SL_FINISHED" != 1 ]; then
        echo "FAIL [$SL_TEST_NAME] (exit $rc); scratch files kept in $T" >&2
    fi
}
trap s_on_exit EXIT
# An unexpected failure of a helper command (set -e) still says where it happened.
trap 'echo "FAIL [$SL_TEST_NAME]: line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

say() { printf '== %s [%ss]: %s\n' "$SL_TEST_NAME" "$SECONDS" "$*"; }
skip_note() { printf '== %s: SKIP: %s\n' "$SL_TEST_NAME" "$*"; }

s_quote() { # the command as it could be pasted into a shell
    local q="" a
    for a in "$@"; do q+="$(printf '%q' "$a") "; done
    printf '%s' "${q% }"
}

s_show_file() { # s_show_file LABEL FILE: first lines of a file, indented
    local n
    n=$(wc -c <"$2")
    echo "  $1 ($n bytes):"
    head -c 4000 "$2" | sed 's/^/    | /'
    echo
}

fail() { # fail WHAT EXPECTED ACTUAL
    trap - ERR
    {
        echo "FAIL [$SL_TEST_NAME]: $1"
        [ -n "$LAST_CMD" ] && echo "  command:  $LAST_CMD"
        echo "  expected: $2"
        echo "  actual:   $3"
        [ -f "$OUT" ] && s_show_file "stdout of the command" "$OUT"
        [ -f "$ERR" ] && s_show_file "stderr of the command" "$ERR"
    } >&2
    exit 1
}

run() {
    LAST_CMD="$(s_quote "$@")"
    RC=0
    "$@" >"$OUT" 2>"$ERR" || RC=$?
}

expect_rc() {
    [ "$RC" = "$1" ] || fail "exit status" "$1" "$RC"
}

expect_out() {
    local want="$T/.want"
    : >"$want"
    local l
    for l in "$@"; do printf '%s\n' "$l" >>"$want"; done
    expect_out_file "$want"
}

expect_out_file() {
    if ! cmp -s "$1" "$OUT"; then
        echo "--- diff (expected vs actual stdout):" >&2
        diff -u "$1" "$OUT" | head -40 >&2 || true
        fail "stdout" "contents of $1 ($(wc -c <"$1") bytes)" "$(wc -c <"$OUT") bytes, different (diff above)"
    fi
}

expect_err_empty() {
    [ ! -s "$ERR" ] || fail "stderr" "nothing on stderr" "$(head -c 400 "$ERR")"
}

expect_err_contains() {
    grep -qF -- "$1" "$ERR" || fail "stderr" "a message containing '$1'" "$(head -c 600 "$ERR")"
}

expect_err_matches() { # expect_err_matches ERE: a line of stderr matches the extended regular expression
    grep -qE -- "$1" "$ERR" || fail "stderr" "a line matching '$1'" "$(head -c 600 "$ERR")"
}

expect_err_one_line() {
    local n
    n=$(wc -l <"$ERR")
    [ "$n" = 1 ] || fail "stderr line count" "exactly one line (one message)" "$n lines"
    grep -q '^sluice: ' "$ERR" || fail "stderr" "a line starting with 'sluice: '" "$(cat "$ERR")"
    [ $# -eq 0 ] || expect_err_contains "$1"
}

expect_eq() { # expect_eq WHAT EXPECTED ACTUAL
    [ "$2" = "$3" ] || fail "$1" "$2" "$3"
}

no_tmp_files() {
    local left
    # sluice's temp files are files named exactly ".sluice-tmp-" and six letters or digits; others are objects.
    left=$(find "$1" -type f -name '.sluice-tmp-[A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9]' \
        2>/dev/null | head -5)
    [ -z "$left" ] || fail "no temp files left under $1" "none" "$left"
}

json_field() { # json_field FILE EXPR
    python3 -c 'import json,sys
d = json.load(open(sys.argv[1], "rb"))
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" "$2"
}

sanitized() {
    case "${SL_SANITIZED:-}" in
    1 | yes | true) return 0 ;;
    0 | no | false) return 1 ;;
    esac
    # clang links the sanitizer runtimes statically (their symbols are exported by the binary); gcc links libasan.so.
    if command -v nm >/dev/null 2>&1 && nm -D "$SLUICE" 2>/dev/null | grep -qE '__(asan|tsan|msan)_init'; then
        return 0
    fi
    ldd "$SLUICE" 2>/dev/null | grep -qE 'lib(asan|tsan|ubsan)' && return 0
    grep -qaE '__(asan|tsan)_init' "$SLUICE" 2>/dev/null && return 0
    return 1
}

finish() {
    trap - ERR
    cd /
    rm -rf "$T"
    SL_FINISHED=1
    echo "PASS [$SL_TEST_NAME]"
}

# sl_record [--raw] FILE: the record of a local output (user.sluice.source) in its text form (sl_record.py)
sl_record() { python3 "$SL_CLI_DIR/sl_record.py" "$@"; }
