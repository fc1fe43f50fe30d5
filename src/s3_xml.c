/* S3's XML answers, parsed as a stream with expat, and the XML bodies the s3:// store sends (see s3_xml.h). */
#include "s3_xml.h"
#include "fail.h"
#include "store_vtable.h"

#include <expat.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A key the parser gives fits what a listing keeps of the key before it to check the order. */
_Static_assert(SL__S3_KEY_MAX < SL__LIST_KEY_CAP, "a listed key must fit SL__LIST_KEY_CAP");

#define S_NS "http://s3.amazonaws.com/doc/2006-03-01/"
#define S_DEPTH_MAX 16
#define S_FEED_PIECE ((size_t)64 << 10) /* expat copies what it cannot parse yet: it is given this much at a time */
#define S_WHAT_CAP 1024
#define S_TEXT_CAP (3 * SL__S3_KEY_MAX + 64) /* the longest leaf kept: a key percent-encoded byte by byte */
#define S_SHOWN 120                          /* bytes of a value quoted in a message */

/* ---- expat's memory, counted against SL__S3_XML_EXPAT_CAP ----
 * The suite's functions get no context, so a block carries its owner's count; malloc finds the owner through the
 * thread's current parser (set around every call into expat). */
typedef union s_block {
    struct {
        size_t *used;
        size_t size;
    } h;
    max_align_t align;
} s_block;

static _Thread_local size_t *tl_expat_used;

static void *s_xmalloc(size_t n) {
    size_t *used = tl_expat_used;
    if (!used || n > SL__S3_XML_EXPAT_CAP || *used + n > SL__S3_XML_EXPAT_CAP)
        return NULL;
    s_block *b = malloc(sizeof(s_block) + n);
    if (!b)
        return NULL;
    b->h.used = used;
    b->h.size = n;
    *used += n;
    return b + 1;
}

static void s_xfree(void *p) {
    if (!p)
        return;
    s_block *b = (s_block *)p - 1;
    *b->h.used -= b->h.size;
    free(b);
}

static void *s_xrealloc(void *p, size_t n) {
    if (!p)
        return s_xmalloc(n);
    s_block *b = (s_block *)p - 1;
    size_t *used = b->h.used, old = b->h.size;
    if (n > SL__S3_XML_EXPAT_CAP || *used - old + n > SL__S3_XML_EXPAT_CAP)
        return NULL;
    s_block *nb = realloc(b, sizeof(s_block) + n);
    if (!nb)
        return NULL;
    *used = *used - old + n;
    nb->h.size = n;
    return nb + 1;
}

static const XML_Memory_Handling_Suite s_suite = {s_xmalloc, s_xrealloc, s_xfree};

/* ---- what the parse is in ---- */

/* Containers: the root and the elements that group fields. */
enum { S_C_ROOT = 1, S_C_CONTENTS, S_C_CPREFIX, S_C_DELETED, S_C_DELERROR, S_C_PART, S_C_SKIP };

/* Leaves: elements whose text is kept. */
typedef enum s_leaf {
    S_F_NONE = 0,
    S_F_CODE, /* <Error> */
    S_F_MESSAGE,
    S_F_RESOURCE,
    S_F_REQUEST_ID,
    S_F_REGION,
    S_F_ENDPOINT,
    S_F_BUCKET,
    S_F_TRUNCATED, /* ListBucketResult, ListPartsResult */
    S_F_TOKEN,
    S_F_KEY_COUNT,
    S_F_ENCODING,
    S_F_L_PREFIX,
    S_F_L_DELIMITER,
    S_F_L_START_AFTER,
    S_F_KEY, /* Contents */
    S_F_SIZE,
    S_F_ETAG,
    S_F_MTIME,
    S_F_CKALG,
    S_F_SCLASS,
    S_F_CP_PREFIX, /* CommonPrefixes */
    S_F_UPLOAD_ID,
    S_F_CRC32C,
    S_F_D_KEY, /* Deleted, Error of DeleteResult */
    S_F_D_CODE,
    S_F_D_MESSAGE,
    S_F_P_NUMBER, /* Part */
    S_F_P_NEXT_MARKER,
    S_F_LOCATION,
} s_leaf;

enum { S_E_OBJECT = 1, S_E_PREFIX, S_E_DELETED, S_E_DELERROR, S_E_PART };

/* One entry of a page; text as offsets in the arena (0: absent). */
typedef struct s_entry {
    uint8_t kind;
    bool has_size, has_crc32c, has_md5;
    uint32_t name, name_len, etag, sclass, code, message;
    uint32_t crc32c;
    unsigned number, checksums;
    uint64_t size;
    int64_t mtime_ns;
    uint64_t seen; /* leaves seen in it, by bit */
    unsigned char md5[16];
} s_entry;

struct sl__s3_xml {
    XML_Parser xp;
    size_t expat_used;
    sl__s3_doc expect, root;
    int rc;              /* <0 once the answer failed */
    bool ended;          /* sl__s3_xml_end returned 0 */
    bool started;        /* a byte other than white space came */
    uint64_t body_bytes; /* fed so far */
    uint64_t skipped;    /* white space before the document */
    char what[S_WHAT_CAP];
    char why[S_WHAT_CAP + 1280]; /* the message of a failed answer, set again by each later call */
    /* Where the parse is. */
    unsigned depth, skip_depth; /* skip_depth: > 0 inside an element ignored, its depth */
    uint8_t stack[S_DEPTH_MAX + 1];
    s_leaf leaf; /* the leaf whose text is being read; S_F_NONE outside one */
    unsigned leaf_depth;
    uint64_t root_seen; /* root fields seen, by bit */
    bool text_cut;      /* the leaf's text was longer than kept */
    size_t text_len;
    char text[S_TEXT_CAP + 1];
    /* Answers. */
    sl__s3_error err;
    sl__s3_result res;
    bool truncated, url_encoded;
    int64_t key_count;
    unsigned next_marker;
    char token[SL__S3_TOKEN_MAX + 1];
    uint32_t echo[3]; /* the listing's Prefix, Delimiter, StartAfter: arena offsets */
    /* The page. */
    s_entry *entries; /* SL__S3_PAGE_MAX, allocated when first needed */
    size_t n_entries;
    bool in_entry;                        /* entries[n_entries] is being read */
    size_t next_obj, next_pfx, next_part; /* cursors of the iterators */
    char *arena;
    size_t arena_len, arena_cap;
};

const char *sl__s3_doc_name(sl__s3_doc doc) {
    static const char *const names[] = {
        [SL__S3_DOC_NONE] = "nothing",
        [SL__S3_DOC_ERROR] = "Error",
        [SL__S3_DOC_LIST] = "ListBucketResult",
        [SL__S3_DOC_INITIATE] = "InitiateMultipartUploadResult",
        [SL__S3_DOC_COMPLETE] = "CompleteMultipartUploadResult",
        [SL__S3_DOC_COPY_OBJECT] = "CopyObjectResult",
        [SL__S3_DOC_COPY_PART] = "CopyPartResult",
        [SL__S3_DOC_DELETE] = "DeleteResult",
        [SL__S3_DOC_PARTS] = "ListPartsResult",
        [SL__S3_DOC_LOCATION] = "LocationConstraint",
    };
    return (unsigned)doc < sizeof(names) / sizeof(names[0]) && names[doc] ? names[doc] : "nothing";
}

/* Text for a message: `s` (len bytes) escaped for one line, its first S_SHOWN bytes, "..." when there is more. */
static const char *s_shown(char *buf, size_t cap, const char *s, size_t len) {
    size_t n = sl_text_escape(buf, cap, s, len < S_SHOWN ? len : S_SHOWN);
    if (len > S_SHOWN && n + 4 < cap)
        memcpy(buf + n, "...", 4);
    return buf;
}

