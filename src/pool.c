/* Transfer buffer pool. Buffers are allocated on first demand, up to the cap, and kept on a free list for reuse:
 * a job that never needs more than four buffers at once touches four buffers' worth of memory, whatever the cap. */
#include "pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct s_free_node {
    struct s_free_node *next;
} s_free_node;

struct sl__pool {
    size_t buffer_size;
    size_t capacity;
    struct {
        pthread_mutex_t lock;
        pthread_cond_t available;
        s_free_node *free_list; /* released buffers, linked through their first bytes */
        size_t allocated;
        bool closed;
    } synced;
};

sl__pool *sl__pool_new(size_t buffer_size, size_t max_buffers) {
    if (buffer_size < sizeof(s_free_node) || max_buffers == 0)
        return NULL;
    sl__pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->buffer_size = buffer_size;
    pool->capacity = max_buffers;
    pthread_mutex_init(&pool->synced.lock, NULL);
    pthread_cond_init(&pool->synced.available, NULL);
    return pool;
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

/* Called with the lock held. Returns a buffer, or NULL when none is free and the cap is reached. */
static unsigned char *s_take_locked(sl__pool *pool, bool *oom) {
    s_free_node *node = pool->synced.free_list;
    if (node) {
        pool->synced.free_list = node->next;
        return (unsigned char *)node;
    }
    if (pool->synced.allocated < pool->capacity) {
        unsigned char *buf = malloc(pool->buffer_size);
        if (!buf) {
            *oom = true;
            return NULL;
        }
        pool->synced.allocated++;
        return buf;
    }
    return NULL;
}

unsigned char *sl__pool_acquire(sl__pool *pool) {
    bool oom = false;
    pthread_mutex_lock(&pool->synced.lock);
    unsigned char *buf = NULL;
    while (!pool->synced.closed && !(buf = s_take_locked(pool, &oom)) && !oom)
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
    unsigned char *buf = pool->synced.closed ? NULL : s_take_locked(pool, &oom);
    pthread_mutex_unlock(&pool->synced.lock);
    return buf;
}

void sl__pool_release(sl__pool *pool, unsigned char *buf) {
    if (!buf)
        return;
    pthread_mutex_lock(&pool->synced.lock);
    ((s_free_node *)buf)->next = pool->synced.free_list;
    pool->synced.free_list = (s_free_node *)buf;
    pthread_cond_signal(&pool->synced.available);
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
    return pool->capacity;
}

size_t sl__pool_allocated(sl__pool *pool) {
    pthread_mutex_lock(&pool->synced.lock);
    size_t n = pool->synced.allocated;
    pthread_mutex_unlock(&pool->synced.lock);
    return n;
}
