/* The candidates of a server walk and the connection race across them.
 *
 * Every host of every server that serves the user is a candidate, in order: servers in file
 * order, the hosts of a server in list order, the addresses of a host as the resolver gives them
 * with IPv6 and IPv4 alternating (resolve.c). walk_next races them in that order in the spirit
 * of RFC 8305 (net_race: the next candidate starts when the ones in flight have not connected
 * within NET_STAGGER_MS, or at once when one fails) and hands over the first TCP connection
 * established; every other attempt is closed before it returns, so nothing, credentials least
 * of all, is ever sent on a connection that lost. The caller holds at most one connection at a
 * time: credentials go to one server at a time.
 *
 * A host whose connection was handed over has had its turn: it is not raced again, whatever its
 * dialogue gives. A candidate that was still trying when another won was not given up on: when
 * the walk goes on (the winner gave no answer, or refused with on_reject = next), it starts
 * again, in its place in the order, in the next race. Names are resolved when the race first
 * needs their addresses, each within the server's timeout; a lookup stops as soon as an attempt
 * in flight connects or fails, and goes on when the race needs it again (the time it took
 * before counts against the same timeout). */
#ifndef MAILAUTH_WALK_H
#define MAILAUTH_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "resolve.h"

/* A host that will not be connected in this walk: its name did not resolve, or every one of its
 * addresses failed to connect (why holds the last reason). local: some of it failed for a reason
 * of this process, not an answer of the network (see net_race_fail_fn; a lookup that failed other
 * than by "no such name", the walk's own deadline), so it is no evidence that the host is down. */
typedef void (*walk_host_failed_fn)(void *arg, size_t server, size_t endpoint, const char *why,
                                    bool local);

/* resolve_host_watch's signature: unit tests substitute a resolver of their own. */
typedef enum resolve_result (*walk_resolve_fn)(const char *host, unsigned port, int64_t deadline_ms,
                                               const struct pollfd *watch, size_t n_watch,
                                               struct resolve_list *out, struct errbuf *err);

struct walk_params {
    const struct mailauth_config *cfg;
    const char *user; /* the mapped name: servers whose domains do not serve it are left out */
    const struct logger *log;
    walk_host_failed_fn host_failed;
    void *arg;
    walk_resolve_fn resolve; /* NULL: resolve_host_watch */
    int stagger_ms;          /* 0: NET_STAGGER_MS */
};

struct walk;

struct walk_conn {
    size_t server;          /* index into cfg->servers */
    size_t endpoint;        /* index into that server's endpoints */
    struct login_conn conn; /* fd >= 0: connected; the caller closes it if the stream did not
                               take it over */
};

/* NULL when out of memory. p is copied; p->cfg and p->user must outlive the walk. */
struct walk *walk_new(const struct walk_params *p);

/* Hosts in the walk (0: no server serves the user). */
size_t walk_hosts(const struct walk *w);

/* Race the candidates left for the next connection. True with *c filled; false when no
 * candidate is left (each host that failed was reported to host_failed). */
bool walk_next(struct walk *w, struct walk_conn *c);

/* The server refused the credentials: none of its hosts is raced again. */
void walk_skip_server(struct walk *w, size_t server);

/* NULL is fine. */
void walk_free(struct walk *w);

#endif
