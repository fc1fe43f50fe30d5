#!/usr/bin/env bash
# Credentials end to end: the real binary against the GCS test server started with --token-required (a storage
# request without a valid Bearer token is a 401), reached with --endpoint (not as an emulator, so sluice must bring
# credentials). Every source of src/auth_gcs.c: a service account key (RS256 JWT grant), an authorized_user file
# (refresh-token grant) via GOOGLE_APPLICATION_CREDENTIALS and via gcloud's application default credentials file,
# the metadata server, --token-file and GOOGLE_OAUTH_ACCESS_TOKEN; one token per process shared by all threads,
# refresh before expiry and once after a 401; missing, rejected and broken credentials fail at once with one line
# naming what was tried and what to set. After every run, stdout, stderr, --report and --failures are searched for
# every secret (private key lines, refresh token, client secret, access tokens, signed assertions): none may appear.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

command -v openssl >/dev/null || fail "the openssl command (to make a service account key)" "openssl in PATH" "none"

# Not an emulator: STORAGE_EMULATOR_HOST would make sluice anonymous.
export GCS_NO_EMULATOR=1
BUCKET=sl-auth
N=200

# ---- secrets ------------------------------------------------------------------------------------------------------

REFRESH_TOKEN="1//refresh-SECRET-$RANDOM$RANDOM-tok"
CLIENT_ID="sluice-test-client.apps.googleusercontent.com"
CLIENT_SECRET="client-SECRET-$RANDOM$RANDOM-xyz"
GOOD_TOKEN="ya29.static-GOOD-$RANDOM$RANDOM-token"
WRONG_TOKEN="ya29.static-WRONG-$RANDOM$RANDOM-token"
GARBAGE_KEY_BODY="MIIEgarbageSECRETkeybody$RANDOM$RANDOM"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/key.pem" 2>/dev/null
openssl pkey -in "$T/key.pem" -pubout -out "$T/pub.pem"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/other_key.pem" 2>/dev/null

SECRETS="$T/secrets.txt"
{
    printf '%s\n' "$REFRESH_TOKEN" "$CLIENT_SECRET" "$GOOD_TOKEN" "$WRONG_TOKEN" "$GARBAGE_KEY_BODY"
    # Every base64 line of both private keys (any one of them in an output is a leak).
    grep -hv -- '-----' "$T/key.pem" "$T/other_key.pem"
    # Access tokens the test server issues all start so; a JWT (signed assertion) starts with base64url('{"').
    printf '%s\n' 'ya29.' 'eyJ'
} >"$SECRETS"

N_CHECKED=0
# no_secrets FILE...: none of the secrets appears in any of the files.
no_secrets() {
    local f hit
    for f in "$@"; do
        [ -f "$f" ] || continue
        N_CHECKED=$((N_CHECKED + 1))
        if hit=$(grep -oF -f "$SECRETS" "$f" | head -3) && [ -n "$hit" ]; then
            fail "no secret in $(basename "$f") of the last command" "no private key line, refresh token, client \
secret, access token or assertion" "found: $hit"
        fi
    done
}

# sl ARGS...: runs sluice (at most 60 s; a hang is exit 124), job commands with --report and --failures, then checks
# that no secret leaked into stdout, stderr, the report or the failures file. Sets ELAPSED (seconds).
N_RUN=0
REPORT=""
FAILS=""
sl() {
    N_RUN=$((N_RUN + 1))
    local extra=() t0=$SECONDS
    REPORT=""
    FAILS=""
    case "$1" in
    cp | sync | map)
        REPORT="$T/report$N_RUN.json"
        FAILS="$T/failures$N_RUN.jsonl"
        extra=(--report "$REPORT" --failures "$FAILS")
        ;;
    esac
    run timeout 60 "$SLUICE" "$@" ${extra[@]+"${extra[@]}"}
    ELAPSED=$((SECONDS - t0))
    [ "$RC" != 124 ] || fail "sluice finishes" "an exit within 60 s" "killed after 60 s"
    no_secrets "$OUT" "$ERR" "$REPORT" "$FAILS"
}

