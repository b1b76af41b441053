/*
 * milter.c - the client side of the milter protocol, version 6 as
 * Postfix negotiates it (postfix/src/milter/milter8.c, libmilter's
 * engine): framing, the option negotiation, macros, every step, the
 * reply parser and a time limit per step, all on the event loop with a
 * bufferevent (doc/filters.md, doc/protocol.md "Content filters").
 *
 * A packet is four octets of length (network order, the command
 * included), one command octet and its data.  We offer the actions we
 * carry out (add, insert and change header fields, quarantine; the
 * symbol lists are read and ignored: every step's macros are sent) and
 * every protocol option we honour (the NO* steps, the NR_* answers,
 * SKIP, the leading space of header values).  A milter that asks for
 * more gets what it asked for masked off; a version below 2 is refused.
 *
 * One step is outstanding at a time.  A step given before the
 * negotiation is over waits in m->pending; it is then sent, or answered
 * MILTER_CONTINUE if the milter wants no such step.  An answer never
 * comes from inside the call that gave the step.  Every packet a milter
 * sends is bounded (MILTER_PACKET_MAX), and so are the edits it may ask
 * for (MILTER_EDITS_MAX); past either it has broken the protocol, which
 * is MILTER_FAILED, as are a timeout and a lost connection: the caller
 * applies milter_default_action.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../common/log.h"
#include "../common/util.h"
#include "milter.h"

#define MILTER_VERSION	6
#define MILTER_EDITS_MAX	64	/* header changes of one message */

/* what we offer (see the header comment) */
#define OUR_ACTIONS	(SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE | \
	SMFIF_SETSYMLIST)
#define OUR_PROTOCOL	(SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | \
	SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | \
	SMFIP_NR_HDR | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | \
	SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | \
	SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY | \
	SMFIP_HDR_LEADSPC)

enum milter_state {
	MS_CONNECTING,		/* TCP or unix connect */
	MS_NEGOTIATING,		/* SMFIC_OPTNEG sent */
	MS_READY,		/* no step outstanding */
	MS_WAITING,		/* a step's answer is awaited */
	MS_FAILED,		/* broken: no more steps */
	MS_CLOSING,		/* QUIT written, freed when it is out */
};

struct milter {
	struct milter_params p;
	char name[128], logid[40];
	struct event_base *base;
	struct bufferevent *bev;
	struct event *timer;
	enum milter_state state;
	uint32_t actions, protocol;	/* as negotiated */
	struct evbuffer *pending;	/* a step before the negotiation ended */
	char pending_cmd;
	unsigned pending_timeout;
	/* the step awaited */
	char step;			/* its SMFIC_* */
	unsigned step_timeout;
	milter_answer_fn fn;
	void *arg;
	bool conn_accepted;		/* accepted the connection: no more steps */
	bool msg_accepted;		/* accepted this message */
	bool skip_body;			/* SMFIR_SKIP: no more body chunks */
	unsigned stale;			/* answers still due to abandoned steps */
	struct milter_edit edits[MILTER_EDITS_MAX];
	size_t nedits;
	char *quarantine;
};

/* get32 - four octets, network order */
static uint32_t
get32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

/* field - a NUL-terminated string at *off within len: it, moving past it */
static const char *
field(const char *pkt, size_t len, size_t *off)
{
	const char *s = pkt + *off, *nul;

	if (*off >= len || (nul = memchr(s, '\0', len - *off)) == NULL)
		return NULL;
	*off += (size_t)(nul - s) + 1;
	return s;
}

/*
 * reply_ok - a SMFIR_REPLYCODE text: lines of "4xx" or "5xx", the same
 * code on each, "-" on all but the last (RFC 5321 4.2.1), CRLF between
 */
static bool
reply_ok(char *t)
{
	char *line = t;

	if ((t[0] != '4' && t[0] != '5') || t[1] < '0' || t[1] > '9' ||
	    t[2] < '0' || t[2] > '9')
		return false;
	for (;;) {
		char *end = strstr(line, "\r\n");

		if (strncmp(line, t, 3) != 0)
			return false;
		if (end == NULL)
			return line[3] == ' ' || line[3] == '\0';
		if (line[3] != '-' || end[2] == '\0')
			return false;
		line = end + 2;
	}
}

