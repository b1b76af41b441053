/*
 * proxy.c - the synchronous forwarding proxy: forward_route.
 *
 * The session engine (smtpd/commands.c) hands this route each RCPT that
 * forward_mx_router (router.c) gave it, then DATA, the message's chunks
 * and the final dot (smtpd/route.h); the route answers each through the
 * engine's API (smtpd_rcpt_answer, smtpd_data_go, smtpd_tx_done) and
 * paces the client with smtpd_input_pause/resume, and never touches the
 * session itself.  Local copies of a forwarded address are local/'s
 * (local_copies_run on a worker; the job owns them while it runs).
 *
 * One struct fwd (the route's data of the session) ties an inbound
 * session to one outbound client
 * (outbound/client.c) for one target domain; it lives as long as one
 * transaction of the inbound session, and holds a slot of the forward
 * limits only that long: every end of the transaction ends the remote
 * session with QUIT, and a transaction that does not reach DATA within
 * forward_rcpt_budget of its own time loses it (doc/forwarding.md,
 * Limits).  Each step that waits for the remote leaves the inbound session
 * waiting (its input held) under a budget timer (forward_rcpt_budget for everything behind
 * one RCPT or DATA, forward_data_budget from the client's final dot to our
 * reply) and answers the client with the remote's own reply, mapped by
 * fwd_map_reply().  After the remote's 354 nothing is sent until the
 * client's final dot and the checks' verdict (smtpd_check_done): the
 * engine keeps the message (the route forwards), a refusal closes the
 * remote session without a dot, and a pass sends the
 * Authentication-Results field and the kept message (our Received first),
 * paced by the remote (stream).  The final dot goes to the remote only
 * after all of it was sent, every check passed and the local copies (if
 * any) are synced in tmp/; they move into new/ only after the remote's
 * 2xx.  Nothing here ever makes a bounce.
 *
 * Outcomes before a remote answers (doc/protocol.md, "Forwarding";
 * doc/forwarding.md):
 *   no such domain 550 5.1.2, null MX 556 5.1.10, DNS failure 451 4.4.3,
 *   no MX reachable 451 4.4.1, budget exceeded or remote lost 451 4.4.2,
 *   too many forward sessions 451 4.4.5, MX is ourselves 554 5.4.6,
 *   a sender at an address literal 550 5.7.1 (no SRS for it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../common/clock.h"
#include "../common/hmap.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "../local/lmtp.h"
#include "../local/local.h"
#include "../maildir/maildir.h"
#include "../outbound/client.h"
#include "../outbound/mtasts.h"
#include "../outbound/reply_map.h"
#include "../outbound/resolver.h"
#include "../smtpd/smtpd.h"
#include "forward.h"
#include "state.h"

enum fwd_state {
	FS_RESOLVING,
	FS_CONNECTING,
	FS_READY,
	FS_DEAD,
};

/* what the inbound session is waiting for */
enum fwd_wait {
	W_NONE,
	W_PROBE,	/* the LMTP server's answer about the local mailboxes */
	W_RCPT,		/* the remote's answer to a RCPT */
	W_DATA,		/* 354 */
	W_STREAM,	/* the held message going to the remote */
	W_LOCAL,	/* local copies being synced in tmp/ */
	W_DOT,		/* the remote's answer to the final dot */
	W_COMMIT,	/* local copies moving into new/ */
	W_LMTP,		/* local copies going to the LMTP server */
	W_REMOVE,	/* local copies being removed before the last reply */
};

struct fwd {
	struct smtpd_session *s;	/* owns this fwd (its route data) */
	struct local_copies *lc;	/* the local copies, unless a job has them */
	char domain[DOMAIN_MAX + 1];	/* target domain, A-label */
	char client_key[64];		/* counted per client address */
	enum fwd_state state;
	struct resolver_query *q;
	struct tlspolicy_query *pq;	/* the MX look-up with MTA-STS */
	struct smtp_client *c;
	struct event *timer;
	enum fwd_wait wait;
	bool in_tx;			/* MAIL sent in this transaction */
	bool mail_refused;
	struct smtp_reply mail_reply;
	bool failed;			/* the remote was lost mid-message */
	uint64_t sent;			/* octets of the held message sent */
	bool counted;			/* holds a slot of the forward limits */
	/*
	 * The hold bound (doc/forwarding.md, Limits): a transaction holding a
	 * slot has forward_rcpt_budget of its own time, the remote's waits not
	 * counted, to reach DATA; then the slot is taken back (expired).
	 */
	struct event *hold;
	int64_t hold_left_ms;
	int64_t hold_since_ms;
	bool expired;
	/* the RCPT being answered */
	char *rcpt_shown;
	struct expansion rcpt_exp;
	/* the targets accepted in this transaction, and what the client used */
	char **targets, **targets_shown;
	size_t ntargets;
	char final_reply[SMTP_REPLY_TEXT_MAX + 32];
};

static void fwd_client_cb(void *, enum smtp_client_event, enum smtp_cmd,
    enum smtp_fail, const struct smtp_reply *);
static void stream(struct fwd *);

/* fwd_map_reply - see forward.h; the table is in doc/forwarding.md */
void
fwd_map_reply(const struct smtp_reply *r, bool utf8, char *out, size_t size)
{
	smtp_reply_map(r, utf8, out, size);
}

