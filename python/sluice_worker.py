"""The worker side of ``sluice map SRC DST --worker CMD``, for Python (standard library only, Python 3.9+).

sluice starts the worker once per worker thread and hands it objects one at a time; the protocol is
docs/worker-protocol.md. This module speaks it, so a worker is a function::

    import sluice_worker

    def process(obj, data):              # data: the object's bytes
        return data.upper()              # bytes: the output object

    sluice_worker.run(process)

``process(obj, data)`` returns

- ``bytes`` (or ``bytearray``, ``memoryview``): the output object (with DST ``-``: the result line's ``"output"``);
- a ``dict``: result members, added to the object's result line ``{"key":...,"size":...,<members>}``; with a real
  DST that line is the output object, as ``--op md5`` writes it. ``key``, ``size`` and ``output`` are sluice's names;
- ``None``: no output of its own: the result line ``{"key":...,"size":...}`` is the output.

The simple form holds the whole object in memory (twice, briefly, while it is put together from its chunks). For big
objects, the streaming form reads ``obj.stream`` (a binary file object that reads exactly the object's bytes, then
returns ``b""``) and writes to ``out`` (a binary file object; wrap it in ``io.TextIOWrapper`` for text, and close the
wrapper before returning)::

    def process(obj, out):
        for line in obj.stream:
            out.write(line.lower())

    sluice_worker.run_stream(process)

There ``process`` returns ``None`` (the output object is what it wrote) or a ``dict`` of result members (the answer is
the result line alone if it never called ``out.write``, else the output it wrote plus those members). Whatever part of
the object ``process`` did not read is read and dropped before the answer goes out.

``setup``, when given, runs once per worker process, after the protocol has started and before the first object;
what it returns is passed to every call as a third argument: ``process(obj, data, context)``. A storage client, a
database connection or a model belongs there, not in ``process``.

An exception from ``process`` fails that object alone, with the exception's type and message and a bounded
traceback as the reason; the worker goes on with the next object. An exception from ``setup`` fails the worker's
start (sluice gives up after a few such starts in a row). Nothing user code prints reaches the protocol: file
descriptor 1, ``sys.stdout`` and ``print`` go to stderr, and descriptor 0 and ``sys.stdin`` read ``/dev/null``; the
module keeps private duplicates of the two pipes. It takes them when ``run``/``run_stream`` starts, or as soon as it
is imported in a process sluice started (``SLUICE_WORKER_ID`` is set), so prints at import time are safe too.

``obj`` has ``key`` (``str``; bytes that are not UTF-8 are kept as surrogate escapes, so
``obj.key.encode("utf-8", "surrogateescape") == obj.key_bytes``), ``key_bytes``, ``size`` (as listed),
``url``/``url_bytes``, ``output_key``/``output_key_bytes`` (``None`` when DST is ``-``), ``metadata`` (a dict:
``updated``, ``generation``, ``crc32c``, ``md5``, ``content_encoding`` when known) and ``header`` (the request's
header as sent). ``sluice_worker.job`` is sluice's hello (``worker_id``, ``jobs``, ``src``, ``dst``) once started.

``run`` returns when sluice closes the worker's stdin (the end of the job, or a recycle): the script should then
end. Exit statuses: 1 if ``setup`` failed, 2 if sluice's side broke the protocol (a message on stderr says how) or
the versions do not match; run by hand on a terminal, the module says what it is and exits 2.
"""
import base64
import io
import json
import os
import sys
import traceback

__all__ = ["run", "run_stream", "Object", "InputAborted", "ProtocolError", "PROTOCOL_VERSION", "job"]
__version__ = "1.0.0"

PROTOCOL_VERSION = 1
MAX_LINE = 131072  # bytes in one protocol line, its LF included (both directions)
MAX_CHUNK = 2**31 - 1
MAX_RESULT = 65536  # result members, as sluice's result line holds them
_OUT_BUFFER = 256 * 1024  # output bytes gathered into one chunk
_IN_BUFFER = 256 * 1024
_ERROR_HEAD = 2000  # characters of "Type: message" kept in an error
_ERROR_TAIL = 2000  # characters of traceback kept (its end: the innermost frames)
_RESERVED = ("key", "size", "output")

