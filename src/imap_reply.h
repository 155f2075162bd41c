/* Reading IMAP replies (RFC 9051): the parser of one line, and the reader a login and the probe
 * both use to wait for a tagged reply: untagged data on the way (within a budget), literals
 * skipped, and a reply that began before its command went out never taken for its answer. */
#ifndef MAILAUTH_IMAP_REPLY_H
#define MAILAUTH_IMAP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "stream.h"

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

/* What the reader does with untagged data besides skipping its literals: called for each
 * untagged line, before its literals are read (r points into the stream's line buffer). */
typedef void (*imap_untagged_fn)(void *ctx, const struct imap_reply *r);

/* Read until something other than untagged data arrives: a continuation (when want_cont) or the
 * tagged reply to tag, sent after the command went out. Untagged data goes to untagged (may be
 * NULL), within a budget of lines and literals. PROTO_OK with *r; PROTO_EPROTO with reason for a
 * reply that is stale (stream_line_is_stale), unexpected or over the budget; a stream failure as
 * its proto_result, with *failure set to it (STREAM_OK otherwise) so a caller can tell a close
 * after BYE from other failures. what names the command in reasons. */
enum proto_result imap_read_tagged(struct stream *s, const char *tag, const char *what,
                                   bool want_cont, imap_untagged_fn untagged, void *ctx,
                                   struct imap_reply *r, enum stream_result *failure,
                                   struct errbuf *reason);

#endif
