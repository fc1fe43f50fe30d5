/* The AWS credential chain with real files, real environment variables, real child processes (credential_process)
 * and a real loopback server (tests/unit/aws_fake.py: STS, container credentials and IMDSv2 as they answer):
 * each link, which one wins when several are configured, the region, expiry and refresh, one fetch per lifetime
 * across threads, invalidation after a rejection, failures named in one line, and secrets kept out of messages; plus
 * the parsers (INI, credential_process JSON, STS XML, command lines, times) on their own.
 *
 * Only 127.0.0.1 is contacted: every test starts from s_reset_env(), which clears every AWS_* variable, points HOME at
 * an empty directory and disables the instance metadata service unless a test points it at the fake. */
#include "auth_aws.h"
#include "http.h"
#include "test.h"

#include "sluice/sluice.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SL_SOURCE_DIR
#error "SL_SOURCE_DIR must name the source tree"
#endif

extern char **environ;

static char s_tmp[256];
static char s_home[320];
static pid_t s_server_pid;
static char s_base[64]; /* http://127.0.0.1:PORT */
static sl__http *s_ctl; /* the test's own client for /_config and /_stats */

static const char *const s_vars[] = {"AWS_ACCESS_KEY_ID",
                                     "AWS_SECRET_ACCESS_KEY",
                                     "AWS_SESSION_TOKEN",
                                     "AWS_PROFILE",
                                     "AWS_SHARED_CREDENTIALS_FILE",
                                     "AWS_CONFIG_FILE",
                                     "AWS_REGION",
                                     "AWS_DEFAULT_REGION",
                                     "AWS_WEB_IDENTITY_TOKEN_FILE",
                                     "AWS_ROLE_ARN",
                                     "AWS_ROLE_SESSION_NAME",
                                     "AWS_ENDPOINT_URL",
                                     "AWS_ENDPOINT_URL_STS",
                                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                     "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                     "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                     "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                     "AWS_EC2_METADATA_DISABLED",
                                     "AWS_EC2_METADATA_SERVICE_ENDPOINT"};

static void s_reset_env(void) {
    for (size_t i = 0; i < sizeof(s_vars) / sizeof(s_vars[0]); i++)
        unsetenv(s_vars[i]);
    setenv("HOME", s_home, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void s_write(const char *path, const char *text) {
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    FILE *f = fopen(tmp, "w");
    ASSERT_TRUE(f != NULL);
    fputs(text, f);
    ASSERT_INT_EQ(fclose(f), 0);
    ASSERT_INT_EQ(rename(tmp, path), 0);
}

static void s_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", s_tmp, name);
}

/* ---- the fake server ------------------------------------------------------------------------------------------ */

static void s_server_stop(void) {
    if (s_server_pid > 0) {
        kill(s_server_pid, SIGTERM);
        waitpid(s_server_pid, NULL, 0);
        s_server_pid = 0;
    }
}

static void s_server_start(void) {
    char port_file[320], script[512];
    s_path(port_file, sizeof(port_file), "port");
    unlink(port_file);
    snprintf(script, sizeof(script), "%s/tests/unit/aws_fake.py", SL_SOURCE_DIR);
    const char *argv[] = {"python3", script, "--port-file", port_file, NULL};
    ASSERT_INT_EQ(posix_spawnp(&s_server_pid, "python3", NULL, NULL, (char *const *)argv, environ), 0);
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(port_file, "r");
        int port = 0;
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port > 0) {
            snprintf(s_base, sizeof(s_base), "http://127.0.0.1:%d", port);
            return;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    TEST_FAIL_("aws_fake.py did not start within 10 s");
}

static void s_config(const char *json) {
    char url[128];
    snprintf(url, sizeof(url), "%s/_config", s_base);
    const char *h[] = {"Content-Type: application/json", NULL};
    sl__http_request rq = {.method = "POST", .url = url, .headers = h, .body = json, .body_len = strlen(json)};
    sl__http_response resp;
    ASSERT_INT_EQ(sl__http_perform(s_ctl, &rq, &resp), 0);
    ASSERT_INT_EQ(resp.status, 200);
}

/* A counter (or string, into buf) of /_stats. */
static long s_stat(const char *name, char *buf, size_t cap) {
    char url[128];
    snprintf(url, sizeof(url), "%s/_stats", s_base);
    sl__http_request rq = {.method = "GET", .url = url};
    sl__http_response resp;
    ASSERT_INT_EQ(sl__http_perform(s_ctl, &rq, &resp), 0);
    json_t *root = json_loadb(resp.body, resp.body_len, 0, NULL);
    ASSERT_TRUE(root != NULL);
    json_t *v = json_object_get(root, name);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : -1;
    if (buf)
        snprintf(buf, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
    json_decref(root);
    return n;
}

static void s_default_config(void) {
    s_config("{\"lifetime\": 3600, \"delay_ms\": 0, \"web_token\": \"web-identity-token-SECRET\", "
             "\"container_token\": \"\", \"fail\": {}, \"echo_token\": false}");
}

/* ---- parsers -------------------------------------------------------------------------------------------------- */

static void test_ini(void) {
    const char *ini = "# comment\n"
                      "; another\n"
                      "[default]\r\n"
                      "aws_access_key_id = AKIDDEFAULT\r\n"
                      "AWS_Secret_Access_Key=secret=with=equals  \r\n"
                      "\n"
                      "[profile   dev ]\n"
                      "region: eu-west-1\n"
                      "s3 =\n"
                      "  endpoint_url = http://nested.example\n"
                      "  region = nested\n"
                      "endpoint_url = http://127.0.0.1:9000\n"
                      "[dev]\n"
                      "aws_access_key_id = AKIDDEV\n"
                      "[default]\n"
                      "aws_session_token = later\n"
                      "[broken\n"
                      "aws_access_key_id = IGNORED\n";
    size_t len = strlen(ini);
    char out[64];
    bool found = false;
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "default", "aws_access_key_id", out, sizeof(out), &found), 1);
    ASSERT_STR_EQ(out, "AKIDDEFAULT");
    ASSERT_TRUE(found);
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "default", "aws_secret_access_key", out, sizeof(out), NULL), 1);
    ASSERT_STR_EQ(out, "secret=with=equals");
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "default", "aws_session_token", out, sizeof(out), NULL), 1);
    ASSERT_STR_EQ(out, "later"); /* a section given twice is one */
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "profile dev", "region", out, sizeof(out), &found), 1);
    ASSERT_STR_EQ(out, "eu-west-1"); /* ':' separates too; nested "s3 =" lines skipped */
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "profile dev", "endpoint_url", out, sizeof(out), NULL), 1);
    ASSERT_STR_EQ(out, "http://127.0.0.1:9000");
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "profile dev", "s3", out, sizeof(out), NULL), 1);
    ASSERT_STR_EQ(out, "");
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "dev", "aws_access_key_id", out, sizeof(out), NULL), 1);
    ASSERT_STR_EQ(out, "AKIDDEV");
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "dev", "region", out, sizeof(out), &found), 0);
    ASSERT_TRUE(found);
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "nosuch", "region", out, sizeof(out), &found), 0);
    ASSERT_FALSE(found);
    ASSERT_INT_EQ(sl__aws_ini_get(ini, len, "default", "aws_secret_access_key", out, 5, NULL), SL_ETOOBIG);
    /* A NUL byte inside a section name: that section is not "default" (and nothing is read past the name). */
    const char nul[] = "[default\0x]\naws_access_key_id = AKIDNUL\n";
    ASSERT_INT_EQ(sl__aws_ini_get(nul, sizeof(nul) - 1, "default", "aws_access_key_id", out, sizeof(out), &found), 0);
    ASSERT_FALSE(found);
    /* Truncated input: no read past len. */
    ASSERT_INT_EQ(sl__aws_ini_get(ini, 40, "default", "aws_access_key_id", out, sizeof(out), NULL), 0);
}