job = None  # sluice's hello, once run() has read it


class ProtocolError(BaseException):
    """sluice's side broke the protocol. Not an Exception: user code catching Exception does not swallow it; the
    worker writes the reason on stderr and exits 2."""


class InputAborted(OSError):
    """sluice abandoned the object being read (its download failed, it changed while read): raised by obj.stream.
    The answer is discarded whatever process does, so there is nothing to do but let it propagate."""


class Object:
    """One object: what the request's header says of it (see the module's docstring)."""

    __slots__ = ("header", "key", "key_bytes", "size", "url", "url_bytes", "output_key", "output_key_bytes",
                 "metadata", "stream")

    def __init__(self, header):
        self.header = header
        self.key, self.key_bytes = _bytes_member(header, "key", required=True)
        self.size = header.get("size")
        if not _is_count(self.size, 2**63 - 1):
            raise ProtocolError("a request's header has no valid size: %s" % _clip(json.dumps(header)))
        self.url, self.url_bytes = _bytes_member(header, "url")
        self.output_key, self.output_key_bytes = _bytes_member(header, "output_key")
        metadata = header.get("metadata", {})
        self.metadata = metadata if isinstance(metadata, dict) else {}
        self.stream = None

    def __repr__(self):
        return "<sluice_worker.Object key=%r size=%d>" % (self.key, self.size)


def run(process, setup=None):
    """Serves objects to process(obj, data[, context]) until sluice closes stdin. See the module's docstring."""
    _serve(process, setup, streaming=False)


def run_stream(process, setup=None):
    """Serves objects to process(obj, out[, context]), obj.stream holding the data. See the module's docstring."""
    _serve(process, setup, streaming=True)


# ---------------------------------------------------------------------------------------------------------------
# The pipes

_pipes = None  # (reader of the protocol's input, fd of its output), once taken


def _take_stdio():
    """Moves the protocol's pipes to private descriptors and points 0 and 1 (and sys.stdin, sys.stdout) elsewhere, so
    that nothing user code or a child process does with them reaches the protocol. Idempotent."""
    global _pipes
    if _pipes is not None:
        return _pipes
    in_fd = os.dup(0)  # not inheritable: a child process of the worker does not get the pipes
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr: prints go nowhere rather than into the protocol
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    # Whatever user code printed before now is still in sys.stdout's buffer: it goes to descriptor 1, now stderr.
    for stream in (sys.stdout, sys.__stdout__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, "r")
    _pipes = (io.BufferedReader(io.FileIO(in_fd, "rb"), _IN_BUFFER), out_fd)
    return _pipes


def _write_all(fd, parts):
    parts = [memoryview(p).cast("B") for p in parts if len(p)]
    while parts:
        n = os.writev(fd, parts)
        while n:
            if n >= len(parts[0]):
                n -= len(parts.pop(0))
            else:
                parts[0] = parts[0][n:]
                n = 0


def _line(obj):
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
    if len(data) > MAX_LINE:
        raise ValueError("a protocol line would be %d bytes, over the limit of %d" % (len(data), MAX_LINE))
    return data


def _read_line(reader, what):
    """The next line as a dict, or None at EOF before its first byte."""
    line = reader.readline(MAX_LINE)
    if not line:
        return None
    if not line.endswith(b"\n"):
        if len(line) >= MAX_LINE:
            raise ProtocolError("%s: a line longer than %d bytes" % (what, MAX_LINE))
        raise ProtocolError("%s: the input ended in the middle of a line (%d bytes: %s)" % (what, len(line),
                                                                                           _clip(repr(line))))
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError("%s: not a JSON line (%s): %s" % (what, e, _clip(repr(line))))
    if not isinstance(value, dict):
        raise ProtocolError("%s: not a JSON object: %s" % (what, _clip(repr(line))))
    return value


def _is_count(v, limit):
    return type(v) is int and 0 <= v <= limit


