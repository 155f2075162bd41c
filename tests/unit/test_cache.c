/* The credential cache's store (cache.c) and its config section: the record format, the yescrypt
 * hashes, the counter and lock, every hostile-store case, threads racing on one record, and the
 * cache options of the config parser with the config identity.
 * Needs root for the "record of another uid" case (fails loudly otherwise). */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "auth_cache.h"
#include "cache.h"
#include "capture_log.h"
#include "check.h"
#include "config.h"
#include "mailauth.h"

#define PW "correct horse"
#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char base[256]; /* the cache dir of the current test */
static char udir[300]; /* base/<euid> */

static void fresh_base(void)
{
    static int n;
    char cmd[600];

    if (base[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", base);
    }
    snprintf(base, sizeof(base), "/tmp/test_cache.%d.%d", (int)getpid(), n++);
    snprintf(udir, sizeof(udir), "%s/%u", base, (unsigned)geteuid());
    logged[0] = '\0';
}

static struct cache_params params(const char *id)
{
    return (struct cache_params){.dir = base, .config_id = id, .hash_cost = 1, .max_failures = 3};
}

static struct cache *open_as(const char *id, const char *user)
{
    struct cache_params p = params(id);
    struct cache *c = NULL;

    CHECK(cache_open(&p, user, &test_log, &c) == 0 && c != NULL);
    return c;
}

static enum cache_verdict check_pw(const char *id, const char *user, const char *pw, long max_age,
                                   struct cache_lookup *lk_out)
{
    struct cache_lookup lk = {.verdict = CACHE_UNUSABLE};
    struct cache *c = open_as(id, user);

    if (c != NULL)
        cache_check(c, pw, strlen(pw), max_age, false, &lk);
    cache_close(c);
    if (lk_out != NULL)
        *lk_out = lk;
    return lk.verdict;
}

static int store_pw(const char *id, const char *user, const char *pw)
{
    struct cache *c = open_as(id, user);
    int rc = c != NULL ? cache_store(c, pw, strlen(pw)) : -1;

    cache_close(c);
    return rc;
}

/* The path of the one record in udir (a 64-hex name), or "" when there is none. */
static void record_path(char *out, size_t cap)
{
    DIR *d = opendir(udir);
    struct dirent *e;

    out[0] = '\0';
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) == CACHE_KEY_LEN && strspn(e->d_name, "0123456789abcdef") == 64)
            snprintf(out, cap, "%s/%s", udir, e->d_name);
    }
    closedir(d);
}

static size_t slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;

    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

/* Replace the file at path (atomically, 0600) with text. */
static void put(const char *path, const char *text, size_t len)
{
    char tmp[600];
    int fd;

    CHECK(path[0] == '/');
    if (path[0] != '/')
        return;
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, text, len) == (ssize_t)len);
    if (fd >= 0)
        close(fd);
    CHECK(rename(tmp, path) == 0);
}

/* Rewrite the record's confirmed time (and keep the rest). */
static void set_confirmed(const char *path, int64_t when)
{
    char buf[CACHE_MAX_RECORD + 1];
    char out[CACHE_MAX_RECORD];
    struct cache_record rec;
    struct errbuf err;
    size_t n = slurp(path, buf, sizeof(buf));
    int len;

    CHECK(cache_record_parse(buf, n, &rec, &err) == 0);
    rec.confirmed = when;
    len = cache_record_format(&rec, out, sizeof(out));
    CHECK(len > 0);
    put(path, out, (size_t)len);
}

