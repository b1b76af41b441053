/*
 * fuzz_dsn - common/dsn.c: the DSN parameters of RFC 3461 (xtext, NOTIFY,
 * RET, ENVID, ORCPT) as MAIL and RCPT hand them over.
 *
 * Input: one selector octet (low 2 bits: xtext, NOTIFY, ENVID, ORCPT;
 * 0x04: a small output buffer), then the value.  Checks: a decoded value
 * is printable ASCII within its limit and fits its buffer; xtext decoding
 * undoes dsn_xtext_encode; an ORCPT decodes to "type;address" whose
 * dsn_orcpt_param is taken again to the same; a NOTIFY set is NEVER
 * alone or a set of the three others, and dsn_notify_format of it parses
 * back to it.
 */
#include "fuzz.h"

#include "common/dsn.h"

static void
check_printable(const char *s, size_t max)
{
	FUZZ_CHECK(strlen(s) <= max);
	for (; *s; s++)
		FUZZ_CHECK(*s >= 0x20 && *s <= 0x7e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[DSN_ORCPT_MAX + 1], again[DSN_ORCPT_MAX + 1], fmt[64], *v, *x;
	size_t osize;
	uint8_t sel;
	unsigned n;

	if (size < 1 || size - 1 > 4096 || memchr(data + 1, '\0', size - 1))
		return 0;
	sel = data[0];
	osize = (sel & 0x04) ? 8 : sizeof(out);
	v = fuzz_str(data + 1, size - 1);
	switch (sel & 3) {
	case 0:
		if (dsn_xtext_decode(v, out, osize)) {
			check_printable(out, osize - 1);
			x = dsn_xtext_encode(out);
			FUZZ_CHECK(dsn_xtext_decode(x, again, sizeof(again)) &&
			    strcmp(again, out) == 0);
			free(x);
		}
		/* encoding anything gives xtext that decodes back to it */
		x = dsn_xtext_encode(v);
		for (const char *p = x; *p; p++)
			FUZZ_CHECK(*p > 0x20 && *p < 0x7f && *p != '=');
		free(x);
		break;
	case 1:
		if ((n = dsn_notify_parse(v)) != 0) {
			FUZZ_CHECK(n == DSN_NOTIFY_NEVER || (n & DSN_NOTIFY_NEVER) == 0);
			FUZZ_CHECK((n & ~0x0fu) == 0);
			FUZZ_CHECK(dsn_notify_parse(dsn_notify_format(n, fmt,
			    sizeof(fmt))) == n);
		}
		(void)dsn_ret_parse(v);
		break;
	case 2:
		if (dsn_envid_parse(v, out, osize)) {
			FUZZ_CHECK(strlen(v) <= DSN_ENVID_MAX && out[0] != '\0');
			check_printable(out, DSN_ENVID_MAX);
		}
		break;
	case 3:
		if (dsn_orcpt_parse(v, out, osize)) {
			FUZZ_CHECK(strlen(v) <= DSN_ORCPT_MAX);
			check_printable(out, DSN_ORCPT_MAX);
			FUZZ_CHECK(strchr(out, ';') != NULL);
			x = dsn_orcpt_param(out);
			FUZZ_CHECK(strcmp(x, v) == 0 || (dsn_orcpt_parse(x, again,
			    sizeof(again)) && strcmp(again, out) == 0) ||
			    strlen(x) > DSN_ORCPT_MAX);
			free(x);
		}
		break;
	}
	free(v);
	return 0;
}
