/* pam_mailauth: PAM glue only. Parse arguments, load the config, get user and password, ask the
 * core, map its answer to a PAM code (to_pam_code is the only place that does), log one line. */
#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "accounts.h"
#include "config.h"
#include "log.h"
#include "log_field.h"
#include "mailauth.h"
#include "util.h"

#define PAM_EXPORT __attribute__((visibility("default")))
/* pam_set_data key: this handle's login registered the account (pam_sm_acct_mgmt refuses it). */
#define CREATED_KEY "pam_mailauth_account_created"

struct module_args {
    const char *config_path;
    bool debug;
    bool quiet;
};

static void parse_args(pam_handle_t *pamh, int argc, const char **argv, struct module_args *a)
{
    static const char config_prefix[] = "config=";

    *a = (struct module_args){.config_path = CONFIG_DEFAULT_PATH};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, config_prefix, sizeof(config_prefix) - 1) == 0 &&
            arg[sizeof(config_prefix) - 1] != '\0')
            a->config_path = arg + sizeof(config_prefix) - 1;
        else if (strcmp(arg, "debug") == 0)
            a->debug = true;
        else if (strcmp(arg, "quiet") == 0)
            a->quiet = true;
        else if (strcmp(arg, "use_first_pass") == 0 || strcmp(arg, "try_first_pass") == 0 ||
                 strcmp(arg, "use_authtok") == 0)
            continue; /* read by pam_get_authtok() itself */
        else
            pam_syslog(pamh, LOG_ERR, "unknown module argument ignored: %s", arg);
    }
}

/* A relative path would be resolved against the calling program's working directory, which the
 * user running su chooses: the owner and mode checks would then judge a file of their choosing. */
static bool config_path_usable(pam_handle_t *pamh, const char *path)
{
    if (path[0] == '/')
        return true;
    pam_syslog(pamh, LOG_ERR, "config=%s is not an absolute path; refused", path);
    return false;
}

MA_PRINTF(3, 0)
static void pam_log_sink(void *ctx, int priority, const char *fmt, va_list ap)
{
    pam_vsyslog((pam_handle_t *)ctx, priority, fmt, ap);
}

static int to_pam_code(enum mailauth_result r)
{
    switch (r) {
    case MAILAUTH_OK:
        return PAM_SUCCESS;
    case MAILAUTH_REJECTED:
    case MAILAUTH_BADINPUT:
        return PAM_AUTH_ERR;
    case MAILAUTH_DENIED:
        return PAM_USER_UNKNOWN;
    case MAILAUTH_UNAVAIL:
        return PAM_AUTHINFO_UNAVAIL;
    }
    return PAM_AUTH_ERR; /* never reached; never a success by accident */
}

static int log_priority(enum mailauth_result r)
{
    switch (r) {
    case MAILAUTH_OK:
        return LOG_INFO;
    case MAILAUTH_UNAVAIL:
        return LOG_ERR;
    case MAILAUTH_REJECTED:
    case MAILAUTH_BADINPUT:
    case MAILAUTH_DENIED:
        break;
    }
    return LOG_NOTICE;
}

/* Who asked, as the last fields of the result line: " service=S rhost=R" (log_field.h), so that
 * a log reader (the fail2ban filter, debian/fail2ban-filter.conf) anchored at the line's end finds
 * the real client address whatever the user name, the server's text or PAM_RHOST hold. */
static void client_fields(pam_handle_t *pamh, char *out, size_t cap)
{
    const void *service = NULL;
    const void *rhost = NULL;
    char svc[LOG_FIELD_MAX];
    char host[LOG_FIELD_MAX];

    if (pam_get_item(pamh, PAM_SERVICE, &service) != PAM_SUCCESS)
        service = NULL;
    if (pam_get_item(pamh, PAM_RHOST, &rhost) != PAM_SUCCESS)
        rhost = NULL;
    log_field(svc, sizeof(svc), service);
    log_field(host, sizeof(host), rhost);
    snprintf(out, cap, " service=%s rhost=%s", svc, host);
}

