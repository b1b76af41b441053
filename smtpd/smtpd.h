/*
 * smtpd.h - the session engine: listeners, ESMTP sessions, the command
 * table, the reply writer and the transaction (doc/protocol.md, "Sessions").
 *
 * The engine calls no route and no auth code by name: they plug in
 * through route.h (included here), which also gives them the session's
 * API.  A message's path through the engine: listener.c accepts, session.c
 * reads lines (and the DATA scanner, dataphase.c), commands.c runs the
 * command table and the transaction, handing recipients, the body and
 * the final dot to the route the router picked (route.h), reply.c writes
 * every reply.  The structures are private to smtpd/ (smtpd/session.h).
 * Prototypes are grouped under the file that defines them.
 */
#ifndef CHAMOIS_SMTPD_H
#define CHAMOIS_SMTPD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "../common/addr.h"
#include "../common/body.h"
#include "../common/config.h"
#include "../common/dsn.h"
#include "../common/tables.h"
#include "dataphase.h"
#include "route.h"

struct event_base;
struct evconnlistener;
struct hmap;
struct resolver;


enum smtpd_state {
	ST_CONNECTED,	/* greeting sent; HELO/EHLO expected */
	ST_HELO,	/* HELO/EHLO done, no transaction */
	ST_MAIL,	/* MAIL accepted, no recipient yet */
	ST_RCPT,	/* at least one recipient accepted */
	ST_DATA,	/* reading the message */
	ST_DELIVER,	/* final dot seen, the message is being stored */
	ST_TLS,		/* TLS handshake after STARTTLS */
	ST_WAIT,	/* an answer is awaited (remote server, queue, AUTH delay) */
	ST_AUTH,	/* AUTH: reading the client's SASL responses */
	ST_CLOSING,	/* last reply queued; close once it is written */
};

/* reply.c */
/*
 * smtpd_reply - one reply line "NNN X.Y.Z text" (printf-style), CRLF
 * added, CR/LF inside replaced; a 4xx/5xx is logged and counted
 * (max_errors closes the session, half of it tarpits).  Nothing is sent
 * once the session is closing.
 */
