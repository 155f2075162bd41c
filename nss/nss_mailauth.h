/* The entry points of libnss_mailauth.so.2 (glibc calls them by name; tests call them
 * directly). */
#ifndef MAILAUTH_NSS_H
#define MAILAUTH_NSS_H

#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stddef.h>

enum nss_status _nss_mailauth_getpwnam_r(const char *name, struct passwd *pw, char *buf,
                                         size_t buflen, int *errnop);
enum nss_status _nss_mailauth_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t buflen,
                                         int *errnop);
enum nss_status _nss_mailauth_setpwent(int stayopen);
enum nss_status _nss_mailauth_getpwent_r(struct passwd *pw, char *buf, size_t buflen, int *errnop);
enum nss_status _nss_mailauth_endpwent(void);
enum nss_status _nss_mailauth_getgrnam_r(const char *name, struct group *gr, char *buf,
                                         size_t buflen, int *errnop);
enum nss_status _nss_mailauth_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t buflen,
                                         int *errnop);
enum nss_status _nss_mailauth_setgrent(int stayopen);
enum nss_status _nss_mailauth_getgrent_r(struct group *gr, char *buf, size_t buflen, int *errnop);
enum nss_status _nss_mailauth_endgrent(void);
enum nss_status _nss_mailauth_initgroups_dyn(const char *user, gid_t group, long int *start,
                                             long int *size, gid_t **groupsp, long int limit,
                                             int *errnop);

#ifdef MAILAUTH_NSS_TESTING
extern const char *nss_mailauth_test_path; /* the registry */
extern const char *nss_mailauth_test_sshd; /* the program that gets first-login entries */
#endif

#endif
