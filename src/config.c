#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <confuse.h>

#define MAX_TIMEOUT_S 600.0
#define MAX_FAIL_DELAY_MS 60000
#define MAX_LABEL_LEN 63
#define MAX_HOST_LEN 253

/* libconfuse's lexer keeps its state in process globals (cfg_yyin, cfg_yylineno, ...), so two
 * threads must never parse at once. This lock is the module's only mutable global; it also
 * guards parse_log, the logger the libconfuse error callback writes to (the callback has no
 * context argument). */
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct logger *parse_log;

static const char *const option_names[] = {
    "timeout",
    "connect_timeout",
    "on_reject",
    "fail_delay",
    "ca_file",
    "ca_dir",
    "user",
    "lowercase",
    "append_domain",
    "strip_domain",
    "allowed_domains",
    "deny_users",
    "server",
    "protocol",
    "host",
    "port",
    "tls",
    "verify",
    "allow_cleartext",
    "apop",
    "domains",
    NULL,
};

const char *const *config_option_names(void)
{
    return option_names;
}

const char *protocol_name(enum mail_protocol p)
{
    return p == PROTOCOL_POP3 ? "pop3" : "imap";
}

const char *tls_mode_name(enum tls_mode m)
{
    switch (m) {
    case TLS_MODE_IMPLICIT:
        return "implicit";
    case TLS_MODE_STARTTLS:
        return "starttls";
    case TLS_MODE_NONE:
        return "none";
    }
    return "?";
}

static const char *cfg_where(cfg_t *cfg)
{
    return cfg != NULL && cfg->filename != NULL ? cfg->filename : "(config)";
}

MA_PRINTF(2, 0)
static void on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
    char msg[512];

    /* fmt comes from libconfuse or from the validators below, never from the file. */
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_msg(parse_log, LOG_ERR, "%s:%d: %s", cfg_where(cfg), cfg != NULL ? cfg->line : 0, msg);
}

/* Report a validation problem at the line where section sec starts. */
MA_PRINTF(3, 4)
static void report(cfg_t *root, cfg_t *sec, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int line = sec != NULL && sec->line > 0 ? sec->line : (root != NULL ? root->line : 0);

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_msg(parse_log, LOG_ERR, "%s:%d: %s", cfg_where(root), line, msg);
}

static bool parse_tls_mode(const char *s, enum tls_mode *out)
{
    if (strcmp(s, "implicit") == 0)
        *out = TLS_MODE_IMPLICIT;
    else if (strcmp(s, "starttls") == 0)
        *out = TLS_MODE_STARTTLS;
    else if (strcmp(s, "none") == 0)
        *out = TLS_MODE_NONE;
    else
        return false;
    return true;
}

static bool parse_apop_mode(const char *s, enum apop_mode *out)
{
    if (strcmp(s, "auto") == 0)
        *out = APOP_AUTO;
    else if (strcmp(s, "never") == 0)
        *out = APOP_NEVER;
    else if (strcmp(s, "only") == 0)
        *out = APOP_ONLY;
    else
        return false;
    return true;
}

static bool parse_protocol(const char *s, enum mail_protocol *out)
{
    if (strcmp(s, "imap") == 0)
        *out = PROTOCOL_IMAP;
    else if (strcmp(s, "pop3") == 0)
        *out = PROTOCOL_POP3;
    else
        return false;
    return true;
}

static bool host_is_valid(const char *h)
{
    size_t len = strlen(h);

    if (len == 0 || len > MAX_HOST_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '_')
            return false;
    }
    return true;
}

/* A domain name as written after '@': letters, digits, dots, hyphens; no leading '@'. */
static bool domain_is_valid(const char *d)
{
    size_t len = strlen(d);

    if (len == 0 || len > MAX_HOST_LEN || d[0] == '.' || d[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c < 0x80)
            return false;
    }
    return true;
}

static bool label_is_valid(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > MAX_LABEL_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '"')
            return false;
    }
    return true;
}

static bool path_is_readable(const char *path, bool want_dir)
{
    struct stat st;

    if (path[0] != '/' || stat(path, &st) != 0)
        return false;
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return false;
    return access(path, R_OK) == 0;
}

