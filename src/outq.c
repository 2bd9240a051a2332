/*
 * outq.c - chunk pool and output queue.
 *
 * Owns: chunk allocation, append, flush (writev from the head) and consume.
 * Never knows about connections or epoll.
 * Invariants: q->bytes is the sum of the unsent spans (end - start) of the
 * chunks; only outq_consume() advances positions; a queue with no bytes
 * holds no chunk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "outq.h"

void
outq_pool_init(struct outq_pool *p, size_t max_free)
{
    p->free = NULL;
    p->n_free = 0;
    p->max_free = max_free;
    p->n_live = 0;
}

void
outq_pool_fini(struct outq_pool *p)
{
    while (p->free != NULL) {
        struct outq_chunk *c = p->free;
        p->free = c->next;
        free(c);
    }
    p->n_free = 0;
}

static struct outq_chunk *
outq_chunk_get(struct outq_pool *p)
{
    struct outq_chunk *c = p->free;

    if (c != NULL) {
        p->free = c->next;
        p->n_free--;
    } else {
        c = malloc(sizeof(*c));
        if (c == NULL) {
            return NULL;
        }
    }
    c->next = NULL;
    c->start = 0;
    c->end = 0;
    p->n_live++;
    return c;
}

static void
outq_chunk_put(struct outq_pool *p, struct outq_chunk *c)
{
    p->n_live--;
    if (p->n_free < p->max_free) {
        c->next = p->free;
        p->free = c;
        p->n_free++;
    } else {
        free(c);
    }
}

void
outq_init(struct outq *q)
{
    q->head = NULL;
    q->tail = NULL;
    q->bytes = 0;
}

static void
outq_chunks_put(struct outq_pool *p, struct outq_chunk *c)
{
    while (c != NULL) {
        struct outq_chunk *next = c->next;
        outq_chunk_put(p, c);
        c = next;
    }
}

int
outq_append(struct outq *q, struct outq_pool *p, const void *buf, size_t len)
{
    const char *src = buf;
    struct outq_chunk *first = NULL, *prev = NULL;
    size_t tail_fill = 0, n, left = len;

    /* Fill the tail's spare room first. */
    if (q->tail != NULL && q->tail->end < OUTQ_CHUNK) {
        tail_fill = OUTQ_CHUNK - q->tail->end;
        if (tail_fill > left) {
            tail_fill = left;
        }
        memcpy(q->tail->data + q->tail->end, src, tail_fill);
        q->tail->end += tail_fill;
        src += tail_fill;
        left -= tail_fill;
    }
    /* New chunks go on a private list first, so that a failure can leave
     * the queue exactly as it was. */
    while (left > 0) {
        struct outq_chunk *c = outq_chunk_get(p);
        if (c == NULL) {
            outq_chunks_put(p, first);
            if (q->tail != NULL) {
                q->tail->end -= tail_fill;
            }
            errno = ENOMEM;
            return -1;
        }
        n = left < OUTQ_CHUNK ? left : OUTQ_CHUNK;
        memcpy(c->data, src, n);
        c->end = n;
        src += n;
        left -= n;
        if (prev == NULL) {
            first = c;
        } else {
            prev->next = c;
        }
        prev = c;
    }
    if (first != NULL) {
        if (q->tail != NULL) {
            q->tail->next = first;
        } else {
            q->head = first;
        }
        q->tail = prev;
    }
    q->bytes += len;
    return 0;
}

ssize_t
outq_flush(struct outq *q, struct outq_pool *p, int fd, bool *short_write)
{
    struct iovec iov[OUTQ_IOV];
    struct msghdr msg;
    size_t offered = 0;
    int n = 0;
    ssize_t w;

    for (struct outq_chunk *c = q->head; c != NULL && n < OUTQ_IOV;
         c = c->next) {
        iov[n].iov_base = c->data + c->start;
        iov[n].iov_len = c->end - c->start;
        offered += iov[n].iov_len;
        n++;
    }
    *short_write = false;
    if (n == 0) {
        return 0;
    }
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    do {
        w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w >= 0) {
        *short_write = (size_t)w < offered;
        outq_consume(q, p, (size_t)w);
    }
    return w;
}

void
outq_consume(struct outq *q, struct outq_pool *p, size_t n)
{
    while (n > 0 && q->head != NULL) {
        struct outq_chunk *c = q->head;
        size_t span = c->end - c->start;

        if (n < span) {
            c->start += n;
            q->bytes -= n;
            return;
        }
        n -= span;
        q->bytes -= span;
        q->head = c->next;
        outq_chunk_put(p, c);
    }
    if (q->head == NULL) {
        q->tail = NULL;
    }
}

void
outq_clear(struct outq *q, struct outq_pool *p)
{
    outq_chunks_put(p, q->head);
    outq_init(q);
}
