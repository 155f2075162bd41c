/* One process, many threads, each with its own PAM handle (real libpam, pam_start_confdir),
 * authenticating at once. Every answer must be the expected one, and the process must hold the
 * same file descriptors afterwards as before.
 *
 * The one descriptor a process legitimately gains is libc's syslog socket: the first
 * pam_syslog() connects to /dev/log (where one exists) and libc keeps it open for good. The log
 * is opened (LOG_NDELAY) before the first count, as sshd and su do, so that socket is in both
 * counts and anything else that appears is a leak, listed by what it points to.
 *
 * usage: concurrency CONFDIR SERVICE THREADS ROUNDS USER:PASSWORD:EXPECTED_PAM_CODE...
 * Thread i takes case i % ncases and runs ROUNDS authentications. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_appl.h>

struct login_case {
    char *user;
    char *password;
    int expected;
};

struct worker {
    pthread_t thread;
    const char *confdir;
    const char *service;
    const struct login_case *c;
    int rounds;
    int passed;
    int failed;
};

static int converse(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    const struct login_case *c = data;
    struct pam_response *r = calloc((size_t)n, sizeof(*r));

    if (r == NULL)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF && (r[i].resp = strdup(c->password)) == NULL) {
            for (int k = 0; k < i; k++)
                free(r[k].resp);
            free(r);
            return PAM_BUF_ERR;
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

static void *work(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < w->rounds; i++) {
        struct pam_conv conv = {converse, (void *)w->c};
        pam_handle_t *h = NULL;
        int rc = pam_start_confdir(w->service, w->c->user, &conv, w->confdir, &h);
        if (rc == PAM_SUCCESS)
            rc = pam_authenticate(h, PAM_SILENT);
        if (h != NULL)
            pam_end(h, rc);
        if (rc == w->c->expected) {
            w->passed++;
        } else {
            w->failed++;
            fprintf(stderr, "user %s: got %d (%s), expected %d\n", w->c->user, rc,
                    pam_strerror(NULL, rc), w->c->expected);
        }
    }
    return NULL;
}

/* Count open descriptors; with show, print each one and what it refers to. */
static int count_fds(int show)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[300], target[256];
        ssize_t len;

        if (e->d_name[0] == '.')
            continue;
        n++;
        if (!show)
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        len = readlink(path, target, sizeof(target) - 1);
        target[len > 0 ? len : 0] = '\0';
        fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
    }
    closedir(d);
    return n;
}

static int parse_case(char *arg, struct login_case *c)
{
    char *a = strchr(arg, ':');
    char *b = a != NULL ? strrchr(arg, ':') : NULL;

    if (a == NULL || b == a)
        return -1;
    *a = '\0';
    *b = '\0';
    c->user = arg;
    c->password = a + 1;
    c->expected = atoi(b + 1);
    return 0;
}

int main(int argc, char **argv)
{
    int threads, rounds, ncases, before, after, passed = 0, failed = 0;
    struct login_case *cases;
    struct worker *workers;

    if (argc < 6) {
        fprintf(stderr, "usage: %s CONFDIR SERVICE THREADS ROUNDS USER:PW:CODE...\n", argv[0]);
        return 2;
    }
    threads = atoi(argv[3]);
    rounds = atoi(argv[4]);
    ncases = argc - 5;
    cases = calloc((size_t)ncases, sizeof(*cases));
    workers = calloc((size_t)threads, sizeof(*workers));
    if (threads < 1 || rounds < 1 || cases == NULL || workers == NULL)
        return 2;
    for (int i = 0; i < ncases; i++) {
        if (parse_case(argv[5 + i], &cases[i]) != 0)
            return 2;
    }
    openlog("concurrency", LOG_NDELAY | LOG_PID, LOG_AUTHPRIV);
    before = count_fds(0);
    for (int i = 0; i < threads; i++) {
        workers[i] = (struct worker){
            .confdir = argv[1], .service = argv[2], .c = &cases[i % ncases], .rounds = rounds};
        if (pthread_create(&workers[i].thread, NULL, work, &workers[i]) != 0)
            return 2;
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(workers[i].thread, NULL);
        passed += workers[i].passed;
        failed += workers[i].failed;
    }
    after = count_fds(0);
    printf("file descriptors before %d, after %d\n", before, after);
    if (before != after) {
        fprintf(stderr, "file descriptor leak: %d before, %d after; open now:\n", before, after);
        count_fds(1);
        failed++;
    }
    printf("concurrency: %d passed, %d failed\n", passed, failed);
    free(cases);
    free(workers);
    return failed == 0 ? 0 : 1;
}
