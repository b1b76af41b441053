/*
 * addrlist.h - RFC 5322 address lists (3.4, with the obsolete forms of
 * 4.4): the addresses of a To, Cc, Bcc or From field's value, or of a
 * chamois-sendmail argument, and the one domain of a From field.  Pure:
 * no I/O, no globals.
 */
#ifndef CHAMOIS_ADDRLIST_H
#define CHAMOIS_ADDRLIST_H

#include <stdbool.h>
#include <stddef.h>

/* a growing list of addresses, each malloc'd */
struct addr_list {
	char **v;
	size_t n;
};

void addr_list_add(struct addr_list *, const char *);
void addr_list_free(struct addr_list *);

/*
 * addr_list_parse - the RFC 5322 address-list s[0..len): display names,
 * angle addresses (an obsolete source route is dropped), groups,
 * comments, quoted strings, folded lines, empty list elements.  Each
 * addr-spec is appended to out as "local@domain"; a bare name ("root")
 * gets "@domain" when domain is not NULL.  Returns 0, or -1 with err set
 * (addresses found before the error stay in out).
 */
int addr_list_parse(const char *s, size_t len, const char *domain,
    struct addr_list *out, char *err, size_t errsize);

/* what addr_list_from_domain found */
enum from_domain {
	FROM_DOMAIN_ONE,	/* one domain, in out */
	FROM_DOMAIN_NONE,	/* no address with a domain that is a DNS name */
	FROM_DOMAIN_SEVERAL,	/* addresses in different domains */
	FROM_DOMAIN_BAD,	/* the value does not parse */
};

/*
 * addr_list_from_domain - the one domain of the addresses of a From
 * field's value v[0..n), as a lower-case A-label (no final dot) in out,
 * for DMARC (RFC 9989: the Author Domain) and DKIM signing.  Anything
 * but FROM_DOMAIN_ONE sets *why (when why is not NULL) to a reason.
 *
 * Read as RFC 5322 3.6.2 with RFC 6854: From is a mailbox-list or an
 * address-list, so a group counts by its members: "Team: a@x.org;" is
 * a@x.org, "undisclosed:;" has no address.  Several addresses in one
 * domain give that domain (the reader sees only that domain as the
 * author); in different domains, FROM_DOMAIN_SEVERAL (no one Author
 * Domain: the mx role refuses it, doc/forwarding.md "Checks").  An
 * address without a domain ("Doe, John <j@x.org>" reads as "Doe" and
 * j@x.org) or with one that is no DNS name (RFC 1035 2.3.4; letters,
 * digits, '-', '_' and dots only, so no domain literal) names no domain.
 * A domain of one label is taken ("a@localhost": RFC 5322 asks for no
 * dot, and a top-level domain can publish a DMARC record for itself).
 * One final dot is taken and dropped ("a@example.org." is the DNS name
 * example.org; RFC 5322 has no such form, but mail readers show it as
 * that domain, and refusing it would let a message escape its DMARC
 * policy).
 */
enum from_domain addr_list_from_domain(const char *v, size_t n, char *out,
    size_t size, const char **why);

/* addr_qualify - addr with "@domain" added when it has no domain (malloc'd) */
char *addr_qualify(const char *addr, const char *domain);

#endif
