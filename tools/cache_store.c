/* The store seen by the administrator's tool: records proved to be the module's, with the failure
 * slots counted against them, removed the way the module removes them (no lock: the module takes
 * none, see cache.h). */
#include "cache_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct walk {
    const struct store_ops *ops;
    int problems;
};

MA_PRINTF(4, 5)
static void problem(struct walk *w, unsigned uid, const char *file, const char *fmt, ...)
{
    char path[128];
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (file != NULL)
        snprintf(path, sizeof(path), "%u/%s", uid, file);
    else
        snprintf(path, sizeof(path), "%u", uid);
    w->problems++;
    w->ops->problem(w->ops->arg, path, why);
}

static bool is_record_name(const char *s)
{
    return strlen(s) == CACHE_KEY_LEN && strspn(s, "0123456789abcdef") == CACHE_KEY_LEN;
}

/* The module's other files: failure slots "<key>.f<hash>.<k>" (counted with their record and
 * removed with it), "tmp.<key>.<random>" (a record being written) and "<key>.lock" (left by
 * versions that locked records). None of them is listed on its own. */
static bool is_module_file(const char *s)
{
    size_t n = strlen(s);

    if (n == CACHE_KEY_LEN + 5 && strcmp(s + CACHE_KEY_LEN, ".lock") == 0)
        return true;
    return strncmp(s, "tmp.", 4) == 0 || cache_is_slot_name(s);
}

/* The failures counted against rec, stored as name: its own counter and the slots taken since
 * it was written, up to the first free one (cache.c count_failures). */
static unsigned failures_of(int dirfd, const char *name, const struct cache_record *rec)
{
    char slot[CACHE_SLOT_NAME_MAX];
    struct stat st;
    unsigned k = rec->failures;

    while (k < CACHE_MAX_FAILURES) {
        cache_slot_name(name, rec, k, slot);
        if (fstatat(dirfd, slot, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            break;
        k++;
    }
    return k;
}

/* Remove rec's failure slots, as a store or a refusal does (cache.c drop_slots): up to 8 missing
 * names in a row, since a matching password gives its slot back and leaves a hole. */
static void drop_slots(int dirfd, const char *name, const struct cache_record *rec)
{
    char slot[CACHE_SLOT_NAME_MAX];
    unsigned missing = 0;

    for (unsigned k = 0; k < CACHE_MAX_FAILURES && missing < 8; k++) {
        cache_slot_name(name, rec, k, slot);
        missing = unlinkat(dirfd, slot, 0) == 0 ? 0 : missing + 1;
    }
}

/* The file's checks as the module makes them (cache.c check_file). NULL, or why not. */
static const char *file_refused(const struct stat *st, unsigned uid)
{
    if (!S_ISREG(st->st_mode))
        return "not a regular file";
    if (st->st_uid != uid)
        return "owned by another uid";
    if (st->st_nlink != 1)
        return "has more than one link";
    if ((st->st_mode & 077) != 0)
        return "accessible by group or others";
    if (st->st_size > CACHE_MAX_RECORD)
        return "too large for a record";
    return NULL;
}

/* Read and prove one record. 0 with e filled and *st of the file read, or -1 (reported). */
static int read_entry(struct walk *w, int dirfd, unsigned uid, const char *name,
                      struct store_entry *e, struct stat *st, struct cache_record *rec_out)
{
    char buf[CACHE_MAX_RECORD + 1];
    char expected[CACHE_KEY_LEN + 1];
    struct cache_record rec;
    struct errbuf err = {{0}};
    const char *why = NULL;
    ssize_t len;
    int rc = -1;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        problem(w, uid, name, "cannot open: %s", errno == ELOOP ? "a symbolic link" : "error");
        return -1;
    }
    if (fstat(fd, st) != 0 || (why = file_refused(st, uid)) != NULL) {
        problem(w, uid, name, "not touched: %s", why != NULL ? why : "cannot stat");
        goto out;
    }
    len = read(fd, buf, sizeof(buf));
    if (len < 0 || len > CACHE_MAX_RECORD || cache_record_parse(buf, (size_t)len, &rec, &err)) {
        problem(w, uid, name, "not touched: not a record (%s)",
                len < 0               ? "read failed"
                : err.text[0] != '\0' ? err.text
                                      : "too large");
        goto out;
    }
    if (cache_record_name(rec.config_id, rec.user, expected) != 0 || strcmp(expected, name) != 0) {
        problem(w, uid, name, "not touched: its name is not that of its user and config");
        goto out;
    }
    *e = (struct store_entry){
        .uid = uid, .confirmed = rec.confirmed, .failures = failures_of(dirfd, name, &rec)};
    memcpy(e->user, rec.user, sizeof(e->user));
    memcpy(e->config_id, rec.config_id, sizeof(e->config_id));
    *rec_out = rec; /* the caller wipes it; its hash names the record's slots */
    rc = 0;
out:
    secret_wipe(buf, sizeof(buf));
    secret_wipe(&rec, sizeof(rec));
    close(fd);
    return rc;
}

/* Remove the record read as *seen, if it is still that file, then its failure slots. */
static void remove_entry(struct walk *w, int dirfd, const char *name, const struct store_entry *e,
                         const struct stat *seen, const struct cache_record *rec)
{
    struct stat now;

    if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_ino != seen->st_ino ||
        now.st_dev != seen->st_dev) {
        problem(w, e->uid, name, "replaced while it was being removed; kept");
        return;
    }
    if (unlinkat(dirfd, name, 0) != 0) {
        problem(w, e->uid, name, "cannot remove: %s", strerror(errno));
        return;
    }
    drop_slots(dirfd, name, rec);
    if (w->ops->removed != NULL)
        w->ops->removed(w->ops->arg, e);
}

