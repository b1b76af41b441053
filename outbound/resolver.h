/*
 * resolver.h - MX, A and AAAA look-ups with c-ares inside the event loop,
 * shared by forward/ and queue/.
 */
#ifndef CHAMOIS_RESOLVER_H
#define CHAMOIS_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct resolver;
struct resolver_query;

enum dns_status {
	DNS_OK,		/* targets has at least one address to try */
	DNS_NXDOMAIN,	/* the domain does not exist: permanent (5.1.2) */
	DNS_NULLMX,	/* RFC 7505 null MX: the domain takes no mail (5.1.10) */
	DNS_NOHOST,	/* MX hosts (or the domain itself) have no address */
	DNS_TEMPFAIL,	/* SERVFAIL, timeout, refused: try later (4.4.3) */
};

/*
 * What DANE (RFC 7672) asks of a target: its TLSA records, looked up only
 * when the resolver trusts the AD bit (resolver_dane) and the MX and
 * address answers leading to the host were secure (RFC 7672 2.2).
 */
enum mx_dane {
	MX_DANE_NONE,		/* no secure TLSA: opportunistic TLS */
	MX_DANE_VERIFY,		/* usable TLSA: TLS required, verified by them */
	MX_DANE_ENCRYPT,	/* secure TLSA, none usable: TLS required only
				 * (RFC 7672 2.2) */
	MX_DANE_FAIL,		/* the TLSA look-up failed: not this host now
				 * (RFC 7672 2.2.2) */
};

#define MX_TLSA_MAX	4	/* usable TLSA records kept per host */
#define MX_TLSA_DATA_MAX 64	/* a SHA-512 digest; bigger records are unusable */

struct mx_tlsa {
	uint8_t usage, selector, mtype, len;	/* RFC 6698 2.1 */
	unsigned char data[MX_TLSA_DATA_MAX];
};

/* what MTA-STS asks of a target (outbound/mtasts.h, tlspolicy_mx) */
enum mx_sts {
	MX_STS_NONE,		/* no policy */
	MX_STS_TESTING,		/* a testing policy: failures only logged */
	MX_STS_ENFORCE,		/* enforce: an mx of the policy, verified TLS */
};

/* one address to connect to, in the order to try them */
struct mx_target {
	char host[256];			/* the MX host name (or the domain) */
	unsigned preference;		/* MX preference; 0 for A/AAAA fallback */
	struct sockaddr_storage ss;	/* port left 0: the caller sets it */
	socklen_t sslen;
	enum mx_dane dane;
	enum mx_sts sts;		/* set by tlspolicy_mx, not the resolver */
	bool sts_match;			/* host matches an mx of the policy */
	uint8_t ntlsa;
	struct mx_tlsa tlsa[MX_TLSA_MAX];
};

struct mx_answer {
	enum dns_status status;
	bool implicit;			/* no MX: the domain's own A/AAAA */
	struct mx_target *targets;
	size_t ntargets;
};

typedef void (*resolver_cb)(void *arg, const struct mx_answer *);

/*
 * resolver_hosts_file - name:port as an address from /etc/hosts alone (its
 * first IPv4 address, else its first IPv6 one; c-ares' files look-up: no
 * DNS question), for a milter named by its host (chamois.conf(5)
 * "milter"); blocks on the file: off the loop
 */
bool resolver_hosts_file(const char *name, unsigned port,
    struct sockaddr_storage *, socklen_t *);

/*
 * resolver_new - a resolver on base; server (may be NULL: /etc/resolv.conf)
 * is dns_server from chamois.conf.  NULL (logged) when c-ares cannot be
 * set up or server is not an IPv4/IPv6 address.
 */
struct resolver *resolver_new(struct event_base *base,
    const struct sockaddr *server, socklen_t serverlen);
void resolver_free(struct resolver *);
/*
 * resolver_dane - resolver_mx looks up the TLSA records of secure MX
 * hosts (_PORT._tcp.HOST, port the remote_port) into each target's dane
 * and tlsa (RFC 7672 2.2).  Only a resolver whose every server is on
 * loopback trusts the AD bit (doc/security.md); false, logged, and DANE
 * stays off otherwise.
 */
bool resolver_dane(struct resolver *, unsigned port);
/* resolver_base - the event base it runs on (checks/ defers its callbacks there) */
struct event_base *resolver_base(struct resolver *);
/*
 * resolver_mx - look up where mail for domain (an A-label) goes: MX hosts
 * by preference (random order among equal preferences), each host's AAAA
 * and A addresses; no MX record at all means the domain's own AAAA/A
 * (RFC 5321 5.1).  cb runs exactly once, on the loop, never from inside
 * resolver_mx(); answers are cached for their TTL.  The query can be
 * cancelled until cb has run; the answer is valid only during cb.
 */
struct resolver_query *resolver_mx(struct resolver *, const char *domain,
    resolver_cb cb, void *arg);
/*
 * resolver_host - the AAAA and A addresses of host itself, no MX (a
 * relay_host or a route): cb as for resolver_mx (DNS_NOHOST when it has
 * none); not cached
 */
struct resolver_query *resolver_host(struct resolver *, const char *host,
    resolver_cb cb, void *arg);
void resolver_cancel(struct resolver_query *);

/*
 * resolver_records - every record of one type of name, as text: an
 * address, "PREFERENCE HOST" for MX, the strings of one TXT record joined,
 * the name a PTR points to (chamoisctl dns --check).  cb gets DNS_OK with
 * at least one record, DNS_NXDOMAIN (no such name), DNS_NOHOST (the name
 * has no record of that type) or DNS_TEMPFAIL; it runs once, on the loop
 * or, for a request c-ares refuses at once, from inside
 * resolver_records(); the texts are valid only during cb.  Answers are
 * cached for their TTL (resolver.c); a cached one comes from an event.
 */
enum dns_rr { DNS_RR_A, DNS_RR_AAAA, DNS_RR_MX, DNS_RR_TXT, DNS_RR_PTR };
typedef void (*resolver_records_cb)(void *arg, enum dns_status, char **texts,
    size_t n);
void resolver_records(struct resolver *, const char *name, enum dns_rr,
    resolver_records_cb cb, void *arg);

/*
 * mx_order - the MX order (resolver_order.c, pure): sorts v by preference,
 * lowest first, and shuffles each run of equal preferences with rnd(arg),
 * which returns uniformly random 64-bit values (random_u64 in the daemon,
 * a fixed sequence in tests).  index is the caller's and is carried along.
 */
struct mx_rank {
	unsigned preference;
	size_t index;
};
void mx_order(struct mx_rank *v, size_t n, uint64_t (*rnd)(void *), void *arg);

/*
 * mx_literal_target - the target of an address literal domain,
 * "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3): no DNS at all;
 * false if domain is not a valid literal
 */
bool mx_literal_target(const char *domain, struct mx_target *);
/*
 * mx_host_target - the target of a host given as a bare address
 * ("192.0.2.1", "2001:db8::1": a relay_host or route host); false if
 * host is a name (resolver_host then)
 */
bool mx_host_target(const char *host, struct mx_target *);

#endif
