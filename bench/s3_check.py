#!/usr/bin/env python3
"""Check what a client uploaded to the local S3 test server against the local tree it came from.

    python3 bench/s3_check.py http://127.0.0.1:PORT BUCKET PREFIX DIR

Lists s3://BUCKET/PREFIX with ListObjectsV2 (paged, requests signed by botocore with AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_REGION) and compares it with the files under DIR: the same set of relative names, and
for each one the same size and MD5 (the ETag of a single-part object, computed by the server from the bytes it
stored; a multipart ETag "...-N" is refused, as it cannot be compared). Prints "N objects, B bytes: identical to DIR"
and exits 0, or prints the first differences and exits 1. Only 127.0.0.1 is accepted as the server address. Needs
botocore: runs itself again under /usr/bin/python3 (Debian's python3-botocore) when this interpreter lacks it.
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
    if os.environ.get("SLUICE_S3_CHECK_REEXEC") != "1" and os.path.exists(system):
        os.environ["SLUICE_S3_CHECK_REEXEC"] = "1"
        os.execv(system, [system] + sys.argv)
    sys.exit("s3_check.py: needs botocore (Debian: apt-get install python3-botocore)")


if __name__ == "__main__":
    _need_botocore()

import hashlib  # noqa: E402
import http.client  # noqa: E402
import urllib.parse  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402

import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402


def list_objects(base, bucket, prefix):
    """{key: (size, etag without quotes)} of every object under prefix, all pages."""
    u = urllib.parse.urlsplit(base)
    host = "%s:%d" % (u.hostname, u.port)
    creds = botocore.credentials.Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                                             os.environ.get("AWS_SESSION_TOKEN"))
    region = os.environ.get("AWS_REGION", "us-east-1")
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    out, token = {}, None
    while True:
        q = "list-type=2&prefix=%s" % urllib.parse.quote(prefix, safe="-_.~")
        if token:
            q += "&continuation-token=%s" % urllib.parse.quote(token, safe="-_.~")
        target = "/%s?%s" % (urllib.parse.quote(bucket), q)
        r = botocore.awsrequest.AWSRequest(method="GET", url="http://%s%s" % (host, target))
        botocore.auth.S3SigV4Auth(creds, "s3", region).add_auth(r)
        conn.request("GET", target, headers=dict(r.headers.items(), Host=host))
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            sys.exit("s3_check.py: listing s3://%s/%s: HTTP %d: %s" % (bucket, prefix, resp.status, body[:400]))
        root = ET.fromstring(body)
        for e in root.iter():
            e.tag = e.tag.split("}", 1)[-1]
        for o in root.findall("Contents"):
            out[o.findtext("Key")] = (int(o.findtext("Size")), o.findtext("ETag").strip('"'))
        token = root.findtext("NextContinuationToken")
        if root.findtext("IsTruncated") != "true":
            break
    conn.close()
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    base, bucket, prefix, root = sys.argv[1:5]
    if urllib.parse.urlsplit(base).hostname != "127.0.0.1":
        sys.exit("s3_check.py: the server must be on 127.0.0.1, not %s" % base)
    remote = {k[len(prefix):]: v for k, v in list_objects(base, bucket, prefix).items()}
    local = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                data = fh.read()
            local[os.path.relpath(p, root).replace(os.sep, "/")] = (len(data), hashlib.md5(data).hexdigest())
    bad = []
    for k in sorted(set(local) | set(remote)):
        if k not in remote:
            bad.append("missing in s3://%s/%s: %s" % (bucket, prefix, k))
        elif k not in local:
            bad.append("extra in s3://%s/%s: %s" % (bucket, prefix, k))
        elif local[k] != remote[k]:
            bad.append("differs: %s (local %d bytes, MD5 %s; remote %d bytes, ETag %s)"
                       % (k, local[k][0], local[k][1], remote[k][0], remote[k][1]))
    if bad:
        print("s3://%s/%s differs from %s (%d problems):" % (bucket, prefix, root, len(bad)), file=sys.stderr)
        for b in bad[:10]:
            print("  " + b, file=sys.stderr)
        sys.exit(1)
    print("%d objects, %d bytes: identical to %s" % (len(remote), sum(v[0] for v in remote.values()), root))


if __name__ == "__main__":
    main()
