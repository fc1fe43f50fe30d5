/* The built-in operations: digests (md5, sha256, crc32c), count, gunzip, and the plain copy behind cp/sync.
 *
 * They are written on the public operation interface (sluice/plugin.h) and nothing else of the engine's, exactly as
 * a plugin is: task.h is included only for the table's type and sl__op_find, crc32c.h is a checksum routine as
 * OpenSSL's digests and zlib are. Every op streams the object through the task's buffer
 * (sl_task_buffer), so memory per object is the engine's buffer and nothing else. Heavyweight state (OpenSSL digest
 * contexts, the zlib inflate state and its 32 KiB window) is made once per worker thread by thread_init and only reset
 * for each object. */
#include "crc32c.h"
#include "task.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail_aborted(sl_task *task) {
    return sl_task_fail(task, SL_ECANCELED, "interrupted");
}

/* What the ops that only look at the bytes (digests, count) read at a time. A download arrives in pieces of this size
 * (libcurl's CURL_MAX_WRITE_SIZE), so reading more at once saves no call there; it would only touch more of the
 * transfer buffer, whose touched pages each worker then keeps resident: at -j 256, 30 KiB a worker is 7.5 MiB. */
#define S_SCAN_PIECE ((size_t)16 * 1024)

/* The task's transfer buffer, of at least min_bytes. */
static unsigned char *task_buffer(sl_task *task, size_t min_bytes, size_t *size) {
    unsigned char *buf = sl_task_buffer(task, size);
    if (!buf || *size < min_bytes) {
        sl_task_fail(task, SL_EINVAL, "transfer buffer of %zu bytes is too small (need %zu)", *size, min_bytes);
        return NULL;
    }
    return buf;
}

/* The first S_SCAN_PIECE bytes (at most) of the task's transfer buffer, for an op that only looks at the bytes. */
static unsigned char *scan_buffer(sl_task *task, size_t *size) {
    unsigned char *buf = task_buffer(task, 1, size);
    if (buf && *size > S_SCAN_PIECE)
        *size = S_SCAN_PIECE;
    return buf;
}

static int stateless_thread_init(const sl_op_config *cfg, void **state) {
    (void)cfg;
    *state = NULL;
    return 0;
}

static void stateless_thread_fini(void *state) {
    (void)state;
}

/* ---- md5, sha256 ---- */

typedef struct digest_state {
    const char *member; /* result member name */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD *md; /* fetched once: an implicit fetch by name on every EVP_DigestInit_ex is a locked provider lookup */
#else
    const EVP_MD *md;
#endif
    EVP_MD_CTX *ctx;
} digest_state;

/* OpenSSL's own reason for the last failure on this thread; clears its error queue. */
static const char *openssl_reason(char *buf, size_t cap) {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e)
        return "unknown OpenSSL error";
    ERR_error_string_n(e, buf, cap);
    return buf;
}

static void digest_thread_fini(void *state) {
    digest_state *s = state;
    if (!s)
        return;
    EVP_MD_CTX_free(s->ctx);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD_free(s->md);
#endif
    free(s);
}

static int digest_thread_init(const char *algorithm, const char *member, void **state) {
    char reason[256];
    int rc;
    *state = NULL;
    digest_state *s = calloc(1, sizeof(*s));
    if (!s)
        return sl_op_fail(SL_ENOMEM, "%s: out of memory", member);
    s->member = member;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    s->md = EVP_MD_fetch(NULL, algorithm, NULL);
#else
    s->md = EVP_get_digestbyname(algorithm);
#endif
    if (!s->md) {
        rc = sl_op_fail(SL_ENOTSUP, "%s: OpenSSL does not provide %s: %s", member, algorithm,
                        openssl_reason(reason, sizeof(reason)));
        goto on_error;
    }
    s->ctx = EVP_MD_CTX_new();
    if (!s->ctx) {
        rc = sl_op_fail(SL_ENOMEM, "%s: cannot allocate a digest context", member);
        goto on_error;
    }
    *state = s;
    return 0;
on_error:
    digest_thread_fini(s);
    return rc;
}

static int md5_thread_init(const sl_op_config *cfg, void **state) {
    (void)cfg;
    return digest_thread_init("MD5", "md5", state);
}

