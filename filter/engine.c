/*
 * engine.c - milter_filters, the content filters plugged into the
 * session engine (smtpd/route.h, struct smtpd_filter_ops; doc/filters.md)
 * on the mx and the submission roles: every milter line of the config,
 * in its order, one connection each per SMTP session (milter.c).
 *
 * Each step goes to the milters one after the other; the first reject or
 * tempfail is the reply (the milter's own text when it gives one).  A
 * refusal at connect or HELO is the reply to MAIL; one met in the
 * header or the body is the reply to the final dot.  The message is read
 * from the engine's kept body at the milters' pace (no buffer of ours
 * grows with it): the header section once it is whole (at most
 * HEADER_EDIT_MAX octets), field by field, then the body in chunks.  At
 * the end, each milter's header changes go to the engine
 * (smtpd_tx_header_*), in milter order, and the answer lets the route's
 * end run: the forward's final dot, the local copies, the queue.  A
 * milter that cannot be reached, times out or breaks the protocol means
 * milter_default_action: tempfail (451 4.7.1) or accept (skipped).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../common/addr.h"
#include "../common/body.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../smtpd/headedit.h"
#include "../queue/queue.h"
#include "../smtpd/smtpd.h"
#include "engine.h"
#include "milter.h"

#define MILTERS_MAX	8
#define CHUNK		32768		/* body octets a step (LF form) */

#define DEFAULT_TEMPFAIL "451 4.7.1 Service unavailable - try again later"
#define DEFAULT_REJECT	"550 5.7.1 Command rejected"
#define DEFAULT_MSG_REJECT "550 5.7.1 Message content rejected"

static struct event_base *base;

enum fstep {
	FS_NONE, FS_CONNECT, FS_HELO, FS_MAIL, FS_RCPT, FS_DATA, FS_HEADER,
	FS_EOH, FS_BODY, FS_EOM,
};

struct hfield {
	char *name, *value;
};

struct fsess {
	uint64_t sid;
	struct milter *m[MILTERS_MAX];
	size_t n;
	bool default_accept;
	/* the step in progress: at milter cur */
	enum fstep step;
	size_t cur;
	bool busy;			/* an answer is awaited */
	/* what waits for its turn */
	bool connect_due, helo_due, mail_due, rcpt_due, end_due;
	char conn_refusal[REPLY_LINE_MAX];	/* connect/HELO: given at MAIL */
	char refusal[REPLY_LINE_MAX];	/* the step's (or the message's) */
	/* the message */
	bool msg_open;			/* MAIL went to the milters */
	bool in_data;			/* DATA sent: the message is being fed */
	bool head_done, eoh_done, body_done;
	struct hfield *fields;
	size_t nfields, field;
	uint64_t body_off;		/* the next body octet, in the kept body */
	char chunk[CHUNK];
	size_t chunk_len;
	char rcpt[PATH_MAX_OCTETS + 3];	/* "<a@b>" */
};

void
milter_filters_init(struct event_base *b)
{
	base = b;
}

static void run(struct fsess *);

static void
fields_free(struct fsess *f)
{
	for (size_t i = 0; i < f->nfields; i++) {
		free(f->fields[i].name);
		free(f->fields[i].value);
	}
	free(f->fields);
	f->fields = NULL;
	f->nfields = f->field = 0;
}

/* msg_reset - the message is over: ready for the next */
static void
msg_reset(struct fsess *f)
{
	fields_free(f);
	f->msg_open = f->in_data = f->head_done = f->eoh_done = false;
	f->body_done = false;
	f->body_off = 0;
	f->chunk_len = 0;
	f->mail_due = f->rcpt_due = f->end_due = false;
	f->refusal[0] = '\0';
}

/* session - the session of f, NULL when it has gone */
static struct smtpd_session *
session(struct fsess *f)
{
	return smtpd_session_find(f->sid);
}

/* step_name - for log lines */
static const char *
step_name(enum fstep st)
{
	static const char *const names[] = {
		"none", "connect", "helo", "mail", "rcpt", "data", "header",
		"eoh", "body", "eom",
	};

	return names[st];
}

