/*
 * test_addrlist.c - the From domain (addr_list_from_domain,
 * common/addrlist.c) that DMARC evaluates (checks/checks.c) and DKIM
 * signs for (queue_from_domain): one address of a valid DNS name, its
 * A-label in lower case; groups count by their members (RFC 6854).
 * The address-list parser itself is tabled in test_sendmail_parse.c.
 */
#include <stdbool.h>
#include <string.h>

#include "common/addrlist.h"
#include "common/limits.h"
#include "unit.h"

struct from_case {
	const char *label;
	const char *value;	/* what follows "From:" */
	size_t len;		/* 0: strlen(value) */
	const char *want;	/* NULL: no domain */
	const char *why;	/* with want NULL: the reason given */
	const char *bug;
};

#define NONE(v, w)	.value = (v), .why = (w)
#define LABEL63	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct from_case from_cases[] = {
	{ .label = "from: bare address", .value = " alice@Example.TEST",
	  .want = "example.test" },
	{ .label = "from: display name", .value = " Alice Example <alice@example.test>",
	  .want = "example.test" },
	{ .label = "from: angle address", .value = " <alice@Example.Test>",
	  .want = "example.test" },
	{ .label = "from: quoted display name with <@> and a comma",
	  .value = " \"Boss <boss@x.test>, x\" <boss@chamois.test>",
	  .want = "chamois.test" },
	{ .label = "from: comments with parentheses",
	  .value = " (the (big) boss\\) here) boss(x)@(y)chamois.test (really)",
	  .want = "chamois.test" },
	{ .label = "from: quoted local part with @ inside",
	  .value = " \"a@evil.test\"@example.test", .want = "example.test" },
	{ .label = "from: quoted local part with @, display name",
	  .value = " A <\"a@evil.test\"@example.test>", .want = "example.test" },
	{ .label = "from: folded value (LF)",
	  .value = "\n\tThe Boss\n\t<boss@chamois.test>", .want = "chamois.test" },
	{ .label = "from: folded value (CRLF)",
	  .value = " The Boss\r\n <boss@chamois.test>\r\n", .want = "chamois.test" },
	{ .label = "from: U-label domain", .value = " Jürgen <j@Bücher.example>",
	  .want = "xn--bcher-kva.example" },
	{ .label = "from: group with one member",
	  .value = " Team: Alice <alice@Example.test>;", .want = "example.test" },
	{ .label = "from: group with one member, unterminated",
	  .value = " Team: alice@example.test", .want = "example.test" },
	{ .label = "from: empty group", NONE(" undisclosed-recipients:;",
	  "a From with no address") },
	{ .label = "from: group with two members",
	  NONE(" Team: a@example.test, b@example.test;",
	  "a From with several addresses") },
	{ .label = "from: two addresses",
	  NONE(" a@example.test, b@other.test", "a From with several addresses") },
	{ .label = "from: two addresses of one domain",
	  NONE(" a@example.test, b@example.test", "a From with several addresses") },
	{ .label = "from: an empty list element (obs-mbox-list)",
	  .value = " a@example.test, ", .want = "example.test" },
	{ .label = "from: no @", NONE(" alice", "a From without a domain") },
	{ .label = "from: no @, quoted local part with @ inside",
	  NONE(" \"alice@example.test\"", "a From without a domain") },
	{ .label = "from: trailing dot", .value = " a@Example.test.",
	  .want = "example.test" },
	{ .label = "from: trailing dot in an angle address",
	  .value = " A <a@example.test.> (x)", .want = "example.test" },
	{ .label = "from: two trailing dots",
	  NONE(" a@example.test..", "a From that does not parse") },
	{ .label = "from: only a dot after @",
	  NONE(" a@.", "a From that does not parse") },
	{ .label = "from: garbage", NONE(" <<a@example.test>",
	  "a From that does not parse") },
	{ .label = "from: garbage, two words", NONE(" John Smith",
	  "a From that does not parse") },
	{ .label = "from: garbage after the angle address",
	  NONE(" <a@example.test> junk", "a From that does not parse") },
	{ .label = "from: unclosed angle", NONE(" Alice <alice@example.test",
	  "a From that does not parse") },
	{ .label = "from: unclosed comment", NONE(" alice@example.test (x",
	  "a From that does not parse") },
	{ .label = "from: empty", NONE("", "a From with no address") },
	{ .label = "from: a NUL in the domain (fuzz_authres)",
	  NONE(" a@b\0.x.test", "a From that does not parse"), .len = 12 },
	{ .label = "from: a NUL in a quoted local part",
	  NONE(" \"a\0\"@x.test", "a From that does not parse"), .len = 12 },
	{ .label = "from: source route", .value = " <@relay.test:a@example.test>",
	  .want = "example.test" },
	{ .label = "from: single label", .value = " alice@LocalHost",
	  .want = "localhost" },
	{ .label = "from: domain literal", NONE(" a@[192.0.2.1]",
	  "a From without a valid domain") },
	{ .label = "from: bad characters", NONE(" alice@exa$mple.test",
	  "a From without a valid domain") },
	{ .label = "from: bad UTF-8", NONE(" a@b\xff\xfe.example",
	  "a From without a valid domain") },
	{ .label = "from: a label of 63", .value = " a@" LABEL63 ".test",
	  .want = LABEL63 ".test" },
	{ .label = "from: a label of 64", NONE(" a@" LABEL63 "a.test",
	  "a From without a valid domain") },
};

static void
run_from_case(void **state)
{
	const struct from_case *c = *state;
	char d[DOMAIN_MAX + 1];
	const char *why = NULL;
	bool ok;

	UNIT_BUG(c);
	ok = addr_list_from_domain(c->value, c->len ? c->len : strlen(c->value),
	    d, sizeof(d), &why);
	if (c->want == NULL) {
		if (ok)
			fail_msg("got %s, want none", d);
		assert_non_null(why);
		assert_string_equal(why, c->why);
		return;
	}
	if (!ok)
		fail_msg("got none (%s), want %s", why, c->want);
	assert_string_equal(d, c->want);
}

/* a domain that does not fit out is refused, and why may be NULL */
static void
test_from_small_out(void **state)
{
	char d[8];

	assert_false(addr_list_from_domain(" a@example.test", 15, d, sizeof(d),
	    NULL));
	assert_true(addr_list_from_domain(" a@x.test", 9, d, sizeof(d), NULL));
	assert_string_equal(d, "x.test");
}

int
main(void)
{
	struct CMUnitTest tests[nitems(from_cases) + 1];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_from_case, from_cases);
	UNIT_TEST(tests, n, test_from_small_out);
	UNIT_RUN(tests, n);
}
