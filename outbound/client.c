/*
 * client.c - outbound SMTP on bufferevents.
 *
 * The session is a small state machine: CONNECT -> GREETING -> EHLO
 * (-> HELO) [-> STARTTLS -> TLS -> EHLO] -> READY.  Before READY, any
 * failure moves on to the next target (a failed TLS handshake first tries
 * the same target again in plaintext: STARTTLS is opportunistic, RFC 7435).
 * A target with secure TLSA records (mx_target.dane, doc/security.md
 * "Outbound TLS") gets STARTTLS verified by OpenSSL's DANE, or nothing:
 * any failure there moves on to the next target, never to plaintext, and
 * when no target is left the session fails with SMTP_FAIL_POLICY.
 * In READY, commands go out through a queue: all at once when the server
 * offers PIPELINING (RFC 2920), else one per reply; replies are matched to
 * commands in order.  A 421, a lost connection or a timeout ends the
 * session with SC_FAILED.  Whatever the server sent before our STARTTLS
 * took effect is discarded, and the body goes out with strict CRLF and
 * dot-stuffing, so nothing can be smuggled to the next server through us.
 * A session ends with QUIT: the client waits (QUIT_TIMEOUT_SEC at most)
 * for the replies still owed and the 221, then sends its TLS close_notify
 * and closes (CS_QUIT).  What is buffered for the server is counted
 * through the TLS layer too, so the body relayed waits for the server's
 * drain (doc/forwarding.md, doc/security.md).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/limits.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "client.h"
#include "tlsrpt.h"

#define CLIENT_HIWAT	(256 * 1024)	/* body output held before pausing */
#define CLIENT_LOWAT	(64 * 1024)
#define QUIT_TIMEOUT_SEC	5	/* QUIT, the 221 and our close_notify */

enum cstate {
	CS_CONNECT,
	CS_GREETING,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_TLS,
	CS_AUTH,	/* AUTH under way (a SASL step or the server's reply) */
	CS_READY,
	CS_QUIT,	/* QUIT sent, the owner gone: replies awaited, then close */
	CS_DEAD,
};

struct pending {
	TAILQ_ENTRY(pending) entry;
	enum smtp_cmd cmd;
	char *line;		/* NULL once sent */
};
TAILQ_HEAD(pending_list, pending);

struct smtp_client {
	struct smtp_client_params p;
	struct mx_target *targets;
	size_t cur;			/* target being tried */
	bool plaintext;			/* TLS failed on this target: no STARTTLS */
	struct bufferevent *bev;
	enum cstate state;
	struct smtp_caps caps;
	struct smtp_reply reply;	/* being read */
	size_t reply_octets;
	struct smtp_reply last_refusal;	/* the last greeting/EHLO refusal */
	bool reached;			/* some target greeted us with 2xx */
	char last_error[320];		/* "connect ADDR:PORT: strerror", a policy failure */
	struct pending_list queue;	/* commands not yet answered */
	bool body_bol;			/* body output is at a line start */
	bool notify_drain;
	bool in_data;			/* 354 seen, final dot not yet sent */
	unsigned quit_replies;		/* CS_QUIT: replies still owed */
	bool tls_closed;		/* CS_QUIT: our close_notify is queued */
	struct event *quit_timer;
	TAILQ_ENTRY(smtp_client) quitting;	/* on quitting_clients in CS_QUIT */
	int in_cb;
	bool dead;
	char id[48];
	/* a relay's copies (smtp_client_params) and AUTH */
	char *verify_name, *auth_user, *auth_pass;
	bool linger;			/* a policy failure: QUIT sent, 221 awaited */
	struct sockaddr_storage source4, source6;
	void *auth_x;			/* the exchange (auth->start) */
	bool auth_sent;			/* AUTH mech has gone out */
	char auth_mech[32];
	struct event *defer;		/* client_defer_next */
	enum tls_policy {
		TP_NONE,		/* opportunistic */
		TP_DANE,		/* secure TLSA (RFC 7672): required, by them */
		TP_STS,			/* MTA-STS enforce: required, verified */
		TP_STS_TESTING,		/* MTA-STS testing: failures logged only */
	} tp;				/* this target's */
	char policy_error[600];		/* the last target's policy failure, or "" */
	const char *policy_name;	/* its policy: "dane" or "mta-sts" */
	char policy_domain[256];	/* counted for TLS-RPT; "": not counted */
};

/* clients that are ending on their own (CS_QUIT), freed at exit if left */
static TAILQ_HEAD(, smtp_client) quitting_clients =
    TAILQ_HEAD_INITIALIZER(quitting_clients);

static void client_connect(struct smtp_client *);
static void client_read_cb(struct bufferevent *, void *);
static void client_read(struct smtp_client *, struct bufferevent *);
static void client_event(struct smtp_client *, struct bufferevent *, short);
static void client_write_cb(struct bufferevent *, void *);
static void client_event_cb(struct bufferevent *, short, void *);
static void client_wire_cb(struct evbuffer *, const struct evbuffer_cb_info *,
    void *);
static void client_close(struct smtp_client *);
static void client_ready(struct smtp_client *);
static void quit_timeout_cb(evutil_socket_t, short, void *);
static void client_tls_fail(struct smtp_client *, enum tlsrpt_result,
    const char *, ...) __attribute__((format(printf, 3, 4)));
static void client_sts_testing(struct smtp_client *, enum tlsrpt_result,
    const char *);

/* client_tls_must - this target gets verified TLS or nothing */
static bool
client_tls_must(const struct smtp_client *c)
{
	return c->tp == TP_DANE || c->tp == TP_STS;
}

static const char *
tp_name(enum tls_policy tp)
{
	return tp == TP_DANE ? "dane" : "mta-sts";
}

/* x509_result - the TLS-RPT result-type of a certificate that does not verify */
static enum tlsrpt_result
x509_result(long v)
{
	return v == X509_V_ERR_HOSTNAME_MISMATCH ? TR_CERTIFICATE_HOST_MISMATCH :
	    v == X509_V_ERR_CERT_HAS_EXPIRED ? TR_CERTIFICATE_EXPIRED :
	    TR_CERTIFICATE_NOT_TRUSTED;
}

/*
 * client_tlsrpt - this session to the current target met its TLS policy
 * (ok) or failed it (result, why), counted for TLS-RPT (RFC 8460 4.3)
 * when the owner named a policy domain; DANE's policy-string is the
 * host's usable TLSA records, MTA-STS's is left out
 */
