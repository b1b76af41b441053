/*
 * dmarc.c - DMARC (RFC 9989) for the From domain, the only file that
 * includes <opendmarc/dmarc.h>.
 *
 * libopendmarc (1.4) implements RFC 7489: it parses a record and holds
 * its p=, sp=, adkim= and aspf=, and that is what it does here
 * (opendmarc_policy_store_dmarc).  What RFC 9989 changed is ours:
 *
 *   - the records are fetched by us, through the resolver: the DNS tree
 *     walk (RFC 9989 4.10) instead of a public suffix list.  When the
 *     From field is complete, _dmarc.D is asked for the From domain and
 *     each parent (at most 8 names: a name of more than 8 labels goes on
 *     from its last 7), all at once, and an A look-up of the domain
 *     itself tells whether it exists (np=);
 *   - the policy domain is the first name, walking up, with a record;
 *     the organizational domain is the first record with psd=n, else the
 *     name below the first record (but the From domain's own) with
 *     psd=y, else the record with the fewest labels, else the From domain;
 *   - relaxed alignment compares organizational domains: an identifier
 *     aligns when it is the organizational domain or under it (a psd=n
 *     record between the two is not looked for);
 *   - the applicable policy: p= at the From domain; found at a parent,
 *     np= for a From domain that does not exist, else sp=, else p=; a
 *     record without p= but with rua= counts as p=none;
 *   - pct= is ignored and t=y is kept (the policy layer lowers reject to
 *     quarantine for it).
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <opendmarc/dmarc.h>

#include "../common/addr.h"
#include "../common/log.h"
#include "../common/util.h"
#include "eval.h"

#define DMARC_WALK	8	/* names asked at most (RFC 9989 4.10) */
#define DMARC_REC_MAX	2048	/* a record longer is not kept */

struct dmarc_name {
	char name[DOMAIN_MAX + 1];	/* the domain, without _dmarc. */
	bool in;
	enum dns_status st;
	char *rec;			/* the one DMARC record, or NULL */
	struct lookup *lk;
	struct dmarc_eval *e;
};

struct dmarc_eval {
	struct resolver *r;
	eval_done_cb done;
	void *arg;
	char from[DOMAIN_MAX + 1];
	struct dmarc_name names[DMARC_WALK];
	size_t nnames;
	struct lookup *exists_lk;	/* the From domain's A */
	bool exists_in;
	enum dns_status exists_st;
	unsigned pending;
};

static bool lib_ready;

static void
dmarc_lib(void)
{
	static OPENDMARC_LIB_T lib;

	if (lib_ready)
		return;
	lib_ready = true;
	memset(&lib, 0, sizeof(lib));
	lib.tld_type = OPENDMARC_TLD_TYPE_NONE;	/* no PSL: the tree walk */
	opendmarc_policy_library_init(&lib);
}

static void
step(struct dmarc_eval *e)
{
	if (--e->pending == 0)
		e->done(e->arg);
}

/* one_record - the one v=DMARC1 record of texts, or NULL (RFC 9989 4.10) */
static char *
one_record(char **texts, size_t n)
{
	char *found = NULL;

	for (size_t i = 0; i < n; i++) {
		const char *t = texts[i];

		t += strspn(t, " \t");
		if (strncmp(t, "v=DMARC1", 8) != 0 ||
		    (t[8] != ';' && t[8] != ' ' && t[8] != '\t' && t[8] != '\0'))
			continue;
		if (found != NULL || strlen(t) > DMARC_REC_MAX)
			return NULL;	/* two records: none */
		found = texts[i];
	}
	return found != NULL ? xstrdup(found) : NULL;
}

static void
name_answer(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct dmarc_name *dn = arg;

	dn->lk = NULL;
	dn->in = true;
	dn->st = st;
	if (st == DNS_OK)
		dn->rec = one_record(texts, n);
	step(dn->e);
}

static void
exists_answer(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct dmarc_eval *e = arg;

	e->exists_lk = NULL;
	e->exists_in = true;
	e->exists_st = st;
	step(e);
}

/* labels - the number of labels of d */
static size_t
labels(const char *d)
{
	size_t n = 1;

	for (; *d; d++)
		n += *d == '.';
	return n;
}

