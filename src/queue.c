/* Bounded MPMC queue: a ring of pointers under one mutex with two condition variables. The queue moves one item per
 * object, so a mutex is far cheaper than the work it hands out; a lock-free ring would buy nothing here. */
#include "queue.h"

#include "sluice/sluice.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct sl__queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    size_t capacity; /* where push blocks */
    size_t low;      /* a blocked push waits until pops bring the count down to this: the producer refills in bursts
                      * instead of waking for every item taken (a context switch each, both ways) */
    size_t slots;    /* capacity + the reserve only sl__queue_push_front uses */
    size_t head;     /* next item to pop */
    size_t count;
    size_t holds;        /* sl__queue_hold: while > 0, pop waits on an empty closed queue instead of returning NULL */
    uint64_t starved_ns; /* poppers' time waiting on an empty open queue */
    bool closed;
    void *items[]; /* slots */
};

sl__queue *sl__queue_new(size_t capacity) {
    return sl__queue_new_reserve(capacity, 0);
}

sl__queue *sl__queue_new_reserve(size_t capacity, size_t reserve) {
    if (capacity == 0 || reserve > SIZE_MAX - capacity ||
        capacity + reserve > (SIZE_MAX - sizeof(sl__queue)) / sizeof(void *))
        return NULL;
    sl__queue *q = calloc(1, sizeof(*q) + (capacity + reserve) * sizeof(void *));
    if (!q)
        return NULL;
    q->capacity = capacity;
    q->low = capacity / 2;
    q->slots = capacity + reserve;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return q;
}

void sl__queue_destroy(sl__queue *q) {
    if (!q)
        return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q);
}

int sl__queue_push(sl__queue *q, void *item) {
    pthread_mutex_lock(&q->lock);
    if (q->count >= q->capacity)
        while (q->count > q->low && !q->closed)
            pthread_cond_wait(&q->not_full, &q->lock);
    if (q->closed) {
        pthread_mutex_unlock(&q->lock);
        return SL_ECANCELED;
    }
    q->items[(q->head + q->count) % q->slots] = item;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void *sl__queue_pop(sl__queue *q) {
    pthread_mutex_lock(&q->lock);
    if (q->count == 0 && !q->closed) {
        /* Waiting for the producer: timed, the only cost being two clock reads per wait. */
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        while (q->count == 0 && !q->closed)
            pthread_cond_wait(&q->not_empty, &q->lock);
        clock_gettime(CLOCK_MONOTONIC, &b);
        q->starved_ns += (uint64_t)((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    }
    while (q->count == 0 && (!q->closed || q->holds > 0))
        pthread_cond_wait(&q->not_empty, &q->lock);
    void *item = NULL;
    if (q->count > 0) {
        item = q->items[q->head];
        q->head = (q->head + 1) % q->slots;
        q->count--;
        if (q->count <= q->low)
            pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    return item;
}

int sl__queue_push_front(sl__queue *q, void *item) {
    pthread_mutex_lock(&q->lock);
    if (q->count == q->slots) {
        pthread_mutex_unlock(&q->lock);
        return SL_ETOOBIG;
    }
    q->head = (q->head + q->slots - 1) % q->slots;
    q->items[q->head] = item;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void sl__queue_hold(sl__queue *q) {
    pthread_mutex_lock(&q->lock);
    q->holds++;
    pthread_mutex_unlock(&q->lock);
}

void sl__queue_release(sl__queue *q) {
    pthread_mutex_lock(&q->lock);
    if (q->holds > 0 && --q->holds == 0)
        pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

void sl__queue_close(sl__queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

uint64_t sl__queue_starved_ns(sl__queue *q) {
    pthread_mutex_lock(&q->lock);
    uint64_t ns = q->starved_ns;
    pthread_mutex_unlock(&q->lock);
    return ns;
}

size_t sl__queue_length(sl__queue *q) {
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}
