/*
 * fuzz_spf - SPF evaluation (checks/spf.c) on records from outside: what
 * libspf2 makes of hostile SPF records, macros, MX and PTR answers, fed
 * through our DNS layer (layer_lookup, rr_fill) round after round, as the
 * check does with the resolver's answers.
 *
 * spf.c keeps these functions static, so this file includes it.  No
 * resolver: where the check would look its misses up, the input answers
 * them.
 *
 * Input: text.  The first line is "CLIENT-ADDRESS DOMAIN" (IPv4 or IPv6,
 * the MAIL FROM domain); every other line "NAME TYPE [DATA]", TYPE one of
 * TXT A AAAA MX PTR (DATA the record as the resolver gives it: one TXT
 * record's strings joined, an address, "PREFERENCE HOST", a name), NX
 * (NXDOMAIN), NODATA or FAIL (a DNS failure).  A name the input does not
 * know is NXDOMAIN.
 *
 * Checks: every evaluation ends (rounds bounded by SPF_ROUNDS, records by
 * SPF_RECORDS), the result is one of RFC 7208's, nothing leaks.
 */
#include "../../checks/spf.c"

#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	spf_lib_init();
	return 0;
}

/* answer - the input's answer for rec, as the resolver would give it */
static void
answer_from(struct spf_rec *rec, char **lines, size_t nlines)
{
	static const char *const names[] = {
		[ns_t_a] = "A", [ns_t_aaaa] = "AAAA", [ns_t_mx] = "MX",
		[ns_t_ptr] = "PTR", [ns_t_txt] = "TXT",
	};
	const char *tn = (size_t)rec->type < nitems(names) ? names[rec->type] : NULL;
	size_t nl = strlen(rec->name);

	rec->answered = true;
	rec->status = DNS_NXDOMAIN;
	for (size_t i = 1; i < nlines; i++) {
		char *l = lines[i], *sp = strchr(l, ' '), *type, *data;

		if (sp == NULL || (size_t)(sp - l) != nl ||
		    strncasecmp(l, rec->name, nl) != 0)
			continue;
		type = sp + 1;
		data = strchr(type, ' ');
		if (data != NULL)
			data++;
		else
			data = type + strlen(type);
		if (strncmp(type, "NX", 2) == 0 && rec->n == 0)
			rec->status = DNS_NXDOMAIN;
		else if (strncmp(type, "FAIL", 4) == 0 && rec->n == 0)
			rec->status = DNS_TEMPFAIL;
		else if (strncmp(type, "NODATA", 6) == 0 && rec->n == 0)
			rec->status = DNS_NOHOST;
		else if (tn != NULL && strncmp(type, tn, strlen(tn)) == 0 &&
		    type[strlen(tn)] == ' ' && rec->n < 16) {
			rec->texts = xreallocarray(rec->texts, rec->n + 1,
			    sizeof(*rec->texts));
			rec->texts[rec->n++] = xstrdup(data);
			rec->status = DNS_OK;
		} else if (rec->status == DNS_NXDOMAIN && rec->n == 0)
			rec->status = DNS_NOHOST;	/* the name is there */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size), *save = NULL, *l;
	char *lines[64], ip[64], dom[DOMAIN_MAX + 1], from[DOMAIN_MAX + 16];
	size_t nlines = 0;
	struct auth_results out;
	struct spf_eval *e;
	struct sockaddr_in6 *s6;
	struct sockaddr_in *s4;
	enum auth_res res = AUTH_NONE;
	unsigned rounds = 0;

	for (l = strtok_r(text, "\n", &save); l != NULL && nlines < nitems(lines);
	    l = strtok_r(NULL, "\n", &save))
		lines[nlines++] = l;
	if (nlines == 0 || sscanf(lines[0], "%63s %255s", ip, dom) != 2) {
		free(text);
		return 0;
	}
	e = xcalloc(1, sizeof(*e));
	memset(&out, 0, sizeof(out));
	e->out = &out;
	s4 = (struct sockaddr_in *)&e->client;
	s6 = (struct sockaddr_in6 *)&e->client;
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		e->client.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		e->client.ss_family = AF_INET6;
	else
		e->client.ss_family = AF_INET;
	snprintf(from, sizeof(from), "x@%s", dom);
	str_copy(e->mail_from, from, sizeof(e->mail_from));
	str_copy(e->helo, dom, sizeof(e->helo));
	str_copy(e->hostname, "mx.chamois.test", sizeof(e->hostname));
	str_copy(out.spf_domain, dom, sizeof(out.spf_domain));
	e->layer.destroy = layer_destroy;
	e->layer.lookup = layer_lookup;
	e->layer.name = "fuzz";
	e->layer.hook = e;

	for (;;) {
		res = evaluate(e);
		rounds++;
		FUZZ_CHECK(e->nrecs <= SPF_RECORDS);
		if (e->misses == 0 || e->overflow || e->rounds >= SPF_ROUNDS)
			break;
		for (size_t i = 0; i < e->nrecs; i++)
			if (!e->recs[i].answered)
				answer_from(&e->recs[i], lines, nlines);
	}
	FUZZ_CHECK(rounds <= SPF_ROUNDS);
	FUZZ_CHECKF(res >= AUTH_NONE && res <= AUTH_PERMERROR &&
	    res != AUTH_POLICY, "result %d", (int)res);
	spf_eval_free(e);
	free(text);
	return 0;
}
