/* libnss_mailauth (built with MAILAUTH_NSS_TESTING: the registry path and the sshd path are
 * the test's) against good and hostile registries, from one thread and from many at once (run in
 * the ASan build too). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accounts_parse.h"
#include "check.h"
#include "nss_mailauth.h"

static char dir[] = "/tmp/test_nss.XXXXXX";
static char path[256];

static void write_registry(const char *text, size_t len, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        perror("write_registry");
    fchmod(fd, mode);
    close(fd);
}

static void put(const char *text)
{
    write_registry(text, strlen(text), 0644);
}

static enum nss_status by_name(const char *name, struct passwd *pw, char *buf, size_t len, int *err)
{
    *err = 0;
    return _nss_mailauth_getpwnam_r(name, pw, buf, len, err);
}

static bool found(const char *name)
{
    struct passwd pw;
    char buf[1024];
    int err;

    return by_name(name, &pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS;
}

static bool uid_found(uid_t uid)
{
    struct passwd pw;
    char buf[1024];
    int err = 0;

    return _nss_mailauth_getpwuid_r(uid, &pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS;
}

static const char good[] =
    "# a comment\n"
    "alice@example.org:70000:70000:active:/home/alice@example.org:/bin/bash:100,27\n"
    "bob:70001:70001:locked:/home/example.org/bob:/bin/sh:\n"
    "carol:70002:70002:removed:/home/carol:/bin/bash:\n"
    "dave:70003:100:active:/home/dave:/bin/bash:\n";

static void test_lookups(void)
{
    struct passwd pw;
    struct group gr;
    char buf[1024];
    int err;

    put(good);
    CHECK(by_name("alice@example.org", &pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS);
    CHECK(pw.pw_uid == 70000 && pw.pw_gid == 70000);
    CHECK_STR(pw.pw_dir, "/home/alice@example.org");
    CHECK_STR(pw.pw_shell, "/bin/bash");
    CHECK_STR(pw.pw_passwd, "*"); /* no password here: pam_unix must not look for a shadow entry */
    CHECK(found("bob"));          /* locked: still resolves (its files keep their owner) */
    CHECK(!found("carol"));       /* removed: a tombstone */
    CHECK(!uid_found(70002));
    CHECK(!found("nobody-here"));
    CHECK(uid_found(70001));
    CHECK(!uid_found(0));
    err = 0;
    CHECK(_nss_mailauth_getgrnam_r("alice@example.org", &gr, buf, sizeof(buf), &err) ==
          NSS_STATUS_SUCCESS);
    CHECK(gr.gr_gid == 70000 && gr.gr_mem != NULL && gr.gr_mem[0] == NULL);
    /* dave's primary group is a local one: no private group is made up for him */
    CHECK(_nss_mailauth_getgrnam_r("dave", &gr, buf, sizeof(buf), &err) == NSS_STATUS_NOTFOUND);
    CHECK(_nss_mailauth_getgrgid_r(70001, &gr, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS);
    CHECK_STR(gr.gr_name, "bob");
    CHECK(_nss_mailauth_getgrgid_r(70002, &gr, buf, sizeof(buf), &err) == NSS_STATUS_NOTFOUND);
}

static void test_erange(void)
{
    struct passwd pw;
    struct group gr;
    char buf[1024];
    int err;
    size_t need = strlen("alice@example.org") + 1 + 2 + 1 + strlen("/home/alice@example.org") + 1 +
                  strlen("/bin/bash") + 1;

    put(good);
    for (size_t len = 0; len < need; len++) {
        CHECK(by_name("alice@example.org", &pw, buf, len, &err) == NSS_STATUS_TRYAGAIN);
        CHECK(err == ERANGE);
    }
    CHECK(by_name("alice@example.org", &pw, buf, need, &err) == NSS_STATUS_SUCCESS);
    err = 0;
    CHECK(_nss_mailauth_getgrnam_r("bob", &gr, buf, 4, &err) == NSS_STATUS_TRYAGAIN &&
          err == ERANGE);
}

