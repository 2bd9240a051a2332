/*
 * stsess.c - the sessions of a STAMP Session-Reflector in stateful mode
 * (see stsess.h for what a session is, and the eviction rule and why).
 *
 * Owns: nslots slots in sets of STSS_WAYS, a session's set chosen by a
 * keyed hash of its whole key; and a ring of awaited transmit stamps,
 * each naming the id and the slot of the session that awaits it.
 * Never allocates after stss_init, never logs, never reads a clock (the
 * caller's now_ms is the only time), never locks (one table per worker).
 * Invariants: a live session is evicted only after STSS_MIN_IDLE_MS
 * without a packet. A stamp lands only in the session whose latest
 * stss_await named its id: a session awaits one id at a time (stss_start
 * clears it, the next await replaces it), and a ring entry is the latest
 * await at its index, so an entry (id, slot) whose slot awaits id was
 * written by that slot's current session, not by an earlier occupant
 * (which can write nothing after the slot is recycled). No generation
 * count is needed on top.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "sock.h"
#include "stsess.h"

#define STSS_NO_SLOT UINT32_MAX

struct stss_stamp {
    uint32_t id;   /* the tx-stamp id awaited */
    uint32_t slot; /* of the session that awaits it; STSS_NO_SLOT: none */
};

/* The bounds stsess.h states. */
_Static_assert(sizeof(struct stss_sess) <= STSS_SLOT_BYTES,
               "a slot outgrew STSS_SLOT_BYTES: update it and stsess.h");
_Static_assert(sizeof(struct stss_stamp) == 8,
               "a stamp entry is no longer 8 bytes: update stsess.h");
_Static_assert((STSS_STAMPS & (STSS_STAMPS - 1)) == 0,
               "STSS_STAMPS must be a power of two");

static void
stss_stamps_reset(struct stss *t)
{
    for (size_t i = 0; i < STSS_STAMPS; i++) {
        t->stamp[i].id = 0;
        t->stamp[i].slot = STSS_NO_SLOT;
    }
}

int
stss_init(struct stss *t, size_t slots, uint64_t idle_ms)
{
    memset(t, 0, sizeof(*t));
    /* Slot numbers go in 32 bits, and STSS_NO_SLOT is none of them. */
    if (slots < STSS_WAYS || slots % STSS_WAYS != 0 || slots >= STSS_NO_SLOT ||
        idle_ms == 0) {
        errno = EINVAL;
        return -1;
    }
    t->slot = calloc(slots, sizeof(*t->slot));
    t->stamp = calloc(STSS_STAMPS, sizeof(*t->stamp));
    if (t->slot == NULL || t->stamp == NULL) {
        stss_fini(t);
        errno = ENOMEM;
        return -1;
    }
    t->nslots = slots;
    t->idle_ms = idle_ms;
    stss_stamps_reset(t);
    /* A secret nobody outside knows: spoofed sources cannot be picked so
     * that they all land in a victim's set. */
    skey_seed(&t->seed);
    return 0;
}

void
stss_fini(struct stss *t)
{
    free(t->slot);
    free(t->stamp);
    t->slot = NULL;
    t->stamp = NULL;
    t->nslots = 0;
}

void
stss_clear(struct stss *t)
{
    if (t->slot == NULL) {
        return;
    }
    memset(t->slot, 0, t->nslots * sizeof(*t->slot));
    stss_stamps_reset(t);
    skey_seed(&t->seed);
}

/* The key of a session; false for a family other than IPv4 or IPv6. */
static bool
stss_key_of(struct stss_key *k, const struct sockaddr *peer,
            const struct sockaddr *local, uint16_t ssid)
{
    memset(k, 0, sizeof(*k));
    if (peer == NULL || local == NULL) {
        return false;
    }
    /* Whole addresses: a session is one host, not a source prefix. */
    if (skey_of(&k->peer, peer, 32, 128) == 0 ||
        skey_of(&k->local, local, 32, 128) == 0) {
        return false;
    }
    k->peer_port = (uint16_t)sock_port(peer);
    k->local_port = (uint16_t)sock_port(local);
    k->ssid = ssid;
    return true;
}

static bool
stss_key_equal(const struct stss_key *a, const struct stss_key *b)
{
    return a->peer_port == b->peer_port && a->local_port == b->local_port &&
           a->ssid == b->ssid && skey_equal(&a->peer, &b->peer) &&
           skey_equal(&a->local, &b->local);
}

/* XOR v into the first 8 bytes of b, little-endian. */
static void
stss_xor64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        b[i] ^= (uint8_t)(v >> (8 * i));
    }
}

/*
 * skey_hash keys one 16-byte block; a session key is three (peer, local,
 * ports and SSID). Chain them CBC-MAC style, each block XORed with the
 * hash of the ones before: for messages of one fixed length that is a
 * keyed hash as unpredictable as SipHash itself, so colliding sessions
 * cannot be chosen without the secret.
 */
