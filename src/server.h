/*
 * server.h - the control plane: the current configuration snapshot,
 * the listener set, counters, reload, graceful shutdown, STATUS text and
 * the watchdog tick. Main thread only; one instance per process.
 */
#ifndef ECHOD_SERVER_H
#define ECHOD_SERVER_H

#include <stdbool.h>

#include "config.h"

/* sysexits(3) codes used by echod. */
#define SRV_EX_OK 0
#define SRV_EX_USAGE 64
#define SRV_EX_OSERR 71
#define SRV_EX_CONFIG 78

struct srv_opts {
    const char *conf_path; /* reread on SIGHUP */
    bool debug;            /* -d: log_level debug, whatever the file says */
    bool foreground;       /* -f: also log to stderr */
};

/*
 * Set up everything (signals, loop, listeners: adopted or bound), then
 * tell the service manager READY=1. Takes a copy of cfg.
 * Returns 0, or an exit code after logging why and notifying STATUS/ERRNO.
 */
int srv_start(const struct cfg *cfg, const struct srv_opts *opts);

/* Serve until a graceful shutdown completes. Returns the exit code. */
int srv_run(void);

/* Release everything srv_start acquired (safe after a failed start). */
void srv_fini(void);

#endif /* ECHOD_SERVER_H */
