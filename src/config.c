/* The config parser's entry points, the top of the config files: libconfuse's option table and
 * the sequence file -> text -> tree -> validated structs. Below it, called from here and never
 * calling back: the safe read and the identity (config_file.c), text preprocessing
 * (config_text.c), validation (config_check.c, config_accounts.c), conversion (config_build.c),
 * and the parse in progress with its lock (config_context.c). */
#include "config_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every option name of the parser's own table (new_parser below), each once: the one list of
 * options, so the documentation test (test_manpage) cannot miss one the parser knows. */
static const char *option_names[CONFIG_MAX_OPTION_NAMES + 1];
static pthread_once_t option_names_once = PTHREAD_ONCE_INIT;

static cfg_t *new_parser(void);

static void add_option_names(const cfg_opt_t *opts, size_t *n)
{
    for (; opts != NULL && opts->name != NULL; opts++) {
        bool seen = false;
        for (size_t i = 0; i < *n && !seen; i++)
            seen = strcmp(option_names[i], opts->name) == 0;
        if (!seen && *n < CONFIG_MAX_OPTION_NAMES && (option_names[*n] = strdup(opts->name)))
            (*n)++;
        if (opts->type == CFGT_SEC)
            add_option_names(opts->subopts, n);
    }
}

static void collect_option_names(void)
{
    cfg_t *cfg = new_parser();
    size_t n = 0;

    if (cfg != NULL)
        add_option_names(cfg->opts, &n);
    cfg_free(cfg);
}

