/* The gs:// store: Google Cloud Storage JSON API v1 over the per-thread HTTP client.
 *
 * Each sl_client owns one sl__http (its connections, its TLS sessions) and one upload buffer, both made once per
 * thread and reused for every object. The store itself holds only configuration and the process-wide token cache.
 *
 * Integrity: downloads are checked against the object's size and CRC32C (see s_reader); uploads send the CRC32C of the
 * bytes so the server rejects corrupted data. Retries: transport errors, 408, 429 and 5xx are retried with backoff;
 * an interrupted download resumes at the byte it reached, pinned to the generation it started with; an upload
 * retried after an ambiguous failure first checks whether the object already landed, then re-sends with
 * ifGenerationMatch set to the generation seen, so it can never overwrite someone else's newer object. */
#include "auth_gcs.h"
#include "clock.h"
#include "crc32c.h"
#include "fail.h"
#include "gcs_page.h"
#include "http.h"
#include "range.h"
#include "store_vtable.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define S_DEFAULT_ENDPOINT "https://storage.googleapis.com"
#define S_UPLOAD_QUANTUM ((uint64_t)256 * 1024)
#define S_DEFAULT_CHUNK ((uint64_t)8 * 1024 * 1024)
#define S_URL_CAP 16384
#define S_AUTH_CAP 4096
#define S_PAGE_CAP ((size_t)8 << 20) /* one listing page of 1000 items is a few hundred KiB */
#define S_PREAMBLE_CAP 16384         /* multipart headers + JSON metadata in front of the data */
#define S_TRAILER_CAP 256            /* the multipart closing boundary after the data */
/* What one client holds for its life besides its upload buffer, for a job's budget: the URL and name scratch
 * (20 KiB), the HTTP client (its struct with a 16 KiB spill, an answer body it keeps up to 64 KiB), curl's handles
 * with their 16 KiB download and 64 KiB upload buffers and the connection; over TLS the connection's OpenSSL state
 * too (about 100 KiB; the CA certificates are loaded once per process, see http.c), and the inflate state and input
 * buffer of gzip-encoded downloads (about 110 KiB). Measured at 40-150 KiB without the last. */
#define S_CLIENT_BYTES ((size_t)384 * 1024)
#define S_CLIENT_BYTES_TLS ((size_t)512 * 1024)
#define S_LIST_FIELDS "nextPageToken,prefixes,items(name,size,updated,generation,crc32c,md5Hash,contentEncoding)"
#define S_LIST_FIELDS_FP                                                                                               \
    "nextPageToken,prefixes,items(name,size,updated,generation,crc32c,md5Hash,contentEncoding,metadata)"
#define S_MAX_USER_HEADERS 16
#define S_OBJECT_FIELDS "name,size,updated,generation,crc32c,md5Hash,contentEncoding,metadata"
#define S_META_KEY SL__GCS_META_KEY
#define S_FP_CAP 256
#define S_ZIN_CAP ((size_t)64 * 1024) /* compressed bytes handed to zlib at a time (gzip-encoded objects) */
/* What a recorded fingerprint is followed by in the metadata: the object's own size and CRC32C at its commit. */
#define S_OUT_FMT " out_size=%" PRIu64 " out_crc32c=%08" PRIx32
#define S_OUT_CAP 64
/* How much further a broken transfer must get for its retries to count from zero again (s_progressed). */
#define S_PROGRESS_BYTES ((uint64_t)256 * 1024)

typedef struct s_store {
    sl_store base;
    char *endpoint; /* no trailing '/' */
    char *bucket;
    char *prefix; /* "" or ends in '/' */
    sl__gcs_auth *auth;
    sl__retry_policy retry;
    uint64_t chunk; /* upload chunk and single-request threshold */
    char **headers; /* --header: sent with every request, NULL-terminated */
    /* Of the endpoint, fed by every client's requests (base.health points here). */
    sl__http_health health;
    /* The job's budget, where upload buffers are counted (sl__store_set_budget); NULL: each writer holds up to a
     * chunk of its own. */
    sl__pool *budget;
} s_store;

typedef struct s_client {
    sl_client base;
    sl__http *http;
    uint64_t rng;
    char *url;  /* S_URL_CAP scratch */
    char *name; /* full object name scratch */
    /* S_AUTH_CAP: the Authorization header of the request in progress. Here rather than on the stack, where 4 KiB
     * in every request's frame would push libcurl's frames 4 KiB deeper into each worker's stack. */
    char *auth;
    /* Upload buffer: S_PREAMBLE_CAP bytes of room for multipart headers, then up_data bytes of data (whole 256 KiB
     * quanta, at most a chunk), then S_TRAILER_CAP for the closing boundary; up_map bytes mapped in all. It grows
     * while an object needs it and the budget allows, and goes back to one quantum after each object. */
    unsigned char *up;
    size_t up_map, up_data;
    size_t up_budget;  /* bytes of it counted in the store's budget */
    char fp[S_FP_CAP]; /* the source fingerprint of the last stat */
    /* Decompression of gzip-encoded objects: made on the first such object, reset for each one after. */
    z_stream z;
    bool z_ready;
    unsigned char *zin; /* S_ZIN_CAP bytes of stored (compressed) data */
} s_client;

static const sl_store_vtable s_vtable;

/* ---- small helpers ---- */

static s_store *s_st(sl_client *c) {
    return (s_store *)c->store;
}

/* True when s is well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF), as GCS requires. */
static bool s_utf8_valid(const unsigned char *s) {
    while (*s) {
        unsigned char b = *s;
        int n;
        uint32_t cp;
        if (b < 0x80) {
            s++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            n = 1, cp = b & 0x1Fu;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 2, cp = b & 0x0Fu;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3, cp = b & 0x07u;
        } else {
            return false;
        }
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i] & 0x3Fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        s += n + 1;
    }
    return true;
}

static int s_full_name(s_client *c, const char *key, char *out, size_t cap) {
    s_store *st = s_st(&c->base);
    size_t plen = strlen(st->prefix), klen = strlen(key);
    if (plen + klen >= cap)
        return sl__fail(SL_ENAMETOOLONG, "gs://%s/%s%s: object name too long", st->bucket, st->prefix, key);
    memcpy(out, st->prefix, plen);
    memcpy(out + plen, key, klen + 1);
    if (plen + klen > 1024)
        return sl__fail(SL_ENAMETOOLONG, "object name is %zu bytes, over GCS's limit of 1024: gs://%s/%s", plen + klen,
                        st->bucket, out);
    if (!s_utf8_valid((const unsigned char *)out))
        return sl__fail(SL_EINVAL, "gs://%s/: object name is not valid UTF-8 (GCS names must be); rename the source",
                        st->bucket);
    return 0;
}

/* Appends escaped text to the client's URL buffer. */
static void s_url_add(s_client *c, size_t *at, const char *raw, bool escape) {
    if (*at >= S_URL_CAP)
        return;
    size_t len = strlen(raw), room = S_URL_CAP - *at;
    if (escape) {
        *at += sl__url_escape(c->url + *at, room, raw, len);
        return;
    }
    size_t n = len < room ? len : room - 1; /* the full length still counts, so an overlong URL is caught */
    memcpy(c->url + *at, raw, n);
    c->url[*at + n] = '\0';
    *at += len;
}

static size_t s_b64(const unsigned char *in, size_t len, char *out) {
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static void s_crc_b64(uint32_t crc, char out[16]) {
    unsigned char be[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16), (unsigned char)(crc >> 8),
                           (unsigned char)crc};
    out[s_b64(be, 4, out)] = '\0';
}

/* Finds crc32c=<b64> in an x-goog-hash value. */
static bool s_hash_crc(const char *goog_hash, uint32_t *crc) {
    const char *p = strstr(goog_hash, "crc32c=");
    if (!p)
        return false;
    char b64[16];
    size_t n = strcspn(p + 7, ", ");
    if (n >= sizeof(b64))
        return false;
    memcpy(b64, p + 7, n);
    b64[n] = '\0';
    return sl__gcs_unb64_crc(b64, crc);
}

/* A non-negative integer given as a JSON string of decimal digits (how GCS sends int64 fields) or a JSON integer;
 * 0 for anything else. */
static uint64_t s_json_u64(json_t *v) {
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    return json_is_string(v) ? sl__gcs_u64_text(json_string_value(v), json_string_length(v)) : 0;
}

/* Fills *out (all but key) from an object resource (objects.get; listing pages are read by gcs_page.c). */
static void s_object_from_json(json_t *item, sl_object *out) {
    memset(out, 0, sizeof(*out));
    out->size = s_json_u64(json_object_get(item, "size"));
    out->generation = (int64_t)s_json_u64(json_object_get(item, "generation"));
    out->mtime_ns = sl__gcs_parse_time(json_string_value(json_object_get(item, "updated")));
    const char *crc = json_string_value(json_object_get(item, "crc32c"));
    out->has_crc32c = crc && sl__gcs_unb64_crc(crc, &out->crc32c);
    const char *md5 = json_string_value(json_object_get(item, "md5Hash"));
    if (md5 && sl__gcs_unb64(md5, out->md5, 16))
        out->has_md5 = true;
    /* Points into `item`: valid as long as the document is. */
    out->source_fingerprint = json_string_value(json_object_get(json_object_get(item, "metadata"), S_META_KEY));
    json_t *enc = json_object_get(item, "contentEncoding");
    if (json_is_string(enc) && sl__gcs_is_gzip(json_string_value(enc), json_string_length(enc)))
        out->content_encoding = SL__GCS_GZIP;
}

/* A recorded value is "<fingerprint> out_size=N out_crc32c=X": the fingerprint the writer was given, then the
 * object's own size and CRC32C when it was committed (S_OUT_FMT). The fingerprint is reported (copied into buf) only
 * while the object still has that size and CRC32C, as the local store keeps its file's own size and mtime: an object
 * cut short or replaced since, and a value without them (older versions recorded the fingerprint before the bytes of a
 * resumable upload, so it cannot vouch for them), count as having no fingerprint. */
static const char *s_fp_checked(const sl_object *obj, const char *value, char *buf, size_t cap) {
    if (!value || !obj->has_crc32c)
        return NULL;
    const char *at = NULL;
    for (const char *p = strstr(value, " out_size="); p; p = strstr(p + 1, " out_size="))
        at = p;
    if (!at || at == value || (size_t)(at - value) >= cap)
        return NULL;
    char want[S_OUT_CAP];
    snprintf(want, sizeof(want), S_OUT_FMT, obj->size, obj->crc32c);
    if (strcmp(at, want) != 0)
        return NULL;
    memcpy(buf, value, (size_t)(at - value));
    buf[at - value] = '\0';
    return buf;
}

/* ---- requests with retries ---- */

/* One logical request's retries (sl__attempts), and the 401 it may refresh the token for once. */
typedef struct s_attempts {
    sl__attempts base;
    bool refreshed; /* a 401 already refreshed the token once */
} s_attempts;

static bool s_backoff(s_client *c, s_attempts *a) {
    s_store *st = s_st(&c->base);
    return sl__attempts_backoff(&a->base, &st->retry, &st->health, &c->rng);
}

/* Progress of a transfer restarts its count of retries (sl__attempts_progressed) and lets a 401 refresh again. */
static void s_progressed(s_attempts *a, uint64_t *mark, uint64_t at) {
    if (sl__attempts_progressed(&a->base, mark, at, S_PROGRESS_BYTES))
        a->refreshed = false;
}

/* Adds the Authorization header (in c->auth) to extra headers. */
static int s_auth_headers(s_client *c, const char *const *extra, const char **out, size_t cap) {
    int rc = sl__gcs_auth_header(s_st(&c->base)->auth, c->auth, S_AUTH_CAP);
    if (rc < 0)
        return rc;
    size_t n = 0;
    if (c->auth[0])
        out[n++] = c->auth;
    for (const char *const *p = extra; p && *p && n + 1 < cap; p++)
        out[n++] = *p;
    for (char **p = s_st(&c->base)->headers; p && *p && n + 1 < cap; p++)
        out[n++] = *p;
    out[n] = NULL;
    return 0;
}

