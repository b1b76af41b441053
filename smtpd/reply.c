/*
 * reply.c - the only writer of replies (RFC 5321 4.2).
 *
 * Every reply goes through smtpd_reply(): it bounds the line, ends it with
 * CRLF, logs every 4xx/5xx with the command that caused it, counts errors
 * and, past max_errors, closes the session with 421 4.7.0.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "../common/limits.h"
#include "../common/util.h"
#include "session.h"

static void
reply_count(struct smtpd_session *s, const char *line)
{
	char t[LOG_ESC(REPLY_LINE_MAX)];

	if (line[0] != '4' && line[0] != '5')
		return;
	/* last_cmd is escaped already; a reply may mirror a remote's text */
	log_info("%s smtp failed-command command=\"%s\" result=\"%s\"",
	    s->idstr, s->last_cmd, log_text(t, sizeof(t), line));
	/* a 421 is our own closing (shutdown, timeout): not the client's error */
	if (strncmp(line, "421", 3) == 0)
		return;
	if (++s->errors == smtpd.cfg->max_errors && s->state != ST_CLOSING) {
		evbuffer_add_printf(bufferevent_get_output(s->bev),
		    "421 4.7.0 %s Too many errors, closing connection\r\n",
		    smtpd.cfg->hostname);
		log_info("%s smtp disconnect reason=too-many-errors", s->idstr);
		smtpd_close_after_reply(s);
	} else if (s->errors > smtpd.cfg->max_errors / 2 && s->state != ST_CLOSING)
		/*
		 * past half the limit, a misbehaving client waits a second
		 * before its next command is read (a tarpit, as Postfix's
		 * smtpd_error_sleep_time); a timer, so nobody else waits
		 */
		smtpd_tarpit(s, TARPIT_DELAY_MS);
}

/* smtpd_reply - one reply line, "NNN X.Y.Z text" */
void
smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	char line[REPLY_LINE_MAX - 1];
	va_list ap;
	int n;

	if (s->state == ST_CLOSING)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 4)
		fatalx("smtpd_reply: reply too short: \"%s\"", line);
	/* strip anything that would break the line structure */
	for (char *p = line; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", line);
	if (log_verbose()) {
		char t[LOG_ESC(REPLY_LINE_MAX)];

		log_debug("%s smtp reply \"%s\"", s->idstr,
		    log_text(t, sizeof(t), line));
	}
	reply_count(s, line);
}

/* smtpd_reply_lines - a multi-line reply: "NNN-line" ... "NNN line" */
void
smtpd_reply_lines(struct smtpd_session *s, int code, const char **lines, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "%03d%c%.*s\r\n", code,
		    i + 1 < n ? '-' : ' ', REPLY_LINE_MAX - 6, lines[i]);
}
