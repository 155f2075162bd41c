/* SHA-256 over a list of byte strings, as lower-case hex: the names the cache and the config
 * identity are derived from. Callers include each part's terminating NUL where the boundary
 * between two parts must be unambiguous. */
#ifndef MAILAUTH_DIGEST_H
#define MAILAUTH_DIGEST_H

#include <stddef.h>

#define SHA256_HEX_LEN 64

struct digest_part {
    const void *data;
    size_t len;
};

/* 0 on success, -1 if OpenSSL failed (out is then unspecified). */
int sha256_hex(const struct digest_part *parts, size_t n_parts, char out[SHA256_HEX_LEN + 1]);

#endif
