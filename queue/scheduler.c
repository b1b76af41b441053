/*
 * scheduler.c - the queue on the event loop.
 *
 * Every message in the store is also in memory (a small server's queue is
 * small): a list of entries, each with its envelope and the time its next
 * recipient is due.  One timer wakes at the earliest due time; a due
 * message gets one delivery attempt at a time: its body is read from the
 * store on a worker thread, local recipients go to their Maildirs (the
 * same durable path as the mx role), remote ones are grouped by domain,
 * one SMTP transaction per domain through the shared outbound client.
 * When every group has answered, the outcome is written back to the store
 * (or the message deleted when nothing is left), failures and delays are
 * reported into the owner's Maildir (RFC 3464, never over SMTP), and the
 * next attempt is scheduled.
 *
 * The queue keeps its own config and tables, handed on by chamoisd's root
 * at queue_init and on SIGHUP (queue_configure), and uses the root's MX
 * resolver and client TLS context.  It never ends the loop: the stopping
 * root asks queue_idle() (the queue's worker jobs in flight).
 *
 * Recipient outcomes:
 *   2xx to the final dot                    delivered
 *   5xx to MAIL, RCPT, DATA or the dot      failed (reported)
 *   4xx, a lost or timed-out session,
 *   no MX reachable, a DNS failure          deferred until queue_lifetime
 *   no such domain, null MX                 failed (5.1.2, 5.1.10)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "../common/addr.h"
#include "../common/body.h"
#include "../common/clock.h"
#include "../common/config.h"
#include "../common/hmap.h"
#include "../common/metrics.h"
#include "../common/tables.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "../dkim/signer.h"
#include "../local/lmtp.h"
#include "../maildir/maildir.h"
#include "../outbound/client.h"
#include "../outbound/mtasts.h"
#include "../outbound/resolver.h"
#include "queue.h"

#define CHECKPOINT_EVERY	60	/* seconds */
/* RFC 5321 4.5.3.2: the client's timeouts, minutes per step */
#define CLIENT_STEP_TIMEOUT	300
#define CLIENT_DOT_TIMEOUT	600

struct qgroup;

struct qentry {
	TAILQ_ENTRY(qentry) entry;
	struct queue_msg msg;
	bool busy;		/* an attempt or a store operation is running */
	bool removed;		/* queue_remove while busy */
	time_t due;		/* earliest next_attempt of a waiting recipient */
	time_t attempt_now;	/* the time the attempt in progress started */
	bool delete_failed;	/* delivered, but the store still has it */
	bool updating;		/* a store write of this entry is running */
	bool update_again;	/* ... and the state changed meanwhile */
	bool final_pending;	/* the attempt is over: the last write is due */
	/* the attempt in progress */
	struct config *cfg;	/* held (config_ref) from attempt() to its end */
	char *body;
	size_t body_len;
	int groups;		/* groups not finished yet */
	struct body mdbody;	/* body view for Maildir copies */
};
TAILQ_HEAD(qentry_list, qentry);

/* one destination of one attempt: the local Maildirs, or one domain */
struct qgroup {
	TAILQ_ENTRY(qgroup) entry;
	struct qentry *e;
	bool local;
	char domain[DOMAIN_MAX + 1];
	size_t *idx;		/* recipients (indexes into msg.rcpts) */
	size_t n;
	bool *accepted;		/* RCPT got 2xx */
	size_t rcpt_replies;	/* RCPT replies seen (they come in order) */
	struct resolver_query *q;
	struct tlspolicy_query *pq;	/* the MX look-up with MTA-STS */
	struct smtp_client *c;
	bool mail_failed;
	bool data_sent;
	struct maildir_delivery *md;
	char relay[LOG_RELAY_MAX];	/* the outcome lines' relay= */
	struct next_hop hop;		/* the MX, relay_host or a route */
};

TAILQ_HEAD(qgroup_list, qgroup);

static struct {
	struct event_base *base;
	struct config *cfg;		/* in force (held; queue_configure) */
	struct tables *tables;		/* likewise */
	struct resolver *resolver;	/* MX look-ups, the root's */
	SSL_CTX *tls_client;		/* outbound STARTTLS, the root's */
	struct sts *sts;		/* MTA-STS, the root's; NULL: off */
	SSL_CTX *tls_relay;		/* relay_host's, verifying (relay.c) */
	const struct smtp_auth_ops *relay_auth;	/* queue_set_relay_auth */
	unsigned jobs;			/* worker jobs of the queue in flight */
	bool draining;			/* the daemon stops: nothing new starts */
	struct qgroup_list groups;	/* destinations being delivered to */
	struct queue_store *store;
	struct dkim_signer *signer;	/* the keys in force (held) */
	struct qentry_list msgs;
	struct hmap *byid;
	struct event *timer;
	struct event *ckpt;
	unsigned active;		/* remote groups in flight */
	struct hmap *per_domain;	/* domain -> groups in flight */
	bool stopping;
} q;

static void schedule(void);
static void group_free(struct qgroup *);
static void reserve(struct qentry *, int);
static void attempt_finish(struct qentry *);
static void group_done(struct qgroup *);

/* job - work on a worker thread, counted for queue_idle(); done says job_end() */
static void
job(void (*work)(void *), void (*done)(void *), void *arg)
{
	q.jobs++;
	worker_submit(work, done, arg);
}

/* job_cpu - the same on the CPU pool (common/worker.h) */
static void
job_cpu(void (*work)(void *), void (*done)(void *), void *arg)
{
	q.jobs++;
	worker_submit_cpu(work, done, arg);
}

static void
job_end(void)
{
	q.jobs--;
}

/*
 * rcpt_outcome - record what happened to one recipient in this attempt,
 * and log its outcome line (doc/chamoisd.8 LOGGING; relay: "local",
 * "none" or HOST[IP]:PORT)
 */
static void
rcpt_outcome(struct qentry *e, size_t i, enum rcpt_state st, const char *status,
    const char *reply, const char *mta, const char *relay)
{
	struct queue_rcpt *r = &e->msg.rcpts[i];

	r->state = st;
	str_copy(r->status, status, sizeof(r->status));
	free(r->last_reply);
	r->last_reply = xstrdup(reply ? reply : "");
	free(r->remote_mta);
	r->remote_mta = xstrdup(mta ? mta : "");
	metrics_message(MR_QUEUE, st == RS_DELIVERED ? (r->local ? MO_DELIVERED :
	    MO_SENT) : st == RS_FAILED ? MO_BOUNCED : MO_DEFERRED, 1);
	log_outcome(e->msg.id, r->addr, relay, e->msg.created, r->status,
	    st == RS_DELIVERED ? "sent" : st == RS_FAILED ? "bounced" : "deferred",
	    r->last_reply);
}

/* reply_outcome - an SMTP reply as a recipient outcome */
static void
reply_outcome(struct qentry *e, size_t i, const struct smtp_reply *r,
    const char *mta, const char *relay)
{
	char status[16], line[SMTP_REPLY_TEXT_MAX + 32];
	enum smtp_class cls = smtp_reply_class(r);

	smtp_reply_status(r, status, sizeof(status));
	snprintf(line, sizeof(line), "%d %s %s", r->code, status, r->text);
	rcpt_outcome(e, i, cls == SMTP_CLASS_OK ? RS_DELIVERED :
	    cls == SMTP_CLASS_PERM ? RS_FAILED : RS_DEFERRED, status, line, mta,
	    relay);
}

static void
entry_free(struct qentry *e)
{
	queue_msg_free(&e->msg);
	free(e->body);
	if (e->mdbody.mem)
		body_free(&e->mdbody);
	config_free(e->cfg);
	free(e);
}

/*
 * entry_due - when the message next needs an attempt: its earliest
 * waiting recipient, or at once when a recipient failed at submission
 * (unknown local mailbox) and still has to be reported
 */
static void
entry_due(struct qentry *e)
{
	e->due = 0;
	for (size_t i = 0; i < e->msg.nrcpts; i++) {
		const struct queue_rcpt *r = &e->msg.rcpts[i];
		time_t t;

		if (r->state == RS_PENDING || r->state == RS_DEFERRED)
			t = r->next_attempt;
		else if (r->state == RS_FAILED && !r->reported)
			t = e->msg.created;
		else
			continue;
		if (e->due == 0 || t < e->due)
			e->due = t;
	}
}

