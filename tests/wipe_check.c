/* "The password is wiped from memory after use", checked: one authentication through real libpam
 * (pam_start_confdir), then a search for the password (and credential-derived secrets given in
 * hex: base64 forms, an APOP digest) in
 *   - every heap block freed while the module ran: this executable interposes free() and
 *     realloc() (in a sanitizer build it installs the sanitizer's free hook instead) and scans
 *     each block before it goes back to the allocator;
 *   - the dead stack: painted with zeros before the call, then read (through /proc/self/mem, so
 *     no instrumented load touches memory below the stack pointer) below the caller's frame at
 *     every poll(), send(), recv() and free(), and once more after pam_end(). A buffer left
 *     unwiped by a function that returned is found at the next such call, before later calls
 *     can overwrite it by chance; live frames (above the caller) are never scanned.
 *
 *   wipe_check CONFDIR SERVICE USER PASSWORD [HEX_SECRET...]
 *
 * Prints authenticate=CODE, one line per copy found (where, which secret, who freed it), and
 * "wipe: N freed blocks (B bytes) and S stack bytes scanned, K copies found". Exit status 0 when
 * nothing was found, 1 when a copy was, 2 on a usage or setup error. */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <security/pam_appl.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED_ALLOCATOR 1
#endif
#endif

#define MAX_SECRETS 16
#define STACK_SCAN (256 * 1024) /* a login uses about 30 KiB of stack (more with ASan) */
#define STACK_UNTOUCHED 4096    /* the bottom of the painted region must stay zero */
#define MAX_REPORTS 20

struct secret {
    const unsigned char *bytes;
    size_t len;
};

/* One thread: libpam, the module and this driver all run in main's thread. */
static struct secret secrets[MAX_SECRETS];
static size_t n_secrets;
static int armed;
static unsigned long blocks_scanned, bytes_scanned, copies_found, stack_scans;
static uintptr_t stack_bottom;    /* lowest painted address */
static unsigned char *stack_copy; /* STACK_SCAN bytes, allocated before arming */
static int mem_fd = -1;

static void report(const char *where, size_t size, size_t secret, const void *caller)
{
    Dl_info info;
    const char *who = "?";

    copies_found++;
    if (copies_found > MAX_REPORTS)
        return;
    if (caller != NULL && dladdr(caller, &info) != 0 && info.dli_fname != NULL)
        who = info.dli_fname;
    int was_armed = armed;

    /* fprintf may allocate: not armed while reporting */
    armed = 0;
    fprintf(stderr, "COPY LEFT: secret #%zu in %s of %zu bytes (released by %s)\n", secret, where,
            size, who);
    armed = was_armed;
}

static void scan(const char *where, const void *p, size_t size, const void *caller)
{
    blocks_scanned++;
    bytes_scanned += size;
    for (size_t i = 0; i < n_secrets; i++) {
        if (secrets[i].len > 0 && memmem(p, size, secrets[i].bytes, secrets[i].len) != NULL)
            report(where, size, i, caller);
    }
}

/* Scan the stack below `below` (an address in the calling hook's frame): all of it is dead. */
static void scan_dead_stack(const char *where, uintptr_t below)
{
    size_t len;
    ssize_t got;

    if (!armed || mem_fd < 0 || below <= stack_bottom)
        return;
    len = below - stack_bottom;
    if (len > STACK_SCAN)
        len = STACK_SCAN;
    got = pread(mem_fd, stack_copy, len, (off_t)stack_bottom);
    if (got != (ssize_t)len)
        return;
    stack_scans++;
    for (size_t i = 0; i < n_secrets; i++) {
        if (memmem(stack_copy, len, secrets[i].bytes, secrets[i].len) != NULL)
            report(where, len, i, NULL);
    }
}

typedef int (*poll_fn)(struct pollfd *, nfds_t, int);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*recv_fn)(int, void *, size_t, int);

/* The module's network calls land here first (found before libc in symbol lookup). */
int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    volatile char here;
    poll_fn next = (poll_fn)dlsym(RTLD_NEXT, "poll");

    scan_dead_stack("the dead stack at poll()", (uintptr_t)&here);
    return next(fds, n, timeout);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    volatile char here;
    send_fn next = (send_fn)dlsym(RTLD_NEXT, "send");

    scan_dead_stack("the dead stack at send()", (uintptr_t)&here);
    return next(fd, buf, len, flags);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    volatile char here;
    recv_fn next = (recv_fn)dlsym(RTLD_NEXT, "recv");

    scan_dead_stack("the dead stack at recv()", (uintptr_t)&here);
    return next(fd, buf, len, flags);
}

#ifdef SANITIZED_ALLOCATOR
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);

static void on_malloc(const volatile void *p, size_t size)
{
    (void)p;
    (void)size;
}

/* Called before the block is released (and before realloc releases a moved block). */
static void on_free(const volatile void *p)
{
    volatile char here;

    if (armed && p != NULL)
        scan("a freed block", (const void *)p, __sanitizer_get_allocated_size(p), NULL);
    scan_dead_stack("the dead stack at free()", (uintptr_t)&here);
}

