/* Name resolution under a deadline: a literal IPv4/IPv6 address never touches DNS; a name is
 * resolved with c-ares, polled here, and abandoned at the caller's deadline (resolve.c says why
 * c-ares and not getaddrinfo or getaddrinfo_a). */
#ifndef MAILAUTH_RESOLVE_H
#define MAILAUTH_RESOLVE_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util.h"

/* More addresses than this for one host are dropped (logged by the caller as it sees fit). */
#define RESOLVE_MAX_ADDRS 16

enum resolve_result {
    RESOLVE_OK,
    RESOLVE_ENOTFOUND, /* the name does not exist or has no address */
    RESOLVE_ETIMEOUT,  /* no answer before the deadline (a dead or unreachable nameserver) */
    RESOLVE_EFAIL,     /* the resolver could not run: no memory, unreadable resolv.conf, ... */
    RESOLVE_EWATCHED,  /* resolve_host_watch: a watched descriptor became ready first */
};

/* Descriptors resolve_host_watch watches at most (more are ignored). */
#define RESOLVE_MAX_WATCH 16

struct resolve_addr {
    struct sockaddr_storage sa;
    socklen_t len;
};

/* Addresses in connection order, no duplicates. */
struct resolve_list {
    size_t n;
    struct resolve_addr addrs[RESOLVE_MAX_ADDRS];
};

/* Resolve host for TCP port. Order: the resolver's own (RFC 6724 destination address
 * selection), then the two families interleaved starting with the first one (RFC 8305 section
 * 4), so that a staggered connect alternates IPv6 and IPv4. No wait runs past deadline_ms.
 * Returns RESOLVE_OK (out->n >= 1), RESOLVE_ENOTFOUND, RESOLVE_ETIMEOUT or RESOLVE_EFAIL; err
 * says why ("cannot resolve HOST: ..."). */
enum resolve_result resolve_host(const char *host, unsigned port, int64_t deadline_ms,
                                 struct resolve_list *out, struct errbuf *err);

/* resolve_host that also stops, with RESOLVE_EWATCHED and nothing resolved, as soon as one of
 * watch (n_watch pollfds, events set by the caller) is ready: a connection race stops a lookup
 * when one of its attempts in flight connects or fails. A literal never waits. */
enum resolve_result resolve_host_watch(const char *host, unsigned port, int64_t deadline_ms,
                                       const struct pollfd *watch, size_t n_watch,
                                       struct resolve_list *out, struct errbuf *err);

/* Put the addresses of list in RFC 8305 order: the first address's family, then alternate. */
void resolve_interleave(struct resolve_list *list);

const char *resolve_result_name(enum resolve_result r);

#endif