static void test_record_format(void)
{
    struct cache_record r = {.confirmed = 1700000000, .failures = 2}, back;
    struct errbuf err = {{0}};
    char buf[CACHE_MAX_RECORD];
    int len;

    snprintf(r.user, sizeof(r.user), "alice@example.org");
    snprintf(r.config_id, sizeof(r.config_id), "%s", ID_B);
    snprintf(r.hash, sizeof(r.hash), "$y$j75$abcdefghijklmnop$0123456789ABCDEFGHIJ./xyz");
    len = cache_record_format(&r, buf, sizeof(buf));
    CHECK(len > 0);
    CHECK(cache_record_parse(buf, (size_t)len, &back, &err) == 0);
    CHECK_STR(back.user, r.user);
    CHECK_STR(back.hash, r.hash);
    CHECK(back.confirmed == r.confirmed && back.failures == 2);
    /* every truncation is refused */
    for (int cut = 0; cut < len; cut++)
        CHECK(cache_record_parse(buf, (size_t)cut, &back, &err) != 0);
    CHECK(cache_record_format(&r, buf, 20) == -1);

    static const char *const bad[] = {
        "pam_mailauth cache 2\nuser a\nconfig " ID_B "\nhash $y$j75$abcdefghij$x\nconfirmed "
        "1\nfailures 0\n",
        /* a fast hash is never accepted from disk */
        "pam_mailauth cache 1\nuser a\nconfig " ID_B "\nhash $1$abcdefgh$abcdefghijklmnop\n"
        "confirmed 1\nfailures 0\n",
        "pam_mailauth cache 1\nuser a\nconfig " ID_B "\nhash $y$j75$abcdefghij$x\nconfirmed "
        "-1\nfailures 0\n",
        "pam_mailauth cache 1\nuser a\nconfig " ID_B "\nhash $y$j75$abcdefghij$x\nconfirmed "
        "01\nfailures 0\n",
        "pam_mailauth cache 1\nuser a\nconfig " ID_B "\nhash $y$j75$abcdefghij$x\nconfirmed "
        "99999999999999999999\nfailures 0\n",
        "pam_mailauth cache 1\nuser a\nconfig " ID_B "\nhash $y$j75$abcdefghij$x\nconfirmed "
        "1\nfailures 1000001\n",
        "pam_mailauth cache 1\nuser a\nconfig " ID_B "\nhash $y$j75$abcdefghij$x\nconfirmed "
        "1\nfailures 0\nextra\n",
        "pam_mailauth cache 1\nuser a\tb\nconfig " ID_B "\nhash $y$j75$abcdefghij$x\nconfirmed "
        "1\nfailures 0\n",
        "pam_mailauth cache 1\nuser \nconfig " ID_B "\nhash $y$j75$abcdefghij$x\nconfirmed "
        "1\nfailures 0\n",
        "pam_mailauth cache 1\nuser a\nconfig XYZ\nhash $y$j75$abcdefghij$x\nconfirmed "
        "1\nfailures 0\n",
        "pam_mailauth cache 1\nconfig " ID_B "\nuser a\nhash $y$j75$abcdefghij$x\nconfirmed "
        "1\nfailures 0\n",
    };
    for (size_t i = 0; i < MA_ARRAY_LEN(bad); i++) {
        if (cache_record_parse(bad[i], strlen(bad[i]), &back, &err) == 0) {
            checks_failed++;
            fprintf(stderr, "bad record %zu was accepted\n", i);
        } else {
            checks_passed++;
        }
    }
    CHECK(cache_record_parse("pam_mailauth cache 1\nuser a\0b\n", 27, &back, &err) != 0);
}

static void test_store_and_check(void)
{
    struct cache_lookup lk;
    char path[600], buf[CACHE_MAX_RECORD + 1], first[CACHE_MAX_RECORD + 1];
    struct stat st;

    fresh_base();
    CHECK(check_pw(ID_A, "alice", PW, 60, NULL) == CACHE_NO_ENTRY);
    /* created: the base 0711, the euid's directory 0700 */
    {
        mode_t mask = umask(0);
        umask(mask);
        CHECK(stat(base, &st) == 0 && (st.st_mode & 0777) == (0711 & ~mask));
    }
    CHECK(stat(udir, &st) == 0 && (st.st_mode & 0777) == 0700 && st.st_uid == geteuid());
    CHECK(store_pw(ID_A, "alice", PW) == 0);
    record_path(path, sizeof(path));
    CHECK(path[0] != '\0');
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_nlink == 1);
    slurp(path, first, sizeof(first));
    /* the full yescrypt string at the configured cost; never the password */
    CHECK(strstr(first, "\nhash $y$j75$") != NULL);
    CHECK(strstr(first, PW) == NULL && strstr(first, "user alice\n") != NULL);
    CHECK(check_pw(ID_A, "alice", PW, 60, &lk) == CACHE_MATCH && lk.age_s <= 1);
    /* a fresh salt on every write */
    CHECK(store_pw(ID_A, "alice", PW) == 0);
    slurp(path, buf, sizeof(buf));
    CHECK(strcmp(buf, first) != 0);
    CHECK(check_pw(ID_A, "alice", PW, 60, NULL) == CACHE_MATCH);
    /* keyed by user and config: no sharing */
    CHECK(check_pw(ID_A, "Alice", PW, 60, NULL) == CACHE_NO_ENTRY);
    CHECK(check_pw(ID_B, "alice", PW, 60, NULL) == CACHE_NO_ENTRY);
    /* age windows */
    set_confirmed(path, (int64_t)time(NULL) - 100);
    CHECK(check_pw(ID_A, "alice", PW, 60, &lk) == CACHE_TOO_OLD && lk.age_s >= 100);
    CHECK(check_pw(ID_A, "alice", PW, 200, NULL) == CACHE_MATCH);
    /* a higher cost for new records; old ones still verify with their own */
    {
        struct cache_params p = params(ID_A);
        struct cache *c = NULL;
        p.hash_cost = 2;
        struct cache_lookup l2 = {.verdict = CACHE_UNUSABLE};
        CHECK(cache_open(&p, "alice", &test_log, &c) == 0 && c != NULL);
        if (c != NULL)
            cache_check(c, PW, strlen(PW), 200, false, &l2);
        CHECK(l2.verdict == CACHE_MATCH);
        CHECK(c != NULL && cache_store(c, PW, strlen(PW)) == 0);
        cache_close(c);
        slurp(path, buf, sizeof(buf));
        CHECK(strstr(buf, "\nhash $y$j85$") != NULL);
    }
    /* a password libxcrypt cannot hash is never cached */
    {
        char longpw[CACHE_MAX_PASSWORD + 2];
        struct cache *c = open_as(ID_A, "long");
        memset(longpw, 'x', sizeof(longpw) - 1);
        longpw[sizeof(longpw) - 1] = '\0';
        CHECK(c != NULL && cache_store(c, longpw, strlen(longpw)) == -1);
        cache_close(c);
    }
}

