/* The job engine in-process, on real files: copy, sync, built-in ops to "-", exec failures, cancellation, and the
 * concurrency bound from the memory limit. Run under TSan in CI: this is where the threads meet. */
#include "test.h"

#include "sluice/sluice.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char s_root[256];

static void write_file(const char *path, const char *data, size_t len) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    ASSERT_UINT_EQ(fwrite(data, 1, len, f), len);
    ASSERT_INT_EQ(fclose(f), 0);
}

static size_t read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return (size_t)-1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* Builds SRC with `n` files in 10 folders; file i holds "object <i>\n" repeated i % 7 times. */
static void make_tree(const char *dir, int n) {
    char path[PATH_MAX], body[256];
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        for (int r = 0; r < i % 7; r++)
            len += (size_t)snprintf(body + len, sizeof(body) - len, "object %d\n", i);
        snprintf(path, sizeof(path), "%s/d%d/f%05d.txt", dir, i % 10, i);
        write_file(path, body, len);
    }
}

typedef struct collector {
    atomic_int lines;
    atomic_int failures;
    int concurrent; /* callbacks are serialized: this must never exceed 1 */
    int max_concurrent;
    char last_failure[512];
} collector;

static void on_result(void *ud, const char *line, size_t len) {
    collector *c = ud;
    c->concurrent++;
    if (c->concurrent > c->max_concurrent)
        c->max_concurrent = c->concurrent;
    ASSERT_TRUE(len > 2 && line[0] == '{' && line[len - 1] == '}');
    atomic_fetch_add(&c->lines, 1);
    c->concurrent--;
}

static void on_failure(void *ud, const char *key, int err, const char *error) {
    collector *c = ud;
    (void)err;
    c->concurrent++;
    if (c->concurrent > c->max_concurrent)
        c->max_concurrent = c->concurrent;
    snprintf(c->last_failure, sizeof(c->last_failure), "%s: %s", key, error);
    atomic_fetch_add(&c->failures, 1);
    c->concurrent--;
}

static int run_job(sl_job_options *o, sl_job_stats *st) {
    sl_job *job = NULL;
    int rc = sl_job_new(o, &job);
    if (rc < 0)
        return rc;
    rc = sl_job_run(job);
    sl_job_stats_get(job, st);
    sl_job_destroy(job);
    return rc;
}

static void test_copy_then_sync(void) {
    char src[512], dst[512], a[PATH_MAX], b[PATH_MAX], ba[4096], bb[4096];
    snprintf(src, sizeof(src), "%s/copy-src", s_root);
    snprintf(dst, sizeof(dst), "%s/copy-dst", s_root);
    make_tree(src, 500);
    sl_job_options o = {.kind = SL_JOB_COPY, .src_url = src, .dst_url = dst, .jobs = 8};
    sl_job_stats st;
    ASSERT_INT_EQ(run_job(&o, &st), 0);
    ASSERT_UINT_EQ(st.objects_listed, 500);
    ASSERT_UINT_EQ(st.objects_done, 500);
    ASSERT_UINT_EQ(st.objects_failed, 0);
    ASSERT_UINT_EQ(st.bytes_read, st.bytes_written);
    for (int i = 0; i < 500; i += 37) {
        snprintf(a, sizeof(a), "%s/d%d/f%05d.txt", src, i % 10, i);
        snprintf(b, sizeof(b), "%s/d%d/f%05d.txt", dst, i % 10, i);
        size_t na = read_file(a, ba, sizeof(ba)), nb = read_file(b, bb, sizeof(bb));
        ASSERT_UINT_EQ(na, nb);
        ASSERT_MEM_EQ(ba, bb, na);
    }

    /* Same bytes everywhere: sync copies nothing. Then change one file keeping its size: exactly one copy. */
    o.kind = SL_JOB_SYNC;
    ASSERT_INT_EQ(run_job(&o, &st), 0);
    ASSERT_UINT_EQ(st.objects_skipped, 500);
    ASSERT_UINT_EQ(st.bytes_written, 0);
    snprintf(a, sizeof(a), "%s/d3/f00013.txt", src);
    size_t na = read_file(a, ba, sizeof(ba));
    ASSERT_TRUE(na > 0 && na != (size_t)-1);
    ba[0] = 'O';
    write_file(a, ba, na);
    ASSERT_INT_EQ(run_job(&o, &st), 0);
    ASSERT_UINT_EQ(st.objects_skipped, 499);
    ASSERT_UINT_EQ(st.bytes_written, na);
    snprintf(b, sizeof(b), "%s/d3/f00013.txt", dst);
    ASSERT_UINT_EQ(read_file(b, bb, sizeof(bb)), na);
    ASSERT_MEM_EQ(ba, bb, na);
}

