/* log.h - one-line-per-event logging to stderr (-d) or syslog(mail). */
#ifndef CHAMOIS_LOG_H
#define CHAMOIS_LOG_H

#include <stddef.h>
#include <stdnoreturn.h>

#define PRINTF(f, a) __attribute__((format(printf, f, a)))

void log_init(const char *ident, int foreground, int verbose);
int log_verbose(void);
void log_warn(const char *, ...) PRINTF(1, 2);	/* appends strerror(errno) */
void log_warnx(const char *, ...) PRINTF(1, 2);
void log_info(const char *, ...) PRINTF(1, 2);
void log_debug(const char *, ...) PRINTF(1, 2);
noreturn void fatal(const char *, ...) PRINTF(1, 2);
noreturn void fatalx(const char *, ...) PRINTF(1, 2);

/* Escape peer data for a log line into buf (always NUL-terminated). */
const char *log_escape(char *buf, size_t size, const char *in, size_t len);

#endif
