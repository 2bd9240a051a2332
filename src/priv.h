/*
 * priv.h - dropping root outside systemd: after every socket is bound,
 * echod started as root becomes the configured user and group, with no
 * supplementary groups and no capabilities left.
 */
#ifndef ECHOD_PRIV_H
#define ECHOD_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether a user or group name exists (the config loader asks, so that
 * `echod -t` catches a typo). */
bool priv_user_exists(const char *name);
bool priv_group_exists(const char *name);

/* The IDs of user, and of group (or the user's primary group when group
 * is ""). Returns 0, or -1 with errno and `why`. */
int priv_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid,
                char *why, size_t whylen);

/*
 * Become `user` (and `group`, or the user's primary group when group is
 * ""), if running as root and user is not "": setgroups to just that
 * group, setgid, setuid, then check that setuid(0) fails and that no
 * capability is left in the effective or permitted set. Returns 0 (also
 * when there was nothing to do; *dropped says whether it dropped), or -1
 * with errno and `why` naming the step that failed.
 */
int priv_drop(const char *user, const char *group, bool *dropped, char *why,
              size_t whylen);

/* True when echod runs with a user ID of 0. */
bool priv_is_root(void);

#endif /* ECHOD_PRIV_H */
