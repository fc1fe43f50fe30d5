#!/usr/bin/env python3
"""s3rver (tests/s3/s3rver.sh) installs, starts on 127.0.0.1 with a port file, and answers requests signed by
botocore: PutObject, ListObjectsV2 and GetObject. Exit status 77 (CTest: skipped) without node and npm.
Run: S3RVER_DIR=build/tests/s3rver python3 tests/s3/test_s3rver.py
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
    sys.stderr.write("test_s3rver.py: needs botocore (Debian: apt-get install python3-botocore)\n")
    sys.exit(1)


_need_botocore()

import http.client  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402

import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class TestS3rver(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="s3rver-test-")
        port_file = os.path.join(cls.dir, "port")
        cls.proc = subprocess.Popen(["bash", os.path.join(HERE, "s3rver.sh"), "start", "--port-file", port_file,
                                     "--bucket", "sluice-test", "--parent-pid", str(os.getpid())],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = cls.proc.stdout.readline().decode()  # npm ci first, when it is not installed yet
        if not line.startswith("listening on 127.0.0.1:"):
            cls.proc.wait(60)
            raise RuntimeError("s3rver did not start: %r %s" % (line, cls.proc.stderr.read().decode()))
        cls.port = int(line.strip().rsplit(":", 1)[1])
        with open(port_file) as f:
            assert int(f.read()) == cls.port

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        rc = cls.proc.wait(30)
        cls.proc.stdout.close()
        cls.proc.stderr.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0, rc

    def request(self, method, target, body=b"", akid="S3RVER"):
        host = "127.0.0.1:%d" % self.port
        r = botocore.awsrequest.AWSRequest(method=method, url="http://%s%s" % (host, target), data=body)
        botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(akid, "S3RVER"), "s3", "us-east-1").add_auth(r)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            c.request(method, target, body=body, headers=dict(r.headers.items(), Host=host))
            resp = c.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            c.close()

    def test_signed_requests(self):
        st, h, _ = self.request("PUT", "/sluice-test/dir/a%20b.txt", b"from botocore")
        self.assertEqual(st, 200)
        st, _, body = self.request("GET", "/sluice-test?list-type=2&prefix=dir%2F")
        self.assertEqual(st, 200, body)
        root = ET.fromstring(body)
        # s3rver 3.7.1 answers in the namespace http://doc.s3.amazonaws.com/2006-03-01/, not S3's
        # http://s3.amazonaws.com/doc/2006-03-01/: a client must match element names, not the namespace.
        self.assertEqual(root.tag, "{http://doc.s3.amazonaws.com/2006-03-01/}ListBucketResult")
        for e in root.iter():
            e.tag = e.tag.split("}", 1)[-1]
        self.assertEqual([k.text for k in root.iter("Key")], ["dir/a b.txt"])
        self.assertEqual(root.findtext("KeyCount"), "1")
        self.assertEqual(self.request("GET", "/sluice-test/dir/a%20b.txt")[2], b"from botocore")
        st, _, body = self.request("GET", "/sluice-test?list-type=2", akid="UNKNOWN")
        self.assertEqual(st, 403, body)
        self.assertIn(b"InvalidAccessKeyId", body)


if __name__ == "__main__":
    if not shutil.which("node") or not shutil.which("npm"):
        sys.stderr.write("test_s3rver.py: skipped: no node and npm (scripts/deps.sh installs them)\n")
        sys.exit(77)
    unittest.main(verbosity=1)
