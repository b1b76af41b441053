/*
 * submission.h - the submission and submissions roles (doc/protocol.md,
 * "Submission"): local users log in with SASL (Cyrus libsasl2, sasldb2)
 * over TLS and send through the queue.  The session engine is smtpd/'s;
 * this folder gives it the SASL adapter, the login-failure limits and the
 * sender policy.
 */
#ifndef CHAMOIS_SUBMISSION_H
#define CHAMOIS_SUBMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct tables;
#include "../common/limits.h"

/* sasl_cyrus.c - the only file that includes <sasl/sasl.h> */

enum sub_sasl_result {
	SUB_SASL_CONTINUE,	/* send out (a 334 challenge), read another line */
	SUB_SASL_OK,		/* authenticated: sub_sasl_user() */
	SUB_SASL_FAIL,		/* wrong credentials or unknown user (535 5.7.8) */
	SUB_SASL_TEMP,		/* the back end failed (454 4.7.0) */
	SUB_SASL_NOMECH,	/* mechanism not available (504 5.5.4) */
	SUB_SASL_BADPROT,	/* malformed response, bad base64 (501 5.5.2) */
	SUB_SASL_REFUSED,	/* the name check refused the login name: nothing checked */
};

struct sub_sasl;

/*
 * sub_sasl_init - once, at start: libsasl2's server side with sasldb2 at
 * sasl_db, set through option callbacks (no system-wide SASL config);
 * -1 and err on failure
 */
int sub_sasl_init(const char *sasl_db, char *err, size_t errsize);
/*
 * sub_sasl_check - can this process read sasl_db, and is it a sasldb?
 * 0; -1 if it cannot be read, -2 if it is not a Berkeley DB file; err
 * names the file and the cause
 */
int sub_sasl_check(const char *sasl_db, char *err, size_t errsize);
/* sub_sasl_reconfigure - SIGHUP: a new sasl_db path for new sessions */
void sub_sasl_reconfigure(const char *sasl_db);
void sub_sasl_shutdown(void);
/*
 * sub_sasl_new - one session's SASL state; local and remote are
 * "IP;PORT" as libsasl2 wants them; ssf is the TLS cipher's strength
 */
struct sub_sasl *sub_sasl_new(const char *hostname, const char *local,
    const char *remote, unsigned ssf);
void sub_sasl_free(struct sub_sasl *);
/* sub_sasl_mechs - "PLAIN LOGIN SCRAM-SHA-256 ..." to advertise */
const char *sub_sasl_mechs(struct sub_sasl *);
/*
 * sub_sasl_start - AUTH mech [initial]: initial is the base64 initial
 * response (RFC 4954 4), "=" for an empty one, NULL for none; out gets
 * the base64 challenge for a 334 (NUL-terminated, may be "").
 */
enum sub_sasl_result sub_sasl_start(struct sub_sasl *, const char *mech,
    const char *initial, char *out, size_t outsize);
/* sub_sasl_step - the client's base64 response line */
enum sub_sasl_result sub_sasl_step(struct sub_sasl *, const char *response,
    char *out, size_t outsize);

/* the challenge a step may give: one AUTH line (RFC 4954 4) and its NUL */
#define SUB_SASL_OUT_MAX	(AUTH_LINE_MAX + 1)
/*
 * sub_sasl_done_fn - an asynchronous step has its result: called on the
 * event loop with the sub_sasl (the caller's again), the result, out (the
 * base64 challenge for a 334, valid during the call) and the caller's ref
 */
typedef void sub_sasl_done_fn(struct sub_sasl *, enum sub_sasl_result,
    const char *out, uint64_t ref);
/*
 * sub_sasl_start_async, sub_sasl_step_async - sub_sasl_start and
 * sub_sasl_step with libsasl2's part (the password check, SCRAM's key
 * derivation) on the worker's CPU pool, so that the event loop never
 * waits for it (doc/performance.md "Logins and the event loop").  What
 * needs no libsasl2 (decoding the client's message, an unknown
 * mechanism, the name check, which therefore runs on the loop) is done
 * at once, and then done is called before the function returns.
 * Otherwise the job owns the sub_sasl until done is called: the caller
 * must not use or free it meanwhile, and refers to itself by ref (e.g. a
 * session id), never by a pointer; a caller that is gone by then frees
 * the sub_sasl in done.  mech and response are copied.
 */
void sub_sasl_start_async(struct sub_sasl *, const char *mech,
    const char *initial, sub_sasl_done_fn *done, uint64_t ref);
void sub_sasl_step_async(struct sub_sasl *, const char *response,
    sub_sasl_done_fn *done, uint64_t ref);
/*
 * sub_sasl_client_init - once, at start, when relay_auth is set: the
 * client side of libsasl2 (the plugins' client halves); -1 with err set
 */
int sub_sasl_client_init(char *err, size_t errsize);
/*
 * sub_sasl_client_ops - outbound AUTH to a relay (outbound/client.h,
 * doc/queue.md "Relay host"): SCRAM-SHA-256, PLAIN or LOGIN, the first
 * the relay offers, each libsasl2 call on the CPU pool
 */
