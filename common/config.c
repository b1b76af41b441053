/*
 * config.c - parse chamois.conf (chamois.conf(5)).
 *
 * One setting a line, "key value...", '#' starts a comment.  Every key is
 * a row of config_params[] with its type, bounds and default; parsing a
 * line is a table look-up plus the type's parser.  Every problem is
 * reported as "FILE:LINE: message" and the whole file is read so that -n
 * shows them all at once.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "limits.h"
#include "util.h"

enum param_type {
	P_STRING,	/* one word */
	P_PATH,		/* one word, relative to the config's directory */
	P_HOSTNAME,
	P_UINT,
	P_SIZE,		/* bytes, with an optional k/m/g suffix */
	P_DURATION,
	P_DOMAINS,
	P_LISTEN,
	P_HOSTPORT,
	P_SECRET,	/* repeatable */
	P_ADDRESS,
	P_DKIM_KEY,	/* repeatable: DOMAIN SELECTOR FILE */
	P_NAMEPORT,	/* HOST:PORT, HOST a name or an address */
	P_ROUTE,	/* repeatable: DOMAIN HOST:PORT */
	P_FAMILY,	/* any, ipv4 or ipv6 */
	P_OUTADDR,	/* repeatable: a source address, one per family */
	P_DNSBL,	/* repeatable: a DNS block list's zone */
	P_DMARC_POLICY,	/* enforce or monitor */
	P_MILTER,	/* repeatable: unix:/PATH or HOST:PORT */
	P_MILTER_ACTION,	/* tempfail or accept */
	P_YESNO,	/* yes or no */
	P_SASL_BACKEND,	/* cyrus, or dovecot SOCKET */
	P_LOCAL_DELIVERY,	/* maildir, or lmtp /PATH or ADDRESS:PORT */
};

struct param {
	const char *name;
	enum param_type type;
	size_t offset;
	uint64_t min, max;
	bool repeat;
};

#define OFF(f) offsetof(struct config, f)
static const struct param config_params[] = {
	{ "aliases",			P_PATH,	OFF(aliases), 0, 0, false },
	{ "dane",			P_YESNO, OFF(dane), 0, 0, false },
	{ "delay_warning_time",		P_DURATION, OFF(delay_warning_time), 0, 365 * 86400, false },
	{ "dkim_key",			P_DKIM_KEY, OFF(dkim_keys), 0, 0, true },
	{ "dmarc_policy",		P_DMARC_POLICY, OFF(dmarc_monitor), 0, 0, false },
	{ "dns_server",			P_HOSTPORT, OFF(dns_server), 0, 0, false },
	{ "dnsbl",			P_DNSBL, OFF(dnsbl_zones), 0, 0, true },
	{ "domains",			P_DOMAINS, OFF(domains), 0, 0, false },
	{ "forward_data_budget",	P_DURATION, OFF(forward_data_budget), 1, 3600, false },
	{ "forward_max_per_client",	P_UINT, OFF(forward_max_per_client), 1, 100000, false },
	{ "forward_max_per_domain",	P_UINT, OFF(forward_max_per_domain), 1, 100000, false },
	{ "forward_max_sessions",	P_UINT, OFF(forward_max_sessions), 1, 100000, false },
	{ "forward_rcpt_budget",	P_DURATION, OFF(forward_rcpt_budget), 1, 3600, false },
	{ "greeting_delay",		P_DURATION, OFF(greeting_delay), 0, 60, false },
	{ "hostname",			P_HOSTNAME, OFF(hostname), 0, 0, false },
	{ "listen",			P_LISTEN, OFF(listens), 0, 0, true },
	{ "local_delivery",		P_LOCAL_DELIVERY, OFF(lmtp_text), 0, 0, false },
	{ "maildir_root",		P_PATH, OFF(maildir_root), 0, 0, false },
	{ "mailboxes",			P_PATH, OFF(mailboxes), 0, 0, false },
	{ "max_connections",		P_UINT, OFF(max_connections), 1, 1000000, false },
	{ "max_connections_per_address", P_UINT, OFF(max_connections_per_address), 1, 1000000, false },
	{ "max_errors",			P_UINT, OFF(max_errors), 1, 1000, false },
	{ "max_messages_per_hour",	P_UINT, OFF(max_messages_per_hour), 0, 1000000, false },
	{ "max_message_size",		P_SIZE, OFF(max_message_size), 1024, (uint64_t)1 << 40, false },
	{ "max_recipients",		P_UINT, OFF(max_recipients), 1, 100000, false },
	{ "milter",			P_MILTER, OFF(milters), 0, 0, true },
	{ "milter_command_timeout",	P_DURATION, OFF(milter_command_timeout), 1, 3600, false },
	{ "milter_connect_timeout",	P_DURATION, OFF(milter_connect_timeout), 1, 3600, false },
	{ "milter_content_timeout",	P_DURATION, OFF(milter_content_timeout), 1, 3600, false },
	{ "milter_default_action",	P_MILTER_ACTION, OFF(milter_default_accept), 0, 0, false },
	{ "metrics_listen",		P_HOSTPORT, OFF(metrics_listen), 0, 0, false },
	{ "mta_sts",			P_YESNO, OFF(mta_sts), 0, 0, false },
	{ "outbound_address",		P_OUTADDR, OFF(outbound_addr4), 0, 0, true },
	{ "outbound_family",		P_FAMILY, OFF(outbound_family), 0, 0, false },
	{ "postmaster",			P_ADDRESS, OFF(postmaster), 0, 0, false },
	{ "queue_dir",			P_PATH, OFF(queue_dir), 0, 0, false },
	{ "queue_lifetime",		P_DURATION, OFF(queue_lifetime), 1, 365 * 86400, false },
	{ "queue_max_deliveries",	P_UINT, OFF(queue_max_deliveries), 1, 10000, false },
	{ "queue_max_per_domain",	P_UINT, OFF(queue_max_per_domain), 1, 10000, false },
	{ "relay_auth",			P_PATH, OFF(relay_auth), 0, 0, false },
	{ "relay_host",			P_NAMEPORT, OFF(relay_host), 0, 0, false },
	{ "remote_port",		P_UINT, OFF(remote_port), 1, 65535, false },
	{ "route",			P_ROUTE, OFF(routes), 0, 0, true },
	{ "sasl_backend",		P_SASL_BACKEND, OFF(sasl_dovecot), 0, 0, false },
	{ "sasl_db",			P_PATH, OFF(sasl_db), 0, 0, false },
	{ "session_timeout",		P_DURATION, OFF(session_timeout), 1, 86400, false },
	{ "shutdown_grace",		P_DURATION, OFF(shutdown_grace), 1, 3600, false },
	{ "smtp_timeout",		P_DURATION, OFF(smtp_timeout), 1, 3600, false },
	{ "spool_max_size",		P_SIZE, OFF(spool_max_size), 1048576, (uint64_t)1 << 40, false },
	{ "srs_secret",			P_SECRET, OFF(srs_secrets), 0, 0, true },
	{ "testing_mta_sts_port",	P_UINT, OFF(testing_mta_sts_port), 1, 65535, false },
	{ "tls_ca_file",		P_PATH, OFF(tls_ca_file), 0, 0, false },
	{ "tls_cert",			P_PATH, OFF(tls_cert), 0, 0, false },
	{ "tls_key",			P_PATH, OFF(tls_key), 0, 0, false },
	{ "tlsrpt",			P_YESNO, OFF(tlsrpt), 0, 0, false },
	{ "tlsrpt_rua",			P_ADDRESS, OFF(tlsrpt_rua), 0, 0, false },
	{ "tlsrpt_submitter",		P_HOSTNAME, OFF(tlsrpt_submitter), 0, 0, false },
	{ "user",			P_STRING, OFF(user), 0, 0, false },
	{ "worker_threads",		P_UINT, OFF(worker_threads), 1, 256, false },
};

