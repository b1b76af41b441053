/*
 * test_config.c - chamois.conf (common/config.c) and the mailboxes and
 * aliases tables (common/tables.c), on files written to a fresh mkdtemp
 * directory per case.  Every problem must be one "FILE:LINE: message"
 * line naming the right file and line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/limits.h"
#include "common/tables.h"
#include "scratch.h"
#include "unit.h"

/* problems: what config_load and tables_load report */
#define MAX_PROBLEMS 16

struct problems {
	char *line[MAX_PROBLEMS];
	size_t n;
};

static void
collect(void *arg, const char *line)
{
	struct problems *p = arg;

	if (p->n < MAX_PROBLEMS)
		p->line[p->n] = strdup(line);
	p->n++;
}

static void
problems_free(struct problems *p)
{
	for (size_t i = 0; i < p->n && i < MAX_PROBLEMS; i++)
		free(p->line[i]);
	p->n = 0;
}

static void
problems_print(const struct problems *p)
{
	for (size_t i = 0; i < p->n && i < MAX_PROBLEMS; i++)
		print_message("  got: %s\n", p->line[i]);
}

/* a scratch directory per case, removed afterwards */
static char *
write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char *path;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* expand_dir - "{DIR}" in want becomes dir */
static char *
expand_dir(const char *want, const char *dir)
{
	const char *tok = strstr(want, "{DIR}");
	char *out;

	if (tok == NULL)
		return strdup(want);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(tok - want), want, dir, tok + 5) > 0);
	return out;
}

/* config_load */

struct want_problem {
	int line;		/* 0: the end of the list */
	const char *msg;	/* after "FILE:LINE: "; "{DIR}" is the directory */
};

struct conf_case {
	const char *label;
	const char *text;
	size_t len;		/* 0: strlen(text) */
	struct want_problem problems[8];	/* none: the file is good */
	void (*check)(const struct config *, const char *dir);
	/* checked when not 0 */
	unsigned queue_lifetime;
	unsigned smtp_timeout;
	uint64_t max_message_size;
	const char *bug;
};

#define L_HOST		"hostname mx.example.test\n"
#define L_LISTEN	"listen mx 127.0.0.1:2525\n"
#define L_DOMAINS	"domains example.test\n"
#define L_MAILBOXES	"mailboxes mailboxes\n"
#define L_MAILDIR	"maildir_root maildir\n"
#define L_QUEUE		"queue_dir queue\n"
/* lines 1 to 6 */
#define BASE		L_HOST L_LISTEN L_DOMAINS L_MAILBOXES L_MAILDIR L_QUEUE
/* lines 1 to 5 */
#define BASE_NOHOST	L_LISTEN L_DOMAINS L_MAILBOXES L_MAILDIR L_QUEUE
#define BASE_NODOMAINS	L_HOST L_LISTEN L_MAILBOXES L_MAILDIR L_QUEUE

static void
assert_path(const char *got, const char *dir, const char *rel)
{
	char *want;

	assert_non_null(got);
	assert_true(asprintf(&want, "%s/%s", dir, rel) > 0);
	assert_string_equal(got, want);
	free(want);
}

static void
check_dmarc_monitor(const struct config *c, const char *dir)
{
	assert_true(c->dmarc_monitor);
}

static void
check_dmarc_enforce(const struct config *c, const char *dir)
{
	assert_false(c->dmarc_monitor);
}

static void
check_dane_no(const struct config *c, const char *dir)
{
	assert_false(c->dane);
}

/* milter HOST:PORT: an address as written; a name kept for /etc/hosts */
static void
check_milters(const struct config *c, const char *dir)
{
	assert_int_equal(c->nmilters, 4);
	assert_int_equal(c->milters[0].ss.ss_family, AF_UNIX);
	assert_string_equal(c->milters[1].text, "localhost:11332");
	assert_string_equal(c->milters[1].host, "localhost");
	assert_int_equal(c->milters[1].port, 11332);
	assert_int_equal(c->milters[1].sslen, 0);
	assert_null(c->milters[2].host);
	assert_int_equal(c->milters[2].ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((const struct sockaddr_in *)&c->milters[2].ss)->sin_port), 8891);
	assert_null(c->milters[3].host);
	assert_int_equal(c->milters[3].ss.ss_family, AF_INET6);
}

static void
check_minimal(const struct config *c, const char *dir)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->listens[0].ss;

	assert_string_equal(c->dir, dir);
	assert_string_equal(c->hostname, "mx.example.test");
	assert_int_equal(c->nlistens, 1);
	assert_int_equal(c->listens[0].role, ROLE_MX);
	assert_string_equal(c->listens[0].text, "127.0.0.1:2525");
	assert_int_equal(c->listens[0].line, 2);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 2525);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(c->listens[0].sslen, sizeof(struct sockaddr_in));
	assert_int_equal(c->ndomains, 1);
	assert_string_equal(c->domains[0], "example.test");
	assert_int_equal(c->domains_line, 3);
	assert_path(c->mailboxes, dir, "mailboxes");
	assert_int_equal(c->mailboxes_line, 4);
	assert_path(c->maildir_root, dir, "maildir");
	assert_path(c->queue_dir, dir, "queue");
	assert_null(c->aliases);
	assert_null(c->postmaster);
	assert_null(c->tls_cert);
	assert_null(c->sasl_db);
	/* the defaults of chamois.conf(5) */
	assert_false(c->dmarc_monitor);	/* dmarc_policy enforce */
	assert_true(c->dane);		/* dane yes */
	assert_int_equal(c->max_message_size, 26214400);
	assert_int_equal(c->max_recipients, 100);
	assert_int_equal(c->forward_rcpt_budget, 60);
	assert_int_equal(c->forward_data_budget, 180);
	assert_int_equal(c->remote_port, 25);
	assert_int_equal(c->queue_lifetime, 5 * 86400);
	assert_int_equal(c->max_errors, DEF_MAX_ERRORS);
	assert_int_equal(c->smtp_timeout, SERVER_TIMEOUT_SEC);
	assert_int_equal(c->last_line, 6);
	assert_int_equal(config_line(c, "domains"), 3);
	assert_int_equal(config_line(c, "listen"), 2);
	assert_int_equal(config_line(c, "aliases"), 6);	/* unset: the last line */
	assert_true(config_is_local_domain(c, "example.test"));
	assert_false(config_is_local_domain(c, "other.test"));
}

static void
check_paths(const struct config *c, const char *dir)
{
	assert_string_equal(c->mailboxes, "/srv/mail/mailboxes");
	assert_string_equal(c->maildir_root, "/srv/maildir");
	assert_path(c->queue_dir, dir, "./q");
	assert_path(c->aliases, dir, "sub/aliases");
	assert_path(c->tls_cert, dir, "../certs/cert.pem");
	assert_int_equal(c->aliases_line, 9);
}

static void
check_ipv6(const struct config *c, const char *dir)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&c->listens[0].ss;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&c->listens[1].ss;

	(void)dir;
	assert_int_equal(c->nlistens, 2);
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 25);
	assert_true(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
	assert_int_equal(c->listens[0].sslen, sizeof(struct sockaddr_in6));
	assert_string_equal(c->listens[0].text, "[::1]:25");
	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(ntohs(s4->sin_port), 25);
	assert_int_equal(c->listens[1].line, 3);
}

