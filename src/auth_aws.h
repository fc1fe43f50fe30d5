/* AWS credentials: find them, fetch and refresh them, share one cache per process; and the region.
 *
 * Sources, in the order of the AWS SDKs' default chain (botocore's, which the AWS CLI uses; web identity from the
 * environment comes before the shared files there, and so here):
 *   1. anonymous (--no-sign-request): requests go unsigned;
 *   2. the environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); one without the other is an
 *      error, not a fall-through;
 *   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME): STS
 *      AssumeRoleWithWebIdentity (EKS IRSA), the token file read again for each fetch; STS at AWS_ENDPOINT_URL_STS,
 *      else AWS_ENDPOINT_URL, else https://sts.<region>.amazonaws.com. The answer is STS's XML, parsed with expat;
 *   4. the profile (--profile, else AWS_PROFILE, else "default"), in botocore's order: its web_identity_token_file +
 *      role_arn (+ role_session_name) in the config file (as 3); its section in the shared credentials file
 *      (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials: [NAME]) with aws_access_key_id,
 *      aws_secret_access_key (+ aws_session_token); its credential_process in the config file (AWS_CONFIG_FILE,
 *      default ~/.aws/config: [profile NAME], or [default] for "default"); the same three keys in the config file.
 *      A profile named explicitly that is in neither file, or has none of these, is an error; role_arn with
 *      source_profile or credential_source (role chaining), and sso_* profiles, are refused with a message saying so.
 *      A profile given with --profile skips 2 and 3, as the AWS CLI's --profile does (AWS_PROFILE does not);
 *   5. container credentials (ECS, EKS Pod Identity): AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on
 *      http://169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback address or to
 *      169.254.170.2 / 169.254.170.23 / [fd00:ec2::23], as the SDKs restrict it), with the Authorization header from
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read again for each fetch) or AWS_CONTAINER_AUTHORIZATION_TOKEN;
 *   6. the EC2 instance metadata service, IMDSv2 only (PUT a session token, GET the role name, GET its credentials)
 *      at AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254), with 1-second connect timeouts so a
 *      machine without it fails fast; skipped when AWS_EC2_METADATA_DISABLED=true. When it cannot be reached and
 *      nothing else was configured, the first sl__aws_auth_get fails with one line listing what was tried and what to
 *      set.
 *
 * credential_process: the command line is split as the AWS CLI splits it (POSIX shell words: blanks separate, '...'
 * and "..." quote, backslash escapes; no variables, globs, pipes or redirections: no shell runs) and the program is
 * run with stdin from /dev/null, its stdout read (64 KiB at most) as the JSON of Version 1 (AccessKeyId,
 * SecretAccessKey, SessionToken, Expiration), its stderr quoted (filtered for secrets) when it fails. It is killed
 * after 60 s. No Expiration: the credentials never expire (until rejected).
 *
 * Region (sl__aws_auth_region): AWS_REGION, else AWS_DEFAULT_REGION, else the profile's `region` in the config file,
 * else us-east-1. Endpoint (sl__aws_auth_endpoint_url): the profile's `endpoint_url`, or "" (the store reads
 * AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / --endpoint first, as the AWS CLI does).
 *
 * Thread-safe: one sl__aws_auth serves every worker thread. Credentials that expire are fetched under one lock by
 * whichever thread needs them first and reused by all until shortly before they expire (a quarter of their lifetime,
 * at most 10 minutes, before): one fetch per lifetime, not per object. Secrets (secret keys, session tokens, web
 * identity and container tokens) live only in buffers wiped before they are freed and never appear in messages.
 *
 * How the store uses it: sl__aws_auth_new once per store (sources that fetch are shared by every store of the process
 * that picks the same one); per request, sl__aws_auth_get into the client's sl__aws_credentials, then sign with
 * sigv4.h (nothing to sign when anonymous); after a 400/403 answer whose code is ExpiredToken (or
 * InvalidToken, RequestExpired), sl__aws_auth_invalidate with the serial used, then retry once. */
#ifndef SLUICE_AUTH_AWS_H
#define SLUICE_AUTH_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl__aws_auth sl__aws_auth;

#define SL__AWS_KEY_ID_CAP 129
#define SL__AWS_SECRET_CAP 129
/* STS does not bound session tokens; those seen are 400 to 2,000 bytes. A longer one fails with a message. */
#define SL__AWS_TOKEN_CAP 8192

/* One set of credentials, copied out for one thread's use. */
typedef struct sl__aws_credentials {
    char access_key_id[SL__AWS_KEY_ID_CAP];     /* "" when anonymous: send the request unsigned */
    char secret_access_key[SL__AWS_SECRET_CAP]; /* secret */
    char session_token[SL__AWS_TOKEN_CAP];      /* "" for long-term keys; secret */
    int64_t expires_s;                          /* Unix seconds; 0 = does not expire */
    unsigned long serial;                       /* which fetch these came from, for sl__aws_auth_invalidate */
} sl__aws_credentials;

typedef struct sl__aws_auth_options {
    bool anonymous;      /* --no-sign-request */
    const char *profile; /* --profile, or NULL: AWS_PROFILE, else "default" */
} sl__aws_auth_options;

