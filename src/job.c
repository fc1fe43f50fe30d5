/* The job engine: lister -> filter -> bounded queue -> worker threads -> operation -> commit -> counters.
 *
 * Memory stays flat because every stage is bounded: the queue holds at most queue_capacity items, each worker holds
 * one item and one pool buffer, and nothing about an object survives once its worker is done with it (failures are
 * streamed to the callback and the failure log, never collected). */
#include "crc32c.h"
#include "fail.h"
#include "failure_log.h"
#include "http.h"
#include "pool.h"
#include "proc_tree.h"
#include "queue.h"
#include "resume.h"
#include "store_vtable.h"
#include "task.h"

#include "sluice/sluice.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_DEFAULT_BUFFER_SIZE ((size_t)256 * 1024)
#define S_RESULT_CAP (64u * 1024u)                      /* result members of one object (exec output to "-" included) */
#define S_ERROR_CAP SL__MESSAGE_CAP                     /* one failure message */
#define S_KEY_CAP (PATH_MAX + 256)                      /* a key plus suffix */
#define S_LINE_CAP (S_RESULT_CAP + 6 * S_KEY_CAP + 256) /* one JSON result line, key escaped at worst 6x */
#define S_FAILURE_SAMPLES 10 /* failures kept for the report: a fixed number, never one per object */
#define S_TICK_MS 100u
#define S_CORRUPT_ATTEMPTS 3u  /* tries of an object whose data fails its checksum */
#define S_THROTTLE_WAIT_MS 20u /* how often a worker held back by the memory guard looks again */
#define S_MIN_DEFAULT_MEMORY_LIMIT ((uint64_t)64 * 1024)
#define S_MIN_BUFFER_SIZE ((size_t)4096)
/* Per worker thread, beside its own struct (s_worker) and its stores' clients: the stack pages and malloc arena pages
 * it touches (measured: 20-60 KiB), and its share of the queue (S_QUEUE_PER_WORKER items, each with a key). */
#define S_THREAD_BYTES ((size_t)64 * 1024)
#define S_QUEUE_PER_WORKER 4u
/* A sliced object's owner hands at most this many other workers a token to read its slices with (each takes slices
 * until none is left); the queue keeps room for them apart from its capacity. */
#define S_SLICE_HELPERS_MAX 16u
#define S_COMPOSE_PARTS_MAX 1024u /* components of one composite object (GCS's limit) */
/* The memory sampler's fast first phase, as `sluice watch` has it: a job of half a second has a curve too. It lasts
 * S_MEM_FAST_INTERVALS --mem-interval periods, within [S_MEM_FAST_MIN_MS, S_MEM_FAST_MAX_MS]. */
#define S_MEM_FAST_MS 20u
#define S_MEM_FAST_INTERVALS 20u
#define S_MEM_FAST_MIN_MS 1000u
#define S_MEM_FAST_MAX_MS 30000u

typedef struct s_item {
    sl_object src;
    sl_object dst; /* cp/sync: the destination's output of the same size, to compare checksums with (no key) */
    bool has_dst;
    bool needs_stat;  /* --retry-failed: only the key is known; the worker stats it */
    bool dst_unknown; /* the destination listing could not tell: the worker looks the output up itself */
    /* verify: the listing found the output complete; the worker reads it back and skips the object only if its bytes
     * still have out_crc32c (has_out_crc32c false: none was recorded, so the object is redone) */
    bool check_output;
    bool has_out_crc32c;
    uint32_t out_crc32c;
    /* What the destination holds under the output key, as the listing or a lookup found it: no object (dst_gen 0) or
     * generation dst_gen. The output's upload is conditional on it (sl_write_options.if_generation_match). */
    bool dst_gen_known;
    int64_t dst_gen;
    /* Read in slices by several workers (--slice-size): decided when listed, when the queue's hold was taken for it
     * (released once its owner has handed out its tokens, or when it is done with otherwise). */
    bool held;
    struct s_big *big; /* not an object: a token to read slices of big's object (key is empty) */
    char key[];        /* src.key points here */
} s_item;

/* An object read in slices: the worker that took it (the owner) opens the output, hands tokens to other workers,
 * reads slices itself until none is left, waits for those the others took, and checks and commits the whole on its
 * own thread. Slices are claimed in order under the lock; each one's CRC32C is kept and the owner combines them. */
typedef struct s_big {
    pthread_mutex_t lock;
    pthread_cond_t slice_done;
    sl_writer *out;      /* written at offsets by every slice (sl__write_at); NULL when composing */
    const char *parts;   /* composing: slice i is uploaded as the object "<parts><i>" of the destination */
    int64_t mtime_ns;    /* composing: the source file's, as listed (every slice's read checks it) */
    const char *key;     /* the owner's item's: valid while a slice may be claimed */
    const char *src_url; /* the owner's, for messages: likewise */
    int64_t generation;  /* every slice reads this generation */
    uint64_t size, slice;
    unsigned n;        /* slices */
    unsigned next;     /* the next slice to claim */
    unsigned finished; /* claimed slices that have ended */
    bool closed;       /* no more claims: all claimed, or one failed */
    unsigned refs;     /* the owner and the tokens not yet taken */
    int rc;            /* the first failure, its message in error */
    char error[S_ERROR_CAP];
    uint32_t crc[]; /* of each slice */
} s_big;

/* A failure kept for the report, whole (key and message): at most S_FAILURE_SAMPLES of them, freed with the job. */
typedef struct s_failure_sample {
    char *key;
    char *error;
} s_failure_sample;

struct sl_job {
    sl_job_kind kind;
    sl_store *src;
    sl_store *dst; /* NULL when results go to stdout */
    char *single_key;
    /* rm -r of a bucket URL gs://b/p that names both the object p (single_key, in src: the parent) and a prefix p/
     * holding objects: the store of that prefix, whose objects are deleted too, under the keys "p/<key>" in src. */
    sl_store *src_under;
    char *src_text, *dst_text, *suffix, *failures_path, *retry_path;
    char **include, **exclude, **argv;
    size_t include_count, exclude_count;
    unsigned shard_index, shard_count; /* sl_job_options' (count 0: no sharding) */
    /* report_path named a place for reports (sl_job_report_is_place): its store, opened and checked up front, where
     * sl_job_write_report writes shard-I-of-N.json. */
    sl_store *report_store;
    /* --failures / --retry-failed given a place (sl_job_report_is_place): the shard's file there is
     * failures-I-of-N.jsonl. In a bucket, the log is written to a local temp file (failures_path) and uploaded at the
     * end of the run (failures_store, failures_name); a log to retry is downloaded first (retry_path, a temp file).
     * *_shown: where the file is, for messages and the report. */
    sl_store *failures_store;
    char *failures_shown, *retry_shown, *failures_temp, *retry_temp;
    const sl__op *op;
    bool own_op;          /* op is the caller's (sl_job_options.op), not a built-in */
    sl__op_config op_cfg; /* each worker hands thread_init a copy with its own index */
    char **op_args;       /* "key=value" for the caller's op */
    unsigned jobs;
    size_t buffer_size;
    uint64_t slice_size; /* --slice-size; UINT64_MAX: never */
    bool composite;      /* --composite-upload */
    /* The budget (memory_limit_bytes): every worker's fixed memory (worker_fixed: its state, its stores' clients)
     * is set aside, the rest is the pool, where each worker's transfer buffer and its writer's minimum (writer_min,
     * a gs:// upload quantum) are promised, and writers grow into what is left. */
    uint64_t memory_limit;
    size_t worker_fixed;
    size_t writer_min;
    bool dry_run;
    bool force;
    bool fsync;                    /* sl_job_options.fsync */
    bool verify;                   /* sl_job_options.verify */
    char job_tag[SL__JOB_TAG_CAP]; /* recorded in each output's source fingerprint (resume.h) */
    sl_job_failure_fn on_failure;
    sl_job_result_fn on_result;
    sl_job_progress_fn on_progress;
    sl_job_warning_fn on_warning;
    char jobs_note[256]; /* -j given and lowered to fit the budget: said when the run starts */
    void *user_data;
    unsigned progress_interval_ms;
    unsigned mem_interval_ms;
    char *timeline_path, *chart_path;

    sl__queue *queue;
    sl__pool *pool;
    atomic_bool cancel;
    atomic_bool abort;
    atomic_uint worker_start_failures; /* map --worker: consecutive start failures (op_worker.c) */
    _Atomic uint64_t workers_peak_mem; /* map --worker: the worker processes' largest PSS in one sample */
    char display[256];                 /* map --worker: the command as messages show it */
    atomic_int interrupt_signal;       /* the signal sl_job_interrupt recorded first, 0 if none */
    unsigned grace_ms;                 /* SL_JOB_NO_GRACE: abort as soon as cancelled */
    bool grace_expired;                /* written by sl_job_run's thread: the abort came from the grace running out */
    atomic_bool feeder_done;           /* the lister (or failure log reader) thread has finished */
    /* Set by sl_job_run's thread before it aborts the job because a store's server answered nothing for its retry
     * deadline (s_check_reachable); unreachable_* say which and why, for the final message. */
    atomic_bool unreachable;
    const sl_store *unreachable_store;
    int64_t unreachable_ms;
    char unreachable_why[512];

    _Atomic uint64_t listed, done, skipped, failed, bytes_read, bytes_written, bytes_listed;
    _Atomic uint64_t aborted, not_started;
    atomic_bool listing_done;
    atomic_uint workers_running;
    /* Workers whose index is below this take new objects; the memory guard lowers it, the others wait. */
    atomic_uint active_limit;
    /* Read by sl_job_stats_get from any thread while sl_job_run writes them. */
    _Atomic int64_t started_ns;  /* CLOCK_MONOTONIC when the run began, 0 before */
    _Atomic int64_t finished_ns; /* when it ended, 0 while running */
    atomic_uint workers_started;
    int run_result;
    /* Written by sl_job_run after its sampler stopped; read after it returned. */
    bool mem_judged;
    sl_mem_verdict mem_verdict;
    uint64_t mem_peak_rss;
    size_t mem_samples;
    uint64_t mem_cg_usage, mem_cg_limit; /* the cgroup's at the last sample; 0 when unknown */
    uint64_t mem_cg_unreclaimable;       /* likewise */

    struct {
        pthread_mutex_t lock;
        pthread_cond_t finished;
        /* The memory sampler while the run samples (sl_job_mem_now reads it from other threads), NULL before and
         * after; judged: mem_judged and the figures with it are final. */
        sl_memwatch *live_mw;
        bool judged;
        sl_outfile *failures_log;
        int fatal; /* first job-level error (listing, destination), 0 if none */
        char fatal_message[SL__MESSAGE_CAP];
        /* The first output file (failure log, timeline, chart) that could not be written, 0 if none; output_stopped:
         * that error is what stopped the job (it was not stopping already). */
        int output_error;
        bool output_stopped;
        char output_message[SL__MESSAGE_CAP];
        s_failure_sample samples[S_FAILURE_SAMPLES];
        size_t sample_count;
        char mem_warning[512]; /* the memory guard's warning, "" if it did not fire */
    } synced;
};

static double s_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t s_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t sl_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024u;
}

uint64_t sl_current_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return n == 2 ? resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

unsigned sl_job_default_jobs(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    long jobs = cpus * 4;
    return (unsigned)(jobs < 4 ? 4 : jobs > 64 ? 64 : jobs);
}

const char *const *sl_job_op_names(void) {
    return sl__op_names();
}

const char *sl_job_op_describe(const char *name) {
    const sl__op *op = name ? sl__op_find(name) : NULL;
    return op ? op->description : NULL;
}

