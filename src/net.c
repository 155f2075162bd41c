#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const char *net_result_name(enum net_result r)
{
    switch (r) {
    case NET_OK:
        return "ok";
    case NET_ERESOLVE:
        return "name not resolved";
    case NET_ECONNECT:
        return "connection failed";
    case NET_ETIMEOUT:
        return "timeout";
    case NET_EIO:
        return "I/O error";
    case NET_EEOF:
        return "connection closed by server";
    }
    return "?";
}

enum net_result net_wait(int fd, short events, int64_t deadline_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};

    for (;;) {
        int left = deadline_left_ms(deadline_ms);
        int rc;

        if (left == 0)
            return NET_ETIMEOUT;
        rc = poll(&pfd, 1, left);
        if (rc > 0)
            return NET_OK; /* readiness or an error condition: the next call reports it */
        if (rc == 0)
            return NET_ETIMEOUT;
        if (errno != EINTR)
            return NET_EIO;
    }
}

static void format_addr(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        port = ntohs(s6->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
        return;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        port = ntohs(s4->sin_port);
    }
    snprintf(out, cap, "%s:%u", ip, port);
}

/* Connect one address. NET_OK, NET_ECONNECT or NET_ETIMEOUT; err says why. */
static enum net_result connect_one(const struct addrinfo *ai, int64_t deadline_ms, int *fd_out,
                                   struct errbuf *err, const char *addr, int timeout_ms)
{
    char ebuf[128];
    int soerr = 0;
    socklen_t slen = sizeof(soerr);
    int one = 1;
    enum net_result res;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);

    if (fd < 0) {
        errbuf_set(err, "socket: %s", errno_text(errno, ebuf, sizeof(ebuf)));
        return NET_ECONNECT;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        errbuf_set(err, "connect to %s: %s", addr, errno_text(errno, ebuf, sizeof(ebuf)));
        res = NET_ECONNECT;
        goto out;
    }
    res = net_wait(fd, POLLOUT, deadline_ms);
    if (res == NET_ETIMEOUT) {
        errbuf_set(err, "connect to %s: connect timeout after %g s", addr, timeout_ms / 1000.0);
        goto out;
    }
    if (res != NET_OK || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0 || soerr != 0) {
        errbuf_set(err, "connect to %s: %s", addr,
                   errno_text(soerr != 0 ? soerr : errno, ebuf, sizeof(ebuf)));
        res = NET_ECONNECT;
        goto out;
    }
    /* Commands are small and each waits for an answer: do not let Nagle delay them. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *fd_out = fd;
    return NET_OK;
out:
    close(fd);
    return res;
}

enum net_result net_connect(const char *host, unsigned port, int connect_timeout_ms,
                            int64_t deadline_ms, const struct logger *log, int *fd_out, char *addr,
                            size_t addr_cap, struct errbuf *err)
{
    /* No AI_ADDRCONFIG: it hides ::1 on hosts with only loopback IPv6, and an address family
     * without a route fails at once (ENETUNREACH) before the next address is tried. */
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    enum net_result nr = NET_ECONNECT;
    char service[8];
    int rc;

    *fd_out = -1;
    snprintf(addr, addr_cap, "%s:%u", host, port);
    snprintf(service, sizeof(service), "%u", port);
    /* getaddrinfo has no deadline of its own: it is bounded by resolv.conf's timeout/attempts. */
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        errbuf_set(err, "cannot resolve %s: %s", host, gai_strerror(rc));
        return NET_ERESOLVE;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int64_t start = clock_now_ms();
        /* one clock reading sets both the attempt's deadline and the budget reported */
        int64_t attempt_deadline = deadline_min(start + connect_timeout_ms, deadline_ms);

        if (attempt_deadline <= start) {
            nr = NET_ETIMEOUT;
            break;
        }
        format_addr(ai->ai_addr, addr, addr_cap);
        nr = connect_one(ai, attempt_deadline, fd_out, err, addr, (int)(attempt_deadline - start));
        if (nr == NET_OK)
            break;
        log_debug(log, "%s", err->text);
    }
    freeaddrinfo(res);
    return nr;
}

enum net_result net_send_all(int fd, const void *buf, size_t len, int64_t deadline_ms)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            enum net_result r = net_wait(fd, POLLOUT, deadline_ms);
            if (r != NET_OK)
                return r;
            continue;
        }
        return NET_EIO;
    }
    return NET_OK;
}

enum net_result net_recv_some(int fd, void *buf, size_t cap, size_t *got, int64_t deadline_ms)
{
    *got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n > 0) {
            *got = (size_t)n;
            return NET_OK;
        }
        if (n == 0)
            return NET_EEOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            enum net_result r = net_wait(fd, POLLIN, deadline_ms);
            if (r != NET_OK)
                return r;
            continue;
        }
        return NET_EIO;
    }
}

bool net_peer_is_loopback(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

bool net_host_is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}
