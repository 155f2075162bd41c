#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "resolve.h"

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
    case NET_ELOCAL:
        return "local error";
    }
    return "?";
}

bool net_errno_is_local(int e)
{
    switch (e) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case ENETUNREACH:
    case ENETDOWN:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ETIMEDOUT:
    case EPROTO:
        return false;
    default:
        return true;
    }
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

void net_format_addr(const struct sockaddr *sa, char *out, size_t cap)
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

/* ---- the race ---- */

struct race_candidate {
    struct sockaddr_storage sa;
    socklen_t len;
    int connect_timeout_ms;
    unsigned tag;
};

struct race_attempt {
    int fd;
    size_t cand;         /* index into candidates */
    int64_t started_ms;  /* the clock reading, after connect() was issued, that set deadline_ms */
    int64_t deadline_ms; /* its own connect timeout, capped by the race's deadline */
    bool capped;         /* the race's deadline came before its own connect timeout */
    char addr[80];
};

struct net_race {
    int stagger_ms;
    net_race_feed_fn feed;
    void *feed_arg;
    bool feed_later; /* the feeder queued nothing this time but has more */
    net_race_fail_fn fail;
    void *fail_arg;
    const struct logger *log;
    size_t n_cands, next_cand; /* candidates [next_cand, n_cands) have not started */
    size_t n_live;
    size_t n_local;        /* attempts that failed for a reason of this process */
    int64_t next_start_ms; /* when the next candidate starts if nothing connects before */
    struct race_candidate cands[NET_RACE_MAX];
    struct race_attempt live[NET_RACE_MAX];
};

struct net_race *net_race_new(int stagger_ms, net_race_feed_fn feed, void *feed_arg,
                              const struct logger *log)
{
    struct net_race *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->stagger_ms = stagger_ms;
    r->feed = feed;
    r->feed_arg = feed_arg;
    r->log = log;
    return r;
}

void net_race_feed_later(struct net_race *r)
{
    r->feed_later = true;
}

size_t net_race_live_fds(const struct net_race *r, struct pollfd *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n_live && n < cap; i++)
        out[n++] = (struct pollfd){.fd = r->live[i].fd, .events = POLLOUT};
    return n;
}

void net_race_on_fail(struct net_race *r, net_race_fail_fn fail, void *arg)
{
    r->fail = fail;
    r->fail_arg = arg;
}

bool net_race_add(struct net_race *r, const struct sockaddr *sa, socklen_t len,
                  int connect_timeout_ms, unsigned tag)
{
    struct race_candidate *c;

    if (r->n_cands == NET_RACE_MAX || len > sizeof(c->sa))
        return false;
    c = &r->cands[r->n_cands++];
    memcpy(&c->sa, sa, len);
    c->len = len;
    c->connect_timeout_ms = connect_timeout_ms;
    c->tag = tag;
    return true;
}

static void drop_attempt(struct net_race *r, size_t i)
{
    close(r->live[i].fd);
    r->live[i] = r->live[--r->n_live];
}

/* An attempt failed: remember why, log it, and let the next candidate start at once. */
static void attempt_failed(struct net_race *r, size_t i, struct errbuf *err, const char *why,
                           bool local)
{
    errbuf_set(err, "connect to %s: %s", r->live[i].addr, why);
    log_debug(r->log, "%s", err->text);
    r->n_local += local;
    if (r->fail != NULL)
        r->fail(r->fail_arg, r->cands[r->live[i].cand].tag, r->live[i].addr, why, local);
    drop_attempt(r, i);
    r->next_start_ms = 0;
}

/* Start the next queued candidate (asking the feeder for more when the queue is empty). False
 * when there is none. A candidate that fails at once is logged and counts as started. */
