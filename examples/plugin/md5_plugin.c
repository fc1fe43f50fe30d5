/* An example sluice plugin: the MD5 of each object, as `sluice map --op md5` gives it ("md5":"<32 hex digits>").
 *
 * Build it out of tree from an installed sluice, with nothing but the plugin header and libsluice:
 *
 *     cc -O2 -shared -fPIC md5_plugin.c $(pkg-config --cflags --libs sluice) -o libmd5_plugin.so
 *     sluice map SRC - --plugin ./libmd5_plugin.so
 *
 * It shows the three parts of the contract: thread_init makes the per-thread state once (here a small context; in a
 * real plugin a storage client or a model), process streams one object through the job's buffer and adds a result
 * member, thread_fini frees the state. The MD5 code is RFC 1321's, kept here so the example needs no other library.
 *
 * Arguments (--plugin-arg): member=NAME names the result member (default "md5"); any other key is refused, so a
 * misspelt argument stops the job at once rather than being ignored. */
#include <sluice/plugin.h>

#include <stdlib.h>
#include <string.h>

typedef struct md5_ctx {
    uint32_t a, b, c, d;
    uint64_t len;
    unsigned char block[64];
    size_t used;
} md5_ctx;

typedef struct state {
    md5_ctx ctx;
    const char *member; /* from the config: valid until thread_fini */
} state;

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const unsigned char R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                    5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_block(md5_ctx *m, const unsigned char *p) {
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = m->a, b = m->b, c = m->c, d = m->d;
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        uint32_t t = d;
        d = c;
        c = b;
        b = b + ROTL(a + f + K[i] + w[g], R[i]);
        a = t;
    }
    m->a += a;
    m->b += b;
    m->c += c;
    m->d += d;
}

static void md5_init(md5_ctx *m) {
    m->a = 0x67452301;
    m->b = 0xefcdab89;
    m->c = 0x98badcfe;
    m->d = 0x10325476;
    m->len = 0;
    m->used = 0;
}

static void md5_update(md5_ctx *m, const unsigned char *p, size_t n) {
    m->len += n;
    if (m->used) {
        size_t take = 64 - m->used < n ? 64 - m->used : n;
        memcpy(m->block + m->used, p, take);
        m->used += take;
        p += take;
        n -= take;
        if (m->used < 64)
            return;
        md5_block(m, m->block);
        m->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        md5_block(m, p);
    memcpy(m->block, p, n);
    m->used = n;
}

static void md5_final(md5_ctx *m, unsigned char out[16]) {
    uint64_t bits = m->len * 8;
    static const unsigned char pad[64] = {0x80};
    md5_update(m, pad, m->used < 56 ? 56 - m->used : 120 - m->used);
    unsigned char tail[8];
    for (int i = 0; i < 8; i++)
        tail[i] = (unsigned char)(bits >> (8 * i));
    md5_update(m, tail, 8);
    uint32_t v[4] = {m->a, m->b, m->c, m->d};
    for (int i = 0; i < 16; i++)
        out[i] = (unsigned char)(v[i / 4] >> (8 * (i % 4)));
}

static int md5_thread_init(const sl_op_config *config, void **out) {
    for (size_t i = 0; i < sl_op_config_count(config); i++) {
        const char *arg = sl_op_config_arg(config, i);
        if (strncmp(arg, "member=", 7) != 0)
            return sl_op_fail(SL_EINVAL, "md5 plugin: unknown argument '%s' (it takes member=NAME)", arg);
    }
    state *s = calloc(1, sizeof(*s));
    if (!s)
        return sl_op_fail(SL_ENOMEM, "md5 plugin: out of memory");
    const char *member = sl_op_config_get(config, "member");
    s->member = member && member[0] ? member : "md5";
    *out = s;
    return 0;
}

static int md5_process(void *st, sl_task *task) {
    state *s = st;
    size_t cap;
    unsigned char *buf = sl_task_buffer(task, &cap);
    md5_init(&s->ctx);
    for (;;) {
        int64_t n = sl_task_read(task, buf, cap);
        if (n < 0)
            return (int)n; /* the task's reason is set */
        if (n == 0)
            break;
        md5_update(&s->ctx, buf, (size_t)n);
    }
    unsigned char digest[16];
    md5_final(&s->ctx, digest);
    static const char hexdigits[] = "0123456789abcdef";
    char hex[33];
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = hexdigits[digest[i] >> 4];
        hex[2 * i + 1] = hexdigits[digest[i] & 0xf];
    }
    hex[32] = '\0';
    return sl_task_result_string(task, s->member, hex, 32);
}

static void md5_thread_fini(void *st) {
    free(st);
}

SL_PLUGIN_EXPORT const sl_op sluice_plugin = {
    .abi_version = SL_OP_ABI_VERSION,
    .name = "md5-example",
    .version = "1",
    .description = "MD5 of each object, in hex: \"md5\":\"<32 hex digits>\" (an example plugin)",
    .thread_init = md5_thread_init,
    .process = md5_process,
    .thread_fini = md5_thread_fini,
};
