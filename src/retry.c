/* Retry policy: which answers are worth another try, and how long to wait (exponential backoff, full jitter). */
#include "http.h"

#include "clock.h"

#include <errno.h>
#include <time.h>

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

static void s_sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

bool sl__attempts_backoff(sl__attempts *a, const sl__retry_policy *policy, sl__http_health *health, uint64_t *rng) {
    if (sl__http_aborted())
        return false;
    int64_t now = sl__now_ms();
    bool spent = a->retries + 1 >= policy->max_attempts || now - a->started_ms >= policy->deadline_ms;
    bool holding = spent && policy->max_attempts > 1 && sl__http_health_holding(health);
    if (holding && !a->held_ms)
        a->held_ms = now;
    if (holding && now - a->held_ms >= policy->deadline_ms)
        holding = false;
    if (spent && !holding)
        return false;
    a->retries++;
    sl__http_note_retry();
    unsigned left = sl__retry_delay_ms(policy, a->retries, rng);
    while (left > 0 && !sl__http_aborted() && !(holding && !sl__http_health_holding(health))) {
        unsigned slice = left < 100 ? left : 100;
        s_sleep_ms(slice);
        left -= slice;
    }
    return !sl__http_aborted();
}

bool sl__attempts_progressed(sl__attempts *a, uint64_t *mark, uint64_t at, uint64_t step) {
    if (at < *mark || at - *mark < step)
        return false;
    *mark = at;
    a->retries = 0;
    a->started_ms = sl__now_ms();
    a->held_ms = 0;
    return true;
}
