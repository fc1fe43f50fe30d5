# shellcheck shell=bash
# Helpers for the s3:// end-to-end tests. Sourced, never run: it sources lib.sh (run, expect_*, fail, say, finish,
# $T ...) unless that is done already (source it after gcs_lib.sh when a test needs both), and adds the S3 test
# server (tests/s3/s3_server.py) and s3rver (tests/s3/s3rver.sh).
#
# Network hygiene: only 127.0.0.1 may ever be contacted. This file
#   - points HOME at an empty scratch directory (no ~/.aws is found) and unsets every AWS_* variable sluice reads,
#   - sets AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1 (a closed port: the IMDS fallback fails at once),
#   - sets http_proxy/https_proxy/all_proxy to http://127.0.0.1:1 with no_proxy=127.0.0.1,localhost, so that a
#     request to any other host (the default https://s3.amazonaws.com, sts.amazonaws.com, 169.254.169.254) goes to
#     a closed loopback port instead.
#
#   s3_start [SERVER OPTIONS...]  start s3_server.py on a free port with the credentials S3_KEY:S3_SECRET and the
#                                 credential endpoints; sets S3_PORT, S3_PID, S3 (http://127.0.0.1:PORT),
#                                 S3_META_PORT, S3_META, and exports AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
#                                 AWS_SECRET_ACCESS_KEY, AWS_REGION (us-east-1) unless S3_NO_ENV=1. Stopped on exit.
#   s3rver_start [OPTIONS...]     start s3rver (s3rver.sh start; S3RVER_DIR as there); sets S3_PORT, S3_PID, S3 and
#                                 exports the same variables with the key S3RVER:S3RVER. Without node and npm: a
#                                 SKIP note and status 1 (`s3rver_start || ...` decides what the test does then).
#                                 npm ci, when needed, runs with HOME and proxies as they were when this file was
#                                 sourced (if gcs_lib.sh was sourced first, they are its closed ones: install first
#                                 with `tests/s3/s3rver.sh install` or `ctest -R s3.s3rver`).
#   s3_stop                       stop the server started last (checks its log for tracebacks)
#   s3_api METHOD PATH [BODY]     one control request (PATH under /_sluice, e.g. /stats); answer on stdout; fails the
#                                 test on HTTP >= 400
#   s3_seed JSON                  POST /_sluice/seed
#   s3_config JSON                POST /_sluice/config
#   s3_stats_reset                POST /_sluice/stats/reset
#   s3_stat EXPR                  python expression on /_sluice/stats as `d`, e.g. 'd["api_connections"]'
#   s3_requests METHOD            how many requests of that operation since the last reset (e.g. s3.PutObject)
#   s3_retry_test JSON            create a retry test from {"s3.GetObject": [...], ...}; prints its id
#   s3_expect_consumed ID         every instruction of the retry test was used (else the test proved nothing)
#   s3_signed METHOD PATH [FILE] [HEADER:VALUE...]
#                                 one request signed by botocore (an oracle independent of sluice's signer) with
#                                 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_REGION; PATH is URI-encoded and may
#                                 hold a query; FILE is the body ("" for none); the answer body on stdout, the status
#                                 in $T/.status; fails the test on HTTP >= 400 unless S3_OK_STATUS allows it
#   s3_objects BUCKET [PREFIX]    every object under PREFIX from the server's own listing (all pages), one JSON line
#                                 each: {"Key", "Size", "ETag", "ChecksumAlgorithm"}, in the server's order
#   S3_PYTHON                     a python3 with botocore (python3, or Debian's /usr/bin/python3 when python3 lacks it)
#   s3_finish                     stop servers, then lib.sh's finish

declare -F finish >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# python3 may be a version-manager shim without botocore, and costs a quarter second per start: use the interpreter
# itself, Debian's when that one has no botocore.
S3_PYTHON="$(command python3 -c 'import sys; print(sys.executable)')"
if ! "$S3_PYTHON" -c 'import botocore' 2>/dev/null; then
    S3_PYTHON=/usr/bin/python3
    "$S3_PYTHON" -c 'import botocore' 2>/dev/null ||
        { echo "FAIL: no python3 with botocore (scripts/deps.sh installs python3-botocore)" >&2; exit 1; }
