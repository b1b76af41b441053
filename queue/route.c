/*
 * route.c - queue_route: a logged-in user's message into the queue.
 *
 * The session engine (smtpd/commands.c) gives this route every recipient
 * on the submission roles (queue_router) and streams the message to
 * queue_body().  The header section is held until it is complete (or
 * QUEUE_HEAD_MAX long) so that queue_fix_headers() can add Message-ID and
 * Date when they are missing (RFC 5322 3.6); then our Received field, the
 * fixed header and the rest of the body go into a struct body.  At the
 * final dot queue_submit() takes the message and the body over and calls
 * back once the envelope and body are durable in the store (scheduler.c,
 * queue_db.c); only then does the client get 250.  The callback knows the
 * session by id only: a client gone meanwhile leaves its message queued.
 *
 * queue_lmtp_requeue builds its message from the transaction the same
 * way (tx_msg) for local/lmtp.c: the mx role's copy for the mailboxes
 * that did not take it after DATA (doc/users.md "Delivery through
 * Dovecot"), owned by the postmaster.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "../common/body.h"
#include "../common/clock.h"
#include "../common/util.h"
#include "queue.h"
#include "route.h"

#define QUEUE_HEAD_MAX	(256 * 1024)

/* one transaction's message on its way into the queue */
struct queue_tx {
	struct evbuffer *head;		/* the header section so far */
	struct body body;
	uint64_t text_at;		/* where the client's header section starts */
};

static void
qtx_free(struct queue_tx *q)
{
	if (q == NULL)
		return;
	if (q->head)
		evbuffer_free(q->head);
	body_free(&q->body);
	free(q);
}

bool
queue_router(struct smtpd_session *s, const struct mailaddr *a, const char *key,
    const char *shown, struct smtpd_route_pick *pick)
{
	pick->ops = &queue_route;
	str_copy(pick->key, "queue", sizeof(pick->key));
	return true;
}

static void
queue_rcpt(struct smtpd_session *s, const char *shown, const struct expansion *exp)
{
	smtpd_rcpt_answer(s, "250 2.1.5 Ok");
}

static void
queue_data(struct smtpd_session *s)
{
	struct queue_tx *q = xcalloc(1, sizeof(*q));

	body_init(&q->body, smtpd_session_config(s)->queue_dir);
	if ((q->head = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	qtx_free(smtpd_route_data(s, &queue_route));
	smtpd_route_set_data(s, &queue_route, q);
	smtpd_data_go(s);
}

/*
 * head_flush - the header section is complete (or too long to wait for):
 * our Received, Message-ID and Date when missing (RFC 5322 3.6,
 * doc/protocol.md "Submission"), then what was read so far
 */
static void
head_flush(struct smtpd_session *s, struct queue_tx *q)
{
	size_t len = evbuffer_get_length(q->head), flen;
	const char *rcv = smtpd_tx_received(s);
	char *fixed;

	fixed = queue_fix_headers((const char *)evbuffer_pullup(q->head, -1), len,
	    smtpd_session_config(s)->hostname, clock_now(), &flen);
	/* the fields added go above the client's (queue_fix_headers) */
	q->text_at = strlen(rcv) + (flen - len);
	if (smtpd_tx_store_errno(s) == 0 &&
	    (body_append(&q->body, rcv, strlen(rcv)) == -1 ||
	    body_append(&q->body, fixed, flen) == -1))
		smtpd_tx_store_failed(s, errno);
	free(fixed);
	evbuffer_free(q->head);
	q->head = NULL;
}

static void
queue_body(struct smtpd_session *s, const char *text, size_t len)
{
	struct queue_tx *q = smtpd_route_data(s, &queue_route);

	if (q->head != NULL) {
		evbuffer_add(q->head, text, len);
		if (smtpd_tx_header_done(s) ||
		    evbuffer_get_length(q->head) > QUEUE_HEAD_MAX)
			head_flush(s, q);
		return;
	}
	if (smtpd_tx_store_errno(s) == 0 && body_append(&q->body, text, len) == -1) {
		smtpd_tx_store_failed(s, errno);
		body_reset(&q->body);
	}
}

static void
queued(void *arg, int error, const char *id)
{
	uint64_t *sid = arg;
	struct smtpd_session *s = smtpd_session_find(*sid);

	free(sid);
	if (s == NULL)
		return;		/* the message is queued all the same */
	if (error == 0)
		smtpd_tx_done(s, "250 2.0.0 Ok: queued as %s", id);
	else
		smtpd_tx_done(s, "%s", store_error_reply(error));
}

/*
 * tx_msg - the queue's message of s's transaction, without recipients:
 * its sender, owner (who gets the reports), MAIL parameters and ENVID
 */
static struct queue_msg *
tx_msg(struct smtpd_session *s, const char *owner)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));

	m->sender = xstrdup(smtpd_tx_sender(s));
	m->owner = xstrdup(owner);
	m->uid = -1;
	m->smtputf8 = smtpd_tx_smtputf8(s) || smtpd_tx_header_non_ascii(s);
	m->body8bit = smtpd_tx_body8bit(s);
	m->envid = xstrdup(smtpd_tx_dsn(s, &m->ret));
	return m;
}

