/*
 * jsonw.h - writing JSON (RFC 8259) into a struct mtr_buf (metrics.h):
 * strings from outside escaped, object members with their commas; and
 * the same strings made safe to print on a terminal.
 */
#ifndef ECHOD_JSONW_H
#define ECHOD_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/* s as a JSON string, quotes included: '"' and '\\' escaped, control
 * characters as \u00XX, each byte that is not valid UTF-8 as \ufffd (so
 * the document stays valid). NULL is "". Any length. */
void jw_str(struct mtr_buf *b, const char *s);

/* s for a terminal: each control character (C0, DEL, C1) and each byte
 * that is not valid UTF-8 as '?'. NULL is "". Any length. */
void jw_text(struct mtr_buf *b, const char *s);

/* jw_text into dst: as many whole characters as fit in cap bytes
 * (cap >= 8), always NUL-terminated. */
void jw_text_copy(char *dst, size_t cap, const char *src);

/*
 * Members of an object. *more says whether one came before in this
 * object (false right after '{'), so the comma goes only between them;
 * each sets it. key is written as it is: ASCII with nothing to escape
 * (the caller's constants and reason names).
 */
void jw_key(struct mtr_buf *b, bool *more, const char *key);
void jw_u64(struct mtr_buf *b, bool *more, const char *key, uint64_t v);
void jw_i64(struct mtr_buf *b, bool *more, const char *key, int64_t v);
void jw_string(struct mtr_buf *b, bool *more, const char *key, const char *v);
void jw_bool(struct mtr_buf *b, bool *more, const char *key, bool v);
/* Milliseconds as seconds with three decimals, exact (no double). */
void jw_ms(struct mtr_buf *b, bool *more, const char *key, uint64_t ms);

#endif /* ECHOD_JSONW_H */
