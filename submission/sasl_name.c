/*
 * sasl_name.c - the login name a client's SASL message carries, for
 * counting failures per user (doc/users.md "Failed logins") before any
 * back end checks a password, and whether a mechanism is in a list:
 * shared by the Cyrus and Dovecot back ends.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "submission.h"

bool
sub_sasl_login_name(const char *mech, const char *in, size_t len, char *name,
    size_t size)
{
	size_t o = 0;
	const char *p, *e = in + len;

	if (size == 0)
		return false;
	if (strcasecmp(mech, "PLAIN") == 0) {
		/* RFC 4616 2: authzid NUL authcid NUL passwd */
		if ((p = memchr(in, '\0', len)) == NULL)
			return false;
		for (p++; p < e && *p && o + 1 < size; p++)
			name[o++] = *p;
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		for (p = in; p < e && *p && o + 1 < size; p++)
			name[o++] = *p;
	} else if (strncasecmp(mech, "SCRAM-", 6) == 0) {
		for (p = in; p + 2 < e && !(p[0] == ',' && p[1] == 'n' &&
		    p[2] == '='); p++)
			;
		if (p + 2 >= e)
			return false;
		for (p += 3; p < e && *p != ',' && o + 1 < size; p++) {
			if (*p == '=' && p + 2 < e && p[1] == '2' && p[2] == 'C') {
				name[o++] = ',';
				p += 2;
			} else if (*p == '=' && p + 2 < e && p[1] == '3' && p[2] == 'D') {
				name[o++] = '=';
				p += 2;
			} else
				name[o++] = *p;
		}
	}
	name[o] = '\0';
	return o > 0;
}

bool
sub_sasl_mech_listed(const char *list, const char *mech)
{
	size_t n = strlen(mech);

	for (const char *p = list; *p != '\0'; p += strcspn(p, " ")) {
		p += strspn(p, " ");
		if (strncasecmp(p, mech, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
	}
	return false;
}
