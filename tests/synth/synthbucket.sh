#!/usr/bin/env bash
# The synthetic bucket server of bench/ (sl-synthbucket) against the real sluice binary and independent checks:
# listings (names, sizes, pages, prefixes, delimiter), bytes whose CRC32C is recomputed here in Python, ranges,
# objects served corrupted that sluice must reject, uploads checked against their CRC32C (400 when it is wrong),
# delays that do not serialise requests, keep-alive through delays, and pacing. Registered by tests/CMakeLists.txt
# only when sl-synthbucket is built (libmicrohttpd found).
#
# Environment: SLUICE, SL_SYNTHBUCKET, SL_SYNTHLOAD (paths of the binaries), SL_TEST_TMP.
. "$(dirname "$0")/../cli/gcs_lib.sh"

: "${SL_SYNTHBUCKET:?set SL_SYNTHBUCKET to the sl-synthbucket binary}"
: "${SL_SYNTHLOAD:?set SL_SYNTHLOAD to the sl-synthload binary}"
SYN_N=0
SYN_PIDS=()
SYN_LOGS=()

# synth_start OPTIONS...: starts sl-synthbucket on a free port; sets SYN_PORT, SYN_PID and SYN (its URL), exports
# STORAGE_EMULATOR_HOST. Stopped when the test exits (gcs_lib.sh's trap and watchdog).
synth_start() {
    SYN_N=$((SYN_N + 1))
    local pf="$T/synth$SYN_N.port" log="$T/synth$SYN_N.log" i
    "$SL_SYNTHBUCKET" --port 0 --port-file "$pf" --parent-pid $$ "$@" >"$log" 2>&1 &
    SYN_PID=$!
    SYN_PIDS+=("$SYN_PID")
    SYN_LOGS+=("$log")
    GCS_PIDS+=("$SYN_PID")
    GCS_LOGS+=("$log")
    gcs_watch "$SYN_PID"
    for i in $(seq 200); do
        [ -s "$pf" ] && break
        kill -0 "$SYN_PID" 2>/dev/null || fail "sl-synthbucket starts" "a port file" "it exited: $(cat "$log")"
        sleep 0.05
    done
    [ -s "$pf" ] || fail "sl-synthbucket starts" "a port file within 10 s" "none"
    SYN_PORT=$(tr -d '\n' <"$pf")
    SYN="http://127.0.0.1:$SYN_PORT"
    GCS=$SYN # gcs_api, gcs_meta, gcs_objects and gcs_stat speak to it
    export STORAGE_EMULATOR_HOST="127.0.0.1:$SYN_PORT"
    expect_eq "the server's first line on stdout" "port $SYN_PORT" "$(head -1 "$log")"
}

# http_code METHOD URL [CURL ARGS...]: the status of one request (body in $T/.body)
http_code() {
    local m=$1 u=$2
    shift 2
    curl -sS --noproxy '*' -o "$T/.body" -w '%{http_code}' -X "$m" "$@" "$u"
}

say "command line: only loopback, bad values refused"
run "$SL_SYNTHBUCKET" --host 0.0.0.0
expect_rc 2
expect_err_contains "refusing to listen on '0.0.0.0': only 127.0.0.1"
run "$SL_SYNTHBUCKET" --objects -3
expect_rc 2
expect_err_contains "--objects: invalid value '-3'"
run "$SL_SYNTHBUCKET" --no-such-option 1
expect_rc 2
run "$SL_SYNTHBUCKET" --help
expect_rc 0

