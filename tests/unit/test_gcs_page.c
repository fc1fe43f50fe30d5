/* The GCS listing page parser (sl__gcs_page_*): what each entry carries, byte order, duplicate keys, what is
 * skipped, what fails the whole page, and the arena behind it; and, through the public API against a one-answer
 * HTTP server, the listing that stops when a server repeats its page token. The same functions tests/fuzz feeds
 * random input to. */
#include "gcs_page.h"
#include "sluice/sluice.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every entry of a page, one "name size generation mtime_ns crc md5 fp;" per entry ("-" for what is absent, "dir"
 * for a prefix). The names stay valid until sl__gcs_page_clear, which is checked at the end. */
static void page_entries_(int line, const char *json, size_t len, char *out, size_t cap) {
    sl__gcs_page page = {0};
    if (sl__gcs_page_parse(&page, json, len, "b") != 0)
        TEST_FAIL_("line %d: page refused: %s", line, sl_last_error());
    s_test_checks++;
    const char *names[64];
    char copies[64][64];
    size_t at = 0, n = 0;
    const char *name;
    sl_object o;
    out[0] = '\0';
    while (sl__gcs_page_next(&page, &name, &o) == 1) {
        ASSERT_TRUE(o.key == NULL);
        if (o.is_prefix) {
            ASSERT_TRUE(!o.size && !o.generation && !o.mtime_ns && !o.has_crc32c && !o.has_md5 &&
                        !o.source_fingerprint);
            at += (size_t)snprintf(out + at, cap - at, "%s dir;", name);
        } else {
            char md5[33] = "-";
            for (int i = 0; o.has_md5 && i < 16; i++)
                snprintf(md5 + 2 * i, 3, "%02x", o.md5[i]);
            char crc[16] = "-";
            if (o.has_crc32c)
                snprintf(crc, sizeof(crc), "%08x", (unsigned)o.crc32c);
            at +=
                (size_t)snprintf(out + at, cap - at, "%s %" PRIu64 " %" PRId64 " %" PRId64 " %s %s %s;", name, o.size,
                                 o.generation, o.mtime_ns, crc, md5, o.source_fingerprint ? o.source_fingerprint : "-");
        }
        if (n < 64 && strlen(name) < 64) {
            names[n] = name;
            strcpy(copies[n++], name);
        }
        ASSERT_TRUE(at < cap);
    }
    ASSERT_INT_EQ(sl__gcs_page_next(&page, &name, &o), 0); /* the end stays the end */
    for (size_t i = 0; i < n; i++)
        ASSERT_STR_EQ(names[i], copies[i]);
    sl__gcs_page_clear(&page);
    ASSERT_TRUE(page.arena == NULL && page.arena_len == 0 && !page.next_item && !page.next_prefix && !page.token);
    sl__gcs_page_clear(&page);
    sl__gcs_page_clear(NULL);
}
#define page_entries(json, out) page_entries_(__LINE__, json, strlen(json), out, sizeof(out))

static void expect_entries_(int line, const char *json, const char *want) {
    char got[4096];
    page_entries_(line, json, strlen(json), got, sizeof(got));
    if (strcmp(got, want) != 0)
        TEST_FAIL_("line %d: page %s\n  gives %s\n  want  %s", line, json, got, want);
}
#define expect_entries(json, want) expect_entries_(__LINE__, json, want)

/* The page is refused with SL_ECORRUPT and the usual message, and left empty. */
static void expect_refused_(int line, const char *json, size_t len) {
    sl__gcs_page page = {0};
    int rc = sl__gcs_page_parse(&page, json, len, "bkt");
    if (rc != SL_ECORRUPT)
        TEST_FAIL_("line %d: page %.*s: %s, want SL_ECORRUPT", line, (int)len, json, sl_err_name(rc));
    if (!strstr(sl_last_error(), "gs://bkt: listing page is not valid JSON: "))
        TEST_FAIL_("line %d: message: %s", line, sl_last_error());
    s_test_checks++;
    ASSERT_TRUE(page.arena == NULL && page.arena_len == 0 && page.arena_cap == 0 && !page.next_item &&
                !page.next_prefix && !page.token);
}
#define expect_refused(json) expect_refused_(__LINE__, json, sizeof(json) - 1)

