/* A server's words for the user (an IMAP [ALERT], RFC 9051 7.1; the text of a POP3 -ERR [AUTH] or
 * [SYS/PERM], RFC 3206: verdict.h), made fit to show on the user's terminal. The text comes from
 * a server and is hostile: it may echo the password, carry terminal escape sequences, control
 * bytes, invalid UTF-8 or endless text. Knows nothing of PAM; the glue shows what this leaves
 * (mailauth_report.alert). */
#ifndef MAILAUTH_ALERT_H
#define MAILAUTH_ALERT_H

#include <stdbool.h>
#include <stddef.h>

#include "redact.h"

/* The longest alert shown, in bytes with the NUL; longer ones are cut at a character and end
 * with "...". */
#define ALERT_MAX PROTO_ALERT_MAX
/* Only the first this many bytes of the server's text are looked at. */
#define ALERT_MAX_INPUT 1024

enum alert_clean_result {
    ALERT_CLEAN,  /* dst holds printable text */
    ALERT_EMPTY,  /* nothing printable was left: dst is "" */
    ALERT_SECRET, /* the text held a secret of rs (see redact.h): dst is "", show nothing */
};

/* Clean server text src[0, len) into dst (cap bytes, always NUL-terminated):
 * 1. a secret of rs (NULL: none) anywhere in the raw text, or one that the cleaning would leave
 *    behind (bytes removed from between its characters), makes the whole text ALERT_SECRET; so
 *    does a broken rs (a secret it could not hold may be in the text), as the log drops it;
 * 2. terminal escape sequences (ESC [ ... final, ESC ] ... BEL or ST, ESC P/X/^/_ ... ST, ESC and
 *    one character), C0 and C1 controls, DEL, invalid or overlong UTF-8, surrogates, and Unicode
 *    format characters that reorder or hide text (bidi controls, zero-width ones, line and
 *    paragraph separators, BOM, noncharacters) are removed; tabs become spaces;
 * 3. runs of spaces become one, leading and trailing spaces go;
 * 4. what is left is cut at a whole character to fit cap (at most ALERT_MAX), with "..." added.
 * The result is valid, printable UTF-8 without a single control byte. */
enum alert_clean_result alert_clean(const struct redact_set *rs, char *dst, size_t cap,
                                    const char *src, size_t len);

#endif
