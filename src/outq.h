/*
 * outq.h - per-connection output queue: a singly linked list of fixed-size
 * chunks from a shared pool, flushed with writev from the head.
 *
 * The queue knows nothing of connections or epoll. An empty queue holds no
 * chunk, so an idle connection costs no buffer memory.
 */
#ifndef ECHOD_OUTQ_H
#define ECHOD_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define OUTQ_CHUNK ((size_t)16 * 1024) /* payload bytes per chunk */
#define OUTQ_IOV 64 /* iovecs per writev (well under IOV_MAX) */

struct outq_chunk {
    struct outq_chunk *next;
    size_t start;  /* first unsent byte */
    size_t end;    /* one past the last stored byte */
    uint32_t born; /* loop time (ms) its first byte came: the owner's */
    char data[OUTQ_CHUNK];
};

/* Free chunks kept for reuse, up to max_free; the rest go back to malloc. */
struct outq_pool {
    struct outq_chunk *free;
    size_t n_free;
    size_t max_free;
    size_t n_live; /* chunks handed out and not yet returned */
};

/* Invariant: bytes == sum over chunks of (end - start); head == NULL iff
 * bytes == 0. */
struct outq {
    struct outq_chunk *head;
    struct outq_chunk *tail;
    size_t bytes;
};

void outq_pool_init(struct outq_pool *p, size_t max_free);
/* Frees the cached chunks; every queue must have been cleared first. */
void outq_pool_fini(struct outq_pool *p);

void outq_init(struct outq *q);

static inline bool
outq_empty(const struct outq *q)
{
    return q->bytes == 0;
}

/* Bytes of chunk memory the queue pins: the queued bytes plus the sent
 * prefix of the head chunk (only the tail can have unused room, and only
 * the head a sent prefix). A queue whose footprint stays at most H holds at
 * most ceil(H / OUTQ_CHUNK) chunks: that is what makes the memory bound
 * "high watermark + one chunk" true for any watermark. */
static inline size_t
outq_footprint(const struct outq *q)
{
    return q->head != NULL ? q->head->start + q->bytes : 0;
}

/* Append len bytes behind everything queued. All or nothing: returns 0, or
 * -1 with errno = ENOMEM and the queue unchanged. */
int outq_append(struct outq *q, struct outq_pool *p, const void *buf,
                size_t len);

/* Send as much of the queue as the kernel takes, from the head, in one
 * sendmsg (a writev with MSG_NOSIGNAL), and consume what was written.
 * Returns the bytes written, or -1 with errno (EAGAIN, EPIPE, ...); EINTR
 * is retried here. *short_write is set when the kernel took less than was
 * offered, i.e. the socket is no longer writable. */
ssize_t outq_flush(struct outq *q, struct outq_pool *p, int fd,
                   bool *short_write);

/* Drop n sent bytes from the head (n <= bytes); the only function that
 * advances positions and returns finished chunks to the pool. */
void outq_consume(struct outq *q, struct outq_pool *p, size_t n);

/* Drop everything queued and return the chunks to the pool. */
void outq_clear(struct outq *q, struct outq_pool *p);

#endif /* ECHOD_OUTQ_H */
