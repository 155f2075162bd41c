/* The accounts section (config_accounts.c) and the registry's writer (accounts.c,
 * accounts_admin.c): ranges refused, names refused, unique ids under concurrent first logins in
 * separate processes, tombstones never reused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accounts.h"
#include "capture_log.h"
#include "check.h"
#include "config.h"
#include "config_accounts.h"
#include "util.h"

static char dir[] = "/tmp/test_accounts.XXXXXX";
static char registry[256];

static struct mailauth_config *parse(const char *accounts, const char *user)
{
    char text[2048];
    struct mailauth_config *cfg = NULL;

    snprintf(text, sizeof(text),
             "user { %s }\nserver s { protocol = imap host = \"127.0.0.1\" tls = none "
             "allow_cleartext = true }\n%s\n",
             user, accounts);
    logged[0] = '\0';
    if (config_parse_buffer(text, strlen(text), "t.conf", &test_log, &cfg) != CONFIG_OK)
        return NULL;
    return cfg;
}

static bool refused(const char *accounts, const char *needle)
{
    struct mailauth_config *cfg = parse(accounts, "");

    if (cfg != NULL) {
        config_free(cfg);
        fprintf(stderr, "accepted: %s\n", accounts);
        return false;
    }
    if (strstr(logged, needle) == NULL || strstr(logged, "t.conf:") == NULL) {
        fprintf(stderr, "log lacks \"%s\": %s\n", needle, logged);
        return false;
    }
    return true;
}

static void test_config(void)
{
    struct mailauth_config *cfg = parse("", "");

    CHECK(cfg != NULL && !cfg->accounts.enabled);
    config_free(cfg);
    cfg = parse("accounts { }", "");
    CHECK(cfg != NULL && cfg->accounts.enabled && cfg->accounts.uid_min == 70000 &&
          cfg->accounts.uid_max == 99999);
    if (cfg != NULL) {
        CHECK_STR(cfg->accounts.home, "/home/%u");
        CHECK_STR(cfg->accounts.registry, ACCT_REGISTRY_PATH);
        CHECK_STR(cfg->accounts.group, "private");
    }
    config_free(cfg);
    CHECK(refused("accounts { uid_min = 500 uid_max = 99999 }", "1000 <= uid_min"));
    CHECK(refused("accounts { uid_min = 50000 uid_max = 99999 }", "user ids"));
    CHECK(refused("accounts { uid_min = 61184 uid_max = 61200 }", "dynamic users"));
    CHECK(refused("accounts { uid_min = 65530 uid_max = 65540 }", "nobody"));
    CHECK(refused("accounts { uid_min = 90000 uid_max = 200000 }", "subordinate"));
    CHECK(refused("accounts { uid_min = 80000 uid_max = 70000 }", "uid_min <= uid_max"));
    CHECK(refused("accounts { home = \"/home/shared\" }", "home"));
    CHECK(refused("accounts { home = \"/home/%x/%u\" }", "home"));
    CHECK(refused("accounts { home = \"/home/../%u\" }", "home"));
    CHECK(refused("accounts { shell = \"bash\" }", "shell"));
    CHECK(refused("accounts { group = \"-wheel\" }", "group"));
    CHECK(refused("accounts { domain_groups = {\"example.org\"} }", "domain_groups"));
    CHECK(refused("accounts { }\naccounts { }", "only one"));
}

static void write_file(const char *name, const char *text)
{
    char p[300];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static void test_existing_ids(void)
{
    char p[5][300];
    char why[256];
    const char *names[5] = {"passwd", "group", "login.defs", "subuid", "subgid"};
    struct accounts_sysfiles sys;

    for (int i = 0; i < 5; i++)
        snprintf(p[i], sizeof(p[i]), "%s/%s", dir, names[i]);
    sys = (struct accounts_sysfiles){p[0], p[1], p[2], p[3], p[4]};
    write_file("passwd", "root:x:0:0::/root:/bin/sh\nold:x:75000:75000::/home/old:/bin/sh\n");
    write_file("group", "root:x:0:\ntoolgroup:x:88000:\n");
    write_file("login.defs",
               "UID_MIN 1000\nUID_MAX 60000\nSUB_UID_MIN 300000\nSUB_GID_MIN 300000\n");
    write_file("subuid", "alice:100000:65536\n");
    write_file("subgid", "");
    CHECK(config_accounts_check_range(70000, 74999, &sys, why, sizeof(why)) == 0);
    CHECK(config_accounts_check_range(70000, 75000, &sys, why, sizeof(why)) != 0 &&
          strstr(why, "old") != NULL);
    CHECK(config_accounts_check_range(87000, 89000, &sys, why, sizeof(why)) != 0 &&
          strstr(why, "toolgroup") != NULL);
    /* login.defs moved the subordinate range: the host's /etc/subuid still counts */
    CHECK(config_accounts_check_range(150000, 160000, &sys, why, sizeof(why)) != 0 &&
          strstr(why, "alice") != NULL);
    CHECK(config_accounts_check_range(170000, 180000, &sys, why, sizeof(why)) == 0);
    CHECK(config_accounts_check_range(290000, 310000, &sys, why, sizeof(why)) != 0 &&
          strstr(why, "SUB_UID") != NULL);
}

