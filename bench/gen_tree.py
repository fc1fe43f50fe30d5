#!/usr/bin/env python3
"""Generate a deterministic tree of N files of S bytes spread over D folders (standard library only).

    python3 bench/gen_tree.py DIR --files 20000 --size 4096 --dirs 100

Layout: DIR/dNNN/fNNNNNNN.bin, file i in folder i % D. Content of file i is a function of i only (SHA-256 of the
index, repeated, with the index at the front), so two runs give byte-identical trees and no two files are equal.
Existing files with the right size are left alone, so an interrupted run can simply be restarted.
"""
import argparse
import hashlib
import os
import sys


def content(i, size):
    head = b"file %d\n" % i
    block = hashlib.sha256(b"sluice-bench-%d" % i).digest()
    body = head + block * ((size - len(head)) // len(block) + 1)
    return body[:size]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=20000, help="number of files (default 20000)")
    ap.add_argument("--size", type=int, default=4096, help="bytes per file (default 4096)")
    ap.add_argument("--dirs", type=int, default=100, help="number of folders (default 100)")
    args = ap.parse_args()
    if args.files < 0 or args.size < 0 or args.dirs < 1:
        ap.error("--files and --size must be >= 0, --dirs >= 1")
    width = max(3, len(str(args.dirs - 1)))
    for d in range(args.dirs):
        os.makedirs(os.path.join(args.dir, "d%0*d" % (width, d)), exist_ok=True)
    made = 0
    for i in range(args.files):
        path = os.path.join(args.dir, "d%0*d" % (width, i % args.dirs), "f%07d.bin" % i)
        try:
            if os.path.getsize(path) == args.size:
                continue
        except OSError:
            pass
        with open(path, "wb") as f:
            f.write(content(i, args.size))
        made += 1
    print("%s: %d files of %d bytes in %d folders (%d written now)" % (args.dir, args.files, args.size, args.dirs, made),
          file=sys.stderr)


if __name__ == "__main__":
    main()
