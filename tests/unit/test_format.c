/* sl_json_quote, sl_text_escape, sl_object_format_json: escaping, UTF-8 validation, the snprintf convention. */
#include "sluice/store.h"
#include "test.h"

typedef size_t (*fmt_fn)(char *buf, size_t cap, const char *s, size_t len);

/* Formats s with fn and checks the whole output equals `want`. */
static void check_fmt(fmt_fn fn, const char *s, size_t len, const char *want) {
    char buf[512];
    size_t n = fn(buf, sizeof(buf), s, len);
    if (n != strlen(want) || strcmp(buf, want) != 0)
        TEST_FAIL_("formatting %zu bytes: got \"%s\" (%zu), want \"%s\" (%zu)", len, buf, n, want, strlen(want));
    s_test_checks++;
}

#define JSON(lit, want) check_fmt(sl_json_quote, lit, sizeof(lit) - 1, want)
#define TEXT(lit, want) check_fmt(sl_text_escape, lit, sizeof(lit) - 1, want)

static void test_json_plain(void) {
    JSON("", "\"\"");
    JSON("abc", "\"abc\"");
    JSON("dir/a b.csv", "\"dir/a b.csv\"");
    JSON("'#%?&<>/", "\"'#%?&<>/\"");
    ASSERT_UINT_EQ(sl_json_quote(NULL, 0, NULL, 0), 2);
}

static void test_json_escapes(void) {
    JSON("a\"b", "\"a\\\"b\"");
    JSON("a\\b", "\"a\\\\b\"");
    JSON("\n\t\r\b\f", "\"\\n\\t\\r\\b\\f\"");
    JSON("\x01\x1f", "\"\\u0001\\u001f\"");
    JSON("a\0b", "\"a\\u0000b\"");
    JSON("\x7f", "\"\\u007f\"");
    JSON("\x1b[31m", "\"\\u001b[31m\"");
}

static void test_json_utf8(void) {
    JSON("\xc3\xa9", "\"\xc3\xa9\"");                                 /* é */
    JSON("\xe6\x97\xa5\xe6\x9c\xac", "\"\xe6\x97\xa5\xe6\x9c\xac\""); /* 日本 */
    JSON("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");                 /* U+1F600 */
    JSON("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");                         /* U+FFFF */
    JSON("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");                 /* U+10FFFF */
    JSON("\xc2\x80", "\"\xc2\x80\"");                                 /* U+0080 */
    JSON("\xe2\x80\xa8", "\"\xe2\x80\xa8\"");                         /* U+2028 */
    JSON("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");                         /* U+D7FF, just below the surrogates */
}

