#!/usr/bin/env python3
"""A local Google Cloud Storage server for sluice's tests (JSON API v1, Python standard library only).

It speaks the parts of the GCS JSON API that sluice uses -- buckets.insert/get, objects.list/get/delete,
simple/multipart/resumable uploads, objects.rewrite -- with GCS's resource and error shapes, plus an OAuth2
token endpoint, a GCE metadata server, storage-testbench style fault injection (/retry_test), per-request
delay, and counters (/_stats) for connections, requests and issued tokens.

Everything lives in memory. Each bucket keeps a dict of objects and a list of UTF-8 encoded names kept
sorted incrementally (bisect), so listing a page costs O(page + log n) even with 100,000 objects.

Run `gcs_server.py --help` for options; tests/gcs/README.md describes the endpoints and the fault vocabulary.
"""

import argparse
import base64
import bisect
import binascii
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote_to_bytes

UPLOAD_QUANTUM = 256 * 1024
REWRITE_QUANTUM = 1024 * 1024
MAX_NAME_BYTES = 1024
DEFAULT_PROJECT = "sluice-test"
DEFAULT_AUDIENCE = "https://oauth2.googleapis.com/token"
STORAGE_SCOPES = ("https://www.googleapis.com/auth/devstorage.",
                  "https://www.googleapis.com/auth/cloud-platform")

# ---------------------------------------------------------------------------------------------------------------
# CRC32C (Castagnoli, reflected polynomial 0x82F63B78).
# Slicing-by-8: eight 256-entry tables let the loop consume 8 bytes per iteration; in CPython that is about
# twice as fast as the classic one-table byte loop, which is still used for the tail.

_CRC_POLY = 0x82F63B78


def _crc_tables():
    base = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _CRC_POLY if c & 1 else c >> 1
        base.append(c)
    tables = [base]
    for _ in range(7):
        prev = tables[-1]
        tables.append([base[v & 0xFF] ^ (v >> 8) for v in prev])
    return tables


_CRC_T = _crc_tables()


def crc32c(data, crc=0):
    """CRC32C of data; pass the previous result as crc to continue over a following piece."""
    crc ^= 0xFFFFFFFF
    mv = memoryview(data).cast("B")
    n8 = len(mv) - len(mv) % 8
    t0, t1, t2, t3, t4, t5, t6, t7 = _CRC_T
    if n8:
        for lo, hi in struct.iter_unpack("<II", mv[:n8]):
            v = crc ^ lo
            crc = (t7[v & 0xFF] ^ t6[(v >> 8) & 0xFF] ^ t5[(v >> 16) & 0xFF] ^ t4[v >> 24]
                   ^ t3[hi & 0xFF] ^ t2[(hi >> 8) & 0xFF] ^ t1[(hi >> 16) & 0xFF] ^ t0[hi >> 24])
    for b in mv[n8:]:
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c_b64(crc):
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


assert crc32c(b"123456789") == 0xE3069283


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