static struct qentry *
entry_add(const struct queue_msg *m)
{
	struct qentry *e = xcalloc(1, sizeof(*e));

	queue_msg_copy(&e->msg, m);
	entry_due(e);
	TAILQ_INSERT_TAIL(&q.msgs, e, entry);
	hmap_put(q.byid, e->msg.id, e);
	return e;
}

static void
entry_remove(struct qentry *e)
{
	TAILQ_REMOVE(&q.msgs, e, entry);
	hmap_del(q.byid, e->msg.id);
	entry_free(e);
}

/* ---- start-up ---------------------------------------------------------- */

static int
load_cb(const struct queue_msg *m, void *arg)
{
	unsigned *n = arg;

	entry_add(m);
	(*n)++;
	return 0;
}

struct ckpt_job {
	int result;
};

static void
ckpt_work(void *arg)
{
	struct ckpt_job *j = arg;

	j->result = qstore_checkpoint(q.store);
}

static void
ckpt_done(void *arg)
{
	struct ckpt_job *j = arg;

	job_end();
	if (j->result != 0)
		log_warn("queue checkpoint");
	free(j);
}

static void store_state(struct qentry *, bool);

static void
ckpt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qentry *e;

	if (q.stopping)
		return;
	TAILQ_FOREACH(e, &q.msgs, entry)
		if (e->delete_failed && !e->busy) {
			e->delete_failed = false;
			e->busy = true;
			store_state(e, true);
		}
	job(ckpt_work, ckpt_done, xcalloc(1, sizeof(struct ckpt_job)));
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	schedule();
}

