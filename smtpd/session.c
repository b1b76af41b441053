/*
 * session.c - the life of one SMTP connection.
 *
 * A session is a bufferevent (plain, or OpenSSL after STARTTLS or on the
 * submissions role) and an explicit state (enum smtpd_state), entered only
 * through smtpd_enter_state().  Input is read line by line and handed to
 * the command dispatcher (commands.c), or to the DATA scanner while a
 * message arrives.  While a message is being stored the session stops
 * reading, so pipelined commands wait their turn and replies stay in
 * order.  A session is freed at once when it closes: a worker job that
 * works for it keeps its id and finds it with smtpd_session_find() (or
 * finds it gone) when it is done.
 *
 * End of input (doc/protocol.md, "Ending a session"): EOF from the client
 * means "no more commands", not "gone": what is buffered is still
 * processed, every reply owed (after a Maildir sync, a forward's remote
 * reply, a queue commit) is sent, then the session closes; EOF inside DATA
 * abandons the transaction.  A write the socket refuses (the client reset
 * the connection) ends the session at once: nothing owed can reach it any
 * more.  A TLS session ends with our close_notify.  A
 * client that does not read its replies is not read either once
 * SESSION_WRITE_HIWAT octets wait for it (doc/security.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "../common/hmap.h"
#include "../common/limits.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "session.h"

struct smtpd_daemon smtpd;

/* input buffered per session before it is processed */
#define SESSION_READ_HIWAT	(64 * 1024)
/*
 * replies not yet read by the client (TLS layer included) past which its
 * input is not read, until they drain below the low mark (doc/protocol.md,
 * "Limits")
 */
#define SESSION_WRITE_HIWAT	(64 * 1024)
#define SESSION_WRITE_LOWAT	(16 * 1024)

static void session_read_cb(struct bufferevent *, void *);
static void session_write_cb(struct bufferevent *, void *);
static void session_event_cb(struct bufferevent *, short, void *);
static void session_free(struct smtpd_session *);
static void session_input(struct smtpd_session *);
static void wire_cb(struct evbuffer *, const struct evbuffer_cb_info *, void *);
static void life_cb(evutil_socket_t, short, void *);

const char *
smtpd_strstate(enum smtpd_state st)
{
	switch (st) {
	case ST_CONNECTED:	return "connected";
	case ST_HELO:		return "helo";
	case ST_MAIL:		return "mail";
	case ST_RCPT:		return "rcpt";
	case ST_DATA:		return "data";
	case ST_DELIVER:	return "deliver";
	case ST_TLS:		return "tls";
	case ST_WAIT:		return "wait";
	case ST_AUTH:		return "auth";
	case ST_CLOSING:	return "closing";
	}
	return "?";
}

/* smtpd_enter_state - every state change goes through here */
void
smtpd_enter_state(struct smtpd_session *s, enum smtpd_state st)
{
	log_debug("%s smtp state %s -> %s", s->idstr, smtpd_strstate(s->state),
	    smtpd_strstate(st));
	s->state = st;
}

static void
session_setup_bev(struct smtpd_session *s)
{
	struct timeval tv = { smtpd.cfg->smtp_timeout, 0 };

	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_READ_HIWAT);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* life_start - from now on the session may last session_timeout */
static void
life_start(struct smtpd_session *s)
{
	struct timeval tv = { smtpd.cfg->session_timeout, 0 };

	s->greeted = true;
	evtimer_add(s->life_timer, &tv);
}

/*
 * life_cb - the greeting delay is over (greet, unless the client talked
 * first), or the session has lasted session_timeout (close it)
 */