static void test_ops_to_stdout_and_filters(void) {
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s/ops-src", s_root);
    make_tree(src, 300);
    collector c = {0};
    const char *include[] = {"d1/**", "d2/*"};
    const char *exclude[] = {"f0000?.txt"};
    sl_job_options o = {.kind = SL_JOB_OP,
                        .src_url = src,
                        .dst_url = "-",
                        .op_name = "md5",
                        .jobs = 6,
                        .include = include,
                        .include_count = 2,
                        .exclude = exclude,
                        .exclude_count = 1,
                        .on_result = on_result,
                        .on_failure = on_failure,
                        .user_data = &c};
    sl_job_stats st;
    ASSERT_INT_EQ(run_job(&o, &st), 0);
    /* d1 and d2 hold 30 files each; f00001 and f00002 are the excluded ones among them. */
    ASSERT_UINT_EQ(st.objects_listed, 58);
    ASSERT_INT_EQ(atomic_load(&c.lines), 58);
    ASSERT_INT_EQ(c.max_concurrent, 1);

    o.op_name = "no-such-op";
    ASSERT_INT_EQ(run_job(&o, &st), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "no-such-op") != NULL);
}

static void test_exec_failures_are_per_object(void) {
    char src[512], dst[512], path[PATH_MAX];
    snprintf(src, sizeof(src), "%s/exec-src", s_root);
    snprintf(dst, sizeof(dst), "%s/exec-dst", s_root);
    make_tree(src, 60);
    collector c = {0};
    sl_job_options o = {.kind = SL_JOB_EXEC,
                        .src_url = src,
                        .dst_url = dst,
                        .use_shell = true,
                        .command = "case \"$SLUICE_KEY\" in d4/*) echo broken >&2; exit 4;; *) cat;; esac",
                        .jobs = 4,
                        .on_failure = on_failure,
                        .on_result = on_result,
                        .user_data = &c};
    sl_job_stats st;
    ASSERT_INT_EQ(run_job(&o, &st), SL_EPARTIAL);
    ASSERT_UINT_EQ(st.objects_failed, 6);
    ASSERT_UINT_EQ(st.objects_done, 54);
    ASSERT_INT_EQ(atomic_load(&c.failures), 6);
    ASSERT_TRUE(strstr(c.last_failure, "status 4") != NULL);
    ASSERT_TRUE(strstr(c.last_failure, "broken") != NULL);
    snprintf(path, sizeof(path), "%s/d4/f00004.txt", dst);
    ASSERT_TRUE(access(path, F_OK) != 0);
    snprintf(path, sizeof(path), "%s/d5/f00005.txt", dst);
    ASSERT_TRUE(access(path, F_OK) == 0);

    const char *argv[] = {"sluice-no-such-command-xyz", NULL};
    sl_job_options bad = {.kind = SL_JOB_EXEC, .src_url = src, .dst_url = dst, .argv = argv};
    ASSERT_INT_EQ(run_job(&bad, &st), SL_ENOENT);
    ASSERT_TRUE(strstr(sl_last_error(), "command not found") != NULL);
}

static void *cancel_later(void *arg) {
    sl_job *job = arg;
    sl_job_stats st;
    do {
        usleep(10000);
        sl_job_stats_get(job, &st);
    } while (st.objects_done < 5);
    sl_job_cancel(job);
    return NULL;
}

