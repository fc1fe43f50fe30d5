/* The example MD5 plugin (md5_plugin.c) with OpenSSL's MD5, the one `--op md5` uses: the same work as the built-in,
 * so that bench/plugin.sh measures what the plugin interface itself costs. Per-thread state is OpenSSL's digest
 * context, made once per worker thread.
 *
 *     cc -O2 -shared -fPIC md5_openssl_plugin.c $(pkg-config --cflags --libs sluice libcrypto) -o libmd5_openssl.so */
#include <sluice/plugin.h>

#include <openssl/evp.h>

#include <stdlib.h>

static int md5_thread_init(const sl_op_config *config, void **out) {
    if (sl_op_config_count(config))
        return sl_op_fail(SL_EINVAL, "md5-openssl plugin: it takes no arguments");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return sl_op_fail(SL_ENOMEM, "md5-openssl plugin: cannot allocate a digest context");
    *out = ctx;
    return 0;
}

static int md5_process(void *state, sl_task *task) {
    EVP_MD_CTX *ctx = state;
    size_t cap;
    unsigned char *buf = sl_task_buffer(task, &cap);
    if (!EVP_DigestInit_ex(ctx, EVP_md5(), NULL))
        return sl_task_fail(task, SL_EINTERNAL, "md5: digest init failed");
    for (;;) {
        int64_t n = sl_task_read(task, buf, cap);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
            return sl_task_fail(task, SL_EINTERNAL, "md5: digest update failed");
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_DigestFinal_ex(ctx, digest, &len))
        return sl_task_fail(task, SL_EINTERNAL, "md5: digest final failed");
    static const char hexdigits[] = "0123456789abcdef";
    char hex[2 * EVP_MAX_MD_SIZE];
    for (unsigned int i = 0; i < len; i++) {
        hex[2 * i] = hexdigits[digest[i] >> 4];
        hex[2 * i + 1] = hexdigits[digest[i] & 0xf];
    }
    return sl_task_result_string(task, "md5", hex, 2 * (size_t)len);
}

static void md5_thread_fini(void *state) {
    EVP_MD_CTX_free(state);
}

SL_PLUGIN_EXPORT const sl_op sluice_plugin = {
    .abi_version = SL_OP_ABI_VERSION,
    .name = "md5-openssl",
    .version = "1",
    .description = "MD5 of each object with OpenSSL: \"md5\":\"<32 hex digits>\" (an example plugin)",
    .thread_init = md5_thread_init,
    .process = md5_process,
    .thread_fini = md5_thread_fini,
};