/* Fails the answer: the message is "<what>: <fmt...>". Stops expat when called from one of its handlers. */
static int s_fail(sl__s3_xml *x, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(sl__s3_xml *x, int code, const char *fmt, ...) {
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    x->rc = sl__fail(code, "%s: %s", x->what, why);
    snprintf(x->why, sizeof(x->why), "%s", sl_last_error());
    if (x->xp)
        XML_StopParser(x->xp, XML_FALSE);
    return x->rc;
}

/* ---- the page's text ---- */

static bool s_arena_reserve(sl__s3_xml *x, size_t need) {
    if (need > SL__S3_PAGE_TEXT_CAP - x->arena_len) {
        s_fail(x, SL_ETOOBIG,
               "the answer's entries need more than %zu MiB (keys of several KiB each): ask for fewer keys a page",
               SL__S3_PAGE_TEXT_CAP >> 20);
        return false;
    }
    if (x->arena_len + need <= x->arena_cap)
        return true;
    size_t cap = x->arena_cap ? x->arena_cap : 16384;
    while (cap - x->arena_len < need)
        cap *= 2;
    if (cap > SL__S3_PAGE_TEXT_CAP)
        cap = SL__S3_PAGE_TEXT_CAP;
    char *a = realloc(x->arena, cap);
    if (!a) {
        s_fail(x, SL_ENOMEM, "out of memory");
        return false;
    }
    x->arena = a;
    x->arena_cap = cap;
    return true;
}

/* Appends text and a NUL; its offset, or 0 when the answer failed. */
static uint32_t s_arena_text(sl__s3_xml *x, const char *s, size_t len) {
    if (!s_arena_reserve(x, len + 1))
        return 0;
    uint32_t at = (uint32_t)x->arena_len;
    memcpy(x->arena + at, s, len);
    x->arena[at + len] = '\0';
    x->arena_len += len + 1;
    return at;
}

/* ---- field decoders ---- */

static bool s_is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The text without the white space around it. */
static const char *s_trim(const char *s, size_t *len) {
    while (*len && s_is_space(*s))
        s++, --*len;
    while (*len && s_is_space(s[*len - 1]))
        --*len;
    return s;
}

static int s_hex(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A decimal integer without sign of len characters that fits max; false for anything else. */
static bool s_u64(const char *s, size_t len, uint64_t max, uint64_t *out) {
    uint64_t n = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9 || n > (max - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

/* Length of the UTF-8 sequence at s (avail bytes) when well formed (no overlong form, no surrogate, nothing past
 * U+10FFFF), its code point in *cp; 0 when not. */
static size_t s_utf8_seq(const unsigned char *s, size_t avail, uint32_t *cp) {
    unsigned char b = s[0];
    size_t n;
    uint32_t c;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF)
        n = 2, c = b & 0x1Fu;
    else if (b >= 0xE0 && b <= 0xEF)
        n = 3, c = b & 0x0Fu;
    else if (b >= 0xF0 && b <= 0xF4)
        n = 4, c = b & 0x07u;
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if ((n == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) || (n == 4 && (c < 0x10000 || c > 0x10FFFF)))
        return 0;
    *cp = c;
    return n;
}

static bool s_utf8_valid(const char *s, size_t len) {
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        size_t n = s_utf8_seq((const unsigned char *)s + i, len - i, &cp);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

int64_t sl__s3_parse_time(const char *s, size_t len) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* YYYY-MM-DDTHH:MM:SS: digits where the pattern has '9'. */
    static const char pat[] = "9999-99-99T99:99:99";
    int f[6] = {0}, fi = 0;
    if (!s || len < sizeof(pat) - 1)
        return 0;
    for (size_t i = 0; i < sizeof(pat) - 1; i++) {
        if (pat[i] == '9') {
            if (s[i] < '0' || s[i] > '9')
                return 0;
            f[fi] = f[fi] * 10 + (s[i] - '0');
        } else {
            if (s[i] != pat[i])
                return 0;
            fi++;
        }
    }
    int y = f[0], mo = f[1], d = f[2], h = f[3], mi = f[4], sec = f[5];
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1678 || y > 2261 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || sec > 60)
        return 0;
    size_t i = sizeof(pat) - 1;
    int64_t ns = 0;
    if (i < len && s[i] == '.') {
        int64_t scale = 100000000;
        size_t digits = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++, scale /= 10)
            ns += (s[i] - '0') * scale;
        if (!digits)
            return 0;
    }
    int offset_s = 0;
    if (i + 1 == len && s[i] == 'Z') {
        /* UTC */
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = s_hex(s[i + 1]) * 10 + s_hex(s[i + 2]), om = s_hex(s[i + 4]) * 10 + s_hex(s[i + 5]);
        for (size_t k = 1; k <= 5; k++)
            if (k != 3 && (s[i + k] < '0' || s[i + k] > '9'))
                return 0;
        if (oh > 23 || om > 59)
            return 0;
        offset_s = (s[i] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    } else {
        return 0;
    }
    /* Days from 1970-01-01 (Howard Hinnant's days_from_civil). */
    int ym = y - (mo <= 2);
    int era = ym / 400, yoe = ym % 400;
    int doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5;
    int64_t days = (int64_t)era * 146097 + (int64_t)yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468 + d - 1;
    return ((days * 24 + h) * 3600 + (int64_t)mi * 60 + sec - offset_s) * 1000000000 + ns;
}

bool sl__s3_etag_parse(const char *s, size_t len, char *out, bool *is_md5, unsigned char *md5) {
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"')
        s++, len -= 2;
    if (len == 0 || len > SL__S3_ETAG_MAX)
        return false;
    bool hex = len == 32;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Printable ASCII that needs no escaping in XML, so that a body that quotes it has a size known ahead. */
        if (c < 0x21 || c > 0x7E || c == '"' || c == '&' || c == '<' || c == '>' || c == '\'' || c == '\\')
            return false;
        hex = hex && s_hex(c) >= 0;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    if (is_md5)
        *is_md5 = hex;
    if (hex && md5)
        for (size_t i = 0; i < 16; i++)
            md5[i] = (unsigned char)(s_hex(s[2 * i]) << 4 | s_hex(s[2 * i + 1]));
    return true;
}

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool sl__s3_crc32c_parse(const char *s, size_t len, uint32_t *crc) {
    if (len != 8 || s[6] != '=' || s[7] != '=')
        return false;
    uint64_t bits = 0;
    for (int i = 0; i < 6; i++) {
        const char *p = s[i] ? strchr(s_b64, s[i]) : NULL;
        if (!p)
            return false;
        bits = bits << 6 | (uint64_t)(p - s_b64);
    }
    if (bits & 0xF) /* 36 bits for 32: the last 4 are zero in the one encoding S3 writes */
        return false;
    *crc = (uint32_t)(bits >> 4);
    return true;
}

void sl__s3_crc32c_format(uint32_t crc, char out[9]) {
    uint64_t bits = (uint64_t)crc << 4;
    for (int i = 5; i >= 0; i--, bits >>= 6)
        out[i] = s_b64[bits & 63];
    out[6] = out[7] = '=';
    out[8] = '\0';
}

bool sl__s3_region_of(const char *constraint, char *out, size_t cap) {
    const char *r = !constraint || !*constraint     ? "us-east-1"
                    : strcmp(constraint, "EU") == 0 ? "eu-west-1"
                                                    : constraint;
    size_t n = strlen(r);
    if (n + 1 > cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return false;
    memcpy(out, r, n + 1);
    return true;
}

/* ---- the parse ---- */

#define S_IS(name, lit) (strcmp(name, lit) == 0)

/* What element `name` is inside container `parent` of document `doc`: a leaf (*leaf set), a container, or S_C_SKIP. */
static int s_child(sl__s3_doc doc, int parent, const char *name, s_leaf *leaf) {
    s_leaf f = S_F_NONE;
    int c = 0;
    switch (parent) {
    case S_C_ROOT:
        switch (doc) {
        case SL__S3_DOC_ERROR:
            f = S_IS(name, "Code")        ? S_F_CODE
                : S_IS(name, "Message")   ? S_F_MESSAGE
                : S_IS(name, "Resource")  ? S_F_RESOURCE
                : S_IS(name, "RequestId") ? S_F_REQUEST_ID
                : S_IS(name, "Region")    ? S_F_REGION
                : S_IS(name, "Endpoint")  ? S_F_ENDPOINT
                : S_IS(name, "Bucket")    ? S_F_BUCKET
                                          : S_F_NONE;
            break;
        case SL__S3_DOC_LIST:
            f = S_IS(name, "IsTruncated")             ? S_F_TRUNCATED
                : S_IS(name, "NextContinuationToken") ? S_F_TOKEN
                : S_IS(name, "KeyCount")              ? S_F_KEY_COUNT
                : S_IS(name, "EncodingType")          ? S_F_ENCODING
                : S_IS(name, "Prefix")                ? S_F_L_PREFIX
                : S_IS(name, "Delimiter")             ? S_F_L_DELIMITER
                : S_IS(name, "StartAfter")            ? S_F_L_START_AFTER
                                                      : S_F_NONE;
            c = S_IS(name, "Contents") ? S_C_CONTENTS : S_IS(name, "CommonPrefixes") ? S_C_CPREFIX : 0;
            break;
        case SL__S3_DOC_INITIATE:
            f = S_IS(name, "UploadId") ? S_F_UPLOAD_ID : S_F_NONE;
            break;
        case SL__S3_DOC_COMPLETE:
            f = S_IS(name, "ETag") ? S_F_ETAG : S_IS(name, "ChecksumCRC32C") ? S_F_CRC32C : S_F_NONE;
            break;
        case SL__S3_DOC_COPY_OBJECT:
        case SL__S3_DOC_COPY_PART:
            f = S_IS(name, "ETag")             ? S_F_ETAG
                : S_IS(name, "LastModified")   ? S_F_MTIME
                : S_IS(name, "ChecksumCRC32C") ? S_F_CRC32C
                                               : S_F_NONE;
            break;
        case SL__S3_DOC_DELETE:
            c = S_IS(name, "Deleted") ? S_C_DELETED : S_IS(name, "Error") ? S_C_DELERROR : 0;
            break;
        case SL__S3_DOC_PARTS:
            f = S_IS(name, "IsTruncated") ? S_F_TRUNCATED : S_IS(name, "NextPartNumberMarker") ? S_F_P_NEXT_MARKER : 0;
            c = S_IS(name, "Part") ? S_C_PART : 0;
            break;
        default:
            break;
        }
        break;
    case S_C_CONTENTS:
        f = S_IS(name, "Key")                 ? S_F_KEY
            : S_IS(name, "Size")              ? S_F_SIZE
            : S_IS(name, "ETag")              ? S_F_ETAG
            : S_IS(name, "LastModified")      ? S_F_MTIME
            : S_IS(name, "ChecksumAlgorithm") ? S_F_CKALG
            : S_IS(name, "StorageClass")      ? S_F_SCLASS
                                              : S_F_NONE;
        break;
    case S_C_CPREFIX:
        f = S_IS(name, "Prefix") ? S_F_CP_PREFIX : S_F_NONE;
        break;
    case S_C_DELETED:
        f = S_IS(name, "Key") ? S_F_D_KEY : S_F_NONE;
        break;
    case S_C_DELERROR:
        f = S_IS(name, "Key") ? S_F_D_KEY : S_IS(name, "Code") ? S_F_D_CODE : S_IS(name, "Message") ? S_F_D_MESSAGE : 0;
        break;
    case S_C_PART:
        f = S_IS(name, "PartNumber")       ? S_F_P_NUMBER
            : S_IS(name, "ETag")           ? S_F_ETAG
            : S_IS(name, "Size")           ? S_F_SIZE
            : S_IS(name, "ChecksumCRC32C") ? S_F_CRC32C
                                           : S_F_NONE;
        break;
    default:
        break;
    }
    *leaf = f;
    return f ? 0 : c ? c : S_C_SKIP;
}

/* The most text a leaf keeps, and whether more is cut (true) or fails the answer (false). */
static size_t s_leaf_cap(s_leaf f, bool *cut) {
    *cut = true;
    switch (f) {
    case S_F_CODE:
        return sizeof(((sl__s3_error *)0)->code) - 1;
    case S_F_MESSAGE:
    case S_F_D_MESSAGE:
        return 4 * sizeof(((sl__s3_error *)0)->message); /* trimmed and cut after */
    case S_F_RESOURCE:
        return sizeof(((sl__s3_error *)0)->resource) - 1;
    case S_F_REQUEST_ID:
        return sizeof(((sl__s3_error *)0)->request_id) - 1;
    case S_F_REGION:
        return sizeof(((sl__s3_error *)0)->region) - 1;
    case S_F_ENDPOINT:
        return sizeof(((sl__s3_error *)0)->endpoint) - 1;
    case S_F_BUCKET:
        return sizeof(((sl__s3_error *)0)->bucket) - 1;
    case S_F_D_CODE:
    case S_F_SCLASS:
        return 63;
    default:
        break;
    }
    *cut = false;
    switch (f) {
    case S_F_TOKEN:
        return SL__S3_TOKEN_MAX;
    case S_F_UPLOAD_ID:
        return SL__S3_UPLOAD_ID_MAX;
    case S_F_KEY:
    case S_F_CP_PREFIX:
    case S_F_D_KEY:
    case S_F_L_PREFIX:
    case S_F_L_DELIMITER:
    case S_F_L_START_AFTER:
        return S_TEXT_CAP;
    case S_F_ETAG:
        return SL__S3_ETAG_MAX + 2 + 64; /* with quotes, and white space around */
    default:
        return 256; /* numbers, booleans, dates, names */
    }
}

static const char *s_leaf_name(s_leaf f) {
    switch (f) {
    case S_F_TOKEN:
        return "NextContinuationToken";
    case S_F_UPLOAD_ID:
        return "UploadId";
    case S_F_KEY:
    case S_F_D_KEY:
        return "Key";
    case S_F_CP_PREFIX:
    case S_F_L_PREFIX:
        return "Prefix";
    case S_F_L_DELIMITER:
        return "Delimiter";
    case S_F_L_START_AFTER:
        return "StartAfter";
    case S_F_ETAG:
        return "ETag";
    case S_F_SIZE:
        return "Size";
    case S_F_TRUNCATED:
        return "IsTruncated";
    case S_F_KEY_COUNT:
        return "KeyCount";
    case S_F_ENCODING:
        return "EncodingType";
    case S_F_CRC32C:
        return "ChecksumCRC32C";
    case S_F_P_NUMBER:
        return "PartNumber";
    case S_F_P_NEXT_MARKER:
        return "NextPartNumberMarker";
    case S_F_LOCATION:
        return "LocationConstraint";
    case S_F_MTIME:
        return "LastModified";
    default:
        return "a field";
    }
}

/* n, or less so that s[0, n) does not end inside a UTF-8 sequence. */
static size_t s_utf8_whole(const char *s, size_t n) {
    size_t lead = n;
    while (lead && ((unsigned char)s[lead - 1] & 0xC0) == 0x80 && n - lead < 3)
        lead--;
    if (lead && (unsigned char)s[lead - 1] >= 0xC0) {
        unsigned char b = (unsigned char)s[lead - 1];
        size_t want = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
        if (n - (lead - 1) < want)
            return lead - 1;
    }
    return n;
}

/* Copies text into a fixed field, cut at a UTF-8 boundary (expat gives UTF-8, but a leaf may have been cut). */
static void s_copy_cut(char *dst, size_t cap, const char *s, size_t len) {
    len = s_utf8_whole(s, len < cap ? len : cap - 1);
    memcpy(dst, s, len);
    dst[len] = '\0';
}

/* A message as one line: trimmed, each run of control characters (newlines included) one space, cut to cap at a
 * UTF-8 boundary. True when cut. */
static bool s_one_line(char *dst, size_t cap, const char *s, size_t len) {
    s = s_trim(s, &len);
    size_t n = 0;
    bool cut = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ctl = c < 0x20 || c == 0x7F;
        if (ctl && n && dst[n - 1] == ' ')
            continue;
        if (n + 1 >= cap) {
            cut = true;
            break;
        }
        dst[n++] = ctl ? ' ' : (char)c;
    }
    n = s_utf8_whole(dst, n);
    dst[n] = '\0';
    return cut;
}

static bool s_bool(const char *s, size_t len, bool *out) {
    s = s_trim(s, &len);
    if (len == 4 && memcmp(s, "true", 4) == 0)
        *out = true;
    else if (len == 5 && memcmp(s, "false", 5) == 0)
        *out = false;
    else
        return false;
    return true;
}

static unsigned s_checksum_bit(const char *s, size_t len) {
    s = s_trim(s, &len);
#define S_CK(lit, bit)                                                                                                 \
    if (len == sizeof(lit) - 1 && memcmp(s, lit, len) == 0)                                                            \
        return bit;
    S_CK("CRC32", SL__S3_CK_CRC32)
    S_CK("CRC32C", SL__S3_CK_CRC32C)
    S_CK("SHA1", SL__S3_CK_SHA1)
    S_CK("SHA256", SL__S3_CK_SHA256)
    S_CK("CRC64NVME", SL__S3_CK_CRC64NVME)
#undef S_CK
    return SL__S3_CK_OTHER;
}

/* A ChecksumCRC32C of a result or a part: "<base64>" or, for a multipart object's checksum of its parts' checksums,
 * "<base64>-<parts>". */
static bool s_crc_field(const char *s, size_t len, uint32_t *crc, unsigned *parts) {
    s = s_trim(s, &len);
    const char *dash = memchr(s, '-', len);
    uint64_t n = 0;
    if (dash && (!s_u64(dash + 1, len - (size_t)(dash + 1 - s), 10000, &n) || n == 0))
        return false;
    *parts = (unsigned)n;
    return sl__s3_crc32c_parse(s, dash ? (size_t)(dash - s) : len, crc);
}

static s_entry *s_cur(sl__s3_xml *x) {
    return &x->entries[x->n_entries];
}

/* The end of a leaf: its text goes where it belongs. */
static void s_leaf_done(sl__s3_xml *x) {
    s_leaf f = x->leaf;
    const char *t = x->text;
    size_t len = x->text_len;
    char shown[4 * S_SHOWN + 8];
    x->leaf = S_F_NONE;
    s_entry *e = x->in_entry ? s_cur(x) : NULL;
    if (!e && (f == S_F_KEY || f == S_F_CP_PREFIX || f == S_F_D_KEY || f == S_F_SIZE || f == S_F_CKALG ||
               f == S_F_SCLASS || f == S_F_D_CODE || f == S_F_D_MESSAGE || f == S_F_P_NUMBER))
        return; /* s_child gives these only inside an entry */
    /* A field S3 sends once, sent twice, would leave which one counts to chance. ChecksumAlgorithm is a list. */
    if (f != S_F_CKALG) {
        uint64_t *seen = e ? &e->seen : &x->root_seen, bit = (uint64_t)1 << f;
        if (*seen & bit) {
            s_fail(x, SL_ECORRUPT, "the answer has two <%s> in one <%s>", s_leaf_name(f),
                   e ? "entry" : sl__s3_doc_name(x->root));
            return;
        }
        *seen |= bit;
    }
    uint64_t n = 0;
    switch (f) {
    case S_F_CODE: {
        size_t l = len;
        const char *c = s_trim(t, &l);
        bool ident = l > 0;
        for (size_t i = 0; i < l && ident; i++)
            ident = (c[i] >= 'A' && c[i] <= 'Z') || (c[i] >= 'a' && c[i] <= 'z') || (c[i] >= '0' && c[i] <= '9') ||
                    c[i] == '.' || c[i] == '_' || c[i] == '-';
        if (ident)
            s_copy_cut(x->err.code, sizeof(x->err.code), c, l);
        break;
    }
    case S_F_MESSAGE:
        x->err.message_cut = s_one_line(x->err.message, sizeof(x->err.message), t, len) || x->text_cut;
        break;
    case S_F_RESOURCE:
        s_copy_cut(x->err.resource, sizeof(x->err.resource), t, len);
        break;
    case S_F_REQUEST_ID:
        s_copy_cut(x->err.request_id, sizeof(x->err.request_id), t, len);
        break;
    case S_F_REGION:
        s_copy_cut(x->err.region, sizeof(x->err.region), s_trim(t, &len), len);
        break;
    case S_F_ENDPOINT:
        s_copy_cut(x->err.endpoint, sizeof(x->err.endpoint), s_trim(t, &len), len);
        break;
    case S_F_BUCKET:
        s_copy_cut(x->err.bucket, sizeof(x->err.bucket), s_trim(t, &len), len);
        break;
    case S_F_TRUNCATED:
        if (!s_bool(t, len, &x->truncated))
            s_fail(x, SL_ECORRUPT, "IsTruncated is '%s', not true or false", s_shown(shown, sizeof(shown), t, len));
        break;
    case S_F_TOKEN:
        memcpy(x->token, t, len);
        x->token[len] = '\0';
        break;
    case S_F_KEY_COUNT: {
        const char *c = s_trim(t, &len);
        if (!s_u64(c, len, INT64_MAX, &n))
            s_fail(x, SL_ECORRUPT, "KeyCount is '%s', not a count", s_shown(shown, sizeof(shown), t, len));
        x->key_count = (int64_t)n;
        break;
    }
    case S_F_ENCODING: {
        const char *c = s_trim(t, &len);
        if (len == 3 && memcmp(c, "url", 3) == 0)
            x->url_encoded = true;
        else if (len)
            s_fail(x, SL_ECORRUPT, "EncodingType is '%s': only url is known", s_shown(shown, sizeof(shown), c, len));
        break;
    }
    case S_F_L_PREFIX:
    case S_F_L_DELIMITER:
    case S_F_L_START_AFTER:
        x->echo[f - S_F_L_PREFIX] = s_arena_text(x, t, len);
        break;
    case S_F_KEY:
    case S_F_CP_PREFIX:
    case S_F_D_KEY:
        e->name = s_arena_text(x, t, len);
        e->name_len = (uint32_t)len;
        break;
    case S_F_SIZE: {
        const char *c = s_trim(t, &len);
        if (!s_u64(c, len, UINT64_MAX, &e->size))
            s_fail(x, SL_ECORRUPT, "Size is '%s', not a size", s_shown(shown, sizeof(shown), t, len));
        e->has_size = true;
        break;
    }
    case S_F_ETAG: {
        char etag[SL__S3_ETAG_MAX + 1];
        bool md5;
        const char *c = s_trim(t, &len);
        if (!sl__s3_etag_parse(c, len, etag, &md5, e ? e->md5 : x->res.md5)) {
            if (!e || e->kind == S_E_PART) /* a listing's ETag only informs; the others are acted on */
                s_fail(x, SL_ECORRUPT, "ETag '%s' is not an ETag", s_shown(shown, sizeof(shown), c, len));
        } else if (e) {
            e->etag = s_arena_text(x, etag, strlen(etag));
            e->has_md5 = md5;
        } else {
            memcpy(x->res.etag, etag, sizeof(etag));
            x->res.etag_md5 = md5;
        }
        break;
    }
    case S_F_MTIME: {
        const char *c = s_trim(t, &len);
        int64_t ns = sl__s3_parse_time(c, len);
        if (e)
            e->mtime_ns = ns;
        else
            x->res.mtime_ns = ns;
        break;
    }
    case S_F_CKALG:
        e->checksums |= s_checksum_bit(t, len);
        break;
    case S_F_SCLASS:
        e->sclass = s_arena_text(x, s_trim(t, &len), len);
        break;
    case S_F_UPLOAD_ID: {
        const char *c = s_trim(t, &len);
        bool ok = len > 0;
        for (size_t i = 0; i < len && ok; i++)
            ok = c[i] > 0x20 && c[i] < 0x7F;
        if (!ok)
            s_fail(x, SL_ECORRUPT, "UploadId '%s' is not an upload id", s_shown(shown, sizeof(shown), t, len));
        memcpy(x->res.upload_id, c, len);
        x->res.upload_id[len] = '\0';
        break;
    }
    case S_F_CRC32C: {
        uint32_t crc;
        unsigned parts;
        if (!s_crc_field(t, len, &crc, &parts))
            s_fail(x, SL_ECORRUPT, "ChecksumCRC32C '%s' is not a CRC32C", s_shown(shown, sizeof(shown), t, len));
        else if (e && parts)
            s_fail(x, SL_ECORRUPT, "a part's ChecksumCRC32C '%s' is a multipart one",
                   s_shown(shown, sizeof(shown), t, len));
        else if (e)
            e->has_crc32c = true, e->crc32c = crc;
        else
            x->res.has_crc32c = true, x->res.crc32c = crc, x->res.crc32c_parts = parts;
        break;
    }
    case S_F_D_CODE:
        e->code = s_arena_text(x, s_trim(t, &len), len);
        break;
    case S_F_D_MESSAGE: {
        char line[sizeof(x->err.message)];
        s_one_line(line, sizeof(line), t, len);
        e->message = s_arena_text(x, line, strlen(line));
        break;
    }
    case S_F_P_NUMBER: {
        const char *c = s_trim(t, &len);
        if (!s_u64(c, len, 10000, &n) || n == 0)
            s_fail(x, SL_ECORRUPT, "PartNumber '%s' is not 1 to 10000", s_shown(shown, sizeof(shown), t, len));
        e->number = (unsigned)n;
        break;
    }
    case S_F_P_NEXT_MARKER: {
        const char *c = s_trim(t, &len);
        if (!s_u64(c, len, 10000, &n))
            s_fail(x, SL_ECORRUPT, "NextPartNumberMarker '%s' is not 0 to 10000",
                   s_shown(shown, sizeof(shown), t, len));
        x->next_marker = (unsigned)n;
        break;
    }
    case S_F_LOCATION: {
        char c[64];
        const char *v = s_trim(t, &len);
        bool ok = len < sizeof(c);
        if (ok) {
            memcpy(c, v, len);
            c[len] = '\0';
            ok = sl__s3_region_of(c, x->res.region, sizeof(x->res.region));
        }
        if (!ok)
            s_fail(x, SL_ECORRUPT, "LocationConstraint '%s' is not a region", s_shown(shown, sizeof(shown), v, len));
        break;
    }
    default:
        break;
    }
}

static const char *s_local(const char *name) {
    const char *colon = strrchr(name, ':');
    return colon ? colon + 1 : name;
}

static sl__s3_doc s_root_doc(const char *name) {
    for (int d = SL__S3_DOC_ERROR; d <= SL__S3_DOC_LOCATION; d++)
        if (strcmp(name, sl__s3_doc_name((sl__s3_doc)d)) == 0)
            return (sl__s3_doc)d;
    return SL__S3_DOC_NONE;
}

static void XMLCALL s_start(void *ud, const XML_Char *qname, const XML_Char **attrs) {
    sl__s3_xml *x = ud;
    (void)attrs;
    const char *name = s_local(qname);
    char shown[4 * S_SHOWN + 8];
    if (x->rc)
        return;
    if (x->leaf) {
        s_fail(x, SL_ECORRUPT, "<%s> inside <%s>", s_shown(shown, sizeof(shown), name, strlen(name)),
               s_leaf_name(x->leaf));
        return;
    }
    if (++x->depth > S_DEPTH_MAX) {
        s_fail(x, SL_ECORRUPT, "elements nested more than %d deep", S_DEPTH_MAX);
        return;
    }
    if (x->skip_depth)
        return;
    if (x->depth == 1) {
        x->root = s_root_doc(name);
        if (x->root != x->expect && x->root != SL__S3_DOC_ERROR) {
            s_fail(x, SL_ECORRUPT, "expected <%s>, the server answered <%s>", sl__s3_doc_name(x->expect),
                   s_shown(shown, sizeof(shown), name, strlen(name)));
            return;
        }
        x->stack[1] = S_C_ROOT;
        if (x->root == SL__S3_DOC_LOCATION) {
            x->leaf = S_F_LOCATION;
            x->leaf_depth = 1;
            x->text_len = 0;
            x->text_cut = false;
        }
        return;
    }
    s_leaf f;
    int c = s_child(x->root, x->stack[x->depth - 1], name, &f);
    if (f) {
        x->leaf = f;
        x->leaf_depth = x->depth;
        x->text_len = 0;
        x->text_cut = false;
        return;
    }
    if (c == S_C_SKIP) {
        x->skip_depth = x->depth;
        return;
    }
    /* An entry. */
    if (x->n_entries == SL__S3_PAGE_MAX) {
        s_fail(x, SL_ETOOBIG, "the answer has more than %zu entries", SL__S3_PAGE_MAX);
        return;
    }
    if (!x->entries && !(x->entries = malloc(SL__S3_PAGE_MAX * sizeof(*x->entries)))) {
        s_fail(x, SL_ENOMEM, "out of memory");
        return;
    }
    static const uint8_t kinds[] = {[S_C_CONTENTS] = S_E_OBJECT,
                                    [S_C_CPREFIX] = S_E_PREFIX,
                                    [S_C_DELETED] = S_E_DELETED,
                                    [S_C_DELERROR] = S_E_DELERROR,
                                    [S_C_PART] = S_E_PART};
    memset(s_cur(x), 0, sizeof(s_entry));
    s_cur(x)->kind = kinds[c];
    x->in_entry = true;
    x->stack[x->depth] = (uint8_t)c;
}

static void XMLCALL s_end(void *ud, const XML_Char *qname) {
    sl__s3_xml *x = ud;
    (void)qname;
    if (x->rc)
        return;
    unsigned depth = x->depth--;
    if (x->skip_depth) {
        if (depth == x->skip_depth)
            x->skip_depth = 0;
        return;
    }
    if (x->leaf && depth == x->leaf_depth) {
        s_leaf_done(x);
        return;
    }
    if (!x->in_entry || depth != 2)
        return;
    s_entry *e = s_cur(x);
    x->in_entry = false;
    char shown[4 * S_SHOWN + 8];
    const char *name = e->name ? x->arena + e->name : "";
    switch (e->kind) {
    case S_E_OBJECT:
        if (!e->name)
            s_fail(x, SL_ECORRUPT, "a <Contents> without a <Key>");
        else if (!e->has_size)
            s_fail(x, SL_ECORRUPT, "'%s' comes without a <Size>", s_shown(shown, sizeof(shown), name, e->name_len));
        break;
    case S_E_PREFIX:
        if (!e->name)
            s_fail(x, SL_ECORRUPT, "a <CommonPrefixes> without a <Prefix>");
        break;
    case S_E_DELETED:
    case S_E_DELERROR:
        if (!e->name)
            s_fail(x, SL_ECORRUPT, "a <%s> without a <Key>", e->kind == S_E_DELETED ? "Deleted" : "Error");
        break;
    default:
        if (!e->number || !e->etag || !e->has_size)
            s_fail(x, SL_ECORRUPT, "a <Part> without its PartNumber, ETag or Size");
        break;
    }
    if (!x->rc)
        x->n_entries++;
}

static void XMLCALL s_text(void *ud, const XML_Char *s, int len) {
    sl__s3_xml *x = ud;
    if (x->rc || !x->leaf || x->skip_depth || len <= 0)
        return;
    bool cut;
    size_t cap = s_leaf_cap(x->leaf, &cut), n = (size_t)len;
    if (x->text_len + n > cap) {
        memcpy(x->text + x->text_len, s, cap - x->text_len); /* quoted below from its start, however it came */
        x->text_len = cap;
        if (!cut) {
            char shown[4 * S_SHOWN + 8];
            s_fail(x,
                   x->leaf == S_F_KEY || x->leaf == S_F_CP_PREFIX || x->leaf == S_F_D_KEY ? SL_ENAMETOOLONG
                                                                                          : SL_ECORRUPT,
                   "<%s> longer than %zu bytes: '%s'", s_leaf_name(x->leaf), cap,
                   s_shown(shown, sizeof(shown), x->text, x->text_len));
            return;
        }
        x->text_cut = true;
        return;
    }
    memcpy(x->text + x->text_len, s, n);
    x->text_len += n;
}

static void XMLCALL s_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                              int has_internal_subset) {
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    if (((sl__s3_xml *)ud)->rc)
        return;
    s_fail(ud, SL_ECORRUPT, "the answer has a DOCTYPE, which S3 never sends (entity declarations are refused)");
}

static void XMLCALL s_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value, int value_len,
                             const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                             const XML_Char *notation) {
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid, (void)pubid, (void)notation;
    if (((sl__s3_xml *)ud)->rc)
        return;
    s_fail(ud, SL_ECORRUPT, "the answer declares an entity (refused)");
}

