/* The account registry parser (accounts_parse.c), which libnss_mailauth runs in every process:
 * whatever a damaged or hostile registry holds, parsing never crashes; every usable entry is
 * found again by its name and uid, holds only safe names and paths, and formats back to a line
 * that parses to the same entry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_parse.h"
#include "fuzz.h"

static void check_entry(const struct acct_table *t, const struct acct_entry *e)
{
    char line[ACCT_MAX_LINE + 2];
    struct acct_entry again;
    int n;

    if (!acct_name_is_safe(e->name, e->name_len) || !acct_path_is_safe(e->home, e->home_len) ||
        !acct_path_is_safe(e->shell, e->shell_len) || e->uid < ACCT_ID_MIN || e->gid == 0)
        abort();
    if (acct_find_name(t, e->name, e->name_len) != e || acct_find_uid(t, e->uid) != e)
        abort();
    n = acct_format_line(e, line, sizeof(line));
    if (n < 2 || line[n - 1] != '\n' || acct_parse_line(line, (size_t)n - 1, &again) != 0)
        abort();
    if (again.uid != e->uid || again.gid != e->gid || again.state != e->state ||
        again.n_groups != e->n_groups || again.name_len != e->name_len ||
        memcmp(again.name, e->name, e->name_len) != 0 ||
        memcmp(again.groups, e->groups, e->n_groups * sizeof(e->groups[0])) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct acct_table t;

    if (acct_table_parse((const char *)data, size, &t) != 0)
        return 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.entries[i].usable)
            check_entry(&t, &t.entries[i]);
    }
    acct_table_free(&t);
    return 0;
}
