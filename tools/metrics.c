/* --metrics-addr: the running job's counters, bytes, memory, cgroup figures and memory verdict in the Prometheus text
 * exposition format (version 0.0.4) at GET /metrics, served by libmicrohttpd on a thread of its own, so that a
 * cluster's dashboards see every shard of a job as it runs. Each scrape reads the job's atomics and its sampler's
 * latest sample (sl_job_stats_get, sl_job_mem_now): nothing is kept between scrapes. */
#include "metrics.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_CAP 8192 /* the whole exposition: about 2 KiB */

struct sl_cli_metrics {
    struct MHD_Daemon *daemon;
    const sl_job *job;
    char labels[256]; /* command="cp",shard="0",shards="4" */
    atomic_bool finished;
};

typedef struct s_text {
    char buf[TEXT_CAP];
    size_t len;
} s_text;

static void s_add(s_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_add(s_text *t, const char *fmt, ...) {
    if (t->len >= sizeof(t->buf))
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < sizeof(t->buf) ? t->len + (size_t)n : sizeof(t->buf);
}

/* One metric with its HELP and TYPE lines and this job's labels. */
static void s_metric(s_text *t, const sl_cli_metrics *m, const char *name, const char *type, const char *help,
                     double value) {
    s_add(t, "# HELP %s %s\n# TYPE %s %s\n%s{%s} %.17g\n", name, help, name, type, name, m->labels, value);
}

static void s_render(const sl_cli_metrics *m, s_text *t) {
    sl_job_stats st;
    sl_job_stats_get(m->job, &st);
    sl_mem_sample s;
    sl_mem_verdict v;
    bool mem = sl_job_mem_now(m->job, &s, &v) == 0;
    s_metric(t, m, "sluice_objects_listed_total", "counter", "Objects listed that the job takes (filters and shard).",
             (double)st.objects_listed);
    s_metric(t, m, "sluice_objects_done_total", "counter", "Objects done, skipped ones included.",
             (double)st.objects_done);
    s_metric(t, m, "sluice_objects_skipped_total", "counter", "Objects whose output was already complete.",
             (double)st.objects_skipped);
    s_metric(t, m, "sluice_objects_failed_total", "counter", "Objects that failed.", (double)st.objects_failed);
    s_metric(t, m, "sluice_bytes_read_total", "counter", "Bytes read from the source.", (double)st.bytes_read);
    s_metric(t, m, "sluice_bytes_written_total", "counter", "Bytes written to the destination.",
             (double)st.bytes_written);
    s_metric(t, m, "sluice_bytes_listed_total", "counter", "Sizes of the objects listed, added up.",
             (double)st.bytes_listed);
    s_metric(t, m, "sluice_listing_done", "gauge", "1 once the listing is complete (the totals are final).",
             st.listing_done ? 1 : 0);
    s_metric(t, m, "sluice_workers", "gauge", "Worker threads started.", (double)st.workers);
    s_metric(t, m, "sluice_elapsed_seconds", "gauge", "Seconds since the run began.", st.elapsed_s);
    s_metric(t, m, "sluice_running", "gauge", "1 while the job runs, 0 once it has ended.",
             atomic_load(&m->finished) ? 0 : 1);
    s_metric(t, m, "sluice_rss_bytes", "gauge", "Resident memory of sluice at the last sample.",
             (double)(mem && s.rss_bytes ? s.rss_bytes : sl_current_rss_bytes()));
    s_metric(t, m, "sluice_peak_rss_bytes", "gauge", "Peak resident memory of sluice so far.",
             (double)sl_peak_rss_bytes());
    if (st.workers_peak_mem_bytes)
        s_metric(t, m, "sluice_worker_processes_peak_bytes", "gauge",
                 "Largest memory (PSS) the --worker processes held together in one sample.",
                 (double)st.workers_peak_mem_bytes);
    if (mem && s.cg_limit_bytes) {
        s_metric(t, m, "sluice_cgroup_memory_limit_bytes", "gauge", "The memory limit of sluice's cgroup.",
                 (double)s.cg_limit_bytes);
        s_metric(t, m, "sluice_cgroup_memory_usage_bytes", "gauge",
                 "The working set of sluice's cgroup (usage minus inactive file cache, as Kubernetes counts it).",
                 (double)s.cg_usage_bytes);
        s_metric(t, m, "sluice_cgroup_memory_unreclaimable_bytes", "gauge",
                 "The cgroup's usage minus its page cache: what the kernel cannot reclaim.",
                 (double)s.cg_unreclaimable_bytes);
    }
    /* The verdict as a state set: one series per state, 1 for the current one. */
    const char *states[] = {"unknown", "flat", "growing"};
    int now = mem ? (int)v.trend : 0;
    s_add(t, "# HELP sluice_memory_verdict The memory verdict so far (flat, growing, or unknown: too few samples).\n"
             "# TYPE sluice_memory_verdict gauge\n");
    for (int i = 0; i < 3; i++)
        s_add(t, "sluice_memory_verdict{%s,verdict=\"%s\"} %d\n", m->labels, states[i], i == now ? 1 : 0);
    if (mem && v.trend != SL_MEM_UNKNOWN) {
        s_metric(t, m, "sluice_memory_growth_bytes_per_object", "gauge",
                 "Fitted growth of resident memory per object done (Theil-Sen).", v.bytes_per_object);
        s_metric(t, m, "sluice_memory_growth_bytes_per_second", "gauge",
                 "Fitted growth of resident memory per second (Theil-Sen).", v.bytes_per_second);
    }
}

static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size, void **state) {
    (void)version;
    (void)upload_data;
    (void)state;
    sl_cli_metrics *m = cls;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body is not asked for: drop it */
        return MHD_YES;
    }
    struct MHD_Response *r;
    unsigned status;
    if (get && strcmp(url, "/metrics") == 0) {
        s_text *t = malloc(sizeof(*t));
        if (!t)
            return MHD_NO;
        t->len = 0;
        s_render(m, t);
        r = MHD_create_response_from_buffer(t->len, t->buf, MHD_RESPMEM_MUST_COPY);
        free(t);
        status = MHD_HTTP_OK;
        if (r)
            MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    } else {
        static const char nf[] = "sluice serves its metrics at /metrics\n";
        r = MHD_create_response_from_buffer(sizeof(nf) - 1, (void *)nf, MHD_RESPMEM_PERSISTENT);
        status = get ? MHD_HTTP_NOT_FOUND : MHD_HTTP_METHOD_NOT_ALLOWED;
        if (r)
            MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    }
    if (!r)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

