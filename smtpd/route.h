/*
 * route.h - the seam between the session engine (smtpd/) and what it
 * plugs in: routes, which take a transaction's recipients and message
 * somewhere, and the auth ops of the submission roles.
 *
 * The engine owns the session, the command table, the reply writer, the
 * transaction and flow control.  It knows a route only through a
 * struct smtpd_route_ops; which route takes an address is decided by the
 * router the composition root sets per role (smtpd_set_router), so a new
 * route is a new file and a router change, never a change to commands.c.
 * The checks of the mx role (checks/engine.c) plug in the same way
 * (smtpd_set_checks), and so do the content filters of every role
 * (filter/engine.c, smtpd_set_filters).  Routes today:
 *   local/route.c    local_route: Maildir delivery (maildir/)
 *   queue/route.c    queue_route: a logged-in user's mail into the queue
 *   forward/proxy.c  forward_route: the synchronous forwarding proxy
 * and the routers: forward/router.c (mx role), queue/route.c (submission
 * roles).
 *
 * One message's path: RCPT -> the role's checks (smtpd_check_ops rcpt,
 * answered by smtpd_check_rcpt) -> router -> ops->rcpt -> the route
 * answers (smtpd_rcpt_answer, now or later); DATA -> ops->data ->
 * smtpd_data_go (354) or smtpd_tx_done; each chunk of the message (LF
 * form, unstuffed) -> the checks' body, and, with the held header fields
 * the checks drop removed, -> ops->body; the final dot -> the checks' end
 * (answered by smtpd_check_done with a refusal and the
 * Authentication-Results field) -> ops->end with the engine's or the
 * checks' refusal, if any -> smtpd_tx_done with the last reply of the
 * transaction.  A check or route that answers later makes the session
 * wait (input is held, replies stay in order); the answer resumes it.
 * Nothing of the transaction may be touched after an answer that ends it.
 *
 * Every function here runs on the event loop only; a worker job that
 * works for a session keeps its id (smtpd_session_id) and looks it up
 * with smtpd_session_find() when it is done.
 */
#ifndef CHAMOIS_ROUTE_H
#define CHAMOIS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../common/body.h"
#include "../common/config.h"
#include "../common/dsn.h"
#include "../common/limits.h"
#include "../common/tables.h"

struct smtpd_session;
struct mailaddr;

/*
 * struct smtpd_route_ops - a route, as the engine sees it.  Every
 * function gets the session; per-session state of the route lives in
 * smtpd_route_data().  Only rcpt is required.
 */
struct smtpd_route_ops {
	const char *name;
	/*
	 * outcome - the status= of a recipient whose message this route took
	 * (doc/chamoisd.8 LOGGING): "sent", "forwarded"; NULL when the route
	 * logs the outcomes itself later (the queue)
	 */
	const char *outcome;
	/* keeps_body - the route stores the message: DATA needs spool room */
	bool keeps_body;
	/*
	 * forwards - a copy of the message leaves for another server: the
	 * engine keeps the message for it (smtpd_tx_body) and the checks
	 * judge it as forwarded (smtpd_check_ops end)
	 */
	bool forwards;
	/*
	 * rcpt - a recipient the router gave this route: shown is the
	 * address as the client wrote it, exp its expansion (mailboxes, a
	 * forwarding target).  Answer with smtpd_rcpt_answer(), now or later.
	 */
	void (*rcpt)(struct smtpd_session *, const char *shown,
	    const struct expansion *exp);
	/* data - DATA: answer with smtpd_data_go() or smtpd_tx_done(); NULL: 354 */
	void (*data)(struct smtpd_session *);
	/* body - a chunk of the message, LF line ends, dot-stuffing undone */
	void (*body)(struct smtpd_session *, const char *text, size_t len);
	/*
	 * end - the final dot: refusal is the reply when one of the engine's
	 * checks failed (size, long line, loop, the body could not be kept),
	 * NULL when all is well.  Answer with smtpd_tx_done(), now or later.
	 */
	void (*end)(struct smtpd_session *, const char *refusal);
	/* rset - the transaction ended (any way): drop what belongs to it */
	void (*rset)(struct smtpd_session *);
	/* free - the session is gone: drop everything of it */
	void (*free)(struct smtpd_session *);
};

