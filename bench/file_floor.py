#!/usr/bin/env python3
"""What a new file costs the kernel, for each way of writing one: the floor under any client's download to disk.

    bench/file_floor.py DIR [--files 4000] [--size 4096] [--runs 5]

DIR is a directory on the file system to measure (bench/s3.sh measures downloads on a fresh ext4 image: mount one
and give its directory). One thread writes FILES files of SIZE bytes in each mode, RUNS times in rotation; the
figure is the median of the process's kernel CPU time (getrusage) per file. Modes:

    tmpfile        open(DIR, O_TMPFILE) + write + linkat(AT_EMPTY_PATH)   what sluice does for a new output
    tmpfile+xattr  the same with the 87-byte fingerprint xattr before the link
    direct         open(NAME, O_CREAT|O_EXCL) + write                    not atomic: seen half written
    direct+xattr   the same with the xattr
    rename         open(TMP, O_CREAT|O_EXCL) + write + rename(TMP, NAME)
    rename+xattr   the same with the xattr

linkat with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (root); without it the tmpfile modes are skipped.
"""
import argparse
import ctypes
import os
import resource
import shutil
import statistics
import sys

AT_EMPTY_PATH = 0x1000
XATTR = "user.sluice.source"
VALUE = b"4096 1796644474754189400 size=4096 gen=6356093982406583474 job=copy out_crc32c=c39e1b85"


def one(libc, top, mode, files, data):
    d = os.path.join(top, "%s-%d" % (mode, os.getpid()))
    os.mkdir(d)
    dfd = os.open(d, os.O_DIRECTORY)
    kind, _, xattr = mode.partition("+")
    t0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for i in range(files):
        name = "f%07d" % i
        if kind == "tmpfile":
            fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o644, dir_fd=dfd)
        elif kind == "rename":
            fd = os.open(name + ".tmp", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644, dir_fd=dfd)
        else:
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644, dir_fd=dfd)
        os.write(fd, data)
        if xattr:
            os.setxattr(fd, XATTR, VALUE)
        if kind == "tmpfile":
            if libc.linkat(fd, b"", dfd, name.encode(), AT_EMPTY_PATH) != 0:
                raise OSError(ctypes.get_errno(), "linkat")
        elif kind == "rename":
            os.rename(name + ".tmp", name, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.close(fd)
    t1 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    os.close(dfd)
    os.rename(d, d + ".done")  # kept until the end: deleting now would make the next mode's inodes dearer
    return (t1 - t0) / files * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    top = os.path.join(a.dir, "file-floor-%d" % os.getpid())
    os.mkdir(top)
    modes = ["tmpfile", "tmpfile+xattr", "direct", "direct+xattr", "rename", "rename+xattr"]
    if os.geteuid() != 0:
        print("file_floor.py: NOTE: not root, linkat(AT_EMPTY_PATH) refused: the tmpfile modes are skipped",
              file=sys.stderr)
        modes = [m for m in modes if not m.startswith("tmpfile")]
    data = b"x" * a.size
    got = {m: [] for m in modes}
    try:
        for r in range(a.runs):
            for m in modes[r % len(modes):] + modes[:r % len(modes)]:
                sub = os.path.join(top, "r%d" % r)
                os.makedirs(sub, exist_ok=True)
                got[m].append(one(libc, sub, m, a.files, data))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print("%d files of %d bytes, one thread, median of %d runs: kernel CPU per file" % (a.files, a.size, a.runs))
    for m in modes:
        print("  %-14s %6.1f us   (runs: %s)" % (m, statistics.median(got[m]), ", ".join("%.1f" % v for v in got[m])))


if __name__ == "__main__":
    main()
