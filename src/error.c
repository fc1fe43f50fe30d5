/* Error codes, their messages, and the thread-local explanation of the last failure. */
#include "fail.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
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

int sl__fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_message, sizeof(tl_message), fmt, ap);
    va_end(ap);
    return code;
}

int sl__fail_errno(int errnum, const char *fmt, ...) {
    char errbuf[128];
    /* strerror_r (GNU flavour under _GNU_SOURCE) may return a static string instead of filling errbuf. */
    const char *reason = strerror_r(errnum, errbuf, sizeof(errbuf));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tl_message, sizeof(tl_message), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(tl_message))
        snprintf(tl_message + n, sizeof(tl_message) - (size_t)n, ": %s", reason);
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
