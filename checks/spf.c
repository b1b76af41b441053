/*
 * spf.c - SPF (RFC 7208) with libspf2, the only file that includes
 * <spf2/spf.h>.
 *
 * libspf2's own DNS layers block (res_query), so it never gets one: its
 * only layer is ours, which answers from this check's record cache and,
 * for a (name, type) not in it yet, notes the miss and answers TRY_AGAIN.
 * An evaluation that had misses is thrown away; the misses are looked up
 * through the resolver (c-ares, dns_server, on the loop) and the
 * evaluation runs again from the start with more of the answers cached.
 * Each round adds at least one record, RFC 7208 4.6.4 bounds the records
 * one evaluation may need, and SPF_ROUNDS bounds the rounds.  The void
 * look-up limit (two, RFC 7208 4.6.4), which libspf2 1.2 lacks, is ours:
 * counted by the layer in the last evaluation.  So is a DNS failure on
 * the way (temperror, RFC 7208 2.6.6), which libspf2 may take as "no
 * match" for a, mx and ptr: every A, AAAA, MX and PTR failure counts, and
 * the checked domain's own TXT; an include: or redirect= target's TXT
 * failure is libspf2's temperror already, and one of exp= changes
 * nothing (RFC 7208 6.2).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spf2/spf.h>

#include "../common/addr.h"
#include "../common/log.h"
#include "../common/util.h"
#include "eval.h"

#define SPF_ROUNDS	32	/* evaluations per check (10 MX hosts may take one each) */
#define SPF_RECORDS	64	/* (name, type) answers cached per check */
#define SPF_VOID_MAX	2	/* RFC 7208 4.6.4 */

struct spf_rec {
	char name[DOMAIN_MAX + 1];
	ns_type type;
	enum dns_status status;		/* DNS_OK ... DNS_TEMPFAIL */
	bool asked;			/* a look-up is out */
	bool answered;			/* status is the answer */
	char **texts;
	size_t n;
	struct lookup *lk;
	struct spf_eval *e;
};

struct spf_eval {
	struct resolver *r;
	char helo[DOMAIN_MAX + 1];
	char mail_from[PATH_MAX_OCTETS + 1];
	char hostname[DOMAIN_MAX + 1];
	struct sockaddr_storage client;
	struct auth_results *out;
	eval_done_cb done;
	void *arg;

	struct spf_rec recs[SPF_RECORDS];
	size_t nrecs;
	unsigned misses;	/* in the current evaluation */
	unsigned voids;		/* NXDOMAIN or no data, in the current one */
	unsigned temps;		/* DNS failures, in the current one */
	unsigned pending;	/* look-ups out */
	unsigned rounds;
	bool overflow;		/* the cache was full */
	SPF_dns_server_t layer;
};

/* quiet - libspf2's warnings, notes and debug output go to our debug log */
static void
quiet(const char *file, int line, const char *msg)
{
	log_debug("spf: %s", msg);
}

static void
spf_lib_init(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	SPF_warning_handler = quiet;
	SPF_info_handler = quiet;
	SPF_debug_handler = quiet;
}

static enum dns_rr
rr_of(ns_type t)
{
	switch (t) {
	case ns_t_a:	return DNS_RR_A;
	case ns_t_aaaa:	return DNS_RR_AAAA;
	case ns_t_mx:	return DNS_RR_MX;
	case ns_t_ptr:	return DNS_RR_PTR;
	default:	return DNS_RR_TXT;
	}
}

static struct spf_rec *
rec_find(struct spf_eval *e, const char *name, ns_type type)
{
	for (size_t i = 0; i < e->nrecs; i++)
		if (e->recs[i].type == type &&
		    strcasecmp(e->recs[i].name, name) == 0)
			return &e->recs[i];
	return NULL;
}

