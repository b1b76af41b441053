/*
 * limits.c - what a stolen or guessed password can do.
 *
 * Login attempts are counted per client address (IPv6 per /64: the key
 * the session already has) and per user name, across connections, in a
 * window of AUTH_WINDOW seconds (doc/users.md "Failed logins").  An
 * attempt is counted when it starts: the address at AUTH, the user as
 * soon as the exchange names one, before any password is checked, so
 * exchanges parked at a 334 count too and at most AUTH_MAX_FAILURES of
 * them are open per address.  Past AUTH_MAX_FAILURES an address may not
 * start an exchange for the rest of its window; past AUTH_MAX_USER_FAILURES
 * a user name is refused from every address for the rest of its window,
 * except from an address where that user logged in within AUTH_KNOWN_TIME.
 * A success, or an exchange that ends without a password being checked,
 * forgives only its own attempt; nobody else's failures are cleared.
 * Each failure's 535 is delayed more (on the session's own timer).  A
 * full map sheds what is expired or below its limit first, never a live
 * lock while anything else can go (prune).  User
 * names are keyed once, canonically (sub_user_key).  A user may send at
 * most max_messages_per_hour messages an hour, so a stolen password
 * cannot get the server's address blocklisted.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/addr.h"
#include "../common/hmap.h"
#include "../common/util.h"
#include "submission.h"

#define AUTH_WINDOW		(15 * 60)	/* seconds */
#define AUTH_MAX_FAILURES	10	/* per address in a window */
#define AUTH_MAX_USER_FAILURES	5	/* per user name in a window */
#define AUTH_KNOWN_TIME		(7 * 24 * 3600)	/* a user's address stays known */
#define AUTH_DELAY_BASE_MS	500
#define AUTH_DELAY_MAX_MS	8000
#define RATE_WINDOW		3600
#define TRACKED_MAX		20000	/* entries before old ones are pruned */

struct counter {
	time_t start;		/* beginning of the window */
	unsigned n;
};

/* one exchange's counted attempt, so that it can be forgiven exactly once */
struct sub_attempt {
	time_t addr_start;	/* window of the address counter it is in */
	time_t user_start;	/* window of the user counter, if user */
	char *user;		/* the canonical name, once the exchange named one */
};

static struct hmap *fail_addr, *fail_user, *known, *sent_user;

struct prune {
	time_t now, window;
	unsigned keep;		/* entries at or above it are kept (0: none) */
	char **keys;
	size_t n, cap;
};

static void
prune_pick(const char *key, void *val, void *arg)
{
	struct prune *p = arg;
	const struct counter *c = val;

	if (p->now - c->start < p->window && (p->keep == 0 || c->n >= p->keep))
		return;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 256;
		p->keys = xreallocarray(p->keys, p->cap, sizeof(*p->keys));
	}
	p->keys[p->n++] = xstrdup(key);
}

/*
 * prune - a full map (an attacker with many addresses or names): drop the
 * entries whose window is over, then those below keep, and only when
 * every entry is a live lock forget them all; so that flooding the map
 * with new names does not lift the locks already in force
 */
static void
prune(struct hmap **m, time_t now, time_t window, unsigned keep)
{
	struct prune p = { .now = now, .window = window };

	for (int pass = 0; pass < 2 && hmap_count(*m) >= TRACKED_MAX; pass++) {
		p.keep = pass == 0 ? 0 : keep;
		if (pass == 1 && keep == 0)
			break;
		p.n = 0;
		hmap_walk(*m, prune_pick, &p);
		for (size_t i = 0; i < p.n; i++) {
			free(hmap_del(*m, p.keys[i]));
			free(p.keys[i]);
		}
	}
	free(p.keys);
	if (hmap_count(*m) >= TRACKED_MAX) {
		hmap_free(*m, free);
		*m = hmap_new();
	}
}