/* milter_parse - see milter.h */
bool
milter_parse(char *pkt, size_t len, struct milter_msg *m)
{
	size_t off = 1;

	memset(m, 0, sizeof(*m));
	if (len < 1)
		return false;
	m->cmd = pkt[0];
	switch (m->cmd) {
	case SMFIR_OPTNEG:
		/* version, actions, protocol; then symbol lists, ignored */
		if (len < 13)
			return false;
		m->version = get32(pkt + 1);
		m->actions = get32(pkt + 5);
		m->protocol = get32(pkt + 9);
		return true;
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (m->cmd != SMFIR_ADDHEADER) {
			if (len < 5)
				return false;
			m->index = get32(pkt + 1);
			off = 5;
		}
		if ((m->name = field(pkt, len, &off)) == NULL ||
		    (m->value = field(pkt, len, &off)) == NULL)
			return false;
		/* a field name: printable ASCII but the colon (RFC 5322 2.2) */
		if (m->name[0] == '\0')
			return false;
		for (const char *c = m->name; *c; c++)
			if (*c <= ' ' || *c > '~' || *c == ':')
				return false;
		return true;
	case SMFIR_REPLYCODE:
		if ((m->text = field(pkt, len, &off)) == NULL)
			return false;
		return reply_ok((char *)m->text);
	case SMFIR_QUARANTINE:
		if ((m->text = field(pkt, len, &off)) == NULL)
			return false;
		return true;
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
	case SMFIR_DISCARD:
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_SKIP:
	case SMFIR_PROGRESS:
	case SMFIR_CONN_FAIL:
	case SMFIR_SHUTDOWN:
		return true;
	default:
		/* SMFIR_ADDRCPT, CHGFROM, REPLBODY...: not offered, not taken */
		return false;
	}
}

/* milter_reply_line - see milter.h */
void
milter_reply_line(const char *text, char *out, size_t outlen)
{
	char line[REPLY_LINE_MAX];
	const char *rest;
	size_t n = strcspn(text, "\r\n"), o = 0;

	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	for (size_t i = 0; i < n; i++)
		line[o++] = text[i] >= ' ' && text[i] <= '~' ? text[i] : '?';
	line[o] = '\0';
	if (o < 4) {
		bsnprintf(out, outlen, "%.3s %c.0.0 Refused by a content filter",
		    line, line[0]);
		return;
	}
	rest = line + 4;
	/* its own enhanced code when it has one of its class (RFC 3463) */
	if (rest[0] == line[0] && rest[1] == '.' && strspn(rest + 2, "0123456789.") > 2)
		bsnprintf(out, outlen, "%.3s %s", line, rest);
	else
		bsnprintf(out, outlen, "%.3s %c.0.0 %s", line, line[0],
		    rest[0] ? rest : "Refused by a content filter");
}

static void set_failed(struct milter *, const char *why);

/* arm - the time limit of what is awaited now (seconds) */
static void
arm(struct milter *m, unsigned seconds)
{
	struct timeval tv = { seconds, 0 };

	evtimer_add(m->timer, &tv);
}

/* put_packet - one packet into buf: length, command, data */
static void
put_packet(struct evbuffer *buf, char cmd, const void *data, size_t len)
{
	uint32_t n = htonl((uint32_t)len + 1);

	evbuffer_add(buf, &n, 4);
	evbuffer_add(buf, &cmd, 1);
	if (len > 0)
		evbuffer_add(buf, data, len);
}

/* put_macros - SMFIC_MACRO for the step cmd, when there are macros */
static void
put_macros(struct evbuffer *buf, char cmd, const struct milter_macro *mac,
    size_t n)
{
	struct evbuffer *d;

	if (n == 0)
		return;
	d = evbuffer_new();
	if (d == NULL)
		fatalx("evbuffer_new");
	evbuffer_add(d, &cmd, 1);
	for (size_t i = 0; i < n; i++) {
		evbuffer_add(d, mac[i].name, strlen(mac[i].name) + 1);
		evbuffer_add(d, mac[i].value ? mac[i].value : "",
		    strlen(mac[i].value ? mac[i].value : "") + 1);
	}
	{
		uint32_t len = htonl((uint32_t)evbuffer_get_length(d) + 1);
		char c = SMFIC_MACRO;

		evbuffer_add(buf, &len, 4);
		evbuffer_add(buf, &c, 1);
		evbuffer_add_buffer(buf, d);
	}
	evbuffer_free(d);
}

