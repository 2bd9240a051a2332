/*
 * aclbench - how long an access list takes to build and to match.
 *
 *   aclbench [-n PREFIXES] [-l LOOKUPS] [-r RUNS] [-s SEED]
 *
 * Each run builds a list from PREFIXES random prefixes given as text,
 * as the config loader does (acl_add for each, then acl_build), once with
 * IPv4 prefixes (/16../32) and once with IPv6 ones (/48../128 inside
 * 2001:db8::/32), and then matches LOOKUPS random addresses of that
 * family against it, half of them aimed at an entry so that both
 * answers are common. Prints, per family, the median over RUNS runs of
 * the build time and of the time per lookup (the addresses are made
 * before the clock starts), with the fastest and slowest run beside it.
 * Defaults: 100000 prefixes, 1000000 lookups, 7 runs.
 *
 * Figures go in reports and issue notes, not in tests. Built by
 * `make build/bench/aclbench` (linked with build/libechod.a).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"

#define RUNS_MAX 101

static uint64_t rnd_state;

static uint64_t
rnd(void)
{
    uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* One prefix of the family as text, and its first address in *first. */
static void
rnd_prefix(int family, char *text, size_t len, struct in6_addr *first)
{
    char name[INET6_ADDRSTRLEN];

    memset(first, 0, sizeof(*first));
    if (family == AF_INET) {
        unsigned plen = 16 + (unsigned)(rnd() % 17);
        uint32_t net = (uint32_t)rnd() & (UINT32_MAX << (32 - plen));
        struct in_addr in = {htonl(net)};

        inet_ntop(AF_INET, &in, name, sizeof(name));
        snprintf(text, len, "%s/%u", name, plen);
        memcpy(first, &in, sizeof(in));
    } else {
        unsigned plen = 48 + (unsigned)(rnd() % 81);
        uint64_t w[2] = {0x20010db800000000ULL | (rnd() & 0xffffffffULL),
                         rnd()};

        for (unsigned bit = plen; bit < 128; bit++) {
            w[bit / 64] &= ~(1ULL << (63 - bit % 64));
        }
        for (int k = 0; k < 8; k++) {
            first->s6_addr[k] = (uint8_t)(w[0] >> (56 - 8 * k));
            first->s6_addr[8 + k] = (uint8_t)(w[1] >> (56 - 8 * k));
        }
        inet_ntop(AF_INET6, first, name, sizeof(name));
        snprintf(text, len, "%s/%u", name, plen);
    }
}

struct figures {
    double build_s;
    double lookup_ns;
    size_t ranges, hits;
};

static int
one_run(int family, size_t n, size_t lookups, struct figures *f)
{
    char(*text)[64] = malloc(n * sizeof(*text));
    struct in6_addr *first = malloc(n * sizeof(*first));
    struct sockaddr_storage *sa = calloc(lookups, sizeof(*sa));
    struct acl_builder *b;
    struct acl *a;
    char err[ACL_ERR_MAX];
    double t0;

    if (text == NULL || first == NULL || sa == NULL) {
        fprintf(stderr, "aclbench: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        rnd_prefix(family, text[i], sizeof(text[i]), &first[i]);
    }
    for (size_t i = 0; i < lookups; i++) {
        const struct in6_addr *near = &first[rnd() % n];

        if (family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&sa[i];
            uint32_t v;

            memcpy(&v, near, 4);
            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr =
                i % 2 ? (uint32_t)rnd() : htonl(ntohl(v) + (uint32_t)i % 3);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sa[i];

            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr = *near;
            if (i % 2) {
                uint64_t r = rnd();

                memcpy(&sin6->sin6_addr.s6_addr[4], &r, 4);
                r = rnd();
                memcpy(&sin6->sin6_addr.s6_addr[8], &r, 8);
            }
        }
    }

    t0 = now_s();
    b = acl_builder_new();
    for (size_t i = 0; b != NULL && i < n; i++) {
        if (acl_add(b, text[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "aclbench: %s: %s\n", text[i], err);
            return -1;
        }
    }
    a = b != NULL ? acl_build(b) : NULL;
    f->build_s = now_s() - t0;
    if (a == NULL) {
        fprintf(stderr, "aclbench: out of memory\n");
        return -1;
    }
    f->ranges = acl_ranges(a);

    f->hits = 0;
    t0 = now_s();
    for (size_t i = 0; i < lookups; i++) {
        f->hits += acl_match(a, (const struct sockaddr *)&sa[i]);
    }
    f->lookup_ns = (now_s() - t0) * 1e9 / (double)lookups;

    acl_free(a);
    free(text);
    free(first);
    free(sa);
    return 0;
}

static void
report(const char *name, size_t n, size_t lookups, struct figures *f, int runs)
{
    double build[RUNS_MAX], look[RUNS_MAX];

    for (int r = 0; r < runs; r++) {
        build[r] = f[r].build_s * 1e3;
        look[r] = f[r].lookup_ns;
    }
    qsort(build, (size_t)runs, sizeof(double), cmp_double);
    qsort(look, (size_t)runs, sizeof(double), cmp_double);
    printf("%s prefixes=%zu ranges=%zu lookups=%zu hits=%zu runs=%d "
           "build_ms=%.1f (%.1f..%.1f) lookup_ns=%.1f (%.1f..%.1f)\n",
           name, n, f[0].ranges, lookups, f[0].hits, runs, build[runs / 2],
           build[0], build[runs - 1], look[runs / 2], look[0], look[runs - 1]);
}

int
main(int argc, char **argv)
{
    static struct figures f4[RUNS_MAX], f6[RUNS_MAX];
    size_t n = 100000, lookups = 1000000;
    int runs = 7, ch;
    uint64_t seed = 1;

    while ((ch = getopt(argc, argv, "n:l:r:s:")) != -1) {
        switch (ch) {
        case 'n':
            n = strtoul(optarg, NULL, 10);
            break;
        case 'l':
            lookups = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 0);
            break;
        default:
            fprintf(stderr, "usage: aclbench [-n PREFIXES] [-l LOOKUPS] "
                            "[-r RUNS] [-s SEED]\n");
            return 2;
        }
    }
    if (n == 0 || lookups == 0 || runs < 1 || runs > RUNS_MAX) {
        fprintf(stderr, "aclbench: need n > 0, lookups > 0, 1..%d runs\n",
                RUNS_MAX);
        return 2;
    }
    rnd_state = seed;
    /* Interleaved, so that a busy moment of the machine hits both. */
    for (int r = 0; r < runs; r++) {
        if (one_run(AF_INET, n, lookups, &f4[r]) < 0 ||
            one_run(AF_INET6, n, lookups, &f6[r]) < 0) {
            return 1;
        }
    }
    report("ipv4", n, lookups, f4, runs);
    report("ipv6", n, lookups, f6, runs);
    return 0;
}
