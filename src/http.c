/* HTTP over libcurl: one easy handle in one multi handle per thread, reused for every request.
 *
 * Everything goes through the multi interface, even whole requests, for two reasons: the connection cache lives in
 * the multi handle (so keep-alive works across requests, including streamed ones that were abandoned), and the
 * multi interface lets a caller *pull* a download (sl__http_stream_read) while curl pushes data: the write callback
 * copies into the caller's buffer and pauses the transfer when that buffer is full. */
#include "http.h"

#include "clock.h"
#include "fail.h"
#include "strbuf.h"

#include "sluice/sluice.h"

#include <curl/curl.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_DEFAULT_BODY_CAP ((size_t)1 << 20)
#define S_KEEP_BODY ((size_t)64 << 10) /* a collected-body buffer larger than this is not kept for the next request */

/* The multi handle a thread's own handles share (sl__http_options.thread_owned). */
typedef struct s_thread_multi {
    CURLM *multi;
    unsigned refs;
} s_thread_multi;

static _Thread_local s_thread_multi tl_multi;

struct sl__http {
    CURLM *multi;
    s_thread_multi *shared; /* &tl_multi of the owning thread, or NULL: `multi` is this handle's own */
    CURL *easy;
    sl__http_options opts;
    /* The headers every request sends, linked in front of the request's own. The User-Agent goes here rather than
     * through CURLOPT_USERAGENT, which libcurl would format anew for every request. */
    struct curl_slist fixed[2];
    /* The request's own headers, copied for the transfer's life (libcurl keeps pointers to the list until the transfer
     * is over; a streaming caller's strings may not live that long): one buffer, the list's nodes then their text,
     * kept from request to request rather than a curl_slist_append (two allocations) per header per request. */
    void *hdr;
    size_t hdr_cap;
    char origin[256]; /* "scheme://host[:port]" of the request in progress, for messages (a streaming
                       * request outlives the caller's sl__http_request) */
    const sl__http_request *req;
    sl__http_response *resp;
    char errbuf[CURL_ERROR_SIZE];
    bool answered; /* a status line of the request in progress arrived (sl__http_health) */
    uint64_t connections;
    bool active; /* the easy handle is in the multi */
    bool done;   /* the transfer finished (result says how) */
    CURLcode result;
    bool headers_done;
    /* Collected body (perform without write_fn). */
    char *body;
    size_t body_len, body_alloc, body_limit;
    bool too_big;
    /* Streaming. */
    bool streaming;
    bool paused;
    unsigned char *user_buf;
    size_t user_cap, user_len;
    /* CURL_MAX_WRITE_SIZE bytes, made when a caller first reads with a buffer smaller than a chunk. */
    unsigned char *spill;
    size_t spill_off, spill_len;
};

static _Thread_local const atomic_bool *tl_abort;
static _Thread_local const volatile sig_atomic_t *tl_user_abort;
static _Thread_local sl__http_tally tl_tally;

void sl__http_bind_abort(const atomic_bool *flag) {
    tl_abort = flag;
}

void sl__http_bind_user_abort(const volatile sig_atomic_t *flag) {
    tl_user_abort = flag;
}

bool sl__http_aborted(void) {
    return (tl_abort && atomic_load(tl_abort)) || (tl_user_abort && *tl_user_abort);
}

/* ---- server health ---- */

void sl__http_health_init(sl__http_health *hh, unsigned deadline_ms) {
    memset(hh, 0, sizeof(*hh));
    atomic_init(&hh->failing_since_ms, 0);
    atomic_init(&hh->watched, false);
    hh->deadline_ms = deadline_ms ? deadline_ms : 120000;
    pthread_mutex_init(&hh->lock, NULL);
}

void sl__http_health_destroy(sl__http_health *hh) {
    if (hh)
        pthread_mutex_destroy(&hh->lock);
}

