/* Public store calls: URL dispatch to a backend, argument checks, and the vtable indirection. */
#include "fail.h"
#include "http.h"
#include "store_vtable.h"
#include "strbuf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
        rc = sl__store_s3_open(url, opts, out);
        break;
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
    sl__strbuf b = sl__strbuf_of(buf, cap); /* for every object: not through snprintf */
    sl__strbuf_add(&b, store->url, n);
    if (!(n && store->url[n - 1] == '/'))
        sl__strbuf_add(&b, "/", 1);
    sl__strbuf_str(&b, key ? key : "");
    sl__strbuf_end(&b);
    return b.len;
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

static int s_keycmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen < blen ? -1 : alen > blen ? 1 : 0);
}

static bool s_continuation(char c) {
    return ((unsigned char)c & 0xC0) == 0x80;
}

int sl__token_cycle_seen(sl__token_cycle *cycle, const char *token) {
    if (cycle->kept && strcmp(token, cycle->kept) == 0)
        return 1;
    if (cycle->steps == cycle->power) {
        char *kept = strdup(token);
        if (!kept)
            return sl__fail(SL_ENOMEM, "out of memory");
        free(cycle->kept);
        cycle->kept = kept;
        cycle->power = cycle->power ? 2 * cycle->power : 1;
        cycle->steps = 0;
    }
    cycle->steps++;
    return 0;
}

void sl__token_cycle_free(sl__token_cycle *cycle) {
    free(cycle->kept);
    cycle->kept = NULL;
}

