/* Fingerprints of the source recorded with each output, the skip decision, and the destination cursor. */
#include "resume.h"

#include "crc32c.h"
#include "store_vtable.h"
#include "strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A content encoding as a fingerprint records it: 1 to 15 lowercase letters, digits or '-'. */
static bool s_encoding_ok(const char *s, size_t len) {
    if (len == 0 || len >= SL__ENC_CAP)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* The text of fp's fields, in the order and form sl__fp_format gives them. Returns its length, or 0 (buf = "") when
 * it does not fit. Made for every object (and again when a local output's record is encoded): appended by hand,
 * snprintf took ~3,000 instructions for it. */
static size_t s_fp_text(const sl__fingerprint *fp, char *buf, size_t cap) {
    size_t enc_len = strnlen(fp->enc, sizeof(fp->enc)), job_len = strnlen(fp->job, sizeof(fp->job));
    sl__strbuf b = sl__strbuf_of(buf, cap);
    sl__strbuf_add(&b, "size=", 5);
    sl__strbuf_u64(&b, fp->size);
    sl__strbuf_str(&b, fp->has_gen ? " gen=" : " mtime=");
    sl__strbuf_i64(&b, fp->version);
    if (fp->has_crc32c) {
        sl__strbuf_add(&b, " crc32c=", 8);
        sl__strbuf_hex(&b, fp->crc32c, 8);
    }
    if (enc_len) {
        sl__strbuf_add(&b, " enc=", 5);
        sl__strbuf_add(&b, fp->enc, enc_len);
    }
    sl__strbuf_add(&b, " job=", 5);
    sl__strbuf_add(&b, fp->job, job_len);
    if (enc_len == sizeof(fp->enc) || job_len == sizeof(fp->job) || !sl__strbuf_end(&b)) {
        if (cap)
            buf[0] = '\0';
        return 0;
    }
    return b.len;
}

size_t sl__fp_format(const sl_object *src, const char *job_tag, char *buf, size_t cap) {
    if (cap)
        buf[0] = '\0';
    int64_t version = src->generation ? src->generation : src->mtime_ns;
    size_t job_len = job_tag ? strnlen(job_tag, SL__JOB_TAG_CAP) : 0;
    if (!version || job_len == 0 || job_len >= SL__JOB_TAG_CAP)
        return 0;
    sl__fingerprint fp = {.size = src->size,
                          .has_gen = src->generation != 0,
                          .version = version,
                          .has_crc32c = src->has_crc32c,
                          .crc32c = src->crc32c};
    if (src->content_encoding) {
        size_t enc_len = strnlen(src->content_encoding, SL__ENC_CAP);
        if (s_encoding_ok(src->content_encoding, enc_len))
            memcpy(fp.enc, src->content_encoding, enc_len + 1);
    }
    memcpy(fp.job, job_tag, job_len + 1);
    return s_fp_text(&fp, buf, cap);
}

/* ---- the compact record of a local output ---- */

static size_t s_put_varint(unsigned char *out, uint64_t v) {
    size_t n = 0;
    do {
        out[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* Reads a varint of at most 10 bytes from [*p, end); false when it is cut short or longer. */
static bool s_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *out) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
        unsigned char b = *(*p)++;
        if (shift == 63 && b > 1)
            return false; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static void s_put_u32(unsigned char *out, uint32_t v) {
    for (int i = 0; i < 4; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t s_get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

enum { S_REC_GEN = 1, S_REC_CRC = 2, S_REC_ENC = 4 };

size_t sl__fp_record_encode(unsigned char *out, size_t cap, uint64_t out_size, int64_t out_mtime_ns,
                            uint32_t out_crc32c, const char *fingerprint) {
    sl__fingerprint fp;
    char canonical[SL__FP_CAP];
    /* Only a fingerprint the decoder gives back exactly: its fields in sl__fp_format's form. */
    if (!sl__fp_parse(fingerprint, &fp) || !s_fp_text(&fp, canonical, sizeof(canonical)) ||
        strcmp(canonical, fingerprint) != 0)
        return 0;
    size_t job_len = strlen(fp.job), enc_len = strlen(fp.enc);
    unsigned char tmp[1 + 3 * 10 + 4 + 1 + 10 + 4 + 1 + SL__ENC_CAP + SL__JOB_TAG_CAP];
    size_t n = 0;
    tmp[n++] = SL__FP_RECORD_TAG;
    n += s_put_varint(tmp + n, out_size);
    /* zigzag: an mtime before 1970 is negative */
    n += s_put_varint(tmp + n, ((uint64_t)out_mtime_ns << 1) ^ (uint64_t)(out_mtime_ns >> 63));
    s_put_u32(tmp + n, out_crc32c);
    n += 4;
    tmp[n++] =
        (unsigned char)((fp.has_gen ? S_REC_GEN : 0) | (fp.has_crc32c ? S_REC_CRC : 0) | (enc_len ? S_REC_ENC : 0));
    n += s_put_varint(tmp + n, fp.size);
    n += s_put_varint(tmp + n, (uint64_t)fp.version);
    if (fp.has_crc32c) {
        s_put_u32(tmp + n, fp.crc32c);
        n += 4;
    }
    if (enc_len) {
        tmp[n++] = (unsigned char)enc_len;
        memcpy(tmp + n, fp.enc, enc_len);
        n += enc_len;
    }
    memcpy(tmp + n, fp.job, job_len);
    n += job_len;
    if (n > cap)
        return 0;
    memcpy(out, tmp, n);
    return n;
}

bool sl__fp_record_decode(const unsigned char *in, size_t n, char *text, size_t cap) {
    const unsigned char *p = in, *end = in + n;
    uint64_t out_size, zz, size, version;
    if (cap)
        text[0] = '\0';
    if (n < 1 || *p++ != SL__FP_RECORD_TAG || !s_get_varint(&p, end, &out_size) || !s_get_varint(&p, end, &zz) ||
        end - p < 5)
        return false;
    int64_t out_mtime_ns = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
    uint32_t out_crc32c = s_get_u32(p);
    p += 4;
    unsigned flags = *p++;
    if (flags & ~(unsigned)(S_REC_GEN | S_REC_CRC | S_REC_ENC) || !s_get_varint(&p, end, &size) ||
        !s_get_varint(&p, end, &version) || version == 0 || version > INT64_MAX)
        return false;
    sl__fingerprint fp = {.size = size, .has_gen = flags & S_REC_GEN, .version = (int64_t)version};
    if (flags & S_REC_CRC) {
        if (end - p < 4)
            return false;
        fp.has_crc32c = true;
        fp.crc32c = s_get_u32(p);
        p += 4;
    }
    if (flags & S_REC_ENC) {
        if (end - p < 1 || (size_t)(end - p - 1) < *p || !s_encoding_ok((const char *)p + 1, *p))
            return false;
        memcpy(fp.enc, p + 1, *p);
        fp.enc[*p] = '\0';
        p += 1 + *p;
    }
    size_t job_len = (size_t)(end - p);
    if (job_len == 0 || job_len >= sizeof(fp.job))
        return false;
    for (const unsigned char *q = p; q < end; q++)
        if (*q <= 0x20 || *q >= 0x7f)
            return false;
    memcpy(fp.job, p, job_len);
    fp.job[job_len] = '\0';
    char fptext[SL__FP_CAP];
    if (!s_fp_text(&fp, fptext, sizeof(fptext)))
        return false;
    int w = snprintf(text, cap, "%" PRIu64 " %" PRId64 " %s out_crc32c=%08" PRIx32, out_size, out_mtime_ns, fptext,
                     out_crc32c);
    if (w < 0 || (size_t)w >= cap) {
        if (cap)
            text[0] = '\0';
        return false;
    }
    return true;
}

/* Parses the decimal digits of [p, end) (no sign) into *out; false if empty, not digits or over max. */
static bool s_number(const char *p, const char *end, uint64_t max, uint64_t *out) {
    if (p == end || end - p > 20)
        return false;
    uint64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool sl__fp_parse(const char *text, sl__fingerprint *out) {
    memset(out, 0, sizeof(*out));
    if (!text)
        return false;
    bool has_size = false, has_version = false, has_job = false;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ' ');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq == p)
            return false;
        size_t name_len = (size_t)(eq - p);
        const char *v = eq + 1;
        uint64_t n;
        if (name_len == 4 && memcmp(p, "size", 4) == 0 && !has_size) {
            if (!s_number(v, end, UINT64_MAX, &n))
                return false;
            out->size = n;
            has_size = true;
        } else if (((name_len == 3 && memcmp(p, "gen", 3) == 0) || (name_len == 5 && memcmp(p, "mtime", 5) == 0)) &&
                   !has_version) {
            if (!s_number(v, end, INT64_MAX, &n) || n == 0)
                return false;
            out->has_gen = name_len == 3;
            out->version = (int64_t)n;
            has_version = true;
        } else if (name_len == 6 && memcmp(p, "crc32c", 6) == 0 && !out->has_crc32c) {
            if (end - v != 8)
                return false;
            uint32_t c = 0;
            for (const char *q = v; q < end; q++) {
                int d = *q >= '0' && *q <= '9' ? *q - '0' : *q >= 'a' && *q <= 'f' ? *q - 'a' + 10 : -1;
                if (d < 0)
                    return false;
                c = c << 4 | (uint32_t)d;
            }
            out->crc32c = c;
            out->has_crc32c = true;
        } else if (name_len == 3 && memcmp(p, "enc", 3) == 0 && !out->enc[0]) {
            if (!s_encoding_ok(v, (size_t)(end - v)))
                return false;
            memcpy(out->enc, v, (size_t)(end - v));
            out->enc[end - v] = '\0';
        } else if (name_len == 3 && memcmp(p, "job", 3) == 0 && !has_job) {
            size_t len = (size_t)(end - v);
            if (len == 0 || len >= sizeof(out->job))
                return false;
            for (const char *q = v; q < end; q++)
                if (*q <= 0x20 || *q >= 0x7f)
                    return false;
            memcpy(out->job, v, len);
            out->job[len] = '\0';
            has_job = true;
        } else {
            return false;
        }
        if (!*end)
            break;
        p = end + 1;
        if (!*p)
            return false; /* a trailing space */
    }
    return has_size && has_version && has_job;
}

bool sl__fp_matches(const char *recorded, const sl_object *src, const char *job_tag) {
    sl__fingerprint fp;
    if (!recorded || !job_tag || !sl__fp_parse(recorded, &fp))
        return false;
    bool src_has_gen = src->generation != 0;
    int64_t version = src_has_gen ? src->generation : src->mtime_ns;
    if (!version || fp.has_gen != src_has_gen || fp.version != version || fp.size != src->size)
        return false;
    if (fp.has_crc32c && src->has_crc32c && fp.crc32c != src->crc32c)
        return false;
    /* An output made from the decompressed bytes of a gzip-encoded source is not the output of its stored bytes. */
    if (strcmp(fp.enc, src->content_encoding ? src->content_encoding : "") != 0)
        return false;
    return strcmp(fp.job, job_tag) == 0;
}

void sl__job_tag_copy(char out[SL__JOB_TAG_CAP]) {
    snprintf(out, SL__JOB_TAG_CAP, "copy");
}

void sl__job_tag_op(const char *name, char out[SL__JOB_TAG_CAP]) {
    snprintf(out, SL__JOB_TAG_CAP, "op:%.40s", name ? name : "");
}

void sl__job_tag_exec(const char *const *argv, char out[SL__JOB_TAG_CAP]) {
    uint32_t crc = 0;
    for (const char *const *a = argv; a && *a; a++)
        crc = sl__crc32c_update(crc, *a, strlen(*a) + 1); /* the NUL separates the words */
    snprintf(out, SL__JOB_TAG_CAP, "exec:%08" PRIx32, crc);
}

void sl__job_tag_worker(const char *const *argv, bool use_shell, const char *command, char out[SL__JOB_TAG_CAP]) {
    uint32_t crc = 0;
    if (use_shell)
        crc = command ? sl__crc32c_update(0, command, strlen(command)) : 0;
    for (const char *const *a = argv; !use_shell && a && *a; a++)
        crc = sl__crc32c_update(crc, *a, strlen(*a) + 1);
    snprintf(out, SL__JOB_TAG_CAP, "%s:%08" PRIx32, use_shell ? "worker-shell" : "worker", crc);
}

void sl__job_tag_shell(const char *command, char out[SL__JOB_TAG_CAP]) {
    uint32_t crc = command ? sl__crc32c_update(0, command, strlen(command)) : 0;
    snprintf(out, SL__JOB_TAG_CAP, "shell:%08" PRIx32, crc);
}

void sl__job_tag_plugin(const char *name, const char *version, const char *const *args, size_t arg_count,
                        char out[SL__JOB_TAG_CAP]) {
    name = name ? name : "";
    version = version ? version : "";
    uint32_t crc = sl__crc32c_update(0, name, strlen(name) + 1);
    crc = sl__crc32c_update(crc, version, strlen(version) + 1);
    /* The arguments are a set (no key twice): the order they were given in makes no other output, so each one's
     * checksum is summed, which no order changes. */
    uint32_t sum = 0;
    for (size_t i = 0; i < arg_count; i++)
        sum += sl__crc32c_update(0, args[i], strlen(args[i]) + 1);
    unsigned char tail[12];
    uint64_t count = arg_count;
    for (int i = 0; i < 4; i++)
        tail[i] = (unsigned char)(sum >> (8 * i));
    for (int i = 0; i < 8; i++)
        tail[4 + i] = (unsigned char)(count >> (8 * i));
    crc = sl__crc32c_update(crc, tail, sizeof(tail));
    snprintf(out, SL__JOB_TAG_CAP, "plugin:%08" PRIx32, crc);
}

sl__resume_action sl__resume_decide(const sl_object *src, const sl_object *dst, const char *job_tag,
                                    bool compare_content) {
    if (!dst || dst->is_prefix)
        return SL__RESUME_DO;
    /* A copy is the source's bytes: whatever its fingerprint says, an output whose own size or CRC32C differs from
     * the source's is not one. A copy of an encoded source holds its decompressed bytes: their size and CRC32C are not
     * the listing's, and the fingerprint alone says the output is complete (a store reports a fingerprint only while
     * the output is what was committed: resume.h). */
    bool decoded = src->content_encoding && !dst->content_encoding;
    bool same =
        decoded || (dst->size == src->size && !(dst->has_crc32c && src->has_crc32c && dst->crc32c != src->crc32c));
    if (sl__fp_matches(dst->source_fingerprint, src, job_tag) && (!compare_content || same))
        return SL__RESUME_SKIP;
    /* Same size and CRC32C means the same bytes only when both sides are stored alike (a gs:// to gs:// copy of an
     * encoded object keeps it encoded). */
    bool same_encoding =
        (!src->content_encoding && !dst->content_encoding) ||
        (src->content_encoding && dst->content_encoding && strcmp(src->content_encoding, dst->content_encoding) == 0);
    if (compare_content && dst->size == src->size && same_encoding)
        return SL__RESUME_VERIFY;
    return SL__RESUME_DO;
}

static int s_keycmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen < blen ? -1 : alen > blen ? 1 : 0);
}

/* A part of the destination its listing cannot show (a directory that may not be read, such as a volume's
 * lost+found, or an entry whose key is too long for the store) holds no output this job could look up: the objects
 * whose outputs would be there are simply done, and fail alone if that place cannot be written. */
static void s_dst_skipped(void *user_data, const char *key, size_t key_len, int err, const char *message) {
    (void)user_data;
    (void)key;
    (void)key_len;
    (void)err;
    (void)message;
}

/* The next destination object; a listing that has gone out of any order the cursor can merge is given up on: from
 * then on every key is looked up on its own. */
static int s_cursor_next(sl__dst_cursor *cur) {
    cur->state = sl_list_next(cur->lister, &cur->obj);
    if (cur->state > 0 && sl__list_order_kept(cur->lister) == SL__ORDER_NONE) {
        sl_list_close(cur->lister);
        cur->lister = NULL;
        cur->state = 0;
        cur->unordered = true;
    }
    return cur->state;
}

int sl__dst_cursor_open(sl__dst_cursor *cur, sl_client *dst, bool clean_stale) {
    memset(cur, 0, sizeof(*cur));
    cur->lookup = dst->store->fingerprints_by_lookup;
    sl_list_options lo = {
        .recursive = true, .fingerprints = !cur->lookup, .clean_stale = clean_stale, .on_skipped = s_dst_skipped};
    int rc = sl_list_open(dst, &lo, &cur->lister);
    if (rc == SL_ENOENT) {
        cur->lister = NULL; /* the destination does not exist yet: nothing to resume */
        return 0;
    }
    if (rc < 0)
        return rc;
    sl__list_tolerate(cur->lister);
    s_cursor_next(cur);
    return cur->state < 0 ? cur->state : 0;
}

int sl__dst_cursor_seek(sl__dst_cursor *cur, const char *key, size_t len, const sl_object **out) {
    *out = NULL;
    if (len >= sizeof(cur->last) || cur->unordered)
        return 2;
    if (cur->has_last && s_keycmp(key, len, cur->last, cur->last_len) < 0)
        return 2; /* the cursor may be past it */
    memcpy(cur->last, key, len);
    cur->last_len = len;
    cur->has_last = true;
    while (cur->state > 0) {
        int c = s_keycmp(cur->obj.key, cur->obj.key_len, key, len);
        if (c == 0 && !cur->obj.is_prefix) {
            if (cur->lookup)
                return 2;
            *out = &cur->obj;
            return 1;
        }
        /* Passing a smaller key is safe in any order (later keys are greater still); stopping at a greater one says
         * the key is absent only if the listing is sorted: in byte order or, as some servers have it, in UTF-16
         * order. Where the two disagree about this pair, the key is looked up on its own. */
        if (c > 0)
            return sl__key_cmp_utf16(cur->obj.key, cur->obj.key_len, key, len) > 0 ? 0 : 2;
        if (s_cursor_next(cur) < 0)
            return cur->state;
    }
    return cur->unordered ? 2 : 0;
}

int sl__dst_cursor_drain(sl__dst_cursor *cur, const atomic_bool *stop) {
    while (cur->state > 0 && !(stop && atomic_load(stop)))
        cur->state = sl_list_next(cur->lister, &cur->obj);
    return cur->state < 0 ? cur->state : 0;
}

void sl__dst_cursor_close(sl__dst_cursor *cur) {
    sl_list_close(cur->lister);
    cur->lister = NULL;
    cur->state = 0;
}