static void test_enumeration(void)
{
    struct passwd pw;
    struct group gr;
    char buf[1024];
    char small[8];
    int err = 0;
    int n = 0;

    put(good);
    _nss_mailauth_setpwent(0);
    /* a buffer too small must not skip the entry */
    CHECK(_nss_mailauth_getpwent_r(&pw, small, sizeof(small), &err) == NSS_STATUS_TRYAGAIN);
    while (_nss_mailauth_getpwent_r(&pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS)
        n++;
    _nss_mailauth_endpwent();
    CHECK(n == 3); /* alice, bob, dave; not the tombstone */
    n = 0;
    _nss_mailauth_setgrent(0);
    while (_nss_mailauth_getgrent_r(&gr, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS)
        n++;
    _nss_mailauth_endgrent();
    CHECK(n == 2); /* the private groups of alice and bob */
}

static void test_initgroups(void)
{
    long start = 1, size = 1;
    gid_t *groups = malloc(sizeof(*groups));
    int err = 0;

    put(good);
    groups[0] = 70000;
    CHECK(_nss_mailauth_initgroups_dyn("alice@example.org", 70000, &start, &size, &groups, 0,
                                       &err) == NSS_STATUS_SUCCESS);
    CHECK(start == 3 && groups[1] == 100 && groups[2] == 27);
    start = 1;
    CHECK(_nss_mailauth_initgroups_dyn("alice@example.org", 70000, &start, &size, &groups, 2,
                                       &err) == NSS_STATUS_SUCCESS);
    CHECK(start == 2); /* limit respected */
    free(groups);
}

static void test_hostile_files(void)
{
    char *big;
    size_t big_len = ACCT_MAX_FILE + 100;

    /* world- and group-writable */
    write_registry(good, sizeof(good) - 1, 0666);
    CHECK(!found("bob"));
    write_registry(good, sizeof(good) - 1, 0664);
    CHECK(!found("bob"));
    /* a symbolic link to a good file */
    {
        char target[300];
        snprintf(target, sizeof(target), "%s/real", dir);
        unlink(target);
        int fd = open(target, O_WRONLY | O_CREAT, 0644);
        CHECK(write(fd, good, sizeof(good) - 1) == (ssize_t)(sizeof(good) - 1));
        close(fd);
        unlink(path);
        CHECK(symlink(target, path) == 0);
        CHECK(!found("bob"));
        unlink(path);
        unlink(target);
    }
    /* a directory, a FIFO */
    CHECK(mkdir(path, 0755) == 0);
    CHECK(!found("bob"));
    rmdir(path);
    CHECK(mkfifo(path, 0644) == 0);
    CHECK(!found("bob")); /* and does not block */
    unlink(path);
    /* oversized */
    big = malloc(big_len);
    memset(big, '#', big_len);
    memcpy(big, "bob:70001:70001:active:/home/bob:/bin/sh:\n", 42);
    write_registry(big, big_len, 0644);
    CHECK(!found("bob"));
    free(big);
    /* truncated: the last line has no newline */
    put("alice:70000:70000:active:/home/alice:/bin/bash:\nbob:70001:70001:active:/home/bob:/bi");
    CHECK(found("alice"));
    CHECK(!found("bob"));
}

static void test_hostile_lines(void)
{
    /* duplicate names (either state) and duplicate uids: every copy is dropped */
    put("a1:70000:70000:active:/home/a1:/bin/sh:\n"
        "a1:70001:70001:removed:/home/a1:/bin/sh:\n"
        "b1:70005:70005:active:/home/b1:/bin/sh:\n"
        "c1:70005:70005:active:/home/c1:/bin/sh:\n"
        "ok:70009:70009:active:/home/ok:/bin/sh:\n");
    CHECK(!found("a1"));
    CHECK(!found("b1"));
    CHECK(!found("c1"));
    CHECK(!uid_found(70005));
    CHECK(found("ok"));
    /* control bytes, bad names, bad ids, bad paths, extra or missing fields */
    static const char *const bad[] = {
        "x\x01y:70000:70000:active:/home/x:/bin/sh:\n",
        "-x:70000:70000:active:/home/x:/bin/sh:\n",
        ".:70000:70000:active:/home/x:/bin/sh:\n",
        "..:70000:70000:active:/home/x:/bin/sh:\n",
        "a/b:70000:70000:active:/home/x:/bin/sh:\n",
        "12345:70000:70000:active:/home/x:/bin/sh:\n",
        "x:0:0:active:/home/x:/bin/sh:\n",
        "x:999:999:active:/home/x:/bin/sh:\n",
        "x:65534:65534:active:/home/x:/bin/sh:\n",
        "x:4294967295:70000:active:/home/x:/bin/sh:\n",
        "x:99999999999:70000:active:/home/x:/bin/sh:\n",
        "x:070000:70000:active:/home/x:/bin/sh:\n",
        "x:+70000:70000:active:/home/x:/bin/sh:\n",
        "x:70000:70000:ACTIVE:/home/x:/bin/sh:\n",
        "x:70000:70000:active:home/x:/bin/sh:\n",
        "x:70000:70000:active:/home/../etc:/bin/sh:\n",
        "x:70000:70000:active:/home/x\t:/bin/sh:\n",
        "x:70000:70000:active:/home/x:/bin/sh\x7f:\n",
        "x:70000:70000:active:/home/x:/bin/sh:0\n",
        "x:70000:70000:active:/home/x:/bin/sh::\n",
        "x:70000:70000:active:/home/x:/bin/sh\n",
        "x:70000:70000:active:/home/x:/bin/sh:100,\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put(bad[i]);
        if (found("x") || uid_found(70000))
            fprintf(stderr, "bad line %zu accepted\n", i);
        CHECK(!found("x") && !uid_found(70000));
    }
    /* a NUL byte inside a line */
    write_registry("x:70000:70000:active:/home/x\0:/bin/sh:\n", 40, 0644);
    CHECK(!found("x"));
}

static void test_first_login_entry(void)
{
    struct passwd pw;
    char buf[1024];
    char self[256];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    int err;

    put(good);
    /* not sshd: nothing for unknown names */
    nss_mailauth_test_sshd = "/usr/sbin/sshd";
    CHECK(!found("newuser"));
    if (n <= 0 || getuid() != 0) {
        printf("first-login entry: checked only as root\n");
        return;
    }
    self[n] = '\0';
    nss_mailauth_test_sshd = self;
    CHECK(by_name("newuser", &pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS);
    CHECK(pw.pw_uid == ACCT_NOBODY && pw.pw_gid == ACCT_NOBODY);
    CHECK_STR(pw.pw_shell, "/usr/sbin/nologin");
    CHECK_STR(pw.pw_dir, "/nonexistent");
    CHECK(found("carol"));  /* a tombstone's name may come back */
    CHECK(!found("-oops")); /* never for an unsafe name */
    CHECK(!found("a/b"));
    CHECK(!uid_found(ACCT_NOBODY));
    _nss_mailauth_setpwent(0); /* never in enumeration */
    int count = 0;
    while (_nss_mailauth_getpwent_r(&pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS)
        count++;
    _nss_mailauth_endpwent();
    CHECK(count == 3);
    /* an unsafe registry: no first-login entry either */
    write_registry(good, sizeof(good) - 1, 0666);
    CHECK(!found("newuser"));
    nss_mailauth_test_sshd = "/usr/sbin/sshd";
}

/* Many threads look names up while another rewrites the registry by rename (as the writer
 * does), alternating a good file and hostile ones. */
static volatile int stop_flag;

static void *reader(void *arg)
{
    struct passwd pw;
    char buf[512];
    int err;
    long hits = 0;

    (void)arg;
    while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
        if (by_name("alice@example.org", &pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS) {
            if (pw.pw_uid != 70000 || strcmp(pw.pw_name, "alice@example.org") != 0)
                return (void *)-1;
            hits++;
        }
        by_name("bob", &pw, buf, 16, &err);
    }
    return (void *)hits;
}

/* GCC's ASan allocator can deadlock in a child forked while other threads allocate (glibc's
 * malloc cannot: fork takes its locks); the module allocates, so the check runs only in builds
 * with glibc's malloc. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FORK_WITH_THREADS 0
#else
#define FORK_WITH_THREADS 1
#endif

/* A child forked from a threaded process looks up a name and exits: 1 when it answered (found
 * or not, never stuck or crashed). */
static bool lookup_in_child(void)
{
    int status = -1;
    pid_t pid = fork();

    if (pid == 0) {
        struct passwd pw;
        char buf[512];
        int err;
        enum nss_status st = by_name("alice@example.org", &pw, buf, sizeof(buf), &err);
        _exit(st == NSS_STATUS_SUCCESS || st == NSS_STATUS_NOTFOUND || st == NSS_STATUS_UNAVAIL
                  ? 0
                  : 1);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void replace_with(const char *text, size_t len, mode_t mode)
{
    char tmp[300];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        perror("replace_with");
    fchmod(fd, mode);
    close(fd);
    rename(tmp, path);
}

static void test_threads(void)
{
    static const char hostile[] = "alice@example.org:70000:70000:active:/h\x01:/bin/sh:\n"
                                  "alice@example.org:70000:70000:active:/home/a:/bin/sh:\n"
                                  "alice@example.org:70000:70000:act";
    pthread_t t[8];
    long total = 0;
    bool wrong = false;

    put(good);
    stop_flag = 0;
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, reader, NULL);
    for (int i = 0; i < 300; i++) {
        if (i % 50 == 0 && FORK_WITH_THREADS)
            CHECK(lookup_in_child()); /* forked while the threads run: no lock to strand */
        if (i % 3 == 0)
            replace_with(hostile, sizeof(hostile) - 1, 0644);
        else if (i % 3 == 1)
            replace_with(good, sizeof(good) - 1, 0666);
        else
            replace_with(good, sizeof(good) - 1, 0644);
        usleep(200);
    }
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r == (void *)-1)
            wrong = true;
        else
            total += (long)r;
    }
    CHECK(!wrong);
    CHECK(total > 0);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/accounts", dir);
    nss_mailauth_test_path = path;
    test_lookups();
    test_erange();
    test_enumeration();
    test_initgroups();
    test_hostile_files();
    test_hostile_lines();
    test_first_login_entry();
    test_threads();
    unlink(path);
    rmdir(dir);
    return check_summary("test_nss");
}
