/*
 * admin.c - the admin socket of chamoisctl(8), on the event loop.
 *
 * queue_dir/admin.sock, mode 0600, owned by the daemon's user; every peer
 * is checked with SO_PEERCRED as well (uid 0 or the daemon's own uid), so
 * a socket made reachable by mistake still serves nobody else.  One
 * command per connection; the answer is text whose last line is "OK" or
 * "ERR <code> <text>", then the server closes (admin.h has the grammar,
 * chamoisctl(8) the formats).
 *
 * Everything runs on the loop except reading bodies from the store, which
 * goes to a worker thread (SHOW, DUMP).  Listings and dumps take a
 * snapshot of the ids first and produce one message at a time, only while
 * the client's output buffer is below ADMIN_OUT_HIWAT, so a big queue
 * never sits in memory twice.  RESTORE is parsed as it arrives and hands
 * one message at a time to queue_submit(), reading no further until that
 * message is durable.
 *
 * A connection that a worker job or queue_submit() still refers to is
 * only marked dead when it closes; the job's completion frees it.
 *
 * The config comes from chamoisd's root (admin_init, admin_configure on
 * SIGHUP); once the daemon stops (admin_stop) commands get ERR 421, and
 * the root asks admin_idle() before it leaves the loop.
 *
 * Codes in ERR lines follow SMTP's classes: 4xx try again, 5xx do not.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "../common/body.h"
#include "../common/config.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "admin.h"
#include "queue.h"

#define ADMIN_MAX_CONNS		16	/* at once; more get ERR 421 */
#define ADMIN_COMMAND_TIMEOUT	30	/* seconds to send the command line */
#define ADMIN_IO_TIMEOUT	300	/* restore input or answer output stalled */
#define ADMIN_LINGER_TIMEOUT	10	/* after the answer, waiting for EOF */
#define ADMIN_OUT_HIWAT		(256 * 1024)	/* produce more only below this */
#define ADMIN_OUT_LOWAT		(64 * 1024)
#define ADMIN_HEADERS_MAX	(1024 * 1024)	/* SHOW prints at most this */

enum admin_cmd { AC_NONE, AC_QUEUE, AC_SHOW, AC_FLUSH, AC_DELETE, AC_DUMP,
    AC_RESTORE, AC_TLSRPT };

enum admin_state {
	AS_COMMAND,	/* reading the command line */
	AS_WORKING,	/* producing a listing or dump */
	AS_RESTORE,	/* reading a dump */
	AS_DONE,	/* final line queued: flush, then wait for EOF */
};

/* where RESTORE is in the dump */
enum restore_step { RD_MAGIC, RD_FRAME, RD_ENVELOPE, RD_BODY, RD_BODY_LF,
    RD_END };

struct admin_conn {
	TAILQ_ENTRY(admin_conn) entry;
	struct bufferevent *bev;
	unsigned long n;		/* connection number, for the log */
	uid_t uid;
	pid_t pid;
	struct config *cfg;		/* held (config_ref): RESTORE spools in it */
	enum admin_state state;
	enum admin_cmd cmd;
	bool held;			/* a worker job or queue_submit refers to us */
	bool dead;			/* closed while held */
	bool eof;			/* the client's EOF arrived */
	/* QUEUE, DUMP: a snapshot of the ids, walked at the client's pace */
	char (*ids)[QUEUE_ID_LEN + 1];
	size_t nids, idcap, next;
	unsigned long nmsgs, nrcpts, bystate[4];
	uint64_t octets;
	/* RESTORE */
	enum restore_step rs;
	char rid[QUEUE_ID_LEN + 1];
	char *env;
	size_t env_len, env_got;
	struct body *body;
	uint64_t body_len, body_max;
	unsigned long seen, restored, skipped;
};

/* a body read from the store on a worker thread (SHOW, DUMP) */
struct body_job {
	struct admin_conn *c;
	struct queue_store *store;
	char id[QUEUE_ID_LEN + 1];
	char *env;			/* DUMP: the envelope record */
	size_t env_len;
	char *buf;
	size_t len;
	int rc;
};

static struct {
	struct event_base *base;
	struct evconnlistener *listener;
	char *path;
	unsigned long nconns_total;
	unsigned nconns;
	TAILQ_HEAD(, admin_conn) conns;
	struct config *cfg;		/* in force (held; admin_configure) */
	bool stopping;			/* new commands get ERR 421 */
} adm = { .conns = TAILQ_HEAD_INITIALIZER(adm.conns) };

static void conn_close(struct admin_conn *);
static void queue_next(struct admin_conn *);
static void dump_next(struct admin_conn *);
static void restore_input(struct admin_conn *);
static void restore_go(struct admin_conn *);
static bool output_full(struct admin_conn *);

