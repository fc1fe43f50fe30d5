/* The SigV4 signer against AWS's published examples (the S3 API reference's "Examples: Signature Calculations" for
 * the Authorization header: GET Object with Range, PUT Object, GET Bucket Lifecycle, GET Bucket (List Objects); the
 * general reference's derived signing key), the encoding and sorting rules, the caps, the key cache and the errors.
 *
 * `test_sigv4 --sign` is the signer's other judge: it reads requests as JSON lines on stdin and prints, for each, a
 * JSON line with what the signer made of it. tests/unit/sigv4_botocore.py feeds it a table of odd requests and compares
 * every answer byte for byte with botocore's S3SigV4Auth / SigV4Auth. */
#include "digest.h"
#include "sigv4.h"
#include "test.h"

#include "sluice/sluice.h"

#include <jansson.h>
#include <time.h>

#define KEY_ID "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define HOST "examplebucket.s3.amazonaws.com"
#define T_20130524 1369353600 /* 2013-05-24T00:00:00Z */
#define AUTH_CAP 1024

static const sl__sigv4_credentials s_creds = {KEY_ID, SECRET, NULL};

static const char *s_signature(const char *auth) {
    const char *p = strstr(auth, "Signature=");
    return p ? p + strlen("Signature=") : "";
}

/* The general SigV4 documentation's example of a derived signing key. */
static void test_derived_key_example(void) {
    unsigned char key[32];
    ASSERT_INT_EQ(sl__sigv4_derive_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam", key),
                  0);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    ASSERT_STR_EQ(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

static void s_hex32(const unsigned char *d, char out[65]) {
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* HMAC-SHA256 against RFC 4231's test cases 1, 2 and 6 (a short key, a key shorter than the hash, a key longer than a
 * block), and a key's states reused for several messages. */
static void test_hmac_rfc4231(void) {
    unsigned char k1[20], k6[131], out[32];
    memset(k1, 0x0b, sizeof(k1));
    memset(k6, 0xaa, sizeof(k6));
    char hex[65];
    ASSERT_TRUE(sl__hmac_sha256(k1, sizeof(k1), "Hi There", 8, out));
    s_hex32(out, hex);
    ASSERT_STR_EQ(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    ASSERT_TRUE(sl__hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out));
    s_hex32(out, hex);
    ASSERT_STR_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    ASSERT_TRUE(sl__hmac_sha256(k6, sizeof(k6), m6, strlen(m6), out));
    s_hex32(out, hex);
    ASSERT_STR_EQ(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    sl__hmac_key *k = sl__hmac_key_new("Jefe", 4);
    ASSERT_TRUE(k != NULL);
    for (int i = 0; i < 3; i++) {
        ASSERT_TRUE(sl__hmac_key_sign(k, i == 1 ? "Hi There" : "what do ya want for nothing?", i == 1 ? 8 : 28, out));
        s_hex32(out, hex);
        if (i != 1)
            ASSERT_STR_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
    sl__hmac_key_free(k);
    sl__hmac_key_free(NULL);
    ASSERT_FALSE(sl__hmac_key_sign(NULL, "x", 1, out));
}

static void test_s3_get_object_example(void) {
    sl__sigv4_param h[] = {{"Host", HOST}, {"Range", "bytes=0-9"}};
    sl__sigv4_request rq = {.method = "GET",
                            .path = "/test.txt",
                            .headers = h,
                            .header_count = 2,
                            .payload_hash = SL__SIGV4_EMPTY_SHA256,
                            .time_s = T_20130524,
                            .region = "us-east-1",
                            .service = "s3"};
    char auth[AUTH_CAP], cr[2048], sts[512];
    sl__sigv4_debug dbg = {cr, sizeof(cr), sts, sizeof(sts)};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), &dbg), 0);
    ASSERT_STR_EQ(cr, "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
                      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                      "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
                      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ASSERT_STR_EQ(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                       "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    ASSERT_STR_EQ(auth, "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                        "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void test_s3_put_object_example(void) {
    const char *body = "Welcome to Amazon S3.";
    char hash[65];
    ASSERT_INT_EQ(sl__sigv4_sha256_hex(body, strlen(body), hash), 0);
    ASSERT_STR_EQ(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    /* Header order and case as a caller might give them: the signer sorts and lower-cases. */
    sl__sigv4_param h[] = {
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"}, {"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"Host", HOST}};
    /* The key is "test$file.text": given raw, encoded by the signer. */
    sl__sigv4_request rq = {.method = "PUT",
                            .path = "/test$file.text",
                            .headers = h,
                            .header_count = 3,
                            .payload_hash = hash,
                            .time_s = T_20130524,
                            .region = "us-east-1",
                            .service = "s3"};
    char auth[AUTH_CAP], cr[2048], sts[512];
    sl__sigv4_debug dbg = {cr, sizeof(cr), sts, sizeof(sts)};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), &dbg), 0);
    ASSERT_STR_EQ(cr, "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
                      "host:examplebucket.s3.amazonaws.com\n"
                      "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
                      "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
                      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
                      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    ASSERT_STR_EQ(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                       "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
    ASSERT_STR_EQ(auth, "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                        "aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
                        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void test_s3_get_lifecycle_example(void) {
    sl__sigv4_param h[] = {{"host", HOST}};
    sl__sigv4_param q[] = {{"lifecycle", NULL}}; /* "?lifecycle": signed as "lifecycle=" */
    sl__sigv4_request rq = {.method = "GET",
                            .path = "/",
                            .query = q,
                            .query_count = 1,
                            .headers = h,
                            .header_count = 1,
                            .time_s = T_20130524,
                            .region = "us-east-1",
                            .service = "s3"};
    char auth[AUTH_CAP], cr[2048], sts[512];
    sl__sigv4_debug dbg = {cr, sizeof(cr), sts, sizeof(sts)};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), &dbg), 0);
    ASSERT_TRUE(strncmp(cr, "GET\n/\nlifecycle=\nhost:", 22) == 0);
    ASSERT_STR_EQ(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                       "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
    ASSERT_STR_EQ(s_signature(auth), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    ASSERT_TRUE(strstr(auth, ",SignedHeaders=host;x-amz-content-sha256;x-amz-date,") != NULL);
}

static void test_s3_list_objects_example(void) {
    sl__sigv4_param h[] = {{"host", HOST}};
    /* Given out of order: the signer sorts. */
    sl__sigv4_param q[] = {{"prefix", "J"}, {"max-keys", "2"}};
    sl__sigv4_request rq = {.method = "GET",
                            .path = "/",
                            .query = q,
                            .query_count = 2,
                            .headers = h,
                            .header_count = 1,
                            .payload_hash = SL__SIGV4_EMPTY_SHA256,
                            .time_s = T_20130524,
                            .region = "us-east-1",
                            .service = "s3"};
    char auth[AUTH_CAP], cr[2048];
    sl__sigv4_debug dbg = {cr, sizeof(cr), NULL, 0};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), &dbg), 0);
    ASSERT_TRUE(strncmp(cr, "GET\n/\nmax-keys=2&prefix=J\n", 26) == 0);
    ASSERT_STR_EQ(s_signature(auth), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    char qs[256];
    ASSERT_INT_EQ(sl__sigv4_query_string(q, 2, qs, sizeof(qs)), (int)strlen("max-keys=2&prefix=J"));
    ASSERT_STR_EQ(qs, "max-keys=2&prefix=J");
}

/* The S3 reference's example of "Transferring Payload in Multiple Chunks": 66,560 bytes of 'a' in chunks of 64 KiB. */
static void test_s3_streaming_example(void) {
    char decoded[32], length[32];
    snprintf(decoded, sizeof(decoded), "%d", 66560);
    ASSERT_UINT_EQ(sl__sigv4_chunked_length(66560, 65536), 66824);
    snprintf(length, sizeof(length), "%llu", (unsigned long long)sl__sigv4_chunked_length(66560, 65536));
    sl__sigv4_param h[] = {{"Host", "s3.amazonaws.com"},
                           {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                           {"Content-Encoding", "aws-chunked"},
                           {"x-amz-decoded-content-length", decoded},
                           {"Content-Length", length}};
    sl__sigv4_request rq = {.method = "PUT",
                            .path = "/examplebucket/chunkObject.txt",
                            .headers = h,
                            .header_count = 5,
                            .payload_hash = SL__SIGV4_STREAMING_PAYLOAD,
                            .time_s = T_20130524,
                            .region = "us-east-1",
                            .service = "s3"};
    sl__sigv4_key_cache cache = {0};
    char auth[AUTH_CAP], sts[512];
    sl__sigv4_debug dbg = {NULL, 0, sts, sizeof(sts)};
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &s_creds, auth, sizeof(auth), &dbg), 0);
    ASSERT_STR_EQ(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                       "cee3fed04b70f867d036f722359b0b1f2f0e5dc0efadbc082b76c4c60e316455");
    ASSERT_TRUE(strstr(auth, "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                             "x-amz-decoded-content-length;x-amz-storage-class,") != NULL);
    ASSERT_STR_EQ(s_signature(auth), "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");

    static char data[65536];
    memset(data, 'a', sizeof(data));
    const size_t sizes[] = {65536, 1024, 0};
    const char *want[] = {"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                          "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                          "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"};
    char prev[65], sig[65], hash[65];
    snprintf(prev, sizeof(prev), "%s", s_signature(auth));
    for (int i = 0; i < 3; i++) {
        ASSERT_INT_EQ(sl__sigv4_sha256_hex(data, sizes[i], hash), 0);
        ASSERT_INT_EQ(sl__sigv4_chunk_sign(&cache, &rq, &s_creds, prev, hash, sig), 0);
        ASSERT_STR_EQ(sig, want[i]);
        memcpy(prev, sig, sizeof(prev));
    }
    ASSERT_UINT_EQ(cache.derivations, 1);
    ASSERT_INT_EQ(sl__sigv4_chunk_sign(&cache, &rq, &s_creds, "nothex", hash, sig), SL_EINVAL);
    ASSERT_STR_EQ(sig, "");
    ASSERT_UINT_EQ(sl__sigv4_chunked_length(0, 65536), 86);
    ASSERT_UINT_EQ(sl__sigv4_chunked_length(5, 0), 0);
    sl__sigv4_key_cache_wipe(&cache);
}

static void test_encoding(void) {
    char buf[256];
    const char *odd = "a b+c=d&e/f~g_h.i-j%k\xc3\xa9\x01\xff";
    ASSERT_UINT_EQ(sl__sigv4_encode(buf, sizeof(buf), odd, strlen(odd), false),
                   strlen("a%20b%2Bc%3Dd%26e%2Ff~g_h.i-j%25k%C3%A9%01%FF"));
    ASSERT_STR_EQ(buf, "a%20b%2Bc%3Dd%26e%2Ff~g_h.i-j%25k%C3%A9%01%FF");
    sl__sigv4_encode(buf, sizeof(buf), odd, strlen(odd), true);
    ASSERT_STR_EQ(buf, "a%20b%2Bc%3Dd%26e/f~g_h.i-j%25k%C3%A9%01%FF");
    /* A short buffer never ends in half an escape. */
    ASSERT_UINT_EQ(sl__sigv4_encode(buf, 5, "ab c", 4, false), 6);
    ASSERT_STR_EQ(buf, "ab");
    ASSERT_INT_EQ(sl__sigv4_encode_path("/b/k k/./../x//y", buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "/b/k%20k/./../x//y"); /* S3: encoded once, never normalised */
    ASSERT_INT_EQ(sl__sigv4_encode_path("", buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "/");
    ASSERT_INT_EQ(sl__sigv4_encode_path("nokey", buf, sizeof(buf)), SL_EINVAL);
    ASSERT_INT_EQ(sl__sigv4_encode_path("/abc def", buf, 8), SL_ETOOBIG);
    ASSERT_TRUE(strstr(sl_last_error(), "/abc def") != NULL);
}

static void test_query_rules(void) {
    char qs[512];
    /* Repeated keys sort by value; a key that is a prefix of another sorts first (names compare before values, not
     * "name=value" strings: '=' is after '-'); a NULL and an empty value are both "k="; odd bytes are encoded
     * before sorting, so 0x80 sorts with its "%80" form, before letters. */
    sl__sigv4_param q[] = {{"a", "2"}, {"a", "1"},    {"a-b", "x"},           {"uploads", NULL},
                           {"e", ""},  {"\x80", "v"}, {"k ey", "v a+l=u&e~"}, {"~", "\xc3\xa9"}};
    int n = sl__sigv4_query_string(q, 8, qs, sizeof(qs));
    ASSERT_STR_EQ(qs, "%80=v&a=1&a=2&a-b=x&e=&k%20ey=v%20a%2Bl%3Du%26e~&uploads=&~=%C3%A9");
    ASSERT_INT_EQ(n, (int)strlen(qs));
    ASSERT_INT_EQ(sl__sigv4_query_string(q, 0, qs, sizeof(qs)), 0);
    ASSERT_STR_EQ(qs, "");
    ASSERT_INT_EQ(sl__sigv4_query_string(q, 8, qs, 20), SL_ETOOBIG);
    sl__sigv4_param many[SL__SIGV4_MAX_QUERY + 1];
    for (int i = 0; i <= SL__SIGV4_MAX_QUERY; i++)
        many[i] = (sl__sigv4_param){"k", "v"};
    ASSERT_INT_EQ(sl__sigv4_query_string(many, SL__SIGV4_MAX_QUERY + 1, qs, sizeof(qs)), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "query parameters") != NULL);
    sl__sigv4_param noname[] = {{NULL, "v"}};
    ASSERT_INT_EQ(sl__sigv4_query_string(noname, 1, qs, sizeof(qs)), SL_EINVAL);
}

static void test_header_rules(void) {
    /* Trimmed, runs of spaces and tabs collapsed, a repeated name joined with ',' in the order given, names
     * lower-cased and sorted. */
    sl__sigv4_param h[] = {{"X-Amz-Meta-B", "  two   spaces\tand\t\ttabs  "},
                           {"host", "h.example:9000"},
                           {"x-amz-meta-a", "1"},
                           {"X-AMZ-META-A", " 2 "},
                           {"content-md5", "nOB/Pn64/Q8e2PVEDAHZCA=="}};
    sl__sigv4_credentials cr = {"AKID", "secret", "token/+="};
    sl__sigv4_request rq = {.method = "POST",
                            .path = "/b/k",
                            .headers = h,
                            .header_count = 5,
                            .payload_hash = SL__SIGV4_UNSIGNED_PAYLOAD,
                            .time_s = T_20130524,
                            .region = "eu-west-3",
                            .service = "s3"};
    char auth[AUTH_CAP], canon[2048];
    sl__sigv4_debug dbg = {canon, sizeof(canon), NULL, 0};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &cr, auth, sizeof(auth), &dbg), 0);
    ASSERT_STR_EQ(canon, "POST\n/b/k\n\ncontent-md5:nOB/Pn64/Q8e2PVEDAHZCA==\nhost:h.example:9000\n"
                         "x-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20130524T000000Z\n"
                         "x-amz-meta-a:1,2\nx-amz-meta-b:two spaces and tabs\nx-amz-security-token:token/+=\n\n"
                         "content-md5;host;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-b;"
                         "x-amz-security-token\nUNSIGNED-PAYLOAD");
    ASSERT_TRUE(strstr(auth,
                       "Credential=AKID/20130524/eu-west-3/s3/aws4_request,SignedHeaders=content-md5;host;"
                       "x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-b;x-amz-security-token,") != NULL);

    /* The lines to send are exactly the added signed ones. */
    char buf[256];
    const char *lines[SL__SIGV4_AMZ_LINES];
    ASSERT_INT_EQ(sl__sigv4_amz_headers(&rq, &cr, buf, sizeof(buf), lines), 0);
    ASSERT_STR_EQ(lines[0], "x-amz-date: 20130524T000000Z");
    ASSERT_STR_EQ(lines[1], "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    ASSERT_STR_EQ(lines[2], "x-amz-security-token: token/+=");
    ASSERT_TRUE(lines[3] == NULL);
    ASSERT_INT_EQ(sl__sigv4_amz_headers(&rq, &cr, buf, 40, lines), SL_ETOOBIG);
    /* Not S3 (STS): no x-amz-content-sha256 sent or signed; no token: no token line. */
    sl__sigv4_request sts = rq;
    sts.service = "sts";
    sl__sigv4_credentials plain = {"AKID", "secret", ""};
    ASSERT_INT_EQ(sl__sigv4_amz_headers(&sts, &plain, buf, sizeof(buf), lines), 0);
    ASSERT_STR_EQ(lines[0], "x-amz-date: 20130524T000000Z");
    ASSERT_TRUE(lines[1] == NULL);
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &sts, &plain, auth, sizeof(auth), &dbg), 0);
    ASSERT_TRUE(strstr(canon, "x-amz-content-sha256") == NULL);
    ASSERT_TRUE(strstr(auth, "SignedHeaders=content-md5;host;x-amz-date;x-amz-meta-a;x-amz-meta-b,") != NULL);
}

