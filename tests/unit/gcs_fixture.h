/* Test support for everything that talks to Google Cloud: the GCS test server (tests/gcs/gcs_server.py) as a child
 * process on 127.0.0.1, and plain libcurl requests to its test endpoints (POST /retry_test, GET /_stats).
 *
 * Header-only, every function static and possibly unused. Needs SL_SOURCE_DIR (the source tree, a string macro set
 * by the build) and links against libcurl and jansson. Functions print what went wrong to stderr and return -1.
 * Start and stop servers from one thread; servers still running when the program exits are stopped then. */
#ifndef SLUICE_GCS_FIXTURE_H
#define SLUICE_GCS_FIXTURE_H

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SL_SOURCE_DIR
#error "SL_SOURCE_DIR must name the source tree (target_compile_definitions in tests/CMakeLists.txt)"
#endif

#define GCS_FIXTURE_FN __attribute__((unused)) static

extern char **environ;

typedef struct gcs_server {
    pid_t pid;           /* 0 when not running */
    int port;            /* the port it listens on, on 127.0.0.1 */
    char base_url[64];   /* "http://127.0.0.1:PORT" */
    char dir[256];       /* private temp directory holding the port file */
    char port_file[320]; /* dir/port */
} gcs_server;

GCS_FIXTURE_FN void gcs_sleep_ms_(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Servers still running, stopped at exit: a failing ASSERT exits the test program mid-test, and a server left behind
 * would keep the test's output pipe open (CTest would wait for it until the timeout). */
static pid_t gcs_live_pids_[32];

GCS_FIXTURE_FN void gcs_track_(pid_t old_pid, pid_t new_pid) {
    for (size_t i = 0; i < sizeof(gcs_live_pids_) / sizeof(gcs_live_pids_[0]); i++)
        if (gcs_live_pids_[i] == old_pid) {
            gcs_live_pids_[i] = new_pid;
            return;
        }
}

GCS_FIXTURE_FN void gcs_stop_all_(void) {
    for (size_t i = 0; i < sizeof(gcs_live_pids_) / sizeof(gcs_live_pids_[0]); i++)
        if (gcs_live_pids_[i] > 0) {
            kill(gcs_live_pids_[i], SIGTERM);
            waitpid(gcs_live_pids_[i], NULL, 0);
            gcs_live_pids_[i] = 0;
        }
}

GCS_FIXTURE_FN void gcs_server_stop(gcs_server *s) {
    if (s->pid > 0) {
        gcs_track_(s->pid, 0);
        kill(s->pid, SIGTERM);
        int status;
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    s->pid = 0;
    if (s->port_file[0])
        unlink(s->port_file);
    if (s->dir[0])
        rmdir(s->dir);
    s->port_file[0] = s->dir[0] = '\0';
}

/* Starts `python3 SL_SOURCE_DIR/tests/gcs/gcs_server.py --port 0 --port-file F [extra_args...]` (extra_args NULL or
 * NULL-terminated) and waits up to 10 s until it listens. Returns 0 with s filled in, or -1 (nothing left running). */
GCS_FIXTURE_FN int gcs_server_start(gcs_server *s, const char *const *extra_args) {
    memset(s, 0, sizeof(*s));
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof(s->dir), "%s/sl-gcs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "gcs_server_start: mkdtemp %s: %s\n", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    snprintf(s->port_file, sizeof(s->port_file), "%s/port", s->dir);

    const char *argv[64];
    size_t n = 0;
    argv[n++] = "python3";
    argv[n++] = SL_SOURCE_DIR "/tests/gcs/gcs_server.py";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = s->port_file;
    /* A test that crashes (a sanitizer's report) runs no atexit handler: the server stops by itself then. */
    char parent[24];
    snprintf(parent, sizeof(parent), "%ld", (long)getpid());
    argv[n++] = "--parent-pid";
    argv[n++] = parent;
    for (size_t i = 0; extra_args && extra_args[i]; i++) {
        if (n + 1 >= sizeof(argv) / sizeof(argv[0])) {
            fprintf(stderr, "gcs_server_start: too many arguments\n");
            gcs_server_stop(s);
            return -1;
        }
        argv[n++] = extra_args[i];
    }
    argv[n] = NULL;
    /* Its stdout only repeats the port; stderr stays, since a traceback there means a bug in the server. */
    static int registered;
    if (!registered && atexit(gcs_stop_all_) == 0)
        registered = 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    int err = posix_spawnp(&s->pid, "python3", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err) {
        fprintf(stderr, "gcs_server_start: cannot run python3: %s\n", strerror(err));
        s->pid = 0;
        gcs_server_stop(s);
        return -1;
    }
    gcs_track_(0, s->pid);

    for (int waited_ms = 0; waited_ms < 10000; waited_ms += 20) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "gcs_server_start: the server exited before listening (status %d)\n", status);
            gcs_track_(s->pid, 0);
            s->pid = 0;
            gcs_server_stop(s);
            return -1;
        }
        FILE *f = fopen(s->port_file, "r");
        if (f) {
            int port = 0;
            int got = fscanf(f, "%d", &port);
            fclose(f);
            /* The server writes the file atomically once it listens. */
            if (got == 1 && port > 0 && port < 65536) {
                s->port = port;
                snprintf(s->base_url, sizeof(s->base_url), "http://127.0.0.1:%d", port);
                return 0;
            }
        }
        gcs_sleep_ms_(20);
    }
    fprintf(stderr, "gcs_server_start: no port in %s after 10 s\n", s->port_file);
    gcs_server_stop(s);
    return -1;
}

