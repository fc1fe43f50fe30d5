/* The store interface every backend implements (local now; gcs and s3 later). Public calls in store.c check
 * arguments and dispatch through the vtable; backends embed the base structs below as their first member. */
#ifndef SLUICE_STORE_VTABLE_H
#define SLUICE_STORE_VTABLE_H

#include "sluice/store.h"

#include "pool.h"

/* What one client of a store costs in memory, for a job's budget (sl__store_memory_get). */
typedef struct sl__store_memory {
    size_t client_bytes;     /* held for the client's whole life at most: connection, TLS state, scratch */
    size_t writer_min_bytes; /* budget bytes a writer needs before it can write anything; 0: none */
} sl__store_memory;

/* A client whose store does not say (sl_store_vtable.memory): small scratch only. */
#define SL__CLIENT_BYTES_DEFAULT ((size_t)32 * 1024)

/* Called once a deferred commit is done: rc 0 when the output is durable under its name, else <0 with a one-line
 * message (valid during the call). Runs on the store's committer thread. */
typedef void (*sl__commit_fn)(void *ctx, int rc, const char *message);

/* One key's outcome in a batch delete (sl_store_vtable.del_batch): `index` into the keys given, rc 0 or <0, message
 * one line (NULL for rc 0), valid during the call. */
typedef void (*sl__delete_done_fn)(void *ctx, size_t index, int rc, const char *message);
#define SL__DELETE_BATCH_MAX 1000 /* keys in one batch: S3's DeleteObjects limit */

typedef struct sl_store_vtable {
    int (*client_new)(sl_store *store, sl_client **out);
    void (*client_destroy)(sl_client *client);
    int (*list_open)(sl_client *client, const sl_list_options *opts, sl_lister **out);
    int (*list_next)(sl_lister *lister, sl_object *out);
    void (*list_close)(sl_lister *lister);
    int (*stat)(sl_client *client, const char *key, sl_object *out);
    int (*read_open)(sl_client *client, const char *key, uint64_t offset, uint64_t length, sl_object *info,
                     sl_reader **out);
    int64_t (*read)(sl_reader *reader, void *buf, size_t cap);
    void (*read_close)(sl_reader *reader);
    int (*write_open)(sl_client *client, const char *key, const sl_write_options *opts, sl_writer **out);
    int (*write)(sl_writer *writer, const void *buf, size_t len);
    int (*write_commit)(sl_writer *writer); /* frees the writer, also on failure */
    void (*write_abort)(sl_writer *writer); /* frees the writer */
    /* Optional: sl__write_commit_deferred and sl__store_commit_drain. */
    int (*commit_deferred)(sl_writer *writer, sl__commit_fn fn, void *ctx);
    void (*commit_drain)(sl_store *store);
    int (*del)(sl_client *client, const char *key);
    /* Optional: read_open pinned to generation `generation` (non-zero) of the object: a read of another version
     * fails (SL_ENOENT: that generation is gone) instead of mixing two. The slices of one object that several workers
     * read (sl__read_open_gen) all come from the version the listing saw. */
    int (*read_open_gen)(sl_client *client, const char *key, uint64_t offset, uint64_t length, int64_t generation,
                         sl_reader **out);
    /* Optional: writes buf at `offset` of an open writer's output (a positioned write; the writer's sequential
     * position is not used or moved). May be called from any thread while the writer is open, concurrently for
     * disjoint ranges; the writer is committed or aborted by the thread that opened it, after every call returned. */
    int (*write_at)(sl_writer *writer, uint64_t offset, const void *buf, size_t len);
    /* With write_at: the CRC32C of the whole output written at offsets, which the writer cannot compute itself, for
     * what it records at commit (the output's own CRC32C in its fingerprint). Called before the commit. */
    void (*write_set_crc32c)(sl_writer *writer, uint32_t crc);
    /* Optional: makes dst_key the concatenation, in order, of the n objects "<parts_prefix><i>" (i = 0..n-1) this
     * store holds (written before through its writers), checks that the result has `size` bytes and CRC32C `crc`
     * (deleting it and failing with SL_ECORRUPT otherwise), records opts->source_fingerprint with it and honours
     * opts->if_generation_match; then deletes the parts and anything made on the way, whatever happened. */
    int (*compose)(sl_client *client, const char *dst_key, const char *parts_prefix, unsigned n, uint64_t size,
                   uint32_t crc, const sl_write_options *opts);
    /* Optional (NULL if unsupported): copy the object src_obj of `src` (another store; src_obj->key, and its size,
     * generation and CRC32C as listed, which the copy is pinned to and checked against when known) to dst_key of this
     * client's store on the server side, conditional on what the destination holds as opts->if_generation_match says
     * (opts NULL or unset: unconditional); opts->source_fingerprint, when set, is recorded with the copy as a write
     * records it (s3://; gs:// keeps the source's metadata); the rest of opts is not used. Returns SL_ENOTSUP when it
     * cannot for this pair of stores, so the caller streams instead. */
    int (*copy)(sl_client *client, const sl_store *src, const sl_object *src_obj, const char *dst_key,
                const sl_write_options *opts);
    /* Optional: deletes the objects keys[0..n) (n at most SL__DELETE_BATCH_MAX) in as few requests as the store can
     * (s3://: one DeleteObjects), and calls done(ctx, i, rc, message) once for each key i, in any order, from the
     * calling thread: rc 0 (deleted, or already absent) or <0 with a one-line message (valid during the call). Returns
     * 0 once every key was reported, or <0 when the batch failed as a whole (then keys not yet reported were not
     * deleted, or cannot be known to be: the caller reports them with this error). sl__store_delete_batch falls back
     * to del key by key without it. */
    int (*del_batch)(sl_client *client, const char *const *keys, size_t n, sl__delete_done_fn done, void *ctx);
    /* Optional: fails when the store cannot be used at all (no usable credentials), before any object is tried. */
    int (*check_access)(sl_store *store);
    /* Optional: sl_prefix_probe (`sub` is never NULL: "" for the store's own prefix). Without it a prefix is taken to
     * hold objects. */
    int (*probe)(sl_client *client, const char *sub);
    /* Optional: what a client costs (zeros mean the defaults above). */
    void (*memory)(const sl_store *store, sl__store_memory *out);
    /* Optional: from now on the store takes the memory of its writers' buffers from `budget` (which must outlive the
     * store's clients), instead of holding up to a chunk per writer of its own. */
    void (*set_budget)(sl_store *store, sl__pool *budget);
    void (*close)(sl_store *store); /* frees the backend's part; store.c frees base.url afterwards */
} sl_store_vtable;

