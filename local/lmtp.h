/*
 * lmtp.h - local delivery through an LMTP server (RFC 2033), Dovecot's
 * in practice: local_delivery lmtp TARGET (chamois.conf(5), doc/users.md
 * "Delivery through Dovecot").  One small client with a bounded pool of
 * reused connections, used by the session route (lmtp_route, the mx role)
 * and by the queue (its local recipients).
 */
#ifndef CHAMOIS_LMTP_H
#define CHAMOIS_LMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../outbound/client.h"
#include "../smtpd/smtpd.h"

struct body;
struct config;
struct event_base;

/* what a job learnt: one reply per recipient at RCPT, and after DATA */
struct lmtp_result {
	size_t n;
	char *const *rcpts;		/* the job's recipients */
	const struct smtp_reply *rcpt;	/* RCPT's reply (MAIL's when it failed) */
	const struct smtp_reply *data;	/* after the dot; rcpt's when refused */
};

/* lmtp_done_fn - on the loop, once, unless the job was cancelled */
typedef void lmtp_done_fn(void *arg, const struct lmtp_result *);

struct lmtp_params {
	const char *sender;		/* "" for <> */
	char *const *rcpts;		/* addresses, as LMTP RCPT TO gets them */
	size_t nrcpts;
	/*
	 * body NULL: a probe (MAIL, RCPT..., RSET), which asks without
	 * delivering; else prefix (LF form, or NULL) and the body are sent
	 * after DATA, dot-stuffed, CRLF
	 */
	const char *prefix;
	const struct body *body;
	bool smtputf8, body8bit;	/* MAIL parameters, when the server has them */
};

struct lmtp_job;
/*
 * lmtp_submit - a job for the next free connection (params are copied;
 * the body is read until done: owned, when not NULL, is freed then);
 * done gets arg, on a later turn of the loop, never before lmtp_submit
 * has returned (lmtp_configure first).  The server down, a lost connection, a protocol error
 * or no reply in time: every recipient not yet answered gets 451 4.4.2.
 */
struct lmtp_job *lmtp_submit(const struct lmtp_params *, struct body *owned,
    lmtp_done_fn *done, void *arg);
/* lmtp_cancel - done will not be called; a job mid-message ends its connection */
void lmtp_cancel(struct lmtp_job *);

/* lmtp_configure - at start and on SIGHUP: the loop and the target in force */
void lmtp_configure(struct event_base *, const struct config *);
void lmtp_shutdown(void);

/*
 * lmtp_requeue_fn - the route's partial failure after DATA (doc/users.md
 * "Delivery through Dovecot"): a copy of the message of s's transaction,
 * prefix (LF form, or NULL) then body (taken over), for the n mailboxes
 * that did not take it goes into the queue, its recipients those
 * mailboxes; done(done_arg, 0 or errno, the queue id) runs on the loop
 * once it is durable or could not be stored.  The queue provides it
 * (queue/route.c), the composition root sets it: local/ does not know
 * the queue (tests/check-layers.py).
 */
typedef void lmtp_requeued_fn(void *arg, int error, const char *id);
typedef void lmtp_requeue_fn(void *hook_arg, struct smtpd_session *s,
    char *const *mailboxes, size_t n, const char *prefix, struct body *body,
    lmtp_requeued_fn *done, void *done_arg);
/* lmtp_set_requeue - once, at start; without it a partial failure is 451 */
void lmtp_set_requeue(lmtp_requeue_fn *, void *hook_arg);

/*
 * The route's two steps, which forward/ uses too for the local copies of
 * a forwarded address (doc/forwarding.md, "Local copies"): done(s, reply,
 * arg) runs on the loop with the reply lmtp_route gives, unless the
 * session has gone or the step was cancelled (the session's RSET and end
 * cancel a probe; a delivery goes on).
 */
typedef void lmtp_tx_done_fn(struct smtpd_session *, const char *reply,
    void *arg);
/* lmtp_probe - ask about exp's mailboxes (a probe): 250 or Dovecot's refusal */
void lmtp_probe(struct smtpd_session *, const struct expansion *,
    lmtp_tx_done_fn *, void *arg);
void lmtp_probe_cancel(struct smtpd_session *);
/*
 * lmtp_deliver - the message of s's transaction (the engine's body taken
 * over) to its mailboxes: 250 when all took it; the first refusal, mapped,
 * when none did, unless requeue_all; else the mailboxes that did not go
 * into the queue (the requeue hook) and 250 once it has them, 451 4.3.0
 * if it could not
 */
void lmtp_deliver(struct smtpd_session *, bool requeue_all,
    lmtp_tx_done_fn *, void *arg);

/* lmtp_route - local mailboxes through LMTP (smtpd/route.h) */
extern const struct smtpd_route_ops lmtp_route;

#endif
