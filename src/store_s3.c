/* The s3:// store: Amazon S3 and S3-compatible stores (REST API, SigV4) over the per-thread HTTP client.
 *
 * Each sl_client owns one sl__http (its connections, its TLS sessions), one XML parser (s3_xml.h), its SigV4 key
 * cache and one upload buffer, all made once per thread and reused for every object. The store holds configuration,
 * the process-wide credential cache (auth_aws.h) and the bucket's region.
 *
 * Addressing: path-style (ENDPOINT/BUCKET/KEY) for a custom endpoint (sl_store_options.endpoint, AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL, the profile's endpoint_url, in that order, as the AWS CLI reads them) or with s3_path_style;
 * virtual-hosted (BUCKET.s3.REGION.amazonaws.com/KEY) for AWS itself, except for a bucket whose name holds a '.'
 * (its host would not match AWS's certificate). A 301 / 400 AuthorizationHeaderMalformed that names the bucket's
 * region (x-amz-bucket-region, <Region>) is followed once per request; the region found is kept for the store.
 *
 * Every request is signed with SigV4 (sigv4.h): the request line is written with the signer's own encoding, so what is
 * sent is what is signed. Bodies sent over https are signed as UNSIGNED-PAYLOAD (TLS and the CRC32C header protect
 * them), over http with their SHA-256, as botocore does.
 *
 * Generations: S3 (unversioned) has none. An object's `generation` here is a 63-bit hash of its ETag (never 0): it
 * changes whenever the object is replaced, it is in every listing, and it is what a job records in fingerprints and
 * pins slices to. A read pinned to a generation looks the ETag up (HeadObject) and sends it as If-Match.
 *
 * Integrity: uploads carry x-amz-checksum-crc32c (each part of a multipart upload its own, and the whole object's
 * CRC32C as a FULL_OBJECT checksum at completion), so the server refuses damaged bytes; the object made is checked
 * against the CRC32C the answer gives. Downloads of a whole object ask for its checksum (x-amz-checksum-mode:
 * ENABLED) and check its CRC32C when it has a full-object one, else its size and, for an ETag that is an MD5 of an
 * object not encrypted with SSE-KMS or SSE-C, its MD5. A ranged read is checked against the range asked for.
 *
 * Resume fingerprints: recorded as x-amz-meta-sluice-source ("<fingerprint> out_size=N out_crc32c=X"), which lands
 * with the bytes in the same request (PutObject, CreateMultipartUpload): it is read back only while the object still
 * has that size (and that CRC32C when the store keeps one). S3 listings carry no metadata, so a listing asked for
 * fingerprints makes one HeadObject per object listed, one after another; a job's destination listing does not ask
 * (fingerprints_by_lookup): the outputs it finds are looked up by the job's workers, in parallel.
 *
 * Multipart: objects up to the upload chunk (--upload-chunk, default 8 MiB) go up in one PutObject; larger ones in
 * parts of the chunk (larger when the size hint says 10,000 parts would not do), each part retried alone, then
 * CompleteMultipartUpload; AbortMultipartUpload on any failure or abort. Memory: a writer holds one part at most.
 * In a job (sl__store_set_budget) each writer is promised a minimum part (5 MiB, S3's smallest but the last; the chunk
 * when that is smaller), taken from the budget with its first object and kept by its client; room beyond it up to a
 * chunk only when the budget can spare it then, else the buffer goes up as a smaller part: no writer ever waits for
 * memory another writer holds. Between objects a client keeps the minimum part reserved and 256 KiB of it resident.
 *
 * Deletes: DeleteObject for one key; DeleteObjects (quiet, Content-MD5, up to 1,000 keys) for the batches rm -r gathers
 * (del_batch), each key's outcome reported alone. */
#include "auth_aws.h"
#include "clock.h"
#include "crc32c.h"
#include "digest.h"
#include "fail.h"
#include "http.h"
#include "range.h"
#include "s3_xml.h"
#include "sigv4.h"
#include "store_vtable.h"
#include "strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define S_UPLOAD_QUANTUM ((uint64_t)256 * 1024)
#define S_DEFAULT_CHUNK ((uint64_t)8 * 1024 * 1024)
#define S_MAX_PART ((uint64_t)5 * 1024 * 1024 * 1024)
#define S_MIN_PART ((uint64_t)5 * 1024 * 1024)
#define S_MAX_PARTS 10000u
#define S_URL_CAP 16384
#define S_PATH_CAP 8192
#define S_MAX_USER_HEADERS 16
#define S_META_HEADER "x-amz-meta-sluice-source"
#define S_FP_CAP 256
#define S_OUT_FMT " out_size=%" PRIu64 " out_crc32c=%08" PRIx32
#define S_OUT_CAP 64
#define S_PROGRESS_BYTES ((uint64_t)256 * 1024)
#define S_ERRBODY_CAP 8192
/* What one client holds for its life besides its upload buffer: URL, path and name scratch (28 KiB), the credentials
 * copy (8.5 KiB), the XML parser (20 KiB, and up to ~150 KiB after a listing page), the HTTP client and curl's buffers
 * and connection; over TLS OpenSSL's state too. */
#define S_CLIENT_BYTES ((size_t)512 * 1024)
#define S_CLIENT_BYTES_TLS ((size_t)640 * 1024)

typedef struct s_store {
    sl_store base;
    char *origin;    /* "scheme://authority" of a custom endpoint; NULL: AWS's, made from the region */
    char *base_path; /* a custom endpoint's path ("" or "/p" without a trailing '/') */
    bool https;
    bool path_style;
    char *bucket;
    char *prefix; /* "" or ends in '/' */
    sl__aws_auth *auth;
    sl__retry_policy retry;
    uint64_t chunk;
    char **headers;
    sl__http_health health;
    sl__pool *budget;
    pthread_mutex_t lock;
    char region[64]; /* under lock: a redirect may change it */
} s_store;

/* A request's headers while it is made: the lines handed to the HTTP layer (which copies them when the request
 * starts) and what s_prepare builds them from. In the client rather than on the stack: ~35 KiB in the frames of every
 * request put each worker's stack, and libcurl's frames under it, that much deeper (64 KiB of touched stack a thread,
 * against 32 KiB for gs://). */
typedef struct s_scratch {
    const char *lines[64];
    char auth[SL__SIGV4_AUTH_CAP(1024)];
    char host_line[600];
    char amz[256 + SL__AWS_TOKEN_CAP]; /* x-amz-date, x-amz-content-sha256 and a session token */
    char query[SL__SIGV4_QUERY_CAP];
    char split[SL__SIGV4_MAX_HEADERS][160];
} s_scratch;

typedef struct s_client {
    sl_client base;
    s_scratch *scratch;
    sl__http *http;
    sl__s3_xml *xml;
    sl__sigv4_key_cache keys;
    sl__aws_credentials creds;
    /* How much of creds.session_token ever held text: what destroy clears of it, and of scratch->amz past the
     * x-amz lines before the token (the token's line is the only one that grows with it). The rest of those 8 KiB
     * buffers was never written, and clearing it would only touch its pages. */
    size_t token_used;
    uint64_t rng;
    char *url;  /* S_URL_CAP */
    char *path; /* S_PATH_CAP: the raw path, then its encoding */
    char *name; /* full object name scratch, 4096 */
    unsigned char *up;
    size_t up_map, up_data, up_budget;
    char fp[S_FP_CAP];
    char errbody[S_ERRBODY_CAP];
} s_client;

static const sl_store_vtable s_vtable;

static s_store *s_st(sl_client *c) {
    return (s_store *)c->store;
}

/* The generation of an ETag (quotes or not): FNV-1a over its text without quotes, 63 bits, never 0. */
static int64_t s_etag_gen(const char *etag) {
    size_t n = strlen(etag);
    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
        etag++;
        n -= 2;
    }
    if (n > 2 && etag[0] == 'W' && etag[1] == '/')
        return s_etag_gen(etag + 2);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)etag[i];
        h *= 0x100000001b3ull;
    }
    h &= (uint64_t)INT64_MAX;
    return h ? (int64_t)h : 1;
}

static void s_region_get(s_store *st, char *out, size_t cap) {
    pthread_mutex_lock(&st->lock);
    snprintf(out, cap, "%s", st->region);
    pthread_mutex_unlock(&st->lock);
}

static int s_full_name(s_client *c, const char *key, char *out, size_t cap) {
    s_store *st = s_st(&c->base);
    size_t plen = strlen(st->prefix), klen = strlen(key);
    if (plen + klen >= cap || plen + klen > 1024)
        return sl__fail(SL_ENAMETOOLONG, "s3://%s/%s%s: object name is %zu bytes, over S3's limit of 1024", st->bucket,
                        st->prefix, key, plen + klen);
    memcpy(out, st->prefix, plen);
    memcpy(out + plen, key, klen + 1);
    return 0;
}

/* ---- requests ---- */

/* One logical request's retries (sl__attempts), and what it may do once: refresh expired credentials, follow the
 * bucket's region. */
typedef struct s_attempts {
    sl__attempts base;
    bool refreshed;       /* ExpiredToken refreshed the credentials once */
    bool region_followed; /* a redirect to the bucket's region was followed once */
} s_attempts;

/* As store_gcs.c: waits before the next attempt if the policy allows one (held through an outage the job judges). */
static bool s_backoff(s_client *c, s_attempts *a) {
    s_store *st = s_st(&c->base);
    return sl__attempts_backoff(&a->base, &st->retry, &st->health, &c->rng);
}

static void s_progressed(s_attempts *a, uint64_t *mark, uint64_t at) {
    (void)sl__attempts_progressed(&a->base, mark, at, S_PROGRESS_BYTES);
}

/* One request as the store describes it. */
typedef struct s_req {
    const char *method;
    const char *bucket; /* NULL: the store's */
    const char *name;   /* full object name; NULL: the bucket itself */
    const sl__sigv4_param *query;
    size_t nq;
    const char *const *headers; /* "Name: value" lines, all signed; NULL-terminated or NULL */
    const void *body;
    size_t body_len;
    bool aside;
    size_t body_cap;
} s_req;

/* sl__aws_auth_get into the client, noting how much of the token buffer has held text. */
static int s_auth_get(s_client *c) {
    int rc = sl__aws_auth_get(s_st(&c->base)->auth, &c->creds);
    size_t n = strnlen(c->creds.session_token, sizeof(c->creds.session_token) - 1) + 1;
    if (n > c->token_used)
        c->token_used = n;
    return rc;
}

/* The credentials for the next request; anonymous leaves access_key_id "". A credential endpoint that stopped
 * answering is an outage like the store's own (recorded, waited for as s_backoff allows): 1 to try again. */
static int s_creds(s_client *c, s_attempts *a) {
    s_store *st = s_st(&c->base);
    int rc = s_auth_get(c);
    if (rc == 0)
        return 0;
    if (rc == SL_EIO && sl__aws_auth_unreachable(st->auth)) {
        sl__http_health_no_answer(&st->health, sl_last_error());
        if (s_backoff(c, a))
            return 1;
    }
    return rc;
}

/* Builds the URL (c->url) and the signed headers of rq into the client's scratch: the request's header lines are
 * c->scratch->lines, NULL-terminated. Returns 0 or <0. */
