#!/usr/bin/env python3
"""A local Amazon S3 server for sluice's tests (S3 REST API over plain HTTP, in memory).

It speaks the parts of the S3 API that sluice uses -- ListObjectsV2 (and V1), GetObject, HeadObject, PutObject,
multipart uploads, CopyObject, UploadPartCopy, DeleteObject(s), HeadBucket, GetBucketLocation -- with S3's XML
shapes, headers and error codes. Every request must be signed with AWS Signature Version 4; the signature is
recomputed with botocore's own signer (botocore.auth.S3SigV4Auth), so that a bug in the client's signer cannot
hide behind a server that shares it. A second loopback port (--meta-port-file) serves fake AWS credential
endpoints: STS AssumeRoleWithWebIdentity, the EC2 instance metadata service (IMDSv2) and container credentials;
the temporary credentials they hand out are accepted by the S3 side.

Fault injection uses the vocabulary of tests/gcs/gcs_server.py (storage-testbench retry tests) with S3 operation
names; /_sluice/... holds the control endpoints (a bucket name cannot start with "_").

Needs Python 3 and botocore (Debian: python3-botocore). When the interpreter that runs it has no botocore (a
version-manager shim, say), the script runs itself again under /usr/bin/python3.

Run `s3_server.py --help` for options; tests/s3/README.md describes the endpoints and the fault vocabulary.
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
    if os.environ.get("SLUICE_S3_SERVER_REEXEC") != "1" and os.path.exists(system):
        os.environ["SLUICE_S3_SERVER_REEXEC"] = "1"
        os.execv(system, [system] + sys.argv)
    sys.stderr.write("s3_server.py: needs botocore (Debian: apt-get install python3-botocore; see scripts/deps.sh)\n")
    sys.exit(2)


if __name__ == "__main__":
    _need_botocore()

import argparse  # noqa: E402
import base64  # noqa: E402
import binascii  # noqa: E402
import bisect  # noqa: E402
import calendar  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import string  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
import zlib  # noqa: E402
from email.utils import formatdate, parsedate_to_datetime  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from urllib.parse import quote, quote_plus, unquote_to_bytes  # noqa: E402
from xml.sax.saxutils import escape  # noqa: E402

import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.compat  # noqa: E402
import botocore.credentials  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gcs"))
sys.dont_write_bytecode = True
from gcs_server import crc32c, parse_range  # noqa: E402  (the GCS server's CRC32C and Range parser)

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
MAX_KEY_BYTES = 1024
MAX_PART_NUMBER = 10000
MAX_PART_BYTES = 5 * 1024 ** 3
DEFAULT_MIN_PART = 5 * 1024 * 1024
MAX_DELETE_KEYS = 1000
MAX_META_BYTES = 2048
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
OWNER_NAME = "sluice-test"

# ---------------------------------------------------------------------------------------------------------------
# Checksums: name (as in x-amz-checksum-algorithm) -> (header, XML element, raw digest function)


def _crc32c_raw(data):
    return crc32c(data).to_bytes(4, "big")


def _crc32_raw(data):
    return (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")


_CRC64_POLY = 0x9A6C9329AC4BC9B5  # CRC-64/NVME, reflected


def _crc64_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _CRC64_POLY if c & 1 else c >> 1
        t.append(c)
    return t


_CRC64_T = _crc64_table()


def crc64nvme(data):
    crc = 0xFFFFFFFFFFFFFFFF
    t = _CRC64_T
    for b in memoryview(data).cast("B"):
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


assert crc64nvme(b"123456789") == 0xAE8B14860A799888


def _crc64nvme_raw(data):
    return crc64nvme(data).to_bytes(8, "big")


CHECKSUMS = {
    "CRC32C": ("x-amz-checksum-crc32c", "ChecksumCRC32C", _crc32c_raw),
    "CRC32": ("x-amz-checksum-crc32", "ChecksumCRC32", _crc32_raw),
    "SHA1": ("x-amz-checksum-sha1", "ChecksumSHA1", lambda d: hashlib.sha1(d).digest()),
    "SHA256": ("x-amz-checksum-sha256", "ChecksumSHA256", lambda d: hashlib.sha256(d).digest()),
    "CRC64NVME": ("x-amz-checksum-crc64nvme", "ChecksumCRC64NVME", _crc64nvme_raw),
}


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def composite(algo, part_raws):
    """S3's composite checksum of a multipart object: the checksum of the parts' binary checksums, then -N."""
    return "%s-%d" % (b64(CHECKSUMS[algo][2](b"".join(part_raws))), len(part_raws))


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


def iso8601(t):
    ms = int(round(t * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def iso8601_s(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def http_date(t):
    return formatdate(t, usegmt=True)


def request_id():
    return secrets.token_hex(8).upper()


def key_successor(prefix):
    """Smallest byte string greater than every string that starts with prefix (None: no such string)."""
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes([p[-1] + 1])


def parse_query_pairs(raw):
    """The query string as [(name, value)], both percent-decoded ('+' stays '+', as S3 signs it) and UTF-8."""
    out = []
    if not raw:
        return out
    for part in raw.encode("latin-1").split(b"&"):
        if not part:
            continue
        k, _, v = part.partition(b"=")
        out.append((unquote_to_bytes(k).decode("utf-8"), unquote_to_bytes(v).decode("utf-8")))
    return out


def url_encode_key(s):
    """encoding-type=url in listings: form encoding (a space is '+'), '/' kept, as S3 answers it."""
    return quote_plus(s, safe="/")


class S3Error(Exception):
    """An error answered in S3's XML shape: <Error><Code/><Message/>...extra...<RequestId/><HostId/></Error>."""

    def __init__(self, status, code, message, extra=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or []
        self.headers = headers or []

    def body(self, rid):
        inner = "<Code>%s</Code><Message>%s</Message>" % (escape(self.code), escape(self.message))
        for k, v in self.extra:
            inner += "<%s>%s</%s>" % (k, escape(str(v)), k)
        inner += "<RequestId>%s</RequestId><HostId>%s</HostId>" % (rid, b64(rid.encode()))
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>%s</Error>' % inner).encode("utf-8")


class NotModified(Exception):
    def __init__(self, headers):
        super().__init__("not modified")
        self.headers = headers


def no_such_bucket(name):
    return S3Error(404, "NoSuchBucket", "The specified bucket does not exist", [("BucketName", name)])


def no_such_key(key):
    return S3Error(404, "NoSuchKey", "The specified key does not exist.", [("Key", key)])


def no_such_upload(uid):
    return S3Error(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the "
                   "upload may have been aborted or completed.", [("UploadId", uid)])


def malformed_xml():
    return S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                   "published schema")


def precondition_failed(cond):
    return S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                   [("Condition", cond)])


def xml_doc(root, inner, ns=S3_NS):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%s xmlns="%s">%s</%s>' % (root, ns, inner, root)).encode("utf-8")


def el(name, value):
    return "<%s>%s</%s>" % (name, escape(str(value)), name)


