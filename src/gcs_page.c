/* The listing page parser and the field decoders of GCS JSON answers (see gcs_page.h). */
#include "gcs_page.h"
#include "fail.h"

#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

/* Decodes base64 into out (exactly want bytes expected). Returns true on success. */
bool sl__gcs_unb64(const char *in, unsigned char *out, size_t want) {
    size_t len = strlen(in);
    if (len == 0 || len % 4 || len > 64)
        return false;
    unsigned char tmp[64];
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
    size_t pad = (in[len - 1] == '=') + (len > 1 && in[len - 2] == '=');
    if (n < 0 || (size_t)n - pad != want)
        return false;
    memcpy(out, tmp, want);
    return true;
}

bool sl__gcs_unb64_crc(const char *in, uint32_t *crc) {
    unsigned char be[4];
    if (!sl__gcs_unb64(in, be, 4))
        return false;
    *crc = (uint32_t)be[0] << 24 | (uint32_t)be[1] << 16 | (uint32_t)be[2] << 8 | be[3];
    return true;
}

/* One sscanf "%Nd": white space, then an optional sign and digits, width characters at most, at least one digit. */
static bool s_scan_int(const char **s, int width, int *out) {
    const char *p = *s;
    while (isspace((unsigned char)*p))
        p++;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++, width--;
    int v = 0, n = 0;
    for (; n < width && *p >= '0' && *p <= '9'; n++, p++)
        v = v * 10 + (*p - '0');
    if (n == 0)
        return false;
    *out = neg ? -v : v;
    *s = p;
    return true;
}

/* RFC 3339 ("2026-11-25T10:23:00.123Z") to ns since the epoch; 0 if unparsable or outside what int64 ns can hold
 * (years 1678 to 2261). Reads what sscanf("%4d-%2d-%2dT%2d:%2d:%2d") reads, then an optional fraction; the rest (the
 * zone) is not read. Day 31 of a short month and second 60 carry over into what follows, as timegm has it. */
int64_t sl__gcs_parse_time(const char *s) {
    static const char seps[] = "--T::";
    static const int widths[] = {4, 2, 2, 2, 2, 2};
    int f[6];
    if (!s)
        return 0;
    for (int i = 0; i < 6; i++)
        if (!s_scan_int(&s, widths[i], &f[i]) || (i < 5 && *s++ != seps[i]))
            return 0;
    int y = f[0], mo = f[1], d = f[2], h = f[3], mi = f[4], sec = f[5];
    if (y < 1678 || y > 2261 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        sec < 0 || sec > 60)
        return 0;
    /* Days from 1970-01-01 to the first of the month, counting years from March so February's length only matters
     * at the end of a year (Howard Hinnant's days_from_civil). */
    int ym = y - (mo <= 2);
    int era = ym / 400, yoe = ym % 400;
    int doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5;
    int64_t days = (int64_t)era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468 + d - 1;
    int64_t ns = 0;
    if (*s == '.') {
        int64_t scale = 100000000;
        for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
            ns += (*s - '0') * scale;
    }
    return ((days * 24 + h) * 3600 + mi * 60 + sec) * 1000000000 + ns;
}

/* A non-negative decimal integer of len characters, as GCS sends int64 fields; 0 for anything else (nothing, a sign,
 * a fraction, trailing text, more than 64 bits). */
uint64_t sl__gcs_u64_text(const char *p, size_t len) {
    uint64_t n = 0;
    if (len == 0)
        return 0;
    for (const char *end = p + len; p < end; p++) {
        unsigned d = (unsigned)(unsigned char)*p - '0';
        if (d > 9 || (n >= UINT64_MAX / 10 && (n > UINT64_MAX / 10 || d > UINT64_MAX % 10)))
            return 0;
        n = n * 10 + d;
    }
    return n;
}

