/* What the S3 fuzz targets share: a digest of everything an sl__s3_xml says about the answer it ended, so that the
 * same answer fed whole and fed in chunks can be compared, and the invariants every outcome keeps. */
#ifndef SLUICE_S3_FUZZ_COMMON_H
#define SLUICE_S3_FUZZ_COMMON_H

#include "s3_xml.h"
#include "sluice/sluice.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3u;
    return h;
}

static uint64_t s_fnv_str(uint64_t h, const char *s) {
    return s_fnv(h, s ? s : "(null)", s ? strlen(s) + 1 : 7);
}

static int s_fuzz_deleted(void *ud, const sl__s3_deleted *o) {
    uint64_t *h = ud;
    if (!o->key || strlen(o->key) != o->key_len || (o->code == NULL) != (o->message == NULL))
        abort();
    *h = s_fnv(*h, o->key, o->key_len);
    *h = s_fnv_str(*h, o->code);
    *h = s_fnv_str(*h, o->message);
    return 0;
}

/* True when s (len bytes) is UTF-8 without a NUL. */
static bool s_fuzz_text_ok(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (!n || !c || i + n > len)
            return false;
        for (size_t k = 1; k < n; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80)
                return false;
        i += n;
    }
    return true;
}

/* The outcome of the answer the parser ended with rc, checked against the invariants, as a hash. */
static uint64_t s_fuzz_digest(sl__s3_xml *x, int rc, size_t input_len) {
    uint64_t h = s_fnv(0xcbf29ce484222325u, &rc, sizeof(rc));
    if (rc) {
        if (rc != SL_ECORRUPT && rc != SL_ENAMETOOLONG && rc != SL_ETOOBIG)
            abort(); /* SL_ENOMEM would be a real shortage, not the input's */
        const char *msg = sl_last_error();
        if (!*msg || strchr(msg, '\n') || strncmp(msg, "s3://fuzz/p/: ", 14) != 0)
            abort(); /* one line, naming the request */
        sl_object o;
        const char *name;
        size_t len;
        if (sl__s3_xml_root(x) != SL__S3_DOC_NONE || sl__s3_xml_list_next(x, &name, &len, &o, NULL) != 0)
            abort(); /* a failed answer says nothing */
        /* Where expat notices an error, and which one it names, depends on where the chunks end: expat reads text
         * as far as a chunk goes before it sees a bad byte further on, so the parser may meet one of its own limits
         * first. Every other outcome does not depend on them. */
        return strstr(msg, ": the answer is not valid XML: ") ? 1 : s_fnv_str(h, msg);
    }
    sl__s3_doc root = sl__s3_xml_root(x);
    h = s_fnv(h, &root, sizeof(root));
    const sl__s3_error *e = sl__s3_xml_error(x);
    const char *fields[] = {e->code, e->message, e->resource, e->request_id, e->region, e->endpoint, e->bucket};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!s_fuzz_text_ok(fields[i], strlen(fields[i])))
            abort();
        h = s_fnv_str(h, fields[i]);
    }
    if (strchr(e->message, '\n') || strchr(e->message, '\r') || strchr(e->message, '\t'))
        abort(); /* one line */
    const sl__s3_result *r = sl__s3_xml_result(x);
    if (strlen(r->etag) > SL__S3_ETAG_MAX || strlen(r->upload_id) > SL__S3_UPLOAD_ID_MAX)
        abort();
    h = s_fnv_str(h, r->upload_id);
    h = s_fnv_str(h, r->etag);
    h = s_fnv_str(h, r->region);
    h = s_fnv(h, &r->crc32c, sizeof(r->crc32c));
    h = s_fnv(h, &r->mtime_ns, sizeof(r->mtime_ns));
    h = s_fnv(h, &r->crc32c_parts, sizeof(r->crc32c_parts));
    bool flags[] = {r->etag_md5, r->has_crc32c, sl__s3_xml_list_truncated(x), sl__s3_xml_list_url_encoded(x),
                    sl__s3_xml_parts_truncated(x)};
    h = s_fnv(h, flags, sizeof(flags));
    h = s_fnv_str(h, sl__s3_xml_list_token(x));
    int64_t kc = sl__s3_xml_list_key_count(x);
    h = s_fnv(h, &kc, sizeof(kc));
    const char *name;
    size_t len, entries = 0;
    sl_object o;
    sl__s3_entry info;
    while (sl__s3_xml_list_next(x, &name, &len, &o, &info) == 1) {
        if (!name || strlen(name) != len || len > SL__S3_KEY_MAX || !s_fuzz_text_ok(name, len) || o.key)
            abort();
        if (o.is_prefix && (o.size || o.mtime_ns || o.has_md5 || *info.etag || *info.storage_class))
            abort();
        if (++entries > SL__S3_PAGE_MAX || entries > input_len)
            abort();
        h = s_fnv(h, name, len);
        h = s_fnv(h, &o.is_prefix, 1);
        h = s_fnv(h, &o.size, sizeof(o.size));
        h = s_fnv(h, &o.mtime_ns, sizeof(o.mtime_ns));
        h = s_fnv_str(h, info.etag);
        h = s_fnv_str(h, info.storage_class);
        h = s_fnv(h, &info.checksums, sizeof(info.checksums));
    }
    if (sl__s3_xml_list_next(x, &name, &len, &o, NULL) != 0)
        abort(); /* the end stays the end */
    if (sl__s3_xml_deleted_each(x, s_fuzz_deleted, &h) != 0)
        abort();
    sl__s3_part_info p;
    while (sl__s3_xml_part_next(x, &p) == 1) {
        if (p.number < 1 || p.number > 10000 || !p.etag || !*p.etag || ++entries > SL__S3_PAGE_MAX)
            abort();
        h = s_fnv(h, &p.number, sizeof(p.number));
        h = s_fnv(h, &p.size, sizeof(p.size));
        h = s_fnv_str(h, p.etag);
    }
    return h;
}

/* Parses data as an answer to a request expecting `expect`, fed whole and then in chunks of `chunk` bytes, and
 * checks that both give the same outcome. */
static void s_fuzz_answer(sl__s3_xml *x, sl__s3_doc expect, const uint8_t *data, size_t size, size_t chunk) {
    int whole_rc = sl__s3_xml_parse(x, expect, "s3://fuzz/p/", data, size), rc;
    uint64_t whole = s_fuzz_digest(x, whole_rc, size);
    rc = sl__s3_xml_begin(x, expect, "s3://fuzz/p/");
    for (size_t at = 0; !rc && at < size; at += chunk)
        rc = sl__s3_xml_feed(x, data + at, size - at < chunk ? size - at : chunk);
    if (!rc)
        rc = sl__s3_xml_end(x);
    uint64_t chunked = s_fuzz_digest(x, rc, size);
    if ((rc == 0) != (whole_rc == 0) || (chunked != whole && !(rc && (chunked == 1 || whole == 1))))
        abort(); /* the chunks libcurl happens to deliver change nothing */
}

#endif
