/* The reading side of the worker protocol: see worker_proto.h and docs/worker-protocol.md. */
#include "worker_proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sluice/store.h" /* sl_text_escape */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if s does not start one. */
static size_t s_utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0xFFu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

bool sl__wp_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = s_utf8_seq(u + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

sl__wp_got sl__wp_take_line(sl__wp_in *in) {
    while (in->pos < in->len) {
        unsigned char *start = in->buf + in->pos;
        size_t avail = in->len - in->pos;
        unsigned char *lf = memchr(start, '\n', avail);
        size_t n = lf ? (size_t)(lf - start) : avail;
        if (in->line_len + n + 1 > SL__WP_LINE_MAX)
            return SL__WP_TOO_LONG;
        memcpy(in->line + in->line_len, start, n);
        in->line_len += n;
        in->pos += n + (lf ? 1 : 0);
        if (lf) {
            in->line[in->line_len] = '\0';
            return SL__WP_LINE;
        }
    }
    return SL__WP_NONE;
}

json_t *sl__wp_parse_line(const char *line, size_t len, char *why, size_t cap) {
    if (!sl__wp_utf8_valid(line, len)) {
        snprintf(why, cap, "a line that is not UTF-8");
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!v || !json_is_object(v)) {
        char shown[100];
        size_t n = len < 60 ? len : 60;
        sl_text_escape(shown, sizeof(shown), line, n);
        snprintf(why, cap, "not a JSON object (%s): '%s%s'", v ? "another JSON value" : je.text, shown,
                 len > n ? "..." : "");
        json_decref(v);
        return NULL;
    }
    return v;
}

bool sl__wp_count(const json_t *v, uint64_t max, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* A chunk line or the final line, parsed: 0, or 1 with a->why. Takes v. */
static int s_line(sl__wp_answer *a, sl__wp_in *in, json_t *v) {
    json_t *chunk = json_object_get(v, "chunk");
    if (chunk) {
        uint64_t n;
        bool good = sl__wp_count(chunk, 2147483647u, &n);
        json_decref(v);
        if (!good) {
            snprintf(a->why, sizeof(a->why), "'chunk' is not an integer from 0 to 2147483647");
            return 1;
        }
        a->chunks++;
        a->chunk_left = n;
        a->in_chunk = n > 0;
        return 0;
    }
    json_t *ok = json_object_get(v, "ok");
    json_t *size = json_object_get(v, "size");
    json_t *result = json_object_get(v, "result");
    json_t *error = json_object_get(v, "error");
    uint64_t n = 0;
    if (!json_is_boolean(ok))
        snprintf(a->why, sizeof(a->why), "a final line without a boolean 'ok'");
    else if (json_is_false(ok) && !json_is_string(error))
        snprintf(a->why, sizeof(a->why), "'ok' false without an 'error' string");
    else if (json_is_true(ok) && size && !sl__wp_count(size, UINT64_MAX >> 1, &n))
        snprintf(a->why, sizeof(a->why), "'size' is not an integer in range");
    else if (json_is_true(ok) && size && n != a->body)
        snprintf(a->why, sizeof(a->why), "a final 'size' of %" PRIu64 " after %" PRIu64 " bytes of chunks", n, a->body);
    else if (json_is_true(ok) && !size && a->chunks)
        snprintf(a->why, sizeof(a->why), "chunks followed by {\"ok\":true} without 'size'");
    else if (result && !json_is_object(result))
        snprintf(a->why, sizeof(a->why), "'result' is not an object");
    else
        a->why[0] = '\0';
    if (a->why[0]) {
        json_decref(v);
        return 1;
    }
    a->final = true;
    memcpy(a->final_text, in->line, in->line_len + 1);
    a->final_len = in->line_len;
    a->ok = json_is_true(ok);
    a->has_body = a->ok && size != NULL;
    a->final_json = v;
    return 0;
}

int sl__wp_answer_feed(sl__wp_answer *a, sl__wp_in *in, sl__wp_deliver_fn deliver, void *ctx) {
    while (!a->final && in->pos < in->len) {
        a->begun = true;
        if (a->in_chunk) {
            size_t avail = in->len - in->pos;
            size_t n = a->chunk_left < avail ? (size_t)a->chunk_left : avail;
            a->body += n;
            int rc = deliver(ctx, in->buf + in->pos, n);
            if (rc < 0)
                return rc;
            in->pos += n;
            a->chunk_left -= n;
            a->in_chunk = a->chunk_left > 0;
            continue;
        }
        sl__wp_got g = sl__wp_take_line(in);
        if (g == SL__WP_TOO_LONG) {
            snprintf(a->why, sizeof(a->why), "a line longer than %d bytes", SL__WP_LINE_MAX);
            return 1;
        }
        if (g != SL__WP_LINE)
            return 0;
        json_t *v = sl__wp_parse_line(in->line, in->line_len, a->why, sizeof(a->why));
        int rc = v ? s_line(a, in, v) : 1;
        in->line_len = 0;
        if (rc)
            return rc;
    }
    return 0;
}

/* Raw JSON scanning of a line jansson has already accepted: the end of the value that starts at s[i]. */
static size_t s_skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

static size_t s_skip_value(const char *s, size_t n, size_t i) {
    if (i < n && s[i] == '"') {
        for (i++; i < n && s[i] != '"'; i++)
            if (s[i] == '\\')
                i++;
        return i + 1;
    }
    if (i < n && (s[i] == '{' || s[i] == '[')) {
        int depth = 0;
        for (; i < n; i++) {
            if (s[i] == '"') {
                i = s_skip_value(s, n, i) - 1;
            } else if (s[i] == '{' || s[i] == '[') {
                depth++;
            } else if ((s[i] == '}' || s[i] == ']') && --depth == 0) {
                return i + 1;
            }
        }
        return n;
    }
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t')
        i++;
    return i;
}

/* Calls fn for each member of the object at s[i]: its name's raw token and its value's raw text. */
static int s_each_member(const char *s, size_t n, size_t i, sl__wp_member_fn fn, void *ctx) {
    i = s_skip_ws(s, n, i);
    if (i >= n || s[i] != '{')
        return 0;
    i = s_skip_ws(s, n, i + 1);
    while (i < n && s[i] == '"') {
        size_t name = i, name_end = s_skip_value(s, n, i);
        i = s_skip_ws(s, n, name_end);
        i = s_skip_ws(s, n, i + 1); /* the ':' */
        size_t value = i, value_end = s_skip_value(s, n, i);
        int rc = fn(ctx, s + name, name_end - name, s + value, value_end - value);
        if (rc)
            return rc;
        i = s_skip_ws(s, n, value_end);
        if (i < n && s[i] == ',')
            i = s_skip_ws(s, n, i + 1);
    }
    return 0;
}

static bool s_name_is(const char *name, size_t len, const char *want) {
    json_t *v = json_loadb(name, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    bool is = json_is_string(v) && strcmp(json_string_value(v), want) == 0;
    json_decref(v);
    return is;
}

static int s_find_result(void *ctx, const char *name, size_t name_len, const char *value, size_t value_len) {
    (void)value_len;
    if (!s_name_is(name, name_len, "result"))
        return 0;
    *(const char **)ctx = value;
    return 1;
}

int sl__wp_result_members(const char *text, size_t len, sl__wp_member_fn fn, void *ctx) {
    const char *value = NULL;
    s_each_member(text, len, 0, s_find_result, &value);
    if (!value)
        return 0;
    return s_each_member(text, len, (size_t)(value - text), fn, ctx);
}