/* rr_fill - a cached answer as libspf2's record set */
static SPF_dns_rr_t *
rr_fill(SPF_dns_server_t *s, const struct spf_rec *rec, const char *domain)
{
	SPF_dns_rr_t *rr;
	int h;

	switch (rec->status) {
	case DNS_OK:		h = NETDB_SUCCESS; break;
	case DNS_NXDOMAIN:	h = HOST_NOT_FOUND; break;
	case DNS_NOHOST:
	case DNS_NULLMX:	h = NO_DATA; break;
	default:		h = TRY_AGAIN; break;
	}
	rr = SPF_dns_rr_new_init(s, domain, rec->type, 60, h);
	if (rr == NULL || h != NETDB_SUCCESS)
		return rr;
	for (size_t i = 0; i < rec->n; i++) {
		const char *t = rec->texts[i];
		int k = rr->num_rr;
		size_t len;

		switch (rec->type) {
		case ns_t_a:
		case ns_t_aaaa:
			len = rec->type == ns_t_a ? sizeof(struct in_addr) :
			    sizeof(struct in6_addr);
			if (SPF_dns_rr_buf_realloc(rr, k, len) != SPF_E_SUCCESS)
				continue;
			if (inet_pton(rec->type == ns_t_a ? AF_INET : AF_INET6, t,
			    rec->type == ns_t_a ? (void *)&rr->rr[k]->a :
			    (void *)&rr->rr[k]->aaaa) != 1)
				continue;
			break;
		case ns_t_mx:		/* "PREFERENCE HOST": the host */
			t += strspn(t, "0123456789");
			t += strspn(t, " ");
			/* FALLTHROUGH */
		default:
			len = strlen(t) + 1;
			if (SPF_dns_rr_buf_realloc(rr, k, len) != SPF_E_SUCCESS)
				continue;
			memcpy(rr->rr[k]->txt, t, len);
			break;
		}
		rr->num_rr = k + 1;
	}
	if (rr->num_rr == 0)
		rr->herrno = NO_DATA;
	return rr;
}

/*
 * layer_lookup - libspf2's DNS: the cache, or a noted miss answered
 * TRY_AGAIN (this evaluation is thrown away and run again)
 */
static SPF_dns_rr_t *
layer_lookup(SPF_dns_server_t *s, const char *domain, ns_type type,
    int should_cache)
{
	struct spf_eval *e = s->hook;
	struct spf_rec *rec;
	char name[DOMAIN_MAX + 1];
	size_t len = strlen(domain);

	if (type == ns_t_spf)		/* RFC 7208 3.1: type 99 is gone */
		return SPF_dns_rr_new_init(s, domain, type, 0, NO_DATA);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > DOMAIN_MAX)
		return SPF_dns_rr_new_init(s, domain, type, 0, HOST_NOT_FOUND);
	memcpy(name, domain, len);
	name[len] = '\0';
	if (!dns_name_ok(name))	/* no such name can exist: not a DNS failure */
		return SPF_dns_rr_new_init(s, domain, type, 0, HOST_NOT_FOUND);
	if ((rec = rec_find(e, name, type)) == NULL) {
		e->misses++;
		if (e->nrecs == nitems(e->recs)) {
			e->overflow = true;
			return SPF_dns_rr_new_init(s, domain, type, 0, TRY_AGAIN);
		}
		rec = &e->recs[e->nrecs++];
		memset(rec, 0, sizeof(*rec));
		memcpy(rec->name, name, len + 1);
		rec->type = type;
		rec->status = DNS_TEMPFAIL;
		rec->e = e;
		return SPF_dns_rr_new_init(s, domain, type, 0, TRY_AGAIN);
	}
	if (!rec->answered)
		e->misses++;	/* not in yet: this round cannot be final */
	else if (rec->status == DNS_TEMPFAIL && (type != ns_t_txt ||
	    strcasecmp(name, e->out->spf_domain) == 0))
		e->temps++;	/* not exp= (RFC 7208 6.2), nor include: (libspf2's) */
	else if ((rec->status == DNS_NXDOMAIN || rec->status == DNS_NOHOST) &&
	    !(type == ns_t_txt && strcasecmp(name, e->out->spf_domain) == 0))
		e->voids++;	/* the checked domain's own record does not count */
	return rr_fill(s, rec, domain);
}

static void
layer_destroy(SPF_dns_server_t *s)
{
	/* part of struct spf_eval: spf_eval_free frees it */
}

