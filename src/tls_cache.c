/* The process-wide cache of client TLS contexts.
 *
 * Why: building a context and loading its trust anchors costs more CPU than the rest of a TLS
 * login (SSL_CTX_new alone is about 1.3 M instructions in OpenSSL 3.0; a CA bundle about 19 ms).
 * Resident processes (Apache workers, sssd-like daemons, a driver running many PAM handles)
 * would pay it for every login. This is the one piece of mutable process-wide state the module
 * keeps, as DEVELOPERS.md allows, and it is built so that it can never serve stale trust:
 *
 * - Key: verify on/off, ca_file, ca_dir, and for the system store the directory and file OpenSSL
 *   would use (after SSL_CERT_DIR/SSL_CERT_FILE), plus the identity of every one of those paths
 *   as stat() sees it now: device, inode, size, mtime and ctime (nanoseconds). A CA file replaced
 *   (rename over it, new inode) or rewritten in place (new size, mtime, ctime) changes the key;
 *   so does a hash link added to or removed from a CA directory (the directory's mtime/ctime).
 *   The next login builds a new context and it replaces the stale one. A certificate rewritten
 *   in place *behind* an existing hash link of a directory is not seen (the directory does not
 *   change); `openssl rehash` and update-ca-certificates recreate the links, which is seen.
 *   Identities are read before the context is built, so a file changed in between is at worst
 *   loaded twice, never cached under the identity of newer content than it holds.
 *   verify = false is part of the key: such a context, which holds no trust anchors and does
 *   not verify, is never handed to a server with verify = true, and the other way round.
 *   A colon-separated SSL_CERT_DIR list is not cached (its members are not tracked).
 * - Threads: one mutex guards the table; it is held only to look up or store an entry, never
 *   while reading files or building a context. A context is shared as a new reference
 *   (SSL_CTX_up_ref); SSL_new on a shared, no longer modified SSL_CTX is thread-safe in
 *   OpenSSL 3. Evicting or replacing an entry drops only the cache's reference.
 * - Fork: a child never touches its parent's table or mutex (another parent thread may have
 *   held the lock, or been inside OpenSSL with one of the context's locks, at the moment of the
 *   fork). The table records the pid that made it; a process that finds another pid's table
 *   makes a fresh one and leaves the inherited one untouched (kept reachable, never freed). A
 *   pthread_atfork child handler (registered once, no prepare handler, so forks never wait for
 *   the module) marks the inherited table as foreign, which also covers a child whose pid
 *   happens to equal a former parent's.
 * - Global OpenSSL state is never touched: no init or cleanup calls, no global settings.
 * - dlclose: the module is linked -z nodelete, so the table lives as long as the process. The
 *   static library (tests, tools) keeps it until exit; it is never freed, and stays reachable.
 * - Sessions (issue 21): each entry also keeps up to TLS_CACHE_SESSIONS resumable sessions,
 *   keyed by host name and port, for contexts that verify. They live and die with the entry,
 *   so everything above (trust settings, CA file identities, fork) holds for them too. A session
 *   is taken out when offered (TLS 1.3 tickets are single-use; the connection stores the one it
 *   ends with) and dropped when past its lifetime (the session's timeout, and the server's ticket
 *   lifetime hint when it gave one). Resumption only skips the certificate exchange of a server
 *   that already proved the same name under the same trust: the login is judged as ever.
 */
#include "tls_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

enum { STAMP_CA_FILE, STAMP_CA_DIR, STAMP_SYS_DIR, STAMP_SYS_FILE, STAMP_COUNT };

struct file_stamp {
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
};

/* The trust settings a context was built from. Strings are owned in table entries and borrowed
 * in a probe. */
struct cache_key {
    bool verify;
    const char *paths[STAMP_COUNT]; /* NULL where not used */
    struct file_stamp stamps[STAMP_COUNT];
};

struct session_slot {
    char *host; /* NULL: free */
    unsigned port;
    uint64_t stored;
    SSL_SESSION *sess; /* the store's own reference */
};

struct cache_entry {
    bool used;
    uint64_t last_used;
    struct cache_key key;
    SSL_CTX *ctx; /* the cache's own reference */
    struct session_slot sessions[TLS_CACHE_SESSIONS];
};

