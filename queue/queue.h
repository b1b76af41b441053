/*
 * queue.h - the queue: what local users send (submission, chamois-sendmail)
 * is kept in a Berkeley DB environment in queue_dir until every recipient
 * is delivered or has failed; failures come back as RFC 3464 reports into
 * the sender's own Maildir, never over SMTP.
 *
 * Layers, each in its own file:
 *   envelope.c   struct queue_msg <-> versioned record (pure)
 *   queue_db.c   the only file that includes <db.h>: transactional store
 *   schedule.c   next_attempt(), retry_plan() (pure)
 *   bounce.c     the RFC 3464 report (pure)
 *   scheduler.c  on the loop: what is due, delivery, updates
 *   submit.c     the submit socket of chamois-sendmail
 *   admin.c      the admin socket of chamoisctl
 */
#ifndef CHAMOIS_QUEUE_H
#define CHAMOIS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../common/dsn.h"

/* the newest record version (envelope.c: version 2 adds the DSN fields) */
#define QUEUE_RECORD_VERSION	2
#define QUEUE_ID_LEN		16	/* hex digits */

enum rcpt_state {
	RS_PENDING,	/* not tried yet */
	RS_DEFERRED,	/* a temporary failure; next_attempt says when again */
	RS_DELIVERED,
	RS_FAILED,	/* permanent failure or expired: reported to the sender */
};

struct queue_rcpt {
	char *addr;		/* where it goes: a mailbox spelling or an external address */
	char *orig;		/* the recipient as the sender gave it (DSN) */
	bool local;		/* addr is a local mailbox */
	enum rcpt_state state;
	unsigned attempts;
	time_t next_attempt;
	char status[16];	/* enhanced status of the last outcome, "4.4.1" */
	char *last_reply;	/* the last reply or diagnostic, one line */
	char *remote_mta;	/* the host that gave it, or "" */
	bool reported;		/* a failure or delay report was made for it */
	unsigned notify;	/* NOTIFY (DSN_NOTIFY_*), 0: not given (RFC 3461 4.1) */
	char *orcpt;		/* ORCPT "type;address" decoded, "" or NULL: none */
	bool expanded;		/* an alias in queue_msg.expanded: Action expanded */
};

struct queue_msg {
	unsigned version;
	char id[QUEUE_ID_LEN + 1];
	time_t created;
	char *sender;		/* envelope sender; "" is <> */
	char *owner;		/* local mailbox that gets reports: the logged-in
				   user, the user who ran chamois-sendmail, or
				   postmaster */
	long uid;		/* uid of a chamois-sendmail caller, -1 if none */
	uint64_t size;		/* octets of the body */
	bool body8bit;
	bool smtputf8;
	char *envid;		/* ENVID (RFC 3461 4.4) decoded, "" or NULL: none */
	enum dsn_ret ret;	/* RET (RFC 3461 4.3) */
	struct queue_rcpt *rcpts;
	size_t nrcpts;
	/*
	 * the aliases of several destinations whose NOTIFY had SUCCESS: their
	 * one "expanded" report (RFC 3461 5.2.7.3, doc/queue.md), made at the
	 * message's first attempt; not kept in the record
	 */
	struct queue_rcpt *expanded;
	size_t nexpanded;
};

/* envelope.c */
/* queue_msg_encode - the record (text, one field a line); caller frees */
char *queue_msg_encode(const struct queue_msg *, size_t *len);
/* queue_msg_decode - 0, or -1 for a malformed record or an unknown version */
int queue_msg_decode(const char *rec, size_t len, struct queue_msg *);
void queue_msg_free(struct queue_msg *);	/* the fields, not the struct */
void queue_msg_copy(struct queue_msg *dst, const struct queue_msg *src);
/* queue_msg_drop_expanded - the expanded aliases reported: let them go */
void queue_msg_drop_expanded(struct queue_msg *);
void queue_new_id(char id[QUEUE_ID_LEN + 1]);
/*
 * scheduler.c: queue_msg_prepare - what queue_submit makes of a new
 * message (an id and arrival time unless it has an id, the recipients'
 * destinations, its size from b); a restore keeps all of it
 */
struct body;
void queue_msg_prepare(struct queue_msg *, const struct body *b);

