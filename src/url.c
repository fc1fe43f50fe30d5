/* Parsing the URLs and paths users give on the command line into sl_url. */
#include "fail.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUPPORTED_FORMS "gs://BUCKET/PREFIX, s3://BUCKET/PREFIX, file:///PATH or a local path"

/* The most a message shows of one piece of the user's text (escaped), so that the explanation that follows always
 * fits in the 1 KiB message. */
#define SHOWN_MAX 200
#define SHOWN_CAP (SHOWN_MAX + 4)

/* The n bytes at `text` made safe for a one-line message in buf (SHOWN_CAP bytes): escaped, and if very long, cut
 * at a character boundary and marked with "...". */
static const char *s_show_n(const char *text, size_t n, char *buf) {
    size_t m = n < SHOWN_MAX ? n : SHOWN_MAX;
    while (m > 0 &&
           ((m < n && ((unsigned char)text[m] & 0xC0) == 0x80) || sl_text_escape(NULL, 0, text, m) > SHOWN_MAX))
        m--;
    sl_text_escape(buf, SHOWN_CAP, text, m);
    if (m < n)
        strcat(buf, "...");
    return buf;
}

static const char *s_show(const char *text, char *buf) {
    return s_show_n(text, strlen(text), buf);
}

static bool s_is_lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Why `b` (n bytes) is not a valid bucket name under the GCS rules (which also admit every valid S3 name), or
 * NULL if it is. */
static const char *s_bucket_problem(const char *b, size_t n) {
    size_t dots = 0, part = 0, longest_part = 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (c >= 'A' && c <= 'Z')
            return "bucket names are lowercase";
        if (!s_is_lower_alnum(c) && c != '-' && c != '_' && c != '.')
            return "only lowercase letters, digits, '-', '_' and '.' are allowed";
        if (c == '.') {
            if (i > 0 && b[i - 1] == '.')
                return "'..' is not allowed";
            dots++;
            part = 0;
        } else if (++part > longest_part) {
            longest_part = part;
        }
    }
    if (n < 3)
        return "shorter than 3 characters";
    if (!s_is_lower_alnum(b[0]) || !s_is_lower_alnum(b[n - 1]))
        return "must start and end with a letter or digit";
    if (!dots && n > 63)
        return "longer than 63 characters";
    if (n > 222)
        return "longer than 222 characters";
    if (longest_part > 63)
        return "a dot-separated part is longer than 63 characters";
    return NULL;
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

