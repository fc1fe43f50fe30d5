/* What the s3:// store reads out of S3's XML answers and the XML bodies it sends. Reachable from tests (tests/unit,
 * tests/fuzz).
 *
 * Reading: one sl__s3_xml parser per client (thread), made once and reused for every answer. An answer is parsed as
 * a stream with expat, fed in the chunks libcurl delivers (sl__s3_xml_write is an sl__http_write_fn), so nothing waits
 * for a whole body; what is kept of it has hard caps whatever the input:
 *   - a key or prefix: SL__S3_KEY_MAX bytes once decoded (S3 allows 1,024; a longer one fails the answer, naming it);
 *   - a listing, ListParts or DeleteObjects answer: SL__S3_PAGE_MAX entries, their text in one block that grows by
 *     doubling up to SL__S3_PAGE_TEXT_CAP (an answer that needs more fails with SL_ETOOBIG: ask for fewer keys);
 *   - every other field: a fixed array in the parser (sl__s3_error, sl__s3_result), longer text is cut (error
 *     fields) or fails the answer (fields sluice acts on: an ETag, an upload id);
 *   - expat's own memory: SL__S3_XML_EXPAT_CAP (it holds one unfinished token at most: chunks are fed to it in pieces
 *     of at most 64 KiB); a whole answer: SL__S3_XML_BODY_CAP bytes.
 * A parser therefore never holds more than SL__S3_PAGE_TEXT_CAP + SL__S3_XML_EXPAT_CAP + 100 KiB (20 KiB of its own,
 * 80 KiB of entries once it read a page), and keeps what the largest answer it parsed needed until it is destroyed: a
 * page of 1,000 short keys costs about 150 KiB.
 *
 * What is refused (SL_ECORRUPT, "s3://...: the answer is not valid XML ..."): anything expat refuses (not
 * well-formed, an undefined entity, a character XML 1.0 cannot carry), a DOCTYPE (S3 never sends one: refusing it
 * refuses every entity declaration, so entity expansion attacks ("billion laughs") never start; expat's own
 * amplification limit, on by default since 2.4, is checked to be there as well), an encoding other than UTF-8 (the
 * parser reads every answer as UTF-8 whatever its declaration says), nesting deeper than 16 elements, a known field
 * repeated where S3 sends one, a root element other than the one expected or <Error>.
 *
 * The trap of 200 answers: CompleteMultipartUpload and CopyObject (and UploadPartCopy) may answer 200 and send
 * <Error> as the body, after white space sent to keep the connection open while they work. White space before the
 * document is skipped, and sl__s3_xml_root says which root element came: a caller must check it is not
 * SL__S3_DOC_ERROR before it trusts a 200.
 *
 * How the store uses it, per request (x: the client's parser):
 *     sl__s3_xml_begin(x, SL__S3_DOC_LIST, "s3://bucket/prefix");
 *     sl__http_request req = {..., .write_fn = sl__s3_xml_write, .write_ud = x};
 *     int rc = sl__http_perform(http, &req, &resp);  // the body goes to the parser as it arrives
 *     if (rc < 0 && !sl__s3_xml_failed(x))            // the transfer broke, the parser did not stop it
 *         -> a transport error: retry as usual
 *     int xrc = sl__s3_xml_end(x);
 *     if (resp.status != 200)
 *         -> sl__s3_error_classify(xrc == 0 ? sl__s3_xml_error(x)->code : "", resp.status) decides (a body that is
 *            not XML, a proxy's page or a HEAD answer's nothing, leaves the status alone), sl__s3_error_line words it
 *     else if (xrc < 0)     -> the answer is refused: fail with its message (not retried, as a bad gs:// page)
 *     else if (sl__s3_xml_root(x) == SL__S3_DOC_ERROR) -> the 200 that is an error: classify it as above
 *     else                  -> read the answer (sl__s3_xml_list_next ...) */
#ifndef SLUICE_S3_XML_H
#define SLUICE_S3_XML_H

