/* Setting the thread-local error explanation that sl_last_error() returns. */
#ifndef SLUICE_FAIL_H
#define SLUICE_FAIL_H

#include "sluice/sluice.h"

/* Formats the explanation into the calling thread's buffer (1 KiB: a longer one loses bytes from its middle, never its
 * end, where the reason is) and returns `code`. Usage:
 *     return sl__fail(SL_ENOENT, "%s: no such file or directory", path); */
int sl__fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like sl__fail with code = sl__errno_to_sl(errnum); appends ": <strerror(errnum)>" to the message. */
int sl__fail_errno(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps an errno value to the nearest SL_E* code (SL_EIO when there is no better one). */
int sl__errno_to_sl(int errnum);

#endif
