/* Resume: the source fingerprint's format and parser, the skip decision, and the destination cursor over a real
 * local directory (suffix keys out of order, fingerprints recorded by real writes, leftover temp files removed only
 * when no writer holds them) and over the GCS test server listing in UTF-16 order or repeating keys. */
#include "test.h"

#include "gcs_fixture.h"
#include "resume.h"
#include "sluice/sluice.h"
#include "store_vtable.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static char s_root[256];
static bool s_xattrs; /* the scratch file system keeps user xattrs (where sluice records fingerprints) */

/* Expects the recorded fingerprint `want` on o, or none where the file system keeps no xattrs. */
#define ASSERT_FP(o, want)                                                                                             \
    do {                                                                                                               \
        if (s_xattrs)                                                                                                  \
            ASSERT_STR_EQ((o)->source_fingerprint, want);                                                              \
        else                                                                                                           \
            ASSERT_TRUE((o)->source_fingerprint == NULL);                                                              \
    } while (0)

static sl_object obj_local(uint64_t size, int64_t mtime_ns) {
    sl_object o = {.key = "k", .key_len = 1, .size = size, .mtime_ns = mtime_ns};
    return o;
}

static void test_format_and_parse(void) {
    char buf[SL__FP_CAP];
    sl_object local = obj_local(5120, 1733186154123456789);
    ASSERT_UINT_EQ(sl__fp_format(&local, "copy", buf, sizeof(buf)),
                   strlen("size=5120 mtime=1733186154123456789 job=copy"));
    ASSERT_STR_EQ(buf, "size=5120 mtime=1733186154123456789 job=copy");

    sl_object gcs = {
        .size = 0, .generation = 1733186154123456, .mtime_ns = 99, .crc32c = 0x0a1b2c3d, .has_crc32c = true};
    sl__fp_format(&gcs, "op:sha256", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "size=0 gen=1733186154123456 crc32c=0a1b2c3d job=op:sha256");
    sl__fingerprint fp;
    ASSERT_TRUE(sl__fp_parse(buf, &fp));
    ASSERT_UINT_EQ(fp.size, 0);
    ASSERT_TRUE(fp.has_gen);
    ASSERT_INT_EQ(fp.version, 1733186154123456);
    ASSERT_TRUE(fp.has_crc32c);
    ASSERT_UINT_EQ(fp.crc32c, 0x0a1b2c3d);
    ASSERT_STR_EQ(fp.job, "op:sha256");

    /* Nothing trustworthy to record: no generation and no mtime; a tag that does not fit. */
    sl_object none = obj_local(1, 0);
    ASSERT_UINT_EQ(sl__fp_format(&none, "copy", buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "");
    ASSERT_UINT_EQ(sl__fp_format(&local, "copy", buf, 20), 0);
    ASSERT_UINT_EQ(sl__fp_format(&local, "", buf, sizeof(buf)), 0);

    /* Anything else is not a fingerprint. */
    const char *bad[] = {"",
                         "size=1",
                         "size=1 mtime=5",
                         "mtime=5 job=copy",
                         "size=1 job=copy",
                         "size=1 mtime=0 job=copy",
                         "size=-1 mtime=5 job=copy",
                         "size=1 mtime=5 job=",
                         "size=1 mtime=5 job=copy ",
                         "size=1  mtime=5 job=copy",
                         "size=1 mtime=5 gen=6 job=copy",
                         "size=1 size=2 mtime=5 job=copy",
                         "size=1 mtime=5 crc32c=123 job=copy",
                         "size=1 mtime=5 crc32c=0A1B2C3D job=copy",
                         "size=1 mtime=5 job=copy extra=1",
                         "size=18446744073709551616 mtime=5 job=copy",
                         "size=1 mtime=9223372036854775808 job=copy",
                         "size=1 mtime=5 job=copy\n",
                         "=1 mtime=5 job=copy"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sl__fp_parse(bad[i], &fp))
            TEST_FAIL_("parsed what is not a fingerprint: \"%s\"", bad[i]);
    }
    ASSERT_FALSE(sl__fp_parse(NULL, &fp));
    ASSERT_TRUE(sl__fp_parse("size=18446744073709551615 mtime=9223372036854775807 job=x", &fp));
    ASSERT_UINT_EQ(fp.size, UINT64_MAX);
    /* Fields in another order are the same fingerprint. */
    ASSERT_TRUE(sl__fp_parse("job=copy crc32c=ffffffff gen=7 size=3", &fp));
    ASSERT_UINT_EQ(fp.crc32c, 0xffffffffu);
}

