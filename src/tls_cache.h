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

/* ---- TLS sessions for resumption, kept beside the context they were verified under ----
 * Only contexts that verify (verify = true) keep sessions. A session is offered again only to
 * the same host name (as configured: what was verified and sent as SNI) and port, through the
 * same cached context, i.e. the same trust settings and CA file identities; a context replaced
 * (CA changed) or evicted takes its sessions with it, and a forked child never sees its
 * parent's table. Taking a session removes it: a TLS 1.3 ticket is offered once. */

/* At most this many sessions per context; the least recently stored one makes room. */
#define TLS_CACHE_SESSIONS 8

/* A session for host:port under ctx (which the caller holds a reference to), removed from the
 * store; NULL when there is none that is resumable and within its lifetime. The caller owns
 * the returned reference (SSL_SESSION_free). */
SSL_SESSION *tls_cache_session_take(SSL_CTX *ctx, const char *host, unsigned port);

/* Keep sess (the caller's reference is taken over in every case) for host:port under ctx;
 * dropped when ctx does not verify, is not (or no longer) cached, or sess is not resumable. */
void tls_cache_session_put(SSL_CTX *ctx, const char *host, unsigned port, SSL_SESSION *sess);

/* The directory and file OpenSSL's system store would use (SSL_CERT_DIR and SSL_CERT_FILE
 * override them as they do for OpenSSL, ignored in setuid programs). */
const char *tls_system_cert_dir(void);
const char *tls_system_cert_file(void);

#endif
