#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

void errbuf_set(struct errbuf *eb, const char *fmt, ...)
{
    va_list ap;

    if (eb == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(eb->text, sizeof(eb->text), fmt, ap);
    va_end(ap);
}

void errbuf_clear(struct errbuf *eb)
{
    if (eb != NULL)
        eb->text[0] = '\0';
}

int64_t clock_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int deadline_left_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - clock_now_ms();

    if (left < 0)
        return 0;
    if (left > INT32_MAX)
        return INT32_MAX;
    return (int)left;
}

int64_t deadline_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int mutex_lock_within(pthread_mutex_t *m, int wait_ms)
{
    int64_t deadline = clock_now_ms() + wait_ms;
    long pause_ns = 50000;

    for (;;) {
        struct timespec pause = {0, pause_ns};
        int rc = pthread_mutex_trylock(m);
        if (rc != EBUSY)
            return rc;
        if (clock_now_ms() >= deadline)
            return ETIMEDOUT;
        nanosleep(&pause, NULL); /* woken early by a signal: it only tries again sooner */
        if (pause_ns < 1000000)
            pause_ns *= 2;
    }
}

void secret_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

void secret_free(char *s)
{
    if (s == NULL)
        return;
    secret_wipe(s, strlen(s));
    free(s);
}

bool bytes_have_crlf_nul(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return true;
    }
    return false;
}

void text_sanitize(char *dst, size_t cap, const char *src, size_t src_len)
{
    size_t n = 0;

    if (cap == 0)
        return;
    for (size_t i = 0; i < src_len && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
}

const char *errno_text(int err, char *buf, size_t cap)
{
    /* GNU strerror_r may return a static string instead of filling buf. */
    const char *s = strerror_r(err, buf, cap);

    return s != NULL ? s : "unknown error";
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool ascii_same_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

bool ascii_word_is(const char *p, size_t n, const char *w)
{
    return strlen(w) == n && ascii_same_nocase(p, w, n);
}

int fd_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