static int sha256_thread_init(const sl_op_config *cfg, void **state) {
    (void)cfg;
    return digest_thread_init("SHA256", "sha256", state);
}

static int digest_process(void *state, sl_task *task) {
    digest_state *s = state;
    char reason[256];
    size_t cap;
    unsigned char *buf = scan_buffer(task, &cap);
    if (!buf)
        return SL_EINVAL;
    /* Re-initialising with the same EVP_MD also discards whatever a failed previous object left in the context. */
    if (!EVP_DigestInit_ex(s->ctx, s->md, NULL))
        return sl_task_fail(task, SL_EINTERNAL, "%s: digest init failed: %s", s->member,
                            openssl_reason(reason, sizeof(reason)));
    for (;;) {
        int64_t n = sl_task_read(task, buf, cap);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(s->ctx, buf, (size_t)n))
            return sl_task_fail(task, SL_EINTERNAL, "%s: digest update failed: %s", s->member,
                                openssl_reason(reason, sizeof(reason)));
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_DigestFinal_ex(s->ctx, digest, &digest_len))
        return sl_task_fail(task, SL_EINTERNAL, "%s: digest final failed: %s", s->member,
                            openssl_reason(reason, sizeof(reason)));
    static const char hexdigits[] = "0123456789abcdef";
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (size_t i = 0; i < digest_len; i++) {
        hex[2 * i] = hexdigits[digest[i] >> 4];
        hex[2 * i + 1] = hexdigits[digest[i] & 0xf];
    }
    hex[2 * (size_t)digest_len] = '\0';
    return sl_task_result_string(task, s->member, hex, 2 * (size_t)digest_len);
}

/* ---- crc32c ---- */

static int crc32c_process(void *state, sl_task *task) {
    (void)state;
    uint32_t crc = 0;
    size_t cap;
    unsigned char *buf = scan_buffer(task, &cap);
    if (!buf)
        return SL_EINVAL;
    for (;;) {
        int64_t n = sl_task_read(task, buf, cap);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        crc = sl__crc32c_update(crc, buf, (size_t)n);
    }
    char hex[9];
    snprintf(hex, sizeof(hex), "%08" PRIx32, crc);
    return sl_task_result_string(task, "crc32c", hex, 8);
}

/* ---- count ---- */

/* lines counts '\n' bytes exactly as `wc -l` does: a last line without a terminating newline is not counted, so
 * "a\nb" has 1 line and "" has 0. Counting newlines keeps the sum over the objects of a split file equal to the line
 * count of the whole file. */
static int count_process(void *state, sl_task *task) {
    (void)state;
    uint64_t bytes = 0, lines = 0;
    size_t cap;
    unsigned char *buf = scan_buffer(task, &cap);
    if (!buf)
        return SL_EINVAL;
    for (;;) {
        int64_t n = sl_task_read(task, buf, cap);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        bytes += (uint64_t)n;
        const unsigned char *p = buf, *end = buf + n;
        while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            lines++;
            p++;
        }
    }
    int rc = sl_task_result_uint(task, "bytes", bytes);
    return rc < 0 ? rc : sl_task_result_uint(task, "lines", lines);
}

/* ---- gunzip ---- */

typedef struct gunzip_state {
    z_stream zs;
} gunzip_state;

static int gunzip_thread_init(const sl_op_config *cfg, void **state) {
    (void)cfg;
    *state = NULL;
    gunzip_state *s = calloc(1, sizeof(*s));
    if (!s)
        return sl_op_fail(SL_ENOMEM, "gunzip: out of memory");
    /* 15 + 32: the largest window, with the gzip or zlib wrapper detected from the first bytes. */
    int zr = inflateInit2(&s->zs, 15 + 32);
    if (zr != Z_OK) {
        free(s);
        if (zr == Z_MEM_ERROR)
            return sl_op_fail(SL_ENOMEM, "gunzip: out of memory");
        return sl_op_fail(SL_EINTERNAL, "gunzip: inflateInit2 failed (zlib %s): %d", zlibVersion(), zr);
    }
    *state = s;
    return 0;
}

static void gunzip_thread_fini(void *state) {
    gunzip_state *s = state;
    if (!s)
        return;
    inflateEnd(&s->zs);
    free(s);
}

