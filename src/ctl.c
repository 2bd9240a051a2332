/*
 * ctl.c - the control socket's request grammar and its socket file.
 *
 * Owns: nothing beyond the call; ctl_sock_open leaves the file on disk
 * until ctl_sock_unlink. The parser is pure (it is fuzzed): it reads at
 * most CTL_REQ_MAX bytes, never echoes them, and answers with fixed
 * texts only, so a hostile client cannot put bytes into the log or into
 * another client's answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

static enum ctl_state
ctl_bad(struct ctl_req *r, const char *why)
{
    r->error = why;
    return CTL_BAD;
}

/* Blanks, printable ASCII, and "\r" only right before "\n": anything
 * else is not a request line (a binary probe, a TLS hello). */
static bool
ctl_text(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (ch == '\r' && i + 1 < n && p[i + 1] == '\n') {
            continue;
        }
        if (ch == '\n') {
            return true; /* the end: what follows is not looked at */
        }
        if (ch != '\t' && ch != '\r' && (ch < 0x20 || ch > 0x7e)) {
            return false;
        }
        if (ch == '\r' && i + 1 < n) {
            return false; /* "\r" not followed by "\n" */
        }
    }
    return true;
}

static bool
ctl_is(const char *w, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(w, word, n) == 0;
}

/* "limit=N", N = 1..CTL_LIMIT_MAX in decimal, no sign, no leading 0. */
static bool
ctl_limit(const char *w, size_t n, unsigned *limit)
{
    unsigned v = 0;

    if (n <= 6 || n > 6 + 5 || memcmp(w, "limit=", 6) != 0 || w[6] == '0') {
        return false;
    }
    for (size_t i = 6; i < n; i++) {
        if (w[i] < '0' || w[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(w[i] - '0');
    }
    if (v > CTL_LIMIT_MAX) {
        return false;
    }
    *limit = v;
    return true;
}

/* One option word after the command. */
static enum ctl_state
ctl_option(const char *w, size_t n, struct ctl_req *r)
{
    if (ctl_is(w, n, "json")) {
        r->json = true;
        return CTL_DONE;
    }
    if (n > 6 && memcmp(w, "limit=", 6) == 0) {
        if (r->cmd != CTL_CONNECTIONS) {
            return ctl_bad(r, "limit= is for connections only");
        }
        if (!ctl_limit(w, n, &r->limit)) {
            return ctl_bad(r, "limit= wants a number from 1 to 10000");
        }
        return CTL_DONE;
    }
    return ctl_bad(r, "unknown option");
}

static enum ctl_state
ctl_words(const char *p, const char *end, struct ctl_req *r)
{
    bool first = true;

    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        if (p == end) {
            return first ? ctl_bad(r, "empty request") : CTL_DONE;
        }
        const char *w = p;
        while (p < end && *p != ' ' && *p != '\t') {
            p++;
        }
        size_t n = (size_t)(p - w);
        if (first) {
            if (ctl_is(w, n, "status")) {
                r->cmd = CTL_STATUS;
            } else if (ctl_is(w, n, "stats")) {
                r->cmd = CTL_STATS;
            } else if (ctl_is(w, n, "connections")) {
                r->cmd = CTL_CONNECTIONS;
            } else {
                return ctl_bad(r, "unknown command (status, stats, "
                                  "connections)");
            }
            first = false;
        } else if (ctl_option(w, n, r) == CTL_BAD) {
            return CTL_BAD;
        }
    }
}

enum ctl_state
ctl_parse(const char *buf, size_t len, struct ctl_req *r)
{
    size_t n = len < CTL_REQ_MAX ? len : CTL_REQ_MAX;
    const char *nl = memchr(buf, '\n', n);
    const char *end;

    memset(r, 0, sizeof(*r));
    r->limit = CTL_LIMIT_DEFAULT;
    if (!ctl_text(buf, n)) {
        return ctl_bad(r, "not a text line");
    }
    if (nl == NULL) {
        return n < CTL_REQ_MAX ? CTL_INCOMPLETE
                               : ctl_bad(r, "request line too long");
    }
    end = nl;
    if (end > buf && end[-1] == '\r') {
        end--;
    }
    return ctl_words(buf, end, r);
}

/* ---- the socket file ---- */

static int
ctl_fail(char *err, size_t errlen, int e, const char *path, const char *what)
{
    snprintf(err, errlen, "control socket %s: %s", path, what);
    errno = e;
    return -1;
}

/* Bind with mode 0660: the kernel applies the umask to a socket file,
 * and only the main thread runs when this is called (no file is created
 * elsewhere meanwhile). */
static int
ctl_bind(int fd, const struct sockaddr_un *sa)
{
    mode_t old = umask(0117);
    int rc = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int saved = errno;

    umask(old);
    errno = saved;
    return rc;
}

/* path is taken: 0 if it was a socket nobody answers on (removed now),
 * else -1 with errno EADDRINUSE (someone answers), EEXIST (not a socket)
 * or what lstat or connect said. */
static int
ctl_take_stale(const struct sockaddr_un *sa)
{
    struct stat st;
    int fd, rc, e;

    if (lstat(sa->sun_path, &st) < 0) {
        return errno == ENOENT ? 0 : -1; /* gone meanwhile: try again */
    }
    if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
        errno = EADDRINUSE; /* answered, or its backlog is full: alive */
        return -1;
    }
    if (e != ECONNREFUSED) {
        errno = e;
        return -1;
    }
    if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
        return -1;
    }
    return 0;
}