/* iso_time - ISO 8601 in UTC, "-" for 0 */
static const char *
iso_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		str_copy(buf, "-", size);
	return buf;
}

/* add_text - s[0..len) with control characters shown as '?' (one line) */
static void
add_text(struct evbuffer *out, const char *s, size_t len)
{
	char buf[256];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		buf[n++] = (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : (char)ch;
		if (n == sizeof(buf)) {
			evbuffer_add(out, buf, n);
			n = 0;
		}
	}
	evbuffer_add(out, buf, n);
}

static void
add_str(struct evbuffer *out, const char *s)
{
	add_text(out, s ? s : "", s ? strlen(s) : 0);
}

/* valid_id - 16 hex digits; lowered in place */
static bool
valid_id(char *id)
{
	size_t i;

	for (i = 0; id[i]; i++) {
		if (!isxdigit((unsigned char)id[i]))
			return false;
		id[i] = (char)tolower((unsigned char)id[i]);
	}
	return i == QUEUE_ID_LEN;
}

/* ---- connections ----------------------------------------------------- */

static void
conn_destroy(struct admin_conn *c)
{
	if (c->body) {
		body_free(c->body);
		free(c->body);
	}
	free(c->env);
	free(c->ids);
	config_free(c->cfg);
	free(c);
}

/* conn_close - close the socket now; the memory goes once nothing holds it */
static void
conn_close(struct admin_conn *c)
{
	if (c->bev == NULL)
		return;
	bufferevent_free(c->bev);
	c->bev = NULL;
	TAILQ_REMOVE(&adm.conns, c, entry);
	adm.nconns--;
	log_debug("admin.%lu closed", c->n);
	if (c->held) {
		c->dead = true;
		return;
	}
	conn_destroy(c);
}

/* conn_release - a job of c came back; false if c has gone meanwhile */
static bool
conn_release(struct admin_conn *c)
{
	c->held = false;
	if (c->dead) {
		conn_destroy(c);
		return false;
	}
	return true;
}

static struct evbuffer *
output(struct admin_conn *c)
{
	return bufferevent_get_output(c->bev);
}

/* finish - queue the final line; the connection closes once it is sent */
static void
finish(struct admin_conn *c, const char *line)
{
	c->state = AS_DONE;
	evbuffer_add_printf(output(c), "%s\n", line);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->bev, EV_WRITE);
}

static void
reply_ok(struct admin_conn *c)
{
	finish(c, "OK");
}

static void reply_err(struct admin_conn *, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_err(struct admin_conn *c, int code, const char *fmt, ...)
{
	char text[512], line[560];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	snprintf(line, sizeof(line), "ERR %d %s", code, text);
	if (code != 530) {
		char esc[LOG_ESC(sizeof(line))];

		log_info("admin.%lu uid=%u answer=\"%s\"", c->n, (unsigned)c->uid,
		    log_text(esc, sizeof(esc), line));
	}
	finish(c, line);
}

/* answered - the whole answer is out: half-close, wait for the client's EOF */
static void
answered(struct admin_conn *c)
{
	if (c->eof) {
		conn_close(c);
		return;
	}
	/* the client reads to EOF; reading on until its EOF never resets a
	   connection whose peer is still writing (RESTORE after an error) */
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_set_timeouts(c->bev,
	    &(struct timeval){ ADMIN_LINGER_TIMEOUT, 0 }, NULL);
	bufferevent_enable(c->bev, EV_READ);
}

/* ---- QUEUE and SHOW ---------------------------------------------------- */

/* format_msg - the listing block of one message */
static void
format_msg(struct evbuffer *out, const struct queue_msg *m)
{
	char t[32];

	evbuffer_add_printf(out, "%s %s %" PRIu64 " <", m->id,
	    iso_time(m->created, t, sizeof(t)), m->size);
	add_str(out, m->sender);
	evbuffer_add(out, ">\n", 2);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		bool waiting = r->state == RS_PENDING || r->state == RS_DEFERRED;

		evbuffer_add(out, "    ", 4);
		add_str(out, r->addr ? r->addr : r->orig);
		evbuffer_add_printf(out, " %s attempts=%u next=%s reply=",
		    queue_state_name(r->state), r->attempts,
		    iso_time(waiting ? r->next_attempt : 0, t, sizeof(t)));
		if (r->last_reply && *r->last_reply)
			add_str(out, r->last_reply);
		else
			evbuffer_add(out, "-", 1);
		evbuffer_add(out, "\n", 1);
	}
}

static void
collect_id(const struct queue_msg *m, void *arg)
{
	struct admin_conn *c = arg;

	if (c->nids == c->idcap) {
		c->idcap = c->idcap * 2 + 64;
		c->ids = xreallocarray(c->ids, c->idcap, sizeof(*c->ids));
	}
	memcpy(c->ids[c->nids++], m->id, QUEUE_ID_LEN + 1);
}

