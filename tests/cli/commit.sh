#!/usr/bin/env bash
# How local outputs are committed, seen from the system calls (strace) and from the files:
#   - by default atomic and not synced: a temp file renamed into place, no fsync, fdatasync or syncfs at all;
#   - --fsync: durable before done, as a group commit: a syncfs after every output's temp file was written and before
#     its rename, then an fsync of its directory after the rename, with far fewer sync calls than outputs;
#   - no file is ever created under a final name (only temp files, renamed), and a job killed with SIGKILL leaves no
#     partial file under a final name, in either mode; the rerun completes it;
#   - each output records its own CRC32C: an output torn in place (same size, mtime and xattr, other bytes: what a
#     power loss can leave after an unsynced commit) is skipped by a rerun and redone by a rerun with --verify;
#   - a job of about a second gets a memory verdict (the sampler's fast first phase).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=400
python3 - "$T/src" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(12)
for i in range(n):
    d = os.path.join(root, "d%d" % (i % 4))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d" % i), "wb") as f:
        f.write(rng.randbytes(4096))
PY
same_tree() {
    diff -r "$1" "$2" >"$T/diff.txt" 2>&1 || fail "$3" "no difference between $1 and $2" "$(head -5 "$T/diff.txt")"
}
counts() { json_field "$1" '"%d %d %d" % (d["objects"]["done"], d["objects"]["skipped"], d["objects"]["failed"])'; }

# strace is the witness of the sync calls; a system where it cannot trace (no ptrace) cannot run these checks.
if ! command -v strace >/dev/null || ! strace -f -o /dev/null true 2>/dev/null; then
    skip_note "strace cannot trace here (install it: scripts/deps.sh): the sync-call checks are skipped"
    HAVE_STRACE=0
else
    HAVE_STRACE=1
fi

# LeakSanitizer cannot run under ptrace: a sanitized binary traced by strace checks everything but leaks (the runs
# that are not traced check those).
NOLEAK=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")

# sys_check LOG MODE: checks an `strace -f -ttt -y` log of a cp of $N files into $T/<dst> (see the top).
cat >"$T/syscalls.py" <<'PY'
import os, re, sys
log, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
tmp = re.compile(r"^\.sluice-tmp-[A-Za-z0-9]{6}$")
created = {}      # temp file name -> when its openat(O_CREAT) started
renames = []      # (when it started, directory, temp name, final name)
links = []        # (directory, name) an unnamed file (O_TMPFILE) was linked under
unnamed = 0       # files opened with O_TMPFILE
syncs = 0         # fsync, fdatasync and syncfs calls
syncfs_end = []   # when each syncfs returned 0
dir_fsync_end = []  # (when it returned 0, directory)
pending = {}
for line in open(log):
    m = re.match(r"(\d+)\s+(\d+\.\d+) (.*)", line)
    if not m:
        continue
    pid, ts, rest = m.group(1), float(m.group(2)), m.group(3)
    r = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
    if r:
        name, call, started = r.group(1), pending.pop((pid, r.group(1)), ("", ts))[0] + r.group(2), None
    else:
        c = re.match(r"(\w+)\((.*)", rest)
        if not c:
            continue
        name, call, started = c.group(1), c.group(2), ts
        if call.endswith("<unfinished ...>"):
            pending[(pid, name)] = (call[: -len("<unfinished ...>")], ts)
    if started is not None:
        if name in ("fsync", "fdatasync", "syncfs"):
            syncs += 1
        elif name == "openat" and "O_TMPFILE" in call:
            unnamed += 1
        elif name == "openat" and "O_CREAT" in call:
            p = re.findall(r'"((?:[^"\\]|\\.)*)"', call)[0]
            assert tmp.match(os.path.basename(p)), "a file created under a final name: %s" % p
            created[os.path.basename(p)] = ts
        elif name in ("renameat", "renameat2"):
            a = re.match(r'\d+<([^>]*)>, "([^"]*)", \d+<[^>]*>, "([^"]*)"', call)
            assert a, "a rename sluice made: %s" % call
            renames.append((ts, a.group(1), a.group(2), a.group(3)))
    if re.search(r"\) += 0\b", call):
        if name == "linkat":  # a link made (a name already taken fails, EEXIST, and is not one)
            # linkat(fd, "", dir, name, AT_EMPTY_PATH), or through /proc/self/fd/N without CAP_DAC_READ_SEARCH
            a = re.match(r'(?:[^,]*, "/proc/self/fd/\d+"|\d+<[^>]*>(?:\(deleted\))?, ""), \d+<([^>]*)>, "([^"]*)"', call)
            assert a, "a link sluice made, not of an unnamed file: %s" % call
            links.append((a.group(1), a.group(2)))
        elif name == "syncfs":
            syncfs_end.append(ts)
        elif name == "fsync":
            d = re.match(r"\d+<([^>]*)>", call)
            if d and os.path.isdir(d.group(1)):
                dir_fsync_end.append((ts, d.group(1)))
