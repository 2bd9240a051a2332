/*
 * scrape.c - the metrics listeners on the main thread's loop.
 *
 * Owns: the metrics sockets (one per `service = "metrics"` entry,
 * bound once, not per worker) and at most SCR_CLIENTS scrapes in
 * progress, each in a fixed slot with a HTTP_MAX request buffer, and the
 * one timer that drops a scraper past its deadline. Never touches a
 * worker or an echo socket; the answer's text comes from the server's
 * render callback (one snapshot, metrics.h).
 *
 * Invariants: every fd is edge-triggered and follows the rules of
 * docs/design.md section 3 (flags set by events, cleared by EAGAIN); a
 * client slot is reused only after on_free (the loop may still hold its
 * io in the current batch); the timer is armed exactly while a client
 * is open.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "conn.h"
#include "counter.h"
#include "scrape.h"

static void scr_cli_run(struct scr_cli *c);

static struct sts_ctr *
scr_ctr(struct scr *s, uint32_t id)
{
    for (struct list *n = s->lsns.next; n != &s->lsns; n = n->next) {
        struct scr_lsn *l = list_entry(n, struct scr_lsn, node);

        if (l->id == id) {
            return &l->c;
        }
    }
    return NULL;
}

/* The timer at the earliest deadline of an open client, or off. */
static void
scr_arm(struct scr *s)
{
    uint64_t first = UINT64_MAX;

    for (size_t i = 0; i < SCR_CLIENTS; i++) {
        const struct scr_cli *c = &s->cli[i];

        if (c->used && !c->io.closed && c->deadline < first) {
            first = c->deadline;
        }
    }
    if (first == UINT64_MAX) {
        loop_timer_disarm(&s->timer);
    } else {
        loop_timer_arm(s->loop, &s->timer, first);
    }
}

static void
scr_cli_close(struct scr_cli *c, enum conn_reason why)
{
    struct sts_ctr *k = scr_ctr(c->s, c->lsn_id);

    if (c->io.closed) {
        return;
    }
    if (k != NULL) {
        ctr_sub(&k->open, 1);
        ctr_add(&k->closed[why], 1);
    }
    mtr_buf_free(&c->out);
    loop_close(c->s->loop, &c->io);
    scr_arm(c->s);
}

static void
scr_timer_fire(struct loop_timer *t)
{
    struct scr *s = list_entry(t, struct scr, timer);

    for (size_t i = 0; i < SCR_CLIENTS; i++) {
        struct scr_cli *c = &s->cli[i];

        if (c->used && !c->io.closed && c->deadline <= s->loop->now) {
            scr_cli_close(c, CONN_IDLE);
        }
    }
    scr_arm(s);
}

/* ---- one scrape ---- */

static void
scr_cli_on_event(struct loop_io *io, uint32_t events)
{
    struct scr_cli *c = (struct scr_cli *)io;

    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        c->readable = true;
    }
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
        c->writable = true;
    }
    scr_cli_run(c);
}

static void
scr_cli_on_free(struct loop_io *io)
{
    ((struct scr_cli *)io)->used = false;
}

static const struct loop_ops scr_cli_ops = {
    .on_event = scr_cli_on_event,
    .on_ready = NULL,
    .on_free = scr_cli_on_free,
};

/* The whole answer: status line, headers and (unless HEAD) the body. */
static int
scr_http_compose(const struct http_req *r, struct mtr_buf *out,
                 scr_render_fn render)
{
    struct mtr_buf body = {0};
    const char *type = "text/plain; charset=utf-8";

    if (r->status == 200) {
        if (render(&body) < 0) {
            mtr_buf_free(&body);
            return -1;
        }
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
        char line[64];
        int n = snprintf(line, sizeof(line), "%u %s\n", r->status,
                         http_reason(r->status));
        body.p = malloc((size_t)n + 1);
        if (body.p == NULL) {
            return -1;
        }
        memcpy(body.p, line, (size_t)n + 1);
        body.len = (size_t)n;
    }
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %u %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
                      r->status, http_reason(r->status), type, body.len,
                      r->status == 405 ? "Allow: GET, HEAD\r\n" : "");
    size_t blen = r->head ? 0 : body.len;
    char *p = malloc((size_t)hn + blen);

    if (p == NULL) {
        mtr_buf_free(&body);
        return -1;
    }
    memcpy(p, head, (size_t)hn);
    if (blen > 0) {
        memcpy(p + hn, body.p, blen);
    }
    mtr_buf_free(&body);
    out->p = p;
    out->len = out->cap = (size_t)hn + blen;
    return 0;
}