_Static_assert(nitems(config_params) <= 64, "config.lines is too small");

struct parser {
	struct config *c;
	const char *file;
	int line;
	config_problem_fn fn;
	void *arg;
	int problems;
	bool seen[nitems(config_params)];
};

void
config_problem(config_problem_fn fn, void *arg, const char *file, int line,
    const char *fmt, ...)
{
	char msg[1024], out[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(out, sizeof(out), "%s:%d: %s", file, line, msg);
	else
		snprintf(out, sizeof(out), "%s: %s", file, msg);
	fn(arg, out);
}

#define PROBLEM(p, ...) do {						\
	config_problem((p)->fn, (p)->arg, (p)->file, (p)->line, __VA_ARGS__); \
	(p)->problems++;						\
} while (0)

const char *
config_role_name(enum listen_role r)
{
	switch (r) {
	case ROLE_MX:		return "mx";
	case ROLE_SUBMISSION:	return "submission";
	case ROLE_SUBMISSIONS:	return "submissions";
	}
	return "?";
}

bool
config_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hs = s;
	size_t hl;
	char *end;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return false;
		hs = s + 1;
		hl = (size_t)(close - hs);
		colon = close + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return false;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno || port > 65535)
		return false;
	if (*s == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return false;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return false;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
	}
	return true;
}

bool
config_parse_duration(const char *s, unsigned *out)
{
	char *end;
	unsigned long long v, mult = 1;

	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (*end != '\0') {
		if (end[1] != '\0')
			return false;
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		case 'w': mult = 7 * 86400; break;
		default: return false;
		}
	}
	if (v > UINT_MAX / mult)
		return false;
	*out = (unsigned)(v * mult);
	return true;
}

static bool
parse_u64(const char *s, uint64_t *out, bool suffixes)
{
	char *end;
	unsigned long long v, mult = 1;

	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (*end != '\0') {
		if (!suffixes || end[1] != '\0')
			return false;
		switch (tolower((unsigned char)*end)) {
		case 'k': mult = 1024; break;
		case 'm': mult = 1024 * 1024; break;
		case 'g': mult = 1024 * 1024 * 1024; break;
		default: return false;
		}
	}
	if (v > UINT64_MAX / mult)
		return false;
	*out = v * mult;
	return true;
}