if mode == "replace":
    # Every output replaces a file: its unnamed file is linked under a temp name (nothing can be linked over a name that
    # is taken) and renamed over the old one.
    assert len(renames) == n and len(links) == n, "%d links and %d renames, want one of each per output (%d)" % (len(links), len(renames), n)
    for ts, d, t, final in renames:
        assert (d, t) in links, "%s/%s: not renamed from the temp name of an unnamed file (%s)" % (d, final, t)
for d, name in links if mode != "replace" else []:
    assert not tmp.match(name), "%s/%s: an unnamed file linked under a temp name with no file to replace" % (d, name)
for ts, d, t, final in renames:
    assert tmp.match(t) and (t in created or (d, t) in links), "%s/%s: not renamed from a temp file sluice made (%s)" % (d, final, t)
if mode == "replace":
    assert syncs == 0, "%d sync calls without --fsync" % syncs
elif mode == "default":
    # New files: written unnamed (O_TMPFILE) and linked under their name once complete, or, where the file system has
    # no O_TMPFILE, written to a temp file and renamed.
    assert len(links) + len(renames) == n, "%d links and %d renames, want one per output (%d)" % (len(links), len(renames), n)
    assert unnamed == len(links), "%d files opened unnamed, %d linked" % (unnamed, len(links))
    assert syncs == 0, "%d sync calls without --fsync" % syncs
else:
    assert len(renames) == n and not links, "%d renames (and %d links), want one rename per output (%d)" % (len(renames), len(links), n)
    for ts, d, t, final in renames:
        assert any(created[t] < e < ts for e in syncfs_end), \
            "%s/%s: renamed into place with no syncfs between its temp file's creation and its rename" % (d, final)
        assert any(e > ts and p == d for e, p in dir_fsync_end), "%s/%s: no fsync of its directory after its rename" % (d, final)
    assert syncs * 4 <= n, "%d sync calls for %d outputs: not a group commit" % (syncs, n)
print(syncs)
PY