static void
life_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;

	if (!s->greeted) {
		size_t early = evbuffer_get_length(bufferevent_get_input(s->bev));

		if (early > 0) {
			log_info("%s smtp disconnect reason=early-talker octets=%zu",
			    s->idstr, early);
			str_copy(s->last_cmd, "(talked before the greeting)",
			    sizeof(s->last_cmd));
			smtpd_reply(s, "554 5.5.1 %s You talked before my greeting "
			    "(RFC 5321 4.3.1)", smtpd.cfg->hostname);
			smtpd_close_after_reply(s);
			return;
		}
		life_start(s);
		smtpd_greet(s);
		session_input(s);
		return;
	}
	if (s->state == ST_CLOSING)
		return;
	log_info("%s smtp disconnect reason=session-timeout state=%s", s->idstr,
	    smtpd_strstate(s->state));
	if (s->state == ST_WAIT || s->state == ST_DELIVER) {
		/* a reply is on its way: give it the usual idle time */
		struct timeval tv = { smtpd.cfg->smtp_timeout, 0 };

		evtimer_add(s->life_timer, &tv);
		return;
	}
	smtpd_reply(s, "421 4.4.2 %s Session too long, closing connection",
	    smtpd.cfg->hostname);
	smtpd_close_after_reply(s);
}

static void
refuse_fd(int fd, const char *line)
{
	ssize_t r = write(fd, line, strlen(line));

	(void)r;
	close(fd);
}

void
smtpd_session_new(int fd, const struct sockaddr *sa, socklen_t salen,
    enum listen_role role)
{
	struct smtpd_session *s;
	char key[64];

