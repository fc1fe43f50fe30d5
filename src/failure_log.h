/* Reading a failure log (the JSON lines --failures writes) back, one line at a time, in constant memory: the input
 * of --retry-failed.
 *
 * Each non-blank line must be one JSON object with a string member "key"; other members are skipped. Key strings are
 * decoded the way sl_json_quote encodes them: \u0000-\u00FF escapes stand for single bytes (that is how sluice writes
 * control characters and bytes that are not UTF-8; valid UTF-8 is written as it is), higher escapes and surrogate
 * pairs for their UTF-8 encoding. */
#ifndef SLUICE_FAILURE_LOG_H
#define SLUICE_FAILURE_LOG_H

#include <stddef.h>
#include <stdint.h>

#define SL__FAILLOG_LINE_CAP ((size_t)256 * 1024) /* longest line accepted */
#define SL__FAILLOG_KEY_CAP ((size_t)8192)        /* longest decoded key accepted, NUL included */

typedef struct sl__faillog sl__faillog;

/* Opens path for reading. SL_EINVAL naming the file and the reason if it cannot be opened. Caller closes with
 * sl__faillog_close. */
int sl__faillog_open(const char *path, sl__faillog **out);
/* The next key: 1 with *key (NUL-terminated, valid until the next call) and *len, 0 at the end of the file, or
 * SL_EINVAL for a malformed line with sl_last_error() naming the file and the line number (SL_EIO if reading
 * failed). Blank lines are skipped. */
int sl__faillog_next(sl__faillog *r, const char **key, size_t *len);
/* Number of the line last returned (1-based). */
uint64_t sl__faillog_line(const sl__faillog *r);
/* NULL ok. */
void sl__faillog_close(sl__faillog *r);

/* Parses one line (without its newline) of `len` bytes; on success 0 with the key in key_buf (NUL-terminated) and
 * its length in *key_len; otherwise SL_EINVAL with a reason (without file or line) in why. For tests and the
 * reader. */
int sl__faillog_parse_line(const char *line, size_t len, char *key_buf, size_t key_cap, size_t *key_len, char *why,
                           size_t why_cap);

#endif