#include "sluice/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL__S3_KEY_MAX ((size_t)4096)            /* bytes of a decoded key or prefix, NUL not counted */
#define SL__S3_PAGE_MAX ((size_t)1000)           /* entries of one listing, ListParts or DeleteObjects answer */
#define SL__S3_PAGE_TEXT_CAP ((size_t)8 << 20)   /* bytes of the text of one page's entries, as received */
#define SL__S3_XML_EXPAT_CAP ((size_t)2 << 20)   /* bytes expat may allocate */
#define SL__S3_XML_BODY_CAP ((uint64_t)64 << 20) /* bytes of one answer, white space before it included */
#define SL__S3_ETAG_MAX ((size_t)128)            /* bytes of an ETag, quotes not counted */
#define SL__S3_UPLOAD_ID_MAX ((size_t)1024)      /* bytes of a multipart upload id */
#define SL__S3_TOKEN_MAX ((size_t)4096)          /* bytes of a NextContinuationToken */

/* The root element of an answer. */
typedef enum sl__s3_doc {
    SL__S3_DOC_NONE = 0,    /* no root element (yet), or an empty DeleteObjects answer */
    SL__S3_DOC_ERROR,       /* <Error>: any request, whatever its status */
    SL__S3_DOC_LIST,        /* <ListBucketResult> (ListObjectsV2) */
    SL__S3_DOC_INITIATE,    /* <InitiateMultipartUploadResult> (CreateMultipartUpload) */
    SL__S3_DOC_COMPLETE,    /* <CompleteMultipartUploadResult> */
    SL__S3_DOC_COPY_OBJECT, /* <CopyObjectResult> */
    SL__S3_DOC_COPY_PART,   /* <CopyPartResult> (UploadPartCopy) */
    SL__S3_DOC_DELETE,      /* <DeleteResult> (DeleteObjects) */
    SL__S3_DOC_PARTS,       /* <ListPartsResult> */
    SL__S3_DOC_LOCATION,    /* <LocationConstraint> (GetBucketLocation) */
} sl__s3_doc;

/* The root element's name for messages ("ListBucketResult"), "nothing" for SL__S3_DOC_NONE. */
const char *sl__s3_doc_name(sl__s3_doc doc);

/* An <Error> answer. Each field is "" when absent; text longer than its field is cut (at a UTF-8 boundary), white
 * space at both ends of Message trimmed and every run of control characters in it made one space, so it is one line.
 * code is kept only when it is a plain identifier (letters, digits, '.', '_', '-'), else "". */
typedef struct sl__s3_error {
    char code[64];
    char message[512];
    char resource[256];
    char request_id[128];
    char region[64];    /* AuthorizationHeaderMalformed: the region the request should have been signed for */
    char endpoint[256]; /* PermanentRedirect / TemporaryRedirect: the endpoint to use instead */
    char bucket[256];   /* PermanentRedirect: the bucket */
    bool message_cut;   /* message was longer than its field */
} sl__s3_error;

/* The single-value answers. Fields that are absent are "" / false / 0. */
typedef struct sl__s3_result {
    /* InitiateMultipartUploadResult: the upload id (at most SL__S3_UPLOAD_ID_MAX bytes, else the answer fails). */
    char upload_id[SL__S3_UPLOAD_ID_MAX + 1];
    /* CompleteMultipartUploadResult, CopyObjectResult, CopyPartResult: the ETag without its quotes (at most
     * SL__S3_ETAG_MAX bytes, else the answer fails); etag_md5 when it is an MD5 (32 hex digits, not "<hex>-<parts>"
     * as a multipart object's is), in md5. An MD5-shaped ETag is the MD5 of the bytes only for an object that is not
     * encrypted with SSE-KMS or SSE-C: the store must check that before it verifies bytes against it. */
    char etag[SL__S3_ETAG_MAX + 1];
    bool etag_md5;
    unsigned char md5[16];
    /* ChecksumCRC32C: base64 of 4 big-endian bytes, or for a multipart object "<base64>-<parts>", the CRC32C of its
     * parts' CRC32Cs (big-endian, in part order) and their count in crc32c_parts (0 for a whole object's). A value
     * that is neither fails the answer. */
    bool has_crc32c;
    uint32_t crc32c;
    unsigned crc32c_parts;
    /* CopyObjectResult, CopyPartResult: LastModified, ns since the epoch; 0 if absent or not a date. */
    int64_t mtime_ns;
    /* LocationConstraint: the bucket's region as sl__s3_region_of gives it ("" is us-east-1, "EU" eu-west-1). */
    char region[64];
} sl__s3_result;

