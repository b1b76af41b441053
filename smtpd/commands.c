/*
 * commands.c - the ESMTP command table and what each command does.
 *
 * smtpd_cmds[] names, for every verb, the states it is allowed in and its
 * handler; smtpd_command() applies the table, so a handler checks only its
 * own arguments.  Handlers answer through smtpd_reply() and never touch
 * the connection.  The end of DATA hands the message to maildir/ on a
 * worker thread and answers when the copies are on disk.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "../common/limits.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "../forward/forward.h"
#include "../maildir/maildir.h"
#include "../queue/queue.h"
#include "../submission/submission.h"
#include "smtpd.h"

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

static void head_flush(struct smtpd_session *);
static void queue_message(struct smtpd_session *);
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

void
smtpd_greet(struct smtpd_session *s)
{
	smtpd_reply(s, "220 %s ESMTP chamois", smtpd.cfg->hostname);
}

static void
tx_reset(struct smtpd_session *s)
{
	/* a forwarded RCPT may have opened a remote transaction, even a refused one */
	if (s->tx)
		fwd_rset(s);
	smtpd_tx_free(s->tx);
	s->tx = NULL;
	if (s->state != ST_CLOSING)
		smtpd_enter_state(s, s->helo[0] ? ST_HELO : ST_CONNECTED);
}

/* smtpd_tx_end - after a transaction's last reply: go on, or stop (SIGTERM) */
void
smtpd_tx_end(struct smtpd_session *s)
{
	tx_reset(s);
	if ((s->flags & SF_STOP) && s->state != ST_CLOSING) {
		smtpd_reply(s, "421 4.3.2 %s Service shutting down",
		    smtpd.cfg->hostname);
		smtpd_close_after_reply(s);
	}
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
	snprintf(first, sizeof(first), "%s Hello %s [%s]", smtpd.cfg->hostname,
	    s->helo, s->peer_text);
	snprintf(size, sizeof(size), "SIZE %" PRIu64, smtpd.cfg->max_message_size);
	lines[n++] = first;
	lines[n++] = "PIPELINING";
	lines[n++] = size;
	lines[n++] = "8BITMIME";
	lines[n++] = "ENHANCEDSTATUSCODES";
	if (tls_available(s))
		lines[n++] = "STARTTLS";
	if ((auth = sub_ehlo_auth(s)) != NULL)
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
	sub_cmd_auth(s, arg);
}