static void
check_submission(const struct config *c, const char *dir)
{
	assert_int_equal(c->nlistens, 3);
	assert_int_equal(c->listens[0].role, ROLE_MX);
	assert_int_equal(c->listens[1].role, ROLE_SUBMISSION);
	assert_int_equal(c->listens[2].role, ROLE_SUBMISSIONS);
	assert_string_equal(config_role_name(c->listens[1].role), "submission");
	assert_string_equal(config_role_name(c->listens[2].role), "submissions");
	assert_path(c->tls_cert, dir, "cert.pem");
	assert_path(c->tls_key, dir, "key.pem");
	assert_path(c->sasl_db, dir, "sasldb2");
}

/* local_delivery lmtp NAME:PORT: kept for chamoisd's /etc/hosts look-up */
static void
check_lmtp_name(const struct config *c, const char *dir)
{
	assert_string_equal(c->lmtp_text, "localhost:24");
	assert_string_equal(c->lmtp_host, "localhost");
	assert_int_equal(c->lmtp_port, 24);
	assert_int_equal(c->lmtp_sslen, 0);
}

/* sasl_backend dovecot instead of sasl_db; local_delivery lmtp */
static void
check_dovecot(const struct config *c, const char *dir)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)&c->lmtp_ss;

	assert_null(c->sasl_db);
	assert_path(c->sasl_dovecot, dir, "run/auth-client");
	assert_string_equal(c->lmtp_text, "/run/dovecot/lmtp");
	assert_int_equal(un->sun_family, AF_UNIX);
	assert_string_equal(un->sun_path, "/run/dovecot/lmtp");
}

static void
check_lmtp_inet(const struct config *c, const char *dir)
{
	(void)dir;
	assert_null(c->sasl_dovecot);
	assert_string_equal(c->lmtp_text, "127.0.0.1:24");
	assert_int_equal(c->lmtp_ss.ss_family, AF_INET);
}

static void
check_domains(const struct config *c, const char *dir)
{
	(void)dir;
	assert_int_equal(c->ndomains, 3);
	assert_string_equal(c->domains[0], "example.test");
	assert_string_equal(c->domains[1], "xn--bcher-kva.example");
	assert_string_equal(c->domains[2], "other.test");
	assert_true(config_is_local_domain(c, "xn--bcher-kva.example"));
}

static void
check_everything(const struct config *c, const char *dir)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&c->dns_server;

	assert_string_equal(c->postmaster, "admin@example.test");
	assert_int_equal(c->postmaster_line, 7);
	assert_path(c->aliases, dir, "aliases");
	assert_int_equal(c->aliases_line, 8);
	assert_string_equal(c->dns_server_text, "[::1]:5353");
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 5353);
	assert_int_equal(c->nsrs_secrets, 2);
	assert_string_equal(c->srs_secrets[0], "0123456789abcdef");
	assert_string_equal(c->srs_secrets[1], "fedcba9876543210-old");
	assert_string_equal(c->user, "chamois");
	assert_int_equal(c->remote_port, 2525);
	assert_int_equal(c->max_recipients, 50);
	assert_int_equal(c->max_connections, 10);
	assert_int_equal(c->max_connections_per_address, 2);
	assert_int_equal(c->max_errors, 3);
	assert_int_equal(c->worker_threads, 4);
	assert_int_equal(c->shutdown_grace, 5);
	assert_int_equal(c->forward_rcpt_budget, 90);
	assert_int_equal(c->forward_data_budget, 3600);
	assert_int_equal(c->last_line, 22);
}