static void
client_tlsrpt(struct smtp_client *c, bool ok, enum tlsrpt_result result,
    const char *why)
{
	const struct mx_target *t = &c->targets[c->cur];
	struct tlsrpt_session s = { .ok = ok, .result = result, .reason = why };
	char ps[MX_TLSA_MAX * (16 + 2 * MX_TLSA_DATA_MAX)] = "";
	char src[INET6_ADDRSTRLEN] = "", dst[INET6_ADDRSTRLEN] = "";
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	size_t o = 0;

	if (c->policy_domain[0] == '\0' || c->tp == TP_NONE)
		return;
	s.domain = c->policy_domain;
	s.type = c->tp == TP_DANE ? TLSRPT_TLSA : TLSRPT_STS;
	s.mx_host = t->host;
	for (size_t i = 0; c->tp == TP_DANE && i < t->ntlsa; i++) {
		const struct mx_tlsa *r = &t->tlsa[i];

		o += (size_t)snprintf(ps + o, sizeof(ps) - o, "%s%u %u %u ",
		    i ? "\n" : "", r->usage, r->selector, r->mtype);
		for (size_t k = 0; k < r->len && o + 3 < sizeof(ps); k++)
			o += (size_t)snprintf(ps + o, sizeof(ps) - o, "%02x",
			    r->data[k]);
	}
	s.policy_string = ps[0] ? ps : NULL;
	inet_ntop(t->ss.ss_family, t->ss.ss_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)&t->ss)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)&t->ss)->sin_addr, dst,
	    sizeof(dst));
	if (c->bev && bufferevent_getfd(c->bev) != -1 &&
	    getsockname(bufferevent_getfd(c->bev), (struct sockaddr *)&ss,
	    &sl) == 0 && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
		inet_ntop(ss.ss_family, ss.ss_family == AF_INET6 ?
		    (const void *)&((const struct sockaddr_in6 *)&ss)->sin6_addr :
		    (const void *)&((const struct sockaddr_in *)&ss)->sin_addr, src,
		    sizeof(src));
	s.sending_ip = src;
	s.receiving_ip = dst;
	tlsrpt_count(&s);
}

/* smtp_reply_parse - one line of a reply, RFC 5321 4.2 */
enum smtp_parse
smtp_reply_parse(struct smtp_reply *r, const char *line, size_t len)
{
	int code;
	const char *text;
	size_t tlen, o;

	if (len < 3 || !isdigit((unsigned char)line[0]) ||
	    !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]))
		return SMTP_PARSE_ERROR;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return SMTP_PARSE_ERROR;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code < 200 || code > 599)
		return SMTP_PARSE_ERROR;
	if (r->code == 0)
		r->code = code;
	else if (r->code != code)
		return SMTP_PARSE_ERROR;
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	/* RFC 2034: the enhanced code leads every line; keep the first one */
	if (tlen >= 5 && text[0] == line[0] && text[1] == '.') {
		size_t i = 2, dots = 1;

		while (i < tlen && i < 15 && (isdigit((unsigned char)text[i]) ||
		    text[i] == '.')) {
			if (text[i] == '.')
				dots++;
			i++;
		}
		if (dots == 2 && isdigit((unsigned char)text[i - 1]) &&
		    (i == tlen || text[i] == ' ')) {
			if (r->esc[0] == '\0') {
				memcpy(r->esc, text, i);
				r->esc[i] = '\0';
			}
			text += i;
			tlen -= i;
			while (tlen > 0 && *text == ' ') {
				text++;
				tlen--;
			}
		}
	}
	o = strlen(r->text);
	if (o > 0 && o + 1 < sizeof(r->text) && tlen > 0)
		r->text[o++] = ' ';
	for (size_t i = 0; i < tlen && o + 1 < sizeof(r->text); i++)
		r->text[o++] = text[i];
	r->text[o] = '\0';
	return len > 3 && line[3] == '-' ? SMTP_PARSE_MORE : SMTP_PARSE_DONE;
}

enum smtp_class
smtp_reply_class(const struct smtp_reply *r)
{
	switch (r->code / 100) {
	case 2:
		return SMTP_CLASS_OK;
	case 4:
		return SMTP_CLASS_TEMP;
	case 5:
		return SMTP_CLASS_PERM;
	default:
		return SMTP_CLASS_ODD;
	}
}

void
smtp_reply_status(const struct smtp_reply *r, char *out, size_t size)
{
	static const char *const fallback[] = {
		[SMTP_CLASS_OK] = "2.0.0", [SMTP_CLASS_TEMP] = "4.0.0",
		[SMTP_CLASS_PERM] = "5.0.0", [SMTP_CLASS_ODD] = "4.0.0",
	};
	enum smtp_class cls = smtp_reply_class(r);

	/* RFC 3463 2: the status class agrees with the reply's */
	if (cls != SMTP_CLASS_ODD && r->esc[0] == (char)('0' + r->code / 100))
		str_copy(out, r->esc, size);
	else
		str_copy(out, fallback[cls], size);
}

/*
 * client_hold / client_release - the owner may free the client from any
 * callback; while a hold is on, smtp_client_free only marks it dead, and
 * the last release frees it.  release returns false once it is dead.
 */
static void
client_hold(struct smtp_client *c)
{
	c->in_cb++;
}

static bool
client_release(struct smtp_client *c)
{
	c->in_cb--;
	if (c->dead && c->in_cb == 0) {
		smtp_client_free(c);
		return false;
	}
	return !c->dead;
}

/* client_emit - call the owner; false if the client was freed meanwhile */
static bool
client_emit(struct smtp_client *c, enum smtp_client_event ev, enum smtp_cmd cmd,
    enum smtp_fail why, const struct smtp_reply *r)
{
	if (c->state == CS_QUIT)
		return !c->dead;	/* the owner has let go */
	client_hold(c);
	c->p.cb(c->p.arg, ev, cmd, why, r);
	return client_release(c);
}