static int s_prepare(s_client *c, const s_req *rq) {
    s_store *st = s_st(&c->base);
    s_scratch *h = c->scratch;
    const char **lines = h->lines;
    const size_t cap = sizeof(h->lines) / sizeof(h->lines[0]);
    char region[64];
    s_region_get(st, region, sizeof(region));
    /* Host and raw path. */
    /* Built for every request: appended by hand (sl__strbuf), not through snprintf's format interpreter. */
    char host[512];
    bool vhost = !st->path_style;
    const char *bucket = rq->bucket ? rq->bucket : st->bucket;
    const char *china = strncmp(region, "cn-", 3) == 0 ? ".cn" : "";
    sl__strbuf b = sl__strbuf_of(host, sizeof(host));
    if (st->origin) {
        sl__strbuf_str(&b, strstr(st->origin, "://") + 3);
    } else {
        if (vhost) {
            sl__strbuf_str(&b, bucket);
            sl__strbuf_add(&b, ".", 1);
        }
        sl__strbuf_add(&b, "s3.", 3);
        sl__strbuf_str(&b, region);
        sl__strbuf_str(&b, ".amazonaws.com");
        sl__strbuf_str(&b, china);
    }
    sl__strbuf_end(&b); /* cut as snprintf would: the region and bucket were checked when the store was opened */
    char *raw = c->path;
    b = sl__strbuf_of(raw, S_PATH_CAP / 2);
    if (!vhost) {
        sl__strbuf_str(&b, st->base_path ? st->base_path : ""); /* none: AWS itself, path-style (a dotted bucket) */
        sl__strbuf_add(&b, "/", 1);
        sl__strbuf_str(&b, bucket);
    }
    if (vhost || rq->name)
        sl__strbuf_add(&b, "/", 1);
    if (rq->name)
        sl__strbuf_str(&b, rq->name);
    if (!sl__strbuf_end(&b))
        return sl__fail(SL_ENAMETOOLONG, "s3://%s: request path too long", st->bucket);
    char *enc = c->path + S_PATH_CAP / 2;
    int rc = sl__sigv4_encode_path(raw, enc, S_PATH_CAP / 2);
    if (rc < 0)
        return rc;
    char *query = h->query;
    int ql = sl__sigv4_query_string(rq->query, rq->nq, query, sizeof(h->query));
    if (ql < 0)
        return ql;
    b = sl__strbuf_of(c->url, S_URL_CAP);
    sl__strbuf_str(&b, st->https ? "https://" : "http://");
    sl__strbuf_str(&b, host);
    sl__strbuf_str(&b, enc);
    if (ql) {
        sl__strbuf_add(&b, "?", 1);
        sl__strbuf_add(&b, query, (size_t)ql);
    }
    if (!sl__strbuf_end(&b))
        return sl__fail(SL_ENAMETOOLONG, "s3://%s: request URL too long", st->bucket);

    b = sl__strbuf_of(h->host_line, sizeof(h->host_line));
    sl__strbuf_add(&b, "Host: ", 6);
    sl__strbuf_str(&b, host);
    sl__strbuf_end(&b);
    size_t nl = 0;
    lines[nl++] = h->host_line;
    sl__sigv4_param sh[SL__SIGV4_MAX_HEADERS];
    size_t ns = 0;
    sh[ns++] = (sl__sigv4_param){.name = "host", .value = host};
    /* Header names and values split in place of a copy: "Name: value". */
    char(*split)[160] = h->split;
    const char *const *groups[2] = {rq->headers, (const char *const *)st->headers};
    for (int g = 0; g < 2; g++)
        for (const char *const *p = groups[g]; p && *p; p++) {
            if (nl + 6 >= cap || ns >= SL__SIGV4_MAX_HEADERS)
                return sl__fail(SL_ETOOBIG, "s3://%s: too many request headers", st->bucket);
            const char *colon = strchr(*p, ':');
            size_t len = colon ? (size_t)(colon - *p) : 0;
            if (!len || len >= sizeof(h->split[0]))
                return sl__fail(SL_EINVAL, "header '%s' must look like 'Name: value'", *p);
            memcpy(split[ns], *p, len);
            split[ns][len] = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            sh[ns] = (sl__sigv4_param){.name = split[ns], .value = v};
            ns++;
            lines[nl++] = *p;
        }
    if (!c->creds.access_key_id[0]) {
        lines[nl] = NULL;
        h->auth[0] = '\0';
        return 0;
    }
    char hash[65];
    const char *payload = NULL;
    if (rq->body_len) {
        if (st->https) {
            payload = SL__SIGV4_UNSIGNED_PAYLOAD;
        } else {
            if ((rc = sl__sigv4_sha256_hex(rq->body, rq->body_len, hash)) < 0)
                return rc;
            payload = hash;
        }
    }
    sl__sigv4_request sr = {.method = rq->method,
                            .path = raw,
                            .query = rq->query,
                            .query_count = rq->nq,
                            .headers = sh,
                            .header_count = ns,
                            .payload_hash = payload,
                            .time_s = (int64_t)time(NULL),
                            .region = region,
                            .service = "s3"};
    sl__sigv4_credentials cr = {.access_key_id = c->creds.access_key_id,
                                .secret_access_key = c->creds.secret_access_key,
                                .session_token = c->creds.session_token};
    const char *amz_lines[SL__SIGV4_AMZ_LINES];
    if ((rc = sl__sigv4_amz_headers(&sr, &cr, h->amz, sizeof(h->amz), amz_lines)) < 0)
        return rc;
    if ((rc = sl__sigv4_sign(&c->keys, &sr, &cr, h->auth, sizeof(h->auth), NULL)) < 0)
        return rc;
    for (int i = 0; amz_lines[i]; i++)
        lines[nl++] = amz_lines[i];
    lines[nl++] = h->auth;
    lines[nl] = NULL;
    return 0;
}

static bool s_secret(void *ud, const char *text) {
    return sl__aws_auth_mentions_secret(ud, text);
}

/* The one-line message of a failed answer (`e` NULL or its parsed <Error>), with the class's code. */
static int s_error(s_client *c, const char *name, long status, const sl__s3_error *e) {
    s_store *st = s_st(&c->base);
    sl__s3_error_class cls = sl__s3_error_classify(e ? e->code : "", status);
    char line[2048];
    sl__s3_error_line(line, sizeof(line), st->bucket, name, status, e, s_secret, st->auth);
    const char *hint = "";
    switch (cls) {
    case SL__S3_ERR_DENIED:
        hint = sl__aws_auth_anonymous(st->auth)
                   ? " (no credentials were sent: --no-sign-request)"
                   : " (check the credentials, or whether they may do this on this bucket)";
        break;
    case SL__S3_ERR_PRECONDITION:
        hint = " (precondition failed: the object changed meanwhile)";
        break;
    case SL__S3_ERR_CORRUPT:
        hint = " (data corrupted in transit; nothing was stored)";
        break;
    default:
        break;
    }
    if (e && strcmp(e->code, "EntityTooSmall") == 0)
        hint = " (the store refuses parts this small: give --upload-chunk 5M or more)";
    return sl__fail(sl__s3_error_errno(cls), "%s%s (via %s)", line, hint, sl__aws_auth_source(st->auth));
}

/* The parsed error of an answer whose body was collected (or streamed into errbody), NULL when it has none. */
static const sl__s3_error *s_parse_error(s_client *c, const char *body, size_t len) {
    if (!body || !len)
        return NULL;
    if (sl__s3_xml_parse(c->xml, SL__S3_DOC_ERROR, "s3", body, len) != 0)
        return NULL;
    return sl__s3_xml_root(c->xml) == SL__S3_DOC_ERROR ? sl__s3_xml_error(c->xml) : NULL;
}

/* What s_call found out about a final answer. */
typedef struct s_answer {
    sl__http_response resp;
    const sl__s3_error *err; /* the <Error> of a failed answer (or of a 200 that is one), NULL when none */
    bool failed;             /* status >= 300, or a 200 whose body is <Error> */
} s_answer;

/* An answer without a body (HEAD) that names the bucket's region: S3's 301, 400 or 403 to a request signed for
 * another region. */
static bool s_region_hint(const sl__http_response *r) {
    return r->amz_bucket_region[0] && (r->status == 301 || r->status == 307 || r->status == 400 || r->status == 403);
}

/* Takes the region an answer names for the bucket, once per request: true when the request is to be sent again. */
static bool s_follow_region(s_client *c, s_attempts *a, const s_answer *ans) {
    s_store *st = s_st(&c->base);
    if (a->region_followed)
        return false;
    const char *r = ans->resp.amz_bucket_region[0] ? ans->resp.amz_bucket_region : ans->err ? ans->err->region : "";
    char region[64];
    if (!r[0] || !sl__s3_region_of(r, region, sizeof(region)))
        return false;
    a->region_followed = true;
    pthread_mutex_lock(&st->lock);
    bool changed = strcmp(st->region, region) != 0;
    if (changed)
        snprintf(st->region, sizeof(st->region), "%s", region);
    pthread_mutex_unlock(&st->lock);
    return true;
}

/* Performs rq with credentials, signing and retries (retryable answers and transport errors when `idempotent`,
 * ExpiredToken once, a region redirect once). `x` (NULL: the body is collected) parses the body of a 2xx answer as
 * `expect`. Returns 0 with *ans for any final answer (check ans->failed), or <0 when none could be had or the body
 * was refused by the parser. */
static int s_call(s_client *c, const s_req *rq, sl__s3_xml *x, sl__s3_doc expect, bool idempotent, s_attempts *a,
                  s_answer *ans) {
    s_store *st = s_st(&c->base);
    for (;;) {
        int rc = s_creds(c, a);
        if (rc == 1)
            continue;
        if (rc < 0)
            return rc;
        rc = s_prepare(c, rq);
        if (rc < 0)
            return rc;
        char what[1200];
        snprintf(what, sizeof(what), "s3://%s/%s", st->bucket, rq->name ? rq->name : st->prefix);
        if (x && (rc = sl__s3_xml_begin(x, expect, what)) < 0)
            return rc;
        sl__http_request req = {.method = rq->method,
                                .url = c->url,
                                .headers = c->scratch->lines,
                                .body = rq->body,
                                .body_len = rq->body_len,
                                .write_fn = x ? sl__s3_xml_write : NULL,
                                .write_ud = x,
                                .body_cap = rq->body_cap,
                                .aside = rq->aside};
        memset(ans, 0, sizeof(*ans));
        rc = sl__http_perform(c->http, &req, &ans->resp);
        if (rc < 0 && x && sl__s3_xml_failed(x)) {
            /* The answer's status decides: an error status's body that is not XML is no reason to stop. */
            if (ans->resp.status >= 200 && ans->resp.status < 300)
                return sl__s3_xml_end(x);
            rc = 0;
        }
        if (rc == SL_EIO) {
            if (idempotent && s_backoff(c, a))
                continue;
            return rc;
        }
        if (rc < 0)
            return rc;
        long status = ans->resp.status;
        if (x) {
            int xrc = sl__s3_xml_end(x);
            if (status >= 200 && status < 300) {
                if (xrc < 0)
                    return xrc;
                if (sl__s3_xml_root(x) == SL__S3_DOC_ERROR) {
                    ans->failed = true;
                    ans->err = sl__s3_xml_error(x);
                }
            } else {
                ans->failed = true;
                ans->err = xrc == 0 && sl__s3_xml_root(x) == SL__S3_DOC_ERROR ? sl__s3_xml_error(x) : NULL;
            }
        } else if (status >= 300 || status < 200) {
            ans->failed = true;
            /* The body is the client's: copy it out before the parser (which needs no copy) is used. */
            size_t bl = ans->resp.body_len < sizeof(c->errbody) - 1 ? ans->resp.body_len : sizeof(c->errbody) - 1;
            if (ans->resp.body && bl)
                memcpy(c->errbody, ans->resp.body, bl);
            c->errbody[bl] = '\0';
            ans->err = s_parse_error(c, c->errbody, bl);
        }
        if (!ans->failed)
            return 0;
        sl__s3_error_class cls = sl__s3_error_classify(ans->err ? ans->err->code : "", status);
        if (cls == SL__S3_ERR_REFRESH && !a->refreshed && c->creds.access_key_id[0]) {
            a->refreshed = true;
            sl__aws_auth_invalidate(st->auth, c->creds.serial);
            continue;
        }
        if ((cls == SL__S3_ERR_REGION || s_region_hint(&ans->resp)) && s_follow_region(c, a, ans))
            continue;
        /* A 200 whose body is an <Error> (Complete, Copy) is retried like its code says, if the request may be. */
        if (cls == SL__S3_ERR_RETRY && idempotent && s_backoff(c, a))
            continue;
        return 0;
    }
}

/* The message for a failed answer of s_call. */
static int s_fail_answer(s_client *c, const char *name, const s_answer *ans) {
    return s_error(c, name, ans->resp.status, ans->err);
}

/* ---- store and client ---- */

static void s_close(sl_store *base) {
    s_store *st = (s_store *)base;
    sl__http_health_destroy(&st->health);
    sl__aws_auth_destroy(st->auth);
    pthread_mutex_destroy(&st->lock);
    free(st->origin);
    free(st->base_path);
    free(st->bucket);
    free(st->prefix);
    for (char **p = st->headers; p && *p; p++)
        free(*p);
    free(st->headers);
    free(st);
}

/* The endpoint as the AWS CLI picks it: --endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's
 * endpoint_url; NULL: AWS's own. */
static const char *s_endpoint_text(const sl_store_options *o, sl__aws_auth *auth) {
    if (o && o->endpoint && *o->endpoint)
        return o->endpoint;
    const char *e = getenv("AWS_ENDPOINT_URL_S3");
    if (e && *e)
        return e;
    e = getenv("AWS_ENDPOINT_URL");
    if (e && *e)
        return e;
    e = sl__aws_auth_endpoint_url(auth);
    return e && *e ? e : NULL;
}

