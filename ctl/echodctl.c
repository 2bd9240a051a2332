/*
 * echodctl.c - the command-line client of echod's control socket.
 *
 * Owns: argv, the one request line, one connection to the UNIX socket
 * under an overall deadline, telling the answer's first line from its
 * body, and the exit codes (the CTL_EX_ values, from sysexits.h).
 * Never interprets the body: the text and JSON renderings are the
 * daemon's, and an "OK" body is copied to standard output byte for byte.
 *
 * Invariants: nothing reaches standard output unless the whole answer
 * arrived (EOF) before the deadline and its first line is "OK"; every
 * way out of main() returns a CTL_EX_ code, and man/echodctl.8 lists
 * them all (tests/integration/test_echodctl.py checks both).
 *
 * The protocol (also in echodctl(8)): one request line of at most
 * CTL_REQUEST_MAX bytes with its "\n", words separated by one space;
 * then "OK\n" and the body, or "ERR <reason>\n"; then echod closes.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Exit codes; echodctl(8) EXIT STATUS explains each. */
#define CTL_EX_OK 0
#define CTL_EX_REFUSED 1      /* echod answered ERR */
#define CTL_EX_USAGE 64       /* EX_USAGE */
#define CTL_EX_UNAVAILABLE 69 /* EX_UNAVAILABLE: cannot connect */
#define CTL_EX_OSERR 71       /* EX_OSERR: socket, poll or memory failed */
#define CTL_EX_IOERR 74       /* EX_IOERR: the connection or stdout broke */
#define CTL_EX_TEMPFAIL 75    /* EX_TEMPFAIL: the deadline passed */
#define CTL_EX_PROTOCOL 76    /* EX_PROTOCOL: not an answer of the protocol */

#define CTL_SOCKET_DEFAULT "/run/echod/control.sock"
#define CTL_SOCKET_ENV "ECHODCTL_SOCKET"
#define CTL_REQUEST_MAX 256
#define CTL_LIMIT_DEFAULT 50
#define CTL_LIMIT_MAX 10000
#define CTL_TIMEOUT_DEFAULT 10.0
#define CTL_TIMEOUT_MAX 3600.0
/* A first line longer than this is not echod's "OK" or "ERR <reason>". */
#define CTL_LINE_MAX 4096
/* The largest answer kept: 10000 connections in JSON are a few MiB. */
#define CTL_REPLY_MAX ((size_t)64 * 1024 * 1024)
/* Pause between connect attempts while echod's backlog is full. */
#define CTL_CONNECT_RETRY_MS 10
/* The longest socket path: sun_path holds it and its NUL. */
#define CTL_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

#ifndef ECHOD_CONF_PATH
#define ECHOD_CONF_PATH "/etc/echod.conf"
#endif

enum ctl_cmd { CTL_NONE, CTL_STATUS, CTL_STATS, CTL_CONNECTIONS };

struct ctl_opts {
    const char *path;
    double timeout; /* seconds, for the whole exchange */
    enum ctl_cmd cmd;
    bool json;
    bool limit_set;
    unsigned limit;
};

/* One exchange with echod: the socket, its deadline and the answer. */
struct ctl_conn {
    int fd;
    int64_t deadline; /* CLOCK_MONOTONIC, ns */
    double timeout;   /* the -t that set it, for messages */
    int send_errno;   /* echod closed before taking the whole request */
    char *buf;        /* the answer so far: first line, then body */
    size_t len;
    size_t cap;
    bool have_line; /* buf holds a complete first line */
};

