#!/usr/bin/env python3
"""A sluice worker for tests/python/test_sluice_worker.py: what it does with an object depends on its key.

    edge_worker.py [--stream] [--setup-fails]

Keys (the first component decides):
  raise/...      raises ValueError (--stream: after writing some output)
  print/...      prints to stdout in every way user code can (print, sys.stdout, descriptor 1, a child process),
                 then answers like any other key
  info/...       result members describing the object and the process (setup calls, pid, the key's bytes in hex)
  md5/...        the data's MD5 as a result member (--stream: read in 1 MiB pieces)
  partial/...    (--stream) reads only the first 10 bytes
  text/...       (--stream) reads and writes through io.TextIOWrapper
  reserved/...   a result member named "key"
  none/...       returns None
  surrogate/...  its key (a str that may hold surrogate escapes) as a result member
  anything else  the output is the data, ASCII letters upper-cased
"""
import hashlib
import io
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import sluice_worker  # noqa: E402

# Safe under sluice (SLUICE_WORKER_ID set: the module took the pipes at import), and with a buffered sys.stdout
# (run() flushes it once descriptor 1 is stderr); with neither, it would reach the protocol before run() starts.
if os.environ.get("SLUICE_WORKER_ID") is not None or os.environ.get("EDGE_PRINT_AT_IMPORT"):
    print("a print at import time, before run()")

SETUP_CALLS = 0


def setup():
    global SETUP_CALLS
    SETUP_CALLS += 1
    if "--setup-fails" in sys.argv:
        raise RuntimeError("no model here")
    print("setup printed this")
    return {"calls": SETUP_CALLS}


def info(obj, context):
    return {"setup_calls": context["calls"], "setup_count": SETUP_CALLS, "pid": os.getpid(),
            "key_hex": obj.key_bytes.hex(),
            "key_roundtrip": obj.key.encode("utf-8", "surrogateescape") == obj.key_bytes,
            "object_size": obj.size, "url_hex": obj.url_bytes.hex() if obj.url_bytes is not None else None,
            "output_key_hex": obj.output_key_bytes.hex() if obj.output_key_bytes is not None else None,
            "metadata": obj.metadata, "worker_id": os.environ.get("SLUICE_WORKER_ID")}


def print_everywhere(obj):
    print("print() from user code", obj.key)
    sys.stdout.write("sys.stdout.write from user code\n")
    sys.stdout.flush()
    os.write(1, b"os.write(1) from user code\n")
    subprocess.run(["echo", "a child process writing to its stdout"], check=True)


def simple(obj, data, context):
    kind = obj.key.split("/", 1)[0]
    if kind == "raise":
        raise ValueError("bad object %s" % obj.key)
    if kind == "info":
        return info(obj, context)
    if kind == "md5":
        return {"md5": hashlib.md5(data).hexdigest()}
    if kind == "reserved":
        return {"key": "mine"}
    if kind == "none":
        return None
    if kind == "surrogate":
        return {"name": obj.key}
    if kind == "print":
        print_everywhere(obj)
    return data.upper()


def streamed(obj, out, context):
    kind = obj.key.split("/", 1)[0]
    if kind == "raise":
        out.write(b"some output before the failure")
        out.flush()
        raise ValueError("bad object %s" % obj.key)
    if kind == "info":
        return info(obj, context)
    if kind == "text":
        text = io.TextIOWrapper(out, encoding="utf-8")
        for line in io.TextIOWrapper(obj.stream, encoding="utf-8"):
            text.write(line.strip() + " \u00e9\n")
        text.close()
        return {"closed_out": out.closed}
    if kind == "partial":
        head = obj.stream.read(10)
        return {"head": head.decode("latin-1")}
    if kind == "md5":
        h = hashlib.md5()
        for piece in iter(lambda: obj.stream.read(1 << 20), b""):
            h.update(piece)
        return {"md5": h.hexdigest()}
    if kind == "none":
        return None
    if kind == "print":
        print_everywhere(obj)
    for piece in iter(lambda: obj.stream.read(100000), b""):
        out.write(piece.upper())
    return None


if __name__ == "__main__":
    if "--stream" in sys.argv:
        sluice_worker.run_stream(streamed, setup=setup)
    else:
        sluice_worker.run(simple, setup=setup)
