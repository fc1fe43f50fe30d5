/* libFuzzer target: sl_url_parse on any text (up to the first NUL). Besides not crashing, the contract of
 * include/sluice/store.h is checked: a failure zeroes the output and explains itself in one printable line; a success
 * has a bucket exactly for gs:// and s3://, and a file path that is absolute and normalised. */
#include "sluice/store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_file_path(const char *p) {
    size_t n = strlen(p);
    if (p[0] != '/')
        abort();
    if (n > 1 && p[n - 1] == '/')
        abort();
    if (strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../"))
        abort();
    if ((n >= 2 && strcmp(p + n - 2, "/.") == 0) || (n >= 3 && strcmp(p + n - 3, "/..") == 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sl_url u;
    memset(&u, 0x5a, sizeof(u));
    int rc = sl_url_parse(text, &u);
    if (rc != 0) {
        if (rc >= 0 || u.bucket || u.path || u.scheme || u.trailing_slash)
            abort();
        const char *msg = sl_last_error();
        if (!*msg)
            abort();
        for (const unsigned char *m = (const unsigned char *)msg; *m; m++)
            if (*m < 0x20 || *m == 0x7f)
                abort(); /* the user's text is escaped: one line, no terminal control bytes */
    } else {
        if (!u.path)
            abort();
        switch (u.scheme) {
        case SL_SCHEME_GS:
        case SL_SCHEME_S3:
            if (!u.bucket || !*u.bucket || strchr(u.bucket, '/'))
                abort();
            break;
        case SL_SCHEME_FILE:
            if (u.bucket)
                abort();
            s_check_file_path(u.path);
            break;
        default:
            abort();
        }
        sl_url_free(&u);
        if (u.bucket || u.path)
            abort();
    }
    free(text);
    return 0;
}
