/* util.h - allocation that dies on failure, bounded strings, small helpers. */
#ifndef CHAMOIS_UTIL_H
#define CHAMOIS_UTIL_H

#include <stdarg.h>
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
/*
 * xvasprintf - vasprintf that dies on failure: the formatted string, to
 * free(); *len (may be NULL) gets its length.  The one place a string of
 * unknown length is formatted (xasprintf and strbuf_printf use it).
 */
char *xvasprintf(size_t *len, const char *, va_list) PRINTF(2, 0);

/*
 * strbuf - a growing string: zero it to start, append, take p (NUL
 * terminated once anything was added; free() it).  The one builder of
 * text of unknown length (bounces, queue records).
 */
struct strbuf {
	char *p;
	size_t len, cap;
};

void strbuf_add(struct strbuf *, const void *, size_t);
void strbuf_printf(struct strbuf *, const char *, ...) PRINTF(2, 3);

/* bsnprintf - snprintf that reports truncation as failure (false) */
bool bsnprintf(char *, size_t, const char *, ...) PRINTF(3, 4);
/* str_copy - strlcpy that reports truncation as failure (false) */
bool str_copy(char *, const char *, size_t);
void str_lower(char *);
bool str_has_prefix_ci(const char *s, const char *prefix);
/* hex_digit - the value of a hexadecimal digit (either case), -1 if c is none */
int hex_digit(char c);
/* str_trim - strip leading and trailing blanks in place; returns start */
char *str_trim(char *);
bool str_is_ascii(const char *, size_t);

/*
 * header_field_name - the length of the field name when line[0..n) (its
 * LF excluded) starts a header field: printable US-ASCII but ':' (RFC
 * 5322 3.6.8), the obsolete blanks before the colon (RFC 5322 4.5.3),
 * then ':'; 0 when the line is no field's start (a continuation line, the
 * empty line, body text).  Pure: every reader of header sections (smtpd/
 * loop detection, queue/ fixes, bounces, chamois-sendmail) uses it.
 */
size_t header_field_name(const char *line, size_t n);
/* header_field_is - line[0..n) starts a header field called name (any case) */
bool header_field_is(const char *line, size_t n, const char *name);

/* rfc5322_date - "Mon, 23 Nov 2026 17:28:39 +0000" (local time) */
void rfc5322_date(char *out, size_t size, time_t t);

/* fd helpers */
/*
 * write_full - all n octets, across short writes and EINTR, or -1 with
 * errno set: the one write loop (files, pipes and sockets; a program that
 * writes to a socket ignores SIGPIPE, so a peer gone is EPIPE)
 */
int write_full(int fd, const void *p, size_t n);
int fsync_dir(const char *path);
int mkdir_synced(const char *path, unsigned mode);

/* TCP_NODELAY: SMTP writes whole replies and commands, so Nagle only delays */
void tcp_nodelay(int fd);

uint64_t random_u64(void);

#endif