	if (smtpd.stopping) {
		refuse_fd(fd, "421 4.3.2 Service shutting down\r\n");
		return;
	}
	if (smtpd.nsessions >= smtpd.cfg->max_connections) {
		log_warnx("smtp refused reason=max-connections");
		refuse_fd(fd, "421 4.7.0 Too many connections, try again later\r\n");
		return;
	}
	if (!smtpd_addr_admit(sa, key, sizeof(key))) {
		log_warnx("smtp refused address=%s reason=max-connections-per-address",
		    key);
		refuse_fd(fd, "421 4.7.0 Too many connections from your address\r\n");
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->cfg = config_ref(smtpd.cfg);
	s->id = random_u64();
	snprintf(s->idstr, sizeof(s->idstr), "%016llx", (unsigned long long)s->id);
	s->role = role;
	memcpy(&s->peer, sa, salen < sizeof(s->peer) ? salen : sizeof(s->peer));
	str_copy(s->addr_key, key, sizeof(s->addr_key));
	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    s->peer_text, sizeof(s->peer_text));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    s->peer_text, sizeof(s->peer_text));
	{
		struct sockaddr_storage me;
		socklen_t mel = sizeof(me);
		char ip[INET6_ADDRSTRLEN] = "";
		unsigned port = 0;

		if (getsockname(fd, (struct sockaddr *)&me, &mel) == 0) {
			if (me.ss_family == AF_INET6) {
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&me)->sin6_addr,
				    ip, sizeof(ip));
				port = ntohs(((struct sockaddr_in6 *)&me)->sin6_port);
			} else {
				inet_ntop(AF_INET, &((struct sockaddr_in *)&me)->sin_addr,
				    ip, sizeof(ip));
				port = ntohs(((struct sockaddr_in *)&me)->sin_port);
			}
		}
		snprintf(s->local_text, sizeof(s->local_text), "%s;%u", ip, port);
		snprintf(s->remote_text, sizeof(s->remote_text), "%s;%u",
		    s->peer_text, sa->sa_family == AF_INET6 ?
		    ntohs(((const struct sockaddr_in6 *)sa)->sin6_port) :
		    ntohs(((const struct sockaddr_in *)sa)->sin_port));
	}
	TAILQ_INSERT_TAIL(&smtpd.sessions, s, entry);
	smtpd.nsessions++;
	if (smtpd.by_id == NULL)
		smtpd.by_id = hmap_new();
	hmap_put(smtpd.by_id, s->idstr, s);
	log_info("%s smtp connected address=%s role=%s", s->idstr, s->peer_text,
	    config_role_name(role));
	s->checks = smtpd_checks[role];
	if (s->checks && s->checks->connect)
		s->checks->connect(s);
	s->filters = smtpd_filters[role];
	if (s->filters && s->filters->connect)
		s->filters->connect(s);

	if (role == ROLE_SUBMISSIONS) {
		SSL *ssl = SSL_new(smtpd.tls_sub);

		if (ssl == NULL)
			fatalx("SSL_new");
		s->bev = bufferevent_openssl_socket_new(smtpd.base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		s->state = ST_TLS;
	} else {
		s->bev = bufferevent_socket_new(smtpd.base, fd,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		s->state = ST_CONNECTED;
	}
	if (s->bev == NULL)
		fatalx("bufferevent_socket_new");
	session_setup_bev(s);
	/* the bottom buffer stays the same through STARTTLS */
	s->wire = bufferevent_get_output(s->bev);
	evbuffer_add_cb(s->wire, wire_cb, s);
	s->life_timer = evtimer_new(smtpd.base, life_cb, s);
	if (s->state == ST_CONNECTED && role == ROLE_MX && smtpd.cfg->greeting_delay) {
		/* RFC 5321 4.3.1: the client waits for the greeting; spam engines don't */
		struct timeval tv = { smtpd.cfg->greeting_delay, 0 };

		evtimer_add(s->life_timer, &tv);
		return;
	}
	life_start(s);
	if (s->state == ST_CONNECTED)
		smtpd_greet(s);
}

/*
 * smtpd_start_tls - after "220 2.0.0 Ready to start TLS" is queued: drop
 * whatever the client pipelined behind STARTTLS (it must never be executed
 * as if it came over TLS) and layer OpenSSL over the connection.
 */
void
smtpd_start_tls(struct smtpd_session *s)
{
	struct bufferevent *tls;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t junk = evbuffer_get_length(in);
	SSL *ssl;

	if (junk > 0) {
		log_info("%s smtp discarded-after-starttls octets=%zu", s->idstr, junk);
		evbuffer_drain(in, junk);
	}
	ssl = SSL_new(s->role == ROLE_MX ? smtpd.tls_mx : smtpd.tls_sub);
	if (ssl == NULL)
		fatalx("SSL_new");
	tls = bufferevent_openssl_filter_new(smtpd.base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tls == NULL)
		fatalx("bufferevent_openssl_filter_new");
	s->bev = tls;
	smtpd_enter_state(s, ST_TLS);
	session_setup_bev(s);
}

static void
tls_established(struct smtpd_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	s->flags |= SF_TLS;
	metrics_tls(true, SSL_get_version(ssl));
	snprintf(s->tls_info, sizeof(s->tls_info), "%s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	log_info("%s smtp tls version=%s cipher=%s", s->idstr,
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	/* RFC 3207 4.2: forget everything learnt before TLS, HELO included */
	s->helo[0] = '\0';
	s->flags &= ~SF_EHLO;
	smtpd_enter_state(s, ST_CONNECTED);
	if (s->role == ROLE_SUBMISSIONS)
		smtpd_greet(s);
}

static void
tarpit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;

	s->flags &= ~SF_TARPIT;
	smtpd_resume(s);
}

/* smtpd_tarpit - read nothing from s for ms milliseconds */
void
smtpd_tarpit(struct smtpd_session *s, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (s->tarpit_timer == NULL)
		s->tarpit_timer = evtimer_new(smtpd.base, tarpit_cb, s);
	s->flags |= SF_TARPIT;
	evtimer_add(s->tarpit_timer, &tv);
	log_info("%s smtp tarpit delay=%ums errors=%u", s->idstr, ms, s->errors);
}

/* line_is_auth - the buffered line is an AUTH command */
static bool
line_is_auth(struct evbuffer *in)
{
	char head[5];

	return evbuffer_copyout(in, head, sizeof(head)) == (ev_ssize_t)sizeof(head) &&
	    strncasecmp(head, "AUTH ", 5) == 0;
}

/*
 * state_holds_input - a step is on its way (a delivery, a remote or AUTH
 * answer, the TLS handshake, the last reply): no line is read meanwhile
 */
static bool
state_holds_input(enum smtpd_state st)
{
	return st == ST_DELIVER || st == ST_WAIT || st == ST_TLS ||
	    st == ST_CLOSING;
}

/* session_unsent - reply octets the client has not taken yet */
static size_t
session_unsent(struct smtpd_session *s)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));

	if (s->wire != bufferevent_get_output(s->bev))
		n += evbuffer_get_length(s->wire);
	return n;
}

