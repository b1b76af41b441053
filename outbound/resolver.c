/*
 * resolver.c - where mail for a domain goes: MX, AAAA and A look-ups with
 * c-ares, driven by the libevent loop.
 *
 * c-ares tells us which sockets it wants watched (ARES_OPT_SOCK_STATE_CB):
 * each gets a persistent event that calls ares_process_fd() when ready,
 * and one timer, re-armed from ares_timeout() after every call into
 * c-ares, drives its retransmissions and timeouts.  Nothing blocks.
 *
 * A query is a small state machine: the MX look-up, then AAAA and A for
 * every MX host kept (or for the domain itself when it has no MX, RFC 5321
 * 5.1), then, with resolver_dane and a secure MX answer, the TLSA records
 * of every host whose addresses were secure too (RFC 7672 2.2), then the
 * answer.  With resolver_dane every question carries the AD bit and an
 * answer is secure when its AD bit is set (doc/security.md, "Outbound
 * TLS": only a loopback resolver is asked then).  The answer is handed to the caller from an event
 * of its own, never from inside resolver_mx() nor from inside c-ares, so
 * the caller may start, cancel or free anything in its callback.  A
 * cancelled query is detached from its resolver and freed when the last of
 * its c-ares requests has called back (ares_destroy() calls them all back
 * with ARES_EDESTRUCTION).
 *
 * Answers are cached per lower-case domain for the smallest TTL of the
 * records used (at most RES_MAX_TTL); NXDOMAIN, null MX and no-address
 * answers for RES_NEG_TTL at most; temporary failures never.  A cache hit
 * shuffles the hosts of equal preference again.  Expiry is timed by
 * clock_mono_ms (common/clock.h), so a unit test sees it without sleeping.
 *
 * resolver_records is the plain look-up (the mx role's checks: SPF, DKIM
 * keys, DMARC, block lists; chamoisctl dns --check): one request, its
 * records as text.  Its answers are cached too, per type and lower-case
 * name (RES_RCACHE_MAX of them): for the smallest TTL of the records (at
 * most RES_MAX_TTL); NXDOMAIN and no-record answers for their SOA's
 * negative TTL (RFC 2308; at most RES_NEG_TTL, not at all without an SOA);
 * temporary failures never.  A hit is handed over from an event of its
 * own, like an answer from the network.  A question already asked and
 * not yet answered is not asked twice: its callers wait for the one
 * answer (a burst of mail from one domain would otherwise ask dns_server
 * the same names hundreds of times at once, more UDP answers than the
 * socket's buffer holds).  Mail from one domain asks the
 * same four or five names for every message; without the cache each is
 * a round trip to dns_server on the loop's CPU.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ares.h>
#include <event2/event.h>

#include "../common/clock.h"
#include "../common/hmap.h"
#include "../common/util.h"
#include "resolver.h"

#ifndef T_MX
#define T_MX		15
#endif
#ifndef T_A
#define T_A		1
#endif
#ifndef T_AAAA
#define T_AAAA		28
#endif
#ifndef C_IN
#define C_IN		1
#endif
#ifndef T_TXT
#define T_TXT		16
#endif
#ifndef T_PTR
#define T_PTR		12
#endif
#ifndef T_TLSA
#define T_TLSA		52	/* RFC 6698 7.1 */
#endif
#define DNS_HDR_AD	0x20	/* the AD bit, in the header's fourth octet (RFC 4035 3.2.3) */

#define RES_TIMEOUT_MS	2000	/* per try; c-ares doubles it on retries */
#define RES_TRIES	2
#define RES_MAX_HOSTS	10	/* MX hosts looked up, best first */
#define RES_MAX_ADDRS	4	/* addresses tried per host */
#define RES_MAX_TTL	3600	/* seconds an answer is cached at most */
#define RES_NEG_TTL	60	/* ... a negative one */
#define RES_CACHE_MAX	1024	/* domains cached */
#define RES_RCACHE_MAX	4096	/* resolver_records answers cached */

struct rsock {
	struct rsock *next;
	struct resolver *r;
	ares_socket_t fd;
	struct event *ev;
};

struct cache_entry {
	int64_t expires;	/* monotonic ms (clock_mono_ms) */
	struct mx_answer ans;	/* targets owned */
	char key[256];
};

struct rhost {
	char name[256];
	unsigned preference;
	struct sockaddr_in6 a6[RES_MAX_ADDRS];
	size_t n6;
	struct sockaddr_in a4[RES_MAX_ADDRS];
	size_t n4;
	bool insecure;			/* an address answer came without AD */
	enum mx_dane dane;		/* its TLSA (resolver_dane) */
	uint8_t ntlsa;
	struct mx_tlsa tlsa[MX_TLSA_MAX];
};

enum qstage {
	STAGE_MX,	/* waiting for the MX answer */
	STAGE_ADDR,	/* waiting for AAAA and A answers */
	STAGE_TLSA,	/* waiting for the TLSA answers of secure hosts */
	STAGE_DONE,	/* ans is final, delivery scheduled */
};

struct resolver_query {
	struct resolver *r;		/* NULL once detached (cancelled) */
	struct resolver_query *prev, *next;
	char domain[256];		/* lower case, no trailing dot */
	resolver_cb cb;
	void *arg;
	struct event *deliver;
	unsigned pending;		/* c-ares requests not called back */
	enum qstage stage;
	bool cancelled;
	bool delivering;
	bool tempfail;			/* an address look-up failed for now */
	bool host_only;			/* resolver_host: A/AAAA, never cached */
	bool secure;			/* the MX answer (or its denial) had AD */
	unsigned ttl;			/* smallest TTL seen, seconds */
	struct rhost *hosts;
	size_t nhosts;
	struct mx_answer ans;
};

/* one c-ares request of a query */
struct req {
	struct resolver_query *q;
	size_t host;
	int type;
};

static void rec_entry_free(void *);

struct resolver {
	struct event_base *base;
	ares_channel ch;
	struct event *timer;
	struct rsock *socks;
	struct resolver_query *queries;
	struct hmap *cache;
	struct hmap *rcache;		/* resolver_records: struct rec_entry */
	struct hmap *inflight;		/* resolver_records asked: struct rec_req */
	bool dane;			/* resolver_dane: AD asked for, TLSA looked up */
	unsigned dane_port;
};

static const char *
status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:		return "ok";
	case DNS_NXDOMAIN:	return "nxdomain";
	case DNS_NULLMX:	return "nullmx";
	case DNS_NOHOST:	return "nohost";
	case DNS_TEMPFAIL:	return "tempfail";
	}
	return "?";
}

static uint64_t
rnd_default(void *arg)
{
	(void)arg;
	return random_u64();
}

static const char *
esc(char *buf, size_t size, const char *s)
{
	return log_escape(buf, size, s, strlen(s));
}

