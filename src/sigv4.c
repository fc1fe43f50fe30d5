/* AWS Signature Version 4. The canonical request is never assembled in memory: it is fed to SHA-256 piece by piece
 * (and copied to the caller's debug buffer when asked), so a request of any size within the caps signs in fixed
 * stack space. Only the query string needs scratch, because its parameters are sorted by their encoded forms. */
#include "sigv4.h"

#include "strbuf.h"

#include "digest.h"
#include "fail.h"

#include "sluice/sluice.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_ALGORITHM "AWS4-HMAC-SHA256"
#define S_MAX_METHOD 16
#define S_ADDED 3 /* headers the signer adds: x-amz-date, x-amz-content-sha256, x-amz-security-token */

static const char s_hexdigits[] = "0123456789ABCDEF";
static const char s_lowerhex[] = "0123456789abcdef";

static bool s_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

size_t sl__sigv4_encode(char *buf, size_t cap, const char *s, size_t len, bool keep_slash) {
    size_t n = 0, end = 0;
    bool full = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool keep = s_unreserved(c) || (keep_slash && c == '/');
        size_t w = keep ? 1 : 3;
        /* What does not fit stops the writing for good, so a %XX is never split. */
        if (!full && n + w < cap) {
            if (keep) {
                buf[n] = (char)c;
            } else {
                buf[n] = '%';
                buf[n + 1] = s_hexdigits[c >> 4];
                buf[n + 2] = s_hexdigits[c & 15];
            }
            end = n + w;
        } else {
            full = true;
        }
        n += w;
    }
    if (cap > 0)
        buf[end] = '\0';
    return n;
}

/* Up to 200 bytes of text for a message, control bytes shown as '?', so a key with a newline keeps it one line. */
static const char *s_shown(const char *s, char *buf, size_t cap) {
    size_t n = 0;
    for (; s && s[n] && n + 1 < cap && n < 200; n++)
        buf[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
    buf[n] = '\0';
    return buf;
}

int sl__sigv4_encode_path(const char *path, char *buf, size_t cap) {
    char shown[208];
    if (!path || !*path) {
        if (cap < 2)
            return sl__fail(SL_ETOOBIG, "sigv4: no room for the path '/'");
        memcpy(buf, "/", 2);
        return 0;
    }
    if (path[0] != '/')
        return sl__fail(SL_EINVAL, "sigv4: path '%s' does not start with '/'", s_shown(path, shown, sizeof(shown)));
    size_t n = sl__sigv4_encode(buf, cap, path, strlen(path), true);
    if (n >= cap)
        return sl__fail(SL_ETOOBIG, "sigv4: path '%s': its encoded form (%zu bytes) does not fit %zu bytes",
                        s_shown(path, shown, sizeof(shown)), n, cap);
    return 0;
}

/* ---- the canonical query string --------------------------------------------------------------------------------- */

typedef struct s_qentry {
    const char *name; /* encoded, NUL-terminated, in the scratch */
    const char *value;
} s_qentry;

static int s_qcmp(const s_qentry *a, const s_qentry *b) {
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->value, b->value);
}

/* Encodes and sorts; entries point into scratch. Returns the count or fails. */
static int s_query_sorted(const sl__sigv4_param *query, size_t count, char *scratch, size_t cap, s_qentry *out) {
    if (count > SL__SIGV4_MAX_QUERY)
        return sl__fail(SL_EINVAL, "sigv4: %zu query parameters, more than the %d a request may have", count,
                        SL__SIGV4_MAX_QUERY);
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        if (!query[i].name)
            return sl__fail(SL_EINVAL, "sigv4: query parameter %zu has no name", i + 1);
        const char *v = query[i].value ? query[i].value : "";
        size_t room = cap - at;
        size_t n = sl__sigv4_encode(scratch + at, room, query[i].name, strlen(query[i].name), false);
        if (n + 1 > room)
            goto too_big;
        out[i].name = scratch + at;
        at += n + 1;
        room = cap - at;
        n = sl__sigv4_encode(scratch + at, room, v, strlen(v), false);
        if (n + 1 > room)
            goto too_big;
        out[i].value = scratch + at;
        at += n + 1;
    }
    /* Insertion sort: a request has a handful of parameters. */
    for (size_t i = 1; i < count; i++) {
        s_qentry e = out[i];
        size_t j = i;
        while (j > 0 && s_qcmp(&out[j - 1], &e) > 0) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = e;
    }
    return (int)count;