const char *const *config_option_names(void)
{
    pthread_once(&option_names_once, collect_option_names);
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
        CFG_STR_LIST("mechanisms", NULL, CFGF_NODEFAULT),
        CFG_STR("forward_client_ip", NULL, CFGF_NODEFAULT),
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
    cfg_opt_t cache_opts[] = {
        CFG_STR("dir", CONFIG_CACHE_DEFAULT_DIR, CFGF_NONE),
        CFG_INT("ttl", 0, CFGF_NONE),
        CFG_INT("offline_grace", 0, CFGF_NONE),
        CFG_INT("hash_cost", 2, CFGF_NONE),
        CFG_INT("max_failures", 5, CFGF_NONE),
        CFG_END(),
    };
    /* The accounts section: config_accounts.c validates and converts it. */
    cfg_opt_t accounts_opts[] = {
        CFG_STR("registry", ACCT_REGISTRY_PATH, CFGF_NONE),
        CFG_INT("uid_min", 70000, CFGF_NONE),
        CFG_INT("uid_max", 99999, CFGF_NONE),
        CFG_STR("home", "/home/%u", CFGF_NONE),
        CFG_STR("shell", "/bin/bash", CFGF_NONE),
        CFG_STR("group", "private", CFGF_NONE),
        CFG_STR_LIST("domain_groups", NULL, CFGF_NODEFAULT),
        CFG_STR_LIST("groups", NULL, CFGF_NODEFAULT),
        CFG_END(),
    };
    cfg_opt_t root_opts[] = {
        CFG_FLOAT("timeout", CONFIG_DEFAULT_TIMEOUT_S, CFGF_NONE),
        CFG_FLOAT("connect_timeout", 3.0, CFGF_NONE),
        CFG_STR("on_reject", "next", CFGF_NONE),
        CFG_STR("forward_client_ip", "auto", CFGF_NONE),
        CFG_INT("fail_delay", 2000, CFGF_NONE),
        CFG_STR("ca_file", NULL, CFGF_NODEFAULT),
        CFG_STR("ca_dir", NULL, CFGF_NODEFAULT),
        CFG_STR_LIST("mechanisms", NULL, CFGF_NODEFAULT),
        CFG_SEC("user", user_opts, CFGF_NONE),
        CFG_SEC("server", server_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
        /* MULTI so that an absent section is told apart (size 0) and a second one is an error. */
        CFG_SEC("cache", cache_opts, CFGF_MULTI),
        CFG_SEC("accounts", accounts_opts, CFGF_MULTI),
        CFG_END(),
    };
    cfg_t *cfg = cfg_init(root_opts, CFGF_NONE);

    if (cfg == NULL)
        return NULL;
    cfg_set_error_function(cfg, config_on_cfg_error);
    cfg_set_validate_func(cfg, "timeout", config_validate_timeout);
    cfg_set_validate_func(cfg, "connect_timeout", config_validate_timeout);
    cfg_set_validate_func(cfg, "on_reject", config_validate_on_reject);
    cfg_set_validate_func(cfg, "forward_client_ip", config_validate_forward_client_ip);
    cfg_set_validate_func(cfg, "fail_delay", config_validate_fail_delay);
    cfg_set_validate_func(cfg, "server", config_validate_server);
    cfg_set_validate_func(cfg, "user", config_validate_user);
    cfg_set_validate_func(cfg, "cache", config_validate_cache);
    cfg_set_validate_func(cfg, "accounts", config_validate_accounts);
    return cfg;
}

/* Counts what the parse logged, so that a refusal libconfuse gives no reason for (an empty
 * option name, for one) still gets a file:line message. */
struct log_counter {
    const struct logger *next;
    int messages;
};

MA_PRINTF(3, 0)
static void count_and_forward(void *ctx, int priority, const char *fmt, va_list ap)
{
    struct log_counter *c = ctx;

    c->messages++;
    if (c->next != NULL && c->next->sink != NULL)
        c->next->sink(c->next->ctx, priority, fmt, ap);
}

static enum config_result parse_locked(char *buf, size_t len, const char *name,
                                       const struct log_counter *logged,
                                       struct mailauth_config **out)
{
    enum config_result res = CONFIG_EINVAL;
    cfg_t *cfg = new_parser();
    FILE *fp = NULL;
    int open_line;
    int env_line;
    int rc;

    if (cfg == NULL)
        return CONFIG_ENOMEM;
    /* cfg_parse_buf would call the file "[buf]"; name the real file in every message. */
    free(cfg->filename);
    cfg->filename = strdup(name);
    open_line = config_blank_comments(buf, len);
    if (open_line > 0) {
        log_msg(config_log(), LOG_ERR, "%s:%d: section is never closed (missing '}')", name,
                open_line);
        goto out;
    }
    env_line = config_find_env_reference(buf, len);
    if (env_line > 0) {
        log_msg(config_log(), LOG_ERR,
                "%s:%d: \"${\" is not allowed: it would be replaced from the environment, "
                "which the program calling PAM (su, sudo, ...) controls; write the value itself",
                name, env_line);
        goto out;
    }
    fp = fmemopen(buf, len, "r");
    if (cfg->filename == NULL || fp == NULL) {
        res = CONFIG_ENOMEM;
        goto out;
    }
    rc = cfg_parse_fp(cfg, fp);
    if (rc == CFG_PARSE_ERROR) {
        if (logged->messages == 0)
            log_msg(config_log(), LOG_ERR, "%s:%d: syntax error", name, cfg->line);
        goto out;
    }
    if (rc != CFG_SUCCESS) {
        res = CONFIG_ENOMEM;
        goto out;
    }
    if (config_check_ca_paths(cfg, NULL, "") != 0 || config_check_global_mechanisms(cfg) != 0)
        goto out;
    if (cfg_size(cfg, "server") == 0) {
        log_msg(config_log(), LOG_ERR, "%s: no server section: nothing to authenticate against",
                name);
        goto out;
    }
    res = config_build(cfg, out);
out:
    if (fp != NULL)
        fclose(fp);
    cfg_free(cfg);
    return res;
}

enum config_result config_parse_buffer(const char *buf, size_t len, const char *name,
                                       const struct logger *log, struct mailauth_config **out)
{
    struct log_counter counter = {log, 0};
    const struct logger counted = {
        .sink = count_and_forward, .ctx = &counter, .debug = log != NULL && log->debug};
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
    res = config_context_begin(&counted, name, config_lock_wait_ms());
    if (res == CONFIG_OK) {
        res = parse_locked(copy, len, name, &counter, out);
        config_context_end();
    }
    free(copy);
    /* The identity covers the text as written, comments included: any edit is a new config. */
    if (res == CONFIG_OK && config_identity(name, buf, len, (*out)->identity) != 0) {
        config_free(*out);
        *out = NULL;
        res = CONFIG_ENOMEM;
    }
    return res;
}

enum config_result config_load_file(const char *path, const struct logger *log,
                                    struct mailauth_config **out)
{
    char *buf = NULL;
    size_t len = 0;
    enum config_result res;

    *out = NULL;
    res = config_read_file(path, log, &buf, &len);
    if (res != CONFIG_OK)
        return res;
    res = config_parse_buffer(buf, len, path, log, out);
    if (res == CONFIG_OK) {
        /* The canonical path: one file reached by two spellings is one config. Without it the
         * path as given (set by config_parse_buffer) still tells two files apart. */
        char *canon = realpath(path, NULL);
        if (canon != NULL && config_identity(canon, buf, len, (*out)->identity) != 0) {
            config_free(*out);
            *out = NULL;
            res = CONFIG_ENOMEM;
        }
        free(canon);
    }
    free(buf);
    return res;
}
