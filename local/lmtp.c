/*
 * lmtp.c - delivery through an LMTP server (lmtp.h; RFC 2033), and
 * lmtp_route, the mx role's route for local mailboxes with
 * local_delivery lmtp (doc/users.md "Delivery through Dovecot").
 *
 * The client: a pool of at most LMTP_CONNS connections to the one target,
 * each greeted (220) and LHLO'd once and then reused for job after job;
 * at most LMTP_IDLE of them stay open between jobs, each for
 * LMTP_IDLE_TIMEOUT.  A job waits in a list until a connection is free.
 * A probe is one LMTP transaction: MAIL and every RCPT pipelined (RFC
 * 2920; Dovecot's LMTP offers PIPELINING), then RSET: the recipients are
 * asked, nothing is delivered.  A delivery is one transaction per
 * recipient on the same connection, MAIL and RCPT pipelined, then, when
 * the recipient was taken, DATA, the message dot-stuffed with CRLF line
 * ends, streamed as the connection drains (never more than LMTP_HIWAT
 * octets waiting), and its reply (RFC 2033 4.2): Dovecot writes
 * Delivered-To, and its Received's "for", only into a transaction with
 * one recipient, and every copy has them as chamoisd's own Maildir
 * delivery gives them.  The queue's local
 * recipients use the same jobs (queue/scheduler.c lmtp_start).  Every reply has
 * LMTP_TIMEOUT; a reply line longer than SMTP_REPLY_MAX, a reply that is
 * not SMTP, the server closing or not answering in time ends the
 * connection, and every recipient of its job not yet answered gets
 * "451 4.4.2" (lost); a connection that cannot be made fails every job
 * waiting.  Everything runs on the event loop; the body is read with
 * body_read_at, from memory or the page cache (common/body.h).
 *
 * The route (doc/users.md "Delivery through Dovecot"): each RCPT is a
 * probe for the recipient's mailboxes, so that Dovecot's refusal (an
 * unknown user, 452 4.2.2 / 552 5.2.2 over quota with
 * lmtp_rcpt_check_quota) is the client's RCPT reply, mapped as a forward
 * reply is (smtp_reply_map); a probe rather than the delivering
 * transaction's own RCPT, so that a refused RCPT leaves nothing behind
 * (an alias's other mailboxes stay out of the transaction).  At the final
 * dot one job delivers the message (our Received, and the checks'
 * Authentication-Results field, first; Dovecot adds Return-Path and
 * Delivered-To) to every mailbox of the transaction, each in its own
 * LMTP transaction.  The final reply:
 * 250 when every mailbox took it; the first refusal, mapped, when none
 * did; when some did and some did not (a 4xx or a 5xx after DATA), the
 * message as delivered goes into the queue for the mailboxes that did
 * not take it (the requeue hook, lmtp_set_requeue: the queue retries it
 * through this same client, its reports go to the postmaster) and the
 * client gets 250 once the queue has it; 451 4.3.0 if it could not be
 * queued, when the client's retry gives those that took it a second copy
 * (the duplicate window of doc/users.md).
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../common/body.h"
#include "../common/config.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "../outbound/reply_map.h"
#include "lmtp.h"

#define LMTP_CONNS		16	/* connections at once */
#define LMTP_IDLE		4	/* kept open between jobs */
#define LMTP_IDLE_TIMEOUT	30	/* seconds */
#define LMTP_TIMEOUT		300	/* seconds for one reply (a delivery's Sieve) */
#define LMTP_HIWAT		(64 * 1024)	/* body octets waiting to go out */
#define LMTP_CHUNK		(16 * 1024)

enum conn_state { C_GREETING, C_LHLO, C_IDLE, C_BUSY, C_QUIT };
enum job_phase { J_RCPT, J_RSET, J_DATA, J_BODY, J_REPLIES };

struct lmtp_conn {
	TAILQ_ENTRY(lmtp_conn) entry;	/* in lmtp.idle while idle */
	TAILQ_ENTRY(lmtp_conn) all;	/* in lmtp.conns */
	struct bufferevent *bev;
	bool in_read, dead;		/* freed in read_cb: at its end */
	enum conn_state state;
	bool smtputf8, eightbit;	/* LHLO's keywords */
	struct smtp_reply r;		/* the reply being read */
	struct lmtp_job *job;
};