static const struct conf_case conf_cases[] = {
	/* good files */
	{ .label = "config: minimal", .text = BASE, .check = check_minimal },
	{ .label = "config: dmarc_policy monitor", .text = BASE "dmarc_policy monitor\n",
	  .check = check_dmarc_monitor },
	{ .label = "config: dmarc_policy enforce", .text = BASE "dmarc_policy enforce\n",
	  .check = check_dmarc_enforce },
	{ .label = "config: dmarc_policy neither", .text = BASE "dmarc_policy reject\n",
	  .problems = { { 7, "dmarc_policy: 'reject' is neither enforce nor monitor" } } },
	{ .label = "config: dane no", .text = BASE "dane no\n", .check = check_dane_no },
	{ .label = "config: milters by address and by /etc/hosts name",
	  .text = BASE "milter unix:/run/rspamd.sock\nmilter localhost:11332\n"
	      "milter inet:127.0.0.1:8891\nmilter [::1]:11333\n", .check = check_milters },
	{ .label = "config: milter name with a bad port",
	  .text = BASE "milter localhost:0000011332\nmilter localhost:0\nmilter local_host:1\n",
	  .problems = { { 7, "milter: 'localhost:0000011332' is neither unix:/PATH nor "
	      "HOST:PORT (HOST an address, IPv6 as [::1]:PORT, or a name in /etc/hosts)" },
	      { 8, "milter: 'localhost:0' is neither unix:/PATH nor "
	      "HOST:PORT (HOST an address, IPv6 as [::1]:PORT, or a name in /etc/hosts)" },
	      { 9, "milter: 'local_host:1' is neither unix:/PATH nor "
	      "HOST:PORT (HOST an address, IPv6 as [::1]:PORT, or a name in /etc/hosts)" } } },
	{ .label = "config: dane neither", .text = BASE "dane maybe\n",
	  .problems = { { 7, "dane: 'maybe' is neither yes nor no" } } },
	{ .label = "config: comments, blank lines, TABs, CRLF",
	  .text = "# chamois\n\n\thostname\tmx.example.test   # the name\r\n"
	      "listen   mx 127.0.0.1:2525\n   \n" L_DOMAINS L_MAILBOXES L_MAILDIR L_QUEUE
	      "# the end\n" },
	{ .label = "config: relative and absolute paths",
	  .text = L_HOST L_LISTEN L_DOMAINS "mailboxes /srv/mail/mailboxes\n"
	      "maildir_root /srv/maildir\nqueue_dir ./q\ntls_cert ../certs/cert.pem\n"
	      "tls_key /etc/key.pem\naliases sub/aliases\n", .check = check_paths },
	{ .label = "config: IPv6 listen",
	  .text = L_HOST "listen mx [::1]:25\nlisten mx 0.0.0.0:25\n" L_DOMAINS L_MAILBOXES
	      L_MAILDIR L_QUEUE, .check = check_ipv6 },
	{ .label = "config: submission roles complete",
	  .text = BASE "listen submission 127.0.0.1:587\nlisten submissions [::1]:465\n"
	      "tls_cert cert.pem\ntls_key key.pem\nsasl_db sasldb2\n", .check = check_submission },
	{ .label = "config: sasl_backend dovecot, local_delivery lmtp socket",
	  .text = BASE "listen submission 127.0.0.1:587\ntls_cert cert.pem\n"
	      "tls_key key.pem\nsasl_backend dovecot run/auth-client\n"
	      "local_delivery lmtp /run/dovecot/lmtp\n", .check = check_dovecot },
	{ .label = "config: sasl_backend cyrus, local_delivery lmtp ADDRESS:PORT",
	  .text = BASE "sasl_backend cyrus\nlocal_delivery lmtp 127.0.0.1:24\n",
	  .check = check_lmtp_inet },
	{ .label = "config: local_delivery lmtp HOST:PORT, a name for /etc/hosts",
	  .text = BASE "local_delivery lmtp localhost:24\n", .check = check_lmtp_name },
	{ .label = "config: local_delivery maildir",
	  .text = BASE "local_delivery maildir\n" },
	{ .label = "config: local_delivery and sasl_backend wrong",
	  .text = BASE "local_delivery lmtp nowhere\nsasl_backend ldap\n",
	  .problems = { { 7, "local_delivery: 'nowhere' is neither /PATH nor "
	      "HOST:PORT (HOST an address, IPv6 as [::1]:PORT, or a name in /etc/hosts)" },
	      { 8, "sasl_backend: 'ldap' is neither cyrus nor dovecot" } } },
	{ .label = "config: local_delivery neither", .text = BASE "local_delivery mbox\n",
	  .problems = { { 7, "local_delivery: 'mbox' is neither maildir nor lmtp" } } },
	{ .label = "config: local_delivery lmtp without target",
	  .text = BASE "local_delivery lmtp\n",
	  .problems = { { 7, "local_delivery: expected 2 values, got 1" } } },
	{ .label = "config: domains folded, deduplicated",
	  .text = BASE_NODOMAINS "domains Example.TEST xn--bcher-kva.example example.test "
	      "other.test xn--BCHER-kva.example\n", .check = check_domains },
	{ .label = "config: domains as U-labels",
	  .text = BASE_NODOMAINS "domains Example.TEST b\xc3\xbc" "cher.example example.test "
	      "other.test xn--BCHER-kva.example\n", .check = check_domains },
	{ .label = "config: every other key",
	  .text = BASE "postmaster admin@example.test\naliases aliases\ndns_server [::1]:5353\n"
	      "srs_secret 0123456789abcdef\nsrs_secret fedcba9876543210-old\nuser chamois\n"
	      "remote_port 2525\nmax_recipients 50\nmax_connections 10\n"
	      "max_connections_per_address 2\nmax_errors 3\nworker_threads 4\n"
	      "shutdown_grace 5s\nforward_rcpt_budget 90\nforward_data_budget 1h\n"
	      "smtp_timeout 2m\n", .check = check_everything },
	/* durations: 90s, 30m, 4h, 5d, 2w, a bare number */
	{ .label = "duration: 90s", .text = BASE "queue_lifetime 90s\n", .queue_lifetime = 90 },
	{ .label = "duration: 30m", .text = BASE "queue_lifetime 30m\n", .queue_lifetime = 1800 },
	{ .label = "duration: 4h", .text = BASE "queue_lifetime 4h\n", .queue_lifetime = 14400 },
	{ .label = "duration: 5d", .text = BASE "queue_lifetime 5d\n", .queue_lifetime = 432000 },
	{ .label = "duration: 2w", .text = BASE "queue_lifetime 2w\n", .queue_lifetime = 1209600 },
	{ .label = "duration: bare seconds", .text = BASE "queue_lifetime 120\n",
	  .queue_lifetime = 120 },
	{ .label = "duration: the maximum", .text = BASE "smtp_timeout 1h\n", .smtp_timeout = 3600 },
	/* sizes */
	{ .label = "size: k", .text = BASE "max_message_size 512k\n", .max_message_size = 524288 },
	{ .label = "size: m", .text = BASE "max_message_size 10m\n", .max_message_size = 10485760 },
	{ .label = "size: M", .text = BASE "max_message_size 10M\n", .max_message_size = 10485760 },
	{ .label = "size: g", .text = BASE "max_message_size 1g\n",
	  .max_message_size = 1073741824 },
	{ .label = "size: bytes, the minimum", .text = BASE "max_message_size 1024\n",
	  .max_message_size = 1024 },
	/* bad lines */
	{ .label = "bad: unknown key", .text = BASE "colour blue\n",
	  .problems = { { 7, "unknown key 'colour'" } } },
	{ .label = "bad: relay_host without a port", .text = BASE "relay_host smtp.example\n",
	  .problems = { { 7, "relay_host: 'smtp.example' is not HOST:PORT (a name or an "
	      "address; IPv6 as [::1]:PORT)" } } },
	{ .label = "bad: relay_host with port 0", .text = BASE "relay_host [::1]:0\n",
	  .problems = { { 7, "relay_host: '[::1]:0' is not HOST:PORT (a name or an "
	      "address; IPv6 as [::1]:PORT)" } } },
	{ .label = "bad: relay_auth without relay_host",
	  .text = BASE "relay_auth /nonexistent/relay_auth\n",
	  .problems = { { 7, "relay_auth needs relay_host" } } },
	{ .label = "bad: route with one word", .text = BASE "route example.org\n",
	  .problems = { { 7, "route: expected 2 values, got 1" } } },
	{ .label = "bad: route twice for a domain",
	  .text = BASE "route Example.ORG 10.8.0.2:25\nroute example.org h.test:25\n",
	  .problems = { { 8, "route: example.org has a route already" } } },
	{ .label = "bad: route to a local domain",
	  .text = BASE "route example.test 10.8.0.2:25\n",
	  .problems = { { 7, "route: example.test is a local domain" } } },
	{ .label = "bad: outbound_address not an address",
	  .text = BASE "outbound_address eth0\n",
	  .problems = { { 7, "outbound_address: 'eth0' is not an IPv4 or IPv6 address" } } },
	{ .label = "bad: outbound_family", .text = BASE "outbound_family ip4\n",
	  .problems = { { 7, "outbound_family: 'ip4' is not any, ipv4 or ipv6" } } },
	{ .label = "bad: key case matters", .text = BASE "Max_Recipients 5\n",
	  .problems = { { 7, "unknown key 'Max_Recipients'" } } },
	{ .label = "bad: duplicate key", .text = BASE "max_errors 5\ndomains other.test\n",
	  .problems = { { 8, "'domains' is set twice" } } },
	{ .label = "bad: a bad value still counts as set",
	  .text = BASE "max_recipients many\nmax_recipients 5\n",
	  .problems = { { 7, "max_recipients: 'many' is not a number from 1 to 100000" },
	      { 8, "'max_recipients' is set twice" } } },
	{ .label = "bad: number not a number", .text = BASE "max_recipients abc\n",
	  .problems = { { 7, "max_recipients: 'abc' is not a number from 1 to 100000" } } },
	{ .label = "bad: number zero", .text = BASE "max_recipients 0\n",
	  .problems = { { 7, "max_recipients: '0' is not a number from 1 to 100000" } } },
	{ .label = "bad: number over the maximum", .text = BASE "max_recipients 100001\n",
	  .problems = { { 7, "max_recipients: '100001' is not a number from 1 to 100000" } } },
	{ .label = "bad: number with a suffix", .text = BASE "max_recipients 10k\n",
	  .problems = { { 7, "max_recipients: '10k' is not a number from 1 to 100000" } } },
	{ .label = "bad: number negative", .text = BASE "remote_port -25\n",
	  .problems = { { 7, "remote_port: '-25' is not a number from 1 to 65535" } } },
	{ .label = "bad: number overflows", .text = BASE "remote_port 99999999999999999999999\n",
	  .problems = { { 7, "remote_port: '99999999999999999999999' is not a number "
	      "from 1 to 65535" } } },
	{ .label = "bad: number, two words", .text = BASE "max_errors 1 2\n",
	  .problems = { { 7, "max_errors: expected 1 value, got 2" } } },
	{ .label = "bad: size suffix", .text = BASE "max_message_size 10x\n",
	  .problems = { { 7, "max_message_size: '10x' is not a number from 1024 to "
	      "1099511627776" } } },
	{ .label = "bad: size two-letter suffix", .text = BASE "max_message_size 10kb\n",
	  .problems = { { 7, "max_message_size: '10kb' is not a number from 1024 to "
	      "1099511627776" } } },
	{ .label = "bad: size under the minimum", .text = BASE "max_message_size 1000\n",
	  .problems = { { 7, "max_message_size: '1000' is not a number from 1024 to "
	      "1099511627776" } } },
	{ .label = "bad: duration unit", .text = BASE "queue_lifetime 5y\n",
	  .problems = { { 7, "queue_lifetime: '5y' is not a duration from 1s to 31536000s "
	      "(like 90s, 30m, 4h, 5d)" } } },
	{ .label = "bad: duration under the minimum", .text = BASE "queue_lifetime 0s\n",
	  .problems = { { 7, "queue_lifetime: '0s' is not a duration from 1s to 31536000s "
	      "(like 90s, 30m, 4h, 5d)" } } },
	{ .label = "bad: duration over the maximum", .text = BASE "smtp_timeout 2h\n",
	  .problems = { { 7, "smtp_timeout: '2h' is not a duration from 1s to 3600s "
	      "(like 90s, 30m, 4h, 5d)" } } },
	{ .label = "bad: duration ms", .text = BASE "smtp_timeout 10ms\n",
	  .problems = { { 7, "smtp_timeout: '10ms' is not a duration from 1s to 3600s "
	      "(like 90s, 30m, 4h, 5d)" } } },
	{ .label = "bad: duration unit only", .text = BASE "smtp_timeout m\n",
	  .problems = { { 7, "smtp_timeout: 'm' is not a duration from 1s to 3600s "
	      "(like 90s, 30m, 4h, 5d)" } } },
	{ .label = "bad: duration negative", .text = BASE "smtp_timeout -5\n",
	  .problems = { { 7, "smtp_timeout: '-5' is not a duration from 1s to 3600s "
	      "(like 90s, 30m, 4h, 5d)" } } },
	{ .label = "bad: listen role", .text = BASE "listen smtp 127.0.0.1:25\n",
	  .problems = { { 7, "listen: unknown role 'smtp' (mx, submission or submissions)" } } },
	{ .label = "bad: listen role case", .text = BASE "listen MX 127.0.0.1:25\n",
	  .problems = { { 7, "listen: unknown role 'MX' (mx, submission or submissions)" } } },
	{ .label = "bad: listen one word", .text = BASE "listen mx\n",
	  .problems = { { 7, "listen: expected 2 values, got 1" } } },
	{ .label = "bad: listen without a port", .text = BASE "listen mx 127.0.0.1\n",
	  .problems = { { 7, "listen: '127.0.0.1' is not ADDRESS:PORT (IPv6 as [::1]:PORT)" } } },
	{ .label = "bad: listen empty port", .text = BASE "listen mx 127.0.0.1:\n",
	  .problems = { { 7, "listen: '127.0.0.1:' is not ADDRESS:PORT (IPv6 as [::1]:PORT)" } } },
	{ .label = "bad: listen port over 65535", .text = BASE "listen mx 127.0.0.1:65536\n",
	  .problems = { { 7, "listen: '127.0.0.1:65536' is not ADDRESS:PORT (IPv6 as "
	      "[::1]:PORT)" } } },
	{ .label = "bad: listen port not a number", .text = BASE "listen mx 127.0.0.1:smtp\n",
	  .problems = { { 7, "listen: '127.0.0.1:smtp' is not ADDRESS:PORT (IPv6 as "
	      "[::1]:PORT)" } } },
	{ .label = "bad: listen host name", .text = BASE "listen mx localhost:25\n",
	  .problems = { { 7, "listen: 'localhost:25' is not ADDRESS:PORT (IPv6 as [::1]:PORT)" } } },
	{ .label = "bad: listen IPv6 without brackets", .text = BASE "listen mx ::1:25\n",
	  .problems = { { 7, "listen: '::1:25' is not ADDRESS:PORT (IPv6 as [::1]:PORT)" } } },
	{ .label = "bad: listen IPv6 without the colon", .text = BASE "listen mx [::1]25\n",
	  .problems = { { 7, "listen: '[::1]25' is not ADDRESS:PORT (IPv6 as [::1]:PORT)" } } },
	{ .label = "bad: listen IPv6 without a port", .text = BASE "listen mx [::1]\n",
	  .problems = { { 7, "listen: '[::1]' is not ADDRESS:PORT (IPv6 as [::1]:PORT)" } } },
	{ .label = "bad: listen IPv4 in brackets", .text = BASE "listen mx [127.0.0.1]:25\n",
	  .problems = { { 7, "listen: '[127.0.0.1]:25' is not ADDRESS:PORT (IPv6 as "
	      "[::1]:PORT)" } } },
	{ .label = "bad: dns_server", .text = BASE "dns_server 192.0.2.53\n",
	  .problems = { { 7, "dns_server: '192.0.2.53' is not ADDRESS:PORT" } } },
	{ .label = "bad: host name", .text = "hostname -mx.example.test\n" BASE_NOHOST,
	  .problems = { { 1, "hostname: '-mx.example.test' is not a valid host name" } } },
	{ .label = "bad: host name with a trailing dot", .text = "hostname mx.example.test.\n"
	      BASE_NOHOST,
	  .problems = { { 1, "hostname: 'mx.example.test.' is not a valid host name" } } },
	{ .label = "bad: domain", .text = BASE_NODOMAINS "domains example.test example..test\n",
	  .problems = { { 6, "domains: 'example..test' is not a valid domain" } } },
	{ .label = "bad: domains without a value", .text = BASE_NODOMAINS "domains\n",
	  .problems = { { 6, "domains: missing value" } } },
	{ .label = "bad: postmaster", .text = BASE "postmaster alice\n",
	  .problems = { { 7, "postmaster: 'alice' is not a valid address" } } },
	{ .label = "bad: short SRS secret", .text = BASE "srs_secret short\n",
	  .problems = { { 7, "srs_secret: a secret needs at least 16 characters" } } },
	{ .label = "bad: NUL byte", .text = BASE "user cha\0mois\n", .len = sizeof(BASE) + 13,
	  .problems = { { 7, "NUL byte in line" } } },
	{ .label = "bad: several problems, each on its line",
	  .text = BASE "colour blue\n\n# fine\nmax_errors 0\nlisten mx nowhere\n",
	  .problems = { { 7, "unknown key 'colour'" },
	      { 10, "max_errors: '0' is not a number from 1 to 1000" },
	      { 11, "listen: 'nowhere' is not ADDRESS:PORT (IPv6 as [::1]:PORT)" } } },
	/* what only the whole file tells: reported at its last line */
	{ .label = "missing: everything, empty file", .text = "",
	  .problems = { { 1, "missing required key 'listen'" },
	      { 1, "missing required key 'domains'" },
	      { 1, "missing required key 'mailboxes'" },
	      { 1, "missing required key 'maildir_root'" },
	      { 1, "missing required key 'queue_dir'" } } },
	{ .label = "missing: everything, comments only", .text = "# a\n\n# b\n",
	  .problems = { { 3, "missing required key 'listen'" },
	      { 3, "missing required key 'domains'" },
	      { 3, "missing required key 'mailboxes'" },
	      { 3, "missing required key 'maildir_root'" },
	      { 3, "missing required key 'queue_dir'" } } },
	{ .label = "missing: listen", .text = L_HOST L_DOMAINS L_MAILBOXES L_MAILDIR L_QUEUE,
	  .problems = { { 5, "missing required key 'listen'" } } },
	{ .label = "missing: domains", .text = BASE_NODOMAINS,
	  .problems = { { 5, "missing required key 'domains'" } } },
	{ .label = "missing: mailboxes", .text = L_HOST L_LISTEN L_DOMAINS L_MAILDIR L_QUEUE,
	  .problems = { { 5, "missing required key 'mailboxes'" } } },
	{ .label = "missing: maildir_root", .text = L_HOST L_LISTEN L_DOMAINS L_MAILBOXES L_QUEUE,
	  .problems = { { 5, "missing required key 'maildir_root'" } } },
	{ .label = "missing: queue_dir", .text = L_HOST L_LISTEN L_DOMAINS L_MAILBOXES L_MAILDIR,
	  .problems = { { 5, "missing required key 'queue_dir'" } } },
	{ .label = "missing: listen, when the only listen line is bad",
	  .text = L_HOST "listen mx nowhere\n" L_DOMAINS L_MAILBOXES L_MAILDIR L_QUEUE,
	  .problems = { { 2, "listen: 'nowhere' is not ADDRESS:PORT (IPv6 as [::1]:PORT)" },
	      { 6, "missing required key 'listen'" } } },
	{ .label = "missing: submission without TLS and sasl_db",
	  .text = BASE "listen submission 127.0.0.1:587\n",
	  .problems = { { 7, "a submission role needs tls_cert and tls_key" },
	      { 7, "a submission role needs sasl_db" } } },
	{ .label = "missing: submissions without sasl_db",
	  .text = BASE "listen submissions 127.0.0.1:465\ntls_cert c.pem\ntls_key k.pem\n# end\n",
	  .problems = { { 10, "a submission role needs sasl_db" } } },
	{ .label = "missing: submission without TLS",
	  .text = BASE "listen submission 127.0.0.1:587\nsasl_db sasldb2\n",
	  .problems = { { 8, "a submission role needs tls_cert and tls_key" } } },
	{ .label = "missing: tls_key", .text = BASE "tls_cert cert.pem\n",
	  .problems = { { 7, "tls_cert and tls_key go together" } } },
};

