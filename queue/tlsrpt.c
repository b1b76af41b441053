/*
 * tlsrpt.c - TLS-RPT aggregate reports (RFC 8460), sent through the queue.
 *
 * The outbound client counts the sessions under a TLS policy
 * (outbound/tlsrpt.c).  Once a day, at the UTC day boundary, or when
 * chamoisctl tlsrpt send asks, the counts are taken and, for each policy
 * domain, _smtp._tls.DOMAIN TXT is looked up (RFC 8460 3): a domain with
 * one v=TLSRPTv1 record gets its report, the JSON of RFC 8460 4.4
 * gzip'ed, as a mail to each mailto: rua (RFC 8460 5.3) and as an HTTPS
 * POST to each https: rua (RFC 8460 5.4: evhttp, the server's certificate
 * verified as MTA-STS's are; only the answer's status is read).  A domain
 * without the record gets nothing.
 *
 * The report mail has the null reverse-path and the owner TLSRPT_OWNER:
 * nothing reports its failures (no bounce for <>), and the queue's MX
 * session carrying it is not counted for the next report (RFC 8460 5.3).
 * It is delivered despite TLS failures (RFC 8460 5.3): the queue sends it
 * with opportunistic TLS, neither DANE nor MTA-STS holding it
 * (queue/scheduler.c remote_resolved, doc/security.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "../common/addr.h"
#include "../common/body.h"
#include "../common/clock.h"
#include "../common/config.h"
#include "../common/limits.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../outbound/mtasts.h"
#include "../outbound/resolver.h"
#include "../outbound/tlsrpt.h"
#include "queue.h"

#define SAVE_EVERY	60		/* seconds between saves of the counts */
#define RUA_MAX		8		/* rua URIs of a record used */
#define TXT_MAX		2048		/* octets of a TLSRPT record read */

/* one report on its way to an https: rua */
struct post {
	TAILQ_ENTRY(post) entry;
	char host[256], path[1024], what[600];
	unsigned port;
	unsigned char *gz;
	size_t gzlen;
	struct resolver_query *rq;
	struct evhttp_connection *evcon;
	struct event *free_ev;
};

static struct {
	struct event_base *base;
	struct config *cfg;
	struct resolver *res;
	struct sts *sts;
	struct event *save_ev, *day_ev;
	TAILQ_HEAD(, post) posts;
} rp;

/* a period's counts, shared by the look-ups of its domains */
struct batch {
	struct tlsrpt_counts *t;
	struct config *cfg;
	time_t start, end;
	size_t pending;
};

struct lookup {
	struct batch *b;
	size_t i;
};

bool
tlsrpt_is_report(const struct queue_msg *m)
{
	return m->sender && m->sender[0] == '\0' && m->owner &&
	    strcmp(m->owner, TLSRPT_OWNER) == 0;
}