/* s_auth_headers failed with rc, so nothing was sent. A token endpoint (or metadata server) that stopped answering is
 * an outage like the storage endpoint's: it is recorded as one, and the request waits for it as s_backoff allows (in
 * a job, until the job gives up on the outage as a whole). True: try again. */
static bool s_auth_outage(s_client *c, int rc, s_attempts *a) {
    s_store *st = s_st(&c->base);
    if (rc != SL_EIO || !sl__gcs_auth_unreachable(st->auth))
        return false;
    sl__http_health_no_answer(&st->health, sl_last_error());
    return s_backoff(c, a);
}

/* Turns a GCS error answer into an SL_E code and a one-line message naming the object and what to do. `conditional`:
 * the request carried a precondition (ifGenerationMatch ...; for a resumable upload, its start did), the only case in
 * which a 412 means that the object changed meanwhile. */
static int s_http_error_at(s_client *c, const char *what, const sl__http_response *r, bool conditional) {
    s_store *st = s_st(&c->base);
    char detail[2048] = ""; /* room for a server's message that quotes a whole 1,024-byte name */
    bool secret = false;
    if (r->body && r->body_len) {
        json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
        const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        /* A server (or a proxy in front of it) may quote the request back, Authorization header included. */
        secret = msg && sl__gcs_auth_mentions_secret(st->auth, msg);
        if (msg)
            snprintf(detail, sizeof(detail), ": %s", msg);
        json_decref(doc);
    }
    const char *hint = "";
    int code = SL_EIO;
    switch (r->status) {
    case 401:
        code = SL_EACCES;
        hint = " (credentials rejected: check GOOGLE_APPLICATION_CREDENTIALS or --token-file)";
        break;
    case 403:
        code = SL_EACCES;
        hint = " (the credentials lack permission on this bucket)";
        break;
    case 404:
        code = SL_ENOENT;
        break;
    case 412:
        if (conditional) {
            code = SL_EEXIST;
            hint = " (precondition failed: the object changed meanwhile)";
        } else if (!detail[0] && r->body && r->body_len) {
            /* No precondition was sent, so the server's reason is all there is: its text if it is not JSON. */
            size_t n = strcspn(r->body, "\r\n");
            snprintf(detail, sizeof(detail), ": ");
            sl_text_escape(detail + 2, sizeof(detail) - 2, r->body, n < 200 ? n : 200);
            secret = sl__gcs_auth_mentions_secret(st->auth, detail);
        } else if (!detail[0]) {
            hint = " (the server gave no reason; the request carried no precondition)";
        }
        break;
    case 416:
        code = SL_ERANGE;
        break;
    case 400:
        /* The checksum the server computed is not the one sent: the bytes were damaged on the way and nothing was
         * stored. SL_ECORRUPT lets the job send the object again, as it reads again after a bad download. */
        if (strstr(detail, "doesn't match calculated")) {
            code = SL_ECORRUPT;
            hint = " (data corrupted in transit; nothing was stored)";
        }
        break;
    default:
        break;
    }
    if (secret)
        snprintf(detail, sizeof(detail), ": (the server's message is not shown: it quotes a credential)");
    return sl__fail(code, "gs://%s/%s: HTTP %ld%s%s (via %s)", st->bucket, what, r->status, detail, hint,
                    sl__gcs_auth_source(st->auth));
}

/* s_http_error_at for a request that carried no precondition. */
static int s_http_error(s_client *c, const char *what, const sl__http_response *r) {
    return s_http_error_at(c, what, r, false);
}

/* Performs a whole request with auth, 401 refresh and retries (when idempotent). Returns 0 with resp filled for any
 * final HTTP answer (the caller judges the status), or <0 when no answer could be had. */
static int s_perform(s_client *c, sl__http_request *req, const char *const *extra, sl__http_response *resp,
                     bool idempotent, s_attempts *a) {
    const char *headers[16 + S_MAX_USER_HEADERS];
    for (;;) {
        int rc = s_auth_headers(c, extra, headers, 16 + S_MAX_USER_HEADERS);
        if (rc < 0) {
            if (s_auth_outage(c, rc, a))
                continue;
            return rc;
        }
        req->headers = headers;
        rc = sl__http_perform(c->http, req, resp);
        if (rc == SL_EIO) {
            if (idempotent && s_backoff(c, a))
                continue;
            return rc;
        }
        if (rc < 0)
            return rc;
        if (resp->status == 401 && c->auth[0] && !a->refreshed) {
            a->refreshed = true;
            sl__gcs_auth_invalidate(s_st(&c->base)->auth, c->auth);
            continue;
        }
        if (sl__retry_status(resp->status) && idempotent && s_backoff(c, a))
            continue;
        return 0;
    }
}

/* ---- store and client ---- */

