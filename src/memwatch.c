/* Memory watch: the fixed-size timeline, the verdict on its trend, and the sampler thread that feeds it. */
#include "fail.h"
#include "memfit.h"

#include "sluice/job.h"
#include "sluice/memwatch.h"
#include "sluice/outfile.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- timeline ---- */

/* The timeline keeps at most `capacity` slots, each standing for `stride` consecutive raw samples. When the slots are
 * full, neighbouring pairs are merged and the stride doubles; raw samples are then gathered `stride` at a time into
 * `pending` before taking a slot, so slots stay evenly spaced in time. The pending group is shown as the last sample so
 * the newest reading is never hidden. */
struct sl_timeline {
    size_t capacity; /* even, >= 4 */
    size_t count;    /* complete slots */
    uint64_t stride;
    uint64_t pending_n; /* raw samples gathered in pending, < stride */
    uint64_t peak_rss;
    sl_mem_sample pending;
    sl_mem_sample samples[];
};

/* A merged sample stands for the later one, but keeps the higher RSS: a peak must never be averaged away. */
static void s_merge(sl_mem_sample *into, const sl_mem_sample *later) {
    uint64_t rss = into->rss_bytes > later->rss_bytes ? into->rss_bytes : later->rss_bytes;
    *into = *later;
    into->rss_bytes = rss;
}

sl_timeline *sl_timeline_new(size_t capacity) {
    if (capacity == 0)
        capacity = SL_TIMELINE_DEFAULT_CAPACITY;
    if (capacity < 4)
        capacity = 4;
    capacity += capacity % 2;
    if (capacity > (SIZE_MAX - sizeof(sl_timeline)) / sizeof(sl_mem_sample))
        return NULL;
    sl_timeline *tl = calloc(1, sizeof(*tl) + capacity * sizeof(sl_mem_sample));
    if (!tl)
        return NULL;
    tl->capacity = capacity;
    tl->stride = 1;
    return tl;
}

void sl_timeline_add(sl_timeline *tl, const sl_mem_sample *s) {
    if (s->rss_bytes > tl->peak_rss)
        tl->peak_rss = s->rss_bytes;
    if (tl->pending_n == 0)
        tl->pending = *s;
    else
        s_merge(&tl->pending, s);
    if (++tl->pending_n < tl->stride)
        return;
    if (tl->count == tl->capacity) {
        for (size_t i = 0; i < tl->capacity / 2; i++) {
            tl->samples[i] = tl->samples[2 * i];
            s_merge(&tl->samples[i], &tl->samples[2 * i + 1]);
        }
        tl->count = tl->capacity / 2;
        tl->stride *= 2;
        if (tl->pending_n < tl->stride)
            return; /* the group now needs as many raw samples as a merged slot holds */
    }
    tl->samples[tl->count++] = tl->pending;
    tl->pending_n = 0;
}

size_t sl_timeline_count(const sl_timeline *tl) {
    return tl->count + (tl->pending_n > 0);
}

const sl_mem_sample *sl_timeline_get(const sl_timeline *tl, size_t i) {
    if (i < tl->count)
        return &tl->samples[i];
    if (i == tl->count && tl->pending_n > 0)
        return &tl->pending;
    return NULL;
}

uint64_t sl_timeline_peak_rss(const sl_timeline *tl) {
    return tl->peak_rss;
}

size_t sl_timeline_memory_bytes(const sl_timeline *tl) {
    return sizeof(*tl) + tl->capacity * sizeof(sl_mem_sample);
}

void sl_timeline_destroy(sl_timeline *tl) {
    free(tl);
}