/* step_off - the negotiated options: is the step not wanted (NO*)? */
static bool
step_off(const struct milter *m, char cmd)
{
	uint32_t p = m->protocol;

	switch (cmd) {
	case SMFIC_CONNECT:	return p & SMFIP_NOCONNECT;
	case SMFIC_HELO:	return p & SMFIP_NOHELO;
	case SMFIC_MAIL:	return p & SMFIP_NOMAIL;
	case SMFIC_RCPT:	return p & SMFIP_NORCPT;
	case SMFIC_DATA:	return p & SMFIP_NODATA;
	case SMFIC_HEADER:	return p & SMFIP_NOHDRS;
	case SMFIC_EOH:		return p & SMFIP_NOEOH;
	case SMFIC_BODY:	return (p & SMFIP_NOBODY) || m->skip_body;
	default:		return false;
	}
}

/* step_silent - the milter answers no such step (NR_*) */
static bool
step_silent(const struct milter *m, char cmd)
{
	uint32_t p = m->protocol;

	switch (cmd) {
	case SMFIC_CONNECT:	return p & SMFIP_NR_CONN;
	case SMFIC_HELO:	return p & SMFIP_NR_HELO;
	case SMFIC_MAIL:	return p & SMFIP_NR_MAIL;
	case SMFIC_RCPT:	return p & SMFIP_NR_RCPT;
	case SMFIC_DATA:	return p & SMFIP_NR_DATA;
	case SMFIC_HEADER:	return p & SMFIP_NR_HDR;
	case SMFIC_EOH:		return p & SMFIP_NR_EOH;
	case SMFIC_BODY:	return p & SMFIP_NR_BODY;
	default:		return false;
	}
}

/* answer - the step awaited is answered: call back (last thing done) */
static void
answer(struct milter *m, enum milter_verdict v, const char *reply)
{
	milter_answer_fn fn = m->fn;
	void *arg = m->arg;

	evtimer_del(m->timer);
	m->fn = NULL;
	if (m->state == MS_WAITING)
		m->state = MS_READY;
	if (fn != NULL)
		fn(arg, v, reply ? reply : "");
}

/*
 * send_step - the packets of a step (in buf) go out now, or wait for the
 * negotiation; returns whether an answer will come
 */
static bool
send_step(struct milter *m, char cmd, struct evbuffer *buf, unsigned timeout,
    milter_answer_fn fn, void *arg)
{
	if (m->state == MS_FAILED || m->state == MS_CLOSING || m->fn != NULL ||
	    m->conn_accepted) {
		evbuffer_free(buf);
		return false;
	}
	m->fn = fn;
	m->arg = arg;
	m->step = cmd;
	m->step_timeout = timeout;
	if (m->state == MS_CONNECTING || m->state == MS_NEGOTIATING) {
		evbuffer_add_buffer(m->pending, buf);
		evbuffer_free(buf);
		return true;
	}
	if (step_off(m, cmd)) {
		m->fn = NULL;
		evbuffer_free(buf);
		return false;
	}
	bufferevent_write_buffer(m->bev, buf);
	evbuffer_free(buf);
	if (step_silent(m, cmd)) {
		m->fn = NULL;
		return false;
	}
	m->state = MS_WAITING;
	arm(m, timeout);
	return true;
}

/* ready - negotiated: the step that waited goes out (or is answered) */
static void
ready(struct milter *m)
{
	m->state = MS_READY;
	evtimer_del(m->timer);
	if (m->fn == NULL)
		return;
	if (step_off(m, m->step)) {
		evbuffer_drain(m->pending, evbuffer_get_length(m->pending));
		answer(m, MILTER_CONTINUE, NULL);
		return;
	}
	bufferevent_write_buffer(m->bev, m->pending);
	if (step_silent(m, m->step)) {
		answer(m, MILTER_CONTINUE, NULL);
		return;
	}
	m->state = MS_WAITING;
	arm(m, m->step_timeout);
}