static void
run_conf_case(void **state)
{
	const struct conf_case *c = *state;
	struct problems got = { .n = 0 };
	struct config *cfg;
	size_t nwant = 0;
	char *dir, *path;

	UNIT_BUG(c);
	dir = scratch_dir();
	path = write_file(dir, "chamois.conf", c->text, c->len ? c->len : strlen(c->text));
	cfg = config_load(path, collect, &got);
	while (nwant < nitems(c->problems) && c->problems[nwant].line)
		nwant++;
	if (got.n != nwant) {
		problems_print(&got);
		fail_msg("%zu problems, want %zu", got.n, nwant);
	}
	for (size_t i = 0; i < nwant; i++) {
		char *want;

		assert_true(asprintf(&want, "%s:%d: %s", path, c->problems[i].line,
		    c->problems[i].msg) > 0);
		assert_string_equal(got.line[i], want);
		free(want);
	}
	if (nwant > 0)
		assert_null(cfg);
	else {
		assert_non_null(cfg);
		assert_string_equal(cfg->path, path);
		if (c->check)
			c->check(cfg, dir);
		if (c->queue_lifetime)
			assert_int_equal(cfg->queue_lifetime, c->queue_lifetime);
		if (c->smtp_timeout)
			assert_int_equal(cfg->smtp_timeout, c->smtp_timeout);
		if (c->max_message_size)
			assert_int_equal(cfg->max_message_size, c->max_message_size);
	}
	config_free(cfg);
	problems_free(&got);
	free(path);
	scratch_remove(dir);
}

