/* Public store calls: URL dispatch to a backend, argument checks, and the vtable indirection. */
#include "fail.h"
#include "store_vtable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *s_canonical_url(const sl_url *url) {
    const char *scheme = url->scheme == SL_SCHEME_GS ? "gs" : url->scheme == SL_SCHEME_S3 ? "s3" : "file";
    size_t n;
    char *s;
    if (url->scheme == SL_SCHEME_FILE) {
        /* "file://" + "/abs/path"; the root stays "file:///". */
        n = strlen(url->path) + 8;
        s = malloc(n);
        if (s)
            snprintf(s, n, "file://%s", url->path);
    } else {
        n = strlen(scheme) + strlen(url->bucket) + strlen(url->path) + 8;
        s = malloc(n);
        if (s)
            snprintf(s, n, "%s://%s%s%s", scheme, url->bucket, url->path[0] ? "/" : "", url->path);
    }
    return s;
}

static int s_open_parsed(const sl_url *url, const char *text, const sl_store_options *opts, sl_store **out) {
    int rc;
    switch (url->scheme) {
    case SL_SCHEME_FILE:
        rc = sl__store_local_open(url, opts, out);
        break;
    case SL_SCHEME_GS:
        rc = sl__store_gcs_open(url, opts, out);
        break;
    case SL_SCHEME_S3:
        return sl__fail(SL_ENOTSUP, "%s: s3:// is not supported yet by this build of sluice (use a local path)", text);
    default:
        return sl__fail(SL_EBADURL, "%s: unknown URL scheme", text);
    }
    if (rc < 0)
        return rc;
    (*out)->url = s_canonical_url(url);
    if (!(*out)->url) {
        sl_store_close(*out);
        *out = NULL;
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    return 0;
}

int sl_store_open(const char *text, const sl_store_options *opts, sl_store **out) {
    if (!text || !out)
        return sl__fail(SL_EINVAL, "sl_store_open: NULL argument");
    *out = NULL;
    sl_url url;
    int rc = sl_url_parse(text, &url);
    if (rc < 0)
        return rc;
    rc = s_open_parsed(&url, text, opts, out);
    sl_url_free(&url);
    return rc;
}

int sl_store_open_source(const char *text, const sl_store_options *opts, sl_store **out, char **single_key) {
    if (!text || !out || !single_key)
        return sl__fail(SL_EINVAL, "sl_store_open_source: NULL argument");
    *out = NULL;
    *single_key = NULL;
    sl_url url;
    int rc = sl_url_parse(text, &url);
    if (rc < 0)
        return rc;
    sl_store *probe = NULL;
    /* A URL that does not end in '/' may name one object: look for it in the parent prefix first. */
    char *slash = strrchr(url.path, '/');
    bool has_parent = !url.trailing_slash && url.path[0] && !(url.scheme == SL_SCHEME_FILE && !slash[1]);
    if (has_parent) {
        char *base = strdup(slash ? slash + 1 : url.path);
        sl_url parent = url;
        char *parent_path = slash ? strndup(url.path, (size_t)(slash - url.path)) : strdup("");
        if (!base || !parent_path) {
            free(base);
            free(parent_path);
            sl_url_free(&url);
            return sl__fail(SL_ENOMEM, "out of memory");
        }
        if (url.scheme == SL_SCHEME_FILE && !parent_path[0]) {
            free(parent_path);
            parent_path = strdup("/");
        }
        parent.path = parent_path;
        sl_store *pstore = NULL;
        sl_client *client = NULL;
        sl_object obj = {0};
        rc = s_open_parsed(&parent, text, opts, &pstore);
        if (rc == 0)
            rc = sl_client_new(pstore, &client);
        if (rc == 0)
            rc = sl_stat(client, base, &obj);
        sl_client_destroy(client);
        free(parent_path);
        if (rc == 0 && !obj.is_prefix) {
            *out = pstore;
            *single_key = base;
            sl_url_free(&url);
            return 0;
        }
        free(base);
        /* Only "not there" (or "not an object") means the URL is a prefix; any other failure of the lookup (access
         * denied, credentials, a server that keeps failing) is the answer, not a reason to list nothing. */
        if (rc < 0 && rc != SL_ENOENT && rc != SL_ENOTDIR && rc != SL_EISDIR && rc != SL_ENAMETOOLONG &&
            rc != SL_EUNSAFEKEY && rc != SL_EINVAL) {
            sl_store_close(pstore);
            sl_url_free(&url);
            return rc;
        }
        /* Closed once the store below is open: the two share credentials and their token (auth_gcs.h). */
        probe = pstore;
    }
    rc = s_open_parsed(&url, text, opts, out);
    sl_store_close(probe);
    sl_url_free(&url);
    return rc;
}

void sl_store_close(sl_store *store) {
    if (!store)
        return;
    char *url = store->url;
    store->vt->close(store);
    free(url);
}

const char *sl_store_url(const sl_store *store) {
    return store->url;
}

sl_scheme sl_store_scheme(const sl_store *store) {
    return store->scheme;
}

size_t sl_store_key_url(const sl_store *store, const char *key, char *buf, size_t cap) {
    size_t n = strlen(store->url);
    const char *sep = (n && store->url[n - 1] == '/') ? "" : "/";
    int len = snprintf(buf, cap, "%s%s%s", store->url, sep, key);
    return len < 0 ? 0 : (size_t)len;
}

int sl_client_new(sl_store *store, sl_client **out) {
    if (!store || !out)
        return sl__fail(SL_EINVAL, "sl_client_new: NULL argument");
    return store->vt->client_new(store, out);
}

void sl_client_destroy(sl_client *client) {
    if (client)
        client->store->vt->client_destroy(client);
}

int sl_list_open(sl_client *client, const sl_list_options *opts, sl_lister **out) {
    static const sl_list_options defaults = {.recursive = true};
    if (!client || !out)
        return sl__fail(SL_EINVAL, "sl_list_open: NULL argument");
    return client->store->vt->list_open(client, opts ? opts : &defaults, out);
}

int sl_list_next(sl_lister *lister, sl_object *out) {
    return lister->client->store->vt->list_next(lister, out);
}

void sl_list_close(sl_lister *lister) {
    if (lister)
        lister->client->store->vt->list_close(lister);
}

int sl_stat(sl_client *client, const char *key, sl_object *out) {
    if (!client || !key || !out)
        return sl__fail(SL_EINVAL, "sl_stat: NULL argument");
    return client->store->vt->stat(client, key, out);
}

int sl_read_open(sl_client *client, const char *key, uint64_t offset, uint64_t length, sl_object *info,
                 sl_reader **out) {
    if (!client || !key || !out)
        return sl__fail(SL_EINVAL, "sl_read_open: NULL argument");
    return client->store->vt->read_open(client, key, offset, length, info, out);
}

int64_t sl_read(sl_reader *reader, void *buf, size_t cap) {
    return reader->client->store->vt->read(reader, buf, cap);
}

void sl_read_close(sl_reader *reader) {
    if (reader)
        reader->client->store->vt->read_close(reader);
}

int sl_write_open(sl_client *client, const char *key, const sl_write_options *opts, sl_writer **out) {
    static const sl_write_options defaults = {0};
    if (!client || !key || !out)
        return sl__fail(SL_EINVAL, "sl_write_open: NULL argument");
    return client->store->vt->write_open(client, key, opts ? opts : &defaults, out);
}

int sl_write(sl_writer *writer, const void *buf, size_t len) {
    return writer->client->store->vt->write(writer, buf, len);
}

int sl_write_commit(sl_writer *writer) {
    return writer->client->store->vt->write_commit(writer);
}

void sl_write_abort(sl_writer *writer) {
    if (writer)
        writer->client->store->vt->write_abort(writer);
}

int sl__store_copy(sl_client *client, const sl_store *src, const char *src_key, const char *dst_key) {
    if (!client->store->vt->copy)
        return SL_ENOTSUP;
    return client->store->vt->copy(client, src, src_key, dst_key);
}

int sl__store_check_access(sl_store *store) {
    return store->vt->check_access ? store->vt->check_access(store) : 0;
}

void sl__store_memory_get(const sl_store *store, sl__store_memory *out) {
    memset(out, 0, sizeof(*out));
    if (store->vt->memory)
        store->vt->memory(store, out);
    if (!out->client_bytes)
        out->client_bytes = SL__CLIENT_BYTES_DEFAULT;
}

void sl__store_set_budget(sl_store *store, sl__pool *budget) {
    if (store->vt->set_budget)
        store->vt->set_budget(store, budget);
}

int sl_delete(sl_client *client, const char *key) {
    if (!client || !key)
        return sl__fail(SL_EINVAL, "sl_delete: NULL argument");
    return client->store->vt->del(client, key);
}