struct lmtp_job {
	TAILQ_ENTRY(lmtp_job) entry;	/* in lmtp.waiting */
	bool waiting;
	struct lmtp_conn *c;
	char *sender;
	char **rcpts;
	size_t n;
	char *prefix;
	const struct body *body;
	struct body *owned;
	bool smtputf8, body8bit, probe;
	enum job_phase phase;
	size_t first, count;		/* the recipients of this transaction */
	size_t *sent, nsent;		/* those of them its RCPTs name */
	size_t got;			/* replies of this phase */
	struct smtp_reply *rcpt, *data;
	size_t *accepted, naccepted;
	uint64_t off;			/* body octets sent */
	bool prefix_sent, bol, dot_sent;
	lmtp_done_fn *done;
	void *arg;
};

static struct {
	struct event_base *base;
	char *text;			/* the target as configured */
	char hostname[DOMAIN_MAX + 1];	/* LHLO's */
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned nconns, nidle;
	TAILQ_HEAD(, lmtp_conn) idle;
	TAILQ_HEAD(, lmtp_conn) conns;
	TAILQ_HEAD(, lmtp_job) waiting;
	struct event *kick;		/* dispatch on the loop's next turn */
	lmtp_requeue_fn *requeue;	/* the queue's, for a partial failure */
	void *requeue_arg;
	bool stopping;			/* lmtp_shutdown: the queue is gone */
} lmtp = {
	.idle = TAILQ_HEAD_INITIALIZER(lmtp.idle),
	.conns = TAILQ_HEAD_INITIALIZER(lmtp.conns),
	.waiting = TAILQ_HEAD_INITIALIZER(lmtp.waiting),
};

static void dispatch(void);
static void conn_free(struct lmtp_conn *);
static void fail_waiting(const char *);
static void conn_ready(struct lmtp_conn *);

/* lost - the reply of a recipient whose connection went */
static void
lost(struct smtp_reply *r, const char *why)
{
	memset(r, 0, sizeof(*r));
	r->code = 451;
	str_copy(r->esc, "4.4.2", sizeof(r->esc));
	bsnprintf(r->text, sizeof(r->text), "Local delivery failed: %s", why);
}

static void
job_free(struct lmtp_job *j)
{
	free(j->sender);
	for (size_t i = 0; i < j->n; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j->prefix);
	if (j->owned != NULL) {
		body_free(j->owned);
		free(j->owned);
	}
	free(j->rcpt);
	free(j->data);
	free(j->accepted);
	free(j->sent);
	free(j);
}

/* job_finish - the job's answer, then it goes (its connection stays) */
static void
job_finish(struct lmtp_job *j)
{
	struct lmtp_result res = { j->n, j->rcpts, j->rcpt, j->data };

	if (j->c != NULL)
		j->c->job = NULL;
	j->c = NULL;
	/* a recipient refused at RCPT has that refusal after DATA too */
	for (size_t i = 0; i < j->n; i++)
		if (j->data[i].code == 0)
			j->data[i] = j->rcpt[i];
	if (j->done != NULL)
		j->done(j->arg, &res);
	job_free(j);
}

/* job_fail - what the job has not been told yet is lost (why) */
static void
job_fail(struct lmtp_job *j, const char *why)
{
	for (size_t i = 0; i < j->n; i++) {
		if (j->rcpt[i].code == 0)
			lost(&j->rcpt[i], why);
		if (j->data[i].code == 0 && smtp_reply_class(&j->rcpt[i]) ==
		    SMTP_CLASS_OK && !j->probe)
			lost(&j->data[i], why);
	}
	job_finish(j);
}

/*
 * conn_drop - the connection ends (why logged unless it was quitting);
 * its job, if any, fails.  One that never got ready fails every job
 * waiting, since the server cannot take them now; otherwise they go on
 * to other connections.
 */
static void
conn_drop(struct lmtp_conn *c, const char *why)
{
	struct lmtp_job *j = c->job;
	bool unready = c->state == C_GREETING || c->state == C_LHLO;

	/* an idle connection that the server closes is no news */
	if (c->state != C_QUIT && c->state != C_IDLE)
		log_warnx("lmtp: %s: %s", lmtp.text ? lmtp.text : "?", why);
	c->job = NULL;
	conn_free(c);
	if (j != NULL) {
		j->c = NULL;
		job_fail(j, why);
	}
	if (unready) {
		if (lmtp.nconns == 0)
			fail_waiting(why);
		return;
	}
	dispatch();
}

/* conn_free - inside its read callback, c itself goes at the callback's end */
static void
conn_free(struct lmtp_conn *c)
{
	if (c->dead)
		return;
	if (c->state == C_IDLE) {
		TAILQ_REMOVE(&lmtp.idle, c, entry);
		lmtp.nidle--;
	}
	TAILQ_REMOVE(&lmtp.conns, c, all);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	lmtp.nconns--;
	c->dead = true;
	if (!c->in_read)
		free(c);
}

