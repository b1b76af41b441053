/*
 * test_metrics.c - the counters and their page (common/metrics.c): label
 * values escaped as OpenMetrics wants, the forward target table capped
 * with an "(other)" series, a 2xx ending a run of failures, "# EOF" last.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "unit.h"

static char *
page(void)
{
	struct strbuf sb = { 0 };
	struct metrics_queue q = { 2, 3, 1000 };

	metrics_render(&sb, &q, 1010);
	return sb.p;
}

static bool
has(const char *p, const char *line)
{
	char *want = xasprintf("\n%s\n", line);
	bool ok = strstr(p, want) != NULL;

	free(want);
	return ok;
}

static void
test_metrics_page(void **state)
{
	char name[64], *p;

	metrics_connection(ROLE_MX);
	metrics_connection(ROLE_SUBMISSION);
	metrics_connection(ROLE_MX);
	metrics_message(MR_QUEUE, MO_DEFERRED, 2);
	metrics_rcpt_refused(ROLE_MX, '5');
	metrics_tls(true, "TLSv1.3");
	metrics_tls(false, "SSLv3");
	metrics_forward("a\"b\\c\nd.test", '5', 1);
	metrics_forward("down.test", '4', 1);
	metrics_forward("down.test", '4', 0);
	metrics_forward("back.test", '5', 1);
	metrics_forward("back.test", '2', 3);
	for (int i = 0; i < METRICS_TARGETS_MAX + 5; i++) {
		snprintf(name, sizeof(name), "t%d.test", i);
		metrics_forward(name, '5', 0);
	}
	p = page();
	assert_non_null(p);
	assert_true(has(p, "chamois_connections_total{role=\"mx\"} 2"));
	assert_true(has(p, "chamois_connections_total{role=\"submission\"} 1"));
	assert_true(has(p, "chamois_messages_total{route=\"queue\",outcome=\"deferred\"} 2"));
	assert_true(has(p, "chamois_messages_total{route=\"forward\",outcome=\"refused\"} 3"));
	assert_true(has(p, "chamois_messages_total{route=\"forward\",outcome=\"sent\"} 3"));
	assert_true(has(p, "chamois_rcpt_refused_total{role=\"mx\",class=\"5xx\"} 1"));
	assert_true(has(p, "chamois_tls_handshakes_total{direction=\"in\",version=\"TLSv1.3\"} 1"));
	assert_true(has(p, "chamois_tls_handshakes_total{direction=\"out\",version=\"other\"} 1"));
	assert_true(has(p, "chamois_queue_oldest_age_seconds 10"));
	/* escaped: backslash, double quote, newline */
	assert_true(has(p, "chamois_forward_target_failures_in_row{domain=\"a\\\"b\\\\c\\nd.test\"} 1"));
	assert_true(has(p, "chamois_forward_target_failures_in_row{domain=\"down.test\"} 2"));
	assert_true(has(p, "chamois_forward_target_last_reply_class{domain=\"down.test\"} 4"));
	assert_true(has(p, "chamois_forward_target_failures_in_row{domain=\"back.test\"} 0"));
	/* 3 named above, then t0..t996 fill the table; 8 land in (other) */
	assert_true(has(p, "chamois_forward_target_failures_in_row{domain=\"t996.test\"} 1"));
	assert_null(strstr(p, "domain=\"t997.test\""));
	assert_true(has(p, "chamois_forward_target_failures_in_row{domain=\"(other)\"} 8"));
	assert_int_equal(strlen(p) >= 6, 1);
	assert_string_equal(p + strlen(p) - 6, "# EOF\n");
	free(p);
	metrics_shutdown();
}

int
main(void)
{
	struct CMUnitTest tests[1];
	size_t n = 0;

	UNIT_TEST(tests, n, test_metrics_page);
	UNIT_RUN(tests, n);
}
