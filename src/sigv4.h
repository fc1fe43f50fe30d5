/* AWS Signature Version 4 (the Authorization-header form), over OpenSSL's HMAC-SHA256 and SHA-256.
 *
 * Why sluice signs itself rather than through libcurl's CURLOPT_AWS_SIGV4: checked against botocore's S3SigV4Auth on
 * loopback (every request libcurl 7.88.1 signed was re-signed by botocore from the headers it names in SignedHeaders,
 * with the canonical forms S3 itself computes), libcurl signs these wrong, each of which S3 answers with
 * SignatureDoesNotMatch:
 *   - a query string not already in sorted order: libcurl signs the parameters in the order of the URL
 *     (`?prefix=a&list-type=2`, ListObjectsV2 with `continuation-token`, `delimiter`, `start-after` ...);
 *   - repeated keys not in value order (`?a=2&a=1`);
 *   - a parameter without a value (`?uploads`, `?delete`): signed as `uploads`, where SigV4 signs `uploads=`;
 *   - lower-case percent-escapes in the URL (`%c3%a9`) are signed as they are, not as `%C3%A9`;
 * and it never adds `x-amz-content-sha256` by itself (S3 refuses a SigV4 request without it), nor
 * `x-amz-security-token`. It got right: paths with any byte (space, '$', '+', '=', '&', '~', UTF-8), values with
 * spaces, '+', '=', '&', '~' and UTF-8 (escaped in the URL), x-amz-* headers (trimmed, spaces collapsed), Range,
 * If-Match, Content-MD5, GET/PUT/POST/DELETE/HEAD, and UNSIGNED-PAYLOAD given as the x-amz-content-sha256 header.
 * Most of the wrong cases could be dodged by writing every URL pre-sorted, but the signature would then depend on
 * the libcurl of each machine (later releases sort and encode themselves), could not be shown for debugging, and the
 * streaming (aws-chunked) form would still need a signer of our own. Signing here costs two SHA-256 passes over a
 * few hundred bytes and one HMAC per request once the day's key is derived.
 *
 * How the store uses it, per request:
 *     sl__sigv4_request rq = {.method = "GET", .path = "/bucket/raw key", .query = q, .query_count = nq,
 *                             .headers = h, .header_count = nh, .payload_hash = SL__SIGV4_EMPTY_SHA256,
 *                             .time_s = time(NULL), .region = region, .service = "s3"};
 *     sl__sigv4_encode_path(...) and sl__sigv4_query_string(...)  -> the request line (the same encoding as signed)
 *     sl__sigv4_amz_headers(&rq, &creds, buf, cap, lines)        -> x-amz-date, x-amz-content-sha256, token lines
 *     sl__sigv4_sign(&client->keys, &rq, &creds, auth, cap, NULL) -> "Authorization: AWS4-HMAC-SHA256 ..."
 * and sends its own headers, the amz lines and the Authorization line. The path is given raw (the object key as it
 * is, with the bucket in front for path-style addressing) and encoded here the S3 way: each byte but A-Z a-z 0-9
 * - . _ ~ and '/' as %XX, once, never normalised ("." and ".." segments and "//" stay as they are). Services other
 * than S3 double-encode and normalise paths; sluice only calls them (STS) with the path "/", where both agree.
 *
 * Everything here is pure and bounded: no allocation, results in caller buffers with caps, the sorting done in stack
 * scratch of fixed size (SL__SIGV4_QUERY_CAP, SL__SIGV4_MAX_*). Thread-safe except the key cache, which belongs to
 * one client (one worker thread) and is used without a lock. Secrets never appear in messages. */
#ifndef SLUICE_SIGV4_H
#define SLUICE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The payload hash of an empty body, and the literal that signs no payload (the body's integrity then rests on TLS
 * and the x-amz-checksum-* / Content-MD5 headers). */
#define SL__SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SL__SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* The payload hash of a request whose body is sent aws-chunked, each chunk signed (sl__sigv4_chunk_sign). */
#define SL__SIGV4_STREAMING_PAYLOAD "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

