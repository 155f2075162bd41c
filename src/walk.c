/* The candidates of a server walk and the race across them (see walk.h for the rules).
 *
 * Why the race decides on the TCP connect only, also for implicit TLS: the race exists to hide
 * a candidate that does not answer at all (a dead host, a black hole, an address family that
 * does not route). A server that accepted the connection is alive and has its turn; its TLS
 * handshake and greeting belong to its dialogue, bounded by its timeout like the rest of it
 * (a server that accepts TCP and never finishes the handshake costs at most that timeout, then
 * the walk goes on). Racing handshakes as well would run TLS with servers that are then dropped
 * (CPU, and several half-open sessions at once), and it would let anyone who can slow a
 * server's handshake by a quarter of a second hand the decision to the next server in the
 * list. Connected-but-slow is never bypassed, which keeps "who judges" predictable: the first
 * server in order that connects at all. */
#include "walk.h"

#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "policy.h"

enum cand_state {
    CAND_PENDING, /* not started, or abandoned when another won: the next race starts it */
    CAND_RACING,  /* queued in the current race */
    CAND_FAILED,  /* refused, unreachable or timed out: never tried again in this walk */
};

struct walk_host {
    size_t server, endpoint;
    int64_t resolve_spent_ms; /* time its lookup has taken so far (it may be interrupted) */
    bool resolved;            /* addrs holds the host's addresses */
    bool done;                /* handed over once, failed, or its server was skipped */
    size_t n_failed;
    bool local; /* one of its failures was local (net_race_fail_fn) */
    struct resolve_list addrs;
    unsigned char state[RESOLVE_MAX_ADDRS];
    struct errbuf last; /* why the last of its addresses failed */
};

struct walk {
    struct walk_params p;
    size_t n_hosts;
    size_t n_resolved; /* hosts [0, n_resolved) went through resolution (or were skipped) */
    struct net_race *race;
    struct errbuf race_failure; /* why the last race gave up (NET_ETIMEOUT) */
    struct walk_host hosts[];
};

/* Tags name a candidate: its host's index and its address's index in that host. */
static unsigned tag_of(size_t host, size_t addr)
{
    return (unsigned)(host * RESOLVE_MAX_ADDRS + addr);
}

static size_t count_hosts(const struct walk_params *p)
{
    size_t n = 0;

    for (size_t i = 0; i < p->cfg->n_servers; i++) {
        if (policy_server_serves(&p->cfg->servers[i], p->user))
            n += p->cfg->servers[i].n_endpoints;
    }
    return n;
}

struct walk *walk_new(const struct walk_params *p)
{
    size_t n = count_hosts(p);
    struct walk *w = calloc(1, sizeof(*w) + n * sizeof(w->hosts[0]));
    size_t k = 0;

    if (w == NULL)
        return NULL;
    w->p = *p;
    if (w->p.resolve == NULL)
        w->p.resolve = resolve_host_watch;
    if (w->p.stagger_ms <= 0)
        w->p.stagger_ms = NET_STAGGER_MS;
    w->n_hosts = n;
    for (size_t i = 0; i < p->cfg->n_servers; i++) {
        if (!policy_server_serves(&p->cfg->servers[i], p->user))
            continue;
        for (size_t j = 0; j < p->cfg->servers[i].n_endpoints; j++) {
            w->hosts[k].server = i;
            w->hosts[k].endpoint = j;
            k++;
        }
    }
    return w;
}

size_t walk_hosts(const struct walk *w)
{
    return w->n_hosts;
}

static const struct config_endpoint *endpoint_of(const struct walk *w, const struct walk_host *h)
{
    return &w->p.cfg->servers[h->server].endpoints[h->endpoint];
}

static void host_failed(struct walk *w, struct walk_host *h, const char *why, bool local)
{
    h->done = true;
    h->local |= local;
    if (w->p.host_failed != NULL)
        w->p.host_failed(w->p.arg, h->server, h->endpoint, why, h->local);
}

