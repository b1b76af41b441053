/*
 * auth.c - AUTH (RFC 4954) and the submission profile of the session.
 *
 * The session engine (smtpd/) asks this file, through the auth ops the
 * composition root plugs in (sub_auth_ops, smtpd/route.h), which AUTH
 * line goes into EHLO (only after TLS, doc/protocol.md, "AUTH"), what to
 * do with AUTH and its response lines, and whether the logged-in user may
 * use a sender; this file answers with the engine's API
 * (smtpd_auth_read_lines, smtpd_auth_success, smtpd_wait, smtpd_reply...),
 * never by touching the session.  SASL itself is the back end's
 * (sasl_cyrus.c, or sasl_dovecot.c with sasl_backend dovecot, through
 * struct sub_sasl_ops); this file sees only CONTINUE / OK / FAIL / TEMP.
 * Each step runs off the loop or without blocking it (Cyrus: libsasl2 on a
 * worker thread; Dovecot: a request on its socket), through
 * start_async and step_async:
 * meanwhile the session waits in ST_WAIT without its SASL state, which the
 * job owns, and the job finds the session again by its id (auth_done).
 *
 * Each exchange is counted as an attempt when it starts, for the
 * address at AUTH and for the user as soon as a login name is sent
 * (limits.c, doc/users.md "Failed logins"): an address out of attempts
 * gets 421 4.7.0 at AUTH, a locked-out user 454 4.7.0 before any password
 * is checked.  A failed login is answered after a delay that grows with
 * the failures of the address and of the user, and the third failure in
 * a session closes it with 421 4.7.0.  Failures are logged as "auth
 * failed address=IP user=NAME", NAME being the one canonical key of the
 * name (sub_user_key), which fail2ban can match.
 */
#include <event2/event.h>
#include <openssl/ssl.h>
#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/limits.h"
#include "../common/util.h"
#include "../smtpd/smtpd.h"
#include "submission.h"

#define AUTH_FAILURES_PER_SESSION	3

/* what sub_configure() gives: the loop, the config and tables in force */
static struct {
	struct event_base *base;
	struct config *cfg;
	const struct tables *tables;
	const struct sub_sasl_ops *ops;	/* sasl_ops() */
} sub;

/* one session's AUTH state (smtpd_auth_data) */
struct sub_session {
	struct smtpd_session *s;
	struct sub_sasl *sasl;		/* the SASL exchange */
	char auth_mech[32];
	unsigned auth_failures;
	struct event *auth_timer;
	struct sub_attempt *auth_try;	/* the counted attempt */
};

void
sub_configure(struct event_base *base, struct config *c,
    const struct tables *t)
{
	struct config *old = sub.cfg;

	sub.base = base;
	sub.cfg = c ? config_ref(c) : NULL;
	if (old)
		config_free(old);
	sub.tables = t;
}

/*
 * sasl_ops - the back end: Dovecot's with sasl_backend dovecot, chosen
 * by the first configuration and kept (a SASL state in a session or a
 * job belongs to it; chamois.conf(5): a changed back end needs a restart)
 */
static const struct sub_sasl_ops *
sasl_ops(void)
{
	if (sub.ops == NULL)
		sub.ops = sub.cfg != NULL && sub.cfg->sasl_dovecot != NULL ?
		    &sub_sasl_dovecot_ops : &sub_sasl_cyrus_ops;
	return sub.ops;
}

/* state - the session's AUTH state, made on first use */
static struct sub_session *
state(struct smtpd_session *s)
{
	struct sub_session *a = smtpd_auth_data(s);

	if (a == NULL) {
		a = xcalloc(1, sizeof(*a));
		a->s = s;
		smtpd_auth_set_data(s, a);
	}
	return a;
}