/* ---- c-ares in the event loop ---- */

static void
timer_rearm(struct resolver *r)
{
	struct timeval tv, *tvp;

	tvp = ares_timeout(r->ch, NULL, &tv);
	if (tvp != NULL)
		evtimer_add(r->timer, tvp);
	else
		evtimer_del(r->timer);
}

static void
timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *r = arg;

	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	timer_rearm(r);
}

static void
sock_ready(evutil_socket_t fd, short what, void *arg)
{
	/* c-ares may close the socket (and free s) from inside */
	struct resolver *r = ((struct rsock *)arg)->r;

	ares_process_fd(r->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	timer_rearm(r);
}

static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct rsock **sp, *s;

	for (sp = &r->socks; *sp != NULL; sp = &(*sp)->next)
		if ((*sp)->fd == fd)
			break;
	s = *sp;
	if (!readable && !writable) {
		if (s != NULL) {
			*sp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->r = r;
		s->fd = fd;
		s->next = r->socks;
		r->socks = s;
	} else
		event_free(s->ev);
	s->ev = event_new(r->base, fd, EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0), sock_ready, s);
	if (s->ev == NULL)
		fatalx("resolver: event_new failed");
	event_add(s->ev, NULL);
}

/* ---- cache ---- */

static void
answer_copy(struct mx_answer *dst, const struct mx_answer *src)
{
	*dst = *src;
	dst->targets = NULL;
	if (src->ntargets > 0) {
		dst->targets = xreallocarray(NULL, src->ntargets,
		    sizeof(*src->targets));
		memcpy(dst->targets, src->targets,
		    src->ntargets * sizeof(*src->targets));
	}
}

static void
cache_entry_free(void *p)
{
	struct cache_entry *e = p;

	free(e->ans.targets);
	free(e);
}

struct cache_walk {
	int64_t now;
	int64_t (*expires)(const void *);
	const char **expired;
	size_t nexpired;
	const char *oldest;
	int64_t oldest_at;
};

static void
cache_walk_fn(const char *key, void *val, void *arg)
{
	struct cache_walk *w = arg;
	int64_t at = w->expires(val);

	if (at <= w->now)
		w->expired[w->nexpired++] = key;
	if (w->oldest == NULL || at < w->oldest_at) {
		w->oldest = key;
		w->oldest_at = at;
	}
}

/*
 * cache_room - make room in cache c (max entries) for one more: the
 * expired go, else the one that expires first
 */
static void
cache_room(struct hmap *c, size_t max, int64_t (*expires)(const void *),
    void (*free_entry)(void *))
{
	struct cache_walk w = { .now = clock_mono_ms(), .expires = expires };
	size_t n = hmap_count(c), i;

	if (n < max)
		return;
	w.expired = xreallocarray(NULL, n, sizeof(*w.expired));
	hmap_walk(c, cache_walk_fn, &w);
	if (w.nexpired == 0 && w.oldest != NULL)
		w.expired[w.nexpired++] = w.oldest;
	for (i = 0; i < w.nexpired; i++)
		free_entry(hmap_del(c, w.expired[i]));
	free(w.expired);
}

static int64_t
cache_entry_expires(const void *p)
{
	return ((const struct cache_entry *)p)->expires;
}

static void
cache_put(struct resolver *r, const char *key, const struct mx_answer *ans,
    unsigned ttl)
{
	struct cache_entry *e, *old;

	if (ttl == 0)
		return;
	if (hmap_get(r->cache, key) == NULL)
		cache_room(r->cache, RES_CACHE_MAX, cache_entry_expires,
		    cache_entry_free);
	e = xcalloc(1, sizeof(*e));
	if (!str_copy(e->key, key, sizeof(e->key))) {
		free(e);
		return;
	}
	e->expires = clock_mono_ms() + (int64_t)ttl * 1000;
	answer_copy(&e->ans, ans);
	if ((old = hmap_put(r->cache, e->key, e)) != NULL)
		cache_entry_free(old);
}

/*
 * cache_get - copy a live entry's answer into ans, the hosts of equal
 * preference shuffled again (a host's targets are consecutive).
 */
static bool
cache_get(struct resolver *r, const char *key, struct mx_answer *ans,
    unsigned *ttl)
{
	struct cache_entry *e = hmap_get(r->cache, key);
	struct mx_rank *rank;
	size_t *start, ngroups = 0, i, j, o, end;
	const struct mx_target *t;
	int64_t now;

	if (e == NULL)
		return false;
	if (e->expires <= (now = clock_mono_ms())) {
		cache_entry_free(hmap_del(r->cache, key));
		return false;
	}
	*ttl = (unsigned)((e->expires - now + 999) / 1000);
	*ans = e->ans;
	ans->targets = NULL;
	if (e->ans.ntargets == 0)
		return true;
	t = e->ans.targets;
	rank = xreallocarray(NULL, e->ans.ntargets, sizeof(*rank));
	start = xreallocarray(NULL, e->ans.ntargets + 1, sizeof(*start));
	for (i = 0; i < e->ans.ntargets; i++) {
		if (i > 0 && t[i].preference == t[i - 1].preference &&
		    strcmp(t[i].host, t[i - 1].host) == 0)
			continue;
		rank[ngroups].preference = t[i].preference;
		rank[ngroups].index = ngroups;
		start[ngroups++] = i;
	}
	start[ngroups] = e->ans.ntargets;
	mx_order(rank, ngroups, rnd_default, NULL);
	ans->targets = xreallocarray(NULL, e->ans.ntargets, sizeof(*t));
	for (i = 0, o = 0; i < ngroups; i++) {
		end = start[rank[i].index + 1];
		for (j = start[rank[i].index]; j < end; j++)
			ans->targets[o++] = t[j];
	}
	free(rank);
	free(start);
	return true;
}

/* ---- queries ---- */

static void
query_free(struct resolver_query *q)
{
	if (q->deliver != NULL)
		event_free(q->deliver);
	free(q->hosts);
	free(q->ans.targets);
	free(q);
}

static void
query_unlink(struct resolver_query *q)
{
	struct resolver *r = q->r;

	if (r == NULL)
		return;
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		r->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
	q->r = NULL;
}

static void
deliver_fire(evutil_socket_t fd, short what, void *arg)
{
	struct resolver_query *q = arg;

	/* detached first: the callback may free the resolver */
	query_unlink(q);
	q->delivering = true;
	q->cb(q->arg, &q->ans);
	query_free(q);
}

