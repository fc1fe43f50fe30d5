/* AWS credentials and the process-wide credential cache (auth_aws.h).
 *
 * The source is chosen once, from the environment and files only, so a misconfiguration is reported before any
 * work starts and names the file, profile or variable at fault. Credentials that expire are fetched lazily: the first
 * thread that needs fresh ones fetches them holding the cache lock, and the threads queued behind that lock reuse
 * them (or, if the fetch failed, report that failure instead of each repeating a fetch that just failed).
 *
 * Secrets live only in buffers this file allocates and wipes before freeing, and never reach an error message: what a
 * server or a credential_process says is quoted only when it does not contain anything secret. */
#include "auth_aws.h"

#include "child.h"
#include "clock.h"
#include "fail.h"
#include "http.h"

#include "sluice/sluice.h"

#include <errno.h>
#include <expat.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_FILE_BYTES ((size_t)256 * 1024)  /* ~/.aws/credentials and config, token files */
#define S_MAX_ANSWER_BYTES ((size_t)64 * 1024) /* STS, container and IMDS answers, credential_process output */
#define S_MAX_MARGIN_S 600                     /* refresh at most 10 minutes before expiry */
#define S_PROCESS_TIMEOUT_MS 60000
#define S_MAX_ARGS 64
#define S_DEFAULT_REGION "us-east-1"
#define S_CONTAINER_HOST "http://169.254.170.2"
#define S_IMDS_DEFAULT "http://169.254.169.254"
#define S_IMDS_TOKEN_TTL "21600"
#define S_VALUE_CAP 4096 /* one INI value */

extern char **environ;

typedef enum s_kind {
    S_ANONYMOUS,
    S_ENV,     /* environment variables: cannot change */
    S_FILE,    /* keys in the credentials or config file: read again after a rejection */
    S_PROCESS, /* credential_process */
    S_WEB_IDENTITY,
    S_CONTAINER,
    S_IMDS,
} s_kind;

struct sl__aws_auth {
    /* Guarded by s_shared_lock; refs is 0 for an instance that is not shared. */
    struct sl__aws_auth *next;
    unsigned refs;
    /* Fixed after sl__aws_auth_new. */
    s_kind kind;
    char *source; /* for messages; no secrets */
    char *region;
    char *region_source;
    char *endpoint_url;
    char *file;    /* S_FILE: the file the keys are in */
    char *section; /* S_FILE: their section */
    char *command; /* S_PROCESS */
    char *token_file;
    char *role_arn;
    char *session_name;
    char *url;             /* STS endpoint, container credentials URL, IMDS base */
    char *auth_token;      /* S_CONTAINER: AWS_CONTAINER_AUTHORIZATION_TOKEN; secret */
    char *auth_token_file; /* S_CONTAINER: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE */
    char *tried;           /* S_IMDS: what was tried before, for the "no credentials" message */
    atomic_ulong fetches;
    atomic_ulong attempts;
    atomic_bool unreachable;
    struct {
        pthread_mutex_t lock;
        sl__http *http;             /* created on the first fetch; used only under the lock */
        sl__aws_credentials *creds; /* the current ones (wiped when freed); NULL before the first fetch */
        bool have;                  /* creds is usable (false after an invalidation) */
        int64_t refresh_at_s;       /* wall clock; 0 = never */
        unsigned long serial;
        char *rejected_secret; /* the secret key and token last invalidated; secret */
        char *rejected_token;
        char *sent_token; /* the web identity or container token last sent; secret */
        bool last_failed;
        bool failed_for_good;
        int fail_code;
        char fail_msg[SL__MESSAGE_CAP];
        uint64_t rng;
    } synced;
};

static pthread_mutex_t s_shared_lock = PTHREAD_MUTEX_INITIALIZER;
static sl__aws_auth *s_shared;

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

static int64_t s_wall_s(void) {
    return (int64_t)time(NULL);
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
    s_wipe_free_n(data, max_bytes + 1);
    close(fd);
    return err;
}

