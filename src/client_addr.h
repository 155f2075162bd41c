/* The end user's address, as the mail servers may be told it (IMAP ID x-originating-ip, POP3
 * XCLIENT ADDR): only a numeric IPv4 or IPv6 address, never a name. Knows nothing of PAM. */
#ifndef MAILAUTH_CLIENT_ADDR_H
#define MAILAUTH_CLIENT_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* INET6_ADDRSTRLEN */
#define CLIENT_ADDR_MAX 46

/* When rhost (PAM_RHOST) is a numeric IPv4 or IPv6 address, write its canonical text
 * (inet_ntop of what inet_pton read: digits, '.', ':' and hex letters only, nothing that needs
 * quoting in IMAP or XCLIENT) into out and return true. A name, a scoped IPv6 address
 * ("fe80::1%eth0"), a bracketed or port-suffixed form, an empty or NULL rhost: false, out "". */
bool client_addr_from_rhost(const char *rhost, char out[CLIENT_ADDR_MAX]);

#endif
