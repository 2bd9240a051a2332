/*
 * test_ctl.c - the control socket: its request line (ctl_parse) and its
 * socket file (ctl_sock_open / ctl_sock_unlink).
 *
 * The grammar: each command with and without json, limit= only for
 * connections and only 1..10000, blanks and "\r\n" tolerated, garbage
 * and over-long lines refused with a fixed text, a verdict that does
 * not change as more bytes come. The file: mode 0660 whatever the
 * umask, a stale socket replaced, a live one and a plain file left
 * alone, removed on close only while it is still ours.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "unit.h"

static enum ctl_state
parse(const char *text, struct ctl_req *r)
{
    return ctl_parse(text, strlen(text), r);
}

static void
test_commands(void **state)
{
    struct ctl_req r;

    (void)state;
    assert_int_equal(parse("status\n", &r), CTL_DONE);
    assert_int_equal(r.cmd, CTL_STATUS);
    assert_false(r.json);
    assert_int_equal(parse("stats json\r\n", &r), CTL_DONE);
    assert_int_equal(r.cmd, CTL_STATS);
    assert_true(r.json);
    assert_int_equal(parse("connections\n", &r), CTL_DONE);
    assert_int_equal(r.cmd, CTL_CONNECTIONS);
    assert_int_equal(r.limit, CTL_LIMIT_DEFAULT);
    assert_int_equal(parse("  connections \tlimit=7  json \n", &r), CTL_DONE);
    assert_int_equal(r.limit, 7);
    assert_true(r.json);
    assert_int_equal(parse("connections limit=10000\n", &r), CTL_DONE);
    assert_int_equal(r.limit, 10000);
    /* What follows the line is not looked at. */
    assert_int_equal(parse("status\n\x01\x02garbage", &r), CTL_DONE);
}

static void
test_refused(void **state)
{
    static const char *const bad[] = {
        "\n",
        "   \r\n",
        "STATUS\n",
        "statusx\n",
        "shutdown\n",
        "stats limit=5\n",
        "connections limit=0\n",
        "connections limit=10001\n",
        "connections limit=01\n",
        "connections limit=\n",
        "connections limit=1x\n",
        "connections limit=99999999999999999999\n",
        "status xml\n",
        "stat\rus\n",
        "status\x7f\n",
        "\x16\x03\x01\x02\x00", /* a TLS hello: refused before any end */
    };
    struct ctl_req r;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r.error = NULL;
        assert_int_equal(parse(bad[i], &r), CTL_BAD);
        assert_non_null(r.error);
        /* A fixed text: never a byte of the request. */
        assert_true(r.error < bad[i] || r.error > bad[i] + strlen(bad[i]));
    }
    assert_int_equal(parse("stats limit=5\n", &r), CTL_BAD);
    assert_string_equal(r.error, "limit= is for connections only");
}

/* Every prefix before the line end is incomplete; from there on the
 * verdict stays. */
static void
test_prefixes(void **state)
{
    const char *t = "connections json limit=3\r\nstats\n";
    size_t end = strlen("connections json limit=3\r\n");
    struct ctl_req r;

    (void)state;
    for (size_t n = 0; n < end; n++) {
        assert_int_equal(ctl_parse(t, n, &r), CTL_INCOMPLETE);
    }
    for (size_t n = end; n <= strlen(t); n++) {
        assert_int_equal(ctl_parse(t, n, &r), CTL_DONE);
        assert_int_equal(r.cmd, CTL_CONNECTIONS);
        assert_int_equal(r.limit, 3);
    }
}

static void
test_too_long(void **state)
{
    char buf[CTL_REQ_MAX + 10];
    struct ctl_req r;

    (void)state;
    memset(buf, 'a', sizeof(buf));
    assert_int_equal(ctl_parse(buf, CTL_REQ_MAX - 1, &r), CTL_INCOMPLETE);
    assert_int_equal(ctl_parse(buf, CTL_REQ_MAX, &r), CTL_BAD);
    assert_string_equal(r.error, "request line too long");
    assert_int_equal(ctl_parse(buf, sizeof(buf), &r), CTL_BAD);
    /* A line end just inside the limit still counts. */
    memcpy(buf, "status", 6);
    memset(buf + 6, ' ', CTL_REQ_MAX - 7);
    buf[CTL_REQ_MAX - 1] = '\n';
    assert_int_equal(ctl_parse(buf, sizeof(buf), &r), CTL_DONE);
}