static char **s_strv_dup(const char *const *v, size_t n) {
    char **out = calloc(n + 1, sizeof(char *));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(out[i] = strdup(v[i]))) {
            while (i > 0)
                free(out[--i]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void s_strv_free(char **v) {
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static size_t s_strv_len(const char *const *v) {
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

/* The arguments of the caller's op: "key=value", a key at most once (sl_op_config_get finds one value). */
static int s_check_op_args(const char *const *args, size_t n) {
    if (n && !args)
        return sl__fail(SL_EINVAL, "%zu operation arguments, but none given", n);
    for (size_t i = 0; i < n; i++) {
        const char *eq = args[i] ? strchr(args[i], '=') : NULL;
        if (!eq || eq == args[i])
            return sl__fail(SL_EINVAL, "operation argument '%s' is not KEY=VALUE", args[i] ? args[i] : "");
        size_t klen = (size_t)(eq - args[i]);
        for (size_t j = 0; j < i; j++)
            if (strncmp(args[j], args[i], klen + 1) == 0)
                return sl__fail(SL_EINVAL, "operation argument '%.*s' is given twice", (int)klen, args[i]);
    }
    return 0;
}

/* Whether `path` is a command that can be run: 0, or ENOENT (nothing there), EISDIR (a directory: root may "search"
 * one, so access(X_OK) alone would pass it) or EACCES (not a regular file, or not executable). */
static int s_command_at(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR ? ENOENT : errno;
    if (S_ISDIR(st.st_mode))
        return EISDIR;
    if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
        return EACCES;
    return 0;
}

/* --exec's program must be one that can run, or every object would fail the same way: it is refused once, up front,
 * as exec would refuse it. A name with '/' is that file; another is looked up in PATH the way execvp does (the first
 * executable file wins; a directory or a file that is not executable on the way is only skipped). Returns 0, or <0
 * naming what is wrong: SL_ENOENT (not found), SL_EISDIR (a directory), SL_EACCES (not executable). */
static int s_check_command(const char *name) {
    if (strchr(name, '/')) {
        int e = s_command_at(name);
        if (e == ENOENT)
            return sl__fail(SL_ENOENT, "command not found: '%s' (no such file)", name);
        if (e == EISDIR)
            return sl__fail(SL_EISDIR, "cannot run '%s': it is a directory, not a command", name);
        if (e == EACCES)
            return sl__fail(SL_EACCES, "cannot run '%s': not an executable file (check its permissions: chmod +x)",
                            name);
        if (e)
            return sl__fail_errno(e, "cannot run '%s'", name);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char candidate[PATH_MAX], skipped[PATH_MAX] = "";
    int skipped_why = 0;
    while (*path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        int n = snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)len, len ? path : ".", name);
        if (n > 0 && (size_t)n < sizeof(candidate)) {
            int e = s_command_at(candidate);
            if (e == 0)
                return 0;
            if (e != ENOENT && !skipped[0]) {
                snprintf(skipped, sizeof(skipped), "%s", candidate);
                skipped_why = e;
            }
        }
        if (!end)
            break;
        path = end + 1;
    }
    if (skipped[0])
        return sl__fail(skipped_why == EISDIR ? SL_EISDIR : SL_EACCES,
                        "cannot run '%s': %s in PATH is %s, and no executable file of that name comes after it", name,
                        skipped, skipped_why == EISDIR ? "a directory" : "not an executable file");
    return sl__fail(SL_ENOENT, "command not found: '%s' (check the name and PATH)", name);
}

/* --retry-failed: the whole log is read once before anything runs, so that a malformed line is a usage error with
 * nothing done yet; and it must not be the file this run's failure log is about to truncate. */
static int s_check_retry_log(const sl_job *job) {
    struct stat a, b;
    if (job->failures_path && (strcmp(job->failures_path, job->retry_path) == 0 ||
                               (stat(job->failures_path, &a) == 0 && stat(job->retry_path, &b) == 0 &&
                                a.st_dev == b.st_dev && a.st_ino == b.st_ino)))
        return sl__fail(SL_EINVAL, "--failures %s is the file --retry-failed reads: give --failures a new file",
                        job->failures_path);
    sl__faillog *log = NULL;
    int rc = sl__faillog_open(job->retry_path, &log);
    if (rc < 0)
        return rc;
    const char *key;
    size_t len;
    while ((rc = sl__faillog_next(log, &key, &len)) > 0) {
    }
    sl__faillog_close(log);
    return rc;
}

/* A local destination must be a directory (or not exist yet) that we can write into: otherwise every object would
 * fail the same way, so refuse once, up front. */
static int s_check_local_dst(const sl_job *job) {
    if (!job->dst || sl_store_scheme(job->dst) != SL_SCHEME_FILE || job->dry_run)
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", sl_store_url(job->dst) + 7);
    struct stat st;
    for (;;) {
        if (stat(path, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return sl__fail(SL_ENOTDIR, "destination %s: %s is a file, not a directory (give a directory)",
                                sl_store_url(job->dst), path);
            if (access(path, W_OK | X_OK) != 0)
                return sl__fail_errno(errno, "destination %s: cannot create files in %s", sl_store_url(job->dst), path);
            return 0;
        }
        if (errno != ENOENT)
            return sl__fail_errno(errno, "destination %s: %s", sl_store_url(job->dst), path);
        /* A symbolic link whose target does not exist: no directory can be made through it (mkdir says it exists). */
        char target[PATH_MAX];
        ssize_t tn = readlink(path, target, sizeof(target) - 1);
        if (tn >= 0) {
            target[tn] = '\0';
            return sl__fail(SL_ENOENT,
                            "destination %s: %s is a symbolic link to %s, which does not exist (create that directory, "
                            "or give another destination)",
                            sl_store_url(job->dst), path, target);
        }
        char *slash = strrchr(path, '/');
        if (!slash || slash == path)
            return 0;
        *slash = '\0'; /* the nearest existing ancestor decides */
    }
}

/* " (which is DIR)" when a store was judged by where it really is and that is not how its URL spells it. */
static void s_resolved_note(const sl_store *store, const char *where, char *out, size_t cap) {
    const char *url = sl_store_url(store);
    bool local = sl_store_scheme(store) == SL_SCHEME_FILE;
    if (local && strcmp(url + 7, where) != 0)
        snprintf(out, cap, " (which is %s)", where);
    else
        out[0] = '\0';
}

/* Refuses a destination that overlaps the source, for every pair of stores, before anything is done:
 *   - a destination inside the source (or the source itself): the job would read its own outputs, and rewrite its
 *     sources when they are the same (map SRC SRC), or copy into itself without end (cp SRC SRC/sub);
 *   - a source inside the destination: an output key could land on a source object (cp a/sub a writes key "sub/x"
 *     to a/sub/x, which is a source file);
 *   - one object as the source, whose output would be that object itself (map d/a.txt d without --suffix).
 * Local paths are compared where they really are (symbolic links and bind mounts seen through), bucket prefixes as
 * directory-like prefixes of the same bucket (sl__store_nesting). */
static int s_check_dst_not_in_src(const sl_job *job) {
    if (!job->dst)
        return 0;
    char ws[PATH_MAX + 64], wd[PATH_MAX + 64], ns[PATH_MAX + 80], nd[PATH_MAX + 80];
    int nesting = sl__store_nesting(job->dst, job->src, wd, ws, sizeof(ws)); /* SL__INSIDE: dst inside src */
    s_resolved_note(job->src, ws, ns, sizeof(ns));
    s_resolved_note(job->dst, wd, nd, sizeof(nd));
    const char *src = sl_store_url(job->src), *dst = sl_store_url(job->dst);
    if (job->single_key) {
        /* Its one output is DST/<key><suffix>: the source object itself when DST is its directory, with no suffix. */
        if (nesting == SL__SAME && !job->suffix[0]) {
            char url[S_KEY_CAP + 64];
            sl_store_key_url(job->src, job->single_key, url, sizeof(url));
            return sl__fail(SL_EINVAL,
                            "destination %s%s holds the source %s: its output would replace the source itself; "
                            "choose another destination%s",
                            dst, nd, url,
                            job->kind == SL_JOB_EXEC || job->kind == SL_JOB_OP || job->kind == SL_JOB_WORKER
                                ? " or a --suffix"
                                : "");
        }
        return 0;
    }
    if (nesting == SL__SAME || nesting == SL__INSIDE)
        return sl__fail(SL_EINVAL,
                        "destination %s%s is inside the source %s%s%s: choose a destination outside the source (the "
                        "job would read its own outputs)",
                        dst, nd, src, ns, nesting == SL__SAME ? " (it is the source itself)" : "");
    if (nesting == SL__CONTAINS)
        return sl__fail(SL_EINVAL,
                        "the source %s%s is inside the destination %s%s: an output could replace a source object; "
                        "choose a destination that does not contain the source",
                        src, ns, dst, nd);
    return 0;
}

/* rm -r of a whole bucket or of the file-system root (however spelled: "/", "$EMPTY/", a link to "/") needs the
 * caller's explicit confirmation (sl_job_options.all), like GNU rm's --preserve-root. A dry run too: it shows what
 * the same command would do, and that command is refused. */
static int s_check_not_everything(const sl_job *job) {
    char where[PATH_MAX + 64], note[PATH_MAX + 80];
    if (!sl__store_is_root(job->src, where, sizeof(where)))
        return 0;
    bool local = sl_store_scheme(job->src) == SL_SCHEME_FILE;
    s_resolved_note(job->src, where, note, sizeof(note));
    return sl__fail(SL_EINVAL,
                    "refusing to delete every object under %s%s: that is %s; add --all if that is really meant",
                    sl_store_url(job->src), note, local ? "every file on the machine" : "the whole bucket");
}

/* What the source URL names decides what is done (README: "What gs://b/p names"): one object, a prefix, or, in a
 * bucket, both the object p and objects under p/. rm -r takes both (p/ through src_under); rm takes the object; cp,
 * sync and map refuse, as their outputs would be named differently for each (p, or the keys under p/). rm without -r of
 * a prefix is told to add -r only when the prefix holds objects. A prefix that holds nothing otherwise is found by the
 * listing itself (s_lister_main), which costs no request of its own. */
static int s_check_source(sl_job *job, const sl_job_options *opts) {
    const bool deleting = job->kind == SL_JOB_DELETE, bucket = sl_store_scheme(job->src) != SL_SCHEME_FILE;
    const char *url = sl_store_url(job->src);
    if (job->single_key ? !bucket || (deleting && !opts->recursive) : !(deleting && !opts->recursive))
        return 0;
    size_t klen = job->single_key ? strlen(job->single_key) : 0;
    char *sub = malloc(klen + 2);
    sl_client *client = NULL;
    int state = sub ? sl_client_new(job->src, &client) : sl__fail(SL_ENOMEM, "out of memory");
    if (state == 0) {
        memcpy(sub, job->single_key ? job->single_key : "", klen);
        memcpy(sub + klen, klen ? "/" : "", klen ? 2 : 1);
        state = sl_prefix_probe(client, sub);
    }
    sl_client_destroy(client);
    free(sub);
    /* An account may read objects without being allowed to list them (403): what it cannot list it cannot copy or
     * delete either, so the URL names what could be looked up, as before there was a probe: the object, or nothing. */
    if (state == SL_EACCES && bucket)
        state = SL_PREFIX_MISSING;
    if (state < 0)
        return state;
    if (!job->single_key) {
        if (state == SL_PREFIX_MISSING)
            return sl__fail(SL_ENOENT, "%s: no such object%s", url, bucket ? "" : " (no such file or directory)");
        /* The hint only where -r would delete something. */
        if (state == SL_PREFIX_EMPTY)
            return sl__fail(SL_ENOENT, "%s: no such object (%s)", url,
                            bucket ? "a prefix that holds no objects"
                                   : "an empty directory; rm never deletes directories");
        return sl__fail(SL_EINVAL, "%s is not the name of one object: add -r to delete every object under that prefix",
                        url);
    }
    if (state != SL_PREFIX_OBJECTS)
        return 0;
    char obj[S_KEY_CAP + 64], pattern[2 * S_KEY_CAP];
    sl_store_key_url(job->src, job->single_key, obj, sizeof(obj));
    if (deleting)
        return sl_store_open(obj, opts->store_options, &job->src_under);
    /* The glob that names the object alone among its siblings: anchored, its special characters escaped. */
    size_t n = 0;
    pattern[n++] = '/';
    for (const char *k = job->single_key; *k && n + 3 < sizeof(pattern); k++) {
        if (strchr("*?[]{}\\", *k))
            pattern[n++] = '\\';
        pattern[n++] = *k;
    }
    pattern[n] = '\0';
    const char *command = job->kind == SL_JOB_COPY ? "cp" : job->kind == SL_JOB_SYNC ? "sync" : "map";
    return sl__fail(SL_EINVAL,
                    "%s names both an object and a prefix that holds objects (%s/...), and %s names its outputs "
                    "differently for each: give %s/ for the objects under the prefix, or %s/ --include '%s' for the "
                    "object alone",
                    obj, obj, command, obj, url, pattern);
}

/* Every output file named in the options must be writable before anything runs: finding out at the end would waste
 * the run (the report and the chart), or lose its record (the failure log, the timeline). */
static int s_check_outputs(const sl_job *job, const sl_job_options *opts) {
    int rc = 0;
    /* rm -r would delete a log it is writing (lost without a word) or a file it has not written yet. */
    const char *const named[][2] = {{job->failures_path, "the failure log"},
                                    {job->timeline_path, "the timeline"},
                                    {job->chart_path, "the chart"},
                                    {opts->report_path, "the report"}};
    for (size_t i = 0; job->kind == SL_JOB_DELETE && !job->single_key && i < sizeof(named) / sizeof(named[0]); i++)
        if (named[i][0] && sl__store_covers_file(job->src, named[i][0]))
            return sl__fail(SL_EINVAL, "%s %s is inside %s, which rm -r deletes: write it somewhere else", named[i][1],
                            named[i][0], sl_store_url(job->src));
    if (job->failures_path && (rc = sl_outfile_check(job->failures_path, SL_OUTFILE_STREAM, "the failure log")) < 0)
        return rc;
    if (job->timeline_path && (rc = sl_outfile_check(job->timeline_path, SL_OUTFILE_STREAM, "the timeline")) < 0)
        return rc;
    if (job->chart_path && (rc = sl_outfile_check(job->chart_path, SL_OUTFILE_REPLACE, "the chart")) < 0)
        return rc;
    if (opts->report_path && !sl_job_report_is_place(opts->report_path) &&
        (rc = sl_outfile_check(opts->report_path, SL_OUTFILE_REPLACE, "the report")) < 0)
        return rc;
    return 0;
}

bool sl_job_report_is_place(const char *path) {
    size_t n = path ? strlen(path) : 0;
    return n > 0 && (strncmp(path, "gs://", 5) == 0 || strncmp(path, "s3://", 5) == 0 || path[n - 1] == '/');
}

/* The shard's file name in a place of failure logs. */
static void s_failures_name(const sl_job *job, char *name, size_t cap) {
    snprintf(name, cap, "failures-%u-of-%u.jsonl", job->shard_count ? job->shard_index : 0,
             job->shard_count ? job->shard_count : 1);
}

static bool s_is_bucket_url(const char *p) {
    return strncmp(p, "gs://", 5) == 0 || strncmp(p, "s3://", 5) == 0;
}

/* Makes the local directory dir and those above it (mode as the umask says). Returns 0 or an errno value. */
static int s_mkdirs(const char *dir) {
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path))
        return n ? ENAMETOOLONG : 0;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0777) < 0 && errno != EEXIST)
            return errno;
        path[i] = c;
    }
    return 0;
}