/* A failure inside the first member's header means the object is not gzip at all, one inside a later header means
 * junk after the last member. head->done stays 0 until a gzip header is complete; for anything without the gzip
 * magic zlib sets it to -1 before checking the 2-byte zlib header, and total_in (reset per member) is at most 2 until
 * that check passes, since the first deflate block header needs a third byte. */
static int gunzip_error(sl_task *task, const z_stream *zs, int zr, const gz_header *head, uint64_t members,
                        uint64_t offset) {
    if (zr == Z_MEM_ERROR)
        return sl_task_fail(task, SL_ENOMEM, "gunzip: out of memory");
    if (zr == Z_STREAM_ERROR)
        return sl_task_fail(task, SL_EINTERNAL, "gunzip: inflate state error");
    const char *why = zr == Z_NEED_DICT ? "zlib stream needs a preset dictionary" : zs->msg ? zs->msg : "invalid data";
    bool in_header = head->done == 0 || (head->done == -1 && zs->total_in <= 2);
    if (in_header && members == 0)
        return sl_task_fail(task, SL_ECORRUPT, "not gzip data (%s)", why);
    if (in_header)
        return sl_task_fail(task, SL_ECORRUPT, "trailing garbage after gzip data at byte %" PRIu64 " (%s)", offset,
                            why);
    return sl_task_fail(task, SL_ECORRUPT, "corrupt gzip data at byte %" PRIu64 ": %s", offset, why);
}

/* Decompresses like `gzip -d`: any number of concatenated members, each with its own header and trailer (CRC and
 * length are checked by zlib). Decisions beyond gzip's manual:
 *  - zero bytes after a complete member are skipped silently (block padding, as from tape or dd); any other data
 *    after the last member must be a valid member, otherwise SL_ECORRUPT "trailing garbage" (gzip only warns, but
 *    a bulk job must not call a damaged object good);
 *  - an empty object is not gzip data (SL_ECORRUPT, as gzip says "unexpected end of file");
 *  - a zlib-wrapped (RFC 1950) stream is accepted too, since the wrapper is auto-detected;
 *  - the bytes written count as the output's; with no output stream the decompressed size is reported as the
 *    result member "bytes_out" instead. */
static int gunzip_process(void *state, sl_task *task) {
    gunzip_state *s = state;
    z_stream *zs = &s->zs;
    int rc;
    size_t buf_size;
    unsigned char *buf = task_buffer(task, 2, &buf_size);
    if (!buf)
        return SL_EINVAL;
    bool has_output = sl_task_has_output(task);
    /* Compressed input is usually several times smaller than its output, so the output gets the larger share. */
    size_t in_cap = buf_size / 4 ? buf_size / 4 : 1;
    unsigned char *in = buf, *out = buf + in_cap;
    size_t out_cap = buf_size - in_cap;
    if (in_cap > UINT_MAX)
        in_cap = UINT_MAX;
    if (out_cap > UINT_MAX)
        out_cap = UINT_MAX;

    gz_header head;
    memset(&head, 0, sizeof(head));
    uint64_t read_total = 0, produced = 0, members = 0;
    bool in_member = false;
    /* zlib's contract: a call that fills the output may have more pending, so inflate again before reading on or
     * taking the end of input as truncation. */
    bool out_full = false;
    zs->next_in = in;
    zs->avail_in = 0;
    for (;;) {
        /* A small input can inflate to gigabytes without another read, so cancellation is checked per output chunk. */
        if (out_full && sl_task_aborted(task))
            return fail_aborted(task);
        if (zs->avail_in == 0 && !out_full) {
            int64_t n = sl_task_read(task, in, in_cap);
            if (n < 0)
                return (int)n;
            if (n == 0)
                break;
            read_total += (uint64_t)n;
            zs->next_in = in;
            zs->avail_in = (uInt)n;
        }
        if (!in_member) {
            if (members > 0) {
                while (zs->avail_in > 0 && *zs->next_in == 0) {
                    zs->next_in++;
                    zs->avail_in--;
                }
                if (zs->avail_in == 0)
                    continue;
            }
            inflateReset(zs);
            memset(&head, 0, sizeof(head));
            inflateGetHeader(zs, &head);
            in_member = true;
        }
        zs->next_out = out;
        zs->avail_out = (uInt)out_cap;
        int zr = inflate(zs, Z_NO_FLUSH);
        size_t got = out_cap - zs->avail_out;
        out_full = zs->avail_out == 0;
        if (got > 0) {
            produced += got;
            if (has_output && (rc = sl_task_write(task, out, got)) < 0)
                return rc;
        }
        if (zr == Z_STREAM_END) {
            members++;
            in_member = false;
            out_full = false;
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            return gunzip_error(task, zs, zr, &head, members, read_total - zs->avail_in);
        }
    }
    if (in_member)
        return sl_task_fail(task, SL_ECORRUPT, "truncated gzip stream (input ended after %" PRIu64 " bytes)",
                            read_total);
    if (members == 0)
        return sl_task_fail(task, SL_ECORRUPT, "not gzip data (the object is empty)");
    return has_output ? 0 : sl_task_result_uint(task, "bytes_out", produced);
}

