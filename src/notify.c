/*
 * notify.c - sd_notify messages and socket activation via libsystemd.
 *
 * Owns: every use of sd-daemon.h. Does nothing when not under systemd.
 * Failures to notify are ignored: the service manager judges us by what
 * arrives, and there is nobody else to tell.
 * Messages are sent here rather than with sd_notify(3), which sends on a
 * blocking socket: a manager slow to read (its queue holds
 * net.unix.max_dgram_qlen datagrams) would freeze the event loop, signals
 * included. The periodic ones (STATUS, WATCHDOG) never wait and are
 * dropped when the queue is full (the next tick sends a fresh one); the
 * lifecycle ones (READY, RELOADING, STOPPING, ERRNO) wait for room for at
 * most NTF_LIFECYCLE_WAIT_MS. The wire format is sd_notify's, and the
 * kernel attaches our credentials, which is all NotifyAccess=main needs.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

#define NTF_LIFECYCLE_WAIT_MS 1000

/*
 * Send msg to $NOTIFY_SOCKET, waiting at most wait_ms for room in the
 * manager's queue (0: not at all). Returns false only when it was not
 * sent; true when it was, or when there is no manager to tell. Addresses
 * other than a path or an abstract name go through sd_notify.
 */
static bool
ntf_send(const char *msg, int wait_ms)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timespec t0, t;
    size_t plen;
    ssize_t n;
    int fd;

    if (path == NULL || path[0] == '\0') {
        return true;
    }
    plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path)) {
        return sd_notify(0, msg) >= 0;
    }
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@') {
        sa.sun_path[0] = '\0'; /* abstract namespace */
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* Connected, so that poll() waits for room in the peer's queue. */
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                      plen)) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        long left;

        n = send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0 || (errno != EAGAIN && errno != EINTR)) {
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        left = wait_ms - ((t.tv_sec - t0.tv_sec) * 1000 +
                          (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0) {
            break;
        }
        (void)poll(&p, 1, (int)left);
    }
    close(fd);
    return n >= 0;
}

void
ntf_ready(const char *status)
{
    char msg[1024];

    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
    (void)ntf_send(msg, NTF_LIFECYCLE_WAIT_MS);
}

void
ntf_reloading(void)
{
    struct timespec ts;

    char msg[128];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL +
                 (unsigned long long)ts.tv_nsec / 1000ULL);
    (void)ntf_send(msg, NTF_LIFECYCLE_WAIT_MS);
}

void
ntf_stopping(const char *status, uint64_t drain_usec)
{
    char msg[1024];

    snprintf(msg, sizeof(msg),
             "STOPPING=1\nSTATUS=%s\nEXTEND_TIMEOUT_USEC=%llu", status,
             (unsigned long long)drain_usec);
    (void)ntf_send(msg, NTF_LIFECYCLE_WAIT_MS);
}

bool
ntf_status(const char *status)
{
    char msg[1024];

    snprintf(msg, sizeof(msg), "STATUS=%s", status);
    return ntf_send(msg, 0);
}

void
ntf_watchdog(void)
{
    (void)ntf_send("WATCHDOG=1", 0);
}

void
ntf_failed(int err, const char *status)
{
    char msg[1024];

    snprintf(msg, sizeof(msg), "STATUS=%s\nERRNO=%d", status, err);
    (void)ntf_send(msg, NTF_LIFECYCLE_WAIT_MS);
}

uint64_t
ntf_watchdog_usec(void)
{
    uint64_t usec = 0;

    if (sd_watchdog_enabled(0, &usec) <= 0) {
        return 0;
    }
    return usec;
}

/* A UDP socket from the service manager is bound (it has a port): an
 * unbound one would get a random port no client knows. */
static bool
ntf_bound_udp(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(&ss, 0, sizeof(ss));
    if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_DGRAM, -1, 0) <= 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return false;
    }
    if (ss.ss_family == AF_INET) {
        return ((struct sockaddr_in *)(void *)&ss)->sin_port != 0;
    }
    return ((struct sockaddr_in6 *)(void *)&ss)->sin6_port != 0;
}

size_t
ntf_listen_fds(int *fds, bool *dgram, size_t max)
{
    char **names = NULL;
    size_t kept = 0;
    int n;

    n = sd_listen_fds_with_names(1, &names);
    if (n < 0) {
        log_warnx("ignoring inherited sockets: %s", strerror(-n));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        const char *name = names != NULL && names[i] ? names[i] : "?";

        bool tcp = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0;
        bool udp = !tcp && ntf_bound_udp(fd);

        if (!tcp && !udp) {
            log_warnx("inherited fd %d (%s) is not a listening TCP socket "
                      "or a bound UDP socket; closing it",
                      fd, name);
            close(fd);
        } else if (kept == max) {
            log_warnx("too many inherited sockets; closing fd %d (%s)", fd,
                      name);
            close(fd);
        } else {
            log_info("adopting inherited socket fd %d (%s)%s", fd, name,
                     udp ? ", UDP" : "");
            dgram[kept] = udp;
            fds[kept++] = fd;
        }
    }
    if (names != NULL) {
        for (int i = 0; i < n; i++) {
            free(names[i]);
        }
        free(names);
    }
    return kept;
}
