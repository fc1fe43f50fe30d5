/* sl_url_parse / sl_url_free: gs://, s3://, file:// and plain paths, and every way each can be wrong. */
#include "sluice/store.h"
#include "test.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_tmp[PATH_MAX];  /* a scratch directory, as getcwd() reports it once we are inside */
static char s_home[PATH_MAX]; /* the directory the test started in */

static void check_ok_(int line, const char *text, sl_scheme scheme, const char *bucket, const char *path,
                      bool trailing_slash) {
    sl_url u;
    int rc = sl_url_parse(text, &u);
    if (rc != 0)
        TEST_FAIL_("line %d: sl_url_parse(\"%s\") = %s: %s", line, text, sl_err_name(rc), sl_last_error());
    if (u.scheme != scheme || (bucket ? !u.bucket || strcmp(u.bucket, bucket) != 0 : u.bucket != NULL) || !u.path ||
        strcmp(u.path, path) != 0 || u.trailing_slash != trailing_slash)
        TEST_FAIL_("line %d: sl_url_parse(\"%s\") = {%d, \"%s\", \"%s\", %d}, want {%d, \"%s\", \"%s\", %d}", line,
                   text, (int)u.scheme, u.bucket ? u.bucket : "(null)", u.path ? u.path : "(null)", u.trailing_slash,
                   (int)scheme, bucket ? bucket : "(null)", path, trailing_slash);
    s_test_checks++;
    sl_url_free(&u);
    ASSERT_TRUE(u.bucket == NULL && u.path == NULL);
}

/* Parsing fails with `code`, zeroes the output, and the message contains each of the NULL-terminated strings. */
static void check_bad_(int line, const char *text, int code, ...) {
    sl_url u;
    memset(&u, 0x5a, sizeof(u));
    int rc = sl_url_parse(text, &u);
    if (rc != code)
        TEST_FAIL_("line %d: sl_url_parse(\"%s\") = %s, want %s (%s)", line, text, sl_err_name(rc), sl_err_name(code),
                   sl_last_error());
    if (u.bucket || u.path || u.scheme || u.trailing_slash)
        TEST_FAIL_("line %d: sl_url_parse(\"%s\") failed without zeroing the output", line, text);
    const char *msg = sl_last_error();
    if (strchr(msg, '\n'))
        TEST_FAIL_("line %d: message for \"%s\" is not one line: %s", line, text, msg);
    va_list ap;
    va_start(ap, code);
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;)
        if (!strstr(msg, want))
            TEST_FAIL_("line %d: message for \"%s\" lacks \"%s\": %s", line, text, want, msg);
    va_end(ap);
    s_test_checks++;
}

#define OK(text, scheme, bucket, path, slash) check_ok_(__LINE__, text, scheme, bucket, path, slash)
#define GS(text, bucket, path, slash) OK(text, SL_SCHEME_GS, bucket, path, slash)
#define S3(text, bucket, path, slash) OK(text, SL_SCHEME_S3, bucket, path, slash)
#define FILEP(text, path, slash) OK(text, SL_SCHEME_FILE, NULL, path, slash)
#define BAD(text, code, ...) check_bad_(__LINE__, text, code, __VA_ARGS__, (const char *)NULL)

static char *s_repeat(char *dst, char c, size_t n) {
    memset(dst, c, n);
    dst[n] = '\0';
    return dst;
}

static void test_gs(void) {
    GS("gs://bucket", "bucket", "", false);
    GS("gs://bucket/", "bucket", "", true);
    GS("gs://bucket/a/b.csv", "bucket", "a/b.csv", false);
    GS("gs://bucket/a/b/", "bucket", "a/b/", true);
    GS("GS://bucket/k", "bucket", "k", false);
    /* Object names are kept byte for byte: no collapsing, no decoding, no "." / ".." handling. */
    GS("gs://bucket//a", "bucket", "/a", false);
    GS("gs://bucket/a//b///c", "bucket", "a//b///c", false);
    GS("gs://bucket//", "bucket", "/", true);
    GS("gs://bucket/./../x", "bucket", "./../x", false);
    GS("gs://bucket/a b/%20/%zz", "bucket", "a b/%20/%zz", false);
    GS("gs://bucket/#1?x=y&z", "bucket", "#1?x=y&z", false);
    GS("gs://bucket/\xc3\xbc\xe6\x97\xa5/\xf0\x9f\x98\x80", "bucket", "\xc3\xbc\xe6\x97\xa5/\xf0\x9f\x98\x80", false);
    GS("gs://bucket/line\nbreak", "bucket", "line\nbreak", false);
}

