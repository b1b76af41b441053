/*
 * dnsbl.h - the client's address in DNS block lists (chamois.conf(5)
 * "dnsbl"; doc/forwarding.md "Checks"): one A look-up per zone, through
 * the root's resolver (outbound/resolver.h, so to dns_server).
 */
#ifndef CHAMOIS_DNSBL_H
#define CHAMOIS_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../outbound/resolver.h"

struct config;

/* what one zone said of an address */
enum dnsbl_answer {
	DNSBL_NOT_LISTED,	/* no such name, or no A record */
	DNSBL_LISTED,		/* an A record in 127.0.0.0/8 outside 127.255.255.0/24 */
	DNSBL_ERROR_CODE,	/* 127.255.255.0/24, or outside 127/8: the list's error */
	DNSBL_DNS_FAILURE,	/* the look-up failed (timeout, SERVFAIL) */
};

/*
 * dnsbl_query_name - the name to look up for address sa in zone: the
 * IPv4 octets reversed ("2.0.0.127.zone"; an IPv4-mapped IPv6 address as
 * IPv4) or the 32 IPv6 nibbles reversed (RFC 5782 2.1, 2.4); false when
 * out is too small or sa is neither (pure)
 */
bool dnsbl_query_name(const struct sockaddr *sa, const char *zone, char *out,
    size_t size);
/*
 * dnsbl_classify - the answer of an A look-up (resolver_records_cb's
 * status and texts): listed when any address is in 127.0.0.0/8 outside
 * 127.255.255.0/24 (RFC 5782 2.3; Spamhaus's error codes are
 * 127.255.255.0/24); first_out gets the first address (pure)
 */
enum dnsbl_answer dnsbl_classify(enum dns_status, char **texts, size_t n,
    char *first_out, size_t size);

/* the look-ups of one client */
struct dnsbl_client;

/*
 * dnsbl_start - look the client up in every zone of c (copied); done(arg)
 * runs once every answer is in, on the loop, but never from inside this
 * call (ask dnsbl_done() after it).  NULL when c names no zone.
 */
struct dnsbl_client *dnsbl_start(struct resolver *, const struct config *c,
    const struct sockaddr *sa, const char *log_id, void (*done)(void *),
    void *arg);
/* dnsbl_done - every answer is in */
bool dnsbl_done(const struct dnsbl_client *);
/* dnsbl_listed - the first zone (in file order) that lists the client, or NULL */
const char *dnsbl_listed(const struct dnsbl_client *);
/* dnsbl_free - the end: answers still on their way are dropped, done never runs */
void dnsbl_free(struct dnsbl_client *);

#endif
