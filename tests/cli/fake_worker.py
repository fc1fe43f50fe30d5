#!/usr/bin/env python3
"""Workers for tests/cli/worker.sh that speak the worker protocol (docs/worker-protocol.md) by hand, without the
Python module, so that they can break it on purpose.

    fake_worker.py MODE [ARG]

Every mode answers an object whose key starts with "ok" with {"ok":true,"result":{"n":<its size>,"pid":<pid>}}.
MODE says what happens to the other objects, or to the process:
  garbage        keys starting with "bad": a line that is not JSON
  truncated      keys starting with "bad": a chunk header for 100 bytes, 10 of them, then exit 1
  stdout         keys starting with "bad": a stray line of text before a valid answer (a print from user code)
  exit-after N   exits with status 0 after N answers, between objects
  exit-mid       keys starting with "bad": exits 1 after reading the header, with nothing answered
  never-reads    says hello, then sleeps without reading anything
  crash          writes "boom: cannot import foo" to stderr and exits 1 before its hello
  version2       answers with protocol version 2 and exits 1
  not-worker     echoes sluice's hello (a program that is not a worker)
  slow SECONDS   sleeps that long in every object
  ignore-eof     like slow 0, but never exits at EOF (it ignores SIGTERM too)
  gate           every object waits until the file $GATE exists, then takes 30 ms
"""
import json
import os
import signal
import sys
import time

MODE = sys.argv[1]
ARG = sys.argv[2] if len(sys.argv) > 2 else None
inp = sys.stdin.buffer
out = sys.stdout.buffer


def line(obj):
    out.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
    out.flush()


def read_line():
    data = inp.readline()
    if not data:
        return None
    return json.loads(data)


def read_request():
    """The header and the data's length, or (None, 0) at EOF."""
    header = read_line()
    if header is None:
        return None, 0
    total = 0
    while True:
        frame = read_line()
        if "chunk" in frame:
            n = frame["chunk"]
            while n:
                got = inp.read(min(n, 1 << 20))
                n -= len(got)
                total += len(got)
            continue
        return header, total


if MODE == "crash":
    sys.stderr.write("boom: cannot import foo\n")
    sys.exit(1)
hello = read_line()
if MODE == "not-worker":
    line(hello)
    time.sleep(60)
    sys.exit(0)
if MODE == "version2":
    line({"hello": "worker", "version": 2, "error": "this worker speaks version 2"})
    sys.stderr.write("fake_worker: sluice speaks %s, this worker 2\n" % hello["versions"])
    sys.exit(1)
line({"hello": "worker", "version": 1, "worker": "fake_worker/" + MODE})
if MODE == "never-reads":
    time.sleep(3600)
    sys.exit(0)
if MODE == "ignore-eof":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

answered = 0
while True:
    if MODE == "exit-mid":
        header = read_line()
        if header is None:
            sys.exit(0)
        if header["key"].startswith("bad"):
            sys.stderr.write("fake_worker: leaving in the middle of %s\n" % header["key"])
            sys.exit(1)
        total = 0
        while True:
            frame = read_line()
            if "chunk" not in frame:
                break
            total += len(inp.read(frame["chunk"]))
    else:
        header, total = read_request()
    if header is None:
        if MODE == "ignore-eof":
            time.sleep(3600)
        sys.exit(0)
    key = header["key"]
    if MODE == "slow":
        time.sleep(float(ARG))
    if MODE == "gate":
        while not os.path.exists(os.environ["GATE"]):
            time.sleep(0.01)
        time.sleep(0.03)
    if not key.startswith("ok"):
        if MODE == "garbage":
            out.write(b"this is not JSON\n")
            out.flush()
            continue
        if MODE == "truncated":
            sys.stderr.write("fake_worker: dying in the middle of a chunk\n")
            out.write(b'{"chunk":100}\n0123456789')
            out.flush()
            sys.exit(1)
        if MODE == "stdout":
            out.write(b"hello from user code\n")
            out.flush()
    line({"ok": True, "result": {"n": total, "pid": os.getpid()}})
    answered += 1
    if MODE == "exit-after" and answered >= int(ARG):
        sys.exit(0)
