/* The operation interface as the engine sees it: the public contract (sluice/plugin.h: sl_op, sl_task,
 * sl_op_config) with the layouts of its opaque types. Built-ins (op_builtin.c) use the public accessors only; the
 * exec operation (op_exec.c) still reaches into the fields below. Per-thread state is part of the contract:
 * thread_init runs once in each worker thread when it starts, thread_fini once when it exits, and process for every
 * object in between, with the state thread_init made. Nothing per object may outlive process(). */
#ifndef SLUICE_TASK_H
#define SLUICE_TASK_H

#include "sluice/plugin.h"
#include "sluice/store.h"

#include <stdatomic.h>

/* One object being processed. Filled by the engine; the op reads `in`, writes `out` (or result members), and
 * reports. */
struct sl_task {
    const sl_object *src; /* key, size, metadata of the source object */
    const char *src_url;  /* canonical URL of the source object (for SLUICE_URL) */
    const char *dst_key;  /* output key (key + suffix); NULL when out is NULL */
    sl_reader *in;        /* source stream, opened and closed by the engine */
    sl_writer *out;       /* destination stream or NULL (dst "-"); the engine commits it on success, aborts it on
                           * failure: the op never commits or aborts */
    unsigned char *buf;   /* transfer buffer from the pool, owned by the engine, buf_size bytes */
    size_t buf_size;
    /* Result members, appended by the op as JSON members without braces, e.g. `"md5":"d41d8c..."`; the engine
     * wraps them as {"key":..,"size":..,<members>}. Used for dst "-" and, for ops that do not transform data
     * (hashes, count), written as the output object's content followed by '\n'. */
    char *result;
    size_t result_cap; /* bytes available in result, including the NUL */
    size_t result_len;
    /* On failure: a one-line reason (NUL-terminated; one longer than error_cap loses bytes from its middle). */
    char *error;
    size_t error_cap;
    /* Kept current by the op; the engine adds them to the job counters after process() returns. */
    uint64_t bytes_in;
    uint64_t bytes_out;
    /* Set when the job is aborted hard; a long-running op should stop early and fail with SL_ECANCELED. */
    const atomic_bool *abort;
    /* sl_task_write refuses to write for an op that does not transform (its output is the result line). */
    bool no_write;
    /* Set by a transforming op that wrote nothing to `out` for this object: the engine writes the result line as the
     * output object instead, as for an op that does not transform (a --worker answer without a body). */
    bool result_is_output;
};
typedef struct sl_task sl__task;

/* What thread_init gets: the job-wide configuration (read-only, outlives every thread) as seen by one worker. */
struct sl_op_config {
    const char *const *argv; /* exec: argv, NULL-terminated */
    bool use_shell;          /* exec: run `command` with /bin/sh -c */
    const char *command;
    unsigned timeout_ms;     /* exec: wall-clock limit per object, spawn to exit; 0 = none */
    const char *const *args; /* "key=value" (sl_op_config_get), arg_count of them */
    size_t arg_count;
    unsigned worker, workers;
    /* worker (op_worker.c): */
    const char *display;  /* the command as given, for messages */
    const char *src_text; /* the job's SRC and DST as given ("-" for results on stdout) */
    const char *dst_text;
    unsigned grace_ms;           /* how long a worker is waited for after EOF */
    unsigned max_objects;        /* --worker-max-objects; 0 = no limit */
    uint64_t max_rss_bytes;      /* --worker-max-rss; 0 = no limit */
    const atomic_bool *abort;    /* the job's abort flag */
    atomic_uint *start_failures; /* consecutive start failures, job-wide */
    /* Called from worker threads: a warning line, and stopping the job with a code and its one line. */
    void (*warn)(void *ctx, const char *message);
    void (*stop)(void *ctx, int code, const char *message);
    void *ctx;
};
typedef struct sl_op_config sl__op_config;

typedef sl_op sl__op;

/* Built-ins: "md5", "crc32c", "sha256", "count", "gunzip", and the internal "copy". NULL if unknown. */
const sl__op *sl__op_find(const char *name);
/* The NULL-terminated list of public built-in names (without "copy"). */
const char *const *sl__op_names(void);
/* The exec operation (op_exec.c). */
extern const sl__op sl__op_exec;
/* The worker operation (op_worker.c): a long-lived process per worker thread (docs/worker-protocol.md). */
extern const sl__op sl__op_worker;
/* Ends the worker process of a worker thread's state as at the end of the job (EOF, --grace), if it has one; the
 * thread's next object starts a fresh one. Called on that thread only, between objects. */
void sl__op_worker_release(void *state);

/* Appends a formatted member to task->result; returns 0 or SL_ETOOBIG if it does not fit. */
int sl__task_result_printf(sl__task *task, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fills task->error (a message too long loses its middle, as sl__fail's) and returns code. An argument may be
 * task->error itself. */
int sl__task_fail(sl__task *task, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Checks an op a caller or a plugin hands over against plugin.h's rules (ABI version, name, process, flags). Returns
 * 0 or SL_EINVAL with sl_last_error() saying what is wrong, prefixed by `what` (e.g. "plugin ./x.so"). */
int sl__op_check(const sl_op *op, const char *what);

#endif