/* quarantine.c - what a content filter quarantined (doc/filters.md) */
#define QUARANTINE_DIR	"quarantine"	/* under queue_dir */
/*
 * queue_quarantine - keep m (its recipients as given, in orig) and b,
 * both taken over, in queue_dir/quarantine/ID: one message in the dump
 * format (admin.h) that chamoisctl quarantine release restores into the
 * queue, and ID.reason; written and synced on a worker thread, then
 * done(arg, 0 or errno, ID) on the loop
 */
void queue_quarantine(struct queue_msg *m, struct body *b, const char *queue_dir,
    const char *reason, void (*done)(void *, int error, const char *id),
    void *arg);
/* queue_state_name - "pending", "deferred", "delivered", "failed" */
const char *queue_state_name(enum rcpt_state);
bool queue_msg_done(const struct queue_msg *);	/* no pending/deferred left */

/* queue_db.c - blocking: call from worker threads (the handle is thread-safe) */
struct queue_store;
struct body;
struct queue_store *qstore_open(const char *dir, char *err, size_t errsize);
void qstore_close(struct queue_store *);
/* qstore_put - envelope and body in one transaction, durable on return */
int qstore_put(struct queue_store *, const struct queue_msg *, const struct body *,
    char *err, size_t errsize);
/*
 * qstore_put_buf - the same with head[0..headlen) (the DKIM signatures)
 * then body[0..len) as the stored body; qstore_body_read - the whole of
 * b into *out (malloc'd), for it.  Both safe on a worker thread that
 * alone touches b.
 */
int qstore_put_buf(struct queue_store *, const struct queue_msg *,
    const char *head, size_t headlen, const char *body, size_t len,
    char *err, size_t errsize);
/* qstore_put_head - qstore_put with head[0..headlen) stored before b */
int qstore_put_head(struct queue_store *, const struct queue_msg *,
    const char *head, size_t headlen, const struct body *b, char *err,
    size_t errsize);
int qstore_body_read(const struct body *, char **out, size_t *len);
/* qstore_update - the envelope only (recipient states) */
int qstore_update(struct queue_store *, const struct queue_msg *);
int qstore_delete(struct queue_store *, const char *id);
/* qstore_walk - every envelope, in id order; fn returns non-zero to stop */
int qstore_walk(struct queue_store *, int (*fn)(const struct queue_msg *, void *),
    void *arg);
/* qstore_get_body - the body (LF form) into *buf (malloc'd), *len */
int qstore_get_body(struct queue_store *, const char *id, char **buf, size_t *len);
/* qstore_checkpoint - checkpoint and remove log files no longer needed */
int qstore_checkpoint(struct queue_store *);

/* schedule.c */
/*
 * next_attempt - when a recipient deferred for the attempts-th time is
 * tried again: growing intervals (documented in chamois.conf(5)), with
 * rnd in [0, 1) spreading retries; never before now.
 */
time_t next_attempt(time_t created, unsigned attempts, time_t now, double rnd);
/* retry_plan - what becomes of a deferred recipient when an attempt ends */
struct retry_plan {
	bool expired;	/* the queue lifetime is over: it fails for good */
	time_t next;	/* else when it is tried again */
	bool notify;	/* else whether its delay notice is due now */
};
/*
 * retry_plan - the plan for a deferred recipient (attempts failures so
 * far, reported: its delay notice has gone out) of a message created at
 * created, at now: expired when now - created >= lifetime; else next from
 * next_attempt(rnd) but no later than created + lifetime nor, with warning
 * not 0 and nothing reported, than created + warning while that is still
 * ahead; notify once now - created >= warning (warning 0: never).  Pure.
 */
void retry_plan(time_t created, unsigned attempts, bool reported, time_t lifetime,
    time_t warning, time_t now, double rnd, struct retry_plan *);

/* headers.c - header fixes for messages that enter the queue */
/*
 * queue_fix_headers - the LF-form message msg[0..len) with Message-ID and
 * Date added at the top when missing (RFC 5322 3.6); returns a new buffer
 * (caller frees) and its length.  hostname goes into the Message-ID.
 */
char *queue_fix_headers(const char *msg, size_t len, const char *hostname,
    time_t now, size_t *outlen);

/*
 * queue_from_domain - the one domain (lower-case A-label, into out) of
 * the addresses of the single From field of msg[0..len), which DKIM
 * signs for; NULL with *why set otherwise
 */