/* ChecksumAlgorithm values of a listing entry, as bits. */
#define SL__S3_CK_CRC32 1u
#define SL__S3_CK_CRC32C 2u
#define SL__S3_CK_SHA1 4u
#define SL__S3_CK_SHA256 8u
#define SL__S3_CK_CRC64NVME 16u
#define SL__S3_CK_OTHER 128u

/* What a listing entry has beyond sl_object. */
typedef struct sl__s3_entry {
    const char *etag;          /* without quotes; "" when absent. Valid as the entry's name is. */
    const char *storage_class; /* "STANDARD", "GLACIER", ...; "" when absent. Valid as the entry's name is. */
    unsigned checksums;        /* SL__S3_CK_* bits of its ChecksumAlgorithm elements */
} sl__s3_entry;

/* One outcome of a DeleteObjects batch: code NULL for <Deleted>, else the <Error>'s Code and Message ("" when
 * absent; the message trimmed to one line and cut to 512 bytes, not yet through a secret filter). key is decoded
 * and NUL-terminated (key_len bytes). */
typedef struct sl__s3_deleted {
    const char *key;
    size_t key_len;
    const char *code;
    const char *message;
} sl__s3_deleted;

/* One part of a ListParts answer. */
typedef struct sl__s3_part_info {
    unsigned number; /* 1 to 10,000 */
    uint64_t size;
    const char *etag; /* without quotes */
    bool has_crc32c;
    uint32_t crc32c;
} sl__s3_part_info;

typedef struct sl__s3_xml sl__s3_xml;

/* A parser, or NULL (SL_ENOMEM in sl_last_error, or SL_ENOTSUP when the expat found at run time lacks its
 * entity-amplification limit). One per thread: a parser is never shared. Destroy with sl__s3_xml_destroy. */
sl__s3_xml *sl__s3_xml_new(void);
/* NULL ok. */
void sl__s3_xml_destroy(sl__s3_xml *x);

/* Starts an answer, forgetting the one before (its page and result). `expect` is the root element the request
 * answers with (SL__S3_DOC_ERROR when only an error can come, e.g. after a failed status); <Error> is accepted
 * whatever is expected. `what` names the request's target in messages ("s3://bucket/key", "s3://bucket/prefix");
 * it is copied (cut to 1 KiB). Returns 0 or SL_ENOMEM. */
int sl__s3_xml_begin(sl__s3_xml *x, sl__s3_doc expect, const char *what);
/* Feeds the next len bytes of the answer. Returns 0, or <0 with sl_last_error set, and then every later feed and
 * sl__s3_xml_end return the same code and set the same message again (so that the reason survives the transfer
 * error sl__http_perform reports for a transfer the parser stopped): SL_ECORRUPT for what is refused (above),
 * SL_NAMETOOLONG for a key or prefix over SL__S3_KEY_MAX bytes, SL_ETOOBIG for a page over its caps or an answer over
 * SL__S3_XML_BODY_CAP, SL_ENOMEM. */
int sl__s3_xml_feed(sl__s3_xml *x, const void *data, size_t len);
/* The code the answer failed with while it was fed (0 while it has not): tells a transfer the parser stopped from
 * one that broke. */
int sl__s3_xml_failed(const sl__s3_xml *x);
/* The same, as an sl__http_write_fn (user_data: the parser): returns len, or 0 to stop the transfer once the answer
 * failed (sl__http_perform then fails; sl__s3_xml_end gives the parser's reason). */
size_t sl__s3_xml_write(void *user_data, const void *data, size_t len);
/* After the last byte: checks that a whole document came, and for a listing decodes its keys (below). Returns 0, or
 * <0 as sl__s3_xml_feed (SL_ECORRUPT for a body that ends early, or an empty one except for SL__S3_DOC_DELETE, where
 * S3 may answer a quiet batch whose keys were all deleted with nothing). Only after a 0 are the accessors below
 * meaningful. */
int sl__s3_xml_end(sl__s3_xml *x);
/* Feeds a whole body (begin, feed, end): for tests and for bodies already collected. */
int sl__s3_xml_parse(sl__s3_xml *x, sl__s3_doc expect, const char *what, const void *body, size_t len);

