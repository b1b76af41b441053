/*
 * engine.c - mx_checks, the checks of the mx role plugged into the
 * session engine (smtpd/route.h, struct smtpd_check_ops).
 *
 * At connect the client's address goes to the DNS block lists (dnsbl.c);
 * each RCPT is answered once their answers are in: a listed client gets
 * 554 5.7.1 at every RCPT but postmaster's (chamois.conf(5) "dnsbl").
 * Per-session state is a struct chk (smtpd_check_data); look-ups that
 * come back for a session that has gone are dropped by dnsbl.c.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/addr.h"
#include "../common/util.h"
#include "../smtpd/smtpd.h"
#include "dnsbl.h"
#include "engine.h"

static struct resolver *resolver;	/* the root's */

struct chk {
	uint64_t sid;
	struct dnsbl_client *bl;
	bool rcpt_waiting;		/* a RCPT waits for the block lists */
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
chk_free(struct smtpd_session *s)
{
	struct chk *k = smtpd_check_data(s);

	if (k == NULL)
		return;
	dnsbl_free(k->bl);
	free(k);
	smtpd_check_set_data(s, NULL);
}

const struct smtpd_check_ops mx_checks = {
	.connect = chk_connect,
	.rcpt = chk_rcpt,
	.free = chk_free,
};