/* ---- verdict ----
 *
 * After the warm-up (the first 20 % of the samples, at least one: allocator arenas, buffer pools and caches reach
 * their working size there) RSS is fitted against time, and against objects done when objects were counted, with
 * Theil-Sen. The memory is "growing" when a fit passes tests 1 and 2 and the curve passes test 3:
 *
 *   1. Size: the fitted growth over the fitted span (slope x span) exceeds max(4 MiB, 10 % of the fitted RSS at the
 *      start of the span). 4 MiB is above what allocators move on their own (glibc grows and trims its heap in
 *      128 KiB-32 MiB steps, but those are steps, not trends; thread stacks and stdio buffers are KiB); 10 % keeps a
 *      2 GiB process from being called leaking over a few MiB of fragmentation. A real leak clears both sooner or
 *      later: its slope x span grows with the run while the thresholds do not.
 *   2. Persistence: the Theil-Sen slope of the second half of the span is positive and at least a third of the whole
 *      span's slope. A steady leak has equal halves (ratio 1; half-window estimates rarely stray by 3x); a cache
 *      that fills up and stops has a flat second half (ratio ~0).
 *   3. Spread: cut the span into 8 equal parts (fewer when there are fewer samples) and take the lower median RSS of
 *      each; no two neighbouring gaps between parts (a quarter of the span) hold more than 60 % of the rise from the
 *      first part to the last. A steady leak puts 2/7 (29 %) of its rise in any two gaps; one large allocation puts
 *      ~100 % of it there, even when its pages are touched over several samples.
 *
 * Test 3 is there because Theil-Sen alone does not make a single step flat. Pairs straddling a step at fraction p of
 * the span are a fraction 2p(1-p) of all pairs, every one with a positive slope; without noise the median ignores them
 * unless p is near 1/2, but with noise half of the other pairs are slightly positive too, so the median is pulled up
 * for a wide band of p around 1/2, and in both halves (the unit tests try a step at every position). Two steps of
 * similar size (50 % each) still count as growing: something that grew twice within the window is not known to have
 * stopped. The price: a slow leak next to a much larger one-off step after the warm-up reads flat until the leak's own
 * rise is comparable to the step (about two thirds of it); since the leak keeps rising and the step does not, it shows
 * later in the same run. */

#define S_MIN_SAMPLES 5
#define S_GROWTH_FLOOR_BYTES (4.0 * 1024 * 1024)
#define S_GROWTH_FRACTION 0.10
#define S_SECOND_HALF_RATIO (1.0 / 3.0)
#define S_SPREAD_PARTS 8
#define S_SPREAD_WINDOW 2 /* gaps */
#define S_SPREAD_MAX_SHARE 0.60

/* Fits y against x on n points (x need not be distinct); *growing tells whether tests 1 and 2 pass. */
static bool s_fit(const double *x, const double *y, size_t n, double *scratch, double *slope, double *intercept,
                  bool *growing) {
    *growing = false;
    if (!sl__theil_sen(x, y, n, scratch, slope, intercept))
        return false;
    double x_min = x[0], x_max = x[0];
    for (size_t i = 1; i < n; i++) {
        x_min = x[i] < x_min ? x[i] : x_min;
        x_max = x[i] > x_max ? x[i] : x_max;
    }
    double start = *intercept + *slope * x_min;
    double threshold = S_GROWTH_FRACTION * (start > 0 ? start : 0);
    if (threshold < S_GROWTH_FLOOR_BYTES)
        threshold = S_GROWTH_FLOOR_BYTES;
    if (!(*slope > 0) || *slope * (x_max - x_min) <= threshold)
        return true;
    size_t half = n / 2, rest = n - half;
    double s2, i2;
    if (rest >= 3 && sl__theil_sen(x + half, y + half, rest, scratch, &s2, &i2))
        *growing = s2 > 0 && s2 >= S_SECOND_HALF_RATIO * *slope;
    return true;
}

/* Test 3 on y[0..n), n >= 3. */
static bool s_spread(const double *y, size_t n, double *scratch) {
    double level[S_SPREAD_PARTS];
    size_t parts = n < S_SPREAD_PARTS ? n : S_SPREAD_PARTS;
    for (size_t k = 0; k < parts; k++) {
        size_t from = k * n / parts, to = (k + 1) * n / parts;
        memcpy(scratch, y + from, (to - from) * sizeof(double));
        /* The lower median, never the mean of two middles: a part straddling a step takes one side's level. */
        level[k] = sl__select(scratch, to - from, (to - from - 1) / 2);
    }
    double rise = level[parts - 1] - level[0], largest = 0;
    for (size_t k = 0; k + 1 < parts; k++) {
        size_t end = k + S_SPREAD_WINDOW < parts ? k + S_SPREAD_WINDOW : parts - 1;
        largest = level[end] - level[k] > largest ? level[end] - level[k] : largest;
    }
    return rise > 0 && largest <= S_SPREAD_MAX_SHARE * rise;
}

