/*
 * checks.c - the checks of one message on the mx role (checks.h): SPF
 * from MAIL on, the header read as it comes (each field to the DKIM
 * verifier, the From domain to DMARC), the body to the DKIM body hashes,
 * and at the end one report on the loop once every evaluator is done.
 *
 * The evaluators (spf.c, dkim_verify.c, dmarc.c) may say they are done
 * from inside any call into them; this file only counts, and the report
 * runs from its own event, so never from inside auth_check_finish.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../common/addrlist.h"
#include "../common/log.h"
#include "../common/util.h"
#include "eval.h"

#define FIELD_MAX	(64 * 1024)	/* a header field kept; longer: cut */
#define HEADER_MAX	(1024 * 1024)	/* the header section read */

struct auth_check {
	struct resolver *r;
	struct event *report;
	struct auth_results res;
	struct spf_eval *spf;
	struct dkim_eval *dkim;
	struct dmarc_eval *dmarc;
	bool spf_done, dkim_done, dmarc_done;
	unsigned nfrom;			/* From fields seen */

	bool body;			/* past the header section */
	bool bol;			/* at the start of a line */
	struct strbuf line;		/* the header line being read */
	struct strbuf field;		/* the header field being read */
	size_t header_bytes;

	bool finished;			/* auth_check_finish came */
	bool reported;
	auth_check_cb cb;
	void *arg;
};

static void
maybe_report(struct auth_check *ac)
{
	if (!ac->finished || ac->reported || !ac->spf_done || !ac->dkim_done ||
	    (ac->dmarc != NULL && !ac->dmarc_done))
		return;
	ac->reported = true;
	if (ac->dmarc != NULL)
		dmarc_eval_result(ac->dmarc, &ac->res);
	event_active(ac->report, EV_TIMEOUT, 0);
}

static void
report_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_check *ac = arg;

	ac->cb(ac->arg, &ac->res);
}

static void
spf_done(void *arg)
{
	struct auth_check *ac = arg;

	ac->spf_done = true;
	maybe_report(ac);
}

static void
dkim_done(void *arg)
{
	struct auth_check *ac = arg;

	ac->dkim_done = true;
	maybe_report(ac);
}

static void
dmarc_done(void *arg)
{
	struct auth_check *ac = arg;

	ac->dmarc_done = true;
	maybe_report(ac);
}

struct auth_check *
auth_check_start(struct resolver *r, const struct auth_check_params *p)
{
	struct auth_check *ac;

	if (r == NULL)
		return NULL;
	ac = xcalloc(1, sizeof(*ac));
	ac->r = r;
	ac->bol = true;
	ac->report = event_new(resolver_base(r), -1, 0, report_cb, ac);
	if (ac->report == NULL)
		fatalx("event_new failed");
	ac->res.spf = AUTH_NONE;
	ac->dkim = dkim_eval_new(r, dkim_done, ac);
	ac->spf = spf_eval_start(r, p, &ac->res, spf_done, ac);
	return ac;
}

/* field_done - a complete header field: to DKIM; From to DMARC */
static void
field_done(struct auth_check *ac)
{
	const char *f = ac->field.p;
	size_t n = ac->field.len;

	if (n == 0)
		return;
	dkim_eval_header(ac->dkim, f, n);
	if (header_field_is(f, n, "From")) {
		const char *colon = memchr(f, ':', n);
		char d[DOMAIN_MAX + 1];

		const char *why = NULL;
		enum from_domain st = FROM_DOMAIN_NONE;

		ac->nfrom++;
		dmarc_eval_free(ac->dmarc);
		ac->dmarc = NULL;
		ac->dmarc_done = false;
		ac->res.from_domain[0] = '\0';
		/* RFC 5322 3.6: one From field; RFC 9989: one Author Domain */
		if (ac->nfrom > 1)
			why = "several From fields";
		else if (colon != NULL)
			st = addr_list_from_domain(colon + 1,
			    n - (size_t)(colon + 1 - f), d, sizeof(d), &why);
		if (ac->nfrom > 1 || st == FROM_DOMAIN_SEVERAL ||
		    st == FROM_DOMAIN_BAD)
			str_copy(ac->res.from_problem, why,
			    sizeof(ac->res.from_problem));
		if (st == FROM_DOMAIN_ONE) {
			str_copy(ac->res.from_domain, d, sizeof(ac->res.from_domain));
			ac->dmarc = dmarc_eval_start(ac->r, d, dmarc_done, ac);
		}
	}
	ac->field.len = 0;
}

/* header_line - one header line (without its LF) */
static void
header_line(struct auth_check *ac, const char *l, size_t n)
{
	if (n == 0) {			/* the end of the header section */
		field_done(ac);
		dkim_eval_eoh(ac->dkim);
		ac->body = true;
		return;
	}
	if (l[0] == ' ' || l[0] == '\t') {
		if (ac->field.len > 0 && ac->field.len + 1 + n <= FIELD_MAX) {
			strbuf_add(&ac->field, "\n", 1);
			strbuf_add(&ac->field, l, n);
		}
		return;
	}
	field_done(ac);
	strbuf_add(&ac->field, l, n < FIELD_MAX ? n : FIELD_MAX);
}

void
auth_check_message(struct auth_check *ac, const char *text, size_t len)
{
	while (len > 0 && !ac->body) {
		const char *nl = memchr(text, '\n', len);
		size_t run = nl != NULL ? (size_t)(nl - text) : len;

		ac->header_bytes += run + (nl != NULL);
		if (ac->line.len + run <= FIELD_MAX)
			strbuf_add(&ac->line, text, run);
		text += run;
		len -= run;
		if (nl == NULL)
			break;
		text++;
		len--;
		header_line(ac, ac->line.p != NULL ? ac->line.p : "", ac->line.len);
		ac->line.len = 0;
		if (ac->header_bytes > HEADER_MAX && !ac->body) {
			/* no end in sight: what follows counts as body */
			field_done(ac);
			dkim_eval_eoh(ac->dkim);
			ac->body = true;
		}
	}
	if (len > 0 && ac->body)
		dkim_eval_body(ac->dkim, text, len);
}

void
auth_check_finish(struct auth_check *ac, auth_check_cb cb, void *arg)
{
	ac->cb = cb;
	ac->arg = arg;
	if (!ac->body) {
		if (ac->line.len > 0)
			header_line(ac, ac->line.p, ac->line.len);
		field_done(ac);
		dkim_eval_eoh(ac->dkim);
		ac->body = true;
	}
	ac->finished = true;
	dkim_eval_finish(ac->dkim, &ac->res);
	maybe_report(ac);
}

void
auth_check_free(struct auth_check *ac)
{
	if (ac == NULL)
		return;
	spf_eval_free(ac->spf);
	dkim_eval_free(ac->dkim);
	dmarc_eval_free(ac->dmarc);
	event_free(ac->report);
	free(ac->line.p);
	free(ac->field.p);
	free(ac);
}