static struct mailauth_config *accounts_cfg(const char *extra, const char *user)
{
    char text[512];

    snprintf(text, sizeof(text), "accounts { registry = \"%s\" %s }", registry, extra);
    return parse(text, user);
}

static enum accounts_outcome provision(struct mailauth_config *cfg, const char *name, uint32_t *uid)
{
    char mapped[300];

    snprintf(mapped, sizeof(mapped), "%s%s", name, strchr(name, '@') ? "" : "@example.org");
    return accounts_provision(cfg, name, mapped, clock_now_ms() + 5000, &test_log, uid);
}

static void test_provision(void)
{
    struct mailauth_config *cfg = accounts_cfg("home = \"/home/%d/%u\"", "lowercase = true");
    struct acct_table t;
    char *buf;
    size_t len;
    uint32_t uid = 0, uid2 = 0;
    struct stat st;

    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    unlink(registry);
    {
        /* a strict umask of the calling program: the registry stays readable by everyone */
        char regdir[300];
        mode_t old_mask = umask(077);
        snprintf(regdir, sizeof(regdir), "%s/reg", dir);
        rmdir(regdir);
        CHECK(provision(cfg, "newbie", &uid) == ACCOUNTS_CREATED && uid == 70000);
        umask(old_mask);
        CHECK(stat(regdir, &st) == 0 && (st.st_mode & 0777) == 0755);
    }
    CHECK(provision(cfg, "newbie", &uid2) == ACCOUNTS_EXISTED);
    CHECK(provision(cfg, "second@example.org", &uid2) == ACCOUNTS_CREATED && uid2 == 70001);
    CHECK(stat(registry, &st) == 0 && (st.st_mode & 0777) == 0644);
    CHECK(accounts_state(registry, "newbie", &test_log) == ACCOUNTS_IS_ACTIVE);
    CHECK(acct_file_read(registry, geteuid(), &buf, &len) == 0);
    CHECK(strstr(buf, "newbie:70000:70000:active:/home/example.org/newbie:/bin/bash:\n") != NULL);
    free(buf);
    /* names that may never be accounts */
    CHECK(provision(cfg, "Capital", &uid) == ACCOUNTS_NOT_ELIGIBLE);
    CHECK(provision(cfg, "-rf", &uid) == ACCOUNTS_NOT_ELIGIBLE);
    CHECK(provision(cfg, "..", &uid) == ACCOUNTS_NOT_ELIGIBLE);
    CHECK(provision(cfg, "root", &uid) == ACCOUNTS_NOT_ELIGIBLE); /* a local account */
    CHECK(provision(cfg, "daemon", &uid) == ACCOUNTS_NOT_ELIGIBLE);
    CHECK(provision(cfg, "a23456789012345678901234567890123456789012345678901234567890123456",
                    &uid) == ACCOUNTS_NOT_ELIGIBLE);
    /* lock, remove: the uid stays bound to its name */
    CHECK(accounts_set_state(registry, "newbie", ACCT_LOCKED, clock_now_ms() + 5000, &test_log) ==
          ACCOUNTS_SET_OK);
    CHECK(accounts_state(registry, "newbie", &test_log) == ACCOUNTS_IS_LOCKED);
    CHECK(provision(cfg, "newbie", &uid) == ACCOUNTS_EXISTED); /* locking is not undone */
    CHECK(accounts_state(registry, "newbie", &test_log) == ACCOUNTS_IS_LOCKED);
    CHECK(accounts_set_state(registry, "newbie", ACCT_REMOVED, clock_now_ms() + 5000, &test_log) ==
          ACCOUNTS_SET_OK);
    CHECK(accounts_state(registry, "newbie", &test_log) == ACCOUNTS_UNKNOWN);
    CHECK(accounts_set_state(registry, "newbie", ACCT_ACTIVE, clock_now_ms() + 5000, &test_log) ==
          ACCOUNTS_SET_NO_SUCH);
    CHECK(accounts_set_state(registry, "ghost", ACCT_LOCKED, clock_now_ms() + 5000, &test_log) ==
          ACCOUNTS_SET_NO_SUCH);
    CHECK(provision(cfg, "third", &uid) == ACCOUNTS_CREATED && uid == 70002);
    CHECK(provision(cfg, "newbie", &uid) == ACCOUNTS_CREATED && uid == 70000);
    CHECK(acct_file_read(registry, geteuid(), &buf, &len) == 0);
    CHECK(acct_table_parse(buf, len, &t) == 0 && t.n == 3);
    acct_table_free(&t);
    free(buf);
    config_free(cfg);
}

