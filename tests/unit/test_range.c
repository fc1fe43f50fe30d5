/* Byte ranges: sl_range_parse (--range), the Content-Range and Range header parsers; the same functions tests/fuzz
 * feeds random input to. (The GCS listing page parser is tested in test_gcs_page.c.) */
#include "range.h"
#include "sluice/store.h"
#include "test.h"

#define S_END SL_LENGTH_TO_END

static void check_spec_(int line, const char *spec, uint64_t size, uint64_t offset, uint64_t length) {
    uint64_t o = 12345, l = 12345;
    int rc = sl_range_parse(spec, size, &o, &l);
    if (rc != 0 || o != offset || l != length)
        TEST_FAIL_("line %d: sl_range_parse(\"%s\", %" PRIu64 ") = %s, %" PRIu64 ", %" PRIu64 "; want 0, %" PRIu64
                   ", %" PRIu64,
                   line, spec, size, sl_err_name(rc), o, l, offset, length);
    s_test_checks++;
}
#define check_spec(...) check_spec_(__LINE__, __VA_ARGS__)

static void check_bad_spec_(int line, const char *spec) {
    uint64_t o, l;
    int rc = sl_range_parse(spec, 100, &o, &l);
    if (rc != SL_EINVAL)
        TEST_FAIL_("line %d: sl_range_parse(\"%s\") = %s, want SL_EINVAL", line, spec, sl_err_name(rc));
    if (!strstr(sl_last_error(), "A-B"))
        TEST_FAIL_("line %d: message \"%s\" does not say what a range looks like", line, sl_last_error());
    s_test_checks++;
}
#define check_bad_spec(s) check_bad_spec_(__LINE__, s)

static void test_range_spec(void) {
    check_spec("0-1", 100, 0, 2);
    check_spec("10-10", 100, 10, 1);
    check_spec("10-", 100, 10, S_END);
    check_spec("150-", 100, 150, S_END); /* past the end: sl_read_open says SL_ERANGE */
    check_spec("5-500", 100, 5, 496);    /* the reader clamps to the object, as servers do */
    check_spec("-10", 100, 90, 10);
    check_spec("-100", 100, 0, 100);
    check_spec("-1000", 100, 0, 100);
    check_spec("-0", 100, 100, 0);
    check_spec("-5", 0, 0, 0);
    check_spec("007-008", 100, 7, 2);
    check_spec("18446744073709551614-18446744073709551614", 100, UINT64_MAX - 1, 1);
    check_spec("0-18446744073709551614", 100, 0, UINT64_MAX);
    check_spec("18446744073709551615-", 100, UINT64_MAX, S_END);

    check_bad_spec("");
    check_bad_spec("-");
    check_bad_spec("5");
    check_bad_spec("5-4");
    check_bad_spec("a-b");
    check_bad_spec(" 1-2");
    check_bad_spec("1 -2");
    check_bad_spec("1-2 ");
    check_bad_spec("+1-2");
    check_bad_spec("1-+2");
    check_bad_spec("1--2");
    check_bad_spec("--2");
    check_bad_spec("1-2-3");
    check_bad_spec("-1-2");
    check_bad_spec("0x10-0x20");
    check_bad_spec("18446744073709551616-");        /* 2^64 */
    check_bad_spec("0-18446744073709551615");       /* length 2^64 */
    check_bad_spec("99999999999999999999999999-1"); /* overflow */
    check_bad_spec("-18446744073709551616");
    ASSERT_INT_EQ(sl_range_parse(NULL, 1, &(uint64_t){0}, &(uint64_t){0}), SL_EINVAL);
}

static void test_content_range(void) {
    uint64_t a = 0, b = 0, t = 0;
    ASSERT_TRUE(sl__content_range_parse("bytes 0-9/10", &a, &b, &t));
    ASSERT_UINT_EQ(a, 0);
    ASSERT_UINT_EQ(b, 9);
    ASSERT_UINT_EQ(t, 10);
    ASSERT_TRUE(sl__content_range_parse("bytes 100-104857599/104857600", &a, &b, &t));
    ASSERT_UINT_EQ(a, 100);
    ASSERT_UINT_EQ(b, 104857599);
    ASSERT_UINT_EQ(t, 104857600);
    ASSERT_TRUE(sl__content_range_parse("bytes 0-18446744073709551614/18446744073709551615", &a, &b, &t));
    ASSERT_UINT_EQ(b, UINT64_MAX - 1);

    static const char *const bad[] = {
        "",
        "bytes",
        "bytes ",
        "bytes 0-9",
        "bytes 0-9/",
        "bytes */10",    /* unsatisfied: nothing to read */
        "bytes 0-9/*",   /* unknown total */
        "bytes 9-0/10",  /* first after last */
        "bytes 0-10/10", /* last past the total */
        "bytes 0-9/10 ", /* trailing garbage (values arrive trimmed) */
        "bytes  0-9/10",
        "bytes -1-9/10", /* sscanf("%llu") took these */
        "bytes +0-9/10",
        "bytes 0-9/18446744073709551616",
        "bytes 0-99999999999999999999/100000000000000000000",
        "Bytes 0-9/10",
        "items 0-9/10",
        "bytes=0-9/10",
        "bytes 0-9/10/11",
        "bytes 0x0-0x9/0x10",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sl__content_range_parse(bad[i], &a, &b, &t))
            TEST_FAIL_("Content-Range \"%s\" accepted as %" PRIu64 "-%" PRIu64 "/%" PRIu64, bad[i], a, b, t);
    ASSERT_FALSE(sl__content_range_parse(NULL, &a, &b, &t));
}

static void test_range_header(void) {
    uint64_t a = 1, b = 1;
    ASSERT_TRUE(sl__range_header_parse("bytes=0-262143", &a, &b));
    ASSERT_UINT_EQ(a, 0);
    ASSERT_UINT_EQ(b, 262143);
    ASSERT_TRUE(sl__range_header_parse("bytes=0-0", &a, &b));
    ASSERT_UINT_EQ(b, 0);
    static const char *const bad[] = {"",           "bytes=",
                                      "bytes=0-",   "bytes=-5",
                                      "bytes=5-4",  "bytes=0-1,3-4",
                                      "bytes 0-1",  "bytes=0-1 ",
                                      "bytes=-0-1", "bytes=0-18446744073709551616"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sl__range_header_parse(bad[i], &a, &b))
            TEST_FAIL_("Range \"%s\" accepted as %" PRIu64 "-%" PRIu64, bad[i], a, b);
}

int main(void) {
    RUN_TEST(test_range_spec);
    RUN_TEST(test_content_range);
    RUN_TEST(test_range_header);
    TEST_DONE();
}