/* quarantine_reason - the first milter's that asked to quarantine the message */
static const char *
quarantine_reason(const struct fsess *f)
{
	for (size_t i = 0; i < f->n; i++)
		if (!milter_failed(f->m[i]) && milter_quarantine(f->m[i]) != NULL)
			return milter_quarantine(f->m[i]);
	return NULL;
}

/* quarantined - the message is in the quarantine folder (or not: error) */
static void
quarantined(void *arg, int error, const char *id)
{
	uint64_t *sid = arg;
	struct smtpd_session *s = smtpd_session_find(*sid);

	free(sid);
	if (s == NULL)
		return;		/* it stays quarantined all the same */
	if (error != 0) {
		errno = error;
		log_warn("%s milter quarantine failed", smtpd_tx_id(s));
		smtpd_filter_answer(s, store_error_reply(error));
		return;
	}
	log_info("%s milter quarantine id=%s", smtpd_tx_id(s), id);
	/* as Postfix holds: the sender is not told (doc/filters.md) */
	smtpd_filter_kept(s, "quarantined", "250 2.0.0 Ok: queued as %s", id);
}

/*
 * quarantine - a milter asked to quarantine the message: it goes, with
 * the header changes, to queue_dir/quarantine (queue_quarantine) and
 * nowhere else
 */
static void
quarantine(struct fsess *f, struct smtpd_session *s, const char *why)
{
	const struct config *c = smtpd_session_config(s);
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	struct body *b = xcalloc(1, sizeof(*b));
	char *const *rcpts;
	char reason[LOG_ESC(REPLY_LINE_MAX)];
	uint64_t *sid = xmalloc(sizeof(*sid));

	log_text(reason, sizeof(reason), why);
	m->sender = xstrdup(smtpd_tx_sender(s));
	m->owner = xstrdup("");
	m->uid = -1;
	m->smtputf8 = smtpd_tx_smtputf8(s) || smtpd_tx_header_non_ascii(s);
	m->body8bit = smtpd_tx_body8bit(s);
	rcpts = smtpd_tx_rcpts(s, &m->nrcpts);
	m->rcpts = xcalloc(m->nrcpts, sizeof(*m->rcpts));
	for (size_t i = 0; i < m->nrcpts; i++)
		m->rcpts[i].orig = xstrdup(rcpts[i]);
	smtpd_filter_take_body(s, b);
	log_info("%s milter quarantine reason=\"%s\"", smtpd_tx_id(s), reason);
	*sid = f->sid;
	queue_quarantine(m, b, c->queue_dir, reason, quarantined, sid);
}

/*
 * finish - the step went through every milter (or was refused): hand
 * the answer the engine waits for, and go on with what is due
 */
static void
finish(struct fsess *f, struct smtpd_session *s)
{
	enum fstep st = f->step;
	char refusal[REPLY_LINE_MAX];

	f->step = FS_NONE;
	f->cur = 0;
	str_copy(refusal, f->refusal, sizeof(refusal));
	switch (st) {
	case FS_CONNECT:
	case FS_HELO:
		if (refusal[0] && !f->conn_refusal[0])
			str_copy(f->conn_refusal, refusal, sizeof(f->conn_refusal));
		f->refusal[0] = '\0';
		break;
	case FS_MAIL:
		f->refusal[0] = '\0';
		smtpd_filter_answer(s, refusal[0] ? refusal : NULL);
		return;		/* the engine goes on (or resets: msg_reset) */
	case FS_RCPT:
		f->refusal[0] = '\0';
		smtpd_filter_answer(s, refusal[0] ? refusal : NULL);
		return;
	case FS_HEADER:
		f->field++;
		break;
	case FS_DATA:
	case FS_EOH:
	case FS_BODY:
		/* a refusal stays for the end (f->refusal) */
		break;
	case FS_EOM:
		f->end_due = false;
		if (!refusal[0] && quarantine_reason(f) != NULL) {
			quarantine(f, s, quarantine_reason(f));
			return;
		}
		smtpd_filter_answer(s, refusal[0] ? refusal : NULL);
		return;
	case FS_NONE:
		break;
	}
	run(f);
}

/* macros of the steps (Postfix's milter_*_macros) */
struct macros {
	struct milter_macro v[12];
	size_t n;
	char buf[6][PATH_MAX_OCTETS + 64];
};

