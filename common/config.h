/* config.h - chamois.conf: one parameter table, FILE:LINE errors. */
#ifndef CHAMOIS_CONFIG_H
#define CHAMOIS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum listen_role {
	ROLE_MX,		/* port 25: inbound from the world */
	ROLE_SUBMISSION,	/* port 587: STARTTLS, then AUTH */
	ROLE_SUBMISSIONS,	/* port 465: implicit TLS, then AUTH */
};

struct listen_addr {
	enum listen_role role;
	struct sockaddr_storage ss;
	socklen_t sslen;
	char text[80];		/* as written: "127.0.0.1:25" */
	int line;
};

/* one dkim_key line (chamois.conf(5)) */
struct dkim_key_conf {
	char *domain;		/* lower-case A-label */
	char *selector;
	char *file;		/* absolute */
	int line;
};

/* one route line: mail for domain goes to host:port (chamois.conf(5)) */
struct route_conf {
	char *domain;		/* lower-case A-label */
	char *host;		/* a name, or an address without brackets */
	unsigned port;
	int line;
};

/* one milter line: a content filter (chamois.conf(5), doc/filters.md) */
struct milter_conf {
	char *text;		/* as written */
	struct sockaddr_storage ss;	/* AF_UNIX, AF_INET or AF_INET6 */
	socklen_t sslen;		/* 0 while host is not looked up */
	char *host;		/* HOST:PORT with a name: for /etc/hosts */
	unsigned port;
	int line;
};

enum outbound_family { FAMILY_ANY, FAMILY_IPV4, FAMILY_IPV6 };

struct config {
	char *path;		/* the config file */
	char *dir;		/* its directory, for relative paths */
	char *hostname;
	struct listen_addr *listens;
	size_t nlistens;
	char *tls_cert, *tls_key;
	char **domains;		/* lower-case A-labels */
	size_t ndomains;
	int domains_line;
	char *mailboxes, *aliases;
	int mailboxes_line, aliases_line;
	char *postmaster;
	int postmaster_line;
	char *maildir_root;
	char *queue_dir;
	char *sasl_db;
	char *sasl_dovecot;	/* sasl_backend dovecot SOCKET; NULL: Cyrus */
	/* local_delivery lmtp TARGET (its text NULL: maildir) */
	char *lmtp_text;
	struct sockaddr_storage lmtp_ss;
	socklen_t lmtp_sslen;		/* 0 while lmtp_host is not looked up */
	char *lmtp_host;		/* HOST:PORT with a name: for /etc/hosts */
	unsigned lmtp_port;
	uint64_t max_message_size;
	uint64_t spool_max_size;	/* all bodies' spool files (body.c) */
	unsigned max_recipients;
	char **srs_secrets;
	size_t nsrs_secrets;
	char **dnsbl_zones;		/* dnsbl lines, in file order */
	size_t ndnsbl_zones;
	struct dkim_key_conf *dkim_keys;	/* in file order */
	size_t ndkim_keys;
	unsigned forward_rcpt_budget;	/* seconds */
	unsigned forward_data_budget;
	struct sockaddr_storage dns_server;
	socklen_t dns_server_len;
	char *dns_server_text;
	struct sockaddr_storage metrics_listen;	/* metrics_listen_len 0: off */
	socklen_t metrics_listen_len;
	char *metrics_listen_text;
	unsigned remote_port;
	char *relay_host;		/* NULL: to each domain's MX */
	unsigned relay_port;
	char *relay_auth;		/* the file; its line read at load: */
	char *relay_user, *relay_pass;
	char *tls_ca_file;		/* outbound verification; NULL: the system's */
	struct route_conf *routes;
	size_t nroutes;
	enum outbound_family outbound_family;
	struct sockaddr_storage outbound_addr4, outbound_addr6;	/* family 0: unset */
	unsigned queue_lifetime;
	unsigned delay_warning_time;	/* 0: no delay notices */
	unsigned queue_max_deliveries;	/* remote deliveries at once */
	unsigned queue_max_per_domain;
	unsigned max_messages_per_hour;	/* per logged-in user; 0: no limit */
	char *user;
	/* session limits (chamois.conf(5), "Session limits") */
	unsigned max_connections;
	unsigned max_connections_per_address;
	unsigned max_errors;
	unsigned smtp_timeout;
	unsigned session_timeout;	/* a whole session, seconds */
	unsigned greeting_delay;	/* mx role: wait, and refuse early talkers */
	unsigned shutdown_grace;
	unsigned worker_threads;
	unsigned forward_max_sessions;
	unsigned forward_max_per_domain;
	unsigned forward_max_per_client;
	struct milter_conf *milters;	/* in file order: run in that order */
	size_t nmilters;
	bool milter_default_accept;	/* milter_default_action accept */
	unsigned milter_connect_timeout;	/* seconds */
	unsigned milter_command_timeout;
	unsigned milter_content_timeout;
	bool dmarc_monitor;	/* dmarc_policy monitor: DMARC refuses nothing */
	bool dane;		/* TLSA of MX hosts make TLS required (doc/security.md) */
	bool mta_sts;		/* MTA-STS policies are fetched and applied */
	unsigned testing_mta_sts_port;	/* the policy's HTTPS port: 443 but in tests */
	bool tlsrpt;		/* TLS-RPT counts and daily reports (doc/security.md) */
	char *tlsrpt_rua;	/* our domains' rua address (chamoisctl dns), or NULL */
	char *tlsrpt_submitter;	/* the reports' submitter; NULL: hostname */
	int lines[64];		/* where each key was set, by table row */
	int last_line;
	unsigned refs;		/* holders beyond the first (config_ref) */
};

