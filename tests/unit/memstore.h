/* Unit-test support: an sl_reader over a memory buffer and an sl_writer into a memory buffer, built on the real
 * store vtable so sl_read/sl_write dispatch exactly as they do for a real store. For testing operations in
 * isolation; end-to-end tests use real stores. */
#ifndef SLUICE_MEMSTORE_H
#define SLUICE_MEMSTORE_H

#include "store_vtable.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mem_reader {
    sl_reader base;
    const unsigned char *data;
    size_t len, pos;
    size_t max_chunk; /* 0 = unlimited: each sl_read returns at most this many bytes, to exercise short reads */
    int fail_at;      /* if > 0, the read that would pass this offset fails with SL_EIO */
} mem_reader;

typedef struct mem_writer {
    sl_writer base;
    unsigned char *data;
    size_t len, cap; /* cap: hard limit; a write past it fails with SL_ENOSPC */
    int writes;
    unsigned delay_ms; /* each write first sleeps this long: a slow destination */
} mem_writer;

static int64_t mem_read_(sl_reader *r, void *buf, size_t cap) {
    mem_reader *m = (mem_reader *)r;
    size_t n = m->len - m->pos;
    if (n > cap)
        n = cap;
    if (m->max_chunk && n > m->max_chunk)
        n = m->max_chunk;
    if (m->fail_at > 0 && m->pos + n > (size_t)m->fail_at)
        return SL_EIO;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (int64_t)n;
}

static int mem_write_(sl_writer *w, const void *buf, size_t len) {
    mem_writer *m = (mem_writer *)w;
    if (m->delay_ms) {
        struct timespec ts = {m->delay_ms / 1000, (long)(m->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (len > m->cap - m->len)
        return SL_ENOSPC;
    memcpy(m->data + m->len, buf, len);
    m->len += len;
    m->writes++;
    return 0;
}

static const sl_store_vtable mem_vtable_ = {.read = mem_read_, .write = mem_write_};
static sl_store mem_store_ = {.vt = &mem_vtable_, .scheme = SL_SCHEME_FILE, .url = (char *)"mem://"};
static sl_client mem_client_ = {.store = &mem_store_};

static inline void mem_reader_init(mem_reader *m, const void *data, size_t len) {
    memset(m, 0, sizeof(*m));
    m->base.client = &mem_client_;
    m->data = data;
    m->len = len;
}

/* Caller frees m->data with free(). */
static inline void mem_writer_init(mem_writer *m, size_t cap) {
    memset(m, 0, sizeof(*m));
    m->base.client = &mem_client_;
    m->data = malloc(cap ? cap : 1);
    m->cap = cap;
}

#endif