static void test_split_command(void) {
    char buf[256];
    char *argv[8];
    ASSERT_INT_EQ(sl__aws_split_command("  /usr/bin/tool  --flag 'a b' \"c \\\"d\\\" \\x\" e\\ f '' g'h'i ", buf,
                                        sizeof(buf), argv, 8),
                  7);
    ASSERT_STR_EQ(argv[0], "/usr/bin/tool");
    ASSERT_STR_EQ(argv[1], "--flag");
    ASSERT_STR_EQ(argv[2], "a b");
    ASSERT_STR_EQ(argv[3], "c \"d\" \\x");
    ASSERT_STR_EQ(argv[4], "e f");
    ASSERT_STR_EQ(argv[5], "");
    ASSERT_STR_EQ(argv[6], "ghi");
    ASSERT_TRUE(argv[7] == NULL);
    ASSERT_INT_EQ(sl__aws_split_command("tool 'open", buf, sizeof(buf), argv, 8), SL_EINVAL);
    ASSERT_INT_EQ(sl__aws_split_command("tool \"open", buf, sizeof(buf), argv, 8), SL_EINVAL);
    ASSERT_INT_EQ(sl__aws_split_command("tool \\", buf, sizeof(buf), argv, 8), SL_EINVAL);
    ASSERT_INT_EQ(sl__aws_split_command("   ", buf, sizeof(buf), argv, 8), SL_EINVAL);
    ASSERT_INT_EQ(sl__aws_split_command("a b c d e f g h i", buf, sizeof(buf), argv, 8), SL_ETOOBIG);
    ASSERT_INT_EQ(sl__aws_split_command("abcdefghij", buf, 5, argv, 8), SL_ETOOBIG);
}

static void test_parse_time(void) {
    int64_t t = 0;
    ASSERT_INT_EQ(sl__aws_parse_time("2013-05-24T00:00:00Z", &t), 0);
    ASSERT_INT_EQ(t, 1369353600);
    ASSERT_INT_EQ(sl__aws_parse_time("2013-05-24T00:00:00.123456Z", &t), 0);
    ASSERT_INT_EQ(t, 1369353600);
    ASSERT_INT_EQ(sl__aws_parse_time("2013-05-24T02:00:00+02:00", &t), 0);
    ASSERT_INT_EQ(t, 1369353600);
    ASSERT_INT_EQ(sl__aws_parse_time("2013-05-23T23:30:00-00:30", &t), 0);
    ASSERT_INT_EQ(t, 1369353600);
    const char *bad[] = {"",
                         "2013-05-24",
                         "2013-05-24T00:00:00",
                         "2013-13-24T00:00:00Z",
                         "2013-05-24T00:00:00Zjunk",
                         "2013-05-24T00:00:00.Z",
                         "x013-05-24T00:00:00Z",
                         "1969-12-31T23:59:59Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_INT_EQ(sl__aws_parse_time(bad[i], &t), SL_EINVAL);
}

static void test_parse_json(void) {
    sl__aws_credentials c;
    char why[300];
    const char *ok = "{\"Version\": 1, \"AccessKeyId\": \"ASIAPROC\", \"SecretAccessKey\": \"proc-SECRET\", "
                     "\"SessionToken\": \"tok\", \"Expiration\": \"2030-01-01T00:00:00Z\"}";
    ASSERT_INT_EQ(sl__aws_parse_credentials_json(ok, strlen(ok), 1, &c, why, sizeof(why)), 0);
    ASSERT_STR_EQ(c.access_key_id, "ASIAPROC");
    ASSERT_STR_EQ(c.secret_access_key, "proc-SECRET");
    ASSERT_STR_EQ(c.session_token, "tok");
    ASSERT_INT_EQ(c.expires_s, 1893456000);
    const char *noexp = "{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"}";
    ASSERT_INT_EQ(sl__aws_parse_credentials_json(noexp, strlen(noexp), 1, &c, why, sizeof(why)), 0);
    ASSERT_INT_EQ(c.expires_s, 0);
    ASSERT_STR_EQ(c.session_token, "");
    struct {
        const char *text;
        int version;
        const char *why;
    } bad[] = {
        {"{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"}", 1, "\"Version\" is not 1"},
        {"{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"}", 1, "\"Version\" is not 1"},
        {"{\"Version\": 1, \"SecretAccessKey\": \"S-SECRET\"}", 1, "no AccessKeyId"},
        {"{\"Version\": 1, \"AccessKeyId\": \"A\"}", 1, "no SecretAccessKey"},
        {"{\"Version\": 1, \"AccessKeyId\": \"A B\", \"SecretAccessKey\": \"S\"}", 1, "printable ASCII"},
        {"{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\", \"Expiration\": \"soon\"}", 1,
         "not an ISO 8601 time"},
        {"{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\", \"Expiration\": 5}", 1, "not a string"},
        {"[1]", 1, "not a JSON object"},
        {"{\"SecretAccessKey\": \"leaked-SECRET\"", 1, "not JSON"},
        {"{\"Code\": \"Failure\", \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\", \"Token\": \"T\", "
         "\"Expiration\": \"2030-01-01T00:00:00Z\"}",
         0, "\"Code\" is \"Failure\""},
        {"{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\", \"Token\": \"T\"}", 0, "no \"Expiration\""},
        {"{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\", \"Expiration\": \"2030-01-01T00:00:00Z\"}", 0,
         "no Token"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_INT_EQ(
            sl__aws_parse_credentials_json(bad[i].text, strlen(bad[i].text), bad[i].version, &c, why, sizeof(why)),
            SL_EINVAL);
        if (!strstr(why, bad[i].why))
            TEST_FAIL_("case %zu: why '%s' lacks '%s'", i, why, bad[i].why);
        ASSERT_TRUE(strstr(why, "SECRET") == NULL);
    }
    /* A token longer than the cap is refused, not cut. */
    size_t big = SL__AWS_TOKEN_CAP + 100;
    char *text = malloc(big + 200);
    int n =
        snprintf(text, big + 200, "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"SessionToken\":\"");
    memset(text + n, 'x', big);
    strcpy(text + n + big, "\"}");
    ASSERT_INT_EQ(sl__aws_parse_credentials_json(text, strlen(text), 1, &c, why, sizeof(why)), SL_EINVAL);
    ASSERT_TRUE(strstr(why, "SessionToken is") != NULL);
    free(text);
}

