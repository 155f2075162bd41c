/* What may be sent at all, and which name the servers see. Knows nothing of PAM or sockets. */
#ifndef MAILAUTH_POLICY_H
#define MAILAUTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "util.h"

#define POLICY_MAX_USER 255
#define POLICY_MAX_PASSWORD 1024

enum policy_result {
    POLICY_OK,
    POLICY_EINVAL,  /* malformed: empty, too long, CR/LF/NUL or other control bytes */
    POLICY_EDENIED, /* a deny_users entry or outside allowed_domains */
};

/* Refuse an empty password, one over POLICY_MAX_PASSWORD bytes, or one holding CR, LF or NUL.
 * len is the real length (a NUL inside shows as len > strlen). */
enum policy_result policy_check_password(const char *password, size_t len, struct errbuf *err);

/* Map the PAM user name to the name the mail servers see. The rules apply in this order:
 * 1. refuse an empty name, one over POLICY_MAX_USER bytes, or one holding control bytes;
 * 2. lowercase (ASCII); 3. strip_domain; 4. append_domain when there is no '@';
 * 5. deny_users (matched against the whole name and its local part, ignoring case);
 * 6. allowed_domains (the domain after the last '@' must be listed).
 * out gets the mapped name (cap >= POLICY_MAX_USER + 1). */
enum policy_result policy_map_user(const struct config_user_policy *p, const char *user, size_t len,
                                   char *out, size_t cap, struct errbuf *err);

/* The loopback exemption of the cleartext rule: a loopback peer gets credentials in clear (tls =
 * none without allow_cleartext) only on a port no ordinary local user can listen on, one below
 * the kernel's net.ipv4.ip_unprivileged_port_start (read from procfs at every check: it may
 * change; 1024, the kernel's default and the rule before the sysctl existed, when the file is
 * absent). On any other port, any local user could listen while the real service is down or
 * before it starts, collect passwords and answer "+OK". *first_unprivileged gets the limit
 * used. */
bool policy_loopback_port_privileged(unsigned port, unsigned *first_unprivileged);

/* The limit from the text of ip_unprivileged_port_start: a decimal 0..65536 and a newline; on
 * anything else 0 (no port is privileged: the exemption never holds). Pure, for tests. */
unsigned policy_parse_port_start(const char *text, size_t len);

/* The domain part of a mapped name (after the last '@'), or NULL. */
const char *policy_user_domain(const char *mapped);

/* True when the server is to be tried for this mapped user: it lists no domains, or the user's
 * domain is one of them (ignoring case). */
int policy_server_serves(const struct config_server *srv, const char *mapped);

#endif