static void test_cancel_stops_taking_work(void) {
    char src[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof(src), "%s/cancel-src", s_root);
    snprintf(dst, sizeof(dst), "%s/cancel-dst", s_root);
    make_tree(src, 200);
    const char *argv[] = {"sh", "-c", "sleep 0.05; cat", NULL};
    sl_job_options o = {.kind = SL_JOB_EXEC, .src_url = src, .dst_url = dst, .argv = argv, .jobs = 2};
    sl_job *job = NULL;
    ASSERT_INT_EQ(sl_job_new(&o, &job), 0);
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, job);
    ASSERT_INT_EQ(sl_job_run(job), SL_ECANCELED);
    pthread_join(t, NULL);
    sl_job_stats st;
    sl_job_stats_get(job, &st);
    ASSERT_TRUE(st.objects_done >= 5 && st.objects_done < 200);
    ASSERT_UINT_EQ(st.objects_failed, 0);
    sl_job_destroy(job);
}

static void *cancel_when_running(void *arg) {
    sl_job *job = arg;
    sl_job_stats st;
    do {
        usleep(10000);
        sl_job_stats_get(job, &st);
    } while (st.objects_listed < 10);
    usleep(300000); /* both workers are in their `sleep 30` */
    sl_job_cancel(job);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* In-flight objects that outlast the grace are abandoned: counted apart from failures, logged as SL_ECANCELED,
 * nothing committed; the run returns soon after the grace. */
static void test_grace_then_abort(void) {
    char src[PATH_MAX], dst[PATH_MAX], log[PATH_MAX], line[1024];
    snprintf(src, sizeof(src), "%s/grace-src", s_root);
    snprintf(dst, sizeof(dst), "%s/grace-dst", s_root);
    snprintf(log, sizeof(log), "%s/grace.jsonl", s_root);
    make_tree(src, 50);
    const char *argv[] = {"sleep", "30", NULL};
    collector c = {0};
    sl_job_options o = {.kind = SL_JOB_EXEC,
                        .src_url = src,
                        .dst_url = dst,
                        .argv = argv,
                        .jobs = 2,
                        .grace_ms = 300,
                        .failures_path = log,
                        .on_failure = on_failure,
                        .user_data = &c};
    sl_job *job = NULL;
    ASSERT_INT_EQ(sl_job_new(&o, &job), 0);
    pthread_t t;
    pthread_create(&t, NULL, cancel_when_running, job);
    double t0 = now_s();
    ASSERT_INT_EQ(sl_job_run(job), SL_ECANCELED);
    double took = now_s() - t0;
    pthread_join(t, NULL);
    ASSERT_TRUE(took < 5.0);
    ASSERT_TRUE(strstr(sl_last_error(), "2 abandoned when the 0.3 s grace ran out") != NULL);
    sl_job_stats st;
    sl_job_stats_get(job, &st);
    ASSERT_UINT_EQ(st.objects_done, 0);
    ASSERT_UINT_EQ(st.objects_failed, 0);
    ASSERT_UINT_EQ(st.objects_aborted, 2);
    ASSERT_UINT_EQ(st.objects_not_started, st.objects_listed - 2);
    ASSERT_INT_EQ(atomic_load(&c.failures), 0); /* abandoned objects are not failures of their own */
    FILE *f = fopen(log, "r");
    ASSERT_TRUE(f != NULL);
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
        ASSERT_TRUE(strstr(line, "\"code\":\"SL_ECANCELED\",\"attempts\":1}") != NULL);
        lines++;
    }
    fclose(f);
    ASSERT_INT_EQ(lines, 2);
    /* No file at all under dst: neither an output under its final name nor a temp file. */
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "find '%s' -type f 2>/dev/null | wc -l", dst);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    int files = -1;
    ASSERT_INT_EQ(fscanf(p, "%d", &files), 1);
    pclose(p);
    ASSERT_INT_EQ(files, 0);
    sl_job_destroy(job);

    /* sl_job_abort before the run: nothing is started at all. */
    ASSERT_INT_EQ(sl_job_new(&o, &job), 0);
    sl_job_interrupt(job, SIGTERM);
    sl_job_abort(job);
    ASSERT_INT_EQ(sl_job_run(job), SL_ECANCELED);
    ASSERT_TRUE(strstr(sl_last_error(), "interrupted by SIGTERM: 0 objects done") != NULL);
    sl_job_stats_get(job, &st);
    ASSERT_UINT_EQ(st.objects_done + st.objects_aborted, 0);
    sl_job_destroy(job);
}

