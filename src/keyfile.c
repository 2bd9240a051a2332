/*
 * keyfile.c - reading a hexadecimal key file (keyfile.h).
 *
 * Owns nothing past the call. Checks the file through its open
 * descriptor (fstat), so what is checked is what is read. Never puts a
 * byte of the file into an error text: a malformed key is still a key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfile.h"

static int
kf_fail(char *why, size_t whylen, const char *text)
{
    snprintf(why, whylen, "%s", text);
    return -1;
}

static int
kf_hex(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

static bool
kf_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
           ch == '\v' || ch == '\f';
}

/* The key in text[0..n); its length, or -1 with why. */
static int
kf_parse(const char *text, size_t n, uint8_t key[KF_MAX], char *why,
         size_t whylen)
{
    size_t digits = 0;

    for (size_t i = 0; i < n; i++) {
        int v = kf_hex(text[i]);

        if (kf_space(text[i])) {
            continue;
        }
        if (v < 0) {
            return kf_fail(why, whylen,
                           "not hexadecimal text (only 0-9, a-f and "
                           "whitespace)");
        }
        if (digits == (size_t)2 * KF_MAX) {
            return kf_fail(why, whylen, "key longer than 128 hex digits");
        }
        if (digits % 2 == 0) {
            key[digits / 2] = (uint8_t)(v << 4);
        } else {
            key[digits / 2] |= (uint8_t)v;
        }
        digits++;
    }
    if (digits % 2 != 0) {
        return kf_fail(why, whylen, "an odd number of hex digits");
    }
    if (digits < (size_t)2 * KF_MIN) {
        return kf_fail(why, whylen, "key shorter than 32 hex digits (16 "
                                    "bytes)");
    }
    return (int)(digits / 2);
}

int
kf_load(const char *path, uint8_t key[KF_MAX], char *why, size_t whylen)
{
    char text[KF_FILE_MAX + 1];
    struct stat st;
    size_t got = 0;
    ssize_t n;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kf_fail(why, whylen, "not a regular file");
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        snprintf(why, whylen,
                 "mode %04o: readable or writable by group or others "
                 "(chmod 600 it)",
                 (unsigned)(st.st_mode & 07777));
        return -1;
    }
    while (got < sizeof(text)) {
        n = read(fd, text + got, sizeof(text) - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(why, whylen, "cannot read: %s", strerror(errno));
            close(fd);
            explicit_bzero(text, sizeof(text));
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (got > KF_FILE_MAX) {
        explicit_bzero(text, sizeof(text));
        return kf_fail(why, whylen, "longer than a key file can be");
    }
    rc = kf_parse(text, got, key, why, whylen);
    explicit_bzero(text, sizeof(text)); /* no copy of the key left behind */
    return rc;
}
