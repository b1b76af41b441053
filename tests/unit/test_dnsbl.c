/*
 * test_dnsbl.c - the pure parts of the DNS block lists (checks/dnsbl.c):
 * the name looked up for an address (RFC 5782 2.1, 2.4) and what an
 * answer means (listed, a list's error code, a DNS failure).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "checks/dnsbl.h"
#include "unit.h"

static const struct name_case {
	const char *label;
	int family;
	const char *addr;
	const char *want;
} name_cases[] = {
	{ .label = "name: IPv4 octets reversed", .family = AF_INET,
	  .addr = "192.0.2.99", .want = "99.2.0.192.bl.example" },
	{ .label = "name: IPv4-mapped IPv6 looked up as IPv4", .family = AF_INET6,
	  .addr = "::ffff:192.0.2.99", .want = "99.2.0.192.bl.example" },
	{ .label = "name: IPv6 nibbles reversed (RFC 5782 2.4)", .family = AF_INET6,
	  .addr = "2001:db8:1:2:3:4:567:89ab",
	  .want = "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"
	      ".bl.example" },
};

static void
run_name_case(void **state)
{
	const struct name_case *c = *state;
	struct sockaddr_storage ss;
	char out[300];

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)c->family;
	if (c->family == AF_INET)
		assert_int_equal(inet_pton(AF_INET, c->addr,
		    &((struct sockaddr_in *)&ss)->sin_addr), 1);
	else
		assert_int_equal(inet_pton(AF_INET6, c->addr,
		    &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	assert_true(dnsbl_query_name((struct sockaddr *)&ss, "bl.example", out,
	    sizeof(out)));
	assert_string_equal(out, c->want);
	/* too small a buffer: false, never a cut name */
	assert_false(dnsbl_query_name((struct sockaddr *)&ss, "bl.example", out,
	    strlen(c->want)));
}

static const struct answer_case {
	const char *label;
	enum dns_status st;
	const char *texts[3];
	enum dnsbl_answer want;
	const char *first;
} answer_cases[] = {
	{ .label = "answer: 127.0.0.2 is listed", .st = DNS_OK,
	  .texts = { "127.0.0.2" }, .want = DNSBL_LISTED, .first = "127.0.0.2" },
	{ .label = "answer: any of several in 127/8", .st = DNS_OK,
	  .texts = { "127.255.255.254", "127.0.0.10" }, .want = DNSBL_LISTED,
	  .first = "127.0.0.10" },
	{ .label = "answer: 127.255.255.0/24 is the list's error", .st = DNS_OK,
	  .texts = { "127.255.255.254" }, .want = DNSBL_ERROR_CODE,
	  .first = "127.255.255.254" },
	{ .label = "answer: 127.255.255.0 too", .st = DNS_OK,
	  .texts = { "127.255.255.0" }, .want = DNSBL_ERROR_CODE,
	  .first = "127.255.255.0" },
	{ .label = "answer: 127.255.254.1 is listed", .st = DNS_OK,
	  .texts = { "127.255.254.1" }, .want = DNSBL_LISTED,
	  .first = "127.255.254.1" },
	{ .label = "answer: outside 127/8 (a hijacking resolver) is no listing",
	  .st = DNS_OK, .texts = { "192.0.2.1" }, .want = DNSBL_ERROR_CODE,
	  .first = "192.0.2.1" },
	{ .label = "answer: NXDOMAIN", .st = DNS_NXDOMAIN, .want = DNSBL_NOT_LISTED,
	  .first = "" },
	{ .label = "answer: no A record", .st = DNS_NOHOST, .want = DNSBL_NOT_LISTED,
	  .first = "" },
	{ .label = "answer: a failed look-up", .st = DNS_TEMPFAIL,
	  .want = DNSBL_DNS_FAILURE, .first = "" },
};

static void
run_answer_case(void **state)
{
	const struct answer_case *c = *state;
	char *texts[3], first[64];
	size_t n = 0;

	while (n < 3 && c->texts[n]) {
		texts[n] = (char *)c->texts[n];
		n++;
	}
	assert_int_equal(dnsbl_classify(c->st, texts, n, first, sizeof(first)),
	    c->want);
	assert_string_equal(first, c->first);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(name_cases) + nitems(answer_cases)];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_name_case, name_cases);
	UNIT_ROWS(tests, n, run_answer_case, answer_cases);
	UNIT_RUN(tests, n);
}
