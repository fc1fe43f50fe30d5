/* http.c against the GCS test server (tests/gcs/gcs_server.py) and a closed loopback port: what the requests of a
 * server say about its health (sl__http_health: only a request that gets no HTTP answer at all makes it "failing";
 * any answer, a 503 or a broken body included, clears it), abandoning a thread's requests with a user flag
 * (sl__http_bind_user_abort, behind sl_thread_bind_abort), the Content-Type a body goes with (the one given, or none:
 * never libcurl's form default, which the server refuses as GCS does), and the tally that leaves requests aside
 * out. */
#include "test.h"

#include "clock.h"
#include "gcs_fixture.h"
#include "http.h"

#include "sluice/sluice.h"

#include <pthread.h>

#define CLOSED_URL "http://127.0.0.1:1/storage/v1/b/x" /* nothing listens on port 1 */

static gcs_server s_srv;

static int s_get(sl__http *h, const char *url, const char *const *headers, sl__http_response *resp) {
    sl__http_request req = {.method = "GET", .url = url, .headers = headers};
    return sl__http_perform(h, &req, resp);
}

/* A retry test on the server: {"METHOD": [INSTRUCTION]}; writes the "x-retry-test-id: ID" header into hdr. */
static void s_fault(const char *method, const char *instruction, char *hdr, size_t cap) {
    char body[256], out[1024];
    snprintf(body, sizeof(body), "{\"instructions\": {\"%s\": [\"%s\"]}}", method, instruction);
    ASSERT_INT_EQ(gcs_server_retry_test(&s_srv, body, out, sizeof(out)), 200);
    json_t *j = json_loads(out, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    ASSERT_TRUE(id != NULL);
    snprintf(hdr, cap, "x-retry-test-id: %s", id);
    json_decref(j);
}

static void test_no_answer_then_answer(void) {
    sl__http_health hh;
    sl__http_health_init(&hh, 0);
    ASSERT_UINT_EQ(hh.deadline_ms, 120000);
    sl__http_options o = {.health = &hh};
    sl__http *h = sl__http_new(&o);
    ASSERT_TRUE(h != NULL);
    sl__http_response resp;
    char why[512];
    ASSERT_INT_EQ(sl__http_health_unreachable_ms(&hh, why, sizeof(why)), 0);
    ASSERT_FALSE(sl__http_health_holding(&hh));

    /* Refused: no answer. The outage is dated from this first failure. */
    int64_t t0 = sl__now_ms();
    ASSERT_INT_EQ(s_get(h, CLOSED_URL, NULL, &resp), SL_EIO);
    int64_t since = atomic_load(&hh.failing_since_ms);
    ASSERT_TRUE(since >= t0 && since <= sl__now_ms());
    gcs_sleep_ms_(120);
    ASSERT_TRUE(sl__http_health_unreachable_ms(&hh, why, sizeof(why)) >= 100);
    ASSERT_TRUE(strstr(why, "http://127.0.0.1:1") != NULL);
    /* A second failure does not move the start of the outage. */
    ASSERT_INT_EQ(s_get(h, CLOSED_URL, NULL, &resp), SL_EIO);
    ASSERT_INT_EQ(atomic_load(&hh.failing_since_ms), since);
    /* Holding only while a job watches. */
    ASSERT_FALSE(sl__http_health_holding(&hh));
    atomic_store(&hh.watched, true);
    ASSERT_TRUE(sl__http_health_holding(&hh));

    /* Any answer ends it, whatever its status: a 404 here. */
    char url[256];
    snprintf(url, sizeof(url), "%s/storage/v1/b/nosuch", s_srv.base_url);
    ASSERT_INT_EQ(s_get(h, url, NULL, &resp), 0);
    ASSERT_INT_EQ(resp.status, 404);
    ASSERT_INT_EQ(sl__http_health_unreachable_ms(&hh, NULL, 0), 0);
    ASSERT_FALSE(sl__http_health_holding(&hh));
    sl__http_destroy(h);
    sl__http_health_destroy(&hh);
}

static void test_answers_are_not_outages(void) {
    sl__http_health hh;
    sl__http_health_init(&hh, 5000);
    ASSERT_UINT_EQ(hh.deadline_ms, 5000);
    sl__http_options o = {.health = &hh};
    sl__http *h = sl__http_new(&o);
    sl__http_response resp;
    char url[256], hdr[128];
    snprintf(url, sizeof(url), "%s/storage/v1/b/b/o/k?alt=media", s_srv.base_url);
    const char *headers[] = {hdr, NULL};

    /* 503: the server answers. */
    s_fault("storage.objects.get", "return-503", hdr, sizeof(hdr));
    ASSERT_INT_EQ(s_get(h, url, headers, &resp), 0);
    ASSERT_INT_EQ(resp.status, 503);
    ASSERT_INT_EQ(atomic_load(&hh.failing_since_ms), 0);

    /* Headers, then the connection closes inside the body: a transport error, but after an answer. */
    s_fault("storage.objects.get", "return-broken-stream", hdr, sizeof(hdr));
    ASSERT_INT_EQ(s_get(h, url, headers, &resp), SL_EIO);
    ASSERT_INT_EQ(atomic_load(&hh.failing_since_ms), 0);

    /* Reset before any answer: no answer. */
    s_fault("storage.objects.get", "return-reset-connection", hdr, sizeof(hdr));
    ASSERT_INT_EQ(s_get(h, url, headers, &resp), SL_EIO);
    ASSERT_TRUE(atomic_load(&hh.failing_since_ms) > 0);

    /* A streamed download clears it as soon as its status line arrives. */
    sl__http_request req = {.method = "GET", .url = url};
    ASSERT_INT_EQ(sl__http_stream_open(h, &req, &resp), 0);
    ASSERT_INT_EQ(atomic_load(&hh.failing_since_ms), 0);
    unsigned char buf[4096];
    while (sl__http_stream_read(h, buf, sizeof(buf)) > 0) {
    }
    sl__http_stream_close(h);

    /* An sl__http without a record counts nothing anywhere. */
    sl__http *plain = sl__http_new(NULL);
    ASSERT_INT_EQ(s_get(plain, CLOSED_URL, NULL, &resp), SL_EIO);
    ASSERT_INT_EQ(atomic_load(&hh.failing_since_ms), 0);
    sl__http_destroy(plain);
    sl__http_destroy(h);
    sl__http_health_destroy(&hh);
}

/* contentType of object `name` in bucket b, as the server stored it. */
static void s_stored_type(sl__http *h, const char *name, char *out, size_t cap) {
    char url[256];
    snprintf(url, sizeof(url), "%s/storage/v1/b/b/o/%s?fields=contentType", s_srv.base_url, name);
    sl__http_response resp;
    ASSERT_INT_EQ(s_get(h, url, NULL, &resp), 0);
    ASSERT_INT_EQ(resp.status, 200);
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    snprintf(out, cap, "%s", json_string_value(json_object_get(doc, "contentType")));
    json_decref(doc);
}

static void test_body_content_type(void) {
    sl__http *h = sl__http_new(NULL);
    sl__http_response resp;
    char url[256], type[128];
    /* No Content-Type given: none is sent (the server's default applies), for POST, PUT and PATCH alike, and for an
     * empty body. */
    snprintf(url, sizeof(url), "%s/upload/storage/v1/b/b/o?uploadType=media&name=untyped", s_srv.base_url);
    sl__http_request req = {.method = "POST", .url = url, .body = "abc", .body_len = 3};
    ASSERT_INT_EQ(sl__http_perform(h, &req, &resp), 0);
    ASSERT_INT_EQ(resp.status, 200);
    s_stored_type(h, "untyped", type, sizeof(type));
    ASSERT_STR_EQ(type, "application/octet-stream");
    snprintf(url, sizeof(url), "%s/upload/storage/v1/b/b/o?uploadType=media&name=empty", s_srv.base_url);
    sl__http_request empty = {.method = "POST", .url = url};
    ASSERT_INT_EQ(sl__http_perform(h, &empty, &resp), 0);
    ASSERT_INT_EQ(resp.status, 200);
    /* The type given is the one sent, in any case of its name. */
    snprintf(url, sizeof(url), "%s/upload/storage/v1/b/b/o?uploadType=media&name=typed", s_srv.base_url);
    const char *text[] = {"content-type: text/x-sluice", NULL};
    sl__http_request typed = {.method = "POST", .url = url, .headers = text, .body = "abc", .body_len = 3};
    ASSERT_INT_EQ(sl__http_perform(h, &typed, &resp), 0);
    ASSERT_INT_EQ(resp.status, 200);
    s_stored_type(h, "typed", type, sizeof(type));
    ASSERT_STR_EQ(type, "text/x-sluice");
    snprintf(url, sizeof(url), "%s/storage/v1/b/b/o/typed", s_srv.base_url);
    sl__http_request patch = {.method = "PATCH", .url = url, .body = "{}", .body_len = 2};
    ASSERT_INT_EQ(sl__http_perform(h, &patch, &resp), 0);
    ASSERT_INT_EQ(resp.status, 200);
    /* A form type asked for explicitly is still sent (the server refuses it). */
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    patch.headers = form;
    ASSERT_INT_EQ(sl__http_perform(h, &patch, &resp), 0);
    ASSERT_INT_EQ(resp.status, 400);
    sl__http_destroy(h);
}

static void test_requests_aside_not_tallied(void) {
    sl__http *h = sl__http_new(NULL);
    sl__http_response resp;
    char url[256];
    sl__http_tally_reset();
    snprintf(url, sizeof(url), "%s/storage/v1/b/b/o/no-such-object", s_srv.base_url);
    ASSERT_INT_EQ(s_get(h, url, NULL, &resp), 0);
    sl__http_tally t;
    sl__http_tally_get(&t);
    ASSERT_INT_EQ(t.last_status, 404);
    /* A request aside (here a cleanup answered 204) leaves the status that failed. */
    snprintf(url, sizeof(url), "%s/storage/v1/b/b/o/untyped", s_srv.base_url);
    sl__http_request del = {.method = "DELETE", .url = url, .aside = true};
    ASSERT_INT_EQ(sl__http_perform(h, &del, &resp), 0);
    ASSERT_INT_EQ(resp.status, 204);
    sl__http_tally_get(&t);
    ASSERT_INT_EQ(t.last_status, 404);
    ASSERT_TRUE(t.any_response);
    /* Any other request is tallied. */
    del.aside = false;
    ASSERT_INT_EQ(sl__http_perform(h, &del, &resp), 0);
    sl__http_tally_get(&t);
    ASSERT_INT_EQ(t.last_status, 404);
    ASSERT_INT_EQ(resp.status, 404);
    snprintf(url, sizeof(url), "%s/storage/v1/b/b/o/typed", s_srv.base_url);
    ASSERT_INT_EQ(sl__http_perform(h, &del, &resp), 0);
    sl__http_tally_get(&t);
    ASSERT_INT_EQ(t.last_status, 204);
    /* A lookup made through an API that cannot mark it aside: its status is put back, its retries stay counted. */
    sl__http_tally saved;
    sl__http_tally_get(&saved);
    sl__http_note_retry();
    snprintf(url, sizeof(url), "%s/storage/v1/b/b/o/no-such-object", s_srv.base_url);
    ASSERT_INT_EQ(s_get(h, url, NULL, &resp), 0);
    sl__http_tally_restore(&saved);
    sl__http_tally_get(&t);
    ASSERT_INT_EQ(t.last_status, 204);
    ASSERT_UINT_EQ(t.retries, saved.retries + 1);
    sl__http_destroy(h);
}

static volatile sig_atomic_t s_stop;
static pthread_t s_main_thread;

/* The flag is set the way the CLI sets it: by a signal handler on the thread whose requests it stops. */
static void s_on_usr1(int sig) {
    (void)sig;
    s_stop = 1;
}

static void *s_set_stop_later(void *arg) {
    (void)arg;
    gcs_sleep_ms_(300);
    pthread_kill(s_main_thread, SIGUSR1);
    return NULL;
}

static void test_user_abort(void) {
    sl__http *h = sl__http_new(NULL);
    sl__http_response resp;
    char url[256], hdr[128];
    snprintf(url, sizeof(url), "%s/storage/v1/b/b/o/k", s_srv.base_url);
    const char *headers[] = {hdr, NULL};
    s_stop = 0;
    s_main_thread = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ASSERT_INT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    sl_thread_bind_abort(&s_stop);
    ASSERT_FALSE(sl__http_aborted());

    /* A request the server stalls for 30 s ends within a fraction of a second of the flag. */
    s_fault("storage.objects.get", "stall-for-30s-after-0K", hdr, sizeof(hdr));
    pthread_t t;
    ASSERT_INT_EQ(pthread_create(&t, NULL, s_set_stop_later, NULL), 0);
    int64_t t0 = sl__now_ms();
    ASSERT_INT_EQ(s_get(h, url, headers, &resp), SL_ECANCELED);
    int64_t took = sl__now_ms() - t0;
    pthread_join(t, NULL);
    ASSERT_TRUE(took >= 250 && took < 5000);
    ASSERT_TRUE(strstr(sl_last_error(), "request abandoned (interrupted)") != NULL);
    ASSERT_TRUE(sl__http_aborted());

    /* While the flag is set, every request of this thread fails at once. */
    t0 = sl__now_ms();
    ASSERT_INT_EQ(s_get(h, url, NULL, &resp), SL_ECANCELED);
    ASSERT_TRUE(sl__now_ms() - t0 < 1000);

    /* Unbound: requests run again. */
    sl_thread_bind_abort(NULL);
    ASSERT_FALSE(sl__http_aborted());
    ASSERT_INT_EQ(s_get(h, url, NULL, &resp), 0);
    sl__http_destroy(h);
}

int main(void) {
    /* Only loopback: no proxy may be asked. */
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    unsetenv("all_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *args[] = {"--bucket", "b", NULL};
    if (gcs_server_start(&s_srv, args) != 0)
        TEST_FAIL_("cannot start the GCS test server");
    char url[256];
    snprintf(url, sizeof(url), "%s/upload/storage/v1/b/b/o?uploadType=media&name=k", s_srv.base_url);
    const char *media[] = {"Content-Type: application/octet-stream", NULL};
    ASSERT_INT_EQ(gcs_http("POST", url, media, "some bytes", NULL, 0), 200);

    RUN_TEST(test_no_answer_then_answer);
    RUN_TEST(test_answers_are_not_outages);
    RUN_TEST(test_user_abort);
    RUN_TEST(test_body_content_type);
    RUN_TEST(test_requests_aside_not_tallied);

    gcs_server_stop(&s_srv);
    TEST_DONE();
}
