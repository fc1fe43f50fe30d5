/* The task an operation gets for one object (sluice/plugin.h): its accessors, its result members and its failure
 * reason, and the check of an op handed over by a caller or a plugin. */
#include "task.h"

#include "fail.h"

#include <jansson.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Members are joined with ',' here rather than by each op, so an op can emit its members in any number of calls and
 * the engine can wrap the result in braces after its own members without inspecting it. The new member is formatted
 * behind the current end and the separator written only once it is known to fit: on SL_ETOOBIG the result string
 * and result_len are exactly as before (bytes past the NUL may have been scribbled on). */
static int s_result_vprintf(sl__task *task, const char *fmt, va_list ap) {
    if (!task->result || task->result_cap == 0)
        return SL_ETOOBIG;
    size_t len = task->result_len;
    size_t sep = len > 0 ? 1 : 0;
    if (len + sep >= task->result_cap)
        return SL_ETOOBIG;
    size_t room = task->result_cap - len - sep;
    int n = vsnprintf(task->result + len + sep, room, fmt, ap);
    if (n < 0 || (size_t)n >= room) {
        task->result[len] = '\0';
        return SL_ETOOBIG;
    }
    if (n == 0) {
        task->result[len] = '\0';
        return 0;
    }
    if (sep)
        task->result[len] = ',';
    task->result_len = len + sep + (size_t)n;
    return 0;
}

int sl__task_result_printf(sl__task *task, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = s_result_vprintf(task, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_vfail(sl__task *task, int code, const char *fmt, va_list ap) {
    if (task->error && task->error_cap > 0)
        sl__vformat_cut(task->error, task->error_cap, "", fmt, ap); /* cut in the middle if it must be */
    return code;
}

int sl__task_fail(sl__task *task, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    s_vfail(task, code, fmt, ap);
    va_end(ap);
    return code;
}

int sl_task_fail(sl_task *task, int code, const char *fmt, ...) {
    if (!task)
        return code;
    va_list ap;
    va_start(ap, fmt);
    s_vfail(task, code, fmt, ap);
    va_end(ap);
    return code;
}

bool sl_task_aborted(const sl_task *task) {
    return task && task->abort && atomic_load_explicit(task->abort, memory_order_relaxed);
}

/* ---- the object ---- */

const char *sl_task_key(const sl_task *task, size_t *len) {
    if (len)
        *len = task->src->key_len;
    return task->src->key;
}

uint64_t sl_task_size(const sl_task *task) {
    return task->src->size;
}

const char *sl_task_url(const sl_task *task) {
    return task->src_url ? task->src_url : "";
}

int64_t sl_task_generation(const sl_task *task) {
    return task->src->generation;
}

int64_t sl_task_mtime_ns(const sl_task *task) {
    return task->src->mtime_ns;
}

bool sl_task_crc32c(const sl_task *task, uint32_t *out) {
    if (task->src->has_crc32c && out)
        *out = task->src->crc32c;
    return task->src->has_crc32c;
}

bool sl_task_md5(const sl_task *task, unsigned char out[16]) {
    if (task->src->has_md5 && out)
        memcpy(out, task->src->md5, 16);
    return task->src->has_md5;
}

const char *sl_task_content_encoding(const sl_task *task) {
    return task->src->content_encoding;
}

const char *sl_task_output_key(const sl_task *task) {
    return task->out ? task->dst_key : NULL;
}

/* ---- data ---- */

void *sl_task_buffer(sl_task *task, size_t *size) {
    *size = task->buf_size;
    return task->buf;
}

/* A backend is supposed to explain every failure in sl_last_error(); fall back to the code's text if it did not. */
static const char *s_detail(int rc) {
    const char *msg = sl_last_error();
    return msg[0] ? msg : sl_strerror(rc);
}

/* Checking the abort flag before every read bounds the work a cancelled op still does to one chunk. */
int64_t sl_task_read(sl_task *task, void *buf, size_t cap) {
    if (sl_task_aborted(task))
        return sl__task_fail(task, SL_ECANCELED, "interrupted");
    int64_t n = sl_read(task->in, buf, cap);
    if (n < 0)
        return sl__task_fail(task, (int)n, "read failed: %s", s_detail((int)n));
    task->bytes_in += (uint64_t)n;
    return n;
}

bool sl_task_has_output(const sl_task *task) {
    return task->out != NULL;
}

int sl_task_write(sl_task *task, const void *buf, size_t len) {
    if (!task->out)
        return sl__task_fail(task, SL_EINVAL, "no output stream to write to (the destination is '-')");
    if (task->no_write)
        return sl__task_fail(task, SL_EINVAL,
                             "an operation without SL_OP_TRANSFORMS cannot write its output: its result line is");
    int rc = sl_write(task->out, buf, len);
    if (rc < 0)
        return sl__task_fail(task, rc, "write to %s failed: %s", task->dst_key ? task->dst_key : "output",
                             s_detail(rc));
    task->bytes_out += len;
    return 0;
}

/* ---- result members ---- */

static int s_too_big(sl_task *task) {
    return sl__task_fail(task, SL_ETOOBIG, "result does not fit in %zu bytes", task->result_cap);
}

/* Writes `"name":` behind the current end of the result (after the ',' a member needs when there is one before it)
 * and returns the room left for the value in *room, its place in *value; the member counts only once s_commit is
 * called, so a value that does not fit leaves the result exactly as it was. */
static int s_begin(sl_task *task, const char *name, char **value, size_t *room) {
    if (!name)
        return sl__task_fail(task, SL_EINVAL, "result member without a name");
    if (strcmp(name, "key") == 0 || strcmp(name, "size") == 0)
        return sl__task_fail(task, SL_EINVAL, "result member \"%s\" is the job's own: choose another name", name);
    size_t len = task->result_len, sep = len > 0 ? 1 : 0;
    if (!task->result || len + sep + 1 >= task->result_cap)
        return s_too_big(task);
    char *p = task->result + len + sep;
    size_t left = task->result_cap - len - sep;
    size_t qn = sl_json_quote(p, left, name, strlen(name));
    if (qn + 2 > left) {
        task->result[len] = '\0';
        return s_too_big(task);
    }
    p[qn] = ':';
    *value = p + qn + 1;
    *room = left - qn - 1;
    return 0;
}

/* The member begun by s_begin, whose value (value_len bytes) is in place: counted if it fits, else undone. */
static int s_commit(sl_task *task, const char *value, size_t value_len, size_t room) {
    size_t len = task->result_len, sep = len > 0 ? 1 : 0;
    if (value_len >= room) {
        task->result[len] = '\0';
        return s_too_big(task);
    }
    if (sep)
        task->result[len] = ',';
    task->result_len = (size_t)(value + value_len - task->result);
    task->result[task->result_len] = '\0';
    return 0;
}

static int s_member(sl_task *task, const char *name, const char *text, size_t text_len) {
    char *value = NULL;
    size_t room = 0;
    int rc = s_begin(task, name, &value, &room);
    if (rc < 0)
        return rc;
    if (text_len < room)
        memcpy(value, text, text_len);
    return s_commit(task, value, text_len, room);
}

int sl_task_result_string(sl_task *task, const char *name, const char *value, size_t len) {
    if (!value && len)
        return sl__task_fail(task, SL_EINVAL, "result member \"%s\": NULL value", name ? name : "");
    char *p = NULL;
    size_t room = 0;
    int rc = s_begin(task, name, &p, &room);
    if (rc < 0)
        return rc;
    size_t n = sl_json_quote(p, room, value ? value : "", len);
    return s_commit(task, p, n, room);
}

int sl_task_result_uint(sl_task *task, const char *name, uint64_t value) {
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRIu64, value);
    return s_member(task, name, text, (size_t)n);
}

int sl_task_result_int(sl_task *task, const char *name, int64_t value) {
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRId64, value);
    return s_member(task, name, text, (size_t)n);
}