static void
client_close_bev(struct smtp_client *c)
{
	if (c->bev) {
		struct bufferevent *bottom = bufferevent_get_underlying(c->bev);

		/* libevent may still write from it after the free below */
		evbuffer_remove_cb(bufferevent_get_output(bottom ? bottom : c->bev),
		    client_wire_cb, c);
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
}

static void
queue_clear(struct smtp_client *c)
{
	struct pending *pc;

	while ((pc = TAILQ_FIRST(&c->queue)) != NULL) {
		TAILQ_REMOVE(&c->queue, pc, entry);
		free(pc->line);
		free(pc);
	}
}

/* client_fail - the session is over */
static void
client_fail(struct smtp_client *c, enum smtp_fail why, const struct smtp_reply *r)
{
	static const char *const names[] = { "none", "unreachable", "lost",
	    "timeout", "protocol", "closing", "policy" };

	char esc[LOG_ESC(sizeof(c->caps.host))];

	log_info("%s client failed reason=%s host=%s", c->id, names[why],
	    log_field(esc, sizeof(esc), c->caps.host));
	if (!c->linger)
		client_close_bev(c);
	c->state = CS_DEAD;
	queue_clear(c);
	client_emit(c, SC_FAILED, SMTP_CMD_MAIL, why, r);
}

/* client_next - give up on this target and try the next one */
static void
client_next(struct smtp_client *c, const char *why)
{
	char esc[LOG_ESC(sizeof(c->caps.host))], t[LOG_ESC(SMTP_REPLY_TEXT_MAX)];

	log_info("%s client attempt-failed host=%s addr=%s reason=\"%s\"", c->id,
	    log_field(esc, sizeof(esc), c->caps.host), c->caps.addr,
	    log_text(t, sizeof(t), why));
	client_close_bev(c);
	if (c->state == CS_TLS && !c->plaintext && !c->p.tls_required &&
	    !client_tls_must(c)) {
		/* the handshake failed: the same host again, without TLS */
		c->plaintext = true;
	} else {
		c->cur++;
		c->plaintext = false;
	}
	if (c->cur >= c->p.ntargets && c->policy_error[0] != '\0') {
		/* a DANE host failed: the mail waits (RFC 7672 2.2) */
		str_copy(c->last_error, c->policy_error, sizeof(c->last_error));
		client_fail(c, SMTP_FAIL_POLICY, NULL);
		return;
	}
	if (c->cur >= c->p.ntargets) {
		/*
		 * unreachable means no server ever greeted us; one that did and
		 * then said 421 or went away is a lost session
		 */
		client_fail(c, c->last_refusal.code == 421 ? SMTP_FAIL_CLOSING :
		    c->reached ? SMTP_FAIL_LOST : SMTP_FAIL_UNREACHABLE,
		    c->last_refusal.code ? &c->last_refusal : NULL);
		return;
	}
	client_connect(c);
}

/*
 * client_set_timeouts - writes always have a deadline; reads only while a
 * reply is awaited, so an idle session kept for the next transaction is
 * not failed for its silence.
 */
static void
client_set_timeouts(struct smtp_client *c)
{
	bool awaiting = c->state != CS_READY || !TAILQ_EMPTY(&c->queue);

	if (c->bev)
		bufferevent_set_timeouts(c->bev, awaiting ? &c->p.step_timeout : NULL,
		    &c->p.step_timeout);
}

static void
client_setup_bev(struct smtp_client *c)
{
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb,
	    client_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_LOWAT, 0);
	client_set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	client_hold(c);
	if (!c->dead)
		client_next(c, c->last_error);
	client_release(c);
}

/*
 * client_defer_next - this target cannot be tried (c->last_error says
 * why): move on from the loop, never from inside smtp_client_new
 */
static void
client_defer_next(struct smtp_client *c)
{
	if (c->defer == NULL && (c->defer = evtimer_new(c->p.base, defer_cb,
	    c)) == NULL)
		fatalx("evtimer_new");
	event_active(c->defer, EV_TIMEOUT, 1);
}

/*
 * client_socket - -1 (libevent makes the socket) without a source
 * address for family; else a socket bound to it (outbound_address), or
 * -2 with last_error set
 */
static evutil_socket_t
client_socket(struct smtp_client *c, int family)
{
	const struct sockaddr_storage *src = family == AF_INET6 ? &c->source6 :
	    &c->source4;
	char ip[INET6_ADDRSTRLEN] = "?";
	evutil_socket_t fd;

	if (src->ss_family != family)
		return -1;
	if ((fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) != -1 && bind(fd, (const struct sockaddr *)src,
	    family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in)) == 0)
		return fd;
	inet_ntop(family, family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)src)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)src)->sin_addr, ip,
	    sizeof(ip));
	snprintf(c->last_error, sizeof(c->last_error), "bind %s: %s", ip,
	    strerror(errno));
	if (fd != -1)
		close(fd);
	return -2;
}

static void
client_connect(struct smtp_client *c)
{
	struct mx_target *t = &c->targets[c->cur];
	struct sockaddr_storage ss = t->ss;
	char ip[INET6_ADDRSTRLEN];
	const char *unusable;
	evutil_socket_t fd;

	memset(&c->caps, 0, sizeof(c->caps));
	str_copy(c->caps.host, t->host, sizeof(c->caps.host));
	if (ss.ss_family == AF_INET6) {
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->p.port);
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip,
		    sizeof(ip));
		snprintf(c->caps.addr, sizeof(c->caps.addr), "[%s]:%u", ip, c->p.port);
	} else {
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->p.port);
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip,
		    sizeof(ip));
		snprintf(c->caps.addr, sizeof(c->caps.addr), "%s:%u", ip, c->p.port);
	}
	memset(&c->reply, 0, sizeof(c->reply));
	c->reply_octets = 0;
	c->state = CS_CONNECT;
	/*
	 * RFC 7672 2.2: secure TLSA, even unusable, make TLS required; DANE
	 * comes before MTA-STS (RFC 8461 2)
	 */
	c->tp = c->verify_name != NULL ? TP_NONE : t->dane != MX_DANE_NONE ?
	    TP_DANE : t->sts == MX_STS_ENFORCE ? TP_STS :
	    t->sts == MX_STS_TESTING ? TP_STS_TESTING : TP_NONE;
	/*
	 * not this host now: its TLSA are not known (RFC 7672 2.2.2), or it
	 * is not one of the MTA-STS policy's MX names (RFC 8461 4.1)
	 */
	unusable = c->tp == TP_DANE && t->dane == MX_DANE_FAIL ?
	    "the TLSA look-up failed" : c->tp == TP_STS && !t->sts_match ?
	    "not an mx of the policy" : NULL;
	if (unusable != NULL) {
		c->policy_name = tp_name(c->tp);
		metrics_tls_policy(c->tp == TP_DANE, false);
		client_tlsrpt(c, false, c->tp == TP_DANE ? TR_DNSSEC_INVALID :
		    TR_VALIDATION_FAILURE, unusable);
		snprintf(c->policy_error, sizeof(c->policy_error), "%s: %s: %s",
		    c->policy_name, t->host, unusable);
		str_copy(c->last_error, c->policy_error, sizeof(c->last_error));
		client_defer_next(c);
		return;
	}
	if ((fd = client_socket(c, ss.ss_family)) == -2) {
		client_defer_next(c);
		return;
	}
	c->bev = bufferevent_socket_new(c->p.base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL)
		fatalx("bufferevent_socket_new");
	/* the bottom buffer stays the same through STARTTLS */
	evbuffer_add_cb(bufferevent_get_output(c->bev), client_wire_cb, c);
	client_setup_bev(c);
	if (log_verbose()) {
		char esc[LOG_ESC(sizeof(t->host))];

		log_debug("%s client connect host=%s addr=%s", c->id,
		    log_field(esc, sizeof(esc), t->host), c->caps.addr);
	}
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, t->sslen) == -1)
		/* reported through the event callback as an error */
		log_debug("%s client connect failed at once", c->id);
	else
		tcp_nodelay(bufferevent_getfd(c->bev));
}

/* smtp_client_outbound - see client.h */
void
smtp_client_outbound(struct smtp_client_params *p, const struct config *cfg)
{
	p->family = cfg->outbound_family == FAMILY_IPV4 ? AF_INET :
	    cfg->outbound_family == FAMILY_IPV6 ? AF_INET6 : AF_UNSPEC;
	p->source4 = cfg->outbound_addr4.ss_family ? &cfg->outbound_addr4 : NULL;
	p->source6 = cfg->outbound_addr6.ss_family ? &cfg->outbound_addr6 : NULL;
}

