/* S3's XML answers (sl__s3_xml_*) and the bodies sent (sl__s3_complete_*, sl__s3_delete_*): the answers in the shapes
 * of the Amazon S3 API reference, each fed whole and in every chunk size from 1 byte up with the same outcome; what
 * fails an answer and with which message; the caps; DOCTYPE and entity attacks; encoding-type=url keys; dates, ETags
 * and checksums; error messages, their secret filter and classes; and the bodies, read back with expat. The same
 * functions tests/fuzz feeds random input to. */
#include "http.h"
#include "s3_xml.h"
#include "sluice/sluice.h"
#include "test.h"

#include <arpa/inet.h>
#include <expat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""
#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

static sl__s3_xml *s_x; /* one parser for every test, as a client keeps one */

/* Appends printf text to a digest. */
static void put(char *d, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(char *d, size_t cap, const char *fmt, ...) {
    size_t n = strlen(d);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d + n, cap - n, fmt, ap);
    va_end(ap);
}

static int digest_deleted(void *ud, const sl__s3_deleted *o) {
    char *d = ud;
    char key[256];
    sl_text_escape(key, sizeof(key), o->key, o->key_len);
    put(d, 65536, "del[%s|%s|%s];", key, o->code ? o->code : "-", o->message ? o->message : "-");
    return 0;
}

/* Everything the parser says about the answer it ended with rc, as one string. */
static void digest(sl__s3_xml *x, int rc, char *d, size_t cap) {
    d[0] = '\0';
    put(d, cap, "rc=%s;", sl_err_name(rc));
    if (rc) {
        put(d, cap, "msg=%s;", sl_last_error());
        return;
    }
    put(d, cap, "root=%s;", sl__s3_doc_name(sl__s3_xml_root(x)));
    const sl__s3_error *e = sl__s3_xml_error(x);
    if (sl__s3_xml_root(x) == SL__S3_DOC_ERROR)
        put(d, cap, "err[%s|%s|%s|%s|%s|%s|%s|%d];", e->code, e->message, e->resource, e->request_id, e->region,
            e->endpoint, e->bucket, e->message_cut);
    const sl__s3_result *r = sl__s3_xml_result(x);
    put(d, cap, "res[%s|%s|%d|%d|%08x|%u|%lld|%s];", r->upload_id, r->etag, r->etag_md5, r->has_crc32c,
        (unsigned)r->crc32c, r->crc32c_parts, (long long)r->mtime_ns, r->region);
    put(d, cap, "list[%d|%s|%lld|%d];", sl__s3_xml_list_truncated(x),
        sl__s3_xml_list_token(x) ? sl__s3_xml_list_token(x) : "-", (long long)sl__s3_xml_list_key_count(x),
        sl__s3_xml_list_url_encoded(x));
    const char *name;
    size_t name_len;
    sl_object o;
    sl__s3_entry info;
    while (sl__s3_xml_list_next(x, &name, &name_len, &o, &info) == 1) {
        char shown[256];
        if (strlen(name) != name_len)
            TEST_FAIL_("name length %zu for %s", name_len, name);
        sl_text_escape(shown, sizeof(shown), name, name_len);
        if (o.is_prefix) {
            put(d, cap, "pfx[%s];", shown);
            continue;
        }
        char md5[33] = "-";
        for (int i = 0; o.has_md5 && i < 16; i++)
            snprintf(md5 + 2 * i, 3, "%02x", o.md5[i]);
        put(d, cap, "obj[%s|%llu|%lld|%s|%s|%s|%x];", shown, (unsigned long long)o.size, (long long)o.mtime_ns, md5,
            info.etag, info.storage_class, info.checksums);
    }
    sl__s3_xml_deleted_each(x, digest_deleted, d);
    sl__s3_part_info p;
    while (sl__s3_xml_part_next(x, &p) == 1)
        put(d, cap, "part[%u|%llu|%s|%d|%08x];", p.number, (unsigned long long)p.size, p.etag, p.has_crc32c,
            (unsigned)p.crc32c);
    if (sl__s3_xml_root(x) == SL__S3_DOC_PARTS)
        put(d, cap, "parts[%d|%u];", sl__s3_xml_parts_truncated(x), sl__s3_xml_parts_next_marker(x));
}

/* Parses body fed in chunks of `chunk` bytes (0: whole) and digests the outcome. */
static int run(sl__s3_doc expect, const char *body, size_t len, size_t chunk, char *d, size_t cap) {
    int rc = sl__s3_xml_begin(s_x, expect, "s3://bkt/p/");
    for (size_t at = 0; !rc && at < len; at += chunk ? chunk : len) {
        size_t n = chunk && len - at > chunk ? chunk : len - at;
        rc = sl__s3_xml_feed(s_x, body + at, n);
    }
    if (!rc)
        rc = sl__s3_xml_end(s_x);
    digest(s_x, rc, d, cap);
    return rc;
}

/* The outcome of body, checked to be the same fed whole and fed in every chunk size from 1 byte up (up to 300, then
 * a few larger ones). */
static const char *outcome_(int line, sl__s3_doc expect, const char *body, size_t len) {
    static char whole[65536];
    static char part[65536];
    run(expect, body, len, 0, whole, sizeof(whole));
    for (size_t chunk = 1; chunk <= len; chunk = chunk < 300 ? chunk + 1 : chunk * 2) {
        run(expect, body, len, chunk, part, sizeof(part));
        if (strcmp(whole, part) != 0)
            TEST_FAIL_("line %d: fed in chunks of %zu bytes:\n  %s\nwhole:\n  %s", line, chunk, part, whole);
    }
    s_test_checks++;
    return whole;
}
#define outcome(expect, body) outcome_(__LINE__, expect, body, strlen(body))

#define EXPECT(expect, body, want)                                                                                     \
    do {                                                                                                               \
        const char *got_ = outcome(expect, body);                                                                      \
        if (strcmp(got_, want) != 0)                                                                                   \
            TEST_FAIL_("outcome\n  %s\nwant\n  %s", got_, want);                                                       \
    } while (0)

/* The answer fails with `err` and a message holding `part`, fed whole or in chunks. */
#define REFUSED(expect, body, err, part)                                                                               \
    do {                                                                                                               \
        const char *got_ = outcome(expect, body);                                                                      \
        char want_[64];                                                                                                \
        snprintf(want_, sizeof(want_), "rc=%s;", sl_err_name(err));                                                    \
        if (strncmp(got_, want_, strlen(want_)) != 0 || !strstr(got_, part) || !strstr(got_, "msg=s3://bkt/p/: "))     \
            TEST_FAIL_("outcome\n  %s\nwant %s with \"%s\"", got_, want_, part);                                       \
    } while (0)

#define RES0 "res[||0|0|00000000|0|0|];"
#define LIST0 "list[0|-|-1|0];"