/* problem reporter: receives "FILE:LINE: message" lines */
typedef void (*config_problem_fn)(void *arg, const char *line);

/*
 * config_load - read and check path; every problem is reported through fn.
 * Returns NULL if there was any.
 */
struct config *config_load(const char *path, config_problem_fn fn, void *arg);
/*
 * config_load_checked - the same, but the config is returned even with
 * problems (their count in *problems), so that chamoisd -n can go on
 * checking what the keys that were read name; NULL only if the file
 * cannot be read.
 */
struct config *config_load_checked(const char *path, config_problem_fn fn,
    void *arg, int *problems);
/*
 * config_ref - one more holder of c (a session, a job, a connection, a
 * module or the tables that keep pointers into it across a SIGHUP); each
 * holder ends with config_free, and the last one frees it.  Event-loop
 * thread only, or a thread that alone holds c (the SIGHUP parse job).
 */
struct config *config_ref(struct config *);
void config_free(struct config *);
/* config_is_local_domain - domain given as a lower-case A-label */
bool config_is_local_domain(const struct config *, const char *domain_key);
/* config_problem - format one "FILE:LINE: message" and hand it to fn */
void config_problem(config_problem_fn fn, void *arg, const char *file, int line,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
const char *config_role_name(enum listen_role);
/* config_line - the line that set key, or the last line of the file */
int config_line(const struct config *, const char *key);
/* config_parse_hostport - "1.2.3.4:25" or "[::1]:25" */
bool config_parse_hostport(const char *, struct sockaddr_storage *, socklen_t *);
/*
 * config_parse_nameport - "HOST:PORT": HOST a host name, an IPv4 address
 * or an IPv6 one in brackets (returned without them)
 */
bool config_parse_nameport(const char *, char *host, size_t hostsize,
    unsigned *port);
/*
 * config_read_relay_auth - chamoisd only (the other programs never read
 * the secret): the login of relay_auth into relay_user and relay_pass;
 * problems go to fn as FILE:LINE, their number is returned
 */
int config_read_relay_auth(struct config *, config_problem_fn fn, void *arg);
/* config_route - the route of domain (a lower-case A-label), or NULL */
const struct route_conf *config_route(const struct config *, const char *domain);
/* config_dkim_selector_ok - a DKIM selector: DNS labels joined by '.' */
bool config_dkim_selector_ok(const char *selector);
/* config_parse_duration - "90s", "30m", "4h", "5d" (a bare number is seconds) */
bool config_parse_duration(const char *, unsigned *seconds);

#endif