static void
log_answer(const struct resolver_query *q, bool cached)
{
	char b1[300], b2[300], addr[INET6_ADDRSTRLEN];
	const struct mx_target *t;
	const void *a;
	size_t i;

	if (!log_verbose())
		return;
	log_debug("resolver: %s: %s%s%s, %zu targets, ttl %u",
	    esc(b1, sizeof(b1), q->domain), status_name(q->ans.status),
	    q->ans.implicit ? " (no MX: A/AAAA)" : "",
	    cached ? " (cached)" : "", q->ans.ntargets, q->ttl);
	for (i = 0; i < q->ans.ntargets; i++) {
		t = &q->ans.targets[i];
		if (t->ss.ss_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)&t->ss)->sin6_addr;
		else
			a = &((const struct sockaddr_in *)&t->ss)->sin_addr;
		if (inet_ntop(t->ss.ss_family, a, addr, sizeof(addr)) == NULL)
			str_copy(addr, "?", sizeof(addr));
		log_debug("resolver: %s: target %zu: %s pref %u %s",
		    b1, i, esc(b2, sizeof(b2), t->host), t->preference, addr);
	}
}

/* finish - the answer is final: cache it for ttl seconds, deliver it */
static void
finish(struct resolver_query *q, enum dns_status st, unsigned ttl)
{
	q->stage = STAGE_DONE;
	q->ans.status = st;
	if (st != DNS_OK)
		q->ans.ntargets = 0;
	if (ttl > RES_MAX_TTL)
		ttl = RES_MAX_TTL;
	q->ttl = st == DNS_TEMPFAIL ? 0 : ttl;
	log_answer(q, false);
	if (q->r != NULL && q->ttl > 0 && !q->host_only)
		cache_put(q->r, q->domain, &q->ans, q->ttl);
	event_active(q->deliver, EV_TIMEOUT, 1);
}

static void ares_done(void *, int, int, unsigned char *, int);

/* an AD request's caller */
struct adreq {
	ares_callback cb;
	void *arg;
};

/* ad_done - the answer to an AD request, its status as ares_query gives it */
static void
ad_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct adreq a = *(struct adreq *)arg;

	free(arg);
	if (status == ARES_SUCCESS && (abuf == NULL || alen < 12))
		status = ARES_EBADRESP;
	else if (status == ARES_SUCCESS) {
		switch (abuf[3] & 0x0f) {	/* RCODE, RFC 1035 4.1.1 */
		case 0:
			status = (abuf[6] << 8 | abuf[7]) > 0 ? ARES_SUCCESS :
			    ARES_ENODATA;
			break;
		case 1:
			status = ARES_EFORMERR;
			break;
		case 3:
			status = ARES_ENOTFOUND;
			break;
		case 4:
			status = ARES_ENOTIMP;
			break;
		case 5:
			status = ARES_EREFUSED;
			break;
		default:
			status = ARES_ESERVFAIL;
			break;
		}
	}
	a.cb(a.arg, status, timeouts, abuf, alen);
}

/*
 * resolver_query_type - ask name's records of type; with resolver_dane the
 * question carries the AD bit, so that a validating resolver says whether
 * the answer is secure (RFC 6840 5.7)
 */
static void
resolver_query_type(struct resolver *r, const char *name, int type,
    ares_callback cb, void *arg)
{
	unsigned char *buf;
	struct adreq *a;
	int len, rc;

	if (!r->dane) {
		ares_query(r->ch, name, C_IN, type, cb, arg);
		return;
	}
	if ((rc = ares_create_query(name, C_IN, type, 0, 1, &buf, &len, 0)) !=
	    ARES_SUCCESS) {
		cb(arg, rc, 0, NULL, 0);	/* as ares_query does, from inside */
		return;
	}
	buf[3] |= DNS_HDR_AD;
	a = xmalloc(sizeof(*a));
	a->cb = cb;
	a->arg = arg;
	ares_send(r->ch, buf, len, ad_done, a);
	ares_free_string(buf);
}

/* answer_ad - the answer is secure: the AD bit of a loopback resolver */
static bool
answer_ad(const unsigned char *abuf, int alen)
{
	return abuf != NULL && alen >= 12 && (abuf[3] & DNS_HDR_AD) != 0;
}

static void
issue(struct resolver_query *q, size_t host, int type)
{
	struct req *rq = xmalloc(sizeof(*rq));
	const char *name = type == T_MX ? q->domain : q->hosts[host].name;
	char b[300], tlsa[300];

	rq->q = q;
	rq->host = host;
	rq->type = type;
	if (type == T_TLSA) {
		/* RFC 7672 3.1: the TLSA base domain is the MX host's name */
		snprintf(tlsa, sizeof(tlsa), "_%u._tcp.%s", q->r->dane_port, name);
		name = tlsa;
	}
	log_debug("resolver: %s: query %s %s", q->domain,
	    type == T_MX ? "MX" : type == T_A ? "A" : type == T_TLSA ? "TLSA" :
	    "AAAA", esc(b, sizeof(b), name));
	q->pending++;
	resolver_query_type(q->r, name, type, ares_done, rq);
}

/* build - every address look-up is back: the targets, in order */
static void
build(struct resolver_query *q)
{
	struct mx_target *t;
	struct rhost *h;
	size_t i, j, n6, n4, max = q->nhosts * RES_MAX_ADDRS;

	q->ans.targets = xreallocarray(NULL, max > 0 ? max : 1,
	    sizeof(*q->ans.targets));
	q->ans.ntargets = 0;
	for (i = 0; i < q->nhosts; i++) {
		h = &q->hosts[i];
		/* IPv6 first, yet leave IPv4 at least half of the places */
		n4 = h->n4 < RES_MAX_ADDRS / 2 ? h->n4 : RES_MAX_ADDRS / 2;
		n6 = h->n6 < RES_MAX_ADDRS - n4 ? h->n6 : RES_MAX_ADDRS - n4;
		n4 = h->n4 < RES_MAX_ADDRS - n6 ? h->n4 : RES_MAX_ADDRS - n6;
		for (j = 0; j < n6 + n4; j++) {
			t = &q->ans.targets[q->ans.ntargets++];
			memset(t, 0, sizeof(*t));
			str_copy(t->host, h->name, sizeof(t->host));
			t->preference = h->preference;
			t->dane = h->dane;
			t->ntlsa = h->ntlsa;
			memcpy(t->tlsa, h->tlsa, sizeof(t->tlsa));
			if (j < n6) {
				memcpy(&t->ss, &h->a6[j], sizeof(h->a6[j]));
				t->sslen = sizeof(h->a6[j]);
			} else {
				memcpy(&t->ss, &h->a4[j - n6], sizeof(h->a4[0]));
				t->sslen = sizeof(h->a4[0]);
			}
		}
	}
	if (q->ans.ntargets > 0)
		/* an answer with a look-up missing is not cached */
		finish(q, DNS_OK, q->tempfail ? 0 : q->ttl);
	else if (q->tempfail)
		finish(q, DNS_TEMPFAIL, 0);
	else
		finish(q, DNS_NOHOST, q->ttl < RES_NEG_TTL ? q->ttl : RES_NEG_TTL);
}