int
queue_init(struct event_base *base, struct config *cfg, struct tables *tables,
    struct resolver *resolver, SSL_CTX *tls_client, struct sts *sts, char *err,
    size_t errsize)
{
	char dir[4096];
	unsigned n = 0;
	struct timeval tv = { CHECKPOINT_EVERY, 0 };

	q.base = base;
	q.cfg = config_ref(cfg);
	q.tables = tables_ref(tables);
	q.resolver = resolver;
	q.tls_client = tls_client;
	q.sts = sts;
	if (cfg->relay_host &&
	    (q.tls_relay = relay_tls_new(cfg, err, errsize)) == NULL)
		return -1;
	TAILQ_INIT(&q.msgs);
	TAILQ_INIT(&q.groups);
	q.byid = hmap_new();
	q.per_domain = hmap_new();
	if (!bsnprintf(dir, sizeof(dir), "%s/db", q.cfg->queue_dir)) {
		snprintf(err, errsize, "queue_dir too long");
		return -1;
	}
	if (mkdir_synced(dir, 0700) == -1) {
		snprintf(err, errsize, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((q.store = qstore_open(dir, err, errsize)) == NULL)
		return -1;
	if (qstore_walk(q.store, load_cb, &n) != 0) {
		snprintf(err, errsize, "reading the queue in %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	q.timer = evtimer_new(base, timer_cb, NULL);
	q.ckpt = event_new(base, -1, EV_PERSIST, ckpt_cb, NULL);
	event_add(q.ckpt, &tv);
	log_info("queue ready messages=%u dir=%s", n, dir);
	if (tlsrpt_reports_init(base, cfg, resolver, sts, err, errsize) == -1)
		return -1;
	schedule();
	return 0;
}

void
queue_shutdown(void)
{
	struct qentry *e;
	struct qgroup *g;

	q.stopping = true;
	/*
	 * remote deliveries still talking are dropped: the store has the
	 * state from before the attempt, so they are tried again after the
	 * restart (a remote that accepted just now gets the message twice,
	 * the window SMTP leaves; doc/queue.md)
	 */
	while ((g = TAILQ_FIRST(&q.groups)) != NULL) {
		TAILQ_REMOVE(&q.groups, g, entry);
		group_free(g);
	}
	if (q.timer)
		event_free(q.timer);
	if (q.ckpt)
		event_free(q.ckpt);
	q.timer = q.ckpt = NULL;
	while ((e = TAILQ_FIRST(&q.msgs)) != NULL)
		entry_remove(e);
	hmap_free(q.byid, NULL);
	hmap_free(q.per_domain, NULL);
	q.byid = q.per_domain = NULL;
	if (q.store)
		qstore_close(q.store);
	q.store = NULL;
	tlsrpt_reports_shutdown();
	queue_set_signer(NULL);
	SSL_CTX_free(q.tls_relay);
	q.tls_relay = NULL;
	tables_free(q.tables);
	config_free(q.cfg);
	q.tables = NULL;
	q.cfg = NULL;
}

void
queue_configure(struct config *cfg, struct tables *tables)
{
	struct config *oc = q.cfg;
	struct tables *ot = q.tables;

	q.cfg = config_ref(cfg);
	q.tables = tables_ref(tables);
	tables_free(ot);
	config_free(oc);
	tlsrpt_reports_configure(cfg);
}

/* queue_set_relay_tls - see queue.h */
void
queue_set_relay_tls(SSL_CTX *ctx)
{
	SSL_CTX_free(q.tls_relay);	/* each client holds its own reference */
	q.tls_relay = ctx;
}

/* queue_set_relay_auth - see queue.h */
void
queue_set_relay_auth(const struct smtp_auth_ops *ops)
{
	q.relay_auth = ops;
}

void
queue_stop(void)
{
	q.draining = true;
}

bool
queue_idle(void)
{
	return q.jobs == 0;
}

/* ---- submission --------------------------------------------------------- */

struct submit_job {
	struct queue_msg *msg;
	struct body *body;
	queue_put_cb cb;
	void *arg;
	int result;
	int error;
	char err[256];
	struct dkim_signer *signer;	/* held: sign with these keys */
	/* what signing did, logged on the loop */
	char from_domain[DOMAIN_MAX + 1];
	const char *unsigned_why;	/* not signed, and why (static text) */
	size_t signatures;
	char sign_err[512];		/* a key that failed */
	/* signed: the fields made (head) and the message they sign */
	char *head, *signed_body;
	size_t headlen, bodylen;
	char *prefix;			/* queue_submit_prefixed: stored before body */
};

/*
 * sign - the DKIM-Signature fields of the message (doc/queue.md
 * "Signing"), or NULL: the From names no one signing domain
 * (unsigned_why says why), or every key failed (sign_err)
 */
static char *
sign(struct submit_job *j, const char *body, size_t len, size_t *headlen)
{
	char *head;

	if (queue_from_domain(body, len, j->from_domain, sizeof(j->from_domain),
	    &j->unsigned_why) == NULL)
		return NULL;
	head = dkim_sign_message(j->signer, j->from_domain, body, len, headlen,
	    &j->signatures, j->sign_err, sizeof(j->sign_err));
	if (head == NULL)
		j->unsigned_why = "the From domain has no dkim_key";
	return head;
}

static void submit_done(void *);

/* submit_work - on the disk pool: the message into the store */
static void
submit_work(void *arg)
{
	struct submit_job *j = arg;

	if (j->error)
		return;		/* refused before the store was asked */
	if (j->signed_body != NULL)
		j->result = qstore_put_buf(q.store, j->msg, j->head, j->headlen,
		    j->signed_body, j->bodylen, j->err, sizeof(j->err));
	else
		j->result = qstore_put_head(q.store, j->msg, j->prefix,
		    j->prefix ? strlen(j->prefix) : 0, j->body, j->err,
		    sizeof(j->err));
	j->error = j->result ? errno : 0;
}

/*
 * sign_work - on the CPU pool: the message read whole and signed once,
 * here, so that every attempt sends these same bytes.  Whole is what the
 * store takes anyway: a message is one BDB record (queue/queue_db.c), at
 * most message_size_limit octets.
 */
static void
sign_work(void *arg)
{
	struct submit_job *j = arg;

	if (j->error)
		return;
	if (qstore_body_read(j->body, &j->signed_body, &j->bodylen) == -1) {
		j->error = errno;
		j->result = -1;
		snprintf(j->err, sizeof(j->err), "queue %s: reading the body: %s",
		    j->msg->id, strerror(j->error));
		j->signed_body = NULL;
		return;
	}
	if ((j->head = sign(j, j->signed_body, j->bodylen, &j->headlen)) != NULL)
		j->msg->size += j->headlen;
}

/* sign_done - on the loop: signed, now stored (the job stays counted) */
static void
sign_done(void *arg)
{
	struct submit_job *j = arg;

	worker_submit(submit_work, submit_done, j);
}

/* sign_log - on the loop: what signing did to a stored message */
static void
sign_log(const struct submit_job *j, const char *id)
{
	char f[LOG_ESC(DOMAIN_MAX)];

	if (j->signer == NULL)
		return;
	if (j->sign_err[0])
		log_warnx("%s dkim key failed domain=%s: %s; the message goes "
		    "without that signature", id, log_field(f, sizeof(f),
		    j->from_domain), j->sign_err);
	if (j->signatures)
		log_info("%s dkim signed domain=%s signatures=%zu", id,
		    log_field(f, sizeof(f), j->from_domain), j->signatures);
	else if (j->unsigned_why)
		log_debug("%s dkim unsigned: %s", id, j->unsigned_why);
}

static void
submit_done(void *arg)
{
	struct submit_job *j = arg;

	job_end();
	if (j->result == 0 && !q.stopping) {
		struct qentry *e = entry_add(j->msg);
		char f1[LOG_ESC(PATH_MAX_OCTETS)], f2[LOG_ESC(256)];

		log_info("%s queue stored from=<%s> owner=%s uid=%ld size=%" PRIu64
		    " rcpts=%zu", e->msg.id, log_field(f1, sizeof(f1), e->msg.sender),
		    log_field(f2, sizeof(f2), e->msg.owner),
		    e->msg.uid, e->msg.size, e->msg.nrcpts);
		sign_log(j, e->msg.id);
		/* a local recipient without a mailbox failed in expand() */
		for (size_t i = 0; i < e->msg.nrcpts; i++)
			if (e->msg.rcpts[i].state == RS_FAILED)
				log_outcome(e->msg.id, e->msg.rcpts[i].addr, "none",
				    e->msg.created, e->msg.rcpts[i].status, "bounced",
				    e->msg.rcpts[i].last_reply);
		j->cb(j->arg, 0, e->msg.id);
		schedule();
	} else {
		errno = j->error;
		log_warn("queue store failed: %s", j->err);
		j->cb(j->arg, j->error ? j->error : EIO, NULL);
	}
	queue_msg_free(j->msg);
	free(j->msg);
	body_free(j->body);
	free(j->body);
	dkim_signer_free(j->signer);
	free(j->head);
	free(j->signed_body);
	free(j->prefix);
	free(j);
}

/* add_rcpt - a destination of recipient from (its orig and DSN parameters) */
static void
add_rcpt(struct queue_msg *m, struct queue_rcpt *out, size_t *n, const char *addr,
    const struct queue_rcpt *from, bool local)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(out[i].addr, addr) == 0)
			return;
	memset(&out[*n], 0, sizeof(out[*n]));
	out[*n].addr = xstrdup(addr);
	out[*n].orig = xstrdup(from->orig);
	out[*n].notify = from->notify;
	out[*n].orcpt = xstrdup(from->orcpt ? from->orcpt : "");
	out[*n].local = local;
	out[*n].state = RS_PENDING;
	out[*n].next_attempt = m->created;
	out[*n].last_reply = xstrdup("");
	out[*n].remote_mta = xstrdup("");
	(*n)++;
}

/*
 * expanded_add - r, an alias of several destinations whose NOTIFY has
 * SUCCESS, into m->expanded for its "expanded" report (RFC 3461 5.2.7.3,
 * option (b) as Postfix does: the members go on with NOTIFY less SUCCESS,
 * doc/queue.md); the NOTIFY its members get
 */
static unsigned
expanded_add(struct queue_msg *m, const struct queue_rcpt *r)
{
	struct queue_rcpt *x;

	m->expanded = xreallocarray(m->expanded, m->nexpanded + 1,
	    sizeof(*m->expanded));
	x = &m->expanded[m->nexpanded++];
	memset(x, 0, sizeof(*x));
	x->addr = xstrdup(r->orig);
	x->orig = xstrdup(r->orig);
	x->orcpt = xstrdup(r->orcpt ? r->orcpt : "");
	x->notify = r->notify;
	x->local = x->expanded = true;
	x->state = RS_DELIVERED;
	str_copy(x->status, "2.0.0", sizeof(x->status));
	x->last_reply = xstrdup("250 2.0.0 alias expanded");
	x->remote_mta = xstrdup("");
	return r->notify == DSN_NOTIFY_SUCCESS ? DSN_NOTIFY_NEVER :
	    r->notify & ~(unsigned)DSN_NOTIFY_SUCCESS;
}

/*
 * expand - every recipient's destinations: local mailboxes (aliases
 * expanded), the forwarded target of an alias (the sender is ours, so the
 * queue delivers to it), or the address itself for other domains
 */
static void
expand(struct queue_msg *m)
{
	struct queue_rcpt *out = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < m->nrcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		struct mailaddr a;
		char key[PATH_MAX_OCTETS + 1];
		struct expansion exp;
		const char *at;
		bool local_dom = false;
		size_t first;

		if (cap < n + 64) {
			cap = n + 64;
			out = xreallocarray(out, cap, sizeof(*out));
		}
		if (r->addr != NULL) {		/* restored: keep as it is */
			out[n] = *r;
			memset(r, 0, sizeof(*r));
			n++;
			continue;
		}
		if (addr_parse(r->orig, &a, ADDR_F_UTF8) == ADDR_OK &&
		    addr_key(&a, key, sizeof(key)) && (at = strrchr(key, '@')))
			local_dom = config_is_local_domain(q.cfg, at + 1);
		if (!local_dom) {
			add_rcpt(m, out, &n, r->orig, r, false);
			continue;
		}
		if (!tables_resolve(q.tables, key, &exp)) {
			add_rcpt(m, out, &n, r->orig, r, true);
			out[n - 1].state = RS_FAILED;
			str_copy(out[n - 1].status, "5.1.1", sizeof(out[n - 1].status));
			free(out[n - 1].last_reply);
			out[n - 1].last_reply = xstrdup("550 5.1.1 no such local "
			    "mailbox");
			continue;
		}
		if (cap < n + exp.nmailboxes + 1) {
			cap = n + exp.nmailboxes + 64;
			out = xreallocarray(out, cap, sizeof(*out));
		}
		first = n;
		for (size_t k = 0; k < exp.nmailboxes; k++)
			add_rcpt(m, out, &n, exp.mailboxes[k], r, true);
		if (exp.external)
			add_rcpt(m, out, &n, exp.external, r, false);
		if (exp.nmailboxes + (exp.external ? 1 : 0) > 1 &&
		    (r->notify & DSN_NOTIFY_SUCCESS)) {
			unsigned notify = expanded_add(m, r);

			for (size_t k = first; k < n; k++)
				out[k].notify = notify;
		}
		expansion_free(&exp);
	}
	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orig);
		free(m->rcpts[i].last_reply);
		free(m->rcpts[i].remote_mta);
		free(m->rcpts[i].orcpt);
	}
	free(m->rcpts);
	m->rcpts = out;
	m->nrcpts = n;
}

/* has_remote - a recipient is delivered to another server */
static bool
has_remote(const struct queue_msg *m)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		if (!m->rcpts[i].local && m->rcpts[i].state == RS_PENDING)
			return true;
	return false;
}

void
queue_set_signer(struct dkim_signer *s)
{
	dkim_signer_free(q.signer);
	q.signer = s ? dkim_signer_ref(s) : NULL;
}

/* queue_msg_prepare - see queue.h */
void
queue_msg_prepare(struct queue_msg *m, const struct body *b)
{
	m->version = QUEUE_RECORD_VERSION;
	if (m->id[0] == '\0') {
		queue_new_id(m->id);
		m->created = clock_now();
	}
	if (m->owner == NULL)
		m->owner = xstrdup("");
	if (m->sender == NULL)
		m->sender = xstrdup("");
	m->size = b->size;
	expand(m);
}

