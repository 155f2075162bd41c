/* The config parser: libconfuse plus our comment blanking and validation, with a real logger
 * (error messages are formatted code too). Checked on every input:
 * - every message is formatted with its arguments, has a valid priority and is not empty;
 * - a refusal (CONFIG_EINVAL) says why, naming the file ("fuzz.conf:...") at LOG_ERR;
 * - a config that parses obeys every limit pam_mailauth.conf(5) documents: timeouts above 0
 *   and at most 600 s, fail_delay 0..60000 ms, at least one server, labels unique and
 *   printable (at most 63 bytes), a protocol, at least one host (a name or address, at most
 *   253 bytes) with a port in 1..65535, known tls and apop modes (apop only on pop3 servers
 *   when not the default), absolute trust paths, domains written without '@', and
 *   append_domain never together with strip_domain. */
#include <stdint.h>

#include "fuzz.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

struct capture {
    int messages;
    int errors_naming_file;
};

MA_PRINTF(3, 0)
static void sink(void *ctx, int priority, const char *fmt, va_list ap)
{
    struct capture *c = ctx;
    char msg[1024];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);

    if (n <= 0 || priority < LOG_EMERG || priority > LOG_DEBUG)
        abort();
    c->messages++;
    if (priority == LOG_ERR && strncmp(msg, "fuzz.conf:", 10) == 0)
        c->errors_naming_file++;
}

static void check_name_chars(const char *s, size_t max, bool allow_colon)
{
    size_t n;

    if (s == NULL || (n = strlen(s)) == 0 || n > max)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_' && !(allow_colon && ch == ':') &&
            ch < 0x80)
            abort();
    }
}

static void check_domain_list(char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        check_name_chars(list[i], 253, false);
        if (strchr(list[i], '@') != NULL || list[i][0] == '.')
            abort();
    }
}

static void check_path(const char *path)
{
    if (path != NULL && path[0] != '/')
        abort();
}

static void check_label(const struct mailauth_config *cfg, size_t i)
{
    const char *label = cfg->servers[i].label;
    size_t n;

    if (label == NULL || (n = strlen(label)) == 0 || n > 63)
        abort();
    for (size_t k = 0; k < n; k++) {
        if ((unsigned char)label[k] < 0x21 || (unsigned char)label[k] > 0x7e || label[k] == '"')
            abort();
    }
    for (size_t k = 0; k < i; k++) {
        if (strcmp(cfg->servers[k].label, label) == 0)
            abort();
    }
}

static void check_server(const struct mailauth_config *cfg, size_t i)
{
    const struct config_server *s = &cfg->servers[i];

    check_label(cfg, i);
    if (s->protocol != PROTOCOL_IMAP && s->protocol != PROTOCOL_POP3)
        abort();
    if (s->apop != APOP_AUTO && s->apop != APOP_NEVER && s->apop != APOP_ONLY)
        abort();
    if (s->protocol == PROTOCOL_IMAP && s->apop != APOP_AUTO)
        abort();
    if (s->n_endpoints == 0 || s->endpoints == NULL)
        abort();
    for (size_t e = 0; e < s->n_endpoints; e++) {
        const struct config_endpoint *ep = &s->endpoints[e];
        check_name_chars(ep->host, 253, true);
        if (ep->port < 1 || ep->port > 65535)
            abort();
        if (ep->tls != TLS_MODE_IMPLICIT && ep->tls != TLS_MODE_STARTTLS &&
            ep->tls != TLS_MODE_NONE)
            abort();
    }
    check_path(s->ca_file);
    check_path(s->ca_dir);
    check_domain_list(s->domains, s->n_domains);
}

static void check_limits(const struct mailauth_config *cfg)
{
    if (cfg->timeout_ms <= 0 || cfg->timeout_ms > 600000 || cfg->connect_timeout_ms <= 0 ||
        cfg->connect_timeout_ms > 600000)
        abort();
    if (cfg->fail_delay_ms < 0 || cfg->fail_delay_ms > 60000)
        abort();
    if (cfg->on_reject != ON_REJECT_NEXT && cfg->on_reject != ON_REJECT_STOP)
        abort();
    if (cfg->n_servers == 0 || cfg->servers == NULL)
        abort();
    check_path(cfg->ca_file);
    check_path(cfg->ca_dir);
    if (cfg->user.append_domain != NULL) {
        if (cfg->user.strip_domain)
            abort();
        check_domain_list(&cfg->user.append_domain, 1);
    }
    check_domain_list(cfg->user.allowed_domains, cfg->user.n_allowed_domains);
    for (size_t i = 0; i < cfg->user.n_deny_users; i++) {
        if (cfg->user.deny_users[i] == NULL)
            abort();
    }
    for (size_t i = 0; i < cfg->n_servers; i++)
        check_server(cfg, i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct capture cap = {0};
    const struct logger log = {.sink = sink, .ctx = &cap, .debug = true};
    struct mailauth_config *cfg = NULL;
    enum config_result r = config_parse_buffer((const char *)data, size, "fuzz.conf", &log, &cfg);

    if (r == CONFIG_EINVAL && cap.errors_naming_file == 0)
        abort(); /* refused without saying where */
    if (r != CONFIG_OK) {
        if (cfg != NULL)
            abort();
        return 0;
    }
    check_limits(cfg);
    config_free(cfg);
    return 0;
}