/* The signing time as x-amz-date, against gmtime_r + strftime: the ends of the range, leap days, the century rules
 * (2000 is a leap year, 2100 is not), each second of a day's edges, and a spread over the whole range. */
static void s_check_amz_date(int64_t t) {
    sl__sigv4_request rq = {.method = "GET", .path = "/", .time_s = t, .region = "us-east-1", .service = "s3"};
    char buf[256], want[64];
    const char *lines[SL__SIGV4_AMZ_LINES];
    time_t tt = (time_t)t;
    struct tm tm;
    ASSERT_TRUE(gmtime_r(&tt, &tm) != NULL);
    strftime(want, sizeof(want), "x-amz-date: %Y%m%dT%H%M%SZ", &tm);
    ASSERT_INT_EQ(sl__sigv4_amz_headers(&rq, &s_creds, buf, sizeof(buf), lines), 0);
    ASSERT_STR_EQ(lines[0], want);
}

static void test_amz_date(void) {
    /* 1970's first and last second of a day; 1972-02-29; 2000-02-29 and 03-01; 2100-02-28 and 03-01; 9999-12-31. */
    const int64_t fixed[] = {0,         59,        86399,      86400,      68169599,    68169600,
                             951782399, 951868800, 4107456000, 4107542400, 253402300799};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        s_check_amz_date(fixed[i]);
    for (int64_t t = 951782400 - 2; t < 951782400 + 2; t++)
        s_check_amz_date(t);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        s_check_amz_date((int64_t)(x % 253402300800u));
    }
    sl__sigv4_request late = {.method = "GET", .path = "/", .time_s = 253402300800, .region = "r", .service = "s3"};
    char buf[256];
    const char *lines[SL__SIGV4_AMZ_LINES];
    ASSERT_INT_EQ(sl__sigv4_amz_headers(&late, &s_creds, buf, sizeof(buf), lines), SL_EINVAL);
    late.time_s = -1;
    ASSERT_INT_EQ(sl__sigv4_amz_headers(&late, &s_creds, buf, sizeof(buf), lines), SL_EINVAL);
}

