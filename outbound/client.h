/*
 * client.h - the outbound SMTP client, shared by forward/ (synchronous
 * proxy) and queue/ (delivery).
 *
 * One client is one SMTP session with one of a list of targets (the MX
 * addresses, in order).  It connects, reads the greeting, says EHLO (HELO
 * if refused), upgrades with STARTTLS when offered, and reports SC_READY
 * with the capabilities learnt.  Commands may then be issued in any
 * number; they are pipelined when the server offers PIPELINING, and each
 * reply comes back, in order, as SC_REPLY naming its command.
 */
#ifndef CHAMOIS_CLIENT_H
#define CHAMOIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <openssl/ssl.h>

#include "resolver.h"

struct event_base;
struct smtp_client;

#define SMTP_REPLY_TEXT_MAX	512	/* bounded, RFC 5321 4.5.3.1.5 */
#define SMTP_REPLY_MAX		4096	/* a multi-line reply in all */

struct smtp_reply {
	int code;			/* 200..599 */
	char esc[16];			/* "5.1.1", or "" when the server gave none */
	char text[SMTP_REPLY_TEXT_MAX];	/* text after code and esc, lines joined */
};

enum smtp_parse {
	SMTP_PARSE_MORE,	/* a continuation line: more to come */
	SMTP_PARSE_DONE,	/* the reply is complete */
	SMTP_PARSE_ERROR,	/* not an SMTP reply */
};

/*
 * smtp_reply_parse - feed one reply line (without CRLF) to r; r must be
 * zeroed before the first line.  Pure, for unit tests and the client.
 */
enum smtp_parse smtp_reply_parse(struct smtp_reply *r, const char *line, size_t len);

/* what a remote reply means for the mail it answers (RFC 5321 4.2.1) */
enum smtp_class {
	SMTP_CLASS_OK,		/* 2xx: taken */
	SMTP_CLASS_TEMP,	/* 4xx: not now; the sender tries again */
	SMTP_CLASS_PERM,	/* 5xx: never */
	SMTP_CLASS_ODD,		/* any other (a 3xx but DATA's 354, no reply):
				 * the server is off the protocol; the mail is
				 * treated as TEMP */
};

/*
 * smtp_reply_class - the class of r, by its first digit.  The one rule for
 * what a remote reply means: forward/ answers its client by it, queue/
 * decides delivered / failed / deferred by it.
 */
enum smtp_class smtp_reply_class(const struct smtp_reply *r);
/*
 * smtp_reply_status - the RFC 3463 status of r into out: the enhanced code
 * the server gave when its class is the reply's, else "2.0.0", "4.0.0"
 * or "5.0.0" of smtp_reply_class (SMTP_CLASS_ODD: "4.0.0").  Pure.
 */
void smtp_reply_status(const struct smtp_reply *r, char *out, size_t size);

enum smtp_cmd {
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_DOT,
	SMTP_CMD_RSET,
};

enum smtp_client_event {
	SC_READY,	/* session ready for MAIL; caps are known */
	SC_REPLY,	/* the reply to one command (cmd, reply) */
	SC_FAILED,	/* the session is over (why, reply) */
	SC_DRAINED,	/* output below the low watermark: send more body */
};

enum smtp_fail {
	SMTP_FAIL_NONE,
	SMTP_FAIL_UNREACHABLE,	/* no target took a connection and said hello */
	SMTP_FAIL_LOST,	/* the connection broke */
	SMTP_FAIL_TIMEOUT,	/* a step took longer than step_timeout */
	SMTP_FAIL_PROTOCOL,	/* a reply that is not SMTP, or unexpected */
	SMTP_FAIL_CLOSING,	/* the server said 421 */
	SMTP_FAIL_POLICY,	/* a required step failed (no STARTTLS, a bad
				 * certificate, AUTH refused; or no DANE host
				 * met its policy): why in
				 * smtp_client_last_error */
};

struct smtp_caps {
	bool esmtp, pipelining, size, eightbitmime, smtputf8, starttls, tls;
	bool dsn;			/* DSN (RFC 3461) */
	uint64_t size_max;		/* 0 if SIZE had no number */
	char tls_info[96];		/* "TLSv1.3 TLS_AES_256_GCM_SHA384" */
	char host[256];			/* the target's host name */
	char addr[64];			/* its address, "[1.2.3.4]:25" */
	char auth[128];			/* EHLO's AUTH mechanisms, "" if none */
};

/*
 * The client side of SMTP AUTH (RFC 4954), supplied by the owner (the
 * libsasl2 wrapper, submission/sasl_cyrus.c): every call answers later,
 * on the loop, through done (never from inside the call), so that the
 * SASL work may run on a worker thread.  Texts are base64 as on the wire.
 */
enum smtp_auth_result {
	SMTP_AUTH_NEXT,		/* send out (the first time, after AUTH mech) */
	SMTP_AUTH_NOMECH,	/* no mechanism both sides have */
	SMTP_AUTH_FAIL,		/* the exchange failed here; out says why */
};
typedef void smtp_auth_done_fn(void *arg, enum smtp_auth_result,
    const char *mech, const char *out);
