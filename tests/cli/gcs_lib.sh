# shellcheck shell=bash
# Helpers for the gs:// end-to-end tests (tests/cli/gcs_*.sh). Sourced after nothing else, never run: it sources
# lib.sh (run, expect_*, fail, say, finish, $T ...) and adds the GCS test server (tests/gcs/gcs_server.py).
#
# Network hygiene: only 127.0.0.1 may ever be contacted. This file
#   - points HOME and CLOUDSDK_CONFIG at empty scratch directories (no gcloud credentials are found),
#   - unsets every credential/endpoint variable sluice reads,
#   - sets GCE_METADATA_HOST=127.0.0.1:1 (a closed port: the metadata fallback fails at once, locally),
#   - sets http_proxy/https_proxy/all_proxy to http://127.0.0.1:1 with no_proxy=127.0.0.1,localhost, so that any
#     request libcurl would make to another host (e.g. the default https://storage.googleapis.com or
#     oauth2.googleapis.com) goes to a closed loopback port instead, without even a DNS lookup.
#
#   gcs_start [SERVER OPTIONS...]  start a server on a free port; sets GCS_PORT, GCS_PID, GCS (http://127.0.0.1:PORT)
#                                  and exports STORAGE_EMULATOR_HOST (unless GCS_NO_EMULATOR=1). Stopped on exit.
#   gcs_stop                       stop the server started last (checks its log for tracebacks)
#   gcs_api METHOD PATH [BODY]     one request to the server (no proxy); BODY may be @FILE; answer on stdout;
#                                  fails the test on HTTP >= 400
#   gcs_bucket NAME...             create buckets
#   gcs_seed JSON                  POST /_seed
#   gcs_config JSON                POST /_config
#   gcs_stats_reset                POST /_stats/reset
#   gcs_stat EXPR                  python expression on /_stats as `d`, e.g. 'd["api_connections"]'
#   gcs_requests METHOD            how many requests of that API method since the last reset
#   gcs_retry_test JSON            create a retry test from {"storage.objects.get": [...], ...}; prints its id
#   gcs_expect_consumed ID         every instruction of the retry test was used (else the test proved nothing)
#   gcs_meta BUCKET NAME EXPR      python expression on the object resource `d` (fields from the server)
#   gcs_objects BUCKET [PREFIX]    every object resource under PREFIX, one JSON line each, in server order
#                                  (the server's own listing, all pages; an oracle independent of sluice)
#   crc32c_b64 FILE                CRC32C of a file as GCS spells it (base64 of the big-endian value), in Python
#   FAST                           array of sluice options for quick retries: --retry-initial-ms 5 --retry-max-ms 50
#   gcs_finish                     stop servers, then lib.sh's finish

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# python3 may be a version-manager shim that costs a quarter second per start; call the interpreter directly.
GCS_PYTHON="$(command python3 -c 'import sys; print(sys.executable)')"
python3() { command "$GCS_PYTHON" "$@"; }

GCS_SERVER_PY="$(cd "$(dirname "${BASH_SOURCE[0]}")/../gcs" && pwd)/gcs_server.py"
[ -f "$GCS_SERVER_PY" ] || { echo "FAIL: no GCS test server at $GCS_SERVER_PY" >&2; exit 1; }

mkdir -p "$T/home" "$T/gcloud"
export HOME="$T/home" CLOUDSDK_CONFIG="$T/gcloud"
unset GOOGLE_APPLICATION_CREDENTIALS GOOGLE_OAUTH_ACCESS_TOKEN CLOUD_STORAGE_EMULATOR_ENDPOINT STORAGE_EMULATOR_HOST \
    GOOGLE_CLOUD_PROJECT CLOUDSDK_CORE_PROJECT GCE_METADATA_IP
export GCE_METADATA_HOST=127.0.0.1:1
export http_proxy=http://127.0.0.1:1 https_proxy=http://127.0.0.1:1 all_proxy=http://127.0.0.1:1
export HTTP_PROXY="$http_proxy" HTTPS_PROXY="$https_proxy" ALL_PROXY="$all_proxy"
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

FAST=(--retry-initial-ms 5 --retry-max-ms 50)
GCS_PIDS=()
GCS_LOGS=()
GCS_WATCHDOGS=()
GCS_N=0

# gcs_watch PID: stops the server PID if this test shell dies without running its EXIT trap (SIGKILL, a ctest
# timeout), so no server outlives its test. The watchdog checks once a second; a normal exit stops it first.
gcs_watch() {
    local server=$1 shell=$$
    (while kill -0 "$shell" 2>/dev/null; do sleep 1; done; kill "$server" 2>/dev/null) </dev/null >/dev/null 2>&1 &
    GCS_WATCHDOGS+=("$!")
}

gcs__on_exit() {
    local rc=$?
    local i
    for i in "${GCS_WATCHDOGS[@]}"; do kill "$i" 2>/dev/null || true; done
    for i in "${!GCS_PIDS[@]}"; do
        kill "${GCS_PIDS[$i]}" 2>/dev/null || true
        wait "${GCS_PIDS[$i]}" 2>/dev/null || true
    done
    if [ "$rc" != 0 ]; then
        for i in "${GCS_LOGS[@]}"; do
            [ -s "$i" ] && s_show_file "GCS test server log $i" "$i" >&2
        done
    fi
    (exit "$rc")
    eval "$GCS__PREV_EXIT_TRAP"
}
GCS__PREV_EXIT_TRAP="$(trap -p EXIT)"
eval "set -- ${GCS__PREV_EXIT_TRAP:-x x x}"
GCS__PREV_EXIT_TRAP="${3:-true}"
set --
trap gcs__on_exit EXIT