static void test_errors_and_caps(void) {
    char auth[AUTH_CAP];
    sl__sigv4_param h[] = {{"host", HOST}, {"range", "bytes=0-9"}};
    sl__sigv4_request base = {.method = "GET",
                              .path = "/k",
                              .headers = h,
                              .header_count = 2,
                              .time_s = T_20130524,
                              .region = "us-east-1",
                              .service = "s3"};
    sl__sigv4_request rq = base;

    rq.header_count = 0;
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "GET /k: no host header") != NULL);

    sl__sigv4_param dup[] = {{"host", HOST}, {"X-Amz-Date", "20130524T000000Z"}};
    rq = base;
    rq.headers = dup;
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "X-Amz-Date is the signer's to add") != NULL);

    sl__sigv4_param crlf[] = {{"host", HOST}, {"x-amz-meta-a", "a\r\nInjected: yes"}};
    rq = base;
    rq.headers = crlf;
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_EINVAL);
    sl__sigv4_param badname[] = {{"host", HOST}, {"bad name", "v"}};
    rq.headers = badname;
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_EINVAL);

    rq = base;
    rq.payload_hash = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_EINVAL);
    rq = base;
    rq.region = "us east";
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_EINVAL);
    rq = base;
    rq.method = "get";
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_EINVAL);
    rq = base;
    rq.path = "k\nwith newline";
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_EINVAL);
    ASSERT_TRUE(strchr(sl_last_error(), '\n') == NULL);

    /* Credentials: a bad one is named by its key id, never its secret. */
    sl__sigv4_credentials nosecret = {"AKIDX", "", NULL};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &base, &nosecret, auth, sizeof(auth), NULL), SL_EINVAL);
    sl__sigv4_credentials badtoken = {"AKIDX", "s3cr3t-value", "tok en"};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &base, &badtoken, auth, sizeof(auth), NULL), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "AKIDX") != NULL && strstr(sl_last_error(), "s3cr3t") == NULL);

    /* Caps: the Authorization line, each debug buffer, the header count. */
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &base, &s_creds, auth, 100, NULL), SL_ETOOBIG);
    ASSERT_TRUE(strstr(sl_last_error(), "does not fit 100 bytes") != NULL);
    ASSERT_STR_EQ(auth, "");
    char small[64];
    sl__sigv4_debug d1 = {small, sizeof(small), NULL, 0};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &base, &s_creds, auth, sizeof(auth), &d1), SL_ETOOBIG);
    ASSERT_TRUE(strstr(sl_last_error(), "canonical request") != NULL);
    sl__sigv4_debug d2 = {NULL, 0, small, sizeof(small)};
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &base, &s_creds, auth, sizeof(auth), &d2), SL_ETOOBIG);
    sl__sigv4_param hs[SL__SIGV4_MAX_HEADERS + 1];
    for (int i = 0; i <= SL__SIGV4_MAX_HEADERS; i++)
        hs[i] = (sl__sigv4_param){"host", HOST};
    rq = base;
    rq.headers = hs;
    rq.header_count = SL__SIGV4_MAX_HEADERS + 1;
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, sizeof(auth), NULL), SL_ETOOBIG);
    /* A long key and query (1,024-byte names, as S3 allows) sign within the documented caps. */
    char key[1100] = "/", prefix[1025];
    memset(key + 1, '\xe2', 1023);
    key[1024] = '\0';
    memset(prefix, '+', 1024);
    prefix[1024] = '\0';
    sl__sigv4_param q[] = {{"prefix", prefix}, {"start-after", key}, {"list-type", "2"}};
    rq = base;
    rq.path = key;
    rq.query = q;
    rq.query_count = 3;
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, auth, SL__SIGV4_AUTH_CAP(64), NULL), 0);
}

