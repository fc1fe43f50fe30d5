/* Algorithms fetched once (see digest.h). HMAC-SHA256 is RFC 2104's construction over the fetched SHA-256: a key's
 * two padded blocks are hashed once into an inner and an outer context, and each message continues copies of them
 * (two small copies, against the half-dozen contexts OpenSSL's EVP_MAC duplicates per message). */
#include "digest.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static EVP_MD *s_sha256, *s_md5;

static void s_fetch(void) {
    s_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    s_md5 = EVP_MD_fetch(NULL, "MD5", NULL);
}

const EVP_MD *sl__md_sha256(void) {
    pthread_once(&s_once, s_fetch);
    return s_sha256;
}

const EVP_MD *sl__md_md5(void) {
    pthread_once(&s_once, s_fetch);
    return s_md5;
}

struct sl__hmac_key {
    EVP_MD_CTX *inner, *outer; /* SHA-256 after the key XOR ipad, and after the key XOR opad */
    EVP_MD_CTX *work;
};

void sl__hmac_key_free(sl__hmac_key *k) {
    if (!k)
        return;
    EVP_MD_CTX_free(k->inner); /* OpenSSL clears a digest context's state as it frees it */
    EVP_MD_CTX_free(k->outer);
    EVP_MD_CTX_free(k->work);
    free(k);
}

sl__hmac_key *sl__hmac_key_new(const void *key, size_t key_len) {
    const EVP_MD *md = sl__md_sha256();
    sl__hmac_key *k = md ? calloc(1, sizeof(*k)) : NULL;
    if (!k)
        return NULL;
    unsigned char block[64] = {0}, pad[64];
    unsigned int len = 0;
    bool ok = (k->inner = EVP_MD_CTX_new()) && (k->outer = EVP_MD_CTX_new()) && (k->work = EVP_MD_CTX_new());
    if (ok && key_len > sizeof(block)) /* a key longer than a block is hashed first */
        ok = EVP_Digest(key, key_len, block, &len, md, NULL) == 1;
    else if (ok && key_len)
        memcpy(block, key, key_len);
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex2(k->inner, md, NULL) == 1 && EVP_DigestUpdate(k->inner, pad, 64) == 1;
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex2(k->outer, md, NULL) == 1 && EVP_DigestUpdate(k->outer, pad, 64) == 1;
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    if (!ok) {
        sl__hmac_key_free(k);
        return NULL;
    }
    return k;
}

bool sl__hmac_key_sign(sl__hmac_key *k, const void *data, size_t len, unsigned char out[32]) {
    unsigned char inner[32];
    unsigned int n1 = 0, n2 = 0;
    bool ok = k && EVP_MD_CTX_copy_ex(k->work, k->inner) == 1 && EVP_DigestUpdate(k->work, data, len) == 1 &&
              EVP_DigestFinal_ex(k->work, inner, &n1) == 1 && n1 == 32 && EVP_MD_CTX_copy_ex(k->work, k->outer) == 1 &&
              EVP_DigestUpdate(k->work, inner, 32) == 1 && EVP_DigestFinal_ex(k->work, out, &n2) == 1 && n2 == 32;
    OPENSSL_cleanse(inner, sizeof(inner));
    return ok;
}

bool sl__hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, unsigned char out[32]) {
    sl__hmac_key *k = sl__hmac_key_new(key, key_len);
    bool ok = sl__hmac_key_sign(k, data, len, out);
    sl__hmac_key_free(k);
    return ok;
}
