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
    int (*del)(sl_client *client, const char *key);
    /* Optional (NULL if unsupported): copy src_key of `src` (another store) to dst_key of this client's store on the
     * server side. Returns SL_ENOTSUP when it cannot for this pair of stores, so the caller streams instead. */
    int (*copy)(sl_client *client, const sl_store *src, const char *src_key, const char *dst_key);
    /* Optional: fails when the store cannot be used at all (no usable credentials), before any object is tried. */
    int (*check_access)(sl_store *store);
    /* Optional: what a client costs (zeros mean the defaults above). */
    void (*memory)(const sl_store *store, sl__store_memory *out);
    /* Optional: from now on the store takes the memory of its writers' buffers from `budget` (which must outlive the
     * store's clients), instead of holding up to a chunk per writer of its own. */
    void (*set_budget)(sl_store *store, sl__pool *budget);
    void (*close)(sl_store *store); /* frees the backend's part; store.c frees base.url afterwards */
} sl_store_vtable;

struct sl_store {
    const sl_store_vtable *vt;
    sl_scheme scheme;
    char *url; /* canonical prefix URL without trailing '/', e.g. "file:///data/in"; malloc'd, freed by store.c */
};

struct sl_client {
    sl_store *store;
};

struct sl_lister {
    sl_client *client;
};

struct sl_reader {
    sl_client *client;
};

struct sl_writer {
    sl_client *client;
};

/* Backends. `url` is parsed and owned by the caller; the backend fills base.vt, base.scheme (store.c sets
 * base.url). */
int sl__store_local_open(const sl_url *url, const sl_store_options *opts, sl_store **out);
int sl__store_gcs_open(const sl_url *url, const sl_store_options *opts, sl_store **out);
/* Server-side copy through the vtable's copy hook; SL_ENOTSUP when the stores cannot do it. */
int sl__store_copy(sl_client *client, const sl_store *src, const char *src_key, const char *dst_key);
/* The vtable's check_access hook; 0 when the store has none. */
int sl__store_check_access(sl_store *store);
/* The vtable's memory hook, with the defaults filled in. */
void sl__store_memory_get(const sl_store *store, sl__store_memory *out);
/* The vtable's set_budget hook; nothing when the store has none (it keeps no buffers of its own). Set it before
 * creating the clients that should use it. */
void sl__store_set_budget(sl_store *store, sl__pool *budget);

#endif