static void test_order(void) {
    /* Prefixes and items each come sorted; together they are merged in byte order (not locale order: 'B' < 'a',
     * and 'é' (0xC3 0xA9) sorts after 'z'). */
    expect_entries("{\"items\":[{\"name\":\"p/B\"},{\"name\":\"p/a\",\"size\":\"3\"},{\"name\":\"p/z\"},"
                   "{\"name\":\"p/\\u00e9\"}],\"prefixes\":[\"p/A/\",\"p/b/\",\"p/\\u00e9/\"],\"kind\":\"x\"}",
                   "p/A/ dir;p/B 0 0 0 - - -;p/a 3 0 0 - - -;p/b/ dir;p/z 0 0 0 - - -;p/\xc3\xa9 0 0 0 - - -;"
                   "p/\xc3\xa9/ dir;");
    /* The order of the keys in the body does not matter. */
    expect_entries("{\"prefixes\":[\"b/\"],\"nextPageToken\":\"t\",\"items\":[{\"name\":\"a\"},{\"name\":\"c\"}]}",
                   "a 0 0 0 - - -;b/ dir;c 0 0 0 - - -;");
    expect_entries("{\"prefixes\":[\"a/\",\"b/\"]}", "a/ dir;b/ dir;");
}

static void test_fields(void) {
    /* size and generation: a string of digits (how GCS sends int64) or a JSON integer. */
    expect_entries("{\"items\":[{\"name\":\"a\",\"size\":\"3\",\"generation\":\"1700000000000000\"},"
                   "{\"name\":\"b\",\"size\":5,\"generation\":7},"
                   "{\"name\":\"c\",\"size\":\"18446744073709551615\",\"generation\":9223372036854775807}]}",
                   "a 3 1700000000000000 0 - - -;b 5 7 0 - - -;c 18446744073709551615 9223372036854775807 0 - - -;");
    /* Anything else is 0: a sign, a fraction, an exponent, trailing text, nothing, more than 64 bits, a negative or
     * real number, other types. */
    static const char *const zero[] = {
        "\"-1\"", "\"+1\"", "\"1.0\"",   "\"1e3\"", "\"1x\"", "\" 1\"", "\"\"", "\"18446744073709551616\"",
        "-5",     "0",      "-0",        "1.5",     "1e3",    "1E+2",   "null", "true",
        "false",  "[1]",    "{\"a\":1}", "\"0x10\""};
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json), "{\"items\":[{\"name\":\"a\",\"size\":%s,\"generation\":%s}]}", zero[i], zero[i]);
        expect_entries_(__LINE__, json, "a 0 0 0 - - -;");
    }
    /* crc32c: base64 of 4 big-endian bytes; md5Hash: base64 of 16 bytes. */
    expect_entries("{\"items\":[{\"name\":\"a\",\"crc32c\":\"yZRlqg==\",\"md5Hash\":\"1B2M2Y8AsgTpgAmY7PhCfg==\"},"
                   "{\"name\":\"b\",\"crc32c\":\"AAAAAA==\"}]}",
                   "a 0 0 0 c99465aa d41d8cd98f00b204e9800998ecf8427e -;b 0 0 0 00000000 - -;");
    expect_entries(
        "{\"items\":[{\"name\":\"a\",\"crc32c\":\"!!!!\",\"md5Hash\":\"AAAA\"},"
        "{\"name\":\"b\",\"crc32c\":\"AAAA\",\"md5Hash\":\"yZRlqg==\"},"
        "{\"name\":\"c\",\"crc32c\":\"\",\"md5Hash\":5},{\"name\":\"d\",\"crc32c\":null,\"md5Hash\":[]},"
        "{\"name\":\"e\",\"crc32c\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
        "a 0 0 0 - - -;b 0 0 0 - - -;c 0 0 0 - - -;d 0 0 0 - - -;e 0 0 0 - - -;");
    /* updated: RFC 3339 to ns since the epoch. */
    expect_entries("{\"items\":[{\"name\":\"a\",\"updated\":\"2026-11-25T10:23:00.123Z\"},"
                   "{\"name\":\"b\",\"updated\":\"1970-01-01T00:00:00Z\"},"
                   "{\"name\":\"c\",\"updated\":\"1678-01-01T00:00:00Z\"},"
                   "{\"name\":\"d\",\"updated\":\"2261-12-31T23:59:59.99999999999999Z\"},"
                   "{\"name\":\"e\",\"updated\":\"2024-02-31T00:00:00Z\"},"
                   "{\"name\":\"f\",\"updated\":\"2026-12-31T23:59:60Z\"},"
                   "{\"name\":\"g\",\"updated\":\" 2026-1-5T1:2:3+01:00\"},"
                   "{\"name\":\"h\",\"updated\":\"2026-11-25T10:23:00.000000001Z\"}]}",
                   "a 0 0 1795602180123000000 - - -;b 0 0 0 - - -;c 0 0 -9214560000000000000 - - -;"
                   "d 0 0 9214646399999999999 - - -;e 0 0 1709337600000000000 - - -;"
                   "f 0 0 1798761600000000000 - - -;g 0 0 1767574923000000000 - - -;"
                   "h 0 0 1795602180000000001 - - -;");
    static const char *const bad_time[] = {"1677-12-31T23:59:59Z",
                                           "2262-01-01T00:00:00Z",
                                           "2026-13-01T00:00:00Z",
                                           "2026-00-01T00:00:00Z",
                                           "2026-01-32T00:00:00Z",
                                           "2026-01-01T24:00:00Z",
                                           "2026-01-01T00:60:00Z",
                                           "2026-01-01T00:00:61Z",
                                           "2026-01-01",
                                           "2026-01-01 00:00:00Z",
                                           "20260101T000000Z",
                                           "x",
                                           "",
                                           "2026-99-99T99:99:99.99999999999999999999Z"};
    for (size_t i = 0; i < sizeof(bad_time) / sizeof(bad_time[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json), "{\"items\":[{\"name\":\"a\",\"updated\":\"%s\"}]}", bad_time[i]);
        expect_entries_(__LINE__, json, "a 0 0 0 - - -;");
    }
    expect_entries("{\"items\":[{\"name\":\"a\",\"updated\":1795602180}]}", "a 0 0 0 - - -;");
    /* metadata["sluice-source"]: the source fingerprint; other metadata and unknown fields of any depth ignored. */
    expect_entries("{\"items\":[{\"name\":\"a\",\"metadata\":{\"x\":\"1\",\"sluice-source\":\"fp1\",\"y\":{\"z\":[]}}},"
                   "{\"name\":\"b\",\"metadata\":{\"sluice-source\":7}},{\"name\":\"c\",\"metadata\":\"fp\"},"
                   "{\"name\":\"d\",\"metadata\":{\"other\":{\"sluice-source\":\"deep\"}}},"
                   "{\"name\":\"e\",\"sluice-source\":\"top\",\"metadata\":[{\"sluice-source\":\"in array\"}]},"
                   "{\"name\":\"f\",\"metadata\":{\"sluice-source\":\"\"}},"
                   "{\"name\":\"g\",\"acl\":[{\"entity\":\"x\",\"name\":\"not me\"}],\"owner\":{\"name\":\"no\"}}]}",
                   "a 0 0 0 - - fp1;b 0 0 0 - - -;c 0 0 0 - - -;d 0 0 0 - - -;e 0 0 0 - - -;f 0 0 0 - - ;"
                   "g 0 0 0 - - -;");
}

