/* The failure log reader: a strict little JSON parser for one object per line, keeping only the "key" string.
 * Nothing but the current line and its key is held, so a log of any length is read in the same memory. */
#include "failure_log.h"

#include "fail.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_DEPTH 16 /* nesting allowed in members other than "key" */

struct sl__faillog {
    FILE *f;
    char *path;
    char *line; /* SL__FAILLOG_LINE_CAP bytes */
    char key[SL__FAILLOG_KEY_CAP];
    uint64_t line_no;
};

typedef struct s_parser {
    const char *p, *end;
    char *why;
    size_t why_cap;
} s_parser;

static int s_bad(s_parser *ps, const char *fmt, const char *arg) {
    snprintf(ps->why, ps->why_cap, fmt, arg);
    return SL_EINVAL;
}

static void s_ws(s_parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r'))
        ps->p++;
}

static int s_hex4(s_parser *ps, unsigned *out) {
    if (ps->end - ps->p < 4)
        return s_bad(ps, "%s", "a \\u escape needs four hex digits");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return s_bad(ps, "%s", "a \\u escape needs four hex digits");
        v = v * 16 + d;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

/* Appends to out (when not NULL) without passing cap - 1. */
static int s_emit(s_parser *ps, char *out, size_t cap, size_t *n, const char *bytes, size_t len) {
    if (!out)
        return 0;
    if (*n + len >= cap)
        return s_bad(ps, "%s", "key too long");
    memcpy(out + *n, bytes, len);
    *n += len;
    return 0;
}

static size_t s_utf8(unsigned cp, char *b) {
    if (cp < 0x80) {
        b[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at ps->p (the opening quote); decoded into out (NULL: only checked). */
static int s_string(s_parser *ps, char *out, size_t cap, size_t *out_len) {
    size_t n = 0;
    ps->p++;
    for (;;) {
        if (ps->p >= ps->end)
            return s_bad(ps, "%s", "unterminated string");
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return s_bad(ps, "%s", "raw control character inside a string");
        if (c != '\\') {
            int rc = s_emit(ps, out, cap, &n, (const char *)&c, 1);
            if (rc < 0)
                return rc;
            continue;
        }
        if (ps->p >= ps->end)
            return s_bad(ps, "%s", "unterminated string");
        char e = *ps->p++, b[4];
        size_t blen = 1;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            b[0] = e;
            break;
        case 'b':
            b[0] = '\b';
            break;
        case 'f':
            b[0] = '\f';
            break;
        case 'n':
            b[0] = '\n';
            break;
        case 'r':
            b[0] = '\r';
            break;
        case 't':
            b[0] = '\t';
            break;
        case 'u': {
            unsigned cp;
            int rc = s_hex4(ps, &cp);
            if (rc < 0)
                return rc;
            if (cp <= 0xFF) {
                /* sluice writes a byte it cannot show as UTF-8 this way: it stands for the byte itself. */
                b[0] = (char)cp;
            } else if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
                    return s_bad(ps, "%s", "a high surrogate escape without its low half");
                ps->p += 2;
                if ((rc = s_hex4(ps, &lo)) < 0)
                    return rc;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return s_bad(ps, "%s", "a high surrogate escape without its low half");
                blen = s_utf8(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), b);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return s_bad(ps, "%s", "a lone low surrogate escape");
            } else {
                blen = s_utf8(cp, b);
            }
            break;
        }
        default:
            return s_bad(ps, "%s", "unknown escape in a string");
        }
        if (out && blen == 1 && b[0] == '\0')
            return s_bad(ps, "%s", "a key cannot contain a NUL byte (\\u0000)");
        int rc = s_emit(ps, out, cap, &n, b, blen);
        if (rc < 0)
            return rc;
    }
    if (out)
        out[n] = '\0';
    if (out_len)
        *out_len = n;
    return 0;
}

static bool s_literal(s_parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static int s_number(s_parser *ps) {
    const char *start = ps->p;
    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    size_t digits = 0;
    while (ps->p < ps->end && ((*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.' || *ps->p == 'e' || *ps->p == 'E' ||
                               *ps->p == '+' || *ps->p == '-')) {
        digits += *ps->p >= '0' && *ps->p <= '9';
        ps->p++;
    }
    if (!digits) {
        ps->p = start;
        return s_bad(ps, "%s", "expected a value (string, number, true, false, null, object or array)");
    }
    return 0;
}

static int s_value(s_parser *ps, int depth);

/* An object or array at ps->p whose members are only checked. */
static int s_container(s_parser *ps, int depth) {
    char close = *ps->p == '{' ? '}' : ']';
    bool object = close == '}';
    if (depth >= S_MAX_DEPTH)
        return s_bad(ps, "%s", "nested too deeply");
    ps->p++;
    s_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        int rc;
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"')
                return s_bad(ps, "%s", "expected a member name in quotes");
            if ((rc = s_string(ps, NULL, 0, NULL)) < 0)
                return rc;
            s_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return s_bad(ps, "%s", "expected ':' after a member name");
            ps->p++;
            s_ws(ps);
        }
        if ((rc = s_value(ps, depth + 1)) < 0)
            return rc;
        s_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            s_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return 0;
        }
        return s_bad(ps, "expected ',' or '%s'", object ? "}" : "]");
    }
}

