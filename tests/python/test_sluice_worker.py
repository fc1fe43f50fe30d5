#!/usr/bin/env python3
"""Tests of python/sluice_worker.py: real worker processes (tests/python/edge_worker.py, the examples, the md5
benchmark worker) spoken to over pipes from here exactly as sluice speaks to them (docs/worker-protocol.md).

    python3 -m unittest discover -s tests/python      (or run this file)
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
EDGE = os.path.join(HERE, "edge_worker.py")
WATCHDOG_S = 120


def b64_rule(header, name, raw):
    """Sets header[name] (and name_b64 when raw is not UTF-8) as the protocol's _b64 rule says."""
    if raw is None:
        header[name] = None
        return
    try:
        header[name] = raw.decode("utf-8")
    except UnicodeDecodeError:  # sluice's display form: each stray byte as the character of the same number
        escaped = raw.decode("utf-8", "surrogateescape")
        header[name] = "".join(chr(ord(c) - 0xDC00) if "\udc80" <= c <= "\udcff" else c for c in escaped)
        header[name + "_b64"] = base64.b64encode(raw).decode("ascii")


def line(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


class Worker:
    """One worker process and the engine's side of its pipes."""

    def __init__(self, *argv, env=None):
        full_env = dict(os.environ, SLUICE_WORKER_ID="0", SLUICE_JOBS="1")
        full_env.pop("PYTHONPATH", None)  # the workers find the module on their own
        for name, value in (env or {}).items():
            if value is None:
                full_env.pop(name, None)
            else:
                full_env[name] = value
        self.proc = subprocess.Popen([sys.executable] + list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env, start_new_session=True)
        self._err = []
        self._err_thread = threading.Thread(target=self._read_err, daemon=True)
        self._err_thread.start()
        self._watchdog = threading.Timer(WATCHDOG_S, self.proc.kill)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _read_err(self):
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
            self._err.append(chunk)

    def stderr(self):
        self._err_thread.join(10)
        return b"".join(self._err).decode("utf-8", "replace")

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_line(self):
        raw = self.proc.stdout.readline()
        if not raw.endswith(b"\n"):
            raise AssertionError("the worker's stdout ended: %r; stderr: %s" % (raw, self.stderr()))
        value = json.loads(raw.decode("utf-8"))
        assert isinstance(value, dict), raw
        return value

    def hello(self, versions=(1,)):
        self.send(line({"hello": "sluice", "versions": list(versions), "worker_id": 0, "jobs": 1, "src": "in",
                        "dst": "-", "sluice": "test"}))
        return self.read_line()

    def start(self):
        answer = self.hello()
        assert answer.get("hello") == "worker" and answer.get("version") == 1 and "error" not in answer, answer
        return answer

    def request(self, key=b"k", data=b"", size=None, chunk=262144, end=None, output_key=None, metadata=None):
        """Sends one request; data is bytes or an iterable of bytes pieces (each sent as one chunk)."""
        header = {}
        b64_rule(header, "key", key)
        header["size"] = len(data) if size is None else size
        b64_rule(header, "url", b"file:///data/in/" + key)
        b64_rule(header, "output_key", output_key)
        header["metadata"] = metadata or {}
        self.send(line(header))
        pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] if isinstance(data, bytes) else data
        total = 0
        for piece in pieces:
            self.proc.stdin.write(b'{"chunk":%d}\n' % len(piece))
            self.proc.stdin.write(piece)
            total += len(piece)
        self.send(line(end if end is not None else {"ok": True, "size": total}))

    def answer(self, sink=None):
        """(final line, output bytes or None when sink takes them, number of chunks)."""
        out, chunks = [], 0
        while True:
            frame = self.read_line()
            if "chunk" not in frame:
                return frame, (None if sink else b"".join(out)), chunks
            n = frame["chunk"]
            data = self.proc.stdout.read(n)
            assert len(data) == n, "a chunk of %d bytes ended after %d" % (n, len(data))
            chunks += 1
            if sink:
                sink(data)
            else:
                out.append(data)

    def ask(self, key=b"k", data=b"", **kw):
        self.request(key, data, **kw)
        return self.answer()

    def close(self, timeout=20):
        """Closes stdin (the end of the job) and returns the exit status."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(timeout)
        finally:
            self._watchdog.cancel()
            self._err_thread.join(10)
            self.proc.stdout.close()
            self.proc.stderr.close()

    def kill(self):
        self.proc.kill()
        self.close()


class WorkerTest(unittest.TestCase):
    def worker(self, *argv, **kw):
        w = Worker(*argv, **kw)
        self.addCleanup(lambda: w.proc.poll() is not None or w.kill())
        return w


class Start(WorkerTest):
    def test_hello_and_version(self):
        w = self.worker(EDGE)
        hello = w.hello(versions=[1, 2])
        self.assertEqual(hello["hello"], "worker")
        self.assertEqual(hello["version"], 1)
        self.assertNotIn("error", hello)
        self.assertEqual(w.close(), 0)
        self.assertIn("setup printed this", w.stderr())  # a print in setup() reached stderr, not the protocol

    def test_version_mismatch(self):
        w = self.worker(EDGE)
        hello = w.hello(versions=[2, 3])
        self.assertEqual(hello["version"], 1)
        self.assertIn("error", hello)
        self.assertEqual(w.proc.wait(20), 2)  # without waiting for EOF
        self.assertIn("speaks protocol version 1; sluice speaks 2, 3", w.stderr())
        w.close()

    def test_setup_failure(self):
        w = self.worker(EDGE, "--setup-fails")
        hello = w.hello()
        self.assertTrue(hello["error"].startswith("setup failed: RuntimeError: no model here"), hello)
        self.assertIn("in setup", hello["error"])
        self.assertEqual(w.proc.wait(20), 1)
        self.assertIn("RuntimeError: no model here", w.stderr())
        w.close()

    def test_setup_runs_once_per_process(self):
        for mode in ([], ["--stream"]):
            w = self.worker(EDGE, *mode)
            w.start()
            seen = []
            for i in range(4):
                final, _, _ = w.ask(b"info/%d" % i, b"x" * i)
                self.assertTrue(final["ok"], final)
                seen.append(final["result"])
            self.assertEqual({r["setup_calls"] for r in seen}, {1})
            self.assertEqual({r["setup_count"] for r in seen}, {1})
            self.assertEqual({r["pid"] for r in seen}, {w.proc.pid})
            self.assertEqual(seen[0]["worker_id"], "0")
            self.assertEqual(w.close(), 0)

    def test_eof_is_a_clean_exit(self):
        w = self.worker(EDGE)
        w.start()
        w.ask(b"a", b"abc")
        self.assertEqual(w.close(), 0)
        self.assertNotIn("protocol error", w.stderr())

    def test_not_a_hello(self):
        w = self.worker(EDGE)
        w.send(b'{"key":"a","size":0}\n')
        self.assertEqual(w.close(), 2)
        self.assertIn("not a hello", w.stderr())


class Objects(WorkerTest):
    def test_echo_and_result_kinds(self):
        for mode in ([], ["--stream"]):
            w = self.worker(EDGE, *mode)
            w.start()
            final, out, _ = w.ask(b"plain/a", b"hello\n")
            self.assertEqual(final, {"ok": True, "size": 6})
            self.assertEqual(out, b"HELLO\n")
            final, out, _ = w.ask(b"md5/a", b"abc")
            self.assertEqual(final, {"ok": True, "result": {"md5": hashlib.md5(b"abc").hexdigest()}})
            self.assertEqual(out, b"")
            final, out, chunks = w.ask(b"none/a", b"abc")
            # None: no output body in the simple form; in the streaming form, the (empty) output it wrote.
            self.assertEqual(final, {"ok": True} if not mode else {"ok": True, "size": 0})
            self.assertEqual((out, chunks), (b"", 0))
            self.assertEqual(w.close(), 0)

    def test_zero_byte_object(self):
        for mode in ([], ["--stream"]):
            w = self.worker(EDGE, *mode)
            w.start()
            final, out, chunks = w.ask(b"empty", b"")
            self.assertEqual((final, out, chunks), ({"ok": True, "size": 0}, b"", 0))
            final, _, _ = w.ask(b"info/empty", b"")
            self.assertEqual(final["result"]["object_size"], 0)
            final, _, _ = w.ask(b"md5/empty", b"")
            self.assertEqual(final["result"]["md5"], hashlib.md5(b"").hexdigest())
            self.assertEqual(w.close(), 0)

    def test_keys_with_newlines_and_invalid_utf8(self):
        keys = [b"info/a\nb", b"info/\"quoted\" \\ back\tslash", b"info/x\xff\xfe\n\x01", b"info/caf\xc3\xa9",
                b"info/\xed\xa0\x80 surrogate bytes"]
        for mode in ([], ["--stream"]):
            w = self.worker(EDGE, *mode)
            w.start()
            for key in keys:
                final, _, _ = w.ask(key, b"data", output_key=key + b".json", metadata={"crc32c": "00000000"})
                r = final["result"]
                self.assertEqual(bytes.fromhex(r["key_hex"]), key)
                self.assertTrue(r["key_roundtrip"])
                self.assertEqual(bytes.fromhex(r["url_hex"]), b"file:///data/in/" + key)
                self.assertEqual(bytes.fromhex(r["output_key_hex"]), key + b".json")
                self.assertEqual(r["metadata"], {"crc32c": "00000000"})
            self.assertEqual(w.close(), 0)

    def test_output_key_null_for_dash(self):
        w = self.worker(EDGE)
        w.start()
        final, _, _ = w.ask(b"info/a", b"")
        self.assertIsNone(final["result"]["output_key_hex"])
        final, _, _ = w.ask(b"info/a", b"", output_key=b"info/a.out")
        self.assertEqual(final["result"]["output_key_hex"], b"info/a.out".hex())
        w.close()

    def test_user_code_printing_to_stdout(self):
        # Without SLUICE_WORKER_ID the module takes the pipes only when run() starts, after the print at import time.
        buffered = {"SLUICE_WORKER_ID": None, "PYTHONUNBUFFERED": None, "EDGE_PRINT_AT_IMPORT": "1"}
        for mode, env in (([], {}), (["--stream"], {}), ([], {"SLUICE_WORKER_ID": None}), ([], buffered)):
            w = self.worker(EDGE, *mode, env=env)
            w.start()
            final, out, _ = w.ask(b"print/a", b"payload")
            self.assertEqual(final, {"ok": True, "size": 7})
            self.assertEqual(out, b"PAYLOAD")
            final, out, _ = w.ask(b"plain/b", b"next")  # the stream is still in step
            self.assertEqual((final["ok"], out), (True, b"NEXT"))
            self.assertEqual(w.close(), 0)
            err = w.stderr()
            for text in ("setup printed this", "print() from user code print/a", "sys.stdout.write from user code",
                         "os.write(1) from user code", "a child process writing to its stdout"):
                self.assertIn(text, err)
            if env.get("SLUICE_WORKER_ID", "") is not None or env.get("EDGE_PRINT_AT_IMPORT"):
                self.assertIn("a print at import time, before run()", err)

    def test_exception_fails_the_object_alone(self):
        for mode in ([], ["--stream"]):
            w = self.worker(EDGE, *mode)
            w.start()
            final, _, chunks = w.ask(b"raise/x", b"some data")
            self.assertIs(final["ok"], False)
            error = final["error"]
            self.assertTrue(error.startswith("ValueError: bad object raise/x\nTraceback (most recent call last):"),
                            error)
            self.assertIn("edge_worker.py", error)
            self.assertIn("in streamed" if mode else "in simple", error)
            self.assertNotIn("sluice_worker.py", error)  # the module's own frames are left out
            self.assertLessEqual(len(error), 4200)
            if mode:
                self.assertEqual(chunks, 1)  # what it wrote before failing went out, and is discarded by sluice
            final, out, _ = w.ask(b"plain/y", b"ok")
            self.assertEqual((final, out), ({"ok": True, "size": 2}, b"OK"))
            final, _, _ = w.ask(b"raise/\xff\n", b"")  # a message quoting a key that is not UTF-8
            self.assertTrue(final["error"].startswith("ValueError: bad object raise/\\xff\n"), final)
            self.assertEqual(w.close(), 0)

    def test_reserved_result_member(self):
        w = self.worker(EDGE)
        w.start()
        final, _, _ = w.ask(b"reserved/x", b"")
        self.assertIs(final["ok"], False)
        self.assertIn("'key' is sluice's own", final["error"])
        self.assertEqual(w.close(), 0)

    def test_result_that_is_not_unicode(self):
        w = self.worker(EDGE)
        w.start()
        final, _, _ = w.ask(b"surrogate/\xff", b"")
        self.assertIs(final["ok"], False)
        self.assertTrue(final["error"].startswith("ValueError: the result is not valid Unicode"), final)
        self.assertNotIn("Traceback", final["error"])  # a check of the module's: no frames of its own
        final, _, _ = w.ask(b"surrogate/caf\xc3\xa9", b"")
        self.assertEqual(final, {"ok": True, "result": {"name": "surrogate/caf\u00e9"}})
        self.assertEqual(w.close(), 0)

    def test_sluice_abandons_an_object(self):
        for mode in ([], ["--stream"]):
            w = self.worker(EDGE, *mode)
            w.start()
            for key in (b"raise/x", b"plain/x", b"md5/x"):  # fails before reading, reads it all, reads it whole
                final, _, _ = w.ask(key, b"abc", end={"ok": False, "error": "download failed"})
                self.assertEqual(final, {"ok": False, "error": "sluice abandoned this object: download failed"})
            final, out, _ = w.ask(b"plain/y", b"ok")
            self.assertEqual(out, b"OK")
            self.assertEqual(w.close(), 0)

    def test_unread_data_is_drained(self):
        w = self.worker(EDGE, "--stream")
        w.start()
        data = bytes(range(256)) * 4096  # 1 MiB, of which the worker reads 10 bytes
        final, _, _ = w.ask(b"partial/a", data)
        self.assertEqual(final, {"ok": True, "result": {"head": data[:10].decode("latin-1")}})
        final, out, _ = w.ask(b"plain/b", b"after")
        self.assertEqual(out, b"AFTER")
        self.assertEqual(w.close(), 0)

    def test_text_wrappers_on_the_streams(self):
        w = self.worker(EDGE, "--stream")
        w.start()
        final, out, _ = w.ask(b"text/a", "one\ntwo\n".encode())
        self.assertEqual(final, {"ok": True, "size": len(out), "result": {"closed_out": True}})
        self.assertEqual(out.decode("utf-8"), "one \u00e9\ntwo \u00e9\n")
        self.assertEqual(w.close(), 0)

    def test_chunks_of_any_size(self):
        w = self.worker(EDGE, "--stream")
        w.start()
        pieces = [b"a", b"", b"bc" * 70000, b"d"]
        final, out, _ = w.ask(b"plain/odd", pieces)
        self.assertEqual(out, b"".join(pieces).upper())
        self.assertEqual(final["size"], len(out))
        self.assertEqual(w.close(), 0)


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for row in f:
            if row.startswith("VmHWM:"):
                return int(row.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


class Large(WorkerTest):
    SIZE = 100 * 1024 * 1024

    def pattern(self):
        block = hashlib.sha256(b"sluice").digest() * 8192  # 256 KiB
        for _ in range(self.SIZE // len(block)):
            yield block

    def test_100_mib_streamed_both_ways_in_small_memory(self):
        w = self.worker(EDGE, "--stream")
        w.start()
        sent = hashlib.md5()
        expected = hashlib.md5()

        def feed():
            for piece in self.pattern():
                sent.update(piece)
                expected.update(piece.upper())
                yield piece

        writer = threading.Thread(target=w.request, args=(b"plain/big", feed()), kwargs={"size": self.SIZE})
        writer.start()  # the worker's output is read while its input is still being sent, as sluice does
        got = hashlib.md5()
        total = [0]

        def sink(data):
            got.update(data)
            total[0] += len(data)

        final, _, chunks = w.answer(sink)
        writer.join()
        self.assertEqual(final, {"ok": True, "size": self.SIZE})
        self.assertEqual(total[0], self.SIZE)
        self.assertEqual(got.hexdigest(), expected.hexdigest())
        self.assertGreater(chunks, 100)
        peak = vm_hwm_kib(w.proc.pid)
        self.assertLess(peak, 48 * 1024, "the worker's peak RSS was %d KiB for a 100 MiB object" % peak)
        self.assertEqual(w.close(), 0)

    def test_100_mib_hashed_by_the_md5_worker_streaming(self):
        w = self.worker(os.path.join(ROOT, "bench", "md5_worker.py"), "--stream")
        w.start()
        sent = hashlib.md5()

        def feed():
            for piece in self.pattern():
                sent.update(piece)
                yield piece

        w.request(b"big", feed(), size=self.SIZE)
        final, _, _ = w.answer()
        self.assertEqual(final, {"ok": True, "result": {"md5": sent.hexdigest()}})
        peak = vm_hwm_kib(w.proc.pid)
        self.assertLess(peak, 48 * 1024, "the worker's peak RSS was %d KiB for a 100 MiB object" % peak)
        self.assertEqual(w.close(), 0)


class DriverViolations(WorkerTest):
    """What sluice's side could get wrong: the worker must exit non-zero with a message, never hang."""

    def expect_protocol_error(self, w, text):
        self.assertEqual(w.close(), 2)
        err = w.stderr()
        self.assertIn("sluice_worker: protocol error:", err)
        self.assertIn(text, err)

    def test_truncated_chunk(self):
        for mode in ([], ["--stream"]):
            w = self.worker(EDGE, *mode)
            w.start()
            w.send(line({"key": "plain/a", "size": 100, "url": "file:///a", "output_key": None, "metadata": {}}))
            w.send(b'{"chunk":100}\n' + b"x" * 50)
            self.expect_protocol_error(w, "ended in the middle of a chunk")

    def test_truncated_header_line(self):
        w = self.worker(EDGE)
        w.start()
        w.send(b'{"key":"a","si')
        self.expect_protocol_error(w, "ended in the middle of a line")

    def test_eof_before_the_end_line(self):
        w = self.worker(EDGE, "--stream")
        w.start()
        w.send(line({"key": "plain/a", "size": 3, "url": "file:///a", "output_key": None, "metadata": {}}))
        w.send(b'{"chunk":3}\nabc')
        self.expect_protocol_error(w, "ended in the middle of an object's data")

    def test_garbage(self):
        w = self.worker(EDGE)
        w.start()
        w.send(b"this is not JSON\n")
        self.expect_protocol_error(w, "not a JSON line")

    def test_wrong_size_in_end_line(self):
        w = self.worker(EDGE)
        w.start()
        w.request(b"plain/a", b"abc", end={"ok": True, "size": 4})
        self.expect_protocol_error(w, "its end line says 4 bytes, its chunks held 3")

    def test_line_too_long(self):
        w = self.worker(EDGE)
        w.start()
        try:
            w.send(b'{"key":"' + b"k" * 200000 + b'","size":0}\n')
        except BrokenPipeError:
            pass
        self.expect_protocol_error(w, "longer than 131072 bytes")

    def test_bad_chunk_size(self):
        w = self.worker(EDGE)
        w.start()
        w.send(line({"key": "plain/a", "size": 3, "url": "file:///a", "output_key": None, "metadata": {}}))
        w.send(b'{"chunk":-3}\n')
        self.expect_protocol_error(w, "a chunk of no valid size")