static int check_ca_paths(cfg_t *root, cfg_t *sec, const char *where)
{
    const char *file = cfg_getstr(sec != NULL ? sec : root, "ca_file");
    const char *dir = cfg_getstr(sec != NULL ? sec : root, "ca_dir");

    if (file != NULL && !path_is_readable(file, false)) {
        report(root, sec, "%sca_file \"%s\" is not a readable file (absolute path needed)", where,
               file);
        return -1;
    }
    if (dir != NULL && !path_is_readable(dir, true)) {
        report(root, sec, "%sca_dir \"%s\" is not a readable directory (absolute path needed)",
               where, dir);
        return -1;
    }
    return 0;
}

static int check_domain_list(cfg_t *root, cfg_t *sec, const char *opt, const char *where)
{
    unsigned n = cfg_size(sec, opt);

    for (unsigned i = 0; i < n; i++) {
        const char *d = cfg_getnstr(sec, opt, i);
        if (d == NULL || !domain_is_valid(d)) {
            report(root, sec, "%s%s: \"%s\" is not a domain name (write it without '@')", where,
                   opt, d != NULL ? d : "");
            return -1;
        }
    }
    return 0;
}

static int validate_timeout(cfg_t *cfg, cfg_opt_t *opt)
{
    double v = cfg_opt_getnfloat(opt, 0);

    if (!(v > 0.0) || v > MAX_TIMEOUT_S || !isfinite(v)) {
        cfg_error(cfg, "%s must be a number of seconds above 0 and at most %.0f", opt->name,
                  MAX_TIMEOUT_S);
        return -1;
    }
    return 0;
}

static int validate_on_reject(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *v = cfg_opt_getnstr(opt, 0);

    if (v == NULL || (strcmp(v, "next") != 0 && strcmp(v, "stop") != 0)) {
        cfg_error(cfg, "on_reject must be \"next\" or \"stop\"");
        return -1;
    }
    return 0;
}

static int validate_fail_delay(cfg_t *cfg, cfg_opt_t *opt)
{
    long v = cfg_opt_getnint(opt, 0);

    if (v < 0 || v > MAX_FAIL_DELAY_MS) {
        cfg_error(cfg, "fail_delay must be between 0 and %d milliseconds", MAX_FAIL_DELAY_MS);
        return -1;
    }
    return 0;
}

static int validate_server_ports(cfg_t *root, cfg_t *sec, const char *label, unsigned n_hosts)
{
    unsigned n_ports = cfg_size(sec, "port");

    if (n_ports > 1 && n_ports != n_hosts) {
        report(root, sec,
               "server \"%s\": %u ports for %u hosts; give one port for all hosts or exactly one "
               "per host",
               label, n_ports, n_hosts);
        return -1;
    }
    for (unsigned i = 0; i < n_ports; i++) {
        long p = cfg_getnint(sec, "port", i);
        if (p < 1 || p > 65535) {
            report(root, sec, "server \"%s\": port %ld is out of range 1-65535", label, p);
            return -1;
        }
    }
    return 0;
}

static int validate_server_modes(cfg_t *root, cfg_t *sec, const char *label)
{
    const char *proto = cfg_getstr(sec, "protocol");
    const char *tls = cfg_getstr(sec, "tls");
    const char *apop = cfg_getstr(sec, "apop");
    enum mail_protocol p;
    enum tls_mode t;
    enum apop_mode a;

    if (proto == NULL) {
        report(root, sec, "server \"%s\": protocol is required (imap or pop3)", label);
        return -1;
    }
    if (!parse_protocol(proto, &p)) {
        report(root, sec, "server \"%s\": protocol \"%s\" is not imap or pop3", label, proto);
        return -1;
    }
    if (tls != NULL && !parse_tls_mode(tls, &t)) {
        report(root, sec, "server \"%s\": tls \"%s\" is not implicit, starttls or none", label,
               tls);
        return -1;
    }
    if (apop == NULL || !parse_apop_mode(apop, &a)) {
        report(root, sec, "server \"%s\": apop \"%s\" is not auto, never or only", label,
               apop != NULL ? apop : "");
        return -1;
    }
    if (p != PROTOCOL_POP3 && a != APOP_AUTO) {
        report(root, sec, "server \"%s\": apop applies to pop3 servers only", label);
        return -1;
    }
    return 0;
}