static void test_failures_and_lock(void)
{
    struct cache_lookup lk;
    struct cache *c;

    fresh_base();
    CHECK(store_pw(ID_A, "bob", PW) == 0);
    /* one count per login, however often it asks */
    c = open_as(ID_A, "bob");
    if (c != NULL) {
        cache_check(c, "wrong", 5, 60, false, &lk);
        CHECK(lk.verdict == CACHE_MISMATCH && lk.failures == 1);
        cache_check(c, "wrong", 5, 60, false, &lk);
        CHECK(lk.verdict == CACHE_MISMATCH && lk.failures == 1);
    }
    cache_close(c);
    CHECK(check_pw(ID_A, "bob", "wrong2", 60, &lk) == CACHE_MISMATCH && lk.failures == 2);
    CHECK(check_pw(ID_A, "bob", PW, 60, &lk) == CACHE_MATCH && lk.failures == 2);
    CHECK(check_pw(ID_A, "bob", "wrong3", 60, &lk) == CACHE_MISMATCH && lk.failures == 3);
    /* max_failures (3) reached: even the right password is not compared */
    CHECK(check_pw(ID_A, "bob", PW, 60, &lk) == CACHE_LOCKED);
    /* until a server confirms a login again */
    CHECK(store_pw(ID_A, "bob", PW) == 0);
    CHECK(check_pw(ID_A, "bob", PW, 60, &lk) == CACHE_MATCH && lk.failures == 0);
    /* an old record is not compared, so it counts nothing */
    {
        char path[600];
        record_path(path, sizeof(path));
        set_confirmed(path, (int64_t)time(NULL) - 1000);
        CHECK(check_pw(ID_A, "bob", "wrong", 60, &lk) == CACHE_TOO_OLD && lk.failures == 0);
    }
}

static void test_forget(void)
{
    struct cache *c;

    fresh_base();
    CHECK(store_pw(ID_A, "carol", PW) == 0);
    c = open_as(ID_A, "carol");
    CHECK(c != NULL && cache_forget_if_match(c, "other", 5) == CACHE_MISMATCH);
    cache_close(c);
    /* a refused other password counts no failure */
    {
        struct cache_lookup lk;
        CHECK(check_pw(ID_A, "carol", PW, 60, &lk) == CACHE_MATCH && lk.failures == 0);
    }
    c = open_as(ID_A, "carol");
    CHECK(c != NULL && cache_forget_if_match(c, PW, strlen(PW)) == CACHE_MATCH);
    CHECK(c != NULL && cache_forget_if_match(c, PW, strlen(PW)) == CACHE_NO_ENTRY);
    cache_close(c);
    CHECK(check_pw(ID_A, "carol", PW, 60, NULL) == CACHE_NO_ENTRY);
}

/* Store, then damage the record with fn, then expect check to say unusable and log want. */
static void expect_ignored(const char *what, void (*damage)(const char *path), const char *want)
{
    char path[600];
    struct cache_lookup lk;

    fresh_base();
    CHECK(store_pw(ID_A, "dave", PW) == 0);
    record_path(path, sizeof(path));
    damage(path);
    logged[0] = '\0';
    if (check_pw(ID_A, "dave", PW, 60, &lk) != CACHE_UNUSABLE || strstr(logged, want) == NULL) {
        checks_failed++;
        fprintf(stderr, "hostile store \"%s\": verdict %s, log: %s\n", what,
                cache_verdict_name(lk.verdict), logged);
    } else {
        checks_passed++;
    }
    /* a store heals it: the record is replaced, never followed */
    CHECK(store_pw(ID_A, "dave", PW) == 0);
    CHECK(check_pw(ID_A, "dave", PW, 60, NULL) == CACHE_MATCH);
}