static void
mac(struct macros *m, const char *name, const char *value)
{
	m->v[m->n].name = name;
	m->v[m->n].value = value;
	m->n++;
}

/* step_macros - what the step sends before it */
static void
step_macros(struct fsess *f, struct smtpd_session *s, enum fstep st,
    struct macros *m)
{
	const struct config *c = smtpd_session_config(s);
	const char *id = smtpd_tx_id(s), *user = smtpd_session_user(s);

	m->n = 0;
	switch (st) {
	case FS_CONNECT:
		mac(m, "j", c->hostname);
		mac(m, "{daemon_name}", "chamoisd");
		mac(m, "v", "chamois");
		mac(m, "{client_addr}", smtpd_session_peer(s));
		mac(m, "{client_name}", smtpd_session_peer(s));
		bsnprintf(m->buf[0], sizeof(m->buf[0]), "[%s]",
		    smtpd_session_peer(s));
		mac(m, "_", m->buf[0]);
		break;
	case FS_HELO:
		if (smtpd_session_tls(s)) {
			bsnprintf(m->buf[0], sizeof(m->buf[0]), "%u",
			    smtpd_session_tls_bits(s));
			mac(m, "{cipher_bits}", m->buf[0]);
		}
		break;
	case FS_MAIL:
		mac(m, "i", id ? id : "");
		if (user != NULL)
			mac(m, "{auth_authen}", user);
		bsnprintf(m->buf[1], sizeof(m->buf[1]), "%s", smtpd_tx_sender(s));
		mac(m, "{mail_addr}", m->buf[1]);
		break;
	case FS_RCPT:
		bsnprintf(m->buf[2], sizeof(m->buf[2]), "%.*s",
		    (int)(strlen(f->rcpt) >= 2 ? strlen(f->rcpt) - 2 : 0),
		    f->rcpt + 1);
		mac(m, "{rcpt_addr}", m->buf[2]);
		break;
	case FS_DATA:
	case FS_EOH:
	case FS_EOM:
		mac(m, "i", id ? id : "");
		break;
	default:
		break;
	}
}

static void answered(void *, enum milter_verdict, const char *);

/* step_send - the step to milter i: true when an answer will come */
static bool
step_send(struct fsess *f, struct smtpd_session *s, size_t i)
{
	struct milter *m = f->m[i];
	struct macros mc;
	char sender[PATH_MAX_OCTETS + 3];
	const char *args[1];

	step_macros(f, s, f->step, &mc);
	switch (f->step) {
	case FS_CONNECT:
		{
			socklen_t len;
			const struct sockaddr *sa = smtpd_session_sockaddr(s, &len);

			return milter_connect(m, smtpd_session_peer(s), sa, mc.v,
			    mc.n, answered, f);
		}
	case FS_HELO:
		return milter_helo(m, smtpd_session_helo(s), mc.v, mc.n,
		    answered, f);
	case FS_MAIL:
		bsnprintf(sender, sizeof(sender), "<%s>", smtpd_tx_sender(s));
		args[0] = sender;
		return milter_mail(m, args, 1, mc.v, mc.n, answered, f);
	case FS_RCPT:
		return milter_rcpt(m, f->rcpt, mc.v, mc.n, answered, f);
	case FS_DATA:
		return milter_data(m, mc.v, mc.n, answered, f);
	case FS_HEADER:
		return milter_header(m, f->fields[f->field].name,
		    f->fields[f->field].value, answered, f);
	case FS_EOH:
		return milter_eoh(m, mc.v, mc.n, answered, f);
	case FS_BODY:
		return milter_body(m, f->chunk, f->chunk_len, answered, f);
	case FS_EOM:
		return milter_eom(m, mc.v, mc.n, answered, f);
	case FS_NONE:
		break;
	}
	return false;
}

/*
 * apply_edits - milter i accepted the message: its header changes go to
 * the engine; false when one could not be made
 */