/* parent - d without its first label, or NULL */
static const char *
parent(const char *d)
{
	const char *dot = strchr(d, '.');

	return dot != NULL && dot[1] != '\0' ? dot + 1 : NULL;
}

/* walk_names - the names of the walk: D, then (past 8 labels) its last 7, then up */
static void
walk_names(struct dmarc_eval *e, const char *from)
{
	const char *d;

	str_copy(e->from, from, sizeof(e->from));
	d = e->from;
	while (d != NULL && e->nnames < DMARC_WALK) {
		str_copy(e->names[e->nnames].name, d, sizeof(e->names[0].name));
		e->names[e->nnames].e = e;
		e->nnames++;
		if (d == e->from && labels(d) > DMARC_WALK) {
			while (labels(d) > DMARC_WALK - 1)
				d = parent(d);
		} else
			d = parent(d);
	}
}

struct dmarc_eval *
dmarc_eval_start(struct resolver *r, const char *from, eval_done_cb done,
    void *arg)
{
	struct dmarc_eval *e = xcalloc(1, sizeof(*e));
	char q[DOMAIN_MAX + 16];

	dmarc_lib();
	e->r = r;
	e->done = done;
	e->arg = arg;
	walk_names(e, from);
	e->pending = 1;		/* held while the look-ups start */
	for (size_t i = 0; i < e->nnames; i++) {
		struct dmarc_name *dn = &e->names[i];

		if (!bsnprintf(q, sizeof(q), "_dmarc.%s", dn->name) ||
		    !dns_name_ok(q)) {
			dn->in = true;
			dn->st = DNS_NXDOMAIN;
			continue;
		}
		e->pending++;
		dn->lk = lookup_start(r, q, DNS_RR_TXT, name_answer, dn);
	}
	e->pending++;
	e->exists_lk = lookup_start(r, e->from, DNS_RR_A, exists_answer, e);
	step(e);
	return e;
}

/* policy_of - libopendmarc's p/sp value as ours */
static enum dmarc_p
policy_of(int p)
{
	switch (p) {
	case DMARC_RECORD_P_NONE:	return DMARC_P_NONE;
	case DMARC_RECORD_P_QUARANTINE:	return DMARC_P_QUARANTINE;
	case DMARC_RECORD_P_REJECT:	return DMARC_P_REJECT;
	default:			return DMARC_P_ABSENT;
	}
}

static enum dmarc_p
policy_word(const char *w)
{
	if (strcasecmp(w, "none") == 0)
		return DMARC_P_NONE;
	if (strcasecmp(w, "quarantine") == 0)
		return DMARC_P_QUARANTINE;
	if (strcasecmp(w, "reject") == 0)
		return DMARC_P_REJECT;
	return DMARC_P_ABSENT;
}

/*
 * aligned - identifier id aligns with the From domain: the same domain
 * (strict), or both in the same organizational domain org (relaxed)
 */
static bool
aligned(const char *id, const char *from, const char *org, bool strict)
{
	if (id == NULL || *id == '\0')
		return false;
	if (strcasecmp(id, from) == 0)
		return true;
	return !strict && domain_within(id, org) && domain_within(from, org);
}

