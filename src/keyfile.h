/*
 * keyfile.h - a shared secret read from a file of hexadecimal text (the
 * STAMP key of `stamp_key_file`): the file a config names, checked the
 * way sshd checks a host key, so that a key anyone can read is refused
 * rather than trusted.
 */
#ifndef ECHOD_KEYFILE_H
#define ECHOD_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#define KF_MIN 16   /* bytes: at least 32 hex digits */
#define KF_MAX 64   /* bytes: at most 128 hex digits (one SHA-256 block) */
#define KF_FILE_MAX 4096 /* a longer file is not a key file */

/*
 * Read the key in path into key[0..KF_MAX): hex digits (either case),
 * any whitespace between and around them ignored, KF_MIN..KF_MAX bytes'
 * worth and a whole number of bytes. Refused: a file that cannot be
 * opened or read, is not a regular file, can be read or written by its
 * group or others (mode & 077), or holds anything else. Returns the key's
 * length, or -1 with a reason in why (no trailing newline; never the
 * key's bytes).
 */
int kf_load(const char *path, uint8_t key[KF_MAX], char *why, size_t whylen);

#endif /* ECHOD_KEYFILE_H */
