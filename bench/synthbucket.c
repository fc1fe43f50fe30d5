/* sl-synthbucket: a synthetic Google Cloud Storage bucket on 127.0.0.1, fast enough to measure a client with.
 *
 * It lives in bench/ rather than tests/: it is a benchmark endpoint (the client is what is measured, this server must
 * never be the limit), not code under test; tests use it the way benchmarks do, as a fixture started on a free port.
 *
 * The bucket (--bucket, default "synth") holds --objects N objects that cost no storage: object i is named
 * PREFIX + i in ten digits ("obj/0000001234", so names sort as indices do), its size is a pure function of i around
 * --size (uniform within +-jitter %), and its bytes a pure function of (i, offset): every 4 KiB block but the last is
 * one of a fixed pool of random blocks (chosen by a hash of i and the block number), the last one is generated from a
 * hash of i, so no two objects are alike. An object's CRC32C is then cheap without reading it: the CRC of each pool
 * block is known, a CRC state is carried over 4 KiB of bytes by four table look-ups, and only the last block is
 * hashed. Every other bucket name is an empty sink: it lists nothing, and accepts uploads (multipart, media,
 * resumable) whose bytes are checked against the CRC32C the client declared (400 on a mismatch), then dropped.
 *
 * The delay per request (--delay-ms) suspends the connection (libmicrohttpd's suspend/resume) and a timer thread
 * resumes it when due, so delayed requests never hold a thread; the same timer paces media bodies to
 * --rate-per-conn bytes per second per connection. Counters are served at GET /_stats (POST /_stats/reset zeroes
 * them). Nothing is kept per object; what is kept per upload session is bounded (--max-sessions). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define S_BLOCK 4096u
#define S_POOL_BLOCKS 1024u /* 4 MiB of random blocks that object bodies are made of */
#define S_DIGITS 10         /* object i is PREFIX + i in this many digits */
#define S_NAME_CAP 1024     /* GCS's own limit on object names, in bytes */
#define S_HEAD_CAP 65536    /* a multipart upload's first part (its JSON metadata) and headers */
#define S_HOLD_CAP 256      /* the tail of a multipart body held back: it may be the closing boundary */
#define S_PAGE_MAX 1000     /* items per listing page, as GCS */
#define S_ITEM_CAP 1536     /* one listing item's JSON */
#define S_JSON_CAP 8192     /* a single object resource's or an error's JSON */
#define S_BODY_BLOCK (64 * 1024)
#define S_TICK_NS 1000000LL                  /* resumes of suspended connections are batched per millisecond */
#define S_GEN_BASE INT64_C(1767225600000000) /* generation of object 0 (2026-01-01 in microseconds) */
#define S_UPDATED "2026-01-01T00:00:00.000Z"

typedef enum {
    K_BUCKET,
    K_LIST,
    K_META,
    K_MEDIA,
    K_UPLOAD_MULTIPART,
    K_UPLOAD_MEDIA,
    K_RESUMABLE_START,
    K_RESUMABLE_CHUNK,
    K_RESUMABLE_CANCEL,
    K_REWRITE,
    K_PATCH,
    K_DELETE,
    K_STATS,
    K_OTHER,
    K_COUNT
} s_kind;
static const char *const s_kind_names[K_COUNT] = {"bucket",
                                                  "list",
                                                  "meta",
                                                  "media",
                                                  "upload_multipart",
                                                  "upload_media",
                                                  "resumable_start",
                                                  "resumable_chunk",
                                                  "resumable_cancel",
                                                  "rewrite",
                                                  "patch",
                                                  "delete",
                                                  "stats",
                                                  "other"};

/* ---- configuration (set once in main, read by every thread) ---- */
static struct {
    char bucket[256];
    char prefix[256];
    size_t prefix_len;
    uint64_t objects;
    uint64_t mean_size;
    unsigned jitter_pct;
    unsigned delay_ms;
    uint64_t corrupt_every;
    uint64_t rate_per_conn; /* bytes/s of one media body, 0: unpaced */
    unsigned threads;
    unsigned max_connections;
    unsigned max_sessions;
    bool verbose;
    uint16_t port;
} s_cfg = {.bucket = "synth",
           .prefix = "obj/",
           .objects = 1000,
           .mean_size = 4096,
           .jitter_pct = 50,
           .threads = 1,
           .max_connections = 4096,
           .max_sessions = 1024};

/* ---- counters (/_stats) ---- */
static struct {
    atomic_ullong requests[K_COUNT];
    atomic_ullong bytes_served, bytes_received, uploads_accepted, uploads_rejected, uploads_unchecked;
    atomic_ullong corrupted_served, errors, delayed, paced, suspended_now, suspended_peak;
} s_st;