static void damage_symlink(const char *path)
{
    char target[620];
    snprintf(target, sizeof(target), "%s.target", path);
    CHECK(rename(path, target) == 0 && symlink(target, path) == 0);
}
static void damage_mode(const char *path)
{
    CHECK(chmod(path, 0644) == 0);
}
static void damage_truncate(const char *path)
{
    CHECK(truncate(path, 40) == 0);
}
static void damage_future(const char *path)
{
    set_confirmed(path, (int64_t)time(NULL) + 3600);
}
static void damage_huge(const char *path)
{
    static char big[CACHE_MAX_RECORD * 4];
    size_t n = slurp(path, big, sizeof(big));
    memset(big + n, '#', sizeof(big) - n);
    put(path, big, sizeof(big));
}
static void damage_link_count(const char *path)
{
    char other[620];
    snprintf(other, sizeof(other), "%s.hardlink", path);
    CHECK(link(path, other) == 0);
}
static void damage_other_uid(const char *path)
{
    if (geteuid() != 0) {
        checks_failed++;
        fprintf(stderr, "the other-uid case needs root: FAILED, not skipped\n");
        return;
    }
    CHECK(chown(path, 65534, 65534) == 0);
}
static void damage_fifo(const char *path)
{
    CHECK(unlink(path) == 0 && mkfifo(path, 0600) == 0);
}
/* another user's record under this user's name */
static void damage_swap_user(const char *path)
{
    char other[600], buf[CACHE_MAX_RECORD + 1];
    size_t n;

    CHECK(rename(path, "/tmp/test_cache.keep") == 0);
    CHECK(store_pw(ID_A, "mallory", "mallory-pw") == 0);
    record_path(other, sizeof(other));
    n = slurp(other, buf, sizeof(buf));
    put(path, buf, n);
    unlink(other);
    unlink("/tmp/test_cache.keep");
}

static void test_hostile_store(void)
{
    expect_ignored("symlinked record", damage_symlink, "is a symbolic link; ignored");
    expect_ignored("group/world readable", damage_mode, "accessible by group or others");
    expect_ignored("truncated", damage_truncate, "corrupt record");
    expect_ignored("future", damage_future, "in the future; ignored");
    expect_ignored("huge", damage_huge, "larger than 2048 bytes");
    expect_ignored("two links", damage_link_count, "has 2 links");
    expect_ignored("other uid", damage_other_uid, "owned by uid 65534");
    expect_ignored("fifo", damage_fifo, "not a regular file");
    expect_ignored("another user's record", damage_swap_user, "belongs to another user");
}

static void test_hostile_dirs(void)
{
    struct cache_params p;
    struct cache *c = NULL;
    char target[320];

    /* a world-writable euid directory: refused, the cache is off */
    fresh_base();
    CHECK(store_pw(ID_A, "erin", PW) == 0);
    CHECK(chmod(udir, 0777) == 0);
    p = params(ID_A);
    logged[0] = '\0';
    CHECK(cache_open(&p, "erin", &test_log, &c) == -1 && c == NULL);
    CHECK(strstr(logged, "not writable by group or others; cache off") != NULL);
    CHECK(chmod(udir, 0700) == 0);
    /* a symlinked euid directory */
    snprintf(target, sizeof(target), "%s.real", udir);
    CHECK(rename(udir, target) == 0 && symlink(target, udir) == 0);
    logged[0] = '\0';
    CHECK(cache_open(&p, "erin", &test_log, &c) == -1 && c == NULL);
    CHECK(strstr(logged, "cannot open or create the directory") != NULL);
    unlink(udir);
    /* a group-writable base: refused unless sticky (then each uid has its own subdirectory) */
    CHECK(chmod(base, 0773) == 0);
    logged[0] = '\0';
    CHECK(cache_open(&p, "erin", &test_log, &c) == -1 && c == NULL);
    CHECK(strstr(logged, "unless sticky") != NULL);
    CHECK(chmod(base, 01773) == 0);
    CHECK(cache_open(&p, "erin", &test_log, &c) == 0 && c != NULL);
    cache_close(c);
    c = NULL;
    /* a missing parent: logged, off */
    p.dir = "/nonexistent/pam_mailauth";
    logged[0] = '\0';
    CHECK(cache_open(&p, "erin", &test_log, &c) == -1 && strstr(logged, "/nonexistent") != NULL);
    /* a config identity that is not one */
    p = params("not-hex");
    CHECK(cache_open(&p, "erin", &test_log, &c) == -1);
}