struct smtp_auth_ops;
extern const struct smtp_auth_ops sub_sasl_client_ops;
/* sub_sasl_user - after OK: the login, "user@domain" as the client gave it */
const char *sub_sasl_user(struct sub_sasl *);
/* sub_sasl_attempted - the login name the client sent, even on failure */
const char *sub_sasl_attempted(struct sub_sasl *);
/*
 * sub_sasl_set_name_check - check(arg, name) is called once an exchange,
 * as soon as the client's message names a login, before libsasl2 sees
 * it: false ends the exchange with SUB_SASL_REFUSED, no password checked.
 * It is always called on the event loop, from within sub_sasl_start*
 * or sub_sasl_step*, never from a worker thread.
 */
void sub_sasl_set_name_check(struct sub_sasl *,
    bool (*check)(void *arg, const char *name), void *arg);

/*
 * The SASL back end behind AUTH (chamois.conf(5) sasl_db, sasl_backend):
 * the sub_sasl_* calls above (Cyrus), or Dovecot's auth service
 * (sasl_dovecot.c).  auth.c calls only through this table.  struct
 * sub_sasl is each back end's own: a handle one back end made is only
 * ever given back to that back end.
 */
struct sub_sasl_ops {
	struct sub_sasl *(*session)(const char *hostname, const char *local,
	    const char *remote, unsigned ssf);
	void (*free)(struct sub_sasl *);
	const char *(*mechs)(struct sub_sasl *);
	void (*start_async)(struct sub_sasl *, const char *mech,
	    const char *initial, sub_sasl_done_fn *, uint64_t ref);
	void (*step_async)(struct sub_sasl *, const char *response,
	    sub_sasl_done_fn *, uint64_t ref);
	const char *(*user)(struct sub_sasl *);
	const char *(*attempted)(struct sub_sasl *);
	void (*set_name_check)(struct sub_sasl *,
	    bool (*check)(void *arg, const char *name), void *arg);
};
extern const struct sub_sasl_ops sub_sasl_cyrus_ops;

/* sasl_name.c */
/*
 * sub_sasl_login_name - the login name in a client's first decoded SASL
 * message (in, len octets) for mech: PLAIN's authcid, LOGIN's first
 * answer, SCRAM's "n=" (RFC 5802 5.1); never the password.  false when
 * the message names none (e.g. LOGIN's empty start, another mechanism).
 */
bool sub_sasl_login_name(const char *mech, const char *in, size_t len,
    char *name, size_t size);
/* sub_sasl_mech_listed - is mech (any case) a word of list, space separated? */
bool sub_sasl_mech_listed(const char *list, const char *mech);

/* sasl_dovecot.c - sasl_backend dovecot SOCKET (doc/users.md "Dovecot") */
struct event_base;
extern const struct sub_sasl_ops sub_sasl_dovecot_ops;
/*
 * sub_dovecot_init - at start and on SIGHUP: Dovecot's auth-client socket
 * to use from now on (a changed path drops the old connection); the
 * connection is made on the loop, now, and again whenever it is needed
 */
void sub_dovecot_init(struct event_base *, const char *socket_path);
void sub_dovecot_shutdown(void);

/* limits.c - login attempts across connections, messages per hour */

#define SUB_USER_KEY_MAX	320	/* a login name's key, NUL included */
struct sub_attempt;
/* sub_user_key - the canonical key of a login name (counters and logs) */
void sub_user_key(const char *name, char *out, size_t size);
/*
 * sub_auth_begin - an exchange starts: false when the address has used up
 * its attempts (the session answers 421 4.7.0); else it is counted in *ap
 */
bool sub_auth_begin(struct sub_attempt **ap, const char *addr_key, time_t now);
/*
 * sub_auth_user - the exchange names user (a sub_user_key): false when the
 * user is locked out for this address (454 4.7.0); else counted in a
 */
bool sub_auth_user(struct sub_attempt *a, const char *addr_key,
    const char *user, time_t now);
/* sub_auth_failed - the attempt stays counted; the delay before the 535, ms */
unsigned sub_auth_failed(struct sub_attempt **ap, const char *addr_key,
    time_t now);
/* sub_auth_forgive - the exchange ended with no password checked */
void sub_auth_forgive(struct sub_attempt **ap, const char *addr_key);
/* sub_auth_succeeded - forgive the attempt; user's address becomes known */
void sub_auth_succeeded(struct sub_attempt **ap, const char *addr_key,
    const char *user, time_t now);
void sub_attempt_free(struct sub_attempt **ap);
/* sub_rate_allow - one more message for user this hour? (max 0: no limit) */
bool sub_rate_allow(const char *user, unsigned max_per_hour, time_t now);
void sub_limits_shutdown(void);

/* auth.c - the AUTH command (RFC 4954) and the submission profile */
struct config;
struct event_base;
struct smtpd_auth_ops;
/*
 * sub_auth_ops - what the composition root plugs into the engine
 * (smtpd_set_auth): the EHLO keyword "AUTH PLAIN ..." after TLS only,
 * AUTH and its 334 exchange, the failure delays and limits (limits.c),
 * and the sender check at MAIL (policy.c, messages per hour)
 */
extern const struct smtpd_auth_ops sub_auth_ops;
/*
 * sub_configure - at start and on SIGHUP: the loop (failure delays), the
 * config in force (a reference is taken) and the tables (borrowed until
 * the next call)
 */
void sub_configure(struct event_base *, struct config *, const struct tables *);

/* policy.c */
/*
 * sub_sender_allowed - is sender one of user's addresses: the mailbox
 * itself (+tag too) or an address that delivers to it (an alias)?
 */
bool sub_sender_allowed(const struct tables *, const char *user, const char *sender);

#endif
