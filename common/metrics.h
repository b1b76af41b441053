/*
 * metrics.h - the counters behind metrics_listen (doc/chamoisd.8,
 * "METRICS"): connections by role, recipients by route and outcome,
 * refused RCPTs, each forward target domain's health, TLS versions in
 * and out.  Pure counters, no I/O: every module may count; the root
 * serves the page (chamoisd/metrics.c).  Loop thread only.
 */
#ifndef CHAMOIS_METRICS_H
#define CHAMOIS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "util.h"

/* forward target domains tracked by name; the rest count as "other" */
#define METRICS_TARGETS_MAX	1000
#define METRICS_OTHER		"(other)"

enum metrics_route { MR_LOCAL, MR_FORWARD, MR_QUEUE, MR_COUNT };
enum metrics_outcome {
	MO_DELIVERED,	/* into a Maildir */
	MO_SENT,	/* accepted by the next server (queue or forward) */
	MO_DEFERRED,	/* a temporary failure */
	MO_BOUNCED,	/* failed for good after it was accepted */
	MO_REFUSED,	/* refused at RCPT or at the end of data */
	MO_COUNT
};

void metrics_connection(enum listen_role);
/* metrics_message - n recipients of route had outcome */
void metrics_message(enum metrics_route, enum metrics_outcome, size_t n);
/* metrics_rcpt_refused - an RCPT answered 4xx/5xx (reply's first digit) */
void metrics_rcpt_refused(enum listen_role, char reply_class);
/* metrics_tls - a handshake done: inbound or outbound, SSL_get_version() */
void metrics_tls(bool inbound, const char *version);
/*
 * metrics_tls_policy - an outbound session to an MX host under a TLS
 * policy (dane true: DANE, else MTA-STS enforce) met it or failed it
 * (the summary counts of TLS-RPT, RFC 8460 4.4)
 */
void metrics_tls_policy(bool dane, bool ok);
/*
 * metrics_forward - a forward target domain's answer (the first digit of
 * the reply given for it; anything but 2, 4, 5 counts as "none"): a 2 ends
 * its run of failures.  nrcpts recipients of the forward route got that
 * answer: sent on a 2, refused otherwise (the sender has the reply).
 */
void metrics_forward(const char *domain, char reply_class, size_t nrcpts);

/* what the queue holds, asked for by the root when the page is served */
struct metrics_queue {
	unsigned messages, recipients;	/* recipients still pending */
	time_t oldest;			/* 0: none */
};

/* metrics_render - the OpenMetrics page, "# EOF" last, into sb */
void metrics_render(struct strbuf *sb, const struct metrics_queue *, time_t now);
void metrics_shutdown(void);	/* frees the target table */

#endif
