/* Google Cloud credentials: find them, fetch access tokens, share one token cache per process.
 *
 * Sources, in the order Google's own client libraries use:
 *   1. anonymous (an emulator endpoint: STORAGE_EMULATOR_HOST / CLOUD_STORAGE_EMULATOR_ENDPOINT, or asked for);
 *   2. an access token from a file (--token-file) or the GOOGLE_OAUTH_ACCESS_TOKEN environment variable;
 *   3. GOOGLE_APPLICATION_CREDENTIALS naming a JSON file of type "service_account" (an RS256 JWT signed with the
 *      key, exchanged at its token_uri) or "authorized_user" (refresh-token grant at its token_uri, default
 *      https://oauth2.googleapis.com/token);
 *   4. gcloud's application default credentials file ($CLOUDSDK_CONFIG or ~/.config/gcloud,
 *      application_default_credentials.json), same two types;
 *   5. the metadata server (GCE, GKE Workload Identity) at GCE_METADATA_HOST (default metadata.google.internal).
 *
 * Thread-safe: one sl__gcs_auth serves every worker thread. Tokens are fetched under a lock by whichever thread
 * needs one first and reused by all until shortly before they expire: one fetch per token lifetime, not per object.
 * Tokens, refresh tokens and keys never appear in messages. */
#ifndef SLUICE_AUTH_GCS_H
#define SLUICE_AUTH_GCS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sl__gcs_auth sl__gcs_auth;

typedef struct sl__gcs_auth_options {
    bool anonymous;         /* use no credentials at all (--anonymous) */
    bool emulator;          /* the storage endpoint is the one an emulator variable names: anonymous, said so */
    const char *token_file; /* file holding an access token (whitespace trimmed), or NULL */
    /* The storage endpoint given explicitly (--endpoint), or NULL. For messages only: anonymous access chosen because
     * an emulator variable is set then names this endpoint, where the requests go, not the variable's. */
    const char *endpoint;
} sl__gcs_auth_options;

/* Picks the credential source (reads environment and files; no network yet). Fails with SL_EINVAL/SL_ENOENT/
 * SL_EACCES and a one-line message when a named file is missing, unreadable, not JSON or of an unknown type (the
 * message names the file and the variable that pointed to it). When no source is configured at all, the metadata
 * server is chosen; if it cannot be reached, the first token request fails with a message listing what was tried
 * and what to set. */
int sl__gcs_auth_new(const sl__gcs_auth_options *opts, sl__gcs_auth **out);
/* NULL ok. A source that fetches tokens (service account, authorized_user, metadata server) chosen again while an
 * earlier instance for it is still alive is that same instance, token cache included: one token per process however
 * many stores use it; each sl__gcs_auth_new is paired with one destroy, and the last one frees it. */
void sl__gcs_auth_destroy(sl__gcs_auth *auth);

/* Writes the header to send, "Authorization: Bearer <token>", into buf (cap bytes), or "" for anonymous access.
 * Fetches or refreshes the token first if needed (under the lock; other threads wait for that fetch rather than
 * starting their own). Returns 0, or <0 with sl_last_error() naming the source and what to do. */
int sl__gcs_auth_header(sl__gcs_auth *auth, char *buf, size_t cap);
/* True when the last token request got no HTTP answer at all (refused, reset, timed out) from an endpoint that issued a
 * token before: an outage of the token endpoint or metadata server, which a job judges like one of the storage
 * endpoint (sl__http_health), rather than a failure of each object. Any thread. */
bool sl__gcs_auth_unreachable(sl__gcs_auth *auth);
/* After a 401 with the header `header_used`: drop that token so the next sl__gcs_auth_header fetches a new one
 * (if another thread already refreshed it, nothing happens). */
void sl__gcs_auth_invalidate(sl__gcs_auth *auth, const char *header_used);
/* A description of the source for messages, e.g. "service account key /path/key.json (GOOGLE_APPLICATION_CREDENTIALS)".
 * Never contains secrets. */
const char *sl__gcs_auth_source(const sl__gcs_auth *auth);
/* The secret filter every message that quotes a server's answer goes through: true when `text` must not be shown
 * because it quotes a secret this process holds (the access token in use or one rejected, a refresh token, a client
 * secret; all of it or a 16-byte run of a long one) or any bearer credential ("Bearer" and a token). auth NULL: only
 * the last test. Thread-safe (waits for a token fetch in progress). */
bool sl__gcs_auth_mentions_secret(sl__gcs_auth *auth, const char *text);
/* Tokens fetched so far (for tests and the report). */
unsigned long sl__gcs_auth_fetches(const sl__gcs_auth *auth);

#endif