void smtpd_reply(struct smtpd_session *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* smtpd_reply_lines - a multi-line reply: "NNN-line" ... "NNN line" */
void smtpd_reply_lines(struct smtpd_session *, int code, const char **lines,
    size_t n);

/* session.c */
/* smtpd_init - once, before anything else of the engine: its event base */
void smtpd_init(struct event_base *);
/* smtpd_shutdown - at exit, after the loop: the engine lets go of all it holds */
void smtpd_shutdown(void);
/*
 * smtpd_configure - at start and on SIGHUP: the config (a reference is
 * taken, the old one let go), the tables (borrowed until the next call)
 * and the server TLS contexts (referenced; NULL without tls_cert).
 * Sessions keep the config they started with.
 */
void smtpd_configure(struct config *, struct tables *, SSL_CTX *tls_mx,
    SSL_CTX *tls_sub);
/* smtpd_session_new - a connection accepted on a listener of role */
void smtpd_session_new(int fd, const struct sockaddr *, socklen_t,
    enum listen_role);
/* smtpd_session_count - sessions open */
unsigned smtpd_session_count(void);
/* smtpd_session_find - the session with this id, NULL if it is gone */
struct smtpd_session *smtpd_session_find(uint64_t id);
/* smtpd_session_id - the id a job keeps instead of the session pointer */
uint64_t smtpd_session_id(const struct smtpd_session *);
/* smtpd_close_after_reply - stop reading; close once the output drains */
void smtpd_close_after_reply(struct smtpd_session *);
/*
 * smtpd_resume - go on with pipelined input after an asynchronous step;
 * deferred, so that a step that finishes at once never nests the input
 * loop inside itself
 */
void smtpd_resume(struct smtpd_session *);
/* smtpd_tarpit - read nothing from the session for ms milliseconds */
void smtpd_tarpit(struct smtpd_session *, unsigned ms);
/*
 * smtpd_sessions_stop - SIGTERM: idle sessions get 421 now; a session in
 * a transaction finishes it first
 */
void smtpd_sessions_stop(void);
/* smtpd_sessions_kill - the grace period is over: close what is left */
void smtpd_sessions_kill(void);

/* commands.c */
/*
 * smtpd_received_header - our Received field (RFC 5321 4.4), LF line
 * ends, pure: helo and peer as the session has them (peer "1.2.3.4" or
 * "::1"), esmtp/tls/utf8 choose the protocol name (RFC 3848, RFC 6531
 * 7.7), user is the logged-in user or NULL, tls_info "TLSv1.3 CIPHER"
 * (used only with tls), rcpt the one recipient (a "for" clause) or NULL,
 * date an RFC 5322 date.  malloc'd.
 */
char *smtpd_received_header(const char *helo, const char *peer, bool esmtp,
    bool tls, bool utf8, const char *user, const char *hostname,
    const char *id, const char *tls_info, const char *rcpt, const char *date);

/* parse.c - the arguments of MAIL, RCPT and HELO/EHLO (pure) */
struct smtpd_mail_args {
	struct mailaddr addr;
	bool null_sender;
	bool smtputf8;		/* SMTPUTF8 (RFC 6531) */
	bool body8bit;		/* BODY=8BITMIME (RFC 6152) */
	uint64_t size;		/* SIZE= (RFC 1870), 0 if not given */
	enum dsn_ret ret;	/* RET= (RFC 3461 4.3) */
	char envid[DSN_ENVID_MAX + 1];	/* ENVID= decoded, "" if not given */
};
/* the DSN parameters of one RCPT (RFC 3461 4.1, 4.2) */
struct smtpd_rcpt_dsn {
	unsigned notify;	/* DSN_NOTIFY_*, 0 if not given */
	char orcpt[DSN_ORCPT_MAX + 1];	/* "type;address" decoded, or "" */
};
/*
 * smtpd_parse_mail - "FROM:<path> [params]" into m: NULL, or the whole
 * refusal (a SIZE over max_size, an unknown parameter, AUTH= only where
 * auth_offered, RET= and ENVID= only where dsn_offered...); arg is modified
 */
const char *smtpd_parse_mail(char *arg, struct smtpd_mail_args *, uint64_t max_size,
    bool auth_offered, bool dsn_offered);
/*
 * smtpd_parse_rcpt - "TO:<path> [params]" into a and, where DSN is
 * offered (dsn not NULL), NOTIFY= and ORCPT= into dsn: NULL, or the
 * whole refusal; arg is modified
 */
const char *smtpd_parse_rcpt(char *arg, struct mailaddr *, struct smtpd_rcpt_dsn *dsn);
/* smtpd_parse_helo - the HELO/EHLO argument's first word into out; false if bad */
bool smtpd_parse_helo(const char *arg, char *out, size_t size);

/* listener.c */
/* smtpd_listeners_bind - bind every listen line (before the drop); -1 and err */
int smtpd_listeners_bind(const struct config *, char *err, size_t errsize);
/* smtpd_listeners_start - listen and accept on the loop */
void smtpd_listeners_start(void);
/* smtpd_listeners_stop - close the listening sockets */
void smtpd_listeners_stop(void);
/*
 * smtpd_addr_admit - count a new connection of the client's address (its
 * key, "1.2.3.4" or an IPv6 /64, into key); false past
 * max_connections_per_address
 */
bool smtpd_addr_admit(const struct sockaddr *, char *key, size_t keysize);
/* smtpd_addr_release - that connection has ended */
void smtpd_addr_release(const char *key);

/* tls.c */
/*
 * smtpd_tls_ctx - a server context from the certificate chain and key
 * files; strict: TLS 1.2 or newer (the submission roles); NULL and err
 */
SSL_CTX *smtpd_tls_ctx(const char *cert, const char *key, bool strict,
    char *err, size_t errsize);

#endif
