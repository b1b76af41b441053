/*
 * engine.c - mx_checks, the checks of the mx role plugged into the
 * session engine (smtpd/route.h, struct smtpd_check_ops;
 * doc/forwarding.md "Checks").
 *
 * At connect the client's address goes to the DNS block lists (dnsbl.c);
 * each RCPT is answered once their answers are in: a listed client gets
 * 554 5.7.1 at every RCPT but postmaster's (chamois.conf(5) "dnsbl").
 * At MAIL the message's checks start (checks.h: SPF at once), every chunk
 * of the message goes to them as the client sent it, and at the final dot
 * their results give the Authentication-Results field (RFC 8601) and
 * auth_policy's verdict, which smtpd_check_done hands the route.  Every
 * Authentication-Results field of the message that names our hostname
 * is removed from every copy (drop_field, RFC 8601 5).  Per-session
 * state is a struct chk (smtpd_check_data); look-ups that come back for
 * a session that has gone are dropped by dnsbl.c, and auth_check_free
 * cancels a message's checks.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/addr.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../smtpd/smtpd.h"
#include "checks.h"
#include "dnsbl.h"
#include "engine.h"

static struct resolver *resolver;	/* the root's */

struct chk {
	uint64_t sid;
	struct dnsbl_client *bl;
	bool rcpt_waiting;		/* a RCPT waits for the block lists */
	struct auth_check *ac;		/* the message's, MAIL to the end */
	bool forwarded;			/* a copy goes to another server */
};

void
mx_checks_init(struct resolver *r)
{
	resolver = r;
}

/* is_postmaster - postmaster@ a local domain, or <postmaster> (RFC 5321 4.5.1) */
static bool
is_postmaster(const struct config *c, const struct mailaddr *a)
{
	char key[DOMAIN_MAX + 1];

	if (strcasecmp(a->local, "postmaster") != 0)
		return false;
	return a->domain[0] == '\0' ||
	    (addr_domain_key(a->domain, key, sizeof(key)) &&
	    config_is_local_domain(c, key));
}

/* bl_verdict - the block lists' answer to a RCPT (they are all in) */
static void
bl_verdict(struct smtpd_session *s, struct chk *k)
{
	const char *zone = dnsbl_listed(k->bl);
	char reply[DOMAIN_MAX + 128];

	if (zone == NULL) {
		smtpd_check_rcpt(s, NULL);
		return;
	}
	bsnprintf(reply, sizeof(reply), "554 5.7.1 Service unavailable; client "
	    "[%s] listed by %s", smtpd_session_peer(s), zone);
	smtpd_check_rcpt(s, reply);
}

/* bl_done - every block list answered */
static void
bl_done(void *arg)
{
	struct chk *k = arg;
	struct smtpd_session *s;

	if (!k->rcpt_waiting || (s = smtpd_session_find(k->sid)) == NULL)
		return;
	k->rcpt_waiting = false;
	bl_verdict(s, k);
}

static void
chk_connect(struct smtpd_session *s)
{
	struct chk *k = xcalloc(1, sizeof(*k));
	const struct sockaddr *sa;
	socklen_t salen;

	k->sid = smtpd_session_id(s);
	smtpd_check_set_data(s, k);
	sa = smtpd_session_sockaddr(s, &salen);
	k->bl = dnsbl_start(resolver, smtpd_session_config(s), sa,
	    smtpd_session_idstr(s), bl_done, k);
}

static void
chk_rcpt(struct smtpd_session *s, const struct mailaddr *a, const char *shown)
{
	struct chk *k = smtpd_check_data(s);

	if (k == NULL || k->bl == NULL ||
	    is_postmaster(smtpd_session_config(s), a)) {
		smtpd_check_rcpt(s, NULL);
		return;
	}
	if (!dnsbl_done(k->bl)) {
		k->rcpt_waiting = true;		/* bl_done answers */
		return;
	}
	bl_verdict(s, k);
}

