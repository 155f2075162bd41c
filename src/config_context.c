/* The parse in progress, shared by the config_*.c files below config.c: which logger the
 * libconfuse callbacks write to and which file they name. libconfuse's lexer keeps its state in
 * process globals (cfg_yyin, cfg_yylineno, ...), so two threads must never parse at once; the
 * lock that says so lives here with the state it guards, and config.c (the top) takes it around
 * each parse. The module's only mutable global besides the TLS context cache.
 *
 * The lock is waited for with a deadline (CONFIG_LOCK_WAIT_MS) by the monotonic clock
 * (mutex_lock_within, util.h, which says why neither pthread_mutex_clocklock nor
 * pthread_mutex_timedlock): a parse is CPU work on at most CONFIG_MAX_BYTES, so a lock still held
 * after the bound belongs to a thread that is stuck, or to a thread of the parent that held it
 * when this process forked (the child's copy is never released). A timeout only ever refuses the
 * load (CONFIG_EBUSY, PAM_SERVICE_ERR in the module), never skips the lock. */
#include "config_internal.h"

#include <errno.h>
#include <pthread.h>

static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct logger *parse_log;
static const char *parse_name; /* the file being parsed, for sections libconfuse leaves unnamed */
static _Atomic int lock_wait_ms = CONFIG_LOCK_WAIT_MS;

int config_lock_wait_ms(void)
{
    return lock_wait_ms;
}

void config_set_lock_wait_ms(int ms)
{
    lock_wait_ms = ms;
}

enum config_result config_context_begin(const struct logger *log, const char *name, int wait_ms)
{
    /* EINTR is not returned for a mutex; anything but 0 means the lock is not ours. */
    int rc = mutex_lock_within(&parse_lock, wait_ms);

    if (rc != 0) {
        log_msg(log, LOG_ERR,
                "%s: not parsed: another thread has held the configuration parse lock for over "
                "%d ms (%s); the service is unavailable until it is released",
                name, wait_ms, rc == ETIMEDOUT ? "timed out" : "lock error");
        return CONFIG_EBUSY;
    }
    parse_log = log;
    parse_name = name;
    return CONFIG_OK;
}

void config_context_end(void)
{
    parse_log = NULL;
    parse_name = NULL;
    pthread_mutex_unlock(&parse_lock);
}

const struct logger *config_log(void)
{
    return parse_log;
}

const char *config_file_name(void)
{
    return parse_name;
}