/* Decodes %XX escapes of `in` into a new string (*out, caller frees). */
static int s_percent_decode(const char *text, const char *in, char **out) {
    char shown[SHOWN_CAP];
    size_t n = strlen(in);
    char *d = malloc(n + 1);
    if (!d)
        return sl__fail(SL_ENOMEM, "%s: out of memory", s_show(text, shown));
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '%') {
            d[o++] = in[i];
            continue;
        }
        int hi = i + 1 < n ? s_hex(in[i + 1]) : -1;
        int lo = hi >= 0 && i + 2 < n ? s_hex(in[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            char esc[16];
            free(d);
            sl_text_escape(esc, sizeof(esc), in + i, n - i < 3 ? n - i : 3);
            return sl__fail(SL_EBADURL,
                            "%s: bad percent-escape '%s' (expected %% and two hex digits; write %%25 for '%%')",
                            s_show(text, shown), esc);
        }
        if (hi == 0 && lo == 0) {
            free(d);
            return sl__fail(SL_EBADURL, "%s: %%00 (a NUL byte) cannot be part of a path", s_show(text, shown));
        }
        d[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[o] = '\0';
    *out = d;
    return 0;
}

/* Whether the last component of `path` is "." or "..": such a path can only name a directory. */
static bool s_ends_in_dot_component(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strcmp(base, ".") == 0 || strcmp(base, "..") == 0;
}

/* Before a ".." is applied to full[0..*len) (an absolute path without "." or ".." components), makes that path
 * physical the way the kernel walks it: if its existing leading part goes through a symbolic link, that part is
 * replaced by its realpath, so that ".." then leaves the directory the link leads to (as `cat lnk/../x` does). The
 * components after it do not exist yet and are kept (a destination not created yet: they cannot be links). Paths
 * without links keep the user's spelling. The buffer has room for PATH_MAX more bytes. */
static int s_resolve_before_dotdot(const char *text, char *full, size_t *len) {
    char shown[SHOWN_CAP];
    char resolved[PATH_MAX];
    size_t keep = *len;
    for (;;) {
        char save = full[keep];
        full[keep] = '\0';
        char *r = keep >= PATH_MAX ? NULL : realpath(full, resolved);
        int e = keep >= PATH_MAX ? ENAMETOOLONG : errno;
        struct stat st;
        bool is_link = !r && e == ENOENT && lstat(full, &st) == 0;
        full[keep] = save;
        if (r)
            break;
        if (e == ENAMETOOLONG)
            return 0; /* no file can be reached through it anyway; the length check comes later */
        /* The path is the user's text (after the current directory): shown escaped, as the text is. */
        char shown_path[SHOWN_CAP];
        if (is_link)
            return sl__fail(SL_ENOENT, "%s: cannot resolve '..' after %s: a symbolic link to nothing",
                            s_show(text, shown), s_show_n(full, keep, shown_path));
        if (e != ENOENT)
            return sl__fail_errno(e, "%s: cannot resolve '..' after %s", s_show(text, shown),
                                  s_show_n(full, keep, shown_path));
        while (keep > 1 && full[keep - 1] != '/')
            keep--;
        if (keep > 1)
            keep--;
    }
    if (keep == *len) {
        /* ".." after a file is ENOTDIR to the kernel, not its directory. */
        struct stat st;
        char shown_path[SHOWN_CAP];
        if (stat(resolved, &st) == 0 && !S_ISDIR(st.st_mode))
            return sl__fail(SL_ENOTDIR, "%s: '..' follows %s, which is not a directory", s_show(text, shown),
                            s_show(resolved, shown_path));
    }
    size_t rl = strlen(resolved);
    if (rl == keep && memcmp(resolved, full, keep) == 0)
        return 0;
    if (rl == 1 && keep < *len)
        rl = 0; /* the root, then "/rest" */
    memmove(full + rl, full + keep, *len - keep);
    memcpy(full, resolved, rl);
    *len = rl + (*len - keep);
    if (*len == 0)
        full[(*len)++] = '/';
    return 0;
}

/* Makes `path` absolute (against the current directory) and normal: no "." or ".." components, no repeated '/', no
 * trailing '/' except for the root. A ".." is resolved the way the kernel resolves it (s_resolve_before_dotdot):
 * after a symbolic link it leaves the link's target, not the directory holding the link. */
static int s_normalise_path(const char *text, const char *path, char **out) {
    char shown[SHOWN_CAP];
    char *cwd = NULL;
    size_t cwd_len = 0;
    if (path[0] != '/') {
        cwd = malloc(PATH_MAX);
        if (!cwd)
            return sl__fail(SL_ENOMEM, "%s: out of memory", s_show(text, shown));
        if (!getcwd(cwd, PATH_MAX)) {
            int e = errno;
            free(cwd);
            if (e == ERANGE)
                return sl__fail(SL_ENAMETOOLONG, "%s: the current directory's path is longer than %d bytes",
                                s_show(text, shown), PATH_MAX - 1);
            return sl__fail_errno(e, "%s: cannot make the path absolute: current directory", s_show(text, shown));
        }
        cwd_len = strlen(cwd);
    }
    size_t n = strlen(path);
    char *full = malloc(cwd_len + 1 + n + 1 + PATH_MAX);
    if (!full) {
        free(cwd);
        return sl__fail(SL_ENOMEM, "%s: out of memory", s_show(text, shown));
    }
    size_t o = 0;
    full[o++] = '/';
    const char *parts[2] = {cwd ? cwd : "", path};
    for (int k = 0; k < 2; k++) {
        for (const char *p = parts[k]; *p;) {
            while (*p == '/')
                p++;
            const char *q = p;
            while (*q && *q != '/')
                q++;
            size_t len = (size_t)(q - p);
            if (len == 2 && p[0] == '.' && p[1] == '.') {
                int rc = o > 1 ? s_resolve_before_dotdot(text, full, &o) : 0;
                if (rc < 0) {
                    free(full);
                    free(cwd);
                    return rc;
                }
                while (o > 1 && full[o - 1] != '/')
                    o--;
                if (o > 1)
                    o--;
            } else if (len > 0 && !(len == 1 && p[0] == '.')) {
                if (o > 1)
                    full[o++] = '/';
                memcpy(full + o, p, len);
                o += len;
            }
            p = q;
        }
    }
    full[o] = '\0';
    free(cwd);
    if (o >= PATH_MAX) {
        free(full);
        return sl__fail(SL_ENAMETOOLONG, "%s: path longer than %d bytes", s_show(text, shown), PATH_MAX - 1);
    }
    *out = full;
    return 0;
}

static int s_parse_file(const char *text, const char *path, sl_url *out) {
    char *decoded = NULL;
    int rc = s_percent_decode(text, path, &decoded);
    if (rc < 0)
        return rc;
    size_t n = strlen(decoded);
    out->trailing_slash = (n > 0 && decoded[n - 1] == '/') || s_ends_in_dot_component(decoded);
    rc = s_normalise_path(text, decoded, &out->path);
    free(decoded);
    if (rc < 0)
        return rc;
    out->scheme = SL_SCHEME_FILE;
    return 0;
}

static int s_parse_plain(const char *text, sl_url *out) {
    size_t n = strlen(text);
    out->trailing_slash = text[n - 1] == '/' || s_ends_in_dot_component(text);
    int rc = s_normalise_path(text, text, &out->path);
    if (rc < 0)
        return rc;
    out->scheme = SL_SCHEME_FILE;
    return 0;
}

/* `rest` is what follows "gs://" or "s3://". */
static int s_parse_bucket_url(const char *text, sl_scheme scheme, const char *rest, sl_url *out) {
    char shown[SHOWN_CAP];
    const char *name = scheme == SL_SCHEME_GS ? "gs" : "s3";
    const char *slash = strchr(rest, '/');
    size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (blen == 0)
        return sl__fail(SL_EBADURL, "%s: missing bucket name (expected %s://BUCKET/PREFIX)", s_show(text, shown), name);
    const char *problem = s_bucket_problem(rest, blen);
    if (problem) {
        char bucket[SHOWN_CAP];
        return sl__fail(SL_EBADURL, "%s: invalid bucket name '%s': %s (expected %s://BUCKET/PREFIX)",
                        s_show(text, shown), s_show_n(rest, blen, bucket), problem, name);
    }
    out->bucket = strndup(rest, blen);
    /* Object names may legitimately contain "//" or end in '/': everything after the bucket's '/' is kept. */
    out->path = strdup(slash ? slash + 1 : "");
    if (!out->bucket || !out->path)
        return sl__fail(SL_ENOMEM, "%s: out of memory", s_show(text, shown));
    out->scheme = scheme;
    out->trailing_slash = text[strlen(text) - 1] == '/';
    return 0;
}

static int s_parse(const char *text, sl_url *out) {
    char shown[SHOWN_CAP];
    if (!text[0])
        return sl__fail(SL_EBADURL, "empty URL or path (expected " SUPPORTED_FORMS ")");
    /* RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), case-insensitive. */
    size_t k = 0;
    if ((text[0] >= 'a' && text[0] <= 'z') || (text[0] >= 'A' && text[0] <= 'Z')) {
        while ((text[k] >= 'a' && text[k] <= 'z') || (text[k] >= 'A' && text[k] <= 'Z') ||
               (text[k] >= '0' && text[k] <= '9') || text[k] == '+' || text[k] == '-' || text[k] == '.')
            k++;
    }
    if (k == 0 || text[k] != ':')
        return s_parse_plain(text, out);
    bool is_gs = k == 2 && strncasecmp(text, "gs", 2) == 0;
    bool is_s3 = k == 2 && strncasecmp(text, "s3", 2) == 0;
    bool is_file = k == 4 && strncasecmp(text, "file", 4) == 0;
    bool slashes = text[k + 1] == '/' && text[k + 2] == '/';
    if (is_gs || is_s3) {
        if (!slashes)
            return sl__fail(SL_EBADURL, "%s: expected %s://BUCKET/PREFIX", s_show(text, shown), is_gs ? "gs" : "s3");
        return s_parse_bucket_url(text, is_gs ? SL_SCHEME_GS : SL_SCHEME_S3, text + k + 3, out);
    }
    if (is_file) {
        if (!slashes) {
            /* RFC 8089 also allows the authority-less form "file:/path". */
            if (text[k + 1] == '/')
                return s_parse_file(text, text + k + 1, out);
            return sl__fail(SL_EBADURL, "%s: expected file:///ABSOLUTE/PATH", s_show(text, shown));
        }
        const char *host = text + k + 3;
        const char *path = strchr(host, '/');
        size_t host_len = path ? (size_t)(path - host) : strlen(host);
        if (host_len != 0 && !(host_len == 9 && strncasecmp(host, "localhost", 9) == 0)) {
            char h[SHOWN_CAP];
            return sl__fail(SL_EBADURL,
                            "%s: file URLs name local files only, not host '%s' (expected file:///PATH or "
                            "file://localhost/PATH)",
                            s_show(text, shown), s_show_n(host, host_len, h));
        }
        if (!path)
            return sl__fail(SL_EBADURL, "%s: missing path (expected file:///PATH)", s_show(text, shown));
        return s_parse_file(text, path, out);
    }
    if (!slashes)
        return s_parse_plain(text, out);
    return sl__fail(SL_EBADURL, "%s: unsupported URL scheme '%.*s://' (supported: " SUPPORTED_FORMS ")",
                    s_show(text, shown), (int)k, text);
}

int sl_url_parse(const char *text, sl_url *out) {
    if (!out)
        return sl__fail(SL_EINVAL, "sl_url_parse: NULL output");
    memset(out, 0, sizeof(*out));
    if (!text)
        return sl__fail(SL_EINVAL, "sl_url_parse: NULL URL");
    int rc = s_parse(text, out);
    if (rc < 0)
        sl_url_free(out);
    return rc;
}

void sl_url_free(sl_url *url) {
    if (!url)
        return;
    free(url->bucket);
    free(url->path);
    memset(url, 0, sizeof(*url));
}