static void test_policy_forms(void)
{
    struct mailauth_config *cfg = accounts_cfg("", "append_domain = \"example.org\"");
    uint32_t uid;

    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    unlink(registry);
    CHECK(provision(cfg, "short@example.org", &uid) == ACCOUNTS_NOT_ELIGIBLE);
    CHECK(provision(cfg, "short", &uid) == ACCOUNTS_CREATED);
    config_free(cfg);
}

static void test_unsafe_registry(void)
{
    struct mailauth_config *cfg = accounts_cfg("", "");
    uint32_t uid;

    unlink(registry);
    CHECK(provision(cfg, "first", &uid) == ACCOUNTS_CREATED);
    chmod(registry, 0666);
    logged[0] = '\0';
    CHECK(provision(cfg, "other", &uid) == ACCOUNTS_FAILED);
    CHECK(strstr(logged, "unsafe") != NULL);
    chmod(registry, 0644);
    config_free(cfg);
}

/* Eight processes register eight names at once: eight distinct uids, eight lines. */
static void test_concurrent(void)
{
    struct mailauth_config *cfg = accounts_cfg("", "");
    pid_t pids[8];
    struct acct_table t;
    char *buf;
    size_t len;
    bool distinct = true;

    unlink(registry);
    for (int i = 0; i < 8; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            char name[32];
            uint32_t uid;
            snprintf(name, sizeof(name), "racer%d", i);
            _exit(provision(cfg, name, &uid) == ACCOUNTS_CREATED ? 0 : 1);
        }
    }
    for (int i = 0; i < 8; i++) {
        int status = -1;
        waitpid(pids[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK(acct_file_read(registry, geteuid(), &buf, &len) == 0);
    CHECK(acct_table_parse(buf, len, &t) == 0 && t.n == 8);
    for (size_t i = 0; i < t.n; i++) {
        distinct = distinct && t.entries[i].usable && t.entries[i].uid >= 70000 &&
                   t.entries[i].uid < 70008;
    }
    CHECK(distinct);
    acct_table_free(&t);
    free(buf);
    config_free(cfg);
}

/* A lock held elsewhere: the wait ends at the deadline, nothing is written. */
static void test_lock_deadline(void)
{
    struct mailauth_config *cfg = accounts_cfg("", "");
    char lock_path[300];
    uint32_t uid;
    int fd;

    snprintf(lock_path, sizeof(lock_path), "%s.lock", registry);
    fd = open(lock_path, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    if (fork() == 0) {
        char mapped[] = "late@example.org";
        _exit(accounts_provision(cfg, "late", mapped, clock_now_ms() + 200, &test_log, &uid) ==
                      ACCOUNTS_FAILED
                  ? 0
                  : 1);
    }
    {
        int status = -1;
        wait(&status);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(fd);
    CHECK(accounts_state(registry, "late", &test_log) == ACCOUNTS_UNKNOWN);
    config_free(cfg);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(registry, sizeof(registry), "%s/reg/accounts", dir);
    test_config();
    test_existing_ids();
    test_provision();
    test_policy_forms();
    test_unsafe_registry();
    test_concurrent();
    test_lock_deadline();
    return check_summary("test_accounts");
}