/* Threads racing on one record: stores of the right password, checks of right and wrong ones.
 * The record must parse after every operation and a check of the right password must never say
 * mismatch. */
struct racer {
    pthread_t t;
    int id;
    int bad;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    for (int i = 0; i < 12; i++) {
        struct cache_params p = params(ID_A);
        struct cache *c = NULL;
        struct cache_lookup lk;

        p.max_failures = 1000;
        if (cache_open(&p, "racer", &test_log, &c) != 0) {
            fprintf(stderr, "racer: open failed\n");
            r->bad++;
            continue;
        }
        if ((i + r->id) % 3 == 0) {
            if (cache_store(c, PW, strlen(PW)) != 0) {
                fprintf(stderr, "racer: store failed\n");
                r->bad++;
            }
        } else if ((i + r->id) % 3 == 1) {
            cache_check(c, PW, strlen(PW), 60, false, &lk);
            if (lk.verdict != CACHE_MATCH && lk.verdict != CACHE_NO_ENTRY) {
                fprintf(stderr, "racer: right password: %s\n", cache_verdict_name(lk.verdict));
                r->bad++;
            }
        } else {
            cache_check(c, "wrong", 5, 60, false, &lk);
            if (lk.verdict == CACHE_MATCH || lk.verdict == CACHE_UNUSABLE) {
                fprintf(stderr, "racer: wrong password: %s\n", cache_verdict_name(lk.verdict));
                r->bad++;
            }
        }
        cache_close(c);
    }
    return NULL;
}

static void test_threads(void)
{
    struct racer r[16];
    char path[600], buf[CACHE_MAX_RECORD + 1];
    struct cache_record rec;
    struct errbuf err;
    int bad = 0;
    size_t n;

    fresh_base();
    logged[0] = '\0';
    for (int i = 0; i < 16; i++) {
        r[i] = (struct racer){.id = i};
        CHECK(pthread_create(&r[i].t, NULL, race, &r[i]) == 0);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(r[i].t, NULL);
        bad += r[i].bad;
    }
    CHECK(bad == 0);
    if (bad != 0)
        fprintf(stderr, "log: %s\n", logged);
    record_path(path, sizeof(path));
    n = slurp(path, buf, sizeof(buf));
    CHECK(cache_record_parse(buf, n, &rec, &err) == 0);
    CHECK(rec.failures <= 16 * 12); /* stores reset it; wrong passwords raise it */
    CHECK(check_pw(ID_A, "racer", PW, 60, NULL) == CACHE_MATCH);
    /* no temp file left behind */
    {
        DIR *d = opendir(udir);
        struct dirent *e;
        int tmp = 0;
        while (d != NULL && (e = readdir(d)) != NULL)
            tmp += strncmp(e->d_name, "tmp.", 4) == 0;
        if (d != NULL)
            closedir(d);
        CHECK(tmp == 0);
    }
}

/* Offline checks are strict: however many wrong passwords arrive at once, at most max_failures
 * of them are ever compared with the record. */
struct guesser {
    pthread_t t;
    enum cache_verdict verdict;
};

static void *guess(void *arg)
{
    struct guesser *g = arg;
    struct cache_params p = params(ID_A);
    struct cache *c = NULL;
    struct cache_lookup lk = {.verdict = CACHE_UNUSABLE};

    if (cache_open(&p, "guessed", NULL, &c) == 0)
        cache_check(c, "guess", 5, 60, true, &lk);
    cache_close(c);
    g->verdict = lk.verdict;
    return NULL;
}

