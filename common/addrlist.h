/*
 * addrlist.h - RFC 5322 address lists (3.4, with the obsolete forms of
 * 4.4): the addresses of a To, Cc, Bcc or From field's value, or of a
 * chamois-sendmail argument.  Pure: no I/O, no globals.
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

/* addr_qualify - addr with "@domain" added when it has no domain (malloc'd) */
char *addr_qualify(const char *addr, const char *domain);

#endif
