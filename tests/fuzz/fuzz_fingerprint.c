/* libFuzzer target: the resume fingerprint parser (sl__fp_parse, sl__fp_matches) and the decoder of a local output's
 * compact record (sl__fp_record_decode). A fingerprint comes back from a store's metadata (the gs:// custom metadata
 * sluice-source, the local xattr user.sluice.source), which anyone with write access to the destination can set to
 * anything. Checked: a text that parses describes an object whose own fingerprint, formatted again, parses to the same
 * fields and matches it; sl__fp_matches agrees with the parse; and a record that decodes encodes back to the same. */
#include "resume.h"
#include "sluice/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_same(const sl__fingerprint *a, const sl__fingerprint *b) {
    return a->size == b->size && a->has_gen == b->has_gen && a->version == b->version &&
           a->has_crc32c == b->has_crc32c && (!a->has_crc32c || a->crc32c == b->crc32c) &&
           strcmp(a->enc, b->enc) == 0 && strcmp(a->job, b->job) == 0;
}

/* The compact record of a local output (the bytes of its xattr): one that decodes gives a text
 * "<out size> <out mtime_ns> <fingerprint> out_crc32c=<8 hex>" whose fingerprint parses, and encoding those fields
 * again gives a record that decodes to the same text. */
static void s_record(const uint8_t *data, size_t size) {
    char text[512];
    if (!sl__fp_record_decode(data, size, text, sizeof(text)))
        return;
    unsigned long long out_size;
    long long mtime_ns;
    int used = 0;
    if (sscanf(text, "%llu %lld %n", &out_size, &mtime_ns, &used) != 2 || !used)
        abort();
    char copy[512];
    memcpy(copy, text, sizeof(copy));
    char *crc = strstr(copy + used, " out_crc32c=");
    if (!crc || strlen(crc) != strlen(" out_crc32c=") + 8)
        abort();
    uint32_t out_crc = (uint32_t)strtoul(crc + strlen(" out_crc32c="), NULL, 16);
    *crc = '\0';
    sl__fingerprint fp;
    if (!sl__fp_parse(copy + used, &fp))
        abort();
    unsigned char again[256];
    size_t n = sl__fp_record_encode(again, sizeof(again), out_size, mtime_ns, out_crc, copy + used);
    char text2[512];
    if (!n || !sl__fp_record_decode(again, n, text2, sizeof(text2)) || strcmp(text, text2) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sl__fingerprint fp;
    bool parsed = sl__fp_parse(text, &fp);
    if (parsed) {
        /* The object it describes, and that object's fingerprint made again by the same job. */
        sl_object obj = {.key = "k", .key_len = 1, .size = fp.size, .has_crc32c = fp.has_crc32c, .crc32c = fp.crc32c};
        if (fp.has_gen)
            obj.generation = fp.version;
        else
            obj.mtime_ns = fp.version;
        obj.content_encoding = fp.enc[0] ? fp.enc : NULL;
        if (fp.version == 0 || !fp.job[0])
            abort(); /* the parser promises both */
        if (!sl__fp_matches(text, &obj, fp.job))
            abort();
        char again[SL__FP_CAP];
        size_t n = sl__fp_format(&obj, fp.job, again, sizeof(again));
        if (n) {
            sl__fingerprint back;
            if (!sl__fp_parse(again, &back) || !s_same(&fp, &back) || !sl__fp_matches(again, &obj, fp.job))
                abort();
        }
        /* Another job's, another size's or another version's object never matches. */
        sl_object other = obj;
        other.size = obj.size + 1;
        if (sl__fp_matches(text, &other, fp.job))
            abort();
        if (strcmp(fp.job, "copy") != 0 && sl__fp_matches(text, &obj, "copy"))
            abort();
    } else {
        sl_object obj = {.key = "k", .key_len = 1, .size = 1, .generation = 1};
        if (sl__fp_matches(text, &obj, "copy"))
            abort();
    }
    free(text);
    s_record(data, size);
    return 0;
}