static void
ctl_usage(FILE *out)
{
    fprintf(out,
            "usage: echodctl [-s PATH] [-t SECONDS] COMMAND [--json]\n"
            "       echodctl -V | -h\n"
            "Ask a running echod through its control socket.\n"
            "\n"
            "Commands:\n"
            "  status                   version, uptime, listeners, reloads\n"
            "  stats                    the counters of the /metrics page\n"
            "  connections [--limit N]  open connections, N of them\n"
            "                           (1..%d, default %d)\n"
            "\n"
            "  -s, --socket PATH     control socket (default: $%s, else\n"
            "                        %s)\n"
            "  -t, --timeout SECONDS give up after this long (default %g)\n"
            "      --json            one JSON document instead of text\n"
            "      --limit N         connections: show at most N\n"
            "  -V, --version         print the version and exit\n"
            "  -h, --help            print this help and exit\n"
            "\n"
            "Exit codes: 0 ok, 1 echod refused, 64 usage error, 69 cannot\n"
            "connect, 71 OS error, 74 I/O error, 75 timed out, 76 protocol\n"
            "error.\n",
            CTL_LIMIT_MAX, CTL_LIMIT_DEFAULT, CTL_SOCKET_ENV,
            CTL_SOCKET_DEFAULT, CTL_TIMEOUT_DEFAULT);
}

static int ctl_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
ctl_usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("echodctl: ", stderr);
    va_start(ap, fmt);
    /* va_start is right above; clang 14's analyzer loses track. */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ctl_usage(stderr);
    return CTL_EX_USAGE;
}

/* What -h and -V printed must have reached stdout (not /dev/full). */
static int
ctl_flush_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "echodctl: writing to standard output: %s\n",
                strerror(errno));
        return CTL_EX_IOERR;
    }
    return CTL_EX_OK;
}

/* N of --limit: digits only (no sign, no blanks), 1..CTL_LIMIT_MAX. */
static bool
ctl_parse_limit(const char *s, unsigned *out)
{
    unsigned v = 0;

    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(*s - '0');
        if (v > CTL_LIMIT_MAX) {
            return false;
        }
    }
    *out = v;
    return v >= 1;
}

/* SECONDS of -t: "10", "2.5" or ".5"; more than 0, at most the max.
 * strtod alone would also take "inf", "nan", hex and leading blanks. */
static bool
ctl_parse_timeout(const char *s, double *out)
{
    size_t len = strlen(s);
    const char *dot = strchr(s, '.');
    char *end;
    double v;

    if (len == 0 || strspn(s, "0123456789.") != len ||
        (dot != NULL && strchr(dot + 1, '.') != NULL) || strcmp(s, ".") == 0) {
        return false;
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || v <= 0.0 || v > CTL_TIMEOUT_MAX) {
        return false;
    }
    *out = v;
    return true;
}

static int
ctl_set_command(struct ctl_opts *o, const char *word)
{
    static const struct {
        const char *name;
        enum ctl_cmd cmd;
    } cmds[] = {
        {"status", CTL_STATUS},
        {"stats", CTL_STATS},
        {"connections", CTL_CONNECTIONS},
    };

    if (o->cmd != CTL_NONE) {
        return ctl_usage_error("unexpected argument: %s", word);
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(word, cmds[i].name) == 0) {
            o->cmd = cmds[i].cmd;
            return -1;
        }
    }
    return ctl_usage_error("unknown command: %s", word);
}

/* Fills o from argv. Returns -1 to go on, or the exit code (-h, -V and
 * usage errors). Options and the command may come in any order: a
 * leading '-' in the option string hands over each word that is not an
 * option as it comes (code 1), whatever POSIXLY_CORRECT says. */