int sl__key_cmp_utf16(const char *a, size_t alen, const char *b, size_t blen) {
    size_t n = alen < blen ? alen : blen, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    if (i == n)
        return alen < blen ? -1 : alen > blen ? 1 : 0;
    int bytes = (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
    /* Byte order is code point order. UTF-16 differs only for a character of U+10000 and above (lead byte F0 to F4),
     * which is a surrogate pair starting with 0xD8xx, against one of U+E000 to U+FFFF (lead byte EE or EF). When the
     * first differing byte is inside a character, both characters share their lead byte and so agree. */
    if (s_continuation(a[i]) || s_continuation(b[i]))
        return bytes;
    unsigned char la = (unsigned char)a[i], lb = (unsigned char)b[i];
    bool a_bmp_high = la == 0xEE || la == 0xEF, b_bmp_high = lb == 0xEE || lb == 0xEF;
    bool a_astral = la >= 0xF0 && la <= 0xF4, b_astral = lb >= 0xF0 && lb <= 0xF4;
    if ((a_bmp_high && b_astral) || (a_astral && b_bmp_high))
        return -bytes;
    return bytes;
}

void sl__list_tolerate(sl_lister *lister) {
    lister->tolerant = true;
}

sl__list_order sl__list_order_kept(const sl_lister *lister) {
    return !lister->not_bytes ? SL__ORDER_BYTES : !lister->not_utf16 ? SL__ORDER_UTF16 : SL__ORDER_NONE;
}

/* Every key must come after the one before it: a listing that repeats a key would have it processed twice, and one
 * that goes backwards breaks the merge with a destination listing (resume.h). Only the first SL__LIST_KEY_CAP bytes
 * of the last key are kept: two keys longer than that which agree on those bytes are not compared. */
static int s_check_order(sl_lister *lister, const sl_object *obj) {
    size_t kept = lister->last_len < SL__LIST_KEY_CAP ? lister->last_len : SL__LIST_KEY_CAP;
    size_t klen = obj->key_len;
    bool undecided = lister->last_len > SL__LIST_KEY_CAP && klen >= SL__LIST_KEY_CAP &&
                     memcmp(obj->key, lister->last, SL__LIST_KEY_CAP) == 0;
    if (lister->has_last && !undecided) {
        int bytes = s_keycmp(obj->key, klen, lister->last, kept);
        int utf16 = sl__key_cmp_utf16(obj->key, klen, lister->last, kept);
        lister->not_bytes |= bytes <= 0;
        lister->not_utf16 |= utf16 <= 0;
        if (bytes <= 0 && !lister->tolerant) {
            char now[256], before[256];
            size_t nl = klen < 100 ? klen : 100, bl = kept < 100 ? kept : 100;
            sl_text_escape(now, sizeof(now), obj->key, nl);
            sl_text_escape(before, sizeof(before), lister->last, bl);
            lister->failed = true;
            return sl__fail(SL_ECORRUPT, "%s: the listing is not in byte order: '%s%s' came after '%s%s' (%s); stopped",
                            sl_store_url(lister->client->store), now, nl < klen ? "..." : "", before,
                            bl < lister->last_len ? "..." : "",
                            bytes == 0  ? "the same key twice"
                            : utf16 > 0 ? "the server sorts by UTF-16 code units, not by bytes"
                                        : "it went backwards");
        }
    }
    memcpy(lister->last, obj->key, klen < SL__LIST_KEY_CAP ? klen : SL__LIST_KEY_CAP);
    lister->last_len = klen;
    lister->has_last = true;
    return 1;
}

int sl_list_next(sl_lister *lister, sl_object *out) {
    if (lister->failed)
        return sl__fail(SL_ECORRUPT, "%s: the listing stopped: its keys were out of order",
                        sl_store_url(lister->client->store));
    int rc = lister->client->store->vt->list_next(lister, out);
    return rc == 1 ? s_check_order(lister, out) : rc;
}

void sl_list_close(sl_lister *lister) {
    if (lister)
        lister->client->store->vt->list_close(lister);
}

void sl_thread_bind_abort(const volatile sig_atomic_t *flag) {
    sl__http_bind_user_abort(flag);
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

int sl__write_commit_deferred(sl_writer *writer, sl__commit_fn fn, void *ctx) {
    const sl_store_vtable *vt = writer->client->store->vt;
    return vt->commit_deferred ? vt->commit_deferred(writer, fn, ctx) : SL_ENOTSUP;
}

void sl__store_commit_drain(sl_store *store) {
    if (store && store->vt->commit_drain)
        store->vt->commit_drain(store);
}

void sl_write_abort(sl_writer *writer) {
    if (writer)
        writer->client->store->vt->write_abort(writer);
}

bool sl__store_reads_pinned(const sl_store *store) {
    return store->vt->read_open_gen != NULL;
}

bool sl__store_writes_at(const sl_store *store) {
    return store->vt->write_at != NULL;
}

int sl__read_open_gen(sl_client *client, const char *key, uint64_t offset, uint64_t length, int64_t generation,
                      sl_reader **out) {
    if (!client->store->vt->read_open_gen || generation == 0)
        return sl__fail(SL_ENOTSUP, "%s: reads pinned to a generation are not supported", client->store->url);
    return client->store->vt->read_open_gen(client, key, offset, length, generation, out);
}

int sl__write_at(sl_writer *writer, uint64_t offset, const void *buf, size_t len) {
    return writer->client->store->vt->write_at(writer, offset, buf, len);
}

void sl__write_set_crc32c(sl_writer *writer, uint32_t crc) {
    if (writer->client->store->vt->write_set_crc32c)
        writer->client->store->vt->write_set_crc32c(writer, crc);
}

bool sl__store_composes(const sl_store *store) {
    return store->vt->compose != NULL;
}

bool sl__store_deletes_in_batches(const sl_store *store) {
    return store->vt->del_batch != NULL;
}

int sl__store_compose(sl_client *client, const char *dst_key, const char *parts_prefix, unsigned n, uint64_t size,
                      uint32_t crc, const sl_write_options *opts) {
    return client->store->vt->compose(client, dst_key, parts_prefix, n, size, crc, opts);
}

typedef struct s_batch_watch {
    sl__delete_done_fn done;
    void *ctx;
    unsigned char *seen;
} s_batch_watch;

/* Passes a batch delete's outcome on, noting which keys were reported. */
static void s_batch_done(void *ctx, size_t index, int rc, const char *message) {
    s_batch_watch *w = ctx;
    w->seen[index / 8] |= (unsigned char)(1u << (index % 8));
    w->done(w->ctx, index, rc, message);
}

int sl__store_copy(sl_client *client, const sl_store *src, const sl_object *src_obj, const char *dst_key,
                   const sl_write_options *opts) {
    if (!client->store->vt->copy)
        return SL_ENOTSUP;
    return client->store->vt->copy(client, src, src_obj, dst_key, opts);
}

int sl_prefix_probe(sl_client *client, const char *sub) {
    if (!client)
        return sl__fail(SL_EINVAL, "sl_prefix_probe: NULL argument");
    if (!client->store->vt->probe)
        return SL_PREFIX_OBJECTS;
    return client->store->vt->probe(client, sub ? sub : "");
}

int sl__store_delete_batch(sl_client *client, const char *const *keys, size_t n, sl__delete_done_fn done, void *ctx) {
    if (!client || (!keys && n) || !done || n > SL__DELETE_BATCH_MAX)
        return sl__fail(SL_EINVAL, "sl__store_delete_batch: NULL argument or more than %d keys", SL__DELETE_BATCH_MAX);
    if (!client->store->vt->del_batch) {
        for (size_t i = 0; i < n; i++) {
            int rc = sl_delete(client, keys[i]);
            done(ctx, i, rc, rc < 0 ? sl_last_error() : NULL);
        }
        return 0;
    }
    /* Keys the backend did not report when the batch failed as a whole get its error. */
    unsigned char seen_small[SL__DELETE_BATCH_MAX / 8 + 1] = {0};
    s_batch_watch w = {done, ctx, seen_small};
    int rc = client->store->vt->del_batch(client, keys, n, s_batch_done, &w);
    if (rc < 0) {
        char why[SL__MESSAGE_CAP];
        snprintf(why, sizeof(why), "%s", sl_last_error());
        for (size_t i = 0; i < n; i++)
            if (!(seen_small[i / 8] & (1u << (i % 8))))
                done(ctx, i, rc, why);
        sl__fail(rc, "%s", why);
    }
    return rc;
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

/* ---- where a store's objects live: overlap of two stores, the whole name space ---- */

/* The physical path of the local directory `path` (absolute) into out[PATH_MAX]: the realpath of its longest
 * existing leading part, then the rest (components not created yet, which cannot be links). *existing: the bytes of
 * out that exist (0 when nothing could be resolved: out is then `path` as it is). */
static void s_physical(const char *path, char *out, size_t *existing) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    size_t keep = strlen(buf);
    for (;;) {
        char save = buf[keep];
        buf[keep] = '\0';
        char *r = realpath(buf, out);
        buf[keep] = save;
        if (r)
            break;
        if (keep <= 1) {
            snprintf(out, PATH_MAX, "%s", path);
            *existing = 0;
            return;
        }
        while (keep > 1 && buf[keep - 1] != '/')
            keep--;
        if (keep > 1)
            keep--;
    }
    size_t n = strlen(out);
    *existing = n;
    const char *rest = path + keep; /* "" or "/..." */
    if (n == 1 && rest[0])
        n = 0; /* the root: "/" + "/rest" */
    snprintf(out + n, PATH_MAX - n, "%s", rest);
}

/* 1 if the physical paths x and y name the same directory, 2 if x is inside y, 0 otherwise. Where y exists, x's
 * existing ancestors are compared with it by device and inode, so that a bind mount is seen through as well as a
 * symbolic link; otherwise (nothing exists there yet) the spelling decides. */
static int s_local_within(const char *x, size_t x_existing, const char *y, size_t y_existing) {
    size_t xl = strlen(x), yl = strlen(y);
    if (xl == yl && memcmp(x, y, xl) == 0)
        return 1;
    if (strcmp(y, "/") == 0 || (xl > yl && memcmp(x, y, yl) == 0 && x[yl] == '/'))
        return 2;
    struct stat ys;
    if (y_existing != yl || x_existing == 0 || stat(y, &ys) != 0)
        return 0;
    char buf[PATH_MAX];
    size_t n = x_existing;
    memcpy(buf, x, n);
    buf[n] = '\0';
    for (;;) {
        struct stat st;
        if (stat(buf, &st) == 0 && st.st_dev == ys.st_dev && st.st_ino == ys.st_ino)
            return n == xl ? 1 : 2;
        if (n <= 1)
            return 0;
        while (n > 1 && buf[n - 1] != '/')
            n--;
        if (n > 1)
            n--;
        buf[n] = '\0';
    }
}

/* A bucket store's canonical URL "<scheme>://<bucket>[/<prefix>]" as the bucket part (up to and with the '/' after
 * it, or the whole URL) and its prefix made directory-like: "" for the bucket root, else ending in '/' ("p" and
 * "p/" are the same prefix, which never covers "p2/"). */
static void s_bucket_place(const char *url, char *out, size_t cap) {
    const char *sep = strstr(url, "://");
    const char *slash = sep ? strchr(sep + 3, '/') : NULL;
    if (!slash) {
        snprintf(out, cap, "%s/", url);
        return;
    }
    size_t n = strlen(url);
    snprintf(out, cap, "%s%s", url, slash[1] && url[n - 1] != '/' ? "/" : "");
}

int sl__store_nesting(const sl_store *a, const sl_store *b, char *where_a, char *where_b, size_t cap) {
    if (a->scheme != b->scheme)
        return SL__APART;
    if (a->scheme == SL_SCHEME_FILE) {
        char pa[PATH_MAX], pb[PATH_MAX];
        size_t ea, eb;
        s_physical(a->url + 7, pa, &ea);
        s_physical(b->url + 7, pb, &eb);
        snprintf(where_a, cap, "%s", pa);
        snprintf(where_b, cap, "%s", pb);
        int w = s_local_within(pa, ea, pb, eb);
        if (w)
            return w == 1 ? SL__SAME : SL__INSIDE;
        return s_local_within(pb, eb, pa, ea) ? SL__CONTAINS : SL__APART;
    }
    /* Every bucket store: the same scheme, bucket and (directory-like) prefix, or one prefix a prefix of the other.
     * Both stores of a job are opened with the same sl_store_options, so the same scheme means the same endpoint. */
    snprintf(where_a, cap, "%s", a->url);
    snprintf(where_b, cap, "%s", b->url);
    char pa[2 * PATH_MAX], pb[2 * PATH_MAX];
    s_bucket_place(a->url, pa, sizeof(pa));
    s_bucket_place(b->url, pb, sizeof(pb));
    size_t la = strlen(pa), lb = strlen(pb);
    if (la == lb && memcmp(pa, pb, la) == 0)
        return SL__SAME;
    if (la > lb && memcmp(pa, pb, lb) == 0)
        return SL__INSIDE;
    if (lb > la && memcmp(pa, pb, la) == 0)
        return SL__CONTAINS;
    return SL__APART;
}

bool sl__store_is_root(const sl_store *store, char *where, size_t cap) {
    if (store->scheme == SL_SCHEME_FILE) {
        char p[PATH_MAX];
        size_t e;
        s_physical(store->url + 7, p, &e);
        snprintf(where, cap, "%s", p);
        return strcmp(p, "/") == 0;
    }
    snprintf(where, cap, "%s", store->url);
    const char *sep = strstr(store->url, "://");
    const char *slash = sep ? strchr(sep + 3, '/') : NULL;
    return !slash || !slash[1];
}

bool sl__store_covers_file(const sl_store *store, const char *path) {
    if (store->scheme != SL_SCHEME_FILE || !path || !path[0])
        return false;
    char abs[2 * PATH_MAX], cwd[PATH_MAX];
    int n;
    if (path[0] == '/')
        n = snprintf(abs, sizeof(abs), "%s", path);
    else if (getcwd(cwd, sizeof(cwd)))
        n = snprintf(abs, sizeof(abs), "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
    else
        return false;
    if (n < 0 || n >= PATH_MAX)
        return false; /* no such file can be opened either */
    char file[PATH_MAX], root[PATH_MAX];
    size_t ef, er;
    s_physical(abs, file, &ef);
    s_physical(store->url + 7, root, &er);
    return s_local_within(file, ef, root, er) != 0;
}
