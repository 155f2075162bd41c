/* Sockets with deadlines: every wait is a poll() bounded by an absolute CLOCK_MONOTONIC deadline.
 * Sockets are non-blocking and close-on-exec; sends use MSG_NOSIGNAL so a peer reset never
 * raises SIGPIPE in the host process. */
#ifndef MAILAUTH_NET_H
#define MAILAUTH_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "util.h"

enum net_result {
    NET_OK,
    NET_ERESOLVE, /* the name did not resolve */
    NET_ECONNECT, /* no address accepted the connection */
    NET_ETIMEOUT, /* the deadline passed */
    NET_EIO,      /* send/recv failed (reset, ...) */
    NET_EEOF,     /* the peer closed the connection */
};

/* Resolve host and connect to each address in turn (IPv6 and IPv4, resolver order) until one
 * accepts. Each address gets connect_timeout_ms, and none may run past deadline_ms.
 * On NET_OK *fd_out is a connected non-blocking socket and addr (cap bytes) names the peer.
 * Returns NET_OK, NET_ERESOLVE, NET_ECONNECT or NET_ETIMEOUT; err says why. */
enum net_result net_connect(const char *host, unsigned port, int connect_timeout_ms,
                            int64_t deadline_ms, const struct logger *log, int *fd_out, char *addr,
                            size_t addr_cap, struct errbuf *err);

/* Wait until fd is ready for events (POLLIN/POLLOUT). NET_OK, NET_ETIMEOUT or NET_EIO. */
enum net_result net_wait(int fd, short events, int64_t deadline_ms);

/* Send all of buf. NET_OK, NET_ETIMEOUT or NET_EIO. */
enum net_result net_send_all(int fd, const void *buf, size_t len, int64_t deadline_ms);

/* Receive what is available (at least one byte). NET_OK, NET_EEOF, NET_ETIMEOUT or NET_EIO. */
enum net_result net_recv_some(int fd, void *buf, size_t cap, size_t *got, int64_t deadline_ms);

/* True when the socket's peer is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
bool net_peer_is_loopback(int fd);

/* True when host is a literal IPv4 or IPv6 address. */
bool net_host_is_ip_literal(const char *host);

const char *net_result_name(enum net_result r);

#endif
