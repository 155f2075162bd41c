/* The connect race (stagger, per-address timeout, deadline, feeder, winner hand-over) against
 * loopback listeners, and the resolver's literal path, deadline and ordering. A listener whose
 * backlog is full drops SYNs: a black hole on loopback, no root needed. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "net.h"
#include "resolve.h"

struct peer {
    int listen_fd;
    int filler_fd; /* fills the backlog of a black hole */
    struct sockaddr_in sa;
};

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* A listener on 127.0.0.1; black_hole: its backlog is full, so SYNs to it vanish. */
static void peer_open(struct peer *p, bool black_hole)
{
    socklen_t len = sizeof(p->sa);

    memset(p, 0, sizeof(*p));
    p->filler_fd = -1;
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    p->sa.sin_family = AF_INET;
    p->sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(p->listen_fd, (struct sockaddr *)&p->sa, sizeof(p->sa));
    listen(p->listen_fd, black_hole ? 0 : 16);
    getsockname(p->listen_fd, (struct sockaddr *)&p->sa, &len);
    if (black_hole) {
        p->filler_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        connect(p->filler_fd, (struct sockaddr *)&p->sa, sizeof(p->sa));
    }
}

/* A port nothing listens on: connecting is refused at once. */
static void peer_closed(struct peer *p)
{
    peer_open(p, false);
    close(p->listen_fd);
    p->listen_fd = -1;
}

static void peer_close(struct peer *p)
{
    if (p->filler_fd >= 0)
        close(p->filler_fd);
    if (p->listen_fd >= 0)
        close(p->listen_fd);
}

static bool add(struct net_race *r, const struct peer *p, int connect_timeout_ms, unsigned tag)
{
    return net_race_add(r, (const struct sockaddr *)&p->sa, sizeof(p->sa), connect_timeout_ms, tag);
}