static void lookup_tlsa(struct resolver_query *);

/*
 * check_done - every answer of a stage is in: with DANE on and a secure
 * MX answer, the TLSA records of the hosts next (RFC 7672 2.2.1), then
 * the targets
 */
static void
check_done(struct resolver_query *q)
{
	if (q->pending != 0)
		return;
	if (q->stage == STAGE_ADDR && q->r != NULL && q->r->dane && q->secure &&
	    !q->host_only)
		lookup_tlsa(q);
	else if (q->stage == STAGE_ADDR || q->stage == STAGE_TLSA)
		build(q);
}

/* lookup_tlsa - TLSA for every host whose addresses are secure (RFC 7672 2.2.2) */
static void
lookup_tlsa(struct resolver_query *q)
{
	size_t i;

	q->stage = STAGE_TLSA;
	q->pending++;
	for (i = 0; i < q->nhosts && !q->cancelled; i++)
		if (!q->hosts[i].insecure && q->hosts[i].n4 + q->hosts[i].n6 > 0)
			issue(q, i, T_TLSA);
	q->pending--;
	check_done(q);
}

/* lookup_hosts - AAAA and A for every host */
static void
lookup_hosts(struct resolver_query *q)
{
	size_t i;

	q->stage = STAGE_ADDR;
	/* held while issuing: c-ares may call back from inside ares_query */
	q->pending++;
	for (i = 0; i < q->nhosts && !q->cancelled; i++) {
		issue(q, i, T_AAAA);
		if (!q->cancelled)
			issue(q, i, T_A);
	}
	q->pending--;
	check_done(q);
}

static void
ttl_min(struct resolver_query *q, int ttl)
{
	unsigned t = ttl < 0 ? 0 : (unsigned)ttl;

	if (t < q->ttl)
		q->ttl = t;
}

/* skip_name - past the (possibly compressed) name at off; 0 when bad */
static size_t
skip_name(const unsigned char *p, size_t len, size_t off)
{
	while (off < len) {
		if (p[off] == 0)
			return off + 1;
		if ((p[off] & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : 0;
		if ((p[off] & 0xc0) != 0)
			return 0;
		off += 1 + (size_t)p[off];
	}
	return 0;
}

/*
 * answer_ttl - the smallest TTL of the answer section's records of type
 * (ares_parse_mx_reply() keeps no TTL); false when the message is bad.
 */
static bool
answer_ttl(const unsigned char *p, int alen, int type, unsigned *ttl)
{
	size_t len = alen < 0 ? 0 : (size_t)alen, off = 12, rdlen;
	unsigned qd, an, i, t;
	bool any = false;

	if (len < 12)
		return false;
	qd = (unsigned)p[4] << 8 | p[5];
	an = (unsigned)p[6] << 8 | p[7];
	for (i = 0; i < qd; i++) {
		if ((off = skip_name(p, len, off)) == 0 || off + 4 > len)
			return false;
		off += 4;
	}
	for (i = 0; i < an; i++) {
		if ((off = skip_name(p, len, off)) == 0 || off + 10 > len)
			return false;
		t = (unsigned)p[off + 4] << 24 | (unsigned)p[off + 5] << 16 |
		    (unsigned)p[off + 6] << 8 | p[off + 7];
		if (t > 0x7fffffff)	/* RFC 2181 8 */
			t = 0;
		rdlen = (size_t)p[off + 8] << 8 | p[off + 9];
		if (((unsigned)p[off] << 8 | p[off + 1]) == (unsigned)type &&
		    (!any || t < *ttl)) {
			*ttl = t;
			any = true;
		}
		off += 10 + rdlen;
		if (off > len)
			return false;
	}
	if (!any)
		*ttl = 0;
	return true;
}

/*
 * negative_ttl - how long a "no such name" or "no such record" answer may
 * be kept (RFC 2308 5): the smaller of the SOA's TTL and its MINIMUM, from
 * the authority section; 0 when there is no SOA (then it is not kept)
 */
static unsigned
negative_ttl(const unsigned char *p, int alen)
{
	size_t len = alen < 0 ? 0 : (size_t)alen, off = 12, rdlen;
	unsigned qd, an, ns, i, t, min;

	if (p == NULL || len < 12)
		return 0;
	qd = (unsigned)p[4] << 8 | p[5];
	an = (unsigned)p[6] << 8 | p[7];
	ns = (unsigned)p[8] << 8 | p[9];
	for (i = 0; i < qd; i++) {
		if ((off = skip_name(p, len, off)) == 0 || off + 4 > len)
			return 0;
		off += 4;
	}
	for (i = 0; i < an + ns; i++) {
		if ((off = skip_name(p, len, off)) == 0 || off + 10 > len)
			return 0;
		t = (unsigned)p[off + 4] << 24 | (unsigned)p[off + 5] << 16 |
		    (unsigned)p[off + 6] << 8 | p[off + 7];
		rdlen = (size_t)p[off + 8] << 8 | p[off + 9];
		off += 10;
		if (off + rdlen > len)
			return 0;
		/* an SOA of the authority section: MINIMUM is its last field */
		if (i >= an && ((unsigned)p[off - 10] << 8 | p[off - 9]) == 6 &&
		    rdlen >= 20) {
			min = (unsigned)p[off + rdlen - 4] << 24 |
			    (unsigned)p[off + rdlen - 3] << 16 |
			    (unsigned)p[off + rdlen - 2] << 8 | p[off + rdlen - 1];
			if (t > 0x7fffffff)
				t = 0;
			return t < min ? t : min;
		}
		off += rdlen;
	}
	return 0;
}

/*
 * mx_hosts - the usable MX hosts of the reply, in the order to try them,
 * at most RES_MAX_HOSTS of them, into q->hosts; how many.
 */
static size_t
mx_hosts(struct resolver_query *q, struct ares_mx_reply *mx)
{
	struct ares_mx_reply *m, **use;
	struct mx_rank *rank;
	struct rhost *h;
	size_t n = 0, i;
	char b[300];

	for (m = mx; m != NULL; m = m->next)
		n++;
	use = xreallocarray(NULL, n, sizeof(*use));
	rank = xreallocarray(NULL, n, sizeof(*rank));
	for (m = mx, n = 0; m != NULL; m = m->next) {
		/* "." (RFC 7505) and names too long to keep are no host */
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0 ||
		    strlen(m->host) >= sizeof(h->name))
			continue;
		rank[n].preference = m->priority;
		rank[n].index = n;
		use[n++] = m;
	}
	mx_order(rank, n, rnd_default, NULL);
	if (n > RES_MAX_HOSTS)
		n = RES_MAX_HOSTS;
	q->hosts = xcalloc(n > 0 ? n : 1, sizeof(*q->hosts));
	for (i = 0; i < n; i++) {
		h = &q->hosts[i];
		m = use[rank[i].index];
		str_copy(h->name, m->host, sizeof(h->name));
		h->preference = m->priority;
		log_debug("resolver: %s: MX %u %s", q->domain, h->preference,
		    esc(b, sizeof(b), h->name));
	}
	free(use);
	free(rank);
	return q->nhosts = n;
}

static void
mx_done(struct resolver_query *q, int status, unsigned char *abuf, int alen)
{
	struct ares_mx_reply *mx = NULL;
	unsigned ttl = 0;
	size_t n;
	int rc;

	q->secure = answer_ad(abuf, alen);
	switch (status) {
	case ARES_SUCCESS:
		rc = ares_parse_mx_reply(abuf, alen, &mx);
		if (rc == ARES_ENODATA)		/* e.g. only a CNAME */
			goto implicit;
		if (rc != ARES_SUCCESS || !answer_ttl(abuf, alen, T_MX, &ttl)) {
			log_debug("resolver: %s: bad MX answer: %s", q->domain,
			    ares_strerror(rc));
			if (mx != NULL)
				ares_free_data(mx);
			finish(q, DNS_TEMPFAIL, 0);
			return;
		}
		ttl_min(q, (int)ttl);
		n = mx_hosts(q, mx);
		ares_free_data(mx);
		if (n == 0)
			finish(q, DNS_NULLMX, q->ttl < RES_NEG_TTL ? q->ttl :
			    RES_NEG_TTL);
		else
			lookup_hosts(q);
		return;
	case ARES_ENODATA:
	implicit:
		log_debug("resolver: %s: no MX, using its A/AAAA", q->domain);
		q->ans.implicit = true;
		q->hosts = xcalloc(1, sizeof(*q->hosts));
		q->nhosts = 1;
		str_copy(q->hosts[0].name, q->domain, sizeof(q->hosts[0].name));
		lookup_hosts(q);
		return;
	case ARES_ENOTFOUND:
		finish(q, DNS_NXDOMAIN, RES_NEG_TTL);
		return;
	default:
		log_debug("resolver: %s: MX look-up failed: %s", q->domain,
		    ares_strerror(status));
		finish(q, DNS_TEMPFAIL, 0);
		return;
	}
}

static void
addr_done(struct resolver_query *q, size_t host, int type, int status,
    unsigned char *abuf, int alen)
{
	struct rhost *h = &q->hosts[host];
	struct ares_addrttl a4[RES_MAX_ADDRS];
	struct ares_addr6ttl a6[RES_MAX_ADDRS];
	int n = RES_MAX_ADDRS, rc, i;
	char b[LOG_ESC(sizeof(h->name))];

	if (!answer_ad(abuf, alen))
		h->insecure = true;
	if (status == ARES_ENODATA || status == ARES_ENOTFOUND)
		return;		/* no address of this family */
	if (status != ARES_SUCCESS) {
		log_debug("resolver: %s: %s look-up for %s failed: %s",
		    q->domain, type == T_A ? "A" : "AAAA",
		    esc(b, sizeof(b), h->name), ares_strerror(status));
		q->tempfail = true;
		return;
	}
	if (type == T_A) {
		rc = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
		for (i = 0; rc == ARES_SUCCESS && i < n; i++) {
			struct sockaddr_in *sin = &h->a4[h->n4++];

			memset(sin, 0, sizeof(*sin));
			sin->sin_family = AF_INET;
			sin->sin_addr = a4[i].ipaddr;
			ttl_min(q, a4[i].ttl);
		}
	} else {
		rc = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
		for (i = 0; rc == ARES_SUCCESS && i < n; i++) {
			struct sockaddr_in6 *sin6 = &h->a6[h->n6++];

			memset(sin6, 0, sizeof(*sin6));
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, &a6[i].ip6addr,
			    sizeof(sin6->sin6_addr));
			ttl_min(q, a6[i].ttl);
		}
	}
	if (rc != ARES_SUCCESS && rc != ARES_ENODATA) {
		log_debug("resolver: %s: bad %s answer for %s: %s", q->domain,
		    type == T_A ? "A" : "AAAA", esc(b, sizeof(b), h->name),
		    ares_strerror(rc));
		q->tempfail = true;
	}
}

