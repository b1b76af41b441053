/*
 * fuzz_dkim - DKIM verification (checks/dkim_verify.c) on messages and
 * key records from outside: our DKIM-Signature tag reading (tag_value,
 * signature_seen), then libopendkim on the header fields, the body and
 * the key records as the verifier feeds them.
 *
 * dkim_verify.c is included here with its two ways out replaced: the key
 * look-up (lookup_start) answers at once from the input, as the resolver
 * may, and the CPU pool (worker_submit_cpu) runs the verification in
 * place.
 *
 * Input: the first line is the key record every selector gets ("!NX": no
 * such name, "!FAIL": a DNS failure), then the message (LF lines; the
 * header up to the first empty line, fields folded as they come).
 *
 * Checks: the verifier reports exactly once, at most AUTH_DKIM_MAX
 * signatures, each result one of RFC 8601's for DKIM and header.d lower
 * case; with no DKIM-Signature field, no result.
 */
#include <ctype.h>

#include "../../outbound/resolver.h"

struct lookup;
static struct lookup *fake_lookup_start(struct resolver *, const char *,
    enum dns_rr, resolver_records_cb, void *);
static void fake_worker_submit_cpu(void (*)(void *), void (*)(void *), void *);
#define lookup_start fake_lookup_start
#define worker_submit_cpu fake_worker_submit_cpu
#include "../../checks/dkim_verify.c"
#undef lookup_start
#undef worker_submit_cpu

#include "fuzz.h"

static const char *key_text;
static int reports;

static struct lookup *
fake_lookup_start(struct resolver *r, const char *name, enum dns_rr rr,
    resolver_records_cb cb, void *arg)
{
	char *t = (char *)key_text;

	if (strcmp(key_text, "!NX") == 0)
		cb(arg, DNS_NXDOMAIN, NULL, 0);
	else if (strcmp(key_text, "!FAIL") == 0)
		cb(arg, DNS_TEMPFAIL, NULL, 0);
	else
		cb(arg, DNS_OK, &t, 1);
	return NULL;
}

static void
fake_worker_submit_cpu(void (*work)(void *), void (*done)(void *), void *arg)
{
	work(arg);
	done(arg);
}

static void
reported(void *arg)
{
	reports++;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	dkim_lib();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size), *p, *nl, *end;
	struct strbuf field = { 0 };
	struct auth_results out;
	struct dkim_eval *e;
	unsigned nsig = 0;

	if ((nl = strchr(text, '\n')) == NULL) {
		free(text);
		return 0;
	}
	*nl = '\0';
	key_text = text;
	p = nl + 1;
	end = text + strlen(p) + (size_t)(p - text);
	reports = 0;
	memset(&out, 0, sizeof(out));
	e = dkim_eval_new(NULL, reported, NULL);
	/* the header, field by field */
	while (p < end) {
		size_t n;

		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (n == 0 || ((p[0] == ' ' || p[0] == '\t') && field.len > 0)) {
			if (n == 0) {
				p += 1;
				break;
			}
			strbuf_add(&field, "\n", 1);
			strbuf_add(&field, p, n);
		} else {
			if (field.len > 0) {
				nsig += header_field_is(field.p, field.len, "DKIM-Signature");
				dkim_eval_header(e, field.p, field.len);
			}
			field.len = 0;
			strbuf_add(&field, p, n);
		}
		p += n + (nl != NULL);
	}
	if (field.len > 0) {
		nsig += header_field_is(field.p, field.len, "DKIM-Signature");
		dkim_eval_header(e, field.p, field.len);
	}
	dkim_eval_eoh(e);
	if (p < end)
		dkim_eval_body(e, p, (size_t)(end - p));
	dkim_eval_finish(e, &out);
	FUZZ_CHECKF(reports == 1, "%d reports", reports);
	FUZZ_CHECK(out.ndkim <= AUTH_DKIM_MAX);
	if (nsig == 0)
		FUZZ_CHECK(out.ndkim == 0);
	for (size_t i = 0; i < out.ndkim; i++) {
		enum auth_res r = out.dkim[i].result;

		FUZZ_CHECKF(r == AUTH_PASS || r == AUTH_FAIL || r == AUTH_NEUTRAL ||
		    r == AUTH_TEMPERROR || r == AUTH_PERMERROR || r == AUTH_POLICY,
		    "result %d", (int)r);
		for (const char *s = out.dkim[i].d; *s; s++)
			FUZZ_CHECK(!isupper((unsigned char)*s));
	}
	dkim_eval_free(e);
	free(field.p);
	free(text);
	return 0;
}