# Every stderr line says the same thing about credentials (cp reports them per object): each contains all of S...
each_err_line_contains() {
    local s n
    for s in "$@"; do
        n=$(grep -cvF -- "$s" "$ERR" || true)
        [ "$n" = 0 ] || fail "every stderr line mentions '$s'" "all lines" "$n lines without it: $(grep -vF -- "$s" \
"$ERR" | head -2)"
    done
}

tokens() { gcs_stat 'd["tokens_issued"]'; }
server_objects() { gcs_stat 'd["objects"]'; }
elapsed_below() { # elapsed_below S WHAT
    [ "$ELAPSED" -lt "$1" ] || fail "$2 is fast" "under $1 s" "$ELAPSED s"
}

# The server's own listing of a prefix (an oracle independent of sluice): the tokens check is off meanwhile.
server_names() { # server_names PREFIX -> names relative to PREFIX, byte order
    gcs_config '{"token_required": false}'
    gcs_objects "$BUCKET" "$1" | python3 -c '
import json, sys
p = sys.argv[1]
for n in sorted((json.loads(l)["name"] for l in sys.stdin), key=lambda s: s.encode()):
    print(n[len(p):])' "$1"
    gcs_config '{"token_required": true}'
}
expect_uploaded() { # expect_uploaded PREFIX: the server holds exactly the source files under PREFIX
    server_names "$1" >"$T/server.names"
    cmp -s "$T/server.names" "$T/src.names" || fail "objects on the server under gs://$BUCKET/$1" \
        "the $N source files" "$(wc -l <"$T/server.names") objects, first differences: $(diff "$T/src.names" \
        "$T/server.names" | head -4 | tr '\n' ' ')"
}
expect_report_done() { # expect_report_done N
    expect_eq "report: objects done" "$1" "$(json_field "$REPORT" 'd["objects"]["done"]')"
    expect_eq "report: objects failed" 0 "$(json_field "$REPORT" 'd["objects"]["failed"]')"
}

# ---- data and server ----------------------------------------------------------------------------------------------

SRC="$T/src"
mkdir -p "$SRC/a" "$SRC/b"
for i in $(seq -w 1 $N); do
    printf 'object %s\n' "$i" >"$SRC/$([ $((10#$i % 2)) = 0 ] && echo a || echo b)/f$i.txt"