static void test_duplicates(void) {
    /* Within an object the last of a repeated key wins, whatever its type, as jansson had it. */
    expect_entries("{\"items\":[{\"name\":\"a\",\"size\":\"1\",\"size\":\"2\",\"crc32c\":\"AAAAAA==\",\"crc32c\":5,"
                   "\"metadata\":{\"sluice-source\":\"x\"},\"metadata\":{\"other\":1}},"
                   "{\"name\":\"b\",\"name\":7},{\"name\":7,\"name\":\"c\"},"
                   "{\"name\":\"d\",\"metadata\":{\"sluice-source\":\"x\",\"sluice-source\":\"y\"}},"
                   "{\"name\":\"e\",\"metadata\":{\"sluice-source\":\"x\"},\"metadata\":null},"
                   "{\"name\":\"f\",\"updated\":\"2026-11-25T10:23:00Z\",\"updated\":{}}]}",
                   "a 2 0 0 - - -;c 0 0 0 - - -;d 0 0 0 - - y;e 0 0 0 - - -;f 0 0 0 - - -;");
    expect_entries("{\"items\":[{\"name\":\"a\"}],\"prefixes\":[\"x/\"],\"items\":[{\"name\":\"b\"}],"
                   "\"prefixes\":[\"y/\"]}",
                   "b 0 0 0 - - -;y/ dir;");
    expect_entries("{\"items\":[{\"name\":\"a\"}],\"prefixes\":[\"x/\"],\"items\":{},\"prefixes\":null}", "");

    sl__gcs_page page = {0};
    const char *two = "{\"nextPageToken\":\"t1\",\"nextPageToken\":\"t2\"}";
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, two, strlen(two), "b"), 0);
    ASSERT_STR_EQ(sl__gcs_page_token(&page), "t2");
    sl__gcs_page_clear(&page);
    const char *gone = "{\"nextPageToken\":\"t1\",\"nextPageToken\":[\"t2\"]}";
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, gone, strlen(gone), "b"), 0);
    ASSERT_TRUE(sl__gcs_page_token(&page) == NULL);
    sl__gcs_page_clear(&page);
}