static int s_set_endpoint(s_store *st, const char *e) {
    bool https = strncmp(e, "https://", 8) == 0;
    if (!https && strncmp(e, "http://", 7) != 0)
        return sl__fail(SL_EBADURL, "endpoint '%s' must start with http:// or https://", e);
    st->https = https;
    const char *auth = e + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?#");
    if (!alen)
        return sl__fail(SL_EBADURL, "endpoint '%s' has no host", e);
    if (auth[alen] == '?' || auth[alen] == '#')
        return sl__fail(SL_EBADURL, "endpoint '%s' must not have a query or fragment", e);
    size_t olen = (size_t)(auth - e) + alen;
    const char *path = auth + alen;
    size_t plen = strlen(path);
    while (plen && path[plen - 1] == '/')
        plen--;
    st->origin = strndup(e, olen);
    st->base_path = strndup(path, plen);
    if (!st->origin || !st->base_path)
        return sl__fail(SL_ENOMEM, "out of memory");
    st->path_style = true;
    return 0;
}

int sl__store_s3_open(const sl_url *url, const sl_store_options *opts, sl_store **out) {
    int rc;
    s_store *st = calloc(1, sizeof(*st));
    if (!st)
        return sl__fail(SL_ENOMEM, "out of memory");
    pthread_mutex_init(&st->lock, NULL);
    st->base.vt = &s_vtable;
    st->base.scheme = SL_SCHEME_S3;
    sl__http_health_init(&st->health, 0);
    st->base.health = &st->health;
    st->base.fingerprints_by_lookup = true;
    size_t plen = strlen(url->path);
    st->bucket = strdup(url->bucket);
    st->prefix = malloc(plen + 2);
    if (!st->bucket || !st->prefix) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto on_error;
    }
    memcpy(st->prefix, url->path, plen + 1);
    if (plen && url->path[plen - 1] != '/')
        memcpy(st->prefix + plen, "/", 2);
    size_t nh = 0;
    while (opts && opts->headers && opts->headers[nh])
        nh++;
    if (nh > S_MAX_USER_HEADERS) {
        rc = sl__fail(SL_EINVAL, "at most %d extra headers", S_MAX_USER_HEADERS);
        goto on_error;
    }
    if (nh) {
        if (!(st->headers = calloc(nh + 1, sizeof(char *)))) {
            rc = sl__fail(SL_ENOMEM, "out of memory");
            goto on_error;
        }
        for (size_t i = 0; i < nh; i++) {
            if (!strchr(opts->headers[i], ':') || strpbrk(opts->headers[i], "\r\n")) {
                rc = sl__fail(SL_EINVAL, "header '%s' must look like 'Name: value' on one line", opts->headers[i]);
                goto on_error;
            }
            if (!(st->headers[i] = strdup(opts->headers[i]))) {
                rc = sl__fail(SL_ENOMEM, "out of memory");
                goto on_error;
            }
        }
    }
    sl__aws_auth_options ao = {.anonymous = opts && opts->anonymous, .profile = opts ? opts->s3_profile : NULL};
    if ((rc = sl__aws_auth_new(&ao, &st->auth)) < 0)
        goto on_error;
    const char *region = opts && opts->s3_region && *opts->s3_region ? opts->s3_region : sl__aws_auth_region(st->auth);
    if (!sl__s3_region_of(region, st->region, sizeof(st->region))) {
        rc = sl__fail(SL_EINVAL, "'%s' is not a region name (lower-case letters, digits and '-')", region);
        goto on_error;
    }
    const char *endpoint = s_endpoint_text(opts, st->auth);
    if (endpoint) {
        if ((rc = s_set_endpoint(st, endpoint)) < 0)
            goto on_error;
    } else {
        st->https = true;
        st->path_style = (opts && opts->s3_path_style) || strchr(st->bucket, '.') != NULL;
    }
    st->retry.max_attempts = !opts || !opts->retries ? 0 : opts->retries == SL_NO_RETRIES ? 1 : opts->retries + 1;
    st->retry.initial_delay_ms = opts ? opts->retry_initial_ms : 0;
    st->retry.max_delay_ms = opts ? opts->retry_max_ms : 0;
    st->retry.deadline_ms = opts ? opts->retry_deadline_ms : 0;
    sl__retry_defaults(&st->retry);
    st->health.deadline_ms = st->retry.deadline_ms;
    uint64_t chunk = opts && opts->upload_chunk_bytes ? opts->upload_chunk_bytes : S_DEFAULT_CHUNK;
    st->chunk = (chunk + S_UPLOAD_QUANTUM - 1) / S_UPLOAD_QUANTUM * S_UPLOAD_QUANTUM;
    if (st->chunk > S_MAX_PART)
        st->chunk = S_MAX_PART;
    *out = &st->base;
    return 0;

on_error:
    s_close(&st->base);
    return rc;
}

static void s_client_destroy(sl_client *base) {
    s_client *c = (s_client *)base;
    sl__http_destroy(c->http);
    sl__s3_xml_destroy(c->xml);
    sl__sigv4_key_cache_wipe(&c->keys);
    OPENSSL_cleanse(c->creds.access_key_id, sizeof(c->creds.access_key_id));
    OPENSSL_cleanse(c->creds.secret_access_key, sizeof(c->creds.secret_access_key));
    OPENSSL_cleanse(c->creds.session_token, c->token_used);
    free(c->url);
    free(c->path);
    free(c->name);
    if (c->scratch) {
        /* It held the session token, after lines of a fixed size. */
        size_t used = sizeof(c->scratch->amz) - SL__AWS_TOKEN_CAP + c->token_used;
        OPENSSL_cleanse(c->scratch->amz, used < sizeof(c->scratch->amz) ? used : sizeof(c->scratch->amz));
        free(c->scratch);
    }
    if (c->up)
        munmap(c->up, c->up_map);
    if (c->up_budget)
        sl__pool_unreserve(s_st(base)->budget, c->up_budget);
    free(c);
}