static void test_parse_sts_xml(void) {
    sl__aws_credentials c;
    char code[64], msg[256];
    const char *ok = "<?xml version=\"1.0\"?>\n<AssumeRoleWithWebIdentityResponse "
                     "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>"
                     "<Credentials><AccessKeyId> ASIAXML </AccessKeyId><SecretAccessKey>xml-SECRET</SecretAccessKey>"
                     "<SessionToken>xml&amp;tok</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>"
                     "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
    ASSERT_INT_EQ(sl__aws_parse_sts_xml(ok, strlen(ok), &c, code, sizeof(code), msg, sizeof(msg)), 0);
    ASSERT_STR_EQ(c.access_key_id, "ASIAXML");
    ASSERT_STR_EQ(c.secret_access_key, "xml-SECRET");
    ASSERT_STR_EQ(c.session_token, "xml&tok");
    ASSERT_INT_EQ(c.expires_s, 1893456000);
    const char *err = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized\n"
                      "to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>";
    ASSERT_INT_EQ(sl__aws_parse_sts_xml(err, strlen(err), &c, code, sizeof(code), msg, sizeof(msg)), SL_EACCES);
    ASSERT_STR_EQ(code, "AccessDenied");
    ASSERT_STR_EQ(msg, "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    const char *bad[] = {
        "not xml at all",
        "<Other/>",
        "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><AssumeRoleWithWebIdentityResponse/>",
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>A"
        "</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>A"
        "</AccessKeyId><SecretAccessKey>S</SecretAccessKey><SessionToken>T</SessionToken><Expiration>never"
        "</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_INT_EQ(sl__aws_parse_sts_xml(bad[i], strlen(bad[i]), &c, code, sizeof(code), msg, sizeof(msg)),
                      SL_EINVAL);
        ASSERT_TRUE(msg[0] != '\0');
    }
}

/* ---- choosing the source -------------------------------------------------------------------------------------- */

static void test_anonymous_and_region(void) {
    s_reset_env();
    sl__aws_auth *a = NULL;
    sl__aws_auth_options o = {.anonymous = true};
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1); /* --no-sign-request wins over everything */
    setenv("AWS_SECRET_ACCESS_KEY", "env-SECRET", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    ASSERT_TRUE(sl__aws_auth_anonymous(a));
    sl__aws_credentials c;
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "");
    ASSERT_STR_EQ(sl__aws_auth_region(a), "us-east-1");
    ASSERT_STR_EQ(sl__aws_auth_region_source(a), "default");
    sl__aws_auth_destroy(a);

    /* Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's config, us-east-1. */
    char config[320];
    s_path(config, sizeof(config), "config-region");
    s_write(config, "[default]\nregion = ap-south-1\nendpoint_url = http://127.0.0.1:9\n"
                    "[profile dev]\nregion = eu-north-1\n");
    setenv("AWS_CONFIG_FILE", config, 1);
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    ASSERT_STR_EQ(sl__aws_auth_region(a), "ap-south-1");
    ASSERT_TRUE(strstr(sl__aws_auth_region_source(a), "profile 'default' in ") != NULL);
    ASSERT_STR_EQ(sl__aws_auth_endpoint_url(a), "http://127.0.0.1:9");
    sl__aws_auth_destroy(a);
    setenv("AWS_PROFILE", "dev", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    ASSERT_STR_EQ(sl__aws_auth_region(a), "eu-north-1");
    ASSERT_STR_EQ(sl__aws_auth_endpoint_url(a), "");
    sl__aws_auth_destroy(a);
    setenv("AWS_DEFAULT_REGION", "ca-central-1", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    ASSERT_STR_EQ(sl__aws_auth_region(a), "ca-central-1");
    ASSERT_STR_EQ(sl__aws_auth_region_source(a), "AWS_DEFAULT_REGION");
    sl__aws_auth_destroy(a);
    setenv("AWS_REGION", "sa-east-1", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    ASSERT_STR_EQ(sl__aws_auth_region(a), "sa-east-1");
    ASSERT_STR_EQ(sl__aws_auth_region_source(a), "AWS_REGION");
    sl__aws_auth_destroy(a);
    setenv("AWS_REGION", "us east 1", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "AWS_REGION") != NULL);
}

static void test_environment(void) {
    s_reset_env();
    sl__aws_auth *a = NULL;
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not") != NULL);
    setenv("AWS_SECRET_ACCESS_KEY", "env-SECRET-key", 1);
    setenv("AWS_SESSION_TOKEN", "env-SECRET-token", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_STR_EQ(sl__aws_auth_source(a), "environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN)");
    sl__aws_credentials c;
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "AKIDENV");
    ASSERT_STR_EQ(c.secret_access_key, "env-SECRET-key");
    ASSERT_STR_EQ(c.session_token, "env-SECRET-token");
    ASSERT_INT_EQ(c.expires_s, 0);
    ASSERT_TRUE(sl__aws_auth_mentions_secret(a, "the key env-SECRET-key leaked"));
    ASSERT_FALSE(sl__aws_auth_mentions_secret(a, "AccessDenied: Access Denied"));
    /* Rejected: the environment cannot change, so the next get says so. */
    sl__aws_auth_invalidate(a, c.serial + 1); /* not these: nothing happens */
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    sl__aws_auth_invalidate(a, c.serial);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EACCES);
    ASSERT_TRUE(strstr(sl_last_error(), "environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN) were rejected") != NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "SECRET") == NULL);
    ASSERT_STR_EQ(c.secret_access_key, ""); /* wiped on failure */
    sl__aws_auth_destroy(a);
    setenv("AWS_SESSION_TOKEN", "bad token", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "AWS_SESSION_TOKEN has characters other than printable ASCII") != NULL);
}

