/*
 * commands.c - the ESMTP command table and what each command does.
 *
 * smtpd_cmds[] names, for every verb, the states it is allowed in and its
 * handler; smtpd_command() applies the table, so a handler checks only its
 * own arguments.  Handlers answer through smtpd_reply() and never touch
 * the connection.  The transaction lives here too: RCPT asks the role's
 * router (route.h) which route takes the address and hands it to that
 * route, which answers through smtpd_rcpt_answer(); DATA, every chunk of
 * the message and the final dot (after the checks every route shares:
 * size, long lines, loops) go to the same route, whose smtpd_data_go()
 * and smtpd_tx_done() move the session on.  The role's checks (route.h,
 * struct smtpd_check_ops) see each RCPT before its router, the message as
 * it was sent, and give their verdict before the route's end; the header
 * fields they drop are held back by header_filter (dataphase.c).  No
 * route and no check is named here.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "../common/clock.h"
#include "../common/limits.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "headedit.h"
#include "session.h"

#define STB(st)		(1u << (st))
#define ST_ANY_CMD	(STB(ST_CONNECTED) | STB(ST_HELO) | STB(ST_MAIL) | STB(ST_RCPT))

#define CMD_NOARG	0x01	/* takes no argument */

struct smtpd_cmd {
	const char *verb;
	unsigned states;	/* STB() mask of states that allow it */
	unsigned flags;
	void (*fn)(struct smtpd_session *, char *arg);
	const char *out_of_sequence;	/* 503 reply when not allowed */
};

static void cmd_helo(struct smtpd_session *, char *);
static void cmd_ehlo(struct smtpd_session *, char *);
static void cmd_mail(struct smtpd_session *, char *);
static void cmd_rcpt(struct smtpd_session *, char *);
static void cmd_data(struct smtpd_session *, char *);
static void cmd_rset(struct smtpd_session *, char *);
static void cmd_noop(struct smtpd_session *, char *);
static void cmd_quit(struct smtpd_session *, char *);
static void cmd_vrfy(struct smtpd_session *, char *);
static void cmd_expn(struct smtpd_session *, char *);
static void cmd_help(struct smtpd_session *, char *);
static void cmd_starttls(struct smtpd_session *, char *);
static void cmd_auth(struct smtpd_session *, char *);

static const struct smtpd_cmd smtpd_cmds[] = {
	{ "HELO", ST_ANY_CMD, 0, cmd_helo, NULL },
	{ "EHLO", ST_ANY_CMD, 0, cmd_ehlo, NULL },
	{ "MAIL", STB(ST_HELO), 0, cmd_mail,
	    "503 5.5.1 Send HELO/EHLO first, and no nested MAIL" },
	{ "RCPT", STB(ST_MAIL) | STB(ST_RCPT), 0, cmd_rcpt,
	    "503 5.5.1 Need MAIL before RCPT" },
	{ "DATA", STB(ST_MAIL) | STB(ST_RCPT), CMD_NOARG, cmd_data,
	    "503 5.5.1 Need MAIL and RCPT before DATA" },
	{ "RSET", ST_ANY_CMD, CMD_NOARG, cmd_rset, NULL },
	{ "NOOP", ST_ANY_CMD, 0, cmd_noop, NULL },
	{ "QUIT", ST_ANY_CMD, CMD_NOARG, cmd_quit, NULL },
	{ "VRFY", ST_ANY_CMD, 0, cmd_vrfy, NULL },
	{ "EXPN", ST_ANY_CMD, 0, cmd_expn, NULL },
	{ "HELP", ST_ANY_CMD, 0, cmd_help, NULL },
	{ "STARTTLS", STB(ST_CONNECTED) | STB(ST_HELO), CMD_NOARG, cmd_starttls,
	    "503 5.5.1 STARTTLS not allowed inside a transaction" },
	{ "AUTH", STB(ST_HELO), 0, cmd_auth,
	    "503 5.5.1 Send EHLO first, and no AUTH inside a transaction" },
};

/* verbs of other protocols: a client speaking them is not an SMTP client */
static const char *const foreign_verbs[] = {
	"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE",
};

/* the routers and checks, per listen role, and the auth ops: set by the composition root */
static smtpd_router_fn routers[ROLE_SUBMISSIONS + 1];
const struct smtpd_check_ops *smtpd_checks[ROLE_SUBMISSIONS + 1];
const struct smtpd_filter_ops *smtpd_filters[ROLE_SUBMISSIONS + 1];
const struct smtpd_auth_ops *smtpd_auth;

void
smtpd_set_router(enum listen_role role, smtpd_router_fn fn)
{
	routers[role] = fn;
}

void
smtpd_set_auth(const struct smtpd_auth_ops *ops)
{
	smtpd_auth = ops;
}

void
smtpd_set_checks(enum listen_role role, const struct smtpd_check_ops *ops)
{
	smtpd_checks[role] = ops;
}

void *
smtpd_check_data(struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->check;
}

void
smtpd_check_set_data(struct smtpd_session *s, void *data)
{
	smtpd_loop_only();
	s->check = data;
}

void
smtpd_set_filters(enum listen_role role, const struct smtpd_filter_ops *ops)
{
	smtpd_filters[role] = ops;
}

void *
smtpd_filter_data(struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->filter;
}

void
smtpd_filter_set_data(struct smtpd_session *s, void *data)
{
	smtpd_loop_only();
	s->filter = data;
}

void
smtpd_greet(struct smtpd_session *s)
{
	smtpd_reply(s, "220 %s ESMTP chamois", smtpd.cfg->hostname);
}

/* route_slot - the session's slot of a route, made on first use */
static int
route_slot(struct smtpd_session *s, const struct smtpd_route_ops *ops,
    bool create)
{
	for (int i = 0; i < SMTPD_ROUTES_MAX; i++) {
		if (s->routes[i].ops == ops)
			return i;
		if (s->routes[i].ops == NULL) {
			if (!create)
				return -1;
			s->routes[i].ops = ops;
			return i;
		}
	}
	if (create)
		fatalx("smtpd: more than %d routes in one session", SMTPD_ROUTES_MAX);
	return -1;
}

void *
smtpd_route_data(struct smtpd_session *s, const struct smtpd_route_ops *ops)
{
	int i = route_slot(s, ops, false);

	smtpd_loop_only();
	return i < 0 ? NULL : s->routes[i].data;
}