struct cache_state {
    pid_t pid; /* the process that made this table; read and written atomically */
    pthread_mutex_t lock;
    uint64_t tick;
    struct cache_entry slots[TLS_CACHE_SLOTS];
    struct cache_state *inherited; /* a parent's table: kept reachable, never used */
};

static struct cache_state *current_state; /* accessed only with __atomic builtins */

/* The lock guards a few pointer moves; one not had within this bound belongs to a stuck thread.
 * The caller then goes on without the cache (builds its own context, makes a full handshake):
 * that costs time and never changes what a login decides. */
#define TLS_CACHE_LOCK_WAIT_MS 1000
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

const char *tls_system_cert_dir(void)
{
    const char *dir = secure_getenv(X509_get_default_cert_dir_env());

    return dir != NULL ? dir : X509_get_default_cert_dir();
}

const char *tls_system_cert_file(void)
{
    const char *file = secure_getenv(X509_get_default_cert_file_env());

    return file != NULL ? file : X509_get_default_cert_file();
}

/* ---- the table of this process ---- */

static void mark_inherited_table(void)
{
    struct cache_state *s = __atomic_load_n(&current_state, __ATOMIC_ACQUIRE);

    /* In the child right after fork: only this thread exists. */
    if (s != NULL)
        __atomic_store_n(&s->pid, (pid_t)0, __ATOMIC_RELEASE);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, mark_inherited_table);
}

/* This process's table, made on first use. NULL when out of memory. */
static struct cache_state *state_get(void)
{
    pid_t me = getpid();
    struct cache_state *s = __atomic_load_n(&current_state, __ATOMIC_ACQUIRE);
    struct cache_state *fresh;

