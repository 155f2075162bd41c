/* The core's entry point: check a user's password against the configured mail servers.
 * Knows nothing of PAM; the PAM glue maps the result. */
#ifndef MAILAUTH_H
#define MAILAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "proto.h"

enum mailauth_result {
    MAILAUTH_OK,       /* a server accepted the credentials */
    MAILAUTH_REJECTED, /* a server was reached and refused them, none accepted */
    MAILAUTH_UNAVAIL,  /* no server gave an answer */
    MAILAUTH_BADINPUT, /* malformed user name or password: nothing was sent */
    MAILAUTH_DENIED,   /* deny_users/allowed_domains, or no server serves the user's domain */
};

/* Who gave the answer (credential cache: auth_cache.c). */
enum mailauth_source {
    MAILAUTH_SOURCE_SERVER,  /* a server, or nobody */
    MAILAUTH_SOURCE_CACHE,   /* the cache within ttl: no server was contacted */
    MAILAUTH_SOURCE_OFFLINE, /* no server received the password; the cached entry matched */
};

struct mailauth_report {
    char user[256]; /* the mapped name the servers saw */
    char label[64]; /* the server that decided, or the last one tried */
    char address[80];
    char reason[512]; /* plain words; never contains the password */
    long elapsed_ms;
    unsigned attempts; /* server addresses contacted */
    bool creds_sent;   /* some attempt sent anything derived from the password */
    /* Some attempt failed for a reason of this process (login_outcome.local_failure), or none
     * was made: the unavailability is not the network's word alone. */
    bool local_failure;
    enum mailauth_source source;
    long cache_age_s; /* source cache/offline: seconds since a server confirmed the password */
    /* The login method of the deciding attempt ("LOGIN", "AUTH SCRAM-SHA-256"; "" when no
     * server decided) and whether that server proved it knows the password (SCRAM v=). */
    char mechanism[PROTO_MECH_NAME_MAX];
    enum server_proof proof;
    /* Accepted after other methods failed for the same password (login_outcome.fallback_from:
     * APOP refused then USER/PASS; a SASL mechanism advertised but not run for this user, then
     * a later one): which, what they cost in ms, and what to configure to save that ("" / 0 /
     * NULL otherwise). Logged at LOG_NOTICE by the walk; a probe tool prints it from here. */
    char fallback_from[PROTO_FALLBACK_MAX];
    long fallback_wasted_ms;
    const char *fallback_advice;
    /* What a server asked to be shown to the user (an IMAP [ALERT], POP3 [AUTH] or [SYS/PERM]
     * text: verdict_pop3_user_text), received over TLS and cleaned (alert.h: printable UTF-8,
     * no secret, cut); "" when none. An alert received in clear is logged and never lands here.
     * The last attempt that sent one wins. */
    char alert[PROTO_ALERT_MAX];
};

/* What the caller knows of the end user besides the credentials. */
struct mailauth_client {
    const char *rhost; /* the remote host (PAM_RHOST), or NULL; forwarded only if numeric */
};

/* password_len is the real length (NUL bytes inside are refused). client may be NULL. */
enum mailauth_result mailauth_check_client(const struct mailauth_config *cfg, const char *user,
                                           size_t user_len, const char *password,
                                           size_t password_len,
                                           const struct mailauth_client *client,
                                           const struct logger *log,
                                           struct mailauth_report *report);

/* mailauth_check_client without anything known of the end user. */
enum mailauth_result mailauth_check(const struct mailauth_config *cfg, const char *user,
                                    size_t user_len, const char *password, size_t password_len,
                                    const struct logger *log, struct mailauth_report *report);

/* The login target the walk uses for endpoint ep of server srv (trust anchors, timeouts,
 * cleartext and APOP settings), for tools that must see a server as the walk does. */
void mailauth_login_target(const struct mailauth_config *cfg, const struct config_server *srv,
                           const struct config_endpoint *ep, struct login_target *t);

const char *mailauth_result_name(enum mailauth_result r);
const char *mailauth_source_name(enum mailauth_source s);

#endif