static void
chk_mail(struct smtpd_session *s)
{
	struct chk *k = smtpd_check_data(s);
	struct auth_check_params p;

	if (k == NULL)
		return;
	auth_check_free(k->ac);
	memset(&p, 0, sizeof(p));
	p.client = smtpd_session_sockaddr(s, &p.clientlen);
	p.helo = smtpd_session_helo(s);
	p.mail_from = smtpd_tx_sender(s);
	p.hostname = smtpd_session_config(s)->hostname;
	k->ac = auth_check_start(resolver, &p);
}

static void
chk_body(struct smtpd_session *s, const char *text, size_t len)
{
	struct chk *k = smtpd_check_data(s);

	if (k != NULL && k->ac != NULL)
		auth_check_message(k->ac, text, len);
}

/* chk_drop_field - an Authentication-Results field naming us goes */
static bool
chk_drop_field(struct smtpd_session *s, const char *f, size_t len)
{
	return auth_results_names(f, len, smtpd_session_config(s)->hostname);
}

/* log_results - one line of what the checks found (doc/chamoisd.8 LOGGING) */
static void
log_results(struct smtpd_session *s, const struct auth_results *r,
    const char *verdict)
{
	char f1[LOG_ESC(DOMAIN_MAX)], f2[LOG_ESC(DOMAIN_MAX)];
	char dk[AUTH_DKIM_MAX * (DOMAIN_MAX + 16) + 8] = "";
	char t[LOG_ESC(REPLY_LINE_MAX)];
	size_t o = 0;

	for (size_t i = 0; i < r->ndkim && o + 1 < sizeof(dk); i++) {
		int n = snprintf(dk + o, sizeof(dk) - o, "%s%s:%s", i ? "," : "",
		    auth_res_name(r->dkim[i].result), r->dkim[i].d);

		if (n < 0)
			break;
		o += (size_t)n;
	}
	log_info("%s smtp checks spf=%s spf_domain=%s dkim=%s dmarc=%s "
	    "from_domain=%s result=\"%s\"", smtpd_tx_id(s),
	    auth_res_name(r->spf), log_field(f1, sizeof(f1), r->spf_domain),
	    r->ndkim ? dk : "none", auth_res_name(r->dmarc),
	    log_field(f2, sizeof(f2), r->from_domain),
	    log_text(t, sizeof(t), verdict));
}

/* verdict - the message's checks are done: its field, and the policy */
static void
verdict(void *arg, const struct auth_results *r)
{
	struct chk *k = arg;
	struct smtpd_session *s = smtpd_session_find(k->sid);
	const struct config *c;
	char reply[REPLY_LINE_MAX], *field;
	bool refused;

	if (s == NULL)
		return;
	c = smtpd_session_config(s);
	field = auth_results_field(r, c->hostname);
	refused = auth_policy(r, c, smtpd_tx_sender(s), k->forwarded, reply,
	    sizeof(reply));
	log_results(s, r, refused ? reply : "accepted");
	/* the transaction may end inside: nothing of it after this call */
	smtpd_check_done(s, refused ? reply : NULL, field);
	free(field);
}

static void
chk_end(struct smtpd_session *s, bool forwarded)
{
	struct chk *k = smtpd_check_data(s);

	if (k == NULL || k->ac == NULL) {
		smtpd_check_done(s, NULL, NULL);
		return;
	}
	k->forwarded = forwarded;
	auth_check_finish(k->ac, verdict, k);
}

static void
chk_rset(struct smtpd_session *s)
{
	struct chk *k = smtpd_check_data(s);

	if (k != NULL) {
		auth_check_free(k->ac);
		k->ac = NULL;
	}
}

static void
chk_free(struct smtpd_session *s)
{
	struct chk *k = smtpd_check_data(s);

	if (k == NULL)
		return;
	auth_check_free(k->ac);
	dnsbl_free(k->bl);
	free(k);
	smtpd_check_set_data(s, NULL);
}

const struct smtpd_check_ops mx_checks = {
	.connect = chk_connect,
	.mail = chk_mail,
	.rcpt = chk_rcpt,
	.body = chk_body,
	.drop_field = chk_drop_field,
	.end = chk_end,
	.rset = chk_rset,
	.free = chk_free,
};