/* submit - queue_submit(_prefixed) */
static void
submit(struct queue_msg *m, const char *prefix, struct body *b, queue_put_cb cb,
    void *arg)
{
	struct submit_job *j = xcalloc(1, sizeof(*j));
	bool restored = m->id[0] != '\0';

	queue_msg_prepare(m, b);
	if (prefix != NULL && prefix[0] != '\0') {
		j->prefix = xstrdup(prefix);
		m->size += strlen(prefix);
	}
	/*
	 * a new message with a recipient on another server is signed; one
	 * restored (chamoisctl restore) keeps the bytes it had, and a
	 * prefixed one (local mailboxes: queue.h) is not
	 */
	if (!restored && j->prefix == NULL && dkim_signer_keys(q.signer) > 0 &&
	    has_remote(m))
		j->signer = dkim_signer_ref(q.signer);
	j->msg = m;
	j->body = b;
	j->cb = cb;
	j->arg = arg;
	if (hmap_get(q.byid, m->id) != NULL) {
		/* a restored id still here (even one being removed) */
		j->result = -1;
		j->error = EEXIST;
		snprintf(j->err, sizeof(j->err), "%s is already queued", m->id);
	}
	/* signing is CPU work: its pool, then the disk pool stores */
	if (j->signer != NULL)
		job_cpu(sign_work, sign_done, j);
	else
		job(submit_work, submit_done, j);
}

void
queue_submit(struct queue_msg *m, struct body *b, queue_put_cb cb, void *arg)
{
	submit(m, NULL, b, cb, arg);
}

void
queue_submit_prefixed(struct queue_msg *m, const char *prefix, struct body *b,
    queue_put_cb cb, void *arg)
{
	submit(m, prefix, b, cb, arg);
}

/* ---- administration ----------------------------------------------------- */

void
queue_foreach(void (*fn)(const struct queue_msg *, void *), void *arg)
{
	struct qentry *e;

	TAILQ_FOREACH(e, &q.msgs, entry)
		if (!e->removed)
			fn(&e->msg, arg);
}

const struct queue_msg *
queue_lookup(const char *id)
{
	struct qentry *e = hmap_get(q.byid, id);

	return e && !e->removed ? &e->msg : NULL;
}

void
queue_flush(void)
{
	struct qentry *e;
	time_t now = clock_now();

	TAILQ_FOREACH(e, &q.msgs, entry) {
		for (size_t i = 0; i < e->msg.nrcpts; i++)
			if (e->msg.rcpts[i].state == RS_DEFERRED)
				e->msg.rcpts[i].next_attempt = now;
		entry_due(e);
	}
	log_info("queue flush");
	schedule();
}

struct delete_job {
	char id[QUEUE_ID_LEN + 1];
	int result;
};

static void
delete_work(void *arg)
{
	struct delete_job *j = arg;

	j->result = qstore_delete(q.store, j->id);
}

static void
delete_done(void *arg)
{
	struct delete_job *j = arg;

	job_end();
	if (j->result != 0)
		log_warn("%s queue delete", j->id);
	free(j);
}

static void
store_delete(const char *id)
{
	struct delete_job *j = xcalloc(1, sizeof(*j));

	str_copy(j->id, id, sizeof(j->id));
	job(delete_work, delete_done, j);
}

bool
queue_remove(const char *id)
{
	struct qentry *e = hmap_get(q.byid, id);

	if (e == NULL || e->removed)
		return false;
	log_info("%s queue removed by the administrator", id);
	if (e->busy) {
		/* the attempt in flight finishes, then the message goes */
		e->removed = true;
		return true;
	}
	store_delete(id);
	entry_remove(e);
	return true;
}

struct queue_store *
queue_store_handle(void)
{
	return q.store;
}

/* ---- reports ------------------------------------------------------------- */

struct report_job {
	struct config *cfg;		/* held: md points into it */
	struct maildir_delivery *md;
	struct body body;
	char *mailbox;
	char id[QUEUE_ID_LEN + 1];
};

static void
report_work(void *arg)
{
	struct report_job *j = arg;

	maildir_deliver(j->md);
}

static void
report_job_free(struct report_job *j)
{
	maildir_delivery_free(j->md);
	body_free(&j->body);
	free(j->mailbox);
	config_free(j->cfg);
	free(j);
}

static void
report_done(void *arg)
{
	struct report_job *j = arg;

	job_end();
	if (j->md->result == RES_OK)
		log_info("%s queue report delivered mailbox=%s path=%s", j->id,
		    j->mailbox, j->md->copies[0].path);
	else {
		errno = j->md->error;
		log_warn("%s queue report LOST mailbox=%s step=%s", j->id,
		    j->mailbox, j->md->failed_step ? j->md->failed_step : "?");
	}
	report_job_free(j);
}

/*
 * report_lmtp_done - local_delivery lmtp: the report went to the LMTP
 * server (Sieve and quota apply, as to any local copy); one it did not
 * take is written into the Maildir as without lmtp, rather than lost
 * (doc/queue.md)
 */
static void
report_lmtp_done(void *arg, const struct lmtp_result *res)
{
	struct report_job *j = arg;
	const struct smtp_reply *r = &res->data[0];
	char f[LOG_ESC(SMTP_REPLY_TEXT_MAX)];

	job_end();
	if (r->code >= 200 && r->code < 300) {
		log_info("%s queue report delivered mailbox=%s relay=lmtp", j->id,
		    j->mailbox);
		report_job_free(j);
		return;
	}
	log_warnx("%s queue report lmtp mailbox=%s refused=\"%d %s\": into the "
	    "Maildir", j->id, j->mailbox, r->code, log_field(f, sizeof(f), r->text));
	job(report_work, report_done, j);
}

/* report_mailbox - the Maildir the owner's reports go to, else postmaster's */
static char *
report_mailbox(const struct queue_msg *m)
{
	const char *candidates[] = { m->owner, "postmaster" };

	for (size_t i = 0; i < nitems(candidates); i++) {
		struct mailaddr a;
		char key[PATH_MAX_OCTETS + 1];
		struct expansion exp;
		char *mb = NULL;

		if (candidates[i] == NULL || candidates[i][0] == '\0')
			continue;
		if (i == 0 && (addr_parse(candidates[i], &a, ADDR_F_UTF8) != ADDR_OK ||
		    !addr_key(&a, key, sizeof(key))))
			continue;
		if (i == 1)
			str_copy(key, "postmaster", sizeof(key));
		if (!tables_resolve(q.tables, key, &exp))
			continue;
		if (exp.nmailboxes > 0)
			mb = xstrdup(exp.mailboxes[0]);
		expansion_free(&exp);
		if (mb)
			return mb;
	}
	return NULL;
}

/*
 * report_on - an RFC 3464 report about the recipients of about (e's
 * message, or its expanded aliases) selected by which[] into the owner's
 * Maildir; a message from <> never gets one
 */
static void
report_on(struct qentry *e, const struct queue_msg *about, const bool *which,
    enum bounce_action action)
{
	struct report_job *j;
	const char *hdr_end;
	size_t hlen, len;
	char *text, *mb, f1[LOG_ESC(256)];

	if (e->msg.sender[0] == '\0')
		return;
	if ((mb = report_mailbox(&e->msg)) == NULL) {
		log_warnx("%s queue report nowhere to go owner=%s", e->msg.id,
		    log_field(f1, sizeof(f1), e->msg.owner));
		return;
	}
	/* the original header section: up to the first empty line */
	hdr_end = e->body ? memmem(e->body, e->body_len, "\n\n", 2) : NULL;
	hlen = hdr_end ? (size_t)(hdr_end - e->body) + 1 : e->body ? e->body_len : 0;
	if (e->msg.ret == DSN_RET_FULL && e->body)
		hlen = e->body_len;	/* RET=FULL: all of it (bounce_build) */
	text = bounce_build(about, which, action, e->body ? e->body : "", hlen,
	    q.cfg->hostname, clock_now(), e->msg.created +
	    (time_t)q.cfg->queue_lifetime, &len);
	j = xcalloc(1, sizeof(*j));
	str_copy(j->id, e->msg.id, sizeof(j->id));
	j->mailbox = mb;
	j->cfg = config_ref(q.cfg);
	body_init(&j->body, j->cfg->queue_dir);
	if (body_append(&j->body, text, len) == -1) {
		/* the report cannot be spooled (a full disk): say so, as a
		   failed Maildir write of a report is said */
		log_warn("%s queue report LOST mailbox=%s step=spool", e->msg.id,
		    mb);
		free(text);
		body_free(&j->body);
		free(j->mailbox);
		config_free(j->cfg);
		free(j);
		return;
	}
	free(text);
	j->md = xcalloc(1, sizeof(*j->md));
	j->md->root = j->cfg->maildir_root;
	j->md->hostname = j->cfg->hostname;
	j->md->body = &j->body;
	j->md->ncopies = 1;
	j->md->copies = xcalloc(1, sizeof(*j->md->copies));
	j->md->copies[0].mailbox = j->mailbox;
	j->md->copies[0].prefix = xasprintf("Return-Path: <>\nDelivered-To: %s\n", mb);
	log_info("%s queue report action=%s owner=%s mailbox=%s", e->msg.id,
	    action == BOUNCE_FAILED ? "failed" : action == BOUNCE_DELAYED ?
	    "delayed" : "success",
	    log_field(f1, sizeof(f1), e->msg.owner), mb);
	if (j->cfg->lmtp_text != NULL) {
		char *rcpt[1] = { j->mailbox };
		struct lmtp_params p = {
			.sender = "",
			.rcpts = rcpt,
			.nrcpts = 1,
			.body = &j->body,
			.body8bit = true,
		};

		q.jobs++;	/* queue_idle() waits for it, as for a worker job */
		lmtp_submit(&p, NULL, report_lmtp_done, j);
		return;
	}
	job(report_work, report_done, j);
}