static void
set_timeout(struct lmtp_conn *c, int seconds)
{
	struct timeval tv = { seconds, 0 };

	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* send - one command line */
static void
send_cmd(struct lmtp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
send_cmd(struct lmtp_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
}

/* put - LF text as LMTP data: CRLF line ends, a leading dot doubled */
static void
put(struct evbuffer *out, const char *p, size_t n, bool *bol)
{
	const char *e = p + n;

	while (p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(e - p);

		/* RFC 5321 4.5.2 */
		if (*bol && len > 0 && p[0] == '.')
			evbuffer_add(out, ".", 1);
		evbuffer_add(out, p, len);
		if (nl == NULL) {
			*bol = false;
			return;
		}
		evbuffer_add(out, "\r\n", 2);
		*bol = true;
		p = nl + 1;
	}
}

/* stream - more of the message, while the connection keeps up */
static void
stream(struct lmtp_conn *c)
{
	struct lmtp_job *j = c->job;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char buf[LMTP_CHUNK];

	if (j == NULL || j->phase != J_BODY || j->dot_sent)
		return;
	if (!j->prefix_sent) {
		j->prefix_sent = true;
		if (j->prefix != NULL)
			put(out, j->prefix, strlen(j->prefix), &j->bol);
	}
	while (evbuffer_get_length(out) < LMTP_HIWAT) {
		ssize_t n = body_read_at(j->body, j->off, buf, sizeof(buf));

		if (n < 0) {
			conn_drop(c, "the message could not be read");
			return;
		}
		if (n == 0) {
			if (!j->bol)
				evbuffer_add(out, "\r\n", 2);
			evbuffer_add(out, ".\r\n", 3);
			j->dot_sent = true;
			j->phase = J_REPLIES;
			j->got = 0;
			return;
		}
		put(out, buf, (size_t)n, &j->bol);
		j->off += (uint64_t)n;
	}
}

/*
 * start_tx - the job's next transaction: MAIL and its RCPTs, pipelined.
 * A probe asks about every recipient at once; a delivery has one
 * transaction per recipient, so that Dovecot writes Delivered-To (and
 * its Received's "for") into every copy, which it leaves out of a
 * transaction with several (doc/users.md "Delivery through Dovecot")
 */
static void
start_tx(struct lmtp_conn *c, struct lmtp_job *j)
{
	bool utf8_sender = !str_is_ascii(j->sender, strlen(j->sender));

	for (;;) {
		j->phase = J_RCPT;
		j->got = 0;
		j->count = j->probe ? j->n - j->first : 1;
		j->naccepted = j->nsent = 0;
		j->off = 0;
		j->prefix_sent = j->dot_sent = false;
		/*
		 * a server without SMTPUTF8 (Dovecot 2.3) cannot take a non-ASCII
		 * address: refused here as the forward route refuses it (RFC
		 * 6531 3.4), rather than with the server's syntax error
		 */
		for (size_t i = j->first; i < j->first + j->count; i++) {
			if (c->smtputf8 || (!utf8_sender &&
			    str_is_ascii(j->rcpts[i], strlen(j->rcpts[i])))) {
				j->sent[j->nsent++] = i;
				continue;
			}
			memset(&j->rcpt[i], 0, sizeof(j->rcpt[i]));
			j->rcpt[i].code = 553;
			str_copy(j->rcpt[i].esc, "5.6.7", sizeof(j->rcpt[i].esc));
			str_copy(j->rcpt[i].text, "The local delivery server does not "
			    "support SMTPUTF8 for this non-ASCII address",
			    sizeof(j->rcpt[i].text));
		}
		if (j->nsent > 0)
			break;
		if (j->probe || j->first + j->count >= j->n) {
			job_finish(j);
			conn_ready(c);
			return;
		}
		j->first += j->count;
	}
	send_cmd(c, "MAIL FROM:<%s>%s%s", j->sender,
	    j->smtputf8 && c->smtputf8 ? " SMTPUTF8" : "",
	    j->body8bit && c->eightbit ? " BODY=8BITMIME" : "");
	for (size_t k = 0; k < j->nsent; k++)
		send_cmd(c, "RCPT TO:<%s>", j->rcpts[j->sent[k]]);
	if (j->probe)
		send_cmd(c, "RSET");
	set_timeout(c, LMTP_TIMEOUT);
}

/* start - a job on a ready connection */
static void
start(struct lmtp_conn *c, struct lmtp_job *j)
{
	c->state = C_BUSY;
	c->job = j;
	j->c = c;
	j->first = 0;
	start_tx(c, j);
}

/*
 * tx_over - the job's transaction is over on c, which is ready for more:
 * the next one, or the job's answer
 */
static void
tx_over(struct lmtp_conn *c, struct lmtp_job *j)
{
	if (!j->probe && j->first + j->count < j->n) {
		j->first += j->count;
		start_tx(c, j);
		return;
	}
	job_finish(j);
	conn_ready(c);
}

static void read_cb(struct bufferevent *, void *);
static void write_cb(struct bufferevent *, void *);
static void event_cb(struct bufferevent *, short, void *);

/* conn_new - one more connection; false when it cannot even start */
static bool
conn_new(void)
{
	struct lmtp_conn *c = xcalloc(1, sizeof(*c));

	c->state = C_GREETING;
	lmtp.nconns++;
	TAILQ_INSERT_TAIL(&lmtp.conns, c, all);
	c->bev = bufferevent_socket_new(lmtp.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		conn_free(c);
		return false;
	}
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, LMTP_HIWAT / 2, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	set_timeout(c, LMTP_TIMEOUT);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&lmtp.ss,
	    (int)lmtp.sslen) == -1) {
		int e = errno;

		conn_free(c);
		errno = e;
		return false;
	}
	return true;
}