static void test_json_invalid_utf8(void) {
    JSON("\x80", "\"\\u0080\"");
    JSON("\xff", "\"\\u00ff\"");
    JSON("a\xfez", "\"a\\u00fez\"");
    JSON("\xc0\xaf", "\"\\u00c0\\u00af\"");                       /* overlong '/' */
    JSON("\xc1\xbf", "\"\\u00c1\\u00bf\"");                       /* overlong */
    JSON("\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\"");            /* overlong 3-byte */
    JSON("\xf0\x80\x80\xaf", "\"\\u00f0\\u0080\\u0080\\u00af\""); /* overlong 4-byte */
    JSON("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"");            /* U+D800 surrogate */
    JSON("\xed\xbf\xbf", "\"\\u00ed\\u00bf\\u00bf\"");            /* U+DFFF surrogate */
    JSON("\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\""); /* > U+10FFFF */
    JSON("\xf5\x80\x80\x80", "\"\\u00f5\\u0080\\u0080\\u0080\"");
    JSON("\xe6\x97", "\"\\u00e6\\u0097\"");                 /* truncated at the end */
    JSON("\xe6z", "\"\\u00e6z\"");                          /* truncated, then ASCII */
    JSON("\xe6\x97\xc3\xa9", "\"\\u00e6\\u0097\xc3\xa9\""); /* resynchronises on the next valid character */
    JSON("\xc3\xc3\xa9", "\"\\u00c3\xc3\xa9\"");
    /* A valid sequence cut by the length argument is invalid. */
    check_fmt(sl_json_quote, "\xc3\xa9", 1, "\"\\u00c3\"");
}

static void test_text_escape(void) {
    TEXT("", "");
    TEXT("plain/key name.txt", "plain/key name.txt");
    TEXT("a\\b", "a\\\\b");
    TEXT("a\nb\tc\rd", "a\\nb\\tc\\rd");
    TEXT("\x01\x1b\x7f", "\\x01\\x1b\\x7f");
    TEXT("a\0b", "a\\x00b");
    TEXT("\"quoted\" 'x'", "\"quoted\" 'x'");
    TEXT("\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80", "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
    TEXT("\xff\xfe", "\\xff\\xfe");
    TEXT("\xc0\xaf", "\\xc0\\xaf");
    TEXT("\xed\xa0\x80", "\\xed\\xa0\\x80");
    TEXT("\xc2\x9b[2J", "\\xc2\\x9b[2J"); /* U+009B, CSI: a C1 control */
    TEXT("\xc2\xa0", "\xc2\xa0");         /* U+00A0 is printable */
    ASSERT_UINT_EQ(sl_text_escape(NULL, 0, "\n", 1), 2);
    ASSERT_UINT_EQ(sl_text_escape(NULL, 0, NULL, 0), 0);
}

/* For every capacity from 0 to past the end: the return value is the full length, the output is the longest prefix
 * that fits, NUL-terminated, and nothing past cap is touched. */
static void check_truncation(fmt_fn fn, const char *s, size_t len) {
    char full[256];
    size_t n = fn(full, sizeof(full), s, len);
    ASSERT_TRUE(n < sizeof(full));
    ASSERT_UINT_EQ(strlen(full), n);
    ASSERT_UINT_EQ(fn(NULL, 0, s, len), n);
    ASSERT_UINT_EQ(fn(NULL, 100, s, len), n);
    for (size_t cap = 0; cap <= n + 2; cap++) {
        char buf[260];
        memset(buf, '#', sizeof(buf));
        ASSERT_UINT_EQ(fn(buf, cap, s, len), n);
        if (cap == 0) {
            ASSERT_TRUE(buf[0] == '#');
            continue;
        }
        size_t kept = cap - 1 < n ? cap - 1 : n;
        ASSERT_MEM_EQ(buf, full, kept);
        ASSERT_TRUE(buf[kept] == '\0');
        ASSERT_TRUE(buf[cap] == '#');
    }
}

static size_t s_format_obj(char *buf, size_t cap, const char *s, size_t len) {
    sl_object o = {.key = s,
                   .key_len = len,
                   .size = 123,
                   .mtime_ns = 1795602180123000000,
                   .generation = 7,
                   .has_crc32c = true,
                   .crc32c = 0xe3069283};
    return sl_object_format_json(&o, buf, cap);
}

static void test_snprintf_convention(void) {
    check_truncation(sl_json_quote, "a\"b\n\xc3\xa9\xff", 8);
    check_truncation(sl_text_escape, "a\\b\n\xc3\xa9\xff", 8);
    check_truncation(s_format_obj, "dir/k\"ey", 8);
}

static void check_obj(const sl_object *o, const char *want) {
    char buf[512];
    size_t n = sl_object_format_json(o, buf, sizeof(buf));
    if (n != strlen(want) || strcmp(buf, want) != 0)
        TEST_FAIL_("sl_object_format_json: got\n  %s\nwant\n  %s", buf, want);
    s_test_checks++;
}

static void test_object_json(void) {
    sl_object o = {.key = "dir/a.csv", .key_len = 9, .size = 42, .mtime_ns = 1795602180123456789};
    check_obj(&o, "{\"key\":\"dir/a.csv\",\"size\":42,\"updated\":\"2026-11-25T10:23:00.123Z\"}");

    o.mtime_ns = 0;
    check_obj(&o, "{\"key\":\"dir/a.csv\",\"size\":42}");

    o.generation = 1732530180123456;
    o.has_crc32c = true;
    o.crc32c = 0x0000ab12;
    o.has_md5 = true;
    static const unsigned char md5[16] = {0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04,
                                          0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e};
    memcpy(o.md5, md5, 16);
    o.mtime_ns = 1000000;
    check_obj(&o, "{\"key\":\"dir/a.csv\",\"size\":42,\"updated\":\"1970-01-01T00:00:00.001Z\","
                  "\"generation\":\"1732530180123456\",\"crc32c\":\"0000ab12\","
                  "\"md5\":\"d41d8cd98f00b204e9800998ecf8427e\"}");

    /* Only the fields whose flags are set. */
    o.has_crc32c = false;
    o.generation = 0;
    o.mtime_ns = 0;
    check_obj(&o, "{\"key\":\"dir/a.csv\",\"size\":42,\"md5\":\"d41d8cd98f00b204e9800998ecf8427e\"}");
    o.has_md5 = false;
    o.has_crc32c = true;
    o.crc32c = 0xFFFFFFFF;
    check_obj(&o, "{\"key\":\"dir/a.csv\",\"size\":42,\"crc32c\":\"ffffffff\"}");

    /* Times before the epoch round down to the millisecond. */
    sl_object old = {.key = "k", .key_len = 1, .mtime_ns = -1};
    check_obj(&old, "{\"key\":\"k\",\"size\":0,\"updated\":\"1969-12-31T23:59:59.999Z\"}");

    sl_object big = {.key = "k", .key_len = 1, .size = UINT64_MAX, .mtime_ns = 951782400999999999};
    check_obj(&big, "{\"key\":\"k\",\"size\":18446744073709551615,\"updated\":\"2000-02-29T00:00:00.999Z\"}");

    /* The key is JSON-quoted and key_len bytes long. */
    sl_object odd = {.key = "a\"b\\c\nd\xff/e", .key_len = 10, .size = 1};
    check_obj(&odd, "{\"key\":\"a\\\"b\\\\c\\nd\\u00ff/e\",\"size\":1}");
    odd.key_len = 3;
    check_obj(&odd, "{\"key\":\"a\\\"b\",\"size\":1}");
}

static void test_prefix_json(void) {
    sl_object p = {.key = "dir/", .key_len = 4, .is_prefix = true, .size = 99, .mtime_ns = 5, .has_crc32c = true};
    check_obj(&p, "{\"prefix\":\"dir/\"}");
    p.key = "sp ace\t/";
    p.key_len = 8;
    check_obj(&p, "{\"prefix\":\"sp ace\\t/\"}");
}

int main(void) {
    RUN_TEST(test_json_plain);
    RUN_TEST(test_json_escapes);
    RUN_TEST(test_json_utf8);
    RUN_TEST(test_json_invalid_utf8);
    RUN_TEST(test_text_escape);
    RUN_TEST(test_snprintf_convention);
    RUN_TEST(test_object_json);
    RUN_TEST(test_prefix_json);
    TEST_DONE();
}