/* The root element that came (after sl__s3_xml_end returned 0; SL__S3_DOC_NONE before). */
sl__s3_doc sl__s3_xml_root(const sl__s3_xml *x);
/* The <Error> answer; all fields "" unless the root was <Error>. Valid until the next sl__s3_xml_begin. */
const sl__s3_error *sl__s3_xml_error(const sl__s3_xml *x);
/* The single-value answers' fields. Valid until the next sl__s3_xml_begin. */
const sl__s3_result *sl__s3_xml_result(const sl__s3_xml *x);

/* ---- ListObjectsV2 (ListBucketResult) ----
 * The store asks with encoding-type=url, so that keys holding bytes XML 1.0 cannot carry (control characters) come
 * through: S3 then percent-encodes every Key, Prefix (of the answer and of each CommonPrefixes), StartAfter and
 * Delimiter, and says so with <EncodingType>url</EncodingType>. Those values are decoded when, and only when, the
 * answer says so (wherever the element comes in the body), as the AWS SDKs do: "%XX" is the byte XX and '+' a space.
 * A value that does not decode (a '%' without two hex digits), or decodes to something that is no key (a NUL byte,
 * text that is not UTF-8, more than SL__S3_KEY_MAX bytes), fails the answer with a message that quotes it.
 * NextContinuationToken is opaque and never decoded. */

/* IsTruncated: the listing goes on with the NextContinuationToken. */
bool sl__s3_xml_list_truncated(const sl__s3_xml *x);
/* NextContinuationToken, NULL when absent or empty. A truncated answer without one is the caller's to refuse. */
const char *sl__s3_xml_list_token(const sl__s3_xml *x);
/* KeyCount (-1 when absent): S3 counts Contents and CommonPrefixes together. */
int64_t sl__s3_xml_list_key_count(const sl__s3_xml *x);
/* The request's parameters as the answer gives them back, decoded like keys: the listing's own Prefix, Delimiter and
 * StartAfter; NULL when absent. Valid until the next sl__s3_xml_begin. */
typedef enum sl__s3_echo { SL__S3_ECHO_PREFIX = 0, SL__S3_ECHO_DELIMITER, SL__S3_ECHO_START_AFTER } sl__s3_echo;
const char *sl__s3_xml_list_echo(const sl__s3_xml *x, sl__s3_echo which);
/* EncodingType said "url". */
bool sl__s3_xml_list_url_encoded(const sl__s3_xml *x);
/* Contents and CommonPrefixes come sorted each, in byte order of the key; this merges them: 1 with *name the full
 * key (or prefix, as S3 gives it: it ends with the delimiter), decoded, NUL-terminated, *name_len bytes, valid until
 * the next sl__s3_xml_begin, and *out filled (out->key NULL: the caller cuts its prefix off; for a prefix only
 * is_prefix set). out->size is Size, out->mtime_ns LastModified (0 if it is not an ISO 8601 date), out->has_md5 and
 * out->md5 the ETag when it is MD5-shaped (see sl__s3_result.etag_md5 for when it is not the bytes' MD5). `info`
 * (NULL ok) receives what sl_object has no room for. 0 at the end. Each list's own order is not checked here
 * (sl_list_next checks the merged order). */
int sl__s3_xml_list_next(sl__s3_xml *x, const char **name, size_t *name_len, sl_object *out, sl__s3_entry *info);

/* ---- DeleteObjects (DeleteResult) ----
 * Calls fn once per <Deleted> and <Error> of the answer, in the order of the body, after sl__s3_xml_end returned 0:
 * a failed answer reports nothing (the caller then knows no key's outcome). fn returns 0 to go on or <0 to stop,
 * which this returns. Returns 0 when every outcome was reported. */
typedef int (*sl__s3_deleted_fn)(void *user_data, const sl__s3_deleted *outcome);
int sl__s3_xml_deleted_each(const sl__s3_xml *x, sl__s3_deleted_fn fn, void *user_data);

/* ---- ListParts (ListPartsResult) ----
 * The parts in the order of the body: 1 and *out (etag valid until the next sl__s3_xml_begin), 0 at the end. */
int sl__s3_xml_part_next(sl__s3_xml *x, sl__s3_part_info *out);
/* IsTruncated and NextPartNumberMarker (0 when absent). */
bool sl__s3_xml_parts_truncated(const sl__s3_xml *x);
unsigned sl__s3_xml_parts_next_marker(const sl__s3_xml *x);

