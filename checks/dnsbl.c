/*
 * dnsbl.c - DNS block lists (dnsbl.h; chamois.conf(5) "dnsbl").
 *
 * At connect the mx checks (engine.c) start one A look-up per zone of
 * the client's address (RFC 5782 2.1: IPv4 octets, or IPv6 nibbles,
 * reversed, under the zone) through the root's resolver; the first RCPT
 * waits for the answers if they are not in yet.  A listed address is one
 * in 127.0.0.0/8 outside 127.255.255.0/24; an answer in that /24 is the
 * list's error code (Spamhaus answers 127.255.255.252-255 to queries
 * that come through public or open resolvers, or over the free limit)
 * and, like a failed look-up, counts as not listed and is logged: a
 * block list that cannot answer never refuses mail.
 *
 * resolver_records() cannot be cancelled: a client whose session ends
 * with look-ups on their way stays allocated, marked gone, until the
 * last answer comes back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "../common/limits.h"
#include "../common/log.h"
#include "../common/util.h"
#include "dnsbl.h"

struct dnsbl_zone {
	struct dnsbl_client *c;
	char *zone;
	bool answered;
	enum dnsbl_answer answer;
};

struct dnsbl_client {
	struct dnsbl_zone *zones;
	size_t nzones;
	size_t pending;		/* look-ups on their way */
	bool starting;		/* inside dnsbl_start: done is not called */
	bool gone;		/* dnsbl_free while look-ups were pending */
	char log_id[40];
	char addr[INET6_ADDRSTRLEN];
	void (*done)(void *);
	void *arg;
};

/* dnsbl_query_name - see dnsbl.h */
bool
dnsbl_query_name(const struct sockaddr *sa, const char *zone, char *out,
    size_t size)
{
	const unsigned char *b;
	size_t o = 0;
	int n;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		b = s6->sin6_addr.s6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			static const char hex[] = "0123456789abcdef";

			if (size < 64 + 1)
				return false;
			for (int i = 15; i >= 0; i--) {
				out[o++] = hex[b[i] & 0xf];
				out[o++] = '.';
				out[o++] = hex[b[i] >> 4];
				out[o++] = '.';
			}
			out[o] = '\0';
			return bsnprintf(out + o, size - o, "%s", zone);
		}
		b += 12;
	} else if (sa->sa_family == AF_INET)
		b = (const unsigned char *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else
		return false;
	n = snprintf(out, size, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], zone);
	return n > 0 && (size_t)n < size;
}

/* dnsbl_classify - see dnsbl.h */
enum dnsbl_answer
dnsbl_classify(enum dns_status st, char **texts, size_t n, char *first_out,
    size_t size)
{
	enum dnsbl_answer a = DNSBL_NOT_LISTED;

	if (size > 0)
		first_out[0] = '\0';
	if (st == DNS_TEMPFAIL)
		return DNSBL_DNS_FAILURE;
	if (st != DNS_OK)
		return DNSBL_NOT_LISTED;
	for (size_t i = 0; i < n; i++) {
		struct in_addr in;
		uint32_t v;

		if (i == 0 && size > 0)
			str_copy(first_out, texts[i], size);
		if (inet_pton(AF_INET, texts[i], &in) != 1) {
			a = DNSBL_ERROR_CODE;
			continue;
		}
		v = ntohl(in.s_addr);
		if ((v >> 24) != 127 || (v & 0xffffff00u) == 0x7fffff00u)
			a = DNSBL_ERROR_CODE;
		else {
			str_copy(first_out, texts[i], size);
			return DNSBL_LISTED;
		}
	}
	return a;
}

static void
client_free(struct dnsbl_client *c)
{
	for (size_t i = 0; i < c->nzones; i++)
		free(c->zones[i].zone);
	free(c->zones);
	free(c);
}

/* answered - one zone's answer is in */
static void
answered(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct dnsbl_zone *z = arg;
	struct dnsbl_client *c = z->c;
	char first[64], esc[LOG_ESC(DOMAIN_MAX)];
	static const char *const names[] = { "not-listed", "listed", "error",
	    "dns-failure" };

	z->answered = true;
	z->answer = dnsbl_classify(st, texts, n, first, sizeof(first));
	c->pending--;
	if (z->answer != DNSBL_NOT_LISTED)
		log_info("%s smtp dnsbl zone=%s address=%s result=%s%s%s%s", c->log_id,
		    log_field(esc, sizeof(esc), z->zone), c->addr,
		    names[z->answer], first[0] ? " answer=" : "", first,
		    z->answer == DNSBL_LISTED ? "" : " (counted as not listed)");
	if (c->gone) {
		if (c->pending == 0)
			client_free(c);
		return;
	}
	if (c->pending == 0 && !c->starting && c->done)
		c->done(c->arg);
}

/* dnsbl_start - see dnsbl.h */
struct dnsbl_client *
dnsbl_start(struct resolver *r, const struct config *cfg,
    const struct sockaddr *sa, const char *log_id, void (*done)(void *),
    void *arg)
{
	struct dnsbl_client *c;
	char name[DOMAIN_MAX + 80];

	if (r == NULL || cfg->ndnsbl_zones == 0)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->zones = xcalloc(cfg->ndnsbl_zones, sizeof(*c->zones));
	c->nzones = cfg->ndnsbl_zones;
	c->done = done;
	c->arg = arg;
	str_copy(c->log_id, log_id, sizeof(c->log_id));
	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, c->addr, sizeof(c->addr));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr, c->addr, sizeof(c->addr));
	for (size_t i = 0; i < c->nzones; i++) {
		c->zones[i].c = c;
		c->zones[i].zone = xstrdup(cfg->dnsbl_zones[i]);
	}
	c->starting = true;
	c->pending = c->nzones;
	for (size_t i = 0; i < c->nzones; i++) {
		if (!dnsbl_query_name(sa, c->zones[i].zone, name, sizeof(name))) {
			c->zones[i].answered = true;
			c->zones[i].answer = DNSBL_NOT_LISTED;
			c->pending--;
			continue;
		}
		resolver_records(r, name, DNS_RR_A, answered, &c->zones[i]);
	}
	c->starting = false;
	return c;
}

bool
dnsbl_done(const struct dnsbl_client *c)
{
	return c == NULL || c->pending == 0;
}

const char *
dnsbl_listed(const struct dnsbl_client *c)
{
	for (size_t i = 0; c != NULL && i < c->nzones; i++)
		if (c->zones[i].answered && c->zones[i].answer == DNSBL_LISTED)
			return c->zones[i].zone;
	return NULL;
}

void
dnsbl_free(struct dnsbl_client *c)
{
	if (c == NULL)
		return;
	if (c->pending > 0) {
		c->gone = true;
		return;
	}
	client_free(c);
}