static void s_count(atomic_ullong *c, unsigned long long n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- CRC32C (independent of the client's own code: this server is what checks it) ---- */

/* "Raw" CRC32C: the register update alone, without the initial and final inversion, so that it is linear:
 * raw(s, A) = raw(s, zeros(|A|)) ^ raw(0, A). crc32c(A) = ~raw(~0, A). */
static uint32_t s_crc_table[256];
static uint32_t s_shift_table[4][256]; /* raw(b << 8j, zeros(4096)) */
static uint32_t s_pool_crc[S_POOL_BLOCKS];
static unsigned char *s_pool;
static bool s_crc_hw;

static uint32_t s_crc_sw(uint32_t s, const unsigned char *p, size_t n) {
    while (n--)
        s = s_crc_table[(s ^ *p++) & 0xff] ^ (s >> 8);
    return s;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t s_crc_sse(uint32_t s, const unsigned char *p, size_t n) {
    unsigned long long c = s;
    while (n >= 8) {
        unsigned long long v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

static uint32_t s_crc_raw(uint32_t s, const void *p, size_t n) {
#if defined(__x86_64__)
    if (s_crc_hw)
        return s_crc_sse(s, p, n);
#endif
    return s_crc_sw(s, p, n);
}

static uint32_t s_shift4k(uint32_t s) {
    return s_shift_table[0][s & 0xff] ^ s_shift_table[1][(s >> 8) & 0xff] ^ s_shift_table[2][(s >> 16) & 0xff] ^
           s_shift_table[3][s >> 24];
}

/* ---- the synthetic objects ---- */

static uint64_t s_mix(uint64_t x) { /* splitmix64's finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void s_random_fill(uint64_t seed, unsigned char *out, size_t n) {
    uint64_t x = s_mix(seed) | 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(out + i, &x, 8);
    }
    if (i < n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(out + i, &x, n - i);
    }
}

static int s_init_data(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        s_crc_table[b] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    s_crc_hw = __builtin_cpu_supports("sse4.2");
#endif
    static const unsigned char zeros[S_BLOCK];
    for (int j = 0; j < 4; j++)
        for (uint32_t b = 0; b < 256; b++)
            s_shift_table[j][b] = s_crc_raw(b << (8 * j), zeros, S_BLOCK);
    s_pool = malloc((size_t)S_POOL_BLOCKS * S_BLOCK);
    if (!s_pool)
        return -1;
    for (uint32_t k = 0; k < S_POOL_BLOCKS; k++) {
        s_random_fill(0x5EED0000ull + k, s_pool + (size_t)k * S_BLOCK, S_BLOCK);
        s_pool_crc[k] = s_crc_raw(0, s_pool + (size_t)k * S_BLOCK, S_BLOCK);
    }
    return 0;
}

static uint64_t s_size(uint64_t i) {
    uint64_t m = s_cfg.mean_size, d = m * s_cfg.jitter_pct / 100;
    if (!d)
        return m;
    return m - d + s_mix(i ^ 0x5125Eull) % (2 * d + 1);
}

static uint32_t s_pool_block(uint64_t i, uint64_t b) {
    return (uint32_t)(s_mix(i * 0xD6E8FEB86659FD93ull ^ s_mix(b)) % S_POOL_BLOCKS);
}

static bool s_corrupt(uint64_t i) {
    return s_cfg.corrupt_every && (i + 1) % s_cfg.corrupt_every == 0;
}

/* The last block of object i (size bytes): its first `n` bytes. */
static void s_tail(uint64_t i, unsigned char *out, size_t n) {
    s_random_fill(i ^ 0x7A11000000000000ull, out, n);
}

/* CRC32C of object i's true bytes (never the corrupted ones). */
static uint32_t s_object_crc(uint64_t i, uint64_t size) {
    uint32_t s = 0xFFFFFFFFu;
    if (size) {
        uint64_t last = (size - 1) / S_BLOCK;
        for (uint64_t b = 0; b < last; b++)
            s = s_shift4k(s) ^ s_pool_crc[s_pool_block(i, b)];
        unsigned char tail[S_BLOCK];
        size_t n = (size_t)(size - last * S_BLOCK);
        s_tail(i, tail, n);
        s = s_crc_raw(s, tail, n);
    }
    return ~s;
}

/* Copies bytes [off, off + n) of object i into out; corrupted objects have their middle byte flipped. */
static void s_object_bytes(uint64_t i, uint64_t size, uint64_t off, unsigned char *out, size_t n) {
    uint64_t last = size ? (size - 1) / S_BLOCK : 0;
    size_t done = 0;
    while (done < n) {
        uint64_t at = off + done, b = at / S_BLOCK;
        size_t in = (size_t)(at % S_BLOCK), take = S_BLOCK - in;
        if (take > n - done)
            take = n - done;
        if (b < last) {
            memcpy(out + done, s_pool + (size_t)s_pool_block(i, b) * S_BLOCK + in, take);
        } else {
            unsigned char tail[S_BLOCK];
            s_tail(i, tail, in + take);
            memcpy(out + done, tail + in, take);
        }
        done += take;
    }
    uint64_t mid = size / 2;
    if (s_corrupt(i) && size && mid >= off && mid < off + n)
        out[mid - off] ^= 0xFF;
}

static size_t s_name(uint64_t i, char *out) {
    memcpy(out, s_cfg.prefix, s_cfg.prefix_len);
    char *d = out + s_cfg.prefix_len;
    for (int k = S_DIGITS - 1; k >= 0; k--) {
        d[k] = (char)('0' + i % 10);
        i /= 10;
    }
    d[S_DIGITS] = '\0';
    return s_cfg.prefix_len + S_DIGITS;
}

/* The index of the synthetic object called `name`, or -1. */
static int64_t s_lookup(const char *name) {
    size_t n = strlen(name);
    if (n != s_cfg.prefix_len + S_DIGITS || memcmp(name, s_cfg.prefix, s_cfg.prefix_len) != 0)
        return -1;
    uint64_t i = 0;
    for (const char *p = name + s_cfg.prefix_len; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        i = i * 10 + (uint64_t)(*p - '0');
    }
    return i < s_cfg.objects ? (int64_t)i : -1;
}

/* The first index whose name is >= key (s_cfg.objects when none). */
static uint64_t s_lower_bound(const char *key) {
    uint64_t lo = 0, hi = s_cfg.objects;
    char name[300];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        s_name(mid, name);
        if (strcmp(name, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first index whose name does not start with `pre` and sorts after it. */
static uint64_t s_past_prefix(const char *pre) {
    size_t n = strlen(pre);
    uint64_t lo = 0, hi = s_cfg.objects;
    char name[300];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        s_name(mid, name);
        if (strncmp(name, pre, n) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- small text helpers ---- */

static void s_crc_b64(uint32_t crc, char out[9]) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char b[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16), (unsigned char)(crc >> 8),
                          (unsigned char)crc};
    out[0] = a[b[0] >> 2];
    out[1] = a[((b[0] & 3) << 4) | (b[1] >> 4)];
    out[2] = a[((b[1] & 15) << 2) | (b[2] >> 6)];
    out[3] = a[b[2] & 63];
    out[4] = a[b[3] >> 2];
    out[5] = a[(b[3] & 3) << 4];
    out[6] = out[7] = '=';
    out[8] = '\0';
}

static int s_b64_val(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes a CRC32C as GCS spells it (base64 of 4 big-endian bytes). */
static bool s_crc_unb64(const char *t, size_t n, uint32_t *crc) {
    if (n != 8 || t[6] != '=' || t[7] != '=')
        return false;
    int v[6];
    for (int k = 0; k < 6; k++)
        if ((v[k] = s_b64_val(t[k])) < 0)
            return false;
    uint64_t bits = 0;
    for (int k = 0; k < 6; k++)
        bits = bits << 6 | (uint64_t)v[k];
    *crc = (uint32_t)(bits >> 4);
    return true;
}

/* crc32c=<b64> inside an X-Goog-Hash value. */
static bool s_hash_header_crc(const char *h, uint32_t *crc) {
    const char *p = h ? strstr(h, "crc32c=") : NULL;
    return p && s_crc_unb64(p + 7, strcspn(p + 7, ", "), crc);
}

static int s_hex(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes `in` into out (cap bytes); '+' is a space when `query`. False when it does not fit, is malformed
 * or holds a NUL. */
static bool s_unescape(const char *in, size_t n, bool query, char *out, size_t cap) {
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        char c = in[k];
        if (c == '%') {
            int h, l;
            if (k + 2 >= n)
                return false;
            if ((h = s_hex(in[k + 1])) < 0 || (l = s_hex(in[k + 2])) < 0)
                return false;
            c = (char)(h << 4 | l);
            k += 2;
            if (!c)
                return false;
        } else if (c == '+' && query) {
            c = ' ';
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

/* A JSON string literal of `s` (with its quotes) into out; false when it does not fit. */
static bool s_json_quote(const char *s, char *out, size_t cap) {
    size_t o = 0;
    if (cap < 3)
        return false;
    out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t n;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (*p < 0x20) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
        } else {
            esc[0] = (char)*p;
            n = 1;
        }
        if (o + n + 2 > cap)
            return false;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o++] = '"';
    out[o] = '\0';
    return true;
}

static int64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the timer: resumes suspended connections when they are due ---- */

typedef struct s_timer_entry {
    int64_t due_ns;
    struct MHD_Connection *conn;
} s_timer_entry;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    s_timer_entry *heap; /* a binary min-heap on due_ns, of at most cap entries */
    size_t len, cap;
    bool stopping;
} s_timer = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Suspends `conn` until `due_ns` (CLOCK_MONOTONIC). Called from an access handler or a content reader only (as
 * libmicrohttpd requires). False when it cannot be suspended (shutting down, or the heap is full): go on at once. */
static bool s_suspend_until(struct MHD_Connection *conn, int64_t due_ns) {
    pthread_mutex_lock(&s_timer.lock);
    if (s_timer.stopping || s_timer.len == s_timer.cap) {
        pthread_mutex_unlock(&s_timer.lock);
        return false;
    }
    /* Suspended before it is in the heap, so the timer never resumes a connection that is not suspended yet. */
    MHD_suspend_connection(conn);
    size_t k = s_timer.len++;
    while (k > 0 && s_timer.heap[(k - 1) / 2].due_ns > due_ns) {
        s_timer.heap[k] = s_timer.heap[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    s_timer.heap[k] = (s_timer_entry){due_ns, conn};
    if (k == 0)
        pthread_cond_signal(&s_timer.cond);
    unsigned long long now = atomic_fetch_add(&s_st.suspended_now, 1) + 1;
    unsigned long long peak = atomic_load(&s_st.suspended_peak);
    while (now > peak && !atomic_compare_exchange_weak(&s_st.suspended_peak, &peak, now))
        ;
    pthread_mutex_unlock(&s_timer.lock);
    return true;
}

static struct MHD_Connection *s_heap_pop(void) {
    struct MHD_Connection *top = s_timer.heap[0].conn;
    s_timer_entry last = s_timer.heap[--s_timer.len];
    size_t k = 0;
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= s_timer.len)
            break;
        if (c + 1 < s_timer.len && s_timer.heap[c + 1].due_ns < s_timer.heap[c].due_ns)
            c++;
        if (s_timer.heap[c].due_ns >= last.due_ns)
            break;
        s_timer.heap[k] = s_timer.heap[c];
        k = c;
    }
    if (s_timer.len)
        s_timer.heap[k] = last;
    return top;
}

static void *s_timer_main(void *arg) {
    (void)arg;
    struct MHD_Connection *due[256];
    pthread_mutex_lock(&s_timer.lock);
    for (;;) {
        size_t n = 0;
        int64_t now = s_now_ns();
        while (s_timer.len && n < 256 && (s_timer.stopping || s_timer.heap[0].due_ns <= now))
            due[n++] = s_heap_pop();
        if (n) {
            pthread_mutex_unlock(&s_timer.lock);
            for (size_t k = 0; k < n; k++)
                MHD_resume_connection(due[k]);
            atomic_fetch_sub(&s_st.suspended_now, n);
            pthread_mutex_lock(&s_timer.lock);
            continue;
        }
        if (s_timer.stopping)
            break;
        if (!s_timer.len) {
            pthread_cond_wait(&s_timer.cond, &s_timer.lock);
        } else {
            /* Woken once per tick at most: the connections due within one are resumed together, so that the
             * server's loop wakes once for all of them rather than once per request (requests come back at most
             * S_TICK_NS late). */
            int64_t at = (s_timer.heap[0].due_ns + S_TICK_NS - 1) / S_TICK_NS * S_TICK_NS;
            struct timespec ts = {.tv_sec = at / 1000000000LL, .tv_nsec = at % 1000000000LL};
            pthread_cond_timedwait(&s_timer.cond, &s_timer.lock, &ts);
        }
    }
    pthread_mutex_unlock(&s_timer.lock);
    return NULL;
}

/* ---- resumable upload sessions ---- */

typedef struct s_session {
    bool used, busy, done;
    uint64_t nonce;
    uint64_t persisted;
    uint32_t state; /* raw CRC state of the bytes persisted */
    bool has_expect;
    uint32_t expect;
    int64_t gen;
    int64_t touched_ns;
    char bucket[256];
    char name[S_NAME_CAP + 1];
} s_session;

static struct {
    pthread_mutex_t lock;
    s_session *slots;
    uint64_t nonce;
} s_sessions = {.lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_llong s_next_gen = S_GEN_BASE + 1000000000000LL;

/* ---- requests ---- */

enum { MP_NONE, MP_HEAD, MP_DATA, MP_SKIP };

typedef struct s_req {
    s_kind kind;
    bool delayed;
    int status; /* an error found while reading the body, answered at its end; 0: none */
    char why[512];
    /* uploads */
    int mp;
    char boundary[128];
    size_t blen;
    char *head;
    size_t head_len;
    unsigned char hold[S_HOLD_CAP];
    size_t hold_len;
    uint32_t state; /* raw CRC state of the data so far */
    uint64_t bytes;
    bool has_expect;
    uint32_t expect;
    char bucket[256];
    char name[S_NAME_CAP + 1];
    /* a resumable chunk */
    s_session *sess;
    uint64_t skip, first, declared, total;
    uint64_t body; /* bytes of the chunk's body, skipped ones included */
    bool has_range, final;
} s_req;

typedef struct s_body {
    uint64_t index, size, from, len;
    int64_t started_ns;
    struct MHD_Connection *conn;
} s_body;

static enum MHD_Result s_send(struct MHD_Connection *c, unsigned status, const char *body, size_t len,
                              const char *ctype) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result s_json(struct MHD_Connection *c, unsigned status, const char *body) {
    return s_send(c, status, body, strlen(body), "application/json; charset=UTF-8");
}

static enum MHD_Result s_error(struct MHD_Connection *c, unsigned status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result s_error(struct MHD_Connection *c, unsigned status, const char *reason, const char *fmt, ...) {
    char msg[1024], quoted[2200], body[S_JSON_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!s_json_quote(msg, quoted, sizeof(quoted)))
        snprintf(quoted, sizeof(quoted), "\"(message too long)\"");
    snprintf(body, sizeof(body),
             "{\"error\":{\"code\":%u,\"message\":%s,\"errors\":[{\"domain\":\"global\",\"reason\":\"%s\","
             "\"message\":%s}]}}",
             status, quoted, reason, quoted);
    s_count(&s_st.errors, 1);
    if (s_cfg.verbose)
        fprintf(stderr, "sl-synthbucket: %u %s\n", status, msg);
    return s_json(c, status, body);
}

static const char *s_arg(struct MHD_Connection *c, const char *key) {
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

/* Query argument `key`, percent-decoded into out; "" when absent. False when malformed or too long. */
static bool s_arg_text(struct MHD_Connection *c, const char *key, char *out, size_t cap) {
    const char *v = s_arg(c, key);
    if (!v) {
        out[0] = '\0';
        return true;
    }
    return s_unescape(v, strlen(v), true, out, cap);
}

/* An object resource. */
static void s_resource(char *out, size_t cap, const char *bucket, const char *name, uint64_t size, uint32_t crc,
                       int64_t gen, int64_t metagen) {
    char qn[S_NAME_CAP * 6 + 3], qb[600], b64[9];
    if (!s_json_quote(name, qn, sizeof(qn)))
        snprintf(qn, sizeof(qn), "\"\"");
    if (!s_json_quote(bucket, qb, sizeof(qb)))
        snprintf(qb, sizeof(qb), "\"\"");
    s_crc_b64(crc, b64);
    snprintf(out, cap,
             "{\"kind\":\"storage#object\",\"name\":%s,\"bucket\":%s,\"generation\":\"%" PRId64
             "\",\"metageneration\":\"%" PRId64 "\",\"contentType\":\"application/octet-stream\",\"size\":\"%" PRIu64
             "\",\"crc32c\":\"%s\",\"updated\":\"%s\",\"timeCreated\":\"%s\",\"storageClass\":\"STANDARD\"}",
             qn, qb, gen, metagen, size, b64, S_UPDATED, S_UPDATED);
}

static void s_synthetic_resource(uint64_t i, char *out, size_t cap) {
    char name[300];
    s_name(i, name);
    uint64_t size = s_size(i);
    s_resource(out, cap, s_cfg.bucket, name, size, s_object_crc(i, size), S_GEN_BASE + (int64_t)i, 1);
}

/* ---- listing ---- */

static enum MHD_Result s_list(struct MHD_Connection *c, const char *bucket) {
    char prefix[S_NAME_CAP + 1], delim[16], start[S_NAME_CAP + 1], end[S_NAME_CAP + 1], token[2 * S_NAME_CAP + 1],
        num[32];
    if (!s_arg_text(c, "prefix", prefix, sizeof(prefix)) || !s_arg_text(c, "delimiter", delim, sizeof(delim)) ||
        !s_arg_text(c, "startOffset", start, sizeof(start)) || !s_arg_text(c, "endOffset", end, sizeof(end)) ||
        !s_arg_text(c, "pageToken", token, sizeof(token)) || !s_arg_text(c, "maxResults", num, sizeof(num)))
        return s_error(c, 400, "invalid", "a listing argument is malformed or too long");
    unsigned long max = S_PAGE_MAX;
    if (num[0]) {
        char *e;
        max = strtoul(num, &e, 10);
        if (*e || !max)
            return s_error(c, 400, "invalid", "maxResults '%s' is not a positive integer", num);
        if (max > S_PAGE_MAX)
            max = S_PAGE_MAX;
    }
    if (strcmp(bucket, s_cfg.bucket) != 0)
        return s_json(c, 200, "{\"kind\":\"storage#objects\"}"); /* a sink: always empty */
    /* The page token is the hex of the next name to list. */
    char from[S_NAME_CAP + 1] = "";
    size_t tl = strlen(token);
    if (tl) {
        if (tl % 2 || tl / 2 > S_NAME_CAP)
            return s_error(c, 400, "invalid", "invalid page token");
        for (size_t k = 0; k < tl / 2; k++) {
            int h = s_hex(token[2 * k]), l = s_hex(token[2 * k + 1]);
            if (h < 0 || l < 0 || !(h | l))
                return s_error(c, 400, "invalid", "invalid page token");
            from[k] = (char)(h << 4 | l);
        }
        from[tl / 2] = '\0';
    }
    const char *key = prefix;
    if (strcmp(start, key) > 0)
        key = start;
    if (strcmp(from, key) > 0)
        key = from;
    size_t plen = strlen(prefix), dlen = strlen(delim);
    size_t cap = max * S_ITEM_CAP + 4096;
    char *out = malloc(cap);
    if (!out)
        return s_error(c, 503, "backendError", "out of memory for a listing page");
    size_t o = (size_t)snprintf(out, cap, "{\"kind\":\"storage#objects\"");
    size_t items = 0, prefixes = 0, emitted = 0;
    uint64_t i = s_lower_bound(key);
    char name[300], item[S_ITEM_CAP], pfx_json[4 * 300 + 16], *pfx_buf = NULL;
    size_t pfx_len = 0, pfx_cap = 0;
    bool more = false;
    /* Items and prefixes are written to separate places: items straight into out, prefixes into pfx_buf. */
    pfx_cap = max * 320 + 16;
    pfx_buf = malloc(pfx_cap);
    if (!pfx_buf) {
        free(out);
        return s_error(c, 503, "backendError", "out of memory for a listing page");
    }
    o += (size_t)snprintf(out + o, cap - o, ",\"items\":[");
    while (i < s_cfg.objects) {
        s_name(i, name);
        if (strncmp(name, prefix, plen) != 0 || (end[0] && strcmp(name, end) >= 0))
            break;
        if (emitted == max) {
            more = true;
            break;
        }
        const char *d = dlen ? strstr(name + plen, delim) : NULL;
        if (d) {
            char cp[300];
            size_t cl = (size_t)(d - name) + dlen;
            memcpy(cp, name, cl);
            cp[cl] = '\0';
            if (s_json_quote(cp, pfx_json, sizeof(pfx_json)))
                pfx_len +=
                    (size_t)snprintf(pfx_buf + pfx_len, pfx_cap - pfx_len, "%s%s", prefixes ? "," : "", pfx_json);
            prefixes++;
            emitted++;
            i = s_past_prefix(cp);
            continue;
        }
        uint64_t size = s_size(i);
        char b64[9];
        s_crc_b64(s_object_crc(i, size), b64);
        int n = snprintf(item, sizeof(item),
                         "%s{\"kind\":\"storage#object\",\"name\":\"%s\",\"bucket\":\"%s\",\"generation\":\"%" PRId64
                         "\",\"metageneration\":\"1\",\"contentType\":\"application/octet-stream\",\"size\":\"%" PRIu64
                         "\",\"crc32c\":\"%s\",\"updated\":\"%s\"}",
                         items ? "," : "", name, s_cfg.bucket, S_GEN_BASE + (int64_t)i, size, b64, S_UPDATED);
        memcpy(out + o, item, (size_t)n);
        o += (size_t)n;
        items++;
        emitted++;
        i++;
    }
    if (!items)
        o -= strlen(",\"items\":[");
    else
        out[o++] = ']';
    if (prefixes)
        o += (size_t)snprintf(out + o, cap - o, ",\"prefixes\":[%.*s]", (int)pfx_len, pfx_buf);
    free(pfx_buf);
    if (more) {
        o += (size_t)snprintf(out + o, cap - o, ",\"nextPageToken\":\"");
        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
            o += (size_t)snprintf(out + o, cap - o, "%02x", *p);
        out[o++] = '"';
    }
    out[o++] = '}';
    struct MHD_Response *r = MHD_create_response_from_buffer(o, out, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(out);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json; charset=UTF-8");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- media ---- */

static ssize_t s_body_read(void *cls, uint64_t pos, char *buf, size_t max) {
    s_body *b = cls;
    if (pos >= b->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = b->len - pos < max ? (size_t)(b->len - pos) : max;
    if (s_cfg.rate_per_conn) {
        /* Ahead of the pace: wait until these bytes are due. The first 64 KiB go at once. */
        int64_t now = s_now_ns();
        int64_t due = b->started_ns + (int64_t)((double)(pos + n) * 1e9 / (double)s_cfg.rate_per_conn) -
                      (int64_t)((double)S_BODY_BLOCK * 1e9 / (double)s_cfg.rate_per_conn);
        if (due > now + 1000000 && s_suspend_until(b->conn, due)) {
            s_count(&s_st.paced, 1);
            return 0;
        }
    }
    s_object_bytes(b->index, b->size, b->from + pos, (unsigned char *)buf, n);
    s_count(&s_st.bytes_served, n);
    return (ssize_t)n;
}

/* Parses "bytes=A-B", "bytes=A-" or "bytes=-N" against an object of `size` bytes. 1: a satisfiable range in
 * [*from, *from + *len); 0: no usable Range header (the whole object); -1: unsatisfiable. */
static int s_parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *len) {
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    const char *p = h + 6;
    char *e;
    if (*p == '-') {
        unsigned long long n = strtoull(p + 1, &e, 10);
        if (*e || e == p + 1)
            return 0;
        if (!n || !size)
            return -1;
        if (n > size)
            n = size;
        *from = size - n;
        *len = n;
        return 1;
    }
    unsigned long long a = strtoull(p, &e, 10), b = UINT64_MAX;
    if (e == p || *e != '-')
        return 0;
    p = e + 1;
    if (*p) {
        b = strtoull(p, &e, 10);
        if (*e || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    if (b >= size)
        b = size - 1;
    *from = a;
    *len = b - a + 1;
    return 1;
}

static enum MHD_Result s_media(struct MHD_Connection *c, uint64_t i) {
    uint64_t size = s_size(i), from = 0, len = size;
    int ranged = s_parse_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range"), size, &from, &len);
    char b64[9], hash[32], num[32], cr[96];
    s_crc_b64(s_object_crc(i, size), b64);
    snprintf(hash, sizeof(hash), "crc32c=%s", b64);
    if (ranged < 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
        MHD_add_response_header(r, "Content-Range", cr);
        s_count(&s_st.errors, 1);
        enum MHD_Result rc = MHD_queue_response(c, 416, r);
        MHD_destroy_response(r);
        return rc;
    }
    s_body *b = malloc(sizeof(*b));
    if (!b)
        return MHD_NO;
    *b = (s_body){.index = i, .size = size, .from = from, .len = len, .started_ns = s_now_ns(), .conn = c};
    struct MHD_Response *r = MHD_create_response_from_callback(len, S_BODY_BLOCK, s_body_read, b, free);
    if (!r) {
        free(b);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    MHD_add_response_header(r, "x-goog-hash", hash);
    snprintf(num, sizeof(num), "%" PRId64, S_GEN_BASE + (int64_t)i);
    MHD_add_response_header(r, "x-goog-generation", num);
    MHD_add_response_header(r, "x-goog-metageneration", "1");
    snprintf(num, sizeof(num), "%" PRIu64, size);
    MHD_add_response_header(r, "x-goog-stored-content-length", num);
    MHD_add_response_header(r, "x-goog-stored-content-encoding", "identity");
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    if (ranged) {
        snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, from, from + len - 1, size);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    if (s_corrupt(i))
        s_count(&s_st.corrupted_served, 1);
    enum MHD_Result rc = MHD_queue_response(c, ranged ? 206 : 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- uploads ---- */

static void s_data(s_req *r, const unsigned char *p, size_t n) {
    r->body += n;
    if (r->skip) {
        size_t k = r->skip < n ? (size_t)r->skip : n;
        r->skip -= k;
        p += k;
        n -= k;
    }
    r->state = s_crc_raw(r->state, p, n);
    r->bytes += n;
}

static void s_reject(s_req *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_reject(s_req *r, int status, const char *fmt, ...) {
    if (r->status)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    r->status = status;
    r->mp = MP_SKIP;
}

/* The multipart body's data part: everything but the last bytes, which may be the closing boundary. */
static void s_mp_data(s_req *r, const unsigned char *p, size_t n) {
    size_t hb = r->blen + 8; /* "\r\n--" boundary "--\r\n" */
    if (n >= hb) {
        s_data(r, r->hold, r->hold_len);
        s_data(r, p, n - hb);
        memcpy(r->hold, p + n - hb, hb);
        r->hold_len = hb;
        return;
    }
    if (r->hold_len + n > hb) {
        size_t out = r->hold_len + n - hb;
        s_data(r, r->hold, out);
        memmove(r->hold, r->hold + out, r->hold_len - out);
        r->hold_len -= out;
    }
    memcpy(r->hold + r->hold_len, p, n);
    r->hold_len += n;
}

static const unsigned char *s_find(const unsigned char *h, size_t hn, const char *needle, size_t nn) {
    return nn <= hn ? memmem(h, hn, needle, nn) : NULL;
}

/* Where the body of a multipart part starts, given what follows its delimiter line: after its header fields and
 * the blank line, or right after the blank line when it has no header fields (Google's Go client sends the media
 * part so, which RFC 2046 allows). NULL: not all there yet. */
static const unsigned char *s_part_body(const unsigned char *p, size_t n) {
    if (n >= 2 && p[0] == '\r' && p[1] == '\n')
        return p + 2;
    const unsigned char *e = s_find(p, n, "\r\n\r\n", 4);
    return e ? e + 4 : NULL;
}

static void s_mp_head(s_req *r, const unsigned char *p, size_t n) {
    if (!r->head && !(r->head = malloc(S_HEAD_CAP))) {
        s_reject(r, 503, "out of memory");
        return;
    }
    size_t take = S_HEAD_CAP - r->head_len < n ? S_HEAD_CAP - r->head_len : n;
    memcpy(r->head + r->head_len, p, take);
    r->head_len += take;
    const unsigned char *h = (const unsigned char *)r->head;
    char delim[160];
    int dl = snprintf(delim, sizeof(delim), "--%s\r\n", r->boundary);
    if (r->head_len < (size_t)dl)
        return;
    if (memcmp(h, delim, (size_t)dl) != 0) {
        s_reject(r, 400, "multipart body does not start with its boundary");
        return;
    }
    const unsigned char *json = s_part_body(h + dl, r->head_len - (size_t)dl);
    if (!json)
        goto more;
    dl = snprintf(delim, sizeof(delim), "\r\n--%s\r\n", r->boundary);
    const unsigned char *jend = s_find(json, r->head_len - (size_t)(json - h), delim, (size_t)dl);
    if (!jend)
        goto more;
    const unsigned char *data = s_part_body(jend + dl, r->head_len - (size_t)(jend + dl - h));
    if (!data)
        goto more;
    json_t *meta = json_loadb((const char *)json, (size_t)(jend - json), 0, NULL);
    if (!json_is_object(meta)) {
        json_decref(meta);
        s_reject(r, 400, "multipart metadata is not a JSON object");
        return;
    }
    const char *name = json_string_value(json_object_get(meta, "name"));
    if (name && strlen(name) <= S_NAME_CAP)
        snprintf(r->name, sizeof(r->name), "%s", name);
    const char *crc = json_string_value(json_object_get(meta, "crc32c"));
    if (crc && !s_crc_unb64(crc, strlen(crc), &r->expect)) {
        json_decref(meta);
        s_reject(r, 400, "metadata crc32c '%.40s' is not a base64 CRC32C", crc);
        return;
    }
    r->has_expect = crc != NULL;
    json_decref(meta);
    r->mp = MP_DATA;
    size_t rest = r->head_len - (size_t)(data - h);
    s_mp_data(r, data, rest);
    s_mp_data(r, p + take, n - take);
    free(r->head);
    r->head = NULL;
    return;
more:
    if (r->head_len == S_HEAD_CAP)
        s_reject(r, 400, "multipart metadata part longer than %d bytes", S_HEAD_CAP);
}

static void s_upload_chunk(s_req *r, const char *data, size_t n) {
    s_count(&s_st.bytes_received, n);
    if (r->status || r->mp == MP_SKIP)
        return;
    if (r->mp == MP_HEAD)
        s_mp_head(r, (const unsigned char *)data, n);
    else if (r->mp == MP_DATA)
        s_mp_data(r, (const unsigned char *)data, n);
    else
        s_data(r, (const unsigned char *)data, n);
}

/* Ends a multipart body: the held tail must be the closing boundary. */
static bool s_mp_end(s_req *r) {
    if (r->mp != MP_DATA) {
        s_reject(r, 400, "multipart body ended before its data part");
        return false;
    }
    char close[160];
    int cl = snprintf(close, sizeof(close), "\r\n--%s--", r->boundary);
    const unsigned char *at = NULL;
    for (const unsigned char *p = s_find(r->hold, r->hold_len, close, (size_t)cl); p;
         p = s_find(p + 1, r->hold_len - (size_t)(p + 1 - r->hold), close, (size_t)cl))
        at = p;
    size_t after = at ? r->hold_len - (size_t)(at - r->hold) - (size_t)cl : 0;
    if (!at || (after && !(after == 2 && memcmp(at + cl, "\r\n", 2) == 0))) {
        s_reject(r, 400, "multipart body does not end with its closing boundary");
        return false;
    }
    s_data(r, r->hold, (size_t)(at - r->hold));
    return true;
}

/* The answer to a finished upload of r->bytes bytes to r->bucket/r->name. */
static enum MHD_Result s_upload_done(struct MHD_Connection *c, s_req *r, uint32_t state, uint64_t size, bool has_expect,
                                     uint32_t expect, int64_t gen) {
    uint32_t crc = ~state;
    if (has_expect && crc != expect) {
        s_count(&s_st.uploads_rejected, 1);
        char got[9], want[9];
        s_crc_b64(crc, got);
        s_crc_b64(expect, want);
        return s_error(c, 400, "invalid",
                       "Provided CRC32C \"%s\" doesn't match calculated CRC32C \"%s\" (gs://%s/%s, %" PRIu64
                       " bytes received)",
                       want, got, r->bucket, r->name, size);
    }
    s_count(has_expect ? &s_st.uploads_accepted : &s_st.uploads_unchecked, 1);
    char body[S_JSON_CAP];
    s_resource(body, sizeof(body), r->bucket, r->name, size, crc, gen ? gen : atomic_fetch_add(&s_next_gen, 1), 1);
    return s_json(c, 200, body);
}

static s_session *s_session_find(const char *id) {
    unsigned long slot;
    unsigned long long nonce;
    char tail;
    if (!id || sscanf(id, "%lu-%llx%c", &slot, &nonce, &tail) != 2 || slot >= s_cfg.max_sessions)
        return NULL;
    s_session *s = &s_sessions.slots[slot];
    return s->used && s->nonce == nonce ? s : NULL;
}

static enum MHD_Result s_resumable_start(struct MHD_Connection *c, s_req *r) {
    char id[64];
    pthread_mutex_lock(&s_sessions.lock);
    s_session *pick = NULL;
    for (unsigned k = 0; k < s_cfg.max_sessions; k++) {
        s_session *s = &s_sessions.slots[k];
        if (!s->used) {
            pick = s;
            break;
        }
        if (!s->busy && (!pick || s->touched_ns < pick->touched_ns))
            pick = s; /* the least recently used session gives way (GCS's expire after a week) */
    }
    if (!pick) {
        pthread_mutex_unlock(&s_sessions.lock);
        return s_error(c, 503, "backendError", "too many upload sessions in progress (--max-sessions %u)",
                       s_cfg.max_sessions);
    }
    memset(pick, 0, sizeof(*pick));
    pick->used = true;
    pick->nonce = ++s_sessions.nonce;
    pick->state = 0xFFFFFFFFu;
    pick->has_expect = r->has_expect;
    pick->expect = r->expect;
    pick->touched_ns = s_now_ns();
    snprintf(pick->bucket, sizeof(pick->bucket), "%s", r->bucket);
    snprintf(pick->name, sizeof(pick->name), "%s", r->name);
    snprintf(id, sizeof(id), "%lu-%llx", (unsigned long)(pick - s_sessions.slots), (unsigned long long)pick->nonce);
    pthread_mutex_unlock(&s_sessions.lock);
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    char bucket_esc[800], loc[2048];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)r->bucket; *p && o + 4 < sizeof(bucket_esc); p++)
        o += (size_t)snprintf(
            bucket_esc + o, sizeof(bucket_esc) - o,
            (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ? "%c"
                                                                                                        : "%%%02X",
            *p);
    bucket_esc[o] = '\0';
    snprintf(loc, sizeof(loc), "http://%s/upload/storage/v1/b/%s/o?uploadType=resumable&upload_id=%s",
             host ? host : "127.0.0.1", bucket_esc, id);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Location", loc);
    enum MHD_Result rc = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Parses a chunk's Content-Range: "bytes A-B/T" or "bytes A-B/" followed by "*" (size not known yet), or a status
 * query: "bytes *" followed by "/T" or "/" and "*". */
static bool s_content_range(const char *h, s_req *r) {
    if (!h || strncmp(h, "bytes ", 6) != 0)
        return false;
    const char *p = h + 6;
    char *e;
    r->has_range = false;
    if (*p == '*') {
        p++;
    } else {
        unsigned long long a = strtoull(p, &e, 10);
        if (e == p || *e != '-')
            return false;
        p = e + 1;
        unsigned long long b = strtoull(p, &e, 10);
        if (e == p || b < a)
            return false;
        p = e;
        r->has_range = true;
        r->first = a;
        r->declared = b - a + 1;
    }
    if (*p++ != '/')
        return false;
    if (*p == '*' && !p[1]) {
        r->final = false;
        return true;
    }
    unsigned long long t = strtoull(p, &e, 10);
    if (e == p || *e)
        return false;
    r->final = true;
    r->total = t;
    return !r->has_range || r->first + r->declared <= t;
}

static void s_release(s_session *s) {
    pthread_mutex_lock(&s_sessions.lock);
    s->busy = false;
    pthread_mutex_unlock(&s_sessions.lock);
}

static enum MHD_Result s_range_308(struct MHD_Connection *c, uint64_t persisted) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    if (persisted) {
        char range[64];
        snprintf(range, sizeof(range), "bytes=0-%" PRIu64, persisted - 1);
        MHD_add_response_header(resp, "Range", range);
    }
    enum MHD_Result rc = MHD_queue_response(c, 308, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* The end of a chunk PUT: commit what it brought to its session and answer. */
static enum MHD_Result s_chunk_end(struct MHD_Connection *c, s_req *r) {
    s_session *s = r->sess;
    r->sess = NULL;
    if (r->status) {
        s_release(s);
        return s_error(c, (unsigned)r->status, "invalid", "%s", r->why);
    }
    if (s->done) {
        char body[S_JSON_CAP];
        s_resource(body, sizeof(body), s->bucket, s->name, s->persisted, ~s->state, s->gen, 1);
        s_release(s);
        return s_json(c, 200, body);
    }
    if (r->body != (r->has_range ? r->declared : 0)) {
        s_release(s);
        return s_error(c, 400, "invalid",
                       "chunk of gs://%s/%s: its Content-Range says %" PRIu64 " bytes, its body has %" PRIu64,
                       s->bucket, s->name, r->has_range ? r->declared : 0, r->body);
    }
    pthread_mutex_lock(&s_sessions.lock);
    s->persisted += r->bytes;
    s->state = r->state;
    s->touched_ns = s_now_ns();
    uint64_t persisted = s->persisted;
    pthread_mutex_unlock(&s_sessions.lock);
    if (r->final && persisted > r->total) {
        s_release(s);
        return s_error(c, 400, "invalid",
                       "upload of gs://%s/%s: %" PRIu64 " bytes received, more than the %" PRIu64 " declared",
                       s->bucket, s->name, persisted, r->total);
    }
    if (!r->final || persisted < r->total) {
        s_release(s);
        return s_range_308(c, persisted);
    }
    uint32_t expect;
    bool has_expect = s->has_expect;
    expect = s->expect;
    if (s_hash_header_crc(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Goog-Hash"), &expect))
        has_expect = true;
    snprintf(r->bucket, sizeof(r->bucket), "%s", s->bucket);
    snprintf(r->name, sizeof(r->name), "%s", s->name);
    uint32_t crc = ~s->state;
    bool ok = !has_expect || crc == expect;
    int64_t gen = 0;
    pthread_mutex_lock(&s_sessions.lock);
    if (ok) {
        s->done = true;
        s->gen = gen = atomic_fetch_add(&s_next_gen, 1);
    } else {
        s->used = false; /* a rejected upload is over */
    }
    s->busy = false;
    pthread_mutex_unlock(&s_sessions.lock);
    return s_upload_done(c, r, r->state, persisted, has_expect, expect, gen);
}

/* ---- routing ---- */

/* Splits the raw path "/storage/v1/b/B[/o[/NAME[/rewriteTo/b/D/o/NAME2]]]" (or the upload one). */
typedef struct s_route {
    char bucket[256];
    bool objects;  /* ".../o" */
    bool has_name; /* ".../o/NAME" */
    char name[S_NAME_CAP + 1];
    bool rewrite;
    char dst_bucket[256];
    char dst_name[S_NAME_CAP + 1];
} s_route;

static bool s_segment(const char **p, char *out, size_t cap) {
    const char *s = *p, *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (!n || !s_unescape(s, n, false, out, cap))
        return false;
    *p = s + n;
    return true;
}

static bool s_parse_route(const char *path, s_route *rt) {
    memset(rt, 0, sizeof(*rt));
    const char *p = path;
    if (!s_segment(&p, rt->bucket, sizeof(rt->bucket)))
        return false;
    if (!*p)
        return true;
    if (strcmp(p, "/o") == 0 || strcmp(p, "/o/") == 0) {
        rt->objects = true;
        return true;
    }
    if (strncmp(p, "/o/", 3) != 0)
        return false;
    p += 3;
    rt->objects = rt->has_name = true;
    if (!s_segment(&p, rt->name, sizeof(rt->name)))
        return false;
    if (!*p)
        return true;
    if (strncmp(p, "/rewriteTo/b/", 13) != 0)
        return false;
    p += 13;
    if (!s_segment(&p, rt->dst_bucket, sizeof(rt->dst_bucket)) || strncmp(p, "/o/", 3) != 0)
        return false;
    p += 3;
    rt->rewrite = true;
    return s_segment(&p, rt->dst_name, sizeof(rt->dst_name)) && !*p;
}

static enum MHD_Result s_stats(struct MHD_Connection *c) {
    char body[4096];
    size_t o = (size_t)snprintf(body, sizeof(body), "{\"requests\":{");
    for (int k = 0; k < K_COUNT; k++)
        o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"%s\":%llu", k ? "," : "", s_kind_names[k],
                              (unsigned long long)atomic_load(&s_st.requests[k]));
    snprintf(body + o, sizeof(body) - o,
             "},\"bytes_served\":%llu,\"bytes_received\":%llu,\"uploads_accepted\":%llu,\"uploads_rejected\":%llu,"
             "\"uploads_unchecked\":%llu,\"corrupted_served\":%llu,\"errors\":%llu,\"delayed\":%llu,\"paced\":%llu,"
             "\"suspended_now\":%llu,\"suspended_peak\":%llu,"
             "\"config\":{\"bucket\":\"%s\",\"prefix\":\"%s\",\"objects\":%" PRIu64 ",\"mean_size\":%" PRIu64
             ",\"jitter_pct\":%u,\"delay_ms\":%u,\"corrupt_every\":%" PRIu64 ",\"rate_per_conn\":%" PRIu64
             ",\"threads\":%u}}",
             (unsigned long long)atomic_load(&s_st.bytes_served), (unsigned long long)atomic_load(&s_st.bytes_received),
             (unsigned long long)atomic_load(&s_st.uploads_accepted),
             (unsigned long long)atomic_load(&s_st.uploads_rejected),
             (unsigned long long)atomic_load(&s_st.uploads_unchecked),
             (unsigned long long)atomic_load(&s_st.corrupted_served), (unsigned long long)atomic_load(&s_st.errors),
             (unsigned long long)atomic_load(&s_st.delayed), (unsigned long long)atomic_load(&s_st.paced),
             (unsigned long long)atomic_load(&s_st.suspended_now),
             (unsigned long long)atomic_load(&s_st.suspended_peak), s_cfg.bucket, s_cfg.prefix, s_cfg.objects,
             s_cfg.mean_size, s_cfg.jitter_pct, s_cfg.delay_ms, s_cfg.corrupt_every, s_cfg.rate_per_conn,
             s_cfg.threads);
    return s_json(c, 200, body);
}

static void s_stats_reset(void) {
    for (int k = 0; k < K_COUNT; k++)
        atomic_store(&s_st.requests[k], 0);
    atomic_ullong *all[] = {&s_st.bytes_served,     &s_st.bytes_received,    &s_st.uploads_accepted,
                            &s_st.uploads_rejected, &s_st.uploads_unchecked, &s_st.corrupted_served,
                            &s_st.errors,           &s_st.delayed,           &s_st.paced,
                            &s_st.suspended_peak};
    for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++)
        atomic_store(all[k], 0);
}

/* The first call of a request: what it is, and what its body (if any) is to be read as. Errors found here are
 * answered at the end, after the body. */
static void s_begin(struct MHD_Connection *c, s_req *r, const char *url, const char *method) {
    r->state = 0xFFFFFFFFu;
    r->kind = K_OTHER;
    r->mp = MP_SKIP;
    s_route rt;
    if (strncmp(url, "/upload/storage/v1/b/", 21) == 0) {
        if (!s_parse_route(url + 21, &rt) || !rt.objects || rt.has_name) {
            s_reject(r, 404, "no such upload URL: %.200s", url);
            return;
        }
        snprintf(r->bucket, sizeof(r->bucket), "%s", rt.bucket);
        const char *type = s_arg(c, "uploadType");
        const char *id = s_arg(c, "upload_id");
        if (id) {
            r->kind = strcmp(method, "DELETE") == 0 ? K_RESUMABLE_CANCEL : K_RESUMABLE_CHUNK;
            if (r->kind == K_RESUMABLE_CANCEL)
                return;
            pthread_mutex_lock(&s_sessions.lock);
            s_session *s = s_session_find(id);
            bool busy = s && s->busy;
            if (s && !busy) {
                s->busy = true;
                r->sess = s;
                r->state = s->state;
            }
            uint64_t persisted = s ? s->persisted : 0;
            pthread_mutex_unlock(&s_sessions.lock);
            if (!s) {
                s_reject(r, 404, "no such upload session '%.80s'", id);
                return;
            }
            if (busy) {
                s_reject(r, 503, "upload session '%.80s' is busy with another request", id);
                return;
            }
            if (!s_content_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Range"), r)) {
                s_reject(r, 400, "chunk without a valid Content-Range");
                return;
            }
            if (r->has_range && r->first > persisted) {
                s_reject(r, 400, "chunk starts at byte %" PRIu64 " but the session holds %" PRIu64, r->first,
                         persisted);
                return;
            }
            r->skip = r->has_range ? persisted - r->first : 0;
            r->mp = MP_NONE;
            return;
        }
        if (strcmp(method, "POST") != 0) {
            s_reject(r, 405, "%s is not an upload method", method);
            return;
        }
        if (!s_arg_text(c, "name", r->name, sizeof(r->name))) {
            s_reject(r, 400, "the name argument is malformed or too long");
            return;
        }
        if (strcmp(rt.bucket, s_cfg.bucket) == 0) {
            s_reject(r, 403, "gs://%s is synthetic and read-only: upload to any other bucket name", s_cfg.bucket);
            return;
        }
        const char *ifgen = s_arg(c, "ifGenerationMatch");
        bool precondition_fails = ifgen && strcmp(ifgen, "0") != 0; /* a sink holds no object */
        if (type && strcmp(type, "multipart") == 0) {
            r->kind = K_UPLOAD_MULTIPART;
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
            const char *b = ct ? strstr(ct, "boundary=") : NULL;
            if (!b) {
                s_reject(r, 400, "multipart upload without a boundary in its Content-Type");
                return;
            }
            b += 9;
            size_t n = *b == '"' ? strcspn(++b, "\"") : strcspn(b, "; ");
            if (!n || n > 70) {
                s_reject(r, 400, "multipart boundary of %zu bytes", n);
                return;
            }
            memcpy(r->boundary, b, n);
            r->boundary[n] = '\0';
            r->blen = n;
            r->mp = MP_HEAD;
        } else if (type && strcmp(type, "media") == 0) {
            r->kind = K_UPLOAD_MEDIA;
            r->mp = MP_NONE;
            r->has_expect =
                s_hash_header_crc(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Goog-Hash"), &r->expect);
        } else if (type && strcmp(type, "resumable") == 0) {
            r->kind = K_RESUMABLE_START;
            r->mp = MP_HEAD; /* reused to collect the JSON metadata (no boundary) */
            r->blen = 0;
        } else {
            s_reject(r, 400, "uploadType '%.40s' is not supported", type ? type : "(none)");
            return;
        }
        if (precondition_fails)
            s_reject(r, 412, "gs://%s/%s: ifGenerationMatch=%.30s failed: the sink holds no object", r->bucket, r->name,
                     ifgen);
        return;
    }
    if (strcmp(url, "/_stats") == 0) {
        r->kind = K_STATS;
        return;
    }
    if (strcmp(url, "/_stats/reset") == 0 && strcmp(method, "POST") == 0) {
        r->kind = K_STATS;
        s_stats_reset();
        return;
    }
    if (strncmp(url, "/storage/v1/b/", 14) != 0 || !s_parse_route(url + 14, &rt)) {
        s_reject(r, 404, "no such URL: %.200s", url);
        return;
    }
    snprintf(r->bucket, sizeof(r->bucket), "%s", rt.bucket);
    if (rt.rewrite)
        r->kind = K_REWRITE;
    else if (!rt.objects)
        r->kind = K_BUCKET;
    else if (!rt.has_name)
        r->kind = K_LIST;
    else if (strcmp(method, "PATCH") == 0)
        r->kind = K_PATCH;
    else if (strcmp(method, "DELETE") == 0)
        r->kind = K_DELETE;
    else {
        const char *alt = s_arg(c, "alt");
        r->kind = alt && strcmp(alt, "media") == 0 ? K_MEDIA : K_META;
    }
}

/* The synthetic object named by the request, or -1 after answering 404. */
static int64_t s_object(struct MHD_Connection *c, const char *bucket, const char *name, enum MHD_Result *rc) {
    int64_t i = strcmp(bucket, s_cfg.bucket) == 0 ? s_lookup(name) : -1;
    const char *gen = s_arg(c, "generation");
    if (i < 0 && strcmp(bucket, s_cfg.bucket) != 0)
        *rc = s_error(c, 404, "notFound", "No such object: %s/%s (a sink holds no object)", bucket, name);
    else if (i < 0)
        *rc = s_error(c, 404, "notFound", "No such object: %s/%s", bucket, name);
    else if (gen && strtoll(gen, NULL, 10) != S_GEN_BASE + i)
        *rc = s_error(c, 404, "notFound", "No such object: %s/%s#%s", bucket, name, gen);
    else
        return i;
    return -1;
}

static enum MHD_Result s_answer(struct MHD_Connection *c, s_req *r, const char *url, const char *method) {
    char body[S_JSON_CAP + 512];
    enum MHD_Result rc = MHD_NO;
    if (r->sess)
        return s_chunk_end(c, r);
    if (r->status)
        return s_error(c, (unsigned)r->status, r->status == 404 ? "notFound" : "invalid", "%s", r->why);
    s_route rt;
    switch (r->kind) {
    case K_STATS:
        return s_stats(c);
    case K_BUCKET: {
        char qb[600];
        if (!s_json_quote(r->bucket, qb, sizeof(qb)))
            return s_error(c, 400, "invalid", "bucket name too long");
        snprintf(body, sizeof(body),
                 "{\"kind\":\"storage#bucket\",\"id\":%s,\"name\":%s,\"location\":\"US\","
                 "\"storageClass\":\"STANDARD\",\"metageneration\":\"1\",\"timeCreated\":\"%s\",\"updated\":\"%s\"}",
                 qb, qb, S_UPDATED, S_UPDATED);
        return s_json(c, 200, body);
    }
    case K_LIST:
        return s_list(c, r->bucket);
    case K_META:
    case K_MEDIA: {
        s_parse_route(url + 14, &rt);
        int64_t i = s_object(c, rt.bucket, rt.name, &rc);
        if (i < 0)
            return rc;
        if (r->kind == K_MEDIA)
            return s_media(c, (uint64_t)i);
        s_synthetic_resource((uint64_t)i, body, sizeof(body));
        return s_json(c, 200, body);
    }
    case K_REWRITE: {
        s_parse_route(url + 14, &rt);
        if (strcmp(rt.dst_bucket, s_cfg.bucket) == 0)
            return s_error(c, 403, "forbidden", "gs://%s is synthetic and read-only", s_cfg.bucket);
        const char *sg = s_arg(c, "sourceGeneration");
        int64_t i = strcmp(rt.bucket, s_cfg.bucket) == 0 ? s_lookup(rt.name) : -1;
        if (i < 0 || (sg && strtoll(sg, NULL, 10) != S_GEN_BASE + i))
            return s_error(c, 404, "notFound", "No such object: %s/%s", rt.bucket, rt.name);
        const char *ifgen = s_arg(c, "ifGenerationMatch");
        if (ifgen && strcmp(ifgen, "0") != 0)
            return s_error(c, 412, "conditionNotMet", "gs://%s/%s: the sink holds no object", rt.dst_bucket,
                           rt.dst_name);
        uint64_t size = s_size((uint64_t)i);
        char res[S_JSON_CAP];
        s_resource(res, sizeof(res), rt.dst_bucket, rt.dst_name, size, s_object_crc((uint64_t)i, size),
                   atomic_fetch_add(&s_next_gen, 1), 1);
        snprintf(body, sizeof(body),
                 "{\"kind\":\"storage#rewriteResponse\",\"totalBytesRewritten\":\"%" PRIu64
                 "\",\"objectSize\":\"%" PRIu64 "\",\"done\":true,\"resource\":%s}",
                 size, size, res);
        s_count(&s_st.uploads_accepted, 1);
        return s_json(c, 200, body);
    }
    case K_PATCH:
    case K_DELETE: {
        s_parse_route(url + 14, &rt);
        if (strcmp(rt.bucket, s_cfg.bucket) == 0)
            return s_error(c, 403, "forbidden", "gs://%s is synthetic and read-only", s_cfg.bucket);
        if (r->kind == K_DELETE)
            return s_error(c, 404, "notFound", "No such object: %s/%s (a sink holds no object)", rt.bucket, rt.name);
        /* The metadata patch sluice makes right after an upload: the object is gone already, but the patch is
         * answered as if it were there, for the generation it names. */
        const char *g = s_arg(c, "ifGenerationMatch");
        snprintf(body, sizeof(body), "{\"kind\":\"storage#object\",\"generation\":\"%lld\",\"metageneration\":\"2\"}",
                 g ? strtoll(g, NULL, 10) : 1LL);
        return s_json(c, 200, body);
    }
    case K_UPLOAD_MULTIPART:
        if (!s_mp_end(r))
            return s_error(c, (unsigned)r->status, "invalid", "%s", r->why);
        if (!r->name[0])
            return s_error(c, 400, "required", "upload without an object name");
        return s_upload_done(c, r, r->state, r->bytes, r->has_expect, r->expect, 0);
    case K_UPLOAD_MEDIA:
        if (!r->name[0])
            return s_error(c, 400, "required", "upload without an object name");
        return s_upload_done(c, r, r->state, r->bytes, r->has_expect, r->expect, 0);
    case K_RESUMABLE_START: {
        if (r->head_len) {
            json_t *meta = json_loadb(r->head, r->head_len, 0, NULL);
            const char *crc = json_string_value(json_object_get(meta, "crc32c"));
            const char *name = json_string_value(json_object_get(meta, "name"));
            if (name && !r->name[0] && strlen(name) <= S_NAME_CAP)
                snprintf(r->name, sizeof(r->name), "%s", name);
            r->has_expect = crc && s_crc_unb64(crc, strlen(crc), &r->expect);
            json_decref(meta);
        }
        if (!r->name[0])
            return s_error(c, 400, "required", "upload without an object name");
        return s_resumable_start(c, r);
    }
    case K_RESUMABLE_CANCEL: {
        pthread_mutex_lock(&s_sessions.lock);
        s_session *s = s_session_find(s_arg(c, "upload_id"));
        if (s && !s->busy)
            s->used = false;
        pthread_mutex_unlock(&s_sessions.lock);
        if (!s)
            return s_error(c, 404, "notFound", "no such upload session");
        return s_send(c, 499, "", 0, NULL);
    }
    default:
        (void)method;
        return s_error(c, 404, "notFound", "no such URL: %.200s", url);
    }
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                const char *version, const char *data, size_t *data_size, void **con_cls) {
    (void)cls;
    (void)version;
    s_req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof(*r))))
            return MHD_NO;
        *con_cls = r;
        s_begin(c, r, url, method);
        s_count(&s_st.requests[r->kind], 1);
        if (s_cfg.verbose)
            fprintf(stderr, "sl-synthbucket: %s %s (%s)\n", method, url, s_kind_names[r->kind]);
        return MHD_YES;
    }
    if (*data_size) {
        if (r->kind == K_RESUMABLE_START) {
            /* its JSON metadata: kept whole (bounded) */
            size_t take = *data_size;
            if (r->head_len + take > S_HEAD_CAP)
                s_reject(r, 400, "resumable upload metadata longer than %d bytes", S_HEAD_CAP);
            else if (!r->head && !(r->head = malloc(S_HEAD_CAP)))
                s_reject(r, 503, "out of memory");
            else {
                memcpy(r->head + r->head_len, data, take);
                r->head_len += take;
            }
        } else if (r->kind == K_UPLOAD_MULTIPART || r->kind == K_UPLOAD_MEDIA || r->kind == K_RESUMABLE_CHUNK) {
            s_upload_chunk(r, data, *data_size);
        }
        *data_size = 0;
        return MHD_YES;
    }
    if (s_cfg.delay_ms && !r->delayed && r->kind != K_STATS) {
        /* Delayed at the end of the request (its body read), not at its first call: a connection suspended there
         * is closed after its answer (libmicrohttpd 0.9.75 answers it with "Connection: close"), and keep-alive is
         * what a client's connection reuse is measured with. */
        r->delayed = true;
        if (s_suspend_until(c, s_now_ns() + (int64_t)s_cfg.delay_ms * 1000000LL)) {
            s_count(&s_st.delayed, 1);
            return MHD_YES;
        }
    }
    return s_answer(c, r, url, method);
}

static void s_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)cls;
    (void)c;
    (void)why;
    s_req *r = *con_cls;
    if (!r)
        return;
    if (r->sess)
        s_release(r->sess); /* the client went away mid-chunk: the session keeps what it had */
    free(r->head);
    free(r);
    *con_cls = NULL;
}

/* Query arguments reach the handler as they were sent: s_unescape decodes what is used, so an escaped '/' or '&'
 * in a name stays a part of it. */
static size_t s_no_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    return strlen(s);
}

/* ---- main ---- */

static void s_usage(FILE *f) {
    fprintf(
        f,
        "usage: sl-synthbucket [options]\n"
        "A synthetic GCS bucket (JSON API) on 127.0.0.1 for benchmarks and tests. Objects' names, sizes and bytes\n"
        "are pure functions of their index; every other bucket name is an empty sink that checks and drops uploads.\n"
        "  --bucket NAME          the synthetic bucket (default synth)\n"
        "  --prefix P             object i is P + i in 10 digits (default obj/)\n"
        "  --objects N            number of objects (default 1000)\n"
        "  --size BYTES           mean object size; K, M, G suffixes are KiB, MiB, GiB (default 4096)\n"
        "  --jitter PCT           sizes are uniform within +-PCT %% of the mean (default 50; 0: all equal)\n"
        "  --delay-ms D           answer every API request D ms late, without holding a thread (default 0)\n"
        "  --rate-per-conn BYTES  pace each media body to BYTES per second (K, M, G suffixes; default 0: none)\n"
        "  --corrupt-every K      serve every K-th object (index K-1, 2K-1, ...) with one byte flipped, while\n"
        "                         its listed and x-goog-hash CRC32C stay those of its true bytes (default 0: none)\n"
        "  --threads T            server threads (default 1)\n"
        "  --max-connections C    connections at once (default 4096)\n"
        "  --max-sessions S       resumable upload sessions kept (default 1024; the oldest gives way)\n"
        "  --host H               127.0.0.1 or localhost only\n"
        "  --port P               TCP port (default 0: a free one)\n"
        "  --port-file F          write the port there (atomically) once listening\n"
        "  --parent-pid PID       exit when process PID is gone\n"
        "  --verbose              log every request on stderr\n"
        "Prints \"port N\" on stdout once listening. GET /_stats: counters; POST /_stats/reset zeroes them.\n"
        "Stops on SIGINT or SIGTERM.\n");
}

static bool s_parse_u64(const char *s, bool suffix, uint64_t *out) {
    char *e;
    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e == s)
        return false;
    uint64_t mul = 1;
    if (suffix && *e) {
        mul = *e == 'K' || *e == 'k' ? 1ull << 10 : *e == 'M' ? 1ull << 20 : *e == 'G' ? 1ull << 30 : 0;
        if (!mul)
            return false;
        e++;
    }
    if (*e || (v && mul > UINT64_MAX / v))
        return false;
    *out = v * mul;
    return true;
}

static int s_write_port_file(const char *path, unsigned port) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *port_file = NULL, *host = "127.0.0.1";
    uint64_t port = 0, parent = 0;
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        uint64_t n = 0;
        bool ok = true, takes = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--verbose") == 0) {
            s_cfg.verbose = true;
            takes = false;
        } else if (!v) {
            fprintf(stderr, "sl-synthbucket: %s needs a value (see --help)\n", a);
            return 2;
        } else if (strcmp(a, "--bucket") == 0) {
            ok = *v && strlen(v) < sizeof(s_cfg.bucket) && !strpbrk(v, "/\"\\%");
            if (ok)
                memcpy(s_cfg.bucket, v, strlen(v) + 1);
        } else if (strcmp(a, "--prefix") == 0) {
            ok = strlen(v) < 200;
            for (const char *p = v; ok && *p; p++)
                ok = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
            snprintf(s_cfg.prefix, sizeof(s_cfg.prefix), "%s", v);
        } else if (strcmp(a, "--objects") == 0) {
            ok = s_parse_u64(v, false, &s_cfg.objects) && s_cfg.objects <= 9999999999ull;
        } else if (strcmp(a, "--size") == 0) {
            ok = s_parse_u64(v, true, &s_cfg.mean_size) && s_cfg.mean_size <= (1ull << 40);
        } else if (strcmp(a, "--jitter") == 0) {
            ok = s_parse_u64(v, false, &n) && n <= 100;
            s_cfg.jitter_pct = (unsigned)n;
        } else if (strcmp(a, "--delay-ms") == 0) {
            ok = s_parse_u64(v, false, &n) && n <= 600000;
            s_cfg.delay_ms = (unsigned)n;
        } else if (strcmp(a, "--rate-per-conn") == 0) {
            ok = s_parse_u64(v, true, &s_cfg.rate_per_conn);
        } else if (strcmp(a, "--corrupt-every") == 0) {
            ok = s_parse_u64(v, false, &s_cfg.corrupt_every);
        } else if (strcmp(a, "--threads") == 0) {
            ok = s_parse_u64(v, false, &n) && n >= 1 && n <= 256;
            s_cfg.threads = (unsigned)n;
        } else if (strcmp(a, "--max-connections") == 0) {
            ok = s_parse_u64(v, false, &n) && n >= 1 && n <= 1000000;
            s_cfg.max_connections = (unsigned)n;
        } else if (strcmp(a, "--max-sessions") == 0) {
            ok = s_parse_u64(v, false, &n) && n >= 1 && n <= 1000000;
            s_cfg.max_sessions = (unsigned)n;
        } else if (strcmp(a, "--host") == 0) {
            host = v;
            if (strcmp(v, "127.0.0.1") != 0 && strcmp(v, "localhost") != 0) {
                fprintf(stderr, "sl-synthbucket: refusing to listen on '%s': only 127.0.0.1 (loopback) is served\n", v);
                return 2;
            }
        } else if (strcmp(a, "--port") == 0) {
            ok = s_parse_u64(v, false, &port) && port <= 65535;
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--parent-pid") == 0) {
            ok = s_parse_u64(v, false, &parent) && parent > 0 && parent < INT32_MAX;
        } else {
            fprintf(stderr, "sl-synthbucket: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "sl-synthbucket: %s: invalid value '%s' (see --help)\n", a, v);
            return 2;
        }
        if (takes)
            k++;
    }
    (void)host;
    s_cfg.prefix_len = strlen(s_cfg.prefix);
    if (s_init_data() < 0) {
        fprintf(stderr, "sl-synthbucket: out of memory\n");
        return 1;
    }
    s_timer.cap = (size_t)s_cfg.max_connections + 64;
    s_timer.heap = calloc(s_timer.cap, sizeof(*s_timer.heap));
    s_sessions.slots = calloc(s_cfg.max_sessions, sizeof(*s_sessions.slots));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s_timer.cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!s_timer.heap || !s_sessions.slots) {
        fprintf(stderr, "sl-synthbucket: out of memory\n");
        return 1;
    }

    /* Signals are taken by the main thread alone (sigtimedwait below). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_t timer;
    if (pthread_create(&timer, NULL, s_timer_main, NULL) != 0) {
        fprintf(stderr, "sl-synthbucket: cannot start the timer thread\n");
        return 1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* poll(), not epoll: with epoll (0.9.75, turbo or not), some of 256 connections opened at once and delayed
     * through suspend/resume were never answered, now and then; with poll none was in any run. libmicrohttpd's own
     * messages (a client that went away mid-answer, ...) only with --verbose. */
    unsigned flags = MHD_USE_POLL | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     (s_cfg.verbose ? MHD_USE_ERROR_LOG : 0);
    struct MHD_OptionItem pool[] = {{MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)s_cfg.threads, NULL},
                                    {MHD_OPTION_END, 0, NULL}};
    if (s_cfg.threads < 2)
        pool[0].option = MHD_OPTION_END; /* one thread: no pool */
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, s_handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_ARRAY, pool,
        MHD_OPTION_CONNECTION_LIMIT, s_cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_NOTIFY_COMPLETED, s_completed, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, s_no_unescape, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "sl-synthbucket: cannot listen on 127.0.0.1:%u (%s)\n", (unsigned)port, strerror(errno));
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    s_cfg.port = info ? info->port : (uint16_t)port;
    if (port_file && s_write_port_file(port_file, s_cfg.port) < 0) {
        fprintf(stderr, "sl-synthbucket: cannot write the port file %s: %s\n", port_file, strerror(errno));
        MHD_stop_daemon(d);
        return 1;
    }
    printf("port %u\n", (unsigned)s_cfg.port);
    fflush(stdout);

    for (;;) {
        struct timespec one = {.tv_sec = 1};
        int sig = sigtimedwait(&sigs, NULL, &one);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (parent && kill((pid_t)parent, 0) != 0 && errno == ESRCH)
            break;
    }
    /* Every suspended connection must be resumed before the daemon stops. */
    MHD_quiesce_daemon(d);
    pthread_mutex_lock(&s_timer.lock);
    s_timer.stopping = true;
    pthread_cond_signal(&s_timer.cond);
    pthread_mutex_unlock(&s_timer.lock);
    pthread_join(timer, NULL);
    MHD_stop_daemon(d);
    free(s_timer.heap);
    free(s_sessions.slots);
    free(s_pool);
    return 0;
}