def parse_xml(body):
    """The root of an XML request body with namespaces stripped; MalformedXML when it is not XML."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise malformed_xml()
    for e in root.iter():
        if isinstance(e.tag, str) and "}" in e.tag:
            e.tag = e.tag.split("}", 1)[1]
    return root


# ---------------------------------------------------------------------------------------------------------------
# Data


class Obj:
    __slots__ = ("key", "data", "md5", "etag", "mtime", "content_type", "headers", "meta", "algo", "_checksum",
                 "checksum_type", "parts")

    def __init__(self, key, data, content_type, headers, meta, algo=None, checksum=None, checksum_type=None,
                 etag=None, parts=None):
        self.key = key
        self.data = data
        self.md5 = hashlib.md5(data).digest()
        self.etag = etag or self.md5.hex()  # without quotes
        self.mtime = time.time()
        self.content_type = content_type or "binary/octet-stream"
        self.headers = headers  # Content-Encoding, Cache-Control, ... as given
        self.meta = meta  # x-amz-meta-* names (lower case) -> value
        self.algo = algo  # checksum algorithm it was uploaded with (CHECKSUMS key) or None
        self._checksum = checksum  # base64, or "base64-N" for a composite; None: computed when first asked for
        self.checksum_type = checksum_type  # FULL_OBJECT or COMPOSITE
        self.parts = parts  # multipart: [(offset, size, checksum base64 or None)]

    @property
    def checksum(self):
        # Seeded objects compute theirs only when a request needs it: seeding 100,000 objects stays fast.
        if self._checksum is None and self.algo:
            self._checksum = b64(CHECKSUMS[self.algo][2](self.data))
        return self._checksum


class Bucket:
    def __init__(self, name, region):
        self.name = name
        self.region = region
        self.created = time.time()
        self.objects = {}  # key as UTF-8 bytes -> Obj
        self.keys = []  # sorted UTF-8 keys


class Part:
    __slots__ = ("data", "md5", "mtime", "checksum_raw")

    def __init__(self, data, checksum_raw):
        self.data = data
        self.md5 = hashlib.md5(data).digest()
        self.mtime = time.time()
        self.checksum_raw = checksum_raw


class Upload:
    def __init__(self, uid, bucket, key, content_type, headers, meta, algo, checksum_type):
        self.uid = uid
        self.bucket = bucket
        self.key = key
        self.content_type = content_type
        self.headers = headers
        self.meta = meta
        self.algo = algo
        self.checksum_type = checksum_type
        self.initiated = time.time()
        self.parts = {}  # number -> Part


INSTRUCTION_RES = [
    ("return", re.compile(r"^return-(\d{3})$")),
    ("return-after", re.compile(r"^return-(\d{3})-after-(\d+)K$")),
    ("reset", re.compile(r"^return-reset-connection$")),
    ("broken", re.compile(r"^return-broken-stream$")),
    ("broken-after", re.compile(r"^return-broken-stream-after-(\d+)K$")),
    ("stall", re.compile(r"^stall-for-(\d+(?:\.\d+)?)s-after-(\d+)K$")),
    ("corrupt", re.compile(r"^return-corrupted-data$")),
    ("echo", re.compile(r"^return-(\d{3})-echo-headers$")),
    ("truncate", re.compile(r"^truncate-upload$")),
    ("pass", re.compile(r"^pass$")),
    ("late", re.compile(r"^reset-then-execute-after-(\d+(?:\.\d+)?)s$")),
    ("slowdown", re.compile(r"^return-503-slowdown$")),
    ("expired", re.compile(r"^return-400-expired-token$")),
    ("request-timeout", re.compile(r"^return-400-request-timeout$")),
    ("internal", re.compile(r"^return-500-internal$")),
    ("error200", re.compile(r"^return-200-error$")),
]

FAULT_METHODS = {
    "s3.ListBuckets", "s3.CreateBucket", "s3.DeleteBucket", "s3.HeadBucket", "s3.GetBucketLocation",
    "s3.ListObjectsV2", "s3.ListObjects", "s3.GetObject", "s3.HeadObject", "s3.PutObject", "s3.CopyObject",
    "s3.DeleteObject", "s3.DeleteObjects", "s3.CreateMultipartUpload", "s3.UploadPart", "s3.UploadPartCopy",
    "s3.ListParts", "s3.CompleteMultipartUpload", "s3.AbortMultipartUpload", "s3.ListMultipartUploads",
    "sts.AssumeRoleWithWebIdentity", "imds.token", "imds.credentials", "container.credentials",
}
UPLOAD_METHODS = {"s3.PutObject", "s3.UploadPart"}  # whose request bodies stall-for-... slows down
ERROR200_METHODS = {"s3.CompleteMultipartUpload", "s3.CopyObject", "s3.UploadPartCopy"}
TRUNCATE_METHODS = {"s3.PutObject", "s3.CompleteMultipartUpload", "s3.CopyObject"}

# Per-bucket strictness switches and misbehaviours (POST /_sluice/config {"bucket_modes": {"BUCKET": [...]}}).
#   listings:  utf16-order, repeat-last, reverse-pages, ignore-prefix, token-cycle, page-size-N (as gcs_server's)
#   objects:   no-checksum (never an x-amz-checksum-*), no-etag-md5 (ETags that are not the MD5), ignore-range,
#              short-body, long-body
#   writes:    checksum-required (uploads without x-amz-checksum-crc32c refused), delete-errors (DeleteObjects
#              fails every second key with InternalError, leaving it), default-crc64nvme (objects written without a
#              checksum get a CRC64NVME one, as S3 does since 2025)
BUCKET_MODE_RE = re.compile(r"^(utf16-order|repeat-last|reverse-pages|ignore-prefix|token-cycle|page-size-[1-9]\d*|"
                            r"no-checksum|no-etag-md5|ignore-range|short-body|long-body|checksum-required|"
                            r"delete-errors|default-crc64nvme)$")
LIST_MODES = re.compile(r"^(utf16-order|repeat-last|reverse-pages|ignore-prefix|token-cycle|page-size-\d+)$")


def parse_instruction(text):
    for kind, rx in INSTRUCTION_RES:
        m = rx.match(text)
        if m:
            return (kind,) + m.groups()
    return None


class Creds:
    __slots__ = ("akid", "secret", "token", "expiry", "source")

    def __init__(self, akid, secret, token=None, expiry=None, source="static"):
        self.akid = akid
        self.secret = secret
        self.token = token
        self.expiry = expiry  # epoch seconds, None: never
        self.source = source


class State:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()
        self.buckets = {}
        self.uploads = {}
        self.retry_tests = {}
        self.creds = {}  # access key id -> Creds
        for spec in opts.access_key:
            parts = spec.split(":", 2)
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise SystemExit("--access-key takes ID:SECRET[:SESSION_TOKEN], not %r" % spec)
            self.creds[parts[0]] = Creds(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        self.delay_ms = opts.delay_ms
        self.outage_until = 0.0
        self.outage_status = 0
        self.min_part_size = opts.min_part_size
        self.credential_lifetime_s = opts.credential_lifetime_s
        self.anonymous_ok = opts.anonymous_ok
        self.max_skew_s = opts.max_skew_s
        self.wrong_region = "redirect"
        self.imdsv2_required = opts.imdsv2_required
        self.bucket_modes = {}
        self.imds_tokens = {}  # IMDSv2 session token -> expiry
        self.stats_lock = threading.Lock()
        self.api_in_flight = 0
        self.reset_stats()

    def reset_stats(self):
        with self.stats_lock:
            self.connections = 0
            self.api_connections = 0
            self.requests = {}
            self.objects_created = 0
            self.auth_failures = 0
            self.credentials_issued = {"sts": 0, "imds": 0, "container": 0}

    def count_request(self, method):
        with self.stats_lock:
            self.requests[method] = self.requests.get(method, 0) + 1

    def modes(self, bucket):
        return self.bucket_modes.get(bucket, ())

    def issue_creds(self, source, lifetime=None):
        lifetime = self.credential_lifetime_s if lifetime is None else lifetime
        akid = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        c = Creds(akid, secrets.token_urlsafe(30)[:40], "IQoJsluice" + secrets.token_urlsafe(96),
                  time.time() + lifetime, source)
        with self.lock:
            now = time.time()
            # Keep expired ones for a while: a request with them must say ExpiredToken, not InvalidAccessKeyId.
            self.creds = {k: v for k, v in self.creds.items() if v.expiry is None or v.expiry > now - 86400}
            self.creds[akid] = c
        with self.stats_lock:
            self.credentials_issued[source] = self.credentials_issued.get(source, 0) + 1
        return c

    # -- objects ---------------------------------------------------------------------------------------------

    def bucket(self, name):
        b = self.buckets.get(name)
        if b is None:
            raise no_such_bucket(name)
        return b

    def lookup(self, bucket, key):
        with self.lock:
            return self.bucket(bucket).objects.get(key.encode("utf-8"))

    def store(self, bucket, obj, check=None, api=True):
        """Make obj the object of its key; check(cur) runs under the lock first (conditional writes)."""
        k = obj.key.encode("utf-8")
        with self.lock:
            b = self.bucket(bucket)
            cur = b.objects.get(k)
            if check:
                check(cur)
            if cur is None:
                bisect.insort(b.keys, k)
            b.objects[k] = obj
        if api:
            with self.stats_lock:
                self.objects_created += 1
        return obj

    def delete(self, bucket, key):
        k = key.encode("utf-8")
        with self.lock:
            b = self.bucket(bucket)
            if b.objects.pop(k, None) is not None:
                del b.keys[bisect.bisect_left(b.keys, k)]

    def list_entries(self, bucket, prefix, delim, after, max_keys):
        """Up to max_keys entries ("o", Obj) / ("p", prefix str) in UTF-8 byte order after the key `after`
        (bytes or None), and whether more follow."""
        pb = prefix.encode("utf-8")
        db = delim.encode("utf-8")
        with self.lock:
            b = self.bucket(bucket)
            keys = b.keys
            lo = bisect.bisect_left(keys, pb)
            succ = key_successor(pb) if pb else None
            hi = bisect.bisect_left(keys, succ) if succ is not None else len(keys)
            if after is not None:
                lo = max(lo, bisect.bisect_right(keys, after))
            out = []
            i = lo
            while i < hi and len(out) < max_keys:
                k = keys[i]
                if db:
                    j = k.find(db, len(pb))
                    if j >= 0:
                        p = k[:j + len(db)]
                        if after is None or p > after:
                            out.append(("p", p.decode("utf-8")))
                        s = key_successor(p)
                        i = bisect.bisect_left(keys, s, i, hi) if s is not None else hi
                        continue
                out.append(("o", b.objects[k]))
                i += 1
            return out, i < hi

    def list_misbehaving(self, bucket, prefix, delim, after, max_keys, modes, token):
        """A listing with the bucket's listing modes (slow: sorts the whole bucket; for tests with few objects).
        after: a key (str) or None; token: None, "A"/"B" (token-cycle) or ("i"|"x", key). Returns (entries,
        next token or None)."""
        utf16 = "utf16-order" in modes

        def order(name):
            return name.encode("utf-16-be") if utf16 else name.encode("utf-8")

        with self.lock:
            b = self.bucket(bucket)
            names = [k.decode("utf-8") for k in b.keys]
            objects = dict(b.objects)
        if "ignore-prefix" in modes:
            prefix = ""
        names = sorted((n for n in names if n.startswith(prefix)), key=order)
        if after is not None:
            names = [n for n in names if order(n) > order(after)]
        entries = []
        for n in names:
            j = n.find(delim, len(prefix)) if delim else -1
            if j >= 0:
                p = n[:j + len(delim)]
                if not entries or entries[-1] != ("p", p):
                    entries.append(("p", p))
            else:
                entries.append(("o", n))
        size = max_keys
        for m in modes:
            if m.startswith("page-size-"):
                size = min(size, int(m[len("page-size-"):]))
        if token in ("A", "B"):
            return [], ("B" if token == "A" else "A")
        first = 0
        if token is not None:
            keys = [order(n) for _, n in entries]
            at = order(token[1])
            first = bisect.bisect_left(keys, at) if token[0] == "i" else bisect.bisect_right(keys, at)
        page = entries[first:first + size]
        nxt = None
        if "token-cycle" in modes:
            nxt = "A"
        elif first + len(page) < len(entries) and page:
            nxt = ("i" if "repeat-last" in modes and len(page) > 1 else "x", page[-1][1])
        out = [("o", objects[n.encode("utf-8")]) if kind == "o" else ("p", n) for kind, n in page]
        if "reverse-pages" in modes:
            out.reverse()
        return out, nxt


REASONS = {
    200: "OK", 204: "No Content", 206: "Partial Content", 301: "Moved Permanently", 304: "Not Modified",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 409: "Conflict", 411: "Length Required", 412: "Precondition Failed",
    416: "Requested Range Not Satisfiable", 429: "Too Many Requests", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}

# The S3 error code a plain return-NNN answers with.
STATUS_CODES = {
    400: ("InvalidRequest", "Retry Test: Caused a 400"), 401: ("Unauthorized", "Retry Test: Caused a 401"),
    403: ("AccessDenied", "Access Denied"), 404: ("NoSuchKey", "The specified key does not exist."),
    408: ("RequestTimeout", "Retry Test: Caused a 408"), 409: ("OperationAborted", "Retry Test: Caused a 409"),
    412: ("PreconditionFailed", "Retry Test: Caused a 412"), 429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    501: ("NotImplemented", "Retry Test: Caused a 501"),
    503: ("ServiceUnavailable", "Please reduce your request rate."),
}


def status_error(status, note=None):
    code, msg = STATUS_CODES.get(status, ("RetryTest%d" % status, "Retry Test: Caused a %d" % status))
    return S3Error(status, code, note or msg)


class Response:
    def __init__(self, status, body=b"", headers=None, media=False, length=None):
        self.status = status
        self.body = body
        self.headers = headers or []
        self.media = media
        self.length = length  # Content-Length when it is not len(body) (HEAD)


def xml_response(status, body, headers=None):
    return Response(status, body, [("Content-Type", "application/xml")] + (headers or []))


# ---------------------------------------------------------------------------------------------------------------
# SigV4 verification with botocore's signer


class _Verifier(botocore.auth.S3SigV4Auth):
    """botocore's S3 signer, asked for exactly the headers the client says it signed (botocore alone would pick
    every header but a few); the canonical URI, query, header canonicalisation, hashing and key derivation are
    botocore's."""

    def __init__(self, credentials, service, region, signed):
        super().__init__(credentials, service, region)
        self._signed = signed  # [(lower-case name, [values])]

    def headers_to_sign(self, request):
        hm = botocore.compat.HTTPHeaders()
        for name, values in self._signed:
            for v in values:
                hm[name] = v
        return hm


def sigv4_expected(creds, method, host, path_bytes, query_pairs, signed, payload_hash, timestamp, region, service):
    """(canonical request, string to sign, signature) as botocore computes them for the request received."""
    url = "http://%s%s" % (host, quote(path_bytes, safe="/~"))
    req = botocore.awsrequest.AWSRequest(method=method, url=url, headers={"X-Amz-Content-SHA256": payload_hash})
    req.params = list(query_pairs) or {}
    req.context["timestamp"] = timestamp
    v = _Verifier(botocore.credentials.Credentials(creds.akid, creds.secret, creds.token), service, region, signed)
    cr = v.canonical_request(req)
    sts = v.string_to_sign(req, cr)
    return cr, sts, v.signature(sts, req)


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for m in (region, service, "aws4_request"):
        k = hmac.new(k, m.encode(), hashlib.sha256).digest()
    return k


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256\s+(.*)$", re.S)


