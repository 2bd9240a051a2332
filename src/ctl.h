/*
 * ctl.h - the control socket (`control_socket`, read by echodctl): the
 * grammar of its one request line, and the socket file itself.
 *
 * The protocol: a client sends one line of at most CTL_REQ_MAX bytes,
 * its end included, "\n" (or "\r\n"); words separated by blanks:
 *
 *   status [json]
 *   stats [json]
 *   connections [json] [limit=N]       N = 1..CTL_LIMIT_MAX, default 50
 *
 * The answer is "OK\n" and the body (text, or one JSON document), or
 * "ERR reason\n"; then the server closes. The server (scrape.h) serves
 * it on the main thread, one request per connection.
 */
#ifndef ECHOD_CTL_H
#define ECHOD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define CTL_REQ_MAX 256       /* the request line, its end included */
#define CTL_LIMIT_DEFAULT 50  /* connections listed without limit= */
#define CTL_LIMIT_MAX 10000   /* the most a request may ask for */
#define CTL_BACKLOG 16

enum ctl_cmd {
    CTL_STATUS,
    CTL_STATS,
    CTL_CONNECTIONS,
};

enum ctl_state {
    CTL_INCOMPLETE, /* no line end yet, and fewer than CTL_REQ_MAX bytes */
    CTL_DONE,       /* a valid request: see cmd, json, limit */
    CTL_BAD,        /* see error; the server answers "ERR error" */
};

struct ctl_req {
    enum ctl_cmd cmd;
    bool json;
    unsigned limit;    /* CTL_CONNECTIONS */
    const char *error; /* CTL_BAD: a fixed text, never the client's bytes */
};

/* Judge buf[0..len) (len may exceed CTL_REQ_MAX: only the first
 * CTL_REQ_MAX bytes are looked at). Like http_read, the verdict depends
 * only on the bytes, and once decided it holds for any longer buffer
 * with the same start. */
enum ctl_state ctl_parse(const char *buf, size_t len, struct ctl_req *r);

/* A control socket file echod created, to remove when it closes. */
struct ctl_sock {
    int fd;   /* listening, nonblocking; -1 when none */
    dev_t dev; /* the file it bound, so that close removes only that: */
    ino_t ino; /* an inode number is reused at once on tmpfs, so its */
    struct timespec ctime; /* change time tells a newer file apart */
    char path[108]; /* sizeof(sun_path) */
};

/*
 * Create the listening socket at path with mode 0660, owned by uid:gid
 * unless they are -1. A file left there by an echod that died (a socket
 * nobody answers on) is replaced; a socket someone answers on is not
 * (EADDRINUSE), nor a file of another kind (EEXIST). Returns 0, or -1
 * with errno and a line in err saying what failed.
 */
int ctl_sock_open(struct ctl_sock *cs, const char *path, uid_t uid, gid_t gid,
                  char *err, size_t errlen);

/* Remove the socket file if it is still the one ctl_sock_open made (the
 * fd itself belongs to whoever serves it). */
void ctl_sock_unlink(struct ctl_sock *cs);

#endif /* ECHOD_CTL_H */
