/* The configuration file: parsed with libconfuse, validated, turned into plain structs.
 * Names are config_*, not cfg_*, because libconfuse owns the cfg_ prefix. */
#ifndef MAILAUTH_CONFIG_H
#define MAILAUTH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "proto.h"

#define CONFIG_MAX_BYTES (256 * 1024)
#define CONFIG_DEFAULT_PATH "/etc/security/pam_mailauth.conf"
#define CONFIG_CACHE_DEFAULT_DIR "/var/cache/pam_mailauth"
#define CONFIG_DEFAULT_TIMEOUT_S 20 /* timeout's default; also the bound on the parse lock */

enum config_result {
    CONFIG_OK,
    CONFIG_EIO,    /* cannot open or read the file, or it is unsafe (owner, mode, link) */
    CONFIG_EINVAL, /* syntax or validation error; file:line was logged */
    CONFIG_ENOMEM,
    CONFIG_EBUSY, /* another thread's parse held the lock past CONFIG_LOCK_WAIT_MS; logged */
};

enum on_reject { ON_REJECT_NEXT, ON_REJECT_STOP };

struct config_endpoint {
    char *host;
    unsigned port;
    enum tls_mode tls;
};

struct config_server {
    char *label;
    enum mail_protocol protocol;
    struct config_endpoint *endpoints;
    size_t n_endpoints;
    bool verify;
    bool allow_cleartext;
    bool forward_client_ip; /* forward_client_ip = auto: tell the server the end user's address */
    enum apop_mode apop;
    unsigned char mechanisms[8]; /* enum sasl_mech_id; n_mechanisms 0: the default login */
    unsigned n_mechanisms;
    char *ca_file;
    char *ca_dir;
    char **domains; /* routing: NULL/0 means every domain */
    size_t n_domains;
};

struct config_user_policy {
    bool lowercase;
    char *append_domain; /* NULL: none */
    bool strip_domain;
    char **allowed_domains;
    size_t n_allowed_domains;
    char **deny_users;
    size_t n_deny_users;
};

/* The credential cache (cache.c); enabled only with a cache section whose ttl or offline_grace is
 * above 0. Without it nothing is read or written. */
struct config_cache {
    bool enabled;
    char *dir;            /* base directory; a subdirectory per effective uid is used */
    long ttl_s;           /* accept without any server within this age (0: off) */
    long offline_grace_s; /* accept when no server received the password (0: off) */
    unsigned hash_cost;   /* yescrypt cost, 1..11 */
    unsigned max_failures;
};

/* Accounts for mail users (man/mailauth-accounts.8); enabled only with an accounts section. */
struct config_domain_group {
    char *domain; /* NULL for the default */
    char *group;  /* "private" or a local group's name */
};

struct config_accounts {
    bool enabled;
    char *registry;
    unsigned long uid_min;
    unsigned long uid_max;
    char *home; /* template: %u the account name, %d the mail domain */
    char *shell;
    char *group; /* primary group: "private" or a local group */
    struct config_domain_group *domain_groups;
    size_t n_domain_groups;
    char **groups; /* extra local groups */
    size_t n_groups;
};

/* Hex SHA-256 naming one config: its canonical path and its exact contents (config_file.c). */
#define CONFIG_IDENTITY_LEN 64

struct mailauth_config {
    int timeout_ms;
    int connect_timeout_ms;
    enum on_reject on_reject;
    int fail_delay_ms;
    char *ca_file;
    char *ca_dir;
    struct config_user_policy user;
    struct config_server *servers;
    size_t n_servers;
    struct config_cache cache;
    struct config_accounts accounts;
    char identity[CONFIG_IDENTITY_LEN + 1]; /* keys the cache: two configs never share entries */
};

/* Parse a NUL-terminated buffer; name is used in error messages ("file:line: ...") and, with the
 * contents, for cfg->identity. Waits at most CONFIG_DEFAULT_TIMEOUT_S for another thread's parse.
 * Returns CONFIG_OK, CONFIG_EINVAL, CONFIG_ENOMEM or CONFIG_EBUSY; *out is set only on
 * CONFIG_OK. */
enum config_result config_parse_buffer(const char *buf, size_t len, const char *name,
                                       const struct logger *log, struct mailauth_config **out);

/* Open path safely (no symlink, regular file, owned by root or the caller, not group/world
 * writable, at most CONFIG_MAX_BYTES) and parse it; cfg->identity names the canonical path and
 * the contents. Returns CONFIG_OK, CONFIG_EIO,
 * CONFIG_EINVAL, CONFIG_ENOMEM or CONFIG_EBUSY. */
enum config_result config_load_file(const char *path, const struct logger *log,
                                    struct mailauth_config **out);

void config_free(struct mailauth_config *cfg);

/* out = hex SHA-256 of name and contents; 0, or -1 when the digest fails. */
int config_identity(const char *name, const char *buf, size_t len,
                    char out[CONFIG_IDENTITY_LEN + 1]);

/* Overwrite comments with spaces, keeping quoted text and newlines; returns the line of the
 * first section never closed, or 0 (exposed for tests). */
int config_blank_comments(char *buf, size_t len);

/* The line of the first "${" (an environment reference to libconfuse), or 0 (exposed for
 * tests). */
int config_find_env_reference(const char *buf, size_t len);

/* The names of every option the parser knows, NULL-terminated, taken from the parser's own
 * table (for the documentation test). At most CONFIG_MAX_OPTION_NAMES. */
#define CONFIG_MAX_OPTION_NAMES 64
const char *const *config_option_names(void);

const char *protocol_name(enum mail_protocol p);
const char *tls_mode_name(enum tls_mode m);

#endif