const char *queue_from_domain(const char *msg, size_t len, char *out,
    size_t size, const char **why);

/* bounce.c */
enum bounce_action {
	BOUNCE_FAILED,	/* Action: failed (permanent failure or expiry) */
	BOUNCE_DELAYED,	/* Action: delayed (still trying) */
	BOUNCE_SUCCESS,	/* Action: delivered (local) or relayed (a remote
			   that takes no DSN parameters), NOTIFY=SUCCESS;
			   or expanded (queue_rcpt.expanded); select
			   recipients of one kind per report */
};
/*
 * bounce_build - an RFC 3464 report (multipart/report;
 * report-type=delivery-status) about the recipients of msg selected by
 * which[i], LF form, addressed From: MAILER-DAEMON@hostname To: msg->owner,
 * with Auto-Submitted: auto-replied, a human-readable part, the
 * message/delivery-status part (Original-Envelope-Id when ENVID was
 * given, Reporting-MTA, Arrival-Date, per recipient Original-Recipient
 * (ORCPT, else the address as given when it differs), Final-Recipient,
 * Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date) and the
 * original message's header section (text/rfc822-headers), or with
 * msg->ret FULL the whole message (message/rfc822) when it is at most
 * BOUNCE_FULL_MAX octets.  headers is the original header section, or
 * with RET=FULL the whole message;
 * retry_until (delayed reports: created + queue_lifetime) is when the
 * queue gives up.  Returns a malloc'd buffer and its length.
 */
#define BOUNCE_FULL_MAX	(10 * 1024 * 1024)	/* RET=FULL: else headers only */
char *bounce_build(const struct queue_msg *msg, const bool *which,
    enum bounce_action, const char *headers, size_t headers_len,
    const char *hostname, time_t now, time_t retry_until, size_t *len);

/* scheduler.c - on the event loop */
struct config;
struct event_base;
struct resolver;
struct ssl_ctx_st;
struct tables;
/*
 * queue_init - open the store (recovery), load every message, start
 * timers.  The queue keeps cfg and tables (config_ref, tables_ref) until
 * queue_configure gives it new ones or queue_shutdown; resolver (MX
 * look-ups), tls_client (STARTTLS to remote servers) and sts (MTA-STS,
 * NULL: off) stay the caller's and must outlive the queue.  -1 with err set on failure.
 */
struct sts;
int queue_init(struct event_base *, struct config *cfg, struct tables *tables,
    struct resolver *resolver, struct ssl_ctx_st *tls_client, struct sts *sts,
    char *err, size_t errsize);
/*
 * queue_configure - SIGHUP: the new config and tables for what starts from
 * now on (an attempt in progress keeps the config it started with); the
 * queue lets go of the old ones
 */
void queue_configure(struct config *, struct tables *);
/*
 * queue_set_signer - the DKIM keys for messages submitted from now on
 * (at start and on SIGHUP; NULL: none); the queue takes its own
 * reference, and a message already queued keeps its signatures
 */
struct dkim_signer;
void queue_set_signer(struct dkim_signer *);
/*
 * queue_stop - the daemon stops: no delivery attempt starts from now on;
 * submissions are still stored (they wait for the next start)
 */
void queue_stop(void);
/*
 * queue_idle - no store read or write, Maildir copy or report of the
 * queue is running.  Remote deliveries still talking do not count: the
 * stop drops them and the store keeps the state from before their
 * attempt (doc/queue.md).
 */
bool queue_idle(void);
/*
 * queue_set_relay_tls - SIGHUP: relay_host's verifying context, made off
 * the loop by the root (relay_tls_new; NULL: no relay_host); the queue
 * takes it over and frees the one it had
 */
void queue_set_relay_tls(struct ssl_ctx_st *);
/*
 * queue_set_relay_auth - the SASL client for relay_auth (the root gives
 * submission/'s libsasl2 wrapper; NULL: no AUTH is possible)
 */
struct smtp_auth_ops;
void queue_set_relay_auth(const struct smtp_auth_ops *);

