/*
 * scrape.h - the request/answer listeners of the main thread: the
 * metrics listeners (`service = "metrics"`, one HTTP request head,
 * http.h) and the control socket (one request line, ctl.h). Each
 * instance accepts within allow/deny, reads one request within
 * timeout_ms, answers, closes, with at most SCR_CLIENTS clients at a
 * time; the workers never see these sockets, so a slow client cannot
 * delay an echo.
 */
#ifndef ECHOD_SCRAPE_H
#define ECHOD_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

#include "bset.h"
#include "http.h"
#include "list.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "stats.h"

#define SCR_CLIENTS 4       /* scrapes served at once */
#define SCR_TIMEOUT_MS 5000 /* for the request and the answer together */

struct scr;

/* One metrics listening socket. Its counters are the main thread's. */
struct scr_lsn {
    struct loop_io io; /* first */
    struct list node;  /* on scr->lsns */
    struct scr *s;
    uint32_t id;          /* its bset entry */
    struct bset_pol *pol; /* its reference */
    struct sts_ctr c;     /* accepted, refused, closed, bytes */
    char name[SOCK_NAME_MAX];
};

/* One scrape in progress (a fixed slot; free again in on_free). */
struct scr_cli {
    struct loop_io io; /* first */
    struct scr *s;
    uint32_t lsn_id; /* whose counters (the listener may be gone) */
    bool used;       /* until on_free: the loop may still hold io */
    bool readable, writable;
    bool answered; /* out holds the whole answer */
    uint64_t deadline; /* loop->now ms */
    size_t got;        /* request bytes in req */
    char req[HTTP_MAX];
    struct mtr_buf out; /* the answer, once decided */
    size_t sent;
};

/* The text of /metrics: render into b (the server's snapshot). */
typedef int (*scr_render_fn)(struct mtr_buf *b);

/* Judge the request bytes so far, req[0..got): 0 while more are needed
 * (the instance stops reading at HTTP_MAX bytes, so an answer must come
 * by then), 1 once *out holds the whole answer, -1 if memory ran out. */
typedef int (*scr_answer_fn)(const char *req, size_t got,
                             struct mtr_buf *out);

struct scr {
    struct loop *loop; /* the main thread's */
    struct list lsns;  /* struct scr_lsn */
    struct scr_cli cli[SCR_CLIENTS];
    struct loop_timer timer; /* the earliest client deadline */
    scr_answer_fn answer;
    const char *what;    /* "scrapes", "control clients": for the log */
    uint64_t timeout_ms; /* SCR_TIMEOUT_MS */
    struct log_limit refuse_log;
};

void scr_init(struct scr *s, struct loop *loop, scr_answer_fn answer,
              const char *what);
/* Closes every client and listener. */
void scr_fini(struct scr *s);

/* Serve fd (owned from now on) as entry id with policy pol (its
 * reference passes on). Returns 0, or -1 with errno (fd closed, pol
 * dropped). */
int scr_add(struct scr *s, uint32_t id, int fd, const char *name,
            struct bset_pol *pol);
/* Close the listener of entry id, if any (scrapes in progress finish). */
void scr_del(struct scr *s, uint32_t id);
/* A reload's new policy for entry id (the reference passes on). */
void scr_repolicy(struct scr *s, uint32_t id, struct bset_pol *pol);
/* The answer of a metrics listener: an HTTP request head (http.h), and
 * for GET or HEAD /metrics the text render gives. */
int scr_http_answer(const char *req, size_t got, struct mtr_buf *out,
                    scr_render_fn render);

/* Add entry id's counters into sum (main thread). */
void scr_sum(const struct scr *s, uint32_t id, struct sts_ctr *sum);

#endif /* ECHOD_SCRAPE_H */