/* gzip - data as a gzip member (RFC 1952), malloc'd; NULL on failure */
static unsigned char *
gzip(const char *data, size_t len, size_t *outlen)
{
	z_stream z = { 0 };
	uLong cap = compressBound((uLong)len) + 64;
	unsigned char *out = xmalloc(cap);

	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (unsigned char *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*outlen = z.total_out;
	deflateEnd(&z);
	return out;
}

/* put_base64 - p as base64 lines of 76 (RFC 2045 6.8) */
static void
put_base64(struct strbuf *b, const unsigned char *p, size_t n)
{
	unsigned char line[80];

	for (size_t o = 0; o < n; o += 57) {
		int k = EVP_EncodeBlock(line, p + o, (int)(n - o < 57 ? n - o : 57));

		strbuf_add(b, line, (size_t)k);
		strbuf_add(b, "\n", 1);
	}
}

/*
 * tlsrpt_mail_build - see queue.h: the report mail of RFC 8460 5.3, LF
 * form
 */
char *
tlsrpt_mail_build(const char *domain, const char *submitter, const char *from,
    const char *to, const char *report_id, time_t start, time_t end,
    time_t now, const unsigned char *gz, size_t gzlen, size_t *len)
{
	struct strbuf b = { 0 };
	char date[64], boundary[40];

	rfc5322_date(date, sizeof(date), now);
	/* base64 and our own text never hold "=_" followed by hex */
	snprintf(boundary, sizeof(boundary), "=_tlsrpt_%016llx",
	    (unsigned long long)random_u64());
	strbuf_printf(&b, "From: %s\nTo: %s\nDate: %s\n"
	    "Message-ID: <%s>\n"
	    "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\n"
	    "TLS-Report-Domain: %s\nTLS-Report-Submitter: %s\n"
	    "Auto-Submitted: auto-generated\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\n"
	    " boundary=\"%s\"\n\n", from, to, date, report_id, domain,
	    submitter, report_id, domain, submitter, boundary);
	strbuf_printf(&b, "--%s\nContent-Type: text/plain; charset=us-ascii\n\n"
	    "This is an aggregate TLS report (RFC 8460) from %s about the\n"
	    "sessions to the mail servers of %s.\n\n", boundary, submitter,
	    domain);
	strbuf_printf(&b, "--%s\nContent-Type: application/tlsrpt+gzip\n"
	    "Content-Transfer-Encoding: base64\n"
	    "Content-Disposition: attachment;\n"
	    " filename=\"%s!%s!%lld!%lld.json.gz\"\n\n", boundary, submitter,
	    domain, (long long)start, (long long)end);
	put_base64(&b, gz, gzlen);
	strbuf_printf(&b, "\n--%s--\n", boundary);
	*len = b.len;
	return b.p;
}

/* submitter_of - tlsrpt_submitter, else the host name */
static const char *
submitter_of(const struct config *c)
{
	return c->tlsrpt_submitter ? c->tlsrpt_submitter : c->hostname;
}

/* contact_of - the reports' From and contact-info: postmaster (malloc'd) */
static char *
contact_of(const struct config *c)
{
	return c->postmaster ? xstrdup(c->postmaster) :
	    xasprintf("postmaster@%s", c->hostname);
}

static void
report_queued(void *arg, int error, const char *id)
{
	char *what = arg;

	if (error)
		log_warnx("tlsrpt report %s not queued: %s", what, strerror(error));
	else
		log_info("%s tlsrpt report queued %s", id, what);
	free(what);
}

/*
 * report_gz - domain i's report (a new report-id into id), gzip'ed; NULL
 * (logged) on failure
 */
static unsigned char *
report_gz(struct batch *b, size_t i, char *id, size_t idsize, size_t *glen)
{
	const struct config *c = b->cfg;
	const char *domain = tlsrpt_domain(b->t, i);
	char *contact = contact_of(c);
	char day[16], *json;
	unsigned char *gz;
	size_t jlen;
	struct tm tm;

	gmtime_r(&b->start, &tm);
	strftime(day, sizeof(day), "%Y%m%d", &tm);
	snprintf(id, idsize, "%s.%016llx.%s@%s", day,
	    (unsigned long long)random_u64(), domain, submitter_of(c));
	json = tlsrpt_json(b->t, i, submitter_of(c), contact, id, b->start,
	    b->end, &jlen);
	gz = gzip(json, jlen, glen);
	free(json);
	free(contact);
	if (gz == NULL)
		log_warnx("tlsrpt: gzip failed, no report for %s", domain);
	return gz;
}

/* report_send - domain i's report to the mailto: address to */
static void
report_send(struct batch *b, size_t i, const char *to)
{
	const struct config *c = b->cfg;
	const char *domain = tlsrpt_domain(b->t, i);
	char *contact = contact_of(c);
	char id[DOMAIN_MAX * 2 + 64], esc[LOG_ESC(256)];
	char *mail;
	unsigned char *gz;
	size_t glen, mlen;
	struct queue_msg *m;
	struct body *body;

	if ((gz = report_gz(b, i, id, sizeof(id), &glen)) == NULL) {
		free(contact);
		return;
	}
	mail = tlsrpt_mail_build(domain, submitter_of(c), contact, to, id,
	    b->start, b->end, clock_now(), gz, glen, &mlen);
	free(gz);
	free(contact);
	m = xcalloc(1, sizeof(*m));
	m->sender = xstrdup("");
	m->owner = xstrdup(TLSRPT_OWNER);
	m->uid = -1;
	m->nrcpts = 1;
	m->rcpts = xcalloc(1, sizeof(*m->rcpts));
	m->rcpts[0].orig = xstrdup(to);
	body = xmalloc(sizeof(*body));
	body_init(body, c->queue_dir);
	if (body_append(body, mail, mlen) == -1) {
		log_warnx("tlsrpt: no report for %s: %s", domain, strerror(errno));
		body_free(body);
		free(body);
		queue_msg_free(m);
		free(m);
		free(mail);
		return;
	}
	free(mail);
	queue_submit(m, body, report_queued, xasprintf("domain=%s rua=mailto:%s",
	    log_field(esc, sizeof(esc), domain), to));
}

/* ---- https: rua (RFC 8460 5.4) ---- */

static void
post_free(struct post *p)
{
	TAILQ_REMOVE(&rp.posts, p, entry);
	if (p->rq)
		resolver_cancel(p->rq);
	if (p->evcon)
		evhttp_connection_free(p->evcon);
	if (p->free_ev)
		event_free(p->free_ev);
	free(p->gz);
	free(p);
}

static void
post_free_cb(evutil_socket_t fd, short what, void *arg)
{
	post_free(arg);
}

/* post_end - log how it went; p goes from the loop (not inside evhttp) */
static void
post_end(struct post *p, const char *how, int code)
{
	if (code >= 200 && code < 300)
		log_info("tlsrpt report posted %s status=%d", p->what, code);
	else
		log_warnx("tlsrpt report not posted %s: %s%.0d", p->what, how,
		    code);
	p->free_ev = evtimer_new(rp.base, post_free_cb, p);
	event_active(p->free_ev, EV_TIMEOUT, 1);
}

static void
post_done(struct evhttp_request *req, void *arg)
{
	struct post *p = arg;
	int code = req ? evhttp_request_get_response_code(req) : 0;

	post_end(p, code ? "HTTP " : "no answer (connection, TLS or "
	    "certificate)", code);
}

static void
post_resolved(void *arg, const struct mx_answer *ans)
{
	struct post *p = arg;
	struct evhttp_request *req;
	struct evkeyvalq *h;

	p->rq = NULL;
	if (ans->status != DNS_OK || ans->ntargets == 0) {
		post_end(p, "the host has no address", 0);
		return;
	}
	p->evcon = sts_https(rp.sts, &ans->targets[0], p->port, p->host);
	req = evhttp_request_new(post_done, p);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", p->host);
	evhttp_add_header(h, "Content-Type", "application/tlsrpt+gzip");
	evhttp_add_header(h, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(req), p->gz, p->gzlen);
	if (evhttp_make_request(p->evcon, req, EVHTTP_REQ_POST, p->path) != 0)
		post_end(p, "the request failed", 0);
}

/* report_post - domain i's report to the https: URI uri */
static void
report_post(struct batch *b, size_t i, const char *uri)
{
	struct evhttp_uri *u = evhttp_uri_parse(uri);
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	const char *query = u ? evhttp_uri_get_query(u) : NULL;
	char id[DOMAIN_MAX * 2 + 64], esc[LOG_ESC(256)], u8[LOG_ESC(256)];
	struct mx_target t;
	struct post *p;

	if (host == NULL || *host == '\0' || rp.sts == NULL) {
		log_info("tlsrpt domain=%s rua=%s skipped (%s)",
		    log_field(esc, sizeof(esc), tlsrpt_domain(b->t, i)),
		    log_field(u8, sizeof(u8), uri), rp.sts == NULL ?
		    "https: needs mta_sts yes" : "not a URI");
		if (u)
			evhttp_uri_free(u);
		return;
	}
	p = xcalloc(1, sizeof(*p));
	TAILQ_INSERT_TAIL(&rp.posts, p, entry);
	str_copy(p->host, host, sizeof(p->host));
	p->port = evhttp_uri_get_port(u) > 0 ? (unsigned)evhttp_uri_get_port(u) :
	    443;
	snprintf(p->path, sizeof(p->path), "%s%s%s", path && *path ? path : "/",
	    query ? "?" : "", query ? query : "");
	evhttp_uri_free(u);
	snprintf(p->what, sizeof(p->what), "domain=%s rua=%s",
	    log_field(esc, sizeof(esc), tlsrpt_domain(b->t, i)),
	    log_field(u8, sizeof(u8), uri));
	if ((p->gz = report_gz(b, i, id, sizeof(id), &p->gzlen)) == NULL) {
		post_free(p);
		return;
	}
	if (mx_host_target(p->host, &t)) {
		struct mx_answer ans = { .status = DNS_OK, .targets = &t,
		    .ntargets = 1 };

		post_resolved(p, &ans);
	} else
		p->rq = resolver_host(rp.res, p->host, post_resolved, p);
}

static void
batch_done(struct batch *b)
{
	if (--b->pending > 0)
		return;
	tlsrpt_counts_free(b->t);
	config_free(b->cfg);
	free(b);
}

/*
 * rua_each - the rua URIs of a TLSRPT record (RFC 8460 3: "v=TLSRPTv1;
 * rua=URI,URI"): a mailto: gets the report mailed, an https: posted
 */
static void
rua_each(struct batch *b, size_t i, const char *rec)
{
	char buf[TXT_MAX], *s, *tok, *save = NULL, esc[LOG_ESC(256)];
	char d[LOG_ESC(256)];
	unsigned n = 0;

	str_copy(buf, rec, sizeof(buf));
	for (s = strtok_r(buf, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
		char *uris, *save2 = NULL;

		s = str_trim(s);
		if (strncmp(s, "rua", 3) != 0)
			continue;
		s = str_trim(s + 3);
		if (*s != '=')
			continue;
		uris = s + 1;
		for (tok = strtok_r(uris, ",", &save2); tok && n < RUA_MAX;
		    tok = strtok_r(NULL, ",", &save2), n++) {
			struct mailaddr a;

			tok = str_trim(tok);
			if (str_has_prefix_ci(tok, "mailto:") &&
			    addr_parse(tok + 7, &a, 0) == ADDR_OK)
				report_send(b, i, tok + 7);
			else if (str_has_prefix_ci(tok, "https://"))
				report_post(b, i, tok);
			else
				log_info("tlsrpt domain=%s rua=%s skipped (neither "
				    "mailto: nor https:)",
				    log_field(d, sizeof(d), tlsrpt_domain(b->t, i)),
				    log_field(esc, sizeof(esc), tok));
		}
	}
}

static void
txt_cb(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct lookup *l = arg;
	const char *rec = NULL;
	size_t found = 0;
	char esc[LOG_ESC(256)];

	for (size_t k = 0; st == DNS_OK && k < n; k++)
		/* RFC 8460 3: "v=TLSRPTv1" first; other records are not ours */
		if (strncmp(texts[k], "v=TLSRPTv1", 10) == 0 &&
		    (texts[k][10] == ';' || texts[k][10] == ' ' ||
		    texts[k][10] == '\0')) {
			rec = texts[k];
			found++;
		}
	if (found == 1)
		rua_each(l->b, l->i, rec);
	else
		log_info("tlsrpt domain=%s no report: %s",
		    log_field(esc, sizeof(esc), tlsrpt_domain(l->b->t, l->i)),
		    st == DNS_TEMPFAIL ? "the _smtp._tls look-up failed" :
		    found > 1 ? "more than one TLSRPT record" :
		    "no _smtp._tls TLSRPT record");
	batch_done(l->b);
	free(l);
}

/* send_until - the counts taken, reported for the period ending at end */
static size_t
send_until(time_t end)
{
	struct tlsrpt_counts *t;
	struct batch *b;
	size_t n;

	if (rp.cfg == NULL || (t = tlsrpt_take()) == NULL)
		return 0;
	n = tlsrpt_domains(t);
	b = xcalloc(1, sizeof(*b));
	b->t = t;
	b->cfg = config_ref(rp.cfg);
	/* RFC 8460 4.4: the period from the UTC day its first session fell on */
	b->start = tlsrpt_counts_start(t) - tlsrpt_counts_start(t) % 86400;
	b->end = end;
	b->pending = n + 1;
	log_info("tlsrpt reporting domains=%zu", n);
	for (size_t i = 0; i < n; i++) {
		struct lookup *l = xcalloc(1, sizeof(*l));
		char name[DOMAIN_MAX + 16];

		l->b = b;
		l->i = i;
		snprintf(name, sizeof(name), "_smtp._tls.%s", tlsrpt_domain(t, i));
		resolver_records(rp.res, name, DNS_RR_TXT, txt_cb, l);
	}
	batch_done(b);
	return n;
}

/* tlsrpt_reports_send - see queue.h */
size_t
tlsrpt_reports_send(void)
{
	return send_until(clock_now());
}

/* day_arm - the next UTC day boundary (in at most a second if due now) */
static void
day_arm(bool due)
{
	time_t now = clock_now();
	struct timeval tv = { due ? 1 : 86400 - now % 86400 + 1, 0 };

	evtimer_add(rp.day_ev, &tv);
}

static void
day_cb(evutil_socket_t fd, short what, void *arg)
{
	time_t now = clock_now();

	/* RFC 8460 4.4's date-range: up to the last second of the day gone */
	send_until(now - now % 86400 - 1);
	day_arm(false);
}

static void
save_cb(evutil_socket_t fd, short what, void *arg)
{
	tlsrpt_save();
}

/* tlsrpt_reports_init - see queue.h */
int
tlsrpt_reports_init(struct event_base *base, struct config *cfg,
    struct resolver *res, struct sts *sts, char *err, size_t errsize)
{
	char dir[4096];
	time_t start;

	if (!cfg->tlsrpt)
		return 0;
	if (!bsnprintf(dir, sizeof(dir), "%s/tlsrpt", cfg->queue_dir)) {
		bsnprintf(err, errsize, "queue_dir too long");
		return -1;
	}
	if (tlsrpt_open(dir, err, errsize) == -1)
		return -1;
	rp.base = base;
	rp.cfg = config_ref(cfg);
	rp.res = res;
	rp.sts = sts;
	TAILQ_INIT(&rp.posts);
	rp.save_ev = event_new(base, -1, EV_PERSIST, save_cb, NULL);
	event_add(rp.save_ev, &(struct timeval){ SAVE_EVERY, 0 });
	rp.day_ev = evtimer_new(base, day_cb, NULL);
	/* counts from a day before the restart go out now */
	start = tlsrpt_period_start();
	day_arm(start != 0 && start / 86400 < clock_now() / 86400);
	return 0;
}

void
tlsrpt_reports_configure(struct config *cfg)
{
	struct config *oc = rp.cfg;

	if (oc == NULL)
		return;
	rp.cfg = config_ref(cfg);
	config_free(oc);
}

void
tlsrpt_reports_shutdown(void)
{
	if (rp.cfg == NULL)
		return;
	while (!TAILQ_EMPTY(&rp.posts))
		post_free(TAILQ_FIRST(&rp.posts));
	event_free(rp.save_ev);
	event_free(rp.day_ev);
	tlsrpt_close();
	config_free(rp.cfg);
	memset(&rp, 0, sizeof(rp));
}