static void test_s3(void) {
    S3("s3://my-bucket", "my-bucket", "", false);
    S3("s3://my-bucket/logs/2026/", "my-bucket", "logs/2026/", true);
    S3("s3://my.bucket.example/k", "my.bucket.example", "k", false);
    S3("s3://b12//x", "b12", "/x", false);
    S3("S3://b12/x", "b12", "x", false);
}

static void test_bucket_names(void) {
    char name[300], url[320];
    GS("gs://abc", "abc", "", false);
    GS("gs://a_b-c.d9", "a_b-c.d9", "", false);
    GS("gs://123", "123", "", false);
    snprintf(url, sizeof(url), "gs://%s", s_repeat(name, 'a', 63));
    GS(url, name, "", false);
    snprintf(url, sizeof(url), "gs://%s/x", s_repeat(name, 'a', 64));
    BAD(url, SL_EBADURL, "invalid bucket name", "a': longer than 63 characters");
    /* With dots: up to 222 characters, each dot-separated part at most 63. */
    for (int i = 0; i < 222; i++)
        name[i] = i % 60 == 59 ? '.' : 'b';
    name[222] = '\0';
    snprintf(url, sizeof(url), "gs://%s", name);
    GS(url, name, "", false);
    name[222] = 'b';
    name[223] = '\0';
    snprintf(url, sizeof(url), "gs://%s", name);
    BAD(url, SL_EBADURL, "longer than 222");
    s_repeat(name, 'c', 67);
    name[3] = '.';
    snprintf(url, sizeof(url), "gs://%s", name);
    GS(url, name, "", false);
    s_repeat(name, 'c', 68);
    name[3] = '.';
    snprintf(url, sizeof(url), "gs://%s", name);
    BAD(url, SL_EBADURL, "dot-separated part is longer than 63");

    BAD("gs://ab", SL_EBADURL, "gs://ab: invalid bucket name 'ab'", "shorter than 3");
    BAD("gs://a/long/path", SL_EBADURL, "'a'", "shorter than 3");
    BAD("gs://MyBucket/x", SL_EBADURL, "'MyBucket'", "lowercase");
    BAD("s3://-abc", SL_EBADURL, "start and end with a letter or digit", "s3://BUCKET/PREFIX");
    BAD("gs://abc-", SL_EBADURL, "start and end with a letter or digit");
    BAD("gs://.abc", SL_EBADURL, "start and end");
    BAD("gs://abc_", SL_EBADURL, "start and end");
    BAD("gs://ab..cd", SL_EBADURL, "'..'");
    BAD("gs://user@bucket/x", SL_EBADURL, "'user@bucket'", "only lowercase letters");
    BAD("gs://bucket:443/x", SL_EBADURL, "only lowercase letters");
    BAD("gs://my bucket/x", SL_EBADURL, "only lowercase letters");
    BAD("gs://b\xc3\xbc-x", SL_EBADURL, "only lowercase letters");
    BAD("gs://bu\ncket", SL_EBADURL, "'bu\\ncket'");
}

static void test_missing_bucket(void) {
    BAD("gs://", SL_EBADURL, "gs://: missing bucket name (expected gs://BUCKET/PREFIX)");
    BAD("gs:///obj", SL_EBADURL, "gs:///obj: missing bucket name");
    BAD("s3://", SL_EBADURL, "s3://: missing bucket name (expected s3://BUCKET/PREFIX)");
    BAD("gs:bucket/x", SL_EBADURL, "gs:bucket/x", "gs://BUCKET/PREFIX");
    BAD("gs:/bucket/x", SL_EBADURL, "gs://BUCKET/PREFIX");
    BAD("s3:", SL_EBADURL, "s3://BUCKET/PREFIX");
}

