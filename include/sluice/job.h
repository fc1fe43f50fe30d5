/* Jobs: one operation over every object under a source.
 *
 *   lister -> include/exclude -> bounded queue -> N worker threads -> operation -> commit -> counters
 *
 * Every queue is bounded and every byte that grows with workers or upload chunks comes out of one budget,
 * memory_limit_bytes; nothing is kept per object once it is done, so memory does not grow with the number of objects.
 * Each worker creates its store clients (and the operation's per-thread state) once when it starts and reuses them
 * until it exits. */
#ifndef SLUICE_JOB_H
#define SLUICE_JOB_H

#include "sluice/error.h"
#include "sluice/memwatch.h"
#include "sluice/outfile.h"
#include "sluice/plugin.h"
#include "sluice/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_job_kind {
    SL_JOB_COPY = 1,   /* copy every object to dst (overwrite), skipping complete outputs (see force) */
    SL_JOB_SYNC = 2,   /* copy objects not already identical at dst (same size and same CRC32C) */
    SL_JOB_EXEC = 3,   /* each object's bytes on a child's stdin; its stdout becomes the output object */
    SL_JOB_OP = 4,     /* a built-in operation (sl_job_options.op_name) or one of your own (sl_job_options.op) */
    SL_JOB_DELETE = 5, /* delete every object under src (no destination: dst_url is ignored) */
    /* each worker thread hands its objects to one long-lived process (argv/use_shell/command, as SL_JOB_EXEC),
     * speaking the worker protocol (docs/worker-protocol.md) */
    SL_JOB_WORKER = 6,
} sl_job_kind;

typedef struct sl_job sl_job;

/* Counters of a job. Safe to read (sl_job_stats) from any thread while the job runs. */
typedef struct sl_job_stats {
    uint64_t objects_listed;  /* passed the filters */
    uint64_t objects_done;    /* completed successfully (including skipped) */
    uint64_t objects_skipped; /* the output was already complete (see sl_job_options.force) */
    uint64_t objects_failed;
    uint64_t bytes_read;    /* from the source */
    uint64_t bytes_written; /* to the destination (or stdout) */
    uint64_t bytes_listed;  /* sum of sizes of listed objects */
    bool listing_done;      /* objects_listed/bytes_listed are final totals */
    double elapsed_s;
    uint64_t peak_rss_bytes; /* of the whole process so far */
    unsigned workers;        /* worker threads actually started */
    /* After sl_job_cancel: objects in flight when the grace ran out (or sl_job_abort came) and were abandoned
     * (nothing committed; not counted in objects_failed), and listed objects never started. Once the run has
     * returned, listed = done + failed + aborted + not_started. */
    uint64_t objects_aborted;
    uint64_t objects_not_started;
    /* SL_JOB_WORKER: the largest memory the worker processes held together in one memory sample (their process
     * trees' PSS), apart from sluice's own; 0 for other kinds. The job's timeline, verdict and chart count both. */
    uint64_t workers_peak_mem_bytes;
} sl_job_stats;

/* Called once per failed object, serialized by the job (never concurrently); key is the object's key, error a
 * one-line explanation (command's stderr included for SL_JOB_EXEC). Must not call back into the job. */
typedef void (*sl_job_failure_fn)(void *user_data, const char *key, int err, const char *error);
/* Called once per result line when dst is "-" (serialized; line is one JSON object without the newline). */
typedef void (*sl_job_result_fn)(void *user_data, const char *line, size_t len);
/* Called about every progress_interval_ms from the thread running sl_job_run. */
typedef void (*sl_job_progress_fn)(void *user_data, const sl_job_stats *stats);
/* Called with a one-line warning (no newline) from the memory sampler's thread (or, once its workers are done, from
 * the thread running sl_job_run), serialized with the other callbacks. Must not call back into the job. */
typedef void (*sl_job_warning_fn)(void *user_data, const char *message);

