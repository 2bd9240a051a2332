/*
 * cfgtext.h - checks on the raw text of a configuration file, for what
 * libconfig 1.5 cannot be trusted with: integer literals it silently
 * truncates, and @include targets its scanner would exit(2) or block on.
 * Reads files itself (by length: a NUL byte is just a byte to libconfig),
 * never touches live state, never logs.
 */
#ifndef ECHOD_CFGTEXT_H
#define ECHOD_CFGTEXT_H

#include <stdbool.h>
#include <stddef.h>

/* False only when a `name = literal` starting on `line` of `path` is an
 * integer without the L suffix that does not fit a 32-bit int (libconfig
 * keeps its low 32 bits). True when the file cannot be read. */
bool cft_int_literal_fits(const char *path, unsigned line, const char *name);

/* Refuse @include targets that are not regular files, or whose names are
 * not plain, in `file` and what it includes (depth counts the nesting).
 * Returns 0, or -1 with a one-line "FILE:LINE: ..." message in err. */
int cft_check_includes(const char *file, unsigned depth, char *err,
                       size_t errlen);

/* A value from the file made safe for a one-line message: printable ASCII
 * as is, anything else as \xHH. Returns buf. */
const char *cft_quote(const char *v, char *buf, size_t len);

#endif /* ECHOD_CFGTEXT_H */
