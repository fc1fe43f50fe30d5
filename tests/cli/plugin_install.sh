#!/usr/bin/env bash
# Building a plugin out of tree from an installed sluice: `cmake --install` into a temporary prefix, then the example
# plugin built with nothing but `cc $(pkg-config --cflags --libs sluice) -shared -fPIC`, then the installed sluice
# running it (map --plugin) with the same results as map --op md5.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

: "${SL_BUILD_DIR:?set by CTest: the build directory to install from}" "${SL_SOURCE_DIR:?set by CTest}"
CMAKE="${SL_CMAKE:-cmake}"
CC="${CC:-cc}"
command -v "$CC" >/dev/null || { skip_note "no C compiler ($CC)"; finish; exit 0; }
command -v pkg-config >/dev/null || fail "pkg-config" "installed (scripts/deps.sh)" "missing"

P="$T/prefix"
say "cmake --install into a temporary prefix"
run "$CMAKE" --install "$SL_BUILD_DIR" --prefix "$P"
expect_rc 0
[ -f "$P/include/sluice/plugin.h" ] || fail "installed header" "$P/include/sluice/plugin.h" "$(find "$P" -name '*.h' | head)"
PC=$(dirname "$(find "$P" -name sluice.pc | head -1)")
[ -n "$PC" ] && [ -f "$PC/sluice.pc" ] || fail "installed sluice.pc" "under $P" "$(find "$P" | head)"

say "pkg-config --cflags --libs sluice names the install prefix's directories"
flags=$(PKG_CONFIG_PATH="$PC" pkg-config --cflags --libs sluice)
case "$flags" in *"$P"*) ;; *) fail "pkg-config flags" "paths under $P" "$flags" ;; esac

say "the example plugin builds out of tree with those flags alone"
mkdir "$T/out-of-tree"
cp "$SL_SOURCE_DIR/examples/plugin/md5_plugin.c" "$T/out-of-tree/"
# shellcheck disable=SC2046 # the flags are words
run "$CC" -O2 -Wall -Wextra -Werror -shared -fPIC -o "$T/out-of-tree/libmd5_plugin.so" "$T/out-of-tree/md5_plugin.c" \
    $(PKG_CONFIG_PATH="$PC" pkg-config --cflags --libs sluice)
expect_rc 0

say "the installed sluice runs it: the same lines as --op md5"
mkdir -p "$T/src/d"
printf 'hello world\n' >"$T/src/a.txt"
head -c 700000 /dev/urandom >"$T/src/d/random"
: >"$T/src/d/empty"
run "$P/bin/sluice" map "$T/src" - --op md5 -q
expect_rc 0
LC_ALL=C sort "$OUT" >"$T/want"
[ "$(wc -l <"$T/want")" = 3 ] || fail "--op md5 lines" 3 "$(wc -l <"$T/want")"
run "$P/bin/sluice" map "$T/src" - --plugin "$T/out-of-tree/libmd5_plugin.so" -q
expect_rc 0
expect_err_empty
LC_ALL=C sort "$OUT" >"$T/got"
cmp -s "$T/want" "$T/got" || fail "plugin results" "$(cat "$T/want")" "$(cat "$T/got")"
grep -q '"key":"a.txt","size":12,"md5":"6f5902ac237024bdd0c176cb93063dc4"' "$T/got" || fail "md5 of a.txt" "6f5902ac..." "$(cat "$T/got")"

finish