static void test_list_documented(void) {
    /* ListObjectsV2's examples: keys only, then a page cut short with a continuation token. ETags come quoted, as
     * `"` or `&quot;`. */
    EXPECT(SL__S3_DOC_LIST,
           DECL
           "<ListBucketResult " NS ">\n    <Name>bucket</Name>\n    <Prefix/>\n    <KeyCount>205</KeyCount>\n"
           "    <MaxKeys>1000</MaxKeys>\n    <IsTruncated>false</IsTruncated>\n    <Contents>\n"
           "        <Key>my-image.jpg</Key>\n        <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
           "        <ETag>\"fba9dede5f27731c9771645a39863328\"</ETag>\n        <Size>434234</Size>\n"
           "        <StorageClass>STANDARD</StorageClass>\n    </Contents>\n    <Contents>\n"
           "        <Key>my-third-image.jpg</Key>\n        <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
           "        <ETag>&quot;1b2cf535f27731c974343645a3985328&quot;</ETag>\n        <Size>64994</Size>\n"
           "        <StorageClass>STANDARD_IA</StorageClass>\n        <ChecksumAlgorithm>CRC32C</ChecksumAlgorithm>\n"
           "    </Contents>\n</ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 "list[0|-|205|0];"
           "obj[my-image.jpg|434234|1255369830000000000|fba9dede5f27731c9771645a39863328|"
           "fba9dede5f27731c9771645a39863328|STANDARD|0];"
           "obj[my-third-image.jpg|64994|1255369830000000000|1b2cf535f27731c974343645a3985328|"
           "1b2cf535f27731c974343645a3985328|STANDARD_IA|2];");
    EXPECT(SL__S3_DOC_LIST,
           "<ListBucketResult " NS "><Name>bucket</Name><Prefix></Prefix>"
           "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
           "<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
           "<Contents><Key>happyface.jpg</Key><LastModified>2014-11-21T19:40:05.000Z</LastModified>"
           "<ETag>\"70ee1738b6b21e2c8a43f3a5ab0eee71\"</ETag><Size>11</Size><StorageClass>STANDARD</StorageClass>"
           "</Contents><Contents><Key>photos/big.bin</Key><LastModified>2014-11-21T19:40:05.123Z</LastModified>"
           "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag><Size>80000000</Size>"
           "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumAlgorithm>SHA256</ChecksumAlgorithm>"
           "<ChecksumAlgorithm>MD7</ChecksumAlgorithm><Owner><ID>x</ID><DisplayName>d</DisplayName></Owner>"
           "<StorageClass>GLACIER</StorageClass></Contents></ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 "list[1|1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=|2|0];"
           "obj[happyface.jpg|11|1416598805000000000|70ee1738b6b21e2c8a43f3a5ab0eee71|70ee1738b6b21e2c8a43f3a5ab0eee71|"
           "STANDARD|0];"
           "obj[photos/big.bin|80000000|1416598805123000000|-|3858f62230ac3c915f300c664312c11f-9|GLACIER|89];");
    /* The example with a delimiter: CommonPrefixes and Contents come as two sorted lists, merged in byte order
     * ('B' < 'a', and 'é' after 'z'). */
    EXPECT(SL__S3_DOC_LIST,
           "<ListBucketResult " NS "><Name>example-bucket</Name><Prefix>photos/2006/</Prefix><KeyCount>5</KeyCount>"
           "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>"
           "<Contents><Key>photos/2006/B</Key><Size>0</Size></Contents>"
           "<Contents><Key>photos/2006/index.html</Key><Size>1</Size></Contents>"
           "<Contents><Key>photos/2006/z</Key><Size>2</Size></Contents>"
           "<CommonPrefixes><Prefix>photos/2006/February/</Prefix></CommonPrefixes>"
           "<CommonPrefixes><Prefix>photos/2006/January/</Prefix></CommonPrefixes>"
           "<CommonPrefixes><Prefix>photos/2006/index.html/</Prefix></CommonPrefixes>"
           "<CommonPrefixes><Prefix>photos/2006/\xc3\xa9t\xc3\xa9/</Prefix></CommonPrefixes>"
           "</ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 "list[0|-|5|0];"
           "obj[photos/2006/B|0|0|-|||0];pfx[photos/2006/February/];pfx[photos/2006/January/];"
           "obj[photos/2006/index.html|1|0|-|||0];pfx[photos/2006/index.html/];obj[photos/2006/z|2|0|-|||0];"
           "pfx[photos/2006/\xc3\xa9t\xc3\xa9/];");
    /* An empty bucket; the page ends where it ends. */
    EXPECT(SL__S3_DOC_LIST, "<ListBucketResult " NS "><Name>b</Name><KeyCount>0</KeyCount></ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 "list[0|-|0|0];");
    /* Not every field of an entry is sent by every server: only Key and Size are needed. */
    EXPECT(SL__S3_DOC_LIST, "<ListBucketResult><Contents><Size>5</Size><Key>k</Key></Contents></ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 LIST0 "obj[k|5|0|-|||0];");
    /* A listing's ETag only informs: one that is no ETag is dropped, not a reason to stop the listing. */
    EXPECT(SL__S3_DOC_LIST,
           "<ListBucketResult><Contents><Key>k</Key><Size>5</Size><ETag>a b</ETag></Contents></ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 LIST0 "obj[k|5|0|-|||0];");
}

static void test_list_url_encoding(void) {
    /* With <EncodingType>url</EncodingType>, wherever it comes, Key and Prefix are decoded: %XX is a byte, '+' a
     * space. Control characters (which XML 1.0 cannot carry) survive that way. */
    EXPECT(SL__S3_DOC_LIST,
           "<ListBucketResult " NS "><Name>b</Name><Prefix>p%2F</Prefix><Delimiter>%2F</Delimiter>"
           "<Contents><Key>p/a+b%2Bc</Key><Size>1</Size></Contents>"
           "<Contents><Key>p/line%0Abreak%01%7F</Key><Size>2</Size></Contents>"
           "<Contents><Key>p/%C3%A9t%C3%a9</Key><Size>3</Size></Contents>"
           "<CommonPrefixes><Prefix>p/d%20ir/</Prefix></CommonPrefixes>"
           "<EncodingType>url</EncodingType></ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 "list[0|-|-1|1];"
           "obj[p/a b+c|1|0|-|||0];pfx[p/d ir/];obj[p/line\\nbreak\\x01\\x7f|2|0|-|||0];"
           "obj[p/\xc3\xa9t\xc3\xa9|3|0|-|||0];");
    ASSERT_STR_EQ(sl__s3_xml_list_echo(s_x, SL__S3_ECHO_PREFIX), "p/");
    ASSERT_STR_EQ(sl__s3_xml_list_echo(s_x, SL__S3_ECHO_DELIMITER), "/");
    ASSERT_TRUE(sl__s3_xml_list_echo(s_x, SL__S3_ECHO_START_AFTER) == NULL);
    /* Without it, the same text is the key itself. */
    EXPECT(SL__S3_DOC_LIST,
           "<ListBucketResult><Contents><Key>p/a+b%2Bc%zz</Key><Size>1</Size></Contents></ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 LIST0 "obj[p/a+b%2Bc%zz|1|0|-|||0];");
    /* A key that does not decode, or decodes to no key, fails the page, quoting it. */
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%zzb</Key><Size>1</Size></Contents>"
            "</ListBucketResult>",
            SL_ECORRUPT, "the listing's key 'a%zzb' has a '%' without two hex digits after it");
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><Contents><Key>ab%4</Key><Size>1</Size></Contents><EncodingType>url</EncodingType>"
            "</ListBucketResult>",
            SL_ECORRUPT, "the listing's key 'ab%4' has a '%' without two hex digits");
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>ab%</Key><Size>1</Size></Contents>"
            "</ListBucketResult>",
            SL_ECORRUPT, "'ab%' has a '%' without");
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%00b</Key><Size>1</Size></Contents>"
            "</ListBucketResult>",
            SL_ECORRUPT, "the listing's key 'a%00b' decodes to a NUL byte");
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%C3</Key><Size>1</Size></Contents>"
            "</ListBucketResult>",
            SL_ECORRUPT, "the listing's key 'a%C3' decodes to text that is not UTF-8");
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>%ED%A0%80</Key><Size>1</Size>"
            "</Contents></ListBucketResult>",
            SL_ECORRUPT, "decodes to text that is not UTF-8"); /* a surrogate */
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><EncodingType>url</EncodingType><CommonPrefixes><Prefix>%FF/</Prefix></CommonPrefixes>"
            "</ListBucketResult>",
            SL_ECORRUPT, "the listing's prefix '%FF/' decodes to text that is not UTF-8");
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><EncodingType>url</EncodingType><StartAfter>%0</StartAfter></ListBucketResult>",
            SL_ECORRUPT, "the listing's StartAfter '%0' has a '%'");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><EncodingType>base64</EncodingType></ListBucketResult>", SL_ECORRUPT,
            "EncodingType is 'base64': only url is known");
}

/* A listing of one key: `raw` as Key, with EncodingType url when `url`. */
static int list_one(const char *raw, bool url) {
    static char body[20000];
    snprintf(body, sizeof(body),
             "<ListBucketResult>%s<Contents><Key>%s</Key><Size>1</Size></Contents>"
             "</ListBucketResult>",
             url ? "<EncodingType>url</EncodingType>" : "", raw);
    return sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", body, strlen(body));
}

static void test_list_key_caps(void) {
    /* A key of SL__S3_KEY_MAX bytes once decoded is kept whole, however long its encoded form; one more byte fails
     * with SL_ENAMETOOLONG. */
    static char raw[3 * 4096 + 100];
    const char *name;
    size_t name_len;
    sl_object o;
    memset(raw, 'k', 4096);
    raw[4096] = '\0';
    ASSERT_INT_EQ(list_one(raw, false), 0);
    ASSERT_INT_EQ(sl__s3_xml_list_next(s_x, &name, &name_len, &o, NULL), 1);
    ASSERT_UINT_EQ(name_len, 4096);
    raw[4096] = 'k', raw[4097] = '\0';
    ASSERT_INT_EQ(list_one(raw, false), SL_ENAMETOOLONG);
    ASSERT_TRUE(strstr(sl_last_error(), "s3://bkt/p/: the listing's key 'kkkk") &&
                strstr(sl_last_error(), "...' is longer than 4096 bytes"));
    for (int i = 0; i < 4096; i++)
        memcpy(raw + 3 * i, "%C3", 3), raw[3 * i + 1] = i % 2 ? 'A' : 'C', raw[3 * i + 2] = i % 2 ? '9' : '3';
    raw[3 * 4096] = '\0';
    ASSERT_INT_EQ(list_one(raw, true), 0);
    ASSERT_INT_EQ(sl__s3_xml_list_next(s_x, &name, &name_len, &o, NULL), 1);
    ASSERT_UINT_EQ(name_len, 4096);
    ASSERT_MEM_EQ(name, "\xc3\xa9\xc3\xa9", 4);
    memcpy(raw + 3 * 4096, "%41", 4);
    ASSERT_INT_EQ(list_one(raw, true), SL_ENAMETOOLONG);
    ASSERT_TRUE(strstr(sl_last_error(), "is longer than 4096 bytes") != NULL);
    /* Encoded text too long to be any key fails as it arrives, before the page is whole. */
    memset(raw, 'k', sizeof(raw) - 1);
    raw[sizeof(raw) - 1] = '\0';
    ASSERT_INT_EQ(list_one(raw, true), SL_ENAMETOOLONG);
    ASSERT_TRUE(strstr(sl_last_error(), "<Key> longer than") != NULL);
}

/* A listing of n entries: "k0000"... objects; `prefixes` makes every other one a CommonPrefixes. */
static char *list_n(size_t n, bool prefixes) {
    char *body = malloc(64 + n * 80);
    size_t at = (size_t)sprintf(body, "<ListBucketResult><KeyCount>%zu</KeyCount>", n);
    for (size_t i = 0; i < n; i++)
        at += (size_t)(prefixes && i % 2
                           ? sprintf(body + at, "<CommonPrefixes><Prefix>k%05zu/</Prefix></CommonPrefixes>", i)
                           : sprintf(body + at, "<Contents><Key>k%05zu</Key><Size>%zu</Size></Contents>", i, i));
    strcpy(body + at, "</ListBucketResult>");
    return body;
}

