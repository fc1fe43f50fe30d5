#!/usr/bin/env python3
"""Tests of tests/s3/s3_server.py, the local S3 server (unittest; standard library and botocore).

Each test class talks to a real server process started on a free loopback port, over real sockets. Requests are
signed with botocore's own signer (botocore.auth.S3SigV4Auth), and some with the plain SigV4 code below (hmac and
hashlib only, written from AWS's description), so that the server's check is tested against two signers.
Run: python3 tests/s3/test_s3_server.py  (runs itself under /usr/bin/python3 when python3 has no botocore)
"""

import os
import sys


def _need_botocore():
    try:
        import botocore.auth  # noqa: F401
        return
    except ImportError:
        pass
    system = "/usr/bin/python3"
    if os.environ.get("SLUICE_S3_TEST_REEXEC") != "1" and os.path.exists(system):
        os.environ["SLUICE_S3_TEST_REEXEC"] = "1"
        os.execv(system, [system] + sys.argv)
    sys.stderr.write("test_s3_server.py: needs botocore (Debian: apt-get install python3-botocore)\n")
    sys.exit(1)


_need_botocore()

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
from urllib.parse import quote  # noqa: E402

import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402
import botocore.exceptions  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "s3_server.py")
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import s3_server  # noqa: E402  (crc32c, the botocore-based verifier)

AK, SK = "AKIDSLUICETEST", "sluice/secret+key"
TK, TS, TT = "AKIDWITHTOKEN", "other-secret", "static-session-token"
WEB_TOKEN = "eyJ.sluice-test-web-identity.token"
ROLE_ARN = "arn:aws:iam::123456789012:role/sluice-test"
CONTAINER_TOKEN = "Basic c2x1aWNlOnRlc3Q="
MIN_PART = 1024
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def crc_b64(data):
    return base64.b64encode(s3_server.crc32c(data).to_bytes(4, "big")).decode()


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def enc(s):
    return quote(s, safe="-_.~")


def qs(**kw):
    return "&".join("%s=%s" % (enc(k.replace("_", "-")), enc(str(v))) for k, v in kw.items())


def xml(body):
    root = ET.fromstring(body)
    for e in root.iter():
        if "}" in e.tag:
            e.tag = e.tag.split("}", 1)[1]
    return root


def amz_now(offset=0):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + offset))