/* struct smtpd_route_pick - what a router decides for one address */
struct smtpd_route_pick {
	const struct smtpd_route_ops *ops;
	/*
	 * key - "local", "forward:DOMAIN", "queue"...: a transaction has one
	 * key (doc/protocol.md "Routes"); a recipient with another gets 452 4.5.3
	 */
	char key[DOMAIN_MAX + 8];
	struct expansion exp;		/* freed by the engine */
	/*
	 * next_hop - the copy goes to the domain's own next hop (a route
	 * line, doc/home-server.md), not to a third party: the checks judge
	 * the message as they judge local mail (smtpd_check_ops end)
	 */
	bool next_hop;
	char refusal[PATH_MAX_OCTETS + 128];	/* when no route takes it */
};

/*
 * smtpd_router_fn - pick the route of address a (key: addr_key(),
 * shown: as the client wrote it): fill pick->ops, key and exp and return
 * true, or fill pick->refusal (a whole reply line) and return false.
 */
typedef bool (*smtpd_router_fn)(struct smtpd_session *, const struct mailaddr *a,
    const char *key, const char *shown, struct smtpd_route_pick *pick);

/* smtpd_set_router - the composition root: the router of a listen role */
void smtpd_set_router(enum listen_role, smtpd_router_fn);
/* smtpd_tables - the tables in force (smtpd_configure), for routers */
const struct tables *smtpd_tables(void);

/*
 * The route's side of a transaction.  Each answer may come at once
 * (inside the op) or later (from a timer, a socket, a worker's done);
 * a later answer resumes the session's input.
 */
/*
 * smtpd_rcpt_answer - the reply to the RCPT given to ops->rcpt
 * (printf-style): a 2xx accepts the recipient into the transaction
 * (logged, counted, its mailboxes kept); anything else refuses it.  The
 * session goes on.  An answer when no RCPT is waiting is ignored.
 */