/* ---- errors ---- */

/* What to do about a failed request, from its <Error> Code, or from its HTTP status when there is no code. */
typedef enum sl__s3_error_class {
    SL__S3_ERR_OTHER = 0,    /* fail the object (SL_EIO) */
    SL__S3_ERR_RETRY,        /* InternalError, SlowDown, ServiceUnavailable, RequestTimeout, throttling; a code-less
                              * 408, 429 or 5xx: back off and retry (SL_EIO) */
    SL__S3_ERR_REFRESH,      /* ExpiredToken, TokenRefreshRequired: refresh the credentials once, retry (SL_EACCES) */
    SL__S3_ERR_REGION,       /* AuthorizationHeaderMalformed, PermanentRedirect, TemporaryRedirect, a code-less 301
                              * or 307: use sl__s3_error.region / .endpoint (or x-amz-bucket-region) once (SL_EIO) */
    SL__S3_ERR_NOT_FOUND,    /* NoSuchKey, NoSuchBucket, NoSuchUpload, NoSuchVersion, a code-less 404 (SL_ENOENT) */
    SL__S3_ERR_PRECONDITION, /* PreconditionFailed, a code-less 412: the object changed meanwhile (SL_EEXIST) */
    SL__S3_ERR_CORRUPT,      /* BadDigest, InvalidDigest, XAmzContentSHA256Mismatch, IncompleteBody: the bytes sent
                              * were damaged or cut on the way and nothing was stored: send again (SL_ECORRUPT) */
    SL__S3_ERR_DENIED,       /* AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, AllAccessDisabled,
                              * AccountProblem, InvalidToken, a code-less 401 or 403 (SL_EACCES) */
    SL__S3_ERR_RANGE,        /* InvalidRange, a code-less 416 (SL_ERANGE) */
} sl__s3_error_class;

/* The class of `code` ("" or NULL: none) answered with `status`. A code decides over the status. */
sl__s3_error_class sl__s3_error_classify(const char *code, long status);
/* The SL_E* code for a class (above, in brackets). */
int sl__s3_error_errno(sl__s3_error_class cls);

/* The secret filter messages go through: true when `text` must not be shown because it quotes a credential (the
 * store passes the AWS credential chain's, as the gs:// store passes sl__gcs_auth_mentions_secret). */
typedef bool (*sl__s3_secret_fn)(void *user_data, const char *text);

/* Writes the one-line message for a failed request: "s3://BUCKET/KEY: Code: Message" (key NULL or "": "s3://BUCKET:
 * ..."); without a code "s3://BUCKET/KEY: HTTP <status>" and the message if any. The key is escaped for one line
 * (sl_text_escape); the server's text (code and message) goes through `secret` (NULL: none) and is replaced by "(the
 * server's message is not shown: it quotes a credential)" when it quotes one. e NULL: as if everything were "".
 * NUL-terminated within cap (cut in the middle like sl__fail's messages); returns the length written. */
size_t sl__s3_error_line(char *buf, size_t cap, const char *bucket, const char *key, long status, const sl__s3_error *e,
                         sl__s3_secret_fn secret, void *secret_data);

/* The region a GetBucketLocation LocationConstraint names: "" (and absent) is us-east-1, "EU" eu-west-1, anything
 * else itself. Writes it NUL-terminated to out (cap bytes); false when it is no region name (other than lowercase
 * letters, digits and '-', or longer than cap - 1). */
bool sl__s3_region_of(const char *constraint, char *out, size_t cap);

/* ---- fields (shared with the store's header parsing) ---- */

/* ISO 8601 as S3 sends LastModified ("2026-11-25T10:23:00.000Z"; also a zone "+HH:MM" / "-HH:MM", or any number of
 * fraction digits, of which the first nine count) to ns since the epoch; 0 for anything else: no zone, a field out of
 * its range (day 31 of a 30-day month, 25:00, second 61; second 60 is the next minute's 0), or a time out of what
 * int64 ns can hold (years 1678 to 2261). len bytes, need not be NUL-terminated. */
int64_t sl__s3_parse_time(const char *s, size_t len);
/* An ETag (len bytes, with or without its quotes, as a header or a body gives it) without its quotes into out
 * (SL__S3_ETAG_MAX + 1 bytes), and whether it is an MD5 (32 hex digits) with the digest in md5 (NULL ok). False when
 * it is empty, longer than SL__S3_ETAG_MAX, or holds a byte outside printable ASCII or a quote inside. */