void
dmarc_eval_result(struct dmarc_eval *e, struct auth_results *out)
{
	struct dmarc_name *pol = NULL;
	const char *org = NULL;
	char v[64];
	DMARC_POLICY_T *pctx;
	int p = 0, sp = 0, adkim = 0, aspf = 0;
	enum dmarc_p applied;
	bool temp = false, sstrict, dstrict;
	size_t i;

	out->dmarc = AUTH_NONE;
	out->policy = DMARC_P_ABSENT;
	out->testing = false;
	/* the policy domain: the first record walking up */
	for (i = 0; i < e->nnames; i++) {
		if (!e->names[i].in || e->names[i].st == DNS_TEMPFAIL) {
			if (pol == NULL)
				temp = true;
			continue;
		}
		if (e->names[i].rec != NULL && pol == NULL)
			pol = &e->names[i];
	}
	if (temp) {		/* a record nearer than any found may be there */
		out->dmarc = AUTH_TEMPERROR;
		return;
	}
	if (pol == NULL)
		return;		/* none */
	/* the organizational domain (RFC 9989 4.10.2) */
	for (i = 0; i < e->nnames && org == NULL; i++) {
		struct dmarc_name *dn = &e->names[i];

		if (dn->rec == NULL ||
		    !tag_value(dn->rec, strlen(dn->rec), "psd", v, sizeof(v)))
			continue;
		if (strcasecmp(v, "n") == 0)
			org = dn->name;
		else if (strcasecmp(v, "y") == 0 && i > 0)
			org = e->names[i - 1].name;
	}
	for (i = e->nnames; i-- > 0 && org == NULL;)
		if (e->names[i].rec != NULL)
			org = e->names[i].name;
	if (org == NULL)
		org = e->from;

	/* libopendmarc parses the record: p, sp, adkim, aspf */
	{
		struct strbuf rec = { 0 };
		bool has_p = tag_value(pol->rec, strlen(pol->rec), "p", v, sizeof(v));

		strbuf_add(&rec, pol->rec, strlen(pol->rec));
		if (!has_p && tag_value(pol->rec, strlen(pol->rec), "rua", v,
		    sizeof(v)))	/* RFC 9989 4.7: p= missing, rua= there */
			strbuf_printf(&rec, "; p=none");
		pctx = opendmarc_policy_connect_init((u_char *)"127.0.0.1", 4);
		if (pctx == NULL || opendmarc_policy_store_dmarc(pctx,
		    (u_char *)rec.p, (u_char *)pol->name, (u_char *)org) !=
		    DMARC_PARSE_OKAY) {
			if (pctx != NULL)
				opendmarc_policy_connect_shutdown(pctx);
			free(rec.p);
			return;		/* not a valid record: none */
		}
		free(rec.p);
		opendmarc_policy_fetch_p(pctx, &p);
		opendmarc_policy_fetch_sp(pctx, &sp);
		opendmarc_policy_fetch_adkim(pctx, &adkim);
		opendmarc_policy_fetch_aspf(pctx, &aspf);
		opendmarc_policy_connect_shutdown(pctx);
	}
	applied = policy_of(p);
	if (pol != &e->names[0]) {
		bool nx = e->exists_in && e->exists_st == DNS_NXDOMAIN;

		if (nx && tag_value(pol->rec, strlen(pol->rec), "np", v,
		    sizeof(v)) && policy_word(v) != DMARC_P_ABSENT)
			applied = policy_word(v);
		else if (policy_of(sp) != DMARC_P_ABSENT)
			applied = policy_of(sp);
	}
	out->policy = applied != DMARC_P_ABSENT ? applied : DMARC_P_NONE;
	out->testing = tag_value(pol->rec, strlen(pol->rec), "t", v, sizeof(v)) &&
	    strcasecmp(v, "y") == 0;

	/* alignment (RFC 9989 4.4) */
	sstrict = aspf == DMARC_RECORD_A_STRICT;
	dstrict = adkim == DMARC_RECORD_A_STRICT;
	temp = false;
	if (out->spf == AUTH_PASS &&
	    aligned(out->spf_domain, e->from, org, sstrict)) {
		out->dmarc = AUTH_PASS;
		return;
	}
	if (out->spf == AUTH_TEMPERROR &&
	    aligned(out->spf_domain, e->from, org, sstrict))
		temp = true;
	for (i = 0; i < out->ndkim; i++) {
		if (!aligned(out->dkim[i].d, e->from, org, dstrict))
			continue;
		if (out->dkim[i].result == AUTH_PASS) {
			out->dmarc = AUTH_PASS;
			return;
		}
		if (out->dkim[i].result == AUTH_TEMPERROR)
			temp = true;
	}
	out->dmarc = temp ? AUTH_TEMPERROR : AUTH_FAIL;
}

void
dmarc_eval_free(struct dmarc_eval *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nnames; i++) {
		lookup_cancel(e->names[i].lk);
		free(e->names[i].rec);
	}
	lookup_cancel(e->exists_lk);
	free(e);
}