static struct counter *
counter(struct hmap **m, const char *key, time_t now, time_t window,
    unsigned keep)
{
	struct counter *c;

	if (*m == NULL)
		*m = hmap_new();
	if ((c = hmap_get(*m, key)) == NULL) {
		if (hmap_count(*m) >= TRACKED_MAX)
			prune(m, now, window, keep);
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

/* forgive - take back one attempt counted in the window that began at start */
static void
forgive(struct hmap *m, const char *key, time_t start)
{
	struct counter *c = m ? hmap_get(m, key) : NULL;

	if (c != NULL && c->start == start && c->n > 0)
		c->n--;
}

static void
known_key(char *out, size_t size, const char *user, const char *addr_key)
{
	bsnprintf(out, size, "%s %s", user, addr_key);
}

/*
 * sub_user_key - the one key of a login name, for the counters and the
 * logs: blanks trimmed at both ends as libsasl2's canonicalisation does
 * (sasl_cyrus.c), then an address's form in the tables (ASCII folded,
 * the domain as a lower-case A-label); a name that is no address is
 * only trimmed and folded.
 */
void
sub_user_key(const char *name, char *out, size_t size)
{
	struct mailaddr a;
	char buf[SUB_USER_KEY_MAX];
	size_t n;

	while (isspace((unsigned char)*name))
		name++;
	n = strlen(name);
	while (n > 0 && isspace((unsigned char)name[n - 1]))
		n--;
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, name, n);
	buf[n] = '\0';
	if (addr_parse(buf, &a, ADDR_F_UTF8) == ADDR_OK &&
	    addr_key(&a, out, size))
		return;
	str_copy(out, buf, size);
	str_lower(out);
}

bool
sub_auth_begin(struct sub_attempt **ap, const char *addr_key, time_t now)
{
	struct counter *c = counter(&fail_addr, addr_key, now, AUTH_WINDOW,
	    AUTH_MAX_FAILURES);

	sub_attempt_free(ap);
	if (c->n >= AUTH_MAX_FAILURES)
		return false;
	c->n++;
	*ap = xcalloc(1, sizeof(**ap));
	(*ap)->addr_start = c->start;
	return true;
}

bool
sub_auth_user(struct sub_attempt *a, const char *addr_key, const char *user,
    time_t now)
{
	struct counter *c, *k;
	char kk[SUB_USER_KEY_MAX + 80];

	if (a == NULL || a->user != NULL || user == NULL || *user == '\0')
		return true;
	c = counter(&fail_user, user, now, AUTH_WINDOW, AUTH_MAX_USER_FAILURES);
	if (c->n >= AUTH_MAX_USER_FAILURES) {
		known_key(kk, sizeof(kk), user, addr_key);
		k = known ? hmap_get(known, kk) : NULL;
		if (k == NULL || now - k->start >= AUTH_KNOWN_TIME)
			return false;
	}
	c->n++;
	a->user = xstrdup(user);
	a->user_start = c->start;
	return true;
}

unsigned
sub_auth_failed(struct sub_attempt **ap, const char *addr_key, time_t now)
{
	struct counter *c;
	unsigned n = 0, delay = AUTH_DELAY_BASE_MS;

	/* the attempt was counted when it began: only the delay is left */
	if (fail_addr && (c = hmap_get(fail_addr, addr_key)) != NULL &&
	    now - c->start < AUTH_WINDOW)
		n = c->n;
	if (*ap && (*ap)->user && fail_user &&
	    (c = hmap_get(fail_user, (*ap)->user)) != NULL &&
	    now - c->start < AUTH_WINDOW && c->n > n)
		n = c->n;
	sub_attempt_free(ap);
	/* 0.5 s, 1 s, 2 s, 4 s, then 8 s for every later failure */
	for (unsigned i = 1; i < n && delay < AUTH_DELAY_MAX_MS; i++)
		delay *= 2;
	return delay < AUTH_DELAY_MAX_MS ? delay : AUTH_DELAY_MAX_MS;
}

void
sub_auth_forgive(struct sub_attempt **ap, const char *addr_key)
{
	struct sub_attempt *a = *ap;

	if (a == NULL)
		return;
	forgive(fail_addr, addr_key, a->addr_start);
	if (a->user)
		forgive(fail_user, a->user, a->user_start);
	sub_attempt_free(ap);
}

void
sub_auth_succeeded(struct sub_attempt **ap, const char *addr_key,
    const char *user, time_t now)
{
	char kk[SUB_USER_KEY_MAX + 80], key[SUB_USER_KEY_MAX];
	struct counter *k;

	sub_auth_forgive(ap, addr_key);
	if (user == NULL)
		return;
	sub_user_key(user, key, sizeof(key));
	known_key(kk, sizeof(kk), key, addr_key);
	k = counter(&known, kk, now, AUTH_KNOWN_TIME, 0);
	k->start = now;
}

void
sub_attempt_free(struct sub_attempt **ap)
{
	if (*ap == NULL)
		return;
	free((*ap)->user);
	free(*ap);
	*ap = NULL;
}

bool
sub_rate_allow(const char *user, unsigned max_per_hour, time_t now)
{
	struct counter *c;

	if (max_per_hour == 0)
		return true;
	c = counter(&sent_user, user, now, RATE_WINDOW, 0);
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
	hmap_free(known, free);
	hmap_free(sent_user, free);
	fail_addr = fail_user = known = sent_user = NULL;
}
