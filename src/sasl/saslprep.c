/* SASLprep (RFC 4013; RFC 7613 treats passwords the same way for ASCII) for SCRAM's user name and
 * password. For ASCII input every mapping and the normalization (NFKC) are the identity, so the
 * profile comes down to its prohibitions: control characters (C.2.1) are refused. Non-ASCII input
 * needs NFKC and the Unicode tables of RFC 3454; rather than carry them (or hand the password to
 * libidn, which leaves its copies unwiped: README), it is refused, and the plan falls back to a
 * mechanism that sends the password as it is (see mechanisms in pam_mailauth.conf(5)). */
#include "sasl/mech.h"

long sasl_saslprep(const char *in, size_t n, char *out, size_t cap)
{
    if (n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch < 0x20 || ch == 0x7f || ch > 0x7f)
            return -1;
        out[i] = (char)ch;
    }
    out[n] = '\0';
    return (long)n;
}
