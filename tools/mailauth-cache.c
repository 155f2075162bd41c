/* mailauth-cache: see and flush the credential cache (pam_mailauth.conf(5), cache section).
 * list shows user, config, age and failure counter of every record, never a hash; forget USER
 * and flush remove records and their failure slots as the module does (it takes no lock). Root sees
 * every uid's store, anyone else their effective uid's. The store is walked by tools/cache_store.c,
 * which touches only files it can prove the module wrote. Exit codes are documented in
 * mailauth-cache(8). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_store.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "tool_output.h"

enum exit_code {
    EXIT_DONE = 0,
    EXIT_USAGE = 1,
    EXIT_CONFIG = 2,
    EXIT_NO_ENTRY = 3,
    EXIT_STORE = 4,
};

enum command { CMD_LIST, CMD_FORGET, CMD_FLUSH };

struct options {
    const char *config_path;
    bool config_given;
    const char *dir;
    bool json;
    enum command cmd;
    const char *user;
};

/* What a run saw and did, for the output. */
struct run {
    const struct options *o;
    const char *identity; /* of the loaded config, or NULL */
    int64_t now;
    unsigned shown;
    unsigned removed;
};

static const char usage_text[] =
    "usage: mailauth-cache [--config PATH | --dir DIR] [--json] list\n"
    "       mailauth-cache [--config PATH | --dir DIR] [--json] forget USER\n"
    "       mailauth-cache [--config PATH | --dir DIR] [--json] flush\n";

static void json_key(const char *key, const char *s, bool comma)
{
    printf("%s\"%s\":", comma ? "," : "", key);
    json_write_string(stdout, s, strlen(s));
}

static void format_age(int64_t age, char *out, size_t cap)
{
    if (age < 0)
        snprintf(out, cap, "in the future");
    else if (age < 60)
        snprintf(out, cap, "%llds", (long long)age);
    else if (age < 3600)
        snprintf(out, cap, "%lldm%02llds", (long long)(age / 60), (long long)(age % 60));
    else if (age < 86400)
        snprintf(out, cap, "%lldh%02lldm", (long long)(age / 3600), (long long)(age % 3600 / 60));
    else
        snprintf(out, cap, "%lldd%02lldh", (long long)(age / 86400),
                 (long long)(age % 86400 / 3600));
}

static void print_entry(struct run *r, const struct store_entry *e)
{
    bool current = r->identity != NULL && strcmp(r->identity, e->config_id) == 0;
    int64_t age = r->now - e->confirmed;
    char shown_age[32];

    if (r->o->json) {
        printf("%s{\"uid\":%u", r->shown > 0 ? "," : "", e->uid);
        json_key("user", e->user, true);
        json_key("config", e->config_id, true);
        printf(",\"current_config\":%s,\"age_s\":%lld,\"failures\":%u}", current ? "true" : "false",
               (long long)age, e->failures);
    } else {
        if (r->shown == 0)
            printf("%-6s %-32s %-13s %-14s %s\n", "UID", "USER", "CONFIG", "CONFIRMED", "FAILURES");
        format_age(age, shown_age, sizeof(shown_age));
        printf("%-6u ", e->uid);
        tool_put_str(stdout, e->user);
        printf("%*s %.12s%c %-14s %u\n", strlen(e->user) < 32 ? (int)(32 - strlen(e->user)) : 0, "",
               e->config_id, current ? '*' : ' ', shown_age, e->failures);
    }
    r->shown++;
}

static bool on_entry(void *arg, const struct store_entry *e)
{
    struct run *r = arg;

    switch (r->o->cmd) {
    case CMD_LIST:
        print_entry(r, e);
        return false;
    case CMD_FORGET:
        return strcmp(e->user, r->o->user) == 0;
    case CMD_FLUSH:
        break;
    }
    return true;
}

static void on_removed(void *arg, const struct store_entry *e)
{
    struct run *r = arg;

    r->removed++;
    print_entry(r, e);
}

static void on_problem(void *arg, const char *path, const char *why)
{
    const struct run *r = arg;

    fputs("mailauth-cache: ", stderr);
    tool_put_str(stderr, r->o->dir);
    fputc('/', stderr);
    tool_put_str(stderr, path);
    fprintf(stderr, ": %s\n", why);
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"dir", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd;
    int c;

    *o = (struct options){.config_path = CONFIG_DEFAULT_PATH};
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:d:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            o->config_given = true;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        default:
            fputs("mailauth-cache: unknown option or missing argument\n", stderr);
            fputs(usage_text, stderr);
            return EXIT_USAGE;
        }
    }
    cmd = optind < argc ? argv[optind++] : "";
    if (strcmp(cmd, "list") == 0 && optind == argc) {
        o->cmd = CMD_LIST;
    } else if (strcmp(cmd, "flush") == 0 && optind == argc) {
        o->cmd = CMD_FLUSH;
    } else if (strcmp(cmd, "forget") == 0 && optind + 1 == argc && argv[optind][0] != '\0') {
        o->cmd = CMD_FORGET;
        o->user = argv[optind];
    } else {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    if (o->dir != NULL && o->config_given) {
        fputs("mailauth-cache: --config and --dir exclude each other\n", stderr);
        return EXIT_USAGE;
    }
    return 0;
}

static int run(struct options *o, const char *identity)
{
    struct run r = {.o = o, .identity = identity, .now = (int64_t)time(NULL)};
    const struct store_ops ops = {on_entry, on_problem, on_removed, &r};
    bool all = geteuid() == 0;
    int problems;

    if (o->json) {
        printf("{");
        json_key("dir", o->dir, false);
        printf(",\"all_stores\":%s,\"%s\":[", all ? "true" : "false",
               o->cmd == CMD_LIST ? "entries" : "removed");
    }
    problems = store_walk(o->dir, all, &ops);
    if (o->json)
        printf("],\"problems\":%d}\n", problems < 0 ? 1 : problems);
    else if (o->cmd != CMD_LIST)
        printf("%u record(s) removed\n", r.removed);
    else if (r.shown == 0)
        printf("no records\n");
    else if (identity != NULL)
        printf("* the configuration %s\n", o->config_path);
    if (problems != 0)
        return EXIT_STORE;
    return o->cmd == CMD_FORGET && r.removed == 0 ? EXIT_NO_ENTRY : EXIT_DONE;
}

int main(int argc, char **argv)
{
    const struct logger log = tool_stderr_logger("mailauth-cache", false);
    struct mailauth_config *cfg = NULL;
    struct options o;
    int code = parse_args(argc, argv, &o);

    if (code != 0)
        return code < 0 ? EXIT_DONE : code;
    if (o.dir == NULL) {
        if (config_load_file(o.config_path, &log, &cfg) != CONFIG_OK) {
            fputs("mailauth-cache: configuration ", stderr);
            tool_put_str(stderr, o.config_path);
            fputs(" is unusable; see the error above (or name the cache with --dir)\n", stderr);
            return EXIT_CONFIG;
        }
        o.dir = cfg->cache.dir != NULL ? cfg->cache.dir : CONFIG_CACHE_DEFAULT_DIR;
    }
    code = run(&o, cfg != NULL ? cfg->identity : NULL);
    config_free(cfg);
    return code;
}