/* fwd_hide_address - see forward.h */
void
fwd_hide_address(char *text, size_t size, const char *addr, const char *shown)
{
	size_t alen = strlen(addr), slen = strlen(shown), o = 0;
	char *out;

	if (alen == 0 || size == 0)
		return;
	out = xmalloc(size);
	for (const char *p = text; *p && o + 1 < size;) {
		if (strncasecmp(p, addr, alen) == 0) {
			size_t n = slen < size - 1 - o ? slen : size - 1 - o;

			memcpy(out + o, shown, n);
			o += n;
			p += alen;
		} else
			out[o++] = *p++;
	}
	out[o] = '\0';
	memcpy(text, out, o + 1);
	free(out);
}

/*
 * map_reply - fwd_map_reply() of a remote reply, with every target of the
 * transaction (and the one of the RCPT being answered) replaced by the
 * address the client used (doc/forwarding.md, the mapping table)
 */
static void
map_reply(const struct fwd *f, const struct smtp_reply *r, char *out,
    size_t size)
{
	struct smtp_reply hidden = *r;
	bool utf8 = smtpd_tx_smtputf8(f->s);

	if (f->rcpt_shown && f->rcpt_exp.external)
		fwd_hide_address(hidden.text, sizeof(hidden.text),
		    f->rcpt_exp.external, f->rcpt_shown);
	for (size_t i = 0; i < f->ntargets; i++)
		fwd_hide_address(hidden.text, sizeof(hidden.text), f->targets[i],
		    f->targets_shown[i]);
	fwd_map_reply(&hidden, utf8, out, size);
}

/* counters: total, per target domain, per client address */
static bool
fwd_admit(const struct smtpd_session *s, const char *domain)
{
	const struct config *c = fwd_g.cfg;
	const char *ck = smtpd_session_addr_key(s);
	size_t nd = hmap_count_of(fwd_g.per_domain, domain);
	size_t nc = hmap_count_of(fwd_g.per_client, ck);

	/* all three admit, or none counts */
	if (fwd_g.nfwd >= c->forward_max_sessions ||
	    nd >= c->forward_max_per_domain || nc >= c->forward_max_per_client)
		return false;
	fwd_g.nfwd++;
	hmap_count_add(fwd_g.per_domain, domain, SIZE_MAX);
	hmap_count_add(fwd_g.per_client, ck, SIZE_MAX);
	return true;
}

/* fwd_release - give back the slot of the forward limits */
static void
fwd_release(struct fwd *f)
{
	if (!f->counted)
		return;
	f->counted = false;
	fwd_g.nfwd--;
	hmap_count_release(fwd_g.per_domain, f->domain);
	hmap_count_release(fwd_g.per_client, f->client_key);
}

static void fwd_hold_cb(evutil_socket_t, short, void *);

/* hold_run / hold_pause - the hold bound runs while the client has the turn */
static void
hold_run(struct fwd *f)
{
	struct timeval tv;

	if (f->expired || !f->counted)
		return;
	if (f->hold == NULL)
		f->hold = evtimer_new(fwd_g.base, fwd_hold_cb, f);
	tv.tv_sec = f->hold_left_ms / 1000;
	tv.tv_usec = (f->hold_left_ms % 1000) * 1000;
	f->hold_since_ms = clock_mono_ms();
	evtimer_add(f->hold, &tv);
}

static void
hold_pause(struct fwd *f)
{
	if (f->hold == NULL || !evtimer_pending(f->hold, NULL))
		return;
	evtimer_del(f->hold);
	f->hold_left_ms -= clock_mono_ms() - f->hold_since_ms;
	if (f->hold_left_ms < 0)
		f->hold_left_ms = 0;
}

static void
fwd_timer_stop(struct fwd *f)
{
	if (f->timer)
		evtimer_del(f->timer);
}

static void fwd_timeout_cb(evutil_socket_t, short, void *);

static void
fwd_timer_start(struct fwd *f, unsigned seconds)
{
	struct timeval tv = { seconds, 0 };

	if (f->timer == NULL)
		f->timer = evtimer_new(fwd_g.base, fwd_timeout_cb, f);
	evtimer_add(f->timer, &tv);
}

/* fwd_close_remote - drop the remote session (no final dot is ever sent) */
static void
fwd_close_remote(struct fwd *f)
{
	if (f->q) {
		resolver_cancel(f->q);
		f->q = NULL;
	}
	tlspolicy_cancel(f->pq);
	f->pq = NULL;
	if (f->c) {
		smtp_client_free(f->c);
		f->c = NULL;
	}
	f->state = FS_DEAD;
	f->in_tx = false;
}

static void
fwd_free(struct fwd *f)
{
	if (f == NULL)
		return;
	/* QUIT also ends an open transaction; mid-DATA the client closes at once */
	if (f->c && f->state == FS_READY) {
		smtp_client_quit(f->c);
		f->c = NULL;
	}
	fwd_close_remote(f);
	if (f->timer)
		event_free(f->timer);
	if (f->hold)
		event_free(f->hold);
	free(f->rcpt_shown);
	expansion_free(&f->rcpt_exp);
	for (size_t i = 0; i < f->ntargets; i++) {
		free(f->targets[i]);
		free(f->targets_shown[i]);
	}
	free(f->targets);
	free(f->targets_shown);
	/* copies prepared in tmp/ for a transaction that did not finish */
	local_copies_drop(f->lc, false);
	fwd_release(f);
	free(f);
}

/* go_on - the remote step is over: no budget runs for it any more */
static void
go_on(struct fwd *f)
{
	f->wait = W_NONE;
	fwd_timer_stop(f);
}

/*
 * tx_answer - the last reply of the transaction: the session goes on
 * (the engine's rset frees f: nothing may touch it after this)
 */
static void
tx_answer(struct fwd *f, const char *reply)
{
	go_on(f);
	smtpd_tx_done(f->s, "%s", reply);
}