bool sl__gcs_is_gzip(const char *s, size_t len) {
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return (len == 4 && strncasecmp(s, "gzip", 4) == 0) || (len == 6 && strncasecmp(s, "x-gzip", 6) == 0);
}

/* ---- listing pages ---- */

/* A page is parsed as a stream (yajl) into page->arena, which holds, after S_ARENA_START unused bytes (so that offset
 * 0 can mean "none"): s_item and s_prefix entries, each list chained through `next` in the order of the body, and
 * the NUL-terminated strings they refer to. Nothing else of the body is kept. */
#define S_ARENA_START ((size_t)16)
#define S_ENTRY_ALIGN ((size_t)8)

typedef struct s_item {
    size_t next;              /* offset of the next item; 0 for the last */
    size_t name, fingerprint; /* offsets of text; 0 when absent (an item without a name is dropped) */
    uint64_t size, generation;
    int64_t mtime_ns;
    uint32_t crc32c;
    bool has_crc32c, has_md5;
    bool gzip; /* contentEncoding is "gzip" */
    unsigned char md5[16];
} s_item;

typedef struct s_prefix {
    size_t next; /* offset of the next prefix; 0 for the last */
    char name[];
} s_prefix;

static s_item *s_item_at(const sl__gcs_page *page, size_t at) {
    return (s_item *)(void *)(page->arena + at);
}

static s_prefix *s_prefix_at(const sl__gcs_page *page, size_t at) {
    return (s_prefix *)(void *)(page->arena + at);
}

/* Room for need more bytes at the end of the arena; false when out of memory. Moves the arena. */
static bool s_arena_reserve(sl__gcs_page *page, size_t need) {
    if (page->arena_cap - page->arena_len >= need)
        return true;
    size_t cap = page->arena_cap ? page->arena_cap : 256;
    while (cap - page->arena_len < need) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    char *arena = realloc(page->arena, cap);
    if (!arena)
        return false;
    page->arena = arena;
    page->arena_cap = cap;
    return true;
}

/* Appends a zeroed entry of size bytes; its offset, or 0 when out of memory. */
static size_t s_arena_entry(sl__gcs_page *page, size_t size) {
    size_t at = (page->arena_len + S_ENTRY_ALIGN - 1) & ~(S_ENTRY_ALIGN - 1);
    if (!s_arena_reserve(page, at - page->arena_len + size))
        return 0;
    memset(page->arena + at, 0, size);
    page->arena_len = at + size;
    return at;
}

/* Appends text and a NUL; its offset, or 0 when out of memory. */
static size_t s_arena_text(sl__gcs_page *page, const void *text, size_t len) {
    if (len == SIZE_MAX || !s_arena_reserve(page, len + 1))
        return 0;
    size_t at = page->arena_len;
    memcpy(page->arena + at, text, len);
    page->arena[at + len] = '\0';
    page->arena_len += len + 1;
    return at;
}

/* A NUL-terminated copy of text past the end of the arena, valid until the arena next grows; NULL when out of
 * memory. For values that are read once and not kept. */
static char *s_arena_scratch(sl__gcs_page *page, const void *text, size_t len) {
    if (len == SIZE_MAX || !s_arena_reserve(page, len + 1))
        return NULL;
    char *s = page->arena + page->arena_len;
    memcpy(s, text, len);
    s[len] = '\0';
    return s;
}

/* Length of the UTF-8 sequence at s (avail bytes there) if it is well formed as jansson had it (no overlong form, no
 * surrogate, nothing past U+10FFFF), else 0. */
