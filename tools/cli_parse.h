/* Shared by the commands of tools/. Strict parsers of the numbers typed as option values: digits (for sizes and
 * durations with one decimal point) and a unit, nothing else: no sign, no space, no exponent, no hexadecimal, nothing
 * after. A value that is not zero but rounds to zero is refused, so that it can never stand for 0 (which often means
 * something else: no limit, at once). */
#ifndef SLUICE_TOOLS_CLI_PARSE_H
#define SLUICE_TOOLS_CLI_PARSE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* A size: "64M", "1.5G", "512KiB", "8MB", "1048576" (bytes; K, M, G, T are binary units, upper or lower case,
 * optionally followed by "i" and/or "B"). Rounded down to whole bytes. False on anything else, on 2^64 bytes or more,
 * and on a value that is not 0 but is less than one byte. */
bool sl_cli_parse_size(const char *s, uint64_t *out);
/* A whole decimal number from min to max: digits only. False on anything else. */
bool sl_cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

typedef enum sl_cli_duration_rc {
    SL_CLI_DURATION_OK = 0,
    SL_CLI_DURATION_BAD = -1,  /* not a duration, or over 24 h */
    SL_CLI_DURATION_ZERO = -2, /* not 0, but shorter than half a millisecond: it would round to 0 ms */
} sl_cli_duration_rc;
/* A duration: "30s", "500ms", "2m", "2min", "1h", "1.5s", or a plain number of seconds, into milliseconds (rounded
 * to the nearest), at most 24 h. */
sl_cli_duration_rc sl_cli_parse_duration_ms(const char *s, uint64_t *out_ms);

/* Writes `s` to `f` with control characters as \n, \t, \r or \xHH, so that a message quoting an object name, a path
 * or a command (which may hold a newline) stays one line. Backslashes are left alone: text the library already
 * escaped is not escaped twice (sl_text_escape, which escapes them, is for text that has not been). */
void sl_cli_put_one_line(FILE *f, const char *s);

#endif
