/* libFuzzer target: one ListObjectsV2 answer body, as the s3:// store feeds it to sl__s3_xml in the chunks libcurl
 * delivers. The same outcome fed whole and in chunks (of 1 to 16 bytes, from the input's length); on success every
 * entry a decoded, NUL-terminated UTF-8 key of at most SL__S3_KEY_MAX bytes, at most SL__S3_PAGE_MAX of them, a prefix
 * without object fields; on failure a one-line message naming the request and nothing to read; no leak. */
#include "s3_fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sl__s3_xml *x;
    if (!x && !(x = sl__s3_xml_new()))
        abort();
    s_fuzz_answer(x, SL__S3_DOC_LIST, data, size, 1 + size % 16);
    return 0;
}