static size_t s_utf8_seq(const unsigned char *s, size_t avail) {
    unsigned char b = s[0];
    size_t n;
    uint32_t cp;
    if (b >= 0xC2 && b <= 0xDF)
        n = 2, cp = b & 0x1Fu;
    else if (b >= 0xE0 && b <= 0xEF)
        n = 3, cp = b & 0x0Fu;
    else if (b >= 0xF0 && b <= 0xF4)
        n = 4, cp = b & 0x07u;
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* The four hex digits at s (avail bytes there) as a number, or -1. */
static long s_hex4(const unsigned char *s, size_t avail) {
    long v = 0;
    if (avail < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int c = s[i];
        if (c >= '0' && c <= '9')
            v = v * 16 + (c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v = v * 16 + ((c | 0x20) - 'a' + 10);
        else
            return -1;
    }
    return v;
}

/* What jansson refused and yajl lets through: "\u0000" (a NUL would cut a name short), escaped surrogates that do
 * not pair up, UTF-8 that is overlong, a surrogate or past U+10FFFF, and \v or \f as white space. Returns NULL, or
 * what is wrong with *at its offset. In valid JSON backslashes and bytes >= 0x80 occur only inside strings, and
 * each backslash starts an escape, so the scan need not know where strings are; eight bytes are tested at a time. */
static const char *s_page_scan(const unsigned char *s, size_t len, size_t *at) {
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            /* A byte's high bit: in w, >= 0x80; in bs - ones & ~bs, a backslash; in w + 0x75 but not in w + 0x73,
             * \v or \f. (The sums carry into the next byte only from a byte >= 0x80, which is looked at anyway.) */
            uint64_t bs = w ^ (ones * '\\');
            if (!((w | ((bs - ones) & ~bs) | ((w + ones * 0x75) & ~(w + ones * 0x73))) & highs)) {
                i += 8;
                continue;
            }
        }
        *at = i;
        if (s[i] == '\\') {
            long cp = i + 1 < len && s[i + 1] == 'u' ? s_hex4(s + i + 2, len - i - 2) : -1;
            if (cp == 0)
                return "\\u0000 is not allowed";
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return "a \\u escape is half a surrogate pair";
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long low = len - i >= 8 && s[i + 6] == '\\' && s[i + 7] == 'u' ? s_hex4(s + i + 8, len - i - 8) : -1;
                if (low < 0xDC00 || low > 0xDFFF)
                    return "a \\u escape is half a surrogate pair";
                i += 12;
            } else {
                i += cp < 0 ? 2 : 6; /* any other escape: yajl checks it */
            }
        } else if (s[i] >= 0x80) {
            size_t n = s_utf8_seq(s + i, len - i);
            if (!n)
                return "invalid UTF-8";
            i += n;
        } else if (s[i] == '\v' || s[i] == '\f') {
            return "invalid character";
        } else {
            i++;
        }
    }
    return NULL;
}

/* Where the parse is: which container the next event belongs to. */
typedef enum s_page_in { S_IN_NOTHING, S_IN_PAGE, S_IN_ITEMS, S_IN_ITEM, S_IN_METADATA, S_IN_PREFIXES } s_page_in;

/* What the value after the last key sets. */
typedef enum s_page_field {
    S_F_OTHER,
    S_F_ITEMS,
    S_F_PREFIXES,
    S_F_TOKEN,
    S_F_NAME,
    S_F_SIZE,
    S_F_GENERATION,
    S_F_UPDATED,
    S_F_CRC32C,
    S_F_MD5,
    S_F_METADATA,
    S_F_FINGERPRINT,
    S_F_ENCODING,
} s_page_field;

typedef enum s_page_value { S_V_STRING, S_V_INTEGER, S_V_OTHER } s_page_value;

typedef struct s_page_parser {
    sl__gcs_page *page;
    yajl_handle yajl;
    s_page_in in;
    s_page_field field;
    size_t skip;        /* > 0 inside a value that is ignored: how many containers deep */
    size_t item;        /* offset of the item being read */
    size_t item_start;  /* arena length before it, to drop it if it has no name */
    size_t last_item;   /* offset of the last item of the list; 0 when empty */
    size_t last_prefix; /* offset of the last prefix of the list; 0 when empty */
    size_t end;         /* offset just past the page's closing brace */
    int rc;             /* why a callback stopped the parse */
    const char *why;    /* for SL_ECORRUPT */
    size_t why_at;
} s_page_parser;

