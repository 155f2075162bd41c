/* The credential cache's store: one small file per (config, user) in a directory of the effective
 * uid, holding a yescrypt hash of a password a server accepted, the wall-clock time of that
 * confirmation and a failure counter. Knows nothing of PAM, protocols or when to use it (that is
 * auth_cache.c). Every error is logged and reported as "unusable": the caller then goes on as if
 * there were no cache; nothing here ever turns an error into a match.
 *
 * Layout: DIR/<euid>/<hex SHA-256 of config identity and user>   the record
 *         DIR/<euid>/<same>.f<16 hex of its hash>.<k>            failure slot k (empty file)
 *         DIR/<euid>/tmp.<same>.<random>                         a record being written
 * No lock (issue 17): nothing one login does, or is stopped in the middle of, makes another
 * wait. The failure counter is the record's own (older records) plus the slots taken with
 * O_CREAT|O_EXCL since it was written.
 */
#ifndef MAILAUTH_CACHE_H
#define MAILAUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CACHE_MAX_RECORD 2048 /* bytes; a bigger file is not a record */
#define CACHE_MAX_USER 255
#define CACHE_MAX_HASH 255
#define CACHE_KEY_LEN 64
#define CACHE_MAX_FAILURES 1000000u
/* libxcrypt hashes passphrases of at most 511 bytes (CRYPT_MAX_PASSPHRASE_SIZE - 1); longer
 * passwords are never cached. */
#define CACHE_MAX_PASSWORD 511

struct cache_params {
    const char *dir;       /* base directory; DIR/<euid> is used */
    const char *config_id; /* identity of the config (hex); part of every key */
    unsigned hash_cost;    /* yescrypt cost for new records, 1..11 */
    unsigned max_failures; /* mismatches after which a record is locked */
};

/* One record as stored (the file format is in cache.c). */
struct cache_record {
    char user[CACHE_MAX_USER + 1];
    char config_id[CACHE_KEY_LEN + 1];
    char hash[CACHE_MAX_HASH + 1]; /* "$y$...": the full yescrypt string */
    int64_t confirmed;             /* unix seconds of the last server-confirmed login */
    unsigned failures;             /* offline/ttl mismatches since then */
};

enum cache_verdict {
    CACHE_MATCH,    /* the password matches the record */
    CACHE_MISMATCH, /* it does not */
    CACHE_NO_ENTRY, /* there is no record for the user */
    CACHE_TOO_OLD,  /* older than the window asked for: not compared */
    CACHE_LOCKED,   /* max_failures reached: not compared until a server confirms a login */
    CACHE_UNUSABLE, /* store or record unusable (logged): as if there were no cache */
};

struct cache_lookup {
    enum cache_verdict verdict;
    long age_s;        /* of the record, when there is one */
    unsigned failures; /* the counter after this lookup */
};

struct cache; /* the store of one login: the euid's directory and one user's record in it */

/* Open (creating when missing) DIR and DIR/<euid>, check them, name the user's record.
 * Returns 0, or -1 after logging why the cache is off for this login. */
int cache_open(const struct cache_params *p, const char *user, const struct logger *log,
               struct cache **out);
void cache_close(struct cache *c);

/* Compare password with the user's record if the record is at most max_age_s old and not locked.
 * A mismatch takes one failure slot (never beyond max_failures), at most once per struct cache
 * (one login). Nothing here waits for another login.
 * strict = false: the slot is taken after the comparison; mismatches racing each other may all
 *   be compared before the first one is counted.
 * strict = true: a slot is taken before the comparison and given back on a match, so at most
 *   max_failures wrong passwords are ever compared with a record, however many logins run at
 *   once; for when the cache is the only judge (offline). A login stopped holding a slot costs
 *   one slot, as one wrong password does, and delays nobody. */
void cache_check(struct cache *c, const char *password, size_t len, long max_age_s, bool strict,
                 struct cache_lookup *out);

/* After a server accepted password: write a fresh record (new salt, now, no failures).
 * 0, or -1 (logged). */
int cache_store(struct cache *c, const char *password, size_t len);

/* After a server refused password: remove the record when password matches it. Returns
 * CACHE_MATCH (removed), CACHE_MISMATCH (kept), CACHE_NO_ENTRY or CACHE_UNUSABLE. The failure
 * counter is not touched. */
enum cache_verdict cache_forget_if_match(struct cache *c, const char *password, size_t len);

const char *cache_verdict_name(enum cache_verdict v);

/* The file name of the record of (config_id, user) in DIR/<euid>: 64 hex digits, NUL-terminated.
 * 0, or -1. (mailauth-cache checks with it that a file is one the module wrote.) */
int cache_record_name(const char *config_id, const char *user, char out[CACHE_KEY_LEN + 1]);

/* "<key>.f<16 hex of rec's hash>.<k>": the name of failure slot k of the record rec stored as
 * key (the layout above), for the administrator's tool; cache_is_slot_name tells such a name. */
#define CACHE_SLOT_NAME_MAX (CACHE_KEY_LEN + 32)
void cache_slot_name(const char *key, const struct cache_record *rec, unsigned k,
                     char out[CACHE_SLOT_NAME_MAX]);
bool cache_is_slot_name(const char *name);

/* The record file format, exposed for tests and the fuzzer. parse: 0, or -1 with err set.
 * format: the length written (without NUL), or -1 when cap is too small. */
int cache_record_parse(const char *buf, size_t len, struct cache_record *out, struct errbuf *err);
int cache_record_format(const struct cache_record *r, char *buf, size_t cap);

#endif