too_big:
    return sl__fail(SL_ETOOBIG, "sigv4: the encoded query parameters exceed %zu bytes", cap);
}

int sl__sigv4_query_string(const sl__sigv4_param *query, size_t count, char *buf, size_t cap) {
    char scratch[SL__SIGV4_QUERY_CAP];
    s_qentry e[SL__SIGV4_MAX_QUERY];
    int n = s_query_sorted(query, count, scratch, sizeof(scratch), e);
    if (n < 0)
        return n;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, "%s%s=%s", i ? "&" : "", e[i].name,
                         e[i].value);
        len += (size_t)w;
    }
    if (cap == 0 || len >= cap)
        return sl__fail(SL_ETOOBIG, "sigv4: the query string (%zu bytes) does not fit %zu bytes", len, cap);
    buf[len] = '\0';
    return (int)len;
}

/* ---- writing -------------------------------------------------------------------------------------------------- */

/* The canonical request goes to SHA-256 and, when asked, to a debug copy. */
typedef struct s_sink {
    EVP_MD_CTX *md;
    sl__strbuf copy; /* buf NULL: no copy asked for */
    bool md_failed;
    /* The pieces are many and small (a header name, a colon, a value): gathered here and hashed a buffer at a time,
     * since each EVP_DigestUpdate has a fixed cost larger than hashing a few bytes. */
    size_t held;
    char hold[1024];
} s_sink;

static void s_flush(s_sink *s) {
    if (s->held && s->md && EVP_DigestUpdate(s->md, s->hold, s->held) != 1)
        s->md_failed = true;
    s->held = 0;
}

static void s_put(s_sink *s, const char *p, size_t n) {
    if (s->held + n > sizeof(s->hold))
        s_flush(s);
    if (n >= sizeof(s->hold)) {
        if (s->md && EVP_DigestUpdate(s->md, p, n) != 1)
            s->md_failed = true;
    } else {
        memcpy(s->hold + s->held, p, n);
        s->held += n;
    }
    if (s->copy.buf)
        sl__strbuf_add(&s->copy, p, n);
}

static void s_puts(s_sink *s, const char *p) {
    s_put(s, p, strlen(p));
}

/* ---- checks --------------------------------------------------------------------------------------------------- */

static void s_digits(char *out, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
}

/* t (seconds since 1970, 0 to the end of year 9999) as YYYYMMDDTHHMMSSZ, UTC. By hand rather than gmtime_r (which
 * takes glibc's time-zone lock, shared by every worker) and strftime: it is done for every request. The date from
 * the days since 1970 by the proleptic Gregorian calendar in 400-year eras that start on 1 March. */
static void s_amz_date(int64_t t, char out[17]) {
    int64_t days = t / 86400, secs = t % 86400;
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365], from 1 March */
    unsigned mp = (5 * doy + 2) / 153;                                    /* [0, 11], March = 0 */
    unsigned day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    unsigned year = (unsigned)(yoe + era * 400) + (month <= 2);
    s_digits(out, year, 4);
    s_digits(out + 4, month, 2);
    s_digits(out + 6, day, 2);
    out[8] = 'T';
    s_digits(out + 9, (unsigned)(secs / 3600), 2);
    s_digits(out + 11, (unsigned)(secs / 60 % 60), 2);
    s_digits(out + 13, (unsigned)(secs % 60), 2);
    out[15] = 'Z';
    out[16] = '\0';
}

static bool s_token_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

static bool s_name_ok(const char *name) {
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++)
        if (!s_token_char((unsigned char)*p))
            return false;
    return true;
}

static bool s_value_ok(const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

static bool s_visible(const char *s, const char *forbidden) {
    if (!s || !*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || strchr(forbidden, *p))
            return false;
    return true;
}

static bool s_scope_part_ok(const char *s, size_t max) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return false;
    }
    return true;
}

static bool s_is_s3(const sl__sigv4_request *req) {
    return strcmp(req->service, "s3") == 0;
}

static bool s_has_token(const sl__sigv4_credentials *creds) {
    return creds->session_token && *creds->session_token;
}