/* The compact record of a local output: the text form back exactly, small enough for ext4's inode, and nothing but
 * a well-formed record decoded. */
static void test_record(void) {
    static const struct {
        const char *fp;
        uint64_t out_size;
        int64_t out_mtime_ns;
        size_t max_len;
    } cases[] = {
        {"size=3078 mtime=1796656114731217139 crc32c=0a1b2c3d job=copy", 3078, 1796656114731217139, 44},
        {"size=3078 gen=1796656114731217 crc32c=0a1b2c3d job=copy", 3078, 1796656114731217139, 44},
        {"size=0 mtime=1 job=op:md5", 45, 1, 56},
        {"size=18446744073709551615 gen=9223372036854775807 crc32c=ffffffff enc=gzip job=worker-shell:0123abcd",
         18446744073709551615ull, INT64_MAX, 0},
        {"size=5 mtime=1733186154123456789 enc=x-custom-enc job=exec:89abcdef", 5, -1000000007, 56},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char rec[256];
        size_t n =
            sl__fp_record_encode(rec, sizeof(rec), cases[i].out_size, cases[i].out_mtime_ns, 0xdeadbeef, cases[i].fp);
        ASSERT_TRUE(n > 0);
        ASSERT_UINT_EQ(rec[0], SL__FP_RECORD_TAG);
        if (cases[i].max_len)
            ASSERT_TRUE(n <= cases[i].max_len);
        char text[512], want[512];
        snprintf(want, sizeof(want), "%" PRIu64 " %" PRId64 " %s out_crc32c=deadbeef", cases[i].out_size,
                 cases[i].out_mtime_ns, cases[i].fp);
        ASSERT_TRUE(sl__fp_record_decode(rec, n, text, sizeof(text)));
        ASSERT_STR_EQ(text, want);
        /* Cut short before its job (cut within the job, it is a record of a shorter job), or with a byte of the
         * job made unprintable, it is no record. */
        size_t job_at = n - strlen(strrchr(cases[i].fp, '=') + 1);
        for (size_t cut = 0; cut <= job_at; cut++)
            ASSERT_FALSE(sl__fp_record_decode(rec, cut, text, sizeof(text)));
        rec[n - 1] = ' ';
        ASSERT_FALSE(sl__fp_record_decode(rec, n, text, sizeof(text)));
        /* Too small a buffer: no record (the text form is written instead). */
        ASSERT_UINT_EQ(sl__fp_record_encode(rec, n - 1, cases[i].out_size, cases[i].out_mtime_ns, 1, cases[i].fp), 0);
    }
    /* Only what sl__fp_format makes is encoded: fields out of order or upper-case hex would come back different. */
    unsigned char rec[256];
    ASSERT_UINT_EQ(sl__fp_record_encode(rec, sizeof(rec), 1, 1, 1, "mtime=5 size=1 job=copy"), 0);
    ASSERT_UINT_EQ(sl__fp_record_encode(rec, sizeof(rec), 1, 1, 1, "size=1 mtime=5 crc32c=0A1B2C3D job=copy"), 0);
    ASSERT_UINT_EQ(sl__fp_record_encode(rec, sizeof(rec), 1, 1, 1, "not a fingerprint"), 0);
    char text[256];
    /* Unknown flags, a version of 0, an empty job, text: none is a record. */
    static const unsigned char bad_flags[] = {1, 5, 2, 0, 0, 0, 0, 8, 5, 7, 'c', 'o', 'p', 'y'};
    static const unsigned char zero_version[] = {1, 5, 2, 0, 0, 0, 0, 0, 5, 0, 'c', 'o', 'p', 'y'};
    static const unsigned char no_job[] = {1, 5, 2, 0, 0, 0, 0, 0, 5, 7};
    static const unsigned char good[] = {1, 5, 2, 0, 0, 0, 0, 0, 5, 7, 'c', 'o', 'p', 'y'};
    ASSERT_FALSE(sl__fp_record_decode(bad_flags, sizeof(bad_flags), text, sizeof(text)));
    ASSERT_FALSE(sl__fp_record_decode(zero_version, sizeof(zero_version), text, sizeof(text)));
    ASSERT_FALSE(sl__fp_record_decode(no_job, sizeof(no_job), text, sizeof(text)));
    ASSERT_FALSE(sl__fp_record_decode((const unsigned char *)"5 1 size=5", 10, text, sizeof(text)));
    ASSERT_TRUE(sl__fp_record_decode(good, sizeof(good), text, sizeof(text)));
    ASSERT_STR_EQ(text, "5 1 size=5 mtime=7 job=copy out_crc32c=00000000");
    ASSERT_FALSE(sl__fp_record_decode(good, sizeof(good), text, 20)); /* the text does not fit */
}