struct smtp_client *
smtp_client_new(const struct smtp_client_params *p)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));

	c->p = *p;
	if (p->ntargets == 0)
		fatalx("smtp_client_new: no targets");
	if (p->tls)
		SSL_CTX_up_ref(p->tls);	/* the owner may replace its context */
	c->targets = xcalloc(p->ntargets, sizeof(*c->targets));
	c->p.ntargets = 0;
	/* outbound_family: only the targets of that family */
	for (size_t i = 0; i < p->ntargets; i++)
		if (p->family == AF_UNSPEC || p->targets[i].ss.ss_family == p->family)
			c->targets[c->p.ntargets++] = p->targets[i];
	c->p.targets = NULL;
	c->verify_name = p->verify_name ? xstrdup(p->verify_name) : NULL;
	c->auth_user = p->auth_user ? xstrdup(p->auth_user) : NULL;
	c->auth_pass = p->auth_pass ? xstrdup(p->auth_pass) : NULL;
	c->p.verify_name = c->p.auth_user = c->p.auth_pass = NULL;
	str_copy(c->policy_domain, p->policy_domain ? p->policy_domain : "",
	    sizeof(c->policy_domain));
	c->p.policy_domain = NULL;
	if (p->source4)
		c->source4 = *p->source4;
	if (p->source6)
		c->source6 = *p->source6;
	c->p.source4 = c->p.source6 = NULL;
	TAILQ_INIT(&c->queue);
	str_copy(c->id, p->log_id ? p->log_id : "-", sizeof(c->id));
	c->body_bol = true;
	if (c->p.ntargets == 0) {
		/* one empty target, so that caps and the failure read well */
		str_copy(c->targets[0].host, p->targets[0].host,
		    sizeof(c->targets[0].host));
		c->p.ntargets = 1;
		snprintf(c->last_error, sizeof(c->last_error), "no %s address "
		    "(outbound_family)", p->family == AF_INET ? "IPv4" : "IPv6");
		str_copy(c->caps.host, p->targets[0].host, sizeof(c->caps.host));
		c->state = CS_CONNECT;
		client_defer_next(c);
		return c;
	}
	client_connect(c);
	return c;
}

/* client_linger - the owner let go after a policy failure: wait for the 221 */
static void
client_linger(struct smtp_client *c)
{
	struct timeval tv = { QUIT_TIMEOUT_SEC, 0 };

	c->linger = false;
	c->dead = false;
	c->state = CS_QUIT;
	c->notify_drain = false;
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	c->quit_timer = evtimer_new(c->p.base, quit_timeout_cb, c);
	evtimer_add(c->quit_timer, &tv);
	TAILQ_INSERT_TAIL(&quitting_clients, c, quitting);
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (c->linger && c->bev) {
		client_linger(c);
		return;
	}
	if (c->in_cb) {
		/* freed from inside our own callback: finish when it returns */
		c->dead = true;
		client_close_bev(c);
		if (c->defer)
			event_del(c->defer);
		return;
	}
	client_close_bev(c);
	queue_clear(c);
	if (c->quit_timer) {
		event_free(c->quit_timer);
		TAILQ_REMOVE(&quitting_clients, c, quitting);
	}
	if (c->defer)
		event_free(c->defer);
	if (c->auth_x)
		c->p.auth->end(c->auth_x);
	free(c->verify_name);
	free(c->auth_user);
	if (c->auth_pass) {
		explicit_bzero(c->auth_pass, strlen(c->auth_pass));
		free(c->auth_pass);
	}
	SSL_CTX_free(c->p.tls);
	free(c->targets);
	free(c);
}

/* client_unsent - octets not yet taken by the server, TLS layer included */
static size_t
client_unsent(const struct smtp_client *c)
{
	struct bufferevent *under;
	size_t n;

	if (c->bev == NULL)
		return 0;
	n = evbuffer_get_length(bufferevent_get_output(c->bev));
	if ((under = bufferevent_get_underlying(c->bev)) != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/* client_wire_cb - the output nearest the socket shrank: the write cb decides */
static void
client_wire_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct smtp_client *c = arg;

	if (info->n_deleted > 0 && c->bev && bufferevent_get_underlying(c->bev) &&
	    (c->notify_drain || c->tls_closed))
		bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS |
		    BEV_TRIG_DEFER_CALLBACKS);
}

static void
quit_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	log_debug("%s client quit-timeout host=%s", c->id, c->caps.host);
	smtp_client_free(c);
}

/*
 * client_close - CS_QUIT: every reply is in; end TLS with close_notify
 * (RFC 8446 6.1; bufferevent_openssl sends none when freed), free once it
 * has left
 */
