/* Operations: your own code per object, in process. The plugin ABI.
 *
 * An operation (sl_op) is three functions the job's worker threads call:
 *
 *     thread_init(config, &state)   once in each worker thread, before its first object
 *     process(state, task)          for every object that worker takes, with the state thread_init made
 *     thread_fini(state)            once in each worker thread, after its last object (also when thread_init failed)
 *
 * Per-thread state is the contract: what is expensive to make (a storage client, a hash context, a model) belongs
 * in the state, made once per thread and reused for every object, never made per object. Built-in operations
 * (`sluice map --op md5`, ...) are written on exactly this interface.
 *
 * A plugin is a shared library that defines one symbol, `sluice_plugin`, an sl_op:
 *
 *     #include <sluice/plugin.h>
 *     static int my_process(void *state, sl_task *task) { ... }
 *     SL_PLUGIN_EXPORT const sl_op sluice_plugin = {
 *         .abi_version = SL_OP_ABI_VERSION, .name = "myop", .version = "1", .process = my_process,
 *     };
 *
 * built with `cc -shared -fPIC myop.c $(pkg-config --cflags --libs sluice) -o libmyop.so` and run with
 * `sluice map SRC DST --plugin ./libmyop.so [--plugin-arg K=V]...` (sl_plugin_open). A library user may instead put
 * any sl_op in sl_job_options.op, without a shared library.
 *
 * ABI. abi_version is the first member of sl_op in every version of this ABI, and the symbol's name never changes:
 * sluice reads abi_version first and refuses (SL_EINVAL, naming both versions) an op built against another ABI
 * version. Within one ABI version, members are only ever added at the end of sl_op, behind a new abi_version; sl_task
 * and sl_op_config are opaque and reached through the functions below only, so their layout is no part of the ABI.
 *
 * Threads. thread_init, every process call with that state, and thread_fini run on one and the same worker thread; a
 * state is never touched by two threads, so it needs no lock. Different threads run the same op at the same time
 * with different states: anything the op shares between states (globals, statics) is the op's to synchronise. The
 * number of threads is the job's worker count (sl_op_config_workers); an op must not assume there is one.
 *
 * Lifetimes. The sl_op itself, and every string it points to, must stay valid and unchanged from sl_job_new until
 * sl_job_destroy returns (for a plugin: until sl_plugin_close). The config passed to thread_init is valid until
 * thread_fini returns, so a state may keep it and the strings it gives. A task and everything it gives (key, URL,
 * buffer, ...) is valid only during the process call it is passed to: nothing per object may outlive process().
 *
 * Blocking. process may block as long as the object needs (reading, computing, waiting on a child process or a
 * server), but it must check sl_task_aborted at least every few hundred milliseconds while it waits, and return
 * promptly (with sl_task_fail(task, SL_ECANCELED, ...)) once it is set. sl_task_read checks it itself, so an op that
 * reads as it goes needs no check of its own; one that produces much output from little input (a decompressor)
 * checks between writes. thread_init may block too (opening a client); the job does not start that worker's first
 * object before it returns. None of the three may call back into the job (sl_job_*), nor exit the process, nor change
 * signal dispositions or masks for the process. Worker threads block SIGINT, SIGTERM, SIGPIPE and SIGHUP: a write
 * to a pipe whose reader is gone returns EPIPE rather than killing the process.
 *
 * Errors. process returns 0 on success or a negative SL_E* code (sluice/error.h) on failure, with a one-line reason
 * given by sl_task_fail (the other sl_task_* calls that fail give theirs already). A failed object fails alone: the
 * job goes on with the next one, nothing is committed for it, and its reason goes to the failure log. A failure with
 * SL_ECORRUPT is tried again (3 tries in all), like data that failed its checksum. thread_init returns 0 or a negative
 * SL_E* code with its reason given by sl_op_fail; a failing thread_init stops the whole job (no new objects; the run
 * ends with that code and the line "operation NAME: cannot start: REASON"). A positive return from either is taken as
 * SL_EINTERNAL.
 *
 * Output. An op without SL_OP_TRANSFORMS reports result members only (sl_task_result_*): with DST "-" they are one
 * JSON line {"key":..,"size":..,<members>} per object; with a real DST that same line, with '\n', is the output
 * object's content. An op with SL_OP_TRANSFORMS writes the output object's bytes with sl_task_write (committed
 * atomically by the job when process returns 0, thrown away when it fails); with DST "-" there is no output stream
 * (sl_task_has_output is false) and its result members make the line instead. */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include "sluice/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this ABI. A plugin records the one it was built against in sl_op.abi_version. */
