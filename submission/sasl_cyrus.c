/*
 * sasl_cyrus.c - the Cyrus libsasl2 adapter (STYLE 15, third layer): the
 * only file that includes <sasl/sasl.h>.  The AUTH protocol layer above
 * it sees base64 lines in and out and a SUB_SASL_* result, nothing else.
 *
 * Configuration comes from option callbacks only (chamois.conf(5),
 * sasl_db): passwords are checked by the sasldb auxprop plugin against the
 * file named by sasl_db, and no system-wide SASL file is read (the config
 * path is pointed at a place where no file can exist, so a stray
 * /etc/sasl2/chamois.conf has no effect).  The sasldb file is opened by
 * libsasl2 on every look-up, so users added with saslpasswd2 can log in at
 * once; sub_sasl_reconfigure() (SIGHUP) changes the path for sessions made
 * after it.
 *
 * Realms: users log in with "localpart@domain" (doc/users.md) and the sasldb
 * entry is made with "saslpasswd2 -u domain localpart".  The session is
 * made with no user_realm, so libsasl2's own canonicalisation (INTERNAL)
 * only trims blanks at both ends (" alice@example.org" is alice) and the
 * sasldb plugin splits the rest at the '@' into user and realm, matched
 * exactly (letter case matters); the authenticated name (SASL_USERNAME) is
 * the full address.  A name without '@' would get the server's host name
 * as realm.  The limits key a name as sub_user_key() does (limits.c).
 *
 * Results (STYLE 8): SASL_NOUSER is a plain failure like a wrong password,
 * so that the reply does not tell which names exist.  A failure while the
 * sasldb file cannot be read is a back-end failure (TEMP), not a wrong
 * password.  Passwords and SASL payloads are never logged; libsasl2's own
 * messages go to log_debug, without its protocol traces.
 *
 * Threads (doc/performance.md "Logins and the event loop"): libsasl2's
 * part of an exchange step (sasl_server_start/step: the sasldb look-up,
 * SCRAM's PBKDF2) runs on the worker's CPU pool through
 * sub_sasl_start_async/sub_sasl_step_async; everything else (init,
 * sub_sasl_new, the mechanism list, decoding the client's message, the
 * name check) stays on the event loop.  While its job runs the sub_sasl
 * and its buffers belong to the job alone, and libsasl2 is only ever
 * given one sasl_conn_t per thread at a time, which it allows: its global
 * state (plugin lists, the SCRAM plugin's salt key) is written only by
 * sasl_server_init, each connection has its own random pool, and the
 * sasldb plugin opens its own Berkeley DB handle (read-only, no
 * environment) for every look-up.  The one global lock libsasl2 takes
 * (around sasl_dispose) is made a real pthread mutex by sasl_set_mutex.
 * The option and log callbacks run on the worker too: they read the
 * job's sub_sasl and log.c, which are safe there.  A look-up opens the
 * sasldb file: short blocking disk I/O, now off the loop.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#include "../common/limits.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "../outbound/client.h"
#include "submission.h"

/* RFC 4954 7: "smtp" is the service name registered for SMTP AUTH */
#define SUB_SERVICE	"smtp"
#define SUB_APPNAME	"chamois"
/*
 * The mechanisms that work with sasldb, in the order they are advertised.
 * No ANONYMOUS, GSSAPI, NTLM or EXTERNAL; CRAM-MD5 and DIGEST-MD5 are
 * obsolete (RFC 6331, draft-ietf-sasl-crammd5-to-historic).  SCRAM's -PLUS
 * variants need channel binding, which is not given to libsasl2.
 */
#define SUB_MECHS	"PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-1"

/* sasl_callback_t.proc is int (*)(void); go through void (*)(void) */
#define SUB_CB_FN(f)	((int (*)(void))(void (*)(void))(f))

struct sub_sasl {
	sasl_conn_t *conn;
	sasl_callback_t callbacks[2];	/* must live as long as conn */
	char *sasl_db;		/* this session's sasldb, fixed at sub_sasl_new */
	char *hostname;
	char *local;
	char *remote;
	unsigned ssf;
	char *mechs;
	char *user;		/* after SUB_SASL_OK */
	char *attempted;	/* the login name the client sent, OK or not */
	bool used;		/* conn ran an exchange: the next AUTH gets a new one */
	bool in_exchange;	/* sub_sasl_step is allowed */
	bool busy;		/* a job runs libsasl2 on it: hands off */
	bool (*name_ok)(void *, const char *);	/* sub_sasl_set_name_check */
	void *name_arg;
};

static void note_attempt(struct sub_sasl *, const char *, const char *, unsigned);

/*
 * name_allowed - the caller's check of the login name just noted, before
 * libsasl2 checks any credential (doc/users.md "Failed logins")
 */
