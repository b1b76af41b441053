/*
 * sendmail.c - chamois-sendmail, the sendmail interface for local programs
 * (chamois-sendmail(8)).  It reads the message on stdin, works out the
 * envelope and hands both to the running daemon's submit socket
 * (queue/submit.h), which records the caller's uid.
 *
 * chamois-sendmail [-C FILE] [-t] [-i] [-f SENDER] [-F NAME] [RECIPIENT...]
 *
 * Also accepted, as other sendmail implementations do: -r ADDR (= -f),
 * -oi (= -i), -o... and -od... -oe... (ignored), -N NOTIFY, -R RET and
 * -V ENVID (the DSN parameters, RFC 3461: passed on), -B TYPE, -X FILE,
 * -h HOPS, -L TAG, -O OPT, -A..., -G, -U (ignored), -bm
 * (the default mode), -v (says what happened).  -bp, or the program
 * invoked as mailq, lists the queue (mailq.c).
 *
 * Exit codes (sysexits.h): 0 queued; 64 usage or no recipients; 65 the
 * message or an address was refused (5xx); 70 a protocol error; 75 a
 * temporary failure (chamoisd not running, 4xx): try again later; 77 mailq
 * by a user the admin socket does not serve.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/addr.h"
#include "../common/addrlist.h"
#include "../common/config.h"
#include "../common/dsn.h"
#include "../common/util.h"
#include "../config.h"
#include "admin.h"
#include "sendmail_parse.h"
#include "submit.h"

#define REPLY_TIMEOUT_SEC	300	/* the queue syncs before it answers */

static int verbose;

static void
problem(void *arg, const char *line)
{
	fprintf(stderr, "chamois-sendmail: %s\n", line);
}

/*
 * dsn_option - -N never|success,delay,failure, -R full|hdrs, -V envid
 * (sendmail's DSN options) appended to the submit socket's DSN line in
 * out; -1 (said on stderr) when the value is bad
 */
static int
dsn_option(int opt, const char *v, char *out, size_t size)
{
	size_t o = strlen(out);
	char *x = NULL;
	bool ok;

	if (opt == 'N')
		ok = dsn_notify_parse(v) != 0;
	else if (opt == 'R')
		ok = dsn_ret_parse(v) >= 0;
	else {
		/* sendmail's -V is the id as it is: xtext on the wire */
		x = dsn_xtext_encode(v);
		ok = v[0] != '\0' && strlen(x) <= DSN_ENVID_MAX;
		for (const char *p = v; ok && *p; p++)
			ok = *p >= 0x20 && *p <= 0x7e;	/* RFC 3461 4.4 */
	}
	if (ok)
		ok = bsnprintf(out + o, size - o, "%s%s=%s", o ? " " : "", opt == 'N' ?
		    "NOTIFY" : opt == 'R' ? "RET" : "ENVID", x ? x : v);
	free(x);
	if (!ok)
		fprintf(stderr, "chamois-sendmail: bad -%c value '%s' (%s)\n", opt, v,
		    opt == 'N' ? "never, or success,delay,failure" : opt == 'R' ?
		    "full or hdrs" : "printable ASCII, at most 100 octets as xtext");
	return ok ? 0 : -1;
}

/* usage_to - the usage line; --help: stdout and 0, a wrong option: EX_USAGE */
static noreturn void
usage_to(FILE *f, int code)
{
	fprintf(f, "usage: chamois-sendmail [-C FILE] [-t] [-i] [-f SENDER] "
	    "[-F NAME] [RECIPIENT...]\n"
	    "       chamois-sendmail --version | --help\n");
	exit(code);
}

static noreturn void
usage(void)
{
	usage_to(stderr, EX_USAGE);
}

/* full_name - the GECOS name (its first field, '&' is the login name) */
static char *
full_name(const struct passwd *pw)
{
	char *out, *o;
	const char *g;
	size_t n;

	if (pw == NULL || pw->pw_gecos == NULL)
		return xstrdup("");
	n = strcspn(pw->pw_gecos, ",");
	out = o = xmalloc(n * (strlen(pw->pw_name) + 1) + 1);
	for (g = pw->pw_gecos; g < pw->pw_gecos + n; g++) {
		if (*g == '&') {
			for (const char *p = pw->pw_name; *p; p++)
				*o++ = p == pw->pw_name && *p >= 'a' && *p <= 'z' ?
				    (char)(*p - 'a' + 'A') : *p;
		} else
			*o++ = *g;
	}
	*o = '\0';
	return out;
}