say "3,000 objects of 6,000 bytes +-50 %: names, sizes and pages as listed to sluice"
synth_start --objects 3000 --size 6000 --jitter 50
gcs_stats_reset
run "$SLUICE" ls -r --json gs://synth
expect_rc 0
expect_eq "the listing's pages (3,000 objects, 1,000 a page)" 3 "$(gcs_stat 'd["requests"]["list"]')"
python3 - "$OUT" <<'PY' >"$T/ls.check" || fail "sluice's listing of gs://synth" "see above" "$(cat "$T/ls.check")"
import json, sys
items = [json.loads(l) for l in open(sys.argv[1])]
keys = [i["key"] for i in items]
want = ["obj/%010d" % i for i in range(3000)]
assert keys == want, "names are not obj/0000000000 .. obj/0000002999 in order: %r" % keys[:3]
sizes = [i["size"] for i in items]
assert all(3000 <= s <= 9000 for s in sizes), "a size outside 6000 +- 50 %%: %r" % [s for s in sizes if not 3000 <= s <= 9000][:3]
assert len(set(sizes)) > 1000, "sizes do not vary: %d distinct" % len(set(sizes))
mean = sum(sizes) / len(sizes)
assert 5700 < mean < 6300, "mean size %.0f, not about 6000" % mean
assert all(len(i["crc32c"]) == 8 for i in items), "an item without a CRC32C"
print(sum(sizes))
PY
total=$(cat "$T/ls.check")
run "$SLUICE" du --json gs://synth
expect_rc 0
expect_out "{\"objects\":3000,\"bytes\":$total}"
run "$SLUICE" ls gs://synth
expect_out "obj/"
run "$SLUICE" ls -r gs://sink
expect_rc 0
expect_out

say "prefixes, page tokens and startOffset of the server's own listing"
expect_eq "objects under obj/000000012" 10 "$(gcs_objects synth obj/000000012 | wc -l)"
expect_eq "objects under obj/00000029" 100 "$(gcs_objects synth obj/00000029 | wc -l)"
page=$(gcs_api GET "/storage/v1/b/synth/o?maxResults=7&prefix=obj%2F00000029")
tok=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["nextPageToken"])' "$page")
page2=$(gcs_api GET "/storage/v1/b/synth/o?maxResults=7&prefix=obj%2F00000029&pageToken=$tok")
expect_eq "the second page of 7 starts at the 8th name" obj/0000002907 \
    "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["items"][0]["name"])' "$page2")"
page=$(gcs_api GET "/storage/v1/b/synth/o?maxResults=2&startOffset=obj%2F0000002998")
expect_eq "startOffset" "obj/0000002998 obj/0000002999 none" "$(python3 -c 'import json,sys
d = json.loads(sys.argv[1]); print(" ".join(i["name"] for i in d["items"]), d.get("nextPageToken", "none"))' "$page")"
expect_eq "a name that is not one of the objects" 404 "$(http_code GET "$SYN/storage/v1/b/synth/o/obj%2F0000003000")"
expect_eq "an object of a sink" 404 "$(http_code GET "$SYN/storage/v1/b/sink/o/obj%2F0000000001")"

say "bytes: CRC32C recomputed here, MD5 by md5sum, ranges, the same bytes every time"
for i in 0000000000 0000001234 0000002999; do
    run "$SLUICE" cat "gs://synth/obj/$i"
    expect_rc 0
    cp "$OUT" "$T/o$i"
    expect_eq "size of obj/$i" "$(gcs_meta synth "obj/$i" 'd["size"]')" "$(wc -c <"$T/o$i")"
    expect_eq "CRC32C of obj/$i's bytes (Python) against its metadata" "$(gcs_meta synth "obj/$i" 'd["crc32c"]')" \
        "$(crc32c_b64 "$T/o$i")"
    run "$SLUICE" cat "gs://synth/obj/$i"
    expect_out_file "$T/o$i"
    run "$SLUICE" cat --range 100-2999 "gs://synth/obj/$i"
    expect_rc 0
    python3 -c 'import sys; sys.stdout.buffer.write(open(sys.argv[1], "rb").read()[100:3000])' "$T/o$i" >"$T/range"
    expect_out_file "$T/range"
done
cmp -s "$T/o0000000000" "$T/o0000001234" && fail "two objects differ" "different bytes" "the same bytes"
run "$SLUICE" map gs://synth - --op md5 -q -j 8 --include 'obj/000000000*'
expect_rc 0
expect_eq "MD5 of obj/0000000000 (sluice map, md5sum)" "$(md5sum <"$T/o0000000000" | cut -d' ' -f1)" \
    "$(grep '"obj/0000000000"' "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["md5"])')"