static void test_unknown_schemes(void) {
    static const char *const texts[] = {"http://x", "https://host/a/b", "ftp://", "gcs://b", "S4://b/k", "x+y.z-w://q"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        BAD(texts[i], SL_EBADURL, texts[i], "unsupported URL scheme", "gs://BUCKET/PREFIX", "s3://BUCKET/PREFIX",
            "file:///PATH");
    BAD("gcs://b", SL_EBADURL, "'gcs://'");
}

static void test_file_urls(void) {
    FILEP("file:///tmp/x", "/tmp/x", false);
    FILEP("file:///", "/", true);
    FILEP("file:///tmp/dir/", "/tmp/dir", true);
    FILEP("file://localhost/tmp/x", "/tmp/x", false);
    FILEP("file://LocalHost/tmp/x", "/tmp/x", false);
    FILEP("FILE:///tmp/x", "/tmp/x", false);
    FILEP("file:/tmp/x", "/tmp/x", false);
    /* Percent-decoding, then the same normalisation as a plain path. */
    FILEP("file:///a%20b/%C3%A9%c3%a9", "/a b/\xc3\xa9\xc3\xa9", false);
    FILEP("file:///a%2Fb", "/a/b", false);
    FILEP("file:///a%2fb%2F", "/a/b", true);
    FILEP("file:///100%25/x", "/100%/x", false);
    FILEP("file:///a%23b%3Fc", "/a#b?c", false);
    FILEP("file:///a#frag?q=1", "/a#frag?q=1", false);
    FILEP("file:///a/%2E%2E/b", "/b", false);
    FILEP("file:///a/../b//c/./", "/b/c", true);
    FILEP("file:///a%0Ab", "/a\nb", false);
    FILEP("file:///sp ace", "/sp ace", false);
}

static void test_file_url_errors(void) {
    BAD("file://host/x", SL_EBADURL, "file://host/x", "host 'host'", "file:///PATH");
    BAD("file://127.0.0.1/x", SL_EBADURL, "host '127.0.0.1'");
    BAD("file://", SL_EBADURL, "file://: missing path");
    BAD("file://localhost", SL_EBADURL, "missing path");
    BAD("file:tmp/x", SL_EBADURL, "file:tmp/x", "file:///");
    BAD("file:///a%zzb", SL_EBADURL, "file:///a%zzb", "bad percent-escape '%zz'");
    BAD("file:///a%2", SL_EBADURL, "bad percent-escape '%2'");
    BAD("file:///a%", SL_EBADURL, "bad percent-escape '%'");
    BAD("file:///a%g1", SL_EBADURL, "'%g1'");
    BAD("file:///a%00b", SL_EBADURL, "%00", "NUL");
}

static void test_plain_absolute(void) {
    FILEP("/", "/", true);
    FILEP("//", "/", true);
    FILEP("/tmp", "/tmp", false);
    FILEP("/a/b/", "/a/b", true);
    FILEP("/a//b///c", "/a/b/c", false);
    FILEP("///a", "/a", false);
    FILEP("/a/./b/../c", "/a/c", false);
    FILEP("/../..", "/", true);
    FILEP("/a/../../b", "/b", false);
    FILEP("/a/b/..", "/a", true);
    FILEP("/a/.", "/a", true);
    FILEP("/a/...", "/a/...", false);
    FILEP("/a/..b/.c", "/a/..b/.c", false);
    /* No decoding and no special characters in plain paths. */
    FILEP("/tmp/a b/\xc3\xbc/#1/%41/%zz/?/x\ny", "/tmp/a b/\xc3\xbc/#1/%41/%zz/?/x\ny", false);
    FILEP("/x:y/gs://b", "/x:y/gs:/b", false);
}

static void test_plain_relative(void) {
    char want[PATH_MAX + 64], parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", s_tmp);
    *strrchr(parent, '/') = '\0';
    if (!parent[0])
        strcpy(parent, "/");

    snprintf(want, sizeof(want), "%s/x", s_tmp);
    FILEP("x", want, false);
    FILEP("./x", want, false);
    FILEP("x/", want, true);
    FILEP(".//x//", want, true);
    FILEP("y/../x", want, false);
    FILEP(".", s_tmp, true);
    FILEP("./", s_tmp, true);
    FILEP("..", parent, true);
    FILEP("../../../../../../../../../../../../../../../../../../../../../../../../../../../../../..", "/", true);
    snprintf(want, sizeof(want), "%s/b", parent);
    FILEP("a/../../b", want, false);
    /* Things that look like schemes but are not "scheme://" are file names. */
    snprintf(want, sizeof(want), "%s/c:foo", s_tmp);
    FILEP("c:foo", want, false);
    snprintf(want, sizeof(want), "%s/http:/x", s_tmp);
    FILEP("http:/x", want, false);
    snprintf(want, sizeof(want), "%s/-rf", s_tmp);
    FILEP("-rf", want, false);
    snprintf(want, sizeof(want), "%s/ lead and trail ", s_tmp);
    FILEP(" lead and trail ", want, false);
}

/* ".." means what the kernel makes of it: after a symbolic link it leaves the link's target, not the directory
 * holding the link (`cat pl/lnk/../marker` reads pl/real/marker when lnk -> real/sub). Plain paths, file:// URLs,
 * relative paths and destinations not created yet alike. */
static void test_dotdot_after_symlink(void) {
    char want[PATH_MAX + 64], text[PATH_MAX + 64];
    ASSERT_INT_EQ(mkdir("pl", 0755), 0);
    ASSERT_INT_EQ(mkdir("pl/real", 0755), 0);
    ASSERT_INT_EQ(mkdir("pl/real/sub", 0755), 0);
    ASSERT_INT_EQ(symlink("real/sub", "pl/lnk"), 0);
    ASSERT_INT_EQ(symlink("nowhere", "pl/dangling"), 0);
    FILE *f = fopen("pl/file", "w");
    ASSERT_TRUE(f != NULL);
    fclose(f);

    snprintf(want, sizeof(want), "%s/pl/real/marker", s_tmp);
    FILEP("pl/lnk/../marker", want, false);
    FILEP("./pl//lnk/./../marker", want, false);
    snprintf(text, sizeof(text), "%s/pl/lnk/../marker", s_tmp);
    FILEP(text, want, false);
    snprintf(text, sizeof(text), "file://%s/pl/lnk/../marker", s_tmp);
    FILEP(text, want, false);
    snprintf(text, sizeof(text), "file://%s/pl/lnk/%%2E%%2E/marker", s_tmp);
    FILEP(text, want, false);
    snprintf(want, sizeof(want), "%s/pl/real", s_tmp);
    FILEP("pl/lnk/..", want, true);
    FILEP("pl/lnk/../", want, true);
    FILEP("pl/lnk/sub2/../..", want, true);
    /* A destination not created yet: the missing part cannot hold a link, ".." inside it drops a component. */
    snprintf(want, sizeof(want), "%s/pl/real/sub/out", s_tmp);
    FILEP("pl/lnk/new/../out", want, false);
    snprintf(want, sizeof(want), "%s/pl/real/out/deeper", s_tmp);
    FILEP("pl/lnk/../out/deeper", want, false);
    /* Without a link before the "..", and for a link no ".." follows, the spelling is the user's. */
    snprintf(want, sizeof(want), "%s/pl/lnk/x", s_tmp);
    FILEP("pl/real/../lnk/x", want, false);
    FILEP("pl/lnk/x", want, false);
    /* What the kernel refuses is refused, naming the reason. */
    BAD("pl/dangling/../x", SL_ENOENT, "pl/dangling/../x", "symbolic link to nothing");
    BAD("pl/file/../x", SL_ENOTDIR, "'..' follows", "pl/file, which is not a directory");

    ASSERT_INT_EQ(unlink("pl/file"), 0);
    ASSERT_INT_EQ(unlink("pl/dangling"), 0);
    ASSERT_INT_EQ(unlink("pl/lnk"), 0);
    ASSERT_INT_EQ(rmdir("pl/real/sub"), 0);
    ASSERT_INT_EQ(rmdir("pl/real"), 0);
    ASSERT_INT_EQ(rmdir("pl"), 0);
}

static void test_long_paths(void) {
    static char text[3 * PATH_MAX], want[3 * PATH_MAX];
    char comp[300];
    /* 255-byte components survive untouched. */
    snprintf(text, sizeof(text), "/%s/%s/", s_repeat(comp, 'a', 255), comp);
    snprintf(want, sizeof(want), "/%s/%s", comp, comp);
    FILEP(text, want, true);

    /* PATH_MAX counts the NUL: PATH_MAX - 1 bytes is the longest. */
    text[0] = '/';
    s_repeat(text + 1, 'p', PATH_MAX - 2);
    FILEP(text, text, false);
    s_repeat(text + 1, 'p', PATH_MAX - 1);
    BAD(text, SL_ENAMETOOLONG, "longer than 4095 bytes", "...");
    ASSERT_TRUE(strlen(sl_last_error()) < 600);
    /* Trailing slashes and "." do not count; the limit is on the normalised path. */
    s_repeat(text + 1, 'p', PATH_MAX - 2);
    strcat(text, "////./.");
    s_repeat(want + 1, 'p', PATH_MAX - 2);
    want[0] = '/';
    FILEP(text, want, true);
    text[0] = '\0';
    for (int i = 0; i < 2000; i++)
        strcat(text, "/a/..");
    strcat(text, "/b");
    FILEP(text, "/b", false);
    snprintf(text, sizeof(text), "file:///%s", s_repeat(want, 'q', PATH_MAX));
    BAD(text, SL_ENAMETOOLONG, "longer than");
    /* A relative path that only becomes too long once made absolute. */
    s_repeat(text, 'r', PATH_MAX - 1);
    BAD(text, SL_ENAMETOOLONG, "longer than");
    strcat(text, "/");
    BAD(text, SL_ENAMETOOLONG, "longer than");
}

static void test_empty_and_null(void) {
    BAD("", SL_EBADURL, "empty", "gs://BUCKET/PREFIX");
    sl_url u;
    memset(&u, 0x5a, sizeof(u));
    ASSERT_INT_EQ(sl_url_parse(NULL, &u), SL_EINVAL);
    ASSERT_TRUE(u.path == NULL && u.bucket == NULL);
    ASSERT_INT_EQ(sl_url_parse("/x", NULL), SL_EINVAL);
    sl_url_free(NULL);
    ASSERT_INT_EQ(sl_url_parse("gs://bucket/x", &u), 0);
    sl_url_free(&u);
    sl_url_free(&u);
    ASSERT_TRUE(u.path == NULL && u.bucket == NULL && u.scheme == 0 && !u.trailing_slash);
}

static void test_messages_are_safe(void) {
    /* Control characters are escaped and very long text is cut, so the message stays one short line. */
    BAD("ftp://a\nb", SL_EBADURL, "ftp://a\\nb");
    static char text[8000];
    memcpy(text, "http://", 7);
    s_repeat(text + 7, 'z', 7000);
    BAD(text, SL_EBADURL, "http://zzz", "...", "file:///PATH");
    ASSERT_TRUE(strlen(sl_last_error()) < 600);
    /* The bucket is quoted on its own, cut the same way. */
    memcpy(text, "gs://", 5);
    s_repeat(text + 5, '\x01', 3000);
    BAD(text, SL_EBADURL, "invalid bucket name '\\x01\\x01", "...", "gs://BUCKET/PREFIX");
    ASSERT_TRUE(strlen(sl_last_error()) < 1023);
    /* A cut never splits a UTF-8 character. */
    memcpy(text, "http://", 7);
    for (int i = 7; i < 7000; i += 2)
        memcpy(text + i, "\xc3\xa9", 2);
    text[7001] = '\0';
    BAD(text, SL_EBADURL, "...");
    ASSERT_TRUE(strstr(sl_last_error(), "\\x") == NULL);
}

static void test_deleted_cwd(void) {
    char gone[PATH_MAX + 16];
    snprintf(gone, sizeof(gone), "%s/gone", s_tmp);
    ASSERT_INT_EQ(mkdir(gone, 0700), 0);
    ASSERT_INT_EQ(chdir(gone), 0);
    ASSERT_INT_EQ(rmdir(gone), 0);
    BAD("relative", SL_ENOENT, "relative", "current directory");
    FILEP("/still/fine", "/still/fine", false);
    ASSERT_INT_EQ(chdir(s_tmp), 0);
}

int main(void) {
    char tmpl[] = "/tmp/sl_test_url.XXXXXX";
    ASSERT_TRUE(getcwd(s_home, sizeof(s_home)) != NULL);
    ASSERT_TRUE(mkdtemp(tmpl) != NULL);
    ASSERT_INT_EQ(chdir(tmpl), 0);
    ASSERT_TRUE(getcwd(s_tmp, sizeof(s_tmp)) != NULL);

    RUN_TEST(test_gs);
    RUN_TEST(test_s3);
    RUN_TEST(test_bucket_names);
    RUN_TEST(test_missing_bucket);
    RUN_TEST(test_unknown_schemes);
    RUN_TEST(test_file_urls);
    RUN_TEST(test_file_url_errors);
    RUN_TEST(test_plain_absolute);
    RUN_TEST(test_plain_relative);
    RUN_TEST(test_dotdot_after_symlink);
    RUN_TEST(test_long_paths);
    RUN_TEST(test_empty_and_null);
    RUN_TEST(test_messages_are_safe);
    RUN_TEST(test_deleted_cwd);

    ASSERT_INT_EQ(chdir(s_home), 0);
    ASSERT_INT_EQ(rmdir(s_tmp), 0);
    TEST_DONE();
}