/* ---- copy ---- */

static int copy_process(void *state, sl_task *task) {
    (void)state;
    size_t cap;
    unsigned char *buf = task_buffer(task, 1, &cap);
    if (!buf)
        return SL_EINVAL;
    if (!sl_task_has_output(task))
        return sl_task_fail(task, SL_EINVAL, "copy needs a destination");
    for (;;) {
        int64_t n = sl_task_read(task, buf, cap);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        int rc = sl_task_write(task, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

/* ---- the table ---- */

static const sl_op s_op_md5 = {
    .name = "md5",
    .description = "MD5 digest of each object, in hex: \"md5\":\"<32 hex digits>\"",
    .abi_version = SL_OP_ABI_VERSION,
    .thread_init = md5_thread_init,
    .process = digest_process,
    .thread_fini = digest_thread_fini,
};

static const sl_op s_op_crc32c = {
    .name = "crc32c",
    .description = "CRC32C (Castagnoli, the checksum GCS keeps) of each object: \"crc32c\":\"<8 hex digits>\"",
    .abi_version = SL_OP_ABI_VERSION,
    .thread_init = stateless_thread_init,
    .process = crc32c_process,
    .thread_fini = stateless_thread_fini,
};

static const sl_op s_op_sha256 = {
    .name = "sha256",
    .description = "SHA-256 digest of each object, in hex: \"sha256\":\"<64 hex digits>\"",
    .abi_version = SL_OP_ABI_VERSION,
    .thread_init = sha256_thread_init,
    .process = digest_process,
    .thread_fini = digest_thread_fini,
};

static const sl_op s_op_count = {
    .name = "count",
    .description = "bytes and lines ('\\n' bytes, as wc -l counts them) of each object: \"bytes\":N,\"lines\":M",
    .abi_version = SL_OP_ABI_VERSION,
    .thread_init = stateless_thread_init,
    .process = count_process,
    .thread_fini = stateless_thread_fini,
};

static const sl_op s_op_gunzip = {
    .name = "gunzip",
    .description = "decompress each gzip object (concatenated members too); without a destination, report "
                   "\"bytes_out\":N",
    .abi_version = SL_OP_ABI_VERSION,
    .flags = SL_OP_TRANSFORMS,
    .thread_init = gunzip_thread_init,
    .process = gunzip_process,
    .thread_fini = gunzip_thread_fini,
};

static const sl_op s_op_copy = {
    .name = "copy",
    .description = "copy each object's bytes unchanged",
    .abi_version = SL_OP_ABI_VERSION,
    .flags = SL_OP_TRANSFORMS,
    .thread_init = stateless_thread_init,
    .process = copy_process,
    .thread_fini = stateless_thread_fini,
};

static const sl_op *const s_ops[] = {&s_op_md5, &s_op_crc32c, &s_op_sha256, &s_op_count, &s_op_gunzip, &s_op_copy};

static const char *const s_public_names[] = {"md5", "crc32c", "sha256", "count", "gunzip", NULL};

const sl__op *sl__op_find(const char *name) {
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(s_ops) / sizeof(s_ops[0]); i++)
        if (strcmp(s_ops[i]->name, name) == 0)
            return s_ops[i];
    return NULL;
}

const char *const *sl__op_names(void) {
    return s_public_names;
}
