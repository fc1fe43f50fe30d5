#!/usr/bin/env python3
"""Check what a client uploaded to the local GCS test server against the local tree it came from.

    python3 bench/gcs_check.py http://127.0.0.1:PORT BUCKET PREFIX DIR

Lists gs://BUCKET/PREFIX through the JSON API (objects.list, paged) and compares it with the files under DIR: the
same set of relative names, and for each one the same size and MD5 (the server's md5Hash, computed from the bytes it
stored). Prints "N objects, B bytes: identical to DIR" and exits 0, or prints the first differences and exits 1.
Only 127.0.0.1 is accepted as the server address. Standard library only.
"""

import base64
import hashlib
import json
import os
import sys
import urllib.parse
import urllib.request


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    base, bucket, prefix, root = sys.argv[1:5]
    if urllib.parse.urlsplit(base).hostname != "127.0.0.1":
        sys.exit("gcs_check.py: the server must be on 127.0.0.1, not %s" % base)
    remote, token = {}, None
    while True:
        q = {"prefix": prefix, "maxResults": "1000", "fields": "nextPageToken,items(name,size,md5Hash)"}
        if token:
            q["pageToken"] = token
        url = "%s/storage/v1/b/%s/o?%s" % (base, urllib.parse.quote(bucket, safe=""), urllib.parse.urlencode(q))
        with urllib.request.urlopen(url, timeout=60) as r:
            page = json.load(r)
        for it in page.get("items", []):
            remote[it["name"][len(prefix):]] = (int(it["size"]), base64.b64decode(it["md5Hash"]))
        token = page.get("nextPageToken")
        if not token:
            break
    local = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                data = fh.read()
            local[os.path.relpath(p, root).replace(os.sep, "/")] = (len(data), hashlib.md5(data).digest())
    bad = []
    for k in sorted(set(local) | set(remote)):
        if k not in remote:
            bad.append("missing in gs://%s/%s: %s" % (bucket, prefix, k))
        elif k not in local:
            bad.append("extra in gs://%s/%s: %s" % (bucket, prefix, k))
        elif local[k] != remote[k]:
            bad.append("differs: %s (local %d bytes, remote %d bytes)" % (k, local[k][0], remote[k][0]))
    if bad:
        print("gs://%s/%s differs from %s (%d problems):" % (bucket, prefix, root, len(bad)), file=sys.stderr)
        for b in bad[:10]:
            print("  " + b, file=sys.stderr)
        sys.exit(1)
    print("%d objects, %d bytes: identical to %s" % (len(remote), sum(v[0] for v in remote.values()), root))


if __name__ == "__main__":
    main()
