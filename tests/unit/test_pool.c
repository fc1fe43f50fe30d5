/* The buffer pool: never more than its capacity, lazy allocation, reuse, blocking acquire, close. */
#include "pool.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static void test_cap_and_reuse(void) {
    ASSERT_TRUE(sl__pool_new(0, 4) == NULL);
    ASSERT_TRUE(sl__pool_new(4096, 0) == NULL);
    sl__pool *p = sl__pool_new(4096, 3);
    ASSERT_TRUE(p != NULL);
    ASSERT_UINT_EQ(sl__pool_allocated(p), 0); /* nothing until asked */
    unsigned char *a = sl__pool_acquire(p), *b = sl__pool_acquire(p), *c = sl__pool_acquire(p);
    ASSERT_TRUE(a && b && c && a != b && b != c && a != c);
    memset(a, 1, 4096);
    memset(b, 2, 4096);
    memset(c, 3, 4096);
    ASSERT_TRUE(sl__pool_try_acquire(p) == NULL);
    ASSERT_UINT_EQ(sl__pool_allocated(p), 3);
    sl__pool_release(p, b);
    unsigned char *d = sl__pool_try_acquire(p);
    ASSERT_TRUE(d == b); /* reused, not a fresh allocation */
    ASSERT_UINT_EQ(sl__pool_allocated(p), 3);
    sl__pool_release(p, a);
    sl__pool_release(p, c);
    sl__pool_release(p, d);
    sl__pool_release(p, NULL);
    ASSERT_UINT_EQ(sl__pool_capacity(p), 3);
    ASSERT_UINT_EQ(sl__pool_buffer_size(p), 4096);
    sl__pool_destroy(p);
    sl__pool_destroy(NULL);
}

typedef struct shared {
    sl__pool *pool;
    atomic_int in_use;
    atomic_int max_in_use;
    int rounds;
} shared;

static void *worker(void *arg) {
    shared *s = arg;
    for (int i = 0; i < s->rounds; i++) {
        unsigned char *buf = sl__pool_acquire(s->pool);
        if (!buf)
            abort();
        int now = atomic_fetch_add(&s->in_use, 1) + 1;
        int seen = atomic_load(&s->max_in_use);
        while (now > seen && !atomic_compare_exchange_weak(&s->max_in_use, &seen, now))
            ;
        buf[0] = (unsigned char)i;
        atomic_fetch_sub(&s->in_use, 1);
        sl__pool_release(s->pool, buf);
    }
    return NULL;
}

static void test_contention_never_exceeds_capacity(void) {
    enum { THREADS = 8, CAP = 3 };
    shared s = {.pool = sl__pool_new(1024, CAP), .rounds = 20000};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, &s);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ASSERT_TRUE(atomic_load(&s.max_in_use) <= CAP);
    ASSERT_TRUE(atomic_load(&s.max_in_use) >= 1);
    ASSERT_TRUE(sl__pool_allocated(s.pool) <= CAP);
    sl__pool_destroy(s.pool);
}

static void *acquirer(void *arg) {
    return sl__pool_acquire(arg);
}

static void test_acquire_blocks_until_release_or_close(void) {
    sl__pool *p = sl__pool_new(1024, 1);
    unsigned char *only = sl__pool_acquire(p);
    pthread_t t;
    pthread_create(&t, NULL, acquirer, p);
    usleep(50000);
    sl__pool_release(p, only); /* hands the buffer to the waiter */
    void *got;
    pthread_join(t, &got);
    ASSERT_TRUE(got == only);

    pthread_create(&t, NULL, acquirer, p);
    usleep(50000);
    sl__pool_close(p); /* the waiter gives up */
    void *none;
    pthread_join(t, &none);
    ASSERT_TRUE(none == NULL);
    sl__pool_release(p, got);
    sl__pool_destroy(p);
}

static void *reserver(void *arg) {
    return sl__pool_reserve(arg, 3000) ? arg : NULL;
}

/* Reservations count against the same limit as buffers; promised bytes are kept for blocking requests. */
static void test_reservations_and_promises(void) {
    sl__pool *p = sl__pool_new_bytes(1024, 10000);
    ASSERT_UINT_EQ(sl__pool_capacity(p), 9);
    ASSERT_UINT_EQ(sl__pool_limit(p), 10000);
    unsigned char *b = sl__pool_acquire(p);
    ASSERT_UINT_EQ(sl__pool_used(p), 1024);
    sl__pool_promise(p, 4000);
    /* 10000 - 1024 in use - 4000 promised: 4976 to spare. */
    ASSERT_FALSE(sl__pool_try_reserve(p, 5000));
    ASSERT_TRUE(sl__pool_try_reserve(p, 4976));
    ASSERT_FALSE(sl__pool_try_reserve(p, 1));
    ASSERT_TRUE(sl__pool_try_acquire(p) == NULL); /* a new buffer only from spare bytes too */
    /* A blocking reservation takes from the promise and does not wait. */
    ASSERT_TRUE(sl__pool_reserve(p, 3000));
    ASSERT_UINT_EQ(sl__pool_used(p), 1024 + 4976 + 3000);
    /* The rest of the promise (1000) is all there is; more waits until something is given back. */
    pthread_t t;
    pthread_create(&t, NULL, reserver, p);
    usleep(50000);
    ASSERT_UINT_EQ(sl__pool_used(p), 1024 + 4976 + 3000);
    sl__pool_unreserve(p, 4976);
    void *got;
    pthread_join(t, &got);
    ASSERT_TRUE(got == p);
    ASSERT_UINT_EQ(sl__pool_used(p), 1024 + 3000 + 3000);
    ASSERT_UINT_EQ(sl__pool_peak(p), 1024 + 4976 + 3000);
    ASSERT_TRUE(sl__pool_peak(p) <= sl__pool_limit(p));
    /* More than the whole limit can never be had; a closed pool gives nothing and wakes waiters. */
    ASSERT_FALSE(sl__pool_reserve(p, 10001));
    pthread_create(&t, NULL, reserver, p);
    usleep(50000);
    sl__pool_close(p);
    pthread_join(t, &got);
    ASSERT_TRUE(got == NULL);
    ASSERT_FALSE(sl__pool_try_reserve(p, 1));
    sl__pool_unreserve(p, 6000);
    sl__pool_release(p, b);
    ASSERT_UINT_EQ(sl__pool_used(p), 1024); /* the buffer stays allocated until destroy */
    sl__pool_destroy(p);
    ASSERT_TRUE(sl__pool_new_bytes(4096, 4095) == NULL);
}

int main(void) {
    RUN_TEST(test_cap_and_reuse);
    RUN_TEST(test_reservations_and_promises);
    RUN_TEST(test_contention_never_exceeds_capacity);
    RUN_TEST(test_acquire_blocks_until_release_or_close);
    TEST_DONE();
}
