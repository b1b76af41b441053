/*
 * limits.c - what a stolen or guessed password can do.
 *
 * Login failures are counted per client address (IPv6 per /64: the key
 * the session already has) and per user name, across connections, in a
 * window of AUTH_WINDOW seconds.  Each failure's 535 is delayed more
 * (without holding up other sessions: the session waits on a timer); past
 * AUTH_MAX_FAILURES an address may not try at all for the rest of the
 * window.  A user may send at most max_messages_per_hour messages an hour,
 * so a stolen password cannot get the server's address blocklisted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hmap.h"
#include "../common/util.h"
#include "submission.h"

#define AUTH_WINDOW		(15 * 60)	/* seconds */
#define AUTH_MAX_FAILURES	10	/* per address in a window */
#define AUTH_DELAY_BASE_MS	500
#define AUTH_DELAY_MAX_MS	8000
#define RATE_WINDOW		3600
#define TRACKED_MAX		20000	/* entries before old ones are pruned */

struct counter {
	time_t start;		/* beginning of the window */
	unsigned n;
};

static struct hmap *fail_addr, *fail_user, *sent_user;

static struct counter *
counter(struct hmap **m, const char *key, time_t now, time_t window)
{
	struct counter *c;

	if (*m == NULL)
		*m = hmap_new();
	if ((c = hmap_get(*m, key)) == NULL) {
		if (hmap_count(*m) >= TRACKED_MAX) {
			/* an attacker with many addresses: forget everything old */
			hmap_free(*m, free);
			*m = hmap_new();
		}
		c = xcalloc(1, sizeof(*c));
		c->start = now;
		hmap_put(*m, key, c);
	}
	if (now - c->start >= window) {
		c->start = now;
		c->n = 0;
	}
	return c;
}

bool
sub_auth_allowed(const char *addr_key, time_t now)
{
	return counter(&fail_addr, addr_key, now, AUTH_WINDOW)->n < AUTH_MAX_FAILURES;
}

unsigned
sub_auth_failed(const char *addr_key, const char *user, time_t now)
{
	unsigned a = ++counter(&fail_addr, addr_key, now, AUTH_WINDOW)->n;
	unsigned u = user && *user ?
	    ++counter(&fail_user, user, now, AUTH_WINDOW)->n : 0;
	unsigned n = a > u ? a : u;
	unsigned delay = AUTH_DELAY_BASE_MS;

	/* 0.5 s, 1 s, 2 s, 4 s, then 8 s for every later failure */
	for (unsigned i = 1; i < n && delay < AUTH_DELAY_MAX_MS; i++)
		delay *= 2;
	return delay < AUTH_DELAY_MAX_MS ? delay : AUTH_DELAY_MAX_MS;
}

void
sub_auth_succeeded(const char *addr_key, const char *user)
{
	if (fail_addr)
		free(hmap_del(fail_addr, addr_key));
	if (fail_user && user)
		free(hmap_del(fail_user, user));
}

bool
sub_rate_allow(const char *user, unsigned max_per_hour, time_t now)
{
	struct counter *c;

	if (max_per_hour == 0)
		return true;
	c = counter(&sent_user, user, now, RATE_WINDOW);
	if (c->n >= max_per_hour)
		return false;
	c->n++;
	return true;
}

void
sub_limits_shutdown(void)
{
	hmap_free(fail_addr, free);
	hmap_free(fail_user, free);
	hmap_free(sent_user, free);
	fail_addr = fail_user = sent_user = NULL;
}
