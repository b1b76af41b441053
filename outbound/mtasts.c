/*
 * mtasts.c - MTA-STS (RFC 8461) and the MX look-up with it applied.
 *
 * A look-up asks _mta-sts.DOMAIN TXT (resolver_records).  Exactly one
 * "v=STSv1" record with an id makes the domain a policy domain (3.1).
 * A cached policy that is still within its max_age and has that id is
 * used as it is; else the policy is fetched from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (3.3): the name through
 * resolver_host, then evhttp over bufferevent_openssl, the certificate
 * verified against tls_ca_file or the system's CAs and the name checked,
 * no redirect, only a 200, at most STS_POLICY_MAX octets, within
 * STS_FETCH_TIMEOUT.  Nothing blocks the loop.  One fetch per domain
 * at a time: a look-up that finds one in flight (for the same id) waits
 * for its result, so a burst of mail to a domain makes one request.  A fetched policy replaces
 * the cached one, in memory and in the cache directory (a file per
 * domain, written on a disk worker: tmp, fsync, rename).  When the TXT
 * look-up finds nothing or fails, or the fetch fails, a cached policy
 * still within its max_age is used (RFC 8461 5.1), else there is none:
 * that alone never delays mail (SPEC 9).
 *
 * tlspolicy_mx runs resolver_mx and the MTA-STS look-up side by side and
 * marks each target (mx_target.sts, sts_match); outbound/client.c does
 * the rest (doc/security.md, "Outbound TLS").
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "../common/clock.h"
#include "../common/hmap.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "mtasts.h"

#define STS_FETCH_TIMEOUT	10	/* seconds for the whole HTTPS fetch */
#define STS_CACHE_MAX		4096	/* policies kept in memory */

struct sts_entry {
	char domain[256];
	struct sts_policy p;
	time_t expires;			/* wall clock: it outlives a restart */
	char *text;			/* the policy as fetched (for the file) */
};

struct sts {
	struct event_base *base;
	struct resolver *r;
	SSL_CTX *ctx;
	unsigned port;
	char *dir;
	struct hmap *cache;		/* domain -> struct sts_entry */
	struct hmap *fetching;		/* domain -> the query fetching its policy */
	struct sts_query *queries;	/* in flight */
};

typedef void sts_cb(void *arg, const struct sts_policy *);	/* NULL: none */

struct sts_query {
	struct sts *s;
	struct sts_query *prev, *next;
	char domain[256];
	char id[33];			/* the TXT's */
	sts_cb *cb;
	void *arg;
	bool cancelled;
	bool waiting;			/* a resolver callback is owed to us */
	struct resolver_query *rq;
	struct evhttp_connection *evcon;
	struct event *ev;		/* deliver / free, from the loop */
	struct sts_policy result;	/* a copy: the cache may change meanwhile */
	bool has_result;
	bool leader;			/* s->fetching names it */
	struct sts_query *followers;	/* waiting for its fetch */
	struct sts_query *next_follower, *follows;
};

/* ---- the policy ---- */

static bool
word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncmp(s, w, n) == 0;
}