static int s_page_stop(s_page_parser *p, int rc, const char *why) {
    p->rc = rc;
    p->why = why;
    p->why_at = yajl_get_bytes_consumed(p->yajl);
    return 0;
}

/* A NUL-terminated scratch copy of a base64 value for the decoders, NULL when it is longer than any they accept (or
 * out of memory). */
static const char *s_page_b64(s_page_parser *p, const char *text, size_t len) {
    return len <= 64 ? s_arena_scratch(p->page, text, len) : NULL;
}

/* A value of an item's field. S_V_OTHER also stands for null, booleans, reals, objects and arrays. */
static int s_page_item_value(s_page_parser *p, s_page_value kind, const char *s, size_t len) {
    sl__gcs_page *page = p->page;
    s_item *item = s_item_at(page, p->item);
    switch (p->field) {
    case S_F_NAME: {
        size_t at = kind == S_V_STRING ? s_arena_text(page, s, len) : 0;
        if (kind == S_V_STRING && !at)
            return s_page_stop(p, SL_ENOMEM, NULL);
        s_item_at(page, p->item)->name = at;
        break;
    }
    case S_F_SIZE:
        item->size = kind == S_V_OTHER ? 0 : sl__gcs_u64_text(s, len);
        break;
    case S_F_GENERATION:
        item->generation = kind == S_V_OTHER ? 0 : sl__gcs_u64_text(s, len);
        break;
    case S_F_UPDATED: {
        const char *text = kind == S_V_STRING ? s_arena_scratch(page, s, len) : NULL;
        if (kind == S_V_STRING && !text)
            return s_page_stop(p, SL_ENOMEM, NULL);
        s_item_at(page, p->item)->mtime_ns = sl__gcs_parse_time(text);
        break;
    }
    case S_F_CRC32C: {
        const char *text = kind == S_V_STRING ? s_page_b64(p, s, len) : NULL;
        uint32_t crc = 0;
        bool ok = text && sl__gcs_unb64_crc(text, &crc);
        item = s_item_at(page, p->item);
        item->has_crc32c = ok;
        item->crc32c = crc;
        break;
    }
    case S_F_MD5: {
        unsigned char md5[16];
        const char *text = kind == S_V_STRING ? s_page_b64(p, s, len) : NULL;
        bool ok = text && sl__gcs_unb64(text, md5, 16);
        item = s_item_at(page, p->item);
        item->has_md5 = ok;
        memcpy(item->md5, ok ? md5 : (const unsigned char[16]){0}, 16);
        break;
    }
    case S_F_METADATA:
        item->fingerprint = 0; /* not an object */
        break;
    case S_F_ENCODING:
        item->gzip = kind == S_V_STRING && sl__gcs_is_gzip(s, len);
        break;
    default:
        break;
    }
    return 1;
}

/* A value where p->in and p->field say what it is for. Objects and arrays come here as S_V_OTHER only when they are
 * not read into. */
