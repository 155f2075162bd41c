/* The account registry's parser and safe reader: libc only (it is linked into libnss_mailauth,
 * which runs inside every process of the host). See accounts_parse.h. */
#include "accounts_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_FIELDS 7

static bool is_name_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '+' || c == '-';
}

bool acct_name_is_safe(const char *name, size_t len)
{
    bool all_digits = true;
    unsigned char first;

    if (name == NULL || len == 0 || len > ACCT_MAX_NAME)
        return false;
    first = (unsigned char)name[0];
    if (!(first == '_' || (first >= '0' && first <= '9') || (first >= 'a' && first <= 'z') ||
          (first >= 'A' && first <= 'Z')))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_name_byte(c))
            return false;
        if (c < '0' || c > '9')
            all_digits = false;
    }
    return !all_digits;
}

static bool has_component(const char *p, size_t len, const char *comp)
{
    size_t clen = strlen(comp);

    for (size_t i = 0; i + clen <= len; i++) {
        if (memcmp(p + i, comp, clen) == 0 && (i + clen == len || p[i + clen] == '/'))
            return true;
    }
    return false;
}

bool acct_path_is_safe(const char *p, size_t len)
{
    if (p == NULL || len < 2 || len > ACCT_MAX_PATH || p[0] != '/' || p[len - 1] == '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == ':' || c == '\\')
            return false;
        if (c == '/' && i + 1 < len && p[i + 1] == '/')
            return false;
    }
    return !has_component(p, len, "/.") && !has_component(p, len, "/..");
}

/* Decimal without sign, leading zeros or overflow, within [min, ACCT_ID_MAX], never ACCT_NOBODY
 * or 65535. */
static int parse_number(const char *s, size_t len, uint32_t min, uint32_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 10 || (s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > ACCT_ID_MAX || v == ACCT_NOBODY || v == ACCT_NOBODY + 1)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* A uid, or a private group's gid: never the system's. */
static int parse_id(const char *s, size_t len, uint32_t *out)
{
    return parse_number(s, len, ACCT_ID_MIN, out);
}

/* An existing local group (a domain's primary group, an extra group): any but root's. */
static int parse_local_gid(const char *s, size_t len, uint32_t *out)
{
    return parse_number(s, len, 1, out);
}

static int parse_state(const char *s, size_t len, enum acct_state *out)
{
    static const enum acct_state states[] = {ACCT_ACTIVE, ACCT_LOCKED, ACCT_REMOVED};

    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        const char *n = acct_state_name(states[i]);
        if (strlen(n) == len && memcmp(n, s, len) == 0) {
            *out = states[i];
            return 0;
        }
    }
    return -1;
}

static int parse_groups(const char *s, size_t len, struct acct_entry *e)
{
    size_t start = 0;

    e->n_groups = 0;
    if (len == 0)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        if (e->n_groups == ACCT_MAX_GROUPS ||
            parse_local_gid(s + start, i - start, &e->groups[e->n_groups]) != 0)
            return -1;
        e->n_groups++;
        start = i + 1;
    }
    return 0;
}

/* Split line at ':' into exactly N_FIELDS fields. */
static int split_fields(const char *line, size_t len, const char *f[N_FIELDS], size_t fl[N_FIELDS])
{
    size_t n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] != ':')
            continue;
        if (n == N_FIELDS)
            return -1;
        f[n] = line + start;
        fl[n] = i - start;
        n++;
        start = i + 1;
    }
    return n == N_FIELDS ? 0 : -1;
}

int acct_parse_line(const char *line, size_t len, struct acct_entry *e)
{
    const char *f[N_FIELDS];
    size_t fl[N_FIELDS];

    memset(e, 0, sizeof(*e));
    if (len == 0 || len > ACCT_MAX_LINE || line[0] == '#' || memchr(line, '\0', len) != NULL)
        return -1;
    if (split_fields(line, len, f, fl) != 0)
        return -1;
    if (!acct_name_is_safe(f[0], fl[0]) || parse_id(f[1], fl[1], &e->uid) != 0 ||
        parse_local_gid(f[2], fl[2], &e->gid) != 0 || parse_state(f[3], fl[3], &e->state) != 0 ||
        !acct_path_is_safe(f[4], fl[4]) || !acct_path_is_safe(f[5], fl[5]) ||
        parse_groups(f[6], fl[6], e) != 0)
        return -1;
    e->name = f[0];
    e->name_len = fl[0];
    e->home = f[4];
    e->home_len = fl[4];
    e->shell = f[5];
    e->shell_len = fl[5];
    e->usable = true;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    const struct acct_entry *x = *(const struct acct_entry *const *)a;
    const struct acct_entry *y = *(const struct acct_entry *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);

    if (c != 0)
        return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int cmp_uid(const void *a, const void *b)
{
    const struct acct_entry *x = *(const struct acct_entry *const *)a;
    const struct acct_entry *y = *(const struct acct_entry *const *)b;

    return (x->uid > y->uid) - (x->uid < y->uid);
}

/* Sort pointers with cmp; every run of equal neighbours is marked unusable. */
static void mark_duplicates(struct acct_entry **idx, size_t n,
                            int (*cmp)(const void *, const void *))
{
    qsort(idx, n, sizeof(*idx), cmp);
    for (size_t i = 1; i < n; i++) {
        if (cmp(&idx[i - 1], &idx[i]) == 0) {
            idx[i - 1]->usable = false;
            idx[i]->usable = false;
        }
    }
}

/* A shared primary gid (gid != uid) must name a local group, never another account's private
 * group. idx is sorted by uid. */
static void mark_foreign_private_gids(struct acct_table *t, struct acct_entry **idx)
{
    for (size_t i = 0; i < t->n; i++) {
        struct acct_entry key = {.uid = t->entries[i].gid};
        const struct acct_entry *k = &key;
        if (t->entries[i].gid != t->entries[i].uid &&
            bsearch(&k, idx, t->n, sizeof(*idx), cmp_uid) != NULL)
            t->entries[i].usable = false;
    }
}

static size_t count_lines(const char *buf, size_t len)
{
    size_t n = 0;

    for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++)
        n++;
    return n;
}

