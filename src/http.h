/* HTTP over libcurl, one client per thread.
 *
 * An sl__http owns one curl easy handle inside one curl multi handle, created once (at worker thread start, through
 * sl_client_new) and reused for every request until the thread exits: connections stay open between requests
 * (keep-alive) and TLS sessions are resumed. An sl__http is never shared between threads.
 *
 * Requests are single attempts: callers decide what to retry (sl__retry_*), because what "retry" means differs per
 * request (resume a download at an offset, query an upload session, refresh a token). */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl__http sl__http;

/* What the requests to one server say about it, shared by every sl__http given it (any thread): whether it answers.
 * A store holds one per server and a job watches it (sl_job_run), so that a server that no longer answers at all
 * stops the job after the retry deadline instead of failing object after object.
 *
 * An answer is any HTTP status line, or body bytes arriving. A request "got no answer" when its transfer failed
 * before any status line: connection refused, reset, timed out, closed before the headers. A server answering 503 is
 * answering: its requests fail by the per-request retry rules alone. */
typedef struct sl__http_health {
    /* CLOCK_MONOTONIC ms (sl__now_ms) of the first request that got no answer since the last answer anywhere; 0
     * while the server answers. */
    _Atomic int64_t failing_since_ms;
    /* Set while a job watches this record and will stop once the server has been unreachable for deadline_ms: until
     * then, retries that have used up their own budget keep waiting for the server (sl__http_health_holding). */
    atomic_bool watched;
    unsigned deadline_ms; /* how long "unreachable" lasts before a watching job gives up (the retry deadline) */
    pthread_mutex_t lock;
    char last_error[512]; /* the last no-answer failure (under lock), for the job's message */
} sl__http_health;

/* deadline_ms 0 = 120000. */
void sl__http_health_init(sl__http_health *hh, unsigned deadline_ms);
/* NULL ok. */
void sl__http_health_destroy(sl__http_health *hh);
/* How long (ms) the server has got no answer to any request, 0 while it answers; `why` (NULL ok) receives the last
 * failure's message. */
int64_t sl__http_health_unreachable_ms(sl__http_health *hh, char *why, size_t cap);
/* True while a watching job should decide rather than one request: the record is watched and the server is failing.
 * A request whose retries ran out then waits and tries again; the job ends the wait (sl__http_aborted) when it gives
 * up, or an answer ends the outage. NULL: false. */
bool sl__http_health_holding(sl__http_health *hh);
/* Records that a request on hh's behalf got no HTTP answer (`message`: why, for the job's message), as the requests of
 * an sl__http bound to it do by themselves: for what a store's requests depend on elsewhere (the token endpoint).
 * NULL hh: nothing. */
void sl__http_health_no_answer(sl__http_health *hh, const char *message);

typedef struct sl__http_options {
    long connect_timeout_ms; /* 0 = 10000 */
    long stall_timeout_s;    /* abort a transfer that moves no byte for this long; 0 = 60 */
    sl__http_health *health; /* NULL: none; else must outlive the sl__http */
    /* The handle belongs to the thread that makes it, which uses it and destroys it (a store client): it shares one
     * libcurl multi handle, and so one connection cache, with every other such handle of that thread instead of
     * having its own (a multi handle costs ~40 KiB: at -j 256, 10 MiB a store). Handles used from several threads
     * (the token fetcher's, under a lock) leave it false. */
    bool thread_owned;
} sl__http_options;

/* opts may be NULL. Returns NULL on allocation failure (sl_last_error set). */
sl__http *sl__http_new(const sl__http_options *opts);
/* NULL ok. */
void sl__http_destroy(sl__http *h);

/* Response headers sluice cares about; all NUL-terminated, "" when absent. Values longer than the field are
 * truncated. */