static bool start_next(struct net_race *r, int64_t deadline_ms, struct errbuf *err)
{
    char ebuf[128], why[160];
    struct race_attempt *a;
    const struct race_candidate *c;
    size_t before = r->n_cands;
    int rc;

    if (r->next_cand == r->n_cands && r->feed != NULL) {
        r->feed_later = false;
        r->feed(r->feed_arg, r);
        if (r->n_cands == before && !r->feed_later)
            r->feed = NULL; /* it has nothing more */
    }
    if (r->next_cand == r->n_cands)
        return false;
    c = &r->cands[r->next_cand];
    a = &r->live[r->n_live];
    a->cand = r->next_cand++;
    net_format_addr((const struct sockaddr *)&c->sa, a->addr, sizeof(a->addr));
    a->fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (a->fd < 0) {
        /* errno_text may return a static string and leave ebuf as it was: use what it returns */
        snprintf(why, sizeof(why), "socket: %s", errno_text(errno, ebuf, sizeof(ebuf)));
        errbuf_set(err, "%s", why);
        r->next_start_ms = 0;
        r->n_local++;
        if (r->fail != NULL)
            r->fail(r->fail_arg, c->tag, a->addr, why, true);
        return true;
    }
    r->n_live++;
    rc = connect(a->fd, (const struct sockaddr *)&c->sa, c->len) != 0 ? errno : 0;
    /* The connect timeout counts from here: time before connect() was issued (the process
     * stopped or starved) must not count as the network's silence. */
    a->started_ms = clock_now_ms();
    a->deadline_ms = deadline_min(a->started_ms + c->connect_timeout_ms, deadline_ms);
    a->capped = a->deadline_ms < a->started_ms + c->connect_timeout_ms;
    r->next_start_ms = a->started_ms + r->stagger_ms;
    if (rc != 0 && rc != EINPROGRESS)
        attempt_failed(r, r->n_live - 1, err, errno_text(rc, ebuf, sizeof(ebuf)),
                       net_errno_is_local(rc));
    return true;
}

/* Hand attempt i over as the winner. */
static void attempt_won(struct net_race *r, size_t i, struct net_race_winner *w)
{
    int one = 1;

    /* Commands are small and each waits for an answer: do not let Nagle delay them. */
    setsockopt(r->live[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    w->fd = r->live[i].fd;
    w->tag = r->cands[r->live[i].cand].tag;
    w->started_ms = r->live[i].started_ms;
    snprintf(w->addr, sizeof(w->addr), "%s", r->live[i].addr);
    r->live[i] = r->live[--r->n_live];
}

/* The connect of fd has completed successfully. */
static bool attempt_connected(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int soerr = 0;
    socklen_t slen = sizeof(soerr);

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT) != 0 &&
           getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) == 0 && soerr == 0;
}

/* Fail every attempt whose own connect timeout has passed. One that connected in time but was
 * not looked at before its timeout (the feeder spent a while resolving a name) is left for
 * poll_attempts to hand over. The kernel had the whole connect timeout to get an answer: that is
 * the network's silence, unless the race's deadline cut it short (then it is local). */
static void expire_attempts(struct net_race *r, int64_t now, struct errbuf *err)
{
    char why[64];

    for (size_t i = r->n_live; i-- > 0;) {
        const struct race_attempt *a = &r->live[i];
        if (a->deadline_ms > now || attempt_connected(a->fd))
            continue;
        snprintf(why, sizeof(why), "connect timeout after %g s%s",
                 (double)(a->deadline_ms - a->started_ms) / 1000.0,
                 a->capped ? " (the walk's deadline)" : "");
        attempt_failed(r, i, err, why, a->capped);
    }
}

/* How long poll may sleep: until the deadline, the earliest attempt timeout, or the next start
 * when a candidate (or the feeder) is waiting and there is room for another attempt. */
static int poll_budget(const struct net_race *r, int64_t now, int64_t deadline_ms)
{
    int64_t until = deadline_ms;

    for (size_t i = 0; i < r->n_live; i++)
        until = deadline_min(until, r->live[i].deadline_ms);
    if ((r->next_cand < r->n_cands || r->feed != NULL) && r->n_live < NET_RACE_MAX_LIVE)
        until = deadline_min(until, r->next_start_ms);
    return until <= now ? 0 : (int)deadline_min(until - now, INT32_MAX);
}

/* Poll the attempts once. NET_OK with *w filled when one connected, else NET_ECONNECT (go on).
 * Among several connected at once the earliest started wins. */
static enum net_result poll_attempts(struct net_race *r, int wait_ms, struct net_race_winner *w,
                                     struct errbuf *err)
{
    struct pollfd pfd[NET_RACE_MAX];
    int failed[NET_RACE_MAX] = {0};
    char ebuf[128];
    int won_fd = -1;
    int64_t won_started = 0;