static void
report(struct qentry *e, const bool *which, enum bounce_action action)
{
	report_on(e, &e->msg, which, action);
}

/* report_expanded - the expanded aliases' report, once (queue_msg.expanded) */
static void
report_expanded(struct qentry *e)
{
	struct queue_msg about = e->msg;

	if (e->msg.nexpanded == 0)
		return;
	about.rcpts = e->msg.expanded;
	about.nrcpts = e->msg.nexpanded;
	report_on(e, &about, NULL, BOUNCE_SUCCESS);
	queue_msg_drop_expanded(&e->msg);
}

/* ---- attempts -------------------------------------------------------------- */

static bool
rcpt_due(const struct queue_rcpt *r, time_t now)
{
	return (r->state == RS_PENDING || r->state == RS_DEFERRED) &&
	    r->next_attempt <= now;
}

static void
group_free(struct qgroup *g)
{
	if (g->q)
		resolver_cancel(g->q);
	tlspolicy_cancel(g->pq);
	if (g->c)
		smtp_client_free(g->c);
	if (g->md)
		maildir_delivery_free(g->md);
	free(g->idx);
	free(g->accepted);
	free(g);
}

static void
domain_count(const char *domain, int delta)
{
	if (delta > 0)
		hmap_count_add(q.per_domain, domain, SIZE_MAX);
	else
		hmap_count_release(q.per_domain, domain);
}

/* group_all - the same outcome for every recipient of the group still open */
static void
group_all(struct qgroup *g, enum rcpt_state st, const char *status,
    const char *reply, const char *mta, bool only_accepted)
{
	for (size_t k = 0; k < g->n; k++) {
		struct queue_rcpt *r = &g->e->msg.rcpts[g->idx[k]];

		if (r->state != RS_PENDING && r->state != RS_DEFERRED)
			continue;	/* already decided in this attempt */
		if (only_accepted && !g->accepted[k])
			continue;
		rcpt_outcome(g->e, g->idx[k], st, status, reply, mta, g->relay);
	}
}

/* ---- local group ---- */

static void
local_work(void *arg)
{
	struct qgroup *g = arg;

	maildir_deliver(g->md);
}

static void
local_done(void *arg)
{
	struct qgroup *g = arg;

	job_end();
	if (g->md->result == RES_OK)
		group_all(g, RS_DELIVERED, "2.0.0", "delivered to Maildir", "", false);
	else {
		char why[128];

		snprintf(why, sizeof(why), "%s (%s)", store_error_reply(g->md->error),
		    g->md->failed_step ? g->md->failed_step : "?");
		group_all(g, RS_DEFERRED, g->md->error == ENOSPC ? "4.3.1" : "4.3.0",
		    why, "", false);
	}
	group_done(g);
}

/* lmtp_done - local_delivery lmtp: each mailbox's LMTP reply is its outcome */
static void
lmtp_done(void *arg, const struct lmtp_result *res)
{
	struct qgroup *g = arg;

	job_end();
	for (size_t k = 0; k < g->n; k++)
		reply_outcome(g->e, g->idx[k], &res->data[k], "", "local");
	group_done(g);
}

/* lmtp_start - the group's mailboxes in one LMTP transaction (local/lmtp.h) */
static void
lmtp_start(struct qgroup *g)
{
	struct qentry *e = g->e;
	char **rcpts = xcalloc(g->n, sizeof(char *));
	struct lmtp_params p = {
		.sender = e->msg.sender,
		.rcpts = rcpts,
		.nrcpts = g->n,
		.body = &e->mdbody,
		.smtputf8 = e->msg.smtputf8,
		.body8bit = e->msg.body8bit,
	};

	for (size_t k = 0; k < g->n; k++)
		rcpts[k] = e->msg.rcpts[g->idx[k]].addr;
	q.jobs++;	/* queue_idle() waits for it, as for a worker job */
	lmtp_submit(&p, NULL, lmtp_done, g);
	free(rcpts);
}

static void
local_start(struct qgroup *g)
{
	struct qentry *e = g->e;
	struct maildir_delivery *d;

	if (e->cfg->lmtp_text != NULL) {
		lmtp_start(g);
		return;
	}
	d = xcalloc(1, sizeof(*d));

	d->root = e->cfg->maildir_root;
	d->hostname = e->cfg->hostname;
	d->body = &e->mdbody;
	d->ncopies = g->n;
	d->copies = xcalloc(g->n, sizeof(*d->copies));
	for (size_t k = 0; k < g->n; k++) {
		const struct queue_rcpt *r = &e->msg.rcpts[g->idx[k]];

		d->copies[k].mailbox = r->addr;
		d->copies[k].prefix = xasprintf("Return-Path: <%s>\nDelivered-To: %s\n",
		    e->msg.sender, r->addr);
	}
	g->md = d;
	job(local_work, local_done, g);
}

/* ---- remote group ---- */