/* fail_waiting - the server cannot be reached: every waiting job fails */
static void
fail_waiting(const char *why)
{
	struct lmtp_job *j;

	while ((j = TAILQ_FIRST(&lmtp.waiting)) != NULL) {
		TAILQ_REMOVE(&lmtp.waiting, j, entry);
		j->waiting = false;
		job_fail(j, why);
	}
}

/* dispatch - waiting jobs onto idle connections, or new ones */
static void
dispatch(void)
{
	struct lmtp_job *j;
	struct lmtp_conn *c;

	while ((j = TAILQ_FIRST(&lmtp.waiting)) != NULL &&
	    (c = TAILQ_FIRST(&lmtp.idle)) != NULL) {
		TAILQ_REMOVE(&lmtp.waiting, j, entry);
		j->waiting = false;
		TAILQ_REMOVE(&lmtp.idle, c, entry);
		lmtp.nidle--;
		start(c, j);
	}
	/* busy and greeting connections count: each takes a job when free */
	if (TAILQ_EMPTY(&lmtp.waiting) || lmtp.nconns >= LMTP_CONNS)
		return;
	if (lmtp.base == NULL || lmtp.text == NULL) {
		fail_waiting("no LMTP server configured");
		return;
	}
	if (!conn_new()) {
		char why[256];

		bsnprintf(why, sizeof(why), "cannot connect to %s: %s",
		    lmtp.text, strerror(errno));
		log_warnx("lmtp: %s", why);
		if (lmtp.nconns == 0)
			fail_waiting(why);
	}
}

/* conn_ready - the connection may take a job, or waits for one */
static void
conn_ready(struct lmtp_conn *c)
{
	struct lmtp_job *j;

	c->state = C_IDLE;
	if ((j = TAILQ_FIRST(&lmtp.waiting)) != NULL) {
		TAILQ_REMOVE(&lmtp.waiting, j, entry);
		j->waiting = false;
		start(c, j);
		return;
	}
	if (lmtp.nidle >= LMTP_IDLE) {
		c->state = C_QUIT;
		send_cmd(c, "QUIT");
		set_timeout(c, LMTP_IDLE_TIMEOUT);
		return;
	}
	TAILQ_INSERT_TAIL(&lmtp.idle, c, entry);
	lmtp.nidle++;
	set_timeout(c, LMTP_IDLE_TIMEOUT);
}

/* job_reply - the next reply of c's job */
static void
job_reply(struct lmtp_conn *c, const struct smtp_reply *r)
{
	struct lmtp_job *j = c->job;
	bool ok = smtp_reply_class(r) == SMTP_CLASS_OK;

	switch (j->phase) {
	case J_RCPT:
		if (j->got == 0) {
			/* MAIL: a refusal is every RCPT's reply (as forward's) */
			j->got++;
			if (!ok)
				for (size_t k = 0; k < j->nsent; k++)
					j->rcpt[j->sent[k]] = *r;
			return;
		}
		if (j->rcpt[j->sent[j->got - 1]].code == 0) {
			j->rcpt[j->sent[j->got - 1]] = *r;
			if (ok)
				j->accepted[j->naccepted++] = j->sent[j->got - 1];
		}
		if (j->got++ < j->nsent)
			return;
		if (j->probe) {
			j->phase = J_RSET;
			return;
		}
		if (j->naccepted == 0) {
			j->phase = J_RSET;
			send_cmd(c, "RSET");
			return;
		}
		j->phase = J_DATA;
		send_cmd(c, "DATA");
		return;
	case J_RSET:
		if (ok)
			tx_over(c, j);
		else
			conn_drop(c, "RSET refused");
		return;
	case J_DATA:
		if (r->code == 354) {
			j->phase = J_BODY;
			j->bol = true;
			stream(c);
			return;
		}
		for (size_t k = 0; k < j->naccepted; k++)
			j->data[j->accepted[k]] = *r;
		j->phase = J_RSET;
		send_cmd(c, "RSET");
		return;
	case J_BODY:
		conn_drop(c, "a reply before the end of the message");
		return;
	case J_REPLIES:
		j->data[j->accepted[j->got++]] = *r;
		if (j->got < j->naccepted)
			return;
		tx_over(c, j);
		return;
	}
}

