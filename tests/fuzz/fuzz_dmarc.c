/*
 * fuzz_dmarc - DMARC (checks/dmarc.c) on records from outside: the tree
 * walk's names, libopendmarc's parse of hostile records, our tags (psd=,
 * np=, t=, rua= without p=), the organizational domain and alignment.
 *
 * dmarc.c keeps these functions static, so this file includes it.  No
 * resolver: the input answers every name of the walk.
 *
 * Input: text.  The first line is "FROM-DOMAIN SPF SPF-DOMAIN DKIM
 * DKIM-DOMAIN EXISTS": the results (digits: enum auth_res) and domains
 * that DMARC weighs, EXISTS 0 or 1 (the From domain's own A look-up);
 * every other line "NAME TEXT" (a TXT record of _dmarc.NAME; several
 * lines, several records), "NAME !NX" or "NAME !FAIL".
 *
 * Checks: the walk asks at most DMARC_WALK names, each the From domain or
 * a parent of it; the result is none, pass, fail or temperror; a pass
 * needs an SPF or DKIM pass; a policy only comes with a record.
 */
#include "../../checks/dmarc.c"

#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	dmarc_lib();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size), *save = NULL, *l;
	char *lines[64], from[DOMAIN_MAX + 1], sd[DOMAIN_MAX + 1], dd[DOMAIN_MAX + 1];
	unsigned spf, dk, exists;
	size_t nlines = 0;
	struct auth_results out;
	struct dmarc_eval *e;

	for (l = strtok_r(text, "\n", &save); l != NULL && nlines < nitems(lines);
	    l = strtok_r(NULL, "\n", &save))
		lines[nlines++] = l;
	if (nlines == 0 || sscanf(lines[0], "%255s %u %255s %u %255s %u", from,
	    &spf, sd, &dk, dd, &exists) != 6) {
		free(text);
		return 0;
	}
	str_lower(from);
	e = xcalloc(1, sizeof(*e));
	walk_names(e, from);
	FUZZ_CHECK(e->nnames <= DMARC_WALK);
	for (size_t i = 0; i < e->nnames; i++) {
		struct dmarc_name *dn = &e->names[i];
		char *texts[16];
		size_t n = 0, nl = strlen(dn->name);

		FUZZ_CHECK(domain_within(e->from, dn->name));
		dn->in = true;
		dn->st = DNS_NXDOMAIN;
		for (size_t k = 1; k < nlines; k++) {
			char *t = lines[k];

			if (strncasecmp(t, dn->name, nl) != 0 || t[nl] != ' ')
				continue;
			t += nl + 1;
			if (strcmp(t, "!FAIL") == 0)
				dn->st = DNS_TEMPFAIL;
			else if (strcmp(t, "!NX") != 0 && n < nitems(texts)) {
				texts[n++] = t;
				dn->st = DNS_OK;
			}
		}
		if (dn->st == DNS_OK)
			dn->rec = one_record(texts, n);
	}
	e->exists_in = true;
	e->exists_st = exists ? DNS_OK : DNS_NXDOMAIN;

	memset(&out, 0, sizeof(out));
	out.spf = (enum auth_res)(spf % 8);
	str_copy(out.spf_domain, sd, sizeof(out.spf_domain));
	out.ndkim = 1;
	out.dkim[0].result = (enum auth_res)(dk % 8);
	str_copy(out.dkim[0].d, dd, sizeof(out.dkim[0].d));
	dmarc_eval_result(e, &out);
	FUZZ_CHECKF(out.dmarc == AUTH_NONE || out.dmarc == AUTH_PASS ||
	    out.dmarc == AUTH_FAIL || out.dmarc == AUTH_TEMPERROR,
	    "dmarc %d", (int)out.dmarc);
	if (out.dmarc == AUTH_PASS)
		FUZZ_CHECK(out.spf == AUTH_PASS || out.dkim[0].result == AUTH_PASS);
	if (out.dmarc == AUTH_NONE || out.dmarc == AUTH_TEMPERROR)
		FUZZ_CHECK(out.policy == DMARC_P_ABSENT || out.dmarc == AUTH_TEMPERROR);
	FUZZ_CHECK(out.policy >= DMARC_P_ABSENT && out.policy <= DMARC_P_REJECT);
	dmarc_eval_free(e);
	free(text);
	return 0;
}
