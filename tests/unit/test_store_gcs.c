/* The gs:// writer against the real test server (tests/gcs/gcs_server.py) on 127.0.0.1: where its upload buffer
 * comes from. With a job's budget (sl__store_set_budget) the buffer beyond its first quantum is taken only from what
 * the budget can spare, so a tight budget turns one large chunk into several small ones instead of growing past it;
 * everything is given back when the object is committed and when the client goes. Without a budget a writer holds up
 * to one chunk. The server's request counts say how each object went up. And the precondition a writer is given
 * (sl_write_options.if_generation_match): on the first attempt of a multipart upload and on a resumable upload's
 * start; a 412 is a changed object only then, and an answer lost after the first attempt landed late makes no second
 * generation. */
#include "gcs_fixture.h"
#include "http.h"
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

/* Writes len bytes of data to key with the given options; returns what the write or the commit returned. */
static int s_put(sl_client *c, const char *key, const sl_write_options *wo, const unsigned char *data, size_t len) {
    sl_writer *w = NULL;
    int rc = sl_write_open(c, key, wo, &w);
    if (rc < 0)
        return rc;
    for (size_t at = 0; at < len; at += 64 * KIB) {
        size_t n = len - at < 64 * KIB ? len - at : 64 * KIB;
        if ((rc = sl_write(w, data + at, n)) < 0) {
            sl_write_abort(w);
            return rc;
        }
    }
    return sl_write_commit(w);
}

static int64_t s_generation(sl_client *c, const char *key) {
    sl_object obj;
    ASSERT_INT_EQ(sl_stat(c, key, &obj), 0);
    return obj.generation;
}

static void test_write_preconditions(void) {
    sl_store *st = s_open(256 * KIB);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    unsigned char *data = s_pattern(600 * KIB);
    /* multipart (100 KiB) and resumable (600 KiB in 256 KiB chunks) */
    const char *keys[] = {"pre/small", "pre/big"};
    const size_t sizes[] = {100 * KIB, 600 * KIB};
    for (int i = 0; i < 2; i++) {
        sl_write_options absent = {.if_generation_match_set = true, .if_generation_match = 0};
        ASSERT_INT_EQ(s_put(c, keys[i], &absent, data, sizes[i]), 0);
        int64_t gen = s_generation(c, keys[i]);
        /* It exists now: "no object" fails, the object is left as it was. */
        ASSERT_INT_EQ(s_put(c, keys[i], &absent, data + 1, sizes[i] - 1), SL_EEXIST);
        ASSERT_TRUE(strstr(sl_last_error(), ": HTTP 412: ") != NULL); /* the server's reason is quoted */
        ASSERT_TRUE(strstr(sl_last_error(), "(precondition failed: the object changed meanwhile)") != NULL);
        ASSERT_INT_EQ(s_generation(c, keys[i]), gen);
        /* Its generation is the one to give; an older one fails. */
        sl_write_options current = {.if_generation_match_set = true, .if_generation_match = gen};
        ASSERT_INT_EQ(s_put(c, keys[i], &current, data, sizes[i]), 0);
        ASSERT_TRUE(s_generation(c, keys[i]) > gen);
        ASSERT_INT_EQ(s_put(c, keys[i], &current, data + 1, sizes[i] - 1), SL_EEXIST);
        /* ... unless what is there now is exactly the bytes sent (as when an earlier attempt of this very upload
         * landed after its answer was lost): then the upload is done. */
        if (i == 0)
            ASSERT_INT_EQ(s_put(c, keys[i], &current, data, sizes[i]), 0);
        /* No precondition: written over. */
        ASSERT_INT_EQ(s_put(c, keys[i], NULL, data, sizes[i]), 0);
    }
    sl_write_options bad = {.if_generation_match_set = true, .if_generation_match = -5};
    sl_writer *w = NULL;
    ASSERT_INT_EQ(sl_write_open(c, "pre/bad", &bad, &w), SL_EINVAL);
    sl_client_destroy(c);
    free(data);
    sl_store_close(st);
}

