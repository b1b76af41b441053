/*
 * smtpd.h - the daemon: listeners, ESMTP sessions, routing.
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
#include "../common/result.h"
#include "../common/tables.h"
#include "../forward/srs.h"
#include "dataphase.h"

struct event_base;
struct bufferevent;
struct evconnlistener;
struct hmap;
struct resolver;
struct fwd;
struct sub_sasl;
struct sub_attempt;

/* the daemon's state, one per process */
struct smtpd_daemon {
	struct event_base *base;
	struct config *cfg;
	struct tables *tables;
	SSL_CTX *tls_mx;	/* port 25: any version the library allows */
	SSL_CTX *tls_sub;	/* submission roles: TLS 1.2 or newer */
	struct evconnlistener **listeners;
	size_t nlisteners;
	struct hmap *per_addr;	/* "1.2.3.4" or "2001:db8::/64" -> count */
	unsigned nsessions;
	bool stopping;
	struct event *grace_ev;
	struct resolver *resolver;	/* MX look-ups (outbound/) */
	SSL_CTX *tls_client;		/* outbound STARTTLS, opportunistic */
	struct srs srs;			/* forward/srs.c */
	struct sockaddr_storage *self;	/* where our mx role listens (loops) */
	size_t nself;
	unsigned nfwd;			/* forward sessions open */
	struct hmap *fwd_per_domain;	/* target domain -> forward sessions */
	struct hmap *fwd_per_client;	/* client address key -> forward sessions */
	TAILQ_HEAD(, smtpd_session) sessions;
};

extern struct smtpd_daemon smtpd;

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

#define SF_EHLO		0x0001	/* EHLO (not HELO) */
#define SF_TLS		0x0002	/* TLS is on */
#define SF_AUTH		0x0004	/* authenticated (submission) */
#define SF_DISCARD	0x0008	/* dropping the rest of an over-long line */
#define SF_STOP		0x0010	/* daemon stopping: close after this transaction */
#define SF_PAUSED	0x0020	/* input paused until the remote drains */
#define SF_TARPIT	0x0040	/* input paused: a misbehaving client waits */
#define SF_EOF		0x0080	/* the client closed its sending side (no more commands) */
#define SF_BACKLOG	0x0100	/* input paused: the client is not reading its replies */
#define SF_TLS_CLOSED	0x0200	/* our close_notify is queued */

/* the route of a recipient: where its transaction goes (SPEC 4) */
enum smtpd_route {
	ROUTE_NONE,
	ROUTE_LOCAL,	/* local mailboxes only */
	ROUTE_FORWARD,	/* forwarded address (synchronous proxy) */
	ROUTE_QUEUE,	/* a logged-in user's mail: into the queue */
};

struct smtpd_tx {
	unsigned n;			/* transaction number in the session */
	char id[40];			/* session id + "." + n */
	char sender[PATH_MAX_OCTETS + 1]; /* "" for <> */
	bool smtputf8;
	bool body8bit;
	uint64_t size_param;		/* SIZE= of MAIL, 0 if none */
	char *received;			/* our Received field, LF form */
	struct evbuffer *head;		/* queue route: the header section so far */
	enum smtpd_route route;
	char route_key[DOMAIN_MAX + 8];
	char **rcpts;			/* RCPT addresses accepted, as given */
	size_t nrcpts;
	char **mailboxes;		/* local mailboxes, each once */
	size_t nmailboxes;
	struct data_scanner scan;
	struct header_scanner hdr;
	struct body body;
	bool too_big;
	int store_errno;		/* the body could not be kept: why */
	struct maildir_delivery *delivery;
};