/* A failure log written by one job, fed to the next: exactly the failed keys are processed again. */
static void test_retry_failed_in_process(void) {
    char src[512], dst[512], log[PATH_MAX], log2[PATH_MAX], path[PATH_MAX];
    snprintf(src, sizeof(src), "%s/retry-src", s_root);
    snprintf(dst, sizeof(dst), "%s/retry-dst", s_root);
    snprintf(log, sizeof(log), "%s/retry1.jsonl", s_root);
    snprintf(log2, sizeof(log2), "%s/retry2.jsonl", s_root);
    make_tree(src, 40);
    /* Fails for the keys under d3/ while the marker file exists. */
    char script[PATH_MAX + 128];
    snprintf(path, sizeof(path), "%s/retry-broken", s_root);
    write_file(path, "", 0);
    snprintf(script, sizeof(script), "case \"$SLUICE_KEY\" in d3/*) [ -e '%s' ] && exit 9;; esac; cat", path);
    const char *argv[] = {"sh", "-c", script, NULL};
    sl_job_options o = {
        .kind = SL_JOB_EXEC, .src_url = src, .dst_url = dst, .argv = argv, .jobs = 4, .failures_path = log};
    sl_job_stats st;
    ASSERT_INT_EQ(run_job(&o, &st), SL_EPARTIAL);
    ASSERT_UINT_EQ(st.objects_failed, 4);
    unlink(path);
    o.retry_failed_path = log;
    o.failures_path = log2;
    ASSERT_INT_EQ(run_job(&o, &st), 0);
    ASSERT_UINT_EQ(st.objects_listed, 4);
    ASSERT_UINT_EQ(st.objects_done, 4);
    ASSERT_TRUE(st.listing_done);
    char got[512], want[512];
    for (int i = 3; i < 40; i += 10) {
        snprintf(path, sizeof(path), "%s/d3/f%05d.txt", dst, i);
        size_t n = read_file(path, got, sizeof(got));
        snprintf(path, sizeof(path), "%s/d3/f%05d.txt", src, i);
        ASSERT_UINT_EQ(n, read_file(path, want, sizeof(want)));
        ASSERT_MEM_EQ(got, want, n);
    }
    /* The same file as the new failure log would be truncated before it is read. */
    o.failures_path = log;
    sl_job *job = NULL;
    ASSERT_INT_EQ(sl_job_new(&o, &job), SL_EINVAL);
    ASSERT_TRUE(job == NULL);
}

/* Runs o to completion and reads its report's "budget": the bytes one worker needs, the most counted at once. */
static int run_job_budget(sl_job_options *o, sl_job_stats *st, unsigned long long *per_worker,
                          unsigned long long *peak) {
    char report[PATH_MAX], buf[8192];
    snprintf(report, sizeof(report), "%s/budget-report.json", s_root);
    sl_job *job = NULL;
    int rc = sl_job_new(o, &job);
    if (rc < 0)
        return rc;
    rc = sl_job_run(job);
    sl_job_stats_get(job, st);
    ASSERT_INT_EQ(sl_job_write_report(job, report), 0);
    sl_job_destroy(job);
    size_t n = read_file(report, buf, sizeof(buf) - 1);
    ASSERT_TRUE(n != (size_t)-1 && n > 0);
    buf[n] = '\0';
    const char *b = strstr(buf, "\"budget\": {\"limit_bytes\": ");
    ASSERT_TRUE(b != NULL);
    unsigned long long limit = 0;
    ASSERT_INT_EQ(sscanf(b, "\"budget\": {\"limit_bytes\": %llu, \"per_worker_bytes\": %llu, \"peak_bytes\": %llu}",
                         &limit, per_worker, peak),
                  3);
    ASSERT_UINT_EQ(limit, o->memory_limit_bytes);
    return rc;
}