static void s_setup(sl__s3_xml *x) {
    XML_SetUserData(x->xp, x);
    XML_SetElementHandler(x->xp, s_start, s_end);
    XML_SetCharacterDataHandler(x->xp, s_text);
    XML_SetStartDoctypeDeclHandler(x->xp, s_doctype);
    XML_SetEntityDeclHandler(x->xp, s_entity);
    XML_SetParamEntityParsing(x->xp, XML_PARAM_ENTITY_PARSING_NEVER);
}

sl__s3_xml *sl__s3_xml_new(void) {
    /* Refusing DOCTYPE keeps entities out; an expat that expands them without a limit is not used all the same. */
    bool dtd = false, limited = false;
    for (const XML_Feature *f = XML_GetFeatureList(); f && f->feature != XML_FEATURE_END; f++) {
        dtd = dtd || f->feature == XML_FEATURE_DTD;
        limited = limited || f->feature == XML_FEATURE_BILLION_LAUGHS_ATTACK_PROTECTION_MAXIMUM_AMPLIFICATION_DEFAULT;
    }
    if (dtd && !limited) {
        sl__fail(SL_ENOTSUP,
                 "the expat library in use (%s) has no entity amplification limit: expat 2.4 or later "
                 "is needed",
                 XML_ExpatVersion());
        return NULL;
    }
    sl__s3_xml *x = calloc(1, sizeof(*x));
    if (!x) {
        sl__fail(SL_ENOMEM, "out of memory");
        return NULL;
    }
    tl_expat_used = &x->expat_used;
    x->xp = XML_ParserCreate_MM("UTF-8", &s_suite, NULL);
    tl_expat_used = NULL;
    if (!x->xp) {
        free(x);
        sl__fail(SL_ENOMEM, "out of memory");
        return NULL;
    }
    s_setup(x);
    x->rc = SL_EINVAL; /* no answer begun */
    snprintf(x->why, sizeof(x->why), "s3: no answer was begun");
    return x;
}