static void
copies_removed(struct smtpd_session *s, struct local_copies *lc, void *arg)
{
	struct fwd *f = smtpd_route_data(s, &forward_route);

	local_copies_drop(lc, false);	/* nothing is left on disk */
	if (f != NULL)
		tx_answer(f, f->final_reply);
}

/*
 * finish - the last reply of a transaction whose local copies must go
 * (all: from new/ too): they are removed on a worker first, off the
 * loop, so that the client never has the reply while a copy is still
 * on disk
 */
static void
finish(struct fwd *f, struct local_copies *lc, bool all, const char *reply)
{
	if (lc == NULL || !local_copies_on_disk(lc, all)) {
		local_copies_drop(lc, all);
		tx_answer(f, reply);
		return;
	}
	if (reply != f->final_reply)
		str_copy(f->final_reply, reply, sizeof(f->final_reply));
	f->wait = W_REMOVE;
	local_copies_run(lc, all ? LOCAL_REMOVE : LOCAL_REMOVE_PREPARED, f->s,
	    copies_removed, NULL);
}

/* rcpt_answer - the RCPT's reply: the client has the turn again */
static void
rcpt_answer(struct fwd *f, const char *reply)
{
	free(f->rcpt_shown);
	f->rcpt_shown = NULL;
	expansion_free(&f->rcpt_exp);
	hold_run(f);
	go_on(f);
	smtpd_rcpt_answer(f->s, "%s", reply);
}

/* rcpt_done - the RCPT is answered: reply, remember it if accepted */
static void
rcpt_done(struct fwd *f, const char *reply)
{
	struct smtpd_session *s = f->s;

	metrics_forward(f->domain, reply[0], reply[0] == '2' ? 0 : 1);
	if (reply[0] == '2') {
		f->targets = xreallocarray(f->targets, f->ntargets + 1,
		    sizeof(char *));
		f->targets_shown = xreallocarray(f->targets_shown, f->ntargets + 1,
		    sizeof(char *));
		f->targets[f->ntargets] = xstrdup(f->rcpt_exp.external);
		f->targets_shown[f->ntargets++] = xstrdup(f->rcpt_shown);
	} else {
		char f1[LOG_ESC(PATH_MAX_OCTETS)], f2[LOG_ESC(PATH_MAX_OCTETS)];
		char t[LOG_ESC(REPLY_LINE_MAX)];

		log_info("%s forward rcpt to=<%s> target=<%s> result=\"%s\"",
		    smtpd_tx_id(s),
		    log_field(f1, sizeof(f1), f->rcpt_shown),
		    log_field(f2, sizeof(f2), f->rcpt_exp.external),
		    log_text(t, sizeof(t), reply));
	}
	rcpt_answer(f, reply);
}

static bool
is_ascii(const char *s)
{
	return str_is_ascii(s, strlen(s));
}

/* srs_sender - the envelope sender the remote sees */
static void
srs_sender(const char *txsender, char *out, size_t size)
{
	out[0] = '\0';
	if (txsender[0] == '\0')
		return;		/* <> stays <> */
	if (!srs_forward(&fwd_g.srs, txsender, fwd_g.cfg->domains[0],
	    clock_now(), out, size))
		str_copy(out, txsender, size);
}

/* send_rcpt - the remote is ready: MAIL (once per transaction) and RCPT */
static void
send_rcpt(struct fwd *f)
{
	struct smtpd_session *s = f->s;
	const struct smtp_caps *caps = smtp_client_caps(f->c);
	const char *target = f->rcpt_exp.external;
	char sender[PATH_MAX_OCTETS * 2], params[128] = "", reply[SMTP_REPLY_TEXT_MAX + 32];
	char relay[LOG_RELAY_MAX];
	uint64_t size;

	smtpd_tx_set_relay(s, log_relay(relay, sizeof(relay), caps->host,
	    caps->addr));
	if (config_route(smtpd_session_config(s), f->domain) != NULL)
		/* to a domain's own next hop, not a forward: the sender as it is */
		str_copy(sender, smtpd_tx_sender(s), sizeof(sender));
	else
		srs_sender(smtpd_tx_sender(s), sender, sizeof(sender));
	/* what the remote cannot take is refused before any data moves */
	if ((!is_ascii(target) || !is_ascii(sender)) && !caps->smtputf8) {
		rcpt_done(f, "553 5.6.7 The next server does not support SMTPUTF8 "
		    "for this non-ASCII address");
		return;
	}
	if (smtpd_tx_body8bit(s) && !caps->eightbitmime) {
		rcpt_done(f, "550 5.6.3 The next server does not accept 8-bit "
		    "messages (no 8BITMIME)");
		return;
	}
	size = smtpd_tx_size_param(s);
	size = size ? size + 1024 : 0;	/* + our Received */
	if (size && caps->size && caps->size_max && size > caps->size_max) {
		rcpt_done(f, "552 5.3.4 Message too big for the next server");
		return;
	}
	if (f->mail_refused) {
		map_reply(f, &f->mail_reply, reply, sizeof(reply));
		rcpt_done(f, reply);
		return;
	}
	if (!f->in_tx) {
		size_t o = 0;

		if (size && caps->size)
			o += (size_t)snprintf(params + o, sizeof(params) - o,
			    "SIZE=%" PRIu64, size);
		if (smtpd_tx_body8bit(s))
			o += (size_t)snprintf(params + o, sizeof(params) - o,
			    "%sBODY=8BITMIME", o ? " " : "");
		if (smtpd_tx_smtputf8(s) && caps->smtputf8)
			snprintf(params + o, sizeof(params) - o, "%sSMTPUTF8",
			    o ? " " : "");
		smtp_client_mail(f->c, sender, params);
		f->in_tx = true;
		f->mail_refused = false;
	}
	smtp_client_rcpt(f->c, target);
}

