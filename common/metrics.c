/*
 * metrics.c - see metrics.h.  Label values come from small fixed sets,
 * but for the forward target domains: those are capped at
 * METRICS_TARGETS_MAX names (the first seen keep their place), the rest
 * share the "(other)" series (no domain has that name), and every value is escaped as OpenMetrics
 * wants (backslash, double quote, newline).
 */
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "metrics.h"

static const char *const role_names[] = { "mx", "submission", "submissions" };
static const char *const route_names[MR_COUNT] = { "local", "forward", "queue" };
static const char *const outcome_names[MO_COUNT] = { "delivered", "sent",
    "deferred", "bounced", "refused" };
static const char *const tls_names[] = { "TLSv1", "TLSv1.1", "TLSv1.2",
    "TLSv1.3", "other" };
#define NROLES	nitems(role_names)
#define NTLS	nitems(tls_names)

struct target {
	uint64_t replies[4];	/* last digit class: 0 (none), 2, 4, 5 */
	char last;		/* '0', '2', '4', '5' */
	unsigned failures;	/* in a row */
};

static struct {
	uint64_t connections[NROLES];
	uint64_t messages[MR_COUNT][MO_COUNT];
	uint64_t refused[NROLES][2];	/* 4xx, 5xx */
	uint64_t tls[2][NTLS];		/* in, out */
	uint64_t tls_policy[2][2];	/* [dane, mta-sts][success, failure] */
	struct hmap *targets;
	struct target other;
	bool other_seen;
} m;

void
metrics_connection(enum listen_role r)
{
	if ((size_t)r < NROLES)
		m.connections[r]++;
}

void
metrics_message(enum metrics_route r, enum metrics_outcome o, size_t n)
{
	if (r < MR_COUNT && o < MO_COUNT)
		m.messages[r][o] += n;
}

void
metrics_rcpt_refused(enum listen_role r, char reply_class)
{
	if ((size_t)r < NROLES && (reply_class == '4' || reply_class == '5'))
		m.refused[r][reply_class == '5']++;
}

void
metrics_tls_policy(bool dane, bool ok)
{
	m.tls_policy[dane ? 0 : 1][ok ? 0 : 1]++;
}

void
metrics_tls(bool inbound, const char *version)
{
	size_t i;

	for (i = 0; i < NTLS - 1; i++)
		if (version && strcmp(version, tls_names[i]) == 0)
			break;
	m.tls[inbound ? 0 : 1][i]++;
}

static int
class_index(char c)
{
	return c == '2' ? 1 : c == '4' ? 2 : c == '5' ? 3 : 0;
}

void
metrics_forward(const char *domain, char reply_class, size_t nrcpts)
{
	struct target *t;

	m.messages[MR_FORWARD][reply_class == '2' ? MO_SENT : MO_REFUSED] += nrcpts;

	if (m.targets == NULL)
		m.targets = hmap_new();
	if ((t = hmap_get(m.targets, domain)) == NULL) {
		if (hmap_count(m.targets) < METRICS_TARGETS_MAX) {
			t = xcalloc(1, sizeof(*t));
			hmap_put(m.targets, domain, t);
		} else {
			t = &m.other;
			m.other_seen = true;
		}
	}
	if (reply_class != '2' && reply_class != '4' && reply_class != '5')
		reply_class = '0';
	t->replies[class_index(reply_class)]++;
	t->last = reply_class;
	t->failures = reply_class == '2' ? 0 : t->failures + 1;
}

/* label - v with \, " and newline escaped (OpenMetrics) */
static void
add_label(struct strbuf *sb, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			strbuf_printf(sb, "\\%c", *v);
		else if (*v == '\n')
			strbuf_add(sb, "\\n", 2);
		else
			strbuf_add(sb, v, 1);
	}
}

static const char *const class_labels[] = { "none", "2xx", "4xx", "5xx" };

/* one family at a time: OpenMetrics wants a family's samples together */
enum { TF_REPLIES, TF_FAILURES, TF_LAST };

static void
render_target(struct strbuf *sb, int family, const char *domain,
    const struct target *t)
{
	static const char *const names[] = {
	    "chamois_forward_target_replies_total",
	    "chamois_forward_target_failures_in_row",
	    "chamois_forward_target_last_reply_class" };

	for (size_t i = 0; i < (family == TF_REPLIES ? nitems(class_labels) : 1);
	    i++) {
		strbuf_printf(sb, "%s{domain=\"", names[family]);
		add_label(sb, domain);
		if (family == TF_REPLIES)
			strbuf_printf(sb, "\",class=\"%s\"} %llu\n",
			    class_labels[i], (unsigned long long)t->replies[i]);
		else
			strbuf_printf(sb, "\"} %u\n", family == TF_FAILURES ?
			    t->failures : t->last == '0' ? 0u :
			    (unsigned)(t->last - '0'));
	}
}