/* sts_policy_parse - see mtasts.h (RFC 8461 3.2: "key: value" lines) */
bool
sts_policy_parse(const char *text, size_t len, struct sts_policy *p)
{
	const char *e = text + len, *line = text;
	bool version = false, mode = false, age = false;

	memset(p, 0, sizeof(*p));
	while (line < e) {
		const char *nl = memchr(line, '\n', (size_t)(e - line));
		const char *end = nl ? nl : e, *colon, *v;
		size_t kl, vl;

		if (end > line && end[-1] == '\r')
			end--;
		colon = memchr(line, ':', (size_t)(end - line));
		if (colon != NULL) {
			kl = (size_t)(colon - line);
			for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
				;
			vl = (size_t)(end - v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (word_is(line, kl, "version"))
				version = word_is(v, vl, "STSv1");
			else if (word_is(line, kl, "mode")) {
				mode = true;
				if (word_is(v, vl, "enforce"))
					p->mode = STS_MODE_ENFORCE;
				else if (word_is(v, vl, "testing"))
					p->mode = STS_MODE_TESTING;
				else if (word_is(v, vl, "none"))
					p->mode = STS_MODE_NONE;
				else
					return false;
			} else if (word_is(line, kl, "max_age")) {
				unsigned long long a = 0;

				if (vl == 0 || vl > 10)
					return false;
				for (size_t i = 0; i < vl; i++) {
					if (!isdigit((unsigned char)v[i]))
						return false;
					a = a * 10 + (unsigned)(v[i] - '0');
				}
				p->max_age = a > STS_MAX_AGE ? STS_MAX_AGE : (unsigned)a;
				age = true;
			} else if (word_is(line, kl, "mx") && vl > 0 &&
			    vl < sizeof(p->mx[0]) && p->nmx < STS_MX_MAX) {
				memcpy(p->mx[p->nmx], v, vl);
				p->mx[p->nmx][vl] = '\0';
				str_lower(p->mx[p->nmx]);
				p->nmx++;
			}
		}
		line = nl ? nl + 1 : e;
	}
	/* RFC 8461 3.2: version, mode and max_age; mx unless the mode is none */
	return version && mode && age && (p->nmx > 0 || p->mode == STS_MODE_NONE);
}

/* sts_mx_match - see mtasts.h */
bool
sts_mx_match(const struct sts_policy *p, const char *host)
{
	char h[256];
	size_t n;

	if (!str_copy(h, host, sizeof(h)))
		return false;
	str_lower(h);
	n = strlen(h);
	if (n > 0 && h[n - 1] == '.')
		h[--n] = '\0';
	for (size_t i = 0; i < p->nmx; i++) {
		const char *m = p->mx[i];

		if (m[0] == '*' && m[1] == '.') {
			/* RFC 8461 4.1: the wildcard is one whole left-most label */
			const char *dot = strchr(h, '.');

			if (dot != NULL && dot > h && strcmp(dot + 1, m + 2) == 0)
				return true;
		} else if (strcmp(h, m) == 0)
			return true;
	}
	return false;
}

/* ---- the cache ---- */

static void
entry_free(void *v)
{
	struct sts_entry *e = v;

	if (e == NULL)
		return;
	free(e->text);
	free(e);
}

/* domain_file_ok - a lower-case LDH domain, safe as a file name */
static bool
domain_file_ok(const char *d)
{
	if (d[0] == '\0' || d[0] == '.' || strlen(d) > 253)
		return false;
	for (; *d; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') ||
		    *d == '-' || *d == '.'))
			return false;
	return true;
}

/* cache_load - the files of dir; the expired ones are left to be replaced */
static void
cache_load(struct sts *s)
{
	DIR *d = opendir(s->dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[1024], id[64];
		long long exp;
		FILE *f;
		struct sts_entry *e;
		char *text;
		size_t n;
		int off = 0;

		if (!domain_file_ok(de->d_name) ||
		    !bsnprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name) ||
		    (f = fopen(path, "r")) == NULL)
			continue;
		text = xmalloc(STS_POLICY_MAX + 128);
		n = fread(text, 1, STS_POLICY_MAX + 127, f);
		fclose(f);
		text[n] = '\0';
		e = xcalloc(1, sizeof(*e));
		if (sscanf(text, "id %32s\nexpires %lld\n%n", id, &exp, &off) != 2 ||
		    off <= 0 || !sts_policy_parse(text + off, n - (size_t)off, &e->p)) {
			log_warnx("mta-sts: %s: not a cached policy, ignored", path);
			free(text);
			free(e);
			continue;
		}
		str_copy(e->domain, de->d_name, sizeof(e->domain));
		str_copy(e->p.id, id, sizeof(e->p.id));
		e->expires = (time_t)exp;
		e->text = xstrdup(text + off);
		free(text);
		entry_free(hmap_put(s->cache, e->domain, e));
	}
	closedir(d);
}

struct cache_job {
	char path[1024], tmp[1040];
	char *data;
	size_t len;
	int err;
};

static void
cache_write_work(void *arg)
{
	struct cache_job *j = arg;
	int fd;

	errno = 0;
	fd = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd == -1 || write(fd, j->data, j->len) != (ssize_t)j->len ||
	    fsync(fd) == -1 || rename(j->tmp, j->path) == -1)
		j->err = errno ? errno : EIO;
	if (fd != -1)
		close(fd);
	if (j->err)
		unlink(j->tmp);
}

