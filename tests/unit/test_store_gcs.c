/* The gs:// writer against the real test server (tests/gcs/gcs_server.py) on 127.0.0.1: where its upload buffer
 * comes from. With a job's budget (sl__store_set_budget) the buffer beyond its first quantum is taken only from what
 * the budget can spare, so a tight budget turns one large chunk into several small ones instead of growing past it;
 * everything is given back when the object is committed and when the client goes. Without a budget a writer holds up
 * to one chunk. The server's request counts say how each object went up. */
#include "gcs_fixture.h"
#include "pool.h"
#include "store_vtable.h"
#include "test.h"

#include "sluice/sluice.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static gcs_server s_srv;

/* The number of upload requests (the start of a resumable upload, each chunk, or one multipart) since the last call. */
static long s_inserts(void) {
    char url[128], body[8192];
    snprintf(url, sizeof(url), "%s/_stats", s_srv.base_url);
    ASSERT_INT_EQ(gcs_http("GET", url, NULL, NULL, body, sizeof(body)), 200);
    json_t *doc = json_loads(body, 0, NULL);
    ASSERT_TRUE(doc != NULL);
    long n = (long)json_integer_value(json_object_get(json_object_get(doc, "requests"), "storage.objects.insert"));
    json_decref(doc);
    snprintf(url, sizeof(url), "%s/_stats/reset", s_srv.base_url);
    ASSERT_INT_EQ(gcs_http("POST", url, NULL, "", NULL, 0), 200);
    return n;
}

