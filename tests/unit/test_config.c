/* Config parsing: defaults, host/port list semantics, every invalid case with its file:line,
 * comment handling, and the safe-open checks of config_load_file. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "config_expect.h"
#include "config_internal.h"
#include "sasl/mech.h"

static void test_minimal_defaults(void)
{
    struct mailauth_config *cfg = NULL;

    CHECK(parse("server a { protocol = imap\n host = \"mail.example.org\" }\n", &cfg) == CONFIG_OK);
    if (cfg == NULL)
        return;
    CHECK(cfg->timeout_ms == 20000 && cfg->connect_timeout_ms == 3000);
    CHECK(cfg->on_reject == ON_REJECT_NEXT && cfg->fail_delay_ms == 2000);
    CHECK(cfg->n_servers == 1);
    CHECK_STR(cfg->servers[0].label, "a");
    CHECK(cfg->servers[0].verify && !cfg->servers[0].allow_cleartext);
    CHECK(cfg->servers[0].n_endpoints == 1);
    CHECK(cfg->servers[0].endpoints[0].port == 993);
    CHECK(cfg->servers[0].endpoints[0].tls == TLS_MODE_IMPLICIT);
    CHECK(cfg->user.n_deny_users == 1 && strcmp(cfg->user.deny_users[0], "root") == 0);
    config_free(cfg);
}

static void test_port_and_tls_defaults(void)
{
    struct mailauth_config *cfg = NULL;
    const char *text = "timeout = 2.5\n"
                       "server p { protocol = pop3\n host = \"h\" }\n"
                       "server q { protocol = pop3\n host = \"h\"\n tls = starttls }\n"
                       "server r { protocol = imap\n host = \"h\"\n port = 143 }\n"
                       "server s { protocol = imap\n host = \"h\"\n port = 993 }\n"
                       "server t { protocol = imap\n host = \"h\"\n tls = none }\n";

    CHECK(parse(text, &cfg) == CONFIG_OK);
    if (cfg == NULL)
        return;
    CHECK(cfg->timeout_ms == 2500);
    CHECK(cfg->servers[0].endpoints[0].port == 995 &&
          cfg->servers[0].endpoints[0].tls == TLS_MODE_IMPLICIT);
    CHECK(cfg->servers[1].endpoints[0].port == 110 &&
          cfg->servers[1].endpoints[0].tls == TLS_MODE_STARTTLS);
    CHECK(cfg->servers[2].endpoints[0].port == 143 &&
          cfg->servers[2].endpoints[0].tls == TLS_MODE_STARTTLS);
    CHECK(cfg->servers[3].endpoints[0].port == 993 &&
          cfg->servers[3].endpoints[0].tls == TLS_MODE_IMPLICIT);
    CHECK(cfg->servers[4].endpoints[0].port == 143 &&
          cfg->servers[4].endpoints[0].tls == TLS_MODE_NONE);
    config_free(cfg);
}

static void test_host_port_lists(void)
{
    struct mailauth_config *cfg = NULL;

    /* one port for every host */
    CHECK(parse("server a { protocol = imap\n host = {\"a\", \"b\", \"c\"}\n port = 1143 }\n",
                &cfg) == CONFIG_OK);
    if (cfg != NULL) {
        CHECK(cfg->servers[0].n_endpoints == 3);
        for (size_t i = 0; i < 3 && i < cfg->servers[0].n_endpoints; i++)
            CHECK(cfg->servers[0].endpoints[i].port == 1143);
        CHECK_STR(cfg->servers[0].endpoints[2].host, "c");
        config_free(cfg);
    }
    /* pairwise lists, tls decided per port */
    CHECK(parse("server a { protocol = pop3\n host = {\"a\", \"b\"}\n port = {995, 110} }\n",
                &cfg) == CONFIG_OK);
    if (cfg != NULL) {
        CHECK(cfg->servers[0].endpoints[0].port == 995 &&
              cfg->servers[0].endpoints[0].tls == TLS_MODE_IMPLICIT);
        CHECK(cfg->servers[0].endpoints[1].port == 110 &&
              cfg->servers[0].endpoints[1].tls == TLS_MODE_STARTTLS);
        config_free(cfg);
    }
    EXPECT_INVALID("server a {\n protocol = imap\n host = {\"a\", \"b\"}\n port = {1, 2, 3}\n}\n",
                   "t.conf:5: server \"a\": 3 ports for 2 hosts");
    EXPECT_INVALID("\n\nserver a {\n protocol = imap\n host = {\"a\", \"b\", \"c\"}\n"
                   " port = {1, 2}\n}\n",
                   "t.conf:7: server \"a\": 2 ports for 3 hosts");
}