static char *
make_path(const struct config *c, const char *word)
{
	if (word[0] == '/')
		return xstrdup(word);
	return xasprintf("%s/%s", c->dir, word);
}

static bool
valid_hostname(const char *s)
{
	struct mailaddr a;
	char buf[DOMAIN_MAX + 8];

	if (!bsnprintf(buf, sizeof(buf), "x@%s", s) || s[0] == '[')
		return false;
	return addr_parse(buf, &a, ADDR_F_UTF8) == ADDR_OK;
}

bool
config_dkim_selector_ok(const char *sel)
{
	size_t n = strlen(sel);

	/* RFC 6376 3.1: labels of letters, digits and '-', joined by '.' */
	if (n == 0 || n > 63 || sel[0] == '.' || sel[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)sel[i]) || sel[i] == '-' ||
		    (sel[i] == '.' && sel[i + 1] != '.')))
			return false;
	return true;
}

/*
 * host_name_port - "NAME:PORT", NAME a host name (letters, digits, '-',
 * '.'), PORT 1 to 65535 in at most 5 digits: the name (malloc'd) and the
 * port, or NULL
 */
static char *
host_name_port(const char *s, unsigned *port)
{
	const char *colon = strrchr(s, ':');
	size_t nl, pl;

	if (colon == NULL || (nl = (size_t)(colon - s)) == 0 || nl > DOMAIN_MAX)
		return NULL;
	for (size_t i = 0; i < nl; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return NULL;
	pl = strlen(colon + 1);
	if (pl == 0 || pl > 5 || strspn(colon + 1, "0123456789") != pl ||
	    (*port = (unsigned)atoi(colon + 1)) == 0 || *port > 65535)
		return NULL;
	return xstrndup(s, nl);
}

/*
 * parse_milter - "milter unix:/PATH" or "milter HOST:PORT" (an address,
 * IPv6 as [::1]:PORT, or a name, which chamoisd looks up in /etc/hosts
 * once the file is read: milter_conf.host; "inet:" in front as Postfix
 * writes it), in file order (chamois.conf(5))
 */
static void
parse_milter(struct parser *p, const char *w)
{
	struct config *c = p->c;
	struct milter_conf m;
	const char *hp = w;

	memset(&m, 0, sizeof(m));
	if (str_has_prefix_ci(w, "unix:")) {
		struct sockaddr_un *un = (struct sockaddr_un *)&m.ss;

		if (w[5] != '/' || strlen(w + 5) >= sizeof(un->sun_path)) {
			PROBLEM(p, "milter: '%s' is not unix:/ABSOLUTE/PATH", w);
			return;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, w + 5, strlen(w + 5) + 1);
		m.sslen = sizeof(*un);
	} else {
		if (str_has_prefix_ci(w, "inet:"))
			hp = w + 5;
		if (!config_parse_hostport(hp, &m.ss, &m.sslen) &&
		    (m.host = host_name_port(hp, &m.port)) == NULL) {
			PROBLEM(p, "milter: '%s' is neither unix:/PATH nor "
			    "HOST:PORT (HOST an address, IPv6 as [::1]:PORT, or a "
			    "name in /etc/hosts)", w);
			return;
		}
	}
	m.text = xstrdup(w);
	m.line = p->line;
	c->milters = xreallocarray(c->milters, c->nmilters + 1,
	    sizeof(*c->milters));
	c->milters[c->nmilters++] = m;
}

/*
 * backend_word - the first word of "KEY OFF" or "KEY ON TARGET"
 * (local_delivery, sasl_backend): 0 for off (*field freed, NULL), 1 for
 * on (the caller reads TARGET), -1 after a problem
 */
static int
backend_word(struct parser *p, const struct param *pm, const char *word,
    const char *off, const char *on, char **field)
{
	if (strcmp(word, off) == 0) {
		free(*field);
		*field = NULL;
		return 0;
	}
	if (strcmp(word, on) != 0) {
		PROBLEM(p, "%s: '%s' is neither %s nor %s", pm->name, word, off,
		    on);
		return -1;
	}
	return 1;
}

/* parse_socket - "/PATH" (a Unix socket) or ADDRESS:PORT into ss */
static bool
parse_socket(const char *w, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;

	if (w[0] != '/')
		return config_parse_hostport(w, ss, len);
	if (strlen(w) >= sizeof(un->sun_path))
		return false;
	memset(ss, 0, sizeof(*ss));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, w, strlen(w) + 1);
	*len = sizeof(*un);
	return true;
}

/*
 * parse_dkim_key - "dkim_key DOMAIN SELECTOR FILE" (chamois.conf(5)):
 * DOMAIN as a lower-case A-label, SELECTOR a DNS label (RFC 6376 3.1:
 * dot-separated labels), one selector once per domain; the key itself is
 * read and checked by the signer (dkim/signer.c)
 */