static int
ctl_parse_args(int argc, char **argv, struct ctl_opts *o)
{
    enum { OPT_JSON = 256, OPT_LIMIT };
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, OPT_JSON},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv(CTL_SOCKET_ENV);
    int ch, rc;

    /* -s wins over $ECHODCTL_SOCKET, which wins over the default. */
    o->path = env != NULL && *env != '\0' ? env : CTL_SOCKET_DEFAULT;
    while ((ch = getopt_long(argc, argv, "-s:t:Vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 1:
            if ((rc = ctl_set_command(o, optarg)) >= 0) {
                return rc;
            }
            break;
        case 's':
            o->path = optarg;
            break;
        case 't':
            if (!ctl_parse_timeout(optarg, &o->timeout)) {
                return ctl_usage_error("-t: expected seconds, more than 0 "
                                       "and at most %g: %s",
                                       CTL_TIMEOUT_MAX, optarg);
            }
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_LIMIT:
            if (!ctl_parse_limit(optarg, &o->limit)) {
                return ctl_usage_error("--limit: expected an integer in "
                                       "1..%d: %s",
                                       CTL_LIMIT_MAX, optarg);
            }
            o->limit_set = true;
            break;
        case 'V':
            printf("echodctl %s\n", ECHOD_VERSION);
            return ctl_flush_stdout();
        case 'h':
            ctl_usage(stdout);
            return ctl_flush_stdout();
        default: /* getopt_long has said what was wrong */
            ctl_usage(stderr);
            return CTL_EX_USAGE;
        }
    }
    /* Words after "--" are left for us. */
    for (; optind < argc; optind++) {
        if ((rc = ctl_set_command(o, argv[optind])) >= 0) {
            return rc;
        }
    }
    return -1;
}

/* The options make sense together, and the socket path fits. */
static int
ctl_check_opts(const struct ctl_opts *o)
{
    if (o->cmd == CTL_NONE) {
        return ctl_usage_error("no command given");
    }
    if (o->limit_set && o->cmd != CTL_CONNECTIONS) {
        return ctl_usage_error("--limit goes only with connections");
    }
    if (*o->path == '\0') {
        return ctl_usage_error("the socket path is empty");
    }
    if (strlen(o->path) > CTL_PATH_MAX) {
        return ctl_usage_error("socket path too long (%zu bytes, at most "
                               "%zu): %s",
                               strlen(o->path), CTL_PATH_MAX, o->path);
    }
    return -1;
}

/* The request line, "\n" included; its length. */
static size_t
ctl_request(const struct ctl_opts *o, char *buf, size_t size)
{
    static const char *const names[] = {
        [CTL_STATUS] = "status",
        [CTL_STATS] = "stats",
        [CTL_CONNECTIONS] = "connections",
    };
    int n;

    if (o->cmd == CTL_CONNECTIONS) {
        /* Always explicit: the daemon's default could change. */
        n = snprintf(buf, size, "connections%s limit=%u\n",
                     o->json ? " json" : "",
                     o->limit_set ? o->limit : CTL_LIMIT_DEFAULT);
    } else {
        n = snprintf(buf, size, "%s%s\n", names[o->cmd],
                     o->json ? " json" : "");
    }
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static int64_t
ctl_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Milliseconds until the deadline, rounded up: 0 only once it passed. */
static int
ctl_left_ms(const struct ctl_conn *c)
{
    int64_t left = c->deadline - ctl_now();

    if (left <= 0) {
        return 0;
    }
    return (int)((left + 999999) / 1000000);
}

static int
ctl_timed_out(const struct ctl_conn *c, const char *what)
{
    fprintf(stderr, "echodctl: timed out after %g s %s\n", c->timeout, what);
    return CTL_EX_TEMPFAIL;
}

/* Wait until fd is ready for events or the deadline passes. POLLHUP and
 * POLLERR count as ready: the next recv or send tells what happened. */
static int
ctl_wait(const struct ctl_conn *c, short events, const char *what)
{
    struct pollfd p = {.fd = c->fd, .events = events};

    for (;;) {
        int left = ctl_left_ms(c);
        int n;

        if (left == 0) {
            return ctl_timed_out(c, what);
        }
        n = poll(&p, 1, left);
        if (n > 0) {
            return CTL_EX_OK;
        }
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "echodctl: poll: %s\n", strerror(errno));
            return CTL_EX_OSERR;
        }
    }
}