static int s_page_value_in(s_page_parser *p, s_page_value kind, const char *s, size_t len) {
    sl__gcs_page *page = p->page;
    switch (p->in) {
    case S_IN_NOTHING:
        return s_page_stop(p, SL_ECORRUPT, "not an object");
    case S_IN_PAGE:
        if (p->field == S_F_TOKEN) {
            page->token = kind == S_V_STRING ? s_arena_text(page, s, len) : 0;
            if (kind == S_V_STRING && !page->token)
                return s_page_stop(p, SL_ENOMEM, NULL);
        } else if (p->field == S_F_ITEMS) {
            page->next_item = p->last_item = 0; /* a repeated key: the last one wins */
        } else if (p->field == S_F_PREFIXES) {
            page->next_prefix = p->last_prefix = 0;
        }
        return 1;
    case S_IN_PREFIXES: {
        if (kind != S_V_STRING)
            return 1;
        size_t at = len < SIZE_MAX - sizeof(s_prefix) ? s_arena_entry(page, sizeof(s_prefix) + len + 1) : 0;
        if (!at)
            return s_page_stop(p, SL_ENOMEM, NULL);
        s_prefix *pfx = s_prefix_at(page, at);
        memcpy(pfx->name, s, len);
        pfx->name[len] = '\0';
        if (p->last_prefix)
            s_prefix_at(page, p->last_prefix)->next = at;
        else
            page->next_prefix = at;
        p->last_prefix = at;
        return 1;
    }
    case S_IN_ITEM:
        return s_page_item_value(p, kind, s, len);
    case S_IN_METADATA:
        if (p->field == S_F_FINGERPRINT) {
            size_t at = kind == S_V_STRING ? s_arena_text(page, s, len) : 0;
            if (kind == S_V_STRING && !at)
                return s_page_stop(p, SL_ENOMEM, NULL);
            s_item_at(page, p->item)->fingerprint = at;
        }
        return 1;
    default: /* S_IN_ITEMS: an item that is not an object */
        return 1;
    }
}

static int s_page_null(void *ctx) {
    s_page_parser *p = ctx;
    return p->skip ? 1 : s_page_value_in(p, S_V_OTHER, NULL, 0);
}

static int s_page_boolean(void *ctx, int value) {
    (void)value;
    return s_page_null(ctx);
}