static void test_list_page_caps(void) {
    /* 1,000 entries (Contents and CommonPrefixes count together, as S3's MaxKeys does) make a page; 1,001 do not. */
    char *body = list_n(1000, true);
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", body, strlen(body)), 0);
    const char *name;
    size_t name_len, n = 0;
    sl_object o;
    while (sl__s3_xml_list_next(s_x, &name, &name_len, &o, NULL) == 1) {
        char want[16];
        snprintf(want, sizeof(want), n % 2 ? "k%05zu/" : "k%05zu", n);
        ASSERT_STR_EQ(name, want);
        ASSERT_TRUE(o.is_prefix == (n % 2 == 1));
        ASSERT_UINT_EQ(o.size, n % 2 ? 0 : n);
        n++;
    }
    ASSERT_UINT_EQ(n, 1000);
    ASSERT_INT_EQ(sl__s3_xml_list_next(s_x, &name, &name_len, &o, NULL), 0); /* the end stays the end */
    free(body);
    body = list_n(1001, false);
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", body, strlen(body)), SL_ETOOBIG);
    ASSERT_STR_EQ(sl_last_error(), "s3://bkt/p/: the answer has more than 1000 entries");
    ASSERT_INT_EQ(sl__s3_xml_list_next(s_x, &name, &name_len, &o, NULL), 0); /* nothing of a failed page */
    free(body);
    /* The entries' text has a cap too: 1,000 keys of 4,096 bytes, each percent-encoded in full (12 MiB), exceed it
     * and fail with SL_ETOOBIG rather than growing the parser further. */
    static char key[3 * 4096 + 1];
    for (int i = 0; i < 4096; i++)
        memcpy(key + 3 * i, "%41", 3);
    ASSERT_INT_EQ(sl__s3_xml_begin(s_x, SL__S3_DOC_LIST, "s3://bkt/p/"), 0);
    const char *head = "<ListBucketResult><EncodingType>url</EncodingType>";
    int rc = sl__s3_xml_feed(s_x, head, strlen(head));
    size_t i;
    for (i = 0; i < 1000 && rc == 0; i++) {
        rc = sl__s3_xml_feed(s_x, "<Contents><Key>", 15);
        if (!rc)
            rc = sl__s3_xml_feed(s_x, key, strlen(key));
        if (!rc)
            rc = sl__s3_xml_feed(s_x, "</Key><Size>1</Size></Contents>", 31);
    }
    ASSERT_INT_EQ(rc, SL_ETOOBIG);
    ASSERT_TRUE(i > 600 && i < 1000);
    ASSERT_TRUE(strstr(sl_last_error(), "ask for fewer keys a page") != NULL);
    ASSERT_INT_EQ(sl__s3_xml_feed(s_x, "x", 1), SL_ETOOBIG); /* a failed answer stays failed */
    ASSERT_INT_EQ(sl__s3_xml_end(s_x), SL_ETOOBIG);
    ASSERT_UINT_EQ(sl__s3_xml_write(s_x, "x", 1), 0); /* and stops the transfer */
}

static void test_list_refused(void) {
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>", SL_ECORRUPT,
            "a <Contents> without a <Key>");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><Contents><Key>k\x01</Key></Contents></ListBucketResult>", SL_ECORRUPT,
            "not valid XML");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><Contents><Key>a&amp;b</Key></Contents></ListBucketResult>",
            SL_ECORRUPT, "'a&b' comes without a <Size>");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><CommonPrefixes></CommonPrefixes></ListBucketResult>", SL_ECORRUPT,
            "a <CommonPrefixes> without a <Prefix>");
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents></ListBucketResult>",
            SL_ECORRUPT, "the answer has two <Key> in one <entry>");
    REFUSED(SL__S3_DOC_LIST,
            "<ListBucketResult><IsTruncated>true</IsTruncated><IsTruncated>false</IsTruncated>"
            "</ListBucketResult>",
            SL_ECORRUPT, "two <IsTruncated> in one <ListBucketResult>");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>", SL_ECORRUPT,
            "IsTruncated is 'yes', not true or false");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><KeyCount>-1</KeyCount></ListBucketResult>", SL_ECORRUPT,
            "KeyCount is '-1', not a count");
    static const char *const sizes[] = {"-1", "+1", "1.5", "1e3", "", "18446744073709551616", "0x10", "1 2"};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "<ListBucketResult><Contents><Key>k</Key><Size>%s</Size></Contents>"
                 "</ListBucketResult>",
                 sizes[i]);
        ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", body, strlen(body)), SL_ECORRUPT);
        ASSERT_TRUE(strstr(sl_last_error(), "not a size") != NULL);
    }
    EXPECT(SL__S3_DOC_LIST,
           "<ListBucketResult><Contents><Key>k</Key><Size> 18446744073709551615\n</Size></Contents></ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 LIST0 "obj[k|18446744073709551615|0|-|||0];");
    /* Mixed content in a field, or a token past its cap. */
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><Contents><Key>a<b/>c</Key></Contents></ListBucketResult>", SL_ECORRUPT,
            "<b> inside <Key>");
    /* A field over its cap is quoted from its start, however the chunks came. */
    static char body[8000];
    snprintf(body, sizeof(body),
             "<ListBucketResult><NextContinuationToken>%05000d</NextContinuationToken>"
             "</ListBucketResult>",
             7);
    REFUSED(SL__S3_DOC_LIST, body, SL_ECORRUPT, "<NextContinuationToken> longer than 4096 bytes: '000000000");
    snprintf(body, sizeof(body), "<CopyObjectResult><ETag>\"%0300d\"</ETag></CopyObjectResult>", 7);
    REFUSED(SL__S3_DOC_COPY_OBJECT, body, SL_ECORRUPT, "<ETag> longer than 194 bytes: '\"000000000");
}

static void test_malformed(void) {
    /* Whatever expat refuses, with its reason and where. */
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><Contents></ListBucketResult>", SL_ECORRUPT,
            "the answer is not valid XML: mismatched tag (at byte 30)");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult></ListBucketResult><x/>", SL_ECORRUPT,
            "not valid XML: junk after document element");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><Name>&lol;</Name></ListBucketResult>", SL_ECORRUPT,
            "not valid XML: undefined entity");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><Name>&#0;</Name></ListBucketResult>", SL_ECORRUPT,
            "reference to invalid character number");
    REFUSED(SL__S3_DOC_LIST, "<ListBucketResult><Name>\xff</Name></ListBucketResult>", SL_ECORRUPT,
            "not well-formed (invalid token)");
    /* Another encoding than UTF-8 is read as UTF-8 all the same, whatever the declaration says. */
    REFUSED(SL__S3_DOC_LIST,
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><ListBucketResult><Contents><Key>\xe9</Key><Size>1</Size>"
            "</Contents></ListBucketResult>",
            SL_ECORRUPT, "not well-formed");
    REFUSED(SL__S3_DOC_LIST, "", SL_ECORRUPT, "the answer is empty (expected <ListBucketResult>)");
    REFUSED(SL__S3_DOC_LIST, " \r\n\t ", SL_ECORRUPT, "the answer is empty");
    REFUSED(SL__S3_DOC_LIST, "not xml", SL_ECORRUPT, "not valid XML: syntax error (at byte 0)");
    REFUSED(SL__S3_DOC_LIST, "\n\n  <ListBucketResult>", SL_ECORRUPT, "not valid XML: no element found (at byte 22)");
    REFUSED(SL__S3_DOC_LIST, "<ListResult/>", SL_ECORRUPT,
            "expected <ListBucketResult>, the server answered <ListResult>");
    REFUSED(SL__S3_DOC_COMPLETE, "<InitiateMultipartUploadResult/>", SL_ECORRUPT,
            "expected <CompleteMultipartUploadResult>, the server answered <InitiateMultipartUploadResult>");
    /* Nesting is bounded. */
    char deep[1024] = "<ListBucketResult>", *p = deep + strlen(deep);
    for (int i = 0; i < 16; i++)
        p += sprintf(p, "<a>");
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", deep, strlen(deep)), SL_ECORRUPT);
    ASSERT_STR_EQ(sl_last_error(), "s3://bkt/p/: elements nested more than 16 deep");
    /* Every beginning of a valid answer, and nothing more, is an answer that ends early. */
    const char *whole = "<?xml version=\"1.0\"?><ListBucketResult><Contents><Key>k</Key><Size>1</Size></Contents>"
                        "</ListBucketResult>";
    for (size_t n = 1; n < strlen(whole); n++) {
        int rc = sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", whole, n);
        if (rc != SL_ECORRUPT)
            TEST_FAIL_("%zu bytes of %s: %s", n, whole, sl_err_name(rc));
    }
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", whole, strlen(whole)), 0);
    /* The parser is reused after a failure, and ends each answer once. */
    ASSERT_INT_EQ(sl__s3_xml_end(s_x), SL_EINVAL);
}