static void test_matches(void) {
    char rec[SL__FP_CAP];
    sl_object src = obj_local(10, 1000);
    sl__fp_format(&src, "copy", rec, sizeof(rec));
    ASSERT_TRUE(sl__fp_matches(rec, &src, "copy"));
    ASSERT_FALSE(sl__fp_matches(rec, &src, "op:md5")); /* another job made it */
    ASSERT_FALSE(sl__fp_matches(NULL, &src, "copy"));
    ASSERT_FALSE(sl__fp_matches("garbage", &src, "copy"));
    sl_object changed = obj_local(10, 1001); /* touched */
    ASSERT_FALSE(sl__fp_matches(rec, &changed, "copy"));
    changed = obj_local(11, 1000); /* grown */
    ASSERT_FALSE(sl__fp_matches(rec, &changed, "copy"));
    /* A generation is not an mtime, even with the same number. */
    sl_object gen = {.size = 10, .generation = 1000};
    ASSERT_FALSE(sl__fp_matches(rec, &gen, "copy"));
    /* CRC32C: compared when both sides have one. */
    sl_object g1 = {.size = 10, .generation = 5, .crc32c = 1, .has_crc32c = true};
    sl__fp_format(&g1, "copy", rec, sizeof(rec));
    ASSERT_TRUE(sl__fp_matches(rec, &g1, "copy"));
    g1.crc32c = 2;
    ASSERT_FALSE(sl__fp_matches(rec, &g1, "copy"));
    g1.has_crc32c = false;
    ASSERT_TRUE(sl__fp_matches(rec, &g1, "copy"));
    /* A source without a version can never be matched. */
    sl_object none = obj_local(10, 0);
    ASSERT_FALSE(sl__fp_matches("size=10 mtime=5 job=copy", &none, "copy"));
}

static void test_job_tags(void) {
    char a[SL__JOB_TAG_CAP], b[SL__JOB_TAG_CAP];
    sl__job_tag_copy(a);
    ASSERT_STR_EQ(a, "copy");
    sl__job_tag_op("sha256", a);
    ASSERT_STR_EQ(a, "op:sha256");
    const char *gz[] = {"gzip", "-c", NULL}, *gz2[] = {"gzip", "-c", "-9", NULL}, *joined[] = {"gzip-c", NULL};
    sl__job_tag_exec(gz, a);
    ASSERT_TRUE(strncmp(a, "exec:", 5) == 0 && strlen(a) == 13);
    sl__job_tag_exec(gz2, b);
    ASSERT_TRUE(strcmp(a, b) != 0);
    sl__job_tag_exec(joined, b); /* word boundaries count */
    ASSERT_TRUE(strcmp(a, b) != 0);
    sl__job_tag_exec(gz, b);
    ASSERT_STR_EQ(a, b);
    sl__job_tag_shell("gzip -c", b);
    ASSERT_TRUE(strncmp(b, "shell:", 6) == 0 && strcmp(a + 5, b + 6) != 0);
}

