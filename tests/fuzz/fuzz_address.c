/*
 * fuzz_address - common/addr.c: addr_parse_path, addr_parse and addr_key,
 * with and without ADDR_F_UTF8 (and ADDR_F_NODOMAIN).
 *
 * Input: one flags octet, then the text (cut at the first NUL, as every
 * caller passes C strings).  Checks: every accepted address passes
 * check_mailaddr (fuzz_addrcheck.h); the UTF-8 flag only widens what is
 * accepted (an address taken without it is taken, the same, with it; an
 * ASCII address taken with it is taken without it); addr_key fits or says
 * false for any output size.
 */
#include <strings.h>

#include "fuzz_addrcheck.h"

static void
check_key_sizes(const struct mailaddr *a, size_t small)
{
	char full[PATH_MAX_OCTETS * 2 + 8], *out;
	bool ok = addr_key(a, full, sizeof(full));

	/* a smaller buffer: fits when the full key does (one spare octet) */
	out = malloc(small ? small : 1);
	if (small > 0 && addr_key(a, out, small)) {
		FUZZ_CHECK(ok);
		FUZZ_CHECK(strcmp(out, full) == 0);
	} else if (ok && small > strlen(full) + 1)
		FUZZ_CHECKF(0, "addr_key refused %zu octets for %s", small, full);
	free(out);
}

static void
one(const char *s, int flags, size_t small)
{
	struct mailaddr a, b;
	const char *p = s, *q = s;
	enum addr_status st, st2;
	size_t n = strlen(s);

	st = addr_parse_path(&p, &a, flags);
	if (st == ADDR_OK || st == ADDR_NULL) {
		FUZZ_CHECK(p > s && p <= s + n && p[-1] == '>');
		if (st == ADDR_OK) {
			check_mailaddr(&a, flags);
			check_key_sizes(&a, small);
		}
	} else
		FUZZ_CHECK(p == s);

	/* the UTF-8 flag only widens */
	if (!(flags & ADDR_F_UTF8)) {
		st2 = addr_parse_path(&q, &b, flags | ADDR_F_UTF8);
		if (st == ADDR_OK) {
			FUZZ_CHECK(st2 == ADDR_OK && q == p);
			FUZZ_CHECK(strcmp(a.local, b.local) == 0 &&
			    strcmp(a.domain, b.domain) == 0);
		}
		if (st2 == ADDR_OK && str_is_ascii(b.local, strlen(b.local)) &&
		    str_is_ascii(b.domain, strlen(b.domain)))
			FUZZ_CHECKF(st == ADDR_OK, "ASCII %s@%s needs UTF8 (%d)",
			    b.local, b.domain, st);
	}

	st = addr_parse(s, &a, flags);
	if (st == ADDR_OK) {
		check_mailaddr(&a, flags);
		check_key_sizes(&a, small);
	}
	FUZZ_CHECK(st != ADDR_NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, dom[DOMAIN_MAX + 1];
	uint8_t f;

	if (size < 1)
		return 0;
	f = data[0];
	s = fuzz_str(data + 1, size - 1);
	one(s, (f & 1 ? ADDR_F_NODOMAIN : 0), f >> 1);
	one(s, ADDR_F_UTF8 | (f & 1 ? ADDR_F_NODOMAIN : 0), f >> 1);
	utf8_valid(s, strlen(s));
	if (addr_domain_key(s, dom, sizeof(dom)))
		FUZZ_CHECK(strlen(dom) < sizeof(dom));
	free(s);
	return 0;
}
