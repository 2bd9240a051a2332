/*
 * priv.c - dropping root (see priv.h).
 *
 * Owns: the user and group lookups and the order of the drop: groups
 * first (they need root), then the GID, then the UID (which ends root,
 * and with it every capability). Never logs: the caller says what it
 * did. Called once, on the main thread, before any worker starts.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "priv.h"

#define PRIV_BUF 16384 /* for getpwnam_r / getgrnam_r */

bool
priv_is_root(void)
{
    return geteuid() == 0 || getuid() == 0;
}

bool
priv_user_exists(const char *name)
{
    struct passwd pw, *res = NULL;
    char buf[PRIV_BUF];

    return getpwnam_r(name, &pw, buf, sizeof(buf), &res) == 0 && res != NULL;
}

bool
priv_group_exists(const char *name)
{
    struct group gr, *res = NULL;
    char buf[PRIV_BUF];

    return getgrnam_r(name, &gr, buf, sizeof(buf), &res) == 0 && res != NULL;
}

static int
priv_fail(char *why, size_t whylen, const char *step)
{
    int saved = errno;

    snprintf(why, whylen, "%s", step);
    errno = saved;
    return -1;
}

/* No capability left: effective and permitted are empty. */
static bool
priv_no_caps(void)
{
    struct __user_cap_header_struct hdr = {
        .version = _LINUX_CAPABILITY_VERSION_3,
        .pid = 0,
    };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) < 0) {
        return false;
    }
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
        if (data[i].effective != 0 || data[i].permitted != 0) {
            return false;
        }
    }
    return true;
}

int
priv_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid,
            char *why, size_t whylen)
{
    struct passwd pw, *pres = NULL;
    struct group gr, *gres = NULL;
    char pbuf[PRIV_BUF], gbuf[PRIV_BUF];

    errno = 0;
    if (getpwnam_r(user, &pw, pbuf, sizeof(pbuf), &pres) != 0 || pres == NULL) {
        errno = errno != 0 ? errno : ENOENT;
        return priv_fail(why, whylen, "looking up the user");
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    if (group[0] != '\0') {
        if (getgrnam_r(group, &gr, gbuf, sizeof(gbuf), &gres) != 0 ||
            gres == NULL) {
            errno = errno != 0 ? errno : ENOENT;
            return priv_fail(why, whylen, "looking up the group");
        }
        *gid = gr.gr_gid;
    }
    return 0;
}

int
priv_drop(const char *user, const char *group, bool *dropped, char *why,
          size_t whylen)
{
    uid_t uid;
    gid_t gid;

    *dropped = false;
    if (user[0] == '\0' || !priv_is_root()) {
        return 0;
    }
    if (priv_lookup(user, group, &uid, &gid, why, whylen) < 0) {
        return -1;
    }
    /* glibc applies these to every thread; echod has only this one yet. */
    if (setgroups(1, &gid) < 0) {
        return priv_fail(why, whylen, "setgroups");
    }
    if (setgid(gid) < 0) {
        return priv_fail(why, whylen, "setgid");
    }
    if (setuid(uid) < 0) {
        return priv_fail(why, whylen, "setuid");
    }
    /* Trust, but verify: root must be gone for good. */
    if (uid != 0 && setuid(0) == 0) {
        errno = EPERM;
        return priv_fail(why, whylen, "root could be regained");
    }
    if (uid != 0 && !priv_no_caps()) {
        errno = EPERM;
        return priv_fail(why, whylen, "capabilities are left");
    }
    *dropped = true;
    return 0;
}