static void walk_store(struct walk *w, int dirfd, unsigned uid)
{
    DIR *d = fdopendir(dirfd);
    struct dirent *de;

    if (d == NULL) {
        problem(w, uid, NULL, "cannot read the directory");
        close(dirfd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        struct store_entry e;
        struct cache_record rec;
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            is_module_file(de->d_name))
            continue;
        if (!is_record_name(de->d_name)) {
            problem(w, uid, de->d_name, "not touched: not a file the module writes");
            continue;
        }
        if (read_entry(w, dirfd, uid, de->d_name, &e, &st, &rec) != 0)
            continue;
        if (w->ops->entry(w->ops->arg, &e))
            remove_entry(w, dirfd, de->d_name, &e, &st, &rec);
        secret_wipe(&rec, sizeof(rec));
    }
    closedir(d);
}

/* DIR/<uid>: a directory reached without a link, owned by uid, not writable by others. */
static void open_store(struct walk *w, int base, unsigned uid, bool must_exist)
{
    char name[24];
    struct stat st;
    int fd;

    snprintf(name, sizeof(name), "%u", uid);
    fd = openat(base, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT || must_exist)
            problem(w, uid, NULL, "cannot open the store: %s",
                    errno == ENOTDIR || errno == ELOOP ? "not a directory" : strerror(errno));
        return;
    }
    if (fstat(fd, &st) != 0 || st.st_uid != uid || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        problem(w, uid, NULL, "not touched: not owned by uid %u or writable by others", uid);
        close(fd);
        return;
    }
    walk_store(w, fd, uid);
}

/* A store's name: a decimal uid without sign or leading zero. */
static bool uid_name(const char *s, unsigned *uid)
{
    char *end;
    unsigned long v;

    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > (uid_t)-2)
        return false;
    *uid = (unsigned)v;
    return true;
}

static void walk_all(struct walk *w, int base)
{
    int fd = dup(base);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        w->problems++;
        w->ops->problem(w->ops->arg, ".", "cannot read the directory");
        return;
    }
    while ((de = readdir(d)) != NULL) {
        unsigned uid;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (uid_name(de->d_name, &uid))
            open_store(w, base, uid, true);
        else {
            w->problems++;
            w->ops->problem(w->ops->arg, de->d_name, "not touched: not a store");
        }
    }
    closedir(d);
}

int store_walk(const char *base, bool all, const struct store_ops *ops)
{
    struct walk w = {.ops = ops};
    char why[160];
    /* One's own store needs only search permission on DIR (0711 when root made it): O_PATH. */
    int fd = open(base, (all ? O_RDONLY : O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0 && errno == ENOENT)
        return 0; /* nothing was ever cached */
    if (fd < 0) {
        snprintf(why, sizeof(why), "cannot open the cache directory: %s",
                 errno == ENOTDIR || errno == ELOOP ? "not a directory (or a link)"
                                                    : strerror(errno));
        ops->problem(ops->arg, ".", why);
        return -1;
    }
    if (all)
        walk_all(&w, fd);
    else
        open_store(&w, fd, (unsigned)geteuid(), false);
    close(fd);
    return w.problems;
}
