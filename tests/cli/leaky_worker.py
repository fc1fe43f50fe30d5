#!/usr/bin/env python3
"""A sluice worker that leaks on purpose (the seed's client-per-call bug): every object leaves LEAK_KIB KiB behind
(default 256). Its result is the MD5 of the object and the worker's resident memory (VmRSS) when it answered, so
tests/cli/worker.sh can check that --worker-max-rss keeps every worker under the cap."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import sluice_worker  # noqa: E402

LEAK = int(os.environ.get("LEAK_KIB", "256")) * 1024
kept = []


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def process(obj, data):
    kept.append(bytearray(b"x" * LEAK))  # touched: resident, not just reserved
    return {"md5": hashlib.md5(data).hexdigest(), "rss": rss_bytes(), "pid": os.getpid()}


if __name__ == "__main__":
    sluice_worker.run(process)
