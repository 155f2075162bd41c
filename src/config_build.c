/* Conversion of libconfuse's (already validated) tree into the plain structs of config.h, and
 * their release. */
#include "config_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *dup_opt(cfg_t *sec, const char *name, bool *oom)
{
    const char *s = cfg_getstr(sec, name);
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        *oom = true;
    return d;
}

static char **dup_list(cfg_t *sec, const char *name, size_t *n_out, bool *oom)
{
    unsigned n = cfg_size(sec, name);
    char **list;

    *n_out = 0;
    if (n == 0)
        return NULL;
    list = calloc(n, sizeof(*list));
    if (list == NULL) {
        *oom = true;
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        list[i] = strdup(cfg_getnstr(sec, name, i));
        if (list[i] == NULL)
            *oom = true;
    }
    *n_out = n;
    return list;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static unsigned default_port(enum mail_protocol p, enum tls_mode t)
{
    if (p == PROTOCOL_IMAP)
        return t == TLS_MODE_IMPLICIT ? 993 : 143;
    return t == TLS_MODE_IMPLICIT ? 995 : 110;
}

/* tls unset: implicit on the implicit-TLS ports (and when no port is given), else starttls. */
static enum tls_mode default_tls(unsigned port, bool port_given)
{
    if (!port_given || port == 993 || port == 995)
        return TLS_MODE_IMPLICIT;
    return TLS_MODE_STARTTLS;
}

static void fill_endpoints(cfg_t *sec, struct config_server *srv, bool *oom)
{
    unsigned n_hosts = cfg_size(sec, "host");
    unsigned n_ports = cfg_size(sec, "port");
    const char *tls = cfg_getstr(sec, "tls");

    srv->endpoints = calloc(n_hosts, sizeof(*srv->endpoints));
    if (srv->endpoints == NULL) {
        *oom = true;
        return;
    }
    srv->n_endpoints = n_hosts;
    for (unsigned i = 0; i < n_hosts; i++) {
        struct config_endpoint *ep = &srv->endpoints[i];
        unsigned port = n_ports == 0 ? 0 : (unsigned)cfg_getnint(sec, "port", n_ports == 1 ? 0 : i);

        ep->host = strdup(cfg_getnstr(sec, "host", i));
        if (ep->host == NULL)
            *oom = true;
        if (tls == NULL || !config_parse_tls_mode(tls, &ep->tls))
            ep->tls = default_tls(port, n_ports > 0);
        ep->port = port != 0 ? port : default_port(srv->protocol, ep->tls);
    }
}

/* A server's own forward_client_ip, else the global one (which defaults to auto). */
static bool forward_setting(cfg_t *root, cfg_t *sec)
{
    const char *v = cfg_getstr(sec, "forward_client_ip");
    bool on = true;

    config_parse_forward(v != NULL ? v : cfg_getstr(root, "forward_client_ip"), &on);
    return on;
}

static void fill_server(cfg_t *root, cfg_t *sec, struct config_server *srv, bool *oom)
{
    srv->label = strdup(cfg_title(sec));
    if (srv->label == NULL)
        *oom = true;
    config_parse_protocol(cfg_getstr(sec, "protocol"), &srv->protocol);
    config_parse_apop_mode(cfg_getstr(sec, "apop"), &srv->apop);
    srv->verify = cfg_getbool(sec, "verify");
    srv->allow_cleartext = cfg_getbool(sec, "allow_cleartext");
    srv->forward_client_ip = forward_setting(root, sec);
    srv->ca_file = dup_opt(sec, "ca_file", oom);
    srv->ca_dir = dup_opt(sec, "ca_dir", oom);
    srv->domains = dup_list(sec, "domains", &srv->n_domains, oom);
    /* A server's own list wins; the global one applies unless the server chose apop. */
    if (cfg_size(sec, "mechanisms") > 0 || srv->apop == APOP_AUTO)
        config_mechanisms(root, cfg_size(sec, "mechanisms") > 0 ? sec : NULL, srv->mechanisms,
                          &srv->n_mechanisms);
    fill_endpoints(sec, srv, oom);
}

static void fill_user_policy(cfg_t *sec, struct config_user_policy *u, bool *oom)
{
    u->lowercase = cfg_getbool(sec, "lowercase");
    u->strip_domain = cfg_getbool(sec, "strip_domain");
    u->append_domain = dup_opt(sec, "append_domain", oom);
    u->allowed_domains = dup_list(sec, "allowed_domains", &u->n_allowed_domains, oom);
    u->deny_users = dup_list(sec, "deny_users", &u->n_deny_users, oom);
}

/* Enabled only when the section exists and ttl or offline_grace is above 0. */
static void fill_cache(cfg_t *cfg, struct config_cache *c, bool *oom)
{
    cfg_t *sec = cfg_size(cfg, "cache") > 0 ? cfg_getnsec(cfg, "cache", 0) : NULL;

    if (sec == NULL)
        return;
    c->ttl_s = cfg_getint(sec, "ttl");
    c->offline_grace_s = cfg_getint(sec, "offline_grace");
    c->hash_cost = (unsigned)cfg_getint(sec, "hash_cost");
    c->max_failures = (unsigned)cfg_getint(sec, "max_failures");
    c->dir = dup_opt(sec, "dir", oom);
    c->enabled = c->ttl_s > 0 || c->offline_grace_s > 0;
}

enum config_result config_build(cfg_t *cfg, struct mailauth_config **out)
{
    struct mailauth_config *c = calloc(1, sizeof(*c));
    unsigned n = cfg_size(cfg, "server");
    bool oom = false;

    if (c == NULL)
        return CONFIG_ENOMEM;
    c->timeout_ms = (int)lround(cfg_getfloat(cfg, "timeout") * 1000.0);
    c->connect_timeout_ms = (int)lround(cfg_getfloat(cfg, "connect_timeout") * 1000.0);
    c->on_reject =
        strcmp(cfg_getstr(cfg, "on_reject"), "stop") == 0 ? ON_REJECT_STOP : ON_REJECT_NEXT;
    c->fail_delay_ms = (int)cfg_getint(cfg, "fail_delay");
    c->ca_file = dup_opt(cfg, "ca_file", &oom);
    c->ca_dir = dup_opt(cfg, "ca_dir", &oom);
    fill_user_policy(cfg_getsec(cfg, "user"), &c->user, &oom);
    fill_cache(cfg, &c->cache, &oom);
    if (!config_accounts_fill(cfg, &c->accounts))
        oom = true;
    if (n > 0) {
        c->servers = calloc(n, sizeof(*c->servers));
        if (c->servers == NULL)
            oom = true;
        else
            c->n_servers = n;
    }
    for (size_t i = 0; i < c->n_servers; i++)
        fill_server(cfg, cfg_getnsec(cfg, "server", (unsigned)i), &c->servers[i], &oom);
    if (oom) {
        config_free(c);
        return CONFIG_ENOMEM;
    }
    *out = c;
    return CONFIG_OK;
}

static void free_server(struct config_server *s)
{
    for (size_t i = 0; i < s->n_endpoints; i++)
        free(s->endpoints[i].host);
    free(s->endpoints);
    free(s->label);
    free(s->ca_file);
    free(s->ca_dir);
    free_list(s->domains, s->n_domains);
}

void config_free(struct mailauth_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_servers; i++)
        free_server(&cfg->servers[i]);
    free(cfg->servers);
    free(cfg->ca_file);
    free(cfg->ca_dir);
    free(cfg->cache.dir);
    config_accounts_free(&cfg->accounts);
    free(cfg->user.append_domain);
    free_list(cfg->user.allowed_domains, cfg->user.n_allowed_domains);
    free_list(cfg->user.deny_users, cfg->user.n_deny_users);
    free(cfg);
}