#define SL_OP_ABI_VERSION 1u
/* The name of the symbol a plugin defines (an sl_op). */
#define SL_PLUGIN_SYMBOL "sluice_plugin"
/* Exports the plugin's symbol even from a library built with -fvisibility=hidden. */
#define SL_PLUGIN_EXPORT __attribute__((visibility("default")))

/* sl_op.flags: the op writes the output object's bytes itself (sl_task_write), rather than a result line. */
#define SL_OP_TRANSFORMS 0x1u

typedef struct sl_task sl_task;           /* one object being processed; opaque */
typedef struct sl_op_config sl_op_config; /* what thread_init is given; opaque */

typedef struct sl_op {
    uint32_t abi_version; /* SL_OP_ABI_VERSION; always the first member */
    uint32_t flags;       /* SL_OP_TRANSFORMS or 0; other bits must be 0 */
    /* 1 to 32 bytes of ASCII letters, digits, '_', '-', '.'; names the op in messages, the summary and the report. */
    const char *name;
    /* The op's own version, NULL = "". Part of the resume fingerprint of every output it makes: an output is taken
     * for complete on a rerun only when it was made by an op of the same name, version and arguments. Change it when
     * the op's output changes. */
    const char *version;
    const char *description; /* one line for help texts, NULL ok */
    /* NULL: no state (process gets NULL). Otherwise sets *state (NULL is fine) and returns 0, or returns a negative
     * SL_E* code after sl_op_fail; *state is then ignored and thread_fini still called with NULL. */
    int (*thread_init)(const sl_op_config *config, void **state);
    /* Required. One object; see Errors and Output above. */
    int (*process)(void *state, sl_task *task);
    /* NULL ok. Frees the state; called with NULL when thread_init made none. */
    void (*thread_fini)(void *state);
} sl_op;

/* A plugin defines this (SL_PLUGIN_SYMBOL). Declared here so that its definition is checked against sl_op. */
extern SL_PLUGIN_EXPORT const sl_op sluice_plugin;

/* ---- for thread_init ---- */

/* The value of the argument named key (given as "key=value": --plugin-arg, sl_job_options.op_args), or NULL if none
 * was given. The job refuses arguments given twice. Valid until thread_fini returns. */
SL_API const char *sl_op_config_get(const sl_op_config *config, const char *key);
/* How many arguments there are, and the i-th one as given ("key=value"; NULL past the end): an op should refuse
 * (sl_op_fail with SL_EINVAL) keys it does not know, so that a typo is not silently ignored. */
SL_API size_t sl_op_config_count(const sl_op_config *config);
SL_API const char *sl_op_config_arg(const sl_op_config *config, size_t i);
/* This worker thread's index, 0 to sl_op_config_workers() - 1, and the job's number of worker threads. */
SL_API unsigned sl_op_config_worker(const sl_op_config *config);
SL_API unsigned sl_op_config_workers(const sl_op_config *config);
/* Gives the reason thread_init failed: sets the calling thread's sl_last_error() (printf-style, one line) and returns
 * code. Usage: return sl_op_fail(SL_EINVAL, "myop: unknown argument '%s'", arg); */
SL_API int sl_op_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- for process: the object ---- */

/* The object's key, relative to SRC (what DST's output key is made from), NUL-terminated; *len (NULL ok) its length.
 * A key holds any bytes but NUL: not necessarily UTF-8, possibly newlines. */
SL_API const char *sl_task_key(const sl_task *task, size_t *len);
/* The object's size in bytes as its store lists it (for a gzip-encoded gs:// object, the compressed size: the bytes
 * sl_task_read gives are decompressed, see sl_task_content_encoding). */
SL_API uint64_t sl_task_size(const sl_task *task);
/* The object's canonical URL (gs://bucket/key, file:///path), NUL-terminated. */
SL_API const char *sl_task_url(const sl_task *task);
/* Its generation (gs://) or 0; its modification time in ns since the epoch, or 0 when unknown. */
SL_API int64_t sl_task_generation(const sl_task *task);
SL_API int64_t sl_task_mtime_ns(const sl_task *task);
/* The CRC32C / MD5 the store keeps for the stored bytes: true and *out when there is one. */
SL_API bool sl_task_crc32c(const sl_task *task, uint32_t *out);
SL_API bool sl_task_md5(const sl_task *task, unsigned char out[16]);
/* "gzip" when the store keeps the object compressed and sl_task_read decompresses it, NULL otherwise. */
SL_API const char *sl_task_content_encoding(const sl_task *task);
/* The output object's key (the key plus the job's suffix), or NULL when there is no output stream (DST "-"). */
SL_API const char *sl_task_output_key(const sl_task *task);

