/* The walk's candidate order and race (walk.c) against loopback listeners, with a resolver of
 * the test's own: addresses of a host alternate IPv6/IPv4, hosts follow in list order, servers
 * in file order, servers that do not serve the user's domain are left out; a refused server is
 * skipped; an attempt abandoned when another won starts again if the walk goes on; a name that
 * does not resolve is reported and passed over. A refused port fails at once, so the failures
 * are logged in the order the attempts started. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capture_log.h"
#include "check.h"
#include "config.h"
#include "walk.h"

struct peer {
    int listen_fd;
    int filler_fd; /* fills the backlog of a black hole */
    struct sockaddr_storage sa;
    socklen_t len;
    char shown[64]; /* as net.c formats it */
};

/* A listener on 127.0.0.1 or ::1. refused: closed again, so a connect is refused at once.
 * black_hole: its backlog is full, so SYNs to it vanish. */
static void peer_open(struct peer *p, int family, bool refused, bool black_hole)
{
    char ip[INET6_ADDRSTRLEN];

    memset(p, 0, sizeof(*p));
    p->filler_fd = -1;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p->sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        p->len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&p->sa;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        p->len = sizeof(*s4);
    }
    p->listen_fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bind(p->listen_fd, (struct sockaddr *)&p->sa, p->len);
    listen(p->listen_fd, black_hole ? 0 : 16);
    getsockname(p->listen_fd, (struct sockaddr *)&p->sa, &p->len);
    if (family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&p->sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(p->shown, sizeof(p->shown), "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&p->sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(p->shown, sizeof(p->shown), "%s:%u", ip, ntohs(s4->sin_port));
    }
    if (black_hole) {
        p->filler_fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        connect(p->filler_fd, (struct sockaddr *)&p->sa, p->len);
    }
    if (refused) {
        close(p->listen_fd);
        p->listen_fd = -1;
    }
}

static void peer_close(struct peer *p)
{
    if (p->filler_fd >= 0)
        close(p->filler_fd);
    if (p->listen_fd >= 0)
        close(p->listen_fd);
}

/* The test's resolver: a table of names, each with its peers in "resolver order". */
struct name_entry {
    const char *name;
    const struct peer *peers[4];
};
static const struct name_entry *names;

static enum resolve_result fake_resolve(const char *host, unsigned port, int64_t deadline_ms,
                                        const struct pollfd *watch, size_t n_watch,
                                        struct resolve_list *out, struct errbuf *err)
{
    (void)port;
    (void)deadline_ms;
    (void)watch;
    (void)n_watch;
    out->n = 0;
    for (const struct name_entry *e = names; e->name != NULL; e++) {
        if (strcmp(e->name, host) != 0)
            continue;
        for (size_t i = 0; i < 4 && e->peers[i] != NULL; i++) {
            memcpy(&out->addrs[out->n].sa, &e->peers[i]->sa, e->peers[i]->len);
            out->addrs[out->n++].len = e->peers[i]->len;
        }
        return RESOLVE_OK;
    }
    errbuf_set(err, "cannot resolve %s: not found", host);
    return RESOLVE_ENOTFOUND;
}

/* host_failed: "server.endpoint why" lines, in order. */
static char failed_hosts[2048];

static int local_failures;

static void note_failed(void *arg, size_t server, size_t endpoint, const char *why, bool local)
{
    size_t used = strlen(failed_hosts);

    (void)arg;
    local_failures += local;
    snprintf(failed_hosts + used, sizeof(failed_hosts) - used, "%zu.%zu %s\n", server, endpoint,
             why);
}

static struct mailauth_config *parse(const char *text)
{
    struct mailauth_config *cfg = NULL;

    CHECK(config_parse_buffer(text, strlen(text), "walk.conf", &test_log, &cfg) == CONFIG_OK);
    return cfg;
}

static struct walk *start(const struct mailauth_config *cfg, const char *user)
{
    struct walk_params p = {.cfg = cfg,
                            .user = user,
                            .log = &debug_log,
                            .host_failed = note_failed,
                            .resolve = fake_resolve,
                            .stagger_ms = 100};

    logged[0] = '\0';
    failed_hosts[0] = '\0';
    return walk_new(&p);
}

/* Each of texts appears in the log, in this order. */
static bool logged_in_order(const char *const *texts, size_t n)
{
    const char *at = logged;

    for (size_t i = 0; i < n; i++) {
        at = strstr(at, texts[i]);
        if (at == NULL) {
            fprintf(stderr, "not found in order: %s\nlog:\n%s", texts[i], logged);
            return false;
        }
        at += strlen(texts[i]);
    }
    return true;
}