/*
 * session_backlogged - a client that does not read its replies is not read
 * either (doc/protocol.md, "Limits"); the write callback resumes it below
 * the low mark, and the write timeout (smtp_timeout) closes it if it never
 * reads
 */
static bool
session_backlogged(struct smtpd_session *s)
{
	size_t n = session_unsent(s);

	if (n <= SESSION_WRITE_HIWAT)
		return false;
	if (!(s->flags & SF_BACKLOG))
		log_info("%s smtp paused reason=unread-replies octets=%zu", s->idstr, n);
	s->flags |= SF_BACKLOG;
	bufferevent_disable(s->bev, EV_READ);
	return true;
}

/*
 * session_at_eof - the client sent all it will send and its complete
 * commands are processed: close once the replies owed are out, unless a
 * step (delivery, remote, tarpit, a paused client) is still going on
 */
static void
session_at_eof(struct smtpd_session *s)
{
	if (s->bev == NULL ||
	    (s->flags & (SF_PAUSED | SF_TARPIT | SF_BACKLOG)) ||
	    state_holds_input(s->state))
		return;
	log_info("%s smtp disconnect reason=eof state=%s", s->idstr,
	    smtpd_strstate(s->state));
	/* in DATA the message is incomplete: the transaction goes with the session */
	smtpd_close_after_reply(s);
}

/* session_input - process what has arrived, as far as the state allows */
static void session_lines(struct smtpd_session *);

static void
session_input(struct smtpd_session *s)
{
	session_lines(s);
	if (s->flags & SF_EOF)
		session_at_eof(s);
}

static void
session_lines(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	for (;;) {
		char *line;
		size_t len, limit;
		bool auth;

		if ((s->flags & (SF_PAUSED | SF_TARPIT | SF_BACKLOG)) || !s->greeted)
			return;
		if (s->state != ST_CLOSING && session_backlogged(s))
			return;
		if (s->state == ST_DATA) {
			smtpd_data_input(s);
			if (s->state == ST_DATA)
				return;
			continue;
		}
		if (state_holds_input(s->state))
			return;
		if (s->flags & SF_DISCARD) {
			struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);

			if (p.pos == -1) {
				evbuffer_drain(in, evbuffer_get_length(in));
				return;
			}
			evbuffer_drain(in, (size_t)p.pos + 1);
			s->flags &= ~SF_DISCARD;
			continue;
		}
		/*
		 * RFC 5321 4.5.3.1.4: command lines of 512 octets (2048 here);
		 * RFC 4954 4: AUTH and its responses up to 12288
		 */
		auth = s->state == ST_AUTH || line_is_auth(in);
		limit = auth ? AUTH_LINE_MAX : COMMAND_LINE_MAX;
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL && evbuffer_get_length(in) <= limit)
			return;
		if (line == NULL || len > limit) {
			/* one reply for the whole line, however long */
			if (line == NULL)
				s->flags |= SF_DISCARD;
			free(line);
			str_copy(s->last_cmd, "(line too long)", sizeof(s->last_cmd));
			if (s->state == ST_AUTH && smtpd_auth && smtpd_auth->abort)
				smtpd_auth->abort(s);
			smtpd_reply(s, auth ? "500 5.5.6 Authentication exchange line "
			    "is too long" : "500 5.5.2 Line too long (RFC 5321 "
			    "4.5.3.1.4)");
			continue;
		}
		if (s->state == ST_AUTH && smtpd_auth && smtpd_auth->line)
			smtpd_auth->line(s, line, len);
		else
			smtpd_command(s, line, len);
		free(line);
	}
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	session_input(arg);
}

/*
 * smtpd_resume - go on with pipelined input after an asynchronous step;
 * deferred, so that a step that finishes at once never nests the input
 * loop inside itself
 */