/* edit_add - a header change of the end of message */
static bool
edit_add(struct milter *m, const struct milter_msg *msg)
{
	struct milter_edit *e;

	if (m->nedits == MILTER_EDITS_MAX)
		return false;
	e = &m->edits[m->nedits++];
	e->cmd = msg->cmd;
	e->index = msg->index;
	e->name = xstrdup(msg->name);
	e->value = xstrdup(msg->value);
	return true;
}

static void
edits_clear(struct milter *m)
{
	for (size_t i = 0; i < m->nedits; i++) {
		free(m->edits[i].name);
		free(m->edits[i].value);
	}
	m->nedits = 0;
	free(m->quarantine);
	m->quarantine = NULL;
}

/* handle - one packet from the milter */
static void
handle(struct milter *m, struct milter_msg *msg)
{
	char reply[REPLY_LINE_MAX];
	bool eom = m->step == SMFIC_BODYEOB;

	if (m->state == MS_NEGOTIATING) {
		if (msg->cmd != SMFIR_OPTNEG || msg->version < 2) {
			set_failed(m, "bad negotiation");
			return;
		}
		m->actions = msg->actions & OUR_ACTIONS;
		m->protocol = msg->protocol & OUR_PROTOCOL;
		log_debug("%s milter %s negotiated version=%u actions=0x%x "
		    "protocol=0x%x", m->logid, m->name, msg->version, m->actions,
		    m->protocol);
		ready(m);
		return;
	}
	if (m->stale > 0) {
		/* an abandoned step's answer (milter_abort): swallowed */
		switch (msg->cmd) {
		case SMFIR_PROGRESS: case SMFIR_ADDHEADER: case SMFIR_INSHEADER:
		case SMFIR_CHGHEADER: case SMFIR_QUARANTINE:
			return;
		default:
			m->stale--;
			return;
		}
	}
	if (m->state != MS_WAITING) {
		set_failed(m, "unexpected packet");
		return;
	}
	switch (msg->cmd) {
	case SMFIR_PROGRESS:
		arm(m, m->step_timeout);
		return;
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (!eom || !(m->actions & (msg->cmd == SMFIR_CHGHEADER ?
		    SMFIF_CHGHDRS : SMFIF_ADDHDRS)) || !edit_add(m, msg))
			set_failed(m, "header change not allowed here");
		return;
	case SMFIR_QUARANTINE:
		if (!eom || !(m->actions & SMFIF_QUARANTINE)) {
			set_failed(m, "quarantine not allowed here");
			return;
		}
		free(m->quarantine);
		m->quarantine = xstrdup(msg->text[0] ? msg->text : "quarantined");
		return;
	case SMFIR_SKIP:
		if (m->step != SMFIC_BODY) {
			set_failed(m, "skip outside the body");
			return;
		}
		m->skip_body = true;
		answer(m, MILTER_CONTINUE, NULL);
		return;
	case SMFIR_CONTINUE:
		answer(m, MILTER_CONTINUE, NULL);
		return;
	case SMFIR_ACCEPT:
		/* connect and helo: the whole connection; later: the message */
		if (m->step == SMFIC_CONNECT || m->step == SMFIC_HELO)
			m->conn_accepted = true;
		else
			m->msg_accepted = true;
		answer(m, MILTER_ACCEPT, NULL);
		return;
	case SMFIR_DISCARD:
		m->msg_accepted = true;
		answer(m, MILTER_DISCARD, NULL);
		return;
	case SMFIR_REJECT:
		answer(m, MILTER_REJECT, NULL);
		return;
	case SMFIR_TEMPFAIL:
	case SMFIR_CONN_FAIL:
		answer(m, MILTER_TEMPFAIL, NULL);
		return;
	case SMFIR_REPLYCODE:
		milter_reply_line(msg->text, reply, sizeof(reply));
		answer(m, reply[0] == '5' ? MILTER_REJECT : MILTER_TEMPFAIL, reply);
		return;
	default:
		set_failed(m, "unexpected answer");
		return;
	}
}

