/* The bounded queue: FIFO order, the bound holds under contention, close wakes everyone, nothing lost or doubled. */
#include "queue.h"
#include "test.h"

#include "sluice/sluice.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

static void test_fifo_and_drain_after_close(void) {
    sl__queue *q = sl__queue_new(4);
    ASSERT_TRUE(q != NULL);
    for (uintptr_t i = 1; i <= 4; i++)
        ASSERT_INT_EQ(sl__queue_push(q, (void *)i), 0);
    ASSERT_UINT_EQ(sl__queue_length(q), 4);
    ASSERT_UINT_EQ((uintptr_t)sl__queue_pop(q), 1);
    ASSERT_INT_EQ(sl__queue_push(q, (void *)5), 0); /* wraps around the ring */
    sl__queue_close(q);
    ASSERT_INT_EQ(sl__queue_push(q, (void *)6), SL_ECANCELED);
    for (uintptr_t i = 2; i <= 5; i++)
        ASSERT_UINT_EQ((uintptr_t)sl__queue_pop(q), i);
    ASSERT_TRUE(sl__queue_pop(q) == NULL);
    ASSERT_TRUE(sl__queue_pop(q) == NULL);
    sl__queue_destroy(q);
    sl__queue_destroy(NULL);
    ASSERT_TRUE(sl__queue_new(0) == NULL);
}

typedef struct shared {
    sl__queue *q;
    atomic_size_t in_queue; /* pushed minus popped: must never exceed the capacity */
    atomic_size_t max_seen;
    atomic_uint_fast64_t sum;
    atomic_size_t popped;
    unsigned per_producer;
} shared;

static void *producer(void *arg) {
    shared *s = arg;
    for (uintptr_t i = 1; i <= s->per_producer; i++) {
        /* Count before pushing: a popper may take the item before push returns. */
        size_t now = atomic_fetch_add(&s->in_queue, 1) + 1;
        size_t seen = atomic_load(&s->max_seen);
        while (now > seen && !atomic_compare_exchange_weak(&s->max_seen, &seen, now))
            ;
        if (sl__queue_push(s->q, (void *)i) != 0)
            abort();
    }
    return NULL;
}

static void *consumer(void *arg) {
    shared *s = arg;
    void *item;
    while ((item = sl__queue_pop(s->q)) != NULL) {
        atomic_fetch_sub(&s->in_queue, 1);
        atomic_fetch_add(&s->sum, (uintptr_t)item);
        atomic_fetch_add(&s->popped, 1);
    }
    return NULL;
}

static void test_many_producers_many_consumers(void) {
    enum { PRODUCERS = 4, CONSUMERS = 4, CAP = 8 };
    shared s = {.q = sl__queue_new(CAP), .per_producer = 20000};
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        pthread_create(&c[i], NULL, consumer, &s);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&p[i], NULL, producer, &s);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    sl__queue_close(s.q);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(c[i], NULL);
    uint64_t n = s.per_producer;
    ASSERT_UINT_EQ(atomic_load(&s.popped), PRODUCERS * n);
    ASSERT_UINT_EQ(atomic_load(&s.sum), PRODUCERS * (n * (n + 1) / 2));
    /* A producer counts an item just before it may block and a consumer uncounts it just after popping, so at most
     * one extra per thread is counted; an unbounded queue would let producers run thousands ahead. */
    ASSERT_TRUE(atomic_load(&s.max_seen) <= CAP + PRODUCERS + CONSUMERS);
    ASSERT_UINT_EQ(sl__queue_length(s.q), 0);
    sl__queue_destroy(s.q);
}

static void *blocked_pusher(void *arg) {
    sl__queue *q = arg;
    return (void *)(intptr_t)sl__queue_push(q, (void *)99);
}

static void *blocked_popper(void *arg) {
    return sl__queue_pop(arg);
}

static void test_close_wakes_blocked_threads(void) {
    sl__queue *full = sl__queue_new(1);
    ASSERT_INT_EQ(sl__queue_push(full, (void *)1), 0);
    pthread_t t;
    pthread_create(&t, NULL, blocked_pusher, full);
    usleep(50000);
    sl__queue_close(full);
    void *ret;
    pthread_join(t, &ret);
    ASSERT_INT_EQ((intptr_t)ret, SL_ECANCELED);
    sl__queue_destroy(full);

    sl__queue *empty = sl__queue_new(1);
    pthread_create(&t, NULL, blocked_popper, empty);
    usleep(50000);
    sl__queue_close(empty);
    pthread_join(t, &ret);
    ASSERT_TRUE(ret == NULL);
    sl__queue_destroy(empty);
}

/* push_front: first out, into the reserve past the capacity without blocking, after close too; a full reserve is
 * refused. A hold keeps a popper waiting on an empty closed queue until what it waits for comes or the hold ends. */
static void *s_pop_one(void *arg) {
    return sl__queue_pop(arg);
}

static void test_push_front_reserve_and_hold(void) {
    int v[8];
    sl__queue *q = sl__queue_new_reserve(2, 2);
    ASSERT_TRUE(q != NULL);
    ASSERT_INT_EQ(sl__queue_push(q, &v[0]), 0);
    ASSERT_INT_EQ(sl__queue_push(q, &v[1]), 0);
    ASSERT_INT_EQ(sl__queue_push_front(q, &v[2]), 0); /* past the capacity of 2 */
    ASSERT_INT_EQ(sl__queue_push_front(q, &v[3]), 0);
    ASSERT_INT_EQ(sl__queue_push_front(q, &v[4]), SL_ETOOBIG); /* every slot taken */
    ASSERT_UINT_EQ(sl__queue_length(q), 4);
    ASSERT_TRUE(sl__queue_pop(q) == &v[3]);
    ASSERT_TRUE(sl__queue_pop(q) == &v[2]);
    ASSERT_TRUE(sl__queue_pop(q) == &v[0]);
    /* Back under the capacity: push takes items again. */
    ASSERT_TRUE(sl__queue_pop(q) == &v[1]);
    ASSERT_INT_EQ(sl__queue_push(q, &v[5]), 0);
    ASSERT_TRUE(sl__queue_pop(q) == &v[5]);

    sl__queue_hold(q);
    sl__queue_close(q);
    pthread_t t;
    ASSERT_INT_EQ(pthread_create(&t, NULL, s_pop_one, q), 0);
    usleep(50 * 1000);                                /* the popper waits: closed and empty, but held */
    ASSERT_INT_EQ(sl__queue_push_front(q, &v[6]), 0); /* after close */
    void *got = NULL;
    ASSERT_INT_EQ(pthread_join(t, &got), 0);
    ASSERT_TRUE(got == &v[6]);
    ASSERT_INT_EQ(pthread_create(&t, NULL, s_pop_one, q), 0);
    usleep(50 * 1000);
    sl__queue_release(q); /* the hold ends: the waiting popper gets NULL */
    ASSERT_INT_EQ(pthread_join(t, &got), 0);
    ASSERT_TRUE(got == NULL);
    ASSERT_TRUE(sl__queue_pop(q) == NULL);
    sl__queue_destroy(q);
}

int main(void) {
    RUN_TEST(test_fifo_and_drain_after_close);
    RUN_TEST(test_many_producers_many_consumers);
    RUN_TEST(test_close_wakes_blocked_threads);
    RUN_TEST(test_push_front_reserve_and_hold);
    TEST_DONE();
}