/* queue_end - the final dot: hand the message to the queue */
static void
queue_end(struct smtpd_session *s, const char *refusal)
{
	struct queue_tx *q = smtpd_route_data(s, &queue_route);
	struct queue_msg *m;
	struct body *b;
	char *const *rcpts;
	const char *user = smtpd_session_user(s), *sender = smtpd_tx_sender(s);
	char f1[LOG_ESC(256)], f2[LOG_ESC(PATH_MAX_OCTETS)];
	uint64_t *sid, hold;
	const char *h;
	size_t hlen;

	if (refusal != NULL) {
		smtpd_tx_done(s, "%s", refusal);
		return;
	}
	if (q->head)
		head_flush(s, q);
	/* the filters' header changes (doc/filters.md) */
	if ((h = smtpd_tx_header_edited(s, &hlen, &hold)) != NULL &&
	    smtpd_tx_store_errno(s) == 0 &&
	    body_replace(&q->body, q->text_at, hold, h, hlen) == -1)
		smtpd_tx_store_failed(s, errno);
	if (smtpd_tx_store_errno(s)) {
		smtpd_tx_done(s, "%s", store_error_reply(smtpd_tx_store_errno(s)));
		return;
	}
	m = tx_msg(s, user ? user : "");
	rcpts = smtpd_tx_rcpts(s, &m->nrcpts);
	m->rcpts = xcalloc(m->nrcpts, sizeof(*m->rcpts));
	for (size_t i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].orig = xstrdup(rcpts[i]);
		m->rcpts[i].orcpt = xstrdup(smtpd_tx_rcpt_dsn(s, i,
		    &m->rcpts[i].notify));
	}
	b = xmalloc(sizeof(*b));
	*b = q->body;			/* the queue takes the body over */
	memset(&q->body, 0, sizeof(q->body));
	q->body.spool_fd = -1;
	log_info("%s submission queue user=%s from=<%s> rcpts=%zu",
	    smtpd_tx_id(s), log_field(f1, sizeof(f1), user ? user : "-"),
	    log_field(f2, sizeof(f2), sender), m->nrcpts);
	sid = xmalloc(sizeof(*sid));
	*sid = smtpd_session_id(s);
	queue_submit(m, b, queued, sid);
}

/* queue_lmtp_requeue - see route.h */
void
queue_lmtp_requeue(void *hook_arg, struct smtpd_session *s,
    char *const *mailboxes, size_t n, const char *prefix, struct body *body,
    void (*done)(void *, int error, const char *id), void *done_arg)
{
	const struct config *cfg = smtpd_session_config(s);
	char *owner = cfg->postmaster ? xstrdup(cfg->postmaster) :
	    xasprintf("postmaster@%s", cfg->ndomains > 0 ? cfg->domains[0] :
	    cfg->hostname);
	struct queue_msg *m = tx_msg(s, owner);

	(void)hook_arg;
	free(owner);
	/* the mailboxes as they are: the queue expands nothing (queue.h) */
	m->nrcpts = n;
	m->rcpts = xcalloc(n ? n : 1, sizeof(*m->rcpts));
	for (size_t i = 0; i < n; i++) {
		struct queue_rcpt *r = &m->rcpts[i];

		r->addr = xstrdup(mailboxes[i]);
		r->orig = xstrdup(mailboxes[i]);
		r->local = true;
		r->state = RS_PENDING;
		r->next_attempt = clock_now();	/* at once (0 is never) */
		r->last_reply = xstrdup("");
		r->remote_mta = xstrdup("");
		r->orcpt = xstrdup("");
	}
	queue_submit_prefixed(m, prefix, body, done, done_arg);
}

/* queue_rset - the transaction is over: its message (if any) goes */
static void
queue_rset(struct smtpd_session *s)
{
	qtx_free(smtpd_route_data(s, &queue_route));
	smtpd_route_set_data(s, &queue_route, NULL);
}

const struct smtpd_route_ops queue_route = {
	.name = "queue",
	.keeps_body = true,
	.rcpt = queue_rcpt,
	.data = queue_data,
	.body = queue_body,
	.end = queue_end,
	.rset = queue_rset,
	.free = queue_rset,
};