/* session_sasl - the session's SASL state, made with the TLS strength */
static struct sub_sasl *
session_sasl(struct smtpd_session *s)
{
	struct sub_session *a = state(s);
	const char *local, *remote;

	if (a->sasl != NULL)
		return a->sasl;
	smtpd_session_sasl_addrs(s, &local, &remote);
	a->sasl = sasl_ops()->session(sub.cfg->hostname, local, remote,
	    smtpd_session_tls_bits(s));
	return a->sasl;
}

static const char *
sub_ehlo_auth(struct smtpd_session *s)
{
	static char line[256];
	const char *mechs;

	if (smtpd_session_role(s) == ROLE_MX || !smtpd_session_tls(s) ||
	    smtpd_session_user(s) != NULL)
		return NULL;
	if (session_sasl(s) == NULL)
		return NULL;
	mechs = sasl_ops()->mechs(state(s)->sasl);
	if (mechs == NULL || *mechs == '\0')
		return NULL;
	bsnprintf(line, sizeof(line), "AUTH %s", mechs);
	return line;
}

static void
auth_end(struct smtpd_session *s)
{
	struct sub_session *a = state(s);

	/* no password was checked (a success forgave it already) */
	sub_auth_forgive(&a->auth_try, smtpd_session_addr_key(s));
	/* a new exchange needs a fresh SASL state */
	sasl_ops()->free(a->sasl);
	a->sasl = NULL;
	smtpd_auth_end(s);
}

static void
auth_ok(struct smtpd_session *s)
{
	struct sub_session *a = state(s);
	char f1[LOG_ESC(300)], f2[LOG_ESC(sizeof(a->auth_mech))];
	const char *user;

	smtpd_auth_success(s, sasl_ops()->user(a->sasl));
	user = smtpd_session_user(s);
	/* forgives this attempt only: no other failure is cleared */
	sub_auth_succeeded(&a->auth_try, smtpd_session_addr_key(s), user,
	    clock_now());
	log_info("%s auth ok address=%s user=%s mechanism=%s",
	    smtpd_session_idstr(s), smtpd_session_peer(s),
	    log_field(f1, sizeof(f1), user),
	    log_field(f2, sizeof(f2), a->auth_mech));
	auth_end(s);
	smtpd_reply(s, "235 2.7.0 Authentication successful");
}

static void
auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sub_session *a = arg;
	struct smtpd_session *s = a->s;

	if (!smtpd_session_waiting(s))
		return;
	smtpd_auth_end(s);
	smtpd_reply(s, "535 5.7.8 Authentication credentials invalid");
	if (a->auth_failures >= AUTH_FAILURES_PER_SESSION) {
		smtpd_reply(s, "421 4.7.0 %s Too many failed logins, closing "
		    "connection", sub.cfg->hostname);
		smtpd_close_after_reply(s);
		return;
	}
	smtpd_resume(s);
}

static void
auth_failed(struct smtpd_session *s, const char *user)
{
	struct sub_session *a = state(s);
	unsigned ms = sub_auth_failed(&a->auth_try, smtpd_session_addr_key(s),
	    clock_now());
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	char shown[LOG_ESC(SUB_USER_KEY_MAX)], key[SUB_USER_KEY_MAX];
	char mech[LOG_ESC(sizeof(a->auth_mech))];

	a->auth_failures++;
	if (user != NULL)
		sub_user_key(user, key, sizeof(key));
	log_escape(shown, sizeof(shown), user ? key : "-", user ? strlen(key) : 1);
	log_warnx("%s auth failed address=%s user=%s mechanism=%s delay=%ums",
	    smtpd_session_idstr(s), smtpd_session_peer(s), shown,
	    log_field(mech, sizeof(mech), a->auth_mech), ms);
	sasl_ops()->free(a->sasl);
	a->sasl = NULL;
	/* the session waits on its own timer: nobody else is held up */
	if (a->auth_timer == NULL)
		a->auth_timer = evtimer_new(sub.base, auth_delay_cb, a);
	smtpd_wait(s);
	evtimer_add(a->auth_timer, &tv);
}