static void test_memory_limit_bounds_workers(void) {
    char src[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof(src), "%s/ops-src", s_root);
    snprintf(dst, sizeof(dst), "%s/mem-dst", s_root);
    /* Every worker needs its own state, its clients and a transfer buffer out of the budget: as many workers as fit,
     * whatever -j asks for, and never more counted than the budget. */
    sl_job_options o = {.kind = SL_JOB_COPY,
                        .src_url = src,
                        .dst_url = dst,
                        .jobs = 32,
                        .memory_limit_bytes = 4u << 20,
                        .buffer_size_bytes = 65536};
    sl_job_stats st;
    unsigned long long per_worker = 0, peak = 0;
    ASSERT_INT_EQ(run_job_budget(&o, &st, &per_worker, &peak), 0);
    ASSERT_UINT_EQ(st.objects_done, 300);
    ASSERT_TRUE(per_worker > 65536);
    ASSERT_UINT_EQ(st.workers, (4u << 20) / per_worker);
    ASSERT_TRUE(st.workers >= 2 && st.workers < 32);
    ASSERT_TRUE(peak <= 4u << 20);
    unsigned four = st.workers;
    o.memory_limit_bytes = 8u << 20;
    ASSERT_INT_EQ(run_job_budget(&o, &st, &per_worker, &peak), 0);
    ASSERT_UINT_EQ(st.workers, (8u << 20) / per_worker);
    ASSERT_TRUE(st.workers >= 2 * four);

    /* Less than one worker with a whole buffer: one worker, with a smaller buffer. */
    o.memory_limit_bytes = per_worker - 32768;
    ASSERT_INT_EQ(run_job_budget(&o, &st, &per_worker, &peak), 0);
    ASSERT_UINT_EQ(st.workers, 1);
    ASSERT_UINT_EQ(st.objects_done, 300);
    ASSERT_TRUE(per_worker <= o.memory_limit_bytes);

    /* Less than one worker needs at all: refused, saying how much would do. */
    o.memory_limit_bytes = 1000;
    ASSERT_INT_EQ(run_job(&o, &st), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "less than one worker needs") != NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "give at least ") != NULL);
}

static void test_bad_sources_and_destinations(void) {
    char src[PATH_MAX], inside[PATH_MAX];
    snprintf(src, sizeof(src), "%s/ops-src", s_root);
    snprintf(inside, sizeof(inside), "%s/ops-src/d1/out", s_root);
    sl_job_stats st;
    sl_job_options o = {.kind = SL_JOB_COPY, .src_url = src, .dst_url = inside};
    ASSERT_INT_EQ(run_job(&o, &st), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "inside the source") != NULL);
    o.src_url = "/nonexistent/sluice/source";
    o.dst_url = "/tmp/sluice-unused";
    sl_job *job = NULL;
    int rc = sl_job_new(&o, &job);
    if (rc == 0) {
        rc = sl_job_run(job);
        sl_job_destroy(job);
    }
    ASSERT_INT_EQ(rc, SL_ENOENT);
    o.src_url = "s3://b/prefix"; /* a bucket name S3 refuses (shorter than 3) */
    ASSERT_INT_EQ(run_job(&o, &st), SL_EBADURL);
    o.src_url = src;
    o.dst_url = "-";
    ASSERT_INT_EQ(run_job(&o, &st), SL_EINVAL);

    /* What no object could get past is refused by sl_job_new, before anything runs: a destination that is a symbolic
     * link to nothing (or under one), a command that is a directory or not executable. */
    char link[PATH_MAX], under[PATH_MAX], target[PATH_MAX], plain[PATH_MAX];
    snprintf(link, sizeof(link), "%s/dangling-dst", s_root);
    snprintf(target, sizeof(target), "%s/dangling-target", s_root);
    snprintf(under, sizeof(under), "%s/dangling-dst/sub", s_root);
    ASSERT_INT_EQ(symlink(target, link), 0);
    const char *dsts[] = {link, under};
    for (size_t i = 0; i < 2; i++) {
        o.dst_url = dsts[i];
        job = NULL;
        ASSERT_INT_EQ(sl_job_new(&o, &job), SL_ENOENT);
        ASSERT_TRUE(job == NULL);
        ASSERT_TRUE(strstr(sl_last_error(), "is a symbolic link to") != NULL);
        ASSERT_TRUE(strstr(sl_last_error(), "which does not exist") != NULL);
        ASSERT_TRUE(access(target, F_OK) != 0);
    }
    snprintf(plain, sizeof(plain), "%s/not-executable", s_root);
    write_file(plain, "#!/bin/sh\n", 10);
    chmod(plain, 0644);
    const char *dir_argv[] = {s_root, NULL}, *plain_argv[] = {plain, NULL};
    sl_job_options x = {.kind = SL_JOB_EXEC, .src_url = src, .dst_url = "-", .argv = dir_argv};
    job = NULL;
    ASSERT_INT_EQ(sl_job_new(&x, &job), SL_EISDIR);
    ASSERT_TRUE(strstr(sl_last_error(), "it is a directory, not a command") != NULL);
    x.argv = plain_argv;
    ASSERT_INT_EQ(sl_job_new(&x, &job), SL_EACCES);
    ASSERT_TRUE(strstr(sl_last_error(), "not an executable file") != NULL);
    ASSERT_TRUE(job == NULL);
}