static void test_invalid_cases(void)
{
    EXPECT_INVALID("", "t.conf: empty");
    EXPECT_INVALID("timeout = 5\n", "no server section");
    EXPECT_INVALID("server a {\n host = \"h\"\n}\n", "protocol is required");
    EXPECT_INVALID("server a {\n protocol = smtp\n host = \"h\"\n}\n", "\"smtp\" is not imap");
    EXPECT_INVALID("server a {\n protocol = imap\n}\n", "host is required");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"a b\"\n}\n", "is not a host name");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n tls = maybe\n}\n",
                   "tls \"maybe\"");
    EXPECT_INVALID("server a {\n protocol = pop3\n host = \"h\"\n apop = yes\n}\n", "apop \"yes\"");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n apop = only\n}\n",
                   "apop applies to pop3 servers only");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n port = 70000\n}\n",
                   "port 70000 is out of range");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n port = 0\n}\n",
                   "port 0 is out of range");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n ca_file = \"/nonexistent\"\n}\n",
                   "ca_file \"/nonexistent\" is not a readable file");
    EXPECT_INVALID("ca_dir = \"relative\"\nserver a {\n protocol = imap\n host = \"h\"\n}\n",
                   "ca_dir \"relative\"");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n domains = {\"@x.org\"}\n}\n",
                   "is not a domain name");
    EXPECT_INVALID("# comment\n# another\ntimeout = 0\nserver a { protocol = imap\n host = h }\n",
                   "t.conf:3: timeout must be");
    EXPECT_INVALID("timeout = 601\nserver a { protocol = imap\n host = h }\n",
                   "t.conf:1: timeout must be");
    EXPECT_INVALID("connect_timeout = -1\nserver a { protocol = imap\n host = h }\n",
                   "connect_timeout must be");
    EXPECT_INVALID("on_reject = maybe\nserver a { protocol = imap\n host = h }\n",
                   "on_reject must be");
    EXPECT_INVALID("fail_delay = 60001\nserver a { protocol = imap\n host = h }\n",
                   "fail_delay must be");
    EXPECT_INVALID("# one\n// two\n/* three */\nbogus = 1\n", "t.conf:4: no such option 'bogus'");
    EXPECT_INVALID("server a { protocol = imap\n host = h }\nserver a { protocol = imap\n"
                   " host = h }\n",
                   "t.conf:");
    EXPECT_INVALID("server a { protocol = imap\n host = h\n", "t.conf:1: section is never closed");
    EXPECT_INVALID("# x\nuser {\n lowercase = true\n}\nserver a {\n protocol = imap\n",
                   "t.conf:5: section is never closed");
    EXPECT_INVALID("/* a\n b */\n# c\nserver a {\n protocol = imap\n host = h\n tls = x\n}\n",
                   "t.conf:8: server \"a\": tls \"x\"");
    EXPECT_INVALID("user {\n append_domain = \"x.org\"\n strip_domain = true\n}\n"
                   "server a { protocol = imap\n host = h }\n",
                   "contradict");
    EXPECT_INVALID("user {\n allowed_domains = {\"bad domain\"}\n}\n"
                   "server a { protocol = imap\n host = h }\n",
                   "allowed_domains");
    EXPECT_INVALID("server \"a b\" { protocol = imap\n host = h }\n", "server label");
}

static void test_nul_and_comments(void)
{
    struct mailauth_config *cfg = NULL;
    const char nul[] = "timeout = 5\n\0server";
    char text[] = "host = \"a#b\" # gone\nx = '//kept' // gone\np = /etc//x # gone\n/* a\nb */{";

    logged[0] = '\0';
    CHECK(config_parse_buffer(nul, sizeof(nul) - 1, "t.conf", &test_log, &cfg) == CONFIG_EINVAL);
    CHECK(strstr(logged, "NUL byte") != NULL);
    CHECK(config_blank_comments(text, strlen(text)) == 5);
    CHECK_STR(text, "host = \"a#b\"       \nx = '//kept'        \np = /etc//x       \n    \n    {");
    CHECK(parse("server a { protocol = imap # the protocol\n host = \"h#1\" }\n", &cfg) ==
          CONFIG_EINVAL); /* '#' is not valid in a host name: it was kept inside the quotes */
    CHECK(parse("server a { protocol = imap # the protocol\n host = \"h\" # a host\n}\n", &cfg) ==
          CONFIG_OK);
    config_free(cfg);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0)
            perror("write");
        close(fd);
    }
    chmod(path, mode);
}

