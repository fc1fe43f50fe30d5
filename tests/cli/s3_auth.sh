#!/usr/bin/env bash
# s3:// credentials, link by link, end to end against the S3 test server (every signature checked by botocore) and its
# fake credential endpoints: the environment (with and without a session token), a profile of the shared credentials
# file (AWS_PROFILE and --profile), credential_process in the config file, web identity (STS
# AssumeRoleWithWebIdentity), container credentials, IMDSv2; --no-sign-request; the endpoint and region settings as
# the AWS CLI reads them; and the messages: nothing usable is one line and exit 3, a secret a server quotes is not
# shown.
set -euo pipefail
. "$(dirname "$0")/s3_lib.sh"

s3_start --bucket sl-a --bucket sl-eu@eu-west-1 --access-key "AKIDTOKEN:token-secret:the-session-token" \
    --web-identity-token "the-web-identity-token" --role-arn "arn:aws:iam::123456789012:role/sl-test" \
    --container-token "Bearer container-token"
printf 'auth test\n' >"$T/obj"
run "$SLUICE" cp "$T/obj" s3://sl-a/p/
expect_rc 0
run "$SLUICE" cp "$T/obj" s3://sl-eu/p/
expect_rc 0

# ok WHAT: `ls s3://sl-a/p/` works with the credentials the environment gives now, and a download's bytes are right.
ok() {
    run "$SLUICE" ls s3://sl-a/p/
    [ "$RC" = 0 ] || fail "$1: ls" "exit 0" "exit $RC: $(cat "$ERR")"
    expect_out obj
    run "$SLUICE" cat s3://sl-a/p/obj
    expect_rc 0
    expect_out_file "$T/obj"
}
# Everything the chain reads, unset (the test server's own endpoint stays).
bare() {
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE \
        AWS_ROLE_ARN AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONFIG_FILE \
        AWS_SHARED_CREDENTIALS_FILE
    export AWS_EC2_METADATA_DISABLED=true
}

say "environment keys, and with a session token"
ok "environment"
(
    export AWS_ACCESS_KEY_ID=AKIDTOKEN AWS_SECRET_ACCESS_KEY=token-secret AWS_SESSION_TOKEN=the-session-token
    ok "environment with a session token"
    AWS_SESSION_TOKEN=wrong-token run "$SLUICE" ls s3://sl-a/p/
    expect_rc 3
    expect_err_one_line "InvalidToken"
)

say "a profile of the shared credentials file: AWS_PROFILE, --profile, and its region in the config file"
cat >"$T/credentials" <<EOF
[default]
aws_access_key_id = nobody
aws_secret_access_key = nothing

[dev]
aws_access_key_id = $S3_KEY
aws_secret_access_key = $S3_SECRET
EOF
cat >"$T/config" <<EOF
[profile dev]
region = eu-west-1

[profile proc]
credential_process = "$S3_PYTHON" "$T/proc.py" --flag
EOF
cat >"$T/proc.py" <<EOF
import json, sys
assert sys.argv[1:] == ["--flag"], sys.argv
print(json.dumps({"Version": 1, "AccessKeyId": "$S3_KEY", "SecretAccessKey": "$S3_SECRET"}))
EOF
(
    bare
    unset AWS_REGION
    export AWS_SHARED_CREDENTIALS_FILE="$T/credentials" AWS_CONFIG_FILE="$T/config"
    AWS_PROFILE=dev ok "AWS_PROFILE=dev"
    run "$SLUICE" ls s3://sl-eu/p/ --profile dev
    expect_rc 0
    expect_out obj
    run "$SLUICE" ls s3://sl-a/p/
    expect_rc 3
    expect_err_one_line "InvalidAccessKeyId"
    say "credential_process"
    AWS_PROFILE=proc ok "credential_process"
    run "$SLUICE" ls s3://sl-a/p/ --profile no-such-profile
    expect_rc 3
    expect_err_one_line "no-such-profile"
)

say "web identity: AssumeRoleWithWebIdentity at AWS_ENDPOINT_URL_STS, one fetch for the whole job"
printf 'the-web-identity-token' >"$T/wit"
(
    bare
    export AWS_WEB_IDENTITY_TOKEN_FILE="$T/wit" AWS_ROLE_ARN="arn:aws:iam::123456789012:role/sl-test"
    export AWS_ENDPOINT_URL_STS="$S3_META"
    s3_stats_reset
    run "$SLUICE" cp s3://sl-a/p/ "$T/wi-out"
    expect_rc 0
    expect_eq "STS credentials issued" 1 "$(s3_stat 'd["credentials_issued"]["sts"]')"
    printf 'another-token' >"$T/wit-bad"
    AWS_WEB_IDENTITY_TOKEN_FILE="$T/wit-bad" run "$SLUICE" ls s3://sl-a/p/
    expect_rc 3
    expect_err_one_line "InvalidIdentityToken"
)

say "container credentials (full URI and authorization token)"
(
    bare
    export AWS_CONTAINER_CREDENTIALS_FULL_URI="$S3_META/container/creds"
    export AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer container-token"
    ok "container credentials"
    AWS_CONTAINER_AUTHORIZATION_TOKEN=wrong run "$SLUICE" ls s3://sl-a/p/
    expect_rc 3
    expect_err_one_line "container"
)