void sl__s3_xml_destroy(sl__s3_xml *x) {
    if (!x)
        return;
    if (x->xp) {
        tl_expat_used = &x->expat_used;
        XML_ParserFree(x->xp);
        tl_expat_used = NULL;
    }
    free(x->entries);
    free(x->arena);
    free(x);
}

int sl__s3_xml_begin(sl__s3_xml *x, sl__s3_doc expect, const char *what) {
    tl_expat_used = &x->expat_used;
    XML_Bool ok = XML_ParserReset(x->xp, "UTF-8");
    tl_expat_used = NULL;
    if (!ok)
        return sl__fail(SL_ENOMEM, "out of memory");
    s_setup(x);
    x->expect = expect;
    x->root = SL__S3_DOC_NONE;
    x->rc = 0;
    x->ended = x->started = false;
    x->body_bytes = x->skipped = 0;
    snprintf(x->what, sizeof(x->what), "%s", what ? what : "s3");
    x->depth = x->skip_depth = x->leaf_depth = 0;
    x->leaf = S_F_NONE;
    x->root_seen = 0;
    x->text_len = 0;
    memset(&x->err, 0, sizeof(x->err));
    memset(&x->res, 0, sizeof(x->res));
    x->truncated = x->url_encoded = false;
    x->key_count = -1;
    x->next_marker = 0;
    x->token[0] = '\0';
    memset(x->echo, 0, sizeof(x->echo));
    x->n_entries = 0;
    x->in_entry = false;
    x->next_obj = x->next_pfx = x->next_part = 0;
    x->arena_len = 1; /* offset 0 means "absent" */
    return 0;
}