static void test_decide(void) {
    char rec[SL__FP_CAP];
    sl_object src = obj_local(10, 1000);
    sl__fp_format(&src, "copy", rec, sizeof(rec));
    sl_object dst = obj_local(10, 5);
    ASSERT_INT_EQ(sl__resume_decide(&src, NULL, "copy", true), SL__RESUME_DO);
    dst.source_fingerprint = rec;
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", true), SL__RESUME_SKIP);
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", false), SL__RESUME_SKIP);
    /* A copy whose size is not the source's is not complete, whatever it records. */
    dst.size = 9;
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", true), SL__RESUME_DO);
    /* ... but a map output has its own size. */
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", false), SL__RESUME_SKIP);
    /* No record: cp/sync compare checksums when the sizes agree; map redoes. */
    dst.source_fingerprint = NULL;
    dst.size = 10;
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", true), SL__RESUME_VERIFY);
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "op:md5", false), SL__RESUME_DO);
    dst.size = 11;
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", true), SL__RESUME_DO);
    /* A record of another job or of an older source. */
    dst.size = 10;
    dst.source_fingerprint = rec;
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "op:md5", false), SL__RESUME_DO);
    src.mtime_ns = 2000;
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", true), SL__RESUME_VERIFY);
    sl_object prefix = {.is_prefix = true};
    ASSERT_INT_EQ(sl__resume_decide(&src, &prefix, "copy", true), SL__RESUME_DO);
    /* A copy whose CRC32C is not the source's is not complete either, when both are known: it is compared. */
    src.mtime_ns = 1000;
    src.has_crc32c = dst.has_crc32c = true;
    src.crc32c = 0x1234;
    dst.crc32c = 0x1234;
    sl__fp_format(&src, "copy", rec, sizeof(rec));
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", true), SL__RESUME_SKIP);
    dst.crc32c = 0x4321;
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", true), SL__RESUME_VERIFY);
    dst.has_crc32c = false;
    ASSERT_INT_EQ(sl__resume_decide(&src, &dst, "copy", true), SL__RESUME_SKIP);
}

/* A source stored gzip-compressed: its fingerprint says so, only such a record matches it, and its copy (the
 * decompressed object, of another size) is complete by its record alone. */
static void test_encoded(void) {
    char rec[SL__FP_CAP];
    sl_object gz = {.size = 40, .generation = 7, .crc32c = 0xabcdef01, .has_crc32c = true, .content_encoding = "gzip"};
    sl__fp_format(&gz, "copy", rec, sizeof(rec));
    ASSERT_STR_EQ(rec, "size=40 gen=7 crc32c=abcdef01 enc=gzip job=copy");
    sl__fingerprint fp;
    ASSERT_TRUE(sl__fp_parse(rec, &fp));
    ASSERT_STR_EQ(fp.enc, "gzip");
    ASSERT_TRUE(sl__fp_matches(rec, &gz, "copy"));
    sl_object plain = gz;
    plain.content_encoding = NULL;
    ASSERT_FALSE(sl__fp_matches(rec, &plain, "copy"));
    ASSERT_FALSE(sl__fp_matches("size=40 gen=7 crc32c=abcdef01 job=copy", &gz, "copy"));
    const char *bad[] = {"size=1 gen=5 enc= job=copy", "size=1 gen=5 enc=GZIP job=copy",
                         "size=1 gen=5 enc=gzip enc=gzip job=copy", "size=1 gen=5 enc=0123456789abcdef job=copy"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sl__fp_parse(bad[i], &fp))
            TEST_FAIL_("parsed what is not a fingerprint: \"%s\"", bad[i]);

    sl_object out = {.size = 1000, .mtime_ns = 5, .source_fingerprint = rec};
    ASSERT_INT_EQ(sl__resume_decide(&gz, &out, "copy", true), SL__RESUME_SKIP);
    out.source_fingerprint = NULL; /* not recorded: a decompressed copy cannot be compared with the stored bytes */
    out.size = 40;
    ASSERT_INT_EQ(sl__resume_decide(&gz, &out, "copy", true), SL__RESUME_DO);
    out.content_encoding = "gzip"; /* a gs:// to gs:// copy keeps the stored bytes: compared as they are */
    ASSERT_INT_EQ(sl__resume_decide(&gz, &out, "copy", true), SL__RESUME_VERIFY);
    ASSERT_INT_EQ(sl__resume_decide(&plain, &out, "copy", true), SL__RESUME_DO);
}