static int s_client_new(sl_store *store, sl_client **out) {
    s_client *c = calloc(1, sizeof(*c));
    if (!c)
        return sl__fail(SL_ENOMEM, "out of memory");
    c->base.store = store;
    c->url = malloc(S_URL_CAP);
    c->path = malloc(S_PATH_CAP);
    c->name = malloc(4096);
    c->scratch = malloc(sizeof(*c->scratch));
    sl__http_options ho = {.health = &s_st(&c->base)->health, .thread_owned = true};
    c->http = sl__http_new(&ho);
    c->xml = sl__s3_xml_new();
    if (!c->url || !c->path || !c->name || !c->scratch || !c->http || !c->xml) {
        s_client_destroy(&c->base);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    c->rng = (uint64_t)(uintptr_t)c ^ (uint64_t)sl__now_ms() * 0x9E3779B97F4A7C15ull;
    *out = &c->base;
    return 0;
}

/* ---- fingerprints ---- */

/* As store_gcs.c's: the recorded "<fingerprint> out_size=N out_crc32c=X" is given back only while the object has that
 * size, and that CRC32C when it has a full-object one (a store without checksums has none; the metadata landed with
 * the bytes in one request, so it vouches for them until the object is replaced). */
static const char *s_fp_checked(const sl_object *obj, const char *value, char *buf, size_t cap) {
    if (!value || !value[0])
        return NULL;
    const char *at = NULL;
    for (const char *p = strstr(value, " out_size="); p; p = strstr(p + 1, " out_size="))
        at = p;
    if (!at || at == value || (size_t)(at - value) >= cap)
        return NULL;
    uint64_t size;
    uint32_t crc;
    int used = 0, fields;
    /* "out_size=N out_crc32c=X" (a PutObject), or "out_size=N" alone (a multipart upload: see s_create_upload). */
    fields = sscanf(at, " out_size=%" SCNu64 "%n out_crc32c=%8" SCNx32 "%n", &size, &used, &crc, &used);
    if (fields < 1 || at[used] != '\0')
        return NULL;
    if (size != obj->size || (fields == 2 && obj->has_crc32c && crc != obj->crc32c))
        return NULL;
    memcpy(buf, value, (size_t)(at - value));
    buf[at - value] = '\0';
    return buf;
}

/* ---- stat ---- */

/* An HTTP date (IMF-fixdate, the only form S3 sends: "Sun, 06 Nov 1994 08:49:37 GMT") in ns since the epoch, 0 if
 * it is not one. Read by hand into the ISO form the listing's parser takes: strptime's locale-aware %a and %b cost
 * more than the rest of reading an answer's headers. */
static int64_t s_http_time(const char *s) {
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    /* "Www, DD Mon YYYY HH:MM:SS GMT": 29 characters. */
    if (!s || strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        s[25] != ' ' || strcmp(s + 26, "GMT") != 0)
        return 0;
    int mo = 0;
    while (mo < 12 && memcmp(months + 3 * mo, s + 8, 3) != 0)
        mo++;
    if (mo == 12)
        return 0;
    char iso[21]; /* YYYY-MM-DDTHH:MM:SSZ */
    memcpy(iso, s + 12, 4);
    iso[4] = '-';
    iso[5] = (char)('0' + (mo + 1) / 10);
    iso[6] = (char)('0' + (mo + 1) % 10);
    iso[7] = '-';
    memcpy(iso + 8, s + 5, 2);
    iso[10] = 'T';
    memcpy(iso + 11, s + 17, 8);
    iso[19] = 'Z';
    iso[20] = '\0';
    return sl__s3_parse_time(iso, 20);
}

/* The object an answer's headers describe (HeadObject, a whole GetObject). */
static void s_object_from_headers(const sl__http_response *r, sl_object *out, char *fp, size_t fp_cap) {
    memset(out, 0, sizeof(*out));
    out->size = r->content_length >= 0 ? (uint64_t)r->content_length : 0;
    out->mtime_ns = s_http_time(r->last_modified);
    out->generation = r->etag[0] ? s_etag_gen(r->etag) : 0;
    size_t cl = strlen(r->amz_crc32c);
    if (cl && !strchr(r->amz_crc32c, '-'))
        out->has_crc32c = sl__s3_crc32c_parse(r->amz_crc32c, cl, &out->crc32c);
    char etag[SL__S3_ETAG_MAX + 1];
    bool md5 = false;
    /* An ETag of 32 hex digits is the MD5 of the bytes only for an object that is not encrypted with SSE-KMS or
     * SSE-C on AWS; S3-compatible stores that encrypt at rest (SSE-S3 included) may give other ETags: any encryption
     * header, and the ETag is not taken for an MD5. */
    if (r->etag[0] && sl__s3_etag_parse(r->etag, strlen(r->etag), etag, &md5, out->md5) && md5 && !r->amz_sse[0] &&
        !r->amz_sse_customer[0])
        out->has_md5 = true;
    if (fp)
        out->source_fingerprint = s_fp_checked(out, r->amz_meta_source, fp, fp_cap);
}

/* HeadObject of full name `name` in `bucket` (NULL: the store's): 0 with *out and the answer's ETag in etag
 * (SL__S3_ETAG_MAX + 3 bytes, NULL ok). */
static int s_head_in(s_client *c, const char *bucket, const char *name, bool aside, sl_object *out, char *etag) {
    const char *hdr[] = {"x-amz-checksum-mode: ENABLED", NULL};
    s_req rq = {.method = "HEAD", .bucket = bucket, .name = name, .headers = hdr, .aside = aside};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    s_answer ans;
    int rc = s_call(c, &rq, NULL, SL__S3_DOC_NONE, true, &a, &ans);
    if (rc < 0)
        return rc;
    if (ans.failed)
        return s_fail_answer(c, name, &ans);
    s_object_from_headers(&ans.resp, out, c->fp, sizeof(c->fp));
    if (etag)
        snprintf(etag, SL__S3_ETAG_MAX + 3, "%s", ans.resp.etag);
    return 0;
}

static int s_head(s_client *c, const char *name, bool aside, sl_object *out, char *etag) {
    return s_head_in(c, NULL, name, aside, out, etag);
}

static int s_stat(sl_client *base, const char *key, sl_object *out) {
    s_client *c = (s_client *)base;
    int rc = s_full_name(c, key, c->name, 4096);
    if (rc == 0)
        rc = s_head(c, c->name, false, out, NULL);
    if (rc == 0) {
        out->key = key;
        out->key_len = strlen(key);
    }
    return rc;
}

/* ---- listing ---- */

typedef struct s_lister {
    sl_lister base;
    s_client *client;
    sl__s3_xml *xml; /* the lister's own: a stat between pages (fingerprints) uses the client's */
    bool recursive;
    bool fingerprints;
    size_t page_size;
    char *start_after; /* full name */
    char *token;
    bool started, last_page;
    int failed;
    unsigned long pages;
    sl__token_cycle cycle;
    char key[4096];
    char fp[S_FP_CAP];
} s_lister;

static int s_fetch_page(s_lister *l) {
    s_client *c = l->client;
    s_store *st = s_st(&c->base);
    sl__sigv4_param q[8];
    size_t nq = 0;
    char num[32];
    snprintf(num, sizeof(num), "%zu", l->page_size);
    q[nq++] = (sl__sigv4_param){"list-type", "2"};
    q[nq++] = (sl__sigv4_param){"encoding-type", "url"};
    q[nq++] = (sl__sigv4_param){"max-keys", num};
    if (st->prefix[0])
        q[nq++] = (sl__sigv4_param){"prefix", st->prefix};
    if (!l->recursive)
        q[nq++] = (sl__sigv4_param){"delimiter", "/"};
    if (l->token)
        q[nq++] = (sl__sigv4_param){"continuation-token", l->token};
    else if (l->start_after)
        q[nq++] = (sl__sigv4_param){"start-after", l->start_after};
    s_req rq = {.method = "GET", .query = q, .nq = nq, .body_cap = (size_t)SL__S3_XML_BODY_CAP};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    s_answer ans;
    int rc = s_call(c, &rq, l->xml, SL__S3_DOC_LIST, true, &a, &ans);
    if (rc < 0)
        return rc;
    if (ans.failed) {
        if (ans.resp.status == 404 && (!ans.err || strcmp(ans.err->code, "NoSuchBucket") == 0 || !ans.err->code[0]))
            return sl__fail(SL_ENOENT, "s3://%s: no such bucket (check the name, or create it first)", st->bucket);
        return s_fail_answer(c, NULL, &ans);
    }
    if (sl__s3_xml_root(l->xml) != SL__S3_DOC_LIST)
        return sl__fail(SL_ECORRUPT, "s3://%s: the listing's answer is <%s>, not ListBucketResult", st->bucket,
                        sl__s3_doc_name(sl__s3_xml_root(l->xml)));
    l->pages++;
    l->started = true;
    const char *token = sl__s3_xml_list_token(l->xml);
    bool truncated = sl__s3_xml_list_truncated(l->xml);
    if (truncated && !token) {
        l->failed = SL_ECORRUPT;
        return sl__fail(SL_ECORRUPT, "%s: the listing is truncated but gives no continuation token (%lu pages read)",
                        sl_store_url(&st->base), l->pages);
    }
    if (truncated && (rc = sl__token_cycle_seen(&l->cycle, token)) != 0) {
        if (rc < 0)
            return rc;
        /* Following it would go round the same pages forever. */
        l->failed = SL_ECORRUPT;
        return sl__fail(SL_ECORRUPT,
                        "%s: the server repeated a continuation token (its pages go round in a cycle; %lu pages "
                        "read); listing stopped",
                        sl_store_url(&st->base), l->pages);
    }
    free(l->token);
    l->token = NULL;
    if (truncated) {
        if (!(l->token = strdup(token)))
            return sl__fail(SL_ENOMEM, "out of memory");
    } else {
        l->last_page = true;
    }
    return 0;
}

static void s_list_close(sl_lister *base) {
    s_lister *l = (s_lister *)base;
    sl__s3_xml_destroy(l->xml);
    free(l->start_after);
    free(l->token);
    sl__token_cycle_free(&l->cycle);
    free(l);
}

static int s_list_open(sl_client *base, const sl_list_options *opts, sl_lister **out) {
    s_client *c = (s_client *)base;
    s_store *st = s_st(base);
    s_lister *l = calloc(1, sizeof(*l));
    if (!l)
        return sl__fail(SL_ENOMEM, "out of memory");
    l->base.client = base;
    l->client = c;
    l->recursive = opts->recursive;
    l->fingerprints = opts->fingerprints;
    l->page_size = opts->page_size && opts->page_size <= 1000 ? opts->page_size : 1000;
    int rc = 0;
    if (!(l->xml = sl__s3_xml_new()))
        rc = SL_ENOMEM;
    if (rc == 0 && opts->start_after) {
        size_t n = strlen(st->prefix) + strlen(opts->start_after) + 1;
        if ((l->start_after = malloc(n)) != NULL)
            snprintf(l->start_after, n, "%s%s", st->prefix, opts->start_after);
        else
            rc = sl__fail(SL_ENOMEM, "out of memory");
    }
    if (rc == 0)
        rc = s_fetch_page(l);
    if (rc < 0) {
        s_list_close(&l->base);
        return rc;
    }
    *out = &l->base;
    return 0;
}

static int s_list_next(sl_lister *base, sl_object *out) {
    s_lister *l = (s_lister *)base;
    s_store *st = s_st(base->client);
    size_t plen = strlen(st->prefix);
    if (l->failed)
        return sl__fail(l->failed, "%s: listing stopped (see the error before)", sl_store_url(&st->base));
    for (;;) {
        const char *name;
        size_t nlen;
        sl__s3_entry info;
        int got = sl__s3_xml_list_next(l->xml, &name, &nlen, out, &info);
        if (got < 0)
            return got;
        if (got == 0) {
            if (l->last_page)
                return 0;
            int rc = s_fetch_page(l);
            if (rc < 0)
                return rc;
            continue;
        }
        if (strncmp(name, st->prefix, plen) != 0) {
            char shown[256];
            sl_text_escape(shown, sizeof(shown), name, nlen < 120 ? nlen : 120);
            l->failed = SL_ECORRUPT;
            return sl__fail(SL_ECORRUPT,
                            "%s: the server listed '%s%s', which is not under the prefix asked for; listing stopped",
                            sl_store_url(&st->base), shown, nlen > 120 ? "..." : "");
        }
        if (nlen <= plen || nlen - plen >= sizeof(l->key))
            continue;
        memcpy(l->key, name + plen, nlen - plen + 1);
        if (l->start_after && strcmp(name, l->start_after) <= 0)
            continue;
        if (!out->is_prefix && info.etag && info.etag[0])
            out->generation = s_etag_gen(info.etag);
        if (l->fingerprints && !out->is_prefix) {
            /* Listings carry no metadata: the object's own headers do (one HeadObject; see the header). */
            sl_object h;
            int rc = s_head(l->client, name, false, &h, NULL);
            if (rc == SL_ENOENT)
                continue; /* deleted since it was listed */
            if (rc < 0)
                return rc;
            if (h.source_fingerprint) {
                snprintf(l->fp, sizeof(l->fp), "%s", h.source_fingerprint);
                out->source_fingerprint = l->fp;
            }
            out->size = h.size;
            out->generation = h.generation;
            out->has_crc32c = h.has_crc32c;
            out->crc32c = h.crc32c;
        }
        out->key = l->key;
        out->key_len = nlen - plen;
        return 1;
    }
}

/* ---- delete ---- */

static int s_delete_name(s_client *c, const char *name, bool aside) {
    s_req rq = {.method = "DELETE", .name = name, .aside = aside};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    s_answer ans;
    int rc = s_call(c, &rq, NULL, SL__S3_DOC_NONE, true, &a, &ans);
    if (rc < 0)
        return rc;
    if (ans.failed && !(ans.resp.status == 404 && a.base.retries > 0))
        return s_fail_answer(c, name, &ans);
    return 0;
}

static int s_del(sl_client *base, const char *key) {
    s_client *c = (s_client *)base;
    int rc = s_full_name(c, key, c->name, 4096);
    return rc < 0 ? rc : s_delete_name(c, c->name, false);
}

/* ---- batch deletes (DeleteObjects) ---- */

typedef struct s_batch {
    s_client *c;
    const char *const *keys;
    size_t n;
    unsigned char *state; /* per key: 0 not sent, 1 in the body, 2 reported */
    sl__delete_done_fn done;
    void *ctx;
} s_batch;

/* One <Error> (or, not quiet, <Deleted>) of the answer: the key it names, among those sent and not yet reported. */
static int s_batch_outcome(void *ud, const sl__s3_deleted *o) {
    s_batch *b = ud;
    s_store *st = s_st(&b->c->base);
    size_t plen = strlen(st->prefix);
    if (o->key_len < plen || memcmp(o->key, st->prefix, plen) != 0)
        return 0; /* not a key of this batch: nothing to report it as */
    for (size_t i = 0; i < b->n; i++) {
        if (b->state[i] != 1 || strcmp(b->keys[i], o->key + plen) != 0)
            continue;
        b->state[i] = 2;
        if (!o->code) {
            b->done(b->ctx, i, 0, NULL);
            return 0;
        }
        sl__s3_error e = {0};
        snprintf(e.code, sizeof(e.code), "%s", o->code);
        snprintf(e.message, sizeof(e.message), "%s", o->message ? o->message : "");
        int rc = s_error(b->c, o->key, 200, &e);
        b->done(b->ctx, i, strcmp(o->code, "NoSuchKey") == 0 ? 0 : rc,
                strcmp(o->code, "NoSuchKey") == 0 ? NULL : sl_last_error());
        return 0;
    }
    return 0;
}

/* Deletes up to SL__DELETE_BATCH_MAX keys in one quiet DeleteObjects (S3 names only the keys it failed to delete;
 * every other key sent is gone). A key the request body cannot carry (a control character XML 1.0 refuses) goes alone
 * (DeleteObject). Repeating the request after a lost answer is harmless: a key already gone counts as deleted. */
static int s_del_batch(sl_client *base, const char *const *keys, size_t n, sl__delete_done_fn done, void *ctx) {
    s_client *c = (s_client *)base;
    s_store *st = s_st(base);
    size_t cap = 256, plen = strlen(st->prefix);
    for (size_t i = 0; i < n; i++)
        cap += (plen + strlen(keys[i])) * 6 + 64;
    char *body = malloc(cap);
    unsigned char *state = calloc(n ? n : 1, 1);
    if (!body || !state) {
        free(body);
        free(state);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    s_batch b = {.c = c, .keys = keys, .n = n, .state = state, .done = done, .ctx = ctx};
    sl__s3_body xb;
    char what[1100];
    snprintf(what, sizeof(what), "s3://%s", st->bucket);
    int rc = sl__s3_delete_begin(&xb, body, cap, true);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int frc = s_full_name(c, keys[i], c->name, 4096);
        if (frc == 0 && sl__s3_delete_add(&xb, c->name, strlen(c->name), what) == 0) {
            state[i] = 1;
            continue;
        }
        if (frc == 0)
            frc = s_delete_name(c, c->name, false);
        state[i] = 2;
        done(ctx, i, frc, frc < 0 ? sl_last_error() : NULL);
    }
    if (rc == 0 && xb.count) {
        if ((rc = sl__s3_delete_end(&xb)) == 0) {
            unsigned char md5[16];
            unsigned int ml = 0;
            char md5_line[64] = "Content-MD5: ";
            if (EVP_Digest(body, xb.len, md5, &ml, sl__md_md5(), NULL) != 1)
                rc = sl__fail(SL_EINTERNAL, "MD5 failed");
            else
                md5_line[13 + EVP_EncodeBlock((unsigned char *)md5_line + 13, md5, 16)] = '\0';
            const char *hdr[] = {"Content-Type: application/xml", md5_line, NULL};
            sl__sigv4_param q[] = {{"delete", NULL}};
            s_req rq = {.method = "POST", .query = q, .nq = 1, .headers = hdr, .body = body, .body_len = xb.len};
            s_attempts a = {.base.started_ms = sl__now_ms()};
            s_answer ans;
            if (rc == 0)
                rc = s_call(c, &rq, c->xml, SL__S3_DOC_DELETE, true, &a, &ans);
            if (rc == 0 && ans.failed)
                rc = s_fail_answer(c, NULL, &ans);
            if (rc == 0)
                rc = sl__s3_xml_deleted_each(c->xml, s_batch_outcome, &b);
            for (size_t i = 0; rc == 0 && i < n; i++)
                if (state[i] == 1) {
                    state[i] = 2;
                    done(ctx, i, 0, NULL);
                }
        }
    }
    free(body);
    free(state);
    return rc;
}

/* ---- reads ---- */

typedef struct s_reader {
    sl_reader base;
    s_client *client;
    char *name;
    char etag[SL__S3_ETAG_MAX + 3]; /* pinned after the first answer (as sent, quotes included) */
    bool pinned_by_caller;          /* read_open_gen: a changed object is "gone" (SL_ENOENT) */
    uint64_t offset, end, size, skip, body_end;
    bool whole;
    bool has_crc, has_md5;
    uint32_t expected_crc, crc;
    unsigned char expected_md5[16];
    EVP_MD_CTX *md5;
    bool open;
    int final_rc;
    s_attempts attempts;
    uint64_t progress_mark;
} s_reader;

static int s_reader_accept(s_reader *r, const sl__http_response *resp, sl_object *info) {
    s_client *c = r->client;
    s_store *st = s_st(&c->base);
    if (r->etag[0] && resp->etag[0] && strcmp(resp->etag, r->etag) != 0)
        return sl__fail(SL_ECORRUPT,
                        "s3://%s/%s: the server answered with ETag %s a read pinned to %s (not accepted: two versions "
                        "would be mixed)",
                        st->bucket, r->name, resp->etag, r->etag);
    if (!r->etag[0])
        snprintf(r->etag, sizeof(r->etag), "%s", resp->etag);
    uint64_t first, last, total = UINT64_MAX;
    if (resp->status == 206) {
        if (!sl__content_range_parse(resp->content_range, &first, &last, &total) || first != r->offset)
            return sl__fail(SL_EIO, "s3://%s/%s: server answered a different range (%s)", st->bucket, r->name,
                            resp->content_range);
        if (resp->content_length >= 0 && (uint64_t)resp->content_length != last - first + 1)
            return sl__fail(SL_ECORRUPT, "s3://%s/%s: the answer holds %" PRId64 " bytes but says they are %s",
                            st->bucket, r->name, resp->content_length, resp->content_range);
        r->skip = 0;
        r->body_end = last + 1;
    } else {
        if (resp->content_length >= 0)
            total = (uint64_t)resp->content_length;
        r->skip = r->offset;
        r->body_end = total;
        if (r->whole) {
            sl_object o;
            s_object_from_headers(resp, &o, NULL, 0);
            if (!r->has_crc && o.has_crc32c) {
                r->has_crc = true;
                r->expected_crc = o.crc32c;
            }
            if (!r->has_crc && o.has_md5 && !r->md5) {
                r->md5 = EVP_MD_CTX_new();
                if (!r->md5 || EVP_DigestInit_ex2(r->md5, sl__md_md5(), NULL) != 1)
                    return sl__fail(SL_ENOMEM, "out of memory (MD5)");
                r->has_md5 = true;
                memcpy(r->expected_md5, o.md5, 16);
            }
        }
    }
    if (total != UINT64_MAX) {
        if (r->size != UINT64_MAX && r->size != total)
            return sl__fail(SL_ECORRUPT,
                            "s3://%s/%s: one answer says the object has %" PRIu64 " bytes, another %" PRIu64,
                            st->bucket, r->name, r->size, total);
        r->size = total;
        if (r->offset > total)
            return sl__fail(SL_ERANGE, "s3://%s/%s: offset %" PRIu64 " is past the end (%" PRIu64 " bytes)", st->bucket,
                            r->name, r->offset, total);
        if (r->end == UINT64_MAX || r->end > total)
            r->end = total;
    }
    if (info) {
        s_object_from_headers(resp, info, NULL, 0);
        info->size = total;
        info->has_crc32c = r->has_crc;
        info->crc32c = r->expected_crc;
    }
    return 0;
}

static int s_reader_connect(s_reader *r, sl_object *info) {
    s_client *c = r->client;
    s_store *st = s_st(&c->base);
    for (;;) {
        char range[96] = "", ifm[SL__S3_ETAG_MAX + 16] = "";
        const char *extra[4] = {NULL, NULL, NULL, NULL};
        size_t ne = 0;
        if (r->whole && r->offset == 0)
            extra[ne++] = "x-amz-checksum-mode: ENABLED";
        if (r->offset > 0 || r->end != UINT64_MAX) {
            if (r->end != UINT64_MAX)
                snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, r->offset, r->end - 1);
            else
                snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", r->offset);
            extra[ne++] = range;
        }
        if (r->etag[0]) {
            snprintf(ifm, sizeof(ifm), "If-Match: %s", r->etag);
            extra[ne++] = ifm;
        }
        int rc = s_creds(c, &r->attempts);
        if (rc == 1)
            continue;
        if (rc < 0)
            return rc;
        s_req rq = {.method = "GET", .name = r->name, .headers = extra};
        if ((rc = s_prepare(c, &rq)) < 0)
            return rc;
        sl__http_request req = {.method = "GET", .url = c->url, .headers = c->scratch->lines};
        sl__http_response resp;
        rc = sl__http_stream_open(c->http, &req, &resp);
        if (rc == SL_EIO) {
            if (s_backoff(c, &r->attempts))
                continue;
            return rc;
        }
        if (rc < 0)
            return rc;
        if (resp.status == 200 || resp.status == 206) {
            rc = s_reader_accept(r, &resp, info);
            if (rc < 0) {
                sl__http_stream_close(c->http);
                return rc;
            }
            r->open = true;
            return 0;
        }
        size_t blen = 0;
        int64_t n;
        while (blen < sizeof(c->errbody) - 1 &&
               (n = sl__http_stream_read(c->http, c->errbody + blen, sizeof(c->errbody) - 1 - blen)) > 0)
            blen += (size_t)n;
        c->errbody[blen] = '\0';
        sl__http_stream_close(c->http);
        s_answer ans = {.resp = resp, .failed = true};
        ans.err = s_parse_error(c, c->errbody, blen);
        sl__s3_error_class cls = sl__s3_error_classify(ans.err ? ans.err->code : "", resp.status);
        if (cls == SL__S3_ERR_REFRESH && !r->attempts.refreshed && c->creds.access_key_id[0]) {
            r->attempts.refreshed = true;
            sl__aws_auth_invalidate(st->auth, c->creds.serial);
            continue;
        }
        if ((cls == SL__S3_ERR_REGION || s_region_hint(&resp)) && s_follow_region(c, &r->attempts, &ans))
            continue;
        if (cls == SL__S3_ERR_RETRY && s_backoff(c, &r->attempts))
            continue;
        if (cls == SL__S3_ERR_PRECONDITION && r->etag[0]) {
            if (r->pinned_by_caller)
                return sl__fail(SL_ENOENT, "s3://%s/%s: the object was replaced since it was listed (ETag %s gone)",
                                st->bucket, r->name, r->etag);
            return sl__fail(SL_ECORRUPT,
                            "s3://%s/%s: the object was replaced while it was read (its ETag is no longer %s); read "
                            "it again",
                            st->bucket, r->name, r->etag);
        }
        return s_fail_answer(c, r->name, &ans);
    }
}

