/*
 * fuzz_authres - checks/results.c on bytes from outside: an
 * Authentication-Results field as a message brings it (auth_results_names:
 * is it ours, to be removed?), the From field's value DMARC takes its
 * domain from (addr_list_from_domain, common/addrlist.c) and a DKIM tag
 * list (tag_value).
 *
 * Input: one mode octet, then the text.
 *  every mode: auth_results_names on the text as a field and with our
 *    name put in front ("Authentication-Results: ID" + text); a true
 *    answer needs our name in the field, any case, once quoted pairs and
 *    folds are out.
 *  the text is also a From value: a domain found is a DNS name of lower
 *    case letters, digits, '-', '_' and dots, without a final dot, and a
 *    reason is given when there is none; and a tag list: values have no
 *    FWS left.
 *  mode & 1: the text is the SPF identity and a DKIM reason of a result
 *    written by auth_results_field, which must name us again, have no
 *    control character but its LFs and TABs, and end in LF.
 */
#include <ctype.h>
#include <strings.h>

#include "checks/checks.h"
#include "checks/eval.h"
#include "common/addr.h"
#include "common/addrlist.h"
#include "common/util.h"
#include "fuzz.h"

#define ID	"mx.chamois.test"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

/*
 * has_ci - needle is in s[0..n), any case, once quoted pairs and folds
 * (what a quoted-string authserv-id may hold) are taken out
 */
static bool
has_ci(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle), m = 0;
	char *t = malloc(n + 1);
	bool found = false;

	FUZZ_CHECK(t != NULL);
	for (size_t i = 0; i < n; i++)
		if (s[i] != '\\' && s[i] != '\r' && s[i] != '\n')
			t[m++] = s[i];
	for (size_t i = 0; i + k <= m && !found; i++)
		found = strncasecmp(t + i, needle, k) == 0;
	free(t);
	return found;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text;
	size_t n;
	char *buf, d[DOMAIN_MAX + 1], v[128];
	const char *why;
	struct strbuf f = { 0 };

	if (size < 1)
		return 0;
	text = (const char *)data + 1;
	n = size - 1;

	if (auth_results_names(text, n, ID))
		FUZZ_CHECK(has_ci(text, n, ID));
	strbuf_printf(&f, "Authentication-Results: " ID);
	strbuf_add(&f, text, n);
	if (auth_results_names(f.p, f.len, ID))
		FUZZ_CHECK(has_ci(f.p, f.len, ID));
	free(f.p);

	why = NULL;
	if (addr_list_from_domain(text, n, d, sizeof(d), &why) ==
	    FROM_DOMAIN_ONE) {
		FUZZ_CHECK(dns_name_ok(d) && d[strlen(d) - 1] != '.');
		for (const char *s = d; *s; s++)
			FUZZ_CHECK(islower((unsigned char)*s) ||
			    isdigit((unsigned char)*s) || strchr("-_.", *s) != NULL);
	} else
		FUZZ_CHECK(why != NULL);
	if (tag_value(text, n, "d", v, sizeof(v)))
		FUZZ_CHECK(strpbrk(v, " \t\r\n;") == NULL);

	if (data[0] & 1) {
		struct auth_results r;
		size_t k = n < sizeof(r.spf_identity) - 1 ? n : sizeof(r.spf_identity) - 1;

		memset(&r, 0, sizeof(r));
		r.spf = (enum auth_res)(data[0] >> 1) % 8;
		memcpy(r.spf_identity, text, k);
		r.spf_identity[k] = '\0';
		r.ndkim = 1;
		r.dkim[0].result = AUTH_FAIL;
		k = n < sizeof(r.dkim[0].why) - 1 ? n : sizeof(r.dkim[0].why) - 1;
		memcpy(r.dkim[0].why, text, k);
		r.dkim[0].why[k] = '\0';
		str_copy(r.dkim[0].d, "example.test", sizeof(r.dkim[0].d));
		buf = auth_results_field(&r, ID);
		FUZZ_CHECK(buf != NULL);
		FUZZ_CHECK(auth_results_names(buf, strlen(buf), ID));
		for (const char *s = buf; *s; s++)
			FUZZ_CHECKF((unsigned char)*s >= 0x20 || *s == '\n' ||
			    *s == '\t', "control %#x", (unsigned char)*s);
		FUZZ_CHECK(buf[strlen(buf) - 1] == '\n');
		free(buf);
	}
	return 0;
}
