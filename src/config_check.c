/* Validation of a parsed config: every check that gives a file:line error. Runs under the parse
 * lock (config.c), from libconfuse's validation callbacks. */
#include "config_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sasl/mech.h"

#define MAX_TIMEOUT_S 600.0
#define MAX_FAIL_DELAY_MS 60000
#define MAX_LABEL_LEN 63
#define MAX_HOST_LEN 253
#define MAX_CACHE_DIR_LEN 1024
#define MAX_CACHE_AGE_S 31536000L /* one year: a bound against typos, not a recommendation */
#define MAX_CACHE_HASH_COST 11
#define MAX_CACHE_FAILURES 1000

static const char *cfg_where(cfg_t *cfg)
{
    if (cfg != NULL && cfg->filename != NULL)
        return cfg->filename;
    return config_file_name() != NULL ? config_file_name() : "(config)";
}

void config_on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
    char msg[512];

    /* fmt comes from libconfuse or from the validators below, never from the file. */
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_msg(config_log(), LOG_ERR, "%s:%d: %s", cfg_where(cfg), cfg != NULL ? cfg->line : 0, msg);
}

/* Report a validation problem at the line where section sec starts. */
void config_report(cfg_t *root, cfg_t *sec, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int line = sec != NULL && sec->line > 0 ? sec->line : (root != NULL ? root->line : 0);

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_msg(config_log(), LOG_ERR, "%s:%d: %s", cfg_where(root), line, msg);
}

bool config_parse_tls_mode(const char *s, enum tls_mode *out)
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

bool config_parse_apop_mode(const char *s, enum apop_mode *out)
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

bool config_parse_forward(const char *s, bool *out)
{
    if (strcmp(s, "auto") == 0)
        *out = true;
    else if (strcmp(s, "never") == 0)
        *out = false;
    else
        return false;
    return true;
}

bool config_parse_protocol(const char *s, enum mail_protocol *out)
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

int config_check_ca_paths(cfg_t *root, cfg_t *sec, const char *where)
{
    const char *file = cfg_getstr(sec != NULL ? sec : root, "ca_file");
    const char *dir = cfg_getstr(sec != NULL ? sec : root, "ca_dir");

    if (file != NULL && !path_is_readable(file, false)) {
        config_report(root, sec, "%sca_file \"%s\" is not a readable file (absolute path needed)",
                      where, file);
        return -1;
    }
    if (dir != NULL && !path_is_readable(dir, true)) {
        config_report(root, sec,
                      "%sca_dir \"%s\" is not a readable directory (absolute path needed)", where,
                      dir);
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
            config_report(root, sec, "%s%s: \"%s\" is not a domain name (write it without '@')",
                          where, opt, d != NULL ? d : "");
            return -1;
        }
    }
    return 0;
}

/* Timeouts are kept in whole milliseconds: a value the conversion would round (0.0001 would
 * become 0, 1.0005 would become 1.001) is refused rather than silently changed. */
int config_validate_timeout(cfg_t *cfg, cfg_opt_t *opt)
{
    double v = cfg_opt_getnfloat(opt, 0);
    double ms = v * 1000.0;

    if (!isfinite(v) || !(v > 0.0) || v > MAX_TIMEOUT_S) {
        cfg_error(cfg, "%s must be a number of seconds above 0 and at most %.0f", opt->name,
                  MAX_TIMEOUT_S);
        return -1;
    }
    if (ms < 1.0 - 1e-6 || fabs(ms - nearbyint(ms)) > 1e-6) {
        cfg_error(cfg,
                  "%s = %g is not a whole number of milliseconds of at least 1 (0.001 s); "
                  "timeouts are counted in milliseconds",
                  opt->name, v);
        return -1;
    }
    return 0;
}

