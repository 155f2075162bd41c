/* The accounts section (man/pam_mailauth.conf.5, man/mailauth-accounts.8): validation with
 * file:line, conversion to struct config_accounts, and the id range check against the host's
 * reserved ranges and existing ids. Runs under the parse lock (config.c). */
#include "config_accounts.h"
#include "config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEMPLATE 200
#define MAX_SYSFILE_LINE 4096

const struct accounts_sysfiles accounts_default_sysfiles = {
    .passwd = "/etc/passwd",
    .group = "/etc/group",
    .login_defs = "/etc/login.defs",
    .subuid = "/etc/subuid",
    .subgid = "/etc/subgid",
};

struct id_range {
    unsigned long lo;
    unsigned long hi;
    const char *what;
};

/* The ranges no account may take, whatever login.defs says (Debian's and systemd's). */
static const struct id_range fixed_ranges[] = {
    {0, 999, "the system's ids (0-999)"},
    {1000, 59999, "Debian's user ids (1000-59999)"},
    {60001, 60513, "systemd-homed's ids (60001-60513)"},
    {61184, 65519, "systemd's dynamic users (61184-65519)"},
    {65534, 65535, "nobody and (uint16_t)-1 (65534-65535)"},
};

static bool overlaps(unsigned long lo, unsigned long hi, unsigned long a, unsigned long b)
{
    return lo <= b && a <= hi;
}

/* The value of a login.defs key, or dflt. */
static unsigned long login_defs_value(const char *path, const char *key, unsigned long dflt)
{
    char line[MAX_SYSFILE_LINE];
    size_t klen = strlen(key);
    unsigned long v = dflt;
    FILE *f = fopen(path, "re");

    if (f == NULL)
        return dflt;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *end;
        unsigned long n;
        if (strncmp(line, key, klen) != 0 || (line[klen] != ' ' && line[klen] != '\t'))
            continue;
        errno = 0;
        n = strtoul(line + klen, &end, 10);
        if (errno == 0 && end != line + klen)
            v = n;
    }
    fclose(f);
    return v;
}

/* A passwd- or group-format file: the first entry whose third field (the id) is in [lo, hi];
 * subordinate-id files (name:start:count): the first range that meets [lo, hi]. */
static bool file_meets(const char *path, bool subordinate, unsigned long lo, unsigned long hi,
                       char *who, size_t cap)
{
    char line[MAX_SYSFILE_LINE];
    bool hit = false;
    FILE *f = fopen(path, "re");

    if (f == NULL)
        return false;
    while (!hit && fgets(line, sizeof(line), f) != NULL) {
        char *save = NULL;
        char *name = strtok_r(line, ":", &save);
        char *f2 = strtok_r(NULL, ":", &save);
        char *f3 = subordinate ? NULL : strtok_r(NULL, ":", &save);
        char *idtext = subordinate ? f2 : f3;
        char *count = subordinate ? strtok_r(NULL, ":\n", &save) : NULL;
        unsigned long id;
        unsigned long n = 1;

        if (name == NULL || idtext == NULL || (subordinate && count == NULL))
            continue;
        id = strtoul(idtext, NULL, 10);
        if (subordinate)
            n = strtoul(count, NULL, 10);
        if (n > 0 && overlaps(lo, hi, id, id + n - 1)) {
            snprintf(who, cap, "%s (%s)", name, path);
            hit = true;
        }
    }
    fclose(f);
    return hit;
}

