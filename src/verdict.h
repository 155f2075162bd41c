/* What a server's negative reply to a login step means, across implementations (Dovecot, Cyrus,
 * Courier): a verdict on these credentials, or not. The one place that decides it; pop3.c and
 * imap.c hand it the reply, it hands back the class. There is no class for success: only the
 * protocol layers' proto_accept() can say yes.
 *
 * The rule (also in pam_mailauth.conf(5), OUTCOMES), first match wins:
 *  1. IMAP BAD (or anything that is not a negative reply): the command was not understood.
 *  2. A refusal code, IMAP [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED], [EXPIRED],
 *     [CONTACTADMIN]: refused, whatever else the reply says.
 *  3. A "try later" code, POP3 [SYS/...], [IN-USE], [LOGIN-DELAY]; IMAP [UNAVAILABLE],
 *     [SERVERBUG], [INUSE], [LIMIT]: temporary.
 *  4. IMAP [PRIVACYREQUIRED]: not checked (the server wants TLS first).
 *  5. The text after the code is, whole (ignoring case and surrounding spaces), a server's fixed
 *     words for a temporary failure: temporary. Courier POP3 and IMAP BYE: "Temporary problem,
 *     please try again later".
 *  6. The text after the code is, whole, a server's fixed words for "the password was not looked
 *     at for how we came": not checked. Courier POP3: "-ERR TLS required to log in.", Cyrus:
 *     "-ERR [AUTH] USER command only available under a layer" (Cyrus tags policy with [AUTH]
 *     too, so POP3 [AUTH] alone decides nothing), "NO Login only available under a layer",
 *     Dovecot POP3: "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS)
 *     connections.".
 *     Never a search inside the text (issue 17): it may echo the user name or carry an
 *     administrator's refusal reason ("Account temporarily suspended"), which must not turn a
 *     refusal into "unavailable" and pass on_reject = stop.
 *  7. IMAP BYE instead of the tagged reply: not answered (the server hung up). imap.c never
 *     lets a BYE that came before the whole credentials went out refuse them.
 *  8. The server closed the connection right after the reply, before the credentials were sent:
 *     not answered.
 *  9. Anything else is a refusal ("NO Login failed.", "-ERR [AUTH] Invalid login"). After the
 *     password was sent an ambiguous reply stays a refusal even when the connection closes right
 *     after it: "unavailable" would be the answer that helps an attacker (PAM stacks that fall
 *     through on it, and the cache's offline grace, which verdict.c does not rely on: it refuses
 *     whenever credentials were sent). */
#ifndef MAILAUTH_VERDICT_H
#define MAILAUTH_VERDICT_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "util.h"

enum verdict {
    VERDICT_REFUSED,        /* the server's verdict on these credentials: PROTO_EAUTHFAIL */
    VERDICT_TEMPORARY,      /* the server says "try later": PROTO_ETEMP */
    VERDICT_NOT_CHECKED,    /* refused before looking at the password (TLS required, no such
                               command without a layer): PROTO_EINSECURE */
    VERDICT_NOT_ANSWERED,   /* the server hung up instead of answering: PROTO_ETEMP */
    VERDICT_NOT_UNDERSTOOD, /* IMAP BAD, or not a negative reply at all: PROTO_EPROTO */
};

/* Classify one reply line (CRLF removed): POP3 "-ERR ...", IMAP "TAG NO ...", "TAG BAD ..." or
 * "* BYE ...". closed_after: the server closed the connection right after it. creds_sent: every
 * byte of the credentials of this step went out (the reply answers the password). Pure: no I/O,
 * no state, any bytes. */
enum verdict verdict_classify(enum mail_protocol protocol, const char *reply, size_t len,
                              bool closed_after, bool creds_sent);

/* The protocol result a class stands for; never PROTO_OK. */
enum proto_result verdict_to_proto(enum verdict v);

const char *verdict_name(enum verdict v);

/* RFC 3206: the part of a POP3 "-ERR [CODE] text" reply (CRLF removed) that is meant for the
 * user, as an IMAP [ALERT] is: the text after [SYS/PERM] (a failure unlikely to go away without
 * an administrator, which RFC 3206 says it is appropriate to alert the user to) in any reply, or
 * after [AUTH] (a problem with the credentials or the account: "Application-specific password
 * required: <URL>", "Web login required") only when the reply answers the whole credentials
 * (creds_sent): before them it would describe an account to whoever types its name. Never the
 * text of [SYS/TEMP] (RFC 3206: no need to alarm the user; the module says "unavailable"),
 * [IN-USE], [LOGIN-DELAY], other codes or none. True with *code ("AUTH" or "SYS/PERM") and the
 * text (raw server bytes, for alert_clean); false when there is none or it is empty. Pure. */
bool verdict_pop3_user_text(const char *reply, size_t len, bool creds_sent, const char **code,
                            const char **text, size_t *text_len);

/* The reason for a log line: what names the step ("PASS", "LOGIN"), excerpt is the server's
 * text already cleaned for logging (stream_excerpt). */
void verdict_describe(enum verdict v, const char *what, const char *excerpt, bool closed_after,
                      struct errbuf *reason);

#endif