static bool
name_allowed(struct sub_sasl *s)
{
	return s->attempted == NULL || s->name_ok == NULL ||
	    s->name_ok(s->name_arg, s->attempted);
}

static char *sasl_db_current;
static bool sasl_ready;
/* libsasl2 writes through this pointer's type but never into the string */
static char sasl_conf_path[] = "/dev/null";

static int cb_getopt(void *, const char *, const char *, const char **,
    unsigned *);
static int cb_log(void *, int, const char *);
static int cb_getconfpath(void *, char **);

static const sasl_callback_t global_callbacks[] = {
	{ SASL_CB_GETOPT, SUB_CB_FN(cb_getopt), NULL },
	{ SASL_CB_LOG, SUB_CB_FN(cb_log), NULL },
	{ SASL_CB_GETCONFPATH, SUB_CB_FN(cb_getconfpath), NULL },
	{ SASL_CB_LIST_END, NULL, NULL },
};

/*
 * cb_getopt - every option libsasl2 and its plugins read; context is the
 * session (sasldb path fixed at its start) or NULL for the global lookups
 * made while plugins load.  Unknown options keep libsasl2's defaults
 * (SASL_FAIL: there is no config file to fall back on).
 */
static int
cb_getopt(void *context, const char *plugin_name, const char *option,
    const char **result, unsigned *len)
{
	const struct sub_sasl *s = context;
	const char *v = NULL;

	if (option == NULL || result == NULL)
		return SASL_BADPARAM;
	if (strcmp(option, "pwcheck_method") == 0)
		v = "auxprop";
	else if (strcmp(option, "auxprop_plugin") == 0)
		v = "sasldb";
	else if (strcmp(option, "mech_list") == 0)
		v = SUB_MECHS;
	else if (strcmp(option, "canon_user_plugin") == 0)
		v = "INTERNAL";
	else if (strcmp(option, "auto_transition") == 0)
		v = "no";	/* never write to the sasldb */
	else if (strcmp(option, "log_level") == 0)
		v = log_verbose() ? "5" : "1";	/* SASL_LOG_DEBUG : SASL_LOG_ERR */
	else if (strcmp(option, "sasldb_path") == 0)
		v = s != NULL ? s->sasl_db : sasl_db_current;
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len != NULL)
		*len = strlen(v);
	return SASL_OK;
}

/*
 * cb_log - libsasl2's messages at debug level; protocol traces (which may
 * carry payloads and, at SASL_LOG_PASS, passwords) are dropped.
 */
static int
cb_log(void *context, int level, const char *message)
{
	char buf[512];

	if (message == NULL || level == SASL_LOG_NONE || level > SASL_LOG_DEBUG)
		return SASL_OK;
	log_debug("sasl: %s", log_escape_text(buf, sizeof(buf), message,
	    strlen(message)));
	return SASL_OK;
}

/* cb_getconfpath - a directory in which no chamois.conf can exist */
static int
cb_getconfpath(void *context, char **path)
{
	*path = sasl_conf_path;
	return SASL_OK;
}

/* db_readable - can this process open the sasldb file for reading? */
static bool
db_readable(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return false;
	close(fd);
	return true;
}

/*
 * Berkeley DB's metadata page (db_page.h, DBMETA): the magic number of
 * the access method is the 4 bytes at offset 12, in the writer's byte
 * order; saslpasswd2 makes a hash database
 */
#define BDB_MAGIC_OFF	12
#define BDB_HASH_MAGIC	0x061561u
#define BDB_BTREE_MAGIC	0x053162u

/* bswap32 - a metadata page written on the other byte order */
static uint32_t
bswap32(uint32_t v)
{
	return v >> 24 | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24;
}