struct walk_arg {
	struct strbuf *sb;
	int family;
};

static void
target_cb(const char *key, void *val, void *arg)
{
	struct walk_arg *wa = arg;

	render_target(wa->sb, wa->family, key, val);
}

static void
render_targets(struct strbuf *sb, int family, const char *type,
    const char *help)
{
	static const char *const families[] = {
	    "chamois_forward_target_replies",
	    "chamois_forward_target_failures_in_row",
	    "chamois_forward_target_last_reply_class" };
	struct walk_arg wa = { sb, family };

	strbuf_printf(sb, "# TYPE %s %s\n# HELP %s %s\n", families[family],
	    type, families[family], help);
	if (m.targets)
		hmap_walk(m.targets, target_cb, &wa);
	if (m.other_seen)
		render_target(sb, family, METRICS_OTHER, &m.other);
}

void
metrics_render(struct strbuf *sb, const struct metrics_queue *q, time_t now)
{
	strbuf_printf(sb, "# TYPE chamois_connections counter\n"
	    "# HELP chamois_connections Connections accepted, by listener role.\n");
	for (size_t i = 0; i < NROLES; i++)
		strbuf_printf(sb, "chamois_connections_total{role=\"%s\"} %llu\n",
		    role_names[i], (unsigned long long)m.connections[i]);
	strbuf_printf(sb, "# TYPE chamois_messages counter\n"
	    "# HELP chamois_messages Recipients by route and outcome.\n");
	for (size_t r = 0; r < MR_COUNT; r++)
		for (size_t o = 0; o < MO_COUNT; o++)
			strbuf_printf(sb, "chamois_messages_total{route=\"%s\","
			    "outcome=\"%s\"} %llu\n", route_names[r],
			    outcome_names[o], (unsigned long long)m.messages[r][o]);
	strbuf_printf(sb, "# TYPE chamois_rcpt_refused counter\n"
	    "# HELP chamois_rcpt_refused RCPT commands refused, by role and class.\n");
	for (size_t i = 0; i < NROLES; i++)
		for (size_t c = 0; c < 2; c++)
			strbuf_printf(sb, "chamois_rcpt_refused_total{role=\"%s\","
			    "class=\"%s\"} %llu\n", role_names[i], c ? "5xx" : "4xx",
			    (unsigned long long)m.refused[i][c]);
	strbuf_printf(sb, "# TYPE chamois_queue_messages gauge\n"
	    "# HELP chamois_queue_messages Messages in the queue.\n"
	    "chamois_queue_messages %u\n"
	    "# TYPE chamois_queue_recipients gauge\n"
	    "# HELP chamois_queue_recipients Recipients still to deliver.\n"
	    "chamois_queue_recipients %u\n"
	    "# TYPE chamois_queue_oldest_age_seconds gauge\n"
	    "# HELP chamois_queue_oldest_age_seconds Age of the oldest queued message (0: none).\n"
	    "chamois_queue_oldest_age_seconds %lld\n",
	    q->messages, q->recipients,
	    q->oldest ? (long long)(now > q->oldest ? now - q->oldest : 0) : 0LL);
	render_targets(sb, TF_REPLIES, "counter", "Replies of each forward "
	    "target domain, by class (none: no connection or no reply).");
	render_targets(sb, TF_FAILURES, "gauge", "Non-2xx outcomes since the "
	    "domain's last 2xx.");
	render_targets(sb, TF_LAST, "gauge", "First digit of the domain's last "
	    "reply (0: no connection or no reply).");
	strbuf_printf(sb, "# TYPE chamois_tls_handshakes counter\n"
	    "# HELP chamois_tls_handshakes TLS handshakes done, by direction and version.\n");
	for (size_t d = 0; d < 2; d++)
		for (size_t i = 0; i < NTLS; i++)
			strbuf_printf(sb, "chamois_tls_handshakes_total{direction=\"%s\","
			    "version=\"%s\"} %llu\n", d ? "out" : "in", tls_names[i],
			    (unsigned long long)m.tls[d][i]);
	strbuf_printf(sb, "# TYPE chamois_tls_policy_sessions counter\n"
	    "# HELP chamois_tls_policy_sessions Outbound sessions to MX hosts under "
	    "a DANE or MTA-STS enforce policy, by policy and result.\n");
	for (size_t p = 0; p < 2; p++)
		for (size_t r = 0; r < 2; r++)
			strbuf_printf(sb, "chamois_tls_policy_sessions_total{policy=\"%s\","
			    "result=\"%s\"} %llu\n", p ? "mta-sts" : "dane",
			    r ? "failure" : "success",
			    (unsigned long long)m.tls_policy[p][r]);
	strbuf_printf(sb, "# EOF\n");
}

void
metrics_shutdown(void)
{
	hmap_free(m.targets, free);
	m.targets = NULL;
}