static bool
apply_edits(struct fsess *f, struct smtpd_session *s, size_t i)
{
	const struct milter_edit *e;
	size_t n;
	bool ok = true;

	e = milter_edits(f->m[i], &n);
	for (size_t k = 0; k < n && ok; k++) {
		switch (e[k].cmd) {
		case SMFIR_ADDHEADER:
			ok = smtpd_tx_header_add(s, e[k].name, e[k].value);
			break;
		case SMFIR_INSHEADER:
			ok = smtpd_tx_header_insert(s, e[k].index, e[k].name,
			    e[k].value);
			break;
		case SMFIR_CHGHEADER:
			ok = smtpd_tx_header_change(s, e[k].name, e[k].index,
			    e[k].value[0] ? e[k].value : NULL);
			break;
		}
		if (!ok) {
			char t[LOG_ESC(64)];

			log_warnx("%s milter %s header change failed field=%s",
			    smtpd_tx_id(s), smtpd_session_config(s)->milters[i].text,
			    log_field(t, sizeof(t), e[k].name));
		}
	}
	if (n > 0 && ok)
		log_info("%s milter %s header changes=%zu", smtpd_tx_id(s),
		    smtpd_session_config(s)->milters[i].text, n);
	return ok;
}

/*
 * verdict - milter cur answered the step (or failed): true to go on to
 * the next milter, false when the step is refused (f->refusal)
 */
static bool
verdict(struct fsess *f, struct smtpd_session *s, enum milter_verdict v,
    const char *reply)
{
	const char *name = smtpd_session_config(s)->milters[f->cur].text;
	bool message = f->step >= FS_DATA;
	char t[LOG_ESC(REPLY_LINE_MAX)];

	switch (v) {
	case MILTER_CONTINUE:
	case MILTER_ACCEPT:
		if (f->step == FS_EOM && !apply_edits(f, s, f->cur)) {
			str_copy(f->refusal, "451 4.3.0 A content filter's header "
			    "change could not be made", sizeof(f->refusal));
			return false;
		}
		return true;
	case MILTER_FAILED:
		if (f->default_accept)
			return true;	/* milter_default_action accept */
		str_copy(f->refusal, DEFAULT_TEMPFAIL, sizeof(f->refusal));
		break;
	case MILTER_DISCARD:
		/* nothing is thrown away unseen: the sender is told */
		str_copy(f->refusal, "550 5.7.1 Message discarded by a content "
		    "filter", sizeof(f->refusal));
		break;
	case MILTER_REJECT:
		str_copy(f->refusal, reply[0] ? reply : message ?
		    DEFAULT_MSG_REJECT : DEFAULT_REJECT, sizeof(f->refusal));
		break;
	case MILTER_TEMPFAIL:
		str_copy(f->refusal, reply[0] ? reply : DEFAULT_TEMPFAIL,
		    sizeof(f->refusal));
		break;
	}
	log_info("%s milter %s step=%s result=\"%s\"",
	    smtpd_tx_id(s) ? smtpd_tx_id(s) : smtpd_session_idstr(s), name,
	    step_name(f->step), log_text(t, sizeof(t), f->refusal));
	return false;
}

/* fan_out - the step to the milters from cur on, until one must answer */
static void
fan_out(struct fsess *f, struct smtpd_session *s)
{
	while (f->cur < f->n) {
		struct milter *m = f->m[f->cur];

		if (milter_failed(m)) {
			if (!verdict(f, s, MILTER_FAILED, "")) {
				finish(f, s);
				return;
			}
		} else if (step_send(f, s, f->cur)) {
			f->busy = true;
			return;
		} else if (milter_failed(m) && !verdict(f, s, MILTER_FAILED, "")) {
			finish(f, s);
			return;
		} else if (f->step == FS_EOM && !verdict(f, s, MILTER_CONTINUE,
		    "")) {
			finish(f, s);
			return;
		}
		f->cur++;
	}
	finish(f, s);
}

/* answered - a milter's answer to the step */
static void
answered(void *arg, enum milter_verdict v, const char *reply)
{
	struct fsess *f = arg;
	struct smtpd_session *s = session(f);

	f->busy = false;
	if (s == NULL)
		return;
	if (!verdict(f, s, v, reply)) {
		finish(f, s);
		return;
	}
	f->cur++;
	fan_out(f, s);
}

/* start - a step begins at the first milter */
static void
start(struct fsess *f, struct smtpd_session *s, enum fstep st)
{
	f->step = st;
	f->cur = 0;
	fan_out(f, s);
}