def rfc3339(t):
    ms = int(round(t * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def b64u_decode(s):
    s = s.strip()
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def key_successor(prefix):
    """Smallest byte string greater than every string that starts with prefix (None: no such string)."""
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes([p[-1] + 1])


def parse_query(raw):
    """Form-decode a query string ('+' is a space, %XX is a byte) into {name: [values]}; values must be UTF-8."""
    out = {}
    if not raw:
        return out
    for part in raw.encode("latin-1").split(b"&"):
        if not part:
            continue
        k, _, v = part.partition(b"=")
        k = unquote_to_bytes(k.replace(b"+", b" ")).decode("utf-8")
        v = unquote_to_bytes(v.replace(b"+", b" ")).decode("utf-8")
        out.setdefault(k, []).append(v)
    return out


class ApiError(Exception):
    """An error answered in GCS's JSON error shape."""

    def __init__(self, code, message, reason=None, headers=None, extra=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or {
            400: "invalid", 401: "required", 403: "forbidden", 404: "notFound", 409: "conflict",
            410: "gone", 412: "conditionNotMet", 416: "requestedRangeNotSatisfiable", 429: "rateLimitExceeded",
            499: "clientClosedRequest", 500: "backendError", 503: "backendError",
        }.get(code, "error")
        self.headers = headers or []
        self.extra = extra or {}

    def body(self):
        err = {"domain": "global", "reason": self.reason, "message": self.message}
        err.update(self.extra)
        return json.dumps({"error": {"code": self.code, "message": self.message, "errors": [err]}}).encode()


class OAuthError(Exception):
    """An error answered in the OAuth2 token endpoint's shape ({"error": .., "error_description": ..})."""

    def __init__(self, code, error, description):
        super().__init__(description)
        self.code = code
        self.error = error
        self.description = description


class NotModified(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Partial responses: fields=a,b(c,d),e/f


def parse_fields(spec):
    pos = 0

    def parse_list():
        nonlocal pos
        out = {}
        while True:
            m = re.compile(r"\s*([A-Za-z0-9_*]+)\s*").match(spec, pos)
            if not m:
                raise ValueError("bad field selector")
            name = m.group(1)
            pos = m.end()
            sub = None
            if pos < len(spec) and spec[pos] == "(":
                pos += 1
                sub = parse_list()
                if pos >= len(spec) or spec[pos] != ")":
                    raise ValueError("missing ')'")
                pos += 1
            elif pos < len(spec) and spec[pos] == "/":
                pos += 1
                sub = parse_path()
            merge(out, name, sub)
            if pos < len(spec) and spec[pos] == ",":
                pos += 1
                continue
            return out

    def parse_path():
        nonlocal pos
        m = re.compile(r"([A-Za-z0-9_*]+)").match(spec, pos)
        if not m:
            raise ValueError("bad field path")
        pos = m.end()
        sub = None
        if pos < len(spec) and spec[pos] == "/":
            pos += 1
            sub = parse_path()
        elif pos < len(spec) and spec[pos] == "(":
            pos += 1
            sub = parse_list()
            if pos >= len(spec) or spec[pos] != ")":
                raise ValueError("missing ')'")
            pos += 1
        return {m.group(1): sub}

    def merge(out, name, sub):
        if name in out and (out[name] is None or sub is None):
            out[name] = None
        elif name in out:
            for k, v in sub.items():
                merge(out[name], k, v)
        else:
            out[name] = sub

    result = parse_list()
    if pos != len(spec):
        raise ValueError("trailing characters in fields")
    return result


def apply_fields(value, sel):
    if sel is None or "*" in sel:
        return value
    if isinstance(value, list):
        return [apply_fields(v, sel) for v in value]
    if isinstance(value, dict):
        return {k: apply_fields(value[k], sub) for k, sub in sel.items() if k in value}
    return value


# ---------------------------------------------------------------------------------------------------------------
# State


class Obj:
    __slots__ = ("name", "bucket", "data", "generation", "metageneration", "crc", "md5", "created", "updated",
                 "content_type", "meta", "serve", "components")

    def __init__(self, bucket, name, data, generation, crc, md5, content_type, meta):
        self.bucket = bucket
        self.name = name
        self.data = data
        self.generation = generation
        self.metageneration = 1
        self.crc = crc
        self.md5 = md5
        self.created = self.updated = generation / 1e6
        self.content_type = content_type or "application/octet-stream"
        self.meta = meta
        self.serve = frozenset()  # SERVE_MODES this object's downloads misbehave with (set by /_seed)
        self.components = 0  # a composite object's componentCount (objects.compose); 0: not composite

    def resource(self, base):
        enc = quote(self.name, safe="")
        r = {
            "kind": "storage#object",
            "id": "%s/%s/%d" % (self.bucket, self.name, self.generation),
            "selfLink": "%s/storage/v1/b/%s/o/%s" % (base, self.bucket, enc),
            "mediaLink": "%s/download/storage/v1/b/%s/o/%s?generation=%d&alt=media" % (
                base, self.bucket, enc, self.generation),
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": str(self.metageneration),
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": str(len(self.data)),
            "md5Hash": base64.b64encode(self.md5).decode(),
            "crc32c": crc32c_b64(self.crc),
            "componentCount": self.components,
            "etag": self.etag(),
            "timeCreated": rfc3339(self.created),
            "updated": rfc3339(self.updated),
            "timeStorageClassUpdated": rfc3339(self.created),
        }
        if self.components:
            del r["md5Hash"]  # a composite object has no MD5, as on GCS
        else:
            del r["componentCount"]
        r.update(self.meta)
        return r

    def etag(self):
        return base64.b64encode(("%d/%d" % (self.generation, self.metageneration)).encode()).decode()

    def hash_header(self):
        if self.components:
            return "crc32c=%s" % crc32c_b64(self.crc)
        return "crc32c=%s,md5=%s" % (crc32c_b64(self.crc), base64.b64encode(self.md5).decode())


class Bucket:
    def __init__(self, name, project):
        self.name = name
        self.project = project
        self.created = time.time()
        self.objects = {}  # UTF-8 name bytes -> Obj
        self.keys = []  # sorted UTF-8 name bytes

    def resource(self, base):
        return {
            "kind": "storage#bucket",
            "id": self.name,
            "selfLink": "%s/storage/v1/b/%s" % (base, self.name),
            "projectNumber": "123456789012",
            "name": self.name,
            "timeCreated": rfc3339(self.created),
            "updated": rfc3339(self.created),
            "metageneration": "1",
            "location": "US",
            "locationType": "multi-region",
            "storageClass": "STANDARD",
            "etag": "CAE=",
        }


class Session:
    """A resumable upload session."""

    def __init__(self, sid, bucket, name, meta, content_type, preconds, expected):
        self.id = sid
        self.bucket = bucket
        self.name = name
        self.meta = meta
        self.content_type = content_type
        self.preconds = preconds
        self.expected = expected  # {"crc32c": b64, "md5Hash": b64} from the initial metadata
        self.data = bytearray()
        self.crc = 0
        self.md5 = hashlib.md5()
        self.result = None  # Obj once finalized
        self.dead = None  # message once cancelled or failed
        self.lock = threading.Lock()

    def append(self, chunk):
        self.data += chunk
        self.crc = crc32c(chunk, self.crc)
        self.md5.update(chunk)


class Rewrite:
    def __init__(self, tid, src, dst, done, meta, preconds):
        self.id = tid
        self.src = src  # Obj snapshot (pinned generation)
        self.dst = dst  # (bucket, name)
        self.done = done
        self.meta = meta
        self.preconds = preconds


INSTRUCTION_RES = [
    ("return", re.compile(r"^return-(\d{3})$")),
    ("return-after", re.compile(r"^return-(\d{3})-after-(\d+)K$")),
    ("reset", re.compile(r"^return-reset-connection$")),
    ("broken", re.compile(r"^return-broken-stream$")),
    ("broken-after", re.compile(r"^return-broken-stream-after-(\d+)K$")),
    ("stall", re.compile(r"^stall-for-(\d+(?:\.\d+)?)s-after-(\d+)K$")),
    ("corrupt", re.compile(r"^return-corrupted-data$")),
    ("echo", re.compile(r"^return-(\d{3})-echo-headers$")),
    ("finalize-early", re.compile(r"^finalize-early$")),
    ("truncate", re.compile(r"^truncate-upload$")),
    ("pass", re.compile(r"^pass$")),
    ("late", re.compile(r"^reset-then-execute-after-(\d+(?:\.\d+)?)s$")),
]

# How an object's media downloads misbehave (POST /_seed, per object: "serve": [...]):
#   no-hash       no x-goog-hash, no x-goog-stored-content-* headers (a server that is not GCS)
#   short-body    the body is the first half of what it should be, Content-Length saying so (correctly framed)
#   long-body     the body has 16 bytes more than it should, Content-Length saying so
#   ignore-range  a Range header is ignored: 200 and the whole object
SERVE_MODES = ("no-hash", "short-body", "long-body", "ignore-range")

# How a bucket's listings misbehave (POST /_config {"list_modes": {"BUCKET": [...]}}):
#   utf16-order    names sorted by UTF-16 code units, not by their UTF-8 bytes (startOffset, endOffset and page tokens
#                  follow that order), as some GCS implementations have it
#   repeat-last    each page after the first starts with the last entry of the page before (an inclusive page token)
#   reverse-pages  the items (and prefixes) of each page come in reverse order
#   ignore-prefix  the prefix parameter is ignored: names outside it are listed too
#   token-cycle    after the first page, empty pages whose tokens go round A, B, A, ... forever
#   page-size-N    at most N entries per page, whatever maxResults asks
LIST_MODE_RE = re.compile(r"^(utf16-order|repeat-last|reverse-pages|ignore-prefix|token-cycle|page-size-[1-9]\d*)$")

# How a bucket's own resource is served (POST /_config {"bucket_modes": {"BUCKET": [...]}}); its objects work as usual:
#   no-bucket-resource   GET /storage/v1/b/BUCKET answers 404, as an emulator that makes buckets on their first upload
#   bucket-resource-501  GET /storage/v1/b/BUCKET answers 501 Not Implemented, as a server without buckets.get
BUCKET_MODES = ("no-bucket-resource", "bucket-resource-501")

FAULT_METHODS = {
    "storage.buckets.list", "storage.buckets.insert", "storage.buckets.get", "storage.buckets.delete",
    "storage.objects.list", "storage.objects.get", "storage.objects.insert", "storage.objects.delete",
    "storage.objects.rewrite", "storage.objects.patch", "storage.objects.compose", "oauth2.token", "metadata.token",
}
UPLOAD_METHODS = {"storage.objects.insert"}
COMPOSE_SOURCES_MAX = 32  # objects.compose: source objects per request
COMPOSE_COMPONENTS_MAX = 1024  # components of one composite object


def parse_instruction(text):
    for kind, rx in INSTRUCTION_RES:
        m = rx.match(text)
        if m:
            return (kind,) + m.groups()
    return None


class State:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()
        self.buckets = {}
        self.sessions = {}
        self.rewrites = {}
        self.retry_tests = {}
        self.tokens = {}  # access token -> expiry (epoch seconds)
        self.last_generation = 0
        self.delay_ms = opts.delay_ms
        self.outage_until = 0.0  # time.monotonic() before which API requests get no answer (see /_config outage_s)
        self.outage_status = 0  # 0: reset the connection; else answer this status instead
        self.token_lifetime_s = opts.token_lifetime_s
        self.token_required = opts.token_required
        self.rewrite_chunk = opts.rewrite_chunk
        self.list_modes = {}  # bucket -> [LIST_MODE_RE modes]
        self.bucket_modes = {}  # bucket -> [BUCKET_MODES]
        self.stats_lock = threading.Lock()
        self.api_in_flight = 0  # API requests being handled now (not reset with the counters)
        self.reset_stats()

    def reset_stats(self):
        with self.stats_lock:
            self.connections = 0
            self.api_connections = 0
            self.requests = {}
            self.tokens_issued = 0
            self.generations_created = 0

    def count_request(self, method):
        with self.stats_lock:
            self.requests[method] = self.requests.get(method, 0) + 1

    def next_generation(self):
        # Generations are microsecond timestamps, as on GCS, forced strictly increasing.
        g = max(int(time.time() * 1e6), self.last_generation + 1)
        self.last_generation = g
        return g

    def issue_token(self):
        tok = "ya29.sluice-test-" + secrets.token_urlsafe(24)
        lifetime = self.token_lifetime_s
        with self.lock:
            now = time.time()
            self.tokens = {t: e for t, e in self.tokens.items() if e > now}
            self.tokens[tok] = now + lifetime
        with self.stats_lock:
            self.tokens_issued += 1
        return {"access_token": tok, "expires_in": lifetime, "token_type": "Bearer"}

    def token_valid(self, tok):
        if tok in self.opts.accept_token:
            return True
        with self.lock:
            exp = self.tokens.get(tok)
        return exp is not None and exp > time.time()

    # -- objects ---------------------------------------------------------------------------------------------

    def bucket(self, name):
        b = self.buckets.get(name)
        if b is None:
            raise ApiError(404, "The specified bucket does not exist.")
        return b

    def lookup(self, bucket, name):
        with self.lock:
            return self.bucket(bucket).objects.get(name.encode("utf-8"))

    def put(self, bucket, name, data, content_type, meta, preconds, crc=None, md5=None, api=True):
        """Store a new generation of bucket/name (api: made by an API request, counted in generations_created)."""
        if crc is None:
            crc = crc32c(data)
        if md5 is None:
            md5 = hashlib.md5(data).digest()
        key = name.encode("utf-8")
        with self.lock:
            b = self.bucket(bucket)
            cur = b.objects.get(key)
            check_write_preconditions(preconds, cur)
            obj = Obj(bucket, name, bytes(data), self.next_generation(), crc, md5, content_type, meta)
            if cur is None:
                bisect.insort(b.keys, key)
            else:
                obj.created = cur.created
            b.objects[key] = obj
        if api:
            with self.stats_lock:
                self.generations_created += 1
        return obj

    def delete(self, bucket, name, generation, preconds):
        key = name.encode("utf-8")
        with self.lock:
            b = self.bucket(bucket)
            cur = b.objects.get(key)
            if cur is None or (generation is not None and cur.generation != generation):
                raise ApiError(404, "No such object: %s/%s" % (bucket, name))
            check_write_preconditions(preconds, cur)
            del b.objects[key]
            i = bisect.bisect_left(b.keys, key)
            del b.keys[i]

    def list(self, bucket, prefix, delim, max_results, token, start, end, trailing):
        pb = prefix.encode("utf-8")
        db = delim.encode("utf-8")
        with self.lock:
            b = self.bucket(bucket)
            keys = b.keys
            lo = bisect.bisect_left(keys, pb)
            succ = key_successor(pb) if pb else None
            hi = bisect.bisect_left(keys, succ) if succ is not None else len(keys)
            if start:
                lo = max(lo, bisect.bisect_left(keys, start.encode("utf-8")))
            if end:
                hi = min(hi, bisect.bisect_left(keys, end.encode("utf-8")))
            if token:
                kind, last = token
                if kind == "o":
                    lo = max(lo, bisect.bisect_right(keys, last))
                else:
                    s = key_successor(last)
                    lo = max(lo, bisect.bisect_left(keys, s) if s is not None else len(keys))
            items, prefixes = [], []
            i, n, last = lo, 0, None
            while i < hi and n < max_results:
                k = keys[i]
                if db:
                    j = k.find(db, len(pb))
                    if j >= 0:
                        p = k[:j + len(db)]
                        prefixes.append(p.decode("utf-8"))
                        n += 1
                        last = ("p", p)
                        if trailing and k == p:
                            items.append(b.objects[k])
                        s = key_successor(p)
                        i = bisect.bisect_left(keys, s, i, hi) if s is not None else hi
                        continue
                items.append(b.objects[k])
                n += 1
                last = ("o", k)
                i += 1
            more = i < hi
        return items, prefixes, (last if more else None)

    def list_misbehaving(self, bucket, prefix, delim, max_results, token, start, end, modes):
        """A listing with the misbehaviours of LIST_MODE_RE. Slow (sorts the whole bucket): for tests with few
        objects. Page tokens are base64url of "m", then "x" (after) or "i" (from, inclusive) and a name; or "mA" /
        "mB" (token-cycle). Returns the JSON answer, items as Obj."""
        utf16 = "utf16-order" in modes

        def order(name):
            return name.encode("utf-16-be") if utf16 else name.encode("utf-8")

        with self.lock:
            names = [k.decode("utf-8") for k in self.bucket(bucket).keys]
            objects = dict(self.buckets[bucket].objects)
        if "ignore-prefix" in modes:
            prefix = ""
        names = sorted((n for n in names if n.startswith(prefix)), key=order)
        if start:
            names = [n for n in names if order(n) >= order(start)]
        if end:
            names = [n for n in names if order(n) < order(end)]
        entries = []
        for n in names:
            j = n.find(delim, len(prefix)) if delim else -1
            if j >= 0:
                p = n[:j + len(delim)]
                if not entries or entries[-1] != ("p", p):
                    entries.append(("p", p))
            else:
                entries.append(("o", n))
        size = max_results
        for m in modes:
            if m.startswith("page-size-"):
                size = min(size, int(m[len("page-size-"):]))
        out = {"kind": "storage#objects"}
        if token is not None and "token-cycle" in modes and token in ("A", "B"):
            out["nextPageToken"] = base64.urlsafe_b64encode(b"m" + (b"B" if token == "A" else b"A")).decode()
            return out
        first = 0
        if token is not None:
            keys = [order(n) for _, n in entries]
            at = order(token[1:])
            first = bisect.bisect_left(keys, at) if token[0] == "i" else bisect.bisect_right(keys, at)
        page = entries[first:first + size]
        if "token-cycle" in modes:
            out["nextPageToken"] = base64.urlsafe_b64encode(b"mA").decode()
        elif first + len(page) < len(entries):
            inclusive = "repeat-last" in modes and len(page) > 1
            out["nextPageToken"] = base64.urlsafe_b64encode(
                b"m" + (b"i" if inclusive else b"x") + page[-1][1].encode("utf-8")).decode()
        items = [objects[n.encode("utf-8")] for kind, n in page if kind == "o"]
        prefixes = [n for kind, n in page if kind == "p"]
        if "reverse-pages" in modes:
            items.reverse()
            prefixes.reverse()
        if prefixes:
            out["prefixes"] = prefixes
        if items:
            out["items"] = items
        return out


def check_write_preconditions(p, cur):
    """Preconditions of a mutating request; a failure is 412 (GCS also uses 412 for *NotMatch on writes)."""
    g = p.get("ifGenerationMatch")
    if g is not None:
        if g == 0:
            if cur is not None:
                raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                               extra={"locationType": "header", "location": "If-Match"})
        elif cur is None or cur.generation != g:
            raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                           extra={"locationType": "header", "location": "If-Match"})
    g = p.get("ifGenerationNotMatch")
    if g is not None:
        if (g == 0 and cur is None) or (cur is not None and cur.generation == g):
            raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                           extra={"locationType": "header", "location": "If-None-Match"})
    m = p.get("ifMetagenerationMatch")
    if m is not None and (cur is None or cur.metageneration != m):
        raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                       extra={"locationType": "header", "location": "If-Match"})
    m = p.get("ifMetagenerationNotMatch")
    if m is not None and cur is not None and cur.metageneration == m:
        raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                       extra={"locationType": "header", "location": "If-None-Match"})