static void test_profiles(void) {
    s_reset_env();
    sl__aws_auth *a = NULL;
    sl__aws_credentials c;
    char creds[320], config[320], msg[2048];
    s_path(creds, sizeof(creds), "credentials");
    s_path(config, sizeof(config), "config");
    s_write(creds, "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-SECRET\n"
                   "[dev]\naws_access_key_id=AKIDDEV\naws_secret_access_key=dev-SECRET\naws_session_token=dev-TOKEN\n"
                   "[half]\naws_access_key_id = AKIDHALF\n");
    s_write(config, "[default]\nregion = eu-west-2\n"
                    "[profile dev]\naws_access_key_id = AKIDIGNORED\naws_secret_access_key = ignored\n"
                    "[profile cfg]\naws_access_key_id = AKIDCFG\naws_secret_access_key = cfg-SECRET\n"
                    "[profile chain]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n"
                    "[profile sso]\nsso_session = corp\n"
                    "[profile empty]\nregion = us-west-2\n"
                    "[profile assume]\nrole_arn = arn:aws:iam::1:role/r\n"
                    "[profile both]\ncredential_process = /bin/false\n"
                    "[profile pk]\ncredential_process = /bin/false\naws_access_key_id = AKIDPK\n"
                    "aws_secret_access_key = pk-SECRET\n");

    /* The default profile from ~/.aws (HOME), no variable needed. */
    char aws_dir[400], home_creds[450];
    snprintf(aws_dir, sizeof(aws_dir), "%s/.aws", s_home);
    mkdir(aws_dir, 0700);
    snprintf(home_creds, sizeof(home_creds), "%s/credentials", aws_dir);
    s_write(home_creds, "[default]\naws_access_key_id = AKIDHOME\naws_secret_access_key = home-SECRET\n");
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    snprintf(msg, sizeof(msg), "profile 'default' in %s (the default profile)", home_creds);
    ASSERT_STR_EQ(sl__aws_auth_source(a), msg);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "AKIDHOME");
    sl__aws_auth_destroy(a);
    unlink(home_creds);

    setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
    setenv("AWS_CONFIG_FILE", config, 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "AKIDFILE");
    ASSERT_STR_EQ(c.session_token, "");
    ASSERT_STR_EQ(sl__aws_auth_region(a), "eu-west-2");
    sl__aws_auth_destroy(a);

    /* AWS_PROFILE: the credentials file wins over the config file's keys. */
    setenv("AWS_PROFILE", "dev", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "AKIDDEV");
    ASSERT_STR_EQ(c.session_token, "dev-TOKEN");
    ASSERT_TRUE(strstr(sl__aws_auth_source(a), "(AWS_PROFILE)") != NULL);
    ASSERT_STR_EQ(sl__aws_auth_region(a), "us-east-1"); /* [profile dev] has no region; [default]'s is not used */
    sl__aws_auth_destroy(a);
    /* --profile wins over AWS_PROFILE; keys from the config file. */
    sl__aws_auth_options o = {.profile = "cfg"};
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "AKIDCFG");
    snprintf(msg, sizeof(msg), "profile 'cfg' in %s (--profile)", config);
    ASSERT_STR_EQ(sl__aws_auth_source(a), msg);
    sl__aws_auth_destroy(a);

    /* Within a profile, botocore's order: credentials file keys, credential_process, config file keys. */
    s_write(creds, "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-SECRET\n"
                   "[dev]\naws_access_key_id=AKIDDEV\naws_secret_access_key=dev-SECRET\naws_session_token=dev-TOKEN\n"
                   "[half]\naws_access_key_id = AKIDHALF\n"
                   "[both]\naws_access_key_id = AKIDBOTH\naws_secret_access_key = both-SECRET\n");
    o.profile = "both";
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    snprintf(msg, sizeof(msg), "profile 'both' in %s (--profile)", creds);
    ASSERT_STR_EQ(sl__aws_auth_source(a), msg);
    sl__aws_auth_destroy(a);
    o.profile = "pk";
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    ASSERT_TRUE(strncmp(sl__aws_auth_source(a), "credential_process of profile 'pk'", 34) == 0);
    sl__aws_auth_destroy(a);

    /* The environment's keys win over AWS_PROFILE, but not over --profile (as in the AWS CLI). */
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-SECRET", 1);
    setenv("AWS_PROFILE", "cfg", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_STR_EQ(sl__aws_auth_source(a), "environment (AWS_ACCESS_KEY_ID)");
    sl__aws_auth_destroy(a);
    o.profile = "cfg";
    ASSERT_INT_EQ(sl__aws_auth_new(&o, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "AKIDCFG");
    sl__aws_auth_destroy(a);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");

    struct {
        const char *profile;
        int rc;
        const char *says;
    } bad[] = {
        {"nosuch", SL_ENOENT, "profile 'nosuch' (AWS_PROFILE) is in neither"},
        {"half", SL_EINVAL, "profile [half] has aws_access_key_id but not aws_secret_access_key"},
        {"chain", SL_EINVAL, "uses source_profile, which sluice does not support (role chaining)"},
        {"sso", SL_EINVAL, "uses sso_session, which sluice does not support (IAM Identity Center)"},
        {"empty", SL_EINVAL, "profile 'empty' (AWS_PROFILE) has no credentials"},
        {"assume", SL_EINVAL, "has role_arn but no web_identity_token_file"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("AWS_PROFILE", bad[i].profile, 1);
        ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), bad[i].rc);
        if (!strstr(sl_last_error(), bad[i].says))
            TEST_FAIL_("profile %s: '%s' lacks '%s'", bad[i].profile, sl_last_error(), bad[i].says);
        ASSERT_TRUE(strchr(sl_last_error(), '\n') == NULL);
    }
    /* An unreadable file is named. */
    setenv("AWS_PROFILE", "dev", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", s_tmp, 1); /* a directory */
    ASSERT_TRUE(sl__aws_auth_new(NULL, &a) < 0);
    snprintf(msg, sizeof(msg), "%s: cannot read: Is a directory (named by AWS_SHARED_CREDENTIALS_FILE)", s_tmp);
    ASSERT_STR_EQ(sl_last_error(), msg);
}

static void test_file_rejected_then_refreshed(void) {
    s_reset_env();
    char creds[320];
    s_path(creds, sizeof(creds), "credentials-rotating");
    s_write(creds, "[default]\naws_access_key_id = AKIDOLD\naws_secret_access_key = old-SECRET\n"
                   "aws_session_token = old-TOKEN\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
    sl__aws_auth *a = NULL;
    sl__aws_credentials c;
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    unsigned long old = c.serial;
    sl__aws_auth_invalidate(a, old);
    /* Nobody refreshed the file: the same keys are not used again. */
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EACCES);
    ASSERT_TRUE(strstr(sl_last_error(), "still gives the same ones; refresh them") != NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "SECRET") == NULL && strstr(sl_last_error(), "TOKEN") == NULL);
    ASSERT_TRUE(sl__aws_auth_mentions_secret(a, "old-SECRET"));
    s_write(creds, "[default]\naws_access_key_id = AKIDNEW\naws_secret_access_key = new-SECRET\n"
                   "aws_session_token = new-TOKEN\n");
    sl__aws_auth_invalidate(a, old); /* a second rejection report of the old keys: no harm */
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "AKIDNEW");
    ASSERT_TRUE(c.serial != old);
    ASSERT_INT_EQ(sl__aws_auth_fetches(a), 1);
    sl__aws_auth_destroy(a);
}

