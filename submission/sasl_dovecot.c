/*
 * sasl_dovecot.c - AUTH through Dovecot's auth service (sasl_backend
 * dovecot SOCKET, doc/users.md "Dovecot"): the same back-end interface as
 * sasl_cyrus.c (struct sub_sasl_ops), so the AUTH command, its failure
 * delays and its limits (auth.c, limits.c) are the same for both.
 *
 * One connection to Dovecot's auth-client socket serves every session:
 * it is opened on the loop at start, and again on demand after it is lost
 * (by the next EHLO's mechanism list or the next AUTH; never in a loop).
 * The handshake (doc.dovecot.org "Authentication protocol", version 1):
 * we send VERSION and CPID, Dovecot sends VERSION, MECH..., SPID, CUID,
 * COOKIE and DONE.  Each AUTH exchange is one request id on it: AUTH (with
 * the initial response), then CONT lines, until OK or FAIL.  The wire
 * format is dovecot_auth.c's (dav_parse, dav_format_*).
 *
 * Everything runs on the event loop and nothing waits: a request sent
 * stays in a list until Dovecot answers it; one made while the connection
 * is being (re)made waits in the same list and is sent after DONE.  The
 * connection is lost, with every request on it answered TEMP (454 4.7.0),
 * when Dovecot closes it, sends a line we cannot parse or longer than
 * DAV_LINE_MAX, or says nothing for DAV_REPLY_TIMEOUT while a request or
 * the handshake waits for it.
 * The requests at once are bounded (DAV_REQUESTS_MAX; more get TEMP), and
 * so is what we hold of a line and of the mechanism list.
 *
 * Mechanisms: those of Dovecot's auth_mechanisms that we can name a login
 * in (sub_sasl_login_name: PLAIN, LOGIN, SCRAM-SHA-*), in sasl_cyrus.c's
 * order, so that failures are counted per user before Dovecot checks a
 * password; no -PLUS variant (no channel binding is given).  "secured" is
 * always sent, since AUTH is refused before TLS (doc/protocol.md "AUTH");
 * so are lip= and rip= (the session's addresses, for Dovecot's logs and
 * its passdb's allow_nets) and "no-penalty": Dovecot's auth penalty
 * (2 s, doubling, per rip) would stack on the delays chamoisd already
 * makes (limits.c), which are then the same as with Cyrus.
 * A FAIL with "temp" is a back-end failure (TEMP), any other FAIL a wrong
 * password or unknown user (FAIL), as with Cyrus.  Passwords and SASL
 * payloads are never logged; lines that held one are wiped.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "../common/limits.h"
#include "../common/log.h"
#include "../common/util.h"
#include "dovecot_auth.h"
#include "submission.h"

/* the mechanisms we offer when Dovecot has them, in this order */
static const char *const dav_mechs[] = { "PLAIN", "LOGIN", "SCRAM-SHA-256",
    "SCRAM-SHA-1" };
#define DAV_REPLY_TIMEOUT	30	/* seconds Dovecot may take to answer */
#define DAV_REQUESTS_MAX	1024	/* exchanges waiting for Dovecot at once */
/* an AUTH or CONT line: the client's response and the fields around it */
#define DAV_OUT_MAX		(AUTH_LINE_MAX + 256)

struct sub_sasl {
	TAILQ_ENTRY(sub_sasl) entry;	/* in dav.requests while queued or sent */
	bool queued;		/* in dav.requests */
	bool in_exchange;	/* a CONT came: a step may follow */
	unsigned long id;	/* the request id of this exchange */
	unsigned gen;		/* the connection the exchange began on */
	char *line;		/* formatted, not yet sent (before DONE) */
	size_t linelen;
	char mech[32];
	char lip[64], rip[64];	/* the session's addresses, IP only */
	char *user;		/* after OK */
	char *attempted;	/* the login name the client sent */
	sub_sasl_done_fn *done;
	uint64_t ref;
	bool (*name_ok)(void *, const char *);
	void *name_arg;
};

