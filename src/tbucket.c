/*
 * tbucket.c - token bucket.
 *
 * Invariant: 0 <= tokens <= burst. No clock of its own: callers pass a
 * monotonic time in milliseconds.
 */
#include "tbucket.h"

void
tb_init(struct tb *tb, double rate, double burst, uint64_t now_ms)
{
    tb->rate = rate;
    tb->burst = burst;
    tb->tokens = burst;
    tb->last_ms = now_ms;
}

bool
tb_take(struct tb *tb, uint64_t now_ms)
{
    return tb_take_n(tb, 1.0, now_ms);
}

bool
tb_take_n(struct tb *tb, double n, uint64_t now_ms)
{
    tb->tokens = tb_peek(tb, now_ms);
    if (now_ms > tb->last_ms) {
        tb->last_ms = now_ms;
    }
    if (tb->tokens >= n) {
        tb->tokens -= n;
        return true;
    }
    return false;
}

double
tb_peek(const struct tb *tb, uint64_t now_ms)
{
    double t = tb->tokens;

    if (now_ms > tb->last_ms) {
        t += (double)(now_ms - tb->last_ms) * tb->rate / 1000.0;
    }
    return t > tb->burst ? tb->burst : t;
}
