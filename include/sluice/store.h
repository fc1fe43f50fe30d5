/* Stores: where objects live. One interface, several implementations (local directory now; gs:// and s3:// later).
 *
 * Threads: an sl_store is shared by all threads and is thread-safe. Every I/O call goes through an sl_client,
 * which belongs to exactly one thread for its whole life: a worker creates its client once when it starts and
 * reuses it for every object until it exits (this is where HTTP connections and TLS sessions live). An sl_client,
 * and the listers, readers and writers made from it, must never be used from two threads.
 *
 * Keys are '/'-separated paths relative to the store's prefix (the URL the store was opened with). Every store
 * lists keys in the byte order of the full key (memcmp order), the order GCS and S3 use. A local key is at most 4,095
 * bytes (SL_ENAMETOOLONG beyond), however long the root's path: the store works relative to directory fds. */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include "sluice/error.h"

#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_scheme {
    SL_SCHEME_FILE = 1, /* file:///abs/path or a plain path */
    SL_SCHEME_GS = 2,   /* gs://bucket/prefix */
    SL_SCHEME_S3 = 3,   /* s3://bucket/prefix */
} sl_scheme;

/* A parsed URL. All strings are owned by the struct; free with sl_url_free. */
typedef struct sl_url {
    sl_scheme scheme;
    char *bucket;        /* gs/s3: bucket name; file: NULL */
    char *path;          /* gs/s3: object name or prefix exactly as given after the '/' that ends the bucket (may be "",
                          * may keep a trailing '/'); file: absolute normalised path, no trailing '/' except for "/" */
    bool trailing_slash; /* the text ended in '/': the URL names a prefix, never a single object */
} sl_url;

/* Parse `text`: "gs://bucket/prefix", "s3://bucket/prefix", "file:///abs/path" (percent-decoded, host empty or
 * "localhost"), or a plain path (relative paths are made absolute against the current directory; no decoding).
 * A local path's ".." is resolved the way the kernel resolves it: after a symbolic link it leaves the link's target
 * (the part before it is then spelled as its realpath); elsewhere, and in a part that does not exist yet, it drops the
 * component before it. On failure returns SL_EBADURL (SL_ENAMETOOLONG for a path over PATH_MAX, SL_ENOENT/SL_EACCES
 * when a relative path cannot be resolved or a ".." follows a dangling link or an unreadable directory, SL_ENOTDIR
 * when it follows a file, SL_ENOMEM) and sets sl_last_error() to a message that quotes the text and says what is
 * wrong.
 * `out` is zeroed on failure. */
SL_API int sl_url_parse(const char *text, sl_url *out);
/* Frees the strings of `url` (NULL ok) and zeroes it. */
SL_API void sl_url_free(sl_url *url);

/* Metadata of one object, or of a common prefix in a one-level listing. */
typedef struct sl_object {
    const char *key; /* relative to the store prefix; NUL-terminated; owned by whoever filled the struct and valid
                      * until that owner's next call (sl_list_next) or as documented by the call */
    size_t key_len;
    uint64_t size;      /* bytes */
    int64_t mtime_ns;   /* last modification, ns since the Unix epoch; 0 if unknown */
    int64_t generation; /* GCS generation / 0 when the store has none */
    uint32_t crc32c;    /* valid when has_crc32c */
    bool has_crc32c;
    bool has_md5;
    bool is_prefix;        /* one-level listings only: a common prefix ("dir/"), not an object */
    unsigned char md5[16]; /* valid when has_md5 */
    /* What sl_write_options.source_fingerprint recorded when this object was committed, or NULL: when nothing was
     * recorded, when the listing did not ask for it (sl_list_options.fingerprints), or, in a local directory, when
     * the file's size or mtime changed since that commit. Valid as long as key is. Filled by sl_stat always. */
    const char *source_fingerprint;
    /* How the store keeps the object's bytes, when that is not how sl_read gives them: "gzip" for a gs:// object
     * stored with Content-Encoding: gzip (what `gcloud storage cp -Z` makes), which sl_read decompresses; NULL for
     * every other object. `size`, `crc32c` and `md5` describe the stored (compressed) bytes. A static string. */
    const char *content_encoding;
    /* Local store, beside a source_fingerprint only: the CRC32C of the file's bytes as the writer computed it while
     * writing them, recorded with the fingerprint at commit (valid when has_committed_crc32c). The file's size and
     * mtime vouch that nothing rewrote it since, but not that its bytes reached the disk: a file torn by a power loss
     * after a commit without sl_write_options.fsync keeps its size, mtime and this record with other bytes, which only
     * reading it shows (what a job's verify does). Not set by other stores (gs://: crc32c is the server's own). */
    bool has_committed_crc32c;
    uint32_t committed_crc32c;
} sl_object;

