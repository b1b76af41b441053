/* log.h - one-line-per-event logging to stderr (-d) or syslog(mail). */
#ifndef CHAMOIS_LOG_H
#define CHAMOIS_LOG_H

#include <stddef.h>
#include <stdnoreturn.h>
#include <time.h>

#define PRINTF(f, a) __attribute__((format(printf, f, a)))

void log_init(const char *ident, int foreground, int verbose);
int log_verbose(void);
void log_warn(const char *, ...) PRINTF(1, 2);	/* appends strerror(errno) */
void log_warnx(const char *, ...) PRINTF(1, 2);
void log_info(const char *, ...) PRINTF(1, 2);
void log_debug(const char *, ...) PRINTF(1, 2);
noreturn void fatal(const char *, ...) PRINTF(1, 2);
noreturn void fatalx(const char *, ...) PRINTF(1, 2);

/*
 * Escape outside data for a log line into buf (always NUL-terminated, cut
 * with "..." when buf is small; 4 bytes per input byte fit all).
 * log_escape: a field value (key=VALUE, key=<VALUE>): printable ASCII but
 * space " ( ) < > \ kept, the rest \xHH.  log_escape_text: text in
 * key="TEXT" or a trailing (TEXT): the same, but spaces kept and < > too.
 * log_field / log_text take a string (NULL: "").
 */
#define LOG_ESC(n)	(4 * (size_t)(n) + 4)	/* buffer that fits n bytes escaped */
const char *log_escape(char *buf, size_t size, const char *in, size_t len);
const char *log_escape_text(char *buf, size_t size, const char *in, size_t len);
const char *log_field(char *buf, size_t size, const char *s);
const char *log_text(char *buf, size_t size, const char *s);

/*
 * log_outcome - the one line of a recipient's outcome (doc/chamoisd.8
 * LOGGING): "ID to=<TO> relay=RELAY delay=N dsn=X.Y.Z status=STATUS
 * (REPLY)".  to and reply are escaped here; relay is "local", "none" or
 * one made by log_relay; delay counts from since; dsn NULL: the reply's
 * enhanced code, else its class (X.0.0) from the first digit.
 */
void log_outcome(const char *id, const char *to, const char *relay,
    time_t since, const char *dsn, const char *status, const char *reply);
/* log_relay - "HOST[IP]:PORT" from a host name (escaped) and "[IP]:PORT" */
const char *log_relay(char *buf, size_t size, const char *host,
    const char *addr);
#define LOG_RELAY_MAX	(LOG_ESC(255) + 64)

#endif
