/* libFuzzer target: one GCS objects.list answer body, as sl__gcs_page_parse / sl__gcs_page_next read it from the
 * network. Every entry is read; a name must be a NUL-terminated string, and a parsed page is freed without leaks.
 * jansson, which parsed these pages before the streaming parser, is the reference: a page is accepted exactly when
 * jansson loads it as an object, with the same entries in the same order, the same names, sizes, generations and
 * fingerprints, and the same token. Two departures are on purpose: nesting deeper than jansson's limit (2048) is
 * accepted, and a NUL byte is refused wherever it is (jansson skips one that follows a number or a literal). */
#include "gcs_page.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t ref_u64(json_t *v) {
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    const char *p = json_string_value(v);
    uint64_t n = 0;
    if (!p || !*p)
        return 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return 0;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    return n;
}

static bool same_text(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The reference's next entry (the merge sl__gcs_page_next did on jansson's tree): 1 with *item (NULL for a prefix)
 * and *name, or 0 at the end. */
static int ref_next(json_t *root, size_t *item_i, size_t *prefix_i, json_t **item, const char **name) {
    json_t *items = json_object_get(root, "items"), *prefixes = json_object_get(root, "prefixes");
    for (;;) {
        json_t *it = json_array_get(items, *item_i), *pfx = json_array_get(prefixes, *prefix_i);
        const char *iname = json_string_value(json_object_get(it, "name")), *pname = json_string_value(pfx);
        if (!iname && it) {
            ++*item_i;
            continue;
        }
        if (!pname && pfx) {
            ++*prefix_i;
            continue;
        }
        if (!iname && !pname)
            return 0;
        if (pname && (!iname || strcmp(pname, iname) < 0)) {
            ++*prefix_i;
            *item = NULL;
            *name = pname;
        } else {
            ++*item_i;
            *item = it;
            *name = iname;
        }
        return 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, 0, &jerr);
    bool too_deep = !root && strstr(jerr.text, "maximum parsing depth");
    bool nul = memchr(data, 0, size) != NULL;
    sl__gcs_page page = {0};
    if (sl__gcs_page_parse(&page, (const char *)data, size, "fuzz") != 0) {
        if (page.arena || page.arena_len || page.arena_cap || page.next_item || page.next_prefix || page.token)
            abort(); /* a failed parse leaves the page empty: nothing to free */
        if (json_is_object(root) && !nul)
            abort(); /* refused what jansson accepted */
        json_decref(root);
        return 0;
    }
    if (nul)
        abort(); /* no JSON text holds a NUL byte */
    if (!json_is_object(root) && !too_deep)
        abort(); /* accepted what jansson refused */
    if (!root) {
        root = json_object(); /* past jansson's depth limit: check only the invariants below */
        too_deep = true;
    }
    const char *token = sl__gcs_page_token(&page);
    if (token && !*token)
        abort(); /* an empty token means "last page" and is reported as NULL */
    const char *ref_token = json_string_value(json_object_get(root, "nextPageToken"));
    if (!too_deep && !same_text(token, ref_token && *ref_token ? ref_token : NULL))
        abort();
    const char *name, *ref_name;
    json_t *ref_item;
    sl_object o;
    size_t entries = 0, total = 0, item_i = 0, prefix_i = 0;
    while (sl__gcs_page_next(&page, &name, &o) == 1) {
        if (!name || o.key)
            abort();
        total += strlen(name);
        if (o.is_prefix && (o.size || o.has_crc32c || o.has_md5 || o.generation || o.mtime_ns || o.source_fingerprint))
            abort(); /* a prefix carries no object metadata */
        if (++entries > size)
            abort(); /* every entry costs input bytes: more entries than bytes is a loop that does not advance */
        if (too_deep)
            continue;
        if (ref_next(root, &item_i, &prefix_i, &ref_item, &ref_name) != 1 || strcmp(name, ref_name) != 0 ||
            o.is_prefix != !ref_item)
            abort();
        if (ref_item &&
            (o.size != ref_u64(json_object_get(ref_item, "size")) ||
             (uint64_t)o.generation != ref_u64(json_object_get(ref_item, "generation")) ||
             !same_text(o.source_fingerprint,
                        json_string_value(json_object_get(json_object_get(ref_item, "metadata"), "sluice-source")))))
            abort();
    }
    if (!too_deep && ref_next(root, &item_i, &prefix_i, &ref_item, &ref_name) != 0)
        abort(); /* the reference has more entries */
    if (sl__gcs_page_next(&page, &name, &o) != 0)
        abort(); /* the end of a page stays the end */
    sl__gcs_page_clear(&page);
    json_decref(root);
    return total == SIZE_MAX;
}