int
scr_http_answer(const char *req, size_t got, struct mtr_buf *out,
                scr_render_fn render)
{
    struct http_req r;

    if (http_read(req, got, &r) != HTTP_DONE) {
        return 0;
    }
    return scr_http_compose(&r, out, render) < 0 ? -1 : 1;
}

/* Read what has come; decide once the request is whole. Returns -1 if
 * closed, 0 while waiting, 1 once the answer is ready. */
static int
scr_cli_read(struct scr_cli *c)
{
    ssize_t n;
    int rc = c->s->answer(c->req, c->got, &c->out);

    while (rc == 0 && c->readable && c->got < sizeof(c->req)) {
        n = read(c->io.fd, c->req + c->got, sizeof(c->req) - c->got);
        if (n > 0) {
            c->got += (size_t)n;
            struct sts_ctr *k = scr_ctr(c->s, c->lsn_id);
            if (k != NULL) {
                ctr_add(&k->bytes_in, (uint64_t)n);
            }
            rc = c->s->answer(c->req, c->got, &c->out);
        } else if (n == 0) {
            scr_cli_close(c, CONN_EOF); /* gave up before asking */
            return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->readable = false;
        } else if (errno != EINTR) {
            scr_cli_close(c, CONN_ERROR);
            return -1;
        }
    }
    if (rc < 0) {
        scr_cli_close(c, CONN_NOMEM);
        return -1;
    }
    if (rc > 0) {
        c->sent = 0;
        c->answered = true;
    }
    return rc;
}

static void
scr_cli_run(struct scr_cli *c)
{
    ssize_t n;

    if (c->io.closed) {
        return;
    }
    if (!c->answered && scr_cli_read(c) <= 0) {
        return;
    }
    while (c->writable && c->sent < c->out.len) {
        n = send(c->io.fd, c->out.p + c->sent, c->out.len - c->sent,
                 MSG_NOSIGNAL);
        if (n > 0) {
            struct sts_ctr *k = scr_ctr(c->s, c->lsn_id);
            c->sent += (size_t)n;
            if (k != NULL) {
                ctr_add(&k->bytes_out, (uint64_t)n);
            }
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->writable = false;
        } else if (n < 0 && errno != EINTR) {
            scr_cli_close(c, errno == EPIPE || errno == ECONNRESET
                                 ? CONN_RESET
                                 : CONN_ERROR);
            return;
        }
    }
    if (c->sent == c->out.len) {
        /* The request was read in full: no unread input, so close()
         * sends FIN, not RST, behind the answer. */
        scr_cli_close(c, CONN_EOF);
    }
}

/* ---- the listeners ---- */

static struct scr_cli *
scr_free_slot(struct scr *s)
{
    for (size_t i = 0; i < SCR_CLIENTS; i++) {
        if (!s->cli[i].used) {
            return &s->cli[i];
        }
    }
    return NULL;
}

static void
scr_accept_one(struct scr_lsn *l, int fd, const struct sockaddr *sa)
{
    struct scr *s = l->s;
    struct scr_cli *c;

    if (l->pol != NULL && !acl_permits(l->pol->allow, l->pol->deny, sa)) {
        close(fd);
        ctr_add(&l->c.refused[STS_REF_ACL], 1);
        return;
    }
    c = scr_free_slot(s);
    if (c == NULL) {
        close(fd);
        ctr_add(&l->c.refused[STS_REF_MAX_CONNS], 1);
        log_limited(&s->refuse_log, LOG_WARNING, false,
                    "%s: %d %s in progress, connection refused", l->name,
                    SCR_CLIENTS, s->what);
        return;
    }
    memset(c, 0, sizeof(*c));
    loop_io_init(&c->io, fd, &scr_cli_ops);
    c->s = s;
    c->lsn_id = l->id;
    c->writable = true;
    c->deadline = s->loop->now + s->timeout_ms;
    if (loop_add(s->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0) {
        close(fd);
        ctr_add(&l->c.refused[STS_REF_EMFILE], 1);
        return;
    }
    c->used = true;
    ctr_add(&l->c.accepted, 1);
    ctr_add(&l->c.open, 1);
    scr_arm(s);
}

static void
scr_lsn_on_event(struct loop_io *io, uint32_t events)
{
    struct scr_lsn *l = (struct scr_lsn *)io;
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    (void)events;
    /* Accept until EAGAIN: a scrape is rare, so no budget is needed
     * beyond the few slots, and what is over them is closed at once. */
    for (int i = 0; i < 64; i++) {
        len = sizeof(ss);
        fd = accept4(io->fd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log_limited(&l->s->refuse_log, LOG_WARNING, true, "%s: accept",
                            l->name);
            }
            return;
        }
        scr_accept_one(l, fd, (const struct sockaddr *)&ss);
    }
    loop_ready(l->s->loop, io); /* more may wait: before the next wait */
}