say "map gs://synth -> gs://sink: every object downloaded, checked and its result uploaded with its CRC32C"
gcs_stats_reset
run "$SLUICE" map gs://synth gs://sink/out --op md5 -j 16 -q
expect_rc 0
expect_eq "media GETs" 3000 "$(gcs_stat 'd["requests"]["media"]')"
expect_eq "uploads accepted, CRC32C checked" 3000 "$(gcs_stat 'd["uploads_accepted"]')"
expect_eq "uploads rejected" 0 "$(gcs_stat 'd["uploads_rejected"]')"
expect_eq "uploads without a CRC32C" 0 "$(gcs_stat 'd["uploads_unchecked"]')"
expect_eq "bytes served" "$total" "$(gcs_stat 'd["bytes_served"]')"

say "uploads: a wrong CRC32C is refused with 400, multipart and resumable; sluice's resumable upload is accepted"
printf 'hello' >"$T/hello"
good=$(crc32c_b64 "$T/hello")
for crc in AAAAAA== "$good"; do
    printf -- '--BB\r\nContent-Type: application/json\r\n\r\n{"name":"x","crc32c":"%s"}\r\n--BB\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--BB--\r\n' \
        "$crc" >"$T/mp"
    code=$(http_code POST "$SYN/upload/storage/v1/b/sink/o?uploadType=multipart" \
        -H 'Content-Type: multipart/related; boundary=BB' --data-binary "@$T/mp")
    expect_eq "multipart upload with crc32c $crc" "$([ "$crc" = "$good" ] && echo 200 || echo 400)" "$code"
done
grep -q "\"crc32c\":\"$good\"" "$T/.body" || fail "the answer to the good upload" "its CRC32C $good" "$(cat "$T/.body")"
for crc in AAAAAA== "$good"; do
    curl -sS --noproxy '*' -D "$T/.h" -o /dev/null -X POST -H 'Content-Type: application/json' -d '{}' \
        "$SYN/upload/storage/v1/b/sink/o?uploadType=resumable&name=r"
    loc=$(tr -d '\r' <"$T/.h" | sed -n 's/^Location: //p')
    code=$(http_code PUT "$loc" -H 'Content-Range: bytes 0-4/5' -H "X-Goog-Hash: crc32c=$crc" --data-binary hello)
    expect_eq "resumable upload with X-Goog-Hash crc32c=$crc" "$([ "$crc" = "$good" ] && echo 200 || echo 400)" "$code"
done
# A media part without header fields (the blank line right after the delimiter, as Google's Go client sends it).
printf -- '--BB\r\nContent-Type: application/json\r\n\r\n{"name":"y","crc32c":"%s"}\r\n--BB\r\n\r\nhello\r\n--BB--' \
    "$good" >"$T/mp"
expect_eq "multipart upload whose media part has no header fields" 200 "$(http_code POST \
    "$SYN/upload/storage/v1/b/sink/o?uploadType=multipart" -H 'Content-Type: multipart/related; boundary=BB' \
    --data-binary "@$T/mp")"
expect_eq "uploads rejected (counted)" 2 "$(gcs_stat 'd["uploads_rejected"]')"
expect_eq "an upload to the synthetic bucket" 403 "$(http_code POST \
    "$SYN/upload/storage/v1/b/synth/o?uploadType=media&name=x" --data-binary hello)"
python3 -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(700000))' "$T/big.bin"
mkdir -p "$T/up" && cp "$T/big.bin" "$T/up/"
gcs_stats_reset
run "$SLUICE" cp "$T/up" gs://sink/up --upload-chunk 256K -q
expect_rc 0
expect_eq "chunks of the resumable upload (700,000 bytes in 256 KiB chunks)" 3 \
    "$(gcs_stat 'd["requests"]["resumable_chunk"]')"
expect_eq "the resumable upload accepted, CRC32C checked" 1 "$(gcs_stat 'd["uploads_accepted"]')"

say "objects served corrupted (--corrupt-every 10): sluice rejects exactly those"
synth_start --objects 50 --size 6000 --corrupt-every 10
run "$SLUICE" map gs://synth - --op crc32c -j 4 -q --failures "$T/fail.jsonl"
expect_rc 1
expect_eq "objects failed" "obj/0000000009 obj/0000000019 obj/0000000029 obj/0000000039 obj/0000000049" \
    "$(python3 -c 'import json,sys; print(" ".join(sorted(json.loads(l)["key"] for l in open(sys.argv[1]))))' \
        "$T/fail.jsonl")"