/* A credential_process script: $1 counts its runs, $2 says how to answer. */
static void s_process_script(char *path, size_t cap) {
    s_path(path, cap, "cred process.sh");
    s_write(path,
            "#!/bin/sh\n"
            "echo run >> \"$1\"\n"
            "case \"$2\" in\n"
            "ok) printf '{\"Version\": 1, \"AccessKeyId\": \"ASIAPROC\", \"SecretAccessKey\": "
            "\"proc-SECRET-%s\", \"SessionToken\": \"proc-TOKEN\", \"Expiration\": \"%s\"}\\n' "
            "\"$(wc -l < \"$1\" | tr -d ' ')\" \"$(date -u -d \"+$3 seconds\" +%Y-%m-%dT%H:%M:%SZ)\" ;;\n"
            "static) echo '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROC\", \"SecretAccessKey\": \"s-SECRET\"}' ;;\n"
            "fail) echo 'sso: the session has expired; run aws sso login' >&2; exit 3 ;;\n"
            "leak) echo 'debug: SecretAccessKey=abcdefghijklmnop' >&2; exit 1 ;;\n"
            "junk) echo 'Enter MFA code:' ;;\n"
            "env) printf '{\"Version\": 1, \"AccessKeyId\": \"%s\", \"SecretAccessKey\": \"x\"}' \"$SL_PROBE\" ;;\n"
            "esac\n");
    chmod(path, 0755);
}

static long s_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

static void test_credential_process(void) {
    s_reset_env();
    char script[320], counter[320], config[320], text[2048];
    s_process_script(script, sizeof(script));
    s_path(counter, sizeof(counter), "process runs");
    s_path(config, sizeof(config), "config-process");
    setenv("AWS_CONFIG_FILE", config, 1);
    setenv("AWS_PROFILE", "p", 1);
    sl__aws_auth *a = NULL;
    sl__aws_credentials c;

    /* Quoted words with spaces reach the program as they are; no shell runs ($(...) is not expanded). */
    snprintf(text, sizeof(text), "[profile p]\ncredential_process = '%s' \"%s\" ok 3600 '$(touch %s/pwned)'\n", script,
             counter, s_tmp);
    s_write(config, text);
    unlink(counter);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_TRUE(strstr(sl__aws_auth_source(a), "credential_process of profile 'p'") != NULL);
    for (int i = 0; i < 5; i++) {
        ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
        ASSERT_STR_EQ(c.access_key_id, "ASIAPROC");
        ASSERT_STR_EQ(c.secret_access_key, "proc-SECRET-1");
        ASSERT_TRUE(c.expires_s > (int64_t)time(NULL) + 3000);
    }
    ASSERT_INT_EQ(s_lines(counter), 1); /* one run for the credentials' lifetime */
    char pwned[320];
    s_path(pwned, sizeof(pwned), "pwned");
    ASSERT_TRUE(access(pwned, F_OK) != 0);
    sl__aws_auth_invalidate(a, c.serial);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.secret_access_key, "proc-SECRET-2");
    ASSERT_INT_EQ(s_lines(counter), 2);
    sl__aws_auth_destroy(a);

    /* Credentials that expire soon are fetched again once the margin is reached: lifetime 12 s, margin 3 s (a
     * quarter). The two first gets are well inside it on a loaded machine; the third waits until one second before
     * expiry (whole seconds: the margin is then passed whatever the rounding), bounded at 30 s. */
    snprintf(text, sizeof(text), "[profile p]\ncredential_process = '%s' '%s' ok 12\n", script, counter);
    s_write(config, text);
    unlink(counter);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_INT_EQ(s_lines(counter), 1);
    int64_t expires = c.expires_s;
    for (int i = 0; i < 300 && (int64_t)time(NULL) < expires - 1; i++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_INT_EQ(s_lines(counter), 2);
    ASSERT_STR_EQ(c.secret_access_key, "proc-SECRET-2");
    ASSERT_TRUE(c.expires_s > expires);
    sl__aws_auth_destroy(a);

    /* Already expired on arrival. */
    snprintf(text, sizeof(text), "[profile p]\ncredential_process = '%s' '%s' ok -60\n", script, counter);
    s_write(config, text);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EACCES);
    ASSERT_TRUE(strstr(sl_last_error(), "before they arrived (is this machine's clock right?)") != NULL);
    sl__aws_auth_destroy(a);

    /* No Expiration: kept until rejected. The program sees the environment. */
    setenv("SL_PROBE", "AKIAFROMENV", 1);
    snprintf(text, sizeof(text), "[profile p]\ncredential_process = '%s' '%s' env\n", script, counter);
    s_write(config, text);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_STR_EQ(c.access_key_id, "AKIAFROMENV");
    ASSERT_INT_EQ(c.expires_s, 0);
    sl__aws_auth_destroy(a);
    unsetenv("SL_PROBE");

    struct {
        const char *args;
        int rc;
        const char *says;
        const char *not_says;
    } bad[] = {
        {"fail", SL_EACCES, "exited with status 3: sso: the session has expired; run aws sso login", NULL},
        {"leak", SL_EACCES, "exited with status 1", "abcdefghijklmnop"},
        {"junk", SL_EINVAL, "printed no usable credentials: not JSON", "MFA"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "[profile p]\ncredential_process = '%s' '%s' %s\n", script, counter, bad[i].args);
        s_write(config, text);
        ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
        long runs = s_lines(counter);
        ASSERT_INT_EQ(sl__aws_auth_get(a, &c), bad[i].rc);
        if (!strstr(sl_last_error(), bad[i].says) || (bad[i].not_says && strstr(sl_last_error(), bad[i].not_says)))
            TEST_FAIL_("case %s: %s", bad[i].args, sl_last_error());
        ASSERT_TRUE(strchr(sl_last_error(), '\n') == NULL);
        /* Credentials that never worked are not asked for again for every object. */
        ASSERT_INT_EQ(sl__aws_auth_get(a, &c), bad[i].rc);
        ASSERT_INT_EQ(s_lines(counter), runs + 1);
        sl__aws_auth_destroy(a);
    }
    s_write(config, "[profile p]\ncredential_process = /nonexistent/sluice-helper --x\n");
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_ENOENT);
    ASSERT_TRUE(strstr(sl_last_error(), "cannot run '/nonexistent/sluice-helper'") != NULL);
    sl__aws_auth_destroy(a);
    s_write(config, "[profile p]\ncredential_process = tool 'unclosed\n");
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "credential_process: a ' is not closed") != NULL);
}