    if (s != NULL && __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) == me)
        return s;
    pthread_once(&atfork_once, register_atfork);
    fresh = calloc(1, sizeof(*fresh));
    if (fresh == NULL)
        return NULL;
    if (pthread_mutex_init(&fresh->lock, NULL) != 0) {
        free(fresh);
        return NULL;
    }
    fresh->pid = me;
    fresh->inherited = s;
    if (__atomic_compare_exchange_n(&current_state, &s, fresh, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return fresh;
    /* Another thread of this process installed its table first: use that one. */
    pthread_mutex_destroy(&fresh->lock);
    free(fresh);
    return s;
}

/* ---- keys ---- */

static void stamp_path(const char *path, struct file_stamp *st)
{
    struct stat sb;

    memset(st, 0, sizeof(*st));
    if (path == NULL || stat(path, &sb) != 0)
        return;
    st->present = true;
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
    st->size = sb.st_size;
    st->mtime = sb.st_mtim;
    st->ctime = sb.st_ctim;
}

/* The key for opt as the files are now. False when opt must not be cached. */
static bool key_probe(const struct tls_options *opt, struct cache_key *k)
{
    memset(k, 0, sizeof(*k));
    k->verify = opt->verify;
    if (!opt->verify)
        return true; /* no trust anchors are loaded: nothing to identify */
    if (opt->ca_file != NULL || opt->ca_dir != NULL) {
        k->paths[STAMP_CA_FILE] = opt->ca_file;
        k->paths[STAMP_CA_DIR] = opt->ca_dir;
    } else {
        k->paths[STAMP_SYS_DIR] = tls_system_cert_dir();
        k->paths[STAMP_SYS_FILE] = tls_system_cert_file();
        if (strchr(k->paths[STAMP_SYS_DIR], ':') != NULL)
            return false;
    }
    for (int i = 0; i < STAMP_COUNT; i++)
        stamp_path(k->paths[i], &k->stamps[i]);
    return true;
}

static bool same_path(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_stamp(const struct file_stamp *a, const struct file_stamp *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Same trust settings; with_stamps: and the same file identities. */
static bool key_matches(const struct cache_key *a, const struct cache_key *b, bool with_stamps)
{
    if (a->verify != b->verify)
        return false;
    for (int i = 0; i < STAMP_COUNT; i++) {
        if (!same_path(a->paths[i], b->paths[i]))
            return false;
        if (with_stamps && !same_stamp(&a->stamps[i], &b->stamps[i]))
            return false;
    }
    return true;
}

static void key_free_paths(struct cache_key *k)
{
    for (int i = 0; i < STAMP_COUNT; i++)
        free((char *)k->paths[i]);
}

/* An owned copy of probe. False when out of memory. */
static bool key_copy(const struct cache_key *probe, struct cache_key *out)
{
    *out = *probe;
    for (int i = 0; i < STAMP_COUNT; i++)
        out->paths[i] = NULL;
    for (int i = 0; i < STAMP_COUNT; i++) {
        if (probe->paths[i] != NULL && (out->paths[i] = strdup(probe->paths[i])) == NULL) {
            key_free_paths(out);
            return false;
        }
    }
    return true;
}

/* Free what a session slot holds (outside the lock: freeing a session cleanses its secrets). */
static void slot_clear(struct session_slot *slot)
{
    free(slot->host);
    SSL_SESSION_free(slot->sess);
    *slot = (struct session_slot){0};
}

/* ---- lookup and store, under the lock ---- */

static struct cache_entry *find_entry(struct cache_state *s, const struct cache_key *k,
                                      bool with_stamps)
{
    for (size_t i = 0; i < TLS_CACHE_SLOTS; i++) {
        if (s->slots[i].used && key_matches(&s->slots[i].key, k, with_stamps))
            return &s->slots[i];
    }
    return NULL;
}

/* The entry for k's settings when there is one (it is stale), else a free or the least
 * recently used slot. */
static struct cache_entry *slot_for(struct cache_state *s, const struct cache_key *k)
{
    struct cache_entry *e = find_entry(s, k, false);

    if (e != NULL)
        return e;
    e = &s->slots[0];
    for (size_t i = 0; i < TLS_CACHE_SLOTS; i++) {
        if (!s->slots[i].used)
            return &s->slots[i];
        if (s->slots[i].last_used < e->last_used)
            e = &s->slots[i];
    }
    return e;
}

static SSL_CTX *lookup(struct cache_state *s, const struct cache_key *probe)
{
    SSL_CTX *ctx = NULL;
    struct cache_entry *e;

    if (mutex_lock_within(&s->lock, TLS_CACHE_LOCK_WAIT_MS) != 0)
        return NULL;
    e = find_entry(s, probe, true);
    if (e != NULL && SSL_CTX_up_ref(e->ctx) == 1) {
        ctx = e->ctx;
        e->last_used = ++s->tick;
    }
    pthread_mutex_unlock(&s->lock);
    return ctx;
}

/* Store ctx under probe, replacing a stale entry of the same settings or evicting the least
 * recently used one. The cache takes its own reference; failures just leave ctx uncached. */
static void store(struct cache_state *s, const struct cache_key *probe, SSL_CTX *ctx)
{
    struct cache_entry fresh = {.used = true, .ctx = ctx};
    struct cache_entry old;
    struct cache_entry *e;

    if (!key_copy(probe, &fresh.key))
        return;
    if (SSL_CTX_up_ref(ctx) != 1) {
        key_free_paths(&fresh.key);
        return;
    }
    if (mutex_lock_within(&s->lock, TLS_CACHE_LOCK_WAIT_MS) != 0) {
        SSL_CTX_free(ctx); /* the reference taken for the cache */
        key_free_paths(&fresh.key);
        return;
    }
    e = slot_for(s, probe);
    old = *e;
    fresh.last_used = ++s->tick;
    *e = fresh;
    pthread_mutex_unlock(&s->lock);
    if (old.used) {
        SSL_CTX_free(old.ctx); /* logins still using it hold their own references */
        key_free_paths(&old.key);
        for (size_t i = 0; i < TLS_CACHE_SESSIONS; i++)
            slot_clear(&old.sessions[i]);
    }
}

SSL_CTX *tls_cache_get(const struct tls_options *opt, tls_ctx_build_fn build, struct errbuf *err)
{
    struct cache_key probe;
    struct cache_state *s = NULL;
    SSL_CTX *ctx;

    if (key_probe(opt, &probe))
        s = state_get();
    if (s == NULL)
        return build(opt, err);
    ctx = lookup(s, &probe);
    if (ctx != NULL)
        return ctx;
    /* Built outside the lock: reading a CA bundle takes milliseconds, other logins must not
     * wait for it. Two threads missing at once both build; the later one's context stays. */
    ctx = build(opt, err);
    if (ctx != NULL)
        store(s, &probe, ctx);
    return ctx;
}

/* ---- sessions ---- */

/* Still within its lifetime: the session's own timeout and, when the server gave one, the
 * ticket lifetime hint, counted from when it was made. */
static bool session_fresh(const SSL_SESSION *sess)
{
    time_t now = time(NULL);
    long made = SSL_SESSION_get_time(sess);
    long timeout = SSL_SESSION_get_timeout(sess);
    unsigned long hint = SSL_SESSION_get_ticket_lifetime_hint(sess);

    if (!SSL_SESSION_is_resumable(sess) || now < made || now - made >= timeout)
        return false;
    return hint == 0 || (unsigned long)(now - made) < hint;
}

/* The entry holding ctx. The caller holds a reference to ctx, so no other context can have its
 * address. Called with the lock held. */
static struct cache_entry *entry_of(struct cache_state *s, const SSL_CTX *ctx)
{
    for (size_t i = 0; i < TLS_CACHE_SLOTS; i++) {
        if (s->slots[i].used && s->slots[i].ctx == ctx && s->slots[i].key.verify)
            return &s->slots[i];
    }
    return NULL;
}

static struct session_slot *slot_of(struct cache_entry *e, const char *host, unsigned port)
{
    for (size_t i = 0; i < TLS_CACHE_SESSIONS; i++) {
        struct session_slot *slot = &e->sessions[i];
        if (slot->host != NULL && slot->port == port && strcmp(slot->host, host) == 0)
            return slot;
    }
    return NULL;
}

/* The slot for host:port, else a free or the oldest one. */
static struct session_slot *slot_to_fill(struct cache_entry *e, const char *host, unsigned port)
{
    struct session_slot *slot = slot_of(e, host, port);

    if (slot != NULL)
        return slot;
    slot = &e->sessions[0];
    for (size_t i = 0; i < TLS_CACHE_SESSIONS; i++) {
        if (e->sessions[i].host == NULL)
            return &e->sessions[i];
        if (e->sessions[i].stored < slot->stored)
            slot = &e->sessions[i];
    }
    return slot;
}

SSL_SESSION *tls_cache_session_take(SSL_CTX *ctx, const char *host, unsigned port)
{
    struct cache_state *s = state_get();
    struct session_slot taken = {0};
    struct cache_entry *e;
    struct session_slot *slot;

    if (s == NULL || mutex_lock_within(&s->lock, TLS_CACHE_LOCK_WAIT_MS) != 0)
        return NULL;
    e = entry_of(s, ctx);
    slot = e != NULL ? slot_of(e, host, port) : NULL;
    if (slot != NULL) {
        taken = *slot;
        *slot = (struct session_slot){0};
    }
    pthread_mutex_unlock(&s->lock);
    if (taken.sess != NULL && session_fresh(taken.sess)) {
        SSL_SESSION *sess = taken.sess;
        taken.sess = NULL;
        slot_clear(&taken);
        return sess;
    }
    slot_clear(&taken);
    return NULL;
}

void tls_cache_session_put(SSL_CTX *ctx, const char *host, unsigned port, SSL_SESSION *sess)
{
    struct cache_state *s = state_get();
    struct session_slot fresh = {.port = port, .sess = sess};
    struct cache_entry *e;

    if (s == NULL || sess == NULL || !session_fresh(sess) || (fresh.host = strdup(host)) == NULL) {
        slot_clear(&fresh);
        return;
    }
    if (mutex_lock_within(&s->lock, TLS_CACHE_LOCK_WAIT_MS) != 0) {
        slot_clear(&fresh);
        return;
    }
    e = entry_of(s, ctx);
    if (e != NULL) {
        struct session_slot *slot = slot_to_fill(e, host, port);
        struct session_slot old = *slot;
        fresh.stored = ++s->tick;
        *slot = fresh;
        fresh = old;
    }
    pthread_mutex_unlock(&s->lock);
    slot_clear(&fresh); /* the replaced session, or ours when ctx is not cached */
}
