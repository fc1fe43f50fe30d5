/* Google Cloud credentials against the real test server (tests/gcs/gcs_server.py) on 127.0.0.1: service account
 * keys (a fresh RSA key pair per run; the server checks the JWT signature with the public half), authorized_user
 * refresh tokens, the metadata server, static tokens, anonymous access, the shared token cache under threads, and
 * every broken input we can think of, checking that messages are clear and never quote a secret.
 *
 * Only 127.0.0.1 is ever contacted: every test starts from reset_env(), which points GCE_METADATA_HOST at a closed
 * loopback port and gcloud's configuration at an empty directory, and every credentials file names a loopback
 * token_uri. */
#include "auth_gcs.h"
#include "gcs_fixture.h"
#include "test.h"

#include "sluice/sluice.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define HDR_CAP 8192
#define BEARER "Authorization: Bearer "

#define REFRESH_TOKEN "1//refresh-SECRET-r3fr3sh-t0k3n"
#define CLIENT_SECRET "client-SECRET-s3cr3t"
#define ENV_TOKEN "ya29.env-SECRET-t0k3n"
#define FILE_TOKEN "ya29.file-SECRET-t0k3n"

static char s_tmp[256];          /* this run's scratch directory */
static char s_empty_config[320]; /* CLOUDSDK_CONFIG for every test: no application_default_credentials.json */
static char s_home[320];         /* HOME for every test: empty */
static char s_pub_path[320];     /* public half of s_key_pem, for the server's --jwt-public-key */
static char *s_key_pem;          /* the service account's private key (PKCS#8 PEM) */
static char *s_other_key_pem;    /* a key the server does not know */
static char s_key_line[80];      /* one line from the middle of s_key_pem: must never show up in a message */

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

static void write_file(const char *path, const char *data) {
    FILE *f = fopen(path, "w");
    if (!f)
        TEST_FAIL_("cannot write %s", path);
    fputs(data, f);
    fclose(f);
}

static void path_in_tmp(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", s_tmp, name);
}

/* Everything that could steer credential discovery, back to a known state that can only reach 127.0.0.1. */
static void reset_env(void) {
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    unsetenv("GOOGLE_OAUTH_ACCESS_TOKEN");
    unsetenv("STORAGE_EMULATOR_HOST");
    unsetenv("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    setenv("CLOUDSDK_CONFIG", s_empty_config, 1);
    setenv("HOME", s_home, 1);
    setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
}

/* No secret this file knows may appear in msg. */
static void assert_no_secret(const char *msg, const char *extra_secret) {
    ASSERT_TRUE(strstr(msg, s_key_line) == NULL);
    ASSERT_TRUE(strstr(msg, "PRIVATE KEY") == NULL);
    ASSERT_TRUE(strstr(msg, REFRESH_TOKEN) == NULL);
    ASSERT_TRUE(strstr(msg, CLIENT_SECRET) == NULL);
    ASSERT_TRUE(strstr(msg, ENV_TOKEN) == NULL);
    ASSERT_TRUE(strstr(msg, FILE_TOKEN) == NULL);
    if (extra_secret && *extra_secret)
        ASSERT_TRUE(strstr(msg, extra_secret) == NULL);
}

#define ASSERT_CONTAINS(hay, needle)                                                                                   \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        const char *h_ = (hay), *n_ = (needle);                                                                        \
        if (!strstr(h_, n_))                                                                                           \
            TEST_FAIL_("expected \"%s\" in \"%s\"", n_, h_);                                                           \
    } while (0)

static char *pem_of(EVP_PKEY *k, bool private_key) {
    BIO *bio = BIO_new(BIO_s_mem());
    int ok = private_key ? PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_PUBKEY(bio, k);
    ASSERT_TRUE(ok == 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(bio);
    return s;
}

static void make_keys(void) {
    EVP_PKEY *k = EVP_RSA_gen(2048);
    EVP_PKEY *other = EVP_RSA_gen(2048);
    ASSERT_TRUE(k && other);
    s_key_pem = pem_of(k, true);
    s_other_key_pem = pem_of(other, true);
    char *pub = pem_of(k, false);
    path_in_tmp(s_pub_path, sizeof(s_pub_path), "sa_pub.pem");
    write_file(s_pub_path, pub);
    free(pub);
    /* Line 5 of the PEM: 64 base64 characters of key material. */
    const char *p = s_key_pem;
    for (int i = 0; i < 4; i++)
        p = strchr(p, '\n') + 1;
    snprintf(s_key_line, sizeof(s_key_line), "%.64s", p);
    ASSERT_UINT_EQ(strlen(s_key_line), 64);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void write_json(const char *path, json_t *j) {
    ASSERT_INT_EQ(json_dump_file(j, path, JSON_INDENT(2)), 0);
    json_decref(j);
}

/* A service account key file whose token_uri is the test server's. */
static void write_sa_key(const char *path, const gcs_server *srv, const char *pem) {
    char uri[160];
    snprintf(uri, sizeof(uri), "%s/token", srv->base_url);
    write_json(path, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account", "project_id",
                               "test-project", "private_key_id", "kid-0123456789", "private_key", pem, "client_email",
                               "sluice-test@test-project.iam.gserviceaccount.com", "client_id", "1234567890",
                               "token_uri", uri));
}

static void write_user_creds(const char *path, const gcs_server *srv, const char *refresh_token) {
    char uri[160];
    snprintf(uri, sizeof(uri), "%s/token", srv->base_url);
    write_json(path, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "authorized_user", "client_id",
                               "123-abc.apps.googleusercontent.com", "client_secret", CLIENT_SECRET, "refresh_token",
                               refresh_token, "token_uri", uri));
}

