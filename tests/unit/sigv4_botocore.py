"""Cross-checks sluice's SigV4 signer against botocore's, byte for byte.

Usage: sigv4_botocore.py TEST_SIGV4_BINARY

Each row of TABLE is an odd request (query keys and values with spaces, '+', '=', '&', '~', UTF-8 and bytes that are
not UTF-8, empty values, repeated keys; x-amz-* headers with runs of spaces; every method; UNSIGNED-PAYLOAD; session
tokens; another service). The signer (`test_sigv4 --sign`) gets the raw parts; botocore gets a URL this script builds
with urllib's own percent-encoding, in the order given, and signs it with S3SigV4Auth (service s3) or SigV4Auth.
The canonical request, the string to sign, SignedHeaders and the signature must be identical, and the request line
the store would send (the signer's encoded path and query string) must be the one botocore signed."""

import datetime
import hashlib
import json
import subprocess
import sys
from urllib.parse import quote

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
EMPTY = hashlib.sha256(b"").hexdigest()
T0 = 1700000000  # 2023-11-14T22:13:20Z


def sha(b):
    return hashlib.sha256(b).hexdigest()


def b(s):
    return s if isinstance(s, bytes) else s.encode("utf-8")


# name, method, path, query pairs (None = no value), extra headers, body, payload hash, token, service, region
TABLE = [
    ("plain get", "GET", "/bucket/key.txt", [], [], b"", None, None, "s3", "us-east-1"),
    ("list unsorted", "GET", "/bucket", [("list-type", "2"), ("prefix", "photos/2024/"), ("delimiter", "/"),
                                         ("continuation-token", "1/abC+d=="), ("start-after", "photos/a b")],
     [], b"", None, None, "s3", "us-east-1"),
    ("query space plus", "GET", "/bucket", [("prefix", "a b+c"), ("list-type", "2")], [], b"", None, None, "s3",
     "eu-west-1"),
    ("query = and &", "GET", "/bucket", [("prefix", "x=y&z"), ("k&=", "v")], [], b"", None, None, "s3", "us-east-1"),
    ("query tilde", "GET", "/bucket", [("~k", "~v"), ("prefix", "~home")], [], b"", None, None, "s3", "us-east-1"),
    ("query utf8", "GET", "/bucket", [("prefix", "été/日本語"), ("ключ", "значение")], [], b"", None, None, "s3",
     "us-east-1"),
    ("query empty values", "POST", "/bucket", [("delete", None)], [("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
     b"<Delete/>", None, None, "s3", "us-east-1"),
    ("query uploads", "POST", "/bucket/big.bin", [("uploads", None), ("x", "")], [], b"", None, None, "s3",
     "us-east-1"),
    ("query repeated", "GET", "/bucket", [("a", "2"), ("a", "1"), ("a", ""), ("a-b", "0"), ("a", "10")], [], b"",
     None, None, "s3", "us-east-1"),
    ("query odd bytes", "GET", "/bucket", [(b"\x80key", b"\xff\x01x"), ("k%ey", "100%"), ("\t", "\n")], [], b"",
     None, None, "s3", "us-east-1"),
    ("path odd", "GET", "/bucket/a b/$dollar+plus=eq&amp!'()*,;:@/~t/é", [], [], b"", None, None, "s3",
     "us-east-1"),
    ("path dots", "GET", "/bucket/./a/../b//c/", [], [], b"", None, None, "s3", "us-east-1"),
    ("path bytes", "HEAD", b"/bucket/\x01\x7f\xfe", [], [], b"", None, None, "s3", "us-east-1"),
    ("put meta", "PUT", "/bucket/obj", [], [("x-amz-meta-note", "  two   spaces \t tab  "),
                                           ("X-Amz-Storage-Class", "STANDARD_IA"),
                                           ("x-amz-checksum-crc32c", "yZRlqg=="),
                                           ("Content-Type", "text/plain; charset=utf-8")],
     b"hello world", "sha", None, "s3", "us-east-1"),
    ("put repeated header", "PUT", "/bucket/obj", [], [("x-amz-meta-a", "1"), ("X-Amz-Meta-A", " 2")],
     b"x", "sha", None, "s3", "us-east-1"),
    ("put unsigned", "PUT", "/bucket/obj", [("partNumber", "3"), ("uploadId", "2~abc/def+g==")],
     [("content-md5", "XrY7u+Ae7tCTyyK7j1rNww==")], b"hello world", "UNSIGNED-PAYLOAD", None, "s3", "us-east-1"),
    ("post complete", "POST", "/bucket/big.bin", [("uploadId", "VXBsb2FkIElE")],
     [("content-type", "application/xml")], b"<CompleteMultipartUpload/>", "sha", None, "s3", "us-east-1"),
    ("delete", "DELETE", "/bucket/obj", [("uploadId", "x y")], [], b"", None, None, "s3", "us-east-1"),
    ("head if-match", "HEAD", "/bucket/obj", [("versionId", "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")],
     [("If-Match", '"9b2cf535f27731c974343645a3985328"')], b"", None, None, "s3", "us-east-1"),
    ("get range token", "GET", "/bucket/obj", [], [("Range", "bytes=0-9"), ("x-amz-checksum-mode", "ENABLED")],
     b"", None, "FwoGZXIvYXdzEJr//////////wEaDOtoken+/=", "s3", "ap-southeast-2"),
    ("copy source", "PUT", "/bucket/dst key", [],
     [("x-amz-copy-source", "/src%20bucket/k%2Bey"), ("x-amz-metadata-directive", "COPY"),
      ("x-amz-meta-sluice-source", "gs://b/k size=3 crc32c=00000000")], b"", None, None, "s3", "us-east-1"),
    ("host with port", "GET", "/bucket/k", [], [], b"", None, None, "s3", "us-east-1"),
    ("sts", "POST", "/", [], [("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
     b"Action=GetCallerIdentity&Version=2011-06-15", "sha", "tok", "sts", "us-east-1"),
    ("sts get query", "GET", "/", [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")], [], b"", None, None,
     "sts", "eu-north-1"),
    ("custom region", "GET", "/bucket", [("list-type", "2")], [], b"", None, None, "s3", "garage"),
]


def enc(x):
    return quote(b(x), safe="-_.~")


def as_json_bytes(x):
    if isinstance(x, bytes):
        try:
            return x.decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": x.hex()}
    return x


def main():
    binary = sys.argv[1]
    rows = []
    for i, (name, method, path, query, headers, body, ph, token, service, region) in enumerate(TABLE):
        host = "127.0.0.1:9000" if name == "host with port" else f"{service}.{region}.amazonaws.com"
        if ph == "sha":
            ph = sha(body)
        elif ph is None:
            ph = sha(body) if service != "s3" or body else EMPTY
        t = T0 + i * 3601
        rows.append(dict(name=name, method=method, path=path, query=query, headers=headers, body=body, ph=ph,
                         token=token, service=service, region=region, host=host, time=t))

    lines = []
    for r in rows:
        lines.append(json.dumps({
            "method": r["method"], "path": as_json_bytes(r["path"]),
            "query": [[as_json_bytes(k), None if v is None else as_json_bytes(v)] for k, v in r["query"]],
            "headers": [["host", r["host"]]] + [[k, v] for k, v in r["headers"]],
            "payload_hash": r["ph"], "time": r["time"], "region": r["region"], "service": r["service"],
            "key": KEY, "secret": SECRET, "token": r["token"] or "",
        }))
    proc = subprocess.run([binary, "--sign"], input="\n".join(lines) + "\n", capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        sys.exit(f"{binary} --sign failed with {proc.returncode}")
    answers = [json.loads(x) for x in proc.stdout.splitlines()]
    if len(answers) != len(rows):
        sys.exit(f"{len(rows)} requests, {len(answers)} answers")

    failed = 0
    for r, ours in zip(rows, answers):
        if "error" in ours:
            print(f"FAIL {r['name']}: our signer refused it: {ours['error']}")
            failed += 1
            continue
        # botocore's request: the URL written here, parameters in the order given (botocore sorts).
        url_path = quote(b(r["path"]), safe="/~")
        url = f"https://{r['host']}{url_path}"
        if r["query"]:
            url += "?" + "&".join(enc(k) + "=" + ("" if v is None else enc(v)) for k, v in r["query"])
        creds = Credentials(KEY, SECRET, r["token"])
        signer = (S3SigV4Auth if r["service"] == "s3" else SigV4Auth)(creds, r["service"], r["region"])
        req = AWSRequest(method=r["method"], url=url, data=r["body"])
        req.headers["Host"] = r["host"]
        for k, v in r["headers"]:
            req.headers[k] = v
        stamp = datetime.datetime.fromtimestamp(r["time"], datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        req.context["timestamp"] = stamp
        req.headers["X-Amz-Date"] = stamp
        if r["token"]:
            req.headers["X-Amz-Security-Token"] = r["token"]
        if r["service"] == "s3":
            req.headers["X-Amz-Content-SHA256"] = r["ph"]
        cr = signer.canonical_request(req)
        sts = signer.string_to_sign(req, cr)
        sig = signer.signature(sts, req)
        signed = signer.signed_headers(signer.headers_to_sign(req))
        want_auth = (f"Authorization: AWS4-HMAC-SHA256 Credential={KEY}/{stamp[:8]}/{r['region']}/{r['service']}"
                     f"/aws4_request,SignedHeaders={signed},Signature={sig}")
        want_amz = [f"x-amz-date: {stamp}"]
        if r["service"] == "s3":
            want_amz.append(f"x-amz-content-sha256: {r['ph']}")
        if r["token"]:
            want_amz.append(f"x-amz-security-token: {r['token']}")
        checks = [
            ("canonical request", ours["canonical_request"], cr),
            ("string to sign", ours["string_to_sign"], sts),
            ("authorization", ours["authorization"], want_auth),
            ("path", ours["path"], cr.split("\n")[1]),
            ("query string", ours["query_string"], cr.split("\n")[2]),
            ("x-amz headers", ours["amz_headers"], want_amz),
        ]
        bad = [(what, got, want) for what, got, want in checks if got != want]
        if bad:
            failed += 1
            for what, got, want in bad:
                print(f"FAIL {r['name']}: {what}:\n  ours:     {got!r}\n  botocore: {want!r}")
        else:
            print(f"ok   {r['name']}: {sig}")
    print(f"{len(rows) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