int64_t sl__http_health_unreachable_ms(sl__http_health *hh, char *why, size_t cap) {
    int64_t since = atomic_load(&hh->failing_since_ms);
    if (why && cap) {
        pthread_mutex_lock(&hh->lock);
        snprintf(why, cap, "%s", hh->last_error);
        pthread_mutex_unlock(&hh->lock);
    }
    if (!since)
        return 0;
    int64_t d = sl__now_ms() - since;
    return d > 0 ? d : 1;
}

bool sl__http_health_holding(sl__http_health *hh) {
    return hh && atomic_load(&hh->watched) && atomic_load(&hh->failing_since_ms) != 0;
}

/* Something came from the server. Loaded first: most calls find nothing to clear, and a plain load keeps the shared
 * line from bouncing between the cores of busy workers. */
static void s_health_answer(sl__http *h) {
    sl__http_health *hh = h->opts.health;
    if (hh && atomic_load_explicit(&hh->failing_since_ms, memory_order_relaxed))
        atomic_store(&hh->failing_since_ms, 0);
}

static void s_health_no_answer(sl__http *h, const char *message) {
    sl__http_health_no_answer(h->opts.health, message);
}

void sl__http_health_no_answer(sl__http_health *hh, const char *message) {
    if (!hh)
        return;
    int64_t zero = 0, now = sl__now_ms();
    atomic_compare_exchange_strong(&hh->failing_since_ms, &zero, now > 0 ? now : 1);
    pthread_mutex_lock(&hh->lock);
    snprintf(hh->last_error, sizeof(hh->last_error), "%s", message);
    pthread_mutex_unlock(&hh->lock);
}

void sl__http_tally_reset(void) {
    memset(&tl_tally, 0, sizeof(tl_tally));
}

void sl__http_note_retry(void) {
    tl_tally.retries++;
}

void sl__http_tally_get(sl__http_tally *out) {
    *out = tl_tally;
}

void sl__http_tally_restore(const sl__http_tally *saved) {
    unsigned retries = tl_tally.retries;
    tl_tally = *saved;
    tl_tally.retries = retries;
}

static void s_tally_status(const sl__http_request *req, long status) {
    if (status > 0 && !req->aside) {
        tl_tally.last_status = status;
        tl_tally.any_response = true;
    }
}

/* ---- trusted CA certificates, loaded once per process ----
 *
 * libcurl (7.88, OpenSSL) loads the CA bundle into every connection's SSL_CTX, or keeps one copy per multi handle:
 * with one multi handle per worker that is about 1 MiB per worker for the ~140 system CAs, more than everything else a
 * worker holds. Instead, every SSL_CTX is given one shared, reference-counted X509_STORE loaded from the same default
 * locations libcurl would use (CURLINFO_CAINFO/CAPATH), with the verification flags libcurl sets. Verification itself
 * is unchanged: libcurl still checks the chain and the host name. Only when libcurl's TLS library is the OpenSSL of
 * the same major version this was built with; otherwise libcurl's own loading stays. */

static pthread_once_t s_ca_once = PTHREAD_ONCE_INIT;
static X509_STORE *s_ca_store;                /* NULL when the locations could not be loaded */
static char s_ca_file[1024], s_ca_path[1024]; /* libcurl's defaults */
static char s_ca_error[1100];                 /* why they could not, in libcurl's words */
static bool s_ca_shared;                      /* the shared store is used (decided once, in s_global_init) */

