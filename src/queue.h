/* A bounded multi-producer multi-consumer queue of pointers. push blocks while full, pop blocks while empty:
 * this is the backpressure that keeps memory flat. */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl__queue sl__queue;

/* capacity > 0 items. Returns NULL on allocation failure. */
sl__queue *sl__queue_new(size_t capacity);
/* As sl__queue_new, with `reserve` more slots that only sl__queue_push_front may fill. */
sl__queue *sl__queue_new_reserve(size_t capacity, size_t reserve);
/* NULL ok. Items still queued are not freed (the queue does not own them). */
void sl__queue_destroy(sl__queue *q);
/* Blocks while full. Returns 0, or SL_ECANCELED if the queue was closed (the item was not queued). */
int sl__queue_push(sl__queue *q, void *item);
/* Blocks while empty and open. Returns the oldest item, or NULL once the queue is closed and drained. */
void *sl__queue_pop(sl__queue *q);
/* Puts item first, without blocking: into the reserve when the queue is at its capacity, and also after
 * sl__queue_close (for work an item already popped hands out). SL_ETOOBIG when every slot is taken. */
int sl__queue_push_front(sl__queue *q, void *item);
/* While a hold is taken, pop on an empty closed queue waits (more may come from sl__queue_push_front) instead of
 * returning NULL. Take it before pushing the item whose popper will push_front more; release it once that is done. */
void sl__queue_hold(sl__queue *q);
void sl__queue_release(sl__queue *q);
/* No more pushes; poppers drain what is left, then get NULL. Wakes every waiter. Idempotent. */
void sl__queue_close(sl__queue *q);
/* The time poppers have spent, added up, waiting on the queue while it was empty and open: waiting for the producer
 * (a job's workers waiting for the listing). */
uint64_t sl__queue_starved_ns(sl__queue *q);
/* Items currently queued (a snapshot). */
size_t sl__queue_length(sl__queue *q);

#endif
