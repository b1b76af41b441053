/*
 * tlsrpt.h - TLS-RPT (RFC 8460): the outbound sessions under a TLS policy
 * (DANE or MTA-STS), counted per policy domain for the current report
 * period, kept in a small file of queue_dir, and the JSON aggregate
 * report of one domain (RFC 8460 4.4).  The client (client.c) counts;
 * queue/tlsrpt.c sends the reports (doc/security.md, "TLS-RPT").
 */
#ifndef CHAMOIS_TLSRPT_H
#define CHAMOIS_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TLSRPT_DOMAINS_MAX	1024	/* policy domains counted in a period */
#define TLSRPT_POLICIES_MAX	16	/* policies (policy-type, mx-host) a domain */
#define TLSRPT_FAILURES_MAX	32	/* failure-details rows a policy */

enum tlsrpt_policy { TLSRPT_TLSA, TLSRPT_STS };

/* result-type, RFC 8460 4.3.2 */
enum tlsrpt_result {
	TR_STARTTLS_NOT_SUPPORTED,
	TR_CERTIFICATE_HOST_MISMATCH,
	TR_CERTIFICATE_EXPIRED,
	TR_CERTIFICATE_NOT_TRUSTED,
	TR_VALIDATION_FAILURE,
	TR_TLSA_INVALID,
	TR_DNSSEC_INVALID,
	TR_DANE_REQUIRED,
	TR_STS_POLICY_FETCH_ERROR,
	TR_STS_POLICY_INVALID,
	TR_STS_WEBPKI_INVALID,
	TR_COUNT
};

/* one session to one MX host of domain, which met or failed the policy */
struct tlsrpt_session {
	const char *domain;		/* the policy domain (a recipient domain) */
	enum tlsrpt_policy type;
	const char *mx_host;		/* the MX host the policy applied to */
	const char *policy_string;	/* its lines, "\n" between; NULL: none */
	bool ok;
	/* a failure's details (RFC 8460 4.3): "" when not known */
	enum tlsrpt_result result;
	const char *sending_ip, *receiving_ip, *reason;
};

/* tlsrpt_result_name - "starttls-not-supported", ... */
const char *tlsrpt_result_name(enum tlsrpt_result);

/*
 * tlsrpt_open - count from now on, into dir/counts (dir made if missing;
 * the counts found there are loaded now, before the loop runs).  Until
 * tlsrpt_open, and after tlsrpt_close, tlsrpt_count does nothing.
 */
int tlsrpt_open(const char *dir, char *err, size_t errsize);
/* tlsrpt_close - write what was counted (blocking: at exit), forget it */
void tlsrpt_close(void);
/*
 * tlsrpt_count - one session (every field copied).  A domain, a policy
 * or a failure row past the caps above is not kept, and that is logged
 * once a period.
 */
void tlsrpt_count(const struct tlsrpt_session *);
/*
 * tlsrpt_save - the counts changed since the last save go to the file on
 * a disk worker (tmp, fsync, rename); the loop calls it now and then
 */
void tlsrpt_save(void);

/* what a period counted, handed to the sender by tlsrpt_take */
struct tlsrpt_counts;
/*
 * tlsrpt_take - the counts since the period began (NULL if none); the
 * next period begins with the next session counted (the file follows on
 * a worker)
 */
struct tlsrpt_counts *tlsrpt_take(void);
/* tlsrpt_period_start - when the counts held now began, 0 if none */
time_t tlsrpt_period_start(void);
void tlsrpt_counts_free(struct tlsrpt_counts *);
time_t tlsrpt_counts_start(const struct tlsrpt_counts *);	/* its first session */
size_t tlsrpt_domains(const struct tlsrpt_counts *);
const char *tlsrpt_domain(const struct tlsrpt_counts *, size_t i);
/*
 * tlsrpt_json - the report (RFC 8460 4.4) about domain i of t, for the
 * period [start, end]: organization-name org, contact-info contact,
 * report-id id.  malloc'd, *len set.  Pure.
 */
char *tlsrpt_json(const struct tlsrpt_counts *t, size_t i, const char *org,
    const char *contact, const char *id, time_t start, time_t end, size_t *len);

/*
 * tlsrpt_counts_parse / tlsrpt_counts_text - the file's form (text, one
 * record a line), for the load and the save and the unit tests.  parse
 * returns NULL for a text that is not the form.
 */
struct tlsrpt_counts *tlsrpt_counts_parse(const char *text, size_t len);
char *tlsrpt_counts_text(const struct tlsrpt_counts *, size_t *len);
/* tlsrpt_counts_add - one session into t (tlsrpt_count without the file) */
struct tlsrpt_counts *tlsrpt_counts_new(time_t start);
bool tlsrpt_counts_add(struct tlsrpt_counts *, const struct tlsrpt_session *);

#endif
