/* The process-wide cache of client TLS contexts: the one piece of mutable state the module keeps
 * between calls (tls_cache.c says how it stays correct across threads, fork and CA changes). */
#ifndef MAILAUTH_TLS_CACHE_H
#define MAILAUTH_TLS_CACHE_H

#include <openssl/ssl.h>

#include "tls.h"
#include "util.h"

/* At most this many contexts are kept; the least recently used one makes room. */
#define TLS_CACHE_SLOTS 8

/* Build a fresh context for opt (tls.c's new_context in the module). NULL on failure, err set. */
typedef SSL_CTX *(*tls_ctx_build_fn)(const struct tls_options *opt, struct errbuf *err);

/* A context for opt: the cached one when the trust settings are the same and the CA files it
 * was built from are unchanged (device, inode, size, mtime, ctime), otherwise a new one from
 * build, which replaces the stale entry. Returns a new reference (SSL_CTX_free it) or NULL
 * (err says why; failures are not cached). */
SSL_CTX *tls_cache_get(const struct tls_options *opt, tls_ctx_build_fn build, struct errbuf *err);

/* The directory and file OpenSSL's system store would use (SSL_CERT_DIR and SSL_CERT_FILE
 * override them as they do for OpenSSL, ignored in setuid programs). */
const char *tls_system_cert_dir(void);
const char *tls_system_cert_file(void);

#endif