static void test_load_file(void)
{
    char dir[] = "/tmp/mailauth-config-XXXXXX";
    char path[256], link_path[256];
    struct mailauth_config *cfg = NULL;
    const char *good = "server a { protocol = imap\n host = h }\n";

    if (mkdtemp(dir) == NULL) {
        CHECK(!"mkdtemp");
        return;
    }
    snprintf(path, sizeof(path), "%s/c.conf", dir);
    snprintf(link_path, sizeof(link_path), "%s/link.conf", dir);
    write_file(path, good, 0644);
    CHECK(config_load_file(path, &test_log, &cfg) == CONFIG_OK);
    config_free(cfg);
    cfg = NULL;

    logged[0] = '\0';
    write_file(path, good, 0666);
    CHECK(config_load_file(path, &test_log, &cfg) == CONFIG_EIO && cfg == NULL);
    CHECK(strstr(logged, "world writable") != NULL);

    write_file(path, good, 0644);
    CHECK(symlink(path, link_path) == 0);
    logged[0] = '\0';
    CHECK(config_load_file(link_path, &test_log, &cfg) == CONFIG_EIO);
    CHECK(strstr(logged, "cannot open") != NULL);

    logged[0] = '\0';
    CHECK(config_load_file(dir, &test_log, &cfg) == CONFIG_EIO);
    CHECK(config_load_file("/nonexistent/x.conf", &test_log, &cfg) == CONFIG_EIO);

    write_file(path, "server a { protocol = imap\n host = h\n port = {1,2} }\n", 0644);
    logged[0] = '\0';
    CHECK(config_load_file(path, &test_log, &cfg) == CONFIG_EINVAL);
    CHECK(strstr(logged, path) != NULL && strstr(logged, ":3: server \"a\"") != NULL);

    unlink(link_path);
    unlink(path);
    rmdir(dir);
}

static void test_forward_client_ip(void)
{
    struct mailauth_config *cfg = NULL;
    const char *text = "server a { protocol = imap\n host = \"a.example\" }\n"
                       "server b { protocol = pop3\n host = \"b.example\"\n"
                       " forward_client_ip = never }\n";

    CHECK(parse(text, &cfg) == CONFIG_OK);
    if (cfg != NULL)
        CHECK(cfg->servers[0].forward_client_ip && !cfg->servers[1].forward_client_ip);
    config_free(cfg);
    cfg = NULL;
    /* the global value is the default of every server that does not set its own, wherever it
     * stands in the file */
    text = "server a { protocol = imap\n host = \"a.example\" }\n"
           "server b { protocol = imap\n host = \"b.example\"\n forward_client_ip = auto }\n"
           "forward_client_ip = never\n";
    CHECK(parse(text, &cfg) == CONFIG_OK);
    if (cfg != NULL)
        CHECK(!cfg->servers[0].forward_client_ip && cfg->servers[1].forward_client_ip);
    config_free(cfg);
    EXPECT_INVALID("forward_client_ip = yes\nserver a { protocol = imap\n host = \"a\" }\n",
                   "forward_client_ip");
    EXPECT_INVALID("server a { protocol = imap\n host = \"a\"\n forward_client_ip = on }\n",
                   "t.conf:3: server \"a\": forward_client_ip \"on\" is not auto or never");
}

/* mechanisms = ...: ordered ids, a server's own list over the global one, apop over the
 * global list, apop and an own list together refused. */
static void test_mechanisms(void)
{
    struct mailauth_config *cfg = NULL;

    CHECK(parse("mechanisms = {scram-sha-256-plus, PLAIN}\n"
                "server a {\n protocol = imap\n host = \"h\"\n}\n"
                "server b {\n protocol = imap\n host = \"h\"\n mechanisms = cram-md5\n}\n"
                "server c {\n protocol = pop3\n host = \"h\"\n}\n"
                "server d {\n protocol = pop3\n host = \"h\"\n apop = only\n}\n",
                &cfg) == CONFIG_OK);
    CHECK(cfg != NULL && cfg->servers[0].n_mechanisms == 2 && cfg->servers[1].n_mechanisms == 1);
    CHECK(cfg != NULL && cfg->servers[0].mechanisms[0] == SASL_MECH_SCRAM_SHA_256_PLUS &&
          cfg->servers[0].mechanisms[1] == SASL_MECH_PLAIN &&
          cfg->servers[1].mechanisms[0] == SASL_MECH_CRAM_MD5);
    CHECK(cfg != NULL && cfg->servers[2].n_mechanisms == 2 && cfg->servers[3].n_mechanisms == 0);
    config_free(cfg);
    CHECK(parse("server a {\n protocol = imap\n host = \"h\"\n}\n", &cfg) == CONFIG_OK);
    CHECK(cfg != NULL && cfg->servers[0].n_mechanisms == 0); /* default: the old login */
    config_free(cfg);
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n mechanisms = gssapi\n}\n",
                   "\"gssapi\" is not one of");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n mechanisms = {plain, "
                   "PLAIN}\n}\n",
                   "listed twice");
    EXPECT_INVALID("server a {\n protocol = pop3\n host = \"h\"\n apop = never\n mechanisms = "
                   "plain\n}\n",
                   "apop and mechanisms together");
    /* the global list may follow the servers: still checked */
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n}\nmechanisms = {scram-sha-512}\n",
                   "\"scram-sha-512\" is not one of");
}