/* Fails the answer with what expat says. */
static int s_expat_fail(sl__s3_xml *x) {
    enum XML_Error e = XML_GetErrorCode(x->xp);
    if (e == XML_ERROR_NO_MEMORY)
        return s_fail(x, SL_ETOOBIG, "the answer is not valid XML, or has a token over %zu MiB (out of parser memory)",
                      SL__S3_XML_EXPAT_CAP >> 20);
    XML_Index at = XML_GetCurrentByteIndex(x->xp);
    return s_fail(x, SL_ECORRUPT, "the answer is not valid XML: %s (at byte %lld)", XML_ErrorString(e),
                  (long long)(at < 0 ? 0 : (uint64_t)at + x->skipped));
}

static int s_parse(sl__s3_xml *x, const char *p, size_t len, bool final) {
    tl_expat_used = &x->expat_used;
    enum XML_Status st = XML_STATUS_OK;
    do {
        size_t n = len < S_FEED_PIECE ? len : S_FEED_PIECE;
        st = XML_Parse(x->xp, p, (int)n, final && n == len);
        if (n)
            p += n, len -= n;
    } while (st == XML_STATUS_OK && len);
    tl_expat_used = NULL;
    if (x->rc)
        return x->rc;
    return st == XML_STATUS_OK ? 0 : s_expat_fail(x);
}