static void s_read_close(sl_reader *base) {
    s_reader *r = (s_reader *)base;
    if (r->open)
        sl__http_stream_close(r->client->http);
    EVP_MD_CTX_free(r->md5);
    free(r->name);
    free(r);
}

static int s_read_open_at(sl_client *base, const char *key, uint64_t offset, uint64_t length, int64_t generation,
                          sl_object *info, sl_reader **out) {
    s_client *c = (s_client *)base;
    s_store *st = s_st(base);
    int rc = s_full_name(c, key, c->name, 4096);
    if (rc < 0)
        return rc;
    s_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->name = strdup(c->name))) {
        free(r);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    r->base.client = base;
    r->client = c;
    r->offset = offset;
    r->end = length == SL_LENGTH_TO_END || length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
    r->size = r->body_end = UINT64_MAX;
    r->whole = offset == 0 && length == SL_LENGTH_TO_END;
    r->final_rc = 1;
    r->attempts.base.started_ms = sl__now_ms();
    r->progress_mark = offset;
    if (generation) {
        /* The ETag whose generation the caller saw: a read of anything else is refused by the server (If-Match). */
        sl_object h;
        if ((rc = s_head(c, r->name, false, &h, r->etag)) == 0 && h.generation != generation)
            rc = sl__fail(SL_ENOENT, "s3://%s/%s: the object was replaced since it was listed", st->bucket, r->name);
        r->pinned_by_caller = true;
    }
    if (rc == 0 && r->end == offset) {
        sl_object obj;
        rc = s_head(c, r->name, false, &obj, NULL);
        if (rc == 0 && offset > obj.size)
            rc = sl__fail(SL_ERANGE, "s3://%s/%s: offset %" PRIu64 " is past the end (%" PRIu64 " bytes)", st->bucket,
                          r->name, offset, obj.size);
        if (rc == 0 && info)
            *info = obj;
    } else if (rc == 0) {
        rc = s_reader_connect(r, info);
        if (rc == SL_ERANGE) {
            /* S3 answers 416 to any range of an empty object and to an offset at the very end: an empty read. */
            sl_object obj;
            int src = s_head(c, r->name, false, &obj, NULL);
            if (src == 0 && offset == obj.size) {
                r->end = offset;
                rc = 0;
                if (info)
                    *info = obj;
            } else {
                rc = sl__fail(SL_ERANGE, "s3://%s/%s: offset %" PRIu64 " is past the end of the object", st->bucket,
                              r->name, offset);
            }
        }
    }
    if (rc < 0) {
        s_read_close(&r->base);
        return rc;
    }
    if (info) {
        info->key = key;
        info->key_len = strlen(key);
        info->source_fingerprint = NULL;
    }
    *out = &r->base;
    return 0;
}

static int s_read_open(sl_client *base, const char *key, uint64_t offset, uint64_t length, sl_object *info,
                       sl_reader **out) {
    return s_read_open_at(base, key, offset, length, 0, info, out);
}

static int s_read_open_gen(sl_client *base, const char *key, uint64_t offset, uint64_t length, int64_t generation,
                           sl_reader **out) {
    return s_read_open_at(base, key, offset, length, generation, NULL, out);
}

static int s_read_end(s_reader *r) {
    if (r->final_rc != 1)
        return r->final_rc;
    s_client *c = r->client;
    s_store *st = s_st(&c->base);
    int rc = 0;
    if (r->open) {
        bool more_expected = r->skip > 0 || (r->body_end != UINT64_MAX && r->body_end > r->end);
        unsigned char tail[256];
        uint64_t extra = 0;
        int64_t n;
        while ((n = sl__http_stream_read(c->http, tail, sizeof(tail))) > 0 && extra < 65536)
            extra += (uint64_t)n;
        sl__http_stream_close(c->http);
        r->open = false;
        if (extra && !more_expected)
            rc = sl__fail(SL_ECORRUPT,
                          "s3://%s/%s: the server sent more than the %" PRIu64 " bytes it announced (not accepted)",
                          st->bucket, r->name, r->end);
    }
    if (rc == 0 && r->whole && r->size != UINT64_MAX && r->offset != r->size)
        rc = sl__fail(SL_ECORRUPT,
                      "s3://%s/%s: received %" PRIu64 " bytes but the object has %" PRIu64
                      ": the answer was cut short or padded (not accepted)",
                      st->bucket, r->name, r->offset, r->size);
    if (rc == 0 && r->whole && r->has_crc && r->crc != r->expected_crc)
        rc = sl__fail(SL_ECORRUPT, "s3://%s/%s: CRC32C mismatch: received data has %08x, the object has %08x",
                      st->bucket, r->name, r->crc, r->expected_crc);
    if (rc == 0 && r->whole && !r->has_crc && r->has_md5 && r->md5) {
        unsigned char got[16];
        unsigned int gl = 0;
        EVP_DigestFinal_ex(r->md5, got, &gl);
        if (gl != 16 || memcmp(got, r->expected_md5, 16) != 0)
            rc = sl__fail(SL_ECORRUPT, "s3://%s/%s: MD5 mismatch: received data is not what its ETag says", st->bucket,
                          r->name);
    }
    r->final_rc = rc;
    return rc;
}

static int64_t s_read(sl_reader *base, void *buf, size_t cap) {
    s_reader *r = (s_reader *)base;
    s_client *c = r->client;
    s_store *st = s_st(&c->base);
    while (r->offset < r->end) {
        if (!r->open) {
            int rc = s_reader_connect(r, NULL);
            if (rc < 0)
                return rc;
            continue;
        }
        bool dropping = r->skip > 0;
        uint64_t want = dropping ? r->skip : r->end - r->offset;
        int64_t n = sl__http_stream_read(c->http, buf, want < cap ? (size_t)want : cap);
        if (n > 0 && dropping) {
            r->skip -= (uint64_t)n;
            continue;
        }
        if (n > 0) {
            if (r->whole) {
                if (r->has_crc)
                    r->crc = sl__crc32c_update(r->crc, buf, (size_t)n);
                else if (r->md5)
                    EVP_DigestUpdate(r->md5, buf, (size_t)n);
            }
            r->offset += (uint64_t)n;
            return n;
        }
        sl__http_stream_close(c->http);
        r->open = false;
        if (n == 0 && r->end == UINT64_MAX && !dropping)
            break;
        if (n < 0 && n != SL_EIO)
            return n;
        s_progressed(&r->attempts, &r->progress_mark, r->offset);
        if (!s_backoff(c, &r->attempts)) {
            if (sl__http_aborted())
                return sl__fail(SL_ECANCELED, "s3://%s/%s: download stopped at byte %" PRIu64 ": the job is stopping",
                                st->bucket, r->name, r->offset);
            char why[1024];
            snprintf(why, sizeof(why), "%s", n < 0 ? sl_last_error() : "the answer ended early");
            return sl__fail(SL_EIO, "s3://%s/%s: download stopped at byte %" PRIu64 ": %s (%u attempts in a row)",
                            st->bucket, r->name, r->offset, why, r->attempts.base.retries + 1);
        }
    }
    return s_read_end(r);
}

