/* store.c's calls that look at what a URL names, in both stores: sl_prefix_probe (a prefix that is missing, empty but
 * there, or holding objects; a name that is both an object and a prefix), and the up-front bucket check
 * (sl__store_check_access) against servers that do not serve the bucket resource. gs:// runs against the real test
 * server (tests/gcs/gcs_server.py) on 127.0.0.1; local against real directories. */
#include "gcs_fixture.h"
#include "store_vtable.h"
#include "test.h"

#include "sluice/sluice.h"

#include <sys/stat.h>

static gcs_server s_srv;
static char s_tmp[256];

static void s_post(const char *path, const char *json) {
    char url[256];
    snprintf(url, sizeof(url), "%s%s", s_srv.base_url, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    char out[1024];
    long st = gcs_http("POST", url, headers, json, out, sizeof(out));
    if (st != 200)
        TEST_FAIL_("POST %s %s: %ld %s", path, json, st, out);
}

static sl_store *s_open(const char *url) {
    sl_store_options so = {.endpoint = s_srv.base_url, .anonymous = true, .retries = SL_NO_RETRIES};
    sl_store *st = NULL;
    if (sl_store_open(url, &so, &st) != 0)
        TEST_FAIL_("sl_store_open %s: %s", url, sl_last_error());
    return st;
}

/* sl_prefix_probe of `sub` in the store of `url`. */
static int s_probe(const char *url, const char *sub) {
    sl_store *st = s_open(url);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    int rc = sl_prefix_probe(c, sub);
    sl_client_destroy(c);
    sl_store_close(st);
    return rc;
}

static long s_requests(const char *method) {
    json_t *j = gcs_server_stats(&s_srv);
    ASSERT_TRUE(j != NULL);
    json_t *v = json_object_get(json_object_get(j, "requests"), method);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    json_decref(j);
    return n;
}

static void test_probe_gcs(void) {
    s_post("/_seed", "{\"bucket\": \"probe-b\", \"objects\": [{\"name\": \"both\", \"data\": \"o\"},"
                     "{\"name\": \"both/x\", \"data\": \"x\"}, {\"name\": \"only\", \"data\": \"o\"},"
                     "{\"name\": \"dir/a/b\", \"data\": \"b\"}, {\"name\": \"folder/\", \"data\": \"\"},"
                     "{\"name\": \"full/\", \"data\": \"\"}, {\"name\": \"full/k\", \"data\": \"k\"}]}");
    s_post("/_seed", "{\"bucket\": \"probe-empty\", \"objects\": []}");
    s_post("/_stats/reset", "");
    ASSERT_INT_EQ(s_probe("gs://probe-b/dir", NULL), SL_PREFIX_OBJECTS);
    ASSERT_INT_EQ(s_probe("gs://probe-b/dir/", ""), SL_PREFIX_OBJECTS);
    ASSERT_INT_EQ(s_probe("gs://probe-b/dir/a", NULL), SL_PREFIX_OBJECTS);
    ASSERT_INT_EQ(s_probe("gs://probe-b/nope", NULL), SL_PREFIX_MISSING);
    ASSERT_INT_EQ(s_probe("gs://probe-b/nope/", NULL), SL_PREFIX_MISSING);
    /* "only" is an object: nothing is under "only/". "di" is no prefix of "dir/": a prefix is directory-like. */
    ASSERT_INT_EQ(s_probe("gs://probe-b/only", NULL), SL_PREFIX_MISSING);
    ASSERT_INT_EQ(s_probe("gs://probe-b/di", NULL), SL_PREFIX_MISSING);
    /* Seen from the parent: the object and the prefix of the same name. */
    ASSERT_INT_EQ(s_probe("gs://probe-b", "both/"), SL_PREFIX_OBJECTS);
    ASSERT_INT_EQ(s_probe("gs://probe-b", "only/"), SL_PREFIX_MISSING);
    ASSERT_INT_EQ(s_probe("gs://probe-b/dir", "a/"), SL_PREFIX_OBJECTS);
    /* A folder placeholder alone is an empty folder, not nothing; with an object beside it, objects. */
    ASSERT_INT_EQ(s_probe("gs://probe-b/folder", NULL), SL_PREFIX_EMPTY);
    ASSERT_INT_EQ(s_probe("gs://probe-b", "folder/"), SL_PREFIX_EMPTY);
    ASSERT_INT_EQ(s_probe("gs://probe-b/full", NULL), SL_PREFIX_OBJECTS);
    /* The root of an empty bucket is there; a bucket that is not is an error naming it. */
    ASSERT_INT_EQ(s_probe("gs://probe-empty", NULL), SL_PREFIX_EMPTY);
    ASSERT_INT_EQ(s_probe("gs://probe-missing/x", NULL), SL_ENOENT);
    ASSERT_TRUE(strstr(sl_last_error(), "gs://probe-missing: no such bucket") != NULL);
    /* One listing request each, nothing else. */
    ASSERT_INT_EQ(s_requests("storage.objects.list"), 15);
    ASSERT_INT_EQ(s_requests("storage.objects.get"), 0);
    /* A failed request is the answer, not "missing". */
    char id[256], hdr[300];
    ASSERT_INT_EQ(gcs_server_retry_test(&s_srv, "{\"instructions\": {\"storage.objects.list\": [\"return-403\"]}}", id,
                                        sizeof(id)),
                  200);
    json_t *doc = json_loads(id, 0, NULL);
    snprintf(hdr, sizeof(hdr), "x-retry-test-id: %s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    const char *headers[] = {hdr, NULL};
    sl_store_options so = {.endpoint = s_srv.base_url, .anonymous = true, .headers = headers};
    sl_store *st = NULL;
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_store_open("gs://probe-b/nope", &so, &st), 0);
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    ASSERT_INT_EQ(sl_prefix_probe(c, NULL), SL_EACCES);
    ASSERT_TRUE(strstr(sl_last_error(), "HTTP 403") != NULL);
    sl_client_destroy(c);
    sl_store_close(st);
}

static void test_probe_local(void) {
    char path[512], url[600];
    snprintf(path, sizeof(path), "%s/empty", s_tmp);
    ASSERT_INT_EQ(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/full", s_tmp);
    ASSERT_INT_EQ(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/full/f", s_tmp);
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    fputs("f\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/fifo", s_tmp);
    ASSERT_INT_EQ(mkfifo(path, 0644), 0);
    snprintf(url, sizeof(url), "%s/empty", s_tmp);
    ASSERT_INT_EQ(s_probe(url, NULL), SL_PREFIX_EMPTY);
    snprintf(url, sizeof(url), "%s/full", s_tmp);
    ASSERT_INT_EQ(s_probe(url, NULL), SL_PREFIX_OBJECTS);
    ASSERT_INT_EQ(s_probe(s_tmp, "full/"), SL_PREFIX_OBJECTS);
    ASSERT_INT_EQ(s_probe(s_tmp, "empty/"), SL_PREFIX_EMPTY);
    /* Missing, or a file (nothing can be under it). */
    snprintf(url, sizeof(url), "%s/missing", s_tmp);
    ASSERT_INT_EQ(s_probe(url, NULL), SL_PREFIX_MISSING);
    ASSERT_INT_EQ(s_probe(s_tmp, "missing/"), SL_PREFIX_MISSING);
    snprintf(url, sizeof(url), "%s/full", s_tmp);
    ASSERT_INT_EQ(s_probe(url, "f/"), SL_PREFIX_MISSING);
    /* Something that is neither a directory nor missing says what it is, as a listing of it does. */
    snprintf(url, sizeof(url), "%s/fifo", s_tmp);
    ASSERT_INT_EQ(s_probe(url, NULL), SL_ENOTDIR);
    ASSERT_TRUE(strstr(sl_last_error(), "a FIFO") != NULL);
    snprintf(url, sizeof(url), "%s/full/f", s_tmp);
    ASSERT_INT_EQ(s_probe(url, NULL), SL_ENOTDIR);
}

/* sl_store_open_source says "one object" for a name that is both: sl_prefix_probe of "<key>/" in its parent is what
 * tells the prefix apart. */
static void test_open_source_both(void) {
    sl_store_options so = {.endpoint = s_srv.base_url, .anonymous = true};
    sl_store *st = NULL;
    char *key = NULL;
    ASSERT_INT_EQ(sl_store_open_source("gs://probe-b/both", &so, &st, &key), 0);
    ASSERT_STR_EQ(key, "both");
    ASSERT_STR_EQ(sl_store_url(st), "gs://probe-b");
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    ASSERT_INT_EQ(sl_prefix_probe(c, "both/"), SL_PREFIX_OBJECTS);
    sl_client_destroy(c);
    sl_store_close(st);
    free(key);
}

/* A bucket that does not serve its own resource (404 or 501) but lists: usable. One missing both ways: missing. */
static void test_check_access_without_bucket_resource(void) {
    s_post("/_seed", "{\"bucket\": \"nores-404\", \"objects\": [{\"name\": \"a\", \"data\": \"a\"}]}");
    s_post("/_seed", "{\"bucket\": \"nores-501\", \"objects\": []}");
    s_post("/_config", "{\"bucket_modes\": {\"nores-404\": [\"no-bucket-resource\"], \"nores-501\": "
                       "[\"bucket-resource-501\"], \"gone-501\": [\"bucket-resource-501\"]}}");
    s_post("/_stats/reset", "");
    sl_store *st = s_open("gs://nores-404/x");
    ASSERT_INT_EQ(sl__store_check_access(st), 0);
    sl_store_close(st);
    st = s_open("gs://nores-501/x");
    ASSERT_INT_EQ(sl__store_check_access(st), 0);
    sl_store_close(st);
    ASSERT_INT_EQ(s_requests("storage.buckets.get"), 2);
    ASSERT_INT_EQ(s_requests("storage.objects.list"), 2);
    st = s_open("gs://gone-501/x");
    ASSERT_INT_EQ(sl__store_check_access(st), SL_ENOENT);
    ASSERT_STR_EQ(sl_last_error(), "gs://gone-501: no such bucket (check the name, or create it first)");
    sl_store_close(st);
    st = s_open("gs://gone-404/x");
    ASSERT_INT_EQ(sl__store_check_access(st), SL_ENOENT);
    sl_store_close(st);
    /* A bucket that serves its resource costs one request, as before. */
    s_post("/_stats/reset", "");
    st = s_open("gs://probe-b/x");
    ASSERT_INT_EQ(sl__store_check_access(st), 0);
    sl_store_close(st);
    ASSERT_INT_EQ(s_requests("storage.buckets.get"), 1);
    ASSERT_INT_EQ(s_requests("storage.objects.list"), 0);
    s_post("/_config", "{\"bucket_modes\": {\"nores-404\": [], \"nores-501\": [], \"gone-501\": []}}");
}

static void s_count_deleted(void *ctx, size_t index, int rc, const char *message) {
    int *rcs = ctx;
    rcs[index] = rc == 0 ? 1 : rc;
    ASSERT_TRUE(rc == 0 ? message == NULL : message != NULL && message[0]);
}

/* A store without a batch delete (local): sl__store_delete_batch deletes key by key and reports each. */
static void test_delete_batch_fallback(void) {
    char path[512];
    snprintf(path, sizeof(path), "%s/batch", s_tmp);
    ASSERT_INT_EQ(mkdir(path, 0755), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/batch/f%d", s_tmp, i);
        FILE *f = fopen(path, "w");
        ASSERT_TRUE(f != NULL);
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/batch", s_tmp);
    sl_store *st = NULL;
    ASSERT_INT_EQ(sl_store_open(path, NULL, &st), 0);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    const char *keys[] = {"f0", "missing", "f2"};
    int rcs[3] = {0, 0, 0};
    ASSERT_INT_EQ(sl__store_delete_batch(c, keys, 3, s_count_deleted, rcs), 0);
    ASSERT_INT_EQ(rcs[0], 1);
    ASSERT_INT_EQ(rcs[1], SL_ENOENT);
    ASSERT_INT_EQ(rcs[2], 1);
    sl_object o;
    ASSERT_INT_EQ(sl_stat(c, "f0", &o), SL_ENOENT);
    ASSERT_INT_EQ(sl_stat(c, "f1", &o), 0);
    ASSERT_INT_EQ(sl__store_delete_batch(c, keys, SL__DELETE_BATCH_MAX + 1, s_count_deleted, rcs), SL_EINVAL);
    sl_client_destroy(c);
    sl_store_close(st);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unsetenv("STORAGE_EMULATOR_HOST");
    unsetenv("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    snprintf(s_tmp, sizeof(s_tmp), "%s/sl-test-store-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(s_tmp))
        TEST_FAIL_("mkdtemp %s", s_tmp);
    const char *args[] = {"--bucket", "unit-bucket", NULL};
    if (gcs_server_start(&s_srv, args) != 0)
        TEST_FAIL_("cannot start the GCS test server");
    RUN_TEST(test_probe_gcs);
    RUN_TEST(test_probe_local);
    RUN_TEST(test_open_source_both);
    RUN_TEST(test_check_access_without_bucket_resource);
    RUN_TEST(test_delete_batch_fallback);
    gcs_server_stop(&s_srv);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_tmp);
    if (system(cmd) != 0)
        TEST_FAIL_("cannot remove %s", s_tmp);
    TEST_DONE();
}