static void
client_close(struct smtp_client *c)
{
	SSL *ssl;

	if (c->tls_closed || c->bev == NULL)
		return;
	if (!c->caps.tls || (ssl = bufferevent_openssl_get_ssl(c->bev)) == NULL) {
		c->dead = true;		/* freed by the caller's release */
		if (c->in_cb == 0)
			smtp_client_free(c);
		return;
	}
	c->tls_closed = true;
	bufferevent_disable(c->bev, EV_READ);
	if (SSL_shutdown(ssl) < 0)
		ERR_clear_error();
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS |
	    BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * smtp_client_quit - RFC 5321 4.1.1.10: QUIT, then the replies still owed
 * and the 221 (bounded by QUIT_TIMEOUT_SEC); mid-DATA there is no clean
 * way out: close at once, so that no final dot is ever sent
 */
void
smtp_client_quit(struct smtp_client *c)
{
	struct timeval tv = { QUIT_TIMEOUT_SEC, 0 };
	struct pending *pc, *next;
	unsigned owed = 0;

	if (c->bev == NULL || c->state != CS_READY || c->in_data) {
		smtp_client_free(c);
		return;
	}
	TAILQ_FOREACH(pc, &c->queue, entry)
		if (pc->line == NULL && pc->cmd == SMTP_CMD_DATA) {
			/* a 354 may be on its way: QUIT would be message text */
			smtp_client_free(c);
			return;
		}
	for (pc = TAILQ_FIRST(&c->queue); pc; pc = next) {
		next = TAILQ_NEXT(pc, entry);
		if (pc->line == NULL) {
			owed++;
			continue;
		}
		TAILQ_REMOVE(&c->queue, pc, entry);	/* never sent */
		free(pc->line);
		free(pc);
	}
	c->state = CS_QUIT;
	c->quit_replies = owed + 1;
	c->notify_drain = false;
	evbuffer_add(bufferevent_get_output(c->bev), "QUIT\r\n", 6);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	c->quit_timer = evtimer_new(c->p.base, quit_timeout_cb, c);
	evtimer_add(c->quit_timer, &tv);
	TAILQ_INSERT_TAIL(&quitting_clients, c, quitting);
}

/* smtp_clients_shutdown - the daemon is leaving: close what is still quitting */
void
smtp_clients_shutdown(void)
{
	struct smtp_client *c;

	while ((c = TAILQ_FIRST(&quitting_clients)) != NULL)
		smtp_client_free(c);
}

const struct smtp_caps *
smtp_client_caps(const struct smtp_client *c)
{
	return &c->caps;
}

size_t
smtp_client_pending(const struct smtp_client *c)
{
	return client_unsent(c);
}

void
smtp_client_set_timeout(struct smtp_client *c, const struct timeval *tv)
{
	c->p.step_timeout = *tv;
	if (c->bev)
		client_set_timeouts(c);
}

static void
client_send_line(struct smtp_client *c, const char *line)
{
	evbuffer_add_printf(bufferevent_get_output(c->bev), "%s\r\n", line);
}

/* pipeline_flush - send what may be sent now */
static void
pipeline_flush(struct smtp_client *c)
{
	struct pending *pc;
	bool waiting = false;

	if (c->state != CS_READY || c->bev == NULL)
		return;
	client_set_timeouts(c);
	TAILQ_FOREACH(pc, &c->queue, entry) {
		if (pc->line == NULL) {
			waiting = true;
			continue;
		}
		/* without PIPELINING, one command at a time (RFC 5321 4.3.1) */
		if (waiting && !c->caps.pipelining)
			return;
		client_send_line(c, pc->line);
		free(pc->line);
		pc->line = NULL;
		waiting = true;
		/* RFC 2920 3.1: DATA ends a group; the body waits for 354 */
		if (pc->cmd == SMTP_CMD_DATA)
			return;
	}
}

static void
pipeline_add(struct smtp_client *c, enum smtp_cmd cmd, char *line)
{
	struct pending *pc = xcalloc(1, sizeof(*pc));

	pc->cmd = cmd;
	pc->line = line;
	TAILQ_INSERT_TAIL(&c->queue, pc, entry);
	pipeline_flush(c);
}

void
smtp_client_mail(struct smtp_client *c, const char *from, const char *params)
{
	pipeline_add(c, SMTP_CMD_MAIL, xasprintf("MAIL FROM:<%s>%s%s", from,
	    params && *params ? " " : "", params ? params : ""));
}

void
smtp_client_rcpt(struct smtp_client *c, const char *to)
{
	smtp_client_rcpt_params(c, to, NULL);
}

void
smtp_client_rcpt_params(struct smtp_client *c, const char *to, const char *params)
{
	pipeline_add(c, SMTP_CMD_RCPT, xasprintf("RCPT TO:<%s>%s%s", to,
	    params && *params ? " " : "", params ? params : ""));
}

void
smtp_client_data(struct smtp_client *c)
{
	c->body_bol = true;
	pipeline_add(c, SMTP_CMD_DATA, xstrdup("DATA"));
}

void
smtp_client_rset(struct smtp_client *c)
{
	pipeline_add(c, SMTP_CMD_RSET, xstrdup("RSET"));
}

bool
smtp_client_body(struct smtp_client *c, const char *text, size_t len)
{
	struct evbuffer *out;
	size_t i = 0;

	if (c->bev == NULL || c->state != CS_READY)
		return false;
	out = bufferevent_get_output(c->bev);
	while (i < len) {
		const char *nl;
		size_t n;

		if (c->body_bol && text[i] == '.')
			evbuffer_add(out, ".", 1);	/* RFC 5321 4.5.2 */
		nl = memchr(text + i, '\n', len - i);
		n = nl ? (size_t)(nl - (text + i)) : len - i;
		evbuffer_add(out, text + i, n);
		i += n;
		if (nl) {
			evbuffer_add(out, "\r\n", 2);
			i++;
			c->body_bol = true;
		} else
			c->body_bol = false;
	}
	if (client_unsent(c) > CLIENT_HIWAT) {
		c->notify_drain = true;
		return true;
	}
	return false;
}

void
smtp_client_dot(struct smtp_client *c)
{
	struct pending *pc;

	if (c->bev == NULL || c->state != CS_READY)
		return;
	evbuffer_add_printf(bufferevent_get_output(c->bev), "%s.\r\n",
	    c->body_bol ? "" : "\r\n");
	c->in_data = false;
	pc = xcalloc(1, sizeof(*pc));
	pc->cmd = SMTP_CMD_DOT;
	TAILQ_INSERT_TAIL(&c->queue, pc, entry);
	client_set_timeouts(c);
}

/* ehlo_keyword - one EHLO line (after the first): learn a capability */
static void
ehlo_keyword(struct smtp_client *c, const char *kw, size_t len)
{
	char word[64];
	size_t n = 0;

	while (n < len && n + 1 < sizeof(word) && kw[n] != ' ') {
		word[n] = (char)toupper((unsigned char)kw[n]);
		n++;
	}
	word[n] = '\0';
	if (strcmp(word, "PIPELINING") == 0)
		c->caps.pipelining = true;
	else if (strcmp(word, "8BITMIME") == 0)
		c->caps.eightbitmime = true;
	else if (strcmp(word, "SMTPUTF8") == 0)
		c->caps.smtputf8 = true;
	else if (strcmp(word, "DSN") == 0)
		c->caps.dsn = true;
	else if (strcmp(word, "STARTTLS") == 0)
		c->caps.starttls = true;
	else if (strcmp(word, "AUTH") == 0 && n < len)
		str_copy(c->caps.auth, kw + n + 1, sizeof(c->caps.auth));
	else if (strcmp(word, "SIZE") == 0) {
		c->caps.size = true;
		if (n < len)
			c->caps.size_max = strtoull(kw + n + 1, NULL, 10);
	}
}

static void
client_ready(struct smtp_client *c)
{
	char esc[LOG_ESC(sizeof(c->caps.host))];

	c->state = CS_READY;
	log_info("%s client ready host=%s addr=%s tls=%s pipelining=%s", c->id,
	    log_field(esc, sizeof(esc), c->caps.host), c->caps.addr,
	    c->caps.tls ? c->caps.tls_info : "no",
	    c->caps.pipelining ? "yes" : "no");
	if (client_emit(c, SC_READY, SMTP_CMD_MAIL, SMTP_FAIL_NONE, NULL))
		pipeline_flush(c);
}

static void
client_send_ehlo(struct smtp_client *c)
{
	bool tls = c->caps.tls;
	char info[sizeof(c->caps.tls_info)];

	str_copy(info, c->caps.tls_info, sizeof(info));
	/* RFC 3207 4.2: forget what was learnt before TLS */
	c->caps.esmtp = c->caps.pipelining = c->caps.size = false;
	c->caps.eightbitmime = c->caps.smtputf8 = c->caps.starttls = false;
	c->caps.dsn = false;
	c->caps.size_max = 0;
	c->caps.auth[0] = '\0';
	c->caps.tls = tls;
	str_copy(c->caps.tls_info, info, sizeof(c->caps.tls_info));
	evbuffer_add_printf(bufferevent_get_output(c->bev), "EHLO %s\r\n", c->p.helo);
	c->state = CS_EHLO;
}

/*
 * client_dane_setup - verify the server by the target's TLSA records
 * alone (RFC 7671, RFC 7672 3.1): DANE-EE(3) without name checks,
 * DANE-TA(2) with the MX host's name as the reference identifier
 * (RFC 7672 3.2.2); false if OpenSSL takes none of them
 */
static bool
client_dane_setup(struct smtp_client *c, SSL *ssl)
{
	const struct mx_target *t = &c->targets[c->cur];
	int usable = 0;

	if (SSL_dane_enable(ssl, t->host) <= 0) {
		ERR_clear_error();
		return false;
	}
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	for (uint8_t i = 0; i < t->ntlsa; i++)
		if (SSL_dane_tlsa_add(ssl, t->tlsa[i].usage, t->tlsa[i].selector,
		    t->tlsa[i].mtype, t->tlsa[i].data, t->tlsa[i].len) > 0)
			usable++;
	ERR_clear_error();
	if (usable == 0)
		return false;
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return true;
}

static void
client_start_tls(struct smtp_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct bufferevent *tls;
	SSL *ssl;

	/* nothing the server sent before the handshake may count after it */
	evbuffer_drain(in, evbuffer_get_length(in));
	if ((ssl = SSL_new(c->p.tls)) == NULL)
		fatalx("SSL_new");
	if (c->verify_name) {
		/* RFC 6125: the certificate must name the relay as configured */
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    c->verify_name) != 1) {
			ERR_clear_error();
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(ssl, c->verify_name) != 1)
				fatalx("SSL_set1_host");
			SSL_set_tlsext_host_name(ssl, c->verify_name);
		}
	} else if (c->caps.host[0] && strchr(c->caps.host, '.'))
		SSL_set_tlsext_host_name(ssl, c->caps.host);
	if (c->tp == TP_DANE && c->targets[c->cur].dane == MX_DANE_VERIFY &&
	    !client_dane_setup(c, ssl)) {
		SSL_free(ssl);
		c->state = CS_TLS;	/* no QUIT: the server awaits a handshake */
		client_tls_fail(c, TR_TLSA_INVALID,
		    "OpenSSL takes none of its TLSA records");
		return;
	}
	if (c->tp == TP_STS || c->tp == TP_STS_TESTING) {
		/*
		 * RFC 8461 4.2: a certificate valid for the MX host's name
		 * (RFC 6125), by tls_ca_file or the system's CAs; testing
		 * verifies too, and only logs the result
		 */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, c->caps.host) != 1)
			fatalx("SSL_set1_host");
		SSL_set_verify(ssl, c->tp == TP_STS ? SSL_VERIFY_PEER :
		    SSL_VERIFY_NONE, NULL);
	}
	tls = bufferevent_openssl_filter_new(c->p.base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tls == NULL)
		fatalx("bufferevent_openssl_filter_new");
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	c->bev = tls;
	c->state = CS_TLS;
	client_setup_bev(c);
}