typedef struct gcs_body_ {
    char *out;
    size_t cap, len;
} gcs_body_;

GCS_FIXTURE_FN size_t gcs_on_body_(char *data, size_t size, size_t nmemb, void *ud) {
    gcs_body_ *b = ud;
    size_t n = size * nmemb;
    if (b->cap) {
        size_t room = b->cap - 1 - b->len;
        size_t take = n < room ? n : room;
        memcpy(b->out + b->len, data, take);
        b->len += take;
        b->out[b->len] = '\0';
    }
    return n;
}

/* One request with a fresh curl handle: method, full URL, NULL-terminated headers (or NULL), body (or NULL).
 * The answer's body goes to out (truncated to out_cap - 1 bytes, NUL-terminated; out may be NULL). Returns the HTTP
 * status, or -1 on a transport failure. */
GCS_FIXTURE_FN long gcs_http(const char *method, const char *url, const char *const *headers, const char *body,
                             char *out, size_t out_cap) {
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    gcs_body_ b = {out, out ? out_cap : 0, 0};
    if (out && out_cap)
        out[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, gcs_on_body_);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    long status = -1;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "gcs_http %s %s: %s\n", method, url, curl_easy_strerror(rc));
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return status;
}

/* GET /_stats, parsed. Caller json_decref()s. NULL on failure. */
GCS_FIXTURE_FN json_t *gcs_server_stats(const gcs_server *s) {
    char url[128], body[65536];
    snprintf(url, sizeof(url), "%s/_stats", s->base_url);
    long status = gcs_http("GET", url, NULL, NULL, body, sizeof(body));
    if (status != 200) {
        fprintf(stderr, "gcs_server_stats: GET %s answered %ld\n", url, status);
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    if (!json_is_object(j)) {
        fprintf(stderr, "gcs_server_stats: not a JSON object: %.200s\n", body);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* One integer field of /_stats ("connections", "tokens_issued"), or -1. */
GCS_FIXTURE_FN long long gcs_server_stat(const gcs_server *s, const char *field) {
    json_t *j = gcs_server_stats(s);
    if (!j)
        return -1;
    json_t *v = json_object_get(j, field);
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    if (!json_is_integer(v))
        fprintf(stderr, "gcs_server_stat: no integer \"%s\" in /_stats\n", field);
    json_decref(j);
    return n;
}

/* POST /retry_test with a JSON body (the fault-injection instructions the server documents). Returns the status. */
GCS_FIXTURE_FN long gcs_server_retry_test(const gcs_server *s, const char *json_body, char *out, size_t out_cap) {
    char url[128];
    snprintf(url, sizeof(url), "%s/retry_test", s->base_url);
    const char *headers[] = {"Content-Type: application/json", NULL};
    return gcs_http("POST", url, headers, json_body, out, out_cap);
}

#endif