typedef struct sl__http_response {
    long status;             /* HTTP status, 0 if no response arrived */
    char location[2048];     /* Location (resumable upload session URI) */
    char range[128];         /* Range (308 answers to uploads: "bytes=0-N") */
    char content_range[128]; /* Content-Range */
    char goog_hash[256];     /* all x-goog-hash values joined with ',' ("crc32c=..,md5=..") */
    char goog_generation[32];
    char content_type[128];
    char content_encoding[64]; /* Content-Encoding of this answer's body ("gzip": the bytes are compressed) */
    char stored_encoding[32];  /* x-goog-stored-content-encoding: how the object is stored ("gzip", "identity") */
    int64_t content_length;    /* -1 if absent */
    int64_t stored_length;     /* x-goog-stored-content-length: the object's stored size; -1 if absent */
    /* S3 (s3://) */
    char etag[131];             /* ETag, as sent (quotes included; S3 allows 128 characters in them) */
    char last_modified[64];     /* Last-Modified (an HTTP date) */
    char amz_crc32c[64];        /* x-amz-checksum-crc32c ("<base64>" or, for a composite checksum, "<base64>-N") */
    char amz_bucket_region[64]; /* x-amz-bucket-region */
    char amz_sse[48];           /* x-amz-server-side-encryption ("AES256", "aws:kms", ...) */
    char amz_sse_customer[48];  /* x-amz-server-side-encryption-customer-algorithm (SSE-C) */
    char amz_meta_source[512];  /* x-amz-meta-sluice-source */
    /* Collected body (when the request has no write_fn): owned by the sl__http, valid until its next request.
     * NUL-terminated for convenience. */
    char *body;
    size_t body_len;
} sl__http_response;

/* Body sink for streaming-free requests: return len to continue, anything else aborts the transfer. */
typedef size_t (*sl__http_write_fn)(void *user_data, const void *data, size_t len);

typedef struct sl__http_request {
    const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;            /* complete, already percent-encoded */
    const char *const *headers; /* NULL-terminated "Name: value" strings, or NULL */
    /* Request body or NULL, sent with Content-Length: body_len by every method but GET (and DELETE without one, even
     * empty), with the Content-Type the headers give, and with no Content-Type at all when they give none (never
     * libcurl's default application/x-www-form-urlencoded, which GCS refuses). */
    const void *body;
    size_t body_len;
    sl__http_write_fn write_fn; /* NULL: collect the body into response->body, at most body_cap bytes */
    void *write_ud;
    size_t body_cap; /* 0 = 1 MiB; a longer collected body fails the request with SL_ETOOBIG */
    /* A request aside from the work of the object it is made for: a cleanup after a failure (cancelling an upload
     * session, deleting what a failed upload made) or a lookup between attempts (did an attempt land?). Its answer is
     * not recorded in the tally (sl__http_tally), whose status stays the one of the object's own requests. */
    bool aside;
} sl__http_request;

/* Performs one attempt. Returns 0 when an HTTP response arrived (whatever its status: check response->status),
 * SL_EIO for a transport failure (connection refused/reset, timeout, broken body) with sl_last_error() naming the
 * URL's host and curl's reason, SL_EACCES when the server's TLS certificate does not verify (not worth a retry),
 * SL_ETOOBIG / SL_ECANCELED as documented. */
int sl__http_perform(sl__http *h, const sl__http_request *req, sl__http_response *resp);

/* Streaming (pull) download: starts the request and returns once the status and headers are known (body not yet
 * read). Then sl__http_stream_read pulls body bytes into the caller's buffer; sl__http_stream_close ends the
 * transfer (dropping the connection if the body was not read to the end). Only one stream per sl__http at a time,
 * and no sl__http_perform while it is open. */
int sl__http_stream_open(sl__http *h, const sl__http_request *req, sl__http_response *resp);
/* Returns bytes (>0), 0 at the end of the body, SL_EIO when the transfer broke (sl_last_error says how). */
int64_t sl__http_stream_read(sl__http *h, void *buf, size_t cap);
/* NULL-safe on an sl__http with no open stream. */
void sl__http_stream_close(sl__http *h);

/* Number of new connections this sl__http has opened so far (CURLINFO_NUM_CONNECTS summed). For tests and stats. */
uint64_t sl__http_connections(const sl__http *h);

/* Aborting a job's requests. A job binds its abort flag to each of its threads (NULL unbinds); while the flag is
 * set, every request made on that thread fails within a fraction of a second with SL_ECANCELED, and retry waits end
 * early (sl__http_aborted). The flag must outlive the binding. */
void sl__http_bind_abort(const atomic_bool *flag);
/* The same for a flag the library's user owns (sl_thread_bind_abort), typically set by a signal handler. Both
 * bindings may be in place; either flag abandons the thread's requests. */
