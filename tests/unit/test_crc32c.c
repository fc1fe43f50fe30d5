/* CRC32C: RFC 3720 vectors, hardware == portable == a bit-at-a-time reference, incremental == one-shot. */
#include "crc32c.h"
#include "test.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The definition straight from the polynomial, one bit at a time: independent of both implementations' tables. */
static uint32_t reference_crc32c(uint32_t crc, const unsigned char *p, size_t len) {
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;

static uint8_t rand_byte(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint8_t)(s_rng >> 24);
}

static void fill_random(unsigned char *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        p[i] = rand_byte();
}

/* Both entry points, so a bug in either the dispatched (SSE4.2 on x86-64) or the table path shows up. */
static void assert_vector(const void *data, size_t len, uint32_t want) {
    ASSERT_UINT_EQ(sl__crc32c_update(0, data, len), want);
    ASSERT_UINT_EQ(sl__crc32c_update_portable(0, data, len), want);
    ASSERT_UINT_EQ(reference_crc32c(0, data, len), want);
}

static void test_check_value(void) {
    assert_vector("123456789", 9, 0xE3069283u);
}

static void test_rfc3720_vectors(void) {
    unsigned char buf[32];
    memset(buf, 0x00, sizeof(buf));
    assert_vector(buf, sizeof(buf), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof(buf));
    assert_vector(buf, sizeof(buf), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    assert_vector(buf, sizeof(buf), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    assert_vector(buf, sizeof(buf), 0x113FDB5Cu);

    static const unsigned char iscsi_read_pdu[48] = {
        0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
        0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    assert_vector(iscsi_read_pdu, sizeof(iscsi_read_pdu), 0xD9963A56u);
}

static void test_empty_input(void) {
    ASSERT_UINT_EQ(sl__crc32c_update(0, "", 0), 0);
    ASSERT_UINT_EQ(sl__crc32c_update_portable(0, "", 0), 0);
    ASSERT_UINT_EQ(sl__crc32c_update(0xDEADBEEFu, "x", 0), 0xDEADBEEFu);
    ASSERT_UINT_EQ(sl__crc32c_update_portable(0xDEADBEEFu, "x", 0), 0xDEADBEEFu);
}

/* Every start alignment within a 16-byte block and every length up to 1024 covers the unaligned head, the 8-byte
 * body and the tail of both implementations. */
static void test_random_every_alignment_and_length(void) {
    enum { MAX_LEN = 1024, MAX_ALIGN = 16 };
    static unsigned char block[MAX_LEN + MAX_ALIGN + 16];
    unsigned char *base = (unsigned char *)(((uintptr_t)block + 15) & ~(uintptr_t)15);
    fill_random(base, MAX_LEN + MAX_ALIGN);
    for (size_t align = 0; align < MAX_ALIGN; align++) {
        for (size_t len = 0; len <= MAX_LEN; len++) {
            const unsigned char *p = base + align;
            uint32_t want = reference_crc32c(0, p, len);
            uint32_t hw = sl__crc32c_update(0, p, len);
            uint32_t sw = sl__crc32c_update_portable(0, p, len);
            if (hw != want || sw != want)
                TEST_FAIL_("align %zu len %zu: dispatched %08x portable %08x reference %08x", align, len, hw, sw, want);
            s_test_checks++;
        }
    }
}

static void test_nonzero_seed_matches_reference(void) {
    unsigned char buf[300];
    fill_random(buf, sizeof(buf));
    uint32_t seeds[] = {1u, 0xFFFFFFFFu, 0x12345678u};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        uint32_t want = reference_crc32c(seeds[i], buf, sizeof(buf));
        ASSERT_UINT_EQ(sl__crc32c_update(seeds[i], buf, sizeof(buf)), want);
        ASSERT_UINT_EQ(sl__crc32c_update_portable(seeds[i], buf, sizeof(buf)), want);
    }
}

static void test_incremental_every_split(void) {
    enum { LEN = 1031 };
    static unsigned char buf[LEN];
    fill_random(buf, LEN);
    uint32_t whole = reference_crc32c(0, buf, LEN);
    ASSERT_UINT_EQ(sl__crc32c_update(0, buf, LEN), whole);
    for (size_t split = 0; split <= LEN; split++) {
        uint32_t hw = sl__crc32c_update(sl__crc32c_update(0, buf, split), buf + split, LEN - split);
        uint32_t sw = sl__crc32c_update_portable(sl__crc32c_update_portable(0, buf, split), buf + split, LEN - split);
        uint32_t mixed = sl__crc32c_update_portable(sl__crc32c_update(0, buf, split), buf + split, LEN - split);
        if (hw != whole || sw != whole || mixed != whole)
            TEST_FAIL_("split %zu: dispatched %08x portable %08x mixed %08x want %08x", split, hw, sw, mixed, whole);
        s_test_checks++;
    }
}

static void test_combine_every_split(void) {
    enum { LEN = 1031 };
    static unsigned char buf[LEN];
    fill_random(buf, LEN);
    uint32_t whole = reference_crc32c(0, buf, LEN);
    for (size_t split = 0; split <= LEN; split++) {
        uint32_t a = sl__crc32c_update(0, buf, split), b = sl__crc32c_update(0, buf + split, LEN - split);
        uint32_t got = sl__crc32c_combine(a, b, LEN - split);
        if (got != whole)
            TEST_FAIL_("split %zu: combined %08x want %08x", split, got, whole);
        s_test_checks++;
    }
    /* Many slices of a large buffer, in order, as a sliced download combines them. */
    size_t len = (3u << 20) + 5, slice = 262147;
    unsigned char *big = malloc(len);
    ASSERT_TRUE(big != NULL);
    fill_random(big, len);
    uint32_t acc = 0;
    for (size_t at = 0; at < len; at += slice) {
        size_t n = len - at < slice ? len - at : slice;
        acc = sl__crc32c_combine(acc, sl__crc32c_update(0, big + at, n), n);
    }
    ASSERT_UINT_EQ(acc, reference_crc32c(0, big, len));
    free(big);
    /* Zero-length B changes nothing; the RFC 3720 check value split anywhere. */
    ASSERT_UINT_EQ(sl__crc32c_combine(0x12345678u, 0, 0), 0x12345678u);
    ASSERT_UINT_EQ(sl__crc32c_combine(sl__crc32c_update(0, "1234", 4), sl__crc32c_update(0, "56789", 5), 5),
                   0xE3069283u);
}

static void test_byte_at_a_time(void) {
    unsigned char buf[517];
    fill_random(buf, sizeof(buf));
    uint32_t hw = 0, sw = 0;
    for (size_t i = 0; i < sizeof(buf); i++) {
        hw = sl__crc32c_update(hw, buf + i, 1);
        sw = sl__crc32c_update_portable(sw, buf + i, 1);
    }
    uint32_t want = reference_crc32c(0, buf, sizeof(buf));
    ASSERT_UINT_EQ(hw, want);
    ASSERT_UINT_EQ(sw, want);
}

static void test_large_buffer(void) {
    size_t len = (4u << 20) + 3;
    unsigned char *buf = malloc(len);
    ASSERT_TRUE(buf != NULL);
    fill_random(buf, len);
    uint32_t want = reference_crc32c(0, buf, len);
    ASSERT_UINT_EQ(sl__crc32c_update(0, buf, len), want);
    ASSERT_UINT_EQ(sl__crc32c_update_portable(0, buf, len), want);
    free(buf);
}

typedef struct thread_arg {
    const unsigned char *data;
    size_t len;
    uint32_t want;
    bool ok;
} thread_arg;

static void *crc_thread(void *p) {
    thread_arg *a = p;
    a->ok = true;
    for (int i = 0; i < 200; i++) {
        if (sl__crc32c_update(0, a->data, a->len) != a->want ||
            sl__crc32c_update_portable(0, a->data, a->len) != a->want)
            a->ok = false;
    }
    return NULL;
}

/* Many threads at once must see the same answer (the tables are built once, under pthread_once). */
static void test_concurrent_use(void) {
    enum { THREADS = 8, LEN = 4096 };
    static unsigned char buf[LEN];
    fill_random(buf, LEN);
    thread_arg args[THREADS];
    pthread_t tids[THREADS];
    uint32_t want = reference_crc32c(0, buf, LEN);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (thread_arg){.data = buf, .len = LEN, .want = want};
        ASSERT_INT_EQ(pthread_create(&tids[i], NULL, crc_thread, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        ASSERT_INT_EQ(pthread_join(tids[i], NULL), 0);
        ASSERT_TRUE(args[i].ok);
    }
}

int main(void) {
#if defined(__x86_64__)
    fprintf(stderr, "cpu sse4.2: %s\n", __builtin_cpu_supports("sse4.2") ? "yes (dispatched path is hardware)" : "no");
#endif
    RUN_TEST(test_check_value);
    RUN_TEST(test_rfc3720_vectors);
    RUN_TEST(test_empty_input);
    RUN_TEST(test_random_every_alignment_and_length);
    RUN_TEST(test_nonzero_seed_matches_reference);
    RUN_TEST(test_incremental_every_split);
    RUN_TEST(test_combine_every_split);
    RUN_TEST(test_byte_at_a_time);
    RUN_TEST(test_large_buffer);
    RUN_TEST(test_concurrent_use);
    TEST_DONE();
}
