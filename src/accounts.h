/* Accounts for mail users (man/mailauth-accounts.8): the registry's writer and the questions the
 * PAM glue asks. Knows nothing of PAM. Every change happens in a transaction: the lock file
 * REGISTRY.lock held (waited for until a deadline), the registry read fresh, a new file written,
 * flushed and renamed over the old one. */
#ifndef MAILAUTH_ACCOUNTS_H
#define MAILAUTH_ACCOUNTS_H

#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>

#include "accounts_parse.h"
#include "config.h"
#include "log.h"

struct accounts_txn {
    const char *path;
    int lock_fd;
    char *buf; /* the registry as read under the lock ("" when there was none) */
    size_t len;
    struct acct_table table;
};

/* Lock path.lock (polling until deadline_ms, CLOCK_MONOTONIC), check the registry's directory
 * (creating it 0755 when missing) and read the registry. 0, or -1 (logged). */
int accounts_txn_begin(const char *path, int64_t deadline_ms, const struct logger *log,
                       struct accounts_txn *t);
/* Replace the registry by content (write path.tmp, fsync, rename, fsync the directory).
 * 0, or -1 (logged; the old registry stays). */
int accounts_txn_commit(struct accounts_txn *t, const char *content, size_t len,
                        const struct logger *log);
void accounts_txn_end(struct accounts_txn *t);

/* Replace e's line in t->buf by line (the content a commit of one changed entry writes).
 * A malloc'd buffer, or NULL. */
char *accounts_replace_line(const struct accounts_txn *t, const struct acct_entry *e,
                            const char *line, size_t line_len, size_t *out_len);

enum accounts_outcome {
    ACCOUNTS_EXISTED,      /* registered and not removed: nothing written */
    ACCOUNTS_CREATED,      /* registered now (or a removed entry brought back) */
    ACCOUNTS_NOT_ELIGIBLE, /* the name may not become an account (logged) */
    ACCOUNTS_FAILED,       /* it may, but the registry could not be changed (logged) */
};

/* After a server accepted the password of name (mapped: the name the server saw): register it
 * unless it is registered already. *uid gets the account's uid on EXISTED and CREATED. */
enum accounts_outcome accounts_provision(const struct mailauth_config *cfg, const char *name,
                                         const char *mapped, int64_t deadline_ms,
                                         const struct logger *log, uint32_t *uid);

/* Why name can never be an account under this policy (NULL: it can). Safe bytes, and the one
 * form of a mail account's name: no capitals with lowercase, no '@' with append_domain or
 * strip_domain. */
const char *accounts_name_refusal(const struct config_user_policy *p, const char *name);

enum accounts_state_answer {
    ACCOUNTS_UNKNOWN, /* not in the registry, or removed */
    ACCOUNTS_IS_ACTIVE,
    ACCOUNTS_IS_LOCKED,
    ACCOUNTS_UNREADABLE, /* the registry is unsafe or unreadable (logged) */
};

/* The registry's answer for name (no lock: the registry is replaced atomically). */
enum accounts_state_answer accounts_state(const char *path, const char *name,
                                          const struct logger *log);

/* The admin tool's change (accounts_admin.c): set name's state (lock, unlock, remove: a removed
 * entry stays as a tombstone, so its uid is never given to another name). ACCOUNTS_SET_OK,
 * ACCOUNTS_SET_NO_SUCH (no entry of that name; for unlock and lock also a removed one), or
 * ACCOUNTS_SET_FAILED (logged). */
enum accounts_set_result { ACCOUNTS_SET_OK, ACCOUNTS_SET_NO_SUCH, ACCOUNTS_SET_FAILED };
enum accounts_set_result accounts_set_state(const char *path, const char *name,
                                            enum acct_state state, int64_t deadline_ms,
                                            const struct logger *log);

/* True when pw is the NSS module's first-login entry, not an account. */
bool accounts_is_first_login_entry(const struct passwd *pw);

#endif