bool sl__s3_etag_parse(const char *s, size_t len, char *out, bool *is_md5, unsigned char *md5);
/* A CRC32C as S3 sends it (x-amz-checksum-crc32c, ChecksumCRC32C: base64 of 4 big-endian bytes), len bytes; false if
 * it is not that. */
bool sl__s3_crc32c_parse(const char *s, size_t len, uint32_t *crc);
/* The same written as S3 takes it: 8 characters and a NUL into out[9]. */
void sl__s3_crc32c_format(uint32_t crc, char out[9]);

/* ---- bodies sent ----
 * Written into a caller's buffer, which is never grown: sl__s3_body. None of these computes a digest: DeleteObjects
 * needs Content-MD5 (or an x-amz-checksum-*) of the finished body, which the caller computes over body.data/len once
 * it is finished, as the CRC32C of any body it sends. */
typedef struct sl__s3_body {
    char *data;         /* the caller's buffer */
    size_t cap;         /* its size */
    size_t len;         /* bytes written so far (no NUL is written) */
    size_t count;       /* objects or parts added */
    unsigned last_part; /* CompleteMultipartUpload: the last part number added */
    bool finished;
} sl__s3_body;

/* CompleteMultipartUpload: <CompleteMultipartUpload xmlns="..."><Part><PartNumber>N</PartNumber><ETag>"..."</ETag>
 * [<ChecksumCRC32C>...</ChecksumCRC32C>]</Part>...</CompleteMultipartUpload>.
 * SL__S3_COMPLETE_CAP(n) bytes always hold n parts whatever their ETags. */
#define SL__S3_COMPLETE_PART_MAX ((size_t)(96 + 6 + SL__S3_ETAG_MAX + 6 + 40))
#define SL__S3_COMPLETE_CAP(n) ((size_t)160 + (size_t)(n)*SL__S3_COMPLETE_PART_MAX)
/* Starts the body in data (cap bytes). SL_ETOOBIG when cap cannot hold even an empty one. */
int sl__s3_complete_begin(sl__s3_body *b, char *data, size_t cap);
/* Adds a part: `number` 1 to 10,000 and greater than the one before (S3 wants them ascending), `etag` as UploadPart
 * or UploadPartCopy answered it (quotes or not; sl__s3_etag_parse must take it), the CRC32C sent with the part when
 * has_crc32c. SL_EINVAL for a number or an ETag that is not that (naming it), SL_ETOOBIG when the buffer is full; the
 * body is unchanged by a failed call. */
int sl__s3_complete_add(sl__s3_body *b, unsigned number, const char *etag, bool has_crc32c, uint32_t crc32c);
/* Closes the body: SL_EINVAL with no part, SL_ETOOBIG when the buffer is full. */
int sl__s3_complete_end(sl__s3_body *b);

/* DeleteObjects: <Delete xmlns="..."><Quiet>true</Quiet><Object><Key>...</Key></Object>...</Delete>, at most
 * SL__S3_PAGE_MAX keys. A key is written with & < > " ' escaped and CR, LF and TAB as character references (XML
 * readers turn a CR into LF otherwise); a key XML 1.0 cannot carry (another control character, U+FFFE, U+FFFF), that
 * is not UTF-8, empty, or longer than SL__S3_KEY_MAX, is refused with SL_EINVAL and a message quoting it (escaped):
 * S3 cannot take it in this body either; delete such an object alone (DeleteObject). `quiet`: S3 answers only the
 * keys it failed to delete. */
int sl__s3_delete_begin(sl__s3_body *b, char *data, size_t cap, bool quiet);
/* Adds a key (len bytes). SL_EINVAL as above, SL_ETOOBIG when the buffer cannot hold it with the closing tag or the
 * body has SL__S3_PAGE_MAX keys already (send it and start the next with this key); the body is unchanged by a failed
 * call. `what` names the store in messages ("s3://bucket"). */
int sl__s3_delete_add(sl__s3_body *b, const char *key, size_t len, const char *what);
/* Closes the body: SL_EINVAL with no key. */
int sl__s3_delete_end(sl__s3_body *b);

#endif /* SLUICE_S3_XML_H */