def check_read_preconditions(p, cur):
    """Preconditions of objects.get: *Match failures are 412, *NotMatch failures are 304 (as documented)."""
    g = p.get("ifGenerationMatch")
    if g is not None and cur.generation != g:
        raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                       extra={"locationType": "header", "location": "If-Match"})
    m = p.get("ifMetagenerationMatch")
    if m is not None and cur.metageneration != m:
        raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                       extra={"locationType": "header", "location": "If-Match"})
    g = p.get("ifGenerationNotMatch")
    if g is not None and cur.generation == g:
        raise NotModified()
    m = p.get("ifMetagenerationNotMatch")
    if m is not None and cur.metageneration == m:
        raise NotModified()


PRECONDITION_PARAMS = ("ifGenerationMatch", "ifGenerationNotMatch", "ifMetagenerationMatch",
                       "ifMetagenerationNotMatch")
SOURCE_PRECONDITION_PARAMS = ("ifSourceGenerationMatch", "ifSourceGenerationNotMatch",
                              "ifSourceMetagenerationMatch", "ifSourceMetagenerationNotMatch")

# Writable object metadata accepted from uploads and rewrites and echoed in the resource.
WRITABLE_META = ("contentEncoding", "contentDisposition", "contentLanguage", "cacheControl", "metadata",
                 "customTime")

REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content", 304: "Not Modified",
    308: "Resume Incomplete", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone", 411: "Length Required",
    412: "Precondition Failed", 416: "Requested range not satisfiable", 429: "Too Many Requests",
    499: "Client Closed Request", 500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


class Response:
    def __init__(self, status, body=b"", headers=None, media=False):
        self.status = status
        self.body = body
        self.headers = headers or []
        self.media = media


def json_response(status, value, headers=None):
    return Response(status, json.dumps(value).encode("utf-8"),
                    [("Content-Type", "application/json; charset=UTF-8")] + (headers or []))