void sl__http_bind_user_abort(const volatile sig_atomic_t *flag);
/* True if the calling thread's bound abort flag (or user abort flag) is set. */
bool sl__http_aborted(void);

/* What the requests of the calling thread went through since the last sl__http_tally_reset, for the failure log:
 * the number of retries stores made (they call sl__http_note_retry before each one) and the HTTP status of the
 * last response (0 if no response arrived), requests aside (sl__http_request.aside) left out: after a failure, the
 * status that failed it. Thread-local: a worker resets it before each object. */
typedef struct sl__http_tally {
    unsigned retries;
    long last_status;
    bool any_response; /* false: no HTTP response arrived since the reset */
} sl__http_tally;
void sl__http_tally_reset(void);
void sl__http_note_retry(void);
void sl__http_tally_get(sl__http_tally *out);
/* Puts back the status of a tally taken with sl__http_tally_get, keeping the retries counted since: after a lookup
 * made through an API that cannot mark its request aside. */
void sl__http_tally_restore(const sl__http_tally *saved);

/* Percent-encodes s for a URL path segment or query value (RFC 3986 unreserved kept: A-Z a-z 0-9 - . _ ~; every
 * other byte, '/' included, as %XX). Same return convention as snprintf. */
size_t sl__url_escape(char *buf, size_t cap, const char *s, size_t len);

/* Retry policy: exponential backoff with full jitter, bounded by a deadline. */
typedef struct sl__retry_policy {
    unsigned max_attempts;     /* total attempts including the first; 0 = 6 */
    unsigned initial_delay_ms; /* 0 = 100 */
    unsigned max_delay_ms;     /* 0 = 10000 */
    unsigned deadline_ms;      /* stop retrying once this much time has passed since the first attempt; 0 = 120000 */
} sl__retry_policy;

/* True for statuses worth retrying: 408, 429, 500, 502, 503, 504. */
bool sl__retry_status(long status);
/* Delay before retry number `retry` (1 = the first retry): uniform in [0, min(max, initial * 2^(retry-1))].
 * `rng` is a per-thread xorshift state (any non-zero seed). */
unsigned sl__retry_delay_ms(const sl__retry_policy *p, unsigned retry, uint64_t *rng);
/* Fills zero fields of p with the defaults above. */
void sl__retry_defaults(sl__retry_policy *p);

/* One logical request's retries, as a store counts them (a store's own struct holds one beside what its requests may
 * do once). started_ms is when its count started (sl__now_ms); held_ms when its retries ran out while the server
 * answered nothing (sl__attempts_backoff), 0 before. */
typedef struct sl__attempts {
    unsigned retries;
    int64_t started_ms;
    int64_t held_ms;
} sl__attempts;
/* Waits before the next attempt if `policy` allows one; false when retries are exhausted (or the job aborted). While a
 * job watches a server that answers nothing at all (`health`), running out is not the end: the job judges the outage
 * as a whole (it stops once the server has been unreachable for the retry deadline, which ends this wait), so an
 * outage shorter than that costs no object. A request holds so for one more deadline at most, whatever the server
 * does (one that answers now and then keeps the job going). With retries turned off (--retries 0) nothing waits. The
 * wait is cut in slices, so that an aborted job does not sit out a long backoff, and a request held through an outage
 * goes again as soon as another one got an answer (the server is back). `rng`: the caller's per-thread state. */
bool sl__attempts_backoff(sl__attempts *a, const sl__retry_policy *policy, sl__http_health *health, uint64_t *rng);
/* A download or a resumable upload that broke may have got further before it broke. Counting its retries from its
 * first attempt would fail a big object over a link that breaks every few MiB although every attempt advanced, and a
 * deadline counted from the first byte would refuse any retry to a transfer that simply ran longer than it. So, as
 * gsutil and Google's client libraries do, only attempts without progress count: once the transfer stands `step`
 * bytes or more past `*mark` (where its count last started; `at` is where it stands now), its retries and its
 * deadline start again from here, and this returns true. An attempt that brings fewer bytes is not progress: a server
 * that sends a byte per attempt still exhausts --retries (and --retry-deadline-ms), and a whole transfer makes at
 * most --retries attempts per `step` bytes of the object. */
bool sl__attempts_progressed(sl__attempts *a, uint64_t *mark, uint64_t at, uint64_t step);

#endif