static void
parse_dkim_key(struct parser *p, char **words)
{
	struct config *c = p->c;
	struct dkim_key_conf k;
	char key[DOMAIN_MAX + 1];

	if (!valid_hostname(words[0]) ||
	    !addr_domain_key(words[0], key, sizeof(key))) {
		PROBLEM(p, "dkim_key: '%s' is not a valid domain", words[0]);
		return;
	}
	if (!config_dkim_selector_ok(words[1])) {
		PROBLEM(p, "dkim_key: '%s' is not a valid selector (letters, "
		    "digits, '-', labels joined by '.')", words[1]);
		return;
	}
	for (size_t i = 0; i < c->ndkim_keys; i++)
		if (strcmp(c->dkim_keys[i].domain, key) == 0 &&
		    strcasecmp(c->dkim_keys[i].selector, words[1]) == 0) {
			PROBLEM(p, "dkim_key: selector '%s' of %s is already "
			    "set on line %d", words[1], key, c->dkim_keys[i].line);
			return;
		}
	k.domain = xstrdup(key);
	k.selector = xstrdup(words[1]);
	k.file = make_path(c, words[2]);
	k.line = p->line;
	c->dkim_keys = xreallocarray(c->dkim_keys, c->ndkim_keys + 1,
	    sizeof(*c->dkim_keys));
	c->dkim_keys[c->ndkim_keys++] = k;
}

/* config_parse_nameport - see config.h */
bool
config_parse_nameport(const char *s, char *host, size_t size, unsigned *port)
{
	const char *colon = strrchr(s, ':'), *hs = s;
	size_t hl;
	char *end;
	unsigned long v;
	struct in6_addr a6;

	if (colon == NULL)
		return false;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return false;
		hs = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= size)
		return false;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end != '\0' || errno ||
	    v == 0 || v > 65535)
		return false;
	*port = (unsigned)v;
	if (s[0] == '[')
		return inet_pton(AF_INET6, host, &a6) == 1;
	return strchr(host, ':') == NULL && (valid_hostname(host) ||
	    inet_pton(AF_INET, host, &a6) == 1);
}

/* config_route - see config.h */
const struct route_conf *
config_route(const struct config *c, const char *domain)
{
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].domain, domain) == 0)
			return &c->routes[i];
	return NULL;
}

/* parse_route - "route DOMAIN HOST:PORT" (chamois.conf(5)) */
static void
parse_route(struct parser *p, char **words)
{
	struct config *c = p->c;
	struct route_conf r;
	char key[DOMAIN_MAX + 1], host[DOMAIN_MAX + 1];

	if (!valid_hostname(words[0]) ||
	    !addr_domain_key(words[0], key, sizeof(key))) {
		PROBLEM(p, "route: '%s' is not a valid domain", words[0]);
		return;
	}
	if (!config_parse_nameport(words[1], host, sizeof(host), &r.port)) {
		PROBLEM(p, "route: '%s' is not HOST:PORT", words[1]);
		return;
	}
	if (config_route(c, key) != NULL) {
		PROBLEM(p, "route: %s has a route already", key);
		return;
	}
	r.domain = xstrdup(key);
	r.host = xstrdup(host);
	r.line = p->line;
	c->routes = xreallocarray(c->routes, c->nroutes + 1, sizeof(*c->routes));
	c->routes[c->nroutes++] = r;
}

/* parse_outaddr - "outbound_address ADDR": the source of one family */
static void
parse_outaddr(struct parser *p, const char *word)
{
	struct config *c = p->c;
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, word, &s4.sin_addr) == 1) {
		if (c->outbound_addr4.ss_family != 0) {
			PROBLEM(p, "outbound_address: an IPv4 address is set already");
			return;
		}
		s4.sin_family = AF_INET;
		memcpy(&c->outbound_addr4, &s4, sizeof(s4));
	} else if (inet_pton(AF_INET6, word, &s6.sin6_addr) == 1) {
		if (c->outbound_addr6.ss_family != 0) {
			PROBLEM(p, "outbound_address: an IPv6 address is set already");
			return;
		}
		s6.sin6_family = AF_INET6;
		memcpy(&c->outbound_addr6, &s6, sizeof(s6));
	} else
		PROBLEM(p, "outbound_address: '%s' is not an IPv4 or IPv6 "
		    "address", word);
}

