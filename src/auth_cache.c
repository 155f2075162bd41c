/* The server walk's use of the credential cache (see auth_cache.h). The rules, from issue 9:
 * - ttl: a match within ttl of the last server-confirmed login answers before any network I/O;
 *   a mismatch is not a refusal (the password may have changed): the servers are asked. Hits do
 *   not extend the ttl (only a server's yes writes the time).
 * - offline_grace: only when the walk ended unavailable AND no attempt sent anything derived from
 *   the password. A server that received it and then went silent, closed or ran out of time may
 *   be delaying a refusal on purpose; accepting then could accept a changed password.
 * - offline_grace, issue 17: and only on the network's word. Every attempt must have failed by an
 *   answer of the network or the peer (refused, unreachable, no such name, the peer's TLS or
 *   protocol failure); one that failed by this process's clock (a deadline) or resources
 *   (descriptors, memory, its own TLS setup) is no evidence (report.local_failure). And never in
 *   a set-id process: its caller (another local user) owns its clock, scheduling and limits and
 *   can stop it, starve it or lower its rlimits until any server looks unavailable.
 * - a refusal of the cached password removes the entry; a refusal of another one is logged and
 *   counts nothing (the ttl check of this login already counted it, if it ran). */
#include "auth_cache.h"

#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "policy.h"

MA_PRINTF(2, 3)
static void append_reason(struct mailauth_report *rep, const char *fmt, ...)
{
    size_t used = strlen(rep->reason);
    va_list ap;

    if (used > 0 && used + 2 < sizeof(rep->reason))
        used += (size_t)snprintf(rep->reason + used, sizeof(rep->reason) - used, "; ");
    if (used >= sizeof(rep->reason))
        return;
    va_start(ap, fmt);
    vsnprintf(rep->reason + used, sizeof(rep->reason) - used, fmt, ap);
    va_end(ap);
}

void auth_cache_begin(struct auth_cache *ac, const struct mailauth_config *cfg, const char *user,
                      const char *password, size_t password_len, const struct logger *log)
{
    struct cache_params params = {
        .dir = cfg->cache.dir,
        .config_id = cfg->identity,
        .hash_cost = cfg->cache.hash_cost,
        .max_failures = cfg->cache.max_failures,
    };

    *ac = (struct auth_cache){
        .settings = &cfg->cache, .log = log, .password = password, .password_len = password_len};
    if (!cfg->cache.enabled)
        return;
    if (password_len > CACHE_MAX_PASSWORD) {
        log_msg(log, LOG_INFO, "cache: user=%s: password longer than %d bytes; cache not used",
                user, CACHE_MAX_PASSWORD);
        return;
    }
    if (cache_open(&params, user, log, &ac->store) != 0)
        ac->store = NULL; /* logged; authentication goes on without the cache */
}

/* The walk would try at least one server for this user (a routing change must not be bypassed by
 * an entry; the config identity already covers edits, this keeps the rule local). */
static bool any_server_serves(const struct mailauth_config *cfg, const char *user)
{
    for (size_t i = 0; i < cfg->n_servers; i++) {
        if (policy_server_serves(&cfg->servers[i], user))
            return true;
    }
    return false;
}

bool auth_cache_ttl_hit(struct auth_cache *ac, const struct mailauth_config *cfg,
                        struct mailauth_report *rep)
{
    struct cache_lookup lk;

    if (ac->store == NULL || ac->settings->ttl_s <= 0 || !any_server_serves(cfg, rep->user))
        return false;
    /* Not strict: a wrong password here only sends the login to the servers, which judge it. */
    cache_check(ac->store, ac->password, ac->password_len, ac->settings->ttl_s, false, &lk);
    switch (lk.verdict) {
    case CACHE_MATCH:
        rep->source = MAILAUTH_SOURCE_CACHE;
        rep->cache_age_s = lk.age_s;
        ac->decided = true;
        return true;
    case CACHE_MISMATCH:
        log_msg(ac->log, LOG_INFO,
                "cache: user=%s: the password differs from the one confirmed %ld s ago "
                "(mismatch %u of %u); asking the servers",
                rep->user, lk.age_s, lk.failures, ac->settings->max_failures);
        break;
    case CACHE_LOCKED:
        log_msg(ac->log, LOG_INFO,
                "cache: user=%s: entry locked after %u mismatches until a server confirms a "
                "login; asking the servers",
                rep->user, lk.failures);
        break;
    case CACHE_NO_ENTRY:
    case CACHE_TOO_OLD:
    case CACHE_UNUSABLE:
        log_debug(ac->log, "cache: user=%s: %s; asking the servers", rep->user,
                  cache_verdict_name(lk.verdict));
        break;
    }
    return false;
}

