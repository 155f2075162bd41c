/* One SASL exchange over a mail protocol (IMAP AUTHENTICATE, POP3 AUTH): the mechanism's steps
 * (src/sasl/) on one side, base64 lines on the other, through a small per-protocol parameter
 * block. Every password-derived message leaves through stream_send_credential (and so the
 * cleartext rule); the mechanism's server proof is recorded in the login outcome, where
 * proto_accept asks for it. */
#ifndef MAILAUTH_SASL_EXCHANGE_H
#define MAILAUTH_SASL_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "sasl/mech.h"
#include "stream.h"

/* What differs between the protocols. */
struct sasl_proto {
    /* Read the server's next reply to the exchange. A continuation ("+ base64"): *cont is true and
     * [*data, *data + *len) is its text. Otherwise the final reply, which the protocol keeps for
     * its own judge; the exchange ends there. */
    enum proto_result (*read)(void *ctx, bool *cont, const char **data, size_t *len);
    const char *cancel; /* the line that abandons the exchange ("*") */
};

/* One run: which command starts it and what the server allows. */
struct sasl_exchange {
    const struct sasl_proto *proto;
    void *ctx;
    struct stream *s;
    struct login_outcome *out;
    const struct logger *log;
    const char *label;       /* the server's name in logs */
    const char *command;     /* "A3 AUTHENTICATE" or "AUTH": the mechanism name follows */
    bool initial_response;   /* the server takes a first message on the command line */
    bool cb_offered;         /* the server advertised a -PLUS mechanism */
    unsigned max_iterations; /* SCRAM cap, 0: the default */
};

/* How a run ended, beyond the protocol result. */
enum sasl_end {
    SASL_END_FINAL, /* the server gave its final reply (the protocol judges it) */
    /* the mechanism cannot run for these credentials: nothing of them was sent, and a command
     * that had gone out was cancelled and the server's final reply to it read */
    SASL_END_UNUSABLE,
    SASL_END_FAILED, /* the exchange failed (result and out->reason say how) */
};

/* Why a -PLUS mechanism cannot run over s (no TLS; TLS 1.2 without the extended master secret),
 * or NULL when the channel can be bound: what the plan (plan_offer.cb_unbindable) and
 * sasl_exchange_run both go by. */
const char *sasl_channel_unbindable(const struct stream *s);

/* Run mechanism m for c. Returns PROTO_OK with *end == SASL_END_FINAL when the server's final
 * reply was read (judge it, then proto_accept); any other result with *end saying whether a
 * next mechanism may be tried (SASL_END_UNUSABLE) or not. */
enum proto_result sasl_exchange_run(const struct sasl_exchange *x, const struct sasl_mech *m,
                                    const struct login_creds *c, enum sasl_end *end);

#endif