static int validate_server(cfg_t *cfg, cfg_opt_t *opt)
{
    cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
    const char *label = cfg_title(sec);
    unsigned n_hosts = cfg_size(sec, "host");

    if (label == NULL || !label_is_valid(label)) {
        report(cfg, sec,
               "server label must be 1-%d printable characters without quotes or "
               "spaces",
               MAX_LABEL_LEN);
        return -1;
    }
    if (validate_server_modes(cfg, sec, label) != 0)
        return -1;
    if (n_hosts == 0) {
        report(cfg, sec, "server \"%s\": host is required", label);
        return -1;
    }
    for (unsigned i = 0; i < n_hosts; i++) {
        const char *h = cfg_getnstr(sec, "host", i);
        if (h == NULL || !host_is_valid(h)) {
            report(cfg, sec, "server \"%s\": host \"%s\" is not a host name or IP address", label,
                   h != NULL ? h : "");
            return -1;
        }
    }
    if (validate_server_ports(cfg, sec, label, n_hosts) != 0)
        return -1;
    if (check_ca_paths(cfg, sec, "server: ") != 0)
        return -1;
    return check_domain_list(cfg, sec, "domains", "server: ");
}

static int validate_user(cfg_t *cfg, cfg_opt_t *opt)
{
    cfg_t *sec = cfg_opt_getnsec(opt, 0);
    const char *append = cfg_getstr(sec, "append_domain");

    if (append != NULL && !domain_is_valid(append)) {
        report(cfg, sec, "user: append_domain \"%s\" is not a domain name (write it without '@')",
               append);
        return -1;
    }
    if (append != NULL && cfg_getbool(sec, "strip_domain")) {
        report(cfg, sec, "user: append_domain and strip_domain contradict each other");
        return -1;
    }
    return check_domain_list(cfg, sec, "allowed_domains", "user: ");
}

/* ---- conversion from libconfuse's tree into plain structs (already validated) ---- */

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
        if (tls == NULL || !parse_tls_mode(tls, &ep->tls))
            ep->tls = default_tls(port, n_ports > 0);
        ep->port = port != 0 ? port : default_port(srv->protocol, ep->tls);
    }
}

static void fill_server(cfg_t *sec, struct config_server *srv, bool *oom)
{
    srv->label = strdup(cfg_title(sec));
    if (srv->label == NULL)
        *oom = true;
    parse_protocol(cfg_getstr(sec, "protocol"), &srv->protocol);
    parse_apop_mode(cfg_getstr(sec, "apop"), &srv->apop);
    srv->verify = cfg_getbool(sec, "verify");
    srv->allow_cleartext = cfg_getbool(sec, "allow_cleartext");
    srv->ca_file = dup_opt(sec, "ca_file", oom);
    srv->ca_dir = dup_opt(sec, "ca_dir", oom);
    srv->domains = dup_list(sec, "domains", &srv->n_domains, oom);
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

static enum config_result build_config(cfg_t *cfg, struct mailauth_config **out)
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
    if (n > 0) {
        c->servers = calloc(n, sizeof(*c->servers));
        if (c->servers == NULL)
            oom = true;
        else
            c->n_servers = n;
    }
    for (size_t i = 0; i < c->n_servers; i++)
        fill_server(cfg_getnsec(cfg, "server", (unsigned)i), &c->servers[i], &oom);
    if (oom) {
        config_free(c);
        return CONFIG_ENOMEM;
    }
    *out = c;
    return CONFIG_OK;
}

