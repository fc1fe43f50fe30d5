/* The operation interface: what a worker runs for one object. Built-ins (op_builtin.c), the exec operation
 * (op_exec.c) and later plugins implement it. Per-thread state is part of the contract: thread_init runs once in
 * each worker thread when it starts, thread_fini once when it exits, and process for every object in between, with
 * the state thread_init made. Nothing per object may outlive process(). */
#ifndef SLUICE_TASK_H
#define SLUICE_TASK_H

#include "sluice/store.h"

#include <stdatomic.h>

/* One object being processed. Filled by the engine; the op reads `in`, writes `out` (or result members), and
 * reports. */
typedef struct sl__task {
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
} sl__task;

/* Job-wide configuration handed to thread_init (read-only, outlives every thread). */
typedef struct sl__op_config {
    const char *const *argv; /* exec: argv, NULL-terminated */
    bool use_shell;          /* exec: run `command` with /bin/sh -c */
    const char *command;
    unsigned timeout_ms; /* exec: wall-clock limit per object, spawn to exit; 0 = none */
} sl__op_config;

typedef struct sl__op {
    const char *name;
    const char *description; /* one line for --help */
    bool transforms;         /* true: the op writes data to task->out (gunzip, exec, copy); false: result only */
    int (*thread_init)(const sl__op_config *cfg, void **state); /* 0 or <0; may leave *state NULL */
    int (*process)(void *state, sl__task *task);                /* 0 or <0 with task->error filled */
    void (*thread_fini)(void *state);                           /* NULL state ok */
} sl__op;

/* Built-ins: "md5", "crc32c", "sha256", "count", "gunzip", and the internal "copy". NULL if unknown. */
const sl__op *sl__op_find(const char *name);
/* The NULL-terminated list of public built-in names (without "copy"). */
const char *const *sl__op_names(void);
/* The exec operation (op_exec.c). */
extern const sl__op sl__op_exec;

/* Appends a formatted member to task->result; returns 0 or SL_ETOOBIG if it does not fit. */
int sl__task_result_printf(sl__task *task, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fills task->error (a message too long loses its middle, as sl__fail's) and returns code. An argument may be
 * task->error itself. */
int sl__task_fail(sl__task *task, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