struct sl__http_health;

struct sl_store {
    const sl_store_vtable *vt;
    sl_scheme scheme;
    char *url; /* canonical prefix URL without trailing '/', e.g. "file:///data/in"; malloc'd, freed by store.c */
    /* Remote stores: what their requests say about the server (http.h), owned by the backend; NULL for stores without
     * a server. A job watches it while it runs. */
    struct sl__http_health *health;
    /* Listings cannot carry fingerprints but at one request per object (s3://: a HeadObject each, one after another):
     * a job's destination listing then asks for none, and its workers look each listed output up, in parallel. */
    bool fingerprints_by_lookup;
};

struct sl_client {
    sl_store *store;
};

#define SL__LIST_KEY_CAP 4352 /* bytes of the last key a listing keeps to compare the next with */

struct sl_lister {
    sl_client *client;
    /* store.c's, never a backend's (backends allocate their listers zeroed, and may free them without store.c):
     * sl_list_next checks that every key is greater than the one before it. */
    size_t last_len; /* of the key returned last, of which `last` keeps the first SL__LIST_KEY_CAP bytes */
    bool has_last;
    bool tolerant;  /* sl__list_tolerate: a key out of byte order is recorded, not an error */
    bool not_bytes; /* a key came that was not greater, in byte order, than the one before it */
    bool not_utf16; /* ... in the order of UTF-16 code units */
    bool failed;    /* strict: a key out of order ended the listing */
    char last[SL__LIST_KEY_CAP];
};

struct sl_reader {
    sl_client *client;
};

struct sl_writer {
    sl_client *client;
};

/* The order a listing has kept so far. */
typedef enum sl__list_order {
    SL__ORDER_BYTES = 0, /* strictly increasing in byte order: the order every store promises */
    SL__ORDER_UTF16,     /* strictly increasing in the order of UTF-16 code units, not in byte order (some GCS
                          * implementations sort so) */
    SL__ORDER_NONE,      /* neither: a key repeated, or went backwards in both */
} sl__list_order;
/* By default a listing whose keys are not strictly increasing in byte order fails at the first key out of order
 * (SL_ECORRUPT, naming the store and the two keys). After this call (right after sl_list_open) such keys are returned
 * as they come, and sl__list_order tells what order the listing has kept: for a destination listing, which can
 * fall back to looking keys up one by one. */
void sl__list_tolerate(sl_lister *lister);
sl__list_order sl__list_order_kept(const sl_lister *lister);
/* Compares two keys in the order of their UTF-16 code units (keys that are not UTF-8: in byte order). It differs
 * from byte order only where one key has a character from U+E000 to U+FFFF and the other one of U+10000 or above. */
int sl__key_cmp_utf16(const char *a, size_t alen, const char *b, size_t blen);

/* Page tokens that go round in a cycle (A, B, A, ...: pages without end), found in constant memory by Brent's method:
 * the token seen at the last power of two is kept, and each new one is compared with it, so a cycle of L pages is
 * found within about 3 L pages. Zero-initialised; freed with sl__token_cycle_free. */