/* ---- for process: data ---- */

/* A transfer buffer the job lends for this object (from its memory budget: use it rather than allocating per
 * object); *size (not NULL) gets its size, at least 4 KiB. Valid during this process call only. */
SL_API void *sl_task_buffer(sl_task *task, size_t *size);
/* Reads the next bytes of the object into buf (up to cap). Returns the number read (>0), 0 at the end, or a negative
 * SL_E* code with the task's reason set (a store error: SL_EIO, SL_ECORRUPT for data that failed its checksum;
 * SL_ECANCELED once the job is aborted). May block on the store. Return that code from process. */
SL_API int64_t sl_task_read(sl_task *task, void *buf, size_t cap);
/* True when there is an output stream: DST is not "-". */
SL_API bool sl_task_has_output(const sl_task *task);
/* Appends len bytes to the output object (SL_OP_TRANSFORMS ops). Returns 0, or a negative SL_E* code with the task's
 * reason set: SL_EINVAL without an output stream or for an op without SL_OP_TRANSFORMS, a store error (SL_ENOSPC,
 * SL_EIO, ...). May block on the store. */
SL_API int sl_task_write(sl_task *task, const void *buf, size_t len);

/* ---- for process: result and outcome ---- */

/* Add one member to the object's result line, after the job's own "key" and "size" (which may not be used again:
 * SL_EINVAL). name and a string value are JSON-quoted (bytes that are not UTF-8 become \u00XX escapes); a json value
 * must be one complete JSON text (object, array, string, number, true, false, null), SL_EINVAL otherwise. Members
 * come in the order added. The room for all members of one object is about 64 KiB (sl_task_result_room): past it
 * SL_ETOOBIG and the result is left as it was. On failure the task's reason is set too, so `return rc;` reports it. */
SL_API int sl_task_result_string(sl_task *task, const char *name, const char *value, size_t len);
SL_API int sl_task_result_uint(sl_task *task, const char *name, uint64_t value);
SL_API int sl_task_result_int(sl_task *task, const char *name, int64_t value);
SL_API int sl_task_result_json(sl_task *task, const char *name, const char *json, size_t len);
/* Bytes still free for result members (a member needs its quoted name, a ':', its value and a ',' before it). */
SL_API size_t sl_task_result_room(const sl_task *task);
/* Fails the object: sets its one-line reason (printf-style; control characters are escaped on output, a reason longer
 * than 8 KiB loses bytes from its middle) and returns code, a negative SL_E* code. Usage:
 *     return sl_task_fail(task, SL_ECORRUPT, "line %llu is not JSON", n); */
SL_API int sl_task_fail(sl_task *task, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* True once the job has been aborted (a second signal, the grace run out, a server unreachable): stop, and return
 * sl_task_fail(task, SL_ECANCELED, ...). Cheap; safe to call as often as wanted. */
SL_API bool sl_task_aborted(const sl_task *task);

/* ---- loading a plugin ---- */

typedef struct sl_plugin sl_plugin;

/* Loads the shared library at path (a path, never looked up in the library search path: "libx.so" is the file in
 * the current directory) with dlopen(RTLD_NOW | RTLD_LOCAL), which runs its constructors, and checks its
 * SL_PLUGIN_SYMBOL. Errors, each with a one-line sl_last_error() naming the file: SL_ENOENT (no such file), SL_EACCES
 * (not readable), SL_EISDIR, SL_EIO (not a shared library this process can load: dlopen's reason), SL_EINVAL (no
 * symbol sluice_plugin: not a sluice plugin; built against another ABI version; an sl_op that breaks the rules above:
 * no process, a bad name, unknown flags). Caller closes with sl_plugin_close. */
SL_API int sl_plugin_open(const char *path, sl_plugin **out);
/* The plugin's op, valid until sl_plugin_close. */
SL_API const sl_op *sl_plugin_op(const sl_plugin *plugin);
/* Unloads the library: only once every job given its op has been destroyed. NULL ok. */
SL_API void sl_plugin_close(sl_plugin *plugin);

#ifdef __cplusplus
}
#endif

#endif
