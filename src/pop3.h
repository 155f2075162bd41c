/* POP3 (RFC 1939, 2449, 2595, 5034): APOP, USER/PASS, AUTH PLAIN, STLS. */
#ifndef MAILAUTH_POP3_H
#define MAILAUTH_POP3_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "pop3_reply.h"
#include "proto.h"

#define POP3_APOP_TIMESTAMP_MAX 256

/* Find the APOP timestamp in a greeting: "<...@...>", printable ASCII, exactly one '@' with
 * something on both sides, at most POP3_APOP_TIMESTAMP_MAX bytes. Anything else (the
 * CVE-2007-1558 attack surface) yields false and APOP is not used. out gets the timestamp
 * including the angle brackets. */
bool pop3_apop_timestamp(const char *greeting, size_t len, char *out, size_t cap);

/* hex(MD5(timestamp || password)) into hex_out[33]. MD5 is fed in two updates so no buffer
 * ever holds timestamp and password together. Returns false if OpenSSL fails. */
bool pop3_apop_digest(const char *timestamp, const char *password, size_t password_len,
                      char hex_out[33]);

/* True when the greeting ("+OK [XCLIENT] ...") carries the response code XCLIENT: Dovecot's
 * pop3-login offers it, there only, to clients in its login_trusted_networks. */
bool pop3_greeting_offers_xclient(const char *greeting, size_t len);

struct pop3_caps {
    bool known; /* a CAPA listing was read (set by the reader, not pop3_capa_line) */
    bool user;
    bool stls;
    unsigned sasl_mechs; /* the SASL line's mechanisms of the table (src/sasl/), bit 1 << id */
    bool sasl_plus;      /* some ...-PLUS is offered (SCRAM's channel binding flag) */
};

/* Fold one CAPA response line into caps. */
void pop3_capa_line(const char *line, size_t len, struct pop3_caps *caps);

/* Log in with one POP3 server address. Fills out (result, address, reason). */
enum proto_result pop3_login(const struct login_target *t, const struct login_creds *c,
                             const struct logger *log, struct login_outcome *out);

#endif