done
(cd "$SRC" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$T/src.names"
SRC_SMALL="$T/src_small"
mkdir -p "$SRC_SMALL"
for i in $(seq -w 1 30); do printf 'small %s\n' "$i" >"$SRC_SMALL/s$i"; done

gcs_start --token-required --bucket "$BUCKET" --jwt-public-key "$T/pub.pem" --refresh-token "$REFRESH_TOKEN" \
    --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --accept-token "$GOOD_TOKEN"
EP=(--endpoint "$GCS")

write_sa() { # write_sa FILE KEY_PEM_FILE_OR_TEXT [garbage]: a service account key file whose token_uri is the server
    python3 - "$1" "$2" "$GCS/token" <<'PY'
import json, os, sys
path, key, uri = sys.argv[1:4]
pem = open(key).read() if os.path.exists(key) else key
json.dump({"type": "service_account", "project_id": "sluice-test", "private_key_id": "0123456789abcdef",
           "private_key": pem, "client_email": "sluice-test@sluice-test.iam.gserviceaccount.com",
           "client_id": "1234567890", "token_uri": uri}, open(path, "w"), indent=2)
PY
}
write_user() { # write_user FILE REFRESH_TOKEN
    python3 - "$1" "$2" "$GCS/token" "$CLIENT_ID" "$CLIENT_SECRET" <<'PY'
import json, sys
path, rt, uri, cid, cs = sys.argv[1:6]
json.dump({"type": "authorized_user", "client_id": cid, "client_secret": cs, "refresh_token": rt,
           "token_uri": uri}, open(path, "w"), indent=2)
PY
}
SA="$T/sa.json"
write_sa "$SA" "$T/key.pem"
USER_CREDS="$T/user.json"
write_user "$USER_CREDS" "$REFRESH_TOKEN"

say "the server really wants tokens: anonymous ls is a 401, in one line naming the credentials"
sl ls -r "gs://$BUCKET/" "${EP[@]}" --anonymous
expect_rc 3
expect_err_one_line "HTTP 401"
expect_err_contains "anonymous access"

# ---- 1. service account -------------------------------------------------------------------------------------------

say "service account (JWT grant): cp of $N files with -j 8 succeeds with exactly one token for the whole process"
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$SA" sl cp "$SRC" "gs://$BUCKET/sa" -j 8 "${EP[@]}"
expect_rc 0
expect_err_contains "sluice: cp: $N done (0 skipped), 0 failed of $N objects"
expect_report_done $N
expect_eq "tokens issued by the server (one per process, shared by 8 threads)" 1 "$(tokens)"
expect_eq "token requests" 1 "$(gcs_requests oauth2.token)"
expect_eq "uploads (none repeated after a 401)" $N "$(gcs_requests storage.objects.insert)"
expect_uploaded sa/

say "service account: ls -r and cat read back with one token each"
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$SA" sl ls -r "gs://$BUCKET/sa" "${EP[@]}"
expect_rc 0
expect_err_empty
expect_out_file "$T/src.names"
expect_eq "tokens issued for ls" 1 "$(tokens)"
GOOGLE_APPLICATION_CREDENTIALS="$SA" sl cat "gs://$BUCKET/sa/a/f002.txt" "${EP[@]}"
expect_rc 0
expect_out "object 002"
expect_eq "tokens issued for ls and cat (two processes)" 2 "$(tokens)"

say "service account: cp gs:// -> gs:// (source and destination stores, one process): one token"
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$SA" sl cp "gs://$BUCKET/sa" "gs://$BUCKET/sa-copy" -j 8 "${EP[@]}"
expect_rc 0
expect_report_done $N
expect_eq "tokens issued (the stores of one process share it)" 1 "$(tokens)"
expect_uploaded sa-copy/

say "service account whose key the token endpoint refuses: one line naming the key file; one token request, not one per object"
write_sa "$T/sa_other.json" "$T/other_key.pem"
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$T/sa_other.json" sl ls "gs://$BUCKET/sa" "${EP[@]}"
expect_rc 3
expect_err_one_line "$T/sa_other.json"
expect_err_contains "GOOGLE_APPLICATION_CREDENTIALS"
expect_err_contains "HTTP 400"
expect_err_contains "invalid_grant"
GOOGLE_APPLICATION_CREDENTIALS="$T/sa_other.json" sl cp "$SRC" "gs://$BUCKET/refused" -j 8 "${EP[@]}"
[ "$RC" != 0 ] || fail "cp with a refused key" "a non-zero exit" "0"
each_err_line_contains "sluice: cp: "
elapsed_below 10 "cp of $N objects with refused credentials"
expect_eq "token requests for ls and the whole cp" 2 "$(gcs_requests oauth2.token)"
expect_eq "tokens issued" 0 "$(tokens)"
expect_eq "uploads attempted" 0 "$(gcs_requests storage.objects.insert)"

# ---- 2. authorized_user -------------------------------------------------------------------------------------------

say "authorized_user (refresh-token grant) via GOOGLE_APPLICATION_CREDENTIALS: cp -j 8, one token"
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$USER_CREDS" sl cp "$SRC" "gs://$BUCKET/user" -j 8 "${EP[@]}"
expect_rc 0
expect_report_done $N
expect_eq "tokens issued" 1 "$(tokens)"
expect_eq "token requests" 1 "$(gcs_requests oauth2.token)"
expect_uploaded user/

say "authorized_user via gcloud's application default credentials file (\$CLOUDSDK_CONFIG), no GOOGLE_APPLICATION_CREDENTIALS"
mkdir -p "$T/gcloud-adc"
cp "$USER_CREDS" "$T/gcloud-adc/application_default_credentials.json"
gcs_stats_reset
CLOUDSDK_CONFIG="$T/gcloud-adc" sl cp "$SRC" "gs://$BUCKET/adc" -j 8 "${EP[@]}"
expect_rc 0
expect_report_done $N
expect_eq "tokens issued" 1 "$(tokens)"
expect_uploaded adc/
gcs_stats_reset
CLOUDSDK_CONFIG="$T/gcloud-adc" sl ls -r "gs://$BUCKET/adc" "${EP[@]}"
expect_rc 0
expect_out_file "$T/src.names"
expect_eq "tokens issued for ls" 1 "$(tokens)"

say "gcloud's file under \$HOME/.config/gcloud when CLOUDSDK_CONFIG is unset"
mkdir -p "$T/home2/.config/gcloud"
cp "$USER_CREDS" "$T/home2/.config/gcloud/application_default_credentials.json"
gcs_stats_reset
(
    unset CLOUDSDK_CONFIG
    export HOME="$T/home2"
    sl ls -r "gs://$BUCKET/adc" "${EP[@]}"
    expect_rc 0
    expect_out_file "$T/src.names"
)
expect_eq "tokens issued" 1 "$(tokens)"

say "a refresh token the endpoint refuses (gcloud's file): one line naming the file and what to run; one token request for a whole cp"
write_user "$T/gcloud-adc/application_default_credentials.json" "1//revoked-refresh-token"
echo "1//revoked-refresh-token" >>"$SECRETS"
gcs_stats_reset
CLOUDSDK_CONFIG="$T/gcloud-adc" sl ls "gs://$BUCKET/adc" "${EP[@]}"
expect_rc 3
expect_err_one_line "$T/gcloud-adc/application_default_credentials.json"
expect_err_contains "HTTP 400"
expect_err_contains "gcloud auth application-default login"
CLOUDSDK_CONFIG="$T/gcloud-adc" sl cp "$SRC" "gs://$BUCKET/revoked" -j 8 "${EP[@]}"
[ "$RC" != 0 ] || fail "cp with a revoked refresh token" "a non-zero exit" "0"
elapsed_below 10 "cp of $N objects with a revoked refresh token"
expect_eq "token requests for ls and the whole cp" 2 "$(gcs_requests oauth2.token)"
expect_eq "uploads attempted" 0 "$(gcs_requests storage.objects.insert)"

# ---- 3. metadata server -------------------------------------------------------------------------------------------

say "metadata server (GCE_METADATA_HOST = the test server): cp -j 8 and ls -r, one token each"
gcs_stats_reset
GCE_METADATA_HOST="127.0.0.1:$GCS_PORT" sl cp "$SRC" "gs://$BUCKET/md" -j 8 "${EP[@]}"
expect_rc 0
expect_report_done $N
expect_eq "tokens issued" 1 "$(tokens)"
expect_eq "metadata token requests" 1 "$(gcs_requests metadata.token)"
expect_eq "OAuth token requests" 0 "$(gcs_requests oauth2.token)"
expect_uploaded md/
gcs_stats_reset
GCE_METADATA_HOST="127.0.0.1:$GCS_PORT" sl ls -r "gs://$BUCKET/md" "${EP[@]}"
expect_rc 0
expect_err_empty
expect_out_file "$T/src.names"
expect_eq "tokens issued for ls" 1 "$(tokens)"

# ---- 4. expiry and 401 --------------------------------------------------------------------------------------------

say "tokens of 2 s, a job of several seconds (-j 1, 150 ms per request): succeeds, refreshing a few times, not per object"
gcs_config '{"token_lifetime_s": 2, "delay_ms": 150}'
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$SA" sl cp "$SRC_SMALL" "gs://$BUCKET/expiry" -j 1 "${EP[@]}"
gcs_config '{"token_lifetime_s": 3600, "delay_ms": 0}'
expect_rc 0
expect_report_done 30
dur=$(json_field "$REPORT" 'd["duration_s"]')
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 3 else 1)" "$dur" ||
    fail "the job outlives a token (else this proves nothing)" "more than 3 s" "$dur s"