/*
 * client_policy_fail - a relay's requirement failed: the session ends,
 * no other target or plaintext is tried, and last_error says why
 */
static void
client_policy_fail(struct smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
client_policy_fail(struct smtp_client *c, const char *fmt, ...)
{
	char t[LOG_ESC(sizeof(c->last_error))], esc[LOG_ESC(sizeof(c->caps.host))];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	if (c->bev && c->state != CS_TLS && c->state != CS_CONNECT) {
		/*
		 * the session itself is fine: end it with QUIT (RFC 5321
		 * 4.1.1.10), a "*" first if the server awaits our AUTH
		 * response (RFC 4954 4), and wait for the replies after the
		 * owner has let go (smtp_client_free)
		 */
		struct evbuffer *o = bufferevent_get_output(c->bev);

		c->quit_replies = 1;
		if (c->state == CS_AUTH && c->auth_sent) {
			evbuffer_add(o, "*\r\n", 3);
			c->quit_replies++;
		}
		evbuffer_add(o, "QUIT\r\n", 6);
		c->linger = true;
	}
	log_info("%s client relay-refused host=%s addr=%s reason=\"%s\"", c->id,
	    log_field(esc, sizeof(esc), c->caps.host), c->caps.addr,
	    log_text(t, sizeof(t), c->last_error));
	client_fail(c, SMTP_FAIL_POLICY, NULL);
}

/* auth_done - a SASL step has its answer: send it */
static void
auth_done(void *arg, enum smtp_auth_result res, const char *mech,
    const char *out)
{
	struct smtp_client *c = arg;
	struct evbuffer *o;

	if (c->dead || c->state != CS_AUTH || c->bev == NULL)
		return;
	client_hold(c);
	switch (res) {
	case SMTP_AUTH_NOMECH:
		client_policy_fail(c, "no AUTH mechanism in common (the relay "
		    "offers %s)", c->caps.auth);
		break;
	case SMTP_AUTH_FAIL:
		client_policy_fail(c, "AUTH %s: %s", c->auth_mech[0] ?
		    c->auth_mech : "", out ? out : "SASL failure");
		break;
	case SMTP_AUTH_NEXT:
		o = bufferevent_get_output(c->bev);
		if (!c->auth_sent) {
			/* RFC 4954 4: "=" is an empty initial response */
			str_copy(c->auth_mech, mech ? mech : "", sizeof(c->auth_mech));
			c->auth_sent = true;
			if (out == NULL)
				evbuffer_add_printf(o, "AUTH %s\r\n", c->auth_mech);
			else
				evbuffer_add_printf(o, "AUTH %s %s\r\n", c->auth_mech,
				    out[0] ? out : "=");
		} else
			evbuffer_add_printf(o, "%s\r\n", out ? out : "");
		break;
	}
	client_release(c);
}

/* auth_begin - after EHLO over TLS: AUTH with the relay's credentials */
static void
auth_begin(struct smtp_client *c)
{
	if (c->caps.auth[0] == '\0') {
		client_policy_fail(c, "the relay offers no AUTH");
		return;
	}
	c->state = CS_AUTH;
	c->auth_sent = false;
	c->auth_mech[0] = '\0';
	if (c->auth_x)
		c->p.auth->end(c->auth_x);
	c->auth_x = c->p.auth->start(c->auth_user, c->auth_pass ? c->auth_pass : "",
	    c->verify_name ? c->verify_name : c->caps.host, c->caps.auth,
	    auth_done, c);
}

/* auth_reply - the server's answer to AUTH or to our last response */
static void
auth_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char esc[LOG_ESC(sizeof(c->caps.host))];

	if (r->code == 334 && c->auth_sent) {
		c->p.auth->step(c->auth_x, r->text, auth_done, c);
		return;
	}
	if (r->code == 235 && c->auth_sent) {
		log_info("%s client auth host=%s mech=%s user=%s", c->id,
		    log_field(esc, sizeof(esc), c->caps.host), c->auth_mech,
		    c->auth_user);
		c->p.auth->end(c->auth_x);
		c->auth_x = NULL;
		client_ready(c);
		return;
	}
	client_policy_fail(c, "AUTH %s refused: %d%s%s %s", c->auth_mech,
	    r->code, r->esc[0] ? " " : "", r->esc, r->text);
}

/*
 * client_tls_fail - this target cannot meet its TLS policy (DANE or
 * MTA-STS enforce): say QUIT when the session is in plaintext SMTP, note
 * why (the session's failure if every target fails) and try the next MX
 * (RFC 7672 2.2, RFC 8461 5)
 */