typedef struct sl_store sl_store;
typedef struct sl_client sl_client;
typedef struct sl_lister sl_lister;
typedef struct sl_reader sl_reader;
typedef struct sl_writer sl_writer;

#define SL_NO_RETRIES 0xFFFFFFFFu

/* Options for opening a store; all fields optional (zero = default). Local stores ignore them. */
typedef struct sl_store_options {
    /* gs://: the JSON API endpoint, e.g. "http://127.0.0.1:9023". Default: CLOUD_STORAGE_EMULATOR_ENDPOINT, then
     * STORAGE_EMULATOR_HOST (both mean an emulator: anonymous access), then https://storage.googleapis.com. */
    const char *endpoint;
    bool anonymous;         /* send no credentials */
    const char *token_file; /* gs://: a file holding an OAuth2 access token */
    /* Retries of transport errors, 408, 429 and 5xx: exponential backoff with full jitter. */
    unsigned retries;           /* attempts after the first; 0 = 5; SL_NO_RETRIES for none */
    unsigned retry_initial_ms;  /* 0 = 100 */
    unsigned retry_max_ms;      /* 0 = 10000 */
    unsigned retry_deadline_ms; /* 0 = 120000 */
    /* gs://: objects up to this size are uploaded in one request; larger ones in a resumable upload of chunks of
     * this size (rounded up to a multiple of 256 KiB, the unit GCS takes chunks in; the sluice command refuses other
     * sizes instead). 0 = 8 MiB. Memory: a writer holds one chunk at most (plus
     * 16.25 KiB of headers) while it is open, and its client keeps 256 KiB of it between objects; a job's stores take
     * that memory from the job's budget instead (sl_job_options.memory_limit_bytes), in smaller chunks when the
     * budget has no whole chunk to spare. */
    uint64_t upload_chunk_bytes;
    /* Extra "Name: value" headers sent with every request to a remote store (NULL-terminated, at most 16), e.g.
     * a test server's fault-injection id. */
    const char *const *headers;
    /* s3://: path-style addressing (http://endpoint/bucket/key) even for AWS's own endpoint; it is always used for a
     * custom endpoint (endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, a profile's endpoint_url), and for a bucket
     * with a '.' in its name over https (its virtual host would not match the certificate). */
    bool s3_path_style;
    /* s3://: the profile of the shared AWS files (NULL: AWS_PROFILE, else "default"), and the region (NULL:
     * AWS_REGION, AWS_DEFAULT_REGION, the profile's, else us-east-1). */
    const char *s3_profile;
    const char *s3_region;
} sl_store_options;

/* Opens the store for `url`, treating the URL as a prefix ("directory"). A local directory need not exist yet
 * (a destination is created on first write); sl_list_open on a missing local directory fails with SL_ENOENT.
 * Caller closes with sl_store_close. */
SL_API int sl_store_open(const char *url, const sl_store_options *opts, sl_store **out);
/* Like sl_store_open, for a source: if the URL names a single object (a regular file), opens the store on its
 * parent and sets *single_key to the object's key (caller frees with free()); otherwise *single_key = NULL and the
 * URL is a prefix. A prefix that does not exist is not an error here: listing it fails with SL_ENOENT (local) or
 * yields nothing (buckets), as the store's listing decides. In a bucket a name can be both an object and a prefix
 * holding objects (gs://b/p and gs://b/p/x): this says "one object"; sl_prefix_probe(client, "<key>/") on the parent
 * tells whether the prefix holds objects too, and sl_prefix_probe(client, NULL) whether an empty prefix exists. */
SL_API int sl_store_open_source(const char *url, const sl_store_options *opts, sl_store **out, char **single_key);

/* What a prefix holds, as sl_prefix_probe finds it. */
typedef enum sl_prefix_state {
    SL_PREFIX_MISSING = 0, /* nothing: no object has a name under it, and it is no directory */
    SL_PREFIX_EMPTY = 1,   /* it exists but holds no object: an empty local directory, the root of an empty bucket, or
                            * a folder placeholder alone (the object named like the prefix, "p/", that consoles make) */
    SL_PREFIX_OBJECTS = 2, /* at least one object under it (a local directory: at least one entry) */
} sl_prefix_state;

/* Looks up what the client's store prefix holds, or with `sub` (a key prefix ending in '/', e.g. "p/"; NULL or "" for
 * none) what that key prefix inside it holds: one small request (gs://: a listing of at most two names; local: one
 * directory read). Returns an sl_prefix_state, or <0: SL_ENOENT naming the bucket when the bucket does not exist, a
 * local path that is something else than a directory (a FIFO, a device) or cannot be read, any failed request.
 * A bucket has no directories: sl_store_open_source cannot tell a missing prefix from an empty one, this can. */
