/*
 * util.c - the small helpers every module needs: x* allocation that dies
 * on failure, string copies whose truncation is an error, the one write
 * loop and directory syncs, the header-field name of RFC 5322.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "util.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatal("malloc");
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatal("calloc");
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		fatalx("xreallocarray: overflow");
	p = realloc(p, n * size > 0 ? n * size : 1);
	if (p == NULL)
		fatal("realloc");
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatal("strdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		fatal("strndup");
	return p;
}

char *
xvasprintf(size_t *len, const char *fmt, va_list ap)
{
	char *p;
	int r = vasprintf(&p, fmt, ap);

	if (r < 0)
		fatal("vasprintf");
	if (len)
		*len = (size_t)r;
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(NULL, fmt, ap);
	va_end(ap);
	return p;
}

void
strbuf_add(struct strbuf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;

		while (b->len + n + 1 > cap)
			cap *= 2;
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	size_t n;

	va_start(ap, fmt);
	s = xvasprintf(&n, fmt, ap);
	va_end(ap);
	strbuf_add(b, s, n);
	free(s);
}

bool
bsnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return r >= 0 && (size_t)r < size;
}

bool
str_copy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size == 0)
		return false;
	if (n >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return false;
	}
	memcpy(dst, src, n + 1);
	return true;
}

void
str_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* hex_digit - see util.h */
int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool
str_has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

char *
str_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
	    e[-1] == '\n'))
		*--e = '\0';
	return s;
}

bool
str_is_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

int
write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

size_t
header_field_name(const char *line, size_t n)
{
	size_t i = 0, name;

	while (i < n && line[i] >= 33 && line[i] <= 126 && line[i] != ':')
		i++;
	name = i;
	while (i < n && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (name == 0 || i == n || line[i] != ':')
		return 0;
	return name;
}

bool
header_field_is(const char *line, size_t n, const char *name)
{
	size_t len = strlen(name);

	return len > 0 && header_field_name(line, n) == len &&
	    strncasecmp(line, name, len) == 0;
}

/*
 * rfc5322_date - RFC 5322 3.3 date-time of t in the local time zone; the
 * names are spelled here, not taken from the locale
 */
void
rfc5322_date(char *out, size_t size, time_t t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	char zone[8];
	long off;

	if (localtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
		tm.tm_gmtoff = 0;
	}
	off = tm.tm_gmtoff / 60;
	snprintf(zone, sizeof(zone), "%c%02ld%02ld", off < 0 ? '-' : '+',
	    (off < 0 ? -off : off) / 60 % 100, (off < 0 ? -off : off) % 60);
	snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d %s",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
}

/* fsync_dir - make a directory's entries durable */
int
fsync_dir(const char *path)
{
	int fd, r, e;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	e = errno;
	close(fd);
	errno = e;
	return r;
}

/*
 * mkdir_synced - mkdir -p whose every new directory is synced, and so is
 * the parent that gained it, before it returns.
 */
int
mkdir_synced(const char *path, unsigned mode)
{
	char parent[4096], tmp[4096];
	struct stat st;

	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : (errno = ENOTDIR, -1);
	if (errno != ENOENT)
		return -1;
	if (!str_copy(tmp, path, sizeof(tmp)))
		return (errno = ENAMETOOLONG, -1);
	str_copy(parent, dirname(tmp), sizeof(parent));
	if (strcmp(parent, path) != 0 && mkdir_synced(parent, mode) == -1)
		return -1;
	if (mkdir(path, mode) == -1 && errno != EEXIST)
		return -1;
	if (fsync_dir(path) == -1 || fsync_dir(parent) == -1)
		return -1;
	return 0;
}

uint64_t
random_u64(void)
{
	uint64_t v;

	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		fatalx("RAND_bytes failed");
	return v;
}

void
tcp_nodelay(int fd)
{
	int one = 1;

	/* best effort: a failure only costs latency */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