static void start_server(gcs_server *srv, const char *const *args) {
    if (gcs_server_start(srv, args) != 0)
        TEST_FAIL_("cannot start the GCS test server");
}

static void use_metadata_of(const gcs_server *srv) {
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", srv->port);
    setenv("GCE_METADATA_HOST", host, 1);
}

/* header() must succeed with a bearer token; returns the header (static buffer per call site is the caller's). */
static void get_header(sl__gcs_auth *auth, char *buf) {
    int rc = sl__gcs_auth_header(auth, buf, HDR_CAP);
    if (rc != 0)
        TEST_FAIL_("sl__gcs_auth_header: %d: %s", rc, sl_last_error());
    ASSERT_TRUE(strncmp(buf, BEARER, strlen(BEARER)) == 0);
    ASSERT_TRUE(strlen(buf) > strlen(BEARER));
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- sources that need no server -------------------------------------------------------------------------------- */

static void test_anonymous(void) {
    reset_env();
    sl__gcs_auth *auth = NULL;
    char buf[HDR_CAP] = "x";
    sl__gcs_auth_options opts = {.anonymous = true};
    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", ENV_TOKEN, 1); /* ignored when anonymous access is asked for */
    ASSERT_INT_EQ(sl__gcs_auth_new(&opts, &auth), 0);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "");
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), "anonymous");
    sl__gcs_auth_invalidate(auth, "");
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "");
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 0);
    sl__gcs_auth_destroy(auth);

    /* An emulator endpoint means anonymous access, unless a token file is given explicitly. */
    unsetenv("GOOGLE_OAUTH_ACCESS_TOKEN");
    setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9", 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    strcpy(buf, "x");
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "");
    ASSERT_STR_EQ(sl__gcs_auth_source(auth), "anonymous access (STORAGE_EMULATOR_HOST=http://127.0.0.1:9)");
    sl__gcs_auth_destroy(auth);
    /* Requests sent to another endpoint (--endpoint) are still anonymous, and the description names where they go. */
    opts = (sl__gcs_auth_options){.endpoint = "http://127.0.0.1:7"};
    ASSERT_INT_EQ(sl__gcs_auth_new(&opts, &auth), 0);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "");
    ASSERT_STR_EQ(
        sl__gcs_auth_source(auth),
        "anonymous access to http://127.0.0.1:7 (--endpoint; no credentials, as STORAGE_EMULATOR_HOST is set)");
    sl__gcs_auth_destroy(auth);
    /* The store's endpoint is the variable's: anonymous, whatever else is configured, and said so. */
    opts = (sl__gcs_auth_options){.emulator = true, .token_file = "/nonexistent/token"};
    ASSERT_INT_EQ(sl__gcs_auth_new(&opts, &auth), 0);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "");
    ASSERT_STR_EQ(sl__gcs_auth_source(auth), "anonymous access (STORAGE_EMULATOR_HOST=http://127.0.0.1:9)");
    sl__gcs_auth_destroy(auth);
    /* Both variables: the store's endpoint is CLOUD_STORAGE_EMULATOR_ENDPOINT's, and so is the one named. */
    setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", "http://127.0.0.1:8", 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_STR_EQ(sl__gcs_auth_source(auth), "anonymous access (CLOUD_STORAGE_EMULATOR_ENDPOINT=http://127.0.0.1:8)");
    sl__gcs_auth_destroy(auth);
    unsetenv("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    char path[400];
    path_in_tmp(path, sizeof(path), "emu_token");
    write_file(path, FILE_TOKEN "\n");
    opts = (sl__gcs_auth_options){.token_file = path};
    ASSERT_INT_EQ(sl__gcs_auth_new(&opts, &auth), 0);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, BEARER FILE_TOKEN);
    sl__gcs_auth_destroy(auth);

    unsetenv("STORAGE_EMULATOR_HOST");
    setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", "http://127.0.0.1:9", 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    strcpy(buf, "x");
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "");
    sl__gcs_auth_destroy(auth);
    sl__gcs_auth_destroy(NULL);
}

static void test_env_token(void) {
    reset_env();
    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", ENV_TOKEN, 1);
    /* The token wins over a key file (one that does not even exist). */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json", 1);
    sl__gcs_auth *auth = NULL;
    char buf[HDR_CAP];
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), "GOOGLE_OAUTH_ACCESS_TOKEN");
    assert_no_secret(sl__gcs_auth_source(auth), NULL);
    get_header(auth, buf);
    ASSERT_STR_EQ(buf, BEARER ENV_TOKEN);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 0);

    /* Invalidating some other header changes nothing. */
    sl__gcs_auth_invalidate(auth, BEARER "some-older-token");
    get_header(auth, buf);
    ASSERT_STR_EQ(buf, BEARER ENV_TOKEN);

    /* A buffer too small for the header is an error, not a truncated header. */
    char small[16];
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, small, sizeof(small)), SL_ETOOBIG);
    assert_no_secret(sl_last_error(), NULL);

    /* After a 401 the token cannot be refreshed: a clear failure, every time, naming the source. */
    sl__gcs_auth_invalidate(auth, buf);
    for (int i = 0; i < 2; i++) {
        ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), SL_EACCES);
        ASSERT_STR_EQ(sl_last_error(), "the access token from GOOGLE_OAUTH_ACCESS_TOKEN was rejected (401): it may "
                                       "have expired; provide a fresh one");
        assert_no_secret(sl_last_error(), NULL);
    }
    sl__gcs_auth_destroy(auth);

    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "two words", 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    ASSERT_TRUE(auth == NULL);
    ASSERT_CONTAINS(sl_last_error(), "GOOGLE_OAUTH_ACCESS_TOKEN");
}

