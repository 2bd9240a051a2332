/*
 * signals.h - signals arrive through a signalfd read by the loop; no work
 * is ever done in a signal handler. Policy (what a signal means) belongs
 * to the server.
 */
#ifndef ECHOD_SIGNALS_H
#define ECHOD_SIGNALS_H

/* Block SIGTERM, SIGINT and SIGHUP and ignore SIGPIPE. Called first thing
 * in main, so a signal sent during startup waits for the loop instead of
 * killing us. Returns 0 or -1 with errno. */
int sig_block(void);

/* sig_block(), then return a nonblocking, close-on-exec signalfd for the
 * blocked set (-1 + errno). */
int sig_init(void);

/* The next pending signal number, 0 when none is left, -1 on error. */
int sig_next(int fd);

#endif /* ECHOD_SIGNALS_H */
