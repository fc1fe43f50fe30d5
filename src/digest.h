/* SHA-256, MD5 and HMAC-SHA256 over OpenSSL without a provider lookup per call.
 *
 * OpenSSL 3 looks an algorithm up by name (a locked provider query) every time EVP_sha256() or EVP_md5() is given to
 * EVP_DigestInit_ex, EVP_Digest or HMAC: for a request of a few hundred bytes the lookups cost more than the
 * hashing. These are fetched once per process and shared by every thread (a fetched EVP_MD is read-only). */
#ifndef SL_DIGEST_H
#define SL_DIGEST_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

/* The fetched algorithms; NULL only if OpenSSL cannot provide them (then every caller reports it). */
const EVP_MD *sl__md_sha256(void);
const EVP_MD *sl__md_md5(void);

/* HMAC-SHA256 of data under key into out; false if OpenSSL failed. */
bool sl__hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, unsigned char out[32]);

/* A key used for many messages: its two padded blocks hashed once, then each message signed from copies of those
 * states. NULL if OpenSSL failed. One thread at a time (sign uses the key's own work context); freed with
 * sl__hmac_key_free (NULL ok), which clears it. */
typedef struct sl__hmac_key sl__hmac_key;
sl__hmac_key *sl__hmac_key_new(const void *key, size_t key_len);
bool sl__hmac_key_sign(sl__hmac_key *k, const void *data, size_t len, unsigned char out[32]);
void sl__hmac_key_free(sl__hmac_key *k);

#endif
