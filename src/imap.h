/* IMAP (RFC 9051, RFC 3501): LOGIN with quoted strings or literals, AUTHENTICATE PLAIN,
 * STARTTLS, untagged responses tolerated, only the tagged reply decides. */
#ifndef MAILAUTH_IMAP_H
#define MAILAUTH_IMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "imap_reply.h"
#include "proto.h"

struct imap_caps {
    bool known;
    bool starttls;
    bool logindisabled;
    unsigned sasl_mechs; /* AUTH=... of the mechanism table (src/sasl/), bit 1 << id */
    bool sasl_plus;      /* some AUTH=...-PLUS is offered (SCRAM's channel binding flag) */
    bool sasl_ir;
    bool literal_plus;  /* LITERAL+ (RFC 7888): {n+} for any size */
    bool literal_minus; /* LITERAL- (RFC 7888): {n+} up to 4096 bytes */
    bool id;            /* ID (RFC 2971) */
};

/* Fold a space-separated capability list ("IMAP4rev1 STARTTLS AUTH=PLAIN") into caps. */
void imap_caps_parse(const char *list, size_t len, struct imap_caps *caps);

/* The list after a leading "CAPABILITY" word (then a space or the end) in p, or NULL: untagged
 * CAPABILITY data and the [CAPABILITY ...] response code. */
const char *imap_capability_list(const char *p, size_t len, size_t *list_len);

/* If a reply's response code is "CAPABILITY ...", fold it into caps. */
void imap_caps_from_code(const struct imap_reply *r, struct imap_caps *caps);

/* True when s can travel as an IMAP quoted string: 7-bit, no CR, LF or NUL. Anything else goes
 * as a literal. */
bool imap_can_quote(const char *s, size_t n);

/* Write s as a quoted string ("..." with \ before " and \) into out, NUL-terminated.
 * Returns the length, or 0 if it does not fit or s cannot be quoted. */
size_t imap_quote(const char *s, size_t n, char *out, size_t cap);

/* Log in with one IMAP server address. Fills out (result, address, reason). */
enum proto_result imap_login(const struct login_target *t, const struct login_creds *c,
                             const struct logger *log, struct login_outcome *out);

#endif
