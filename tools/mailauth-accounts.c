/* mailauth-accounts: list, show, lock, unlock and remove the accounts pam_mailauth registered,
 * and add or remove "mailauth" in nsswitch.conf (man/mailauth-accounts.8). Arguments and
 * output only: the registry's reading and writing are src/accounts*.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accounts.h"
#include "log.h"
#include "tool_output.h"
#include "util.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define LOCK_WAIT_MS 10000
#define NSSWITCH_MAX (64 * 1024)
#define NSS_WORD "mailauth"

static const char usage_text[] =
    "usage: mailauth-accounts [--registry PATH] list\n"
    "       mailauth-accounts [--registry PATH] show|lock|unlock|remove NAME\n"
    "       mailauth-accounts [--nsswitch PATH] nsswitch enable|disable|status\n";

/* Every line to stderr goes through the tools' one sink (tool_output.c): names and paths come
 * from the command line and the registry, and are escaped, never drawn on the terminal. */
static struct logger tool_log;

static int load(const char *path, char **buf, struct acct_table *t)
{
    size_t len;

    if (acct_file_read(path, geteuid(), buf, &len) != 0) {
        if (errno == ENOENT) {
            *buf = NULL;
            t->entries = NULL;
            t->n = 0;
            return 0;
        }
        log_msg(&tool_log, LOG_ERR, "%s is unsafe or unreadable: %s", path, strerror(errno));
        return -1;
    }
    if (acct_table_parse(*buf, len, t) != 0) {
        free(*buf);
        return -1;
    }
    return 0;
}

static int cmd_list(const char *path)
{
    struct acct_table t;
    char *buf = NULL;

    if (load(path, &buf, &t) != 0)
        return EXIT_FAIL;
    for (size_t i = 0; i < t.n; i++) {
        const struct acct_entry *e = &t.entries[i];
        if (e->state == ACCT_REMOVED)
            continue;
        tool_put_text(stdout, e->name, e->name_len);
        printf(" %u %u %s ", (unsigned)e->uid, (unsigned)e->gid, acct_state_name(e->state));
        tool_put_text(stdout, e->home, e->home_len);
        printf("%s\n", e->usable ? "" : " (duplicate: ignored)");
    }
    acct_table_free(&t);
    free(buf);
    return EXIT_OK;
}

static int cmd_show(const char *path, const char *name)
{
    struct acct_table t;
    const struct acct_entry *e;
    char *buf = NULL;
    int rc = EXIT_FAIL;

    if (load(path, &buf, &t) != 0)
        return EXIT_FAIL;
    e = acct_find_name(&t, name, strlen(name));
    if (e == NULL) {
        log_msg(&tool_log, LOG_ERR, "no account %s", name);
        goto out;
    }
    fputs("name: ", stdout);
    tool_put_text(stdout, e->name, e->name_len);
    printf("\nuid: %u\ngid: %u%s\nstate: %s\nhome: ", (unsigned)e->uid, (unsigned)e->gid,
           e->gid == e->uid ? " (private group)" : "", acct_state_name(e->state));
    tool_put_text(stdout, e->home, e->home_len);
    fputs("\nshell: ", stdout);
    tool_put_text(stdout, e->shell, e->shell_len);
    fputs("\ngroups:", stdout);
    for (size_t i = 0; i < e->n_groups; i++)
        printf(" %u", (unsigned)e->groups[i]);
    printf("\n");
    rc = EXIT_OK;
out:
    acct_table_free(&t);
    free(buf);
    return rc;
}

static int cmd_set(const char *path, const char *name, enum acct_state state)
{
    switch (accounts_set_state(path, name, state, clock_now_ms() + LOCK_WAIT_MS, &tool_log)) {
    case ACCOUNTS_SET_OK:
        return EXIT_OK;
    case ACCOUNTS_SET_NO_SUCH:
        log_msg(&tool_log, LOG_ERR, "no %saccount %s", state == ACCT_REMOVED ? "" : "registered ",
                name);
        return EXIT_FAIL;
    case ACCOUNTS_SET_FAILED:
        break;
    }
    return EXIT_FAIL;
}

/* ---- nsswitch.conf: add or remove the one word, nothing else ---- */

static bool is_db_line(const char *line, size_t len)
{
    static const char *const dbs[] = {"passwd:", "group:"};

    for (size_t i = 0; i < MA_ARRAY_LEN(dbs); i++) {
        size_t n = strlen(dbs[i]);
        if (len >= n && memcmp(line, dbs[i], n) == 0)
            return true;
    }
    return false;
}

/* The offset of " mailauth" as a whole word in the line, or -1. */
static long find_word(const char *line, size_t len)
{
    size_t w = strlen(" " NSS_WORD);

    for (size_t i = 0; i + w <= len; i++) {
        if (memcmp(line + i, " " NSS_WORD, w) == 0 &&
            (i + w == len || line[i + w] == ' ' || line[i + w] == '\t'))
            return (long)i;
    }
    return -1;
}

