/* The account registry's format (man/mailauth-accounts.8): one account a line,
 *     name:uid:gid:state:home:shell:groups
 * Shared by the NSS module (nss/nss_mailauth.c), the PAM module's writer (accounts.c), the admin
 * tool and the fuzzer, so it uses libc only: no logging, no OpenSSL, no threads. Parsing never
 * trusts the file: a line that does not parse is skipped, and every line sharing a name or a uid
 * with another line is marked unusable. */
#ifndef MAILAUTH_ACCOUNTS_PARSE_H
#define MAILAUTH_ACCOUNTS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ACCT_REGISTRY_PATH "/var/lib/pam_mailauth/accounts"
#define ACCT_MAX_NAME 64
#define ACCT_MAX_PATH 255 /* home and shell */
#define ACCT_MAX_GROUPS 32
#define ACCT_MAX_LINE 1024
#define ACCT_MAX_FILE (4 * 1024 * 1024)
#define ACCT_ID_MIN 1000u       /* ids below are the system's */
#define ACCT_ID_MAX 4294967293u /* (uid_t)-1 and -2 are never account ids */
#define ACCT_NOBODY 65534u      /* never an account id; the first-login entry's id */
/* The gecos of the first-login entry the NSS module gives sshd for names it does not know. */
#define ACCT_FIRST_LOGIN_GECOS "pam_mailauth first login"

enum acct_state { ACCT_ACTIVE, ACCT_LOCKED, ACCT_REMOVED };

/* One parsed line; the strings point into the buffer parsed (not NUL-terminated there). */
struct acct_entry {
    const char *name;
    size_t name_len;
    uint32_t uid;
    uint32_t gid;
    enum acct_state state;
    const char *home;
    size_t home_len;
    const char *shell;
    size_t shell_len;
    uint32_t groups[ACCT_MAX_GROUPS];
    size_t n_groups;
    bool usable; /* false: shares its name or uid with another line */
};

struct acct_table {
    struct acct_entry *entries;
    size_t n;
};

/* 1..ACCT_MAX_NAME bytes of [A-Za-z0-9._@+-], first byte a letter, digit or '_', not all
 * digits: never ".", "..", a path, an option or a control byte. */
bool acct_name_is_safe(const char *name, size_t len);

/* An absolute path of printable bytes without ':', "//", "/./" or "/../" (home and shell). */
bool acct_path_is_safe(const char *p, size_t len);

/* Parse one line without its newline. 0, or -1 when it is not a valid entry (a comment or an
 * empty line is -1 too). */
int acct_parse_line(const char *line, size_t len, struct acct_entry *e);

/* Parse every newline-terminated line of buf (an unterminated last line is ignored) and mark
 * duplicate names and uids unusable. t->entries point into buf. 0, or -1 (out of memory). */
int acct_table_parse(const char *buf, size_t len, struct acct_table *t);
void acct_table_free(struct acct_table *t);

/* The usable entry with this name or uid, or NULL. */
const struct acct_entry *acct_find_name(const struct acct_table *t, const char *name, size_t len);
const struct acct_entry *acct_find_uid(const struct acct_table *t, uint32_t uid);

/* The highest uid any line (usable or not, tombstones included) records, or 0. */
uint32_t acct_max_uid(const struct acct_table *t);

/* Read the whole registry: no symbolic link, a regular file owned by root or by owner_ok, not
 * group/world writable, at most ACCT_MAX_FILE bytes. *buf is malloc'd and NUL-terminated.
 * 0, or -1 with errno (ENOENT: no registry; EPERM: unsafe file; EFBIG: too big). */
int acct_file_read(const char *path, uid_t owner_ok, char **buf, size_t *len);

const char *acct_state_name(enum acct_state s);

/* Format e as one line with its newline into out; the length, or -1 when it does not fit. */
int acct_format_line(const struct acct_entry *e, char *out, size_t cap);

#endif