/* snapshot - the ids of every message now in the queue */
static void
snapshot(struct admin_conn *c)
{
	c->nids = c->next = 0;
	queue_foreach(collect_id, c);
}

static bool
output_full(struct admin_conn *c)
{
	return evbuffer_get_length(output(c)) >= ADMIN_OUT_HIWAT;
}

/* queue_next - more of the listing, while the client keeps up */
static void
queue_next(struct admin_conn *c)
{
	struct evbuffer *out = output(c);

	while (c->next < c->nids) {
		const struct queue_msg *m;

		if (output_full(c))
			return;		/* the write callback resumes */
		if ((m = queue_lookup(c->ids[c->next++])) == NULL)
			continue;	/* gone since the snapshot */
		format_msg(out, m);
		c->nmsgs++;
		c->octets += m->size;
		for (size_t i = 0; i < m->nrcpts; i++) {
			c->nrcpts++;
			if ((unsigned)m->rcpts[i].state < nitems(c->bystate))
				c->bystate[m->rcpts[i].state]++;
		}
	}
	evbuffer_add_printf(out, "total: %lu message%s, %" PRIu64 " octets, "
	    "%lu recipient%s (%lu pending, %lu deferred, %lu delivered, "
	    "%lu failed)\n", c->nmsgs, c->nmsgs == 1 ? "" : "s", c->octets,
	    c->nrcpts, c->nrcpts == 1 ? "" : "s", c->bystate[RS_PENDING],
	    c->bystate[RS_DEFERRED], c->bystate[RS_DELIVERED],
	    c->bystate[RS_FAILED]);
	reply_ok(c);
}

static void
body_work(void *arg)
{
	struct body_job *j = arg;

	j->buf = NULL;
	j->len = 0;
	j->rc = qstore_get_body(j->store, j->id, &j->buf, &j->len);
}

static void
body_job_free(struct body_job *j)
{
	free(j->buf);
	free(j->env);
	free(j);
}

/* body_read - read id's body on a worker; done(job) runs on the loop */
static void
body_read(struct admin_conn *c, const char *id, char *env, size_t env_len,
    void (*done)(void *))
{
	struct body_job *j = xcalloc(1, sizeof(*j));

	j->c = c;
	j->store = queue_store_handle();
	str_copy(j->id, id, sizeof(j->id));
	j->env = env;
	j->env_len = env_len;
	c->held = true;
	worker_submit(body_work, done, j);
}

/* add_headers - the header section of an LF-form message, made printable */
static void
add_headers(struct evbuffer *out, const char *msg, size_t len)
{
	size_t pos = 0, shown = 0;

	while (pos < len) {
		const char *nl = memchr(msg + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (msg + pos)) : len - pos;

		if (l == 0 || (l == 1 && msg[pos] == '\r'))
			break;		/* the empty line ends the header section */
		if (shown + l > ADMIN_HEADERS_MAX) {
			evbuffer_add_printf(out, "[header section truncated after "
			    "%zu octets]\n", shown);
			return;
		}
		add_text(out, msg + pos, l);
		evbuffer_add(out, "\n", 1);
		shown += l + 1;
		pos += l + 1;
	}
}

static void
show_done(void *arg)
{
	struct body_job *j = arg;
	struct admin_conn *c = j->c;

	if (conn_release(c)) {
		if (j->rc != 0)
			reply_err(c, 451, "cannot read the message %s from the "
			    "queue (delivered or deleted meanwhile?)", j->id);
		else {
			evbuffer_add(output(c), "\n", 1);
			add_headers(output(c), j->buf, j->len);
			reply_ok(c);
		}
	}
	body_job_free(j);
}

static void
cmd_show(struct admin_conn *c, char *id)
{
	const struct queue_msg *m = queue_lookup(id);
	struct evbuffer *out = output(c);
	bool eightbit;

	if (m == NULL) {
		reply_err(c, 550, "no message %s in the queue", id);
		return;
	}
	format_msg(out, m);
	evbuffer_add(out, "owner: ", 7);
	add_str(out, m->owner);
	if (m->uid < 0)
		evbuffer_add_printf(out, "\nuid: -\n");
	else
		evbuffer_add_printf(out, "\nuid: %ld\n", m->uid);
	eightbit = m->body8bit;
	evbuffer_add_printf(out, "body: %s%s\n", eightbit ? "8bitmime" : "7bit",
	    m->smtputf8 ? " smtputf8" : "");
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];

		evbuffer_add(out, "recipient ", 10);
		add_str(out, r->addr ? r->addr : r->orig);
		evbuffer_add(out, ": orig=", 7);
		add_str(out, r->orig);
		evbuffer_add_printf(out, " %s status=%s host=",
		    r->local ? "local" : "remote", r->status[0] ? r->status : "-");
		add_str(out, r->remote_mta && *r->remote_mta ? r->remote_mta : "-");
		evbuffer_add_printf(out, "%s\n", r->reported ? " reported" : "");
	}
	body_read(c, m->id, NULL, 0, show_done);
}