struct smtp_auth_ops {
	/*
	 * start - an exchange as user with password pass to host, which
	 * offers mechs: done gets the mechanism chosen and the initial
	 * response (NULL: none, "": an empty one); returns the exchange
	 */
	void *(*start)(const char *user, const char *pass, const char *host,
	    const char *mechs, smtp_auth_done_fn *done, void *arg);
	/* step - the server's 334 challenge: done gets the response */
	void (*step)(void *x, const char *challenge, smtp_auth_done_fn *done,
	    void *arg);
	/* end - free x; no done is called after this */
	void (*end)(void *x);
};

typedef void (*smtp_client_cb)(void *arg, enum smtp_client_event, enum smtp_cmd,
    enum smtp_fail, const struct smtp_reply *);

struct smtp_client_params {
	struct event_base *base;
	const char *helo;		/* our host name */
	SSL_CTX *tls;			/* client context; NULL: never STARTTLS */
	const struct mx_target *targets;	/* copied */
	size_t ntargets;
	unsigned port;			/* remote_port */
	struct timeval step_timeout;	/* connect, and each reply */
	smtp_client_cb cb;
	void *arg;
	const char *log_id;		/* for log lines */
	/*
	 * a relay (doc/queue.md "Relay host"): TLS or nothing, the
	 * certificate checked against tls's trust store and verify_name,
	 * then AUTH when auth is set; any of it failing ends the session
	 * with SMTP_FAIL_POLICY, never in plaintext.  Strings are copied.
	 */
	bool tls_required;
	bool implicit_tls;		/* TLS from the first byte (port 465) */
	const char *verify_name;	/* a host name or an address */
	const struct smtp_auth_ops *auth;
	const char *auth_user, *auth_pass;
	/* outbound_family and outbound_address (chamois.conf(5)) */
	int family;			/* AF_UNSPEC, AF_INET or AF_INET6 */
	const struct sockaddr_storage *source4, *source6;	/* NULL: any */
	/*
	 * the recipient domain whose DANE or MTA-STS policy the targets
	 * carry: each session under a policy is counted for TLS-RPT
	 * (outbound/tlsrpt.h) under it; NULL: not counted (a relay, a TLS
	 * report itself, RFC 8460 5.3).  Copied.
	 */
	const char *policy_domain;
};

/*
 * smtp_client_outbound - outbound_family and outbound_address of c into
 * p (pointers into c, which smtp_client_new copies)
 */
struct config;
void smtp_client_outbound(struct smtp_client_params *, const struct config *);
struct smtp_client *smtp_client_new(const struct smtp_client_params *);
/* smtp_client_free - close at once (mid-DATA: no final dot is ever sent) */
void smtp_client_free(struct smtp_client *);
/*
 * smtp_client_quit - say QUIT and let go; no callback after this.  The
 * client waits (bounded) for the 221, ends TLS with close_notify and frees
 * itself; mid-DATA it closes at once, as smtp_client_free does.
 */
void smtp_client_quit(struct smtp_client *);
/* smtp_clients_shutdown - at exit: close the clients still quitting */
void smtp_clients_shutdown(void);
const struct smtp_caps *smtp_client_caps(const struct smtp_client *);
/*
 * smtp_client_last_error - why the last connect failed, "connect
 * ADDR:PORT: strerror(errno)" (doc/chamoisd.8 LOGGING), or ""
 */
const char *smtp_client_last_error(const struct smtp_client *);
/*
 * smtp_client_policy - after SMTP_FAIL_POLICY from MX targets: the TLS
 * policy that failed, "dane" or "mta-sts" (doc/security.md, "Outbound
 * TLS"); "" for a relay
 */
const char *smtp_client_policy(const struct smtp_client *);
void smtp_client_mail(struct smtp_client *, const char *from, const char *params);
void smtp_client_rcpt(struct smtp_client *, const char *to);
/* smtp_client_rcpt_params - RCPT with params ("NOTIFY=.. ORCPT=..", NULL or "": none) */
void smtp_client_rcpt_params(struct smtp_client *, const char *to, const char *params);
void smtp_client_data(struct smtp_client *);
/*
 * smtp_client_body - LF text (dot-stuffing undone) to send as CRLF,
 * stuffed; true when the output is over the high watermark: stop feeding
 * until SC_DRAINED.
 */
bool smtp_client_body(struct smtp_client *, const char *text, size_t len);
/* smtp_client_dot - end the body (CRLF if needed, then ".") */
void smtp_client_dot(struct smtp_client *);
void smtp_client_rset(struct smtp_client *);
/* smtp_client_pending - octets not yet written to the server */
size_t smtp_client_pending(const struct smtp_client *);
void smtp_client_set_timeout(struct smtp_client *, const struct timeval *);

#endif