/* parse_fields - the header section (len octets) as name and value */
static void
parse_fields(struct fsess *f, const char *h, size_t len)
{
	size_t p = 0;

	while (p < len) {
		size_t e = p, colon;

		/* the field: up to an LF not followed by a space or a tab */
		for (;;) {
			const char *nl = memchr(h + e, '\n', len - e);

			e = nl ? (size_t)(nl - h) + 1 : len;
			if (e >= len || (h[e] != ' ' && h[e] != '\t'))
				break;
		}
		/* the name as every header reader takes it (header_field_name) */
		if ((colon = header_field_name(h + p, e - p)) > 0) {
			size_t nl = p, vend = e;

			while (h[nl] != ':')
				nl++;
			colon = nl;
			while (nl > p && (h[nl - 1] == ' ' || h[nl - 1] == '\t'))
				nl--;
			if (vend > colon + 1 && h[vend - 1] == '\n')
				vend--;
			f->fields = xreallocarray(f->fields, f->nfields + 1,
			    sizeof(*f->fields));
			f->fields[f->nfields].name = xstrndup(h + p, nl - p);
			f->fields[f->nfields].value = xstrndup(h + colon + 1,
			    vend - colon - 1);
			f->nfields++;
		}
		p = e;
	}
}

/*
 * read_head - the header section, once the kept body holds all of it:
 * true when it did (fields parsed, body_off set)
 */
static bool
read_head(struct fsess *f, struct smtpd_session *s)
{
	const struct body *b = smtpd_tx_body(s);
	uint64_t off = smtpd_tx_text_offset(s);
	size_t hlen;
	bool toolong;
	char *buf;

	if (b == NULL || b->size <= off)
		return f->end_due ? (f->head_done = true, f->body_off = off, true) :
		    false;
	if ((buf = head_read(b, off, f->end_due, &hlen, &toolong)) == NULL) {
		if (toolong) {
			str_copy(f->refusal, "552 5.3.4 Header section too long for "
			    "the content filters", sizeof(f->refusal));
			f->head_done = true;
			return true;
		}
		return false;
	}
	parse_fields(f, buf, hlen);
	free(buf);
	f->head_done = true;
	/* the body starts after the blank line */
	f->body_off = off + hlen + (off + hlen < b->size ? 1 : 0);
	return true;
}

/* next_chunk - the next piece of the body into f->chunk: its length */
static size_t
next_chunk(struct fsess *f, struct smtpd_session *s)
{
	const struct body *b = smtpd_tx_body(s);
	ssize_t n;

	if (b == NULL || f->body_off >= b->size)
		return 0;
	n = body_read_at(b, f->body_off, f->chunk, sizeof(f->chunk));
	if (n <= 0)
		return 0;
	/* whole lines, unless a line is longer than a chunk */
	if (!f->end_due || f->body_off + (uint64_t)n < b->size) {
		size_t k = (size_t)n;

		while (k > 0 && f->chunk[k - 1] != '\n')
			k--;
		if (k > 0)
			n = (ssize_t)k;
		else if ((size_t)n < sizeof(f->chunk))
			return 0;	/* wait for the rest of the line */
	}
	f->body_off += (uint64_t)n;
	return (size_t)n;
}

/* run - the next step that is due, if no answer is awaited */
static void
run(struct fsess *f)
{
	struct smtpd_session *s;

	if (f->busy || f->step != FS_NONE || (s = session(f)) == NULL)
		return;
	if (f->connect_due) {
		f->connect_due = false;
		start(f, s, FS_CONNECT);
		return;
	}
	if (f->helo_due) {
		f->helo_due = false;
		if (!f->conn_refusal[0]) {
			start(f, s, FS_HELO);
			return;
		}
	}
	if (f->mail_due) {
		f->mail_due = false;
		if (f->conn_refusal[0]) {
			smtpd_filter_answer(s, f->conn_refusal);
			return;
		}
		f->msg_open = true;
		start(f, s, FS_MAIL);
		return;
	}
	if (f->rcpt_due) {
		f->rcpt_due = false;
		start(f, s, FS_RCPT);
		return;
	}
	if (!f->in_data || f->refusal[0]) {
		if (f->end_due && f->in_data) {
			char refusal[REPLY_LINE_MAX];

			str_copy(refusal, f->refusal, sizeof(refusal));
			f->end_due = false;
			smtpd_filter_answer(s, refusal);
		}
		return;
	}
	/* the message, at the milters' pace */
	if (f->field == 0 && f->nfields == 0 && !f->head_done) {
		if (!read_head(f, s))
			return;		/* more of the header section first */
		if (f->refusal[0]) {
			run(f);
			return;
		}
		start(f, s, FS_DATA);
		return;
	}
	if (f->field < f->nfields) {
		start(f, s, FS_HEADER);	/* finish moves to the next field */
		return;
	}
	if (!f->eoh_done) {
		f->eoh_done = true;
		start(f, s, FS_EOH);
		return;
	}
	if (!f->body_done) {
		if ((f->chunk_len = next_chunk(f, s)) > 0) {
			start(f, s, FS_BODY);
			return;
		}
		if (!f->end_due)
			return;		/* more comes */
		f->body_done = true;
	}
	if (f->end_due)
		start(f, s, FS_EOM);
}