/* reply - a whole reply on c */
static void
reply(struct lmtp_conn *c, const struct smtp_reply *r)
{
	switch (c->state) {
	case C_GREETING:
		if (r->code != 220) {
			conn_drop(c, "greeting refused");
			return;
		}
		c->state = C_LHLO;
		send_cmd(c, "LHLO %s", lmtp.hostname);
		return;
	case C_LHLO:
		if (r->code != 250) {
			conn_drop(c, "LHLO refused");
			return;
		}
		conn_ready(c);
		return;
	case C_IDLE:
		/* e.g. the server's 421 before it closes an idle connection */
		conn_drop(c, "closed by the server");
		return;
	case C_QUIT:
		conn_drop(c, "quit");
		return;
	case C_BUSY:
		job_reply(c, r);
		return;
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct lmtp_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	c->in_read = true;
	while (!c->dead &&
	    (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		enum smtp_parse p = len > SMTP_REPLY_MAX ? SMTP_PARSE_ERROR :
		    smtp_reply_parse(&c->r, line, len);
		struct smtp_reply r;

		/* LHLO's keywords, one a line (RFC 2033 4.1, RFC 5321 4.1.1.1) */
		if (c->state == C_LHLO && p != SMTP_PARSE_ERROR && len > 4) {
			if (strncasecmp(line + 4, "SMTPUTF8", 8) == 0)
				c->smtputf8 = true;
			else if (strncasecmp(line + 4, "8BITMIME", 8) == 0)
				c->eightbit = true;
		}
		free(line);
		if (p == SMTP_PARSE_ERROR) {
			conn_drop(c, "not an LMTP reply");
			break;
		}
		if (p == SMTP_PARSE_MORE)
			continue;
		r = c->r;
		memset(&c->r, 0, sizeof(c->r));
		reply(c, &r);
	}
	if (!c->dead && evbuffer_get_length(in) > SMTP_REPLY_MAX)
		conn_drop(c, "reply line too long");
	c->in_read = false;
	if (c->dead)
		free(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	stream(arg);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct lmtp_conn *c = arg;
	char why[256];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if ((what & BEV_EVENT_TIMEOUT) && c->state == C_IDLE) {
		/* idle too long: QUIT, and close at its reply (STYLE 23) */
		TAILQ_REMOVE(&lmtp.idle, c, entry);
		lmtp.nidle--;
		c->state = C_QUIT;
		send_cmd(c, "QUIT");
		set_timeout(c, LMTP_IDLE_TIMEOUT);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		conn_drop(c, "no reply in time");
	else if (what & BEV_EVENT_EOF)
		conn_drop(c, "connection closed");
	else {
		bsnprintf(why, sizeof(why), "%s%s", c->state == C_GREETING ?
		    "cannot connect: " : "", evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
		conn_drop(c, why);
	}
}

struct lmtp_job *
lmtp_submit(const struct lmtp_params *p, struct body *owned,
    lmtp_done_fn *done, void *arg)
{
	struct lmtp_job *j = xcalloc(1, sizeof(*j));

	j->sender = xstrdup(p->sender);
	j->n = p->nrcpts;
	j->rcpts = xcalloc(j->n ? j->n : 1, sizeof(char *));
	for (size_t i = 0; i < j->n; i++)
		j->rcpts[i] = xstrdup(p->rcpts[i]);
	j->prefix = p->prefix != NULL && p->prefix[0] != '\0' ?
	    xstrdup(p->prefix) : NULL;
	j->body = p->body;
	j->owned = owned;
	j->probe = p->body == NULL;
	j->smtputf8 = p->smtputf8;
	j->body8bit = p->body8bit;
	j->rcpt = xcalloc(j->n ? j->n : 1, sizeof(*j->rcpt));
	j->data = xcalloc(j->n ? j->n : 1, sizeof(*j->data));
	j->accepted = xcalloc(j->n ? j->n : 1, sizeof(*j->accepted));
	j->sent = xcalloc(j->n ? j->n : 1, sizeof(*j->sent));
	j->done = done;
	j->arg = arg;
	TAILQ_INSERT_TAIL(&lmtp.waiting, j, entry);
	j->waiting = true;
	/*
	 * on the loop's next turn, never from here: a job can end at once
	 * (an idle connection, no address it may send, the server gone), and
	 * its done must not run before the caller has the job
	 */
	if (lmtp.kick == NULL)
		fatalx("lmtp_submit before lmtp_configure");
	event_active(lmtp.kick, EV_TIMEOUT, 0);
	return j;
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	dispatch();
}

void
lmtp_cancel(struct lmtp_job *j)
{
	if (j == NULL)
		return;
	j->done = NULL;
	if (j->waiting) {
		TAILQ_REMOVE(&lmtp.waiting, j, entry);
		job_free(j);
	} else if (j->c != NULL && j->phase >= J_BODY)
		/* mid-message: no clean way out but the end of the connection */
		conn_drop(j->c, "delivery cancelled");
}

void
lmtp_configure(struct event_base *base, const struct config *c)
{
	struct lmtp_conn *conn;

	lmtp.base = base;
	if (lmtp.kick == NULL && base != NULL &&
	    (lmtp.kick = event_new(base, -1, 0, kick_cb, NULL)) == NULL)
		fatalx("lmtp: event_new");
	if (c != NULL && c->hostname != NULL)
		str_copy(lmtp.hostname, c->hostname, sizeof(lmtp.hostname));
	if (c == NULL || c->lmtp_text == NULL) {
		free(lmtp.text);
		lmtp.text = NULL;
		return;
	}
	if (lmtp.text != NULL && strcmp(lmtp.text, c->lmtp_text) == 0)
		return;
	free(lmtp.text);
	lmtp.text = xstrdup(c->lmtp_text);
	memcpy(&lmtp.ss, &c->lmtp_ss, sizeof(lmtp.ss));
	lmtp.sslen = c->lmtp_sslen;
	/* a new target: the idle connections to the old one go */
	while ((conn = TAILQ_FIRST(&lmtp.idle)) != NULL)
		conn_free(conn);
}

void
lmtp_shutdown(void)
{
	struct lmtp_conn *c;

	lmtp.stopping = true;
	fail_waiting("shutting down");
	while ((c = TAILQ_FIRST(&lmtp.conns)) != NULL) {
		struct lmtp_job *j = c->job;

		c->job = NULL;
		conn_free(c);
		if (j != NULL) {
			j->c = NULL;
			job_fail(j, "shutting down");
		}
	}
	free(lmtp.text);
	lmtp.text = NULL;
	if (lmtp.kick != NULL)
		event_free(lmtp.kick);
	lmtp.kick = NULL;
}

void
lmtp_set_requeue(lmtp_requeue_fn *fn, void *arg)
{
	lmtp.requeue = fn;
	lmtp.requeue_arg = arg;
}

/* ---- the route (smtpd/route.h), and its steps for forward/ ---- */

/* one session's route state: the job in flight, by session id */
struct lmtp_sess {
	uint64_t sid;
	struct lmtp_job *job;
	bool end;			/* the job delivers (final dot) */
	bool requeue_all;		/* lmtp_deliver's: none taking it is queued too */
	struct body *body;		/* its message, while it delivers */
	char txid[40];
	lmtp_tx_done_fn *done;		/* the step's caller */
	void *arg;
};

/* a failure's copy on its way into the queue (requeued) */
struct lmtp_requeue {
	uint64_t sid;
	char txid[40];
	size_t ok, n;			/* mailboxes that took it, in all */
	lmtp_tx_done_fn *done;
	void *arg;
};

static struct lmtp_sess *
sess(struct smtpd_session *s)
{
	struct lmtp_sess *ls = smtpd_route_data(s, &lmtp_route);

	if (ls == NULL) {
		ls = xcalloc(1, sizeof(*ls));
		ls->sid = smtpd_session_id(s);
		smtpd_route_set_data(s, &lmtp_route, ls);
	}
	return ls;
}

/*
 * first_refusal - the first recipient reply that is not 2xx, or NULL;
 * *nok the count of those that are
 */
static const struct smtp_reply *
first_refusal(const struct smtp_reply *r, size_t n, size_t *nok)
{
	const struct smtp_reply *bad = NULL;

	*nok = 0;
	for (size_t i = 0; i < n; i++) {
		if (smtp_reply_class(&r[i]) == SMTP_CLASS_OK)
			(*nok)++;
		else if (bad == NULL)
			bad = &r[i];
	}
	return bad;
}

/* probed - the RCPT's answer: 250, or Dovecot's first refusal */
static void
probed(void *arg, const struct lmtp_result *res)
{
	struct lmtp_sess *ls = arg;
	struct smtpd_session *s = smtpd_session_find(ls->sid);
	const struct smtp_reply *bad;
	char out[SMTP_REPLY_TEXT_MAX + 32];
	size_t ok;

	ls->job = NULL;
	if (s == NULL)
		return;		/* the session's free dropped ls already */
	bad = first_refusal(res->rcpt, res->n, &ok);
	if (bad == NULL)
		str_copy(out, "250 2.1.5 Ok", sizeof(out));
	else
		smtp_reply_map(bad, smtpd_tx_smtputf8(s), out, sizeof(out));
	ls->done(s, out, ls->arg);
}

/* lmtp_probe - see lmtp.h */
void
lmtp_probe(struct smtpd_session *s, const struct expansion *exp,
    lmtp_tx_done_fn *done, void *arg)
{
	struct lmtp_sess *ls = sess(s);
	struct lmtp_params p = {
		.sender = smtpd_tx_sender(s),
		.rcpts = exp->mailboxes,
		.nrcpts = exp->nmailboxes,
		.smtputf8 = smtpd_tx_smtputf8(s),
		.body8bit = smtpd_tx_body8bit(s),
	};

	lmtp_cancel(ls->job);
	ls->end = false;
	ls->done = done;
	ls->arg = arg;
	ls->job = lmtp_submit(&p, NULL, probed, ls);
}

/* lmtp_probe_cancel - see lmtp.h */
void
lmtp_probe_cancel(struct smtpd_session *s)
{
	struct lmtp_sess *ls = smtpd_route_data(s, &lmtp_route);

	if (ls != NULL && ls->job != NULL && !ls->end) {
		lmtp_cancel(ls->job);
		ls->job = NULL;
	}
}

static void
rcpt_answered(struct smtpd_session *s, const char *reply, void *arg)
{
	(void)arg;
	smtpd_rcpt_answer(s, "%s", reply);
}

static void
lmtp_rcpt(struct smtpd_session *s, const char *shown,
    const struct expansion *exp)
{
	(void)shown;
	if (exp->nmailboxes == 0) {
		smtpd_rcpt_answer(s, "550 5.1.1 Recipient address rejected: "
		    "User unknown");
		return;
	}
	lmtp_probe(s, exp, rcpt_answered, NULL);
}

/* body_drop - the message a delivery owned */
static void
body_drop(struct body *b)
{
	if (b == NULL)
		return;
	body_free(b);
	free(b);
}

/*
 * requeued - the queue's answer about a failure's copy: 250 once it is
 * durable there, else the 451 of before (doc/users.md "Delivery through
 * Dovecot")
 */
static void
requeued(void *arg, int error, const char *id)
{
	struct lmtp_requeue *rq = arg;
	struct smtpd_session *s = smtpd_session_find(rq->sid);
	char out[SMTP_REPLY_TEXT_MAX + 32];

	if (error == 0)
		log_info("%s delivery result=queued queue=%s mailboxes=%zu",
		    rq->txid, id, rq->n - rq->ok);
	else
		log_warnx("%s delivery not queued mailboxes=%zu: %s", rq->txid,
		    rq->n - rq->ok, strerror(error));
	if (s != NULL) {
		/* else queued all the same, or the client retries */
		if (error == 0)
			bsnprintf(out, sizeof(out), "250 2.0.0 Ok: delivered to %zu, "
			    "%zu queued as %s", rq->ok, rq->n - rq->ok, id);
		else
			bsnprintf(out, sizeof(out), "451 4.3.0 Delivered to %zu of %zu "
			    "mailboxes, try again later", rq->ok, rq->n);
		rq->done(s, out, rq->arg);
	}
	free(rq);
}

/*
 * requeue - the mailboxes of res that did not take the message into the
 * queue, with body (taken over); false (body still the caller's) when
 * there is no queue to take it
 */
static bool
requeue(struct smtpd_session *s, struct lmtp_sess *ls,
    const struct lmtp_result *res, size_t ok, struct body *body)
{
	struct lmtp_requeue *rq;
	char **failed;
	size_t n = 0;

	if (lmtp.requeue == NULL || lmtp.stopping || body == NULL)
		return false;
	failed = xcalloc(res->n, sizeof(*failed));
	for (size_t i = 0; i < res->n; i++)
		if (smtp_reply_class(&res->data[i]) != SMTP_CLASS_OK)
			failed[n++] = res->rcpts[i];
	rq = xcalloc(1, sizeof(*rq));
	rq->sid = ls->sid;
	str_copy(rq->txid, ls->txid, sizeof(rq->txid));
	rq->ok = ok;
	rq->n = res->n;
	rq->done = ls->done;
	rq->arg = ls->arg;
	lmtp.requeue(lmtp.requeue_arg, s, failed, n, smtpd_tx_auth_results(s),
	    body, requeued, rq);
	free(failed);
	return true;
}

/* delivered - the final reply (doc/users.md "Delivery through Dovecot") */
static void
delivered(void *arg, const struct lmtp_result *res)
{
	struct lmtp_sess *ls = arg;
	struct smtpd_session *s = smtpd_session_find(ls->sid);
	const struct smtp_reply *bad;
	char out[SMTP_REPLY_TEXT_MAX + 32];
	size_t ok;
	struct body *body = ls->body;

	ls->job = NULL;
	ls->body = NULL;
	bad = first_refusal(res->data, res->n, &ok);
	metrics_message(MR_LOCAL, MO_DELIVERED, ok);
	if (ok < res->n)
		metrics_message(MR_LOCAL, MO_DEFERRED, res->n - ok);
	for (size_t i = 0; i < res->n; i++)
		if (smtp_reply_class(&res->data[i]) == SMTP_CLASS_OK) {
			char f1[LOG_ESC(PATH_MAX_OCTETS)];

			log_info("%s delivery mailbox=%s result=delivered lmtp=%s",
			    ls->txid, log_field(f1, sizeof(f1), res->rcpts[i]),
			    lmtp.text ? lmtp.text : "");
		}
	if (s == NULL) {
		log_info("%s delivery result=%s client=gone", ls->txid,
		    bad == NULL ? "delivered" : "not-delivered");
		body_drop(body);
		free(ls);
		return;
	}
	if (bad == NULL)
		bsnprintf(out, sizeof(out), "250 2.0.0 Ok: delivered as %s",
		    ls->txid);
	else if (ok == 0 && !ls->requeue_all)
		smtp_reply_map(bad, smtpd_tx_smtputf8(s), out, sizeof(out));
	else if (requeue(s, ls, res, ok, body))
		return;		/* requeued answers; the queue owns body */
	else
		bsnprintf(out, sizeof(out), "451 4.3.0 Delivered to %zu of %zu "
		    "mailboxes, try again later", ok, res->n);
	body_drop(body);
	ls->done(s, out, ls->arg);
}

/* lmtp_deliver - see lmtp.h */
void
lmtp_deliver(struct smtpd_session *s, bool requeue_all, lmtp_tx_done_fn *done,
    void *arg)
{
	struct lmtp_sess *ls = sess(s);
	struct body *body;
	size_t n;
	char *const *mb = smtpd_tx_mailboxes(s, &n);
	struct lmtp_params p = {
		.sender = smtpd_tx_sender(s),
		.rcpts = mb,
		.nrcpts = n,
		.prefix = smtpd_tx_auth_results(s),
		.smtputf8 = smtpd_tx_smtputf8(s),
		.body8bit = smtpd_tx_body8bit(s),
	};

	lmtp_cancel(ls->job);
	str_copy(ls->txid, smtpd_tx_id(s), sizeof(ls->txid));
	body = xcalloc(1, sizeof(*body));
	smtpd_tx_take_body(s, body);
	p.body = body;
	ls->end = true;
	ls->requeue_all = requeue_all;
	ls->done = done;
	ls->arg = arg;
	ls->body = body;	/* delivered() hands it to the queue or frees it */
	ls->job = lmtp_submit(&p, NULL, delivered, ls);
}

static void
tx_answered(struct smtpd_session *s, const char *reply, void *arg)
{
	(void)arg;
	smtpd_tx_done(s, "%s", reply);
}

static void
lmtp_end(struct smtpd_session *s, const char *refusal)
{
	if (refusal != NULL) {
		smtpd_tx_done(s, "%s", refusal);
		return;
	}
	smtpd_tx_set_relay(s, "local");	/* a local copy (doc/protocol.md) */
	lmtp_deliver(s, false, tx_answered, NULL);
}

static void
lmtp_rset(struct smtpd_session *s)
{
	/* a delivery keeps going: its reply is this transaction's */
	lmtp_probe_cancel(s);
}

static void
lmtp_sess_free(struct smtpd_session *s)
{
	struct lmtp_sess *ls = smtpd_route_data(s, &lmtp_route);

	if (ls == NULL)
		return;
	smtpd_route_set_data(s, &lmtp_route, NULL);
	if (ls->job != NULL && ls->end)
		return;		/* delivered() frees it: the job goes on */
	lmtp_cancel(ls->job);
	free(ls);
}

const struct smtpd_route_ops lmtp_route = {
	.name = "lmtp",
	.outcome = "sent",
	.rcpt = lmtp_rcpt,
	.end = lmtp_end,
	.rset = lmtp_rset,
	.free = lmtp_sess_free,
};