def _bytes_member(header, name, required=False):
    """(str with surrogate escapes, exact bytes) of a string member under the _b64 rule; (None, None) if absent."""
    text = header.get(name)
    if text is None and not required:
        return None, None
    if not isinstance(text, str):
        raise ProtocolError("a request's header has no valid %s: %s" % (name, _clip(json.dumps(header))))
    b64 = header.get(name + "_b64")
    try:
        if b64 is not None:
            raw = base64.b64decode(b64, validate=True)
        else:
            raw = text.encode("utf-8")
    except (TypeError, ValueError) as e:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise ProtocolError("a request's %s is not valid (%s): %s" % (name, e, _clip(json.dumps(header))))
    return raw.decode("utf-8", "surrogateescape"), raw


def _clip(text, limit=200):
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------------------------
# A request's data

class _Input(io.RawIOBase):
    """The data of one request, read from its chunks; after its end line, end holds that line."""

    def __init__(self, reader):
        super().__init__()
        self._reader = reader
        self._left = 0  # bytes left in the current chunk
        self.total = 0
        self.end = None

    def readable(self):
        return True

    def _next_frame(self):
        frame = _read_line(self._reader, "sluice's request")
        if frame is None:
            raise ProtocolError("sluice's request: the input ended in the middle of an object's data")
        if "chunk" in frame:
            if not _is_count(frame["chunk"], MAX_CHUNK):
                raise ProtocolError("sluice's request: a chunk of no valid size: %s" % _clip(json.dumps(frame)))
            self._left = frame["chunk"]
            return
        ok = frame.get("ok")
        if ok is True:
            if frame.get("size") != self.total:
                raise ProtocolError("sluice's request: its end line says %s bytes, its chunks held %d"
                                    % (json.dumps(frame.get("size")), self.total))
        elif ok is False:
            if not isinstance(frame.get("error"), str):
                raise ProtocolError("sluice's request: an end line without an error: %s" % _clip(json.dumps(frame)))
        else:
            raise ProtocolError("sluice's request: neither a chunk nor an end line: %s" % _clip(json.dumps(frame)))
        self.end = frame

    def _check_end(self):
        if self.end is not None and self.end["ok"] is False:
            raise InputAborted("sluice abandoned this object: %s" % self.end["error"])

    def readinto(self, b):
        while self.end is None and self._left == 0:
            self._next_frame()
        if self.end is not None:
            self._check_end()
            return 0
        view = memoryview(b).cast("B")
        n = self._reader.readinto(view[:min(len(view), self._left)])
        if not n:
            raise ProtocolError("sluice's request: the input ended in the middle of a chunk (%d bytes of it were "
                                "missing)" % self._left)
        self._left -= n
        self.total += n
        return n

    def read_all(self):
        """The whole data as bytes, or None if sluice abandoned the object (end then says why)."""
        parts = []
        while True:
            while self.end is None and self._left == 0:
                self._next_frame()
            if self.end is not None:
                break
            part = self._reader.read(self._left)
            if len(part) < self._left:
                raise ProtocolError("sluice's request: the input ended in the middle of a chunk (%d bytes of it "
                                    "were missing)" % (self._left - len(part)))
            self._left = 0
            self.total += len(part)
            parts.append(part)
        if self.end["ok"] is False:
            return None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def drain(self):
        while True:
            while self.end is None and self._left == 0:
                self._next_frame()
            if self.end is not None:
                return
            part = self._reader.read(min(self._left, _IN_BUFFER))
            if not part:
                raise ProtocolError("sluice's request: the input ended in the middle of a chunk (%d bytes of it "
                                    "were missing)" % self._left)
            self._left -= len(part)
            self.total += len(part)


# ---------------------------------------------------------------------------------------------------------------
# An answer's output

