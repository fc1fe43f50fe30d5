/* The s3:// store against the real S3 test server (tests/s3/s3_server.py, every signature checked by botocore) on
 * 127.0.0.1: one client makes every request of many objects over one connection; a read pinned to the generation
 * a listing saw (sl__read_open_gen) refuses a replaced object instead of mixing it in; a fingerprint recorded at a
 * write comes back from stat and from a listing asked for fingerprints, and no longer once the object is replaced;
 * where the writer's buffer comes from (a job's budget: a minimum part promised, more only when the budget can spare
 * it, everything back when the client goes); an aborted multipart upload leaves no upload open. */
#include "gcs_fixture.h"
#include "http.h"
#include "pool.h"
#include "store_vtable.h"
#include "test.h"

#include "sluice/sluice.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static gcs_server s_srv; /* the fixture's process bookkeeping, for the S3 server */

static int s_server_start(void) {
    gcs_server *s = &s_srv;
    memset(s, 0, sizeof(*s));
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof(s->dir), "%.200s/sl-s3-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->port_file, sizeof(s->port_file), "%.250s/port", s->dir);
    char parent[24];
    snprintf(parent, sizeof(parent), "%ld", (long)getpid());
    const char *argv[] = {"python3",
                          SL_SOURCE_DIR "/tests/s3/s3_server.py",
                          "--port",
                          "0",
                          "--port-file",
                          s->port_file,
                          "--parent-pid",
                          parent,
                          "--bucket",
                          "unit-s3",
                          "--access-key",
                          "AKIDUNIT:unit-secret",
                          "--min-part-size",
                          "1",
                          NULL};
    if (atexit(gcs_stop_all_) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    int err = posix_spawnp(&s->pid, "python3", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err)
        return -1;
    gcs_track_(0, s->pid);
    for (int waited_ms = 0; waited_ms < 30000; waited_ms += 20) {
        FILE *f = fopen(s->port_file, "r");
        if (f) {
            int port = 0;
            int got = fscanf(f, "%d", &port);
            fclose(f);
            if (got == 1 && port > 0) {
                s->port = port;
                snprintf(s->base_url, sizeof(s->base_url), "http://127.0.0.1:%d", port);
                return 0;
            }
        }
        gcs_sleep_ms_(20);
    }
    return -1;
}

/* A field of /_sluice/stats: `field` at the top, or requests[`op`] when op is given. */
static long long s_stat(const char *field, const char *op) {
    char url[128], body[65536];
    snprintf(url, sizeof(url), "%s/_sluice/stats", s_srv.base_url);
    ASSERT_INT_EQ(gcs_http("GET", url, NULL, NULL, body, sizeof(body)), 200);
    json_t *doc = json_loads(body, 0, NULL);
    ASSERT_TRUE(doc != NULL);
    json_t *v = op ? json_object_get(json_object_get(doc, "requests"), op) : json_object_get(doc, field);
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
    json_decref(doc);
    return n;
}

static void s_stats_reset(void) {
    char url[128];
    snprintf(url, sizeof(url), "%s/_sluice/stats/reset", s_srv.base_url);
    ASSERT_INT_EQ(gcs_http("POST", url, NULL, "", NULL, 0), 200);
}

static unsigned char *s_pattern(size_t len, uint32_t seed) {
    unsigned char *p = malloc(len);
    ASSERT_TRUE(p != NULL);
    uint32_t x = seed;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

static sl_store *s_open(const char *prefix, uint64_t chunk) {
    char url[128];
    snprintf(url, sizeof(url), "s3://unit-s3/%s", prefix);
    sl_store_options so = {.endpoint = s_srv.base_url, .upload_chunk_bytes = chunk, .retry_initial_ms = 5};
    sl_store *st = NULL;
    if (sl_store_open(url, &so, &st) != 0)
        TEST_FAIL_("sl_store_open %s: %s", url, sl_last_error());
    return st;
}

static void s_put(sl_client *c, const char *key, const unsigned char *data, size_t len, const char *fp) {
    sl_writer *w = NULL;
    sl_write_options wo = {.source_fingerprint = fp, .size_hint = len};
    ASSERT_INT_EQ(sl_write_open(c, key, &wo, &w), 0);
    for (size_t at = 0; at < len; at += 64 * KIB) {
        size_t n = len - at < 64 * KIB ? len - at : 64 * KIB;
        if (sl_write(w, data + at, n) != 0)
            TEST_FAIL_("sl_write %s at %zu: %s", key, at, sl_last_error());
    }
    if (sl_write_commit(w) != 0)
        TEST_FAIL_("sl_write_commit %s: %s", key, sl_last_error());
}

static void s_check(sl_client *c, const char *key, const unsigned char *data, size_t len) {
    sl_reader *r = NULL;
    ASSERT_INT_EQ(sl_read_open(c, key, 0, SL_LENGTH_TO_END, NULL, &r), 0);
    unsigned char *back = malloc(len + 1);
    size_t got = 0;
    int64_t n;
    while ((n = sl_read(r, back + got, len + 1 - got)) > 0)
        got += (size_t)n;
    if (n != 0)
        TEST_FAIL_("sl_read %s: %s", key, sl_last_error());
    sl_read_close(r);
    ASSERT_UINT_EQ(got, len);
    ASSERT_TRUE(memcmp(back, data, len) == 0);
    free(back);
}

static void test_one_connection_for_many_objects(void) {
    sl_store *st = s_open("conn", 0);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(10 * KIB, 7);
    s_stats_reset();
    for (int i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%02d", i);
        s_put(c, key, data, 10 * KIB, NULL);
        s_check(c, key, data, 10 * KIB);
        sl_object o;
        ASSERT_INT_EQ(sl_stat(c, key, &o), 0);
        ASSERT_UINT_EQ(o.size, 10 * KIB);
        ASSERT_TRUE(o.has_crc32c);
    }
    ASSERT_INT_EQ((int)s_stat("api_connections", NULL), 1);
    ASSERT_INT_EQ((int)s_stat(NULL, "s3.PutObject"), 20);
    sl_client_destroy(c);
    free(data);
    sl_store_close(st);
}

static void test_pinned_read_refuses_a_replaced_object(void) {
    sl_store *st = s_open("pin", 0);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *a = s_pattern(100 * KIB, 1), *b = s_pattern(100 * KIB, 2);
    s_put(c, "obj", a, 100 * KIB, NULL);
    sl_lister *l = NULL;
    sl_list_options lo = {.recursive = true};
    ASSERT_INT_EQ(sl_list_open(c, &lo, &l), 0);
    sl_object listed;
    ASSERT_INT_EQ(sl_list_next(l, &listed), 1);
    int64_t gen = listed.generation;
    sl_list_close(l);
    ASSERT_TRUE(gen > 0);
    sl_object o;
    ASSERT_INT_EQ(sl_stat(c, "obj", &o), 0);
    ASSERT_TRUE(o.generation == gen); /* a listing and a stat agree */
    /* ...on the time too: the listing's ISO time against HeadObject's HTTP date (whole seconds). */
    ASSERT_TRUE(o.mtime_ns > 0 && o.mtime_ns <= listed.mtime_ns && listed.mtime_ns - o.mtime_ns < 1000000000);
    sl_reader *r = NULL;
    ASSERT_INT_EQ(sl__read_open_gen(c, "obj", 1000, 5000, gen, &r), 0);
    unsigned char buf[8192];
    size_t got = 0;
    int64_t n;
    while ((n = sl_read(r, buf + got, sizeof(buf) - got)) > 0)
        got += (size_t)n;
    ASSERT_INT_EQ((int)n, 0);
    ASSERT_UINT_EQ(got, 5000);
    ASSERT_TRUE(memcmp(buf, a + 1000, 5000) == 0);
    sl_read_close(r);
    s_put(c, "obj", b, 100 * KIB, NULL);
    r = NULL;
    ASSERT_INT_EQ(sl__read_open_gen(c, "obj", 0, 5000, gen, &r), SL_ENOENT);
    ASSERT_TRUE(strstr(sl_last_error(), "replaced") != NULL);
    sl_client_destroy(c);
    free(a);
    free(b);
    sl_store_close(st);
}

static void test_fingerprints(void) {
    sl_store *st = s_open("fp", 256 * KIB);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(700 * KIB, 3);
    s_put(c, "single", data, 100 * KIB, "size=1 mtime=2 job=copy");
    s_put(c, "multi", data, 700 * KIB, "size=3 mtime=4 job=copy");
    sl_object o;
    ASSERT_INT_EQ(sl_stat(c, "single", &o), 0);
    ASSERT_STR_EQ(o.source_fingerprint, "size=1 mtime=2 job=copy");
    ASSERT_INT_EQ(sl_stat(c, "multi", &o), 0);
    ASSERT_STR_EQ(o.source_fingerprint, "size=3 mtime=4 job=copy");
    s_stats_reset();
    sl_lister *l = NULL;
    sl_list_options lo = {.recursive = true, .fingerprints = true};
    ASSERT_INT_EQ(sl_list_open(c, &lo, &l), 0);
    ASSERT_INT_EQ(sl_list_next(l, &o), 1);
    ASSERT_STR_EQ(o.key, "multi");
    ASSERT_STR_EQ(o.source_fingerprint, "size=3 mtime=4 job=copy");
    ASSERT_INT_EQ(sl_list_next(l, &o), 1);
    ASSERT_STR_EQ(o.key, "single");
    ASSERT_STR_EQ(o.source_fingerprint, "size=1 mtime=2 job=copy");
    ASSERT_INT_EQ(sl_list_next(l, &o), 0);
    sl_list_close(l);
    ASSERT_INT_EQ((int)s_stat(NULL, "s3.HeadObject"), 2); /* the cost: one HEAD per object listed */
    /* Replaced by an object without one: none is reported. */
    s_put(c, "single", data, 50 * KIB, NULL);
    ASSERT_INT_EQ(sl_stat(c, "single", &o), 0);
    ASSERT_TRUE(o.source_fingerprint == NULL);
    sl_client_destroy(c);
    free(data);
    sl_store_close(st);
}

static void test_budget(void) {
    sl_store *st = s_open("budget", 8 * MIB);
    sl__store_memory m;
    sl__store_memory_get(st, &m);
    ASSERT_TRUE(m.writer_min_bytes >= 5 * MIB && m.writer_min_bytes < 5 * MIB + 64 * KIB);
    /* Room for the writer's minimum part and 1 MiB more: a 12 MiB object goes up in parts of what fits. */
    sl__pool *budget = sl__pool_new_bytes(4096, m.writer_min_bytes + MIB);
    sl__pool_promise(budget, m.writer_min_bytes);
    sl__store_set_budget(st, budget);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(12 * MIB, 4);
    s_stats_reset();
    s_put(c, "twelve", data, 12 * MIB, NULL);
    long long parts = s_stat(NULL, "s3.UploadPart");
    ASSERT_TRUE(parts >= 2 && parts <= 3); /* 6 MiB parts, the last shorter */
    ASSERT_TRUE(sl__pool_peak(budget) <= sl__pool_limit(budget));
    ASSERT_UINT_EQ(sl__pool_used(budget), m.writer_min_bytes); /* the minimum part stays with the client */
    s_check(c, "twelve", data, 12 * MIB);
    sl_client_destroy(c);
    ASSERT_UINT_EQ(sl__pool_used(budget), 0);
    free(data);
    sl_store_close(st);
    sl__pool_destroy(budget);
}

static void test_abort_leaves_no_upload(void) {
    sl_store *st = s_open("abort", 256 * KIB);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(MIB, 5);
    sl_writer *w = NULL;
    sl_write_options wo = {0};
    ASSERT_INT_EQ(sl_write_open(c, "gone", &wo, &w), 0);
    ASSERT_INT_EQ(sl_write(w, data, MIB), 0);
    ASSERT_TRUE(s_stat("open_multipart_uploads", NULL) == 1);
    sl_write_abort(w);
    ASSERT_TRUE(s_stat("open_multipart_uploads", NULL) == 0);
    sl_object o;
    ASSERT_INT_EQ(sl_stat(c, "gone", &o), SL_ENOENT);
    sl_client_destroy(c);
    free(data);
    sl_store_close(st);
}

static void test_copy_records_a_fingerprint(void) {
    sl_store *src = s_open("csrc", 0), *dst = s_open("cdst", 0);
    sl_client *c = NULL, *d = NULL;
    ASSERT_INT_EQ(sl_client_new(src, &c), 0);
    ASSERT_INT_EQ(sl_client_new(dst, &d), 0);
    unsigned char *data = s_pattern(3 * KIB, 11);
    s_put(c, "x", data, 3 * KIB, "size=9 mtime=9 job=other");
    sl_object o;
    ASSERT_INT_EQ(sl_stat(c, "x", &o), 0);
    s_stats_reset();
    sl_write_options co = {.source_fingerprint = "size=3072 gen=5 job=copy"};
    ASSERT_INT_EQ(sl__store_copy(d, src, &o, "y", &co), 0);
    ASSERT_INT_EQ((int)s_stat(NULL, "s3.CopyObject"), 1);
    sl_object y;
    ASSERT_INT_EQ(sl_stat(d, "y", &y), 0);
    ASSERT_UINT_EQ(y.size, 3 * KIB);
    ASSERT_STR_EQ(y.source_fingerprint, "size=3072 gen=5 job=copy"); /* its own, never the source's */
    ASSERT_INT_EQ(sl__store_copy(d, src, &o, "z", NULL), 0);
    ASSERT_INT_EQ(sl_stat(d, "z", &y), 0);
    ASSERT_TRUE(y.source_fingerprint == NULL);
    s_check(d, "z", data, 3 * KIB);
    sl_client_destroy(c);
    sl_client_destroy(d);
    free(data);
    sl_store_close(src);
    sl_store_close(dst);
}

typedef struct s_outcomes {
    int rc[64];
    int calls[64];
    char message[64][256];
} s_outcomes;

static void s_on_deleted(void *ctx, size_t index, int rc, const char *message) {
    s_outcomes *o = ctx;
    ASSERT_TRUE(index < 64);
    o->rc[index] = rc;
    o->calls[index]++;
    snprintf(o->message[index], sizeof(o->message[index]), "%s", message ? message : "");
}

static void s_config(const char *json) {
    char url[128];
    snprintf(url, sizeof(url), "%s/_sluice/config", s_srv.base_url);
    const char *h[] = {"Content-Type: application/json", NULL};
    ASSERT_INT_EQ(gcs_http("POST", url, h, json, NULL, 0), 200);
}

static void test_batch_delete(void) {
    sl_store *st = s_open("del", 0);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(KIB, 9);
    char names[40][32];
    const char *keys[40];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), i == 39 ? "never-made" : "d/%02d & <x>", i);
        keys[i] = names[i];
        if (i < 39)
            s_put(c, keys[i], data, KIB, NULL);
    }
    /* Every key in one request, a missing one counted as deleted. */
    s_stats_reset();
    s_outcomes *o = calloc(1, sizeof(*o));
    ASSERT_INT_EQ(sl__store_delete_batch(c, keys, 20, s_on_deleted, o), 0);
    ASSERT_INT_EQ((int)s_stat(NULL, "s3.DeleteObjects"), 1);
    ASSERT_INT_EQ((int)s_stat(NULL, "s3.DeleteObject"), 0);
    for (int i = 0; i < 20; i++) {
        ASSERT_INT_EQ(o->calls[i], 1);
        ASSERT_INT_EQ(o->rc[i], 0);
        sl_object obj;
        ASSERT_INT_EQ(sl_stat(c, keys[i], &obj), SL_ENOENT);
    }
    /* A server that fails every second key: those are reported with its code, and are still there. */
    s_config("{\"bucket_modes\": {\"unit-s3\": [\"delete-errors\"]}}");
    memset(o, 0, sizeof(*o));
    ASSERT_INT_EQ(sl__store_delete_batch(c, keys + 20, 20, s_on_deleted, o), 0);
    s_config("{\"bucket_modes\": {\"unit-s3\": []}}");
    int failed = 0;
    for (int i = 0; i < 20; i++) {
        ASSERT_INT_EQ(o->calls[i], 1);
        sl_object obj;
        int src = sl_stat(c, keys[20 + i], &obj);
        if (o->rc[i] < 0) {
            failed++;
            ASSERT_TRUE(strstr(o->message[i], "InternalError") != NULL);
            ASSERT_INT_EQ(src, i == 19 ? SL_ENOENT : 0); /* reported as failed: still there (but the one never made) */
        } else {
            ASSERT_INT_EQ(src, SL_ENOENT);
        }
    }
    ASSERT_TRUE(failed >= 9 && failed <= 10);
    free(o);
    sl_client_destroy(c);
    free(data);
    sl_store_close(st);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char home[] = "/tmp/sl-s3-home-XXXXXX";
    ASSERT_TRUE(mkdtemp(home) != NULL);
    setenv("HOME", home, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDUNIT", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "unit-secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    if (s_server_start() != 0)
        TEST_FAIL_("cannot start the S3 test server");
    RUN_TEST(test_one_connection_for_many_objects);
    RUN_TEST(test_pinned_read_refuses_a_replaced_object);
    RUN_TEST(test_fingerprints);
    RUN_TEST(test_budget);
    RUN_TEST(test_abort_leaves_no_upload);
    RUN_TEST(test_batch_delete);
    RUN_TEST(test_copy_records_a_fingerprint);
    gcs_server_stop(&s_srv);
    rmdir(home);
    TEST_DONE();
}
