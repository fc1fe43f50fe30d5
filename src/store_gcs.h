/* Internals of the gs:// store that are reachable from tests (tests/unit, tests/fuzz): the listing page parser. */
#ifndef SLUICE_STORE_GCS_H
#define SLUICE_STORE_GCS_H

#include "sluice/store.h"

#include <jansson.h>
#include <stddef.h>

/* One page of an objects.list answer: {"items": [{"name": ..., "size": ...}, ...], "prefixes": [...],
 * "nextPageToken": ...}. The server sorts items and prefixes each; sl__gcs_page_next merges the two in byte order. */
typedef struct sl__gcs_page {
    json_t *root; /* NULL when empty */
    size_t item_i, prefix_i;
} sl__gcs_page;

/* Parses a page body (len bytes, need not be NUL-terminated) into *page, which must be empty ({0} or cleared).
 * bucket only names the bucket in the message. Returns 0, or SL_ECORRUPT when the body is not a JSON object. */
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