static void
client_tls_fail(struct smtp_client *c, enum tlsrpt_result result,
    const char *fmt, ...)
{
	char why[256], t[LOG_ESC(sizeof(why))], esc[LOG_ESC(sizeof(c->caps.host))];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (c->bev && (c->state == CS_EHLO || c->state == CS_HELO ||
	    c->state == CS_STARTTLS))
		(void)send(bufferevent_getfd(c->bev), "QUIT\r\n", 6,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
	c->policy_name = tp_name(c->tp);
	metrics_tls_policy(c->tp == TP_DANE, false);
	client_tlsrpt(c, false, result, why);
	snprintf(c->policy_error, sizeof(c->policy_error), "%s: %s: %s",
	    c->policy_name, c->caps.host, why);
	log_info("%s client policy-failed policy=%s host=%s addr=%s "
	    "reason=\"%s\"", c->id, c->policy_name,
	    log_field(esc, sizeof(esc), c->caps.host), c->caps.addr,
	    log_text(t, sizeof(t), why));
	client_next(c, c->policy_error);
}

/* client_sts_testing - MTA-STS testing (RFC 8461 5): what enforce would refuse */
static void
client_sts_testing(struct smtp_client *c, enum tlsrpt_result result,
    const char *why)
{
	char t[LOG_ESC(256)], esc[LOG_ESC(sizeof(c->caps.host))];

	log_info("%s client policy-testing policy=mta-sts host=%s addr=%s "
	    "reason=\"%s\" (testing: delivered anyway)", c->id,
	    log_field(esc, sizeof(esc), c->caps.host), c->caps.addr,
	    log_text(t, sizeof(t), why));
	client_tlsrpt(c, false, result, why);
}

/* ehlo_done - EHLO answered 2xx: STARTTLS, AUTH or ready */
static void
ehlo_done(struct smtp_client *c)
{
	c->caps.esmtp = true;
	if (c->caps.starttls && !c->caps.tls && !c->plaintext && c->p.tls) {
		evbuffer_add_printf(bufferevent_get_output(c->bev), "STARTTLS\r\n");
		c->state = CS_STARTTLS;
		return;
	}
	if (client_tls_must(c) && !c->caps.tls) {
		client_tls_fail(c, TR_STARTTLS_NOT_SUPPORTED,
		    "no STARTTLS offered");
		return;
	}
	if (c->tp == TP_STS_TESTING && !c->caps.tls)
		client_sts_testing(c, TR_STARTTLS_NOT_SUPPORTED, "no TLS");
	if (c->p.tls_required && !c->caps.tls) {
		client_policy_fail(c, "the relay offers no STARTTLS");
		return;
	}
	if (c->p.auth && c->auth_user) {
		auth_begin(c);
		return;
	}
	client_ready(c);
}

/* client_reply - one whole reply arrived */
static void
client_reply(struct smtp_client *c, struct smtp_reply *r)
{
	struct pending *pc;
	char why[SMTP_REPLY_TEXT_MAX + 16];

	switch (c->state) {
	case CS_GREETING:
		if (smtp_reply_class(r) != SMTP_CLASS_OK) {
			/*
			 * RFC 5321 3.1: a 554 greeting refuses, and the server
			 * waits for our QUIT: say it (nothing else is queued
			 * before the greeting; its 221 is not awaited), then try
			 * the next MX
			 */
			if (c->bev && r->code != 421)
				(void)send(bufferevent_getfd(c->bev), "QUIT\r\n", 6,
				    MSG_NOSIGNAL | MSG_DONTWAIT);
			c->last_refusal = *r;
			snprintf(why, sizeof(why), "greeting %d %s", r->code, r->text);
			client_next(c, why);
			return;
		}
		c->reached = true;
		client_send_ehlo(c);
		return;
	case CS_EHLO:
		if (r->code == 421) {
			c->last_refusal = *r;
			client_next(c, "421 to EHLO");
			return;
		}
		if (smtp_reply_class(r) != SMTP_CLASS_OK) {
			if (client_tls_must(c) && !c->caps.tls) {
				client_tls_fail(c, TR_STARTTLS_NOT_SUPPORTED,
				    "EHLO refused: %d %s", r->code, r->text);
				return;
			}
			if (c->p.tls_required && !c->caps.tls) {
				client_policy_fail(c, "EHLO refused: %d %s", r->code,
				    r->text);
				return;
			}
			evbuffer_add_printf(bufferevent_get_output(c->bev),
			    "HELO %s\r\n", c->p.helo);
			c->state = CS_HELO;
			return;
		}
		ehlo_done(c);
		return;
	case CS_HELO:
		if (c->p.auth && c->auth_user && smtp_reply_class(r) == SMTP_CLASS_OK) {
			client_policy_fail(c, "EHLO refused: AUTH needs ESMTP");
			return;
		}
		if (smtp_reply_class(r) != SMTP_CLASS_OK) {
			c->last_refusal = *r;
			snprintf(why, sizeof(why), "HELO %d %s", r->code, r->text);
			client_next(c, why);
			return;
		}
		client_ready(c);
		return;
	case CS_AUTH:
		auth_reply(c, r);
		return;
	case CS_STARTTLS:
		if (r->code != 220 && client_tls_must(c)) {
			client_tls_fail(c, TR_STARTTLS_NOT_SUPPORTED,
			    "STARTTLS refused: %d %s", r->code, r->text);
			return;
		}
		if (r->code != 220 && c->p.tls_required) {
			client_policy_fail(c, "STARTTLS refused: %d %s", r->code,
			    r->text);
			return;
		}
		if (r->code != 220) {
			client_ready(c);	/* opportunistic: go on in plaintext */
			return;
		}
		client_start_tls(c);
		return;
	case CS_READY:
		if (r->code == 421) {
			client_fail(c, SMTP_FAIL_CLOSING, r);
			return;
		}
		if ((pc = TAILQ_FIRST(&c->queue)) == NULL || pc->line != NULL) {
			client_fail(c, SMTP_FAIL_PROTOCOL, r);
			return;
		}
		TAILQ_REMOVE(&c->queue, pc, entry);
		{
			enum smtp_cmd cmd = pc->cmd;

			free(pc);
			if (cmd == SMTP_CMD_DATA && r->code == 354)
				c->in_data = true;
			if (!client_emit(c, SC_REPLY, cmd, SMTP_FAIL_NONE, r))
				return;
		}
		pipeline_flush(c);
		return;
	case CS_QUIT:
		if (--c->quit_replies == 0 || r->code == 221 || r->code == 421)
			client_close(c);
		return;
	default:
		client_fail(c, SMTP_FAIL_PROTOCOL, r);
		return;
	}
}

/* quit_abort - CS_QUIT and the server misbehaves or goes: just close */
static void
quit_abort(struct smtp_client *c)
{
	c->dead = true;
	client_close_bev(c);
	if (c->in_cb == 0)
		smtp_client_free(c);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	client_hold(c);
	client_read(c, bev);
	client_release(c);
}

static void
client_read(struct smtp_client *c, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->dead && c->bev == bev && c->state != CS_DEAD &&
	    c->state != CS_TLS && !c->tls_closed) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		enum smtp_parse st;

		if (line == NULL) {
			if (evbuffer_get_length(in) > SMTP_REPLY_MAX) {
				if (c->state == CS_QUIT)
					quit_abort(c);
				else if (c->state == CS_READY)
					client_fail(c, SMTP_FAIL_PROTOCOL, NULL);
				else
					client_next(c, "reply line too long");
			}
			return;
		}
		c->reply_octets += len;
		if (c->state == CS_EHLO && c->reply.code != 0 && len > 4)
			ehlo_keyword(c, line + 4, len - 4);
		st = smtp_reply_parse(&c->reply, line, len);
		free(line);
		if (st == SMTP_PARSE_ERROR || c->reply_octets > SMTP_REPLY_MAX) {
			if (c->state == CS_QUIT)
				quit_abort(c);
			else if (c->state == CS_READY)
				client_fail(c, SMTP_FAIL_PROTOCOL, NULL);
			else
				client_next(c, "not an SMTP reply");
			return;
		}
		if (st == SMTP_PARSE_DONE) {
			struct smtp_reply r = c->reply;

			memset(&c->reply, 0, sizeof(c->reply));
			c->reply_octets = 0;
			client_reply(c, &r);
		}
	}
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	if (c->state == CS_QUIT) {
		if (c->tls_closed && client_unsent(c) == 0)
			smtp_client_free(c);	/* the close_notify has left */
		return;
	}
	if (!c->dead && c->notify_drain && c->state == CS_READY &&
	    client_unsent(c) <= CLIENT_LOWAT) {
		c->notify_drain = false;
		client_emit(c, SC_DRAINED, SMTP_CMD_DOT, SMTP_FAIL_NONE, NULL);
	}
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;

	client_hold(c);
	if (!c->dead)
		client_event(c, bev, what);
	client_release(c);
}

