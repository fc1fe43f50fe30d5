/* The store interface every backend implements (local now; gcs and s3 later). Public calls in store.c check
 * arguments and dispatch through the vtable; backends embed the base structs below as their first member. */
#ifndef SLUICE_STORE_VTABLE_H
#define SLUICE_STORE_VTABLE_H

#include "sluice/store.h"

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

#endif