/*
 * tlsa_records - the TLSA records of the answer into h: the usable ones
 * (RFC 7672 3.1: DANE-TA(2) and DANE-EE(3); selectors 0 and 1; matching
 * types 0, 1 and 2 of the right length, at most MX_TLSA_DATA_MAX octets)
 * kept, MX_TLSA_MAX at most; how many records there were in all, -1 if
 * the message is bad
 */
static int
tlsa_records(const unsigned char *p, int alen, struct rhost *h)
{
	size_t len = alen < 0 ? 0 : (size_t)alen, off = 12, rdlen, dlen;
	unsigned qd, an, i;
	int all = 0;

	if (len < 12)
		return -1;
	qd = (unsigned)p[4] << 8 | p[5];
	an = (unsigned)p[6] << 8 | p[7];
	for (i = 0; i < qd; i++) {
		if ((off = skip_name(p, len, off)) == 0 || off + 4 > len)
			return -1;
		off += 4;
	}
	for (i = 0; i < an; i++) {
		const unsigned char *rd;

		if ((off = skip_name(p, len, off)) == 0 || off + 10 > len)
			return -1;
		rdlen = (size_t)p[off + 8] << 8 | p[off + 9];
		rd = p + off + 10;
		if (off + 10 + rdlen > len)
			return -1;
		off += 10 + rdlen;
		if (((unsigned)rd[-10] << 8 | rd[-9]) != T_TLSA)
			continue;	/* a CNAME on the way */
		all++;
		if (rdlen < 4)
			continue;
		dlen = rdlen - 3;
		if ((rd[0] != 2 && rd[0] != 3) || rd[1] > 1 || rd[2] > 2 ||
		    dlen > MX_TLSA_DATA_MAX || (rd[2] == 1 && dlen != 32) ||
		    (rd[2] == 2 && dlen != 64) || h->ntlsa >= MX_TLSA_MAX)
			continue;
		h->tlsa[h->ntlsa].usage = rd[0];
		h->tlsa[h->ntlsa].selector = rd[1];
		h->tlsa[h->ntlsa].mtype = rd[2];
		h->tlsa[h->ntlsa].len = (uint8_t)dlen;
		memcpy(h->tlsa[h->ntlsa].data, rd + 3, dlen);
		h->ntlsa++;
	}
	return all;
}

/*
 * tlsa_done - a host's TLSA answer (RFC 7672 2.2): none, or an insecure
 * one, leaves it opportunistic; a failed look-up makes it unusable now
 */