/* Picks the source (environment and files only; no network, no process yet) and resolves the region. Fails with
 * SL_EINVAL / SL_ENOENT / SL_EACCES and a one-line message naming the file, profile or variable at fault: half of a
 * key pair in the environment, a named profile found nowhere, a profile whose keys are incomplete or of a kind not
 * supported, a bad container URI, no source at all while AWS_EC2_METADATA_DISABLED=true. opts may be NULL. */
int sl__aws_auth_new(const sl__aws_auth_options *opts, sl__aws_auth **out);
/* NULL ok. Shared instances are freed by the last destroy. */
void sl__aws_auth_destroy(sl__aws_auth *auth);

/* Copies the current credentials into *out, fetching or refreshing them first if needed (under the lock; other
 * threads wait for that fetch rather than starting their own, and a fetch that just failed is reported to the threads
 * that waited for it rather than repeated by each). Anonymous: 0 with an empty access_key_id. Returns 0, or <0 with
 * sl_last_error() naming the source and what to do. *out is wiped on failure. */
int sl__aws_auth_get(sl__aws_auth *auth, sl__aws_credentials *out);
/* After an answer saying the credentials with this serial expired or are invalid (ExpiredToken, InvalidToken,
 * RequestExpired ...): drops them, so the next sl__aws_auth_get fetches new ones (a credentials file or a
 * credential_process is read or run again; environment credentials cannot change: the next get fails saying so).
 * Nothing happens if another thread already replaced them. */
void sl__aws_auth_invalidate(sl__aws_auth *auth, unsigned long serial);
/* True when the last fetch got no HTTP answer at all from an endpoint that answered before (STS, the container
 * endpoint, IMDS): an outage a job judges as a whole (like sl__http_health). Any thread. */
bool sl__aws_auth_unreachable(sl__aws_auth *auth);
/* True for --no-sign-request. */
bool sl__aws_auth_anonymous(const sl__aws_auth *auth);
/* For messages, never with secrets: e.g. "profile 'dev' in /home/u/.aws/credentials (AWS_PROFILE)",
 * "environment (AWS_ACCESS_KEY_ID)", "web identity (AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/..., role arn:...)". */
const char *sl__aws_auth_source(const sl__aws_auth *auth);
/* The region (see above) and where it came from ("AWS_REGION", "profile 'dev' in ~/.aws/config", "default"). */
const char *sl__aws_auth_region(const sl__aws_auth *auth);
const char *sl__aws_auth_region_source(const sl__aws_auth *auth);
/* The profile's endpoint_url, or "". */
const char *sl__aws_auth_endpoint_url(const sl__aws_auth *auth);
/* The secret filter every message quoting a server's (or a credential_process's) words goes through: true when text
 * quotes a secret this process holds or held (the secret key or session token in use or rejected, a web identity or
 * container token; all of it, or 16 bytes in a row of a long one), or looks like a credential anyway
 * ("SecretAccessKey", "aws_secret_access_key", "X-Amz-Security-Token", "Bearer" followed by a value). auth NULL: only
 * the last test. Thread-safe. */
bool sl__aws_auth_mentions_secret(sl__aws_auth *auth, const char *text);
/* Fetches that succeeded so far (for tests and the report). */
unsigned long sl__aws_auth_fetches(const sl__aws_auth *auth);

/* ---- the parsers, for tests and fuzzing ------------------------------------------------------------------------- */

/* Looks up key in [section] of an INI text (the AWS shared files: '#' and ';' start comment lines, keys are
 * case-insensitive, values trimmed, indented lines continue the key above and are skipped, a section given twice is
 * read as one). section is the text between the brackets, spaces around it trimmed. Returns 1 with the value in out,
 * 0 when absent, SL_ETOOBIG when the value does not fit cap. *section_found (NULL ok) tells if the section exists. */
int sl__aws_ini_get(const char *text, size_t len, const char *section, const char *key, char *out, size_t cap,
                    bool *section_found);
/* Parses "2019-11-09T13:34:41Z" (fractions of a second and a +hh:mm / -hh:mm offset allowed) into Unix seconds.
 * Returns 0 or SL_EINVAL. */
int sl__aws_parse_time(const char *text, int64_t *out);
/* Parses the JSON a credential_process prints (Version 1), or container / IMDS credentials (version 0: no Version
 * field; "Token" for "SessionToken"; IMDS's "Code" must be "Success" when present). Returns 0, or SL_EINVAL with
 * why (one line, no secrets) written into why. out->serial untouched. */
int sl__aws_parse_credentials_json(const char *text, size_t len, int version, sl__aws_credentials *out, char *why,
                                   size_t why_cap);
/* Parses STS's AssumeRoleWithWebIdentity answer (XML). A success fills *out and returns 0; an ErrorResponse returns
 * SL_EACCES with its Code and Message in code / message ("" if absent); anything else SL_EINVAL with why in
 * message. */
int sl__aws_parse_sts_xml(const char *text, size_t len, sl__aws_credentials *out, char *code, size_t code_cap,
                          char *message, size_t message_cap);
/* Splits a credential_process command line into argv (see above), the words written into buf. Returns the number of
 * words (argv[n] = NULL), or SL_EINVAL (an unterminated quote, no word at all) / SL_ETOOBIG (cap, max_args). */
int sl__aws_split_command(const char *line, char *buf, size_t cap, char **argv, size_t max_args);

#endif