/* set_failed - the milter is broken: log, and answer a step awaited */
static void
set_failed(struct milter *m, const char *why)
{
	if (m->state == MS_FAILED || m->state == MS_CLOSING)
		return;
	log_warnx("%s milter %s failed reason=\"%s\"", m->logid, m->name, why);
	m->state = MS_FAILED;
	evtimer_del(m->timer);
	if (m->bev != NULL) {
		bufferevent_free(m->bev);
		m->bev = NULL;
	}
	evbuffer_drain(m->pending, evbuffer_get_length(m->pending));
	if (m->fn != NULL)
		answer(m, MILTER_FAILED, NULL);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct milter *m = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (m->state != MS_FAILED && m->state != MS_CLOSING) {
		struct milter_msg msg;
		unsigned char hdr[4];
		uint32_t len;
		char *pkt;

		if (evbuffer_copyout(in, hdr, 4) < 4)
			return;
		len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		    (uint32_t)hdr[2] << 8 | hdr[3];
		if (len == 0 || len > MILTER_PACKET_MAX) {
			set_failed(m, "packet length out of bounds");
			return;
		}
		if (evbuffer_get_length(in) < 4 + (size_t)len)
			return;
		evbuffer_drain(in, 4);
		pkt = xmalloc(len + 1);
		evbuffer_remove(in, pkt, len);
		pkt[len] = '\0';
		if (!milter_parse(pkt, len, &msg))
			set_failed(m, "malformed packet");
		else
			handle(m, &msg);
		free(pkt);
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct milter *m = arg;

	if (m->state == MS_CLOSING)
		milter_close(m);	/* QUIT is out */
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct milter *m = arg;

	if (what & BEV_EVENT_CONNECTED) {
		struct evbuffer *b = evbuffer_new();
		char d[12];
		uint32_t v = htonl(MILTER_VERSION), a = htonl(OUR_ACTIONS),
		    p = htonl(OUR_PROTOCOL);

		if (b == NULL)
			fatalx("evbuffer_new");
		memcpy(d, &v, 4);
		memcpy(d + 4, &a, 4);
		memcpy(d + 8, &p, 4);
		put_packet(b, SMFIC_OPTNEG, d, sizeof(d));
		bufferevent_write_buffer(bev, b);
		evbuffer_free(b);
		m->state = MS_NEGOTIATING;
		bufferevent_enable(bev, EV_READ);
		return;
	}
	if (m->state == MS_CLOSING) {
		milter_close(m);
		return;
	}
	set_failed(m, (what & BEV_EVENT_EOF) ? "connection closed" :
	    m->state == MS_CONNECTING ? "cannot connect" : "connection lost");
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter *m = arg;

	if (m->state == MS_CLOSING) {
		milter_close(m);
		return;
	}
	set_failed(m, "timeout");
}

/* milter_open - see milter.h */
struct milter *
milter_open(struct event_base *base, const struct milter_params *p)
{
	struct milter *m = xcalloc(1, sizeof(*m));

	m->p = *p;
	m->base = base;
	str_copy(m->name, p->name, sizeof(m->name));
	str_copy(m->logid, p->logid, sizeof(m->logid));
	m->p.name = m->name;
	m->p.logid = m->logid;
	m->pending = evbuffer_new();
	m->timer = evtimer_new(base, timer_cb, m);
	m->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (m->pending == NULL || m->timer == NULL || m->bev == NULL)
		fatalx("milter: out of memory");
	/* the answers we read are bounded packet by packet (read_cb) */
	bufferevent_setwatermark(m->bev, EV_READ, 0, MILTER_PACKET_MAX + 4);
	bufferevent_setcb(m->bev, read_cb, write_cb, event_cb, m);
	m->state = MS_CONNECTING;
	arm(m, p->connect_timeout);
	if (bufferevent_socket_connect(m->bev, (struct sockaddr *)p->sa,
	    (int)p->salen) == -1) {
		/* refused at once (a unix socket that is not there) */
		log_warnx("%s milter %s failed reason=\"cannot connect: %s\"",
		    m->logid, m->name, strerror(errno));
		m->state = MS_FAILED;
		evtimer_del(m->timer);
		bufferevent_free(m->bev);
		m->bev = NULL;
	}
	return m;
}

/* step_buf - a new buffer with the step's macros in it */
static struct evbuffer *
step_buf(char cmd, const struct milter_macro *mac, size_t n)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		fatalx("evbuffer_new");
	put_macros(b, cmd, mac, n);
	return b;
}