/* one_address - the single address of an option's value, qualified */
static char *
one_address(const char *what, const char *v, const char *domain)
{
	struct addr_list a = { 0 };
	char err[256], *out;

	if (addr_list_parse(v, strlen(v), domain, &a, err, sizeof(err)) == -1 ||
	    a.n != 1) {
		fprintf(stderr, "chamois-sendmail: bad %s '%s'%s\n", what, v,
		    a.n > 1 ? ": more than one address" : "");
		addr_list_free(&a);
		return NULL;
	}
	out = xstrdup(a.v[0]);
	addr_list_free(&a);
	return out;
}

static bool
valid_address(const char *s)
{
	struct mailaddr a;

	return addr_parse(s, &a, ADDR_F_UTF8) == ADDR_OK;
}

/* add_rcpt - once each (exact spelling; the daemon folds case) */
static void
add_rcpt(struct addr_list *rcpts, const char *a)
{
	for (size_t i = 0; i < rcpts->n; i++)
		if (strcmp(rcpts->v[i], a) == 0)
			return;
	addr_list_add(rcpts, a);
}

static int
send_line(int fd, const char *cmd, const char *arg)
{
	char *l = xasprintf("%s %s\n", cmd, arg);
	int rc = write_full(fd, l, strlen(l));

	free(l);
	return rc;
}

/* read_reply - one line (LF excluded) into buf; false if none came */
static bool
read_reply(int fd, char *buf, size_t size)
{
	size_t n = 0;

	while (n + 1 < size) {
		ssize_t r = recv(fd, buf + n, 1, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return true;
		}
		n++;
	}
	buf[n] = '\0';
	return n > 0;
}

/* submit - the whole exchange with the daemon; returns the exit code */
static int
submit(const struct config *c, const char *sender, const char *dsn,
    const struct addr_list *rcpts, const char *msg, size_t len)
{
	struct sockaddr_un sun;
	struct timeval tv = { REPLY_TIMEOUT_SEC, 0 };
	char reply[1024], num[32];
	int fd, code;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (!bsnprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", c->queue_dir,
	    SUBMIT_SOCKET)) {
		fprintf(stderr, "chamois-sendmail: queue_dir %s: path too long\n",
		    c->queue_dir);
		return EX_CONFIG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "chamois-sendmail: chamoisd is not running (submit "
		    "socket %s: %s); message not sent\n", sun.sun_path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return EX_TEMPFAIL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(num, sizeof(num), "%zu", len);
	/* a write that fails means the daemon answered early: read why */
	if (send_line(fd, "SENDER", sender) == 0 &&
	    (dsn[0] == '\0' || send_line(fd, "DSN", dsn) == 0)) {
		size_t i;

		for (i = 0; i < rcpts->n; i++)
			if (send_line(fd, "RCPT", rcpts->v[i]) == -1)
				break;
		if (i == rcpts->n && send_line(fd, "DATA", num) == 0)
			write_full(fd, msg, len);
	}
	if (!read_reply(fd, reply, sizeof(reply))) {
		fprintf(stderr, "chamois-sendmail: chamoisd gave no answer (%s); "
		    "message not sent\n", errno ? strerror(errno) : "connection closed");
		close(fd);
		return EX_TEMPFAIL;
	}
	close(fd);
	if (strncmp(reply, "OK ", 3) == 0) {
		if (verbose)
			fprintf(stderr, "chamois-sendmail: queued as %s\n", reply + 3);
		return 0;
	}
	if (strncmp(reply, "ERR ", 4) == 0 && reply[4] >= '2' && reply[4] <= '5') {
		fprintf(stderr, "chamois-sendmail: message not sent: %s\n", reply + 4);
		code = atoi(reply + 4);
		if (code >= 400 && code < 500)
			return EX_TEMPFAIL;
		if (code == 500 || code == 503)
			return EX_SOFTWARE;
		return EX_DATAERR;
	}
	fprintf(stderr, "chamois-sendmail: unexpected answer from chamoisd: %.200s\n",
	    reply);
	return EX_SOFTWARE;
}