static void s_ca_load(void) {
    X509_STORE *store = X509_STORE_new();
    if (!store) {
        snprintf(s_ca_error, sizeof(s_ca_error), "out of memory for the trusted CA certificates");
        return;
    }
    /* As libcurl: a location that is set must load. */
    if (s_ca_file[0] && X509_STORE_load_file(store, s_ca_file) != 1)
        snprintf(s_ca_error, sizeof(s_ca_error), "error setting certificate file: %s", s_ca_file);
    else if (s_ca_path[0] && X509_STORE_load_path(store, s_ca_path) != 1)
        snprintf(s_ca_error, sizeof(s_ca_error), "error setting certificate path: %s", s_ca_path);
    else if (!s_ca_file[0] && !s_ca_path[0])
        snprintf(s_ca_error, sizeof(s_ca_error), "no trusted CA certificates configured in libcurl");
    if (s_ca_error[0]) {
        X509_STORE_free(store);
        return;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
    s_ca_store = store;
}

static CURLcode s_ssl_ctx(CURL *easy, void *ssl_ctx, void *ud) {
    (void)easy;
    (void)ud;
    pthread_once(&s_ca_once, s_ca_load);
    if (!s_ca_store)
        return CURLE_SSL_CACERT_BADFILE;
    SSL_CTX_set1_cert_store(ssl_ctx, s_ca_store);
    return CURLE_OK;
}

/* True when libcurl's TLS library is OpenSSL with the major version of the headers this was built with. */
static bool s_curl_uses_our_openssl(void) {
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    char want[32];
    snprintf(want, sizeof(want), "OpenSSL/%d.", (int)(OPENSSL_VERSION_NUMBER >> 28));
    return v && v->ssl_version && strncmp(v->ssl_version, want, strlen(want)) == 0;
}

static pthread_once_t s_global_once = PTHREAD_ONCE_INIT;
static CURLcode s_global_rc;

static bool s_proxy_env; /* a proxy variable libcurl reads is set */

static void s_global_init(void) {
    s_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    s_ca_shared = s_global_rc == CURLE_OK && s_curl_uses_our_openssl();
    CURL *probe = s_ca_shared ? curl_easy_init() : NULL;
    char *file = NULL, *path = NULL;
    if (probe && curl_easy_getinfo(probe, CURLINFO_CAINFO, &file) == CURLE_OK && file)
        snprintf(s_ca_file, sizeof(s_ca_file), "%s", file);
    if (probe && curl_easy_getinfo(probe, CURLINFO_CAPATH, &path) == CURLE_OK && path)
        snprintf(s_ca_path, sizeof(s_ca_path), "%s", path);
    if (!probe || curl_easy_setopt(probe, CURLOPT_SSL_CTX_FUNCTION, s_ssl_ctx) != CURLE_OK)
        s_ca_shared = false; /* a TLS backend without the hook */
    curl_easy_cleanup(probe);
    static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (getenv(vars[i]))
            s_proxy_env = true;
}

static size_t s_on_header(char *data, size_t size, size_t nmemb, void *ud);
static size_t s_on_body(char *data, size_t size, size_t nmemb, void *ud);

sl__http *sl__http_new(const sl__http_options *opts) {
    pthread_once(&s_global_once, s_global_init);
    if (s_global_rc != CURLE_OK) {
        sl__fail(SL_EINTERNAL, "libcurl initialisation failed: %s", curl_easy_strerror(s_global_rc));
        return NULL;
    }
    sl__http *h = calloc(1, sizeof(*h));
    if (!h) {
        sl__fail(SL_ENOMEM, "out of memory");
        return NULL;
    }
    if (opts)
        h->opts = *opts;
    if (h->opts.connect_timeout_ms <= 0)
        h->opts.connect_timeout_ms = 10000;
    if (h->opts.stall_timeout_s <= 0)
        h->opts.stall_timeout_s = 60;
    if (h->opts.thread_owned) {
        if (!tl_multi.multi)
            tl_multi.multi = curl_multi_init();
        if (tl_multi.multi) {
            h->shared = &tl_multi;
            tl_multi.refs++;
            h->multi = tl_multi.multi;
        }
    } else {
        h->multi = curl_multi_init();
    }
    h->easy = curl_easy_init();
    if (!h->multi || !h->easy) {
        sl__http_destroy(h);
        sl__fail(SL_ENOMEM, "out of memory (curl handles)");
        return NULL;
    }
    /* What every request of this handle shares is set once: a reset and a full set of options per request costs
     * more than the rest of a small object's request path. s_start sets only the URL, the headers and the method. */
    static char expect[] = "Expect:"; /* no 100-continue round trip */
    static char agent[] = "User-Agent: sluice/" SL_VERSION_STRING;
    h->fixed[0] = (struct curl_slist){.data = expect, .next = &h->fixed[1]};
    h->fixed[1] = (struct curl_slist){.data = agent, .next = NULL};
    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, h); /* whose transfer a message of a shared multi handle is about */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, h->opts.stall_timeout_s);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    /* Bodies are delivered exactly as they came: a gzip-encoded object is checksummed on its stored bytes and
     * decompressed by the store that asked for them (store_gcs.c), never by libcurl behind its back. */
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    /* The path exactly as built: libcurl would otherwise remove dot segments, and an S3 key "a/../b" would be asked
     * for as "b" — another object, read in its place when the request is not signed (signed, the server refuses a
     * signature made for the path as given). */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    if (s_ca_shared) {
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, s_ssl_ctx);
        curl_easy_setopt(e, CURLOPT_CAINFO, NULL); /* the shared store replaces libcurl's own copy */
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    if (!s_proxy_env) {
        /* No proxy in the environment: saying so spares libcurl looking it up again for every request. */
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    return h;
}