/* ---- writes ---- */

typedef struct s_part {
    char etag[SL__S3_ETAG_MAX + 3];
    uint32_t crc;
} s_part;

typedef struct s_writer {
    sl_writer base;
    s_client *client;
    char *name;
    size_t len;         /* bytes buffered */
    uint64_t sent;      /* bytes in parts uploaded */
    uint64_t part_size; /* the buffer's target: a whole part */
    uint64_t size_hint;
    size_t used;       /* the most bytes the buffer held at once */
    uint32_t crc;      /* of everything written */
    uint32_t part_crc; /* of the buffered bytes */
    int64_t if_gen;    /* -1: no precondition */
    char *upload_id;   /* multipart upload, NULL until the first part */
    s_part *parts;
    unsigned nparts, parts_cap;
    char *fingerprint;
} s_writer;

static size_t s_map_size(size_t data) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (data + page - 1) / page * page;
}

static int s_remap(s_client *c, size_t data) {
    size_t want = s_map_size(data);
    if (want != c->up_map) {
        void *p = c->up ? mremap(c->up, c->up_map, want, MREMAP_MAYMOVE)
                        : mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return sl__fail_errno(errno, "no memory for a %zu-byte upload buffer", want);
        c->up = p;
        c->up_map = want;
    }
    c->up_data = data;
    return 0;
}

static size_t s_quanta(uint64_t n) {
    return (size_t)((n + S_UPLOAD_QUANTUM - 1) / S_UPLOAD_QUANTUM * S_UPLOAD_QUANTUM);
}

/* The smallest part but the last that sluice sends: S3's minimum (5 MiB), or the upload chunk when that is smaller
 * (a store that takes small parts, told so by --upload-chunk). */
static size_t s_min_part(const s_store *st) {
    return (size_t)(st->chunk < S_MIN_PART ? st->chunk : S_MIN_PART);
}

/* Makes the buffer at least `need` bytes (at most a part). With a budget, a writer's first buffer is a whole minimum
 * part (s_min_part), waited for: the job promised that much to each writer (sl__store_memory.writer_min_bytes), so a
 * writer can always fill a part that S3 takes. Room beyond it is taken only from what the budget can spare now
 * (doubling, then less); when there is none, the caller sends what it holds as a part (s_write) rather than wait
 * for memory that other writers hold. Returns 0 when the room grew (or was enough), 1 when no more can be had now,
 * <0 on error. */
static int s_grow(s_client *c, size_t need, size_t part) {
    s_store *st = s_st(&c->base);
    size_t have = c->up_data;
    if (need <= have)
        return 0;
    size_t target = s_quanta(need > 2 * (uint64_t)have ? need : 2 * (uint64_t)have);
    if (target > part)
        target = s_quanta(part);
    if (!st->budget)
        return s_remap(c, target);
    if (!c->up_budget) {
        size_t min = s_min_part(st), first = s_map_size(min);
        if (!sl__pool_reserve(st->budget, first))
            return sl__fail(SL_ECANCELED, "s3://%s: no upload buffer: the job is stopping", st->bucket);
        c->up_budget = first;
        int rc = s_remap(c, min);
        if (rc < 0) {
            sl__pool_unreserve(st->budget, first);
            c->up_budget = 0;
            return rc;
        }
        if (need <= c->up_data)
            return 0;
        have = c->up_data;
        if (target < have)
            target = have;
    }
    while (target > have) {
        size_t extra = s_map_size(target) > c->up_budget ? s_map_size(target) - c->up_budget : 0;
        if (!extra || sl__pool_try_reserve(st->budget, extra)) {
            int rc = s_remap(c, target);
            if (rc < 0) {
                sl__pool_unreserve(st->budget, extra);
                return rc;
            }
            c->up_budget += extra;
            return 0;
        }
        target = have + (target - have) / 2 / S_UPLOAD_QUANTUM * S_UPLOAD_QUANTUM;
    }
    return 1;
}

/* After an object: back to the first buffer (a quantum, or with a budget a minimum part, which stays reserved), the
 * rest returned to the budget and to the system; pages the object touched beyond its first quantum are dropped too,
 * so a client keeps no more than that resident between objects. */
static void s_shrink(s_client *c, size_t used) {
    s_store *st = s_st(&c->base);
    size_t keep = st->budget ? s_min_part(st) : (size_t)S_UPLOAD_QUANTUM;
    if (c->up_data > keep && s_remap(c, keep) < 0)
        return;
    if (used > S_UPLOAD_QUANTUM && c->up_map > S_UPLOAD_QUANTUM)
        madvise(c->up + S_UPLOAD_QUANTUM, c->up_map - S_UPLOAD_QUANTUM, MADV_DONTNEED);
    if (st->budget && c->up_budget > c->up_map) {
        sl__pool_unreserve(st->budget, c->up_budget - c->up_map);
        c->up_budget = c->up_map;
    }
}

static int s_write_open(sl_client *base, const char *key, const sl_write_options *opts, sl_writer **out) {
    s_client *c = (s_client *)base;
    s_store *st = s_st(base);
    int rc = s_full_name(c, key, c->name, 4096);
    if (rc < 0)
        return rc;
    const char *fp = opts->source_fingerprint;
    if (fp && (!fp[0] || strlen(fp) >= S_FP_CAP))
        return sl__fail(SL_EINVAL, "s3://%s/%s: a source fingerprint must be 1 to %d characters", st->bucket, c->name,
                        S_FP_CAP - 1);
    s_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->name = strdup(c->name)) || (fp && !(w->fingerprint = strdup(fp)))) {
        if (w)
            free(w->name);
        free(w);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    w->base.client = base;
    w->client = c;
    w->part_size = st->chunk;
    w->size_hint = opts->size_hint;
    if (opts->size_hint / S_MAX_PARTS >= w->part_size) {
        w->part_size = s_quanta(opts->size_hint / S_MAX_PARTS + 1);
        if (w->part_size > S_MAX_PART)
            w->part_size = S_MAX_PART;
    }
    w->if_gen = opts->if_generation_match_set ? opts->if_generation_match : -1;
    *out = &w->base;
    return 0;
}

static void s_write_free(s_writer *w) {
    s_shrink(w->client, w->used);
    free(w->fingerprint);
    free(w->upload_id);
    free(w->parts);
    free(w->name);
    free(w);
}

/* "x-amz-meta-sluice-source: <fingerprint> out_size=N out_crc32c=X" into buf, or "" without a fingerprint. */
static void s_meta_line(const s_writer *w, uint64_t size, char *buf, size_t cap) {
    buf[0] = '\0';
    if (w->fingerprint)
        snprintf(buf, cap, S_META_HEADER ": %s" S_OUT_FMT, w->fingerprint, size, w->crc);
}

/* The precondition of an attempt: "If-None-Match: *" for "no object", "If-Match: <etag>" for the generation seen
 * (looked up now), into buf; "" without one. SL_EEXIST when the object is no longer that generation. */
static int s_condition(s_writer *w, int64_t gen, char *buf, size_t cap) {
    buf[0] = '\0';
    if (gen < 0)
        return 0;
    if (gen == 0) {
        snprintf(buf, cap, "If-None-Match: *");
        return 0;
    }
    sl_object h;
    char etag[SL__S3_ETAG_MAX + 3];
    int rc = s_head(w->client, w->name, true, &h, etag);
    if (rc == SL_ENOENT || (rc == 0 && h.generation != gen))
        return sl__fail(SL_EEXIST, "s3://%s/%s: precondition failed: the object changed meanwhile",
                        s_st(&w->client->base)->bucket, w->name);
    if (rc < 0)
        return rc;
    snprintf(buf, cap, "If-Match: %s", etag);
    return 0;
}

/* Whether the object now is the one this writer made: its size, and its CRC32C; without one (a store that keeps
 * none), for an object sent in one request whose bytes the buffer still holds, the MD5 its ETag gives. */
static bool s_landed(s_writer *w, uint64_t size) {
    sl_object h;
    if (s_head(w->client, w->name, true, &h, NULL) != 0 || h.size != size)
        return false;
    if (h.has_crc32c)
        return h.crc32c == w->crc;
    if (!w->upload_id && h.has_md5 && size == w->len) {
        unsigned char md5[16];
        unsigned int n = 0;
        return EVP_Digest(w->client->up, w->len, md5, &n, sl__md_md5(), NULL) == 1 && n == 16 &&
               memcmp(md5, h.md5, 16) == 0;
    }
    return false;
}

/* Checks the checksum an upload's answer gives (when it gives one) against what was sent. */
static int s_check_crc(s_writer *w, const sl__http_response *resp, uint32_t want, const char *what) {
    size_t n = strlen(resp->amz_crc32c);
    uint32_t got;
    if (!n || strchr(resp->amz_crc32c, '-') || !sl__s3_crc32c_parse(resp->amz_crc32c, n, &got) || got == want)
        return 0;
    return sl__fail(SL_ECORRUPT, "s3://%s/%s: %s: the server stored CRC32C %08" PRIx32 ", not the %08" PRIx32 " sent",
                    s_st(&w->client->base)->bucket, w->name, what, got, want);
}

/* One PutObject of the buffered bytes. */
static int s_put(s_writer *w) {
    s_client *c = w->client;
    char crc[9], crc_line[48], meta[S_FP_CAP + S_OUT_CAP + 64], cond[SL__S3_ETAG_MAX + 32];
    sl__s3_crc32c_format(w->crc, crc);
    snprintf(crc_line, sizeof(crc_line), "x-amz-checksum-crc32c: %s", crc);
    s_meta_line(w, w->len, meta, sizeof(meta));
    s_attempts a = {.base.started_ms = sl__now_ms()};
    int64_t gen = w->if_gen;
    for (;;) {
        int rc = s_condition(w, gen, cond, sizeof(cond));
        if (rc < 0)
            return rc;
        const char *hdr[6] = {"Content-Type: application/octet-stream", crc_line, NULL, NULL, NULL, NULL};
        size_t nh = 2;
        if (meta[0])
            hdr[nh++] = meta;
        if (cond[0])
            hdr[nh++] = cond;
        s_req rq = {.method = "PUT", .name = w->name, .headers = hdr, .body = c->up, .body_len = w->len};
        s_answer ans;
        rc = s_call(c, &rq, NULL, SL__S3_DOC_NONE, false, &a, &ans);
        if (rc == 0 && !ans.failed)
            return s_check_crc(w, &ans.resp, w->crc, "upload completed");
        sl__s3_error_class cls =
            rc == 0 ? sl__s3_error_classify(ans.err ? ans.err->code : "", ans.resp.status) : SL__S3_ERR_RETRY;
        if (rc == 0 && cls == SL__S3_ERR_PRECONDITION && cond[0]) {
            int erc = s_fail_answer(c, w->name, &ans);
            char why[SL__MESSAGE_CAP];
            snprintf(why, sizeof(why), "%s", sl_last_error());
            /* It may have failed against this very upload: an earlier attempt whose answer was lost (or the request
             * libcurl itself sends again when a reused connection breaks) that landed meanwhile. */
            return s_landed(w, w->len) ? 0 : sl__fail(erc, "%s", why);
        }
        if (rc < 0 && rc != SL_EIO)
            return rc;
        if (cls != SL__S3_ERR_RETRY && rc == 0)
            return s_fail_answer(c, w->name, &ans);
        char why[SL__MESSAGE_CAP];
        if (rc == 0)
            s_fail_answer(c, w->name, &ans);
        snprintf(why, sizeof(why), "%s", sl_last_error());
        if (!s_backoff(c, &a))
            return sl__fail(rc < 0 ? rc : SL_EIO, "%s", why);
        /* The attempt may have landed: if so, done; if not, again over what is there now (never clobbering an
         * object someone else wrote meanwhile). */
        if (s_landed(w, w->len))
            return 0;
        if (w->if_gen < 0) {
            sl_object h;
            int src = s_head(c, w->name, true, &h, NULL);
            gen = src == 0 ? h.generation : src == SL_ENOENT ? 0 : -1;
        }
    }
}