/* a file that cannot be read: "FILE: message", no line */
static void
test_config_unreadable(void **state)
{
	struct problems got = { .n = 0 };
	char *dir = scratch_dir(), *path, *want;

	(void)state;
	assert_true(asprintf(&path, "%s/none.conf", dir) > 0);
	assert_null(config_load(path, collect, &got));
	assert_int_equal(got.n, 1);
	assert_true(asprintf(&want, "%s: cannot open: %s", path, strerror(ENOENT)) > 0);
	assert_string_equal(got.line[0], want);
	free(want);
	free(path);
	problems_free(&got);
	scratch_remove(dir);
}

/* config_parse_duration and config_parse_hostport directly */
static void
test_config_parsers(void **state)
{
	static const struct { const char *in; bool ok; unsigned secs; } dur[] = {
		{ "90s", true, 90 }, { "30m", true, 1800 }, { "4h", true, 14400 },
		{ "5d", true, 432000 }, { "1w", true, 604800 }, { "0", true, 0 },
		{ "17", true, 17 }, { "", false, 0 }, { "s", false, 0 },
		{ "5 d", false, 0 }, { "5D", false, 0 }, { "5dd", false, 0 },
		{ "4294967295", true, 4294967295u }, { "4294967296", false, 0 },
		{ "49711d", false, 0 }, { "-1", false, 0 },
	};
	static const struct { const char *in; bool ok; int family; unsigned port; } hp[] = {
		{ "127.0.0.1:25", true, AF_INET, 25 }, { "0.0.0.0:0", true, AF_INET, 0 },
		{ "[::1]:2525", true, AF_INET6, 2525 }, { "[::]:25", true, AF_INET6, 25 },
		{ "[2001:db8::1]:587", true, AF_INET6, 587 }, { "127.0.0.1", false, 0, 0 },
		{ "::1:25", false, 0, 0 }, { "[::1]:", false, 0, 0 }, { ":25", false, 0, 0 },
		{ "[]:25", false, 0, 0 }, { "1.2.3.4:65536", false, 0, 0 },
		{ "1.2.3.4:25 ", false, 0, 0 }, { "[::1:25", false, 0, 0 },
	};
	struct sockaddr_storage ss;
	socklen_t len;
	unsigned secs;

	(void)state;
	for (size_t i = 0; i < nitems(dur); i++) {
		secs = 12345;
		if (config_parse_duration(dur[i].in, &secs) != dur[i].ok)
			fail_msg("duration '%s': want %s", dur[i].in, dur[i].ok ? "ok" : "error");
		if (dur[i].ok)
			assert_int_equal(secs, dur[i].secs);
	}
	for (size_t i = 0; i < nitems(hp); i++) {
		if (config_parse_hostport(hp[i].in, &ss, &len) != hp[i].ok)
			fail_msg("hostport '%s': want %s", hp[i].in, hp[i].ok ? "ok" : "error");
		if (!hp[i].ok)
			continue;
		assert_int_equal(ss.ss_family, hp[i].family);
		if (hp[i].family == AF_INET) {
			assert_int_equal(len, sizeof(struct sockaddr_in));
			assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), hp[i].port);
		} else {
			assert_int_equal(len, sizeof(struct sockaddr_in6));
			assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), hp[i].port);
		}
	}
}

/* tables_load and tables_resolve */

struct want_resolve {
	const char *addr;	/* as a client sends it; NULL ends the list */
	bool found;
	const char *mailboxes[5];
	const char *external;
};

struct want_tproblem {
	char file;		/* 'c' the config, 'm' mailboxes, 'a' aliases; 0 ends */
	int line;
	const char *msg;
};

