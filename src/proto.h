/* Types shared by the protocol layers (pop3, imap) and the server walk. */
#ifndef MAILAUTH_PROTO_H
#define MAILAUTH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "util.h"

enum mail_protocol { PROTOCOL_IMAP, PROTOCOL_POP3 };
enum tls_mode { TLS_MODE_IMPLICIT, TLS_MODE_STARTTLS, TLS_MODE_NONE };
enum apop_mode { APOP_AUTO, APOP_NEVER, APOP_ONLY };

/* Outcome of one login dialogue with one server address. */
/* Room for a login method's name ("AUTHENTICATE SCRAM-SHA-256-PLUS"), NUL included (plan.h). */
#define PROTO_MECH_NAME_MAX 40
/* Room for the names of the methods a fallback went past ("SCRAM-SHA-256, CRAM-MD5"). */
#define PROTO_FALLBACK_MAX 64
/* Room for a server's alert to the user, cleaned (alert.h), NUL included. */
#define PROTO_ALERT_MAX 256

enum proto_result {
    PROTO_OK,        /* the server accepted the credentials */
    PROTO_EAUTHFAIL, /* the server answered and refused them */
    PROTO_EIO,       /* resolve/connect/read/write failed or timed out */
    PROTO_EPROTO,    /* the server said something we cannot trust as an answer */
    PROTO_ETLS,      /* TLS handshake or certificate verification failed */
    PROTO_EINSECURE, /* we would have had to send the password without protection */
    PROTO_ETEMP,     /* the server answered "try later" (e.g. [UNAVAILABLE], [SYS/TEMP]) */
};

/* A connection the server walk already established (walk.c): the stream layer takes the socket
 * over instead of resolving and connecting itself. */
struct login_conn {
    int fd; /* connected; stream_open sets it to -1 when it takes it over (a second stream_open
               of the same dialogue connects afresh) */
    int64_t started_ms; /* when its connect began: the dialogue's timeout counts from then */
    char address[80];   /* the peer, "[::1]:143" */
};

/* Where and how to log in: one host/port pair of a configured server. */
struct login_target {
    const char *label;
    enum mail_protocol protocol;
    const char *host;
    unsigned port;
    enum tls_mode tls;
    bool verify;
    bool allow_cleartext;
    enum apop_mode apop;
    /* mechanisms = ...: SASL mechanisms (enum sasl_mech_id, src/sasl/mech.h) in the order
     * configured; n_mechanisms 0: the protocol's default login (IMAP LOGIN, AUTHENTICATE PLAIN
     * under LOGINDISABLED; POP3 APOP/USER/AUTH PLAIN) as before the option existed. */
    unsigned char mechanisms[8];
    unsigned n_mechanisms;
    bool forward_client_ip; /* forward_client_ip = auto: forward login_creds.client_ip */
    const char *ca_file;    /* NULL: ca_dir or the system store */
    const char *ca_dir;
    int connect_timeout_ms;  /* for the TCP connect to one address */
    int timeout_ms;          /* for the whole dialogue with one address */
    struct login_conn *conn; /* NULL: stream_open resolves host and connects */
};

struct login_creds {
    const char *user;
    size_t user_len;
    const char *password;
    size_t password_len;
    /* Not a credential: the end user's numeric address (client_addr.h), forwarded to servers that
     * take it (IMAP ID; never POP3, see pop3.c) when the target's forward_client_ip allows;
     * NULL: none. */
    const char *client_ip;
};

/* How much of the credentials of the current mechanism left this client. "Credentials" is anything
 * derived from the password: the password, the length announced for it in an IMAP literal, an
 * APOP digest, a SASL response. The user name alone is not. Kept by the stream layer, the only
 * place that sends credentials (stream_send_credential). */
enum creds_progress {
    CREDS_NONE,    /* nothing of the current mechanism's credentials was sent */
    CREDS_PARTIAL, /* some was, not all (e.g. a literal announced and no "+" came) */
    CREDS_ALL,     /* every byte of them was handed to the connection */
};

/* Whether the mechanism in use makes the server prove itself (SCRAM), and whether it did. */
enum server_proof {
    PROOF_NOT_REQUIRED, /* the mechanism has no server proof (LOGIN, PLAIN, CRAM-MD5, APOP) */
    PROOF_PENDING,      /* it has one and it was not (yet) verified: an OK is not success */
    PROOF_VERIFIED,     /* the server's signature (SCRAM v=) matched */
};

struct login_outcome {
    enum proto_result result;
    char address[80]; /* the address that was connected, "[::1]:143" */
    struct errbuf reason;
    enum creds_progress creds; /* of the last mechanism tried in this attempt */
    bool creds_sent;           /* anything credential-derived was sent during this attempt */
    enum server_proof proof;   /* of the last mechanism tried in this attempt */
    /* The attempt failed for a reason of this process, not an answer of the server or the
     * network: a deadline of the module's clock, memory, descriptors, its own TLS setup, a
     * command it refused to send. Such a failure is no evidence that the server is down. */
    bool local_failure;
    /* The plan entry (plan.h) tried last: "LOGIN", "AUTH SCRAM-SHA-256"; "" before any. */
    char mechanism[PROTO_MECH_NAME_MAX];
    /* A fallback that ended in success: the methods that failed first ("APOP": refused, and
     * USER/PASS then accepted the same password, so the server cannot check APOP, e.g. Cyrus
     * with saslauthd; "SCRAM-SHA-256": advertised but not run for this user, e.g. Dovecot with
     * hashed passwords), what they cost in ms (failure delays, any reconnect), and what to
     * configure to save it. "" / 0 / NULL otherwise. */
    char fallback_from[PROTO_FALLBACK_MAX];
    long fallback_wasted_ms;
    const char *fallback_advice;
    /* The first IMAP [ALERT] of the dialogue, or POP3 text meant for the user (RFC 3206 [AUTH]
     * answering the credentials, [SYS/PERM]: verdict_pop3_user_text), cleaned by alert_clean
     * ("" when none came or it held a secret), and whether it came over TLS: only then may the
     * user see it (RFC 9051 7.1: an alert received in clear SHOULD be ignored). */
    char alert[PROTO_ALERT_MAX];
    bool alert_tls;
    const char *alert_code; /* the response code that carried it: "ALERT", "AUTH", "SYS/PERM" */
};

const char *proto_result_name(enum proto_result r);

/* The one gate to success: a server's OK counts only when every byte of the current mechanism's
 * credentials went out and, for a mechanism in which the server proves itself (SCRAM), that
 * proof was verified. Returns PROTO_OK with o->reason cleared (an earlier step's reason must
 * not describe a success), or PROTO_EPROTO with o->reason saying why the OK is no verdict (the
 * server answered before it had the password, or without proving it knows it: a forged or
 * confused "yes"). what names the step. */
enum proto_result proto_accept(struct login_outcome *o, const char *what);

/* The rule proto_accept applies, without changing o: NULL when a success may stand, else why
 * not. The walk (auth.c) asks it again of every success the protocol layers report. */
const char *proto_success_refused(const struct login_outcome *o);

#endif