expect_eq "why" 5 "$(grep -c 'CRC32C mismatch' "$T/fail.jsonl")"
expect_eq "objects done" 45 "$(wc -l <"$OUT")"
run "$SLUICE" cat gs://synth/obj/0000000019
expect_rc 3
expect_err_contains "CRC32C mismatch"

say "multi-block objects: 1 MiB (whole last block) and 1 MiB +- 10 %, CRC32C recomputed here"
synth_start --objects 3 --size 1M --jitter 10
for i in 0 1 2; do
    run "$SLUICE" cat "gs://synth/obj/000000000$i"
    expect_rc 0
    expect_eq "CRC32C of obj/000000000$i" "$(gcs_meta synth "obj/000000000$i" 'd["crc32c"]')" "$(crc32c_b64 "$OUT")"
done
synth_start --objects 1 --size 1M --jitter 0
run "$SLUICE" cat gs://synth/obj/0000000000
expect_rc 0
expect_eq "size" 1048576 "$(wc -c <"$OUT")"
expect_eq "CRC32C of a 1 MiB object" "$(gcs_meta synth obj/0000000000 'd["crc32c"]')" "$(crc32c_b64 "$OUT")"

say "--delay-ms: requests wait at the same time, connections stay open"
# 40 requests on 40 connections against a 300 ms delay: one after the other they would take 12 s. What is asserted
# is not a time but how many requests the server held at once (its suspended_peak), and that the load generator
# (which counts a connection the server closes as a failure) saw 40 answers on open connections.
synth_start --objects 100 --size 1000 --delay-ms 300
run "$SL_SYNTHLOAD" --port "$SYN_PORT" --connections 40 --requests 80
expect_rc 0
expect_err_empty
case "$(cat "$OUT")" in *"2xx 80, 3xx 0, 4xx 0, 5xx 0, failed 0"*) ;; *) fail "80 answers" "all 2xx, none failed" "$(cat "$OUT")" ;; esac
peak=$(gcs_stat 'd["suspended_peak"]')
[ "$peak" -ge 20 ] || fail "requests held at once by the delay (40 connections)" "at least 20" "$peak"
expect_eq "requests delayed" 80 "$(gcs_stat 'd["delayed"]')"
gcs_stats_reset
run "$SLUICE" map gs://synth - --op crc32c -j 16 -q
expect_rc 0
expect_eq "objects" 100 "$(wc -l <"$OUT")"
peak=$(gcs_stat 'd["suspended_peak"]')
[ "$peak" -ge 8 ] || fail "sluice's requests held at once by the delay (-j 16)" "at least 8" "$peak"

say "--rate-per-conn: a 1 MiB body at 256 KiB/s takes at least 3 s, and is still whole"
synth_start --objects 1 --size 1M --jitter 0 --rate-per-conn 256K
start=$(date +%s%N)
run "$SLUICE" cat gs://synth/obj/0000000000
expect_rc 0
ms=$((($(date +%s%N) - start) / 1000000))
# The first 64 KiB go at once: (1024 - 64) KiB / 256 KiB/s = 3.75 s at least. A lower bound: load cannot break it.
[ "$ms" -ge 3000 ] || fail "time of a paced 1 MiB download" "at least 3000 ms" "$ms ms"
expect_eq "size" 1048576 "$(wc -c <"$OUT")"
[ "$(gcs_stat 'd["paced"]')" -gt 0 ] || fail "pauses of the paced body" "> 0" "0"

say "every server stops cleanly on SIGTERM (exit 0; nothing from a sanitizer in its log)"
for i in "${!SYN_PIDS[@]}"; do
    kill "${SYN_PIDS[$i]}"
    rc=0
    wait "${SYN_PIDS[$i]}" || rc=$?
    expect_eq "exit status of sl-synthbucket ${SYN_LOGS[$i]}" 0 "$rc"
    if grep -q -E 'Sanitizer|runtime error' "${SYN_LOGS[$i]}"; then
        fail "log of sl-synthbucket ${SYN_LOGS[$i]}" "no sanitizer report" "$(head -c 3000 "${SYN_LOGS[$i]}")"
    fi
done

gcs_finish