static void forget_refused(struct auth_cache *ac, const struct mailauth_report *rep)
{
    enum cache_verdict v = cache_forget_if_match(ac->store, ac->password, ac->password_len);

    if (v == CACHE_MATCH)
        log_msg(ac->log, LOG_NOTICE,
                "cache: user=%s: a server refused the cached password; entry removed", rep->user);
    else if (v == CACHE_MISMATCH)
        log_msg(ac->log, LOG_INFO,
                "cache: user=%s: a server refused a password other than the cached one; entry "
                "kept",
                rep->user);
}

/* A process whose caller is not its owner: started set-id (AT_SECURE), or real, effective and
 * saved ids that differ (su, sudo, pkexec's helper). */
static bool caller_controls_process(void)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (getauxval(AT_SECURE) != 0)
        return true;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0)
        return true;
    return ru != eu || ru != su || rg != eg || rg != sg;
}

static enum mailauth_result offline(struct auth_cache *ac, struct mailauth_report *rep)
{
    const struct config_cache *s = ac->settings;
    struct cache_lookup lk;

    if (s->offline_grace_s <= 0)
        return MAILAUTH_UNAVAIL;
    if (rep->creds_sent) {
        append_reason(rep, "offline cache not used: a server received the credentials");
        return MAILAUTH_UNAVAIL;
    }
    if (caller_controls_process()) {
        append_reason(rep, "offline cache not used: set-id process (its caller can stop or starve "
                           "it, or lower its limits, until the servers look unavailable)");
        return MAILAUTH_UNAVAIL;
    }
    if (rep->local_failure || rep->attempts == 0) {
        append_reason(rep, "offline cache not used: an attempt failed for a reason of this "
                           "process (its deadline, memory or descriptors), not the network's");
        return MAILAUTH_UNAVAIL;
    }
    /* Strict: here the cache is the only judge, so max_failures must hold under concurrency. */
    cache_check(ac->store, ac->password, ac->password_len, s->offline_grace_s, true, &lk);
    switch (lk.verdict) {
    case CACHE_MATCH:
        rep->source = MAILAUTH_SOURCE_OFFLINE;
        rep->cache_age_s = lk.age_s;
        return MAILAUTH_OK;
    case CACHE_MISMATCH:
        append_reason(rep, "offline cache: the password does not match (mismatch %u of %u)",
                      lk.failures, s->max_failures);
        break;
    case CACHE_TOO_OLD:
        append_reason(rep, "offline cache: confirmed %ld s ago, beyond offline_grace (%ld s)",
                      lk.age_s, s->offline_grace_s);
        break;
    case CACHE_LOCKED:
        append_reason(rep, "offline cache: entry locked after %u mismatches", lk.failures);
        break;
    case CACHE_NO_ENTRY:
        append_reason(rep, "offline cache: no entry");
        break;
    case CACHE_UNUSABLE:
        append_reason(rep, "offline cache: unusable (see above)");
        break;
    }
    return MAILAUTH_UNAVAIL;
}

enum mailauth_result auth_cache_after_walk(struct auth_cache *ac, enum mailauth_result res,
                                           struct mailauth_report *rep)
{
    if (ac->store == NULL || ac->decided)
        return res;
    switch (res) {
    case MAILAUTH_OK:
        if (cache_store(ac->store, ac->password, ac->password_len) == 0)
            log_debug(ac->log, "cache: user=%s: stored", rep->user);
        return res;
    case MAILAUTH_REJECTED:
        forget_refused(ac, rep);
        return res;
    case MAILAUTH_UNAVAIL:
        return offline(ac, rep);
    case MAILAUTH_BADINPUT:
    case MAILAUTH_DENIED:
        break;
    }
    return res;
}

void auth_cache_end(struct auth_cache *ac)
{
    cache_close(ac->store);
    ac->store = NULL;
}
