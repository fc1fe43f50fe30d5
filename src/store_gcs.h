/* Internals of the gs:// store that are reachable from tests (tests/unit, tests/fuzz): the listing page parser. */
#ifndef SLUICE_STORE_GCS_H
#define SLUICE_STORE_GCS_H

#include "sluice/store.h"

#include <stddef.h>

/* One page of an objects.list answer: {"items": [{"name": ..., "size": ...}, ...], "prefixes": [...],
 * "nextPageToken": ...}. The server sorts items and prefixes each; sl__gcs_page_next merges the two in byte order.
 * The parse keeps only what sl_object needs, in one block (the arena) that grows by doubling as it fills: entries and
 * the strings they refer to, chained by offsets because the block moves as it grows. A page of the fields sluice asks
 * for needs about half its body's size; the most any body can make it hold is about 7 bytes per byte of body (a body
 * of nothing but {"name":""} items), in a block of up to twice that. */
typedef struct sl__gcs_page {
    char *arena; /* NULL when empty */
    size_t arena_len, arena_cap;
    size_t next_item, next_prefix; /* offsets in arena of the next entry of each list; 0 at its end */
    size_t token;                  /* offset in arena of nextPageToken's text; 0 when there is none */
} sl__gcs_page;

/* Parses a page body (len bytes, need not be NUL-terminated) into *page, which must be empty ({0} or cleared).
 * bucket only names the bucket in the message. Returns 0, or SL_ECORRUPT when the body is not a JSON object (or
 * SL_ENOMEM); on failure *page is left empty. */
int sl__gcs_page_parse(sl__gcs_page *page, const char *body, size_t len, const char *bucket);
/* The page's nextPageToken, NULL when this is the last page. Valid until sl__gcs_page_clear. */
const char *sl__gcs_page_token(const sl__gcs_page *page);
/* The next entry in byte order: 1 with *name its full object name (or prefix, which ends in '/') valid until
 * sl__gcs_page_clear, and *out filled from the object resource (out->key NULL; for a prefix only is_prefix set);
 * 0 at the end of the page. Entries that are not a string name are skipped. */
int sl__gcs_page_next(sl__gcs_page *page, const char **name, sl_object *out);
/* Frees the page and leaves it empty. NULL ok. */
void sl__gcs_page_clear(sl__gcs_page *page);

#endif
