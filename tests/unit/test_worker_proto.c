/* The reading side of the worker protocol (worker_proto.h): answers fed in pieces of every size give the same
 * outcome, each violation is named, bytes after a final line stay for the next answer, and the result members come
 * out as the worker wrote them. tests/fuzz/fuzz_worker_answer.c feeds the same functions random streams;
 * tests/cli/worker.sh runs real worker processes. */
#include "test.h"
#include "worker_proto.h"

typedef struct s_fed {
    int rc; /* what the last feed returned */
    bool final, ok, has_body;
    char body[256]; /* the output body delivered */
    size_t body_len;
    size_t left; /* bytes of the input not used when the answer ended */
    char why[512];
    char members[512]; /* the result members, raw, as "name=value;" */
} s_fed;

static int s_deliver(void *ctx, const unsigned char *p, size_t n) {
    s_fed *f = ctx;
    if (f->body_len + n > sizeof(f->body))
        TEST_FAIL_("body longer than the test expects");
    memcpy(f->body + f->body_len, p, n);
    f->body_len += n;
    return 0;
}

static int s_member(void *ctx, const char *name, size_t name_len, const char *value, size_t value_len) {
    s_fed *f = ctx;
    size_t at = strlen(f->members);
    snprintf(f->members + at, sizeof(f->members) - at, "%.*s=%.*s;", (int)name_len, name, (int)value_len, value);
    return 0;
}

/* Feeds text[0..n) as reads of `step` bytes until the answer is final or broken. */
static s_fed s_feed(const char *text, size_t n, size_t step) {
    static char line[SL__WP_LINE_MAX + 1], final_text[SL__WP_LINE_MAX + 1];
    static unsigned char buf[SL__WP_LINE_MAX * 2];
    s_fed f;
    memset(&f, 0, sizeof(f));
    sl__wp_in in = {.buf = buf, .line = line};
    sl__wp_answer a;
    memset(&a, 0, sizeof(a));
    a.final_text = final_text;
    size_t at = 0;
    while (!a.final && f.rc == 0 && at < n) {
        size_t k = n - at < step ? n - at : step;
        memcpy(buf, text + at, k);
        in.pos = 0;
        in.len = k;
        at += k;
        f.rc = sl__wp_answer_feed(&a, &in, s_deliver, &f);
    }
    f.final = a.final;
    f.ok = a.ok;
    f.has_body = a.has_body;
    f.left = (n - at) + (in.len - in.pos);
    snprintf(f.why, sizeof(f.why), "%s", a.why);
    if (a.final) {
        ASSERT_UINT_EQ(a.body, f.body_len);
        sl__wp_result_members(a.final_text, a.final_len, s_member, &f);
    }
    json_decref(a.final_json);
    return f;
}

#define FEED(lit, step) s_feed(lit, sizeof(lit) - 1, step)

static void test_answers_in_pieces_of_every_size(void) {
    static const char chunked[] = "{\"chunk\":3}\nabc{\"chunk\":0}\n{\"chunk\":2}\n\n\n{\"ok\":true,\"size\":5}\n";
    for (size_t step = 1; step <= sizeof(chunked); step++) {
        s_fed f = FEED(chunked, step);
        ASSERT_INT_EQ(f.rc, 0);
        ASSERT_TRUE(f.final && f.ok && f.has_body);
        ASSERT_UINT_EQ(f.body_len, 5);
        ASSERT_MEM_EQ(f.body, "abc\n\n", 5);
        ASSERT_UINT_EQ(f.left, 0);
    }
    static const char plain[] = "{\"ok\":true,\"result\":{\"md5\":\"ab\",\"n\":1.50,\"big\":12345678901234567}}\n";
    for (size_t step = 1; step <= sizeof(plain); step++) {
        s_fed f = FEED(plain, step);
        ASSERT_TRUE(f.final && f.ok && !f.has_body);
        ASSERT_STR_EQ(f.members, "\"md5\"=\"ab\";\"n\"=1.50;\"big\"=12345678901234567;");
    }
    s_fed f = FEED("{\"ok\":false,\"error\":\"ValueError: bad\"}\n", 7);
    ASSERT_TRUE(f.final && !f.ok && !f.has_body);
    f = FEED("{\"chunk\":2}\nxy{\"ok\":false,\"error\":\"late\"}\n", 4); /* a failure after output: no body counts */
    ASSERT_TRUE(f.final && !f.ok && !f.has_body);
}

static void test_what_follows_a_final_line_stays(void) {
    s_fed f = FEED("{\"ok\":true}\n{\"ok\":true}\n", 100);
    ASSERT_TRUE(f.final && f.ok);
    ASSERT_UINT_EQ(f.left, 12);
    f = FEED("{\"ok\":true}\n{\"chunk\":1}\nz", 5);
    ASSERT_TRUE(f.final);
    ASSERT_UINT_EQ(f.left, 13);
}

