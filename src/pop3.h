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
    bool user;
    bool stls;
    bool sasl_plain;
    unsigned sasl_mechs; /* the SASL line's mechanisms of the table (src/sasl/), bit 1 << id */
    bool sasl_plus;      /* some ...-PLUS is offered (SCRAM's channel binding flag) */
};

/* Fold one CAPA response line into caps. */
void pop3_capa_line(const char *line, size_t len, struct pop3_caps *caps);

/* Which mechanism a login starts with (pure, so the probe tool reports exactly what a login
 * does). The login path follows pop3_first_mechanism; a refused USER falls back by
 * pop3_mechanism_after_user_refused. */
enum pop3_mech {
    POP3_MECH_APOP,      /* APOP with the greeting's timestamp */
    POP3_MECH_USER_PASS, /* USER, then PASS */
    POP3_MECH_AUTH_PLAIN,
    POP3_MECH_NONE, /* apop = only and no usable timestamp, or nothing offered: nothing sent */
};

/* APOP when it is allowed (apop != never), the greeting carried a well-formed timestamp and the
 * user name has no space (it would split APOP's arguments); with apop = only and no usable
 * APOP, NONE; otherwise USER/PASS. */
enum pop3_mech pop3_first_mechanism(enum apop_mode apop, bool have_timestamp, bool user_has_space);

/* After USER was refused (not "try later"): AUTH PLAIN when CAPA lists SASL PLAIN and no USER,
 * NONE when it lists neither, USER_PASS when USER is listed (the refusal then stands). */
enum pop3_mech pop3_mechanism_after_user_refused(const struct pop3_caps *caps);

const char *pop3_mech_name(enum pop3_mech m);

/* Log in with one POP3 server address. Fills out (result, address, reason). */
enum proto_result pop3_login(const struct login_target *t, const struct login_creds *c,
                             const struct logger *log, struct login_outcome *out);

#endif