/* The secret filter of server text: the token in use, also a 16-byte run of it, a rejected one, any bearer
 * credential; not ordinary error text. */
static void test_secret_filter(void) {
    const char *token = "ya29.a0-long-SECRET-token-0123456789abcdefghij";
    reset_env();
    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", token, 1);
    sl__gcs_auth *auth = NULL;
    char buf[HDR_CAP];
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    get_header(auth, buf);
    char text[512];
    snprintf(text, sizeof(text), "Invalid request; headers: Authorization: Bearer %s; Host: x", token);
    ASSERT_TRUE(sl__gcs_auth_mentions_secret(auth, text));
    snprintf(text, sizeof(text), "echo: token=%.16s (cut)", token + 11); /* 16 bytes of it, without "Bearer" */
    ASSERT_TRUE(sl__gcs_auth_mentions_secret(auth, text));
    snprintf(text, sizeof(text), "echo: token=%.12s (cut)", token + 11); /* 12: too little to tell */
    ASSERT_FALSE(sl__gcs_auth_mentions_secret(auth, text));
    ASSERT_TRUE(sl__gcs_auth_mentions_secret(auth, "proxy said: authorization=bearer abcdefgh12345"));
    ASSERT_TRUE(sl__gcs_auth_mentions_secret(NULL, "Authorization: Bearer ya29.a0AfH6SMB"));
    ASSERT_FALSE(sl__gcs_auth_mentions_secret(auth, "No such object: b/k"));
    ASSERT_FALSE(sl__gcs_auth_mentions_secret(auth, "Bearer token required"));
    ASSERT_FALSE(sl__gcs_auth_mentions_secret(auth, ""));
    ASSERT_FALSE(sl__gcs_auth_mentions_secret(NULL, NULL));
    /* A token rejected by a 401 is still a secret. */
    sl__gcs_auth_invalidate(auth, buf);
    snprintf(text, sizeof(text), "you sent %s", token);
    ASSERT_TRUE(sl__gcs_auth_mentions_secret(auth, text));
    sl__gcs_auth_destroy(auth);
}

static void test_token_file(void) {
    reset_env();
    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", ENV_TOKEN, 1); /* the explicit file wins */
    char path[400], buf[HDR_CAP];
    path_in_tmp(path, sizeof(path), "token.txt");
    write_file(path, "  " FILE_TOKEN " \n\n");
    sl__gcs_auth_options opts = {.token_file = path};
    sl__gcs_auth *auth = NULL;
    ASSERT_INT_EQ(sl__gcs_auth_new(&opts, &auth), 0);
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), path);
    get_header(auth, buf);
    ASSERT_STR_EQ(buf, BEARER FILE_TOKEN);

    /* Rejected, and the file still holds the same token: a clear failure. */
    sl__gcs_auth_invalidate(auth, buf);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), SL_EACCES);
    ASSERT_CONTAINS(sl_last_error(), "was rejected (401)");
    ASSERT_CONTAINS(sl_last_error(), path);
    ASSERT_TRUE(strncmp(sl_last_error(), "the access token in file ", 25) == 0); /* said once, not twice */
    assert_no_secret(sl_last_error(), NULL);
    /* Whoever rotates the file wrote a new token: it is used. */
    write_file(path, "ya29.rotated-SECRET\n");
    get_header(auth, buf);
    ASSERT_STR_EQ(buf, BEARER "ya29.rotated-SECRET");
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 0);
    sl__gcs_auth_destroy(auth);

    /* Missing, empty, not a token. */
    char missing[400];
    path_in_tmp(missing, sizeof(missing), "no-such-token");
    opts.token_file = missing;
    ASSERT_INT_EQ(sl__gcs_auth_new(&opts, &auth), SL_ENOENT);
    ASSERT_CONTAINS(sl_last_error(), missing);
    ASSERT_CONTAINS(sl_last_error(), "No such file or directory");
    write_file(path, " \n");
    opts.token_file = path;
    ASSERT_INT_EQ(sl__gcs_auth_new(&opts, &auth), SL_EINVAL);
    ASSERT_CONTAINS(sl_last_error(), "empty");
    write_file(path, FILE_TOKEN "\nsecond line\n");
    ASSERT_INT_EQ(sl__gcs_auth_new(&opts, &auth), SL_EINVAL);
    ASSERT_CONTAINS(sl_last_error(), "not an access token");
    assert_no_secret(sl_last_error(), NULL);
    ASSERT_TRUE(auth == NULL);
}

