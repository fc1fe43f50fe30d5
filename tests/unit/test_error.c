/* The thread-local error message: room for a maximal key or path with its reason (SL__MESSAGE_CAP); a message longer
 * than that loses bytes from its middle, so that the reason at its end (and the store and object at its start) always
 * survive, and it is never cut inside a UTF-8 character. The same cut (sl__text_cut) serves every buffer a message is
 * copied to on its way out, and an operation's failure reason (sl__task_fail). */
#include "fail.h"
#include "task.h"
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
    /* Exactly SL__MESSAGE_CAP - 1 bytes still fit whole. */
    char *p = s_long_path(SL__MESSAGE_CAP - 1 - strlen(": end"));
    sl__fail(SL_EIO, "%s: end", p);
    ASSERT_UINT_EQ(strlen(sl_last_error()), SL__MESSAGE_CAP - 1);
    ASSERT_TRUE(strstr(sl_last_error(), " [...] ") == NULL);
    free(p);
}

/* A message quoting a maximal key is whole: a 4,096-byte local path, or a 1,024-byte GCS name quoted twice (by sluice
 * and by the server's answer) with the server's 512-byte message, and the reason after them. */
static void test_maximal_keys_fit(void) {
    char *path = s_long_path(4096);
    sl__fail_errno(EACCES, "%s/%s: cannot open", path, path + 3000);
    ASSERT_TRUE(strstr(sl_last_error(), " [...] ") == NULL);
    ASSERT_TRUE(strncmp(sl_last_error(), path, 4096) == 0);
    free(path);
    char *name = s_long_path(1024), detail[513];
    memset(detail, 'd', 512);
    detail[512] = '\0';
    sl__fail(SL_ENOENT, "gs://bucket/%s: HTTP 404: No such object: bucket/%s %s (via anonymous access (X=Y))", name,
             name, detail);
    ASSERT_TRUE(strstr(sl_last_error(), " [...] ") == NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "HTTP 404") != NULL);
    free(name);
}

static void test_long_messages_keep_their_end(void) {
    const size_t lens[] = {SL__MESSAGE_CAP, SL__MESSAGE_CAP + 500, 2 * SL__MESSAGE_CAP + 254, 20000, 70000};
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
            ASSERT_TRUE(n <= SL__MESSAGE_CAP - 1 && n > SL__MESSAGE_CAP - 24);
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
    char *p = s_long_path(SL__MESSAGE_CAP - 24);
    sl__fail(SL_EIO, "%s: first", p);
    sl__fail(SL_EIO, "%s; then a second reason that makes it too long", sl_last_error());
    const char *m = sl_last_error();
    ASSERT_TRUE(strncmp(m, "/p/", 3) == 0);
    ASSERT_TRUE(strstr(m, " [...] ") != NULL);
    const char *end = ": first; then a second reason that makes it too long";
    ASSERT_STR_EQ(m + strlen(m) - strlen(end), end);
    free(p);
}

/* sl__text_cut, into buffers of every size: whole when it fits, else start + " [...] " + end, within cap, in place too.
 */
static void test_text_cut(void) {
    char *src = s_long_path(3000);
    memcpy(src + 2980, ": the reason here", 18); /* ends the text: 2997 bytes */
    size_t len = strlen(src);
    char *dst = malloc(len + 1);
    ASSERT_TRUE(dst != NULL);
    for (size_t cap = 1; cap <= len + 2; cap += cap < 64 ? 1 : 37) {
        size_t n = sl__text_cut(dst, cap, src, len);
        ASSERT_UINT_EQ(n, strlen(dst));
        ASSERT_TRUE(n < cap);
        s_assert_utf8(dst);
        if (cap > len) {
            ASSERT_STR_EQ(dst, src);
            continue;
        }
        if (cap > 40) {
            ASSERT_TRUE(n + 1 >= cap - 1); /* uses the room it has (a UTF-8 character may leave a byte) */
            ASSERT_TRUE(strstr(dst, " [...] ") != NULL);
            ASSERT_TRUE(strncmp(dst, "/p/", 3) == 0);
            ASSERT_STR_EQ(dst + n - 17, ": the reason here");
        }
    }
    /* In place. */
    memcpy(dst, src, len + 1);
    size_t n = sl__text_cut(dst, 200, dst, len);
    ASSERT_UINT_EQ(n, strlen(dst));
    ASSERT_STR_EQ(dst + n - 17, ": the reason here");
    ASSERT_TRUE(strncmp(dst, "/p/", 3) == 0);
    free(dst);
    free(src);
}

/* An operation's failure reason (sl__task_fail) is cut like a message: the end stays. It may quote task->error. */
static void test_task_fail_keeps_the_reason(void) {
    char error[300];
    sl__task task = {.error = error, .error_cap = sizeof(error)};
    char *p = s_long_path(1000);
    ASSERT_INT_EQ(sl__task_fail(&task, SL_EIO, "%s: cannot write: %s", p, "No space left on device"), SL_EIO);
    ASSERT_TRUE(strlen(error) < sizeof(error));
    ASSERT_TRUE(strncmp(error, "/p/", 3) == 0);
    const char *end = ": cannot write: No space left on device";
    ASSERT_STR_EQ(error + strlen(error) - strlen(end), end);
    sl__task_fail(&task, SL_EIO, "%s (again)", task.error);
    ASSERT_STR_EQ(error + strlen(error) - strlen(" (again)"), " (again)");
    ASSERT_TRUE(strncmp(error, "/p/", 3) == 0);
    free(p);
}

int main(void) {
    RUN_TEST(test_short_messages_unchanged);
    RUN_TEST(test_maximal_keys_fit);
    RUN_TEST(test_text_cut);
    RUN_TEST(test_task_fail_keeps_the_reason);
    RUN_TEST(test_long_messages_keep_their_end);
    RUN_TEST(test_message_quoting_the_last_one);
    TEST_DONE();
}