fi

S3_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../s3" && pwd)"
[ -f "$S3_DIR/s3_server.py" ] || { echo "FAIL: no S3 test server at $S3_DIR/s3_server.py" >&2; exit 1; }

# s3rver's npm ci needs the network and npm's own settings: the environment as it was before the changes below.
S3__INSTALL_ENV=(HOME="$HOME")
for v in http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY no_proxy NO_PROXY; do
    [ -n "${!v:-}" ] && S3__INSTALL_ENV+=("$v=${!v}")
done
# Where s3rver is installed: shared with the s3.s3rver CTest test when run from CTest (SL_TEST_TMP is
# <build>/tests/tmp there), else s3rver.sh's default.
if [ -z "${S3RVER_DIR:-}" ] && [ -n "${SL_TEST_TMP:-}" ] && [ "$(basename "$SL_TEST_TMP")" = tmp ]; then
    export S3RVER_DIR="$(dirname "$SL_TEST_TMP")/s3rver"
fi

S3_KEY=AKIDSLUICETEST
S3_SECRET=sluice-test-secret/key+0
mkdir -p "$T/home"
export HOME="$T/home"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_REGION \
    AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_STS AWS_CONFIG_FILE \
    AWS_SHARED_CREDENTIALS_FILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_ROLE_SESSION_NAME \
    AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_AUTHORIZATION_TOKEN \
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE AWS_EC2_METADATA_DISABLED AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE
export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1
export http_proxy=http://127.0.0.1:1 https_proxy=http://127.0.0.1:1 all_proxy=http://127.0.0.1:1
export HTTP_PROXY="$http_proxy" HTTPS_PROXY="$https_proxy" ALL_PROXY="$all_proxy"
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

S3_PIDS=()
S3_LOGS=()
S3_WATCHDOGS=()
S3_N=0

# s3_watch PID: stops the server PID if this test shell dies without running its EXIT trap (SIGKILL, a ctest
# timeout), so no server outlives its test.
s3_watch() {
    local server=$1 shell=$$
    (while kill -0 "$shell" 2>/dev/null; do sleep 1; done; kill "$server" 2>/dev/null) </dev/null >/dev/null 2>&1 &
    S3_WATCHDOGS+=("$!")
}

s3__on_exit() {
    local rc=$?
    local i
    for i in "${S3_WATCHDOGS[@]}"; do kill "$i" 2>/dev/null || true; done
    for i in "${!S3_PIDS[@]}"; do
        kill "${S3_PIDS[$i]}" 2>/dev/null || true
        wait "${S3_PIDS[$i]}" 2>/dev/null || true
    done
    if [ "$rc" != 0 ]; then
        for i in "${S3_LOGS[@]}"; do
            [ -s "$i" ] && s_show_file "S3 test server log $i" "$i" >&2
        done
    fi
    (exit "$rc")
    eval "$S3__PREV_EXIT_TRAP"
}
S3__PREV_EXIT_TRAP="$(trap -p EXIT)"
eval "set -- ${S3__PREV_EXIT_TRAP:-x x x}"
S3__PREV_EXIT_TRAP="${3:-true}"
set --
trap s3__on_exit EXIT

s3__wait_port() { # s3__wait_port FILE LOG WHAT
    local i
    for i in $(seq 600); do
        [ -s "$1" ] && return 0
        kill -0 "$S3_PID" 2>/dev/null || fail "$3 starts" "a port file" "it exited: $(head -c 2000 "$2")"
        sleep 0.05
    done
    fail "$3 starts" "a port file within 30 s" "none"
}

s3__export() { # s3__export KEY SECRET
    S3="http://127.0.0.1:$S3_PORT"
    if [ "${S3_NO_ENV:-0}" != 1 ]; then
        export AWS_ENDPOINT_URL="$S3" AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2" AWS_REGION=us-east-1
    fi
}

