# shellcheck shell=bash
# What the benchmarks against a bucket share. Sourced (after `cd` to the repository root), never run.
#
#   bench_release [FILE...]     SLUICE (unless set): the release build's sluice, building build/release first if it
#                               or a FILE of it (a plugin, sl-synthbucket) is missing; SYNTH (unless set):
#                               sl-synthbucket beside it
#   bench_isolate DIR           HOME in DIR, no credentials, no proxy, the metadata server a closed local port: nothing
#                               but 127.0.0.1 is contacted
#   synth_start WHO DIR ARGS... start sl-synthbucket ARGS on a free 127.0.0.1 port (its port file and log in DIR);
#                               sets SYNTH_PID and exports STORAGE_EMULATOR_HOST; WHO names the script in errors
#   synth_stop                  stop it (nothing when none runs)

bench_release() {
    if [ -z "${SLUICE:-}" ]; then
        local f
        for f in sluice "$@"; do
            [ -e "build/release/$f" ] && continue
            echo "== building the release binaries (build/release)" >&2
            cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
            cmake --build build/release -j2 >/dev/null
            break
        done
        SLUICE=$PWD/build/release/sluice
    fi
    SYNTH=${SYNTH:-$(dirname "$SLUICE")/sl-synthbucket}
}

bench_isolate() {
    mkdir -p "$1/home"
    export HOME=$1/home GCE_METADATA_HOST=127.0.0.1:1 GCE_METADATA_IP=127.0.0.1:1 no_proxy=127.0.0.1 NO_PROXY=127.0.0.1
    unset GOOGLE_APPLICATION_CREDENTIALS GOOGLE_OAUTH_ACCESS_TOKEN CLOUD_STORAGE_EMULATOR_ENDPOINT
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
}

SYNTH_PID=
synth_start() {
    local who=$1 dir=$2
    shift 2
    [ -x "$SYNTH" ] || { echo "$who: $SYNTH is not built (libmicrohttpd-dev missing?)" >&2; exit 2; }
    rm -f "$dir/port"
    "$SYNTH" --port 0 --port-file "$dir/port" "$@" >"$dir/server.log" 2>&1 &
    SYNTH_PID=$!
    for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
    [ -s "$dir/port" ] || { echo "$who: the synthetic bucket did not start" >&2; cat "$dir/server.log" >&2; exit 3; }
    export STORAGE_EMULATOR_HOST=127.0.0.1:$(cat "$dir/port")
}

synth_stop() {
    [ -z "$SYNTH_PID" ] || { kill "$SYNTH_PID" 2>/dev/null || true; wait "$SYNTH_PID" 2>/dev/null || true; }
    SYNTH_PID=
}