static int s_endpoint(const sl_store_options *o, char **endpoint, bool *emulator) {
    const char *e = o ? o->endpoint : NULL;
    const char *full = getenv("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    const char *host = getenv("STORAGE_EMULATOR_HOST");
    *emulator = false;
    char buf[1024];
    if (e && *e) {
        snprintf(buf, sizeof(buf), "%s", e);
    } else if (full && *full) {
        snprintf(buf, sizeof(buf), "%s", full);
        *emulator = true;
    } else if (host && *host) {
        snprintf(buf, sizeof(buf), "%s%s", strstr(host, "://") ? "" : "http://", host);
        *emulator = true;
    } else {
        snprintf(buf, sizeof(buf), "%s", S_DEFAULT_ENDPOINT);
    }
    if (strncmp(buf, "http://", 7) != 0 && strncmp(buf, "https://", 8) != 0)
        return sl__fail(SL_EBADURL, "endpoint '%s' must start with http:// or https://", buf);
    size_t n = strlen(buf);
    while (n > 8 && buf[n - 1] == '/')
        buf[--n] = '\0';
    *endpoint = strdup(buf);
    return *endpoint ? 0 : sl__fail(SL_ENOMEM, "out of memory");
}

static void s_close(sl_store *base) {
    s_store *st = (s_store *)base;
    sl__http_health_destroy(&st->health);
    sl__gcs_auth_destroy(st->auth);
    free(st->endpoint);
    free(st->bucket);
    free(st->prefix);
    for (char **p = st->headers; p && *p; p++)
        free(*p);
    free(st->headers);
    free(st);
}

int sl__store_gcs_open(const sl_url *url, const sl_store_options *opts, sl_store **out) {
    int rc;
    s_store *st = calloc(1, sizeof(*st));
    if (!st)
        return sl__fail(SL_ENOMEM, "out of memory");
    st->base.vt = &s_vtable;
    st->base.scheme = SL_SCHEME_GS;
    sl__http_health_init(&st->health, 0);
    st->base.health = &st->health;
    bool emulator = false;
    if ((rc = s_endpoint(opts, &st->endpoint, &emulator)) < 0)
        goto on_error;
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
    sl__gcs_auth_options ao = {.anonymous = opts && opts->anonymous,
                               .emulator = emulator,
                               .token_file = opts ? opts->token_file : NULL,
                               .endpoint = opts && opts->endpoint && *opts->endpoint ? st->endpoint : NULL};
    if ((rc = sl__gcs_auth_new(&ao, &st->auth)) < 0)
        goto on_error;
    st->retry.max_attempts = !opts || !opts->retries ? 0 : opts->retries == SL_NO_RETRIES ? 1 : opts->retries + 1;
    st->retry.initial_delay_ms = opts ? opts->retry_initial_ms : 0;
    st->retry.max_delay_ms = opts ? opts->retry_max_ms : 0;
    st->retry.deadline_ms = opts ? opts->retry_deadline_ms : 0;
    sl__retry_defaults(&st->retry);
    st->health.deadline_ms = st->retry.deadline_ms;
    uint64_t chunk = opts && opts->upload_chunk_bytes ? opts->upload_chunk_bytes : S_DEFAULT_CHUNK;
    st->chunk = (chunk + S_UPLOAD_QUANTUM - 1) / S_UPLOAD_QUANTUM * S_UPLOAD_QUANTUM;
    *out = &st->base;
    return 0;

on_error:
    s_close(&st->base);
    return rc;
}

static void s_client_destroy(sl_client *base) {
    s_client *c = (s_client *)base;
    if (c->z_ready)
        inflateEnd(&c->z);
    free(c->zin);
    sl__http_destroy(c->http);
    free(c->url);
    free(c->name);
    free(c->auth);
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
    c->name = malloc(4096);
    c->auth = malloc(S_AUTH_CAP);
    sl__http_options ho = {.health = &s_st(&c->base)->health, .thread_owned = true};
    c->http = sl__http_new(&ho);
    if (!c->url || !c->name || !c->auth || !c->http) {
        s_client_destroy(&c->base);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    c->rng = (uint64_t)(uintptr_t)c ^ (uint64_t)sl__now_ms() * 0x9E3779B97F4A7C15ull;
    *out = &c->base;
    return 0;
}

/* URL of one object's metadata: {endpoint}/storage/v1/b/{bucket}/o/{name} */
static size_t s_object_url(s_client *c, const char *name, const char *api) {
    s_store *st = s_st(&c->base);
    size_t at = 0;
    s_url_add(c, &at, st->endpoint, false);
    s_url_add(c, &at, api, false);
    s_url_add(c, &at, "/b/", false);
    s_url_add(c, &at, st->bucket, true);
    s_url_add(c, &at, "/o/", false);
    s_url_add(c, &at, name, true);
    return at;
}

/* ---- listing ---- */

typedef struct s_lister {
    sl_lister base;
    s_client *client;
    bool recursive;
    bool fingerprints;
    size_t page_size;
    char *start_offset; /* full name: list names >= this */
    char *start_after;  /* key: skip names <= this */
    char *page_token;
    bool last_page;
    int failed; /* <0: the listing went wrong in a way asking again would repeat (sticky) */
    sl__token_cycle cycle;
    unsigned long pages;
    sl__gcs_page page;
    char key[4096];
    char fp[S_FP_CAP]; /* the source fingerprint of the last object returned */
} s_lister;

static int s_fetch_page(s_lister *l) {
    s_client *c = l->client;
    s_store *st = s_st(&c->base);
    sl__gcs_page_clear(&l->page);
    size_t at = 0;
    s_url_add(c, &at, st->endpoint, false);
    s_url_add(c, &at, "/storage/v1/b/", false);
    s_url_add(c, &at, st->bucket, true);
    s_url_add(c, &at, "/o?fields=", false);
    s_url_add(c, &at, l->fingerprints ? S_LIST_FIELDS_FP : S_LIST_FIELDS, true);
    char num[32];
    snprintf(num, sizeof(num), "&maxResults=%zu", l->page_size);
    s_url_add(c, &at, num, false);
    if (st->prefix[0]) {
        s_url_add(c, &at, "&prefix=", false);
        s_url_add(c, &at, st->prefix, true);
    }
    if (!l->recursive)
        s_url_add(c, &at, "&delimiter=%2F", false);
    if (l->start_offset) {
        s_url_add(c, &at, "&startOffset=", false);
        s_url_add(c, &at, l->start_offset, true);
    }
    if (l->page_token) {
        s_url_add(c, &at, "&pageToken=", false);
        s_url_add(c, &at, l->page_token, true);
    }
    if (at >= S_URL_CAP)
        return sl__fail(SL_ENAMETOOLONG, "gs://%s: listing URL too long", st->bucket);
    sl__http_request req = {.method = "GET", .url = c->url, .body_cap = S_PAGE_CAP};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    int rc = s_perform(c, &req, NULL, &resp, true, &a);
    if (rc < 0)
        return rc;
    if (resp.status != 200) {
        if (resp.status == 404)
            return sl__fail(SL_ENOENT, "gs://%s: no such bucket (check the name, or create it first)", st->bucket);
        return s_http_error(c, st->prefix, &resp);
    }
    if ((rc = sl__gcs_page_parse(&l->page, resp.body, resp.body_len, st->bucket)) < 0)
        return rc;
    const char *token = sl__gcs_page_token(&l->page);
    l->pages++;
    if (token && (rc = sl__token_cycle_seen(&l->cycle, token)) != 0) {
        if (rc < 0)
            return rc;
        /* Following it would go round the same pages forever. */
        sl__gcs_page_clear(&l->page);
        l->failed = SL_ECORRUPT;
        return sl__fail(SL_ECORRUPT,
                        "%s: the server repeated a page token (its pages go round in a cycle; %lu pages read); "
                        "listing stopped",
                        sl_store_url(&st->base), l->pages);
    }
    free(l->page_token);
    l->page_token = NULL;
    if (token) {
        if (!(l->page_token = strdup(token)))
            return sl__fail(SL_ENOMEM, "out of memory");
    } else {
        l->last_page = true;
    }
    return 0;
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
    if (opts->start_after) {
        size_t n = strlen(st->prefix) + strlen(opts->start_after) + 1;
        l->start_offset = malloc(n);
        l->start_after = strdup(opts->start_after);
        if (l->start_offset)
            snprintf(l->start_offset, n, "%s%s", st->prefix, opts->start_after);
    }
    int rc = (opts->start_after && (!l->start_offset || !l->start_after)) ? sl__fail(SL_ENOMEM, "out of memory")
                                                                          : s_fetch_page(l);
    if (rc < 0) {
        sl__gcs_page_clear(&l->page);
        free(l->start_offset);
        free(l->start_after);
        free(l->page_token);
        sl__token_cycle_free(&l->cycle);
        free(l);
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
        if (sl__gcs_page_next(&l->page, &name, out) == 0) {
            if (l->last_page)
                return 0;
            int rc = s_fetch_page(l);
            if (rc < 0)
                return rc;
            continue;
        }
        size_t nlen = strlen(name);
        if (strncmp(name, st->prefix, plen) != 0) {
            /* Cutting the prefix off a name that does not have it would make up a key. */
            char shown[256];
            sl_text_escape(shown, sizeof(shown), name, nlen < 120 ? nlen : 120);
            l->failed = SL_ECORRUPT;
            return sl__fail(SL_ECORRUPT,
                            "%s: the server listed '%s%s', which is not under the prefix asked for; listing stopped",
                            sl_store_url(&st->base), shown, nlen > 120 ? "..." : "");
        }
        if (nlen <= plen || nlen - plen >= sizeof(l->key))
            continue; /* the prefix "directory" placeholder itself, or a name we cannot hold */
        memcpy(l->key, name + plen, nlen - plen + 1);
        if (l->start_after && strcmp(l->key, l->start_after) <= 0)
            continue;
        out->key = l->key;
        out->key_len = nlen - plen;
        out->source_fingerprint = s_fp_checked(out, out->source_fingerprint, l->fp, sizeof(l->fp));
        return 1;
    }
}

static void s_list_close(sl_lister *base) {
    s_lister *l = (s_lister *)base;
    sl__gcs_page_clear(&l->page);
    free(l->start_offset);
    free(l->start_after);
    free(l->page_token);
    sl__token_cycle_free(&l->cycle);
    free(l);
}

/* ---- stat, delete ---- */

/* The metadata of object `name`; of its generation `generation` when that is not 0 (SL_ENOENT once it is replaced).
 * `aside`: a lookup between the attempts of a write (sl__http_request.aside). */
static int s_stat_gen(s_client *c, const char *name, int64_t generation, bool aside, sl_object *out) {
    size_t at = s_object_url(c, name, "/storage/v1");
    s_url_add(c, &at, "?fields=" S_OBJECT_FIELDS, false);
    if (generation) {
        char num[48];
        snprintf(num, sizeof(num), "&generation=%" PRId64, generation);
        s_url_add(c, &at, num, false);
    }
    sl__http_request req = {.method = "GET", .url = c->url, .aside = aside};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    int rc = s_perform(c, &req, NULL, &resp, true, &a);
    if (rc < 0)
        return rc;
    if (resp.status != 200)
        return s_http_error(c, name, &resp);
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return sl__fail(SL_ECORRUPT, "gs://%s/%s: metadata is not valid JSON", s_st(&c->base)->bucket, name);
    }
    s_object_from_json(doc, out);
    out->source_fingerprint = s_fp_checked(out, out->source_fingerprint, c->fp, sizeof(c->fp));
    json_decref(doc);
    return 0;
}

static int s_stat_name(s_client *c, const char *name, sl_object *out) {
    return s_stat_gen(c, name, 0, false, out);
}

/* s_stat_name for a lookup between the attempts of a write: its answer is not the object's status. */
static int s_probe_name(s_client *c, const char *name, sl_object *out) {
    return s_stat_gen(c, name, 0, true, out);
}

static int s_stat(sl_client *base, const char *key, sl_object *out) {
    s_client *c = (s_client *)base;
    int rc = s_full_name(c, key, c->name, 4096);
    if (rc == 0)
        rc = s_stat_name(c, c->name, out);
    if (rc == 0) {
        out->key = key;
        out->key_len = strlen(key);
    }
    return rc;
}

static int s_del(sl_client *base, const char *key) {
    s_client *c = (s_client *)base;
    int rc = s_full_name(c, key, c->name, 4096);
    if (rc < 0)
        return rc;
    s_object_url(c, c->name, "/storage/v1");
    sl__http_request req = {.method = "DELETE", .url = c->url};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    if ((rc = s_perform(c, &req, NULL, &resp, true, &a)) < 0)
        return rc;
    if (resp.status == 404 && a.base.retries > 0)
        return 0; /* an earlier attempt deleted it and its answer was lost */
    if (resp.status != 200 && resp.status != 204)
        return s_http_error(c, c->name, &resp);
    return 0;
}

/* ---- reads ---- */

/* A reader works on two levels. The stream is the object's stored bytes [offset, end): ranged GETs that resume where
 * a broken answer stopped, pinned to the generation first seen, and checked: a whole read against the object's size
 * and CRC32C, a range against what the answer says it holds. An object stored gzip-compressed (Content-Encoding:
 * gzip) is asked for as stored (Accept-Encoding: gzip, so that its stored bytes are what is checked), read from its
 * first byte and decompressed on the way out: the caller's offset and length then count decompressed bytes. */
typedef struct s_reader {
    sl_reader base;
    s_client *client;
    char *name;
    int64_t generation; /* pinned after the first answer: a resumed read must see the same object */
    uint64_t offset;    /* next stored byte to deliver */
    uint64_t end;       /* one past the last stored byte wanted, UINT64_MAX until known */
    uint64_t size;      /* the object's stored size as the answers tell it, UINT64_MAX until known */
    uint64_t skip;      /* bytes at the start of the open answer to drop: a 200 (the whole object) to a ranged GET */
    uint64_t body_end;  /* where the open answer's body ends (a stored offset), UINT64_MAX if it did not say */
    bool whole;         /* the stream covers the whole object: its size and CRC32C are checked */
    bool has_crc;
    bool hash_header; /* expected_crc came with an answer (x-goog-hash) rather than from the metadata */
    uint32_t expected_crc, crc;
    bool open;     /* a stream is open on the client's sl__http */
    bool identity; /* the server compressed a plain object on the fly: ask it not to */
    int final_rc;  /* 1 until the end of the stream is checked, then the result of that check */
    /* Decompression of a gzip-encoded object (the client's z_stream). */
    bool gunzip;
    bool member_open;  /* inside a gzip member */
    bool stored_done;  /* the stream delivered its last byte and passed its checks */
    uint64_t dec_skip; /* decompressed bytes still to drop before the caller's offset */
    uint64_t dec_left; /* decompressed bytes still to deliver; UINT64_MAX: to the end */
    s_attempts attempts;
    uint64_t progress_mark; /* the stored offset where the count of `attempts` last started (s_progressed) */
} s_reader;

/* Server text in a message: `text` itself, or a note that it was left out because it quotes a credential. */
static const char *s_said(s_client *c, const char *text) {
    return sl__gcs_auth_mentions_secret(s_st(&c->base)->auth, text) ? "(not shown: it quotes a credential)" : text;
}

/* The object turned out to be stored gzip-compressed, before any of it was delivered: from now on the stream is the
 * whole stored object, and what the caller asked for ([offset, end) so far) counts decompressed bytes. */
static int s_gunzip_start(s_reader *r) {
    s_client *c = r->client;
    if (!c->zin && !(c->zin = malloc(S_ZIN_CAP)))
        return sl__fail(SL_ENOMEM, "out of memory");
    if (!c->z_ready) {
        memset(&c->z, 0, sizeof(c->z));
        if (inflateInit2(&c->z, 16 + MAX_WBITS) != Z_OK) /* 16: gzip members only */
            return sl__fail(SL_ENOMEM, "out of memory (zlib)");
        c->z_ready = true;
    }
    c->z.next_in = c->zin;
    c->z.avail_in = 0;
    r->gunzip = true;
    r->member_open = false;
    r->dec_skip = r->offset;
    r->dec_left = r->end == UINT64_MAX ? UINT64_MAX : r->end - r->offset;
    r->offset = 0;
    r->progress_mark = 0;
    r->end = UINT64_MAX;
    r->whole = true;
    r->crc = 0;
    return 0;
}

/* Judges the headers of a 200 or 206 answer to the GET s_reader_connect made (`ranged`: with a Range header) and sets
 * the reader up to read its body. Returns 0; 1 when this answer is not the one to read and the GET is to be made
 * again (the object turned out to be gzip-encoded and a range of its compressed bytes is of no use; or the server
 * compressed a plain object on the fly); <0 when it cannot be read. */
static int s_reader_accept(s_reader *r, const sl__http_response *resp, sl_object *info) {
    s_client *c = r->client;
    s_store *st = s_st(&c->base);
    int64_t gen = resp->goog_generation[0] ? strtoll(resp->goog_generation, NULL, 10) : 0;
    if (r->generation && gen && gen != r->generation)
        /* A server that ignored the generation asked for: its bytes are of another version of the object. */
        return sl__fail(SL_ECORRUPT,
                        "gs://%s/%s: the server answered with generation %" PRId64 " a read of generation %" PRId64
                        " (not accepted: two versions would be mixed)",
                        st->bucket, r->name, gen, r->generation);
    if (!r->generation)
        r->generation = gen;
    if (!r->has_crc && s_hash_crc(resp->goog_hash, &r->expected_crc))
        r->has_crc = r->hash_header = true;

    /* The body must be the stored bytes, as they are or gzip-compressed, or there is nothing to check it against. */
    bool gz_body = sl__gcs_is_gzip(resp->content_encoding, strlen(resp->content_encoding));
    bool stored_gz = sl__gcs_is_gzip(resp->stored_encoding, strlen(resp->stored_encoding));
    bool stored_plain = resp->stored_encoding[0] && !stored_gz;
    if (!gz_body && resp->content_encoding[0] && strcasecmp(resp->content_encoding, "identity") != 0)
        return sl__fail(SL_EIO,
                        "gs://%s/%s: the server sent the object with Content-Encoding '%s', which sluice cannot decode",
                        st->bucket, r->name, s_said(c, resp->content_encoding));
    if (gz_body && stored_plain) {
        if (r->identity)
            return sl__fail(SL_EIO,
                            "gs://%s/%s: the server compresses the object on the fly even when asked not to "
                            "(Accept-Encoding: identity): what it sends cannot be checked against its CRC32C",
                            st->bucket, r->name);
        r->identity = true; /* its x-goog-hash is of the uncompressed bytes: have those sent */
        return 1;
    }
    if (!gz_body && (stored_gz || r->gunzip))
        return sl__fail(
            SL_EIO,
            "gs://%s/%s: the object is stored gzip-compressed, but the server sent it decompressed although "
            "sluice asked for the stored bytes (Accept-Encoding: gzip): they cannot be checked against its "
            "CRC32C",
            st->bucket, r->name);
    if (gz_body && !r->gunzip) {
        int rc = s_gunzip_start(r);
        if (rc < 0)
            return rc;
        if (resp->status == 206)
            return 1; /* a range of compressed bytes: ask for the whole object instead */
    }

    uint64_t first, last, total = UINT64_MAX;
    if (resp->status == 206) {
        if (!sl__content_range_parse(resp->content_range, &first, &last, &total) || first != r->offset)
            return sl__fail(SL_EIO, "gs://%s/%s: server answered a different range (%s)", st->bucket, r->name,
                            s_said(c, resp->content_range));
        if (resp->content_length >= 0 && (uint64_t)resp->content_length != last - first + 1)
            return sl__fail(SL_ECORRUPT,
                            "gs://%s/%s: the answer holds %" PRId64 " bytes but says they are %s (not accepted)",
                            st->bucket, r->name, resp->content_length, s_said(c, resp->content_range));
        r->skip = 0;
        r->body_end = last + 1;
    } else {
        /* A 200 is the whole object, whatever range was asked for: its bytes before the offset are dropped. */
        if (resp->content_length >= 0)
            total = (uint64_t)resp->content_length;
        r->skip = r->offset;
        r->body_end = total;
    }
    if (resp->stored_length >= 0) {
        if (total != UINT64_MAX && total != (uint64_t)resp->stored_length)
            return sl__fail(SL_ECORRUPT,
                            "gs://%s/%s: the answer holds %" PRIu64 " bytes but the object has %" PRId64
                            " (x-goog-stored-content-length): cut short or padded, not accepted",
                            st->bucket, r->name, total, resp->stored_length);
        total = (uint64_t)resp->stored_length;
    }
    if (total != UINT64_MAX) {
        if (r->size != UINT64_MAX && r->size != total)
            return sl__fail(SL_ECORRUPT,
                            "gs://%s/%s: one answer says the object has %" PRIu64 " bytes, another %" PRIu64
                            " (not accepted)",
                            st->bucket, r->name, r->size, total);
        r->size = total;
        if (r->offset > total)
            return sl__fail(SL_ERANGE, "gs://%s/%s: offset %" PRIu64 " is past the end (%" PRIu64 " bytes)", st->bucket,
                            r->name, r->offset, total);
        if (r->end == UINT64_MAX || r->end > total)
            r->end = total; /* a range past the end is clamped, as the server does */
    }
    if (info) {
        memset(info, 0, sizeof(*info));
        info->size = total;
        info->generation = r->generation;
        info->crc32c = r->expected_crc;
        info->has_crc32c = r->has_crc;
        info->content_encoding = r->gunzip ? SL__GCS_GZIP : NULL;
    }
    return 0;
}

/* (Re)opens the media stream at r->offset. Retries open failures; on success r->open is true. */
static int s_reader_connect(s_reader *r, sl_object *info) {
    s_client *c = r->client;
    s_store *st = s_st(&c->base);
    for (;;) {
        size_t at = s_object_url(c, r->name, "/storage/v1");
        s_url_add(c, &at, "?alt=media", false);
        char num[64];
        if (r->generation) {
            snprintf(num, sizeof(num), "&generation=%" PRId64, r->generation);
            s_url_add(c, &at, num, false);
        }
        /* Accept-Encoding: gzip asks for the stored bytes of a gzip-encoded object (GCS would decompress it
         * otherwise, and its checksums would not apply). */
        char range[96] = "";
        const char *extra[3] = {r->identity ? "Accept-Encoding: identity" : "Accept-Encoding: gzip", NULL, NULL};
        if (r->offset > 0 || r->end != UINT64_MAX) {
            if (r->end != UINT64_MAX)
                snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, r->offset, r->end - 1);
            else
                snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", r->offset);
            extra[1] = range;
        }
        const char *headers[8 + S_MAX_USER_HEADERS];
        int rc = s_auth_headers(c, extra, headers, 8 + S_MAX_USER_HEADERS);
        if (rc < 0) {
            if (s_auth_outage(c, rc, &r->attempts))
                continue;
            return rc;
        }
        sl__http_request req = {.method = "GET", .url = c->url, .headers = headers};
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
            if (rc != 0)
                sl__http_stream_close(c->http);
            if (rc == 1)
                continue;
            if (rc < 0)
                return rc;
            r->open = true;
            return 0;
        }
        /* An error answer: read its (small) body for the message, then decide. */
        static _Thread_local char body[4096];
        size_t blen = 0;
        int64_t n;
        while (blen < sizeof(body) - 1 && (n = sl__http_stream_read(c->http, body + blen, sizeof(body) - 1 - blen)) > 0)
            blen += (size_t)n;
        body[blen] = '\0';
        sl__http_stream_close(c->http);
        resp.body = body;
        resp.body_len = blen;
        if (resp.status == 401 && c->auth[0] && !r->attempts.refreshed) {
            r->attempts.refreshed = true;
            sl__gcs_auth_invalidate(st->auth, c->auth);
            continue;
        }
        if (sl__retry_status(resp.status) && s_backoff(c, &r->attempts))
            continue;
        return s_http_error(c, r->name, &resp);
    }
}

