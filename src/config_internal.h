/* Shared by the config_*.c files only: libconfuse types appear nowhere else. */
#ifndef MAILAUTH_CONFIG_INTERNAL_H
#define MAILAUTH_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>

#include <confuse.h>

#include "accounts_parse.h"
#include "config.h"

/* ---- config_context.c: the parse in progress (the files below config.c read it) ---- */
/* How long a load waits for another thread's parse to end: the default timeout, the longest the
 * module otherwise makes a caller wait for one server's answer. A parse takes milliseconds. */
#define CONFIG_LOCK_WAIT_MS (CONFIG_DEFAULT_TIMEOUT_S * 1000)
/* Take the parse lock (libconfuse's lexer is not reentrant), waiting at most wait_ms on
 * CLOCK_MONOTONIC, and set the parse's logger and file name: CONFIG_OK, or CONFIG_EBUSY (logged
 * to log) without the lock. After CONFIG_OK, config_context_end clears them and releases it. */
enum config_result config_context_begin(const struct logger *log, const char *name, int wait_ms);
/* The wait config.c's loads pass to config_context_begin: CONFIG_LOCK_WAIT_MS unless a unit test
 * shortened it with config_set_lock_wait_ms (nothing else calls that). */
int config_lock_wait_ms(void);
void config_set_lock_wait_ms(int ms);
void config_context_end(void);
/* The logger of the parse in progress; only valid between begin and end. */
const struct logger *config_log(void);
/* The name of the file being parsed, or NULL. */
const char *config_file_name(void);

/* ---- config_file.c ---- */
/* Read path as pam-u2f's open_safely does (no symlink, regular file, owner root or the
 * effective user, not group/world writable, at most CONFIG_MAX_BYTES); *buf_out is
 * NUL-terminated and the caller's to free. CONFIG_OK, CONFIG_EIO or CONFIG_ENOMEM (logged). */
enum config_result config_read_file(const char *path, const struct logger *log, char **buf_out,
                                    size_t *len_out);

/* libconfuse's error callback: "file:line: message" to config_log(). */
void config_on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap) MA_PRINTF(2, 0);
/* A validation error at the line where section sec starts (or root's current line). */
void config_report(cfg_t *root, cfg_t *sec, const char *fmt, ...) MA_PRINTF(3, 4);

bool config_parse_tls_mode(const char *s, enum tls_mode *out);
bool config_parse_apop_mode(const char *s, enum apop_mode *out);
bool config_parse_protocol(const char *s, enum mail_protocol *out);
/* forward_client_ip: "auto" (true) or "never" (false). */
bool config_parse_forward(const char *s, bool *out);

/* ca_file/ca_dir of sec (or of root when sec is NULL) exist and are readable. 0 or -1. */
/* mechanisms = ...: the global list (checked after the whole file was read). */
int config_check_global_mechanisms(cfg_t *root);
/* Parse a mechanisms list of sec (root when sec is NULL) into ids (enum sasl_mech_id); -1 with
 * the error reported when a name is unknown or repeated. */
int config_mechanisms(cfg_t *root, cfg_t *sec, unsigned char *ids, unsigned *n);
int config_check_ca_paths(cfg_t *root, cfg_t *sec, const char *where);

/* libconfuse validation callbacks: 0 when valid, -1 after reporting file:line. */
int config_validate_timeout(cfg_t *cfg, cfg_opt_t *opt);
int config_validate_on_reject(cfg_t *cfg, cfg_opt_t *opt);
int config_validate_forward_client_ip(cfg_t *cfg, cfg_opt_t *opt);
int config_validate_fail_delay(cfg_t *cfg, cfg_opt_t *opt);
int config_validate_server(cfg_t *cfg, cfg_opt_t *opt);
int config_validate_user(cfg_t *cfg, cfg_opt_t *opt);
int config_validate_cache(cfg_t *cfg, cfg_opt_t *opt);
int config_validate_accounts(cfg_t *cfg, cfg_opt_t *opt); /* config_accounts.c */

/* Fill cfg->accounts from the validated tree; false when out of memory. */
bool config_accounts_fill(cfg_t *root, struct config_accounts *a);
void config_accounts_free(struct config_accounts *a);

/* The validated tree as plain structs. CONFIG_OK or CONFIG_ENOMEM. */
enum config_result config_build(cfg_t *cfg, struct mailauth_config **out);

#endif
