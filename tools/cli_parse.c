/* Strict parsers of option values (see cli_parse.h). */
#include "cli_parse.h"

#include <stdlib.h>
#include <string.h>

#define S_DECIMAL_MAX 40 /* digits and point of one value: more is a typing accident */

/* The length of the decimal number at s: digits, or digits around one '.' with at least one digit after it ("8",
 * "1.5", ".5"); 0 if there is none. strtod would also take a sign, spaces, an exponent, hexadecimal, "inf" and "nan":
 * it only reads what this has checked. */
static size_t s_decimal_len(const char *s) {
    size_t n = strspn(s, "0123456789");
    if (s[n] == '.') {
        size_t frac = strspn(s + n + 1, "0123456789");
        return frac ? n + 1 + frac : 0;
    }
    return n;
}

/* The value of the first len (at most S_DECIMAL_MAX) bytes of s, already checked by s_decimal_len. */
static double s_decimal_value(const char *s, size_t len) {
    char buf[S_DECIMAL_MAX + 1];
    memcpy(buf, s, len);
    buf[len] = '\0';
    return strtod(buf, NULL);
}

bool sl_cli_parse_size(const char *s, uint64_t *out) {
    size_t n = s_decimal_len(s);
    if (n == 0 || n > S_DECIMAL_MAX)
        return false;
    double v = s_decimal_value(s, n);
    const char *end = s + n;
    double mult = 1;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            mult = 1024.0;
            break;
        case 'm':
        case 'M':
            mult = 1024.0 * 1024;
            break;
        case 'g':
        case 'G':
            mult = 1024.0 * 1024 * 1024;
            break;
        case 't':
        case 'T':
            mult = 1024.0 * 1024 * 1024 * 1024;
            break;
        case 'b':
        case 'B':
            break;
        default:
            return false;
        }
        end++;
        if (*end == 'i' && mult > 1)
            end++;
        if ((*end == 'B' || *end == 'b') && mult > 1)
            end++;
        if (*end)
            return false;
    }
    double bytes = v * mult;
    if (bytes >= 18446744073709551615.0 || (v > 0 && bytes < 1))
        return false;
    *out = (uint64_t)bytes;
    return true;
}

bool sl_cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out) {
    size_t n = strspn(s, "0123456789");
    if (n == 0 || s[n])
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max)
            return false;
    }
    if (v < min)
        return false;
    *out = (unsigned)v;
    return true;
}

sl_cli_duration_rc sl_cli_parse_duration_ms(const char *s, uint64_t *out_ms) {
    size_t n = s_decimal_len(s);
    if (n == 0 || n > S_DECIMAL_MAX)
        return SL_CLI_DURATION_BAD;
    double v = s_decimal_value(s, n);
    const char *end = s + n;
    double mult = 1000;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (*end && strcmp(end, "s") != 0)
        return SL_CLI_DURATION_BAD;
    double ms = v * mult;
    if (ms > 86400000.0)
        return SL_CLI_DURATION_BAD;
    uint64_t rounded = (uint64_t)(ms + 0.5);
    if (rounded == 0 && v > 0)
        return SL_CLI_DURATION_ZERO;
    *out_ms = rounded;
    return SL_CLI_DURATION_OK;
}

void sl_cli_put_one_line(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p != 0x7f)
            fputc(*p, f);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else
            fprintf(f, "\\x%02x", *p);
    }
}