static void test_entity_attacks(void) {
    /* The expat in use limits entity amplification (and would be refused otherwise) ... */
    bool limited = false;
    for (const XML_Feature *f = XML_GetFeatureList(); f->feature != XML_FEATURE_END; f++)
        limited = limited || f->feature == XML_FEATURE_BILLION_LAUGHS_ATTACK_PROTECTION_MAXIMUM_AMPLIFICATION_DEFAULT;
    ASSERT_TRUE(limited);
    /* ... and no entity is declared at all: a DOCTYPE is refused as it starts. */
    const char *laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
                         " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                         " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
                         " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                         " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
                         " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
                         " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
                         " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
                         " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
                         " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
                         "]>\n<Error><Code>&lol9;</Code></Error>";
    REFUSED(SL__S3_DOC_ERROR, laughs, SL_ECORRUPT,
            "the answer has a DOCTYPE, which S3 never sends (entity declarations are refused)");
    REFUSED(SL__S3_DOC_ERROR, "<!DOCTYPE Error SYSTEM \"file:///etc/passwd\"><Error><Code>&xxe;</Code></Error>",
            SL_ECORRUPT, "has a DOCTYPE");
    REFUSED(SL__S3_DOC_LIST, "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://127.0.0.1:1/x\"> %p;]><ListBucketResult/>",
            SL_ECORRUPT, "has a DOCTYPE");
}

static void test_caps(void) {
    /* A token expat must hold whole (a start tag with a 3 MiB attribute) meets expat's memory cap. */
    size_t big = 3 << 20;
    char *body = malloc(big + 64);
    strcpy(body, "<ListBucketResult a=\"");
    memset(body + strlen(body), 'v', big);
    strcpy(body + 21 + big, "\"/>");
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", body, strlen(body)), SL_ETOOBIG);
    ASSERT_TRUE(strstr(sl_last_error(), "out of parser memory") != NULL);
    /* Long text in fields not kept costs nothing: a 3 MiB <Name> passes. */
    memcpy(body, "<ListBucketResult><Name>", 24);
    memset(body + 24, 'v', big);
    strcpy(body + 24 + big, "</Name></ListBucketResult>");
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt/p/", body, strlen(body)), 0);
    /* An answer is at most SL__S3_XML_BODY_CAP bytes, white space before it included. */
    memset(body, ' ', 1 << 20);
    ASSERT_INT_EQ(sl__s3_xml_begin(s_x, SL__S3_DOC_COMPLETE, "s3://bkt/k"), 0);
    int rc = 0, i;
    for (i = 0; i < 100 && !rc; i++)
        rc = sl__s3_xml_feed(s_x, body, 1 << 20);
    ASSERT_INT_EQ(rc, SL_ETOOBIG);
    ASSERT_INT_EQ(i, 65);
    ASSERT_STR_EQ(sl_last_error(), "s3://bkt/k: the answer is longer than 64 MiB");
    free(body);
}

static void test_errors(void) {
    /* The documented error answer, and one with white space and line breaks in its Message. */
    EXPECT(SL__S3_DOC_ERROR,
           DECL "<Error>\n  <Code>NoSuchKey</Code>\n  <Message>The resource you requested does not exist</Message>\n"
                "  <Resource>/mybucket/myfoto.jpg</Resource> \n  <RequestId>4442587FB7D0A2F9</RequestId>\n</Error>",
           "rc=SL_OK;root=Error;err[NoSuchKey|The resource you requested does not exist|/mybucket/myfoto.jpg|"
           "4442587FB7D0A2F9||||0];" RES0 LIST0);
    EXPECT(SL__S3_DOC_ERROR,
           "<Error><Code> SlowDown </Code><Message>\n  Please reduce\r\n\tyour request rate.  \n</Message>"
           "<HostId>h</HostId><Extra><Code>no</Code></Extra></Error>",
           "rc=SL_OK;root=Error;err[SlowDown|Please reduce your request rate.||||||0];" RES0 LIST0);
    /* The redirects: where to go. */
    EXPECT(SL__S3_DOC_LIST,
           "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed "
           "using the specified endpoint.</Message><Endpoint>mybucket.s3.eu-west-1.amazonaws.com</Endpoint>"
           "<Bucket>mybucket</Bucket><RequestId>R</RequestId><HostId>H</HostId></Error>",
           "rc=SL_OK;root=Error;err[PermanentRedirect|The bucket you are attempting to access must be addressed using "
           "the specified endpoint.||R||mybucket.s3.eu-west-1.amazonaws.com|mybucket|0];" RES0 LIST0);
    EXPECT(SL__S3_DOC_INITIATE,
           "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the "
           "region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>",
           "rc=SL_OK;root=Error;err[AuthorizationHeaderMalformed|The authorization header is malformed; the region "
           "'us-east-1' is wrong; expecting 'eu-west-1'|||eu-west-1|||0];" RES0 LIST0);
    /* A Code that is no identifier is dropped; a long Message is cut at a UTF-8 boundary and says so. */
    char body[4096] = "<Error><Code>Not a code</Code><Message>", *p = body + strlen(body);
    for (int i = 0; i < 300; i++)
        p += sprintf(p, "\xc3\xa9");
    strcpy(p, "</Message></Error>");
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_ERROR, "s3://bkt/k", body, strlen(body)), 0);
    const sl__s3_error *e = sl__s3_xml_error(s_x);
    ASSERT_STR_EQ(e->code, "");
    ASSERT_UINT_EQ(strlen(e->message), 510);
    ASSERT_TRUE(e->message_cut);
    /* Other fields are cut at their size, never inside a UTF-8 sequence. */
    p = body + sprintf(body, "<Error><Resource>");
    memset(p, 'r', 254);
    p += 254;
    p += sprintf(p, "\xc3\xa9</Resource></Error>");
    char want[512] = "rc=SL_OK;root=Error;err[||";
    memset(want + strlen(want), 'r', 254);
    strcpy(want + strlen(want), "|||||0];" RES0 LIST0);
    EXPECT(SL__S3_DOC_ERROR, body, want);
    /* A 200 answer of CompleteMultipartUpload may be an error, after white space sent while S3 worked. */
    EXPECT(SL__S3_DOC_COMPLETE,
           "                                         \n" DECL "\n<Error>\n<Code>InternalError</Code>\n"
           "<Message>We encountered an internal error. Please try again.</Message>\n"
           "<RequestId>656c76696e6727732072657175657374</RequestId>\n"
           "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>\n</Error>",
           "rc=SL_OK;root=Error;err[InternalError|We encountered an internal error. Please try again.||"
           "656c76696e6727732072657175657374||||0];" RES0 LIST0);
    ASSERT_UINT_EQ(sl__s3_error_classify(sl__s3_xml_error(s_x)->code, 200), SL__S3_ERR_RETRY);
    /* CopyObject too. */
    EXPECT(SL__S3_DOC_COPY_OBJECT,
           "\n\n<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
           "rc=SL_OK;root=Error;err[SlowDown|Reduce your request rate.||||||0];" RES0 LIST0);
}

static bool s_secret_seen;
static bool secret_filter(void *ud, const char *text) {
    s_secret_seen = true;
    return strstr(text, (const char *)ud) != NULL;
}

static void test_error_line(void) {
    sl__s3_error e = {.code = "AccessDenied", .message = "Access Denied"};
    char line[512];
    sl__s3_error_line(line, sizeof(line), "b", "dir/k", 403, &e, NULL, NULL);
    ASSERT_STR_EQ(line, "s3://b/dir/k: AccessDenied: Access Denied");
    sl__s3_error_line(line, sizeof(line), "b", NULL, 403, &e, NULL, NULL);
    ASSERT_STR_EQ(line, "s3://b: AccessDenied: Access Denied");
    sl__s3_error_line(line, sizeof(line), "b", "a\nb", 503, NULL, NULL, NULL);
    ASSERT_STR_EQ(line, "s3://b/a\\nb: HTTP 503");
    sl__s3_error none = {.message = "Service Unavailable"};
    sl__s3_error_line(line, sizeof(line), "b", "k", 503, &none, NULL, NULL);
    ASSERT_STR_EQ(line, "s3://b/k: HTTP 503: Service Unavailable");
    /* The server's text goes through the caller's secret filter. */
    sl__s3_error quoting = {.code = "SignatureDoesNotMatch",
                            .message = "The request signature we calculated does not match: AWS4-HMAC-SHA256 "
                                       "Credential=AKIDEXAMPLE/20150830 SECRETVALUE"};
    s_secret_seen = false;
    sl__s3_error_line(line, sizeof(line), "b", "k", 403, &quoting, secret_filter, (void *)"SECRETVALUE");
    ASSERT_TRUE(s_secret_seen);
    ASSERT_STR_EQ(line, "s3://b/k: SignatureDoesNotMatch: (the server's message is not shown: it quotes a credential)");
    sl__s3_error_line(line, sizeof(line), "b", "k", 403, &quoting, secret_filter, (void *)"Signature");
    ASSERT_STR_EQ(line, "s3://b/k: HTTP 403: (the server's message is not shown: it quotes a credential)");
    sl__s3_error_line(line, sizeof(line), "b", "k", 403, &quoting, secret_filter, (void *)"not in it");
    ASSERT_TRUE(strstr(line, "SECRETVALUE") != NULL);
    /* A small buffer keeps the start and the end. */
    size_t n = sl__s3_error_line(line, 40, "bucket", "a/very/long/key/name/that/goes/on/and/on", 403, &e, NULL, NULL);
    ASSERT_UINT_EQ(n, strlen(line));
    ASSERT_TRUE(n < 40 && strncmp(line, "s3://", 5) == 0 && strstr(line, " [...] ") != NULL);
    ASSERT_STR_EQ(line + n - strlen("Denied: Access Denied"), "Denied: Access Denied");
}