/* Appends to out->text, truncating (never overrunning) when it is full. */
__attribute__((format(printf, 2, 3))) static void s_append(sl_mem_verdict *out, const char *fmt, ...) {
    size_t len = strlen(out->text);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->text + len, sizeof(out->text) - len, fmt, ap);
    va_end(ap);
}

void sl_mem_judge(const sl_timeline *tl, uint64_t limit_bytes, sl_mem_verdict *out) {
    memset(out, 0, sizeof(*out));
    out->trend = SL_MEM_UNKNOWN;
    out->limit_at_object = -1;
    out->limit_in_s = -1;
    size_t n = tl ? sl_timeline_count(tl) : 0;
    uint64_t cg_limit = 0, cg_usage_last = 0;
    for (size_t i = n; i-- > 0 && !cg_limit;)
        cg_limit = sl_timeline_get(tl, i)->cg_limit_bytes;
    if (n > 0) {
        /* What the kernel cannot reclaim is what runs into the limit; page cache makes way. */
        const sl_mem_sample *last = sl_timeline_get(tl, n - 1);
        cg_usage_last = last->cg_unreclaimable_bytes ? last->cg_unreclaimable_bytes : last->cg_usage_bytes;
    }
    out->limit_bytes = limit_bytes ? limit_bytes : cg_limit;

    size_t skip = sl__mem_warmup(n);
    size_t used = n > skip ? n - skip : 0;
    out->samples_used = used;
    if (used < S_MIN_SAMPLES) {
        snprintf(out->text, sizeof(out->text), "unknown: too few samples (%zu after the warm-up, need %d)", used,
                 S_MIN_SAMPLES);
        return;
    }
    size_t scratch_n = used > SL__FIT_MAX_PAIRS ? used : SL__FIT_MAX_PAIRS;
    double *t = malloc(used * sizeof(double)), *objects = malloc(used * sizeof(double));
    double *rss = malloc(used * sizeof(double)), *scratch = malloc(scratch_n * sizeof(double));
    if (!t || !objects || !rss || !scratch) {
        snprintf(out->text, sizeof(out->text), "unknown: out of memory");
        goto done;
    }
    for (size_t i = 0; i < used; i++) {
        const sl_mem_sample *s = sl_timeline_get(tl, skip + i);
        t[i] = s->t_s;
        objects[i] = (double)s->objects;
        rss[i] = (double)s->rss_bytes;
    }

    double bt = 0, at = 0, bo = 0, ao = 0;
    bool grows_t = false, grows_o = false;
    if (!s_fit(t, rss, used, scratch, &bt, &at, &grows_t)) {
        snprintf(out->text, sizeof(out->text), "unknown: all samples at the same time");
        goto done;
    }
    const bool has_objects = objects[used - 1] > objects[0];
    if (has_objects && !s_fit(objects, rss, used, scratch, &bo, &ao, &grows_o))
        bo = 0;
    out->bytes_per_second = bt;
    out->bytes_per_object = has_objects ? bo : 0;
    out->trend = (grows_t || grows_o) && s_spread(rss, used, scratch) ? SL_MEM_GROWING : SL_MEM_FLAT;
    if (out->trend == SL_MEM_FLAT) {
        snprintf(out->text, sizeof(out->text), "flat");
        goto done;
    }

    /* Headroom left: against the cgroup's own memory when judging the cgroup's limit (what the kernel cannot reclaim
     * is what reaches it), else against the fitted RSS now (robust to a noisy last sample). */
    const double t_last = t[used - 1], obj_last = objects[used - 1];
    const uint64_t limit = out->limit_bytes;
    bool reached = false;
    if (limit) {
        double now = (limit_bytes == 0 && cg_usage_last) ? (double)cg_usage_last : at + bt * t_last;
        double headroom = (double)limit - now;
        if (headroom <= 0) {
            reached = true;
            out->limit_in_s = 0;
            out->limit_at_object = has_objects ? obj_last : -1;
        } else {
            if (bt > 0)
                out->limit_in_s = headroom / bt;
            if (has_objects && bo > 0) {
                /* The first whole object past the limit (a hair of rounding error is not one more object). */
                double at_object = obj_last + headroom / bo;
                double whole = (double)(unsigned long long)at_object;
                out->limit_at_object = at_object - whole > 1e-6 ? whole + 1 : whole;
            }
        }
    }

    char per_object[32], per_min[32], when[48];
    sl__fmt_bytes(bt * 60, per_min, sizeof(per_min));
    s_append(out, "growing: ");
    if (has_objects && bo > 0)
        s_append(out, "+%s per object (%s%s/min)", sl__fmt_bytes(bo, per_object, sizeof(per_object)),
                 bt >= 0 ? "+" : "", per_min);
    else
        s_append(out, "%s%s/min", bt >= 0 ? "+" : "", per_min);
    if (reached) {
        s_append(out, ", limit already reached");
    } else if (limit && (out->limit_in_s > 0 || out->limit_at_object > 0)) {
        s_append(out, ", limit reached");
        if (out->limit_at_object > 0)
            s_append(out, " at object %.0f", out->limit_at_object);
        if (out->limit_in_s > 0)
            s_append(out, "%s in %s", out->limit_at_object > 0 ? " /" : "",
                     sl__fmt_duration(out->limit_in_s, when, sizeof(when)));
    }
done:
    free(t);
    free(objects);
    free(rss);
    free(scratch);
}

