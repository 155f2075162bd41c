/* The credential cache's store (see cache.h for the layout). Files are reached only through the
 * per-euid directory's fd with O_NOFOLLOW, checked after opening (regular, owned by the euid, not
 * hard-linked, no group/other access, bounded size), written to a temp file, fsync'ed and renamed.
 * Nothing takes a lock (a rename is atomic, so a record is seen whole or not at all): the record
 * is only ever replaced whole by a store or removed, and the failure counter lives in slot files
 * beside it (see "operations" below), so no update can bring back a record that a concurrent
 * store replaced, and no login ever waits for another. */
#include "cache.h"

#include <assert.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "digest.h"

#define RECORD_MAGIC "pam_mailauth cache 1\n"
#define YESCRYPT_PREFIX "$y$"
/* "<name>.f<16 hex of the record's hash>.<k>": failure slot k of one record (see cache.h) */
#define SLOT_NAME_MAX CACHE_SLOT_NAME_MAX
/* A store removes the slots of the record it replaces up to this many missing names in a row
 * (slots are taken lowest first; a matching password gives its slot back, leaving a hole). */
#define SLOT_CLEANUP_GAP 8

static_assert(CACHE_MAX_PASSWORD < CRYPT_MAX_PASSPHRASE_SIZE, "phrase buffer too small");
static_assert(CACHE_KEY_LEN == SHA256_HEX_LEN, "a key is a SHA-256 in hex");

struct cache {
    int dirfd;
    uid_t euid;
    char path[1100]; /* DIR/<euid>, for log lines */
    char name[CACHE_KEY_LEN + 1];
    char user[CACHE_MAX_USER + 1];
    char config_id[CACHE_KEY_LEN + 1];
    unsigned hash_cost;
    unsigned max_failures;
    const struct logger *log;
    /* The last comparison of this login's password: the record hash it was compared with and the
     * answer, so that a second question about the same record costs no second yescrypt. */
    char compared_hash[CACHE_MAX_HASH + 1];
    bool compared_match;
    bool failure_counted; /* at most one counted mismatch per login */
};

/* Everything the password touches on its way through libxcrypt, in one heap block that is wiped
 * before it is freed. */
struct hash_work {
    struct crypt_data data;
    char phrase[CRYPT_MAX_PASSPHRASE_SIZE];
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
};

MA_PRINTF(3, 4)
static void note(const struct cache *c, int priority, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_msg(c->log, priority, "cache: %s: %s", c->path, msg);
}

const char *cache_verdict_name(enum cache_verdict v)
{
    switch (v) {
    case CACHE_MATCH:
        return "match";
    case CACHE_MISMATCH:
        return "mismatch";
    case CACHE_NO_ENTRY:
        return "no entry";
    case CACHE_TOO_OLD:
        return "too old";
    case CACHE_LOCKED:
        return "locked";
    case CACHE_UNUSABLE:
        return "unusable";
    }
    return "?";
}

/* ---- the record format ----
 * pam_mailauth cache 1
 * user <the name the servers see>
 * config <hex identity of the config>
 * hash <$y$... yescrypt string>
 * confirmed <unix seconds>
 * failures <count>
 * Exactly these lines in this order, each ending in LF, nothing after. */

int cache_record_format(const struct cache_record *r, char *buf, size_t cap)
{
    int n = snprintf(
        buf, cap, RECORD_MAGIC "user %s\nconfig %s\nhash %s\nconfirmed %" PRId64 "\nfailures %u\n",
        r->user, r->config_id, r->hash, r->confirmed, r->failures);

    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* The next line, "key value\n", with value copied to out. 0, or -1 with err set. */
static int take_line(const char **p, const char *end, const char *key, char *out, size_t cap,
                     struct errbuf *err)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t key_len = strlen(key);
    size_t line_len, value_len;

    if (nl == NULL) {
        errbuf_set(err, "truncated before \"%s\"", key);
        return -1;
    }
    line_len = (size_t)(nl - *p);
    if (line_len <= key_len + 1 || memcmp(*p, key, key_len) != 0 || (*p)[key_len] != ' ') {
        errbuf_set(err, "expected a \"%s\" line", key);
        return -1;
    }
    value_len = line_len - key_len - 1;
    if (value_len >= cap) {
        errbuf_set(err, "\"%s\" is too long", key);
        return -1;
    }
    memcpy(out, *p + key_len + 1, value_len);
    out[value_len] = '\0';
    for (size_t i = 0; i < value_len; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch < 0x20 || ch == 0x7f) {
            errbuf_set(err, "\"%s\" holds a control byte", key);
            return -1;
        }
    }
    *p = nl + 1;
    return 0;
}

