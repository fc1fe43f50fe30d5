/* The thread-local error message: a message longer than its 1 KiB buffer loses bytes from its middle, so that the
 * reason at its end (and the store and object at its start) always survive, and it is never cut inside a UTF-8
 * character. */
#include "fail.h"
#include "test.h"

#include <errno.h>

/* A path of `len` bytes: "/p/" then 'a'..'z' repeated, with a 2-byte UTF-8 character every 50 bytes. */
static char *s_long_path(size_t len) {
    char *p = malloc(len + 1);
    ASSERT_TRUE(p != NULL);
    memcpy(p, "/p/", 3);
    for (size_t i = 3; i < len; i++)
        p[i] = (char)('a' + i % 26);
    for (size_t i = 50; i + 1 < len; i += 50) {
        p[i] = (char)0xC3;
        p[i + 1] = (char)0xA9;
    }
    p[len] = '\0';
    return p;
}

/* No byte of the message starts in the middle of a UTF-8 sequence it does not complete. */
static void s_assert_utf8(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == 0xC3) {
            ASSERT_INT_EQ(p[1], 0xA9);
            p++;
        } else {
            ASSERT_TRUE(*p < 0x80);
        }
    }
}

static void test_short_messages_unchanged(void) {
    ASSERT_INT_EQ(sl__fail(SL_EINVAL, "%s: %d", "short", 42), SL_EINVAL);
    ASSERT_STR_EQ(sl_last_error(), "short: 42");
    ASSERT_INT_EQ(sl__fail_errno(ENOENT, "%s: cannot open", "/x"), SL_ENOENT);
    ASSERT_STR_EQ(sl_last_error(), "/x: cannot open: No such file or directory");
    /* Exactly 1,023 bytes still fit whole. */
    char *p = s_long_path(1023 - strlen(": end"));
    sl__fail(SL_EIO, "%s: end", p);
    ASSERT_UINT_EQ(strlen(sl_last_error()), 1023);
    ASSERT_TRUE(strstr(sl_last_error(), " [...] ") == NULL);
    free(p);
}

static void test_long_messages_keep_their_end(void) {
    const size_t lens[] = {1024, 1500, 4096, 8446, 20000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char *p = s_long_path(lens[i]);
        for (int with_errno = 0; with_errno < 2; with_errno++) {
            const char *tail = with_errno ? "/leaf: cannot stat: Permission denied"
                                          : "/leaf: skipped: its key would be 4120 bytes long, over the limit of 4095";
            if (with_errno)
                ASSERT_INT_EQ(sl__fail_errno(EACCES, "%s/leaf: cannot stat", p), SL_EACCES);
            else
                ASSERT_INT_EQ(sl__fail(SL_ENAMETOOLONG,
                                       "%s/leaf: skipped: its key would be %d bytes long, over the "
                                       "limit of %d",
                                       p, 4120, 4095),
                              SL_ENAMETOOLONG);
            const char *m = sl_last_error();
            size_t n = strlen(m), tn = strlen(tail);
            ASSERT_TRUE(n <= 1023 && n > 1000);
            ASSERT_TRUE(strncmp(m, "/p/", 3) == 0);
            ASSERT_TRUE(strstr(m, " [...] ") != NULL);
            if (strcmp(m + n - tn, tail) != 0)
                TEST_FAIL_("message of a %zu-byte path does not end with its reason: ...%s", lens[i], m + n - 80);
            s_assert_utf8(m);
        }
        free(p);
    }
}

/* A message may quote the one before it: sl__fail("%s (hint)", sl_last_error()) adds to it, short or long. */
static void test_message_quoting_the_last_one(void) {
    sl__fail(SL_ENOENT, "gs://b/k: HTTP 404: %s", "No such object");
    sl__fail(SL_ENOENT, "%s (hint)", sl_last_error());
    ASSERT_STR_EQ(sl_last_error(), "gs://b/k: HTTP 404: No such object (hint)");
    sl__fail_errno(EACCES, "%s: again", sl_last_error());
    ASSERT_STR_EQ(sl_last_error(), "gs://b/k: HTTP 404: No such object (hint): again: Permission denied");
    char *p = s_long_path(1000);
    sl__fail(SL_EIO, "%s: first", p);
    sl__fail(SL_EIO, "%s; then a second reason that makes it too long", sl_last_error());
    const char *m = sl_last_error();
    ASSERT_TRUE(strncmp(m, "/p/", 3) == 0);
    ASSERT_TRUE(strstr(m, " [...] ") != NULL);
    const char *end = ": first; then a second reason that makes it too long";
    ASSERT_STR_EQ(m + strlen(m) - strlen(end), end);
    free(p);
}

int main(void) {
    RUN_TEST(test_short_messages_unchanged);
    RUN_TEST(test_long_messages_keep_their_end);
    RUN_TEST(test_message_quoting_the_last_one);
    TEST_DONE();
}