int
ctl_sock_open(struct ctl_sock *cs, const char *path, uid_t uid, gid_t gid,
              char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, e;

    cs->fd = -1;
    _Static_assert(sizeof(cs->path) == sizeof(sa.sun_path),
                   "a ctl_sock holds any path a socket can bind");
    if (strlen(path) >= sizeof(sa.sun_path)) {
        return ctl_fail(err, errlen, ENAMETOOLONG, path,
                        "path too long (at most 107 bytes)");
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return ctl_fail(err, errlen, errno, path, "socket");
    }
    if (ctl_bind(fd, &sa) < 0 &&
        (errno != EADDRINUSE || ctl_take_stale(&sa) < 0 ||
         ctl_bind(fd, &sa) < 0)) {
        e = errno;
        close(fd);
        return ctl_fail(err, errlen, e, path,
                        e == EADDRINUSE ? "another process answers on it"
                        : e == EEXIST   ? "the path exists and is not a socket"
                                        : "cannot create it");
    }
    /* Listening before anything else: until then a second echod
     * starting at the same time would take the file for a stale one. */
    if (listen(fd, CTL_BACKLOG) < 0 || lstat(path, &st) < 0) {
        e = errno;
        unlink(path);
        close(fd);
        return ctl_fail(err, errlen, e, path, "listen");
    }
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
        (fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
         lstat(path, &st) < 0)) {
        e = errno;
        unlink(path);
        close(fd);
        return ctl_fail(err, errlen, e, path, "chown");
    }
    cs->fd = fd;
    cs->dev = st.st_dev;
    cs->ino = st.st_ino;
    cs->ctime = st.st_ctim;
    memcpy(cs->path, path, strlen(path) + 1);
    return 0;
}

void
ctl_sock_unlink(struct ctl_sock *cs)
{
    struct stat st;

    /* A newer echod may have replaced it since: leave that one be. */
    if (cs->path[0] != '\0' && lstat(cs->path, &st) == 0 &&
        st.st_dev == cs->dev && st.st_ino == cs->ino &&
        st.st_ctim.tv_sec == cs->ctime.tv_sec &&
        st.st_ctim.tv_nsec == cs->ctime.tv_nsec) {
        unlink(cs->path);
    }
    cs->path[0] = '\0';
}
