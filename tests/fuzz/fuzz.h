/*
 * fuzz.h - what the fuzz targets share: the libFuzzer entry point (also
 * called by standalone_driver.c for corpus replay with any compiler) and an
 * invariant check that aborts, so both libFuzzer and CTest see a crash.
 */
#ifndef MCPD_TESTS_FUZZ_H
#define MCPD_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