int acct_table_parse(const char *buf, size_t len, struct acct_table *t)
{
    struct acct_entry **idx = NULL;
    size_t cap = count_lines(buf, len);
    size_t pos = 0;

    t->entries = NULL;
    t->n = 0;
    if (cap == 0)
        return 0;
    t->entries = calloc(cap, sizeof(*t->entries));
    if (t->entries == NULL)
        return -1;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL)
            break; /* an unterminated last line: a write cut short, never trusted */
        if (acct_parse_line(buf + pos, (size_t)(nl - (buf + pos)), &t->entries[t->n]) == 0)
            t->n++;
        pos = (size_t)(nl - buf) + 1;
    }
    if (t->n < 2)
        return 0;
    idx = malloc(t->n * sizeof(*idx));
    if (idx == NULL) {
        acct_table_free(t);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++)
        idx[i] = &t->entries[i];
    mark_duplicates(idx, t->n, cmp_name);
    mark_duplicates(idx, t->n, cmp_uid);
    mark_foreign_private_gids(t, idx);
    free(idx);
    return 0;
}

void acct_table_free(struct acct_table *t)
{
    free(t->entries);
    t->entries = NULL;
    t->n = 0;
}

const struct acct_entry *acct_find_name(const struct acct_table *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct acct_entry *e = &t->entries[i];
        if (e->usable && e->name_len == len && memcmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

const struct acct_entry *acct_find_uid(const struct acct_table *t, uint32_t uid)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->entries[i].usable && t->entries[i].uid == uid)
            return &t->entries[i];
    }
    return NULL;
}

uint32_t acct_max_uid(const struct acct_table *t)
{
    uint32_t max = 0;

    for (size_t i = 0; i < t->n; i++) {
        if (t->entries[i].uid > max)
            max = t->entries[i].uid;
        if (t->entries[i].gid > max && t->entries[i].gid == t->entries[i].uid)
            max = t->entries[i].gid;
    }
    return max;
}

static int read_all(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int acct_file_read(const char *path, uid_t owner_ok, char **buf, size_t *len)
{
    struct stat st;
    char *data = NULL;
    int err = EPERM;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    *buf = NULL;
    *len = 0;
    if (fd < 0)
        return -1; /* errno from open: ENOENT, ELOOP for a link, ... */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != owner_ok) ||
        (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        goto out;
    err = EFBIG;
    if (st.st_size < 0 || st.st_size > ACCT_MAX_FILE)
        goto out;
    err = ENOMEM;
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL)
        goto out;
    err = EIO;
    if (read_all(fd, data, (size_t)st.st_size) != 0)
        goto out;
    data[st.st_size] = '\0';
    *buf = data;
    *len = (size_t)st.st_size;
    data = NULL;
    err = 0;
out:
    free(data);
    close(fd);
    if (err != 0)
        errno = err;
    return err == 0 ? 0 : -1;
}

const char *acct_state_name(enum acct_state s)
{
    switch (s) {
    case ACCT_ACTIVE:
        return "active";
    case ACCT_LOCKED:
        return "locked";
    case ACCT_REMOVED:
        return "removed";
    }
    return "?";
}

int acct_format_line(const struct acct_entry *e, char *out, size_t cap)
{
    char groups[ACCT_MAX_GROUPS * 11 + 1] = "";
    size_t gl = 0;
    int n;

    for (size_t i = 0; i < e->n_groups && i < ACCT_MAX_GROUPS; i++) {
        n = snprintf(groups + gl, sizeof(groups) - gl, "%s%u", i > 0 ? "," : "",
                     (unsigned)e->groups[i]);
        if (n < 0 || (size_t)n >= sizeof(groups) - gl)
            return -1;
        gl += (size_t)n;
    }
    n = snprintf(out, cap, "%.*s:%u:%u:%s:%.*s:%.*s:%s\n", (int)e->name_len, e->name,
                 (unsigned)e->uid, (unsigned)e->gid, acct_state_name(e->state), (int)e->home_len,
                 e->home, (int)e->shell_len, e->shell, groups);
    if (n < 0 || (size_t)n >= cap || (size_t)n > ACCT_MAX_LINE + 1)
        return -1;
    return n;
}