say "IMDSv2 (token PUT, role, credentials)"
(
    bare
    unset AWS_EC2_METADATA_DISABLED
    export AWS_EC2_METADATA_SERVICE_ENDPOINT="$S3_META"
    s3_config '{"imdsv2_required": true}'
    ok "IMDSv2"
)

say "nothing usable: exit 3, one line"
(
    bare
    run "$SLUICE" ls s3://sl-a/p/
    expect_rc 3
    expect_err_one_line "credentials"
)

say "--no-sign-request: unsigned requests, refused unless the server allows them"
(
    bare
    run "$SLUICE" ls s3://sl-a/p/ --no-sign-request
    expect_rc 3
    expect_err_one_line "AccessDenied"
    s3_config '{"anonymous_ok": true}'
    run "$SLUICE" ls s3://sl-a/p/ --no-sign-request
    expect_rc 0
    expect_out obj
    s3_config '{"anonymous_ok": false}'
)

say "endpoint: --endpoint over AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL; --s3-path-style accepted"
(
    AWS_ENDPOINT_URL=http://127.0.0.1:1 AWS_ENDPOINT_URL_S3="$S3" ok "AWS_ENDPOINT_URL_S3 first"
    AWS_ENDPOINT_URL_S3=http://127.0.0.1:1 run "$SLUICE" ls s3://sl-a/p/ --endpoint "$S3" --s3-path-style
    expect_rc 0
    expect_out obj
    run "$SLUICE" ls s3://sl-a/p/ --endpoint ftp://x
    expect_rc 2
    expect_err_one_line "http://"
)

say "AWS itself (no endpoint): bucket.s3.REGION.amazonaws.com; s3.REGION.amazonaws.com/BUCKET for a dotted bucket or --s3-path-style; .cn in China"
# Through a loopback proxy that records where each CONNECT would go and answers nothing: exit 3 and one line each,
# nothing leaves the machine. (A dotted bucket on AWS's own endpoint once crashed building its path.)
(
    unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
    python3 "$SL_CLI_DIR/connect_recorder.py" "$T/rec.port" "$T/rec.log" &
    rec=$!
    trap 'kill $rec 2>/dev/null' EXIT
    for _ in $(seq 100); do [ -s "$T/rec.port" ] && break; sleep 0.1; done
    [ -s "$T/rec.port" ] || fail "the recording proxy" "a port" "none after 10 s"
    export https_proxy="http://127.0.0.1:$(cat "$T/rec.port")" HTTPS_PROXY="" all_proxy="" ALL_PROXY=""
    expect_connects() { # expect_connects WHAT HOST: every CONNECT since the last call was to HOST:443
        local got
        got=$(sort -u "$T/rec.log")
        : >"$T/rec.log"
        expect_eq "$1" "CONNECT $2:443 HTTP/1.1" "$got"
    }
    : >"$T/rec.log"
    run "$SLUICE" ls s3://sl-plain/p/
    expect_rc 3
    expect_err_one_line "sl-plain.s3.us-east-1.amazonaws.com"
    expect_connects "virtual-hosted" sl-plain.s3.us-east-1.amazonaws.com
    run "$SLUICE" ls s3://sl.dotted.bucket/p/
    expect_rc 3
    expect_err_one_line "s3.us-east-1.amazonaws.com"
    expect_connects "a dotted bucket: path-style" s3.us-east-1.amazonaws.com
    run "$SLUICE" ls s3://sl-plain/p/ --s3-path-style
    expect_rc 3
    expect_connects "--s3-path-style" s3.us-east-1.amazonaws.com
    AWS_REGION=cn-north-1 run "$SLUICE" ls s3://sl.dotted.bucket/p/
    expect_rc 3
    expect_connects "China, path-style" s3.cn-north-1.amazonaws.com.cn
    AWS_REGION=cn-north-1 run "$SLUICE" ls s3://sl-plain/p/
    expect_rc 3
    expect_connects "China, virtual-hosted" sl-plain.s3.cn-north-1.amazonaws.com.cn
)

say "a region given with --region is used; a wrong one is corrected by the server's redirect"
run "$SLUICE" ls s3://sl-eu/p/ --region eu-west-1
expect_rc 0
expect_out obj
run "$SLUICE" ls s3://sl-eu/p/ --region us-west-2
expect_rc 0
expect_out obj

say "a server that quotes the request back (Authorization, session token) is not shown"
(
    export AWS_ACCESS_KEY_ID=AKIDTOKEN AWS_SECRET_ACCESS_KEY=token-secret AWS_SESSION_TOKEN=the-session-token
    id=$(s3_retry_test '{"s3.ListObjectsV2": ["return-403-echo-headers"]}')
    run "$SLUICE" ls s3://sl-a/p/ --header "x-retry-test-id: $id"
    expect_rc 3
    expect_err_one_line "not shown"
    grep -q "the-session-token" "$ERR" && fail "messages" "no session token" "$(cat "$ERR")"
    true
)
s3_finish