/* ---- DUMP -------------------------------------------------------------- */

static void
dump_done(void *arg)
{
	struct body_job *j = arg;
	struct admin_conn *c = j->c;

	if (conn_release(c)) {
		if (j->rc != 0)
			log_info("admin.%lu dump skipped id=%s: body not readable "
			    "(delivered or deleted meanwhile)", c->n, j->id);
		else {
			struct evbuffer *out = output(c);

			evbuffer_add_printf(out, "message %s %zu %zu\n", j->id,
			    j->env_len, j->len);
			evbuffer_add(out, j->env, j->env_len);
			evbuffer_add(out, "\n", 1);
			evbuffer_add(out, j->buf, j->len);
			evbuffer_add(out, "\n", 1);
			c->nmsgs++;
		}
		dump_next(c);
	}
	body_job_free(j);
}

/* dump_next - the next message: its envelope now, its body from a worker */
static void
dump_next(struct admin_conn *c)
{
	while (c->next < c->nids) {
		const struct queue_msg *m;
		char *env;
		size_t len;

		if (output_full(c))
			return;		/* the write callback resumes */
		if ((m = queue_lookup(c->ids[c->next++])) == NULL)
			continue;
		if ((env = queue_msg_encode(m, &len)) == NULL) {
			reply_err(c, 451, "cannot encode the envelope of %s", m->id);
			return;
		}
		body_read(c, m->id, env, len, dump_done);
		return;
	}
	evbuffer_add_printf(output(c), "end %lu\n", c->nmsgs);
	log_info("admin.%lu dump done messages=%lu", c->n, c->nmsgs);
	reply_ok(c);
}

/* ---- RESTORE ----------------------------------------------------------- */

static void
restore_fail(struct admin_conn *c, int code, const char *what)
{
	reply_err(c, code, "%s; %lu message%s restored before", what,
	    c->restored, c->restored == 1 ? "" : "s");
}

static void
restore_submitted(void *arg, int error, const char *id)
{
	struct admin_conn *c = arg;
	char what[256];

	if (!conn_release(c))
		return;
	if (error) {
		snprintf(what, sizeof(what), "message %s could not be stored: %s",
		    c->rid, strerror(error));
		restore_fail(c, 451, what);
		return;
	}
	c->restored++;
	log_info("%s queue restored by the administrator admin.%lu uid=%u", id,
	    c->n, (unsigned)c->uid);
	restore_go(c);		/* what arrived meanwhile */
}

/*
 * restore_go - read on through the dump while the client keeps reading
 * our "skipped" lines: past ADMIN_OUT_HIWAT of unread output its input
 * waits (write_cb goes on), so a dump of endless duplicates cannot grow
 * the daemon (doc/security.md, issue 12 point 3)
 */
static void
restore_go(struct admin_conn *c)
{
	if (c->bev == NULL || c->state != AS_RESTORE || c->held)
		return;
	if (output_full(c)) {
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	if (!c->eof)
		bufferevent_enable(c->bev, EV_READ);
	restore_input(c);
	if (c->eof && c->bev && c->state == AS_RESTORE && !c->held &&
	    !output_full(c))
		restore_fail(c, 501, "the dump ended early");
}

/* restore_message - envelope and body are complete: hand them to the queue */
static void
restore_message(struct admin_conn *c)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	struct body *b = c->body;
	char what[256];

	c->body = NULL;
	if (queue_msg_decode(c->env, c->env_len, m) == -1 ||
	    strcmp(m->id, c->rid) != 0) {
		queue_msg_free(m);
		free(m);
		body_free(b);
		free(b);
		snprintf(what, sizeof(what), "message %s: malformed envelope "
		    "record, or not the id of its message line", c->rid);
		restore_fail(c, 501, what);
		return;
	}
	free(c->env);
	c->env = NULL;
	if (queue_lookup(m->id) != NULL || queue_msg_done(m)) {
		evbuffer_add_printf(output(c), "skipped %s: %s\n", m->id,
		    queue_lookup(m->id) ? "already in the queue" :
		    "nothing left to deliver");
		c->skipped++;
		queue_msg_free(m);
		free(m);
		body_free(b);
		free(b);
		c->rs = RD_FRAME;
		return;
	}
	c->rs = RD_FRAME;
	c->held = true;
	bufferevent_disable(c->bev, EV_READ);	/* one message at a time */
	queue_submit(m, b, restore_submitted, c);
}

