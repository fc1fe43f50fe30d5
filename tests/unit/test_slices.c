/* Big objects in slices (sl_job_options.slice_size_bytes) through the job engine, gs:// (the real test server,
 * tests/gcs/gcs_server.py on 127.0.0.1) to a local directory: several big objects at once, each in many slices read
 * by every worker, so that owners, tokens, the queue's hold and the per-object locks all meet (this test runs under
 * TSan in CI). Checked: the bytes, one media read per slice, a rerun reading nothing, and a cancelled job leaving no
 * output and no temporary file. And --composite-upload the other way, local to gs://, its composites read back.
 * tests/cli/slices.sh covers the misbehaving servers. */
#include "gcs_fixture.h"
#include "test.h"

#include "sluice/sluice.h"

#include <dirent.h>
#include <sys/stat.h>

#define KIB 1024u
#define N_BIG 4
#define BIG_SIZE (3 * 1024 * 1024 + 77) /* 13 slices of 256 KiB, the last one 77 bytes */

static gcs_server s_srv;
static char s_dir[256];

static unsigned char *s_pattern(size_t len, uint32_t seed) {
    unsigned char *p = malloc(len);
    ASSERT_TRUE(p != NULL);
    uint32_t x = seed | 1u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

static long s_gets(void) {
    long long n = 0;
    json_t *doc = gcs_server_stats(&s_srv);
    ASSERT_TRUE(doc != NULL);
    n = json_integer_value(json_object_get(json_object_get(doc, "requests"), "storage.objects.get"));
    json_decref(doc);
    char url[128];
    snprintf(url, sizeof(url), "%s/_stats/reset", s_srv.base_url);
    ASSERT_INT_EQ(gcs_http("POST", url, NULL, "", NULL, 0), 200);
    return (long)n;
}

static void s_upload(sl_client *c, const char *key, const unsigned char *data, size_t len) {
    sl_writer *w = NULL;
    ASSERT_INT_EQ(sl_write_open(c, key, NULL, &w), 0);
    for (size_t at = 0; at < len; at += 64 * KIB)
        ASSERT_INT_EQ(sl_write(w, data + at, len - at < 64 * KIB ? len - at : 64 * KIB), 0);
    if (sl_write_commit(w) != 0)
        TEST_FAIL_("upload %s: %s", key, sl_last_error());
}

static void s_check_file(const char *path, const unsigned char *data, size_t len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        TEST_FAIL_("%s: not there", path);
    unsigned char *back = malloc(len + 1);
    size_t got = fread(back, 1, len + 1, f);
    fclose(f);
    ASSERT_UINT_EQ(got, len);
    ASSERT_MEM_EQ(back, data, len);
    free(back);
}

static int s_run(const char *dst, uint64_t slice, unsigned jobs, sl_job_stats *st, bool cancel_at_once) {
    char src[128];
    snprintf(src, sizeof(src), "gs://unit-bucket/big");
    sl_store_options so = {.endpoint = s_srv.base_url, .anonymous = true};
    sl_job_options o = {.kind = SL_JOB_COPY,
                        .src_url = src,
                        .dst_url = dst,
                        .jobs = jobs,
                        .slice_size_bytes = slice,
                        .store_options = &so,
                        .grace_ms = SL_JOB_NO_GRACE};
    sl_job *job = NULL;
    int rc = sl_job_new(&o, &job);
    if (rc < 0)
        TEST_FAIL_("sl_job_new: %s", sl_last_error());
    if (cancel_at_once)
        sl_job_cancel(job);
    rc = sl_job_run(job);
    sl_job_stats_get(job, st);
    sl_job_destroy(job);
    return rc;
}

static unsigned s_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.' || strncmp(e->d_name, ".sluice-tmp-", 12) == 0;
    closedir(d);
    return n;
}

