/* Byte ranges: the --range syntax users type, and the Range / Content-Range headers servers send back. Every parser
 * here reads text that comes from outside (a command line, a server's answer) and is fuzzed (tests/fuzz): decimal
 * numbers are digits only, overflow is an error, and nothing is read past the terminating NUL. */
#include "range.h"

#include "fail.h"

#include <string.h>

/* Parses the decimal digits at *p (at least one, no sign, no space) into *out and advances *p past them. False on no
 * digit or a value over UINT64_MAX. */
static bool s_number(const char **p, uint64_t *out) {
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return true;
}

/* Consumes the literal `lit` at *p. */
static bool s_literal(const char **p, const char *lit) {
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

int sl_range_parse(const char *spec, uint64_t size, uint64_t *offset, uint64_t *length) {
    const char *p = spec;
    uint64_t a, z;
    if (!spec || !offset || !length)
        return sl__fail(SL_EINVAL, "sl_range_parse: NULL argument");
    if (*p == '-') { /* -N: the last N bytes (all of them when N is larger than the object) */
        p++;
        if (!s_number(&p, &a) || *p)
            goto bad;
        *offset = a >= size ? 0 : size - a;
        *length = size - *offset;
        return 0;
    }
    if (!s_number(&p, &a) || !s_literal(&p, "-"))
        goto bad;
    if (!*p) { /* A-: from A to the end */
        *offset = a;
        *length = SL_LENGTH_TO_END;
        return 0;
    }
    if (!s_number(&p, &z) || *p || z < a || z - a == UINT64_MAX)
        goto bad;
    *offset = a;
    *length = z - a + 1;
    return 0;
bad:
    return sl__fail(SL_EINVAL, "a range is A-B, A- or -N (bytes, 0-based, inclusive)");
}

bool sl__content_range_parse(const char *value, uint64_t *first, uint64_t *last, uint64_t *total) {
    const char *p = value;
    return p && s_literal(&p, "bytes ") && s_number(&p, first) && s_literal(&p, "-") && s_number(&p, last) &&
           s_literal(&p, "/") && s_number(&p, total) && *p == '\0' && *first <= *last && *last < *total;
}

bool sl__range_header_parse(const char *value, uint64_t *first, uint64_t *last) {
    const char *p = value;
    return p && s_literal(&p, "bytes=") && s_number(&p, first) && s_literal(&p, "-") && s_number(&p, last) &&
           *p == '\0' && *first <= *last;
}