enum dav_state { DAV_DOWN, DAV_HANDSHAKE, DAV_READY };

static struct {
	struct event_base *base;
	char *path;
	struct bufferevent *bev;
	enum dav_state state;
	unsigned gen;		/* counts connections */
	unsigned long next_id;
	char mechs[64];		/* what we offer, from the last handshake */
	char seen[64];		/* the one being read */
	TAILQ_HEAD(, sub_sasl) requests;
	unsigned nrequests;
} dav = { .requests = TAILQ_HEAD_INITIALIZER(dav.requests) };

static void dav_connect(void);

/* wipe - free a line or message that may hold a password */
static void
wipe(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	explicit_bzero(buf, len);
	free(buf);
}

/* answer - a request's result goes back to its caller */
static void
answer(struct sub_sasl *s, enum sub_sasl_result r, const char *out)
{
	sub_sasl_done_fn *done = s->done;

	if (s->queued) {
		TAILQ_REMOVE(&dav.requests, s, entry);
		s->queued = false;
		dav.nrequests--;
	}
	wipe(s->line, s->linelen);
	s->line = NULL;
	if (r != SUB_SASL_CONTINUE)
		s->in_exchange = false;
	s->done = NULL;
	if (dav.nrequests == 0 && dav.state == DAV_READY)
		bufferevent_set_timeouts(dav.bev, NULL, NULL);
	if (done != NULL)
		done(s, r, out, s->ref);
}

/*
 * dav_drop - the connection is gone (why logged; NULL: we end it):
 * every request on it is TEMP
 */
static void
dav_drop(const char *why)
{
	struct sub_sasl *s;

	if (why != NULL)
		log_warnx("sasl: dovecot %s: %s", dav.path, why);
	if (dav.bev != NULL) {
		bufferevent_free(dav.bev);
		dav.bev = NULL;
	}
	dav.state = DAV_DOWN;
	while ((s = TAILQ_FIRST(&dav.requests)) != NULL)
		answer(s, SUB_SASL_TEMP, "");
}

/* waiting - Dovecot owes us something: it has DAV_REPLY_TIMEOUT to say it */
static void
waiting(void)
{
	struct timeval tv = { DAV_REPLY_TIMEOUT, 0 };

	bufferevent_set_timeouts(dav.bev, &tv, NULL);
}

/* send_line - one line to Dovecot (connected) */
static void
send_line(struct sub_sasl *s)
{
	bufferevent_write(dav.bev, s->line, s->linelen);
	wipe(s->line, s->linelen);
	s->line = NULL;
	waiting();
}

/* request - s's line goes out, or waits for the handshake */
static void
request(struct sub_sasl *s, char *line, size_t len, sub_sasl_done_fn *done,
    uint64_t ref)
{
	s->line = line;
	s->linelen = len;
	s->done = done;
	s->ref = ref;
	if (dav.nrequests >= DAV_REQUESTS_MAX) {
		log_warnx("sasl: dovecot %s: %u exchanges waiting already",
		    dav.path, dav.nrequests);
		answer(s, SUB_SASL_TEMP, "");
		return;
	}
	TAILQ_INSERT_TAIL(&dav.requests, s, entry);
	s->queued = true;
	dav.nrequests++;
	if (dav.state == DAV_DOWN)
		dav_connect();	/* may answer s at once (TEMP) */
	else if (dav.state == DAV_READY)
		send_line(s);
}

/* find - the request a server line answers */
static struct sub_sasl *
find(unsigned long id)
{
	struct sub_sasl *s;

	TAILQ_FOREACH(s, &dav.requests, entry)
		if (s->id == id && s->line == NULL)
			return s;
	return NULL;
}

/* append - word to the space-separated list (size fits, checked) */
static void
append(char *list, size_t size, const char *word)
{
	size_t n = strlen(list);

	if (n + (n > 0) + strlen(word) + 1 > size)
		return;
	if (n > 0)
		list[n++] = ' ';
	memcpy(list + n, word, strlen(word) + 1);
}