static void s_read_close(sl_reader *base) {
    s_reader *r = (s_reader *)base;
    if (r->open)
        sl__http_stream_close(r->client->http);
    free(r->name);
    free(r);
}

static int s_read_open_at(sl_client *base, const char *key, uint64_t offset, uint64_t length, int64_t generation,
                          sl_object *info, sl_reader **out) {
    s_client *c = (s_client *)base;
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
    r->generation = generation; /* 0: the first answer's, kept for the resumes */
    if (r->end == offset) {
        /* An empty range: nothing to fetch, but the object must exist. */
        sl_object obj;
        rc = s_stat_name(c, r->name, &obj);
        if (rc == 0 && offset > obj.size)
            rc = sl__fail(SL_ERANGE, "gs://%s/%s: offset %" PRIu64 " is past the end (%" PRIu64 " bytes)",
                          s_st(base)->bucket, r->name, offset, obj.size);
        if (rc == 0 && info)
            *info = obj;
    } else {
        rc = s_reader_connect(r, info);
        if (rc == SL_ERANGE && !r->gunzip) {
            /* GCS answers 416 to any range of an empty object, and to an offset at the very end: both are an
             * empty read when the offset equals the size. And the offset into a gzip-encoded object counts
             * decompressed bytes, of which there are more than the 416 was about. */
            sl_object obj;
            int src = s_stat_name(c, r->name, &obj);
            if (src == 0 && obj.content_encoding) {
                r->generation = obj.generation;
                if ((rc = s_gunzip_start(r)) == 0)
                    rc = s_reader_connect(r, info);
            } else if (src == 0 && offset == obj.size) {
                r->end = offset;
                rc = 0;
                if (info)
                    *info = obj;
            } else {
                rc = sl__fail(SL_ERANGE, "gs://%s/%s: offset %" PRIu64 " is past the end of the object",
                              s_st(base)->bucket, r->name, offset);
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

/* The stream delivered [offset, end): lets the answer finish, then checks what a whole read received against the
 * object. Returns 0 when it passes (and the same result on every later call), <0 otherwise. */
static int s_read_end(s_reader *r) {
    if (r->final_rc != 1)
        return r->final_rc;
    s_client *c = r->client;
    s_store *st = s_st(&c->base);
    int rc = 0;
    if (r->open) {
        /* Every byte has arrived, but curl has not yet seen the response end: let it, or closing now would drop a
         * connection the next object could reuse. More bytes than the answer announced are an error; the rest of
         * a whole object sent for a range is not (it is not wanted). */
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
                          "gs://%s/%s: the server sent more than the %" PRIu64 " bytes it announced (not accepted)",
                          st->bucket, r->name, r->end);
    }
    if (rc == 0 && r->whole && !r->hash_header) {
        /* No x-goog-hash came with the data (a server that is not GCS): the object's metadata, of the same
         * generation, tells its size and CRC32C. */
        sl_object obj;
        rc = s_stat_gen(c, r->name, r->generation, false, &obj);
        if (rc == 0) {
            r->size = obj.size;
            r->has_crc = obj.has_crc32c;
            r->expected_crc = obj.crc32c;
        }
    }
    if (rc == 0 && r->whole && r->size != UINT64_MAX && r->offset != r->size)
        rc = sl__fail(SL_ECORRUPT,
                      "gs://%s/%s: received %" PRIu64 " bytes but the object has %" PRIu64
                      ": the answer was cut short or padded (not accepted)",
                      st->bucket, r->name, r->offset, r->size);
    if (rc == 0 && r->whole && r->has_crc && r->crc != r->expected_crc)
        rc = sl__fail(SL_ECORRUPT, "gs://%s/%s: CRC32C mismatch: received data has %08x, the object has %08x",
                      st->bucket, r->name, r->crc, r->expected_crc);
    r->final_rc = rc;
    return rc;
}

/* The stream broke (`n`: what the read returned) and no retry is left: says where the download stopped and that its
 * resumes got no further, after the transport's own reason. An abandoned request keeps its own message. */
static int s_download_gave_up(s_reader *r, int64_t n) {
    s_store *st = s_st(&r->client->base);
    if (n < 0 && n != SL_EIO)
        return (int)n;
    if (sl__http_aborted())
        return sl__fail(SL_ECANCELED, "gs://%s/%s: download stopped at byte %" PRIu64 ": the job is stopping",
                        st->bucket, r->name, r->offset);
    char why[1024];
    snprintf(why, sizeof(why), "%s", n < 0 ? sl_last_error() : "the answer ended early");
    char of[48] = "";
    if (r->end != UINT64_MAX)
        snprintf(of, sizeof(of), " of %" PRIu64, r->end);
    return sl__fail(SL_EIO,
                    "gs://%s/%s: download stopped at byte %" PRIu64 "%s: %s (%u attempts in a row brought less than "
                    "%u KiB in all: only attempts without progress count against --retries and --retry-deadline-ms)",
                    st->bucket, r->name, r->offset, of, why, r->attempts.base.retries + 1,
                    (unsigned)(S_PROGRESS_BYTES / 1024));
}

/* Stored bytes of the stream into buf: >0, 0 once [offset, end) has been delivered and passed its checks, <0. */
static int64_t s_read_stored(s_reader *r, void *buf, size_t cap) {
    s_client *c = r->client;
    while (r->offset < r->end) {
        if (!r->open) {
            int rc = s_reader_connect(r, NULL);
            if (rc < 0)
                return rc;
            continue; /* the answer may have moved the end */
        }
        bool dropping = r->skip > 0;
        uint64_t want = dropping ? r->skip : r->end - r->offset;
        int64_t n = sl__http_stream_read(c->http, buf, want < cap ? (size_t)want : cap);
        if (n > 0 && dropping) {
            r->skip -= (uint64_t)n;
            continue;
        }
        if (n > 0) {
            if (r->whole)
                r->crc = sl__crc32c_update(r->crc, buf, (size_t)n);
            r->offset += (uint64_t)n;
            return n;
        }
        /* The stream ended or broke before the end: resume at the offset reached, same generation. */
        sl__http_stream_close(c->http);
        r->open = false;
        if (n == 0 && r->end == UINT64_MAX && !dropping)
            break;
        s_progressed(&r->attempts, &r->progress_mark, r->offset);
        if (!s_backoff(c, &r->attempts))
            return s_download_gave_up(r, n);
    }
    return s_read_end(r);
}

/* Decompressed bytes of a gzip-encoded object (one or more members, as gzip -d reads them). */
static int64_t s_read_gunzip(s_reader *r, unsigned char *buf, size_t cap) {
    s_client *c = r->client;
    s_store *st = s_st(&c->base);
    z_stream *z = &c->z;
    if (cap > UINT_MAX)
        cap = UINT_MAX;
    for (;;) {
        if (r->dec_left == 0)
            return 0;
        if (z->avail_in == 0 && !r->stored_done) {
            int64_t n = s_read_stored(r, c->zin, S_ZIN_CAP);
            if (n < 0)
                return n;
            r->stored_done = n == 0;
            z->next_in = c->zin;
            z->avail_in = (uInt)n;
        }
        if (z->avail_in == 0) {
            if (r->member_open)
                return sl__fail(SL_ECORRUPT, "gs://%s/%s: its gzip data ends in the middle of a member (truncated)",
                                st->bucket, r->name);
            if (r->dec_skip > 0)
                return sl__fail(SL_ERANGE, "gs://%s/%s: offset is past the end of the decompressed object", st->bucket,
                                r->name);
            return 0;
        }
        if (!r->member_open) {
            inflateReset(z);
            r->member_open = true;
        }
        z->next_out = buf;
        z->avail_out = (uInt)cap;
        int zr = inflate(z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END)
            r->member_open = false;
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return sl__fail(SL_ECORRUPT, "gs://%s/%s: its stored bytes are not valid gzip data (%s)", st->bucket,
                            r->name, z->msg ? z->msg : "zlib error");
        size_t got = cap - z->avail_out;
        if (r->dec_skip) {
            size_t drop = got < r->dec_skip ? got : (size_t)r->dec_skip;
            memmove(buf, buf + drop, got - drop);
            got -= drop;
            r->dec_skip -= drop;
        }
        if (r->dec_left != UINT64_MAX) {
            if (got > r->dec_left)
                got = (size_t)r->dec_left;
            r->dec_left -= got;
        }
        if (got)
            return (int64_t)got;
    }
}

static int64_t s_read(sl_reader *base, void *buf, size_t cap) {
    s_reader *r = (s_reader *)base;
    return r->gunzip ? s_read_gunzip(r, buf, cap) : s_read_stored(r, buf, cap);
}

/* ---- writes ---- */

typedef struct s_writer {
    sl_writer base;
    s_client *client;
    char *name;
    size_t len;         /* bytes buffered in the client's upload buffer (after the preamble room) */
    uint64_t sent;      /* bytes already persisted by the resumable session */
    uint64_t size_hint; /* the size the object should have (sl_write_options), 0 if unknown */
    uint32_t crc;       /* of everything written */
    int64_t if_gen;     /* sl_write_options.if_generation_match: ifGenerationMatch of every attempt; -1: none given */
    char *session;      /* resumable upload session URI, NULL until the first chunk */
    char *fingerprint;  /* recorded as the custom metadata S_META_KEY; NULL: none */
} s_writer;

static unsigned char *s_data(s_client *c) {
    return c->up + S_PREAMBLE_CAP;
}

/* Bytes mapped for `data` bytes of data room. */
static size_t s_map_size(size_t data) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = S_PREAMBLE_CAP + data + S_TRAILER_CAP;
    return (n + page - 1) / page * page;
}

/* Maps the upload buffer anew for `data` bytes of data room, keeping what it holds. mmap rather than malloc: what is
 * given back returns to the system at once, instead of staying in an allocator's arena, outside any budget. The
 * budget is the caller's business. */
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

/* Makes more data room, towards `need` bytes (at most a chunk). With a budget, the first quantum is waited for (the
 * job promised one to each writer), and room beyond it is taken only from what the budget has to spare now, in
 * smaller steps when a large one does not fit: a writer never waits for memory it merely wants, and a writer that has
 * its quantum can always go on, sending what it holds as a chunk of a resumable upload. Returns 0 when the room grew
 * (or was enough), 1 when no more can be had now, <0 on error. */
static int s_grow(s_client *c, size_t need) {
    s_store *st = s_st(&c->base);
    size_t chunk = (size_t)st->chunk, have = c->up_data;
    if (need <= have)
        return 0;
    size_t target = s_quanta(need > 2 * (uint64_t)have ? need : 2 * (uint64_t)have);
    if (target > chunk)
        target = chunk;
    if (!st->budget)
        return s_remap(c, target);
    if (!c->up_budget) {
        size_t first = s_map_size(S_UPLOAD_QUANTUM);
        if (!sl__pool_reserve(st->budget, first))
            return sl__fail(SL_ECANCELED, "gs://%s: no upload buffer: the job is stopping", st->bucket);
        c->up_budget = first;
        int rc = s_remap(c, S_UPLOAD_QUANTUM);
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
        size_t extra = s_map_size(target) - c->up_budget;
        if (sl__pool_try_reserve(st->budget, extra)) {
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

/* After an object: back to one quantum, the rest returned (to the budget and to the system). */
static void s_shrink(s_client *c) {
    s_store *st = s_st(&c->base);
    if (c->up_data <= S_UPLOAD_QUANTUM || s_remap(c, S_UPLOAD_QUANTUM) < 0)
        return;
    if (st->budget && c->up_budget > c->up_map) {
        sl__pool_unreserve(st->budget, c->up_budget - c->up_map);
        c->up_budget = c->up_map;
    }
}

static int s_write_open(sl_client *base, const char *key, const sl_write_options *opts, sl_writer **out) {
    s_client *c = (s_client *)base;
    int rc = s_full_name(c, key, c->name, 4096);
    if (rc < 0)
        return rc;
    const char *fp = opts->source_fingerprint;
    if (fp && (!fp[0] || strlen(fp) >= S_FP_CAP))
        return sl__fail(SL_EINVAL, "gs://%s/%s: a source fingerprint must be 1 to %d characters", s_st(base)->bucket,
                        c->name, S_FP_CAP - 1);
    if (opts->if_generation_match_set && opts->if_generation_match < 0)
        return sl__fail(SL_EINVAL,
                        "gs://%s/%s: if_generation_match must be 0 (no object) or a generation, not %" PRId64,
                        s_st(base)->bucket, c->name, opts->if_generation_match);
    s_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->name = strdup(c->name)) || (fp && !(w->fingerprint = strdup(fp)))) {
        if (w)
            free(w->name);
        free(w);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    w->base.client = base;
    w->client = c;
    w->size_hint = opts->size_hint;
    w->if_gen = opts->if_generation_match_set ? opts->if_generation_match : -1;
    *out = &w->base;
    return 0;
}

static void s_write_free(s_writer *w) {
    s_shrink(w->client);
    free(w->fingerprint);
    free(w->session);
    free(w->name);
    free(w);
}

/* Checks an upload answer that should carry the object; true if it matches what we sent. */
static bool s_landed(s_client *c, s_writer *w, uint64_t size) {
    sl_object obj;
    return s_probe_name(c, w->name, &obj) == 0 && obj.size == size && obj.has_crc32c && obj.crc32c == w->crc;
}

/* `"metadata":{"sluice-source":"<fingerprint> out_size=N out_crc32c=X"}` for an object of `size` bytes with the CRC32C
 * of everything written (s_fp_checked reads it back), or "" when there is no fingerprint. */
static void s_custom_metadata(const s_writer *w, uint64_t size, char *buf, size_t cap) {
    buf[0] = '\0';
    if (!w->fingerprint)
        return;
    char value[S_FP_CAP + S_OUT_CAP];
    snprintf(value, sizeof(value), "%s" S_OUT_FMT, w->fingerprint, size, w->crc);
    int n = snprintf(buf, cap, "\"metadata\":{\"" S_META_KEY "\":");
    size_t q = sl_json_quote(buf + n, cap - (size_t)n, value, strlen(value));
    if ((size_t)n + q + 2 > cap) {
        buf[0] = '\0';
        return;
    }
    memcpy(buf + n + q, "}", 2);
}

/* The object an upload created, as the answer that completed it (or a stat) describes it. */
typedef struct s_created {
    uint64_t size;
    uint32_t crc32c;
    bool has_crc32c;
    int64_t generation;
    int64_t metageneration; /* 0 if not given */
} s_created;

/* Reads an object resource; false when the body is not one (no size or generation). */
static bool s_created_parse(const char *body, size_t len, s_created *out) {
    memset(out, 0, sizeof(*out));
    json_t *doc = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    bool ok = false;
    if (json_is_object(doc) && json_object_get(doc, "size") && json_object_get(doc, "generation")) {
        out->size = s_json_u64(json_object_get(doc, "size"));
        out->generation = (int64_t)s_json_u64(json_object_get(doc, "generation"));
        out->metageneration = (int64_t)s_json_u64(json_object_get(doc, "metageneration"));
        const char *crc = json_string_value(json_object_get(doc, "crc32c"));
        out->has_crc32c = crc && sl__gcs_unb64_crc(crc, &out->crc32c);
        ok = out->generation > 0;
    }
    json_decref(doc);
    return ok;
}

/* Deletes exactly generation `gen` of `name` (ifGenerationMatch), so that only what this client created can go. 0
 * once that generation is gone (now, earlier, or replaced by a newer one); <0 with the reason. */
static int s_delete_generation(s_client *c, const char *name, int64_t gen) {
    size_t at = s_object_url(c, name, "/storage/v1");
    char num[48];
    snprintf(num, sizeof(num), "?ifGenerationMatch=%" PRId64, gen);
    s_url_add(c, &at, num, false);
    /* Cleanup after a failure: its answer is not the status that failed the object. */
    sl__http_request req = {.method = "DELETE", .url = c->url, .aside = true};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    int rc = s_perform(c, &req, NULL, &resp, true, &a); /* the precondition makes a repeat harmless */
    if (rc < 0)
        return rc;
    if (resp.status == 200 || resp.status == 204 || resp.status == 404 || resp.status == 412)
        return 0;
    return s_http_error(c, name, &resp);
}

/* Deletes exactly generation `gen` of the object being written (ifGenerationMatch), so that only what this upload
 * created can go. 0 once that generation is gone (now, earlier, or replaced by a newer one); <0 with the reason. */
static int s_delete_created(s_writer *w, int64_t gen) {
    return s_delete_generation(w->client, w->name, gen);
}

/* The object an upload created is not the one sent: it is deleted (that generation only), and the upload fails with
 * SL_ECORRUPT, so the job sends the object again before reporting it. Even if the delete fails, a rerun does not take
 * it for complete: a multipart upload's recorded output size and CRC32C are those sent, which the object does not
 * have, and a resumable upload's fingerprint is only attached once its object is checked (s_record_fingerprint). */
__attribute__((noinline, cold)) static int s_reject_created(s_writer *w, const s_created *obj, const char *what) {
    s_store *st = s_st(&w->client->base);
    char why[SL__MESSAGE_CAP] = "the object was deleted";
    if (s_delete_created(w, obj->generation) < 0)
        snprintf(why, sizeof(why), "deleting it failed (%s)", sl_last_error());
    return sl__fail(SL_ECORRUPT, "gs://%s/%s: %s; %s", st->bucket, w->name, what, why);
}

/* The object an upload made, asked for when the answer that completed it did not describe it. Out of line: its
 * answer's 4 KiB would otherwise be in the frame of every upload's check, and push every request below it deeper. */
__attribute__((noinline)) static int s_stat_created(s_writer *w, s_created *obj) {
    s_client *c = w->client;
    size_t at = s_object_url(c, w->name, "/storage/v1");
    s_url_add(c, &at, "?fields=size,generation,metageneration,crc32c", false);
    sl__http_request req = {.method = "GET", .url = c->url};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    int rc = s_perform(c, &req, NULL, &resp, true, &a);
    if (rc == 0 && resp.status != 200)
        rc = s_http_error(c, w->name, &resp);
    if (rc < 0)
        return rc;
    if (!s_created_parse(resp.body, resp.body_len, obj))
        return sl__fail(SL_ECORRUPT, "gs://%s/%s: metadata is not valid JSON", s_st(&c->base)->bucket, w->name);
    return 0;
}

/* The answer that completed an upload of `total` bytes must describe an object of that size with the CRC32C of the
 * bytes sent (when it gives one). An answer without the object resource is checked with a stat instead, which may see
 * a later writer's object: that one is reported, never deleted. Fills *obj. */
static int s_check_created(s_writer *w, const sl__http_response *resp, uint64_t total, s_created *obj) {
    s_client *c = w->client;
    s_store *st = s_st(&c->base);
    bool answered = s_created_parse(resp->body, resp->body_len, obj);
    if (!answered) {
        int rc = s_stat_created(w, obj);
        if (rc < 0)
            return rc;
    }
    if (obj->size == total && (!obj->has_crc32c || obj->crc32c == w->crc))
        return 0;
    char what[256], stored_crc[24] = "no CRC32C";
    if (obj->has_crc32c)
        snprintf(stored_crc, sizeof(stored_crc), "CRC32C %08" PRIx32, obj->crc32c);
    snprintf(what, sizeof(what),
             "upload completed, but the server stored %" PRIu64 " bytes (%s), not the %" PRIu64
             " bytes sent (CRC32C %08" PRIx32 ")",
             obj->size, stored_crc, total, w->crc);
    if (answered)
        return s_reject_created(w, obj, what);
    return sl__fail(SL_ECORRUPT, "gs://%s/%s: %s; left in place: it may be another writer's", st->bucket, w->name,
                    what);
}

/* A 200 or 201 to a chunk that was not the last: the server made an object of what it had, which is not the object
 * being written. `sent` bytes have been handed to the session so far, and more were to come. */
static int s_completed_early(s_writer *w, const sl__http_response *resp, uint64_t sent) {
    s_store *st = s_st(&w->client->base);
    free(w->session); /* complete: nothing left to cancel */
    w->session = NULL;
    char of[48];
    if (w->size_hint > sent)
        snprintf(of, sizeof(of), "%" PRIu64, w->size_hint);
    else
        snprintf(of, sizeof(of), "more than %" PRIu64, sent);
    s_created obj;
    if (!s_created_parse(resp->body, resp->body_len, &obj))
        return sl__fail(SL_ECORRUPT,
                        "gs://%s/%s: upload completed early, before %s bytes were sent, and the answer does not say "
                        "what was stored",
                        st->bucket, w->name, of);
    char what[128];
    snprintf(what, sizeof(what), "upload completed early at %" PRIu64 " of %s bytes", obj.size, of);
    return s_reject_created(w, &obj, what);
}

/* A resumable upload's metadata goes out before its bytes, so its fingerprint is attached only now that the object is
 * known to be the one sent: a patch of exactly that generation and metageneration, which cannot land on anything
 * else. A retry whose earlier attempt landed finds its value there. If it cannot be recorded (an account may create
 * objects without being allowed to update them), the object is still complete and committed: a rerun simply does not
 * know it is, as with a local file system that keeps no xattrs. */
static void s_record_fingerprint(s_writer *w, const s_created *obj) {
    if (!w->fingerprint)
        return;
    s_client *c = w->client;
    char custom[(S_FP_CAP + S_OUT_CAP) * 6 + 64], body[sizeof(custom) + 8];
    s_custom_metadata(w, obj->size, custom, sizeof(custom));
    if (!custom[0])
        return;
    snprintf(body, sizeof(body), "{%s}", custom);
    size_t at = s_object_url(c, w->name, "/storage/v1");
    char num[96];
    snprintf(num, sizeof(num), "?ifGenerationMatch=%" PRId64, obj->generation);
    s_url_add(c, &at, num, false);
    if (obj->metageneration > 0) {
        snprintf(num, sizeof(num), "&ifMetagenerationMatch=%" PRId64, obj->metageneration);
        s_url_add(c, &at, num, false);
    }
    s_url_add(c, &at, "&fields=generation", false);
    const char *extra[] = {"Content-Type: application/json; charset=UTF-8", NULL};
    sl__http_request req = {.method = "PATCH", .url = c->url, .body = body, .body_len = strlen(body)};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    (void)s_perform(c, &req, extra, &resp, true, &a); /* the preconditions make a repeat harmless */
}

/* The last answer of a resumable upload of `total` bytes completed it: check the object, then attach the
 * fingerprint. */
static int s_finish_resumable(s_writer *w, const sl__http_response *resp, uint64_t total) {
    free(w->session); /* complete: nothing left to cancel */
    w->session = NULL;
    s_created obj;
    int rc = s_check_created(w, resp, total, &obj);
    if (rc == 0)
        s_record_fingerprint(w, &obj);
    return rc;
}

/* A multipart upload's precondition failed: 0 when it failed against this very upload (an earlier attempt whose answer
 * was lost, or the request libcurl itself sends again when a reused connection breaks, landed meanwhile), else the
 * answer's error. The answer is read first: the lookup's request reuses the memory that holds it. Out of line, so that
 * its message buffer is not part of every upload's stack frame. */
__attribute__((noinline, cold)) static int s_precondition_failed(s_writer *w, const sl__http_response *resp) {
    int erc = s_http_error_at(w->client, w->name, resp, true);
    char why[SL__MESSAGE_CAP];
    snprintf(why, sizeof(why), "%s", sl_last_error());
    return s_landed(w->client, w, w->len) ? 0 : sl__fail(erc, "%s", why);
}

/* Single-request upload (multipart: metadata with the CRC32C, then the bytes). */
static int s_upload_multipart(s_writer *w) {
    s_client *c = w->client;
    s_store *st = s_st(&c->base);
    static const char boundary[] = "sluice_0f8c2e7b5a914d36";
    char crc[16];
    s_crc_b64(w->crc, crc);
    /* The preamble is made in the room in front of the data (S_PREAMBLE_CAP bytes), then moved to end right where
     * the data starts: one contiguous body, no copy of the object, and no 30 KiB of stack on every upload. */
    char *meta = (char *)c->up;
    size_t cap = S_PREAMBLE_CAP, m = 0;
    m += (size_t)snprintf(meta, cap,
                          "--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"name\":", boundary);
    size_t qn = sl_json_quote(NULL, 0, w->name, strlen(w->name));
    if (m + qn + 1024 > cap)
        return sl__fail(SL_ENAMETOOLONG, "gs://%s/%s: name too long", st->bucket, w->name);
    m += sl_json_quote(meta + m, cap - m, w->name, strlen(w->name));
    char custom[(S_FP_CAP + S_OUT_CAP) * 6 + 64];
    s_custom_metadata(w, w->len, custom, sizeof(custom));
    int k =
        snprintf(meta + m, cap - m, ",\"crc32c\":\"%s\"%s%s}\r\n--%s\r\nContent-Type: application/octet-stream\r\n\r\n",
                 crc, custom[0] ? "," : "", custom, boundary);
    if (k < 0 || (size_t)k >= cap - m)
        return sl__fail(SL_ENAMETOOLONG, "gs://%s/%s: name too long", st->bucket, w->name);
    m += (size_t)k;
    unsigned char *body = s_data(c) - m;
    memmove(body, meta, m);
    int t = snprintf((char *)s_data(c) + w->len, 64, "\r\n--%s--\r\n", boundary);
    char ctype[96];
    snprintf(ctype, sizeof(ctype), "Content-Type: multipart/related; boundary=%s", boundary);
    const char *extra[] = {ctype, NULL};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    /* The precondition the caller established goes with every attempt, the first one too: an attempt whose answer is
     * lost may still land later, and must then fail rather than make another generation. Without one, the first
     * attempt carries none. */
    int64_t if_gen = w->if_gen;
    for (;;) {
        size_t at = 0;
        s_url_add(c, &at, st->endpoint, false);
        s_url_add(c, &at, "/upload/storage/v1/b/", false);
        s_url_add(c, &at, st->bucket, true);
        s_url_add(c, &at, "/o?uploadType=multipart&fields=" S_OBJECT_FIELDS, false);
        if (if_gen >= 0) {
            char num[48];
            snprintf(num, sizeof(num), "&ifGenerationMatch=%" PRId64, if_gen);
            s_url_add(c, &at, num, false);
        }
        sl__http_request req = {.method = "POST", .url = c->url, .body = body, .body_len = m + w->len + (size_t)t};
        sl__http_response resp;
        int rc = s_perform(c, &req, extra, &resp, false, &a);
        bool ambiguous = rc == SL_EIO || (rc == 0 && sl__retry_status(resp.status));
        if (rc == 0 && resp.status == 200) {
            s_created obj;
            return s_check_created(w, &resp, w->len, &obj);
        }
        if (rc == 0 && resp.status == 412 && if_gen >= 0)
            return s_precondition_failed(w, &resp);
        if (rc < 0 && rc != SL_EIO)
            return rc;
        if (!ambiguous)
            return s_http_error_at(c, w->name, &resp, if_gen >= 0);
        /* The request may or may not have landed. If it did, we are done; if not, send it again, with the caller's
         * precondition or else over the generation we can see now, so a retry never clobbers an object written by
         * someone else meanwhile. */
        if (!s_backoff(c, &a))
            return rc < 0 ? rc : s_http_error_at(c, w->name, &resp, if_gen >= 0);
        if (s_landed(c, w, w->len))
            return 0;
        if (w->if_gen < 0) {
            sl_object obj;
            int src = s_probe_name(c, w->name, &obj);
            if_gen = src == 0 ? obj.generation : src == SL_ENOENT ? 0 : -1;
        }
    }
}

/* Parses a 308's "Range: bytes=0-N": persisted byte count (0 when absent). */
static uint64_t s_persisted(const sl__http_response *resp) {
    uint64_t a, b;
    if (resp->range[0] && sl__range_header_parse(resp->range, &a, &b) && b < UINT64_MAX)
        return b + 1;
    return 0;
}

static int s_start_session(s_writer *w) {
    s_client *c = w->client;
    s_store *st = s_st(&c->base);
    size_t at = 0;
    s_url_add(c, &at, st->endpoint, false);
    s_url_add(c, &at, "/upload/storage/v1/b/", false);
    s_url_add(c, &at, st->bucket, true);
    s_url_add(c, &at, "/o?uploadType=resumable&name=", false);
    s_url_add(c, &at, w->name, true);
    if (w->if_gen >= 0) {
        /* Checked now and again when the upload completes. */
        char num[48];
        snprintf(num, sizeof(num), "&ifGenerationMatch=%" PRId64, w->if_gen);
        s_url_add(c, &at, num, false);
    }
    const char *extra[] = {"Content-Type: application/json; charset=UTF-8", NULL};
    /* No fingerprint yet: it is attached once the object is complete and checked (s_record_fingerprint). */
    sl__http_request req = {.method = "POST", .url = c->url, .body = "{}", .body_len = 2};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    int rc = s_perform(c, &req, extra, &resp, true, &a); /* starting a session changes nothing: safe to repeat */
    if (rc < 0)
        return rc;
    if (resp.status != 200 && resp.status != 201)
        return s_http_error_at(c, w->name, &resp, w->if_gen >= 0);
    if (!resp.location[0])
        return sl__fail(SL_EIO, "gs://%s/%s: resumable upload answered without a session URI", st->bucket, w->name);
    w->session = strdup(resp.location);
    return w->session ? 0 : sl__fail(SL_ENOMEM, "out of memory");
}

/* Sends the buffered bytes [w->sent .. w->sent + w->len) as the next chunk; `final` also completes the upload.
 * After a failure, asks the session how much it has and resends from there. */
static int s_send_chunk(s_writer *w, bool final) {
    s_client *c = w->client;
    s_store *st = s_st(&c->base);
    uint64_t base_off = w->sent; /* first byte in the buffer */
    uint64_t total = base_off + w->len;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    uint64_t from = base_off, mark = base_off;
    for (;;) {
        char range[128], hash[64] = "";
        if (from == total)
            snprintf(range, sizeof(range), "Content-Range: bytes */%" PRIu64, total);
        else if (final)
            snprintf(range, sizeof(range), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, from, total - 1,
                     total);
        else
            snprintf(range, sizeof(range), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/*", from, total - 1);
        if (final) {
            char crc[16];
            s_crc_b64(w->crc, crc);
            snprintf(hash, sizeof(hash), "X-Goog-Hash: crc32c=%s", crc);
        }
        /* The bytes go as what they are: without a type, a body would be sent as libcurl's form default. */
        const char *extra[4] = {range, NULL, NULL, NULL};
        size_t ne = 1;
        if (total > from)
            extra[ne++] = "Content-Type: application/octet-stream";
        if (final)
            extra[ne++] = hash;
        sl__http_request req = {.method = "PUT",
                                .url = w->session,
                                .body = s_data(c) + (from - base_off),
                                .body_len = (size_t)(total - from)};
        sl__http_response resp;
        /* A chunk is idempotent only together with the status query below, which the loop does itself. */
        int rc = s_perform(c, &req, extra, &resp, false, &a);
        if (rc == 0 && (resp.status == 200 || resp.status == 201)) {
            if (!final)
                return s_completed_early(w, &resp, total);
            w->sent = total;
            w->len = 0;
            return s_finish_resumable(w, &resp, total);
        }
        if (rc == 0 && !final && resp.status == 308 && s_persisted(&resp) == total) {
            w->sent = total;
            w->len = 0;
            return 0;
        }
        bool retry = rc == SL_EIO || (rc == 0 && (sl__retry_status(resp.status) || resp.status == 308));
        if (rc < 0 && rc != SL_EIO)
            return rc;
        if (!retry || !s_backoff(c, &a))
            return rc < 0 ? rc : s_http_error_at(c, w->name, &resp, w->if_gen >= 0);
        /* Where is the session? PUT with "bytes * /total" (or "*" while the size is unknown). */
        char q[96];
        snprintf(q, sizeof(q), final ? "Content-Range: bytes */%" PRIu64 : "Content-Range: bytes */*", total);
        const char *qh[] = {q, NULL};
        sl__http_request sreq = {.method = "PUT", .url = w->session};
        sl__http_response sresp;
        s_attempts sa = {.base.started_ms = sl__now_ms()};
        if ((rc = s_perform(c, &sreq, qh, &sresp, true, &sa)) < 0)
            return rc;
        if (sresp.status == 200 || sresp.status == 201) {
            if (!final)
                return s_completed_early(w, &sresp, total);
            w->sent = total;
            w->len = 0;
            return s_finish_resumable(w, &sresp, total);
        }
        if (sresp.status != 308)
            return s_http_error_at(c, w->name, &sresp, w->if_gen >= 0);
        uint64_t have = s_persisted(&sresp);
        if (have < base_off || have > total)
            return sl__fail(SL_EIO,
                            "gs://%s/%s: upload session holds %" PRIu64 " bytes, expected %" PRIu64 "..%" PRIu64,
                            st->bucket, w->name, have, base_off, total);
        from = have;
        s_progressed(&a, &mark, from); /* the session kept part of the chunk: the next attempt starts further on */
        if (from == total && !final) {
            w->sent = total;
            w->len = 0;
            return 0;
        }
    }
}

static int s_write(sl_writer *base, const void *buf, size_t len) {
    s_writer *w = (s_writer *)base;
    s_client *c = w->client;
    size_t chunk = (size_t)s_st(&c->base)->chunk;
    const unsigned char *p = buf;
    w->crc = sl__crc32c_update(w->crc, buf, len);
    while (len) {
        if (w->len == c->up_data) {
            int rc = w->len < chunk ? s_grow(c, len < chunk - w->len ? w->len + len : chunk) : 1;
            if (rc < 0)
                return rc;
            if (rc == 1) {
                /* The buffer is full (a chunk, or all the budget allows now) and more is to come: this object goes
                 * up in a resumable session, in chunks of what fits. */
                rc = w->session ? 0 : s_start_session(w);
                if (rc == 0)
                    rc = s_send_chunk(w, false);
                if (rc < 0)
                    return rc;
            }
            continue;
        }
        size_t n = c->up_data - w->len < len ? c->up_data - w->len : len;
        memcpy(s_data(c) + w->len, p, n);
        w->len += n;
        p += n;
        len -= n;
    }
    return 0;
}

/* Cancels a resumable session so the partial upload is discarded at once (it would expire anyway). */
static void s_cancel_session(s_writer *w) {
    sl__http_request req = {.method = "DELETE", .url = w->session, .aside = true};
    sl__http_response resp;
    sl__http_perform(w->client->http, &req, &resp);
}

/* Cancels the session of an upload that failed with rc, keeping rc's message: the cancel may set another error. Out
 * of line, so that its message buffer is not part of every commit's stack frame. */
__attribute__((noinline, cold)) static void s_cancel_failed_session(s_writer *w, int rc) {
    char why[SL__MESSAGE_CAP];
    snprintf(why, sizeof(why), "%s", sl_last_error());
    s_cancel_session(w);
    sl__fail(rc, "%s", why);
}

static int s_write_commit(sl_writer *base) {
    s_writer *w = (s_writer *)base;
    int rc = w->client->up ? 0 : s_grow(w->client, 1); /* an empty object still needs room for the preamble */
    if (rc == 0)
        rc = w->session ? s_send_chunk(w, true) : s_upload_multipart(w);
    if (rc < 0 && w->session)
        s_cancel_failed_session(w, rc);
    s_write_free(w);
    return rc;
}

static void s_write_abort(sl_writer *base) {
    s_writer *w = (s_writer *)base;
    if (w->session)
        s_cancel_session(w);
    s_write_free(w);
}

/* ---- server-side copy (rewrite) ---- */

/* The object a finished rewrite made must be the source as listed: its size and CRC32C (when both sides give one).
 * One that is not is deleted (that generation only) and the copy fails with SL_ECORRUPT, so the job tries again. */
static int s_check_rewritten(s_client *c, const s_store *src, const char *src_name, const sl_object *src_obj,
                             json_t *resource) {
    s_store *dst = s_st(&c->base);
    if (!json_is_object(resource))
        return 0; /* an answer without the resource (fields not honoured): nothing to hold it to */
    uint64_t size = s_json_u64(json_object_get(resource, "size"));
    int64_t gen = (int64_t)s_json_u64(json_object_get(resource, "generation"));
    const char *crc_text = json_string_value(json_object_get(resource, "crc32c"));
    uint32_t crc = 0;
    bool has_crc = crc_text && sl__gcs_unb64_crc(crc_text, &crc);
    bool size_ok = !json_object_get(resource, "size") || size == src_obj->size;
    bool crc_ok = !has_crc || !src_obj->has_crc32c || crc == src_obj->crc32c;
    if (size_ok && crc_ok)
        return 0;
    char why[SL__MESSAGE_CAP] = "the object was deleted";
    if (gen > 0 && s_delete_generation(c, c->name, gen) < 0)
        snprintf(why, sizeof(why), "deleting it failed (%s)", sl_last_error());
    else if (gen <= 0)
        snprintf(why, sizeof(why), "the answer gives no generation to delete it by");
    return sl__fail(SL_ECORRUPT,
                    "gs://%s/%s: the server-side copy of gs://%s/%s made an object of %" PRIu64
                    " bytes (CRC32C %08" PRIx32 "), not the %" PRIu64 " bytes (CRC32C %08" PRIx32 ") listed; %s",
                    dst->bucket, c->name, src->bucket, src_name, size, crc, src_obj->size, src_obj->crc32c, why);
}

/* A step of a rewrite conditional on the destination failed its precondition (412). An earlier request of this copy
 * whose answer was lost may have completed it: a destination that holds the source's size and CRC32C is that copy (0).
 * Otherwise (or when either CRC32C is unknown, so that the copy cannot be told from another writer's object of the
 * same size) the destination changed since it was checked. */
static int s_copy_precondition_failed(s_client *c, const sl_object *src_obj, const sl__http_response *resp) {
    int rc = s_http_error_at(c, c->name, resp, true); /* before the lookup reuses the memory of the answer */
    char why[8192];
    snprintf(why, sizeof(why), "%s", sl_last_error());
    sl_object d;
    if (s_probe_name(c, c->name, &d) == 0 && d.size == src_obj->size && d.has_crc32c && src_obj->has_crc32c &&
        d.crc32c == src_obj->crc32c)
        return 0;
    return sl__fail(rc, "%s", why);
}

static int s_copy(sl_client *base, const sl_store *src_base, const sl_object *src_obj, const char *dst_key,
                  const sl_write_options *opts) {
    s_client *c = (s_client *)base;
    s_store *dst = s_st(base);
    if (src_base->vt != &s_vtable)
        return SL_ENOTSUP;
    const s_store *src = (const s_store *)src_base;
    if (strcmp(src->endpoint, dst->endpoint) != 0)
        return SL_ENOTSUP;
    const char *src_key = src_obj->key;
    char src_name[4096];
    int n = snprintf(src_name, sizeof(src_name), "%s%s", src->prefix, src_key);
    if (n < 0 || (size_t)n >= sizeof(src_name))
        return sl__fail(SL_ENAMETOOLONG, "gs://%s/%s%s: name too long", src->bucket, src->prefix, src_key);
    int rc = s_full_name(c, dst_key, c->name, 4096);
    if (rc < 0)
        return rc;
    char *token = NULL;
    for (;;) {
        size_t at = 0;
        s_url_add(c, &at, dst->endpoint, false);
        s_url_add(c, &at, "/storage/v1/b/", false);
        s_url_add(c, &at, src->bucket, true);
        s_url_add(c, &at, "/o/", false);
        s_url_add(c, &at, src_name, true);
        s_url_add(c, &at, "/rewriteTo/b/", false);
        s_url_add(c, &at, dst->bucket, true);
        s_url_add(c, &at, "/o/", false);
        s_url_add(c, &at, c->name, true);
        s_url_add(c, &at, "?fields=done,rewriteToken,totalBytesRewritten,resource(size,generation,crc32c)", false);
        if (src_obj->generation > 0) {
            /* The generation listed, whose size and CRC32C the result is checked against (and the resume decision
             * was made on): a source replaced since is not copied in its place. */
            char num[48];
            snprintf(num, sizeof(num), "&sourceGeneration=%" PRId64, src_obj->generation);
            s_url_add(c, &at, num, false);
        }
        bool conditional = opts && opts->if_generation_match_set && opts->if_generation_match >= 0;
        if (conditional) {
            /* On every step, so that a step repeated after a lost answer cannot make another generation. */
            char num[48];
            snprintf(num, sizeof(num), "&ifGenerationMatch=%" PRId64, opts->if_generation_match);
            s_url_add(c, &at, num, false);
        }
        if (token) {
            s_url_add(c, &at, "&rewriteToken=", false);
            s_url_add(c, &at, token, true);
        }
        sl__http_request req = {.method = "POST", .url = c->url, .body = "{}", .body_len = 2};
        const char *extra[] = {"Content-Type: application/json", NULL};
        sl__http_response resp;
        s_attempts a = {.base.started_ms = sl__now_ms()};
        /* A rewrite writes the same bytes to the same name: repeating a step is harmless. */
        rc = s_perform(c, &req, extra, &resp, true, &a);
        if (rc == 0 && resp.status == 412 && conditional) {
            rc = s_copy_precondition_failed(c, src_obj, &resp);
            break;
        }
        if (rc == 0 && resp.status != 200) {
            /* s_http_error names one object of this client's bucket: the destination's. */
            rc = s_http_error(c, c->name, &resp);
            char said[SL__MESSAGE_CAP];
            snprintf(said, sizeof(said), "%s", sl_last_error());
            /* The copy asked for the generation listed: a source replaced or deleted since is a 404 too. */
            rc = sl__fail(rc, "server-side copy of gs://%s/%s to %s%s", src->bucket, src_name, said,
                          resp.status == 404 && src_obj->generation > 0
                              ? " (if the source was replaced or deleted since it was listed, rerun to copy what is "
                                "there now)"
                              : "");
        }
        if (rc < 0)
            break;
        json_t *doc = json_loadb(resp.body, resp.body_len, 0, NULL);
        bool done = json_is_true(json_object_get(doc, "done"));
        const char *next = json_string_value(json_object_get(doc, "rewriteToken"));
        free(token);
        token = next ? strdup(next) : NULL;
        if (done)
            rc = s_check_rewritten(c, src, src_name, src_obj, json_object_get(doc, "resource"));
        json_decref(doc);
        if (done)
            break;
        if (!token) {
            rc = sl__fail(SL_EIO,
                          "server-side copy of gs://%s/%s to gs://%s/%s: rewrite not done and no rewriteToken given",
                          src->bucket, src_name, dst->bucket, c->name);
            break;
        }
    }
    free(token);
    return rc;
}

/* ---- objects made of parts (objects.compose) ---- */

#define S_COMPOSE_MAX 32u /* source objects per compose request (GCS's limit) */

/* POST .../o/DEST/compose of the full names src[0..n): 0 and what was made in *made, or <0. `meta` (JSON members for
 * the destination resource, may be "") and the precondition go with the request. */
static int s_compose_once(s_client *c, const char *dest, char *const *src, unsigned n, const char *meta, int64_t if_gen,
                          s_created *made) {
    s_store *st = s_st(&c->base);
    json_t *list = json_array();
    for (unsigned i = 0; i < n && list; i++)
        json_array_append_new(list, json_pack("{s:s}", "name", src[i]));
    char *sources = list ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    size_t cap = (sources ? strlen(sources) : 0) + strlen(meta) + 128;
    char *body = sources ? malloc(cap) : NULL;
    if (!body) {
        free(sources);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    int len =
        snprintf(body, cap, "{\"sourceObjects\":%s,\"destination\":{\"contentType\":\"application/octet-stream\"%s%s}}",
                 sources, meta[0] ? "," : "", meta);
    free(sources);
    size_t at = s_object_url(c, dest, "/storage/v1");
    char num[64];
    snprintf(num, sizeof(num), "/compose?fields=size,generation,crc32c%s", if_gen >= 0 ? "&ifGenerationMatch=" : "");
    s_url_add(c, &at, num, false);
    if (if_gen >= 0) {
        snprintf(num, sizeof(num), "%" PRId64, if_gen);
        s_url_add(c, &at, num, false);
    }
    sl__http_request req = {.method = "POST", .url = c->url, .body = body, .body_len = (size_t)len};
    const char *extra[] = {"Content-Type: application/json", NULL};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    /* The same parts composed again make the same bytes; with a precondition a lost answer's repeat fails instead. */
    int rc = s_perform(c, &req, extra, &resp, true, &a);
    free(body);
    if (rc == 0 && resp.status == 412 && if_gen >= 0 && a.base.retries > 0) {
        /* The first attempt made it and its answer was lost: what is there now is checked by the caller. */
        sl_object obj;
        rc = s_stat_name(c, dest, &obj);
        if (rc == 0)
            *made = (s_created){
                .size = obj.size, .crc32c = obj.crc32c, .has_crc32c = obj.has_crc32c, .generation = obj.generation};
        return rc;
    }
    if (rc == 0 && resp.status != 200) {
        rc = s_http_error(c, dest, &resp);
        char said[SL__MESSAGE_CAP];
        snprintf(said, sizeof(said), "%s", sl_last_error());
        return sl__fail(rc, "composing %u parts into %s", n, said);
    }
    if (rc == 0 && !s_created_parse(resp.body, resp.body_len, made))
        rc = sl__fail(SL_EIO, "gs://%s/%s: the answer to compose is not an object resource", st->bucket, dest);
    return rc;
}

/* The full name of `key` (s_full_name), in a string of its own. */
static int s_name_dup(s_client *c, const char *key, char **out) {
    char name[1100];
    int rc = s_full_name(c, key, name, sizeof(name));
    if (rc == 0 && !(*out = strdup(name)))
        rc = sl__fail(SL_ENOMEM, "out of memory");
    return rc;
}

static int s_compose(sl_client *base, const char *dst_key, const char *parts_prefix, unsigned n, uint64_t size,
                     uint32_t crc, const sl_write_options *opts) {
    s_client *c = (s_client *)base;
    s_store *st = s_st(base);
    char dest[1100], meta[S_FP_CAP + S_OUT_CAP + 64] = "";
    int rc = s_full_name(c, dst_key, dest, sizeof(dest));
    if (rc < 0)
        return rc;
    if (opts && opts->source_fingerprint) {
        char value[S_FP_CAP + S_OUT_CAP];
        snprintf(value, sizeof(value), "%s" S_OUT_FMT, opts->source_fingerprint, size, crc);
        int m = snprintf(meta, sizeof(meta), "\"metadata\":{\"" S_META_KEY "\":");
        size_t q = sl_json_quote(meta + m, sizeof(meta) - (size_t)m, value, strlen(value));
        if ((size_t)m + q + 2 > sizeof(meta))
            meta[0] = '\0';
        else
            memcpy(meta + m + q, "}", 2);
    }
    /* Level 0 is the parts ("<prefix><i>"); each level composes groups of 32 of the one below into
     * "<prefix>c<level>-<j>" until one group is left, which becomes the destination. Every name made is deleted at the
     * end. */
    unsigned count = n, level = 0;
    char **names = calloc(n, sizeof(*names));
    if (!names)
        return sl__fail(SL_ENOMEM, "out of memory");
    for (unsigned i = 0; i < n && rc == 0; i++) {
        char key[1100];
        snprintf(key, sizeof(key), "%s%u", parts_prefix, i);
        rc = s_name_dup(c, key, &names[i]);
    }
    char **parts = names, **made_names = NULL;
    unsigned made_count = 0;
    s_created made = {0};
    while (rc == 0) {
        if (count <= S_COMPOSE_MAX) {
            int64_t if_gen = opts && opts->if_generation_match_set ? opts->if_generation_match : -1;
            rc = s_compose_once(c, dest, names, count, meta, if_gen, &made);
            if (rc == 0 && (made.size != size || !made.has_crc32c || made.crc32c != crc)) {
                rc = sl__fail(SL_ECORRUPT,
                              "gs://%s/%s: the object composed of %u parts has %" PRIu64 " bytes and CRC32C %08x, not "
                              "the %" PRIu64 " bytes and %08x sent (deleted, not accepted)",
                              st->bucket, dest, n, made.size, made.crc32c, size, crc);
                char saved[SL__MESSAGE_CAP];
                snprintf(saved, sizeof(saved), "%s", sl_last_error());
                s_delete_generation(c, dest, made.generation);
                sl__fail(rc, "%s", saved);
            }
            break;
        }
        level++;
        unsigned groups = (count + S_COMPOSE_MAX - 1) / S_COMPOSE_MAX;
        char **next = calloc(groups, sizeof(*next));
        char **grown = next ? realloc(made_names, (made_count + groups) * sizeof(*made_names)) : NULL;
        if (!grown) {
            free(next);
            rc = sl__fail(SL_ENOMEM, "out of memory");
            break;
        }
        made_names = grown;
        for (unsigned g = 0; g < groups && rc == 0; g++) {
            char key[1100];
            snprintf(key, sizeof(key), "%sc%u-%u", parts_prefix, level, g);
            if ((rc = s_name_dup(c, key, &next[g])) < 0)
                break;
            made_names[made_count++] = next[g];
            unsigned k = count - g * S_COMPOSE_MAX < S_COMPOSE_MAX ? count - g * S_COMPOSE_MAX : S_COMPOSE_MAX;
            s_created step;
            rc = s_compose_once(c, next[g], names + g * S_COMPOSE_MAX, k, "", 0, &step);
        }
        if (names != parts)
            free(names); /* an intermediate level's array; its strings are in made_names */
        names = next;
        count = groups;
    }
    if (names != parts)
        free(names);
    /* The parts and the intermediate objects go, whatever happened (cleanup: not the status that failed the object,
     * and its message is kept). */
    char saved[SL__MESSAGE_CAP];
    snprintf(saved, sizeof(saved), "%s", rc < 0 ? sl_last_error() : "");
    for (unsigned i = 0; i < n + made_count; i++) {
        char *name = i < n ? parts[i] : made_names[i - n];
        if (name && name[0]) {
            s_object_url(c, name, "/storage/v1");
            sl__http_request req = {.method = "DELETE", .url = c->url, .aside = true};
            sl__http_response resp;
            s_attempts a = {.base.started_ms = sl__now_ms()};
            (void)s_perform(c, &req, NULL, &resp, true, &a);
        }
        free(name);
    }
    free(parts);
    free(made_names);
    if (rc < 0)
        sl__fail(rc, "%s", saved);
    return rc;
}

/* ---- what a prefix holds ---- */

/* GET one page of at most `max` names under `name_prefix` ("" for the whole bucket): 0 with *resp (any status), or <0
 * when no answer could be had. */
static int s_list_names(s_client *c, const char *name_prefix, unsigned max, sl__http_response *resp) {
    s_store *st = s_st(&c->base);
    size_t at = 0;
    s_url_add(c, &at, st->endpoint, false);
    s_url_add(c, &at, "/storage/v1/b/", false);
    s_url_add(c, &at, st->bucket, true);
    s_url_add(c, &at, "/o?fields=", false);
    s_url_add(c, &at, "items(name)", true);
    char num[32];
    snprintf(num, sizeof(num), "&maxResults=%u", max);
    s_url_add(c, &at, num, false);
    if (name_prefix[0]) {
        s_url_add(c, &at, "&prefix=", false);
        s_url_add(c, &at, name_prefix, true);
    }
    if (at >= S_URL_CAP)
        return sl__fail(SL_ENAMETOOLONG, "gs://%s: listing URL too long", st->bucket);
    sl__http_request req = {.method = "GET", .url = c->url};
    s_attempts a = {.base.started_ms = sl__now_ms()};
    return s_perform(c, &req, NULL, resp, true, &a);
}

/* sl_prefix_probe: the first two names under the prefix. A folder placeholder (the object named exactly like the
 * prefix, which no listing of the prefix shows) sorts before every other name under it, so a second name, if any,
 * is an object. */
static int s_probe(sl_client *base, const char *sub) {
    s_client *c = (s_client *)base;
    s_store *st = s_st(base);
    int n = snprintf(c->name, 4096, "%s%s", st->prefix, sub);
    if (n < 0 || n >= 4096)
        return sl__fail(SL_ENAMETOOLONG, "gs://%s/%s%s: name too long", st->bucket, st->prefix, sub);
    size_t len = (size_t)n;
    sl__http_response resp;
    int rc = s_list_names(c, c->name, 2, &resp);
    if (rc < 0)
        return rc;
    if (resp.status == 404)
        return sl__fail(SL_ENOENT, "gs://%s: no such bucket (check the name, or create it first)", st->bucket);
    if (resp.status != 200)
        return s_http_error(c, c->name, &resp);
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return sl__fail(SL_ECORRUPT, "gs://%s: the listing of '%s' is not valid JSON", st->bucket, c->name);
    }
    bool objects = false, marker = false;
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(doc, "items"), i, item) {
        const char *name = json_string_value(json_object_get(item, "name"));
        if (!name || strncmp(name, c->name, len) != 0)
            continue; /* not under the prefix (a server that ignores it): not evidence of anything */
        if (name[len])
            objects = true;
        else
            marker = true;
    }
    json_decref(doc);
    return objects ? SL_PREFIX_OBJECTS : marker || !len ? SL_PREFIX_EMPTY : SL_PREFIX_MISSING;
}

/* Credentials are fetched (and cached for every thread) before the first object: a job whose every object would fail
 * the same way for want of a token stops at once with the one line that says what to set. */
/* Before a job writes: credentials can be had, and the bucket exists. Only a bucket that is missing both as a resource
 * and to a listing is final: an account that may write objects need not be allowed to read the bucket's metadata
 * (403), some servers do not serve the bucket resource at all (an emulator that makes a bucket on its first upload
 * answers 404 or 501 there while listings and uploads work), and any other trouble is met again and reported by the
 * first object. */
static int s_check_access(sl_store *base) {
    s_store *st = (s_store *)base;
    char auth[4096];
    int rc = sl__gcs_auth_header(st->auth, auth, sizeof(auth));
    if (rc < 0)
        return rc;
    sl_client *cb = NULL;
    if (s_client_new(base, &cb) < 0)
        return 0;
    s_client *c = (s_client *)cb;
    size_t at = 0;
    s_url_add(c, &at, st->endpoint, false);
    s_url_add(c, &at, "/storage/v1/b/", false);
    s_url_add(c, &at, st->bucket, true);
    s_url_add(c, &at, "?fields=name", false);
    sl__http_request req = {.method = "GET", .url = c->url};
    sl__http_response resp;
    s_attempts a = {.base.started_ms = sl__now_ms()};
    int prc = at < S_URL_CAP ? s_perform(c, &req, NULL, &resp, true, &a) : SL_ENAMETOOLONG;
    if (prc == 0 && (resp.status == 404 || resp.status == 501))
        prc = s_list_names(c, "", 1, &resp);
    if (prc == 0 && resp.status == 404)
        rc = sl__fail(SL_ENOENT, "gs://%s: no such bucket (check the name, or create it first)", st->bucket);
    else if (prc == SL_ECANCELED)
        rc = prc; /* abandoned (a signal): not a reason to go on */
    s_client_destroy(cb);
    return rc;
}

static void s_memory(const sl_store *base, sl__store_memory *out) {
    const s_store *st = (const s_store *)base;
    out->client_bytes = strncmp(st->endpoint, "https://", 8) == 0 ? S_CLIENT_BYTES_TLS : S_CLIENT_BYTES;
    out->writer_min_bytes = s_map_size(S_UPLOAD_QUANTUM);
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
    .compose = s_compose,
    .read = s_read,
    .read_close = s_read_close,
    .write_open = s_write_open,
    .write = s_write,
    .write_commit = s_write_commit,
    .write_abort = s_write_abort,
    .del = s_del,
    .copy = s_copy,
    .check_access = s_check_access,
    .probe = s_probe,
    .memory = s_memory,
    .set_budget = s_set_budget,
    .close = s_close,
};