void
smtpd_resume(struct smtpd_session *s)
{
	if (s->bev)
		bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
		    BEV_TRIG_DEFER_CALLBACKS);
}

/* wire_cb - the output nearest the socket shrank: maybe resume or close */
static void
wire_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct smtpd_session *s = arg;

	if (info->n_deleted > 0 && s->bev &&
	    (s->flags & SF_BACKLOG || s->state == ST_CLOSING))
		bufferevent_trigger(s->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS |
		    BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * session_write_cb - replies are leaving: a client paused for not reading
 * is read again below the low mark; a closing session ends its TLS with a
 * close_notify (RFC 8446 6.1; bufferevent_openssl sends none when freed)
 * and is freed once everything has left, through the TLS layer's own
 * buffer too.
 */
static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;

	if ((s->flags & SF_BACKLOG) && session_unsent(s) <= SESSION_WRITE_LOWAT) {
		s->flags &= ~SF_BACKLOG;
		if (!(s->flags & SF_EOF))
			bufferevent_enable(bev, EV_READ);
		smtpd_resume(s);
	}
	if (s->state != ST_CLOSING || session_unsent(s) > 0)
		return;
	if ((s->flags & (SF_TLS | SF_TLS_CLOSED)) == SF_TLS) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);

		s->flags |= SF_TLS_CLOSED;
		/* best effort: a full socket buffer just loses the alert */
		if (ssl && SSL_shutdown(ssl) < 0)
			ERR_clear_error();
		if (session_unsent(s) > 0)
			return;		/* the alert is in the TLS layer's buffer */
	}
	session_free(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtpd_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == ST_TLS)
			tls_established(s);
		session_input(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == ST_CLOSING) {
			session_free(s);
			return;
		}
		log_info("%s smtp disconnect reason=timeout state=%s", s->idstr,
		    smtpd_strstate(s->state));
		if (s->state != ST_TLS) {
			smtpd_reply(s, "421 4.4.2 %s Timeout, closing connection",
			    smtpd.cfg->hostname);
			smtpd_close_after_reply(s);
			bufferevent_enable(bev, EV_WRITE);
			return;
		}
		session_free(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (e) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			log_info("%s smtp disconnect reason=tls-error error=\"%s\"",
			    s->idstr, buf);
		} else
			log_info("%s smtp disconnect reason=io-error error=\"%s\"",
			    s->idstr, strerror(EVUTIL_SOCKET_ERROR()));
		session_free(s);
		return;
	}
	if (what & BEV_EVENT_WRITING) {
		/*
		 * bufferevent_openssl, allowed a dirty shutdown, reports a write
		 * that the closed socket refused (EPIPE, ECONNRESET) as an EOF
		 * while writing: no reply can reach the client any more, and
		 * waiting for the output to drain would retry that write forever
		 */
		log_info("%s smtp disconnect reason=io-error error=\"connection "
		    "closed by the client\" state=%s", s->idstr,
		    smtpd_strstate(s->state));
		session_free(s);
		return;
	}
	if (s->greeted && s->state != ST_TLS) {
		/* a half-close ends the commands, not the replies
		 * (doc/protocol.md, "Ending a session") */
		s->flags |= SF_EOF;
		if (s->state == ST_CLOSING) {
			bufferevent_enable(bev, EV_WRITE);
			session_write_cb(bev, s);
			return;
		}
		/* an OpenSSL bufferevent stops writing at EOF */
		bufferevent_enable(bev, EV_WRITE);
		session_input(s);
		return;
	}
	log_info("%s smtp disconnect reason=eof state=%s", s->idstr,
	    smtpd_strstate(s->state));
	session_free(s);
}