    for (size_t i = 0; i < r->n_live; i++)
        pfd[i] = (struct pollfd){.fd = r->live[i].fd, .events = POLLOUT};
    if (poll(pfd, r->n_live, wait_ms) <= 0)
        return NET_ECONNECT; /* a timer fired, or EINTR: the caller's loop rechecks */
    for (size_t i = 0; i < r->n_live; i++) {
        int soerr = 0;
        socklen_t slen = sizeof(soerr);

        if (pfd[i].revents == 0)
            continue;
        if (getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0)
            soerr = errno;
        if (soerr == 0 && (pfd[i].revents & POLLOUT) != 0) {
            if (won_fd < 0 || r->live[i].started_ms < won_started) {
                won_fd = pfd[i].fd;
                won_started = r->live[i].started_ms;
            }
        } else {
            failed[i] = soerr != 0 ? soerr : ECONNREFUSED;
        }
    }
    /* Backwards: removing attempt i moves the last one, already looked at, into its place. */
    for (size_t i = r->n_live; i-- > 0;) {
        if (failed[i] != 0)
            attempt_failed(r, i, err, errno_text(failed[i], ebuf, sizeof(ebuf)),
                           net_errno_is_local(failed[i]));
    }
    for (size_t i = 0; i < r->n_live && won_fd >= 0; i++) {
        if (r->live[i].fd == won_fd) {
            attempt_won(r, i, w);
            return NET_OK;
        }
    }
    return NET_ECONNECT;
}

enum net_result net_race_run(struct net_race *r, int64_t deadline_ms, struct net_race_winner *w,
                             struct errbuf *err)
{
    w->fd = -1;
    for (;;) {
        int64_t now = clock_now_ms();

        expire_attempts(r, now, err);
        if (now >= deadline_ms) {
            if (r->next_cand == r->n_cands)
                return NET_ECONNECT; /* every candidate was tried and failed */
            if (err != NULL && err->text[0] == '\0')
                errbuf_set(err, "no time left to connect before the deadline");
            return NET_ETIMEOUT;
        }
        if ((r->n_live == 0 || now >= r->next_start_ms) && r->n_live < NET_RACE_MAX_LIVE &&
            start_next(r, deadline_ms, err))
            continue; /* recheck at once: it may have failed already */
        if (r->n_live == 0)
            return NET_ECONNECT;
        if (poll_attempts(r, poll_budget(r, now, deadline_ms), w, err) == NET_OK)
            return NET_OK;
    }
}

void net_race_free(struct net_race *r)
{
    if (r == NULL)
        return;
    while (r->n_live > 0) {
        log_debug(r->log, "connect to %s: abandoned, another address connected first",
                  r->live[r->n_live - 1].addr);
        drop_attempt(r, r->n_live - 1);
    }
    free(r);
}

enum net_result net_connect(const char *host, unsigned port, int connect_timeout_ms,
                            int64_t deadline_ms, const struct logger *log, int *fd_out, char *addr,
                            size_t addr_cap, struct errbuf *err)
{
    struct resolve_list *list = malloc(sizeof(*list));
    struct net_race *race = net_race_new(NET_STAGGER_MS, NULL, NULL, log);
    struct net_race_winner w = {.fd = -1};
    enum net_result nr = NET_ECONNECT;

    *fd_out = -1;
    snprintf(addr, addr_cap, "%s:%u", host, port);
    if (list == NULL || race == NULL) {
        errbuf_set(err, "out of memory");
        goto out;
    }
    if (resolve_host(host, port, deadline_ms, list, err) != RESOLVE_OK) {
        nr = NET_ERESOLVE;
        goto out;
    }
    for (size_t i = 0; i < list->n; i++)
        net_race_add(race, (const struct sockaddr *)&list->addrs[i].sa, list->addrs[i].len,
                     connect_timeout_ms, (unsigned)i);
    nr = net_race_run(race, deadline_ms, &w, err);
    /* No evidence about the server: a local failure, or the deadline before every connect had
     * run its course. */
    if (nr == NET_ETIMEOUT || (nr == NET_ECONNECT && race->n_local > 0))
        nr = NET_ELOCAL;
    if (nr == NET_OK) {
        *fd_out = w.fd;
        snprintf(addr, addr_cap, "%s", w.addr);
    }
out:
    net_race_free(race);
    free(list);
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

unsigned net_peer_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

bool net_host_is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}