/* The answer failed before, or was ended: fails the same way again. */
static int s_again(sl__s3_xml *x) {
    return x->rc ? sl__fail(x->rc, "%s", x->why) : sl__fail(SL_EINVAL, "%s: the answer was already ended", x->what);
}

int sl__s3_xml_feed(sl__s3_xml *x, const void *data, size_t len) {
    if (x->rc || x->ended)
        return s_again(x);
    if (len > SL__S3_XML_BODY_CAP - x->body_bytes)
        return s_fail(x, SL_ETOOBIG, "the answer is longer than %llu MiB",
                      (unsigned long long)(SL__S3_XML_BODY_CAP >> 20));
    x->body_bytes += len;
    const char *p = data;
    if (!x->started) {
        /* CompleteMultipartUpload and CopyObject send white space while they work, before the document. */
        size_t skip = 0;
        while (skip < len && s_is_space(p[skip]))
            skip++;
        x->skipped += skip;
        p += skip, len -= skip;
        if (!len)
            return 0;
        x->started = true;
    }
    return s_parse(x, p, len, false);
}

int sl__s3_xml_failed(const sl__s3_xml *x) {
    return x->rc;
}

size_t sl__s3_xml_write(void *user_data, const void *data, size_t len) {
    return sl__s3_xml_feed(user_data, data, len) == 0 ? len : 0;
}