void
smtpd_route_set_data(struct smtpd_session *s, const struct smtpd_route_ops *ops,
    void *data)
{
	smtpd_loop_only();
	s->routes[route_slot(s, ops, true)].data = data;
}

/* smtpd_routes_free - the session is gone: each route it used lets go */
void
smtpd_routes_free(struct smtpd_session *s)
{
	for (int i = 0; i < SMTPD_ROUTES_MAX && s->routes[i].ops; i++)
		if (s->routes[i].ops->free)
			s->routes[i].ops->free(s);
}

static void
tx_reset(struct smtpd_session *s)
{
	/* every route the transaction used lets go (a refused RCPT too) */
	if (s->tx) {
		for (int i = 0; i < SMTPD_ROUTES_MAX && s->routes[i].ops; i++)
			if (s->routes[i].ops->rset)
				s->routes[i].ops->rset(s);
		if (s->checks && s->checks->rset)
			s->checks->rset(s);
		if (s->filters && s->filters->rset)
			s->filters->rset(s);
	}
	smtpd_tx_free(s->tx);
	s->tx = NULL;
	if (s->state != ST_CLOSING)
		smtpd_enter_state(s, s->helo[0] ? ST_HELO : ST_CONNECTED);
}

/* tx_end - after a transaction's last reply: go on, or stop (SIGTERM) */
static void
tx_end(struct smtpd_session *s)
{
	tx_reset(s);
	if ((s->flags & SF_STOP) && s->state != ST_CLOSING) {
		smtpd_reply(s, "421 4.3.2 %s Service shutting down",
		    smtpd.cfg->hostname);
		smtpd_close_after_reply(s);
	}
}

/*
 * tx_outcomes - the transaction's last reply: one outcome line per
 * accepted recipient (doc/chamoisd.8 LOGGING), the route's status when
 * it took the message, refused when it did not
 */
static void
tx_outcomes(struct smtpd_session *s, const char *reply)
{
	struct smtpd_tx *tx = s->tx;
	const char *status = reply[0] != '2' ? "refused" : tx->kept_status ?
	    tx->kept_status : tx->route->outcome;

	for (size_t i = 0; status != NULL && i < tx->nrcpts; i++)
		log_outcome(tx->id, tx->rcpts[i], tx->relay, tx->since, NULL,
		    status, reply);
}

/* smtpd_tx_done - see route.h */
void
smtpd_tx_done(struct smtpd_session *s, const char *fmt, ...)
{
	char line[REPLY_LINE_MAX];
	va_list ap;

	smtpd_loop_only();
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->tx != NULL)
		tx_outcomes(s, line);
	smtpd_reply(s, "%s", line);
	tx_end(s);
	if (!s->in_route)
		smtpd_resume(s);
}

/* smtpd_tx_set_relay - see route.h */
void
smtpd_tx_set_relay(struct smtpd_session *s, const char *relay)
{
	if (s->tx != NULL)
		str_copy(s->tx->relay, relay, sizeof(s->tx->relay));
}

/* smtpd_tx_store_failed - see route.h */
void
smtpd_tx_store_failed(struct smtpd_session *s, int error)
{
	if (s->tx && s->tx->store_errno == 0)
		s->tx->store_errno = error ? error : EIO;
}

void
smtpd_command(struct smtpd_session *s, char *line, size_t len)
{
	const struct smtpd_cmd *cmd = NULL;
	char *arg, verb[16];
	size_t vlen;

	if (memchr(line, '\0', len) != NULL) {
		str_copy(s->last_cmd, "(NUL in command)", sizeof(s->last_cmd));
		smtpd_reply(s, "500 5.5.2 NUL character in command");
		return;
	}
	log_escape_text(s->last_cmd, sizeof(s->last_cmd), line,
	    str_has_prefix_ci(line, "AUTH ") ? 4 : len);
	if ((s->flags & SF_STOP) && s->tx == NULL) {
		smtpd_reply(s, "421 4.3.2 %s Service shutting down",
		    smtpd.cfg->hostname);
		smtpd_close_after_reply(s);
		return;
	}
	vlen = strcspn(line, " ");
	arg = line + vlen;
	while (*arg == ' ')
		arg++;
	for (size_t i = 0; vlen < sizeof(verb) && i < nitems(smtpd_cmds); i++)
		if (strncasecmp(line, smtpd_cmds[i].verb, vlen) == 0 &&
		    smtpd_cmds[i].verb[vlen] == '\0')
			cmd = &smtpd_cmds[i];
	if (cmd == NULL) {
		for (size_t i = 0; i < nitems(foreign_verbs); i++)
			if (vlen == strlen(foreign_verbs[i]) &&
			    strncmp(line, foreign_verbs[i], vlen) == 0) {
				log_info("%s smtp disconnect reason=foreign-protocol",
				    s->idstr);
				smtpd_reply(s, "500 5.5.1 This is an SMTP server");
				smtpd_close_after_reply(s);
				return;
			}
		smtpd_reply(s, "500 5.5.1 Command not recognized");
		return;
	}
	if (!(cmd->states & STB(s->state))) {
		if (strcmp(cmd->verb, "DATA") == 0 && s->state == ST_HELO)
			smtpd_reply(s, "503 5.5.1 Need MAIL before DATA");
		else if (strcmp(cmd->verb, "MAIL") == 0 && s->state == ST_CONNECTED)
			smtpd_reply(s, "503 5.5.1 Send HELO/EHLO first");
		else if (strcmp(cmd->verb, "MAIL") == 0)
			smtpd_reply(s, "503 5.5.1 Nested MAIL command");
		else if (strcmp(cmd->verb, "RCPT") == 0 && s->state == ST_CONNECTED)
			smtpd_reply(s, "503 5.5.1 Send HELO/EHLO first");
		else
			smtpd_reply(s, "%s", cmd->out_of_sequence);
		return;
	}
	if ((cmd->flags & CMD_NOARG) && *arg != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: %s (no arguments)", cmd->verb);
		return;
	}
	cmd->fn(s, arg);
}