/* is_self - would this target reach our own mx role? (RFC 5321 5.1) */
static bool
is_self(const struct mx_target *t, unsigned remote_port)
{
	if (strcasecmp(t->host, fwd_g.cfg->hostname) == 0)
		return true;
	for (size_t i = 0; i < fwd_g.nself; i++) {
		const struct sockaddr_storage *me = &fwd_g.self[i];
		unsigned port;

		if (me->ss_family != t->ss.ss_family)
			continue;
		if (me->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)me;
			const struct sockaddr_in *b = (const void *)&t->ss;

			port = ntohs(a->sin_port);
			if (port == remote_port &&
			    a->sin_addr.s_addr == b->sin_addr.s_addr)
				return true;
		} else {
			const struct sockaddr_in6 *a = (const void *)me;
			const struct sockaddr_in6 *b = (const void *)&t->ss;

			port = ntohs(a->sin6_port);
			if (port == remote_port &&
			    memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0)
				return true;
		}
	}
	return false;
}

/* route_port - the port of f's next hop: its route's, or remote_port */
static unsigned
route_port(const struct fwd *f)
{
	const struct route_conf *rt = config_route(smtpd_session_config(f->s),
	    f->domain);

	return rt ? rt->port : fwd_g.cfg->remote_port;
}

/* fwd_connect - open the remote session to the first usable targets */
static void
fwd_connect(struct fwd *f, const struct mx_target *targets, size_t n)
{
	struct smtp_client_params p;

	memset(&p, 0, sizeof(p));
	p.base = fwd_g.base;
	/* the session holds its config */
	p.helo = smtpd_session_config(f->s)->hostname;
	p.tls = fwd_g.tls_client;
	p.targets = targets;
	p.ntargets = n;
	p.port = route_port(f);
	smtp_client_outbound(&p, smtpd_session_config(f->s));
	p.step_timeout.tv_sec = fwd_g.cfg->forward_rcpt_budget;
	p.cb = fwd_client_cb;
	p.arg = f;
	p.policy_domain = f->domain;	/* TLS-RPT (doc/security.md) */
	p.log_id = smtpd_tx_id(f->s) ? smtpd_tx_id(f->s) :
	    smtpd_session_idstr(f->s);
	f->state = FS_CONNECTING;
	f->c = smtp_client_new(&p);
}

static void
fwd_resolved(void *arg, const struct mx_answer *ans)
{
	struct fwd *f = arg;
	char reply[512], esc[LOG_ESC(DOMAIN_MAX)];
	size_t n;

	f->q = NULL;
	f->pq = NULL;
	if (ans->status != DNS_OK &&
	    config_route(smtpd_session_config(f->s), f->domain) != NULL) {
		/* the route's host has no address: that says nothing of the domain */
		bsnprintf(reply, sizeof(reply), "451 4.4.3 <%s>: DNS look-up for "
		    "the next hop of %s failed, try again later", f->rcpt_shown,
		    f->domain);
		goto dead;
	}
	switch (ans->status) {
	case DNS_NXDOMAIN:
		bsnprintf(reply, sizeof(reply), "550 5.1.2 <%s>: the domain %s "
		    "does not exist", f->rcpt_shown, f->domain);
		break;
	case DNS_NULLMX:
		bsnprintf(reply, sizeof(reply), "556 5.1.10 <%s>: the domain %s "
		    "accepts no mail (null MX)", f->rcpt_shown, f->domain);
		break;
	case DNS_NOHOST:
	case DNS_TEMPFAIL:
		bsnprintf(reply, sizeof(reply), "451 4.4.3 <%s>: DNS look-up for "
		    "%s failed, try again later", f->rcpt_shown, f->domain);
		break;
	case DNS_OK:
		/* drop ourselves and every less preferred host (RFC 5321 5.1) */
		for (n = 0; n < ans->ntargets && !is_self(&ans->targets[n],
		    route_port(f)); n++)
			;
		if (n == 0) {
			bsnprintf(reply, sizeof(reply), "554 5.4.6 <%s>: mail for %s "
			    "would loop back to this server", f->rcpt_shown, f->domain);
			break;
		}
		fwd_connect(f, ans->targets, n);
		return;
	}
dead:
	f->state = FS_DEAD;
	log_info("%s forward dns domain=%s status=%d", smtpd_session_idstr(f->s),
	    log_field(esc, sizeof(esc), f->domain), (int)ans->status);
	rcpt_done(f, reply);
}