/* UTF-16 code unit order against byte order. */
static void test_utf16_order(void) {
    static const struct {
        const char *a, *b;
        int bytes, utf16;
    } cases[] = {
        {"a", "b", -1, -1},
        {"a", "ab", -1, -1},
        {"", "", 0, 0},
        {"x\xee\x80\x80", "x\xf0\x9f\x98\x80", -1, 1},    /* U+E000 against U+1F600 */
        {"\xef\xbf\xbd", "\xf0\x9f\x98\x80", -1, 1},      /* U+FFFD */
        {"\xef\xbd\x9e/", "\xf0\x90\x80\x80", -1, 1},     /* U+FF5E against U+10000 */
        {"\xed\x9f\xbf", "\xf0\x9f\x98\x80", -1, -1},     /* U+D7FF: below the surrogates in both */
        {"\xe4\xb8\x80", "\xee\x80\x80", -1, -1},         /* U+4E00 against U+E000 */
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x81", -1, -1}, /* two astral characters */
        {"\xef\xbf\xbd", "\xef\xbf\xbe", -1, -1},         /* same lead byte */
        {"a\xff", "a\xee\x80\x80", 1, 1},                 /* not UTF-8: byte order */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *a = cases[i].a, *b = cases[i].b;
        int u = sl__key_cmp_utf16(a, strlen(a), b, strlen(b)), r = sl__key_cmp_utf16(b, strlen(b), a, strlen(a));
        if ((u > 0) - (u < 0) != cases[i].utf16 || (r > 0) - (r < 0) != -cases[i].utf16)
            TEST_FAIL_("case %zu: utf16 order %d, reversed %d, want %d", i, u, r, cases[i].utf16);
        int m = memcmp(a, b, strlen(a) < strlen(b) ? strlen(a) : strlen(b));
        int bytes = m ? m : (int)strlen(a) - (int)strlen(b);
        if ((bytes > 0) - (bytes < 0) != cases[i].bytes)
            TEST_FAIL_("case %zu: byte order %d, want %d", i, bytes, cases[i].bytes);
    }
}

static int seek(sl__dst_cursor *cur, const char *key, const sl_object **out);

static void gcs_post(const gcs_server *srv, const char *path, const char *json) {
    char url[256], out[1024];
    snprintf(url, sizeof(url), "%s%s", srv->base_url, path);
    const char *h[] = {"Content-Type: application/json", NULL};
    long st = gcs_http("POST", url, h, json, out, sizeof(out));
    if (st != 200)
        TEST_FAIL_("POST %s: %ld %s", path, st, out);
}

/* The destination cursor over a real GCS listing that is in UTF-16 order, or that repeats keys; and sl_list_next of
 * a listing that is not tolerated. */