/* auth_result - act on what the SASL adapter said */
static void
auth_result(struct smtpd_session *s, enum sub_sasl_result r, const char *out)
{
	struct sub_session *a = state(s);
	char esc[LOG_ESC(sizeof(a->auth_mech))];

	switch (r) {
	case SUB_SASL_CONTINUE:
		smtpd_auth_read_lines(s);
		smtpd_reply(s, "334 %s", out);
		return;
	case SUB_SASL_OK:
		auth_ok(s);
		return;
	case SUB_SASL_FAIL:
		auth_failed(s, a->sasl ? sasl_ops()->attempted(a->sasl) : NULL);
		return;
	case SUB_SASL_TEMP:
		log_warnx("%s auth temporary-failure address=%s mechanism=%s",
		    smtpd_session_idstr(s), smtpd_session_peer(s),
		    log_field(esc, sizeof(esc), a->auth_mech));
		auth_end(s);
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	case SUB_SASL_NOMECH:
		auth_end(s);
		smtpd_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	case SUB_SASL_BADPROT:
		auth_end(s);
		smtpd_reply(s, "501 5.5.2 Malformed authentication data");
		return;
	case SUB_SASL_REFUSED:
		/*
		 * the user is locked out (doc/users.md): 454, not 535, so that
		 * a mail program keeps its password and tries again later
		 */
		auth_end(s);
		smtpd_reply(s, "454 4.7.0 Too many failed logins for this user, "
		    "try again later");
		return;
	}
}

/*
 * user_check - the exchange names a login: count it for the user, or
 * refuse it before its password is checked
 */
static bool
user_check(void *arg, const char *name)
{
	struct sub_session *a = arg;
	struct smtpd_session *s = a->s;
	char key[SUB_USER_KEY_MAX], shown[SUB_USER_KEY_MAX * 4];

	sub_user_key(name, key, sizeof(key));
	if (sub_auth_user(a->auth_try, smtpd_session_addr_key(s), key, clock_now()))
		return true;
	log_warnx("%s auth refused address=%s reason=too-many-user-failures "
	    "user=%s", smtpd_session_idstr(s), smtpd_session_peer(s),
	    log_escape(shown, sizeof(shown), key, strlen(key)));
	return false;
}

/*
 * auth_hand_off - the session's SASL state goes to a job
 * (sub_sasl_start_async): the session reads no line until auth_done
 */
static struct sub_sasl *
auth_hand_off(struct smtpd_session *s)
{
	struct sub_session *a = state(s);
	struct sub_sasl *sasl = a->sasl;

	a->sasl = NULL;
	smtpd_wait(s);
	return sasl;
}

/*
 * auth_done - the SASL step's result, on the loop.  A session closed (or
 * closing) meanwhile gets nothing: the state goes, and the attempt was
 * forgiven when the session went (no answer, so nothing was learnt).
 */
static void
auth_done(struct sub_sasl *sasl, enum sub_sasl_result r, const char *out,
    uint64_t id)
{
	struct smtpd_session *s = smtpd_session_find(id);

	if (s == NULL || !smtpd_session_waiting(s)) {
		log_info("%016llx auth abandoned reason=session-closed",
		    (unsigned long long)id);
		sasl_ops()->free(sasl);
		return;
	}
	state(s)->sasl = sasl;
	auth_result(s, r, out);
	smtpd_resume(s);
}