class Examples(WorkerTest):
    EVENTS = [
        b"",
        b'{"user": "u1", "amount": 10.5}\n{"user": "u2", "amount": 3}\n{"user": "u1", "amount": 1.25}\n',
        b'{"user": "u3", "amount": 7}\nnot json\n\n{"user": "u4"}\n{"user": "u3", "amount": true}\n'
        b'{"user": "u5", "amount": 99.99}',
    ]

    def test_aggregate_worker_matches_the_exec_form(self):
        w = self.worker(os.path.join(ROOT, "examples", "worker", "aggregate.py"))
        w.start()
        for i, data in enumerate(self.EVENTS):
            key = b"day=0%d/events.jsonl" % i
            final, out, _ = w.ask(key, data)
            self.assertTrue(final["ok"], final)
            self.assertEqual(out, b"")  # the result alone: sluice makes it the result line
            env = dict(os.environ, SLUICE_KEY=key.decode(), SLUICE_SIZE=str(len(data)))
            run = subprocess.run([sys.executable, "-S", os.path.join(ROOT, "examples", "exec", "aggregate.py")],
                                 input=data, stdout=subprocess.PIPE, env=env, check=True, timeout=60)
            expected = json.loads(run.stdout)
            self.assertEqual(expected.pop("key"), key.decode())
            self.assertEqual(expected.pop("size"), len(data))
            self.assertEqual(final["result"], expected)
        self.assertEqual(final["result"], {"lines": 5, "bad_lines": 3, "users": 2, "amount_sum": 106.99,
                                           "amount_max": 99.99, "top_user": "u5"})
        self.assertEqual(w.close(), 0)

    def test_md5_worker(self):
        for mode in ([], ["--stream"]):
            w = self.worker(os.path.join(ROOT, "bench", "md5_worker.py"), *mode)
            w.start()
            for data in (b"", b"abc", os.urandom(300000)):
                final, _, _ = w.ask(b"obj", data)
                self.assertEqual(final, {"ok": True, "result": {"md5": hashlib.md5(data).hexdigest()}})
            self.assertEqual(w.close(), 0)


if __name__ == "__main__":
    unittest.main()