static void test_error_classes(void) {
    static const struct {
        const char *code;
        long status;
        sl__s3_error_class cls;
        int err;
    } rows[] = {
        {"InternalError", 500, SL__S3_ERR_RETRY, SL_EIO},
        {"SlowDown", 503, SL__S3_ERR_RETRY, SL_EIO},
        {"RequestTimeout", 400, SL__S3_ERR_RETRY, SL_EIO},
        {"ServiceUnavailable", 503, SL__S3_ERR_RETRY, SL_EIO},
        {"503Throttling", 503, SL__S3_ERR_RETRY, SL_EIO},
        {"ExpiredToken", 400, SL__S3_ERR_REFRESH, SL_EACCES},
        {"TokenRefreshRequired", 400, SL__S3_ERR_REFRESH, SL_EACCES},
        {"AuthorizationHeaderMalformed", 400, SL__S3_ERR_REGION, SL_EIO},
        {"PermanentRedirect", 301, SL__S3_ERR_REGION, SL_EIO},
        {"NoSuchKey", 404, SL__S3_ERR_NOT_FOUND, SL_ENOENT},
        {"NoSuchBucket", 404, SL__S3_ERR_NOT_FOUND, SL_ENOENT},
        {"NoSuchUpload", 404, SL__S3_ERR_NOT_FOUND, SL_ENOENT},
        {"PreconditionFailed", 412, SL__S3_ERR_PRECONDITION, SL_EEXIST},
        {"BadDigest", 400, SL__S3_ERR_CORRUPT, SL_ECORRUPT},
        {"InvalidDigest", 400, SL__S3_ERR_CORRUPT, SL_ECORRUPT},
        {"AccessDenied", 403, SL__S3_ERR_DENIED, SL_EACCES},
        {"SignatureDoesNotMatch", 403, SL__S3_ERR_DENIED, SL_EACCES},
        {"InvalidRange", 416, SL__S3_ERR_RANGE, SL_ERANGE},
        {"InvalidPart", 400, SL__S3_ERR_OTHER, SL_EIO},
        {"AccessDenied", 503, SL__S3_ERR_DENIED, SL_EACCES}, /* the code decides */
        {"", 503, SL__S3_ERR_RETRY, SL_EIO},
        {NULL, 500, SL__S3_ERR_RETRY, SL_EIO},
        {"", 429, SL__S3_ERR_RETRY, SL_EIO},
        {"", 408, SL__S3_ERR_RETRY, SL_EIO},
        {"", 404, SL__S3_ERR_NOT_FOUND, SL_ENOENT},
        {"", 403, SL__S3_ERR_DENIED, SL_EACCES},
        {"", 412, SL__S3_ERR_PRECONDITION, SL_EEXIST},
        {"", 416, SL__S3_ERR_RANGE, SL_ERANGE},
        {"", 301, SL__S3_ERR_REGION, SL_EIO},
        {"", 400, SL__S3_ERR_OTHER, SL_EIO},
        {"", 0, SL__S3_ERR_OTHER, SL_EIO},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sl__s3_error_class cls = sl__s3_error_classify(rows[i].code, rows[i].status);
        if (cls != rows[i].cls || sl__s3_error_errno(cls) != rows[i].err)
            TEST_FAIL_("%s %ld: class %d errno %d", rows[i].code ? rows[i].code : "(null)", rows[i].status, cls,
                       sl__s3_error_errno(cls));
        s_test_checks++;
    }
}

static void test_results(void) {
    EXPECT(SL__S3_DOC_INITIATE,
           DECL "<InitiateMultipartUploadResult " NS ">\n  <Bucket>example-bucket</Bucket>\n"
                "  <Key>example-object</Key>\n  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
                "</UploadId>\n</InitiateMultipartUploadResult>",
           "rc=SL_OK;root=InitiateMultipartUploadResult;"
           "res[VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA||0|0|00000000|0|0|];" LIST0);
    REFUSED(SL__S3_DOC_INITIATE,
            "<InitiateMultipartUploadResult><UploadId>a b</UploadId>"
            "</InitiateMultipartUploadResult>",
            SL_ECORRUPT, "UploadId 'a b' is not an upload id");
    /* CompleteMultipartUpload: a multipart ETag is no MD5; its checksum of checksums says how many parts. */
    EXPECT(SL__S3_DOC_COMPLETE,
           "<CompleteMultipartUploadResult " NS ">\n  <Location>http://Example-Bucket.s3.region.amazonaws.com/"
           "Example-Object</Location>\n  <Bucket>Example-Bucket</Bucket>\n  <Key>Example-Object</Key>\n"
           "  <ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>\n  <ChecksumCRC32C>yZRlqg==-9</ChecksumCRC32C>\n"
           "</CompleteMultipartUploadResult>",
           "rc=SL_OK;root=CompleteMultipartUploadResult;res[|3858f62230ac3c915f300c664312c11f-9|0|1|c99465aa|9|0|]"
           ";" LIST0);
    EXPECT(
        SL__S3_DOC_COMPLETE,
        "<CompleteMultipartUploadResult><ETag>&quot;3858F62230AC3C915F300C664312C11F&quot;</ETag>"
        "<ChecksumCRC32C>AAAAAA==</ChecksumCRC32C></CompleteMultipartUploadResult>",
        "rc=SL_OK;root=CompleteMultipartUploadResult;res[|3858F62230AC3C915F300C664312C11F|1|1|00000000|0|0|];" LIST0);
    REFUSED(SL__S3_DOC_COMPLETE, "<CompleteMultipartUploadResult><ETag>\"\"</ETag></CompleteMultipartUploadResult>",
            SL_ECORRUPT, "ETag '\"\"' is not an ETag");
    REFUSED(SL__S3_DOC_COMPLETE,
            "<CompleteMultipartUploadResult><ChecksumCRC32C>yZRlqh==</ChecksumCRC32C></CompleteMultipartUploadResult>",
            SL_ECORRUPT, "ChecksumCRC32C 'yZRlqh==' is not a CRC32C");
    REFUSED(SL__S3_DOC_COMPLETE,
            "<CompleteMultipartUploadResult><ChecksumCRC32C>yZRlqg==-0</ChecksumCRC32C>"
            "</CompleteMultipartUploadResult>",
            SL_ECORRUPT, "is not a CRC32C");
    /* CopyObject's example has no zone in LastModified (S3 sends one): not a date, so 0. */
    EXPECT(SL__S3_DOC_COPY_OBJECT,
           "<CopyObjectResult>\n   <LastModified>2009-10-28T22:32:00</LastModified>\n"
           "   <ETag>\"9b2cf535f27731c974343645a3985328\"</ETag>\n</CopyObjectResult>",
           "rc=SL_OK;root=CopyObjectResult;res[|9b2cf535f27731c974343645a3985328|1|0|00000000|0|0|];" LIST0);
    EXPECT(SL__S3_DOC_COPY_PART,
           "<CopyPartResult " NS "><LastModified>2011-04-11T20:34:56.000Z</LastModified>"
           "<ETag>\"9b2cf535f27731c974343645a3985328\"</ETag><ChecksumCRC32C>yZRlqg==</ChecksumCRC32C>"
           "</CopyPartResult>",
           "rc=SL_OK;root=CopyPartResult;res[|9b2cf535f27731c974343645a3985328|1|1|c99465aa|0|1302554096000000000|]"
           ";" LIST0);
    /* GetBucketLocation: empty is us-east-1, EU eu-west-1. */
    EXPECT(SL__S3_DOC_LOCATION, DECL "<LocationConstraint " NS "/>",
           "rc=SL_OK;root=LocationConstraint;res[||0|0|00000000|0|0|us-east-1];" LIST0);
    EXPECT(SL__S3_DOC_LOCATION, "<LocationConstraint " NS ">EU</LocationConstraint>",
           "rc=SL_OK;root=LocationConstraint;res[||0|0|00000000|0|0|eu-west-1];" LIST0);
    EXPECT(SL__S3_DOC_LOCATION, "<LocationConstraint>\n ap-southeast-2 </LocationConstraint>",
           "rc=SL_OK;root=LocationConstraint;res[||0|0|00000000|0|0|ap-southeast-2];" LIST0);
    REFUSED(SL__S3_DOC_LOCATION, "<LocationConstraint>eu west</LocationConstraint>", SL_ECORRUPT,
            "LocationConstraint 'eu west' is not a region");
    REFUSED(SL__S3_DOC_LOCATION, "<LocationConstraint>eu<x/></LocationConstraint>", SL_ECORRUPT,
            "<x> inside <LocationConstraint>");
    char region[16];
    ASSERT_TRUE(sl__s3_region_of(NULL, region, sizeof(region)) && strcmp(region, "us-east-1") == 0);
    ASSERT_FALSE(sl__s3_region_of("us-east-1", region, 9));
    ASSERT_FALSE(sl__s3_region_of("US-EAST-1", region, sizeof(region)));
}

static int stop_second(void *ud, const sl__s3_deleted *o) {
    (void)o;
    return ++*(int *)ud == 2 ? SL_ECANCELED : 0;
}

