/*
 * local.h - local Maildir delivery as a route of the session engine
 * (smtpd/route.h), and the local copies of a message that forwarding
 * keeps too (doc/forwarding.md: a forwarded address may also deliver to
 * local mailboxes).
 *
 * The engine keeps the message for the transaction's local mailboxes
 * (our Received first); at the final dot local_route takes it over into
 * a struct local_copies, which a worker job writes with maildir/ (tmp/,
 * fsync, rename into new/, directory syncs) and which answers 250 only
 * once every copy is durable.  The job owns the copies and the body
 * while it runs and finds the session again by its id when it is done.
 */
#ifndef CHAMOIS_LOCAL_H
#define CHAMOIS_LOCAL_H

#include <stdbool.h>

#include "../smtpd/smtpd.h"

struct maildir_delivery;

/* local_route - the route of addresses that resolve to local mailboxes only */
extern const struct smtpd_route_ops local_route;

/* one message's copies: the delivery, its body, what they point into */
struct local_copies;

enum local_step {
	LOCAL_DELIVER,	/* maildir_deliver: tmp/, sync, new/, sync */
	LOCAL_PREPARE,	/* maildir_prepare: into tmp/ and synced */
	LOCAL_COMMIT,	/* maildir_commit: the prepared copies into new/ */
	LOCAL_REMOVE,	/* maildir_abort: every copy goes, tmp/ and new/ */
	LOCAL_REMOVE_PREPARED,	/* maildir_abort_prepared: the copies in tmp/ go */
};

/*
 * local_copies_new - the copies of the transaction of s, one per local
 * mailbox (Return-Path, Delivered-To and the checks' Authentication-Results
 * added); the engine's body is
 * taken over (smtpd_tx_take_body), the rest copied
 */
struct local_copies *local_copies_new(struct smtpd_session *);
/* local_copies_delivery - the delivery's outcome (result, error, copies) */
const struct maildir_delivery *local_copies_delivery(const struct local_copies *);

/*
 * local_copies_run - run step on a worker thread; the job owns lc until
 * it is done.  Then done(s, lc, arg) runs on the loop with the session
 * looked up by id, and lc is the caller's again; if the session has
 * gone, the copies still in tmp/ are removed (on a worker) and lc freed
 * instead.  A LOCAL_DELIVER step logs each copy (or the failure) either
 * way.
 */
typedef void (*local_done_fn)(struct smtpd_session *, struct local_copies *,
    void *arg);
void local_copies_run(struct local_copies *, enum local_step,
    struct smtpd_session *, local_done_fn, void *arg);
/*
 * local_copies_on_disk - a copy is in tmp/ (all: or in new/): something
 * for LOCAL_REMOVE(_PREPARED) or local_copies_drop to remove
 */
bool local_copies_on_disk(const struct local_copies *, bool all);
/*
 * local_copies_drop - lc is no longer wanted: its copies in tmp/ (all:
 * in new/ too) are removed on a worker thread, never on the loop, then
 * lc is freed
 */
void local_copies_drop(struct local_copies *, bool all);

#endif
