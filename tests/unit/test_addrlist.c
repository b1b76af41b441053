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
	enum from_domain st;	/* with want NULL: what was found */
	const char *why;	/* with want NULL: the reason given */
	const char *bug;
};

#define NOVALID	"a From without an address with a valid domain"
#define NONE(v)		.value = (v), .st = FROM_DOMAIN_NONE, .why = NOVALID
#define BAD(v)		.value = (v), .st = FROM_DOMAIN_BAD, \
			.why = "a From that does not parse"
#define SEVERAL(v)	.value = (v), .st = FROM_DOMAIN_SEVERAL, \
			.why = "a From with addresses in several domains"
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
	{ .label = "from: empty group", NONE(" undisclosed-recipients:;") },
	{ .label = "from: group with two members of one domain",
	  .value = " Team: a@example.test, b@Example.test;", .want = "example.test" },
	{ .label = "from: group with members in two domains",
	  SEVERAL(" Team: a@example.test, b@other.test;") },
	{ .label = "from: two addresses in two domains",
	  SEVERAL(" a@example.test, b@other.test") },
	{ .label = "from: two addresses of one domain",
	  .value = " a@example.test, b@EXAMPLE.test.", .want = "example.test" },
	{ .label = "from: an unquoted comma in the display name",
	  .value = " Doe, John <john@example.test>", .want = "example.test" },
	{ .label = "from: a domain literal beside an address",
	  .value = " a@[192.0.2.1], b@example.test", .want = "example.test" },
	{ .label = "from: an empty list element (obs-mbox-list)",
	  .value = " a@example.test, ", .want = "example.test" },
	{ .label = "from: no @", NONE(" alice") },
	{ .label = "from: no @, quoted local part with @ inside",
	  NONE(" \"alice@example.test\"") },
	{ .label = "from: trailing dot", .value = " a@Example.test.",
	  .want = "example.test" },
	{ .label = "from: trailing dot in an angle address",
	  .value = " A <a@example.test.> (x)", .want = "example.test" },
	{ .label = "from: two trailing dots",
	  BAD(" a@example.test..") },
	{ .label = "from: only a dot after @",
	  BAD(" a@.") },
	{ .label = "from: garbage", BAD(" <<a@example.test>") },
	{ .label = "from: garbage, two words", BAD(" John Smith") },
	{ .label = "from: garbage after the angle address",
	  BAD(" <a@example.test> junk") },
	{ .label = "from: unclosed angle", BAD(" Alice <alice@example.test") },
	{ .label = "from: unclosed comment", BAD(" alice@example.test (x") },
	{ .label = "from: empty", NONE("") },
	{ .label = "from: a NUL in the domain (fuzz_authres)",
	  BAD(" a@b\0.x.test"), .len = 12 },
	{ .label = "from: a NUL in a quoted local part",
	  BAD(" \"a\0\"@x.test"), .len = 12 },
	{ .label = "from: source route", .value = " <@relay.test:a@example.test>",
	  .want = "example.test" },
	{ .label = "from: single label", .value = " alice@LocalHost",
	  .want = "localhost" },
	{ .label = "from: domain literal", NONE(" a@[192.0.2.1]") },
	{ .label = "from: bad characters", NONE(" alice@exa$mple.test") },
	{ .label = "from: bad UTF-8", NONE(" a@b\xff\xfe.example") },
	{ .label = "from: a label of 63", .value = " a@" LABEL63 ".test",
	  .want = LABEL63 ".test" },
	{ .label = "from: a label of 64", NONE(" a@" LABEL63 "a.test") },
};

static void
run_from_case(void **state)
{
	const struct from_case *c = *state;
	char d[DOMAIN_MAX + 1];
	const char *why = NULL;
	enum from_domain st;

	UNIT_BUG(c);
	st = addr_list_from_domain(c->value, c->len ? c->len : strlen(c->value),
	    d, sizeof(d), &why);
	if (c->want == NULL) {
		if (st == FROM_DOMAIN_ONE)
			fail_msg("got %s, want none", d);
		assert_int_equal(st, c->st);
		assert_non_null(why);
		assert_string_equal(why, c->why);
		return;
	}
	if (st != FROM_DOMAIN_ONE)
		fail_msg("got none (%s), want %s", why, c->want);
	assert_string_equal(d, c->want);
}

/* a domain that does not fit out is refused, and why may be NULL */
static void
test_from_small_out(void **state)
{
	char d[8];

	assert_int_equal(addr_list_from_domain(" a@example.test", 15, d,
	    sizeof(d), NULL), FROM_DOMAIN_NONE);
	assert_int_equal(addr_list_from_domain(" a@x.test", 9, d, sizeof(d),
	    NULL), FROM_DOMAIN_ONE);
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