static int s_create_upload(s_writer *w) {
    s_client *c = w->client;
    /* The fingerprint goes with the upload's creation, before the object's CRC32C is known: it records the size the
     * object is to have (the size hint), which s_fp_checked holds the object to. An object of another size (a source
     * that grew while it was read) keeps a fingerprint that is never reported, so a rerun makes it again. */
    char meta[S_FP_CAP + S_OUT_CAP + 64] = "";
    if (w->fingerprint && w->size_hint)
        snprintf(meta, sizeof(meta), S_META_HEADER ": %s out_size=%" PRIu64, w->fingerprint, w->size_hint);
    const char *hdr[6] = {"Content-Type: application/octet-stream",
                          "x-amz-checksum-algorithm: CRC32C",
                          "x-amz-checksum-type: FULL_OBJECT",
                          meta[0] ? meta : NULL,
                          NULL,
                          NULL};
    sl__sigv4_param q[] = {{"uploads", NULL}};
    s_req rq = {.method = "POST", .name = w->name, .query = q, .nq = 1, .headers = hdr};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    s_answer ans;
    /* Creating an upload that is never used costs nothing but an abort later. */
    int rc = s_call(c, &rq, c->xml, SL__S3_DOC_INITIATE, true, &a, &ans);
    if (rc < 0)
        return rc;
    if (ans.failed)
        return s_fail_answer(c, w->name, &ans);
    const sl__s3_result *res = sl__s3_xml_result(c->xml);
    if (sl__s3_xml_root(c->xml) != SL__S3_DOC_INITIATE || !res->upload_id[0])
        return sl__fail(SL_EIO, "s3://%s/%s: CreateMultipartUpload answered without an upload id",
                        s_st(&c->base)->bucket, w->name);
    w->upload_id = strdup(res->upload_id);
    return w->upload_id ? 0 : sl__fail(SL_ENOMEM, "out of memory");
}

/* Uploads the buffered bytes as the next part (retried alone). */
static int s_upload_part(s_writer *w) {
    s_client *c = w->client;
    s_store *st = s_st(&c->base);
    if (w->nparts >= S_MAX_PARTS)
        return sl__fail(SL_ETOOBIG, "s3://%s/%s: more than %u parts of %" PRIu64 " bytes: give a larger --upload-chunk",
                        st->bucket, w->name, S_MAX_PARTS, w->part_size);
    if (w->nparts == w->parts_cap) {
        unsigned cap = w->parts_cap ? w->parts_cap * 2 : 16;
        s_part *p = realloc(w->parts, cap * sizeof(*p));
        if (!p)
            return sl__fail(SL_ENOMEM, "out of memory");
        w->parts = p;
        w->parts_cap = cap;
    }
    char num[16], crc[9], crc_line[48];
    snprintf(num, sizeof(num), "%u", w->nparts + 1);
    sl__s3_crc32c_format(w->part_crc, crc);
    snprintf(crc_line, sizeof(crc_line), "x-amz-checksum-crc32c: %s", crc);
    const char *hdr[] = {crc_line, NULL};
    sl__sigv4_param q[] = {{"partNumber", num}, {"uploadId", w->upload_id}};
    s_req rq = {
        .method = "PUT", .name = w->name, .query = q, .nq = 2, .headers = hdr, .body = c->up, .body_len = w->len};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    s_answer ans;
    /* A part sent again replaces itself: safe to repeat. */
    int rc = s_call(c, &rq, NULL, SL__S3_DOC_NONE, true, &a, &ans);
    if (rc < 0)
        return rc;
    if (ans.failed)
        return s_fail_answer(c, w->name, &ans);
    if ((rc = s_check_crc(w, &ans.resp, w->part_crc, "part")) < 0)
        return rc;
    if (!ans.resp.etag[0])
        return sl__fail(SL_EIO, "s3://%s/%s: UploadPart answered without an ETag", st->bucket, w->name);
    s_part *p = &w->parts[w->nparts++];
    snprintf(p->etag, sizeof(p->etag), "%s", ans.resp.etag);
    p->crc = w->part_crc;
    w->sent += w->len;
    w->len = 0;
    w->part_crc = 0;
    return 0;
}

static void s_abort_upload(s_writer *w) {
    if (!w->upload_id)
        return;
    sl__sigv4_param q[] = {{"uploadId", w->upload_id}};
    s_req rq = {.method = "DELETE", .name = w->name, .query = q, .nq = 1, .aside = true};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    s_answer ans;
    char why[SL__MESSAGE_CAP];
    snprintf(why, sizeof(why), "%s", sl_last_error());
    (void)s_call(w->client, &rq, NULL, SL__S3_DOC_NONE, true, &a, &ans);
    free(w->upload_id);
    w->upload_id = NULL;
    sl__fail(0, "%s", why); /* the message of what failed the upload stays */
}

static int s_complete(s_writer *w) {
    s_client *c = w->client;
    s_store *st = s_st(&c->base);
    uint64_t total = w->sent;
    size_t cap = SL__S3_COMPLETE_CAP(w->nparts);
    char *body = malloc(cap);
    if (!body)
        return sl__fail(SL_ENOMEM, "out of memory");
    sl__s3_body b;
    int rc = sl__s3_complete_begin(&b, body, cap);
    for (unsigned i = 0; rc == 0 && i < w->nparts; i++)
        rc = sl__s3_complete_add(&b, i + 1, w->parts[i].etag, true, w->parts[i].crc);
    if (rc == 0)
        rc = sl__s3_complete_end(&b);
    char crc[9], crc_line[48], cond[SL__S3_ETAG_MAX + 32];
    sl__s3_crc32c_format(w->crc, crc);
    snprintf(crc_line, sizeof(crc_line), "x-amz-checksum-crc32c: %s", crc);
    sl__sigv4_param q[] = {{"uploadId", w->upload_id}};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    while (rc == 0) {
        if ((rc = s_condition(w, a.base.retries ? -1 : w->if_gen, cond, sizeof(cond))) < 0)
            break;
        const char *hdr[] = {"Content-Type: application/xml", crc_line, cond[0] ? cond : NULL, NULL};
        s_req rq = {
            .method = "POST", .name = w->name, .query = q, .nq = 1, .headers = hdr, .body = body, .body_len = b.len};
        s_answer ans;
        rc = s_call(c, &rq, c->xml, SL__S3_DOC_COMPLETE, false, &a, &ans);
        if (rc == 0 && !ans.failed) {
            const sl__s3_result *res = sl__s3_xml_result(c->xml);
            if (res->has_crc32c && res->crc32c_parts == 0 && res->crc32c != w->crc)
                rc = sl__fail(SL_ECORRUPT,
                              "s3://%s/%s: the object completed has CRC32C %08" PRIx32 ", not the %08" PRIx32 " sent",
                              st->bucket, w->name, res->crc32c, w->crc);
            if (rc == 0)
                rc = s_check_crc(w, &ans.resp, w->crc, "upload completed");
            break;
        }
        sl__s3_error_class cls =
            rc == 0 ? sl__s3_error_classify(ans.err ? ans.err->code : "", ans.resp.status) : SL__S3_ERR_RETRY;
        if (rc < 0 && rc != SL_EIO)
            break;
        char why[SL__MESSAGE_CAP];
        if (rc == 0)
            rc = s_fail_answer(c, w->name, &ans);
        snprintf(why, sizeof(why), "%s", sl_last_error());
        /* A lost answer to a Complete that worked: the upload is gone (NoSuchUpload) and the object is there. */
        if ((cls == SL__S3_ERR_NOT_FOUND || cls == SL__S3_ERR_PRECONDITION) && s_landed(w, total)) {
            rc = 0;
            break;
        }
        if (cls != SL__S3_ERR_RETRY || !s_backoff(c, &a)) {
            rc = sl__fail(rc, "%s", why);
            break;
        }
        if (s_landed(w, total)) {
            rc = 0;
            break;
        }
        rc = 0;
    }
    free(body);
    if (rc == 0) {
        free(w->upload_id);
        w->upload_id = NULL;
    }
    return rc;
}

static int s_write(sl_writer *base, const void *buf, size_t len) {
    s_writer *w = (s_writer *)base;
    s_client *c = w->client;
    const unsigned char *p = buf;
    w->crc = sl__crc32c_update(w->crc, buf, len);
    while (len) {
        if (w->len == c->up_data) {
            if (w->len >= w->part_size) {
                /* A whole part and more to come: this object goes up in parts. */
                int rc = w->upload_id ? 0 : s_create_upload(w);
                if (rc == 0)
                    rc = s_upload_part(w);
                if (rc < 0)
                    return rc;
                continue;
            }
            size_t want = w->len + len < w->part_size ? w->len + len : (size_t)w->part_size;
            int rc = s_grow(c, want, (size_t)w->part_size);
            if (rc == 1) {
                /* The budget has no more room now: what the buffer holds (a minimum part at least) goes as a part. */
                rc = w->upload_id ? 0 : s_create_upload(w);
                if (rc == 0)
                    rc = s_upload_part(w);
            }
            if (rc < 0)
                return rc;
            continue;
        }
        size_t n = c->up_data - w->len < len ? c->up_data - w->len : len;
        memcpy(c->up + w->len, p, n);
        w->part_crc = sl__crc32c_update(w->part_crc, p, n);
        w->len += n;
        if (w->len > w->used)
            w->used = w->len;
        p += n;
        len -= n;
    }
    return 0;
}

static int s_write_commit(sl_writer *base) {
    s_writer *w = (s_writer *)base;
    int rc = 0;
    if (!w->upload_id) {
        rc = w->client->up ? 0 : s_grow(w->client, 1, (size_t)w->part_size);
        if (rc == 0)
            rc = s_put(w);
    } else {
        if (w->len)
            rc = s_upload_part(w);
        if (rc == 0)
            rc = s_complete(w);
        if (rc < 0)
            s_abort_upload(w);
    }
    s_write_free(w);
    return rc;
}

static void s_write_abort(sl_writer *base) {
    s_writer *w = (s_writer *)base;
    s_abort_upload(w);
    s_write_free(w);
}

/* ---- server-side copy ---- */

/* The largest object one CopyObject copies: 5 GiB. SLUICE_S3_COPY_OBJECT_MAX (bytes) lowers it, so that tests reach
 * the part-by-part copy with small objects. */
static uint64_t s_copy_object_max(void) {
    const char *v = getenv("SLUICE_S3_COPY_OBJECT_MAX");
    char *end;
    unsigned long long n = v && *v ? strtoull(v, &end, 10) : 0;
    return v && *v && *end == '\0' && n > 0 && n < S_MAX_PART ? (uint64_t)n : S_MAX_PART;
}

/* An object over CopyObject's limit copied on the server part by part: a multipart upload (with the fingerprint and
 * the CRC32C algorithm, as a write's), each part an UploadPartCopy of a range of the source pinned to its ETag
 * (`ifm`), retried alone; the parts' CRC32Cs combined must be the source's (when it has one) and go with the
 * completion. Aborted on any failure. SL_ENOTSUP (nothing left behind) when the server gives no part CRC32C: the
 * caller streams the object instead, whose bytes are then checked. */