/* relay.c - where the queue sends a remote domain's mail */
enum hop_kind {
	HOP_MX,		/* the domain's MX hosts on remote_port */
	HOP_RELAY,	/* relay_host: verified TLS, AUTH with relay_auth */
	HOP_ROUTE,	/* route DOMAIN HOST:PORT: that host instead of the MX */
};
struct next_hop {
	enum hop_kind kind;
	char host[256];		/* HOP_RELAY, HOP_ROUTE */
	unsigned port;
};
/* queue_next_hop - domain's next hop under cfg (doc/queue.md "Routes") */
void queue_next_hop(const struct config *, const char *domain, struct next_hop *);
/*
 * relay_tls_new - the client context that verifies relay_host: TLS 1.2
 * or newer, tls_ca_file's CAs or the system's; NULL with err set
 */
struct ssl_ctx_st *relay_tls_new(const struct config *, char *err, size_t errsize);

/*
 * tlsrpt.c - TLS-RPT reports (RFC 8460; doc/security.md "TLS-RPT"): the
 * counts of outbound/tlsrpt.c kept in queue_dir/tlsrpt, and each UTC day
 * (or tlsrpt_reports_send) a report mail per policy domain that publishes
 * _smtp._tls, queued from <> with the owner TLSRPT_OWNER to each mailto:
 * rua, posted to each https: rua
 */
#define TLSRPT_OWNER	"-tlsrpt"	/* whose reports are never made (sender <>) */
/* tlsrpt_is_report - m is such a report: its sessions are not counted */
bool tlsrpt_is_report(const struct queue_msg *m);
/*
 * tlsrpt_reports_init - with cfg's tlsrpt on: load the counts, start the
 * timers; an https: rua is posted to through sts's verified HTTPS (NULL,
 * mta_sts no: https: rua are skipped)
 */
int tlsrpt_reports_init(struct event_base *, struct config *, struct resolver *,
    struct sts *, char *err, size_t errsize);
void tlsrpt_reports_configure(struct config *);	/* SIGHUP */
void tlsrpt_reports_shutdown(void);	/* after the workers: the counts saved */
/*
 * tlsrpt_reports_send - the counts so far are taken and reported now
 * (chamoisctl tlsrpt send); the number of policy domains they name
 */
size_t tlsrpt_reports_send(void);
/*
 * tlsrpt_mail_build - the report mail (RFC 8460 5.3), LF form, malloc'd:
 * Subject "Report Domain: domain Submitter: submitter Report-ID: <id>",
 * TLS-Report-Domain, TLS-Report-Submitter, a multipart/report
 * (report-type="tlsrpt") of a text part and gz[0..gzlen) as the
 * application/tlsrpt+gzip attachment.  Pure but for the boundary's random.
 */
char *tlsrpt_mail_build(const char *domain, const char *submitter,
    const char *from, const char *to, const char *report_id, time_t start,
    time_t end, time_t now, const unsigned char *gz, size_t gzlen, size_t *len);

/* queue_shutdown - after the loop: drop what is in flight, close the store */
void queue_shutdown(void);
/*
 * queue_submit - take msg (sender, owner, uid, rcpts[].orig filled; the
 * queue expands aliases and fills addr/local) and its LF-form body; both
 * are owned by the queue from now on.  cb runs on the loop once the
 * message is durable (error 0, its id) or could not be stored (errno:
 * ENOSPC/EDQUOT mean a full disk).  The caller keeps arg alive until cb.
 * A message whose id is already set (chamoisctl restore) keeps its id,
 * its creation time and the state of every recipient whose addr is set.
 */
typedef void (*queue_put_cb)(void *arg, int error, const char *id);
void queue_submit(struct queue_msg *, struct body *, queue_put_cb, void *arg);
/*
 * queue_submit_prefixed - queue_submit with prefix (LF form, copied; NULL
 * or "": none) stored before the body: the mx role's copy of a message
 * for local mailboxes (queue/route.c queue_lmtp_requeue), never DKIM-signed;
 * its recipients come with addr set, and are kept as they are
 */
void queue_submit_prefixed(struct queue_msg *, const char *prefix, struct body *,
    queue_put_cb, void *arg);
/* the administrator's view (admin.c) */
void queue_foreach(void (*fn)(const struct queue_msg *, void *), void *arg);
const struct queue_msg *queue_lookup(const char *id);
void queue_flush(void);		/* every deferred recipient is due now */
/* queue_remove - forget a message (no report); false if unknown or busy */
bool queue_remove(const char *id);
/* queue_store_handle - the store, for admin jobs on worker threads */
struct queue_store *queue_store_handle(void);

#endif