static uint64_t
stss_hash(const struct stss *t, const struct stss_key *k)
{
    struct skey m = k->local;
    uint64_t h = skey_hash(&t->seed, &k->peer);

    stss_xor64(m.b, h);
    h = skey_hash(&t->seed, &m);
    memset(&m, 0, sizeof(m));
    stss_xor64(m.b, h);
    m.b[8] = (uint8_t)(k->peer_port >> 8);
    m.b[9] = (uint8_t)k->peer_port;
    m.b[10] = (uint8_t)(k->local_port >> 8);
    m.b[11] = (uint8_t)k->local_port;
    m.b[12] = (uint8_t)(k->ssid >> 8);
    m.b[13] = (uint8_t)k->ssid;
    return skey_hash(&t->seed, &m);
}

/* How long s has been quiet at now_ms (0 if the clock is behind it). */
static uint64_t
stss_idle(const struct stss_sess *s, uint64_t now_ms)
{
    return now_ms > s->last_ms ? now_ms - s->last_ms : 0;
}

/* Start a new session k in slot s: counters at 0, and nothing awaited,
 * so a stamp the old occupant awaited cannot land. */
static void
stss_start(struct stss *t, struct stss_sess *s, const struct stss_key *k)
{
    memset(s, 0, sizeof(*s));
    s->key = *k;
    s->used = true;
    ctr_add(&t->created, 1);
}

struct stss_sess *
stss_get(struct stss *t, const struct sockaddr *peer,
         const struct sockaddr *local, uint16_t ssid, uint64_t now_ms)
{
    struct stss_key key;
    struct stss_sess *s, *empty = NULL, *oldest = NULL;

    if (!stss_key_of(&key, peer, local, ssid)) {
        return NULL;
    }
    s = t->slot + (stss_hash(t, &key) % (t->nslots / STSS_WAYS)) * STSS_WAYS;
    for (int w = 0; w < STSS_WAYS; w++, s++) {
        if (!s->used) {
            if (empty == NULL) {
                empty = s;
            }
            continue;
        }
        if (stss_key_equal(&s->key, &key)) {
            if (stss_idle(s, now_ms) >= t->idle_ms) {
                stss_start(t, s, &key); /* expired: from 0 again */
            }
            s->last_ms = now_ms;
            s->rx++;
            return s;
        }
        if (oldest == NULL || s->last_ms < oldest->last_ms) {
            oldest = s;
        }
    }
    if (empty == NULL) {
        /* Every way is used, so oldest is set: the most idle one, which
         * is expired if any is. */
        uint64_t idle = stss_idle(oldest, now_ms);

        if (idle < t->idle_ms) {
            if (idle < STSS_MIN_IDLE_MS) {
                ctr_add(&t->refused, 1);
                return NULL;
            }
            ctr_add(&t->evicted, 1);
        }
        empty = oldest;
    }
    stss_start(t, empty, &key);
    empty->last_ms = now_ms;
    empty->rx = 1;
    return empty;
}

uint32_t
stss_sent(struct stss_sess *s)
{
    /* The next reply carries this one's send time, not the one before. */
    s->awaiting = false;
    s->tx++;
    return s->next_seq++;
}

void
stss_await(struct stss *t, struct stss_sess *s, uint32_t seq, uint32_t id)
{
    struct stss_stamp *e = &t->stamp[id & (STSS_STAMPS - 1)];

    assert(s >= t->slot && s < t->slot + t->nslots && s->used);
    /* An entry still awaited by another session is overwritten: that
     * stamp, if it ever comes, is counted stale. */
    e->id = id;
    e->slot = (uint32_t)(s - t->slot);
    s->await_seq = seq;
    s->await_id = id;
    s->awaiting = true;
}

bool
stss_stamped(struct stss *t, uint32_t id, const struct timespec *sent)
{
    struct stss_stamp *e = &t->stamp[id & (STSS_STAMPS - 1)];
    struct stss_sess *s;

    if (e->slot == STSS_NO_SLOT || e->id != id) {
        ctr_add(&t->stale, 1);
        return false;
    }
    s = t->slot + e->slot;
    e->slot = STSS_NO_SLOT; /* one stamp per id: a duplicate is stale */
    if (!s->awaiting || s->await_id != id) {
        ctr_add(&t->stale, 1);
        return false;
    }
    s->fu_seq = s->await_seq;
    s->fu_sent = *sent;
    s->fu_valid = true;
    s->awaiting = false;
    return true;
}

bool
stss_followup(const struct stss_sess *s, uint32_t *seq, struct timespec *sent)
{
    /* Only the reply just before the next one (RFC 8972 §4.7): an older
     * time would be mistaken for it. */
    if (!s->fu_valid || s->fu_seq != s->next_seq - 1) {
        return false;
    }
    *seq = s->fu_seq;
    *sent = s->fu_sent;
    return true;
}
