/*
 * router.c - the mx role's router, and forward/'s state.
 *
 * forward_mx_router() is what the session engine (smtpd/commands.c)
 * asks for every RCPT on the mx role (smtpd_set_router): an address
 * outside our domains is refused (no relay), an SRS address of ours
 * (the bounce of a forwarded message) goes back to its original sender
 * through forwarding, from <> only (doc/forwarding.md, SRS), and a table
 * address goes to local_route (local/route.c) when it has local
 * mailboxes only, or to forward_route (proxy.c) when it has an external
 * target.  forward_init() and forward_configure() keep what the
 * composition root gives forwarding (doc/forwarding.md).
 */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/hmap.h"
#include "../common/util.h"
#include "../local/lmtp.h"
#include "../local/local.h"
#include "../smtpd/smtpd.h"
#include "forward.h"
#include "state.h"

struct forward_state fwd_g;

static void
add_self(const struct sockaddr *sa, unsigned port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (sa->sa_family == AF_INET) {
		memcpy(&ss, sa, sizeof(struct sockaddr_in));
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(&ss, sa, sizeof(struct sockaddr_in6));
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	} else
		return;
	fwd_g.self = xreallocarray(fwd_g.self, fwd_g.nself + 1, sizeof(ss));
	fwd_g.self[fwd_g.nself++] = ss;
}

/*
 * find_self - the addresses our mx role answers on, so that forwarding
 * can refuse a target whose MX is this server (a wildcard listen address
 * stands for every address of the machine)
 */
static void
find_self(const struct config *c)
{
	struct ifaddrs *ifs = NULL;

	getifaddrs(&ifs);
	for (size_t i = 0; i < c->nlistens; i++) {
		const struct listen_addr *la = &c->listens[i];
		const struct sockaddr *sa = (const struct sockaddr *)&la->ss;
		unsigned port;
		bool any;

		if (la->role != ROLE_MX)
			continue;
		if (sa->sa_family == AF_INET) {
			port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
			any = ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
			    htonl(INADDR_ANY);
		} else {
			port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
			any = IN6_IS_ADDR_UNSPECIFIED(
			    &((const struct sockaddr_in6 *)sa)->sin6_addr);
		}
		if (!any) {
			add_self(sa, port);
			continue;
		}
		for (struct ifaddrs *ifa = ifs; ifa; ifa = ifa->ifa_next)
			if (ifa->ifa_addr && ifa->ifa_addr->sa_family == sa->sa_family)
				add_self(ifa->ifa_addr, port);
	}
	if (ifs)
		freeifaddrs(ifs);
}

int
forward_init(struct event_base *base, const struct config *c,
    struct resolver *resolver, SSL_CTX *tls_client, struct sts *sts, char *err,
    size_t errsize)
{
	char e[512];

	fwd_g.base = base;
	fwd_g.resolver = resolver;
	fwd_g.tls_client = tls_client;
	fwd_g.sts = sts;
	if (srs_init(&fwd_g.srs, c->srs_secrets, c->nsrs_secrets, c->queue_dir,
	    e, sizeof(e)) == -1) {
		snprintf(err, errsize, "%s:%d: srs_secret: %s", c->path,
		    config_line(c, "srs_secret"), e);
		return -1;
	}
	find_self(c);
	fwd_g.per_domain = hmap_new();
	fwd_g.per_client = hmap_new();
	forward_configure((struct config *)c);
	return 0;
}

void
forward_configure(struct config *c)
{
	struct config *old = fwd_g.cfg;

	fwd_g.cfg = config_ref(c);
	if (old)
		config_free(old);
}

void
forward_shutdown(void)
{
	hmap_free(fwd_g.per_domain, NULL);
	hmap_free(fwd_g.per_client, NULL);
	fwd_g.per_domain = fwd_g.per_client = NULL;
	srs_free(&fwd_g.srs);
	free(fwd_g.self);
	fwd_g.self = NULL;
	fwd_g.nself = 0;
	if (fwd_g.cfg)
		config_free(fwd_g.cfg);
	fwd_g.cfg = NULL;
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

/* routed - addr's domain has a route line: its next hop takes the copy */
static bool
routed(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char dom[DOMAIN_MAX + 1];

	return at != NULL && at[1] != '[' && addr_domain_key(at + 1, dom,
	    sizeof(dom)) && config_route(fwd_g.cfg, dom) != NULL;
}

/*
 * srs_rcpt - an SRS0 address of ours: the bounce of a forwarded message,
 * which goes back to the original sender, synchronously, from <> only.
 * Returns NULL and fills exp, or the refusal.
 */
static const char *
srs_rcpt(const char *sender, const struct mailaddr *a, struct expansion *exp)
{
	char orig[PATH_MAX_OCTETS + 1];

	memset(exp, 0, sizeof(*exp));
	switch (srs_reverse(&fwd_g.srs, a->local, clock_now(), orig, sizeof(orig))) {
	case SRS_OK:
		break;
	case SRS_NOT_SRS:
		return NULL;
	default:
		return "550 5.1.1 Invalid or expired SRS address";
	}
	if (sender[0] != '\0')
		return "550 5.7.1 This address only takes delivery status "
		    "notifications (MAIL FROM:<>)";
	exp->external = xstrdup(orig);
	return NULL;
}

/* forward_mx_router - see forward.h */
bool
forward_mx_router(struct smtpd_session *s, const struct mailaddr *a,
    const char *key, const char *shown, struct smtpd_route_pick *pick)
{
	struct expansion *exp = &pick->exp;
	const char *err;

	memset(exp, 0, sizeof(*exp));
	if (a->domain[0] != '\0') {
		const char *at = strrchr(key, '@');

		if (a->domain[0] != '[' && !config_is_local_domain(fwd_g.cfg,
		    at + 1) && config_route(fwd_g.cfg, at + 1) != NULL) {
			/*
			 * a routed domain (doc/home-server.md): its next hop
			 * answers this RCPT, the address as it is
			 */
			exp->external = xstrdup(shown);
			route_of(exp, pick->key, sizeof(pick->key));
			pick->ops = &forward_route;
			pick->next_hop = true;
			return true;
		}
		if (a->domain[0] == '[' ||
		    !config_is_local_domain(fwd_g.cfg, at + 1)) {
			bsnprintf(pick->refusal, sizeof(pick->refusal),
			    "554 5.7.1 <%s>: Relay access denied", shown);
			return false;
		}
	}
	if (a->domain[0] != '\0' &&
	    (err = srs_rcpt(smtpd_tx_sender(s), a, exp)) != NULL) {
		bsnprintf(pick->refusal, sizeof(pick->refusal), "%s <%s>", err,
		    shown);
		return false;
	}
	if (exp->external == NULL && !tables_resolve(smtpd_tables(), key, exp)) {
		bsnprintf(pick->refusal, sizeof(pick->refusal), "550 5.1.1 <%s>: "
		    "Recipient address rejected: User unknown", shown);
		return false;
	}
	route_of(exp, pick->key, sizeof(pick->key));
	/* local mailboxes: Maildir, or Dovecot's LMTP (local_delivery lmtp) */
	pick->ops = exp->external ? &forward_route :
	    fwd_g.cfg->lmtp_text != NULL ? &lmtp_route : &local_route;
	/* an alias to an address at a routed domain goes to its next hop */
	pick->next_hop = exp->external != NULL && routed(exp->external);
	return true;
}