static void
client_event(struct smtp_client *c, struct bufferevent *bev, short what)
{
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CS_CONNECT) {
			c->state = CS_GREETING;
			if (c->p.implicit_tls && c->p.tls)
				client_start_tls(c);	/* RFC 8314 3.3 */
			return;
		}
		if (c->state == CS_TLS) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			char esc[LOG_ESC(sizeof(c->caps.host))], dane[32] = "";
			uint8_t u, sel, mt;

			long v = SSL_get_verify_result(ssl);

			if (c->tp == TP_DANE &&
			    c->targets[c->cur].dane == MX_DANE_VERIFY) {
				if (v != X509_V_OK ||
				    SSL_get0_dane_authority(ssl, NULL, NULL) < 0) {
					client_tls_fail(c, TR_VALIDATION_FAILURE,
					    "TLS: no TLSA record matched");
					return;
				}
				(void)SSL_get0_dane_tlsa(ssl, &u, &sel, &mt, NULL, NULL);
				snprintf(dane, sizeof(dane), " dane=verified tlsa=%u.%u.%u",
				    u, sel, mt);
			} else if (c->tp == TP_DANE)
				str_copy(dane, " dane=encrypt", sizeof(dane));
			else if (c->tp == TP_STS) {
				if (v != X509_V_OK) {
					client_tls_fail(c, x509_result(v),
					    "TLS: the certificate does not "
					    "verify: %s",
					    X509_verify_cert_error_string(v));
					return;
				}
				str_copy(dane, " mta-sts=verified", sizeof(dane));
			} else if (c->tp == TP_STS_TESTING && v != X509_V_OK) {
				char why[160];

				snprintf(why, sizeof(why), "the certificate does not "
				    "verify: %s", X509_verify_cert_error_string(v));
				client_sts_testing(c, x509_result(v), why);
			}
			c->caps.tls = true;
			metrics_tls(false, SSL_get_version(ssl));
			if (client_tls_must(c))
				metrics_tls_policy(c->tp == TP_DANE, true);
			if (c->tp != TP_STS_TESTING || v == X509_V_OK)
				client_tlsrpt(c, true, TR_VALIDATION_FAILURE, NULL);
			snprintf(c->caps.tls_info, sizeof(c->caps.tls_info), "%s %s",
			    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
			log_info("%s client tls host=%s version=%s cipher=%s%s", c->id,
			    log_field(esc, sizeof(esc), c->caps.host),
			    SSL_get_version(ssl),
			    SSL_get_cipher_name(ssl), dane);
			if (c->p.implicit_tls && !c->reached)
				c->state = CS_GREETING;	/* the greeting comes now */
			else
				client_send_ehlo(c);
		}
		return;
	}
	if (c->state == CS_QUIT) {
		quit_abort(c);
		return;
	}
	if (c->state == CS_READY || c->state == CS_AUTH) {
		client_fail(c, (what & BEV_EVENT_TIMEOUT) ? SMTP_FAIL_TIMEOUT :
		    SMTP_FAIL_LOST, NULL);
		return;
	}
	if (c->state == CS_TLS) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
		char buf[256] = "handshake failed";

		if (e)
			ERR_error_string_n(e, buf, sizeof(buf));
		if (c->tp == TP_DANE && v != X509_V_OK)
			client_tls_fail(c, TR_VALIDATION_FAILURE, "TLS: the "
			    "certificate matches no TLSA record: %s",
			    X509_verify_cert_error_string(v));
		else if (c->tp == TP_STS && v != X509_V_OK)
			client_tls_fail(c, x509_result(v), "TLS: the certificate "
			    "does not verify: %s", X509_verify_cert_error_string(v));
		else if (client_tls_must(c))
			client_tls_fail(c, TR_VALIDATION_FAILURE, "TLS: %s", buf);
		else if (c->p.tls_required && v != X509_V_OK)
			client_policy_fail(c, "TLS: the certificate of %s does not "
			    "verify: %s", c->verify_name ? c->verify_name :
			    c->caps.host, X509_verify_cert_error_string(v));
		else if (c->p.tls_required)
			client_policy_fail(c, "TLS: %s", buf);
		else
			client_next(c, buf);
		return;
	}
	if (c->state == CS_CONNECT) {
		/* the connect's own error (libevent keeps it for the deferred cb) */
		int e = EVUTIL_SOCKET_ERROR();

		snprintf(c->last_error, sizeof(c->last_error), "connect %s: %s",
		    c->caps.addr, (what & BEV_EVENT_TIMEOUT) ? "timeout" :
		    e ? strerror(e) : "connection failed");
		client_next(c, c->last_error);
		return;
	}
	client_next(c, (what & BEV_EVENT_TIMEOUT) ? "timeout" :
	    (what & BEV_EVENT_EOF) ? "connection closed" : "connection failed");
}

/* smtp_client_policy - see client.h */
const char *
smtp_client_policy(const struct smtp_client *c)
{
	return c->policy_name ? c->policy_name : "";
}

/* smtp_client_last_error - see client.h */
const char *
smtp_client_last_error(const struct smtp_client *c)
{
	return c->last_error;
}