static int s_value(s_parser *ps, int depth) {
    if (ps->p >= ps->end)
        return s_bad(ps, "%s", "expected a value, found the end of the line");
    switch (*ps->p) {
    case '"':
        return s_string(ps, NULL, 0, NULL);
    case '{':
    case '[':
        return s_container(ps, depth);
    default:
        if (s_literal(ps, "true") || s_literal(ps, "false") || s_literal(ps, "null"))
            return 0;
        return s_number(ps);
    }
}

int sl__faillog_parse_line(const char *line, size_t len, char *key_buf, size_t key_cap, size_t *key_len, char *why,
                           size_t why_cap) {
    s_parser ps = {.p = line, .end = line + len, .why = why, .why_cap = why_cap};
    bool have_key = false;
    s_ws(&ps);
    if (ps.p >= ps.end || *ps.p != '{')
        return s_bad(&ps, "%s", "expected a JSON object starting with '{'");
    ps.p++;
    s_ws(&ps);
    bool first = true;
    while (!(ps.p < ps.end && *ps.p == '}' && first)) {
        char name[8];
        size_t name_len = 0;
        int rc;
        if (ps.p >= ps.end || *ps.p != '"')
            return s_bad(&ps, "%s", "expected a member name in quotes");
        /* Only "key" matters: a longer name fails to fit in name[] and is checked instead. */
        const char *name_start = ps.p;
        rc = s_string(&ps, name, sizeof(name), &name_len);
        if (rc < 0) {
            ps.p = name_start;
            if ((rc = s_string(&ps, NULL, 0, NULL)) < 0)
                return rc;
            name_len = 0;
            name[0] = '\0';
        }
        s_ws(&ps);
        if (ps.p >= ps.end || *ps.p != ':')
            return s_bad(&ps, "%s", "expected ':' after a member name");
        ps.p++;
        s_ws(&ps);
        if (name_len == 3 && memcmp(name, "key", 3) == 0) {
            if (have_key)
                return s_bad(&ps, "%s", "two \"key\" members");
            if (ps.p >= ps.end || *ps.p != '"')
                return s_bad(&ps, "%s", "\"key\" must be a string");
            if ((rc = s_string(&ps, key_buf, key_cap, key_len)) < 0)
                return rc;
            if (*key_len == 0)
                return s_bad(&ps, "%s", "\"key\" is empty");
            have_key = true;
        } else if ((rc = s_value(&ps, 1)) < 0) {
            return rc;
        }
        s_ws(&ps);
        first = false;
        if (ps.p < ps.end && *ps.p == ',') {
            ps.p++;
            s_ws(&ps);
            continue;
        }
        if (ps.p < ps.end && *ps.p == '}')
            break;
        return s_bad(&ps, "%s", "expected ',' or '}'");
    }
    ps.p++;
    s_ws(&ps);
    if (ps.p != ps.end)
        return s_bad(&ps, "%s", "text after the closing '}' (one JSON object per line)");
    if (!have_key)
        return s_bad(&ps, "%s", "no \"key\" member");
    return 0;
}

int sl__faillog_open(const char *path, sl__faillog **out) {
    *out = NULL;
    sl__faillog *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path)) || !(r->line = malloc(SL__FAILLOG_LINE_CAP))) {
        sl__faillog_close(r);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    if (!(r->f = fopen(path, "re"))) {
        int e = errno;
        sl__faillog_close(r);
        sl__fail_errno(e, "cannot read the failure log %s", path);
        return SL_EINVAL;
    }
    *out = r;
    return 0;
}

int sl__faillog_next(sl__faillog *r, const char **key, size_t *len) {
    for (;;) {
        size_t n = 0;
        int c;
        bool too_long = false, nul = false;
        while ((c = getc(r->f)) != EOF && c != '\n') {
            if (c == '\0')
                nul = true;
            if (n + 1 < SL__FAILLOG_LINE_CAP)
                r->line[n++] = (char)c;
            else
                too_long = true;
        }
        if (c == EOF && ferror(r->f))
            return sl__fail_errno(errno, "cannot read the failure log %s", r->path);
        if (c == EOF && n == 0 && !too_long)
            return 0;
        r->line_no++;
        if (too_long)
            return sl__fail(SL_EINVAL, "%s line %llu: longer than %zu bytes; not a failure log line", r->path,
                            (unsigned long long)r->line_no, SL__FAILLOG_LINE_CAP);
        if (nul)
            return sl__fail(SL_EINVAL, "%s line %llu: contains a NUL byte; not a failure log line", r->path,
                            (unsigned long long)r->line_no);
        size_t i = 0;
        while (i < n && (r->line[i] == ' ' || r->line[i] == '\t' || r->line[i] == '\r'))
            i++;
        if (i == n)
            continue;
        char why[128];
        if (sl__faillog_parse_line(r->line, n, r->key, sizeof(r->key), len, why, sizeof(why)) < 0)
            return sl__fail(SL_EINVAL,
                            "%s line %llu: %s (each line must be one JSON object with a \"key\" string, as "
                            "--failures writes)",
                            r->path, (unsigned long long)r->line_no, why);
        *key = r->key;
        return 1;
    }
}

uint64_t sl__faillog_line(const sl__faillog *r) {
    return r->line_no;
}

void sl__faillog_close(sl__faillog *r) {
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r->path);
    free(r->line);
    free(r);
}