static void
ctl_connect_failed(const char *path, int err)
{
    fprintf(stderr, "echodctl: cannot connect to %s: %s\n", path,
            strerror(err));
    if (err == EACCES || err == EPERM) {
        fprintf(stderr, "echodctl: the socket is mode 0660, owned by "
                        "echod's user and group: run echodctl as root or "
                        "as a member of that group\n");
    } else {
        fprintf(stderr,
                "echodctl: is echod running, and does "
                "control_socket in %s name this path? (-s PATH or "
                "$%s name another)\n",
                ECHOD_CONF_PATH, CTL_SOCKET_ENV);
    }
}

/* Connect c->fd (nonblocking) to path before the deadline. */
static int
ctl_connect(struct ctl_conn *c, const char *path)
{
    struct sockaddr_un sa;
    int err;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path)); /* fits: ctl_check_opts */
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "echodctl: socket: %s\n", strerror(errno));
        return CTL_EX_OSERR;
    }
    for (;;) {
        if (connect(c->fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return CTL_EX_OK;
        }
        err = errno;
        if (err == EINTR) {
            continue;
        }
        if (err == EISCONN) { /* an interrupted attempt got through */
            return CTL_EX_OK;
        }
        if (err != EAGAIN) {
            break;
        }
        /* On a UNIX socket a nonblocking connect never returns
         * EINPROGRESS: EAGAIN means echod's backlog is full and nothing
         * will signal room in it, so try again shortly. */
        if (ctl_left_ms(c) == 0) {
            return ctl_timed_out(c, "connecting (echod's backlog is full)");
        }
        (void)poll(NULL, 0, CTL_CONNECT_RETRY_MS);
    }
    ctl_connect_failed(path, err);
    return CTL_EX_UNAVAILABLE;
}

/* Send the request, then say that no more is coming. */
static int
ctl_send(struct ctl_conn *c, const char *req, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(c->fd, req + off, len - off, MSG_NOSIGNAL);
        int rc;

        if (n >= 0) {
            off += (size_t)n;
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN) {
            /* echod may have answered (ERR) and closed without reading
             * it all: what it wrote is still there to read. */
            c->send_errno = errno;
            return CTL_EX_OK;
        }
        if ((rc = ctl_wait(c, POLLOUT, "sending the request")) != 0) {
            return rc;
        }
    }
    (void)shutdown(c->fd, SHUT_WR);
    return CTL_EX_OK;
}

/* Room for more of the answer; the cap is one byte over the maximum so
 * that an answer over it shows. */
static int
ctl_grow(struct ctl_conn *c)
{
    size_t cap = c->cap == 0 ? 65536 : c->cap * 2;
    char *p;

    if (c->len > CTL_REPLY_MAX) {
        fprintf(stderr, "echodctl: echod's answer is over %zu MiB\n",
                CTL_REPLY_MAX >> 20);
        return CTL_EX_PROTOCOL;
    }
    if (cap > CTL_REPLY_MAX + 1) {
        cap = CTL_REPLY_MAX + 1;
    }
    p = realloc(c->buf, cap);
    if (p == NULL) {
        fprintf(stderr, "echodctl: out of memory for echod's answer\n");
        return CTL_EX_OSERR;
    }
    c->buf = p;
    c->cap = cap;
    return CTL_EX_OK;
}

/* Read the answer until EOF. */
static int
ctl_receive(struct ctl_conn *c)
{
    for (;;) {
        ssize_t n;
        int rc;

        if (c->len == c->cap && (rc = ctl_grow(c)) != 0) {
            return rc;
        }
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->have_line = c->have_line || memchr(c->buf, '\n', c->len) != NULL;
            if (!c->have_line && c->len > CTL_LINE_MAX) {
                fprintf(stderr,
                        "echodctl: echod's answer has no line end "
                        "in its first %d bytes\n",
                        CTL_LINE_MAX);
                return CTL_EX_PROTOCOL;
            }
            continue;
        }
        /* On a UNIX socket, ECONNRESET comes only after every byte the
         * peer wrote was read (it closed with our bytes unread): an end
         * of the answer like EOF. */
        if (n == 0 || errno == ECONNRESET) {
            return CTL_EX_OK;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN) {
            fprintf(stderr, "echodctl: reading echod's answer: %s\n",
                    strerror(errno));
            return CTL_EX_IOERR;
        }
        if ((rc = ctl_wait(c, POLLIN, "waiting for echod's answer")) != 0) {
            return rc;
        }
    }
}