static void put_text(const char *dir, const char *name, const char *text) {
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    write_file(path, text, strlen(text));
}

static void test_memory_timeline_chart_report(void) {
    char src[PATH_MAX], csv[PATH_MAX], svg[PATH_MAX], report[PATH_MAX], buf[65536];
    snprintf(src, sizeof(src), "%s/ops-src", s_root);
    snprintf(csv, sizeof(csv), "%s/mem.csv", s_root);
    snprintf(svg, sizeof(svg), "%s/mem.svg", s_root);
    snprintf(report, sizeof(report), "%s/mem.json", s_root);
    collector c = {0};
    const char *argv[] = {"sh", "-c", "sleep 0.002; cat", NULL};
    sl_job_options o = {.kind = SL_JOB_EXEC,
                        .src_url = src,
                        .dst_url = "-",
                        .argv = argv,
                        .jobs = 4,
                        .mem_interval_ms = 20,
                        .timeline_path = csv,
                        .chart_path = svg,
                        .on_result = on_result,
                        .on_failure = on_failure,
                        .user_data = &c};
    sl_job *job = NULL;
    ASSERT_INT_EQ(sl_job_new(&o, &job), 0);
    sl_mem_verdict v;
    ASSERT_INT_EQ(sl_job_mem_verdict(job, &v), SL_EINVAL);
    ASSERT_INT_EQ(v.trend, SL_MEM_UNKNOWN);
    ASSERT_INT_EQ(sl_job_run(job), 0);
    ASSERT_INT_EQ(atomic_load(&c.lines), 300);
    ASSERT_INT_EQ(sl_job_mem_verdict(job, &v), 0);
    ASSERT_TRUE(v.text[0] != '\0');
    ASSERT_INT_EQ(sl_job_write_report(job, report), 0);
    sl_job_destroy(job);

    /* The timeline: the header, then one line per sample (the first and the last at least). */
    size_t n = read_file(csv, buf, sizeof(buf) - 1);
    ASSERT_TRUE(n != (size_t)-1 && n > 0);
    buf[n] = '\0';
    const char *header = "t_s,rss_bytes,objects,bytes,cgroup_usage_bytes,cgroup_limit_bytes\n";
    ASSERT_MEM_EQ(buf, header, strlen(header));
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    ASSERT_TRUE(lines >= 3);
    /* The last sample is taken after the workers stopped: it counts every object. */
    char *last = buf + n - 1;
    while (last > buf && last[-1] != '\n')
        last--;
    unsigned long long objects = 0;
    ASSERT_INT_EQ(sscanf(last, "%*[^,],%*[^,],%llu", &objects), 1);
    ASSERT_UINT_EQ(objects, 300);

    n = read_file(svg, buf, sizeof(buf) - 1);
    ASSERT_TRUE(n != (size_t)-1 && n > 0);
    buf[n] = '\0';
    ASSERT_TRUE(strstr(buf, "<svg") != NULL);
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        char cmd[PATH_MAX + 64];
        snprintf(cmd, sizeof(cmd), "xmllint --noout '%s'", svg);
        ASSERT_INT_EQ(system(cmd), 0);
    } else {
        printf("  (xmllint not installed: the chart's well-formedness is not checked)\n");
    }

    n = read_file(report, buf, sizeof(buf) - 1);
    ASSERT_TRUE(n != (size_t)-1 && n > 0);
    buf[n] = '\0';
    const char *mem = strstr(buf, "\"memory\": {\"verdict\": \"");
    ASSERT_TRUE(mem != NULL);
    ASSERT_TRUE(strstr(mem, "\"trend\": \"flat\"") || strstr(mem, "\"trend\": \"growing\"") ||
                strstr(mem, "\"trend\": \"unknown\""));
    ASSERT_TRUE(strstr(mem, "\"samples\": ") && strstr(mem, "\"peak_rss_bytes\": ") &&
                strstr(mem, "\"bytes_per_object\": ") && strstr(mem, "\"limit_bytes\": "));

    /* A timeline (or any output file) that cannot be written is refused before anything is done. */
    snprintf(csv, sizeof(csv), "%s/no-such-dir/mem.csv", s_root);
    o.chart_path = NULL;
    ASSERT_INT_EQ(sl_job_new(&o, &job), SL_ENOENT);
    ASSERT_TRUE(job == NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "cannot write the timeline ") != NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "no-such-dir") != NULL);
    o.timeline_path = NULL;
    o.report_path = csv;
    ASSERT_INT_EQ(sl_job_new(&o, &job), SL_ENOENT);
    ASSERT_TRUE(strstr(sl_last_error(), "cannot write the report ") != NULL);
    o.report_path = s_root;
    ASSERT_INT_EQ(sl_job_new(&o, &job), SL_EISDIR);
}