SL_API int sl_prefix_probe(sl_client *client, const char *sub);
/* NULL ok. All clients made from the store must be destroyed first. */
SL_API void sl_store_close(sl_store *store);
/* The store's canonical URL prefix, e.g. "file:///data/in" or "gs://bucket/prefix". Owned by the store. */
SL_API const char *sl_store_url(const sl_store *store);
/* Scheme of the store. */
SL_API sl_scheme sl_store_scheme(const sl_store *store);
/* Writes the canonical URL of `key` in `store` to buf (NUL-terminated, truncated to cap). Returns the full length. */
SL_API size_t sl_store_key_url(const sl_store *store, const char *key, char *buf, size_t cap);

/* Creates the calling thread's client for `store`. Call once per thread, at thread start; reuse for every
 * operation; destroy at thread exit. */
SL_API int sl_client_new(sl_store *store, sl_client **out);
/* NULL ok. Closes any lister/reader/writer still open on the client. */
SL_API void sl_client_destroy(sl_client *client);

/* Abandoning requests from outside: binds `flag` (NULL unbinds) to the calling thread. While *flag is non-zero, every
 * request a remote store makes on this thread (a listing page, a stat, a read, a token fetch, and the start-up
 * requests of sl_job_new made on it) fails within a fraction of a second with SL_ECANCELED, and retry waits end. Set
 * it from a signal handler to stop a command promptly; the flag must outlive the binding. A job's own threads answer
 * to the job instead (sl_job_abort). */
SL_API void sl_thread_bind_abort(const volatile sig_atomic_t *flag);

typedef struct sl_list_options {
    bool recursive;          /* false: one level, sub-"directories" reported as is_prefix objects ending in '/' */
    const char *start_after; /* list only keys > start_after (byte order); NULL = from the start */
    size_t page_size;        /* objects per page/batch asked of the backend; 0 = default */
    bool fingerprints;       /* fill sl_object.source_fingerprint (local: one getxattr per file) */
    /* Local: remove the temp files of interrupted writes whose process is gone while listing. Temp files are the
     * regular files named exactly ".sluice-tmp-" and six ASCII letters or digits (no listing shows them); a writer
     * holds a lock on its temp file for its whole life, so one nobody holds a lock on is a leftover. */
    bool clean_stale;
    /* Local: a subdirectory that cannot be opened (permission denied, recursive listings), or a file or directory
     * whose key would be longer than 4,095 bytes (SL_ENAMETOOLONG, with everything under it), is skipped, and this is
     * called with its key (a directory's ending in '/'; at most 4,095 + 256 bytes), the error and a one-line message,
     * from the thread calling sl_list_next; the listing goes on. NULL: sl_list_next returns the error instead, and the
     * next call goes on after it. */
    void (*on_skipped)(void *user_data, const char *key, size_t key_len, int err, const char *message);
    void *on_skipped_data;
} sl_list_options;

/* Starts a streaming listing of the whole store prefix, in byte order of the key. Memory does not grow with the
 * number of objects. Caller closes with sl_list_close. */
SL_API int sl_list_open(sl_client *client, const sl_list_options *opts, sl_lister **out);
/* Fills *out with the next object. Returns 1 if an object was produced, 0 at the end, <0 on error. out->key stays
 * valid until the next sl_list_next / sl_list_close on this lister. */
SL_API int sl_list_next(sl_lister *lister, sl_object *out);
/* NULL ok. */
SL_API void sl_list_close(sl_lister *lister);

/* Metadata of one object. out->key is set to `key`. SL_ENOENT if absent (a directory is absent, not an object). */
SL_API int sl_stat(sl_client *client, const char *key, sl_object *out);

#define SL_LENGTH_TO_END UINT64_MAX
/* Opens `key` for streaming reads of bytes [offset, offset+length) (length SL_LENGTH_TO_END = to the end).
 * An offset past the end fails with SL_ERANGE. If `info` is non-NULL it receives the object's metadata
 * (info->key = key). Caller closes with sl_read_close. Local store: the bytes delivered are those of the file as it
 * was when opened; if its size or mtime changed, the read that reaches the end of the range fails with SL_EIO instead
 * of returning the last bytes. A file the file system reports as 0 bytes long although it has content (/proc) is
 * read to its end (info->size stays 0); a 0-byte range of it (what "-N" gives for a 0-byte object) fails with
 * SL_ERANGE.
 *
 * What is read is verified: a whole read against the object's size and CRC32C (SL_ECORRUPT from sl_read, before
 * it returns the end, when they differ), a range against the range asked for. An object whose content_encoding is
 * "gzip" is read as its decompressed bytes (its stored bytes are what is checked), and offset and length count
 * decompressed bytes: the bytes before the offset are read and dropped. */
SL_API int sl_read_open(sl_client *client, const char *key, uint64_t offset, uint64_t length, sl_object *info,
                        sl_reader **out);