static void test_cursor_misordered(void) {
    gcs_server srv;
    const char *args[] = {"--bucket", "u16", "--bucket", "rep", NULL};
    if (gcs_server_start(&srv, args) != 0)
        TEST_FAIL_("cannot start the GCS test server");
    gcs_post(&srv, "/_seed",
             "{\"bucket\": \"u16\", \"objects\": [{\"name\": \"d/a\"}, {\"name\": \"d/x\\ue000\"}, "
             "{\"name\": \"d/x\\uff5e\"}, {\"name\": \"d/x\\ud83d\\ude00\"}, {\"name\": \"d/z\"}]}");
    gcs_post(&srv, "/_seed",
             "{\"bucket\": \"rep\", \"objects\": [{\"name\": \"d/a\"}, {\"name\": \"d/b\"}, "
             "{\"name\": \"d/c\"}, {\"name\": \"d/d\"}]}");
    gcs_post(&srv, "/_config",
             "{\"list_modes\": {\"u16\": [\"utf16-order\", \"page-size-2\"], \"rep\": [\"repeat-last\", "
             "\"page-size-2\"]}}");
    sl_store_options so = {.endpoint = srv.base_url, .anonymous = true, .retries = SL_NO_RETRIES};
    sl_store *st;
    sl_client *c;
    sl__dst_cursor cur;
    const sl_object *o;

    ASSERT_INT_EQ(sl_store_open("gs://u16/d", &so, &st), 0);
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    ASSERT_INT_EQ(sl__dst_cursor_open(&cur, c, false), 0);
    /* Looked up in byte order; listed as a, x+U+1F600, x+U+E000, x+U+FF5E, z. */
    ASSERT_INT_EQ(seek(&cur, "a", &o), 1);
    ASSERT_INT_EQ(seek(&cur, "b", &o), 0);             /* absent in either order */
    ASSERT_INT_EQ(seek(&cur, "x\xee\x80\x80", &o), 2); /* the orders disagree: looked up on its own */
    ASSERT_INT_EQ(seek(&cur, "x\xef\xbd\x9e", &o), 2);
    ASSERT_INT_EQ(seek(&cur, "x\xef\xbf\xbd", &o), 2);
    ASSERT_INT_EQ(seek(&cur, "x\xf0\x9f\x98\x80", &o), 1);
    ASSERT_INT_EQ(seek(&cur, "y", &o), 0);
    ASSERT_INT_EQ(seek(&cur, "z", &o), 1);
    ASSERT_INT_EQ(seek(&cur, "zz", &o), 0);
    sl__dst_cursor_close(&cur);
    /* The same listing, not tolerated (a source): it stops where the order breaks, naming the store and why. */
    sl_lister *l;
    sl_object obj;
    sl_list_options lo = {.recursive = true};
    ASSERT_INT_EQ(sl_list_open(c, &lo, &l), 0);
    ASSERT_INT_EQ(sl_list_next(l, &obj), 1);
    ASSERT_INT_EQ(sl_list_next(l, &obj), 1);
    ASSERT_INT_EQ(sl_list_next(l, &obj), SL_ECORRUPT);
    ASSERT_TRUE(strstr(sl_last_error(), "gs://u16/d: the listing is not in byte order: 'x") == sl_last_error());
    ASSERT_TRUE(strstr(sl_last_error(), "(the server sorts by UTF-16 code units, not by bytes); stopped") != NULL);
    ASSERT_INT_EQ(sl_list_next(l, &obj), SL_ECORRUPT);
    sl_list_close(l);
    sl_client_destroy(c);
    sl_store_close(st);

    /* Listed a, b, b, c, c, d: once a key repeats, the cursor gives up on the listing and every key is "unknown". */
    ASSERT_INT_EQ(sl_store_open("gs://rep/d", &so, &st), 0);
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    ASSERT_INT_EQ(sl__dst_cursor_open(&cur, c, false), 0);
    ASSERT_INT_EQ(seek(&cur, "a", &o), 1);
    ASSERT_INT_EQ(seek(&cur, "b", &o), 1);
    ASSERT_INT_EQ(seek(&cur, "c", &o), 2);
    ASSERT_INT_EQ(seek(&cur, "d", &o), 2);
    ASSERT_INT_EQ(seek(&cur, "e", &o), 2);
    sl__dst_cursor_close(&cur);
    ASSERT_INT_EQ(sl_list_open(c, &lo, &l), 0);
    int rc;
    while ((rc = sl_list_next(l, &obj)) == 1) {
    }
    ASSERT_INT_EQ(rc, SL_ECORRUPT);
    ASSERT_TRUE(strstr(sl_last_error(), "'b' came after 'b' (the same key twice)") != NULL);
    sl_list_close(l);
    sl_client_destroy(c);
    sl_store_close(st);
    gcs_server_stop(&srv);
}