static void test_strict_cap(void)
{
    struct guesser g[16];
    int mismatches = 0, locked = 0;
    char lockpath[700], path[600];
    struct cache_lookup lk;
    struct cache *c;

    fresh_base();
    CHECK(store_pw(ID_A, "guessed", PW) == 0);
    for (int i = 0; i < 16; i++)
        CHECK(pthread_create(&g[i].t, NULL, guess, &g[i]) == 0);
    for (int i = 0; i < 16; i++) {
        pthread_join(g[i].t, NULL);
        mismatches += g[i].verdict == CACHE_MISMATCH;
        locked += g[i].verdict == CACHE_LOCKED;
    }
    CHECK(mismatches == 3 && locked == 13);
    /* no lock: a flock held on the old lock file (a stopped holder) changes nothing, and a
     * slot planted as a symbolic link only counts as taken (never a free comparison) */
    CHECK(store_pw(ID_A, "guessed", PW) == 0);
    record_path(path, sizeof(path));
    snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
    {
        int held = open(lockpath, O_RDWR | O_CREAT, 0600);
        CHECK(held >= 0 && flock(held, LOCK_EX) == 0);
        c = open_as(ID_A, "guessed");
        if (c != NULL) {
            cache_check(c, PW, strlen(PW), 60, true, &lk);
            CHECK(lk.verdict == CACHE_MATCH && lk.failures == 0);
        }
        cache_close(c);
        c = NULL;
        if (held >= 0)
            close(held);
    }
    {
        DIR *d = opendir(udir);
        struct dirent *e;
        char slot[700];

        slot[0] = '\0';
        c = open_as(ID_A, "guessed");
        if (c != NULL)
            cache_check(c, "wrong", 5, 60, true, &lk); /* takes slot 0 */
        cache_close(c);
        c = NULL;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (strstr(e->d_name, ".f") != NULL && strcmp(strrchr(e->d_name, '.'), ".0") == 0)
                snprintf(slot, sizeof(slot), "%s/%s", udir, e->d_name);
        }
        if (d != NULL)
            closedir(d);
        CHECK(slot[0] != '\0');
        /* slot 1 planted as a link: the next wrong password gets slot 2, the one after none */
        slot[strlen(slot) - 1] = '1';
        CHECK(symlink("/tmp", slot) == 0);
        CHECK(check_pw(ID_A, "guessed", "wrong2", 60, &lk) == CACHE_MISMATCH && lk.failures == 3);
        CHECK(check_pw(ID_A, "guessed", PW, 60, &lk) == CACHE_LOCKED);
    }
    cache_close(c);
}

/* The walk's offline path (auth_cache.c), without PAM: a server on a closed port is offline;
 * the right password is accepted from the cache, and 16 wrong ones at once get at most
 * max_failures comparisons (the others find the entry locked). */
static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

struct walker {
    pthread_t t;
    const struct mailauth_config *cfg;
    enum mailauth_result res;
    struct mailauth_report rep;
};

static void *walk(void *arg)
{
    struct walker *w = arg;

    w->res = mailauth_check(w->cfg, "alice", 5, "wrong", 5, NULL, &w->rep);
    return NULL;
}

static void test_offline_walk(void)
{
    struct mailauth_config *cfg = NULL;
    struct mailauth_report rep;
    struct walker w[16];
    char text[1024];
    int mismatches = 0, locked = 0, accepted = 0;

    fresh_base();
    snprintf(text, sizeof(text),
             "fail_delay = 0\nserver s {\n protocol = imap\n host = \"127.0.0.1\"\n port = %d\n"
             " tls = none\n}\ncache {\n dir = \"%s\"\n offline_grace = 600\n hash_cost = 1\n"
             " max_failures = 3\n}\n",
             closed_port(), base);
    CHECK(config_parse_buffer(text, strlen(text), "walk.conf", &test_log, &cfg) == CONFIG_OK);
    if (cfg == NULL)
        return;
    /* nothing stored yet: unavailable */
    CHECK(mailauth_check(cfg, "alice", 5, PW, strlen(PW), NULL, &rep) == MAILAUTH_UNAVAIL);
    CHECK(strstr(rep.reason, "offline cache: no entry") != NULL && !rep.creds_sent);
    /* as if a server had confirmed PW */
    CHECK(store_pw(cfg->identity, "alice", PW) == 0);
    CHECK(mailauth_check(cfg, "alice", 5, PW, strlen(PW), NULL, &rep) == MAILAUTH_OK);
    CHECK(rep.source == MAILAUTH_SOURCE_OFFLINE && rep.cache_age_s <= 1 && rep.attempts == 1);
    for (int i = 0; i < 16; i++) {
        w[i] = (struct walker){.cfg = cfg};
        CHECK(pthread_create(&w[i].t, NULL, walk, &w[i]) == 0);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(w[i].t, NULL);
        accepted += w[i].res == MAILAUTH_OK;
        mismatches += strstr(w[i].rep.reason, "does not match") != NULL;
        locked += strstr(w[i].rep.reason, "entry locked after 3 mismatches") != NULL;
    }
    CHECK(accepted == 0 && mismatches == 3 && locked == 13);
    if (mismatches != 3 || locked != 13) {
        for (int i = 0; i < 16; i++)
            fprintf(stderr, "walker %d: %s: %s\n", i, mailauth_result_name(w[i].res),
                    w[i].rep.reason);
    }
    CHECK(mailauth_check(cfg, "alice", 5, PW, strlen(PW), NULL, &rep) == MAILAUTH_UNAVAIL);
    /* a password libxcrypt cannot hash bypasses the cache entirely, logged */
    {
        char longpw[CACHE_MAX_PASSWORD + 2];
        memset(longpw, 'x', sizeof(longpw) - 1);
        longpw[sizeof(longpw) - 1] = '\0';
        logged[0] = '\0';
        CHECK(mailauth_check(cfg, "alice", 5, longpw, strlen(longpw), &test_log, &rep) ==
              MAILAUTH_UNAVAIL);
        CHECK(strstr(logged, "password longer than 511 bytes; cache not used") != NULL);
        CHECK(strstr(rep.reason, "offline cache") == NULL);
    }
    config_free(cfg);
}