static enum auth_res
res_of(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:		return AUTH_PASS;
	case SPF_RESULT_FAIL:		return AUTH_FAIL;
	case SPF_RESULT_SOFTFAIL:	return AUTH_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:	return AUTH_NEUTRAL;
	case SPF_RESULT_NONE:		return AUTH_NONE;
	case SPF_RESULT_TEMPERROR:	return AUTH_TEMPERROR;
	default:			return AUTH_PERMERROR;
	}
}

/* evaluate - one evaluation from scratch on the cache: its result */
static enum auth_res
evaluate(struct spf_eval *e)
{
	SPF_server_t *srv;
	SPF_request_t *req;
	SPF_response_t *resp = NULL;
	enum auth_res res = AUTH_PERMERROR;
	const struct sockaddr *sa = (const struct sockaddr *)&e->client;

	e->misses = 0;
	e->voids = 0;
	e->temps = 0;
	e->rounds++;
	if ((srv = SPF_server_new_dns(&e->layer, 0)) == NULL)
		return AUTH_TEMPERROR;
	SPF_server_set_rec_dom(srv, e->hostname);
	if ((req = SPF_request_new(srv)) == NULL) {
		SPF_server_free(srv);
		return AUTH_TEMPERROR;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			struct in_addr a;

			memcpy(&a, s6->sin6_addr.s6_addr + 12, 4);
			SPF_request_set_ipv4(req, a);
		} else
			SPF_request_set_ipv6(req, s6->sin6_addr);
	} else
		SPF_request_set_ipv4(req, ((const struct sockaddr_in *)sa)->sin_addr);
	if (e->helo[0] != '\0')
		SPF_request_set_helo_dom(req, e->helo);
	if (e->out->spf_helo) {
		/* RFC 7208 2.4: <> is checked as postmaster@HELO */
		char pm[DOMAIN_MAX + 16];

		snprintf(pm, sizeof(pm), "postmaster@%s", e->helo);
		SPF_request_set_env_from(req, pm);
	} else
		SPF_request_set_env_from(req, e->mail_from);
	/*
	 * SPF_request_query_mailfrom without its first step, which passes
	 * every loopback client ("localhost gets a free ride"): RFC 7208
	 * knows no such rule
	 */
	if ((resp = SPF_response_new(req)) != NULL) {
		SPF_record_t *rec = NULL;

		req->use_helo = 0;
		req->cur_dom = req->env_from_dp;
		if (SPF_server_get_record(srv, req, resp, &rec) == SPF_E_SUCCESS &&
		    rec != NULL) {
			resp->spf_record_exp = rec;
			SPF_record_interpret(rec, req, resp, 0);
		}
		if (rec != NULL)
			SPF_record_free(rec);
		res = res_of(SPF_response_result(resp));
	}
	if (resp != NULL)
		SPF_response_free(resp);
	SPF_request_free(req);
	SPF_server_free(srv);
	return res;
}

static void fetch_misses(struct spf_eval *);

static void
finish(struct spf_eval *e, enum auth_res res)
{
	e->out->spf = res;
	e->done(e->arg);
}

static void
answer(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct spf_rec *rec = arg;
	struct spf_eval *e = rec->e;

	rec->lk = NULL;
	rec->asked = false;
	rec->answered = true;
	rec->status = st;
	if (st == DNS_OK && n > 0) {
		rec->texts = xcalloc(n, sizeof(*rec->texts));
		for (size_t i = 0; i < n; i++)
			rec->texts[i] = xstrdup(texts[i]);
		rec->n = n;
	}
	if (--e->pending == 0)
		fetch_misses(e);
}

/*
 * fetch_misses - evaluate; final when nothing was missing (or when the
 * bounds are reached: permerror, as RFC 7208 4.6.4 has it for too many
 * look-ups), else look the misses up and come back here when all are in
 */