/* milter_connect - see milter.h */
bool
milter_connect(struct milter *m, const char *hostname, const struct sockaddr *sa,
    const struct milter_macro *mac, size_t nmac, milter_answer_fn fn, void *arg)
{
	struct evbuffer *b = step_buf(SMFIC_CONNECT, mac, nmac), *d;
	char addr[INET6_ADDRSTRLEN] = "", fam = 'U';
	uint16_t port = 0;

	if ((d = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		fam = '4';
		port = in->sin_port;
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		fam = '6';
		port = in6->sin6_port;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
	}
	evbuffer_add(d, hostname, strlen(hostname) + 1);
	evbuffer_add(d, &fam, 1);
	evbuffer_add(d, &port, 2);	/* already in network order */
	evbuffer_add(d, addr, strlen(addr) + 1);
	{
		uint32_t len = htonl((uint32_t)evbuffer_get_length(d) + 1);
		char c = SMFIC_CONNECT;

		evbuffer_add(b, &len, 4);
		evbuffer_add(b, &c, 1);
		evbuffer_add_buffer(b, d);
	}
	evbuffer_free(d);
	return send_step(m, SMFIC_CONNECT, b, m->p.command_timeout, fn, arg);
}

/* milter_helo - see milter.h */
bool
milter_helo(struct milter *m, const char *helo, const struct milter_macro *mac,
    size_t nmac, milter_answer_fn fn, void *arg)
{
	struct evbuffer *b = step_buf(SMFIC_HELO, mac, nmac);

	put_packet(b, SMFIC_HELO, helo, strlen(helo) + 1);
	return send_step(m, SMFIC_HELO, b, m->p.command_timeout, fn, arg);
}

/* strings_step - a step whose data is NUL-terminated strings */
static bool
strings_step(struct milter *m, char cmd, const char *const *s, size_t n,
    const struct milter_macro *mac, size_t nmac, milter_answer_fn fn, void *arg)
{
	struct evbuffer *b = step_buf(cmd, mac, nmac);
	size_t len = 0;
	char *d, *o;

	for (size_t i = 0; i < n; i++)
		len += strlen(s[i]) + 1;
	o = d = xmalloc(len + 1);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(s[i]) + 1;

		memcpy(o, s[i], l);
		o += l;
	}
	put_packet(b, cmd, d, len);
	free(d);
	return send_step(m, cmd, b, m->p.command_timeout, fn, arg);
}

/* milter_mail - see milter.h */
bool
milter_mail(struct milter *m, const char *const *args, size_t nargs,
    const struct milter_macro *mac, size_t nmac, milter_answer_fn fn, void *arg)
{
	m->msg_accepted = false;
	m->skip_body = false;
	edits_clear(m);
	return strings_step(m, SMFIC_MAIL, args, nargs, mac, nmac, fn, arg);
}

/* milter_rcpt - see milter.h */
bool
milter_rcpt(struct milter *m, const char *rcpt, const struct milter_macro *mac,
    size_t nmac, milter_answer_fn fn, void *arg)
{
	if (m->msg_accepted)
		return false;
	return strings_step(m, SMFIC_RCPT, &rcpt, 1, mac, nmac, fn, arg);
}

/* milter_data - see milter.h */
bool
milter_data(struct milter *m, const struct milter_macro *mac, size_t nmac,
    milter_answer_fn fn, void *arg)
{
	struct evbuffer *b;

	if (m->msg_accepted)
		return false;
	b = step_buf(SMFIC_DATA, mac, nmac);
	put_packet(b, SMFIC_DATA, NULL, 0);
	return send_step(m, SMFIC_DATA, b, m->p.command_timeout, fn, arg);
}

/* milter_header - see milter.h */
bool
milter_header(struct milter *m, const char *name, const char *value,
    milter_answer_fn fn, void *arg)
{
	const char *s[2] = { name, value };

	if (m->msg_accepted)
		return false;
	/* without HDR_LEADSPC the value starts after the colon's spaces */
	if (!(m->protocol & SMFIP_HDR_LEADSPC) && m->state != MS_CONNECTING &&
	    m->state != MS_NEGOTIATING)
		s[1] += strspn(value, " \t");
	return strings_step(m, SMFIC_HEADER, s, 2, NULL, 0, fn, arg);
}