static void s_detach(sl__http *h) {
    if (h->active) {
        curl_multi_remove_handle(h->multi, h->easy);
        h->active = false;
    }
    h->fixed[1].next = NULL;
    h->streaming = false;
    h->paused = false;
    h->user_buf = NULL;
    h->spill_off = h->spill_len = 0;
}

void sl__http_destroy(sl__http *h) {
    if (!h)
        return;
    s_detach(h);
    if (h->easy)
        curl_easy_cleanup(h->easy);
    if (h->shared) {
        /* The last handle of the thread takes the shared multi handle with it. */
        if (--h->shared->refs == 0) {
            curl_multi_cleanup(h->shared->multi);
            h->shared->multi = NULL;
        }
    } else if (h->multi) {
        curl_multi_cleanup(h->multi);
    }
    free(h->body);
    free(h->spill);
    free(h->hdr);
    free(h);
}

uint64_t sl__http_connections(const sl__http *h) {
    return h->connections;
}

/* Copies a header value into a fixed field, trimming whitespace and CRLF. */
static void s_set_field(char *field, size_t cap, const char *value, size_t len, bool append) {
    while (len && (value[0] == ' ' || value[0] == '\t')) {
        value++;
        len--;
    }
    while (len && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
        len--;
    size_t at = append && field[0] ? strlen(field) : 0;
    if (at && at + 1 < cap)
        field[at++] = ',';
    if (at >= cap)
        return;
    size_t n = len < cap - 1 - at ? len : cap - 1 - at;
    memcpy(field + at, value, n);
    field[at + n] = '\0';
}

static void s_reset_response(sl__http_response *r) {
    char *body = r->body;
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->stored_length = -1;
    r->body = body;
}

/* Whether a header line's name (the n bytes before its colon) is `name`, in any case. */
static bool s_is(const char *line, size_t n, const char *name) {
    return strlen(name) == n && strncasecmp(line, name, n) == 0;
}

static size_t s_on_header(char *data, size_t size, size_t nmemb, void *ud) {
    sl__http *h = ud;
    sl__http_response *r = h->resp;
    size_t len = size * nmemb;
    if (h->headers_done)
        return len; /* trailers, after the caller of a stream has its response: nothing sluice reads */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new status line: 1xx interim answers are followed by the real one. */
        h->answered = true;
        s_health_answer(h);
        s_reset_response(r);
        const char *sp = memchr(data, ' ', len);
        if (sp)
            r->status = strtol(sp + 1, NULL, 10);
        return len;
    }
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (r->status >= 200)
            h->headers_done = true;
        return len;
    }
    /* Only the headers sluice reads are copied out; the name's length picks the one candidate to compare. */
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    size_t n = (size_t)(colon - data), vl = len - n - 1;
    const char *v = colon + 1;
    char num[32];
    switch (n) {
    case 4:
        if (s_is(data, n, "etag"))
            s_set_field(r->etag, sizeof(r->etag), v, vl, false);
        break;
    case 19:
        if (s_is(data, n, "x-amz-bucket-region"))
            s_set_field(r->amz_bucket_region, sizeof(r->amz_bucket_region), v, vl, false);
        break;
    case 21:
        if (s_is(data, n, "x-amz-checksum-crc32c"))
            s_set_field(r->amz_crc32c, sizeof(r->amz_crc32c), v, vl, false);
        break;
    case 24:
        if (s_is(data, n, "x-amz-meta-sluice-source"))
            s_set_field(r->amz_meta_source, sizeof(r->amz_meta_source), v, vl, false);
        break;
    case 47:
        if (s_is(data, n, "x-amz-server-side-encryption-customer-algorithm"))
            s_set_field(r->amz_sse_customer, sizeof(r->amz_sse_customer), v, vl, false);
        break;
    case 5:
        if (s_is(data, n, "range"))
            s_set_field(r->range, sizeof(r->range), v, vl, false);
        break;
    case 8:
        if (s_is(data, n, "location"))
            s_set_field(r->location, sizeof(r->location), v, vl, false);
        break;
    case 11:
        if (s_is(data, n, "x-goog-hash"))
            s_set_field(r->goog_hash, sizeof(r->goog_hash), v, vl, true);
        break;
    case 12:
        if (s_is(data, n, "content-type"))
            s_set_field(r->content_type, sizeof(r->content_type), v, vl, false);
        break;
    case 13:
        if (s_is(data, n, "content-range"))
            s_set_field(r->content_range, sizeof(r->content_range), v, vl, false);
        else if (s_is(data, n, "last-modified"))
            s_set_field(r->last_modified, sizeof(r->last_modified), v, vl, false);
        break;
    case 14:
        if (s_is(data, n, "content-length")) {
            s_set_field(num, sizeof(num), v, vl, false);
            r->content_length = strtoll(num, NULL, 10);
        }
        break;
    case 16:
        if (s_is(data, n, "content-encoding"))
            s_set_field(r->content_encoding, sizeof(r->content_encoding), v, vl, true);
        break;
    case 17:
        if (s_is(data, n, "x-goog-generation"))
            s_set_field(r->goog_generation, sizeof(r->goog_generation), v, vl, false);
        break;
    case 28:
        if (s_is(data, n, "x-goog-stored-content-length")) {
            s_set_field(num, sizeof(num), v, vl, false);
            r->stored_length = num[0] >= '0' && num[0] <= '9' ? strtoll(num, NULL, 10) : -1;
        } else if (s_is(data, n, "x-amz-server-side-encryption")) {
            s_set_field(r->amz_sse, sizeof(r->amz_sse), v, vl, false);
        }
        break;
    case 30:
        if (s_is(data, n, "x-goog-stored-content-encoding"))
            s_set_field(r->stored_encoding, sizeof(r->stored_encoding), v, vl, false);
        break;
    default:
        break;
    }
    return len;
}

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *ud) {
    sl__http *h = ud;
    size_t len = size * nmemb;
    s_health_answer(h);
    if (h->streaming) {
        if (!h->user_buf || (h->user_len > 0 && len > h->user_cap - h->user_len)) {
            /* No room now: curl keeps this chunk and delivers it again after CURLPAUSE_CONT. */
            h->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        size_t n = len < h->user_cap - h->user_len ? len : h->user_cap - h->user_len;
        memcpy(h->user_buf + h->user_len, data, n);
        h->user_len += n;
        if (n < len) {
            /* The caller's buffer is smaller than one curl chunk: keep the rest for the next read. */
            if (!h->spill && !(h->spill = malloc(CURL_MAX_WRITE_SIZE)))
                return 0; /* the transfer fails (out of memory) */
            memcpy(h->spill, data + n, len - n);
            h->spill_off = 0;
            h->spill_len = len - n;
        }
        return len;
    }
    if (h->req->write_fn)
        return h->req->write_fn(h->req->write_ud, data, len);
    if (len > h->body_limit - h->body_len) {
        h->too_big = true;
        return 0;
    }
    if (h->body_len + len + 1 > h->body_alloc) {
        size_t want = h->body_alloc ? h->body_alloc : 4096;
        while (want < h->body_len + len + 1)
            want *= 2;
        char *nb = realloc(h->body, want);
        if (!nb)
            return 0;
        h->body = nb;
        h->body_alloc = want;
    }
    memcpy(h->body + h->body_len, data, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
    return len;
}

/* "scheme://host[:port]" of a URL, for messages: never the path or query (an upload session id is a credential), nor
 * a "user:password@" in front of the host. */
static void s_origin(const char *url, char *buf, size_t cap) {
    const char *p = strstr(url, "://");
    if (!p) {
        snprintf(buf, cap, "%s", url);
        return;
    }
    const char *host = p + 3;
    size_t authority = strcspn(host, "/?#");
    const char *at = memchr(host, '@', authority);
    if (at) {
        authority -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    sl__strbuf b = sl__strbuf_of(buf, cap); /* for every request: not through snprintf */
    sl__strbuf_add(&b, url, (size_t)(p + 3 - url));
    sl__strbuf_add(&b, host, authority);
    sl__strbuf_end(&b);
}

/* Whether a NULL-terminated header list has a `name` header (any case). */
static bool s_has_header(const char *const *headers, const char *name) {
    size_t n = strlen(name);
    for (const char *const *p = headers; p && *p; p++)
        if (strncasecmp(*p, name, n) == 0 && (*p)[n] == ':')
            return true;
    return false;
}

static int s_start(sl__http *h, const sl__http_request *req, sl__http_response *resp, bool streaming) {
    s_detach(h);
    h->req = req;
    s_origin(req->url, h->origin, sizeof(h->origin));
    h->resp = resp;
    h->done = false;
    h->result = CURLE_OK;
    h->headers_done = false;
    h->answered = false;
    h->too_big = false;
    h->streaming = streaming;
    h->body_len = 0;
    h->body_limit = req->body_cap ? req->body_cap : S_DEFAULT_BODY_CAP;
    if (h->body_alloc > S_KEEP_BODY) {
        /* A large answer (a listing page) is not held for the rest of the thread's life. */
        free(h->body);
        h->body = NULL;
        h->body_alloc = 0;
    }
    h->errbuf[0] = '\0';
    s_reset_response(resp);
    resp->body = NULL;
    resp->body_len = 0;

    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);

    const char *m = req->method ? req->method : "GET";
    bool has_body = strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && !(strcmp(m, "DELETE") == 0 && !req->body_len);
    /* libcurl sends a body given with CURLOPT_POSTFIELDS as application/x-www-form-urlencoded unless told otherwise,
     * which a server may refuse (GCS does) or take for form fields: a body goes with the type its caller names, or
     * with none at all ("Content-Type:" with no value removes the header). */
    static const char no_type[] = "Content-Type:";
    bool add_no_type = has_body && !s_has_header(req->headers, "Content-Type");
    size_t n = add_no_type, len = add_no_type ? sizeof(no_type) : 0;
    for (const char *const *p = req->headers; p && *p; p++, n++)
        len += strlen(*p) + 1;
    size_t need = n * sizeof(struct curl_slist) + len;
    if (need > h->hdr_cap) {
        void *nb = realloc(h->hdr, need);
        if (!nb)
            return sl__fail(SL_ENOMEM, "out of memory");
        h->hdr = nb;
        h->hdr_cap = need;
    }
    struct curl_slist *nodes = h->hdr, *list = n ? nodes : NULL; /* no headers: h->hdr may be NULL */
    char *at = n ? (char *)(nodes + n) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *line = i < n - add_no_type ? req->headers[i] : no_type;
        size_t l = strlen(line) + 1;
        memcpy(at, line, l);
        nodes[i] = (struct curl_slist){.data = at, .next = i + 1 < n ? &nodes[i + 1] : NULL};
        at += l;
    }
    h->fixed[1].next = list;
    /* "Expect:" only where libcurl would add an Expect: 100-continue (a body): every header given is scanned for each
     * header libcurl considers adding, on every request. */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, has_body ? &h->fixed[0] : &h->fixed[1]);

    /* The method: every option an earlier request of this handle may have set is set again here. A HEAD answer has
     * no body whatever its Content-Length says. */
    curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    } else if (!has_body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    } else {
        /* POST and PUT: the body (possibly empty) is sent as it is, with the method named. */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(m, "POST") != 0 ? m : NULL);
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        return sl__fail(SL_EINTERNAL, "curl_multi_add_handle failed");
    h->active = true;
    return 0;
}