static void
cache_write_done(void *arg)
{
	struct cache_job *j = arg;

	if (j->err)
		log_warnx("mta-sts: cannot write %s: %s", j->path, strerror(j->err));
	free(j->data);
	free(j);
}

/* cache_put - e is the domain's policy now; its file follows on a worker */
static void
cache_put(struct sts *s, struct sts_entry *e)
{
	struct cache_job *j;

	if (hmap_get(s->cache, e->domain) == NULL && hmap_count(s->cache) >=
	    STS_CACHE_MAX) {
		/* XXX: full of live policies: this one is used but not kept */
		log_warnx("mta-sts: %zu policies cached already", hmap_count(s->cache));
		return;
	}
	entry_free(hmap_put(s->cache, e->domain, e));
	j = xcalloc(1, sizeof(*j));
	if (!bsnprintf(j->path, sizeof(j->path), "%s/%s", s->dir, e->domain) ||
	    !bsnprintf(j->tmp, sizeof(j->tmp), "%s/.%s.tmp", s->dir, e->domain)) {
		free(j);
		return;
	}
	j->data = xasprintf("id %s\nexpires %lld\n%s", e->p.id,
	    (long long)e->expires, e->text);
	j->len = strlen(j->data);
	worker_submit(cache_write_work, cache_write_done, j);
}

/* cache_live - the domain's cached policy within its max_age, or NULL */
static const struct sts_entry *
cache_live(struct sts *s, const char *domain)
{
	const struct sts_entry *e = hmap_get(s->cache, domain);

	return e != NULL && e->expires > clock_now() ? e : NULL;
}

/* ---- a look-up ---- */

static void
query_unlink(struct sts_query *q)
{
	if (q->s == NULL)
		return;
	if (q->prev)
		q->prev->next = q->next;
	else
		q->s->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void follower_unlink(struct sts_query *);

static void
query_free(struct sts_query *q)
{
	if (q->leader && q->s != NULL && hmap_get(q->s->fetching, q->domain) == q)
		hmap_del(q->s->fetching, q->domain);
	follower_unlink(q);
	query_unlink(q);
	if (q->rq)
		resolver_cancel(q->rq);
	if (q->evcon)
		evhttp_connection_free(q->evcon);
	if (q->ev)
		event_free(q->ev);
	free(q);
}

static void
deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sts_query *q = arg;

	if (!q->cancelled)
		q->cb(q->arg, q->has_result ? &q->result : NULL);
	query_free(q);
}

/* follower_unlink - q no longer waits for another query's fetch */
static void
follower_unlink(struct sts_query *q)
{
	struct sts_query **fp;

	if (q->follows == NULL)
		return;
	for (fp = &q->follows->followers; *fp != NULL; fp = &(*fp)->next_follower)
		if (*fp == q) {
			*fp = q->next_follower;
			break;
		}
	q->follows = NULL;
}

/*
 * finish - hand p (NULL: no policy) over from the loop, then free q; a
 * fetch's result goes to the queries that waited for it too
 */
static void
finish(struct sts_query *q, const struct sts_policy *p)
{
	struct sts_query *f;

	q->has_result = p != NULL;
	if (p != NULL)
		q->result = *p;
	event_active(q->ev, EV_TIMEOUT, 1);
	if (q->leader) {
		if (q->s != NULL && hmap_get(q->s->fetching, q->domain) == q)
			hmap_del(q->s->fetching, q->domain);
		q->leader = false;
	}
	while ((f = q->followers) != NULL) {
		q->followers = f->next_follower;
		f->follows = NULL;
		finish(f, p);
	}
}

/* fallback - the fetch or the TXT look-up failed: the cached policy, if live */
static void
fallback(struct sts_query *q, const char *why)
{
	const struct sts_entry *e = cache_live(q->s, q->domain);
	char esc[LOG_ESC(256)];

	log_info("mta-sts domain=%s %s%s", log_field(esc, sizeof(esc), q->domain),
	    why, e ? ", the cached policy stays" : "");
	finish(q, e ? &e->p : NULL);
}

