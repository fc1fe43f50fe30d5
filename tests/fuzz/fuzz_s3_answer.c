/* libFuzzer target: any S3 XML answer. The first byte chooses the answer the request expected (its root element, or
 * <Error> alone), the rest is the body, fed whole and in chunks (the first byte's high bits choose their size); the
 * invariants of s3_fuzz_common.h hold, and a failed answer says nothing. */
#include "s3_fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sl__s3_xml *x;
    if (!x && !(x = sl__s3_xml_new()))
        abort();
    if (size == 0)
        return 0;
    sl__s3_doc expect = (sl__s3_doc)(SL__S3_DOC_ERROR + data[0] % (SL__S3_DOC_LOCATION - SL__S3_DOC_ERROR + 1));
    size_t chunk = 1 + (size_t)(data[0] >> 4);
    s_fuzz_answer(x, expect, data + 1, size - 1, chunk);
    return 0;
}