static size_t
count_lines(const char *p, size_t len)
{
	size_t n = 0;

	for (const char *e = p + len; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		n++;
	return n;
}

static const char *
group_mta(const struct qgroup *g)
{
	return g->c ? smtp_client_caps(g->c)->host : g->domain;
}

/*
 * dsn_mail_params - RET= and ENVID= of m (RFC 3461 4.3, 4.4) appended to
 * out, for a remote that offers DSN
 */
static void
dsn_mail_params(const struct queue_msg *m, char *out, size_t size, bool space)
{
	size_t o = 0;

	if (m->ret != DSN_RET_DEFAULT)
		o += (size_t)snprintf(out, size, "%sRET=%s", space ? " " : "",
		    dsn_ret_name(m->ret));
	if (m->envid != NULL && m->envid[0] != '\0' && o < size) {
		char *x = dsn_xtext_encode(m->envid);

		snprintf(out + o, size - o, "%sENVID=%s", space || o ? " " : "", x);
		free(x);
	}
}

/* dsn_rcpt_params - NOTIFY= and ORCPT= of r (RFC 3461 4.1, 4.2); malloc'd */
static char *
dsn_rcpt_params(const struct queue_rcpt *r)
{
	char notify[64], *orcpt = NULL, *out;

	dsn_notify_format(r->notify, notify, sizeof(notify));
	if (r->orcpt != NULL && r->orcpt[0] != '\0')
		orcpt = dsn_orcpt_param(r->orcpt);
	out = xasprintf("%s%s%s%s%s", notify[0] ? "NOTIFY=" : "", notify,
	    notify[0] && orcpt ? " " : "", orcpt ? "ORCPT=" : "", orcpt ? orcpt : "");
	free(orcpt);
	return out;
}

static void
remote_client_cb(void *arg, enum smtp_client_event ev, enum smtp_cmd cmd,
    enum smtp_fail why, const struct smtp_reply *r)
{
	struct qgroup *g = arg;
	struct qentry *e = g->e;
	const struct smtp_caps *caps;
	char mta[300];

	snprintf(mta, sizeof(mta), "%s", group_mta(g));
	if (g->c != NULL && smtp_client_caps(g->c)->addr[0] != '\0')
		log_relay(g->relay, sizeof(g->relay), smtp_client_caps(g->c)->host,
		    smtp_client_caps(g->c)->addr);
	switch (ev) {
	case SC_DRAINED:
		return;
	case SC_FAILED: {
		char line[SMTP_REPLY_TEXT_MAX + 64];
		const char *status = why == SMTP_FAIL_UNREACHABLE ? "4.4.1" :
		    why == SMTP_FAIL_POLICY && g->hop.kind != HOP_RELAY ? "4.7.5" :
		    why == SMTP_FAIL_POLICY ? "4.7.0" : "4.4.2";

		if (why == SMTP_FAIL_POLICY && g->hop.kind != HOP_RELAY)
			/* DANE (RFC 7672 2.2): it waits, never goes in plaintext */
			snprintf(line, sizeof(line), "451 4.7.5 TLS policy of %s "
			    "failed: %s",
			    g->domain, smtp_client_last_error(g->c));
		else if (why == SMTP_FAIL_POLICY)
			/* the message waits for the relay: never another way */
			snprintf(line, sizeof(line), "relay %s:%u: %s", g->hop.host,
			    g->hop.port, smtp_client_last_error(g->c));
		else if (r && r->code)
			snprintf(line, sizeof(line), "%d %s %s", r->code,
			    r->esc[0] ? r->esc : status, r->text);
		else if (why == SMTP_FAIL_UNREACHABLE &&
		    smtp_client_last_error(g->c)[0] != '\0')
			snprintf(line, sizeof(line), "no mail server could be "
			    "reached (%s)", smtp_client_last_error(g->c));
		else
			snprintf(line, sizeof(line), "%s", why == SMTP_FAIL_UNREACHABLE ?
			    "no mail server could be reached" : why == SMTP_FAIL_TIMEOUT ?
			    "timeout" : "connection lost");
		/* a 5xx greeting on every host is still only "not now" */
		group_all(g, RS_DEFERRED, status, line, mta, false);
		smtp_client_free(g->c);
		g->c = NULL;
		group_done(g);
		return;
	}
	case SC_READY: {
		char params[384] = "";
		size_t o = 0;
		bool need_utf8 = e->msg.smtputf8;

		caps = smtp_client_caps(g->c);
		if (need_utf8 && !caps->smtputf8) {
			/* RFC 6531 3.4: it cannot go there as it is */
			group_all(g, RS_FAILED, "5.6.7", "550 5.6.7 the receiving "
			    "server does not support SMTPUTF8", mta, false);
			smtp_client_quit(g->c);
			g->c = NULL;
			group_done(g);
			return;
		}
		if (caps->size)	/* octets on the wire: each LF becomes CRLF */
			o += (size_t)snprintf(params + o, sizeof(params) - o,
			    "SIZE=%zu", e->body_len + count_lines(e->body, e->body_len));
		if (e->msg.body8bit && caps->eightbitmime)
			o += (size_t)snprintf(params + o, sizeof(params) - o,
			    "%sBODY=8BITMIME", o ? " " : "");
		if (need_utf8)
			o += (size_t)snprintf(params + o, sizeof(params) - o,
			    "%sSMTPUTF8", o ? " " : "");
		if (caps->dsn)
			dsn_mail_params(&e->msg, params + o, sizeof(params) - o,
			    o > 0);
		smtp_client_mail(g->c, e->msg.sender, params);
		for (size_t k = 0; k < g->n; k++) {
			const struct queue_rcpt *rc = &e->msg.rcpts[g->idx[k]];
			char *rp = caps->dsn ? dsn_rcpt_params(rc) : NULL;

			smtp_client_rcpt_params(g->c, rc->addr, rp);
			free(rp);
		}
		smtp_client_data(g->c);
		return;
	}
	case SC_REPLY:
		break;
	}
	switch (cmd) {
	case SMTP_CMD_MAIL:
		if (smtp_reply_class(r) != SMTP_CLASS_OK) {
			g->mail_failed = true;
			for (size_t k = 0; k < g->n; k++)
				reply_outcome(e, g->idx[k], r, mta, g->relay);
		}
		return;
	case SMTP_CMD_RCPT: {
		/* replies come in the order of the RCPTs */
		size_t k = g->rcpt_replies++;

		if (k >= g->n || g->mail_failed)
			return;
		if (smtp_reply_class(r) == SMTP_CLASS_OK)
			g->accepted[k] = true;
		else
			reply_outcome(e, g->idx[k], r, mta, g->relay);
		return;
	}
	case SMTP_CMD_DATA: {
		bool any = false;

		for (size_t k = 0; k < g->n; k++)
			any = any || g->accepted[k];
		if (g->mail_failed || !any || r->code != 354) {
			for (size_t k = 0; k < g->n && any && !g->mail_failed; k++) {
				if (!g->accepted[k])
					continue;
				if (smtp_reply_class(r) == SMTP_CLASS_TEMP ||
				    smtp_reply_class(r) == SMTP_CLASS_PERM)
					reply_outcome(e, g->idx[k], r, mta, g->relay);
				else
					rcpt_outcome(e, g->idx[k], RS_DEFERRED, "4.0.0",
					    "unexpected reply to DATA", mta, g->relay);
			}
			smtp_client_quit(g->c);
			g->c = NULL;
			group_done(g);
			return;
		}
		smtp_client_set_timeout(g->c, &(struct timeval){ CLIENT_DOT_TIMEOUT, 0 });
		smtp_client_body(g->c, e->body, e->body_len);
		smtp_client_dot(g->c);
		g->data_sent = true;
		return;
	}
	case SMTP_CMD_DOT:
		for (size_t k = 0; k < g->n; k++) {
			if (!g->accepted[k])
				continue;
			/* RFC 3461 5.2: a server with DSN reports from now on;
			   what it fails comes back to our user as mail */
			if (smtp_client_caps(g->c)->dsn &&
			    smtp_reply_class(r) == SMTP_CLASS_OK)
				e->msg.rcpts[g->idx[k]].reported = true;
			reply_outcome(e, g->idx[k], r, mta, g->relay);
		}
		smtp_client_quit(g->c);
		g->c = NULL;
		group_done(g);
		return;
	case SMTP_CMD_RSET:
		return;
	}
}

static void
remote_resolved(void *arg, const struct mx_answer *ans)
{
	struct qgroup *g = arg;
	struct smtp_client_params p;
	struct mx_target *plain = NULL;

	g->q = NULL;
	g->pq = NULL;
	if (g->hop.kind != HOP_MX && ans->status != DNS_OK) {
		/* the next hop's name, not the recipients' domain: not now */
		char line[400];

		snprintf(line, sizeof(line), "%s %s:%u: DNS look-up found no "
		    "address", g->hop.kind == HOP_RELAY ? "relay" : "route",
		    g->hop.host, g->hop.port);
		group_all(g, RS_DEFERRED, "4.4.3", line, "", false);
		group_done(g);
		return;
	}
	switch (ans->status) {
	case DNS_NXDOMAIN:
		group_all(g, RS_FAILED, "5.1.2", "the domain does not exist", "", false);
		group_done(g);
		return;
	case DNS_NULLMX:
		group_all(g, RS_FAILED, "5.1.10", "the domain accepts no mail (null MX)",
		    "", false);
		group_done(g);
		return;
	case DNS_NOHOST:
	case DNS_TEMPFAIL:
		group_all(g, RS_DEFERRED, "4.4.3", "DNS look-up failed", "", false);
		group_done(g);
		return;
	case DNS_OK:
		break;
	}
	memset(&p, 0, sizeof(p));
	p.base = q.base;
	p.helo = g->e->cfg->hostname;
	p.tls = q.tls_client;
	p.targets = ans->targets;
	p.ntargets = ans->ntargets;
	if (tlsrpt_is_report(&g->e->msg) && ans->ntargets > 0) {
		/*
		 * RFC 8460 5.3: a TLS report is delivered despite TLS failures,
		 * so neither DANE nor MTA-STS holds it (doc/security.md)
		 */
		plain = xreallocarray(NULL, ans->ntargets, sizeof(*plain));
		memcpy(plain, ans->targets, ans->ntargets * sizeof(*plain));
		for (size_t i = 0; i < ans->ntargets; i++) {
			plain[i].dane = MX_DANE_NONE;
			plain[i].sts = MX_STS_NONE;
			plain[i].ntlsa = 0;
		}
		p.targets = plain;
	}
	p.port = g->hop.port;
	p.step_timeout.tv_sec = CLIENT_STEP_TIMEOUT;
	p.cb = remote_client_cb;
	p.arg = g;
	p.log_id = g->e->msg.id;
	/* TLS-RPT counts the MX sessions, but not a report's own (RFC 8460 5.3) */
	p.policy_domain = g->hop.kind == HOP_MX && !tlsrpt_is_report(&g->e->msg) ?
	    g->domain : NULL;
	smtp_client_outbound(&p, g->e->cfg);
	if (g->hop.kind == HOP_RELAY) {
		if (q.tls_relay == NULL) {
			group_all(g, RS_DEFERRED, "4.7.0", "relay: no TLS context "
			    "to verify it with (tls_ca_file)", "", false);
			group_done(g);
			free(plain);
			return;
		}
		p.tls = q.tls_relay;
		p.tls_required = true;
		p.implicit_tls = g->hop.port == 465;	/* RFC 8314 3.3 */
		p.verify_name = g->hop.host;
		if (g->e->cfg->relay_user) {
			p.auth = q.relay_auth;
			p.auth_user = g->e->cfg->relay_user;
			p.auth_pass = g->e->cfg->relay_pass;
		}
		if (p.auth_user && p.auth == NULL) {
			group_all(g, RS_DEFERRED, "4.7.0", "relay: no SASL client",
			    "", false);
			group_done(g);
			free(plain);
			return;
		}
	}
	g->c = smtp_client_new(&p);
	free(plain);
}

/*
 * remote_host - a relay_host or route host: an address as it is, a name
 * through its A/AAAA records (no MX)
 */
static void
remote_host(struct qgroup *g)
{
	struct mx_answer ans = { .status = DNS_OK, .ntargets = 1 };
	struct mx_target t;

	if (!mx_host_target(g->hop.host, &t)) {
		g->q = resolver_host(q.resolver, g->hop.host, remote_resolved, g);
		return;
	}
	ans.targets = &t;
	remote_resolved(g, &ans);
}

static void
remote_start(struct qgroup *g)
{
	TAILQ_INSERT_TAIL(&q.groups, g, entry);	/* counted by reserve() */
	queue_next_hop(g->e->cfg, g->domain, &g->hop);
	if (g->hop.kind != HOP_MX) {
		remote_host(g);
		return;
	}
	if (g->domain[0] == '[') {
		/* an address literal: no DNS (RFC 5321 4.1.3) */
		struct mx_answer ans = { .status = DNS_NXDOMAIN };
		struct mx_target t;

		if (mx_literal_target(g->domain, &t)) {
			ans.status = DNS_OK;
			ans.targets = &t;
			ans.ntargets = 1;
		}
		remote_resolved(g, &ans);
		return;
	}
	g->pq = tlspolicy_mx(q.sts, q.resolver, g->domain, remote_resolved, g);
}

/* group_done - one destination has answered; the last one ends the attempt */
static void
group_done(struct qgroup *g)
{
	struct qentry *e = g->e;

	if (!g->local) {
		TAILQ_REMOVE(&q.groups, g, entry);
		q.active--;
		domain_count(g->domain, -1);
	}
	group_free(g);
	if (--e->groups == 0)
		attempt_finish(e);
	else {
		store_state(e, false);
		schedule();
	}
}

/* ---- one attempt ---- */

struct body_job {
	struct qentry *e;
	char *buf;
	size_t len;
	int result;
	int error;
};

static void
body_work(void *arg)
{
	struct body_job *j = arg;

	j->result = qstore_get_body(q.store, j->e->msg.id, &j->buf, &j->len);
	j->error = errno;
}

static void attempt_groups(struct qentry *);

static void
body_done(void *arg)
{
	struct body_job *j = arg;
	struct qentry *e = j->e;

	job_end();
	if (j->result != 0) {
		/*
		 * a temporary failure of every due recipient, so the attempt
		 * ends as any other: retried after the backoff of
		 * doc/queue.md, and the final store write makes the exit
		 * check (trying again at once would spin: issue 12, point 13)
		 */
		char why[160];

		errno = j->error;
		log_warn("%s queue cannot read the body", e->msg.id);
		snprintf(why, sizeof(why), "451 4.3.0 the queue cannot read the "
		    "message body: %s", strerror(j->error));
		reserve(e, -1);
		free(j);
		for (size_t i = 0; i < e->msg.nrcpts; i++)
			if (rcpt_due(&e->msg.rcpts[i], e->attempt_now)) {
				e->msg.rcpts[i].attempts++;
				rcpt_outcome(e, i, RS_DEFERRED, "4.3.0", why, "",
				    e->msg.rcpts[i].local ? "local" : "none");
			}
		attempt_finish(e);
		return;
	}
	e->body = j->buf;
	e->body_len = j->len;
	free(j);
	body_init(&e->mdbody, e->cfg->queue_dir);
	evbuffer_add_reference(e->mdbody.mem, e->body, e->body_len, NULL, NULL);
	e->mdbody.size = e->body_len;
	attempt_groups(e);
}

/* domain_of - the A-label domain of an address, for grouping */
static void
domain_of(const char *addr, char *out, size_t size)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || !addr_domain_key(at + 1, out, size))
		str_copy(out, "", size);
}