/* parse_value - one line's value words into the config field */
static void
parse_value(struct parser *p, const struct param *pm, char **words, int nwords)
{
	struct config *c = p->c;
	void *field = (char *)c + pm->offset;
	int want = pm->type == P_DOMAINS ? -1 : pm->type == P_LISTEN ? 2 :
	    pm->type == P_SASL_BACKEND || pm->type == P_LOCAL_DELIVERY ?
	    (nwords > 0 && (strcmp(words[0], "dovecot") == 0 ||
	    strcmp(words[0], "lmtp") == 0) ?
	    2 : 1) :
	    pm->type == P_DKIM_KEY ? 3 : pm->type == P_ROUTE ? 2 : 1;

	if (nwords == 0) {
		PROBLEM(p, "%s: missing value", pm->name);
		return;
	}
	if (want > 0 && nwords != want) {
		PROBLEM(p, "%s: expected %d value%s, got %d", pm->name, want,
		    want == 1 ? "" : "s", nwords);
		return;
	}
	switch (pm->type) {
	case P_STRING:
		free(*(char **)field);
		*(char **)field = xstrdup(words[0]);
		break;
	case P_PATH:
		free(*(char **)field);
		*(char **)field = make_path(c, words[0]);
		if (pm->offset == OFF(mailboxes))
			c->mailboxes_line = p->line;
		else if (pm->offset == OFF(aliases))
			c->aliases_line = p->line;
		break;
	case P_HOSTNAME:
		if (!valid_hostname(words[0])) {
			PROBLEM(p, "%s: '%s' is not a valid host name", pm->name, words[0]);
			return;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(words[0]);
		break;
	case P_ADDRESS: {
		struct mailaddr a;

		if (addr_parse(words[0], &a, ADDR_F_UTF8) != ADDR_OK) {
			PROBLEM(p, "%s: '%s' is not a valid address", pm->name, words[0]);
			return;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(words[0]);
		if (pm->offset == OFF(postmaster))
			c->postmaster_line = p->line;
		break;
	}
	case P_UINT:
	case P_SIZE: {
		uint64_t v;

		if (!parse_u64(words[0], &v, pm->type == P_SIZE) ||
		    v < pm->min || v > pm->max) {
			PROBLEM(p, "%s: '%s' is not a number from %llu to %llu",
			    pm->name, words[0], (unsigned long long)pm->min,
			    (unsigned long long)pm->max);
			return;
		}
		if (pm->type == P_SIZE)
			*(uint64_t *)field = v;
		else
			*(unsigned *)field = (unsigned)v;
		break;
	}
	case P_DURATION: {
		unsigned v;

		if (!config_parse_duration(words[0], &v) || v < pm->min ||
		    v > pm->max) {
			PROBLEM(p, "%s: '%s' is not a duration from %llus to %llus "
			    "(like 90s, 30m, 4h, 5d)", pm->name, words[0],
			    (unsigned long long)pm->min, (unsigned long long)pm->max);
			return;
		}
		*(unsigned *)field = v;
		break;
	}
	case P_YESNO:
		if (strcmp(words[0], "yes") != 0 && strcmp(words[0], "no") != 0) {
			PROBLEM(p, "%s: '%s' is neither yes nor no", pm->name,
			    words[0]);
			return;
		}
		*(bool *)field = strcmp(words[0], "yes") == 0;
		break;
	case P_DMARC_POLICY:
		if (strcmp(words[0], "enforce") != 0 &&
		    strcmp(words[0], "monitor") != 0) {
			PROBLEM(p, "%s: '%s' is neither enforce nor monitor",
			    pm->name, words[0]);
			return;
		}
		*(bool *)field = strcmp(words[0], "monitor") == 0;
		break;
	case P_MILTER_ACTION:
		if (strcmp(words[0], "tempfail") != 0 &&
		    strcmp(words[0], "accept") != 0) {
			PROBLEM(p, "%s: '%s' is neither tempfail nor accept",
			    pm->name, words[0]);
			return;
		}
		*(bool *)field = strcmp(words[0], "accept") == 0;
		break;
	case P_DOMAINS:
		for (int i = 0; i < nwords; i++) {
			char key[DOMAIN_MAX + 1];

			if (!valid_hostname(words[i]) ||
			    !addr_domain_key(words[i], key, sizeof(key))) {
				PROBLEM(p, "domains: '%s' is not a valid domain", words[i]);
				continue;
			}
			if (config_is_local_domain(c, key))
				continue;
			c->domains = xreallocarray(c->domains, c->ndomains + 1,
			    sizeof(*c->domains));
			c->domains[c->ndomains++] = xstrdup(key);
		}
		c->domains_line = p->line;
		break;
	case P_LISTEN: {
		struct listen_addr la;

		memset(&la, 0, sizeof(la));
		if (strcmp(words[0], "mx") == 0)
			la.role = ROLE_MX;
		else if (strcmp(words[0], "submission") == 0)
			la.role = ROLE_SUBMISSION;
		else if (strcmp(words[0], "submissions") == 0)
			la.role = ROLE_SUBMISSIONS;
		else {
			PROBLEM(p, "listen: unknown role '%s' (mx, submission "
			    "or submissions)", words[0]);
			return;
		}
		if (!config_parse_hostport(words[1], &la.ss, &la.sslen)) {
			PROBLEM(p, "listen: '%s' is not ADDRESS:PORT (IPv6 as "
			    "[::1]:PORT)", words[1]);
			return;
		}
		str_copy(la.text, words[1], sizeof(la.text));
		la.line = p->line;
		c->listens = xreallocarray(c->listens, c->nlistens + 1,
		    sizeof(*c->listens));
		c->listens[c->nlistens++] = la;
		break;
	}
	case P_HOSTPORT: {
		/* dns_server or metrics_listen: the address, its length, its text */
		bool metrics = pm->offset == OFF(metrics_listen);
		char **text = metrics ? &c->metrics_listen_text :
		    &c->dns_server_text;

		if (!config_parse_hostport(words[0], (struct sockaddr_storage *)
		    ((char *)c + pm->offset), metrics ? &c->metrics_listen_len :
		    &c->dns_server_len)) {
			PROBLEM(p, "%s: '%s' is not ADDRESS:PORT", pm->name, words[0]);
			return;
		}
		free(*text);
		*text = xstrdup(words[0]);
		break;
	}
	case P_SECRET:
		if (strlen(words[0]) < 16) {
			PROBLEM(p, "%s: a secret needs at least 16 characters",
			    pm->name);
			return;
		}
		c->srs_secrets = xreallocarray(c->srs_secrets,
		    c->nsrs_secrets + 1, sizeof(char *));
		c->srs_secrets[c->nsrs_secrets++] = xstrdup(words[0]);
		break;
	case P_DKIM_KEY:
		parse_dkim_key(p, words);
		break;
	case P_NAMEPORT: {
		char host[DOMAIN_MAX + 1];

		if (!config_parse_nameport(words[0], host, sizeof(host),
		    &c->relay_port)) {
			PROBLEM(p, "%s: '%s' is not HOST:PORT (a name or an "
			    "address; IPv6 as [::1]:PORT)", pm->name, words[0]);
			return;
		}
		free(c->relay_host);
		c->relay_host = xstrdup(host);
		break;
	}
	case P_ROUTE:
		parse_route(p, words);
		break;
	case P_MILTER:
		parse_milter(p, words[0]);
		break;
	case P_LOCAL_DELIVERY:
		if (backend_word(p, pm, words[0], "maildir", "lmtp",
		    &c->lmtp_text) != 1)
			break;
		free(c->lmtp_host);
		c->lmtp_host = NULL;
		c->lmtp_sslen = 0;
		if (!parse_socket(words[1], &c->lmtp_ss, &c->lmtp_sslen) &&
		    (words[1][0] == '/' ||
		    (c->lmtp_host = host_name_port(words[1], &c->lmtp_port)) == NULL)) {
			PROBLEM(p, "%s: '%s' is neither /PATH nor HOST:PORT (HOST "
			    "an address, IPv6 as [::1]:PORT, or a name in "
			    "/etc/hosts)", pm->name, words[1]);
			return;
		}
		free(c->lmtp_text);
		c->lmtp_text = xstrdup(words[1]);
		break;
	case P_SASL_BACKEND: {
		/* the socket's path must fit a sockaddr_un */
		struct sockaddr_un sun;
		char *path;

		if (backend_word(p, pm, words[0], "cyrus", "dovecot",
		    &c->sasl_dovecot) != 1)
			break;
		path = make_path(c, words[1]);
		if (strlen(path) >= sizeof(sun.sun_path)) {
			PROBLEM(p, "%s: the socket path is longer than %zu "
			    "octets", pm->name, sizeof(sun.sun_path) - 1);
			free(path);
			return;
		}
		free(c->sasl_dovecot);
		c->sasl_dovecot = path;
		break;
	}
	case P_FAMILY:
		if (strcmp(words[0], "any") == 0)
			c->outbound_family = FAMILY_ANY;
		else if (strcmp(words[0], "ipv4") == 0)
			c->outbound_family = FAMILY_IPV4;
		else if (strcmp(words[0], "ipv6") == 0)
			c->outbound_family = FAMILY_IPV6;
		else
			PROBLEM(p, "%s: '%s' is not any, ipv4 or ipv6", pm->name,
			    words[0]);
		break;
	case P_OUTADDR:
		parse_outaddr(p, words[0]);
		break;
	case P_DNSBL: {
		char key[DOMAIN_MAX + 1];

		if (!valid_hostname(words[0]) ||
		    !addr_domain_key(words[0], key, sizeof(key))) {
			PROBLEM(p, "dnsbl: '%s' is not a valid DNS zone", words[0]);
			return;
		}
		for (size_t i = 0; i < c->ndnsbl_zones; i++)
			if (strcmp(c->dnsbl_zones[i], key) == 0)
				return;		/* named twice: asked once */
		c->dnsbl_zones = xreallocarray(c->dnsbl_zones, c->ndnsbl_zones + 1,
		    sizeof(char *));
		c->dnsbl_zones[c->ndnsbl_zones++] = xstrdup(key);
		break;
	}
	}
}

static const struct param *
param_lookup(const char *name)
{
	for (size_t i = 0; i < nitems(config_params); i++)
		if (strcmp(config_params[i].name, name) == 0)
			return &config_params[i];
	return NULL;
}

static void
parse_line(struct parser *p, char *line)
{
	char *words[64], *hash, *tok, *save;
	int n = 0;
	const struct param *pm;

	if ((hash = strchr(line, '#')) != NULL)
		*hash = '\0';
	for (tok = strtok_r(line, " \t\r\n", &save); tok;
	    tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == (int)nitems(words)) {
			PROBLEM(p, "too many words on one line");
			return;
		}
		words[n++] = tok;
	}
	if (n == 0)
		return;
	if ((pm = param_lookup(words[0])) == NULL) {
		PROBLEM(p, "unknown key '%s'", words[0]);
		return;
	}
	if (!pm->repeat && p->seen[pm - config_params]) {
		PROBLEM(p, "'%s' is set twice", pm->name);
		return;
	}
	p->seen[pm - config_params] = true;
	p->c->lines[pm - config_params] = p->line;
	parse_value(p, pm, words + 1, n - 1);
}

static void
config_defaults(struct config *c)
{
	c->max_message_size = 26214400;
	c->spool_max_size = 1073741824;
	c->max_recipients = 100;
	c->forward_rcpt_budget = 60;
	c->forward_data_budget = 180;
	c->remote_port = 25;
	c->dane = true;
	c->mta_sts = true;
	c->tlsrpt = true;
	c->testing_mta_sts_port = 443;	/* RFC 8461 3.3: HTTPS */
	c->queue_lifetime = 5 * 86400;
	c->delay_warning_time = 4 * 3600;
	c->queue_max_deliveries = 20;
	c->queue_max_per_domain = 4;
	c->max_messages_per_hour = 200;
	c->max_connections = DEF_MAX_CONNECTIONS;
	c->max_connections_per_address = DEF_MAX_CONN_PER_ADDR;
	c->max_errors = DEF_MAX_ERRORS;
	c->smtp_timeout = SERVER_TIMEOUT_SEC;
	c->session_timeout = 3600;
	c->greeting_delay = 0;
	c->shutdown_grace = DEF_SHUTDOWN_GRACE_SEC;
	c->worker_threads = 8;
	c->forward_max_sessions = 100;
	c->forward_max_per_domain = 20;
	c->forward_max_per_client = 5;
	/* Postfix's defaults (milter_*_timeout, doc/chamois.conf.5) */
	c->milter_connect_timeout = 30;
	c->milter_command_timeout = 30;
	c->milter_content_timeout = 300;	/* a quarter of a domain's 20 (doc/forwarding.md) */
}

/* default_hostname - the system's fully qualified name (chamois.conf(5)) */
static char *
default_hostname(void)
{
	char name[256];
	struct addrinfo hints, *res = NULL;
	char *out;

	if (gethostname(name, sizeof(name)) == -1)
		return xstrdup("localhost");
	name[sizeof(name) - 1] = '\0';
	if (strchr(name, '.'))
		return xstrdup(name);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(name, NULL, &hints, &res) == 0 && res->ai_canonname &&
	    strchr(res->ai_canonname, '.'))
		out = xstrdup(res->ai_canonname);
	else
		out = xstrdup(name);
	if (res)
		freeaddrinfo(res);
	return out;
}

