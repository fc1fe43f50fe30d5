/* The reading side of the worker protocol (docs/worker-protocol.md): lines out of the bytes a worker writes, and the
 * answer to one request (chunks, then a final line), apart from pipes and processes so that it is tested and fuzzed on
 * its own (tests/fuzz/fuzz_worker_answer.c). op_worker.c owns the buffers and does the reading; nothing here allocates
 * except the jansson values it returns. */
#ifndef SLUICE_WORKER_PROTO_H
#define SLUICE_WORKER_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL__WP_LINE_MAX (128 * 1024) /* a protocol line, its LF included */

/* What has been read from the worker and not used yet (buf[pos..len)), and the line being assembled from it (`line`
 * has room for SL__WP_LINE_MAX bytes and a NUL). */
typedef struct sl__wp_in {
    unsigned char *buf;
    size_t pos, len;
    char *line;
    size_t line_len;
} sl__wp_in;

typedef enum sl__wp_got { SL__WP_NONE, SL__WP_LINE, SL__WP_TOO_LONG } sl__wp_got;

/* True when s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
bool sl__wp_utf8_valid(const char *s, size_t n);

/* Takes a line out of in->buf if a whole one is there: in->line then holds it without its LF, NUL-terminated
 * (in->line_len its length; the caller sets line_len to 0 once done with it). SL__WP_NONE: all of buf is used and the
 * line goes on. SL__WP_TOO_LONG: the line passes SL__WP_LINE_MAX. */
sl__wp_got sl__wp_take_line(sl__wp_in *in);

/* Parses a line as a JSON object in valid UTF-8 with unique member names; NULL and `why` filled otherwise. */
json_t *sl__wp_parse_line(const char *line, size_t len, char *why, size_t cap);

/* *out = v when v is an integer from 0 to max. */
bool sl__wp_count(const json_t *v, uint64_t max, uint64_t *out);

/* Receives bytes of an output body: 0, or <0 (a local failure, returned by sl__wp_answer_feed as it is). */
typedef int (*sl__wp_deliver_fn)(void *ctx, const unsigned char *p, size_t n);

/* One answer being read. Zero it (keeping final_text, a buffer of SL__WP_LINE_MAX + 1 bytes) before each request. */
typedef struct sl__wp_answer {
    bool begun;    /* a byte of the answer came */
    bool in_chunk; /* inside a chunk's bytes: chunk_left of them still to come */
    uint64_t chunk_left;
    uint64_t body;   /* bytes of output chunks so far */
    unsigned chunks; /* chunk lines so far */
    bool final;      /* a valid final line came: ok, has_body, final_json and final_text hold it */
    bool ok;
    bool has_body; /* "ok":true with "size" */
    json_t *final_json;
    char *final_text; /* the final line as written, for its result members */
    size_t final_len;
    char why[512]; /* the violation, when feed returns 1 */
} sl__wp_answer;

/* Uses what is in `in` for the answer until it is final or the bytes run out; the output body goes to deliver.
 * Returns 0 (go on: a->final tells whether the answer is whole), 1 (a protocol violation: a->why), or the negative
 * code deliver returned. Bytes after the final line stay in `in` (they belong to no answer yet). */
int sl__wp_answer_feed(sl__wp_answer *a, sl__wp_in *in, sl__wp_deliver_fn deliver, void *ctx);

/* Calls fn with the raw text of each member name and value of the "result" object of a final line that
 * sl__wp_parse_line accepted (numbers keep their digits, strings their escapes), in order, stopping at the first
 * non-zero return, which it returns. 0 when there is no "result" object. */
typedef int (*sl__wp_member_fn)(void *ctx, const char *name, size_t name_len, const char *value, size_t value_len);
int sl__wp_result_members(const char *text, size_t len, sl__wp_member_fn fn, void *ctx);

#endif
