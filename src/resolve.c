/* Name resolution under a deadline.
 *
 * Why c-ares, polled in this file's own loop, and not glibc's resolver:
 * - getaddrinfo() has no deadline: a dead nameserver costs resolv.conf's timeout x attempts
 *   (10 s with the defaults) before the next server of the walk is tried.
 * - getaddrinfo_a()/gai_suspend() bound the wait, but the lookup runs in a helper thread that
 *   cannot be cancelled (gai_cancel() only dequeues requests not yet started). Abandoning a
 *   lookup at the deadline leaves that thread running inside sshd or an Apache worker after the
 *   PAM call has returned, blocked in the dead nameserver for up to 10 s; a fork in the meantime
 *   copies a process whose resolver thread holds glibc's internal locks.
 * - c-ares runs in the calling thread. One channel per lookup, created and destroyed here:
 *   ares_destroy() closes its sockets and cancels what is pending, so when resolve_host returns
 *   nothing of the lookup is left: no thread, no socket, no process-wide state (nothing to
 *   re-initialise after fork, nothing that dlclose would have to tear down; the module is linked
 *   -z nodelete anyway). ares_library_init() is not called: on Linux it only sets allocator
 *   hooks (its reference count is process-wide and not thread-safe), and ares_init_options()
 *   does not need it outside Windows.
 * - Every socket c-ares opens goes through socket_functions below: created with SOCK_CLOEXEC
 *   (c-ares 1.18 sets FD_CLOEXEC with a later fcntl, which leaves a window in which a
 *   concurrent fork+exec in another thread inherits it), and written with MSG_NOSIGNAL (c-ares
 *   writes TCP queries with writev(), which raises SIGPIPE when a nameserver resets the TCP
 *   connection; the module must never trigger the host's signal handling).
 *
 * What it means for administrators: c-ares reads /etc/resolv.conf (nameserver, search, domain,
 * options ndots/timeout/attempts/rotate, sortlist, lookup) and /etc/hosts itself. When
 * resolv.conf has no "lookup" line it takes the order from the "hosts:" line of
 * /etc/nsswitch.conf, but understands only "files" and "dns" (and "resolve", treated as dns)
 * there: names that only an NSS module provides (myhostname, mdns, ldap, sss, nis, wins,
 * mymachines) do not resolve, "[NOTFOUND=return]" actions are ignored, and nscd/sssd caches are
 * not consulted. Mail servers belong in DNS or /etc/hosts. LOCALDOMAIN and RES_OPTIONS are read
 * from the environment, as glibc does (the dynamic loader removes both for setuid programs).
 *
 * Literal addresses are parsed with getaddrinfo(AI_NUMERICHOST), which never consults DNS or
 * NSS and accepts IPv6 scope ids ("fe80::1%eth0"). */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ares.h>

const char *resolve_result_name(enum resolve_result r)
{
    switch (r) {
    case RESOLVE_OK:
        return "ok";
    case RESOLVE_ENOTFOUND:
        return "not found";
    case RESOLVE_ETIMEOUT:
        return "timeout";
    case RESOLVE_EFAIL:
        return "resolver failure";
    case RESOLVE_EWATCHED:
        return "interrupted";
    }
    return "?";
}

/* ---- c-ares socket functions: close-on-exec from birth, no SIGPIPE ---- */

static ares_socket_t sock_open(int domain, int type, int protocol, void *user)
{
    (void)user;
    return socket(domain, type | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
}

static int sock_close(ares_socket_t fd, void *user)
{
    (void)user;
    return close(fd);
}

static int sock_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len, void *user)
{
    (void)user;
    return connect(fd, sa, len);
}

static ares_ssize_t sock_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
                                  struct sockaddr *from, ares_socklen_t *from_len, void *user)
{
    (void)user;
    return recvfrom(fd, buf, len, flags, from, from_len);
}

static ares_ssize_t sock_sendv(ares_socket_t fd, const struct iovec *iov, int iov_count, void *user)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iov_count};

    (void)user;
    return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

static const struct ares_socket_functions socket_functions = {
    .asocket = sock_open,
    .aclose = sock_close,
    .aconnect = sock_connect,
    .arecvfrom = sock_recvfrom,
    .asendv = sock_sendv,
};