/* A store whose requests carry the retry test made of `instructions` ({"METHOD": [...]}); hdr must outlive it. */
static sl_store *s_open_faulty_retries(const char *instructions, char *hdr, size_t cap, unsigned retries) {
    char body[512], out[1024];
    snprintf(body, sizeof(body), "{\"instructions\": %s}", instructions);
    ASSERT_INT_EQ(gcs_server_retry_test(&s_srv, body, out, sizeof(out)), 200);
    json_t *j = json_loads(out, 0, NULL);
    ASSERT_TRUE(json_string_value(json_object_get(j, "id")) != NULL);
    snprintf(hdr, cap, "x-retry-test-id: %s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    static const char *headers[2];
    headers[0] = hdr;
    sl_store_options so = {.endpoint = s_srv.base_url,
                           .anonymous = true,
                           .upload_chunk_bytes = 256 * KIB,
                           .headers = headers,
                           .retries = retries,
                           .retry_initial_ms = 5,
                           .retry_max_ms = 20};
    sl_store *st = NULL;
    ASSERT_INT_EQ(sl_store_open("gs://unit-bucket/faulty", &so, &st), 0);
    return st;
}

static sl_store *s_open_faulty(const char *instructions, char *hdr, size_t cap) {
    return s_open_faulty_retries(instructions, hdr, cap, 0);
}

/* An upload whose every attempt got no answer has no HTTP status to report: the lookups between its attempts (did one
 * land? what is there now?) answered 404, but they are not what failed it. */
static void test_lookups_between_attempts_not_tallied(void) {
    unsigned char *data = s_pattern(4 * KIB);
    char hdr[128];
    /* Two attempts; libcurl itself sends a request again on a fresh connection when a reused one is reset before any
     * answer, so each attempt may take two resets. */
    sl_store *st = s_open_faulty_retries("{\"storage.objects.insert\": [\"return-reset-connection\", "
                                         "\"return-reset-connection\", \"return-reset-connection\", "
                                         "\"return-reset-connection\", \"return-reset-connection\"]}",
                                         hdr, sizeof(hdr), 1);
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    sl__http_tally_reset();
    ASSERT_INT_EQ(s_put(c, "no-answer", NULL, data, 4 * KIB), SL_EIO);
    sl__http_tally t;
    sl__http_tally_get(&t);
    ASSERT_UINT_EQ(t.retries, 1);
    ASSERT_FALSE(t.any_response);
    ASSERT_INT_EQ(t.last_status, 0);
    sl_client_destroy(c);
    sl_store_close(st);
    free(data);
}

static void test_412_explained_only_with_a_precondition(void) {
    unsigned char *data = s_pattern(4 * KIB);
    char hdr[128];
    sl_client *c = NULL;
    /* No precondition sent: the server's reason, a neutral code. */
    sl_store *st = s_open_faulty("{\"storage.objects.insert\": [\"return-412\"]}", hdr, sizeof(hdr));
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    ASSERT_INT_EQ(s_put(c, "k412", NULL, data, 4 * KIB), SL_EIO);
    ASSERT_TRUE(strstr(sl_last_error(), "gs://unit-bucket/faulty/k412: HTTP 412: Retry Test: Caused a 412 (via ") !=
                NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "changed meanwhile") == NULL);
    sl_client_destroy(c);
    sl_store_close(st);
    /* Sent: the object changed meanwhile. */
    st = s_open_faulty("{\"storage.objects.insert\": [\"return-412\"]}", hdr, sizeof(hdr));
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    sl_write_options absent = {.if_generation_match_set = true, .if_generation_match = 0};
    ASSERT_INT_EQ(s_put(c, "k412", &absent, data, 4 * KIB), SL_EEXIST);
    ASSERT_TRUE(strstr(sl_last_error(), "(precondition failed: the object changed meanwhile)") != NULL);
    sl_client_destroy(c);
    sl_store_close(st);
    free(data);
}

/* The number of object generations the server made since the last call, once no request is in flight there. */
static long s_generations(void) {
    char url[128], body[8192];
    snprintf(url, sizeof(url), "%s/_stats", s_srv.base_url);
    long n = -1, in_flight = 1;
    for (int i = 0; i < 300 && in_flight; i++) {
        ASSERT_INT_EQ(gcs_http("GET", url, NULL, NULL, body, sizeof(body)), 200);
        json_t *doc = json_loads(body, 0, NULL);
        in_flight = (long)json_integer_value(json_object_get(doc, "api_in_flight"));
        n = (long)json_integer_value(json_object_get(doc, "generations_created"));
        json_decref(doc);
        if (in_flight)
            gcs_sleep_ms_(100);
    }
    ASSERT_INT_EQ(in_flight, 0);
    snprintf(url, sizeof(url), "%s/_stats/reset", s_srv.base_url);
    ASSERT_INT_EQ(gcs_http("POST", url, NULL, "", NULL, 0), 200);
    return n;
}

static void test_late_first_attempt_makes_no_generation(void) {
    unsigned char *data = s_pattern(4 * KIB);
    char hdr[128];
    /* The first attempt gets no answer and lands 1 s later, after the retry: with the precondition it fails then. */
    sl_store *st = s_open_faulty("{\"storage.objects.insert\": [\"reset-then-execute-after-1s\"]}", hdr, sizeof(hdr));
    sl_client *c = NULL;
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    s_generations();
    sl_write_options absent = {.if_generation_match_set = true, .if_generation_match = 0};
    ASSERT_INT_EQ(s_put(c, "late", &absent, data, 4 * KIB), 0);
    ASSERT_INT_EQ(s_generations(), 1);
    sl_client_destroy(c);
    sl_store_close(st);
    /* Without one, the late first attempt makes a second generation: what the precondition is for. (3 s: the retry,
     * a few local requests, must come first even on a loaded machine.) */
    st = s_open_faulty("{\"storage.objects.insert\": [\"reset-then-execute-after-3s\"]}", hdr, sizeof(hdr));
    ASSERT_INT_EQ(sl_client_new(st, &c), 0);
    ASSERT_INT_EQ(s_put(c, "late-unconditional", NULL, data, 4 * KIB), 0);
    ASSERT_INT_EQ(s_generations(), 2);
    sl_client_destroy(c);
    sl_store_close(st);
    free(data);
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
    RUN_TEST(test_write_preconditions);
    RUN_TEST(test_412_explained_only_with_a_precondition);
    RUN_TEST(test_late_first_attempt_makes_no_generation);
    RUN_TEST(test_lookups_between_attempts_not_tallied);
    gcs_server_stop(&s_srv);
    TEST_DONE();
}
