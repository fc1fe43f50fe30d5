/* Google Cloud credentials and the process-wide access token cache.
 *
 * The source is chosen once, from the environment and files only, so a misconfiguration is reported before any
 * work starts and names the file and the variable at fault. Tokens are fetched lazily: the first thread that needs
 * a fresh one fetches it while holding the cache lock, and the threads queued behind that lock reuse it (or, if the
 * fetch failed, report the same failure instead of each repeating a fetch that just failed).
 *
 * Secrets (access tokens, private keys, refresh tokens, client secrets, signed assertions) live only in buffers this
 * file allocates and wipes before freeing, and never reach an error message: server error text is quoted only when
 * it does not contain anything we sent. */
#include "auth_gcs.h"

#include "clock.h"
#include "fail.h"
#include "http.h"

#include "sluice/sluice.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define S_SCOPE "https://www.googleapis.com/auth/devstorage.full_control"
#define S_METADATA_DEFAULT_HOST "metadata.google.internal"
#define S_METADATA_PATH "/computeMetadata/v1/instance/service-accounts/default/token"
#define S_BEARER "Authorization: Bearer "
#define S_JWT_LIFETIME_S 3600
#define S_MAX_FILE_BYTES ((size_t)64 * 1024)  /* credentials and token files are a few KiB */
#define S_MAX_BODY_BYTES ((size_t)64 * 1024)  /* request bodies we build */
#define S_MAX_ANSWER_BYTES ((size_t)64 * 1024) /* token endpoint answers */
#define S_MAX_MARGIN_MS ((int64_t)300 * 1000)
#define S_DEFAULT_LIFETIME_S 3600

typedef enum s_kind {
    S_ANONYMOUS,
    S_STATIC,          /* an access token from a file or the environment; cannot be refreshed */
    S_SERVICE_ACCOUNT, /* RS256 JWT bearer grant */
    S_AUTHORIZED_USER, /* refresh-token grant */
    S_METADATA,        /* GCE / GKE metadata server */
} s_kind;

struct sl__gcs_auth {
    /* Guarded by s_shared_lock; refs is 0 for an instance that is not shared (anonymous, static tokens). */
    struct sl__gcs_auth *next;
    unsigned refs;
    /* Fixed after sl__gcs_auth_new. */
    s_kind kind;
    char *source;      /* for messages; no secrets */
    char *token_file;  /* S_STATIC from a file: reread after a rejection */
    char *url;         /* token_uri or the metadata URL */
    char *tried;       /* S_METADATA: what was tried before falling back to it, for the "no credentials" message */
    char *metadata_host;
    char *client_email;   /* service account */
    char *private_key_id; /* service account, may be NULL */
    EVP_PKEY *pkey;       /* service account, parsed once */
    char *client_id;      /* authorized_user */
    char *client_secret;  /* authorized_user; secret */
    char *refresh_token;  /* authorized_user; secret */
    atomic_ulong fetches;
    atomic_ulong attempts; /* fetches tried (succeeded or not); read before taking the lock */
    /* The last fetch got no HTTP answer at all from an endpoint that gave a token before (sl__gcs_auth_unreachable). */
    atomic_bool unreachable;
    struct {
        pthread_mutex_t lock;
        sl__http *http;       /* created on the first fetch; used only under the lock */
        char *header;         /* "Authorization: Bearer <token>", or NULL; secret */
        char *rejected;       /* S_STATIC: the header a 401 was reported for; secret */
        int64_t expires_ms;   /* monotonic; S_STATIC: INT64_MAX */
        int64_t margin_ms;    /* refresh this long before expires_ms */
        bool last_failed;     /* the last fetch failed with fail_code / fail_msg */
        bool failed_for_good; /* ... and no fetch ever worked, and not for a passing reason: do not ask again */
        int fail_code;
        char fail_msg[SL__MESSAGE_CAP];
        uint64_t rng;
    } synced;
};

/* Sources that fetch tokens are shared by every store of the process open at the same time (a gs:// source and
 * destination, the parent probed for a single object, ...): one token cache per process, not one per store. */
static pthread_mutex_t s_shared_lock = PTHREAD_MUTEX_INITIALIZER;
static sl__gcs_auth *s_shared;

/* ---- small helpers ---------------------------------------------------------------------------------------------- */

static void s_sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void s_wipe_free(char *s) {
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static void s_wipe_free_n(void *p, size_t len) {
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* Wipes a string that jansson owns, before json_decref frees it. */
static void s_wipe_json_string(json_t *v) {
    if (json_is_string(v))
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

static char *s_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static char *s_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static const char *s_getenv(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Reads a whole small file. Returns 0 or an errno value (EFBIG past max_bytes). *out is NUL-terminated; the caller
 * wipes and frees it. */
static int s_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len) {
    int err = 0;
    char *data = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err = errno;
        goto on_error;
    }
    if (S_ISDIR(st.st_mode)) {
        err = EISDIR;
        goto on_error;
    }
    data = malloc(max_bytes + 1);
    if (!data) {
        err = ENOMEM;
        goto on_error;
    }
    for (;;) {
        ssize_t n = read(fd, data + len, max_bytes + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            goto on_error;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max_bytes) {
            err = EFBIG;
            goto on_error;
        }
    }
    close(fd);
    data[len] = '\0';
    *out = data;
    *out_len = len;
    return 0;

on_error:
    s_wipe_free_n(data, len);
    close(fd);
    return err;
}

static bool s_token_char(unsigned char c) {
    return c > 0x20 && c < 0x7f;
}

/* True if s (len bytes) can go into a header after "Bearer ": visible ASCII only. */
static bool s_token_ok(const char *s, size_t len) {
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_token_char((unsigned char)s[i]))
            return false;
    return true;
}

/* Trims surrounding whitespace in place; returns the start, *len the trimmed length. */
static char *s_trim(char *s, size_t *len) {
    size_t n = *len;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    s[n] = '\0';
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        n--;
    }
    *len = n;
    return s;
}