/* restore_frame - a "message ..." or "end ..." line */
static void
restore_frame(struct admin_conn *c, char *line)
{
	char id[QUEUE_ID_LEN + 8], what[256];
	unsigned long long envlen, bodylen;
	unsigned long count;
	int n = 0;

	if (sscanf(line, "end %lu%n", &count, &n) == 1 && line[n] == '\0') {
		if (count != c->seen) {
			snprintf(what, sizeof(what), "the dump says %lu messages "
			    "but holds %lu", count, c->seen);
			restore_fail(c, 501, what);
			return;
		}
		c->rs = RD_END;
		evbuffer_add_printf(output(c), "restored %lu message%s, skipped "
		    "%lu\n", c->restored, c->restored == 1 ? "" : "s", c->skipped);
		log_info("admin.%lu restore done restored=%lu skipped=%lu", c->n,
		    c->restored, c->skipped);
		reply_ok(c);
		return;
	}
	if (sscanf(line, "message %20s %llu %llu%n", id, &envlen, &bodylen,
	    &n) != 3 || line[n] != '\0' || !valid_id(id)) {
		restore_fail(c, 501, "malformed line in the dump (expected "
		    "\"message ID ENVELOPE-OCTETS BODY-OCTETS\" or \"end N\")");
		return;
	}
	if (envlen == 0 || envlen > ADMIN_ENVELOPE_MAX || bodylen > c->body_max) {
		snprintf(what, sizeof(what), "message %s: envelope or body too "
		    "large", id);
		restore_fail(c, 552, what);
		return;
	}
	c->seen++;
	str_copy(c->rid, id, sizeof(c->rid));
	c->env_len = (size_t)envlen;
	c->env_got = 0;
	c->env = xmalloc(c->env_len + 1);
	c->body_len = bodylen;
	c->body = xcalloc(1, sizeof(*c->body));
	body_init(c->body, c->cfg->queue_dir);
	c->rs = RD_ENVELOPE;
}

/* restore_input - consume what has arrived, as far as the parser may go */
static void
restore_input(struct admin_conn *c)
{
	struct evbuffer *in;
	char chunk[16384], what[256];

	while (c->bev && c->state == AS_RESTORE && !c->held && !output_full(c)) {
		size_t avail, len;
		char *line;

		in = bufferevent_get_input(c->bev);
		avail = evbuffer_get_length(in);
		switch (c->rs) {
		case RD_MAGIC:
		case RD_FRAME:
			line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
			if (line == NULL) {
				if (avail > ADMIN_LINE_MAX)
					restore_fail(c, 501, "line too long in "
					    "the dump");
				return;
			}
			if (len > ADMIN_LINE_MAX)
				restore_fail(c, 501, "line too long in the dump");
			else if (c->rs == RD_FRAME)
				restore_frame(c, line);
			else if (strcmp(line, ADMIN_DUMP_MAGIC " 1") == 0)
				c->rs = RD_FRAME;
			else
				restore_fail(c, 501, "not a chamois queue dump "
				    "(version 1)");
			free(line);
			break;
		case RD_ENVELOPE:
			if (avail == 0)
				return;
			len = c->env_len + 1 - c->env_got;
			if (len > avail)
				len = avail;
			evbuffer_remove(in, c->env + c->env_got, len);
			c->env_got += len;
			if (c->env_got < c->env_len + 1)
				return;
			if (c->env[c->env_len] != '\n') {
				snprintf(what, sizeof(what), "message %s: no line "
				    "end after the envelope (wrong length?)", c->rid);
				restore_fail(c, 501, what);
				break;
			}
			c->env[c->env_len] = '\0';
			c->rs = RD_BODY;
			break;
		case RD_BODY:
			if (c->body->size == c->body_len) {
				c->rs = RD_BODY_LF;
				break;
			}
			if (avail == 0)
				return;
			len = sizeof(chunk);
			if (len > c->body_len - c->body->size)
				len = (size_t)(c->body_len - c->body->size);
			if (len > avail)
				len = avail;
			evbuffer_remove(in, chunk, len);
			if (body_append(c->body, chunk, len) == -1) {
				snprintf(what, sizeof(what), "message %s: cannot "
				    "spool the body: %s", c->rid, strerror(errno));
				restore_fail(c, errno == ENOSPC ? 452 : 451, what);
			}
			break;
		case RD_BODY_LF:
			if (avail == 0)
				return;
			evbuffer_remove(in, chunk, 1);
			if (chunk[0] != '\n') {
				snprintf(what, sizeof(what), "message %s: no line "
				    "end after the body (wrong length?)", c->rid);
				restore_fail(c, 501, what);
				break;
			}
			restore_message(c);
			break;
		case RD_END:
			return;
		}
	}
}