static void test_skipped(void) {
    /* Items that are not objects or have no string name, and prefixes that are not strings, are skipped. */
    expect_entries(
        "{\"items\":[{\"size\":\"1\"},{\"name\":7},\"x\",1,null,true,[{\"name\":\"in\"}],{\"name\":null},"
        "{\"name\":{\"name\":\"n\"}},{\"name\":\"b\"}],\"prefixes\":[3,null,{\"p\":\"q/\"},[\"r/\"],\"c/\"]}",
        "b 0 0 0 - - -;c/ dir;");
    expect_entries("{\"items\":{\"name\":\"x\"},\"prefixes\":\"y/\"}", "");
    expect_entries("{\"items\":[],\"prefixes\":[]}", "");
    expect_entries("{\"items\":[{\"name\":\"\"}]}", " 0 0 0 - - -;");
    expect_entries("{\"a\":{\"items\":[{\"name\":\"nested\"}]},\"b\":[{\"items\":[{\"name\":\"x\"}]}]}", "");
    /* Nesting of any depth in an ignored value. */
    size_t depth = 100000, len = 0;
    char *deep = malloc(6 * depth + 64);
    ASSERT_TRUE(deep != NULL);
    len += (size_t)sprintf(deep, "{\"x\":");
    for (size_t i = 0; i < depth; i++)
        len += (size_t)sprintf(deep + len, i % 2 ? "[" : "{\"k\":");
    deep[len++] = '0';
    for (size_t i = depth; i-- > 0;)
        deep[len++] = i % 2 ? ']' : '}';
    len += (size_t)sprintf(deep + len, ",\"items\":[{\"name\":\"a\"}]}");
    char got[64];
    page_entries_(__LINE__, deep, len, got, sizeof(got));
    ASSERT_STR_EQ(got, "a 0 0 0 - - -;");
    free(deep);
}

static void test_escapes(void) {
    /* Escaped names are decoded exactly. */
    expect_entries("{\"items\":[{\"name\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\\u0001\\u007f\"}],"
                   "\"prefixes\":[\"\\u0041/\"]}",
                   "A/ dir;a\"b\\c\xc3\xa9\xf0\x9f\x98\x80/\b\f\n\r\t\x01\x7f 0 0 0 - - -;");
    /* Raw UTF-8 as it is. */
    expect_entries("{\"items\":[{\"name\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}]}",
                   "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf 0 0 0 - - -;");
    /* White space between tokens. */
    expect_entries(" \r\n\t{ \"items\" : [ { \"name\" : \"a\" , \"size\" : 1 } ] }\n", "a 1 0 0 - - -;");
}

