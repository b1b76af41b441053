/*
 * lookup.c - resolver_records with a cancel (eval.h): the request stays
 * alive until the resolver answers; a cancelled one drops the answer.
 */
#include <stdlib.h>

#include "../common/util.h"
#include "eval.h"

struct lookup {
	resolver_records_cb cb;
	void *arg;
	bool cancelled;
	bool answered;		/* cb ran (from inside lookup_start, maybe) */
	bool starting;		/* lookup_start has not returned yet */
};

static void
lookup_answer(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct lookup *l = arg;

	l->answered = true;
	if (!l->cancelled)
		l->cb(l->arg, st, texts, n);
	if (!l->starting)
		free(l);
}

struct lookup *
lookup_start(struct resolver *r, const char *name, enum dns_rr rr,
    resolver_records_cb cb, void *arg)
{
	struct lookup *l = xcalloc(1, sizeof(*l));

	l->cb = cb;
	l->arg = arg;
	l->starting = true;
	resolver_records(r, name, rr, lookup_answer, l);
	l->starting = false;
	if (l->answered) {
		free(l);
		return NULL;
	}
	return l;
}

void
lookup_cancel(struct lookup *l)
{
	if (l != NULL)
		l->cancelled = true;
}