static void test_order_across_families_hosts_and_servers(void)
{
    struct peer v4a, v4b, v6a, v6b, beta6, gamma4, live;
    struct mailauth_config *cfg;
    struct walk *w;
    struct walk_conn c;
    char want[8][128];
    char reported[512];
    const char *order[8];

    peer_open(&v4a, AF_INET, true, false);
    peer_open(&v4b, AF_INET, true, false);
    peer_open(&v6a, AF_INET6, true, false);
    peer_open(&v6b, AF_INET6, true, false);
    peer_open(&beta6, AF_INET6, true, false);
    peer_open(&gamma4, AF_INET, true, false);
    peer_open(&live, AF_INET, false, false);
    /* alpha resolves IPv4 first (as RFC 6724 may rank it), both families twice. */
    const struct name_entry table[] = {
        {"alpha.test", {&v4a, &v4b, &v6a, &v6b}},
        {"beta.test", {&beta6}},
        {"gamma.test", {&gamma4}},
        {"other.test", {&live}},
        {"live.test", {&live}},
        {NULL, {NULL}},
    };
    names = table;
    cfg = parse("connect_timeout = 2\n"
                "server a { protocol = imap\n host = {\"alpha.test\", \"beta.test\"} }\n"
                "server b { protocol = imap\n host = \"gamma.test\" }\n"
                "server other { protocol = imap\n host = \"other.test\"\n"
                "  domains = {\"elsewhere.test\"} }\n"
                "server c { protocol = imap\n host = \"live.test\" }\n");
    if (cfg == NULL)
        return;
    w = start(cfg, "alice@example.test");
    CHECK(w != NULL && walk_hosts(w) == 4); /* "other" does not serve example.test */
    CHECK(w != NULL && walk_next(w, &c));
    CHECK(c.server == 3 && c.endpoint == 0 && c.conn.fd >= 0);
    CHECK_STR(c.conn.address, live.shown);
    if (c.conn.fd >= 0)
        close(c.conn.fd);
    /* alpha's addresses alternate starting with its first family, then beta, then gamma. */
    const struct peer *expect[] = {&v4a, &v6a, &v4b, &v6b, &beta6, &gamma4};
    for (size_t i = 0; i < MA_ARRAY_LEN(expect); i++) {
        snprintf(want[i], sizeof(want[i]), "connect to %s: Connection refused", expect[i]->shown);
        order[i] = want[i];
    }
    CHECK(logged_in_order(order, MA_ARRAY_LEN(expect)));
    /* Each host is reported when its last address failed: alpha's last is v6b. */
    snprintf(reported, sizeof(reported),
             "0.0 connect to %s: Connection refused\n0.1 connect to %s: Connection refused\n"
             "1.0 connect to %s: Connection refused\n",
             v6b.shown, beta6.shown, gamma4.shown);
    CHECK_STR(failed_hosts, reported);
    /* The winner's host had its turn: nothing is left. */
    CHECK(w != NULL && !walk_next(w, &c) && c.conn.fd == -1);
    walk_free(w);
    config_free(cfg);
    peer_close(&live);
}

static void test_abandoned_attempt_starts_again(void)
{
    struct peer hole, live;
    struct mailauth_config *cfg;
    struct walk *w;
    struct walk_conn c;
    char want[128];
    int64_t t0;

    peer_open(&hole, AF_INET, false, true);
    peer_open(&live, AF_INET, false, false);
    const struct name_entry table[] = {
        {"hole.test", {&hole}}, {"live.test", {&live}}, {NULL, {NULL}}};
    names = table;
    cfg = parse("connect_timeout = 1.5\n"
                "server dead { protocol = imap\n host = \"hole.test\" }\n"
                "server live { protocol = imap\n host = \"live.test\" }\n");
    if (cfg == NULL)
        return;
    w = start(cfg, "alice");
    t0 = clock_now_ms();
    /* The black hole is still trying when the second server connects after the stagger. */
    CHECK(w != NULL && walk_next(w, &c) && c.server == 1);
    CHECK(clock_now_ms() - t0 >= 95 && clock_now_ms() - t0 < 1000); /* not connect_timeout */
    snprintf(want, sizeof(want), "connect to %s: abandoned", hole.shown);
    CHECK(strstr(logged, want) != NULL);
    CHECK(failed_hosts[0] == '\0');
    if (c.conn.fd >= 0)
        close(c.conn.fd);
    /* The live server gave no answer, say: the walk goes on, and the black hole starts again
     * with its full connect_timeout, then is reported. */
    t0 = clock_now_ms();
    CHECK(w != NULL && !walk_next(w, &c));
    CHECK(clock_now_ms() - t0 >= 1450);
    snprintf(want, sizeof(want), "0.0 connect to %s: connect timeout after 1.5 s\n", hole.shown);
    CHECK_STR(failed_hosts, want);
    walk_free(w);
    config_free(cfg);
    peer_close(&hole);
    peer_close(&live);
}

static void test_skip_server_and_unresolved_names(void)
{
    struct peer one, two, three;
    struct mailauth_config *cfg;
    struct walk *w;
    struct walk_conn c;

    peer_open(&one, AF_INET, false, false);
    peer_open(&two, AF_INET, false, false);
    peer_open(&three, AF_INET6, false, false);
    const struct name_entry table[] = {
        {"one.test", {&one}}, {"two.test", {&two}}, {"three.test", {&three}}, {NULL, {NULL}}};
    names = table;
    cfg = parse("server a { protocol = imap\n host = {\"one.test\", \"two.test\"} }\n"
                "server b { protocol = imap\n host = {\"nx.test\", \"three.test\"} }\n");
    if (cfg == NULL)
        return;
    w = start(cfg, "alice");
    CHECK(w != NULL && walk_next(w, &c) && c.server == 0 && c.endpoint == 0);
    if (c.conn.fd >= 0)
        close(c.conn.fd);
    /* a refused: its second host is not raced; b's first name does not resolve. */
    walk_skip_server(w, 0);
    CHECK(w != NULL && walk_next(w, &c) && c.server == 1 && c.endpoint == 1);
    CHECK_STR(c.conn.address, three.shown);
    if (c.conn.fd >= 0)
        close(c.conn.fd);
    CHECK_STR(failed_hosts, "1.0 cannot resolve nx.test: not found\n");
    CHECK(w != NULL && !walk_next(w, &c));
    walk_free(w);
    config_free(cfg);
    peer_close(&one);
    peer_close(&two);
    peer_close(&three);
}

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

int main(void)
{
    int before = count_fds();

    test_order_across_families_hosts_and_servers();
    test_abandoned_attempt_starts_again();
    test_skip_server_and_unresolved_names();
    CHECK(count_fds() == before); /* every attempt and listener closed */
    return check_summary("test_walk");
}
