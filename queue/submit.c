/*
 * submit.c - the submit socket of chamois-sendmail (protocol: submit.h).
 *
 * queue_dir/submit.sock is bound before privileges are dropped and served
 * on the loop: every read is non-blocking and bounded (line length,
 * message size, the header section held in memory, an idle timeout and a
 * deadline, a number of connections at once).  The message is turned
 * into the queue's LF form as it arrives (CRLF and bare CR become LF, so
 * that nothing that leaves the queue can carry a bare CR; a NUL refuses
 * the message, so that none can carry a NUL either), a Received
 * field naming the caller's uid is put on top, Message-ID and Date are
 * added when missing (queue_fix_headers), and the queue gets it with the
 * caller's uid (SO_PEERCRED) and the owner who gets the reports.  The
 * connection lives until the queue calls back, even when the client has
 * hung up.
 *
 * The caller's user name (getpwuid_r: NSS, which may ask a directory
 * server) is looked up on a worker thread when the connection is
 * accepted; the connection is not read until the answer is back.  The
 * job owns what it works on and finds its connection again by id.
 */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "../common/addr.h"
#include "../common/body.h"
#include "../common/clock.h"
#include "../common/config.h"
#include "../common/dsn.h"
#include "../common/tables.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "queue.h"
#include "sendmail_parse.h"
#include "submit.h"

enum submit_state {
	SC_LOOKUP,	/* the caller's name is looked up (a worker job) */
	SC_SENDER,	/* SENDER expected */
	SC_RCPT,	/* RCPT or DATA expected */
	SC_DATA,	/* reading the message */
	SC_WAIT,	/* the queue has it; its callback is awaited */
};

struct submit_conn {
	TAILQ_ENTRY(submit_conn) entry;
	uint64_t id;			/* for the look-up job to find it again */
	int fd;
	struct event *ev;
	struct evbuffer *in;
	enum submit_state state;
	time_t started;
	uid_t uid;
	pid_t pid;
	char user[64];			/* the uid's name, or "#uid" (the log) */
	char *login;			/* the uid's name, NULL if it has none */
	char *sender;			/* "" is <> */
	char **rcpts;
	char **rcpt_keys;		/* addr_key of each, for duplicates */
	size_t nrcpts;
	bool dsn;			/* the DSN line came */
	unsigned notify;		/* its NOTIFY (every recipient's), 0: none */
	enum dsn_ret ret;
	char envid[DSN_ENVID_MAX + 1];
	uint64_t data_left;
	/* the message, LF form */
	bool pending_cr;		/* a CR was the last octet seen */
	bool hdr_done;
	char *hdr;			/* the header section while it arrives */
	size_t hdrlen, hdrcap, scan;
	bool in_field;
	struct body *body;
	int body_errno;			/* why the body could not be kept */
	char last;			/* the last octet put into the body */
	bool smtputf8, body8bit;
	bool queued;			/* the queue holds c until it calls back */
	char *owner;			/* for the log line */
	uint64_t size;
	struct config *cfg;		/* the config the connection started with
					   (held: config_ref) */
};