static void test_refused(void) {
    expect_refused("");
    expect_refused(" ");
    expect_refused("[]");
    expect_refused("[{\"name\":\"a\"}]");
    expect_refused("\"x\"");
    expect_refused("1");
    expect_refused("null");
    expect_refused("{");
    expect_refused("{\"items\":[}");
    expect_refused("{\"items\":[{\"name\":\"a\"}]");
    expect_refused("{} {}");
    expect_refused("{}x");
    expect_refused("{}\"");
    expect_refused("{\"a\":1} \"x");
    expect_refused("{\"a\":1}\n\"}");
    expect_refused("{\"a\":1,}");
    expect_refused("{\"a\":[1,]}");
    expect_refused("{'a':1}");
    expect_refused("{\"a\":01}");
    expect_refused("{\"a\":tru}");
    expect_refused("{\"a\":\"\\x\"}");
    expect_refused("{\"a\":\"\\u12g4\"}");
    expect_refused("{\"a\":\"\x01\"}");
    expect_refused("{\"a\":\"x\0\"}");
    expect_refused("{\"a\":1}\0");
    expect_refused("{\"a\":1\0}"); /* jansson skipped a NUL after a number or a literal */
    expect_refused("{\"a\":true\0}");
    expect_refused("{/* c */}");
    /* \u0000 anywhere: in a name, a key, an ignored value. */
    expect_refused("{\"items\":[{\"name\":\"a\\u0000b\"}]}");
    expect_refused("{\"a\\u0000\":1}");
    expect_refused("{\"x\":[[{\"y\":\"\\u0000\"}]]}");
    /* Escaped surrogates that do not pair up. */
    expect_refused("{\"items\":[{\"name\":\"\\ud800\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\\udc00\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\\ud800\\u0041\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\\ud800\\ud800\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\\ude00\\ud83d\"}]}");
    expect_refused("{\"x\":\"\\ud83d\"}");
    /* Invalid UTF-8: a stray byte, overlong forms, a surrogate, past U+10FFFF, cut short. */
    expect_refused("{\"items\":[{\"name\":\"\xff\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\x80\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xc0\x80\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xc1\xbf\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xe0\x80\x80\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xf0\x80\x80\x80\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xed\xa0\x80\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xf4\x90\x80\x80\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xf5\x80\x80\x80\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xc3\"}]}");
    expect_refused("{\"items\":[{\"name\":\"\xe2\x82\"}]}");
    expect_refused("{\"ignored\":\"\xc3\"}");
    expect_refused("{\"items\":[{\"name\":\"a\"}]}\xc3\xa9");
    /* \v and \f are not JSON white space. */
    expect_refused("{\v}");
    expect_refused("{\"a\":\f1}");
    /* Numbers jansson refused: an integer beyond int64, a real beyond double, even where ignored. */
    expect_refused("{\"items\":[{\"name\":\"a\",\"size\":9223372036854775808}]}");
    expect_refused("{\"x\":[-9223372036854775809]}");
    expect_refused("{\"x\":99999999999999999999}");
    expect_refused("{\"x\":1e400}");
    expect_refused("{\"x\":-1.7976931348623159e308}");

    /* At the limits, accepted. */
    expect_entries("{\"x\":[-9223372036854775808,9223372036854775807,1e-400,1.7976931348623157e308]}", "");

    /* The message says where. */
    sl__gcs_page page = {0};
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, "{\"a\":1} x", 9, "bkt"), SL_ECORRUPT);
    ASSERT_TRUE(strstr(sl_last_error(), "trailing garbage (at byte ") != NULL);
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, "[]", 2, "bkt"), SL_ECORRUPT);
    ASSERT_STR_EQ(sl_last_error(), "gs://bkt: listing page is not valid JSON: not an object (at byte 1)");
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, "{\"a\":\"\\u0000\"}", 14, "bkt"), SL_ECORRUPT);
    ASSERT_STR_EQ(sl_last_error(), "gs://bkt: listing page is not valid JSON: \\u0000 is not allowed (at byte 6)");
}

