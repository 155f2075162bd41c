/* A line-oriented connection to one mail server address: plain TCP or TLS, buffered reading with
 * a hard line limit, one deadline for everything, and a protocol trace for debug logs in which
 * the caller marks what must be redacted. */
#ifndef MAILAUTH_STREAM_H
#define MAILAUTH_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "proto.h"
#include "redact.h"
#include "tls.h"
#include "util.h"

#define STREAM_MAX_LINE 8192
#define STREAM_MAX_COMMAND 4096
#define STREAM_MAX_QUEUED 256

enum stream_result {
    STREAM_OK,
    STREAM_ETIMEOUT,
    STREAM_EEOF,      /* the server closed the connection */
    STREAM_EIO,       /* reset, TLS error after the handshake */
    STREAM_EPROTO,    /* line too long, NUL byte in a line */
    STREAM_ECONNECT,  /* resolve or connect failed */
    STREAM_ETLS,      /* handshake failed (not a certificate problem) */
    STREAM_ECERT,     /* certificate verification failed */
    STREAM_EINVAL,    /* a command held CR/LF/NUL or was too long: nothing was sent */
    STREAM_ESETUP,    /* out of memory, unreadable CA */
    STREAM_EINSECURE, /* credentials refused by the cleartext rule: nothing was sent */
};

/* Which part of a mechanism's credentials a stream_send_credential call carries. */
enum cred_part {
    CRED_FIRST = 1, /* the first piece: progress starts over at CREDS_NONE for a new mechanism */
    CRED_LAST = 2,  /* the last piece: once it is sent, progress is CREDS_ALL */
    CRED_WHOLE = CRED_FIRST | CRED_LAST,
    CRED_MORE = 0, /* a piece in between */
};

/* One connection; its fields are stream.c's own (the accessors below are what the protocols need).
 */
struct stream;

/* Connect to target (every resolved address until one accepts), or take over target->conn, the
 * connection the walk's race established, and, for implicit TLS, run the handshake. deadline_ms
 * bounds the whole dialogue (with target->conn, also the start of its connect + timeout). On
 * STREAM_OK *out must be closed with stream_close(). Returns STREAM_OK, STREAM_ECONNECT,
 * STREAM_ETIMEOUT, STREAM_ETLS, STREAM_ECERT, STREAM_ESETUP. */
enum stream_result stream_open(const struct login_target *target, int64_t deadline_ms,
                               const struct logger *log, struct stream **out, struct errbuf *err);

/* Upgrade a plaintext stream (after STARTTLS/STLS was accepted). Whatever the server sent
 * before the handshake is thrown away first. Same results as stream_open's TLS part. */
enum stream_result stream_start_tls(struct stream *s, struct errbuf *err);

/* Wrap an already connected socket (tests, tools): no TLS, no login outcome. The stream owns
 * fd from then on, also on failure. STREAM_OK or STREAM_ESETUP. */
enum stream_result stream_attach(int fd, const struct login_target *target, int64_t deadline_ms,
                                 const struct logger *log, struct stream **out);

/* Read one line, CRLF (or a bare LF) removed, NUL-terminated in s->line; *len excludes the NUL.
 * The deadline is checked before every read from the connection, not only when one would
 * block: a server that keeps the connection readable is cut off at the deadline all the same.
 * Sets s->line_stale (see stream_line_is_stale).
 * Returns STREAM_OK, STREAM_ETIMEOUT, STREAM_EEOF, STREAM_EIO, STREAM_EPROTO. */
enum stream_result stream_read_line(struct stream *s, const char **line, size_t *len,
                                    struct errbuf *err);

/* True when the line last read began before the last command went out: the server sent it
 * before it could have seen that command, so it is no reply to it. Whether such a line may be
 * read at all (IMAP untagged data) or must be refused (any reply) is the protocol's call. */
bool stream_line_is_stale(const struct stream *s);

/* Without waiting: has the server closed the connection? Reads what already arrived into the
 * buffer (it stays there, unread), so "right after a reply" means "by the time the reply was
 * read": a close still in flight is not seen. */
bool stream_peer_closed(struct stream *s);

/* Skip n bytes of payload (an IMAP literal). Same results as stream_read_line. */
enum stream_result stream_skip(struct stream *s, size_t n, struct errbuf *err);

/* Format one command line, refuse it if it holds CR, LF or NUL or exceeds STREAM_MAX_COMMAND,
 * append CRLF and send it. The trace shows trace_text instead of the line when it is not NULL
 * (pass a redacted form for anything carrying credentials). The formatted copy is wiped.
 * Before anything is sent, whatever the server has already sent is read into the buffer and
 * the fence is moved past it (see stream_line_is_stale); should the server have closed the
 * connection or sent more than the buffer holds, nothing is sent.
 * Returns STREAM_OK, STREAM_EINVAL, STREAM_ETIMEOUT, STREAM_EIO, STREAM_EEOF, STREAM_EPROTO. */