struct tables_case {
	const char *label;
	const char *domains;	/* NULL: "example.test other.test" */
	const char *conf_extra;	/* lines after the aliases line (8 on) */
	const char *mailboxes;	/* NULL: no file */
	const char *aliases;	/* NULL: no aliases key */
	struct want_tproblem problems[6];
	struct want_resolve resolve[32];
	const char *bug;
};

/*
 * The config of every table case: lines 1-6 are fixed, 7 is
 * "aliases aliases" (always there so line numbers do not move; the file
 * is written empty when the case has none), conf_extra starts at line 8.
 */
#define TABLE_MAILBOXES							\
	"# local users\n"			/* 1 */			\
	"alice@example.test\n"			/* 2 */			\
	"Bob@Example.TEST\n"			/* 3 */			\
	"carol+list@example.test\n"		/* 4 */			\
	"\n"					/* 5 */			\
	"dave@other.test   # the other domain\n" /* 6 */		\
	"  erin@example.test\n"			/* 7 */

#define ALICE		"alice@example.test"
#define BOB		"Bob@Example.TEST"
#define CAROL_LIST	"carol+list@example.test"
#define DAVE		"dave@other.test"
#define ERIN		"erin@example.test"

static const struct tables_case tables_cases[] = {
	{ .label = "tables: look-ups",
	  .mailboxes = TABLE_MAILBOXES,
	  .aliases =
	      "team@example.test: alice@example.test, bob@example.test, ALICE@example.test\n"
	      "chain@example.test: team@example.test\n"
	      "fwd@example.test: someone@remote.example\n"
	      "both@example.test: alice@example.test,someone@remote.example\n"
	      "erin@example.test: erin@example.test, dave@other.test\n"
	      "samefwd@example.test: x@remote.example, X@REMOTE.EXAMPLE\n"
	      "# a comment\n"
	      "list@example.test: team@example.test, erin@example.test\n"
	      "tagged@example.test: alice+tag@example.test\n",
	  .resolve = {
	      { "alice@example.test", true, { ALICE } },
	      { "ALICE@EXAMPLE.TEST", true, { ALICE } },
	      { "\"alice\"@example.test", true, { ALICE } },
	      { "bob@example.test", true, { BOB } },
	      { "alice+news@example.test", true, { ALICE } },
	      { "Alice+News@Example.Test", true, { ALICE } },
	      { "alice+a+b@example.test", true, { ALICE } },
	      { "carol+list@example.test", true, { CAROL_LIST } },
	      { "Carol+List@example.test", true, { CAROL_LIST } },
	      { "carol@example.test", false },
	      { "carol+other@example.test", false },
	      { "nobody@example.test", false },
	      { "nobody+alice@example.test", false },
	      { "alice@remote.example", false },
	      { "alice@other.test", false },
	      { "dave@OTHER.TEST", true, { DAVE } },
	      { "dave@[192.0.2.1]", false },
	      { "postmaster@example.test", true, { ALICE } },
	      { "postmaster@other.test", true, { ALICE } },
	      { "POSTMASTER@Example.Test", true, { ALICE } },
	      { "postmaster", true, { ALICE } },
	      { "postmaster@remote.example", false },
	      { "team@example.test", true, { ALICE, BOB } },
	      { "team+x@example.test", true, { ALICE, BOB } },
	      { "chain@example.test", true, { ALICE, BOB } },
	      { "fwd@example.test", true, { NULL }, "someone@remote.example" },
	      { "both@example.test", true, { ALICE }, "someone@remote.example" },
	      { "erin@example.test", true, { ERIN, DAVE } },
	      { "samefwd@example.test", true, { NULL }, "x@remote.example" },
	      { "list@example.test", true, { ALICE, BOB, ERIN, DAVE } },
	      { "tagged@example.test", true, { ALICE } },
	  } },
	{ .label = "tables: catch-all below every other entry",
	  .mailboxes = TABLE_MAILBOXES,
	  .aliases = "@Example.TEST: erin@example.test\n"
	      "team@example.test: alice@example.test, bob@example.test\n"
	      "@other.test: someone@remote.example\n",
	  .resolve = {
	      { "alice@example.test", true, { ALICE } },
	      { "alice+news@example.test", true, { ALICE } },
	      { "team@example.test", true, { ALICE, BOB } },
	      { "postmaster@example.test", true, { ALICE } },
	      { "nobody@example.test", true, { ERIN } },
	      { "Nobody+x@EXAMPLE.test", true, { ERIN } },
	      { "carol@example.test", true, { ERIN } },
	      { "dave@other.test", true, { DAVE } },
	      { "nobody@other.test", true, { NULL }, "someone@remote.example" },
	      { "nobody@remote.example", false },
	  } },
	{ .label = "tables: postmaster key", .conf_extra = "postmaster bob@example.test\n",
	  .mailboxes = TABLE_MAILBOXES, .aliases = "",
	  .resolve = {
	      { "postmaster@example.test", true, { BOB } },
	      { "postmaster@other.test", true, { BOB } },
	      { "postmaster", true, { BOB } },
	      { "Postmaster", true, { BOB } },
	  } },
	{ .label = "tables: postmaster key to an alias", .conf_extra = "postmaster staff@other.test\n",
	  .mailboxes = TABLE_MAILBOXES, .aliases = "staff@other.test: dave@other.test, bob@example.test\n",
	  .resolve = {
	      { "postmaster", true, { DAVE, BOB } },
	      { "postmaster@example.test", true, { DAVE, BOB } },
	  } },
	{ .label = "tables: postmaster key outside", .conf_extra = "postmaster admin@remote.example\n",
	  .mailboxes = TABLE_MAILBOXES, .aliases = "",
	  .resolve = {
	      { "postmaster@example.test", true, { NULL }, "admin@remote.example" },
	      { "postmaster", true, { NULL }, "admin@remote.example" },
	  } },
	{ .label = "tables: postmaster in the tables wins",
	  .mailboxes = "alice@example.test\npostmaster@other.test\n",
	  .aliases = "postmaster@example.test: bob@example.test\nbob@example.test: alice@example.test\n",
	  .resolve = {
	      { "postmaster@example.test", true, { ALICE } },
	      { "postmaster@other.test", true, { "postmaster@other.test" } },
	      { "postmaster", true, { ALICE } },
	  } },
	{ .label = "tables: IDNA domain by U-label and A-label",
	  .domains = "xn--bcher-kva.example",
	  .mailboxes = "user@b\xc3\xbc" "cher.example\nJ\xc3\xb6rg@xn--bcher-kva.example\n",
	  .aliases = "",
	  .resolve = {
	      { "user@xn--bcher-kva.example", true, { "user@b\xc3\xbc" "cher.example" } },
	      { "user@b\xc3\xbc" "cher.example", true, { "user@b\xc3\xbc" "cher.example" } },
	      { "USER@B\xc3\xbc" "cher.EXAMPLE", true, { "user@b\xc3\xbc" "cher.example" } },
	      { "USER@XN--BCHER-KVA.EXAMPLE", true, { "user@b\xc3\xbc" "cher.example" } },
	      { "j\xc3\xb6rg@b\xc3\xbc" "cher.example", true,
	        { "J\xc3\xb6rg@xn--bcher-kva.example" } },
	      { "user@bucher.example", false },
	      { "postmaster@b\xc3\xbc" "cher.example", true, { "user@b\xc3\xbc" "cher.example" } },
	  } },
	{ .label = "tables: IDNA domain configured as a U-label",
	  .domains = "b\xc3\xbc" "cher.example",
	  .mailboxes = "user@b\xc3\xbc" "cher.example\n", .aliases = "",
	  .resolve = {
	      { "user@xn--bcher-kva.example", true, { "user@b\xc3\xbc" "cher.example" } },
	      { "user@b\xc3\xbc" "cher.example", true, { "user@b\xc3\xbc" "cher.example" } },
	  } },
	/* problems */
	{ .label = "tables: cycle of two", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "a@example.test: b@example.test\nb@example.test: a@example.test\n",
	  .problems = {
	      { 'a', 1, "alias 'a@example.test': alias cycle through 'b@example.test'" },
	      { 'a', 2, "alias 'b@example.test': alias cycle through 'a@example.test'" } } },
	{ .label = "tables: alias to itself", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "# loops\nloop@example.test: alice@example.test, Loop@example.test\n",
	  .problems = {
	      { 'a', 2, "alias 'loop@example.test': alias cycle through 'loop@example.test'" } } },
	{ .label = "tables: cycle of three, and an alias into it", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "a@example.test: b@example.test\nb@example.test: c@example.test\n"
	      "c@example.test: a@example.test\nx@example.test: alice@example.test, a@example.test\n",
	  .problems = {
	      { 'a', 1, "alias 'a@example.test': alias cycle through 'c@example.test'" },
	      { 'a', 2, "alias 'b@example.test': alias cycle through 'a@example.test'" },
	      { 'a', 3, "alias 'c@example.test': alias cycle through 'b@example.test'" },
	      { 'a', 4, "alias 'x@example.test': alias cycle through 'c@example.test'" } } },
	{ .label = "tables: cycle through +tag", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "a@example.test: b+x@example.test\nb@example.test: a+y@example.test\n",
	  .problems = {
	      { 'a', 1, "alias 'a@example.test': alias cycle through 'b@example.test'" },
	      { 'a', 2, "alias 'b@example.test': alias cycle through 'a@example.test'" } } },
	{ .label = "tables: self-copy is no cycle", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "alice@example.test: alice@example.test, bob@example.test\n"
	      "bob@example.test: bob@example.test, alice@example.test\n"
	      "carol@example.test: alice@example.test\n",
	  .resolve = {
	      { "alice@example.test", true, { ALICE, BOB } },
	      { "bob@example.test", true, { BOB, ALICE } },
	      { "alice+x@example.test", true, { ALICE, BOB } },
	      { "carol@example.test", true, { ALICE, BOB } },
	  } },
	{ .label = "tables: an alias hides the mailbox of the same name",
	  .mailboxes = TABLE_MAILBOXES,
	  .aliases = "bob@example.test: alice@example.test\n",
	  .resolve = {
	      { "bob@example.test", true, { ALICE } },
	      { "Bob+tag@example.test", true, { ALICE } },
	  } },
	{ .label = "tables: two external targets", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "x@example.test: a@remote.example, b@elsewhere.example\n",
	  .problems = {
	      { 'a', 1, "alias 'x@example.test': expands to 2 external targets (at most one "
	        "is allowed)" } } },
	{ .label = "tables: two external targets through aliases", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "f1@example.test: a@remote.example\nf2@example.test: b@remote.example\n"
	      "y@example.test: f1@example.test, f2@example.test, alice@example.test\n",
	  .problems = {
	      { 'a', 3, "alias 'y@example.test': expands to 2 external targets (at most one "
	        "is allowed)" } } },
	{ .label = "tables: alias to postmaster@", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "abuse@example.test: postmaster@example.test\n",
	  .resolve = { { "abuse@example.test", true, { ALICE } } } },
	{ .label = "tables: unknown local target", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "x@example.test: alice@example.test, ghost@example.test\n",
	  .problems = {
	      { 'a', 1, "alias 'x@example.test': target 'ghost@example.test' is neither a "
	        "mailbox nor an alias" } } },
	{ .label = "tables: unknown target in the other local domain", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "\n\nx@example.test: ghost@Other.Test\n",
	  .problems = {
	      { 'a', 3, "alias 'x@example.test': target 'ghost@Other.Test' is neither a "
	        "mailbox nor an alias" } } },
	{ .label = "tables: bad target address", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "x@example.test: not valid\n",
	  .problems = {
	      { 'a', 1, "'not valid' is not a valid address" },
	      { 'a', 1, "alias 'x@example.test' has no target" } } },
	{ .label = "tables: alias without a target", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "x@example.test:  , \n",
	  .problems = { { 'a', 1, "alias 'x@example.test' has no target" } } },
	{ .label = "tables: alias without a colon", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "x@example.test alice@example.test\n",
	  .problems = { { 'a', 1, "expected 'address: target[, target...]'" } } },
	{ .label = "tables: alias outside the local domains", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "x@remote.example: alice@example.test\n",
	  .problems = { { 'a', 1, "alias 'x@remote.example' is not in a local domain" } } },
	{ .label = "tables: alias listed twice", .mailboxes = TABLE_MAILBOXES,
	  .aliases = "x@example.test: alice@example.test\nX@Example.Test: bob@example.test\n",
	  .problems = { { 'a', 2, "alias 'X@Example.Test' is listed twice" } } },
	{ .label = "tables: mailbox outside the local domains",
	  .mailboxes = "alice@example.test\n\n# x\neve@remote.example\n", .aliases = "",
	  .problems = { { 'm', 4, "mailbox 'eve@remote.example' is not in a local domain "
	      "(domains)" } } },
	{ .label = "tables: mailbox listed twice",
	  .mailboxes = "alice@example.test\nALICE@Example.Test\n", .aliases = "",
	  .problems = { { 'm', 2, "mailbox 'ALICE@Example.Test' is listed twice" } } },
	{ .label = "tables: mailbox not an address",
	  .mailboxes = "alice@example.test\nnot an address\nbob@[192.0.2.1]\n", .aliases = "",
	  .problems = { { 'm', 2, "'not an address' is not a valid address" },
	      { 'm', 3, "'bob@[192.0.2.1]' is not a valid address" } } },
	{ .label = "tables: mailbox that cannot name a Maildir",
	  .mailboxes = "alice@example.test\n\"a b\"@example.test\na/b@example.test\n",
	  .aliases = "",
	  .problems = { { 'm', 2, "mailbox '\"a b\"@example.test' cannot name a Maildir (no "
	      "quotes, '/', or leading '.')" },
	      { 'm', 3, "mailbox 'a/b@example.test' cannot name a Maildir (no quotes, '/', or "
	      "leading '.')" } } },
	{ .label = "tables: empty mailboxes", .mailboxes = "# nobody yet\n", .aliases = "",
	  .problems = { { 'c', 4, "mailboxes: the table is empty, so postmaster has nowhere "
	      "to go" } } },
	{ .label = "tables: postmaster key to nothing", .conf_extra = "\npostmaster ghost@example.test\n",
	  .mailboxes = TABLE_MAILBOXES, .aliases = "",
	  .problems = { { 'c', 9, "postmaster: 'ghost@example.test' is neither a mailbox nor "
	      "an alias" } } },
	{ .label = "tables: mailboxes file missing", .mailboxes = NULL, .aliases = "",
	  .problems = { { 'c', 4, "mailboxes: cannot open {DIR}/mailboxes: No such file or "
	      "directory" } } },
};