static void
http_done(struct evhttp_request *req, void *arg)
{
	struct sts_query *q = arg;
	struct sts_entry *e;
	struct evbuffer *body;
	size_t len;
	char why[128], esc[LOG_ESC(256)];

	if (q->s == NULL)
		return;		/* sts_free: the connection goes with it */
	if (req == NULL || evhttp_request_get_response_code(req) != 200) {
		/* RFC 8461 3.3: no redirect, nothing but a 200 */
		if (req == NULL || evhttp_request_get_response_code(req) == 0)
			snprintf(why, sizeof(why), "policy fetch failed (no "
			    "answer: connection, TLS or certificate)");
		else
			snprintf(why, sizeof(why), "policy fetch failed (HTTP %d)",
			    evhttp_request_get_response_code(req));
		fallback(q, why);
		return;
	}
	body = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(body);
	e = xcalloc(1, sizeof(*e));
	e->text = xmalloc(len + 1);
	evbuffer_copyout(body, e->text, len);
	e->text[len] = '\0';
	if (len > STS_POLICY_MAX || strlen(e->text) != len ||
	    !sts_policy_parse(e->text, len, &e->p)) {
		entry_free(e);
		fallback(q, "policy is not valid");
		return;
	}
	str_copy(e->domain, q->domain, sizeof(e->domain));
	str_copy(e->p.id, q->id, sizeof(e->p.id));
	e->expires = clock_now() + (time_t)e->p.max_age;
	log_info("mta-sts domain=%s policy fetched id=%s mode=%s max_age=%u mx=%zu",
	    log_field(esc, sizeof(esc), q->domain), q->id,
	    e->p.mode == STS_MODE_ENFORCE ? "enforce" :
	    e->p.mode == STS_MODE_TESTING ? "testing" : "none", e->p.max_age,
	    e->p.nmx);
	cache_put(q->s, e);
	finish(q, &e->p);
	if (hmap_get(q->s->cache, q->domain) != e)
		entry_free(e);	/* not kept (the cache is full): this look-up's only */
}

/* sts_https - see mtasts.h */
struct evhttp_connection *
sts_https(struct sts *s, const struct mx_target *t, unsigned port,
    const char *host)
{
	char ip[INET6_ADDRSTRLEN];
	struct evhttp_connection *evcon;
	struct bufferevent *bev;
	SSL *ssl;

	if (t->ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&t->ss)->sin6_addr,
		    ip, sizeof(ip));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&t->ss)->sin_addr,
		    ip, sizeof(ip));
	if ((ssl = SSL_new(s->ctx)) == NULL)
		fatalx("SSL_new");
	/* a valid certificate for host (RFC 6125; RFC 8461 3.3, RFC 8460 5.4) */
	SSL_set_tlsext_host_name(ssl, host);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(ssl, host) != 1)
		fatalx("SSL_set1_host");
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	bev = bufferevent_openssl_socket_new(s->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		fatalx("bufferevent_openssl_socket_new");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* an address, never a name: evhttp resolves nothing (it would block) */
	evcon = evhttp_connection_base_bufferevent_new(s->base, NULL, bev,
	    ip, (unsigned short)port);
	if (evcon == NULL)
		fatalx("evhttp_connection_base_bufferevent_new");
	evhttp_connection_set_timeout(evcon, STS_FETCH_TIMEOUT);
	evhttp_connection_set_retries(evcon, 0);
	evhttp_connection_set_max_body_size(evcon, STS_POLICY_MAX);
	evhttp_connection_set_max_headers_size(evcon, 16384);
	return evcon;
}

/* fetch - the policy host's address is known: GET the policy over HTTPS */
static void
host_done(void *arg, const struct mx_answer *ans)
{
	struct sts_query *q = arg;
	char host[300];
	struct evhttp_request *req;
	struct evkeyvalq *h;

	q->rq = NULL;
	if (ans->status != DNS_OK || ans->ntargets == 0) {
		fallback(q, "policy host has no address");
		return;
	}
	snprintf(host, sizeof(host), "mta-sts.%s", q->domain);
	q->evcon = sts_https(q->s, &ans->targets[0], q->s->port, host);
	req = evhttp_request_new(http_done, q);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "Connection", "close");
	if (evhttp_make_request(q->evcon, req, EVHTTP_REQ_GET,
	    "/.well-known/mta-sts.txt") != 0)
		fallback(q, "policy fetch failed (request)");
}

