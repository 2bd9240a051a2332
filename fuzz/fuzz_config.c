/*
 * fuzz_config.c - libFuzzer target: arbitrary bytes as an echod.conf.
 *
 * Each input is written to a memfd and loaded with cfg_load() through its
 * /proc/self/fd path, exactly as echod loads /etc/echod.conf (libconfig
 * reads the file, and config.c reopens it to look at integer literals).
 * Whatever the bytes, cfg_load must not crash, leak or hang, and:
 *   - on success every field of struct cfg obeys the key table: integers
 *     in range, strings of allowed length and NUL-terminated, level and
 *     facility known, each key less than the key its .below names (low <
 *     high watermark), at most CFG_MAX_LISTEN listen entries, each a
 *     numeric address with a port in range and no two alike; an access
 *     list is NULL or holds entries, and an entry without lists of its
 *     own (own_acl) has none; cfg_fini then frees every list (a leak is
 *     a finding);
 *   - on failure the error is one non-empty line that starts with
 *     "PATH:" (the file the operator named; with @include, possibly the
 *     name of an included file instead), and errno is EINVAL.
 * fuzz/run.sh runs it in an empty directory: relative includes find
 * nothing there but "." and "..", which must be refused cleanly (libconfig
 * itself would exit(2) on a directory).
 * A broken invariant aborts, which libFuzzer reports with the input.
 * No state survives an input: the memfd is closed before returning.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "acl.h"
#include "config.h"
#include "fuzz.h"
#include "log.h"

/* A NUL-terminated string of min..max characters stored in field[len]. */
static void
fz_check_string(const char *field, size_t len, int64_t min, int64_t max,
                const char *name)
{
    size_t n = strnlen(field, len);

    FZ_CHECK(n < len, "%s is not NUL-terminated", name);
    FZ_CHECK((int64_t)n >= min && (int64_t)n <= max,
             "%s has %zu characters, allowed %lld..%lld", name, n,
             (long long)min, (long long)max);
}

/* bool fields are checked through their bytes: loading a bool that is
 * neither 0 nor 1 is itself undefined behaviour. */
static bool
fz_bool_ok(const bool *b)
{
    unsigned char raw;

    memcpy(&raw, b, 1);
    return raw <= 1;
}

static void
fz_check_key(const struct cfg_key *k, const void *base, const char *name)
{
    const char *p = (const char *)base + k->off;
    int64_t v;

    switch (k->type) {
    case CFG_INT:
        memcpy(&v, p, sizeof(v));
        FZ_CHECK(v >= k->min && v <= k->max, "%s = %lld, range %lld..%lld",
                 name, (long long)v, (long long)k->min, (long long)k->max);
        break;
    case CFG_INT_AUTO:
        memcpy(&v, p, sizeof(v));
        FZ_CHECK(v == CFG_AUTO || (v >= k->min && v <= k->max),
                 "%s = %lld, range %lld..%lld or auto", name, (long long)v,
                 (long long)k->min, (long long)k->max);
        break;
    case CFG_BOOL:
        FZ_CHECK(fz_bool_ok((const bool *)(const void *)p), "%s is not a bool",
                 name);
        break;
    case CFG_STRING:
        /* Every string field is sized max + 1 (see config.h). */
        fz_check_string(p, (size_t)k->max + 1, k->min, k->max, name);
        break;
    case CFG_LEVEL: /* log_*_name() say "?" for a value they do not know */
        memcpy(&v, p, sizeof(v));
        FZ_CHECK(v >= 0 && v <= 7 && strcmp(log_level_name((int)v), "?") != 0,
                 "%s = %lld is no syslog level", name, (long long)v);
        break;
    case CFG_FACILITY:
        memcpy(&v, p, sizeof(v));
        FZ_CHECK(v >= 0 && v <= INT32_MAX &&
                     strcmp(log_facility_name((int)v), "?") != 0,
                 "%s = %lld is no facility echod accepts", name, (long long)v);
        break;
    case CFG_PROTOCOL:
        memcpy(&v, p, sizeof(v));
        FZ_CHECK(v == CFG_PROTO_TCP || v == CFG_PROTO_UDP,
                 "%s = %lld is no protocol", name, (long long)v);
        break;
    case CFG_CIDRS: { /* NULL stands for the empty list */
        const struct acl *a = *(struct acl *const *)(const void *)p;

        FZ_CHECK(a == NULL || acl_count(a) > 0, "%s is an empty list", name);
        break;
    }
    case CFG_LISTEN:
        break;
    }
}