/* handshake_done - DONE: the mechanism list, then the waiting requests */
static void
handshake_done(void)
{
	struct sub_sasl *s;
	char list[sizeof(dav.mechs)] = "";

	for (size_t i = 0; i < nitems(dav_mechs); i++)
		if (sub_sasl_mech_listed(dav.seen, dav_mechs[i]))
			append(list, sizeof(list), dav_mechs[i]);
	str_copy(dav.mechs, list, sizeof(dav.mechs));
	dav.state = DAV_READY;
	log_info("sasl: dovecot %s ready mechanisms=\"%s\"", dav.path, list);
	TAILQ_FOREACH(s, &dav.requests, entry)
		if (s->line != NULL)
			send_line(s);
	if (dav.nrequests == 0)
		bufferevent_set_timeouts(dav.bev, NULL, NULL);
}

/* server_line - one line from Dovecot; false: drop the connection */
static bool
server_line(char *line, size_t len)
{
	struct dav_line l;
	struct sub_sasl *s;

	switch (dav_parse(line, len, &l)) {
	case DAV_BAD:
		return false;
	case DAV_VERSION:
		return dav.state == DAV_HANDSHAKE;
	case DAV_MECH:
		/* only ours are kept: a long list of others does not crowd them out */
		if (dav.state == DAV_HANDSHAKE && !l.private_mech)
			for (size_t i = 0; i < nitems(dav_mechs); i++)
				if (strcasecmp(l.arg, dav_mechs[i]) == 0)
					append(dav.seen, sizeof(dav.seen),
					    dav_mechs[i]);
		return true;
	case DAV_DONE:
		if (dav.state == DAV_HANDSHAKE)
			handshake_done();
		return true;
	case DAV_OK:
	case DAV_CONT:
	case DAV_FAIL:
		break;
	default:
		return true;	/* SPID, CUID, COOKIE and what may come later */
	}
	if ((s = find(l.id)) == NULL)
		return false;	/* an answer to nothing we asked */
	if (l.kind == DAV_CONT) {
		/* base64 (RFC 4954 4): nothing else goes into a 334 */
		for (const char *p = l.arg; *p != '\0'; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				return false;
		if (strlen(l.arg) >= SUB_SASL_OUT_MAX)
			return false;
		s->in_exchange = true;
		answer(s, SUB_SASL_CONTINUE, l.arg);
	} else if (l.kind == DAV_OK) {
		const char *u = l.user != NULL && l.user[0] != '\0' ? l.user :
		    s->attempted;

		if (u == NULL) {
			log_warnx("sasl: dovecot mech=%s authenticated without "
			    "a user name", s->mech);
			answer(s, SUB_SASL_TEMP, "");
			return true;
		}
		free(s->user);
		s->user = xstrdup(u);
		answer(s, SUB_SASL_OK, "");
	} else
		answer(s, l.temp ? SUB_SASL_TEMP : SUB_SASL_FAIL, "");
	return true;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	(void)arg;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		bool ok = len <= DAV_LINE_MAX && server_line(line, len);

		free(line);
		if (!ok) {
			dav_drop("protocol error");
			return;
		}
		if (dav.bev == NULL)
			return;
	}
	if (evbuffer_get_length(in) > DAV_LINE_MAX)
		dav_drop("line too long");
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_TIMEOUT)
		dav_drop("no answer");
	else if (what & BEV_EVENT_EOF)
		dav_drop("connection closed");
	else
		dav_drop(evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* dav_connect - open the connection and send our half of the handshake */
static void
dav_connect(void)
{
	struct sockaddr_un sun;
	char hello[64];

	if (dav.base == NULL || dav.path == NULL || dav.state != DAV_DOWN)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (!str_copy(sun.sun_path, dav.path, sizeof(sun.sun_path))) {
		dav_drop("socket path too long");
		return;
	}
	dav.bev = bufferevent_socket_new(dav.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (dav.bev == NULL) {
		dav_drop("cannot make a socket");
		return;
	}
	dav.state = DAV_HANDSHAKE;
	dav.gen++;
	dav.seen[0] = '\0';
	bufferevent_setcb(dav.bev, read_cb, NULL, event_cb, NULL);
	bufferevent_enable(dav.bev, EV_READ | EV_WRITE);
	waiting();		/* the handshake too */
	bsnprintf(hello, sizeof(hello), "VERSION\t1\t2\nCPID\t%ld\n",
	    (long)getpid());
	bufferevent_write(dav.bev, hello, strlen(hello));
	if (bufferevent_socket_connect(dav.bev, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1) {
		char why[256];

		bsnprintf(why, sizeof(why), "cannot connect: %s",
		    strerror(errno));
		dav_drop(why);
	}
}

void
sub_dovecot_init(struct event_base *base, const char *socket_path)
{
	dav.base = base;
	if (dav.path != NULL && strcmp(dav.path, socket_path) == 0)
		return;
	if (dav.bev != NULL)
		dav_drop("sasl_backend changed");
	free(dav.path);
	dav.path = xstrdup(socket_path);
	dav.mechs[0] = '\0';
	dav_connect();
}

void
sub_dovecot_shutdown(void)
{
	dav_drop(NULL);
	free(dav.path);
	dav.path = NULL;
	dav.base = NULL;
	dav.next_id = 0;
}

/* ip_of - the IP of "IP;PORT" (libsasl2's form, which auth.c gives) */
static void
ip_of(char *out, size_t size, const char *ipport)
{
	size_t n = ipport != NULL ? strcspn(ipport, ";") : 0;

	out[0] = '\0';
	if (n > 0 && n < size) {
		memcpy(out, ipport, n);
		out[n] = '\0';
	}
}

static struct sub_sasl *
dav_session(const char *hostname, const char *local, const char *remote,
    unsigned ssf)
{
	struct sub_sasl *s;

	(void)hostname;
	(void)ssf;
	if (dav.path == NULL) {
		log_warnx("sasl: dovecot session before sub_dovecot_init");
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	ip_of(s->lip, sizeof(s->lip), local);
	ip_of(s->rip, sizeof(s->rip), remote);
	return s;
}

static void
dav_free(struct sub_sasl *s)
{
	if (s == NULL)
		return;
	if (s->queued) {
		TAILQ_REMOVE(&dav.requests, s, entry);
		dav.nrequests--;
	}
	wipe(s->line, s->linelen);
	free(s->user);
	free(s->attempted);
	free(s);
}

/*
 * dav_mechs_list - what EHLO offers: the last handshake's list; a lost
 * connection is made again now, for the AUTH that may follow
 */
static const char *
dav_mechs_list(struct sub_sasl *s)
{
	(void)s;
	if (dav.state == DAV_DOWN)
		dav_connect();
	return dav.mechs;
}

/*
 * decode - a client's base64 into a new buffer (*out, *outlen octets,
 * NUL-terminated); -1 if it is not base64
 */
static int
decode(const char *b64, char **out, size_t *outlen)
{
	size_t n = strlen(b64), pad = 0;
	unsigned char *buf;
	int r;

	if (n % 4 != 0 || n > AUTH_LINE_MAX)
		return -1;
	buf = xmalloc(n / 4 * 3 + 1);
	if ((r = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n)) < 0) {
		wipe((char *)buf, n / 4 * 3 + 1);
		return -1;
	}
	/* EVP_DecodeBlock counts the padding's octets too */
	while (pad < 2 && pad < n && b64[n - 1 - pad] == '=')
		pad++;
	*outlen = (size_t)r - pad;
	buf[*outlen] = '\0';
	*out = (char *)buf;
	return 0;
}

/*
 * name_refused - note the login name that msg (base64) carries and ask
 * the caller's check; *bad when msg is not base64
 */
static bool
name_refused(struct sub_sasl *s, const char *msg, bool *bad)
{
	char name[257], *in;
	size_t len;

	*bad = false;
	if (s->attempted != NULL || msg == NULL)
		return false;
	if (decode(msg, &in, &len) == -1) {
		*bad = true;
		return false;
	}
	if (sub_sasl_login_name(s->mech, in, len, name, sizeof(name)))
		s->attempted = xstrdup(name);
	wipe(in, len + 1);
	return s->attempted != NULL && s->name_ok != NULL &&
	    !s->name_ok(s->name_arg, s->attempted);
}

static void
dav_start_async(struct sub_sasl *s, const char *mech, const char *initial,
    sub_sasl_done_fn *done, uint64_t ref)
{
	char *line = xmalloc(DAV_OUT_MAX);
	const char *resp = initial;
	bool bad;
	int n;

	free(s->user);
	s->user = NULL;
	free(s->attempted);
	s->attempted = NULL;
	s->in_exchange = false;
	s->done = done;
	s->ref = ref;
	if (!sub_sasl_mech_listed(dav.mechs, mech) || !str_copy(s->mech, mech,
	    sizeof(s->mech))) {
		free(line);
		answer(s, SUB_SASL_NOMECH, "");
		return;
	}
	/* RFC 4954 4: "=" is a present but empty initial response */
	if (resp != NULL && strcmp(resp, "=") == 0)
		resp = "";
	if (name_refused(s, resp, &bad) || bad) {
		free(line);
		answer(s, bad ? SUB_SASL_BADPROT : SUB_SASL_REFUSED, "");
		return;
	}
	s->id = ++dav.next_id;
	if (s->id > 0xffffffffUL)
		s->id = dav.next_id = 1;
	s->gen = dav.state == DAV_DOWN ? dav.gen + 1 : dav.gen;
	/*
	 * Dovecot's own auth penalty is off: the failures are delayed and
	 * counted here, per address and per user, as with Cyrus (limits.c)
	 */
	if ((n = dav_format_auth_from(line, DAV_OUT_MAX, s->id, mech, true,
	    resp, s->lip[0] ? s->lip : NULL, s->rip[0] ? s->rip : NULL,
	    true)) < 0) {
		wipe(line, DAV_OUT_MAX);
		answer(s, SUB_SASL_BADPROT, "");
		return;
	}
	request(s, line, (size_t)n, done, ref);
}

static void
dav_step_async(struct sub_sasl *s, const char *response,
    sub_sasl_done_fn *done, uint64_t ref)
{
	char *line;
	bool bad;
	int n;

	s->done = done;
	s->ref = ref;
	if (!s->in_exchange || response == NULL) {
		answer(s, SUB_SASL_BADPROT, "");
		return;
	}
	/* the exchange was on a connection that is gone: Dovecot forgot it */
	if (dav.state == DAV_DOWN || s->gen != dav.gen) {
		answer(s, SUB_SASL_TEMP, "");
		return;
	}
	if (name_refused(s, response, &bad) || bad) {
		answer(s, bad ? SUB_SASL_BADPROT : SUB_SASL_REFUSED, "");
		return;
	}
	line = xmalloc(DAV_OUT_MAX);
	if ((n = dav_format_cont(line, DAV_OUT_MAX, s->id, response)) < 0) {
		wipe(line, DAV_OUT_MAX);
		answer(s, SUB_SASL_BADPROT, "");
		return;
	}
	request(s, line, (size_t)n, done, ref);
}

static const char *
dav_user(struct sub_sasl *s)
{
	return s->user;
}

static const char *
dav_attempted(struct sub_sasl *s)
{
	return s->attempted;
}

static void
dav_set_name_check(struct sub_sasl *s, bool (*check)(void *, const char *),
    void *arg)
{
	s->name_ok = check;
	s->name_arg = arg;
}

const struct sub_sasl_ops sub_sasl_dovecot_ops = {
	.session = dav_session,
	.free = dav_free,
	.mechs = dav_mechs_list,
	.start_async = dav_start_async,
	.step_async = dav_step_async,
	.user = dav_user,
	.attempted = dav_attempted,
	.set_name_check = dav_set_name_check,
};
