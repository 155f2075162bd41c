/* libnss_mailauth.so.2: the passwd and group entries of the account registry
 * (man/mailauth-accounts.8). Loaded into every process on the host, set-id ones included, so:
 * libc only, read-only, no thread, no lock, nothing allocated beyond a call except the
 * enumeration snapshot between set*ent and end*ent (glibc serialises those calls), and the
 * registry read only when safe (src/accounts_parse.c: no link, owner root, not group/world
 * writable, size cap). A buffer too small is ERANGE + NSS_STATUS_TRYAGAIN, never a truncated
 * entry. The password field is "*" (as SSSD's): "x" would send pam_unix's account check looking
 * for a shadow entry that does not exist, and refuse the account. */
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accounts_parse.h"
#include "nss_mailauth.h"

#define NSS_EXPORT __attribute__((visibility("default")))

#ifdef MAILAUTH_NSS_TESTING
/* Tests point the module at their own registry and name themselves sshd; never in the
 * installed module. */
NSS_EXPORT const char *nss_mailauth_test_path = ACCT_REGISTRY_PATH;
NSS_EXPORT const char *nss_mailauth_test_sshd = "/usr/sbin/sshd";
#define REGISTRY_PATH nss_mailauth_test_path
#define OWNER_OK geteuid()
#else
#define REGISTRY_PATH ACCT_REGISTRY_PATH
#define OWNER_OK 0
#endif

/* The programs that look a user up before PAM runs and hide the password of unknown ones. */
static bool caller_is_sshd(void)
{
#ifdef MAILAUTH_NSS_TESTING
    const char *const sshd[] = {nss_mailauth_test_sshd};
#else
    const char *const sshd[] = {"/usr/sbin/sshd", "/usr/lib/openssh/sshd-session"};
#endif
    char exe[256];
    ssize_t n;

    if (getuid() != 0 || geteuid() != 0)
        return false;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0 || (size_t)n >= sizeof(exe) - 1)
        return false;
    exe[n] = '\0';
    for (size_t i = 0; i < sizeof(sshd) / sizeof(sshd[0]); i++) {
        if (strcmp(exe, sshd[i]) == 0)
            return true;
    }
    return false;
}

struct registry {
    char *buf;
    size_t len;
    struct acct_table table;
};

static void registry_free(struct registry *r)
{
    acct_table_free(&r->table);
    free(r->buf);
    r->buf = NULL;
    r->len = 0;
}

/* A missing registry is an empty one; an unsafe or unreadable one is UNAVAIL. */
static enum nss_status registry_load(struct registry *r, int *errnop)
{
    memset(r, 0, sizeof(*r));
    if (acct_file_read(REGISTRY_PATH, OWNER_OK, &r->buf, &r->len) != 0) {
        if (errno == ENOENT)
            return NSS_STATUS_SUCCESS;
        *errnop = errno;
        return NSS_STATUS_UNAVAIL;
    }
    if (acct_table_parse(r->buf, r->len, &r->table) != 0) {
        registry_free(r);
        *errnop = ENOMEM;
        return NSS_STATUS_TRYAGAIN;
    }
    return NSS_STATUS_SUCCESS;
}

/* Space in the caller's buffer. */
struct space {
    char *p;
    size_t left;
};

static char *put_str(struct space *s, const char *str, size_t len)
{
    char *dst = s->p;

    if (s->left < len + 1)
        return NULL;
    memcpy(dst, str, len);
    dst[len] = '\0';
    s->p += len + 1;
    s->left -= len + 1;
    return dst;
}

static char **put_empty_list(struct space *s)
{
    uintptr_t addr = (uintptr_t)s->p;
    size_t pad = (alignof(char *) - addr % alignof(char *)) % alignof(char *);
    char **list;

    if (s->left < pad + sizeof(char *))
        return NULL;
    list = (char **)(void *)(s->p + pad);
    list[0] = NULL;
    s->p += pad + sizeof(char *);
    s->left -= pad + sizeof(char *);
    return list;
}