static void log_outcome(pam_handle_t *pamh, enum mailauth_result r,
                        const struct mailauth_report *rep)
{
    char user[LOG_FIELD_MAX];
    char who[2 * LOG_FIELD_MAX + 32];

    log_field(user, sizeof(user), rep->user);
    client_fields(pamh, who, sizeof(who));
    if (r == MAILAUTH_OK && rep->source == MAILAUTH_SOURCE_CACHE) {
        pam_syslog(pamh, LOG_INFO, "user=%s result=accepted source=%s age_s=%ld elapsed_ms=%ld%s",
                   user, mailauth_source_name(rep->source), rep->cache_age_s, rep->elapsed_ms, who);
        return;
    }
    if (r == MAILAUTH_OK && rep->source == MAILAUTH_SOURCE_OFFLINE) {
        /* notice: no server confirmed this password now; say why and how old the entry is */
        pam_syslog(pamh, LOG_NOTICE,
                   "user=%s result=accepted source=%s age_s=%ld elapsed_ms=%ld attempts=%u "
                   "reason=\"%s\"%s",
                   user, mailauth_source_name(rep->source), rep->cache_age_s, rep->elapsed_ms,
                   rep->attempts, rep->reason, who);
        return;
    }
    if (r == MAILAUTH_OK) {
        pam_syslog(pamh, LOG_INFO, "user=%s result=accepted server=%s address=%s elapsed_ms=%ld%s",
                   user, rep->label, rep->address, rep->elapsed_ms, who);
        return;
    }
    pam_syslog(pamh, log_priority(r),
               "user=%s result=%s server=%s address=%s elapsed_ms=%ld attempts=%u reason=\"%s\"%s",
               user, mailauth_result_name(r), rep->label[0] != '\0' ? rep->label : "-",
               rep->address[0] != '\0' ? rep->address : "-", rep->elapsed_ms, rep->attempts,
               rep->reason, who);
}

/* Tell the user only what helps and reveals nothing about the account: what a server asked to
 * be shown (received over TLS, cleaned by the core: alert.h), and that no server could answer. */
static void tell_user(pam_handle_t *pamh, int flags, const struct module_args *a,
                      enum mailauth_result r, const struct mailauth_report *rep)
{
    if (a->quiet || (flags & PAM_SILENT) != 0)
        return;
    if (rep->alert[0] != '\0')
        pam_prompt(pamh, r == MAILAUTH_OK ? PAM_TEXT_INFO : PAM_ERROR_MSG, NULL, "Mail server: %s",
                   rep->alert);
    if (r == MAILAUTH_UNAVAIL)
        pam_error(pamh, "The mail server is unavailable; please try again later.");
}

/* PAM_RHOST, or NULL (a local su has none). The core forwards it only when it is numeric. */
static const char *remote_host(pam_handle_t *pamh)
{
    const void *item = NULL;

    if (pam_get_item(pamh, PAM_RHOST, &item) != PAM_SUCCESS)
        return NULL;
    return item;
}

/* After a server accepted the password (not the cache): register the account
 * (man/mailauth-accounts.8) within what is left of the login's timeout. */
static void provision(pam_handle_t *pamh, const struct mailauth_config *cfg, const char *user,
                      const struct mailauth_report *rep, const struct logger *log, int64_t start_ms)
{
    uint32_t uid = 0;

    if (!cfg->accounts.enabled || rep->source != MAILAUTH_SOURCE_SERVER)
        return;
    if (accounts_provision(cfg, user, rep->user, start_ms + cfg->timeout_ms, log, &uid) ==
        ACCOUNTS_CREATED)
        pam_set_data(pamh, CREATED_KEY, (void *)1, NULL);
}

static int authenticate(pam_handle_t *pamh, int flags, const struct module_args *a,
                        const struct mailauth_config *cfg)
{
    int64_t start_ms = clock_now_ms();
    const struct logger log = {.sink = pam_log_sink, .ctx = pamh, .debug = a->debug};
    struct mailauth_report rep;
    const char *user = NULL;
    const char *password = NULL;
    struct mailauth_client client = {0};
    enum mailauth_result r;
    int rc;

    rc = pam_get_user(pamh, &user, NULL);
    if (rc != PAM_SUCCESS || user == NULL) {
        pam_syslog(pamh, LOG_ERR, "cannot get the user name: %s", pam_strerror(pamh, rc));
        return rc == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_USER_UNKNOWN;
    }
    rc = pam_get_authtok(pamh, PAM_AUTHTOK, &password, NULL);
    if (rc != PAM_SUCCESS || password == NULL) {
        pam_syslog(pamh, LOG_NOTICE, "cannot get the password: %s", pam_strerror(pamh, rc));
        return rc == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_AUTH_ERR;
    }
    client.rhost = remote_host(pamh);
    r = mailauth_check_client(cfg, user, strlen(user), password, strlen(password), &client, &log,
                              &rep);
    log_outcome(pamh, r, &rep);
    if (r == MAILAUTH_OK)
        provision(pamh, cfg, user, &rep, &log, start_ms);
    tell_user(pamh, flags, a, r, &rep);
    if (r != MAILAUTH_OK && cfg->fail_delay_ms > 0)
        pam_fail_delay(pamh, (unsigned)cfg->fail_delay_ms * 1000u);
    return to_pam_code(r);
}