/* txt_done - the _mta-sts TXT answer (RFC 8461 3.1) */
static void
txt_done(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct sts_query *q = arg;
	const struct sts_entry *e;
	struct sts_query *lead;
	const char *rec = NULL, *id;
	size_t found = 0, il;
	char host[300];

	q->waiting = false;
	if (q->cancelled) {
		query_free(q);
		return;
	}
	for (size_t i = 0; st == DNS_OK && i < n; i++)
		if (strncmp(texts[i], "v=STSv1", 7) == 0 &&
		    (texts[i][7] == ';' || texts[i][7] == ' ' || texts[i][7] == '\0')) {
			rec = texts[i];
			found++;
		}
	if (found != 1) {
		/* none, two, or a failed look-up: the cache decides */
		e = cache_live(q->s, q->domain);
		finish(q, e ? &e->p : NULL);
		return;
	}
	if ((id = strstr(rec, "id=")) == NULL) {
		fallback(q, "TXT record has no id");
		return;
	}
	id += 3;
	il = strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789");
	if (il == 0 || il > 32) {
		fallback(q, "TXT record has a bad id");
		return;
	}
	memcpy(q->id, id, il);
	q->id[il] = '\0';
	if ((e = cache_live(q->s, q->domain)) != NULL && strcmp(e->p.id, q->id) == 0) {
		finish(q, &e->p);
		return;
	}
	/* new, expired or a new id: fetch it (RFC 8461 3.3, 5.1), once at a time */
	if ((lead = hmap_get(q->s->fetching, q->domain)) != NULL &&
	    strcmp(lead->id, q->id) == 0) {
		char esc[LOG_ESC(256)];

		log_info("mta-sts domain=%s policy fetch in flight, waiting for it",
		    log_field(esc, sizeof(esc), q->domain));
		q->follows = lead;
		q->next_follower = lead->followers;
		lead->followers = q;
		return;
	}
	if (lead == NULL) {
		hmap_put(q->s->fetching, q->domain, q);
		q->leader = true;
	}
	snprintf(host, sizeof(host), "mta-sts.%s", q->domain);
	q->rq = resolver_host(q->s->r, host, host_done, q);
}

static struct sts_query *
sts_lookup(struct sts *s, const char *domain, sts_cb *cb, void *arg)
{
	struct sts_query *q = xcalloc(1, sizeof(*q));
	char name[300];

	q->s = s;
	q->cb = cb;
	q->arg = arg;
	if ((q->ev = evtimer_new(s->base, deliver_cb, q)) == NULL)
		fatalx("evtimer_new");
	q->next = s->queries;
	if (s->queries)
		s->queries->prev = q;
	s->queries = q;
	if (str_copy(q->domain, domain, sizeof(q->domain)))
		str_lower(q->domain);
	else
		q->domain[0] = '\0';
	if (!domain_file_ok(q->domain) ||
	    !bsnprintf(name, sizeof(name), "_mta-sts.%s", q->domain)) {
		finish(q, NULL);
		return q;
	}
	q->waiting = true;
	resolver_records(s->r, name, DNS_RR_TXT, txt_done, q);
	return q;
}

/* sts_cancel - no callback after this; the query goes when it can */
static void
sts_cancel(struct sts_query *q)
{
	q->cancelled = true;
	if (q->waiting)
		return;		/* txt_done frees it */
	if (q->followers != NULL && !q->has_result)
		return;		/* its fetch goes on for them; deliver_cb frees it */
	event_del(q->ev);
	query_free(q);
}

struct sts *
sts_new(struct event_base *base, struct resolver *r, SSL_CTX *ctx,
    unsigned port, const char *cache_dir)
{
	struct sts *s = xcalloc(1, sizeof(*s));

	s->base = base;
	s->r = r;
	s->ctx = ctx;
	SSL_CTX_up_ref(ctx);
	s->port = port;
	s->dir = xstrdup(cache_dir);
	s->cache = hmap_new();
	s->fetching = hmap_new();
	if (mkdir(cache_dir, 0750) == -1 && errno != EEXIST)
		log_warn("mta-sts: mkdir %s", cache_dir);
	cache_load(s);
	return s;
}