/* Checks the request and credentials; writes the x-amz-date value ("YYYYMMDDTHHMMSSZ") into amz_date. */
static int s_check(const sl__sigv4_request *req, const sl__sigv4_credentials *creds, char amz_date[17]) {
    char shown[208];
    const char *path = req->path && *req->path ? req->path : "/";
    const char *method = req->method ? req->method : "";
    size_t mlen = strlen(method);
    if (mlen == 0 || mlen > S_MAX_METHOD || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != mlen)
        return sl__fail(SL_EINVAL, "sigv4: method '%s' is not an HTTP method", s_shown(method, shown, sizeof(shown)));
    if (path[0] != '/')
        return sl__fail(SL_EINVAL, "sigv4: %s %s: the path does not start with '/'", method,
                        s_shown(path, shown, sizeof(shown)));
    if (!s_scope_part_ok(req->region, sizeof(((sl__sigv4_key_cache *)0)->region) - 1))
        return sl__fail(SL_EINVAL, "sigv4: %s %s: region '%s' is not a region name (letters, digits, '-', '_', '.')",
                        method, s_shown(path, shown, sizeof(shown)), req->region ? req->region : "");
    if (!s_scope_part_ok(req->service, sizeof(((sl__sigv4_key_cache *)0)->service) - 1))
        return sl__fail(SL_EINVAL, "sigv4: %s %s: service '%s' is not a service name", method,
                        s_shown(path, shown, sizeof(shown)), req->service ? req->service : "");
    if (!creds || !s_visible(creds->access_key_id, "/,;=") || strlen(creds->access_key_id) > 128)
        return sl__fail(SL_EINVAL, "sigv4: %s %s: the access key id is empty or not printable ASCII", method,
                        s_shown(path, shown, sizeof(shown)));
    if (!creds->secret_access_key || !*creds->secret_access_key ||
        strlen(creds->secret_access_key) > SL__SIGV4_SECRET_CAP)
        return sl__fail(SL_EINVAL, "sigv4: %s %s: the secret access key of %s is empty or too long", method,
                        s_shown(path, shown, sizeof(shown)), creds->access_key_id);
    if (s_has_token(creds) && !s_visible(creds->session_token, ""))
        return sl__fail(SL_EINVAL, "sigv4: %s %s: the session token of %s is not printable ASCII", method,
                        s_shown(path, shown, sizeof(shown)), creds->access_key_id);
    const char *ph = req->payload_hash;
    if (ph && strcmp(ph, SL__SIGV4_UNSIGNED_PAYLOAD) != 0 && strcmp(ph, SL__SIGV4_STREAMING_PAYLOAD) != 0 &&
        (strlen(ph) != 64 || strspn(ph, s_lowerhex) != 64))
        return sl__fail(SL_EINVAL, "sigv4: %s %s: payload hash '%.80s' is neither 64 lower-case hex digits nor %s",
                        method, s_shown(path, shown, sizeof(shown)), ph, SL__SIGV4_UNSIGNED_PAYLOAD);
    if (req->time_s < 0 || req->time_s > INT64_C(253402300799))
        return sl__fail(SL_EINVAL, "sigv4: %s %s: signing time %lld is out of range", method,
                        s_shown(path, shown, sizeof(shown)), (long long)req->time_s);
    s_amz_date(req->time_s, amz_date);
    return 0;
}

/* ---- the extra headers ---------------------------------------------------------------------------------------- */

int sl__sigv4_amz_headers(const sl__sigv4_request *req, const sl__sigv4_credentials *creds, char *buf, size_t cap,
                          const char *lines[SL__SIGV4_AMZ_LINES]) {
    char amz_date[17];
    int rc = s_check(req, creds, amz_date);
    if (rc < 0)
        return rc;
    size_t at = 0, k = 0;
    const char *names[S_ADDED] = {"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"};
    const char *values[S_ADDED] = {amz_date, req->payload_hash ? req->payload_hash : SL__SIGV4_EMPTY_SHA256,
                                   creds->session_token};
    bool want[S_ADDED] = {true, s_is_s3(req), s_has_token(creds)};
    for (int i = 0; i < S_ADDED; i++) {
        if (!want[i])
            continue;
        sl__strbuf b = sl__strbuf_of(buf + (at < cap ? at : cap), at < cap ? cap - at : 0);
        sl__strbuf_str(&b, names[i]);
        sl__strbuf_add(&b, ": ", 2);
        sl__strbuf_str(&b, values[i]);
        size_t w = b.len;
        if (!sl__strbuf_end(&b)) {
            if (cap)
                buf[0] = '\0';
            lines[0] = NULL;
            return sl__fail(SL_ETOOBIG, "sigv4: the x-amz-* headers do not fit %zu bytes", cap);
        }
        lines[k++] = buf + at;
        at += w + 1;
    }
    lines[k] = NULL;
    return 0;
}

