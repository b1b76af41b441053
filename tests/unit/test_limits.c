/*
 * test_limits.c - the login limits (submission/limits.c, doc/users.md
 * "Failed logins"): the one key of a login name, and the counters as an
 * attacker would try them (valid account, parked exchanges, a flood of
 * names to push a lock out of the map).
 */
#include <string.h>

#include "submission/submission.h"
#include "unit.h"

struct key_case {
	const char *label;
	const char *name;
	const char *want;
	const char *bug;
};

static const struct key_case key_cases[] = {
	{ .label = "key: as it is", .name = "alice@example.org", .want = "alice@example.org" },
	{ .label = "key: leading blank (libsasl2 trims it)", .name = " alice@example.org", .want = "alice@example.org" },
	{ .label = "key: blanks both ends, tab", .name = "\t alice@example.org \r", .want = "alice@example.org" },
	{ .label = "key: letter case", .name = "ALICE@Example.ORG", .want = "alice@example.org" },
	{ .label = "key: U-label domain to A-label", .name = "bob@b\xc3\xbc" "cher.example", .want = "bob@xn--bcher-kva.example" },
	{ .label = "key: no domain, folded", .name = " Alice ", .want = "alice" },
	{ .label = "key: not an address, folded", .name = "x Y@z", .want = "x y@z" },
	{ .label = "key: empty", .name = "   ", .want = "" },
};

static void
run_key_case(void **state)
{
	const struct key_case *c = *state;
	char out[SUB_USER_KEY_MAX];

	UNIT_BUG(c);
	sub_user_key(c->name, out, sizeof(out));
	assert_string_equal(out, c->want);
}

/* one failed attempt for user from addr; true if it was allowed to start */
static bool
failed_try(const char *addr, const char *user, time_t now)
{
	struct sub_attempt *a = NULL;

	if (!sub_auth_begin(&a, addr, now))
		return false;
	if (!sub_auth_user(a, addr, user, now)) {
		sub_auth_forgive(&a, addr);
		return false;
	}
	(void)sub_auth_failed(&a, addr, now);
	return true;
}

/* (a): logging in as alice between guesses does not help with bob */
static void
test_success_forgives_only_itself(void **state)
{
	struct sub_attempt *a = NULL;
	time_t now = 1000000;
	int ok = 0;

	(void)state;
	for (int i = 0; i < 8; i++) {
		assert_true(sub_auth_begin(&a, "10.0.0.1", now));
		assert_true(sub_auth_user(a, "10.0.0.1", "alice@example.org", now));
		sub_auth_succeeded(&a, "10.0.0.1", "alice@example.org", now);
		ok += failed_try("10.0.0.1", "bob@example.org", now);
	}
	assert_int_equal(ok, 5);
	/* bob's lock holds from elsewhere, not forever */
	assert_false(failed_try("10.0.0.2", "bob@example.org", now + 60));
	assert_true(failed_try("10.0.0.2", "bob@example.org", now + 15 * 60));
	sub_limits_shutdown();
}

/* (b): exchanges in progress count: the eleventh cannot start */
static void
test_open_exchanges_count(void **state)
{
	struct sub_attempt *a[11] = { 0 };
	time_t now = 2000000;

	(void)state;
	for (int i = 0; i < 10; i++)
		assert_true(sub_auth_begin(&a[i], "10.0.0.3", now));
	assert_false(sub_auth_begin(&a[10], "10.0.0.3", now));
	/* one cancelled exchange gives its attempt back, no more */
	sub_auth_forgive(&a[0], "10.0.0.3");
	sub_auth_forgive(&a[0], "10.0.0.3");
	assert_true(sub_auth_begin(&a[0], "10.0.0.3", now));
	assert_false(sub_auth_begin(&a[10], "10.0.0.3", now));
	for (int i = 0; i < 10; i++)
		(void)sub_auth_failed(&a[i], "10.0.0.3", now);
	sub_limits_shutdown();
}

/* the user's own recent address is not refused; a flood of names keeps the lock */
static void
test_known_address_and_flood(void **state)
{
	struct sub_attempt *a = NULL;
	char addr[64], name[64];
	time_t now = 3000000;

	(void)state;
	assert_true(sub_auth_begin(&a, "10.0.0.9", now));
	sub_auth_succeeded(&a, "10.0.0.9", "carol@example.org", now);
	for (int i = 0; i < 5; i++) {
		snprintf(addr, sizeof(addr), "10.1.0.%d", i);
		assert_true(failed_try(addr, "carol@example.org", now));
	}
	assert_false(failed_try("10.1.1.1", "carol@example.org", now));
	for (int i = 0; i < 25000; i++) {
		snprintf(addr, sizeof(addr), "10.2.%d.%d", i / 250, i % 250);
		snprintf(name, sizeof(name), "u%d@example.org", i);
		assert_true(failed_try(addr, name, now));
	}
	assert_false(failed_try("10.1.1.2", "carol@example.org", now));
	assert_true(failed_try("10.0.0.9", "carol@example.org", now));
	sub_limits_shutdown();
}

int
main(void)
{
	struct CMUnitTest tests[nitems(key_cases) + 3];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_key_case, key_cases);
	UNIT_TEST(tests, n, test_success_forgives_only_itself);
	UNIT_TEST(tests, n, test_open_exchanges_count);
	UNIT_TEST(tests, n, test_known_address_and_flood);
	UNIT_RUN(tests, n);
}