static void test_result_members_raw(void) {
    s_fed f = FEED("{\"result\":{\"a\\\"b\":{\"x\":[1,\"}\"]},\"c\":\"\\u00e9\",\"e\":[],\"t\":true,\"z\":null},"
                   "\"ok\":true}\n",
                   9);
    ASSERT_TRUE(f.final && f.ok);
    ASSERT_STR_EQ(f.members, "\"a\\\"b\"={\"x\":[1,\"}\"]};\"c\"=\"\\u00e9\";\"e\"=[];\"t\"=true;\"z\"=null;");
    f = FEED("{ \"ok\" : true , \"result\" : { \"k\" : 1 , \"l\" : \"w\\\\\" } }\n", 3);
    ASSERT_STR_EQ(f.members, "\"k\"=1;\"l\"=\"w\\\\\";");
    f = FEED("{\"ok\":true,\"result\":{}}\n", 3);
    ASSERT_TRUE(f.final);
    ASSERT_STR_EQ(f.members, "");
    f = FEED("{\"ok\":true,\"x\":{\"result\":{\"no\":1}}}\n", 3); /* only the top level's "result" */
    ASSERT_STR_EQ(f.members, "");
}

static void s_bad_(int line, const char *text, size_t n, const char *want) {
    for (size_t step = 1; step <= n + 1; step += step < 8 ? 1 : 97) {
        s_fed f = s_feed(text, n, step);
        if (f.rc != 1 || f.final || !strstr(f.why, want))
            TEST_FAIL_("line %d, reads of %zu: rc %d, final %d, why \"%s\"; want a violation saying \"%s\"", line, step,
                       f.rc, f.final, f.why, want);
        s_test_checks++;
    }
}
#define BAD(lit, want) s_bad_(__LINE__, lit, sizeof(lit) - 1, want)

static void test_violations_are_named(void) {
    BAD("{\"chunk\":3}\nabc{\"ok\":true,\"size\":4}\n", "a final 'size' of 4 after 3 bytes of chunks");
    BAD("{\"chunk\":1}\na{\"ok\":true}\n", "without 'size'");
    BAD("{\"size\":0}\n", "without a boolean 'ok'");
    BAD("{\"ok\":1}\n", "without a boolean 'ok'");
    BAD("{\"ok\":false}\n", "'ok' false without an 'error' string");
    BAD("{\"ok\":true,\"size\":-1}\n", "'size' is not an integer in range");
    BAD("{\"ok\":true,\"size\":1.0}\n", "'size' is not an integer in range");
    BAD("{\"ok\":true,\"result\":[1]}\n", "'result' is not an object");
    BAD("{\"chunk\":-1}\n", "'chunk' is not an integer from 0 to 2147483647");
    BAD("{\"chunk\":2147483648}\n", "'chunk' is not an integer");
    BAD("{\"chunk\":\"3\"}\n", "'chunk' is not an integer");
    BAD("hello\n", "not a JSON object");
    BAD("[1]\n", "not a JSON object (another JSON value)");
    BAD("{\"ok\":true,\"ok\":true}\n", "not a JSON object");
    BAD("{\"ok\":true} x\n", "not a JSON object");
    BAD("{\"ok\":true,\"error\":\"\xc0\x80\"}\n", "not UTF-8");         /* overlong */
    BAD("{\"ok\":true,\"error\":\"\xed\xa0\x80\"}\n", "not UTF-8");     /* a surrogate */
    BAD("{\"ok\":true,\"error\":\"\xf4\x90\x80\x80\"}\n", "not UTF-8"); /* past U+10FFFF */
    BAD("{\"ok\":true,\"error\":\"\xe2\x82\"}\n", "not UTF-8");         /* cut short */
    static char long_line[SL__WP_LINE_MAX + 2];
    memset(long_line, ' ', sizeof(long_line));
    long_line[0] = '{';
    long_line[sizeof(long_line) - 2] = '}';
    long_line[sizeof(long_line) - 1] = '\n';
    s_bad_(__LINE__, long_line, sizeof(long_line), "a line longer than 131072 bytes");
    /* exactly the limit, its LF included: parsed, not too long */
    memset(long_line, ' ', sizeof(long_line));
    long_line[0] = '{';
    long_line[SL__WP_LINE_MAX - 2] = '}';
    long_line[SL__WP_LINE_MAX - 1] = '\n';
    s_fed f = s_feed(long_line, SL__WP_LINE_MAX, 4096);
    ASSERT_INT_EQ(f.rc, 1);
    ASSERT_TRUE(strstr(f.why, "without a boolean 'ok'") != NULL);
}

static void test_utf8(void) {
    ASSERT_TRUE(sl__wp_utf8_valid("", 0));
    ASSERT_TRUE(sl__wp_utf8_valid("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    ASSERT_TRUE(sl__wp_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    ASSERT_TRUE(sl__wp_utf8_valid("a\0b", 3));
    ASSERT_FALSE(sl__wp_utf8_valid("\x80", 1));
    ASSERT_FALSE(sl__wp_utf8_valid("\xe0\x80\xaf", 3)); /* overlong '/' */
    ASSERT_FALSE(sl__wp_utf8_valid("\xff", 1));
}

int main(void) {
    RUN_TEST(test_answers_in_pieces_of_every_size);
    RUN_TEST(test_what_follows_a_final_line_stays);
    RUN_TEST(test_result_members_raw);
    RUN_TEST(test_violations_are_named);
    RUN_TEST(test_utf8);
    TEST_DONE();
}
