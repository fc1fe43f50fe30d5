/* sl-synthload: a load generator for sl-synthbucket (bench/synthbucket.c): C keep-alive connections through one
 * libcurl multi handle, each asking for object after object of the synthetic bucket, for a number of requests or
 * seconds. Prints requests/s, bytes/s, its own CPU time and the answers by status. It exists to show the server is
 * not the limit: it needs much less CPU per request than the server, so on another core it can saturate it. */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct conn {
    CURL *easy;
    char url[512];
} conn;

static uint64_t s_bytes;

static size_t s_sink(char *p, size_t size, size_t n, void *u) {
    (void)p;
    (void)u;
    s_bytes += size * n;
    return size * n;
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_usage(FILE *f) {
    fprintf(f, "usage: sl-synthload --port P [--bucket synth] [--prefix obj/] [--objects N] [--connections C]\n"
               "                    [--requests R | --seconds S] [--kind media|meta|list]\n"
               "Sends requests to sl-synthbucket on 127.0.0.1:P over C keep-alive connections (default 64): media\n"
               "GETs of objects 0, 1, ... N-1, 0, ... (default), their metadata, or listing pages of 1000. Stops after\n"
               "R requests (default 100000) or S seconds. Exit 1 if any answer was not 200.\n");
}

int main(int argc, char **argv) {
    const char *bucket = "synth", *prefix = "obj/", *kind = "media";
    unsigned long port = 0, conns = 64;
    unsigned long long objects = 1000, requests = 100000;
    double seconds = 0;
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (!v) {
            s_usage(stderr);
            return 2;
        }
        if (strcmp(a, "--port") == 0)
            port = strtoul(v, NULL, 10);
        else if (strcmp(a, "--bucket") == 0)
            bucket = v;
        else if (strcmp(a, "--prefix") == 0)
            prefix = v;
        else if (strcmp(a, "--objects") == 0)
            objects = strtoull(v, NULL, 10);
        else if (strcmp(a, "--connections") == 0)
            conns = strtoul(v, NULL, 10);
        else if (strcmp(a, "--requests") == 0)
            requests = strtoull(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0)
            seconds = strtod(v, NULL);
        else if (strcmp(a, "--kind") == 0)
            kind = v;
        else {
            s_usage(stderr);
            return 2;
        }
        k++;
    }
    bool media = strcmp(kind, "media") == 0, meta = strcmp(kind, "meta") == 0, list = strcmp(kind, "list") == 0;
    if (!port || port > 65535 || !conns || conns > 10000 || !objects || (!media && !meta && !list)) {
        s_usage(stderr);
        return 2;
    }
    if (seconds > 0)
        requests = UINT64_MAX;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)conns);
    conn *cs = calloc(conns, sizeof(*cs));
    if (!multi || !cs)
        return 1;
    char esc_prefix[256] = "";
    for (size_t i = 0, o = 0; prefix[i] && o + 4 < sizeof(esc_prefix); i++)
        o += (size_t)snprintf(esc_prefix + o, sizeof(esc_prefix) - o, prefix[i] == '/' ? "%%2F" : "%c", prefix[i]);
    unsigned long long next = 0, started = 0, done = 0, status[6] = {0};
    /* (re)starts connection c on the next request */
    #define START(c)                                                                                                   \
        do {                                                                                                           \
            unsigned long long i_ = next++ % objects;                                                                  \
            if (list)                                                                                                  \
                snprintf((c)->url, sizeof((c)->url), "http://127.0.0.1:%lu/storage/v1/b/%s/o?maxResults=1000",        \
                         port, bucket);                                                                                \
            else                                                                                                       \
                snprintf((c)->url, sizeof((c)->url), "http://127.0.0.1:%lu/storage/v1/b/%s/o/%s%010llu%s", port,      \
                         bucket, esc_prefix, i_, media ? "?alt=media" : "");                                           \
            curl_easy_setopt((c)->easy, CURLOPT_URL, (c)->url);                                                        \
            curl_multi_add_handle(multi, (c)->easy);                                                                   \
            started++;                                                                                                 \
        } while (0)
    for (unsigned long k = 0; k < conns; k++) {
        cs[k].easy = curl_easy_init();
        if (!cs[k].easy)
            return 1;
        curl_easy_setopt(cs[k].easy, CURLOPT_WRITEFUNCTION, s_sink);
        curl_easy_setopt(cs[k].easy, CURLOPT_PRIVATE, &cs[k]);
        curl_easy_setopt(cs[k].easy, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(cs[k].easy, CURLOPT_TCP_NODELAY, 1L);
    }
    double t0 = s_now(), deadline = seconds > 0 ? t0 + seconds : 0;
    for (unsigned long k = 0; k < conns && started < requests; k++)
        START(&cs[k]);
    int running = 1;
    while (done < started) {
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            conn *c;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            long code = 0;
            if (m->data.result == CURLE_OK)
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            status[code >= 100 && code < 600 ? code / 100 : 0]++;
            done++;
            curl_multi_remove_handle(multi, m->easy_handle);
            if (started < requests && (!deadline || s_now() < deadline))
                START(c);
        }
        if (done < started)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double wall = s_now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    printf("%llu requests in %.3f s: %.0f requests/s, %.1f MB/s, %d connections; load generator CPU %.2f s "
           "(%.1f us/request); answers: 2xx %llu, 3xx %llu, 4xx %llu, 5xx %llu, failed %llu\n",
           done, wall, (double)done / wall, (double)s_bytes / wall / 1e6, (int)conns, cpu, cpu / (double)done * 1e6,
           status[2], status[3], status[4], status[5], status[0] + status[1]);
    for (unsigned long k = 0; k < conns; k++)
        curl_easy_cleanup(cs[k].easy);
    curl_multi_cleanup(multi);
    free(cs);
    curl_global_cleanup();
    return done == status[2] ? 0 : 1;
}
