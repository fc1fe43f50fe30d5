/* What the gs:// store reads out of GCS JSON answers: the listing page parser (a stream parse with yajl into one flat
 * block, so a page of 1,000 objects costs a few thousand instructions per object rather than a document tree) and
 * the field decoders it shares with store_gcs.c. Reachable from tests (tests/unit, tests/fuzz). */
#ifndef SLUICE_GCS_PAGE_H
#define SLUICE_GCS_PAGE_H

#include "sluice/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The custom metadata key that holds a source fingerprint (sl_write_options.source_fingerprint). */
#define SL__GCS_META_KEY "sluice-source"

/* sl_object.content_encoding of an object stored gzip-compressed. */
#define SL__GCS_GZIP "gzip"
/* True when a contentEncoding or Content-Encoding value (len bytes) says gzip ("gzip" or "x-gzip", any case, white
 * space around it ignored): the stored bytes are one or more gzip members. */
bool sl__gcs_is_gzip(const char *s, size_t len);

/* Decodes base64 text (NUL-terminated) into exactly `want` bytes; false if it is not that. */
bool sl__gcs_unb64(const char *in, unsigned char *out, size_t want);
/* Decodes a CRC32C as GCS sends it (base64 of its 4 big-endian bytes); false if it is not that. */
bool sl__gcs_unb64_crc(const char *in, uint32_t *crc);
/* RFC 3339 ("2026-11-25T10:23:00.123Z") to ns since the epoch; 0 if unparsable or out of int64 ns range. NULL ok. */
int64_t sl__gcs_parse_time(const char *s);
/* A non-negative decimal integer of len characters, as GCS sends int64 fields; 0 for anything else. */
uint64_t sl__gcs_u64_text(const char *p, size_t len);

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

#endif /* SLUICE_GCS_PAGE_H */