static cfg_t *new_parser(void)
{
    /* Option tables live on the stack: cfg_init copies them, so nothing static is mutated. */
    char deny_default[] = "{root}";
    cfg_opt_t server_opts[] = {
        CFG_STR("protocol", NULL, CFGF_NODEFAULT),
        CFG_STR_LIST("host", NULL, CFGF_NODEFAULT),
        CFG_INT_LIST("port", NULL, CFGF_NODEFAULT),
        CFG_STR("tls", NULL, CFGF_NODEFAULT),
        CFG_BOOL("verify", cfg_true, CFGF_NONE),
        CFG_BOOL("allow_cleartext", cfg_false, CFGF_NONE),
        CFG_STR("apop", "auto", CFGF_NONE),
        CFG_STR("ca_file", NULL, CFGF_NODEFAULT),
        CFG_STR("ca_dir", NULL, CFGF_NODEFAULT),
        CFG_STR_LIST("domains", NULL, CFGF_NODEFAULT),
        CFG_END(),
    };
    cfg_opt_t user_opts[] = {
        CFG_BOOL("lowercase", cfg_false, CFGF_NONE),
        CFG_STR("append_domain", NULL, CFGF_NODEFAULT),
        CFG_BOOL("strip_domain", cfg_false, CFGF_NONE),
        CFG_STR_LIST("allowed_domains", NULL, CFGF_NODEFAULT),
        CFG_STR_LIST("deny_users", deny_default, CFGF_NONE),
        CFG_END(),
    };
    cfg_opt_t root_opts[] = {
        CFG_FLOAT("timeout", 10.0, CFGF_NONE),
        CFG_FLOAT("connect_timeout", 3.0, CFGF_NONE),
        CFG_STR("on_reject", "next", CFGF_NONE),
        CFG_INT("fail_delay", 2000, CFGF_NONE),
        CFG_STR("ca_file", NULL, CFGF_NODEFAULT),
        CFG_STR("ca_dir", NULL, CFGF_NODEFAULT),
        CFG_SEC("user", user_opts, CFGF_NONE),
        CFG_SEC("server", server_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
        CFG_END(),
    };
    cfg_t *cfg = cfg_init(root_opts, CFGF_NONE);

    if (cfg == NULL)
        return NULL;
    cfg_set_error_function(cfg, on_cfg_error);
    cfg_set_validate_func(cfg, "timeout", validate_timeout);
    cfg_set_validate_func(cfg, "connect_timeout", validate_timeout);
    cfg_set_validate_func(cfg, "on_reject", validate_on_reject);
    cfg_set_validate_func(cfg, "fail_delay", validate_fail_delay);
    cfg_set_validate_func(cfg, "server", validate_server);
    cfg_set_validate_func(cfg, "user", validate_user);
    return cfg;
}

static bool starts_token(const char *buf, size_t i)
{
    return i == 0 || strchr(" \t\r\n={},", buf[i - 1]) != NULL;
}

/* libconfuse 3.3 miscounts lines after comments ('#' and '//' lines count three times, block
 * comments one extra), which would make every file:line we report point past the real line.
 * Overwrite comments with spaces, keeping newlines (the lexer then sees the same tokens), so its
 * line counter stays true. Quoted strings are tracked so that a '#' inside a value is kept;
 * '#' outside quotes is always a comment to libconfuse, '//' only where a token starts.
 * libconfuse also accepts a section left open at the end of the file; return the line of the
 * first '{' never closed (0 when all are closed) so that a truncated file is refused. */
int config_blank_comments(char *buf, size_t len)
{
    enum { NORMAL, DQUOTE, SQUOTE, BLOCK, LINE } st = NORMAL;
    int line = 1;
    int depth = 0;
    int open_line = 0;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\n')
            line++;
        switch (st) {
        case NORMAL:
            if (c == '"')
                st = DQUOTE;
            else if (c == '\'')
                st = SQUOTE;
            else if (c == '{' && depth++ == 0)
                open_line = line;
            else if (c == '}' && depth > 0)
                depth--;
            else if (c == '/' && i + 1 < len && buf[i + 1] == '*')
                st = BLOCK, buf[i] = ' ', buf[++i] = ' ';
            else if (c == '#' ||
                     (c == '/' && i + 1 < len && buf[i + 1] == '/' && starts_token(buf, i)))
                st = LINE, buf[i] = ' ';
            break;
        case DQUOTE:
        case SQUOTE:
            if (c == '\\' && i + 1 < len && buf[i + 1] != '\n')
                i++;
            else if (c == (st == DQUOTE ? '"' : '\''))
                st = NORMAL;
            break;
        case BLOCK:
            if (c == '*' && i + 1 < len && buf[i + 1] == '/')
                st = NORMAL, buf[i] = ' ', buf[++i] = ' ';
            else if (c != '\n')
                buf[i] = ' ';
            break;
        case LINE:
            if (c == '\n')
                st = NORMAL;
            else
                buf[i] = ' ';
            break;
        }
    }
    return depth > 0 ? open_line : 0;
}

