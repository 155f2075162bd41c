/* Sockets with deadlines: every wait is a poll() bounded by an absolute CLOCK_MONOTONIC deadline.
 * Sockets are non-blocking and close-on-exec; sends use MSG_NOSIGNAL so a peer reset never
 * raises SIGPIPE in the host process. Connects are staggered in the spirit of RFC 8305 (Happy
 * Eyeballs): see net_race below. */
#ifndef MAILAUTH_NET_H
#define MAILAUTH_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <poll.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

/* How long an attempt may go unanswered before the next candidate starts (RFC 8305's
 * "Connection Attempt Delay", 250 ms recommended). */
#define NET_STAGGER_MS 250
/* Candidates one race can hold (all addresses of all hosts a walk may feed it). */
#define NET_RACE_MAX 64
/* Attempts in flight at once: when this many are still trying, the next candidate waits until
 * one of them connects or fails, however long the stagger has passed. */
#define NET_RACE_MAX_LIVE 8

enum net_result {
    NET_OK,
    NET_ERESOLVE, /* the name did not resolve */
    NET_ECONNECT, /* no address accepted the connection */
    NET_ETIMEOUT, /* the deadline passed */
    NET_EIO,      /* send/recv failed (reset, ...) */
    NET_EEOF,     /* the peer closed the connection */
    NET_ELOCAL,   /* this process could not try: out of descriptors or memory, or its own
                     deadline cut the connects short (no evidence about the server) */
};

/* Resolve host (resolve.c: a literal skips DNS, a name must resolve before deadline_ms) and race
 * its addresses (net_race, NET_STAGGER_MS apart, IPv6 and IPv4 alternating). Each address gets
 * connect_timeout_ms, and none may run past deadline_ms. On NET_OK *fd_out is a connected
 * non-blocking socket, addr (cap bytes) names the peer, and every other attempt is closed.
 * Returns NET_OK, NET_ERESOLVE, NET_ECONNECT, or NET_ELOCAL when an attempt failed for a reason
 * of this process (net_errno_is_local, or the deadline passed before the connects could run
 * their course); err says why. */
enum net_result net_connect(const char *host, unsigned port, int connect_timeout_ms,
                            int64_t deadline_ms, const struct logger *log, int *fd_out, char *addr,
                            size_t addr_cap, struct errbuf *err);

/* ---- a race of connection attempts ----
 * Candidates start in the order they were added: the first at once, each next one when the
 * attempts in flight have not connected within the stagger, or at once when an attempt fails.
 * Attempts started earlier keep trying; the first connection established wins. Each attempt
 * has its own connect timeout, and nothing runs past the caller's deadline. The winner is handed
 * over before anything is sent on it; the others stay in flight until net_race_run is called
 * again (the caller's first choice failed later, e.g. in TLS) or net_race_free closes them.
 * The tag says which host or server a candidate belongs to, so a server walk can feed one race
 * with the addresses of several hosts and servers and know who won. */
struct net_race;

/* Called when the race wants to start another attempt and its queue is empty; it may queue more
 * candidates with net_race_add (say, the next host's addresses). Once it queues nothing it is
 * not called again, unless it called net_race_feed_later. */
typedef void (*net_race_feed_fn)(void *arg, struct net_race *race);

/* For the feeder: nothing queued now, but ask again (it stopped resolving a name because an
 * attempt in flight became ready: net_race_live_fds). */
void net_race_feed_later(struct net_race *race);

/* The sockets of the attempts in flight, as pollfds waiting for POLLOUT (at most cap), for a
 * feeder that blocks (a name lookup) and must stop when one of them connects or fails. */
size_t net_race_live_fds(const struct net_race *race, struct pollfd *out, size_t cap);

struct net_race_winner {
    int fd;       /* connected, non-blocking, close-on-exec, TCP_NODELAY; the caller owns it */
    unsigned tag; /* as given to net_race_add */
    int64_t started_ms; /* when its connect began (clock_now_ms) */
    char addr[80];      /* "[2001:db8::1]:993" or "192.0.2.1:993" */
};

/* Called once for every attempt that failed (refused, unreachable, its connect timeout, or the
 * race's deadline), with its tag, address and why in words. Not called for attempts abandoned
 * by net_race_free. local: the failure says nothing about the peer (socket() failed for lack of
 * descriptors or memory, a local errno, or the race's deadline cut its connect timeout short);
 * otherwise the network answered: refused, unreachable, or no answer to the connection request
 * for the whole connect timeout, counted from after connect() was issued (a process stopped or
 * starved meanwhile only gave the kernel more time to get an answer). */
typedef void (*net_race_fail_fn)(void *arg, unsigned tag, const char *addr, const char *why,
                                 bool local);

/* NULL when out of memory. feed may be NULL. log gets one debug line per failed or abandoned
 * attempt. */
struct net_race *net_race_new(int stagger_ms, net_race_feed_fn feed, void *feed_arg,
                              const struct logger *log);

/* Report every failed attempt to fail(arg, ...) from now on. */
void net_race_on_fail(struct net_race *race, net_race_fail_fn fail, void *arg);

/* Queue a candidate address. False when the race is full (NET_RACE_MAX) or len is too big. */
bool net_race_add(struct net_race *race, const struct sockaddr *sa, socklen_t len,
                  int connect_timeout_ms, unsigned tag);

/* Run until a connection is established (NET_OK, *w filled), every candidate has failed
 * (NET_ECONNECT) or deadline_ms passed with candidates left (NET_ETIMEOUT); err holds the last
 * failure in words ("connect to 192.0.2.1:993: Connection refused"). At most NET_RACE_MAX_LIVE
 * attempts are in flight at once. On NET_ETIMEOUT the attempts still in flight are not reported
 * to the fail hook (the caller knows what it queued: walk.c's settle() fails them); net_race_free
 * closes them. */
enum net_result net_race_run(struct net_race *race, int64_t deadline_ms, struct net_race_winner *w,
                             struct errbuf *err);

/* Close every attempt still in flight (logged as abandoned) and free the race. NULL is fine. */
void net_race_free(struct net_race *race);

/* Wait until fd is ready for events (POLLIN/POLLOUT). NET_OK, NET_ETIMEOUT or NET_EIO. */
enum net_result net_wait(int fd, short events, int64_t deadline_ms);

/* Send all of buf. NET_OK, NET_ETIMEOUT or NET_EIO. */
enum net_result net_send_all(int fd, const void *buf, size_t len, int64_t deadline_ms);

/* Receive what is available (at least one byte). NET_OK, NET_EEOF, NET_ETIMEOUT or NET_EIO. */
enum net_result net_recv_some(int fd, void *buf, size_t cap, size_t *got, int64_t deadline_ms);

/* True when the socket's peer is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
bool net_peer_is_loopback(int fd);

/* The socket's peer port, or 0 when it has none (not connected, not IP). */
unsigned net_peer_port(int fd);

/* An address as the logs show it: "192.0.2.1:993", "[2001:db8::1]:993". */
void net_format_addr(const struct sockaddr *sa, char *out, size_t cap);

/* True when host is a literal IPv4 or IPv6 address. */
bool net_host_is_ip_literal(const char *host);

const char *net_result_name(enum net_result r);

/* True when errno e from socket(), connect() or SO_ERROR is this process's or host's own problem
 * (descriptors, memory, buffers, permissions, no local address or port) rather than an answer from
 * the network (refused, unreachable, timed out, reset). */
bool net_errno_is_local(int e);

#endif
