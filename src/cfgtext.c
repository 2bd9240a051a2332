/*
 * cfgtext.c - raw-text checks that guard libconfig 1.5 (see cfgtext.h).
 *
 * Owns: reading a configuration file as bytes and scanning it for the two
 * things libconfig gets wrong. Never parses configuration semantics (that
 * is config.c) and never logs: callers turn the results into messages.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfgtext.h"

#define CFT_FILE_MAX ((size_t)1024 * 1024) /* a file of unknown size */
#define CFT_INCLUDE_DEPTH 10               /* libconfig's own nesting limit */
#define CFT_INCLUDE_QUOTED 1024            /* an @include name in an error */

/* A regular file whole (anything else: its first CFT_FILE_MAX bytes)
 * and its length, with a NUL after it; to be freed. NULL if it cannot be
 * opened or memory is short. libconfig reads a NUL byte like any other
 * (in a string, in a comment): the text is scanned by length, never up
 * to the first NUL. A file with long access lists (allow, deny) runs to
 * megabytes, and a guard that stopped at a fixed size would let an
 * @include or a wrapping literal after it through. */
static char *
cft_read(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "r");
    size_t len, max = CFT_FILE_MAX;
    struct stat st;
    char *text;

    if (f == NULL) {
        return NULL;
    }
    /* As much as libconfig will read: the whole file, and no more. */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size < SIZE_MAX) {
        max = (size_t)st.st_size;
    }
    text = malloc(max + 1);
    len = text != NULL ? fread(text, 1, max, f) : 0;
    fclose(f);
    if (text != NULL) {
        text[len] = '\0';
    }
    *lenp = len;
    return text;
}

/* True when p starts an integer literal without the L suffix that does not
 * fit a 32-bit int (float and L literals are left to libconfig). */
static bool
cft_literal_overflows(const char *p)
{
    unsigned long long u;
    bool neg = *p == '-';
    bool hex;
    char *end;

    if (*p == '-' || *p == '+') {
        p++;
    }
    if (!isdigit((unsigned char)*p)) {
        return false;
    }
    hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    errno = 0;
    u = strtoull(p, &end, hex ? 16 : 10);
    if (*end == 'L' || *end == '.' || *end == 'e' || *end == 'E') {
        return false;
    }
    if (errno == ERANGE) {
        return true;
    }
    return u > (unsigned long long)INT_MAX + (neg && !hex ? 1 : 0);
}

/*
 * libconfig 1.5 stores an integer literal without the L suffix as an int
 * and silently keeps its low 32 bits ("max_connections = 4294967301;"
 * reads as 5), so no check on the stored value can see it. Look at the
 * text instead: every `name = literal` that starts on the setting's line
 * must fit an int. Returns false only when such a literal was found.
 */
bool
cft_int_literal_fits(const char *path, unsigned line, const char *name)
{
    size_t nlen = strlen(name), len;
    bool fits = true;
    char *text, *p, *end;

    text = cft_read(path, &len);
    if (text == NULL) {
        return true; /* libconfig just read it; nothing better to say */
    }
    end = text + len;
    for (p = text; line > 1 && (p = memchr(p, '\n', (size_t)(end - p)));
         line--) {
        p++;
    }
    for (bool in_str = false; p != NULL && p < end && *p != '\n'; p++) {
        const char *q = p + nlen;
        if (*p == '"' && (p == text || p[-1] != '\\')) {
            in_str = !in_str;
        }
        if (!in_str && (*p == '#' || (p[0] == '/' && p[1] == '/'))) {
            break; /* a comment runs to the end of the line */
        }
        if (in_str || strncmp(p, name, nlen) != 0 ||
            (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) ||
            isalnum((unsigned char)*q) || *q == '_') {
            continue;
        }
        q += strspn(q, " \t\r\n");
        if (*q != '=' && *q != ':') {
            continue;
        }
        q += 1 + strspn(q + 1, " \t\r\n");
        if (cft_literal_overflows(q)) {
            fits = false;
        }
    }
    free(text);
    return fits;
}

/* Quote a value from the file for an error message: printable ASCII as
 * is, anything else (a newline, say) as libconfig's \xHH, so the message
 * stays one line, in a log and in sd_notify's STATUS= alike. */
const char *
cft_quote(const char *v, char *buf, size_t len)
{
    size_t used = 0;

    for (; *v != '\0' && used + 5 <= len; v++) {
        unsigned char ch = (unsigned char)*v;

        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            buf[used++] = (char)ch;
        } else {
            used += (size_t)snprintf(buf + used, len - used, "\\x%02x", ch);
        }
    }
    buf[used] = '\0';
    return buf;
}

/*
 * libconfig 1.5 opens an @include target with fopen() and reads it with a
 * flex scanner that calls exit(2) when a read fails: `@include "/etc"` (a
 * directory) ended echod at once, on a SIGHUP reload too, with nothing in
 * the log; a FIFO would block the loop for good. So every target, and what
 * it includes in turn, must be a regular file before libconfig opens it.
 * Lines are matched as libconfig's rule matches them (^[ \t]*@include
 * [ \t]+"); the name must then be plain, closed on the same line: its
 * escapes, NUL bytes and line breaks are refused rather than decoded the
 * way flex would. Comments are not tracked: a commented-out include that
 * fails these checks is refused too. A missing target is left to
 * libconfig, which reports it.
 */
int
cft_check_includes(const char *file, unsigned depth, char *err, size_t errlen)
{
    size_t len, n;
    char *text = cft_read(file, &len), *p, *next;
    char quoted[CFT_INCLUDE_QUOTED];
    unsigned line = 1;
    struct stat st;
    int rc = 0;

    if (text == NULL) {
        return 0; /* libconfig will say why */
    }
    for (p = text; rc == 0 && p != NULL && p < text + len; p = next, line++) {
        next = memchr(p, '\n', (size_t)(text + len - p));
        next = next != NULL ? next + 1 : NULL;
        p += strspn(p, " \t");
        if (strncmp(p, "@include", 8) != 0 || (p[8] != ' ' && p[8] != '\t')) {
            continue;
        }
        p += 8 + strspn(p + 8, " \t");
        if (*p++ != '"') {
            continue; /* not an include for libconfig either */
        }
        n = strcspn(p, "\"\\\n"); /* stops at a NUL too */
        if (p[n] != '"') {
            snprintf(err, errlen,
                     "%s:%u: @include: expected a file "
                     "name in double quotes on one line, without escapes",
                     file, line);
            rc = -1;
            break;
        }
        p[n] = '\0'; /* the rest of this line is not needed */
        if (stat(p, &st) != 0) {
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            snprintf(err, errlen,
                     "%s:%u: @include \"%s\": not a "
                     "regular file",
                     file, line, cft_quote(p, quoted, sizeof(quoted)));
            rc = -1;
        } else if (depth + 1 < CFT_INCLUDE_DEPTH) {
            rc = cft_check_includes(p, depth + 1, err, errlen);
        }
    }
    free(text);
    return rc;
}