/* A local temp file for a log that lives in a bucket; its path in *out (malloc'd). */
static int s_temp_log(const char *what, char **out) {
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/sluice-%s-XXXXXX", dir && *dir ? dir : "/tmp", what);
    int fd = mkstemp(path);
    if (fd < 0)
        return sl__fail_errno(errno, "cannot make a temporary file for the %s in %s", what, dir && *dir ? dir : "/tmp");
    close(fd);
    if (!(*out = strdup(path))) {
        unlink(path);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    return 0;
}

/* --failures PLACE/: the shard's log is PLACE/failures-I-of-N.jsonl: written there (a local directory, made if needed),
 * or, in a bucket, to a local temp file uploaded when the run ends. */
static int s_failures_place(sl_job *job, const sl_job_options *opts) {
    char name[64];
    s_failures_name(job, name, sizeof(name));
    const char *place = opts->failures_path;
    size_t pl = strlen(place);
    if (asprintf(&job->failures_shown, "%s%s%s", place, place[pl - 1] == '/' ? "" : "/", name) < 0) {
        job->failures_shown = NULL;
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    free(job->failures_path);
    job->failures_path = NULL;
    if (!s_is_bucket_url(place)) {
        int err = s_mkdirs(place);
        if (err)
            return sl__fail_errno(err, "cannot make the directory of the failure logs %s", place);
        return (job->failures_path = strdup(job->failures_shown)) ? 0 : sl__fail(SL_ENOMEM, "out of memory");
    }
    int rc = sl_store_open(place, opts->store_options, &job->failures_store);
    if (rc == 0)
        rc = sl__store_check_access(job->failures_store);
    if (rc < 0)
        return sl__fail(rc, "cannot write the failure log to %s: %s", place, sl_last_error());
    if ((rc = s_temp_log("failures", &job->failures_temp)) < 0)
        return rc;
    return (job->failures_path = strdup(job->failures_temp)) ? 0 : sl__fail(SL_ENOMEM, "out of memory");
}

/* --retry-failed PLACE/: the shard retries its own log, PLACE/failures-I-of-N.jsonl (from a bucket: downloaded now). */
static int s_retry_place(sl_job *job, const sl_job_options *opts) {
    char name[64];
    s_failures_name(job, name, sizeof(name));
    const char *place = opts->retry_failed_path;
    size_t pl = strlen(place);
    if (asprintf(&job->retry_shown, "%s%s%s", place, place[pl - 1] == '/' ? "" : "/", name) < 0) {
        job->retry_shown = NULL;
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    if (job->failures_shown && strcmp(job->failures_shown, job->retry_shown) == 0)
        return sl__fail(SL_EINVAL, "--failures %s is the log --retry-failed reads: give --failures another place",
                        opts->failures_path);
    free(job->retry_path);
    job->retry_path = NULL;
    if (!s_is_bucket_url(place))
        return (job->retry_path = strdup(job->retry_shown)) ? 0 : sl__fail(SL_ENOMEM, "out of memory");
    sl_store *st = NULL;
    sl_client *c = NULL;
    sl_reader *r = NULL;
    FILE *f = NULL;
    int rc = s_temp_log("retry", &job->retry_temp);
    if (rc == 0 && (rc = sl_store_open(place, opts->store_options, &st)) == 0 && (rc = sl_client_new(st, &c)) == 0)
        rc = sl_read_open(c, name, 0, SL_LENGTH_TO_END, NULL, &r);
    if (rc == 0 && !(f = fopen(job->retry_temp, "w")))
        rc = sl__fail_errno(errno, "cannot write %s", job->retry_temp);
    char buf[65536];
    int64_t n;
    while (rc == 0 && (n = sl_read(r, buf, sizeof(buf))) != 0) {
        if (n < 0)
            rc = (int)n;
        else if (fwrite(buf, 1, (size_t)n, f) != (size_t)n)
            rc = sl__fail_errno(errno, "cannot write %s", job->retry_temp);
    }
    if (f && fclose(f) != 0 && rc == 0)
        rc = sl__fail_errno(errno, "cannot write %s", job->retry_temp);
    if (rc < 0)
        rc = sl__fail(rc, "cannot read the failure log %s: %s", job->retry_shown, sl_last_error());
    sl_read_close(r);
    sl_client_destroy(c);
    sl_store_close(st);
    if (rc == 0 && !(job->retry_path = strdup(job->retry_temp)))
        rc = sl__fail(SL_ENOMEM, "out of memory");
    return rc;
}

/* The shard's failure log, written to a temp file, uploaded into its bucket place at the end of the run. */
static int s_upload_failures(sl_job *job) {
    char name[64];
    s_failures_name(job, name, sizeof(name));
    sl_client *c = NULL;
    sl_writer *w = NULL;
    FILE *f = fopen(job->failures_temp, "r");
    int rc = f ? sl_client_new(job->failures_store, &c) : sl__fail_errno(errno, "cannot read %s", job->failures_temp);
    if (rc == 0)
        rc = sl_write_open(c, name, NULL, &w);
    char buf[65536];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        if ((rc = sl_write(w, buf, n)) < 0)
            break;
    if (rc == 0 && ferror(f))
        rc = sl__fail_errno(errno, "cannot read %s", job->failures_temp);
    if (w)
        rc = rc == 0 ? sl_write_commit(w) : (sl_write_abort(w), rc);
    if (f)
        fclose(f);
    sl_client_destroy(c);
    if (rc < 0)
        return sl__fail(rc, "cannot upload the failure log to %s: %s (it is kept in %s)", job->failures_shown,
                        sl_last_error(), job->failures_temp);
    return 0;
}

/* A report place (sl_job_report_is_place) opened as a store and checked up front, like every output: its credentials,
 * and for a local directory that it is one (or can be made). */
static int s_open_report_place(sl_job *job, const sl_job_options *opts) {
    int rc = sl_store_open(opts->report_path, opts->store_options, &job->report_store);
    if (rc < 0)
        return sl__fail(rc, "cannot write the report to %s: %s", opts->report_path, sl_last_error());
    if ((rc = sl__store_check_access(job->report_store)) < 0)
        return sl__fail(rc, "cannot write the report to %s: %s", opts->report_path, sl_last_error());
    if (sl_store_scheme(job->report_store) == SL_SCHEME_FILE) {
        const char *dir = sl_store_url(job->report_store) + strlen("file://");
        struct stat sb;
        if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
            return sl__fail(SL_ENOTDIR, "cannot write the report to %s: %s is not a directory", opts->report_path, dir);
    }
    return 0;
}

/* In a container, transfer buffers must leave room for everything else the process holds (clients, TLS, the heap's
 * own slack) under the cgroup's limit: a quarter of it, unless the usual default is smaller still. */
static uint64_t s_default_memory_limit(void) {
    sl_cgroup cg;
    uint64_t usage = 0, limit = 0;
    if (sl_cgroup_find(NULL, NULL, &cg) != 0 || sl_cgroup_read(&cg, &usage, &limit) != 0 || limit == 0 ||
        limit / 4 >= SL_JOB_DEFAULT_MEMORY_LIMIT)
        return SL_JOB_DEFAULT_MEMORY_LIMIT;
    return limit / 4 < S_MIN_DEFAULT_MEMORY_LIMIT ? S_MIN_DEFAULT_MEMORY_LIMIT : limit / 4;
}

static size_t s_worker_struct_bytes(void);
static void s_human_bytes(uint64_t b, char *buf, size_t cap);

/* What one worker needs at least, beside its transfer buffer. */
static size_t s_worker_fixed(const sl_job *job, size_t *writer_min) {
    sl__store_memory sm, dm = {0};
    sl__store_memory_get(job->src, &sm);
    if (job->dst)
        sl__store_memory_get(job->dst, &dm);
    *writer_min = dm.writer_min_bytes;
    return s_worker_struct_bytes() + S_THREAD_BYTES + S_QUEUE_PER_WORKER * (sizeof(s_item) + S_KEY_CAP) +
           sm.client_bytes + (job->dst ? dm.client_bytes : 0);
}

/* Concurrency never exceeds what the budget can feed: every worker's fixed memory, its transfer buffer and its
 * writer's first quantum must fit, or the worker would only wait (or worse, grow past the budget). A budget too small
 * for one worker with a full transfer buffer runs one worker with a smaller buffer; smaller still is refused. A default
 * budget (a quarter of a small container's limit) is never smaller than one worker. */
static int s_budget_workers(sl_job *job, bool given) {
    job->worker_fixed = s_worker_fixed(job, &job->writer_min);
    uint64_t fixed = (uint64_t)job->worker_fixed + job->writer_min;
    uint64_t per_worker = fixed + job->buffer_size;
    if (!given && job->memory_limit < per_worker)
        job->memory_limit = per_worker;
    if (job->memory_limit < per_worker) {
        if (job->memory_limit < fixed + S_MIN_BUFFER_SIZE) {
            char limit[32], need[32], own[32], upload[64] = "";
            s_human_bytes(job->memory_limit, limit, sizeof(limit));
            s_human_bytes(fixed + S_MIN_BUFFER_SIZE, need, sizeof(need));
            s_human_bytes(job->worker_fixed, own, sizeof(own));
            if (job->writer_min) {
                char q[32];
                s_human_bytes(job->writer_min, q, sizeof(q));
                snprintf(upload, sizeof(upload), ", a %s upload buffer", q);
            }
            return sl__fail(SL_EINVAL,
                            "--memory-limit %s is less than one worker needs: %s (%s for its state and clients%s, a "
                            "transfer buffer of 4 KiB or more); give at least %lluK",
                            limit, need, own, upload, (unsigned long long)((fixed + S_MIN_BUFFER_SIZE + 1023) / 1024));
        }
        job->buffer_size = (size_t)(job->memory_limit - fixed) / S_MIN_BUFFER_SIZE * S_MIN_BUFFER_SIZE;
        per_worker = fixed + job->buffer_size;
    }
    uint64_t fit = job->memory_limit / per_worker;
    if (job->jobs > fit)
        job->jobs = (unsigned)fit;
    return 0;
}

static void s_set_fatal(sl_job *job, int rc, const char *message);

/* For the worker operation: a warning line (a worker that had to be killed at its end), and stopping the job (its
 * workers keep failing to start). Called from worker threads. */
static void s_op_warn(void *ctx, const char *message) {
    sl_job *job = ctx;
    pthread_mutex_lock(&job->synced.lock);
    if (job->on_warning)
        job->on_warning(job->user_data, message);
    pthread_mutex_unlock(&job->synced.lock);
}

static void s_op_stop(void *ctx, int code, const char *message) {
    s_set_fatal(ctx, code, message);
}

int sl_job_new(const sl_job_options *opts, sl_job **out) {
    if (!opts || !out)
        return sl__fail(SL_EINVAL, "sl_job_new: NULL argument");
    *out = NULL;
    int rc;
    sl_job *job = calloc(1, sizeof(*job));
    if (!job)
        return sl__fail(SL_ENOMEM, "out of memory");
    pthread_mutex_init(&job->synced.lock, NULL);
    pthread_cond_init(&job->synced.finished, NULL);

    job->kind = opts->kind;
    job->dry_run = opts->dry_run;
    job->force = opts->force;
    job->fsync = opts->fsync;
    job->verify = opts->verify;
    job->on_failure = opts->on_failure;
    job->on_result = opts->on_result;
    job->on_progress = opts->on_progress;
    job->on_warning = opts->on_warning;
    job->user_data = opts->user_data;
    job->progress_interval_ms = opts->progress_interval_ms ? opts->progress_interval_ms : 1000;
    job->mem_interval_ms = opts->mem_interval_ms ? opts->mem_interval_ms : 1000;
    job->grace_ms = opts->grace_ms ? opts->grace_ms : SL_JOB_DEFAULT_GRACE_MS;

    const bool deleting = opts->kind == SL_JOB_DELETE;
    if (!opts->src_url || (!opts->dst_url && !deleting)) {
        rc = sl__fail(SL_EINVAL, "a source and a destination are required");
        goto on_error;
    }
    const char *dst_url = deleting ? "-" : opts->dst_url; /* deleting writes nothing anywhere */
    bool to_stdout = strcmp(dst_url, "-") == 0;
    switch (opts->kind) {
    case SL_JOB_COPY:
    case SL_JOB_SYNC:
        if (to_stdout) {
            rc = sl__fail(SL_EINVAL, "the destination cannot be '-' for %s: give a directory or bucket URL",
                          opts->kind == SL_JOB_COPY ? "cp" : "sync");
            goto on_error;
        }
        job->op = sl__op_find("copy");
        break;
    case SL_JOB_DELETE:
        job->op = sl__op_find("copy"); /* never run: workers delete without an operation */
        break;
    case SL_JOB_EXEC:
    case SL_JOB_WORKER:
        job->op = opts->kind == SL_JOB_WORKER ? &sl__op_worker : &sl__op_exec;
        if (opts->use_shell) {
            if (!opts->command || !opts->command[0]) {
                rc = sl__fail(SL_EINVAL, "--shell needs a command string");
                goto on_error;
            }
        } else if (!opts->argv || !opts->argv[0] || !opts->argv[0][0]) {
            rc = sl__fail(SL_EINVAL, "%s needs a command", opts->kind == SL_JOB_WORKER ? "--worker" : "--exec");
            goto on_error;
        } else if ((rc = s_check_command(opts->argv[0])) < 0) {
            goto on_error;
        }
        break;
    case SL_JOB_OP: {
        if (opts->op) {
            if (opts->op_name) {
                rc = sl__fail(SL_EINVAL, "give a built-in operation's name or an operation of your own, not both");
                goto on_error;
            }
            if ((rc = sl__op_check(opts->op, "operation")) < 0)
                goto on_error;
            job->op = opts->op;
            job->own_op = true;
            break;
        }
        if (opts->op_arg_count) {
            rc =
                sl__fail(SL_EINVAL, "the built-in operation %s takes no arguments", opts->op_name ? opts->op_name : "");
            goto on_error;
        }
        bool known = false;
        for (const char *const *n = sl__op_names(); opts->op_name && *n; n++)
            known = known || strcmp(*n, opts->op_name) == 0;
        if (!known) {
            rc = sl__fail(SL_EINVAL, "unknown operation '%s' (built-ins: md5, crc32c, sha256, count, gunzip)",
                          opts->op_name ? opts->op_name : "");
            goto on_error;
        }
        job->op = sl__op_find(opts->op_name);
        break;
    }
    default:
        rc = sl__fail(SL_EINVAL, "unknown job kind %d", (int)opts->kind);
        goto on_error;
    }
    if (opts->op_arg_count && !job->own_op) {
        rc = sl__fail(SL_EINVAL, "operation arguments go with an operation of your own (map --plugin)");
        goto on_error;
    }
    if (job->own_op && (rc = s_check_op_args(opts->op_args, opts->op_arg_count)) < 0)
        goto on_error;
    if (opts->timeout_ms && opts->kind != SL_JOB_EXEC && opts->kind != SL_JOB_WORKER) {
        rc = sl__fail(SL_EINVAL, "a timeout applies to commands (--exec/--worker/--shell) only");
        goto on_error;
    }
    if ((opts->worker_max_objects || opts->worker_max_rss_bytes) && opts->kind != SL_JOB_WORKER) {
        rc = sl__fail(SL_EINVAL, "worker recycling (--worker-max-objects/--worker-max-rss) goes with --worker");
        goto on_error;
    }
    if (!job->op) {
        rc = sl__fail(SL_EINTERNAL, "operation table missing");
        goto on_error;
    }
    if (opts->kind == SL_JOB_COPY || opts->kind == SL_JOB_SYNC)
        sl__job_tag_copy(job->job_tag);
    else if (job->own_op)
        sl__job_tag_plugin(job->op->name, job->op->version, opts->op_args, opts->op_arg_count, job->job_tag);
    else if (opts->kind == SL_JOB_OP)
        sl__job_tag_op(opts->op_name, job->job_tag);
    else if (opts->kind == SL_JOB_WORKER)
        sl__job_tag_worker(opts->argv, opts->use_shell, opts->command, job->job_tag);
    else if (opts->use_shell)
        sl__job_tag_shell(opts->command, job->job_tag);
    else
        sl__job_tag_exec(opts->argv, job->job_tag);

    if (opts->shard_count > 0 && opts->shard_index >= opts->shard_count) {
        rc = sl__fail(SL_EINVAL, "shard %u of %u: the index must be less than the number of shards (0 to %u)",
                      opts->shard_index, opts->shard_count, opts->shard_count - 1);
        goto on_error;
    }
    job->shard_index = opts->shard_index;
    job->shard_count = opts->shard_count;
    for (size_t i = 0; i < opts->include_count; i++)
        if ((rc = sl_glob_check(opts->include[i])) < 0)
            goto on_error;
    for (size_t i = 0; i < opts->exclude_count; i++)
        if ((rc = sl_glob_check(opts->exclude[i])) < 0)
            goto on_error;

    job->src_text = strdup(opts->src_url);
    job->dst_text = strdup(deleting ? "" : dst_url);
    job->suffix = strdup(opts->suffix ? opts->suffix : "");
    job->failures_path = opts->failures_path ? strdup(opts->failures_path) : NULL;
    job->retry_path = opts->retry_failed_path ? strdup(opts->retry_failed_path) : NULL;
    if ((job->failures_path && sl_job_report_is_place(job->failures_path) && (rc = s_failures_place(job, opts)) < 0) ||
        (job->retry_path && sl_job_report_is_place(job->retry_path) && (rc = s_retry_place(job, opts)) < 0))
        goto on_error;
    job->timeline_path = opts->timeline_path ? strdup(opts->timeline_path) : NULL;
    job->chart_path = opts->chart_path ? strdup(opts->chart_path) : NULL;
    job->include = s_strv_dup(opts->include, opts->include_count);
    job->exclude = s_strv_dup(opts->exclude, opts->exclude_count);
    job->argv = opts->argv ? s_strv_dup(opts->argv, s_strv_len(opts->argv)) : NULL;
    job->include_count = opts->include_count;
    job->exclude_count = opts->exclude_count;
    job->op_cfg.argv = (const char *const *)job->argv;
    job->op_cfg.use_shell = opts->use_shell;
    job->op_cfg.timeout_ms = opts->timeout_ms;
    job->op_cfg.grace_ms = job->grace_ms == SL_JOB_NO_GRACE ? 1 : job->grace_ms;
    job->op_cfg.max_objects = opts->worker_max_objects;
    job->op_cfg.max_rss_bytes = opts->worker_max_rss_bytes;
    job->op_cfg.abort = &job->abort;
    job->op_cfg.start_failures = &job->worker_start_failures;
    job->op_cfg.warn = s_op_warn;
    job->op_cfg.stop = s_op_stop;
    job->op_cfg.ctx = job;
    job->op_cfg.command = opts->command ? strdup(opts->command) : NULL;
    job->op_cfg.src_text = job->src_text;
    job->op_cfg.dst_text = job->dst_text;
    if (opts->use_shell && opts->command) {
        snprintf(job->display, sizeof(job->display), "%s", opts->command);
    } else {
        size_t n = 0;
        for (const char *const *a = opts->argv; a && *a && n < sizeof(job->display); a++)
            n += (size_t)snprintf(job->display + n, sizeof(job->display) - n, "%s%s", n ? " " : "", *a);
    }
    job->op_cfg.display = job->display;
    job->op_args = job->own_op ? s_strv_dup(opts->op_args, opts->op_arg_count) : NULL;
    job->op_cfg.args = (const char *const *)job->op_args;
    job->op_cfg.arg_count = job->own_op ? opts->op_arg_count : 0;
    if (!job->src_text || !job->dst_text || !job->suffix || (opts->failures_path && !job->failures_path) ||
        (opts->retry_failed_path && !job->retry_path) || (opts->timeline_path && !job->timeline_path) ||
        (opts->chart_path && !job->chart_path) || !job->include || !job->exclude || (opts->argv && !job->argv) ||
        (opts->command && !job->op_cfg.command) || (job->own_op && !job->op_args)) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto on_error;
    }

    if (job->retry_path && (rc = s_check_retry_log(job)) < 0)
        goto on_error;
    if ((rc = sl_store_open_source(opts->src_url, opts->store_options, &job->src, &job->single_key)) < 0)
        goto on_error;
    if (!to_stdout && (rc = sl_store_open(dst_url, opts->store_options, &job->dst)) < 0)
        goto on_error;
    if ((rc = s_check_source(job, opts)) < 0)
        goto on_error;
    if (deleting && !job->single_key && !opts->all && (rc = s_check_not_everything(job)) < 0)
        goto on_error;
    if ((rc = s_check_dst_not_in_src(job)) < 0 || (rc = s_check_local_dst(job)) < 0 ||
        (rc = s_check_outputs(job, opts)) < 0 ||
        (sl_job_report_is_place(opts->report_path) && (rc = s_open_report_place(job, opts)) < 0))
        goto on_error;
    if (job->dst && !job->dry_run && (rc = sl__store_check_access(job->dst)) < 0)
        goto on_error;
    /* A start-up request abandoned on this thread (sl_thread_bind_abort) may have been taken as "no answer": the
     * caller asked to stop, so nothing runs. */
    if (sl__http_aborted()) {
        rc = sl__fail(SL_ECANCELED, "interrupted while starting: nothing was done");
        goto on_error;
    }

    job->slice_size = opts->slice_size_bytes ? opts->slice_size_bytes : SL_JOB_DEFAULT_SLICE_SIZE;
    job->composite = opts->composite_upload;
    job->buffer_size = opts->buffer_size_bytes ? opts->buffer_size_bytes : S_DEFAULT_BUFFER_SIZE;
    if (job->buffer_size < S_MIN_BUFFER_SIZE)
        job->buffer_size = S_MIN_BUFFER_SIZE;
    job->memory_limit = opts->memory_limit_bytes ? opts->memory_limit_bytes : s_default_memory_limit();
    job->jobs = opts->jobs ? opts->jobs : sl_job_default_jobs();
    if (job->jobs > 1024)
        job->jobs = 1024;
    unsigned asked = job->jobs;
    if ((rc = s_budget_workers(job, opts->memory_limit_bytes != 0)) < 0)
        goto on_error;
    if (opts->jobs && job->jobs < asked) {
        /* Asked for, not given: say so, with what would give it (a worker's share is its worst case, see README). */
        char limit[32], each[32];
        uint64_t per_worker = (uint64_t)job->worker_fixed + job->writer_min + job->buffer_size;
        s_human_bytes(job->memory_limit, limit, sizeof(limit));
        s_human_bytes(per_worker, each, sizeof(each));
        snprintf(job->jobs_note, sizeof(job->jobs_note),
                 "-j %u lowered to %u: --memory-limit %s holds %u workers of %s each (clients, transfer and upload "
                 "buffers at their largest); give --memory-limit %lluM for %u",
                 asked, job->jobs, limit, job->jobs, each,
                 (unsigned long long)((per_worker * asked + (1u << 20) - 1) >> 20), asked);
    }

    *out = job;
    return 0;

on_error:
    sl_job_destroy(job);
    return rc;
}

void sl_job_destroy(sl_job *job) {
    if (!job)
        return;
    sl_store_close(job->src_under);
    sl_store_close(job->src);
    sl_store_close(job->dst);
    sl_store_close(job->report_store);
    sl_store_close(job->failures_store);
    if (job->failures_temp)
        unlink(job->failures_temp);
    if (job->retry_temp)
        unlink(job->retry_temp);
    free(job->failures_temp);
    free(job->retry_temp);
    free(job->failures_shown);
    free(job->retry_shown);
    free(job->single_key);
    free(job->src_text);
    free(job->dst_text);
    free(job->suffix);
    free(job->failures_path);
    free(job->retry_path);
    free(job->timeline_path);
    free(job->chart_path);
    s_strv_free(job->include);
    s_strv_free(job->exclude);
    s_strv_free(job->argv);
    s_strv_free(job->op_args);
    free((char *)job->op_cfg.command);
    for (size_t i = 0; i < job->synced.sample_count; i++) {
        free(job->synced.samples[i].key);
        free(job->synced.samples[i].error);
    }
    sl__queue_destroy(job->queue);
    sl__pool_destroy(job->pool);
    sl_outfile_discard(job->synced.failures_log);
    pthread_mutex_destroy(&job->synced.lock);
    pthread_cond_destroy(&job->synced.finished);
    free(job);
}

void sl_job_cancel(sl_job *job) {
    atomic_store(&job->cancel, true);
}

void sl_job_interrupt(sl_job *job, int signo) {
    int none = 0;
    atomic_compare_exchange_strong(&job->interrupt_signal, &none, signo);
    atomic_store(&job->cancel, true);
}

void sl_job_abort(sl_job *job) {
    atomic_store(&job->cancel, true);
    atomic_store(&job->abort, true);
}

int sl_job_mem_now(const sl_job *job, sl_mem_sample *sample, sl_mem_verdict *verdict) {
    sl_job *j = (sl_job *)job;
    int rc = 0;
    memset(sample, 0, sizeof(*sample));
    memset(verdict, 0, sizeof(*verdict));
    pthread_mutex_lock(&j->synced.lock);
    if (j->synced.live_mw) {
        sl_memwatch_last(j->synced.live_mw, sample);
        sl_memwatch_judge(j->synced.live_mw, verdict);
    } else if (j->synced.judged) {
        sample->rss_bytes = sl_current_rss_bytes();
        sample->cg_usage_bytes = j->mem_cg_usage;
        sample->cg_limit_bytes = j->mem_cg_limit;
        sample->cg_unreclaimable_bytes = j->mem_cg_unreclaimable;
        *verdict = j->mem_verdict;
    } else {
        rc = SL_EINVAL;
    }
    pthread_mutex_unlock(&j->synced.lock);
    return rc;
}

void sl_job_stats_get(const sl_job *job, sl_job_stats *out) {
    sl_job *j = (sl_job *)job;
    memset(out, 0, sizeof(*out));
    out->objects_listed = atomic_load(&j->listed);
    out->objects_done = atomic_load(&j->done);
    out->objects_skipped = atomic_load(&j->skipped);
    out->objects_failed = atomic_load(&j->failed);
    out->bytes_read = atomic_load(&j->bytes_read);
    out->bytes_written = atomic_load(&j->bytes_written);
    out->bytes_listed = atomic_load(&j->bytes_listed);
    out->listing_done = atomic_load(&j->listing_done);
    int64_t t0 = atomic_load(&j->started_ns), t1 = atomic_load(&j->finished_ns);
    out->elapsed_s = t0 ? (double)((t1 ? t1 : s_monotonic_ns()) - t0) / 1e9 : 0;
    out->peak_rss_bytes = sl_peak_rss_bytes();
    out->workers = atomic_load(&j->workers_started);
    out->objects_aborted = atomic_load(&j->aborted);
    out->objects_not_started = atomic_load(&j->not_started);
    out->workers_peak_mem_bytes = atomic_load(&j->workers_peak_mem);
}

/* Records a job-level error; the first one wins. A request given up because the job was aborted is not one. */
static void s_set_fatal(sl_job *job, int rc, const char *message) {
    if (rc == SL_ECANCELED && atomic_load(&job->abort))
        return;
    pthread_mutex_lock(&job->synced.lock);
    if (!job->synced.fatal) {
        job->synced.fatal = rc;
        sl__text_cut(job->synced.fatal_message, sizeof(job->synced.fatal_message), message, strlen(message));
    }
    pthread_mutex_unlock(&job->synced.lock);
    atomic_store(&job->cancel, true);
}

/* Tries of the current object by this worker thread (s_run_op counts them); reset before each object. */
static _Thread_local unsigned tl_attempts;

/* One failure log line: {"key":..,"error":..,"code":..,"attempts":..[,"http_status":..]}. */
static int s_log_failure(sl_outfile *out, const char *key, int err, const char *message) {
    FILE *log = sl_outfile_stream(out);
    sl__http_tally tally;
    sl__http_tally_get(&tally);
    char qkey[1024], qmsg[1024];
    char *hk = qkey, *hm = qmsg;
    size_t nk = sl_json_quote(NULL, 0, key, strlen(key)) + 1;
    size_t nm = sl_json_quote(NULL, 0, message, strlen(message)) + 1;
    if (nk > sizeof(qkey))
        hk = malloc(nk);
    if (nm > sizeof(qmsg))
        hm = malloc(nm);
    if (hk && hm) {
        sl_json_quote(hk, nk, key, strlen(key));
        sl_json_quote(hm, nm, message, strlen(message));
        fprintf(log, "{\"key\":%s,\"error\":%s,\"code\":\"%s\",\"attempts\":%u", hk, hm, sl_err_name(err),
                (tl_attempts ? tl_attempts : 1) + tally.retries);
        if (tally.any_response)
            fprintf(log, ",\"http_status\":%ld", tally.last_status);
        fputs("}\n", log);
    }
    int rc = hk && hm ? sl_outfile_flush(out) : sl__fail(SL_ENOMEM, "cannot write the failure log: out of memory");
    if (hk != qkey)
        free(hk);
    if (hm != qmsg)
        free(hm);
    return rc;
}

/* An output file could not be written while the job runs (the caller holds synced.lock): the first such error is
 * kept, and the job stops taking new objects, since what it records (the failures to retry, the memory) would be
 * incomplete from here on. sl_job_run returns it. */
static void s_output_failed_locked(sl_job *job, int rc, const char *message) {
    if (job->synced.output_error)
        return;
    job->synced.output_error = rc;
    sl__text_cut(job->synced.output_message, sizeof(job->synced.output_message), message, strlen(message));
    if (!atomic_load(&job->cancel)) {
        job->synced.output_stopped = true;
        atomic_store(&job->cancel, true);
    }
}

/* The same once the run is over (its last lines, the chart): nothing left to stop. */
static void s_output_failed_at_end(sl_job *job, int rc, const char *message) {
    pthread_mutex_lock(&job->synced.lock);
    if (!job->synced.output_error) {
        job->synced.output_error = rc;
        sl__text_cut(job->synced.output_message, sizeof(job->synced.output_message), message, strlen(message));
    }
    pthread_mutex_unlock(&job->synced.lock);
}

/* An object that failed, or that an abort stopped midway: into the failure log either way (so --retry-failed
 * redoes it); counted, sampled and passed to on_failure only when it failed on its own. */
static void s_report_failure(sl_job *job, const char *key, int err, const char *message) {
    bool aborted = atomic_load(&job->abort);
    char why[S_ERROR_CAP + 64];
    if (aborted) {
        snprintf(why, sizeof(why), "abandoned: %s%s%s",
                 atomic_load(&job->unreachable) ? "the job stopped because the server was unreachable"
                                                : "the job was aborted (a signal, or the grace period ran out)",
                 err == SL_ECANCELED ? "" : ": ", err == SL_ECANCELED ? "" : message);
        err = SL_ECANCELED;
        message = why;
    }
    atomic_fetch_add(aborted ? &job->aborted : &job->failed, 1);
    pthread_mutex_lock(&job->synced.lock);
    if (!aborted && job->synced.sample_count < S_FAILURE_SAMPLES) {
        s_failure_sample *s = &job->synced.samples[job->synced.sample_count++];
        s->key = strdup(key);
        s->error = strdup(message); /* the report says "" for one that found no memory */
    }
    int log_rc = job->synced.failures_log ? s_log_failure(job->synced.failures_log, key, err, message) : 0;
    if (log_rc < 0)
        s_output_failed_locked(job, log_rc, sl_last_error());
    if (job->on_failure && !aborted)
        job->on_failure(job->user_data, key, err, message);
    pthread_mutex_unlock(&job->synced.lock);
}

/* The source lister met a directory it may not open: it fails alone, as one object would, under its key ("dir/"). */
static void s_on_dir_skipped(void *ud, const char *key, size_t key_len, int err, const char *message) {
    sl_job *job = ud;
    char k[S_KEY_CAP];
    snprintf(k, sizeof(k), "%.*s", (int)(key_len < sizeof(k) ? key_len : sizeof(k) - 1), key);
    atomic_fetch_add(&job->listed, 1);
    s_report_failure(job, k, err, message);
}

unsigned sl_shard_of(const char *key, size_t len, unsigned count) {
    if (count == 0)
        return 0;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    h ^= h >> 31;
    return (unsigned)(h % count);
}

/* Whether the job takes the source object `key`: its shard's, and its filters'. */
static bool s_selected(const sl_job *job, const char *key, size_t len) {
    if (job->shard_count > 0 && sl_shard_of(key, len, job->shard_count) != job->shard_index)
        return false;
    for (size_t i = 0; i < job->exclude_count; i++)
        if (sl_glob_match(job->exclude[i], key, len))
            return false;
    if (job->include_count == 0)
        return true;
    for (size_t i = 0; i < job->include_count; i++)
        if (sl_glob_match(job->include[i], key, len))
            return true;
    return false;
}

static s_item *s_item_new(const sl_object *obj) {
    s_item *it = malloc(sizeof(*it) + obj->key_len + 1);
    if (!it)
        return NULL;
    it->src = *obj;
    memcpy(it->key, obj->key, obj->key_len);
    it->key[obj->key_len] = '\0';
    it->src.key = it->key;
    it->src.source_fingerprint = NULL;
    it->has_dst = false;
    it->needs_stat = false;
    it->dst_unknown = false;
    it->check_output = false;
    it->has_out_crc32c = false;
    it->dst_gen_known = false;
    it->dst_gen = 0;
    it->held = false;
    it->big = NULL;
    return it;
}

/* An object whose output is already complete: done without being queued. */
static void s_count_skipped(sl_job *job, const sl_object *obj) {
    atomic_fetch_add(&job->listed, 1);
    atomic_fetch_add(&job->bytes_listed, obj->size);
    atomic_fetch_add(&job->skipped, 1);
    atomic_fetch_add(&job->done, 1);
}

static bool s_copies(const sl_job *job) {
    return job->kind == SL_JOB_COPY || job->kind == SL_JOB_SYNC;
}

/* Whether an object is read in slices by several workers: a copy to a store that writes at offsets from a store that
 * reads a range of one generation, bigger than a slice, with a CRC32C to check the whole against (and stored as it is
 * read: not gzip-encoded). */
static bool s_sliceable(const sl_job *job, const s_item *it) {
    if (job->slice_size == UINT64_MAX || !s_copies(job) || !job->dst || job->dry_run || job->jobs < 2 ||
        it->needs_stat || it->src.size <= job->slice_size || it->src.content_encoding)
        return false;
    /* Downloads: ranges of the generation listed, written at their offsets. */
    if (it->src.generation != 0 && it->src.has_crc32c && sl__store_reads_pinned(job->src) &&
        sl__store_writes_at(job->dst))
        return true;
    /* --composite-upload: ranges of a local file, each its own object, composed. */
    return job->composite && sl_store_scheme(job->src) == SL_SCHEME_FILE && sl__store_composes(job->dst);
}

/* Queues one object; returns false when the job stops taking work. */
static bool s_enqueue(sl_job *job, s_item *it) {
    atomic_fetch_add(&job->listed, 1);
    atomic_fetch_add(&job->bytes_listed, it->src.size);
    /* The hold keeps every worker waiting for the tokens this object's owner will queue, even past the listing's end.
     */
    it->held = s_sliceable(job, it);
    if (it->held)
        sl__queue_hold(job->queue);
    if (atomic_load(&job->cancel) || sl__queue_push(job->queue, it) < 0) {
        if (it->held)
            sl__queue_release(job->queue);
        atomic_fetch_sub(&job->listed, 1);
        atomic_fetch_sub(&job->bytes_listed, it->src.size);
        free(it);
        return false;
    }
    return true;
}

/* After the object p itself (rm -r of a URL that names both): the objects under the prefix p/, keyed "p/<key>" like p
 * in the parent store, so they come after it in byte order and every worker deletes them through its source client. */
static int s_list_under(sl_job *job) {
    sl_client *uc = NULL;
    sl_lister *ul = NULL;
    size_t plen = strlen(job->single_key);
    char *key = malloc(S_KEY_CAP);
    int rc = key ? sl_client_new(job->src_under, &uc) : sl__fail(SL_ENOMEM, "out of memory");
    sl_list_options lo = {.recursive = true};
    if (rc == 0)
        rc = sl_list_open(uc, &lo, &ul);
    sl_object obj;
    while (rc == 0 && !atomic_load(&job->cancel) && (rc = sl_list_next(ul, &obj)) > 0) {
        rc = 0;
        if (plen + 1 + obj.key_len >= S_KEY_CAP) {
            rc = sl__fail(SL_ENAMETOOLONG, "%s/%s: key too long", sl_store_url(job->src), job->single_key);
            break;
        }
        memcpy(key, job->single_key, plen);
        key[plen] = '/';
        memcpy(key + plen + 1, obj.key, obj.key_len + 1);
        obj.key = key;
        obj.key_len += plen + 1;
        if (!s_selected(job, obj.key, obj.key_len))
            continue;
        s_item *it = s_item_new(&obj);
        if (!it) {
            rc = sl__fail(SL_ENOMEM, "out of memory");
            break;
        }
        if (!s_enqueue(job, it))
            break;
    }
    sl_list_close(ul);
    sl_client_destroy(uc);
    free(key);
    return rc;
}

/* verify: complete local outputs are read back before they are skipped (a gs:// output's CRC32C is the server's). */
static bool s_verifies(const sl_job *job) {
    return job->verify && job->dst && sl_store_scheme(job->dst) == SL_SCHEME_FILE;
}

/* The output `dst` of `it` is complete by its fingerprint: its worker checks its bytes first (verify). */
static void s_note_check(s_item *it, const sl_object *dst) {
    it->check_output = true;
    it->has_out_crc32c = dst->has_committed_crc32c;
    it->out_crc32c = dst->committed_crc32c;
}

/* Records what the destination holds under the output of `it`, when `known`: `dst` (NULL: no object). Only a
 * generation can make an upload conditional: an object without one (a local file) leaves it unknown. */
static void s_note_dst(s_item *it, const sl_object *dst, bool known) {
    it->dst_gen_known = known && (!dst || dst->generation > 0);
    it->dst_gen = it->dst_gen_known && dst ? dst->generation : 0;
}

/* One object to a local directory: no listing of the destination finds what a killed run left there, so one level
 * of it is listed for that alone (the output goes into its top; a cost in its entries, once). Best effort: a
 * destination that cannot be listed is the copy's to report. */
static void s_clean_dst_top(sl_job *job) {
    sl_client *dc = NULL;
    sl_lister *l = NULL;
    sl_list_options lo = {.clean_stale = true};
    sl_object obj;
    if (sl_client_new(job->dst, &dc) == 0 && sl_list_open(dc, &lo, &l) == 0)
        while (!atomic_load(&job->cancel) && sl_list_next(l, &obj) > 0) {
        }
    sl_list_close(l);
    sl_client_destroy(dc);
}

/* The lister: streams the source listing through the filters into the queue. Unless the job is forced, it
 * merge-joins the destination listing (same byte order, resume.h) so that objects whose output is already complete
 * are counted as skipped without being queued, in O(1) memory. */
static void *s_lister_main(void *arg) {
    sl_job *job = arg;
    sl_client *sc = NULL, *dc = NULL;
    sl_lister *sl = NULL;
    sl__dst_cursor cur = {0};
    bool resume = job->dst && !job->force;
    /* A dry run changes nothing, not even leftovers. */
    bool clean = resume && !job->dry_run && sl_store_scheme(job->dst) == SL_SCHEME_FILE;
    size_t slen = strlen(job->suffix);
    char target[SL__CURSOR_KEY_CAP];
    int rc = sl_client_new(job->src, &sc);
    if (rc < 0)
        goto done;

    if (job->single_key) {
        sl_object obj;
        if ((rc = sl_stat(sc, job->single_key, &obj)) < 0)
            goto done;
        obj.key = job->single_key;
        obj.key_len = strlen(job->single_key);
        s_item *it = s_item_new(&obj);
        if (!it) {
            rc = sl__fail(SL_ENOMEM, "out of memory");
            goto done;
        }
        it->dst_unknown = resume; /* one object: its worker looks the output up */
        if (clean)
            s_clean_dst_top(job);
        if ((job->src_under && !s_selected(job, it->key, it->src.key_len)) ||
            (job->shard_count > 0 && sl_shard_of(it->key, it->src.key_len, job->shard_count) != job->shard_index))
            free(it);
        else
            s_enqueue(job, it);
        if (job->src_under)
            rc = s_list_under(job);
        goto done;
    }

    sl_list_options lo = {.recursive = true, .on_skipped = s_on_dir_skipped, .on_skipped_data = job};
    if ((rc = sl_list_open(sc, &lo, &sl)) < 0)
        goto done;
    if (resume && ((rc = sl_client_new(job->dst, &dc)) < 0 || (rc = sl__dst_cursor_open(&cur, dc, clean)) < 0))
        goto done;
    sl_object obj;
    uint64_t seen = 0;
    while (!atomic_load(&job->cancel) && (rc = sl_list_next(sl, &obj)) > 0) {
        seen++;
        if (!s_selected(job, obj.key, obj.key_len))
            continue;
        const sl_object *dobj = NULL;
        int found = 0;
        bool looked = resume && obj.key_len + slen < sizeof(target);
        if (looked) {
            memcpy(target, obj.key, obj.key_len);
            memcpy(target + obj.key_len, job->suffix, slen);
            if ((found = sl__dst_cursor_seek(&cur, target, obj.key_len + slen, &dobj)) < 0) {
                rc = found;
                goto done;
            }
        }
        sl__resume_action action =
            found == 1 ? sl__resume_decide(&obj, dobj, job->job_tag, s_copies(job)) : SL__RESUME_DO;
        if (action == SL__RESUME_SKIP && !s_verifies(job)) {
            s_count_skipped(job, &obj);
            continue;
        }
        s_item *it = s_item_new(&obj);
        if (!it) {
            rc = sl__fail(SL_ENOMEM, "out of memory");
            goto done;
        }
        if (action == SL__RESUME_SKIP)
            s_note_check(it, dobj);
        if (action == SL__RESUME_VERIFY) {
            it->dst = *dobj;
            it->dst.key = NULL;
            it->dst.source_fingerprint = NULL;
            it->has_dst = true;
        }
        it->dst_unknown = found == 2;
        s_note_dst(it, found == 1 ? dobj : NULL, looked && found != 2);
        if (!s_enqueue(job, it))
            break;
    }
    /* A bucket has no directories: a prefix that lists nothing is missing, unless a probe finds it exists (the root of
     * an empty bucket, a folder placeholder). A local directory that is not there failed to open. */
    if (rc == 0 && !seen && !atomic_load(&job->cancel) && sl_store_scheme(job->src) != SL_SCHEME_FILE) {
        int state = sl_prefix_probe(sc, NULL);
        if (state < 0)
            rc = state;
        else if (state == SL_PREFIX_MISSING)
            rc = sl__fail(SL_ENOENT, "%s: no such object or prefix", sl_store_url(job->src));
    }
    /* The rest of a local destination is listed too, so every leftover temp file in it is seen and removed. */
    if (rc == 0 && clean)
        rc = sl__dst_cursor_drain(&cur, &job->cancel);

done:
    if (rc < 0)
        s_set_fatal(job, rc, sl_last_error());
    else
        atomic_store(&job->listing_done, true);
    sl__dst_cursor_close(&cur);
    sl_list_close(sl);
    sl_client_destroy(dc);
    sl_client_destroy(sc);
    sl__queue_close(job->queue);
    return NULL;
}

/* --retry-failed: the keys of the failure log, in the log's order, into the queue. An item carries only its key: the
 * worker that takes it looks it up (in parallel, on its own client). */
static int s_feed_retry(sl_job *job) {
    sl__faillog *log = NULL;
    int rc = sl__faillog_open(job->retry_path, &log);
    if (rc < 0)
        return rc;
    const char *key;
    size_t len;
    while (!atomic_load(&job->cancel) && (rc = sl__faillog_next(log, &key, &len)) > 0) {
        if (!s_selected(job, key, len))
            continue;
        sl_object obj = {.key = key, .key_len = len};
        s_item *it = s_item_new(&obj);
        if (!it) {
            rc = sl__fail(SL_ENOMEM, "out of memory");
            break;
        }
        it->needs_stat = true;
        if (!s_enqueue(job, it))
            break;
    }
    sl__faillog_close(log);
    return rc < 0 ? rc : 0;
}

/* The thread that feeds the queue: the lister, or the failure log for --retry-failed. Its requests stop when the
 * job is aborted. */
static void *s_feeder_main(void *arg) {
    sl_job *job = arg;
    sl__http_bind_abort(&job->abort);
    if (job->retry_path) {
        int rc = s_feed_retry(job);
        if (rc < 0)
            s_set_fatal(job, rc, sl_last_error());
        else
            atomic_store(&job->listing_done, true);
        sl__queue_close(job->queue);
    } else {
        s_lister_main(job);
    }
    sl__http_bind_abort(NULL);
    pthread_mutex_lock(&job->synced.lock);
    atomic_store(&job->feeder_done, true);
    pthread_cond_broadcast(&job->synced.finished);
    pthread_mutex_unlock(&job->synced.lock);
    return NULL;
}

/* Per-worker state: created once at thread start, reused for every object. */
typedef struct s_worker {
    sl_job *job;
    unsigned index; /* 0..jobs-1: the memory guard holds back the highest ones first */
    sl_client *src;
    sl_client *dst;
    void *op_state;
    sl__op_config op_cfg; /* the job's, with this worker's index: valid until thread_fini has returned */
    char result[S_RESULT_CAP];
    char error[S_ERROR_CAP];
    char dst_key[S_KEY_CAP];
    char fingerprint[SL__FP_CAP]; /* of the object being processed, recorded with its output */
    char src_url[S_KEY_CAP + 64];
    char line[S_LINE_CAP];
    /* rm -r on a store that deletes in batches: the keys gathered for the next one, copied into a transfer buffer
     * taken from the pool for as long as a batch is open (del_buf NULL otherwise). */
    unsigned char *del_buf;
    size_t del_used, del_n;
    const char *del_keys[SL__DELETE_BATCH_MAX];
} s_worker;

static size_t s_worker_struct_bytes(void) {
    return sizeof(s_worker);
}

/* A worker's struct is ~170 KiB of fixed buffers of which an object uses a few pages. Mapped rather than calloc'd: its
 * pages stay untouched (and cost nothing) until written, where calloc would take it from an arena whenever malloc's
 * mmap threshold has grown, and clear all of it: at -j 256, 40 MiB of memory never used. */
static s_worker *s_worker_alloc(void) {
    void *p = mmap(NULL, sizeof(s_worker), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void s_worker_free(s_worker *w) {
    if (w)
        munmap(w, sizeof(*w));
}

/* Streams an object through CRC32C. Returns 0 and sets *crc, or <0. */
static int s_crc_of(sl_client *client, const char *key, unsigned char *buf, size_t cap, uint32_t *crc,
                    uint64_t *bytes) {
    sl_reader *r = NULL;
    int rc = sl_read_open(client, key, 0, SL_LENGTH_TO_END, NULL, &r);
    if (rc < 0)
        return rc;
    uint32_t c = 0;
    int64_t n;
    while ((n = sl_read(r, buf, cap)) > 0) {
        c = sl__crc32c_update(c, buf, (size_t)n);
        *bytes += (uint64_t)n;
    }
    sl_read_close(r);
    *crc = c;
    return n < 0 ? (int)n : 0;
}

/* Sync: true if the destination already holds the same bytes (same size, same CRC32C). Checksums the metadata
 * carries are used as they are; otherwise both sides are read and checksummed. */
static bool s_already_synced(s_worker *w, const s_item *it, unsigned char *buf) {
    if (!it->has_dst || it->dst.size != it->src.size)
        return false;
    uint32_t src_crc = it->src.crc32c, dst_crc = it->dst.crc32c;
    uint64_t read_bytes = 0;
    if (!it->src.has_crc32c && s_crc_of(w->src, it->key, buf, w->job->buffer_size, &src_crc, &read_bytes) < 0)
        return false;
    if (!it->dst.has_crc32c && s_crc_of(w->dst, it->key, buf, w->job->buffer_size, &dst_crc, &read_bytes) < 0)
        return false;
    atomic_fetch_add(&w->job->bytes_read, read_bytes);
    return src_crc == dst_crc;
}

/* sl_stat of the destination for a lookup (is the output there? which generation?): its answer, a 404 for an output not
 * made yet, is not the object's status, which stays the one of the object's own requests (the failure log's
 * http_status). */
static int s_lookup_dst(s_worker *w, const char *key, sl_object *out) {
    sl__http_tally before;
    sl__http_tally_get(&before);
    int rc = sl_stat(w->dst, key, out);
    sl__http_tally_restore(&before);
    return rc;
}

/* verify: whether the output its fingerprint says is complete still has the bytes it was committed with. An output
 * that cannot be read is redone (and fails then if its place cannot be written). */
static bool s_output_intact(s_worker *w, const s_item *it, unsigned char *buf) {
    if (!it->has_out_crc32c)
        return false;
    uint32_t crc;
    uint64_t read_bytes = 0;
    int rc = s_crc_of(w->dst, w->dst_key, buf, w->job->buffer_size, &crc, &read_bytes);
    atomic_fetch_add(&w->job->bytes_read, read_bytes);
    return rc == 0 && crc == it->out_crc32c;
}

/* Whether the output of `it` is already complete: looked up now if the listing could not tell, then for cp/sync an
 * output of the same size that sluice did not record is compared by checksum. */
static bool s_output_complete(s_worker *w, s_item *it, unsigned char *buf) {
    sl_job *job = w->job;
    if (it->check_output)
        return s_output_intact(w, it, buf);
    if (it->dst_unknown) {
        sl_object d;
        int rc = s_lookup_dst(w, w->dst_key, &d);
        if (rc == 0 || rc == SL_ENOENT)
            s_note_dst(it, rc == 0 ? &d : NULL, true);
        if (rc < 0)
            return false;
        switch (sl__resume_decide(&it->src, &d, job->job_tag, s_copies(job))) {
        case SL__RESUME_SKIP:
            if (!s_verifies(job))
                return true;
            s_note_check(it, &d);
            return s_output_intact(w, it, buf);
        case SL__RESUME_VERIFY:
            it->dst = d;
            it->dst.key = NULL;
            it->dst.source_fingerprint = NULL;
            it->has_dst = true;
            break;
        case SL__RESUME_DO:
            return false;
        }
    }
    return it->has_dst && s_already_synced(w, it, buf);
}

/* Before an output is uploaded to a store with generations: what its destination holds, if neither the listing nor a
 * lookup has said yet (--force, --retry-failed, an attempt after one that failed its checksum), so that the upload is
 * conditional on it from its first attempt. One metadata request; if it fails, the upload goes unconditional. */
static void s_check_dst(s_worker *w, s_item *it) {
    if (it->dst_gen_known || sl_store_scheme(w->job->dst) == SL_SCHEME_FILE)
        return;
    sl_object d;
    int rc = s_lookup_dst(w, w->dst_key, &d);
    if (rc == 0 || rc == SL_ENOENT)
        s_note_dst(it, rc == 0 ? &d : NULL, true);
}

/* Formats {"key":..,"size":..,<members>} into w->line. Returns its length or 0 if it does not fit. */
static size_t s_format_line(s_worker *w, const s_item *it, const char *members, size_t members_len) {
    size_t n = (size_t)snprintf(w->line, sizeof(w->line), "{\"key\":");
    n += sl_json_quote(w->line + n, sizeof(w->line) - n, it->key, it->src.key_len);
    if (n >= sizeof(w->line))
        return 0;
    int m = snprintf(w->line + n, sizeof(w->line) - n, ",\"size\":%llu%s%.*s}", (unsigned long long)it->src.size,
                     members_len ? "," : "", (int)members_len, members);
    if (m < 0 || (size_t)m >= sizeof(w->line) - n)
        return 0;
    return n + (size_t)m;
}

static void s_emit_line(sl_job *job, const char *line, size_t len) {
    pthread_mutex_lock(&job->synced.lock);
    if (job->on_result)
        job->on_result(job->user_data, line, len);
    pthread_mutex_unlock(&job->synced.lock);
}

/* A durable commit handed to the destination's committer (--fsync): the object is done, or failed, when it calls. */
typedef struct s_deferred {
    sl_job *job;
    uint64_t bytes; /* written to the output */
    char key[];     /* the object's */
} s_deferred;

static void s_committed(void *ctx, int rc, const char *message) {
    s_deferred *d = ctx;
    if (rc == 0) {
        atomic_fetch_add(&d->job->bytes_written, d->bytes);
        atomic_fetch_add(&d->job->done, 1);
    } else {
        tl_attempts = 1; /* the committer's thread: the commit is the object's last step, of its one good attempt */
        sl__http_tally_reset();
        s_report_failure(d->job, d->key, rc, message);
    }
    free(d);
}

/* Commits the output of `it` (bytes long): with --fsync, where the store defers durable commits, hands it over and
 * sets *deferred (the object is counted when s_committed runs); else commits it here. Returns 0 or <0. */
static int s_commit(s_worker *w, const s_item *it, sl_writer *out, uint64_t bytes, bool *deferred) {
    *deferred = false;
    if (w->job->fsync) {
        s_deferred *d = malloc(sizeof(*d) + it->src.key_len + 1);
        if (!d) {
            sl_write_abort(out);
            return sl__fail(SL_ENOMEM, "out of memory committing the output");
        }
        d->job = w->job;
        d->bytes = bytes;
        memcpy(d->key, it->key, it->src.key_len + 1);
        int rc = sl__write_commit_deferred(out, s_committed, d);
        if (rc != SL_ENOTSUP) {
            if (rc < 0)
                free(d);
            *deferred = rc == 0;
            return rc;
        }
        free(d);
    }
    return sl_write_commit(out);
}

/* One attempt at an object: open its source and destination, run the operation, commit or abort. Returns 0 or <0
 * with w->error filled. On success *len is the result line length (w->line), *has_out whether an output object was
 * written, *written its bytes, *deferred whether its commit was handed over (s_commit): it is not done yet. */
static int s_run_op(s_worker *w, s_item *it, unsigned char *buf, size_t *len_out, bool *has_out, uint64_t *written,
                    bool *deferred) {
    sl_job *job = w->job;
    sl_reader *in = NULL;
    sl_writer *out = NULL;
    tl_attempts++;
    *deferred = false;
    w->result[0] = '\0';
    w->error[0] = '\0';
    int rc = sl_read_open(w->src, it->key, 0, SL_LENGTH_TO_END, NULL, &in);
    if (rc < 0) {
        sl__text_cut(w->error, sizeof(w->error), sl_last_error(), strlen(sl_last_error()));
        return rc;
    }
    if (job->dst) {
        /* Only a copy's size is known in advance. */
        sl_write_options wo = {.size_hint = s_copies(job) ? it->src.size : 0, .fsync = job->fsync};
        if (sl__fp_format(&it->src, job->job_tag, w->fingerprint, sizeof(w->fingerprint)))
            wo.source_fingerprint = w->fingerprint;
        s_check_dst(w, it);
        wo.if_generation_match_set = it->dst_gen_known;
        wo.if_generation_match = it->dst_gen;
        if ((rc = sl_write_open(w->dst, w->dst_key, &wo, &out)) < 0) {
            sl_read_close(in);
            sl__text_cut(w->error, sizeof(w->error), sl_last_error(), strlen(sl_last_error()));
            return rc;
        }
    }
    sl__task task = {
        .src = &it->src,
        .src_url = w->src_url,
        .dst_key = job->dst ? w->dst_key : NULL,
        .in = in,
        .out = out,
        .buf = buf,
        .buf_size = job->buffer_size,
        .result = w->result,
        .result_cap = sizeof(w->result),
        .error = w->error,
        .error_cap = sizeof(w->error),
        .abort = &job->abort,
        .no_write = !(job->op->flags & SL_OP_TRANSFORMS),
    };
    rc = job->op->process(w->op_state, &task);
    if (rc > 0)
        rc = sl__task_fail(&task, SL_EINTERNAL, "operation %s: process returned %d, not 0 or a negative SL_E* code",
                           job->op->name, rc);
    sl_read_close(in);
    atomic_fetch_add(&job->bytes_read, task.bytes_in);

    size_t len = 0;
    bool line_out = !(job->op->flags & SL_OP_TRANSFORMS) || task.result_is_output;
    if (rc == 0 && (line_out || !out)) {
        len = s_format_line(w, it, w->result, task.result_len);
        if (!len)
            rc = sl__task_fail(&task, SL_ETOOBIG, "result line too long");
    }
    if (rc == 0 && out && line_out) {
        w->line[len] = '\n';
        rc = sl_write(out, w->line, len + 1);
        if (rc < 0)
            sl__task_fail(&task, rc, "%s", sl_last_error());
        else
            task.bytes_out = len + 1;
    }
    if (out) {
        if (rc == 0) {
            if ((rc = s_commit(w, it, out, task.bytes_out, deferred)) < 0)
                sl__task_fail(&task, rc, "%s", sl_last_error());
        } else {
            sl_write_abort(out);
        }
    }
    *len_out = len;
    *has_out = out != NULL;
    *written = task.bytes_out;
    return rc;
}

/* Reads slice i of big through this worker's source client into big's output (or, composing, into the object of
 * slice i through this worker's destination client). Returns 0 and its CRC32C, or <0. */
static int s_slice_read(s_worker *w, s_big *big, unsigned i, unsigned char *buf, uint32_t *crc) {
    sl_job *job = w->job;
    uint64_t offset = (uint64_t)i * big->slice,
             length = big->size - offset < big->slice ? big->size - offset : big->slice;
    sl_reader *in = NULL;
    sl_writer *part = NULL;
    int rc;
    if (big->parts) {
        sl_object info;
        rc = sl_read_open(w->src, big->key, offset, length, &info, &in);
        if (rc == 0 && (info.size != big->size || info.mtime_ns != big->mtime_ns))
            rc = sl__fail(SL_ECORRUPT, "%s: changed since it was listed (size or modification time); rerun to copy it",
                          big->src_url);
        char key[S_KEY_CAP + 48];
        snprintf(key, sizeof(key), "%s%u", big->parts, i);
        /* A part is a new object of a name of its own: ifGenerationMatch=0. */
        sl_write_options wo = {.size_hint = length, .if_generation_match_set = true, .if_generation_match = 0};
        if (rc == 0)
            rc = sl_write_open(w->dst, key, &wo, &part);
    } else {
        rc = sl__read_open_gen(w->src, big->key, offset, length, big->generation, &in);
    }
    uint64_t got = 0;
    *crc = 0;
    while (rc == 0) {
        int64_t n = sl_read(in, buf, job->buffer_size);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        *crc = sl__crc32c_update(*crc, buf, (size_t)n);
        if (got + (uint64_t)n > length) {
            rc = sl__fail(SL_ECORRUPT, "%s: slice %u: more than its %" PRIu64 " bytes came (not accepted)",
                          big->src_url, i, length);
            break;
        }
        rc = part ? sl_write(part, buf, (size_t)n) : sl__write_at(big->out, offset + got, buf, (size_t)n);
        got += (uint64_t)n;
        atomic_fetch_add(&job->bytes_read, (uint64_t)n);
    }
    sl_read_close(in);
    if (rc == 0 && got != length)
        rc =
            sl__fail(SL_ECORRUPT, "%s: slice %u (bytes %" PRIu64 "-%" PRIu64 "): %" PRIu64 " bytes came (not accepted)",
                     big->src_url, i, offset, offset + length - 1, got);
    if (part) {
        if (rc == 0)
            rc = sl_write_commit(part);
        else
            sl_write_abort(part);
    }
    return rc;
}

/* Claims and reads slices of big until none is left (or one failed). */
static void s_slice_loop(s_worker *w, s_big *big, unsigned char *buf) {
    for (;;) {
        pthread_mutex_lock(&big->lock);
        if (big->closed || big->next == big->n) {
            big->closed = true;
            pthread_mutex_unlock(&big->lock);
            return;
        }
        unsigned i = big->next++;
        pthread_mutex_unlock(&big->lock);
        uint32_t crc = 0;
        int rc = s_slice_read(w, big, i, buf, &crc);
        pthread_mutex_lock(&big->lock);
        big->crc[i] = crc;
        if (rc < 0 && big->rc == 0) {
            big->rc = rc;
            sl__text_cut(big->error, sizeof(big->error), sl_last_error(), strlen(sl_last_error()));
            big->closed = true;
        }
        big->finished++;
        pthread_cond_broadcast(&big->slice_done);
        pthread_mutex_unlock(&big->lock);
    }
}

static void s_big_unref(s_big *big) {
    pthread_mutex_lock(&big->lock);
    bool last = --big->refs == 0;
    pthread_mutex_unlock(&big->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&big->lock);
    pthread_cond_destroy(&big->slice_done);
    free(big);
}

/* One try of a sliced object (its owner's side): 0 once its output is committed, or <0 with w->error. */
static int s_sliced_once(s_worker *w, s_item *it, unsigned char *buf) {
    sl_job *job = w->job;
    tl_attempts++;
    w->error[0] = '\0';
    sl_write_options wo = {.size_hint = it->src.size, .fsync = job->fsync};
    if (sl__fp_format(&it->src, job->job_tag, w->fingerprint, sizeof(w->fingerprint)))
        wo.source_fingerprint = w->fingerprint;
    s_check_dst(w, it);
    wo.if_generation_match_set = it->dst_gen_known;
    wo.if_generation_match = it->dst_gen;
    sl_writer *out = NULL;
    /* Composing: the parts are named after the output, with a random word against a concurrent run's. */
    bool composing = !sl__store_writes_at(job->dst);
    char parts[S_KEY_CAP + 32];
    if (composing) {
        static const char letters[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        char word[7];
        unsigned char raw[6];
        if (getentropy(raw, sizeof(raw)) != 0)
            memset(raw, (int)(s_monotonic_ns() & 0xff), sizeof(raw));
        for (int k = 0; k < 6; k++)
            word[k] = letters[raw[k] % 36];
        word[6] = '\0';
        snprintf(parts, sizeof(parts), "%s.sluice-part-%s-", w->dst_key, word);
    }
    int rc = composing ? 0 : sl_write_open(w->dst, w->dst_key, &wo, &out);
    /* A composite has at most S_COMPOSE_PARTS_MAX components: bigger slices for an object that would need more. */
    uint64_t slice = job->slice_size;
    if (composing && (it->src.size + slice - 1) / slice > S_COMPOSE_PARTS_MAX)
        slice = (it->src.size + S_COMPOSE_PARTS_MAX - 1) / S_COMPOSE_PARTS_MAX;
    uint64_t n = (it->src.size + slice - 1) / slice;
    s_big *big = rc < 0 ? NULL : calloc(1, sizeof(*big) + (size_t)n * sizeof(uint32_t));
    if (rc == 0 && !big) {
        if (out)
            sl_write_abort(out);
        rc = sl__fail(SL_ENOMEM, "out of memory");
    }
    if (rc < 0) {
        sl__text_cut(w->error, sizeof(w->error), sl_last_error(), strlen(sl_last_error()));
        return rc;
    }
    pthread_mutex_init(&big->lock, NULL);
    pthread_cond_init(&big->slice_done, NULL);
    big->out = out;
    big->parts = composing ? parts : NULL;
    big->mtime_ns = it->src.mtime_ns;
    big->src_url = w->src_url;
    big->key = it->key;
    big->generation = it->src.generation;
    big->size = it->src.size;
    big->slice = slice;
    big->n = (unsigned)n;
    big->refs = 1;
    /* Tokens for other workers, first in the queue: each one reads slices until none is left. */
    uint64_t helpers = n - 1 < job->jobs - 1 ? n - 1 : job->jobs - 1;
    if (helpers > S_SLICE_HELPERS_MAX)
        helpers = S_SLICE_HELPERS_MAX;
    for (uint64_t t = 0; t < helpers; t++) {
        s_item *token = calloc(1, sizeof(*token) + 1);
        if (!token)
            break;
        token->big = big;
        token->src.key = token->key;
        pthread_mutex_lock(&big->lock);
        big->refs++;
        pthread_mutex_unlock(&big->lock);
        if (sl__queue_push_front(job->queue, token) < 0) {
            free(token);
            s_big_unref(big);
            break;
        }
    }
    if (it->held) {
        sl__queue_release(job->queue);
        it->held = false;
    }
    s_slice_loop(w, big, buf);
    pthread_mutex_lock(&big->lock);
    big->closed = true;
    while (big->finished < big->next)
        pthread_cond_wait(&big->slice_done, &big->lock);
    rc = big->rc;
    if (rc < 0)
        snprintf(w->error, sizeof(w->error), "%s", big->error);
    pthread_mutex_unlock(&big->lock);
    uint32_t crc_all = 0;
    if (rc == 0) {
        for (unsigned i = 0; i < big->n; i++) {
            uint64_t len = i + 1 < big->n ? big->slice : big->size - (uint64_t)i * big->slice;
            crc_all = sl__crc32c_combine(crc_all, big->crc[i], len);
        }
        /* A source without a CRC32C of its own (a local file): the combined one is what the composite must have. */
        if (it->src.has_crc32c && crc_all != it->src.crc32c)
            rc =
                sl__fail(SL_ECORRUPT,
                         "%s: CRC32C mismatch: the %u slices read combine to %08x, the object has %08x (not committed)",
                         w->src_url, big->n, crc_all, it->src.crc32c);
    }
    if (composing) {
        if (rc == 0) {
            rc = sl__store_compose(w->dst, w->dst_key, parts, big->n, big->size, crc_all, &wo);
        } else {
            /* The parts made so far go; the failure's message stays. */
            char saved[S_ERROR_CAP];
            snprintf(saved, sizeof(saved), "%s", sl_last_error());
            for (unsigned i = 0; i < big->next; i++) {
                char key[S_KEY_CAP + 48];
                snprintf(key, sizeof(key), "%s%u", parts, i);
                (void)sl_delete(w->dst, key);
            }
            sl__fail(rc, "%s", saved);
        }
    } else if (rc == 0) {
        /* The slices' combined CRC32C is the output's (checked against the object's above); --fsync: the commit
         * waits for its batch of the committer. */
        sl__write_set_crc32c(out, crc_all);
        rc = sl_write_commit(out);
    } else {
        sl_write_abort(out);
    }
    if (rc < 0 && !w->error[0])
        sl__text_cut(w->error, sizeof(w->error), sl_last_error(), strlen(sl_last_error()));
    s_big_unref(big);
    return rc;
}

/* A sliced object (s_sliceable), its checksum failures tried again as a whole object's are. False when it is to be
 * done in one piece instead (nothing was reported). */
static bool s_run_sliced(s_worker *w, s_item *it, unsigned char *buf) {
    sl_job *job = w->job;
    int rc;
    for (unsigned attempt = 0;; attempt++) {
        rc = s_sliced_once(w, it, buf);
        if (rc != SL_ECORRUPT || attempt + 1 >= S_CORRUPT_ATTEMPTS || atomic_load(&job->cancel))
            break;
        it->dst_gen_known = false;
    }
    /* A key whose parts' names ("<key>.sluice-part-...") would pass the store's limit goes up in one piece. */
    if (rc == SL_ENAMETOOLONG && !sl__store_writes_at(job->dst))
        return false;
    if (rc < 0) {
        s_report_failure(job, it->key, rc, w->error[0] ? w->error : sl_strerror(rc));
        return true;
    }
    atomic_fetch_add(&job->bytes_written, it->src.size);
    atomic_fetch_add(&job->done, 1);
    return true;
}

/* --dry-run: the object's line, what would be done. Apart from s_process, whose frame every worker's deeper calls sit
 * under: its buffers (two keys' worth) would push them all a few pages down. */
__attribute__((noinline)) static void s_dry_run_line(s_worker *w, const s_item *it) {
    sl_job *job = w->job;
    char members[S_KEY_CAP * 2];
    size_t n = (size_t)snprintf(members, sizeof(members), "\"dry_run\":true");
    if (job->dst) {
        n += (size_t)snprintf(members + n, sizeof(members) - n, ",\"dst\":");
        char url[S_KEY_CAP + 64];
        size_t ul = sl_store_key_url(job->dst, w->dst_key, url, sizeof(url));
        n += sl_json_quote(members + n, n < sizeof(members) ? sizeof(members) - n : 0, url,
                           ul < sizeof(url) ? ul : sizeof(url) - 1);
    }
    size_t len = n < sizeof(members) ? s_format_line(w, it, members, n) : 0;
    if (len)
        s_emit_line(job, w->line, len);
}

static void s_process(s_worker *w, s_item *it, unsigned char *buf) {
    sl_job *job = w->job;
    size_t klen = it->src.key_len, slen = strlen(job->suffix);
    if (klen + slen + 1 > sizeof(w->dst_key)) {
        s_report_failure(job, it->key, SL_ENAMETOOLONG, "key too long");
        return;
    }
    memcpy(w->dst_key, it->key, klen);
    memcpy(w->dst_key + klen, job->suffix, slen + 1);
    sl_store_key_url(job->src, it->key, w->src_url, sizeof(w->src_url));

    /* Before the dry run: a dry run lists only what would really be done. Checking reads, never writes. */
    if (job->dst && !job->force && s_output_complete(w, it, buf)) {
        atomic_fetch_add(&job->skipped, 1);
        atomic_fetch_add(&job->done, 1);
        return;
    }

    if (job->dry_run) {
        s_dry_run_line(w, it);
        atomic_fetch_add(&job->done, 1);
        return;
    }

    int rc = SL_ENOTSUP;
    if (job->kind == SL_JOB_DELETE) {
        if ((rc = sl_delete(w->src, it->key)) < 0)
            s_report_failure(job, it->key, rc, sl_last_error());
        else
            atomic_fetch_add(&job->done, 1);
        return;
    }
    if (job->kind == SL_JOB_COPY || job->kind == SL_JOB_SYNC) {
        /* A server-side copy whose result is not the source was deleted (SL_ECORRUPT): try it again, like data. */
        for (unsigned attempt = 0;; attempt++) {
            s_check_dst(w, it);
            sl_write_options co = {.if_generation_match_set = it->dst_gen_known, .if_generation_match = it->dst_gen};
            /* Recorded with the copy where the store records one (s3://), so that a rerun skips it as it skips a
             * written output; gs:// keeps the source's metadata, fingerprint included. */
            if (sl__fp_format(&it->src, job->job_tag, w->fingerprint, sizeof(w->fingerprint)))
                co.source_fingerprint = w->fingerprint;
            rc = sl__store_copy(w->dst, job->src, &it->src, w->dst_key, &co);
            if (rc != SL_ECORRUPT || attempt + 1 >= S_CORRUPT_ATTEMPTS)
                break;
            it->dst_gen_known = false; /* what the copy made was deleted */
        }
        if (rc == 0) {
            /* Copied on the server: no byte crossed this machine. */
            atomic_fetch_add(&job->done, 1);
            return;
        }
    }
    if (rc != SL_ENOTSUP) {
        s_report_failure(job, it->key, rc, sl_last_error());
        return;
    }
    if (it->held && s_run_sliced(w, it, buf))
        return;
    /* Data that failed its checksum was never committed; try the object again before reporting it. */
    size_t len = 0;
    bool has_out = false, deferred = false;
    uint64_t written = 0;
    for (unsigned attempt = 0;; attempt++) {
        rc = s_run_op(w, it, buf, &len, &has_out, &written, &deferred);
        if (rc != SL_ECORRUPT || attempt + 1 >= S_CORRUPT_ATTEMPTS)
            break;
        it->dst_gen_known = false; /* the attempt may have changed the destination (made, then deleted, an object) */
    }
    if (rc < 0) {
        s_report_failure(job, it->key, rc, w->error[0] ? w->error : sl_strerror(rc));
        return;
    }
    if (deferred)
        return; /* counted by s_committed once durable */
    if (!has_out)
        s_emit_line(job, w->line, len);
    atomic_fetch_add(&job->bytes_written, has_out ? written : len + 1);
    atomic_fetch_add(&job->done, 1);
}

/* --retry-failed: what the source (and for sync the destination) holds under the key now. False, with the failure
 * reported, when it is gone or cannot be looked up. */
static bool s_resolve(s_worker *w, s_item *it) {
    sl_job *job = w->job;
    sl_object obj;
    int rc = sl_stat(w->src, it->key, &obj);
    if (rc < 0) {
        char why[S_ERROR_CAP + S_KEY_CAP + PATH_MAX], url[S_KEY_CAP + 64];
        if (rc == SL_ENOENT) {
            sl_store_key_url(job->src, it->key, url, sizeof(url));
            snprintf(why, sizeof(why), "%s: no longer exists at the source (named in the failure log %s)", url,
                     job->retry_path);
        } else {
            snprintf(why, sizeof(why), "%s", sl_last_error());
        }
        s_report_failure(job, it->key, rc, why);
        return false;
    }
    size_t len = it->src.key_len;
    it->src = obj;
    it->src.key = it->key;
    it->src.key_len = len;
    atomic_fetch_add(&job->bytes_listed, obj.size);
    if (job->kind == SL_JOB_SYNC) {
        int drc = s_lookup_dst(w, it->key, &it->dst);
        if (drc == 0) {
            it->dst.key = NULL;
            it->has_dst = true;
        }
        if (drc == 0 || drc == SL_ENOENT)
            s_note_dst(it, drc == 0 ? &it->dst : NULL, true);
    }
    return true;
}

static void s_worker_finished(sl_job *job) {
    pthread_mutex_lock(&job->synced.lock);
    atomic_fetch_sub(&job->workers_running, 1);
    pthread_cond_broadcast(&job->synced.finished);
    pthread_mutex_unlock(&job->synced.lock);
}

/* A worker the memory guard has held back waits here before its next object. False when it should exit instead:
 * the job was cancelled, or the listing is complete and the workers still active will drain the queue (worker 0
 * always is one). */
static bool s_may_take(const s_worker *w) {
    sl_job *job = w->job;
    bool released = false;
    while (w->index >= atomic_load(&job->active_limit)) {
        /* A worker process is memory of its own: a thread held back stops its process rather than keep it idle. */
        if (!released && job->op == &sl__op_worker && w->op_state)
            sl__op_worker_release(w->op_state);
        released = true;
        if (atomic_load(&job->cancel) || atomic_load(&job->listing_done))
            return false;
        struct timespec ts = {0, (long)S_THROTTLE_WAIT_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return true;
}

static void s_del_done(void *ctx, size_t i, int rc, const char *message) {
    s_worker *w = ctx;
    if (rc < 0)
        s_report_failure(w->job, w->del_keys[i], rc, message);
    else
        atomic_fetch_add(&w->job->done, 1);
}

/* Deletes the keys gathered (one request on s3://) and gives the buffer back. Each key is done or fails alone. A job
 * that stopped taking work meanwhile deletes none of them: they count as listed but not started. */
static void s_del_flush(s_worker *w) {
    sl_job *job = w->job;
    if (w->del_n) {
        if (atomic_load(&job->cancel)) {
            atomic_fetch_add(&job->not_started, w->del_n);
        } else {
            tl_attempts = 0;
            sl__http_tally_reset();
            (void)sl__store_delete_batch(w->src, w->del_keys, w->del_n, s_del_done, w);
        }
    }
    w->del_n = w->del_used = 0;
    sl__pool_release(job->pool, w->del_buf);
    w->del_buf = NULL;
}

/* rm -r: takes the object into the worker's batch of keys to delete, sending the batch when it is full. False when
 * the object is not for a batch (the store deletes one by one, a dry run, a key to look up first, no buffer). */
static bool s_del_gather(s_worker *w, const s_item *it) {
    sl_job *job = w->job;
    if (job->kind != SL_JOB_DELETE || job->dry_run || it->needs_stat || !sl__store_deletes_in_batches(job->src))
        return false;
    size_t len = it->src.key_len + 1;
    if (w->del_buf && (w->del_n == SL__DELETE_BATCH_MAX || w->del_used + len > job->buffer_size))
        s_del_flush(w);
    if (len > job->buffer_size)
        return false;
    if (!w->del_buf && !(w->del_buf = sl__pool_acquire(job->pool)))
        return false;
    memcpy(w->del_buf + w->del_used, it->key, len);
    w->del_keys[w->del_n++] = (const char *)w->del_buf + w->del_used;
    w->del_used += len;
    return true;
}

static void *s_worker_main(void *arg) {
    s_worker *w = arg;
    sl_job *job = w->job;
    int rc = sl_client_new(job->src, &w->src);
    if (rc == 0 && job->dst)
        rc = sl_client_new(job->dst, &w->dst);
    if (rc == 0 && job->op->thread_init) {
        w->op_cfg = job->op_cfg;
        w->op_cfg.worker = w->index;
        w->op_cfg.workers = job->jobs;
        sl__fail(SL_OK, "%s", "");
        rc = job->op->thread_init(&w->op_cfg, &w->op_state);
        if (rc > 0)
            rc = sl__fail(SL_EINTERNAL, "thread_init returned %d, not 0 or a negative SL_E* code", rc);
        if (rc < 0) {
            w->op_state = NULL; /* what a failed thread_init left there is not a state */
            if (job->own_op)
                sl__fail(rc, "operation %s: cannot start: %s", job->op->name,
                         sl_last_error()[0] ? sl_last_error() : sl_strerror(rc));
        }
    }
    if (rc < 0) {
        s_set_fatal(job, rc, sl_last_error());
        sl__queue_close(job->queue);
    }
    sl__http_bind_abort(&job->abort);
    s_item *it;
    while (s_may_take(w) && (it = sl__queue_pop(job->queue)) != NULL) {
        tl_attempts = 0;
        sl__http_tally_reset();
        if (it->big) {
            /* A token: slices of another worker's object, read through this worker's clients. */
            unsigned char *buf = rc == 0 && !atomic_load(&job->cancel) ? sl__pool_acquire(job->pool) : NULL;
            if (buf)
                s_slice_loop(w, it->big, buf);
            sl__pool_release(job->pool, buf);
            s_big_unref(it->big);
            free(it);
            continue;
        }
        if (rc == 0 && !atomic_load(&job->cancel) && s_del_gather(w, it)) {
            free(it);
            continue;
        }
        if (w->del_buf)
            s_del_flush(w); /* one transfer buffer at a time */
        if (rc == 0 && !atomic_load(&job->cancel)) {
            unsigned char *buf = sl__pool_acquire(job->pool);
            if (!buf)
                s_report_failure(job, it->key, SL_ENOMEM, "out of memory for a transfer buffer");
            else if (!it->needs_stat || s_resolve(w, it))
                s_process(w, it, buf);
            sl__pool_release(job->pool, buf);
        } else {
            /* Taken off the queue after the job stopped taking work: listed, never started. */
            atomic_fetch_add(&job->not_started, 1);
        }
        if (it->held)
            sl__queue_release(job->queue); /* no tokens will come from it */
        free(it);
    }
    if (w->del_buf)
        s_del_flush(w);
    sl__http_bind_abort(NULL);
    if (job->op->thread_fini)
        job->op->thread_fini(w->op_state);
    sl_client_destroy(w->dst);
    sl_client_destroy(w->src);
    s_worker_free(w);
    s_worker_finished(job);
    return NULL;
}

/* Threads start with SIGINT/SIGTERM/SIGPIPE blocked: signals go to the caller's thread, and a write to a pipe whose
 * reader has gone returns EPIPE instead of killing the process. */
static void s_block_signals(sigset_t *old) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static const char *s_kind_name(const sl_job *job) {
    if (job->own_op)
        return "map --plugin";
    switch (job->kind) {
    case SL_JOB_COPY:
        return "cp";
    case SL_JOB_SYNC:
        return "sync";
    case SL_JOB_EXEC:
        return "map --exec";
    case SL_JOB_WORKER:
        return "map --worker";
    case SL_JOB_OP:
        return "map --op";
    case SL_JOB_DELETE:
        return "rm";
    }
    return "?";
}

static void s_human_bytes(uint64_t b, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void s_mem_counts(void *user_data, uint64_t *objects, uint64_t *bytes) {
    sl_job *job = user_data;
    *objects = atomic_load(&job->done);
    *bytes = atomic_load(&job->bytes_read);
}

/* The guard, on the sampler's thread (called once): fewer objects in flight means fewer buffers, clients' responses
 * and child processes alive at once, which is what a job can give back without failing anything. */
static void s_mem_warn(void *user_data, const sl_mem_sample *s, uint64_t limit_bytes, const sl_mem_verdict *v) {
    sl_job *job = user_data;
    unsigned from = atomic_load(&job->active_limit);
    unsigned to = from > 1 ? from / 2 : 1;
    atomic_store(&job->active_limit, to);
    /* The figure the sampler judged (sl_mem_warn_fn), named in the message: against a cgroup's limit, the memory
     * page cache is not part of. */
    uint64_t used = s->cg_unreclaimable_bytes ? s->cg_unreclaimable_bytes : s->rss_bytes;
    const char *figure = s->cg_unreclaimable_bytes ? "cgroup memory that is not page cache" : "RSS";
    char limit[32], amount[32], message[512];
    s_human_bytes(limit_bytes, limit, sizeof(limit));
    s_human_bytes(used, amount, sizeof(amount));
    double percent = limit_bytes ? 100.0 * (double)used / (double)limit_bytes : 0;
    /* The slope so far, even when it is too small to call growing: a growing verdict already says it. */
    char trend[300], slope[32];
    if (v->trend == SL_MEM_FLAT) {
        double per_min = v->bytes_per_second * 60;
        s_human_bytes((uint64_t)(per_min < 0 ? -per_min : per_min), slope, sizeof(slope));
        snprintf(trend, sizeof(trend), "%s, %s%s/min", v->text, per_min < 0 ? "-" : "+", slope);
    } else {
        snprintf(trend, sizeof(trend), "%s", v->text);
    }
    if (from > to)
        snprintf(message, sizeof(message),
                 "memory at %.0f%% of the %s limit: %s of %s (%s); lowering workers from %u to %u", percent, limit,
                 amount, figure, trend, from, to);
    else
        snprintf(message, sizeof(message), "memory at %.0f%% of the %s limit: %s of %s (%s); workers already at %u",
                 percent, limit, amount, figure, trend, to);
    pthread_mutex_lock(&job->synced.lock);
    snprintf(job->synced.mem_warning, sizeof(job->synced.mem_warning), "%s", message);
    if (job->on_warning)
        job->on_warning(job->user_data, message);
    pthread_mutex_unlock(&job->synced.lock);
}

/* map --worker: what a memory sample counts is sluice and its worker processes, the PSS of its process tree (as
 * `sluice watch` measures a command), so that the timeline, the verdict and the chart show the job's whole memory; the
 * workers' part, read in the same pass, is kept apart for the summary. A tree of more than 512 processes counts its
 * first 512. */
static uint64_t s_mem_with_workers(void *user_data) {
    sl_job *job = user_data;
    pid_t self = getpid(), pids[512];
    long n = sl__proc_tree_pids(self, SL__PROC_WALK_AUTO, pids, sizeof(pids) / sizeof(pids[0]));
    uint64_t own = 0, workers = 0;
    for (long i = 0; i < n && i < (long)(sizeof(pids) / sizeof(pids[0])); i++) {
        if (pids[i] == self)
            own = sl__proc_mem(self, NULL);
        else
            workers += sl__proc_mem(pids[i], NULL);
    }
    if (n <= 0)
        own = sl__proc_mem(self, NULL);
    uint64_t peak = atomic_load(&job->workers_peak_mem);
    while (workers > peak && !atomic_compare_exchange_weak(&job->workers_peak_mem, &peak, workers)) {
    }
    return own + workers;
}

/* The evenly spaced samples to judge and draw: the fast phase's when the run ended within it (or there are no others),
 * the --mem-interval ones when there are enough of them (S_MEM_FAST_INTERVALS), else the fast samples followed by the
 * later slower ones (made into *owned, which the caller destroys; NULL when not needed or out of memory). */
static const sl_timeline *s_mem_pick(const sl_timeline *slow, const sl_timeline *fast, bool fast_whole_run,
                                     sl_timeline **owned) {
    *owned = NULL;
    if (fast && (fast_whole_run || !slow))
        return fast;
    if (!fast || sl_timeline_count(slow) >= S_MEM_FAST_INTERVALS)
        return slow;
    sl_timeline *both = sl_timeline_new(0);
    if (!both)
        return slow;
    double fast_end = 0;
    for (size_t i = 0; i < sl_timeline_count(fast); i++) {
        const sl_mem_sample *s = sl_timeline_get(fast, i);
        sl_timeline_add(both, s);
        fast_end = s->t_s;
    }
    for (size_t i = 0; i < sl_timeline_count(slow); i++) {
        const sl_mem_sample *s = sl_timeline_get(slow, i);
        if (s->t_s > fast_end)
            sl_timeline_add(both, s);
    }
    *owned = both;
    return both;
}

/* Stops the samplers (fast: the fast phase's, NULL if it could not start; fast_whole_run: it was still sampling when
 * the run ended), keeps the verdict for sl_job_mem_verdict and the report, and draws the chart if asked; a timeline
 * or chart that could not be written is recorded as an output error. */
static void s_mem_finish(sl_job *job, sl_memwatch *mw, sl_memwatch *fast, bool fast_whole_run) {
    pthread_mutex_lock(&job->synced.lock);
    job->synced.live_mw = NULL;
    pthread_mutex_unlock(&job->synced.lock);
    sl_memwatch_stop(fast);
    sl_memwatch_stop(mw);
    char why[SL__MESSAGE_CAP];
    int timeline_rc = sl_memwatch_error(mw, why, sizeof(why));
    if (timeline_rc < 0)
        s_output_failed_at_end(job, timeline_rc, why);
    sl_mem_sample last;
    sl_memwatch_last(mw, &last);
    job->mem_cg_usage = last.cg_usage_bytes;
    job->mem_cg_limit = last.cg_limit_bytes;
    job->mem_cg_unreclaimable = last.cg_unreclaimable_bytes;
    sl_timeline *owned = NULL;
    const sl_timeline *tl =
        s_mem_pick(sl_memwatch_timeline(mw), fast ? sl_memwatch_timeline(fast) : NULL, fast_whole_run, &owned);
    sl_mem_judge(tl, 0, &job->mem_verdict);
    job->mem_peak_rss = sl_timeline_peak_rss(sl_memwatch_timeline(mw));
    if (fast && sl_timeline_peak_rss(sl_memwatch_timeline(fast)) > job->mem_peak_rss)
        job->mem_peak_rss = sl_timeline_peak_rss(sl_memwatch_timeline(fast));
    job->mem_samples = sl_timeline_count(tl);
    job->mem_judged = true;
    pthread_mutex_lock(&job->synced.lock);
    job->synced.judged = true;
    pthread_mutex_unlock(&job->synced.lock);
    int rc = 0;
    if (job->chart_path) {
        char title[1024];
        /* What ran: the operation's name for --op, the program for --exec. */
        const char *what = job->kind == SL_JOB_OP ? job->op->name
                           : job->kind == SL_JOB_EXEC || job->kind == SL_JOB_WORKER
                               ? (job->op_cfg.use_shell ? "(shell)" : job->argv[0])
                               : "";
        /* Names as every message shows them: a newline in one is "\n", not a line break (sl_text_escape). */
        char e_what[256], e_src[320], e_dst[320];
        sl_text_escape(e_what, sizeof(e_what), what, strlen(what));
        sl_text_escape(e_src, sizeof(e_src), job->src_text, strlen(job->src_text));
        sl_text_escape(e_dst, sizeof(e_dst), job->dst_text, strlen(job->dst_text));
        snprintf(title, sizeof(title), "sluice %s%s%s %s%s%s", s_kind_name(job), what[0] ? " " : "", e_what, e_src,
                 job->dst_text[0] ? " -> " : "", e_dst);
        rc = sl_mem_chart_svg_named(tl, &job->mem_verdict, title,
                                    job->kind == SL_JOB_WORKER ? "PSS of sluice and its workers" : NULL,
                                    job->chart_path);
        if (rc < 0)
            s_output_failed_at_end(job, rc, sl_last_error());
    }
    sl_timeline_destroy(owned);
    sl_memwatch_destroy(fast);
    sl_memwatch_destroy(mw);
}

static const char *s_signal_name(int sig) {
    switch (sig) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGHUP:
        return "SIGHUP";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGPIPE:
        return "SIGPIPE";
    default:
        return "a signal";
    }
}

/* Marks the remote stores' health records as watched by this run (retries then wait for a server that answers nothing
 * instead of failing their objects; s_check_reachable ends the wait), or no longer watched. */
static void s_watch_health(sl_job *job, bool on) {
    sl_store *stores[2] = {job->src, job->dst};
    for (size_t i = 0; i < 2; i++)
        if (stores[i] && stores[i]->health)
            atomic_store(&stores[i]->health->watched, on);
}

/* A store whose server has answered nothing at all (every request refused, reset or timed out before a status line)
 * for its retry deadline stops the job: each object left would only wait for it, or fail after its own retries, for
 * hours. Objects in flight are abandoned, the rest are not started; a rerun resumes. Called on sl_job_run's thread.
 * A server that answers, even with 503 after 503, is not unreachable: its objects fail by the per-request rules. */
static bool s_check_reachable(sl_job *job) {
    sl_store *stores[2] = {job->src, job->dst};
    for (size_t i = 0; i < 2; i++) {
        sl__http_health *hh = stores[i] ? stores[i]->health : NULL;
        if (!hh)
            continue;
        char why[sizeof(job->unreachable_why)];
        int64_t ms = sl__http_health_unreachable_ms(hh, why, sizeof(why));
        if (ms < (int64_t)hh->deadline_ms)
            continue;
        pthread_mutex_lock(&job->synced.lock);
        bool first = !job->synced.fatal; /* another job-level error already stops the job: it is the one to tell */
        if (first) {
            job->synced.fatal = SL_EIO;
            snprintf(job->synced.fatal_message, sizeof(job->synced.fatal_message), "%s: server unreachable",
                     sl_store_url(stores[i])); /* the full message is made once the threads are done */
            job->unreachable_store = stores[i];
            job->unreachable_ms = ms;
            snprintf(job->unreachable_why, sizeof(job->unreachable_why), "%s", why);
        }
        pthread_mutex_unlock(&job->synced.lock);
        if (!first)
            return false;
        atomic_store(&job->unreachable, true); /* before the abort: whoever sees the abort sees why */
        atomic_store(&job->cancel, true);
        atomic_store(&job->abort, true);
        return true;
    }
    return false;
}

/* The one line of a job stopped by s_check_reachable, with its final counts. */
static void s_unreachable_message(sl_job *job, char *buf, size_t cap) {
    char secs[32];
    double s = (double)job->unreachable_ms / 1000.0;
    snprintf(secs, sizeof(secs), s < 10 ? "%.1f" : "%.0f", s);
    snprintf(buf, cap,
             "%s: server unreachable for %s s (%s); %llu objects done, %llu failed, %llu abandoned, %llu listed but "
             "not started: rerun to resume",
             sl_store_url(job->unreachable_store), secs, job->unreachable_why[0] ? job->unreachable_why : "no answer",
             (unsigned long long)atomic_load(&job->done), (unsigned long long)atomic_load(&job->failed),
             (unsigned long long)atomic_load(&job->aborted), (unsigned long long)atomic_load(&job->not_started));
}

int sl_job_run(sl_job *job) {
    if (!job)
        return sl__fail(SL_EINVAL, "sl_job_run: NULL job");
    if (atomic_load(&job->started_ns))
        return sl__fail(SL_EINVAL, "sl_job_run: a job runs once");
    atomic_store(&job->started_ns, s_monotonic_ns());
    int rc = 0;
    if (job->jobs_note[0] && job->on_warning)
        job->on_warning(job->user_data, job->jobs_note);
    if (job->failures_path &&
        (rc = sl_outfile_open(job->failures_path, SL_OUTFILE_STREAM, "the failure log", &job->synced.failures_log)) < 0)
        return rc;

    size_t queue_capacity = (size_t)job->jobs * S_QUEUE_PER_WORKER + 16;
    job->queue = sl__queue_new_reserve(queue_capacity, (size_t)job->jobs * S_SLICE_HELPERS_MAX);
    /* Every worker's fixed memory comes off the budget first; the pool is the rest, where each worker's transfer
     * buffer and first upload quantum are promised (s_budget_workers made sure they fit). */
    job->pool = sl__pool_new_bytes(job->buffer_size, job->memory_limit - (uint64_t)job->jobs * job->worker_fixed);
    if (!job->queue || !job->pool)
        return sl__fail(SL_ENOMEM, "out of memory");
    sl__pool_promise(job->pool, (uint64_t)job->jobs * (job->buffer_size + job->writer_min));
    if (job->dst)
        sl__store_set_budget(job->dst, job->pool);

    pthread_t *tids = calloc(job->jobs, sizeof(pthread_t));
    if (!tids)
        return sl__fail(SL_ENOMEM, "out of memory");
    atomic_store(&job->active_limit, job->jobs);
    sl_memwatch *mw = NULL;
    sl_memwatch_options mo = {.interval_ms = job->mem_interval_ms,
                              .timeline_path = job->timeline_path,
                              .rss = job->kind == SL_JOB_WORKER ? s_mem_with_workers : NULL,
                              .counts = s_mem_counts,
                              .on_warn = s_mem_warn,
                              .user_data = job};
    if ((rc = sl_memwatch_start(&mo, &mw)) < 0) {
        free(tids);
        return rc;
    }
    pthread_mutex_lock(&job->synced.lock);
    job->synced.live_mw = mw;
    pthread_mutex_unlock(&job->synced.lock);
    /* The fast phase: no timeline file and no warning (the --mem-interval sampler has both); without it (it could not
     * start) a short job's verdict is just unknown. None when --mem-interval is that short already: the timeline's own
     * samples are as many, and the verdict and the report's count are then those of the timeline written. */
    sl_memwatch *fast = NULL;
    sl_memwatch_options fo = {.interval_ms = S_MEM_FAST_MS, .rss = mo.rss, .counts = s_mem_counts, .user_data = job};
    if (job->mem_interval_ms <= S_MEM_FAST_MS || sl_memwatch_start(&fo, &fast) < 0)
        fast = NULL;
    uint64_t fast_ms = (uint64_t)job->mem_interval_ms * S_MEM_FAST_INTERVALS;
    fast_ms = fast_ms < S_MEM_FAST_MIN_MS   ? S_MEM_FAST_MIN_MS
              : fast_ms > S_MEM_FAST_MAX_MS ? S_MEM_FAST_MAX_MS
                                            : fast_ms;
    int64_t fast_end_ns = s_monotonic_ns() + (int64_t)fast_ms * 1000000;
    bool fast_running = fast != NULL;
    s_watch_health(job, true);
    sigset_t old;
    s_block_signals(&old);
    unsigned started = 0;
    for (unsigned i = 0; i < job->jobs; i++) {
        s_worker *w = s_worker_alloc();
        if (!w)
            break;
        w->job = job;
        w->index = i;
        atomic_fetch_add(&job->workers_running, 1);
        if (pthread_create(&tids[started], NULL, s_worker_main, w) != 0) {
            atomic_fetch_sub(&job->workers_running, 1);
            s_worker_free(w);
            break;
        }
        started++;
        atomic_store(&job->workers_started, started);
    }
    pthread_t lister;
    bool lister_started = started > 0 && pthread_create(&lister, NULL, s_feeder_main, job) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!lister_started) {
        sl__queue_close(job->queue);
        s_set_fatal(job, SL_ENOMEM, "cannot start threads");
    }

    /* The calling thread ticks: progress callbacks, turning an async cancel request into closing the queue (which a
     * signal handler cannot do itself), and the grace period after it. The feeder is waited for here too, so the
     * grace also bounds a listing request still in flight. */
    double next_progress = s_now_s() + job->progress_interval_ms / 1000.0;
    int64_t cancelled_ns = 0;
    pthread_mutex_lock(&job->synced.lock);
    while (atomic_load(&job->workers_running) > 0 || (lister_started && !atomic_load(&job->feeder_done))) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += (long)S_TICK_MS * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&job->synced.finished, &job->synced.lock, &deadline);
        if (fast_running && s_monotonic_ns() >= fast_end_ns) {
            pthread_mutex_unlock(&job->synced.lock);
            sl_memwatch_stop(fast); /* its samples stay; the --mem-interval sampler goes on */
            fast_running = false;
            pthread_mutex_lock(&job->synced.lock);
        }
        if (!job->synced.output_error) {
            char why[SL__MESSAGE_CAP];
            int timeline_rc = sl_memwatch_error(mw, why, sizeof(why));
            if (timeline_rc < 0)
                s_output_failed_locked(job, timeline_rc, why);
        }
        if (!atomic_load(&job->cancel)) {
            pthread_mutex_unlock(&job->synced.lock);
            s_check_reachable(job);
            pthread_mutex_lock(&job->synced.lock);
        }
        if (atomic_load(&job->cancel)) {
            int64_t now = s_monotonic_ns();
            if (!cancelled_ns) {
                cancelled_ns = now;
                pthread_mutex_unlock(&job->synced.lock);
                sl__queue_close(job->queue);
                pthread_mutex_lock(&job->synced.lock);
            }
            if (!atomic_load(&job->abort) &&
                (job->grace_ms == SL_JOB_NO_GRACE || now - cancelled_ns >= (int64_t)job->grace_ms * 1000000)) {
                job->grace_expired = true;
                atomic_store(&job->abort, true);
            }
        }
        if (job->on_progress && s_now_s() >= next_progress) {
            next_progress += job->progress_interval_ms / 1000.0;
            pthread_mutex_unlock(&job->synced.lock);
            sl_job_stats st;
            sl_job_stats_get(job, &st);
            job->on_progress(job->user_data, &st);
            pthread_mutex_lock(&job->synced.lock);
        }
    }
    pthread_mutex_unlock(&job->synced.lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    if (lister_started)
        pthread_join(lister, NULL);
    /* --fsync: the outputs handed to the committer are done (or failed) once it has made them durable. */
    if (job->dst)
        sl__store_commit_drain(job->dst);
    s_watch_health(job, false);
    atomic_store(&job->finished_ns, s_monotonic_ns());
    /* The timeline's last lines, the chart and the failure log's end: an error there is the job's too. */
    s_mem_finish(job, mw, fast, fast_running);
    int log_rc = sl_outfile_close(job->synced.failures_log);
    job->synced.failures_log = NULL;
    if (log_rc == 0 && job->failures_store && (log_rc = s_upload_failures(job)) < 0) {
        free(job->failures_temp); /* kept for the user, as the message says */
        job->failures_temp = NULL;
    }
    if (log_rc < 0)
        s_output_failed_at_end(job, log_rc, sl_last_error());

    if (atomic_load(&job->unreachable))
        s_unreachable_message(job, job->synced.fatal_message, sizeof(job->synced.fatal_message));
    if (job->synced.fatal) {
        rc = sl__fail(job->synced.fatal, "%s", job->synced.fatal_message);
    } else if (job->synced.output_error && job->synced.output_stopped) {
        rc = sl__fail(job->synced.output_error,
                      "%s; the job stopped there: %llu objects done, %llu failed, %llu not started (rerun to "
                      "resume)",
                      job->synced.output_message, (unsigned long long)atomic_load(&job->done),
                      (unsigned long long)atomic_load(&job->failed),
                      (unsigned long long)(atomic_load(&job->not_started) + atomic_load(&job->aborted)));
    } else if (atomic_load(&job->cancel)) {
        char by[64] = "", aborted[128] = "";
        int sig = atomic_load(&job->interrupt_signal);
        if (sig)
            snprintf(by, sizeof(by), " by %s", s_signal_name(sig));
        uint64_t n_aborted = atomic_load(&job->aborted);
        if (n_aborted && job->grace_expired && job->grace_ms == SL_JOB_NO_GRACE)
            snprintf(aborted, sizeof(aborted), ", %llu abandoned at once (no grace period)",
                     (unsigned long long)n_aborted);
        else if (n_aborted && job->grace_expired)
            snprintf(aborted, sizeof(aborted), ", %llu abandoned when the %.1f s grace ran out",
                     (unsigned long long)n_aborted, job->grace_ms / 1000.0);
        else if (n_aborted)
            snprintf(aborted, sizeof(aborted), ", %llu abandoned by the abort", (unsigned long long)n_aborted);
        rc = sl__fail(SL_ECANCELED, "interrupted%s: %llu objects done, %llu failed%s, %llu listed but not started", by,
                      (unsigned long long)atomic_load(&job->done), (unsigned long long)atomic_load(&job->failed),
                      aborted, (unsigned long long)atomic_load(&job->not_started));
    } else if (atomic_load(&job->failed) > 0) {
        rc = sl__fail(SL_EPARTIAL, "%llu of %llu objects failed", (unsigned long long)atomic_load(&job->failed),
                      (unsigned long long)atomic_load(&job->listed));
    }
    /* An output that failed after the run ended (or while it was stopping for another reason) turns success or
     * partial success into that error; a run that already failed otherwise keeps its own error, and the output's is
     * still said. */
    if (job->synced.output_error && (rc == 0 || rc == SL_EPARTIAL)) {
        rc = sl__fail(job->synced.output_error, "%s", job->synced.output_message);
    } else if (job->synced.output_error && !job->synced.output_stopped && job->on_warning) {
        char message[SL__MESSAGE_CAP];
        sl__text_cut(message, sizeof(message), sl_last_error(), strlen(sl_last_error()));
        job->on_warning(job->user_data, job->synced.output_message);
        sl__fail(rc, "%s", message);
    }
    job->run_result = rc;
    return rc;
}

static void s_put_json(FILE *f, const char *s) {
    size_t len = strlen(s);
    size_t need = sl_json_quote(NULL, 0, s, len) + 1;
    char small[1024];
    char *buf = need <= sizeof(small) ? small : malloc(need);
    if (!buf) {
        fputs("\"\"", f);
        return;
    }
    sl_json_quote(buf, need, s, len);
    fputs(buf, f);
    if (buf != small)
        free(buf);
}

/* False (and an unknown verdict) before the sampler of a run has stopped. */
static bool s_mem_verdict(const sl_job *job, sl_mem_verdict *out) {
    memset(out, 0, sizeof(*out));
    if (!job || !job->mem_judged) {
        snprintf(out->text, sizeof(out->text), "unknown: the job has not run");
        return false;
    }
    *out = job->mem_verdict;
    return true;
}

int sl_job_mem_verdict(const sl_job *job, sl_mem_verdict *out) {
    return s_mem_verdict(job, out) ? 0 : sl__fail(SL_EINVAL, "sl_job_mem_verdict: the job has not run");
}

static const char *s_trend_name(sl_mem_trend trend) {
    return trend == SL_MEM_FLAT ? "flat" : trend == SL_MEM_GROWING ? "growing" : "unknown";
}

/* The JSON number for a slope: finite always (JSON has no NaN or infinity). */
static double s_finite(double v) {
    return v == v && v < 1e300 && v > -1e300 ? v : 0;
}

static void s_report_print(const sl_job *job, FILE *f);

/* The report into its place (sl_job_report_is_place): shard-I-of-N.json (shard-0-of-1.json without sharding), written
 * as any output of that store is (atomic: temp file and rename, or an object that appears whole). */
static int s_write_report_place(const sl_job *job, const char *path) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return sl__fail(SL_ENOMEM, "out of memory writing the report");
    s_report_print(job, f);
    if (fclose(f) != 0) {
        free(text);
        return sl__fail(SL_ENOMEM, "out of memory writing the report");
    }
    char name[64];
    snprintf(name, sizeof(name), "shard-%u-of-%u.json", job->shard_count ? job->shard_index : 0,
             job->shard_count ? job->shard_count : 1);
    sl_client *c = NULL;
    sl_writer *w = NULL;
    int rc = sl_client_new(job->report_store, &c);
    if (rc == 0)
        rc = sl_write_open(c, name, NULL, &w);
    if (rc == 0 && (rc = sl_write(w, text, len)) < 0)
        sl_write_abort(w);
    else if (rc == 0)
        rc = sl_write_commit(w);
    if (rc < 0)
        rc = sl__fail(rc, "cannot write the report %s%s%s: %s", path, path[strlen(path) - 1] == '/' ? "" : "/", name,
                      sl_last_error());
    sl_client_destroy(c);
    free(text);
    return rc;
}

int sl_job_write_report(const sl_job *job, const char *path) {
    if (job->report_store && sl_job_report_is_place(path))
        return s_write_report_place(job, path);
    sl_outfile *out = NULL;
    int rc = sl_outfile_open(path, SL_OUTFILE_REPLACE, "the report", &out);
    if (rc < 0)
        return rc;
    s_report_print(job, sl_outfile_stream(out));
    return sl_outfile_close(out);
}

static void s_report_print(const sl_job *job, FILE *f) {
    sl_job *j = (sl_job *)job;
    sl_job_stats st;
    sl_job_stats_get(job, &st);
    const char *outcome = j->run_result == 0              ? "ok"
                          : j->run_result == SL_EPARTIAL  ? "partial"
                          : j->run_result == SL_ECANCELED ? "interrupted"
                                                          : "error";
    fprintf(f, "{\n  \"sluice_version\": \"%s\",\n  \"command\": \"%s\",\n  \"source\": ", SL_VERSION_STRING,
            s_kind_name(j));
    s_put_json(f, j->src_text);
    fputs(",\n  \"destination\": ", f);
    s_put_json(f, j->dst_text);
    fprintf(f, ",\n  \"outcome\": \"%s\",\n", outcome);
    int sig = atomic_load(&j->interrupt_signal);
    if (sig)
        fprintf(f, "  \"interrupted\": \"%s\",\n", s_signal_name(sig));
    else
        fputs("  \"interrupted\": null,\n", f);
    /* How the run stopped: the grace it had, whether in-flight objects were abandoned, and what was left. */
    fprintf(f,
            "  \"stop\": {\"grace_s\": %.3f, \"aborted\": %s, \"objects_aborted\": %llu, "
            "\"objects_not_started\": %llu},\n",
            j->grace_ms == SL_JOB_NO_GRACE ? 0.0 : j->grace_ms / 1000.0, atomic_load(&j->abort) ? "true" : "false",
            (unsigned long long)atomic_load(&j->aborted), (unsigned long long)atomic_load(&j->not_started));
    if (j->shard_count > 0)
        fprintf(f, "  \"shard\": {\"index\": %u, \"count\": %u},\n", j->shard_index, j->shard_count);
    else
        fputs("  \"shard\": null,\n", f);
    if (j->retry_path) {
        fputs("  \"retry_failed\": ", f);
        s_put_json(f, j->retry_shown ? j->retry_shown : j->retry_path);
        fputs(",\n", f);
    }
    if (j->synced.fatal || j->synced.output_error) {
        fputs("  \"error\": ", f);
        s_put_json(f, j->synced.fatal ? j->synced.fatal_message : j->synced.output_message);
        fputs(",\n", f);
    }
    double rate = st.elapsed_s > 0 ? (double)st.objects_done / st.elapsed_s : 0;
    fprintf(f,
            "  \"objects\": {\"listed\": %llu, \"done\": %llu, \"skipped\": %llu, \"failed\": %llu},\n"
            "  \"bytes\": {\"listed\": %llu, \"read\": %llu, \"written\": %llu},\n"
            "  \"duration_s\": %.3f,\n  \"objects_per_s\": %.1f,\n  \"jobs\": %u,\n"
            "  \"peak_rss_bytes\": %llu,\n  \"dry_run\": %s,\n",
            (unsigned long long)st.objects_listed, (unsigned long long)st.objects_done,
            (unsigned long long)st.objects_skipped, (unsigned long long)st.objects_failed,
            (unsigned long long)st.bytes_listed, (unsigned long long)st.bytes_read,
            (unsigned long long)st.bytes_written, st.elapsed_s, rate, st.workers, (unsigned long long)st.peak_rss_bytes,
            j->dry_run ? "true" : "false");
    /* Whether the listing kept ahead: the worker-seconds spent waiting for it (an empty queue while it went on), and
     * that as a share of all the workers' time. The first page is always waited for. */
    double starved = j->queue ? (double)sl__queue_starved_ns(j->queue) / 1e9 : 0;
    double worker_s = st.elapsed_s * st.workers;
    fprintf(f, "  \"listing_wait\": {\"worker_seconds\": %.3f, \"share\": %.4f},\n", starved,
            worker_s > 0 ? starved / worker_s : 0.0);
    /* The budget: what one worker needs at least, and the most that was counted in it at once. */
    uint64_t counted = j->pool ? (uint64_t)st.workers * j->worker_fixed + sl__pool_peak(j->pool) : 0;
    fprintf(f, "  \"budget\": {\"limit_bytes\": %llu, \"per_worker_bytes\": %llu, \"peak_bytes\": %llu},\n",
            (unsigned long long)j->memory_limit, (unsigned long long)(j->worker_fixed + j->buffer_size + j->writer_min),
            (unsigned long long)counted);
    sl_mem_verdict mv;
    s_mem_verdict(job, &mv);
    fputs("  \"memory\": {\"verdict\": ", f);
    s_put_json(f, mv.text);
    fprintf(f,
            ", \"trend\": \"%s\", \"bytes_per_object\": %.1f, \"bytes_per_second\": %.1f, \"limit_bytes\": %llu, "
            "\"samples\": %zu, \"peak_rss_bytes\": %llu, \"workers_peak_bytes\": %llu, \"cgroup_usage_bytes\": %llu, "
            "\"cgroup_limit_bytes\": %llu, \"cgroup_unreclaimable_bytes\": %llu, \"warning\": ",
            s_trend_name(mv.trend), s_finite(mv.bytes_per_object), s_finite(mv.bytes_per_second),
            (unsigned long long)mv.limit_bytes, j->mem_judged ? j->mem_samples : 0,
            (unsigned long long)(j->mem_judged ? j->mem_peak_rss : 0), (unsigned long long)st.workers_peak_mem_bytes,
            (unsigned long long)(j->mem_judged ? j->mem_cg_usage : 0),
            (unsigned long long)(j->mem_judged ? j->mem_cg_limit : 0),
            (unsigned long long)(j->mem_judged ? j->mem_cg_unreclaimable : 0));
    pthread_mutex_lock(&j->synced.lock);
    if (j->synced.mem_warning[0])
        s_put_json(f, j->synced.mem_warning);
    else
        fputs("null", f);
    pthread_mutex_unlock(&j->synced.lock);
    fputs("},\n", f);
    fputs("  \"failures_log\": ", f);
    if (j->failures_path)
        s_put_json(f, j->failures_shown ? j->failures_shown : j->failures_path);
    else
        fputs("null", f);
    fprintf(f, ",\n  \"failures_sample\": [");
    pthread_mutex_lock(&j->synced.lock);
    for (size_t i = 0; i < j->synced.sample_count; i++) {
        fputs(i ? ",\n    {\"key\": " : "\n    {\"key\": ", f);
        s_put_json(f, j->synced.samples[i].key ? j->synced.samples[i].key : "");
        fputs(", \"error\": ", f);
        s_put_json(f, j->synced.samples[i].error ? j->synced.samples[i].error : "");
        fputs("}", f);
    }
    pthread_mutex_unlock(&j->synced.lock);
    fputs(j->synced.sample_count ? "\n  ]\n}\n" : "]\n}\n", f);
}
