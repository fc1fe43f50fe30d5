/* libFuzzer target: the glob matcher, pattern and key together. The input is PATTERN NUL KEY (the key may hold any
 * byte, NUL included; no NUL at all: the whole input is the pattern and the key is empty). Checked: a pattern that
 * sl_glob_check refuses matches nothing, and a pattern with no special character and no '/' matches a key without
 * '/' exactly when they are the same bytes. Time is bounded by the fuzzer's -timeout: the matcher promises
 * len(pattern) * len(key) steps, so a slow input is a bug too. */
#include "sluice/glob.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, '\0', size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    char *pattern = malloc(plen + 1);
    if (!pattern)
        return 0;
    memcpy(pattern, data, plen);
    pattern[plen] = '\0';
    /* The key gets its own allocation of exactly its length, so that ASan sees any read past its end. */
    size_t klen = nul ? size - plen - 1 : 0;
    char *key = malloc(klen ? klen : 1);
    if (!key) {
        free(pattern);
        return 0;
    }
    if (klen)
        memcpy(key, nul + 1, klen);

    bool ok = sl_glob_check(pattern) == 0;
    bool hit = sl_glob_match(pattern, key, klen);
    if (!ok && hit)
        abort();
    if (ok && plen > 0 && strcspn(pattern, "*?[]{},\\/") == plen && !memchr(key, '/', klen)) {
        bool same = klen == plen && memcmp(key, pattern, plen) == 0;
        if (hit != same)
            abort();
    }
    if (hit != sl_glob_match(pattern, key, klen))
        abort(); /* no hidden state between calls */
    free(key);
    free(pattern);
    return 0;
}