/* Each broken credentials file fails at sl__gcs_auth_new, naming the file and the variable, quoting no secret. */
static void test_broken_credentials(void) {
    reset_env();
    sl__gcs_auth *auth = NULL;
    char path[600], msg[1400];

    path_in_tmp(path, sizeof(path), "missing.json");
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_ENOENT);
    snprintf(msg, sizeof(msg),
             "GOOGLE_APPLICATION_CREDENTIALS=%s: cannot read: No such file or directory (point it at a service "
             "account key or authorized_user file)",
             path);
    ASSERT_STR_EQ(sl_last_error(), msg);
    ASSERT_TRUE(auth == NULL);

    /* Not JSON (with a secret right where a parser would quote it). */
    path_in_tmp(path, sizeof(path), "bad.json");
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    write_file(path, "{\"type\": \"authorized_user\", \"refresh_token\": \"" REFRESH_TOKEN "\" \"client_secret\": \"" CLIENT_SECRET
                     "\"}");
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    snprintf(msg, sizeof(msg), "GOOGLE_APPLICATION_CREDENTIALS=%s: not a JSON credentials file", path);
    ASSERT_CONTAINS(sl_last_error(), msg);
    assert_no_secret(sl_last_error(), NULL);
    write_file(path, "[1, 2]");
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    ASSERT_CONTAINS(sl_last_error(), msg);

    /* Unknown or missing type. */
    write_file(path, "{\"type\": \"foo\", \"refresh_token\": \"" REFRESH_TOKEN "\"}");
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    snprintf(msg, sizeof(msg),
             "GOOGLE_APPLICATION_CREDENTIALS=%s: unknown credentials type 'foo' (expected service_account or "
             "authorized_user)",
             path);
    ASSERT_STR_EQ(sl_last_error(), msg);
    write_file(path, "{\"private_key\": \"x\"}");
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    ASSERT_CONTAINS(sl_last_error(), "expected service_account or authorized_user");

    /* A key that is not PEM, a PEM that is not a key, a non-RSA key, a missing field. */
    const char *bad_keys[] = {"not a key at all " CLIENT_SECRET,
                              "-----BEGIN PRIVATE KEY-----\nAAAA" CLIENT_SECRET "\n-----END PRIVATE KEY-----\n", NULL};
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    char *ec_pem = pem_of(ec, true);
    EVP_PKEY_free(ec);
    for (int i = 0; i < 3; i++) {
        const char *pem = i < 2 ? bad_keys[i] : ec_pem;
        write_json(path, json_pack("{s:s, s:s, s:s, s:s}", "type", "service_account", "private_key", pem,
                                   "client_email", "sa@p.iam.gserviceaccount.com", "token_uri",
                                   "http://127.0.0.1:1/token"));
        ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
        snprintf(msg, sizeof(msg), "GOOGLE_APPLICATION_CREDENTIALS=%s: private_key is not a PEM-encoded RSA private key",
                 path);
        ASSERT_CONTAINS(sl_last_error(), msg);
        assert_no_secret(sl_last_error(), NULL);
        ASSERT_TRUE(strstr(sl_last_error(), "AAAA") == NULL);
    }
    free(ec_pem);
    write_json(path, json_pack("{s:s, s:s, s:s}", "type", "service_account", "private_key", s_key_pem, "token_uri",
                               "http://127.0.0.1:1/token"));
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    ASSERT_CONTAINS(sl_last_error(), "lacks \"client_email\"");
    assert_no_secret(sl_last_error(), NULL);
    write_json(path, json_pack("{s:s, s:s, s:s}", "type", "authorized_user", "client_id", "id", "client_secret",
                               CLIENT_SECRET));
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    ASSERT_CONTAINS(sl_last_error(), "lacks \"refresh_token\"");
    assert_no_secret(sl_last_error(), NULL);
    write_json(path, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "authorized_user", "client_id", "id",
                               "client_secret", CLIENT_SECRET, "refresh_token", REFRESH_TOKEN, "token_uri",
                               "file:///etc/passwd"));
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    ASSERT_CONTAINS(sl_last_error(), "token_uri");

    /* A directory. */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", s_tmp, 1);
    ASSERT_TRUE(sl__gcs_auth_new(NULL, &auth) < 0);
    ASSERT_CONTAINS(sl_last_error(), "GOOGLE_APPLICATION_CREDENTIALS=");
    ASSERT_CONTAINS(sl_last_error(), "cannot read");

    /* gcloud's file, when broken, is named as such. */
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    char dir[400];
    path_in_tmp(dir, sizeof(dir), "gcloud-broken");
    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/application_default_credentials.json", dir);
    write_file(path, "{\"type\": \"external_account\"}");
    setenv("CLOUDSDK_CONFIG", dir, 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    snprintf(msg, sizeof(msg), "%s (gcloud application default credentials): unknown credentials type "
                               "'external_account'", path);
    ASSERT_CONTAINS(sl_last_error(), msg);
    ASSERT_TRUE(auth == NULL);
    unlink(path);
    rmdir(dir);
}

/* ---- service account --------------------------------------------------------------------------------------------- */

