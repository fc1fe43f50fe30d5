/* Minimal unit-test support: ASSERT_* abort the test with file:line and the values. */
#ifndef SLUICE_TEST_H
#define SLUICE_TEST_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int s_test_checks; /* atomic: tests may assert from several threads */

#define TEST_FAIL_(...)                                                                                                \
    do {                                                                                                               \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                                \
        fprintf(stderr, __VA_ARGS__);                                                                                  \
        fputc('\n', stderr);                                                                                           \
        exit(1);                                                                                                       \
    } while (0)

#define ASSERT_TRUE(c)                                                                                                 \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        if (!(c))                                                                                                      \
            TEST_FAIL_("ASSERT_TRUE(%s) failed", #c);                                                                  \
    } while (0)
#define ASSERT_FALSE(c) ASSERT_TRUE(!(c))
#define ASSERT_INT_EQ(a, b)                                                                                            \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                            \
        if (a_ != b_)                                                                                                  \
            TEST_FAIL_("ASSERT_INT_EQ(%s, %s): %lld != %lld", #a, #b, a_, b_);                                         \
    } while (0)
#define ASSERT_UINT_EQ(a, b)                                                                                           \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);                                 \
        if (a_ != b_)                                                                                                  \
            TEST_FAIL_("ASSERT_UINT_EQ(%s, %s): %llu != %llu", #a, #b, a_, b_);                                        \
    } while (0)
#define ASSERT_STR_EQ(a, b)                                                                                            \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        const char *a_ = (a), *b_ = (b);                                                                               \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                                         \
            TEST_FAIL_("ASSERT_STR_EQ(%s, %s): \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");     \
    } while (0)
#define ASSERT_MEM_EQ(a, b, n)                                                                                         \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        if (memcmp((a), (b), (n)) != 0)                                                                                \
            TEST_FAIL_("ASSERT_MEM_EQ(%s, %s, %s) failed", #a, #b, #n);                                                \
    } while (0)

/* Each test file defines tests as functions and lists them in main via RUN_TEST. */
#define RUN_TEST(fn)                                                                                                   \
    do {                                                                                                               \
        fprintf(stderr, "  %s\n", #fn);                                                                                \
        fn();                                                                                                          \
    } while (0)
#define TEST_DONE()                                                                                                    \
    do {                                                                                                               \
        fprintf(stderr, "ok: %d checks\n", atomic_load(&s_test_checks));                                               \
        return 0;                                                                                                      \
    } while (0)

#endif
