/*
 * test_tlsrpt.c - TLS-RPT counts, their file form and the JSON report
 * (outbound/tlsrpt.c, RFC 8460 4.3 and 4.4).
 */
#include <string.h>

#include "unit.h"
#include "../../outbound/tlsrpt.h"

static const struct tlsrpt_session fail1 = {
	.domain = "example.com", .type = TLSRPT_TLSA, .mx_host = "mx1.example.com",
	.policy_string = "3 1 1 abcd\n2 1 1 ef01", .result = TR_VALIDATION_FAILURE,
	.sending_ip = "192.0.2.1", .receiving_ip = "198.51.100.7",
	.reason = "TLS: no TLSA record matched",
};

/* a period with two failures of one kind, a success, and an odd reason */
static struct tlsrpt_counts *
sample(void)
{
	struct tlsrpt_counts *t = tlsrpt_counts_new(86400 * 3 + 5);
	struct tlsrpt_session ok = fail1, odd = fail1;

	ok.ok = true;
	odd.reason = "EHLO refused: 550 \"no\" 100%\tat\\ once";
	odd.result = TR_STARTTLS_NOT_SUPPORTED;
	assert_true(tlsrpt_counts_add(t, &fail1));
	assert_true(tlsrpt_counts_add(t, &fail1));
	assert_true(tlsrpt_counts_add(t, &ok));
	assert_true(tlsrpt_counts_add(t, &odd));
	return t;
}

static void
json_of_counts(void **state)
{
	struct tlsrpt_counts *t = sample();
	size_t len;
	char *j = tlsrpt_json(t, 0, "org", "postmaster@org", "id-1", 86400 * 3,
	    86400 * 4 - 1, &len);

	assert_int_equal(tlsrpt_domains(t), 1);
	assert_string_equal(j,
	    "{\"organization-name\":\"org\",\"date-range\":{\"start-datetime\":"
	    "\"1970-01-04T00:00:00Z\",\"end-datetime\":\"1970-01-04T23:59:59Z\"},"
	    "\"contact-info\":\"postmaster@org\",\"report-id\":\"id-1\","
	    "\"policies\":[{\"policy\":{\"policy-type\":\"tlsa\",\"policy-string\":"
	    "[\"3 1 1 abcd\",\"2 1 1 ef01\"],\"policy-domain\":\"example.com\","
	    "\"mx-host\":\"mx1.example.com\"},\"summary\":"
	    "{\"total-successful-session-count\":1,"
	    "\"total-failure-session-count\":3},\"failure-details\":["
	    "{\"result-type\":\"validation-failure\",\"sending-mta-ip\":"
	    "\"192.0.2.1\",\"receiving-ip\":\"198.51.100.7\","
	    "\"receiving-mx-hostname\":\"mx1.example.com\","
	    "\"failed-session-count\":2,\"failure-reason-code\":"
	    "\"TLS: no TLSA record matched\"},"
	    "{\"result-type\":\"starttls-not-supported\",\"sending-mta-ip\":"
	    "\"192.0.2.1\",\"receiving-ip\":\"198.51.100.7\","
	    "\"receiving-mx-hostname\":\"mx1.example.com\","
	    "\"failed-session-count\":1,\"failure-reason-code\":"
	    "\"EHLO refused: 550 \\\"no\\\" 100%\\u0009at\\\\ once\"}]}]}\n");
	assert_int_equal(len, strlen(j));
	free(j);
	tlsrpt_counts_free(t);
}

static void
file_form_round_trip(void **state)
{
	struct tlsrpt_counts *t = sample(), *u;
	size_t len, len2;
	char *a = tlsrpt_counts_text(t, &len), *b;

	assert_non_null(u = tlsrpt_counts_parse(a, len));
	assert_int_equal(tlsrpt_counts_start(u), 86400 * 3 + 5);
	b = tlsrpt_counts_text(u, &len2);
	assert_string_equal(a, b);
	free(a);
	free(b);
	tlsrpt_counts_free(t);
	tlsrpt_counts_free(u);
}

static void
file_form_refused(void **state)
{
	static const char *const bad[] = {
		"", "tlsrpt 2 5\n", "tlsrpt 1 5\np tlsa 1 0 mx\n",
		"tlsrpt 1 5\nd a.test\nf validation-failure 1 - - - -\n",
		"tlsrpt 1 5\nd a.test\np tlsa 1 0 mx\nf no-such 1 - - - -\n",
		"tlsrpt 1 5\nd a.test",
	};

	for (size_t i = 0; i < nitems(bad); i++)
		assert_null(tlsrpt_counts_parse(bad[i], strlen(bad[i])));
}

static void
caps_bound_the_counts(void **state)
{
	struct tlsrpt_counts *t = tlsrpt_counts_new(1);
	struct tlsrpt_session s = fail1;
	char name[64];

	for (int i = 0; i < TLSRPT_DOMAINS_MAX; i++) {
		snprintf(name, sizeof(name), "d%d.test", i);
		s.domain = name;
		assert_true(tlsrpt_counts_add(t, &s));
	}
	s.domain = "one-too-many.test";
	assert_false(tlsrpt_counts_add(t, &s));
	assert_int_equal(tlsrpt_domains(t), TLSRPT_DOMAINS_MAX);
	s.domain = "d0.test";
	for (int i = 2; i <= TLSRPT_FAILURES_MAX; i++) {	/* d0 has .1 */
		snprintf(name, sizeof(name), "192.0.2.%d", i);
		s.sending_ip = name;
		assert_true(tlsrpt_counts_add(t, &s));
	}
	s.sending_ip = "203.0.113.1";
	assert_false(tlsrpt_counts_add(t, &s));	/* counted in the totals only */
	tlsrpt_counts_free(t);
}

int
main(void)
{
	struct CMUnitTest tests[4];
	size_t n = 0;

	UNIT_TEST(tests, n, json_of_counts);
	UNIT_TEST(tests, n, file_form_round_trip);
	UNIT_TEST(tests, n, file_form_refused);
	UNIT_TEST(tests, n, caps_bound_the_counts);
	UNIT_RUN(tests, n);
}
