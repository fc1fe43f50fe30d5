#!/usr/bin/env python3
"""Prints the record sluice keeps with a local output (the xattr user.sluice.source) in its text form,
"<out size> <out mtime_ns> <fingerprint> out_crc32c=<8 hex>", whether it is stored as that text (older versions, and
fingerprints the compact form cannot hold) or in the compact binary form (src/resume.h). An independent reading of
the format: a record this cannot decode fails the test that asked for it.

    sl_record.py FILE            the text form
    sl_record.py --raw FILE      whether it is stored "compact" or as "text", and its length in bytes
"""
import os
import sys


def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i
        if shift > 63:
            raise ValueError("varint too long")


def decode(b):
    if not b or b[0] != 1:
        return b.decode()
    i = 1
    out_size, i = varint(b, i)
    zz, i = varint(b, i)
    mtime = (zz >> 1) ^ -(zz & 1)
    out_crc = int.from_bytes(b[i:i + 4], "little")
    i += 4
    flags = b[i]
    i += 1
    size, i = varint(b, i)
    version, i = varint(b, i)
    fields = ["size=%d" % size, "%s=%d" % ("gen" if flags & 1 else "mtime", version)]
    if flags & 2:
        fields.append("crc32c=%08x" % int.from_bytes(b[i:i + 4], "little"))
        i += 4
    if flags & 4:
        n = b[i]
        fields.append("enc=" + b[i + 1:i + 1 + n].decode())
        i += 1 + n
    fields.append("job=" + b[i:].decode())
    return "%d %d %s out_crc32c=%08x" % (out_size, mtime, " ".join(fields), out_crc)


if __name__ == "__main__":
    raw = sys.argv[1] == "--raw"
    value = os.getxattr(sys.argv[-1], "user.sluice.source")
    if raw:
        print("compact" if value[:1] == b"\x01" else "text", len(value))
    else:
        print(decode(value))
