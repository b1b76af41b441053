/* addr.h - RFC 5321 / RFC 6531 mailbox parsing and look-up keys. */
#ifndef CHAMOIS_ADDR_H
#define CHAMOIS_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "limits.h"

struct mailaddr {
	/* canonical local part: unquoted when it is a dot-string */
	char local[PATH_MAX_OCTETS + 1];
	/* the domain as the peer spelled it (U-label or A-label or literal) */
	char domain[DOMAIN_MAX + 1];
};

#define ADDR_F_UTF8	0x01	/* non-ASCII allowed (SMTPUTF8, RFC 6531) */
#define ADDR_F_NODOMAIN	0x02	/* "<postmaster>" without a domain (RCPT) */

enum addr_status {
	ADDR_OK,
	ADDR_NULL,		/* "<>" */
	ADDR_SYNTAX,
	ADDR_TOOLONG,
	ADDR_NONASCII,		/* non-ASCII without ADDR_F_UTF8 */
};

/*
 * addr_parse_path - parse a reverse- or forward-path "<...>" starting at
 * *sp (a source route is accepted and ignored, RFC 5321 4.1.2 and C.);
 * on success *sp points past the '>'.
 */
enum addr_status addr_parse_path(const char **sp, struct mailaddr *, int flags);
/* addr_parse - parse a bare "local@domain" (tables, aliases) */
enum addr_status addr_parse(const char *, struct mailaddr *, int flags);
/* addr_domain_key - domain as a lower-case IDNA A-label; false if invalid */
bool addr_domain_key(const char *domain, char *out, size_t size);
/*
 * domain_within - d is dom or a subdomain of it (both lower case):
 * "lists.example.org" is within "example.org", "badexample.org" is not
 */
bool domain_within(const char *d, const char *dom);
/*
 * dns_name_ok - name can be asked at all (RFC 1035 2.3.4: labels of 1 to
 * 63 octets, 253 in all, a final dot allowed); the resolver would take
 * such a name as a DNS failure
 */
bool dns_name_ok(const char *name);
/* addr_key - "local@domain" with ASCII folded and the domain as A-label */
bool addr_key(const struct mailaddr *, char *out, size_t size);
/* addr_format - "local@domain" as parsed (or "local" without domain) */
void addr_format(const struct mailaddr *, char *out, size_t size);
bool utf8_valid(const char *, size_t);
/* addr_is_dot_string - RFC 5321 Dot-string (atoms joined by single dots) */
bool addr_is_dot_string(const char *, size_t);

#endif
