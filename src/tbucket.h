/*
 * tbucket.h - token bucket. Pure arithmetic on a caller-supplied clock so it
 * is deterministic in tests; used for log flood limiting and UDP replies.
 */
#ifndef ECHOD_TBUCKET_H
#define ECHOD_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct tb {
    double rate;      /* tokens added per second */
    double burst;     /* bucket capacity */
    double tokens;    /* tokens available now */
    uint64_t last_ms; /* time of the last refill */
};

/* Start full: the first `burst` takes succeed at once. */
void tb_init(struct tb *tb, double rate, double burst, uint64_t now_ms);

/* Refill for the time since the last call, then take one token if there
 * is one. Returns true when a token was taken. A clock that goes backwards
 * adds nothing. */
bool tb_take(struct tb *tb, uint64_t now_ms);

/* tb_take for n tokens (n >= 0, say the bytes of a reply): all n or
 * none, so a large request refused leaves the tokens for smaller ones. A
 * take of more than `burst` never succeeds. */
bool tb_take_n(struct tb *tb, double n, uint64_t now_ms);

/* The tokens tb_take would find at now_ms, without taking any. */
double tb_peek(const struct tb *tb, uint64_t now_ms);

#endif /* ECHOD_TBUCKET_H */