/* ---- building the list ---- */

static bool list_has(const struct resolve_list *l, const struct sockaddr *sa, socklen_t len)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->addrs[i].len == len && memcmp(&l->addrs[i].sa, sa, len) == 0)
            return true;
    }
    return false;
}

/* Append one TCP address (IPv4 or IPv6 only) unless it is already there or the list is full. */
static void list_add(struct resolve_list *l, const struct sockaddr *sa, socklen_t len)
{
    if (l->n == RESOLVE_MAX_ADDRS || len > sizeof(l->addrs[0].sa) || list_has(l, sa, len))
        return;
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return;
    memcpy(&l->addrs[l->n].sa, sa, len);
    l->addrs[l->n].len = len;
    l->n++;
}

void resolve_interleave(struct resolve_list *list)
{
    struct resolve_list out = {0};
    bool used[RESOLVE_MAX_ADDRS] = {false};
    sa_family_t want;

    if (list->n < 3)
        return; /* nothing to reorder: one address, or the two already alternate or cannot */
    want = list->addrs[0].sa.ss_family;
    while (out.n < list->n) {
        size_t pick = list->n;
        for (size_t i = 0; i < list->n && pick == list->n; i++) {
            if (!used[i] && list->addrs[i].sa.ss_family == want)
                pick = i;
        }
        for (size_t i = 0; i < list->n && pick == list->n; i++) {
            if (!used[i])
                pick = i; /* the wanted family is exhausted: take the rest in order */
        }
        used[pick] = true;
        out.addrs[out.n++] = list->addrs[pick];
        want = want == AF_INET6 ? AF_INET : AF_INET6;
    }
    *list = out;
}

/* A literal address. True when host was one (out filled), false when it is a name. */
static bool resolve_literal(const char *host, const char *service, struct resolve_list *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;

    if (getaddrinfo(host, service, &hints, &res) != 0)
        return false;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        list_add(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    return out->n > 0;
}

/* ---- the c-ares lookup ---- */

struct lookup {
    bool done;
    int status;
    struct resolve_list *out;
};

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct lookup *lk = arg;

    (void)timeouts;
    lk->done = true;
    lk->status = status;
    if (status == ARES_SUCCESS && res != NULL) {
        for (const struct ares_addrinfo_node *n = res->nodes; n != NULL; n = n->ai_next)
            list_add(lk->out, n->ai_addr, (socklen_t)n->ai_addrlen);
    }
    if (res != NULL)
        ares_freeaddrinfo(res);
}

enum poll_step { STEP_GO_ON, STEP_FAILED, STEP_WATCHED };

/* One poll() round over the channel's sockets and the watched ones, bounded by c-ares's next
 * timeout and the deadline; then let c-ares read, write and expire queries. STEP_WATCHED when a
 * watched descriptor is ready (c-ares's are then left for the next round), STEP_FAILED when
 * poll failed. */
