/* The job's memory budget. Every byte of object data in flight lives in memory counted here: the transfer buffers
 * (at most `limit / buffer_size` buffers of `buffer_size` bytes, allocated on first use and reused) and the byte
 * reservations stores make for their own buffers (a gs:// writer's upload chunk). Nothing counted ever exceeds the
 * limit: acquire and reserve block while it is reached (backpressure, not failure), try_reserve says no.
 *
 * Promises keep the blocking side from starving: a job promises each worker's minimum (its transfer buffer, one
 * upload quantum) up front, and try_reserve never takes promised bytes, so what grows opportunistically (an upload
 * buffer beyond its minimum) can never make a worker wait for its minimum. A blocking request takes from the promise
 * first. */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl__pool sl__pool;

/* Returns NULL on bad arguments (0 sizes) or allocation failure. The limit is buffer_size * max_buffers. */
sl__pool *sl__pool_new(size_t buffer_size, size_t max_buffers);
/* The same with a limit in bytes (at least one buffer). */
sl__pool *sl__pool_new_bytes(size_t buffer_size, uint64_t limit_bytes);
/* NULL ok. Every buffer must have been released and every reservation returned. */
void sl__pool_destroy(sl__pool *pool);
/* Blocks until a buffer is free (or one more fits in the limit). Returns NULL if the pool was closed or memory ran
 * out. */
unsigned char *sl__pool_acquire(sl__pool *pool);
/* Non-blocking: a buffer or NULL when none is free right now (a new one only from unpromised bytes). */
unsigned char *sl__pool_try_acquire(sl__pool *pool);
/* Returns a buffer obtained from this pool. NULL ok. */
void sl__pool_release(sl__pool *pool, unsigned char *buf);

/* Sets aside `bytes` for blocking requests to come (acquire of a new buffer, reserve): try_reserve leaves them. */
void sl__pool_promise(sl__pool *pool, uint64_t bytes);
/* Counts `bytes` more against the limit, waiting while they do not fit. Returns false (nothing counted) if the pool
 * was closed or `bytes` exceeds the whole limit. */
bool sl__pool_reserve(sl__pool *pool, size_t bytes);
/* Counts `bytes` more if they fit now beside what is in use and promised; false otherwise. Never blocks. */
bool sl__pool_try_reserve(sl__pool *pool, size_t bytes);
/* Gives back `bytes` of earlier reservations. */
void sl__pool_unreserve(sl__pool *pool, size_t bytes);

/* Wakes every waiter in acquire and reserve; they get NULL / false. */
void sl__pool_close(sl__pool *pool);
size_t sl__pool_buffer_size(const sl__pool *pool);
/* The most buffers that fit in the limit. */
size_t sl__pool_capacity(const sl__pool *pool);
uint64_t sl__pool_limit(const sl__pool *pool);
/* Buffers currently allocated (in use or free), never more than capacity. */
size_t sl__pool_allocated(sl__pool *pool);
/* Bytes counted now: allocated buffers and reservations. */
uint64_t sl__pool_used(sl__pool *pool);
/* The most bytes ever counted at once. */
uint64_t sl__pool_peak(sl__pool *pool);

#endif