typedef struct sl_job_options {
    sl_job_kind kind;
    const char *src_url;
    const char *dst_url; /* "-": results as JSON lines through on_result (SL_JOB_OP, SL_JOB_EXEC) */
    bool recursive;      /* SL_JOB_DELETE: src may be a prefix; without it src must name one object */
    /* SL_JOB_DELETE: confirms that src may be a whole bucket (gs://b, gs://b/) or the file-system root ("/", however
     * spelled, symbolic links resolved). Without it such a src fails sl_job_new with SL_EINVAL, dry runs too. */
    bool all;
    const char *const *include; /* globs (sluice/glob.h); an object must match one of them if any are given */
    size_t include_count;
    const char *const *exclude; /* an object matching any of these is skipped */
    size_t exclude_count;
    /* Sharding (shard_count > 0): the job takes only the objects whose key hashes to shard_index of shard_count
     * (sl_shard_of), so that shard_count processes, on as many machines, each given another index, do every object
     * exactly once between them. Each lists the whole source. Resume does not depend on it: outputs record no shard, so
     * a shard rerun alone, or the job rerun with another shard_count, skips what is done. shard_index must be less
     * than shard_count (SL_EINVAL). */
    unsigned shard_index, shard_count;
    /* Worker threads; 0 = default (sl_job_default_jobs); lowered to what memory_limit_bytes feeds (a number given
     * and lowered is said through on_warning when the run starts, with the limit that would feed it). */
    unsigned jobs;
    /* The budget of all the memory that grows with workers or upload chunk size: each worker's own state and its
     * stores' clients, transfer buffers, gs:// upload buffers (a writer grows beyond 256 KiB only into what is spare,
     * sending smaller chunks otherwise). 0 = default: SL_JOB_DEFAULT_MEMORY_LIMIT, or a quarter of the memory
     * cgroup's limit when that is smaller (sl_cgroup_find), never less than one worker needs. A limit given that is
     * less than one worker needs fails sl_job_new with SL_EINVAL, naming the least that works. */
    uint64_t memory_limit_bytes;
    size_t buffer_size_bytes; /* one transfer buffer; 0 = default (256 KiB) */
    /* SL_JOB_COPY/SL_JOB_SYNC: an object bigger than this is read in slices of this size by several workers at once
     * (ranged reads of the generation listed, written at their offsets into the one temporary output), when the
     * source store reads ranges pinned to a generation (gs://) and the destination writes at offsets (a local
     * directory), and the object has a CRC32C: the slices' CRC32Cs combined must equal it before the output is
     * committed. 0 = SL_JOB_DEFAULT_SLICE_SIZE; SL_JOB_NO_SLICES: never. Only with jobs > 1. */
    uint64_t slice_size_bytes;
    /* SL_JOB_COPY/SL_JOB_SYNC from a local directory to a store that composes objects (gs://): an object bigger than
     * slice_size_bytes is uploaded as parts of that size by several workers at once (each read range checked against
     * the file's size and modification time as listed), then composed into the output, whose CRC32C must be the
     * parts' combined; the parts are deleted, whatever happened. The output is a composite object: it has a CRC32C
     * but no MD5 (so this is not the default). A job killed meanwhile leaves its parts, named
     * "<output key>.sluice-part-<6 letters or digits>-<i>". */
    bool composite_upload;
    bool dry_run; /* list and filter, report what would be done, touch nothing */
    /* Resume: unless force is set, an object whose output is already complete is skipped (counted in
     * objects_skipped), so rerunning an interrupted job is resuming it. Every output is committed with the
     * fingerprint of its source (sl_write_options.source_fingerprint): size, generation (gs://) or mtime (local),
     * CRC32C when the source's metadata has one, and the job (cp/sync, the --op, a checksum of the command, or of the
     * op's name, version and arguments for an op of the caller's: sl_job_options.op). An output is complete when its
     * recorded fingerprint matches the source's now; for cp and sync, an output without one (written by something
     * else, or on a file system without xattrs) is complete when it has the same size and CRC32C as the source. The
     * destination listing is merge-joined with the source listing (one pass each, constant memory); an output key that
     * sorts before one already looked up (possible with a suffix) is looked up alone with sl_stat. A local
     * destination's listing also removes the temp files of writers that are gone. */
    bool force;
    /* Local destinations: every output is durable (its bytes, its fingerprint and its name survive a power loss or a
     * kernel crash) before it counts as done, as sl_write_options.fsync makes it: the commits of all workers are
     * grouped, one syncfs for a batch of outputs. Default (false): outputs are atomic, not synced: a job killed at any
     * moment leaves only complete outputs under final names, but a power loss can leave an output whose bytes never
     * reached the disk under its name and fingerprint (see verify). Other destinations: ignored. */
    bool fsync;
    /* With resume: a local output that its fingerprint says is complete is read back, and redone unless its bytes
     * still have the CRC32C recorded when it was committed (sl_object.committed_crc32c; an output recorded without
     * one is redone too). This finds outputs torn by a power loss after commits without fsync; without verify they are
     * skipped, as their size, mtime and fingerprint are intact. Costs a read of every complete output. gs:// outputs
     * are always checked against the server's own CRC32C: nothing more is read for them. */
    bool verify;
    const char *suffix; /* appended to each output key (SL_JOB_EXEC, SL_JOB_OP) */
    /* SL_JOB_EXEC: argv[0] is looked up in PATH; no shell. With use_shell, command is run as
     * `/bin/sh -c command sluice` and the key reaches the script as $SLUICE_KEY only. */
    const char *const *argv;
    bool use_shell;
    const char *command;
    /* SL_JOB_EXEC: wall-clock limit per object, from the child's start to its exit; 0 = none. (SL_JOB_WORKER: from
     * the request's header to the answer's final line, and from a worker's start to its hello.) A child still running
     * then gets SIGTERM (its whole process group), 2 s later SIGKILL, and the object fails alone (SL_ECHILD,
     * "command timed out after ..."; nothing committed). Other kinds: must be 0 (SL_EINVAL). */
    unsigned timeout_ms;
    /* SL_JOB_WORKER: a worker process is replaced (EOF on its stdin, a fresh one for the thread's next object)
     * after this many objects (0 = never), or once the resident memory of its process tree passes this many bytes,
     * checked after each object (0 = never). Other kinds: must be 0 (SL_EINVAL). */
    unsigned worker_max_objects;
    uint64_t worker_max_rss_bytes;
    /* SL_JOB_OP: "md5", "crc32c", "sha256", "count", "gunzip" (sl_job_op_names). */
    const char *op_name;
    /* SL_JOB_OP, instead of op_name: an operation of your own (sluice/plugin.h: written in the program, or a plugin's
     * from sl_plugin_op), run with the same per-thread lifecycle as a built-in. sl_job_new checks it (SL_EINVAL: ABI
     * version, name, process, flags); it is not copied and must stay valid until sl_job_destroy. Its outputs record
     * job=plugin:<crc32c of its name, version and arguments> in their fingerprint, so a rerun skips the outputs of
     * the same op (name and version) with the same arguments, whatever the order they are given in, and redoes the
     * others. */
    const sl_op *op;
    /* Arguments for op's thread_init, each "key=value" with a non-empty key (sl_op_config_get), op_arg_count of them;
     * copied by sl_job_new. A key given twice, a string without '=', or arguments for a built-in: SL_EINVAL. */
    const char *const *op_args;
    size_t op_arg_count;
    sl_job_failure_fn on_failure;
    sl_job_result_fn on_result;
    sl_job_progress_fn on_progress;
    void *user_data;
    unsigned progress_interval_ms;         /* 0 = 1000 */
    const sl_store_options *store_options; /* for both stores; NULL = defaults */
    /* If set, one JSON line per failed or aborted object, as it happens:
     *   {"key":..,"error":..,"code":"SL_E..","attempts":N,"http_status":S}
     * key and error quoted by sl_json_quote; attempts counts the object's tries in this run including the retries
     * of its HTTP requests; http_status is the last HTTP status a remote store answered while the object was
     * processed, absent when there was none, not counting the requests that clean up after a failure (cancelling an
     * upload session, deleting what an upload made wrong): the status that failed the object. Objects abandoned by an
     * abort have code "SL_ECANCELED". */
    const char *failures_path;
    /* If set, the objects processed are exactly those named by this failure log (failures_path of an earlier run
     * over the same src and dst) instead of the listing of src: read line by line (constant memory), in any order,
     * each key looked up with a stat (a key that no longer exists fails with SL_ENOENT). include/exclude still
     * apply. sl_job_new reads the file once to check it: a malformed line fails with SL_EINVAL naming the line;
     * the same file as failures_path fails with SL_EINVAL. */
    const char *retry_failed_path;
    /* After sl_job_cancel, in-flight objects get this long to finish; then the job aborts them (sl_job_abort).
     * 0 = SL_JOB_DEFAULT_GRACE_MS; SL_JOB_NO_GRACE aborts at once. */
    unsigned grace_ms;
    /* Memory: every job samples its own RSS, objects done and bytes read, and its cgroup (sluice/memwatch.h) on a
     * thread of its own while it runs. When the cgroup's memory that cannot be reclaimed (its usage minus page cache,
     * sl_cgroup_memory.unreclaimable_bytes) first passes 80 % of the cgroup's limit, on_warning is called once (the
     * message names that figure) and the number of workers allowed to take new objects is halved (never below 1);
     * with no cgroup limit there is no warning. Tests point the cgroup lookup at fake trees with $SLUICE_CGROUP_ROOT
     * and $SLUICE_PROC_CGROUP (see sl_cgroup_find). */
    unsigned mem_interval_ms;  /* between samples; 0 = 1000 */
    const char *timeline_path; /* if set, every sample as a CSV line (sl_memwatch_options.timeline_path) */
    const char *chart_path;    /* if set, an SVG chart of the run written at its end (sl_mem_chart_svg) */
    /* The path the caller will give sl_job_write_report, if any: checked by sl_job_new with the other output files. */
    const char *report_path;
    /* Output files (failures_path, timeline_path, chart_path, report_path) are written as sluice/outfile.h says: like
     * the shell's `> FILE`, a regular file of the chart or the report replaced whole. sl_job_new checks each one
     * (sl_outfile_check) and fails before anything is done if one cannot be written (its directory is missing or
     * read-only, it is a directory, ...). During the run, a failure log or timeline that cannot be written (a full
     * disk) stops the job like a job-level error: no new objects, and sl_job_run returns that error ("cannot write
     * the failure log F: No space left on device; the job stopped there ..."). A timeline, failure log or chart that
     * fails as the run ends turns 0 or SL_EPARTIAL into that error; a run that failed otherwise (SL_ECANCELED, a
     * job-level error) keeps its own, and the output's error goes to on_warning. */
    sl_job_warning_fn on_warning;
} sl_job_options;