static TAILQ_HEAD(, submit_conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static unsigned nconns;
static uint64_t last_id;
static struct config *scfg;		/* in force (held; submit_configure) */
static struct tables *stables;		/* likewise */
static struct evconnlistener *listener;
static struct event_base *sbase;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void conn_free(struct submit_conn *);

/* ------------------------------------------------------------- the owner */

static char *
mailbox_of(const struct tables *t, const char *key)
{
	struct expansion exp;
	char *out = NULL;

	memset(&exp, 0, sizeof(exp));
	if (t == NULL || !tables_resolve(t, key, &exp))
		return NULL;
	if (exp.nmailboxes > 0)
		out = xstrdup(exp.mailboxes[0]);
	expansion_free(&exp);
	return out;
}

char *
submit_owner(const struct config *cfg, const struct tables *t, const char *user)
{
	struct mailaddr a;
	char key[PATH_MAX_OCTETS + 1];
	char *owner = NULL;

	if (user != NULL && cfg->ndomains > 0) {
		char *addr = xasprintf("%s@%s", user, cfg->domains[0]);

		if (addr_parse(addr, &a, ADDR_F_UTF8) == ADDR_OK &&
		    addr_key(&a, key, sizeof(key)))
			owner = mailbox_of(t, key);
		free(addr);
	}
	if (owner == NULL)
		owner = mailbox_of(t, "postmaster");
	if (owner == NULL && cfg->postmaster != NULL)
		owner = xstrdup(cfg->postmaster);
	if (owner == NULL)
		owner = xasprintf("postmaster@%s", cfg->ndomains > 0 ?
		    cfg->domains[0] : "localhost");
	return owner;
}

/* ------------------------------------------------------------- replies */

/* reply - one line to the client, without blocking; then the connection ends */
static void
reply_close(struct submit_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply_close(struct submit_conn *c, const char *fmt, ...)
{
	char line[REPLY_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* a short line into an empty socket buffer: never blocks, never
	   fails but when the client has gone */
	if (c->fd != -1 && send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("submit reply uid=%u: %s", (unsigned)c->uid, strerror(errno));
	if (line[0] == 'E') {
		char esc[LOG_ESC(REPLY_LINE_MAX)];

		line[n - 1] = '\0';
		log_info("submit refused uid=%u user=%s pid=%ld reply=\"%s\"",
		    (unsigned)c->uid, c->user, (long)c->pid,
		    log_escape_text(esc, sizeof(esc), line, strlen(line)));
	}
	conn_free(c);
}

/* ------------------------------------------------------------- the message */

static void
to_body(struct submit_conn *c, const char *p, size_t n)
{
	if (n == 0 || c->body == NULL)
		return;
	for (size_t i = 0; i < n && !c->body8bit; i++)
		if ((unsigned char)p[i] >= 0x80)
			c->body8bit = true;
	if (body_append(c->body, p, n) == -1) {
		/* remembered: the reply comes at the end of DATA */
		c->body_errno = errno;
		log_warn("submit uid=%u body", (unsigned)c->uid);
		body_free(c->body);
		free(c->body);
		c->body = NULL;
	}
	c->last = p[n - 1];
}

/*
 * hdr_done_fix - the header section hdr[0..end) is complete: with our
 * Received field on top, Message-ID and Date added, into the body; what
 * was read past it follows
 */
static void
hdr_done_fix(struct submit_conn *c, size_t end, bool need_blank)
{
	char *fixed, *rest = NULL, date[64];
	size_t fixedlen, restlen = c->hdrlen - end;
	time_t now = clock_now();
	struct tm tm;
	char *received;

	if (restlen > 0)
		rest = xstrndup(c->hdr + end, restlen);
	c->hdrlen = end;
	for (size_t i = 0; i < end; i++)
		if ((unsigned char)c->hdr[i] >= 0x80)
			c->smtputf8 = true;
	if (need_blank) {
		if (c->hdrlen + 1 > c->hdrcap)
			c->hdr = xreallocarray(c->hdr, (c->hdrcap = c->hdrlen + 1), 1);
		c->hdr[c->hdrlen++] = '\n';
	}
	c->hdr_done = true;
	fixed = queue_fix_headers(c->hdr ? c->hdr : "", c->hdrlen,
	    c->cfg->hostname, now, &fixedlen);
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	received = xasprintf("Received: by %s (chamois-sendmail, from userid %u);\n"
	    "\t%s\n", c->cfg->hostname, (unsigned)c->uid, date);
	c->body = xmalloc(sizeof(*c->body));
	body_init(c->body, c->cfg->queue_dir);
	to_body(c, received, strlen(received));
	to_body(c, fixed, fixedlen);
	c->body8bit = false;	/* header octets are the smtputf8 part */
	free(received);
	free(fixed);
	free(c->hdr);
	c->hdr = NULL;
	c->hdrlen = c->hdrcap = 0;
	if (rest != NULL) {
		to_body(c, rest, restlen);
		free(rest);
	}
}

/* hdr_scan - look for the end of the header section in what came */
static void
hdr_scan(struct submit_conn *c)
{
	while (!c->hdr_done && c->scan < c->hdrlen) {
		const char *line = c->hdr + c->scan;
		const char *lf = memchr(line, '\n', c->hdrlen - c->scan);
		size_t n;

		if (lf == NULL)
			return;
		n = (size_t)(lf - line);
		switch (sm_line_kind(line, n, c->in_field)) {
		case SM_H_FIELD:
			c->in_field = true;
			/* FALLTHROUGH */
		case SM_H_CONT:
			c->scan += n + 1;
			break;
		case SM_H_BLANK:
			hdr_done_fix(c, c->scan + n + 1, false);
			return;
		case SM_H_OTHER:
			hdr_done_fix(c, c->scan, true);
			return;
		}
	}
}

/* lf_out - octets of the message in LF form */
static void
lf_out(struct submit_conn *c, const char *p, size_t n)
{
	if (c->hdr_done) {
		to_body(c, p, n);
		return;
	}
	if (c->hdrlen + n + 1 > c->hdrcap) {
		size_t want = c->hdrcap ? c->hdrcap : 4096;

		while (want < c->hdrlen + n + 1)
			want *= 2;
		c->hdr = xreallocarray(c->hdr, want, 1);
		c->hdrcap = want;
	}
	memcpy(c->hdr + c->hdrlen, p, n);
	c->hdrlen += n;
	hdr_scan(c);
}

/*
 * data_in - raw octets of the message: CRLF and bare CR become LF; a NUL
 * refuses the message (doc/protocol.md, "The submit socket";
 * doc/security.md); false once c is gone
 */
static bool
data_in(struct submit_conn *c, const char *p, size_t n)
{
	char out[8192];
	size_t o = 0;

	if (memchr(p, '\0', n) != NULL) {
		reply_close(c, "ERR 554 5.5.2 NUL octet in the message; mail "
		    "may not carry NUL (RFC 5322 4.1)");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (o + 2 > sizeof(out)) {
			lf_out(c, out, o);
			o = 0;
		}
		if (c->pending_cr) {
			c->pending_cr = false;
			out[o++] = '\n';
			if (p[i] == '\n')
				continue;
		}
		if (p[i] == '\r')
			c->pending_cr = true;
		else
			out[o++] = p[i];
	}
	if (o > 0)
		lf_out(c, out, o);
	return true;
}

static void
put_cb(void *arg, int error, const char *id)
{
	struct submit_conn *c = arg;

	if (error == 0) {
		char f1[LOG_ESC(PATH_MAX_OCTETS)], f2[LOG_ESC(256)];

		log_info("%s queue submit uid=%u user=%s pid=%ld from=<%s> "
		    "owner=%s nrcpts=%zu size=%" PRIu64, id, (unsigned)c->uid,
		    c->user, (long)c->pid, log_field(f1, sizeof(f1), c->sender),
		    log_field(f2, sizeof(f2), c->owner), c->nrcpts, c->size);
		c->queued = false;
		reply_close(c, "OK %s", id);
		return;
	}
	c->queued = false;
	errno = error;
	log_warn("queue submit failed uid=%u user=%s", (unsigned)c->uid, c->user);
	if (error == ENOSPC || error == EDQUOT)
		reply_close(c, "ERR 452 4.3.1 insufficient system storage");
	else
		reply_close(c, "ERR 451 4.3.0 the queue could not take the message: %s",
		    strerror(error));
}

/* data_end - every octet is there: build the envelope, hand both over */
static void
data_end(struct submit_conn *c)
{
	struct queue_msg *m;
	struct body *b;
	char *owner;

	if (c->pending_cr) {
		c->pending_cr = false;
		lf_out(c, "\n", 1);
	}
	if (!c->hdr_done) {
		/* no body: all of it is the header section */
		if (c->hdrlen > 0 && c->hdr[c->hdrlen - 1] != '\n')
			lf_out(c, "\n", 1);
		if (!c->hdr_done)
			hdr_done_fix(c, c->hdrlen, false);
	}
	if (c->last != '\n')
		to_body(c, "\n", 1);
	if (c->body == NULL) {
		/* a spill past spool_max_size is ENOSPC too (doc/security.md) */
		if (c->body_errno == ENOSPC || c->body_errno == EDQUOT)
			reply_close(c, "ERR 452 4.3.1 insufficient system storage");
		else
			reply_close(c, "ERR 451 4.3.0 the message could not be kept");
		return;
	}
	if (c->body->size > c->cfg->max_message_size + 4096) {
		/* our own additions are allowed for; nothing else grows */
		reply_close(c, "ERR 552 5.3.4 message too big");
		return;
	}

	owner = submit_owner(scfg, stables, c->login);
	m = xcalloc(1, sizeof(*m));
	m->version = QUEUE_RECORD_VERSION;
	m->created = clock_now();
	m->sender = xstrdup(c->sender);
	m->owner = owner;
	m->uid = (long)c->uid;
	m->size = c->body->size;
	m->body8bit = c->body8bit;
	m->smtputf8 = c->smtputf8;
	m->envid = xstrdup(c->envid);
	m->ret = c->ret;
	m->rcpts = xcalloc(c->nrcpts, sizeof(*m->rcpts));
	m->nrcpts = c->nrcpts;
	for (size_t i = 0; i < c->nrcpts; i++) {
		m->rcpts[i].orig = xstrdup(c->rcpts[i]);
		m->rcpts[i].notify = c->notify;
		m->rcpts[i].state = RS_PENDING;
		m->rcpts[i].last_reply = xstrdup("");
		m->rcpts[i].remote_mta = xstrdup("");
	}
	b = c->body;
	c->body = NULL;
	c->owner = xstrdup(owner);
	c->size = m->size;
	c->queued = true;
	c->state = SC_WAIT;
	event_del(c->ev);
	queue_submit(m, b, put_cb, c);
}

/* ------------------------------------------------------------- commands */

/* parse_addr - "addr", "<addr>" or "" / "<>" (null, when allowed) */
static int
parse_addr(const char *v, bool null_ok, char *out, size_t size, bool *utf8)
{
	char buf[SUBMIT_LINE_MAX];
	struct mailaddr a;
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		memcpy(buf, v + 1, n - 2);
		buf[n - 2] = '\0';
	} else
		str_copy(buf, v, sizeof(buf));
	if (buf[0] == '\0') {
		out[0] = '\0';
		return null_ok ? 0 : -1;
	}
	if (addr_parse(buf, &a, ADDR_F_UTF8) != ADDR_OK)
		return -1;
	addr_format(&a, out, size);
	if (!str_is_ascii(out, strlen(out)))
		*utf8 = true;
	return 0;
}

/*
 * dsn_line - "DSN [NOTIFY=..] [RET=..] [ENVID=..]" (RFC 3461 syntax; the
 * NOTIFY is every recipient's) into c; false if a parameter is bad
 */
static bool
dsn_line(struct submit_conn *c, char *arg)
{
	char *tok, *save;
	int r;

	for (tok = strtok_r(arg, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (str_has_prefix_ci(tok, "NOTIFY=") && c->notify == 0) {
			if ((c->notify = dsn_notify_parse(tok + 7)) == 0)
				return false;
		} else if (str_has_prefix_ci(tok, "RET=") && c->ret == DSN_RET_DEFAULT) {
			if ((r = dsn_ret_parse(tok + 4)) < 0)
				return false;
			c->ret = (enum dsn_ret)r;
		} else if (str_has_prefix_ci(tok, "ENVID=") && c->envid[0] == '\0') {
			if (!dsn_envid_parse(tok + 6, c->envid, sizeof(c->envid)))
				return false;
		} else
			return false;
	}
	return true;
}

/* command - one command line; false once c is gone (an ERR was sent) */
static bool
command(struct submit_conn *c, char *line)
{
	char addr[PATH_MAX_OCTETS + 8], key[PATH_MAX_OCTETS + 8], esc[128];
	char *arg = strchr(line, ' ');
	struct mailaddr a;

	if (arg)
		*arg++ = '\0';
	else
		arg = line + strlen(line);
	if (strcmp(line, "SENDER") == 0 && c->state == SC_SENDER) {
		if (parse_addr(arg, true, addr, sizeof(addr), &c->smtputf8) == -1) {
			reply_close(c, "ERR 553 5.1.7 bad sender address: %s",
			    log_escape_text(esc, sizeof(esc), arg, strlen(arg)));
			return false;
		}
		c->sender = xstrdup(addr);
		c->state = SC_RCPT;
	} else if (strcmp(line, "DSN") == 0 && c->state == SC_RCPT &&
	    c->nrcpts == 0 && !c->dsn) {
		c->dsn = true;
		if (!dsn_line(c, arg)) {
			reply_close(c, "ERR 501 5.5.4 bad DSN parameters");
			return false;
		}
	} else if (strcmp(line, "RCPT") == 0 && c->state == SC_RCPT) {
		if (parse_addr(arg, false, addr, sizeof(addr), &c->smtputf8) == -1 ||
		    addr_parse(addr, &a, ADDR_F_UTF8) != ADDR_OK ||
		    !addr_key(&a, key, sizeof(key))) {
			reply_close(c, "ERR 501 5.1.3 bad recipient address: %s",
			    log_escape_text(esc, sizeof(esc), arg, strlen(arg)));
			return false;
		}
		for (size_t i = 0; i < c->nrcpts; i++)
			if (strcmp(c->rcpt_keys[i], key) == 0)
				return true;	/* the same recipient twice */
		if (c->nrcpts >= c->cfg->max_recipients) {
			reply_close(c, "ERR 552 5.5.3 too many recipients (at most %u)",
			    c->cfg->max_recipients);
			return false;
		}
		c->rcpts = xreallocarray(c->rcpts, c->nrcpts + 1, sizeof(char *));
		c->rcpt_keys = xreallocarray(c->rcpt_keys, c->nrcpts + 1,
		    sizeof(char *));
		c->rcpts[c->nrcpts] = xstrdup(addr);
		c->rcpt_keys[c->nrcpts++] = xstrdup(key);
	} else if (strcmp(line, "DATA") == 0 && c->state == SC_RCPT) {
		char *end;
		unsigned long long n;

		if (c->nrcpts == 0) {
			reply_close(c, "ERR 503 5.5.1 no recipients");
			return false;
		}
		errno = 0;
		n = strtoull(arg, &end, 10);
		if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0) {
			reply_close(c, "ERR 501 5.5.4 DATA needs the size in octets");
			return false;
		}
		if (n > c->cfg->max_message_size) {
			reply_close(c, "ERR 552 5.3.4 message too big (at most %" PRIu64
			    " octets)", c->cfg->max_message_size);
			return false;
		}
		if (body_spool_full()) {
			/* spool_max_size (doc/security.md "Spool space") */
			log_info("submit uid=%u refused reason=spool-full spool=%"
			    PRIu64, (unsigned)c->uid, body_spool_in_use());
			reply_close(c, "ERR 452 4.3.1 insufficient system storage");
			return false;
		}
		c->data_left = n;
		c->state = SC_DATA;
	} else if (strcmp(line, "SENDER") == 0 || strcmp(line, "RCPT") == 0 ||
	    strcmp(line, "DATA") == 0 || strcmp(line, "DSN") == 0) {
		reply_close(c, "ERR 503 5.5.1 %s out of order", line);
		return false;
	} else {
		reply_close(c, "ERR 500 5.5.1 unknown command");
		return false;
	}
	return true;
}

/* input - what is in c->in; false once c is gone or waits for the queue */
static bool
input(struct submit_conn *c)
{
	while (c->state == SC_SENDER || c->state == SC_RCPT) {
		struct evbuffer_ptr eol;
		size_t eol_len, len;
		char *line;
		size_t have = evbuffer_get_length(c->in);

		eol = evbuffer_search_eol(c->in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos == -1) {
			if (have >= SUBMIT_LINE_MAX) {
				reply_close(c, "ERR 500 5.5.2 line too long");
				return false;
			}
			return true;
		}
		len = (size_t)eol.pos;
		if (len + 1 > SUBMIT_LINE_MAX) {
			reply_close(c, "ERR 500 5.5.2 line too long");
			return false;
		}
		line = xmalloc(len + 1);
		evbuffer_remove(c->in, line, len);
		evbuffer_drain(c->in, 1);
		line[len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (memchr(line, '\0', len) != NULL) {
			free(line);
			reply_close(c, "ERR 500 5.5.2 NUL in a command line");
			return false;
		}
		if (!command(c, line)) {
			free(line);
			return false;
		}
		free(line);
	}
	if (c->state == SC_DATA) {
		char chunk[16384];

		while (c->data_left > 0 && evbuffer_get_length(c->in) > 0) {
			size_t want = c->data_left < sizeof(chunk) ?
			    (size_t)c->data_left : sizeof(chunk);
			int got = evbuffer_remove(c->in, chunk, want);

			if (got <= 0)
				break;
			c->data_left -= (uint64_t)got;
			if (!data_in(c, chunk, (size_t)got))
				return false;
		}
		if (c->data_left == 0) {
			/* what follows the message is ignored */
			evbuffer_drain(c->in, evbuffer_get_length(c->in));
			if (!c->hdr_done && c->hdrlen > SUBMIT_HEADER_MAX) {
				reply_close(c, "ERR 552 5.3.4 header section too big");
				return false;
			}
			data_end(c);
			return false;
		}
		if (!c->hdr_done && c->hdrlen > SUBMIT_HEADER_MAX) {
			reply_close(c, "ERR 552 5.3.4 header section too big");
			return false;
		}
	}
	return true;
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct submit_conn *c = arg;
	int n;

	if ((what & EV_TIMEOUT) ||
	    clock_now() - c->started > SUBMIT_DEADLINE_SEC) {
		reply_close(c, "ERR 421 4.4.2 timeout");
		return;
	}
	n = evbuffer_read(c->in, fd, 65536);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		log_info("submit aborted uid=%u user=%s pid=%ld state=%d: the "
		    "client went away", (unsigned)c->uid, c->user, (long)c->pid,
		    (int)c->state);
		conn_free(c);
		return;
	}
	if (n < 0)
		return;
	/* a reader of commands holds at most a line; of data, a chunk */
	input(c);
}

/* ------------------------------------------------------------- connections */

static void
conn_free(struct submit_conn *c)
{
	if (c->queued) {
		/* the queue still holds arg: only the socket goes now */
		if (c->fd != -1) {
			close(c->fd);
			c->fd = -1;
		}
		return;
	}
	TAILQ_REMOVE(&conns, c, entry);
	nconns--;
	if (c->ev)
		event_free(c->ev);
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	evbuffer_free(c->in);
	free(c->sender);
	free(c->login);
	free(c->owner);
	for (size_t i = 0; i < c->nrcpts; i++) {
		free(c->rcpts[i]);
		free(c->rcpt_keys[i]);
	}
	free(c->rcpts);
	free(c->rcpt_keys);
	free(c->hdr);
	if (c->body) {
		body_free(c->body);
		free(c->body);
	}
	config_free(c->cfg);
	free(c);
}

/* the caller's name, looked up off the loop; the job owns its fields */
struct lookup_job {
	uint64_t conn;			/* submit_conn id */
	uid_t uid;
	char *name;			/* NULL: no passwd entry */
};

static void
lookup_work(void *arg)
{
	struct lookup_job *j = arg;
	struct passwd pw, *res = NULL;
	long max = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t size = max > 0 ? (size_t)max : 16384;
	char *buf = xmalloc(size);
	int rc;

	while ((rc = getpwuid_r(j->uid, &pw, buf, size, &res)) == ERANGE &&
	    size < 1024 * 1024)
		buf = xreallocarray(buf, (size *= 2), 1);
	if (rc == 0 && res != NULL)
		j->name = xstrdup(pw.pw_name);
	free(buf);
}

static void
lookup_done(void *arg)
{
	struct lookup_job *j = arg;
	struct timeval tv = { SUBMIT_TIMEOUT_SEC, 0 };
	struct submit_conn *c;

	TAILQ_FOREACH(c, &conns, entry)
		if (c->id == j->conn)
			break;
	if (c != NULL && c->state == SC_LOOKUP) {
		if (j->name != NULL) {
			str_copy(c->user, j->name, sizeof(c->user));
			c->login = j->name;
			j->name = NULL;
		}
		c->state = SC_SENDER;
		event_add(c->ev, &tv);
		log_debug("submit connected uid=%u user=%s pid=%ld",
		    (unsigned)c->uid, c->user, (long)c->pid);
	}
	free(j->name);
	free(j);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct submit_conn *c;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct lookup_job *j;
	unsigned same_uid = 0;

	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == -1) {
		log_warn("submit SO_PEERCRED");
		close(fd);
		return;
	}
	if (nconns >= SUBMIT_MAX_CONNECTIONS) {
		static const char busy[] =
		    "ERR 421 4.7.0 too many submissions at once, try again later\n";

		log_warnx("submit refused uid=%u reason=max-connections",
		    (unsigned)cred.uid);
		if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("submit busy reply: %s", strerror(errno));
		close(fd);
		return;
	}
	TAILQ_FOREACH(c, &conns, entry)
		if (c->uid == cred.uid)
			same_uid++;
	if (same_uid >= SUBMIT_MAX_PER_UID) {
		static const char busy[] = "ERR 421 4.7.0 too many submissions "
		    "at once from your user id, try again later\n";

		log_warnx("submit refused uid=%u reason=max-per-uid",
		    (unsigned)cred.uid);
		if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("submit busy reply: %s", strerror(errno));
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = ++last_id;
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->started = clock_now();
	c->state = SC_LOOKUP;
	c->cfg = config_ref(scfg);
	snprintf(c->user, sizeof(c->user), "#%u", (unsigned)cred.uid);
	if ((c->in = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	c->ev = event_new(sbase, fd, EV_READ | EV_PERSIST, read_cb, c);
	if (c->ev == NULL)
		fatalx("event_new");
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	/* read once the name is known: every log line of c carries it */
	j = xcalloc(1, sizeof(*j));
	j->conn = c->id;
	j->uid = c->uid;
	worker_submit(lookup_work, lookup_done, j);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	log_warn("submit accept");
}

int
submit_init(struct event_base *base, struct config *cfg, struct tables *tables,
    char *err, size_t errsize)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old_umask;
	int fd, rc;

	sbase = base;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (!bsnprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", cfg->queue_dir,
	    SUBMIT_SOCKET)) {
		snprintf(err, errsize, "%s:%d: queue_dir: the path of %s/%s is too "
		    "long for a socket", cfg->path, config_line(cfg, "queue_dir"),
		    cfg->queue_dir, SUBMIT_SOCKET);
		return -1;
	}
	/* queue_dir is 0711, set by chamoisd before this (chamois.conf(5)) */
	if (lstat(sun.sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errsize, "%s exists and is not a socket",
			    sun.sun_path);
			return -1;
		}
		/* a live daemon still answers there: do not steal its socket */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd != -1 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			snprintf(err, errsize, "%s: another chamoisd is running on "
			    "this queue_dir", sun.sun_path);
			return -1;
		}
		if (fd != -1)
			close(fd);
		if (unlink(sun.sun_path) == -1) {
			snprintf(err, errsize, "unlink %s: %s", sun.sun_path,
			    strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errsize, "socket: %s", strerror(errno));
		return -1;
	}
	/*
	 * 0666 (every local user) from the umask at bind, owned by whoever
	 * binds (root): no chmod by path afterwards, which the owner of
	 * queue_dir could turn onto another file with a symlink
	 * (doc/security.md, issue 12 point 7)
	 */
	old_umask = umask(0111);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_umask);
	if (rc == -1 || listen(fd, 64) == -1) {
		snprintf(err, errsize, "submit socket %s: %s", sun.sun_path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	str_copy(sock_path, sun.sun_path, sizeof(sock_path));
	listener = evconnlistener_new(base, accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE,
	    0, fd);
	if (listener == NULL) {
		snprintf(err, errsize, "evconnlistener_new failed");
		close(fd);
		unlink(sock_path);
		return -1;
	}
	evconnlistener_set_error_cb(listener, accept_error_cb);
	scfg = config_ref(cfg);
	stables = tables_ref(tables);
	log_info("listening role=submit address=%s", sock_path);
	return 0;
}

void
submit_configure(struct config *cfg, struct tables *tables)
{
	struct config *oc = scfg;
	struct tables *ot = stables;

	scfg = config_ref(cfg);
	stables = tables_ref(tables);
	tables_free(ot);
	config_free(oc);
}

bool
submit_idle(void)
{
	struct submit_conn *c;

	TAILQ_FOREACH(c, &conns, entry)
		if (c->state == SC_LOOKUP || c->queued)
			return false;
	return true;
}

void
submit_stop(void)
{
	if (listener == NULL)
		return;
	evconnlistener_free(listener);
	listener = NULL;
	if (sock_path[0] != '\0')
		unlink(sock_path);
}

void
submit_shutdown(void)
{
	struct submit_conn *c;

	submit_stop();
	while ((c = TAILQ_FIRST(&conns)) != NULL) {
		if (c->state == SC_WAIT) {
			/* the loop is gone: the queue never calls back now */
			c->queued = false;
		}
		conn_free(c);
	}
	tables_free(stables);
	config_free(scfg);
	stables = NULL;
	scfg = NULL;
}
