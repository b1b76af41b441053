/*
 * log.c - the daemon's log.
 *
 * Every line is one event.  With -d lines go to stderr with a timestamp
 * (neither time nor name under systemd, JOURNAL_STREAM set: the journal
 * stamps each line with both itself, doc/chamoisd.8 LOGGING), otherwise to syslog's mail facility.  log_warn and fatal append
 * strerror(errno); the x variants do not.  Callers put the session or queue
 * id first and key=value fields after it.  Every value from outside
 * (addresses, HELO names, user names, replies) goes through log_escape()
 * (a field value: no space, no delimiter) or log_escape_text() (quoted or
 * trailing text: spaces kept, no quote or parenthesis), so that no peer can
 * forge a field or a line (doc/security.md, "Log lines"); log_vwrite turns
 * any control character left into '?' all the same.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int log_foreground = 1;
static int log_stamp = 1;	/* 0: stderr is the journal's */
static int log_level_verbose;
static const char *log_ident = "chamois";

/* log_init - choose stderr or syslog */
void
log_init(const char *ident, int foreground, int verbose)
{
	log_ident = ident;
	log_foreground = foreground;
	log_level_verbose = verbose;
	log_stamp = getenv("JOURNAL_STREAM") == NULL;
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* log_verbose - whether -v was given */
int
log_verbose(void)
{
	return log_level_verbose;
}

static void
log_vwrite(int pri, const char *fmt, va_list ap, int err)
{
	char msg[4096];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (err && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(err));
	/* a value that missed log_escape still cannot start a line of its own */
	for (char *p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (log_foreground && !log_stamp)
		fprintf(stderr, "%s\n", msg);	/* the journal adds name[pid] */
	else if (log_foreground) {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s: %s\n", when, ts.tv_nsec / 1000000,
		    log_ident, msg);
	} else
		syslog(pri, "%s", msg);
}

#define LOG_BODY(pri, err) do {			\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_vwrite(pri, fmt, ap, err);		\
	va_end(ap);				\
} while (0)

void log_warn(const char *fmt, ...) { int e = errno; LOG_BODY(LOG_WARNING, e); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_WARNING, 0); }
void log_info(const char *fmt, ...) { LOG_BODY(LOG_INFO, 0); }

void
log_debug(const char *fmt, ...)
{
	if (log_level_verbose)
		LOG_BODY(LOG_DEBUG, 0);
}

void
fatal(const char *fmt, ...)
{
	int e = errno;

	LOG_BODY(LOG_CRIT, e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 0);
	exit(1);
}

/*
 * escape - copy in[0..len) to buf, each byte of keep-set as it is and every
 * other one as \xHH; "..." marks a cut when buf is too small.  Always
 * NUL-terminated.
 */
static const char *
escape(char *buf, size_t size, const char *in, size_t len, const char *also)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	if (size == 0)
		return buf;
	if (in == NULL)
		in = "", len = 0;
	for (i = 0; i < len && o + 5 < size; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c > 0x20 && c < 0x7f && strchr(also, c) == NULL) {
			buf[o++] = (char)c;
		} else if (c == ' ' && strchr(also, ' ') == NULL) {
			buf[o++] = ' ';
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (i < len && o + 3 < size) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/*
 * log_escape - a field value (key=VALUE, key=<VALUE>): printable ASCII but
 * space " ( ) < > \ stays, everything else becomes \xHH, so the value can
 * neither end its own field nor its line (doc/security.md, "Log lines")
 */
const char *
log_escape(char *buf, size_t size, const char *in, size_t len)
{
	return escape(buf, size, in, len, " \"()<>\\");
}

/*
 * log_escape_text - text in key="TEXT" or a trailing (TEXT): spaces stay,
 * " ( ) \ and every byte outside printable ASCII become \xHH
 */
const char *
log_escape_text(char *buf, size_t size, const char *in, size_t len)
{
	return escape(buf, size, in, len, "\"()\\");
}

/* log_field, log_text - the same for a string; NULL gives "" */
const char *
log_field(char *buf, size_t size, const char *s)
{
	return log_escape(buf, size, s, s ? strlen(s) : 0);
}

const char *
log_text(char *buf, size_t size, const char *s)
{
	return log_escape_text(buf, size, s, s ? strlen(s) : 0);
}

/* reply_dsn - X.Y.Z of "NNN X.Y.Z text", else the class of its first digit */
static void
reply_dsn(const char *reply, char *dsn, size_t size)
{
	const char *p = reply ? reply : "";
	size_t n = 0;

	if (strlen(p) > 4 && (p[3] == ' ' || p[3] == '-') && p[4] >= '2' &&
	    p[4] <= '5' && p[5] == '.') {
		n = strspn(p + 4, "0123456789.");
		if (n >= 5 && n < size && p[4] == p[0]) {
			memcpy(dsn, p + 4, n);
			dsn[n] = '\0';
			return;
		}
	}
	snprintf(dsn, size, "%c.0.0", p[0] >= '2' && p[0] <= '5' ? p[0] : '4');
}

/* log_outcome - see log.h */
void
log_outcome(const char *id, const char *to, const char *relay, time_t since,
    const char *dsn, const char *status, const char *reply)
{
	char f[LOG_ESC(256)], t[LOG_ESC(512)], d[LOG_ESC(16)], code[16];
	time_t now = time(NULL);

	if (dsn == NULL || dsn[0] == '\0') {
		reply_dsn(reply, code, sizeof(code));
		dsn = code;
	}
	dsn = log_field(d, sizeof(d), dsn);
	log_info("%s to=<%s> relay=%s delay=%lld dsn=%s status=%s (%s)", id,
	    log_field(f, sizeof(f), to), relay,
	    (long long)(since > 0 && now > since ? now - since : 0), dsn, status,
	    log_text(t, sizeof(t), reply));
}

/* log_relay - see log.h; addr "[IP]:PORT" or "IP:PORT" */
const char *
log_relay(char *buf, size_t size, const char *host, const char *addr)
{
	char h[LOG_ESC(255)], a[LOG_ESC(63)], ip[64];
	const char *port = addr ? strrchr(addr, ':') : NULL;

	if (addr == NULL || addr[0] == '[' || port == NULL) {
		snprintf(buf, size, "%s%s", log_field(h, sizeof(h), host),
		    log_field(a, sizeof(a), addr));
		return buf;
	}
	/* "IP:PORT" (IPv4) as "[IP]:PORT" */
	snprintf(ip, sizeof(ip), "[%.*s]%s", (int)(port - addr), addr, port);
	snprintf(buf, size, "%s%s", log_field(h, sizeof(h), host),
	    log_field(a, sizeof(a), ip));
	return buf;
}