#define SL_JOB_DEFAULT_SLICE_SIZE ((uint64_t)64 * 1024 * 1024)
#define SL_JOB_NO_SLICES UINT64_MAX
#define SL_JOB_DEFAULT_MEMORY_LIMIT ((uint64_t)256 * 1024 * 1024)
/* Inside Kubernetes' default terminationGracePeriodSeconds (30) with room for the report. */
#define SL_JOB_DEFAULT_GRACE_MS 25000u
#define SL_JOB_NO_GRACE 0xFFFFFFFFu

/* Default worker count for a source/destination pair: a few per core for local work. */
SL_API unsigned sl_job_default_jobs(void);
/* The shard (0 .. count-1) of a key: its bytes (the key relative to the source, as listed) hashed with 64-bit FNV-1a
 * (offset basis 0xcbf29ce484222325, prime 0x100000001b3), that hash mixed with splitmix64's finaliser
 * (z ^= z >> 30; z *= 0xbf58476d1ce4e5b9; z ^= z >> 27; z *= 0x94d049bb133111eb; z ^= z >> 31), and the result
 * modulo count. The same in every version, on every store and architecture. count 0: 0. */
SL_API unsigned sl_shard_of(const char *key, size_t len, unsigned count);
/* NULL-terminated list of built-in operation names. */
SL_API const char *const *sl_job_op_names(void);
/* One-line description of a built-in operation, NULL if unknown. */
SL_API const char *sl_job_op_describe(const char *name);