static bool s_visible(const char *s) {
    if (!*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    return true;
}

static bool s_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Copies one field into a fixed buffer. Returns false (why set) if it does not fit or is not printable ASCII. */
static bool s_set_field(char *dst, size_t cap, const char *src, const char *name, bool required, char *why,
                        size_t why_cap) {
    size_t n = src ? strlen(src) : 0;
    if (n == 0) {
        dst[0] = '\0';
        if (required)
            snprintf(why, why_cap, "no %s", name);
        return !required;
    }
    if (n + 1 > cap) {
        snprintf(why, why_cap, "%s is %zu bytes, more than the %zu sluice takes", name, n, cap - 1);
        return false;
    }
    if (!s_visible(src)) {
        snprintf(why, why_cap, "%s has characters other than printable ASCII", name);
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

/* ---- INI files -------------------------------------------------------------------------------------------------- */

/* The bracketed name [p, p+n) equals want, runs of blanks compared as one space. */
static bool s_section_eq(const char *p, size_t n, const char *want) {
    size_t i = 0;
    const char *w = want;
    while (i < n) {
        if (s_space(p[i])) {
            while (i < n && s_space(p[i]))
                i++;
            if (*w != ' ')
                return false;
            w++;
            continue;
        }
        /* The text may hold NUL bytes: the end of want is checked apart, never matched by one. */
        if (*w == '\0' || *w != p[i])
            return false;
        w++;
        i++;
    }
    return *w == '\0';
}

int sl__aws_ini_get(const char *text, size_t len, const char *section, const char *key, char *out, size_t cap,
                    bool *section_found) {
    bool in = false, found_section = false;
    int result = 0;
    size_t klen = strlen(key);
    if (cap)
        out[0] = '\0';
    for (size_t at = 0; at < len;) {
        size_t end = at;
        while (end < len && text[end] != '\n')
            end++;
        const char *line = text + at;
        size_t n = end - at;
        at = end + 1;
        while (n && (line[n - 1] == '\r' || s_space(line[n - 1])))
            n--;
        if (n == 0 || s_space(line[0]) || line[0] == '#' || line[0] == ';')
            continue;
        if (line[0] == '[') {
            size_t close = n;
            while (close > 0 && line[close - 1] != ']')
                close--;
            if (close == 0) {
                in = false;
                continue;
            }
            const char *name = line + 1;
            size_t nn = close - 2;
            while (nn && s_space(*name)) {
                name++;
                nn--;
            }
            while (nn && s_space(name[nn - 1]))
                nn--;
            in = s_section_eq(name, nn, section);
            found_section |= in;
            continue;
        }
        if (!in)
            continue;
        size_t eq = 0;
        while (eq < n && line[eq] != '=' && line[eq] != ':')
            eq++;
        if (eq == n)
            continue;
        size_t kn = eq;
        while (kn && s_space(line[kn - 1]))
            kn--;
        if (kn != klen || strncasecmp(line, key, klen) != 0)
            continue;
        const char *v = line + eq + 1;
        size_t vn = n - eq - 1;
        while (vn && s_space(*v)) {
            v++;
            vn--;
        }
        if (vn + 1 > cap) {
            result = SL_ETOOBIG;
            continue;
        }
        memcpy(out, v, vn);
        out[vn] = '\0';
        result = 1;
    }
    if (section_found)
        *section_found = found_section;
    return result;
}

/* ---- parsers ---------------------------------------------------------------------------------------------------- */

static bool s_digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

int sl__aws_parse_time(const char *text, int64_t *out) {
    int y, mo, d, h, mi, s;
    const char *p = text;
    if (!p || strlen(p) < 19 || !s_digits(p, 4, &y) || p[4] != '-' || !s_digits(p + 5, 2, &mo) || p[7] != '-' ||
        !s_digits(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') || !s_digits(p + 11, 2, &h) ||
        p[13] != ':' || !s_digits(p + 14, 2, &mi) || p[16] != ':' || !s_digits(p + 17, 2, &s))
        return SL_EINVAL;
    p += 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return SL_EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!s_digits(p + 1, 2, &oh) || p[3] != ':' || !s_digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return SL_EINVAL;
        offset_s = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return SL_EINVAL;
    }
    if (*p || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return SL_EINVAL;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return SL_EINVAL;
    *out = (int64_t)t - offset_s;
    return 0;
}

static const char *s_json_str(json_t *root, const char *name) {
    json_t *v = json_object_get(root, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void s_wipe_json(json_t *root, const char *name) {
    json_t *v = json_object_get(root, name);
    if (json_is_string(v))
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

int sl__aws_parse_credentials_json(const char *text, size_t len, int version, sl__aws_credentials *out, char *why,
                                   size_t why_cap) {
    int rc = SL_EINVAL;
    why[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!json_is_object(root)) {
        /* Only the position: jansson's text may quote the input, which holds secrets. */
        snprintf(why, why_cap, root ? "not a JSON object" : "not JSON (error at line %d, column %d)", jerr.line,
                 jerr.column);
        goto on_error;
    }
    if (version == 1) {
        json_t *v = json_object_get(root, "Version");
        if (!json_is_integer(v) || json_integer_value(v) != 1) {
            snprintf(why, why_cap, "\"Version\" is not 1");
            goto on_error;
        }
    }
    const char *code = s_json_str(root, "Code");
    if (code && strcmp(code, "Success") != 0) {
        snprintf(why, why_cap, "\"Code\" is \"%.64s\", not \"Success\"", code);
        goto on_error;
    }
    const char *token = s_json_str(root, version == 1 ? "SessionToken" : "Token");
    if (!s_set_field(out->access_key_id, sizeof(out->access_key_id), s_json_str(root, "AccessKeyId"), "AccessKeyId",
                     true, why, why_cap) ||
        !s_set_field(out->secret_access_key, sizeof(out->secret_access_key), s_json_str(root, "SecretAccessKey"),
                     "SecretAccessKey", true, why, why_cap) ||
        !s_set_field(out->session_token, sizeof(out->session_token), token, version == 1 ? "SessionToken" : "Token",
                     version != 1, why, why_cap))
        goto on_error;
    out->expires_s = 0;
    const char *exp = s_json_str(root, "Expiration");
    if (exp && sl__aws_parse_time(exp, &out->expires_s) < 0) {
        snprintf(why, why_cap, "\"Expiration\" '%.40s' is not an ISO 8601 time", exp);
        goto on_error;
    }
    if (!exp && json_object_get(root, "Expiration") && !json_is_null(json_object_get(root, "Expiration"))) {
        snprintf(why, why_cap, "\"Expiration\" is not a string");
        goto on_error;
    }
    if (version != 1 && !exp) {
        snprintf(why, why_cap, "no \"Expiration\"");
        goto on_error;
    }
    rc = 0;

on_error:
    if (root) {
        s_wipe_json(root, "SecretAccessKey");
        s_wipe_json(root, "SessionToken");
        s_wipe_json(root, "Token");
    }
    json_decref(root);
    if (rc < 0) {
        OPENSSL_cleanse(out->secret_access_key, sizeof(out->secret_access_key));
        OPENSSL_cleanse(out->session_token, sizeof(out->session_token));
    }
    return rc;
}

/* STS's XML: the elements wanted, by their parent. */
enum { X_NONE, X_KEY, X_SECRET, X_TOKEN, X_EXPIRATION, X_CODE, X_MESSAGE, X_COUNT };

typedef struct s_xml {
    XML_Parser parser;
    int depth;
    bool success_root, error_root, in_credentials, in_error, bad_root, doctype;
    int field;
    char text[X_COUNT][SL__AWS_TOKEN_CAP];
    size_t len[X_COUNT];
    bool overflow[X_COUNT];
} s_xml;

/* Local names only: STS puts its answers in a default namespace, which expat without namespace processing leaves
 * out of the names anyway. */
static void XMLCALL s_xml_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
    (void)attrs;
    s_xml *x = ud;
    x->depth++;
    x->field = X_NONE;
    if (x->depth == 1) {
        x->success_root = strcmp(name, "AssumeRoleWithWebIdentityResponse") == 0;
        x->error_root = strcmp(name, "ErrorResponse") == 0;
        x->bad_root = !x->success_root && !x->error_root;
    } else if (x->success_root && x->depth == 3 && strcmp(name, "Credentials") == 0) {
        x->in_credentials = true;
    } else if (x->error_root && x->depth == 2 && strcmp(name, "Error") == 0) {
        x->in_error = true;
    } else if (x->in_credentials && x->depth == 4) {
        x->field = strcmp(name, "AccessKeyId") == 0       ? X_KEY
                   : strcmp(name, "SecretAccessKey") == 0 ? X_SECRET
                   : strcmp(name, "SessionToken") == 0    ? X_TOKEN
                   : strcmp(name, "Expiration") == 0      ? X_EXPIRATION
                                                          : X_NONE;
    } else if (x->in_error && x->depth == 3) {
        x->field = strcmp(name, "Code") == 0 ? X_CODE : strcmp(name, "Message") == 0 ? X_MESSAGE : X_NONE;
    }
}

static void XMLCALL s_xml_end(void *ud, const XML_Char *name) {
    s_xml *x = ud;
    if (x->depth == 3 && x->in_credentials && strcmp(name, "Credentials") == 0)
        x->in_credentials = false;
    if (x->depth == 2 && x->in_error && strcmp(name, "Error") == 0)
        x->in_error = false;
    x->depth--;
    x->field = X_NONE;
}

static void XMLCALL s_xml_text(void *ud, const XML_Char *s, int len) {
    s_xml *x = ud;
    if (x->field == X_NONE || len <= 0)
        return;
    size_t n = (size_t)len;
    if (x->len[x->field] + n + 1 > sizeof(x->text[0])) {
        x->overflow[x->field] = true;
        return;
    }
    memcpy(x->text[x->field] + x->len[x->field], s, n);
    x->len[x->field] += n;
    x->text[x->field][x->len[x->field]] = '\0';
}

/* No DTDs: an answer declaring one is not STS's, and entities are a way to make a parser do unbounded work. */
static void XMLCALL s_xml_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                                  int has_internal_subset) {
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    s_xml *x = ud;
    x->doctype = true;
    XML_StopParser(x->parser, XML_FALSE);
}

static void s_trim_in_place(char *s) {
    size_t n = strlen(s);
    while (n && s_space(s[n - 1]))
        s[--n] = '\0';
    size_t lead = 0;
    while (s[lead] && s_space(s[lead]))
        lead++;
    if (lead)
        memmove(s, s + lead, n - lead + 1);
}

static void s_one_line(char *s) {
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

int sl__aws_parse_sts_xml(const char *text, size_t len, sl__aws_credentials *out, char *code, size_t code_cap,
                          char *message, size_t message_cap) {
    int rc = SL_EINVAL;
    code[0] = message[0] = '\0';
    s_xml *x = calloc(1, sizeof(*x));
    if (!x) {
        snprintf(message, message_cap, "out of memory");
        return SL_ENOMEM;
    }
    x->parser = XML_ParserCreate("UTF-8");
    if (!x->parser) {
        free(x);
        snprintf(message, message_cap, "out of memory");
        return SL_ENOMEM;
    }
    XML_SetUserData(x->parser, x);
    XML_SetElementHandler(x->parser, s_xml_start, s_xml_end);
    XML_SetCharacterDataHandler(x->parser, s_xml_text);
    XML_SetStartDoctypeDeclHandler(x->parser, s_xml_doctype);
    if (len > (size_t)S_MAX_ANSWER_BYTES * 16) {
        snprintf(message, message_cap, "the answer is %zu bytes, too large for STS's", len);
        goto on_error;
    }
    if (XML_Parse(x->parser, text, (int)len, XML_TRUE) != XML_STATUS_OK) {
        if (x->doctype)
            snprintf(message, message_cap, "the answer declares a DTD, which STS's never do");
        else
            snprintf(message, message_cap, "not XML (%s at line %lu)", XML_ErrorString(XML_GetErrorCode(x->parser)),
                     (unsigned long)XML_GetCurrentLineNumber(x->parser));
        goto on_error;
    }
    for (int i = X_KEY; i < X_COUNT; i++)
        s_trim_in_place(x->text[i]);
    if (x->error_root) {
        snprintf(code, code_cap, "%s", x->text[X_CODE]);
        snprintf(message, message_cap, "%s", x->text[X_MESSAGE]);
        s_one_line(code);
        s_one_line(message);
        rc = SL_EACCES;
        goto on_error;
    }
    if (!x->success_root) {
        snprintf(message, message_cap, "not an AssumeRoleWithWebIdentityResponse");
        goto on_error;
    }
    char why[200] = "";
    if (x->overflow[X_TOKEN])
        snprintf(why, sizeof(why), "SessionToken is longer than the %d bytes sluice takes", SL__AWS_TOKEN_CAP - 1);
    else if (x->overflow[X_KEY] || x->overflow[X_SECRET] || x->overflow[X_EXPIRATION])
        snprintf(why, sizeof(why), "a field of Credentials is too long");
    if (why[0] ||
        !s_set_field(out->access_key_id, sizeof(out->access_key_id), x->text[X_KEY], "AccessKeyId", true, why,
                     sizeof(why)) ||
        !s_set_field(out->secret_access_key, sizeof(out->secret_access_key), x->text[X_SECRET], "SecretAccessKey", true,
                     why, sizeof(why)) ||
        !s_set_field(out->session_token, sizeof(out->session_token), x->text[X_TOKEN], "SessionToken", true, why,
                     sizeof(why))) {
        snprintf(message, message_cap, "%s", why);
        goto on_error;
    }
    if (sl__aws_parse_time(x->text[X_EXPIRATION], &out->expires_s) < 0) {
        snprintf(message, message_cap, "Expiration '%.40s' is not an ISO 8601 time", x->text[X_EXPIRATION]);
        s_one_line(message);
        goto on_error;
    }
    rc = 0;

on_error:
    XML_ParserFree(x->parser);
    OPENSSL_cleanse(x, sizeof(*x));
    free(x);
    if (rc < 0) {
        OPENSSL_cleanse(out->secret_access_key, sizeof(out->secret_access_key));
        OPENSSL_cleanse(out->session_token, sizeof(out->session_token));
    }
    return rc;
}

int sl__aws_split_command(const char *line, char *buf, size_t cap, char **argv, size_t max_args) {
    size_t n = 0, at = 0;
    const char *p = line;
    for (;;) {
        while (*p && s_space(*p))
            p++;
        if (!*p)
            break;
        if (n + 1 >= max_args)
            return sl__fail(SL_ETOOBIG, "more than %zu words", max_args - 1);
        size_t start = at;
        /* One word: runs of plain, quoted and escaped characters until an unquoted blank. */
        while (*p && !s_space(*p)) {
            char c = *p++;
            if (c == '\'') {
                while (*p && *p != '\'') {
                    if (at + 1 >= cap)
                        return sl__fail(SL_ETOOBIG, "longer than %zu bytes", cap);
                    buf[at++] = *p++;
                }
                if (!*p)
                    return sl__fail(SL_EINVAL, "a ' is not closed");
                p++;
            } else if (c == '"') {
                while (*p && *p != '"') {
                    char d = *p++;
                    if (d == '\\' && (*p == '"' || *p == '\\'))
                        d = *p++;
                    if (at + 1 >= cap)
                        return sl__fail(SL_ETOOBIG, "longer than %zu bytes", cap);
                    buf[at++] = d;
                }
                if (!*p)
                    return sl__fail(SL_EINVAL, "a \" is not closed");
                p++;
            } else {
                if (c == '\\') {
                    if (!*p)
                        return sl__fail(SL_EINVAL, "it ends with a lone backslash");
                    c = *p++;
                }
                if (at + 1 >= cap)
                    return sl__fail(SL_ETOOBIG, "longer than %zu bytes", cap);
                buf[at++] = c;
            }
        }
        buf[at++] = '\0';
        argv[n++] = buf + start;
    }
    if (n == 0)
        return sl__fail(SL_EINVAL, "no command in it");
    argv[n] = NULL;
    return (int)n;
}

/* ---- choosing the source ---------------------------------------------------------------------------------------- */

/* The paths of the shared files, "~/.aws/..." resolved. */
static void s_file_paths(char *creds, size_t ccap, char *config, size_t fcap) {
    const char *home = s_getenv("HOME");
    const char *c = s_getenv("AWS_SHARED_CREDENTIALS_FILE");
    const char *f = s_getenv("AWS_CONFIG_FILE");
    if (c && c[0] == '~' && c[1] == '/' && home)
        snprintf(creds, ccap, "%s%s", home, c + 1);
    else if (c)
        snprintf(creds, ccap, "%s", c);
    else
        snprintf(creds, ccap, "%s/.aws/credentials", home ? home : "~");
    if (f && f[0] == '~' && f[1] == '/' && home)
        snprintf(config, fcap, "%s%s", home, f + 1);
    else if (f)
        snprintf(config, fcap, "%s", f);
    else
        snprintf(config, fcap, "%s/.aws/config", home ? home : "~");
}

/* A shared file: read whole, or NULL with *err 0 when it does not exist. Other errors fail naming the file. */
static int s_load_shared(const char *path, const char *var, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int err = s_read_file(path, S_MAX_FILE_BYTES, data, len);
    if (err == ENOENT || err == ENOTDIR)
        return 0;
    if (err == EFBIG)
        return sl__fail(SL_EINVAL, "%s: larger than %zu bytes, not an AWS %s file", path, S_MAX_FILE_BYTES,
                        var && strstr(var, "CONFIG") ? "config" : "credentials");
    if (err)
        return sl__fail(sl__errno_to_sl(err), "%s: cannot read: %s%s%s%s", path, sl__errno_text(err),
                        var ? " (named by " : "", var ? var : "", var ? ")" : "");
    return 0;
}

typedef struct s_profile {
    const char *name;
    const char *name_var; /* "--profile", "AWS_PROFILE" or NULL (the default) */
    char creds_path[4096];
    char config_path[4096];
    char *creds; /* file contents or NULL */
    size_t creds_len;
    char *config;
    size_t config_len;
    bool in_creds, in_config;
    char config_section[300];
} s_profile;

/* Looks key up in the profile's config-file section. */
static int s_config_get(s_profile *pf, const char *key, char *out, size_t cap) {
    if (!pf->config)
        return 0;
    return sl__aws_ini_get(pf->config, pf->config_len, pf->config_section, key, out, cap, NULL);
}

static void s_profile_free(s_profile *pf) {
    s_wipe_free_n(pf->creds, pf->creds_len);
    s_wipe_free_n(pf->config, pf->config_len);
    pf->creds = pf->config = NULL;
}

static int s_profile_load(s_profile *pf, const sl__aws_auth_options *opts) {
    if (opts && opts->profile && *opts->profile) {
        pf->name = opts->profile;
        pf->name_var = "--profile";
    } else if (s_getenv("AWS_PROFILE")) {
        pf->name = s_getenv("AWS_PROFILE");
        pf->name_var = "AWS_PROFILE";
    } else {
        pf->name = "default";
    }
    if (strlen(pf->name) > 256 || strpbrk(pf->name, "[]\n\r"))
        return sl__fail(SL_EINVAL, "%s: profile name '%.100s' is not usable", pf->name_var ? pf->name_var : "profile",
                        pf->name);
    s_file_paths(pf->creds_path, sizeof(pf->creds_path), pf->config_path, sizeof(pf->config_path));
    int rc =
        s_load_shared(pf->creds_path, s_getenv("AWS_SHARED_CREDENTIALS_FILE") ? "AWS_SHARED_CREDENTIALS_FILE" : NULL,
                      &pf->creds, &pf->creds_len);
    if (rc < 0)
        return rc;
    rc = s_load_shared(pf->config_path, s_getenv("AWS_CONFIG_FILE") ? "AWS_CONFIG_FILE" : NULL, &pf->config,
                       &pf->config_len);
    if (rc < 0)
        return rc;
    char scratch[8];
    if (pf->creds)
        sl__aws_ini_get(pf->creds, pf->creds_len, pf->name, "-", scratch, sizeof(scratch), &pf->in_creds);
    if (pf->config) {
        snprintf(pf->config_section, sizeof(pf->config_section), "profile %s", pf->name);
        sl__aws_ini_get(pf->config, pf->config_len, pf->config_section, "-", scratch, sizeof(scratch), &pf->in_config);
        if (!pf->in_config && strcmp(pf->name, "default") == 0) {
            snprintf(pf->config_section, sizeof(pf->config_section), "default");
            sl__aws_ini_get(pf->config, pf->config_len, pf->config_section, "-", scratch, sizeof(scratch),
                            &pf->in_config);
        }
    }
    return 0;
}

static const char *s_profile_via(const s_profile *pf) {
    return pf->name_var ? pf->name_var : "the default profile";
}

/* Static keys from one section of one file. Returns 1 (found, stored in *creds), 0 (no keys there) or fails. */
static int s_keys_from(const char *text, size_t len, const char *section, const char *path, const char *label,
                       sl__aws_credentials *creds) {
    char id[SL__AWS_KEY_ID_CAP + 8] = "", secret[SL__AWS_SECRET_CAP + 8] = "";
    char *token = malloc(SL__AWS_TOKEN_CAP + 8);
    if (!token)
        return sl__fail(SL_ENOMEM, "out of memory");
    token[0] = '\0';
    int rid = sl__aws_ini_get(text, len, section, "aws_access_key_id", id, sizeof(id), NULL);
    int rsec = sl__aws_ini_get(text, len, section, "aws_secret_access_key", secret, sizeof(secret), NULL);
    int rtok = sl__aws_ini_get(text, len, section, "aws_session_token", token, SL__AWS_TOKEN_CAP + 8, NULL);
    int rc = 0;
    char why[200] = "";
    if (rid <= 0 && rsec <= 0)
        goto done;
    if (rid <= 0 || rsec <= 0 || !*id || !*secret) {
        rc = sl__fail(SL_EINVAL, "%s: %s has %s but not %s", path, label,
                      rid > 0 && *id ? "aws_access_key_id" : "aws_secret_access_key",
                      rid > 0 && *id ? "aws_secret_access_key" : "aws_access_key_id");
        goto done;
    }
    if (rtok == SL_ETOOBIG) {
        rc = sl__fail(SL_EINVAL, "%s: %s: aws_session_token is longer than the %d bytes sluice takes", path, label,
                      SL__AWS_TOKEN_CAP - 1);
        goto done;
    }
    if (!s_set_field(creds->access_key_id, sizeof(creds->access_key_id), id, "aws_access_key_id", true, why,
                     sizeof(why)) ||
        !s_set_field(creds->secret_access_key, sizeof(creds->secret_access_key), secret, "aws_secret_access_key", true,
                     why, sizeof(why)) ||
        !s_set_field(creds->session_token, sizeof(creds->session_token), token, "aws_session_token", false, why,
                     sizeof(why))) {
        rc = sl__fail(SL_EINVAL, "%s: %s: %s", path, label, why);
        goto done;
    }
    creds->expires_s = 0;
    rc = 1;

done:
    OPENSSL_cleanse(secret, sizeof(secret));
    s_wipe_free_n(token, SL__AWS_TOKEN_CAP + 8);
    return rc;
}

static int s_alloc_creds(sl__aws_auth *auth) {
    auth->synced.creds = calloc(1, sizeof(*auth->synced.creds));
    return auth->synced.creds ? 0 : sl__fail(SL_ENOMEM, "out of memory");
}

/* The static keys of the profile in the credentials file (config_file false) or the config file. Returns 1 if found
 * (auth->file, section and source set), 0 if none, or fails. */
static int s_profile_keys(sl__aws_auth *auth, s_profile *pf, bool config_file) {
    char label[400];
    int rc = 0;
    if (!config_file && pf->in_creds) {
        snprintf(label, sizeof(label), "profile [%s]", pf->name);
        rc = s_keys_from(pf->creds, pf->creds_len, pf->name, pf->creds_path, label, auth->synced.creds);
        if (rc > 0) {
            auth->file = s_strdup(pf->creds_path);
            auth->section = s_strdup(pf->name);
            auth->source = s_printf("profile '%s' in %s (%s)", pf->name, pf->creds_path, s_profile_via(pf));
        }
    } else if (config_file && pf->in_config) {
        snprintf(label, sizeof(label), "[%s]", pf->config_section);
        rc = s_keys_from(pf->config, pf->config_len, pf->config_section, pf->config_path, label, auth->synced.creds);
        if (rc > 0) {
            auth->file = s_strdup(pf->config_path);
            auth->section = s_strdup(pf->config_section);
            auth->source = s_printf("profile '%s' in %s (%s)", pf->name, pf->config_path, s_profile_via(pf));
        }
    }
    if (rc > 0 && (!auth->file || !auth->section))
        return sl__fail(SL_ENOMEM, "out of memory");
    return rc;
}

/* The STS endpoint for web identity. */
static char *s_sts_url(const char *region) {
    const char *e = s_getenv("AWS_ENDPOINT_URL_STS");
    if (!e)
        e = s_getenv("AWS_ENDPOINT_URL");
    if (e) {
        size_t n = strlen(e);
        while (n && e[n - 1] == '/')
            n--;
        return s_printf("%.*s/", (int)n, e);
    }
    /* The China regions are in their own partition, under amazonaws.com.cn. */
    return s_printf("https://sts.%s.amazonaws.com%s/", region, strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
}

static int s_choose_web_identity(sl__aws_auth *auth, const char *token_file, const char *role, const char *session,
                                 const char *via) {
    if (!role || !*role)
        return sl__fail(SL_EINVAL, "%s names a web identity token file but no role ARN (set %s)", via,
                        strcmp(via, "AWS_WEB_IDENTITY_TOKEN_FILE") == 0 ? "AWS_ROLE_ARN" : "role_arn");
    auth->kind = S_WEB_IDENTITY;
    auth->token_file = s_strdup(token_file);
    auth->role_arn = s_strdup(role);
    auth->session_name = session && *session ? s_strdup(session) : s_printf("sluice-%lld", (long long)s_wall_s());
    auth->url = s_sts_url(auth->region);
    auth->source =
        s_printf("web identity (%s %s, role %s, STS at %s)", via, token_file, role, auth->url ? auth->url : "?");
    if (!auth->token_file || !auth->role_arn || !auth->session_name || !auth->url)
        return sl__fail(SL_ENOMEM, "out of memory");
    if (strspn(auth->session_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@-_") !=
            strlen(auth->session_name) ||
        strlen(auth->session_name) < 2 || strlen(auth->session_name) > 64)
        return sl__fail(SL_EINVAL,
                        "role session name '%.80s' is not 2 to 64 of [A-Za-z0-9+=,.@_-] "
                        "(AWS_ROLE_SESSION_NAME or role_session_name)",
                        auth->session_name);
    return 0;
}

/* True for the hosts the SDKs let AWS_CONTAINER_CREDENTIALS_FULL_URI reach over plain http. */
static bool s_container_host_ok(const char *url) {
    const char *h = url + strlen("http://");
    size_t n = strcspn(h, "/?#");
    char host[300];
    if (n >= sizeof(host))
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    char *at = strrchr(host, '@');
    if (at)
        return false;
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        if (!close)
            return false;
        *close = '\0';
        return strcmp(host + 1, "::1") == 0 || strcasecmp(host + 1, "fd00:ec2::23") == 0;
    }
    char *colon = strchr(host, ':');
    if (colon)
        *colon = '\0';
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0)
        return true;
    unsigned a, b, c, d;
    char tail;
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 && d < 256;
}

static int s_choose_container(sl__aws_auth *auth, const char *rel, const char *full) {
    auth->kind = S_CONTAINER;
    if (rel) {
        if (rel[0] != '/')
            return sl__fail(SL_EINVAL,
                            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=%.200s: not a path (it must start with '/')", rel);
        auth->url = s_printf("%s%s", S_CONTAINER_HOST, rel);
        auth->source = s_printf("container credentials at %s (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)",
                                auth->url ? auth->url : "?");
    } else {
        if (strncasecmp(full, "https://", 8) != 0 &&
            !(strncasecmp(full, "http://", 7) == 0 && s_container_host_ok(full)))
            return sl__fail(SL_EINVAL,
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI=%.200s: must be https, or http to a "
                            "loopback address or to 169.254.170.2 / 169.254.170.23 (as the AWS SDKs require)",
                            full);
        auth->url = s_strdup(full);
        auth->source = s_printf("container credentials at %s (AWS_CONTAINER_CREDENTIALS_FULL_URI)", full);
    }
    const char *tf = s_getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = s_getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (tf && !(auth->auth_token_file = s_strdup(tf)))
        return sl__fail(SL_ENOMEM, "out of memory");
    if (!tf && tok && !(auth->auth_token = s_strdup(tok)))
        return sl__fail(SL_ENOMEM, "out of memory");
    if (!auth->url || !auth->source)
        return sl__fail(SL_ENOMEM, "out of memory");
    return 0;
}

/* Profile settings that are chains of their own, not supported here: refused by name rather than ignored. */
static int s_profile_unsupported(s_profile *pf) {
    char v[S_VALUE_CAP];
    const char *keys[] = {"source_profile", "credential_source", "sso_start_url", "sso_session", "sso_account_id"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (s_config_get(pf, keys[i], v, sizeof(v)) > 0 ||
            (pf->in_creds && sl__aws_ini_get(pf->creds, pf->creds_len, pf->name, keys[i], v, sizeof(v), NULL) > 0))
            return sl__fail(SL_EINVAL,
                            "profile '%s' (%s, %s) uses %s, which sluice does not support (%s); export that "
                            "profile's credentials first (aws configure export-credentials --profile %s --format env)",
                            pf->name, pf->config_path, s_profile_via(pf), keys[i],
                            i < 2 ? "role chaining" : "IAM Identity Center", pf->name);
    }
    return 0;
}

static int s_choose(sl__aws_auth *auth, const sl__aws_auth_options *opts) {
    int rc = 0;
    s_profile *pf = calloc(1, sizeof(*pf));
    char *v = malloc(S_VALUE_CAP), *v2 = malloc(S_VALUE_CAP), *v3 = malloc(S_VALUE_CAP);
    if (!pf || !v || !v2 || !v3) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto done;
    }
    /* The files are read even for anonymous access and environment keys: the region and endpoint come from them. */
    if ((rc = s_profile_load(pf, opts)) < 0)
        goto done;

    /* Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1. */
    const char *r = s_getenv("AWS_REGION");
    const char *rsrc = "AWS_REGION";
    if (!r) {
        r = s_getenv("AWS_DEFAULT_REGION");
        rsrc = "AWS_DEFAULT_REGION";
    }
    if (r) {
        auth->region = s_strdup(r);
        auth->region_source = s_strdup(rsrc);
    } else if (s_config_get(pf, "region", v, S_VALUE_CAP) > 0 && *v) {
        auth->region = s_strdup(v);
        auth->region_source = s_printf("profile '%s' in %s", pf->name, pf->config_path);
    } else {
        auth->region = s_strdup(S_DEFAULT_REGION);
        auth->region_source = s_strdup("default");
    }
    if (!auth->region || !auth->region_source) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto done;
    }
    if (strlen(auth->region) > 63 ||
        strspn(auth->region, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
            strlen(auth->region)) {
        rc = sl__fail(SL_EINVAL, "region '%.80s' (%s) is not a region name", auth->region, auth->region_source);
        goto done;
    }
    auth->endpoint_url = s_strdup(s_config_get(pf, "endpoint_url", v, S_VALUE_CAP) > 0 ? v : "");
    if (!auth->endpoint_url) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto done;
    }

    if (opts && opts->anonymous) {
        auth->kind = S_ANONYMOUS;
        auth->source = s_strdup("no credentials (--no-sign-request)");
        goto done;
    }
    if ((rc = s_alloc_creds(auth)) < 0)
        goto done;

    /* 2. The environment; skipped for a profile named with --profile, as the AWS CLI skips it for --profile. */
    bool use_env = !(opts && opts->profile && *opts->profile);
    const char *id = s_getenv("AWS_ACCESS_KEY_ID"), *secret = s_getenv("AWS_SECRET_ACCESS_KEY");
    if (use_env && (id || secret)) {
        if (!id || !secret) {
            rc = sl__fail(SL_EINVAL, "%s is set but %s is not: set both, or neither",
                          id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                          id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
            goto done;
        }
        char why[200];
        sl__aws_credentials *c = auth->synced.creds;
        if (!s_set_field(c->access_key_id, sizeof(c->access_key_id), id, "AWS_ACCESS_KEY_ID", true, why, sizeof(why)) ||
            !s_set_field(c->secret_access_key, sizeof(c->secret_access_key), secret, "AWS_SECRET_ACCESS_KEY", true, why,
                         sizeof(why)) ||
            !s_set_field(c->session_token, sizeof(c->session_token), s_getenv("AWS_SESSION_TOKEN"), "AWS_SESSION_TOKEN",
                         false, why, sizeof(why))) {
            rc = sl__fail(SL_EINVAL, "environment: %s", why);
            goto done;
        }
        auth->kind = S_ENV;
        auth->source = s_printf("environment (AWS_ACCESS_KEY_ID%s)", c->session_token[0] ? ", AWS_SESSION_TOKEN" : "");
        goto done;
    }

    /* 3. Web identity from the environment. */
    const char *wif = s_getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    if (use_env && wif) {
        rc = s_choose_web_identity(auth, wif, s_getenv("AWS_ROLE_ARN"), s_getenv("AWS_ROLE_SESSION_NAME"),
                                   "AWS_WEB_IDENTITY_TOKEN_FILE");
        goto done;
    }

    /* 4. The profile. */
    if (pf->name_var && !pf->in_creds && !pf->in_config) {
        rc = sl__fail(SL_ENOENT, "profile '%s' (%s) is in neither %s nor %s (as [profile %s])", pf->name, pf->name_var,
                      pf->creds_path, pf->config_path, pf->name);
        goto done;
    }
    /* In botocore's order: the profile's web identity, its keys in the credentials file, its credential_process,
     * its keys in the config file. */
    if (pf->in_creds || pf->in_config) {
        if ((rc = s_profile_unsupported(pf)) < 0)
            goto done;
        if (s_config_get(pf, "web_identity_token_file", v, S_VALUE_CAP) > 0 && *v) {
            if (s_config_get(pf, "role_arn", v2, S_VALUE_CAP) <= 0)
                v2[0] = '\0';
            if (s_config_get(pf, "role_session_name", v3, S_VALUE_CAP) <= 0)
                v3[0] = '\0';
            char via[400];
            snprintf(via, sizeof(via), "profile '%s' web_identity_token_file", pf->name);
            rc = s_choose_web_identity(auth, v, v2, v3, via);
            goto done;
        }
        if ((rc = s_profile_keys(auth, pf, false)) != 0) {
            if (rc > 0) {
                auth->kind = S_FILE;
                rc = 0;
            }
            goto done;
        }
        if (s_config_get(pf, "credential_process", v, S_VALUE_CAP) > 0 && *v) {
            char words[1024];
            char *argv[S_MAX_ARGS];
            if ((rc = sl__aws_split_command(v, words, sizeof(words), argv, S_MAX_ARGS)) < 0) {
                rc = sl__fail(rc, "%s: profile '%s': credential_process: %s", pf->config_path, pf->name,
                              sl_last_error());
                goto done;
            }
            auth->kind = S_PROCESS;
            auth->command = s_strdup(v);
            auth->source =
                s_printf("credential_process of profile '%s' in %s (%s)", pf->name, pf->config_path, s_profile_via(pf));
            rc = auth->command ? 0 : sl__fail(SL_ENOMEM, "out of memory");
            goto done;
        }
        if ((rc = s_profile_keys(auth, pf, true)) != 0) {
            if (rc > 0) {
                auth->kind = S_FILE;
                rc = 0;
            }
            goto done;
        }
        if (s_config_get(pf, "role_arn", v, S_VALUE_CAP) > 0) {
            rc = sl__fail(SL_EINVAL,
                          "profile '%s' (%s) has role_arn but no web_identity_token_file: assuming a role "
                          "from other credentials is not supported",
                          pf->name, pf->config_path);
            goto done;
        }
        if (pf->name_var) {
            rc = sl__fail(SL_EINVAL,
                          "profile '%s' (%s) has no credentials: neither aws_access_key_id and "
                          "aws_secret_access_key (in %s or %s) nor credential_process nor web_identity_token_file",
                          pf->name, pf->name_var, pf->creds_path, pf->config_path);
            goto done;
        }
    }

    /* 5. Container credentials. */
    const char *rel = s_getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = s_getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (rel || full) {
        rc = s_choose_container(auth, rel, full);
        goto done;
    }

    /* 6. IMDSv2. */
    const char *disabled = s_getenv("AWS_EC2_METADATA_DISABLED");
    auth->tried = s_printf("the environment (AWS_ACCESS_KEY_ID), AWS_WEB_IDENTITY_TOKEN_FILE, profile '%s' in %s and "
                           "%s, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI",
                           pf->name, pf->creds_path, pf->config_path);
    if (!auth->tried) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto done;
    }
    if (disabled && strcasecmp(disabled, "true") == 0) {
        rc = sl__fail(SL_EACCES,
                      "no AWS credentials found: tried %s (and not the EC2 instance metadata service: "
                      "AWS_EC2_METADATA_DISABLED=true); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                      "AWS_PROFILE, or use --no-sign-request for a public bucket",
                      auth->tried);
        goto done;
    }
    const char *ep = s_getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (ep && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) {
        rc = sl__fail(SL_EINVAL, "AWS_EC2_METADATA_SERVICE_ENDPOINT=%.200s: not an http(s) URL", ep);
        goto done;
    }
    if (!ep)
        ep = S_IMDS_DEFAULT;
    size_t n = strlen(ep);
    while (n && ep[n - 1] == '/')
        n--;
    auth->kind = S_IMDS;
    auth->url = s_printf("%.*s", (int)n, ep);
    auth->source = s_printf("EC2 instance metadata at %.*s", (int)n, ep);
    rc = auth->url && auth->source ? 0 : sl__fail(SL_ENOMEM, "out of memory");

done:
    if (rc == 0 && !auth->source)
        rc = sl__fail(SL_ENOMEM, "out of memory");
    if (pf)
        s_profile_free(pf);
    free(pf);
    s_wipe_free_n(v, S_VALUE_CAP);
    s_wipe_free_n(v2, S_VALUE_CAP);
    s_wipe_free_n(v3, S_VALUE_CAP);
    return rc;
}

static bool s_streq(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool s_same_source(const sl__aws_auth *a, const sl__aws_auth *b) {
    return a->kind == b->kind && s_streq(a->source, b->source) && s_streq(a->url, b->url) &&
           s_streq(a->command, b->command) && s_streq(a->region, b->region) &&
           s_streq(a->auth_token_file, b->auth_token_file) && s_streq(a->auth_token, b->auth_token) &&
           s_streq(a->session_name, b->session_name) && s_streq(a->tried, b->tried);
}

static void s_free(sl__aws_auth *auth);

int sl__aws_auth_new(const sl__aws_auth_options *opts, sl__aws_auth **out) {
    *out = NULL;
    sl__aws_auth *auth = calloc(1, sizeof(*auth));
    if (!auth)
        return sl__fail(SL_ENOMEM, "out of memory");
    pthread_mutex_init(&auth->synced.lock, NULL);
    atomic_init(&auth->fetches, 0);
    atomic_init(&auth->attempts, 0);
    atomic_init(&auth->unreachable, false);
    auth->synced.rng = ((uint64_t)(uintptr_t)auth ^ (uint64_t)sl__now_ms() * 0x9E3779B97F4A7C15ull) | 1;
    int rc = s_choose(auth, opts);
    if (rc < 0)
        goto on_error;
    if (auth->kind == S_ENV || auth->kind == S_FILE) {
        auth->synced.have = true;
        auth->synced.serial = 1;
        auth->synced.creds->serial = 1;
    }
    if (auth->kind == S_PROCESS || auth->kind == S_WEB_IDENTITY || auth->kind == S_CONTAINER || auth->kind == S_IMDS) {
        pthread_mutex_lock(&s_shared_lock);
        sl__aws_auth *same = s_shared;
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
    s_free(auth);
    return rc;
}

void sl__aws_auth_destroy(sl__aws_auth *auth) {
    if (!auth)
        return;
    bool last = true;
    pthread_mutex_lock(&s_shared_lock);
    if (auth->refs > 0) {
        last = --auth->refs == 0;
        for (sl__aws_auth **p = &s_shared; last && *p; p = &(*p)->next) {
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

static void s_free(sl__aws_auth *auth) {
    sl__http_destroy(auth->synced.http);
    s_wipe_free_n(auth->synced.creds, sizeof(*auth->synced.creds));
    s_wipe_free(auth->synced.rejected_secret);
    s_wipe_free(auth->synced.rejected_token);
    s_wipe_free(auth->synced.sent_token);
    s_wipe_free(auth->auth_token);
    free(auth->source);
    free(auth->region);
    free(auth->region_source);
    free(auth->endpoint_url);
    free(auth->file);
    free(auth->section);
    free(auth->command);
    free(auth->token_file);
    free(auth->role_arn);
    free(auth->session_name);
    free(auth->url);
    free(auth->auth_token_file);
    free(auth->tried);
    pthread_mutex_destroy(&auth->synced.lock);
    free(auth);
}

const char *sl__aws_auth_source(const sl__aws_auth *auth) {
    return auth && auth->source ? auth->source : "no credentials";
}

const char *sl__aws_auth_region(const sl__aws_auth *auth) {
    return auth && auth->region ? auth->region : S_DEFAULT_REGION;
}

const char *sl__aws_auth_region_source(const sl__aws_auth *auth) {
    return auth && auth->region_source ? auth->region_source : "default";
}

const char *sl__aws_auth_endpoint_url(const sl__aws_auth *auth) {
    return auth && auth->endpoint_url ? auth->endpoint_url : "";
}

bool sl__aws_auth_anonymous(const sl__aws_auth *auth) {
    return auth && auth->kind == S_ANONYMOUS;
}

unsigned long sl__aws_auth_fetches(const sl__aws_auth *auth) {
    return atomic_load(&((sl__aws_auth *)auth)->fetches);
}

bool sl__aws_auth_unreachable(sl__aws_auth *auth) {
    return auth && atomic_load(&auth->unreachable);
}

/* ---- the secret filter ------------------------------------------------------------------------------------------ */

/* True if text quotes the secret: all of it, or, for a long one, any 16 bytes of it in a row. */
static bool s_quotes(const char *text, const char *secret) {
    size_t len = secret ? strlen(secret) : 0;
    if (len < 4)
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

/* A credential this process never held: a secret-bearing name followed by a value of 8 characters or more. */
static bool s_credential_quoted(const char *text) {
    static const char *const names[] = {"secretaccesskey", "aws_secret_access_key", "x-amz-security-token",
                                        "sessiontoken",    "aws_session_token",     "bearer"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t nl = strlen(names[i]);
        for (const char *p = text; (p = strcasestr(p, names[i])) != NULL; p += nl) {
            const char *q = p + nl;
            while (*q == ' ' || *q == '\t' || *q == '=' || *q == ':' || *q == '"' || *q == '\'' || *q == '>')
                q++;
            size_t n = 0;
            while ((unsigned char)q[n] > 0x20 && (unsigned char)q[n] < 0x7f && q[n] != ',' && q[n] != '"' &&
                   q[n] != '\'' && q[n] != ';' && q[n] != '<')
                n++;
            if (n >= 8)
                return true;
        }
    }
    return false;
}

/* Called with the lock held. */
static bool s_mentions_secret(const sl__aws_auth *auth, const char *text) {
    const sl__aws_credentials *c = auth->synced.creds;
    const char *secrets[] = {c ? c->secret_access_key : NULL, c ? c->session_token : NULL, auth->synced.rejected_secret,
                             auth->synced.rejected_token,     auth->synced.sent_token,     auth->auth_token};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (secrets[i] && s_quotes(text, secrets[i]))
            return true;
    return s_credential_quoted(text);
}

bool sl__aws_auth_mentions_secret(sl__aws_auth *auth, const char *text) {
    if (!text || !*text)
        return false;
    if (!auth)
        return s_credential_quoted(text);
    pthread_mutex_lock(&auth->synced.lock);
    bool found = s_mentions_secret(auth, text);
    pthread_mutex_unlock(&auth->synced.lock);
    return found;
}

/* ---- fetching --------------------------------------------------------------------------------------------------- */

static int s_status_code(long status) {
    if (status == 400 || status == 401 || status == 403)
        return SL_EACCES;
    if (status == 404)
        return SL_ENOENT;
    return SL_EIO;
}

/* Reads a token file (web identity, container authorization) into a new string, trimmed. Fails naming the file and
 * the variable. */
static int s_read_token(const char *path, const char *what, char **out) {
    char *data = NULL;
    size_t len = 0;
    int err = s_read_file(path, S_MAX_FILE_BYTES, &data, &len);
    if (err == EFBIG)
        return sl__fail(SL_EINVAL, "%s %s: larger than %zu bytes, not a token", what, path, S_MAX_FILE_BYTES);
    if (err)
        return sl__fail(sl__errno_to_sl(err), "%s %s: cannot read: %s", what, path, sl__errno_text(err));
    char *s = data;
    size_t n = len;
    while (n && s_space(s[n - 1]))
        n--;
    while (n && s_space(*s)) {
        s++;
        n--;
    }
    s[n] = '\0';
    int rc = 0;
    if (n == 0)
        rc = sl__fail(SL_EINVAL, "%s %s: the file is empty", what, path);
    else if (!s_visible(s))
        rc = sl__fail(SL_EINVAL, "%s %s: not a token (one line of printable characters expected)", what, path);
    else if (!(*out = s_strdup(s)))
        rc = sl__fail(SL_ENOMEM, "out of memory");
    s_wipe_free_n(data, len);
    return rc;
}

/* What a failed answer's body says, one line, filtered; "" when nothing usable. Called with the lock held. */
static void s_server_says(const sl__aws_auth *auth, const sl__http_response *resp, char *msg, size_t cap) {
    msg[0] = '\0';
    if (!resp->body || resp->body_len == 0)
        return;
    char said[400] = "";
    char code[128], message[300];
    sl__aws_credentials scratch;
    if (sl__aws_parse_sts_xml(resp->body, resp->body_len, &scratch, code, sizeof(code), message, sizeof(message)) ==
            SL_EACCES &&
        (code[0] || message[0])) {
        snprintf(said, sizeof(said), "%.100s%s%.280s", code, code[0] && message[0] ? ": " : "", message);
    } else {
        json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
        const char *m = NULL, *c = NULL;
        if (json_is_object(root)) {
            c = s_json_str(root, "code");
            if (!c)
                c = s_json_str(root, "Code");
            m = s_json_str(root, "message");
            if (!m)
                m = s_json_str(root, "Message");
        }
        if (c || m)
            snprintf(said, sizeof(said), "%.100s%s%.250s", c ? c : "", c && m ? ": " : "", m ? m : "");
        else if (!root) {
            size_t n = 0;
            for (size_t i = 0; i < resp->body_len && n < 160; i++) {
                char ch = resp->body[i];
                if (ch == '\n' || ch == '\r')
                    break;
                said[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
            }
            said[n] = '\0';
        }
        json_decref(root);
    }
    OPENSSL_cleanse(&scratch, sizeof(scratch));
    s_one_line(said);
    if (said[0] && !s_mentions_secret(auth, said))
        snprintf(msg, cap, ": %s", said);
}

/* One request with a few quick retries (transport errors, retryable statuses). Called with the lock held. Returns
 * 0 with an answer in resp, SL_EIO with `reason` when none came, or another error. */
static int s_request(sl__aws_auth *auth, const sl__http_request *req, sl__http_response *resp, unsigned attempts,
                     char *reason, size_t reason_cap) {
    sl__retry_policy policy = {
        .max_attempts = attempts, .initial_delay_ms = 100, .max_delay_ms = 1000, .deadline_ms = 20000};
    int64_t started = sl__now_ms();
    int rc = 0;
    for (unsigned attempt = 1;; attempt++) {
        if (attempt > 1)
            s_sleep_ms(sl__retry_delay_ms(&policy, attempt - 1, &auth->synced.rng));
        memset(resp, 0, sizeof(*resp));
        rc = sl__http_perform(auth->synced.http, req, resp);
        bool last = attempt >= policy.max_attempts || sl__now_ms() - started >= policy.deadline_ms;
        if (rc == SL_EIO) {
            snprintf(reason, reason_cap, "%s", sl_last_error());
            if (last)
                break;
            continue;
        }
        if (rc < 0 || !sl__retry_status(resp->status) || last)
            break;
    }
    if (rc < 0 && rc != SL_EIO)
        snprintf(reason, reason_cap, "%s", sl_last_error());
    return rc;
}

static int s_ensure_http(sl__aws_auth *auth) {
    if (auth->synced.http)
        return 0;
    long connect_ms = auth->kind == S_IMDS ? 1000 : auth->kind == S_CONTAINER ? 2000 : 0;
    sl__http_options hopts = {.connect_timeout_ms = connect_ms, .stall_timeout_s = auth->kind == S_IMDS ? 2 : 30};
    auth->synced.http = sl__http_new(&hopts);
    return auth->synced.http ? 0 : SL_ENOMEM;
}

static void s_sbuf_escaped(char *buf, size_t cap, size_t *at, const char *s) {
    if (*at < cap)
        *at += sl__url_escape(buf + *at, cap - *at, s, strlen(s));
}

static int s_fetch_web_identity(sl__aws_auth *auth, sl__aws_credentials *out) {
    int rc = 0;
    char *token = NULL, *body = NULL;
    size_t body_cap = 0;
    sl__http_response resp;
    memset(&resp, 0, sizeof(resp));
    if ((rc = s_read_token(auth->token_file, "web identity token file", &token)) < 0)
        return rc;
    s_wipe_free(auth->synced.sent_token);
    auth->synced.sent_token = s_strdup(token);
    body_cap = strlen(token) * 3 + strlen(auth->role_arn) * 3 + 512;
    body = malloc(body_cap);
    if (!body) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto on_error;
    }
    size_t at = (size_t)snprintf(body, body_cap, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=");
    s_sbuf_escaped(body, body_cap, &at, auth->role_arn);
    at += (size_t)snprintf(body + at, body_cap - at, "&RoleSessionName=");
    s_sbuf_escaped(body, body_cap, &at, auth->session_name);
    at += (size_t)snprintf(body + at, body_cap - at, "&WebIdentityToken=");
    s_sbuf_escaped(body, body_cap, &at, token);
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8", "Accept: text/xml",
                             NULL};
    sl__http_request req = {.method = "POST",
                            .url = auth->url,
                            .headers = headers,
                            .body = body,
                            .body_len = at,
                            .body_cap = S_MAX_ANSWER_BYTES};
    char reason[512] = "";
    rc = s_request(auth, &req, &resp, 3, reason, sizeof(reason));
    if (rc == SL_EIO) {
        rc = sl__fail(SL_EIO, "%s: cannot reach STS at %s: %s", auth->source, auth->url, reason);
        goto on_error;
    }
    if (rc < 0) {
        rc = sl__fail(rc, "%s: %s", auth->source, reason);
        goto on_error;
    }
    char code[128], message[400];
    int prc = sl__aws_parse_sts_xml(resp.body ? resp.body : "", resp.body_len, out, code, sizeof(code), message,
                                    sizeof(message));
    if (resp.status != 200 || prc < 0) {
        char said[600] = "";
        if (prc == SL_EACCES && (code[0] || message[0])) {
            snprintf(said, sizeof(said), "%.100s%s%.280s", code, code[0] && message[0] ? ": " : "", message);
            if (s_mentions_secret(auth, said))
                snprintf(said, sizeof(said), "%s", code);
        } else if (resp.status == 200) {
            snprintf(said, sizeof(said), "%s", message);
        }
        const char *hint = "";
        if (strcmp(code, "InvalidIdentityToken") == 0 || strcmp(code, "ExpiredTokenException") == 0)
            hint = " (is the token file fresh, and does the role trust its issuer?)";
        else if (strcmp(code, "AccessDenied") == 0)
            hint = " (does the role's trust policy allow this identity?)";
        rc = sl__fail(resp.status == 200 ? SL_EIO : s_status_code(resp.status),
                      "%s: AssumeRoleWithWebIdentity failed with HTTP %ld%s%s%s", auth->source, resp.status,
                      said[0] ? ": " : "", said, hint);
        goto on_error;
    }

on_error:
    if (resp.body)
        OPENSSL_cleanse(resp.body, resp.body_len);
    s_wipe_free_n(body, body_cap);
    s_wipe_free(token);
    return rc;
}

/* Parses a JSON credentials answer (container, IMDS) into out, or fails naming the source. */
static int s_json_answer(sl__aws_auth *auth, const sl__http_response *resp, const char *url, sl__aws_credentials *out) {
    char why[300];
    if (sl__aws_parse_credentials_json(resp->body ? resp->body : "", resp->body_len, 0, out, why, sizeof(why)) < 0)
        return sl__fail(SL_EIO, "%s: %s answered 200 but not with usable credentials: %s", auth->source, url, why);
    return 0;
}

static int s_fetch_container(sl__aws_auth *auth, sl__aws_credentials *out) {
    int rc = 0;
    char *token = NULL, *header = NULL;
    sl__http_response resp;
    memset(&resp, 0, sizeof(resp));
    if (auth->auth_token_file) {
        if ((rc = s_read_token(auth->auth_token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token)) < 0)
            return rc;
    } else if (auth->auth_token) {
        if (!(token = s_strdup(auth->auth_token)))
            return sl__fail(SL_ENOMEM, "out of memory");
    }
    if (token) {
        s_wipe_free(auth->synced.sent_token);
        auth->synced.sent_token = s_strdup(token);
        if (!(header = s_printf("Authorization: %s", token))) {
            rc = sl__fail(SL_ENOMEM, "out of memory");
            goto on_error;
        }
    }
    const char *headers[] = {"Accept: application/json", header, NULL};
    sl__http_request req = {.method = "GET", .url = auth->url, .headers = headers, .body_cap = S_MAX_ANSWER_BYTES};
    char reason[512] = "";
    rc = s_request(auth, &req, &resp, 3, reason, sizeof(reason));
    if (rc == SL_EIO) {
        rc = sl__fail(SL_EIO, "%s: cannot reach it: %s", auth->source, reason);
        goto on_error;
    }
    if (rc < 0) {
        rc = sl__fail(rc, "%s: %s", auth->source, reason);
        goto on_error;
    }
    if (resp.status != 200) {
        char said[512];
        s_server_says(auth, &resp, said, sizeof(said));
        rc = sl__fail(s_status_code(resp.status), "%s: answered HTTP %ld%s%s", auth->source, resp.status, said,
                      resp.status == 401 || resp.status == 403
                          ? " (check AWS_CONTAINER_AUTHORIZATION_TOKEN or _TOKEN_FILE)"
                          : "");
        goto on_error;
    }
    rc = s_json_answer(auth, &resp, auth->url, out);

on_error:
    if (resp.body)
        OPENSSL_cleanse(resp.body, resp.body_len);
    s_wipe_free(header);
    s_wipe_free(token);
    return rc;
}

static int s_fetch_imds(sl__aws_auth *auth, sl__aws_credentials *out) {
    int rc = 0;
    char *token_header = NULL;
    char url[1200], reason[512] = "";
    sl__http_response resp;
    memset(&resp, 0, sizeof(resp));
    bool never = atomic_load(&auth->fetches) == 0;

    snprintf(url, sizeof(url), "%s/latest/api/token", auth->url);
    const char *put_headers[] = {"X-aws-ec2-metadata-token-ttl-seconds: " S_IMDS_TOKEN_TTL, NULL};
    sl__http_request put = {.method = "PUT", .url = url, .headers = put_headers, .body_cap = 4096};
    rc = s_request(auth, &put, &resp, 2, reason, sizeof(reason));
    if (rc == SL_EIO && never) {
        rc = sl__fail(SL_EACCES,
                      "no AWS credentials found: tried %s, and the EC2 instance metadata service at %s "
                      "(unreachable: %s); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or use "
                      "--no-sign-request for a public bucket",
                      auth->tried, auth->url, reason);
        goto on_error;
    }
    if (rc < 0) {
        rc = sl__fail(rc, "%s: cannot get a session token: %s", auth->source, reason);
        goto on_error;
    }
    if (resp.status != 200 || !resp.body || !resp.body_len) {
        rc = sl__fail(s_status_code(resp.status), "%s: PUT /latest/api/token answered HTTP %ld%s", auth->source,
                      resp.status,
                      resp.status == 403 ? " (IMDSv2 may be disabled, or the hop limit too low for a container)" : "");
        goto on_error;
    }
    size_t tl = resp.body_len;
    while (tl && s_space(resp.body[tl - 1]))
        tl--;
    resp.body[tl] = '\0';
    if (!s_visible(resp.body)) {
        rc = sl__fail(SL_EIO, "%s: the session token it answered is not printable", auth->source);
        goto on_error;
    }
    token_header = s_printf("X-aws-ec2-metadata-token: %s", resp.body);
    OPENSSL_cleanse(resp.body, resp.body_len);
    if (!token_header) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto on_error;
    }
    const char *headers[] = {token_header, NULL};

    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", auth->url);
    sl__http_request get_role = {.method = "GET", .url = url, .headers = headers, .body_cap = 4096};
    rc = s_request(auth, &get_role, &resp, 2, reason, sizeof(reason));
    if (rc < 0) {
        rc = sl__fail(rc, "%s: cannot get the role name: %s", auth->source, reason);
        goto on_error;
    }
    if (resp.status != 200 || !resp.body) {
        rc = sl__fail(s_status_code(resp.status), "%s: %s answered HTTP %ld%s", auth->source, url, resp.status,
                      resp.status == 404 ? " (does this instance have an IAM role attached?)" : "");
        goto on_error;
    }
    char role[256];
    size_t rl = strcspn(resp.body, "\r\n");
    if (rl == 0 || rl >= sizeof(role)) {
        rc = sl__fail(SL_EIO, "%s: no role name in its answer (does this instance have an IAM role attached?)",
                      auth->source);
        goto on_error;
    }
    memcpy(role, resp.body, rl);
    role[rl] = '\0';
    char escaped[800];
    sl__url_escape(escaped, sizeof(escaped), role, rl);
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", auth->url, escaped);
    sl__http_request get_creds = {.method = "GET", .url = url, .headers = headers, .body_cap = S_MAX_ANSWER_BYTES};
    rc = s_request(auth, &get_creds, &resp, 2, reason, sizeof(reason));
    if (rc < 0) {
        rc = sl__fail(rc, "%s: cannot get role %s's credentials: %s", auth->source, role, reason);
        goto on_error;
    }
    if (resp.status != 200) {
        rc = sl__fail(s_status_code(resp.status), "%s: %s answered HTTP %ld", auth->source, url, resp.status);
        goto on_error;
    }
    rc = s_json_answer(auth, &resp, url, out);

on_error:
    if (resp.body)
        OPENSSL_cleanse(resp.body, resp.body_len);
    s_wipe_free(token_header);
    return rc;
}

/* Runs the credential_process and parses its output. */
static int s_fetch_process(sl__aws_auth *auth, sl__aws_credentials *out) {
    int rc = 0;
    char words[1024];
    char *argv[S_MAX_ARGS];
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    pid_t pid = 0;
    char *data = NULL;
    size_t len = 0;
    sl__stderr_tail *tail = malloc(sizeof(*tail));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_ok = false, attr_ok = false;
    if (!tail || !(data = malloc(S_MAX_ANSWER_BYTES + 1))) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto on_error;
    }
    sl__stderr_tail_reset(tail);
    if ((rc = sl__aws_split_command(auth->command, words, sizeof(words), argv, S_MAX_ARGS)) < 0) {
        rc = sl__fail(rc, "%s: %s", auth->source, sl_last_error());
        goto on_error;
    }
    rc = 0;
    if (sl__pipe_cloexec(outp) < 0 || sl__pipe_cloexec(errp) < 0) {
        rc = sl__fail_errno(errno, "%s: cannot make a pipe", auth->source);
        goto on_error;
    }
    int e = posix_spawn_file_actions_init(&fa);
    fa_ok = e == 0;
    if (e == 0)
        e = posix_spawnattr_init(&attr);
    attr_ok = fa_ok && e == 0;
    if (e == 0)
        e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (e == 0)
        e = posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    if (e == 0)
        e = posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    /* As op_exec.c starts its children: nothing blocked, SIGPIPE at its default (the calling worker thread blocks
     * signals and the process may ignore SIGPIPE), its own process group so a timeout kills what it started too. */
    if (e == 0)
        e = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    if (e == 0)
        e = posix_spawnattr_setsigmask(&attr, &none);
    if (e == 0)
        e = posix_spawnattr_setsigdefault(&attr, &dfl);
    if (e == 0)
        e = posix_spawnattr_setpgroup(&attr, 0);
    if (e == 0)
        e = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    if (e != 0) {
        pid = 0;
        rc = sl__fail(e == ENOENT ? SL_ENOENT : sl__errno_to_sl(e), "%s: cannot run '%s': %s", auth->source, argv[0],
                      sl__errno_text(e));
        goto on_error;
    }
    sl__fd_close(&outp[1]);
    sl__fd_close(&errp[1]);

    int64_t deadline = sl__now_ms() + S_PROCESS_TIMEOUT_MS;
    bool too_long = false, timed_out = false;
    while (outp[0] >= 0 || errp[0] >= 0) {
        struct pollfd pfd[2] = {{.fd = outp[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
        int64_t left = deadline - sl__now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int n = poll(pfd, 2, (int)(left < 1000 ? left : 1000));
        if (n < 0 && errno != EINTR) {
            rc = sl__fail_errno(errno, "%s: poll", auth->source);
            goto on_error;
        }
        if (n <= 0)
            continue;
        if (pfd[0].revents) {
            char *dst = data + len;
            size_t room = S_MAX_ANSWER_BYTES + 1 - len;
            ssize_t r = read(outp[0], dst, room);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                sl__fd_close(&outp[0]);
            else if ((len += (size_t)r) > S_MAX_ANSWER_BYTES) {
                too_long = true;
                break;
            }
        }
        if (pfd[1].revents) {
            char buf[4096];
            ssize_t r = read(errp[0], buf, sizeof(buf));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                sl__fd_close(&errp[0]);
            else
                sl__stderr_tail_add(tail, buf, (size_t)r);
        }
    }
    if (too_long || timed_out)
        sl__child_signal_group(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = 0;
    if (timed_out) {
        rc = sl__fail(SL_ECHILD, "%s: '%s' did not finish within %d s (killed)", auth->source, argv[0],
                      S_PROCESS_TIMEOUT_MS / 1000);
        goto on_error;
    }
    if (too_long) {
        rc = sl__fail(SL_EINVAL, "%s: '%s' printed more than %zu bytes (killed)", auth->source, argv[0],
                      S_MAX_ANSWER_BYTES);
        goto on_error;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char how[200];
        sl__child_describe_status(status, argv[0], how, sizeof(how));
        const char *said = sl__stderr_tail_excerpt(tail, 600);
        bool show = said && *said && !s_mentions_secret(auth, said);
        rc = sl__fail(SL_EACCES, "%s: %s%s%s", auth->source, how, show ? ": " : "", show ? said : "");
        goto on_error;
    }
    char why[300];
    if (sl__aws_parse_credentials_json(data, len, 1, out, why, sizeof(why)) < 0) {
        rc = sl__fail(SL_EINVAL,
                      "%s: '%s' printed no usable credentials: %s (expected the JSON of Version 1: "
                      "AccessKeyId, SecretAccessKey, SessionToken, Expiration)",
                      auth->source, argv[0], why);
        goto on_error;
    }

on_error:
    if (pid > 0) {
        sl__child_signal_group(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    sl__fd_close(&outp[0]);
    sl__fd_close(&outp[1]);
    sl__fd_close(&errp[0]);
    sl__fd_close(&errp[1]);
    s_wipe_free_n(data, S_MAX_ANSWER_BYTES + 1);
    if (tail)
        s_wipe_free_n(tail, sizeof(*tail));
    return rc;
}

/* A file's keys, read again after they were rejected. */
static int s_fetch_file(sl__aws_auth *auth, sl__aws_credentials *out) {
    char *data = NULL;
    size_t len = 0;
    int err = s_read_file(auth->file, S_MAX_FILE_BYTES, &data, &len);
    if (err)
        return sl__fail(sl__errno_to_sl(err), "%s: cannot read it again: %s", auth->source, sl__errno_text(err));
    char label[400];
    snprintf(label, sizeof(label), "[%s]", auth->section);
    int rc = s_keys_from(data, len, auth->section, auth->file, label, out);
    s_wipe_free_n(data, len);
    if (rc == 0)
        rc = sl__fail(SL_EACCES, "%s: the keys are no longer there", auth->source);
    return rc < 0 ? rc : 0;
}

/* Fetches new credentials into auth->synced.creds. Called with the lock held. */
static int s_fetch_locked(sl__aws_auth *auth) {
    int rc = 0;
    sl__aws_credentials *fresh = calloc(1, sizeof(*fresh));
    if (!fresh)
        return sl__fail(SL_ENOMEM, "out of memory");
    if (auth->kind != S_PROCESS && auth->kind != S_FILE && (rc = s_ensure_http(auth)) < 0) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto on_error;
    }
    switch (auth->kind) {
    case S_FILE:
        rc = s_fetch_file(auth, fresh);
        break;
    case S_PROCESS:
        rc = s_fetch_process(auth, fresh);
        break;
    case S_WEB_IDENTITY:
        rc = s_fetch_web_identity(auth, fresh);
        break;
    case S_CONTAINER:
        rc = s_fetch_container(auth, fresh);
        break;
    case S_IMDS:
        rc = s_fetch_imds(auth, fresh);
        break;
    default:
        rc = sl__fail(SL_EINTERNAL, "%s: nothing to fetch", auth->source);
        break;
    }
    atomic_store(&auth->unreachable,
                 rc == SL_EIO && atomic_load(&auth->fetches) > 0 &&
                     (auth->kind == S_WEB_IDENTITY || auth->kind == S_CONTAINER || auth->kind == S_IMDS));
    if (rc < 0)
        goto on_error;
    /* Keys rejected once and handed back unchanged (a credentials file nobody refreshed). */
    if (auth->synced.rejected_secret && strcmp(fresh->secret_access_key, auth->synced.rejected_secret) == 0 &&
        s_streq(fresh->session_token, auth->synced.rejected_token ? auth->synced.rejected_token : "")) {
        rc = sl__fail(SL_EACCES,
                      "%s: these credentials were rejected as expired or invalid, and %s still gives the "
                      "same ones; refresh them",
                      auth->source, auth->kind == S_FILE ? "the file" : "it");
        goto on_error;
    }
    int64_t now = s_wall_s();
    if (fresh->expires_s && fresh->expires_s <= now) {
        char when[32];
        time_t t = (time_t)fresh->expires_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        rc = sl__fail(SL_EACCES,
                      "%s: the credentials it gave expired at %s, before they arrived (is this "
                      "machine's clock right?)",
                      auth->source, when);
        goto on_error;
    }
    fresh->serial = ++auth->synced.serial;
    s_wipe_free_n(auth->synced.creds, sizeof(*auth->synced.creds));
    auth->synced.creds = fresh;
    fresh = NULL;
    auth->synced.have = true;
    int64_t exp = auth->synced.creds->expires_s;
    if (exp) {
        int64_t margin = (exp - now) / 4;
        if (margin > S_MAX_MARGIN_S)
            margin = S_MAX_MARGIN_S;
        auth->synced.refresh_at_s = exp - margin;
    } else {
        auth->synced.refresh_at_s = 0;
    }
    atomic_fetch_add(&auth->fetches, 1);

on_error:
    s_wipe_free_n(fresh, sizeof(*fresh));
    return rc;
}

/* The credentials' strings and fields, not the whole 8 KiB struct: this runs before every request. */
static void s_copy_out(sl__aws_credentials *out, const sl__aws_credentials *in) {
    memcpy(out->access_key_id, in->access_key_id, strnlen(in->access_key_id, sizeof(in->access_key_id) - 1) + 1);
    memcpy(out->secret_access_key, in->secret_access_key,
           strnlen(in->secret_access_key, sizeof(in->secret_access_key) - 1) + 1);
    memcpy(out->session_token, in->session_token, strnlen(in->session_token, sizeof(in->session_token) - 1) + 1);
    out->expires_s = in->expires_s;
    out->serial = in->serial;
}

int sl__aws_auth_get(sl__aws_auth *auth, sl__aws_credentials *out) {
    if (auth->kind == S_ANONYMOUS) {
        /* The strings emptied, not the whole 8 KiB struct: this runs before every request. */
        out->access_key_id[0] = out->secret_access_key[0] = out->session_token[0] = '\0';
        out->expires_s = 0;
        out->serial = 0;
        return 0;
    }
    unsigned long seen = atomic_load(&auth->attempts);
    int rc = 0;
    pthread_mutex_lock(&auth->synced.lock);
    if (auth->synced.have && (auth->synced.refresh_at_s == 0 || s_wall_s() < auth->synced.refresh_at_s)) {
        s_copy_out(out, auth->synced.creds);
        goto done;
    }
    if (auth->kind == S_ENV) {
        rc = sl__fail(SL_EACCES,
                      "the credentials from the environment (AWS_ACCESS_KEY_ID%s) were rejected as "
                      "expired or invalid; provide fresh ones",
                      auth->synced.creds->session_token[0] ? ", AWS_SESSION_TOKEN" : "");
        goto done;
    }
    /* A fetch failed while this thread waited for the lock: report it rather than repeating it at once; and
     * credentials that never worked are not tried again for every object. */
    if (auth->synced.last_failed && (auth->synced.failed_for_good || atomic_load(&auth->attempts) != seen)) {
        rc = sl__fail(auth->synced.fail_code, "%s", auth->synced.fail_msg);
        goto done;
    }
    rc = s_fetch_locked(auth);
    auth->synced.last_failed = rc < 0;
    if (rc < 0) {
        auth->synced.fail_code = rc;
        /* Keys from a file that worked before may be rewritten any time: read again on the next need. */
        auth->synced.failed_for_good =
            atomic_load(&auth->fetches) == 0 && rc != SL_EIO && rc != SL_ECHILD && auth->kind != S_FILE;
        sl__text_cut(auth->synced.fail_msg, sizeof(auth->synced.fail_msg), sl_last_error(), strlen(sl_last_error()));
    }
    atomic_fetch_add(&auth->attempts, 1);
    if (rc == 0)
        s_copy_out(out, auth->synced.creds);

done:
    pthread_mutex_unlock(&auth->synced.lock);
    if (rc < 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

void sl__aws_auth_invalidate(sl__aws_auth *auth, unsigned long serial) {
    if (!auth || auth->kind == S_ANONYMOUS)
        return;
    pthread_mutex_lock(&auth->synced.lock);
    if (auth->synced.have && auth->synced.creds && auth->synced.creds->serial == serial) {
        s_wipe_free(auth->synced.rejected_secret);
        s_wipe_free(auth->synced.rejected_token);
        auth->synced.rejected_secret = s_strdup(auth->synced.creds->secret_access_key);
        auth->synced.rejected_token = s_strdup(auth->synced.creds->session_token);
        auth->synced.have = false;
        /* A rejection is news: the next get fetches even if the last fetch failed. */
        auth->synced.last_failed = false;
    }
    pthread_mutex_unlock(&auth->synced.lock);
}
