/*
 * route.c - local_route: delivery into local Maildirs (local.h).
 *
 * The engine (smtpd/commands.c) hands this route every recipient that
 * resolves to local mailboxes only (forward/router.c decides); it
 * accepts each at once, the engine keeps the message for the mailboxes,
 * and at the final dot local_end() gives it to a worker job that writes
 * every copy with maildir/ (maildir_deliver: tmp/, fsync, rename into
 * new/, directory syncs).  The 250 goes out when the job is done and
 * every copy is durable; a failure leaves no copy in new/ and answers
 * 451/452.  The job owns the copies, their body and a reference to the
 * config; it refers to the session by id only (smtpd_session_find), so
 * a client that has gone meanwhile costs nothing but the log line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/body.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "../maildir/maildir.h"
#include "local.h"

struct local_copies {
	struct maildir_delivery *d;
	struct body body;
	char **mailboxes;		/* the copies' mailbox strings */
	size_t nmailboxes;
	struct config *cfg;		/* maildir_root and hostname live here */
	char txid[40];
	/* while a job runs */
	uint64_t sid;
	enum local_step step;
	local_done_fn done;
	void *arg;
	bool all;			/* local_copies_drop: new/ too */
};

struct local_copies *
local_copies_new(struct smtpd_session *s)
{
	struct local_copies *lc = xcalloc(1, sizeof(*lc));
	struct maildir_delivery *d = xcalloc(1, sizeof(*d));
	char *const *mb = smtpd_tx_mailboxes(s, &lc->nmailboxes);
	const char *sender = smtpd_tx_sender(s);
	const char *ar = smtpd_tx_auth_results(s);

	lc->cfg = config_ref((struct config *)smtpd_session_config(s));
	str_copy(lc->txid, smtpd_tx_id(s), sizeof(lc->txid));
	smtpd_tx_take_body(s, &lc->body);
	lc->mailboxes = xcalloc(lc->nmailboxes, sizeof(char *));
	d->root = lc->cfg->maildir_root;
	d->hostname = lc->cfg->hostname;
	d->body = &lc->body;
	d->ncopies = lc->nmailboxes;
	d->copies = xcalloc(d->ncopies, sizeof(*d->copies));
	for (size_t i = 0; i < d->ncopies; i++) {
		lc->mailboxes[i] = xstrdup(mb[i]);
		d->copies[i].mailbox = lc->mailboxes[i];
		/* the checks' field above our Received (doc/protocol.md) */
		d->copies[i].prefix = xasprintf("Return-Path: <%s>\n"
		    "Delivered-To: %s\n%s", sender, mb[i], ar ? ar : "");
	}
	lc->d = d;
	return lc;
}

const struct maildir_delivery *
local_copies_delivery(const struct local_copies *lc)
{
	return lc->d;
}

static void
copies_free(struct local_copies *lc)
{
	maildir_delivery_free(lc->d);
	body_free(&lc->body);
	for (size_t i = 0; i < lc->nmailboxes; i++)
		free(lc->mailboxes[i]);
	free(lc->mailboxes);
	config_free(lc->cfg);
	free(lc);
}

static void
drop_work(void *arg)
{
	struct local_copies *lc = arg;

	if (lc->all)
		maildir_abort(lc->d);
	else
		maildir_abort_prepared(lc->d);
}

static void
drop_done(void *arg)
{
	copies_free(arg);
}

bool
local_copies_on_disk(const struct local_copies *lc, bool all)
{
	for (size_t i = 0; i < lc->d->ncopies; i++)
		if (lc->d->copies[i].in_tmp || (all && lc->d->copies[i].in_new))
			return true;
	return false;
}

void
local_copies_drop(struct local_copies *lc, bool all)
{
	if (lc == NULL)
		return;
	if (!local_copies_on_disk(lc, all)) {
		copies_free(lc);
		return;
	}
	lc->all = all;
	worker_submit(drop_work, drop_done, lc);
}

static void
step_work(void *arg)
{
	struct local_copies *lc = arg;

	switch (lc->step) {
	case LOCAL_DELIVER:
		maildir_deliver(lc->d);
		break;
	case LOCAL_PREPARE:
		maildir_prepare(lc->d);
		break;
	case LOCAL_COMMIT:
		maildir_commit(lc->d);
		break;
	case LOCAL_REMOVE:
		maildir_abort(lc->d);
		break;
	case LOCAL_REMOVE_PREPARED:
		maildir_abort_prepared(lc->d);
		break;
	}
}

static void
step_done(void *arg)
{
	struct local_copies *lc = arg;
	struct maildir_delivery *d = lc->d;
	struct smtpd_session *s;

	if (lc->step == LOCAL_DELIVER) {
		metrics_message(MR_LOCAL, d->result == RES_OK ? MO_DELIVERED :
		    MO_DEFERRED, d->ncopies);
		if (d->result == RES_OK) {
			for (size_t i = 0; i < d->ncopies; i++)
				log_info("%s delivery mailbox=%s result=delivered "
				    "path=%s", lc->txid, d->copies[i].mailbox,
				    d->copies[i].path);
		} else {
			errno = d->error;
			log_warn("%s delivery result=deferred step=%s", lc->txid,
			    d->failed_step ? d->failed_step : "?");
		}
	}
	if ((s = smtpd_session_find(lc->sid)) == NULL) {
		/* the client has gone: what is still in tmp/ goes too */
		local_copies_drop(lc, false);
		return;
	}
	lc->done(s, lc, lc->arg);
}

void
local_copies_run(struct local_copies *lc, enum local_step step,
    struct smtpd_session *s, local_done_fn done, void *arg)
{
	lc->sid = smtpd_session_id(s);
	lc->step = step;
	lc->done = done;
	lc->arg = arg;
	worker_submit(step_work, step_done, lc);
}

static void
local_rcpt(struct smtpd_session *s, const char *shown, const struct expansion *exp)
{
	smtpd_rcpt_answer(s, "250 2.1.5 Ok");
}

static void
delivered(struct smtpd_session *s, struct local_copies *lc, void *arg)
{
	if (lc->d->result == RES_OK)
		smtpd_tx_done(s, "250 2.0.0 Ok: delivered as %s", lc->txid);
	else
		smtpd_tx_done(s, "%s", store_error_reply(lc->d->error));
	/* delivered, or failed with nothing left in new/: only tmp/ to clear */
	local_copies_drop(lc, false);
}

/* local_end - the final dot: the copies go to disk on a worker */
static void
local_end(struct smtpd_session *s, const char *refusal)
{
	if (refusal != NULL) {
		smtpd_tx_done(s, "%s", refusal);
		return;
	}
	smtpd_tx_set_relay(s, "local");
	local_copies_run(local_copies_new(s), LOCAL_DELIVER, s, delivered, NULL);
}

const struct smtpd_route_ops local_route = {
	.name = "local",
	.outcome = "sent",
	.rcpt = local_rcpt,
	.end = local_end,
};