static void test_service_account(void) {
    reset_env();
    gcs_server srv;
    const char *args[] = {"--jwt-public-key", s_pub_path, NULL};
    start_server(&srv, args);
    char path[400], buf[HDR_CAP], again[HDR_CAP];
    path_in_tmp(path, sizeof(path), "sa.json");
    write_sa_key(path, &srv, s_key_pem);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);

    sl__gcs_auth *auth = NULL;
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 0);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 0); /* new() does not touch the network */
    const char *src = sl__gcs_auth_source(auth);
    ASSERT_CONTAINS(src, "service account");
    ASSERT_CONTAINS(src, path);
    ASSERT_CONTAINS(src, "GOOGLE_APPLICATION_CREDENTIALS");
    assert_no_secret(src, NULL);

    get_header(auth, buf);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 1);
    for (int i = 0; i < 10; i++) {
        get_header(auth, again);
        ASSERT_STR_EQ(again, buf);
    }
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 1);
    sl__gcs_auth_destroy(auth);

    /* The same key from gcloud's well-known file under $HOME, when nothing else is set. */
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    unsetenv("CLOUDSDK_CONFIG");
    char home[400], dir[500], adc[600];
    path_in_tmp(home, sizeof(home), "home-with-adc");
    snprintf(dir, sizeof(dir), "%s/.config", home);
    mkdir(home, 0700);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/.config/gcloud", home);
    mkdir(dir, 0700);
    snprintf(adc, sizeof(adc), "%s/application_default_credentials.json", dir);
    write_sa_key(adc, &srv, s_key_pem);
    setenv("HOME", home, 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), adc);
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), "gcloud application default credentials");
    get_header(auth, buf);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 2);
    sl__gcs_auth_destroy(auth);
    unlink(adc);
    rmdir(dir);
    snprintf(dir, sizeof(dir), "%s/.config", home);
    rmdir(dir);
    rmdir(home);
    gcs_server_stop(&srv);
}

/* A key the token endpoint does not accept: the server's explanation, the status, the source; no secret. */
static void test_service_account_rejected(void) {
    reset_env();
    gcs_server srv;
    const char *args[] = {"--jwt-public-key", s_pub_path, NULL};
    start_server(&srv, args);
    char path[400], buf[HDR_CAP];
    path_in_tmp(path, sizeof(path), "sa_other.json");
    write_sa_key(path, &srv, s_other_key_pem);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    sl__gcs_auth *auth = NULL;
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    int rc = sl__gcs_auth_header(auth, buf, sizeof(buf));
    ASSERT_TRUE(rc < 0);
    const char *msg = sl_last_error();
    ASSERT_CONTAINS(msg, "HTTP 400");
    ASSERT_CONTAINS(msg, "invalid_grant");
    ASSERT_CONTAINS(msg, path);
    ASSERT_CONTAINS(msg, "/token");
    assert_no_secret(msg, NULL);
    char other_line[80];
    const char *p = s_other_key_pem;
    for (int i = 0; i < 4; i++)
        p = strchr(p, '\n') + 1;
    snprintf(other_line, sizeof(other_line), "%.64s", p);
    ASSERT_TRUE(strstr(msg, other_line) == NULL);
    ASSERT_TRUE(strstr(msg, "eyJ") == NULL); /* no JWT: every JWT starts with base64url("{\"") */
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 0);
    sl__gcs_auth_destroy(auth);
    gcs_server_stop(&srv);
}

/* ---- authorized_user --------------------------------------------------------------------------------------------- */

static void test_authorized_user(void) {
    reset_env();
    gcs_server srv;
    const char *args[] = {"--refresh-token", REFRESH_TOKEN, NULL};
    start_server(&srv, args);
    char path[400], buf[HDR_CAP];
    path_in_tmp(path, sizeof(path), "user.json");
    write_user_creds(path, &srv, REFRESH_TOKEN);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    sl__gcs_auth *auth = NULL;
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), "authorized_user");
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), path);
    assert_no_secret(sl__gcs_auth_source(auth), NULL);
    get_header(auth, buf);
    get_header(auth, buf);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 1);
    sl__gcs_auth_destroy(auth);

    /* From CLOUDSDK_CONFIG's application_default_credentials.json (what `gcloud auth application-default login`
     * writes), and GOOGLE_APPLICATION_CREDENTIALS wins over it. */
    char dir[400], adc[500];
    path_in_tmp(dir, sizeof(dir), "gcloud-user");
    mkdir(dir, 0700);
    snprintf(adc, sizeof(adc), "%s/application_default_credentials.json", dir);
    write_user_creds(adc, &srv, REFRESH_TOKEN);
    setenv("CLOUDSDK_CONFIG", dir, 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), path);
    sl__gcs_auth_destroy(auth);
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), adc);
    get_header(auth, buf);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 2);
    sl__gcs_auth_destroy(auth);
    unlink(adc);
    rmdir(dir);

    /* A revoked refresh token: status, the server's words, what to do; neither secret. */
    reset_env();
    write_user_creds(path, &srv, "1//revoked-SECRET-refresh");
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), SL_EACCES);
    const char *msg = sl_last_error();
    ASSERT_CONTAINS(msg, "HTTP 400");
    ASSERT_CONTAINS(msg, "invalid_grant");
    ASSERT_CONTAINS(msg, path);
    assert_no_secret(msg, "revoked-SECRET");
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 0);
    sl__gcs_auth_destroy(auth);
    gcs_server_stop(&srv);
}

/* ---- metadata server --------------------------------------------------------------------------------------------- */

static void test_metadata(void) {
    reset_env();
    gcs_server srv;
    start_server(&srv, NULL);
    use_metadata_of(&srv);
    sl__gcs_auth *auth = NULL;
    char buf[HDR_CAP], expect[128];
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    snprintf(expect, sizeof(expect), "metadata server at 127.0.0.1:%d", srv.port);
    ASSERT_CONTAINS(sl__gcs_auth_source(auth), expect);
    get_header(auth, buf);
    get_header(auth, buf);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 1);
    /* Gone after it gave a token: an outage, in a message that names the metadata server once. */
    gcs_server_stop(&srv);
    sl__gcs_auth_invalidate(auth, buf);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), SL_EIO);
    ASSERT_TRUE(sl__gcs_auth_unreachable(auth));
    snprintf(expect, sizeof(expect), "metadata server at 127.0.0.1:%d: cannot reach it at http://127.0.0.1:%d/",
             srv.port, srv.port);
    ASSERT_CONTAINS(sl_last_error(), expect);
    sl__gcs_auth_destroy(auth);
}

