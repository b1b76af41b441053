/*
 * test_mtasts.c - MTA-STS policy text and MX matching (outbound/mtasts.c,
 * RFC 8461 3.2 and 4.1).
 */
#include <string.h>

#include "unit.h"
#include "../../outbound/mtasts.h"

struct policy_case {
	const char *label;
	const char *text;
	bool ok;
	enum sts_mode mode;
	unsigned max_age;
	size_t nmx;
	const char *mx0;
};

static const struct policy_case policy_cases[] = {
	{ .label = "policy: enforce, CRLF", .ok = true, .mode = STS_MODE_ENFORCE,
	  .text = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	      "mx: *.example.net\r\nmax_age: 604800\r\n",
	  .max_age = 604800, .nmx = 2, .mx0 = "mail.example.com" },
	{ .label = "policy: testing, LF, spaces, upper-case mx", .ok = true,
	  .text = "version:STSv1\nmode:  testing \nmx: MX.Example.COM\nmax_age: 86400",
	  .mode = STS_MODE_TESTING, .max_age = 86400, .nmx = 1, .mx0 = "mx.example.com" },
	{ .label = "policy: none needs no mx", .ok = true, .mode = STS_MODE_NONE,
	  .text = "version: STSv1\nmode: none\nmax_age: 1\n", .max_age = 1 },
	{ .label = "policy: max_age capped", .ok = true, .mode = STS_MODE_ENFORCE,
	  .text = "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 9999999999\n",
	  .max_age = STS_MAX_AGE, .nmx = 1, .mx0 = "a.test" },
	{ .label = "policy: unknown keys ignored", .ok = true, .mode = STS_MODE_ENFORCE,
	  .text = "version: STSv1\nfoo: bar\nmode: enforce\nmx: a.test\nmax_age: 5\n",
	  .max_age = 5, .nmx = 1, .mx0 = "a.test" },
	{ .label = "policy: no version",
	  .text = "mode: enforce\nmx: a.test\nmax_age: 5\n" },
	{ .label = "policy: version STSv2",
	  .text = "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 5\n" },
	{ .label = "policy: bad mode",
	  .text = "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 5\n" },
	{ .label = "policy: no max_age",
	  .text = "version: STSv1\nmode: enforce\nmx: a.test\n" },
	{ .label = "policy: max_age not a number",
	  .text = "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1d\n" },
	{ .label = "policy: enforce without mx",
	  .text = "version: STSv1\nmode: enforce\nmax_age: 5\n" },
	{ .label = "policy: empty", .text = "" },
};

static void
run_policy_case(void **state)
{
	const struct policy_case *c = *state;
	struct sts_policy p;

	assert_int_equal(sts_policy_parse(c->text, strlen(c->text), &p), c->ok);
	if (!c->ok)
		return;
	assert_int_equal(p.mode, c->mode);
	assert_int_equal(p.max_age, c->max_age);
	assert_int_equal(p.nmx, c->nmx);
	if (c->mx0)
		assert_string_equal(p.mx[0], c->mx0);
}

struct match_case {
	const char *label;
	const char *host;
	bool match;
};

/* against mx: mail.example.com and mx: *.example.net */
static const struct match_case match_cases[] = {
	{ "match: exact", "mail.example.com", true },
	{ "match: case and trailing dot", "MAIL.Example.com.", true },
	{ "match: another host", "mx.example.com", false },
	{ "match: wildcard, one label", "mx1.example.net", true },
	{ "match: wildcard, two labels", "a.mx1.example.net", false },
	{ "match: wildcard, the bare domain", "example.net", false },
	{ "match: suffix only", "badexample.net", false },
};

static void
run_match_case(void **state)
{
	const struct match_case *c = *state;
	static const char text[] = "version: STSv1\nmode: enforce\n"
	    "mx: mail.example.com\nmx: *.example.net\nmax_age: 60\n";
	struct sts_policy p;

	assert_true(sts_policy_parse(text, strlen(text), &p));
	assert_int_equal(sts_mx_match(&p, c->host), c->match);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(policy_cases) + nitems(match_cases)];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_policy_case, policy_cases);
	UNIT_ROWS(tests, n, run_match_case, match_cases);
	UNIT_RUN(tests, n);
}
