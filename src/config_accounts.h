/* The accounts section's checks that tests and tools call directly (config_accounts.c). */
#ifndef MAILAUTH_CONFIG_ACCOUNTS_H
#define MAILAUTH_CONFIG_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>

/* The host files the id range is checked against. */
struct accounts_sysfiles {
    const char *passwd;
    const char *group;
    const char *login_defs;
    const char *subuid;
    const char *subgid;
};

extern const struct accounts_sysfiles accounts_default_sysfiles;

/* 0 when [lo, hi] is a usable uid/gid range: within the accounts' bounds, outside Debian's and
 * systemd's reserved ranges, login.defs' user and subordinate ranges, every /etc/subuid and
 * /etc/subgid range, and every id of /etc/passwd and /etc/group. -1 with the reason in why. */
int config_accounts_check_range(unsigned long lo, unsigned long hi,
                                const struct accounts_sysfiles *sys, char *why, size_t cap);

/* A home template: absolute, %u at least once, otherwise only %d. */
bool config_accounts_template_ok(const char *t);

#endif
