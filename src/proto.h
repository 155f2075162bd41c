/* Types shared by the protocol layers (pop3, imap) and the server walk. */
#ifndef MAILAUTH_PROTO_H
#define MAILAUTH_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "util.h"

enum mail_protocol { PROTOCOL_IMAP, PROTOCOL_POP3 };
enum tls_mode { TLS_MODE_IMPLICIT, TLS_MODE_STARTTLS, TLS_MODE_NONE };
enum apop_mode { APOP_AUTO, APOP_NEVER, APOP_ONLY };

/* Outcome of one login dialogue with one server address. */
enum proto_result {
    PROTO_OK,        /* the server accepted the credentials */
    PROTO_EAUTHFAIL, /* the server answered and refused them */
    PROTO_EIO,       /* resolve/connect/read/write failed or timed out */
    PROTO_EPROTO,    /* the server said something we cannot trust as an answer */
    PROTO_ETLS,      /* TLS handshake or certificate verification failed */
    PROTO_EINSECURE, /* we would have had to send the password without protection */
    PROTO_ETEMP,     /* the server answered "try later" (e.g. [UNAVAILABLE], [SYS/TEMP]) */
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
    const char *ca_file; /* NULL: ca_dir or the system store */
    const char *ca_dir;
    int connect_timeout_ms; /* for the TCP connect to one address */
    int timeout_ms;         /* for the whole dialogue with one address */
};

struct login_creds {
    const char *user;
    size_t user_len;
    const char *password;
    size_t password_len;
};

struct login_outcome {
    enum proto_result result;
    char address[80]; /* the address that was connected, "[::1]:143" */
    struct errbuf reason;
};

const char *proto_result_name(enum proto_result r);

#endif
