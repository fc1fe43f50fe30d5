/* Retry policy: which answers are worth another try, and how long to wait (exponential backoff, full jitter). */
#include "http.h"

bool sl__retry_status(long status) {
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

void sl__retry_defaults(sl__retry_policy *p) {
    if (!p->max_attempts)
        p->max_attempts = 6;
    if (!p->initial_delay_ms)
        p->initial_delay_ms = 100;
    if (!p->max_delay_ms)
        p->max_delay_ms = 10000;
    if (!p->deadline_ms)
        p->deadline_ms = 120000;
}

static uint64_t s_xorshift(uint64_t *state) {
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

unsigned sl__retry_delay_ms(const sl__retry_policy *p, unsigned retry, uint64_t *rng) {
    sl__retry_policy d = *p;
    sl__retry_defaults(&d);
    /* Full jitter (uniform in [0, cap]) spreads the retries of many workers that failed together, so they do not
     * hit a recovering server in lockstep. */
    uint64_t cap = d.initial_delay_ms;
    for (unsigned i = 1; i < retry && cap < d.max_delay_ms; i++)
        cap *= 2;
    if (cap > d.max_delay_ms)
        cap = d.max_delay_ms;
    return (unsigned)(s_xorshift(rng) % (cap + 1));
}