static void test_web_identity(void) {
    s_reset_env();
    s_default_config();
    char token_file[320], url[128], seen[512];
    sl__aws_auth *a = NULL;
    sl__aws_credentials c;
    s_path(token_file, sizeof(token_file), "web-token");
    s_write(token_file, "web-identity-token-SECRET\n");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file, 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "no role ARN (set AWS_ROLE_ARN)") != NULL);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/sluice-test", 1);
    setenv("AWS_ROLE_SESSION_NAME", "sess-1", 1);
    setenv("AWS_REGION", "eu-west-1", 1);
    /* Without an endpoint override STS is the region's. */
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_TRUE(strstr(sl__aws_auth_source(a), "STS at https://sts.eu-west-1.amazonaws.com/") != NULL);
    sl__aws_auth_destroy(a);
    setenv("AWS_REGION", "cn-north-1", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_TRUE(strstr(sl__aws_auth_source(a), "STS at https://sts.cn-north-1.amazonaws.com.cn/") != NULL);
    sl__aws_auth_destroy(a);
    setenv("AWS_REGION", "eu-west-1", 1);
    snprintf(url, sizeof(url), "%s/sts", s_base);
    setenv("AWS_ENDPOINT_URL_STS", url, 1);
    long before = s_stat("sts", NULL, 0);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_TRUE(strncmp(c.access_key_id, "ASIASTS", 7) == 0);
    ASSERT_TRUE(strncmp(c.session_token, "token-sts-", 10) == 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_INT_EQ(s_stat("sts", NULL, 0), before + 1);
    s_stat("last_session_name", seen, sizeof(seen));
    ASSERT_STR_EQ(seen, "sess-1");
    s_stat("last_role_arn", seen, sizeof(seen));
    ASSERT_STR_EQ(seen, "arn:aws:iam::123456789012:role/sluice-test");

    /* The token file is read again for each fetch (the kubelet rotates it). */
    s_write(token_file, "web-identity-token-ROTATED\n");
    s_config("{\"web_token\": \"web-identity-token-ROTATED\"}");
    sl__aws_auth_invalidate(a, c.serial);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    s_stat("last_web_token", seen, sizeof(seen));
    ASSERT_STR_EQ(seen, "web-identity-token-ROTATED");

    /* Refused by STS: code and message quoted, the token never (even when the server echoes it). */
    s_config("{\"web_token\": \"something-else\", \"echo_token\": true}");
    sl__aws_auth_invalidate(a, c.serial);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EACCES);
    ASSERT_TRUE(strstr(sl_last_error(), "AssumeRoleWithWebIdentity failed with HTTP 400: InvalidIdentityToken") !=
                NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "ROTATED") == NULL);
    ASSERT_TRUE(sl__aws_auth_mentions_secret(a, "x web-identity-token-ROTATED y"));
    sl__aws_auth_destroy(a);

    /* A 503 from STS is retried; STS gone: no answer, named, and judged an outage once it had answered. */
    s_default_config();
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    s_write(token_file, "web-identity-token-SECRET\n");
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_FALSE(sl__aws_auth_unreachable(a));
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9/", 1); /* an auth made now would point there */
    sl__aws_auth_destroy(a);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EIO);
    ASSERT_TRUE(strstr(sl_last_error(), "cannot reach STS at http://127.0.0.1:9/") != NULL);
    ASSERT_FALSE(sl__aws_auth_unreachable(a)); /* it never answered: a configuration problem, not an outage */
    sl__aws_auth_destroy(a);

    /* From a profile: web_identity_token_file + role_arn. */
    s_reset_env();
    setenv("AWS_ENDPOINT_URL", s_base, 1); /* the global endpoint variable, /sts/ appended below */
    char config[320], text[1024];
    s_path(config, sizeof(config), "config-web");
    snprintf(text, sizeof(text),
             "[profile w]\nweb_identity_token_file = %s\nrole_arn = arn:aws:iam::1:role/p\n"
             "role_session_name = from-profile\n",
             token_file);
    s_write(config, text);
    setenv("AWS_CONFIG_FILE", config, 1);
    setenv("AWS_PROFILE", "w", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_TRUE(strstr(sl__aws_auth_source(a), "profile 'w' web_identity_token_file") != NULL);
    sl__aws_auth_destroy(a);
}