/* the group key of every recipient that goes through relay_host */
#define RELAY_KEY	"[relay]"

/*
 * dest_of - the destination key of a remote recipient: its domain, or
 * RELAY_KEY when cfg sends the domain through relay_host, so that one
 * session to the relay carries every domain of a message and
 * queue_max_per_domain counts sessions to the relay; "" for a bad address
 */
static void
dest_of(const struct config *cfg, const char *addr, char *out, size_t size)
{
	domain_of(addr, out, size);
	if (out[0] != '\0' && cfg->relay_host != NULL && config_route(cfg, out) == NULL)
		str_copy(out, RELAY_KEY, size);
}

/* attempt_groups - split the due recipients by destination and start them */
static void
attempt_groups(struct qentry *e)
{
	time_t now = e->attempt_now;
	struct qgroup **gs = NULL;
	size_t ng = 0;

	for (size_t i = 0; i < e->msg.nrcpts; i++) {
		struct queue_rcpt *r = &e->msg.rcpts[i];
		char dom[DOMAIN_MAX + 1] = "";
		struct qgroup *g = NULL;

		if (!rcpt_due(r, now))
			continue;
		if (!r->local)
			dest_of(e->cfg, r->addr, dom, sizeof(dom));
		for (size_t k = 0; k < ng; k++)
			if (gs[k]->local == r->local && strcmp(gs[k]->domain, dom) == 0)
				g = gs[k];
		if (g == NULL) {
			g = xcalloc(1, sizeof(*g));
			g->e = e;
			g->local = r->local;
			str_copy(g->relay, r->local ? "local" : "none",
			    sizeof(g->relay));
			str_copy(g->domain, dom, sizeof(g->domain));
			gs = xreallocarray(gs, ng + 1, sizeof(*gs));
			gs[ng++] = g;
		}
		g->idx = xreallocarray(g->idx, g->n + 1, sizeof(*g->idx));
		g->idx[g->n++] = i;
	}
	e->groups = (int)ng;
	if (ng == 0) {
		free(gs);
		attempt_finish(e);
		return;
	}
	for (size_t k = 0; k < ng; k++) {
		struct qgroup *g = gs[k];

		g->accepted = xcalloc(g->n, sizeof(bool));
		for (size_t m = 0; m < g->n; m++)
			e->msg.rcpts[g->idx[m]].attempts++;
		if (g->local)
			local_start(g);
		else if (g->domain[0] == '\0') {
			group_all(g, RS_FAILED, "5.1.3", "bad recipient address", "",
			    false);
			g->local = true;	/* nothing in flight to count */
			group_done(g);
		} else
			remote_start(g);
	}
	free(gs);
}

struct update_job {
	struct qentry *e;
	struct queue_msg snapshot;
	bool final;		/* the attempt's last write */
	bool delete;
	int result;
	int error;
};

static void
update_work(void *arg)
{
	struct update_job *j = arg;

	j->result = j->delete ? qstore_delete(q.store, j->snapshot.id) :
	    qstore_update(q.store, &j->snapshot);
	j->error = errno;
}