static void
cmd_restore(struct admin_conn *c)
{
	uint64_t twice = c->cfg->max_message_size * 2;

	c->state = AS_RESTORE;
	c->rs = RD_MAGIC;
	c->body_max = twice > ADMIN_BODY_FLOOR ? twice : ADMIN_BODY_FLOOR;
	bufferevent_set_timeouts(c->bev,
	    &(struct timeval){ ADMIN_IO_TIMEOUT, 0 },
	    &(struct timeval){ ADMIN_IO_TIMEOUT, 0 });
	restore_go(c);
}

/* ---- commands ---------------------------------------------------------- */

static void
flush_count(const struct queue_msg *m, void *arg)
{
	unsigned long *n = arg;		/* messages, recipients */
	bool any = false;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == RS_DEFERRED) {
			n[1]++;
			any = true;
		}
	if (any)
		n[0]++;
}

static void
command(struct admin_conn *c, char *line)
{
	static const struct {
		const char *name;
		enum admin_cmd cmd;
		bool arg;
	} cmds[] = {
		{ "QUEUE", AC_QUEUE, false }, { "SHOW", AC_SHOW, true },
		{ "FLUSH", AC_FLUSH, false }, { "DELETE", AC_DELETE, true },
		{ "DUMP", AC_DUMP, false }, { "RESTORE", AC_RESTORE, false },
		{ "TLSRPT", AC_TLSRPT, true },
	};
	char esc[128], *arg, *verb = line;
	size_t i;

	log_info("admin.%lu uid=%u pid=%ld command=\"%s\"", c->n,
	    (unsigned)c->uid, (long)c->pid,
	    log_escape_text(esc, sizeof(esc), line, strlen(line)));
	if ((arg = strchr(line, ' ')) != NULL)
		*arg++ = '\0';
	for (i = 0; i < nitems(cmds); i++)
		if (strcasecmp(verb, cmds[i].name) == 0)
			break;
	if (i == nitems(cmds)) {
		reply_err(c, 500, "unknown command (QUEUE, SHOW id, FLUSH, "
		    "DELETE id, DUMP, RESTORE, TLSRPT SEND)");
		return;
	}
	if (cmds[i].arg != (arg != NULL)) {
		reply_err(c, 501, "%s %s", cmds[i].name, cmds[i].arg ?
		    "needs a message id" : "takes no argument");
		return;
	}
	if (cmds[i].cmd == AC_TLSRPT && strcasecmp(arg, "send") != 0) {
		reply_err(c, 501, "TLSRPT SEND is the one TLSRPT command");
		return;
	}
	if (arg && cmds[i].cmd != AC_TLSRPT && !valid_id(arg)) {
		reply_err(c, 501, "malformed message id (%d hex digits)",
		    QUEUE_ID_LEN);
		return;
	}
	if (adm.stopping) {
		reply_err(c, 421, "chamoisd is stopping");
		return;
	}
	c->cmd = cmds[i].cmd;
	c->state = AS_WORKING;
	/* no input is expected (RESTORE re-enables reading) */
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_set_timeouts(c->bev, NULL,
	    &(struct timeval){ ADMIN_IO_TIMEOUT, 0 });
	bufferevent_setwatermark(c->bev, EV_WRITE, ADMIN_OUT_LOWAT, 0);
	switch (c->cmd) {
	case AC_QUEUE:
		snapshot(c);
		queue_next(c);
		break;
	case AC_SHOW:
		cmd_show(c, arg);
		break;
	case AC_FLUSH: {
		unsigned long n[2] = { 0, 0 };

		queue_foreach(flush_count, n);
		queue_flush();
		evbuffer_add_printf(output(c), "retrying %lu deferred "
		    "recipient%s in %lu message%s now\n", n[1],
		    n[1] == 1 ? "" : "s", n[0], n[0] == 1 ? "" : "s");
		reply_ok(c);
		break;
	}
	case AC_DELETE:
		if (!queue_remove(arg)) {
			reply_err(c, 550, "no message %s in the queue", arg);
			break;
		}
		log_info("%s queue deleted by the administrator admin.%lu uid=%u",
		    arg, c->n, (unsigned)c->uid);
		evbuffer_add_printf(output(c), "deleted %s\n", arg);
		reply_ok(c);
		break;
	case AC_DUMP:
		evbuffer_add_printf(output(c), "%s %d\n", ADMIN_DUMP_MAGIC,
		    ADMIN_DUMP_VERSION);
		snapshot(c);
		dump_next(c);
		break;
	case AC_RESTORE:
		bufferevent_enable(c->bev, EV_READ);
		cmd_restore(c);
		break;
	case AC_TLSRPT: {
		size_t n = tlsrpt_reports_send();

		evbuffer_add_printf(output(c), "reporting on %zu policy domain%s\n",
		    n, n == 1 ? "" : "s");
		reply_ok(c);
		break;
	}
	case AC_NONE:
		break;
	}
}