n_tok=$(tokens)
[ "$n_tok" -ge 2 ] || fail "tokens issued during a job longer than a token's lifetime" "2 or more" "$n_tok"
# A 2 s token is refreshed 0.5 s before it expires: one per 1.5 s of job at most, and far fewer than one per object.
max_tok=$(python3 -c "import sys; print(min(int(float(sys.argv[1]) / 1.5) + 2, 10))" "$dur")
[ "$n_tok" -le "$max_tok" ] || fail "tokens issued for 30 objects in $dur s with 2 s tokens" "at most $max_tok" "$n_tok"
n_up=$(gcs_requests storage.objects.insert)
[ "$n_up" -le $((30 + n_tok)) ] || fail "uploads" "at most one repeat per token (30 + $n_tok)" "$n_up"
say "  ($n_tok tokens, $n_up uploads for 30 objects in $dur s)"

say "a 401 on an upload: the token is refreshed once and the upload repeated; two 401s in a row fail that object only"
id=$(gcs_retry_test '{"storage.objects.insert": ["return-401"]}')
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$SA" sl cp "$SRC/a/f002.txt" "gs://$BUCKET/r401/" "${EP[@]}" \
    --header "x-retry-test-id: $id"
expect_rc 0
gcs_expect_consumed "$id"
expect_eq "tokens issued (the first, and one after the 401)" 2 "$(tokens)"
expect_eq "uploads (the rejected one, then the repeat)" 2 "$(gcs_requests storage.objects.insert)"
id=$(gcs_retry_test '{"storage.objects.insert": ["return-401", "return-401"]}')
gcs_stats_reset
GOOGLE_APPLICATION_CREDENTIALS="$SA" sl cp "$SRC/a/f004.txt" "gs://$BUCKET/r401b/" "${EP[@]}" \
    --header "x-retry-test-id: $id"
