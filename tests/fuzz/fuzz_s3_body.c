/* libFuzzer target: the bodies the s3:// store sends. The input is a list of keys (its first byte separates them) put
 * in a DeleteObjects body, and of ETags put in a CompleteMultipartUpload body. A key is refused exactly when it is not
 * UTF-8, holds a character XML 1.0 cannot carry or is empty; each key taken is read back by a plain expat parser as
 * it was given (CR, LF and TAB included), and each ETag as its unquoted self; the bodies stay within their buffers. */
#include "s3_xml.h"
#include "sluice/sluice.h"

#include <expat.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEYS_MAX 64

typedef struct rb {
    const char *want[KEYS_MAX];
    size_t want_len[KEYS_MAX];
    int n, at;
    const char *tag; /* "Key" or "ETag" */
    bool in;
    char text[16384];
    size_t len;
} rb;

static void XMLCALL rb_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
    rb *r = ud;
    (void)attrs;
    r->in = strcmp(name, r->tag) == 0;
    r->len = 0;
}

static void XMLCALL rb_end(void *ud, const XML_Char *name) {
    rb *r = ud;
    if (strcmp(name, r->tag) != 0)
        return;
    if (r->at >= r->n || r->len != r->want_len[r->at] || memcmp(r->text, r->want[r->at], r->len) != 0)
        abort(); /* read back otherwise than given */
    r->at++;
    r->in = false;
}

static void XMLCALL rb_text(void *ud, const XML_Char *s, int len) {
    rb *r = ud;
    if (!r->in)
        return;
    if (r->len + (size_t)len > sizeof(r->text))
        abort();
    memcpy(r->text + r->len, s, (size_t)len);
    r->len += (size_t)len;
}

static void read_back(rb *r, const char *body, size_t len) {
    XML_Parser p = XML_ParserCreate(NULL);
    XML_SetUserData(p, r);
    XML_SetElementHandler(p, rb_start, rb_end);
    XML_SetCharacterDataHandler(p, rb_text);
    if (XML_Parse(p, body, (int)len, 1) != XML_STATUS_OK || r->at != r->n)
        abort(); /* not well-formed, or keys missing */
    XML_ParserFree(p);
}

/* What the writer must refuse: not UTF-8 (overlong, surrogate, past U+10FFFF, cut), a C0 control but TAB, LF, CR,
 * U+FFFE, U+FFFF. */
static bool key_ok(const unsigned char *s, size_t len) {
    if (len == 0 || len > SL__S3_KEY_MAX)
        return false;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i], n, cp;
        if (c < 0x80)
            n = 1, cp = c;
        else if (c >= 0xC2 && c <= 0xDF)
            n = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 4, cp = c & 0x07;
        else
            return false;
        if (i + n > len)
            return false;
        for (unsigned k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        if ((cp < 0x20 && cp != 9 && cp != 10 && cp != 13) || cp == 0xFFFE || cp == 0xFFFF)
            return false;
        i += n;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    static char buf[1 << 16], tags[KEYS_MAX][SL__S3_ETAG_MAX + 1];
    unsigned char sep = data[0];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    rb keys = {.tag = "Key"}, etags = {.tag = "ETag"};
    sl__s3_body del, cmp;
    size_t cap = 1 + (size_t)data[1] * 64; /* small buffers too, so that full ones are met */
    if (sl__s3_delete_begin(&del, buf, cap, true) != 0) {
        if (cap >= 200)
            abort();
        return 0;
    }
    static char cbuf[SL__S3_COMPLETE_CAP(KEYS_MAX)];
    if (sl__s3_complete_begin(&cmp, cbuf, sizeof(cbuf)) != 0)
        abort();
    while (p < end && keys.n < KEYS_MAX && etags.n < KEYS_MAX) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        size_t len = q ? (size_t)(q - p) : (size_t)(end - p);
        size_t before = del.len;
        int rc = sl__s3_delete_add(&del, p, len, "s3://fuzz");
        bool ok = key_ok((const unsigned char *)p, len);
        if (rc == 0) {
            if (!ok)
                abort(); /* took a key S3 cannot read back */
            keys.want[keys.n] = p;
            keys.want_len[keys.n++] = len;
        } else if ((rc == SL_EINVAL) != !ok || (rc != SL_EINVAL && rc != SL_ETOOBIG) || del.len != before) {
            abort(); /* refused a good key for something else than room, or changed the body while refusing */
        }
        if (del.len > del.cap)
            abort();
        /* The same bytes as an ETag. */
        bool md5;
        if (sl__s3_etag_parse(p, len, tags[etags.n], &md5, NULL)) {
            if (sl__s3_complete_add(&cmp, (unsigned)etags.n + 1, tags[etags.n], etags.n % 2 == 0, (uint32_t)len) != 0)
                abort();
            etags.want[etags.n] = tags[etags.n];
            etags.want_len[etags.n] = strlen(tags[etags.n]);
            etags.n++;
        }
        p += len + 1;
    }
    if (keys.n) {
        if (sl__s3_delete_end(&del) != 0)
            abort();
        read_back(&keys, buf, del.len);
    }
    if (etags.n) {
        if (sl__s3_complete_end(&cmp) != 0 || cmp.len > sizeof(cbuf))
            abort();
        /* Read back, an ETag is its text between &quot;s. */
        char *quoted[KEYS_MAX];
        for (int i = 0; i < etags.n; i++) {
            quoted[i] = malloc(etags.want_len[i] + 3);
            quoted[i][0] = '"';
            memcpy(quoted[i] + 1, etags.want[i], etags.want_len[i]);
            memcpy(quoted[i] + 1 + etags.want_len[i], "\"", 2);
            etags.want[i] = quoted[i];
            etags.want_len[i] += 2;
        }
        read_back(&etags, cbuf, cmp.len);
        for (int i = 0; i < etags.n; i++)
            free(quoted[i]);
    }
    return 0;
}