static void
update_done(void *arg)
{
	struct update_job *j = arg;
	struct qentry *e = j->e;
	bool final = j->final;

	job_end();
	if (j->result != 0) {
		errno = j->error;
		log_warn("%s queue %s", e->msg.id, j->delete ? "delete" : "update");
	}
	queue_msg_free(&j->snapshot);
	e->updating = false;
	if (e->update_again || e->final_pending) {
		/* writes of one entry go one at a time, the newest state last */
		e->update_again = false;
		free(j);
		store_state(e, false);
		return;
	}
	if (!final) {
		free(j);
		return;
	}
	e->busy = false;
	if (j->delete && j->result != 0 && j->error != ENOENT) {
		/*
		 * the store still has it (a full disk): keep it out of the way
		 * in memory and try the delete again with the next checkpoint,
		 * or the restart would deliver it once more
		 */
		e->delete_failed = true;
	} else if (j->delete || e->removed) {
		if (e->removed && !j->delete)
			store_delete(e->msg.id);
		entry_remove(e);
	}
	free(j);
	schedule();
}

/*
 * attempt_finish - every destination answered: retry times, expiry,
 * reports, and the new state into the store
 */
static void
attempt_finish(struct qentry *e)
{
	time_t now = clock_now();
	bool *fail = xcalloc(e->msg.nrcpts, sizeof(bool));
	bool *delay = xcalloc(e->msg.nrcpts, sizeof(bool));
	bool *delivered = xcalloc(e->msg.nrcpts, sizeof(bool));
	bool *relayed = xcalloc(e->msg.nrcpts, sizeof(bool));
	bool anyfail = false, anydelay = false, anydelivered = false;
	bool anyrelayed = false;

	for (size_t i = 0; i < e->msg.nrcpts; i++) {
		struct queue_rcpt *r = &e->msg.rcpts[i];

		if (r->state == RS_DEFERRED || r->state == RS_PENDING) {
			struct retry_plan plan;

			retry_plan(e->msg.created, r->attempts, r->reported,
			    (time_t)q.cfg->queue_lifetime,
			    (time_t)q.cfg->delay_warning_time, now,
			    (double)(random_u64() >> 11) / (double)(1ULL << 53),
			    &plan);
			if (plan.expired) {
				char f1[LOG_ESC(PATH_MAX_OCTETS)];
				char *why = xasprintf("%s (gave up after the queue "
				    "lifetime)", r->last_reply[0] ? r->last_reply :
				    "not delivered");

				free(r->last_reply);
				r->last_reply = why;
				if (r->status[0] == '\0')
					str_copy(r->status, "4.4.7", sizeof(r->status));
				r->state = RS_FAILED;
				log_info("%s queue expired to=<%s>", e->msg.id,
				    log_field(f1, sizeof(f1), r->addr));
				log_outcome(e->msg.id, r->addr, "none",
				    e->msg.created, r->status, "bounced", why);
			} else if (r->state == RS_DEFERRED) {
				/* expiry and the delay notice come on time */
				r->next_attempt = plan.next;
				if (plan.notify) {
					/* RFC 3461 4.1: NOTIFY says which */
					if (dsn_wants(r->notify, DSN_NOTIFY_DELAY))
						delay[i] = anydelay = true;
					r->reported = true;
				}
			}
		}
		if (r->state == RS_FAILED && !r->reported) {
			if (dsn_wants(r->notify, DSN_NOTIFY_FAILURE))
				fail[i] = anyfail = true;
			r->reported = true;
		}
		/* a remote with DSN took NOTIFY over: reported is set then */
		if (r->state == RS_DELIVERED && !r->reported) {
			if (dsn_wants(r->notify, DSN_NOTIFY_SUCCESS) && r->local)
				delivered[i] = anydelivered = true;
			else if (dsn_wants(r->notify, DSN_NOTIFY_SUCCESS))
				relayed[i] = anyrelayed = true;
			r->reported = true;
		}
	}
	/* one report per event (one Action), about the recipients it concerns */
	report_expanded(e);
	if (anyfail)
		report(e, fail, BOUNCE_FAILED);
	if (anydelay)
		report(e, delay, BOUNCE_DELAYED);
	if (anydelivered)
		report(e, delivered, BOUNCE_SUCCESS);
	if (anyrelayed)
		report(e, relayed, BOUNCE_SUCCESS);
	free(fail);
	free(delay);
	free(delivered);
	free(relayed);
	free(e->body);
	e->body = NULL;
	e->body_len = 0;
	body_free(&e->mdbody);
	config_free(e->cfg);
	e->cfg = NULL;
	entry_due(e);
	store_state(e, true);
}

/*
 * store_state - the entry's state into the store: after each destination
 * of an attempt (so a crash forgets as little as possible of what was
 * delivered) and, final, when the attempt is over (then a message with
 * nothing left goes out of the store).  One write at a time per entry.
 */
static void
store_state(struct qentry *e, bool final)
{
	struct update_job *j;

	if (final)
		e->final_pending = true;
	if (e->updating) {
		e->update_again = true;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->e = e;
	j->final = e->final_pending;
	e->final_pending = false;
	e->updating = true;
	j->delete = j->final && queue_msg_done(&e->msg);
	queue_msg_copy(&j->snapshot, &e->msg);
	if (j->delete)
		log_info("%s queue done", e->msg.id);
	job(update_work, update_done, j);
}

/*
 * reserve - count the remote destinations of the attempt starting now, so
 * that the limits hold while its body is still being read (delta +1), or
 * give them back when it cannot go on (-1)
 */
static void
reserve(struct qentry *e, int delta)
{
	char (*seen)[DOMAIN_MAX + 1] = xcalloc(e->msg.nrcpts, sizeof(*seen));
	size_t n = 0;

	for (size_t i = 0; i < e->msg.nrcpts; i++) {
		const struct queue_rcpt *r = &e->msg.rcpts[i];
		char dom[DOMAIN_MAX + 1];
		bool dup = false;

		if (r->local || !rcpt_due(r, e->attempt_now))
			continue;
		dest_of(e->cfg, r->addr, dom, sizeof(dom));
		if (dom[0] == '\0')
			continue;
		for (size_t k = 0; k < n; k++)
			dup = dup || strcmp(seen[k], dom) == 0;
		if (dup)
			continue;
		str_copy(seen[n++], dom, sizeof(seen[0]));
		if (delta > 0)
			q.active++;
		else
			q.active--;
		domain_count(dom, delta);
	}
	free(seen);
}

/* attempt - start one delivery attempt of e */
static void
attempt(struct qentry *e, time_t now)
{
	struct body_job *j = xcalloc(1, sizeof(*j));

	e->busy = true;
	e->attempt_now = now;
	e->cfg = config_ref(q.cfg);
	reserve(e, +1);
	j->e = e;
	job(body_work, body_done, j);
}

/* could_start - a due message whose remote domains all have room */
static bool
could_start(const struct qentry *e, time_t now)
{
	for (size_t i = 0; i < e->msg.nrcpts; i++) {
		const struct queue_rcpt *r = &e->msg.rcpts[i];
		char dom[DOMAIN_MAX + 1];

		if (!rcpt_due(r, now) || r->local)
			continue;
		if (q.active >= q.cfg->queue_max_deliveries)
			return false;
		dest_of(q.cfg, r->addr, dom, sizeof(dom));
		if (hmap_count_of(q.per_domain, dom) >=
		    q.cfg->queue_max_per_domain)
			return false;
	}
	return true;
}

/* schedule - start what is due and allowed; arm the timer for the rest */
static void
schedule(void)
{
	struct qentry *e;
	time_t now = clock_now(), next = 0;

	/* stopping (the grace period too): nothing new starts (issue 12) */
	if (q.stopping || q.draining || q.timer == NULL)
		return;
	TAILQ_FOREACH(e, &q.msgs, entry) {
		if (e->busy || e->removed || e->due == 0)
			continue;
		if (e->due <= now && could_start(e, now)) {
			attempt(e, now);
			continue;
		}
		if (e->due > now && (next == 0 || e->due < next))
			next = e->due;
	}
	evtimer_del(q.timer);
	if (next) {
		struct timeval tv = { next - now, 0 };

		evtimer_add(q.timer, &tv);
	}
}