static void
fetch_misses(struct spf_eval *e)
{
	enum auth_res res = evaluate(e);

	if (e->misses == 0) {
		/*
		 * RFC 7208 4.4, 5: a DNS failure on the way is temperror
		 * (libspf2 may take it as no match); past two void look-ups,
		 * permerror (4.6.4)
		 */
		if (e->temps > 0)
			res = AUTH_TEMPERROR;
		else if (e->voids > SPF_VOID_MAX)
			res = AUTH_PERMERROR;
		finish(e, res);
		return;
	}
	if (e->overflow || e->rounds >= SPF_ROUNDS) {
		finish(e, AUTH_PERMERROR);
		return;
	}
	e->pending = 1;		/* held while the look-ups start */
	for (size_t i = 0; i < e->nrecs; i++) {
		struct spf_rec *rec = &e->recs[i];

		if (rec->answered || rec->asked)
			continue;
		rec->asked = true;
		e->pending++;
		rec->lk = lookup_start(e->r, rec->name, rr_of(rec->type), answer,
		    rec);
	}
	if (--e->pending == 0)
		fetch_misses(e);
}

struct spf_eval *
spf_eval_start(struct resolver *r, const struct auth_check_params *p,
    struct auth_results *out, eval_done_cb done, void *arg)
{
	struct spf_eval *e = xcalloc(1, sizeof(*e));
	const char *at;

	spf_lib_init();
	e->r = r;
	e->out = out;
	e->done = done;
	e->arg = arg;
	str_copy(e->helo, p->helo != NULL ? p->helo : "", sizeof(e->helo));
	str_copy(e->mail_from, p->mail_from != NULL ? p->mail_from : "",
	    sizeof(e->mail_from));
	str_copy(e->hostname, p->hostname != NULL ? p->hostname : "localhost",
	    sizeof(e->hostname));
	if (p->client != NULL && p->clientlen <= sizeof(e->client))
		memcpy(&e->client, p->client, p->clientlen);
	e->layer.destroy = layer_destroy;
	e->layer.lookup = layer_lookup;
	e->layer.name = "chamois";
	e->layer.hook = e;

	out->spf_helo = e->mail_from[0] == '\0';
	if (out->spf_helo) {
		str_copy(out->spf_identity, e->helo, sizeof(out->spf_identity));
		str_copy(out->spf_domain, e->helo, sizeof(out->spf_domain));
	} else {
		str_copy(out->spf_identity, e->mail_from, sizeof(out->spf_identity));
		at = strrchr(e->mail_from, '@');
		str_copy(out->spf_domain, at != NULL ? at + 1 : "",
		    sizeof(out->spf_domain));
	}
	str_lower(out->spf_domain);
	/* a U-label domain (SMTPUTF8) is asked as its A-label */
	if (!str_is_ascii(out->spf_domain, strlen(out->spf_domain))) {
		char a[DOMAIN_MAX + 1];

		if (!addr_domain_key(out->spf_domain, a, sizeof(a)))
			a[0] = '\0';
		str_copy(out->spf_domain, a, sizeof(out->spf_domain));
		if (out->spf_helo)
			str_copy(e->helo, a, sizeof(e->helo));
		else if ((at = strrchr(e->mail_from, '@')) != NULL &&
		    (size_t)(at + 1 - e->mail_from) + strlen(a) < sizeof(e->mail_from))
			memcpy((char *)at + 1, a, strlen(a) + 1);
	}
	/*
	 * no domain to check (a HELO address literal, a MAIL FROM without
	 * one): "none" (RFC 7208 2.3, 4.3)
	 */
	if (out->spf_domain[0] == '\0' || out->spf_domain[0] == '[' ||
	    strchr(out->spf_domain, '.') == NULL || (e->client.ss_family !=
	    AF_INET && e->client.ss_family != AF_INET6)) {
		out->spf = AUTH_NONE;
		e->rounds = SPF_ROUNDS;	/* nothing to do: done below */
		done(arg);
		return e;
	}
	fetch_misses(e);
	return e;
}

void
spf_eval_free(struct spf_eval *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nrecs; i++) {
		struct spf_rec *rec = &e->recs[i];

		lookup_cancel(rec->lk);
		for (size_t k = 0; k < rec->n; k++)
			free(rec->texts[k]);
		free(rec->texts);
	}
	free(e);
}