int config_validate_on_reject(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *v = cfg_opt_getnstr(opt, 0);

    if (v == NULL || (strcmp(v, "next") != 0 && strcmp(v, "stop") != 0)) {
        cfg_error(cfg, "on_reject must be \"next\" or \"stop\"");
        return -1;
    }
    return 0;
}

int config_validate_forward_client_ip(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *v = cfg_opt_getnstr(opt, 0);
    bool on;

    if (v == NULL || !config_parse_forward(v, &on)) {
        cfg_error(cfg, "forward_client_ip must be \"auto\" or \"never\"");
        return -1;
    }
    return 0;
}

int config_validate_fail_delay(cfg_t *cfg, cfg_opt_t *opt)
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
        config_report(
            root, sec,
            "server \"%s\": %u ports for %u hosts; give one port for all hosts or exactly one "
            "per host",
            label, n_ports, n_hosts);
        return -1;
    }
    for (unsigned i = 0; i < n_ports; i++) {
        long p = cfg_getnint(sec, "port", i);
        if (p < 1 || p > 65535) {
            config_report(root, sec, "server \"%s\": port %ld is out of range 1-65535", label, p);
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
    const char *forward = cfg_getstr(sec, "forward_client_ip");
    bool on;
    enum mail_protocol p;
    enum tls_mode t;
    enum apop_mode a;

    if (proto == NULL) {
        config_report(root, sec, "server \"%s\": protocol is required (imap or pop3)", label);
        return -1;
    }
    if (!config_parse_protocol(proto, &p)) {
        config_report(root, sec, "server \"%s\": protocol \"%s\" is not imap or pop3", label,
                      proto);
        return -1;
    }
    if (tls != NULL && !config_parse_tls_mode(tls, &t)) {
        config_report(root, sec, "server \"%s\": tls \"%s\" is not implicit, starttls or none",
                      label, tls);
        return -1;
    }
    if (apop == NULL || !config_parse_apop_mode(apop, &a)) {
        config_report(root, sec, "server \"%s\": apop \"%s\" is not auto, never or only", label,
                      apop != NULL ? apop : "");
        return -1;
    }
    if (forward != NULL && !config_parse_forward(forward, &on)) {
        config_report(root, sec, "server \"%s\": forward_client_ip \"%s\" is not auto or never",
                      label, forward);
        return -1;
    }
    if (p != PROTOCOL_POP3 && a != APOP_AUTO) {
        config_report(root, sec, "server \"%s\": apop applies to pop3 servers only", label);
        return -1;
    }
    if (a != APOP_AUTO && cfg_size(sec, "mechanisms") > 0) {
        config_report(root, sec,
                      "server \"%s\": apop and mechanisms together: with mechanisms, APOP and "
                      "USER/PASS are not used",
                      label);
        return -1;
    }
    return config_mechanisms(root, sec, NULL, NULL);
}

int config_mechanisms(cfg_t *root, cfg_t *sec, unsigned char *ids, unsigned *n)
{
    cfg_t *where = sec != NULL ? sec : root;
    unsigned size = cfg_size(where, "mechanisms");
    unsigned char seen[8];

    if (size > sizeof(seen)) {
        config_report(root, sec, "mechanisms: more than %zu names", sizeof(seen));
        return -1;
    }
    for (unsigned i = 0; i < size; i++) {
        const char *name = cfg_getnstr(where, "mechanisms", i);
        const struct sasl_mech *m = name != NULL ? sasl_mech_by_name(name, strlen(name)) : NULL;
        if (m == NULL) {
            config_report(root, sec,
                          "mechanisms: \"%s\" is not one of scram-sha-256-plus, scram-sha-256, "
                          "scram-sha-1, cram-md5, plain, login",
                          name != NULL ? name : "");
            return -1;
        }
        seen[i] = (unsigned char)m->id;
        for (unsigned k = 0; k < i; k++) {
            if (seen[k] == seen[i]) {
                config_report(root, sec, "mechanisms: \"%s\" is listed twice", name);
                return -1;
            }
        }
    }
    if (ids != NULL) {
        memcpy(ids, seen, size);
        *n = size;
    }
    return 0;
}

int config_check_global_mechanisms(cfg_t *root)
{
    return config_mechanisms(root, NULL, NULL, NULL);
}

int config_validate_server(cfg_t *cfg, cfg_opt_t *opt)
{
    cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
    const char *label = cfg_title(sec);
    unsigned n_hosts = cfg_size(sec, "host");

    if (label == NULL || !label_is_valid(label)) {
        config_report(cfg, sec,
                      "server label must be 1-%d printable characters without quotes or "
                      "spaces",
                      MAX_LABEL_LEN);
        return -1;
    }
    if (validate_server_modes(cfg, sec, label) != 0)
        return -1;
    if (n_hosts == 0) {
        config_report(cfg, sec, "server \"%s\": host is required", label);
        return -1;
    }
    for (unsigned i = 0; i < n_hosts; i++) {
        const char *h = cfg_getnstr(sec, "host", i);
        if (h == NULL || !host_is_valid(h)) {
            config_report(cfg, sec, "server \"%s\": host \"%s\" is not a host name or IP address",
                          label, h != NULL ? h : "");
            return -1;
        }
    }
    if (validate_server_ports(cfg, sec, label, n_hosts) != 0)
        return -1;
    if (config_check_ca_paths(cfg, sec, "server: ") != 0)
        return -1;
    return check_domain_list(cfg, sec, "domains", "server: ");
}

int config_validate_user(cfg_t *cfg, cfg_opt_t *opt)
{
    cfg_t *sec = cfg_opt_getnsec(opt, 0);
    const char *append = cfg_getstr(sec, "append_domain");

    if (append != NULL && !domain_is_valid(append)) {
        config_report(cfg, sec,
                      "user: append_domain \"%s\" is not a domain name (write it without '@')",
                      append);
        return -1;
    }
    if (append != NULL && cfg_getbool(sec, "strip_domain")) {
        config_report(cfg, sec, "user: append_domain and strip_domain contradict each other");
        return -1;
    }
    return check_domain_list(cfg, sec, "allowed_domains", "user: ");
}

static int check_cache_range(cfg_t *root, cfg_t *sec, const char *opt, long lo, long hi,
                             const char *unit)
{
    long v = cfg_getint(sec, opt);

    if (v < lo || v > hi) {
        config_report(root, sec, "cache: %s = %ld is out of range %ld-%ld%s", opt, v, lo, hi, unit);
        return -1;
    }
    return 0;
}

int config_validate_cache(cfg_t *cfg, cfg_opt_t *opt)
{
    unsigned n = cfg_opt_size(opt);
    cfg_t *sec = cfg_opt_getnsec(opt, n - 1);
    const char *dir = cfg_getstr(sec, "dir");

    if (n > 1) {
        config_report(cfg, sec, "cache: only one cache section is allowed");
        return -1;
    }
    if (dir == NULL || dir[0] != '/' || strlen(dir) > MAX_CACHE_DIR_LEN) {
        config_report(cfg, sec, "cache: dir \"%s\" must be an absolute path of at most %d bytes",
                      dir != NULL ? dir : "", MAX_CACHE_DIR_LEN);
        return -1;
    }
    for (const char *p = dir; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            config_report(cfg, sec, "cache: dir contains a control character");
            return -1;
        }
    }
    if (check_cache_range(cfg, sec, "ttl", 0, MAX_CACHE_AGE_S, " seconds") != 0 ||
        check_cache_range(cfg, sec, "offline_grace", 0, MAX_CACHE_AGE_S, " seconds") != 0 ||
        check_cache_range(cfg, sec, "hash_cost", 1, MAX_CACHE_HASH_COST, "") != 0 ||
        check_cache_range(cfg, sec, "max_failures", 1, MAX_CACHE_FAILURES, "") != 0)
        return -1;
    return 0;
}