if [ "$HAVE_STRACE" = 1 ]; then
    say "default: atomic and not synced: new files written unnamed and linked into place, no fsync, fdatasync or syncfs"
    mkdir -p "$T/case1"
    (cd "$T/case1" && strace -f -ttt -y -o "$T/s1.log" -e trace=openat,fsync,fdatasync,syncfs,renameat,renameat2,linkat \
        "${NOLEAK[@]}" "$SLUICE" cp -q -j 32 "$T/src" dst) >"$T/s1.out" 2>&1 || fail "cp under strace" "exit 0" "$(cat "$T/s1.out")"
    same_tree "$T/src" "$T/case1/dst" "cp"
    syncs=$(python3 "$T/syscalls.py" "$T/s1.log" default "$N" 2>&1) || fail "system calls of a default cp" "no sync call" "$syncs"
    expect_eq "sync calls of a default cp" 0 "$syncs"

    if python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600))' "$T/case1/dst" 2>/dev/null; then
        say "default, every output replacing a file: linked under a temp name, renamed over the old one"
        find "$T/src" -type f -exec sh -c 'printf x >>"$1"' sh {} \;
        (cd "$T/case1" && strace -f -ttt -y -o "$T/s1r.log" -e trace=openat,fsync,fdatasync,syncfs,renameat,renameat2,linkat \
            "${NOLEAK[@]}" "$SLUICE" sync -q -j 32 "$T/src" dst) >"$T/s1r.out" 2>&1 || fail "sync under strace" "exit 0" "$(cat "$T/s1r.out")"
        same_tree "$T/src" "$T/case1/dst" "sync replacing every file"
        syncs=$(python3 "$T/syscalls.py" "$T/s1r.log" replace "$N" 2>&1) || fail "system calls of a replacing sync" "a link and a rename per output" "$syncs"
        no_tmp=$(find "$T/case1/dst" -name '.sluice-tmp-*')
        expect_eq "temp files left by the replacing sync" "" "$no_tmp"
    fi

    say "--fsync: a group commit: syncfs after the data, before the renames, then each directory fsynced; far fewer syncs than outputs"
    mkdir -p "$T/case2"
    (cd "$T/case2" && strace -f -ttt -y -o "$T/s2.log" -e trace=openat,fsync,fdatasync,syncfs,renameat,renameat2,linkat \
        "${NOLEAK[@]}" "$SLUICE" cp -q -j 32 --fsync "$T/src" dst) >"$T/s2.out" 2>&1 ||
        fail "cp --fsync under strace" "exit 0" "$(cat "$T/s2.out")"
    same_tree "$T/src" "$T/case2/dst" "cp --fsync"
    syncs=$(python3 "$T/syscalls.py" "$T/s2.log" fsync "$N" 2>&1) ||
        fail "system calls of cp --fsync" "syncfs before each rename, a directory fsync after it, at most $((N / 4)) sync calls" "$syncs"
    say "  ($syncs sync calls for $N outputs)"

    say "--fsync for map too (sync and map share the commit): a group commit, every output there"
    mkdir -p "$T/case3"
    (cd "$T/case3" && strace -f -ttt -y -o "$T/s3.log" -e trace=openat,fsync,fdatasync,syncfs,renameat,renameat2,linkat \
        "${NOLEAK[@]}" "$SLUICE" map -q -j 32 --fsync --op md5 "$T/src" dst) >"$T/s3.out" 2>&1 ||
        fail "map --fsync under strace" "exit 0" "$(cat "$T/s3.out")"
    syncs=$(python3 "$T/syscalls.py" "$T/s3.log" fsync "$N" 2>&1) ||
        fail "system calls of map --fsync" "a group commit" "$syncs"
fi

say "a job killed with SIGKILL leaves no partial file under a final name (default and --fsync); the rerun completes it"
# 2,000 files of 64 KiB, so the kill lands mid-run.
python3 - "$T/big" <<'PY'
import os, random, sys
rng = random.Random(13)
for i in range(2000):
    d = os.path.join(sys.argv[1], "d%d" % (i % 8))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "g%04d" % i), "wb") as f:
        f.write(rng.randbytes(65536))
PY
for mode in default fsync; do
    flags=()
    [ "$mode" = fsync ] && flags=(--fsync)
    dst="$T/kill-$mode"
    killed=0
    for delay in 0.15 0.3 0.6; do
        rm -rf "$dst"
        "$SLUICE" cp -q -j 8 "${flags[@]}" "$T/big" "$dst" &
        pid=$!
        sleep "$delay"
        if kill -9 "$pid" 2>/dev/null; then
            wait "$pid" || true
            n=$(find "$dst" -type f ! -name '.sluice-tmp-*' 2>/dev/null | wc -l)
            if [ "$n" -gt 0 ] && [ "$n" -lt 2000 ]; then
                killed=1
                break
            fi
        else
            wait "$pid" || true
        fi
    done
    [ "$killed" = 1 ] || skip_note "$mode: the run was never killed mid-way (too fast or too slow here); checking the files anyway"
    # Every file under a final name is whole: the source's bytes.
    (cd "$dst" 2>/dev/null && find . -type f ! -name '.sluice-tmp-*' -print0) | while IFS= read -r -d '' f; do
        cmp -s "$T/big/$f" "$dst/$f" || fail "$mode: output after SIGKILL" "the source's bytes" "$f differs"
    done
    run "$SLUICE" cp -q -j 8 "${flags[@]}" --report "$T/r.json" "$T/big" "$dst"
    expect_rc 0
    same_tree "$T/big" "$dst" "$mode: rerun after SIGKILL"
    no_tmp_files "$dst"