/* Percent-decodes s (len bytes) in place, '+' as a space; false on a '%' without two hex digits. */
static bool s_url_decode(char *s, size_t len, size_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < len ? s_hex((unsigned char)s[i + 1]) : -1,
                lo = hi >= 0 ? s_hex((unsigned char)s[i + 2]) : -1;
            if (lo < 0)
                return false;
            s[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            s[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    s[o] = '\0';
    *out = o;
    return true;
}

/* A listing's key or prefix at arena offset `at` (raw_len bytes as received): decoded when the answer says so, and
 * checked. Its decoded length in *len. */
static int s_key_final(sl__s3_xml *x, uint32_t at, size_t raw_len, const char *field, uint32_t *len) {
    char *s = x->arena + at;
    char shown[4 * S_SHOWN + 8];
    size_t n = raw_len;
    const char *why = NULL;
    if (x->url_encoded) {
        s_shown(shown, sizeof(shown), s, raw_len); /* before decoding changes it */
        if (!s_url_decode(s, raw_len, &n))
            why = "has a '%' without two hex digits after it";
    }
    if (!why && memchr(s, '\0', n))
        why = "decodes to a NUL byte";
    else if (!why && !s_utf8_valid(s, n))
        why = "decodes to text that is not UTF-8";
    if (why)
        return s_fail(x, SL_ECORRUPT, "the listing's %s '%s' %s", field, shown, why);
    if (n > SL__S3_KEY_MAX)
        return s_fail(x, SL_ENAMETOOLONG, "the listing's %s '%s' is longer than %zu bytes", field,
                      s_shown(shown, sizeof(shown), s, n), SL__S3_KEY_MAX);
    *len = (uint32_t)n;
    return 0;
}

int sl__s3_xml_end(sl__s3_xml *x) {
    if (x->rc || x->ended)
        return s_again(x);
    if (!x->started) {
        if (x->expect == SL__S3_DOC_DELETE) {
            x->ended = true;
            return 0;
        }
        return s_fail(x, SL_ECORRUPT, "the answer is empty (expected <%s>)", sl__s3_doc_name(x->expect));
    }
    int rc = s_parse(x, NULL, 0, true);
    if (rc < 0)
        return rc;
    if (x->root == SL__S3_DOC_LIST) {
        static const char *const echo_names[] = {"Prefix", "Delimiter", "StartAfter"};
        for (size_t i = 0; i < x->n_entries; i++) {
            s_entry *e = &x->entries[i];
            if ((rc = s_key_final(x, e->name, e->name_len, e->kind == S_E_OBJECT ? "key" : "prefix", &e->name_len)))
                return rc;
        }
        for (int i = 0; i < 3; i++) {
            uint32_t len;
            if (x->echo[i] && (rc = s_key_final(x, x->echo[i], strlen(x->arena + x->echo[i]), echo_names[i], &len)))
                return rc;
        }
    }
    x->ended = true;
    return 0;
}

int sl__s3_xml_parse(sl__s3_xml *x, sl__s3_doc expect, const char *what, const void *body, size_t len) {
    int rc = sl__s3_xml_begin(x, expect, what);
    if (!rc)
        rc = sl__s3_xml_feed(x, body, len);
    if (!rc)
        rc = sl__s3_xml_end(x);
    return rc;
}

sl__s3_doc sl__s3_xml_root(const sl__s3_xml *x) {
    return x->ended ? x->root : SL__S3_DOC_NONE;
}

const sl__s3_error *sl__s3_xml_error(const sl__s3_xml *x) {
    return &x->err;
}

const sl__s3_result *sl__s3_xml_result(const sl__s3_xml *x) {
    return &x->res;
}

bool sl__s3_xml_list_truncated(const sl__s3_xml *x) {
    return x->ended && x->root == SL__S3_DOC_LIST && x->truncated;
}

const char *sl__s3_xml_list_token(const sl__s3_xml *x) {
    return x->ended && x->token[0] ? x->token : NULL;
}

int64_t sl__s3_xml_list_key_count(const sl__s3_xml *x) {
    return x->ended ? x->key_count : -1;
}

const char *sl__s3_xml_list_echo(const sl__s3_xml *x, sl__s3_echo which) {
    if (!x->ended || x->root != SL__S3_DOC_LIST || (unsigned)which > SL__S3_ECHO_START_AFTER || !x->echo[which])
        return NULL;
    return x->arena + x->echo[which];
}

bool sl__s3_xml_list_url_encoded(const sl__s3_xml *x) {
    return x->ended && x->url_encoded;
}

/* The next entry of `kind` at or after *at; NULL at the end. */
static s_entry *s_scan(const sl__s3_xml *x, size_t *at, int kind) {
    while (*at < x->n_entries && x->entries[*at].kind != kind)
        ++*at;
    return *at < x->n_entries ? &x->entries[*at] : NULL;
}

int sl__s3_xml_list_next(sl__s3_xml *x, const char **name, size_t *name_len, sl_object *out, sl__s3_entry *info) {
    if (!x->ended || x->root != SL__S3_DOC_LIST)
        return 0;
    s_entry *o = s_scan(x, &x->next_obj, S_E_OBJECT), *p = s_scan(x, &x->next_pfx, S_E_PREFIX);
    if (!o && !p)
        return 0;
    bool pick_prefix = false;
    if (o && p) {
        size_t n = o->name_len < p->name_len ? o->name_len : p->name_len;
        int c = memcmp(x->arena + p->name, x->arena + o->name, n);
        pick_prefix = c < 0 || (c == 0 && p->name_len < o->name_len);
    } else {
        pick_prefix = p != NULL;
    }
    s_entry *e = pick_prefix ? p : o;
    *(pick_prefix ? &x->next_pfx : &x->next_obj) += 1;
    memset(out, 0, sizeof(*out));
    *name = x->arena + e->name;
    *name_len = e->name_len;
    if (info)
        *info = (sl__s3_entry){.etag = "", .storage_class = ""};
    if (pick_prefix) {
        out->is_prefix = true;
        return 1;
    }
    out->size = e->size;
    out->mtime_ns = e->mtime_ns;
    out->has_md5 = e->has_md5;
    if (e->has_md5)
        memcpy(out->md5, e->md5, 16);
    if (info) {
        info->etag = e->etag ? x->arena + e->etag : "";
        info->storage_class = e->sclass ? x->arena + e->sclass : "";
        info->checksums = e->checksums;
    }
    return 1;
}

int sl__s3_xml_deleted_each(const sl__s3_xml *x, sl__s3_deleted_fn fn, void *user_data) {
    if (!x->ended || x->root != SL__S3_DOC_DELETE)
        return 0;
    for (size_t i = 0; i < x->n_entries; i++) {
        const s_entry *e = &x->entries[i];
        sl__s3_deleted d = {
            .key = x->arena + e->name,
            .key_len = e->name_len,
            .code = e->kind == S_E_DELETED ? NULL
                    : e->code              ? x->arena + e->code
                                           : "",
            .message = e->kind == S_E_DELETED ? NULL
                       : e->message           ? x->arena + e->message
                                              : "",
        };
        int rc = fn(user_data, &d);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int sl__s3_xml_part_next(sl__s3_xml *x, sl__s3_part_info *out) {
    if (!x->ended || x->root != SL__S3_DOC_PARTS)
        return 0;
    s_entry *e = s_scan(x, &x->next_part, S_E_PART);
    if (!e)
        return 0;
    x->next_part++;
    *out = (sl__s3_part_info){.number = e->number,
                              .size = e->size,
                              .etag = x->arena + e->etag,
                              .has_crc32c = e->has_crc32c,
                              .crc32c = e->crc32c};
    return 1;
}

bool sl__s3_xml_parts_truncated(const sl__s3_xml *x) {
    return x->ended && x->root == SL__S3_DOC_PARTS && x->truncated;
}

unsigned sl__s3_xml_parts_next_marker(const sl__s3_xml *x) {
    return x->ended && x->root == SL__S3_DOC_PARTS ? x->next_marker : 0;
}

/* ---- errors ---- */

sl__s3_error_class sl__s3_error_classify(const char *code, long status) {
    static const struct {
        const char *code;
        sl__s3_error_class cls;
    } codes[] = {
        {"InternalError", SL__S3_ERR_RETRY},
        {"SlowDown", SL__S3_ERR_RETRY},
        {"ServiceUnavailable", SL__S3_ERR_RETRY},
        {"RequestTimeout", SL__S3_ERR_RETRY},
        {"RequestTimeoutException", SL__S3_ERR_RETRY},
        {"Throttling", SL__S3_ERR_RETRY},
        {"ThrottlingException", SL__S3_ERR_RETRY},
        {"RequestThrottled", SL__S3_ERR_RETRY},
        {"RequestLimitExceeded", SL__S3_ERR_RETRY},
        {"BandwidthLimitExceeded", SL__S3_ERR_RETRY},
        {"TooManyRequestsException", SL__S3_ERR_RETRY},
        {"PriorRequestNotComplete", SL__S3_ERR_RETRY},
        {"OperationAborted", SL__S3_ERR_RETRY},
        {"ConditionalRequestConflict", SL__S3_ERR_RETRY},
        {"503Throttling", SL__S3_ERR_RETRY},
        {"ExpiredToken", SL__S3_ERR_REFRESH},
        {"ExpiredTokenException", SL__S3_ERR_REFRESH},
        {"TokenRefreshRequired", SL__S3_ERR_REFRESH},
        {"AuthorizationHeaderMalformed", SL__S3_ERR_REGION},
        {"PermanentRedirect", SL__S3_ERR_REGION},
        {"TemporaryRedirect", SL__S3_ERR_REGION},
        {"NoSuchKey", SL__S3_ERR_NOT_FOUND},
        {"NoSuchBucket", SL__S3_ERR_NOT_FOUND},
        {"NoSuchUpload", SL__S3_ERR_NOT_FOUND},
        {"NoSuchVersion", SL__S3_ERR_NOT_FOUND},
        {"PreconditionFailed", SL__S3_ERR_PRECONDITION},
        {"BadDigest", SL__S3_ERR_CORRUPT},
        {"InvalidDigest", SL__S3_ERR_CORRUPT},
        {"XAmzContentSHA256Mismatch", SL__S3_ERR_CORRUPT},
        {"IncompleteBody", SL__S3_ERR_CORRUPT},
        {"AccessDenied", SL__S3_ERR_DENIED},
        {"AllAccessDisabled", SL__S3_ERR_DENIED},
        {"InvalidAccessKeyId", SL__S3_ERR_DENIED},
        {"SignatureDoesNotMatch", SL__S3_ERR_DENIED},
        {"AccountProblem", SL__S3_ERR_DENIED},
        {"InvalidToken", SL__S3_ERR_DENIED},
        {"InvalidRange", SL__S3_ERR_RANGE},
    };
    if (code && *code) {
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
            if (strcmp(code, codes[i].code) == 0)
                return codes[i].cls;
        return SL__S3_ERR_OTHER;
    }
    switch (status) {
    case 301:
    case 307:
        return SL__S3_ERR_REGION;
    case 401:
    case 403:
        return SL__S3_ERR_DENIED;
    case 404:
        return SL__S3_ERR_NOT_FOUND;
    case 412:
        return SL__S3_ERR_PRECONDITION;
    case 416:
        return SL__S3_ERR_RANGE;
    case 408:
    case 429:
        return SL__S3_ERR_RETRY;
    default:
        return status >= 500 && status <= 599 ? SL__S3_ERR_RETRY : SL__S3_ERR_OTHER;
    }
}

int sl__s3_error_errno(sl__s3_error_class cls) {
    switch (cls) {
    case SL__S3_ERR_NOT_FOUND:
        return SL_ENOENT;
    case SL__S3_ERR_PRECONDITION:
        return SL_EEXIST;
    case SL__S3_ERR_CORRUPT:
        return SL_ECORRUPT;
    case SL__S3_ERR_REFRESH:
    case SL__S3_ERR_DENIED:
        return SL_EACCES;
    case SL__S3_ERR_RANGE:
        return SL_ERANGE;
    default:
        return SL_EIO;
    }
}

size_t sl__s3_error_line(char *buf, size_t cap, const char *bucket, const char *key, long status, const sl__s3_error *e,
                         sl__s3_secret_fn secret, void *secret_data) {
    static const char hidden[] = "(the server's message is not shown: it quotes a credential)";
    char line[SL__MESSAGE_CAP], said[sizeof(e->code) + sizeof(e->message) + 8];
    size_t n = (size_t)snprintf(line, sizeof(line), "s3://%s", bucket ? bucket : "");
    if (key && *key) {
        line[n++] = '/';
        n += sl_text_escape(line + n, sizeof(line) - n, key, strlen(key));
        if (n >= sizeof(line))
            n = sizeof(line) - 1;
    }
    const char *code = e ? e->code : "", *msg = e ? e->message : "";
    if (*code)
        snprintf(said, sizeof(said), "%s%s%s", code, *msg ? ": " : "", msg);
    else
        snprintf(said, sizeof(said), "HTTP %ld%s%s", status, *msg ? ": " : "", msg);
    if (secret && secret(secret_data, said)) {
        if (*code && !secret(secret_data, code))
            snprintf(said, sizeof(said), "%s: %s", code, hidden);
        else if (*code)
            snprintf(said, sizeof(said), "HTTP %ld: %s", status, hidden);
        else
            snprintf(said, sizeof(said), "HTTP %ld: %s", status, hidden);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, ": %s", said);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    return cap ? sl__text_cut(buf, cap, line, n) : 0;
}

/* ---- bodies ---- */

static const char s_complete_head[] = "<CompleteMultipartUpload xmlns=\"" S_NS "\">";
static const char s_complete_tail[] = "</CompleteMultipartUpload>";
static const char s_delete_head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete xmlns=\"" S_NS "\">";
static const char s_delete_tail[] = "</Delete>";

/* Appends len bytes when they fit with room for `keep` more after them. */
static bool s_put(sl__s3_body *b, const char *s, size_t len, size_t keep) {
    if (b->cap - b->len < len || b->cap - b->len - len < keep)
        return false;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    return true;
}

int sl__s3_complete_begin(sl__s3_body *b, char *data, size_t cap) {
    *b = (sl__s3_body){.data = data, .cap = cap};
    if (!s_put(b, s_complete_head, sizeof(s_complete_head) - 1, sizeof(s_complete_tail) - 1))
        return sl__fail(SL_ETOOBIG, "CompleteMultipartUpload: a buffer of %zu bytes cannot hold the body", cap);
    return 0;
}

int sl__s3_complete_add(sl__s3_body *b, unsigned number, const char *etag, bool has_crc32c, uint32_t crc32c) {
    char tag[SL__S3_ETAG_MAX + 1], shown[4 * S_SHOWN + 8];
    if (b->finished)
        return sl__fail(SL_EINVAL, "CompleteMultipartUpload: the body is already closed");
    if (number < 1 || number > 10000 || number <= b->last_part)
        return sl__fail(SL_EINVAL, "CompleteMultipartUpload: part number %u is not 1 to 10000 and after %u", number,
                        b->last_part);
    if (!etag || !sl__s3_etag_parse(etag, strlen(etag), tag, NULL, NULL))
        return sl__fail(SL_EINVAL, "CompleteMultipartUpload: part %u has no usable ETag ('%s')", number,
                        etag ? s_shown(shown, sizeof(shown), etag, strlen(etag)) : "");
    char crc[9] = "", part[SL__S3_COMPLETE_PART_MAX + 1];
    if (has_crc32c)
        sl__s3_crc32c_format(crc32c, crc);
    int n = snprintf(part, sizeof(part), "<Part><PartNumber>%u</PartNumber><ETag>&quot;%s&quot;</ETag>%s%s%s</Part>",
                     number, tag, has_crc32c ? "<ChecksumCRC32C>" : "", crc, has_crc32c ? "</ChecksumCRC32C>" : "");
    if (!s_put(b, part, (size_t)n, sizeof(s_complete_tail) - 1))
        return sl__fail(SL_ETOOBIG, "CompleteMultipartUpload: part %u does not fit the body's %zu bytes", number,
                        b->cap);
    b->last_part = number;
    b->count++;
    return 0;
}

int sl__s3_complete_end(sl__s3_body *b) {
    if (b->finished)
        return sl__fail(SL_EINVAL, "CompleteMultipartUpload: the body is already closed");
    if (!b->count)
        return sl__fail(SL_EINVAL, "CompleteMultipartUpload: no part");
    s_put(b, s_complete_tail, sizeof(s_complete_tail) - 1, 0); /* room kept by every add */
    b->finished = true;
    return 0;
}

int sl__s3_delete_begin(sl__s3_body *b, char *data, size_t cap, bool quiet) {
    *b = (sl__s3_body){.data = data, .cap = cap};
    const char *q = quiet ? "<Quiet>true</Quiet>" : "";
    if (!s_put(b, s_delete_head, sizeof(s_delete_head) - 1, strlen(q) + sizeof(s_delete_tail) - 1) ||
        !s_put(b, q, strlen(q), sizeof(s_delete_tail) - 1))
        return sl__fail(SL_ETOOBIG, "DeleteObjects: a buffer of %zu bytes cannot hold the body", cap);
    return 0;
}

int sl__s3_delete_add(sl__s3_body *b, const char *key, size_t len, const char *what) {
    char shown[4 * S_SHOWN + 8];
    if (b->finished)
        return sl__fail(SL_EINVAL, "DeleteObjects: the body is already closed");
    if (len == 0)
        return sl__fail(SL_EINVAL, "%s: cannot delete an empty key", what);
    if (len > SL__S3_KEY_MAX)
        return sl__fail(SL_EINVAL, "%s: cannot delete '%s' in a batch: longer than %zu bytes", what,
                        s_shown(shown, sizeof(shown), key, len), SL__S3_KEY_MAX);
    if (b->count >= SL__S3_PAGE_MAX)
        return sl__fail(SL_ETOOBIG, "DeleteObjects: a batch has %zu keys at most", SL__S3_PAGE_MAX);
    /* Checked whole first: a key refused is refused whatever room is left. */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = s_utf8_seq((const unsigned char *)key + i, len - i, &cp);
        const char *why = !n ? "it is not UTF-8"
                          : (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xFFFE || cp == 0xFFFF
                              ? "it holds a character XML 1.0 cannot carry"
                              : NULL;
        if (why)
            return sl__fail(SL_EINVAL, "%s: cannot delete '%s' in a batch: %s (at byte %zu); delete it alone", what,
                            s_shown(shown, sizeof(shown), key, len), why, i);
        i += n;
    }
    static const char open[] = "<Object><Key>", close[] = "</Key></Object>";
    size_t keep = sizeof(s_delete_tail) - 1, start = b->len;
    if (!s_put(b, open, sizeof(open) - 1, keep))
        goto full;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        const char *esc = c == '&'    ? "&amp;"
                          : c == '<'  ? "&lt;"
                          : c == '>'  ? "&gt;"
                          : c == '"'  ? "&quot;"
                          : c == '\'' ? "&apos;"
                          : c == '\r' ? "&#13;"
                          : c == '\n' ? "&#10;"
                          : c == '\t' ? "&#9;"
                                      : NULL;
        if (!(esc ? s_put(b, esc, strlen(esc), keep) : s_put(b, &key[i], 1, keep)))
            goto full;
    }
    if (!s_put(b, close, sizeof(close) - 1, keep))
        goto full;
    b->count++;
    return 0;
full:
    b->len = start;
    return sl__fail(SL_ETOOBIG, "DeleteObjects: '%s' does not fit the body's %zu bytes",
                    s_shown(shown, sizeof(shown), key, len), b->cap);
}

int sl__s3_delete_end(sl__s3_body *b) {
    if (b->finished)
        return sl__fail(SL_EINVAL, "DeleteObjects: the body is already closed");
    if (!b->count)
        return sl__fail(SL_EINVAL, "DeleteObjects: no key");
    s_put(b, s_delete_tail, sizeof(s_delete_tail) - 1, 0);
    b->finished = true;
    return 0;
}
