/* store.c's calls that look at a store before a job uses it: the up-front bucket check (sl__store_check_access)
 * against servers that do not serve the bucket resource. gs:// runs against the real test server
 * (tests/gcs/gcs_server.py) on 127.0.0.1. */
#include "gcs_fixture.h"
#include "store_vtable.h"
#include "test.h"

#include "sluice/sluice.h"

static gcs_server s_srv;

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

static long s_requests(const char *method) {
    json_t *j = gcs_server_stats(&s_srv);
    ASSERT_TRUE(j != NULL);
    json_t *v = json_object_get(json_object_get(j, "requests"), method);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    json_decref(j);
    return n;
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
    s_post("/_seed", "{\"bucket\": \"probe-b\", \"objects\": []}");
    s_post("/_stats/reset", "");
    st = s_open("gs://probe-b/x");
    ASSERT_INT_EQ(sl__store_check_access(st), 0);
    sl_store_close(st);
    ASSERT_INT_EQ(s_requests("storage.buckets.get"), 1);
    ASSERT_INT_EQ(s_requests("storage.objects.list"), 0);
    s_post("/_config", "{\"bucket_modes\": {\"nores-404\": [], \"nores-501\": [], \"gone-501\": []}}");
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unsetenv("STORAGE_EMULATOR_HOST");
    unsetenv("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    const char *args[] = {"--bucket", "unit-bucket", NULL};
    if (gcs_server_start(&s_srv, args) != 0)
        TEST_FAIL_("cannot start the GCS test server");
    RUN_TEST(test_check_access_without_bucket_resource);
    gcs_server_stop(&s_srv);
    TEST_DONE();
}
