/* libFuzzer target: what the AWS credential chain parses (auth_aws.h): the shared INI files, a credential_process's
 * or container/IMDS JSON, STS's XML answer, credential_process command lines, ISO 8601 times; and the SigV4 query
 * string and signer (sigv4.h) on names and values made of the same bytes. The first input byte picks the parser, the
 * rest is the text (INI and XML are given as bytes with their length, not NUL-terminated). Checked: results stay
 * within their caps and NUL-terminated, parsed credentials are printable ASCII, a split command's words lie in the
 * buffer, and the encoded query string holds only unreserved characters, '%XX', '=' and '&'. */
#include "auth_aws.h"
#include "sigv4.h"

#include "sluice/sluice.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_creds(const sl__aws_credentials *c) {
    const char *f[] = {c->access_key_id, c->secret_access_key, c->session_token};
    size_t caps[] = {sizeof(c->access_key_id), sizeof(c->secret_access_key), sizeof(c->session_token)};
    for (int i = 0; i < 3; i++) {
        size_t n = strnlen(f[i], caps[i]);
        if (n == caps[i])
            abort();
        for (size_t j = 0; j < n; j++)
            if ((unsigned char)f[i][j] <= 0x20 || (unsigned char)f[i][j] >= 0x7f)
                abort();
    }
    if (!c->access_key_id[0] || !c->secret_access_key[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    unsigned which = data[0] % 6;
    size_t len = size - 1;
    char *text = malloc(len + 1);
    if (!text)
        return 0;
    memcpy(text, data + 1, len);
    text[len] = '\0';
    static sl__aws_credentials c;
    char out[64], why[300], code[64];
    if (which == 0) {
        bool found;
        const char *sections[] = {"default", "profile dev", "dev"};
        const char *keys[] = {"aws_access_key_id", "region", "credential_process"};
        for (int i = 0; i < 3; i++) {
            int rc = sl__aws_ini_get(text, len, sections[i], keys[i], out, sizeof(out), &found);
            if (rc == 1 && (strnlen(out, sizeof(out)) == sizeof(out) || !found))
                abort();
            if (rc != 1 && rc != 0 && rc != SL_ETOOBIG)
                abort();
        }
    } else if (which == 1 || which == 2) {
        int rc = sl__aws_parse_credentials_json(text, len, which == 1 ? 1 : 0, &c, why, sizeof(why));
        if (rc == 0)
            s_check_creds(&c);
        else if (rc != SL_EINVAL || strnlen(why, sizeof(why)) == sizeof(why))
            abort();
    } else if (which == 3) {
        int rc = sl__aws_parse_sts_xml(text, len, &c, code, sizeof(code), why, sizeof(why));
        if (rc == 0)
            s_check_creds(&c);
        else if (rc != SL_EINVAL && rc != SL_EACCES && rc != SL_ENOMEM)
            abort();
    } else if (which == 4) {
        char buf[256];
        char *argv[9];
        int n = sl__aws_split_command(text, buf, sizeof(buf), argv, 9);
        for (int i = 0; i < n; i++)
            if (argv[i] < buf || argv[i] >= buf + sizeof(buf))
                abort();
        if (n > 0 && argv[n] != NULL)
            abort();
        int64_t t;
        (void)sl__aws_parse_time(text, &t);
    } else {
        /* Query parameters and a header value from the text: split at the first two NULs or newlines. */
        char *parts[4] = {text, "", "", ""};
        int k = 1;
        for (size_t i = 0; i < len && k < 4; i++)
            if (text[i] == '\n') {
                text[i] = '\0';
                parts[k++] = text + i + 1;
            }
        sl__sigv4_param q[] = {{parts[0], parts[1]}, {parts[1], NULL}, {parts[0], parts[0]}};
        char qs[SL__SIGV4_QUERY_CAP];
        int n = sl__sigv4_query_string(q, 3, qs, sizeof(qs));
        if (n >= 0) {
            if ((size_t)n != strlen(qs))
                abort();
            for (int i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)qs[i];
                if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                      strchr("-._~%=&", ch)))
                    abort();
            }
        }
        sl__sigv4_param h[] = {{"host", "h.example"}, {"x-amz-meta-f", parts[2]}};
        sl__sigv4_request rq = {.method = "GET",
                                .path = parts[3][0] == '/' ? parts[3] : "/",
                                .query = q,
                                .query_count = 3,
                                .headers = h,
                                .header_count = 2,
                                .time_s = 1369353600,
                                .region = "us-east-1",
                                .service = "s3"};
        sl__sigv4_credentials cr = {"AKID", "secret", NULL};
        char auth[1024];
        if (sl__sigv4_sign(NULL, &rq, &cr, auth, sizeof(auth), NULL) == 0 &&
            strnlen(auth, sizeof(auth)) == sizeof(auth))
            abort();
    }
    free(text);
    return 0;
}