/* ---- the parse lock has a deadline ----
 * A holder thread parses a text with an unknown option; its logger, called by libconfuse under
 * the parse lock, stops there until the main thread's own load has returned. That load must give
 * up after the bound with CONFIG_EBUSY and a log line, not wait. The holder lets go by itself
 * well after the bound, so that code without a deadline ends this test (with CONFIG_OK: a
 * failure) instead of hanging it. */
static pthread_mutex_t holder_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t holder_cv;
static bool holder_in;      /* the holder is inside the parse, holding the lock */
static bool holder_release; /* the main thread's load has returned */

MA_PRINTF(3, 0)
static void holding_sink(void *ctx, int priority, const char *fmt, va_list ap)
{
    struct timespec until;

    (void)ctx;
    (void)priority;
    (void)fmt;
    (void)ap;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += CONFIG_DEFAULT_TIMEOUT_S + 30;
    pthread_mutex_lock(&holder_mu);
    holder_in = true;
    pthread_cond_broadcast(&holder_cv);
    while (!holder_release) {
        if (pthread_cond_timedwait(&holder_cv, &holder_mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&holder_mu);
}

static void *hold_parse_lock(void *arg)
{
    static const char text[] = "no_such_option = 1\n";
    const struct logger holding = {.sink = holding_sink};
    struct mailauth_config *cfg = NULL;
    enum config_result *res = arg;

    *res = config_parse_buffer(text, sizeof(text) - 1, "held.conf", &holding, &cfg);
    config_free(cfg);
    return NULL;
}

static void test_parse_lock_deadline(void)
{
    static const char ok_text[] = "server a { protocol = imap\n host = \"h\" }\n";
    struct mailauth_config *cfg = NULL;
    enum config_result held = CONFIG_OK;
    enum config_result r;
    pthread_condattr_t attr;
    pthread_t holder;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&holder_cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&holder, NULL, hold_parse_lock, &held) != 0) {
        CHECK(!"pthread_create");
        return;
    }
    pthread_mutex_lock(&holder_mu);
    while (!holder_in)
        pthread_cond_wait(&holder_cv, &holder_mu);
    pthread_mutex_unlock(&holder_mu);

    /* The bound itself is CONFIG_LOCK_WAIT_MS (20 s); waiting it out would only cost time. */
    CHECK(config_lock_wait_ms() == CONFIG_LOCK_WAIT_MS);
    config_set_lock_wait_ms(300);
    r = parse(ok_text, &cfg);
    config_set_lock_wait_ms(CONFIG_LOCK_WAIT_MS);
    CHECK(r == CONFIG_EBUSY && cfg == NULL);
    CHECK(strstr(logged, "t.conf: not parsed: another thread has held the configuration parse "
                         "lock") != NULL);
    config_free(cfg);

    pthread_mutex_lock(&holder_mu);
    holder_release = true;
    pthread_cond_broadcast(&holder_cv);
    pthread_mutex_unlock(&holder_mu);
    pthread_join(holder, NULL);
    CHECK(held == CONFIG_EINVAL);
    /* The refused load left the lock as it was: the next one parses. */
    cfg = NULL;
    CHECK(parse(ok_text, &cfg) == CONFIG_OK && cfg != NULL);
    config_free(cfg);
    pthread_cond_destroy(&holder_cv);
}

int main(void)
{
    test_mechanisms();
    test_minimal_defaults();
    test_port_and_tls_defaults();
    test_host_port_lists();
    test_invalid_cases();
    test_nul_and_comments();
    test_load_file();
    test_forward_client_ip();
    test_parse_lock_deadline();
    return check_summary("config");
}