#define SL__SIGV4_MAX_QUERY 64    /* query parameters in one request */
#define SL__SIGV4_MAX_HEADERS 48  /* signed headers given by the caller */
#define SL__SIGV4_QUERY_CAP 16384 /* the canonical query string: 3 x a 1,024-byte key, a continuation token, ... */
#define SL__SIGV4_AMZ_LINES 4     /* sl__sigv4_amz_headers: up to 3 lines and the NULL */
/* Room that always suffices for the Authorization line of a request whose own header names (sl__sigv4_request.headers,
 * one byte more each for the separator) add up to names_bytes: the rest, with the three names the signer adds, is at
 * most 412 bytes with the NUL. */
#define SL__SIGV4_AUTH_CAP(names_bytes) (448 + (names_bytes))

/* A query parameter or a header, raw (not percent-encoded). A NULL value is the empty value ("?uploads"). */
typedef struct sl__sigv4_param {
    const char *name;
    const char *value;
} sl__sigv4_param;

typedef struct sl__sigv4_credentials {
    const char *access_key_id;     /* printable ASCII, no '/', ',' or space */
    const char *secret_access_key; /* secret */
    const char *session_token;     /* NULL or "" for long-term keys; secret */
} sl__sigv4_credentials;

typedef struct sl__sigv4_request {
    const char *method; /* "GET", "PUT", ... as sent */
    const char *path;   /* raw, starts with '/'; encoded here (see above) */
    const sl__sigv4_param *query;
    size_t query_count;
    /* The headers to sign besides the three the signer adds (x-amz-date, x-amz-content-sha256 for S3,
     * x-amz-security-token with a session token): "host" (required: as sent, with ":port" when not the scheme's
     * default), and any of range, if-match, content-md5, content-type, x-amz-* ... Names in any case; values are
     * trimmed, runs of spaces and tabs collapsed to one space; a name given twice signs its values joined with ','
     * in the order given (send them the same way). A CR, LF or other control byte fails with SL_EINVAL. */
    const sl__sigv4_param *headers;
    size_t header_count;
    /* 64 lower-case hex digits of the body's SHA-256, SL__SIGV4_UNSIGNED_PAYLOAD, SL__SIGV4_STREAMING_PAYLOAD, or
     * NULL for an empty body. */
    const char *payload_hash;
    int64_t time_s;      /* the signing time, Unix seconds (UTC); S3 refuses a skew of more than 15 minutes */
    const char *region;  /* "us-east-1", or whatever an S3-compatible store calls its region */
    const char *service; /* "s3", "sts" */
} sl__sigv4_request;

/* The derived signing key, per (secret, date, region, service): one per client (worker thread), used without a lock,
 * zero-initialised, wiped with sl__sigv4_key_cache_wipe. A job's client derives its key once a day (and again when
 * the credentials rotate), not per request. It keeps the secret it was derived from, to compare (in constant time)
 * with each request's: the client that owns it holds the same secret in its credentials anyway. */
#define SL__SIGV4_SECRET_CAP 256 /* the longest secret access key the signer takes */
typedef struct sl__sigv4_key_cache {
    bool valid;
    size_t secret_len;
    char secret[SL__SIGV4_SECRET_CAP];
    char date[9];
    char region[64];
    char service[32];
    unsigned char key[32];
    void *mac; /* key's HMAC states (sl__hmac_key), or NULL: each request's HMAC starts from copies of them */
    void *md;  /* a SHA-256 context (EVP_MD_CTX) for the canonical requests, made on first use */
    unsigned long derivations; /* keys derived so far, for tests */
} sl__sigv4_key_cache;

/* Wipes the key and frees its HMAC context (NULL ok). */
void sl__sigv4_key_cache_wipe(sl__sigv4_key_cache *cache);

/* SigV4's percent-encoding: A-Z a-z 0-9 - . _ ~ kept, every other byte as %XX with upper-case hex; '/' kept when
 * keep_slash (paths), encoded otherwise (query names and values). Returns the encoded length; writes at most cap
 * bytes, NUL-terminated when cap > 0 (snprintf's convention: a result >= cap did not fit). */
size_t sl__sigv4_encode(char *buf, size_t cap, const char *s, size_t len, bool keep_slash);
/* The canonical URI of a raw path (see above; "" is "/"). Returns 0, or SL_EINVAL (not starting with '/') /
 * SL_ETOOBIG (cap) with a one-line message naming the path. */