/* milter_eoh - see milter.h */
bool
milter_eoh(struct milter *m, const struct milter_macro *mac, size_t nmac,
    milter_answer_fn fn, void *arg)
{
	struct evbuffer *b;

	if (m->msg_accepted)
		return false;
	b = step_buf(SMFIC_EOH, mac, nmac);
	put_packet(b, SMFIC_EOH, NULL, 0);
	return send_step(m, SMFIC_EOH, b, m->p.command_timeout, fn, arg);
}

/* milter_body - see milter.h */
bool
milter_body(struct milter *m, const char *text, size_t len,
    milter_answer_fn fn, void *arg)
{
	struct evbuffer *b;
	char *d;
	size_t o = 0;

	if (m->msg_accepted || m->skip_body || len == 0 ||
	    len > MILTER_CHUNK / 2)
		return false;
	/* the body as on the wire: CRLF line ends (Postfix does the same) */
	d = xmalloc(2 * len);
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\n')
			d[o++] = '\r';
		d[o++] = text[i];
	}
	b = step_buf(SMFIC_BODY, NULL, 0);
	put_packet(b, SMFIC_BODY, d, o);
	free(d);
	return send_step(m, SMFIC_BODY, b, m->p.content_timeout, fn, arg);
}

/* milter_eom - see milter.h */
bool
milter_eom(struct milter *m, const struct milter_macro *mac, size_t nmac,
    milter_answer_fn fn, void *arg)
{
	struct evbuffer *b;

	if (m->msg_accepted)
		return false;
	b = step_buf(SMFIC_BODYEOB, mac, nmac);
	put_packet(b, SMFIC_BODYEOB, NULL, 0);
	return send_step(m, SMFIC_BODYEOB, b, m->p.content_timeout, fn, arg);
}

/* milter_abort - see milter.h */
void
milter_abort(struct milter *m)
{
	m->msg_accepted = false;
	m->skip_body = false;
	if (m->state == MS_FAILED || m->state == MS_CLOSING)
		return;
	m->fn = NULL;		/* an answer still on its way is not wanted */
	if (m->state == MS_CONNECTING || m->state == MS_NEGOTIATING) {
		evbuffer_drain(m->pending, evbuffer_get_length(m->pending));
		return;
	}
	if (m->state == MS_WAITING) {
		/*
		 * the answer in flight comes before anything to a later step
		 * (the protocol keeps order): it is counted and swallowed
		 */
		m->stale++;
		m->state = MS_READY;
		evtimer_del(m->timer);
	}
	{
		struct evbuffer *b = step_buf(SMFIC_ABORT, NULL, 0);

		put_packet(b, SMFIC_ABORT, NULL, 0);
		bufferevent_write_buffer(m->bev, b);
		evbuffer_free(b);
	}
}

/* milter_edits - see milter.h */
const struct milter_edit *
milter_edits(const struct milter *m, size_t *n)
{
	*n = m->nedits;
	return m->edits;
}

/* milter_quarantine - see milter.h */
const char *
milter_quarantine(const struct milter *m)
{
	return m->quarantine;
}

/* milter_failed - see milter.h */
bool
milter_failed(const struct milter *m)
{
	return m->state == MS_FAILED;
}

/* milter_close - see milter.h */
void
milter_close(struct milter *m)
{
	if (m == NULL)
		return;
	m->fn = NULL;
	if (m->state != MS_CLOSING && m->bev != NULL &&
	    m->state != MS_CONNECTING) {
		struct evbuffer *b = step_buf(SMFIC_QUIT, NULL, 0);

		/* QUIT goes out, then the socket closes (write_cb) */
		put_packet(b, SMFIC_QUIT, NULL, 0);
		m->state = MS_CLOSING;
		bufferevent_disable(m->bev, EV_READ);
		bufferevent_write_buffer(m->bev, b);
		evbuffer_free(b);
		arm(m, 5);
		return;
	}
	if (m->bev != NULL)
		bufferevent_free(m->bev);
	evtimer_del(m->timer);
	event_free(m->timer);
	evbuffer_free(m->pending);
	edits_clear(m);
	free(m);
}