/* Validates options and opens the stores. The job copies what it needs from opts: the struct and its strings may be
 * freed after this returns. Errors are reported before anything runs (bad URL, bad glob, unknown op,
 * missing source). Caller destroys with sl_job_destroy. */
SL_API int sl_job_new(const sl_job_options *opts, sl_job **out);
/* Runs the job to completion on the calling thread (plus its workers). Returns 0 if every object succeeded,
 * SL_EPARTIAL if some failed, SL_ECANCELED if sl_job_cancel stopped it, another SL_E* if the job could not run
 * (listing failed, destination unusable). */
SL_API int sl_job_run(sl_job *job);
/* Stops taking new objects; objects in flight get the grace period (sl_job_options.grace_ms) to finish, then they
 * are aborted. sl_job_run then returns SL_ECANCELED. Async-signal-safe; callable from any thread, any number of
 * times. */
SL_API void sl_job_cancel(sl_job *job);
/* sl_job_cancel, recording that signal `signo` asked for it: the report says "interrupted": "SIGTERM". The first
 * signal recorded wins. Async-signal-safe. */
SL_API void sl_job_interrupt(sl_job *job, int signo);
/* Stops at once: no new objects, and objects in flight are abandoned (exec children killed, uploads abandoned,
 * nothing committed: no partial output under a final name). Async-signal-safe; callable from any thread. */
