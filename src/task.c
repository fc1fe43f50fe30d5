/* Helpers operations use to report on one object: result members and the failure reason. */
#include "task.h"

#include "fail.h"

#include <stdarg.h>
#include <stdio.h>

/* Members are joined with ',' here rather than by each op, so an op can emit its members in any number of calls and
 * the engine can wrap the result in braces after its own members without inspecting it. The new member is formatted
 * behind the current end and the separator written only once it is known to fit: on SL_ETOOBIG the result string
 * and result_len are exactly as before (bytes past the NUL may have been scribbled on). */
int sl__task_result_printf(sl__task *task, const char *fmt, ...) {
    if (!task->result || task->result_cap == 0)
        return SL_ETOOBIG;
    size_t len = task->result_len;
    size_t sep = len > 0 ? 1 : 0;
    if (len + sep >= task->result_cap)
        return SL_ETOOBIG;
    size_t room = task->result_cap - len - sep;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(task->result + len + sep, room, fmt, ap);
    va_end(ap);
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

int sl__task_fail(sl__task *task, int code, const char *fmt, ...) {
    if (task->error && task->error_cap > 0) {
        /* Cut in the middle if it must be: the reason is at the end. */
        va_list ap;
        va_start(ap, fmt);
        sl__vformat_cut(task->error, task->error_cap, "", fmt, ap);
        va_end(ap);
    }
    return code;
}