static void test_delete_result(void) {
    EXPECT(SL__S3_DOC_DELETE,
           DECL "<DeleteResult " NS ">\n  <Deleted>\n    <Key>sample1.txt</Key>\n  </Deleted>\n  <Error>\n"
                "    <Key>sample2.txt</Key>\n    <Code>AccessDenied</Code>\n    <Message>Access Denied</Message>\n"
                "  </Error>\n  <Deleted><Key>a&amp;b&#13;</Key><DeleteMarker>true</DeleteMarker></Deleted>\n"
                "  <Error><Key>c</Key></Error>\n</DeleteResult>",
           "rc=SL_OK;root=DeleteResult;" RES0 LIST0
           "del[sample1.txt|-|-];del[sample2.txt|AccessDenied|Access Denied];del[a&b\\r|-|-];del[c||];");
    /* A quiet batch whose keys were all deleted: an empty result, or nothing at all. */
    EXPECT(SL__S3_DOC_DELETE, "<DeleteResult " NS "/>", "rc=SL_OK;root=DeleteResult;" RES0 LIST0);
    EXPECT(SL__S3_DOC_DELETE, "", "rc=SL_OK;root=nothing;" RES0 LIST0);
    REFUSED(SL__S3_DOC_DELETE, "<DeleteResult><Error><Code>X</Code></Error></DeleteResult>", SL_ECORRUPT,
            "a <Error> without a <Key>");
    /* fn can stop the walk; a failed answer reports nothing. */
    const char *two = "<DeleteResult><Deleted><Key>a</Key></Deleted><Deleted><Key>b</Key></Deleted>"
                      "<Deleted><Key>c</Key></Deleted></DeleteResult>";
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_DELETE, "s3://bkt", two, strlen(two)), 0);
    int calls = 0;
    ASSERT_INT_EQ(sl__s3_xml_deleted_each(s_x, stop_second, &calls), SL_ECANCELED);
    ASSERT_INT_EQ(calls, 2);
    ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_DELETE, "s3://bkt", two, strlen(two) - 1), SL_ECORRUPT);
    calls = 0;
    ASSERT_INT_EQ(sl__s3_xml_deleted_each(s_x, stop_second, &calls), 0);
    ASSERT_INT_EQ(calls, 0);
}

static void test_list_parts(void) {
    EXPECT(SL__S3_DOC_PARTS,
           DECL
           "<ListPartsResult " NS ">\n  <Bucket>example-bucket</Bucket>\n  <Key>example-object</Key>\n"
           "  <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>\n  <Initiator>\n"
           "      <ID>arn:aws:iam::111122223333:user/some-user</ID>\n      <DisplayName>umat-user</DisplayName>\n"
           "  </Initiator>\n  <Owner>\n    <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>\n"
           "    <DisplayName>someName</DisplayName>\n  </Owner>\n  <StorageClass>STANDARD</StorageClass>\n"
           "  <PartNumberMarker>1</PartNumberMarker>\n  <NextPartNumberMarker>3</NextPartNumberMarker>\n"
           "  <MaxParts>2</MaxParts>\n  <IsTruncated>true</IsTruncated>\n  <Part>\n    <PartNumber>2</PartNumber>\n"
           "    <LastModified>2010-11-10T20:48:34.000Z</LastModified>\n"
           "    <ETag>\"7778aef83f66abc1fa1e8477f296d394\"</ETag>\n    <Size>10485760</Size>\n  </Part>\n"
           "  <Part>\n    <PartNumber>3</PartNumber>\n    <LastModified>2010-11-10T20:48:33.000Z</LastModified>\n"
           "    <ETag>\"aaaa18db4cc2f85cedef654fccc4a4x8\"</ETag>\n    <Size>10485760</Size>\n"
           "    <ChecksumCRC32C>yZRlqg==</ChecksumCRC32C>\n  </Part>\n</ListPartsResult>",
           "rc=SL_OK;root=ListPartsResult;" RES0 "list[0|-|-1|0];"
           "part[2|10485760|7778aef83f66abc1fa1e8477f296d394|0|00000000];"
           "part[3|10485760|aaaa18db4cc2f85cedef654fccc4a4x8|1|c99465aa];parts[1|3];");
    REFUSED(SL__S3_DOC_PARTS, "<ListPartsResult><Part><PartNumber>10001</PartNumber></Part></ListPartsResult>",
            SL_ECORRUPT, "PartNumber '10001' is not 1 to 10000");
    REFUSED(SL__S3_DOC_PARTS,
            "<ListPartsResult><Part><PartNumber>1</PartNumber><Size>1</Size></Part>"
            "</ListPartsResult>",
            SL_ECORRUPT, "a <Part> without its PartNumber, ETag or Size");
    REFUSED(SL__S3_DOC_PARTS, "<ListPartsResult><Part><ETag>x y</ETag></Part></ListPartsResult>", SL_ECORRUPT,
            "ETag 'x y' is not an ETag");
}

static void test_time(void) {
    static const struct {
        const char *text;
        int64_t ns;
    } rows[] = {
        {"2009-10-12T17:50:30.000Z", 1255369830000000000},
        {"1970-01-01T00:00:01Z", 1000000000},
        {"1970-01-01T00:00:00.5Z", 500000000},
        {"2026-11-25T10:23:00.123456789Z", 1795602180123456789},
        {"2026-11-25T10:23:00.1234567891234Z", 1795602180123456789}, /* digits past ns do not count */
        {"2026-11-25T11:23:00.123+01:00", 1795602180123000000},
        {"2026-11-25T08:53:00.123-01:30", 1795602180123000000},
        {"2024-02-29T00:00:00Z", 1709164800000000000}, /* a leap day */
        {"2016-12-31T23:59:60Z", 1483228800000000000}, /* a leap second: the next minute's 0 */
        {"1678-01-01T00:00:00Z", -9214560000000000000},
        {"2261-12-31T23:59:59.999999999Z", 9214646399999999999},
        {"2023-02-29T00:00:00Z", 0}, /* not a leap year */
        {"2026-04-31T00:00:00Z", 0},
        {"2026-13-01T00:00:00Z", 0},
        {"2026-00-01T00:00:00Z", 0},
        {"2026-01-00T00:00:00Z", 0},
        {"2026-01-01T24:00:00Z", 0},
        {"2026-01-01T00:60:00Z", 0},
        {"2026-01-01T00:00:61Z", 0},
        {"2026-01-01T00:00:00", 0}, /* no zone */
        {"2026-01-01T00:00:00.Z", 0},
        {"2026-01-01T00:00:00.000", 0},
        {"2026-01-01T00:00:00ZZ", 0},
        {"2026-01-01T00:00:00+0100", 0},
        {"2026-01-01T00:00:00+24:00", 0},
        {"2026-01-01 00:00:00Z", 0},
        {"2026-1-01T00:00:00Z", 0},
        {"+026-01-01T00:00:00Z", 0},
        {"1677-12-31T23:59:59Z", 0}, /* out of int64 ns */
        {"2262-01-01T00:00:00Z", 0},
        {"Mon, 25 Nov 2026 10:23:00 GMT", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t got = sl__s3_parse_time(rows[i].text, strlen(rows[i].text));
        if (got != rows[i].ns)
            TEST_FAIL_("%s: %lld, want %lld", rows[i].text, (long long)got, (long long)rows[i].ns);
        s_test_checks++;
    }
    /* len counts, not a NUL. */
    ASSERT_INT_EQ(sl__s3_parse_time("1970-01-01T00:00:01Zjunk", 20), 1000000000);
    ASSERT_INT_EQ(sl__s3_parse_time("1970-01-01T00:00:01Z", 19), 0);
    ASSERT_INT_EQ(sl__s3_parse_time(NULL, 0), 0);
    /* In an answer, a date that is not one is 0, not a failure. */
    EXPECT(SL__S3_DOC_LIST,
           "<ListBucketResult><Contents><Key>k</Key><Size>1</Size><LastModified>yesterday</LastModified></Contents>"
           "</ListBucketResult>",
           "rc=SL_OK;root=ListBucketResult;" RES0 LIST0 "obj[k|1|0|-|||0];");
}

static void test_fields(void) {
    char etag[SL__S3_ETAG_MAX + 1];
    bool md5;
    unsigned char digest[16];
    ASSERT_TRUE(sl__s3_etag_parse("\"d41d8cd98f00b204e9800998ecf8427e\"", 34, etag, &md5, digest));
    ASSERT_STR_EQ(etag, "d41d8cd98f00b204e9800998ecf8427e");
    ASSERT_TRUE(md5);
    ASSERT_MEM_EQ(digest, "\xd4\x1d\x8c\xd9\x8f\x00\xb2\x04\xe9\x80\x09\x98\xec\xf8\x42\x7e", 16);
    ASSERT_TRUE(sl__s3_etag_parse("d41d8cd98f00b204e9800998ecf8427e", 32, etag, &md5, NULL) && md5);
    ASSERT_TRUE(sl__s3_etag_parse("\"d41d8cd98f00b204e9800998ecf8427e-2\"", 36, etag, &md5, NULL) && !md5);
    ASSERT_TRUE(sl__s3_etag_parse("d41d8cd98f00b204e9800998ecf8427", 31, etag, &md5, NULL) && !md5);
    ASSERT_TRUE(sl__s3_etag_parse("g41d8cd98f00b204e9800998ecf8427e", 32, etag, &md5, NULL) && !md5);
    ASSERT_FALSE(sl__s3_etag_parse("\"\"", 2, etag, &md5, NULL));
    ASSERT_FALSE(sl__s3_etag_parse("", 0, etag, &md5, NULL));
    ASSERT_FALSE(sl__s3_etag_parse("\"a\"b\"", 5, etag, &md5, NULL));
    ASSERT_FALSE(sl__s3_etag_parse("a&b", 3, etag, &md5, NULL));
    ASSERT_FALSE(sl__s3_etag_parse("W/\"ab\"", 6, etag, &md5, NULL));
    char long_tag[SL__S3_ETAG_MAX + 2];
    memset(long_tag, 'a', sizeof(long_tag));
    ASSERT_TRUE(sl__s3_etag_parse(long_tag, SL__S3_ETAG_MAX, etag, &md5, NULL));
    ASSERT_FALSE(sl__s3_etag_parse(long_tag, SL__S3_ETAG_MAX + 1, etag, &md5, NULL));
    uint32_t crc;
    char b64[9];
    static const uint32_t crcs[] = {0, 0xc99465aa, 0xffffffff, 0x12345678, 1};
    for (size_t i = 0; i < sizeof(crcs) / sizeof(crcs[0]); i++) {
        sl__s3_crc32c_format(crcs[i], b64);
        ASSERT_UINT_EQ(strlen(b64), 8);
        ASSERT_TRUE(sl__s3_crc32c_parse(b64, 8, &crc));
        ASSERT_UINT_EQ(crc, crcs[i]);
    }
    sl__s3_crc32c_format(0xc99465aa, b64);
    ASSERT_STR_EQ(b64, "yZRlqg==");
    ASSERT_FALSE(sl__s3_crc32c_parse("yZRlqg=", 7, &crc));
    ASSERT_FALSE(sl__s3_crc32c_parse("yZRlqh==", 8, &crc)); /* bits past the 32 */
    ASSERT_FALSE(sl__s3_crc32c_parse("yZR!qg==", 8, &crc));
    ASSERT_FALSE(sl__s3_crc32c_parse("yZRlqgAA", 8, &crc));
    ASSERT_FALSE(sl__s3_crc32c_parse("yZ\0lqg==", 8, &crc));
}

/* ---- bodies: read back with expat ---- */

typedef struct readback {
    char text[8192];
    size_t len;
    char keys[4][512];
    size_t key_lens[4];
    int n_keys;
    bool in_key;
} readback;

static void XMLCALL rb_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
    readback *rb = ud;
    (void)attrs;
    rb->in_key = strcmp(name, "Key") == 0;
    if (rb->in_key && rb->n_keys < 4)
        rb->key_lens[rb->n_keys] = 0;
}