/* Issue 17: offline_grace = 0 is off at every age, an entry confirmed this very second included
 * (with ttl on, the cache section is enabled and the walk's offline path runs). The control:
 * offline_grace = 600 accepts the same entry. */
static enum mailauth_result after_unavailable_walk(long offline_grace, int64_t age)
{
    struct mailauth_config *cfg = NULL;
    struct mailauth_report rep = {.attempts = 1};
    struct auth_cache ac;
    enum mailauth_result res = MAILAUTH_OK;
    char text[1024], path[600];

    snprintf(text, sizeof(text),
             "server s {\n protocol = imap\n host = \"127.0.0.1\"\n port = %d\n tls = none\n}\n"
             "cache {\n dir = \"%s\"\n ttl = 300\n offline_grace = %ld\n hash_cost = 1\n}\n",
             closed_port(), base, offline_grace);
    CHECK(config_parse_buffer(text, strlen(text), "grace.conf", &test_log, &cfg) == CONFIG_OK);
    if (cfg == NULL)
        return res;
    CHECK(store_pw(cfg->identity, "alice", PW) == 0);
    record_path(path, sizeof(path));
    set_confirmed(path, (int64_t)time(NULL) - age);
    snprintf(rep.user, sizeof(rep.user), "alice");
    auth_cache_begin(&ac, cfg, "alice", PW, strlen(PW), &test_log);
    CHECK(ac.store != NULL);
    res = auth_cache_after_walk(&ac, MAILAUTH_UNAVAIL, &rep);
    CHECK(res == MAILAUTH_UNAVAIL || rep.source == MAILAUTH_SOURCE_OFFLINE);
    auth_cache_end(&ac);
    config_free(cfg);
    return res;
}

static void test_offline_grace_zero_is_off(void)
{
    static const int64_t ages[] = {0, 1, 2, 60, 86400};

    for (size_t i = 0; i < MA_ARRAY_LEN(ages); i++) {
        fresh_base();
        if (after_unavailable_walk(0, ages[i]) != MAILAUTH_UNAVAIL) {
            checks_failed++;
            fprintf(stderr, "offline_grace = 0 accepted an entry %lld s old\n", (long long)ages[i]);
        } else {
            checks_passed++;
        }
    }
    fresh_base();
    CHECK(after_unavailable_walk(600, 0) == MAILAUTH_OK);
}