/* What a caller is waiting for. */
typedef enum { S_WANT_DONE, S_WANT_HEADERS, S_WANT_DATA } s_want;

static bool s_ready(const sl__http *h, s_want want) {
    switch (want) {
    case S_WANT_HEADERS:
        return h->done || h->headers_done;
    case S_WANT_DATA:
        return h->done || h->user_len > 0;
    default:
        return h->done;
    }
}

/* Runs the transfer one step: perform, collect completion, and only if what the caller wants is still missing,
 * wait for socket activity. */
static int s_step(sl__http *h, s_want want) {
    if (sl__http_aborted())
        return sl__fail(SL_ECANCELED, "%s: request abandoned (%s)", h->origin,
                        tl_abort && atomic_load(tl_abort) ? "the job was aborted" : "interrupted");
    int running = 0;
    CURLMcode mc = curl_multi_perform(h->multi, &running);
    if (mc != CURLM_OK)
        return sl__fail(SL_EINTERNAL, "curl_multi_perform: %s", curl_multi_strerror(mc));
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        /* On a shared multi handle the message may be about another handle of this thread (a stream it keeps open
         * while this one uploads): it is that handle's. */
        sl__http *to = NULL;
        if (msg->msg != CURLMSG_DONE || curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &to) != CURLE_OK || !to)
            continue;
        to->done = true;
        to->result = msg->data.result;
        long n = 0;
        if (curl_easy_getinfo(to->easy, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK && n > 0)
            to->connections += (uint64_t)n;
    }
    /* A thread that can be aborted wakes often enough to notice it promptly. */
    if (!s_ready(h, want) && running)
        curl_multi_poll(h->multi, NULL, 0, tl_abort || tl_user_abort ? 100 : 1000, NULL);
    return 0;
}

