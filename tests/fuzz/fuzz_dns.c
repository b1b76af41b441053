/*
 * fuzz_dns - the resolver's handling of DNS answers (outbound/resolver.c):
 * the MX answer (ares_parse_mx_reply, answer_ttl, mx_hosts and the null
 * MX), the A/AAAA answers of every host (addr_done), the targets built
 * from them (build), the cache (cache_put, cache_get) and the delivery of
 * the answer through the event loop, all in the resolver's own code.
 *
 * resolver.c keeps these functions static, so this file includes it, with
 * ares_query and ares_destroy renamed to fakes below: no packet is ever
 * sent.  The fake ares_query only records the request; the input then
 * answers the requests, in an order it chooses, with statuses and raw
 * answer octets it chooses, through the resolver's own c-ares callback
 * (ares_done), as c-ares would.  Requests left at the end get
 * ARES_EDESTRUCTION from the fake ares_destroy inside resolver_free, as
 * c-ares does.  A resolver (real c-ares channel, cache and all) is made
 * and freed for every input: no state is kept between inputs.
 *
 * Input: flags octet (bit 0: cancel the query after the first answer;
 * bit 1: answer inside ares_query when the input has an answer ready, as
 * c-ares may; bit 2: the status octet also picks which request is
 * answered), a length octet and the domain, then answers: a status octet
 * (low 3 bits), a 16-bit length and the answer octets.
 *
 * Checks: the callback runs exactly once (never after a cancel) with a
 * status in range; DNS_OK has 1..RES_MAX_HOSTS*RES_MAX_ADDRS targets, each
 * an IPv4 or IPv6 address with its length and a host name, other statuses
 * none; an answer the cache keeps comes back from the cache with no query
 * and the same targets (order within a preference may change).
 */
#include <ares.h>
#include <event2/event.h>

#include "fuzz.h"

struct fake_req {
	ares_callback cb;
	void *arg;
	int type;
};

#define MAX_REQS 256
static struct fake_req reqs[MAX_REQS];
static size_t nreqs;
static bool answer_inline;

struct answers {
	struct fuzz_in in;
	bool pick;
};
static struct answers *cur;		/* the input being answered from */

static int
status_of(uint8_t b)
{
	static const int st[] = {
		ARES_SUCCESS, ARES_SUCCESS, ARES_SUCCESS, ARES_ENODATA,
		ARES_ENOTFOUND, ARES_ESERVFAIL, ARES_ETIMEOUT, ARES_EREFUSED,
	};

	return st[b & 7];
}

/* answer_one - the next answer of the input to request i; false: none */
static bool
answer_one(struct fake_req r)
{
	uint8_t sb;
	uint16_t len;
	const uint8_t *p;
	unsigned char *buf;
	size_t got;

	if (cur == NULL || cur->in.n < 3)
		return false;
	sb = fuzz_u8(&cur->in);
	len = fuzz_u16(&cur->in);
	p = fuzz_bytes(&cur->in, len, &got);
	/* exactly the answer's octets: ASan sees any read past them */
	buf = malloc(got ? got : 1);
	memcpy(buf, p, got);
	r.cb(r.arg, status_of(sb), 0, got ? buf : NULL, (int)got);
	free(buf);
	return true;
}

static void
fake_ares_query(ares_channel ch, const char *name, int dnsclass, int type,
    ares_callback cb, void *arg)
{
	struct fake_req r = { cb, arg, type };

	FUZZ_CHECK(name != NULL && strlen(name) < 256 && dnsclass == 1);
	FUZZ_CHECK(type == 15 || type == 1 || type == 28);
	if (answer_inline && answer_one(r))
		return;
	FUZZ_CHECK(nreqs < MAX_REQS);
	reqs[nreqs++] = r;
}

static void
fake_ares_destroy(ares_channel ch)
{
	/* c-ares calls back every request it still holds */
	while (nreqs > 0) {
		struct fake_req r = reqs[--nreqs];

		r.cb(r.arg, ARES_EDESTRUCTION, 0, NULL, 0);
	}
	ares_destroy(ch);
}

#define ares_query fake_ares_query
#define ares_destroy fake_ares_destroy
#include "../../outbound/resolver.c"
#undef ares_query
#undef ares_destroy

static struct event_base *base;

struct result {
	unsigned calls;
	enum dns_status status;
	bool implicit;
	struct mx_target *targets;
	size_t ntargets;
};

