/*
 * parse.c - the arguments of MAIL, RCPT and HELO/EHLO.
 *
 * Pure functions over one command line: each returns NULL when the
 * arguments are good, or the whole reply to send when they are not, so
 * the unit tests can walk every case without a session.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/dsn.h"
#include "../common/limits.h"
#include "../common/util.h"
#include "smtpd.h"

/* path_arg - "FROM:" or "TO:" followed by a path; the path or NULL */
static const char *
path_arg(const char *arg, const char *keyword)
{
	size_t n = strlen(keyword);

	if (strncasecmp(arg, keyword, n) != 0)
		return NULL;
	arg += n;
	/* RFC 5321 has no space here, but many clients send one */
	while (*arg == ' ')
		arg++;
	return *arg == '<' ? arg : NULL;
}

static const char *
addr_status_reply(enum addr_status st, bool sender)
{
	switch (st) {
	case ADDR_TOOLONG:
		return sender ? "501 5.1.7 Sender address too long" :
		    "501 5.1.3 Recipient address too long";
	case ADDR_NONASCII:
		return "553 5.6.7 Non-ASCII address requires SMTPUTF8";
	default:
		return sender ? "501 5.1.7 Bad sender address syntax" :
		    "501 5.1.3 Bad recipient address syntax";
	}
}

static bool
addr_is_ascii(const struct mailaddr *a)
{
	return str_is_ascii(a->local, strlen(a->local)) &&
	    str_is_ascii(a->domain, strlen(a->domain));
}

/*
 * smtpd_parse_mail - "FROM:<path> [SIZE=n] [BODY=..] [SMTPUTF8] [AUTH=..]
 * [RET=..] [ENVID=..]"; AUTH= only where AUTH is offered (RFC 4954 5),
 * RET= and ENVID= only where DSN is (RFC 3461 4.3, 4.4)
 */
const char *
smtpd_parse_mail(char *arg, struct smtpd_mail_args *m, uint64_t max_size,
    bool auth_offered, bool dsn_offered)
{
	const char *p = path_arg(arg, "FROM:");
	enum addr_status st;
	char *tok, *save;

	memset(m, 0, sizeof(*m));
	if (p == NULL)
		return "501 5.5.4 Syntax: MAIL FROM:<address>";
	st = addr_parse_path(&p, &m->addr, ADDR_F_UTF8);
	if (st != ADDR_OK && st != ADDR_NULL)
		return addr_status_reply(st, true);
	m->null_sender = st == ADDR_NULL;
	if (*p != '\0' && *p != ' ')
		return "501 5.1.7 Bad sender address syntax";
	for (tok = strtok_r((char *)p, " ", &save); tok;
	    tok = strtok_r(NULL, " ", &save)) {
		if (str_has_prefix_ci(tok, "SIZE=")) {
			char *end;

			errno = 0;
			m->size = strtoull(tok + 5, &end, 10);
			if (!isdigit((unsigned char)tok[5]) || *end || errno ||
			    strlen(tok + 5) > 20)
				return "501 5.5.4 Bad SIZE parameter";
			/* RFC 1870 6.1: refuse at MAIL what cannot be taken */
			if (m->size > max_size)
				return "552 5.3.4 Message size exceeds fixed "
				    "maximum message size";
		} else if (strcasecmp(tok, "BODY=8BITMIME") == 0) {
			m->body8bit = true;
		} else if (strcasecmp(tok, "BODY=7BIT") == 0) {
			m->body8bit = false;
		} else if (strcasecmp(tok, "SMTPUTF8") == 0) {
			m->smtputf8 = true;
		} else if (auth_offered && str_has_prefix_ci(tok, "AUTH=")) {
			/* RFC 4954 5: accepted, and not trusted: we know who
			 * logged in */
		} else if (dsn_offered && str_has_prefix_ci(tok, "RET=")) {
			int r = dsn_ret_parse(tok + 4);

			/* RFC 3461 4.3: once, FULL or HDRS */
			if (r < 0 || m->ret != DSN_RET_DEFAULT)
				return "501 5.5.4 Bad RET parameter";
			m->ret = (enum dsn_ret)r;
		} else if (dsn_offered && str_has_prefix_ci(tok, "ENVID=")) {
			/* RFC 3461 4.4: once, xtext, 100 octets at most */
			if (m->envid[0] != '\0' ||
			    !dsn_envid_parse(tok + 6, m->envid, sizeof(m->envid)))
				return "501 5.5.4 Bad ENVID parameter";
		} else
			return "555 5.5.4 Unsupported parameter";
	}
	/* RFC 6531 3.4: a UTF-8 address needs SMTPUTF8 */
	if (!m->null_sender && !m->smtputf8 && !addr_is_ascii(&m->addr))
		return "553 5.6.7 Non-ASCII sender address requires SMTPUTF8";
	return NULL;
}

/*
 * smtpd_parse_rcpt - "TO:<path> [NOTIFY=..] [ORCPT=..]"; <postmaster>
 * without a domain is allowed (RFC 5321 4.1.1.3); the parameters only
 * where DSN is offered (dsn not NULL; RFC 3461 4.1, 4.2).  SMTPUTF8 is
 * checked by the caller, which knows the transaction.
 */
const char *
smtpd_parse_rcpt(char *arg, struct mailaddr *a, struct smtpd_rcpt_dsn *dsn)
{
	const char *p = path_arg(arg, "TO:");
	enum addr_status st;
	char *tok, *save;

	if (p == NULL)
		return "501 5.5.4 Syntax: RCPT TO:<address>";
	st = addr_parse_path(&p, a, ADDR_F_UTF8 | ADDR_F_NODOMAIN);
	if (st != ADDR_OK)
		return addr_status_reply(st == ADDR_NULL ? ADDR_SYNTAX : st, false);
	if (dsn != NULL)
		memset(dsn, 0, sizeof(*dsn));
	if (*p == ' ' && dsn == NULL)
		/* no RCPT parameter is advertised without DSN */
		return "555 5.5.4 Unsupported parameter";
	if (*p != '\0' && *p != ' ')
		return "501 5.1.3 Bad recipient address syntax";
	for (tok = strtok_r((char *)p, " ", &save); tok;
	    tok = strtok_r(NULL, " ", &save)) {
		if (str_has_prefix_ci(tok, "NOTIFY=")) {
			unsigned n = dsn_notify_parse(tok + 7);

			/* RFC 3461 4.1: once; NEVER alone */
			if (n == 0 || dsn->notify != 0)
				return "501 5.5.4 Bad NOTIFY parameter";
			dsn->notify = n;
		} else if (str_has_prefix_ci(tok, "ORCPT=")) {
			/* RFC 3461 4.2: once, addr-type;xtext, 500 octets */
			if (dsn->orcpt[0] != '\0' ||
			    !dsn_orcpt_parse(tok + 6, dsn->orcpt, sizeof(dsn->orcpt)))
				return "501 5.5.4 Bad ORCPT parameter";
		} else
			return "555 5.5.4 Unsupported parameter";
	}
	return NULL;
}

/* smtpd_parse_helo - the first word of HELO/EHLO, printable ASCII */
bool
smtpd_parse_helo(const char *arg, char *out, size_t size)
{
	size_t n = strcspn(arg, " ");

	if (n == 0 || n > HELO_MAX || n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)arg[i] <= 0x20 || (unsigned char)arg[i] >= 0x7f)
			return false;
	memcpy(out, arg, n);
	out[n] = '\0';
	return true;
}
