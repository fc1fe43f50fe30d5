/* Error codes, their messages, and the thread-local explanation of the last failure. */
#include "fail.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char tl_message[1024];

const char *sl_strerror(int err) {
    switch (err) {
    case SL_OK:
        return "success";
#define SL__ERRNO_MSG(name, num, msg)                                                                                  \
    case SL_E##name:                                                                                                   \
        return msg;
        SL_ERRNO_MAP(SL__ERRNO_MSG)
#undef SL__ERRNO_MSG
    default:
        return "unknown error";
    }
}

const char *sl_err_name(int err) {
    switch (err) {
    case SL_OK:
        return "SL_OK";
#define SL__ERRNO_NAME(name, num, msg)                                                                                 \
    case SL_E##name:                                                                                                   \
        return "SL_E" #name;
        SL_ERRNO_MAP(SL__ERRNO_NAME)
#undef SL__ERRNO_NAME
    default:
        return "SL_EUNKNOWN";
    }
}

const char *sl_last_error(void) {
    return tl_message;
}

const char *sl_version(void) {
    return SL_VERSION_STRING;
}

/* Sets the message to fmt/ap followed by `tail` (may be ""). A message that does not fit loses bytes from its middle,
 * not its end: the end says what went wrong ("...: path too long"), the start which store and object, and only a
 * long path or key quoted in between is shortened. */
static void s_set_message(const char *tail, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    /* Made aside and copied in at the end: an argument may be sl_last_error() itself ("%s: more context"). */
    char msg[sizeof(tl_message)];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t tail_len = strlen(tail);
    if (n < 0) {
        va_end(again);
        snprintf(tl_message, sizeof(tl_message), "(unprintable message)%s", tail);
        return;
    }
    if ((size_t)n + tail_len < sizeof(msg)) {
        va_end(again);
        memcpy(msg + n, tail, tail_len + 1);
        memcpy(tl_message, msg, (size_t)n + tail_len + 1);
        return;
    }
    size_t len = (size_t)n + tail_len;
    char *full = malloc(len + 1);
    if (!full) {
        /* No room to shorten it properly: the start, as vsnprintf left it. */
        va_end(again);
        memcpy(tl_message, msg, sizeof(msg));
        return;
    }
    vsnprintf(full, (size_t)n + 1, fmt, again);
    va_end(again);
    memcpy(full + n, tail, tail_len + 1);
    static const char mark[] = " [...] ";
    size_t keep = sizeof(msg) - 1 - (sizeof(mark) - 1), head = keep / 3, rest = len - (keep - head);
    /* Cut between characters, not inside a UTF-8 sequence. */
    while (head > 0 && ((unsigned char)full[head] & 0xC0) == 0x80)
        head--;
    while (rest < len && ((unsigned char)full[rest] & 0xC0) == 0x80)
        rest++;
    memcpy(msg, full, head);
    memcpy(msg + head, mark, sizeof(mark) - 1);
    memcpy(msg + head + sizeof(mark) - 1, full + rest, len - rest + 1);
    free(full);
    memcpy(tl_message, msg, sizeof(msg));
}

int sl__fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    s_set_message("", fmt, ap);
    va_end(ap);
    return code;
}

int sl__fail_errno(int errnum, const char *fmt, ...) {
    char errbuf[128], tail[160];
    /* strerror_r (GNU flavour under _GNU_SOURCE) may return a static string instead of filling errbuf. */
    const char *reason = strerror_r(errnum, errbuf, sizeof(errbuf));
    snprintf(tail, sizeof(tail), ": %s", reason);
    va_list ap;
    va_start(ap, fmt);
    s_set_message(tail, fmt, ap);
    va_end(ap);
    return sl__errno_to_sl(errnum);
}

int sl__errno_to_sl(int errnum) {
    switch (errnum) {
    case 0:
        return SL_OK;
    case EINVAL:
        return SL_EINVAL;
    case ENOMEM:
        return SL_ENOMEM;
    case ENOENT:
        return SL_ENOENT;
    case EEXIST:
        return SL_EEXIST;
    case EACCES:
    case EPERM:
        return SL_EACCES;
    case ENOSPC:
    case EDQUOT:
        return SL_ENOSPC;
    case EROFS:
        return SL_EROFS;
    case ENAMETOOLONG:
        return SL_ENAMETOOLONG;
    case EISDIR:
        return SL_EISDIR;
    case ENOTDIR:
        return SL_ENOTDIR;
    case ENOTSUP:
        return SL_ENOTSUP;
    default:
        return SL_EIO;
    }
}