/* net_race's fail hook: one address failed for good. */
static void on_attempt_failed(void *arg, unsigned tag, const char *addr, const char *why,
                              bool local)
{
    struct walk *w = arg;
    struct walk_host *h = &w->hosts[tag / RESOLVE_MAX_ADDRS];
    size_t a = tag % RESOLVE_MAX_ADDRS;

    if (h->state[a] == CAND_FAILED)
        return;
    h->state[a] = CAND_FAILED;
    h->n_failed++;
    h->local |= local;
    errbuf_set(&h->last, "connect to %s: %s", addr, why);
    if (h->n_failed == h->addrs.n && !h->done)
        host_failed(w, h, h->last.text, h->local);
}

/* Queue the host's pending addresses. Returns how many were queued; stops when the race is
 * full (the rest stay pending for the next race). */
static size_t queue_host(struct walk *w, size_t hi)
{
    struct walk_host *h = &w->hosts[hi];
    size_t queued = 0;

    for (size_t a = 0; a < h->addrs.n; a++) {
        if (h->state[a] != CAND_PENDING)
            continue;
        if (!net_race_add(w->race, (const struct sockaddr *)&h->addrs.addrs[a].sa,
                          h->addrs.addrs[a].len, w->p.cfg->connect_timeout_ms, tag_of(hi, a)))
            break;
        h->state[a] = CAND_RACING;
        queued++;
    }
    return queued;
}

/* Resolve host hi; its lookups together take at most the server's timeout. RESOLVE_EWATCHED
 * when an attempt in flight connected or failed first (try again later), RESOLVE_OK, or a
 * failure (reported). */
static enum resolve_result resolve_one(struct walk *w, size_t hi)
{
    struct walk_host *h = &w->hosts[hi];
    const struct config_endpoint *ep = endpoint_of(w, h);
    struct errbuf err = {{0}};
    struct pollfd watch[NET_RACE_MAX_LIVE];
    size_t n_watch = net_race_live_fds(w->race, watch, MA_ARRAY_LEN(watch));
    int64_t start = clock_now_ms();
    enum resolve_result r;

    /* Counting only the time spent resolving: a lookup put aside while a dialogue ran must not
     * find its time used up when it is resumed. */
    r = w->p.resolve(ep->host, ep->port, start + w->p.cfg->timeout_ms - h->resolve_spent_ms, watch,
                     n_watch, &h->addrs, &err);
    h->resolve_spent_ms += clock_now_ms() - start;
    if (r == RESOLVE_EWATCHED) {
        log_debug(w->p.log, "resolving %s: paused, an attempt in flight is ready", ep->host);
        return r;
    }
    if (r != RESOLVE_OK || h->addrs.n == 0) {
        if (err.text[0] == '\0')
            errbuf_set(&err, "cannot resolve %s: %s", ep->host, resolve_result_name(r));
        log_debug(w->p.log, "%s", err.text);
        h->addrs.n = 0;
        /* Only "no such name" is the DNS's answer; a lookup out of time or that could not run
         * is this process's clock or resources. */
        host_failed(w, h, err.text, r != RESOLVE_ENOTFOUND && r != RESOLVE_OK);
        return r == RESOLVE_OK ? RESOLVE_ENOTFOUND : r;
    }
    resolve_interleave(&h->addrs); /* idempotent; a substituted resolver may not have done it */
    h->resolved = true;
    return RESOLVE_OK;
}

/* net_race's feeder: the race wants another candidate and its queue is empty. Resolve the
 * next hosts in order until one gives the race something to start. A lookup that an attempt in
 * flight interrupted is resumed at the next call (net_race_feed_later). */
static void feed(void *arg, struct net_race *race)
{
    struct walk *w = arg;

    while (w->n_resolved < w->n_hosts) {
        size_t hi = w->n_resolved;
        enum resolve_result r = RESOLVE_OK;

        if (!w->hosts[hi].done)
            r = resolve_one(w, hi);
        if (r == RESOLVE_EWATCHED) {
            net_race_feed_later(race);
            return;
        }
        w->n_resolved++;
        if (r == RESOLVE_OK && !w->hosts[hi].done && queue_host(w, hi) > 0)
            return;
    }
}

/* Something is left to race: a pending address of a resolved host, or a host not resolved. */
static bool anything_left(const struct walk *w)
{
    for (size_t hi = 0; hi < w->n_resolved; hi++) {
        const struct walk_host *h = &w->hosts[hi];
        if (h->done || !h->resolved)
            continue;
        for (size_t a = 0; a < h->addrs.n; a++) {
            if (h->state[a] == CAND_PENDING)
                return true;
        }
    }
    for (size_t hi = w->n_resolved; hi < w->n_hosts; hi++) {
        if (!w->hosts[hi].done)
            return true;
    }
    return false;
}

