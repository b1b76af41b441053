/*
 * resolver_order.c - the order in which MX hosts are tried (RFC 5321 5.1):
 * lowest preference first, hosts of equal preference in random order; and
 * the one target of an address literal.  Pure: the randomness comes from
 * the caller, so tests can fix it.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/limits.h"
#include "../common/util.h"
#include "resolver.h"

static int
rank_cmp(const void *a, const void *b)
{
	const struct mx_rank *x = a, *y = b;

	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	/* qsort is not stable: the caller's order decides ties */
	return (x->index > y->index) - (x->index < y->index);
}

void
mx_order(struct mx_rank *v, size_t n, uint64_t (*rnd)(void *), void *arg)
{
	size_t lo, hi, i, j;
	struct mx_rank t;

	if (n < 2)
		return;
	qsort(v, n, sizeof(*v), rank_cmp);
	for (lo = 0; lo < n; lo = hi) {
		for (hi = lo + 1; hi < n && v[hi].preference == v[lo].preference;
		    hi++)
			;
		/* Fisher-Yates over [lo, hi) */
		for (i = hi - 1; i > lo; i--) {
			j = lo + (size_t)(rnd(arg) % (uint64_t)(i - lo + 1));
			t = v[i];
			v[i] = v[j];
			v[j] = t;
		}
	}
}

/* mx_literal_target - see resolver.h */
bool
mx_literal_target(const char *domain, struct mx_target *t)
{
	char lit[DOMAIN_MAX + 1];
	size_t n = strlen(domain);

	memset(t, 0, sizeof(*t));
	if (n < 3 || domain[0] != '[' || domain[n - 1] != ']' || n - 2 >= sizeof(lit))
		return false;
	memcpy(lit, domain + 1, n - 2);
	lit[n - 2] = '\0';
	str_copy(t->host, domain, sizeof(t->host));
	if (strncasecmp(lit, "ipv6:", 5) == 0) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->ss;

		s6->sin6_family = AF_INET6;
		t->sslen = sizeof(*s6);
		return inet_pton(AF_INET6, lit + 5, &s6->sin6_addr) == 1;
	}
	((struct sockaddr_in *)&t->ss)->sin_family = AF_INET;
	t->sslen = sizeof(struct sockaddr_in);
	return inet_pton(AF_INET, lit, &((struct sockaddr_in *)&t->ss)->sin_addr) == 1;
}


/* mx_host_target - see resolver.h */
bool
mx_host_target(const char *host, struct mx_target *t)
{
	memset(t, 0, sizeof(*t));
	str_copy(t->host, host, sizeof(t->host));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&t->ss)->sin_addr) == 1) {
		t->ss.ss_family = AF_INET;
		t->sslen = sizeof(struct sockaddr_in);
		return true;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&t->ss)->sin6_addr) == 1) {
		t->ss.ss_family = AF_INET6;
		t->sslen = sizeof(struct sockaddr_in6);
		return true;
	}
	return false;
}