static void test_metadata_unreachable(void) {
    reset_env();
    sl__gcs_auth *auth = NULL;
    char buf[HDR_CAP], adc[400];
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0); /* no network yet */
    double t0 = now_s();
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), SL_EACCES);
    ASSERT_TRUE(now_s() - t0 < 10);
    snprintf(adc, sizeof(adc), "%s/application_default_credentials.json", s_empty_config);
    const char *msg = sl_last_error();
    ASSERT_CONTAINS(msg, "no Google Cloud credentials found: tried GOOGLE_OAUTH_ACCESS_TOKEN, "
                         "GOOGLE_APPLICATION_CREDENTIALS, ");
    ASSERT_CONTAINS(msg, adc);
    ASSERT_CONTAINS(msg, "and the metadata server at 127.0.0.1:1 (unreachable: ");
    ASSERT_CONTAINS(msg, "); set GOOGLE_APPLICATION_CREDENTIALS to a key file, or use --token-file");
    /* Still failing, and still explaining, on the next call. */
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), SL_EACCES);
    ASSERT_CONTAINS(sl_last_error(), "no Google Cloud credentials found");
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 0);
    sl__gcs_auth_destroy(auth);

    setenv("GCE_METADATA_HOST", "http://127.0.0.1:1/", 1);
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), SL_EINVAL);
    ASSERT_CONTAINS(sl_last_error(), "GCE_METADATA_HOST");
}

/* ---- the shared cache ----------------------------------------------------------------------------------------- */

typedef struct hammer {
    sl__gcs_auth *auth;
    pthread_barrier_t *start;
    int calls;
    const char *invalidate; /* if set: invalidate this header first */
    atomic_int *failures;
    char first[HDR_CAP];
} hammer;

static void *hammer_main(void *arg) {
    hammer *h = arg;
    char buf[HDR_CAP];
    pthread_barrier_wait(h->start);
    if (h->invalidate)
        sl__gcs_auth_invalidate(h->auth, h->invalidate);
    for (int i = 0; i < h->calls; i++) {
        if (sl__gcs_auth_header(h->auth, buf, sizeof(buf)) != 0 || strncmp(buf, BEARER, strlen(BEARER)) != 0) {
            atomic_fetch_add(h->failures, 1);
            continue;
        }
        if (i == 0)
            strcpy(h->first, buf);
        else if (strcmp(buf, h->first) != 0)
            atomic_fetch_add(h->failures, 1);
    }
    return NULL;
}

/* Runs `threads` threads making `calls` header() calls each, all released at once. Returns how many failed. */
static int hammer_run(sl__gcs_auth *auth, int threads, int calls, const char *invalidate, char *first_header) {
    pthread_t tid[16];
    hammer h[16];
    pthread_barrier_t start;
    atomic_int failures;
    atomic_init(&failures, 0);
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        h[i] = (hammer){.auth = auth, .start = &start, .calls = calls, .invalidate = invalidate, .failures = &failures};
        ASSERT_INT_EQ(pthread_create(&tid[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 1; i < threads; i++)
        ASSERT_STR_EQ(h[i].first, h[0].first);
    if (first_header)
        strcpy(first_header, h[0].first);
    return atomic_load(&failures);
}

/* 200 calls from 8 threads within one token lifetime: one fetch. After (most of) the lifetime: a new token. The
 * lifetime is 6 s so that the bounds below hold on a loaded machine (with 2 s, 200 calls and one RSA-signed fetch
 * could take longer than the 1.2 s allowed). */
static void test_expiry(void) {
    reset_env();
    gcs_server srv;
    const char *args[] = {"--token-lifetime-s", "6", "--jwt-public-key", s_pub_path, NULL};
    start_server(&srv, args);
    char path[400], first[HDR_CAP], buf[HDR_CAP];
    path_in_tmp(path, sizeof(path), "sa_expiry.json");
    write_sa_key(path, &srv, s_key_pem);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    sl__gcs_auth *auth = NULL;
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);

    double t0 = now_s();
    ASSERT_INT_EQ(hammer_run(auth, 8, 25, NULL, first), 0);
    ASSERT_TRUE(now_s() - t0 < 4.0); /* before the refresh is due, or the next checks mean nothing */
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 1);

    /* 6 s lifetime, refreshed 1.5 s (a quarter) before expiry: at 4.8 s the token is due. */
    double left = 4.8 - (now_s() - t0);
    if (left > 0)
        sleep_s(left);
    get_header(auth, buf);
    ASSERT_TRUE(now_s() - t0 < 6.0); /* the old token had not expired yet: the refresh came early */
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 2);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 2);
    ASSERT_TRUE(strcmp(buf, first) != 0);

    /* Long after the lifetime: fetched again, once, for everyone. */
    sleep_s(5.0);
    ASSERT_INT_EQ(hammer_run(auth, 8, 25, NULL, NULL), 0);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 3);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 3);
    sl__gcs_auth_destroy(auth);
    gcs_server_stop(&srv);
}

