/*
 * resolver_order.c - the order in which MX hosts are tried (RFC 5321 5.1):
 * lowest preference first, hosts of equal preference in random order.
 * Pure: the randomness comes from the caller, so tests can fix it.
 */
#include <stdlib.h>

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