/* Write all of buf to fd; -1 with errno on failure. */
static int
ctl_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* s[0..len) on stderr with control bytes as \xNN: the text comes from
 * the socket and must not drive the terminal. */
static void
ctl_put_text(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch < 0x20 || ch == 0x7f) {
            fprintf(stderr, "\\x%02x", ch);
        } else {
            fputc(ch, stderr);
        }
    }
}

/* Act on a complete answer: body to stdout, or the refusal to stderr. */
static int
ctl_answer(const struct ctl_conn *c)
{
    const char *nl = c->len > 0 ? memchr(c->buf, '\n', c->len) : NULL;
    size_t line;

    if (nl == NULL) {
        if (c->send_errno != 0) {
            fprintf(stderr,
                    "echodctl: echod closed the connection before "
                    "taking the request: %s\n",
                    strerror(c->send_errno));
            return CTL_EX_IOERR;
        }
        fprintf(stderr, c->len == 0
                            ? "echodctl: echod closed the connection "
                              "without answering\n"
                            : "echodctl: echod closed the connection in "
                              "the middle of its first line\n");
        return CTL_EX_PROTOCOL;
    }
    line = (size_t)(nl - c->buf);
    if (line == 2 && memcmp(c->buf, "OK", 2) == 0) {
        if (ctl_write_all(STDOUT_FILENO, nl + 1, c->len - line - 1) < 0) {
            fprintf(stderr, "echodctl: writing to standard output: %s\n",
                    strerror(errno));
            return CTL_EX_IOERR;
        }
        return CTL_EX_OK;
    }
    if (line >= 3 && memcmp(c->buf, "ERR", 3) == 0 &&
        (line == 3 || c->buf[3] == ' ')) {
        fputs("echodctl: echod refused: ", stderr);
        if (line > 4) {
            ctl_put_text(c->buf + 4, line - 4);
        } else {
            fputs("(no reason given)", stderr);
        }
        fputc('\n', stderr);
        return CTL_EX_REFUSED;
    }
    fputs("echodctl: not an answer of echod's control protocol: \"", stderr);
    ctl_put_text(c->buf, line < 80 ? line : 80);
    fprintf(stderr, "%s\"\n", line < 80 ? "" : "...");
    return CTL_EX_PROTOCOL;
}

int
main(int argc, char **argv)
{
    struct ctl_opts o = {.timeout = CTL_TIMEOUT_DEFAULT};
    struct ctl_conn c = {.fd = -1};
    char req[CTL_REQUEST_MAX + 1];
    size_t len;
    int rc;

    /* A closed pipe on stdout is an error to report, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if ((rc = ctl_parse_args(argc, argv, &o)) >= 0 ||
        (rc = ctl_check_opts(&o)) >= 0) {
        return rc;
    }
    len = ctl_request(&o, req, sizeof(req));
    if (len == 0 || len > CTL_REQUEST_MAX) {
        fprintf(stderr, "echodctl: request line over %d bytes\n",
                CTL_REQUEST_MAX);
        return CTL_EX_USAGE;
    }
    c.timeout = o.timeout;
    c.deadline = ctl_now() + (int64_t)(o.timeout * 1e9);
    rc = ctl_connect(&c, o.path);
    if (rc == CTL_EX_OK) {
        rc = ctl_send(&c, req, len);
    }
    if (rc == CTL_EX_OK) {
        rc = ctl_receive(&c);
    }
    if (c.fd >= 0) {
        close(c.fd);
    }
    if (rc == CTL_EX_OK) {
        rc = ctl_answer(&c);
    }
    free(c.buf);
    return rc;
}
