/*
 * session.h - the engine's own structures and internal calls: private to
 * smtpd/ (routes and auth see a struct smtpd_session only through
 * route.h).  Included after smtpd.h.
 */
#ifndef CHAMOIS_SESSION_H
#define CHAMOIS_SESSION_H

#include "smtpd.h"

struct bufferevent;
struct evbuffer;
struct evconnlistener;
struct hmap;

/*
 * the engine's state, one per process, private to smtpd/
 */
struct smtpd_daemon {
	struct event_base *base;
	struct config *cfg;		/* smtpd_configure() */
	struct tables *tables;
	SSL_CTX *tls_mx;	/* port 25: any version the library allows */
	SSL_CTX *tls_sub;	/* submission roles: TLS 1.2 or newer */
	struct evconnlistener **listeners;
	size_t nlisteners;
	struct hmap *per_addr;	/* "1.2.3.4" or "2001:db8::/64" -> count */
	struct hmap *by_id;	/* session id (hex) -> session */
	unsigned nsessions;
	bool stopping;
	TAILQ_HEAD(, smtpd_session) sessions;
};

extern struct smtpd_daemon smtpd;

#define SF_EHLO		0x0001	/* EHLO (not HELO) */
#define SF_TLS		0x0002	/* TLS is on */
#define SF_AUTH		0x0004	/* authenticated (submission) */
#define SF_DISCARD	0x0008	/* dropping the rest of an over-long line */
#define SF_STOP		0x0010	/* daemon stopping: close after this transaction */
#define SF_PAUSED	0x0020	/* input paused until the route's next hop drains */
#define SF_TARPIT	0x0040	/* input paused: a misbehaving client waits */
#define SF_EOF		0x0080	/* the client closed its sending side (no more commands) */
#define SF_BACKLOG	0x0100	/* input paused: the client is not reading its replies */
#define SF_TLS_CLOSED	0x0200	/* our close_notify is queued */

/* the RCPT a route is answering (smtpd_rcpt_answer) */
struct smtpd_pending_rcpt {
	char *shown;
	char key[DOMAIN_MAX + 8];
	const struct smtpd_route_ops *ops;
	struct expansion exp;
	bool next_hop;			/* smtpd_route_pick next_hop */
};

/* the RCPT the checks are answering (smtpd_check_rcpt) */
struct smtpd_checking_rcpt {
	struct mailaddr addr;
	char key[PATH_MAX_OCTETS + 1];
	char shown[PATH_MAX_OCTETS + 1];
};

struct smtpd_tx {
	unsigned n;			/* transaction number in the session */
	char id[40];			/* session id + "." + n */
	char sender[PATH_MAX_OCTETS + 1]; /* "" for <> */
	bool smtputf8;
	bool body8bit;
	uint64_t size_param;		/* SIZE= of MAIL, 0 if none */
	char *received;			/* our Received field, LF form */
	const struct smtpd_route_ops *route;	/* of the accepted recipients */
	char route_key[DOMAIN_MAX + 8];
	bool next_hop;			/* the route's copy goes to a next hop */
	struct smtpd_pending_rcpt *pending;
	struct smtpd_checking_rcpt *checking;	/* before the router: the checks' */
	bool check_end;			/* the checks' verdict is awaited */
	enum { FW_NONE, FW_MAIL, FW_RCPT, FW_END } filter_wait;	/* the filters' */
	struct smtpd_checking_rcpt *filtering;	/* the RCPT the filters have */
	char *head;			/* the header section, once edited */
	size_t head_len;
	uint64_t head_old;		/* the length of the one it replaces */
	const char *kept_status;	/* a filter kept the message: its status= */
	char *auth_results;		/* the checks' Authentication-Results */
	char **rcpts;			/* RCPT addresses accepted, as given */
	size_t nrcpts;
	/* DSN (RFC 3461; the submission roles): MAIL's, each recipient's */
	enum dsn_ret ret;
	char envid[DSN_ENVID_MAX + 1];
	struct smtpd_rcpt_dsn rcpt_dsn;	/* of the RCPT being answered */
	unsigned *notify;		/* per accepted recipient */
	char **orcpt;			/* per accepted recipient, "" if none */
	char **mailboxes;		/* local mailboxes, each once */
	size_t nmailboxes;
	struct data_scanner scan;
	struct header_scanner hdr;
	struct header_filter filt;	/* with drop_field: fields held back */
	struct body body;		/* the message, kept for local mailboxes */
	bool too_big;
	int store_errno;		/* the body could not be kept: why */
	time_t since;			/* MAIL: the outcome lines' delay */
	char relay[LOG_RELAY_MAX];	/* whom the route contacted, "none" */
};

#define SMTPD_ROUTES_MAX	4	/* routes one session may use */

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
	struct {
		const struct smtpd_route_ops *ops;
		void *data;
	} routes[SMTPD_ROUTES_MAX];	/* routes used, and their state */
	unsigned in_route;		/* inside a route's op: answers are synchronous */
	char local_text[80];		/* "IP;PORT" of our end (SASL) */
	char remote_text[80];		/* "IP;PORT" of the client (SASL) */
	void *auth;			/* the auth ops' state */
	const struct smtpd_check_ops *checks;	/* the role's, at connect */
	void *check;			/* the checks' state */
	const struct smtpd_filter_ops *filters;	/* the role's, at connect */
	void *filter;			/* the filters' state */
	char *user;			/* who logged in */
	struct event *life_timer;	/* session_timeout, and the greeting delay */
	struct event *tarpit_timer;
	bool greeted;
	struct evbuffer *wire;		/* the output nearest the socket */
};

extern const struct smtpd_auth_ops *smtpd_auth;
/* the checks of each listen role (smtpd_set_checks) */
extern const struct smtpd_check_ops *smtpd_checks[ROLE_SUBMISSIONS + 1];
extern const struct smtpd_filter_ops *smtpd_filters[ROLE_SUBMISSIONS + 1];

/* session.c */
void smtpd_enter_state(struct smtpd_session *, enum smtpd_state);
const char *smtpd_strstate(enum smtpd_state);
void smtpd_start_tls(struct smtpd_session *);
void smtpd_tx_free(struct smtpd_tx *);
/* smtpd_loop_only - fatal on a worker thread (the accessors of route.h) */
void smtpd_loop_only(void);

/* commands.c */
void smtpd_greet(struct smtpd_session *);
void smtpd_command(struct smtpd_session *, char *line, size_t len);
void smtpd_data_input(struct smtpd_session *);
/* smtpd_routes_free - the session is gone: every route's free */
void smtpd_routes_free(struct smtpd_session *);

#endif
