/* Algorithms fetched once (see digest.h). HMAC goes through OpenSSL's EVP_MAC: a context holding the HMAC-SHA256
 * parameters is made once and duplicated per call, since setting the digest by name on a fresh context is the very
 * lookup this avoids. */
#include "digest.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <pthread.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static EVP_MD *s_sha256, *s_md5;
static EVP_MAC_CTX *s_hmac_template;

static void s_fetch(void) {
    s_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    s_md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac)
        return;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (!ctx)
        return;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_END};
    if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return;
    }
    s_hmac_template = ctx;
}

const EVP_MD *sl__md_sha256(void) {
    pthread_once(&s_once, s_fetch);
    return s_sha256;
}

const EVP_MD *sl__md_md5(void) {
    pthread_once(&s_once, s_fetch);
    return s_md5;
}

EVP_MAC_CTX *sl__hmac_sha256_keyed(const void *key, size_t key_len) {
    pthread_once(&s_once, s_fetch);
    if (!s_hmac_template)
        return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(s_hmac_template);
    if (ctx && EVP_MAC_init(ctx, key, key_len, NULL) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

bool sl__hmac_sha256_with(const EVP_MAC_CTX *keyed, const void *data, size_t len, unsigned char out[32]) {
    if (!keyed)
        return false;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keyed);
    size_t olen = 0;
    bool ok = ctx && EVP_MAC_update(ctx, data, len) == 1 && EVP_MAC_final(ctx, out, &olen, 32) == 1 && olen == 32;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

bool sl__hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, unsigned char out[32]) {
    EVP_MAC_CTX *ctx = sl__hmac_sha256_keyed(key, key_len);
    bool ok = sl__hmac_sha256_with(ctx, data, len, out);
    EVP_MAC_CTX_free(ctx); /* clears the key schedule */
    return ok;
}