class _Output(io.BufferedIOBase):
    """The output of one object: written out as chunks of up to _OUT_BUFFER bytes while process runs."""

    def __init__(self, fd):
        super().__init__()
        self._fd = fd
        self._buf = bytearray()
        self.touched = False
        self.total = 0
        self._done = False

    def writable(self):
        return True

    def write(self, b):
        if self._done or self.closed:
            raise ValueError("this object's output is closed (or its answer sent): it can no longer be written")
        view = memoryview(b).cast("B")
        self.touched = True
        n = len(view)
        if len(self._buf) + n < _OUT_BUFFER:
            self._buf += view
            return n
        self._send_buffer()
        while len(view) > MAX_CHUNK:
            self._send(view[:MAX_CHUNK])
            view = view[MAX_CHUNK:]
        if len(view) >= _OUT_BUFFER:
            self._send(view)
        else:
            self._buf += view
        return n

    def flush(self):
        if not self._done:
            self._send_buffer()

    def _send_buffer(self):
        if self._buf:
            self._send(self._buf)
            self._buf = bytearray()

    def _send(self, data):
        _write_all(self._fd, [b'{"chunk":%d}\n' % len(data), data])
        self.total += len(data)

    def finish(self):
        """Sends what is buffered; no write is taken after this."""
        self._send_buffer()
        self._done = True

    def discard(self):
        self._buf = bytearray()
        self._done = True


# ---------------------------------------------------------------------------------------------------------------
# Serving

def _describe(exc, tb=None):
    """'Type: message' and the innermost frames of traceback tb (if any), bounded, as one error text."""
    name = type(exc).__name__
    text = str(exc)
    head = "%s: %s" % (name, text) if text else name
    if len(head) > _ERROR_HEAD:
        half = _ERROR_HEAD // 2
        head = head[:half] + " [...] " + head[-half:]
    frames = "".join(traceback.format_tb(tb)) if tb is not None else ""
    if frames:
        if len(frames) > _ERROR_TAIL:
            frames = "[...]" + frames[-_ERROR_TAIL:]
        head += "\nTraceback (most recent call last):\n" + frames.rstrip("\n")
    return _valid_text(head)