static int s_copy_parts(s_client *c, const char *source, const char *ifm, const sl_object *src_obj,
                        const char *dst_name, const sl_write_options *opts, int64_t gen) {
    s_store *st = s_st(&c->base);
    uint64_t size = src_obj->size;
    uint64_t part = st->chunk < S_MIN_PART ? S_MIN_PART : st->chunk;
    if (size / S_MAX_PARTS >= part)
        part = (size / S_MAX_PARTS + 1 + S_UPLOAD_QUANTUM - 1) / S_UPLOAD_QUANTUM * S_UPLOAD_QUANTUM;
    if (part > S_MAX_PART)
        part = S_MAX_PART;
    s_writer w = {.client = c, .name = (char *)dst_name, .size_hint = size, .if_gen = gen};
    const char *fp = opts ? opts->source_fingerprint : NULL;
    if (fp && fp[0] && strlen(fp) < S_FP_CAP && !(w.fingerprint = strdup(fp)))
        return sl__fail(SL_ENOMEM, "out of memory");
    int rc = s_create_upload(&w);
    uint32_t crc = 0;
    for (uint64_t off = 0; rc == 0 && off < size; off += part) {
        uint64_t end = off + part < size ? off + part : size;
        if (w.nparts == w.parts_cap) {
            unsigned cap = w.parts_cap ? w.parts_cap * 2 : 16;
            s_part *p = realloc(w.parts, cap * sizeof(*p));
            if (!p) {
                rc = sl__fail(SL_ENOMEM, "out of memory");
                break;
            }
            w.parts = p;
            w.parts_cap = cap;
        }
        char num[16], range[96];
        snprintf(num, sizeof(num), "%u", w.nparts + 1);
        snprintf(range, sizeof(range), "x-amz-copy-source-range: bytes=%" PRIu64 "-%" PRIu64, off, end - 1);
        const char *hdr[] = {source, range, ifm[0] ? ifm : NULL, NULL};
        sl__sigv4_param q[] = {{"partNumber", num}, {"uploadId", w.upload_id}};
        s_req rq = {.method = "PUT", .name = dst_name, .query = q, .nq = 2, .headers = hdr};
        s_attempts a = {.base.started_ms = sl__now_ms()};
        s_answer ans;
        /* A part copied again replaces itself: safe to repeat. */
        if ((rc = s_call(c, &rq, c->xml, SL__S3_DOC_COPY_PART, true, &a, &ans)) < 0)
            break;
        if (ans.failed) {
            rc = s_fail_answer(c, dst_name, &ans);
            break;
        }
        const sl__s3_result *res = sl__s3_xml_result(c->xml);
        if (!res->etag[0]) {
            rc = sl__fail(SL_EIO, "s3://%s/%s: UploadPartCopy answered without an ETag", st->bucket, dst_name);
            break;
        }
        if (!res->has_crc32c || res->crc32c_parts) {
            rc = SL_ENOTSUP; /* no CRC32C of the part: nothing to check the whole against */
            break;
        }
        s_part *p = &w.parts[w.nparts++];
        snprintf(p->etag, sizeof(p->etag), "%s", res->etag);
        p->crc = res->crc32c;
        crc = off == 0 ? res->crc32c : sl__crc32c_combine(crc, res->crc32c, end - off);
        w.sent = end;
    }
    if (rc == 0 && src_obj->has_crc32c && crc != src_obj->crc32c)
        rc = sl__fail(SL_ECORRUPT,
                      "s3://%s/%s: the parts copied on the server have CRC32C %08" PRIx32 " together, not the source's "
                      "%08" PRIx32,
                      st->bucket, dst_name, crc, src_obj->crc32c);
    w.crc = crc;
    if (rc == 0)
        rc = s_complete(&w);
    if (rc < 0 || rc == SL_ENOTSUP) {
        char why[SL__MESSAGE_CAP];
        snprintf(why, sizeof(why), "%s", sl_last_error());
        s_abort_upload(&w);
        if (rc != SL_ENOTSUP)
            rc = sl__fail(rc, "%s", why);
    }
    free(w.fingerprint);
    free(w.upload_id);
    free(w.parts);
    return rc;
}

static int s_copy(sl_client *base, const sl_store *src_base, const sl_object *src_obj, const char *dst_key,
                  const sl_write_options *opts) {
    s_client *c = (s_client *)base;
    s_store *dst = s_st(base);
    if (src_base->vt != &s_vtable)
        return SL_ENOTSUP;
    const s_store *src = (const s_store *)src_base;
    if ((src->origin == NULL) != (dst->origin == NULL) || (src->origin && strcmp(src->origin, dst->origin) != 0) ||
        strcmp(src->base_path ? src->base_path : "", dst->base_path ? dst->base_path : "") != 0)
        return SL_ENOTSUP;
    bool in_parts = src_obj->size > s_copy_object_max(); /* CopyObject takes 5 GiB at most */
    char src_name[1100];
    int n = snprintf(src_name, sizeof(src_name), "%s%s", src->prefix, src_obj->key);
    if (n < 0 || (size_t)n >= sizeof(src_name))
        return sl__fail(SL_ENAMETOOLONG, "s3://%s/%s%s: name too long", src->bucket, src->prefix, src_obj->key);
    int rc = s_full_name(c, dst_key, c->name, 4096);
    if (rc < 0)
        return rc;
    char dst_name[1100];
    snprintf(dst_name, sizeof(dst_name), "%s", c->name);
    /* The source's ETag, whose generation the listing saw: the copy is pinned to it (x-amz-copy-source-if-match). */
    char etag[SL__S3_ETAG_MAX + 3] = "";
    sl_object sh;
    if (src_obj->generation > 0) {
        /* A HeadObject of the source through this client: the same endpoint, maybe another bucket. */
        rc = s_head_in(c, src->bucket, src_name, true, &sh, etag);
        if (rc == 0 && sh.generation != src_obj->generation)
            rc = sl__fail(SL_ENOENT, "s3://%s/%s: the source was replaced since it was listed (rerun to copy it)",
                          src->bucket, src_name);
        if (rc < 0)
            return rc;
    }
    char enc[3 * 1100 + 300], source[sizeof(enc) + 64], ifm[SL__S3_ETAG_MAX + 64] = "", cond[SL__S3_ETAG_MAX + 32];
    char rawsrc[1400];
    snprintf(rawsrc, sizeof(rawsrc), "/%s/%s", src->bucket, src_name);
    if ((rc = sl__sigv4_encode_path(rawsrc, enc, sizeof(enc))) < 0)
        return rc;
    snprintf(source, sizeof(source), "x-amz-copy-source: %s", enc);
    if (etag[0])
        snprintf(ifm, sizeof(ifm), "x-amz-copy-source-if-match: %s", etag);
    s_writer fake = {.client = c, .name = dst_name};
    int64_t gen = opts && opts->if_generation_match_set ? opts->if_generation_match : -1;
    if (in_parts) {
        rc = s_copy_parts(c, source, ifm, src_obj->has_crc32c || !etag[0] || !sh.has_crc32c ? src_obj : &sh, dst_name,
                          opts, gen);
        if (rc < 0 && rc != SL_ENOTSUP) {
            char said[SL__MESSAGE_CAP];
            snprintf(said, sizeof(said), "%s", sl_last_error());
            return sl__fail(rc, "server-side copy of s3://%s/%s in parts: %s", src->bucket, src_name, said);
        }
        return rc;
    }
    if ((rc = s_condition(&fake, gen, cond, sizeof(cond))) < 0)
        return rc;
    const char *hdr[8] = {source,
                          "x-amz-metadata-directive: REPLACE",
                          "x-amz-checksum-algorithm: CRC32C",
                          "Content-Type: application/octet-stream",
                          NULL,
                          NULL,
                          NULL,
                          NULL};
    size_t nh = 4;
    /* The copy's own metadata (REPLACE: never the source's, which may hold another output's fingerprint): the
     * fingerprint the caller gives, with the size the copy must have (a multipart upload's form, s_create_upload). */
    char meta[S_FP_CAP + S_OUT_CAP + 64];
    const char *fp = opts ? opts->source_fingerprint : NULL;
    if (fp && fp[0] && strlen(fp) < S_FP_CAP) {
        snprintf(meta, sizeof(meta), S_META_HEADER ": %s out_size=%" PRIu64, fp, src_obj->size);
        hdr[nh++] = meta;
    }
    if (ifm[0])
        hdr[nh++] = ifm;
    if (cond[0])
        hdr[nh++] = cond;
    s_req rq = {.method = "PUT", .name = dst_name, .headers = hdr};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    s_answer ans;
    /* The same source to the same name: repeating it is harmless (with a precondition, a repeat fails it instead,
     * and the result is checked below). */
    rc = s_call(c, &rq, c->xml, SL__S3_DOC_COPY_OBJECT, true, &a, &ans);
    if (rc < 0)
        return rc;
    if (ans.failed && ans.err && strcmp(ans.err->code, "NoSuchKey") == 0 && strpbrk(src_name, "+=&$,:;?@#%"))
        /* Some S3-compatible stores decode x-amz-copy-source without the reserved characters (s3rver: decodeURI),
         * and miss such a source: streamed instead, whose read tells whether the source is really gone. */
        return SL_ENOTSUP;
    if (ans.failed) {
        rc = s_fail_answer(c, dst_name, &ans);
        char said[SL__MESSAGE_CAP];
        snprintf(said, sizeof(said), "%s", sl_last_error());
        return sl__fail(rc, "server-side copy of s3://%s/%s to %s", src->bucket, src_name, said);
    }
    const sl__s3_result *res = sl__s3_xml_result(c->xml);
    uint32_t want = src_obj->has_crc32c ? src_obj->crc32c : etag[0] && sh.has_crc32c ? sh.crc32c : 0;
    bool know = src_obj->has_crc32c || (etag[0] && sh.has_crc32c);
    if (res->has_crc32c && res->crc32c_parts == 0 && know && res->crc32c != want) {
        char why[SL__MESSAGE_CAP] = "the object was deleted";
        if (s_delete_name(c, dst_name, true) < 0)
            snprintf(why, sizeof(why), "deleting it failed (%s)", sl_last_error());
        return sl__fail(SL_ECORRUPT,
                        "s3://%s/%s: the server-side copy of s3://%s/%s has CRC32C %08" PRIx32 ", not the source's "
                        "%08" PRIx32 "; %s",
                        dst->bucket, dst_name, src->bucket, src_name, res->crc32c, want, why);
    }
    return 0;
}

/* ---- what a prefix holds ---- */

static int s_probe(sl_client *base, const char *sub) {
    s_client *c = (s_client *)base;
    s_store *st = s_st(base);
    int n = snprintf(c->name, 4096, "%s%s", st->prefix, sub);
    if (n < 0 || n >= 4096)
        return sl__fail(SL_ENAMETOOLONG, "s3://%s/%s%s: name too long", st->bucket, st->prefix, sub);
    size_t len = (size_t)n;
    char prefix[4096];
    memcpy(prefix, c->name, len + 1);
    sl__sigv4_param q[] = {{"list-type", "2"}, {"encoding-type", "url"}, {"max-keys", "2"}, {"prefix", prefix}};
    s_req rq = {.method = "GET", .query = q, .nq = len ? 4 : 3, .body_cap = (size_t)SL__S3_XML_BODY_CAP};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    s_answer ans;
    int rc = s_call(c, &rq, c->xml, SL__S3_DOC_LIST, true, &a, &ans);
    if (rc < 0)
        return rc;
    if (ans.failed) {
        if (ans.resp.status == 404 && (!ans.err || !ans.err->code[0] || strcmp(ans.err->code, "NoSuchBucket") == 0))
            return sl__fail(SL_ENOENT, "s3://%s: no such bucket (check the name, or create it first)", st->bucket);
        return s_fail_answer(c, prefix, &ans);
    }
    bool objects = false, marker = false;
    const char *name;
    size_t nlen;
    sl_object o;
    while ((rc = sl__s3_xml_list_next(c->xml, &name, &nlen, &o, NULL)) > 0) {
        if (strncmp(name, prefix, len) != 0)
            continue;
        if (nlen > len)
            objects = true;
        else
            marker = true;
    }
    if (rc < 0)
        return rc;
    return objects ? SL_PREFIX_OBJECTS : marker || !len ? SL_PREFIX_EMPTY : SL_PREFIX_MISSING;
}

/* Before a job: credentials can be had, and the bucket exists (HeadBucket; its region is learnt on the way). A 403
 * is not final: an account may write objects without being allowed to read the bucket. */
static int s_check_access(sl_store *base) {
    sl_client *cb = NULL;
    int rc = s_client_new(base, &cb);
    if (rc < 0)
        return rc;
    s_client *c = (s_client *)cb;
    s_store *st = (s_store *)base;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    rc = s_auth_get(c);
    if (rc == 0) {
        s_req rq = {.method = "HEAD"};
        s_answer ans;
        int prc = s_call(c, &rq, NULL, SL__S3_DOC_NONE, true, &a, &ans);
        if (prc == 0 && ans.failed && ans.resp.status == 404)
            rc = sl__fail(SL_ENOENT, "s3://%s: no such bucket (check the name, or create it first)", st->bucket);
        else if (prc == SL_ECANCELED)
            rc = prc;
    }
    s_client_destroy(cb);
    return rc;
}

static void s_memory(const sl_store *base, sl__store_memory *out) {
    const s_store *st = (const s_store *)base;
    out->client_bytes = st->https ? S_CLIENT_BYTES_TLS : S_CLIENT_BYTES;
    out->writer_min_bytes = s_map_size(s_min_part(st));
}

static void s_set_budget(sl_store *base, sl__pool *budget) {
    ((s_store *)base)->budget = budget;
}

static const sl_store_vtable s_vtable = {
    .client_new = s_client_new,
    .client_destroy = s_client_destroy,
    .list_open = s_list_open,
    .list_next = s_list_next,
    .list_close = s_list_close,
    .stat = s_stat,
    .read_open = s_read_open,
    .read_open_gen = s_read_open_gen,
    .read = s_read,
    .read_close = s_read_close,
    .write_open = s_write_open,
    .write = s_write,
    .write_commit = s_write_commit,
    .write_abort = s_write_abort,
    .del = s_del,
    .del_batch = s_del_batch,
    .copy = s_copy,
    .check_access = s_check_access,
    .probe = s_probe,
    .memory = s_memory,
    .set_budget = s_set_budget,
    .close = s_close,
};