static void
cmd_rset(struct smtpd_session *s, char *arg)
{
	tx_reset(s);
	smtpd_reply(s, "250 2.0.0 Ok");
	if (s->flags & SF_STOP)
		smtpd_tx_end(s);
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
	    s->role != ROLE_MX)) != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	if (s->role != ROLE_MX) {
		char sender[PATH_MAX_OCTETS + 1] = "";

		if (!m.null_sender)
			addr_format(&m.addr, sender, sizeof(sender));
		if ((err = sub_mail_check(s, sender)) != NULL) {
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
	s->tx = tx;
	smtpd_enter_state(s, ST_MAIL);
	{
		char f1[LOG_ESC(PATH_MAX_OCTETS)], f2[LOG_ESC(HELO_MAX)];

		log_info("%s smtp mail from=<%s> helo=%s", tx->id,
		    log_field(f1, sizeof(f1), tx->sender),
		    log_field(f2, sizeof(f2), s->helo));
	}
	smtpd_reply(s, "250 2.1.0 Ok");
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

/* smtpd_tx_add_rcpt - an accepted recipient joins the transaction */
void
smtpd_tx_add_rcpt(struct smtpd_session *s, const char *shown,
    const char *route_key, const struct expansion *exp)
{
	struct smtpd_tx *tx = s->tx;
	char f1[LOG_ESC(PATH_MAX_OCTETS)], f2[LOG_ESC(DOMAIN_MAX + 8)];

	tx->route = exp->external ? ROUTE_FORWARD : ROUTE_LOCAL;
	str_copy(tx->route_key, route_key, sizeof(tx->route_key));
	for (size_t i = 0; i < exp->nmailboxes; i++)
		tx_add_mailbox(tx, exp->mailboxes[i]);
	tx->rcpts = xreallocarray(tx->rcpts, tx->nrcpts + 1, sizeof(char *));
	tx->rcpts[tx->nrcpts++] = xstrdup(shown);
	log_info("%s smtp rcpt to=<%s> result=accepted route=%s", tx->id,
	    log_field(f1, sizeof(f1), shown), log_field(f2, sizeof(f2), route_key));
}

/* route_of - the route key of an expansion: "local" or "forward:DOMAIN" */
static void
route_of(const struct expansion *exp, char *key, size_t size)
{
	const char *at;
	char dom[DOMAIN_MAX + 1] = "";

	if (exp->external == NULL) {
		str_copy(key, "local", size);
		return;
	}
	if ((at = strrchr(exp->external, '@')) != NULL)
		addr_domain_key(at + 1, dom, sizeof(dom));
	bsnprintf(key, size, "forward:%s", dom);
}

/*
 * srs_rcpt - an SRS0 address of ours: the bounce of a forwarded message,
 * which goes back to the original sender, synchronously, from <> only.
 * Returns NULL and fills exp, or the refusal.
 */
static const char *
srs_rcpt(const struct smtpd_tx *tx, const struct mailaddr *a,
    struct expansion *exp)
{
	char orig[PATH_MAX_OCTETS + 1];

	memset(exp, 0, sizeof(*exp));
	switch (srs_reverse(&smtpd.srs, a->local, time(NULL), orig, sizeof(orig))) {
	case SRS_OK:
		break;
	case SRS_NOT_SRS:
		return NULL;
	default:
		return "550 5.1.1 Invalid or expired SRS address";
	}
	if (tx->sender[0] != '\0')
		return "550 5.7.1 This address only takes delivery status "
		    "notifications (MAIL FROM:<>)";
	exp->external = xstrdup(orig);
	return NULL;
}

static void
cmd_rcpt(struct smtpd_session *s, char *arg)
{
	struct smtpd_tx *tx = s->tx;
	struct mailaddr a;
	struct expansion exp;
	char key[PATH_MAX_OCTETS + 1], rkey[sizeof(tx->route_key)];
	char shown[PATH_MAX_OCTETS + 1];
	const char *err;

	memset(&exp, 0, sizeof(exp));
	if ((err = smtpd_parse_rcpt(arg, &a)) != NULL) {
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
		smtpd_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (!addr_key(&a, key, sizeof(key))) {
		smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (s->role != ROLE_MX) {
		/* SPEC 4: a logged-in user may send to anyone; the queue delivers */
		smtpd_tx_add_rcpt(s, shown, "queue", &exp);
		tx->route = ROUTE_QUEUE;
		smtpd_enter_state(s, ST_RCPT);
		smtpd_reply(s, "250 2.1.5 Ok");
		return;
	}
	if (a.domain[0] != '\0') {
		const char *at = strrchr(key, '@');

		if (a.domain[0] == '[' || !config_is_local_domain(smtpd.cfg, at + 1)) {
			smtpd_reply(s, "554 5.7.1 <%s>: Relay access denied", shown);
			return;
		}
	}
	if (a.domain[0] != '\0' && (err = srs_rcpt(tx, &a, &exp)) != NULL) {
		smtpd_reply(s, "%s <%s>", err, shown);
		return;
	}
	if (exp.external == NULL && !tables_resolve(smtpd.tables, key, &exp)) {
		smtpd_reply(s, "550 5.1.1 <%s>: Recipient address rejected: "
		    "User unknown", shown);
		return;
	}
	route_of(&exp, rkey, sizeof(rkey));
	if (tx->route != ROUTE_NONE && strcmp(rkey, tx->route_key) != 0) {
		/* SPEC 4: one route per transaction */
		expansion_free(&exp);
		smtpd_reply(s, "452 4.5.3 send this recipient in a separate "
		    "transaction");
		return;
	}
	if (exp.external != NULL) {
		fwd_rcpt(s, shown, &exp);
		expansion_free(&exp);
		return;
	}
	smtpd_tx_add_rcpt(s, shown, rkey, &exp);
	expansion_free(&exp);
	smtpd_enter_state(s, ST_RCPT);
	smtpd_reply(s, "250 2.1.5 Ok");
}

/* received_header - RFC 5321 4.4 trace field, LF line ends */
static char *
received_header(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;
	char date[64], forclause[PATH_MAX_OCTETS + 16] = "", tls[160] = "";
	char authinfo[PATH_MAX_OCTETS + 40] = "";
	const char *proto;
	bool v6 = strchr(s->peer_text, ':') != NULL;

	rfc5322_date(date, sizeof(date), time(NULL));
	if (tx->nrcpts == 1)
		snprintf(forclause, sizeof(forclause), "\n\tfor <%s>", tx->rcpts[0]);
	if (s->flags & SF_TLS)
		snprintf(tls, sizeof(tls), "\n\t(using %s)", s->tls_info);
	/* RFC 3848 and RFC 6531 7.7 protocol names */
	if (tx->smtputf8)
		proto = (s->flags & SF_TLS) ? ((s->flags & SF_AUTH) ?
		    "UTF8SMTPSA" : "UTF8SMTPS") : "UTF8SMTP";
	else if (!(s->flags & SF_EHLO))
		proto = "SMTP";
	else
		proto = (s->flags & SF_TLS) ? ((s->flags & SF_AUTH) ?
		    "ESMTPSA" : "ESMTPS") : "ESMTP";
	if (s->flags & SF_AUTH)
		snprintf(authinfo, sizeof(authinfo), "\n\t(authenticated as %s)",
		    s->user);
	return xasprintf("Received: from %s ([%s%s])%s\n\tby %s (chamois) with %s "
	    "id %s%s%s;\n\t%s\n", s->helo, v6 ? "IPv6:" : "", s->peer_text,
	    authinfo, smtpd.cfg->hostname, proto, tx->id, tls, forclause, date);
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
	if ((tx->nmailboxes > 0 || tx->route == ROUTE_QUEUE) && body_spool_full()) {
		log_info("%s smtp data refused reason=spool-full spool=%" PRIu64,
		    tx->id, body_spool_in_use());
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	data_scanner_init(&tx->scan);
	/* pointers into the session's own config, which outlives a SIGHUP */
	header_scanner_init(&tx->hdr, s->cfg->hostname);
	body_init(&tx->body, s->cfg->queue_dir);
	tx->received = rcv = received_header(s);
	/* the body is kept only for local copies; forwarding streams it */
	if (tx->nmailboxes > 0 && body_append(&tx->body, rcv, strlen(rcv)) == -1)
		tx->store_errno = errno;
	/* the queue's messages get Message-ID and Date when the header lacks them */
	if (tx->route == ROUTE_QUEUE && (tx->head = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	if (tx->route == ROUTE_FORWARD) {
		fwd_data(s);
		return;
	}
	smtpd_enter_state(s, ST_DATA);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
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

static void
maildir_work(void *arg)
{
	struct smtpd_session *s = arg;

	maildir_deliver(s->tx->delivery);
}

static void
maildir_done(void *arg)
{
	struct smtpd_session *s = arg;
	struct smtpd_tx *tx = s->tx;
	struct maildir_delivery *d = tx->delivery;

	if (d->result == RES_OK) {
		for (size_t i = 0; i < d->ncopies; i++)
			log_info("%s delivery mailbox=%s result=delivered path=%s",
			    tx->id, d->copies[i].mailbox, d->copies[i].path);
	} else {
		errno = d->error;
		log_warn("%s delivery result=deferred step=%s", tx->id,
		    d->failed_step ? d->failed_step : "?");
	}
	if (!smtpd_session_job_done(s))
		return;
	if (d->result == RES_OK)
		smtpd_reply(s, "250 2.0.0 Ok: delivered as %s", tx->id);
	else
		smtpd_reply(s, "%s", maildir_reply(d->error));
	smtpd_tx_end(s);
	smtpd_resume(s);
}

/* smtpd_local_copies - the Maildir copies of this transaction */
struct maildir_delivery *
smtpd_local_copies(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;
	struct maildir_delivery *d = xcalloc(1, sizeof(*d));

	d->root = s->cfg->maildir_root;
	d->hostname = s->cfg->hostname;
	d->body = &tx->body;
	d->ncopies = tx->nmailboxes;
	d->copies = xcalloc(d->ncopies, sizeof(*d->copies));
	for (size_t i = 0; i < d->ncopies; i++) {
		d->copies[i].mailbox = tx->mailboxes[i];
		d->copies[i].prefix = xasprintf("Return-Path: <%s>\n"
		    "Delivered-To: %s\n", tx->sender, tx->mailboxes[i]);
	}
	return d;
}

/* smtpd_deliver_job - storage work for this session on a worker thread */
void
smtpd_deliver_job(struct smtpd_session *s, void (*work)(void *),
    void (*done)(void *))
{
	s->job_pending = true;
	worker_submit(work, done, s);
}

static void
deliver_local(struct smtpd_session *s)
{
	s->tx->delivery = smtpd_local_copies(s);
	smtpd_enter_state(s, ST_DELIVER);
	smtpd_deliver_job(s, maildir_work, maildir_done);
}

/* data_end - the final dot has arrived: every check, then delivery */
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
		str_copy(refusal, maildir_reply(tx->store_errno), sizeof(refusal));
	} else if (tx->hdr.received > RECEIVED_MAX)
		str_copy(refusal, "554 5.4.6 Too many Received headers: mail loop",
		    sizeof(refusal));
	else if ((loop = delivered_to_loop(tx)) != NULL ||
	    (loop = forwarded_loop(tx)) != NULL)
		bsnprintf(refusal, sizeof(refusal), "554 5.4.6 Mail loop: already "
		    "delivered to <%s>", loop);
	if (tx->route == ROUTE_FORWARD) {
		fwd_end(s, refusal[0] ? refusal : NULL);
		return;
	}
	if (tx->route == ROUTE_QUEUE && refusal[0] == '\0') {
		if (tx->head)
			head_flush(s);
		if (tx->store_errno)
			str_copy(refusal, maildir_reply(tx->store_errno), sizeof(refusal));
		else {
			queue_message(s);
			return;
		}
	}
	if (refusal[0]) {
		smtpd_reply(s, "%s", refusal);
		smtpd_tx_end(s);
		return;
	}
	deliver_local(s);
}

/*
 * head_flush - the header section of a message for the queue is complete
 * (or too long to wait for): our Received, Message-ID and Date when
 * missing (RFC 5322 3.6; SPEC 4 submission), then what was read so far
 */
#define QUEUE_HEAD_MAX	(256 * 1024)

static void
head_flush(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;
	size_t len = evbuffer_get_length(tx->head), flen;
	char *fixed;

	fixed = queue_fix_headers((const char *)evbuffer_pullup(tx->head, -1), len,
	    smtpd.cfg->hostname, time(NULL), &flen);
	if (tx->store_errno == 0 &&
	    (body_append(&tx->body, tx->received, strlen(tx->received)) == -1 ||
	    body_append(&tx->body, fixed, flen) == -1))
		tx->store_errno = errno ? errno : EIO;
	free(fixed);
	evbuffer_free(tx->head);
	tx->head = NULL;
}

/* queue_body - message text for the queue route */
static void
queue_body(struct smtpd_session *s, const char *text, size_t len)
{
	struct smtpd_tx *tx = s->tx;

	if (tx->head != NULL) {
		evbuffer_add(tx->head, text, len);
		if (tx->hdr.done || evbuffer_get_length(tx->head) > QUEUE_HEAD_MAX)
			head_flush(s);
		return;
	}
	if (tx->store_errno == 0 && body_append(&tx->body, text, len) == -1) {
		tx->store_errno = errno ? errno : EIO;
		body_reset(&tx->body);
	}
}

static void
queued(void *arg, int error, const char *id)
{
	struct smtpd_session *s = arg;

	if (!smtpd_session_job_done(s))
		return;
	if (error == 0)
		smtpd_reply(s, "250 2.0.0 Ok: queued as %s", id);
	else
		smtpd_reply(s, "%s", maildir_reply(error));
	smtpd_tx_end(s);
	smtpd_resume(s);
}

/* queue_message - hand the transaction to the queue; 250 once it is durable */
static void
queue_message(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	struct body *b = xmalloc(sizeof(*b));
	char f1[LOG_ESC(256)], f2[LOG_ESC(PATH_MAX_OCTETS)];

	m->sender = xstrdup(tx->sender);
	m->owner = xstrdup(s->user ? s->user : "");
	m->uid = -1;
	m->smtputf8 = tx->smtputf8 || tx->hdr.non_ascii;
	m->body8bit = tx->body8bit;
	m->nrcpts = tx->nrcpts;
	m->rcpts = xcalloc(tx->nrcpts, sizeof(*m->rcpts));
	for (size_t i = 0; i < tx->nrcpts; i++)
		m->rcpts[i].orig = xstrdup(tx->rcpts[i]);
	*b = tx->body;			/* the queue takes the body over */
	memset(&tx->body, 0, sizeof(tx->body));
	tx->body.spool_fd = -1;
	smtpd_enter_state(s, ST_DELIVER);
	s->job_pending = true;
	log_info("%s submission queue user=%s from=<%s> rcpts=%zu", tx->id,
	    log_field(f1, sizeof(f1), s->user ? s->user : "-"),
	    log_field(f2, sizeof(f2), tx->sender), tx->nrcpts);
	queue_submit(m, b, queued, s);
}

/* smtpd_data_input - feed the DATA scanner from the input buffer */
void
smtpd_data_input(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct smtpd_tx *tx = s->tx;
	static char out[16384];

	while (s->state == ST_DATA) {
		struct evbuffer_iovec v;
		enum data_status st;
		size_t used, olen, n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return;
		n = v.iov_len < sizeof(out) ? v.iov_len : sizeof(out);
		used = data_scan(&tx->scan, v.iov_base, n, out, &olen, &st);
		if (!tx->hdr.done)
			header_scan(&tx->hdr, out, olen);
		if (tx->scan.octets > smtpd.cfg->max_message_size) {
			/* SPEC 4: nothing is kept past the limit */
			if (!tx->too_big)
				body_reset(&tx->body);
			tx->too_big = true;
		} else if (tx->route == ROUTE_QUEUE) {
			queue_body(s, out, olen);
		} else {
			if (tx->nmailboxes > 0 && tx->store_errno == 0 &&
			    body_append(&tx->body, out, olen) == -1) {
				tx->store_errno = errno ? errno : EIO;
				body_reset(&tx->body);
			}
			if (tx->route == ROUTE_FORWARD)
				fwd_body(s, out, olen);
		}
		evbuffer_drain(in, used);
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
			/* SPEC 4: refused as bare CR/LF are (doc/security.md) */
			log_info("%s smtp disconnect reason=nul", tx->id);
			smtpd_reply(s, "521 5.5.2 NUL octet received; a message may "
			    "not contain NUL (RFC 5322 4.1, RFC 2045 2.8); closing "
			    "connection");
			smtpd_close_after_reply(s);
			return;
		}
	}
}