/* SL__SIGV4_AUTH_CAP is enough at the limits: a 128-byte key id, a 63-byte region, a 31-byte service, a token. */
static void test_auth_cap_worst_case(void) {
    char kid[129], region[64], service[32], meta[100];
    memset(kid, 'A', 128);
    kid[128] = '\0';
    memset(region, 'r', 63);
    region[63] = '\0';
    memset(service, 's', 31);
    service[31] = '\0';
    snprintf(meta, sizeof(meta), "x-amz-meta-%0*d", 80, 0);
    sl__sigv4_param h[] = {{"host", HOST}, {meta, "v"}};
    sl__sigv4_credentials cr = {kid, "secret", "token"};
    sl__sigv4_request rq = {.method = "GET",
                            .path = "/k",
                            .headers = h,
                            .header_count = 2,
                            .time_s = T_20130524,
                            .region = region,
                            .service = service};
    size_t names = strlen("host") + 1 + strlen(meta) + 1;
    char auth[SL__SIGV4_AUTH_CAP(92 + 5)];
    ASSERT_UINT_EQ(names, 92 + 5);
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &cr, auth, SL__SIGV4_AUTH_CAP(names), NULL), 0);
    rq.service = "s3"; /* one more added name (x-amz-content-sha256), a shorter service */
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &cr, auth, SL__SIGV4_AUTH_CAP(names), NULL), 0);
    cr.access_key_id = "AKID with space";
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &cr, auth, sizeof(auth), NULL), SL_EINVAL);
}