static void test_black_hole_then_live(void)
{
    struct peer hole, live;
    struct net_race_winner w;
    struct errbuf err = {{0}};
    struct net_race *r = net_race_new(100, NULL, NULL, NULL);
    int64_t start = clock_now_ms(), took;

    peer_open(&hole, true);
    peer_open(&live, false);
    CHECK(add(r, &hole, 5000, 7) && add(r, &live, 5000, 8));
    CHECK(net_race_run(r, start + 10000, &w, &err) == NET_OK);
    took = clock_now_ms() - start;
    CHECK(w.tag == 8);
    /* the second started after the stagger, not with the first, and long before 5 s */
    CHECK(took >= 95 && took < 1500);
    CHECK(w.fd >= 0 && (fcntl(w.fd, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK(w.fd >= 0 && (fcntl(w.fd, F_GETFL) & O_NONBLOCK) != 0);
    if (w.fd >= 0)
        close(w.fd);
    net_race_free(r); /* closes the attempt to the black hole */
    peer_close(&hole);
    peer_close(&live);
}

static void test_refused_starts_next_at_once(void)
{
    struct peer refused, live;
    struct net_race_winner w;
    struct errbuf err = {{0}};
    struct net_race *r = net_race_new(2000, NULL, NULL, NULL);
    int64_t start = clock_now_ms();
    char want[64];

    peer_closed(&refused);
    peer_open(&live, false);
    CHECK(add(r, &refused, 5000, 1) && add(r, &live, 5000, 2));
    CHECK(net_race_run(r, start + 10000, &w, &err) == NET_OK);
    CHECK(w.tag == 2);
    CHECK(clock_now_ms() - start < 1000); /* not the 2 s stagger */
    snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: Connection refused",
             ntohs(refused.sa.sin_port));
    CHECK_STR(err.text, want);
    if (w.fd >= 0)
        close(w.fd);
    net_race_free(r);
    peer_close(&live);
}

static void test_each_address_has_its_own_timeout(void)
{
    struct peer a, b;
    struct net_race_winner w;
    struct errbuf err = {{0}};
    struct net_race *r = net_race_new(5000, NULL, NULL, NULL);
    int64_t start = clock_now_ms(), took;

    peer_open(&a, true);
    peer_open(&b, true);
    CHECK(add(r, &a, 200, 1) && add(r, &b, 200, 2));
    CHECK(net_race_run(r, start + 10000, &w, &err) == NET_ECONNECT);
    took = clock_now_ms() - start;
    /* the first times out at 200 ms and the second starts then, not after the 5 s stagger */
    CHECK(took >= 390 && took < 1500);
    CHECK(strstr(err.text, "connect timeout after 0.2 s") != NULL);
    CHECK(w.fd == -1);
    net_race_free(r);
    peer_close(&a);
    peer_close(&b);
}

static void test_deadline_bounds_everything(void)
{
    struct peer a, b;
    struct net_race_winner w;
    struct errbuf err = {{0}};
    struct net_race *r = net_race_new(100, NULL, NULL, NULL);
    int64_t start = clock_now_ms(), took;

    peer_open(&a, true);
    peer_open(&b, true);
    CHECK(add(r, &a, 5000, 1) && add(r, &b, 5000, 2));
    CHECK(net_race_run(r, start + 300, &w, &err) != NET_OK);
    took = clock_now_ms() - start;
    CHECK(took >= 295 && took < 1500);
    net_race_free(r);
    peer_close(&a);
    peer_close(&b);
}

struct feeder {
    const struct peer *p;
    int calls;
};

static void feed(void *arg, struct net_race *r)
{
    struct feeder *f = arg;

    if (f->calls++ == 0)
        add(r, f->p, 5000, 42);
}

static void test_feeder_and_continuing_race(void)
{
    struct peer first, second, fed;
    struct net_race_winner w1, w2, w3, w4;
    struct errbuf err = {{0}};
    struct feeder f = {.p = &fed};
    struct net_race *r = net_race_new(100, feed, &f, NULL);
    int64_t deadline = clock_now_ms() + 10000;

    peer_open(&first, false);
    peer_open(&second, false);
    peer_open(&fed, false);
    CHECK(add(r, &first, 5000, 1) && add(r, &second, 5000, 2));
    /* The first connects at once and is handed over; the race keeps the rest for a retry. */
    CHECK(net_race_run(r, deadline, &w1, &err) == NET_OK && w1.tag == 1);
    CHECK(net_race_run(r, deadline, &w2, &err) == NET_OK && w2.tag == 2);
    /* The queue is empty: the feeder adds one more candidate, then has nothing. */
    CHECK(net_race_run(r, deadline, &w3, &err) == NET_OK && w3.tag == 42);
    CHECK(net_race_run(r, deadline, &w4, &err) == NET_ECONNECT && w4.fd == -1);
    CHECK(f.calls == 2);
    close(w1.fd);
    close(w2.fd);
    close(w3.fd);
    net_race_free(r);
    peer_close(&first);
    peer_close(&second);
    peer_close(&fed);
}

/* Feeds one black-hole candidate per call, noting when the race asked. */
struct hole_feed {
    const struct peer *hole;
    unsigned fed;
    int64_t asked_ms[12];
    unsigned failed;
    unsigned local;
};

static void feed_holes(void *arg, struct net_race *r)
{
    struct hole_feed *f = arg;

    if (f->fed < 10) {
        f->asked_ms[f->fed] = clock_now_ms();
        if (add(r, f->hole, 600, f->fed))
            f->fed++;
    }
}

static void count_failure(void *arg, unsigned tag, const char *addr, const char *why, bool local)
{
    struct hole_feed *f = arg;

    (void)tag;
    (void)addr;
    (void)why;
    f->failed++;
    f->local += local;
}

static void test_attempts_in_flight_are_capped(void)
{
    struct peer hole;
    struct hole_feed f = {.hole = &hole};
    struct net_race_winner w;
    struct errbuf err = {{0}};
    struct net_race *r = net_race_new(10, feed_holes, &f, NULL);
    int64_t start = clock_now_ms();

    peer_open(&hole, true);
    net_race_on_fail(r, count_failure, &f);
    CHECK(net_race_run(r, start + 5000, &w, &err) == NET_ECONNECT);
    CHECK(f.fed == 10 && f.failed == 10);
    /* each had its whole connect timeout, counted from its connect(): the network's silence */
    CHECK(f.local == 0);
    /* NET_RACE_MAX_LIVE (8) started 10 ms apart; the ninth waited for the first to time out. */
    CHECK(NET_RACE_MAX_LIVE == 8);
    CHECK(f.asked_ms[7] - start < 400);
    CHECK(f.asked_ms[8] - start >= 590);
    net_race_free(r);
    peer_close(&hole);
}

/* A lookup stops at once when a watched descriptor is ready (a pipe's write end always is),
 * with nothing resolved; a literal never waits, watched or not. */
static void test_lookup_stops_for_a_watched_descriptor(void)
{
    int p[2];
    struct pollfd watch;
    struct resolve_list list;
    struct errbuf err = {{0}};
    enum resolve_result r;
    int64_t start;

    CHECK(pipe(p) == 0);
    watch = (struct pollfd){.fd = p[1], .events = POLLOUT};
    start = clock_now_ms();
    r = resolve_host_watch("no-such-host.walk-test.invalid", 143, start + 5000, &watch, 1, &list,
                           &err);
    /* Where the system's nameservers are unreachable, c-ares may fail the lookup before it ever
     * waits (ENETUNREACH on send): then it failed at once, which is all this test needs. */
    CHECK(r == RESOLVE_EWATCHED || r == RESOLVE_EFAIL || r == RESOLVE_ENOTFOUND);
    CHECK(list.n == 0);
    CHECK(clock_now_ms() - start < 1000);
    CHECK(resolve_host_watch("192.0.2.7", 143, start + 5000, &watch, 1, &list, &err) == RESOLVE_OK);
    CHECK(list.n == 1);
    close(p[0]);
    close(p[1]);
}

static void test_net_connect_literal(void)
{
    struct peer live;
    struct errbuf err = {{0}};
    char addr[80], want[80];
    int fd = -1;

    peer_open(&live, false);
    CHECK(net_connect("127.0.0.1", ntohs(live.sa.sin_port), 1000, clock_now_ms() + 5000, NULL, &fd,
                      addr, sizeof(addr), &err) == NET_OK);
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(live.sa.sin_port));
    CHECK_STR(addr, want);
    if (fd >= 0)
        close(fd);
    peer_close(&live);
}

/* ---- resolver ---- */

static sa_family_t family(const struct resolve_list *l, size_t i)
{
    return l->addrs[i].sa.ss_family;
}

static void test_literals_need_no_resolver(void)
{
    struct resolve_list l;
    struct errbuf err = {{0}};
    int64_t past = clock_now_ms() - 1; /* a literal needs no wait at all */

    CHECK(resolve_host("192.0.2.1", 993, past, &l, &err) == RESOLVE_OK);
    CHECK(l.n == 1 && family(&l, 0) == AF_INET);
    CHECK(ntohs(((struct sockaddr_in *)&l.addrs[0].sa)->sin_port) == 993);
    CHECK(resolve_host("2001:db8::1", 143, past, &l, &err) == RESOLVE_OK);
    CHECK(l.n == 1 && family(&l, 0) == AF_INET6);
    CHECK(resolve_host("fe80::1%lo", 143, past, &l, &err) == RESOLVE_OK);
    CHECK(l.n == 1 && ((struct sockaddr_in6 *)&l.addrs[0].sa)->sin6_scope_id != 0);
}

static void test_name_deadline(void)
{
    struct resolve_list l;
    struct errbuf err = {{0}};
    int64_t start = clock_now_ms();

    /* A name that needs DNS, with no time left: abandoned at once, nothing left open. */
    CHECK(resolve_host("needs-dns.invalid", 143, start, &l, &err) == RESOLVE_ETIMEOUT);
    CHECK(clock_now_ms() - start < 500);
    CHECK(strncmp(err.text, "cannot resolve needs-dns.invalid: no answer", 43) == 0);
}

static void test_hosts_file(void)
{
    struct resolve_list l;
    struct errbuf err = {{0}};

    /* "localhost" comes from /etc/hosts (or c-ares's RFC 6761 fallback) without DNS. */
    CHECK(resolve_host("localhost", 110, clock_now_ms() + 5000, &l, &err) == RESOLVE_OK);
    CHECK(l.n >= 1);
}

static struct resolve_addr addr_of(const char *text)
{
    struct resolve_addr a;

    memset(&a, 0, sizeof(a));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.sa;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, text, &s6->sin6_addr);
        a.len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a.sa;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, text, &s4->sin_addr);
        a.len = sizeof(*s4);
    }
    return a;
}

