/* The transfer buffer pool: every byte of object data in flight lives in one of its buffers. At most
 * `max_buffers` buffers of `buffer_size` bytes exist; they are allocated on first use and reused. acquire blocks
 * while all are in use: when the pool is empty, work waits (backpressure, not failure). */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stddef.h>

typedef struct sl__pool sl__pool;

/* Returns NULL on bad arguments (0 sizes) or allocation failure. */
sl__pool *sl__pool_new(size_t buffer_size, size_t max_buffers);
/* NULL ok. Every buffer must have been released. */
void sl__pool_destroy(sl__pool *pool);
/* Blocks until a buffer is free. Returns NULL if the pool was closed or memory ran out. */
unsigned char *sl__pool_acquire(sl__pool *pool);
/* Non-blocking: a buffer or NULL when none is free right now. */
unsigned char *sl__pool_try_acquire(sl__pool *pool);
/* Returns a buffer obtained from this pool. NULL ok. */
void sl__pool_release(sl__pool *pool, unsigned char *buf);
/* Wakes every waiter in acquire; they get NULL. */
void sl__pool_close(sl__pool *pool);
size_t sl__pool_buffer_size(const sl__pool *pool);
size_t sl__pool_capacity(const sl__pool *pool);
/* Buffers currently allocated (in use or free), never more than capacity. */
size_t sl__pool_allocated(sl__pool *pool);

#endif
