/* Text appended to a caller's buffer with overflow detection, for what is built on every request or object (header
 * lines, URLs, fingerprints): snprintf's format interpreter costs a few thousand instructions a call, these a few
 * per byte. Appends past the end are counted, not written; sl__strbuf_end NUL-terminates and says whether it all fit. */
#ifndef SLUICE_STRBUF_H
#define SLUICE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct sl__strbuf {
    char *buf;
    size_t cap, len;
} sl__strbuf;

/* A NULL buf only counts (cap taken as 0). */
static inline sl__strbuf sl__strbuf_of(char *buf, size_t cap) {
    return (sl__strbuf){.buf = buf, .cap = buf ? cap : 0, .len = 0};
}

static inline void sl__strbuf_add(sl__strbuf *b, const char *p, size_t n) {
    if (b->len < b->cap) {
        size_t room = b->cap - b->len;
        memcpy(b->buf + b->len, p, n < room ? n : room);
    }
    b->len += n;
}

static inline void sl__strbuf_str(sl__strbuf *b, const char *p) {
    sl__strbuf_add(b, p, strlen(p));
}

static inline void sl__strbuf_u64(sl__strbuf *b, uint64_t v) {
    char digits[20];
    size_t n = sizeof(digits);
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sl__strbuf_add(b, digits + n, sizeof(digits) - n);
}

static inline void sl__strbuf_i64(sl__strbuf *b, int64_t v) {
    if (v < 0)
        sl__strbuf_add(b, "-", 1);
    sl__strbuf_u64(b, v < 0 ? -(uint64_t)v : (uint64_t)v);
}

/* v as `digits` lower-case hex digits, zero-padded (at most 16). */
static inline void sl__strbuf_hex(sl__strbuf *b, uint64_t v, int digits) {
    static const char hex[] = "0123456789abcdef";
    char out[16];
    for (int i = digits - 1; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
    sl__strbuf_add(b, out, (size_t)digits);
}

/* NUL-terminates what fit; false when something did not (the buffer then holds a cut text). */
static inline bool sl__strbuf_end(sl__strbuf *b) {
    if (b->cap == 0)
        return false;
    if (b->len >= b->cap) {
        b->buf[b->cap - 1] = '\0';
        return false;
    }
    b->buf[b->len] = '\0';
    return true;
}

#endif /* SLUICE_STRBUF_H */