static bool is(const struct resolve_list *l, size_t i, const char *text)
{
    struct resolve_addr a = addr_of(text);

    return l->addrs[i].len == a.len && memcmp(&l->addrs[i].sa, &a.sa, a.len) == 0;
}

static void test_interleave(void)
{
    struct resolve_list l = {.n = 4};

    l.addrs[0] = addr_of("2001:db8::1");
    l.addrs[1] = addr_of("2001:db8::2");
    l.addrs[2] = addr_of("192.0.2.1");
    l.addrs[3] = addr_of("192.0.2.2");
    resolve_interleave(&l);
    CHECK(is(&l, 0, "2001:db8::1") && is(&l, 1, "192.0.2.1") && is(&l, 2, "2001:db8::2") &&
          is(&l, 3, "192.0.2.2"));

    l.n = 4;
    l.addrs[0] = addr_of("192.0.2.1");
    l.addrs[1] = addr_of("192.0.2.2");
    l.addrs[2] = addr_of("192.0.2.3");
    l.addrs[3] = addr_of("2001:db8::1");
    resolve_interleave(&l);
    CHECK(is(&l, 0, "192.0.2.1") && is(&l, 1, "2001:db8::1") && is(&l, 2, "192.0.2.2") &&
          is(&l, 3, "192.0.2.3"));
}

