/*
 * test_limits.c - the login limits (submission/limits.c, doc/users.md
 * "Failed logins"): the one key of a login name, and the counters as an
 * attacker would try them (valid account, parked exchanges, a flood of
 * names to push a lock out of the map), and the end of each window (the
 * failed-login windows, the known address, max_messages_per_hour) at a
 * time given as an argument, without sleeping.
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

/*
 * lock_user - five failures for user from net.0 to net.4 at now lock it:
 * the next try, from other, is refused
 */
static void
lock_user(const char *net, const char *other, const char *user, time_t now)
{
	char addr[64];

	for (int i = 0; i < 5; i++) {
		snprintf(addr, sizeof(addr), "%s.%d", net, i);
		assert_true(failed_try(addr, user, now));
	}
	assert_false(failed_try(other, user, now));
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
	lock_user("10.1.0", "10.1.1.1", "carol@example.org", now);
	for (int i = 0; i < 25000; i++) {
		snprintf(addr, sizeof(addr), "10.2.%d.%d", i / 250, i % 250);
		snprintf(name, sizeof(name), "u%d@example.org", i);
		assert_true(failed_try(addr, name, now));
	}
	assert_false(failed_try("10.1.1.2", "carol@example.org", now));
	assert_true(failed_try("10.0.0.9", "carol@example.org", now));
	sub_limits_shutdown();
}

/*
 * The windows end on their own (doc/users.md "Failed logins": 15 minutes,
 * the known address 7 days; max_messages_per_hour: an hour): the time is
 * an argument, so these need no sleep.
 */
#define WINDOW		(15 * 60)
#define KNOWN_TIME	(7 * 24 * 3600)

/* an address that used up its ten attempts is refused until the window ends */
static void
test_address_window_ends(void **state)
{
	char name[64];
	time_t now = 4000000;

	(void)state;
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "w%d@example.org", i);
		assert_true(failed_try("10.3.0.1", name, now));
	}
	assert_false(failed_try("10.3.0.1", "x@example.org", now));
	assert_false(failed_try("10.3.0.1", "x@example.org", now + WINDOW - 1));
	/* another address is not refused meanwhile */
	assert_true(failed_try("10.3.0.2", "x@example.org", now + 60));
	assert_true(failed_try("10.3.0.1", "x@example.org", now + WINDOW));
	sub_limits_shutdown();
}

/* the delay before each 535 doubles from 0.5 s to 8 s, and starts over */
static void
test_failure_delays(void **state)
{
	static const unsigned want[] = { 500, 1000, 2000, 4000, 8000, 8000, 8000 };
	struct sub_attempt *a = NULL;
	char name[64];
	time_t now = 5000000;

	(void)state;
	for (size_t i = 0; i < nitems(want); i++) {
		snprintf(name, sizeof(name), "d%zu@example.org", i);
		assert_true(sub_auth_begin(&a, "10.4.0.1", now));
		assert_true(sub_auth_user(a, "10.4.0.1", name, now));
		assert_int_equal(sub_auth_failed(&a, "10.4.0.1", now), want[i]);
	}
	/* a new window: the first failure waits 0.5 s again */
	assert_true(sub_auth_begin(&a, "10.4.0.1", now + WINDOW));
	assert_true(sub_auth_user(a, "10.4.0.1", "e@example.org", now + WINDOW));
	assert_int_equal(sub_auth_failed(&a, "10.4.0.1", now + WINDOW), 500);
	sub_limits_shutdown();
}

/* the user's own address stays known for 7 days after its last success */
static void
test_known_address_lapses(void **state)
{
	struct sub_attempt *a = NULL;
	time_t now = 6000000, later = now + KNOWN_TIME - 60;

	(void)state;
	assert_true(sub_auth_begin(&a, "10.5.0.9", now));
	sub_auth_succeeded(&a, "10.5.0.9", "dave@example.org", now);
	/* a minute before the week is over, someone locks dave out elsewhere */
	lock_user("10.5.1", "10.5.2.1", "dave@example.org", later);
	/* the known address still gets in, until the week is over */
	assert_true(failed_try("10.5.0.9", "dave@example.org", later));
	assert_true(failed_try("10.5.0.9", "dave@example.org",
	    now + KNOWN_TIME - 1));
	assert_false(failed_try("10.5.0.9", "dave@example.org", now + KNOWN_TIME));
	sub_limits_shutdown();
}

/* max_messages_per_hour: the hour from the first message, then a new one */
static void
test_rate_window_ends(void **state)
{
	time_t now = 7000000;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_true(sub_rate_allow("erin@example.org", 3, now + i));
	assert_false(sub_rate_allow("erin@example.org", 3, now + 60));
	assert_false(sub_rate_allow("erin@example.org", 3, now + 3599));
	/* another user has an hour of his own */
	assert_true(sub_rate_allow("frank@example.org", 3, now + 60));
	assert_true(sub_rate_allow("erin@example.org", 3, now + 3600));
	/* 0: no limit */
	for (int i = 0; i < 1000; i++)
		assert_true(sub_rate_allow("gail@example.org", 0, now));
	sub_limits_shutdown();
}

int
main(void)
{
	struct CMUnitTest tests[nitems(key_cases) + 7];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_key_case, key_cases);
	UNIT_TEST(tests, n, test_success_forgives_only_itself);
	UNIT_TEST(tests, n, test_open_exchanges_count);
	UNIT_TEST(tests, n, test_known_address_and_flood);
	UNIT_TEST(tests, n, test_address_window_ends);
	UNIT_TEST(tests, n, test_failure_delays);
	UNIT_TEST(tests, n, test_known_address_lapses);
	UNIT_TEST(tests, n, test_rate_window_ends);
	UNIT_RUN(tests, n);
}