static enum nss_status too_small(int *errnop)
{
    *errnop = ERANGE;
    return NSS_STATUS_TRYAGAIN;
}

static enum nss_status fill_passwd(const char *name, size_t name_len, uint32_t uid, uint32_t gid,
                                   const char *gecos, const char *home, size_t home_len,
                                   const char *shell, size_t shell_len, struct passwd *pw,
                                   char *buf, size_t buflen, int *errnop)
{
    struct space s = {buf, buflen};

    pw->pw_name = put_str(&s, name, name_len);
    pw->pw_passwd = put_str(&s, "*", 1);
    pw->pw_gecos = put_str(&s, gecos, strlen(gecos));
    pw->pw_dir = put_str(&s, home, home_len);
    pw->pw_shell = put_str(&s, shell, shell_len);
    if (pw->pw_name == NULL || pw->pw_passwd == NULL || pw->pw_gecos == NULL ||
        pw->pw_dir == NULL || pw->pw_shell == NULL)
        return too_small(errnop);
    pw->pw_uid = uid;
    pw->pw_gid = gid;
    return NSS_STATUS_SUCCESS;
}

static enum nss_status fill_entry(const struct acct_entry *e, struct passwd *pw, char *buf,
                                  size_t buflen, int *errnop)
{
    return fill_passwd(e->name, e->name_len, e->uid, e->gid, "", e->home, e->home_len, e->shell,
                       e->shell_len, pw, buf, buflen, errnop);
}

/* The first-login entry (mailauth-accounts.8, "THE FIRST LOGIN OVER SSH"). */
static enum nss_status fill_first_login(const char *name, struct passwd *pw, char *buf,
                                        size_t buflen, int *errnop)
{
    static const char home[] = "/nonexistent";
    static const char shell[] = "/usr/sbin/nologin";

    return fill_passwd(name, strlen(name), ACCT_NOBODY, ACCT_NOBODY, ACCT_FIRST_LOGIN_GECOS, home,
                       sizeof(home) - 1, shell, sizeof(shell) - 1, pw, buf, buflen, errnop);
}

static enum nss_status not_found(int *errnop)
{
    *errnop = ENOENT;
    return NSS_STATUS_NOTFOUND;
}

NSS_EXPORT enum nss_status _nss_mailauth_getpwnam_r(const char *name, struct passwd *pw, char *buf,
                                                    size_t buflen, int *errnop)
{
    struct registry r;
    const struct acct_entry *e;
    enum nss_status st;
    size_t len = name != NULL ? strnlen(name, ACCT_MAX_NAME + 1) : 0;

    if (!acct_name_is_safe(name, len))
        return not_found(errnop);
    st = registry_load(&r, errnop);
    if (st != NSS_STATUS_SUCCESS)
        return st;
    e = acct_find_name(&r.table, name, len);
    if (e != NULL && e->state != ACCT_REMOVED)
        st = fill_entry(e, pw, buf, buflen, errnop);
    else if ((e == NULL || e->state == ACCT_REMOVED) && caller_is_sshd())
        st = fill_first_login(name, pw, buf, buflen, errnop);
    else
        st = not_found(errnop);
    registry_free(&r);
    return st;
}

NSS_EXPORT enum nss_status _nss_mailauth_getpwuid_r(uid_t uid, struct passwd *pw, char *buf,
                                                    size_t buflen, int *errnop)
{
    struct registry r;
    const struct acct_entry *e;
    enum nss_status st = registry_load(&r, errnop);

    if (st != NSS_STATUS_SUCCESS)
        return st;
    e = acct_find_uid(&r.table, (uint32_t)uid);
    if (e != NULL && e->state != ACCT_REMOVED)
        st = fill_entry(e, pw, buf, buflen, errnop);
    else
        st = not_found(errnop);
    registry_free(&r);
    return st;
}

