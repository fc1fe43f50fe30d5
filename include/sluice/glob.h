/* Glob patterns for --include / --exclude.
 *
 * Syntax: `*` any run of characters except '/', `**` any run including '/', `?` one character except '/',
 * `[abc]`, `[a-z]`, `[!a-z]` one character from a set (never '/'), `{png,jpg}` alternatives (not nested),
 * `\x` the character x literally. A pattern containing no '/' is matched against the last component of the key
 * (`*.csv` matches "a/b/c.csv"); a pattern with a '/' is matched against the whole key, a leading '/' anchoring it
 * at the store prefix. Matching is on bytes; keys need not be UTF-8. */
#ifndef SLUICE_GLOB_H
#define SLUICE_GLOB_H

#include "sluice/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks that `pattern` is well formed (balanced [] and {}, no trailing '\'). Returns 0 or SL_EINVAL with
 * sl_last_error() saying what is wrong. */
SL_API int sl_glob_check(const char *pattern);
/* Returns true if `key` (key_len bytes, need not be NUL-terminated) matches `pattern`. A malformed pattern matches
 * nothing. Runs in time bounded by len(pattern) * len(key) (no exponential backtracking). Thread-safe, no
 * allocation. */
SL_API bool sl_glob_match(const char *pattern, const char *key, size_t key_len);

#ifdef __cplusplus
}
#endif

#endif