/* fwd_failed - the remote session ended under us */
static void
fwd_failed(struct fwd *f, enum smtp_fail why, const struct smtp_reply *r)
{
	struct smtpd_session *s = f->s;
	char reply[512], esc[LOG_ESC(DOMAIN_MAX)], t[LOG_ESC(160)];
	/* a string constant: it outlives the client */
	const char *policy = smtp_client_policy(f->c);

	if (why == SMTP_FAIL_UNREACHABLE)
		log_info("%s forward unreachable domain=%s last=\"%s\"",
		    smtpd_session_idstr(s), log_field(esc, sizeof(esc), f->domain),
		    log_text(t, sizeof(t), smtp_client_last_error(f->c)));
	else if (why == SMTP_FAIL_POLICY)
		/* DANE or MTA-STS asked for more than opportunistic TLS */
		log_info("%s forward tls-policy-failed domain=%s policy=%s "
		    "failure=\"%s\"", smtpd_session_idstr(s),
		    log_field(esc, sizeof(esc), f->domain), policy,
		    log_text(t, sizeof(t), smtp_client_last_error(f->c)));
	smtp_client_free(f->c);	/* safe inside its callback */
	f->c = NULL;
	f->state = FS_DEAD;
	f->in_tx = false;
	if (why == SMTP_FAIL_POLICY)
		/* SPEC 9, RFC 3463 4.7.5: a cryptographic failure, not now */
		bsnprintf(reply, sizeof(reply), "451 4.7.5 No mail server for %s "
		    "meets its TLS policy (%s), try again later", f->domain,
		    strcmp(policy, "dane") == 0 ? "DANE" : "MTA-STS");
	else if (why == SMTP_FAIL_UNREACHABLE)
		bsnprintf(reply, sizeof(reply), "451 4.4.1 No mail server for %s "
		    "could be reached, try again later", f->domain);
	else
		bsnprintf(reply, sizeof(reply), "451 4.4.2 The next server for %s "
		    "%s, try again later", f->domain, why == SMTP_FAIL_TIMEOUT ?
		    "timed out" : why == SMTP_FAIL_CLOSING ? "is closing" :
		    "was lost");
	switch (f->wait) {
	case W_PROBE:
	case W_LOCAL:
	case W_COMMIT:
	case W_LMTP:
	case W_REMOVE:
		/* its done callback (probed, local_prepared...) finds it gone */
		break;
	case W_RCPT:
		if (f->rcpt_shown)
			rcpt_done(f, reply);
		break;
	case W_DATA:
		tx_answer(f, reply);
		break;
	case W_STREAM:
		finish(f, NULL, true, reply);
		break;
	case W_DOT: {
		struct local_copies *lc = f->lc;

		f->lc = NULL;
		finish(f, lc, true, reply);
		break;
	}
	default:
		/* streaming, or idle between transactions */
		f->failed = smtpd_tx_id(s) != NULL;
		smtpd_input_resume(s);
		break;
	}
}

static void dot_done(struct fwd *, const struct smtp_reply *);

static void
fwd_client_cb(void *arg, enum smtp_client_event ev, enum smtp_cmd cmd,
    enum smtp_fail why, const struct smtp_reply *r)
{
	struct fwd *f = arg;
	struct smtpd_session *s = f->s;
	char reply[SMTP_REPLY_TEXT_MAX + 32];

	switch (ev) {
	case SC_READY:
		f->state = FS_READY;
		if (f->wait == W_RCPT && f->rcpt_shown)
			send_rcpt(f);
		return;
	case SC_FAILED:
		fwd_failed(f, why, r);
		return;
	case SC_DRAINED:
		if (f->wait == W_STREAM)
			stream(f);
		return;
	case SC_REPLY:
		break;
	}
	switch (cmd) {
	case SMTP_CMD_MAIL:
		if (smtp_reply_class(r) != SMTP_CLASS_OK) {
			f->mail_refused = true;
			f->mail_reply = *r;
		}
		return;
	case SMTP_CMD_RCPT:
		if (f->wait != W_RCPT || f->rcpt_shown == NULL)
			return;
		map_reply(f, f->mail_refused ? &f->mail_reply : r, reply,
		    sizeof(reply));
		rcpt_done(f, reply);
		return;
	case SMTP_CMD_DATA:
		if (f->wait != W_DATA)
			return;
		if (r->code == 354) {
			/* the message is held until the checks' verdict (fwd_end) */
			go_on(f);
			smtpd_data_go(s);
			return;
		}
		if (smtp_reply_class(r) == SMTP_CLASS_OK ||
		    smtp_reply_class(r) == SMTP_CLASS_ODD)
			bsnprintf(reply, sizeof(reply), "451 4.4.2 Unexpected reply "
			    "to DATA from the next server (%d)", r->code);
		else
			map_reply(f, r, reply, sizeof(reply));
		smtp_client_rset(f->c);
		f->in_tx = false;
		tx_answer(f, reply);
		return;
	case SMTP_CMD_DOT:
		f->in_tx = false;
		if (f->wait == W_DOT)
			dot_done(f, r);
		return;
	case SMTP_CMD_RSET:
		return;
	}
}

static void
fwd_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fwd *f = arg;
	struct smtpd_session *s = f->s;
	char reply[256], esc[LOG_ESC(DOMAIN_MAX)];

	bsnprintf(reply, sizeof(reply), "451 4.4.2 The next server for %s did "
	    "not answer in time, try again later", f->domain);
	log_info("%s forward timeout domain=%s wait=%d", smtpd_session_idstr(s),
	    log_field(esc, sizeof(esc), f->domain), (int)f->wait);
	switch (f->wait) {
	case W_PROBE:
		/* the remote is not asked: the LMTP server did not answer */
		lmtp_probe_cancel(s);
		rcpt_answer(f, "451 4.4.2 The local delivery server did not "
		    "answer in time, try again later");
		return;
	case W_RCPT:
		fwd_close_remote(f);
		rcpt_done(f, reply);
		return;
	case W_DATA:
	case W_STREAM:
	case W_DOT:
		/*
		 * XXX after the dot, the remote may still accept the message it
		 * got: the sender retries and the message arrives twice.  The
		 * budget keeps this window to a remote slower than
		 * forward_data_budget (doc/forwarding.md).
		 */
		fwd_close_remote(f);
		{
			struct local_copies *lc = f->lc;

			f->lc = NULL;
			finish(f, lc, true, reply);
		}
		return;
	case W_LOCAL:
	case W_COMMIT:
	case W_LMTP:
	case W_REMOVE:
		/* a worker job (or LMTP) is running: its done callback answers */
		fwd_close_remote(f);
		f->failed = true;
		return;
	case W_NONE:
		return;
	}
}

