/* The admin tool's changes to the registry (man/mailauth-accounts.8): lock, unlock, remove.
 * Linked only by the tool and the tests; the module never changes a registered entry. */
#include "accounts.h"

#include <stdlib.h>
#include <string.h>

enum accounts_set_result accounts_set_state(const char *path, const char *name,
                                            enum acct_state state, int64_t deadline_ms,
                                            const struct logger *log)
{
    struct accounts_txn t;
    const struct acct_entry *e;
    struct acct_entry changed;
    enum accounts_set_result r = ACCOUNTS_SET_FAILED;
    char line[ACCT_MAX_LINE + 2];
    char *content = NULL;
    size_t len = 0;
    int n;

    if (accounts_txn_begin(path, deadline_ms, log, &t) != 0)
        return ACCOUNTS_SET_FAILED;
    e = acct_find_name(&t.table, name, strlen(name));
    if (e == NULL || (e->state == ACCT_REMOVED && state != ACCT_REMOVED)) {
        r = ACCOUNTS_SET_NO_SUCH;
        goto out;
    }
    if (e->state == state) {
        r = ACCOUNTS_SET_OK;
        goto out;
    }
    changed = *e;
    changed.state = state;
    n = acct_format_line(&changed, line, sizeof(line));
    if (n > 0)
        content = accounts_replace_line(&t, e, line, (size_t)n, &len);
    if (content != NULL && accounts_txn_commit(&t, content, len, log) == 0)
        r = ACCOUNTS_SET_OK;
out:
    free(content);
    accounts_txn_end(&t);
    return r;
}
