/* Small helpers shared by every layer: error text, clocks, secret wiping. */
#ifndef MAILAUTH_UTIL_H
#define MAILAUTH_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MA_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MA_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A reason in plain words, filled by the layer that saw the failure. */
struct errbuf {
    char text[256];
};

void errbuf_set(struct errbuf *eb, const char *fmt, ...) MA_PRINTF(2, 3);
void errbuf_clear(struct errbuf *eb);

/* Milliseconds on CLOCK_MONOTONIC; deadlines are absolute values of this clock. */
int64_t clock_now_ms(void);

/* True when the n bytes at p are exactly the word w, ASCII letters compared without case and
 * never by the locale's rules (under a Turkish locale strncasecmp makes "LOGIN" and "login"
 * differ). The one word compare of the protocol and verdict code. */
bool ascii_word_is(const char *p, size_t n, const char *w);

/* True when the n bytes at a and at b are the same, ASCII letters compared without case and never
 * by the locale's rules (su and sudo run PAM in their caller's locale): for names, domains and
 * hex digests, wherever strncasecmp would otherwise be used. */
bool ascii_same_nocase(const char *a, const char *b, size_t n);

/* Write all len bytes of p to fd (a file: retried after EINTR and short writes). 0, or -1 with
 * errno set by write (or 0 after a write that wrote nothing). */
int fd_write_all(int fd, const char *p, size_t len);
/* Milliseconds left until deadline_ms, clamped to [0, INT32_MAX]. */
int deadline_left_ms(int64_t deadline_ms);
/* The earlier of two deadlines. */
int64_t deadline_min(int64_t a, int64_t b);

/* Lock m, waiting at most wait_ms by the monotonic clock: 0, ETIMEDOUT (the lock is then not
 * held), or another error of pthread_mutex_trylock. It tries, then tries again after a short,
 * growing pause (50 us to 1 ms): the locks it serves are held for microseconds (the TLS cache) or
 * a parse's milliseconds (the config). Not pthread_mutex_clocklock, which ThreadSanitizer does
 * not know (it then takes every unlock for one of an unlocked mutex), nor
 * pthread_mutex_timedlock, whose CLOCK_REALTIME deadline moves whenever the wall clock is set. */
int mutex_lock_within(pthread_mutex_t *m, int wait_ms);

/* Overwrite memory in a way the compiler may not elide. */
void secret_wipe(void *p, size_t len);
/* Wipe and free a NUL-terminated string. */
void secret_free(char *s);

/* True when [p, p+len) contains CR, LF or NUL. */
bool bytes_have_crlf_nul(const char *p, size_t len);

/* Copy at most cap-1 bytes of s with every non-printable byte replaced by '?', for logs. */
void text_sanitize(char *dst, size_t cap, const char *src, size_t src_len);

/* strerror_r wrapper that always returns a readable string in buf. */
const char *errno_text(int err, char *buf, size_t cap);

#endif