int sl__sigv4_encode_path(const char *path, char *buf, size_t cap);
/* The canonical query string: names and values encoded, sorted by name then value (bytes of the encoded forms),
 * joined "n=v&n=v" (a NULL or empty value gives "n="). Put it after '?' in the URL as it is: what is sent is then
 * exactly what is signed. "" for no parameters. Returns the length, or SL_ETOOBIG / SL_EINVAL (a NULL name, more than
 * SL__SIGV4_MAX_QUERY parameters) with a one-line message. */
int sl__sigv4_query_string(const sl__sigv4_param *query, size_t count, char *buf, size_t cap);

/* The headers a signed request must carry besides the caller's own, as "Name: value" lines written into buf (cap
 * bytes) and pointed to by lines[] in this order, NULL-terminated: "x-amz-date: <time>", "x-amz-content-sha256:
 * <payload hash>" (service "s3" only), "x-amz-security-token: <token>" (with a session token). They are exactly the
 * ones sl__sigv4_sign adds to what it signs. Returns 0, or SL_ETOOBIG / SL_EINVAL with a one-line message. */
int sl__sigv4_amz_headers(const sl__sigv4_request *req, const sl__sigv4_credentials *creds, char *buf, size_t cap,
                          const char *lines[SL__SIGV4_AMZ_LINES]);

/* For debugging: where sl__sigv4_sign copies the canonical request and the string to sign (either buffer NULL: not
 * wanted). Secrets do not appear in them except the session token, which is a signed header: do not log them as
 * they are. */
typedef struct sl__sigv4_debug {
    char *canonical_request;
    size_t canonical_request_cap;
    char *string_to_sign;
    size_t string_to_sign_cap;
} sl__sigv4_debug;

/* Signs req: writes "Authorization: AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request,
 * SignedHeaders=<names>,Signature=<hex>" (no spaces after the commas, as AWS's examples) into auth (auth_cap bytes).
 * cache: the client's key cache, or NULL to derive the key for this request alone. debug: NULL, or buffers to fill.
 * Returns 0, or SL_EINVAL (a missing host header, one of the three added headers given by the caller, a bad name,
 * value, method, path, region, service or credential) / SL_ETOOBIG (a cap: auth_cap, a debug buffer, the query or
 * header limits above) / SL_EINTERNAL (OpenSSL) with a one-line message naming the method and path. */
int sl__sigv4_sign(sl__sigv4_key_cache *cache, const sl__sigv4_request *req, const sl__sigv4_credentials *creds,
                   char *auth, size_t auth_cap, sl__sigv4_debug *debug);

/* The streaming form (S3's "Transferring Payload in Multiple Chunks"): the request is signed by sl__sigv4_sign with
 * payload_hash SL__SIGV4_STREAMING_PAYLOAD and the headers content-encoding: aws-chunked,
 * x-amz-decoded-content-length: <payload bytes> and content-length: sl__sigv4_chunked_length(...); its signature (the
 * last 64 characters of the Authorization line) seeds the chain. Each chunk is then sent as
 * "<hex size>;chunk-signature=<signature>\r\n<data>\r\n", its signature made from the one before it and the
 * chunk's SHA-256 (hex), ending with a chunk of size 0. req is the request signed (its time, region and service are
 * used). Returns 0 with 64 hex digits and a NUL in signature, or SL_EINVAL / SL_EINTERNAL with a one-line message. */
int sl__sigv4_chunk_sign(sl__sigv4_key_cache *cache, const sl__sigv4_request *req, const sl__sigv4_credentials *creds,
                         const char *previous_signature, const char *chunk_sha256, char signature[65]);
/* The Content-Length of a payload of payload_bytes sent aws-chunked in chunks of chunk_bytes (the last one shorter),
 * the final empty chunk included. chunk_bytes 0: 0. */
uint64_t sl__sigv4_chunked_length(uint64_t payload_bytes, uint64_t chunk_bytes);

/* The signing key for (secret, date "YYYYMMDD", region, service), for tests against AWS's published example and for
 * the cache. Returns 0 or SL_EINTERNAL. */
int sl__sigv4_derive_key(const char *secret, const char *date, const char *region, const char *service,
                         unsigned char key[32]);
/* Lower-case hex SHA-256 of len bytes (out: 65 bytes), for payload hashes. Returns 0 or SL_EINTERNAL. */
int sl__sigv4_sha256_hex(const void *data, size_t len, char out[65]);

#endif