/* ---- sampler thread ---- */

struct sl_memwatch {
    sl_memwatch_options opts; /* the path strings are not kept; they are only used by start */
    double warn_fraction;
    unsigned interval_ms;
    struct timespec started;
    sl_cgroup cg;
    /* Owned by the sampler thread while it runs, then by whoever called stop. */
    sl_outfile *csv;
    bool warned;
    pthread_t thread;
    bool thread_running;
    struct {
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool go;          /* the first sample is taken: the thread may start its clock */
        bool stop;        /* asks the thread to finish */
        bool stop_called; /* stop has run (or is running) */
        sl_timeline *tl;
        sl_mem_sample last;
        int csv_err; /* the timeline file's first write error, 0 if none */
        char csv_message[SL__MESSAGE_CAP];
    } synced;
};

static double s_elapsed_s(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void s_csv_failed(sl_memwatch *mw, int rc, const char *message) {
    pthread_mutex_lock(&mw->synced.lock);
    if (!mw->synced.csv_err) {
        mw->synced.csv_err = rc;
        sl__text_cut(mw->synced.csv_message, sizeof(mw->synced.csv_message), message, strlen(message));
    }
    pthread_mutex_unlock(&mw->synced.lock);
}

static void s_write_csv(sl_memwatch *mw, const sl_mem_sample *s) {
    if (!mw->csv)
        return;
    /* Integer formatting: a caller's setlocale() must not turn the decimal point into a comma. */
    unsigned long long ms = (unsigned long long)(s->t_s * 1000 + 0.5);
    fprintf(sl_outfile_stream(mw->csv), "%llu.%03llu,%llu,%llu,%llu,%llu,%llu\n", ms / 1000, ms % 1000,
            (unsigned long long)s->rss_bytes, (unsigned long long)s->objects, (unsigned long long)s->bytes,
            (unsigned long long)s->cg_usage_bytes, (unsigned long long)s->cg_limit_bytes);
    int rc = sl_outfile_flush(mw->csv);
    if (rc < 0) {
        /* The sampling goes on (the verdict needs it); the file ends here, and whoever watches is told. */
        s_csv_failed(mw, rc, sl_last_error());
        sl_outfile_discard(mw->csv);
        mw->csv = NULL;
    }
}

static void s_check_warn(sl_memwatch *mw, const sl_mem_sample *s) {
    if (mw->warned || !mw->opts.on_warn)
        return;
    /* A limit given by the caller budgets what is watched (its RSS); the cgroup's limit is checked against the
     * cgroup's usage, which is what the kernel compares. Whichever is passed first warns. */
    /* Against the cgroup's limit, what counts is what the kernel cannot reclaim: a cgroup whose usage is page cache
     * (the files a job just wrote or read) is not close to an OOM kill. */
    uint64_t limit = 0, cg_used = s->cg_unreclaimable_bytes ? s->cg_unreclaimable_bytes : s->rss_bytes;
    if (mw->opts.limit_bytes && (double)s->rss_bytes >= mw->warn_fraction * (double)mw->opts.limit_bytes)
        limit = mw->opts.limit_bytes;
    else if (s->cg_limit_bytes && (double)cg_used >= mw->warn_fraction * (double)s->cg_limit_bytes)
        limit = s->cg_limit_bytes;
    if (!limit)
        return;
    mw->warned = true;
    sl_mem_verdict v;
    pthread_mutex_lock(&mw->synced.lock);
    sl_mem_judge(mw->synced.tl, limit, &v);
    pthread_mutex_unlock(&mw->synced.lock);
    mw->opts.on_warn(mw->opts.user_data, s, limit, &v);
}

/* check_warn is false on the threads that are not the sampler: the warning comes from the sampler thread only. */
static void s_sample(sl_memwatch *mw, bool check_warn) {
    sl_mem_sample s = {0};
    s.t_s = s_elapsed_s(&mw->started);
    s.rss_bytes = mw->opts.rss ? mw->opts.rss(mw->opts.user_data) : sl_current_rss_bytes();
    if (mw->opts.counts)
        mw->opts.counts(mw->opts.user_data, &s.objects, &s.bytes);
    sl_cgroup_memory m;
    if (mw->cg.version && sl_cgroup_read_memory(&mw->cg, &m) == 0) {
        s.cg_usage_bytes = m.usage_bytes;
        s.cg_limit_bytes = m.limit_bytes;
        s.cg_unreclaimable_bytes = m.unreclaimable_bytes;
    }
    pthread_mutex_lock(&mw->synced.lock);
    sl_timeline_add(mw->synced.tl, &s);
    mw->synced.last = s;
    pthread_mutex_unlock(&mw->synced.lock);
    s_write_csv(mw, &s);
    if (check_warn)
        s_check_warn(mw, &s);
}

static void s_add_ms(struct timespec *ts, unsigned ms) {
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool s_before(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *s_sampler_main(void *arg) {
    sl_memwatch *mw = arg;
    pthread_mutex_lock(&mw->synced.lock);
    while (!mw->synced.go && !mw->synced.stop)
        pthread_cond_wait(&mw->synced.wake, &mw->synced.lock);
    /* Deadlines on a fixed grid from the start, so a slow sample does not shift every later one. */
    struct timespec next = mw->started;
    s_add_ms(&next, mw->interval_ms);
    sl_mem_sample first = mw->synced.last; /* taken by start, on the caller's thread */
    pthread_mutex_unlock(&mw->synced.lock);
    s_check_warn(mw, &first);
    pthread_mutex_lock(&mw->synced.lock);
    while (!mw->synced.stop) {
        int rc = pthread_cond_timedwait(&mw->synced.wake, &mw->synced.lock, &next);
        if (mw->synced.stop)
            break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (rc != ETIMEDOUT && s_before(&now, &next))
            continue;
        pthread_mutex_unlock(&mw->synced.lock);
        s_sample(mw, true);
        clock_gettime(CLOCK_MONOTONIC, &now);
        while (!s_before(&now, &next))
            s_add_ms(&next, mw->interval_ms);
        pthread_mutex_lock(&mw->synced.lock);
    }
    pthread_mutex_unlock(&mw->synced.lock);
    return NULL;
}

int sl_memwatch_start(const sl_memwatch_options *opts, sl_memwatch **out) {
    *out = NULL;
    sl_memwatch_options none = {0};
    if (!opts)
        opts = &none;
    if (opts->warn_fraction < 0 || opts->warn_fraction > 1)
        return sl__fail(SL_EINVAL, "memory warning fraction %g is not between 0 and 1", opts->warn_fraction);
    sl_memwatch *mw = calloc(1, sizeof(*mw));
    if (!mw)
        return sl__fail(SL_ENOMEM, "out of memory starting the memory watch");
    int rc = 0;
    bool cond_ok = false, existed = false;
    mw->opts = *opts;
    mw->opts.timeline_path = mw->opts.cgroup_root = mw->opts.proc_cgroup = NULL;
    mw->interval_ms = opts->interval_ms ? opts->interval_ms : 1000;
    mw->warn_fraction = opts->warn_fraction > 0 ? opts->warn_fraction : 0.8;
    pthread_mutex_init(&mw->synced.lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    cond_ok = pthread_cond_init(&mw->synced.wake, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!cond_ok) {
        rc = sl__fail(SL_ENOMEM, "cannot create the memory watch's condition variable");
        goto on_error;
    }
    if (!(mw->synced.tl = sl_timeline_new(opts->capacity))) {
        rc = sl__fail(SL_ENOMEM, "out of memory for a timeline of %zu samples", opts->capacity);
        goto on_error;
    }
    if (sl_cgroup_find(opts->cgroup_root, opts->proc_cgroup, &mw->cg) != 0)
        mw->cg.version = 0; /* no cgroup is normal outside containers: the samples just have no limit */
    struct stat before;
    existed = opts->timeline_path && stat(opts->timeline_path, &before) == 0;
    if (opts->timeline_path) {
        if ((rc = sl_outfile_open(opts->timeline_path, SL_OUTFILE_STREAM, "the timeline", &mw->csv)) < 0)
            goto on_error;
        fputs("t_s,rss_bytes,objects,bytes,cgroup_usage_bytes,cgroup_limit_bytes\n", sl_outfile_stream(mw->csv));
        if ((rc = sl_outfile_flush(mw->csv)) < 0)
            goto on_error;
    }

    /* The thread first, so that if it cannot start, no callback has run. Signals belong to the threads that handle
     * them (the job's ticking thread), never to the sampler. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&mw->thread, NULL, s_sampler_main, mw);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        rc = sl__fail_errno(err, "cannot start the memory sampler thread");
        goto on_error;
    }
    mw->thread_running = true;
    clock_gettime(CLOCK_MONOTONIC, &mw->started);
    s_sample(mw, false);
    pthread_mutex_lock(&mw->synced.lock);
    mw->synced.go = true;
    pthread_cond_signal(&mw->synced.wake);
    pthread_mutex_unlock(&mw->synced.lock);
    *out = mw;
    return 0;

on_error:
    if (mw->csv) {
        sl_outfile_discard(mw->csv);
        if (!existed)
            unlink(opts->timeline_path); /* created by this call: a failed start leaves nothing behind */
    }
    sl_timeline_destroy(mw->synced.tl);
    if (cond_ok)
        pthread_cond_destroy(&mw->synced.wake);
    pthread_mutex_destroy(&mw->synced.lock);
    free(mw);
    return rc;
}

void sl_memwatch_stop(sl_memwatch *mw) {
    if (!mw)
        return;
    pthread_mutex_lock(&mw->synced.lock);
    bool first = !mw->synced.stop_called;
    mw->synced.stop_called = true;
    mw->synced.stop = true;
    pthread_cond_signal(&mw->synced.wake);
    pthread_mutex_unlock(&mw->synced.lock);
    if (!first)
        return;
    if (mw->thread_running) {
        pthread_join(mw->thread, NULL);
        mw->thread_running = false;
    }
    s_sample(mw, false);
    if (mw->csv) {
        int rc = sl_outfile_close(mw->csv);
        mw->csv = NULL;
        if (rc < 0)
            s_csv_failed(mw, rc, sl_last_error());
    }
}

const sl_timeline *sl_memwatch_timeline(const sl_memwatch *mw) {
    return mw->synced.tl;
}

void sl_memwatch_last(const sl_memwatch *mw, sl_mem_sample *out) {
    sl_memwatch *m = (sl_memwatch *)mw; /* the lock is not part of the logical state */
    pthread_mutex_lock(&m->synced.lock);
    *out = m->synced.last;
    pthread_mutex_unlock(&m->synced.lock);
}

void sl_memwatch_judge(const sl_memwatch *mw, sl_mem_verdict *out) {
    sl_memwatch *m = (sl_memwatch *)mw;
    pthread_mutex_lock(&m->synced.lock);
    sl_mem_judge(m->synced.tl, m->opts.limit_bytes, out);
    pthread_mutex_unlock(&m->synced.lock);
}

int sl_memwatch_error(const sl_memwatch *mw, char *buf, size_t cap) {
    sl_memwatch *m = (sl_memwatch *)mw;
    pthread_mutex_lock(&m->synced.lock);
    int rc = m->synced.csv_err;
    if (rc && buf && cap)
        sl__text_cut(buf, cap, m->synced.csv_message, strlen(m->synced.csv_message));
    pthread_mutex_unlock(&m->synced.lock);
    return rc;
}

void sl_memwatch_destroy(sl_memwatch *mw) {
    if (!mw)
        return;
    sl_memwatch_stop(mw);
    sl_timeline_destroy(mw->synced.tl);
    pthread_cond_destroy(&mw->synced.wake);
    pthread_mutex_destroy(&mw->synced.lock);
    free(mw);
}