/*
 * config_read_relay_auth - see config.h: mode 0600 (no group or other
 * bits), one line "USER PASSWORD" (chamois.conf(5)), read when the
 * daemon loads the config, so that a delivery never opens a file on the
 * event loop
 */
int
config_read_relay_auth(struct config *c, config_problem_fn fn, void *arg)
{
	struct parser pp = { .c = c, .file = c->path, .fn = fn, .arg = arg };
	struct parser *p = &pp;
	char buf[1024], *nl, *sp;
	struct stat st;
	ssize_t n;
	int fd;

	if (c->relay_auth == NULL)
		return 0;
	p->line = config_line(c, "relay_auth");
	if ((fd = open(c->relay_auth, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		PROBLEM(p, "relay_auth: %s: %s", c->relay_auth, strerror(errno));
		return p->problems;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		PROBLEM(p, "relay_auth: %s is not a regular file", c->relay_auth);
		close(fd);
		return p->problems;
	}
	if ((st.st_mode & 077) != 0) {
		PROBLEM(p, "relay_auth: %s must be mode 0600 (it is %04o)",
		    c->relay_auth, (unsigned)(st.st_mode & 07777));
		close(fd);
		return p->problems;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	if ((nl = strchr(buf, '\n')) != NULL)
		*nl = '\0';
	if ((nl = strchr(buf, '\r')) != NULL)
		*nl = '\0';
	sp = strchr(buf, ' ');
	if (sp == NULL || sp == buf || sp[1] == '\0') {
		PROBLEM(p, "relay_auth: %s must hold one line 'USER PASSWORD'",
		    c->relay_auth);
		explicit_bzero(buf, sizeof(buf));
		return p->problems;
	}
	*sp = '\0';
	free(c->relay_user);
	if (c->relay_pass) {
		explicit_bzero(c->relay_pass, strlen(c->relay_pass));
		free(c->relay_pass);
	}
	c->relay_user = xstrdup(buf);
	c->relay_pass = xstrdup(sp + 1);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* config_check - what only the whole file can tell */
static void
config_check(struct parser *p)
{
	struct config *c = p->c;
	bool sub = false;

	/* a missing key is reported at the end of the file */
	if (p->line == 0)
		p->line = 1;
	for (size_t i = 0; i < c->nlistens; i++)
		if (c->listens[i].role != ROLE_MX)
			sub = true;
	if (c->nlistens == 0)
		PROBLEM(p, "missing required key 'listen'");
	if (c->ndomains == 0 && !p->seen[param_lookup("domains") - config_params])
		PROBLEM(p, "missing required key 'domains'");
	if (c->mailboxes == NULL)
		PROBLEM(p, "missing required key 'mailboxes'");
	if (c->maildir_root == NULL)
		PROBLEM(p, "missing required key 'maildir_root'");
	if (c->queue_dir == NULL)
		PROBLEM(p, "missing required key 'queue_dir'");
	if ((c->tls_cert == NULL) != (c->tls_key == NULL))
		PROBLEM(p, "tls_cert and tls_key go together");
	if (sub && c->tls_cert == NULL)
		PROBLEM(p, "a submission role needs tls_cert and tls_key");
	if (sub && c->sasl_db == NULL && c->sasl_dovecot == NULL)
		PROBLEM(p, "a submission role needs sasl_db");
	if (c->relay_auth && c->relay_host == NULL)
		PROBLEM(p, "relay_auth needs relay_host");
	for (size_t i = 0; i < c->nroutes; i++)
		if (config_is_local_domain(c, c->routes[i].domain)) {
			p->line = c->routes[i].line;
			PROBLEM(p, "route: %s is a local domain", c->routes[i].domain);
		}
	if (c->hostname == NULL)
		c->hostname = default_hostname();
}

struct config *
config_load(const char *path, config_problem_fn fn, void *arg)
{
	int problems;
	struct config *c = config_load_checked(path, fn, arg, &problems);

	if (c != NULL && problems) {
		config_free(c);
		return NULL;
	}
	return c;
}

struct config *
config_load_checked(const char *path, config_problem_fn fn, void *arg,
    int *problems)
{
	struct parser p;
	struct config *c;
	FILE *f;
	char *line = NULL, *slash, *abs;
	size_t cap = 0;
	ssize_t len;

	memset(&p, 0, sizeof(p));
	p.file = path;
	p.fn = fn;
	p.arg = arg;
	*problems = 1;
	if ((f = fopen(path, "r")) == NULL) {
		config_problem(fn, arg, path, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	p.c = c;
	config_defaults(c);
	c->path = xstrdup(path);
	abs = realpath(path, NULL);
	if (abs == NULL)
		abs = xstrdup(path);
	if ((slash = strrchr(abs, '/')) != NULL) {
		*slash = '\0';
		c->dir = xstrdup(abs[0] ? abs : "/");
	} else
		c->dir = xstrdup(".");
	free(abs);
	while ((len = getline(&line, &cap, f)) != -1) {
		p.line++;
		if (memchr(line, '\0', (size_t)len) != NULL) {
			PROBLEM(&p, "NUL byte in line");
			continue;
		}
		parse_line(&p, line);
	}
	free(line);
	fclose(f);
	config_check(&p);
	*problems = p.problems;
	c->last_line = p.line;
	return c;
}

int
config_line(const struct config *c, const char *key)
{
	const struct param *pm = param_lookup(key);

	if (pm && c->lines[pm - config_params] > 0)
		return c->lines[pm - config_params];
	return c->last_line > 0 ? c->last_line : 1;
}

bool
config_is_local_domain(const struct config *c, const char *key)
{
	for (size_t i = 0; i < c->ndomains; i++)
		if (strcmp(c->domains[i], key) == 0)
			return true;
	return false;
}

struct config *
config_ref(struct config *c)
{
	c->refs++;
	return c;
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	if (c->refs > 0) {
		c->refs--;
		return;
	}
	free(c->path);
	free(c->dir);
	free(c->hostname);
	free(c->listens);
	free(c->tls_cert);
	free(c->tls_key);
	for (size_t i = 0; i < c->ndomains; i++)
		free(c->domains[i]);
	free(c->domains);
	free(c->mailboxes);
	free(c->aliases);
	free(c->postmaster);
	free(c->tlsrpt_rua);
	free(c->tlsrpt_submitter);
	free(c->maildir_root);
	free(c->queue_dir);
	free(c->sasl_db);
	free(c->sasl_dovecot);
	free(c->lmtp_text);
	free(c->lmtp_host);
	for (size_t i = 0; i < c->nsrs_secrets; i++)
		free(c->srs_secrets[i]);
	free(c->srs_secrets);
	for (size_t i = 0; i < c->ndnsbl_zones; i++)
		free(c->dnsbl_zones[i]);
	free(c->dnsbl_zones);
	for (size_t i = 0; i < c->ndkim_keys; i++) {
		free(c->dkim_keys[i].domain);
		free(c->dkim_keys[i].selector);
		free(c->dkim_keys[i].file);
	}
	free(c->dkim_keys);
	free(c->dns_server_text);
	free(c->metrics_listen_text);
	free(c->user);
	free(c->relay_host);
	free(c->relay_auth);
	free(c->relay_user);
	if (c->relay_pass) {
		explicit_bzero(c->relay_pass, strlen(c->relay_pass));
		free(c->relay_pass);
	}
	free(c->tls_ca_file);
	for (size_t i = 0; i < c->nroutes; i++) {
		free(c->routes[i].domain);
		free(c->routes[i].host);
	}
	free(c->routes);
	for (size_t i = 0; i < c->nmilters; i++) {
		free(c->milters[i].text);
		free(c->milters[i].host);
	}
	free(c->milters);
	free(c);
}