static void test_token(void) {
    sl__gcs_page page = {0};
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, "{}", 2, "b"), 0);
    ASSERT_TRUE(sl__gcs_page_token(&page) == NULL);
    sl__gcs_page_clear(&page);
    expect_entries("{}", "");

    const char *only = "{\"nextPageToken\":\"CgRwL2Ez\"}";
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, only, strlen(only), "b"), 0);
    ASSERT_STR_EQ(sl__gcs_page_token(&page), "CgRwL2Ez");
    const char *name;
    sl_object o;
    ASSERT_INT_EQ(sl__gcs_page_next(&page, &name, &o), 0);
    sl__gcs_page_clear(&page);
    ASSERT_TRUE(sl__gcs_page_token(&page) == NULL);

    const char *tok_page = "{\"nextPageToken\":\"tok\",\"items\":[]}";
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, tok_page, strlen(tok_page), "b"), 0);
    ASSERT_STR_EQ(sl__gcs_page_token(&page), "tok");
    sl__gcs_page_clear(&page);
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, "{\"nextPageToken\":\"\"}", 20, "b"), 0);
    ASSERT_TRUE(sl__gcs_page_token(&page) == NULL);
    sl__gcs_page_clear(&page);
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, "{\"nextPageToken\":5}", 19, "b"), 0);
    ASSERT_TRUE(sl__gcs_page_token(&page) == NULL);
    sl__gcs_page_clear(&page);
    /* A token in an item is not the page's. */
    const char *inner = "{\"items\":[{\"name\":\"a\",\"nextPageToken\":\"no\"}]}";
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, inner, strlen(inner), "b"), 0);
    ASSERT_TRUE(sl__gcs_page_token(&page) == NULL);
    sl__gcs_page_clear(&page);
}

/* A full page of 1,000 items whose kept text outgrows the arena's first size several times over, as GCS sends it:
 * every pointer handed out must survive the arena moving, and the order must hold. */
static void test_big_page(void) {
    size_t cap = 4 << 20, len = 0;
    char *body = malloc(cap);
    ASSERT_TRUE(body != NULL);
    len += (size_t)snprintf(body, cap, "{\"kind\":\"storage#objects\",\"items\":[");
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"name\":\"dir/%04d-%0900d\",\"size\":\"%d\",\"generation\":\"%d\","
                                "\"metadata\":{\"sluice-source\":\"fp-%04d-%0900d\"}}",
                                i ? "," : "", i, 0, i, i + 1, i, 0);
    len += (size_t)snprintf(body + len, cap - len, "],\"prefixes\":[\"dir/0499-/\"],\"nextPageToken\":\"next\"}");
    ASSERT_TRUE(len < cap);
    sl__gcs_page page = {0};
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, body, len, "b"), 0);
    static const char *names[1001], *fps[1001];
    const char *name;
    sl_object o;
    int n = 0;
    while (sl__gcs_page_next(&page, &name, &o) == 1) {
        ASSERT_TRUE(n < 1001);
        names[n] = name;
        fps[n++] = o.source_fingerprint;
    }
    ASSERT_INT_EQ(n, 1001);
    for (int i = 0, item = 0; i < n; i++) {
        char want[1024];
        if (i == 499) { /* "dir/0499-/" sorts before "dir/0499-0..." */
            ASSERT_STR_EQ(names[i], "dir/0499-/");
            ASSERT_TRUE(fps[i] == NULL);
            continue;
        }
        snprintf(want, sizeof(want), "dir/%04d-%0900d", item, 0);
        ASSERT_STR_EQ(names[i], want);
        snprintf(want, sizeof(want), "fp-%04d-%0900d", item, 0);
        ASSERT_STR_EQ(fps[i], want);
        item++;
    }
    ASSERT_STR_EQ(sl__gcs_page_token(&page), "next");
    sl__gcs_page_clear(&page);
    free(body);
}

/* A one-page HTTP server on 127.0.0.1 that answers every request with a page naming the same nextPageToken; or, with
 * lambda > 0, whose page tokens go round in a cycle: the first page names "a" and token p1, then empty pages with
 * tokens p2 .. p(mu+lambda), after which p(mu+1) comes again. */
typedef struct stuck_server {
    int listen_fd, port;
    int mu, lambda;
    atomic_bool stop;
    atomic_int requests, with_token;
    pthread_t thread;
} stuck_server;