/* Turns a range as users write it into sl_read_open's offset and length for an object of `size` bytes: "A-B" bytes A
 * to B inclusive (0-based, B >= A), "A-" from A to the end (length SL_LENGTH_TO_END), "-N" the last N bytes (the
 * whole object when N >= size). Decimal digits only. An A at or past the end is not checked here: sl_read_open
 * answers SL_ERANGE. Returns 0, or SL_EINVAL for anything else. */
SL_API int sl_range_parse(const char *spec, uint64_t size, uint64_t *offset, uint64_t *length);
/* Reads up to cap bytes. Returns bytes read (>0), 0 at the end of the range, <0 on error. */
SL_API int64_t sl_read(sl_reader *reader, void *buf, size_t cap);
/* NULL ok. */
SL_API void sl_read_close(sl_reader *reader);

typedef struct sl_write_options {
    uint64_t size_hint; /* expected size in bytes, 0 if unknown */
    /* If set (at most 255 bytes, printable ASCII), recorded with the object at commit and given back by listings
     * and sl_stat as sl_object.source_fingerprint. Local: the xattr user.sluice.source, set before the rename (a file
     * system that refuses xattrs stores nothing; the commit still succeeds); gs://: the custom metadata
     * sluice-source. */
    const char *source_fingerprint;
    /* gs://: what the caller found at the destination, which the write is conditional on. When
     * if_generation_match_set, the object must still be generation if_generation_match (0: no object) when the upload
     * lands (ifGenerationMatch). Every attempt carries it, the first one included, so that an attempt whose answer was
     * lost (a timeout, a reset) cannot land later as another generation: it fails its precondition instead. A
     * destination that changed meanwhile fails the commit with SL_EEXIST ("precondition failed: the object changed
     * meanwhile"), unless it then holds exactly the bytes written (an earlier attempt landed). Unset: the first
     * attempt carries no precondition, and a retry after an ambiguous failure the generation it finds then. Local:
     * ignored. */
    bool if_generation_match_set;
    int64_t if_generation_match;
    /* Local: when sl_write_commit returns 0, the file's bytes, its fingerprint and its name in its directory are on
     * disk (they survive a power loss or a kernel crash). Commits of the same store made at the same time by several
     * threads are grouped: one syncfs of the file system for the batch's data, then the renames, then one fsync per
     * directory they went into. Without it (the default) a commit is atomic but not synced: a process killed at any
     * moment leaves the previous object or the complete new one, but a power loss may leave the new name with bytes
     * that never reached the disk. gs://: ignored (an object exists only once the server has stored it). */
    bool fsync;
} sl_write_options;

/* Opens `key` for a streaming write. Nothing is visible under `key` until sl_write_commit succeeds; a crash or
 * sl_write_abort leaves the previous object (if any) untouched. Local store: a temp file in the target directory,
 * renamed into place (made durable first with opts->fsync; the temp file stays 0600 until then; the output gets
 * 0666 & ~umask); the file's CRC32C, computed while writing, is recorded beside a source fingerprint; keys that could
 * escape the destination ("..", absolute, empty components, a directory on the way that is a symbolic link) fail with
 * SL_EUNSAFEKEY. opts may be NULL. */
SL_API int sl_write_open(sl_client *client, const char *key, const sl_write_options *opts, sl_writer **out);
/* Appends len bytes. Returns 0 or <0. */
SL_API int sl_write(sl_writer *writer, const void *buf, size_t len);
/* Publishes the object atomically and frees the writer (also on failure). */
SL_API int sl_write_commit(sl_writer *writer);
/* Discards everything written and frees the writer. NULL ok. */
SL_API void sl_write_abort(sl_writer *writer);

/* Deletes one object. SL_ENOENT if absent. */
SL_API int sl_delete(sl_client *client, const char *key);

/* Output helpers shared by tools. */

/* Appends `s` (len bytes) to buf as a JSON string with quotes; bytes that are not valid UTF-8 are written as
 * \u00XX escapes of the byte (lossy but unambiguous for display). NUL-terminates within cap. Returns the length
 * the full output needs (excluding NUL), like snprintf. */
SL_API size_t sl_json_quote(char *buf, size_t cap, const char *s, size_t len);
/* Writes `s` to buf for one-line plain-text display: control characters as \n \t \r \xHH, backslash as \\.
 * Same return convention as sl_json_quote. */
SL_API size_t sl_text_escape(char *buf, size_t cap, const char *s, size_t len);
/* Formats one object as a JSON object on one line (no newline): {"key":..,"size":..,"updated":..,...,
 * "content_encoding":..} (the last only for an encoded object). Same return convention as snprintf. */
SL_API size_t sl_object_format_json(const sl_object *obj, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