static char *s_make_header(const char *token, size_t len) {
    size_t plen = strlen(S_BEARER);
    char *h = malloc(plen + len + 1);
    if (!h)
        return NULL;
    memcpy(h, S_BEARER, plen);
    memcpy(h + plen, token, len);
    h[plen + len] = '\0';
    return h;
}

/* A growable string with a hard cap, wiped when freed (it carries secrets). */
typedef struct s_sbuf {
    char *data;
    size_t len, cap;
    bool failed;
} s_sbuf;

static void s_sbuf_add(s_sbuf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    if (b->len + n + 1 > S_MAX_BODY_BYTES) {
        b->failed = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = malloc(cap);
        if (!d) {
            b->failed = true;
            return;
        }
        if (b->data)
            memcpy(d, b->data, b->len);
        s_wipe_free_n(b->data, b->cap);
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void s_sbuf_str(s_sbuf *b, const char *s) {
    s_sbuf_add(b, s, strlen(s));
}

static void s_sbuf_escaped(s_sbuf *b, const char *s) {
    size_t len = strlen(s);
    size_t cap = len * 3 + 1;
    char *tmp = malloc(cap);
    if (!tmp) {
        b->failed = true;
        return;
    }
    size_t n = sl__url_escape(tmp, cap, s, len);
    s_sbuf_add(b, tmp, n);
    s_wipe_free_n(tmp, cap);
}

static void s_sbuf_wipe(s_sbuf *b) {
    s_wipe_free_n(b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* base64url without padding (RFC 7515 section 2). */
static void s_sbuf_b64url(s_sbuf *b, const unsigned char *p, size_t n) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char quad[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        quad[0] = alphabet[v >> 18 & 63];
        quad[1] = alphabet[v >> 12 & 63];
        quad[2] = alphabet[v >> 6 & 63];
        quad[3] = alphabet[v & 63];
        s_sbuf_add(b, quad, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        quad[0] = alphabet[v >> 18 & 63];
        quad[1] = alphabet[v >> 12 & 63];
        s_sbuf_add(b, quad, 2);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        quad[0] = alphabet[v >> 18 & 63];
        quad[1] = alphabet[v >> 12 & 63];
        quad[2] = alphabet[v >> 6 & 63];
        s_sbuf_add(b, quad, 3);
    }
}

/* ---- choosing the source ---------------------------------------------------------------------------------------- */

/* Never prompts for a passphrase: an encrypted key is not a service account key file. */
static int s_no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static EVP_PKEY *s_parse_pem(const char *pem) {
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return NULL;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, s_no_passphrase, NULL);
    BIO_free(bio);
    if (pkey && EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    /* The failure reasons OpenSSL queued are ours to drop; the message below says what went wrong. */
    ERR_clear_error();
    return pkey;
}

/* A required string field of a credentials file, copied. Returns 0 or fails naming the field. */
static int s_field(json_t *root, const char *name, const char *label, const char *what, char **out) {
    json_t *v = json_object_get(root, name);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return sl__fail(SL_EINVAL, "%s: %s lacks \"%s\"", label, what, name);
    *out = s_strdup(json_string_value(v));
    if (!*out)
        return sl__fail(SL_ENOMEM, "%s: out of memory", label);
    return 0;
}

static int s_token_uri(sl__gcs_auth *auth, json_t *root, const char *label) {
    json_t *v = json_object_get(root, "token_uri");
    const char *uri = json_is_string(v) && json_string_length(v) ? json_string_value(v) : S_DEFAULT_TOKEN_URI;
    if (strncmp(uri, "https://", 8) != 0 && strncmp(uri, "http://", 7) != 0)
        return sl__fail(SL_EINVAL, "%s: token_uri '%.200s' is not an http(s) URL", label, uri);
    auth->url = s_strdup(uri);
    return auth->url ? 0 : sl__fail(SL_ENOMEM, "%s: out of memory", label);
}

/* Loads a service_account or authorized_user JSON file. `var` is the variable that named it (for messages): either
 * "GOOGLE_APPLICATION_CREDENTIALS" or NULL for gcloud's application default credentials file. */
static int s_load_credentials(sl__gcs_auth *auth, const char *path, const char *var) {
    int rc = 0;
    char *data = NULL;
    size_t len = 0;
    json_t *root = NULL;
    char label[1200];
    if (var)
        snprintf(label, sizeof(label), "%s=%s", var, path);
    else
        snprintf(label, sizeof(label), "%s (gcloud application default credentials)", path);
    const char *via = var ? var : "gcloud application default credentials";

    int err = s_read_file(path, S_MAX_FILE_BYTES, &data, &len);
    if (err == EFBIG) {
        rc = sl__fail(SL_EINVAL, "%s: not a JSON credentials file (larger than %zu bytes)", label, S_MAX_FILE_BYTES);
        goto on_error;
    }
    if (err) {
        char ebuf[128];
        const char *reason = strerror_r(err, ebuf, sizeof(ebuf));
        rc = sl__fail(sl__errno_to_sl(err), "%s: cannot read: %s (%s)", label, reason,
                      var ? "point it at a service account key or authorized_user file"
                          : "run 'gcloud auth application-default login' to recreate it");
        goto on_error;
    }
    json_error_t jerr;
    root = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(root)) {
        /* Only the line number: jansson's text quotes the file's content, which may be a key. */
        rc = root ? sl__fail(SL_EINVAL, "%s: not a JSON credentials file (not a JSON object)", label)
                  : sl__fail(SL_EINVAL, "%s: not a JSON credentials file (invalid JSON at line %d)", label, jerr.line);
        goto on_error;
    }
    json_t *type = json_object_get(root, "type");
    if (!json_is_string(type)) {
        rc = sl__fail(SL_EINVAL, "%s: no \"type\" field (expected service_account or authorized_user)", label);
        goto on_error;
    }
    const char *t = json_string_value(type);
    if (strcmp(t, "service_account") == 0) {
        auth->kind = S_SERVICE_ACCOUNT;
        char *pem = NULL;
        if ((rc = s_field(root, "client_email", label, "service account key", &auth->client_email)) < 0 ||
            (rc = s_field(root, "private_key", label, "service account key", &pem)) < 0 ||
            (rc = s_token_uri(auth, root, label)) < 0)
            goto on_error;
        auth->pkey = s_parse_pem(pem);
        s_wipe_free(pem);
        if (!auth->pkey) {
            rc = sl__fail(SL_EINVAL, "%s: private_key is not a PEM-encoded RSA private key (download a new key)",
                          label);
            goto on_error;
        }
        json_t *kid = json_object_get(root, "private_key_id");
        if (json_is_string(kid) && json_string_length(kid)) {
            auth->private_key_id = s_strdup(json_string_value(kid));
            if (!auth->private_key_id) {
                rc = sl__fail(SL_ENOMEM, "%s: out of memory", label);
                goto on_error;
            }
        }
        auth->source = s_printf("service account %s key %s (%s)", auth->client_email, path, via);
    } else if (strcmp(t, "authorized_user") == 0) {
        auth->kind = S_AUTHORIZED_USER;
        if ((rc = s_field(root, "client_id", label, "authorized_user file", &auth->client_id)) < 0 ||
            (rc = s_field(root, "client_secret", label, "authorized_user file", &auth->client_secret)) < 0 ||
            (rc = s_field(root, "refresh_token", label, "authorized_user file", &auth->refresh_token)) < 0 ||
            (rc = s_token_uri(auth, root, label)) < 0)
            goto on_error;
        auth->source = s_printf("authorized_user credentials %s (%s)", path, via);
    } else {
        rc = sl__fail(SL_EINVAL, "%s: unknown credentials type '%.64s' (expected service_account or authorized_user)",
                      label, t);
        goto on_error;
    }
    if (!auth->source)
        rc = sl__fail(SL_ENOMEM, "%s: out of memory", label);

on_error:
    if (root) {
        s_wipe_json_string(json_object_get(root, "private_key"));
        s_wipe_json_string(json_object_get(root, "client_secret"));
        s_wipe_json_string(json_object_get(root, "refresh_token"));
        json_decref(root);
    }
    s_wipe_free_n(data, len);
    return rc;
}

/* Reads the token of a --token-file. Returns 0 with *header set, or fails naming the file. */
static int s_read_token_file(const char *path, char **header) {
    char *data = NULL;
    size_t len = 0;
    int err = s_read_file(path, S_MAX_FILE_BYTES, &data, &len);
    if (err == EFBIG)
        return sl__fail(SL_EINVAL, "--token-file %s: larger than %zu bytes, not an access token", path,
                        S_MAX_FILE_BYTES);
    if (err) {
        char ebuf[128];
        return sl__fail(sl__errno_to_sl(err), "--token-file %s: cannot read: %s", path,
                        strerror_r(err, ebuf, sizeof(ebuf)));
    }
    size_t tlen = len;
    char *tok = s_trim(data, &tlen);
    int rc = 0;
    if (tlen == 0)
        rc = sl__fail(SL_EINVAL, "--token-file %s: the file is empty (write an access token into it)", path);
    else if (!s_token_ok(tok, tlen))
        rc = sl__fail(SL_EINVAL, "--token-file %s: not an access token (one line of printable characters expected)",
                      path);
    else if (!(*header = s_make_header(tok, tlen)))
        rc = sl__fail(SL_ENOMEM, "--token-file %s: out of memory", path);
    s_wipe_free_n(data, len);
    return rc;
}

static int s_choose(sl__gcs_auth *auth, const sl__gcs_auth_options *opts) {
    /* In the order the store takes its endpoint from them (store_gcs.c), so the one named is the one used. */
    const char *emulator = s_getenv("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    const char *emu_var = "CLOUD_STORAGE_EMULATOR_ENDPOINT";
    if (!emulator) {
        emulator = s_getenv("STORAGE_EMULATOR_HOST");
        emu_var = "STORAGE_EMULATOR_HOST";
    }
    if (opts && opts->anonymous) {
        auth->kind = S_ANONYMOUS;
        auth->source = s_strdup("anonymous access (no credentials)");
        goto done;
    }
    if (opts && opts->emulator) {
        auth->kind = S_ANONYMOUS;
        auth->source = emulator ? s_printf("anonymous access (%s=%s)", emu_var, emulator)
                                : s_strdup("anonymous access (an emulator's endpoint)");
        goto done;
    }
    /* An explicit --token-file wins even over an emulator: that is how tests reach an emulator that wants tokens. */
    if (opts && opts->token_file) {
        int rc = s_read_token_file(opts->token_file, &auth->synced.header);
        if (rc < 0)
            return rc;
        auth->kind = S_STATIC;
        auth->token_file = s_strdup(opts->token_file);
        auth->source = s_printf("access token in file %s (--token-file)", opts->token_file);
        if (!auth->token_file)
            return sl__fail(SL_ENOMEM, "out of memory");
        goto done;
    }
    if (emulator) {
        /* The variable asks for no credentials even when --endpoint sends the requests elsewhere: say where. */
        auth->kind = S_ANONYMOUS;
        auth->source = opts && opts->endpoint
                           ? s_printf("anonymous access to %s (--endpoint; no credentials, as %s is set)",
                                      opts->endpoint, emu_var)
                           : s_printf("anonymous access (%s=%s)", emu_var, emulator);
        goto done;
    }
    const char *env_token = s_getenv("GOOGLE_OAUTH_ACCESS_TOKEN");
    if (env_token) {
        size_t len = strlen(env_token);
        if (!s_token_ok(env_token, len))
            return sl__fail(SL_EINVAL, "GOOGLE_OAUTH_ACCESS_TOKEN: not an access token (printable characters only)");
        auth->kind = S_STATIC;
        auth->synced.header = s_make_header(env_token, len);
        auth->source = s_strdup("access token from GOOGLE_OAUTH_ACCESS_TOKEN");
        if (!auth->synced.header)
            return sl__fail(SL_ENOMEM, "out of memory");
        goto done;
    }
    const char *gac = s_getenv("GOOGLE_APPLICATION_CREDENTIALS");
    if (gac)
        return s_load_credentials(auth, gac, "GOOGLE_APPLICATION_CREDENTIALS");

    char adc[4096];
    const char *config = s_getenv("CLOUDSDK_CONFIG");
    const char *home = s_getenv("HOME");
    if (config)
        snprintf(adc, sizeof(adc), "%s/application_default_credentials.json", config);
    else if (home)
        snprintf(adc, sizeof(adc), "%s/.config/gcloud/application_default_credentials.json", home);
    else
        snprintf(adc, sizeof(adc), "$HOME/.config/gcloud/application_default_credentials.json");
    struct stat st;
    if ((config || home) && stat(adc, &st) == 0)
        return s_load_credentials(auth, adc, NULL);

    const char *host = s_getenv("GCE_METADATA_HOST");
    if (!host)
        host = S_METADATA_DEFAULT_HOST;
    if (strpbrk(host, "/ \t\r\n@?#") || strlen(host) > 255)
        return sl__fail(SL_EINVAL, "GCE_METADATA_HOST=%.300s: expected host[:port]", host);
    auth->kind = S_METADATA;
    auth->metadata_host = s_strdup(host);
    auth->url = s_printf("http://%s%s", host, S_METADATA_PATH);
    auth->tried = s_printf("GOOGLE_OAUTH_ACCESS_TOKEN, GOOGLE_APPLICATION_CREDENTIALS, %s", adc);
    auth->source = s_printf("metadata server at %s", host);
    if (!auth->metadata_host || !auth->url || !auth->tried)
        return sl__fail(SL_ENOMEM, "out of memory");

done:
    return auth->source ? 0 : sl__fail(SL_ENOMEM, "out of memory");
}

static bool s_streq(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* True if b, just chosen, is the same source as a: same kind, file, variable, token URI or metadata host. */
static bool s_same_source(const sl__gcs_auth *a, const sl__gcs_auth *b) {
    return a->kind == b->kind && s_streq(a->source, b->source) && s_streq(a->url, b->url) &&
           s_streq(a->tried, b->tried);
}

static void s_free(sl__gcs_auth *auth);

int sl__gcs_auth_new(const sl__gcs_auth_options *opts, sl__gcs_auth **out) {
    *out = NULL;
    sl__gcs_auth *auth = calloc(1, sizeof(*auth));
    if (!auth)
        return sl__fail(SL_ENOMEM, "out of memory");
    pthread_mutex_init(&auth->synced.lock, NULL);
    atomic_init(&auth->fetches, 0);
    atomic_init(&auth->attempts, 0);
    auth->synced.rng = ((uint64_t)(uintptr_t)auth ^ (uint64_t)sl__now_ms() * 0x9E3779B97F4A7C15ull) | 1;
    int rc = s_choose(auth, opts);
    if (rc < 0)
        goto on_error;
    if (auth->kind == S_STATIC)
        auth->synced.expires_ms = INT64_MAX;
    if (auth->kind == S_SERVICE_ACCOUNT || auth->kind == S_AUTHORIZED_USER || auth->kind == S_METADATA) {
        pthread_mutex_lock(&s_shared_lock);
        sl__gcs_auth *same = s_shared;
        while (same && !s_same_source(same, auth))
            same = same->next;
        if (same) {
            same->refs++;
        } else {
            auth->refs = 1;
            auth->next = s_shared;
            s_shared = auth;
        }
        pthread_mutex_unlock(&s_shared_lock);
        if (same) {
            s_free(auth);
            auth = same;
        }
    }
    *out = auth;
    return 0;

on_error:
    sl__gcs_auth_destroy(auth);
    return rc;
}

void sl__gcs_auth_destroy(sl__gcs_auth *auth) {
    if (!auth)
        return;
    bool last = true;
    pthread_mutex_lock(&s_shared_lock);
    if (auth->refs > 0) {
        last = --auth->refs == 0;
        for (sl__gcs_auth **p = &s_shared; last && *p; p = &(*p)->next) {
            if (*p == auth) {
                *p = auth->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&s_shared_lock);
    if (last)
        s_free(auth);
}

static void s_free(sl__gcs_auth *auth) {
    sl__http_destroy(auth->synced.http);
    s_wipe_free(auth->synced.header);
    s_wipe_free(auth->synced.rejected);
    EVP_PKEY_free(auth->pkey);
    s_wipe_free(auth->client_secret);
    s_wipe_free(auth->refresh_token);
    s_wipe_free(auth->private_key_id);
    free(auth->client_id);
    free(auth->client_email);
    free(auth->source);
    free(auth->token_file);
    free(auth->url);
    free(auth->tried);
    free(auth->metadata_host);
    pthread_mutex_destroy(&auth->synced.lock);
    free(auth);
}

const char *sl__gcs_auth_source(const sl__gcs_auth *auth) {
    return auth && auth->source ? auth->source : "no credentials";
}

unsigned long sl__gcs_auth_fetches(const sl__gcs_auth *auth) {
    return atomic_load(&((sl__gcs_auth *)auth)->fetches);
}

/* ---- fetching --------------------------------------------------------------------------------------------------- */

/* Builds the signed JWT assertion for the service account grant into b. Returns 0 or fails. */
static int s_make_jwt(sl__gcs_auth *auth, s_sbuf *b) {
    int rc = 0;
    char *header = NULL, *claims = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    EVP_MD_CTX *md = NULL;
    json_int_t now = (json_int_t)time(NULL);

    json_t *h = auth->private_key_id
                    ? json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", auth->private_key_id)
                    : json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", auth->client_email, "scope", S_SCOPE, "aud",
                          auth->url, "iat", now, "exp", now + S_JWT_LIFETIME_S);
    if (h)
        header = json_dumps(h, JSON_COMPACT);
    if (c)
        claims = json_dumps(c, JSON_COMPACT);
    json_decref(h);
    json_decref(c);
    if (!header || !claims) {
        rc = sl__fail(SL_ENOMEM, "%s: out of memory building the token request", auth->source);
        goto on_error;
    }
    s_sbuf_b64url(b, (const unsigned char *)header, strlen(header));
    s_sbuf_add(b, ".", 1);
    s_sbuf_b64url(b, (const unsigned char *)claims, strlen(claims));
    if (b->failed) {
        rc = sl__fail(SL_ENOMEM, "%s: out of memory building the token request", auth->source);
        goto on_error;
    }
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, auth->pkey) != 1 ||
        EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)b->data, b->len) != 1 ||
        !(sig = malloc(sig_len)) || EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)b->data, b->len) != 1) {
        unsigned long e = ERR_get_error();
        char ebuf[256];
        ERR_error_string_n(e, ebuf, sizeof(ebuf));
        ERR_clear_error();
        rc = sl__fail(SL_EINTERNAL, "%s: cannot sign the token request: %s", auth->source, e ? ebuf : "no memory");
        goto on_error;
    }
    s_sbuf_add(b, ".", 1);
    s_sbuf_b64url(b, sig, sig_len);
    if (b->failed)
        rc = sl__fail(SL_ENOMEM, "%s: out of memory building the token request", auth->source);

on_error:
    EVP_MD_CTX_free(md);
    s_wipe_free_n(sig, sig_len);
    s_wipe_free(header);
    s_wipe_free(claims);
    return rc;
}