/* After a race: what was queued and neither failed nor won goes back to pending. With
 * give_up (the race ran out of time) it fails instead. */
static void settle(struct walk *w, bool give_up, const char *why)
{
    for (size_t hi = 0; hi < w->n_resolved; hi++) {
        struct walk_host *h = &w->hosts[hi];
        for (size_t a = 0; a < h->addrs.n; a++) {
            if (h->state[a] != CAND_RACING)
                continue;
            h->state[a] = give_up ? CAND_FAILED : CAND_PENDING;
            h->n_failed += give_up;
        }
        if (give_up && !h->done && h->resolved && h->n_failed == h->addrs.n)
            host_failed(w, h, why, true); /* the walk's deadline, not the network */
    }
}

/* A backstop only: every attempt has its connect_timeout and every resolution the timeout, so
 * a race ends long before this (see the bound in pam_mailauth.conf(5)). */
static int64_t race_deadline(const struct walk *w)
{
    const struct mailauth_config *cfg = w->p.cfg;
    int64_t per_host = (int64_t)cfg->timeout_ms + cfg->connect_timeout_ms +
                       (int64_t)RESOLVE_MAX_ADDRS * w->p.stagger_ms;

    return clock_now_ms() + per_host * (int64_t)(w->n_hosts + 1);
}

/* One race over what is left. NET_OK with *c filled, NET_ECONNECT when every candidate failed,
 * NET_ETIMEOUT at the backstop. */
static enum net_result race_once(struct walk *w, struct walk_conn *c)
{
    struct net_race_winner win = {.fd = -1};
    struct errbuf err = {{0}};
    enum net_result nr;

    w->race = net_race_new(w->p.stagger_ms, feed, w, w->p.log);
    if (w->race == NULL) {
        errbuf_set(&w->race_failure, "out of memory");
        return NET_ETIMEOUT; /* give up as at the backstop */
    }
    net_race_on_fail(w->race, on_attempt_failed, w);
    for (size_t hi = 0; hi < w->n_resolved; hi++) {
        if (!w->hosts[hi].done && w->hosts[hi].resolved)
            queue_host(w, hi);
    }
    nr = net_race_run(w->race, race_deadline(w), &win, &err);
    /* Before anything is sent on the winner: every other attempt is closed here. */
    net_race_free(w->race);
    w->race = NULL;
    if (nr == NET_OK) {
        struct walk_host *h = &w->hosts[win.tag / RESOLVE_MAX_ADDRS];
        h->done = true; /* its turn: whatever the dialogue gives, it is not raced again */
        c->server = h->server;
        c->endpoint = h->endpoint;
        c->conn.fd = win.fd;
        c->conn.started_ms = win.started_ms;
        memcpy(c->conn.address, win.addr, sizeof(c->conn.address));
    }
    errbuf_set(&w->race_failure, "%s", err.text[0] != '\0' ? err.text : "out of time");
    settle(w, nr == NET_ETIMEOUT, w->race_failure.text);
    return nr;
}

/* The walk cannot go on (out of memory, or the backstop): every host left fails. */
static void give_up_rest(struct walk *w, const char *why)
{
    for (size_t hi = 0; hi < w->n_hosts; hi++) {
        if (!w->hosts[hi].done)
            host_failed(w, &w->hosts[hi], why, true);
    }
}

bool walk_next(struct walk *w, struct walk_conn *c)
{
    c->conn.fd = -1;
    while (anything_left(w)) {
        enum net_result nr = race_once(w, c);
        if (nr == NET_OK)
            return true;
        if (nr == NET_ETIMEOUT) {
            give_up_rest(w, w->race_failure.text);
            return false;
        }
    }
    return false;
}

void walk_skip_server(struct walk *w, size_t server)
{
    for (size_t hi = 0; hi < w->n_hosts; hi++) {
        if (w->hosts[hi].server == server)
            w->hosts[hi].done = true;
    }
}

void walk_free(struct walk *w)
{
    if (w == NULL)
        return;
    net_race_free(w->race);
    free(w);
}
