#!/usr/bin/env python3
"""The peer: MD5 of every file under a directory with a thread pool, the way a data engineer would write it.

    python3 bench/py_threadpool_md5.py DIR > sums.txt

Walks DIR with os.walk, hashes each file with hashlib in a concurrent.futures.ThreadPoolExecutor(16) and prints
"md5  path" lines (md5sum's format) in completion order. Standard library only.
"""
import concurrent.futures
import hashlib
import os
import sys


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest(), path


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: py_threadpool_md5.py DIR")
    root = sys.argv[1]
    paths = [os.path.join(d, name) for d, _, names in os.walk(root) for name in names]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(md5_file, p) for p in paths]
        for fut in concurrent.futures.as_completed(futures):
            digest, path = fut.result()
            print("%s  %s" % (digest, path))


if __name__ == "__main__":
    main()