static void XMLCALL rb_end(void *ud, const XML_Char *name) {
    readback *rb = ud;
    if (strcmp(name, "Key") == 0)
        rb->n_keys++;
    rb->in_key = false;
}

static void XMLCALL rb_text(void *ud, const XML_Char *s, int len) {
    readback *rb = ud;
    if (rb->in_key && rb->n_keys < 4 && rb->key_lens[rb->n_keys] + (size_t)len < 512) {
        memcpy(rb->keys[rb->n_keys] + rb->key_lens[rb->n_keys], s, (size_t)len);
        rb->key_lens[rb->n_keys] += (size_t)len;
    }
}

/* Parses a body with plain expat, as a server would; false if it is not well-formed. */
static bool read_back(const char *body, size_t len, readback *rb) {
    memset(rb, 0, sizeof(*rb));
    XML_Parser p = XML_ParserCreate(NULL);
    XML_SetUserData(p, rb);
    XML_SetElementHandler(p, rb_start, rb_end);
    XML_SetCharacterDataHandler(p, rb_text);
    bool ok = XML_Parse(p, body, (int)len, 1) == XML_STATUS_OK;
    XML_ParserFree(p);
    return ok;
}

static void test_delete_body(void) {
    char buf[4096];
    sl__s3_body b;
    ASSERT_INT_EQ(sl__s3_delete_begin(&b, buf, sizeof(buf), true), 0);
    ASSERT_INT_EQ(sl__s3_delete_end(&b), SL_EINVAL); /* no key */
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "sample1.txt", 11, "s3://bkt"), 0);
    const char odd[] = "a&<b>\"c'\r\n\td \xc3\xa9 \x7f \xc2\x80";
    ASSERT_INT_EQ(sl__s3_delete_add(&b, odd, sizeof(odd) - 1, "s3://bkt"), 0);
    ASSERT_INT_EQ(sl__s3_delete_end(&b), 0);
    ASSERT_UINT_EQ(b.count, 2);
    const char want[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete " NS "><Quiet>true</Quiet>"
                        "<Object><Key>sample1.txt</Key></Object>"
                        "<Object><Key>a&amp;&lt;b&gt;&quot;c&apos;&#13;&#10;&#9;d \xc3\xa9 \x7f \xc2\x80</Key></Object>"
                        "</Delete>";
    ASSERT_UINT_EQ(b.len, sizeof(want) - 1);
    ASSERT_MEM_EQ(buf, want, b.len);
    /* A server reads the same keys back, CR, LF and TAB included. */
    readback rb;
    ASSERT_TRUE(read_back(buf, b.len, &rb));
    ASSERT_INT_EQ(rb.n_keys, 2);
    ASSERT_UINT_EQ(rb.key_lens[1], sizeof(odd) - 1);
    ASSERT_MEM_EQ(rb.keys[1], odd, sizeof(odd) - 1);
    /* Keys XML 1.0 cannot carry are refused, naming them, and leave the body as it was. */
    ASSERT_INT_EQ(sl__s3_delete_begin(&b, buf, sizeof(buf), false), 0);
    size_t len0 = b.len;
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "dir/a\x01z", 7, "s3://bkt"), SL_EINVAL);
    ASSERT_STR_EQ(sl_last_error(), "s3://bkt: cannot delete 'dir/a\\x01z' in a batch: it holds a character XML 1.0 "
                                   "cannot carry (at byte 5); delete it alone");
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "a\xef\xbf\xbf", 4, "s3://bkt"), SL_EINVAL); /* U+FFFF */
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "a\xc3", 2, "s3://bkt"), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "it is not UTF-8 (at byte 1)") != NULL);
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "a\0b", 3, "s3://bkt"), SL_EINVAL);
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "", 0, "s3://bkt"), SL_EINVAL);
    ASSERT_UINT_EQ(b.len, len0);
    ASSERT_UINT_EQ(b.count, 0);
    ASSERT_MEM_EQ(buf, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete " NS "><Object>", 0);
    ASSERT_TRUE(strstr(buf, "Quiet") == NULL || buf + len0 <= strstr(buf, "Quiet"));
    /* The buffer bounds the body: a key that does not fit is refused whole, and the body stays closable. */
    char small[160];
    ASSERT_INT_EQ(sl__s3_delete_begin(&b, small, sizeof(small), true), 0);
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "k1", 2, "s3://bkt"), 0);
    size_t len1 = b.len;
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "&&&&&&&&&&&&", 12, "s3://bkt"), SL_ETOOBIG);
    ASSERT_UINT_EQ(b.len, len1);
    ASSERT_INT_EQ(sl__s3_delete_end(&b), 0);
    ASSERT_TRUE(read_back(small, b.len, &rb) && rb.n_keys == 1);
    ASSERT_INT_EQ(sl__s3_delete_begin(&b, small, 40, true), SL_ETOOBIG);
    /* At most 1,000 keys a batch. */
    char *big = malloc(64 << 10);
    ASSERT_INT_EQ(sl__s3_delete_begin(&b, big, 64 << 10, true), 0);
    for (int i = 0; i < 1000; i++)
        ASSERT_INT_EQ(sl__s3_delete_add(&b, "k", 1, "s3://bkt"), 0);
    ASSERT_INT_EQ(sl__s3_delete_add(&b, "k", 1, "s3://bkt"), SL_ETOOBIG);
    ASSERT_INT_EQ(sl__s3_delete_end(&b), 0);
    ASSERT_INT_EQ(sl__s3_delete_end(&b), SL_EINVAL);
    free(big);
}

static void test_complete_body(void) {
    char buf[SL__S3_COMPLETE_CAP(3)];
    sl__s3_body b;
    ASSERT_INT_EQ(sl__s3_complete_begin(&b, buf, sizeof(buf)), 0);
    ASSERT_INT_EQ(sl__s3_complete_add(&b, 1, "\"a54357aff0632cce46d942af68356b38\"", true, 0xc99465aa), 0);
    ASSERT_INT_EQ(sl__s3_complete_add(&b, 3, "0c78aef83f66abc1fa1e8477f296d394", false, 0), 0);
    ASSERT_INT_EQ(sl__s3_complete_add(&b, 3, "acbd18db4cc2f85cedef654fccc4a4d8", false, 0), SL_EINVAL);
    ASSERT_STR_EQ(sl_last_error(), "CompleteMultipartUpload: part number 3 is not 1 to 10000 and after 3");
    ASSERT_INT_EQ(sl__s3_complete_add(&b, 4, "a\"b", false, 0), SL_EINVAL);
    ASSERT_STR_EQ(sl_last_error(), "CompleteMultipartUpload: part 4 has no usable ETag ('a\"b')");
    ASSERT_INT_EQ(sl__s3_complete_add(&b, 10001, "ab", false, 0), SL_EINVAL);
    ASSERT_INT_EQ(sl__s3_complete_end(&b), 0);
    const char want[] = "<CompleteMultipartUpload " NS ">"
                        "<Part><PartNumber>1</PartNumber><ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag>"
                        "<ChecksumCRC32C>yZRlqg==</ChecksumCRC32C></Part>"
                        "<Part><PartNumber>3</PartNumber><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag>"
                        "</Part></CompleteMultipartUpload>";
    ASSERT_UINT_EQ(b.len, sizeof(want) - 1);
    ASSERT_MEM_EQ(buf, want, b.len);
    readback rb;
    ASSERT_TRUE(read_back(buf, b.len, &rb));
    ASSERT_INT_EQ(sl__s3_complete_begin(&b, buf, 10), SL_ETOOBIG);
    ASSERT_INT_EQ(sl__s3_complete_begin(&b, buf, sizeof(buf)), 0);
    ASSERT_INT_EQ(sl__s3_complete_end(&b), SL_EINVAL); /* no part */
    /* SL__S3_COMPLETE_CAP(10000) holds 10,000 parts of the longest ETags and checksums; one byte less does not. */
    size_t cap = SL__S3_COMPLETE_CAP(10000);
    char *big = malloc(cap);
    char tag[SL__S3_ETAG_MAX + 3];
    memset(tag, 'f', sizeof(tag));
    tag[0] = '"', tag[SL__S3_ETAG_MAX + 1] = '"', tag[SL__S3_ETAG_MAX + 2] = '\0';
    ASSERT_INT_EQ(sl__s3_complete_begin(&b, big, cap), 0);
    for (unsigned n = 1; n <= 10000; n++)
        ASSERT_INT_EQ(sl__s3_complete_add(&b, n, tag, true, 0xffffffff), 0);
    ASSERT_INT_EQ(sl__s3_complete_end(&b), 0);
    ASSERT_TRUE(b.len <= cap);
    ASSERT_TRUE(read_back(big, b.len, &rb));
    free(big);
}