static void test_container(void) {
    s_reset_env();
    s_default_config();
    char url[128], tokf[320], seen[256];
    sl__aws_auth *a = NULL;
    sl__aws_credentials c;
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.2.example.com/creds", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "must be https, or http to a loopback address") != NULL);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://user@127.0.0.1/creds", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), SL_EINVAL);
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_STR_EQ(sl__aws_auth_source(a), "container credentials at http://169.254.170.2/v2/credentials/abc "
                                          "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)");
    sl__aws_auth_destroy(a);
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");

    snprintf(url, sizeof(url), "%s/container/creds", s_base);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    s_config("{\"container_token\": \"pod-identity-TOKEN-1\"}");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-TOKEN-1", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_TRUE(strncmp(c.access_key_id, "ASIACONTAINER", 13) == 0);
    s_stat("last_authorization", seen, sizeof(seen));
    ASSERT_STR_EQ(seen, "pod-identity-TOKEN-1");
    sl__aws_auth_destroy(a);

    /* The token file wins over the variable and is read again for each fetch. */
    s_path(tokf, sizeof(tokf), "pod-token");
    s_write(tokf, "pod-identity-TOKEN-2\n");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokf, 1);
    s_config("{\"container_token\": \"pod-identity-TOKEN-2\"}");
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    s_write(tokf, "pod-identity-TOKEN-3\n");
    s_config("{\"container_token\": \"pod-identity-TOKEN-3\"}");
    sl__aws_auth_invalidate(a, c.serial);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    s_stat("last_authorization", seen, sizeof(seen));
    ASSERT_STR_EQ(seen, "pod-identity-TOKEN-3");
    /* A wrong token: 401, named with what to check, the token not shown. */
    s_config("{\"container_token\": \"pod-identity-TOKEN-4\"}");
    sl__aws_auth_invalidate(a, c.serial);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EACCES);
    ASSERT_TRUE(strstr(sl_last_error(), "answered HTTP 401: Unauthorized: bad token (check "
                                        "AWS_CONTAINER_AUTHORIZATION_TOKEN or _TOKEN_FILE)") != NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "TOKEN-3") == NULL);
    ASSERT_TRUE(sl__aws_auth_mentions_secret(a, "pod-identity-TOKEN-3"));
    sl__aws_auth_destroy(a);
    s_default_config();
}

static void test_imds(void) {
    s_reset_env();
    s_default_config();
    sl__aws_auth *a = NULL;
    sl__aws_credentials c;
    /* Nothing configured and IMDS disabled: one line listing what was tried and what to set, before any work. */
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), SL_EACCES);
    const char *m = sl_last_error();
    ASSERT_TRUE(strstr(m, "no AWS credentials found: tried the environment (AWS_ACCESS_KEY_ID), "
                          "AWS_WEB_IDENTITY_TOKEN_FILE, profile 'default' in ") != NULL);
    ASSERT_TRUE(strstr(m, "AWS_EC2_METADATA_DISABLED=true); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                          "AWS_PROFILE, or use --no-sign-request") != NULL);

    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", s_base, 1);
    long t0 = s_stat("imds_token", NULL, 0), r0 = s_stat("imds_role", NULL, 0), c0 = s_stat("imds_creds", NULL, 0);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_TRUE(strncmp(c.access_key_id, "ASIAIMDS", 8) == 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_INT_EQ(s_stat("imds_token", NULL, 0), t0 + 1);
    ASSERT_INT_EQ(s_stat("imds_role", NULL, 0), r0 + 1);
    ASSERT_INT_EQ(s_stat("imds_creds", NULL, 0), c0 + 1);
    ASSERT_FALSE(sl__aws_auth_mentions_secret(a, "imds is fine"));
    ASSERT_TRUE(sl__aws_auth_mentions_secret(a, c.secret_access_key + 3)); /* a long run of it */
    sl__aws_auth_destroy(a);

    /* IMDSv2 refused (403 on the token PUT): named, with the likely reason. */
    s_config("{\"fail\": {\"imds_token\": [403, \"\", \"\"]}}");
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EACCES);
    ASSERT_TRUE(strstr(sl_last_error(), "PUT /latest/api/token answered HTTP 403 (IMDSv2 may be disabled") != NULL);
    sl__aws_auth_destroy(a);
    s_default_config();

    /* No metadata service at all: fails fast, listing what was tried. Bounded generously (2 attempts of a refused
     * connection take milliseconds; 30 s allows for a loaded machine). */
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    time_t start = time(NULL);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EACCES);
    ASSERT_TRUE(time(NULL) - start < 30);
    ASSERT_TRUE(strstr(sl_last_error(), "no AWS credentials found: tried ") != NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "and the EC2 instance metadata service at http://127.0.0.1:9 (unreachable:") !=
                NULL);
    /* Not asked again for each object. */
    start = time(NULL);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EACCES);
    sl__aws_auth_destroy(a);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "169.254.169.254", 1);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), SL_EINVAL);
}