static int s_transport_error(sl__http *h) {
    const char *origin = h->origin;
    if (h->too_big)
        return sl__fail(SL_ETOOBIG, "%s: response larger than %zu bytes", origin, h->body_limit);
    if (h->result == CURLE_OK) {
        int rc = sl__fail(SL_EIO, "%s: connection closed inside the response headers", origin);
        if (!h->answered)
            s_health_no_answer(h, sl_last_error());
        return rc;
    }
    const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(h->result);
    if (h->result == CURLE_SSL_CACERT_BADFILE && s_ca_error[0])
        why = s_ca_error; /* the shared store's (s_ca_load), not the callback's generic complaint */
    /* A certificate that does not verify will not verify on the next attempt either: not SL_EIO, so not retried.
     * There is no switch to turn verification off. */
    if (h->result == CURLE_SSL_CACERT_BADFILE)
        return sl__fail(SL_EACCES,
                        "%s: %s (cannot load the trusted CA certificates, so no server can be verified: install the "
                        "ca-certificates package)",
                        origin, why);
    if (h->result == CURLE_PEER_FAILED_VERIFICATION || h->result == CURLE_SSL_ISSUER_ERROR ||
        h->result == CURLE_SSL_PINNEDPUBKEYNOTMATCH)
        return sl__fail(SL_EACCES,
                        "%s: %s (the server's TLS certificate is not trusted: sluice always verifies it; if this "
                        "server is yours, add its CA to the system's trusted certificates)",
                        origin, why);
    int rc = sl__fail(SL_EIO, "%s: %s", origin, why);
    if (!h->answered)
        s_health_no_answer(h, sl_last_error());
    return rc;
}

