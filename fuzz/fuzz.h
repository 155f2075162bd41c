/* The libFuzzer entry point, declared for -Wmissing-prototypes. */
#ifndef MAILAUTH_FUZZ_H
#define MAILAUTH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
