/*
 * route.h - the queue as a route of the session engine (smtpd/route.h):
 * on the submission roles every recipient of a logged-in user goes into
 * the queue (queue/route.c), which delivers it later (scheduler.c).
 */
#ifndef CHAMOIS_QUEUE_ROUTE_H
#define CHAMOIS_QUEUE_ROUTE_H

#include "../smtpd/smtpd.h"

/* queue_route - a submitted message into the queue; 250 once it is durable */
extern const struct smtpd_route_ops queue_route;
/*
 * queue_router - the router of the submission roles (smtpd_set_router):
 * a logged-in user may send to anyone (doc/protocol.md "Submission"), so
 * every address takes queue_route
 */
bool queue_router(struct smtpd_session *, const struct mailaddr *,
    const char *key, const char *shown, struct smtpd_route_pick *);
/*
 * queue_lmtp_requeue - local/lmtp.c's requeue hook (lmtp_requeue_fn,
 * set by chamoisd/main.c): the copy of the message of s's transaction,
 * prefix then body (taken over), for the n mailboxes that did not take
 * it after DATA, into the queue with those mailboxes as its recipients
 * and the postmaster as its owner (reports into the postmaster's
 * Maildir, none for <>); done as queue_submit's cb
 */
struct body;
void queue_lmtp_requeue(void *hook_arg, struct smtpd_session *s,
    char *const *mailboxes, size_t n, const char *prefix, struct body *body,
    void (*done)(void *, int error, const char *id), void *done_arg);

#endif
