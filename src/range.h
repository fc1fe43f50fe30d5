/* Byte ranges in HTTP headers (the public --range syntax is sl_range_parse in sluice/store.h). */
#ifndef SLUICE_RANGE_H
#define SLUICE_RANGE_H

#include <stdbool.h>
#include <stdint.h>

/* Parses a Content-Range value for a satisfied range, "bytes FIRST-LAST/TOTAL" (RFC 9110 14.4): the unit, one space,
 * decimal digits only (no sign, no spaces, no overflow), FIRST <= LAST < TOTAL. The unsatisfied form ("bytes" SP "*"
 * "/" TOTAL) and an unknown TOTAL ("*") are refused: a download needs to know where its bytes sit. False on anything
 * else, and the outputs are then unspecified. */
bool sl__content_range_parse(const char *value, uint64_t *first, uint64_t *last, uint64_t *total);

/* Parses a Range value with one closed range, "bytes=FIRST-LAST", FIRST <= LAST (what a resumable upload's 308
 * answer carries: the bytes the server has). False on anything else. */
bool sl__range_header_parse(const char *value, uint64_t *first, uint64_t *last);

#endif