/*
 * fwd_hold_cb - the transaction held its slot too long without DATA: the
 * remote session ends (QUIT), the slot is free for others, and the
 * transaction's next RCPT or DATA gets 451 4.4.2 (doc/forwarding.md)
 */
static void
fwd_hold_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fwd *f = arg;

	log_info("%s forward released domain=%s reason=no-data-in-time",
	    smtpd_session_idstr(f->s), f->domain);
	if (f->c && f->state == FS_READY) {
		smtp_client_quit(f->c);
		f->c = NULL;
	}
	fwd_close_remote(f);
	fwd_release(f);
	f->expired = true;
}

/*
 * lmtp_copies - local_delivery lmtp: the local copies go to the LMTP
 * server after the remote's 2xx, not into the Maildirs
 */
static bool
lmtp_copies(struct smtpd_session *s)
{
	return smtpd_session_config(s)->lmtp_text != NULL;
}

static void probed(struct smtpd_session *, const char *, void *);
static void rcpt_go(struct fwd *);

/* fwd_rcpt - forward_route's rcpt: ask the target's server (route.h) */
static void
fwd_rcpt(struct smtpd_session *s, const char *shown, const struct expansion *exp)
{
	struct fwd *f = smtpd_route_data(s, &forward_route);
	const char *at = strrchr(exp->external, '@'), *sat;
	char domain[DOMAIN_MAX + 1] = "";
	size_t nrcpts;

	if (at == NULL || !addr_domain_key(at + 1, domain, sizeof(domain))) {
		smtpd_rcpt_answer(s, "451 4.3.0 <%s>: bad forwarding target", shown);
		return;
	}
	if ((sat = strrchr(smtpd_tx_sender(s), '@')) != NULL && sat[1] == '[') {
		/* doc/forwarding.md, SRS: no SRS address may lead to a literal */
		char f1[LOG_ESC(PATH_MAX_OCTETS)];

		log_info("%s forward refused to=<%s> reason=literal-sender",
		    smtpd_tx_id(s), log_field(f1, sizeof(f1), shown));
		smtpd_rcpt_answer(s, "550 5.7.1 <%s>: mail from an address literal "
		    "cannot be forwarded (SRS cannot rewrite such a sender safely)",
		    shown);
		return;
	}
	if (f && f->expired) {
		smtpd_rcpt_answer(s, "451 4.4.2 <%s>: this transaction held its "
		    "forwarding session too long without DATA, try again later",
		    shown);
		return;
	}
	smtpd_tx_rcpts(s, &nrcpts);
	if (f && (strcmp(f->domain, domain) != 0 || f->state == FS_DEAD)) {
		/* the engine keeps one route key, so one domain, per transaction */
		if (nrcpts > 0 && f->state == FS_DEAD) {
			/* the remote session of this transaction is gone */
			smtpd_rcpt_answer(s, "451 4.4.2 <%s>: the next server was "
			    "lost, try again later", shown);
			return;
		}
		fwd_free(f);
		f = NULL;
		smtpd_route_set_data(s, &forward_route, NULL);
	}
	if (f == NULL) {
		if (!fwd_admit(s, domain)) {
			char esc[LOG_ESC(DOMAIN_MAX)];

			log_info("%s forward refused domain=%s reason=limit",
			    smtpd_session_idstr(s), log_field(esc, sizeof(esc), domain));
			smtpd_rcpt_answer(s, "451 4.4.5 Too many forwarding sessions, "
			    "try again later");
			return;
		}
		f = xcalloc(1, sizeof(*f));
		f->counted = true;
		f->hold_left_ms = (int64_t)fwd_g.cfg->forward_rcpt_budget * 1000;
		f->s = s;
		str_copy(f->domain, domain, sizeof(f->domain));
		str_copy(f->client_key, smtpd_session_addr_key(s),
		    sizeof(f->client_key));
		smtpd_route_set_data(s, &forward_route, f);
		f->state = FS_RESOLVING;
	}
	hold_pause(f);
	f->rcpt_shown = xstrdup(shown);
	f->rcpt_exp.external = xstrdup(exp->external);
	f->rcpt_exp.nmailboxes = exp->nmailboxes;
	f->rcpt_exp.mailboxes = xcalloc(exp->nmailboxes, sizeof(char *));
	for (size_t i = 0; i < exp->nmailboxes; i++)
		f->rcpt_exp.mailboxes[i] = xstrdup(exp->mailboxes[i]);
	f->wait = W_RCPT;
	fwd_timer_start(f, fwd_g.cfg->forward_rcpt_budget);
	{
		char f1[LOG_ESC(PATH_MAX_OCTETS)], f2[LOG_ESC(PATH_MAX_OCTETS)];

		log_info("%s forward rcpt to=<%s> target=<%s>", smtpd_tx_id(s),
		    log_field(f1, sizeof(f1), shown),
		    log_field(f2, sizeof(f2), exp->external));
	}
	if (lmtp_copies(s) && exp->nmailboxes > 0) {
		/* the local mailboxes first: a refusal there asks no remote */
		f->wait = W_PROBE;
		lmtp_probe(s, &f->rcpt_exp, probed, NULL);
		return;
	}
	rcpt_go(f);
}

/*
 * probed - the LMTP server's answer about the RCPT's local mailboxes:
 * its refusal is the RCPT's (doc/forwarding.md, "Local copies"), else
 * the remote is asked
 */