/* A private group: gid == uid, named after the account, no members listed (it is their primary
 * group). */
static bool has_private_group(const struct acct_entry *e)
{
    return e->state != ACCT_REMOVED && e->gid == e->uid;
}

static enum nss_status fill_group(const struct acct_entry *e, struct group *gr, char *buf,
                                  size_t buflen, int *errnop)
{
    struct space s = {buf, buflen};

    gr->gr_mem = put_empty_list(&s);
    gr->gr_name = put_str(&s, e->name, e->name_len);
    gr->gr_passwd = put_str(&s, "*", 1);
    if (gr->gr_mem == NULL || gr->gr_name == NULL || gr->gr_passwd == NULL)
        return too_small(errnop);
    gr->gr_gid = e->gid;
    return NSS_STATUS_SUCCESS;
}

NSS_EXPORT enum nss_status _nss_mailauth_getgrnam_r(const char *name, struct group *gr, char *buf,
                                                    size_t buflen, int *errnop)
{
    struct registry r;
    const struct acct_entry *e;
    enum nss_status st;
    size_t len = name != NULL ? strnlen(name, ACCT_MAX_NAME + 1) : 0;

    if (!acct_name_is_safe(name, len))
        return not_found(errnop);
    st = registry_load(&r, errnop);
    if (st != NSS_STATUS_SUCCESS)
        return st;
    e = acct_find_name(&r.table, name, len);
    if (e != NULL && has_private_group(e))
        st = fill_group(e, gr, buf, buflen, errnop);
    else
        st = not_found(errnop);
    registry_free(&r);
    return st;
}

NSS_EXPORT enum nss_status _nss_mailauth_getgrgid_r(gid_t gid, struct group *gr, char *buf,
                                                    size_t buflen, int *errnop)
{
    struct registry r;
    const struct acct_entry *e;
    enum nss_status st = registry_load(&r, errnop);

    if (st != NSS_STATUS_SUCCESS)
        return st;
    e = acct_find_uid(&r.table, (uint32_t)gid);
    if (e != NULL && has_private_group(e))
        st = fill_group(e, gr, buf, buflen, errnop);
    else
        st = not_found(errnop);
    registry_free(&r);
    return st;
}

/* Enumeration: a snapshot from set*ent (or the first get*ent) to end*ent. */
struct cursor {
    struct registry reg;
    bool open;
    size_t next;
};

static struct cursor pw_cursor;
static struct cursor gr_cursor;

static void cursor_close(struct cursor *c)
{
    if (c->open)
        registry_free(&c->reg);
    c->open = false;
    c->next = 0;
}

static enum nss_status cursor_open(struct cursor *c, int *errnop)
{
    enum nss_status st;

    cursor_close(c);
    st = registry_load(&c->reg, errnop);
    if (st == NSS_STATUS_SUCCESS)
        c->open = true;
    return st;
}

NSS_EXPORT enum nss_status _nss_mailauth_setpwent(int stayopen)
{
    int err = 0;

    (void)stayopen;
    return cursor_open(&pw_cursor, &err);
}

NSS_EXPORT enum nss_status _nss_mailauth_endpwent(void)
{
    cursor_close(&pw_cursor);
    return NSS_STATUS_SUCCESS;
}

/* The next usable entry that pred accepts, or NULL (the cursor is advanced past it). */
static const struct acct_entry *cursor_next(struct cursor *c,
                                            bool (*pred)(const struct acct_entry *))
{
    while (c->next < c->reg.table.n) {
        const struct acct_entry *e = &c->reg.table.entries[c->next];
        if (e->usable && pred(e))
            return e;
        c->next++;
    }
    return NULL;
}

static bool is_listed(const struct acct_entry *e)
{
    return e->state != ACCT_REMOVED;
}