/* Which source wins when several are configured: environment, web identity, profile, container, IMDS. */
static void test_chain_order(void) {
    s_reset_env();
    s_default_config();
    char url[128], creds[320], token_file[320];
    sl__aws_auth *a = NULL;
    s_path(creds, sizeof(creds), "credentials-order");
    s_write(creds, "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-SECRET\n");
    s_path(token_file, sizeof(token_file), "web-token-order");
    s_write(token_file, "web-identity-token-SECRET\n");
    snprintf(url, sizeof(url), "%s/container/creds", s_base);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", s_base, 1);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file, 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-SECRET", 1);
    const char *expect[] = {"environment (", "web identity (", "profile 'default' in ", "container credentials at ",
                            "EC2 instance metadata at "};
    for (int i = 0; i < 5; i++) {
        ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
        if (strncmp(sl__aws_auth_source(a), expect[i], strlen(expect[i])) != 0)
            TEST_FAIL_("step %d: source '%s', expected '%s...'", i, sl__aws_auth_source(a), expect[i]);
        sl__aws_auth_destroy(a);
        if (i == 0) {
            unsetenv("AWS_ACCESS_KEY_ID");
            unsetenv("AWS_SECRET_ACCESS_KEY");
        } else if (i == 1) {
            unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
        } else if (i == 2) {
            unsetenv("AWS_SHARED_CREDENTIALS_FILE");
        } else if (i == 3) {
            unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        }
    }
    /* Sources that fetch are one instance per process: a second store gets the same cache. */
    sl__aws_auth *b = NULL;
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &b), 0);
    ASSERT_TRUE(a == b);
    sl__aws_credentials c;
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    ASSERT_INT_EQ(sl__aws_auth_fetches(b), 1);
    sl__aws_auth_destroy(a);
    ASSERT_INT_EQ(sl__aws_auth_get(b, &c), 0);
    ASSERT_INT_EQ(sl__aws_auth_fetches(b), 1);
    sl__aws_auth_destroy(b);
}

/* ---- threads -------------------------------------------------------------------------------------------------- */

#define THREADS 8

typedef struct worker {
    sl__aws_auth *auth;
    pthread_barrier_t *start;
    int rounds;
    bool invalidate;
    unsigned long serial;
    int failures;
} worker;

static void *s_worker(void *arg) {
    worker *w = arg;
    sl__aws_credentials *c = malloc(sizeof(*c));
    pthread_barrier_wait(w->start);
    if (w->invalidate)
        sl__aws_auth_invalidate(w->auth, w->serial);
    for (int i = 0; i < w->rounds; i++) {
        if (sl__aws_auth_get(w->auth, c) != 0 || strncmp(c->access_key_id, "ASIACONTAINER", 13) != 0)
            w->failures++;
        w->serial = c->serial;
    }
    free(c);
    return NULL;
}

static void s_run_threads(sl__aws_auth *a, bool invalidate, unsigned long serial) {
    pthread_t t[THREADS];
    worker w[THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.auth = a, .start = &start, .rounds = 50, .invalidate = invalidate, .serial = serial};
        ASSERT_INT_EQ(pthread_create(&t[i], NULL, s_worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ASSERT_INT_EQ(w[i].failures, 0);
    }
    pthread_barrier_destroy(&start);
}

static void test_threads_one_fetch_per_lifetime(void) {
    s_reset_env();
    s_default_config();
    s_config("{\"delay_ms\": 300}"); /* a slow endpoint: every thread arrives while the first fetch is under way */
    char url[128];
    snprintf(url, sizeof(url), "%s/container/creds", s_base);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    sl__aws_auth *a = NULL;
    ASSERT_INT_EQ(sl__aws_auth_new(NULL, &a), 0);
    long before = s_stat("container", NULL, 0);
    s_run_threads(a, false, 0);
    ASSERT_INT_EQ(s_stat("container", NULL, 0), before + 1);
    ASSERT_INT_EQ(sl__aws_auth_fetches(a), 1);
    /* Every thread reports the same rejected credentials at once: one new fetch, not eight. */
    sl__aws_credentials c;
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    s_run_threads(a, true, c.serial);
    ASSERT_INT_EQ(s_stat("container", NULL, 0), before + 2);
    ASSERT_INT_EQ(sl__aws_auth_fetches(a), 2);

    /* The endpoint goes away after answering: an outage (unreachable), reported once to the waiting threads. */
    s_server_stop();
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), 0);
    sl__aws_auth_invalidate(a, c.serial);
    ASSERT_INT_EQ(sl__aws_auth_get(a, &c), SL_EIO);
    ASSERT_TRUE(sl__aws_auth_unreachable(a));
    ASSERT_TRUE(strstr(sl_last_error(), "container credentials at ") != NULL &&
                strstr(sl_last_error(), ": cannot reach it: ") != NULL);
    sl__aws_auth_destroy(a);
    s_server_start();
}

static void test_secret_filter(void) {
    ASSERT_TRUE(sl__aws_auth_mentions_secret(NULL, "<SecretAccessKey>wJalrXUtnFEMIK7MDENG</SecretAccessKey>"));
    ASSERT_TRUE(sl__aws_auth_mentions_secret(NULL, "aws_secret_access_key = abcdefgh12"));
    ASSERT_TRUE(sl__aws_auth_mentions_secret(NULL, "X-Amz-Security-Token: FwoGZXIvYXdzEJr"));
    ASSERT_TRUE(sl__aws_auth_mentions_secret(NULL, "Authorization: Bearer abcdefgh1234"));
    ASSERT_FALSE(sl__aws_auth_mentions_secret(NULL, "SignatureDoesNotMatch: The request signature we calculated "
                                                    "does not match the signature you provided"));
    ASSERT_FALSE(sl__aws_auth_mentions_secret(NULL, "the SecretAccessKey is missing"));
    ASSERT_FALSE(sl__aws_auth_mentions_secret(NULL, ""));
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    snprintf(s_tmp, sizeof(s_tmp), "/tmp/sl-test-auth-aws-XXXXXX");
    ASSERT_TRUE(mkdtemp(s_tmp) != NULL);
    snprintf(s_home, sizeof(s_home), "%s/home", s_tmp);
    ASSERT_INT_EQ(mkdir(s_home, 0700), 0);
    s_ctl = sl__http_new(NULL);
    s_server_start();
    atexit(s_server_stop);

    RUN_TEST(test_ini);
    RUN_TEST(test_split_command);
    RUN_TEST(test_parse_time);
    RUN_TEST(test_parse_json);
    RUN_TEST(test_parse_sts_xml);
    RUN_TEST(test_secret_filter);
    RUN_TEST(test_anonymous_and_region);
    RUN_TEST(test_environment);
    RUN_TEST(test_profiles);
    RUN_TEST(test_file_rejected_then_refreshed);
    RUN_TEST(test_credential_process);
    RUN_TEST(test_web_identity);
    RUN_TEST(test_container);
    RUN_TEST(test_imds);
    RUN_TEST(test_chain_order);
    RUN_TEST(test_threads_one_fetch_per_lifetime);

    sl__http_destroy(s_ctl);
    s_server_stop();
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s_tmp);
    TEST_DONE();
}
