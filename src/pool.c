/* The memory budget. Buffers are allocated on first demand, up to what the limit allows, and kept on a free list for
 * reuse: a job that never needs more than four buffers at once touches four buffers' worth of memory, whatever the
 * limit. Reservations are plain byte counts: the memory behind them belongs to whoever reserved it. */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct s_free_node {
    struct s_free_node *next;
} s_free_node;

struct sl__pool {
    size_t buffer_size;
    uint64_t limit;
    struct {
        pthread_mutex_t lock;
        pthread_cond_t available;
        s_free_node *free_list; /* released buffers, linked through their first bytes */
        size_t allocated;
        uint64_t used;     /* allocated buffers and reservations */
        uint64_t promised; /* of the rest, set aside for blocking requests */
        uint64_t peak;
        bool closed;
    } synced;
};

sl__pool *sl__pool_new_bytes(size_t buffer_size, uint64_t limit_bytes) {
    if (buffer_size < sizeof(s_free_node) || limit_bytes < buffer_size)
        return NULL;
    sl__pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->buffer_size = buffer_size;
    pool->limit = limit_bytes;
    pthread_mutex_init(&pool->synced.lock, NULL);
    pthread_cond_init(&pool->synced.available, NULL);
    return pool;
}

sl__pool *sl__pool_new(size_t buffer_size, size_t max_buffers) {
    if (max_buffers == 0 || max_buffers > UINT64_MAX / (buffer_size ? buffer_size : 1))
        return NULL;
    return sl__pool_new_bytes(buffer_size, (uint64_t)buffer_size * max_buffers);
}

void sl__pool_destroy(sl__pool *pool) {
    if (!pool)
        return;
    s_free_node *node = pool->synced.free_list;
    while (node) {
        s_free_node *next = node->next;
        free(node);
        node = next;
    }
    pthread_mutex_destroy(&pool->synced.lock);
    pthread_cond_destroy(&pool->synced.available);
    free(pool);
}

/* Called with the lock held: counts `bytes` of a blocking request, which takes from the promise first. */
static void s_count_locked(sl__pool *pool, uint64_t bytes) {
    pool->synced.used += bytes;
    pool->synced.promised -= bytes < pool->synced.promised ? bytes : pool->synced.promised;
    if (pool->synced.used > pool->synced.peak)
        pool->synced.peak = pool->synced.used;
}

/* Called with the lock held. Returns a buffer, or NULL when none is free and another does not fit (beside the
 * promised bytes too when `spare_only`). */
static unsigned char *s_take_locked(sl__pool *pool, bool spare_only, bool *oom) {
    s_free_node *node = pool->synced.free_list;
    if (node) {
        pool->synced.free_list = node->next;
        return (unsigned char *)node;
    }
    uint64_t room = pool->limit - pool->synced.used;
    if (spare_only)
        room = room > pool->synced.promised ? room - pool->synced.promised : 0;
    if (room >= pool->buffer_size) {
        unsigned char *buf = malloc(pool->buffer_size);
        if (!buf) {
            *oom = true;
            return NULL;
        }
        pool->synced.allocated++;
        s_count_locked(pool, pool->buffer_size);
        return buf;
    }
    return NULL;
}

unsigned char *sl__pool_acquire(sl__pool *pool) {
    bool oom = false;
    pthread_mutex_lock(&pool->synced.lock);
    unsigned char *buf = NULL;
    while (!pool->synced.closed && !(buf = s_take_locked(pool, false, &oom)) && !oom)
        pthread_cond_wait(&pool->synced.available, &pool->synced.lock);
    if (pool->synced.closed && buf) {
        ((s_free_node *)buf)->next = pool->synced.free_list;
        pool->synced.free_list = (s_free_node *)buf;
        buf = NULL;
    }
    pthread_mutex_unlock(&pool->synced.lock);
    return buf;
}

unsigned char *sl__pool_try_acquire(sl__pool *pool) {
    bool oom = false;
    pthread_mutex_lock(&pool->synced.lock);
    unsigned char *buf = pool->synced.closed ? NULL : s_take_locked(pool, true, &oom);
    pthread_mutex_unlock(&pool->synced.lock);
    return buf;
}

void sl__pool_release(sl__pool *pool, unsigned char *buf) {
    if (!buf)
        return;
    pthread_mutex_lock(&pool->synced.lock);
    ((s_free_node *)buf)->next = pool->synced.free_list;
    pool->synced.free_list = (s_free_node *)buf;
    pthread_cond_broadcast(&pool->synced.available);
    pthread_mutex_unlock(&pool->synced.lock);
}

void sl__pool_promise(sl__pool *pool, uint64_t bytes) {
    pthread_mutex_lock(&pool->synced.lock);
    uint64_t room = pool->limit - pool->synced.used - pool->synced.promised;
    pool->synced.promised += bytes < room ? bytes : room;
    pthread_mutex_unlock(&pool->synced.lock);
}

bool sl__pool_reserve(sl__pool *pool, size_t bytes) {
    if (bytes > pool->limit)
        return false;
    pthread_mutex_lock(&pool->synced.lock);
    while (!pool->synced.closed && pool->limit - pool->synced.used < bytes)
        pthread_cond_wait(&pool->synced.available, &pool->synced.lock);
    bool ok = !pool->synced.closed;
    if (ok)
        s_count_locked(pool, bytes);
    pthread_mutex_unlock(&pool->synced.lock);
    return ok;
}

bool sl__pool_try_reserve(sl__pool *pool, size_t bytes) {
    pthread_mutex_lock(&pool->synced.lock);
    bool ok = !pool->synced.closed && pool->limit - pool->synced.used >= pool->synced.promised &&
              pool->limit - pool->synced.used - pool->synced.promised >= bytes;
    if (ok) {
        pool->synced.used += bytes;
        if (pool->synced.used > pool->synced.peak)
            pool->synced.peak = pool->synced.used;
    }
    pthread_mutex_unlock(&pool->synced.lock);
    return ok;
}

void sl__pool_unreserve(sl__pool *pool, size_t bytes) {
    if (!bytes)
        return;
    pthread_mutex_lock(&pool->synced.lock);
    pool->synced.used -= bytes < pool->synced.used ? bytes : pool->synced.used;
    pthread_cond_broadcast(&pool->synced.available);
    pthread_mutex_unlock(&pool->synced.lock);
}

void sl__pool_close(sl__pool *pool) {
    pthread_mutex_lock(&pool->synced.lock);
    pool->synced.closed = true;
    pthread_cond_broadcast(&pool->synced.available);
    pthread_mutex_unlock(&pool->synced.lock);
}

size_t sl__pool_buffer_size(const sl__pool *pool) {
    return pool->buffer_size;
}

size_t sl__pool_capacity(const sl__pool *pool) {
    return (size_t)(pool->limit / pool->buffer_size);
}

uint64_t sl__pool_limit(const sl__pool *pool) {
    return pool->limit;
}

size_t sl__pool_allocated(sl__pool *pool) {
    pthread_mutex_lock(&pool->synced.lock);
    size_t n = pool->synced.allocated;
    pthread_mutex_unlock(&pool->synced.lock);
    return n;
}

uint64_t sl__pool_used(sl__pool *pool) {
    pthread_mutex_lock(&pool->synced.lock);
    uint64_t n = pool->synced.used;
    pthread_mutex_unlock(&pool->synced.lock);
    return n;
}

uint64_t sl__pool_peak(sl__pool *pool) {
    pthread_mutex_lock(&pool->synced.lock);
    uint64_t n = pool->synced.peak;
    pthread_mutex_unlock(&pool->synced.lock);
    return n;
}