static void
check_resolve(const struct tables *t, const struct want_resolve *w)
{
	struct mailaddr a;
	struct expansion exp;
	char key[PATH_MAX_OCTETS + 1];
	size_t n = 0;
	bool found;

	if (addr_parse(w->addr, &a, ADDR_F_UTF8 | ADDR_F_NODOMAIN) != ADDR_OK)
		fail_msg("'%s' does not parse", w->addr);
	assert_true(addr_key(&a, key, sizeof(key)));
	memset(&exp, 0x5a, sizeof(exp));
	found = tables_resolve(t, key, &exp);
	if (found != w->found)
		fail_msg("%s (key %s): found %d, want %d", w->addr, key, found, w->found);
	while (n < nitems(w->mailboxes) && w->mailboxes[n])
		n++;
	if (!found) {
		assert_int_equal(exp.nmailboxes, 0);
		assert_null(exp.external);
		expansion_free(&exp);
		return;
	}
	if (exp.nmailboxes != n) {
		for (size_t i = 0; i < exp.nmailboxes; i++)
			print_message("  got mailbox %s\n", exp.mailboxes[i]);
		fail_msg("%s: %zu mailboxes, want %zu", w->addr, exp.nmailboxes, n);
	}
	for (size_t i = 0; i < n; i++)
		assert_string_equal(exp.mailboxes[i], w->mailboxes[i]);
	if (w->external == NULL) {
		if (exp.external)
			fail_msg("%s: external %s, want none", w->addr, exp.external);
	} else {
		assert_non_null(exp.external);
		assert_string_equal(exp.external, w->external);
	}
	expansion_free(&exp);
	assert_int_equal(exp.nmailboxes, 0);
	assert_null(exp.mailboxes);
}