/* After a 401: one refresh, however many threads report the same stale header; a stale report changes nothing. */
static void test_invalidate(void) {
    reset_env();
    gcs_server srv;
    const char *args[] = {"--refresh-token", REFRESH_TOKEN, NULL};
    start_server(&srv, args);
    char path[400], h1[HDR_CAP], h2[HDR_CAP], h3[HDR_CAP];
    path_in_tmp(path, sizeof(path), "user_inval.json");
    write_user_creds(path, &srv, REFRESH_TOKEN);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    sl__gcs_auth *auth = NULL;
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    get_header(auth, h1);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);

    sl__gcs_auth_invalidate(auth, h1);
    get_header(auth, h2);
    ASSERT_TRUE(strcmp(h1, h2) != 0);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 2);
    /* Another thread reporting h1 late must not throw h2 away. */
    sl__gcs_auth_invalidate(auth, h1);
    sl__gcs_auth_invalidate(auth, NULL);
    get_header(auth, h3);
    ASSERT_STR_EQ(h3, h2);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 2);

    /* 8 threads all got a 401 with h2 at once: exactly one new token. */
    ASSERT_INT_EQ(hammer_run(auth, 8, 3, h2, h3), 0);
    ASSERT_TRUE(strcmp(h3, h2) != 0);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 3);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 3);
    sl__gcs_auth_destroy(auth);
    gcs_server_stop(&srv);
}

/* ---- retries, through a fault relay ------------------------------------------------------------------------
 * The server injects faults only into requests that carry `x-retry-test-id`, and sl__gcs_auth (rightly) sends no
 * such header. This relay sits between the two on 127.0.0.1: it copies bytes both ways and adds the header to the
 * first request of every connection, so a retry test's instructions reach the token requests. A reset from the
 * server is passed on to the client as a reset. */

typedef struct relay {
    int listen_fd;
    int port;
    int target_port;
    char header[160]; /* "x-retry-test-id: ID\r\n" */
    atomic_bool stop;
    pthread_t acceptor;
    pthread_t conns[64];
    int nconns; /* written by the acceptor thread only; read after it is joined */
} relay;

typedef struct relay_conn {
    relay *r;
    int fd;
} relay_conn;

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void close_with_reset(int fd) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void *relay_conn_main(void *arg) {
    relay_conn *c = arg;
    relay *r = c->r;
    int cfd = c->fd, sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    free(c);
    bool reset = false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->target_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[16384];
    size_t len = 0;
    const char *eol = NULL;
    if (sfd < 0 || connect(sfd, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto done;
    while (!eol && len < sizeof(buf)) {
        ssize_t n = recv(cfd, buf + len, sizeof(buf) - len, 0);
        if (n <= 0)
            goto done;
        len += (size_t)n;
        eol = memmem(buf, len, "\r\n", 2);
    }
    if (!eol)
        goto done;
    size_t head = (size_t)(eol + 2 - buf);
    if (send_all(sfd, buf, head) || send_all(sfd, r->header, strlen(r->header)) ||
        send_all(sfd, buf + head, len - head))
        goto done;
    struct pollfd p[2] = {{.fd = cfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    while (!atomic_load(&r->stop)) {
        if (poll(p, 2, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(p[i].fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                reset = i == 1 && n < 0;
                goto done;
            }
            if (send_all(p[1 - i].fd, buf, (size_t)n))
                goto done;
        }
    }
done:
    if (reset)
        close_with_reset(cfd);
    else
        close(cfd);
    if (sfd >= 0)
        close(sfd);
    return NULL;
}

static void *relay_main(void *arg) {
    relay *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = r->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        relay_conn *c = malloc(sizeof(*c));
        *c = (relay_conn){r, fd};
        if (r->nconns >= (int)(sizeof(r->conns) / sizeof(r->conns[0])) ||
            pthread_create(&r->conns[r->nconns], NULL, relay_conn_main, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        r->nconns++;
    }
    return NULL;
}

static void relay_start(relay *r, const gcs_server *srv, const char *test_id) {
    memset(r, 0, sizeof(*r));
    atomic_init(&r->stop, false);
    r->target_port = srv->port;
    snprintf(r->header, sizeof(r->header), "x-retry-test-id: %s\r\n", test_id);
    r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    ASSERT_TRUE(r->listen_fd >= 0);
    ASSERT_INT_EQ(bind(r->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ASSERT_INT_EQ(listen(r->listen_fd, 16), 0);
    ASSERT_INT_EQ(getsockname(r->listen_fd, (struct sockaddr *)&a, &alen), 0);
    r->port = ntohs(a.sin_port);
    ASSERT_INT_EQ(pthread_create(&r->acceptor, NULL, relay_main, r), 0);
}

static void relay_stop(relay *r) {
    atomic_store(&r->stop, true);
    pthread_join(r->acceptor, NULL);
    for (int i = 0; i < r->nconns; i++)
        pthread_join(r->conns[i], NULL);
    close(r->listen_fd);
}

/* Creates a retry test on the server; returns its id in id (cap 64). */
static void retry_test(const gcs_server *srv, const char *method, const char *instructions, char *id) {
    char body[512], answer[4096];
    snprintf(body, sizeof(body), "{\"instructions\": {\"%s\": [%s]}}", method, instructions);
    ASSERT_INT_EQ(gcs_server_retry_test(srv, body, answer, sizeof(answer)), 200);
    json_t *j = json_loads(answer, 0, NULL);
    json_t *v = json_object_get(j, "id");
    ASSERT_TRUE(json_is_string(v) && json_string_length(v) < 64);
    strcpy(id, json_string_value(v));
    json_decref(j);
}

/* How many requests of `method` the server has seen. */
static long long requests_of(const gcs_server *srv, const char *method) {
    json_t *j = gcs_server_stats(srv);
    ASSERT_TRUE(j != NULL);
    json_t *v = json_object_get(json_object_get(j, "requests"), method);
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
    json_decref(j);
    return n;
}

/* The token endpoint hiccups: a reset connection, then a 503, then fine. One fetch, three requests. Three resets in
 * a row: give up with a transport message after exactly three attempts. A 400 is not retried. */
static void test_retry_token_endpoint(void) {
    reset_env();
    gcs_server srv;
    const char *args[] = {"--refresh-token", REFRESH_TOKEN, NULL};
    start_server(&srv, args);
    char path[400], buf[HDR_CAP], id[64], uri[128];
    path_in_tmp(path, sizeof(path), "user_retry.json");
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);

    retry_test(&srv, "oauth2.token", "\"return-reset-connection\", \"return-503\"", id);
    relay rl;
    relay_start(&rl, &srv, id);
    snprintf(uri, sizeof(uri), "http://127.0.0.1:%d/token", rl.port);
    write_json(path, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "authorized_user", "client_id", "id",
                               "client_secret", CLIENT_SECRET, "refresh_token", REFRESH_TOKEN, "token_uri", uri));
    sl__gcs_auth *auth = NULL;
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    get_header(auth, buf);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);
    ASSERT_INT_EQ(requests_of(&srv, "oauth2.token"), 3);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 1);
    sl__gcs_auth_destroy(auth);
    relay_stop(&rl);

    retry_test(&srv, "oauth2.token", "\"return-reset-connection\", \"return-reset-connection\", "
                                     "\"return-reset-connection\", \"return-reset-connection\"", id);
    relay_start(&rl, &srv, id);
    snprintf(uri, sizeof(uri), "http://127.0.0.1:%d/token", rl.port);
    write_json(path, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "authorized_user", "client_id", "id",
                               "client_secret", CLIENT_SECRET, "refresh_token", REFRESH_TOKEN, "token_uri", uri));
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), SL_EIO);
    ASSERT_CONTAINS(sl_last_error(), "cannot reach the token endpoint");
    ASSERT_CONTAINS(sl_last_error(), uri);
    assert_no_secret(sl_last_error(), NULL);
    ASSERT_INT_EQ(requests_of(&srv, "oauth2.token"), 3 + 3);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 0);
    sl__gcs_auth_destroy(auth);
    relay_stop(&rl);

    write_user_creds(path, &srv, "1//wrong-SECRET-refresh");
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    ASSERT_INT_EQ(sl__gcs_auth_header(auth, buf, sizeof(buf)), SL_EACCES);
    ASSERT_INT_EQ(requests_of(&srv, "oauth2.token"), 3 + 3 + 1);
    sl__gcs_auth_destroy(auth);
    gcs_server_stop(&srv);
}