/* ---- the socket file ---- */

static char dir[64];

static int
setup_dir(void **state)
{
    (void)state;
    return t_mkdtemp(dir, sizeof(dir), "ctl");
}

static int
teardown_dir(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

static void
path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static void
test_sock_mode(void **state)
{
    struct ctl_sock cs;
    struct stat st;
    char path[128], err[256];
    mode_t old = umask(0);

    (void)state;
    path_in(path, sizeof(path), "mode.sock");
    assert_int_equal(ctl_sock_open(&cs, path, (uid_t)-1, (gid_t)-1, err,
                                   sizeof(err)),
                     0);
    umask(old);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0660);
    close(cs.fd);
    ctl_sock_unlink(&cs);
    assert_int_equal(access(path, F_OK), -1);
}

/* A socket bound by a process that died: nobody listens on it. */
static void
make_stale(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd); /* the file stays */
}

static void
test_sock_stale_live_file(void **state)
{
    struct ctl_sock cs, other;
    char path[128], err[256];
    FILE *f;

    (void)state;
    path_in(path, sizeof(path), "stale.sock");
    make_stale(path);
    assert_int_equal(ctl_sock_open(&cs, path, (uid_t)-1, (gid_t)-1, err,
                                   sizeof(err)),
                     0);
    /* Now live: a second one must not take it over. */
    assert_int_equal(ctl_sock_open(&other, path, (uid_t)-1, (gid_t)-1, err,
                                   sizeof(err)),
                     -1);
    assert_int_equal(errno, EADDRINUSE);
    assert_non_null(strstr(err, "another process answers on it"));
    assert_int_equal(access(path, F_OK), 0);
    close(cs.fd);
    ctl_sock_unlink(&cs);

    /* A plain file is never removed. */
    path_in(path, sizeof(path), "plain");
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(ctl_sock_open(&cs, path, (uid_t)-1, (gid_t)-1, err,
                                   sizeof(err)),
                     -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(access(path, F_OK), 0);

    /* No such directory. */
    path_in(path, sizeof(path), "none/x.sock");
    assert_int_equal(ctl_sock_open(&cs, path, (uid_t)-1, (gid_t)-1, err,
                                   sizeof(err)),
                     -1);
    assert_int_equal(errno, ENOENT);
}

/* Close removes the file only if it is still the one it made. */
static void
test_sock_unlink_ours_only(void **state)
{
    struct ctl_sock cs, next;
    char path[128], err[256];

    (void)state;
    path_in(path, sizeof(path), "ours.sock");
    assert_int_equal(ctl_sock_open(&cs, path, (uid_t)-1, (gid_t)-1, err,
                                   sizeof(err)),
                     0);
    close(cs.fd); /* as if it was killed: stale now */
    assert_int_equal(ctl_sock_open(&next, path, (uid_t)-1, (gid_t)-1, err,
                                   sizeof(err)),
                     0);
    ctl_sock_unlink(&cs); /* the old one's: not ours any more */
    assert_int_equal(access(path, F_OK), 0);
    close(next.fd);
    ctl_sock_unlink(&next);
    assert_int_equal(access(path, F_OK), -1);
}

static void
test_sock_too_long(void **state)
{
    struct ctl_sock cs;
    char path[200], err[256];

    (void)state;
    memset(path, 'x', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(ctl_sock_open(&cs, path, (uid_t)-1, (gid_t)-1, err,
                                   sizeof(err)),
                     -1);
    assert_int_equal(errno, ENAMETOOLONG);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test_setup_teardown(test_sock_mode, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_sock_stale_live_file, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_sock_unlink_ours_only,
                                        setup_dir, teardown_dir),
        cmocka_unit_test(test_sock_too_long),
    };

    return cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
}