static void test_key_cache(void) {
    sl__sigv4_key_cache cache = {0};
    sl__sigv4_param h[] = {{"host", HOST}, {"range", "bytes=0-9"}};
    sl__sigv4_request rq = {.method = "GET",
                            .path = "/test.txt",
                            .headers = h,
                            .header_count = 2,
                            .payload_hash = SL__SIGV4_EMPTY_SHA256,
                            .time_s = T_20130524,
                            .region = "us-east-1",
                            .service = "s3"};
    char auth[AUTH_CAP], first[AUTH_CAP];
    for (int i = 0; i < 100; i++) {
        rq.time_s = T_20130524 + i * 600; /* 100 requests over the day's first 16.5 hours */
        ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &s_creds, auth, sizeof(auth), NULL), 0);
        if (i == 0) {
            strcpy(first, auth);
            ASSERT_STR_EQ(s_signature(first), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
        }
    }
    ASSERT_UINT_EQ(cache.derivations, 1);
    /* The same result with and without the cache. */
    char nocache[AUTH_CAP];
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &s_creds, nocache, sizeof(nocache), NULL), 0);
    ASSERT_STR_EQ(nocache, auth);
    rq.time_s = T_20130524 + 86400; /* the next day */
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &s_creds, auth, sizeof(auth), NULL), 0);
    ASSERT_UINT_EQ(cache.derivations, 2);
    sl__sigv4_credentials rotated = {KEY_ID, "another-secret", "tok"};
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &rotated, auth, sizeof(auth), NULL), 0);
    ASSERT_UINT_EQ(cache.derivations, 3);
    /* The secret is compared whole: one of the same length differing in its last byte, then a prefix of it. */
    sl__sigv4_credentials last_byte = {KEY_ID, "another-secreu", NULL}, prefix = {KEY_ID, "another-secre", NULL};
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &last_byte, auth, sizeof(auth), NULL), 0);
    ASSERT_UINT_EQ(cache.derivations, 4);
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &prefix, auth, sizeof(auth), NULL), 0);
    ASSERT_UINT_EQ(cache.derivations, 5);
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &prefix, nocache, sizeof(nocache), NULL), 0);
    ASSERT_STR_EQ(nocache, auth);
    /* The longest secret the signer takes (256 bytes) is kept like any other. */
    char longest[257];
    memset(longest, 'k', 256);
    longest[256] = '\0';
    sl__sigv4_credentials long_secret = {KEY_ID, longest, NULL};
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &long_secret, auth, sizeof(auth), NULL), 0);
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &long_secret, auth, sizeof(auth), NULL), 0);
    ASSERT_UINT_EQ(cache.derivations, 6);
    ASSERT_INT_EQ(sl__sigv4_sign(NULL, &rq, &long_secret, nocache, sizeof(nocache), NULL), 0);
    ASSERT_STR_EQ(nocache, auth);
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &rotated, auth, sizeof(auth), NULL), 0);
    ASSERT_UINT_EQ(cache.derivations, 7);
    rq.region = "eu-central-1";
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &rotated, auth, sizeof(auth), NULL), 0);
    ASSERT_UINT_EQ(cache.derivations, 8);
    rq.time_s = T_20130524;
    rq.region = "us-east-1";
    ASSERT_INT_EQ(sl__sigv4_sign(&cache, &rq, &s_creds, auth, sizeof(auth), NULL), 0);
    ASSERT_STR_EQ(auth, first);
    ASSERT_UINT_EQ(cache.derivations, 9);
    sl__sigv4_key_cache_wipe(&cache);
    ASSERT_FALSE(cache.valid);
}