/* ---- signing -------------------------------------------------------------------------------------------------- */

typedef struct s_hentry {
    const char *name; /* as given; compared and written lower-cased */
    const char *value;
} s_hentry;

static int s_hcmp(const s_hentry *a, const s_hentry *b) {
    return strcasecmp(a->name, b->name);
}

static void s_put_lower(s_sink *s, const char *name) {
    char low[64];
    size_t n = 0;
    for (const char *p = name; *p; p++) {
        low[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        if (n == sizeof(low)) {
            s_put(s, low, n);
            n = 0;
        }
    }
    s_put(s, low, n);
}

static void s_out_lower(sl__strbuf *o, const char *name) {
    for (const char *p = name; *p; p++) {
        char c = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        sl__strbuf_add(o, &c, 1);
    }
}

/* A header value trimmed, runs of spaces and tabs written as one space. */
static void s_put_value(s_sink *s, const char *v) {
    const char *p = v;
    while (*p == ' ' || *p == '\t')
        p++;
    bool space = false;
    while (*p) {
        const char *run = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (p > run) {
            if (space)
                s_put(s, " ", 1);
            s_put(s, run, (size_t)(p - run));
        }
        space = false;
        while (*p == ' ' || *p == '\t') {
            p++;
            space = true;
        }
    }
}

static void s_put_path(s_sink *s, const char *path) {
    char chunk[256];
    size_t len = strlen(path);
    /* 80 raw bytes encode to at most 240. */
    for (size_t at = 0; at < len; at += 80) {
        size_t n = len - at < 80 ? len - at : 80;
        size_t w = sl__sigv4_encode(chunk, sizeof(chunk), path + at, n, true);
        s_put(s, chunk, w);
    }
}

static void s_hex(const unsigned char *p, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = s_lowerhex[p[i] >> 4];
        out[2 * i + 1] = s_lowerhex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool s_hmac(const unsigned char *key, size_t key_len, const void *data, size_t len, unsigned char out[32]) {
    return sl__hmac_sha256(key, key_len, data, len, out);
}

int sl__sigv4_derive_key(const char *secret, const char *date, const char *region, const char *service,
                         unsigned char key[32]) {
    unsigned char k[4 + SL__SIGV4_SECRET_CAP];
    size_t slen = strlen(secret);
    if (slen > sizeof(k) - 4)
        return sl__fail(SL_EINVAL, "sigv4: the secret access key is longer than %zu bytes", sizeof(k) - 4);
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, slen);
    unsigned char a[32], b[32];
    bool ok = s_hmac(k, 4 + slen, date, strlen(date), a) && s_hmac(a, 32, region, strlen(region), b) &&
              s_hmac(b, 32, service, strlen(service), a) && s_hmac(a, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return ok ? 0 : sl__fail(SL_EINTERNAL, "sigv4: HMAC-SHA256 failed in OpenSSL");
}

int sl__sigv4_sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char d[32];
    unsigned int dlen = 0;
    if (EVP_Digest(data, len, d, &dlen, sl__md_sha256(), NULL) != 1 || dlen != 32)
        return sl__fail(SL_EINTERNAL, "sigv4: SHA-256 failed in OpenSSL");
    s_hex(d, 32, out);
    return 0;
}

void sl__sigv4_key_cache_wipe(sl__sigv4_key_cache *cache) {
    if (!cache)
        return;
    sl__hmac_key_free(cache->mac);
    EVP_MD_CTX_free(cache->md);
    OPENSSL_cleanse(cache, sizeof(*cache));
}

/* The signing key for this request, from the cache when it holds the same secret, date, region and service. */
static int s_signing_key(sl__sigv4_key_cache *cache, const char *secret, const char *date, const char *region,
                         const char *service, unsigned char key[32]) {
    if (!cache)
        return sl__sigv4_derive_key(secret, date, region, service, key);
    size_t secret_len = strlen(secret);
    if (cache->valid && cache->secret_len == secret_len && CRYPTO_memcmp(cache->secret, secret, secret_len) == 0 &&
        strcmp(cache->date, date) == 0 && strcmp(cache->region, region) == 0 && strcmp(cache->service, service) == 0) {
        memcpy(key, cache->key, 32);
        return 0;
    }
    cache->valid = false;
    sl__hmac_key_free(cache->mac); /* never the states of another key */
    cache->mac = NULL;
    /* A secret longer than the cache holds is refused here (both caps are SL__SIGV4_SECRET_CAP). */
    int rc = sl__sigv4_derive_key(secret, date, region, service, cache->key);
    if (rc < 0)
        return rc;
    OPENSSL_cleanse(cache->secret, sizeof(cache->secret));
    memcpy(cache->secret, secret, secret_len);
    cache->secret_len = secret_len;
    snprintf(cache->date, sizeof(cache->date), "%s", date);
    snprintf(cache->region, sizeof(cache->region), "%s", region);
    snprintf(cache->service, sizeof(cache->service), "%s", service);
    cache->valid = true;
    cache->derivations++;
    cache->mac = sl__hmac_key_new(cache->key, 32); /* NULL: each request keys its own */
    memcpy(key, cache->key, 32);
    return 0;
}

/* The signature of a string to sign: HMAC-SHA256 under the signing key, through the cache's keyed context. */
static int s_signature_of(sl__sigv4_key_cache *cache, const char *secret, const char *date, const char *region,
                          const char *service, const char *sts, size_t len, unsigned char sig[32]) {
    unsigned char key[32];
    int rc = s_signing_key(cache, secret, date, region, service, key);
    if (rc == 0 &&
        !(cache && cache->mac ? sl__hmac_key_sign(cache->mac, sts, len, sig) : s_hmac(key, sizeof(key), sts, len, sig)))
        rc = sl__fail(SL_EINTERNAL, "sigv4: HMAC-SHA256 failed in OpenSSL");
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int sl__sigv4_sign(sl__sigv4_key_cache *cache, const sl__sigv4_request *req, const sl__sigv4_credentials *creds,
                   char *auth, size_t auth_cap, sl__sigv4_debug *debug) {
    char shown[208];
    char amz_date[17];
    int rc = 0;
    EVP_MD_CTX *md = NULL, *own_md = NULL; /* own_md: made for this call (no cache), freed at the end */
    unsigned char sig[32];
    if (auth_cap)
        auth[0] = '\0';
    if ((rc = s_check(req, creds, amz_date)) < 0)
        return rc;
    const char *path = req->path && *req->path ? req->path : "/";
    const char *payload = req->payload_hash ? req->payload_hash : SL__SIGV4_EMPTY_SHA256;

    /* The headers signed: the caller's and the ones this signer adds, sorted by lower-cased name (stable, so a
     * repeated name keeps its values in the order given). */
    if (req->header_count > SL__SIGV4_MAX_HEADERS)
        return sl__fail(SL_ETOOBIG, "sigv4: %s %s: %zu headers to sign, more than %d", req->method,
                        s_shown(path, shown, sizeof(shown)), req->header_count, SL__SIGV4_MAX_HEADERS);
    s_hentry h[SL__SIGV4_MAX_HEADERS + S_ADDED];
    size_t nh = 0;
    bool host = false;
    for (size_t i = 0; i < req->header_count; i++) {
        const char *name = req->headers[i].name;
        const char *value = req->headers[i].value ? req->headers[i].value : "";
        if (!s_name_ok(name) || strlen(name) > 128)
            return sl__fail(SL_EINVAL, "sigv4: %s %s: header name '%.80s' is not an HTTP token", req->method,
                            s_shown(path, shown, sizeof(shown)), name ? name : "(null)");
        if (strcasecmp(name, "x-amz-date") == 0 || strcasecmp(name, "x-amz-content-sha256") == 0 ||
            strcasecmp(name, "x-amz-security-token") == 0 || strcasecmp(name, "authorization") == 0)
            return sl__fail(SL_EINVAL, "sigv4: %s %s: header %s is the signer's to add (sl__sigv4_amz_headers)",
                            req->method, s_shown(path, shown, sizeof(shown)), name);
        if (!s_value_ok(value))
            return sl__fail(SL_EINVAL, "sigv4: %s %s: the value of header %s has a control character", req->method,
                            s_shown(path, shown, sizeof(shown)), name);
        host |= strcasecmp(name, "host") == 0;
        h[nh++] = (s_hentry){name, value};
    }
    if (!host)
        return sl__fail(SL_EINVAL, "sigv4: %s %s: no host header to sign", req->method,
                        s_shown(path, shown, sizeof(shown)));
    h[nh++] = (s_hentry){"x-amz-date", amz_date};
    if (s_is_s3(req))
        h[nh++] = (s_hentry){"x-amz-content-sha256", payload};
    if (s_has_token(creds))
        h[nh++] = (s_hentry){"x-amz-security-token", creds->session_token};
    for (size_t i = 1; i < nh; i++) {
        s_hentry e = h[i];
        size_t j = i;
        while (j > 0 && s_hcmp(&h[j - 1], &e) > 0) {
            h[j] = h[j - 1];
            j--;
        }
        h[j] = e;
    }

    char scratch[SL__SIGV4_QUERY_CAP];
    s_qentry q[SL__SIGV4_MAX_QUERY];
    int nq = s_query_sorted(req->query, req->query_count, scratch, sizeof(scratch), q);
    if (nq < 0)
        return nq;

    /* The cache's digest context, reused from request to request (one allocation less per request). */
    if (cache && !cache->md)
        cache->md = EVP_MD_CTX_new();
    md = cache && cache->md ? cache->md : (own_md = EVP_MD_CTX_new());
    if (!md || EVP_DigestInit_ex2(md, sl__md_sha256(), NULL) != 1) {
        rc = sl__fail(SL_EINTERNAL, "sigv4: SHA-256 unavailable in OpenSSL");
        goto on_error;
    }
    s_sink s = {.md = md};
    if (debug && debug->canonical_request)
        s.copy = sl__strbuf_of(debug->canonical_request, debug->canonical_request_cap);
    s_puts(&s, req->method);
    s_put(&s, "\n", 1);
    s_put_path(&s, path);
    s_put(&s, "\n", 1);
    for (int i = 0; i < nq; i++) {
        if (i)
            s_put(&s, "&", 1);
        s_puts(&s, q[i].name);
        s_put(&s, "=", 1);
        s_puts(&s, q[i].value);
    }
    s_put(&s, "\n", 1);
    for (size_t i = 0; i < nh; i++) {
        if (i == 0 || strcasecmp(h[i].name, h[i - 1].name) != 0) {
            if (i)
                s_put(&s, "\n", 1);
            s_put_lower(&s, h[i].name);
            s_put(&s, ":", 1);
        } else {
            s_put(&s, ",", 1);
        }
        s_put_value(&s, h[i].value);
    }
    s_put(&s, "\n\n", 2);
    for (size_t i = 0; i < nh; i++) {
        if (i && strcasecmp(h[i].name, h[i - 1].name) == 0)
            continue;
        if (i)
            s_put(&s, ";", 1);
        s_put_lower(&s, h[i].name);
    }
    s_put(&s, "\n", 1);
    s_puts(&s, payload);
    unsigned char digest[32];
    unsigned int dlen = 0;
    s_flush(&s);
    if (s.md_failed || EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 32) {
        rc = sl__fail(SL_EINTERNAL, "sigv4: SHA-256 failed in OpenSSL");
        goto on_error;
    }
    if (s.copy.buf && !sl__strbuf_end(&s.copy)) {
        rc = sl__fail(SL_ETOOBIG,
                      "sigv4: %s %s: the canonical request (%zu bytes) does not fit the %zu-byte debug buffer",
                      req->method, s_shown(path, shown, sizeof(shown)), s.copy.len, s.copy.cap);
        goto on_error;
    }
    char digest_hex[65];
    s_hex(digest, 32, digest_hex);

    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    char sts[256];
    sl__strbuf b = sl__strbuf_of(sts, sizeof(sts));
    sl__strbuf_str(&b, S_ALGORITHM "\n");
    sl__strbuf_add(&b, amz_date, 16);
    sl__strbuf_add(&b, "\n", 1);
    sl__strbuf_add(&b, date, 8);
    sl__strbuf_add(&b, "/", 1);
    sl__strbuf_str(&b, req->region);
    sl__strbuf_add(&b, "/", 1);
    sl__strbuf_str(&b, req->service);
    sl__strbuf_str(&b, "/aws4_request\n");
    sl__strbuf_add(&b, digest_hex, 64);
    int stslen = (int)b.len;
    if (!sl__strbuf_end(&b)) {
        rc = sl__fail(SL_EINTERNAL, "sigv4: the string to sign does not fit %zu bytes", sizeof(sts));
        goto on_error;
    }
    if (debug && debug->string_to_sign) {
        if ((size_t)stslen >= debug->string_to_sign_cap) {
            rc = sl__fail(SL_ETOOBIG, "sigv4: the string to sign (%d bytes) does not fit the %zu-byte debug buffer",
                          stslen, debug->string_to_sign_cap);
            goto on_error;
        }
        memcpy(debug->string_to_sign, sts, (size_t)stslen + 1);
    }
    if ((rc = s_signature_of(cache, creds->secret_access_key, date, req->region, req->service, sts, (size_t)stslen,
                             sig)) < 0)
        goto on_error;
    char sig_hex[65];
    s_hex(sig, 32, sig_hex);

    sl__strbuf o = sl__strbuf_of(auth, auth_cap);
    sl__strbuf_str(&o, "Authorization: " S_ALGORITHM " Credential=");
    sl__strbuf_str(&o, creds->access_key_id);
    sl__strbuf_str(&o, "/");
    sl__strbuf_str(&o, date);
    sl__strbuf_str(&o, "/");
    sl__strbuf_str(&o, req->region);
    sl__strbuf_str(&o, "/");
    sl__strbuf_str(&o, req->service);
    sl__strbuf_str(&o, "/aws4_request,SignedHeaders=");
    for (size_t i = 0; i < nh; i++) {
        if (i && strcasecmp(h[i].name, h[i - 1].name) == 0)
            continue;
        if (i)
            sl__strbuf_add(&o, ";", 1);
        s_out_lower(&o, h[i].name);
    }
    sl__strbuf_str(&o, ",Signature=");
    sl__strbuf_str(&o, sig_hex);
    if (!sl__strbuf_end(&o)) {
        if (auth_cap)
            auth[0] = '\0';
        rc = sl__fail(SL_ETOOBIG, "sigv4: %s %s: the Authorization header (%zu bytes) does not fit %zu bytes",
                      req->method, s_shown(path, shown, sizeof(shown)), o.len, auth_cap);
        goto on_error;
    }

on_error:
    EVP_MD_CTX_free(own_md);
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}

static bool s_is_hex64(const char *s) {
    return s && strlen(s) == 64 && strspn(s, s_lowerhex) == 64;
}

int sl__sigv4_chunk_sign(sl__sigv4_key_cache *cache, const sl__sigv4_request *req, const sl__sigv4_credentials *creds,
                         const char *previous_signature, const char *chunk_sha256, char signature[65]) {
    char amz_date[17];
    int rc = s_check(req, creds, amz_date);
    signature[0] = '\0';
    if (rc < 0)
        return rc;
    if (!s_is_hex64(previous_signature) || !s_is_hex64(chunk_sha256))
        return sl__fail(SL_EINVAL, "sigv4: a chunk signature needs the previous signature and the chunk's SHA-256 as "
                                   "64 lower-case hex digits each");
    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    char sts[400];
    int n = snprintf(sts, sizeof(sts),
                     S_ALGORITHM "-PAYLOAD\n%s\n%s/%s/%s/aws4_request\n%s\n" SL__SIGV4_EMPTY_SHA256 "\n%s", amz_date,
                     date, req->region, req->service, previous_signature, chunk_sha256);
    if (n < 0 || (size_t)n >= sizeof(sts))
        return sl__fail(SL_EINTERNAL, "sigv4: the chunk's string to sign does not fit %zu bytes", sizeof(sts));
    unsigned char sig[32];
    rc = s_signature_of(cache, creds->secret_access_key, date, req->region, req->service, sts, (size_t)n, sig);
    if (rc == 0)
        s_hex(sig, 32, signature);
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}

/* One chunk's framing: its size in hex, ";chunk-signature=", 64 hex digits, CRLF, the data, CRLF. */
static uint64_t s_chunk_frame(uint64_t size) {
    unsigned hex = 1;
    for (uint64_t v = size >> 4; v; v >>= 4)
        hex++;
    return hex + strlen(";chunk-signature=") + 64 + 2 + size + 2;
}

uint64_t sl__sigv4_chunked_length(uint64_t payload_bytes, uint64_t chunk_bytes) {
    if (chunk_bytes == 0)
        return 0;
    uint64_t full = payload_bytes / chunk_bytes, rest = payload_bytes % chunk_bytes;
    return full * s_chunk_frame(chunk_bytes) + (rest ? s_chunk_frame(rest) : 0) + s_chunk_frame(0);
}
