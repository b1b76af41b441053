/*
 * mtasts.h - MTA-STS (RFC 8461): a domain's policy, found through its
 * _mta-sts TXT record, fetched over verified HTTPS inside the event loop
 * and cached (in memory and in queue_dir) for its max_age; and
 * tlspolicy_mx, the MX look-up with the policy applied to its targets,
 * shared by forward/ and queue/ (doc/security.md, "Outbound TLS").
 */
#ifndef CHAMOIS_MTASTS_H
#define CHAMOIS_MTASTS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "resolver.h"

struct event_base;
struct sts;
struct sts_query;

#define STS_MX_MAX	16		/* mx lines of a policy kept */
#define STS_POLICY_MAX	65536		/* octets of a policy (RFC 8461 3.3) */
#define STS_MAX_AGE	31557600	/* RFC 8461 3.2 */

enum sts_mode { STS_MODE_NONE, STS_MODE_TESTING, STS_MODE_ENFORCE };

struct sts_policy {
	enum sts_mode mode;
	unsigned max_age;
	size_t nmx;
	char mx[STS_MX_MAX][256];	/* "mail.example.com" or "*.example.net" */
	char id[33];			/* the TXT record's id when fetched */
};

/*
 * sts_policy_parse - a policy's text (RFC 8461 3.2) into p; false if it
 * is not a valid STSv1 policy.  Pure, for unit tests.
 */
bool sts_policy_parse(const char *text, size_t len, struct sts_policy *p);
/* sts_mx_match - host (an MX name) matches one of p's mx patterns (RFC 8461 4.1) */
bool sts_mx_match(const struct sts_policy *p, const char *host);

/*
 * sts_new - MTA-STS on base: TXT look-ups through r, policies over HTTPS
 * verified with ctx (tls_ca_file or the system's CAs; referenced) on
 * port (443 but in tests), cached in cache_dir (made if missing; the
 * files found there are loaded now, before the loop runs)
 */
struct sts *sts_new(struct event_base *base, struct resolver *r, SSL_CTX *ctx,
    unsigned port, const char *cache_dir);
void sts_free(struct sts *);

/*
 * sts_https - an HTTPS connection (libevent's evhttp over
 * bufferevent_openssl) to t's address on port, its certificate verified
 * for host against s's CAs, a 10-second budget, bodies and headers
 * bounded; the caller makes its request and frees it.  The policy
 * fetch's, and TLS-RPT's https: rua (queue/tlsrpt.c).
 */
struct evhttp_connection;
struct evhttp_connection *sts_https(struct sts *s, const struct mx_target *t,
    unsigned port, const char *host);

/*
 * tlspolicy_mx - resolver_mx of domain with its MTA-STS policy (s may be
 * NULL: none) applied: each target's sts and sts_match say what the
 * client must do.  cb runs once, on the loop, never from inside
 * tlspolicy_mx; the answer is valid only during cb.  Cancel until cb ran.
 */
struct tlspolicy_query;
struct tlspolicy_query *tlspolicy_mx(struct sts *s, struct resolver *r,
    const char *domain, resolver_cb cb, void *arg);
void tlspolicy_cancel(struct tlspolicy_query *);

#endif