static void
tlsa_done(struct resolver_query *q, size_t host, int status,
    unsigned char *abuf, int alen)
{
	struct rhost *h = &q->hosts[host];
	char b[LOG_ESC(sizeof(h->name))];
	unsigned ttl;
	int all;

	if (status == ARES_ENODATA || status == ARES_ENOTFOUND)
		return;
	if (status == ARES_SUCCESS && !answer_ad(abuf, alen))
		return;
	if (status != ARES_SUCCESS || (all = tlsa_records(abuf, alen, h)) < 0) {
		log_debug("resolver: %s: TLSA look-up for %s failed: %s", q->domain,
		    esc(b, sizeof(b), h->name), ares_strerror(status));
		h->dane = MX_DANE_FAIL;
		h->ntlsa = 0;
		q->tempfail = true;	/* not cached */
		return;
	}
	if (all == 0)
		return;
	h->dane = h->ntlsa > 0 ? MX_DANE_VERIFY : MX_DANE_ENCRYPT;
	if (answer_ttl(abuf, alen, T_TLSA, &ttl))
		ttl_min(q, (int)ttl);
	log_debug("resolver: %s: TLSA of %s: %d records, %u usable", q->domain,
	    esc(b, sizeof(b), h->name), all, (unsigned)h->ntlsa);
}

static void
ares_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct req rq = *(struct req *)arg;
	struct resolver_query *q = rq.q;

	free(arg);
	q->pending--;
	if (q->cancelled || status == ARES_EDESTRUCTION) {
		q->cancelled = true;
		if (q->pending == 0 && !q->delivering) {
			query_unlink(q);
			query_free(q);
		}
		return;
	}
	if (rq.type == T_MX)
		mx_done(q, status, abuf, alen);
	else if (rq.type == T_TLSA) {
		tlsa_done(q, rq.host, status, abuf, alen);
		check_done(q);
	} else {
		addr_done(q, rq.host, rq.type, status, abuf, alen);
		check_done(q);
	}
}

/* ---- the interface ---- */

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;

static void
ares_lib_init(void)
{
	int rc;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		log_warnx("resolver: ares_library_init: %s", ares_strerror(rc));
}

/* resolver_hosts_file - see resolver.h */
bool
resolver_hosts_file(const char *name, unsigned port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct ares_options o = { .lookups = (char *)"f" };	/* files only */
	struct hostent *he = NULL;
	ares_channel ch;
	bool ok = false;

	pthread_once(&ares_once, ares_lib_init);
	if (ares_init_options(&ch, &o, ARES_OPT_LOOKUPS) != ARES_SUCCESS)
		return false;
	if (ares_gethostbyname_file(ch, name, AF_INET, &he) != ARES_SUCCESS &&
	    ares_gethostbyname_file(ch, name, AF_INET6, &he) != ARES_SUCCESS)
		he = NULL;
	memset(ss, 0, sizeof(*ss));
	if (he != NULL && he->h_addr_list[0] != NULL && port <= 65535) {
		if (he->h_addrtype == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)port);
			memcpy(&s4->sin_addr, he->h_addr_list[0], sizeof(s4->sin_addr));
			*len = sizeof(*s4);
			ok = true;
		} else if (he->h_addrtype == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)port);
			memcpy(&s6->sin6_addr, he->h_addr_list[0], sizeof(s6->sin6_addr));
			*len = sizeof(*s6);
			ok = true;
		}
	}
	if (he != NULL)
		ares_free_hostent(he);
	ares_destroy(ch);
	return ok;
}

static bool
set_server(struct resolver *r, const struct sockaddr *sa, socklen_t salen)
{
	struct ares_addr_port_node n;
	unsigned port;
	int rc;

	memset(&n, 0, sizeof(n));
	if (sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const void *)sa;

		n.family = AF_INET;
		memcpy(&n.addr.addr4, &sin->sin_addr, sizeof(n.addr.addr4));
		port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6 &&
	    salen >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		n.family = AF_INET6;
		memcpy(&n.addr.addr6, &sin6->sin6_addr, sizeof(n.addr.addr6));
		port = ntohs(sin6->sin6_port);
	} else {
		log_warnx("resolver: dns_server is not an IPv4/IPv6 address");
		return false;
	}
	if (port == 0)
		port = 53;
	n.udp_port = n.tcp_port = (int)port;
	if ((rc = ares_set_servers_ports(r->ch, &n)) != ARES_SUCCESS) {
		log_warnx("resolver: ares_set_servers_ports: %s",
		    ares_strerror(rc));
		return false;
	}
	log_debug("resolver: DNS server port %u", port);
	return true;
}