int sl_task_result_json(sl_task *task, const char *name, const char *json, size_t len) {
    json_error_t err;
    json_t *v = json ? json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err) : NULL;
    if (!v)
        return sl__task_fail(task, SL_EINVAL, "result member \"%s\" is not one JSON text: %s", name ? name : "",
                             json ? err.text : "NULL");
    json_decref(v);
    /* A JSON text may span lines; the result is one line, and JSON's whitespace outside strings is ' ', \t, \n, \r,
     * none of which can appear raw inside a string. */
    if (memchr(json, '\n', len) || memchr(json, '\r', len))
        return sl__task_fail(task, SL_EINVAL, "result member \"%s\": the JSON text must be on one line",
                             name ? name : "");
    return s_member(task, name, json, len);
}

size_t sl_task_result_room(const sl_task *task) {
    if (!task->result || task->result_len + 1 >= task->result_cap)
        return 0;
    return task->result_cap - task->result_len - 1;
}

/* ---- the op ---- */

int sl__op_check(const sl_op *op, const char *what) {
    if (!op)
        return sl__fail(SL_EINVAL, "%s: no operation", what);
    if (op->abi_version != SL_OP_ABI_VERSION)
        return sl__fail(SL_EINVAL,
                        "%s was built for sluice plugin ABI version %" PRIu32 "; this sluice loads version %u: "
                        "rebuild it against this sluice's sluice/plugin.h",
                        what, op->abi_version, SL_OP_ABI_VERSION);
    size_t n = op->name ? strlen(op->name) : 0;
    bool name_ok = n >= 1 && n <= 32;
    for (size_t i = 0; name_ok && i < n; i++) {
        char c = op->name[i];
        name_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                  c == '.';
    }
    if (!name_ok)
        return sl__fail(SL_EINVAL, "%s: its operation's name must be 1 to 32 letters, digits, '_', '-' or '.'", what);
    if (!op->process)
        return sl__fail(SL_EINVAL, "%s: operation %s has no process function", what, op->name);
    if (op->flags & ~SL_OP_TRANSFORMS)
        return sl__fail(SL_EINVAL, "%s: operation %s sets flags this sluice does not know (0x%" PRIx32 ")", what,
                        op->name, op->flags & ~SL_OP_TRANSFORMS);
    return 0;
}

/* ---- the config thread_init gets ---- */

const char *sl_op_config_get(const sl_op_config *config, const char *key) {
    if (!config || !key)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < config->arg_count; i++)
        if (strncmp(config->args[i], key, klen) == 0 && config->args[i][klen] == '=')
            return config->args[i] + klen + 1;
    return NULL;
}

size_t sl_op_config_count(const sl_op_config *config) {
    return config ? config->arg_count : 0;
}

const char *sl_op_config_arg(const sl_op_config *config, size_t i) {
    return config && i < config->arg_count ? config->args[i] : NULL;
}

unsigned sl_op_config_worker(const sl_op_config *config) {
    return config ? config->worker : 0;
}

unsigned sl_op_config_workers(const sl_op_config *config) {
    return config && config->workers ? config->workers : 1;
}