expect_rc 1
gcs_expect_consumed "$id"
expect_err_contains "FAILED f004.txt"
expect_err_contains "HTTP 401"
expect_err_contains "$SA"
expect_eq "tokens issued (refreshed once, not in a loop)" 2 "$(tokens)"
expect_eq "uploads" 2 "$(gcs_requests storage.objects.insert)"

# ---- 5. --token-file and GOOGLE_OAUTH_ACCESS_TOKEN ----------------------------------------------------------------

say "--token-file with a token the server accepts: ls -r and cp work, no token is fetched"
printf '%s\n' "$GOOD_TOKEN" >"$T/good.tok"
gcs_stats_reset
sl ls -r "gs://$BUCKET/sa" "${EP[@]}" --token-file "$T/good.tok"
expect_rc 0
expect_out_file "$T/src.names"
sl cp "$SRC" "gs://$BUCKET/tokfile" -j 8 "${EP[@]}" --token-file "$T/good.tok"
expect_rc 0
expect_report_done $N
expect_eq "tokens issued" 0 "$(tokens)"
expect_uploaded tokfile/

say "GOOGLE_OAUTH_ACCESS_TOKEN with an accepted token: cp and ls work"
gcs_stats_reset
GOOGLE_OAUTH_ACCESS_TOKEN="$GOOD_TOKEN" sl cp "$SRC" "gs://$BUCKET/envtok" -j 8 "${EP[@]}"
expect_rc 0
expect_report_done $N
expect_uploaded envtok/
GOOGLE_OAUTH_ACCESS_TOKEN="$GOOD_TOKEN" sl ls -r "gs://$BUCKET/envtok" "${EP[@]}"
expect_rc 0
expect_out_file "$T/src.names"
expect_eq "tokens issued" 0 "$(tokens)"

