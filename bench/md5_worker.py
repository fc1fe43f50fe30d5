#!/usr/bin/env python3
"""MD5 of each object as a sluice worker: the Python side of the --worker benchmark.

    sluice map DIR - --worker 'python3 bench/md5_worker.py'

Prints the line `--op md5` prints, {"key":...,"size":...,"md5":"<hex>"}. Each object arrives whole, which is the
fastest for small objects; with --stream each is read in 1 MiB pieces instead, in constant memory whatever its size.
"""
import hashlib
import os
import sys

try:
    import sluice_worker
except ImportError:  # run from a checkout: the module is in python/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import sluice_worker


def md5_whole(obj, data):
    return {"md5": hashlib.md5(data).hexdigest()}


def md5_stream(obj, out):
    h = hashlib.md5()
    for piece in iter(lambda: obj.stream.read(1 << 20), b""):
        h.update(piece)
    return {"md5": h.hexdigest()}


if __name__ == "__main__":
    if sys.argv[1:] == ["--stream"]:
        sluice_worker.run_stream(md5_stream)
    elif sys.argv[1:] == []:
        sluice_worker.run(md5_whole)
    else:
        sys.exit("usage: md5_worker.py [--stream]")