/* The metadata server answers 503 once: retried. It insists on Metadata-Flavor, which the relay passes through. */
static void test_retry_metadata(void) {
    reset_env();
    gcs_server srv;
    start_server(&srv, NULL);
    char buf[HDR_CAP], id[64], host[64];
    retry_test(&srv, "metadata.token", "\"return-503\"", id);
    relay rl;
    relay_start(&rl, &srv, id);
    snprintf(host, sizeof(host), "127.0.0.1:%d", rl.port);
    setenv("GCE_METADATA_HOST", host, 1);
    sl__gcs_auth *auth = NULL;
    ASSERT_INT_EQ(sl__gcs_auth_new(NULL, &auth), 0);
    get_header(auth, buf);
    ASSERT_UINT_EQ(sl__gcs_auth_fetches(auth), 1);
    ASSERT_INT_EQ(requests_of(&srv, "metadata.token"), 2);
    ASSERT_INT_EQ(gcs_server_stat(&srv, "tokens_issued"), 1);
    sl__gcs_auth_destroy(auth);
    relay_stop(&rl);
    gcs_server_stop(&srv);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(s_tmp, sizeof(s_tmp), "%s/sl-auth-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_tmp))
        TEST_FAIL_("mkdtemp %s failed", s_tmp);
    path_in_tmp(s_empty_config, sizeof(s_empty_config), "gcloud-empty");
    path_in_tmp(s_home, sizeof(s_home), "home");
    mkdir(s_empty_config, 0700);
    mkdir(s_home, 0700);
    reset_env();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    make_keys();

    RUN_TEST(test_anonymous);
    RUN_TEST(test_env_token);
    RUN_TEST(test_secret_filter);
    RUN_TEST(test_token_file);
    RUN_TEST(test_broken_credentials);
    RUN_TEST(test_metadata_unreachable);
    RUN_TEST(test_service_account);
    RUN_TEST(test_service_account_rejected);
    RUN_TEST(test_authorized_user);
    RUN_TEST(test_metadata);
    RUN_TEST(test_expiry);
    RUN_TEST(test_invalidate);
    RUN_TEST(test_retry_token_endpoint);
    RUN_TEST(test_retry_metadata);

    free(s_key_pem);
    free(s_other_key_pem);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", s_tmp);
    curl_global_cleanup();
    TEST_DONE();
}