static int install_scanner(void)
{
    return __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0 ? 0 : -1;
}
#else
void __libc_free(void *p);
void *__libc_malloc(size_t n);
void *__libc_realloc(void *p, size_t n);

void free(void *p)
{
    volatile char here;

    if (armed && p != NULL)
        scan("a freed block", p, malloc_usable_size(p), __builtin_return_address(0));
    scan_dead_stack("the dead stack at free()", (uintptr_t)&here);
    __libc_free(p);
}

/* A block realloc moves is released without free(): copy it first, scan the copy if it moved. */
void *realloc(void *p, size_t n)
{
    void *copy = NULL, *q;
    size_t old = p != NULL ? malloc_usable_size(p) : 0;

    if (armed && old > 0 && (copy = __libc_malloc(old)) != NULL)
        memcpy(copy, p, old);
    q = __libc_realloc(p, n);
    if (copy != NULL) {
        if (q != p && q != NULL)
            scan("a block realloc moved", copy, old, __builtin_return_address(0));
        explicit_bzero(copy, old);
        __libc_free(copy);
    }
    return q;
}

static int install_scanner(void)
{
    return 0;
}
#endif

static int converse(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    struct pam_response *r = calloc((size_t)n, sizeof(*r));

    if (r == NULL)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
            r[i].resp = strdup(data); /* libpam overwrites it before freeing */
    }
    *resp = r;
    return PAM_SUCCESS;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode hex in place into the argument's own storage (never freed). */
static int add_hex_secret(char *hex)
{
    size_t len = strlen(hex);

    if (len == 0 || len % 2 != 0 || n_secrets == MAX_SECRETS)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        hex[i] = (char)(hi * 16 + lo);
    }
    secrets[n_secrets++] = (struct secret){(const unsigned char *)hex, len / 2};
    return 0;
}

static __attribute__((noinline)) void paint_stack(void)
{
    volatile char pad[STACK_SCAN];

    memset((char *)pad, 0, sizeof(pad));
}

static __attribute__((noinline)) int authenticate(const char *confdir, const char *service,
                                                  const char *user, char *password)
{
    struct pam_conv conv = {converse, password};
    pam_handle_t *h = NULL;
    int rc = pam_start_confdir(service, user, &conv, confdir, &h);

    if (rc != PAM_SUCCESS)
        return rc;
    rc = pam_authenticate(h, 0);
    pam_end(h, rc);
    return rc;
}

/* After pam_end: everything below this frame is dead. */
static __attribute__((noinline)) void scan_stack_after(void)
{
    volatile char here;

    scan_dead_stack("the dead stack after pam_end()", (uintptr_t)&here);
}

int main(int argc, char **argv)
{
    volatile char marker = 0;
    uintptr_t top = (uintptr_t)&marker;
    int rc;

    if (argc < 5) {
        fprintf(stderr, "usage: %s CONFDIR SERVICE USER PASSWORD [HEX_SECRET...]\n", argv[0]);
        return 2;
    }
    secrets[n_secrets++] = (struct secret){(const unsigned char *)argv[4], strlen(argv[4])};
    for (int i = 5; i < argc; i++) {
        if (add_hex_secret(argv[i]) != 0) {
            fprintf(stderr, "bad secret %s (even-length hex, at most %d)\n", argv[i], MAX_SECRETS);
            return 2;
        }
    }
    if (install_scanner() != 0) {
        fprintf(stderr, "cannot install the sanitizer free hook\n");
        return 2;
    }
    stack_bottom = top - STACK_SCAN;
    stack_copy = malloc(STACK_SCAN);
    mem_fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    if (stack_copy == NULL || mem_fd < 0) {
        perror("opening /proc/self/mem");
        return 2;
    }
    paint_stack();
    armed = 1;
    rc = authenticate(argv[1], argv[2], argv[3], argv[4]);
    scan_stack_after();
    armed = 0;
    if (pread(mem_fd, stack_copy, STACK_UNTOUCHED, (off_t)stack_bottom) != STACK_UNTOUCHED ||
        memcmp(stack_copy, stack_copy + 1, STACK_UNTOUCHED - 1) != 0 || stack_copy[0] != 0) {
        fprintf(stderr, "the login used more stack than the %d bytes painted and scanned\n",
                STACK_SCAN);
        return 2;
    }
    printf("authenticate=%d (%s)\n", rc, pam_strerror(NULL, rc));
    printf("wipe: %lu freed blocks (%lu bytes) and the dead stack %lu times scanned, "
           "%lu copies found\n",
           blocks_scanned, bytes_scanned, stack_scans, copies_found);
    if (stack_scans < 2) {
        fprintf(stderr, "the dead stack was never scanned during the login\n");
        return 2;
    }
    return copies_found == 0 ? 0 : 1;
}