int sl__http_perform(sl__http *h, const sl__http_request *req, sl__http_response *resp) {
    int rc = s_start(h, req, resp, false);
    while (rc == 0 && !h->done)
        rc = s_step(h, S_WANT_DONE);
    /* libcurl (7.88) reports success when the connection closes after "Content-Length: 0" but before the blank
     * line that ends the headers: such an answer may lack fields (a Location, a Range), so it is a broken one. */
    if (rc == 0 && (h->result != CURLE_OK || !h->headers_done))
        rc = s_transport_error(h);
    if (rc == 0) {
        long status = 0;
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
        resp->status = status;
        s_tally_status(req, status);
        if (!req->write_fn) {
            resp->body = h->body ? h->body : (char *)"";
            resp->body_len = h->body_len;
        }
    }
    s_detach(h);
    return rc;
}

int sl__http_stream_open(sl__http *h, const sl__http_request *req, sl__http_response *resp) {
    int rc = s_start(h, req, resp, true);
    while (rc == 0 && !h->done && !h->headers_done)
        rc = s_step(h, S_WANT_HEADERS);
    if (rc == 0 && h->done && !h->headers_done)
        rc = s_transport_error(h);
    if (rc < 0) {
        s_detach(h);
    } else {
        s_tally_status(req, resp->status);
        /* The caller's request and response may go out of scope while the body streams: nothing reads them now. */
        h->req = NULL;
        h->resp = NULL;
    }
    return rc;
}

