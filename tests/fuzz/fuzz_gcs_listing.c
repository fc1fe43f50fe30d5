/* libFuzzer target: one GCS objects.list answer body, as sl__gcs_page_parse / sl__gcs_page_next read it from the
 * network. Every entry is read; a name must be a NUL-terminated string, and a parsed page is freed without leaks. */
#include "store_gcs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl__gcs_page page = {0};
    if (sl__gcs_page_parse(&page, (const char *)data, size, "fuzz") != 0) {
        if (page.root)
            abort(); /* a failed parse leaves nothing to free */
        return 0;
    }
    const char *token = sl__gcs_page_token(&page);
    if (token && !*token)
        abort(); /* an empty token means "last page" and is reported as NULL */
    const char *name;
    sl_object o;
    size_t entries = 0, total = 0;
    while (sl__gcs_page_next(&page, &name, &o) == 1) {
        if (!name || o.key)
            abort();
        total += strlen(name);
        if (o.is_prefix && (o.size || o.has_crc32c || o.has_md5 || o.generation || o.mtime_ns))
            abort(); /* a prefix carries no object metadata */
        if (++entries > size)
            abort(); /* every entry costs input bytes: more entries than bytes is a loop that does not advance */
    }
    if (sl__gcs_page_next(&page, &name, &o) != 0)
        abort(); /* the end of a page stays the end */
    sl__gcs_page_clear(&page);
    return total == SIZE_MAX;
}