int config_accounts_check_range(unsigned long lo, unsigned long hi,
                                const struct accounts_sysfiles *sys, char *why, size_t cap)
{
    char who[128];
    const struct id_range defs[] = {
        {login_defs_value(sys->login_defs, "UID_MIN", 1000),
         login_defs_value(sys->login_defs, "UID_MAX", 60000), "UID_MIN-UID_MAX of login.defs"},
        {login_defs_value(sys->login_defs, "GID_MIN", 1000),
         login_defs_value(sys->login_defs, "GID_MAX", 60000), "GID_MIN-GID_MAX of login.defs"},
        {login_defs_value(sys->login_defs, "SUB_UID_MIN", 100000),
         login_defs_value(sys->login_defs, "SUB_UID_MAX", 600100000),
         "SUB_UID_MIN-SUB_UID_MAX of login.defs (subordinate ids)"},
        {login_defs_value(sys->login_defs, "SUB_GID_MIN", 100000),
         login_defs_value(sys->login_defs, "SUB_GID_MAX", 600100000),
         "SUB_GID_MIN-SUB_GID_MAX of login.defs (subordinate ids)"},
    };

    if (lo < ACCT_ID_MIN || hi > ACCT_ID_MAX || lo > hi) {
        snprintf(why, cap, "must satisfy %u <= uid_min <= uid_max <= %u", ACCT_ID_MIN, ACCT_ID_MAX);
        return -1;
    }
    for (size_t i = 0; i < MA_ARRAY_LEN(fixed_ranges); i++) {
        if (overlaps(lo, hi, fixed_ranges[i].lo, fixed_ranges[i].hi)) {
            snprintf(why, cap, "overlaps %s", fixed_ranges[i].what);
            return -1;
        }
    }
    for (size_t i = 0; i < MA_ARRAY_LEN(defs); i++) {
        if (overlaps(lo, hi, defs[i].lo, defs[i].hi)) {
            snprintf(why, cap, "overlaps %s (%lu-%lu)", defs[i].what, defs[i].lo, defs[i].hi);
            return -1;
        }
    }
    if (file_meets(sys->passwd, false, lo, hi, who, sizeof(who)) ||
        file_meets(sys->group, false, lo, hi, who, sizeof(who)) ||
        file_meets(sys->subuid, true, lo, hi, who, sizeof(who)) ||
        file_meets(sys->subgid, true, lo, hi, who, sizeof(who))) {
        snprintf(why, cap, "already used by %s", who);
        return -1;
    }
    return 0;
}

/* Only %u (the account name) and %d (the mail domain), and %u at least once, so that two
 * accounts never share a home. */