static unsigned char *s_pattern(size_t len) {
    unsigned char *p = malloc(len);
    ASSERT_TRUE(p != NULL);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

/* Writes data in 64 KiB pieces, as a job's copy does, with a fingerprint; then reads it back and compares. */
static void s_put_and_check(sl_client *c, const char *key, const unsigned char *data, size_t len) {
    sl_writer *w = NULL;
    sl_write_options wo = {.source_fingerprint = "size=1 mtime=2 job=copy"};
    ASSERT_INT_EQ(sl_write_open(c, key, &wo, &w), 0);
    for (size_t at = 0; at < len; at += 64 * KIB) {
        size_t n = len - at < 64 * KIB ? len - at : 64 * KIB;
        if (sl_write(w, data + at, n) != 0)
            TEST_FAIL_("sl_write %s at %zu: %s", key, at, sl_last_error());
    }
    if (sl_write_commit(w) != 0)
        TEST_FAIL_("sl_write_commit %s: %s", key, sl_last_error());
    sl_object obj;
    ASSERT_INT_EQ(sl_stat(c, key, &obj), 0);
    ASSERT_UINT_EQ(obj.size, len);
    ASSERT_STR_EQ(obj.source_fingerprint, "size=1 mtime=2 job=copy");
    sl_reader *r = NULL;
    ASSERT_INT_EQ(sl_read_open(c, key, 0, SL_LENGTH_TO_END, NULL, &r), 0);
    unsigned char *back = malloc(len + 1);
    size_t got = 0;
    int64_t n;
    while ((n = sl_read(r, back + got, len + 1 - got)) > 0)
        got += (size_t)n;
    ASSERT_INT_EQ(n, 0);
    sl_read_close(r);
    ASSERT_UINT_EQ(got, len);
    ASSERT_MEM_EQ(back, data, len);
    free(back);
}

static sl_store *s_open(uint64_t chunk) {
    char url[128];
    snprintf(url, sizeof(url), "gs://unit-bucket/t%llu", (unsigned long long)chunk);
    sl_store_options so = {.endpoint = s_srv.base_url, .anonymous = true, .upload_chunk_bytes = chunk};
    sl_store *st = NULL;
    ASSERT_INT_EQ(sl_store_open(url, &so, &st), 0);
    return st;
}

static void test_memory_hook(void) {
    sl_store *st = s_open(MIB);
    sl__store_memory m;
    sl__store_memory_get(st, &m);
    ASSERT_TRUE(m.client_bytes >= 128 * KIB);
    ASSERT_TRUE(m.writer_min_bytes >= 256 * KIB && m.writer_min_bytes < 300 * KIB);
    sl_store_close(st);
}

static void test_tight_budget_sends_small_chunks(void) {
    sl_store *st = s_open(MIB);
    sl__store_memory m;
    sl__store_memory_get(st, &m);
    /* Room for the writer's first quantum and nothing more: a 3 MiB object goes up in twelve 256 KiB chunks. */
    sl__pool *budget = sl__pool_new_bytes(4096, m.writer_min_bytes + 4096);
    sl__pool_promise(budget, m.writer_min_bytes);
    sl__store_set_budget(st, budget);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(3 * MIB);
    s_inserts();
    s_put_and_check(c, "three", data, 3 * MIB);
    ASSERT_INT_EQ(s_inserts(), 1 + 12); /* the session's start, then the chunks */
    ASSERT_TRUE(sl__pool_peak(budget) <= sl__pool_limit(budget));
    ASSERT_UINT_EQ(sl__pool_used(budget), m.writer_min_bytes); /* the quantum stays with the client */
    /* A small object still goes in one request. */
    s_put_and_check(c, "small", data, 100 * KIB);
    ASSERT_INT_EQ(s_inserts(), 1);
    sl_client_destroy(c);
    ASSERT_UINT_EQ(sl__pool_used(budget), 0);
    free(data);
    sl_store_close(st);
    sl__pool_destroy(budget);
}

static void test_roomy_budget_grows_to_a_chunk(void) {
    sl_store *st = s_open(MIB);
    sl__store_memory m;
    sl__store_memory_get(st, &m);
    sl__pool *budget = sl__pool_new_bytes(4096, 16 * MIB);
    sl__pool_promise(budget, m.writer_min_bytes);
    sl__store_set_budget(st, budget);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(3 * MIB);
    s_inserts();
    s_put_and_check(c, "three", data, 3 * MIB);
    ASSERT_INT_EQ(s_inserts(), 1 + 3); /* chunks of 1 MiB */
    ASSERT_TRUE(sl__pool_peak(budget) < 2 * MIB);
    ASSERT_UINT_EQ(sl__pool_used(budget), m.writer_min_bytes); /* the rest went back at the commit */
    s_put_and_check(c, "most-of-a-chunk", data, 900 * KIB);
    ASSERT_INT_EQ(s_inserts(), 1); /* one multipart request */
    /* Another writer holding most of the budget: this one gets what is left and sends smaller chunks. */
    ASSERT_TRUE(sl__pool_try_reserve(budget, 16 * MIB - sl__pool_used(budget) - 600 * KIB));
    s_put_and_check(c, "squeezed", data, 3 * MIB);
    ASSERT_TRUE(s_inserts() > 1 + 3);
    ASSERT_TRUE(sl__pool_peak(budget) <= 16 * MIB);
    sl_client_destroy(c);
    free(data);
    sl_store_close(st);
    sl__pool_destroy(budget);
}

static void test_no_budget_one_chunk_per_writer(void) {
    sl_store *st = s_open(MIB);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(3 * MIB + 5);
    s_inserts();
    s_put_and_check(c, "three", data, 3 * MIB + 5);
    ASSERT_INT_EQ(s_inserts(), 1 + 4);
    /* An empty object needs no data room, only the request. */
    s_put_and_check(c, "empty", data, 0);
    ASSERT_INT_EQ(s_inserts(), 1);
    sl_client_destroy(c);
    free(data);
    sl_store_close(st);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unsetenv("STORAGE_EMULATOR_HOST");
    unsetenv("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    const char *args[] = {"--bucket", "unit-bucket", NULL};
    if (gcs_server_start(&s_srv, args) != 0)
        TEST_FAIL_("cannot start the GCS test server");
    RUN_TEST(test_memory_hook);
    RUN_TEST(test_tight_budget_sends_small_chunks);
    RUN_TEST(test_roomy_budget_grows_to_a_chunk);
    RUN_TEST(test_no_budget_one_chunk_per_writer);
    gcs_server_stop(&s_srv);
    TEST_DONE();
}