/* A decimal number without sign, spaces or leading zeros (except "0"), at most max. */
static bool parse_number(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > (max - (uint64_t)(*p - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

static bool is_hex_id(const char *s)
{
    if (strlen(s) != CACHE_KEY_LEN)
        return false;
    return strspn(s, "0123456789abcdef") == CACHE_KEY_LEN;
}

/* A yescrypt string and nothing else: never a fast or unsalted hash. */
static bool is_yescrypt(const char *s)
{
    static const char alphabet[] =
        "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz$";

    return strncmp(s, YESCRYPT_PREFIX, sizeof(YESCRYPT_PREFIX) - 1) == 0 &&
           strlen(s) > sizeof(YESCRYPT_PREFIX) + 8 && strspn(s, alphabet) == strlen(s);
}

int cache_record_parse(const char *buf, size_t len, struct cache_record *out, struct errbuf *err)
{
    const char *p = buf, *end = buf + len;
    char confirmed[24], failures[24];
    uint64_t v;

    memset(out, 0, sizeof(*out));
    if (len < sizeof(RECORD_MAGIC) - 1 ||
        memcmp(buf, RECORD_MAGIC, sizeof(RECORD_MAGIC) - 1) != 0) {
        errbuf_set(err, "not a pam_mailauth cache record (version 1)");
        return -1;
    }
    p += sizeof(RECORD_MAGIC) - 1;
    if (take_line(&p, end, "user", out->user, sizeof(out->user), err) != 0 ||
        take_line(&p, end, "config", out->config_id, sizeof(out->config_id), err) != 0 ||
        take_line(&p, end, "hash", out->hash, sizeof(out->hash), err) != 0 ||
        take_line(&p, end, "confirmed", confirmed, sizeof(confirmed), err) != 0 ||
        take_line(&p, end, "failures", failures, sizeof(failures), err) != 0)
        return -1;
    if (p != end) {
        errbuf_set(err, "data after the last line");
        return -1;
    }
    if (!is_hex_id(out->config_id) || !is_yescrypt(out->hash)) {
        errbuf_set(err, "malformed config identity or hash");
        return -1;
    }
    if (!parse_number(confirmed, INT64_MAX, &v)) {
        errbuf_set(err, "malformed time");
        return -1;
    }
    out->confirmed = (int64_t)v;
    if (!parse_number(failures, CACHE_MAX_FAILURES, &v)) {
        errbuf_set(err, "malformed failure counter");
        return -1;
    }
    out->failures = (unsigned)v;
    return 0;
}

/* ---- hashing ---- */

static struct hash_work *work_new(const char *password, size_t len)
{
    struct hash_work *w;

    if (len > CACHE_MAX_PASSWORD)
        return NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    memcpy(w->phrase, password, len);
    w->phrase[len] = '\0';
    return w;
}

static void work_free(struct hash_work *w)
{
    if (w == NULL)
        return;
    secret_wipe(w, sizeof(*w));
    free(w);
}

/* yescrypt of the phrase with setting (a fresh one, or a stored hash whose salt and cost are
 * reused). The result lives in w; NULL on failure. */
static const char *work_hash(struct hash_work *w, const char *setting)
{
    const char *h = crypt_rn(w->phrase, setting, &w->data, (int)sizeof(w->data));

    return h != NULL && is_yescrypt(h) ? h : NULL;
}

static enum cache_verdict compare(struct cache *c, const struct cache_record *rec,
                                  const char *password, size_t len)
{
    struct hash_work *w;
    const char *h;
    size_t n = strlen(rec->hash);
    bool match;

    if (c->compared_hash[0] != '\0' && strcmp(c->compared_hash, rec->hash) == 0)
        return c->compared_match ? CACHE_MATCH : CACHE_MISMATCH;
    w = work_new(password, len);
    if (w == NULL) {
        note(c, LOG_ERR, "out of memory or password too long; cache not used");
        return CACHE_UNUSABLE;
    }
    h = work_hash(w, rec->hash);
    if (h == NULL) {
        note(c, LOG_WARNING, "%s: yescrypt refused the stored hash; record ignored", c->name);
        work_free(w);
        return CACHE_UNUSABLE;
    }
    /* The lengths are public (they follow from the parameters); the bytes are compared in
     * constant time. */
    match = strlen(h) == n && CRYPTO_memcmp(h, rec->hash, n) == 0;
    work_free(w);
    snprintf(c->compared_hash, sizeof(c->compared_hash), "%s", rec->hash);
    c->compared_match = match;
    return match ? CACHE_MATCH : CACHE_MISMATCH;
}

/* A fresh salt and the configured cost. 0, or -1 (logged). */
static int make_hash(struct cache *c, const char *password, size_t len, char *out, size_t cap)
{
    struct hash_work *w = work_new(password, len);
    const char *h = NULL;
    char ebuf[128];
    int rc = -1;

    if (w == NULL) {
        note(c, LOG_ERR, "out of memory or password too long; not cached");
        return -1;
    }
    if (crypt_gensalt_rn(YESCRYPT_PREFIX, c->hash_cost, NULL, 0, w->setting,
                         (int)sizeof(w->setting)) == NULL) {
        note(c, LOG_ERR, "cannot make a yescrypt salt: %s", errno_text(errno, ebuf, sizeof(ebuf)));
        goto out;
    }
    h = work_hash(w, w->setting);
    if (h == NULL || strlen(h) >= cap) {
        note(c, LOG_ERR, "yescrypt failed; not cached");
        goto out;
    }
    memcpy(out, h, strlen(h) + 1);
    rc = 0;
out:
    work_free(w);
    return rc;
}

/* ---- files ---- */

/* A file of the store, opened without following links: regular, owned by the euid, not
 * hard-linked, no access for group or others. 0, or -1 (logged). */
static int check_file(const struct cache *c, int fd, const char *name, struct stat *st)
{
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        note(c, LOG_WARNING, "%s: not a regular file; ignored", name);
        return -1;
    }
    if (st->st_uid != c->euid) {
        note(c, LOG_WARNING, "%s: owned by uid %u, not %u; ignored", name, (unsigned)st->st_uid,
             (unsigned)c->euid);
        return -1;
    }
    /* 0 links is a record replaced (renamed over) after we opened it: still whole. */
    if (st->st_nlink > 1) {
        note(c, LOG_WARNING, "%s: has %lu links; ignored", name, (unsigned long)st->st_nlink);
        return -1;
    }
    if ((st->st_mode & 077) != 0) {
        note(c, LOG_WARNING, "%s: accessible by group or others (mode %03o); ignored", name,
             (unsigned)(st->st_mode & 0777));
        return -1;
    }
    return 0;
}

static int open_failed(const struct cache *c, const char *name)
{
    char ebuf[128];
    int err = errno;

    if (err == ELOOP)
        note(c, LOG_WARNING, "%s: is a symbolic link; ignored", name);
    else
        note(c, LOG_WARNING, "%s: cannot open: %s", name, errno_text(err, ebuf, sizeof(ebuf)));
    return -1;
}

/* The user's record, checked. 0 with *rec filled, 1 when there is none, -1 when unusable
 * (logged). */
static int read_record(struct cache *c, struct cache_record *rec, int64_t now)
{
    char buf[CACHE_MAX_RECORD + 1];
    struct errbuf err = {{0}};
    struct stat st;
    size_t len = 0;
    int rc = -1;
    int fd = openat(c->dirfd, c->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0)
        return errno == ENOENT ? 1 : open_failed(c, c->name);
    if (check_file(c, fd, c->name, &st) != 0)
        goto out;
    while (len < sizeof(buf)) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            note(c, LOG_WARNING, "%s: read failed; ignored", c->name);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CACHE_MAX_RECORD || st.st_size > CACHE_MAX_RECORD) {
        note(c, LOG_WARNING, "%s: larger than %d bytes; ignored", c->name, CACHE_MAX_RECORD);
        goto out;
    }
    if (cache_record_parse(buf, len, rec, &err) != 0) {
        note(c, LOG_WARNING, "%s: corrupt record (%s); ignored", c->name, err.text);
        goto out;
    }
    if (strcmp(rec->user, c->user) != 0 || strcmp(rec->config_id, c->config_id) != 0) {
        note(c, LOG_WARNING, "%s: the record belongs to another user or config; ignored", c->name);
        goto out;
    }
    if (rec->confirmed > now) {
        note(c, LOG_WARNING, "%s: dated %" PRId64 " s in the future; ignored", c->name,
             rec->confirmed - now);
        goto out;
    }
    rc = 0;
out:
    secret_wipe(buf, sizeof(buf));
    if (rc != 0)
        secret_wipe(rec, sizeof(*rec));
    close(fd);
    return rc;
}

/* Replace the record: temp file, fsync, rename. The caller holds the lock. 0, or -1 (logged). */
static int write_record(struct cache *c, const struct cache_record *rec)
{
    char text[CACHE_MAX_RECORD];
    char tmp[CACHE_KEY_LEN + 32];
    unsigned char rnd[8];
    char ebuf[128];
    int len = cache_record_format(rec, text, sizeof(text));
    int fd = -1, rc = -1;

    if (len < 0 || getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        note(c, LOG_ERR, "%s: cannot prepare the record; not cached", c->name);
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "tmp.%s.%02x%02x%02x%02x%02x%02x%02x%02x", c->name, rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                0600);
    /* The caller's umask must not decide the mode (0000 under umask 0777: unreadable later). */
    if (fd >= 0 && fchmod(fd, 0600) != 0) {
        note(c, LOG_ERR, "%s: cannot set mode 0600: %s; not cached", tmp,
             errno_text(errno, ebuf, sizeof(ebuf)));
        goto out;
    }
    if (fd < 0) {
        note(c, LOG_ERR, "%s: cannot create: %s; not cached", tmp,
             errno_text(errno, ebuf, sizeof(ebuf)));
        goto out;
    }
    if (fd_write_all(fd, text, (size_t)len) != 0 || fsync(fd) != 0) {
        note(c, LOG_ERR, "%s: cannot write: %s; not cached", tmp,
             errno_text(errno, ebuf, sizeof(ebuf)));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        note(c, LOG_ERR, "%s: cannot write: %s; not cached", tmp,
             errno_text(errno, ebuf, sizeof(ebuf)));
        goto out;
    }
    fd = -1;
    if (renameat(c->dirfd, tmp, c->dirfd, c->name) != 0) {
        note(c, LOG_ERR, "%s: cannot rename into place: %s; not cached", tmp,
             errno_text(errno, ebuf, sizeof(ebuf)));
        goto out;
    }
    tmp[0] = '\0';
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp[0] != '\0')
        unlinkat(c->dirfd, tmp, 0);
    secret_wipe(text, sizeof(text));
    return rc;
}

