/* Resume without a state file: what makes an output "complete", and the destination cursor that finds each output
 * in a destination listing walked once, alongside the source listing (constant memory).
 *
 * When sluice commits an output it records the fingerprint of the source object it was made from, and of the job
 * that made it, with the output (local: the xattr user.sluice.source; gs://: the custom metadata sluice-source):
 *
 *     size=<bytes> gen=<generation> [crc32c=<8 hex>] [enc=<encoding>] job=<tag>     (sources with generations: gs://)
 *     size=<bytes> mtime=<ns since the epoch> [crc32c=<8 hex>] job=<tag>     (local sources)
 *
 * size and crc32c are the source's as its store lists it; enc=gzip says the source is stored gzip-compressed and the
 * output was made from its decompressed bytes (sl_object.content_encoding).
 *
 * An output is complete when it exists and its recorded fingerprint matches the current source's: same size, same
 * generation (or mtime), same encoding, same job tag, and the same CRC32C when both sides know one. A store reports a
 * recorded fingerprint only while the output is still exactly what was committed (local: the file's own size and
 * mtime are recorded beside it; gs://: the object's own size and CRC32C, and a resumable upload gets its fingerprint
 * only once its object has been checked), so no fingerprint ever vouches for an output cut short or changed since. */
#ifndef SLUICE_RESUME_H
#define SLUICE_RESUME_H

#include "sluice/store.h"

#include <stdatomic.h>

#define SL__FP_CAP 192     /* a formatted fingerprint with its NUL, job tag included */
#define SL__JOB_TAG_CAP 48 /* a job tag with its NUL */
#define SL__ENC_CAP 16     /* a content encoding with its NUL */

typedef struct sl__fingerprint {
    uint64_t size;
    bool has_gen;    /* version is a generation; otherwise an mtime in ns */
    int64_t version; /* never 0 */
    bool has_crc32c;
    uint32_t crc32c;
    char enc[SL__ENC_CAP]; /* "" when the source is stored as it reads */
    char job[SL__JOB_TAG_CAP];
} sl__fingerprint;

/* The fingerprint of `src` made by the job `job_tag` into buf. Returns its length, or 0 (buf = "") when the object
 * has neither a generation nor an mtime (nothing trustworthy to record) or it does not fit. */
size_t sl__fp_format(const sl_object *src, const char *job_tag, char *buf, size_t cap);
/* Parses a recorded fingerprint. False for anything that is not exactly the format above (unknown fields, a missing
 * size, version or job, a version of 0, numbers out of range). */
bool sl__fp_parse(const char *text, sl__fingerprint *out);
/* The record of a local output (its xattr), in a compact form: the text "<out size> <out mtime_ns> <fingerprint>
 * out_crc32c=<8 hex>" (the form older versions wrote, still read) takes ~90 bytes, more than ext4 keeps in a
 * 256-byte inode (56 bytes of value under the name user.sluice.source), so each small output got a 4 KiB xattr block
 * of its own: 17 us more kernel time per file and the disk space. The compact one is binary:
 *
 *     0x01, out size (varint), out mtime_ns (zigzag varint), out CRC32C (4 bytes, little-endian),
 *     flags (1: gen, 2: crc32c, 4: enc), size (varint), gen or mtime (varint), [crc32c (4 bytes LE)],
 *     [enc length (1 byte), enc], job (the remaining bytes)
 *
 * 36 bytes for a copy. Encode returns its length, or 0 when the fingerprint is not one sl__fp_format makes or does
 * not fit in cap; decode makes the text form from it, false for anything that is not exactly such a record. */
#define SL__FP_RECORD_TAG 0x01
size_t sl__fp_record_encode(unsigned char *out, size_t cap, uint64_t out_size, int64_t out_mtime_ns,
                            uint32_t out_crc32c, const char *fingerprint);
bool sl__fp_record_decode(const unsigned char *in, size_t n, char *text, size_t cap);

/* True when `recorded` (NULL ok) is the fingerprint of `src` made by `job_tag`. */
bool sl__fp_matches(const char *recorded, const sl_object *src, const char *job_tag);

/* The job tag: "copy" for cp and sync (the same output), "op:<name>" for a built-in, "exec:<crc32c of argv joined
 * by NUL>", "shell:<crc32c of the command>", "plugin:<crc32c>" for an op given by the caller (sl_job_options.op). */
