/* Output helpers: JSON strings, one-line text escapes, one object as a JSON line. */
#include "sluice/store.h"

#include "strbuf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Output goes to an sl__strbuf (strbuf.h): what fits is written, everything counted (snprintf's convention). */
static void s_putc(sl__strbuf *k, char c) {
    sl__strbuf_add(k, &c, 1);
}

static void s_put_hex_byte(sl__strbuf *k, const char *prefix, unsigned char b) {
    sl__strbuf_str(k, prefix);
    sl__strbuf_hex(k, b, 2);
}

/* NUL-terminates what fit; the whole length, as snprintf returns it. */
static size_t s_finish(sl__strbuf *k) {
    sl__strbuf_end(k);
    return k->len;
}

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF) at the
 * start of s, or 0 if s does not start with one. */
static size_t s_utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return need;
}

static void s_json_quote(sl__strbuf *k, const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    if (!s)
        len = 0;
    s_putc(k, '"');
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        const char *esc = NULL;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc) {
            sl__strbuf_str(k, esc);
            i++;
            continue;
        }
        if (c < 0x20 || c == 0x7F) {
            s_put_hex_byte(k, "\\u00", c);
            i++;
            continue;
        }
        size_t n = s_utf8_len(s + i, len - i);
        if (n == 0) {
            s_put_hex_byte(k, "\\u00", c);
            i++;
            continue;
        }
        sl__strbuf_add(k, (const char *)s + i, n);
        i += n;
    }
    s_putc(k, '"');
}

size_t sl_json_quote(char *buf, size_t cap, const char *s, size_t len) {
    sl__strbuf k = sl__strbuf_of(buf, cap);
    s_json_quote(&k, s, len);
    return s_finish(&k);
}

size_t sl_text_escape(char *buf, size_t cap, const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    sl__strbuf k = sl__strbuf_of(buf, cap);
    if (!s)
        len = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == '\\') {
            sl__strbuf_str(&k, "\\\\");
            i++;
        } else if (c == '\n') {
            sl__strbuf_str(&k, "\\n");
            i++;
        } else if (c == '\t') {
            sl__strbuf_str(&k, "\\t");
            i++;
        } else if (c == '\r') {
            sl__strbuf_str(&k, "\\r");
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            s_put_hex_byte(&k, "\\x", c);
            i++;
        } else {
            size_t n = s_utf8_len(s + i, len - i);
            /* Raw invalid bytes and C1 controls (U+0080..U+009F, C2 80..C2 9F) can drive a terminal (0x9B is CSI),
             * so they are shown as \xHH like the C0 controls. */
            if (n == 0 || (n == 2 && c == 0xC2 && s[i + 1] < 0xA0)) {
                s_put_hex_byte(&k, "\\x", c);
                i++;
            } else {
                sl__strbuf_add(&k, (const char *)s + i, n);
                i += n;
            }
        }
    }
    return s_finish(&k);
}

/* Appends "YYYY-MM-DDTHH:MM:SS.mmmZ" for ns since the epoch; false if the time cannot be broken down. */
static bool s_put_rfc3339_ms(sl__strbuf *k, int64_t ns) {
    int64_t sec = ns / 1000000000;
    int64_t rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return false;
    char tmp[64];
    int n = snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(rem / 1000000));
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return false;
    sl__strbuf_add(k, tmp, (size_t)n);
    return true;
}

size_t sl_object_format_json(const sl_object *obj, char *buf, size_t cap) {
    sl__strbuf k = sl__strbuf_of(buf, cap);
    if (!obj)
        return s_finish(&k);
    const char *key = obj->key ? obj->key : "";
    size_t key_len = obj->key ? obj->key_len : 0;
    if (obj->is_prefix) {
        sl__strbuf_str(&k, "{\"prefix\":");
        s_json_quote(&k, key, key_len);
        s_putc(&k, '}');
        return s_finish(&k);
    }
    sl__strbuf_str(&k, "{\"key\":");
    s_json_quote(&k, key, key_len);
    sl__strbuf_str(&k, ",\"size\":");
    sl__strbuf_u64(&k, obj->size);
    if (obj->mtime_ns != 0) {
        /* Built aside so a time that cannot be converted leaves no half-written field behind. */
        char when[64];
        sl__strbuf t = sl__strbuf_of(when, sizeof(when));
        if (s_put_rfc3339_ms(&t, obj->mtime_ns)) {
            s_finish(&t);
            sl__strbuf_str(&k, ",\"updated\":\"");
            sl__strbuf_str(&k, when);
            s_putc(&k, '"');
        }
    }
    if (obj->generation != 0) {
        sl__strbuf_str(&k, ",\"generation\":\"");
        sl__strbuf_i64(&k, obj->generation);
        s_putc(&k, '"');
    }
    if (obj->has_crc32c) {
        sl__strbuf_str(&k, ",\"crc32c\":\"");
        sl__strbuf_hex(&k, obj->crc32c, 8);
        s_putc(&k, '"');
    }
    if (obj->has_md5) {
        sl__strbuf_str(&k, ",\"md5\":\"");
        for (size_t i = 0; i < sizeof(obj->md5); i++)
            s_put_hex_byte(&k, "", obj->md5[i]);
        s_putc(&k, '"');
    }
    if (obj->content_encoding) {
        sl__strbuf_str(&k, ",\"content_encoding\":");
        s_json_quote(&k, obj->content_encoding, strlen(obj->content_encoding));
    }
    s_putc(&k, '}');
    return s_finish(&k);
}
