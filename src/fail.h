/* Setting the thread-local error explanation that sl_last_error() returns. */
#ifndef SLUICE_FAIL_H
#define SLUICE_FAIL_H

#include "sluice/sluice.h"

#include <stdarg.h>
#include <stddef.h>

/* The room for one message, in sl_last_error() and in every buffer a message is copied to on its way out (a failure
 * record, the report, the command's stderr): enough for a maximal key or path quoted with its reason (a 4,096-byte
 * path, a 1,024-byte GCS name with the server's answer). A longer one loses bytes from its middle (sl__text_cut). */
#define SL__MESSAGE_CAP 8192

/* Formats the explanation into the calling thread's buffer (SL__MESSAGE_CAP: a longer one loses bytes from its middle,
 * never its end, where the reason is) and returns `code`. An argument may be sl_last_error() itself. Usage:
 *     return sl__fail(SL_ENOENT, "%s: no such file or directory", path); */
int sl__fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like sl__fail with code = sl__errno_to_sl(errnum); appends ": <strerror(errnum)>" to the message. */
int sl__fail_errno(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies the len bytes of text src into dst (cap bytes, NUL-terminated); text that does not fit loses bytes from its
 * middle, replaced by " [...] ": its start (which store, which object) and its end (the reason) survive, and it is
 * never cut inside a UTF-8 sequence. dst may be src. Returns the length written. */
size_t sl__text_cut(char *dst, size_t cap, const char *src, size_t len);
/* Formats fmt/ap followed by tail (may be "") into dst like sl__text_cut. An argument may be dst itself. Returns the
 * length written. */
size_t sl__vformat_cut(char *dst, size_t cap, const char *tail, const char *fmt, va_list ap);
/* Maps an errno value to the nearest SL_E* code (SL_EIO when there is no better one). */
int sl__errno_to_sl(int errnum);

#endif
