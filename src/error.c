/* Error codes, their messages, and the thread-local explanation of the last failure. */
#include "fail.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char tl_message[SL__MESSAGE_CAP];

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

size_t sl__text_cut(char *dst, size_t cap, const char *src, size_t len) {
    if (cap == 0)
        return 0;
    if (len < cap) {
        memmove(dst, src, len);
        dst[len] = '\0';
        return len;
    }
    static const char mark[] = " [...] ";
    size_t mark_len = sizeof(mark) - 1;
    if (cap <= mark_len + 2) {
        /* No room for a mark: the end alone, where the reason is. */
        size_t rest = len - (cap - 1);
        while (rest < len && ((unsigned char)src[rest] & 0xC0) == 0x80)
            rest++;
        memmove(dst, src + rest, len - rest);
        dst[len - rest] = '\0';
        return len - rest;
    }
    size_t keep = cap - 1 - mark_len, head = keep / 3, rest = len - (keep - head);
    /* Cut between characters, not inside a UTF-8 sequence. */
    while (head > 0 && ((unsigned char)src[head] & 0xC0) == 0x80)
        head--;
    while (rest < len && ((unsigned char)src[rest] & 0xC0) == 0x80)
        rest++;
    /* dst may be src itself: the end moves left, over the middle, after the head (which stays where it is). */
    memmove(dst, src, head);
    memmove(dst + head + mark_len, src + rest, len - rest);
    memcpy(dst + head, mark, mark_len);
    dst[head + mark_len + (len - rest)] = '\0';
    return head + mark_len + (len - rest);
}

size_t sl__vformat_cut(char *dst, size_t cap, const char *tail, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    /* Made aside and copied in at the end: an argument may be dst itself ("%s: more context" of the last message). */
    char small[1024];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    size_t tail_len = strlen(tail);
    if (n < 0) {
        va_end(again);
        char unprintable[] = "(unprintable message)";
        size_t len = sl__text_cut(dst, cap, unprintable, sizeof(unprintable) - 1);
        return len + sl__text_cut(dst + len, cap > len ? cap - len : 0, tail, tail_len);
    }
    size_t len = (size_t)n + tail_len;
    char *full = len < sizeof(small) ? small : malloc(len + 1);
    if (!full) {
        /* No room to make the whole text: its start, as vsnprintf left it, then the tail, where the reason is. */
        va_end(again);
        size_t room = cap > tail_len ? cap - tail_len - 1 : 0;
        size_t start = sl__text_cut(dst, room + 1 < cap ? room + 1 : cap, small, strnlen(small, room));
        return start + sl__text_cut(dst + start, cap - start, tail, tail_len);
    }
    if (full != small)
        vsnprintf(full, (size_t)n + 1, fmt, again);
    va_end(again);
    memcpy(full + n, tail, tail_len + 1);
    size_t out = sl__text_cut(dst, cap, full, len);
    if (full != small)
        free(full);
    return out;
}

/* Sets the message to fmt/ap followed by `tail` (may be ""): one that does not fit loses bytes from its middle, not
 * its end (sl__text_cut). */
static void s_set_message(const char *tail, const char *fmt, va_list ap) {
    sl__vformat_cut(tl_message, sizeof(tl_message), tail, fmt, ap);
}

int sl__fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    s_set_message("", fmt, ap);
    va_end(ap);
    return code;
}

int sl_op_fail(int code, const char *fmt, ...) {
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
