/* The parse in progress, shared by the config_*.c files below config.c: which logger the
 * libconfuse callbacks write to and which file they name. libconfuse's lexer keeps its state in
 * process globals (cfg_yyin, cfg_yylineno, ...), so two threads must never parse at once; the
 * lock that says so lives here with the state it guards, and config.c (the top) takes it around
 * each parse. The module's only mutable global besides the TLS context cache. */
#include "config_internal.h"

#include <pthread.h>

static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct logger *parse_log;
static const char *parse_name; /* the file being parsed, for sections libconfuse leaves unnamed */

void config_context_begin(const struct logger *log, const char *name)
{
    pthread_mutex_lock(&parse_lock);
    parse_log = log;
    parse_name = name;
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