int64_t sl__http_stream_read(sl__http *h, void *buf, size_t cap) {
    if (!h->active && !h->done)
        return sl__fail(SL_EINVAL, "no stream open");
    if (cap == 0)
        return 0;
    if (h->spill_len) {
        size_t n = h->spill_len < cap ? h->spill_len : cap;
        memcpy(buf, h->spill + h->spill_off, n);
        h->spill_off += n;
        h->spill_len -= n;
        return (int64_t)n;
    }
    h->user_buf = buf;
    h->user_cap = cap;
    h->user_len = 0;
    int rc = 0;
    if (h->paused && !h->done) {
        h->paused = false;
        curl_easy_pause(h->easy, CURLPAUSE_CONT); /* may deliver the held chunk right here */
    }
    while (rc == 0 && h->user_len == 0 && !h->done)
        rc = s_step(h, S_WANT_DATA);
    h->user_buf = NULL;
    if (rc < 0)
        return rc;
    if (h->user_len)
        return (int64_t)h->user_len;
    if (h->result != CURLE_OK)
        return s_transport_error(h);
    return 0;
}

void sl__http_stream_close(sl__http *h) {
    if (h)
        s_detach(h);
}

size_t sl__url_escape(char *buf, size_t cap, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0, written = 0; /* written: bytes stored contiguously; stops at the first piece that does not fit */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                     c == '.' || c == '_' || c == '~';
        char piece[3] = {(char)c, 0, 0};
        size_t plen = 1;
        if (!plain) {
            piece[0] = '%';
            piece[1] = hex[c >> 4];
            piece[2] = hex[c & 15];
            plen = 3;
        }
        if (written == n && n + plen < cap) {
            memcpy(buf + n, piece, plen);
            written += plen;
        }
        n += plen;
    }
    if (cap)
        buf[written] = '\0';
    return n;
}