gcs_start() {
    GCS_N=$((GCS_N + 1))
    local pf="$T/gcs$GCS_N.port" log="$T/gcs$GCS_N.log"
    # The interpreter itself, not the python3 function: $! must be the server's pid so that it can be stopped.
    "$GCS_PYTHON" "$GCS_SERVER_PY" --port 0 --port-file "$pf" "$@" >"$log" 2>&1 &
    GCS_PID=$!
    GCS_PIDS+=("$GCS_PID")
    gcs_watch "$GCS_PID"
    GCS_LOGS+=("$log")
    local i
    for i in $(seq 200); do
        [ -s "$pf" ] && break
        kill -0 "$GCS_PID" 2>/dev/null || fail "GCS test server starts" "a port file" "server exited: $(cat "$log")"
        sleep 0.05
    done
    [ -s "$pf" ] || fail "GCS test server starts" "a port file within 10 s" "none"
    GCS_PORT=$(tr -d '\n' <"$pf")
    GCS="http://127.0.0.1:$GCS_PORT"
    if [ "${GCS_NO_EMULATOR:-0}" = 1 ]; then
        unset STORAGE_EMULATOR_HOST
    else
        export STORAGE_EMULATOR_HOST="127.0.0.1:$GCS_PORT"
    fi
}

gcs_stop() { # stops the server started last
    [ "${#GCS_PIDS[@]}" -gt 0 ] || return 0
    local pid="${GCS_PIDS[-1]}" log="${GCS_LOGS[-1]}"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset 'GCS_PIDS[-1]'
    if [ "${#GCS_WATCHDOGS[@]}" -gt 0 ]; then
        kill "${GCS_WATCHDOGS[-1]}" 2>/dev/null || true
        unset 'GCS_WATCHDOGS[-1]'
    fi
    if grep -q 'Traceback' "$log"; then
        fail "GCS test server log" "no traceback (a traceback is a bug in the server)" "$(head -c 2000 "$log")"
    fi
    unset 'GCS_LOGS[-1]'
}

gcs_api() { # gcs_api METHOD PATH [BODY]
    local code
    code=$(curl -sS --noproxy '*' -o "$T/.api" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' \
        ${3:+--data-binary "$3"} "$GCS$2") || fail "request to the test server: $1 $2" "an answer" "curl failed"
    if [ "$code" -ge 400 ]; then
        fail "request to the test server: $1 $2" "HTTP < 400" "HTTP $code: $(head -c 400 "$T/.api")"
    fi
    cat "$T/.api"
}

gcs_bucket() {
    local b
    for b in "$@"; do gcs_api POST "/storage/v1/b?project=sluice-test" "{\"name\":\"$b\"}" >/dev/null; done
}

gcs_seed() { gcs_api POST /_seed "$1" >/dev/null; }
gcs_config() { gcs_api POST /_config "$1" >/dev/null; }
gcs_stats_reset() { gcs_api POST /_stats/reset >/dev/null; }

gcs_stat() {
    gcs_api GET /_stats >"$T/.stats.json"
    json_field "$T/.stats.json" "$1"
}

gcs_requests() { gcs_stat "d[\"requests\"].get(\"$1\", 0)"; }

gcs_retry_test() { # gcs_retry_test '{"storage.objects.get": ["return-503"]}' -> id
    gcs_api POST /retry_test "{\"instructions\": $1}" >"$T/.rt.json"
    json_field "$T/.rt.json" 'd["id"]'
}

gcs_expect_consumed() {
    gcs_api GET "/retry_test/$1" >"$T/.rt.json"
    local left
    left=$(json_field "$T/.rt.json" '{k: v for k, v in d["instructions"].items() if v}')
    [ "$left" = "{}" ] || fail "every fault instruction was used by sluice's requests" "{}" "left: $left"
}

gcs_meta() { # gcs_meta BUCKET NAME EXPR
    local enc
    enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$2")
    gcs_api GET "/storage/v1/b/$1/o/$enc" >"$T/.meta.json"
    json_field "$T/.meta.json" "$3"
}

gcs_objects() {
    python3 - "$GCS" "$1" "${2:-}" <<'PY' || fail "listing from the test server" "its objects" "an error (above)"
import json, sys, urllib.parse, urllib.request
base, bucket, prefix = sys.argv[1:4]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
token = None
while True:
    q = {"prefix": prefix, "maxResults": "1000"}
    if token:
        q["pageToken"] = token
    url = "%s/storage/v1/b/%s/o?%s" % (base, bucket, urllib.parse.urlencode(q))
    page = json.load(opener.open(url))
    for item in page.get("items", []):
        print(json.dumps(item))
    token = page.get("nextPageToken")
    if not token:
        break
PY
}

crc32c_b64() {
    python3 - "$1" <<'PY'
import base64, struct, sys
table = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
crc = 0xFFFFFFFF
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 16), b""):
        for b in block:
            crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
print(base64.b64encode(struct.pack(">I", crc ^ 0xFFFFFFFF)).decode())
PY
}

gcs_finish() {
    while [ "${#GCS_PIDS[@]}" -gt 0 ]; do gcs_stop; done
    finish
}