void sl__job_tag_copy(char out[SL__JOB_TAG_CAP]);
void sl__job_tag_op(const char *name, char out[SL__JOB_TAG_CAP]);
void sl__job_tag_exec(const char *const *argv, char out[SL__JOB_TAG_CAP]);
void sl__job_tag_shell(const char *command, char out[SL__JOB_TAG_CAP]);
/* "worker:<crc32c of argv joined by NUL>", or with use_shell "worker-shell:<crc32c of the command>" (map --worker). */
void sl__job_tag_worker(const char *const *argv, bool use_shell, const char *command, char out[SL__JOB_TAG_CAP]);
/* "plugin:<crc32c of name, version and the arguments sorted, each followed by a NUL>" for an op of the caller's. */
void sl__job_tag_plugin(const char *name, const char *version, const char *const *args, size_t arg_count,
                        char out[SL__JOB_TAG_CAP]);

/* What to do with one source object, given what the destination holds under its output key. */
typedef enum sl__resume_action {
    SL__RESUME_DO = 0, /* no complete output: process the object */
    SL__RESUME_SKIP,   /* the output is complete */
    SL__RESUME_VERIFY, /* cp/sync: an output sluice did not record; same size, so compare checksums */
} sl__resume_action;

/* dst NULL: no output. compare_content: cp/sync (an output of the same size may be identical); false for map, whose
 * output can only be known complete by its fingerprint. For cp/sync a fingerprint match also needs the same size and
 * the same CRC32C when both sides know one, unless the source is encoded (its copy holds the decompressed bytes); an
 * output sluice did not record is compared by content only when both sides are stored alike. */
sl__resume_action sl__resume_decide(const sl_object *src, const sl_object *dst, const char *job_tag,
                                    bool compare_content);

#define SL__CURSOR_KEY_CAP 4352 /* the longest output key (local PATH_MAX plus a suffix) with its NUL */

/* A forward-only cursor over the destination listing. Output keys are looked up in the order the source listing
 * produces them; as long as that order is ascending (always when the output key is the source key) each lookup only
 * moves the cursor forward, so the whole destination is read once. With a suffix the output keys can go backwards
 * ("a" < "a.b" but "a.b.out" < "a.out"): such a key may already be behind the cursor, and the lookup answers
 * "unknown" so that the caller asks the store for that one key. Memory: one listing page and one key.
 *
 * The destination listing is merged whether it is sorted in byte order or in UTF-16 order (as some servers sort):
 * a key the two orders place differently against the cursor's object is "unknown". A listing in neither order (a
 * repeated key, a step backwards) is abandoned where it shows, and every later key is "unknown"; keys judged absent
 * before that may then be redone (never lost). */
typedef struct sl__dst_cursor {
    sl_lister *lister; /* NULL: the destination holds nothing */
    int state;         /* 1: obj holds the next destination object; 0: the listing is exhausted */
    sl_object obj;
    bool has_last;
    bool unordered; /* the listing went out of order: closed, every lookup answers "unknown" */
    bool lookup;    /* the store lists no fingerprints (fingerprints_by_lookup): a key found answers "unknown" */
    size_t last_len;
    char last[SL__CURSOR_KEY_CAP]; /* the greatest key looked up so far */
} sl__dst_cursor;

/* Opens the destination listing (recursive, with fingerprints; clean_stale: also remove leftover temp files of
 * writers that are gone, sl_list_options.clean_stale). A destination that does not exist yet is an empty one.
 * Returns 0 or <0. */
int sl__dst_cursor_open(sl__dst_cursor *cur, sl_client *dst, bool clean_stale);
/* Looks up `key`. Returns 1 and *out (valid until the next call) when the destination holds it, 0 when it does not,
 * 2 when it cannot tell (the key is below one looked up before, or it is there but its store lists no fingerprints:
 * the caller looks it up), <0 on a listing error. */
int sl__dst_cursor_seek(sl__dst_cursor *cur, const char *key, size_t len, const sl_object **out);
/* Reads the rest of the listing (so a cleaning listing visits every directory). Returns 0 or <0. */
int sl__dst_cursor_drain(sl__dst_cursor *cur, const atomic_bool *stop);
/* NULL lister ok. */
void sl__dst_cursor_close(sl__dst_cursor *cur);

#endif