def plain_sigv4(method, host, path, query, headers, payload_hash, akid, secret, region, amz_date, service="s3"):
    """The Authorization header for a request, computed as AWS describes SigV4 (hmac and hashlib only): path is
    the URI-encoded path as sent, query the [(name, value)] decoded pairs, headers the {lower name: value} signed."""
    cq = "&".join("%s=%s" % kv for kv in sorted((enc(k), enc(v)) for k, v in query))
    hs = dict(headers, host=host)
    names = sorted(hs)
    ch = "".join("%s:%s\n" % (n, " ".join(str(hs[n]).split())) for n in names)
    cr = "\n".join([method, path, cq, ch, ";".join(names), payload_hash])
    scope = "%s/%s/%s/aws4_request" % (amz_date[:8], region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(cr.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for m in (amz_date[:8], region, service, "aws4_request"):
        k = hmac.new(k, m.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (akid, scope, ";".join(names), sig)


class ServerProcess:
    """An s3_server.py subprocess on a free port; the port comes from --port-file and the stdout line."""

    def __init__(self, *args, python=None):
        self.dir = tempfile.mkdtemp(prefix="s3-test-")
        port_file = os.path.join(self.dir, "port")
        self.meta_port_file = os.path.join(self.dir, "meta-port")
        self.proc = subprocess.Popen([python or sys.executable, SERVER, "--port", "0", "--port-file", port_file,
                                      "--meta-port-file", self.meta_port_file] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"^listening on 127\.0\.0\.1:(\d+)\n$", line)
        if not m:
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            raise RuntimeError("server did not start: %r %s" % (line, err))
        self.port = int(m.group(1))
        with open(port_file) as f:
            assert int(f.read().strip()) == self.port
        with open(self.meta_port_file) as f:
            self.meta_port = int(f.read().strip())

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

    def raw(self, method, path, body=None, headers=None, port=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def control(self, method, what, value=None):
        body = json.dumps(value).encode() if value is not None else None
        status, _, data = self.raw(method, "/_sluice/" + what, body, {"Content-Type": "application/json"})
        assert status == 200, (what, status, data)
        return json.loads(data) if data else None

    def retry_test(self, instructions, glob=False):
        return self.control("POST", "retry_test", {"instructions": instructions, "global": glob})["id"]

    def stats(self):
        return self.control("GET", "stats")


class Client:
    """Requests signed by botocore's S3SigV4Auth, sent with http.client (Host as signed)."""

    def __init__(self, srv, akid=AK, secret=SK, token=None, region="us-east-1"):
        self.srv = srv
        self.creds = botocore.credentials.Credentials(akid, secret, token)
        self.region = region

    def request(self, method, path, body=b"", headers=None, query="", host=None, region=None, conn=None,
                timeout=30):
        """(status, headers, body); path is URI-encoded; query an encoded query string."""
        host = host or "127.0.0.1:%d" % self.srv.port
        target = path + ("?" + query if query else "")
        r = botocore.awsrequest.AWSRequest(method=method, url="http://%s%s" % (host, target), data=body,
                                           headers=dict(headers or {}))
        botocore.auth.S3SigV4Auth(self.creds, "s3", region or self.region).add_auth(r)
        hdrs = {k: v for k, v in r.headers.items()}
        hdrs["Host"] = host
        c = conn or http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=timeout)
        try:
            c.request(method, target, body=body, headers=hdrs)
            resp = c.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            if conn is None:
                c.close()

    def put(self, bucket, key, data, headers=None, **kw):
        return self.request("PUT", "/%s/%s" % (bucket, quote(key, safe="/~")), data, headers, **kw)

    def get(self, bucket, key, headers=None, query="", **kw):
        return self.request("GET", "/%s/%s" % (bucket, quote(key, safe="/~")), b"", headers, query, **kw)

    def list(self, bucket, **params):
        params.setdefault("list_type", 2)
        status, _, body = self.request("GET", "/" + bucket, query=qs(**params))
        assert status == 200, body
        return xml(body)

    def list_all(self, bucket, **params):
        keys, prefixes, token, pages = [], [], None, 0
        while True:
            p = dict(params)
            if token:
                p["continuation_token"] = token
            r = self.list(bucket, **p)
            pages += 1
            keys += [c.findtext("Key") for c in r.findall("Contents")]
            prefixes += [c.findtext("Prefix") for c in r.findall("CommonPrefixes")]
            token = r.findtext("NextContinuationToken")
            if r.findtext("IsTruncated") != "true":
                return keys, prefixes, pages
            assert token


def setUpModule():
    global SRV, C
    SRV = ServerProcess("--bucket", "b", "--bucket", "eu@eu-west-1", "--access-key", "%s:%s" % (AK, SK),
                        "--access-key", "%s:%s:%s" % (TK, TS, TT), "--min-part-size", str(MIN_PART),
                        "--web-identity-token", WEB_TOKEN, "--role-arn", ROLE_ARN,
                        "--container-token", CONTAINER_TOKEN)
    C = Client(SRV)


def tearDownModule():
    err = SRV.stop()
    if "Traceback" in err or "exit status" in err:
        raise AssertionError("server stderr:\n" + err)


class S3Case(unittest.TestCase):
    def assertS3Error(self, answer, status, code):
        st, hdrs, body = answer
        self.assertEqual(st, status, body)
        if body:
            e = xml(body)
            self.assertEqual(e.tag, "Error")
            self.assertEqual(e.findtext("Code"), code, body)
            self.assertTrue(e.findtext("Message"))
            self.assertTrue(e.findtext("RequestId"))
        return xml(body) if body else None

    def fresh(self, name):
        SRV.control("POST", "reset", {"buckets": [name]})
        SRV.control("POST", "seed", {"bucket": name, "objects": []})
        return name


class TestSigV4(S3Case):
    def test_aws_published_examples(self):
        # The examples of AWS's "Signature Calculations for the Authorization Header" (S3 API reference), checked
        # with the server's botocore-based computation.
        creds = s3_server.Creds("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        host = "examplebucket.s3.amazonaws.com"
        _, _, sig = s3_server.sigv4_expected(
            creds, "GET", host, b"/test.txt", [], [("host", [host]), ("range", ["bytes=0-9"]), (
                "x-amz-content-sha256", [s3_server.EMPTY_SHA256]), ("x-amz-date", ["20130524T000000Z"])],
            s3_server.EMPTY_SHA256, "20130524T000000Z", "us-east-1", "s3")
        self.assertEqual(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        payload = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
        _, _, sig = s3_server.sigv4_expected(
            creds, "PUT", host, b"/test$file.text", [], [
                ("date", ["Fri, 24 May 2013 00:00:00 GMT"]), ("host", [host]), ("x-amz-content-sha256", [payload]),
                ("x-amz-date", ["20130524T000000Z"]), ("x-amz-storage-class", ["REDUCED_REDUNDANCY"])],
            payload, "20130524T000000Z", "us-east-1", "s3")
        self.assertEqual(sig, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
        _, _, sig = s3_server.sigv4_expected(
            creds, "GET", host, b"/", [("max-keys", "2"), ("prefix", "J")], [
                ("host", [host]), ("x-amz-content-sha256", [s3_server.EMPTY_SHA256]),
                ("x-amz-date", ["20130524T000000Z"])], s3_server.EMPTY_SHA256, "20130524T000000Z", "us-east-1", "s3")
        self.assertEqual(sig, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")

    def plain(self, method, path, query, body=b"", extra=None, secret=SK, date=None, payload=None, akid=AK):
        host = "127.0.0.1:%d" % SRV.port
        date = date or amz_now()
        payload = payload or hashlib.sha256(body).hexdigest()
        hs = {"x-amz-date": date, "x-amz-content-sha256": payload}
        hs.update(extra or {})
        auth = plain_sigv4(method, host, path, query, hs, payload, akid, secret, "us-east-1", date)
        target = path + ("?" + "&".join("%s=%s" % (enc(k), enc(v)) for k, v in query) if query else "")
        return SRV.raw(method, target, body, dict(hs, Authorization=auth, Host=host))

    def test_plain_signer_agrees(self):
        # Odd keys and query values (spaces, '+', '/', '=', '~', UTF-8) signed by independent code.
        key = "odd dir/k+e=y~(1)é😀.txt"
        st, _, body = self.plain("PUT", "/b/" + quote(key, safe="/~"), [], b"plain")
        self.assertEqual(st, 200, body)
        st, _, body = self.plain("GET", "/b", [("list-type", "2"), ("prefix", "odd dir/k+e=y~"), ("delimiter", "/"),
                                              ("start-after", "a b"), ("encoding-type", "url")])
        self.assertEqual(st, 200, body)
        self.assertEqual(xml(body).findtext("Contents/Key"), s3_server.url_encode_key(key))
        st, _, body = self.plain("GET", "/b/" + quote(key, safe="/~"), [], extra={"range": "bytes=1-3"})
        self.assertEqual((st, body), (206, b"lai"))

    def test_unsigned_payload_accepted_and_checked_payload_refused(self):
        st, _, body = self.plain("PUT", "/b/unsigned", [], b"data", payload="UNSIGNED-PAYLOAD")
        self.assertEqual(st, 200, body)
        e = self.assertS3Error(self.plain("PUT", "/b/unsigned", [], b"data", payload="0" * 64), 400,
                               "XAmzContentSHA256Mismatch")
        self.assertEqual(e.findtext("S3ComputedContentSHA256"), hashlib.sha256(b"data").hexdigest())
        self.assertS3Error(self.plain("PUT", "/b/unsigned", [], b"data", payload="nonsense"), 400, "InvalidArgument")

    def test_wrong_secret_answers_canonical_request(self):
        e = self.assertS3Error(self.plain("GET", "/b", [("list-type", "2")], secret="wrong"), 403,
                               "SignatureDoesNotMatch")
        self.assertIn("GET\n/b\nlist-type=2\nhost:127.0.0.1:%d\n" % SRV.port, e.findtext("CanonicalRequest"))
        self.assertTrue(e.findtext("StringToSign").startswith("AWS4-HMAC-SHA256\n"))
        self.assertTrue(e.findtext("SignatureProvided"))
        self.assertTrue(e.findtext("CanonicalRequestBytes").startswith("47 45 54 0a"))

    def test_signature_covers_query_path_and_headers(self):
        # A request changed after signing: each part is covered.
        host = "127.0.0.1:%d" % SRV.port
        date = amz_now()
        hs = {"x-amz-date": date, "x-amz-content-sha256": s3_server.EMPTY_SHA256}
        auth = plain_sigv4("GET", host, "/b", [("list-type", "2"), ("prefix", "a")], hs, s3_server.EMPTY_SHA256,
                           AK, SK, "us-east-1", date)
        ok = SRV.raw("GET", "/b?list-type=2&prefix=a", None, dict(hs, Authorization=auth, Host=host))
        self.assertEqual(ok[0], 200, ok[2])
        self.assertS3Error(SRV.raw("GET", "/b?list-type=2&prefix=b", None, dict(hs, Authorization=auth, Host=host)),
                           403, "SignatureDoesNotMatch")
        self.assertS3Error(SRV.raw("GET", "/eu?list-type=2&prefix=a", None, dict(hs, Authorization=auth,
                                                                                Host=host)), 301, "PermanentRedirect")
        # '/' not encoded in a query value: botocore-style canonical form encodes it, so this signature is wrong.
        auth2 = "AWS4-HMAC-SHA256 Credential=%s/%s/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-" \
                "sha256;x-amz-date, Signature=%s" % (AK, date[:8], "0" * 64)
        self.assertS3Error(SRV.raw("GET", "/b?list-type=2", None, dict(hs, Authorization=auth2, Host=host)), 403,
                           "SignatureDoesNotMatch")

    def test_auth_failures(self):
        self.assertS3Error(SRV.raw("GET", "/b?list-type=2"), 403, "AccessDenied")
        e = self.assertS3Error(self.plain("GET", "/b", [], akid="AKIDUNKNOWN"), 403, "InvalidAccessKeyId")
        self.assertEqual(e.findtext("AWSAccessKeyId"), "AKIDUNKNOWN")
        e = self.assertS3Error(self.plain("GET", "/b", [], date=amz_now(-3600)), 403, "RequestTimeTooSkewed")
        self.assertEqual(e.findtext("MaxAllowedSkewMilliseconds"), "900000")
        self.assertEqual(self.plain("GET", "/b", [("list-type", "2")], date=amz_now(-600))[0], 200)
        host = "127.0.0.1:%d" % SRV.port
        self.assertS3Error(SRV.raw("GET", "/b", None, {"Authorization": "AWS4-HMAC-SHA256 Credential=x", "Host": host,
                                                       "x-amz-date": amz_now()}), 400, "AuthorizationHeaderMalformed")
        # x-amz-* headers that were not signed
        date = amz_now()
        hs = {"x-amz-date": date, "x-amz-content-sha256": s3_server.EMPTY_SHA256}
        auth = plain_sigv4("GET", host, "/b", [], hs, s3_server.EMPTY_SHA256, AK, SK, "us-east-1", date)
        e = self.assertS3Error(SRV.raw("GET", "/b", None, dict(hs, Authorization=auth, Host=host,
                                                               **{"x-amz-meta-late": "1"})), 403, "AccessDenied")
        self.assertEqual(e.findtext("HeadersNotSigned"), "x-amz-meta-late")
        # no x-amz-content-sha256
        hs = {"x-amz-date": date}
        auth = plain_sigv4("GET", host, "/b", [], hs, s3_server.EMPTY_SHA256, AK, SK, "us-east-1", date)
        self.assertS3Error(SRV.raw("GET", "/b", None, dict(hs, Authorization=auth, Host=host)), 400, "InvalidRequest")

    def test_session_tokens(self):
        self.assertEqual(Client(SRV, TK, TS, TT).request("GET", "/b", query="list-type=2")[0], 200)
        self.assertS3Error(Client(SRV, TK, TS).request("GET", "/b", query="list-type=2"), 403, "InvalidToken")
        self.assertS3Error(Client(SRV, TK, TS, "other").request("GET", "/b", query="list-type=2"), 403,
                           "InvalidToken")
        c = SRV.control("POST", "credentials", {"lifetime_s": 600})
        tmp = Client(SRV, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
        self.assertEqual(tmp.request("GET", "/b", query="list-type=2")[0], 200)
        SRV.control("POST", "credentials/expire", {"AccessKeyId": c["AccessKeyId"]})
        self.assertS3Error(tmp.request("GET", "/b", query="list-type=2"), 400, "ExpiredToken")

    def test_presigned_url(self):
        C.put("b", "presigned obj", b"presigned body")
        host = "127.0.0.1:%d" % SRV.port
        for expires, want in ((300, 200), (1, 403)):
            r = botocore.awsrequest.AWSRequest(method="GET", url="http://%s/b/presigned%%20obj" % host)
            botocore.auth.S3SigV4QueryAuth(C.creds, "s3", "us-east-1", expires=expires).add_auth(r)
            if want == 403:
                time.sleep(2.1)
            target = r.url.split(host, 1)[1]
            st, _, body = SRV.raw("GET", target, None, {"Host": host})
            self.assertEqual(st, want, body)
            if want == 200:
                self.assertEqual(body, b"presigned body")
                bad = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "1" * 64, target)
                self.assertS3Error(SRV.raw("GET", bad, None, {"Host": host}), 403, "SignatureDoesNotMatch")

    def test_virtual_hosted_style(self):
        for suffix in ("b.s3.localhost", "b.localhost"):
            host = "%s:%d" % (suffix, SRV.port)
            st, _, body = C.request("PUT", "/vh/" + suffix, b"virtual", host=host)
            self.assertEqual(st, 200, body)
            st, _, body = C.request("GET", "/vh/" + suffix, host=host)
            self.assertEqual((st, body), (200, b"virtual"))
            st, _, body = C.request("GET", "/", query="list-type=2&prefix=vh%2F", host=host)
            self.assertIn(b"<Key>vh/" + suffix.encode() + b"</Key>", body)
        self.assertEqual(C.get("b", "vh/b.localhost")[2], b"virtual")

    def test_aws_chunked_trailer(self):
        data = b"chunked-body-" * 100
        chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n" % (600, data[:600], len(data) - 600, data[600:])
        for trailer, want in ((crc_b64(data), 200), (crc_b64(b"x"), 400)):
            body = chunks + b"x-amz-checksum-crc32c:%s\r\n\r\n" % trailer.encode()
            host = "127.0.0.1:%d" % SRV.port
            date = amz_now()
            hs = {"x-amz-date": date, "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                  "content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                  "x-amz-trailer": "x-amz-checksum-crc32c"}
            auth = plain_sigv4("PUT", host, "/b/chunked", [], hs, hs["x-amz-content-sha256"], AK, SK, "us-east-1",
                               date)
            st, h, out = SRV.raw("PUT", "/b/chunked", body, dict(hs, Authorization=auth, Host=host))
            self.assertEqual(st, want, out)
        st, h, out = C.get("b", "chunked", {"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual(out, data)
        self.assertIsNone(h.get("Content-Encoding"))
        self.assertEqual(h["x-amz-checksum-crc32c"], crc_b64(data))

    def test_aws_chunked_signed(self):
        data = b"0123456789" * 700
        host = "127.0.0.1:%d" % SRV.port
        date = amz_now()
        hs = {"x-amz-date": date, "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
              "content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
        auth = plain_sigv4("PUT", host, "/b/signed-chunks", [], hs, hs["x-amz-content-sha256"], AK, SK, "us-east-1",
                           date)
        seed = auth.rsplit("Signature=", 1)[1]
        k = ("AWS4" + SK).encode()
        for m in (date[:8], "us-east-1", "s3", "aws4_request"):
            k = hmac.new(k, m.encode(), hashlib.sha256).digest()
        scope = "%s/us-east-1/s3/aws4_request" % date[:8]

        def body(tamper):
            prev, out = seed, b""
            for chunk in (data[:4096], data[4096:], b""):
                sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", date, scope, prev, s3_server.EMPTY_SHA256,
                                 hashlib.sha256(chunk).hexdigest()])
                prev = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
                if tamper and chunk:
                    chunk = chunk[:-1] + b"!"
                out += b"%x;chunk-signature=%s\r\n%s\r\n" % (len(chunk), prev.encode(), chunk)
            return out
        st, _, out = SRV.raw("PUT", "/b/signed-chunks", body(False), dict(hs, Authorization=auth, Host=host))
        self.assertEqual(st, 200, out)
        self.assertEqual(C.get("b", "signed-chunks")[2], data)
        self.assertS3Error(SRV.raw("PUT", "/b/signed-chunks", body(True), dict(hs, Authorization=auth, Host=host)),
                           403, "SignatureDoesNotMatch")


class TestObjects(S3Case):
    def test_put_get_head_metadata(self):
        data = b"hello, object\n" * 10
        st, h, _ = C.put("b", "obj/one", data, {"Content-Type": "text/plain", "x-amz-meta-sluice-source": "src 1",
                                                "Cache-Control": "no-cache", "Content-MD5": md5_b64(data),
                                                "x-amz-checksum-crc32c": crc_b64(data)})
        self.assertEqual(st, 200)
        self.assertEqual(h["ETag"], '"%s"' % hashlib.md5(data).hexdigest())
        self.assertEqual(h["x-amz-checksum-crc32c"], crc_b64(data))
        st, h, body = C.get("b", "obj/one")
        self.assertEqual((st, body), (200, data))
        self.assertEqual(h["Content-Type"], "text/plain")
        self.assertEqual(h["x-amz-meta-sluice-source"], "src 1")
        self.assertEqual(h["Cache-Control"], "no-cache")
        self.assertIsNone(h.get("x-amz-checksum-crc32c"))  # only when asked for
        self.assertTrue(h["x-amz-request-id"])
        st, h, body = C.request("HEAD", "/b/obj/one", headers={"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual((st, body, h["Content-Length"]), (200, b"", str(len(data))))
        self.assertEqual(h["x-amz-checksum-crc32c"], crc_b64(data))
        self.assertEqual(h["x-amz-checksum-type"], "FULL_OBJECT")
        self.assertS3Error(C.get("b", "obj/none"), 404, "NoSuchKey")
        st, _, body = C.request("HEAD", "/b/obj/none")
        self.assertEqual((st, body), (404, b""))
        self.assertS3Error(C.get("nobucket", "k"), 404, "NoSuchBucket")
        st, h, _ = C.put("b", "empty", b"")
        self.assertEqual(C.get("b", "empty")[:3:2], (200, b""))

    def test_digests_checked(self):
        data = b"digest me"
        self.assertS3Error(C.put("b", "d", data, {"Content-MD5": md5_b64(b"other")}), 400, "BadDigest")
        self.assertS3Error(C.put("b", "d", data, {"Content-MD5": "bm90LWEtZGlnZXN0"}), 400, "InvalidDigest")
        self.assertS3Error(C.put("b", "d", data, {"x-amz-checksum-crc32c": crc_b64(b"other")}), 400, "BadDigest")
        self.assertS3Error(C.put("b", "d", data, {"x-amz-checksum-crc32c": "nope"}), 400, "InvalidRequest")
        self.assertS3Error(C.put("b", "d", data, {"x-amz-checksum-crc32c": crc_b64(data),
                                                  "x-amz-checksum-sha256": base64.b64encode(
                                                      hashlib.sha256(data).digest()).decode()}), 400, "InvalidRequest")
        self.assertS3Error(C.get("b", "d"), 404, "NoSuchKey")  # nothing was stored
        sha1 = base64.b64encode(hashlib.sha1(data).digest()).decode()
        self.assertEqual(C.put("b", "d", data, {"x-amz-checksum-sha1": sha1})[0], 200)
        self.assertEqual(C.get("b", "d", {"x-amz-checksum-mode": "ENABLED"})[1]["x-amz-checksum-sha1"], sha1)
        self.assertS3Error(C.put("b", "x" * 1025, b""), 400, "KeyTooLongError")
        self.assertS3Error(C.put("b", "meta", b"", {"x-amz-meta-big": "x" * 3000}), 400, "MetadataTooLarge")

    def test_conditional_writes(self):
        self.assertEqual(C.put("b", "cond", b"1", {"If-None-Match": "*"})[0], 200)
        self.assertS3Error(C.put("b", "cond", b"2", {"If-None-Match": "*"}), 412, "PreconditionFailed")
        etag = C.get("b", "cond")[1]["ETag"]
        self.assertS3Error(C.put("b", "cond", b"3", {"If-Match": '"0123"'}), 412, "PreconditionFailed")
        self.assertEqual(C.put("b", "cond", b"4", {"If-Match": etag})[0], 200)
        self.assertEqual(C.get("b", "cond")[2], b"4")
        self.assertS3Error(C.put("b", "cond-missing", b"5", {"If-Match": etag}), 404, "NoSuchKey")

    def test_ranges(self):
        data = bytes(range(256)) * 4
        C.put("b", "range", data)
        for rng, status, want, cr in (("bytes=0-9", 206, data[:10], "bytes 0-9/1024"),
                                      ("bytes=1000-", 206, data[1000:], "bytes 1000-1023/1024"),
                                      ("bytes=-4", 206, data[-4:], "bytes 1020-1023/1024"),
                                      ("bytes=1020-5000", 206, data[1020:], "bytes 1020-1023/1024"),
                                      ("bytes=5-2", 200, data, None), ("lines=1-2", 200, data, None)):
            st, h, body = C.get("b", "range", {"Range": rng, "x-amz-checksum-mode": "ENABLED"})
            self.assertEqual((st, body, h.get("Content-Range")), (status, want, cr), rng)
            if status == 206:
                self.assertIsNone(h.get("x-amz-checksum-crc32c"))  # S3 gives no checksum for a range
        e = self.assertS3Error(C.get("b", "range", {"Range": "bytes=1024-"}), 416, "InvalidRange")
        self.assertEqual(e.findtext("ActualObjectSize"), "1024")

    def test_read_conditions(self):
        C.put("b", "rc", b"conditional")
        st, h, _ = C.get("b", "rc")
        etag, lm = h["ETag"], h["Last-Modified"]
        self.assertEqual(C.get("b", "rc", {"If-Match": etag})[0], 200)
        self.assertS3Error(C.get("b", "rc", {"If-Match": '"bad"'}), 412, "PreconditionFailed")
        st, h, body = C.get("b", "rc", {"If-None-Match": etag})
        self.assertEqual((st, body, h["ETag"]), (304, b"", etag))
        self.assertEqual(C.get("b", "rc", {"If-Modified-Since": lm})[0], 304)
        self.assertEqual(C.get("b", "rc", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})[0], 200)
        self.assertS3Error(C.get("b", "rc", {"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}), 412,
                           "PreconditionFailed")
        # If-Match true wins over If-Unmodified-Since false (RFC 7232, as S3 documents)
        self.assertEqual(C.get("b", "rc", {"If-Match": etag,
                                           "If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})[0], 200)

    def test_copy_object(self):
        data = b"copy source data"
        C.put("b", "src dir/a+b.txt", data, {"x-amz-meta-one": "1", "Content-Type": "text/x-src",
                                             "x-amz-checksum-crc32c": crc_b64(data)})
        src = "/b/" + quote("src dir/a+b.txt", safe="/")
        st, _, body = C.put("b", "copy/1", b"", {"x-amz-copy-source": src})
        self.assertEqual(st, 200, body)
        r = xml(body)
        self.assertEqual(r.tag, "CopyObjectResult")
        self.assertEqual(r.findtext("ETag"), '"%s"' % hashlib.md5(data).hexdigest())
        self.assertEqual(r.findtext("ChecksumCRC32C"), crc_b64(data))
        st, h, got = C.get("b", "copy/1")
        self.assertEqual((got, h["x-amz-meta-one"], h["Content-Type"]), (data, "1", "text/x-src"))
        st, _, body = C.put("b", "copy/2", b"", {"x-amz-copy-source": src, "x-amz-metadata-directive": "REPLACE",
                                                 "x-amz-meta-two": "2", "Content-Type": "text/plain"})
        h = C.get("b", "copy/2")[1]
        self.assertEqual((h.get("x-amz-meta-one"), h["x-amz-meta-two"], h["Content-Type"]), (None, "2", "text/plain"))
        self.assertS3Error(C.put("b", "copy/3", b"", {"x-amz-copy-source": src, "x-amz-copy-source-if-match": '"x"'}),
                           412, "PreconditionFailed")
        self.assertEqual(C.put("b", "copy/3", b"", {"x-amz-copy-source": src, "x-amz-copy-source-if-match":
                                                     '"%s"' % hashlib.md5(data).hexdigest()})[0], 200)
        self.assertS3Error(C.put("b", "copy/1", b"", {"x-amz-copy-source": "/b/copy/1"}), 400, "InvalidRequest")
        self.assertS3Error(C.put("b", "copy/4", b"", {"x-amz-copy-source": "/b/none"}), 404, "NoSuchKey")
        self.assertS3Error(C.put("b", "copy/4", b"", {"x-amz-copy-source": "/nob/none"}), 404, "NoSuchBucket")

    def test_delete_objects(self):
        b = self.fresh("del")
        SRV.control("POST", "seed", {"bucket": b, "count": 5, "name_format": "d/{:02d}"})
        self.assertEqual(C.request("DELETE", "/del/d/00")[0], 204)
        self.assertEqual(C.request("DELETE", "/del/d/00")[0], 204)  # absent: still 204
        doc = b"<Delete>%s</Delete>" % b"".join(b"<Object><Key>d/%02d</Key></Object>" % i for i in (1, 2, 9))
        self.assertS3Error(C.request("POST", "/del", doc, query="delete"), 400, "InvalidRequest")
        self.assertS3Error(C.request("POST", "/del", doc, {"Content-MD5": md5_b64(b"x")}, query="delete"), 400,
                           "BadDigest")
        st, _, body = C.request("POST", "/del", doc, {"Content-MD5": md5_b64(doc)}, query="delete")
        self.assertEqual(st, 200, body)
        r = xml(body)
        self.assertEqual([d.findtext("Key") for d in r.findall("Deleted")], ["d/01", "d/02", "d/09"])
        quiet = b"<Delete><Quiet>true</Quiet><Object><Key>d/03</Key></Object></Delete>"
        st, _, body = C.request("POST", "/del", quiet, {"x-amz-checksum-crc32c": crc_b64(quiet)}, query="delete")
        self.assertEqual((st, list(xml(body))), (200, []))
        self.assertEqual(C.list_all(b)[0], ["d/04"])
        many = b"<Delete>%s</Delete>" % (b"<Object><Key>k</Key></Object>" * 1001)
        self.assertS3Error(C.request("POST", "/del", many, {"Content-MD5": md5_b64(many)}, query="delete"), 400,
                           "MalformedXML")
        self.assertS3Error(C.request("POST", "/del", b"<Delete", {"Content-MD5": md5_b64(b"<Delete")},
                                     query="delete"), 400, "MalformedXML")

    def test_buckets_and_regions(self):
        st, h, body = C.request("HEAD", "/b")
        self.assertEqual((st, h["x-amz-bucket-region"]), (200, "us-east-1"))
        st, h, body = C.request("HEAD", "/eu")
        self.assertEqual((st, h["x-amz-bucket-region"], body), (301, "eu-west-1", b""))
        e = self.assertS3Error(C.request("GET", "/eu", query="list-type=2"), 301, "PermanentRedirect")
        self.assertEqual(e.findtext("Bucket"), "eu")
        eu = Client(SRV, region="eu-west-1")
        self.assertEqual(eu.request("GET", "/eu", query="list-type=2")[0], 200)
        self.assertEqual(xml(C.request("GET", "/eu", query="location")[2]).text, "eu-west-1")
        self.assertIsNone(xml(C.request("GET", "/b", query="location")[2]).text)
        SRV.control("POST", "config", {"wrong_region": "malformed"})
        try:
            e = self.assertS3Error(C.request("GET", "/eu", query="list-type=2"), 400, "AuthorizationHeaderMalformed")
            self.assertEqual(e.findtext("Region"), "eu-west-1")
        finally:
            SRV.control("POST", "config", {"wrong_region": "redirect"})
        self.assertEqual(C.request("HEAD", "/nob")[0], 404)
        self.assertEqual(C.request("PUT", "/newbucket")[0], 200)
        self.assertS3Error(C.request("PUT", "/newbucket"), 409, "BucketAlreadyOwnedByYou")
        names = [e.findtext("Name") for e in xml(C.request("GET", "/")[2]).iter("Bucket")]
        self.assertIn("newbucket", names)
        self.assertEqual(C.request("DELETE", "/newbucket")[0], 204)


class TestListing(S3Case):
    @classmethod
    def setUpClass(cls):
        SRV.control("POST", "reset", {"buckets": ["l"]})
        cls.names = ["a", "a/b/c", "a/b/d", "a/e", "b b", "c+d", "z\uFFFD", "z\U0001F600", "zz/x"] + \
            ["many/%04d" % i for i in range(2500)]
        SRV.control("POST", "seed", {"bucket": "l", "objects": [{"name": n, "data": n} for n in cls.names[:9]]})
        SRV.control("POST", "seed", {"bucket": "l", "count": 2500, "name_format": "many/{:04d}", "size": 3})

    def test_utf8_byte_order_all_pages(self):
        keys, _, pages = C.list_all("l", max_keys=7)
        self.assertEqual(keys, sorted(self.names, key=lambda s: s.encode("utf-8")))
        self.assertEqual(pages, -(-len(self.names) // 7))
        self.assertLess(keys.index("z\uFFFD"), keys.index("z\U0001F600"))

    def test_page_shape_and_max_keys_cap(self):
        r = C.list("l", max_keys=5000)
        self.assertEqual((r.findtext("MaxKeys"), r.findtext("KeyCount"), r.findtext("IsTruncated")),
                         ("1000", "1000", "true"))
        self.assertTrue(r.findtext("NextContinuationToken"))
        self.assertEqual(r.findtext("Name"), "l")
        c = r.find("Contents")
        self.assertEqual(c.findtext("Key"), "a")
        self.assertEqual(c.findtext("ETag"), '"%s"' % hashlib.md5(b"a").hexdigest())
        self.assertEqual((c.findtext("Size"), c.findtext("StorageClass"), c.findtext("ChecksumAlgorithm")),
                         ("1", "STANDARD", "CRC32C"))
        self.assertTrue(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", c.findtext("LastModified")))
        self.assertIsNone(c.find("Owner"))
        self.assertIsNotNone(C.list("l", max_keys=1, fetch_owner="true").find("Contents/Owner/ID"))
        st, _, body = C.request("GET", "/l", query="list-type=2&max-keys=-1")
        self.assertS3Error((st, None, body), 400, "InvalidArgument")
        self.assertS3Error(C.request("GET", "/l", query="list-type=2&continuation-token=bogus"), 400,
                           "InvalidArgument")
        r = C.list("l", max_keys=0)
        self.assertEqual((r.findtext("KeyCount"), r.findtext("IsTruncated")), ("0", "false"))

    def test_delimiter_and_prefixes(self):
        r = C.list("l", delimiter="/")
        self.assertEqual([p.findtext("Prefix") for p in r.findall("CommonPrefixes")], ["a/", "many/", "zz/"])
        self.assertEqual([c.findtext("Key") for c in r.findall("Contents")],
                         ["a", "b b", "c+d", "z\uFFFD", "z\U0001F600"])
        self.assertEqual(r.findtext("KeyCount"), "8")
        keys, prefixes, _ = C.list_all("l", prefix="a/", delimiter="/", max_keys=1)
        self.assertEqual((keys, prefixes), (["a/e"], ["a/b/"]))
        keys, prefixes, pages = C.list_all("l", delimiter="/", max_keys=2)
        self.assertEqual((prefixes, pages), (["a/", "many/", "zz/"], 4))

    def test_start_after_and_encoding(self):
        keys, _, _ = C.list_all("l", start_after="many/2497")
        # UTF-8 bytes: "zz" < "z\uFFFD" < "z\U0001F600"
        self.assertEqual(keys, ["many/2498", "many/2499", "zz/x", "z\uFFFD", "z\U0001F600"])
        r = C.list("l", prefix="b", encoding_type="url")
        self.assertEqual((r.findtext("Contents/Key"), r.findtext("EncodingType")), ("b+b", "url"))
        r = C.list("l", prefix="c", encoding_type="url")
        self.assertEqual(r.findtext("Contents/Key"), "c%2Bd")
        r = C.list("l", prefix="z", encoding_type="url", delimiter="/")
        self.assertEqual([c.findtext("Key") for c in r.findall("Contents")], ["z%EF%BF%BD", "z%F0%9F%98%80"])

    def test_list_v1(self):
        status, _, body = C.request("GET", "/l", query="prefix=a%2F&max-keys=2")
        r = xml(body)
        self.assertEqual([c.findtext("Key") for c in r.findall("Contents")], ["a/b/c", "a/b/d"])
        self.assertEqual((r.findtext("IsTruncated"), r.findtext("NextMarker")), ("true", None))
        r = xml(C.request("GET", "/l", query="prefix=a%2F&marker=a%2Fb%2Fd")[2])
        self.assertEqual([c.findtext("Key") for c in r.findall("Contents")], ["a/e"])
        r = xml(C.request("GET", "/l", query="delimiter=%2F&max-keys=1")[2])
        self.assertEqual(r.findtext("NextMarker"), "a")


class TestMultipart(S3Case):
    def create(self, key, headers=None):
        st, h, body = C.request("POST", "/b/" + quote(key), b"", headers, query="uploads")
        self.assertEqual(st, 200, body)
        r = xml(body)
        self.assertEqual((r.findtext("Bucket"), r.findtext("Key")), ("b", key))
        return r.findtext("UploadId"), h

    def part(self, key, uid, n, data, checksum=True):
        hdrs = {"x-amz-checksum-crc32c": crc_b64(data)} if checksum else {}
        return C.request("PUT", "/b/" + quote(key), data, hdrs, query=qs(partNumber=n, uploadId=uid))

    def complete(self, key, uid, parts, headers=None):
        doc = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
            "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag>%s</Part>" % (
                n, e, "<ChecksumCRC32C>%s</ChecksumCRC32C>" % c if c else "") for n, e, c in parts)
        return C.request("POST", "/b/" + quote(key), doc.encode(), headers, query=qs(uploadId=uid))

    def test_composite_upload(self):
        pieces = [os.urandom(MIN_PART), os.urandom(MIN_PART + 5), b"last"]
        uid, h = self.create("mp/one", {"x-amz-checksum-algorithm": "CRC32C", "x-amz-meta-m": "v",
                                        "Content-Type": "text/x-mp"})
        self.assertEqual(h["x-amz-checksum-algorithm"], "CRC32C")
        parts = []
        for i, p in enumerate(pieces, 1):
            st, h, body = self.part("mp/one", uid, i, p)
            self.assertEqual(st, 200, body)
            self.assertEqual(h["ETag"], '"%s"' % hashlib.md5(p).hexdigest())
            self.assertEqual(h["x-amz-checksum-crc32c"], crc_b64(p))
            parts.append((i, h["ETag"], crc_b64(p)))
        r = xml(C.request("GET", "/b/mp/one", query=qs(uploadId=uid, max_parts=2))[2])
        self.assertEqual([p.findtext("PartNumber") for p in r.findall("Part")], ["1", "2"])
        self.assertEqual((r.findtext("IsTruncated"), r.findtext("NextPartNumberMarker")), ("true", "2"))
        self.assertEqual(r.find("Part").findtext("ChecksumCRC32C"), crc_b64(pieces[0]))
        r = xml(C.request("GET", "/b", query="uploads&prefix=mp%2F")[2])
        self.assertIn(uid, [u.findtext("UploadId") for u in r.findall("Upload")])
        st, _, body = self.complete("mp/one", uid, parts)
        self.assertEqual(st, 200, body)
        r = xml(body)
        want_etag = '"%s-3"' % hashlib.md5(b"".join(hashlib.md5(p).digest() for p in pieces)).hexdigest()
        want_sum = "%s-3" % base64.b64encode(s3_server.crc32c(b"".join(
            s3_server.crc32c(p).to_bytes(4, "big") for p in pieces)).to_bytes(4, "big")).decode()
        self.assertEqual((r.tag, r.findtext("ETag"), r.findtext("ChecksumCRC32C")),
                         ("CompleteMultipartUploadResult", want_etag, want_sum))
        st, h, body = C.get("b", "mp/one", {"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual((body, h["ETag"], h["x-amz-checksum-crc32c"], h["x-amz-checksum-type"]),
                         (b"".join(pieces), want_etag, want_sum, "COMPOSITE"))
        self.assertEqual((h["x-amz-meta-m"], h["Content-Type"], h.get("x-amz-mp-parts-count")),
                         ("v", "text/x-mp", None))
        st, h, body = C.get("b", "mp/one", {"x-amz-checksum-mode": "ENABLED"}, query="partNumber=2")
        self.assertEqual((st, body, h["x-amz-checksum-crc32c"]), (206, pieces[1], crc_b64(pieces[1])))
        self.assertEqual(h["x-amz-mp-parts-count"], "3")
        self.assertEqual(h["Content-Range"], "bytes %d-%d/%d" % (MIN_PART, 2 * MIN_PART + 4, 2 * MIN_PART + 9))
        self.assertS3Error(C.request("GET", "/b/mp/one", query=qs(uploadId=uid)), 404, "NoSuchUpload")
        self.assertEqual(C.list("b", prefix="mp/one").findtext("Contents/ETag"), want_etag)

    def test_full_object_checksum(self):
        pieces = [b"a" * MIN_PART, b"tail"]
        uid, _ = self.create("mp/full", {"x-amz-checksum-algorithm": "CRC32C", "x-amz-checksum-type": "FULL_OBJECT"})
        parts = [(i, self.part("mp/full", uid, i, p)[1]["ETag"], None) for i, p in enumerate(pieces, 1)]
        self.assertS3Error(self.complete("mp/full", uid, parts, {"x-amz-checksum-crc32c": crc_b64(b"no")}), 400,
                           "BadDigest")
        st, _, body = self.complete("mp/full", uid, parts, {"x-amz-checksum-crc32c": crc_b64(b"".join(pieces))})
        self.assertEqual(st, 200, body)
        self.assertEqual(xml(body).findtext("ChecksumCRC32C"), crc_b64(b"".join(pieces)))

    def test_complete_errors(self):
        uid, _ = self.create("mp/err", {"x-amz-checksum-algorithm": "CRC32C"})
        self.assertS3Error(self.part("mp/err", uid, 1, b"x", checksum=False), 400, "InvalidRequest")
        self.assertS3Error(self.part("mp/err", uid, 0, b"x"), 400, "InvalidArgument")
        bad = C.request("PUT", "/b/mp/err", b"x", {"x-amz-checksum-crc32c": crc_b64(b"y")},
                        query=qs(partNumber=1, uploadId=uid))
        self.assertS3Error(bad, 400, "BadDigest")
        small = self.part("mp/err", uid, 1, b"small")[1]["ETag"]
        big = self.part("mp/err", uid, 2, b"B" * MIN_PART)[1]["ETag"]
        self.assertS3Error(self.complete("mp/err", uid, [(2, big, None), (1, small, None)]), 400, "InvalidPartOrder")
        self.assertS3Error(self.complete("mp/err", uid, [(1, '"00"', None)]), 400, "InvalidPart")
        self.assertS3Error(self.complete("mp/err", uid, [(1, small, crc_b64(b"zz"))]), 400, "InvalidPart")
        self.assertS3Error(self.complete("mp/err", uid, [(3, small, None)]), 400, "InvalidPart")
        self.assertS3Error(self.complete("mp/err", uid, [(1, small, None), (2, big, None)]), 400, "EntityTooSmall")
        self.assertS3Error(self.complete("mp/err", uid, []), 400, "MalformedXML")
        self.assertEqual(self.complete("mp/err", uid, [(2, big, None)])[0], 200)
        self.assertS3Error(self.complete("mp/err", uid, [(2, big, None)]), 404, "NoSuchUpload")
        self.assertS3Error(self.part("mp/err", "nope", 1, b"x"), 404, "NoSuchUpload")

    def test_abort_and_conditional_complete(self):
        uid, _ = self.create("mp/abort")
        self.part("mp/abort", uid, 1, b"abort me", checksum=False)
        self.assertEqual(C.request("DELETE", "/b/mp/abort", query=qs(uploadId=uid))[0], 204)
        self.assertS3Error(C.request("DELETE", "/b/mp/abort", query=qs(uploadId=uid)), 404, "NoSuchUpload")
        self.assertS3Error(C.get("b", "mp/abort"), 404, "NoSuchKey")
        C.put("b", "mp/exists", b"already")
        uid, _ = self.create("mp/exists")
        e = self.part("mp/exists", uid, 1, b"new", checksum=False)[1]["ETag"]
        self.assertS3Error(self.complete("mp/exists", uid, [(1, e, None)], {"If-None-Match": "*"}), 412,
                           "PreconditionFailed")
        self.assertEqual(C.get("b", "mp/exists")[2], b"already")

    def test_upload_part_copy(self):
        src = bytes(range(256)) * 8
        C.put("b", "mp/src", src)
        uid, _ = self.create("mp/pc", {"x-amz-checksum-algorithm": "CRC32C"})
        st, _, body = C.request("PUT", "/b/mp/pc", b"", {"x-amz-copy-source": "b/mp%2Fsrc",
                                                          "x-amz-copy-source-range": "bytes=0-1023"},
                                query=qs(partNumber=1, uploadId=uid))
        self.assertEqual(st, 200, body)
        r = xml(body)
        self.assertEqual((r.tag, r.findtext("ETag"), r.findtext("ChecksumCRC32C")),
                         ("CopyPartResult", '"%s"' % hashlib.md5(src[:1024]).hexdigest(), crc_b64(src[:1024])))
        e1 = r.findtext("ETag")
        self.assertS3Error(C.request("PUT", "/b/mp/pc", b"", {"x-amz-copy-source": "b/mp/src",
                                                              "x-amz-copy-source-range": "bytes=0-4096"},
                                     query=qs(partNumber=2, uploadId=uid)), 400, "InvalidArgument")
        r = xml(C.request("PUT", "/b/mp/pc", b"", {"x-amz-copy-source": "/b/mp/src",
                                                   "x-amz-copy-source-range": "bytes=1024-2047"},
                          query=qs(partNumber=2, uploadId=uid))[2])
        self.assertEqual(self.complete("mp/pc", uid, [(1, e1, None), (2, r.findtext("ETag"), None)])[0], 200)
        self.assertEqual(C.get("b", "mp/pc")[2], src)


class TestFaults(S3Case):
    def with_test(self, instructions):
        return {"x-retry-test-id": SRV.retry_test(instructions)}

    def test_return_codes(self):
        C.put("b", "f", b"fault data " * 100)
        for instr, status, code in (("return-503", 503, "ServiceUnavailable"), ("return-500", 500, "InternalError"),
                                    ("return-503-slowdown", 503, "SlowDown"),
                                    ("return-400-expired-token", 400, "ExpiredToken"),
                                    ("return-400-request-timeout", 400, "RequestTimeout"),
                                    ("return-500-internal", 500, "InternalError"), ("return-403", 403, "AccessDenied")):
            h = self.with_test({"s3.GetObject": [instr]})
            self.assertS3Error(C.get("b", "f", h), status, code)
            self.assertEqual(C.get("b", "f", h)[0], 200)  # consumed
        h = self.with_test({"s3.PutObject": ["pass", "return-503"]})
        self.assertEqual(C.put("b", "f2", b"1", h)[0], 200)
        self.assertEqual(C.put("b", "f2", b"2", h)[0], 503)
        self.assertEqual(C.get("b", "f2")[2], b"1")  # a faulted request does nothing
        self.assertS3Error(C.get("b", "f", {"x-retry-test-id": "nope"}), 400, "InvalidRequest")

    def test_reset_broken_stall_corrupt(self):
        data = os.urandom(64 * 1024)
        C.put("b", "g", data)
        h = self.with_test({"s3.GetObject": ["return-reset-connection"]})
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            C.get("b", "g", h)
        h = self.with_test({"s3.GetObject": ["return-broken-stream-after-16K"]})
        with self.assertRaises(http.client.IncompleteRead):
            C.get("b", "g", h)
        h = self.with_test({"s3.GetObject": ["return-corrupted-data"]})
        st, hdrs, body = C.get("b", "g", h)
        self.assertEqual((st, len(body), hdrs["ETag"]), (200, len(data), '"%s"' % hashlib.md5(data).hexdigest()))
        self.assertNotEqual(body, data)
        h = self.with_test({"s3.GetObject": ["stall-for-0.5s-after-8K"]})
        t0 = time.monotonic()
        self.assertEqual(C.get("b", "g", h)[2], data)
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        h = self.with_test({"s3.PutObject": ["return-corrupted-data"]})
        self.assertS3Error(C.put("b", "g2", data, dict(h, **{"Content-MD5": md5_b64(data)})), 400, "BadDigest")

    def test_error_200_and_truncate(self):
        uid = xml(C.request("POST", "/b/e200", b"", query="uploads")[2]).findtext("UploadId")
        e = C.request("PUT", "/b/e200", b"part", query=qs(partNumber=1, uploadId=uid))[1]["ETag"]
        doc = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part>" \
              b"</CompleteMultipartUpload>" % e.encode()
        h = self.with_test({"s3.CompleteMultipartUpload": ["return-200-error"]})
        st, _, body = C.request("POST", "/b/e200", doc, h, query=qs(uploadId=uid))
        self.assertEqual(st, 200)
        self.assertEqual((xml(body).tag, xml(body).findtext("Code")), ("Error", "InternalError"))
        self.assertS3Error(C.get("b", "e200"), 404, "NoSuchKey")
        self.assertEqual(C.request("POST", "/b/e200", doc, h, query=qs(uploadId=uid))[0], 200)
        self.assertEqual(C.get("b", "e200")[2], b"part")
        h = self.with_test({"s3.PutObject": ["truncate-upload"]})
        self.assertEqual(C.put("b", "trunc", b"0123456789", h)[0], 200)
        self.assertEqual(C.get("b", "trunc")[2], b"01234")
        st, _, body = SRV.raw("POST", "/_sluice/retry_test", json.dumps(
            {"instructions": {"s3.GetObject": ["return-200-error"]}}).encode())
        self.assertEqual(st, 400)

    def test_late_execution_and_global(self):
        h = self.with_test({"s3.PutObject": ["reset-then-execute-after-0.3s"]})
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            C.put("b", "late", b"late", h)
        deadline = time.monotonic() + 20  # generous: a loaded machine
        while C.get("b", "late")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(C.get("b", "late")[2], b"late")
        tid = SRV.retry_test({"s3.HeadObject": ["return-503"]}, glob=True)
        self.assertEqual(C.request("HEAD", "/b/late")[0], 503)
        self.assertEqual(C.request("HEAD", "/b/late")[0], 200)
        self.assertTrue(SRV.control("GET", "retry_test/" + tid)["completed"])
        self.assertEqual(SRV.raw("DELETE", "/_sluice/retry_test/" + tid)[0], 200)
        self.assertEqual(C.request("HEAD", "/b/late")[0], 200)

    def test_broken_stream_executes_and_echo(self):
        # PutObject's answer has no body: half of its header block is sent, then the connection is closed
        # (http.client would take a header block cut at EOF for a whole one, so the bytes are read raw).
        h = self.with_test({"s3.PutObject": ["return-broken-stream"]})
        host = "127.0.0.1:%d" % SRV.port
        r = botocore.awsrequest.AWSRequest(method="PUT", url="http://%s/b/broken-put" % host, data=b"stored anyway",
                                           headers=h)
        botocore.auth.S3SigV4Auth(C.creds, "s3", "us-east-1").add_auth(r)
        head = "PUT /b/broken-put HTTP/1.1\r\nHost: %s\r\nContent-Length: 13\r\n%s\r\n" % (
            host, "".join("%s: %s\r\n" % kv for kv in r.headers.items()))
        with socket.create_connection(("127.0.0.1", SRV.port), timeout=30) as sock:
            sock.sendall(head.encode() + b"stored anyway")
            got = b""
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                got += piece
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got)
        self.assertNotIn(b"\r\n\r\n", got)
        self.assertEqual(C.get("b", "broken-put")[2], b"stored anyway")
        h = self.with_test({"s3.ListObjectsV2": ["return-500-echo-headers", "return-503-after-64K"]})
        e = self.assertS3Error(C.request("GET", "/b", b"", h, query="list-type=2"), 500, "InternalError")
        self.assertIn("Authorization: AWS4-HMAC-SHA256 Credential=%s/" % AK, e.findtext("Message"))
        self.assertS3Error(C.request("GET", "/b", b"", h, query="list-type=2"), 503, "ServiceUnavailable")

    def test_credential_endpoint_faults(self):
        # Credential endpoints are asked by SDK code that sends no x-retry-test-id: a global retry test.
        tid = SRV.retry_test({"imds.credentials": ["return-500"], "container.credentials": ["return-reset-connection"],
                              "sts.AssumeRoleWithWebIdentity": ["return-503"]}, glob=True)
        try:
            path = "/latest/meta-data/iam/security-credentials/"
            self.assertEqual(SRV.raw("GET", path, port=SRV.meta_port)[0], 500)
            self.assertEqual(SRV.raw("GET", path, port=SRV.meta_port)[0], 200)
            with self.assertRaises((ConnectionError, http.client.HTTPException)):
                SRV.raw("GET", "/container/c", None, {"Authorization": CONTAINER_TOKEN}, port=SRV.meta_port)
            self.assertEqual(SRV.raw("GET", "/container/c", None, {"Authorization": CONTAINER_TOKEN},
                                     port=SRV.meta_port)[0], 200)
            self.assertEqual(SRV.raw("POST", "/", b"Action=AssumeRoleWithWebIdentity", port=SRV.meta_port)[0], 503)
            self.assertTrue(SRV.control("GET", "retry_test/" + tid)["completed"])
        finally:
            SRV.raw("DELETE", "/_sluice/retry_test/" + tid)

    def test_outage(self):
        SRV.control("POST", "config", {"outage_s": 30, "outage_status": 503})
        try:
            self.assertS3Error(C.get("b", "f"), 503, "ServiceUnavailable")
            SRV.control("POST", "config", {"outage_status": 0})
            with self.assertRaises((ConnectionError, http.client.HTTPException)):
                C.get("b", "f")
        finally:
            SRV.control("POST", "config", {"outage_s": 0, "outage_status": 0})
        self.assertNotEqual(C.get("b", "f")[0], 503)


class TestModes(S3Case):
    def setUp(self):
        self.b = self.fresh("m")
        SRV.control("POST", "seed", {"bucket": "m", "objects": [{"name": n, "data": n} for n in (
            "a", "b", "c", "d", "z\uFFFD", "z\U0001F600")] + [{"name": "other/x", "data": "x"}]})

    def tearDown(self):
        SRV.control("POST", "config", {"bucket_modes": {"m": []}})

    def modes(self, *m):
        SRV.control("POST", "config", {"bucket_modes": {"m": list(m)}})

    def test_list_modes(self):
        self.modes("utf16-order")
        self.assertEqual(C.list_all("m", prefix="z")[0], ["z\U0001F600", "z\uFFFD"])
        self.modes("page-size-2")
        keys, _, pages = C.list_all("m")
        self.assertEqual((len(keys), pages), (7, 4))
        self.modes("page-size-2", "repeat-last")
        r1 = C.list("m")
        r2 = C.list("m", continuation_token=r1.findtext("NextContinuationToken"))
        self.assertEqual([c.findtext("Key") for c in r2.findall("Contents")], ["b", "c"])
        self.modes("ignore-prefix")
        self.assertIn("other/x", C.list_all("m", prefix="a")[0])
        self.modes("reverse-pages", "page-size-3")
        self.assertEqual([c.findtext("Key") for c in C.list("m").findall("Contents")], ["c", "b", "a"])
        self.modes("token-cycle")
        r = C.list("m")
        t1 = r.findtext("NextContinuationToken")
        t2 = C.list("m", continuation_token=t1).findtext("NextContinuationToken")
        t3 = C.list("m", continuation_token=t2).findtext("NextContinuationToken")
        self.assertEqual((t3, r.findtext("IsTruncated")), (t1, "true"))
        self.assertNotEqual(t1, t2)

    def test_object_modes(self):
        data = b"0123456789" * 10
        C.put("m", "o", data, {"x-amz-checksum-crc32c": crc_b64(data)})
        self.modes("no-checksum", "no-etag-md5", "ignore-range")
        st, h, body = C.get("m", "o", {"Range": "bytes=0-1", "x-amz-checksum-mode": "ENABLED"})
        self.assertEqual((st, body), (200, data))
        self.assertIsNone(h.get("x-amz-checksum-crc32c"))
        self.assertNotEqual(h["ETag"], '"%s"' % hashlib.md5(data).hexdigest())
        self.assertEqual(C.get("m", "o", {"If-Match": h["ETag"]})[0], 200)
        c = C.list("m", prefix="o").find("Contents")
        self.assertEqual((c.findtext("ETag"), c.find("ChecksumAlgorithm")), (h["ETag"], None))
        st, h, body = C.request("POST", "/m/mp", b"", {"x-amz-checksum-algorithm": "CRC32C"}, query="uploads")
        self.assertIsNone(h.get("x-amz-checksum-algorithm"))
        uid = xml(body).findtext("UploadId")
        st, h, body = C.request("PUT", "/m/mp", b"p", {"x-amz-checksum-crc32c": crc_b64(b"p")},
                                query=qs(partNumber=1, uploadId=uid))
        self.assertEqual((st, h.get("x-amz-checksum-crc32c")), (200, None))
        self.assertNotIn(b"Checksum", C.request("GET", "/m/mp", query=qs(uploadId=uid))[2])
        self.modes("short-body")
        st, h, body = C.get("m", "o")
        self.assertEqual((body, h["Content-Length"]), (data[:50], "50"))

    def test_default_crc64nvme(self):
        self.assertEqual(s3_server.crc64nvme(b"123456789"), 0xAE8B14860A799888)  # the CRC-64/NVME check value

        def crc64(data):
            return base64.b64encode(s3_server.crc64nvme(data).to_bytes(8, "big")).decode()
        self.assertS3Error(C.put("m", "c64", b"abc", {"x-amz-checksum-crc64nvme": crc64(b"abd")}), 400, "BadDigest")
        self.assertEqual(C.put("m", "c64", b"abc", {"x-amz-checksum-crc64nvme": crc64(b"abc")})[0], 200)
        self.assertEqual(C.get("m", "c64", {"x-amz-checksum-mode": "ENABLED"})[1]["x-amz-checksum-crc64nvme"],
                         crc64(b"abc"))
        C.put("m", "plain", b"no checksum given")
        self.assertIsNone(C.get("m", "plain", {"x-amz-checksum-mode": "ENABLED"})[1].get("x-amz-checksum-crc64nvme"))
        self.modes("default-crc64nvme")
        st, h, _ = C.put("m", "plain", b"no checksum given")
        self.assertEqual(h["x-amz-checksum-crc64nvme"], crc64(b"no checksum given"))
        h = C.get("m", "plain", {"x-amz-checksum-mode": "ENABLED"})[1]
        self.assertEqual((h["x-amz-checksum-crc64nvme"], h["x-amz-checksum-type"], h.get("x-amz-checksum-crc32c")),
                         (crc64(b"no checksum given"), "FULL_OBJECT", None))
        self.assertEqual(C.list("m", prefix="plain").findtext("Contents/ChecksumAlgorithm"), "CRC64NVME")
        uid = xml(C.request("POST", "/m/mp64", b"", query="uploads")[2]).findtext("UploadId")
        parts = [b"x" * MIN_PART, b"end"]
        etags = [C.request("PUT", "/m/mp64", p, query=qs(partNumber=i, uploadId=uid))[1]["ETag"]
                 for i, p in enumerate(parts, 1)]
        doc = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
            "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (i, e) for i, e in enumerate(etags, 1))
        r = xml(C.request("POST", "/m/mp64", doc.encode(), query=qs(uploadId=uid))[2])
        self.assertEqual((r.findtext("ChecksumCRC64NVME"), r.findtext("ChecksumType")),
                         (crc64(b"".join(parts)), "FULL_OBJECT"))

    def test_write_modes(self):
        self.modes("checksum-required")
        self.assertS3Error(C.put("m", "w", b"w"), 400, "InvalidRequest")
        self.assertEqual(C.put("m", "w", b"w", {"x-amz-checksum-crc32c": crc_b64(b"w")})[0], 200)
        self.assertS3Error(C.request("POST", "/m/mpw", b"", query="uploads"), 400, "InvalidRequest")
        self.modes("delete-errors")
        doc = b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object></Delete>"
        r = xml(C.request("POST", "/m", doc, {"Content-MD5": md5_b64(doc)}, query="delete")[2])
        self.assertEqual(([d.findtext("Key") for d in r.findall("Deleted")],
                          [(e.findtext("Key"), e.findtext("Code")) for e in r.findall("Error")]),
                         (["a"], [("b", "InternalError")]))
        self.assertEqual(C.get("m", "b")[2], b"b")


class TestCredentials(S3Case):
    def meta(self, method, path, body=None, headers=None):
        return SRV.raw(method, path, body, headers, port=SRV.meta_port)

    def sts(self, token=WEB_TOKEN, role=ROLE_ARN, extra=""):
        form = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s&RoleSessionName=sluice-test" \
               "&WebIdentityToken=%s%s" % (enc(role), enc(token), extra)
        return self.meta("POST", "/", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"})

    def use(self, akid, secret, token):
        return Client(SRV, akid, secret, token).request("GET", "/b", query="list-type=2&max-keys=1")

    def test_sts(self):
        SRV.control("POST", "stats/reset")
        st, _, body = self.sts()
        self.assertEqual(st, 200, body)
        r = xml(body.replace(b'xmlns="https://sts.amazonaws.com/doc/2011-06-15/"', b""))
        c = r.find("AssumeRoleWithWebIdentityResult/Credentials")
        self.assertTrue(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", c.findtext("Expiration")))
        self.assertEqual(self.use(c.findtext("AccessKeyId"), c.findtext("SecretAccessKey"),
                                  c.findtext("SessionToken"))[0], 200)
        self.assertIn(b"<Code>InvalidIdentityToken</Code>", self.sts(token="wrong")[2])
        self.assertEqual(self.sts(role="arn:aws:iam::1:role/other")[0], 403)
        self.assertIn(b"<Code>ValidationError</Code>", self.sts(extra="&DurationSeconds=10")[2])
        st, _, body = self.meta("GET", "/?" + "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s"
                                "&RoleSessionName=s&WebIdentityToken=%s" % (enc(ROLE_ARN), enc(WEB_TOKEN)))
        self.assertEqual(st, 400)  # RoleSessionName too short
        self.assertEqual(SRV.stats()["credentials_issued"]["sts"], 1)
        self.assertEqual(SRV.stats()["requests"]["sts.AssumeRoleWithWebIdentity"], 5)

    def test_imds(self):
        SRV.control("POST", "stats/reset")
        self.assertEqual(self.meta("PUT", "/latest/api/token")[0], 400)
        self.assertEqual(self.meta("PUT", "/latest/api/token", b"", {"X-aws-ec2-metadata-token-ttl-seconds": "60",
                                                                     "X-Forwarded-For": "1.2.3.4"})[0], 403)
        st, h, tok = self.meta("PUT", "/latest/api/token", b"", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        self.assertEqual((st, h["X-aws-ec2-metadata-token-ttl-seconds"]), (200, "60"))
        th = {"X-aws-ec2-metadata-token": tok.decode()}
        st, _, role = self.meta("GET", "/latest/meta-data/iam/security-credentials/", None, th)
        self.assertEqual((st, role), (200, b"sluice-test-role"))
        st, _, body = self.meta("GET", "/latest/meta-data/iam/security-credentials/sluice-test-role", None, th)
        c = json.loads(body)
        self.assertEqual((c["Code"], c["Type"]), ("Success", "AWS-HMAC"))
        self.assertEqual(self.use(c["AccessKeyId"], c["SecretAccessKey"], c["Token"])[0], 200)
        self.assertEqual(self.meta("GET", "/latest/meta-data/placement/region", None, th)[2], b"us-east-1")
        self.assertEqual(self.meta("GET", "/latest/meta-data/iam/security-credentials/", None,
                                   {"X-aws-ec2-metadata-token": "bogus"})[0], 401)
        self.assertEqual(self.meta("GET", "/latest/meta-data/iam/security-credentials/")[0], 200)  # IMDSv1
        SRV.control("POST", "config", {"imdsv2_required": True})
        try:
            self.assertEqual(self.meta("GET", "/latest/meta-data/iam/security-credentials/")[0], 401)
        finally:
            SRV.control("POST", "config", {"imdsv2_required": False})
        s = SRV.stats()
        self.assertEqual((s["credentials_issued"]["imds"], s["requests"]["imds.token"]), (1, 3))

    def test_container_and_expiry(self):
        SRV.control("POST", "stats/reset")
        self.assertEqual(self.meta("GET", "/container/creds")[0], 401)
        self.assertEqual(self.meta("GET", "/container/creds", None, {"Authorization": "wrong"})[0], 401)
        st, _, body = self.meta("GET", "/container/creds", None, {"Authorization": CONTAINER_TOKEN})
        self.assertEqual(st, 200, body)
        c = json.loads(body)
        self.assertEqual(self.use(c["AccessKeyId"], c["SecretAccessKey"], c["Token"])[0], 200)
        self.assertEqual(SRV.stats()["credentials_issued"]["container"], 1)
        # Credentials of a 1 s lifetime, used after 1.2 s (only a lower bound on time: no race with a slow machine).
        SRV.control("POST", "config", {"credential_lifetime_s": 1})
        try:
            st, _, body = self.meta("GET", "/container/creds", None, {"Authorization": CONTAINER_TOKEN})
        finally:
            SRV.control("POST", "config", {"credential_lifetime_s": 3600})
        c = json.loads(body)
        time.sleep(1.2)
        self.assertS3Error(self.use(c["AccessKeyId"], c["SecretAccessKey"], c["Token"]), 400, "ExpiredToken")
        self.assertEqual(SRV.stats()["credentials_issued"]["container"], 2)


class TestControl(S3Case):
    def test_stats_seed_reset(self):
        SRV.control("POST", "stats/reset")
        c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=30)
        for _ in range(3):
            C.request("GET", "/b", query="list-type=2&max-keys=1", conn=c)
        c.close()
        # The server counts a request out of flight after its answer is sent: the client can read the answer
        # (and ask for the stats) first, so wait for the count to settle rather than read it once.
        deadline = time.monotonic() + 30
        s = SRV.stats()
        while s["api_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.02)
            s = SRV.stats()
        self.assertEqual((s["api_connections"], s["requests"]["s3.ListObjectsV2"], s["api_in_flight"]), (1, 3, 0))
        self.assertEqual(SRV.control("POST", "seed", {"bucket": "seeded", "count": 10, "size": 100,
                                                      "name_format": "s/{:03d}"})["created"], 10)
        self.assertEqual(len(C.get("seeded", "s/007")[2]), 100)
        SRV.control("POST", "reset", {"buckets": ["seeded"]})
        self.assertS3Error(C.get("seeded", "s/007"), 404, "NoSuchBucket")
        st, _, body = SRV.raw("POST", "/_sluice/config", b'{"nonsense": 1}')
        self.assertEqual(st, 400)
        SRV.control("POST", "config", {"delay_ms": 200})
        try:
            t0 = time.monotonic()
            C.get("b", "none")
            self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        finally:
            SRV.control("POST", "config", {"delay_ms": 0})

    def test_host_refused_and_sigterm(self):
        r = subprocess.run([sys.executable, SERVER, "--host", "0.0.0.0"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"only listens on 127.0.0.1", r.stderr)

    def test_parent_pid(self):
        # A shell starts the server with --parent-pid $$ and exits without stopping it: the server must stop.
        d = tempfile.mkdtemp(prefix="s3-test-")
        pf = os.path.join(d, "port")
        script = ('"$0" "$1" --port-file "$2" --parent-pid $$ >/dev/null 2>&1 & echo $!; '
                  'while [ ! -s "$2" ]; do sleep 0.05; done')
        try:
            out = subprocess.run(["bash", "-c", script, sys.executable, SERVER, pf], stdout=subprocess.PIPE,
                                 timeout=60).stdout
            pid = int(out.split()[0])
            deadline = time.monotonic() + 30  # generous: a loaded machine (the server looks every 0.2 s)
            while time.monotonic() < deadline:
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break  # exited; its new parent has not reaped it yet
                except FileNotFoundError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
                self.fail("the server outlived its parent")
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_anonymous_and_reexec(self):
        # -S hides site-packages, so botocore cannot be imported: the server must run itself again under
        # /usr/bin/python3 (Debian's, with python3-botocore), as it does under a python3 shim without botocore.
        system = "/usr/bin/python3"
        if subprocess.run([system, "-c", "import botocore"], stderr=subprocess.DEVNULL).returncode != 0:
            self.skipTest("no botocore for /usr/bin/python3")
        d = tempfile.mkdtemp(prefix="s3-test-")
        proc = subprocess.Popen([sys.executable, "-S", SERVER, "--port-file", os.path.join(d, "port"), "--bucket",
                                 "pub", "--anonymous-ok"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = proc.stdout.readline().decode()
            self.assertTrue(line.startswith("listening on 127.0.0.1:"), line)
            port = int(line.strip().rsplit(":", 1)[1])
            self.assertEqual(os.path.realpath("/proc/%d/exe" % proc.pid), os.path.realpath(system))
            self.assertEqual(SRV.raw("PUT", "/pub/anon", b"anonymous", port=port)[0], 200)
            self.assertEqual(SRV.raw("GET", "/pub/anon", port=port)[2], b"anonymous")
            # Unsigned is accepted, but a signature that is there is still checked.
            self.assertEqual(SRV.raw("GET", "/pub/anon", None, {"Authorization": "AWS4-HMAC-SHA256 Credential=A/"
                                                                "20200101/us-east-1/s3/aws4_request, SignedHeaders="
                                                                "host, Signature=00"}, port=port)[0], 403)
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
            proc.stdout.close()
            err = proc.stderr.read().decode()
            proc.stderr.close()
            shutil.rmtree(d, ignore_errors=True)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("Traceback", err)


class TestBotocoreClient(S3Case):
    """botocore's own S3 client (its serializers, parsers, checksums and paginators) against the server."""

    def test_sdk_round_trip(self):
        import botocore.config
        import botocore.session
        sess = botocore.session.get_session()
        cfg = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
        s3 = sess.create_client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:%d" % SRV.port,
                                aws_access_key_id=AK, aws_secret_access_key=SK, config=cfg)
        self.addCleanup(s3.close)
        b = self.fresh("sdk")
        s3.head_bucket(Bucket=b)
        for i in range(25):
            s3.put_object(Bucket=b, Key="k/%02d é+%d" % (i, i), Body=b"sdk %d" % i, Metadata={"n": str(i)})
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, PaginationConfig={
            "PageSize": 10}) for o in page.get("Contents", [])]
        self.assertEqual(keys, ["k/%02d é+%d" % (i, i) for i in range(25)])
        pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=b, Delimiter="/", EncodingType="url"))
        self.assertEqual([p["Prefix"] for p in pages[0]["CommonPrefixes"]], ["k/"])
        got = s3.get_object(Bucket=b, Key="k/03 é+3")
        self.assertEqual((got["Body"].read(), got["Metadata"]), (b"sdk 3", {"n": "3"}))
        self.assertEqual(s3.get_object(Bucket=b, Key="k/03 é+3", Range="bytes=1-2")["Body"].read(), b"dk")
        # CRC32: botocore computes CRC32C only with the awscrt package, which Debian does not ship.
        up = s3.create_multipart_upload(Bucket=b, Key="big", ChecksumAlgorithm="CRC32")
        parts = []
        for n, data in enumerate((b"a" * MIN_PART, b"b" * 10), 1):
            r = s3.upload_part(Bucket=b, Key="big", UploadId=up["UploadId"], PartNumber=n, Body=data,
                               ChecksumAlgorithm="CRC32")
            parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
        self.assertEqual(len(s3.list_parts(Bucket=b, Key="big", UploadId=up["UploadId"])["Parts"]), 2)
        r = s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=up["UploadId"],
                                         MultipartUpload={"Parts": parts})
        self.assertTrue(r["ETag"].endswith('-2"'))
        s3.copy_object(Bucket=b, Key="copy of big", CopySource={"Bucket": b, "Key": "big"})
        self.assertEqual(s3.head_object(Bucket=b, Key="copy of big")["ContentLength"], MIN_PART + 10)
        r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in keys[:5]]})
        self.assertEqual(len(r["Deleted"]), 5)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            s3.get_object(Bucket=b, Key="k/00 é+0")
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchKey")


class TestConcurrency(S3Case):
    def test_parallel_clients(self):
        errors = []

        def worker(i):
            try:
                for j in range(10):
                    data = ("%d-%d" % (i, j)).encode() * 50
                    st, _, body = C.put("b", "par/%d/%d" % (i, j), data, {"x-amz-checksum-crc32c": crc_b64(data)})
                    if st != 200 or C.get("b", "par/%d/%d" % (i, j))[2] != data:
                        errors.append((i, j, st, body))
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(C.list_all("b", prefix="par/")[0]), 80)


if __name__ == "__main__":
    unittest.main(verbosity=1)