static void
sub_cmd_auth(struct smtpd_session *s, char *arg)
{
	struct sub_session *a;
	char *mech = arg, *initial;
	const char *ak = smtpd_session_addr_key(s);

	if (smtpd_session_role(s) == ROLE_MX) {
		/* no AUTH on the mx role (doc/protocol.md, "mx role") */
		smtpd_reply(s, "502 5.5.1 AUTH not available on this port");
		return;
	}
	if (!smtpd_session_tls(s)) {
		/* STARTTLS first (RFC 4954 4; doc/protocol.md, "AUTH") */
		smtpd_reply(s, "538 5.7.11 Encryption required for requested "
		    "authentication mechanism");
		return;
	}
	if (smtpd_session_user(s) != NULL) {
		smtpd_reply(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (!smtpd_session_ehlo(s)) {
		smtpd_reply(s, "503 5.5.1 Send EHLO first");
		return;
	}
	/* counted now, not when it ends: parked exchanges count (limits.c) */
	a = state(s);
	if (!sub_auth_begin(&a->auth_try, ak, clock_now())) {
		log_warnx("%s auth refused address=%s reason=too-many-failures",
		    smtpd_session_idstr(s), smtpd_session_peer(s));
		smtpd_reply(s, "421 4.7.0 %s Too many failed logins from your "
		    "address, try again later", sub.cfg->hostname);
		smtpd_close_after_reply(s);
		return;
	}
	if ((initial = strchr(mech, ' ')) != NULL) {
		*initial++ = '\0';
		while (*initial == ' ')
			initial++;
		if (*initial == '\0')
			initial = NULL;
	}
	if (*mech == '\0') {
		sub_auth_forgive(&a->auth_try, ak);
		smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	str_copy(a->auth_mech, mech, sizeof(a->auth_mech));
	if (session_sasl(s) == NULL) {
		sub_auth_forgive(&a->auth_try, ak);
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	sasl_ops()->set_name_check(a->sasl, user_check, a);
	sasl_ops()->start_async(auth_hand_off(s), mech, initial, auth_done,
	    smtpd_session_id(s));
}

static void
sub_auth_abort(struct smtpd_session *s)
{
	auth_end(s);
}

static void
sub_auth_line(struct smtpd_session *s, char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		/* RFC 4954 4: the client cancels */
		auth_end(s);
		smtpd_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	sasl_ops()->step_async(auth_hand_off(s), line, auth_done,
	    smtpd_session_id(s));
}

static const char *
sub_mail_check(struct smtpd_session *s, const char *sender)
{
	char f1[LOG_ESC(300)], f2[LOG_ESC(PATH_MAX_OCTETS)];
	const char *user = smtpd_session_user(s);

	if (sender[0] == '\0')
		return "553 5.7.1 The null sender is not accepted from users";
	if (!sub_sender_allowed(sub.tables, user, sender)) {
		log_warnx("%s auth sender-refused user=%s from=<%s>",
		    smtpd_session_idstr(s), log_field(f1, sizeof(f1), user),
		    log_field(f2, sizeof(f2), sender));
		return "553 5.7.1 Sender address is not one of yours";
	}
	if (!sub_rate_allow(user, sub.cfg->max_messages_per_hour, clock_now())) {
		log_warnx("%s auth rate-limited user=%s", smtpd_session_idstr(s),
		    log_field(f1, sizeof(f1), user));
		return "451 4.7.1 Too many messages this hour, try again later";
	}
	return NULL;
}

static void
sub_session_free(struct smtpd_session *s)
{
	struct sub_session *a = smtpd_auth_data(s);

	if (a == NULL)
		return;
	/*
	 * a connection that ends mid-exchange had no password checked, or
	 * (its SASL job still running) got no answer to it; the job owns
	 * the SASL state then (a->sasl is NULL) and frees it itself
	 */
	sub_auth_forgive(&a->auth_try, smtpd_session_addr_key(s));
	sasl_ops()->free(a->sasl);
	if (a->auth_timer)
		event_free(a->auth_timer);
	free(a);
	smtpd_auth_set_data(s, NULL);
}

const struct smtpd_auth_ops sub_auth_ops = {
	.ehlo = sub_ehlo_auth,
	.cmd = sub_cmd_auth,
	.line = sub_auth_line,
	.abort = sub_auth_abort,
	.mail = sub_mail_check,
	.free = sub_session_free,
};