static void test_many_big_objects_in_slices(void) {
    sl_store_options so = {.endpoint = s_srv.base_url, .anonymous = true};
    sl_store *st = NULL;
    ASSERT_INT_EQ(sl_store_open("gs://unit-bucket/big", &so, &st), 0);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data[N_BIG + 1];
    char key[32];
    for (int i = 0; i < N_BIG; i++) {
        data[i] = s_pattern(BIG_SIZE, 1000u + (uint32_t)i);
        snprintf(key, sizeof(key), "b%d.bin", i);
        s_upload(c, key, data[i], BIG_SIZE);
    }
    data[N_BIG] = s_pattern(10 * KIB, 7);
    s_upload(c, "small.bin", data[N_BIG], 10 * KIB);
    sl_client_destroy(c);
    sl_store_close(st);
    s_gets();

    /* Unsliced first: what the same copy costs in GETs (the listing is a list request, not a get). */
    char dst[512];
    sl_job_stats stats;
    snprintf(dst, sizeof(dst), "%s/whole", s_dir);
    ASSERT_INT_EQ(s_run(dst, SL_JOB_NO_SLICES, 4, &stats, false), 0);
    long whole = s_gets();
    ASSERT_UINT_EQ(stats.objects_done, N_BIG + 1);

    snprintf(dst, sizeof(dst), "%s/sliced", s_dir);
    ASSERT_INT_EQ(s_run(dst, 256 * KIB, 4, &stats, false), 0);
    ASSERT_UINT_EQ(stats.objects_done, N_BIG + 1);
    ASSERT_UINT_EQ(stats.objects_failed, 0);
    ASSERT_UINT_EQ(stats.bytes_read, (uint64_t)N_BIG * BIG_SIZE + 10 * KIB);
    ASSERT_UINT_EQ(stats.bytes_written, (uint64_t)N_BIG * BIG_SIZE + 10 * KIB);
    ASSERT_INT_EQ(s_gets(), whole + N_BIG * 12); /* 13 reads instead of 1 for each big object */
    for (int i = 0; i < N_BIG; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/b%d.bin", dst, i);
        s_check_file(path, data[i], BIG_SIZE);
    }
    char path[600];
    snprintf(path, sizeof(path), "%s/small.bin", dst);
    s_check_file(path, data[N_BIG], 10 * KIB);
    ASSERT_UINT_EQ(s_entries(dst), N_BIG + 1);

    /* A rerun skips every output: nothing read. */
    ASSERT_INT_EQ(s_run(dst, 256 * KIB, 4, &stats, false), 0);
    ASSERT_UINT_EQ(stats.objects_skipped, N_BIG + 1);
    ASSERT_UINT_EQ(stats.bytes_read, 0);

    /* More workers than slices, and two workers for many slices: the same bytes. */
    for (unsigned jobs = 2; jobs <= 32; jobs += 30) {
        snprintf(dst, sizeof(dst), "%s/j%u", s_dir, jobs);
        ASSERT_INT_EQ(s_run(dst, jobs == 2 ? 256 * KIB : 2 * 1024 * KIB, jobs, &stats, false), 0);
        ASSERT_UINT_EQ(stats.objects_done, N_BIG + 1);
        for (int i = 0; i < N_BIG; i++) {
            snprintf(path, sizeof(path), "%s/b%d.bin", dst, i);
            s_check_file(path, data[i], BIG_SIZE);
        }
    }

    /* Cancelled before it starts: nothing committed, no temporary file, every object accounted for. */
    snprintf(dst, sizeof(dst), "%s/cancelled", s_dir);
    ASSERT_INT_EQ(s_run(dst, 256 * KIB, 4, &stats, true), SL_ECANCELED);
    ASSERT_UINT_EQ(s_entries(dst), 0);
    ASSERT_UINT_EQ(stats.objects_done, 0);
    for (int i = 0; i <= N_BIG; i++)
        free(data[i]);
}

/* --composite-upload: the same big objects from a local directory to gs:// as parts uploaded by every worker, composed
 * (13 parts of 256 KiB each: one compose), checked, the parts deleted; the composites read back. */