def _valid_text(text):
    """text with any lone surrogate made printable: bytes kept by surrogateescape as \\xHH, others as \\udXXX."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")


def _only_escapes(text):
    return all(not ("\ud800" <= c <= "\udfff") or "\udc80" <= c <= "\udcff" for c in text)


def _result_members(result):
    """result checked as result members; returns the dict or raises ValueError/TypeError with the reason."""
    for name in _RESERVED:
        if name in result:
            raise ValueError("result member %r is sluice's own (key, size and output are reserved)" % name)
    try:
        encoded = json.dumps(result, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the result is not valid Unicode (a str holds a lone surrogate: decode bytes before "
                         "returning them)")
    if len(encoded) - 2 > MAX_RESULT:
        raise ValueError("the result members take %d bytes as JSON, over sluice's limit of %d"
                         % (len(encoded) - 2, MAX_RESULT))
    return result


def _fail(fd, exc, tb=None):
    _write_all(fd, [_line({"ok": False, "error": _describe(exc, tb)})])


def _fail_text(fd, text):
    _write_all(fd, [_line({"ok": False, "error": _valid_text(text)})])


def _call(process, args):
    """process(*args), or the exception it raised with the traceback below this frame."""
    try:
        return process(*args), None, None
    except Exception as e:  # noqa: BLE001 - the object fails, the worker goes on
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        return None, e, tb


def _answer_simple(fd, obj, data, process, args):
    ret, exc, tb = _call(process, (obj, data) + args)
    if exc is not None:
        return _fail(fd, exc, tb)
    if ret is None:
        return _write_all(fd, [b'{"ok":true}\n'])
    if isinstance(ret, dict):
        try:
            line = _line({"ok": True, "result": _result_members(ret)})
        except (TypeError, ValueError) as e:
            return _fail(fd, e, None)
        return _write_all(fd, [line])
    if isinstance(ret, (bytes, bytearray, memoryview)):
        try:
            view = memoryview(ret).cast("B")
        except TypeError as e:
            return _fail(fd, e, None)
        parts = []
        for at in range(0, len(view), MAX_CHUNK):
            piece = view[at:at + MAX_CHUNK]
            parts += [b'{"chunk":%d}\n' % len(piece), piece]
        parts.append(b'{"ok":true,"size":%d}\n' % len(view))
        return _write_all(fd, parts)
    _fail(fd, TypeError("process returned %s; return bytes, a dict or None" % type(ret).__name__))


def _answer_stream(fd, reader, obj, process, args):
    data = _Input(reader)
    obj.stream = io.BufferedReader(data, 64 * 1024)
    out = _Output(fd)
    ret, exc, tb = _call(process, (obj, out) + args)
    obj.stream = None
    data.drain()  # the next request starts after this one's end line, whatever process read
    if data.end["ok"] is False:
        out.discard()
        return _fail_text(fd, "sluice abandoned this object: %s" % data.end["error"])
    if exc is not None:
        out.discard()
        return _fail(fd, exc, tb)
    if ret is not None and not isinstance(ret, dict):
        out.discard()
        return _fail(fd, TypeError("process returned %s; return None or a dict of result members"
                                   % type(ret).__name__))
    final = {"ok": True}
    if ret is not None:
        try:
            final["result"] = _result_members(ret)
            _line(final)  # one that cannot be sent fails here, before the output goes
        except (TypeError, ValueError) as e:
            out.discard()
            return _fail(fd, e, None)
    if ret is None or out.touched:
        out.finish()
        final["size"] = out.total
    else:
        out.discard()
    _write_all(fd, [_line(final)])


def _start(reader, fd, setup):
    """Both hellos and setup; returns the extra arguments of process."""
    global job
    hello = _read_line(reader, "sluice's hello")
    if hello is None:
        raise ProtocolError("the input ended before sluice's hello (this program is a sluice worker: run it with "
                            "sluice map SRC DST --worker CMD)")
    if hello.get("hello") != "sluice" or not isinstance(hello.get("versions"), list):
        raise ProtocolError("sluice's hello: not a hello: %s" % _clip(json.dumps(hello)))
    mine = {"hello": "worker", "version": PROTOCOL_VERSION,
            "worker": "sluice_worker/%s (Python %d.%d.%d)" % ((__version__,) + tuple(sys.version_info[:3]))}
    if PROTOCOL_VERSION not in hello["versions"]:
        why = ("this worker speaks protocol version %d; sluice speaks %s"
               % (PROTOCOL_VERSION, ", ".join(str(v) for v in hello["versions"]) or "none"))
        mine["error"] = why
        _write_all(fd, [_line(mine)])
        sys.stderr.write("sluice_worker: %s\n" % why)
        sys.exit(2)
    job = hello
    if setup is None:
        args = ()
    else:
        try:
            args = (setup(),)
        except Exception as e:  # noqa: BLE001 - reported to sluice, then the worker exits
            tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
            traceback.print_exception(type(e), e, tb)
            mine["error"] = "setup failed: " + _describe(e, tb)
            _write_all(fd, [_line(mine)])
            sys.exit(1)
    _write_all(fd, [_line(mine)])
    return args


def _serve(process, setup, streaming):
    if os.isatty(0):
        sys.stderr.write("%s is a sluice worker: it speaks docs/worker-protocol.md on its stdin and stdout.\n"
                         "Run it with: sluice map SRC DST --worker '%s'\n" % (sys.argv[0], " ".join(sys.argv)))
        sys.exit(2)
    reader, fd = _take_stdio()
    try:
        args = _start(reader, fd, setup)
        while True:
            header = _read_line(reader, "sluice's request")
            if header is None:
                return  # the end of the job, or a recycle: exit now
            obj = Object(header)
            if streaming:
                _answer_stream(fd, reader, obj, process, args)
                continue
            body = _Input(reader)
            data = body.read_all()
            if data is None:
                _fail_text(fd, "sluice abandoned this object: %s" % body.end["error"])
            else:
                _answer_simple(fd, obj, data, process, args)
    except ProtocolError as e:
        sys.stderr.write("sluice_worker: protocol error: %s\n" % e)
        sys.stderr.flush()
        sys.exit(2)
    except BrokenPipeError:
        sys.stderr.write("sluice_worker: sluice closed the pipe of answers; exiting\n")
        sys.stderr.flush()
        sys.exit(1)


if os.environ.get("SLUICE_WORKER_ID") is not None and not os.isatty(0):
    _take_stdio()
