/*
 * policy.c - whose addresses a logged-in user may send from
 * (doc/protocol.md, "Sender policy"): the mailbox itself (user+tag too) or
 * any address that delivers to it, such as an alias; compare Postfix's
 * smtpd_sender_login_maps.
 */
#include <string.h>

#include "../common/addr.h"
#include "../common/tables.h"
#include "../common/util.h"
#include "submission.h"

static bool
key_of(const char *address, char *key, size_t size)
{
	struct mailaddr a;

	return addr_parse(address, &a, ADDR_F_UTF8) == ADDR_OK &&
	    addr_key(&a, key, size);
}

/* delivers_to - does address expand to a mailbox whose key is mbkey? */
static bool
delivers_to(const struct tables *t, const char *key, const char *mbkey)
{
	struct expansion exp;
	bool found = false;

	if (!tables_resolve(t, key, &exp))
		return false;
	/* a catch-all takes mail for every address: it lends none to send as */
	if (exp.catchall) {
		expansion_free(&exp);
		return false;
	}
	for (size_t i = 0; i < exp.nmailboxes && !found; i++) {
		char k[PATH_MAX_OCTETS + 1];

		found = key_of(exp.mailboxes[i], k, sizeof(k)) && strcmp(k, mbkey) == 0;
	}
	expansion_free(&exp);
	return found;
}

bool
sub_sender_allowed(const struct tables *t, const char *user, const char *sender)
{
	char ukey[PATH_MAX_OCTETS + 1], skey[PATH_MAX_OCTETS + 1];
	struct expansion exp;
	char mbkey[PATH_MAX_OCTETS + 1] = "";

	if (!key_of(user, ukey, sizeof(ukey)) || !key_of(sender, skey, sizeof(skey)))
		return false;
	if (strcmp(ukey, skey) == 0)
		return true;
	/* the user's own mailbox, as the tables spell it */
	if (tables_resolve(t, ukey, &exp)) {
		if (exp.nmailboxes == 1 && exp.external == NULL)
			key_of(exp.mailboxes[0], mbkey, sizeof(mbkey));
		expansion_free(&exp);
	}
	if (mbkey[0] == '\0')
		return false;
	/* postmaster@ delivers to the postmaster, who may send as it */
	return delivers_to(t, skey, mbkey);
}
