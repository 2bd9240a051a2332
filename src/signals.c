/*
 * signals.c - block the signals echod handles and read them from a
 * signalfd. Never decides what a signal means.
 */
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "signals.h"

static void
sig_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

int
sig_block(void)
{
    sigset_t set;
    struct sigaction sa = {.sa_handler = SIG_IGN};

    /* A peer that vanishes mid-write must give EPIPE, not kill us. */
    if (sigaction(SIGPIPE, &sa, NULL) < 0) {
        return -1;
    }
    sig_set(&set);
    return sigprocmask(SIG_BLOCK, &set, NULL);
}

int
sig_init(void)
{
    sigset_t set;

    if (sig_block() < 0) {
        return -1;
    }
    sig_set(&set);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int
sig_next(int fd)
{
    struct signalfd_siginfo si;
    ssize_t n;

    do {
        n = read(fd, &si, sizeof(si));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EAGAIN ? 0 : -1;
    }
    if (n != (ssize_t)sizeof(si)) {
        errno = EIO;
        return -1;
    }
    return (int)si.ssi_signo;
}
