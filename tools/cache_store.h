/* mailauth-cache's view of the credential cache's store (layout in src/cache.h): find the records
 * the module wrote, with their failure slots, and remove them as the module does (no lock).
 * Tool-only: not part of the module's library. Touches nothing it cannot prove the module wrote: a
 * record must be a regular file reached without following a link, owned by the store's uid, with
 * one link, no access for group or others, at most CACHE_MAX_RECORD bytes, parse as a record, and
 * be named by its own config identity and user (cache_record_name). Anything else is reported,
 * never read further, removed or followed. */
#ifndef MAILAUTH_CACHE_STORE_H
#define MAILAUTH_CACHE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cache.h"

/* What a list shows of a record: never its hash. */
struct store_entry {
    unsigned uid; /* the store: DIR/<uid> */
    char user[CACHE_MAX_USER + 1];
    char config_id[CACHE_KEY_LEN + 1];
    int64_t confirmed; /* unix seconds of the last server-confirmed login */
    unsigned failures;
};

struct store_ops {
    /* Called for every record; returns true to have it removed. */
    bool (*entry)(void *arg, const struct store_entry *e);
    /* Called for every store, file or removal that was refused or failed (path relative to the
     * base directory, why in plain words). */
    void (*problem)(void *arg, const char *path, const char *why);
    /* Called after a record was removed. */
    void (*removed)(void *arg, const struct store_entry *e);
    void *arg;
};

/* Walk the stores under base: only DIR/<euid> when all is false; every DIR/<number> when true
 * (root). Returns the number of problems reported (0: everything was read, and what was to be
 * removed was removed; also when base does not exist: nothing was cached), or -1 when base
 * cannot be opened (reported). */
int store_walk(const char *base, bool all, const struct store_ops *ops);

#endif