s3_start() {
    S3_N=$((S3_N + 1))
    local pf="$T/s3-$S3_N.port" mpf="$T/s3-$S3_N.meta-port" log="$T/s3-$S3_N.log"
    # The interpreter itself, not a function: $! must be the server's pid so that it can be stopped.
    "$S3_PYTHON" "$S3_DIR/s3_server.py" --port 0 --port-file "$pf" --meta-port-file "$mpf" \
        --access-key "$S3_KEY:$S3_SECRET" "$@" >"$log" 2>&1 &
    S3_PID=$!
    S3_PIDS+=("$S3_PID")
    s3_watch "$S3_PID"
    S3_LOGS+=("$log")
    s3__wait_port "$pf" "$log" "S3 test server"
    S3_PORT=$(tr -d '\n' <"$pf")
    S3_META_PORT=$(tr -d '\n' <"$mpf")
    S3_META="http://127.0.0.1:$S3_META_PORT"
    s3__export "$S3_KEY" "$S3_SECRET"
}

s3rver_start() {
    command -v node >/dev/null && command -v npm >/dev/null || { skip_note "no node and npm for s3rver"; return 1; }
    S3_N=$((S3_N + 1))
    local pf="$T/s3-$S3_N.port" log="$T/s3-$S3_N.log"
    env -u http_proxy -u https_proxy -u all_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u no_proxy -u NO_PROXY \
        "${S3__INSTALL_ENV[@]}" bash "$S3_DIR/s3rver.sh" install >"$log" 2>&1 ||
        fail "s3rver installs" "npm ci succeeds" "$(tail -c 2000 "$log")"
    bash "$S3_DIR/s3rver.sh" start --port-file "$pf" "$@" >>"$log" 2>&1 &
    S3_PID=$!
    S3_PIDS+=("$S3_PID")
    s3_watch "$S3_PID"
    S3_LOGS+=("$log")
    s3__wait_port "$pf" "$log" "s3rver"
    S3_PORT=$(tr -d '\n' <"$pf")
    s3__export S3RVER S3RVER
}

s3_stop() { # stops the server started last
    [ "${#S3_PIDS[@]}" -gt 0 ] || return 0
    local pid="${S3_PIDS[-1]}" log="${S3_LOGS[-1]}"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset 'S3_PIDS[-1]'
    if [ "${#S3_WATCHDOGS[@]}" -gt 0 ]; then
        kill "${S3_WATCHDOGS[-1]}" 2>/dev/null || true
        unset 'S3_WATCHDOGS[-1]'
    fi
    if grep -q 'Traceback' "$log"; then
        fail "S3 test server log" "no traceback (a traceback is a bug in the server)" "$(head -c 2000 "$log")"
    fi
    unset 'S3_LOGS[-1]'
}