/* After the last source: before a comment and the blanks ahead of it. */
static size_t insert_point(const char *line, size_t len)
{
    const char *hash = memchr(line, '#', len);
    size_t end = hash != NULL ? (size_t)(hash - line) : len;

    while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    return end;
}

/* Rewrite text into out (cap bytes): enable appends " mailauth" to the passwd and group lines
 * that lack it; disable removes it. Returns the new length, or -1. */
static long rewrite(const char *text, size_t len, bool enable, char *out, size_t cap, int *changed)
{
    size_t o = 0;
    size_t pos = 0;

    *changed = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        size_t line_len = end - pos;
        long at = is_db_line(text + pos, line_len) ? find_word(text + pos, line_len) : -2;
        size_t w = strlen(" " NSS_WORD);

        if (o + line_len + w + 1 > cap)
            return -1;
        if (enable && at == -1) {
            size_t ins = insert_point(text + pos, line_len);
            memcpy(out + o, text + pos, ins);
            memcpy(out + o + ins, " " NSS_WORD, w);
            memcpy(out + o + ins + w, text + pos + ins, line_len - ins);
            o += line_len + w;
            (*changed)++;
        } else if (!enable && at >= 0) {
            memcpy(out + o, text + pos, (size_t)at);
            memcpy(out + o + at, text + pos + at + w, line_len - (size_t)at - w);
            o += line_len - w;
            (*changed)++;
        } else {
            memcpy(out + o, text + pos, line_len);
            o += line_len;
        }
        if (nl != NULL)
            out[o++] = '\n';
        pos = end + 1;
    }
    return (long)o;
}

static int replace_file(const char *path, const char *content, size_t len, const struct stat *st)
{
    char tmp[4096];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.mailauth-tmp", path);
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (write(fd, content, len) != (ssize_t)len || fchown(fd, st->st_uid, st->st_gid) != 0 ||
        fchmod(fd, st->st_mode & 07777) != 0 || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int cmd_nsswitch(const char *path, const char *what)
{
    static char in[NSSWITCH_MAX + 1];
    static char out[NSSWITCH_MAX + 2 * 64];
    struct stat st;
    ssize_t n;
    long m;
    int changed;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    bool status = strcmp(what, "status") == 0;

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_msg(&tool_log, LOG_ERR, "cannot read %s", path);
        if (fd >= 0)
            close(fd);
        return EXIT_FAIL;
    }
    n = read(fd, in, sizeof(in));
    close(fd);
    if (n < 0 || n > NSSWITCH_MAX) {
        log_msg(&tool_log, LOG_ERR, "%s is unreadable or too big", path);
        return EXIT_FAIL;
    }
    m = rewrite(in, (size_t)n, status || strcmp(what, "enable") == 0, out, sizeof(out), &changed);
    if (m < 0)
        return EXIT_FAIL;
    if (status) {
        printf("%s\n", changed == 0 ? "enabled" : "disabled");
        return EXIT_OK;
    }
    if (changed > 0 && replace_file(path, out, (size_t)m, &st) != 0) {
        log_msg(&tool_log, LOG_ERR, "cannot replace %s: %s", path, strerror(errno));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int run(const char *registry, const char *nsswitch, int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "list") == 0)
        return cmd_list(registry);
    if (argc == 2 && strcmp(argv[0], "show") == 0)
        return cmd_show(registry, argv[1]);
    if (argc == 2 && strcmp(argv[0], "lock") == 0)
        return cmd_set(registry, argv[1], ACCT_LOCKED);
    if (argc == 2 && strcmp(argv[0], "unlock") == 0)
        return cmd_set(registry, argv[1], ACCT_ACTIVE);
    if (argc == 2 && strcmp(argv[0], "remove") == 0)
        return cmd_set(registry, argv[1], ACCT_REMOVED);
    if (argc == 2 && strcmp(argv[0], "nsswitch") == 0 &&
        (strcmp(argv[1], "enable") == 0 || strcmp(argv[1], "disable") == 0 ||
         strcmp(argv[1], "status") == 0))
        return cmd_nsswitch(nsswitch, argv[1]);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    const char *registry = ACCT_REGISTRY_PATH;
    const char *nsswitch = "/etc/nsswitch.conf";
    int i = 1;

    tool_log = tool_stderr_logger("mailauth-accounts", false);
    while (i + 1 < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--registry") == 0)
            registry = argv[i + 1];
        else if (strcmp(argv[i], "--nsswitch") == 0)
            nsswitch = argv[i + 1];
        else
            break;
        i += 2;
    }
    if (i < argc && argv[i][0] == '-') {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    return run(registry, nsswitch, argc - i, argv + i);
}