static void test_reuse(void) {
    /* One parser, many answers: each begins afresh, and a page's entries end with the next begin. */
    const char *a = "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>";
    const char *b = "<Error><Code>NoSuchBucket</Code></Error>";
    for (int i = 0; i < 3; i++) {
        ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt", a, strlen(a)), 0);
        ASSERT_INT_EQ(sl__s3_xml_root(s_x), SL__S3_DOC_LIST);
        ASSERT_STR_EQ(sl__s3_xml_error(s_x)->code, "");
        ASSERT_INT_EQ(sl__s3_xml_parse(s_x, SL__S3_DOC_LIST, "s3://bkt", b, strlen(b)), 0);
        ASSERT_INT_EQ(sl__s3_xml_root(s_x), SL__S3_DOC_ERROR);
        ASSERT_STR_EQ(sl__s3_xml_error(s_x)->code, "NoSuchBucket");
        const char *name;
        size_t len;
        sl_object o;
        ASSERT_INT_EQ(sl__s3_xml_list_next(s_x, &name, &len, &o, NULL), 0);
    }
    /* Before begin, and after a failure, nothing is there. */
    sl__s3_xml *fresh = sl__s3_xml_new();
    ASSERT_TRUE(fresh != NULL);
    ASSERT_INT_EQ(sl__s3_xml_feed(fresh, "x", 1), SL_EINVAL);
    ASSERT_INT_EQ(sl__s3_xml_root(fresh), SL__S3_DOC_NONE);
    sl__s3_xml_destroy(fresh);
    sl__s3_xml_destroy(NULL);
}

/* A loopback server that answers one request with 200 and `body`, sent in pieces of 7 bytes with a pause after each
 * of the first ones, so that libcurl delivers it in many chunks. */
typedef struct trickle {
    int listen_fd;
    const char *body;
    pthread_t thread;
} trickle;

static void *trickle_main(void *arg) {
    trickle *t = arg;
    int fd = accept(t->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char req[4096];
    size_t len = 0;
    while (len < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    char head[128];
    size_t blen = strlen(t->body);
    int hn = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", blen);
    if (send(fd, head, (size_t)hn, MSG_NOSIGNAL) == hn) {
        for (size_t at = 0, piece = 0; at < blen; at += 7, piece++) {
            if (send(fd, t->body + at, blen - at < 7 ? blen - at : 7, MSG_NOSIGNAL) < 0)
                break;
            if (piece < 40)
                nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
        }
    }
    close(fd);
    return NULL;
}

static unsigned s_chunks;
static size_t counting_write(void *ud, const void *data, size_t len) {
    s_chunks++;
    return sl__s3_xml_write(ud, data, len);
}

/* GETs `body` from a trickle server with sl__http_perform, the parser as its write_fn, as the store does. Returns
 * what sl__http_perform returned; *end_rc what sl__s3_xml_end then says. */
static int fetch(sl__s3_doc expect, const char *body, int *end_rc) {
    trickle t = {.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), .body = body};
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    ASSERT_TRUE(t.listen_fd >= 0);
    ASSERT_INT_EQ(bind(t.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ASSERT_INT_EQ(listen(t.listen_fd, 1), 0);
    ASSERT_INT_EQ(getsockname(t.listen_fd, (struct sockaddr *)&a, &alen), 0);
    ASSERT_INT_EQ(pthread_create(&t.thread, NULL, trickle_main, &t), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/bkt?list-type=2&encoding-type=url", ntohs(a.sin_port));
    sl__http *h = sl__http_new(NULL);
    ASSERT_TRUE(h != NULL);
    ASSERT_INT_EQ(sl__s3_xml_begin(s_x, expect, "s3://bkt/p/"), 0);
    sl__http_request req = {.method = "GET", .url = url, .write_fn = counting_write, .write_ud = s_x};
    s_chunks = 0;
    sl__http_response resp;
    int rc = sl__http_perform(h, &req, &resp);
    ASSERT_TRUE(rc == 0 || sl__s3_xml_failed(s_x) < 0); /* here the transfer fails only when the parser stops it */
    *end_rc = sl__s3_xml_end(s_x);                      /* after a refused answer, sets the parser's message again */
    if (rc == 0)
        ASSERT_INT_EQ(resp.status, 200);
    sl__http_destroy(h);
    pthread_join(t.thread, NULL);
    close(t.listen_fd);
    return rc;
}

static void test_through_libcurl(void) {
    /* A listing delivered by libcurl in small chunks. */
    int end_rc;
    const char *page = "<ListBucketResult " NS "><Name>bkt</Name><Prefix>p%2F</Prefix><KeyCount>2</KeyCount>"
                       "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
                       "<NextContinuationToken>tok/en=</NextContinuationToken>"
                       "<Contents><Key>p/a%0Ab</Key><Size>10</Size><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;"
                       "</ETag></Contents><CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes></ListBucketResult>";
    ASSERT_INT_EQ(fetch(SL__S3_DOC_LIST, page, &end_rc), 0);
    ASSERT_INT_EQ(end_rc, 0);
    ASSERT_TRUE(s_chunks > 3); /* pauses of 2 ms between pieces: even a loaded machine delivers a few apart */
    ASSERT_TRUE(sl__s3_xml_list_truncated(s_x));
    ASSERT_STR_EQ(sl__s3_xml_list_token(s_x), "tok/en=");
    const char *name;
    size_t len;
    sl_object o;
    ASSERT_INT_EQ(sl__s3_xml_list_next(s_x, &name, &len, &o, NULL), 1);
    ASSERT_STR_EQ(name, "p/a\nb");
    ASSERT_TRUE(o.has_md5 && o.size == 10);
    ASSERT_INT_EQ(sl__s3_xml_list_next(s_x, &name, &len, &o, NULL), 1);
    ASSERT_STR_EQ(name, "p/d/");
    ASSERT_INT_EQ(sl__s3_xml_list_next(s_x, &name, &len, &o, NULL), 0);
    /* The 200 of CompleteMultipartUpload that turns out an error, after white space. */
    ASSERT_INT_EQ(fetch(SL__S3_DOC_COMPLETE,
                        "                    \n                    \n" DECL
                        "<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again."
                        "</Message></Error>",
                        &end_rc),
                  0);
    ASSERT_INT_EQ(end_rc, 0);
    ASSERT_INT_EQ(sl__s3_xml_root(s_x), SL__S3_DOC_ERROR);
    ASSERT_STR_EQ(sl__s3_xml_error(s_x)->code, "InternalError");
    /* An answer refused stops the transfer; the parser says why. */
    const char *evil = "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;\">]>"
                       "<ListBucketResult><Name>&lol1;</Name></ListBucketResult>";
    ASSERT_TRUE(fetch(SL__S3_DOC_LIST, evil, &end_rc) < 0);
    ASSERT_INT_EQ(end_rc, SL_ECORRUPT);
    ASSERT_STR_EQ(sl_last_error(),
                  "s3://bkt/p/: the answer has a DOCTYPE, which S3 never sends (entity declarations are refused)");
}

int main(void) {
    s_x = sl__s3_xml_new();
    if (!s_x)
        TEST_FAIL_("sl__s3_xml_new: %s", sl_last_error());
    RUN_TEST(test_list_documented);
    RUN_TEST(test_list_url_encoding);
    RUN_TEST(test_list_key_caps);
    RUN_TEST(test_list_page_caps);
    RUN_TEST(test_list_refused);
    RUN_TEST(test_malformed);
    RUN_TEST(test_entity_attacks);
    RUN_TEST(test_caps);
    RUN_TEST(test_errors);
    RUN_TEST(test_error_line);
    RUN_TEST(test_error_classes);
    RUN_TEST(test_results);
    RUN_TEST(test_delete_result);
    RUN_TEST(test_list_parts);
    RUN_TEST(test_time);
    RUN_TEST(test_fields);
    RUN_TEST(test_delete_body);
    RUN_TEST(test_complete_body);
    RUN_TEST(test_reuse);
    RUN_TEST(test_through_libcurl);
    sl__s3_xml_destroy(s_x);
    TEST_DONE();
}