static void *stuck_main(void *arg) {
    stuck_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd lp = {.fd = s->listen_fd, .events = POLLIN};
        if (poll(&lp, 1, 50) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        char req[16384];
        size_t len = 0;
        while (!atomic_load(&s->stop)) {
            struct pollfd cp = {.fd = fd, .events = POLLIN};
            if (poll(&cp, 1, 50) <= 0)
                continue;
            ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
            req[len] = '\0';
            char *end = strstr(req, "\r\n\r\n");
            if (!end)
                continue;
            bool token = strstr(req, "pageToken=again") && strstr(req, "pageToken=again") < end;
            atomic_fetch_add(&s->requests, 1);
            atomic_fetch_add(&s->with_token, token);
            const char *body = token ? "{\"items\":[{\"name\":\"b\"}],\"nextPageToken\":\"again\"}"
                                     : "{\"items\":[{\"name\":\"a\"}],\"nextPageToken\":\"again\"}";
            char cycle_body[128];
            if (s->lambda > 0) {
                const char *t = strstr(req, "pageToken=p");
                int k = t && t < end ? atoi(t + strlen("pageToken=p")) : 0;
                int next = k < s->mu + s->lambda ? k + 1 : s->mu + 1;
                atomic_fetch_add(&s->with_token, k > 0);
                snprintf(cycle_body, sizeof(cycle_body), "{%s\"nextPageToken\":\"p%d\"}",
                         k ? "" : "\"items\":[{\"name\":\"a\"}],", next);
                body = cycle_body;
            }
            char answer[512];
            int an = snprintf(answer, sizeof(answer),
                              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                              strlen(body), body);
            if (send(fd, answer, (size_t)an, MSG_NOSIGNAL) != an)
                break;
            len = 0;
        }
        close(fd);
    }
    return NULL;
}