void smtpd_rcpt_answer(struct smtpd_session *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* smtpd_data_go - DATA may go on: 354, and the message is read */
void smtpd_data_go(struct smtpd_session *);
/*
 * smtpd_tx_done - the last reply of the transaction (printf-style): it
 * is sent, every route's rset runs, and the session goes on (or, the
 * daemon stopping, says 421 and closes).
 */
void smtpd_tx_done(struct smtpd_session *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * smtpd_tx_set_relay - the relay= of this transaction's outcome lines:
 * "local", or log_relay()'s HOST[IP]:PORT (the default is "none")
 */
void smtpd_tx_set_relay(struct smtpd_session *, const char *relay);
/* smtpd_tx_store_failed - the route could not keep the body (errno) */
void smtpd_tx_store_failed(struct smtpd_session *, int error);
/*
 * smtpd_input_pause / smtpd_input_resume - flow control: a route whose
 * next hop is slower than the client stops reading the client (the body
 * stays where it is) until it drains
 */
void smtpd_input_pause(struct smtpd_session *);
void smtpd_input_resume(struct smtpd_session *);

/*
 * smtpd_route_data / smtpd_route_set_data - the route's own state for
 * this session (NULL at first); the route frees it in its rset or free
 */
void *smtpd_route_data(struct smtpd_session *, const struct smtpd_route_ops *);
void smtpd_route_set_data(struct smtpd_session *, const struct smtpd_route_ops *,
    void *);

/*
 * Read-only views of the transaction (NULL, 0 or false outside one) and
 * the session.  Pointers stay valid until the transaction (or session)
 * ends, on the loop: never hand them to a worker thread.
 */
/* smtpd_tx_id - "SESSIONID.N", the transaction's log id */
const char *smtpd_tx_id(const struct smtpd_session *);
/* smtpd_tx_sender - the envelope sender, "" for <> */
const char *smtpd_tx_sender(const struct smtpd_session *);
/* smtpd_tx_rcpts - the accepted recipients as the client wrote them */
char *const *smtpd_tx_rcpts(const struct smtpd_session *, size_t *n);
/*
 * smtpd_tx_dsn - MAIL's ENVID (decoded, "" if none) and RET (*ret), RFC
 * 3461; smtpd_tx_rcpt_dsn - the i-th accepted recipient's ORCPT
 * ("type;address" decoded, "" if none) and NOTIFY (*notify, 0 if none).
 * Only the submission roles take them.
 */
const char *smtpd_tx_dsn(const struct smtpd_session *, enum dsn_ret *ret);
const char *smtpd_tx_rcpt_dsn(const struct smtpd_session *, size_t i,
    unsigned *notify);
/* smtpd_tx_mailboxes - the local mailboxes of the transaction, each once */
char *const *smtpd_tx_mailboxes(const struct smtpd_session *, size_t *n);
/* smtpd_tx_received - our Received field for this message, LF form */
const char *smtpd_tx_received(const struct smtpd_session *);
bool smtpd_tx_smtputf8(const struct smtpd_session *);	/* MAIL ... SMTPUTF8 */
bool smtpd_tx_body8bit(const struct smtpd_session *);	/* BODY=8BITMIME */
uint64_t smtpd_tx_size_param(const struct smtpd_session *); /* SIZE=, 0: none */
/* smtpd_tx_header_non_ascii - an octet >= 0x80 in the header section */
bool smtpd_tx_header_non_ascii(const struct smtpd_session *);
/* smtpd_tx_header_done - the blank line ending the header section came */
bool smtpd_tx_header_done(const struct smtpd_session *);
/* smtpd_tx_store_errno - why the body could not be kept, 0 if it could */
int smtpd_tx_store_errno(const struct smtpd_session *);
/*
 * smtpd_tx_take_body - the message kept for the local mailboxes (our
 * Received first): the caller owns it from now on (a worker job may
 * read it); the transaction keeps an empty body
 */
void smtpd_tx_take_body(struct smtpd_session *, struct body *out);

/* smtpd_session_idstr - the session's id, 16 hex digits, for log lines */
const char *smtpd_session_idstr(const struct smtpd_session *);
/* smtpd_session_addr_key - the client's address key ("1.2.3.4", IPv6 /64) */
const char *smtpd_session_addr_key(const struct smtpd_session *);
/* smtpd_session_peer - the client's address as text */
const char *smtpd_session_peer(const struct smtpd_session *);
/* smtpd_session_config - the config the session started with (held) */
const struct config *smtpd_session_config(const struct smtpd_session *);
/* smtpd_session_role - the listen role the client came in on */
enum listen_role smtpd_session_role(const struct smtpd_session *);
/* smtpd_session_user - the logged-in user, NULL before AUTH succeeded */
const char *smtpd_session_user(const struct smtpd_session *);

/*
 * struct smtpd_check_ops - what a role checks on the messages it takes
 * (the mx role: checks/engine.c, doc/forwarding.md "Checks"), plugged in
 * by the composition root (smtpd_set_checks).  Per-session state lives in
 * smtpd_check_data().  Every op is optional.
 */
struct smtpd_check_ops {
	/* connect - a client is connected (its address: smtpd_session_sockaddr) */
	void (*connect)(struct smtpd_session *);
	/* mail - MAIL was accepted: the transaction's checks start */
	void (*mail)(struct smtpd_session *);
	/*
	 * rcpt - a recipient, before any router sees it (shown: as the
	 * client wrote it, valid during the call): answer with
	 * smtpd_check_rcpt(), now or later
	 */
	void (*rcpt)(struct smtpd_session *, const struct mailaddr *,
	    const char *shown);
	/*
	 * body - a chunk of the message as the client sent it (LF line ends,
	 * dot-stuffing undone, no field removed, without our Received)
	 */
	void (*body)(struct smtpd_session *, const char *text, size_t len);
	/*
	 * drop_field - a header field the engine held back (an
	 * Authentication-Results field, LF form, its name included): true
	 * removes it from every copy
	 */
	bool (*drop_field)(struct smtpd_session *, const char *field, size_t len);
	/*
	 * end - the final dot, the engine's own checks passed; forwarded: a
	 * copy goes to a third party's server (a forwarding route, not a
	 * routed domain's own next hop).  Answer with smtpd_check_done(), now
	 * or later; the route's end runs after it.
	 */
	void (*end)(struct smtpd_session *, bool forwarded);
	/* rset - the transaction ended (any way) */
	void (*rset)(struct smtpd_session *);
	/* free - the session is gone */
	void (*free)(struct smtpd_session *);
};

/* smtpd_set_checks - the composition root: the checks of a listen role */
void smtpd_set_checks(enum listen_role, const struct smtpd_check_ops *);
/* smtpd_check_data / smtpd_check_set_data - the checks' state of a session */
void *smtpd_check_data(struct smtpd_session *);
void smtpd_check_set_data(struct smtpd_session *, void *);
/*
 * smtpd_check_rcpt - the answer to ops->rcpt: NULL lets the recipient go
 * on to its router, else refusal (a whole reply line) refuses it.  An
 * answer when no recipient is waiting is ignored.
 */
void smtpd_check_rcpt(struct smtpd_session *, const char *refusal);
/*
 * smtpd_check_done - the answer to ops->end: refusal (a whole reply
 * line) or NULL, and ar_field, the Authentication-Results field to
 * prepend to every copy (LF form, copied; NULL: none).  The route's end
 * runs next, with the refusal.  Ignored when no end is waiting.
 */
void smtpd_check_done(struct smtpd_session *, const char *refusal,
    const char *ar_field);
/*
 * smtpd_tx_auth_results - the Authentication-Results field of this
 * message (LF form), NULL when none was given; routes prepend it to
 * every copy (above our Received)
 */
const char *smtpd_tx_auth_results(const struct smtpd_session *);
/*
 * smtpd_tx_body - the message the engine keeps (our Received first, the
 * held fields removed) for the local mailboxes and a route that
 * forwards; read-only, until smtpd_tx_take_body or the end
 */
const struct body *smtpd_tx_body(const struct smtpd_session *);
/* smtpd_session_sockaddr - the client's address */
const struct sockaddr *smtpd_session_sockaddr(const struct smtpd_session *,
    socklen_t *len);
/* smtpd_session_helo - the HELO/EHLO name as the client gave it, "" before */
const char *smtpd_session_helo(const struct smtpd_session *);

/*
 * struct smtpd_filter_ops - content filters (the milters of
 * filter/engine.c, doc/filters.md), plugged in by the composition root
 * (smtpd_set_filters) beside the checks.  Each step runs after the
 * role's checks have let it through; unlike the checks, a filter answers
 * MAIL too, reads the message at its own pace from the kept body
 * (smtpd_tx_body, from smtpd_tx_text_offset), and may change its header
 * section before the route's end (smtpd_tx_header_*): every copy gets
 * the changes.  Per-session state lives in smtpd_filter_data(); a
 * session whose filters set none (no milter configured) is not filtered:
 * the engine keeps no body for them.  Every op is optional.
 */
struct smtpd_filter_ops {
	/* connect - a client is connected */
	void (*connect)(struct smtpd_session *);
	/* helo - HELO or EHLO was accepted (smtpd_session_helo) */
	void (*helo)(struct smtpd_session *);
	/* mail - MAIL passed the engine: answer with smtpd_filter_answer() */
	void (*mail)(struct smtpd_session *);
	/*
	 * rcpt - a recipient the checks let through, before its router:
	 * answer with smtpd_filter_answer()
	 */
	void (*rcpt)(struct smtpd_session *, const struct mailaddr *,
	    const char *shown);
	/* body - more of the message is in smtpd_tx_body() */
	void (*body)(struct smtpd_session *);
	/*
	 * end - the final dot, the checks passed (the whole message is in
	 * smtpd_tx_body): answer with smtpd_filter_answer(), now or later;
	 * the route's end runs after it
	 */
	void (*end)(struct smtpd_session *, bool forwarded);
	/* rset - the transaction ended (any way) */
	void (*rset)(struct smtpd_session *);
	/* free - the session is gone */
	void (*free)(struct smtpd_session *);
};

/* smtpd_set_filters - the composition root: the filters of a listen role */
void smtpd_set_filters(enum listen_role, const struct smtpd_filter_ops *);
/* smtpd_filter_data / smtpd_filter_set_data - the filters' state of a session */
void *smtpd_filter_data(struct smtpd_session *);
void smtpd_filter_set_data(struct smtpd_session *, void *);
/*
 * smtpd_filter_answer - the answer to ops->mail, ops->rcpt or ops->end:
 * NULL lets it go on, else refusal (a whole reply line) is the reply to
 * that command (MAIL: the transaction is over; RCPT: that recipient;
 * end: the message).  Ignored when nothing waits for it.
 */
void smtpd_filter_answer(struct smtpd_session *, const char *refusal);
/*
 * smtpd_tx_text_offset - where the message as the client sent it (the
 * held fields removed) starts in smtpd_tx_body: after our Received
 */
uint64_t smtpd_tx_text_offset(const struct smtpd_session *);
/*
 * smtpd_tx_header_add / _insert / _change - change the message's header
 * section before the route's end (the filters' end; doc/filters.md):
 * add a field at the end, insert one before the index-th field (0: at
 * the top), change the index-th (from 1) field named name (value NULL:
 * remove it; no such field: the value is added).  value is as after the
 * colon, lines separated by LF or CRLF.  false: not done (a header
 * section over HEADER_EDIT_MAX octets, a bad name or value).
 */
bool smtpd_tx_header_add(struct smtpd_session *, const char *name,
    const char *value);
bool smtpd_tx_header_insert(struct smtpd_session *, unsigned index,
    const char *name, const char *value);
bool smtpd_tx_header_change(struct smtpd_session *, const char *name,
    unsigned index, const char *value);
/*
 * smtpd_tx_header_edited - for a route that keeps its own copy of the
 * message (the queue): the changed header section (LF form) and the
 * length of the one it replaces, or NULL when nothing changed
 */
const char *smtpd_tx_header_edited(const struct smtpd_session *, size_t *len,
    uint64_t *old_len);
/*
 * smtpd_filter_take_body - while ops->end is answered: the kept message
 * with the header changes made (our Received first), for a filter that
 * keeps it itself (a quarantine); the caller owns it from now on
 */
void smtpd_filter_take_body(struct smtpd_session *, struct body *out);
/*
 * smtpd_filter_kept - the answer to ops->end when the filter kept the
 * message itself: reply (a 2xx, printf-style) ends the transaction, each
 * recipient's outcome line says status (e.g. "quarantined"), and no
 * route's end runs (nothing is delivered or forwarded)
 */
void smtpd_filter_kept(struct smtpd_session *, const char *status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* smtpd_tx_filtered - filters run on this transaction (they may change it) */
bool smtpd_tx_filtered(const struct smtpd_session *);

/*
 * struct smtpd_auth_ops - the AUTH command (RFC 4954), plugged in by
 * submission/ (submission/auth.c).  Per-session state lives in
 * smtpd_auth_data().
 */
struct smtpd_auth_ops {
	/* ehlo - the EHLO keyword line ("AUTH PLAIN ..."), or NULL for none */
	const char *(*ehlo)(struct smtpd_session *);
	/* cmd - AUTH arg: answer with smtpd_reply() and the calls below */
	void (*cmd)(struct smtpd_session *, char *arg);
	/* line - a response line while the engine reads SASL lines */
	void (*line)(struct smtpd_session *, char *line, size_t len);
	/* abort - the exchange ends without SASL (an over-long line) */
	void (*abort)(struct smtpd_session *);
	/* mail - MAIL FROM of a logged-in user: NULL, or the refusal */
	const char *(*mail)(struct smtpd_session *, const char *sender);
	/* free - the session is gone */
	void (*free)(struct smtpd_session *);
};

/* smtpd_set_auth - the composition root: AUTH on the submission roles */
void smtpd_set_auth(const struct smtpd_auth_ops *);
/* smtpd_auth_data / smtpd_auth_set_data - the auth ops' state of a session */
void *smtpd_auth_data(struct smtpd_session *);
void smtpd_auth_set_data(struct smtpd_session *, void *);
/* smtpd_auth_read_lines - the next lines are SASL responses (ops->line) */
void smtpd_auth_read_lines(struct smtpd_session *);
/* smtpd_auth_end - the exchange is over: commands again */
void smtpd_auth_end(struct smtpd_session *);
/* smtpd_auth_success - logged in as user: MAIL is allowed, Received says so */
void smtpd_auth_success(struct smtpd_session *, const char *user);
/*
 * smtpd_wait - hold the session's input until smtpd_auth_end() (or
 * another answer) and smtpd_resume(); e.g. the delay before a 535
 */
void smtpd_wait(struct smtpd_session *);
/* smtpd_session_waiting - the session is held by smtpd_wait() (or a route) */
bool smtpd_session_waiting(const struct smtpd_session *);
bool smtpd_session_tls(const struct smtpd_session *);	/* TLS is on */
bool smtpd_session_ehlo(const struct smtpd_session *);	/* EHLO, not HELO */
/* smtpd_session_tls_bits - the TLS cipher's strength, 0 without TLS */
unsigned smtpd_session_tls_bits(const struct smtpd_session *);
/* smtpd_session_sasl_addrs - our end and the client's, "IP;PORT" */
void smtpd_session_sasl_addrs(const struct smtpd_session *, const char **local,
    const char **remote);

#endif
