/* The account registry's writer and the PAM glue's questions (accounts.h). */
#include "accounts.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"
#include "util.h"

#define LOCK_POLL_MS 5
#define MAX_ID_SKIPS 10000
#define NSS_BUF 4096

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* flock with a deadline, without signals: poll. */
static int lock_until(int fd, int64_t deadline_ms)
{
    for (;;) {
        int left;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        left = deadline_left_ms(deadline_ms);
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        sleep_ms(left < LOCK_POLL_MS ? left : LOCK_POLL_MS);
    }
}

/* The registry's directory: created 0755 when missing; a directory owned by root (or the
 * effective uid) that nobody else can write. */
static int check_dir(const char *path, const struct logger *log)
{
    char dir[ACCT_MAX_PATH + 1];
    const char *slash = strrchr(path, '/');
    size_t len = slash != NULL ? (size_t)(slash - path) : 0;
    struct stat st;

    if (len == 0 || len >= sizeof(dir)) {
        log_msg(log, LOG_ERR, "accounts: registry %s: no usable directory", path);
        return -1;
    }
    memcpy(dir, path, len);
    dir[len] = '\0';
    if (mkdir(dir, 0755) == 0) {
        /* the caller's umask must not hide the registry from the NSS module in other users'
         * processes; the umask itself is left alone */
        if (chmod(dir, 0755) != 0) {
            log_msg(log, LOG_ERR, "accounts: cannot chmod %s: %s", dir, strerror(errno));
            return -1;
        }
    } else if (errno != EEXIST) {
        log_msg(log, LOG_ERR, "accounts: cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        log_msg(log, LOG_ERR,
                "accounts: %s must be a directory owned by root, writable by nobody else", dir);
        return -1;
    }
    return 0;
}

static int read_registry(struct accounts_txn *t, const struct logger *log)
{
    if (acct_file_read(t->path, geteuid(), &t->buf, &t->len) != 0) {
        if (errno != ENOENT) {
            log_msg(log, LOG_ERR,
                    "accounts: registry %s is unsafe or unreadable (%s); nothing changed", t->path,
                    strerror(errno));
            return -1;
        }
        t->buf = strdup("");
        t->len = 0;
        if (t->buf == NULL)
            return -1;
    }
    if (acct_table_parse(t->buf, t->len, &t->table) != 0) {
        log_msg(log, LOG_ERR, "accounts: out of memory reading %s", t->path);
        return -1;
    }
    return 0;
}

int accounts_txn_begin(const char *path, int64_t deadline_ms, const struct logger *log,
                       struct accounts_txn *t)
{
    char lock_path[ACCT_MAX_PATH + 8];

    memset(t, 0, sizeof(*t));
    t->path = path;
    t->lock_fd = -1;
    if (check_dir(path, log) != 0)
        return -1;
    snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
    t->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (t->lock_fd < 0 || lock_until(t->lock_fd, deadline_ms) != 0) {
        log_msg(log, LOG_ERR, "accounts: cannot lock %s: %s", lock_path, strerror(errno));
        accounts_txn_end(t);
        return -1;
    }
    if (read_registry(t, log) != 0) {
        accounts_txn_end(t);
        return -1;
    }
    return 0;
}

void accounts_txn_end(struct accounts_txn *t)
{
    acct_table_free(&t->table);
    free(t->buf);
    t->buf = NULL;
    if (t->lock_fd >= 0)
        close(t->lock_fd); /* releases the flock */
    t->lock_fd = -1;
}

