/* The failure log reader: every key sl_json_quote can write (any bytes but NUL) comes back byte for byte; other
 * members are skipped whatever their type; malformed lines are refused with a reason and the reader names the line;
 * blank lines are skipped; an overlong line is refused instead of growing a buffer. */
#include "failure_log.h"
#include "test.h"

#include "sluice/sluice.h"

#include <unistd.h>

static char s_dir[256];

static int parse(const char *line, char *key, size_t cap, size_t *len, char *why) {
    return sl__faillog_parse_line(line, strlen(line), key, cap, len, why, 128);
}

static void test_round_trip_of_every_byte(void) {
    /* Random keys over all 255 non-NUL byte values, quoted as the failure log quotes them. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char key[300], line[4096], back[SL__FAILLOG_KEY_CAP], why[128];
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + round % 40;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            key[i] = (char)(1 + x % 255);
        }
        key[n] = '\0';
        size_t q = (size_t)snprintf(line, sizeof(line), "{\"key\":");
        q += sl_json_quote(line + q, sizeof(line) - q, key, n);
        snprintf(line + q, sizeof(line) - q,
                 ",\"error\":\"x\",\"code\":\"SL_EIO\",\"attempts\":3,\"http_status\":503}");
        size_t len = 0;
        ASSERT_INT_EQ(parse(line, back, sizeof(back), &len, why), 0);
        ASSERT_UINT_EQ(len, n);
        ASSERT_MEM_EQ(back, key, n);
    }
}

static void test_members_and_escapes(void) {
    char key[SL__FAILLOG_KEY_CAP], why[128];
    size_t len;
    ASSERT_INT_EQ(parse("{\"key\":\"a/b.txt\"}", key, sizeof(key), &len, why), 0);
    ASSERT_STR_EQ(key, "a/b.txt");
    /* Other members of any type, before or after, nested, with spaces. */
    ASSERT_INT_EQ(parse(" { \"x\" : [1, {\"y\": null}, \"s\"], \"n\": -1.5e3, \"t\": true , \"key\" : \"k\\/1\\t\" } ",
                        key, sizeof(key), &len, why),
                  0);
    ASSERT_STR_EQ(key, "k/1\t");
    /* \u00XX is a byte; higher escapes and surrogate pairs are UTF-8. */
    ASSERT_INT_EQ(parse("{\"key\":\"\\u00ff\\u00e9\\u20ac\\ud83d\\ude00\"}", key, sizeof(key), &len, why), 0);
    ASSERT_UINT_EQ(len, 2 + 3 + 4);
    ASSERT_MEM_EQ(key, "\xff\xe9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    /* A member named like "key" but longer is not the key. */
    ASSERT_INT_EQ(parse("{\"keys\":\"no\",\"key\":\"yes\",\"key_len\":3}", key, sizeof(key), &len, why), 0);
    ASSERT_STR_EQ(key, "yes");
}

static void test_malformed_lines(void) {
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"key\":1}",
        "{\"key\":\"\"}",
        "{\"key\":\"a\",\"key\":\"a\"}",
        "{\"key\":\"a\"",
        "{\"key\":\"a\"} x",
        "{\"key\":\"a\\u0000b\"}",
        "{\"key\":\"a\\x41\"}",
        "{\"key\":\"\\ud800\"}",
        "{\"key\":\"\\udc00\"}",
        "{\"key\":\"\\u12\"}",
        "{\"key\":\"a\tb\"}",
        "{\"key\":\"a\",}",
        "{\"key\" \"a\"}",
        "{key:\"a\"}",
        "{\"key\":\"a\",\"x\":nul}",
        "{\"key\":\"a\",\"x\":[1,}",
        "{\"key\":\"a\",\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
    };
    char key[SL__FAILLOG_KEY_CAP], why[128];
    size_t len;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        if (parse(bad[i], key, sizeof(key), &len, why) != SL_EINVAL)
            TEST_FAIL_("accepted: %s", bad[i]);
        ASSERT_TRUE(why[0] != '\0');
    }
    /* A key longer than the buffer is refused, not truncated. */
    char line[64];
    snprintf(line, sizeof(line), "{\"key\":\"%s\"}", "0123456789");
    ASSERT_INT_EQ(parse(line, key, 8, &len, why), SL_EINVAL);
    ASSERT_TRUE(strstr(why, "too long") != NULL);
}

static void write_text(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    ASSERT_UINT_EQ(fwrite(text, 1, len, f), len);
    ASSERT_INT_EQ(fclose(f), 0);
}

static void test_reader_lines(void) {
    char path[512];
    snprintf(path, sizeof(path), "%s/log.jsonl", s_dir);
    const char text[] = "{\"key\":\"one\"}\n\n   \r\n{\"key\":\"two\"}\r\n{\"key\":\"three\"}"; /* no final newline */
    write_text(path, text, sizeof(text) - 1);
    sl__faillog *r = NULL;
    ASSERT_INT_EQ(sl__faillog_open(path, &r), 0);
    const char *key;
    size_t len;
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), 1);
    ASSERT_STR_EQ(key, "one");
    ASSERT_UINT_EQ(sl__faillog_line(r), 1);
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), 1);
    ASSERT_STR_EQ(key, "two");
    ASSERT_UINT_EQ(sl__faillog_line(r), 4);
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), 1);
    ASSERT_STR_EQ(key, "three");
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), 0);
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), 0);
    sl__faillog_close(r);

    /* The error names the file and the line. */
    const char bad[] = "{\"key\":\"a\"}\n{\"key\":\"b\"}\n{\"kee\":\"c\"}\n";
    write_text(path, bad, sizeof(bad) - 1);
    ASSERT_INT_EQ(sl__faillog_open(path, &r), 0);
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), 1);
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), 1);
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "log.jsonl line 3: no \"key\" member") != NULL);
    sl__faillog_close(r);

    /* A NUL byte inside a line, and a line longer than the cap: refused, memory stays bounded. */
    const char nul[] = "{\"key\":\"a\0b\"}\n";
    write_text(path, nul, sizeof(nul) - 1);
    ASSERT_INT_EQ(sl__faillog_open(path, &r), 0);
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "line 1: contains a NUL byte") != NULL);
    sl__faillog_close(r);
    size_t big = SL__FAILLOG_LINE_CAP + 100;
    char *huge = malloc(big);
    ASSERT_TRUE(huge != NULL);
    memset(huge, ' ', big);
    memcpy(huge, "{\"key\":\"a\"}", 11);
    huge[big - 1] = '\n';
    write_text(path, huge, big);
    free(huge);
    ASSERT_INT_EQ(sl__faillog_open(path, &r), 0);
    ASSERT_INT_EQ(sl__faillog_next(r, &key, &len), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "line 1: longer than") != NULL);
    sl__faillog_close(r);

    snprintf(path, sizeof(path), "%s/missing.jsonl", s_dir);
    ASSERT_INT_EQ(sl__faillog_open(path, &r), SL_EINVAL);
    ASSERT_TRUE(r == NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "cannot read the failure log") != NULL);
    sl__faillog_close(NULL);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof(s_dir), "%s/sluice-test-faillog-XXXXXX", tmp ? tmp : "/tmp");
    ASSERT_TRUE(mkdtemp(s_dir) != NULL);
    RUN_TEST(test_round_trip_of_every_byte);
    RUN_TEST(test_members_and_escapes);
    RUN_TEST(test_malformed_lines);
    RUN_TEST(test_reader_lines);
    char path[512];
    snprintf(path, sizeof(path), "%s/log.jsonl", s_dir);
    unlink(path);
    rmdir(s_dir);
    TEST_DONE();
}
