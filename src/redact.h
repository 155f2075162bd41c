/* Server text on its way into a log line or a reason. A server may echo what it received (some
 * do in their refusals; a hostile one will), so everything derived from the password is removed
 * from the raw bytes first, and only then is the text cut to an excerpt and escaped: cutting or
 * escaping first would hide a UTF-8 password behind '?' or leave a prefix of one behind the cut,
 * and the search for the password would then find nothing to remove. */
#ifndef MAILAUTH_REDACT_H
#define MAILAUTH_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "sasl.h"

#define REDACT_MARK "<redacted>"
/* How much server text a reason quotes: the first REDACT_EXCERPT bytes of the raw text. */
#define REDACT_EXCERPT 120
/* A secret's prefix at the very end of a text (a server that cut its own echo), or its suffix at
 * the very start of one (the rest of an echo the server wrapped onto a new line), is removed when
 * it is at least this long; shorter ones are too common by chance to tell apart. */
#define REDACT_MIN_TAIL 3
/* Anywhere in a text, a run of at least this many bytes that is a piece of a secret is removed
 * (an echo split, wrapped or cut anywhere); shorter pieces are too common by chance. */
#define REDACT_MIN_PIECE 6
/* The most a redact_text call keeps (its limit is lowered to this). */
#define REDACT_MAX_KEEP 4096

struct redact_secret {
    char *text; /* an owned copy, wiped and freed by redact_wipe */
    size_t len;
    bool nocase; /* a hex digest may come back in capitals */
};

/* The secrets of one login. redact_init arms the known transforms of the password (raw, escaped as
 * in an IMAP quoted string, base64 of it, base64 of the SASL PLAIN blob); everything a credential
 * line carries is added in the form it takes on the wire when it is sent (stream_send_credential),
 * so a mechanism needs no slot of its own. No capacity limit but memory: a secret that cannot be
 * held marks the set broken, and a broken set lets no server text through at all. */
struct redact_set {
    struct redact_secret *secrets;
    size_t count, cap;
    bool broken;
};

/* Arm rs with c's password and its base64 forms. c may have no password (nothing is armed). */
void redact_init(struct redact_set *rs, const struct login_creds *c);
/* Add text[0, len) (copied; empty: nothing). False when it could not be held: rs is then
 * broken. */
bool redact_add(struct redact_set *rs, const char *text, size_t len, bool nocase);
/* Add the credential-bearing bytes of one line as they went on the wire (see
 * stream_send_credential): every piece between the CRLFs of a line that spans lines and, for a
 * piece that is a quoted string ("..."), also its inside, which an echo holds whether the server
 * kept the quotes or not. False when something could not be held (rs is then broken). */
bool redact_add_wire(struct redact_set *rs, const char *wire, size_t len);
/* Add an APOP digest (32 hex digits), matched in either case. */
void redact_add_apop_digest(struct redact_set *rs, const char *hex);
/* Wipe and free every secret; rs is empty (and may be armed again) afterwards. */
void redact_wipe(struct redact_set *rs);

/* Copy server text src[0, len) into dst (cap bytes, always NUL-terminated) for a log line:
 * 1. every occurrence of a secret of rs (NULL: none) that starts within the first limit bytes
 *    becomes REDACT_MARK, wherever it ends;
 * 2. a prefix (REDACT_MIN_TAIL bytes or more) of a secret that ends the text (a server that cut
 *    its echo) or that would end what is kept (a cut at limit), and a suffix (as long) of one
 *    that starts the text (the rest of an echo wrapped onto a new line), become REDACT_MARK;
 *    anywhere, so does every run made of pieces of REDACT_MIN_PIECE bytes of a secret;
 * 3. only the first limit bytes of src are kept, then every byte that is not printable ASCII
 *    becomes '?'.
 * Should the escaped result still hold a secret (bytes that became '?' next to others), or rs
 * be broken (a secret it could not hold), the whole excerpt is REDACT_MARK. Returns true when src
 * was longer than what was kept (the caller may add "..."). */
bool redact_text(const struct redact_set *rs, char *dst, size_t cap, const char *src, size_t len,
                 size_t limit);

/* redact_text with limit REDACT_EXCERPT: the form every reason quotes server text in. */
void redact_excerpt(const struct redact_set *rs, char *dst, size_t cap, const char *src,
                    size_t len);

#endif