int
main(int argc, char **argv)
{
	const char *conf = CHAMOIS_CONFIG_FILE, *domain;
	const char *opt_sender = NULL, *opt_name = NULL;
	char dsn[3 * DSN_ENVID_MAX + 64] = "";
	bool opt_t = false, opt_i = false, opt_bp;
	struct addr_list rcpts = { 0 };
	struct sm_input in;
	struct config *c;
	struct passwd *pw;
	char *sender = NULL, *user_addr = NULL, *msg = NULL, *name, err[512];
	size_t len, hlen;
	bool blank;
	int ch, rc;

	/* invoked as mailq: -bp */
	name = strrchr(argv[0], '/');
	opt_bp = strcmp(name ? name + 1 : argv[0], "mailq") == 0;
	/*
	 * the options cron and other programs pass (chamois-sendmail(8)); -V
	 * and -h are sendmail's envelope id and hop count, so the version and
	 * the usage are the long --version and --help
	 */
	static const struct option longopts[] = {
		{ "version", no_argument, NULL, 1 },
		{ "help", no_argument, NULL, 2 },
		{ NULL, 0, NULL, 0 },
	};
	opterr = 0;
	while ((ch = getopt_long(argc, argv,
	    ":C:tif:r:F:B:o:b:vN:R:V:X:h:L:O:A:GUd:q:", longopts, NULL)) != -1) {
		switch (ch) {
		case 1: printf("chamois-sendmail %s\n", CHAMOIS_VERSION); return 0;
		case 2: usage_to(stdout, 0);
		case 'C': conf = optarg; break;
		case 't': opt_t = true; break;
		case 'i': opt_i = true; break;
		case 'f': case 'r': opt_sender = optarg; break;
		case 'F': opt_name = optarg; break;
		case 'v': verbose++; break;
		case 'o':
			/* -oi; -oem, -odb, -oQ... are about sendmail's own queue */
			if (strcmp(optarg, "i") == 0)
				opt_i = true;
			break;
		case 'b':
			if (strcmp(optarg, "m") == 0)
				break;
			if (strcmp(optarg, "i") == 0) {
				fprintf(stderr, "chamois-sendmail: chamoisd reads the "
				    "aliases file itself (reload: SIGHUP)\n");
				return 0;
			}
			if (strcmp(optarg, "p") == 0) {
				opt_bp = true;
				break;
			}
			fprintf(stderr, "chamois-sendmail: mode -b%s is not "
			    "supported\n", optarg);
			return EX_USAGE;
		case 'q':
			fprintf(stderr, "chamois-sendmail: -q: use chamoisctl flush\n");
			return EX_USAGE;
		case 'N': case 'R': case 'V':
			if (dsn_option(ch, optarg, dsn, sizeof(dsn)) == -1)
				return EX_USAGE;
			break;
		case 'B': case 'X': case 'h':
		case 'L': case 'O': case 'A': case 'G': case 'U': case 'd':
			break;
		case ':':
			fprintf(stderr, "chamois-sendmail: option -%c needs a value\n",
			    optopt);
			usage();
		default:
			if (optopt == 0)	/* an unknown --long option */
				fprintf(stderr, "chamois-sendmail: unknown option "
				    "%s\n", argv[optind - 1]);
			else
				fprintf(stderr, "chamois-sendmail: unknown option "
				    "-%c\n", optopt);
			usage();
		}
	}
	signal(SIGPIPE, SIG_IGN);

	if ((c = config_load(conf, problem, NULL)) == NULL)
		return EX_TEMPFAIL;
	if (opt_bp) {
		rc = mailq_run(name && strcmp(name + 1, "mailq") == 0 ? "mailq" :
		    "chamois-sendmail", c->queue_dir);
		config_free(c);
		return rc;
	}
	sm_input_init(&in, opt_i, (size_t)c->max_message_size);
	if (c->ndomains == 0) {
		fprintf(stderr, "chamois-sendmail: %s: no local domain\n", conf);
		rc = EX_CONFIG;
		goto out;
	}
	domain = c->domains[0];
	pw = getpwuid(getuid());
	user_addr = pw ? xasprintf("%s@%s", pw->pw_name, domain) :
	    xasprintf("%u@%s", (unsigned)getuid(), domain);
	if (opt_sender == NULL)
		sender = xstrdup(user_addr);
	else if (opt_sender[0] == '\0' || strcmp(opt_sender, "<>") == 0)
		sender = xstrdup("");
	else
		sender = one_address("sender", opt_sender, domain);
	if (sender == NULL) {
		rc = EX_USAGE;
		goto out;
	}
	if (sender[0] != '\0' && !valid_address(sender)) {
		fprintf(stderr, "chamois-sendmail: bad sender address '%s'\n", sender);
		rc = EX_USAGE;
		goto out;
	}

	/* the message (before connecting: a slow writer holds no daemon slot) */
	for (;;) {
		char buf[65536];
		ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "chamois-sendmail: reading the message: %s\n",
			    strerror(errno));
			rc = EX_IOERR;
			goto out;
		}
		if (r == 0 || sm_input_feed(&in, buf, (size_t)r) || in.too_big ||
		    in.nul)
			break;
	}
	sm_input_finish(&in);
	if (in.nul) {
		/* refused, not converted (doc/chamois-sendmail.8) */
		fprintf(stderr, "chamois-sendmail: message not sent: line %zu "
		    "contains a NUL octet, which mail may not carry\n", in.nul_line);
		rc = EX_DATAERR;
		goto out;
	}
	if (in.too_big) {
		fprintf(stderr, "chamois-sendmail: message not sent: message too "
		    "big (at most %llu octets)\n",
		    (unsigned long long)c->max_message_size);
		rc = EX_DATAERR;
		goto out;
	}
	msg = in.buf;
	len = in.len;
	in.buf = NULL;

	hlen = sm_header_len(msg, len, &blank);
	if (opt_t) {
		char *nobcc;
		size_t nlen;

		if (sm_header_rcpts(msg, hlen, domain, &rcpts, err, sizeof(err)) == -1) {
			fprintf(stderr, "chamois-sendmail: message not sent: %s\n", err);
			rc = EX_DATAERR;
			goto out;
		}
		nobcc = sm_remove_field(msg, len, "Bcc", &nlen);
		free(msg);
		msg = nobcc;
		len = nlen;
		hlen = sm_header_len(msg, len, &blank);
	}
	for (int i = optind; i < argc; i++) {
		struct addr_list a = { 0 };

		if (addr_list_parse(argv[i], strlen(argv[i]), domain, &a, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "chamois-sendmail: bad recipient '%s': %s\n",
			    argv[i], err);
			addr_list_free(&a);
			rc = EX_USAGE;
			goto out;
		}
		for (size_t k = 0; k < a.n; k++)
			addr_list_add(&rcpts, a.v[k]);
		addr_list_free(&a);
	}
	{
		struct addr_list uniq = { 0 };

		for (size_t i = 0; i < rcpts.n; i++) {
			if (!valid_address(rcpts.v[i])) {
				fprintf(stderr, "chamois-sendmail: bad recipient "
				    "address '%s'\n", rcpts.v[i]);
				addr_list_free(&uniq);
				rc = EX_DATAERR;
				goto out;
			}
			add_rcpt(&uniq, rcpts.v[i]);
		}
		addr_list_free(&rcpts);
		rcpts = uniq;
	}
	if (rcpts.n == 0) {
		fprintf(stderr, "chamois-sendmail: no recipients: name them on the "
		    "command line%s\n", opt_t ? " or in To, Cc or Bcc" : " or use -t");
		rc = EX_USAGE;
		goto out;
	}

	/* a message without From: gets the caller's own */
	if (!sm_header_has(msg, hlen, "From")) {
		char *from, *full;

		name = opt_name ? xstrdup(opt_name) : full_name(pw);
		from = sm_from_field(name, sender[0] ? sender : user_addr);
		full = xmalloc(strlen(from) + len + 1);
		memcpy(full, from, strlen(from));
		memcpy(full + strlen(from), msg, len + 1);
		len += strlen(from);
		free(msg);
		free(from);
		free(name);
		msg = full;
	}

	rc = submit(c, sender, dsn, &rcpts, msg, len);
out:
	free(msg);
	free(sender);
	free(user_addr);
	addr_list_free(&rcpts);
	sm_input_free(&in);
	config_free(c);
	return rc;
}
