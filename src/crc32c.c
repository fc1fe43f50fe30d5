/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the SSE4.2 crc32 instruction where the CPU has it, a
 * slicing-by-8 table walk everywhere else. */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define SL__CRC32C_HAVE_SSE42 1
#endif

#define CRC32C_POLY 0x82F63B78u

typedef uint32_t (*crc32c_fn)(uint32_t crc, const unsigned char *p, size_t len);

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
/* s_table[0] is the classic byte-at-a-time table; s_table[k][b] is the CRC of byte b followed by k zero bytes, so
 * eight table lookups fold eight input bytes at once. */
static uint32_t s_table[8][256];
static crc32c_fn s_impl;

/* The body of both implementations works on the pre-inverted register (~crc); the public functions invert on the
 * way in and out so that callers can chain updates starting from 0. */
static uint32_t crc32c_sliced(uint32_t crc, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        crc = s_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        /* Assembled byte by byte so the result is the same on big-endian hosts; compilers turn this into loads. */
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = s_table[7][lo & 0xff] ^ s_table[6][(lo >> 8) & 0xff] ^ s_table[5][(lo >> 16) & 0xff] ^
              s_table[4][lo >> 24] ^ s_table[3][hi & 0xff] ^ s_table[2][(hi >> 8) & 0xff] ^
              s_table[1][(hi >> 16) & 0xff] ^ s_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = s_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(SL__CRC32C_HAVE_SSE42)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        crc = _mm_crc32_u8(crc, *p++);
        len--;
    }
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof(word));
        c = _mm_crc32_u64(c, word);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len--)
        crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
#endif

static void crc32c_init(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (CRC32C_POLY & (0u - (crc & 1u)));
        s_table[0][b] = crc;
    }
    for (int k = 1; k < 8; k++)
        for (int b = 0; b < 256; b++)
            s_table[k][b] = (s_table[k - 1][b] >> 8) ^ s_table[0][s_table[k - 1][b] & 0xff];
    s_impl = crc32c_sliced;
#if defined(SL__CRC32C_HAVE_SSE42)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        s_impl = crc32c_sse42;
#endif
}

uint32_t sl__crc32c_update(uint32_t crc, const void *buf, size_t len) {
    pthread_once(&s_once, crc32c_init);
    return ~s_impl(~crc, buf, len);
}

uint32_t sl__crc32c_update_portable(uint32_t crc, const void *buf, size_t len) {
    pthread_once(&s_once, crc32c_init);
    return ~crc32c_sliced(~crc, buf, len);
}

/* a(x) * b(x) mod P, both in the reflected form the CRC uses (bit 31 holds the coefficient of x^0). */
static uint32_t s_mul_mod_p(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (uint32_t bit = 1u << 31; bit; bit >>= 1) {
        if (a & bit)
            product ^= b;
        b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1; /* b * x */
    }
    return product;
}

uint32_t sl__crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    /* CRC(A B) = CRC(A) * x^(8 len_b) + CRC(B) mod P: the pre- and post-inversions cancel out. x^(8 len_b) by
     * square-and-multiply over the bits of len_b, starting from x^8. */
    uint32_t shift = 1u << 31, square = 1u << 23; /* x^0 and x^8 */
    for (; len_b; len_b >>= 1) {
        if (len_b & 1)
            shift = s_mul_mod_p(shift, square);
        square = s_mul_mod_p(square, square);
    }
    return s_mul_mod_p(shift, crc_a) ^ crc_b;
}