static void
cmd_helo(struct smtpd_session *s, char *arg)
{
	if (!smtpd_parse_helo(arg, s->helo, sizeof(s->helo))) {
		smtpd_reply(s, "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	s->flags &= ~SF_EHLO;
	tx_reset(s);
	if (s->filters && s->filters->helo)
		s->filters->helo(s);
	smtpd_reply(s, "250 %s", smtpd.cfg->hostname);
}

static bool
tls_available(const struct smtpd_session *s)
{
	return !(s->flags & SF_TLS) &&
	    (s->role == ROLE_MX ? smtpd.tls_mx : smtpd.tls_sub) != NULL;
}

static void
cmd_ehlo(struct smtpd_session *s, char *arg)
{
	const char *lines[12], *auth;
	char first[HELO_MAX + DOMAIN_MAX + 100], size[40];
	size_t n = 0;

	if (!smtpd_parse_helo(arg, s->helo, sizeof(s->helo))) {
		smtpd_reply(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	s->flags |= SF_EHLO;
	tx_reset(s);
	if (s->filters && s->filters->helo)
		s->filters->helo(s);
	snprintf(first, sizeof(first), "%s Hello %s [%s]", smtpd.cfg->hostname,
	    s->helo, s->peer_text);
	snprintf(size, sizeof(size), "SIZE %" PRIu64, smtpd.cfg->max_message_size);
	lines[n++] = first;
	lines[n++] = "PIPELINING";
	lines[n++] = size;
	lines[n++] = "8BITMIME";
	lines[n++] = "ENHANCEDSTATUSCODES";
	if (s->role != ROLE_MX)
		/* RFC 3461; never on port 25: no reports to strangers */
		lines[n++] = "DSN";
	if (tls_available(s))
		lines[n++] = "STARTTLS";
	if (smtpd_auth && smtpd_auth->ehlo && (auth = smtpd_auth->ehlo(s)) != NULL)
		lines[n++] = auth;
	lines[n++] = "SMTPUTF8";
	smtpd_reply_lines(s, 250, lines, n);
}

static void
cmd_starttls(struct smtpd_session *s, char *arg)
{
	if (s->flags & SF_TLS) {
		smtpd_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	if (!tls_available(s)) {
		smtpd_reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	tx_reset(s);
	smtpd_start_tls(s);
}

static void
cmd_auth(struct smtpd_session *s, char *arg)
{
	if (smtpd_auth == NULL || smtpd_auth->cmd == NULL) {
		smtpd_reply(s, "502 5.5.1 AUTH not available on this port");
		return;
	}
	smtpd_auth->cmd(s, arg);
}

static void
cmd_rset(struct smtpd_session *s, char *arg)
{
	tx_reset(s);
	smtpd_reply(s, "250 2.0.0 Ok");
	if (s->flags & SF_STOP)
		tx_end(s);
}

static void
cmd_noop(struct smtpd_session *s, char *arg)
{
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtpd_session *s, char *arg)
{
	smtpd_reply(s, "221 2.0.0 Bye");
	log_info("%s smtp disconnect reason=quit", s->idstr);
	smtpd_close_after_reply(s);
}

static void
cmd_vrfy(struct smtpd_session *s, char *arg)
{
	/* RFC 5321 3.5.3: 252 says "try it" without telling who exists */
	smtpd_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message");
}

static void
cmd_expn(struct smtpd_session *s, char *arg)
{
	smtpd_reply(s, "502 5.5.1 EXPN not available");
}

static void
cmd_help(struct smtpd_session *s, char *arg)
{
	smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET "
	    "NOOP QUIT VRFY HELP STARTTLS");
}

static void
cmd_mail(struct smtpd_session *s, char *arg)
{
	struct smtpd_mail_args m;
	const char *err;
	struct smtpd_tx *tx;

	if (s->role != ROLE_MX && !(s->flags & SF_AUTH)) {
		smtpd_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if ((err = smtpd_parse_mail(arg, &m, smtpd.cfg->max_message_size,
	    s->role != ROLE_MX, s->role != ROLE_MX)) != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	if (s->role != ROLE_MX && smtpd_auth && smtpd_auth->mail) {
		char sender[PATH_MAX_OCTETS + 1] = "";

		if (!m.null_sender)
			addr_format(&m.addr, sender, sizeof(sender));
		if ((err = smtpd_auth->mail(s, sender)) != NULL) {
			smtpd_reply(s, "%s", err);
			return;
		}
	}
	tx = xcalloc(1, sizeof(*tx));
	tx->n = ++s->ntx;
	snprintf(tx->id, sizeof(tx->id), "%s.%u", s->idstr, tx->n);
	if (!m.null_sender)
		addr_format(&m.addr, tx->sender, sizeof(tx->sender));
	tx->smtputf8 = m.smtputf8;
	tx->body8bit = m.body8bit;
	tx->size_param = m.size;
	tx->ret = m.ret;
	str_copy(tx->envid, m.envid, sizeof(tx->envid));
	tx->since = clock_now();
	str_copy(tx->relay, "none", sizeof(tx->relay));
	s->tx = tx;
	smtpd_enter_state(s, ST_MAIL);
	{
		char f1[LOG_ESC(PATH_MAX_OCTETS)], f2[LOG_ESC(HELO_MAX)];

		log_info("%s smtp mail from=<%s> helo=%s", tx->id,
		    log_field(f1, sizeof(f1), tx->sender),
		    log_field(f2, sizeof(f2), s->helo));
	}
	if (s->checks && s->checks->mail)
		s->checks->mail(s);
	if (s->filters == NULL || s->filters->mail == NULL) {
		smtpd_reply(s, "250 2.1.0 Ok");
		return;
	}
	/* the filters' answer is MAIL's (smtpd_filter_answer) */
	tx->filter_wait = FW_MAIL;
	s->in_route++;
	s->filters->mail(s);
	s->in_route--;
	if (s->tx == tx && tx->filter_wait == FW_MAIL && s->state != ST_CLOSING)
		smtpd_enter_state(s, ST_WAIT);
}

static void
tx_add_mailbox(struct smtpd_tx *tx, const char *mb)
{
	for (size_t i = 0; i < tx->nmailboxes; i++)
		if (strcmp(tx->mailboxes[i], mb) == 0)
			return;
	tx->mailboxes = xreallocarray(tx->mailboxes, tx->nmailboxes + 1,
	    sizeof(char *));
	tx->mailboxes[tx->nmailboxes++] = xstrdup(mb);
}

/* tx_add_rcpt - an accepted recipient joins the transaction */
static void
tx_add_rcpt(struct smtpd_tx *tx, const struct smtpd_pending_rcpt *p)
{
	char f1[LOG_ESC(PATH_MAX_OCTETS)], f2[LOG_ESC(DOMAIN_MAX + 8)];

	tx->route = p->ops;
	str_copy(tx->route_key, p->key, sizeof(tx->route_key));
	tx->next_hop = p->next_hop;	/* the same for every key's recipient */
	for (size_t i = 0; i < p->exp.nmailboxes; i++)
		tx_add_mailbox(tx, p->exp.mailboxes[i]);
	tx->rcpts = xreallocarray(tx->rcpts, tx->nrcpts + 1, sizeof(char *));
	tx->orcpt = xreallocarray(tx->orcpt, tx->nrcpts + 1, sizeof(char *));
	tx->notify = xreallocarray(tx->notify, tx->nrcpts + 1, sizeof(unsigned));
	/* one RCPT is answered at a time: rcpt_dsn is this one's */
	tx->orcpt[tx->nrcpts] = xstrdup(tx->rcpt_dsn.orcpt);
	tx->notify[tx->nrcpts] = tx->rcpt_dsn.notify;
	tx->rcpts[tx->nrcpts++] = xstrdup(p->shown);
	log_info("%s smtp rcpt to=<%s> result=accepted route=%s", tx->id,
	    log_field(f1, sizeof(f1), p->shown), log_field(f2, sizeof(f2), p->key));
}

static void
pending_free(struct smtpd_pending_rcpt *p)
{
	if (p == NULL)
		return;
	free(p->shown);
	expansion_free(&p->exp);
	free(p);
}

/* tx_state - after a RCPT's answer: MAIL or RCPT, as the recipients say */
static void
tx_state(struct smtpd_session *s)
{
	enum smtpd_state st = s->tx->nrcpts > 0 ? ST_RCPT : ST_MAIL;

	if ((s->state == ST_WAIT || s->state == ST_MAIL || s->state == ST_RCPT) &&
	    s->state != st)
		smtpd_enter_state(s, st);
}

/* smtpd_rcpt_answer - see route.h */
void
smtpd_rcpt_answer(struct smtpd_session *s, const char *fmt, ...)
{
	struct smtpd_pending_rcpt *p;
	char reply[REPLY_LINE_MAX];
	va_list ap;

	smtpd_loop_only();
	va_start(ap, fmt);
	vsnprintf(reply, sizeof(reply), fmt, ap);
	va_end(ap);
	if (s->tx == NULL || (p = s->tx->pending) == NULL) {
		log_warnx("%s smtp route answered no RCPT", s->idstr);
		return;
	}
	s->tx->pending = NULL;
	if (reply[0] == '2')
		tx_add_rcpt(s->tx, p);
	else {
		metrics_rcpt_refused(s->role, reply[0]);
		log_outcome(s->tx->id, p->shown, s->tx->relay, s->tx->since,
		    NULL, "refused", reply);
	}
	pending_free(p);
	smtpd_reply(s, "%s", reply);
	tx_state(s);
	if (!s->in_route)
		smtpd_resume(s);
}

/* rcpt_refuse - we refuse a recipient: the reply and its outcome line */
static void
rcpt_refuse(struct smtpd_session *s, const char *shown, const char *reply)
{
	log_outcome(s->tx->id, shown, "none", s->tx->since, NULL,
	    "refused", reply);
	smtpd_reply(s, "%s", reply);
}

/*
 * rcpt_route - a recipient the checks let through: its router picks the
 * route, which answers (smtpd_rcpt_answer)
 */
static void
rcpt_route(struct smtpd_session *s, const struct mailaddr *ap,
    const char *key, const char *shown)
{
	struct smtpd_tx *tx = s->tx;
	struct mailaddr a = *ap;
	struct smtpd_route_pick pick;
	struct smtpd_pending_rcpt *p;

	memset(&pick, 0, sizeof(pick));
	if (routers[s->role] == NULL) {
		smtpd_reply(s, "451 4.3.0 <%s>: No route for this recipient", shown);
		return;
	}
	if (!routers[s->role](s, &a, key, shown, &pick)) {
		expansion_free(&pick.exp);
		metrics_rcpt_refused(s->role, pick.refusal[0]);
		rcpt_refuse(s, shown, pick.refusal);
		return;
	}
	if (tx->route != NULL && strcmp(pick.key, tx->route_key) != 0) {
		/* doc/protocol.md "Routes": one route per transaction */
		expansion_free(&pick.exp);
		rcpt_refuse(s, shown, "452 4.5.3 send this recipient in a "
		    "separate transaction");
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->shown = xstrdup(shown);
	str_copy(p->key, pick.key, sizeof(p->key));
	p->ops = pick.ops;
	p->next_hop = pick.next_hop;
	p->exp = pick.exp;		/* the pending RCPT owns it now */
	tx->pending = p;
	route_slot(s, p->ops, true);
	s->in_route++;
	p->ops->rcpt(s, p->shown, &p->exp);
	s->in_route--;
	/* no answer yet: the session waits for it, its input held */
	if (s->tx != NULL && s->tx->pending != NULL && s->state != ST_WAIT &&
	    s->state != ST_CLOSING)
		smtpd_enter_state(s, ST_WAIT);
}

/* rcpt_waits - a RCPT is still with the checks, the filters or a route */
static bool
rcpt_waits(const struct smtpd_tx *tx)
{
	return tx->checking != NULL || tx->filtering != NULL ||
	    tx->pending != NULL;
}

/*
 * rcpt_checked - a recipient the checks let through: the filters (when
 * the role has them, smtpd_filter_answer), then its route
 */
static void
rcpt_checked(struct smtpd_session *s, const struct mailaddr *a,
    const char *key, const char *shown)
{
	struct smtpd_checking_rcpt *c;

	if (s->filters == NULL || s->filters->rcpt == NULL) {
		rcpt_route(s, a, key, shown);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->addr = *a;
	str_copy(c->key, key, sizeof(c->key));
	str_copy(c->shown, shown, sizeof(c->shown));
	s->tx->filtering = c;
	s->in_route++;
	s->filters->rcpt(s, &c->addr, c->shown);
	s->in_route--;
	if (s->tx != NULL && rcpt_waits(s->tx) && s->state != ST_WAIT &&
	    s->state != ST_CLOSING)
		smtpd_enter_state(s, ST_WAIT);
}

/* smtpd_check_rcpt - see route.h */
void
smtpd_check_rcpt(struct smtpd_session *s, const char *refusal)
{
	struct smtpd_checking_rcpt *c;

	smtpd_loop_only();
	if (s->tx == NULL || (c = s->tx->checking) == NULL) {
		log_warnx("%s smtp checks answered no RCPT", s->idstr);
		return;
	}
	s->tx->checking = NULL;
	if (refusal != NULL) {
		metrics_rcpt_refused(s->role, refusal[0]);
		rcpt_refuse(s, c->shown, refusal);
	} else
		rcpt_checked(s, &c->addr, c->key, c->shown);
	free(c);
	/* answered at once, or the route answered at once: go on */
	if (s->tx != NULL && !rcpt_waits(s->tx)) {
		tx_state(s);
		if (!s->in_route)
			smtpd_resume(s);
	}
}

static void
cmd_rcpt(struct smtpd_session *s, char *arg)
{
	struct smtpd_tx *tx = s->tx;
	struct smtpd_checking_rcpt *c;
	struct mailaddr a;
	char key[PATH_MAX_OCTETS + 1], shown[PATH_MAX_OCTETS + 1];
	const char *err;

	if ((err = smtpd_parse_rcpt(arg, &a, s->role != ROLE_MX ? &tx->rcpt_dsn :
	    NULL)) != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	addr_format(&a, shown, sizeof(shown));
	if (!tx->smtputf8 && !str_is_ascii(shown, strlen(shown))) {
		smtpd_reply(s, "553 5.6.7 Non-ASCII recipient address requires "
		    "SMTPUTF8");
		return;
	}
	if (tx->nrcpts >= smtpd.cfg->max_recipients) {
		rcpt_refuse(s, shown, "452 4.5.3 Too many recipients");
		return;
	}
	if (!addr_key(&a, key, sizeof(key))) {
		smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (s->checks == NULL || s->checks->rcpt == NULL) {
		rcpt_checked(s, &a, key, shown);
		return;
	}
	/* the checks first (a listed client, doc/forwarding.md "Checks") */
	c = xcalloc(1, sizeof(*c));
	c->addr = a;
	str_copy(c->key, key, sizeof(c->key));
	str_copy(c->shown, shown, sizeof(c->shown));
	tx->checking = c;
	s->in_route++;
	s->checks->rcpt(s, &c->addr, c->shown);
	s->in_route--;
	if (s->tx != NULL && rcpt_waits(s->tx) &&
	    s->state != ST_WAIT && s->state != ST_CLOSING)
		smtpd_enter_state(s, ST_WAIT);
}

/* smtpd_received_header - see smtpd.h */
char *
smtpd_received_header(const char *helo, const char *peer, bool esmtp,
    bool tls, bool utf8, const char *user, const char *hostname,
    const char *id, const char *tls_info, const char *rcpt, const char *date)
{
	char forclause[PATH_MAX_OCTETS + 16] = "", tlsc[160] = "";
	char authinfo[PATH_MAX_OCTETS + 40] = "";
	const char *proto;
	bool v6 = strchr(peer, ':') != NULL;

	if (rcpt != NULL)
		snprintf(forclause, sizeof(forclause), "\n\tfor <%s>", rcpt);
	if (tls)
		snprintf(tlsc, sizeof(tlsc), "\n\t(using %s)", tls_info);
	/* RFC 3848 and RFC 6531 7.7 protocol names */
	if (utf8)
		proto = tls ? (user ? "UTF8SMTPSA" : "UTF8SMTPS") : "UTF8SMTP";
	else if (!esmtp)
		proto = "SMTP";
	else
		proto = tls ? (user ? "ESMTPSA" : "ESMTPS") : "ESMTP";
	if (user != NULL)
		snprintf(authinfo, sizeof(authinfo), "\n\t(authenticated as %s)",
		    user);
	return xasprintf("Received: from %s ([%s%s])%s\n\tby %s (chamois) with %s "
	    "id %s%s%s;\n\t%s\n", helo, v6 ? "IPv6:" : "", peer, authinfo,
	    hostname, proto, id, tlsc, forclause, date);
}

/* received_header - our Received field for the session's transaction */
static char *
received_header(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;
	char date[64];

	rfc5322_date(date, sizeof(date), clock_now());
	return smtpd_received_header(s->helo, s->peer_text,
	    (s->flags & SF_EHLO) != 0, (s->flags & SF_TLS) != 0, tx->smtputf8,
	    (s->flags & SF_AUTH) ? s->user : NULL, smtpd.cfg->hostname, tx->id,
	    s->tls_info, tx->nrcpts == 1 ? tx->rcpts[0] : NULL, date);
}

/*
 * tx_keeps - the engine keeps the message: local mailboxes, a forward,
 * or filters that read it
 */
static bool
tx_keeps(const struct smtpd_session *s)
{
	const struct smtpd_tx *tx = s->tx;

	return tx->nmailboxes > 0 || tx->route->forwards ||
	    (s->filters != NULL && s->filter != NULL);
}

/* drop_field - header_filter's question, for the checks */
static bool
drop_field(void *arg, const char *field, size_t len)
{
	struct smtpd_session *s = arg;

	return s->checks->drop_field(s, field, len);
}

static void
cmd_data(struct smtpd_session *s, char *arg)
{
	struct smtpd_tx *tx = s->tx;
	char *rcv;

	if (tx->nrcpts == 0) {
		/* RFC 5321 3.3 allows 503 or 554 here; 503: out of sequence */
		smtpd_reply(s, "503 5.5.1 No valid recipients");
		return;
	}
	/* spool_max_size (doc/security.md "Spool space"): a body to keep needs room */
	if ((tx_keeps(s) || tx->route->keeps_body) && body_spool_full()) {
		log_info("%s smtp data refused reason=spool-full spool=%" PRIu64,
		    tx->id, body_spool_in_use());
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	data_scanner_init(&tx->scan);
	/* pointers into the session's own config, which outlives a SIGHUP */
	header_scanner_init(&tx->hdr, s->cfg->hostname);
	if (s->checks && s->checks->drop_field)
		header_filter_init(&tx->filt, drop_field, s);
	else
		tx->filt.done = true;	/* nothing is held back */
	body_init(&tx->body, s->cfg->queue_dir);
	tx->received = rcv = received_header(s);
	/* the engine keeps the message for local mailboxes and forwards */
	if (tx_keeps(s) && body_append(&tx->body, rcv, strlen(rcv)) == -1)
		tx->store_errno = errno;
	if (tx->route->data == NULL) {
		smtpd_enter_state(s, ST_DATA);
		smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
		return;
	}
	s->in_route++;
	tx->route->data(s);
	s->in_route--;
	if (s->tx != NULL && s->state != ST_DATA && s->state != ST_WAIT &&
	    s->state != ST_CLOSING)
		smtpd_enter_state(s, ST_WAIT);
}

/* smtpd_data_go - see route.h */
void
smtpd_data_go(struct smtpd_session *s)
{
	smtpd_loop_only();
	if (s->tx == NULL || s->tx->received == NULL || s->state == ST_DATA ||
	    s->state == ST_CLOSING)
		return;
	smtpd_enter_state(s, ST_DATA);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	if (!s->in_route)
		smtpd_resume(s);
}

/* is_loop - does a Delivered-To of the message name one of our recipients? */
static const char *
delivered_to_loop(const struct smtpd_tx *tx)
{
	for (size_t i = 0; i < tx->hdr.ndelivered; i++) {
		struct mailaddr a;
		char dk[PATH_MAX_OCTETS + 1];

		if (addr_parse(tx->hdr.delivered_to[i], &a, ADDR_F_UTF8) != ADDR_OK ||
		    !addr_key(&a, dk, sizeof(dk)))
			continue;
		for (size_t j = 0; j < tx->nmailboxes; j++) {
			struct mailaddr m;
			char mk[PATH_MAX_OCTETS + 1];

			if (addr_parse(tx->mailboxes[j], &m, ADDR_F_UTF8) == ADDR_OK &&
			    addr_key(&m, mk, sizeof(mk)) && strcmp(mk, dk) == 0)
				return tx->mailboxes[j];
		}
		for (size_t j = 0; j < tx->nrcpts; j++) {
			struct mailaddr r;
			char rk[PATH_MAX_OCTETS + 1];

			if (addr_parse(tx->rcpts[j], &r, ADDR_F_UTF8) == ADDR_OK &&
			    addr_key(&r, rk, sizeof(rk)) && strcmp(rk, dk) == 0)
				return tx->rcpts[j];
		}
	}
	return NULL;
}

/* forwarded_loop - our own Received already names a recipient */
static const char *
forwarded_loop(const struct smtpd_tx *tx)
{
	for (size_t i = 0; i < tx->hdr.nours; i++)
		for (size_t j = 0; j < tx->nrcpts; j++)
			if (strcasecmp(tx->hdr.ours_for[i], tx->rcpts[j]) == 0)
				return tx->rcpts[j];
	return NULL;
}

/*
 * route_end - the route's end, with the refusal (NULL: all is well);
 * later: the session waits (resume it when done here)
 */
static void
route_end(struct smtpd_session *s, const char *refusal, bool later)
{
	struct smtpd_tx *tx = s->tx;
	char line[PATH_MAX_OCTETS + 64];

	if (tx->route->end == NULL) {
		str_copy(line, refusal ? refusal : "554 5.3.0 No route takes this "
		    "message", sizeof(line));
		tx_outcomes(s, line);
		smtpd_reply(s, "%s", line);
		tx_end(s);
		if (later)
			smtpd_resume(s);
		return;
	}
	if (refusal != NULL)	/* our refusal: nothing contacted for it */
		str_copy(tx->relay, "none", sizeof(tx->relay));
	s->in_route++;
	tx->route->end(s, refusal);
	s->in_route--;
	/* the route answers later: nothing is read meanwhile */
	if (s->tx != NULL && s->state == ST_DATA)
		smtpd_enter_state(s, ST_DELIVER);
	else if (s->tx == NULL && later)
		smtpd_resume(s);	/* it answered at once, after a wait */
}

/*
 * filter_end - after the checks: the filters' verdict on the message
 * (smtpd_filter_answer), then the route's end; a refusal goes straight
 * to the route
 */
static void
filter_end(struct smtpd_session *s, const char *refusal, bool later)
{
	struct smtpd_tx *tx = s->tx;

	if (refusal != NULL || s->filters == NULL || s->filters->end == NULL) {
		route_end(s, refusal, later);
		return;
	}
	tx->filter_wait = FW_END;
	if (s->state == ST_DATA)
		smtpd_enter_state(s, ST_DELIVER);
	s->in_route++;
	s->filters->end(s, tx->route->forwards);
	s->in_route--;
}

/* head_commit - the header section as the filters left it: every copy gets it */
static void
head_commit(struct smtpd_tx *tx)
{
	if (tx->head != NULL && tx->store_errno == 0 && tx->body.edit == NULL &&
	    body_replace(&tx->body, strlen(tx->received), tx->head_old,
	    tx->head, tx->head_len) == -1)
		tx->store_errno = errno ? errno : EIO;
}

/* smtpd_filter_take_body - see route.h */
void
smtpd_filter_take_body(struct smtpd_session *s, struct body *out)
{
	smtpd_loop_only();
	head_commit(s->tx);
	smtpd_tx_take_body(s, out);
}

/* smtpd_filter_kept - see route.h */
void
smtpd_filter_kept(struct smtpd_session *s, const char *status,
    const char *fmt, ...)
{
	struct smtpd_tx *tx = s->tx;
	char line[REPLY_LINE_MAX];
	va_list ap;

	smtpd_loop_only();
	if (tx == NULL || tx->filter_wait != FW_END) {
		log_warnx("%s smtp filters kept no message", s->idstr);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tx->filter_wait = FW_NONE;
	tx->kept_status = status;
	str_copy(tx->relay, "none", sizeof(tx->relay));
	tx_outcomes(s, line);
	smtpd_reply(s, "%s", line);
	tx_end(s);
	if (!s->in_route)
		smtpd_resume(s);
}

/* smtpd_filter_answer - see route.h */
void
smtpd_filter_answer(struct smtpd_session *s, const char *refusal)
{
	struct smtpd_tx *tx = s->tx;
	struct smtpd_checking_rcpt *c;

	smtpd_loop_only();
	if (tx == NULL || tx->filter_wait == FW_NONE) {
		if (tx == NULL || tx->filtering == NULL) {
			log_warnx("%s smtp filters answered nothing waiting",
			    s->idstr);
			return;
		}
	}
	if (tx->filtering != NULL) {		/* a RCPT */
		c = tx->filtering;
		tx->filtering = NULL;
		if (refusal != NULL) {
			metrics_rcpt_refused(s->role, refusal[0]);
			rcpt_refuse(s, c->shown, refusal);
		} else
			rcpt_route(s, &c->addr, c->key, c->shown);
		free(c);
		if (s->tx != NULL && !rcpt_waits(s->tx)) {
			tx_state(s);
			if (!s->in_route)
				smtpd_resume(s);
		}
		return;
	}
	if (tx->filter_wait == FW_MAIL) {
		tx->filter_wait = FW_NONE;
		if (refusal != NULL) {
			smtpd_reply(s, "%s", refusal);
			tx_reset(s);
		} else {
			smtpd_reply(s, "250 2.1.0 Ok");
			tx_state(s);
		}
		if (!s->in_route)
			smtpd_resume(s);
		return;
	}
	tx->filter_wait = FW_NONE;
	if (refusal == NULL)
		head_commit(tx);
	route_end(s, refusal != NULL ? refusal : tx->store_errno ?
	    store_error_reply(tx->store_errno) : NULL, !s->in_route);
}

/* smtpd_check_done - see route.h */
void
smtpd_check_done(struct smtpd_session *s, const char *refusal,
    const char *ar_field)
{
	struct smtpd_tx *tx = s->tx;

	smtpd_loop_only();
	if (tx == NULL || !tx->check_end) {
		log_warnx("%s smtp checks answered no message", s->idstr);
		return;
	}
	tx->check_end = false;
	free(tx->auth_results);
	tx->auth_results = ar_field ? xstrdup(ar_field) : NULL;
	filter_end(s, refusal, !s->in_route);
}

/*
 * data_end - the final dot has arrived: the checks every route shares,
 * then the role's checks (when they pass), then the route's end (with
 * the refusal, if any)
 */
static void
data_end(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;
	const char *loop;
	char refusal[PATH_MAX_OCTETS + 64] = "";

	header_scan_end(&tx->hdr);
	log_info("%s smtp message size=%" PRIu64 " received=%u", tx->id,
	    tx->scan.octets, tx->hdr.received);
	if (tx->too_big)
		str_copy(refusal, "552 5.3.4 Message size exceeds fixed maximum "
		    "message size", sizeof(refusal));
	else if (tx->scan.long_line)
		str_copy(refusal, "554 5.6.0 Message refused: a line is longer "
		    "than 1000 octets (RFC 5321 4.5.3.1.6)", sizeof(refusal));
	else if (tx->store_errno) {
		if (tx->store_errno == ENOSPC)
			log_info("%s smtp message not kept reason=no-space spool=%"
			    PRIu64, tx->id, body_spool_in_use());
		str_copy(refusal, store_error_reply(tx->store_errno), sizeof(refusal));
	} else if (tx->hdr.received > RECEIVED_MAX)
		str_copy(refusal, "554 5.4.6 Too many Received headers: mail loop",
		    sizeof(refusal));
	else if ((loop = delivered_to_loop(tx)) != NULL ||
	    (loop = forwarded_loop(tx)) != NULL)
		bsnprintf(refusal, sizeof(refusal), "554 5.4.6 Mail loop: already "
		    "delivered to <%s>", loop);
	if (tx->filt.dropped)
		log_info("%s smtp header removed field=%s count=%u overlong=%u",
		    tx->id, HEADER_HOLD_NAME, tx->filt.dropped, tx->filt.overlong);
	if (refusal[0] != '\0' || s->checks == NULL || s->checks->end == NULL) {
		filter_end(s, refusal[0] ? refusal : NULL, false);
		return;
	}
	/* the checks' verdict first (smtpd_check_done); nothing is read meanwhile */
	tx->check_end = true;
	smtpd_enter_state(s, ST_DELIVER);
	s->in_route++;
	s->checks->end(s, tx->route->forwards && !tx->next_hop);
	s->in_route--;
}

/*
 * The routes' views of the transaction and the session (route.h).  Loop
 * only: a worker job gets copies, never these pointers.
 */
const char *
smtpd_tx_id(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx ? s->tx->id : NULL;
}

const char *
smtpd_tx_sender(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx ? s->tx->sender : NULL;
}

char *const *
smtpd_tx_rcpts(const struct smtpd_session *s, size_t *n)
{
	smtpd_loop_only();
	*n = s->tx ? s->tx->nrcpts : 0;
	return s->tx ? s->tx->rcpts : NULL;
}

const char *
smtpd_tx_dsn(const struct smtpd_session *s, enum dsn_ret *ret)
{
	smtpd_loop_only();
	*ret = s->tx ? s->tx->ret : DSN_RET_DEFAULT;
	return s->tx ? s->tx->envid : "";
}

const char *
smtpd_tx_rcpt_dsn(const struct smtpd_session *s, size_t i, unsigned *notify)
{
	smtpd_loop_only();
	if (s->tx == NULL || i >= s->tx->nrcpts) {
		*notify = 0;
		return "";
	}
	*notify = s->tx->notify[i];
	return s->tx->orcpt[i];
}

char *const *
smtpd_tx_mailboxes(const struct smtpd_session *s, size_t *n)
{
	smtpd_loop_only();
	*n = s->tx ? s->tx->nmailboxes : 0;
	return s->tx ? s->tx->mailboxes : NULL;
}

const char *
smtpd_tx_received(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx ? s->tx->received : NULL;
}

bool
smtpd_tx_smtputf8(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx && s->tx->smtputf8;
}

bool
smtpd_tx_body8bit(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx && s->tx->body8bit;
}

uint64_t
smtpd_tx_size_param(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx ? s->tx->size_param : 0;
}

bool
smtpd_tx_header_non_ascii(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx && s->tx->hdr.non_ascii;
}

bool
smtpd_tx_header_done(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx && s->tx->hdr.done;
}

int
smtpd_tx_store_errno(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx ? s->tx->store_errno : 0;
}

const char *
smtpd_tx_auth_results(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx ? s->tx->auth_results : NULL;
}

const struct body *
smtpd_tx_body(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx ? &s->tx->body : NULL;
}

const struct sockaddr *
smtpd_session_sockaddr(const struct smtpd_session *s, socklen_t *len)
{
	smtpd_loop_only();
	*len = s->peer.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	return (const struct sockaddr *)&s->peer;
}

const char *
smtpd_session_helo(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->helo;
}

void
smtpd_tx_take_body(struct smtpd_session *s, struct body *out)
{
	smtpd_loop_only();
	*out = s->tx->body;
	memset(&s->tx->body, 0, sizeof(s->tx->body));
	s->tx->body.spool_fd = -1;
}

/* smtpd_data_input - feed the DATA scanner from the input buffer */
void
smtpd_data_input(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct smtpd_tx *tx = s->tx;
	static char out[16384];
	/* the filter's output: the chunk, what it held, what the end lets go */
	static char kept[sizeof(out) + 2 * HEADER_HOLD_MAX];

	while (s->state == ST_DATA) {
		struct evbuffer_iovec v;
		enum data_status st;
		size_t used, olen, n;
		char *text = out;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return;
		n = v.iov_len < sizeof(out) ? v.iov_len : sizeof(out);
		used = data_scan(&tx->scan, v.iov_base, n, out, &olen, &st);
		if (!tx->hdr.done)
			header_scan(&tx->hdr, out, olen);
		if (s->checks && s->checks->body && !tx->too_big)
			s->checks->body(s, out, olen);
		if (!tx->filt.done) {
			/* held fields: every copy gets the filter's output */
			size_t k = header_filter(&tx->filt, out, olen, kept);

			if (st == DATA_END)
				k += header_filter_end(&tx->filt, kept + k);
			text = kept;
			olen = k;
		}
		if (tx->scan.octets > smtpd.cfg->max_message_size) {
			/* nothing is kept past the limit (doc/protocol.md,
			 * "Message content") */
			if (!tx->too_big)
				body_reset(&tx->body);
			tx->too_big = true;
		} else if (tx_keeps(s) && tx->store_errno == 0 &&
		    body_append(&tx->body, text, olen) == -1) {
			tx->store_errno = errno ? errno : EIO;
			body_reset(&tx->body);
		}
		evbuffer_drain(in, used);
		if (!tx->too_big && s->filters && s->filters->body) {
			s->in_route++;
			s->filters->body(s);
			s->in_route--;
		}
		if (!tx->too_big && tx->route->body) {
			s->in_route++;
			tx->route->body(s, text, olen);
			s->in_route--;
			/* a route cannot end the transaction under the scanner */
			if (s->tx != tx || s->state != ST_DATA)
				return;
		}
		switch (st) {
		case DATA_MORE:
			if (s->flags & SF_PAUSED)
				return;
			break;
		case DATA_END:
			data_end(s);
			return;
		case DATA_BARE_CR:
		case DATA_BARE_LF:
			log_info("%s smtp disconnect reason=bare-%s", tx->id,
			    st == DATA_BARE_CR ? "cr" : "lf");
			smtpd_reply(s, "521 5.5.2 Bare %s received; only CRLF ends "
			    "a line (RFC 5321 2.3.8); closing connection",
			    st == DATA_BARE_CR ? "CR" : "LF");
			smtpd_close_after_reply(s);
			return;
		case DATA_NUL:
			/* refused as bare CR/LF are (doc/protocol.md,
			 * "Message content"; doc/security.md) */
			log_info("%s smtp disconnect reason=nul", tx->id);
			smtpd_reply(s, "521 5.5.2 NUL octet received; a message may "
			    "not contain NUL (RFC 5322 4.1, RFC 2045 2.8); closing "
			    "connection");
			smtpd_close_after_reply(s);
			return;
		}
	}
}

/* smtpd_tx_text_offset - see route.h */
uint64_t
smtpd_tx_text_offset(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx && s->tx->received ? strlen(s->tx->received) : 0;
}

/* smtpd_tx_filtered - see route.h */
bool
smtpd_tx_filtered(const struct smtpd_session *s)
{
	smtpd_loop_only();
	return s->tx != NULL && s->filters != NULL && s->filter != NULL;
}

/*
 * head_load - the header section of the kept message, read once before
 * its first change (at most HEADER_EDIT_MAX octets, from the body's
 * memory or its spool's page cache)
 */
static bool
head_load(struct smtpd_tx *tx)
{
	uint64_t off;
	size_t hlen;
	bool toolong;
	char *buf;

	if (tx->head != NULL)
		return true;
	if (tx->received == NULL || tx->store_errno != 0)
		return false;
	off = strlen(tx->received);
	if ((buf = head_read(&tx->body, off, true, &hlen, &toolong)) == NULL)
		return false;
	tx->head = buf;
	tx->head_len = hlen;
	tx->head_old = hlen;
	return true;
}

/* header_edit - one change to the kept message's header section */
static bool
header_edit(struct smtpd_session *s, enum head_op op, unsigned index,
    const char *name, const char *value)
{
	struct smtpd_tx *tx = s->tx;
	char *h;
	size_t len;

	smtpd_loop_only();
	if (tx == NULL || !head_load(tx) ||
	    (h = head_edit(tx->head, tx->head_len, op, index, name, value,
	    &len)) == NULL)
		return false;
	free(tx->head);
	tx->head = h;
	tx->head_len = len;
	return true;
}

/* smtpd_tx_header_add - see route.h */
bool
smtpd_tx_header_add(struct smtpd_session *s, const char *name, const char *value)
{
	return header_edit(s, HEAD_ADD, 0, name, value);
}

/* smtpd_tx_header_insert - see route.h */
bool
smtpd_tx_header_insert(struct smtpd_session *s, unsigned index,
    const char *name, const char *value)
{
	return header_edit(s, HEAD_INSERT, index, name, value);
}

/* smtpd_tx_header_change - see route.h */
bool
smtpd_tx_header_change(struct smtpd_session *s, const char *name,
    unsigned index, const char *value)
{
	return header_edit(s, HEAD_CHANGE, index, name, value);
}

/* smtpd_tx_header_edited - see route.h */
const char *
smtpd_tx_header_edited(const struct smtpd_session *s, size_t *len,
    uint64_t *old_len)
{
	smtpd_loop_only();
	if (s->tx == NULL || s->tx->head == NULL)
		return NULL;
	*len = s->tx->head_len;
	*old_len = s->tx->head_old;
	return s->tx->head;
}