/* ---- --sign: one JSON request per line in, one JSON answer per line out ---------------------------------------- */

/* Bytes that are not UTF-8 (JSON cannot carry them) come as {"hex": "..."}, decoded into this line's pool. */
static char s_pool[65536];
static size_t s_pool_len;

static const char *s_bytes(json_t *v) {
    if (!json_is_object(v))
        return json_string_value(v);
    const char *hex = json_string_value(json_object_get(v, "hex"));
    size_t n = hex ? strlen(hex) / 2 : 0;
    if (!hex || s_pool_len + n + 1 > sizeof(s_pool))
        return NULL;
    char *out = s_pool + s_pool_len;
    for (size_t i = 0; i < n; i++) {
        unsigned int b = 0;
        sscanf(hex + 2 * i, "%2x", &b);
        out[i] = (char)b;
    }
    out[n] = '\0';
    s_pool_len += n + 1;
    return out;
}

static size_t s_pairs(json_t *arr, sl__sigv4_param *out, size_t max) {
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (n == max)
            break;
        json_t *val = json_array_get(v, 1);
        out[n].name = s_bytes(json_array_get(v, 0));
        out[n].value = json_is_null(val) ? NULL : s_bytes(val);
        n++;
    }
    return n;
}

static int s_sign_mode(void) {
    char line[65536];
    while (fgets(line, sizeof(line), stdin)) {
        json_error_t jerr;
        json_t *in = json_loads(line, 0, &jerr);
        if (!in) {
            fprintf(stderr, "--sign: bad JSON: %s\n", jerr.text);
            return 2;
        }
        sl__sigv4_param q[SL__SIGV4_MAX_QUERY + 1], h[SL__SIGV4_MAX_HEADERS + 1];
        s_pool_len = 0;
        sl__sigv4_request rq = {
            .method = json_string_value(json_object_get(in, "method")),
            .path = s_bytes(json_object_get(in, "path")),
            .query = q,
            .query_count = s_pairs(json_object_get(in, "query"), q, SL__SIGV4_MAX_QUERY + 1),
            .headers = h,
            .header_count = s_pairs(json_object_get(in, "headers"), h, SL__SIGV4_MAX_HEADERS + 1),
            .payload_hash = json_string_value(json_object_get(in, "payload_hash")),
            .time_s = (int64_t)json_integer_value(json_object_get(in, "time")),
            .region = json_string_value(json_object_get(in, "region")),
            .service = json_string_value(json_object_get(in, "service")),
        };
        sl__sigv4_credentials cr = {json_string_value(json_object_get(in, "key")),
                                    json_string_value(json_object_get(in, "secret")),
                                    json_string_value(json_object_get(in, "token"))};
        static char auth[8192], canon[65536], sts[512], qs[SL__SIGV4_QUERY_CAP], path[16384], amz[8192];
        sl__sigv4_debug dbg = {canon, sizeof(canon), sts, sizeof(sts)};
        const char *lines[SL__SIGV4_AMZ_LINES];
        json_t *out;
        int rc = sl__sigv4_sign(NULL, &rq, &cr, auth, sizeof(auth), &dbg);
        if (rc == 0)
            rc = sl__sigv4_query_string(rq.query, rq.query_count, qs, sizeof(qs)) < 0 ? -1 : 0;
        if (rc == 0)
            rc = sl__sigv4_encode_path(rq.path, path, sizeof(path));
        if (rc == 0)
            rc = sl__sigv4_amz_headers(&rq, &cr, amz, sizeof(amz), lines);
        if (rc < 0) {
            out = json_pack("{s:s}", "error", sl_last_error());
        } else {
            json_t *l = json_array();
            for (int i = 0; lines[i]; i++)
                json_array_append_new(l, json_string(lines[i]));
            out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "authorization", auth, "canonical_request", canon,
                            "string_to_sign", sts, "query_string", qs, "path", path, "amz_headers", l);
        }
        char *s = json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII);
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(out);
        json_decref(in);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--sign") == 0)
        return s_sign_mode();
    RUN_TEST(test_hmac_rfc4231);
    RUN_TEST(test_derived_key_example);
    RUN_TEST(test_s3_get_object_example);
    RUN_TEST(test_s3_put_object_example);
    RUN_TEST(test_s3_get_lifecycle_example);
    RUN_TEST(test_s3_list_objects_example);
    RUN_TEST(test_s3_streaming_example);
    RUN_TEST(test_encoding);
    RUN_TEST(test_query_rules);
    RUN_TEST(test_header_rules);
    RUN_TEST(test_errors_and_caps);
    RUN_TEST(test_auth_cap_worst_case);
    RUN_TEST(test_key_cache);
    RUN_TEST(test_amz_date);
    TEST_DONE();
}