struct fail_kinds {
    unsigned failed, local;
};

static void note_kind(void *arg, unsigned tag, const char *addr, const char *why, bool local)
{
    struct fail_kinds *k = arg;

    (void)tag;
    (void)addr;
    (void)why;
    k->failed++;
    k->local += local;
}

/* One candidate at p; what the fail hook was told. */
static struct fail_kinds race_one(const struct peer *p, int64_t deadline)
{
    struct fail_kinds k = {0};
    struct net_race_winner w;
    struct errbuf err = {{0}};
    struct net_race *r = net_race_new(100, NULL, NULL, NULL);

    net_race_on_fail(r, note_kind, &k);
    add(r, p, 2000, 0);
    if (net_race_run(r, deadline, &w, &err) == NET_OK)
        close(w.fd);
    net_race_free(r);
    return k;
}

/* Issue 17: a refusal is the network's answer; a socket() that fails for lack of descriptors is
 * this process's, and so is a connect cut short by the race's deadline. net_connect says
 * NET_ELOCAL for them. The descriptor limit is lowered in a child. */
static void test_local_failures(void)
{
    struct peer refused, live, hole;
    struct fail_kinds k;
    pid_t pid;
    int status = -1;

    peer_closed(&refused);
    k = race_one(&refused, clock_now_ms() + 5000);
    CHECK(k.failed == 1 && k.local == 0);
    peer_open(&hole, true);
    k = race_one(&hole, clock_now_ms() + 200); /* the deadline before the 2 s connect timeout */
    CHECK(k.failed == 1 && k.local == 1);
    peer_close(&hole);
    peer_open(&live, false);
    pid = fork();
    if (pid == 0) {
        struct rlimit rl;
        char addr[80];
        struct errbuf err = {{0}};
        int fd = -1, bad = 0;

        /* the limit at the lowest free descriptor: socket() gets EMFILE */
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = 0;
        while (fcntl((int)rl.rlim_cur, F_GETFD) >= 0)
            rl.rlim_cur++;
        setrlimit(RLIMIT_NOFILE, &rl);
        k = race_one(&live, clock_now_ms() + 5000);
        bad |= !(k.failed == 1 && k.local == 1);
        bad |=
            net_connect("127.0.0.1", (unsigned)ntohs(live.sa.sin_port), 1000, clock_now_ms() + 3000,
                        NULL, &fd, addr, sizeof(addr), &err) != NET_ELOCAL;
        _exit(bad);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    peer_close(&live);
    peer_close(&refused);
}

int main(void)
{
    int before = count_fds();

    test_black_hole_then_live();
    test_refused_starts_next_at_once();
    test_each_address_has_its_own_timeout();
    test_deadline_bounds_everything();
    test_feeder_and_continuing_race();
    test_attempts_in_flight_are_capped();
    test_lookup_stops_for_a_watched_descriptor();
    test_net_connect_literal();
    test_literals_need_no_resolver();
    test_name_deadline();
    test_hosts_file();
    test_interleave();
    test_local_failures();
    CHECK(count_fds() == before); /* every attempt, socket and resolver channel closed */
    return check_summary("test_net");
}