# ---------------------------------------------------------------------------------------------------------------
# HTTP


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, state, kind):
        self.state = state
        self.kind = kind  # "s3" or "meta"
        super().__init__(addr, Handler)

    def process_request(self, request, client_address):
        with self.state.stats_lock:
            self.state.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-s3-test-server"
    sys_version = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.api_counted = False

    def log_message(self, fmt, *args):
        if self.server.state.opts.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    @property
    def state(self):
        return self.server.state

    # -- plumbing ------------------------------------------------------------------------------------------

    def read_body(self, stall=None):
        """The whole request body (Content-Length or chunked); stall=(seconds, after_bytes) pauses reading."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        out = bytearray()
        stalled = stall is None

        def maybe_stall():
            nonlocal stalled
            if not stalled and len(out) >= stall[1]:
                stalled = True
                time.sleep(stall[0])

        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise S3Error(400, "IncompleteBody", "Malformed chunked request body.")
                if size == 0:
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                while size:
                    piece = self.rfile.read(min(size, 65536))
                    if not piece:
                        raise ConnectionError("eof in chunked body")
                    out += piece
                    size -= len(piece)
                    maybe_stall()
                self.rfile.readline(3)
            return bytes(out)
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n < 0:
                raise ValueError()
        except ValueError:
            self.close_connection = True
            raise S3Error(400, "InvalidArgument", "Invalid Content-Length header.")
        while len(out) < n:
            want = n - len(out)
            if not stalled:
                want = min(want, max(stall[1] - len(out), 1))
            piece = self.rfile.read(min(want, 1 << 20))
            if not piece:
                raise ConnectionError("eof in body")
            out += piece
            maybe_stall()
        maybe_stall()
        return bytes(out)

    def reset_connection(self):
        # SO_LINGER 0 turns close() into an RST; the file objects hold the socket too, so they go first.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except Exception:
                pass
        self.wfile = io.BytesIO()
        try:
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def send(self, resp, fault=None):
        status = resp.status
        body = resp.body if self.command != "HEAD" else b""
        if resp.media:
            body = self.corrupt(body, fault)
        rid = getattr(self, "rid", None) or request_id()
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        lines.append("Date: " + http_date(time.time()))
        lines.append("Server: " + self.server_version)
        lines.append("x-amz-request-id: " + rid)
        lines.append("x-amz-id-2: " + b64(rid.encode()))
        if status not in (204, 304):
            lines.append("Content-Length: %d" % (resp.length if resp.length is not None else len(resp.body)))
        for k, v in resp.headers:
            lines.append("%s: %s" % (k, v))
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        if self.state.opts.verbose:
            self.log_request(status, len(body))
        kind = fault[0] if fault else None
        if kind in ("broken", "broken-after"):
            cut = len(body) // 2 if kind == "broken" else int(fault[1]) * 1024
            if cut >= len(body) and body:
                self.wfile.write(head + body)
            elif not body:
                self.wfile.write(head[:len(head) // 2])
            else:
                self.wfile.write(head + body[:cut])
            self.wfile.flush()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True
            return
        if kind == "stall":
            after = int(fault[2]) * 1024
            self.wfile.write(head + body[:after])
            self.wfile.flush()
            time.sleep(float(fault[1]))
            self.wfile.write(body[after:])
            return
        self.wfile.write(head + body)

    @staticmethod
    def corrupt(data, fault):
        if not fault or fault[0] != "corrupt" or not data:
            return data
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        return bytes(b)

    def send_error_xml(self, err, fault=None):
        rid = getattr(self, "rid", None) or request_id()
        body = err.body(rid) if self.command != "HEAD" else b""
        hdrs = ([("Content-Type", "application/xml")] if body else []) + list(err.headers)
        self.send(Response(err.status, body, hdrs), fault)

    # -- dispatch ------------------------------------------------------------------------------------------

    def dispatch(self):
        self.in_flight = False
        self.rid = request_id()
        try:
            self.dispatch_counted()
        finally:
            if self.in_flight:
                with self.state.stats_lock:
                    self.state.api_in_flight -= 1

    def parse_target(self):
        """Bucket, key and query of the request: (bucket or None, key or None, path bytes, query pairs, style)."""
        raw_path, _, raw_query = self.path.partition("?")
        path_bytes = unquote_to_bytes(raw_path.encode("latin-1"))
        path = path_bytes.decode("utf-8")
        pairs = parse_query_pairs(raw_query)
        host = (self.headers.get("Host") or "").strip().lower()
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        vbucket = None
        for suffix in (".s3.localhost", ".localhost"):
            if hostname.endswith(suffix) and hostname != "s3.localhost":
                vbucket = hostname[:-len(suffix)]
                break
        if vbucket:
            key = path[1:] if path.startswith("/") else path
            return vbucket, (key or None), path_bytes, pairs, "virtual"
        rest = path[1:] if path.startswith("/") else path
        bucket, sep, key = rest.partition("/")
        return (bucket or None), (key if sep and key else None), path_bytes, pairs, "path"

    def dispatch_counted(self):
        fault = None
        try:
            try:
                bucket, key, path_bytes, pairs, style = self.parse_target()
            except UnicodeDecodeError:
                self.read_body()
                raise S3Error(400, "InvalidURI", "Couldn't parse the specified URI.")
            q = {}
            for k, v in pairs:
                q[k] = v
            if self.server.kind == "meta":
                method, fn, kind = self.route_meta(self.command, path_bytes.decode("utf-8"), q)
            else:
                method, fn, kind = self.route(self.command, bucket, key, q, style)
            self.target = (bucket, key, path_bytes, pairs, q)
            if kind != "control":
                with self.state.stats_lock:
                    self.state.api_in_flight += 1
                self.in_flight = True
            if kind != "control" and time.monotonic() < self.state.outage_until:
                self.state.count_request(method)
                if not self.state.outage_status:
                    self.reset_connection()
                    return
                self.read_body()
                if self.state.delay_ms > 0:
                    time.sleep(self.state.delay_ms / 1000.0)
                raise status_error(self.state.outage_status, "Outage: Caused a %d" % self.state.outage_status)
            if kind != "control":
                if not self.api_counted:
                    self.api_counted = True
                    with self.state.stats_lock:
                        self.state.api_connections += 1
                self.state.count_request(method)
                fault = self.take_instruction(method)
            if fault and fault[0] == "stall" and method in UPLOAD_METHODS:
                body = self.read_body(stall=(float(fault[1]), int(fault[2]) * 1024))
                fault = None
            else:
                body = self.read_body()
            if kind != "control" and self.state.delay_ms > 0:
                time.sleep(self.state.delay_ms / 1000.0)
            if fault:
                f = fault[0]
                if f == "unknown-test":
                    fault = None
                    raise S3Error(400, "InvalidRequest", "Retry Test %s not found (x-retry-test-id)"
                                  % self.headers["x-retry-test-id"])
                if f == "reset":
                    self.reset_connection()
                    return
                if f in ("return", "return-after"):
                    raise status_error(int(fault[1]))
                if f == "slowdown":
                    raise S3Error(503, "SlowDown", "Please reduce your request rate.")
                if f == "expired":
                    raise S3Error(400, "ExpiredToken", "The provided token has expired.")
                if f == "request-timeout":
                    raise S3Error(400, "RequestTimeout", "Your socket connection to the server was not read from "
                                  "or written to within the timeout period. Idle connections will be closed.")
                if f == "internal":
                    raise S3Error(500, "InternalError", "We encountered an internal error. Please try again.")
                if f == "error200":
                    e = S3Error(200, "InternalError", "We encountered an internal error. Please try again.")
                    self.send(Response(200, e.body(self.rid), [("Content-Type", "application/xml")]))
                    return
                if f == "echo":
                    said = "; ".join("%s: %s" % (k, v) for k, v in self.headers.items())
                    raise status_error(int(fault[1]), "Retry Test: Caused a %s for the request %s %s with the "
                                       "headers %s" % (fault[1], self.command, self.path.partition("?")[0], said))
                if f == "late":
                    self.reset_connection()
                    time.sleep(float(fault[1]))
                    try:
                        fn(self.check_request(kind, method, body, fn), None)
                    except (S3Error, NotModified):
                        pass
                    return
            body = self.check_request(kind, method, body, fn)
            resp = fn(body, fault)
            self.send(resp, fault)
        except S3Error as e:
            if e.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "ExpiredToken",
                          "InvalidToken", "RequestTimeTooSkewed", "AuthorizationHeaderMalformed",
                          "XAmzContentSHA256Mismatch"):
                with self.state.stats_lock:
                    self.state.auth_failures += 1
            self.send_error_xml(e, fault if fault and fault[0] in ("broken", "broken-after", "stall") else None)
        except NotModified as e:
            self.send(Response(304, b"", e.headers))
        except (ConnectionError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug in this server: say so loudly, keep serving
            traceback.print_exc()
            self.close_connection = True
            try:
                self.send_error_xml(S3Error(500, "InternalError", "test server bug: %r" % e))
            except OSError:
                pass

    def take_instruction(self, method):
        tid = self.headers.get("x-retry-test-id")
        with self.state.lock:
            if not tid:
                tid = next((t["id"] for t in self.state.retry_tests.values() if t.get("global")), None)
                if not tid:
                    return None
            t = self.state.retry_tests.get(tid)
            if t is None:
                return ("unknown-test", tid)
            lst = t["instructions"].get(method)
            if not lst:
                return None
            text = lst.pop(0)
            t["completed"] = all(not v for v in t["instructions"].values())
        return parse_instruction(text)

    def check_request(self, kind, method, body, fn):
        """Authenticates an S3 request; returns its payload (aws-chunked bodies decoded)."""
        if kind != "s3":
            return body
        return self.authenticate(method, body)

    # -- routing -------------------------------------------------------------------------------------------

    def route(self, verb, bucket, key, q, style):
        """(method name, handler(body, fault), kind) of an S3 or control request."""
        if style == "path" and bucket is not None and bucket.startswith("_"):
            if bucket == "_sluice":
                return self.route_control(verb, key or "")
            return "unknown", self.not_found, "control"
        if bucket is None:
            if verb == "GET":
                return "s3.ListBuckets", self.list_buckets, "s3"
            return "unknown", self.method_not_allowed, "s3"
        if key is None:
            if verb == "GET":
                if "location" in q:
                    return "s3.GetBucketLocation", self.get_bucket_location, "s3"
                if "uploads" in q:
                    return "s3.ListMultipartUploads", self.list_uploads, "s3"
                if q.get("list-type") == "2":
                    return "s3.ListObjectsV2", self.list_objects_v2, "s3"
                if any(k in q for k in ("versions", "acl", "policy", "lifecycle", "cors", "tagging", "versioning")):
                    return "unknown", self.not_implemented, "s3"
                return "s3.ListObjects", self.list_objects_v1, "s3"
            if verb == "HEAD":
                return "s3.HeadBucket", self.head_bucket, "s3"
            if verb == "PUT" and not q:
                return "s3.CreateBucket", self.create_bucket, "s3"
            if verb == "DELETE" and not q:
                return "s3.DeleteBucket", self.delete_bucket, "s3"
            if verb == "POST" and "delete" in q:
                return "s3.DeleteObjects", self.delete_objects, "s3"
            return "unknown", self.method_not_allowed, "s3"
        if verb == "GET" and "uploadId" in q:
            return "s3.ListParts", self.list_parts, "s3"
        if verb == "GET":
            if any(k in q for k in ("acl", "tagging", "attributes", "retention", "legal-hold", "torrent")):
                return "unknown", self.not_implemented, "s3"
            return "s3.GetObject", self.get_object, "s3"
        if verb == "HEAD":
            return "s3.HeadObject", self.get_object, "s3"
        if verb == "PUT":
            if "partNumber" in q and "uploadId" in q:
                if "x-amz-copy-source" in self.headers:
                    return "s3.UploadPartCopy", self.upload_part_copy, "s3"
                return "s3.UploadPart", self.upload_part, "s3"
            if any(k in q for k in ("acl", "tagging", "retention", "legal-hold")):
                return "unknown", self.not_implemented, "s3"
            if "x-amz-copy-source" in self.headers:
                return "s3.CopyObject", self.copy_object, "s3"
            return "s3.PutObject", self.put_object, "s3"
        if verb == "POST":
            if "uploads" in q:
                return "s3.CreateMultipartUpload", self.create_upload, "s3"
            if "uploadId" in q:
                return "s3.CompleteMultipartUpload", self.complete_upload, "s3"
        if verb == "DELETE":
            if "uploadId" in q:
                return "s3.AbortMultipartUpload", self.abort_upload, "s3"
            return "s3.DeleteObject", self.delete_object, "s3"
        return "unknown", self.method_not_allowed, "s3"

    def route_control(self, verb, rest):
        table = {("GET", "stats"): self.stats_get, ("POST", "stats/reset"): self.stats_reset,
                 ("GET", "config"): self.config, ("POST", "config"): self.config,
                 ("POST", "reset"): self.reset_all, ("POST", "seed"): self.seed,
                 ("POST", "credentials"): self.credentials_new, ("POST", "credentials/expire"): self.credentials_expire,
                 ("GET", "retry_tests"): self.retry_test, ("POST", "retry_test"): self.retry_test}
        fn = table.get((verb, rest))
        if fn is None and rest.startswith("retry_test/") and verb in ("GET", "DELETE"):
            fn = self.retry_test
        return "", fn or self.not_found, "control"

    def not_found(self, body, fault):
        raise S3Error(404, "NoSuchKey", "Not Found: %s %s" % (self.command, self.path.partition("?")[0]))

    def method_not_allowed(self, body, fault):
        raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.",
                      [("Method", self.command), ("ResourceType", "OBJECT")])

    def not_implemented(self, body, fault):
        raise S3Error(501, "NotImplemented", "A header or query you provided implies functionality that is not "
                      "implemented (in this test server).")

    # -- authentication ------------------------------------------------------------------------------------

    def authenticate(self, method, body):
        bucket, key, path_bytes, pairs, q = self.target
        h = self.headers
        auth = h.get("Authorization")
        presigned = "X-Amz-Algorithm" in q
        if not auth and not presigned:
            if self.state.anonymous_ok:
                return self.payload(body, h.get("x-amz-content-sha256"), None)
            raise S3Error(403, "AccessDenied", "Access Denied")
        if auth and presigned:
            raise S3Error(400, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                          "parameter, Signature query string parameter or the Authorization header should be specified")
        if presigned:
            if q["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
                raise S3Error(400, "AuthorizationQueryParametersError", "X-Amz-Algorithm only supports "
                              "\"AWS4-HMAC-SHA256\"")
            try:
                cred, signed_names, provided = q["X-Amz-Credential"], q["X-Amz-SignedHeaders"], q["X-Amz-Signature"]
                amz_date = q["X-Amz-Date"]
                expires = int(q["X-Amz-Expires"])
            except (KeyError, ValueError):
                raise S3Error(400, "AuthorizationQueryParametersError", "Query-string authentication version 4 "
                              "requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
                              "X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
            token = q.get("X-Amz-Security-Token")
        else:
            m = AUTH_RE.match(auth.strip())
            fields = {}
            if m:
                for part in m.group(1).split(","):
                    k, _, v = part.strip().partition("=")
                    fields[k.strip()] = v.strip()
            if not m or not all(k in fields for k in ("Credential", "SignedHeaders", "Signature")):
                raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the "
                              "authorization header requires three components: Credential, SignedHeaders, "
                              "and Signature.")
            cred, signed_names, provided = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
            amz_date = h.get("x-amz-date")
            expires = None
            token = h.get("x-amz-security-token")
        scope = cred.split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the Credential "
                          "is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
        akid, date, region, service = scope[:4]
        with self.state.lock:
            creds = self.state.creds.get(akid)
        if creds is None:
            raise S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our "
                          "records.", [("AWSAccessKeyId", akid)])
        if not amz_date or not re.match(r"^\d{8}T\d{6}Z$", amz_date):
            raise S3Error(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        if date != amz_date[:8]:
            raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; Invalid "
                          "credential date. Date is not the same as X-Amz-Date.")
        if service != "s3":
            raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; incorrect "
                          "service \"%s\". This endpoint belongs to \"s3\"." % service)
        t = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        now = time.time()
        if expires is not None:
            if not 1 <= expires <= 604800:
                raise S3Error(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be between 1 and "
                              "604800 seconds")
            if now > t + expires:
                raise S3Error(403, "AccessDenied", "Request has expired", [("X-Amz-Expires", expires), (
                    "Expires", iso8601_s(t + expires)), ("ServerTime", iso8601_s(now))])
            if t > now + self.state.max_skew_s:
                raise S3Error(403, "AccessDenied", "Request is not valid yet")
        elif abs(now - t) > self.state.max_skew_s:
            raise S3Error(403, "RequestTimeTooSkewed", "The difference between the request time and the current "
                          "time is too large.", [("RequestTime", amz_date), ("ServerTime", iso8601_s(now)),
                                                 ("MaxAllowedSkewMilliseconds", int(self.state.max_skew_s * 1000))])
        # The bucket's region before the signature, as S3's global endpoint does.
        if bucket is not None and method not in ("s3.GetBucketLocation", "s3.CreateBucket", "s3.ListBuckets"):
            with self.state.lock:
                b = self.state.buckets.get(bucket)
            if b is not None and b.region != region:
                hdr = [("x-amz-bucket-region", b.region)]
                if self.state.wrong_region == "malformed":
                    raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the "
                                  "region '%s' is wrong; expecting '%s'" % (region, b.region),
                                  [("Region", b.region)], hdr)
                raise S3Error(301, "PermanentRedirect", "The bucket you are attempting to access must be addressed "
                              "using the specified endpoint. Please send all future requests to this endpoint.",
                              [("Endpoint", self.headers.get("Host") or ""), ("Bucket", bucket)], hdr)
        if creds.expiry is not None and creds.expiry <= now:
            raise S3Error(400, "ExpiredToken", "The provided token has expired.", [("Token-0", creds.token or "")])
        if creds.token is not None and token != creds.token:
            raise S3Error(403, "InvalidToken", "The provided token is malformed or otherwise invalid.",
                          [("Token-0", token or "")])
        if creds.token is None and token is not None:
            raise S3Error(403, "InvalidToken", "The provided token is malformed or otherwise invalid.")
        names = signed_names.split(";")
        if names != sorted(set(names)) or any(n != n.lower() or not n for n in names):
            raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; "
                          "SignedHeaders must be lower-case names in order, separated by ';'.")
        if "host" not in names:
            raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; "
                          "SignedHeaders must include 'host'.")
        unsigned = sorted({k.lower() for k in h.keys() if k.lower().startswith("x-amz-")} - set(names)
                          - ({"x-amz-content-sha256"} if presigned else set()))
        if unsigned:
            raise S3Error(403, "AccessDenied", "There were headers present in the request which were not signed",
                          [("HeadersNotSigned", ", ".join(unsigned))])
        signed = []
        for n in names:
            vals = h.get_all(n)
            if vals is None:
                raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                              "signature you provided. Check your key and signing method.",
                              [("AWSAccessKeyId", akid), ("Missing", n)])
            signed.append((n, vals))
        if presigned:
            payload_hash = h.get("x-amz-content-sha256") or "UNSIGNED-PAYLOAD"
            qpairs = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
        else:
            payload_hash = h.get("x-amz-content-sha256")
            if not payload_hash:
                raise S3Error(400, "InvalidRequest", "Missing required header for this request: "
                              "x-amz-content-sha256")
            qpairs = pairs
        cr, sts, want = sigv4_expected(creds, self.command, h.get("Host") or "", path_bytes, qpairs, signed,
                                       payload_hash, amz_date, region, service)
        if not hmac.compare_digest(want, provided):
            raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.",
                          [("AWSAccessKeyId", akid), ("StringToSign", sts), ("SignatureProvided", provided),
                           ("StringToSignBytes", " ".join("%02x" % c for c in sts.encode())),
                           ("CanonicalRequest", cr),
                           ("CanonicalRequestBytes", " ".join("%02x" % c for c in cr.encode()))])
        self.signing = (creds, amz_date, "%s/%s/%s/aws4_request" % (date, region, service), provided)
        return self.payload(body, payload_hash, self.signing)

    def payload(self, body, payload_hash, signing):
        """The request payload once x-amz-content-sha256 has been checked; aws-chunked bodies are decoded (their
        chunk signatures checked) and a trailing checksum is kept in self.trailer."""
        self.trailer = {}
        if payload_hash is None or payload_hash == "UNSIGNED-PAYLOAD":
            return body
        if payload_hash.startswith("STREAMING-"):
            if payload_hash not in ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"):
                raise S3Error(400, "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                              "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                              "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.")
            return self.decode_aws_chunked(body, payload_hash, signing)
        if not re.match(r"^[0-9a-f]{64}$", payload_hash):
            raise S3Error(400, "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                          "STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid sha256 value.")
        got = hashlib.sha256(body).hexdigest()
        if got != payload_hash:
            raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not "
                          "match what was computed.", [("ClientComputedContentSHA256", payload_hash),
                                                       ("S3ComputedContentSHA256", got)])
        return body

    def decode_aws_chunked(self, body, mode, signing):
        bad = S3Error(400, "IncompleteBody", "The request body is not a valid aws-chunked encoding.")
        signed = mode.startswith("STREAMING-AWS4")
        if signed and signing is None:
            raise S3Error(400, "InvalidArgument", "A signed streaming payload needs a signed request.")
        if signed:
            creds, amz_date, scope, prev = signing
            key = signing_key(creds.secret, scope.split("/")[0], scope.split("/")[1], scope.split("/")[2])
        out = bytearray()
        pos = 0
        while True:
            eol = body.find(b"\r\n", pos)
            if eol < 0:
                raise bad
            line = body[pos:eol].decode("latin-1")
            size_s, _, ext = line.partition(";")
            try:
                size = int(size_s, 16)
            except ValueError:
                raise bad
            chunk = body[eol + 2:eol + 2 + size]
            if len(chunk) != size:
                raise bad
            if signed:
                if not ext.startswith("chunk-signature="):
                    raise bad
                sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256,
                                 hashlib.sha256(chunk).hexdigest()])
                want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, ext[len("chunk-signature="):]):
                    raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                                  "the signature you provided (aws-chunked chunk signature).",
                                  [("StringToSign", sts)])
                prev = want
            pos = eol + 2 + size
            if size == 0:
                break
            if body[pos:pos + 2] != b"\r\n":
                raise bad
            pos += 2
            out += chunk
        # Trailer lines until an empty line.
        tail = body[pos:].decode("latin-1")
        for line in tail.split("\r\n"):
            if not line:
                continue
            k, _, v = line.partition(":")
            self.trailer[k.strip().lower()] = v.strip()
        dl = self.headers.get("x-amz-decoded-content-length")
        if dl is not None and dl.isdigit() and int(dl) != len(out):
            raise S3Error(400, "IncompleteBody", "You did not provide the number of bytes specified by the "
                          "x-amz-decoded-content-length header.")
        return bytes(out)

    # -- buckets ------------------------------------------------------------------------------------------

    def bucket_of(self):
        bucket = self.target[0]
        with self.state.lock:
            return self.state.bucket(bucket)

    def list_buckets(self, body, fault):
        with self.state.lock:
            bs = sorted(self.state.buckets.values(), key=lambda b: b.name)
        inner = "<Owner>%s%s</Owner><Buckets>" % (el("ID", OWNER_ID), el("DisplayName", OWNER_NAME))
        for b in bs:
            inner += "<Bucket>%s%s</Bucket>" % (el("Name", b.name), el("CreationDate", iso8601(b.created)))
        return xml_response(200, xml_doc("ListAllMyBucketsResult", inner + "</Buckets>"))

    def create_bucket(self, body, fault):
        name = self.target[0]
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", name):
            raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.", [("BucketName", name)])
        region = "us-east-1"
        if body.strip():
            root = parse_xml(body)
            lc = root.find("LocationConstraint")
            if lc is not None and lc.text:
                region = lc.text.strip()
        with self.state.lock:
            if name in self.state.buckets:
                raise S3Error(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket "
                              "succeeded and you already own it.", [("BucketName", name)])
            self.state.buckets[name] = Bucket(name, region)
        return Response(200, b"", [("Location", "/" + name)])

    def delete_bucket(self, body, fault):
        name = self.target[0]
        with self.state.lock:
            b = self.state.bucket(name)
            if b.objects:
                raise S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty",
                              [("BucketName", name)])
            del self.state.buckets[name]
        return Response(204)

    def head_bucket(self, body, fault):
        b = self.bucket_of()
        return Response(200, b"", [("x-amz-bucket-region", b.region), ("x-amz-access-point-alias", "false")])

    def get_bucket_location(self, body, fault):
        b = self.bucket_of()
        loc = "" if b.region == "us-east-1" else escape(b.region)
        return xml_response(200, xml_doc("LocationConstraint", loc), [("x-amz-bucket-region", b.region)])

    # -- listings -----------------------------------------------------------------------------------------

    def max_keys(self, q, name="max-keys"):
        v = q.get(name)
        if v is None or v == "":
            return 1000
        if not re.match(r"^-?\d+$", v) or int(v) < 0:
            raise S3Error(400, "InvalidArgument", "Provided max-keys not an integer or within integer range",
                          [("ArgumentName", name), ("ArgumentValue", v)])
        return min(int(v), 1000)

    def contents_xml(self, o, b, enc, owner):
        k = url_encode_key(o.key) if enc else o.key
        x = "<Contents>%s%s%s" % (el("Key", k), el("LastModified", iso8601(o.mtime)),
                                   el("ETag", '"%s"' % self.etag_of(o, b)))
        if o.algo and "no-checksum" not in self.state.modes(b):
            x += el("ChecksumAlgorithm", o.algo)
            x += el("ChecksumType", o.checksum_type)
        x += el("Size", len(o.data))
        if owner:
            x += "<Owner>%s%s</Owner>" % (el("ID", OWNER_ID), el("DisplayName", OWNER_NAME))
        return x + "<StorageClass>STANDARD</StorageClass></Contents>"

    def list_page(self, b, prefix, delim, after, max_keys, token):
        """(entries, more, next token payload or None) in normal or misbehaving order."""
        modes = [m for m in self.state.modes(b) if LIST_MODES.match(m)]
        if modes:
            entries, nxt = self.state.list_misbehaving(b, prefix, delim, after, max_keys, modes, token)
            return entries, nxt is not None, nxt
        tok_after = token[1].encode("utf-8") if token else None
        if after is not None:
            a = after.encode("utf-8")
            tok_after = a if tok_after is None or a > tok_after else tok_after
        if max_keys == 0:
            return [], False, None
        entries, more = self.state.list_entries(b, prefix, delim, tok_after, max_keys)
        nxt = None
        if more and entries:
            last = entries[-1]
            nxt = ("x", last[1].key if last[0] == "o" else last[1])
        return entries, more, nxt

    @staticmethod
    def encode_token(nxt):
        if nxt in ("A", "B"):
            raw = b"c" + nxt.encode()
        else:
            raw = nxt[0].encode() + nxt[1].encode("utf-8")
        return base64.urlsafe_b64encode(b"sluice1" + raw).decode()

    @staticmethod
    def decode_token(tok):
        try:
            raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
            if not raw.startswith(b"sluice1") or len(raw) < 8:
                raise ValueError()
            raw = raw[7:]
            if raw[:1] == b"c" and raw[1:] in (b"A", b"B"):
                return raw[1:].decode()
            if raw[:1] not in (b"x", b"i"):
                raise ValueError()
            return (raw[:1].decode(), raw[1:].decode("utf-8"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise S3Error(400, "InvalidArgument", "The continuation token provided is incorrect",
                          [("ArgumentName", "continuation-token")])

    def list_objects_v2(self, body, fault):
        q = self.target[4]
        b = self.target[0]
        self.bucket_of()
        enc = q.get("encoding-type")
        if enc not in (None, "url"):
            raise S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request",
                          [("ArgumentName", "encoding-type"), ("ArgumentValue", enc)])
        max_keys = self.max_keys(q)
        prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
        token = self.decode_token(q["continuation-token"]) if "continuation-token" in q else None
        if "continuation-token" in q and q["continuation-token"] == "":
            raise S3Error(400, "InvalidArgument", "The continuation token provided is incorrect",
                          [("ArgumentName", "continuation-token")])
        start_after = q.get("start-after") or None
        entries, more, nxt = self.list_page(b, prefix, delim, start_after, max_keys, token)
        e = (lambda s: url_encode_key(s)) if enc else (lambda s: s)
        owner = q.get("fetch-owner") == "true"
        inner = el("Name", b) + el("Prefix", e(prefix))
        if start_after:
            inner += el("StartAfter", e(start_after))
        if "continuation-token" in q:
            inner += el("ContinuationToken", q["continuation-token"])
        if nxt is not None:
            inner += el("NextContinuationToken", self.encode_token(nxt))
        inner += el("KeyCount", len(entries)) + el("MaxKeys", max_keys)
        if delim:
            inner += el("Delimiter", e(delim))
        if enc:
            inner += el("EncodingType", "url")
        inner += el("IsTruncated", "true" if nxt is not None else "false")
        for kind, v in entries:
            if kind == "o":
                inner += self.contents_xml(v, b, enc, owner)
        for kind, v in entries:
            if kind == "p":
                inner += "<CommonPrefixes>%s</CommonPrefixes>" % el("Prefix", e(v))
        return xml_response(200, xml_doc("ListBucketResult", inner))

    def list_objects_v1(self, body, fault):
        q = self.target[4]
        b = self.target[0]
        self.bucket_of()
        enc = q.get("encoding-type")
        if enc not in (None, "url"):
            raise S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request")
        max_keys = self.max_keys(q)
        prefix, delim, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
        entries, more, nxt = self.list_page(b, prefix, delim, marker or None, max_keys, None)
        if nxt is not None and not isinstance(nxt, tuple):
            nxt = None  # token-cycle has no V1 form
        e = (lambda s: url_encode_key(s)) if enc else (lambda s: s)
        inner = el("Name", b) + el("Prefix", e(prefix)) + el("Marker", e(marker))
        if nxt is not None and delim:
            inner += el("NextMarker", e(nxt[1]))
        inner += el("MaxKeys", max_keys)
        if delim:
            inner += el("Delimiter", e(delim))
        if enc:
            inner += el("EncodingType", "url")
        inner += el("IsTruncated", "true" if nxt is not None else "false")
        for kind, v in entries:
            if kind == "o":
                inner += self.contents_xml(v, b, enc, True)
        for kind, v in entries:
            if kind == "p":
                inner += "<CommonPrefixes>%s</CommonPrefixes>" % el("Prefix", e(v))
        return xml_response(200, xml_doc("ListBucketResult", inner))

    # -- objects ------------------------------------------------------------------------------------------

    def etag_of(self, o, bucket):
        if "no-etag-md5" in self.state.modes(bucket):
            return hashlib.md5(b"not-the-md5:" + o.etag.encode()).hexdigest()
        return o.etag

    def live(self, bucket, key):
        o = self.state.lookup(bucket, key)
        if o is None:
            raise no_such_key(key)
        return o

    def object_headers(self, o, bucket):
        hdrs = [("Content-Type", o.content_type), ("ETag", '"%s"' % self.etag_of(o, bucket)),
                ("Last-Modified", http_date(o.mtime)), ("Accept-Ranges", "bytes")]
        for k, v in o.headers.items():
            hdrs.append((k, v))
        for k, v in sorted(o.meta.items()):
            hdrs.append(("x-amz-meta-" + k, v))
        return hdrs

    def check_get_conditions(self, o, bucket):
        """If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304), with RFC 7232's
        precedence as S3 documents it."""
        h = self.headers
        etag = self.etag_of(o, bucket)
        mtime = int(o.mtime)

        def etags(v):
            return [x.strip().strip('"') for x in v.split(",")]

        def when(v):
            try:
                return parsedate_to_datetime(v).timestamp()
            except (TypeError, ValueError):
                return None

        im, inm = h.get("If-Match"), h.get("If-None-Match")
        if im is not None:
            if "*" not in etags(im) and etag not in etags(im):
                raise precondition_failed("If-Match")
        elif h.get("If-Unmodified-Since") is not None:
            t = when(h["If-Unmodified-Since"])
            if t is not None and mtime > t:
                raise precondition_failed("If-Unmodified-Since")
        nm_hdrs = [("ETag", '"%s"' % etag), ("Last-Modified", http_date(o.mtime))]
        if inm is not None:
            if "*" in etags(inm) or etag in etags(inm):
                raise NotModified(nm_hdrs)
        elif h.get("If-Modified-Since") is not None:
            t = when(h["If-Modified-Since"])
            if t is not None and mtime <= t:
                raise NotModified(nm_hdrs)

    def get_object(self, body, fault):
        bucket, key, _, _, q = self.target
        self.bucket_of()
        o = self.live(bucket, key)
        self.check_get_conditions(o, bucket)
        modes = self.state.modes(bucket)
        hdrs = self.object_headers(o, bucket)
        want_sum = (self.headers.get("x-amz-checksum-mode") or "").upper() == "ENABLED" and o.algo and \
            "no-checksum" not in modes
        data = o.data
        size = len(data)
        status = 200
        pn = q.get("partNumber")
        if pn is not None:
            if o.parts:  # only with partNumber, as S3
                hdrs.append(("x-amz-mp-parts-count", str(len(o.parts))))
            if not pn.isdigit() or not 1 <= int(pn) <= MAX_PART_NUMBER:
                raise S3Error(400, "InvalidArgument", "Part number must be an integer between 1 and 10000, "
                              "inclusive", [("ArgumentName", "partNumber"), ("ArgumentValue", pn)])
            if self.headers.get("Range"):
                raise S3Error(400, "InvalidRequest", "Cannot specify both Range header and partNumber query "
                              "parameter")
            parts = o.parts or [(0, size, o.checksum)]
            n = int(pn)
            if n > len(parts):
                raise S3Error(416, "InvalidPartNumber", "The requested partnumber is not satisfiable",
                              [("PartNumberRequested", n), ("ActualPartCount", len(parts))])
            off, psize, psum = parts[n - 1]
            hdrs.append(("Content-Range", "bytes %d-%d/%d" % (off, off + psize - 1, size) if psize else
                         "bytes */%d" % size))
            if want_sum and psum:
                hdrs.append((CHECKSUMS[o.algo][0], psum))
            body = data[off:off + psize]
            status = 206
        else:
            rng = self.headers.get("Range")
            r = parse_range(rng, size) if rng and "ignore-range" not in modes else None
            if r == "unsatisfiable":
                raise S3Error(416, "InvalidRange", "The requested range is not satisfiable",
                              [("RangeRequested", rng), ("ActualObjectSize", size)],
                              [("Content-Range", "bytes */%d" % size)])
            if r is not None:
                a, z = r
                body = data[a:z + 1]
                status = 206
                hdrs.append(("Content-Range", "bytes %d-%d/%d" % (a, z, size)))
            else:
                body = data
                if want_sum:
                    hdrs.append((CHECKSUMS[o.algo][0], o.checksum))
                    hdrs.append(("x-amz-checksum-type", o.checksum_type))
        if "short-body" in modes:
            body = body[:len(body) // 2]
        elif "long-body" in modes:
            body = body + b"#sixteen extra!#"
        return Response(status, body, hdrs, media=True, length=len(body))

    def write_headers(self):
        """Content-Type, the stored representation headers and x-amz-meta-* of an upload request."""
        h = self.headers
        stored = {}
        for name in ("Content-Encoding", "Content-Disposition", "Content-Language", "Cache-Control", "Expires"):
            v = h.get(name)
            if v is not None:
                if name == "Content-Encoding":
                    v = ",".join(x for x in (s.strip() for s in v.split(",")) if x and x.lower() != "aws-chunked")
                    if not v:
                        continue
                stored[name] = v
        meta = {}
        size = 0
        for k, v in h.items():
            lk = k.lower()
            if lk.startswith("x-amz-meta-"):
                name = lk[len("x-amz-meta-"):]
                meta[name] = v if name not in meta else meta[name] + "," + v
                size += len(name) + len(v.encode("utf-8", "surrogateescape"))
        if size > MAX_META_BYTES:
            raise S3Error(400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size",
                          [("Size", size), ("MaxSizeAllowed", MAX_META_BYTES)])
        return h.get("Content-Type"), stored, meta

    def checksum_given(self, algo_hint=None):
        """(algorithm, raw digest) from an x-amz-checksum-* header or trailer, or (None, None); a malformed value
        is InvalidRequest."""
        found = []
        for algo, (hdr, _, fn) in CHECKSUMS.items():
            v = self.headers.get(hdr)
            if v is None:
                v = getattr(self, "trailer", {}).get(hdr)
            if v is None:
                continue
            try:
                raw = base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                raw = None
            if raw is None or len(raw) != len(fn(b"")):
                raise S3Error(400, "InvalidRequest", "Value for %s header is invalid." % hdr)
            found.append((algo, raw))
        if len(found) > 1:
            raise S3Error(400, "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum "
                          "Types are not allowed.")
        sdk = self.headers.get("x-amz-sdk-checksum-algorithm")
        if found and sdk and sdk.upper() != found[0][0]:
            raise S3Error(400, "InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.")
        return found[0] if found else (None, None)

    def verify_body(self, data, bucket):
        """Content-MD5 and x-amz-checksum-*: BadDigest on a mismatch. Returns (algo, raw checksum or None)."""
        md5 = self.headers.get("Content-MD5")
        if md5 is not None:
            try:
                raw = base64.b64decode(md5, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 16:
                raise S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.",
                              [("Content-MD5", md5)])
            if raw != hashlib.md5(data).digest():
                raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.",
                              [("ExpectedDigest", md5), ("CalculatedDigest", b64(hashlib.md5(data).digest()))])
        algo, raw = self.checksum_given()
        if algo and raw != CHECKSUMS[algo][2](data):
            raise S3Error(400, "BadDigest", "The %s you specified did not match the calculated checksum."
                          % algo.replace("CRC32C", "CRC32C"))
        if "checksum-required" in self.state.modes(bucket) and algo != "CRC32C":
            raise S3Error(400, "InvalidRequest", "This bucket requires an x-amz-checksum-crc32c on every upload "
                          "(test server bucket mode checksum-required).")
        return algo, raw

    def conditional_write(self, key):
        """check(cur) for If-None-Match: * and If-Match on PutObject / CompleteMultipartUpload / CopyObject."""
        inm, im = self.headers.get("If-None-Match"), self.headers.get("If-Match")
        if inm is not None and inm.strip() != "*":
            raise S3Error(501, "NotImplemented", "A header you provided implies functionality that is not "
                          "implemented", [("Header", "If-None-Match")])
        bucket = self.target[0]

        def check(cur):
            if inm is not None and cur is not None:
                raise precondition_failed("If-None-Match")
            if im is not None:
                if cur is None:
                    raise no_such_key(key)
                if im.strip().strip('"') not in ("*", self.etag_of(cur, bucket)):
                    raise precondition_failed("If-Match")
        return check if (inm is not None or im is not None) else None

    def check_key(self, key):
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise S3Error(400, "KeyTooLongError", "Your key is too long", [("Size", len(key.encode("utf-8"))),
                                                                          ("MaxSizeAllowed", MAX_KEY_BYTES)])

    def need_length(self):
        if self.headers.get("Content-Length") is None and "chunked" not in (
                self.headers.get("Transfer-Encoding") or "").lower():
            raise S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")

    def put_object(self, body, fault):
        bucket, key = self.target[0], self.target[1]
        self.bucket_of()
        self.check_key(key)
        self.need_length()
        if fault and fault[0] == "corrupt" and body:
            body = self.corrupt(body, fault)
        ctype, stored, meta = self.write_headers()
        algo, raw = self.verify_body(body, bucket)
        if fault and fault[0] == "truncate":
            body = body[:len(body) // 2]
            raw = CHECKSUMS[algo][2](body) if algo else None
        if algo is None and "default-crc64nvme" in self.state.modes(bucket):
            algo, raw = "CRC64NVME", _crc64nvme_raw(body)
        o = Obj(key, body, ctype, stored, meta, algo, b64(raw) if raw else None, "FULL_OBJECT" if algo else None)
        self.state.store(bucket, o, self.conditional_write(key))
        hdrs = [("ETag", '"%s"' % self.etag_of(o, bucket))]
        if algo and "no-checksum" not in self.state.modes(bucket):
            hdrs += [(CHECKSUMS[algo][0], o.checksum), ("x-amz-checksum-type", "FULL_OBJECT")]
        return Response(200, b"", hdrs)

    def delete_object(self, body, fault):
        bucket, key = self.target[0], self.target[1]
        self.bucket_of()
        self.state.delete(bucket, key)
        return Response(204)

    def delete_objects(self, body, fault):
        bucket = self.target[0]
        self.bucket_of()
        if self.headers.get("Content-MD5") is None and not any(
                self.headers.get(h[0]) is not None or getattr(self, "trailer", {}).get(h[0])
                for h in CHECKSUMS.values()):
            raise S3Error(400, "InvalidRequest", "Missing required header for this request: Content-MD5 OR "
                          "x-amz-checksum-*")
        self.verify_body(body, None)
        root = parse_xml(body)
        if root.tag != "Delete":
            raise malformed_xml()
        objs = root.findall("Object")
        if not objs or len(objs) > MAX_DELETE_KEYS:
            raise malformed_xml()
        quiet = (root.findtext("Quiet") or "").strip().lower() == "true"
        errors_mode = "delete-errors" in self.state.modes(bucket)
        inner = ""
        for i, ob in enumerate(objs):
            k = ob.findtext("Key")
            if k is None:
                raise malformed_xml()
            if errors_mode and i % 2 == 1:
                inner += "<Error>%s%s%s</Error>" % (el("Key", k), el("Code", "InternalError"),
                                                    el("Message", "We encountered an internal error. Please try "
                                                       "again."))
                continue
            self.state.delete(bucket, k)
            if not quiet:
                inner += "<Deleted>%s</Deleted>" % el("Key", k)
        return xml_response(200, xml_doc("DeleteResult", inner))

    # -- copies -------------------------------------------------------------------------------------------

    def copy_source(self):
        """The source object of a copy (x-amz-copy-source, percent-encoded), its conditions checked."""
        src = self.headers.get("x-amz-copy-source") or ""
        src, _, vq = src.partition("?")
        try:
            path = unquote_to_bytes(src).decode("utf-8")
        except UnicodeDecodeError:
            raise S3Error(400, "InvalidArgument", "Invalid copy source encoding",
                          [("ArgumentName", "x-amz-copy-source")])
        path = path[1:] if path.startswith("/") else path
        sb, _, sk = path.partition("/")
        if not sb or not sk:
            raise S3Error(400, "InvalidArgument", "Invalid copy source object key",
                          [("ArgumentName", "x-amz-copy-source"), ("ArgumentValue", src)])
        if vq and not vq.startswith("versionId=") or (vq and vq[len("versionId="):] not in ("", "null")):
            raise S3Error(404, "NoSuchVersion", "The specified version does not exist.")
        with self.state.lock:
            b = self.state.buckets.get(sb)
            o = b.objects.get(sk.encode("utf-8")) if b else None
        if b is None:
            raise no_such_bucket(sb)
        if o is None:
            raise no_such_key(sk)
        h = self.headers
        etag = self.etag_of(o, sb)

        def when(v):
            try:
                return parsedate_to_datetime(v).timestamp()
            except (TypeError, ValueError):
                return None
        im, inm = h.get("x-amz-copy-source-if-match"), h.get("x-amz-copy-source-if-none-match")
        ims, ius = h.get("x-amz-copy-source-if-modified-since"), h.get("x-amz-copy-source-if-unmodified-since")
        if im is not None and im.strip().strip('"') != etag:
            raise precondition_failed("x-amz-copy-source-If-Match")
        if inm is not None and inm.strip().strip('"') == etag:
            raise precondition_failed("x-amz-copy-source-If-None-Match")
        if im is None and ius is not None and when(ius) is not None and int(o.mtime) > when(ius):
            raise precondition_failed("x-amz-copy-source-If-Unmodified-Since")
        if inm is None and ims is not None and when(ims) is not None and int(o.mtime) <= when(ims):
            raise precondition_failed("x-amz-copy-source-If-Modified-Since")
        return sb, sk, o

    def copy_object(self, body, fault):
        bucket, key = self.target[0], self.target[1]
        self.bucket_of()
        self.check_key(key)
        sb, sk, src = self.copy_source()
        directive = (self.headers.get("x-amz-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error(400, "InvalidArgument", "Unknown metadata directive.",
                          [("ArgumentName", "x-amz-metadata-directive"), ("ArgumentValue", directive)])
        if (sb, sk) == (bucket, key) and directive == "COPY":
            raise S3Error(400, "InvalidRequest", "This copy request is illegal because it is trying to copy an "
                          "object to itself without changing the object's metadata, storage class, website "
                          "redirect location or encryption attributes.")
        if directive == "REPLACE":
            ctype, stored, meta = self.write_headers()
        else:
            ctype, stored, meta = src.content_type, dict(src.headers), dict(src.meta)
        algo = (self.headers.get("x-amz-checksum-algorithm") or src.algo or "").upper() or None
        if algo and algo not in CHECKSUMS:
            raise S3Error(400, "InvalidRequest", "Checksum algorithm provided is unsupported.")
        data = src.data
        if fault and fault[0] == "truncate":
            data = data[:len(data) // 2]
        if algo is None and "default-crc64nvme" in self.state.modes(bucket):
            algo = "CRC64NVME"
        o = Obj(key, data, ctype, stored, meta, algo, b64(CHECKSUMS[algo][2](data)) if algo else None,
                "FULL_OBJECT" if algo else None)
        self.state.store(bucket, o, self.conditional_write(key))
        inner = el("LastModified", iso8601(o.mtime)) + el("ETag", '"%s"' % self.etag_of(o, bucket))
        if algo and "no-checksum" not in self.state.modes(bucket):
            inner += el(CHECKSUMS[algo][1], o.checksum) + el("ChecksumType", "FULL_OBJECT")
        return xml_response(200, xml_doc("CopyObjectResult", inner))

    # -- multipart uploads --------------------------------------------------------------------------------

    def upload_of(self):
        bucket, key, _, _, q = self.target
        self.bucket_of()
        uid = q.get("uploadId") or ""
        with self.state.lock:
            u = self.state.uploads.get(uid)
        if u is None or u.bucket != bucket or u.key != key:
            raise no_such_upload(uid)
        return u

    def create_upload(self, body, fault):
        bucket, key = self.target[0], self.target[1]
        self.bucket_of()
        self.check_key(key)
        ctype, stored, meta = self.write_headers()
        algo = (self.headers.get("x-amz-checksum-algorithm") or "").upper() or None
        if algo and algo not in CHECKSUMS:
            raise S3Error(400, "InvalidRequest", "Checksum algorithm provided is unsupported. Please try again "
                          "with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
        ctype_sum = (self.headers.get("x-amz-checksum-type") or "").upper() or (
            ("FULL_OBJECT" if algo == "CRC64NVME" else "COMPOSITE") if algo else None)
        if ctype_sum not in (None, "COMPOSITE", "FULL_OBJECT") or (ctype_sum == "FULL_OBJECT" and algo not in (
                "CRC32", "CRC32C", "CRC64NVME")) or (ctype_sum == "COMPOSITE" and algo == "CRC64NVME") or (
                ctype_sum and not algo):
            raise S3Error(400, "InvalidRequest", "The %s checksum type cannot be used with the %s checksum algorithm."
                          % (ctype_sum, algo))
        if "checksum-required" in self.state.modes(bucket) and algo != "CRC32C":
            raise S3Error(400, "InvalidRequest", "This bucket requires x-amz-checksum-algorithm: CRC32C (test "
                          "server bucket mode checksum-required).")
        uid = secrets.token_urlsafe(48)
        with self.state.lock:
            self.state.uploads[uid] = Upload(uid, bucket, key, ctype, stored, meta, algo, ctype_sum)
        inner = el("Bucket", bucket) + el("Key", key) + el("UploadId", uid)
        hdrs = []
        if algo and "no-checksum" not in self.state.modes(bucket):
            hdrs = [("x-amz-checksum-algorithm", algo), ("x-amz-checksum-type", ctype_sum)]
        return xml_response(200, xml_doc("InitiateMultipartUploadResult", inner), hdrs)

    def part_number(self):
        pn = self.target[4].get("partNumber") or ""
        if not pn.isdigit() or not 1 <= int(pn) <= MAX_PART_NUMBER:
            raise S3Error(400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive",
                          [("ArgumentName", "partNumber"), ("ArgumentValue", pn)])
        return int(pn)

    def upload_part(self, body, fault):
        bucket = self.target[0]
        u = self.upload_of()
        n = self.part_number()
        self.need_length()
        if len(body) > MAX_PART_BYTES:
            raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        if fault and fault[0] == "corrupt" and body:
            body = self.corrupt(body, fault)
        algo, raw = self.verify_body(body, bucket)
        if u.algo and algo != u.algo:
            raise S3Error(400, "InvalidRequest", "Checksum Type mismatch occurred, expected checksum Type: %s, "
                          "actual checksum Type: %s" % (u.algo.lower(), (algo or "null").lower()))
        if algo and not u.algo:
            raise S3Error(400, "InvalidRequest", "Checksum Type mismatch occurred, expected checksum Type: null, "
                          "actual checksum Type: %s" % algo.lower())
        p = Part(body, raw)
        with self.state.lock:
            if self.state.uploads.get(u.uid) is not u:
                raise no_such_upload(u.uid)
            u.parts[n] = p
        hdrs = [("ETag", '"%s"' % p.md5.hex())]
        if algo and "no-checksum" not in self.state.modes(bucket):
            hdrs.append((CHECKSUMS[algo][0], b64(raw)))
        return Response(200, b"", hdrs)

    def upload_part_copy(self, body, fault):
        u = self.upload_of()
        n = self.part_number()
        sb, sk, src = self.copy_source()
        data = src.data
        rng = self.headers.get("x-amz-copy-source-range")
        if rng is not None:
            m = re.match(r"^bytes=(\d+)-(\d+)$", rng.strip())
            if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) >= len(data):
                raise S3Error(400, "InvalidArgument", "Range specified is not valid for source object of size: %d"
                              % len(data), [("ArgumentName", "x-amz-copy-source-range"), ("ArgumentValue", rng)])
            data = data[int(m.group(1)):int(m.group(2)) + 1]
        raw = CHECKSUMS[u.algo][2](data) if u.algo else None
        p = Part(data, raw)
        with self.state.lock:
            if self.state.uploads.get(u.uid) is not u:
                raise no_such_upload(u.uid)
            u.parts[n] = p
        inner = el("LastModified", iso8601(p.mtime)) + el("ETag", '"%s"' % p.md5.hex())
        if raw and "no-checksum" not in self.state.modes(u.bucket):
            inner += el(CHECKSUMS[u.algo][1], b64(raw))
        return xml_response(200, xml_doc("CopyPartResult", inner))

    def list_parts(self, body, fault):
        u = self.upload_of()
        q = self.target[4]
        try:
            max_parts = min(int(q.get("max-parts") or 1000), 1000)
            marker = int(q.get("part-number-marker") or 0)
        except ValueError:
            raise S3Error(400, "InvalidArgument", "max-parts and part-number-marker must be integers")
        with self.state.lock:
            nums = sorted(n for n in u.parts if n > marker)
            parts = [(n, u.parts[n]) for n in nums[:max_parts]]
        more = len(nums) > max_parts
        nosum = "no-checksum" in self.state.modes(u.bucket)
        inner = el("Bucket", u.bucket) + el("Key", u.key) + el("UploadId", u.uid)
        inner += el("PartNumberMarker", marker)
        if parts:
            inner += el("NextPartNumberMarker", parts[-1][0])
        inner += el("MaxParts", max_parts) + el("IsTruncated", "true" if more else "false")
        for n, p in parts:
            inner += "<Part>%s%s%s%s" % (el("PartNumber", n), el("LastModified", iso8601(p.mtime)),
                                         el("ETag", '"%s"' % p.md5.hex()), el("Size", len(p.data)))
            if p.checksum_raw and not nosum:
                inner += el(CHECKSUMS[u.algo][1], b64(p.checksum_raw))
            inner += "</Part>"
        owner = "%s%s" % (el("ID", OWNER_ID), el("DisplayName", OWNER_NAME))
        inner += "<Initiator>%s</Initiator><Owner>%s</Owner><StorageClass>STANDARD</StorageClass>" % (owner, owner)
        if u.algo and not nosum:
            inner += el("ChecksumAlgorithm", u.algo) + el("ChecksumType", u.checksum_type)
        return xml_response(200, xml_doc("ListPartsResult", inner))

    def complete_upload(self, body, fault):
        bucket, key = self.target[0], self.target[1]
        u = self.upload_of()
        root = parse_xml(body)
        if root.tag != "CompleteMultipartUpload":
            raise malformed_xml()
        given = []
        for pe in root.findall("Part"):
            pn, etag = pe.findtext("PartNumber"), pe.findtext("ETag")
            if pn is None or not pn.strip().isdigit() or etag is None:
                raise malformed_xml()
            sums = {a: pe.findtext(CHECKSUMS[a][1]) for a in CHECKSUMS if pe.findtext(CHECKSUMS[a][1]) is not None}
            given.append((int(pn.strip()), etag.strip().strip('"'), sums))
        if not given:
            raise malformed_xml()
        nums = [g[0] for g in given]
        if nums != sorted(nums) or len(set(nums)) != len(nums):
            raise S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts must be "
                          "ordered by part number.", [("UploadId", u.uid)])
        with self.state.lock:
            have = dict(u.parts)
        chosen = []
        for n, etag, sums in given:
            p = have.get(n)
            if p is None or p.md5.hex() != etag:
                raise S3Error(400, "InvalidPart", "One or more of the specified parts could not be found.  The part "
                              "may not have been uploaded, or the specified entity tag may not match the part's "
                              "entity tag.", [("UploadId", u.uid), ("PartNumber", n), ("ETag", etag)])
            for a, v in sums.items():
                if a != u.algo or (p.checksum_raw is not None and v.strip() != b64(p.checksum_raw)):
                    raise S3Error(400, "InvalidPart", "One or more of the specified parts could not be found.  The "
                                  "part may not have been uploaded, or the specified part checksum may not match the "
                                  "part's checksum.", [("UploadId", u.uid), ("PartNumber", n)])
            chosen.append((n, p))
        for i, (n, p) in enumerate(chosen[:-1]):
            if len(p.data) < self.state.min_part_size:
                raise S3Error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed "
                              "object size.", [("ProposedSize", len(p.data)), ("MinSizeAllowed",
                                                                               self.state.min_part_size),
                                               ("PartNumber", n), ("ETag", p.md5.hex())])
        data = b"".join(p.data for _, p in chosen)
        etag = "%s-%d" % (hashlib.md5(b"".join(p.md5 for _, p in chosen)).hexdigest(), len(chosen))
        checksum = None
        if u.algo:
            if u.checksum_type == "FULL_OBJECT":
                checksum = b64(CHECKSUMS[u.algo][2](data))
            else:
                checksum = composite(u.algo, [p.checksum_raw for _, p in chosen])
            whole = self.headers.get(CHECKSUMS[u.algo][0])
            if whole is not None and whole.strip() != checksum:
                raise S3Error(400, "BadDigest", "The %s you specified did not match the calculated checksum."
                              % u.algo)
        parts, off = [], 0
        for _, p in chosen:
            parts.append((off, len(p.data), b64(p.checksum_raw) if p.checksum_raw else None))
            off += len(p.data)
        if fault and fault[0] == "truncate":
            data = data[:len(data) // 2]
            parts = [(0, len(data), None)]
        algo, ctype_sum = u.algo, u.checksum_type
        if algo is None and "default-crc64nvme" in self.state.modes(bucket):
            algo, ctype_sum, checksum = "CRC64NVME", "FULL_OBJECT", b64(_crc64nvme_raw(data))
        o = Obj(key, data, u.content_type, u.headers, u.meta, algo, checksum, ctype_sum, etag, parts)
        check = self.conditional_write(key)

        def check_upload(cur):
            if self.state.uploads.get(u.uid) is not u:
                raise no_such_upload(u.uid)
            if check:
                check(cur)
            del self.state.uploads[u.uid]
        self.state.store(bucket, o, check_upload)
        inner = el("Location", "http://%s/%s/%s" % (self.headers.get("Host") or "", bucket, quote(key)))
        inner += el("Bucket", bucket) + el("Key", key) + el("ETag", '"%s"' % self.etag_of(o, bucket))
        if algo and "no-checksum" not in self.state.modes(bucket):
            inner += el(CHECKSUMS[algo][1], o.checksum) + el("ChecksumType", ctype_sum)
        return xml_response(200, xml_doc("CompleteMultipartUploadResult", inner))

    def abort_upload(self, body, fault):
        u = self.upload_of()
        with self.state.lock:
            self.state.uploads.pop(u.uid, None)
        return Response(204)

    def list_uploads(self, body, fault):
        bucket = self.target[0]
        q = self.target[4]
        self.bucket_of()
        prefix = q.get("prefix", "")
        km, um = q.get("key-marker", ""), q.get("upload-id-marker", "")
        try:
            max_uploads = min(int(q.get("max-uploads") or 1000), 1000)
        except ValueError:
            raise S3Error(400, "InvalidArgument", "max-uploads must be an integer")
        with self.state.lock:
            ups = sorted(((u.key.encode("utf-8"), u.initiated, u.uid, u) for u in self.state.uploads.values()
                          if u.bucket == bucket and u.key.startswith(prefix)), key=lambda t: (t[0], t[1]))
        if km:
            kb = km.encode("utf-8")
            ups = [t for t in ups if t[0] > kb or (t[0] == kb and um and t[2] > um)]
        page = ups[:max_uploads]
        more = len(ups) > max_uploads
        inner = el("Bucket", bucket) + el("KeyMarker", km) + el("UploadIdMarker", um)
        if more:
            inner += el("NextKeyMarker", page[-1][3].key) + el("NextUploadIdMarker", page[-1][2])
        inner += el("Prefix", prefix) + el("MaxUploads", max_uploads)
        inner += el("IsTruncated", "true" if more else "false")
        owner = "%s%s" % (el("ID", OWNER_ID), el("DisplayName", OWNER_NAME))
        for _, t, uid, u in page:
            inner += "<Upload>%s%s<Initiator>%s</Initiator><Owner>%s</Owner>%s%s" % (
                el("Key", u.key), el("UploadId", uid), owner, owner, el("StorageClass", "STANDARD"),
                el("Initiated", iso8601(t)))
            if u.algo:
                inner += el("ChecksumAlgorithm", u.algo)
            inner += "</Upload>"
        return xml_response(200, xml_doc("ListMultipartUploadsResult", inner))

    # -- fake AWS credential endpoints (the meta port) ------------------------------------------------------

    def route_meta(self, verb, path, q):
        if path == "/" and verb in ("GET", "POST"):
            return "sts.AssumeRoleWithWebIdentity", self.sts, "meta"
        if path == "/latest/api/token" and verb == "PUT":
            return "imds.token", self.imds_token, "meta"
        if path.startswith("/latest/meta-data/iam/security-credentials"):
            return "imds.credentials", self.imds, "meta"
        if path.startswith("/latest/"):
            return "imds.get", self.imds, "meta"
        if path.startswith("/container/") and verb == "GET":
            return "container.credentials", self.container, "meta"
        return "unknown", self.meta_not_found, "meta"

    def meta_not_found(self, body, fault):
        return Response(404, b"Not Found\n", [("Content-Type", "text/plain")])

    def sts_error(self, status, code, message, sender=True):
        inner = "<Error>%s%s%s</Error>%s" % (el("Type", "Sender" if sender else "Receiver"), el("Code", code),
                                            el("Message", message), el("RequestId", str(uuid.uuid4())))
        return xml_response(status, xml_doc("ErrorResponse", inner, STS_NS))

    def sts(self, body, fault):
        form = dict(self.target[4])
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if self.command == "POST":
            if body and ctype != "application/x-www-form-urlencoded":
                return self.sts_error(400, "InvalidParameterValue", "The body must be application/x-www-form-"
                                      "urlencoded")
            try:
                for k, v in parse_query_pairs(body.decode("latin-1").replace("+", "%20")):
                    form[k] = v
            except UnicodeDecodeError:
                return self.sts_error(400, "MalformedInput", "Invalid UTF-8 in the request body")
        action = form.get("Action")
        if action != "AssumeRoleWithWebIdentity":
            return self.sts_error(400, "InvalidAction", "Could not find operation %s for version %s"
                                  % (action, form.get("Version")))
        if form.get("Version") != "2011-06-15":
            return self.sts_error(400, "InvalidParameterValue", "Version must be 2011-06-15")
        for need in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not form.get(need):
                return self.sts_error(400, "MissingParameter", "The request must contain the parameter %s" % need)
        if not re.match(r"^[\w+=,.@-]{2,64}$", form["RoleSessionName"]):
            return self.sts_error(400, "ValidationError", "1 validation error detected: Value at 'roleSessionName' "
                                  "failed to satisfy constraint")
        opts = self.state.opts
        if opts.web_identity_token is not None and form["WebIdentityToken"] != opts.web_identity_token:
            return self.sts_error(400, "InvalidIdentityToken", "Couldn't verify the web identity token.")
        if opts.role_arn is not None and form["RoleArn"] != opts.role_arn:
            return self.sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        lifetime = self.state.credential_lifetime_s
        if form.get("DurationSeconds"):
            try:
                d = int(form["DurationSeconds"])
            except ValueError:
                d = -1
            if not 900 <= d <= 43200:
                return self.sts_error(400, "ValidationError", "Value at 'durationSeconds' failed to satisfy "
                                      "constraint: Member must have value between 900 and 43200")
            lifetime = min(lifetime, d)
        c = self.state.issue_creds("sts", lifetime)
        role = form["RoleArn"].rsplit("/", 1)[-1]
        arn = "arn:aws:sts::123456789012:assumed-role/%s/%s" % (role, form["RoleSessionName"])
        inner = ("<AssumeRoleWithWebIdentityResult>%s%s<AssumedRoleUser>%s%s</AssumedRoleUser>"
                 "<Credentials>%s%s%s%s</Credentials>%s</AssumeRoleWithWebIdentityResult>"
                 "<ResponseMetadata>%s</ResponseMetadata>") % (
            el("SubjectFromWebIdentityToken", "system:serviceaccount:sluice:test"), el("Audience", "sts.amazonaws.com"),
            el("Arn", arn), el("AssumedRoleId", "AROASLUICETEST:%s" % form["RoleSessionName"]),
            el("AccessKeyId", c.akid), el("SecretAccessKey", c.secret), el("SessionToken", c.token),
            el("Expiration", iso8601_s(c.expiry)), el("Provider", "sluice-test"), el("RequestId", str(uuid.uuid4())))
        return xml_response(200, xml_doc("AssumeRoleWithWebIdentityResponse", inner, STS_NS))

    def imds_token(self, body, fault):
        if self.headers.get("X-Forwarded-For") is not None:
            return Response(403, b"", [("Content-Type", "text/plain")])
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return Response(400, b"", [("Content-Type", "text/plain")])
        tok = "AQAEA" + secrets.token_urlsafe(40)
        with self.state.lock:
            now = time.time()
            self.state.imds_tokens = {t: e for t, e in self.state.imds_tokens.items() if e > now}
            self.state.imds_tokens[tok] = now + int(ttl)
        return Response(200, tok.encode(), [("Content-Type", "text/plain"),
                                            ("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

    def imds(self, body, fault):
        if self.command != "GET":
            return Response(405, b"", [("Content-Type", "text/plain")])
        tok = self.headers.get("X-aws-ec2-metadata-token")
        if tok is not None:
            with self.state.lock:
                exp = self.state.imds_tokens.get(tok)
            if exp is None or exp <= time.time():
                return Response(401, b"", [("Content-Type", "text/plain")])
        elif self.state.imdsv2_required:
            return Response(401, b"", [("Content-Type", "text/plain")])
        path = self.target[2].decode("utf-8")
        role = self.state.opts.imds_role
        base = "/latest/meta-data/iam/security-credentials/"
        text = None
        if path in (base, base[:-1]):
            text = role
        elif path == base + role:
            c = self.state.issue_creds("imds")
            return Response(200, json.dumps({
                "Code": "Success", "LastUpdated": iso8601_s(time.time()), "Type": "AWS-HMAC", "AccessKeyId": c.akid,
                "SecretAccessKey": c.secret, "Token": c.token, "Expiration": iso8601_s(c.expiry)}, indent=2).encode(),
                [("Content-Type", "text/plain")])
        elif path == "/latest/meta-data/placement/region":
            text = self.state.opts.region
        elif path == "/latest/meta-data/placement/availability-zone":
            text = self.state.opts.region + "a"
        elif path == "/latest/meta-data/instance-id":
            text = "i-0123456789abcdef0"
        elif path == "/latest/dynamic/instance-identity/document":
            text = json.dumps({"region": self.state.opts.region, "instanceId": "i-0123456789abcdef0",
                               "accountId": "123456789012"})
        if text is None:
            return Response(404, b"", [("Content-Type", "text/html")])
        return Response(200, text.encode(), [("Content-Type", "text/plain")])

    def container(self, body, fault):
        want = self.state.opts.container_token
        if want is not None and self.headers.get("Authorization") != want:
            return Response(401, json.dumps({"code": "InvalidToken", "message": "Authorization token is missing "
                                             "or invalid"}).encode(), [("Content-Type", "application/json")])
        c = self.state.issue_creds("container")
        return Response(200, json.dumps({
            "AccessKeyId": c.akid, "SecretAccessKey": c.secret, "Token": c.token,
            "Expiration": iso8601_s(c.expiry), "RoleArn": "arn:aws:iam::123456789012:role/sluice-test"}).encode(),
            [("Content-Type", "application/json")])

    # -- control endpoints ----------------------------------------------------------------------------------

    def json_out(self, value, status=200):
        return Response(status, json.dumps(value).encode(), [("Content-Type", "application/json")])

    def json_in(self, body):
        try:
            v = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise S3Error(400, "MalformedJSON", "The control request body is not JSON")
        if not isinstance(v, dict):
            raise S3Error(400, "MalformedJSON", "The control request body must be a JSON object")
        return v

    def stats_get(self, body, fault):
        st = self.state
        with st.lock:
            nobj = sum(len(b.objects) for b in st.buckets.values())
            nb = len(st.buckets)
            nup = len(st.uploads)
        with st.stats_lock:
            out = {"connections": st.connections, "api_connections": st.api_connections,
                   "requests": dict(st.requests), "requests_total": sum(st.requests.values()),
                   "api_in_flight": st.api_in_flight, "buckets": nb, "objects": nobj,
                   "open_multipart_uploads": nup, "objects_created": st.objects_created,
                   "auth_failures": st.auth_failures, "credentials_issued": dict(st.credentials_issued)}
        return self.json_out(out)

    def stats_reset(self, body, fault):
        self.state.reset_stats()
        return self.json_out({})

    def config(self, body, fault):
        st = self.state
        if self.command == "POST":
            cfg = self.json_in(body)
            keys = ("delay_ms", "credential_lifetime_s", "anonymous_ok", "min_part_size", "bucket_modes",
                    "outage_s", "outage_status", "wrong_region", "max_skew_s", "imdsv2_required")
            for k in cfg:
                if k not in keys:
                    raise S3Error(400, "InvalidArgument", "Unknown config key: %s" % k)
            if "bucket_modes" in cfg:
                bm = cfg["bucket_modes"]
                if not isinstance(bm, dict) or not all(
                        isinstance(v, list) and all(isinstance(m, str) and BUCKET_MODE_RE.match(m) for m in v)
                        for v in bm.values()):
                    raise S3Error(400, "InvalidArgument", "bucket_modes takes {\"BUCKET\": [MODE, ...]}: %r" % (bm,))
                for b, v in bm.items():
                    if v:
                        st.bucket_modes[b] = list(v)
                    else:
                        st.bucket_modes.pop(b, None)
            if "wrong_region" in cfg:
                if cfg["wrong_region"] not in ("redirect", "malformed"):
                    raise S3Error(400, "InvalidArgument", "wrong_region is \"redirect\" or \"malformed\"")
                st.wrong_region = cfg["wrong_region"]
            if "outage_status" in cfg:
                status = int(cfg["outage_status"])
                if status != 0 and not 400 <= status <= 599:
                    raise S3Error(400, "InvalidArgument", "outage_status must be 0 (no answer) or an HTTP error status")
                st.outage_status = status
            if "delay_ms" in cfg:
                st.delay_ms = float(cfg["delay_ms"])
            if "credential_lifetime_s" in cfg:
                st.credential_lifetime_s = int(cfg["credential_lifetime_s"])
            if "anonymous_ok" in cfg:
                st.anonymous_ok = bool(cfg["anonymous_ok"])
            if "min_part_size" in cfg:
                st.min_part_size = int(cfg["min_part_size"])
            if "max_skew_s" in cfg:
                st.max_skew_s = float(cfg["max_skew_s"])
            if "imdsv2_required" in cfg:
                st.imdsv2_required = bool(cfg["imdsv2_required"])
            if "outage_s" in cfg:
                st.outage_until = time.monotonic() + float(cfg["outage_s"])
        return self.json_out({"delay_ms": st.delay_ms, "credential_lifetime_s": st.credential_lifetime_s,
                              "anonymous_ok": st.anonymous_ok, "min_part_size": st.min_part_size,
                              "bucket_modes": st.bucket_modes, "wrong_region": st.wrong_region,
                              "max_skew_s": st.max_skew_s, "imdsv2_required": st.imdsv2_required,
                              "outage_s": max(0.0, round(st.outage_until - time.monotonic(), 3)),
                              "outage_status": st.outage_status})

    def reset_all(self, body, fault):
        st = self.state
        req = self.json_in(body)
        only = req.get("buckets")
        with st.lock:
            if only:
                for b in only:
                    st.buckets.pop(b, None)
                    st.uploads = {k: u for k, u in st.uploads.items() if u.bucket != b}
            else:
                st.buckets.clear()
                st.uploads.clear()
                st.retry_tests.clear()
        if not only:
            for spec in st.opts.bucket:
                create_bucket(st, spec, st.opts.region)
        return self.json_out({})

    def seed(self, body, fault):
        req = self.json_in(body)
        if not req.get("bucket"):
            raise S3Error(400, "InvalidArgument", "seed needs {\"bucket\": ...}")
        bucket = req["bucket"]
        if req.get("create_bucket", True):
            spec = bucket + ("@" + req["region"] if req.get("region") else "")
            create_bucket(self.state, spec, self.state.opts.region)
        n = 0
        for o in req.get("objects", []):
            data = base64.b64decode(o["data_b64"]) if "data_b64" in o else o.get("data", "").encode("utf-8")
            algo = o.get("checksum_algorithm", "CRC32C")
            if algo is not None and algo not in CHECKSUMS:
                raise S3Error(400, "InvalidArgument", "checksum_algorithm is one of %s or null" % ", ".join(CHECKSUMS))
            meta = {k.lower(): v for k, v in o.get("metadata", {}).items()}
            obj = Obj(o["name"], data, o.get("contentType"), {}, meta, algo, None, "FULL_OBJECT" if algo else None)
            self.state.store(bucket, obj, api=False)
            n += 1
        count = int(req.get("count", 0))
        fmt = req.get("name_format", "obj-{:06d}")
        size = req.get("size")
        for i in range(count):
            name = fmt.format(i)
            data = (name + "\n").encode("utf-8")
            if size is not None:
                data = (data * (int(size) // max(len(data), 1) + 1))[:int(size)]
            obj = Obj(name, data, "text/plain", {}, {}, "CRC32C", None, "FULL_OBJECT")
            self.state.store(bucket, obj, api=False)
            n += 1
        return self.json_out({"created": n})

    def credentials_new(self, body, fault):
        req = self.json_in(body)
        c = self.state.issue_creds(req.get("source", "control"), req.get("lifetime_s"))
        return self.json_out({"AccessKeyId": c.akid, "SecretAccessKey": c.secret, "SessionToken": c.token,
                              "Expiration": iso8601_s(c.expiry)})

    def credentials_expire(self, body, fault):
        req = self.json_in(body)
        with self.state.lock:
            c = self.state.creds.get(req.get("AccessKeyId", ""))
            if c is None or c.expiry is None:
                raise S3Error(404, "NoSuchKey", "No temporary credentials with that AccessKeyId")
            c.expiry = time.time() - 1
        return self.json_out({})

    def retry_test(self, body, fault):
        st = self.state
        rest = self.target[1] or ""
        if rest == "retry_tests":
            with st.lock:
                return self.json_out({"retry_test": [dict(t) for t in st.retry_tests.values()]})
        if rest == "retry_test" and self.command == "POST":
            req = self.json_in(body)
            instr = req.get("instructions")
            if not isinstance(instr, dict):
                raise S3Error(400, "InvalidArgument", "retry_test needs {\"instructions\": {method: [...]}}")
            for method, lst in instr.items():
                if method not in FAULT_METHODS:
                    raise S3Error(400, "InvalidArgument", "Unsupported method in retry test: %s" % method)
                if not isinstance(lst, list) or not all(isinstance(x, str) and parse_instruction(x) for x in lst):
                    raise S3Error(400, "InvalidArgument", "Unsupported instruction for %s: %r" % (method, lst))
                if method not in ERROR200_METHODS and "return-200-error" in lst:
                    raise S3Error(400, "InvalidArgument", "return-200-error applies to %s only"
                                  % ", ".join(sorted(ERROR200_METHODS)))
                if method not in TRUNCATE_METHODS and "truncate-upload" in lst:
                    raise S3Error(400, "InvalidArgument", "truncate-upload applies to %s only"
                                  % ", ".join(sorted(TRUNCATE_METHODS)))
            tid = uuid.uuid4().hex
            t = {"id": tid, "instructions": {k: list(v) for k, v in instr.items()},
                 "transport": req.get("transport", "HTTP"), "completed": all(not v for v in instr.values()),
                 "global": bool(req.get("global", False))}
            with st.lock:
                if t["global"]:
                    for other in st.retry_tests.values():
                        other["global"] = False
                st.retry_tests[tid] = t
            return self.json_out(t)
        if rest.startswith("retry_test/"):
            tid = rest[len("retry_test/"):]
            with st.lock:
                t = st.retry_tests.get(tid)
                if t is None:
                    raise S3Error(404, "NoSuchKey", "Retry Test %s not found" % tid)
                if self.command == "GET":
                    return self.json_out({"id": t["id"], "instructions": {k: list(v) for k, v in
                                                                          t["instructions"].items()},
                                          "transport": t["transport"], "completed": t["completed"],
                                          "global": t["global"]})
                del st.retry_tests[tid]
                return self.json_out({})
        raise S3Error(404, "NoSuchKey", "Not Found")


def create_bucket(state, spec, default_region):
    """spec is NAME or NAME@REGION."""
    name, _, region = spec.partition("@")
    with state.lock:
        if name not in state.buckets:
            state.buckets[name] = Bucket(name, region or default_region)


def write_port_file(path, port):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".port-", dir=d)
    with os.fdopen(fd, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Local Amazon S3 test server for sluice (in memory, SigV4 checked "
                                 "with botocore).")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind; only 127.0.0.1 (or localhost)")
    ap.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    ap.add_argument("--port-file", help="write the chosen port here (atomically) once listening")
    ap.add_argument("--bucket", action="append", default=[],
                    help="create this bucket at start, NAME or NAME@REGION (repeatable)")
    ap.add_argument("--region", default="us-east-1", help="region of buckets given without one (us-east-1)")
    ap.add_argument("--access-key", action="append", default=[],
                    help="accepted credentials ID:SECRET or ID:SECRET:SESSION_TOKEN (repeatable)")
    ap.add_argument("--anonymous-ok", action="store_true", help="accept unsigned requests too")
    ap.add_argument("--max-skew-s", type=float, default=900, help="largest accepted x-amz-date skew (900)")
    ap.add_argument("--min-part-size", type=int, default=DEFAULT_MIN_PART,
                    help="smallest part but the last of a multipart upload (5 MiB)")
    ap.add_argument("--delay-ms", type=float, default=0, help="sleep this long in every API request")
    ap.add_argument("--meta-port-file", help="also serve the fake AWS credential endpoints on a second port, "
                    "written here")
    ap.add_argument("--credential-lifetime-s", type=int, default=3600,
                    help="lifetime of credentials from STS, IMDS and container endpoints (3600)")
    ap.add_argument("--web-identity-token", help="the token AssumeRoleWithWebIdentity must be given (any if unset)")
    ap.add_argument("--role-arn", help="the RoleArn AssumeRoleWithWebIdentity must be given (any if unset)")
    ap.add_argument("--imds-role", default="sluice-test-role", help="the instance profile role name")
    ap.add_argument("--imdsv2-required", action="store_true", help="IMDS GETs without a session token get 401")
    ap.add_argument("--container-token", help="the Authorization value container credentials need (none if unset)")
    ap.add_argument("--verbose", action="store_true", help="log every request on stderr")
    ap.add_argument("--parent-pid", type=int,
                    help="stop once process PID is no longer this one's parent (a test that started it and crashed)")
    opts = ap.parse_args(argv)
    if opts.host not in ("127.0.0.1", "localhost"):
        ap.error("refusing to bind %s: this test server only listens on 127.0.0.1" % opts.host)
    if opts.web_identity_token is not None and opts.web_identity_token.startswith("@"):
        with open(opts.web_identity_token[1:]) as f:
            opts.web_identity_token = f.read().strip()
    state = State(opts)
    for b in opts.bucket:
        create_bucket(state, b, opts.region)
    server = Server(("127.0.0.1", opts.port), state, "s3")
    meta = None
    if opts.meta_port_file:
        meta = Server(("127.0.0.1", 0), state, "meta")
        threading.Thread(target=meta.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        write_port_file(opts.meta_port_file, meta.server_address[1])
    port = server.server_address[1]
    if opts.port_file:
        write_port_file(opts.port_file, port)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if opts.parent_pid:
        def watch_parent():
            while os.getppid() == opts.parent_pid:
                time.sleep(0.2)
            server.shutdown()

        threading.Thread(target=watch_parent, daemon=True).start()
    sys.stdout.write("listening on 127.0.0.1:%d\n" % port)
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if meta is not None:
            meta.shutdown()
            meta.server_close()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