int sl_cli_metrics_parse_addr(const char *addr, struct sockaddr_in *out) {
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon[1] == '\0')
        return -1;
    char host[64];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof(host))
        return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || errno || port > 65535 || colon[1] < '0' || colon[1] > '9')
        return -1;
    out->sin_port = htons((uint16_t)port);
    if (hl == 0 || strcmp(host, "0.0.0.0") == 0)
        out->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
        return -1;
    return 0;
}

int sl_cli_metrics_start(const char *addr, const sl_job *job, const char *command, unsigned shard_index,
                         unsigned shard_count, sl_cli_metrics **out, char *err, size_t cap) {
    *out = NULL;
    struct sockaddr_in sa;
    if (sl_cli_metrics_parse_addr(addr, &sa) < 0) {
        snprintf(err, cap, "--metrics-addr takes HOST:PORT (127.0.0.1:9464, or :9464 for every interface), not '%s'",
                 addr);
        return 2;
    }
    sl_cli_metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, cap, "out of memory");
        return 3;
    }
    m->job = job;
    atomic_init(&m->finished, false);
    if (shard_count)
        snprintf(m->labels, sizeof(m->labels), "command=\"%s\",shard=\"%u\",shards=\"%u\"", command, shard_index,
                 shard_count);
    else
        snprintf(m->labels, sizeof(m->labels), "command=\"%s\",shard=\"0\",shards=\"1\"", command);
    /* The server's threads take no signal: SIGINT and SIGTERM belong to the thread that runs the job. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    m->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, ntohs(sa.sin_port), NULL, NULL,
                                 s_answer, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!m->daemon) {
        snprintf(err, cap,
                 "--metrics-addr %s: cannot serve there: %s (is the port taken, or the address not this "
                 "machine's?)",
                 addr, e ? strerror(e) : "libmicrohttpd could not start");
        free(m);
        return 3;
    }
    *out = m;
    return 0;
}

void sl_cli_metrics_finished(sl_cli_metrics *m) {
    if (m)
        atomic_store(&m->finished, true);
}

void sl_cli_metrics_stop(sl_cli_metrics *m) {
    if (!m)
        return;
    MHD_stop_daemon(m->daemon);
    free(m);
}