static void
probed(struct smtpd_session *s, const char *reply, void *arg)
{
	struct fwd *f = smtpd_route_data(s, &forward_route);

	(void)arg;
	if (f == NULL || f->wait != W_PROBE)
		return;
	if (reply[0] != '2') {
		char f1[LOG_ESC(PATH_MAX_OCTETS)], t[LOG_ESC(REPLY_LINE_MAX)];

		log_info("%s forward rcpt to=<%s> local-copy=refused result=\"%s\"",
		    smtpd_tx_id(s), log_field(f1, sizeof(f1), f->rcpt_shown),
		    log_text(t, sizeof(t), reply));
		rcpt_answer(f, reply);
		return;
	}
	f->wait = W_RCPT;
	if (f->state == FS_DEAD) {
		rcpt_done(f, "451 4.4.2 The next server was lost, try again later");
		return;
	}
	rcpt_go(f);
}

/* rcpt_go - ask the remote about f's RCPT, connecting first if need be */
static void
rcpt_go(struct fwd *f)
{
	struct smtpd_session *s = f->s;

	if (f->state == FS_READY)
		send_rcpt(f);
	else if (f->state == FS_RESOLVING && f->q == NULL && f->pq == NULL &&
	    f->c == NULL) {
		struct mx_target t;
		const struct route_conf *rt = config_route(smtpd_session_config(s),
		    f->domain);

		if (rt != NULL && !mx_host_target(rt->host, &t)) {
			/* route DOMAIN HOST:PORT: that host, never the MX */
			f->q = resolver_host(fwd_g.resolver, rt->host, fwd_resolved, f);
			return;
		}
		if (rt == NULL && f->domain[0] != '[') {
			f->pq = tlspolicy_mx(fwd_g.sts, fwd_g.resolver, f->domain,
			    fwd_resolved, f);
			return;
		}
		if (rt == NULL && !mx_literal_target(f->domain, &t)) {
			f->state = FS_DEAD;
			rcpt_done(f, "550 5.1.2 Bad address literal in the forwarding "
			    "target");
		} else if (is_self(&t, route_port(f))) {
			f->state = FS_DEAD;
			rcpt_done(f, "554 5.4.6 The forwarding target would loop back "
			    "to this server");
		} else
			fwd_connect(f, &t, 1);
	}
}

/* fwd_data - DATA: the client gets 354 once the remote has said 354 */
static void
fwd_data(struct smtpd_session *s)
{
	struct fwd *f = smtpd_route_data(s, &forward_route);

	if (f && f->expired) {
		smtpd_tx_done(s, "451 4.4.2 This transaction held its forwarding "
		    "session too long without DATA, try again later");
		return;
	}
	if (f == NULL || f->state != FS_READY || f->c == NULL) {
		smtpd_tx_done(s, "451 4.4.2 The next server was lost, try again "
		    "later");
		return;
	}
	hold_pause(f);		/* DATA reached: the bound is met */
	f->failed = false;
	f->wait = W_DATA;
	fwd_timer_start(f, fwd_g.cfg->forward_rcpt_budget);
	smtp_client_data(f->c);
}

static void
send_dot(struct fwd *f)
{
	f->wait = W_DOT;
	smtp_client_dot(f->c);
}

/* local_prepared - the local copies are synced in tmp/ (or failed) */
static void
local_prepared(struct smtpd_session *s, struct local_copies *lc, void *arg)
{
	struct fwd *f = smtpd_route_data(s, &forward_route);
	const struct maildir_delivery *d = local_copies_delivery(lc);

	if (f == NULL) {
		local_copies_drop(lc, true);
		return;
	}
	if (d->result != RES_OK || f->failed || f->state != FS_READY) {
		const char *reply = d->result != RES_OK ?
		    store_error_reply(d->error) :
		    "451 4.4.2 The next server was lost, try again later";

		errno = d->error;
		if (d->result != RES_OK)
			log_warn("%s forward local-copy result=failed step=%s",
			    smtpd_tx_id(s), d->failed_step ? d->failed_step : "?");
		/* the remote must not get a message whose local copy failed */
		fwd_close_remote(f);
		finish(f, lc, true, reply);
		return;
	}
	f->lc = lc;
	send_dot(f);
}

/* local_committed - the local copies moved into new/ (or could not) */
static void
local_committed(struct smtpd_session *s, struct local_copies *lc, void *arg)
{
	struct fwd *f = smtpd_route_data(s, &forward_route);
	const struct maildir_delivery *d = local_copies_delivery(lc);

	if (f == NULL) {
		local_copies_drop(lc, false);
		return;
	}
	if (d->result != RES_OK) {
		/* the remote has the message: a 4xx would duplicate it there */
		errno = d->error;
		log_warn("%s forward local-copy result=LOST-AFTER-REMOTE-ACCEPTED "
		    "step=%s: the local copy could not be kept", smtpd_tx_id(s),
		    d->failed_step ? d->failed_step : "?");
	} else
		for (size_t i = 0; i < d->ncopies; i++)
			log_info("%s delivery mailbox=%s result=delivered path=%s",
			    smtpd_tx_id(s), d->copies[i].mailbox, d->copies[i].path);
	finish(f, lc, false, f->final_reply);
}

/*
 * lmtp_delivered - the local copies, after the remote's 2xx, went to the
 * LMTP server, or into the queue for the mailboxes that did not take them
 * (doc/forwarding.md, "Local copies"): the client gets the remote's
 * reply; when not even the queue could keep them, 451, and the client's
 * retry gives the remote a second copy rather than losing the local one
 */