static void
scr_lsn_on_ready(struct loop_io *io)
{
    scr_lsn_on_event(io, EPOLLIN);
}

static void
scr_lsn_on_free(struct loop_io *io)
{
    free(io);
}

static const struct loop_ops scr_lsn_ops = {
    .on_event = scr_lsn_on_event,
    .on_ready = scr_lsn_on_ready,
    .on_free = scr_lsn_on_free,
};

void
scr_init(struct scr *s, struct loop *loop, scr_answer_fn answer,
         const char *what)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->answer = answer;
    s->what = what;
    s->timeout_ms = SCR_TIMEOUT_MS;
    list_init(&s->lsns);
    loop_timer_init(&s->timer, scr_timer_fire);
}

int
scr_add(struct scr *s, uint32_t id, int fd, const char *name,
        struct bset_pol *pol)
{
    struct scr_lsn *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        close(fd);
        bset_pol_unref(pol);
        errno = ENOMEM;
        return -1;
    }
    loop_io_init(&l->io, fd, &scr_lsn_ops);
    l->s = s;
    l->id = id;
    l->pol = pol;
    snprintf(l->name, sizeof(l->name), "%s", name);
    if (loop_add(s->loop, &l->io, EPOLLIN) < 0) {
        int saved = errno;
        close(fd);
        bset_pol_unref(pol);
        free(l);
        errno = saved;
        return -1;
    }
    list_insert_tail(&s->lsns, &l->node);
    return 0;
}

static void
scr_lsn_close(struct scr_lsn *l)
{
    list_remove(&l->node);
    bset_pol_unref(l->pol);
    l->pol = NULL;
    loop_close(l->s->loop, &l->io);
}

void
scr_del(struct scr *s, uint32_t id)
{
    for (struct list *n = s->lsns.next; n != &s->lsns; n = n->next) {
        struct scr_lsn *l = list_entry(n, struct scr_lsn, node);

        if (l->id == id) {
            scr_lsn_close(l);
            return;
        }
    }
}

void
scr_repolicy(struct scr *s, uint32_t id, struct bset_pol *pol)
{
    for (struct list *n = s->lsns.next; n != &s->lsns; n = n->next) {
        struct scr_lsn *l = list_entry(n, struct scr_lsn, node);

        if (l->id == id) {
            bset_pol_unref(l->pol);
            l->pol = pol;
            return;
        }
    }
    bset_pol_unref(pol);
}

void
scr_sum(const struct scr *s, uint32_t id, struct sts_ctr *sum)
{
    for (const struct list *n = s->lsns.next; n != &s->lsns; n = n->next) {
        const struct scr_lsn *l = list_entry(n, struct scr_lsn, node);

        if (l->id != id) {
            continue;
        }
        const _Atomic uint64_t *from = (const _Atomic uint64_t *)&l->c;
        _Atomic uint64_t *to = (_Atomic uint64_t *)sum;
        for (size_t i = 0; i < STS_CTR_N; i++) {
            ctr_add(&to[i], ctr_get(&from[i]));
        }
    }
}

void
scr_fini(struct scr *s)
{
    struct list *n;

    for (size_t i = 0; i < SCR_CLIENTS; i++) {
        if (s->cli[i].used) {
            scr_cli_close(&s->cli[i], CONN_SHUTDOWN);
        }
    }
    while ((n = list_first(&s->lsns)) != NULL) {
        scr_lsn_close(list_entry(n, struct scr_lsn, node));
    }
    loop_timer_disarm(&s->timer);
}