/* smtpd_close_after_reply - stop reading; close once the output drains */
void
smtpd_close_after_reply(struct smtpd_session *s)
{
	if (s->state == ST_CLOSING)
		return;
	smtpd_enter_state(s, ST_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	/* never free here: callers still hold s; the write callback frees */
	bufferevent_trigger(s->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS |
	    BEV_TRIG_DEFER_CALLBACKS);
}

void
smtpd_tx_free(struct smtpd_tx *tx)
{
	if (tx == NULL)
		return;
	for (size_t i = 0; i < tx->nrcpts; i++) {
		free(tx->rcpts[i]);
		free(tx->orcpt[i]);
	}
	free(tx->rcpts);
	free(tx->orcpt);
	free(tx->notify);
	for (size_t i = 0; i < tx->nmailboxes; i++)
		free(tx->mailboxes[i]);
	free(tx->mailboxes);
	if (tx->pending) {
		free(tx->pending->shown);
		expansion_free(&tx->pending->exp);
		free(tx->pending);
	}
	free(tx->checking);
	free(tx->filtering);
	free(tx->head);
	header_scanner_free(&tx->hdr);
	body_free(&tx->body);
	free(tx->received);
	free(tx->auth_results);
	free(tx);
}

/* smtpd_session_count - sessions open (chamoisd asks it before exiting) */
unsigned
smtpd_session_count(void)
{
	return smtpd.nsessions;
}

/*
 * session_free - close the connection and free the session; every route
 * it used and the auth ops let go of their state first.  A job still
 * working for it finds it gone (smtpd_session_find).
 */
static void
session_free(struct smtpd_session *s)
{
	smtpd_routes_free(s);
	if (s->checks && s->checks->free)
		s->checks->free(s);
	if (s->filters && s->filters->free)
		s->filters->free(s);
	if (smtpd_auth && smtpd_auth->free)
		smtpd_auth->free(s);
	if (s->life_timer)
		event_free(s->life_timer);
	if (s->tarpit_timer)
		event_free(s->tarpit_timer);
	/* libevent may still write from it after the free below */
	evbuffer_remove_cb(s->wire, wire_cb, s);
	bufferevent_free(s->bev);
	s->bev = NULL;
	TAILQ_REMOVE(&smtpd.sessions, s, entry);
	smtpd.nsessions--;
	hmap_del(smtpd.by_id, s->idstr);
	smtpd_addr_release(s->addr_key);
	log_debug("%s smtp closed", s->idstr);
	smtpd_tx_free(s->tx);
	free(s->user);
	config_free(s->cfg);
	free(s);
}

/*
 * smtpd_sessions_stop - SIGTERM: idle sessions get 421 now; a session in a
 * transaction finishes it first (commands.c checks SF_STOP).
 */
void
smtpd_sessions_stop(void)
{
	struct smtpd_session *s, *next;

	smtpd.stopping = true;	/* new connections get 421 */
	for (s = TAILQ_FIRST(&smtpd.sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		s->flags |= SF_STOP;
		switch (s->state) {
		case ST_CONNECTED:
		case ST_HELO:
			smtpd_reply(s, "421 4.3.2 %s Service shutting down",
			    smtpd.cfg->hostname);
			smtpd_close_after_reply(s);
			break;
		case ST_TLS:
			session_free(s);
			break;
		default:
			break;
		}
	}
}

/* smtpd_sessions_kill - the grace period is over: close what is left */
void
smtpd_sessions_kill(void)
{
	struct smtpd_session *s, *next;

	for (s = TAILQ_FIRST(&smtpd.sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		log_info("%s smtp disconnect reason=shutdown state=%s", s->idstr,
		    smtpd_strstate(s->state));
		session_free(s);
	}
}

/* smtpd_configure - see smtpd.h */
void
smtpd_configure(struct config *c, struct tables *t, SSL_CTX *mx, SSL_CTX *sub)
{
	struct config *old = smtpd.cfg;

	smtpd.cfg = c ? config_ref(c) : NULL;
	if (old != NULL)
		config_free(old);
	smtpd.tables = t;
	if (mx)
		SSL_CTX_up_ref(mx);
	if (sub)
		SSL_CTX_up_ref(sub);
	SSL_CTX_free(smtpd.tls_mx);
	SSL_CTX_free(smtpd.tls_sub);
	smtpd.tls_mx = mx;
	smtpd.tls_sub = sub;
}

const struct tables *
smtpd_tables(void)
{
	smtpd_loop_only();
	return smtpd.tables;
}

struct smtpd_session *
smtpd_session_find(uint64_t id)
{
	char key[17];

	smtpd_loop_only();
	if (smtpd.by_id == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%016llx", (unsigned long long)id);
	return hmap_get(smtpd.by_id, key);
}

uint64_t
smtpd_session_id(const struct smtpd_session *s)
{
	return s->id;
}

void
smtpd_init(struct event_base *base)
{
	smtpd.base = base;
	TAILQ_INIT(&smtpd.sessions);
	smtpd.per_addr = hmap_new();
	smtpd.by_id = hmap_new();
}

void
smtpd_shutdown(void)
{
	smtpd_configure(NULL, NULL, NULL, NULL);
	hmap_free(smtpd.per_addr, NULL);
	hmap_free(smtpd.by_id, NULL);
	smtpd.per_addr = smtpd.by_id = NULL;
	smtpd.base = NULL;
}

/* smtpd_loop_only - see session.h: worker.h says why */
void
smtpd_loop_only(void)
{
	if (worker_thread())
		fatalx("smtpd: session state read on a worker thread");
}

/* flow control (route.h) */
void
smtpd_input_pause(struct smtpd_session *s)
{
	smtpd_loop_only();
	s->flags |= SF_PAUSED;
	bufferevent_disable(s->bev, EV_READ);
}

void
smtpd_input_resume(struct smtpd_session *s)
{
	smtpd_loop_only();
	if (!(s->flags & SF_PAUSED))
		return;
	s->flags &= ~SF_PAUSED;
	bufferevent_enable(s->bev, EV_READ);
	smtpd_resume(s);
}

void
smtpd_wait(struct smtpd_session *s)
{
	smtpd_loop_only();
	if (s->state != ST_CLOSING)
		smtpd_enter_state(s, ST_WAIT);
}

bool
smtpd_session_waiting(const struct smtpd_session *s)
{
	return s->state == ST_WAIT;
}

/* the session's views and the auth side (route.h) */
const char *
smtpd_session_idstr(const struct smtpd_session *s)
{
	return s->idstr;
}

const char *
smtpd_session_addr_key(const struct smtpd_session *s)
{
	return s->addr_key;
}

const char *
smtpd_session_peer(const struct smtpd_session *s)
{
	return s->peer_text;
}

const struct config *
smtpd_session_config(const struct smtpd_session *s)
{
	return s->cfg;
}

enum listen_role
smtpd_session_role(const struct smtpd_session *s)
{
	return s->role;
}

const char *
smtpd_session_user(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return (s->flags & SF_AUTH) ? s->user : NULL;
}

bool
smtpd_session_tls(const struct smtpd_session *s)
{
	return (s->flags & SF_TLS) != 0;
}

bool
smtpd_session_ehlo(const struct smtpd_session *s)
{
	return (s->flags & SF_EHLO) != 0;
}

unsigned
smtpd_session_tls_bits(const struct smtpd_session *s)
{
	SSL *ssl;

	if (s->bev == NULL || (ssl = bufferevent_openssl_get_ssl(s->bev)) == NULL)
		return 0;
	return (unsigned)SSL_get_cipher_bits(ssl, NULL);
}

void
smtpd_session_sasl_addrs(const struct smtpd_session *s, const char **local,
    const char **remote)
{
	*local = s->local_text;
	*remote = s->remote_text;
}

void *
smtpd_auth_data(struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->auth;
}

void
smtpd_auth_set_data(struct smtpd_session *s, void *data)
{
	smtpd_loop_only();
	s->auth = data;
}

void
smtpd_auth_read_lines(struct smtpd_session *s)
{
	if (s->state != ST_CLOSING)
		smtpd_enter_state(s, ST_AUTH);
}

void
smtpd_auth_end(struct smtpd_session *s)
{
	if (s->state != ST_CLOSING)
		smtpd_enter_state(s, ST_HELO);
}

void
smtpd_auth_success(struct smtpd_session *s, const char *user)
{
	free(s->user);
	s->user = xstrdup(user);
	s->flags |= SF_AUTH;
}