void
sts_free(struct sts *s)
{
	struct sts_query *q;

	if (s == NULL)
		return;
	while ((q = s->queries) != NULL) {
		query_unlink(q);
		q->s = NULL;
		q->cancelled = true;
		q->followers = NULL;
		q->follows = NULL;
		if (!q->waiting) {
			event_del(q->ev);
			query_free(q);
		}
	}
	hmap_free(s->cache, entry_free);
	hmap_free(s->fetching, NULL);	/* its queries went above */
	SSL_CTX_free(s->ctx);
	free(s->dir);
	free(s);
}

/* ---- the MX look-up with the policy applied ---- */

struct tlspolicy_query {
	struct sts *s;
	char domain[256];
	resolver_cb cb;
	void *arg;
	struct resolver_query *rq;
	struct sts_query *sq;
	bool have_mx, have_sts;
	struct mx_answer ans;		/* targets owned */
	struct sts_policy policy;
	bool has_policy;
};

static void
tp_free(struct tlspolicy_query *t)
{
	free(t->ans.targets);
	free(t);
}

/* tp_done - both answers are in: mark the targets, hand them over */
static void
tp_done(struct tlspolicy_query *t)
{
	char esc[LOG_ESC(256)], h[LOG_ESC(256)];

	if (t->ans.status == DNS_OK && t->has_policy &&
	    t->policy.mode != STS_MODE_NONE) {
		enum mx_sts m = t->policy.mode == STS_MODE_ENFORCE ? MX_STS_ENFORCE :
		    MX_STS_TESTING;

		for (size_t i = 0; i < t->ans.ntargets; i++) {
			struct mx_target *x = &t->ans.targets[i];

			x->sts = m;
			x->sts_match = sts_mx_match(&t->policy, x->host);
			if (!x->sts_match && (i == 0 ||
			    strcmp(x->host, t->ans.targets[i - 1].host) != 0))
				log_info("mta-sts domain=%s mode=%s host=%s is not "
				    "an mx of the policy%s",
				    log_field(esc, sizeof(esc), t->domain),
				    m == MX_STS_ENFORCE ? "enforce" : "testing",
				    log_field(h, sizeof(h), x->host),
				    m == MX_STS_ENFORCE ? "" : " (testing: used)");
		}
	}
	t->cb(t->arg, &t->ans);
	tp_free(t);
}

static void
tp_mx_cb(void *arg, const struct mx_answer *ans)
{
	struct tlspolicy_query *t = arg;

	t->rq = NULL;
	t->ans = *ans;
	t->ans.targets = NULL;
	if (ans->ntargets > 0) {
		t->ans.targets = xreallocarray(NULL, ans->ntargets,
		    sizeof(*ans->targets));
		memcpy(t->ans.targets, ans->targets, ans->ntargets *
		    sizeof(*ans->targets));
	}
	t->have_mx = true;
	if (t->have_sts)
		tp_done(t);
}

static void
tp_sts_cb(void *arg, const struct sts_policy *p)
{
	struct tlspolicy_query *t = arg;

	t->sq = NULL;
	if (p != NULL) {
		t->policy = *p;
		t->has_policy = true;
	}
	t->have_sts = true;
	if (t->have_mx)
		tp_done(t);
}

/* tlspolicy_mx - see mtasts.h */
struct tlspolicy_query *
tlspolicy_mx(struct sts *s, struct resolver *r, const char *domain,
    resolver_cb cb, void *arg)
{
	struct tlspolicy_query *t = xcalloc(1, sizeof(*t));

	t->s = s;
	t->cb = cb;
	t->arg = arg;
	str_copy(t->domain, domain, sizeof(t->domain));
	t->have_sts = s == NULL;
	t->rq = resolver_mx(r, domain, tp_mx_cb, t);
	if (s != NULL)
		t->sq = sts_lookup(s, domain, tp_sts_cb, t);
	return t;
}

void
tlspolicy_cancel(struct tlspolicy_query *t)
{
	if (t == NULL)
		return;
	if (t->rq)
		resolver_cancel(t->rq);
	if (t->sq)
		sts_cancel(t->sq);
	tp_free(t);
}