static void test_repeated_token(void) {
    stuck_server s = {.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    ASSERT_TRUE(s.listen_fd >= 0);
    ASSERT_INT_EQ(bind(s.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ASSERT_INT_EQ(listen(s.listen_fd, 4), 0);
    ASSERT_INT_EQ(getsockname(s.listen_fd, (struct sockaddr *)&a, &alen), 0);
    ASSERT_INT_EQ(pthread_create(&s.thread, NULL, stuck_main, &s), 0);

    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", ntohs(a.sin_port));
    sl_store_options so = {.endpoint = endpoint, .anonymous = true, .retries = SL_NO_RETRIES};
    sl_store *store;
    sl_client *client;
    sl_lister *lister;
    sl_object o;
    ASSERT_INT_EQ(sl_store_open("gs://bkt", &so, &store), 0);
    ASSERT_INT_EQ(sl_client_new(store, &client), 0);
    sl_list_options lo = {.recursive = true};
    ASSERT_INT_EQ(sl_list_open(client, &lo, &lister), 0);
    ASSERT_INT_EQ(sl_list_next(lister, &o), 1);
    ASSERT_STR_EQ(o.key, "a");
    ASSERT_INT_EQ(sl_list_next(lister, &o), SL_ECORRUPT);
    ASSERT_STR_EQ(sl_last_error(),
                  "gs://bkt: the server repeated a page token (its pages go round in a cycle; 2 pages read); listing "
                  "stopped");
    ASSERT_INT_EQ(atomic_load(&s.requests), 2);
    ASSERT_INT_EQ(atomic_load(&s.with_token), 1);
    /* Asked again, it does not hand out the repeated page. */
    ASSERT_INT_EQ(sl_list_next(lister, &o), SL_ECORRUPT);
    sl_list_close(lister);
    sl_client_destroy(client);
    sl_store_close(store);

    atomic_store(&s.stop, true);
    pthread_join(s.thread, NULL);
    close(s.listen_fd);
}

/* contentEncoding "gzip" (any case, or "x-gzip") marks an object stored compressed; anything else does not. */
static void test_content_encoding(void) {
    const char *body =
        "{\"items\":[{\"name\":\"a\",\"contentEncoding\":\"gzip\"},"
        "{\"name\":\"b\",\"contentEncoding\":\" GZip \"},{\"name\":\"c\",\"contentEncoding\":\"x-gzip\"},"
        "{\"name\":\"d\",\"contentEncoding\":\"br\"},{\"name\":\"e\",\"contentEncoding\":\"gzip2\"},"
        "{\"name\":\"f\",\"contentEncoding\":1},{\"name\":\"g\"},"
        "{\"name\":\"h\",\"contentEncoding\":\"gzip\",\"contentEncoding\":\"identity\"}]}";
    const char *want = "a+b+c+d-e-f-g-h-";
    sl__gcs_page page = {0};
    ASSERT_INT_EQ(sl__gcs_page_parse(&page, body, strlen(body), "b"), 0);
    const char *name;
    sl_object o;
    char got[64] = "";
    size_t n = 0;
    while (sl__gcs_page_next(&page, &name, &o) == 1 && n + 2 < sizeof(got)) {
        got[n++] = name[0];
        got[n++] = o.content_encoding ? '+' : '-';
        if (o.content_encoding)
            ASSERT_STR_EQ(o.content_encoding, "gzip");
    }
    got[n] = '\0';
    ASSERT_STR_EQ(got, want);
    sl__gcs_page_clear(&page);
}

/* Page tokens that come back after a longer round (A, B, A; or after some pages that are not part of the cycle, and
 * with no object on the pages that would repeat a key) end the listing too, after a number of pages bounded by the
 * cycle's start and length, without remembering every token. */
static void test_token_cycle(void) {
    static const int cases[][2] = {{0, 2}, {0, 3}, {3, 5}, {10, 7}, {1, 40}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        stuck_server s = {
            .listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), .mu = cases[i][0], .lambda = cases[i][1]};
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t alen = sizeof(a);
        ASSERT_TRUE(s.listen_fd >= 0);
        ASSERT_INT_EQ(bind(s.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
        ASSERT_INT_EQ(listen(s.listen_fd, 4), 0);
        ASSERT_INT_EQ(getsockname(s.listen_fd, (struct sockaddr *)&a, &alen), 0);
        ASSERT_INT_EQ(pthread_create(&s.thread, NULL, stuck_main, &s), 0);

        char endpoint[64];
        snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", ntohs(a.sin_port));
        sl_store_options so = {.endpoint = endpoint, .anonymous = true, .retries = SL_NO_RETRIES};
        sl_store *store;
        sl_client *client;
        sl_lister *lister;
        sl_object o;
        ASSERT_INT_EQ(sl_store_open("gs://bkt/p", &so, &store), 0);
        ASSERT_INT_EQ(sl_client_new(store, &client), 0);
        sl_list_options lo = {.recursive = true};
        ASSERT_INT_EQ(sl_list_open(client, &lo, &lister), 0);
        ASSERT_INT_EQ(sl_list_next(lister, &o), SL_ECORRUPT); /* "a" is not under the prefix "p/" */
        ASSERT_TRUE(strstr(sl_last_error(), "gs://bkt/p: the server listed 'a', which is not under the prefix") ==
                    sl_last_error());
        sl_list_close(lister);
        sl_client_destroy(client);
        sl_store_close(store);

        ASSERT_INT_EQ(sl_store_open("gs://bkt", &so, &store), 0);
        ASSERT_INT_EQ(sl_client_new(store, &client), 0);
        atomic_store(&s.requests, 0);
        ASSERT_INT_EQ(sl_list_open(client, &lo, &lister), 0);
        ASSERT_INT_EQ(sl_list_next(lister, &o), 1);
        ASSERT_STR_EQ(o.key, "a");
        ASSERT_INT_EQ(sl_list_next(lister, &o), SL_ECORRUPT);
        ASSERT_TRUE(strstr(sl_last_error(), "gs://bkt: the server repeated a page token") == sl_last_error());
        int pages = atomic_load(&s.requests), bound = 2 * (s.mu + 2 * s.lambda) + 2;
        ASSERT_TRUE(pages > s.mu + s.lambda);
        ASSERT_TRUE(pages <= bound);
        ASSERT_INT_EQ(sl_list_next(lister, &o), SL_ECORRUPT);
        ASSERT_INT_EQ(atomic_load(&s.requests), pages); /* stopped for good: nothing asked again */
        sl_list_close(lister);
        sl_client_destroy(client);
        sl_store_close(store);

        atomic_store(&s.stop, true);
        pthread_join(s.thread, NULL);
        close(s.listen_fd);
    }
}

int main(void) {
    RUN_TEST(test_order);
    RUN_TEST(test_fields);
    RUN_TEST(test_duplicates);
    RUN_TEST(test_skipped);
    RUN_TEST(test_escapes);
    RUN_TEST(test_refused);
    RUN_TEST(test_token);
    RUN_TEST(test_big_page);
    RUN_TEST(test_repeated_token);
    RUN_TEST(test_token_cycle);
    RUN_TEST(test_content_encoding);
    TEST_DONE();
}
