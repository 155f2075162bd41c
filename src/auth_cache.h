/* The server walk's use of the credential cache: when to consult the store (cache.c), and what a
 * server's answer does to it. Called from mailauth_check (auth.c) at two points: before any
 * network I/O (the ttl hit) and after the walk (store, forget, offline acceptance). */
#ifndef MAILAUTH_AUTH_CACHE_H
#define MAILAUTH_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "cache.h"
#include "mailauth.h"

/* One login's view of the cache; zero-initialise it before anything can jump to the end. */
struct auth_cache {
    struct cache *store; /* NULL: no cache for this login (none configured, or unusable) */
    const struct config_cache *settings;
    const struct logger *log;
    const char *password;
    size_t password_len;
    bool decided; /* the ttl hit answered: the walk did not run, nothing more to do */
};

/* Open the store when the config has an enabled cache section; otherwise touch nothing. */
void auth_cache_begin(struct auth_cache *ac, const struct mailauth_config *cfg, const char *user,
                      const char *password, size_t password_len, const struct logger *log);

/* True when the password matches the user's entry confirmed by a server at most ttl seconds ago:
 * accept without contacting any server (rep->source = cache). A mismatch only counts a failure:
 * the caller asks the servers as usual. */
bool auth_cache_ttl_hit(struct auth_cache *ac, const struct mailauth_config *cfg,
                        struct mailauth_report *rep);

/* After the walk: a server's yes stores the password; a refusal removes an entry it matches; an
 * unavailable result becomes an offline acceptance when no server received the credentials and
 * the entry is within offline_grace. Returns the final result. */
enum mailauth_result auth_cache_after_walk(struct auth_cache *ac, enum mailauth_result res,
                                           struct mailauth_report *rep);

void auth_cache_end(struct auth_cache *ac);

#endif
