"""Fake AWS credential endpoints on 127.0.0.1 for tests/unit/test_auth_aws.c (Python standard library only).

One server answers as three services, each the way the real one does:
  STS        POST /sts/ (form body)           Action=AssumeRoleWithWebIdentity -> XML credentials or ErrorResponse
  container  GET  /container/creds            checks the Authorization header -> JSON credentials
  IMDSv2     PUT  /latest/api/token           needs X-aws-ec2-metadata-token-ttl-seconds -> a session token
             GET  /latest/meta-data/iam/security-credentials/       needs the token -> the role name
             GET  /latest/meta-data/iam/security-credentials/ROLE   needs the token -> JSON credentials
and two endpoints for the test itself:
  POST /_config  JSON merged into the settings below
  GET  /_stats   JSON: requests counted per endpoint, the last web identity token and Authorization seen

Settings: lifetime (seconds the credentials issued live; may be negative), delay_ms (before each credentials answer),
web_token (the web identity token STS accepts), container_token (the Authorization the container endpoint wants,
"" = none), fail (endpoint name -> [status, code, message] to answer instead, until changed), echo_token (STS quotes
the token it was sent in its error message, as a careless server might).

Usage: aws_fake.py --port-file FILE   (listens on a free port, writes it to FILE)"""

import argparse
import datetime
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

LOCK = threading.Lock()
SETTINGS = {"lifetime": 3600, "delay_ms": 0, "web_token": "web-identity-token-SECRET",
            "container_token": "", "fail": {}, "echo_token": False}
STATS = {"sts": 0, "container": 0, "imds_token": 0, "imds_role": 0, "imds_creds": 0, "last_web_token": "",
         "last_authorization": "", "last_session_name": "", "last_role_arn": ""}
IMDS_TOKEN = "imds-session-token-SECRET"
ROLE = "test-role"


def issue(source, n):
    with LOCK:
        lifetime = SETTINGS["lifetime"]
    exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lifetime)
    return {"AccessKeyId": f"ASIA{source.upper()}{n:04d}",
            "SecretAccessKey": f"secret-{source}-{n:04d}-wJalrXUtnFEMIK7MDENGbPxRfiCY",
            "Token": f"token-{source}-{n:04d}-FwoGZXIvYXdzEJr" + "x" * 300,
            "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _count(self, name):
        with LOCK:
            STATS[name] += 1
            n = STATS[name]
            fail = SETTINGS["fail"].get(name)
            delay = SETTINGS["delay_ms"]
        if delay:
            time.sleep(delay / 1000)
        return n, fail

    def do_GET(self):
        if self.path == "/_stats":
            with LOCK:
                return self._send(200, json.dumps(STATS), "application/json")
        if self.path == "/container/creds":
            n, fail = self._count("container")
            with LOCK:
                STATS["last_authorization"] = self.headers.get("Authorization", "")
                want = SETTINGS["container_token"]
            if fail:
                return self._send(fail[0], json.dumps({"code": fail[1], "message": fail[2]}), "application/json")
            if want and self.headers.get("Authorization") != want:
                return self._send(401, json.dumps({"code": "Unauthorized", "message": "bad token"}),
                                  "application/json")
            return self._send(200, json.dumps(issue("container", n)), "application/json")
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self._send(401, "", "text/plain")
            role = self.path[len("/latest/meta-data/iam/security-credentials/"):]
            if role == "":
                self._count("imds_role")
                return self._send(200, ROLE, "text/plain")
            n, fail = self._count("imds_creds")
            if role != ROLE:
                return self._send(404, "", "text/plain")
            if fail:
                return self._send(fail[0], "", "text/plain")
            creds = issue("imds", n)
            creds.update({"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": "2024-01-01T00:00:00Z"})
            return self._send(200, json.dumps(creds), "text/plain")
        self._send(404, "", "text/plain")

    def do_PUT(self):
        self._body()
        if self.path == "/latest/api/token":
            _, fail = self._count("imds_token")
            if fail:
                return self._send(fail[0], "", "text/plain")
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self._send(400, "", "text/plain")
            return self._send(200, IMDS_TOKEN, "text/plain")
        self._send(404, "", "text/plain")

    def do_POST(self):
        body = self._body()
        if self.path == "/_config":
            with LOCK:
                SETTINGS.update(json.loads(body or b"{}"))
            return self._send(200, "{}", "application/json")
        if self.path == "/sts/":
            n, fail = self._count("sts")
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            with LOCK:
                STATS["last_web_token"] = form.get("WebIdentityToken", "")
                STATS["last_session_name"] = form.get("RoleSessionName", "")
                STATS["last_role_arn"] = form.get("RoleArn", "")
                want = SETTINGS["web_token"]
                echo = SETTINGS["echo_token"]
            if fail or form.get("WebIdentityToken") != want or form.get("Action") != "AssumeRoleWithWebIdentity" \
                    or form.get("Version") != "2011-06-15" or not form.get("RoleArn"):
                status, code, msg = fail or (400, "InvalidIdentityToken", "Couldn't validate the identity token")
                if echo:
                    msg += " " + form.get("WebIdentityToken", "")
                xml = ("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
                       f"<Code>{code}</Code><Message>{msg}</Message></Error><RequestId>r-1</RequestId>"
                       "</ErrorResponse>")
                return self._send(status, xml, "text/xml")
            c = issue("sts", n)
            xml = ("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                   "  <AssumeRoleWithWebIdentityResult>\n"
                   "    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>\n"
                   f"    <AssumedRoleUser><Arn>{form['RoleArn']}/{form.get('RoleSessionName', '')}</Arn>"
                   "<AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser>\n"
                   "    <Credentials>\n"
                   f"      <SessionToken>{c['Token']}</SessionToken>\n"
                   f"      <SecretAccessKey>{c['SecretAccessKey']}</SecretAccessKey>\n"
                   f"      <Expiration>{c['Expiration']}</Expiration>\n"
                   f"      <AccessKeyId>{c['AccessKeyId']}</AccessKeyId>\n"
                   "    </Credentials>\n"
                   "    <Provider>oidc.example</Provider>\n"
                   "  </AssumeRoleWithWebIdentityResult>\n"
                   "  <ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata>\n"
                   "</AssumeRoleWithWebIdentityResponse>\n")
            return self._send(200, xml, "text/xml")
        self._send(404, "", "text/plain")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