done

say "each local output records its own CRC32C; a torn output (same size, mtime and xattr) is skipped, but redone with --verify"
run "$SLUICE" cp -q --report "$T/r.json" "$T/src" "$T/v"
expect_rc 0
crc=$("$SLUICE" map -q --op crc32c "$T/src/d1/f0001" - | python3 -c 'import json,sys; print(json.load(sys.stdin)["crc32c"])')
rec=$(sl_record "$T/v/d1/f0001" | awk '{ print $NF }')
expect_eq "the recorded CRC32C of an output" "out_crc32c=$crc" "$rec"
for what in cp map; do
    if [ "$what" = map ]; then
        args=(map --exec cat --suffix .out "$T/src" "$T/vm")
        victim="$T/vm/d2/f0002.out"
    else
        args=(sync "$T/src" "$T/v")
        victim="$T/v/d2/f0002"
    fi
    [ "$what" = map ] && { run "$SLUICE" "${args[@]}" -q; expect_rc 0; }
    # A torn write: some of the bytes are not those written, size, mtime and xattr are.
    python3 - "$victim" <<'PY'
import os, sys
p = sys.argv[1]
st = os.stat(p)
with open(p, "r+b") as f:
    f.seek(1000)
    f.write(b"\0" * 2048)
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
assert os.stat(p).st_mtime_ns == st.st_mtime_ns and os.stat(p).st_size == st.st_size
PY
    run "$SLUICE" "${args[@]}" -q --report "$T/r.json"
    expect_rc 0
    expect_eq "$what: rerun without --verify: done skipped failed (the torn output is not seen)" "$N $N 0" "$(counts "$T/r.json")"
    cmp -s "$T/src/d2/f0002" "$victim" && fail "$what: torn output" "still torn without --verify" "repaired"
    run "$SLUICE" "${args[@]}" -q --verify --report "$T/r.json"
    expect_rc 0
    expect_eq "$what: rerun with --verify: done skipped failed" "$N $((N - 1)) 0" "$(counts "$T/r.json")"
    cmp -s "$T/src/d2/f0002" "$victim" || fail "$what: torn output after --verify" "the source's bytes" "still torn"
    run "$SLUICE" "${args[@]}" -q --verify --report "$T/r.json"
    expect_eq "$what: a second --verify finds nothing to redo" "$N $N 0" "$(counts "$T/r.json")"
done
say "--verify redoes an output recorded without a CRC32C (by an older version, as text): it cannot be checked"
python3 - "$T/v/d3/f0003" "$(sl_record "$T/v/d3/f0003")" <<'PY'
import os, sys
os.setxattr(sys.argv[1], "user.sluice.source", sys.argv[2].rsplit(" ", 1)[0].encode())
PY
run "$SLUICE" sync "$T/src" "$T/v" -q --report "$T/r.json"
expect_eq "old record, no --verify: skipped" "$N $N 0" "$(counts "$T/r.json")"
run "$SLUICE" sync "$T/src" "$T/v" -q --verify --report "$T/r.json"
expect_eq "old record, --verify: redone" "$N $((N - 1)) 0" "$(counts "$T/r.json")"

say "a job of about a second gets a memory verdict (fast first phase of the sampler), not 'too few samples'"
run "$SLUICE" map "$T/src/d0" - --exec 'sleep 0.05' -j 1 -q --include 'f00[0-7]*' --report "$T/r.json"
expect_rc 0
secs=$(json_field "$T/r.json" 'd["duration_s"]')
verdict=$(json_field "$T/r.json" 'd["memory"]["verdict"]')
samples=$(json_field "$T/r.json" 'd["memory"]["samples"]')
python3 -c 'import sys; assert float(sys.argv[1]) >= 0.5, sys.argv[1]' "$secs" ||
    fail "duration of the short job" ">= 0.5 s (20 objects with sleep 0.05 each)" "$secs"
case "$verdict" in
unknown*) fail "memory verdict of a ${secs} s job" "flat or growing" "$verdict ($samples samples)" ;;
esac

finish