static void
run_tables_case(void **state)
{
	const struct tables_case *c = *state;
	struct problems cp = { .n = 0 }, got = { .n = 0 };
	struct config *cfg;
	struct tables *t;
	char *dir, *conf, *text, *files[3];
	size_t nwant = 0;
	bool matched[MAX_PROBLEMS] = { false };

	UNIT_BUG(c);
	dir = scratch_dir();
	assert_true(asprintf(&text, "%s%s%s%s", L_HOST L_LISTEN "domains ",
	    c->domains ? c->domains : "example.test other.test",
	    "\n" L_MAILBOXES L_MAILDIR L_QUEUE "aliases aliases\n",
	    c->conf_extra ? c->conf_extra : "") > 0);
	conf = write_file(dir, "chamois.conf", text, strlen(text));
	free(text);
	files[0] = conf;
	files[1] = c->mailboxes ? write_file(dir, "mailboxes", c->mailboxes,
	    strlen(c->mailboxes)) : NULL;
	files[2] = write_file(dir, "aliases", c->aliases ? c->aliases : "",
	    c->aliases ? strlen(c->aliases) : 0);
	cfg = config_load(conf, collect, &cp);
	if (cfg == NULL) {
		problems_print(&cp);
		fail_msg("the config does not load");
	}
	t = tables_load(cfg, collect, &got);
	while (nwant < nitems(c->problems) && c->problems[nwant].file)
		nwant++;
	if (got.n != nwant) {
		problems_print(&got);
		fail_msg("%zu problems, want %zu", got.n, nwant);
	}
	/* the aliases are checked in hash order: match the problems as a set */
	for (size_t i = 0; i < nwant; i++) {
		const struct want_tproblem *w = &c->problems[i];
		const char *file = w->file == 'c' ? conf : w->file == 'm' ? "{DIR}/mailboxes" :
		    "{DIR}/aliases";
		char *msg = expand_dir(w->msg, dir), *want, *fname = expand_dir(file, dir);
		size_t j;

		assert_true(asprintf(&want, "%s:%d: %s", fname, w->line, msg) > 0);
		for (j = 0; j < got.n; j++)
			if (!matched[j] && strcmp(got.line[j], want) == 0)
				break;
		if (j == got.n) {
			problems_print(&got);
			fail_msg("no problem \"%s\"", want);
		}
		matched[j] = true;
		free(want);
		free(msg);
		free(fname);
	}
	if (nwant > 0)
		assert_null(t);
	else {
		assert_non_null(t);
		for (size_t i = 0; i < nitems(c->resolve) && c->resolve[i].addr; i++)
			check_resolve(t, &c->resolve[i]);
	}
	tables_free(t);
	config_free(cfg);
	problems_free(&cp);
	problems_free(&got);
	for (size_t i = 0; i < nitems(files); i++)
		free(files[i]);
	scratch_remove(dir);
}

/* the mailbox count, and tables_free(NULL) */
static void
test_tables_count(void **state)
{
	struct problems got = { .n = 0 };
	struct config *cfg;
	struct tables *t;
	char *dir = scratch_dir(), *conf, *mb;

	(void)state;
	conf = write_file(dir, "chamois.conf", BASE, strlen(BASE));
	mb = write_file(dir, "mailboxes", TABLE_MAILBOXES, strlen(TABLE_MAILBOXES));
	cfg = config_load(conf, collect, &got);
	assert_non_null(cfg);
	/* dave@other.test is outside "domains example.test" here */
	assert_null(tables_load(cfg, collect, &got));
	assert_int_equal(got.n, 1);
	problems_free(&got);
	free(mb);
	mb = write_file(dir, "mailboxes", "a@example.test\nb@example.test\nc@example.test\n", 45);
	t = tables_load(cfg, collect, &got);
	assert_non_null(t);
	assert_int_equal(got.n, 0);
	assert_int_equal(tables_mailbox_count(t), 3);
	tables_free(t);
	tables_free(NULL);
	config_free(cfg);
	config_free(NULL);
	free(mb);
	free(conf);
	scratch_remove(dir);
}

/*
 * holders: the tables keep their config, and each tables_ref is ended by
 * one tables_free (the sanitizer build sees a use after free or a leak)
 */
static void
test_tables_refs(void **state)
{
	struct problems got = { .n = 0 };
	struct config *cfg;
	struct tables *t;
	struct expansion exp;
	char *dir = scratch_dir(), *conf, *mb;

	(void)state;
	conf = write_file(dir, "chamois.conf", BASE, strlen(BASE));
	mb = write_file(dir, "mailboxes", "a@example.test\n", 15);
	cfg = config_load(conf, collect, &got);
	assert_non_null(cfg);
	t = tables_load(cfg, collect, &got);
	assert_non_null(t);
	/* the config's own holder goes first: the tables still hold it */
	config_free(cfg);
	assert_ptr_equal(tables_ref(t), t);
	tables_free(t);
	memset(&exp, 0, sizeof(exp));
	assert_true(tables_resolve(t, "a@example.test", &exp));
	expansion_free(&exp);
	memset(&exp, 0, sizeof(exp));
	assert_false(tables_resolve(t, "a@other.test", &exp));
	tables_free(t);
	problems_free(&got);
	free(mb);
	free(conf);
	scratch_remove(dir);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(conf_cases) + nitems(tables_cases) + 4];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_conf_case, conf_cases);
	UNIT_TEST(tests, n, test_config_unreadable);
	UNIT_TEST(tests, n, test_config_parsers);
	UNIT_ROWS(tests, n, run_tables_case, tables_cases);
	UNIT_TEST(tests, n, test_tables_count);
	UNIT_TEST(tests, n, test_tables_refs);
	for (size_t i = 0; i < n; i++)
		tests[i].teardown_func = scratch_teardown;
	UNIT_RUN(tests, n);
}