struct resolver *
resolver_new(struct event_base *base, const struct sockaddr *server,
    socklen_t serverlen)
{
	struct resolver *r;
	struct ares_options o;
	int rc;

	pthread_once(&ares_once, ares_lib_init);
	r = xcalloc(1, sizeof(*r));
	r->base = base;
	memset(&o, 0, sizeof(o));
	o.timeout = RES_TIMEOUT_MS;
	o.tries = RES_TRIES;
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = r;
	rc = ares_init_options(&r->ch, &o,
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		log_warnx("resolver: ares_init_options: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	if (server != NULL && !set_server(r, server, serverlen)) {
		ares_destroy(r->ch);	/* no socket yet: nothing to unwatch */
		free(r);
		return NULL;
	}
	if ((r->timer = evtimer_new(base, timer_fire, r)) == NULL)
		fatalx("resolver: evtimer_new failed");
	r->cache = hmap_new();
	r->rcache = hmap_new();
	r->inflight = hmap_new();
	return r;
}

/* resolver_dane - see resolver.h */
bool
resolver_dane(struct resolver *r, unsigned port)
{
	struct ares_addr_port_node *servers = NULL, *s;
	bool loopback = true;
	size_t n = 0;

	if (ares_get_servers_ports(r->ch, &servers) != ARES_SUCCESS)
		loopback = false;
	for (s = servers; s != NULL; s = s->next) {
		struct in6_addr a6;

		n++;
		if (s->family == AF_INET)
			loopback = loopback && (ntohl(s->addr.addr4.s_addr) >> 24) == 127;
		else {
			memcpy(&a6, &s->addr.addr6, sizeof(a6));
			loopback = loopback && IN6_IS_ADDR_LOOPBACK(&a6);
		}
	}
	ares_free_data(servers);
	if (n == 0 || !loopback) {
		log_info("resolver: the DNS server is not on loopback: its AD bit "
		    "is not trusted, DANE is off (doc/security.md)");
		return false;
	}
	r->dane = true;
	r->dane_port = port;
	return true;
}

struct event_base *
resolver_base(struct resolver *r)
{
	return r->base;
}

void
resolver_free(struct resolver *r)
{
	struct resolver_query *q;
	struct rsock *s;

	if (r == NULL)
		return;
	/* cancel everything; what c-ares still holds goes in ares_destroy */
	while ((q = r->queries) != NULL) {
		query_unlink(q);
		q->cancelled = true;
		event_del(q->deliver);
		if (q->pending == 0)
			query_free(q);
	}
	ares_destroy(r->ch);
	while ((s = r->socks) != NULL) {
		r->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	event_free(r->timer);
	hmap_free(r->cache, cache_entry_free);
	hmap_free(r->rcache, rec_entry_free);
	hmap_free(r->inflight, NULL);	/* ares_destroy answered them all */
	free(r);
}

/*
 * domain_ok - an A-label domain c-ares can look up as it is: LDH labels
 * (and '_') of 1-63 octets, 253 at most in all.
 */
static bool
domain_ok(const char *d, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return false;
	for (; *d != '\0'; d++) {
		if (*d == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') ||
		    *d == '-' || *d == '_') {
			if (++label > 63)
				return false;
		} else
			return false;
	}
	return label > 0;
}

static struct resolver_query *
query_start(struct resolver *r, const char *domain, resolver_cb cb, void *arg,
    bool host_only)
{
	struct resolver_query *q = xcalloc(1, sizeof(*q));
	size_t len;
	char b[300];

	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->ttl = RES_MAX_TTL;
	if ((q->deliver = evtimer_new(r->base, deliver_fire, q)) == NULL)
		fatalx("resolver: evtimer_new failed");
	q->next = r->queries;
	if (r->queries != NULL)
		r->queries->prev = q;
	r->queries = q;

	if (!str_copy(q->domain, domain, sizeof(q->domain)))
		q->domain[0] = '\0';
	len = strlen(q->domain);
	if (len > 0 && q->domain[len - 1] == '.')
		q->domain[--len] = '\0';
	str_lower(q->domain);
	if (!domain_ok(q->domain, len)) {
		/* no such name can exist: as NXDOMAIN, not cached */
		log_debug("resolver: bad domain %s", esc(b, sizeof(b), domain));
		q->stage = STAGE_DONE;
		q->ans.status = DNS_NXDOMAIN;
		event_active(q->deliver, EV_TIMEOUT, 1);
		return q;
	}
	if (host_only) {
		q->host_only = true;
		q->ans.implicit = true;
		q->hosts = xcalloc(1, sizeof(*q->hosts));
		q->nhosts = 1;
		str_copy(q->hosts[0].name, q->domain, sizeof(q->hosts[0].name));
		lookup_hosts(q);
		timer_rearm(r);
		return q;
	}
	if (cache_get(r, q->domain, &q->ans, &q->ttl)) {
		q->stage = STAGE_DONE;
		log_answer(q, true);
		event_active(q->deliver, EV_TIMEOUT, 1);
		return q;
	}
	issue(q, 0, T_MX);
	timer_rearm(r);
	return q;
}

struct resolver_query *
resolver_mx(struct resolver *r, const char *domain, resolver_cb cb, void *arg)
{
	return query_start(r, domain, cb, arg, false);
}

/* resolver_host - see resolver.h */
struct resolver_query *
resolver_host(struct resolver *r, const char *host, resolver_cb cb, void *arg)
{
	return query_start(r, host, cb, arg, true);
}

void
resolver_cancel(struct resolver_query *q)
{
	if (q == NULL || q->delivering || q->cancelled)
		return;
	q->cancelled = true;
	event_del(q->deliver);
	query_unlink(q);
	if (q->pending == 0)
		query_free(q);
}

/* ---- plain look-ups (resolver_records) ---------------------------------- */

/* a caller waiting for a request's answer */
struct rec_waiter {
	struct rec_waiter *next;
	resolver_records_cb cb;
	void *arg;
};

/* one c-ares request of resolver_records, and everyone waiting for it */
struct rec_req {
	struct resolver *r;
	enum dns_rr rr;
	char name[256];
	char key[272];			/* "RR/name"; "" when not shared */
	struct rec_waiter *waiters, **tail;
};

static const int rr_type[] = { [DNS_RR_A] = T_A, [DNS_RR_AAAA] = T_AAAA,
    [DNS_RR_MX] = T_MX, [DNS_RR_TXT] = T_TXT, [DNS_RR_PTR] = T_PTR };

/* rec_texts - the answer's records of rq->rr as text into *v; -1 if it does not parse */
static int
rec_texts(const struct rec_req *rq, unsigned char *abuf, int alen, char ***v,
    size_t *n)
{
	*v = NULL;
	*n = 0;
	switch (rq->rr) {
	case DNS_RR_A:
	case DNS_RR_AAAA: {
		struct ares_addrttl a4[16];
		struct ares_addr6ttl a6[16];
		int k = 16;
		char b[INET6_ADDRSTRLEN];

		if ((rq->rr == DNS_RR_A ? ares_parse_a_reply(abuf, alen, NULL, a4,
		    &k) : ares_parse_aaaa_reply(abuf, alen, NULL, a6, &k)) !=
		    ARES_SUCCESS)
			return -1;
		*v = xcalloc((size_t)k + 1, sizeof(**v));
		for (int i = 0; i < k; i++) {
			if (rq->rr == DNS_RR_A)
				inet_ntop(AF_INET, &a4[i].ipaddr, b, sizeof(b));
			else
				inet_ntop(AF_INET6, &a6[i].ip6addr, b, sizeof(b));
			(*v)[(*n)++] = xstrdup(b);
		}
		return 0;
	}
	case DNS_RR_MX: {
		struct ares_mx_reply *mx = NULL, *m;

		if (ares_parse_mx_reply(abuf, alen, &mx) != ARES_SUCCESS)
			return -1;
		for (m = mx; m; m = m->next) {
			*v = xreallocarray(*v, *n + 1, sizeof(**v));
			(*v)[(*n)++] = xasprintf("%u %s", m->priority, m->host);
		}
		ares_free_data(mx);
		return 0;
	}
	case DNS_RR_TXT: {
		struct ares_txt_ext *txt = NULL, *t;
		struct strbuf one = { 0 };

		if (ares_parse_txt_reply_ext(abuf, alen, &txt) != ARES_SUCCESS)
			return -1;
		/* a record's strings are one text (RFC 6376 3.6.2.2) */
		for (t = txt; t; t = t->next) {
			if (t->record_start && one.p) {
				*v = xreallocarray(*v, *n + 1, sizeof(**v));
				(*v)[(*n)++] = one.p;
				memset(&one, 0, sizeof(one));
			}
			strbuf_add(&one, t->txt, t->length);
		}
		if (one.p) {
			*v = xreallocarray(*v, *n + 1, sizeof(**v));
			(*v)[(*n)++] = one.p;
		}
		ares_free_data(txt);
		return 0;
	}
	case DNS_RR_PTR: {
		struct hostent *h = NULL;
		unsigned char addr[16] = { 0 };

		if (ares_parse_ptr_reply(abuf, alen, addr, 4, AF_INET, &h) !=
		    ARES_SUCCESS)
			return -1;
		*v = xcalloc(1, sizeof(**v));
		(*v)[(*n)++] = xstrdup(h->h_name);
		ares_free_hostent(h);
		return 0;
	}
	}
	return -1;
}

/* ---- the records' cache ---- */

struct rec_entry {
	int64_t expires;	/* monotonic ms (clock_mono_ms) */
	enum dns_status st;
	char **texts;
	size_t n;
	char key[272];		/* "RR/name" */
};

static char **
texts_copy(char *const *v, size_t n)
{
	char **out = xcalloc(n + 1, sizeof(*out));

	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void
texts_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
rec_entry_free(void *p)
{
	struct rec_entry *e = p;

	texts_free(e->texts, e->n);
	free(e);
}

static int64_t
rec_entry_expires(const void *p)
{
	return ((const struct rec_entry *)p)->expires;
}

/* rec_key - "RR/name", the name in lower case; false if it is too long */
static bool
rec_key(char *key, size_t size, enum dns_rr rr, const char *name)
{
	size_t o;

	if (!bsnprintf(key, size, "%d/%s", (int)rr, name))
		return false;
	for (o = 0; key[o]; o++)
		if (key[o] >= 'A' && key[o] <= 'Z')
			key[o] = (char)(key[o] - 'A' + 'a');
	return true;
}

static void
rec_cache_put(struct resolver *r, const char *key, enum dns_status st,
    char **v, size_t n, unsigned ttl)
{
	struct rec_entry *e, *old;

	if (ttl == 0)
		return;
	if (ttl > RES_MAX_TTL)
		ttl = RES_MAX_TTL;
	if (hmap_get(r->rcache, key) == NULL)
		cache_room(r->rcache, RES_RCACHE_MAX, rec_entry_expires,
		    rec_entry_free);
	e = xcalloc(1, sizeof(*e));
	str_copy(e->key, key, sizeof(e->key));
	e->expires = clock_mono_ms() + (int64_t)ttl * 1000;
	e->st = st;
	e->texts = texts_copy(v, n);
	e->n = n;
	if ((old = hmap_put(r->rcache, e->key, e)) != NULL)
		rec_entry_free(old);
}

/* a cache hit on its way to the caller */
struct rec_hit {
	resolver_records_cb cb;
	void *arg;
	enum dns_status st;
	char **texts;
	size_t n;
};

static void
rec_hit_fire(evutil_socket_t fd, short what, void *arg)
{
	struct rec_hit *h = arg;

	(void)fd;
	(void)what;
	h->cb(h->arg, h->st, h->texts, h->n);
	texts_free(h->texts, h->n);
	free(h);
}

/* rec_cache_get - a live entry for key, handed to cb from an event: true */
static bool
rec_cache_get(struct resolver *r, const char *key, resolver_records_cb cb,
    void *arg)
{
	static const struct timeval now = { 0, 0 };
	struct rec_entry *e = hmap_get(r->rcache, key);
	struct rec_hit *h;

	if (e == NULL)
		return false;
	if (e->expires <= clock_mono_ms()) {
		rec_entry_free(hmap_del(r->rcache, key));
		return false;
	}
	h = xcalloc(1, sizeof(*h));
	h->cb = cb;
	h->arg = arg;
	h->st = e->st;
	h->texts = texts_copy(e->texts, e->n);
	h->n = e->n;
	if (event_base_once(r->base, -1, EV_TIMEOUT, rec_hit_fire, h,
	    &now) == -1)
		fatalx("resolver: event_base_once failed");
	return true;
}

static void
rec_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct rec_req *rq = arg;
	char **v = NULL;
	size_t n = 0;
	enum dns_status st;
	unsigned ttl = 0;
	struct rec_waiter *w;

	if (status == ARES_SUCCESS)
		st = rec_texts(rq, abuf, alen, &v, &n) == 0 ? DNS_OK :
		    DNS_TEMPFAIL;
	else if (status == ARES_ENOTFOUND)
		st = DNS_NXDOMAIN;
	else if (status == ARES_ENODATA)
		st = DNS_NOHOST;
	else
		st = DNS_TEMPFAIL;
	if (st == DNS_OK && n == 0)
		st = DNS_NOHOST;
	if (st == DNS_OK && !answer_ttl(abuf, alen, rr_type[rq->rr], &ttl))
		ttl = 0;
	else if (st == DNS_NXDOMAIN || st == DNS_NOHOST) {
		ttl = negative_ttl(abuf, alen);
		if (ttl > RES_NEG_TTL)
			ttl = RES_NEG_TTL;
	}
	/* ARES_EDESTRUCTION (resolver_free) is a temporary failure: no cache */
	if (rq->key[0] != '\0') {
		if (hmap_get(rq->r->inflight, rq->key) == rq)
			hmap_del(rq->r->inflight, rq->key);
		if (st != DNS_TEMPFAIL)
			rec_cache_put(rq->r, rq->key, st, v, n, ttl);
	}
	/* a callback asking the same again finds the cache, or asks anew */
	while ((w = rq->waiters) != NULL) {
		rq->waiters = w->next;
		w->cb(w->arg, st, v, n);
		free(w);
	}
	texts_free(v, n);
	free(rq);
}

void
resolver_records(struct resolver *r, const char *name, enum dns_rr rr,
    resolver_records_cb cb, void *arg)
{
	struct rec_waiter *w = xcalloc(1, sizeof(*w));
	struct rec_req *rq;
	char key[272];
	bool keyed = rec_key(key, sizeof(key), rr, name);

	w->cb = cb;
	w->arg = arg;
	if (keyed && rec_cache_get(r, key, cb, arg)) {
		free(w);
		return;
	}
	/* the same question in flight: one more waiter, no second request */
	if (keyed && (rq = hmap_get(r->inflight, key)) != NULL) {
		*rq->tail = w;
		rq->tail = &w->next;
		return;
	}
	rq = xcalloc(1, sizeof(*rq));
	rq->r = r;
	rq->rr = rr;
	str_copy(rq->name, name, sizeof(rq->name));
	rq->waiters = w;
	rq->tail = &w->next;
	if (keyed) {
		str_copy(rq->key, key, sizeof(rq->key));
		hmap_put(r->inflight, rq->key, rq);
	}
	ares_query(r->ch, rq->name, C_IN, rr_type[rr], rec_done, rq);
	timer_rearm(r);
}
