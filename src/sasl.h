/* SASL PLAIN (RFC 4616) initial response, shared by IMAP and POP3. */
#ifndef MAILAUTH_SASL_H
#define MAILAUTH_SASL_H

#include <stddef.h>

#include "proto.h"

/* Enough for base64("\0" user "\0" password) with user <= 255 and password <= 1024 bytes. */
#define SASL_PLAIN_B64_MAX 1800

/* Write base64("" NUL user NUL password) and a NUL into out. Returns its length, or 0 when it
 * does not fit. Intermediate copies are wiped; the caller must wipe out. */
size_t sasl_plain_encode(const struct login_creds *c, char *out, size_t cap);

#endif
