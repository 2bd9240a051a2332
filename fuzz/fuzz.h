/*
 * fuzz.h - what the libFuzzer targets in fuzz/ share.
 *
 * A target checks its invariants with FZ_CHECK: a broken one prints what
 * was expected and aborts, which libFuzzer reports as a crash and saves
 * the input (artifact) that caused it.
 */
#ifndef ECHOD_FUZZ_H
#define ECHOD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer's entry point, called once per input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond, ...)                                              \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,       \
                    __LINE__, #cond);                                    \
            fprintf(stderr, __VA_ARGS__);                                \
            fputc('\n', stderr);                                         \
            abort();                                                     \
        }                                                                \
    } while (0)

#endif /* ECHOD_FUZZ_H */