say "a wrong --token-file: exit 3, one line naming the file and that it was rejected"
printf '%s\n' "$WRONG_TOKEN" >"$T/wrong.tok"
sl ls "gs://$BUCKET/sa" "${EP[@]}" --token-file "$T/wrong.tok"
expect_rc 3
expect_err_one_line "$T/wrong.tok"
expect_err_contains "--token-file"
expect_err_contains "rejected (401)"
expect_err_contains "fresh"

say "a wrong GOOGLE_OAUTH_ACCESS_TOKEN: exit 3, one line naming the variable"
GOOGLE_OAUTH_ACCESS_TOKEN="$WRONG_TOKEN" sl ls "gs://$BUCKET/sa" "${EP[@]}"
expect_rc 3
expect_err_one_line "GOOGLE_OAUTH_ACCESS_TOKEN"
expect_err_contains "rejected (401)"

say "a wrong token for cp: non-zero, fast, nothing written, every message names the token's source"
before=$(server_objects)
GOOGLE_OAUTH_ACCESS_TOKEN="$WRONG_TOKEN" sl cp "$SRC" "gs://$BUCKET/wrongtok" -j 8 "${EP[@]}"
[ "$RC" != 0 ] || fail "cp with a rejected token" "a non-zero exit" "0"
elapsed_below 10 "cp of $N objects with a rejected token"
each_err_line_contains "sluice: cp: "
expect_err_contains "GOOGLE_OAUTH_ACCESS_TOKEN was rejected (401)"
expect_eq "objects on the server" "$before" "$(server_objects)"

say "--token-file that does not exist, or is empty: one line naming the file"
sl ls "gs://$BUCKET/sa" "${EP[@]}" --token-file "$T/no-such.tok"
expect_rc 3
expect_err_one_line "--token-file $T/no-such.tok: cannot read"
: >"$T/empty.tok"
sl ls "gs://$BUCKET/sa" "${EP[@]}" --token-file "$T/empty.tok"
[ "$RC" = 2 ] || [ "$RC" = 3 ] || fail "exit status (nothing was done)" "2 or 3" "$RC"
expect_err_one_line "--token-file $T/empty.tok: the file is empty"

# ---- 6. no credentials at all -------------------------------------------------------------------------------------

say "no credentials anywhere (empty CLOUDSDK_CONFIG, metadata port closed): ls exits 3 at once, one line listing the sources and what to set"
[ -z "$(ls -A "$CLOUDSDK_CONFIG")" ] || fail "CLOUDSDK_CONFIG" "an empty directory" "$(ls -A "$CLOUDSDK_CONFIG")"
expect_eq "GCE_METADATA_HOST" "127.0.0.1:1" "$GCE_METADATA_HOST"
sl ls "gs://$BUCKET/sa" "${EP[@]}"
expect_rc 3
expect_err_one_line "no Google Cloud credentials found"
expect_err_contains "GOOGLE_OAUTH_ACCESS_TOKEN"
expect_err_contains "GOOGLE_APPLICATION_CREDENTIALS, $CLOUDSDK_CONFIG/application_default_credentials.json"
expect_err_contains "metadata server at 127.0.0.1:1"
expect_err_contains "set GOOGLE_APPLICATION_CREDENTIALS"
expect_err_contains "--token-file"
elapsed_below 5 "ls without credentials"

say "no credentials, cp of $N objects: the job cannot run (exit 3), one line before any object, fast, nothing written"
before=$(server_objects)
sl cp "$SRC" "gs://$BUCKET/nocreds" -j 8 "${EP[@]}"
expect_rc 3
expect_err_one_line "no Google Cloud credentials found"
elapsed_below 5 "cp of $N objects without credentials"
expect_eq "objects on the server" "$before" "$(server_objects)"