static int load_config(pam_handle_t *pamh, const struct module_args *args,
                       struct mailauth_config **cfg)
{
    const struct logger log = {.sink = pam_log_sink, .ctx = pamh, .debug = args->debug};

    if (!config_path_usable(pamh, args->config_path))
        return PAM_SERVICE_ERR;
    if (config_load_file(args->config_path, &log, cfg) != CONFIG_OK) {
        pam_syslog(pamh, LOG_ERR, "configuration %s is unusable; see the error above",
                   args->config_path);
        return PAM_SERVICE_ERR;
    }
    return PAM_SUCCESS;
}

PAM_EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct module_args args;
    struct mailauth_config *cfg = NULL;
    int rc;

    parse_args(pamh, argc, argv, &args);
    rc = load_config(pamh, &args, &cfg);
    if (rc != PAM_SUCCESS)
        return rc;
    rc = authenticate(pamh, flags, &args, cfg);
    config_free(cfg);
    return rc;
}

PAM_EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}

/* sshd's first-login entry for user (the NSS module's placeholder), or no entry at all. */
static bool only_first_login_entry(const char *user)
{
    char buf[4096];
    struct passwd pw, *pwp = NULL;

    return getpwnam_r(user, &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL &&
           accounts_is_first_login_entry(pwp);
}

/* Accounts this module registers: locked ones refused, the login that created one refused
 * with a word to connect again, sshd's placeholder never let through; others are not ours. */
static int account_verdict(pam_handle_t *pamh, int flags, const struct module_args *a,
                           const struct mailauth_config *cfg)
{
    const struct logger log = {.sink = pam_log_sink, .ctx = pamh, .debug = a->debug};
    const void *created = NULL;
    const char *user = NULL;
    bool talk = !a->quiet && (flags & PAM_SILENT) == 0;

    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL)
        return PAM_USER_UNKNOWN;
    if (pam_get_data(pamh, CREATED_KEY, &created) == PAM_SUCCESS && created != NULL) {
        if (talk)
            pam_error(pamh, "Your account %s has been created; please connect again.", user);
        return PAM_PERM_DENIED;
    }
    switch (accounts_state(cfg->accounts.registry, user, &log)) {
    case ACCOUNTS_IS_ACTIVE:
        return PAM_SUCCESS;
    case ACCOUNTS_IS_LOCKED:
        pam_syslog(pamh, LOG_NOTICE, "user=%s account locked (mailauth-accounts); refused", user);
        return PAM_PERM_DENIED;
    case ACCOUNTS_UNKNOWN:
    case ACCOUNTS_UNREADABLE:
        break;
    }
    if (only_first_login_entry(user)) {
        pam_syslog(pamh, LOG_NOTICE, "user=%s has no account (first-login entry); refused", user);
        return PAM_PERM_DENIED;
    }
    return PAM_IGNORE;
}

PAM_EXPORT int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct module_args args;
    struct mailauth_config *cfg = NULL;
    int rc;

    parse_args(pamh, argc, argv, &args);
    /* No configuration at all: nothing is set up, no account is ours. A configuration that
     * exists but is unusable fails closed: it may have an accounts section. */
    if (access(args.config_path, F_OK) != 0 && errno == ENOENT)
        return PAM_IGNORE;
    rc = load_config(pamh, &args, &cfg);
    if (rc != PAM_SUCCESS)
        return rc;
    rc = cfg->accounts.enabled ? account_verdict(pamh, flags, &args, cfg) : PAM_IGNORE;
    config_free(cfg);
    return rc;
}
