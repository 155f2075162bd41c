/* The per-address diagnosis behind mailauth-probe: for one configured host/port, resolve the
 * name and, for every address the walk could connect to, connect, read the greeting, ask for
 * capabilities before and after TLS, and judge whether a login would send the password and with
 * which mechanism. Never sends anything derived from a password. Uses the login path's own
 * pieces (stream, tls, the reply readers, the cleartext rule, the mechanism choice) so it
 * cannot disagree with it. */
#ifndef MAILAUTH_PROBE_H
#define MAILAUTH_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "plan.h"
#include "proto.h"
#include "tls.h"

/* The stages of a dialogue, in the order --stop-after and the exit codes name them. */
enum probe_stage {
    PROBE_STAGE_NONE, /* nothing failed / no stop requested */
    PROBE_STAGE_RESOLVE,
    PROBE_STAGE_CONNECT,
    PROBE_STAGE_GREETING,
    PROBE_STAGE_TLS,
    PROBE_STAGE_CAPABILITIES,
    PROBE_STAGE_CREDENTIALS, /* a login would send nothing: cleartext rule, no mechanism */
};

#define PROBE_TEXT_MAX 1024

/* Raw server text (untrusted bytes; whoever prints it escapes it). */
struct probe_text {
    char text[PROBE_TEXT_MAX];
    size_t len;
    bool seen;
};

struct probe_address {
    struct login_target target;
    char address[80];  /* "[::1]:143"; "host:port" when resolution failed */
    long resolve_ms;   /* -1: not done */
    unsigned resolved; /* addresses the name resolved to */
    long connect_ms;   /* -1: not done */
    struct probe_text greeting;
    struct probe_text caps_before_tls; /* tls = starttls and none */
    struct probe_text caps_after_tls;  /* tls = starttls and implicit */
    bool tls_done;
    struct tls_peer_info tls;
    /* The certificate failed verification: tls was filled from a second handshake without
     * verification, for display only, and says why the first one failed. */
    bool tls_second_look;
    bool credentials_checked;
    bool credentials_allowed; /* the cleartext rule's answer for this connection */
    char credentials_reason[256];
    /* The login's plan for what the server offers (plan.h), when the probe got that far. */
    bool plan_known;
    struct login_plan plan;
    char offered[256];     /* the login methods the server offers, in the plan's names */
    const char *mechanism; /* the plan's first entry, "none"; NULL: not determined */
    bool forwarding_known;
    bool forwarding; /* IMAP ID / POP3 XCLIENT offered */
    enum probe_stage failed;
    enum probe_stage stopped_after; /* NONE: ran to the end */
    char verdict[512];              /* "ready", or what is wrong in plain words */
};

struct probe_options {
    enum probe_stage stop_after; /* NONE: run every stage */
    const char *user;            /* NULL: no user (APOP's "no space in the name" is assumed) */
};

typedef void (*probe_report_fn)(void *ctx, const struct probe_address *pa);

/* Diagnose every address of endpoint ep of server srv and report each one. Returns the failed
 * stage of the first address that is not ready, or PROBE_STAGE_NONE. */
enum probe_stage probe_endpoint(const struct mailauth_config *cfg, const struct config_server *srv,
                                const struct config_endpoint *ep, const struct probe_options *opt,
                                const struct logger *log, probe_report_fn report, void *ctx);

const char *probe_stage_name(enum probe_stage s);

#endif