static enum config_result parse_locked(char *buf, size_t len, const char *name,
                                       struct mailauth_config **out)
{
    enum config_result res = CONFIG_EINVAL;
    cfg_t *cfg = new_parser();
    FILE *fp = NULL;
    int open_line;
    int rc;

    if (cfg == NULL)
        return CONFIG_ENOMEM;
    /* cfg_parse_buf would call the file "[buf]"; name the real file in every message. */
    free(cfg->filename);
    cfg->filename = strdup(name);
    open_line = config_blank_comments(buf, len);
    if (open_line > 0) {
        log_msg(parse_log, LOG_ERR, "%s:%d: section is never closed (missing '}')", name,
                open_line);
        goto out;
    }
    fp = fmemopen(buf, len, "r");
    if (cfg->filename == NULL || fp == NULL) {
        res = CONFIG_ENOMEM;
        goto out;
    }
    rc = cfg_parse_fp(cfg, fp);
    if (rc == CFG_PARSE_ERROR)
        goto out;
    if (rc != CFG_SUCCESS) {
        res = CONFIG_ENOMEM;
        goto out;
    }
    if (check_ca_paths(cfg, NULL, "") != 0)
        goto out;
    if (cfg_size(cfg, "server") == 0) {
        log_msg(parse_log, LOG_ERR, "%s: no server section: nothing to authenticate against", name);
        goto out;
    }
    res = build_config(cfg, out);
out:
    if (fp != NULL)
        fclose(fp);
    cfg_free(cfg);
    return res;
}

enum config_result config_parse_buffer(const char *buf, size_t len, const char *name,
                                       const struct logger *log, struct mailauth_config **out)
{
    enum config_result res;
    char *copy;

    *out = NULL;
    if (memchr(buf, '\0', len) != NULL) {
        log_msg(log, LOG_ERR, "%s: contains a NUL byte; not a text file", name);
        return CONFIG_EINVAL;
    }
    if (len > CONFIG_MAX_BYTES) {
        log_msg(log, LOG_ERR, "%s: larger than %d bytes", name, CONFIG_MAX_BYTES);
        return CONFIG_EINVAL;
    }
    if (len == 0) {
        log_msg(log, LOG_ERR, "%s: empty; no server section to authenticate against", name);
        return CONFIG_EINVAL;
    }
    copy = malloc(len + 1);
    if (copy == NULL)
        return CONFIG_ENOMEM;
    memcpy(copy, buf, len);
    copy[len] = '\0';
    pthread_mutex_lock(&parse_lock);
    parse_log = log;
    res = parse_locked(copy, len, name, out);
    parse_log = NULL;
    pthread_mutex_unlock(&parse_lock);
    free(copy);
    return res;
}

static enum config_result read_safely(const char *path, const struct logger *log, char **buf_out,
                                      size_t *len_out)
{
    enum config_result res = CONFIG_EIO;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    char ebuf[128];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        log_msg(log, LOG_ERR, "%s: cannot open: %s", path, errno_text(errno, ebuf, sizeof(ebuf)));
        return CONFIG_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_msg(log, LOG_ERR, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        log_msg(log, LOG_ERR, "%s: owned by uid %u; must be owned by root", path,
                (unsigned)st.st_uid);
        goto out;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        log_msg(log, LOG_ERR, "%s: group or world writable; refusing to trust it", path);
        goto out;
    }
    if (st.st_size > CONFIG_MAX_BYTES) {
        log_msg(log, LOG_ERR, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        res = CONFIG_ENOMEM;
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_msg(log, LOG_ERR, "%s: read failed", path);
            goto out;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    buf = NULL;
    res = CONFIG_OK;
out:
    free(buf);
    close(fd);
    return res;
}

enum config_result config_load_file(const char *path, const struct logger *log,
                                    struct mailauth_config **out)
{
    char *buf = NULL;
    size_t len = 0;
    enum config_result res;

    *out = NULL;
    res = read_safely(path, log, &buf, &len);
    if (res != CONFIG_OK)
        return res;
    res = config_parse_buffer(buf, len, path, log, out);
    free(buf);
    return res;
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
    free(cfg->user.append_domain);
    free_list(cfg->user.allowed_domains, cfg->user.n_allowed_domains);
    free_list(cfg->user.deny_users, cfg->user.n_deny_users);
    free(cfg);
}