static enum poll_step poll_once(ares_channel ch, int64_t deadline_ms, const struct pollfd *watch,
                                size_t n_watch)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    struct pollfd pfd[ARES_GETSOCK_MAXNUM + RESOLVE_MAX_WATCH];
    int left = deadline_left_ms(deadline_ms);
    struct timeval max_tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    struct timeval tv;
    struct timeval *next = ares_timeout(ch, &max_tv, &tv);
    /* Unsigned: c-ares's ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit. */
    unsigned mask = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
    int wait_ms = (int)(next->tv_sec * 1000 + (next->tv_usec + 999) / 1000);
    nfds_t n = 0;
    int rc;

    for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        short ev = (short)((mask & (1u << i) ? POLLIN : 0) |
                           (mask & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
        if (ev != 0)
            pfd[n++] = (struct pollfd){.fd = socks[i], .events = ev};
    }
    for (size_t i = 0; i < n_watch && i < RESOLVE_MAX_WATCH; i++)
        pfd[n + i] = watch[i];
    rc = poll(pfd, n + (n_watch < RESOLVE_MAX_WATCH ? n_watch : RESOLVE_MAX_WATCH),
              wait_ms < left ? wait_ms : left);
    if (rc < 0)
        return errno == EINTR ? STEP_GO_ON : STEP_FAILED;
    if (rc == 0) {
        ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* expire timed-out queries */
        return STEP_GO_ON;
    }
    for (size_t i = 0; i < n_watch && i < RESOLVE_MAX_WATCH; i++) {
        if (pfd[n + i].revents != 0)
            return STEP_WATCHED;
    }
    for (nfds_t i = 0; i < n; i++) {
        bool rd = (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
        bool wr = (pfd[i].revents & (POLLOUT | POLLERR | POLLHUP)) != 0;
        if (rd || wr)
            ares_process_fd(ch, rd ? pfd[i].fd : ARES_SOCKET_BAD, wr ? pfd[i].fd : ARES_SOCKET_BAD);
    }
    return STEP_GO_ON;
}

static enum resolve_result from_ares(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return RESOLVE_OK;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME:
    case ARES_EBADNAME:
        return RESOLVE_ENOTFOUND;
    case ARES_ETIMEOUT:
        return RESOLVE_ETIMEOUT;
    default:
        return RESOLVE_EFAIL;
    }
}

static enum resolve_result resolve_name(const char *host, const char *service, int64_t deadline_ms,
                                        const struct pollfd *watch, size_t n_watch,
                                        struct resolve_list *out, struct errbuf *err)
{
    int64_t start = clock_now_ms();
    struct ares_addrinfo_hints hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = ARES_AI_NUMERICSERV};
    struct lookup lk = {.out = out};
    enum resolve_result r;
    enum poll_step step = STEP_GO_ON;
    ares_channel ch = NULL;
    int rc = ares_init_options(&ch, NULL, 0);

    if (rc != ARES_SUCCESS) {
        errbuf_set(err, "cannot resolve %s: resolver setup failed: %s", host, ares_strerror(rc));
        return RESOLVE_EFAIL;
    }
    ares_set_socket_functions(ch, &socket_functions, NULL);
    ares_getaddrinfo(ch, host, service, &hints, on_addrinfo, &lk); /* may answer at once */
    while (!lk.done && deadline_left_ms(deadline_ms) > 0 && step == STEP_GO_ON)
        step = poll_once(ch, deadline_ms, watch, n_watch);
    ares_destroy(ch); /* closes the sockets; a pending lookup ends with ARES_EDESTRUCTION */
    if (step == STEP_WATCHED && (!lk.done || lk.status == ARES_EDESTRUCTION)) {
        out->n = 0;
        return RESOLVE_EWATCHED;
    }
    if (!lk.done || lk.status == ARES_EDESTRUCTION) {
        errbuf_set(err, "cannot resolve %s: no answer from the nameservers within %lld ms", host,
                   (long long)(clock_now_ms() - start));
        return RESOLVE_ETIMEOUT;
    }
    r = from_ares(lk.status);
    if (r == RESOLVE_OK && out->n == 0)
        r = RESOLVE_ENOTFOUND;
    if (r != RESOLVE_OK)
        errbuf_set(err, "cannot resolve %s: %s", host,
                   lk.status == ARES_SUCCESS ? "no IPv4 or IPv6 address"
                                             : ares_strerror(lk.status));
    return r;
}

enum resolve_result resolve_host_watch(const char *host, unsigned port, int64_t deadline_ms,
                                       const struct pollfd *watch, size_t n_watch,
                                       struct resolve_list *out, struct errbuf *err)
{
    char service[8];
    enum resolve_result r = RESOLVE_OK;

    out->n = 0;
    snprintf(service, sizeof(service), "%u", port);
    if (!resolve_literal(host, service, out))
        r = resolve_name(host, service, deadline_ms, watch, n_watch, out, err);
    if (r == RESOLVE_OK)
        resolve_interleave(out);
    return r;
}

enum resolve_result resolve_host(const char *host, unsigned port, int64_t deadline_ms,
                                 struct resolve_list *out, struct errbuf *err)
{
    return resolve_host_watch(host, port, deadline_ms, NULL, 0, out, err);
}