static void
flt_connect(struct smtpd_session *s)
{
	const struct config *c = smtpd_session_config(s);
	struct fsess *f;

	if (c->nmilters == 0)
		return;
	f = xcalloc(1, sizeof(*f));
	f->sid = smtpd_session_id(s);
	f->default_accept = c->milter_default_accept;
	for (size_t i = 0; i < c->nmilters && i < MILTERS_MAX; i++) {
		struct milter_params p = {
			.sa = (const struct sockaddr *)&c->milters[i].ss,
			.salen = c->milters[i].sslen,
			.name = c->milters[i].text,
			.logid = smtpd_session_idstr(s),
			.connect_timeout = c->milter_connect_timeout,
			.command_timeout = c->milter_command_timeout,
			.content_timeout = c->milter_content_timeout,
		};

		f->m[f->n++] = milter_open(base, &p);
	}
	smtpd_filter_set_data(s, f);
	f->connect_due = true;
	run(f);
}

static void
flt_helo(struct smtpd_session *s)
{
	struct fsess *f = smtpd_filter_data(s);

	if (f == NULL)
		return;
	f->helo_due = true;
	run(f);
}

static void
flt_mail(struct smtpd_session *s)
{
	struct fsess *f = smtpd_filter_data(s);

	if (f == NULL) {
		smtpd_filter_answer(s, NULL);
		return;
	}
	msg_reset(f);
	f->mail_due = true;
	run(f);
}

static void
flt_rcpt(struct smtpd_session *s, const struct mailaddr *a, const char *shown)
{
	struct fsess *f = smtpd_filter_data(s);

	if (f == NULL) {
		smtpd_filter_answer(s, NULL);
		return;
	}
	bsnprintf(f->rcpt, sizeof(f->rcpt), "<%s>", shown);
	f->rcpt_due = true;
	run(f);
}

static void
flt_body(struct smtpd_session *s)
{
	struct fsess *f = smtpd_filter_data(s);

	if (f == NULL)
		return;
	f->in_data = true;
	run(f);
}

static void
flt_end(struct smtpd_session *s, bool forwarded)
{
	struct fsess *f = smtpd_filter_data(s);

	if (f == NULL) {
		smtpd_filter_answer(s, NULL);
		return;
	}
	f->in_data = true;
	f->end_due = true;
	run(f);
}

static void
flt_rset(struct smtpd_session *s)
{
	struct fsess *f = smtpd_filter_data(s);

	if (f == NULL)
		return;
	if (f->msg_open)
		for (size_t i = 0; i < f->n; i++)
			milter_abort(f->m[i]);
	if (f->step >= FS_MAIL) {	/* a step of the message, abandoned */
		f->step = FS_NONE;
		f->busy = false;
	}
	msg_reset(f);
	run(f);
}

static void
flt_free(struct smtpd_session *s)
{
	struct fsess *f = smtpd_filter_data(s);

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++)
		milter_close(f->m[i]);
	fields_free(f);
	free(f);
	smtpd_filter_set_data(s, NULL);
}

const struct smtpd_filter_ops milter_filters = {
	.connect = flt_connect,
	.helo = flt_helo,
	.mail = flt_mail,
	.rcpt = flt_rcpt,
	.body = flt_body,
	.end = flt_end,
	.rset = flt_rset,
	.free = flt_free,
};