static void
cb(void *arg, const struct mx_answer *ans)
{
	struct result *res = arg;

	res->calls++;
	FUZZ_CHECK(res->calls == 1);
	FUZZ_CHECK(ans->status <= DNS_TEMPFAIL);
	res->status = ans->status;
	res->implicit = ans->implicit;
	if (ans->status == DNS_OK) {
		FUZZ_CHECK(ans->ntargets >= 1 &&
		    ans->ntargets <= RES_MAX_HOSTS * RES_MAX_ADDRS);
		FUZZ_CHECK(ans->targets != NULL);
	} else
		FUZZ_CHECK(ans->ntargets == 0);
	for (size_t i = 0; i < ans->ntargets; i++) {
		const struct mx_target *t = &ans->targets[i];

		FUZZ_CHECK(strnlen(t->host, sizeof(t->host)) < sizeof(t->host));
		FUZZ_CHECK(t->host[0] != '\0');
		if (t->ss.ss_family == AF_INET)
			FUZZ_CHECK(t->sslen == sizeof(struct sockaddr_in));
		else
			FUZZ_CHECK(t->ss.ss_family == AF_INET6 &&
			    t->sslen == sizeof(struct sockaddr_in6));
	}
	res->ntargets = ans->ntargets;
	res->targets = NULL;
	if (ans->ntargets > 0) {
		res->targets = malloc(ans->ntargets * sizeof(*res->targets));
		memcpy(res->targets, ans->targets,
		    ans->ntargets * sizeof(*res->targets));
	}
}

static int
target_cmp(const void *a, const void *b)
{
	const struct mx_target *x = a, *y = b;
	int c;

	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	if ((c = strcmp(x->host, y->host)) != 0)
		return c;
	if (x->sslen != y->sslen)
		return x->sslen < y->sslen ? -1 : 1;
	return memcmp(&x->ss, &y->ss, x->sslen);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz_dns", 1, 0);
	if ((base = event_base_new()) == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct answers a = { { data, size }, false };
	struct result r1 = { 0 }, r2 = { 0 };
	struct resolver *r;
	struct resolver_query *q;
	const uint8_t *dp;
	char domain[256];
	size_t dlen, answered = 0;
	uint8_t flags;
	bool cancelled = false, cached;

	flags = fuzz_u8(&a.in);
	dlen = fuzz_u8(&a.in);
	dp = fuzz_bytes(&a.in, dlen, &dlen);
	memcpy(domain, dp, dlen);
	domain[dlen] = '\0';
	a.pick = (flags & 4) != 0;
	nreqs = 0;
	answer_inline = (flags & 2) != 0;
	cur = &a;

	if ((r = resolver_new(base, NULL, 0)) == NULL)
		abort();
	q = resolver_mx(r, domain, cb, &r1);
	for (;;) {
		struct fake_req req;
		size_t i = 0;

		if (nreqs == 0 || a.in.n < 3)
			break;
		if (a.pick)
			i = a.in.p[0] >> 3;
		i %= nreqs;
		req = reqs[i];
		memmove(reqs + i, reqs + i + 1, (nreqs - i - 1) * sizeof(*reqs));
		nreqs--;
		answer_one(req);
		if ((flags & 1) && ++answered == 1 && r1.calls == 0 &&
		    !cancelled) {
			/* valid until the callback has run */
			resolver_cancel(q);
			cancelled = true;
		}
	}
	/* the rest time out */
	cur = NULL;
	while (nreqs > 0) {
		struct fake_req req = reqs[0];

		memmove(reqs, reqs + 1, (nreqs - 1) * sizeof(*reqs));
		nreqs--;
		req.cb(req.arg, ARES_ETIMEOUT, 2, NULL, 0);
	}
	event_base_loop(base, EVLOOP_NONBLOCK);
	FUZZ_CHECK(r1.calls == (cancelled ? 0 : 1));

	/* the same domain again: from the cache when it was kept */
	if (!cancelled) {
		char key[256];

		str_copy(key, domain, sizeof(key));
		if (strlen(key) > 0 && key[strlen(key) - 1] == '.')
			key[strlen(key) - 1] = '\0';
		str_lower(key);
		cached = hmap_get(r->cache, key) != NULL;
		if (cached)
			FUZZ_CHECK(r1.status != DNS_TEMPFAIL);
		answer_inline = false;
		resolver_mx(r, domain, cb, &r2);
		if (cached) {
			FUZZ_CHECK(nreqs == 0);
			event_base_loop(base, EVLOOP_NONBLOCK);
			FUZZ_CHECK(r2.calls == 1);
			FUZZ_CHECK(r2.status == r1.status &&
			    r2.implicit == r1.implicit &&
			    r2.ntargets == r1.ntargets);
			if (r1.ntargets > 0) {
				qsort(r1.targets, r1.ntargets,
				    sizeof(*r1.targets), target_cmp);
				qsort(r2.targets, r2.ntargets,
				    sizeof(*r2.targets), target_cmp);
				for (size_t i = 0; i < r1.ntargets; i++)
					FUZZ_CHECK(target_cmp(&r1.targets[i],
					    &r2.targets[i]) == 0);
			}
		}
	}
	/* whatever is still asked goes in ares_destroy, as with c-ares */
	resolver_free(r);
	event_base_loop(base, EVLOOP_NONBLOCK);
	FUZZ_CHECK(nreqs == 0);
	free(r1.targets);
	free(r2.targets);
	return 0;
}
