/* libFuzzer target: the byte-range parsers: `--range A-B` (sl_range_parse), and the Content-Range and Range header
 * values a server sends (range.h). The first input byte picks the parser, the rest (up to a NUL) is the text; for
 * --range, the object size is a number taken from the text's length so that every branch of the clamping is
 * reached. Checked: results are consistent (FIRST <= LAST < TOTAL, a range inside a "-N" object), and what parses
 * prints back to the same text when written in canonical form. */
#include "range.h"
#include "sluice/store.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True when text has no leading zero in any number, i.e. it is the canonical spelling of what it parsed to. */
static int s_canonical(const char *text) {
    for (const char *p = text; *p; p++)
        if (*p == '0' && (p == text || p[-1] < '0' || p[-1] > '9') && p[1] >= '0' && p[1] <= '9')
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    unsigned which = data[0] % 3;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char back[128];
    uint64_t a, b, t;
    if (which == 0) {
        uint64_t object = (uint64_t)(size - 1) * 37 / 3; /* sizes below, at and above the numbers in the text */
        int rc = sl_range_parse(text, object, &a, &b);
        if (rc != 0 && rc != SL_EINVAL)
            abort();
        if (rc == 0 && text[0] == '-' && (a > object || b != object - a))
            abort(); /* the last N bytes lie inside the object */
        if (rc == 0 && text[0] != '-' && b != SL_LENGTH_TO_END) {
            if (b == 0 || a + (b - 1) < a)
                abort(); /* A-B: at least one byte, and B fits in 64 bits */
            snprintf(back, sizeof(back), "%" PRIu64 "-%" PRIu64, a, a + (b - 1));
            if (s_canonical(text) && strcmp(back, text) != 0)
                abort();
        }
    } else if (which == 1) {
        if (sl__content_range_parse(text, &a, &b, &t)) {
            if (a > b || b >= t)
                abort();
            snprintf(back, sizeof(back), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, a, b, t);
            if (s_canonical(text) && strcmp(back, text) != 0)
                abort();
        }
    } else {
        if (sl__range_header_parse(text, &a, &b)) {
            if (a > b)
                abort();
            snprintf(back, sizeof(back), "bytes=%" PRIu64 "-%" PRIu64, a, b);
            if (s_canonical(text) && strcmp(back, text) != 0)
                abort();
        }
    }
    free(text);
    return 0;
}