static int s_make_body(sl__gcs_auth *auth, s_sbuf *body) {
    if (auth->kind == S_SERVICE_ACCOUNT) {
        s_sbuf jwt = {0};
        int rc = s_make_jwt(auth, &jwt);
        if (rc == 0) {
            s_sbuf_str(body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=");
            s_sbuf_add(body, jwt.data, jwt.len);
        }
        s_sbuf_wipe(&jwt);
        if (rc < 0)
            return rc;
    } else if (auth->kind == S_AUTHORIZED_USER) {
        s_sbuf_str(body, "grant_type=refresh_token&client_id=");
        s_sbuf_escaped(body, auth->client_id);
        s_sbuf_str(body, "&client_secret=");
        s_sbuf_escaped(body, auth->client_secret);
        s_sbuf_str(body, "&refresh_token=");
        s_sbuf_escaped(body, auth->refresh_token);
    }
    if (body->failed)
        return sl__fail(SL_ENOMEM, "%s: out of memory building the token request", auth->source);
    return 0;
}

/* True if text quotes the secret (NUL-terminated, len bytes): all of it, or, for a long one, any 16 bytes of it in a
 * row (a server quoting it back may cut it short). Error paths only: a strstr per position of the secret. */
static bool s_quotes(const char *text, const char *secret, size_t len) {
    if (!secret || len < 4)
        return false;
    if (len < 32)
        return strstr(text, secret) != NULL;
    for (size_t at = 0; at + 16 <= len; at++) {
        char run[17];
        memcpy(run, secret + at, 16);
        run[16] = '\0';
        bool found = strstr(text, run) != NULL;
        OPENSSL_cleanse(run, sizeof(run));
        if (found)
            return true;
    }
    return false;
}

static bool s_bearer_quoted(const char *text);

/* The one secret filter for text a server sent (server error messages and headers quoted in messages, reports and
 * failure logs; token endpoint answers): true when it must not be shown because it quotes one of the secrets this
 * process holds or sent -- the access token in use or one rejected, a client secret, a refresh token, the signed
 * assertion of the token request (`body`, may be NULL) -- or any bearer credential at all ("Bearer " and a token).
 * Called with the lock held. */
static bool s_mentions_secret(const sl__gcs_auth *auth, const char *text, const s_sbuf *body) {
    size_t blen = strlen(S_BEARER);
    const char *tokens[] = {auth->synced.header, auth->synced.rejected};
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
        if (tokens[i] && strlen(tokens[i]) > blen && s_quotes(text, tokens[i] + blen, strlen(tokens[i]) - blen))
            return true;
    const char *secrets[] = {auth->client_secret, auth->refresh_token};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (secrets[i] && s_quotes(text, secrets[i], strlen(secrets[i])))
            return true;
    const char *assertion = body && body->data ? strstr(body->data, "assertion=") : NULL;
    if (assertion && s_quotes(text, assertion + strlen("assertion="), strlen(assertion + strlen("assertion="))))
        return true;
    return s_bearer_quoted(text);
}

/* A credential this process never held (one a proxy added, one given with --header): "Bearer" and 8 characters of a
 * token. */
static bool s_bearer_quoted(const char *text) {
    for (const char *p = text; (p = strcasestr(p, "bearer")) != NULL; p += 6) {
        const char *q = p + 6;
        if (*q != ' ' && *q != '\t' && *q != '=' && *q != ':')
            continue;
        while (*q == ' ' || *q == '\t' || *q == '=' || *q == ':')
            q++;
        size_t n = 0;
        while (s_token_char((unsigned char)q[n]) && q[n] != ',' && q[n] != '"' && q[n] != '\'' && q[n] != ';')
            n++;
        if (n >= 8)
            return true;
    }
    return false;
}

bool sl__gcs_auth_mentions_secret(sl__gcs_auth *auth, const char *text) {
    if (!text || !*text)
        return false;
    if (!auth)
        return s_bearer_quoted(text);
    pthread_mutex_lock(&auth->synced.lock);
    bool found = s_mentions_secret(auth, text, NULL);
    pthread_mutex_unlock(&auth->synced.lock);
    return found;
}

/* Appends what the server said about a failed token request to msg: the OAuth "error"/"error_description" fields,
 * Google's {"error":{"message"}} shape, or the first line of a non-JSON answer. */
static void s_server_says(const sl__gcs_auth *auth, const sl__http_response *resp, const s_sbuf *body, char *msg,
                          size_t cap) {
    msg[0] = '\0';
    if (!resp->body || resp->body_len == 0)
        return;
    char said[400] = "";
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (json_is_object(root)) {
        json_t *e = json_object_get(root, "error");
        json_t *d = json_object_get(root, "error_description");
        if (json_is_object(e)) {
            d = json_object_get(e, "message");
            e = json_object_get(e, "status");
        }
        const char *es = json_is_string(e) ? json_string_value(e) : NULL;
        const char *ds = json_is_string(d) ? json_string_value(d) : NULL;
        if (es && ds)
            snprintf(said, sizeof(said), "%.120s: %.250s", es, ds);
        else if (es || ds)
            snprintf(said, sizeof(said), "%.300s", es ? es : ds);
    } else {
        size_t n = 0;
        for (size_t i = 0; i < resp->body_len && n < 160; i++) {
            char ch = resp->body[i];
            if (ch == '\n' || ch == '\r')
                break;
            said[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
        }
        said[n] = '\0';
        while (n && said[n - 1] == ' ')
            said[--n] = '\0';
    }
    json_decref(root);
    for (char *p = said; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    if (said[0] && !s_mentions_secret(auth, said, body))
        snprintf(msg, cap, ": %s", said);
}

/* Parses a 200 answer. Returns 0 with *header and *lifetime_s, or fails. */
static int s_parse_token(sl__gcs_auth *auth, const sl__http_response *resp, char **header, int64_t *lifetime_s) {
    int rc = 0;
    json_t *root = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    if (!json_is_object(root)) {
        rc = sl__fail(SL_EIO, "%s: the token endpoint %s answered 200 but not with JSON", auth->source, auth->url);
        goto on_error;
    }
    json_t *tok = json_object_get(root, "access_token");
    if (!json_is_string(tok) || !s_token_ok(json_string_value(tok), json_string_length(tok))) {
        rc = sl__fail(SL_EIO, "%s: the token endpoint %s answered without a usable access_token", auth->source,
                      auth->url);
        goto on_error;
    }
    json_t *type = json_object_get(root, "token_type");
    if (type && (!json_is_string(type) || strcasecmp(json_string_value(type), "Bearer") != 0)) {
        const char *said = json_is_string(type) ? json_string_value(type) : "?";
        rc = sl__fail(SL_EIO, "%s: the token endpoint %s answered with token_type '%.40s', not Bearer", auth->source,
                      auth->url, s_mentions_secret(auth, said, NULL) ? "(not shown)" : said);
        goto on_error;
    }
    json_t *exp = json_object_get(root, "expires_in");
    int64_t life = S_DEFAULT_LIFETIME_S;
    if (json_is_integer(exp))
        life = (int64_t)json_integer_value(exp);
    else if (json_is_real(exp))
        life = (int64_t)json_real_value(exp);
    else if (json_is_string(exp))
        life = strtoll(json_string_value(exp), NULL, 10);
    if (life < 0)
        life = 0;
    *header = s_make_header(json_string_value(tok), json_string_length(tok));
    if (!*header) {
        rc = sl__fail(SL_ENOMEM, "%s: out of memory", auth->source);
        goto on_error;
    }
    *lifetime_s = life;

on_error:
    if (root)
        s_wipe_json_string(json_object_get(root, "access_token"));
    json_decref(root);
    return rc;
}

static int s_status_code(long status) {
    if (status == 400 || status == 401 || status == 403)
        return SL_EACCES;
    if (status == 404)
        return SL_ENOENT;
    return SL_EIO;
}

/* Fetches a token with a few quick retries. Called with the lock held. */
static int s_fetch_locked(sl__gcs_auth *auth) {
    int rc = 0;
    s_sbuf body = {0};
    sl__http_response resp;
    memset(&resp, 0, sizeof(resp));
    if (!auth->synced.http) {
        sl__http_options hopts = {.connect_timeout_ms = auth->kind == S_METADATA ? 5000 : 0, .stall_timeout_s = 30};
        auth->synced.http = sl__http_new(&hopts);
        if (!auth->synced.http)
            return SL_ENOMEM;
    }
    if ((rc = s_make_body(auth, &body)) < 0)
        goto on_error;

    const char *form_headers[] = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json",
                                  NULL};
    const char *metadata_headers[] = {"Metadata-Flavor: Google", "Accept: application/json", NULL};
    sl__http_request req = {
        .method = auth->kind == S_METADATA ? "GET" : "POST",
        .url = auth->url,
        .headers = auth->kind == S_METADATA ? metadata_headers : form_headers,
        .body = body.data,
        .body_len = body.len,
        .body_cap = S_MAX_ANSWER_BYTES,
    };
    sl__retry_policy policy = {.max_attempts = 3, .initial_delay_ms = 100, .max_delay_ms = 1000, .deadline_ms = 20000};
    char reason[512] = "";
    int64_t started = sl__now_ms(), sent = started;
    for (unsigned attempt = 1;; attempt++) {
        if (attempt > 1)
            s_sleep_ms(sl__retry_delay_ms(&policy, attempt - 1, &auth->synced.rng));
        sent = sl__now_ms();
        memset(&resp, 0, sizeof(resp));
        rc = sl__http_perform(auth->synced.http, &req, &resp);
        bool last = attempt >= policy.max_attempts || sl__now_ms() - started >= policy.deadline_ms;
        if (rc == SL_EIO) {
            snprintf(reason, sizeof(reason), "%s", sl_last_error());
            if (last)
                break;
            continue;
        }
        if (rc < 0 || !sl__retry_status(resp.status) || last)
            break;
    }

    /* The endpoint answered nothing: an outage when it gave a token before (the job judges those as a whole), missing
     * or wrong credentials when it never did. */
    atomic_store(&auth->unreachable, rc == SL_EIO && atomic_load(&auth->fetches) > 0);
    if (rc == SL_EIO && auth->kind == S_METADATA && atomic_load(&auth->fetches) == 0) {
        rc = sl__fail(SL_EACCES,
                      "no Google Cloud credentials found: tried %s, and the metadata server at %s (unreachable: %s); "
                      "set GOOGLE_APPLICATION_CREDENTIALS to a key file, or use --token-file",
                      auth->tried, auth->metadata_host, reason);
        goto on_error;
    }
    if (rc == SL_EIO) {
        /* The source names the metadata server already ("metadata server at HOST"). */
        rc = sl__fail(SL_EIO, "%s: cannot reach %s %s: %s", auth->source,
                      auth->kind == S_METADATA ? "it at" : "the token endpoint", auth->url, reason);
        goto on_error;
    }
    if (rc < 0) {
        snprintf(reason, sizeof(reason), "%s", sl_last_error());
        rc = sl__fail(rc, "%s: token request to %s failed: %s", auth->source, auth->url, reason);
        goto on_error;
    }
    if (resp.status != 200) {
        char said[512];
        s_server_says(auth, &resp, &body, said, sizeof(said));
        const char *hint = "";
        if (auth->kind == S_METADATA && (resp.status == 403 || resp.status == 404))
            hint = " (does this VM or pod have a service account? on GKE, check its Workload Identity binding)";
        else if (auth->kind == S_SERVICE_ACCOUNT && (resp.status == 400 || resp.status == 401))
            hint = " (the key may have been deleted or disabled, or this machine's clock is wrong)";
        else if (auth->kind == S_AUTHORIZED_USER && (resp.status == 400 || resp.status == 401))
            hint = " (run 'gcloud auth application-default login' again)";
        rc = sl__fail(s_status_code(resp.status), "%s: token request to %s failed with HTTP %ld%s%s", auth->source,
                      auth->url, resp.status, said, hint);
        goto on_error;
    }

    char *header = NULL;
    int64_t life_s = 0;
    rc = s_parse_token(auth, &resp, &header, &life_s);
    if (rc < 0)
        goto on_error;
    s_wipe_free(auth->synced.header);
    auth->synced.header = header;
    int64_t life_ms = life_s * 1000;
    auth->synced.expires_ms = sent + life_ms;
    auth->synced.margin_ms = life_ms / 4 < S_MAX_MARGIN_MS ? life_ms / 4 : S_MAX_MARGIN_MS;
    atomic_fetch_add(&auth->fetches, 1);

on_error:
    if (resp.body)
        OPENSSL_cleanse(resp.body, resp.body_len);
    s_sbuf_wipe(&body);
    return rc;
}

/* Copies the cached header into buf. Called with the lock held. */
static int s_copy_header_locked(const sl__gcs_auth *auth, char *buf, size_t cap) {
    size_t len = strlen(auth->synced.header);
    if (len + 1 > cap)
        return sl__fail(SL_ETOOBIG, "%s: the token (%zu bytes) does not fit the %zu-byte header buffer",
                        auth->source, len, cap);
    memcpy(buf, auth->synced.header, len + 1);
    return 0;
}

/* A static token was rejected: a token file may have been rewritten since (by whoever rotates it). */
static int s_static_rejected_locked(sl__gcs_auth *auth) {
    if (auth->token_file) {
        char *header = NULL;
        if (s_read_token_file(auth->token_file, &header) == 0) {
            if (strcmp(header, auth->synced.rejected) != 0) {
                auth->synced.header = header;
                s_wipe_free(auth->synced.rejected);
                auth->synced.rejected = NULL;
                return 0;
            }
            s_wipe_free(header);
        }
    }
    /* The source says which token: "access token from GOOGLE_OAUTH_ACCESS_TOKEN", "access token in file F ...". */
    return sl__fail(SL_EACCES, "the %s was rejected (401): it may have expired; provide a fresh one", auth->source);
}

bool sl__gcs_auth_unreachable(sl__gcs_auth *auth) {
    return auth && atomic_load(&auth->unreachable);
}

int sl__gcs_auth_header(sl__gcs_auth *auth, char *buf, size_t cap) {
    if (auth->kind == S_ANONYMOUS) {
        if (cap == 0)
            return sl__fail(SL_ETOOBIG, "%s: no room for the header", auth->source);
        buf[0] = '\0';
        return 0;
    }
    unsigned long seen = atomic_load(&auth->attempts);
    int rc = 0;
    pthread_mutex_lock(&auth->synced.lock);
    if (auth->kind == S_STATIC) {
        if (!auth->synced.header && (rc = s_static_rejected_locked(auth)) < 0)
            goto done;
        rc = s_copy_header_locked(auth, buf, cap);
        goto done;
    }
    if (auth->synced.header && sl__now_ms() + auth->synced.margin_ms < auth->synced.expires_ms) {
        rc = s_copy_header_locked(auth, buf, cap);
        goto done;
    }
    /* A fetch failed while this thread waited for the lock: report that failure rather than repeating it at once
     * (with many workers queued behind an unreachable server, each would wait out its own retries in turn). And
     * credentials that never worked (none found, or the token endpoint refused the grant) are not tried again for
     * every object: the answer would be the same, after the same retries, one object at a time. */
    if (auth->synced.last_failed && (auth->synced.failed_for_good || atomic_load(&auth->attempts) != seen)) {
        rc = sl__fail(auth->synced.fail_code, "%s", auth->synced.fail_msg);
        goto done;
    }
    rc = s_fetch_locked(auth);
    auth->synced.last_failed = rc < 0;
    if (rc < 0) {
        auth->synced.fail_code = rc;
        auth->synced.failed_for_good = atomic_load(&auth->fetches) == 0 && (rc == SL_EACCES || rc == SL_ENOENT);
        sl__text_cut(auth->synced.fail_msg, sizeof(auth->synced.fail_msg), sl_last_error(), strlen(sl_last_error()));
    }
    atomic_fetch_add(&auth->attempts, 1);
    if (rc == 0)
        rc = s_copy_header_locked(auth, buf, cap);

done:
    pthread_mutex_unlock(&auth->synced.lock);
    return rc;
}

void sl__gcs_auth_invalidate(sl__gcs_auth *auth, const char *header_used) {
    if (!auth || !header_used || auth->kind == S_ANONYMOUS)
        return;
    pthread_mutex_lock(&auth->synced.lock);
    if (auth->synced.header && strcmp(auth->synced.header, header_used) == 0) {
        if (auth->kind == S_STATIC) {
            s_wipe_free(auth->synced.rejected);
            auth->synced.rejected = auth->synced.header;
        } else {
            s_wipe_free(auth->synced.header);
        }
        auth->synced.header = NULL;
    }
    pthread_mutex_unlock(&auth->synced.lock);
}