/* Each key the table says must be below another one is (the watermarks
 * and whatever pair follows them). */
static void
fz_check_below(const void *base, enum cfg_scope scope, const char *prefix)
{
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        const struct cfg_key *o = cfg_keys;
        int64_t v, lim;

        if (k->scope != scope || k->below == NULL) {
            continue;
        }
        while (o->name != NULL &&
               (o->scope != scope || strcmp(o->name, k->below) != 0)) {
            o++;
        }
        FZ_CHECK(o->name != NULL, "%s: .below names no key", k->name);
        memcpy(&v, (const char *)base + k->off, sizeof(v));
        memcpy(&lim, (const char *)base + o->off, sizeof(lim));
        FZ_CHECK(v < lim, "%s%s %lld >= %s%s %lld", prefix, k->name,
                 (long long)v, prefix, o->name, (long long)lim);
    }
}

static void
fz_check_listen(const struct cfg *c)
{
    unsigned char addr[sizeof(struct in6_addr)];

    FZ_CHECK(c->n_listen <= CFG_MAX_LISTEN, "n_listen = %zu", c->n_listen);
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct cfg_listen *l = &c->listen[i];
        char name[64];

        for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
            if (k->scope == CFG_ITEM) {
                snprintf(name, sizeof(name), "listen[%zu].%s", i, k->name);
                fz_check_key(k, l, name);
            }
        }
        snprintf(name, sizeof(name), "listen[%zu].", i);
        fz_check_below(l, CFG_ITEM, name);
        FZ_CHECK(fz_bool_ok(&l->own_acl), "listen[%zu].own_acl is no bool", i);
        FZ_CHECK(l->own_acl || (l->allow == NULL && l->deny == NULL),
                 "listen[%zu] has lists it did not set", i);
        FZ_CHECK(inet_pton(AF_INET, l->address, addr) == 1 ||
                     inet_pton(AF_INET6, l->address, addr) == 1,
                 "listen[%zu].address \"%s\" is not numeric", i, l->address);
        for (size_t j = 0; j < i; j++) {
            FZ_CHECK(!cfg_listen_equal(l, &c->listen[j]),
                     "listen[%zu] repeats listen[%zu]", i, j);
        }
    }
}

static void
fz_check_cfg(const struct cfg *c)
{
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        if (k->scope == CFG_TOP) {
            fz_check_key(k, c, k->name);
        }
    }
    fz_check_below(c, CFG_TOP, "");
    fz_check_listen(c);
}

static void
fz_check_error(const char *err, size_t errlen, const char *path, bool included,
               int saved)
{
    size_t plen = strlen(path);
    size_t n = strnlen(err, errlen);

    FZ_CHECK(n < errlen, "error text is not NUL-terminated");
    if (included && strncmp(err, path, plen) != 0) {
        /* An included file's name, then ":LINE: what" */
        plen = strcspn(err, ":");
        FZ_CHECK(plen > 0 && plen < n, "error text \"%s\" names no file", err);
    }
    FZ_CHECK(n > plen + 1, "error text \"%s\" is empty after the path", err);
    FZ_CHECK(strncmp(err, path, plen) == 0 || included,
             "error text \"%s\" does not start with \"%s:\"", err, path);
    FZ_CHECK(err[plen] == ':',
             "error text \"%s\" has no ':' after the "
             "file name",
             err);
    FZ_CHECK(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL,
             "error text \"%s\" is more than one line", err);
    FZ_CHECK(saved == EINVAL, "errno %d, expected EINVAL", saved);
}

/* Write all of data to fd (a memfd never takes less, but be exact). */
static void
fz_write_all(int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t w = write(fd, data, size);

        FZ_CHECK(w > 0, "write to memfd: %s", strerror(errno));
        data += w;
        size -= (size_t)w;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    char err[CFG_ERR_MAX];
    struct cfg c;
    int fd, rc, saved;

    fd = memfd_create("echod.conf", MFD_CLOEXEC);
    FZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
    fz_write_all(fd, data, size);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    memset(err, 0, sizeof(err));
    errno = 0;
    rc = cfg_load(&c, path, err, sizeof(err));
    saved = errno;
    if (rc == 0) {
        fz_check_cfg(&c);
        cfg_fini(&c);
    } else {
        FZ_CHECK(rc == -1, "cfg_load returned %d", rc);
        fz_check_error(err, sizeof(err), path,
                       memmem(data, size, "@include", 8) != NULL, saved);
    }
    close(fd);
    return 0;
}