typedef struct warnings {
    atomic_int count;
    char message[512];
} warnings;

static void on_warning(void *ud, const char *message) {
    warnings *w = ud;
    snprintf(w->message, sizeof(w->message), "%s", message);
    atomic_fetch_add(&w->count, 1);
}

/* A fake cgroup v2 tree (SLUICE_CGROUP_ROOT) and a fake /proc/self/cgroup (SLUICE_PROC_CGROUP) put the job in a
 * container whose usage is already past 80 % of its limit: one warning, half the workers, every object still done. */
static void test_memory_guard_with_fake_cgroup(void) {
    char cg[PATH_MAX], proc[PATH_MAX], src[PATH_MAX], dst[PATH_MAX];
    snprintf(cg, sizeof(cg), "%s/fake-cgroup", s_root);
    snprintf(proc, sizeof(proc), "%s/fake-proc-cgroup", s_root);
    snprintf(src, sizeof(src), "%s/ops-src", s_root);
    snprintf(dst, sizeof(dst), "%s/guard-dst", s_root);
    put_text(cg, "pod/ctr/memory.max", "67108864\n");     /* 64 MiB */
    put_text(cg, "pod/ctr/memory.current", "62914560\n"); /* 60 MiB: 94 % */
    put_text(s_root, "fake-proc-cgroup", "0::/pod/ctr\n");
    ASSERT_INT_EQ(setenv("SLUICE_CGROUP_ROOT", cg, 1), 0);
    ASSERT_INT_EQ(setenv("SLUICE_PROC_CGROUP", proc, 1), 0);

    warnings w = {0};
    const char *argv[] = {"sh", "-c", "sleep 0.005; cat", NULL};
    sl_job_options o = {.kind = SL_JOB_EXEC,
                        .src_url = src,
                        .dst_url = dst,
                        .argv = argv,
                        .jobs = 8,
                        .mem_interval_ms = 20,
                        .on_warning = on_warning,
                        .user_data = &w};
    sl_job *job = NULL;
    ASSERT_INT_EQ(sl_job_new(&o, &job), 0);
    ASSERT_INT_EQ(sl_job_run(job), 0);
    sl_job_stats st;
    sl_job_stats_get(job, &st);
    ASSERT_UINT_EQ(st.objects_done, 300);
    ASSERT_UINT_EQ(st.objects_failed, 0);
    /* 64 MiB / 4 = 16 MiB: the default budget feeds all 8 workers. */
    ASSERT_UINT_EQ(st.workers, 8);
    ASSERT_INT_EQ(atomic_load(&w.count), 1);
    ASSERT_TRUE(strstr(w.message, "memory at 94% of the 64.0 MiB limit: 60.0 MiB of cgroup memory that is not page "
                                  "cache (") == w.message);
    ASSERT_TRUE(strstr(w.message, "); lowering workers from 8 to 4") != NULL);
    ASSERT_TRUE(strchr(w.message, '\n') == NULL);
    sl_mem_verdict v;
    ASSERT_INT_EQ(sl_job_mem_verdict(job, &v), 0);
    ASSERT_UINT_EQ(v.limit_bytes, 67108864);
    sl_job_destroy(job);

    /* A 1 MiB container: the default budget, a quarter of it, is less than one worker needs, so it is raised to that:
     * one worker; the guard cannot go lower and says so. */
    put_text(cg, "pod/ctr/memory.max", "1048576\n");
    put_text(cg, "pod/ctr/memory.current", "1000000\n");
    atomic_store(&w.count, 0);
    snprintf(dst, sizeof(dst), "%s/guard-dst-small", s_root);
    o.dst_url = dst;
    ASSERT_INT_EQ(sl_job_new(&o, &job), 0);
    ASSERT_INT_EQ(sl_job_run(job), 0);
    sl_job_stats_get(job, &st);
    ASSERT_UINT_EQ(st.objects_done, 300);
    ASSERT_UINT_EQ(st.workers, 1);
    /* Two warnings: -j 8 lowered to 1 by the budget (said as the run starts), then the guard's. */
    ASSERT_INT_EQ(atomic_load(&w.count), 2);
    ASSERT_TRUE(strstr(w.message, "workers already at 1") != NULL);
    sl_job_destroy(job);

    /* No limit in the cgroup: no warning. */
    put_text(cg, "pod/ctr/memory.max", "max\n");
    atomic_store(&w.count, 0);
    snprintf(dst, sizeof(dst), "%s/guard-dst-nolimit", s_root);
    o.dst_url = dst;
    o.argv = NULL;
    o.kind = SL_JOB_COPY;
    ASSERT_INT_EQ(sl_job_new(&o, &job), 0);
    ASSERT_INT_EQ(sl_job_run(job), 0);
    ASSERT_INT_EQ(atomic_load(&w.count), 0);
    sl_job_destroy(job);

    unsetenv("SLUICE_CGROUP_ROOT");
    unsetenv("SLUICE_PROC_CGROUP");
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(s_root, sizeof(s_root), "%s/sluice-test-job-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ASSERT_TRUE(mkdtemp(s_root) != NULL);
    RUN_TEST(test_copy_then_sync);
    RUN_TEST(test_ops_to_stdout_and_filters);
    RUN_TEST(test_exec_failures_are_per_object);
    RUN_TEST(test_cancel_stops_taking_work);
    RUN_TEST(test_grace_then_abort);
    RUN_TEST(test_retry_failed_in_process);
    RUN_TEST(test_memory_limit_bounds_workers);
    RUN_TEST(test_bad_sources_and_destinations);
    RUN_TEST(test_memory_timeline_chart_report);
    RUN_TEST(test_memory_guard_with_fake_cgroup);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_root);
    ASSERT_INT_EQ(system(cmd), 0);
    TEST_DONE();
}