int
sub_sasl_check(const char *path, char *err, size_t errsize)
{
	unsigned char head[BDB_MAGIC_OFF + 4];
	uint32_t magic;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		bsnprintf(err, errsize, "cannot read sasl_db %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = read(fd, head, sizeof(head));
	if (n == -1) {
		bsnprintf(err, errsize, "cannot read sasl_db %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (n < (ssize_t)sizeof(head)) {
		bsnprintf(err, errsize, "sasl_db %s is not a sasldb (a Berkeley DB file "
		    "made by saslpasswd2): %zd bytes long", path, n);
		return -2;
	}
	memcpy(&magic, head + BDB_MAGIC_OFF, sizeof(magic));
	if (magic != BDB_HASH_MAGIC && magic != BDB_BTREE_MAGIC &&
	    bswap32(magic) != BDB_HASH_MAGIC && bswap32(magic) != BDB_BTREE_MAGIC) {
		bsnprintf(err, errsize, "sasl_db %s is not a sasldb (a Berkeley DB file "
		    "made by saslpasswd2): no Berkeley DB header", path);
		return -2;
	}
	return 0;
}

/* map_result - libsasl2's result codes to ours (STYLE 8) */
static enum sub_sasl_result
map_result(int r)
{
	switch (r) {
	case SASL_OK:
		return SUB_SASL_OK;
	case SASL_CONTINUE:
		return SUB_SASL_CONTINUE;
	case SASL_BADAUTH:
	case SASL_NOUSER:	/* hidden: same answer as a wrong password */
	case SASL_NOAUTHZ:
	case SASL_EXPIRED:
	case SASL_DISABLED:
	case SASL_NOVERIFY:
		return SUB_SASL_FAIL;
	case SASL_NOMECH:
	case SASL_TOOWEAK:
	case SASL_ENCRYPT:
		return SUB_SASL_NOMECH;
	case SASL_BADPROT:
	case SASL_BADPARAM:
		return SUB_SASL_BADPROT;
	default:		/* SASL_FAIL, SASL_NOMEM, SASL_TRYAGAIN, SASL_UNAVAIL... */
		return SUB_SASL_TEMP;
	}
}

/* offered - is mech one of the session's advertised mechanisms? */
static bool
offered(const struct sub_sasl *s, const char *mech)
{
	size_t n = strlen(mech);

	if (n == 0 || strcspn(mech, " ") != n)
		return false;
	for (const char *p = s->mechs; *p != '\0'; p += strcspn(p, " ")) {
		p += strspn(p, " ");
		if (strncasecmp(p, mech, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
	}
	return false;
}

/*
 * valid_ipport - is a "IP;PORT" string usable?  Checked here because
 * sasl_server_new leaks memory when it refuses one (libsasl2 2.1.28).
 */
static bool
valid_ipport(const char *ipport)
{
	struct addrinfo hints, *res = NULL;
	const char *semi;
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	size_t n;

	if (ipport == NULL)
		return true;	/* libsasl2: mechanisms needing it are off */
	if ((semi = strrchr(ipport, ';')) == NULL || semi[1] == '\0' ||
	    strspn(semi + 1, "0123456789") != strlen(semi + 1) ||
	    (n = (size_t)(semi - ipport)) == 0 || n >= sizeof(host))
		return false;
	memcpy(host, ipport, n);
	host[n] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return false;
	freeaddrinfo(res);
	return true;
}

/* conn_open - a fresh libsasl2 connection for the session's parameters */
static int
conn_open(struct sub_sasl *s)
{
	sasl_security_properties_t props;
	sasl_ssf_t ext = s->ssf;
	int r;

	if (s->conn != NULL)
		sasl_dispose(&s->conn);
	/* no user_realm: the name's '@' gives the realm (see the header) */
	r = sasl_server_new(SUB_SERVICE, s->hostname, NULL, s->local,
	    s->remote, s->callbacks, 0, &s->conn);
	if (r != SASL_OK) {
		log_warnx("sasl: sasl_server_new: %s", sasl_errstring(r, NULL, NULL));
		s->conn = NULL;
		return -1;
	}
	/*
	 * TLS is the security layer: SASL's own (max_ssf 0) is never used.
	 * Plaintext mechanisms need TLS under them; libsasl2 lifts
	 * NOPLAINTEXT itself only for an external ssf above 1, so the rule
	 * "ssf > 0" is spelled out here.
	 */
	memset(&props, 0, sizeof(props));
	props.security_flags = SASL_SEC_NOANONYMOUS;
	if (s->ssf == 0)
		props.security_flags |= SASL_SEC_NOPLAINTEXT;
	if ((r = sasl_setprop(s->conn, SASL_SSF_EXTERNAL, &ext)) != SASL_OK ||
	    (r = sasl_setprop(s->conn, SASL_SEC_PROPS, &props)) != SASL_OK) {
		log_warnx("sasl: sasl_setprop: %s", sasl_errstring(r, NULL, NULL));
		sasl_dispose(&s->conn);
		return -1;
	}
	return 0;
}

/*
 * decode - base64 client data into a new buffer (RFC 4954 4); -1 when
 * it is not base64 or longer than an AUTH line may be
 */
static int
decode(const char *b64, char **out, unsigned *outlen)
{
	size_t n = strlen(b64);
	size_t max = n / 4 * 3 + 4;
	char *buf;

	if (n > AUTH_LINE_MAX)
		return -1;
	buf = xmalloc(max);
	/* SASL_CONTINUE: a partial quantum; SASL_FAIL: a leading CR */
	if (sasl_decode64(b64, (unsigned)n, buf, (unsigned)max, outlen) != SASL_OK) {
		explicit_bzero(buf, max);
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

/* wipe - free client data, which may hold a password */
static void
wipe(char *buf, unsigned len)
{
	if (buf == NULL)
		return;
	explicit_bzero(buf, len);
	free(buf);
}

/* finish - one libsasl2 answer to the caller's result and out buffer */
static enum sub_sasl_result
finish(struct sub_sasl *s, const char *mech, int r, const char *srvout,
    unsigned srvoutlen, char *out, size_t outsize)
{
	enum sub_sasl_result res = map_result(r);
	char detail[256], mbuf[64], why[512];
	const void *user = NULL;
	const char *d;
	unsigned outlen;

	mech = log_escape(mbuf, sizeof(mbuf), mech, strlen(mech));
	s->in_exchange = res == SUB_SASL_CONTINUE;
	switch (res) {
	case SUB_SASL_CONTINUE:
		if (out == NULL || outsize == 0)
			break;
		if (outsize > UINT_MAX)
			outsize = UINT_MAX;
		if (srvout == NULL || srvoutlen == 0) {
			out[0] = '\0';
			return res;
		}
		if (sasl_encode64(srvout, srvoutlen, out, (unsigned)outsize,
		    &outlen) == SASL_OK)
			return res;
		out[0] = '\0';
		log_warnx("sasl: mech=%s challenge of %u bytes does not fit in %zu",
		    mech, srvoutlen, outsize);
		break;
	case SUB_SASL_OK:
		if (sasl_getprop(s->conn, SASL_USERNAME, &user) == SASL_OK &&
		    user != NULL && *(const char *)user != '\0') {
			s->user = xstrdup(user);
			return res;
		}
		log_warnx("sasl: mech=%s authenticated without a user name", mech);
		break;
	case SUB_SASL_FAIL:
		if (db_readable(s->sasl_db))
			return res;
		log_warn("sasl: cannot read sasl_db %s", s->sasl_db);
		break;
	case SUB_SASL_TEMP:
		/* libsasl2 says "generic failure": the file tells why */
		if (sub_sasl_check(s->sasl_db, why, sizeof(why)) != 0) {
			log_warnx("sasl: mech=%s %s", mech,
			    log_escape_text(detail, sizeof(detail), why,
			    strlen(why)));
			return res;
		}
		d = sasl_errdetail(s->conn);
		log_warnx("sasl: mech=%s back-end failure: %s (sasl_db %s)", mech,
		    log_escape_text(detail, sizeof(detail), d, strlen(d)),
		    log_escape_text(why, sizeof(why), s->sasl_db,
		    strlen(s->sasl_db)));
		return res;
	default:
		return res;
	}
	s->in_exchange = false;
	return SUB_SASL_TEMP;
}

/* libsasl2's locks (sasl_set_mutex): its defaults lock nothing */
static void *
mutex_alloc(void)
{
	pthread_mutex_t *m = xmalloc(sizeof(*m));

	pthread_mutex_init(m, NULL);
	return m;
}

static int
mutex_lock(void *m)
{
	return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static int
mutex_unlock(void *m)
{
	return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static void
mutex_free(void *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(m);
	free(m);
}

/* set_mutex - before sasl_server_init and sasl_client_init: ignored after */
static void
set_mutex(void)
{
	static bool done;

	if (!done)
		sasl_set_mutex(mutex_alloc, mutex_lock, mutex_unlock, mutex_free);
	done = true;
}

/* sub_sasl_init - libsasl2's server side, configured by callbacks only */
int
sub_sasl_init(const char *sasl_db, char *err, size_t errsize)
{
	int r;

	if (sasl_ready) {
		bsnprintf(err, errsize, "SASL is already initialised");
		return -1;
	}
	if (sasl_db == NULL || *sasl_db == '\0') {
		bsnprintf(err, errsize, "no sasl_db given");
		return -1;
	}
	sasl_db_current = xstrdup(sasl_db);
	set_mutex();
	if ((r = sasl_server_init(global_callbacks, SUB_APPNAME)) != SASL_OK) {
		bsnprintf(err, errsize, "sasl_server_init: %s",
		    sasl_errstring(r, NULL, NULL));
		free(sasl_db_current);
		sasl_db_current = NULL;
		return -1;
	}
	sasl_ready = true;
	return 0;
}

/* sub_sasl_reconfigure - SIGHUP: sessions made from now on use sasl_db */
void
sub_sasl_reconfigure(const char *sasl_db)
{
	if (sasl_db == NULL || *sasl_db == '\0')
		return;
	free(sasl_db_current);
	sasl_db_current = xstrdup(sasl_db);
}

/* sub_sasl_shutdown - after every session was freed */
void
sub_sasl_shutdown(void)
{
	if (!sasl_ready)
		return;
	sasl_server_done();
	sasl_ready = false;
	free(sasl_db_current);
	sasl_db_current = NULL;
}

/* sub_sasl_new - one session's SASL state; NULL (logged) on failure */
struct sub_sasl *
sub_sasl_new(const char *hostname, const char *local, const char *remote,
    unsigned ssf)
{
	struct sub_sasl *s;
	const char *list = NULL;

	if (!sasl_ready) {
		log_warnx("sasl: session before sub_sasl_init");
		return NULL;
	}
	if (!valid_ipport(local) || !valid_ipport(remote)) {
		log_warnx("sasl: bad address for libsasl2 (want \"IP;PORT\")");
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->hostname = hostname != NULL ? xstrdup(hostname) : NULL;
	s->local = local != NULL ? xstrdup(local) : NULL;
	s->remote = remote != NULL ? xstrdup(remote) : NULL;
	s->ssf = ssf;
	s->sasl_db = xstrdup(sasl_db_current);
	s->callbacks[0] = (sasl_callback_t){ SASL_CB_GETOPT, SUB_CB_FN(cb_getopt), s };
	s->callbacks[1] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };
	if (conn_open(s) == -1) {
		sub_sasl_free(s);
		return NULL;
	}
	/* SASL_NOMECH: nothing to offer, an empty list */
	if (sasl_listmech(s->conn, NULL, "", " ", "", &list, NULL, NULL) != SASL_OK ||
	    list == NULL)
		list = "";
	s->mechs = xstrdup(list);
	return s;
}

/* sub_sasl_free - NULL is fine */
void
sub_sasl_free(struct sub_sasl *s)
{
	if (s == NULL)
		return;
	if (s->busy)
		fatalx("sasl: sub_sasl_free while its job runs");
	if (s->conn != NULL)
		sasl_dispose(&s->conn);
	free(s->hostname);
	free(s->local);
	free(s->remote);
	free(s->sasl_db);
	free(s->mechs);
	free(s->user);
	free(s->attempted);
	free(s);
}

/* sub_sasl_mechs - the mechanisms to advertise, space separated */
const char *
sub_sasl_mechs(struct sub_sasl *s)
{
	return s->mechs;
}

/*
 * start_prepare - the loop's half of AUTH mech [initial]: true when
 * libsasl2 is to run with *in (the decoded initial response, or NULL);
 * false with the result in *early (nothing for libsasl2 to do)
 */
static bool
start_prepare(struct sub_sasl *s, const char *mech, const char *initial,
    char **in, unsigned *inlen, enum sub_sasl_result *early)
{
	*in = NULL;
	*inlen = 0;
	free(s->user);
	s->user = NULL;
	s->in_exchange = false;
	*early = SUB_SASL_BADPROT;
	if (mech == NULL || *mech == '\0')
		return false;
	/*
	 * Only what was advertised: libsasl2 would also start, say,
	 * SCRAM-SHA-256-PLUS, and fail it later for want of channel binding.
	 */
	if (!offered(s, mech)) {
		log_debug("sasl: mechanism not offered");
		*early = SUB_SASL_NOMECH;
		return false;
	}
	/* a second AUTH (after a failure) starts from a clean connection */
	if (s->used && conn_open(s) == -1) {
		*early = SUB_SASL_TEMP;
		return false;
	}
	s->used = true;
	if (initial != NULL) {
		/* RFC 4954 4: "=" is a present but empty initial response */
		if (strcmp(initial, "=") == 0)
			*in = xcalloc(1, 1);
		else if (decode(initial, in, inlen) == -1)
			return false;
	}
	free(s->attempted);
	s->attempted = NULL;
	if (*in != NULL)
		note_attempt(s, mech, *in, *inlen);
	if (!name_allowed(s)) {
		wipe(*in, *inlen);
		*in = NULL;
		*early = SUB_SASL_REFUSED;
		return false;
	}
	return true;
}

/*
 * run - libsasl2's half of a step (any thread): sasl_server_start with
 * mech, or sasl_server_step; wipes and frees in
 */
static enum sub_sasl_result
run(struct sub_sasl *s, bool start, const char *mech, char *in,
    unsigned inlen, char *out, size_t outsize)
{
	const char *srvout = NULL;
	unsigned srvoutlen = 0;
	int r;

	if (start)
		r = sasl_server_start(s->conn, mech, in, inlen, &srvout, &srvoutlen);
	else
		r = sasl_server_step(s->conn, in, inlen, &srvout, &srvoutlen);
	wipe(in, inlen);
	return finish(s, mech, r, srvout, srvoutlen, out, outsize);
}

/* sub_sasl_start - AUTH mech [initial] */
enum sub_sasl_result
sub_sasl_start(struct sub_sasl *s, const char *mech, const char *initial,
    char *out, size_t outsize)
{
	enum sub_sasl_result early;
	unsigned inlen;
	char *in;

	if (out != NULL && outsize > 0)
		out[0] = '\0';
	if (!start_prepare(s, mech, initial, &in, &inlen, &early))
		return early;
	return run(s, true, mech, in, inlen, out, outsize);
}

/*
 * step_prepare - the loop's half of a response line: true when libsasl2
 * is to run with *in for mechanism *mech; false with *early
 */
static bool
step_prepare(struct sub_sasl *s, const char *response, char **in,
    unsigned *inlen, const char **mech, enum sub_sasl_result *early)
{
	*in = NULL;
	*inlen = 0;
	*early = SUB_SASL_BADPROT;
	if (!s->in_exchange || response == NULL ||
	    decode(response, in, inlen) == -1) {
		s->in_exchange = false;
		return false;
	}
	if (sasl_getprop(s->conn, SASL_MECHNAME, (const void **)mech) != SASL_OK ||
	    *mech == NULL)
		*mech = "?";
	if (s->attempted == NULL) {
		note_attempt(s, *mech, *in, *inlen);
		if (!name_allowed(s)) {
			s->in_exchange = false;
			wipe(*in, *inlen);
			*in = NULL;
			*early = SUB_SASL_REFUSED;
			return false;
		}
	}
	return true;
}

/* sub_sasl_step - one client response line during AUTH */
enum sub_sasl_result
sub_sasl_step(struct sub_sasl *s, const char *response, char *out,
    size_t outsize)
{
	enum sub_sasl_result early;
	const char *mech = NULL;
	unsigned inlen;
	char *in;

	if (out != NULL && outsize > 0)
		out[0] = '\0';
	if (!step_prepare(s, response, &in, &inlen, &mech, &early))
		return early;
	return run(s, false, mech, in, inlen, out, outsize);
}

/*
 * A step handed to the CPU pool (worker_submit_cpu).  The job owns all
 * of it, the sub_sasl included, from submission until done returns; it
 * holds no pointer into the caller's state, only the caller's ref.
 */
struct sasl_job {
	struct sub_sasl *s;
	bool start;		/* sasl_server_start, else sasl_server_step */
	const char *mech;	/* start: mech_copy; step: libsasl2's own name */
	char *mech_copy;
	char *in;		/* the decoded client message; run frees it */
	unsigned inlen;
	enum sub_sasl_result res;
	char out[SUB_SASL_OUT_MAX];
	sub_sasl_done_fn *done;
	uint64_t ref;
};

/* job_work - on a worker thread: libsasl2 and nothing else */
static void
job_work(void *arg)
{
	struct sasl_job *j = arg;

	j->res = run(j->s, j->start, j->mech, j->in, j->inlen, j->out,
	    sizeof(j->out));
	j->in = NULL;
}

/* job_done - on the loop: the sub_sasl goes back to the caller */
static void
job_done(void *arg)
{
	struct sasl_job *j = arg;

	j->s->busy = false;
	j->done(j->s, j->res, j->out, j->ref);
	free(j->mech_copy);
	free(j);
}

/* submit - libsasl2's half to the CPU pool */
static void
submit(struct sub_sasl *s, bool start, const char *mech, char *in,
    unsigned inlen, sub_sasl_done_fn *done, uint64_t ref)
{
	struct sasl_job *j = xcalloc(1, sizeof(*j));

	j->s = s;
	j->start = start;
	j->mech_copy = start ? xstrdup(mech) : NULL;
	j->mech = start ? j->mech_copy : mech;
	j->in = in;
	j->inlen = inlen;
	j->done = done;
	j->ref = ref;
	s->busy = true;
	worker_submit_cpu(job_work, job_done, j);
}

void
sub_sasl_start_async(struct sub_sasl *s, const char *mech, const char *initial,
    sub_sasl_done_fn *done, uint64_t ref)
{
	enum sub_sasl_result early;
	unsigned inlen;
	char *in;

	if (!start_prepare(s, mech, initial, &in, &inlen, &early)) {
		done(s, early, "", ref);
		return;
	}
	submit(s, true, mech, in, inlen, done, ref);
}

void
sub_sasl_step_async(struct sub_sasl *s, const char *response,
    sub_sasl_done_fn *done, uint64_t ref)
{
	enum sub_sasl_result early;
	const char *mech = NULL;
	unsigned inlen;
	char *in;

	if (!step_prepare(s, response, &in, &inlen, &mech, &early)) {
		done(s, early, "", ref);
		return;
	}
	submit(s, false, mech, in, inlen, done, ref);
}

/*
 * note_attempt - the login name in the client's first message, so that
 * failures can be counted per user too (doc/protocol.md, "AUTH")
 */
static void
note_attempt(struct sub_sasl *s, const char *mech, const char *in, unsigned len)
{
	char name[257];

	if (sub_sasl_login_name(mech, in, len, name, sizeof(name)))
		s->attempted = xstrdup(name);
}

void
sub_sasl_set_name_check(struct sub_sasl *s,
    bool (*check)(void *arg, const char *name), void *arg)
{
	s->name_ok = check;
	s->name_arg = arg;
}

/* sub_sasl_attempted - the login name the client tried, or NULL */
const char *
sub_sasl_attempted(struct sub_sasl *s)
{
	return s->attempted;
}

/* sub_sasl_user - the authenticated name, "user@domain"; NULL before OK */
const char *
sub_sasl_user(struct sub_sasl *s)
{
	return s->user;
}

const struct sub_sasl_ops sub_sasl_cyrus_ops = {
	.session = sub_sasl_new,
	.free = sub_sasl_free,
	.mechs = sub_sasl_mechs,
	.start_async = sub_sasl_start_async,
	.step_async = sub_sasl_step_async,
	.user = sub_sasl_user,
	.attempted = sub_sasl_attempted,
	.set_name_check = sub_sasl_set_name_check,
};

/* ---- the client side: AUTH to a relay (doc/queue.md "Relay host") ---- */

/*
 * The mechanisms tried, strongest first (chamois.conf(5) relay_auth);
 * the first one the relay offers and libsasl2 has a client plugin for is
 * used.  The relay is only ever reached over verified TLS.
 */
static const char *const client_mechs[] = { "SCRAM-SHA-256", "PLAIN", "LOGIN" };

struct sub_sasl_client {
	sasl_conn_t *conn;
	sasl_callback_t callbacks[4];	/* must live as long as conn */
	char *user;
	sasl_secret_t *secret;
	char *host;
	char offered[128];	/* the relay's mechanisms */
	bool busy;		/* a job runs libsasl2 on it */
	bool ended;		/* end() while busy: the job frees it */
	/* the job */
	bool start;
	char *in;
	unsigned inlen;
	enum smtp_auth_result res;
	const char *mech;	/* libsasl2's, valid as long as conn */
	bool has_out;		/* start: an initial response */
	char out[SUB_SASL_OUT_MAX];
	smtp_auth_done_fn *done;
	void *arg;
};

static bool sasl_client_ready;

/* null_work - a job with nothing to do: only its done, from the loop */
static void
null_work(void *arg)
{
}

static int
cb_client_simple(void *context, int id, const char **result, unsigned *len)
{
	struct sub_sasl_client *x = context;

	if (result == NULL)
		return SASL_BADPARAM;
	/* no authorisation identity: the login's own */
	*result = id == SASL_CB_AUTHNAME ? x->user : "";
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int
cb_client_pass(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
	struct sub_sasl_client *x = context;

	if (psecret == NULL)
		return SASL_BADPARAM;
	*psecret = x->secret;
	return SASL_OK;
}

/* sub_sasl_client_init - see submission.h */
int
sub_sasl_client_init(char *err, size_t errsize)
{
	int r;

	if (sasl_client_ready)
		return 0;
	set_mutex();
	if ((r = sasl_client_init(global_callbacks)) != SASL_OK) {
		bsnprintf(err, errsize, "sasl_client_init: %s",
		    sasl_errstring(r, NULL, NULL));
		return -1;
	}
	sasl_client_ready = true;
	return 0;
}

static void
client_x_free(struct sub_sasl_client *x)
{
	if (x->conn)
		sasl_dispose(&x->conn);
	if (x->secret) {
		explicit_bzero(x->secret, sizeof(*x->secret) + x->secret->len);
		free(x->secret);
	}
	free(x->user);
	free(x->host);
	wipe(x->in, x->inlen);
	explicit_bzero(x->out, sizeof(x->out));
	free(x);
}

/* client_encode - libsasl2's output as base64 into x->out */
static bool
client_encode(struct sub_sasl_client *x, const char *out, unsigned outlen)
{
	unsigned n;

	x->out[0] = '\0';
	if (out == NULL || outlen == 0)
		return true;
	return sasl_encode64(out, outlen, x->out, sizeof(x->out), &n) == SASL_OK;
}

/* client_work - on a CPU pool thread: libsasl2's part of one step */
static void
client_work(void *arg)
{
	struct sub_sasl_client *x = arg;
	const char *out = NULL, *d;
	unsigned outlen = 0;
	int r = SASL_NOMECH;

	x->res = SMTP_AUTH_NEXT;
	if (x->start) {
		for (size_t i = 0; i < nitems(client_mechs) && r == SASL_NOMECH; i++) {
			if (!sub_sasl_mech_listed(x->offered, client_mechs[i]))
				continue;
			r = sasl_client_start(x->conn, client_mechs[i], NULL, &out,
			    &outlen, &x->mech);
		}
		if (r == SASL_NOMECH) {
			x->res = SMTP_AUTH_NOMECH;
			return;
		}
		x->has_out = out != NULL;
	} else
		r = sasl_client_step(x->conn, x->in, x->inlen, NULL, &out, &outlen);
	wipe(x->in, x->inlen);
	x->in = NULL;
	x->inlen = 0;
	if ((r != SASL_OK && r != SASL_CONTINUE) || !client_encode(x, out, outlen)) {
		d = r == SASL_OK || r == SASL_CONTINUE ? "response too long" :
		    sasl_errdetail(x->conn);
		str_copy(x->out, d ? d : "SASL failure", sizeof(x->out));
		x->res = SMTP_AUTH_FAIL;
	}
}

/* client_job_done - on the loop: the answer goes to the client, unless it left */
static void
client_job_done(void *arg)
{
	struct sub_sasl_client *x = arg;

	x->busy = false;
	if (x->ended) {
		client_x_free(x);
		return;
	}
	x->done(x->arg, x->res, x->start ? x->mech : NULL,
	    x->res != SMTP_AUTH_NEXT || !x->start || x->has_out ? x->out : NULL);
}

static void
client_submit(struct sub_sasl_client *x, bool start, smtp_auth_done_fn *done,
    void *arg)
{
	x->start = start;
	x->done = done;
	x->arg = arg;
	x->busy = true;
	worker_submit_cpu(client_work, client_job_done, x);
}

static void *
client_start(const char *user, const char *pass, const char *host,
    const char *mechs, smtp_auth_done_fn *done, void *arg)
{
	struct sub_sasl_client *x = xcalloc(1, sizeof(*x));
	sasl_security_properties_t props;
	size_t plen = strlen(pass);
	int r;

	x->user = xstrdup(user);
	x->host = xstrdup(host);
	str_copy(x->offered, mechs, sizeof(x->offered));
	x->secret = xmalloc(sizeof(*x->secret) + plen + 1);
	x->secret->len = plen;
	memcpy(x->secret->data, pass, plen + 1);
	x->callbacks[0] = (sasl_callback_t){ SASL_CB_AUTHNAME,
	    SUB_CB_FN(cb_client_simple), x };
	x->callbacks[1] = (sasl_callback_t){ SASL_CB_USER,
	    SUB_CB_FN(cb_client_simple), x };
	x->callbacks[2] = (sasl_callback_t){ SASL_CB_PASS,
	    SUB_CB_FN(cb_client_pass), x };
	x->callbacks[3] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };
	r = sasl_client_ready ? sasl_client_new(SUB_SERVICE, x->host, NULL, NULL,
	    x->callbacks, 0, &x->conn) : SASL_NOTINIT;
	if (r == SASL_OK) {
		/* TLS protects the exchange: plaintext mechanisms are fine */
		memset(&props, 0, sizeof(props));
		props.maxbufsize = 0;
		r = sasl_setprop(x->conn, SASL_SEC_PROPS, &props);
	}
	if (r != SASL_OK) {
		log_warnx("sasl: client: %s", sasl_errstring(r, NULL, NULL));
		x->res = SMTP_AUTH_FAIL;
		str_copy(x->out, sasl_errstring(r, NULL, NULL), sizeof(x->out));
		/* still answered from the loop, never from inside start */
		x->start = false;
		x->done = done;
		x->arg = arg;
		x->busy = true;
		worker_submit_cpu(null_work, client_job_done, x);
		return x;
	}
	client_submit(x, true, done, arg);
	return x;
}

static void
client_step(void *p, const char *challenge, smtp_auth_done_fn *done, void *arg)
{
	struct sub_sasl_client *x = p;

	if (decode(challenge, &x->in, &x->inlen) == -1) {
		x->in = NULL;
		x->inlen = 0;
		x->res = SMTP_AUTH_FAIL;
		str_copy(x->out, "the relay's challenge is not base64",
		    sizeof(x->out));
		x->start = false;
		x->done = done;
		x->arg = arg;
		x->busy = true;
		worker_submit_cpu(null_work, client_job_done, x);
		return;
	}
	client_submit(x, false, done, arg);
}

static void
client_end(void *p)
{
	struct sub_sasl_client *x = p;

	if (x == NULL)
		return;
	if (x->busy)
		x->ended = true;	/* the job's done frees it */
	else
		client_x_free(x);
}

const struct smtp_auth_ops sub_sasl_client_ops = {
	.start = client_start,
	.step = client_step,
	.end = client_end,
};