/* ---- libevent callbacks ------------------------------------------------ */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	switch (c->state) {
	case AS_COMMAND:
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > ADMIN_LINE_MAX)
				reply_err(c, 500, "line too long");
			return;
		}
		if (len > ADMIN_LINE_MAX)
			reply_err(c, 500, "line too long");
		else
			command(c, line);
		free(line);
		break;
	case AS_RESTORE:
		restore_go(c);
		break;
	case AS_WORKING:
	case AS_DONE:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	if (c->state == AS_DONE) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			answered(c);
		return;
	}
	if (c->state == AS_RESTORE) {
		restore_go(c);
		return;
	}
	if (c->state != AS_WORKING || c->held)
		return;
	if (c->cmd == AC_QUEUE)
		queue_next(c);
	else if (c->cmd == AC_DUMP)
		dump_next(c);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct admin_conn *c = arg;

	if (what & BEV_EVENT_EOF) {
		c->eof = true;
		switch (c->state) {
		case AS_COMMAND:
			conn_close(c);
			return;
		case AS_RESTORE:
			restore_go(c);		/* a last bit may be buffered */
			return;
		case AS_DONE:
			if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
				conn_close(c);
			return;
		case AS_WORKING:
			return;		/* the client half-closed; answer anyway */
		}
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_info("admin.%lu timeout state=%d", c->n, (int)c->state);
	else if (what & BEV_EVENT_ERROR && c->state != AS_DONE)
		log_info("admin.%lu connection lost: %s", c->n,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_close(c);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *unused)
{
	struct admin_conn *c;
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	uid_t self = geteuid();

	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	c = xcalloc(1, sizeof(*c));
	c->n = ++adm.nconns_total;
	if ((c->bev = bufferevent_socket_new(adm.base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_warnx("admin: bufferevent_socket_new failed");
		close(fd);
		free(c);
		return;
	}
	c->cfg = config_ref(adm.cfg);
	TAILQ_INSERT_TAIL(&adm.conns, c, entry);
	adm.nconns++;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_set_timeouts(c->bev,
	    &(struct timeval){ ADMIN_COMMAND_TIMEOUT, 0 },
	    &(struct timeval){ ADMIN_IO_TIMEOUT, 0 });
	c->state = AS_COMMAND;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
		log_warn("admin.%lu SO_PEERCRED", c->n);
		reply_err(c, 530, "permission denied");
		return;
	}
	c->uid = cred.uid;
	c->pid = cred.pid;
	if (cred.uid != 0 && cred.uid != self) {
		/* the socket's mode should have stopped this one */
		log_warnx("admin.%lu refused uid=%u pid=%ld: only root and "
		    "uid %u may use the admin socket", c->n, (unsigned)cred.uid,
		    (long)cred.pid, (unsigned)self);
		reply_err(c, 530, "permission denied");
		return;
	}
	if (adm.nconns > ADMIN_MAX_CONNS) {
		reply_err(c, 421, "too many admin connections; try again");
		return;
	}
	log_debug("admin.%lu connected uid=%u pid=%ld", c->n, (unsigned)cred.uid,
	    (long)cred.pid);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	log_warn("admin accept");
}

/* ---- setting up -------------------------------------------------------- */

/*
 * socket_address - sun for path; a path too long for sun_path is reached
 * through /proc/self/fd/N of its directory (*dirfd, closed by the caller)
 */
static bool
socket_address(const char *dir, struct sockaddr_un *sun, int *dirfd)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	*dirfd = -1;
	if (bsnprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", dir,
	    ADMIN_SOCKET_NAME))
		return true;
	if ((*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		return false;
	return bsnprintf(sun->sun_path, sizeof(sun->sun_path),
	    "/proc/self/fd/%d/%s", *dirfd, ADMIN_SOCKET_NAME);
}

/* clear_stale - a socket left by a daemon that is gone; -1 if one answers */
static int
clear_stale(const struct sockaddr_un *sun, const char *path, char *err,
    size_t errsize)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : (snprintf(err, errsize, "%s: %s",
		    path, strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errsize, "%s exists and is not a socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) != -1) {
		if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0) {
			close(fd);
			snprintf(err, errsize, "%s: another chamoisd answers on "
			    "it (same queue_dir)", path);
			return -1;
		}
		close(fd);
	}
	if (unlink(path) == -1) {
		snprintf(err, errsize, "unlink %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * bind_owned - bind fd at sun as a file of mode 0600 owned by the daemon's
 * user, made so by the bind itself (the umask, and the user's effective
 * ids while root binds): nothing is changed by path afterwards, which the
 * owner of queue_dir could point at another file with a symlink
 * (doc/security.md, issue 12 point 7)
 */
static int
bind_owned(int fd, const struct sockaddr_un *sun, int dirfd,
    const struct config *cfg, char *err, size_t errsize)
{
	struct passwd *pw = NULL;
	struct sockaddr_un rel;
	const struct sockaddr_un *at = sun;
	gid_t egid = getegid();
	int cwd = -1, rc, e;
	mode_t old;

	if (cfg->user && geteuid() == 0 && (pw = getpwnam(cfg->user)) == NULL) {
		snprintf(err, errsize, "user: no such user '%s'", cfg->user);
		return -1;
	}
	if (pw && dirfd != -1) {
		/* /proc/self/fd turns root's once the effective uid changes:
		   bind relative to the directory instead */
		memset(&rel, 0, sizeof(rel));
		rel.sun_family = AF_UNIX;
		str_copy(rel.sun_path, ADMIN_SOCKET_NAME, sizeof(rel.sun_path));
		if ((cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1 ||
		    fchdir(dirfd) == -1) {
			snprintf(err, errsize, "%s: %s", cfg->queue_dir,
			    strerror(errno));
			if (cwd != -1)
				close(cwd);
			return -1;
		}
		at = &rel;
	}
	if (pw && (setegid(pw->pw_gid) == -1 || seteuid(pw->pw_uid) == -1))
		fatal("taking the ids of %s to bind the admin socket", cfg->user);
	old = umask(0177);
	rc = bind(fd, (const struct sockaddr *)at, sizeof(*at));
	e = errno;
	umask(old);
	if (pw && (seteuid(0) == -1 || setegid(egid) == -1))
		fatal("back to root after binding the admin socket");
	if (cwd != -1) {
		if (fchdir(cwd) == -1)
			fatal("fchdir");
		close(cwd);
	}
	if (rc == -1) {
		snprintf(err, errsize, "admin socket %s: %s", adm.path, strerror(e));
		return -1;
	}
	return 0;
}

int
admin_init(struct event_base *base, struct config *cfg, char *err,
    size_t errsize)
{
	struct sockaddr_un sun;
	int fd = -1, dirfd = -1;
	bool bound = false;

	adm.base = base;
	adm.path = xasprintf("%s/%s", cfg->queue_dir, ADMIN_SOCKET_NAME);
	if (!socket_address(cfg->queue_dir, &sun, &dirfd)) {
		snprintf(err, errsize, "%s: path too long", adm.path);
		goto fail;
	}
	if (clear_stale(&sun, adm.path, err, errsize) == -1)
		goto fail;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errsize, "admin socket %s: %s", adm.path,
		    strerror(errno));
		goto fail;
	}
	/* 0600 and the daemon's user: root and that user, nobody else */
	if (bind_owned(fd, &sun, dirfd, cfg, err, errsize) == -1)
		goto fail;
	bound = true;
	if (listen(fd, 16) == -1) {
		snprintf(err, errsize, "listen %s: %s", adm.path, strerror(errno));
		goto fail;
	}
	adm.listener = evconnlistener_new(base, accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (adm.listener == NULL) {
		snprintf(err, errsize, "admin socket %s: evconnlistener_new",
		    adm.path);
		goto fail;
	}
	evconnlistener_set_error_cb(adm.listener, accept_error_cb);
	if (dirfd != -1)
		close(dirfd);
	adm.cfg = config_ref(cfg);
	log_info("admin socket %s", adm.path);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	if (bound)
		unlink(adm.path);
	if (dirfd != -1)
		close(dirfd);
	free(adm.path);
	adm.path = NULL;
	return -1;
}

void
admin_shutdown(void)
{
	struct admin_conn *c;

	if (adm.listener) {
		evconnlistener_free(adm.listener);
		adm.listener = NULL;
	}
	while ((c = TAILQ_FIRST(&adm.conns)) != NULL)
		conn_close(c);
	if (adm.path) {
		unlink(adm.path);
		free(adm.path);
		adm.path = NULL;
	}
	config_free(adm.cfg);
	adm.cfg = NULL;
}

void
admin_configure(struct config *cfg)
{
	struct config *old = adm.cfg;

	adm.cfg = config_ref(cfg);
	config_free(old);
}

void
admin_stop(void)
{
	adm.stopping = true;
}

bool
admin_idle(void)
{
	struct admin_conn *c;

	TAILQ_FOREACH(c, &adm.conns, entry)
		if (c->held)
			return false;
	return true;
}