enum stream_result stream_sendf(struct stream *s, struct errbuf *err, const char *trace_text,
                                const char *fmt, ...) MA_PRINTF(4, 5);

/* Queue one command line that carries no credentials (IMAP ID, CAPABILITY) to go out in front of
 * the next command sent, in the same write: pipelined, it costs no round trip. The caller must
 * then read its reply before the next command's (the fence covers both: neither reply can be
 * taken from bytes the server sent before they went out). Only for a protocol whose replies
 * carry tags: untagged (POP3), an extra or late line of its reply would be taken for the next
 * command's. It is queued only when
 * the cleartext rule allows credentials on this connection, as it goes out with the login.
 * Returns STREAM_OK, STREAM_EINVAL (CR/LF/NUL, or the queue is full: nothing queued) or
 * STREAM_EINSECURE. */
enum stream_result stream_queue_line(struct stream *s, struct errbuf *err, const char *fmt, ...)
    MA_PRINTF(3, 4);

/* Send one line carrying credentials (see enum creds_progress), the only way anything derived
 * from the password leaves the client. It first applies the cleartext rule
 * (stream_may_send_credentials): when that forbids it, nothing is sent and STREAM_EINSECURE is
 * returned with err saying why. Progress is recorded in the login outcome: CREDS_PARTIAL as soon
 * as a byte may have left, CREDS_ALL after a CRED_LAST piece was sent whole. The trace shows
 * trace_text: the line as sent with each credential-bearing piece replaced by REDACT_MARK.
 * Before a byte leaves, the credential-bearing bytes are added to the stream's redaction set in
 * exactly the form they take on the wire (escaped, quoted, encoded: whatever the mechanism
 * made of them), so no mechanism registers anything itself: the bytes of the line from the
 * first REDACT_MARK of trace_text to the end of its last, found by matching the text before and
 * after them, or the whole line where trace_text does not match it (redact_add_wire).
 * Otherwise as stream_sendf. */
enum stream_result stream_send_credential(struct stream *s, struct errbuf *err, enum cred_part part,
                                          const char *trace_text, const char *fmt, ...)
    MA_PRINTF(5, 6);

/* stream_send_credential for a command that spans lines (an IMAP LOGIN with LITERAL+
 * literals): the formatted text must hold exactly breaks CRLF pairs, where the lines meet, and
 * no other CR, LF or NUL. The whole command leaves in one write, so no answer can arrive, or be
 * taken for one, between its lines. */
enum stream_result stream_send_credential_lines(struct stream *s, struct errbuf *err,
                                                enum cred_part part, unsigned breaks,
                                                const char *trace_text, const char *fmt, ...)
    MA_PRINTF(6, 7);

/* stream_open for a login: the result as a proto_result, the peer's address copied into o, o
 * armed to record credential progress, and rs (kept, not copied) armed for redaction. */
enum proto_result stream_open_login(const struct login_target *t, struct redact_set *rs,
                                    int64_t deadline_ms, const struct logger *log,
                                    struct stream **out, struct login_outcome *o);

/* Server text for a reason: redact_excerpt with the stream's secrets. */
void stream_excerpt(const struct stream *s, char *dst, size_t cap, const char *src, size_t len);

/* After a failed greeting read: on a plaintext timeout, add a hint about implicit TLS ports. */
void stream_explain_greeting_failure(const struct stream *s, enum stream_result r,
                                     struct errbuf *err);
/* The cleartext rule, for every mechanism and everything credential-derived: it may be sent only
 * over TLS, with allow_cleartext, or to a loopback peer on a privileged port (below the kernel's
 * ip_unprivileged_port_start: policy_loopback_port_privileged). False with err saying why. */
bool stream_may_send_credentials(const struct stream *s, struct errbuf *err);

/* The same rule with its reason either way (mailauth-probe shows it): why says which part of the
 * rule decided, whether it allows ("over TLS", ...) or refuses. */
bool stream_credentials_rule(const struct stream *s, struct errbuf *why);

/* The TLS connection under the stream, NULL while it is plaintext. */
struct tls_conn *stream_tls(const struct stream *s);

/* The peer's address as logs show it ("[::1]:143"). */
const char *stream_address(const struct stream *s);

/* Name the peer for logs (a stream_attach caller that knows better than the socket). */
void stream_set_address(struct stream *s, const char *address);

/* The secrets kept out of traces and excerpts; NULL: none. */
struct redact_set *stream_redact_set(const struct stream *s);

/* Swap the logger (a step whose trace must stay quieter); returns the previous one. */
const struct logger *stream_swap_logger(struct stream *s, const struct logger *log);

/* Arm an attached stream as stream_open_login does: credential progress recorded in o (may be
 * NULL), redaction with rs (kept, not copied; may be NULL). */
void stream_arm_login(struct stream *s, struct login_outcome *o, struct redact_set *rs);

void stream_close(struct stream *s);

/* Map a stream failure to the protocol result it means for a login. */
enum proto_result stream_result_to_proto(enum stream_result r);

#endif