static void
lmtp_delivered(struct smtpd_session *s, const char *reply, void *arg)
{
	struct fwd *f = smtpd_route_data(s, &forward_route);
	char t[LOG_ESC(REPLY_LINE_MAX)];

	(void)arg;
	if (f == NULL)
		return;
	if (reply[0] == '2') {
		tx_answer(f, f->final_reply);
		return;
	}
	log_warnx("%s forward local-copy result=not-kept reply=\"%s\": the "
	    "remote has the message, the client's retry sends it again",
	    smtpd_tx_id(s), log_text(t, sizeof(t), reply));
	tx_answer(f, "451 4.3.0 The message was forwarded but its local copy "
	    "could not be kept, try again later");
}

/* dot_done - the remote answered our final dot */
static void
dot_done(struct fwd *f, const struct smtp_reply *r)
{
	struct smtpd_session *s = f->s;
	struct local_copies *lc = f->lc;

	/* a 3xx is SMTP_CLASS_ODD: fwd_map_reply says "Unexpected reply" */
	map_reply(f, r, f->final_reply, sizeof(f->final_reply));
	metrics_forward(f->domain, f->final_reply[0], f->ntargets);
	{
		char t[LOG_ESC(sizeof(f->final_reply))];

		log_info("%s forward result=\"%s\" remote=%s", smtpd_tx_id(s),
		    log_text(t, sizeof(t), f->final_reply),
		    smtp_client_caps(f->c)->addr);
	}
	f->lc = NULL;
	if (smtp_reply_class(r) == SMTP_CLASS_OK && lc != NULL) {
		f->wait = W_COMMIT;
		local_copies_run(lc, LOCAL_COMMIT, s, local_committed, NULL);
		return;
	}
	if (smtp_reply_class(r) == SMTP_CLASS_OK && lmtp_copies(s)) {
		size_t n;

		smtpd_tx_mailboxes(s, &n);
		if (n > 0) {
			f->wait = W_LMTP;
			lmtp_deliver(s, true, lmtp_delivered, NULL);
			return;
		}
	}
	finish(f, lc, true, f->final_reply);	/* refused: the local copy goes too */
}

/*
 * fwd_end - the client's final dot: refusal is the reply when a check
 * failed (the remote then never gets a final dot), NULL when all is well
 */
static void
fwd_end(struct smtpd_session *s, const char *refusal)
{
	struct fwd *f = smtpd_route_data(s, &forward_route);
	const char *ar;

	if (refusal == NULL && (f == NULL || f->failed || f->state != FS_READY))
		refusal = "451 4.4.2 The next server was lost, try again later";
	if (refusal == NULL && smtpd_tx_header_non_ascii(s) &&
	    !smtp_client_caps(f->c)->smtputf8)
		refusal = "550 5.6.9 The message has non-ASCII headers and the "
		    "next server does not support SMTPUTF8";
	if (refusal) {
		/* the remote never gets the final dot */
		if (f)
			fwd_close_remote(f);
		smtpd_tx_done(s, "%s", refusal);
		return;
	}
	smtpd_wait(s);
	fwd_timer_start(f, fwd_g.cfg->forward_data_budget);
	/* the verdict is in: the held message goes, our fields first */
	f->wait = W_STREAM;
	f->sent = 0;
	if ((ar = smtpd_tx_auth_results(s)) != NULL &&
	    smtp_client_body(f->c, ar, strlen(ar)))
		return;		/* SC_DRAINED goes on */
	stream(f);
}

/*
 * streamed - the whole message is with the remote: the local copies are
 * synced in tmp/ (if any), then the final dot goes
 */
static void
streamed(struct fwd *f)
{
	struct smtpd_session *s = f->s;
	size_t nmailboxes;

	f->wait = W_LOCAL;
	smtpd_tx_mailboxes(s, &nmailboxes);
	if (nmailboxes > 0 && !lmtp_copies(s)) {
		local_copies_run(local_copies_new(s), LOCAL_PREPARE, s,
		    local_prepared, NULL);
		return;
	}
	send_dot(f);
}

/*
 * stream - the next part of the message the engine kept (our Received
 * first) to the remote, until its output is over the high watermark
 * (SC_DRAINED calls again) or all is sent
 */
static void
stream(struct fwd *f)
{
	const struct body *b = smtpd_tx_body(f->s);
	char buf[16384];
	ssize_t n;

	while ((n = body_read_at(b, f->sent, buf, sizeof(buf))) > 0) {
		f->sent += (uint64_t)n;
		if (smtp_client_body(f->c, buf, (size_t)n))
			return;
	}
	if (n < 0) {
		log_warn("%s forward result=failed step=read-held-message",
		    smtpd_tx_id(f->s));
		fwd_close_remote(f);
		finish(f, NULL, true, "451 4.3.0 The message could not be read "
		    "back, try again later");
		return;
	}
	streamed(f);
}

/*
 * fwd_rset - the transaction ended (RSET, HELO/EHLO, the reply to the final
 * dot, a reply that ends it): the remote session ends with QUIT and
 * its slot is free at once, so that no idle session holds one
 * (doc/forwarding.md, step 7); the session's end does the same
 */
static void
fwd_rset(struct smtpd_session *s)
{
	fwd_free(smtpd_route_data(s, &forward_route));
	smtpd_route_set_data(s, &forward_route, NULL);
}

const struct smtpd_route_ops forward_route = {
	.name = "forward",
	.outcome = "forwarded",
	.forwards = true,
	.rcpt = fwd_rcpt,
	.data = fwd_data,
	.end = fwd_end,
	.rset = fwd_rset,
	.free = fwd_rset,
};