typedef struct sl__token_cycle {
    char *kept;
    unsigned long power, steps;
} sl__token_cycle;
/* 1 when `token` closes a cycle (following it would read the same pages again), 0 if not, SL_ENOMEM. */
int sl__token_cycle_seen(sl__token_cycle *cycle, const char *token);
void sl__token_cycle_free(sl__token_cycle *cycle);

/* Backends. `url` is parsed and owned by the caller; the backend fills base.vt, base.scheme (store.c sets
 * base.url). */
int sl__store_local_open(const sl_url *url, const sl_store_options *opts, sl_store **out);
int sl__store_gcs_open(const sl_url *url, const sl_store_options *opts, sl_store **out);
int sl__store_s3_open(const sl_url *url, const sl_store_options *opts, sl_store **out);
/* Server-side copy through the vtable's copy hook; SL_ENOTSUP when the stores cannot do it. */
int sl__store_copy(sl_client *client, const sl_store *src, const sl_object *src_obj, const char *dst_key,
                   const sl_write_options *opts);
/* Slices of big objects (job.c): whether the store can read a range pinned to a generation / write at an offset, and
 * the calls (the hooks above). */
bool sl__store_reads_pinned(const sl_store *store);
bool sl__store_writes_at(const sl_store *store);
int sl__read_open_gen(sl_client *client, const char *key, uint64_t offset, uint64_t length, int64_t generation,
                      sl_reader **out);
int sl__write_at(sl_writer *writer, uint64_t offset, const void *buf, size_t len);
void sl__write_set_crc32c(sl_writer *writer, uint32_t crc);
bool sl__store_composes(const sl_store *store);
/* Whether the store deletes many keys in one request (the del_batch hook), which rm -r then gathers keys for. */
bool sl__store_deletes_in_batches(const sl_store *store);
int sl__store_compose(sl_client *client, const char *dst_key, const char *parts_prefix, unsigned n, uint64_t size,
                      uint32_t crc, const sl_write_options *opts);
/* A durable commit that does not wait for the disk: for a writer opened with sl_write_options.fsync on a store that
 * groups such commits (local), the finished output is handed to the store's committer and this returns at once;
 * fn(ctx, rc, message) is called on the committer's thread once the output is durable under its name or has failed.
 * At most a fixed number of commits wait at once (this call blocks while the queue is full). The writer is freed in
 * every case. Returns 0 (fn will be called exactly once), SL_ENOTSUP when the store or writer does not defer (nothing
 * done: commit it with sl_write_commit), or another <0 when the commit failed before it was handed over (fn is never
 * called). */
int sl__write_commit_deferred(sl_writer *writer, sl__commit_fn fn, void *ctx);
/* Waits until every deferred commit of the store has been done and its fn has returned. Nothing for other stores. */
void sl__store_commit_drain(sl_store *store);
/* Deletes keys[0..n) (n <= SL__DELETE_BATCH_MAX) through the store's del_batch hook, or one sl_delete per key when
 * it has none; done() is called once per key (see the hook). Returns 0, or <0 when the batch failed as a whole after
 * done() was called for every key not reported otherwise (with that error). */
int sl__store_delete_batch(sl_client *client, const char *const *keys, size_t n, sl__delete_done_fn done, void *ctx);
/* The vtable's check_access hook; 0 when the store has none. */
int sl__store_check_access(sl_store *store);
/* The vtable's memory hook, with the defaults filled in. */
void sl__store_memory_get(const sl_store *store, sl__store_memory *out);
/* The vtable's set_budget hook; nothing when the store has none (it keeps no buffers of its own). Set it before
 * creating the clients that should use it. */
void sl__store_set_budget(sl_store *store, sl__pool *budget);

/* How the objects of two stores relate, whatever their scheme. Local directories are compared by where they really
 * are: the realpath of each one's longest existing part plus the part not created yet, and by device and inode along
 * the way (symbolic links and bind mounts are seen through). Bucket stores (gs://, s3://, any scheme with a bucket)
 * by scheme, bucket and directory-like prefix: the bucket root covers every prefix, "p" covers "p/q" but not "p2".
 * where_a/where_b (cap bytes each) get what was compared: the physical path, or the store's URL. */
typedef enum sl__nesting {
    SL__APART = 0,    /* no object of one can be an object of the other */
    SL__SAME = 1,     /* the same directory or prefix */
    SL__INSIDE = 2,   /* a is inside b */
    SL__CONTAINS = 3, /* b is inside a */
} sl__nesting;
int sl__store_nesting(const sl_store *a, const sl_store *b, char *where_a, char *where_b, size_t cap);
/* True if the store is a whole name space: the file-system root (after resolving links, as above) or a bucket's
 * root. where (cap bytes) gets what was judged. */
bool sl__store_is_root(const sl_store *store, char *where, size_t cap);
/* True if the local file `path` (relative to the current directory or absolute; it need not exist) is, once resolved
 * as above, inside the local store. False for other stores. */
bool sl__store_covers_file(const sl_store *store, const char *path);

#endif