NSS_EXPORT enum nss_status _nss_mailauth_getpwent_r(struct passwd *pw, char *buf, size_t buflen,
                                                    int *errnop)
{
    const struct acct_entry *e;
    enum nss_status st;

    if (!pw_cursor.open && (st = cursor_open(&pw_cursor, errnop)) != NSS_STATUS_SUCCESS)
        return st;
    e = cursor_next(&pw_cursor, is_listed);
    if (e == NULL)
        return not_found(errnop);
    st = fill_entry(e, pw, buf, buflen, errnop);
    if (st == NSS_STATUS_SUCCESS)
        pw_cursor.next++; /* a buffer too small retries the same entry */
    return st;
}

NSS_EXPORT enum nss_status _nss_mailauth_setgrent(int stayopen)
{
    int err = 0;

    (void)stayopen;
    return cursor_open(&gr_cursor, &err);
}

NSS_EXPORT enum nss_status _nss_mailauth_endgrent(void)
{
    cursor_close(&gr_cursor);
    return NSS_STATUS_SUCCESS;
}

NSS_EXPORT enum nss_status _nss_mailauth_getgrent_r(struct group *gr, char *buf, size_t buflen,
                                                    int *errnop)
{
    const struct acct_entry *e;
    enum nss_status st;

    if (!gr_cursor.open && (st = cursor_open(&gr_cursor, errnop)) != NSS_STATUS_SUCCESS)
        return st;
    e = cursor_next(&gr_cursor, has_private_group);
    if (e == NULL)
        return not_found(errnop);
    st = fill_group(e, gr, buf, buflen, errnop);
    if (st == NSS_STATUS_SUCCESS)
        gr_cursor.next++;
    return st;
}

/* Add gid to the caller's list unless present; grows it within limit (glibc's contract). */
static enum nss_status add_group(gid_t gid, long int *start, long int *size, gid_t **groupsp,
                                 long int limit, int *errnop)
{
    gid_t *g = *groupsp;

    for (long int i = 0; i < *start; i++) {
        if (g[i] == gid)
            return NSS_STATUS_SUCCESS;
    }
    if (limit > 0 && *start >= limit)
        return NSS_STATUS_SUCCESS; /* at the limit: the rest is dropped, as glibc does */
    if (*start == *size) {
        long int newsize = *size > 0 ? 2 * *size : 8;
        if (limit > 0 && newsize > limit)
            newsize = limit;
        if (newsize <= *size)
            return NSS_STATUS_SUCCESS; /* at the limit: the rest is dropped, as glibc does */
        g = realloc(g, (size_t)newsize * sizeof(*g));
        if (g == NULL) {
            *errnop = ENOMEM;
            return NSS_STATUS_TRYAGAIN;
        }
        *groupsp = g;
        *size = newsize;
    }
    g[(*start)++] = gid;
    return NSS_STATUS_SUCCESS;
}

NSS_EXPORT enum nss_status _nss_mailauth_initgroups_dyn(const char *user, gid_t group,
                                                        long int *start, long int *size,
                                                        gid_t **groupsp, long int limit,
                                                        int *errnop)
{
    struct registry r;
    const struct acct_entry *e;
    enum nss_status st;
    size_t len = user != NULL ? strnlen(user, ACCT_MAX_NAME + 1) : 0;

    if (!acct_name_is_safe(user, len))
        return not_found(errnop);
    st = registry_load(&r, errnop);
    if (st != NSS_STATUS_SUCCESS)
        return st;
    e = acct_find_name(&r.table, user, len);
    if (e == NULL || e->state == ACCT_REMOVED) {
        st = not_found(errnop);
        goto out;
    }
    for (size_t i = 0; i < e->n_groups && st == NSS_STATUS_SUCCESS; i++) {
        if (e->groups[i] != group)
            st = add_group(e->groups[i], start, size, groupsp, limit, errnop);
    }
out:
    registry_free(&r);
    return st;
}