# ---- 7. broken credentials files ----------------------------------------------------------------------------------

# A broken file is found before any work: exit 2 or 3 (nothing was done), one line, no summary.
expect_broken() { # expect_broken TEXT...: one line containing every TEXT
    [ "$RC" = 2 ] || [ "$RC" = 3 ] || fail "exit status (nothing was done)" "2 or 3" "$RC"
    expect_err_one_line "$1"
    local s
    for s in "$@"; do expect_err_contains "$s"; done
}

say "GOOGLE_APPLICATION_CREDENTIALS naming invalid JSON (with secrets where a parser would quote them): one line naming the file"
printf '{"type": "authorized_user", "refresh_token": "%s" "client_secret": "%s"}\n' "$REFRESH_TOKEN" \
    "$CLIENT_SECRET" >"$T/bad.json"
for cmd in ls cp; do
    if [ $cmd = ls ]; then args=(ls "gs://$BUCKET/sa"); else args=(cp "$SRC" "gs://$BUCKET/bad"); fi
    GOOGLE_APPLICATION_CREDENTIALS="$T/bad.json" sl "${args[@]}" "${EP[@]}"
    expect_broken "GOOGLE_APPLICATION_CREDENTIALS=$T/bad.json" "not a JSON credentials file"
done

say "a service account file whose private_key is garbage: one line naming the file"
write_sa "$T/garbage_key.json" "$(printf -- '-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n' \
    "$GARBAGE_KEY_BODY")"
GOOGLE_APPLICATION_CREDENTIALS="$T/garbage_key.json" sl cp "$SRC" "gs://$BUCKET/garbage" -j 8 "${EP[@]}"
expect_broken "GOOGLE_APPLICATION_CREDENTIALS=$T/garbage_key.json" "private_key is not a PEM-encoded RSA private key"

say "GOOGLE_APPLICATION_CREDENTIALS naming a file that does not exist: one line naming it"
GOOGLE_APPLICATION_CREDENTIALS="$T/missing.json" sl ls "gs://$BUCKET/sa" "${EP[@]}"
expect_broken "GOOGLE_APPLICATION_CREDENTIALS=$T/missing.json" "cannot read" "No such file or directory"

say "a broken gcloud application default credentials file: one line naming it as gcloud's"
mkdir -p "$T/gcloud-broken"
printf '{"type": "authorized_user", "client_id": "x", "client_secret": "%s", ' "$CLIENT_SECRET" \
    >"$T/gcloud-broken/application_default_credentials.json"
CLOUDSDK_CONFIG="$T/gcloud-broken" sl ls "gs://$BUCKET/sa" "${EP[@]}"
expect_broken "$T/gcloud-broken/application_default_credentials.json" "gcloud application default credentials"

say "a service account file without client_email: one line naming the file and the field"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); del d["client_email"]; json.dump(d, open(sys.argv[2], "w"))' \
    "$SA" "$T/no_email.json"
GOOGLE_APPLICATION_CREDENTIALS="$T/no_email.json" sl ls "gs://$BUCKET/sa" "${EP[@]}"
expect_broken "GOOGLE_APPLICATION_CREDENTIALS=$T/no_email.json" '"client_email"'

# ---- 8. secrets ---------------------------------------------------------------------------------------------------

say "no secret in any output: $N_RUN runs, $N_CHECKED files (stdout, stderr, --report, --failures) searched for $(wc -l <"$SECRETS") secrets"
[ "$N_RUN" -ge 30 ] || fail "runs searched for secrets" "every run of this script (30 or more)" "$N_RUN"
# The search itself works: it finds a secret when there is one.
printf 'token ya29.abc\n' >"$T/leak.txt"
if (no_secrets "$T/leak.txt") 2>/dev/null; then
    fail "the secret search finds a planted token" "a failure" "none"
fi

gcs_finish