# ---------------------------------------------------------------------------------------------------------------
# HTTP


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, state):
        self.state = state
        super().__init__(addr, Handler)

    def process_request(self, request, client_address):
        # Every accepted TCP connection passes here exactly once: this is the connection counter.
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
    server_version = "sluice-gcs-test-server"
    sys_version = ""

    def setup(self):
        super().setup()
        # Responses are written in one piece, but a client's next request on a keep-alive connection should
        # not wait for a delayed ACK either.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.api_counted = False

    def log_message(self, fmt, *args):
        if self.server.state.opts.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # -- plumbing ------------------------------------------------------------------------------------------

    @property
    def state(self):
        return self.server.state

    def base_url(self):
        host = self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_address[1]
        return "http://" + host

    def read_body(self, stall=None):
        """Read the whole request body (Content-Length or chunked); stall=(seconds, after_bytes) pauses."""
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
                    raise ApiError(400, "Malformed chunked request body.")
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
            raise ApiError(400, "Invalid Content-Length header.")
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
        # SO_LINGER with a zero timeout turns close() into an RST. The file objects hold references to the
        # socket, so they are closed first or the descriptor would stay open.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except Exception:
                pass
        # http.server flushes wfile after every request: give it a harmless sink.
        self.wfile = io.BytesIO()
        try:
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def send(self, resp, fault=None):
        status = resp.status
        hdrs = list(resp.headers)
        body = resp.body if self.command != "HEAD" else b""
        if resp.media:
            body = self.corrupt(body, fault)
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        lines.append("Date: " + formatdate(usegmt=True))
        lines.append("Server: " + self.server_version)
        if status not in (204, 304):
            lines.append("Content-Length: %d" % len(resp.body))
        for k, v in hdrs:
            lines.append("%s: %s" % (k, v))
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        if self.state.opts.verbose:
            self.log_request(status, len(body))
        kind = fault[0] if fault else None
        if kind == "broken" or kind == "broken-after":
            if kind == "broken":
                cut = len(body) // 2
            else:
                cut = int(fault[1]) * 1024
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
        """Flip one byte in the middle of data when the fault asks for corrupted data."""
        if not fault or fault[0] != "corrupt" or not data:
            return data
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        return bytes(b)

    def send_error_json(self, err, fault=None):
        self.send(Response(err.code, err.body(), [("Content-Type", "application/json; charset=UTF-8")]
                           + list(err.headers)), fault)

    # -- dispatch ------------------------------------------------------------------------------------------

    def dispatch(self):
        self.in_flight = False
        try:
            self.dispatch_counted()
        finally:
            if self.in_flight:
                with self.state.stats_lock:
                    self.state.api_in_flight -= 1

    def dispatch_counted(self):
        fault = None
        try:
            raw_path, _, raw_query = self.path.partition("?")
            try:
                segs = [unquote_to_bytes(s).decode("utf-8") for s in raw_path.encode("latin-1").split(b"/")]
                q = {k: v[-1] for k, v in parse_query(raw_query).items()}
            except UnicodeDecodeError:
                self.read_body()
                raise ApiError(400, "Invalid UTF-8 in the request URL.")
            method, fn, kind = self.route(self.command, segs, q)
            if kind != "control":
                with self.state.stats_lock:
                    self.state.api_in_flight += 1
                self.in_flight = True
            if kind != "control" and time.monotonic() < self.state.outage_until:
                # An outage (/_config outage_s): the server is down for API requests, up for the test's control ones.
                self.state.count_request(method)
                if not self.state.outage_status:
                    self.reset_connection()
                    return
                self.read_body()
                if self.state.delay_ms > 0:
                    time.sleep(self.state.delay_ms / 1000.0)
                raise ApiError(self.state.outage_status, "Outage: Caused a %d" % self.state.outage_status)
            if kind != "control":
                if not self.api_counted:
                    self.api_counted = True
                    with self.state.stats_lock:
                        self.state.api_connections += 1
                self.state.count_request(method)
                fault = self.take_instruction(method, self.upload_step(method, q))
            if fault and fault[0] == "stall" and method in UPLOAD_METHODS:
                # Uploads stall while the server reads the request body, as a slow network would.
                body = self.read_body(stall=(float(fault[1]), int(fault[2]) * 1024))
                fault = None
            else:
                body = self.read_body()
            if kind != "control" and self.state.delay_ms > 0:
                time.sleep(self.state.delay_ms / 1000.0)
            if fault and fault[0] == "unknown-test":
                fault = None
                raise ApiError(400, "Retry Test %s not found (x-retry-test-id)" % self.headers["x-retry-test-id"])
            if fault and fault[0] == "reset":
                self.reset_connection()
                return
            if fault and fault[0] == "return":
                raise ApiError(int(fault[1]), "Retry Test: Caused a %s" % fault[1])
            if fault and fault[0] == "echo":
                # A server (or a proxy) that quotes the whole request back in its error, credentials included.
                said = "; ".join("%s: %s" % (k, v) for k, v in self.headers.items())
                raise ApiError(int(fault[1]), "Retry Test: Caused a %s for the request %s %s with the headers %s"
                               % (fault[1], self.command, self.path.partition("?")[0], said))
            if fault and fault[0] == "return-after" and not (method in UPLOAD_METHODS and "upload_id" in q):
                raise ApiError(int(fault[1]), "Retry Test: Caused a %s" % fault[1])
            if fault and fault[0] == "late":
                # The client gets no answer, as when its own timeout gives up on a slow request; the server goes on
                # with the request later all the same. It stays in api_in_flight until then.
                self.reset_connection()
                time.sleep(float(fault[1]))
                try:
                    self.check_request(kind, method)
                    fn(segs, q, body, None)
                except (ApiError, OAuthError, NotModified):
                    pass
                return
            self.check_request(kind, method)
            resp = fn(segs, q, body, fault)
            self.send(resp, fault)
        except ApiError as e:
            self.send_error_json(e, fault if fault and fault[0] in ("broken", "broken-after", "stall") else None)
        except OAuthError as e:
            self.send(json_response(e.code, {"error": e.error, "error_description": e.description}))
        except NotModified:
            self.send(Response(304))
        except (ConnectionError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug in this server: say so loudly, keep serving
            traceback.print_exc()
            self.close_connection = True
            try:
                self.send_error_json(ApiError(500, "test server bug: %r" % e))
            except OSError:
                pass

    def upload_step(self, method, q):
        """What an upload request is: "single" (media, multipart), "start" (of a resumable session), "chunk" (on a
        session, not completing it), "final" (on a session, completing it when its bytes are all there); None for
        anything else."""
        if method == "storage.objects.rewrite":
            return "final"  # any step of a rewrite may complete it (truncate-upload completes it at once)
        if method not in UPLOAD_METHODS:
            return None
        if "upload_id" not in q:
            return "start" if q.get("uploadType") == "resumable" else "single"
        if self.command not in ("PUT", "POST"):
            return None
        cr = self.headers.get("Content-Range")
        m = re.match(r"^\s*bytes\s+(?:\*|\d+-(\d+))/(\*|\d+)\s*$", cr or "")
        if cr is None or (m and m.group(2) != "*" and (m.group(1) is None or int(m.group(1)) + 1 == int(m.group(2)))):
            return "final"
        return "chunk"

    def take_instruction(self, method, step=None):
        """Pop the next fault instruction for method from the request's retry test, if any. finalize-early waits
        for a request on a resumable upload session, truncate-upload for one that completes an upload (step is
        upload_step's)."""
        tid = self.headers.get("x-retry-test-id")
        if not tid:
            return None
        with self.state.lock:
            t = self.state.retry_tests.get(tid)
            if t is None:
                return ("unknown-test", tid)
            lst = t["instructions"].get(method)
            if not lst or (lst[0] == "finalize-early" and step not in ("chunk", "final")) or (
                    lst[0] == "truncate-upload" and step not in ("single", "final")):
                return None
            text = lst.pop(0)
            t["completed"] = all(not v for v in t["instructions"].values())
        return parse_instruction(text)

    def check_request(self, kind, method):
        """What every storage request must be before it is executed: not form-encoded, and authorized."""
        if kind != "storage":
            return
        # A body with libcurl's (or another HTTP library's) default type is not what the client meant to send: GCS
        # refuses it, upload or not, with this 400.
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            raise ApiError(400, "This API does not support parsing form-encoded input.", reason="parseError")
        if self.state.token_required:
            self.check_auth(method)

    def check_auth(self, method):
        auth = self.headers.get("Authorization")
        if not auth:
            raise ApiError(401, "Anonymous caller does not have %s access to the Google Cloud Storage object."
                           % method.replace("storage.objects.insert", "storage.objects.create"),
                           reason="required",
                           headers=[("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')],
                           extra={"locationType": "header", "location": "Authorization"})
        scheme, _, tok = auth.partition(" ")
        if scheme.lower() != "bearer" or not self.state.token_valid(tok.strip()):
            raise ApiError(401, "Invalid Credentials", reason="authError",
                           headers=[("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", '
                                     'error="invalid_token"')],
                           extra={"locationType": "header", "location": "Authorization"})

    def route(self, verb, s, q):
        """Map (verb, path segments) to (API method name, handler, kind)."""
        n = len(s)
        if n >= 4 and s[1] == "storage" and s[2] == "v1" and s[3] == "b":
            if n == 4 or (n == 5 and s[4] == ""):
                if verb == "POST":
                    return "storage.buckets.insert", self.bucket_insert, "storage"
                if verb == "GET":
                    return "storage.buckets.list", self.bucket_list, "storage"
            elif n == 5:
                if verb == "GET":
                    return "storage.buckets.get", self.bucket_get, "storage"
                if verb == "DELETE":
                    return "storage.buckets.delete", self.bucket_delete, "storage"
            elif n == 6 and s[5] == "o":
                if verb == "GET":
                    return "storage.objects.list", self.object_list, "storage"
                if verb == "POST":
                    return "storage.objects.insert", self.upload_missing_type, "storage"
            elif n == 7 and s[5] == "o":
                if verb == "GET":
                    return "storage.objects.get", self.object_get, "storage"
                if verb == "DELETE":
                    return "storage.objects.delete", self.object_delete, "storage"
                if verb == "PATCH":
                    return "storage.objects.patch", self.object_patch, "storage"
            elif n == 8 and s[5] == "o" and s[7] == "compose":
                if verb == "POST":
                    return "storage.objects.compose", self.object_compose, "storage"
            elif n == 12 and s[5] == "o" and s[7] == "rewriteTo" and s[8] == "b" and s[10] == "o":
                if verb == "POST":
                    return "storage.objects.rewrite", self.object_rewrite, "storage"
        if n == 7 and s[1] == "upload" and s[2] == "storage" and s[3] == "v1" and s[4] == "b" and s[6] == "o":
            if "upload_id" in q and verb in ("PUT", "POST", "DELETE"):
                return "storage.objects.insert", self.upload_session, "storage"
            if verb == "POST":
                return "storage.objects.insert", self.upload_start, "storage"
        if n == 8 and s[1] == "download" and s[2] == "storage" and s[3] == "v1" and s[4] == "b" and s[6] == "o":
            if verb == "GET":
                return "storage.objects.get", lambda s_, *a: self.object_get_media(s_[1:], *a), "storage"
        path = "/".join(s)
        if path == "/token" and verb == "POST":
            return "oauth2.token", self.token, "auth"
        if path.startswith("/computeMetadata/") or path == "/":
            if path == "/computeMetadata/v1/instance/service-accounts/default/token":
                return "metadata.token", self.metadata, "metadata"
            return "metadata.get", self.metadata, "metadata"
        if path == "/_stats" and verb == "GET":
            return "", self.stats_get, "control"
        if path == "/_stats/reset" and verb == "POST":
            return "", self.stats_reset, "control"
        if path == "/_config" and verb in ("GET", "POST"):
            return "", self.config, "control"
        if path == "/_reset" and verb == "POST":
            return "", self.reset_all, "control"
        if path == "/_seed" and verb == "POST":
            return "", self.seed, "control"
        if path in ("/retry_test", "/retry_tests") or path.startswith("/retry_test/"):
            return "", self.retry_test, "control"
        return "unknown", self.not_found, "storage" if path.startswith(("/storage/", "/upload/")) else "control"

    def not_found(self, s, q, body, fault):
        raise ApiError(404, "Not Found: %s %s" % (self.command, self.path.partition("?")[0]))

    # -- buckets -------------------------------------------------------------------------------------------

    def bucket_insert(self, s, q, body, fault):
        if not q.get("project"):
            raise ApiError(400, "Required parameter: project", reason="required")
        meta = parse_json_body(body)
        name = meta.get("name") if isinstance(meta, dict) else None
        if not name:
            raise ApiError(400, "Required", reason="required")
        if not re.match(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", name):
            raise ApiError(400, "Invalid bucket name: '%s'" % name)
        with self.state.lock:
            if name in self.state.buckets:
                raise ApiError(409, "Your previous request to create the named bucket succeeded and you "
                                    "already own it.")
            b = Bucket(name, q["project"])
            self.state.buckets[name] = b
        return self.json_fields(200, b.resource(self.base_url()), q)

    def bucket_get(self, s, q, body, fault):
        modes = self.state.bucket_modes.get(s[4], ())
        if "no-bucket-resource" in modes:
            raise ApiError(404, "Not Found: %s %s" % (self.command, self.path.partition("?")[0]))
        if "bucket-resource-501" in modes:
            raise ApiError(501, "Not Implemented: storage.buckets.get", reason="notImplemented")
        with self.state.lock:
            b = self.state.bucket(s[4])
        return self.json_fields(200, b.resource(self.base_url()), q)

    def bucket_list(self, s, q, body, fault):
        if not q.get("project"):
            raise ApiError(400, "Required parameter: project", reason="required")
        with self.state.lock:
            items = [b.resource(self.base_url()) for _, b in sorted(self.state.buckets.items())]
        out = {"kind": "storage#buckets"}
        if items:
            out["items"] = items
        return self.json_fields(200, out, q)

    def bucket_delete(self, s, q, body, fault):
        with self.state.lock:
            b = self.state.bucket(s[4])
            if b.objects:
                raise ApiError(409, "The bucket you tried to delete is not empty.")
            del self.state.buckets[s[4]]
        return Response(204)

    # -- objects -------------------------------------------------------------------------------------------

    def json_fields(self, status, value, q, headers=None):
        if q.get("fields"):
            try:
                sel = parse_fields(q["fields"])
            except ValueError as e:
                raise ApiError(400, "Invalid field selection %s: %s" % (q["fields"], e), reason="invalidParameter")
            value = apply_fields(value, sel)
        return json_response(status, value, headers)

    def object_list(self, s, q, body, fault):
        bucket = s[4]
        try:
            max_results = int(q.get("maxResults") or 1000)
        except ValueError:
            raise ApiError(400, "Invalid value for maxResults: %s" % q.get("maxResults"), reason="invalidParameter")
        if max_results < 1:
            raise ApiError(400, "Invalid value for maxResults: %d" % max_results, reason="invalidParameter")
        max_results = min(max_results, 1000)
        if q.get("matchGlob"):
            raise ApiError(400, "matchGlob is not supported by this test server.", reason="invalidParameter")
        modes = self.state.list_modes.get(bucket)
        if modes:
            token = None
            if q.get("pageToken"):
                try:
                    raw = b64u_decode(q["pageToken"])
                    if raw[:1] != b"m":
                        raise ValueError()
                    token = raw[1:].decode("utf-8")
                    if token not in ("A", "B") and token[:1] not in ("i", "x"):
                        raise ValueError()
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    raise ApiError(400, "Invalid page token: %s" % q["pageToken"], reason="invalidParameter")
            out = self.state.list_misbehaving(bucket, q.get("prefix", ""), q.get("delimiter", ""), max_results, token,
                                              q.get("startOffset"), q.get("endOffset"), modes)
            if "items" in out:
                base = self.base_url()
                out["items"] = [o.resource(base) for o in out["items"]]
            return self.json_fields(200, out, q)
        token = None
        if q.get("pageToken"):
            try:
                raw = b64u_decode(q["pageToken"])
                if raw[:1] not in (b"o", b"p"):
                    raise ValueError()
                token = (raw[:1].decode(), raw[1:])
            except (ValueError, binascii.Error):
                raise ApiError(400, "Invalid page token: %s" % q["pageToken"], reason="invalidParameter")
        items, prefixes, last = self.state.list(bucket, q.get("prefix", ""), q.get("delimiter", ""), max_results,
                                                token, q.get("startOffset"), q.get("endOffset"),
                                                q.get("includeTrailingDelimiter", "").lower() == "true")
        out = {"kind": "storage#objects"}
        if last is not None:
            out["nextPageToken"] = base64.urlsafe_b64encode(last[0].encode() + last[1]).decode().rstrip("=")
        # GCS leaves out empty "prefixes" and "items" rather than sending empty arrays.
        if prefixes:
            out["prefixes"] = prefixes
        if items:
            base = self.base_url()
            out["items"] = [o.resource(base) for o in items]
        return self.json_fields(200, out, q)

    def live_object(self, bucket, name, q):
        obj = self.state.lookup(bucket, name)
        gen = int_param(q, "generation")
        if obj is None or (gen is not None and obj.generation != gen):
            raise ApiError(404, "No such object: %s/%s" % (bucket, name))
        check_read_preconditions(preconditions(q), obj)
        return obj

    def object_get(self, s, q, body, fault):
        if q.get("alt") == "media":
            return self.object_get_media(s, q, body, fault)
        obj = self.live_object(s[4], s[6], q)
        return self.json_fields(200, obj.resource(self.base_url()), q)

    def accepts_gzip(self):
        for part in (self.headers.get("Accept-Encoding") or "").split(","):
            coding, _, params = part.strip().partition(";")
            if coding.strip().lower() in ("gzip", "x-gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0"):
                return True
        return False

    def object_get_media(self, s, q, body, fault):
        obj = self.live_object(s[4], s[6], q)
        data = obj.data
        stored_encoding = obj.meta.get("contentEncoding", "identity")
        hdrs = [("Content-Type", obj.content_type),
                ("ETag", '"%s"' % obj.etag()),
                ("Last-Modified", formatdate(obj.updated, usegmt=True)),
                ("x-goog-generation", str(obj.generation)),
                ("x-goog-metageneration", str(obj.metageneration))]
        if "no-hash" not in obj.serve:
            hdrs += [("x-goog-stored-content-length", str(len(obj.data))),
                     ("x-goog-stored-content-encoding", stored_encoding)]
        hdrs += [("x-goog-storage-class", "STANDARD"),
                 ("Accept-Ranges", "bytes")]
        if "no-hash" in obj.serve:
            pass
        elif self.state.opts.split_hash_headers:
            hdrs += [("x-goog-hash", "crc32c=" + crc32c_b64(obj.crc)),
                     ("x-goog-hash", "md5=" + base64.b64encode(obj.md5).decode())]
        else:
            hdrs.append(("x-goog-hash", obj.hash_header()))
        # An object stored gzip-compressed is served as stored when the request accepts gzip; otherwise it is
        # decompressed ("decompressive transcoding"), its hashes still those of the stored bytes and any Range ignored.
        transcode = stored_encoding.lower() == "gzip" and not self.accepts_gzip()
        if transcode:
            data = gzip.decompress(obj.data)
        elif stored_encoding.lower() == "gzip":
            hdrs.append(("Content-Encoding", "gzip"))
        size = len(data)
        rng = self.headers.get("Range")
        if rng and not transcode and "ignore-range" not in obj.serve:
            r = parse_range(rng, size)
            if r == "unsatisfiable":
                raise ApiError(416, "The requested range cannot be satisfied.",
                               headers=[("Content-Range", "bytes */%d" % size)] + hdrs[3:],
                               extra={"locationType": "header", "location": "Range"})
            if r is not None:
                a, b = r
                return Response(206, self.misshape(data[a:b + 1], obj),
                                hdrs + [("Content-Range", "bytes %d-%d/%d" % (a, b, size))], media=True)
        return Response(200, self.misshape(data, obj), hdrs, media=True)

    @staticmethod
    def misshape(body, obj):
        """The body as the object's serve modes cut or pad it."""
        if "short-body" in obj.serve:
            return body[:len(body) // 2]
        if "long-body" in obj.serve:
            return body + b"#sixteen extra!#"
        return body

    def object_patch(self, s, q, body, fault):
        req = parse_json_body(body)
        if not isinstance(req, dict):
            raise ApiError(400, "Parse Error", reason="parseError")
        md = req.get("metadata", {})
        if md is not None and not isinstance(md, dict):
            raise ApiError(400, "Invalid value for metadata", reason="invalid")
        key = s[6].encode("utf-8")
        gen = int_param(q, "generation")
        with self.state.lock:
            obj = self.state.bucket(s[4]).objects.get(key)
            if obj is None or (gen is not None and obj.generation != gen):
                raise ApiError(404, "No such object: %s/%s" % (s[4], s[6]))
            check_write_preconditions(preconditions(q), obj)
            meta = dict(obj.meta)  # a fresh dict: a rewrite may share the old one
            for k, v in writable(req).items():
                if k == "metadata":
                    custom = dict(meta.get("metadata") or {})
                    if md is None:
                        custom = {}
                    for mk, mv in (md or {}).items():
                        if mv is None:
                            custom.pop(mk, None)
                        else:
                            custom[mk] = str(mv)
                    if custom:
                        meta["metadata"] = custom
                    else:
                        meta.pop("metadata", None)
                elif v is None:
                    meta.pop(k, None)
                else:
                    meta[k] = v
            if "contentType" in req:
                obj.content_type = req["contentType"] or "application/octet-stream"
            obj.meta = meta
            obj.metageneration += 1
            obj.updated = max(time.time(), obj.updated + 0.001)
            res = obj.resource(self.base_url())
        return self.json_fields(200, res, q)

    def object_delete(self, s, q, body, fault):
        self.state.delete(s[4], s[6], int_param(q, "generation"), preconditions(q))
        return Response(204)

    # -- uploads -------------------------------------------------------------------------------------------

    def upload_missing_type(self, s, q, body, fault):
        raise ApiError(400, "Upload requests must include an uploadType URL parameter and a URL-encoded object "
                            "name.", reason="wrongUrlForUpload")

    def validate_name(self, name):
        if not name:
            raise ApiError(400, "Required", reason="required")
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ApiError(400, "The maximum object length is %d characters, but got a name with %d characters"
                           % (MAX_NAME_BYTES, len(name.encode("utf-8"))))
        if name in (".", "..") or name.startswith(".well-known/acme-challenge/"):
            raise ApiError(400, "Invalid object name: '%s'" % name)
        if ("\r" in name or "\n" in name) and not self.state.opts.allow_newline_names:
            raise ApiError(400, "Object names cannot contain Carriage Return or Line Feed characters.")

    def upload_start(self, s, q, body, fault):
        bucket = s[5]
        t = q.get("uploadType")
        pre = preconditions(q)
        if t == "media":
            name = q.get("name", "")
            self.validate_name(name)
            body = self.corrupt(body, fault)
            if fault and fault[0] == "truncate":
                body = body[:len(body) // 2]
            else:
                self.verify_hash_header(body)
            obj = self.state.put(bucket, name, body, self.headers.get("Content-Type"), {}, pre)
            return self.json_fields(200, obj.resource(self.base_url()), q)
        if t == "multipart":
            meta, data, media_type = self.parse_multipart(body)
            data = self.corrupt(data, fault)
            name = meta.get("name") or q.get("name", "")
            self.validate_name(name)
            truncate = fault and fault[0] == "truncate"
            if truncate:
                data = data[:len(data) // 2]
            crc = crc32c(data)
            md5 = hashlib.md5(data).digest()
            if not truncate:
                verify_expected(meta, crc, md5)
                self.verify_hash_header(data, crc, md5)
            obj = self.state.put(bucket, name, data, meta.get("contentType") or media_type, writable(meta), pre,
                                 crc, md5)
            return self.json_fields(200, obj.resource(self.base_url()), q)
        if t == "resumable":
            meta = parse_json_body(body) if body else {}
            if not isinstance(meta, dict):
                raise ApiError(400, "Parse Error", reason="parseError")
            name = meta.get("name") or q.get("name", "")
            self.validate_name(name)
            with self.state.lock:
                b = self.state.bucket(bucket)
                check_write_preconditions(pre, b.objects.get(name.encode("utf-8")))
            sid = uuid.uuid4().hex
            ctype = meta.get("contentType") or self.headers.get("X-Upload-Content-Type")
            expected = {k: meta[k] for k in ("crc32c", "md5Hash") if k in meta}
            sess = Session(sid, bucket, name, writable(meta), ctype, pre, expected)
            with self.state.lock:
                self.state.sessions[sid] = sess
            loc = "%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s&upload_id=%s" % (
                self.base_url(), quote(bucket, safe=""), quote(name, safe=""), sid)
            if q.get("fields"):
                loc += "&fields=" + quote(q["fields"], safe="")
            return Response(200, b"", [("Location", loc), ("X-GUploader-UploadID", sid)])
        raise ApiError(400, "Upload requests must include an uploadType URL parameter and a URL-encoded object "
                            "name.", reason="wrongUrlForUpload")

    def parse_multipart(self, body):
        ctype = self.headers.get("Content-Type") or ""
        m = re.match(r'^\s*multipart/related\s*;(.*)$', ctype, re.I)
        if not m:
            raise ApiError(400, "Bad content type. Please use multipart/related.", reason="badContent")
        bm = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', m.group(1), re.I)
        if not bm:
            raise ApiError(400, "Missing boundary in multipart/related Content-Type.", reason="badContent")
        boundary = (bm.group(1) or bm.group(2)).encode("latin-1")
        parts = []
        delim = b"--" + boundary
        chunks = body.split(delim)
        # chunks[0] is the preamble; the last is "--" + epilogue.
        for c in chunks[1:]:
            if c.startswith(b"--"):
                break
            if c.startswith(b"\r\n"):
                c = c[2:]
            elif c.startswith(b"\n"):
                c = c[1:]
            if c.endswith(b"\r\n"):
                c = c[:-2]
            elif c.endswith(b"\n"):
                c = c[:-1]
            # A part without header fields starts with the blank line at once (RFC 2046 5.1.1): Google's Go
            # client sends the media part that way when no media Content-Type is given. Check that first, or
            # a "\n\n" inside the data would be taken for the end of the headers.
            if c.startswith(b"\r\n"):
                head, content = b"", c[2:]
            elif c.startswith(b"\n"):
                head, content = b"", c[1:]
            else:
                head, sep, content = c.partition(b"\r\n\r\n")
                if not sep:
                    head, sep, content = c.partition(b"\n\n")
                    if not sep:
                        raise ApiError(400, "Malformed multipart body.", reason="badContent")
            headers = {}
            for line in head.decode("latin-1").splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            parts.append((headers, content))
        if len(parts) != 2:
            raise ApiError(400, "Multipart upload must have exactly 2 parts (metadata, media), got %d." % len(parts),
                           reason="badContent")
        # The metadata part must say it is JSON (GCS documents "application/json; charset=UTF-8"; Google's Go client
        # sends "application/json"), in UTF-8 if it names a charset. The media part may have no header at all.
        mtype = parts[0][0].get("content-type") or ""
        mparams = [p.strip().lower().replace(" ", "") for p in mtype.split(";")[1:]]
        if mtype.split(";")[0].strip().lower() != "application/json" or any(
                p.startswith("charset=") and p not in ("charset=utf-8", 'charset="utf-8"') for p in mparams):
            raise ApiError(400, "The metadata part of a multipart upload must have Content-Type application/json; "
                                "charset=UTF-8, not %s." % ("'%s'" % mtype if mtype else "none"), reason="badContent")
        meta = parse_json_body(parts[0][1])
        if not isinstance(meta, dict):
            raise ApiError(400, "Parse Error", reason="parseError")
        return meta, parts[1][1], parts[1][0].get("content-type")

    def hash_header_values(self):
        vals = {}
        for h in self.headers.get_all("X-Goog-Hash") or []:
            for item in h.split(","):
                k, _, v = item.strip().partition("=")
                if k:
                    vals[k.strip().lower()] = v.strip()
        return vals

    def verify_hash_header(self, data, crc=None, md5=None):
        vals = self.hash_header_values()
        if not vals:
            return
        if crc is None:
            crc = crc32c(data)
        if md5 is None:
            md5 = hashlib.md5(data).digest()
        verify_expected({"crc32c": vals.get("crc32c"), "md5Hash": vals.get("md5")}, crc, md5)

    def upload_session(self, s, q, body, fault):
        sid = q["upload_id"]
        with self.state.lock:
            sess = self.state.sessions.get(sid)
        if sess is None or sess.bucket != s[5]:
            raise ApiError(404, "No such upload session: %s" % sid)
        with sess.lock:
            return self.session_op(sess, q, body, fault)

    def session_status(self, sess):
        hdrs = [("X-GUploader-UploadID", sess.id)]
        if sess.data:
            hdrs.append(("Range", "bytes=0-%d" % (len(sess.data) - 1)))
        return Response(308, b"", hdrs)

    def session_op(self, sess, q, body, fault):
        if sess.dead:
            raise ApiError(410, sess.dead)
        if sess.result is not None:
            return self.json_fields(200, sess.result.resource(self.base_url()), q)
        if self.command == "DELETE":
            sess.dead = "The upload session was cancelled."
            return Response(499, b"", [("X-GUploader-UploadID", sess.id)])
        cr = self.headers.get("Content-Range")
        have = len(sess.data)
        if cr is None:
            first, last, total = 0, len(body) - 1, len(body)
            if have:
                raise ApiError(400, "Missing Content-Range header on a resumable upload with data already "
                                    "persisted.")
        else:
            m = re.match(r"^\s*bytes\s+(?:\*|(\d+)-(\d+))/(\*|\d+)\s*$", cr)
            if not m:
                raise ApiError(400, "Invalid Content-Range header: %s" % cr)
            total = None if m.group(3) == "*" else int(m.group(3))
            if m.group(1) is None:
                # A status query ("bytes */*") or the finalization of an upload whose size is now known.
                if body:
                    raise ApiError(400, "A request with Content-Range bytes */N must not carry a body.")
                if fault and fault[0] == "finalize-early":
                    return self.finalize(sess, q, verify=False)
                if total is None or total > have:
                    return self.session_status(sess)
                if total < have:
                    raise ApiError(400, "The total size %d is smaller than the %d bytes already persisted."
                                   % (total, have))
                return self.finalize(sess, q, truncate=bool(fault and fault[0] == "truncate"))
            first, last = int(m.group(1)), int(m.group(2))
            if last < first:
                raise ApiError(400, "Invalid Content-Range header: %s" % cr)
            if last - first + 1 != len(body):
                raise ApiError(400, "Content-Range %s announces %d bytes but the request carried %d."
                               % (cr, last - first + 1, len(body)))
        if total is not None and last >= total:
            raise ApiError(400, "Content-Range %s: the last byte is beyond the total size." % cr)
        final = total is not None and last + 1 == total
        if not final and len(body) % UPLOAD_QUANTUM:
            raise ApiError(400, "Invalid request. The number of bytes uploaded is required to be a multiple of "
                                "262144 bytes, except for the final request. The received request contained "
                                "%d bytes, which does not meet this requirement." % len(body))
        if first > have:
            raise ApiError(400, "Invalid request. According to the Content-Range header, the upload offset is %d "
                                "byte(s), which exceeds already uploaded size of %d byte(s)." % (first, have))
        # Bytes the server already holds are skipped, so resending after a lost reply is harmless.
        new = self.corrupt(body[have - first:], fault)
        if fault and fault[0] == "return-after":
            # Like GCS, only whole 256 KiB quanta of an interrupted request are persisted.
            keep = min(len(new), int(fault[2]) * 1024)
            keep -= keep % UPLOAD_QUANTUM
            if keep:
                sess.append(new[:keep])
            raise ApiError(int(fault[1]), "Retry Test: Caused a %s after %d bytes" % (fault[1], keep))
        if new:
            sess.append(new)
        if final or (fault and fault[0] == "finalize-early"):
            return self.finalize(sess, q, verify=final, truncate=bool(fault and fault[0] == "truncate"))
        return self.session_status(sess)

    def finalize(self, sess, q, verify=True, truncate=False):
        """Complete the session with the bytes it holds; verify=False (finalize-early) skips the hash checks, as a
        server that completes an upload on its own would; truncate (truncate-upload) keeps only the first half of
        them, unchecked."""
        crc = sess.crc
        md5 = sess.md5.digest()
        if truncate:
            verify = False
            sess.data = sess.data[:len(sess.data) // 2]
            crc = crc32c(sess.data)
            md5 = hashlib.md5(sess.data).digest()
        try:
            if verify:
                verify_expected(sess.expected, crc, md5)
                vals = self.hash_header_values()
                if vals:
                    verify_expected({"crc32c": vals.get("crc32c"), "md5Hash": vals.get("md5")}, crc, md5)
            obj = self.state.put(sess.bucket, sess.name, sess.data, sess.content_type, sess.meta, sess.preconds,
                                 crc, md5)
        except ApiError as e:
            sess.dead = "The upload session failed: %s" % e.message
            raise
        sess.result = obj
        sess.data = bytearray()
        return self.json_fields(200, obj.resource(self.base_url()), q)

    # -- rewrite -------------------------------------------------------------------------------------------

    def object_compose(self, s, q, body, fault):
        """objects.compose: the destination made of 1 to 32 source objects of the same bucket, in order, with their
        preconditions; a composite has a CRC32C but no MD5, and counts at most 1024 components."""
        bucket, dest = s[4], s[6]
        self.validate_name(dest)
        req = parse_json_body(body) if body else None
        if not isinstance(req, dict) or not isinstance(req.get("sourceObjects"), list):
            raise ApiError(400, "Parse Error", reason="parseError")
        sources = req["sourceObjects"]
        if not sources:
            raise ApiError(400, "At least one source object must be specified.", reason="required")
        if len(sources) > COMPOSE_SOURCES_MAX:
            raise ApiError(400, "The number of source components provided (%d) exceeds the maximum (%d)."
                           % (len(sources), COMPOSE_SOURCES_MAX), reason="invalid")
        parts, components = [], 0
        for src in sources:
            if not isinstance(src, dict) or not isinstance(src.get("name"), str):
                raise ApiError(400, "Parse Error", reason="parseError")
            obj = self.state.lookup(bucket, src["name"])
            gen = src.get("generation")
            if obj is None or (gen is not None and str(obj.generation) != str(gen)):
                raise ApiError(404, "No such object: %s/%s" % (bucket, src["name"]))
            want = (src.get("objectPreconditions") or {}).get("ifGenerationMatch")
            if want is not None and str(obj.generation) != str(want):
                raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                               reason="conditionNotMet")
            parts.append(obj)
            components += obj.components or 1
        if components > COMPOSE_COMPONENTS_MAX:
            raise ApiError(400, "The number of components in the composite (%d) exceeds the maximum (%d)."
                           % (components, COMPOSE_COMPONENTS_MAX), reason="invalid")
        data = b"".join(p.data for p in parts)
        dmeta = req.get("destination") or {}
        if not isinstance(dmeta, dict):
            raise ApiError(400, "Parse Error", reason="parseError")
        obj = self.state.put(bucket, dest, data, dmeta.get("contentType"), writable(dmeta), preconditions(q))
        obj.components = components
        return self.json_fields(200, obj.resource(self.base_url()), q)

    def object_rewrite(self, s, q, body, fault):
        sb, so, db, do = s[4], s[6], s[9], s[11]
        self.validate_name(do)
        max_bytes = int_param(q, "maxBytesRewrittenPerCall")
        if max_bytes is not None and (max_bytes <= 0 or max_bytes % REWRITE_QUANTUM):
            raise ApiError(400, "maxBytesRewrittenPerCall must be an integral multiple of 1048576.",
                           reason="invalidParameter")
        chunk = max_bytes or self.state.rewrite_chunk or 0
        pre = preconditions(q)
        meta = parse_json_body(body) if body else {}
        if not isinstance(meta, dict):
            raise ApiError(400, "Parse Error", reason="parseError")
        token = q.get("rewriteToken")
        if token:
            with self.state.lock:
                rw = self.state.rewrites.get(token)
            if rw is None or rw.src.bucket != sb or rw.src.name != so or rw.dst != (db, do):
                raise ApiError(400, "Invalid rewrite token.")
            rw.done += chunk if chunk else len(rw.src.data)
        else:
            src = self.state.lookup(sb, so)
            gen = int_param(q, "sourceGeneration")
            if src is None or (gen is not None and src.generation != gen):
                raise ApiError(404, "No such object: %s/%s" % (sb, so))
            spre = {k.replace("Source", ""): v for k, v in preconditions(q, SOURCE_PRECONDITION_PARAMS).items()}
            check_write_preconditions(spre, src)
            with self.state.lock:
                dstb = self.state.bucket(db)
                check_write_preconditions(pre, dstb.objects.get(do.encode("utf-8")))
            rw = Rewrite(secrets.token_urlsafe(18), src, (db, do), chunk if chunk else len(src.data), meta, pre)
        size = len(rw.src.data)
        out = {"kind": "storage#rewriteResponse", "objectSize": str(size)}
        truncate = bool(fault and fault[0] == "truncate")
        if rw.done < size and not truncate:
            with self.state.lock:
                self.state.rewrites[rw.id] = rw
            out.update(totalBytesRewritten=str(rw.done), done=False, rewriteToken=rw.id)
            return self.json_fields(200, out, q)
        with self.state.lock:
            self.state.rewrites.pop(rw.id, None)
        src = rw.src
        new_meta = dict(src.meta)
        new_meta.update(writable(rw.meta))
        if truncate:  # a server that completes the copy with the first half of the bytes
            obj = self.state.put(db, do, src.data[:size // 2], rw.meta.get("contentType") or src.content_type,
                                 new_meta, pre)
        else:
            obj = self.state.put(db, do, src.data, rw.meta.get("contentType") or src.content_type, new_meta, pre,
                                 src.crc, src.md5)
        out.update(totalBytesRewritten=str(size), done=True, resource=obj.resource(self.base_url()))
        return self.json_fields(200, out, q)

    # -- auth ----------------------------------------------------------------------------------------------

    def token(self, s, q, body, fault):
        ctype = (self.headers.get("Content-Type") or "").lower()
        try:
            if "json" in ctype:
                form = {k: str(v) for k, v in json.loads(body.decode("utf-8")).items()}
            else:
                form = {k: v[-1] for k, v in parse_query(body.decode("latin-1")).items()}
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise OAuthError(400, "invalid_request", "Malformed request body.")
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self.check_jwt(form.get("assertion") or "")
        elif grant == "refresh_token":
            opts = self.state.opts
            if not form.get("client_id") or not form.get("client_secret"):
                raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
            if (opts.client_id and form["client_id"] != opts.client_id) or \
                    (opts.client_secret and form["client_secret"] != opts.client_secret):
                raise OAuthError(401, "invalid_client", "Unauthorized")
            if not opts.refresh_token or form.get("refresh_token") != opts.refresh_token:
                raise OAuthError(400, "invalid_grant", "Bad Request")
        elif not grant:
            raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type")
        else:
            raise OAuthError(400, "unsupported_grant_type", "Invalid grant_type: %s" % grant)
        return json_response(200, self.state.issue_token())

    def check_jwt(self, assertion):
        opts = self.state.opts
        parts = assertion.split(".")
        if len(parts) != 3:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: malformed assertion.")
        try:
            header = json.loads(b64u_decode(parts[0]))
            claims = json.loads(b64u_decode(parts[1]))
            sig = b64u_decode(parts[2])
        except (ValueError, binascii.Error):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: malformed base64 or JSON.")
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            raise OAuthError(400, "invalid_grant", "Invalid JWT: the algorithm must be RS256.")
        if not opts.jwt_public_key:
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature. (server started without "
                                                   "--jwt-public-key)")
        if not verify_rs256(opts.jwt_public_key, (parts[0] + "." + parts[1]).encode("ascii"), sig):
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        if not isinstance(claims, dict):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: claims are not an object.")
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss or (opts.jwt_issuer and iss != opts.jwt_issuer):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: iss %r is not accepted." % (iss,))
        auds = {DEFAULT_AUDIENCE, self.base_url() + "/token"} | set(opts.jwt_audience)
        if claims.get("aud") not in auds:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: aud %r is not the token endpoint."
                             % (claims.get("aud"),))
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) or exp <= now or \
                iat > now + 300 or exp <= iat or exp - iat > 3600:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) "
                                                   "and in a reasonable timeframe. Check your iat and exp values "
                                                   "in the JWT claim.")
        scope = claims.get("scope")
        if not isinstance(scope, str) or not any(sc.startswith(STORAGE_SCOPES) for sc in scope.split()):
            raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")

    def metadata(self, s, q, body, fault):
        path = "/".join(s)
        flavor = [("Metadata-Flavor", "Google")]
        if self.headers.get("X-Forwarded-For"):
            return Response(403, b"Forbidden: X-Forwarded-For is not allowed\n",
                            [("Content-Type", "text/plain")] + flavor)
        if path == "/":
            return Response(200, b"ok\n", [("Content-Type", "text/plain")] + flavor)
        if self.headers.get("Metadata-Flavor") != "Google":
            return Response(403, b"Missing required header: Metadata-Flavor: Google\n",
                            [("Content-Type", "text/plain")] + flavor)
        if self.command != "GET":
            return Response(405, b"Method not allowed\n", [("Content-Type", "text/plain")] + flavor)
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            return json_response(200, self.state.issue_token(), flavor)
        text = {
            "/computeMetadata/v1/project/project-id": self.state.opts.project_id,
            "/computeMetadata/v1/project/numeric-project-id": "123456789012",
            "/computeMetadata/v1/instance/service-accounts/default/email":
                "default@%s.iam.gserviceaccount.com" % self.state.opts.project_id,
            "/computeMetadata/v1/instance/service-accounts/default/scopes":
                "https://www.googleapis.com/auth/cloud-platform\n",
            "/computeMetadata/v1/": "instance/\nproject/\n",
        }.get(path)
        if text is None:
            return Response(404, b"Not Found\n", [("Content-Type", "text/plain")] + flavor)
        return Response(200, text.encode(), [("Content-Type", "application/text")] + flavor)

    # -- control endpoints -----------------------------------------------------------------------------------

    def stats_get(self, s, q, body, fault):
        st = self.state
        with st.lock:
            nobj = sum(len(b.objects) for b in st.buckets.values())
            nb = len(st.buckets)
            nsess = sum(1 for x in st.sessions.values() if x.result is None and not x.dead)
        with st.stats_lock:
            out = {"connections": st.connections, "api_connections": st.api_connections,
                   "requests": dict(st.requests), "requests_total": sum(st.requests.values()),
                   "tokens_issued": st.tokens_issued, "api_in_flight": st.api_in_flight, "buckets": nb, "objects": nobj,
                   "open_upload_sessions": nsess, "generations_created": st.generations_created}
        return json_response(200, out)

    def stats_reset(self, s, q, body, fault):
        self.state.reset_stats()
        return json_response(200, {})

    def config(self, s, q, body, fault):
        st = self.state
        if self.command == "POST":
            cfg = parse_json_body(body) if body else {}
            if not isinstance(cfg, dict):
                raise ApiError(400, "Parse Error", reason="parseError")
            for k in cfg:
                if k not in ("delay_ms", "token_lifetime_s", "token_required", "rewrite_chunk",
                             "allow_newline_names", "list_modes", "bucket_modes", "outage_s", "outage_status"):
                    raise ApiError(400, "Unknown config key: %s" % k)
            if "list_modes" in cfg:
                lm = cfg["list_modes"]
                if not isinstance(lm, dict) or not all(
                        isinstance(v, list) and all(isinstance(m, str) and LIST_MODE_RE.match(m) for m in v)
                        for v in lm.values()):
                    raise ApiError(400, "list_modes takes {\"BUCKET\": [MODE, ...]}: %r" % (lm,))
                for b, v in lm.items():
                    if v:
                        st.list_modes[b] = list(v)
                    else:
                        st.list_modes.pop(b, None)
            if "bucket_modes" in cfg:
                bm = cfg["bucket_modes"]
                if not isinstance(bm, dict) or not all(
                        isinstance(v, list) and all(m in BUCKET_MODES for m in v) for v in bm.values()):
                    raise ApiError(400, "bucket_modes takes {\"BUCKET\": [MODE, ...]} with modes among %s: %r"
                                   % (", ".join(BUCKET_MODES), bm))
                for b, v in bm.items():
                    if v:
                        st.bucket_modes[b] = list(v)
                    else:
                        st.bucket_modes.pop(b, None)
            if "delay_ms" in cfg:
                st.delay_ms = float(cfg["delay_ms"])
            if "token_lifetime_s" in cfg:
                st.token_lifetime_s = int(cfg["token_lifetime_s"])
            if "token_required" in cfg:
                st.token_required = bool(cfg["token_required"])
            if "rewrite_chunk" in cfg:
                st.rewrite_chunk = int(cfg["rewrite_chunk"])
            if "allow_newline_names" in cfg:
                st.opts.allow_newline_names = bool(cfg["allow_newline_names"])
            if "outage_status" in cfg:
                status = int(cfg["outage_status"])
                if status != 0 and not 400 <= status <= 599:
                    raise ApiError(400, "outage_status must be 0 (no answer) or an HTTP error status")
                st.outage_status = status
            if "outage_s" in cfg:
                st.outage_until = time.monotonic() + float(cfg["outage_s"])
        return json_response(200, {"delay_ms": st.delay_ms, "token_lifetime_s": st.token_lifetime_s,
                                   "token_required": st.token_required, "rewrite_chunk": st.rewrite_chunk,
                                   "allow_newline_names": st.opts.allow_newline_names,
                                   "list_modes": st.list_modes, "bucket_modes": st.bucket_modes,
                                   "outage_s": max(0.0, round(st.outage_until - time.monotonic(), 3)),
                                   "outage_status": st.outage_status})

    def reset_all(self, s, q, body, fault):
        """Drop everything, or with {"buckets": [..]} just those buckets and their objects."""
        st = self.state
        req = parse_json_body(body) if body else {}
        only = req.get("buckets") if isinstance(req, dict) else None
        with st.lock:
            if only:
                for b in only:
                    st.buckets.pop(b, None)
            else:
                st.buckets.clear()
                st.sessions.clear()
                st.rewrites.clear()
                st.retry_tests.clear()
        if not only:
            for b in st.opts.bucket:
                create_bucket(st, b)
        return json_response(200, {})

    def seed(self, s, q, body, fault):
        req = parse_json_body(body)
        if not isinstance(req, dict) or not req.get("bucket"):
            raise ApiError(400, "seed needs {\"bucket\": ...}")
        bucket = req["bucket"]
        if req.get("create_bucket", True):
            create_bucket(self.state, bucket)
        n = 0
        for o in req.get("objects", []):
            data = base64.b64decode(o["data_b64"]) if "data_b64" in o else o.get("data", "").encode("utf-8")
            serve = o.get("serve", [])
            if not isinstance(serve, list) or not all(m in SERVE_MODES for m in serve):
                raise ApiError(400, "serve takes a list of %s: %r" % (", ".join(SERVE_MODES), serve))
            obj = self.state.put(bucket, o["name"], data, o.get("contentType"), writable(o), {}, api=False)
            obj.serve = frozenset(serve)
            n += 1
        count = int(req.get("count", 0))
        fmt = req.get("name_format", "obj-{:06d}")
        size = req.get("size")
        for i in range(count):
            name = fmt.format(i)
            data = (name + "\n").encode("utf-8")
            if size is not None:
                data = (data * (int(size) // max(len(data), 1) + 1))[:int(size)]
            self.state.put(bucket, name, data, "text/plain", {}, {}, api=False)
            n += 1
        return json_response(200, {"created": n})

    def retry_test(self, s, q, body, fault):
        st = self.state
        path = "/".join(s)
        if path == "/retry_tests" and self.command == "GET":
            with st.lock:
                return json_response(200, {"retry_test": [dict(t) for t in st.retry_tests.values()]})
        if path == "/retry_test" and self.command == "POST":
            req = parse_json_body(body)
            instr = req.get("instructions") if isinstance(req, dict) else None
            if not isinstance(instr, dict):
                raise ApiError(400, "retry_test needs {\"instructions\": {method: [instruction, ...]}}")
            for method, lst in instr.items():
                if method not in FAULT_METHODS:
                    raise ApiError(400, "Unsupported method in retry test: %s" % method)
                if not isinstance(lst, list) or not all(isinstance(x, str) and parse_instruction(x) for x in lst):
                    raise ApiError(400, "Unsupported instruction for %s: %r" % (method, lst))
                if method not in UPLOAD_METHODS and "finalize-early" in lst:
                    raise ApiError(400, "finalize-early applies to storage.objects.insert only")
                if method not in UPLOAD_METHODS | {"storage.objects.rewrite"} and "truncate-upload" in lst:
                    raise ApiError(400, "truncate-upload applies to storage.objects.insert and rewrite only")
            tid = uuid.uuid4().hex
            t = {"id": tid, "instructions": {k: list(v) for k, v in instr.items()},
                 "transport": req.get("transport", "HTTP"), "completed": all(not v for v in instr.values())}
            with st.lock:
                st.retry_tests[tid] = t
            return json_response(200, t)
        if path.startswith("/retry_test/") and len(s) == 3:
            tid = s[2]
            with st.lock:
                t = st.retry_tests.get(tid)
                if t is None:
                    raise ApiError(404, "Retry Test %s not found" % tid)
                if self.command == "GET":
                    return json_response(200, {"id": t["id"], "instructions": {k: list(v) for k, v in
                                                                               t["instructions"].items()},
                                               "transport": t["transport"], "completed": t["completed"]})
                if self.command == "DELETE":
                    del st.retry_tests[tid]
                    return json_response(200, {})
        raise ApiError(404, "Not Found")


def parse_json_body(body):
    try:
        return json.loads(body.decode("utf-8")) if body else {}
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Parse Error", reason="parseError")


def int_param(q, name):
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ApiError(400, "Invalid value for %s: %s" % (name, v), reason="invalidParameter")


def preconditions(q, names=PRECONDITION_PARAMS):
    out = {}
    for n in names:
        v = int_param(q, n)
        if v is not None:
            out[n] = v
    return out


def writable(meta):
    return {k: meta[k] for k in WRITABLE_META if k in meta}


def verify_expected(meta, crc, md5):
    want = meta.get("crc32c")
    if want:
        got = crc32c_b64(crc)
        if want != got:
            raise ApiError(400, 'Provided CRC32C "%s" doesn\'t match calculated CRC32C "%s".' % (want, got))
    want = meta.get("md5Hash")
    if want:
        got = base64.b64encode(md5).decode()
        if want != got:
            raise ApiError(400, 'Provided MD5 hash "%s" doesn\'t match calculated MD5 hash "%s".' % (want, got))


def parse_range(header, size):
    """(first, last) for a single satisfiable byte range; "unsatisfiable"; None to ignore the header."""
    m = re.match(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", header)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":
        n = int(m.group(2))
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    a = int(m.group(1))
    if m.group(2) != "" and int(m.group(2)) < a:
        return None
    if a >= size:
        return "unsatisfiable"
    b = int(m.group(2)) if m.group(2) != "" else size - 1
    return a, min(b, size - 1)


def verify_rs256(pubkey_path, data, sig):
    with tempfile.NamedTemporaryFile(prefix="gcs-jwt-sig-", delete=False) as f:
        f.write(sig)
        sig_path = f.name
    try:
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pubkey_path, "-signature", sig_path],
                           input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return r.returncode == 0
    finally:
        os.unlink(sig_path)


def create_bucket(state, name):
    with state.lock:
        if name not in state.buckets:
            state.buckets[name] = Bucket(name, state.opts.project_id)


def seed_root(state, root):
    for bname in sorted(os.listdir(root)):
        bdir = os.path.join(root, bname)
        if not os.path.isdir(bdir):
            continue
        create_bucket(state, bname)
        for dirpath, _, files in os.walk(bdir):
            for fn in files:
                path = os.path.join(dirpath, fn)
                name = os.path.relpath(path, bdir).replace(os.sep, "/")
                with open(path, "rb") as f:
                    state.put(bname, name, f.read(), None, {}, {})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Local GCS JSON API v1 test server for sluice (in memory).")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind; only 127.0.0.1 (or localhost)")
    ap.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    ap.add_argument("--port-file", help="write the chosen port here (atomically) once listening")
    ap.add_argument("--bucket", action="append", default=[], help="create this bucket at start (repeatable)")
    ap.add_argument("--root", help="seed from DIR: each subdirectory is a bucket, each file under it an object")
    ap.add_argument("--project-id", default=DEFAULT_PROJECT, help="project id of the metadata server")
    ap.add_argument("--delay-ms", type=float, default=0, help="sleep this long in every API request")
    ap.add_argument("--rewrite-chunk", type=int, default=0,
                    help="bytes copied per objects.rewrite call (0: all at once unless maxBytesRewrittenPerCall)")
    ap.add_argument("--token-required", action="store_true", help="storage requests need a valid Bearer token")
    ap.add_argument("--token-lifetime-s", type=int, default=3600, help="lifetime of issued access tokens")
    ap.add_argument("--accept-token", action="append", default=[], help="a static access token always accepted")
    ap.add_argument("--jwt-public-key", help="PEM public key verifying RS256 JWT assertions at POST /token")
    ap.add_argument("--jwt-audience", action="append", default=[], help="extra accepted JWT aud (repeatable)")
    ap.add_argument("--jwt-issuer", help="if set, the JWT iss claim must equal this")
    ap.add_argument("--refresh-token", help="the refresh token accepted by grant_type=refresh_token")
    ap.add_argument("--client-id", help="if set, the client_id the refresh flow must present")
    ap.add_argument("--client-secret", help="if set, the client_secret the refresh flow must present")
    ap.add_argument("--allow-newline-names", action="store_true",
                    help="accept object names with CR/LF (GCS rejects them)")
    ap.add_argument("--split-hash-headers", action="store_true",
                    help="send x-goog-hash as two header lines (crc32c, md5) instead of one")
    ap.add_argument("--verbose", action="store_true", help="log every request on stderr")
    ap.add_argument("--parent-pid", type=int,
                    help="stop once process PID is no longer this one's parent (a test that started it and crashed)")
    opts = ap.parse_args(argv)
    if opts.host not in ("127.0.0.1", "localhost"):
        ap.error("refusing to bind %s: this test server only listens on 127.0.0.1" % opts.host)
    if opts.jwt_public_key:
        opts.jwt_public_key = os.path.abspath(opts.jwt_public_key)
    state = State(opts)
    for b in opts.bucket:
        create_bucket(state, b)
    if opts.root:
        seed_root(state, opts.root)
    server = Server(("127.0.0.1", opts.port), state)
    port = server.server_address[1]
    if opts.port_file:
        d = os.path.dirname(os.path.abspath(opts.port_file))
        fd, tmp = tempfile.mkstemp(prefix=".port-", dir=d)
        with os.fdopen(fd, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, opts.port_file)

    def stop(signum, frame):
        # Not an exception raised wherever the main thread happens to be (inside Thread.start, say, which can leave
        # the interpreter unable to exit): serve_forever is asked to return, from another thread as it must be.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if opts.parent_pid:
        def watch_parent():
            # A parent that died without stopping this server (a crashed test program) leaves it to init: its
            # inherited stderr would keep the test runner's output pipe open for ever. The pid is given, not read
            # here: the parent may be gone before this line runs.
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
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