/* Writes key with contents through the store (so the fingerprint is recorded as sluice records it). */
static void put(sl_client *c, const char *key, const char *fp) {
    sl_writer *w = NULL;
    sl_write_options wo = {.source_fingerprint = fp};
    ASSERT_INT_EQ(sl_write_open(c, key, &wo, &w), 0);
    ASSERT_INT_EQ(sl_write(w, key, strlen(key)), 0);
    ASSERT_INT_EQ(sl_write_commit(w), 0);
}

static int seek(sl__dst_cursor *cur, const char *key, const sl_object **out) {
    return sl__dst_cursor_seek(cur, key, strlen(key), out);
}

static void test_cursor(void) {
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/dst", s_root);
    sl_store *st = NULL;
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_store_open(dir, NULL, &st), 0);
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);

    /* A destination that does not exist yet holds nothing. */
    sl__dst_cursor cur;
    const sl_object *o;
    ASSERT_INT_EQ(sl__dst_cursor_open(&cur, c, true), 0);
    ASSERT_INT_EQ(seek(&cur, "a.out", &o), 0);
    ASSERT_TRUE(o == NULL);
    ASSERT_INT_EQ(sl__dst_cursor_drain(&cur, NULL), 0);
    sl__dst_cursor_close(&cur);

    /* Outputs of the sources "a", "a.b", "b/c", "c" with --suffix .out; "a.b.out" sorts before "a.out". */
    put(c, "a.b.out", "size=1 mtime=1 job=copy");
    put(c, "a.out", "size=1 mtime=2 job=copy");
    put(c, "b/c.out", NULL);
    put(c, "c.out", "size=1 mtime=4 job=copy");
    put(c, "z.out", NULL);

    /* Leftovers: an unlocked temp file (its writer is gone) and one a live writer holds. */
    char stale[PATH_MAX], live[PATH_MAX];
    snprintf(stale, sizeof(stale), "%s/b/.sluice-tmp-AAAAAA", dir);
    snprintf(live, sizeof(live), "%s/b/.sluice-tmp-BBBBBB", dir);
    int fd = open(stale, O_CREAT | O_WRONLY, 0600);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    int lfd = open(live, O_CREAT | O_WRONLY, 0600);
    ASSERT_TRUE(lfd >= 0);
    ASSERT_INT_EQ(flock(lfd, LOCK_EX), 0);

    /* Without cleaning, both stay, and neither is ever an object. */
    ASSERT_INT_EQ(sl__dst_cursor_open(&cur, c, false), 0);
    ASSERT_INT_EQ(seek(&cur, "a.out", &o), 1); /* the source "a" comes first */
    ASSERT_STR_EQ(o->key, "a.out");
    ASSERT_FP(o, "size=1 mtime=2 job=copy");
    /* "a.b.out" is behind the cursor now: the cursor cannot tell. */
    ASSERT_INT_EQ(seek(&cur, "a.b.out", &o), 2);
    ASSERT_TRUE(o == NULL);
    ASSERT_INT_EQ(seek(&cur, "b/c.out", &o), 1);
    ASSERT_TRUE(o->source_fingerprint == NULL);
    ASSERT_INT_EQ(seek(&cur, "b/d.out", &o), 0); /* between two outputs */
    ASSERT_INT_EQ(seek(&cur, "c.out", &o), 1);
    ASSERT_FP(o, "size=1 mtime=4 job=copy");
    ASSERT_INT_EQ(seek(&cur, "d.out", &o), 0);
    ASSERT_INT_EQ(seek(&cur, "zz.out", &o), 0); /* past the end */
    ASSERT_INT_EQ(seek(&cur, "zzz.out", &o), 0);
    sl__dst_cursor_close(&cur);
    ASSERT_INT_EQ(access(stale, F_OK), 0);
    ASSERT_INT_EQ(access(live, F_OK), 0);

    /* In source order without a suffix the keys only go forward: every lookup is answered. Cleaning removes the
     * leftover and keeps the file a writer holds. */
    ASSERT_INT_EQ(sl__dst_cursor_open(&cur, c, true), 0);
    ASSERT_INT_EQ(seek(&cur, "a.b.out", &o), 1);
    ASSERT_FP(o, "size=1 mtime=1 job=copy");
    ASSERT_INT_EQ(seek(&cur, "a.out", &o), 1);
    ASSERT_INT_EQ(sl__dst_cursor_drain(&cur, NULL), 0);
    sl__dst_cursor_close(&cur);
    ASSERT_INT_EQ(access(stale, F_OK), -1);
    ASSERT_INT_EQ(access(live, F_OK), 0);
    close(lfd); /* the writer is gone now */
    ASSERT_INT_EQ(sl__dst_cursor_open(&cur, c, true), 0);
    ASSERT_INT_EQ(sl__dst_cursor_drain(&cur, NULL), 0);
    sl__dst_cursor_close(&cur);
    ASSERT_INT_EQ(access(live, F_OK), -1);

    /* A file changed in place after its commit keeps the xattr, but its record no longer counts. */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/c.out", dir);
    sl_object so;
    ASSERT_INT_EQ(sl_stat(c, "c.out", &so), 0);
    ASSERT_FP(&so, "size=1 mtime=4 job=copy");
    FILE *f = fopen(path, "ab");
    ASSERT_TRUE(f != NULL);
    fputs("more", f);
    fclose(f);
    ASSERT_INT_EQ(sl_stat(c, "c.out", &so), 0);
    ASSERT_TRUE(so.source_fingerprint == NULL);

    /* Fingerprints that are not printable ASCII are refused before anything is written. */
    sl_writer *w = NULL;
    sl_write_options wo = {.source_fingerprint = "bad\nvalue"};
    ASSERT_INT_EQ(sl_write_open(c, "x", &wo, &w), SL_EINVAL);

    sl_client_destroy(c);
    sl_store_close(st);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(s_root, sizeof(s_root), "%s/sluice-test-resume-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ASSERT_TRUE(mkdtemp(s_root) != NULL);
    char probe[PATH_MAX];
    snprintf(probe, sizeof(probe), "%s/probe", s_root);
    int pfd = open(probe, O_CREAT | O_WRONLY, 0600);
    ASSERT_TRUE(pfd >= 0);
    s_xattrs = fsetxattr(pfd, "user.probe", "1", 1, 0) == 0;
    close(pfd);
    unlink(probe);
    if (!s_xattrs)
        fprintf(stderr, "  (%s keeps no user xattrs: checking that no fingerprint is reported there)\n", s_root);
    RUN_TEST(test_format_and_parse);
    RUN_TEST(test_record);
    RUN_TEST(test_matches);
    RUN_TEST(test_job_tags);
    RUN_TEST(test_decide);
    RUN_TEST(test_cursor);
    RUN_TEST(test_encoded);
    RUN_TEST(test_utf16_order);
    RUN_TEST(test_cursor_misordered);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_root);
    ASSERT_INT_EQ(system(cmd), 0);
    TEST_DONE();
}
