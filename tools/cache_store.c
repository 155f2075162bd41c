/* The store seen by the administrator's tool: records proved to be the module's, removed under
 * the record's lock. */
#include "cache_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define LOCK_WAIT_MS 5000

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

/* The module's other files: "<key>.lock" (kept: a login may hold it) and "tmp.<key>.<random>" (a
 * record being written). Neither is read or removed. */
static bool is_module_file(const char *s)
{
    size_t n = strlen(s);

    if (n == CACHE_KEY_LEN + 5 && strcmp(s + CACHE_KEY_LEN, ".lock") == 0)
        return true;
    return strncmp(s, "tmp.", 4) == 0;
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
                      struct store_entry *e, struct stat *st)
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
    *e = (struct store_entry){.uid = uid, .confirmed = rec.confirmed, .failures = rec.failures};
    memcpy(e->user, rec.user, sizeof(e->user));
    memcpy(e->config_id, rec.config_id, sizeof(e->config_id));
    rc = 0;
out:
    secret_wipe(buf, sizeof(buf));
    secret_wipe(&rec, sizeof(rec));
    close(fd);
    return rc;
}

/* The record's lock as the module takes it, without creating it (a lock file root created in
 * another uid's store would lock that uid out). fd, -2 when there is no lock file, -1 on
 * failure (reported). */
static int take_lock(struct walk *w, int dirfd, unsigned uid, const char *name)
{
    char lock[CACHE_KEY_LEN + 8];
    struct stat st;
    int64_t deadline = clock_now_ms() + LOCK_WAIT_MS;
    int fd;

    snprintf(lock, sizeof(lock), "%s.lock", name);
    fd = openat(dirfd, lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        return -2;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != uid) {
        problem(w, uid, lock, "not used: not the module's lock file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const struct timespec pause = {0, 10 * 1000000L};
        if ((errno != EWOULDBLOCK && errno != EINTR) || clock_now_ms() >= deadline) {
            problem(w, uid, lock, "cannot lock within %d ms; record kept", LOCK_WAIT_MS);
            close(fd);
            return -1;
        }
        nanosleep(&pause, NULL);
    }
    return fd;
}

/* Remove the record read as *seen, under its lock, if it is still that file. */
static void remove_entry(struct walk *w, int dirfd, const char *name, const struct store_entry *e,
                         const struct stat *seen)
{
    struct stat now;
    int lock = take_lock(w, dirfd, e->uid, name);

    if (lock == -1)
        return;
    if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_ino != seen->st_ino ||
        now.st_dev != seen->st_dev) {
        if (lock >= 0)
            close(lock);
        problem(w, e->uid, name, "replaced while it was being removed; kept");
        return;
    }
    if (unlinkat(dirfd, name, 0) != 0)
        problem(w, e->uid, name, "cannot remove: %s", strerror(errno));
    else if (w->ops->removed != NULL)
        w->ops->removed(w->ops->arg, e);
    if (lock >= 0)
        close(lock);
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
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            is_module_file(de->d_name))
            continue;
        if (!is_record_name(de->d_name)) {
            problem(w, uid, de->d_name, "not touched: not a file the module writes");
            continue;
        }
        if (read_entry(w, dirfd, uid, de->d_name, &e, &st) == 0 && w->ops->entry(w->ops->arg, &e))
            remove_entry(w, dirfd, de->d_name, &e, &st);
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