SL_API void sl_job_abort(sl_job *job);
/* Snapshot of the counters; any thread. */
SL_API void sl_job_stats_get(const sl_job *job, sl_job_stats *out);
/* The memory verdict of the run (sl_mem_judge on its timeline, against the cgroup limit if any). Valid once
 * sl_job_run has returned; SL_EINVAL (out->trend SL_MEM_UNKNOWN) before that, or when the run stopped before its
 * sampler started. */
SL_API int sl_job_mem_verdict(const sl_job *job, sl_mem_verdict *out);
/* Memory now, from any thread: while sl_job_run samples, the latest sample of its sampler and the verdict on the
 * samples so far (SL_MEM_UNKNOWN until there are enough); once the run has judged its memory, the process's RSS now,
 * the last cgroup figures and the run's verdict. SL_EINVAL (zeros) before the sampler started. */
SL_API int sl_job_mem_now(const sl_job *job, sl_mem_sample *sample, sl_mem_verdict *verdict);
/* Writes a JSON report (counts, bytes, duration, failures, peak RSS, the memory verdict under "memory",
 * "interrupted": the name of the signal sl_job_interrupt recorded or null, and "stop": the grace, whether in-flight
 * objects were abandoned, how many, and how many listed objects were never started) to path, as
 * sl_outfile_open(path, SL_OUTFILE_REPLACE) writes (a regular file replaced whole, /dev/null written into). A write
 * error (a full disk) fails with its code; what was at path before is then left as it was. */
SL_API int sl_job_write_report(const sl_job *job, const char *path);
/* Whether a report path names a place for the reports of many shards rather than a file: a gs:// or s3:// URL, or a
 * path ending in '/'. Given as sl_job_options.report_path, the place is opened (and checked) by sl_job_new, and
 * sl_job_write_report writes "shard-I-of-N.json" there (shard-0-of-1.json without sharding) as any output of that
 * store is written: atomically. `sluice report PLACE` merges them. */
SL_API bool sl_job_report_is_place(const char *path);
/* NULL ok. */
SL_API void sl_job_destroy(sl_job *job);

/* Peak resident set size of the calling process in bytes. */
SL_API uint64_t sl_peak_rss_bytes(void);
/* Current resident set size in bytes (0 if unknown). */
SL_API uint64_t sl_current_rss_bytes(void);

#ifdef __cplusplus
}
#endif

#endif