static void sync_dir(const char *path)
{
    char dir[ACCT_MAX_PATH + 1];
    const char *slash = strrchr(path, '/');
    size_t len = slash != NULL ? (size_t)(slash - path) : 0;
    int fd;

    if (len == 0 || len >= sizeof(dir))
        return;
    memcpy(dir, path, len);
    dir[len] = '\0';
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int accounts_txn_commit(struct accounts_txn *t, const char *content, size_t len,
                        const struct logger *log)
{
    char tmp[ACCT_MAX_PATH + 8];
    int fd;

    if (len > ACCT_MAX_FILE) {
        log_msg(log, LOG_ERR, "accounts: registry %s would exceed %d bytes", t->path,
                ACCT_MAX_FILE);
        return -1;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", t->path);
    unlink(tmp); /* a leftover of a crash; we hold the lock */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0 || fchmod(fd, 0644) != 0 || fd_write_all(fd, content, len) != 0 || fsync(fd) != 0) {
        log_msg(log, LOG_ERR, "accounts: cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) != 0 || rename(tmp, t->path) != 0) {
        log_msg(log, LOG_ERR, "accounts: cannot replace %s: %s", t->path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    sync_dir(t->path);
    return 0;
}

/* The bytes of every complete line: an unterminated last line is a write cut short. */
static size_t complete_len(const char *buf, size_t len)
{
    while (len > 0 && buf[len - 1] != '\n')
        len--;
    return len;
}

char *accounts_replace_line(const struct accounts_txn *t, const struct acct_entry *e,
                            const char *line, size_t line_len, size_t *out_len)
{
    size_t total = complete_len(t->buf, t->len);
    size_t start = (size_t)(e->name - t->buf);
    const char *nl = memchr(t->buf + start, '\n', total - start);
    size_t end = nl != NULL ? (size_t)(nl - t->buf) + 1 : total;
    char *out = malloc(total - (end - start) + line_len + 1);

    if (out == NULL)
        return NULL;
    memcpy(out, t->buf, start);
    memcpy(out + start, line, line_len);
    memcpy(out + start + line_len, t->buf + end, total - end);
    *out_len = start + line_len + total - end;
    out[*out_len] = '\0';
    return out;
}

const char *accounts_name_refusal(const struct config_user_policy *p, const char *name)
{
    if (!acct_name_is_safe(name, strlen(name)))
        return "not a safe user name";
    if (p->lowercase) {
        for (const char *c = name; *c != '\0'; c++) {
            if (*c >= 'A' && *c <= 'Z')
                return "has capital letters (lowercase = true: the lowercase name is the account)";
        }
    }
    if ((p->append_domain != NULL || p->strip_domain) && strchr(name, '@') != NULL)
        return "has a domain (append_domain/strip_domain: the name without it is the account)";
    return NULL;
}

bool accounts_is_first_login_entry(const struct passwd *pw)
{
    return pw->pw_uid == ACCT_NOBODY && pw->pw_gecos != NULL &&
           strcmp(pw->pw_gecos, ACCT_FIRST_LOGIN_GECOS) == 0;
}

/* Some other source (files, LDAP, ...) knows name as a user or a group. */
static bool name_taken(const char *name)
{
    char buf[NSS_BUF];
    struct passwd pw, *pwp = NULL;
    struct group gr, *grp = NULL;

    if (getpwnam_r(name, &pw, buf, sizeof(buf), &pwp) != 0 ||
        (pwp != NULL && !accounts_is_first_login_entry(pwp)))
        return true; /* an error is not proof of absence */
    if (getgrnam_r(name, &gr, buf, sizeof(buf), &grp) != 0 || grp != NULL)
        return true;
    return false;
}

static bool id_taken(uint32_t id)
{
    char buf[NSS_BUF];
    struct passwd pw, *pwp = NULL;
    struct group gr, *grp = NULL;

    if (getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &pwp) != 0 || pwp != NULL)
        return true;
    if (getgrgid_r((gid_t)id, &gr, buf, sizeof(buf), &grp) != 0 || grp != NULL)
        return true;
    return false;
}

/* One more than the highest id ever recorded, at least uid_min, skipping ids the host knows. */
static int next_id(const struct config_accounts *a, const struct acct_table *t, uint32_t *out)
{
    uint64_t id = (uint64_t)acct_max_uid(t) + 1;

    if (id < a->uid_min)
        id = a->uid_min;
    for (int skips = 0; id <= a->uid_max && skips < MAX_ID_SKIPS; skips++, id++) {
        if (id == ACCT_NOBODY || id == ACCT_NOBODY + 1 || id_taken((uint32_t)id))
            continue;
        *out = (uint32_t)id;
        return 0;
    }
    return -1;
}

static int resolve_group(const char *name, uint32_t *gid)
{
    char buf[NSS_BUF];
    struct group gr, *grp = NULL;

    if (getgrnam_r(name, &gr, buf, sizeof(buf), &grp) != 0 || grp == NULL || grp->gr_gid == 0)
        return -1;
    *gid = (uint32_t)grp->gr_gid;
    return 0;
}

/* The primary group setting for the mail domain: a domain_groups entry, else group. */
static const char *primary_group(const struct config_accounts *a, const char *mapped)
{
    const char *domain = policy_user_domain(mapped);

    for (size_t i = 0; domain != NULL && i < a->n_domain_groups; i++) {
        if (ascii_word_is(domain, strlen(domain), a->domain_groups[i].domain))
            return a->domain_groups[i].group;
    }
    return a->group;
}

/* %u -> name, %d -> the mail domain; 0, or -1 when the result is not a safe path. */
static int expand_home(const char *tmpl, const char *name, const char *mapped, char *out,
                       size_t cap)
{
    const char *domain = policy_user_domain(mapped);
    size_t o = 0;

    for (const char *p = tmpl; *p != '\0'; p++) {
        const char *ins = NULL;
        size_t n;
        if (*p == '%' && (p[1] == 'u' || p[1] == 'd')) {
            ins = p[1] == 'u' ? name : (domain != NULL ? domain : "");
            p++;
        }
        n = ins != NULL ? strlen(ins) : 1;
        if (o + n >= cap)
            return -1;
        memcpy(out + o, ins != NULL ? ins : p, n);
        o += n;
    }
    out[o] = '\0';
    return acct_path_is_safe(out, o) ? 0 : -1;
}

/* Fill e (its strings point into home/shell) for a new account with id. */
static int build_entry(const struct config_accounts *a, const char *name, const char *mapped,
                       uint32_t id, char *home, size_t home_cap, struct acct_entry *e,
                       const struct logger *log)
{
    const char *group = primary_group(a, mapped);

    memset(e, 0, sizeof(*e));
    e->name = name;
    e->name_len = strlen(name);
    e->uid = id;
    e->gid = id;
    e->state = ACCT_ACTIVE;
    if (strcmp(group, "private") != 0 && resolve_group(group, &e->gid) != 0) {
        log_msg(log, LOG_ERR, "accounts: primary group %s does not exist", group);
        return -1;
    }
    for (size_t i = 0; i < a->n_groups && i < ACCT_MAX_GROUPS; i++) {
        if (resolve_group(a->groups[i], &e->groups[e->n_groups]) != 0) {
            log_msg(log, LOG_ERR, "accounts: extra group %s does not exist", a->groups[i]);
            return -1;
        }
        e->n_groups++;
    }
    if (expand_home(a->home, name, mapped, home, home_cap) != 0) {
        log_msg(log, LOG_ERR, "accounts: home %s gives no safe path for %s", a->home, name);
        return -1;
    }
    e->home = home;
    e->home_len = strlen(home);
    e->shell = a->shell;
    e->shell_len = strlen(a->shell);
    return 0;
}

static bool home_used(const struct acct_table *t, const char *home)
{
    size_t len = strlen(home);

    for (size_t i = 0; i < t->n; i++) {
        if (t->entries[i].home_len == len && memcmp(t->entries[i].home, home, len) == 0)
            return true;
    }
    return false;
}

/* Append line to the registry's complete lines and commit. */
static int commit_append(struct accounts_txn *t, const char *line, size_t line_len,
                         const struct logger *log)
{
    size_t keep = complete_len(t->buf, t->len);
    char *content = malloc(keep + line_len + 1);
    int rc;

    if (content == NULL)
        return -1;
    memcpy(content, t->buf, keep);
    memcpy(content + keep, line, line_len);
    rc = accounts_txn_commit(t, content, keep + line_len, log);
    free(content);
    return rc;
}

/* Bring a removed entry back with its own uid (a uid stays bound to its name). */
static enum accounts_outcome revive(struct accounts_txn *t, const struct acct_entry *old,
                                    const struct logger *log, uint32_t *uid)
{
    struct acct_entry e = *old;
    char line[ACCT_MAX_LINE + 2];
    char *content;
    size_t len;
    int n;
    int rc;

    e.state = ACCT_ACTIVE;
    n = acct_format_line(&e, line, sizeof(line));
    content = n > 0 ? accounts_replace_line(t, old, line, (size_t)n, &len) : NULL;
    if (content == NULL)
        return ACCOUNTS_FAILED;
    rc = accounts_txn_commit(t, content, len, log);
    free(content);
    if (rc != 0)
        return ACCOUNTS_FAILED;
    *uid = e.uid;
    return ACCOUNTS_CREATED;
}

static enum accounts_outcome create_locked(const struct mailauth_config *cfg,
                                           struct accounts_txn *t, const char *name,
                                           const char *mapped, const struct logger *log,
                                           uint32_t *uid)
{
    const struct config_accounts *a = &cfg->accounts;
    const struct acct_entry *old = acct_find_name(&t->table, name, strlen(name));
    char home[ACCT_MAX_PATH + 1];
    char line[ACCT_MAX_LINE + 2];
    struct acct_entry e;
    uint32_t id;
    int n;

    if (old != NULL && old->state != ACCT_REMOVED) {
        *uid = old->uid;
        return ACCOUNTS_EXISTED; /* a concurrent first login of the same name won */
    }
    if (old != NULL)
        return revive(t, old, log, uid);
    if (next_id(a, &t->table, &id) != 0) {
        log_msg(log, LOG_ERR, "accounts: no free id left in %lu-%lu for %s", a->uid_min, a->uid_max,
                name);
        return ACCOUNTS_FAILED;
    }
    if (build_entry(a, name, mapped, id, home, sizeof(home), &e, log) != 0)
        return ACCOUNTS_FAILED;
    if (home_used(&t->table, home)) {
        log_msg(log, LOG_ERR, "accounts: home %s already belongs to another account", home);
        return ACCOUNTS_FAILED;
    }
    n = acct_format_line(&e, line, sizeof(line));
    if (n < 0 || commit_append(t, line, (size_t)n, log) != 0)
        return ACCOUNTS_FAILED;
    *uid = id;
    return ACCOUNTS_CREATED;
}

enum accounts_outcome accounts_provision(const struct mailauth_config *cfg, const char *name,
                                         const char *mapped, int64_t deadline_ms,
                                         const struct logger *log, uint32_t *uid)
{
    const char *why = accounts_name_refusal(&cfg->user, name);
    struct accounts_txn t;
    enum accounts_outcome r;
    enum accounts_state_answer st = accounts_state(cfg->accounts.registry, name, log);

    if (st == ACCOUNTS_IS_ACTIVE || st == ACCOUNTS_IS_LOCKED)
        return ACCOUNTS_EXISTED; /* the common case: no lock, no write */
    if (st == ACCOUNTS_UNREADABLE)
        return ACCOUNTS_FAILED;
    if (why != NULL) {
        log_msg(log, LOG_NOTICE, "accounts: %s not registered: the name %s", name, why);
        return ACCOUNTS_NOT_ELIGIBLE;
    }
    if (name_taken(name)) {
        log_msg(log, LOG_NOTICE,
                "accounts: %s not registered: the host already has a user or group of that name",
                name);
        return ACCOUNTS_NOT_ELIGIBLE;
    }
    if (accounts_txn_begin(cfg->accounts.registry, deadline_ms, log, &t) != 0)
        return ACCOUNTS_FAILED;
    r = create_locked(cfg, &t, name, mapped, log, uid);
    accounts_txn_end(&t);
    if (r == ACCOUNTS_CREATED)
        log_msg(log, LOG_NOTICE, "accounts: registered %s (mail name %s) as uid %u", name, mapped,
                (unsigned)*uid);
    return r;
}

enum accounts_state_answer accounts_state(const char *path, const char *name,
                                          const struct logger *log)
{
    struct acct_table t;
    const struct acct_entry *e;
    enum accounts_state_answer r = ACCOUNTS_UNKNOWN;
    char *buf = NULL;
    size_t len;

    if (acct_file_read(path, geteuid(), &buf, &len) != 0) {
        if (errno == ENOENT)
            return ACCOUNTS_UNKNOWN;
        log_msg(log, LOG_ERR, "accounts: registry %s is unsafe or unreadable: %s", path,
                strerror(errno));
        return ACCOUNTS_UNREADABLE;
    }
    if (acct_table_parse(buf, len, &t) != 0) {
        free(buf);
        return ACCOUNTS_UNREADABLE;
    }
    e = acct_find_name(&t, name, strlen(name));
    if (e != NULL && e->state == ACCT_ACTIVE)
        r = ACCOUNTS_IS_ACTIVE;
    else if (e != NULL && e->state == ACCT_LOCKED)
        r = ACCOUNTS_IS_LOCKED;
    acct_table_free(&t);
    free(buf);
    return r;
}