struct smtpd_session {
	TAILQ_ENTRY(smtpd_session) entry;
	uint64_t id;
	char idstr[17];
	enum listen_role role;
	struct bufferevent *bev;
	struct sockaddr_storage peer;
	char peer_text[64];		/* "1.2.3.4" or "::1" */
	char addr_key[64];		/* per-address counter key */
	enum smtpd_state state;
	unsigned flags;
	char helo[HELO_MAX + 1];
	unsigned errors;
	unsigned ntx;
	char tls_info[128];		/* "TLSv1.3 TLS_AES_256_GCM_SHA384" */
	char last_cmd[64];		/* escaped, for logging failures */
	struct smtpd_tx *tx;
	struct config *cfg;		/* held while pointers into it live (config_ref) */
	struct fwd *fwd;		/* the forwarding remote session, if any */
	char local_text[80];		/* "IP;PORT" of our end (SASL) */
	char remote_text[80];		/* "IP;PORT" of the client (SASL) */
	struct sub_sasl *sasl;		/* submission: the SASL exchange */
	char *user;			/* submission: who logged in */
	char auth_mech[32];
	unsigned auth_failures;
	struct event *auth_timer;
	struct sub_attempt *auth_try;	/* submission: the counted attempt */
	struct event *life_timer;	/* session_timeout, and the greeting delay */
	struct event *tarpit_timer;
	bool greeted;
	enum smtpd_state wait_from;	/* state to return to after ST_WAIT */
	bool job_pending;		/* a worker job holds a pointer to us */
	bool dead;			/* freed when the job comes back */
	struct evbuffer *wire;		/* the output nearest the socket */
};

/* reply.c */
void smtpd_reply(struct smtpd_session *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtpd_reply_lines(struct smtpd_session *, int code, const char **lines,
    size_t n);

/* session.c */
void smtpd_session_new(int fd, const struct sockaddr *, socklen_t,
    enum listen_role);
void smtpd_enter_state(struct smtpd_session *, enum smtpd_state);
const char *smtpd_strstate(enum smtpd_state);
void smtpd_close_after_reply(struct smtpd_session *);
void smtpd_resume(struct smtpd_session *);
void smtpd_tarpit(struct smtpd_session *, unsigned ms);
void smtpd_start_tls(struct smtpd_session *);
void smtpd_sessions_stop(void);
void smtpd_sessions_kill(void);
void smtpd_maybe_exit(void);
bool smtpd_session_job_done(struct smtpd_session *);
/* smtpd_session_find - the open session with this id; NULL if gone */
struct smtpd_session *smtpd_session_find(uint64_t id);
/* smtpd_session_id - a session's id, for jobs that refer to it */
uint64_t smtpd_session_id(const struct smtpd_session *);
void smtpd_tx_free(struct smtpd_tx *);

/* commands.c */
void smtpd_greet(struct smtpd_session *);
void smtpd_tx_end(struct smtpd_session *);
void smtpd_tx_add_rcpt(struct smtpd_session *, const char *shown,
    const char *route_key, const struct expansion *);
void smtpd_deliver_job(struct smtpd_session *, void (*work)(void *),
    void (*done)(void *));
struct maildir_delivery *smtpd_local_copies(struct smtpd_session *);
void smtpd_command(struct smtpd_session *, char *line, size_t len);
void smtpd_data_input(struct smtpd_session *);

/* parse.c */
struct smtpd_mail_args {
	struct mailaddr addr;
	bool null_sender;
	bool smtputf8;		/* SMTPUTF8 (RFC 6531) */
	bool body8bit;		/* BODY=8BITMIME (RFC 6152) */
	uint64_t size;		/* SIZE= (RFC 1870), 0 if not given */
};
const char *smtpd_parse_mail(char *arg, struct smtpd_mail_args *, uint64_t max_size,
    bool auth_offered);
const char *smtpd_parse_rcpt(char *arg, struct mailaddr *);
bool smtpd_parse_helo(const char *arg, char *out, size_t size);

/* listener.c */
int smtpd_listeners_bind(const struct config *, char *err, size_t errsize);
void smtpd_listeners_start(void);
void smtpd_listeners_stop(void);
bool smtpd_addr_admit(const struct sockaddr *, char *key, size_t keysize);
void smtpd_addr_release(const char *key);

/* tls.c */
SSL_CTX *smtpd_tls_ctx(const char *cert, const char *key, bool strict,
    char *err, size_t errsize);

#endif