bool config_accounts_template_ok(const char *t)
{
    bool has_u = false;
    size_t len = strlen(t);

    if (len < 2 || len > MAX_TEMPLATE || t[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (t[i] != '%')
            continue;
        if (t[i + 1] != 'u' && t[i + 1] != 'd')
            return false;
        has_u = has_u || t[i + 1] == 'u';
        i++;
    }
    /* the template itself, with the placeholders, must already look like a safe path */
    return has_u && acct_path_is_safe(t, len);
}

static bool group_name_ok(const char *g)
{
    return g != NULL && acct_name_is_safe(g, strlen(g));
}

static int check_domain_groups(cfg_t *root, cfg_t *sec)
{
    unsigned n = cfg_size(sec, "domain_groups");

    for (unsigned i = 0; i < n; i++) {
        const char *v = cfg_getnstr(sec, "domain_groups", i);
        const char *eq = v != NULL ? strchr(v, '=') : NULL;
        if (eq == NULL || eq == v || strchr(v, '@') != NULL ||
            (strcmp(eq + 1, "private") != 0 && !group_name_ok(eq + 1))) {
            config_report(root, sec,
                          "accounts: domain_groups entry \"%s\" must be DOMAIN=GROUP "
                          "(GROUP a local group's name, or private)",
                          v != NULL ? v : "");
            return -1;
        }
    }
    return 0;
}

static int check_names(cfg_t *root, cfg_t *sec)
{
    const char *shell = cfg_getstr(sec, "shell");
    const char *group = cfg_getstr(sec, "group");
    unsigned n = cfg_size(sec, "groups");

    if (!config_accounts_template_ok(cfg_getstr(sec, "home"))) {
        config_report(root, sec,
                      "accounts: home \"%s\" must be an absolute path with %%u (and optionally "
                      "%%d), no other %% sequence, no . or .. component",
                      cfg_getstr(sec, "home"));
        return -1;
    }
    if (shell == NULL || !acct_path_is_safe(shell, strlen(shell))) {
        config_report(root, sec, "accounts: shell must be an absolute path");
        return -1;
    }
    if (strcmp(group, "private") != 0 && !group_name_ok(group)) {
        config_report(root, sec, "accounts: group \"%s\" is not a group name or private", group);
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        if (!group_name_ok(cfg_getnstr(sec, "groups", i))) {
            config_report(root, sec, "accounts: groups entry \"%s\" is not a group name",
                          cfg_getnstr(sec, "groups", i));
            return -1;
        }
    }
    if (n > ACCT_MAX_GROUPS) {
        config_report(root, sec, "accounts: at most %d extra groups", ACCT_MAX_GROUPS);
        return -1;
    }
    return check_domain_groups(root, sec);
}

int config_validate_accounts(cfg_t *cfg, cfg_opt_t *opt)
{
    unsigned n = cfg_opt_size(opt);
    cfg_t *sec = cfg_opt_getnsec(opt, n - 1);
    const char *registry = cfg_getstr(sec, "registry");
    long lo = cfg_getint(sec, "uid_min");
    long hi = cfg_getint(sec, "uid_max");
    char why[256];

    if (n > 1) {
        config_report(cfg, sec, "accounts: only one accounts section is allowed");
        return -1;
    }
    if (registry == NULL || !acct_path_is_safe(registry, strlen(registry))) {
        config_report(cfg, sec, "accounts: registry must be an absolute path");
        return -1;
    }
    if (lo < 0 || hi < 0 ||
        config_accounts_check_range((unsigned long)lo, (unsigned long)hi,
                                    &accounts_default_sysfiles, why, sizeof(why)) != 0) {
        config_report(cfg, sec, "accounts: uid_min-uid_max %ld-%ld %s", lo, hi,
                      lo < 0 || hi < 0 ? "is negative" : why);
        return -1;
    }
    return check_names(cfg, sec);
}

static char *dup_str(const char *s, bool *ok)
{
    char *d = s != NULL ? strdup(s) : NULL;

    if (s != NULL && d == NULL)
        *ok = false;
    return d;
}

static void fill_domain_groups(cfg_t *sec, struct config_accounts *a, bool *ok)
{
    unsigned n = cfg_size(sec, "domain_groups");

    if (n == 0)
        return;
    a->domain_groups = calloc(n, sizeof(*a->domain_groups));
    if (a->domain_groups == NULL) {
        *ok = false;
        return;
    }
    a->n_domain_groups = n;
    for (unsigned i = 0; i < n; i++) {
        const char *v = cfg_getnstr(sec, "domain_groups", i);
        const char *eq = strchr(v, '=');
        a->domain_groups[i].domain = strndup(v, (size_t)(eq - v));
        a->domain_groups[i].group = dup_str(eq + 1, ok);
        if (a->domain_groups[i].domain == NULL)
            *ok = false;
    }
}

bool config_accounts_fill(cfg_t *root, struct config_accounts *a)
{
    cfg_t *sec = cfg_size(root, "accounts") > 0 ? cfg_getnsec(root, "accounts", 0) : NULL;
    unsigned n;
    bool ok = true;

    if (sec == NULL)
        return true;
    a->enabled = true;
    a->registry = dup_str(cfg_getstr(sec, "registry"), &ok);
    a->uid_min = (unsigned long)cfg_getint(sec, "uid_min");
    a->uid_max = (unsigned long)cfg_getint(sec, "uid_max");
    a->home = dup_str(cfg_getstr(sec, "home"), &ok);
    a->shell = dup_str(cfg_getstr(sec, "shell"), &ok);
    a->group = dup_str(cfg_getstr(sec, "group"), &ok);
    fill_domain_groups(sec, a, &ok);
    n = cfg_size(sec, "groups");
    if (n > 0) {
        a->groups = calloc(n, sizeof(*a->groups));
        if (a->groups == NULL)
            return false;
        a->n_groups = n;
        for (unsigned i = 0; i < n; i++)
            a->groups[i] = dup_str(cfg_getnstr(sec, "groups", i), &ok);
    }
    return ok;
}

void config_accounts_free(struct config_accounts *a)
{
    free(a->registry);
    free(a->home);
    free(a->shell);
    free(a->group);
    for (size_t i = 0; i < a->n_domain_groups; i++) {
        free(a->domain_groups[i].domain);
        free(a->domain_groups[i].group);
    }
    free(a->domain_groups);
    for (size_t i = 0; i < a->n_groups; i++)
        free(a->groups[i]);
    free(a->groups);
    memset(a, 0, sizeof(*a));
}