/* ---- the directory ---- */

static int key_name(const char *config_id, const char *user, char out[CACHE_KEY_LEN + 1])
{
    static const char tag[] = "pam_mailauth cache key v1";
    const struct digest_part parts[] = {
        {tag, sizeof(tag)},
        {config_id, strlen(config_id) + 1},
        {user, strlen(user)},
    };

    return sha256_hex(parts, sizeof(parts) / sizeof(parts[0]), out);
}

/* DIR: created 0711 when missing (the parent must exist); owned by root or the euid; not writable
 * by group or others unless sticky (like /tmp: then each uid can create its own subdirectory and
 * nobody can rename another's). Opened O_PATH: only the search permission that 0711 gives other
 * uids is needed to reach DIR/<euid> (O_RDONLY would need read permission, and a www-data
 * worker could never use the directory that root's first login created). fd, or -1 (logged). */
static int open_base(const struct cache *c, const char *dir)
{
    struct stat st;
    char ebuf[128];
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

    /* Created here: its mode is 0711 whatever the caller's umask (mkdir applies it; under umask
     * 0777 the directory would be 0000 and closed to every other uid for good). The parent is
     * the administrator's: chmod by name right after mkdir is safe there. */
    if (fd < 0 && errno == ENOENT && mkdir(dir, 0711) == 0 && chmod(dir, 0711) != 0)
        log_msg(c->log, LOG_WARNING, "cache: %s: cannot set mode 0711: %s", dir,
                errno_text(errno, ebuf, sizeof(ebuf)));
    if (fd < 0)
        fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        log_msg(c->log, LOG_ERR, "cache: %s: cannot open or create the directory: %s; cache off",
                dir, errno_text(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    if (fstat(fd, &st) != 0 || (st.st_uid != 0 && st.st_uid != c->euid) ||
        ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0)) {
        log_msg(c->log, LOG_ERR,
                "cache: %s: must be owned by root or uid %u and not writable by group or "
                "others (unless sticky); cache off",
                dir, (unsigned)c->euid);
        close(fd);
        return -1;
    }
    return fd;
}

/* DIR/<euid>: created 0700 when missing; must be a directory (not a link) owned by the euid and
 * not writable by group or others. fd, or -1 (logged). */
static int open_euid_dir(const struct cache *c, int base)
{
    char name[24];
    struct stat st;
    char ebuf[128];
    int fd;

    snprintf(name, sizeof(name), "%u", (unsigned)c->euid);
    fd = openat(base, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* Created here: exactly 0700 whatever the umask (0000 would not even open for its owner).
     * Nobody else can replace it in a base that is not writable by others, or sticky. */
    if (fd < 0 && errno == ENOENT && mkdirat(base, name, 0700) == 0 &&
        fchmodat(base, name, 0700, 0) != 0)
        log_msg(c->log, LOG_WARNING, "cache: %s: cannot set mode 0700: %s", c->path,
                errno_text(errno, ebuf, sizeof(ebuf)));
    if (fd < 0)
        fd = openat(base, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        log_msg(c->log, LOG_ERR, "cache: %s: cannot open or create the directory: %s; cache off",
                c->path, errno_text(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    if (fstat(fd, &st) != 0 || st.st_uid != c->euid || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        log_msg(c->log, LOG_ERR,
                "cache: %s: must be a directory owned by uid %u and not writable by group or "
                "others; cache off",
                c->path, (unsigned)c->euid);
        close(fd);
        return -1;
    }
    return fd;
}

int cache_open(const struct cache_params *p, const char *user, const struct logger *log,
               struct cache **out)
{
    struct cache *c = calloc(1, sizeof(*c));
    int base;

    *out = NULL;
    if (c == NULL) {
        log_msg(log, LOG_ERR, "cache: out of memory; cache off");
        return -1;
    }
    c->dirfd = -1;
    c->log = log;
    c->euid = geteuid();
    c->hash_cost = p->hash_cost;
    c->max_failures = p->max_failures;
    snprintf(c->path, sizeof(c->path), "%s/%u", p->dir, (unsigned)c->euid);
    if (strlen(user) > CACHE_MAX_USER || !is_hex_id(p->config_id) ||
        key_name(p->config_id, user, c->name) != 0) {
        log_msg(log, LOG_ERR, "cache: cannot name the record; cache off");
        goto fail;
    }
    snprintf(c->user, sizeof(c->user), "%s", user);
    snprintf(c->config_id, sizeof(c->config_id), "%s", p->config_id);
    base = open_base(c, p->dir);
    if (base < 0)
        goto fail;
    c->dirfd = open_euid_dir(c, base);
    close(base);
    if (c->dirfd < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    cache_close(c);
    return -1;
}

void cache_close(struct cache *c)
{
    if (c == NULL)
        return;
    if (c->dirfd >= 0)
        close(c->dirfd);
    secret_wipe(c, sizeof(*c));
    free(c);
}

/* ---- operations ----
 * No lock anywhere: nothing a caller can stall (stop, starve) holds up another login. A record is
 * replaced whole by rename. The failure counter is a set of slot files, one per compared wrong
 * password, taken with O_CREAT|O_EXCL (atomic): slot k of a record exists once k+1 passwords
 * were counted against it. The slots belong to the record's hash (a fresh salt at every store),
 * so a store starts the count afresh without touching them. A strict check takes a slot before
 * it compares and gives it back on a match: however many logins race, at most max_failures
 * wrong passwords are ever compared with one record. A login stopped between taking and giving
 * back a slot costs one slot, as one wrong password would; it never delays another login. */

void cache_slot_name(const char *key, const struct cache_record *rec, unsigned k,
                     char out[CACHE_SLOT_NAME_MAX])
{
    const struct digest_part part = {rec->hash, strlen(rec->hash)};
    char id[SHA256_HEX_LEN + 1];

    if (sha256_hex(&part, 1, id) != 0)
        memset(id, '0', 16);
    snprintf(out, CACHE_SLOT_NAME_MAX, "%s.f%.16s.%u", key, id, k);
}

bool cache_is_slot_name(const char *name)
{
    size_t n = strlen(name), digits;

    if (n < CACHE_KEY_LEN + 20 || strspn(name, "0123456789abcdef") != CACHE_KEY_LEN ||
        strncmp(name + CACHE_KEY_LEN, ".f", 2) != 0 ||
        strspn(name + CACHE_KEY_LEN + 2, "0123456789abcdef") != 16 ||
        name[CACHE_KEY_LEN + 18] != '.')
        return false;
    digits = strspn(name + CACHE_KEY_LEN + 19, "0123456789");
    return digits > 0 && digits <= 7 && CACHE_KEY_LEN + 19 + digits == n;
}

static void slot_name(const struct cache *c, const struct cache_record *rec, unsigned k,
                      char out[SLOT_NAME_MAX])
{
    cache_slot_name(c->name, rec, k, out);
}

/* The failures counted against rec: its own counter (records written before slots existed)
 * and the slots taken after it, up to the first free one. */
static unsigned count_failures(const struct cache *c, const struct cache_record *rec)
{
    char name[SLOT_NAME_MAX];
    struct stat st;
    unsigned k = rec->failures;

    while (k < c->max_failures) {
        slot_name(c, rec, k, name);
        if (fstatat(c->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            break;
        k++;
    }
    return k;
}

/* Take the lowest free slot of rec. Its index, or -1 when every one is taken (locked), or -2
 * when the store is unusable (logged). */
static long take_slot(struct cache *c, const struct cache_record *rec)
{
    char name[SLOT_NAME_MAX], ebuf[128];

    for (unsigned k = rec->failures; k < c->max_failures; k++) {
        int fd;

        slot_name(c, rec, k, name);
        fd = openat(c->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                    0600);
        if (fd >= 0) {
            fchmod(fd, 0600); /* whatever the umask; empty, only its name counts */
            close(fd);
            return (long)k;
        }
        if (errno != EEXIST) {
            note(c, LOG_WARNING, "%s: cannot count a failure: %s", name,
                 errno_text(errno, ebuf, sizeof(ebuf)));
            return -2;
        }
    }
    return -1;
}

static void give_back_slot(struct cache *c, const struct cache_record *rec, long k)
{
    char name[SLOT_NAME_MAX];

    slot_name(c, rec, (unsigned)k, name);
    unlinkat(c->dirfd, name, 0);
}

/* Remove the slots of a record that is gone or replaced (best effort: leftovers count for no
 * record). */
static void drop_slots(struct cache *c, const struct cache_record *rec)
{
    char name[SLOT_NAME_MAX];
    unsigned missing = 0;

    for (unsigned k = 0; k < c->max_failures && missing < SLOT_CLEANUP_GAP; k++) {
        slot_name(c, rec, k, name);
        missing = unlinkat(c->dirfd, name, 0) == 0 ? 0 : missing + 1;
    }
}

/* Read, judge and compare. strict: a slot is taken before the comparison (the cap holds however
 * many logins race); otherwise one is taken after a mismatch. */
static void check_record(struct cache *c, const char *password, size_t len, long max_age_s,
                         bool strict, struct cache_lookup *out)
{
    struct cache_record rec;
    int64_t now = (int64_t)time(NULL);
    int r = read_record(c, &rec, now);
    long slot = -1;

    *out = (struct cache_lookup){.verdict = r > 0 ? CACHE_NO_ENTRY : CACHE_UNUSABLE};
    if (r != 0)
        return;
    out->age_s = now - rec.confirmed > LONG_MAX ? LONG_MAX : (long)(now - rec.confirmed);
    out->failures = count_failures(c, &rec);
    if (out->failures >= c->max_failures)
        out->verdict = CACHE_LOCKED;
    else if (out->age_s > max_age_s)
        out->verdict = CACHE_TOO_OLD;
    else if (strict && !c->failure_counted && (slot = take_slot(c, &rec)) < 0)
        out->verdict = slot == -1 ? CACHE_LOCKED : CACHE_UNUSABLE;
    else
        out->verdict = compare(c, &rec, password, len);
    if (out->verdict == CACHE_LOCKED)
        out->failures = c->max_failures;
    if (out->verdict == CACHE_MISMATCH && !c->failure_counted) {
        c->failure_counted = true;
        if (slot < 0)
            slot = take_slot(c, &rec);
        if (slot >= 0)
            out->failures = (unsigned)slot + 1;
    } else if (slot >= 0) {
        give_back_slot(c, &rec, slot); /* a match, or unusable: nothing to count */
    }
    secret_wipe(&rec, sizeof(rec));
}

void cache_check(struct cache *c, const char *password, size_t len, long max_age_s, bool strict,
                 struct cache_lookup *out)
{
    check_record(c, password, len, max_age_s, strict, out);
}

int cache_store(struct cache *c, const char *password, size_t len)
{
    struct cache_record rec = {.failures = 0}, old;
    bool had_old;
    int rc = -1;

    snprintf(rec.user, sizeof(rec.user), "%s", c->user);
    snprintf(rec.config_id, sizeof(rec.config_id), "%s", c->config_id);
    if (make_hash(c, password, len, rec.hash, sizeof(rec.hash)) != 0)
        goto out;
    rec.confirmed = (int64_t)time(NULL);
    had_old = read_record(c, &old, rec.confirmed) == 0;
    /* A rename: concurrent stores leave one whole record, each one a server confirmed. */
    rc = write_record(c, &rec);
    if (rc == 0 && had_old && strcmp(old.hash, rec.hash) != 0)
        drop_slots(c, &old);
    secret_wipe(&old, sizeof(old));
out:
    secret_wipe(&rec, sizeof(rec));
    return rc;
}

enum cache_verdict cache_forget_if_match(struct cache *c, const char *password, size_t len)
{
    struct cache_record rec;
    char ebuf[128];
    enum cache_verdict v;
    int r = read_record(c, &rec, (int64_t)time(NULL));

    if (r != 0)
        return r > 0 ? CACHE_NO_ENTRY : CACHE_UNUSABLE;
    v = compare(c, &rec, password, len);
    if (v != CACHE_MATCH)
        goto out;
    /* Read again and remove it if it is still the one that matched; a store racing between the
     * two can at worst lose its newer record (the cache errs towards asking the servers). */
    if (read_record(c, &rec, (int64_t)time(NULL)) == 0 && strcmp(rec.hash, c->compared_hash) == 0) {
        if (unlinkat(c->dirfd, c->name, 0) != 0 && errno != ENOENT) {
            note(c, LOG_ERR, "%s: cannot remove the record of a refused password: %s", c->name,
                 errno_text(errno, ebuf, sizeof(ebuf)));
            v = CACHE_UNUSABLE;
        } else {
            drop_slots(c, &rec);
        }
    }
out:
    secret_wipe(&rec, sizeof(rec));
    return v;
}

int cache_record_name(const char *config_id, const char *user, char out[CACHE_KEY_LEN + 1])
{
    return key_name(config_id, user, out);
}