static void test_config_section(void)
{
    struct mailauth_config *cfg = NULL;
    const char *srv = "server s { protocol = imap\n host = h }\n";
    char text[512];

    /* no section: off */
    CHECK(config_parse_buffer(srv, strlen(srv), "t.conf", &test_log, &cfg) == CONFIG_OK);
    CHECK(cfg != NULL && !cfg->cache.enabled && cfg->cache.dir == NULL);
    config_free(cfg);
    /* defaults; ttl and offline_grace 0 leave it off */
    snprintf(text, sizeof(text), "%scache {\n}\n", srv);
    CHECK(config_parse_buffer(text, strlen(text), "t.conf", &test_log, &cfg) == CONFIG_OK);
    CHECK(cfg != NULL && !cfg->cache.enabled && cfg->cache.ttl_s == 0 &&
          cfg->cache.offline_grace_s == 0 && cfg->cache.hash_cost == 2 &&
          cfg->cache.max_failures == 5);
    CHECK(cfg != NULL && strcmp(cfg->cache.dir, "/var/cache/pam_mailauth") == 0);
    config_free(cfg);
    snprintf(text, sizeof(text),
             "%scache {\n dir = \"/run/x\"\n ttl = 30\n offline_grace = 86400\n hash_cost = 3\n"
             " max_failures = 7\n}\n",
             srv);
    CHECK(config_parse_buffer(text, strlen(text), "t.conf", &test_log, &cfg) == CONFIG_OK);
    CHECK(cfg != NULL && cfg->cache.enabled && cfg->cache.ttl_s == 30 &&
          cfg->cache.offline_grace_s == 86400 && cfg->cache.hash_cost == 3 &&
          cfg->cache.max_failures == 7 && strcmp(cfg->cache.dir, "/run/x") == 0);
    config_free(cfg);

    static const struct {
        const char *body, *want;
    } bad[] = {
        {"cache {\n hash_cost = 0\n}\n", "t.conf:5: cache: hash_cost = 0 is out of range 1-11"},
        {"cache {\n hash_cost = 12\n}\n", "hash_cost = 12 is out of range"},
        {"cache {\n ttl = -1\n}\n", "ttl = -1 is out of range 0-31536000 seconds"},
        {"cache {\n offline_grace = 40000000\n}\n", "offline_grace = 40000000 is out of range"},
        {"cache {\n max_failures = 0\n}\n", "max_failures = 0 is out of range 1-1000"},
        {"cache {\n dir = \"relative\"\n}\n", "must be an absolute path"},
        {"cache {\n ttl = 1\n}\ncache {\n ttl = 2\n}\n", "only one cache section"},
        {"cache {\n ttl = 1.5\n}\n", "t.conf:4: invalid integer value for option 'ttl'"},
        {"cache {\n size = 1\n}\n", "t.conf:4: no such option 'size'"},
    };
    for (size_t i = 0; i < MA_ARRAY_LEN(bad); i++) {
        snprintf(text, sizeof(text), "%s%s", srv, bad[i].body);
        logged[0] = '\0';
        cfg = NULL;
        if (config_parse_buffer(text, strlen(text), "t.conf", &test_log, &cfg) != CONFIG_EINVAL ||
            cfg != NULL || strstr(logged, bad[i].want) == NULL) {
            checks_failed++;
            fprintf(stderr, "cache config case %zu: want \"%s\", log: %s\n", i, bad[i].want,
                    logged);
        } else {
            checks_passed++;
        }
        config_free(cfg);
    }
}

static void test_config_identity(void)
{
    char a[CONFIG_IDENTITY_LEN + 1], b[CONFIG_IDENTITY_LEN + 1], c[CONFIG_IDENTITY_LEN + 1];
    char dir[] = "/tmp/test_cache_id.XXXXXX";
    char p1[64], p2[64], p3[80];
    const char *text = "server s { protocol = imap\n host = h }\n";
    struct mailauth_config *c1 = NULL, *c2 = NULL, *c3 = NULL;
    FILE *f;

    CHECK(config_identity("/etc/x.conf", "abc", 3, a) == 0);
    CHECK(config_identity("/etc/x.conf", "abc", 3, b) == 0 && strcmp(a, b) == 0);
    CHECK(config_identity("/etc/y.conf", "abc", 3, b) == 0 && strcmp(a, b) != 0);
    CHECK(config_identity("/etc/x.conf", "abd", 3, c) == 0 && strcmp(a, c) != 0);
    CHECK(strlen(a) == 64 && strspn(a, "0123456789abcdef") == 64);
    /* two files with equal contents are two configs; one file by two spellings is one */
    if (mkdtemp(dir) == NULL)
        return;
    snprintf(p1, sizeof(p1), "%s/one.conf", dir);
    snprintf(p2, sizeof(p2), "%s/two.conf", dir);
    snprintf(p3, sizeof(p3), "%s/../%s/one.conf", dir, strrchr(dir, '/') + 1);
    for (int i = 0; i < 2; i++) {
        f = fopen(i == 0 ? p1 : p2, "w");
        if (f != NULL) {
            fputs(text, f);
            fclose(f);
        }
        chmod(i == 0 ? p1 : p2, 0644);
    }
    CHECK(config_load_file(p1, &test_log, &c1) == CONFIG_OK);
    CHECK(config_load_file(p2, &test_log, &c2) == CONFIG_OK);
    CHECK(config_load_file(p3, &test_log, &c3) == CONFIG_OK);
    CHECK(c1 != NULL && c2 != NULL && strcmp(c1->identity, c2->identity) != 0);
    CHECK(c1 != NULL && c3 != NULL && strcmp(c1->identity, c3->identity) == 0);
    config_free(c1);
    config_free(c2);
    config_free(c3);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

int main(void)
{
    test_record_format();
    test_store_and_check();
    test_failures_and_lock();
    test_forget();
    test_hostile_store();
    test_hostile_dirs();
    test_threads();
    test_strict_cap();
    test_offline_walk();
    test_offline_grace_zero_is_off();
    test_config_section();
    test_config_identity();
    fresh_base(); /* removes the last one */
    return check_summary("cache");
}
