#!/usr/bin/env python3
"""Tests of tests/gcs/gcs_server.py, the local GCS JSON API server (unittest, standard library only).

Each test class talks to a real server process started on a free loopback port, over real sockets.
Run: python3 tests/gcs/test_gcs_server.py
"""

import base64
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from urllib.parse import quote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "gcs_server.py")
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, HERE)
import gcs_server  # noqa: E402  (for crc32c)

KIB = 1024
QUANTUM = 256 * KIB


def b64(b):
    return base64.b64encode(b).decode()


def crc_b64(data):
    return b64(gcs_server.crc32c(data).to_bytes(4, "big"))


def enc(name):
    return quote(name, safe="")


class ServerProcess:
    """A gcs_server.py subprocess on a free port; the port comes from --port-file and the stdout line."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="gcs-test-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen([sys.executable, SERVER, "--port", "0", "--port-file", port_file] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"^listening on 127\.0\.0\.1:(\d+)\n$", line)
        if not m:
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            raise RuntimeError("server did not start: %r %s" % (line, err))
        self.port = int(m.group(1))
        with open(port_file) as f:
            assert int(f.read().strip()) == self.port

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        err = self.proc.stderr.read().decode()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.proc.returncode != 0:
            err += "\nserver exit status %d" % self.proc.returncode
        return err

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """(status, headers message, body bytes) of one request; a fresh connection unless conn is given."""
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, r.headers, data
        finally:
            if conn is None:
                c.close()

    def json(self, method, path, body=None, headers=None, conn=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        status, hdrs, data = self.request(method, path, body, headers, conn)
        return status, (json.loads(data) if data else None), hdrs

    def upload(self, bucket, name, data, query="", headers=None, conn=None):
        return self.json("POST", "/upload/storage/v1/b/%s/o?uploadType=media&name=%s%s" % (bucket, enc(name), query),
                         data, headers, conn)

    def retry_test(self, instructions):
        status, t, _ = self.json("POST", "/retry_test", {"instructions": instructions})
        assert status == 200, t
        return t["id"]


def setUpModule():
    global SRV
    SRV = ServerProcess("--bucket", "b")


def tearDownModule():
    err = SRV.stop()
    # The server never prints tracebacks unless it hit a bug of its own.
    if "Traceback" in err or "exit status" in err:
        raise AssertionError("server stderr:\n" + err)


class GcsErrorShape:
    def assertGcsError(self, status, body, code, reason=None):
        self.assertEqual(status, code, body)
        self.assertEqual(body["error"]["code"], code)
        self.assertTrue(body["error"]["message"])
        self.assertEqual(body["error"]["errors"][0]["domain"], "global")
        if reason:
            self.assertEqual(body["error"]["errors"][0]["reason"], reason)


class TestCrc32c(unittest.TestCase):
    def test_check_value_and_incremental(self):
        self.assertEqual(gcs_server.crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(gcs_server.crc32c(b""), 0)
        data = bytes(range(256)) * 41 + b"tail"
        whole = gcs_server.crc32c(data)
        for cut in (0, 1, 7, 8, 9, 1000, len(data)):
            self.assertEqual(gcs_server.crc32c(data[cut:], gcs_server.crc32c(data[:cut])), whole)
        # RFC 3720 B.4 test vectors (iSCSI uses CRC32C).
        self.assertEqual(gcs_server.crc32c(b"\x00" * 32), 0x8A9136AA)
        self.assertEqual(gcs_server.crc32c(b"\xff" * 32), 0x62A8AB43)
        self.assertEqual(gcs_server.crc32c(bytes(range(32))), 0x46DD794E)


class TestStartup(unittest.TestCase):
    def test_root_seeding(self):
        root = tempfile.mkdtemp(prefix="gcs-root-")
        try:
            os.makedirs(os.path.join(root, "seeded", "d", "e"))
            for rel, data in [("a.txt", b"A"), ("d/b.bin", b"BB"), ("d/e/c", b"")]:
                with open(os.path.join(root, "seeded", rel), "wb") as f:
                    f.write(data)
            srv = ServerProcess("--root", root)
            try:
                st, body, _ = srv.json("GET", "/storage/v1/b/seeded/o?fields=items(name,size)")
                self.assertEqual(body["items"], [{"name": "a.txt", "size": "1"}, {"name": "d/b.bin", "size": "2"},
                                                 {"name": "d/e/c", "size": "0"}])
            finally:
                srv.stop()
        finally:
            shutil.rmtree(root)


    def test_refuses_non_loopback_host(self):
        r = subprocess.run([sys.executable, SERVER, "--host", "0.0.0.0", "--port", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"127.0.0.1", r.stderr)


class TestBuckets(unittest.TestCase, GcsErrorShape):
    def test_insert_get_conflict_missing(self):
        st, body, _ = SRV.json("POST", "/storage/v1/b?project=p", {"name": "new-bucket"})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["kind"], "storage#bucket")
        self.assertEqual(body["name"], "new-bucket")
        st, body, _ = SRV.json("POST", "/storage/v1/b?project=p", {"name": "new-bucket"})
        self.assertGcsError(st, body, 409, "conflict")
        st, body, _ = SRV.json("GET", "/storage/v1/b/new-bucket")
        self.assertEqual((st, body["name"]), (200, "new-bucket"))
        st, body, _ = SRV.json("GET", "/storage/v1/b/new-bucket?fields=name")
        self.assertEqual(body, {"name": "new-bucket"})
        st, body, _ = SRV.json("GET", "/storage/v1/b/no-such-bucket")
        self.assertGcsError(st, body, 404, "notFound")
        st, body, _ = SRV.json("POST", "/storage/v1/b", {"name": "x-bucket"})
        self.assertGcsError(st, body, 400)
        st, body, _ = SRV.json("POST", "/storage/v1/b?project=p", {"name": "UPPER"})
        self.assertGcsError(st, body, 400)

    def test_bucket_modes(self):
        SRV.json("POST", "/_seed", {"bucket": "bm", "objects": [{"name": "a", "data": "x"}]})
        try:
            for mode, status in (("no-bucket-resource", 404), ("bucket-resource-501", 501)):
                st, body, _ = SRV.json("POST", "/_config", {"bucket_modes": {"bm": [mode]}})
                self.assertEqual((st, body["bucket_modes"]), (200, {"bm": [mode]}))
                st, body, _ = SRV.json("GET", "/storage/v1/b/bm?fields=name")
                self.assertGcsError(st, body, status)
                # Only the bucket resource: its objects are listed, read and written as usual.
                st, body, _ = SRV.json("GET", "/storage/v1/b/bm/o?maxResults=1&fields=items(name)")
                self.assertEqual((st, body), (200, {"items": [{"name": "a"}]}))
                st, body, _ = SRV.upload("bm", "b-" + mode, b"y")
                self.assertEqual(st, 200, body)
                st, body, _ = SRV.json("GET", "/storage/v1/b/bm/o/a")
                self.assertEqual(st, 200, body)
            st, body, _ = SRV.json("POST", "/_config", {"bucket_modes": {"bm": ["sideways"]}})
            self.assertGcsError(st, body, 400)
        finally:
            SRV.json("POST", "/_config", {"bucket_modes": {"bm": []}})
        st, body, _ = SRV.json("GET", "/storage/v1/b/bm")
        self.assertEqual((st, body["name"]), (200, "bm"))

    def test_objects_in_missing_bucket(self):
        st, body, _ = SRV.json("GET", "/storage/v1/b/nobucket/o")
        self.assertGcsError(st, body, 404, "notFound")
        st, body, _ = SRV.upload("nobucket", "k", b"x")
        self.assertGcsError(st, body, 404, "notFound")


class TestObjects(unittest.TestCase, GcsErrorShape):
    def test_media_upload_metadata_and_download(self):
        data = b"hello, sluice\n" * 100
        st, obj, _ = SRV.upload("b", "dir/hello.txt", data, headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 200, obj)
        self.assertEqual(obj["kind"], "storage#object")
        self.assertEqual(obj["name"], "dir/hello.txt")
        self.assertEqual(obj["bucket"], "b")
        self.assertEqual(obj["size"], str(len(data)))
        self.assertEqual(obj["crc32c"], crc_b64(data))
        self.assertEqual(obj["md5Hash"], b64(hashlib.md5(data).digest()))
        self.assertEqual(obj["contentType"], "text/plain")
        self.assertIsInstance(obj["generation"], str)
        self.assertEqual(obj["metageneration"], "1")
        self.assertRegex(obj["updated"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertRegex(obj["timeCreated"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(obj["id"], "b/dir/hello.txt/" + obj["generation"])
        self.assertTrue(obj["etag"])

        st, meta, _ = SRV.json("GET", "/storage/v1/b/b/o/dir%2Fhello.txt")
        self.assertEqual((st, meta), (200, obj))
        st, meta, _ = SRV.json("GET", "/storage/v1/b/b/o/dir%2Fhello.txt?fields=name,size,crc32c")
        self.assertEqual(meta, {"name": "dir/hello.txt", "size": str(len(data)), "crc32c": obj["crc32c"]})

        st, hdrs, body = SRV.request("GET", "/storage/v1/b/b/o/dir%2Fhello.txt?alt=media")
        self.assertEqual((st, body), (200, data))
        self.assertEqual(hdrs["x-goog-hash"], "crc32c=%s,md5=%s" % (obj["crc32c"], obj["md5Hash"]))
        self.assertEqual(hdrs["x-goog-generation"], obj["generation"])
        self.assertEqual(hdrs["x-goog-stored-content-length"], str(len(data)))
        self.assertEqual(hdrs["Content-Length"], str(len(data)))
        self.assertEqual(hdrs["Content-Type"], "text/plain")
        st, _, body = SRV.request("GET", "/download/storage/v1/b/b/o/dir%2Fhello.txt?alt=media")
        self.assertEqual((st, body), (200, data))

        # Overwrite: new generation, same name.
        st, obj2, _ = SRV.upload("b", "dir/hello.txt", b"v2")
        self.assertGreater(int(obj2["generation"]), int(obj["generation"]))
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o/dir%2Fhello.txt?alt=media&generation=" + obj["generation"])
        self.assertGcsError(st, body, 404, "notFound")
        st, _, body = SRV.request("GET", "/storage/v1/b/b/o/dir%2Fhello.txt?alt=media&generation=" + obj2["generation"])
        self.assertEqual((st, body), (200, b"v2"))

    def test_missing_object_and_delete(self):
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o/nope")
        self.assertGcsError(st, body, 404, "notFound")
        self.assertEqual(body["error"]["message"], "No such object: b/nope")
        SRV.upload("b", "to-delete", b"x")
        st, _, data = SRV.request("DELETE", "/storage/v1/b/b/o/to-delete")
        self.assertEqual((st, data), (204, b""))
        st, body, _ = SRV.json("DELETE", "/storage/v1/b/b/o/to-delete")
        self.assertGcsError(st, body, 404, "notFound")
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o/to-delete")
        self.assertEqual(st, 404)

    def test_odd_names_round_trip(self):
        names = ["a b", "ünïcødé/名前", "hash#tag", "q?x=1&y=2", "100%", "100%25", "plus+sign", "double//slash",
                 "/leading", "trailing/", "tab\there", "emoji 😀", "~!@$&*()=;:,'[]{}\"<>|\\^`", ".hidden",
                 "x" * 1024]
        conn = SRV.conn()
        for n in names:
            st, obj, _ = SRV.upload("b", "odd/" + n if len(n) < 1000 else n[:-4] + "odd/", n.encode(), conn=conn)
            self.assertEqual(st, 200, (n, obj))
        for n in names:
            full = "odd/" + n if len(n) < 1000 else n[:-4] + "odd/"
            st, obj, _ = SRV.json("GET", "/storage/v1/b/b/o/" + enc(full), conn=conn)
            self.assertEqual((st, obj["name"]), (200, full))
            st, _, data = SRV.request("GET", "/storage/v1/b/b/o/%s?alt=media" % enc(full), conn=conn)
            self.assertEqual(data, n.encode())
        st, lst, _ = SRV.json("GET", "/storage/v1/b/b/o?prefix=odd/&fields=items(name)", conn=conn)
        got = [i["name"] for i in lst["items"]]
        want = sorted(("odd/" + n for n in names if len(n) < 1000), key=lambda s: s.encode())
        self.assertEqual(got, want)
        # A raw '/' in the object path is not an object name: GCS needs it as %2F.
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o/odd/a%20b", conn=conn)
        self.assertEqual(st, 404)
        # Names GCS rejects.
        for bad in ["", ".", "..", "x" * 1025, "new\nline", "cr\rhere"]:
            st, body, _ = SRV.upload("b", bad, b"x", conn=conn)
            self.assertGcsError(st, body, 400)
        # Newlines can be allowed for tests of clients that must cope with such names.
        SRV.json("POST", "/_config", {"allow_newline_names": True}, conn=conn)
        try:
            st, obj, _ = SRV.upload("b", "odd-nl/new\nline\r", b"nl", conn=conn)
            self.assertEqual(st, 200)
            st, _, data = SRV.request("GET", "/storage/v1/b/b/o/odd-nl%2Fnew%0Aline%0D?alt=media", conn=conn)
            self.assertEqual((st, data), (200, b"nl"))
        finally:
            SRV.json("POST", "/_config", {"allow_newline_names": False}, conn=conn)
        conn.close()

    def test_chunked_request_body(self):
        data = b"0123456789" * 5000
        c = SRV.conn()
        c.request("POST", "/upload/storage/v1/b/b/o?uploadType=media&name=chunked",
                  body=iter([data[:1000], data[1000:30000], data[30000:]]), encode_chunked=True)
        r = c.getresponse()
        obj = json.loads(r.read())
        self.assertEqual((r.status, obj["size"]), (200, str(len(data))))
        st, _, got = SRV.request("GET", "/storage/v1/b/b/o/chunked?alt=media", conn=c)
        self.assertEqual(got, data)
        c.close()


class TestRanges(unittest.TestCase, GcsErrorShape):
    @classmethod
    def setUpClass(cls):
        cls.data = bytes(range(256)) * 4
        st, cls.obj, _ = SRV.upload("b", "range/obj", cls.data)
        SRV.upload("b", "range/empty", b"")

    def get(self, rng, name="range/obj"):
        return SRV.request("GET", "/storage/v1/b/b/o/%s?alt=media" % enc(name), headers={"Range": rng})

    def test_ranges(self):
        n = len(self.data)
        for rng, a, b in [("bytes=0-9", 0, 9), ("bytes=100-", 100, n - 1), ("bytes=-16", n - 16, n - 1),
                          ("bytes=1000-5000", 1000, n - 1), ("bytes=-5000", 0, n - 1), ("bytes=5-5", 5, 5)]:
            st, hdrs, body = self.get(rng)
            self.assertEqual(st, 206, rng)
            self.assertEqual(body, self.data[a:b + 1], rng)
            self.assertEqual(hdrs["Content-Range"], "bytes %d-%d/%d" % (a, b, n))
            self.assertEqual(hdrs["Content-Length"], str(b - a + 1))
            # The hash headers describe the whole object, as on GCS.
            self.assertEqual(hdrs["x-goog-hash"], "crc32c=%s,md5=%s" % (self.obj["crc32c"], self.obj["md5Hash"]))

    def test_unsatisfiable(self):
        for rng, name in [("bytes=1024-", "range/obj"), ("bytes=5000-6000", "range/obj"), ("bytes=-0", "range/obj"),
                          ("bytes=0-", "range/empty")]:
            st, hdrs, body = self.get(rng, name)
            self.assertGcsError(st, json.loads(body), 416, "requestedRangeNotSatisfiable")

    def test_no_or_ignored_range(self):
        st, _, body = SRV.request("GET", "/storage/v1/b/b/o/range%2Fobj?alt=media")
        self.assertEqual((st, body), (200, self.data))
        st, _, body = self.get("bytes=9-3")  # syntactically invalid ranges are ignored (RFC 9110)
        self.assertEqual((st, body), (200, self.data))
        st, _, body = SRV.request("GET", "/storage/v1/b/b/o/range%2Fempty?alt=media")
        self.assertEqual((st, body), (200, b""))


class TestPreconditions(unittest.TestCase, GcsErrorShape):
    def test_write_and_read_preconditions(self):
        c = SRV.conn()
        st, o1, _ = SRV.upload("b", "pre/k", b"one", "&ifGenerationMatch=0", conn=c)
        self.assertEqual(st, 200)
        st, body, _ = SRV.upload("b", "pre/k", b"two", "&ifGenerationMatch=0", conn=c)
        self.assertGcsError(st, body, 412, "conditionNotMet")
        st, body, _ = SRV.upload("b", "pre/k", b"two", "&ifGenerationMatch=1", conn=c)
        self.assertGcsError(st, body, 412, "conditionNotMet")
        st, body, _ = SRV.upload("b", "pre/k", b"two", "&ifGenerationNotMatch=" + o1["generation"], conn=c)
        self.assertGcsError(st, body, 412, "conditionNotMet")
        st, body, _ = SRV.upload("b", "pre/missing", b"x", "&ifGenerationMatch=123", conn=c)
        self.assertGcsError(st, body, 412, "conditionNotMet")
        st, body, _ = SRV.upload("b", "pre/k", b"x", "&ifMetagenerationMatch=2", conn=c)
        self.assertGcsError(st, body, 412, "conditionNotMet")
        st, o2, _ = SRV.upload("b", "pre/k", b"two", "&ifGenerationMatch=" + o1["generation"], conn=c)
        self.assertEqual(st, 200)
        # Reads: *Match → 412, *NotMatch → 304 (as documented for GET).
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o/pre%2Fk?ifGenerationMatch=" + o1["generation"], conn=c)
        self.assertGcsError(st, body, 412)
        st, _, data = SRV.request("GET", "/storage/v1/b/b/o/pre%2Fk?alt=media&ifGenerationMatch=" + o2["generation"],
                                  conn=c)
        self.assertEqual((st, data), (200, b"two"))
        st, _, data = SRV.request("GET", "/storage/v1/b/b/o/pre%2Fk?ifGenerationNotMatch=" + o2["generation"], conn=c)
        self.assertEqual((st, data), (304, b""))
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o/pre%2Fk?ifMetagenerationMatch=7", conn=c)
        self.assertGcsError(st, body, 412)
        # Deletes.
        st, body, _ = SRV.json("DELETE", "/storage/v1/b/b/o/pre%2Fk?ifGenerationMatch=" + o1["generation"], conn=c)
        self.assertGcsError(st, body, 412)
        st, _, _ = SRV.request("DELETE", "/storage/v1/b/b/o/pre%2Fk?ifGenerationMatch=" + o2["generation"], conn=c)
        self.assertEqual(st, 204)
        c.close()


class TestListing(unittest.TestCase, GcsErrorShape):
    @classmethod
    def setUpClass(cls):
        names = []
        for i in range(5200):
            names.append("big/%02d/%s%05d" % (i % 13, ["a", "Z", "é", "~", "z", "😀", "\u00ff"][i % 7], i))
        names += ["big/top-%d" % i for i in range(7)] + ["big/00", "big/00/", "bigger", "big/\u0100x"]
        cls.names = names
        objs = [{"name": n, "data": str(i)} for i, n in enumerate(names)]
        st, body, _ = SRV.json("POST", "/_seed", {"bucket": "list", "objects": objs})
        assert st == 200 and body["created"] == len(names), body

    def list_all(self, query, page_size):
        c = SRV.conn()
        items, prefixes, pages, token = [], [], [], None
        while True:
            q = "%s&maxResults=%d" % (query, page_size) + ("&pageToken=" + quote(token) if token else "")
            st, body, _ = SRV.json("GET", "/storage/v1/b/list/o?" + q, conn=c)
            self.assertEqual(st, 200, body)
            page = body.get("items", []), body.get("prefixes", [])
            self.assertLessEqual(len(page[0]) + len(page[1]), page_size)
            pages.append(page)
            items += [i["name"] for i in page[0]]
            prefixes += page[1]
            token = body.get("nextPageToken")
            if not token:
                break
        c.close()
        return items, prefixes, pages

    def test_paginate_everything(self):
        items, prefixes, pages = self.list_all("prefix=big", 97)
        want = sorted((n for n in self.names if n.startswith("big")), key=lambda s: s.encode())
        self.assertEqual(items, want)  # every name exactly once, in UTF-8 byte order
        self.assertEqual(prefixes, [])
        self.assertEqual(len(pages), -(-len(want) // 97))
        self.assertTrue(all(len(p[0]) == 97 for p in pages[:-1]))

    def test_delimiter_counts_prefixes(self):
        items, prefixes, pages = self.list_all("prefix=big/&delimiter=/", 5)
        self.assertEqual(prefixes, ["big/%02d/" % i for i in range(13)])
        want_items = sorted((n for n in self.names if n.startswith("big/") and "/" not in n[4:]),
                            key=lambda s: s.encode())
        self.assertEqual(items, want_items)
        # Prefixes count toward maxResults: 13 prefixes + 9 items in pages of 5.
        self.assertEqual(len(pages), -(-(13 + len(want_items)) // 5))
        self.assertTrue(all(len(p[0]) + len(p[1]) == 5 for p in pages[:-1]))
        # One level down.
        items, prefixes, _ = self.list_all("prefix=big/03/&delimiter=/", 1000)
        self.assertEqual(prefixes, [])
        self.assertEqual(len(items), len([n for n in self.names if n.startswith("big/03/")]))
        # includeTrailingDelimiter lists "big/00/" both as prefix and item.
        st, body, _ = SRV.json("GET", "/storage/v1/b/list/o?prefix=big/0&delimiter=/&includeTrailingDelimiter=true")
        self.assertIn("big/00/", body["prefixes"])
        self.assertIn("big/00/", [i["name"] for i in body["items"]])

    def test_offsets_fields_caps(self):
        st, body, _ = SRV.json("GET", "/storage/v1/b/list/o?startOffset=big/05/&endOffset=big/06/"
                                      "&fields=items(name)")
        want = sorted((n for n in self.names if "big/05/" <= n < "big/06/"), key=lambda s: s.encode())
        self.assertEqual([i["name"] for i in body["items"]], want)
        self.assertEqual(set(body), {"items"})
        st, body, _ = SRV.json("GET", "/storage/v1/b/list/o?maxResults=3&fields=nextPageToken,prefixes,"
                                      "items(name,size,updated,generation,crc32c,md5Hash)")
        self.assertEqual(set(body), {"items", "nextPageToken"})
        for it in body["items"]:
            self.assertEqual(set(it), {"name", "size", "updated", "generation", "crc32c", "md5Hash"})
        st, body, _ = SRV.json("GET", "/storage/v1/b/list/o?maxResults=5000&fields=nextPageToken,items/name")
        self.assertEqual(len(body["items"]), 1000)  # capped at 1000
        self.assertIn("nextPageToken", body)
        st, body, _ = SRV.json("GET", "/storage/v1/b/list/o")
        self.assertEqual(len(body["items"]), 1000)
        self.assertEqual(body["kind"], "storage#objects")
        # Empty listings carry neither "items" nor "prefixes", as on GCS.
        st, body, _ = SRV.json("GET", "/storage/v1/b/list/o?prefix=nothing-here")
        self.assertEqual((st, body), (200, {"kind": "storage#objects"}))
        st, body, _ = SRV.json("GET", "/storage/v1/b/list/o?pageToken=!!!")
        self.assertGcsError(st, body, 400)
        st, body, _ = SRV.json("GET", "/storage/v1/b/list/o?fields=items(name")
        self.assertGcsError(st, body, 400)

    def test_large_bucket_is_fast(self):
        t0 = time.monotonic()
        st, body, _ = SRV.json("POST", "/_seed", {"bucket": "huge", "count": 100000, "name_format": "n/{:07d}"})
        self.assertEqual(body["created"], 100000)
        seeded = time.monotonic()
        c = SRV.conn()
        st, body, _ = SRV.json("GET", "/storage/v1/b/huge/o?startOffset=n/0050000&maxResults=1000", conn=c)
        self.assertEqual(body["items"][0]["name"], "n/0050000")
        token, t1 = body["nextPageToken"], time.monotonic()
        for _ in range(5):
            st, body, _ = SRV.json("GET", "/storage/v1/b/huge/o?maxResults=1000&fields=nextPageToken,items(name)"
                                          "&pageToken=" + token, conn=c)
            token = body["nextPageToken"]
        self.assertEqual(body["items"][-1]["name"], "n/0055999")
        per_page = (time.monotonic() - t1) / 5
        c.close()
        self.assertLess(per_page, 1.0, "a 1000-item page of a 100k bucket took %.2fs" % per_page)
        self.assertLess(seeded - t0, 30)
        st, body, _ = SRV.json("POST", "/_reset", {"buckets": ["huge"]})  # drop the 100k objects again
        self.assertEqual(SRV.request("GET", "/storage/v1/b/huge")[0], 404)
        self.assertEqual(SRV.request("GET", "/storage/v1/b/list")[0], 200)


class TestMultipart(unittest.TestCase, GcsErrorShape):
    def multipart(self, meta, data, boundary="sluice_boundary_42", query="", headers=None):
        body = (b"--" + boundary.encode() + b"\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                + json.dumps(meta).encode() + b"\r\n--" + boundary.encode()
                + b"\r\nContent-Type: application/x-test\r\n\r\n" + data + b"\r\n--" + boundary.encode() + b"--\r\n")
        return SRV.json("POST", "/upload/storage/v1/b/b/o?uploadType=multipart" + query, body,
                        dict(headers or {}, **{"Content-Type": "multipart/related; boundary=" + boundary}))

    def test_multipart(self):
        data = os.urandom(5000) + b"\r\n--sluice_boundary_4"
        st, obj, _ = self.multipart({"name": "mp/ok", "crc32c": crc_b64(data),
                                     "md5Hash": b64(hashlib.md5(data).digest()), "metadata": {"k": "v"}}, data)
        self.assertEqual(st, 200, obj)
        self.assertEqual((obj["name"], obj["size"], obj["contentType"]),
                         ("mp/ok", str(len(data)), "application/x-test"))
        self.assertEqual(obj["metadata"], {"k": "v"})
        st, _, got = SRV.request("GET", "/storage/v1/b/b/o/mp%2Fok?alt=media")
        self.assertEqual(got, data)

    def test_media_part_without_headers(self):
        # Google's Go client (e.g. rclone) sends the media part with no header fields: CRLF right after the
        # delimiter line. Data that contains (or starts with) blank lines must come through byte for byte.
        for i, data in enumerate((b"file 572\n\n\x08\\ rest", b"\r\n\r\nstarts blank\n\n", b"")):
            body = (b"--b42\r\nContent-Type: application/json\r\n\r\n"
                    + json.dumps({"name": "mp/nohdr%d" % i, "contentType": "text/x-meta"}).encode()
                    + b"\r\n--b42\r\n\r\n" + data + b"\r\n--b42--\r\n")
            st, obj, _ = SRV.json("POST", "/upload/storage/v1/b/b/o?uploadType=multipart", body,
                                  {"Content-Type": "multipart/related; boundary=b42"})
            self.assertEqual(st, 200, obj)
            self.assertEqual((obj["size"], obj["contentType"]), (str(len(data)), "text/x-meta"))
            st, _, got = SRV.request("GET", "/storage/v1/b/b/o/mp%%2Fnohdr%d?alt=media" % i)
            self.assertEqual(got, data)

    def test_wrong_checksums(self):
        data = b"payload"
        st, body, _ = self.multipart({"name": "mp/badcrc", "crc32c": crc_b64(b"other")}, data)
        self.assertGcsError(st, body, 400, "invalid")
        self.assertIn("CRC32C", body["error"]["message"])
        st, body, _ = self.multipart({"name": "mp/badmd5", "md5Hash": b64(hashlib.md5(b"other").digest())}, data)
        self.assertGcsError(st, body, 400, "invalid")
        self.assertIn("MD5", body["error"]["message"])
        for n in ("mp/badcrc", "mp/badmd5"):
            self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/" + enc(n))[0], 404)
        st, body, _ = self.multipart({"name": "mp/pre"}, data, query="&ifGenerationMatch=5")
        self.assertGcsError(st, body, 412)
        st, body, _ = SRV.json("POST", "/upload/storage/v1/b/b/o?uploadType=multipart", b"x",
                               {"Content-Type": "multipart/form-data; boundary=x"})
        self.assertGcsError(st, body, 400)

    def test_metadata_part_must_be_json(self):
        # The metadata part says it is JSON (in UTF-8 when it names a charset), or the upload is refused and nothing
        # is stored; "application/json" alone (Google's Go client) and other spellings of UTF-8 are fine.
        def upload(name, part_headers):
            body = (b"--b7\r\n" + part_headers + b"\r\n" + json.dumps({"name": name}).encode()
                    + b"\r\n--b7\r\nContent-Type: text/plain\r\n\r\ndata\r\n--b7--\r\n")
            return SRV.json("POST", "/upload/storage/v1/b/b/o?uploadType=multipart", body,
                            {"Content-Type": "multipart/related; boundary=b7"})
        for i, bad in enumerate((b"", b"Content-Type: text/plain\r\n", b"Content-Type: application/octet-stream\r\n",
                                 b"Content-Type: application/x-www-form-urlencoded\r\n",
                                 b"Content-Type: application/json; charset=ISO-8859-1\r\n",
                                 b"X-Other: 1\r\n")):
            st, body, _ = upload("mp/badmeta%d" % i, bad)
            self.assertGcsError(st, body, 400, "badContent")
            self.assertIn("metadata part", body["error"]["message"])
            self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/mp%%2Fbadmeta%d" % i)[0], 404)
        for i, good in enumerate((b"Content-Type: application/json\r\n",
                                  b"content-type: Application/JSON; Charset=\"utf-8\"\r\n",
                                  b"Content-Type: application/json;charset=UTF-8\r\n")):
            st, obj, _ = upload("mp/goodmeta%d" % i, good)
            self.assertEqual((st, obj.get("size")), (200, "4"), obj)


class TestFormEncoded(unittest.TestCase, GcsErrorShape):
    """A body sent with libcurl's default type (application/x-www-form-urlencoded) is refused by every storage
    request, as GCS refuses it: 400 parseError, nothing done. Control endpoints and the token endpoint take it."""
    FORM = {"Content-Type": "application/x-www-form-urlencoded"}

    def assertFormRefused(self, st, body):
        self.assertGcsError(st, body, 400, "parseError")
        self.assertEqual(body["error"]["message"], "This API does not support parsing form-encoded input.")

    def test_uploads_refused(self):
        st, body, _ = SRV.upload("b", "form/media", b"data", headers=self.FORM)
        self.assertFormRefused(st, body)
        st, body, _ = SRV.upload("b", "form/media", b"data",
                                 headers={"Content-Type": "Application/X-WWW-Form-URLencoded; charset=utf-8"})
        self.assertFormRefused(st, body)
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/form%2Fmedia")[0], 404)
        st, body, _ = SRV.json("POST", "/upload/storage/v1/b/b/o?uploadType=resumable&name=form%2Fres", b"",
                               self.FORM)
        self.assertFormRefused(st, body)
        uri = TestResumable().start("form/res")
        data = os.urandom(QUANTUM)
        # A chunk, and a status query with an empty body: refused, nothing persisted.
        st, body, _ = SRV.json("PUT", uri, data, dict(self.FORM, **{"Content-Range": "bytes 0-%d/*" % (QUANTUM - 1)}))
        self.assertFormRefused(st, body)
        st, body, _ = SRV.json("PUT", uri, b"", dict(self.FORM, **{"Content-Range": "bytes */*"}))
        self.assertFormRefused(st, body)
        st, hdrs, _ = SRV.request("PUT", uri, b"", {"Content-Range": "bytes */*"})
        self.assertEqual((st, hdrs["Range"]), (308, None))
        # The same chunk without a type, or as application/octet-stream, goes through.
        st, hdrs, _ = SRV.request("PUT", uri, data, {"Content-Range": "bytes 0-%d/*" % (QUANTUM - 1),
                                                     "Content-Type": "application/octet-stream"})
        self.assertEqual((st, hdrs["Range"]), (308, "bytes=0-%d" % (QUANTUM - 1)))
        st, obj, _ = SRV.json("PUT", uri, None, {"Content-Range": "bytes */%d" % QUANTUM})
        self.assertEqual((st, obj["crc32c"]), (200, crc_b64(data)))

    def test_other_requests_refused(self):
        SRV.upload("b", "form/obj", b"x")
        for verb, path in (("PATCH", "/storage/v1/b/b/o/form%2Fobj"), ("DELETE", "/storage/v1/b/b/o/form%2Fobj"),
                           ("POST", "/storage/v1/b/b/o/form%2Fobj/rewriteTo/b/b/o/form%2Fcopy"),
                           ("GET", "/storage/v1/b/b/o/form%2Fobj")):
            st, body, _ = SRV.json(verb, path, b"metadata=x" if verb != "GET" else None, self.FORM)
            self.assertFormRefused(st, body)
        st, obj, _ = SRV.json("GET", "/storage/v1/b/b/o/form%2Fobj")
        self.assertEqual((st, obj["metageneration"]), (200, "1"))
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/form%2Fcopy")[0], 404)
        # Control endpoints do not care.
        st, _, _ = SRV.request("POST", "/_stats/reset", b"", self.FORM)
        self.assertEqual(st, 200)


class TestResumable(unittest.TestCase, GcsErrorShape):
    def start(self, name, meta=None, query=""):
        st, hdrs, body = SRV.request("POST", "/upload/storage/v1/b/b/o?uploadType=resumable&name=%s%s"
                                     % (enc(name), query), json.dumps(meta or {}).encode(),
                                     {"Content-Type": "application/json", "X-Upload-Content-Type": "text/x-sluice"})
        self.assertEqual(st, 200, body)
        loc = hdrs["Location"]
        u = urlsplit(loc)
        self.assertEqual((u.scheme, u.netloc), ("http", "127.0.0.1:%d" % SRV.port))
        self.assertEqual(u.path, "/upload/storage/v1/b/b/o")
        self.assertIn("upload_id=", u.query)
        return u.path + "?" + u.query

    def put(self, uri, content_range, data=b"", headers=None, conn=None):
        h = {"Content-Range": content_range}
        h.update(headers or {})
        return SRV.request("PUT", uri, data, h, conn)

    def test_chunks_status_resume(self):
        data = os.urandom(3 * QUANTUM + 1000)
        uri = self.start("res/big")
        c = SRV.conn()
        st, hdrs, _ = self.put(uri, "bytes */*", conn=c)
        self.assertEqual(st, 308)
        self.assertIsNone(hdrs["Range"])  # nothing persisted: no Range header
        st, hdrs, _ = self.put(uri, "bytes 0-%d/*" % (2 * QUANTUM - 1), data[:2 * QUANTUM], conn=c)
        self.assertEqual((st, hdrs["Range"]), (308, "bytes=0-%d" % (2 * QUANTUM - 1)))
        # A chunk that is not a multiple of 256 KiB (and not the last) is refused.
        st, body, _ = SRV.json("PUT", uri, data[2 * QUANTUM:2 * QUANTUM + 1000],
                               {"Content-Range": "bytes %d-%d/*" % (2 * QUANTUM, 2 * QUANTUM + 999)}, conn=c)
        self.assertGcsError(st, body, 400)
        # A failed chunk (fault injection) persists nothing; the status query tells where to resume.
        tid = SRV.retry_test({"storage.objects.insert": ["return-503"]})
        st, body, _ = SRV.json("PUT", uri, data[2 * QUANTUM:3 * QUANTUM],
                               {"Content-Range": "bytes %d-%d/*" % (2 * QUANTUM, 3 * QUANTUM - 1),
                                "x-retry-test-id": tid}, conn=c)
        self.assertGcsError(st, body, 503)
        st, hdrs, _ = self.put(uri, "bytes */%d" % len(data), conn=c)
        self.assertEqual((st, hdrs["Range"]), (308, "bytes=0-%d" % (2 * QUANTUM - 1)))
        # A gap is refused; an overlap (resending persisted bytes) is accepted.
        st, body, _ = SRV.json("PUT", uri, data[3 * QUANTUM:4 * QUANTUM],
                               {"Content-Range": "bytes %d-%d/*" % (3 * QUANTUM, 4 * QUANTUM - 1)}, conn=c)
        self.assertGcsError(st, body, 400)
        st, hdrs, _ = self.put(uri, "bytes %d-%d/*" % (QUANTUM, 3 * QUANTUM - 1), data[QUANTUM:3 * QUANTUM], conn=c)
        self.assertEqual((st, hdrs["Range"]), (308, "bytes=0-%d" % (3 * QUANTUM - 1)))
        # The last chunk, with the whole object's hash.
        st, obj, _ = SRV.json("PUT", uri, data[3 * QUANTUM:],
                              {"Content-Range": "bytes %d-%d/%d" % (3 * QUANTUM, len(data) - 1, len(data)),
                               "X-Goog-Hash": "crc32c=%s,md5=%s" % (crc_b64(data), b64(hashlib.md5(data).digest()))},
                              conn=c)
        self.assertEqual(st, 200, obj)
        self.assertEqual((obj["name"], obj["size"], obj["crc32c"]), ("res/big", str(len(data)), crc_b64(data)))
        self.assertEqual(obj["contentType"], "text/x-sluice")
        st, _, got = SRV.request("GET", "/storage/v1/b/b/o/res%2Fbig?alt=media", conn=c)
        self.assertEqual(got, data)
        # Status of a finished session: 200 and the object.
        st, obj2, _ = SRV.json("PUT", uri, None, {"Content-Range": "bytes */*"}, conn=c)
        self.assertEqual((st, obj2["generation"]), (200, obj["generation"]))
        c.close()

    def test_small_single_shot_and_empty(self):
        uri = self.start("res/small", {"contentType": "text/plain", "metadata": {"a": "b"}})
        st, obj, _ = SRV.json("PUT", uri, b"tiny", {"Content-Range": "bytes 0-3/4"})
        self.assertEqual((st, obj["size"], obj["contentType"], obj["metadata"]), (200, "4", "text/plain", {"a": "b"}))
        uri = self.start("res/nocr")
        st, obj, _ = SRV.json("PUT", uri, b"whole body, no Content-Range")
        self.assertEqual((st, obj["size"]), (200, "28"))
        uri = self.start("res/empty")
        st, obj, _ = SRV.json("PUT", uri, None, {"Content-Range": "bytes */0"})
        self.assertEqual((st, obj["size"]), (200, "0"))
        # Upload of unknown length: chunks with /*, then "bytes */N" finalizes.
        data = os.urandom(QUANTUM)
        uri = self.start("res/unknown-length")
        st, _, _ = self.put(uri, "bytes 0-%d/*" % (QUANTUM - 1), data)
        self.assertEqual(st, 308)
        st, obj, _ = SRV.json("PUT", uri, None, {"Content-Range": "bytes */%d" % QUANTUM})
        self.assertEqual((st, obj["size"], obj["crc32c"]), (200, str(QUANTUM), crc_b64(data)))

    def test_cancel_and_bad_hash_and_preconditions(self):
        uri = self.start("res/cancel")
        st, _, _ = self.put(uri, "bytes 0-%d/*" % (QUANTUM - 1), bytes(QUANTUM))
        self.assertEqual(st, 308)
        st, _, _ = SRV.request("DELETE", uri)
        self.assertEqual(st, 499)
        st, body, _ = SRV.json("PUT", uri, None, {"Content-Range": "bytes */*"})
        self.assertEqual(st, 410)
        st, body, _ = SRV.json("PUT", "/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=nope", None,
                               {"Content-Range": "bytes */*"})
        self.assertGcsError(st, body, 404)
        # Wrong X-Goog-Hash on the final request: 400, nothing stored.
        uri = self.start("res/badhash")
        st, body, _ = SRV.json("PUT", uri, b"abc", {"Content-Range": "bytes 0-2/3",
                                                    "X-Goog-Hash": "crc32c=" + crc_b64(b"abd")})
        self.assertGcsError(st, body, 400)
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/res%2Fbadhash")[0], 404)
        # crc32c in the initial metadata is checked at the end too.
        uri = self.start("res/badmeta", {"crc32c": crc_b64(b"xyz")})
        st, body, _ = SRV.json("PUT", uri, b"abc", {"Content-Range": "bytes 0-2/3"})
        self.assertGcsError(st, body, 400)
        # ifGenerationMatch=0 is checked when the session starts and when it completes.
        SRV.upload("b", "res/exists", b"x")
        st, body, _ = SRV.json("POST", "/upload/storage/v1/b/b/o?uploadType=resumable&name=res%2Fexists"
                                       "&ifGenerationMatch=0", {})
        self.assertGcsError(st, body, 412)
        uri = self.start("res/race", query="&ifGenerationMatch=0")
        SRV.upload("b", "res/race", b"winner")
        st, body, _ = SRV.json("PUT", uri, b"loser", {"Content-Range": "bytes 0-4/5"})
        self.assertGcsError(st, body, 412)

    def test_503_after_256k_persists_a_quantum(self):
        data = os.urandom(2 * QUANTUM)
        uri = self.start("res/after")
        tid = SRV.retry_test({"storage.objects.insert": ["return-503-after-300K"]})
        st, body, _ = SRV.json("PUT", uri, data, {"Content-Range": "bytes 0-%d/*" % (len(data) - 1),
                                                  "x-retry-test-id": tid})
        self.assertGcsError(st, body, 503)
        st, hdrs, _ = self.put(uri, "bytes */*")
        self.assertEqual((st, hdrs["Range"]), (308, "bytes=0-%d" % (QUANTUM - 1)))
        st, obj, _ = SRV.json("PUT", uri, data[QUANTUM:], {"Content-Range": "bytes %d-%d/%d"
                                                           % (QUANTUM, len(data) - 1, len(data))})
        self.assertEqual((st, obj["crc32c"]), (200, crc_b64(data)))

    def test_finalize_early(self):
        # A server that completes a session on its own at a chunk that was not the last: 200 and an object of the
        # bytes persisted so far, no hash checked. The session's start does not consume the instruction.
        data = os.urandom(3 * QUANTUM)
        tid = SRV.retry_test({"storage.objects.insert": ["finalize-early"]})
        st, hdrs, body = SRV.request("POST", "/upload/storage/v1/b/b/o?uploadType=resumable&name=res%2Fearly",
                                     json.dumps({"crc32c": crc_b64(data)}).encode(),
                                     {"Content-Type": "application/json", "x-retry-test-id": tid})
        self.assertEqual(st, 200, body)
        u = urlsplit(hdrs["Location"])
        uri = u.path + "?" + u.query
        st, obj, _ = SRV.json("PUT", uri, data[:QUANTUM], {"Content-Range": "bytes 0-%d/*" % (QUANTUM - 1),
                                                           "x-retry-test-id": tid})
        self.assertEqual((st, obj["size"], obj["crc32c"]), (200, str(QUANTUM), crc_b64(data[:QUANTUM])))
        st, t, _ = SRV.json("GET", "/retry_test/" + tid)
        self.assertTrue(t["completed"])
        # The session is complete: the next chunk gets the object, as on GCS.
        st, obj2, _ = SRV.json("PUT", uri, data[QUANTUM:], {"Content-Range": "bytes %d-%d/%d"
                                                            % (QUANTUM, len(data) - 1, len(data))})
        self.assertEqual((st, obj2["generation"], obj2["size"]), (200, obj["generation"], str(QUANTUM)))
        # On a status query it completes with what is persisted.
        uri = self.start("res/early-query")
        self.assertEqual(self.put(uri, "bytes 0-%d/*" % (QUANTUM - 1), data[:QUANTUM])[0], 308)
        tid = SRV.retry_test({"storage.objects.insert": ["finalize-early"]})
        st, obj, _ = SRV.json("PUT", uri, None, {"Content-Range": "bytes */*", "x-retry-test-id": tid})
        self.assertEqual((st, obj["size"]), (200, str(QUANTUM)))
        # Only uploads know it.
        st, body, _ = SRV.json("POST", "/retry_test", {"instructions": {"storage.objects.get": ["finalize-early"]}})
        self.assertGcsError(st, body, 400)

    def test_truncate_upload(self):
        # The upload that completes an object stores only the first half of its bytes, unchecked, and answers 200:
        # multipart, media, and a session's last chunk (its start and earlier chunks leave the instruction).
        data = os.urandom(2 * QUANTUM + 10)
        tid = SRV.retry_test({"storage.objects.insert": ["truncate-upload", "truncate-upload", "truncate-upload"]})
        st, obj, _ = SRV.upload("b", "res/trunc-media", b"abcd", headers={"x-retry-test-id": tid})
        self.assertEqual((st, obj["size"], obj["crc32c"]), (200, "2", crc_b64(b"ab")))
        body = (b'--x\r\nContent-Type: application/json\r\n\r\n{"name":"res/trunc-multi","crc32c":"%s"}\r\n'
                b'--x\r\n\r\nwxyz\r\n--x--\r\n' % crc_b64(b"wxyz").encode())
        st, obj, _ = SRV.json("POST", "/upload/storage/v1/b/b/o?uploadType=multipart", body,
                              {"Content-Type": "multipart/related; boundary=x", "x-retry-test-id": tid})
        self.assertEqual((st, obj["size"], obj["crc32c"]), (200, "2", crc_b64(b"wx")))
        st, hdrs, _ = SRV.request("POST", "/upload/storage/v1/b/b/o?uploadType=resumable&name=res%2Ftrunc-res", b"{}",
                                  {"Content-Type": "application/json", "x-retry-test-id": tid})
        u = urlsplit(hdrs["Location"])
        uri = u.path + "?" + u.query
        st, _, _ = self.put(uri, "bytes 0-%d/*" % (QUANTUM - 1), data[:QUANTUM], {"x-retry-test-id": tid})
        self.assertEqual(st, 308)
        st, obj, _ = SRV.json("PUT", uri, data[QUANTUM:], {"Content-Range": "bytes %d-%d/%d" % (
            QUANTUM, len(data) - 1, len(data)), "X-Goog-Hash": "crc32c=" + crc_b64(data), "x-retry-test-id": tid})
        half = data[:len(data) // 2]
        self.assertEqual((st, obj["size"], obj["crc32c"]), (200, str(len(half)), crc_b64(half)))
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/res%2Ftrunc-res?alt=media")[2], half)
        st, t, _ = SRV.json("GET", "/retry_test/" + tid)
        self.assertTrue(t["completed"])

    def test_truncate_rewrite(self):
        # A rewrite that would take several steps completes at once with the first half of the source's bytes.
        data = os.urandom(2 * 1024 * 1024 + 7)
        SRV.upload("b", "res/trunc-rw-src", data)
        tid = SRV.retry_test({"storage.objects.rewrite": ["truncate-upload"]})
        st, r, _ = SRV.json("POST", "/storage/v1/b/b/o/res%2Ftrunc-rw-src/rewriteTo/b/b/o/res%2Ftrunc-rw-dst"
                            "?maxBytesRewrittenPerCall=1048576", None, {"x-retry-test-id": tid})
        half = data[:len(data) // 2]
        self.assertEqual((st, r["done"], r["resource"]["size"], r["resource"]["crc32c"]),
                         (200, True, str(len(half)), crc_b64(half)))
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/res%2Ftrunc-rw-dst?alt=media")[2], half)
        # Other methods do not know it.
        st, body, _ = SRV.json("POST", "/retry_test", {"instructions": {"storage.objects.get": ["truncate-upload"]}})
        self.assertGcsError(st, body, 400)


class TestPatch(unittest.TestCase, GcsErrorShape):
    def test_patch_metadata_with_preconditions(self):
        st, obj, _ = SRV.upload("b", "patch/o", b"data")
        gen = obj["generation"]
        path = "/storage/v1/b/b/o/patch%2Fo"
        st, p, _ = SRV.json("PATCH", path + "?ifGenerationMatch=%s&ifMetagenerationMatch=1" % gen,
                            {"metadata": {"k": "v", "n": 5}})
        self.assertEqual((st, p["metadata"], p["metageneration"], p["generation"]), (200, {"k": "v", "n": "5"}, "2",
                                                                                     gen))
        self.assertGreaterEqual(p["updated"], obj["updated"])
        # The same preconditions again: the metageneration moved on.
        st, body, _ = SRV.json("PATCH", path + "?ifMetagenerationMatch=1", {"metadata": {"k": "w"}})
        self.assertGcsError(st, body, 412)
        st, body, _ = SRV.json("PATCH", path + "?ifGenerationMatch=1", {"metadata": {"k": "w"}})
        self.assertGcsError(st, body, 412)
        # Keys merge; null removes one; the listing carries the result.
        st, p, _ = SRV.json("PATCH", path + "?fields=metadata,metageneration", {"metadata": {"k": None, "m": "x"}})
        self.assertEqual((st, p), (200, {"metadata": {"n": "5", "m": "x"}, "metageneration": "3"}))
        st, page, _ = SRV.json("GET", "/storage/v1/b/b/o?prefix=patch/&fields=items(name,metadata)")
        self.assertEqual(page["items"], [{"name": "patch/o", "metadata": {"n": "5", "m": "x"}}])
        self.assertEqual(SRV.request("GET", path + "?alt=media")[2], b"data")
        st, body, _ = SRV.json("PATCH", "/storage/v1/b/b/o/patch%2Fnone", {"metadata": {}})
        self.assertGcsError(st, body, 404)
        st, body, _ = SRV.json("PATCH", path, {"metadata": "x"})
        self.assertGcsError(st, body, 400)
        tid = SRV.retry_test({"storage.objects.patch": ["return-503"]})
        st, body, _ = SRV.json("PATCH", path, {"metadata": {"z": "1"}}, {"x-retry-test-id": tid})
        self.assertGcsError(st, body, 503)


class TestCompose(unittest.TestCase, GcsErrorShape):
    def test_compose(self):
        parts = [os.urandom(1000 + i) for i in range(3)]
        gens = []
        for i, data in enumerate(parts):
            st, obj, _ = SRV.upload("b", "cmp/p%d" % i, data)
            self.assertEqual(st, 200)
            gens.append(obj["generation"])
        body = {"sourceObjects": [{"name": "cmp/p%d" % i, "objectPreconditions": {"ifGenerationMatch": g}}
                                  for i, g in enumerate(gens)],
                "destination": {"contentType": "text/x-c", "metadata": {"k": "v"}}}
        st, obj, _ = SRV.json("POST", "/storage/v1/b/b/o/cmp%2Fwhole/compose?ifGenerationMatch=0", body)
        self.assertEqual(st, 200, obj)
        whole = b"".join(parts)
        self.assertEqual((obj["size"], obj["componentCount"], obj["contentType"], obj["metadata"]),
                         (str(len(whole)), 3, "text/x-c", {"k": "v"}))
        self.assertNotIn("md5Hash", obj)
        st, hdrs, data = SRV.request("GET", "/storage/v1/b/b/o/cmp%2Fwhole?alt=media")
        self.assertEqual((st, data), (200, whole))
        self.assertNotIn("md5=", dict(hdrs).get("x-goog-hash", dict(hdrs).get("X-Goog-Hash", "")))
        self.assertEqual(obj["crc32c"], crc_b64(whole))
        self.assertEqual(obj["crc32c"], SRV.json("GET", "/storage/v1/b/b/o/cmp%2Fwhole")[1]["crc32c"])
        # a composite of composites counts their components
        st, obj2, _ = SRV.json("POST", "/storage/v1/b/b/o/cmp%2Ftwice/compose",
                               {"sourceObjects": [{"name": "cmp/whole"}, {"name": "cmp/p0"}]})
        self.assertEqual((st, obj2["componentCount"], obj2["size"]), (200, 4, str(len(whole) + len(parts[0]))))
        # the destination exists now: ifGenerationMatch=0 fails; a source precondition that fails; a missing source
        st, err, _ = SRV.json("POST", "/storage/v1/b/b/o/cmp%2Fwhole/compose?ifGenerationMatch=0", body)
        self.assertEqual(st, 412)
        bad = {"sourceObjects": [{"name": "cmp/p0", "objectPreconditions": {"ifGenerationMatch": "1"}}]}
        self.assertEqual(SRV.json("POST", "/storage/v1/b/b/o/cmp%2Fx/compose", bad)[0], 412)
        self.assertEqual(SRV.json("POST", "/storage/v1/b/b/o/cmp%2Fx/compose",
                                  {"sourceObjects": [{"name": "cmp/nope"}]})[0], 404)
        # 33 sources, or none, are refused
        many = {"sourceObjects": [{"name": "cmp/p0"}] * 33}
        st, err, _ = SRV.json("POST", "/storage/v1/b/b/o/cmp%2Fx/compose", many)
        self.assertEqual(st, 400)
        self.assertIn("exceeds the maximum (32)", err["error"]["message"])
        self.assertEqual(SRV.json("POST", "/storage/v1/b/b/o/cmp%2Fx/compose", {"sourceObjects": []})[0], 400)
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/cmp%2Fx")[0], 404)


class TestRewrite(unittest.TestCase, GcsErrorShape):
    def test_rewrite_in_steps(self):
        data = os.urandom(2 * 1024 * 1024 + 12345)
        st, src, _ = SRV.upload("b", "rw/src", data, headers={"Content-Type": "image/x-test"})
        path = "/storage/v1/b/b/o/rw%2Fsrc/rewriteTo/b/b/o/rw%2Fdst%20copy"
        c = SRV.conn()
        totals, token = [], None
        for _ in range(10):
            q = "?maxBytesRewrittenPerCall=1048576" + ("&rewriteToken=" + quote(token, safe="") if token else "")
            st, r, _ = SRV.json("POST", path + q, conn=c)
            self.assertEqual(st, 200, r)
            self.assertEqual(r["kind"], "storage#rewriteResponse")
            self.assertEqual(r["objectSize"], str(len(data)))
            totals.append(int(r["totalBytesRewritten"]))
            if r["done"]:
                break
            token = r["rewriteToken"]
            self.assertNotIn("resource", r)
        self.assertEqual(totals, [1048576, 2097152, len(data)])
        self.assertEqual(r["resource"]["name"], "rw/dst copy")
        self.assertEqual(r["resource"]["crc32c"], src["crc32c"])
        self.assertEqual(r["resource"]["contentType"], "image/x-test")
        st, _, got = SRV.request("GET", "/storage/v1/b/b/o/rw%2Fdst%20copy?alt=media", conn=c)
        self.assertEqual(got, data)
        # One call when no limit applies.
        st, r, _ = SRV.json("POST", "/storage/v1/b/b/o/rw%2Fsrc/rewriteTo/b/b/o/rw%2Fone", conn=c)
        self.assertEqual((st, r["done"], r["totalBytesRewritten"]), (200, True, str(len(data))))
        # The server-wide chunk (--rewrite-chunk) applies to every rewrite.
        SRV.json("POST", "/_config", {"rewrite_chunk": 1048576}, conn=c)
        try:
            st, r, _ = SRV.json("POST", "/storage/v1/b/b/o/rw%2Fsrc/rewriteTo/b/b/o/rw%2Ftwo", conn=c)
            self.assertEqual((st, r["done"]), (200, False))
        finally:
            SRV.json("POST", "/_config", {"rewrite_chunk": 0}, conn=c)
        c.close()

    def test_rewrite_errors(self):
        SRV.upload("b", "rw/s", b"source")
        SRV.upload("b", "rw/d", b"dest")
        base = "/storage/v1/b/b/o/rw%2Fs/rewriteTo/b/b/o/"
        st, body, _ = SRV.json("POST", base + "rw%2Fd?ifGenerationMatch=0")
        self.assertGcsError(st, body, 412)
        st, body, _ = SRV.json("POST", base + "rw%2Fd?maxBytesRewrittenPerCall=1000")
        self.assertGcsError(st, body, 400)
        st, body, _ = SRV.json("POST", base + "rw%2Fd?rewriteToken=bogus")
        self.assertGcsError(st, body, 400)
        st, body, _ = SRV.json("POST", "/storage/v1/b/b/o/rw%2Fnope/rewriteTo/b/b/o/rw%2Fd")
        self.assertGcsError(st, body, 404)
        st, body, _ = SRV.json("POST", base + "rw%2Fd?ifGenerationMatch=0".replace("0", "1"))
        self.assertGcsError(st, body, 412)
        st, r, _ = SRV.json("POST", base + "rw%2Fnew?ifGenerationMatch=0", {"contentType": "text/x-new"})
        self.assertEqual((st, r["resource"]["contentType"]), (200, "text/x-new"))


class TestFaults(unittest.TestCase, GcsErrorShape):
    @classmethod
    def setUpClass(cls):
        cls.data = os.urandom(64 * KIB)
        st, cls.obj, _ = SRV.upload("b", "fault/obj", cls.data)

    def media(self, tid, conn=None):
        return SRV.request("GET", "/storage/v1/b/b/o/fault%2Fobj?alt=media", headers={"x-retry-test-id": tid},
                           conn=conn)

    def raw_get(self, tid, path="/storage/v1/b/b/o/fault%2Fobj?alt=media"):
        """Raw bytes the server sent until it closed the connection (or the error it raised)."""
        s = socket.create_connection(("127.0.0.1", SRV.port), timeout=30)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nx-retry-test-id: %s\r\n\r\n" % (path, tid)).encode())
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    return out, None
                out += b
        except OSError as e:
            return out, e
        finally:
            s.close()

    def test_return_codes_then_success(self):
        tid = SRV.retry_test({"storage.objects.get": ["return-503", "return-429", "return-408", "return-500",
                                                      "return-401"]})
        c = SRV.conn()
        for code in (503, 429, 408, 500, 401):
            st, hdrs, body = self.media(tid, c)
            self.assertGcsError(st, json.loads(body), code)
        st, t, _ = SRV.json("GET", "/retry_test/" + tid, conn=c)
        self.assertEqual((t["completed"], t["instructions"]), (True, {"storage.objects.get": []}))
        st, _, body = self.media(tid, c)
        self.assertEqual((st, body), (200, self.data))
        c.close()

    def test_each_method(self):
        SRV.upload("b", "fault/del", b"x")
        tid = SRV.retry_test({m: ["return-503"] for m in (
            "storage.objects.list", "storage.objects.get", "storage.objects.insert", "storage.objects.delete",
            "storage.objects.rewrite", "storage.buckets.get")})
        reqs = [("GET", "/storage/v1/b/b/o?prefix=fault/"), ("GET", "/storage/v1/b/b/o/fault%2Fobj"),
                ("POST", "/upload/storage/v1/b/b/o?uploadType=media&name=fault%2Fnew"),
                ("DELETE", "/storage/v1/b/b/o/fault%2Fdel"),
                ("POST", "/storage/v1/b/b/o/fault%2Fobj/rewriteTo/b/b/o/fault%2Fcopy"), ("GET", "/storage/v1/b/b")]
        c = SRV.conn()
        for verb, path in reqs:
            st, body, _ = SRV.json(verb, path, b"" if verb == "POST" else None, {"x-retry-test-id": tid}, conn=c)
            self.assertGcsError(st, body, 503)
        # The failed requests had no effect; the second attempt of each succeeds.
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/fault%2Fnew", conn=c)[0], 404)
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/fault%2Fdel", conn=c)[0], 200)
        for verb, path in reqs:
            st, _, _ = SRV.request(verb, path, b"" if verb == "POST" else None, {"x-retry-test-id": tid}, conn=c)
            self.assertIn(st, (200, 204), path)
        c.close()

    def test_reset_connection(self):
        tid = SRV.retry_test({"storage.objects.get": ["return-reset-connection"]})
        out, err = self.raw_get(tid)
        self.assertEqual(out, b"")
        self.assertIsInstance(err, ConnectionResetError)  # an RST, not a clean close
        st, _, body = self.media(tid)
        self.assertEqual((st, body), (200, self.data))
        # Through http.client the failure is a connection error, too.
        tid = SRV.retry_test({"storage.objects.list": ["return-reset-connection"]})
        with self.assertRaises((ConnectionError, http.client.RemoteDisconnected)):
            SRV.request("GET", "/storage/v1/b/b/o", headers={"x-retry-test-id": tid})

    def test_broken_stream(self):
        tid = SRV.retry_test({"storage.objects.get": ["return-broken-stream"]})
        c = SRV.conn()
        c.request("GET", "/storage/v1/b/b/o/fault%2Fobj?alt=media", headers={"x-retry-test-id": tid})
        r = c.getresponse()
        self.assertEqual((r.status, r.headers["Content-Length"]), (200, str(len(self.data))))
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        c.close()
        tid = SRV.retry_test({"storage.objects.get": ["return-broken-stream-after-8K"]})
        out, err = self.raw_get(tid)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: %d" % len(self.data), head)
        self.assertEqual(body, self.data[:8 * KIB])

    def test_stall(self):
        tid = SRV.retry_test({"storage.objects.get": ["stall-for-1s-after-16K"]})
        t0 = time.monotonic()
        st, _, body = self.media(tid)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertEqual((st, body), (200, self.data))
        # A stalled upload still completes.
        tid = SRV.retry_test({"storage.objects.insert": ["stall-for-1s-after-4K"]})
        t0 = time.monotonic()
        st, obj, _ = SRV.upload("b", "fault/stalled", self.data, headers={"x-retry-test-id": tid})
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertEqual((st, obj["crc32c"]), (200, self.obj["crc32c"]))

    def test_corrupted_data(self):
        tid = SRV.retry_test({"storage.objects.get": ["return-corrupted-data"]})
        st, hdrs, body = self.media(tid)
        self.assertEqual((st, len(body)), (200, len(self.data)))
        self.assertNotEqual(body, self.data)
        self.assertEqual(sum(a != b for a, b in zip(body, self.data)), 1)
        self.assertIn("crc32c=" + self.obj["crc32c"], hdrs["x-goog-hash"])  # the hash of the real data
        # On an upload the corruption happens "in transit": a client-supplied hash catches it.
        tid = SRV.retry_test({"storage.objects.insert": ["return-corrupted-data"]})
        st, body, _ = SRV.upload("b", "fault/corrupt-up", self.data,
                                 headers={"x-retry-test-id": tid, "X-Goog-Hash": "crc32c=" + self.obj["crc32c"]})
        self.assertGcsError(st, body, 400)
        tid = SRV.retry_test({"storage.objects.insert": ["return-corrupted-data"]})
        st, body, _ = TestMultipart().multipart({"name": "fault/corrupt-mp", "md5Hash": self.obj["md5Hash"]},
                                                self.data, headers={"x-retry-test-id": tid})
        self.assertGcsError(st, body, 400)
        self.assertIn("MD5", body["error"]["message"])
        tid = SRV.retry_test({"storage.objects.insert": ["return-corrupted-data"]})
        st, obj, _ = SRV.upload("b", "fault/corrupt-unchecked", self.data, headers={"x-retry-test-id": tid})
        self.assertEqual(st, 200)
        self.assertNotEqual(obj["crc32c"], self.obj["crc32c"])  # without a client hash, corruption goes unseen

    def test_broken_stream_on_insert_still_commits(self):
        tid = SRV.retry_test({"storage.objects.insert": ["return-broken-stream"]})
        with self.assertRaises((http.client.IncompleteRead, ConnectionError, http.client.BadStatusLine)):
            SRV.upload("b", "fault/committed", b"data", headers={"x-retry-test-id": tid})
        st, _, body = SRV.request("GET", "/storage/v1/b/b/o/fault%2Fcommitted?alt=media")
        self.assertEqual((st, body), (200, b"data"))

    def test_pass(self):
        # "pass" only takes its turn: the instruction after it reaches the next request.
        tid = SRV.retry_test({"storage.objects.get": ["pass", "return-503"]})
        c = SRV.conn()
        st, _, body = self.media(tid, c)
        self.assertEqual((st, body), (200, self.data))
        self.assertEqual(self.media(tid, c)[0], 503)
        self.assertEqual(self.media(tid, c)[0], 200)
        c.close()

    def test_reset_then_execute_later(self):
        # The client sees its connection reset with no answer; the server executes the request later all the same,
        # and counts it in flight until then. With ifGenerationMatch=0 a late duplicate cannot land on an object
        # that exists by then.
        SRV.json("POST", "/_stats/reset")
        # A request an earlier test left in the server (a stall, a late execution) must end before this one counts.
        deadline = time.monotonic() + 30
        while SRV.json("GET", "/_stats")[1]["api_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        # 3 s for the first: the reset and the two checks after it must come before it lands, on a loaded machine
        # too; what the second does (fail its precondition) does not depend on when it lands.
        tid = SRV.retry_test({"storage.objects.insert": ["reset-then-execute-after-3s", "reset-then-execute-after-1s"]})
        t0 = time.monotonic()
        with self.assertRaises((ConnectionError, http.client.RemoteDisconnected)):
            SRV.upload("b", "fault/late", b"late bytes", headers={"x-retry-test-id": tid})
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/fault%2Flate")[0], 404)
        # The GET leaves the count after its answer is sent: the client can ask for the stats before that.
        deadline = time.monotonic() + 1
        while SRV.json("GET", "/_stats")[1]["api_in_flight"] > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(SRV.json("GET", "/_stats")[1]["api_in_flight"], 1)
        deadline = time.monotonic() + 30
        while SRV.json("GET", "/_stats")[1]["api_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        st, obj, _ = SRV.json("GET", "/storage/v1/b/b/o/fault%2Flate")
        self.assertEqual((st, obj["size"]), (200, "10"))
        self.assertEqual(SRV.json("GET", "/_stats")[1]["generations_created"], 1)
        with self.assertRaises((ConnectionError, http.client.RemoteDisconnected)):
            SRV.upload("b", "fault/late", b"duplicate", query="&ifGenerationMatch=0",
                       headers={"x-retry-test-id": tid})
        while SRV.json("GET", "/_stats")[1]["api_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        st, again, _ = SRV.json("GET", "/storage/v1/b/b/o/fault%2Flate")
        self.assertEqual((st, again["generation"]), (200, obj["generation"]))
        st, stats, _ = SRV.json("GET", "/_stats")
        self.assertEqual(stats["generations_created"], 1)
        self.assertEqual(stats["requests"]["storage.objects.insert"], 2)

    def test_retry_test_resource(self):
        st, body, _ = SRV.json("POST", "/retry_test", {"instructions": {"storage.objects.get": ["explode"]}})
        self.assertGcsError(st, body, 400)
        st, body, _ = SRV.json("POST", "/retry_test", {"instructions": {"storage.objects.frob": ["return-503"]}})
        self.assertGcsError(st, body, 400)
        tid = SRV.retry_test({"storage.objects.get": ["return-503"], "storage.objects.list": []})
        st, t, _ = SRV.json("GET", "/retry_test/" + tid)
        self.assertEqual((st, t["id"], t["completed"], t["transport"]), (200, tid, False, "HTTP"))
        self.assertEqual(t["instructions"]["storage.objects.get"], ["return-503"])
        st, _, _ = SRV.request("DELETE", "/retry_test/" + tid)
        self.assertEqual(st, 200)
        self.assertEqual(SRV.request("GET", "/retry_test/" + tid)[0], 404)
        st, body, _ = SRV.json("GET", "/storage/v1/b/b", headers={"x-retry-test-id": "no-such-test"})
        self.assertGcsError(st, body, 400)

    def test_keep_alive_survives_errors(self):
        SRV.json("POST", "/_stats/reset")
        c = SRV.conn()
        tid = SRV.retry_test({"storage.objects.get": ["return-503", "return-503"]})
        for _ in range(2):
            self.assertEqual(self.media(tid, c)[0], 503)
        self.assertEqual(SRV.request("GET", "/storage/v1/b/b/o/missing", conn=c)[0], 404)
        self.assertEqual(self.media(tid, c)[0], 200)
        st, stats, _ = SRV.json("GET", "/_stats", conn=c)
        c.close()
        # Two connections since the reset: the one creating the retry test and c.
        self.assertEqual(stats["connections"], 2)


class TestMisbehaviour(unittest.TestCase, GcsErrorShape):
    """Serve modes of seeded objects, gzip-encoded objects, listing modes of buckets, the header-echoing error."""

    @classmethod
    def setUpClass(cls):
        cls.data = bytes(range(256)) * 4 + b"tail"
        cls.gz = gzip.compress(b"hello, " * 300, mtime=0) + gzip.compress(b"second member\n", mtime=0)
        objs = [{"name": "m/" + mode, "data_b64": b64(cls.data), "serve": [mode]}
                for mode in ("no-hash", "short-body", "long-body", "ignore-range")]
        objs.append({"name": "m/gz", "data_b64": b64(cls.gz), "contentEncoding": "gzip", "contentType": "text/plain"})
        st, body, _ = SRV.json("POST", "/_seed", {"bucket": "mis", "objects": objs})
        assert st == 200, body
        st, body, _ = SRV.json("POST", "/_seed", {"bucket": "mis", "objects": [{"name": "x", "serve": ["bad"]}]})
        assert st == 400, body

    def media(self, name, headers=None):
        return SRV.request("GET", "/storage/v1/b/mis/o/%s?alt=media" % enc(name), headers=headers or {})

    def test_serve_modes(self):
        st, h, body = self.media("m/no-hash")
        self.assertEqual((st, body), (200, self.data))
        self.assertIsNone(h["x-goog-hash"])
        self.assertIsNone(h["x-goog-stored-content-length"])
        st, h, body = self.media("m/short-body")
        self.assertEqual((st, body, h["Content-Length"]), (200, self.data[:len(self.data) // 2],
                                                          str(len(self.data) // 2)))
        self.assertEqual(h["x-goog-stored-content-length"], str(len(self.data)))  # the truth, beside a short body
        st, h, body = self.media("m/short-body", {"Range": "bytes=10-29"})
        self.assertEqual((st, body, h["Content-Range"]), (206, self.data[10:20], "bytes 10-29/%d" % len(self.data)))
        st, h, body = self.media("m/long-body")
        self.assertEqual((st, len(body), h["Content-Length"]), (200, len(self.data) + 16, str(len(self.data) + 16)))
        self.assertEqual(body[:len(self.data)], self.data)
        st, h, body = self.media("m/ignore-range", {"Range": "bytes=100-119"})
        self.assertEqual((st, body), (200, self.data))
        self.assertIsNone(h["Content-Range"])

    def test_gzip_encoded_object(self):
        st, meta, _ = SRV.json("GET", "/storage/v1/b/mis/o/m%2Fgz")
        self.assertEqual((meta["contentEncoding"], meta["size"], meta["crc32c"]),
                         ("gzip", str(len(self.gz)), crc_b64(self.gz)))
        # Without Accept-Encoding: gzip, decompressed (both members), hashes of the stored bytes, Range ignored.
        plain = gzip.decompress(self.gz)
        for hdrs in ({}, {"Range": "bytes=0-9"}, {"Accept-Encoding": "gzip;q=0"}, {"Accept-Encoding": "br"}):
            st, h, body = self.media("m/gz", hdrs)
            self.assertEqual((st, body), (200, plain), hdrs)
            self.assertIsNone(h["Content-Encoding"])
            self.assertEqual(h["x-goog-hash"].split(",")[0], "crc32c=" + crc_b64(self.gz))
            self.assertEqual((h["x-goog-stored-content-encoding"], h["x-goog-stored-content-length"]),
                             ("gzip", str(len(self.gz))))
        # With it, the stored bytes, ranges of them too.
        for ae in ("gzip", "deflate, gzip", "*"):
            st, h, body = self.media("m/gz", {"Accept-Encoding": ae})
            self.assertEqual((st, body, h["Content-Encoding"]), (200, self.gz, "gzip"), ae)
        st, h, body = self.media("m/gz", {"Accept-Encoding": "gzip", "Range": "bytes=5-14"})
        self.assertEqual((st, body, h["Content-Range"]), (206, self.gz[5:15], "bytes 5-14/%d" % len(self.gz)))

    def test_echo_headers(self):
        tid = SRV.retry_test({"storage.objects.get": ["return-403-echo-headers"]})
        st, _, body = self.media("m/gz", {"x-retry-test-id": tid, "Authorization": "Bearer ya29.secret-token-123"})
        err = json.loads(body)
        self.assertGcsError(st, err, 403)
        self.assertIn("Authorization: Bearer ya29.secret-token-123", err["error"]["message"])

    def set_modes(self, bucket, modes):
        st, body, _ = SRV.json("POST", "/_config", {"list_modes": {bucket: modes}})
        self.assertEqual(st, 200, body)

    def list_pages(self, bucket, query="", limit=50):
        names, pages, token = [], 0, None
        while pages < limit:
            q = query + ("&pageToken=" + quote(token) if token else "")
            st, body, _ = SRV.json("GET", "/storage/v1/b/%s/o?%s" % (bucket, q))
            self.assertEqual(st, 200, body)
            pages += 1
            names += [i["name"] for i in body.get("items", [])] + body.get("prefixes", [])
            token = body.get("nextPageToken")
            if not token:
                break
        return names, pages, token

    def test_list_modes(self):
        keys = ["p/a", "p/b", "p/\ue000", "p/\uff5e", "p/\ufffd", "p/\U0001f600", "p/\U0001f600x", "p/z", "q/out"]
        SRV.json("POST", "/_seed", {"bucket": "lm", "objects": [{"name": k} for k in keys]})
        try:
            self.set_modes("lm", ["utf16-order", "page-size-2"])
            names, pages, _ = self.list_pages("lm", "prefix=p/")
            want = sorted(keys[:-1], key=lambda k: k.encode("utf-16-be"))
            self.assertEqual(names, want)
            self.assertNotEqual(names, sorted(keys[:-1], key=lambda k: k.encode()))
            self.assertEqual(pages, 4)
            names, _, _ = self.list_pages("lm", "prefix=p/&startOffset=" + quote("p/\U0001f600x"))
            self.assertEqual(names, want[want.index("p/\U0001f600x"):])
            self.set_modes("lm", ["repeat-last", "page-size-3"])
            names, _, _ = self.list_pages("lm", "prefix=p/")
            self.assertEqual(len(names), 8 + 3)  # pages of 3 that each repeat the last of the page before
            self.assertEqual(sorted(set(names)), sorted(keys[:-1]))
            self.set_modes("lm", ["reverse-pages", "page-size-4"])
            names, _, _ = self.list_pages("lm", "prefix=p/")
            byte_order = sorted(keys[:-1], key=lambda k: k.encode())
            self.assertEqual(names, byte_order[:4][::-1] + byte_order[4:][::-1])
            self.set_modes("lm", ["ignore-prefix"])
            names, _, _ = self.list_pages("lm", "prefix=p/")
            self.assertIn("q/out", names)
            self.set_modes("lm", ["token-cycle"])
            names, pages, token = self.list_pages("lm", "prefix=p/", limit=7)
            self.assertEqual((sorted(names), pages), (sorted(keys[:-1]), 7))
            self.assertIsNotNone(token)
            self.set_modes("lm", [])
            names, _, _ = self.list_pages("lm", "prefix=p/")
            self.assertEqual(names, byte_order)
            st, body, _ = SRV.json("POST", "/_config", {"list_modes": {"lm": ["sideways"]}})
            self.assertGcsError(st, body, 400)
        finally:
            self.set_modes("lm", [])


class TestStatsAndConfig(unittest.TestCase):
    def test_connection_counting(self):
        SRV.json("POST", "/_stats/reset")
        c = SRV.conn()
        for i in range(50):
            st, _, _ = SRV.request("GET", "/storage/v1/b/b", conn=c)
            self.assertEqual(st, 200)
        st, stats, _ = SRV.json("GET", "/_stats", conn=c)
        c.close()
        self.assertEqual(stats["connections"], 1)
        self.assertEqual(stats["api_connections"], 1)
        self.assertEqual(stats["requests"], {"storage.buckets.get": 50})
        self.assertEqual(stats["requests_total"], 50)
        for _ in range(4):
            SRV.request("GET", "/storage/v1/b/b")
        st, stats, _ = SRV.json("GET", "/_stats")
        self.assertEqual((stats["connections"], stats["api_connections"]), (6, 5))

    def test_in_flight(self):
        # A request being handled counts until its answer is sent; control requests never count; a reset keeps it.
        def in_flight_becomes(n, within_s):
            deadline = time.monotonic() + within_s
            while SRV.json("GET", "/_stats")[1]["api_in_flight"] != n and time.monotonic() < deadline:
                time.sleep(0.01)
            return SRV.json("GET", "/_stats")[1]["api_in_flight"]

        SRV.json("POST", "/_config", {"delay_ms": 3000})
        try:
            t = threading.Thread(target=lambda: SRV.request("GET", "/storage/v1/b/b"))
            t.start()
            self.assertEqual(in_flight_becomes(1, 2.5), 1)
            SRV.json("POST", "/_stats/reset")
            self.assertEqual(SRV.json("GET", "/_stats")[1]["api_in_flight"], 1)
            t.join()
        finally:
            SRV.json("POST", "/_config", {"delay_ms": 0})
        # It leaves the count after its answer is sent, which the client may have read already.
        self.assertEqual(in_flight_becomes(0, 10), 0)

    def test_parallel_clients_keep_their_connections(self):
        SRV.json("POST", "/_stats/reset")
        errors = []

        def worker(w):
            try:
                c = SRV.conn()
                for i in range(25):
                    name = "par/%d/%03d" % (w, i)
                    st, obj, _ = SRV.upload("b", name, name.encode(), conn=c)
                    assert st == 200, obj
                    st, _, data = SRV.request("GET", "/storage/v1/b/b/o/%s?alt=media" % enc(name), conn=c)
                    assert (st, data) == (200, name.encode())
                st, body, _ = SRV.json("GET", "/storage/v1/b/b/o?prefix=par/%d/&fields=items(name)" % w, conn=c)
                assert len(body["items"]) == 25
                c.close()
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        st, stats, _ = SRV.json("GET", "/_stats")
        self.assertEqual(stats["api_connections"], 8)
        self.assertEqual(stats["connections"], 9)  # and the one reading /_stats
        self.assertEqual(stats["requests"], {"storage.objects.insert": 200, "storage.objects.get": 200,
                                             "storage.objects.list": 8})

    def test_malformed_requests(self):
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o?matchGlob=**.txt")
        self.assertEqual(st, 400)
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o/%FF%FE")
        self.assertEqual(st, 400)
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/o?maxResults=zero")
        self.assertEqual(st, 400)
        s = socket.create_connection(("127.0.0.1", SRV.port), timeout=30)
        s.sendall(b"POST /upload/storage/v1/b/b/o?uploadType=media&name=x HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
        reply = s.recv(65536)
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 400 "), reply)
        st, body, _ = SRV.json("GET", "/storage/v1/b/b/nowhere")
        self.assertEqual(st, 404)

    def test_delay(self):
        SRV.json("POST", "/_config", {"delay_ms": 300})
        try:
            c = SRV.conn()
            t0 = time.monotonic()
            SRV.request("GET", "/storage/v1/b/b", conn=c)
            self.assertGreaterEqual(time.monotonic() - t0, 0.3)
            t0 = time.monotonic()
            SRV.request("GET", "/_stats", conn=c)  # control endpoints are not delayed
            self.assertLess(time.monotonic() - t0, 0.3)
            c.close()
        finally:
            st, cfg, _ = SRV.json("POST", "/_config", {"delay_ms": 0})
        self.assertEqual(cfg["delay_ms"], 0)

    def test_outage(self):
        """outage_s: API requests get no answer (connection reset) for that long; control endpoints still answer."""
        SRV.json("POST", "/_stats/reset")
        st, cfg, _ = SRV.json("POST", "/_config", {"outage_s": 60})
        try:
            self.assertEqual(st, 200)
            self.assertGreater(cfg["outage_s"], 59)
            self.assertEqual(cfg["outage_status"], 0)
            for method, path in (("GET", "/storage/v1/b/b"), ("GET", "/storage/v1/b/b/o"), ("POST", "/token")):
                with self.assertRaises((ConnectionError, http.client.HTTPException), msg=path):
                    SRV.request(method, path, b"")
            st, stats, _ = SRV.json("GET", "/_stats")  # control: answered, and the requests were counted
            self.assertEqual(st, 200)
            self.assertEqual(stats["requests"].get("storage.buckets.get"), 1)
            self.assertEqual(stats["requests"].get("storage.objects.list"), 1)
            # An outage that answers with a status instead: a server that is up but fails everything.
            SRV.json("POST", "/_config", {"outage_status": 503})
            st, body, _ = SRV.json("PUT", "/upload/storage/v1/b/b/o?uploadType=media&name=x", b"data")
            self.assertEqual(st, 503, body)
            self.assertEqual(body["error"]["code"], 503)
            st, _, _ = SRV.request("GET", "/storage/v1/b/b/o/x")
            self.assertEqual(st, 503)
            st, body, _ = SRV.json("POST", "/_config", {"outage_status": 200})
            self.assertEqual(st, 400, body)
        finally:
            st, cfg, _ = SRV.json("POST", "/_config", {"outage_s": 0, "outage_status": 0})
        self.assertEqual((cfg["outage_s"], cfg["outage_status"]), (0, 0))
        st, _, _ = SRV.request("GET", "/storage/v1/b/b")  # over: answered again
        self.assertEqual(st, 200)
        # A short outage ends by itself.
        SRV.json("POST", "/_config", {"outage_s": 0.3})
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            SRV.request("GET", "/storage/v1/b/b")
        time.sleep(0.4)
        st, _, _ = SRV.request("GET", "/storage/v1/b/b")
        self.assertEqual(st, 200)


def openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=True).stdout


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class TestAuth(unittest.TestCase, GcsErrorShape):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gcs-auth-")
        cls.key = os.path.join(cls.dir, "key.pem")
        pub = os.path.join(cls.dir, "pub.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", cls.key)
        openssl("pkey", "-in", cls.key, "-pubout", "-out", pub)
        cls.srv = ServerProcess("--bucket", "auth", "--token-required", "--jwt-public-key", pub,
                                "--refresh-token", "1//refresh-me", "--client-id", "cid", "--client-secret", "csec",
                                "--accept-token", "static-token", "--token-lifetime-s", "600")

    @classmethod
    def tearDownClass(cls):
        err = cls.srv.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if "Traceback" in err or "exit status" in err:
            raise AssertionError("server stderr:\n" + err)

    def jwt(self, **overrides):
        now = int(time.time())
        claims = {"iss": "sa@sluice-test.iam.gserviceaccount.com", "aud": "https://oauth2.googleapis.com/token",
                  "scope": "https://www.googleapis.com/auth/devstorage.read_write", "iat": now, "exp": now + 3600}
        claims.update(overrides)
        signing_input = b64u(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + "." + \
            b64u(json.dumps(claims).encode())
        sig = openssl("dgst", "-sha256", "-sign", self.key, data=signing_input.encode())
        return signing_input + "." + b64u(sig)

    def token(self, form):
        body = "&".join("%s=%s" % (k, quote(v, safe="")) for k, v in form.items()).encode()
        return self.srv.json("POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded"})

    def bucket_get(self, token):
        return self.srv.json("GET", "/storage/v1/b/auth", headers={"Authorization": "Bearer " + token}
                             if token else None)

    def test_token_required(self):
        st, body, hdrs = self.srv.json("GET", "/storage/v1/b/auth/o")
        self.assertGcsError(st, body, 401, "required")
        self.assertIn("Bearer", hdrs["WWW-Authenticate"])
        st, body, _ = self.bucket_get("not-a-token")
        self.assertGcsError(st, body, 401, "authError")
        st, body, _ = self.srv.json("POST", "/upload/storage/v1/b/auth/o?uploadType=media&name=x", b"x")
        self.assertGcsError(st, body, 401)
        self.assertEqual(self.bucket_get("static-token")[0], 200)
        # Control endpoints need no token.
        self.assertEqual(self.srv.request("GET", "/_stats")[0], 200)

    def test_jwt_flow(self):
        st0, stats0, _ = self.srv.json("GET", "/_stats")
        st, tok, _ = self.token({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                 "assertion": self.jwt()})
        self.assertEqual(st, 200, tok)
        self.assertEqual((tok["token_type"], tok["expires_in"]), ("Bearer", 600))
        self.assertEqual(self.bucket_get(tok["access_token"])[0], 200)
        st, stats, _ = self.srv.json("GET", "/_stats")
        self.assertEqual(stats["tokens_issued"], stats0["tokens_issued"] + 1)
        # Our own token URL is an accepted audience, too.
        st, tok, _ = self.token({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                 "assertion": self.jwt(aud="http://127.0.0.1:%d/token" % self.srv.port)})
        self.assertEqual(st, 200, tok)

    def test_jwt_rejections(self):
        grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
        good = self.jwt()
        h, p, s = good.split(".")
        forged = h + "." + b64u(json.dumps({"iss": "evil", "aud": "https://oauth2.googleapis.com/token",
                                            "scope": "https://www.googleapis.com/auth/cloud-platform",
                                            "iat": int(time.time()), "exp": int(time.time()) + 60}).encode()) + "." + s
        now = int(time.time())
        cases = [(forged, "invalid_grant"), (self.jwt(exp=now - 10, iat=now - 100), "invalid_grant"),
                 (self.jwt(exp=now + 7200), "invalid_grant"), (self.jwt(aud="https://example.com/"), "invalid_grant"),
                 (self.jwt(scope="https://www.googleapis.com/auth/userinfo.email"), "invalid_scope"),
                 ("not.a.jwt", "invalid_grant")]
        for assertion, err in cases:
            st, body, _ = self.token({"grant_type": grant, "assertion": assertion})
            self.assertEqual((st, body["error"]), (400, err), body)
        st, body, _ = self.token({"grant_type": "password"})
        self.assertEqual((st, body["error"]), (400, "unsupported_grant_type"))

    def test_refresh_token_flow(self):
        st, tok, _ = self.token({"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csec",
                                 "refresh_token": "1//refresh-me"})
        self.assertEqual(st, 200, tok)
        self.assertEqual(self.bucket_get(tok["access_token"])[0], 200)
        st, body, _ = self.token({"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csec",
                                  "refresh_token": "wrong"})
        self.assertEqual((st, body["error"]), (400, "invalid_grant"))
        st, body, _ = self.token({"grant_type": "refresh_token", "client_id": "cid", "client_secret": "nope",
                                  "refresh_token": "1//refresh-me"})
        self.assertEqual((st, body["error"]), (401, "invalid_client"))

    def test_metadata_server(self):
        path = "/computeMetadata/v1/instance/service-accounts/default/token"
        st, hdrs, body = self.srv.request("GET", path)
        self.assertEqual(st, 403)
        st, hdrs, body = self.srv.request("GET", path, headers={"Metadata-Flavor": "Google"})
        self.assertEqual((st, hdrs["Metadata-Flavor"]), (200, "Google"))
        tok = json.loads(body)
        self.assertEqual(set(tok), {"access_token", "expires_in", "token_type"})
        self.assertEqual(self.bucket_get(tok["access_token"])[0], 200)
        st, _, body = self.srv.request("GET", "/computeMetadata/v1/project/project-id",
                                       headers={"Metadata-Flavor": "Google"})
        self.assertEqual((st, body), (200, b"sluice-test"))

    def test_token_endpoint_faults(self):
        tid = self.srv.retry_test({"metadata.token": ["return-503"], "oauth2.token": ["return-reset-connection"]})
        path = "/computeMetadata/v1/instance/service-accounts/default/token"
        st, _, _ = self.srv.request("GET", path, headers={"Metadata-Flavor": "Google", "x-retry-test-id": tid})
        self.assertEqual(st, 503)
        st, _, _ = self.srv.request("GET", path, headers={"Metadata-Flavor": "Google", "x-retry-test-id": tid})
        self.assertEqual(st, 200)
        with self.assertRaises(ConnectionError):
            self.srv.request("POST", "/token", b"grant_type=refresh_token", {"x-retry-test-id": tid})

    def test_token_expiry(self):
        self.srv.json("POST", "/_config", {"token_lifetime_s": 1})
        try:
            st, hdrs, body = self.srv.request("GET", "/computeMetadata/v1/instance/service-accounts/default/token",
                                              headers={"Metadata-Flavor": "Google"})
            tok = json.loads(body)
            self.assertEqual(tok["expires_in"], 1)
            self.assertEqual(self.bucket_get(tok["access_token"])[0], 200)
            time.sleep(1.2)
            st, body, _ = self.bucket_get(tok["access_token"])
            self.assertGcsError(st, body, 401, "authError")
        finally:
            self.srv.json("POST", "/_config", {"token_lifetime_s": 600})


if __name__ == "__main__":
    unittest.main(verbosity=2)