static void test_composite_upload(void) {
    char src[512], path[600];
    snprintf(src, sizeof(src), "%s/upsrc", s_dir);
    ASSERT_INT_EQ(mkdir(src, 0700), 0);
    unsigned char *data[N_BIG];
    for (int i = 0; i < N_BIG; i++) {
        data[i] = s_pattern(BIG_SIZE, 2000u + (uint32_t)i);
        snprintf(path, sizeof(path), "%s/u%d.bin", src, i);
        FILE *f = fopen(path, "wb");
        ASSERT_TRUE(f != NULL);
        ASSERT_UINT_EQ(fwrite(data[i], 1, BIG_SIZE, f), BIG_SIZE);
        fclose(f);
    }
    sl_store_options so = {.endpoint = s_srv.base_url, .anonymous = true};
    sl_job_options o = {.kind = SL_JOB_COPY,
                        .src_url = src,
                        .dst_url = "gs://unit-bucket/up",
                        .jobs = 4,
                        .slice_size_bytes = 256 * KIB,
                        .composite_upload = true,
                        .store_options = &so};
    sl_job *job = NULL;
    ASSERT_INT_EQ(sl_job_new(&o, &job), 0);
    ASSERT_INT_EQ(sl_job_run(job), 0);
    sl_job_stats stats;
    sl_job_stats_get(job, &stats);
    sl_job_destroy(job);
    ASSERT_UINT_EQ(stats.objects_done, N_BIG);
    json_t *doc = gcs_server_stats(&s_srv);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(doc, "requests"), "storage.objects.compose")),
                  N_BIG);
    json_decref(doc);
    sl_store *st = NULL;
    ASSERT_INT_EQ(sl_store_open("gs://unit-bucket/up", &so, &st), 0);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    sl_lister *l = NULL;
    sl_list_options lo = {.recursive = true};
    ASSERT_INT_EQ(sl_list_open(c, &lo, &l), 0);
    sl_object obj;
    int n = 0, rc;
    while ((rc = sl_list_next(l, &obj)) == 1) {
        ASSERT_TRUE(strncmp(obj.key, "u", 1) == 0 && strstr(obj.key, "sluice-part") == NULL);
        ASSERT_UINT_EQ(obj.size, BIG_SIZE);
        n++;
    }
    ASSERT_INT_EQ(rc, 0);
    sl_list_close(l);
    ASSERT_INT_EQ(n, N_BIG); /* no part left */
    for (int i = 0; i < N_BIG; i++) {
        char key[32];
        snprintf(key, sizeof(key), "u%d.bin", i);
        sl_reader *r = NULL;
        ASSERT_INT_EQ(sl_read_open(c, key, 0, SL_LENGTH_TO_END, NULL, &r), 0);
        unsigned char *back = malloc(BIG_SIZE + 1);
        size_t got = 0;
        int64_t k;
        while ((k = sl_read(r, back + got, BIG_SIZE + 1 - got)) > 0)
            got += (size_t)k;
        ASSERT_INT_EQ(k, 0);
        sl_read_close(r);
        ASSERT_UINT_EQ(got, BIG_SIZE);
        ASSERT_MEM_EQ(back, data[i], BIG_SIZE);
        free(back);
        free(data[i]);
    }
    sl_client_destroy(c);
    sl_store_close(st);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unsetenv("STORAGE_EMULATOR_HOST");
    unsetenv("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(s_dir, sizeof(s_dir), "%s/test_slices.XXXXXX", tmp);
    if (!mkdtemp(s_dir))
        TEST_FAIL_("mkdtemp %s failed", s_dir);
    const char *args[] = {"--bucket", "unit-bucket", NULL};
    if (gcs_server_start(&s_srv, args) != 0)
        TEST_FAIL_("cannot start the GCS test server");
    RUN_TEST(test_many_big_objects_in_slices);
    RUN_TEST(test_composite_upload);
    gcs_server_stop(&s_srv);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s_dir);
    TEST_DONE();
}
