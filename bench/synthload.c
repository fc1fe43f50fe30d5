/* sl-synthload: a load generator for sl-synthbucket (bench/synthbucket.c). C keep-alive HTTP/1.1 connections to
 * 127.0.0.1, one request in flight on each, driven by one epoll loop: each connection asks for object after object of
 * the synthetic bucket for a number of requests or seconds. Prints requests/s, bytes/s, its own CPU time per request
 * and the answers by status class.
 *
 * It speaks just enough HTTP (GET, answers with a Content-Length) and no more, so that it costs a few microseconds
 * per request: on another core it can drive the server to its limit, which a general client (curl, libcurl's multi
 * interface with hundreds of handles, sluice's threads) cannot show on a 2-core machine. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_IN_CAP 65536

typedef struct conn {
    int fd;
    char req[600];
    size_t req_len, req_off;
    char in[S_IN_CAP];
    size_t in_len;
    bool head_done;
    uint64_t body_left;
    int status;
} conn;

static struct {
    const char *bucket, *prefix;
    bool media, list;
    unsigned long port;
    unsigned long long objects, next;
} s = {.bucket = "synth", .prefix = "obj/", .media = true, .objects = 1000};

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: sl-synthload --port P [--bucket synth] [--prefix obj/] [--objects N] [--connections C]\n"
            "                    [--requests R | --seconds S] [--kind media|meta|list]\n"
            "Sends requests to sl-synthbucket on 127.0.0.1:P over C keep-alive connections (default 64), one in\n"
            "flight on each: media GETs of objects 0, 1, ... N-1, 0, ... (default), their metadata, or first listing\n"
            "pages of 1000. Stops after R requests (default 100000) or S seconds. Exit 1 if any answer was not 2xx.\n");
}

static int s_connect(conn *c, int ep) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) /* blocking: loopback connects at once */
        return -1;
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Writes the next request on c (a few hundred bytes: one write takes it on a socket with nothing queued). */
static int s_send(conn *c) {
    unsigned long long i = s.next++ % s.objects;
    char name[300] = "";
    if (!s.list) {
        size_t o = 0;
        for (const char *p = s.prefix; *p && o + 4 < sizeof(name); p++)
            o += (size_t)snprintf(name + o, sizeof(name) - o, *p == '/' ? "%%2F" : "%c", *p);
        snprintf(name + o, sizeof(name) - o, "%010llu", i);
    }
    if (s.list)
        c->req_len =
            (size_t)snprintf(c->req, sizeof(c->req),
                             "GET /storage/v1/b/%s/o?maxResults=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", s.bucket);
    else
        c->req_len =
            (size_t)snprintf(c->req, sizeof(c->req), "GET /storage/v1/b/%s/o/%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                             s.bucket, name, s.media ? "?alt=media" : "");
    c->in_len = 0;
    c->head_done = false;
    ssize_t n = write(c->fd, c->req, c->req_len);
    return n == (ssize_t)c->req_len ? 0 : -1;
}

/* Reads what c has. 1: its answer is complete; 0: more to come; -1: the connection failed. */
static int s_read(conn *c, uint64_t *bytes) {
    for (;;) {
        if (!c->head_done) {
            ssize_t n = read(c->fd, c->in + c->in_len, S_IN_CAP - 1 - c->in_len);
            if (n < 0)
                return errno == EAGAIN ? 0 : -1;
            if (n == 0)
                return -1;
            c->in_len += (size_t)n;
            c->in[c->in_len] = '\0';
            char *end = strstr(c->in, "\r\n\r\n");
            if (!end) {
                if (c->in_len == S_IN_CAP - 1)
                    return -1;
                continue;
            }
            c->status = atoi(c->in + 9);
            char *cl = NULL;
            for (char *p = c->in; p < end; p = strstr(p, "\r\n") + 2)
                if (strncasecmp(p, "content-length:", 15) == 0) {
                    cl = p + 15;
                    break;
                }
            if (!cl)
                return -1;
            uint64_t len = strtoull(cl, NULL, 10);
            size_t have = c->in_len - (size_t)(end + 4 - c->in);
            if (have > len)
                return -1; /* nothing is pipelined */
            *bytes += have;
            c->body_left = len - have;
            c->head_done = true;
            if (!c->body_left)
                return 1;
            continue;
        }
        char sink[S_IN_CAP];
        ssize_t n = read(c->fd, sink, c->body_left < sizeof(sink) ? (size_t)c->body_left : sizeof(sink));
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        if (n == 0)
            return -1;
        *bytes += (uint64_t)n;
        c->body_left -= (uint64_t)n;
        if (!c->body_left)
            return 1;
    }
}

int main(int argc, char **argv) {
    unsigned long conns = 64;
    unsigned long long requests = 100000;
    double seconds = 0;
    for (int k = 1; k < argc; k += 2) { /* every option takes a value */
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
            s.port = strtoul(v, NULL, 10);
        else if (strcmp(a, "--bucket") == 0)
            s.bucket = v;
        else if (strcmp(a, "--prefix") == 0)
            s.prefix = v;
        else if (strcmp(a, "--objects") == 0)
            s.objects = strtoull(v, NULL, 10);
        else if (strcmp(a, "--connections") == 0)
            conns = strtoul(v, NULL, 10);
        else if (strcmp(a, "--requests") == 0)
            requests = strtoull(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0)
            seconds = strtod(v, NULL);
        else if (strcmp(a, "--kind") == 0) {
            s.media = strcmp(v, "media") == 0;
            s.list = strcmp(v, "list") == 0;
            if (!s.media && !s.list && strcmp(v, "meta") != 0) {
                s_usage(stderr);
                return 2;
            }
        } else {
            s_usage(stderr);
            return 2;
        }
    }
    if (!s.port || s.port > 65535 || !conns || conns > 60000 || !s.objects) {
        s_usage(stderr);
        return 2;
    }
    if (seconds > 0)
        requests = UINT64_MAX;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < conns + 16) {
        rl.rlim_cur = rl.rlim_max < conns + 16 ? rl.rlim_max : conns + 16;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    conn *cs = calloc(conns, sizeof(*cs));
    if (ep < 0 || !cs) {
        perror("sl-synthload");
        return 1;
    }
    unsigned long long started = 0, done = 0, status[6] = {0};
    uint64_t bytes = 0;
    unsigned long open = 0;
    for (unsigned long k = 0; k < conns; k++) {
        if (s_connect(&cs[k], ep) != 0) {
            fprintf(stderr, "sl-synthload: cannot connect to 127.0.0.1:%lu: %s\n", s.port, strerror(errno));
            return 1;
        }
        open++;
    }
    double t0 = s_now(), deadline = seconds > 0 ? t0 + seconds : 0;
    for (unsigned long k = 0; k < conns && started < requests; k++) {
        if (s_send(&cs[k]) != 0) {
            fprintf(stderr, "sl-synthload: write failed: %s\n", strerror(errno));
            return 1;
        }
        started++;
    }
    struct epoll_event evs[256];
    while (done < started) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR) {
            perror("sl-synthload: epoll_wait");
            return 1;
        }
        bool more = !deadline || s_now() < deadline;
        for (int k = 0; k < n; k++) {
            conn *c = evs[k].data.ptr;
            int rc = s_read(c, &bytes);
            if (rc == 0)
                continue;
            done++;
            if (rc < 0) {
                status[0]++;
                /* Broken: a new connection takes its place, so the load stays the same. */
                close(c->fd);
                if (s_connect(c, ep) != 0) {
                    fprintf(stderr, "sl-synthload: cannot reconnect: %s\n", strerror(errno));
                    return 1;
                }
            } else {
                status[c->status >= 100 && c->status < 600 ? c->status / 100 : 0]++;
            }
            if (more && started < requests) {
                if (s_send(c) != 0) {
                    fprintf(stderr, "sl-synthload: write failed: %s\n", strerror(errno));
                    return 1;
                }
                started++;
            }
        }
    }
    double wall = s_now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    printf("%llu requests in %.3f s: %.0f requests/s, %.1f MB/s, %lu connections; load generator CPU %.2f s "
           "(%.1f us/request); answers: 2xx %llu, 3xx %llu, 4xx %llu, 5xx %llu, failed %llu\n",
           done, wall, (double)done / wall, (double)bytes / wall / 1e6, open, cpu,
           cpu / (double)(done ? done : 1) * 1e6, status[2], status[3], status[4], status[5], status[0] + status[1]);
    for (unsigned long k = 0; k < conns; k++)
        close(cs[k].fd);
    close(ep);
    free(cs);
    return done == status[2] && done ? 0 : 1;
}