static int s_page_number(void *ctx, const char *s, size_t len) {
    s_page_parser *p = ctx;
    /* jansson refused the whole page for an integer beyond int64 or a real beyond double, even one ignored. */
    if (!memchr(s, '.', len) && !memchr(s, 'e', len) && !memchr(s, 'E', len)) {
        bool neg = s[0] == '-';
        size_t digits = len - neg;
        if (digits > 19 ||
            (digits == 19 && memcmp(s + neg, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0))
            return s_page_stop(p, SL_ECORRUPT, "integer out of range");
        return p->skip ? 1 : s_page_value_in(p, S_V_INTEGER, s, len);
    }
    char *real = s_arena_scratch(p->page, s, len);
    if (!real)
        return s_page_stop(p, SL_ENOMEM, NULL);
    const char *point = localeconv()->decimal_point; /* strtod reads the locale's, as in jansson */
    char *dot = *point != '.' ? strchr(real, '.') : NULL;
    if (dot)
        *dot = *point;
    errno = 0;
    double v = strtod(real, NULL);
    if ((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE)
        return s_page_stop(p, SL_ECORRUPT, "real number overflow");
    return p->skip ? 1 : s_page_value_in(p, S_V_OTHER, NULL, 0);
}

static int s_page_string(void *ctx, const unsigned char *s, size_t len) {
    s_page_parser *p = ctx;
    return p->skip ? 1 : s_page_value_in(p, S_V_STRING, (const char *)s, len);
}

#define S_KEY_IS(key, len, lit) ((len) == sizeof(lit) - 1 && memcmp(key, lit, sizeof(lit) - 1) == 0)

static int s_page_key(void *ctx, const unsigned char *key, size_t len) {
    s_page_parser *p = ctx;
    if (p->skip)
        return 1;
    s_page_field f = S_F_OTHER;
    if (p->in == S_IN_ITEM) {
        f = S_KEY_IS(key, len, "name")              ? S_F_NAME
            : S_KEY_IS(key, len, "size")            ? S_F_SIZE
            : S_KEY_IS(key, len, "generation")      ? S_F_GENERATION
            : S_KEY_IS(key, len, "updated")         ? S_F_UPDATED
            : S_KEY_IS(key, len, "crc32c")          ? S_F_CRC32C
            : S_KEY_IS(key, len, "md5Hash")         ? S_F_MD5
            : S_KEY_IS(key, len, "metadata")        ? S_F_METADATA
            : S_KEY_IS(key, len, "contentEncoding") ? S_F_ENCODING
                                                    : S_F_OTHER;
    } else if (p->in == S_IN_PAGE) {
        f = S_KEY_IS(key, len, "items")           ? S_F_ITEMS
            : S_KEY_IS(key, len, "prefixes")      ? S_F_PREFIXES
            : S_KEY_IS(key, len, "nextPageToken") ? S_F_TOKEN
                                                  : S_F_OTHER;
    } else if (p->in == S_IN_METADATA && S_KEY_IS(key, len, SL__GCS_META_KEY)) {
        f = S_F_FINGERPRINT;
    }
    p->field = f;
    return 1;
}

static int s_page_start_map(void *ctx) {
    s_page_parser *p = ctx;
    if (p->skip) {
        p->skip++;
        return 1;
    }
    if (p->in == S_IN_NOTHING) {
        p->in = S_IN_PAGE;
        return 1;
    }
    if (p->in == S_IN_ITEMS) {
        p->item_start = p->page->arena_len;
        if (!(p->item = s_arena_entry(p->page, sizeof(s_item))))
            return s_page_stop(p, SL_ENOMEM, NULL);
        p->in = S_IN_ITEM;
        p->field = S_F_OTHER;
        return 1;
    }
    if (p->in == S_IN_ITEM && p->field == S_F_METADATA) {
        s_item_at(p->page, p->item)->fingerprint = 0; /* a repeated key: the last one wins */
        p->in = S_IN_METADATA;
        p->field = S_F_OTHER;
        return 1;
    }
    p->skip = 1;
    return s_page_value_in(p, S_V_OTHER, NULL, 0);
}

static int s_page_start_array(void *ctx) {
    s_page_parser *p = ctx;
    if (p->skip) {
        p->skip++;
        return 1;
    }
    if (p->in == S_IN_PAGE && (p->field == S_F_ITEMS || p->field == S_F_PREFIXES)) {
        s_page_value_in(p, S_V_OTHER, NULL, 0); /* empties the list */
        p->in = p->field == S_F_ITEMS ? S_IN_ITEMS : S_IN_PREFIXES;
        return 1;
    }
    p->skip = 1;
    return s_page_value_in(p, S_V_OTHER, NULL, 0);
}

static int s_page_end_map(void *ctx) {
    s_page_parser *p = ctx;
    if (p->skip) {
        p->skip--;
    } else if (p->in == S_IN_PAGE) {
        p->end = yajl_get_bytes_consumed(p->yajl);
    } else if (p->in == S_IN_METADATA) {
        p->in = S_IN_ITEM;
    } else if (p->in == S_IN_ITEM) {
        sl__gcs_page *page = p->page;
        if (!s_item_at(page, p->item)->name) {
            page->arena_len = p->item_start; /* no name (or not a string): skipped */
        } else {
            if (p->last_item)
                s_item_at(page, p->last_item)->next = p->item;
            else
                page->next_item = p->item;
            p->last_item = p->item;
        }
        p->in = S_IN_ITEMS;
    }
    return 1;
}

static int s_page_end_array(void *ctx) {
    s_page_parser *p = ctx;
    if (p->skip)
        p->skip--;
    else
        p->in = S_IN_PAGE;
    return 1;
}

int sl__gcs_page_parse(sl__gcs_page *page, const char *body, size_t len, const char *bucket) {
    static const yajl_callbacks callbacks = {
        .yajl_null = s_page_null,
        .yajl_boolean = s_page_boolean,
        .yajl_number = s_page_number,
        .yajl_string = s_page_string,
        .yajl_start_map = s_page_start_map,
        .yajl_map_key = s_page_key,
        .yajl_end_map = s_page_end_map,
        .yajl_start_array = s_page_start_array,
        .yajl_end_array = s_page_end_array,
    };
    *page = (sl__gcs_page){0};
    s_page_parser p = {.page = page, .rc = SL_ECORRUPT};
    const char *why = s_page_scan((const unsigned char *)body, len, &p.why_at);
    if (why)
        return sl__fail(SL_ECORRUPT, "gs://%s: listing page is not valid JSON: %s (at byte %zu)", bucket, why,
                        p.why_at);
    /* Enough for a page of the fields asked for (gcs_page.h); anything else grows the arena. */
    if (!s_arena_reserve(page, S_ARENA_START + len / 2) || !(p.yajl = yajl_alloc(&callbacks, NULL, &p))) {
        free(page->arena);
        *page = (sl__gcs_page){0};
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    page->arena_len = S_ARENA_START;
    yajl_status status = yajl_parse(p.yajl, (const unsigned char *)body, len);
    size_t at = yajl_get_bytes_consumed(p.yajl);
    if (status == yajl_status_ok) {
        status = yajl_complete_parse(p.yajl);
        at = len;
    }
    if (status == yajl_status_ok) {
        /* yajl takes a string left open after the value for one still arriving, and then calls the body complete. */
        size_t tail = p.end;
        while (tail < len && (body[tail] == ' ' || body[tail] == '\t' || body[tail] == '\n' || body[tail] == '\r'))
            tail++;
        if (tail == len) {
            yajl_free(p.yajl);
            return 0;
        }
        status = yajl_status_client_canceled;
        p.why = "trailing garbage";
        p.why_at = tail;
    }
    int rc;
    if (status == yajl_status_client_canceled && p.rc == SL_ENOMEM) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
    } else {
        unsigned char *msg =
            status == yajl_status_error ? yajl_get_error(p.yajl, 0, (const unsigned char *)body, len) : NULL;
        if (status == yajl_status_error) {
            p.why = msg ? (const char *)msg : "invalid";
            p.why_at = at;
        }
        rc = sl__fail(SL_ECORRUPT, "gs://%s: listing page is not valid JSON: %.*s (at byte %zu)", bucket,
                      (int)strcspn(p.why, "\n"), p.why, p.why_at);
        if (msg)
            yajl_free_error(p.yajl, msg);
    }
    yajl_free(p.yajl);
    free(page->arena);
    *page = (sl__gcs_page){0};
    return rc;
}

const char *sl__gcs_page_token(const sl__gcs_page *page) {
    return page->token && page->arena[page->token] ? page->arena + page->token : NULL;
}

int sl__gcs_page_next(sl__gcs_page *page, const char **name, sl_object *out) {
    const s_item *item = page->next_item ? s_item_at(page, page->next_item) : NULL;
    const s_prefix *pfx = page->next_prefix ? s_prefix_at(page, page->next_prefix) : NULL;
    if (!item && !pfx)
        return 0;
    /* Items and prefixes are each sorted; merging them keeps the whole listing in byte order. */
    if (pfx && (!item || strcmp(pfx->name, page->arena + item->name) < 0)) {
        page->next_prefix = pfx->next;
        memset(out, 0, sizeof(*out));
        out->is_prefix = true;
        *name = pfx->name;
        return 1;
    }
    page->next_item = item->next;
    *out = (sl_object){
        .size = item->size,
        .mtime_ns = item->mtime_ns,
        .generation = (int64_t)item->generation,
        .crc32c = item->crc32c,
        .has_crc32c = item->has_crc32c,
        .has_md5 = item->has_md5,
        .source_fingerprint = item->fingerprint ? page->arena + item->fingerprint : NULL,
        .content_encoding = item->gzip ? SL__GCS_GZIP : NULL,
    };
    memcpy(out->md5, item->md5, sizeof(out->md5));
    *name = page->arena + item->name;
    return 1;
}

void sl__gcs_page_clear(sl__gcs_page *page) {
    if (!page)
        return;
    free(page->arena);
    *page = (sl__gcs_page){0};
}
