/*
 * fuzz_addrcheck.h - what must hold of every address common/addr.c
 * accepts (used by fuzz_address and fuzz_command).
 */
#ifndef CHAMOIS_FUZZ_ADDRCHECK_H
#define CHAMOIS_FUZZ_ADDRCHECK_H

#include "common/addr.h"
#include "common/limits.h"
#include "common/util.h"
#include "fuzz.h"

/*
 * check_mailaddr - a (flags) accepted by addr_parse_path: bounded, valid
 * UTF-8, ASCII without ADDR_F_UTF8, printable into the buffers commands.c
 * uses, and canonical: its own spelling parses back to the same address.
 */
static inline void
check_mailaddr(const struct mailaddr *a, int flags)
{
	size_t ll = strnlen(a->local, sizeof(a->local));
	size_t dl = strnlen(a->domain, sizeof(a->domain));
	char shown[PATH_MAX_OCTETS + 1], key[PATH_MAX_OCTETS + 1];
	char path[PATH_MAX_OCTETS + 8];
	struct mailaddr b;
	const char *p;

	FUZZ_CHECK(ll < sizeof(a->local) && dl < sizeof(a->domain));
	FUZZ_CHECK(ll > 0);
	FUZZ_CHECK(ll + dl + 1 <= PATH_MAX_OCTETS - 2);
	FUZZ_CHECK(utf8_valid(a->local, ll) && utf8_valid(a->domain, dl));
	if (!(flags & ADDR_F_UTF8))
		FUZZ_CHECK(str_is_ascii(a->local, ll) &&
		    str_is_ascii(a->domain, dl));
	if (dl == 0)
		FUZZ_CHECK((flags & ADDR_F_NODOMAIN) &&
		    strcasecmp(a->local, "postmaster") == 0);

	/* commands.c: addr_format into PATH_MAX_OCTETS + 1, never cut */
	addr_format(a, shown, sizeof(shown));
	FUZZ_CHECK(strlen(shown) == (dl ? ll + 1 + dl : ll));

	/* commands.c cmd_rcpt: strrchr(key, '@') + 1 when there is a domain */
	if (addr_key(a, key, sizeof(key))) {
		FUZZ_CHECK(strlen(key) < sizeof(key));
		if (dl)
			FUZZ_CHECK(strrchr(key, '@') != NULL &&
			    strrchr(key, '@')[1] != '\0');
		else
			FUZZ_CHECK(strchr(key, '@') == NULL);
	}

	/* the canonical spelling is a fixed point */
	FUZZ_CHECK(bsnprintf(path, sizeof(path), "<%s>", shown));
	p = path;
	FUZZ_CHECKF(addr_parse_path(&p, &b, flags) == ADDR_OK,
	    "canonical <%s> refused", shown);
	FUZZ_CHECK(*p == '\0');
	FUZZ_CHECKF(strcmp(a->local, b.local) == 0 &&
	    strcmp(a->domain, b.domain) == 0, "<%s> reparsed as %s @ %s",
	    shown, b.local, b.domain);
	if (dl) {
		FUZZ_CHECKF(addr_parse(shown, &b, flags) == ADDR_OK,
		    "addr_parse refuses canonical %s", shown);
		FUZZ_CHECK(strcmp(a->local, b.local) == 0 &&
		    strcmp(a->domain, b.domain) == 0);
	}
}

#endif
