/* IMAP (RFC 9051, RFC 3501): LOGIN with quoted strings or literals, AUTHENTICATE PLAIN,
 * STARTTLS, untagged responses tolerated, only the tagged reply decides. */
#ifndef MAILAUTH_IMAP_H
#define MAILAUTH_IMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "proto.h"

#define IMAP_MAX_LITERAL (64 * 1024)

enum imap_kind {
    IMAP_UNTAGGED,     /* "* ..." */
    IMAP_CONTINUATION, /* "+" or "+ ..." */
    IMAP_TAGGED,       /* our tag */
    IMAP_OTHER_TAG,    /* somebody else's tag: never ours to act on */
    IMAP_MALFORMED,
};

enum imap_status {
    IMAP_ST_NONE, /* untagged data ("* CAPABILITY ...", "* 3 EXISTS") */
    IMAP_ST_OK,
    IMAP_ST_NO,
    IMAP_ST_BAD,
    IMAP_ST_BYE,
    IMAP_ST_PREAUTH,
};

struct imap_reply {
    const char *line; /* the whole line parsed */
    size_t line_len;
    enum imap_kind kind;
    enum imap_status status;
    const char *code; /* response code without brackets ("CAPABILITY IMAP4rev1 ..."), or NULL */
    size_t code_len;
    const char *data; /* for untagged data: text after "* "; otherwise text after the status */
    size_t data_len;
    bool has_literal; /* the line ends with {N}: N more bytes follow before the line goes on */
    size_t literal_len;
};

/* Parse one server line (CRLF removed). tag is ours ("A2"). Returns false only when the line is
 * malformed (kind is then IMAP_MALFORMED). Pointers in r point into line. */
bool imap_parse_reply(const char *line, size_t len, const char *tag, struct imap_reply *r);

struct imap_caps {
    bool known;
    bool starttls;
    bool logindisabled;
    bool auth_plain;
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