s3_api() { # s3_api METHOD PATH [BODY]
    local code
    code=$(curl -sS --noproxy '*' -o "$T/.api" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' \
        ${3:+--data-binary "$3"} "$S3/_sluice$2") || fail "request to the test server: $1 $2" "an answer" "curl failed"
    if [ "$code" -ge 400 ]; then
        fail "request to the test server: $1 $2" "HTTP < 400" "HTTP $code: $(head -c 400 "$T/.api")"
    fi
    cat "$T/.api"
}

s3_seed() { s3_api POST /seed "$1" >/dev/null; }
s3_config() { s3_api POST /config "$1" >/dev/null; }
s3_stats_reset() { s3_api POST /stats/reset >/dev/null; }

s3_stat() {
    s3_api GET /stats >"$T/.stats.json"
    json_field "$T/.stats.json" "$1"
}

s3_requests() { s3_stat "d[\"requests\"].get(\"$1\", 0)"; }

s3_retry_test() { # s3_retry_test '{"s3.GetObject": ["return-503"]}' -> id
    s3_api POST /retry_test "{\"instructions\": $1}" >"$T/.rt.json"
    json_field "$T/.rt.json" 'd["id"]'
}

s3_expect_consumed() {
    s3_api GET "/retry_test/$1" >"$T/.rt.json"
    local left
    left=$(json_field "$T/.rt.json" '{k: v for k, v in d["instructions"].items() if v}')
    [ "$left" = "{}" ] || fail "every fault instruction was used by sluice's requests" "{}" "left: $left"
}

s3_signed() { # s3_signed METHOD PATH [FILE] [HEADER:VALUE...]
    local method=$1 path=$2 file=${3:-}
    shift 2
    [ $# -gt 0 ] && shift
    "$S3_PYTHON" - "$S3_PORT" "$method" "$path" "$file" "$T/.status" "$@" <<'PY' ||
import http.client, os, sys
import botocore.auth, botocore.awsrequest, botocore.credentials
port, method, path, body_file, status_file = sys.argv[1:6]
headers = dict(h.split(":", 1) for h in sys.argv[6:])
body = open(body_file, "rb").read() if body_file else b""
host = "127.0.0.1:%s" % port
r = botocore.awsrequest.AWSRequest(method=method, url="http://%s%s" % (host, path), data=body, headers=headers)
creds = botocore.credentials.Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                                         os.environ.get("AWS_SESSION_TOKEN"))
botocore.auth.S3SigV4Auth(creds, "s3", os.environ.get("AWS_REGION", "us-east-1")).add_auth(r)
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
c.request(method, path, body=body, headers=dict(r.headers.items(), Host=host))
resp = c.getresponse()
data = resp.read()
with open(status_file, "w") as f:
    f.write("%d\n" % resp.status)
sys.stdout.buffer.write(data)
PY
        fail "signed request $method $path" "an answer" "an error (above)"
    local status
    status=$(cat "$T/.status")
    if [ "$status" -ge 400 ] && ! [[ " ${S3_OK_STATUS:-} " == *" $status "* ]]; then
        fail "signed request $method $path" "HTTP < 400" "HTTP $status"
    fi
}

s3_objects() { # s3_objects BUCKET [PREFIX]
    "$S3_PYTHON" - "$S3_PORT" "$1" "${2:-}" <<'PY' || fail "listing from the S3 server" "its objects" "an error (above)"
import http.client, json, os, sys
import xml.etree.ElementTree as ET
from urllib.parse import quote
import botocore.auth, botocore.awsrequest, botocore.credentials
port, bucket, prefix = sys.argv[1:4]
host = "127.0.0.1:%s" % port
creds = botocore.credentials.Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                                         os.environ.get("AWS_SESSION_TOKEN"))
token = None
while True:
    q = "list-type=2&prefix=%s" % quote(prefix, safe="-_.~")
    if token:
        q += "&continuation-token=%s" % quote(token, safe="-_.~")
    target = "/%s?%s" % (bucket, q)
    r = botocore.awsrequest.AWSRequest(method="GET", url="http://%s%s" % (host, target))
    botocore.auth.S3SigV4Auth(creds, "s3", os.environ.get("AWS_REGION", "us-east-1")).add_auth(r)
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    c.request("GET", target, headers=dict(r.headers.items(), Host=host))
    resp = c.getresponse()
    body = resp.read()
    if resp.status != 200:
        sys.exit("HTTP %d: %s" % (resp.status, body[:400]))
    root = ET.fromstring(body)
    for e in root.iter():
        e.tag = e.tag.split("}", 1)[-1]
    for o in root.findall("Contents"):
        print(json.dumps({"Key": o.findtext("Key"), "Size": int(o.findtext("Size")), "ETag": o.findtext("ETag"),
                          "ChecksumAlgorithm": o.findtext("ChecksumAlgorithm")}))
    token = root.findtext("NextContinuationToken")
    if root.findtext("IsTruncated") != "true":
        break
PY
}

s3_finish() {
    while [ "${#S3_PIDS[@]}" -gt 0 ]; do s3_stop; done
    finish
}
