/* util.h - allocation that dies on failure, bounded strings, small helpers. */
#ifndef CHAMOIS_UTIL_H
#define CHAMOIS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "log.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) PRINTF(1, 2);

/* bsnprintf - snprintf that reports truncation as failure (false) */
bool bsnprintf(char *, size_t, const char *, ...) PRINTF(3, 4);
/* str_copy - strlcpy that reports truncation as failure (false) */
bool str_copy(char *, const char *, size_t);
void str_lower(char *);
bool str_has_prefix_ci(const char *s, const char *prefix);
/* str_trim - strip leading and trailing blanks in place; returns start */
char *str_trim(char *);
bool str_is_ascii(const char *, size_t);

/* rfc5322_date - "Mon, 23 Nov 2026 17:28:39 +0000" (local time) */
void rfc5322_date(char *out, size_t size, time_t t);

/* fd helpers */
/* write_full - all n octets, or -1 with errno set */
int write_full(int fd, const void *p, size_t n);
int fsync_dir(const char *path);
int mkdir_synced(const char *path, unsigned mode);

/* TCP_NODELAY: SMTP writes whole replies and commands, so Nagle only delays */
void tcp_nodelay(int fd);

uint64_t random_u64(void);

#endif
