/*
 * chamoisctl.c - the administrator's view of the queue, over the
 * daemon's admin socket queue_dir/admin.sock (queue/admin.h, chamoisctl(8)).
 *
 * chamoisctl [-f FILE] queue | show ID | flush | delete ID | dump [FILE] |
 *            restore [FILE] | tlsrpt send
 * chamoisctl [-f FILE] dkim-keygen [-t rsa|ed25519] DOMAIN SELECTOR FILE
 * chamoisctl [-f FILE] dns [--check] [DOMAIN...]
 *
 * dkim-keygen and dns need no daemon: the first writes a new key and
 * prints the dkim_key line and the DNS record (dkim_keygen,
 * dkim/keygen.c), the second prints the records the config's domains
 * need, in zone-file form.
 *
 * One command per connection: a line goes out, the answer comes back until
 * the daemon closes; its last line is "OK" or "ERR <code> <text>".  Every
 * line before it goes to stdout, the error to stderr.  A dump is framed
 * (admin.h), so its bytes are copied exactly and the status line is kept
 * out of the file; a dump into FILE goes to a temporary file that is
 * renamed over FILE only once the daemon said OK.
 *
 * Exit: 0 OK, 1 ERR (or a local error), 2 usage, 75 (EX_TEMPFAIL) when
 * chamoisd is not running or the connection broke.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/addr.h"
#include "../common/config.h"
#include "../common/util.h"
#include "../config.h"
#include "../dkim/signer.h"
#include "../outbound/resolver.h"
#include "admin.h"
#include "queue.h"

#define EXIT_OK		0
#define EXIT_ERR	1
#define EXIT_USAGE	2
#define EXIT_TEMPFAIL	75	/* sysexits.h EX_TEMPFAIL */
#define IDLE_TIMEOUT	330	/* seconds without a byte from the daemon
				   (its own timeouts are 300) */
#define IO_CHUNK	65536

static const char *sock_path;	/* for messages */

static void
problem(void *arg, const char *line)
{
	fprintf(stderr, "chamoisctl: %s\n", line);
}

static void die(int, const char *, ...) __attribute__((format(printf, 2, 3),
    __noreturn__));

static void
die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("chamoisctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* usage - to stdout and exit 0 for -h, to stderr and exit 2 otherwise */
static void
usage_to(FILE *f, int code)
{
	fprintf(f, "usage: chamoisctl [-f FILE] queue | show ID | flush | "
	    "delete ID | dump [FILE] | restore [FILE]\n"
	    "       chamoisctl [-f FILE] tlsrpt send\n"
	    "       chamoisctl [-f FILE] dkim-keygen [-t rsa|ed25519] DOMAIN "
	    "SELECTOR FILE\n"
	    "       chamoisctl [-f FILE] dns [--check] [DOMAIN...]\n"
	    "       chamoisctl [-f FILE] quarantine [release ID]\n"
	    "       chamoisctl -V | -h\n");
	exit(code);
}

static void
usage(void)
{
	usage_to(stderr, EXIT_USAGE);
}

/* connect_daemon - the admin socket of queue_dir, or exit */
static int
connect_daemon(const char *queue_dir)
{
	static char path[PATH_MAX + 32];
	int fd, e;

	sock_path = path;
	if ((fd = admin_connect(queue_dir, path, sizeof(path))) != -1)
		return fd;
	e = errno;
	if (e == EACCES || e == EPERM)
		die(EXIT_ERR, "permission denied: %s (only root and the daemon's "
		    "user may use chamoisctl)", path);
	if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
		die(EXIT_TEMPFAIL, "chamoisd is not running (no admin socket "
		    "answers at %s)", path);
	die(EXIT_TEMPFAIL, "chamoisd is not running? %s: %s", path, strerror(e));
}

/* write_all - write_full, or die naming what (NULL: the admin socket) */
static void
write_all(int fd, const void *p, size_t len, const char *what)
{
	if (write_full(fd, p, len) == 0)
		return;
	if (what == NULL)
		die(EXIT_TEMPFAIL, "lost the connection to chamoisd: %s",
		    strerror(errno));
	die(EXIT_ERR, "writing %s: %s", what, strerror(errno));
}

/* wait_readable - poll fd for input, bounded by IDLE_TIMEOUT */
static void
wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	while ((n = poll(&p, 1, IDLE_TIMEOUT * 1000)) == -1 && errno == EINTR)
		;
	if (n == 0)
		die(EXIT_TEMPFAIL, "no answer from chamoisd for %d seconds",
		    IDLE_TIMEOUT);
}

static ssize_t
sock_read(int fd, char *buf, size_t size)
{
	ssize_t n;

	wait_readable(fd);
	while ((n = read(fd, buf, size)) == -1 && errno == EINTR)
		;
	if (n == -1 && errno != ECONNRESET)
		die(EXIT_TEMPFAIL, "reading from chamoisd: %s", strerror(errno));
	return n < 0 ? 0 : n;
}

/* ---- plain answers: every line to stdout, the last one is the status -- */

struct answer {
	char *buf;
	size_t len, cap;
};

/* answer_feed - print every complete line but the last one seen so far */
static void
answer_feed(struct answer *a, const char *data, size_t len)
{
	char *last, *prev;
	size_t upto;

	if (a->len + len > a->cap) {
		a->cap = (a->len + len) * 2;
		if ((a->buf = realloc(a->buf, a->cap)) == NULL)
			die(EXIT_ERR, "out of memory");
	}
	memcpy(a->buf + a->len, data, len);
	a->len += len;
	if ((last = memrchr(a->buf, '\n', a->len)) == NULL)
		return;
	if ((prev = memrchr(a->buf, '\n', (size_t)(last - a->buf))) == NULL)
		return;
	upto = (size_t)(prev - a->buf) + 1;
	write_all(STDOUT_FILENO, a->buf, upto, "stdout");
	memmove(a->buf, a->buf + upto, a->len - upto);
	a->len -= upto;
}

/* answer_end - the daemon closed: the held line is the status; exit code */
static int
answer_end(struct answer *a)
{
	char *nl, *status;

	if (a->len == 0 || (nl = memchr(a->buf, '\n', a->len)) == NULL)
		die(EXIT_TEMPFAIL, "chamoisd closed the connection without an "
		    "answer");
	if ((size_t)(nl - a->buf) + 1 != a->len) {
		/* a last line without its line end: not a status */
		write_all(STDOUT_FILENO, a->buf, (size_t)(nl - a->buf) + 1, "stdout");
		die(EXIT_TEMPFAIL, "chamoisd closed the connection in the middle "
		    "of its answer");
	}
	*nl = '\0';
	status = a->buf;
	if (strcmp(status, "OK") == 0)
		return EXIT_OK;
	if (strncmp(status, "ERR ", 4) == 0) {
		fprintf(stderr, "chamoisctl: %s\n", status + 4);
		return EXIT_ERR;
	}
	fprintf(stderr, "chamoisctl: unexpected answer from chamoisd: %s\n", status);
	return EXIT_ERR;
}

static int
plain(int fd)
{
	struct answer a = { 0 };
	char buf[IO_CHUNK];
	ssize_t n;
	int rc;

	while ((n = sock_read(fd, buf, sizeof(buf))) > 0)
		answer_feed(&a, buf, (size_t)n);
	rc = answer_end(&a);
	free(a.buf);
	return rc;
}

/* ---- dump ------------------------------------------------------------- */

struct reader {
	int fd;
	char buf[IO_CHUNK];
	size_t pos, end;
};

static bool
fill(struct reader *r)
{
	ssize_t n;

	if (r->pos < r->end)
		return true;
	r->pos = r->end = 0;
	if ((n = sock_read(r->fd, r->buf, sizeof(r->buf))) == 0)
		return false;
	r->end = (size_t)n;
	return true;
}

/* read_line - one line (without LF) into line; false at EOF before it */
static bool
read_line(struct reader *r, char *line, size_t size)
{
	size_t n = 0;

	for (;;) {
		if (!fill(r))
			return false;
		char ch = r->buf[r->pos++];

		if (ch == '\n')
			break;
		if (n + 1 < size)
			line[n++] = ch;
	}
	line[n] = '\0';
	return true;
}

/* copy_exact - n octets from the daemon to out */
static bool
copy_exact(struct reader *r, unsigned long long n, int out, const char *what)
{
	while (n > 0) {
		size_t k;

		if (!fill(r))
			return false;
		k = r->end - r->pos;
		if (k > n)
			k = (size_t)n;
		write_all(out, r->buf + r->pos, k, what);
		r->pos += k;
		n -= k;
	}
	return true;
}

static char *tmp_path;

static void
remove_tmp(void)
{
	if (tmp_path)
		unlink(tmp_path);
}

/*
 * dump_file - a temporary file next to file (mode 0600: the dump holds
 * every queued message), renamed over it once the dump is complete
 */
static int
dump_file(const char *file)
{
	int out;

	if (asprintf(&tmp_path, "%s.tmpXXXXXX", file) == -1)
		die(EXIT_ERR, "out of memory");
	if ((out = mkstemp(tmp_path)) == -1) {
		free(tmp_path);
		tmp_path = NULL;
		die(EXIT_ERR, "cannot create a file next to %s: %s", file,
		    strerror(errno));
	}
	atexit(remove_tmp);
	return out;
}

static int
dump(int fd, int out, const char *file)
{
	struct reader r = { .fd = fd };
	char line[ADMIN_LINE_MAX + 64], magic[64];
	unsigned long long envlen, bodylen;
	unsigned long count, messages = 0;
	const char *what = file ? file : "stdout";
	int n;

	snprintf(magic, sizeof(magic), "%s %d", ADMIN_DUMP_MAGIC,
	    ADMIN_DUMP_VERSION);
	if (!read_line(&r, line, sizeof(line)))
		goto lost;
	if (strncmp(line, "ERR ", 4) == 0)
		die(EXIT_ERR, "%s", line + 4);
	if (strcmp(line, magic) != 0)
		die(EXIT_ERR, "unexpected answer from chamoisd: %s", line);
	dprintf(out, "%s\n", line);
	for (;;) {
		char id[64];

		if (!read_line(&r, line, sizeof(line)))
			goto lost;
		if (sscanf(line, "message %63s %llu %llu%n", id, &envlen, &bodylen,
		    &n) == 3 && line[n] == '\0') {
			write_all(out, line, strlen(line), what);
			write_all(out, "\n", 1, what);
			if (!copy_exact(&r, envlen + 1 + bodylen + 1, out, what))
				goto lost;
			messages++;
			continue;
		}
		if (sscanf(line, "end %lu%n", &count, &n) == 1 && line[n] == '\0') {
			dprintf(out, "%s\n", line);
			break;
		}
		if (strncmp(line, "ERR ", 4) == 0)
			die(EXIT_ERR, "%s", line + 4);
		die(EXIT_ERR, "unexpected answer from chamoisd: %s", line);
	}
	if (!read_line(&r, line, sizeof(line)))
		goto lost;
	if (strncmp(line, "ERR ", 4) == 0)
		die(EXIT_ERR, "%s", line + 4);
	if (strcmp(line, "OK") != 0)
		die(EXIT_ERR, "unexpected answer from chamoisd: %s", line);
	if (file) {
		if (fsync(out) == -1 || close(out) == -1)
			die(EXIT_ERR, "writing %s: %s", tmp_path, strerror(errno));
		if (rename(tmp_path, file) == -1)
			die(EXIT_ERR, "rename %s to %s: %s", tmp_path, file,
			    strerror(errno));
		free(tmp_path);
		tmp_path = NULL;
		fprintf(stderr, "chamoisctl: %lu message%s dumped to %s\n",
		    messages, messages == 1 ? "" : "s", file);
	}
	return EXIT_OK;
lost:
	die(EXIT_TEMPFAIL, "chamoisd closed the connection in the middle of "
	    "the dump");
}

/* ---- restore ----------------------------------------------------------- */

/*
 * restore - stream the dump to the daemon while reading its answer: the
 * daemon may answer (and stop reading) before the dump has all been sent
 */
static int
restore(int fd, int src, const char *file)
{
	struct answer a = { 0 };
	char in[IO_CHUNK], buf[IO_CHUNK];
	size_t inpos = 0, inlen = 0;
	bool in_eof = false, sending = true;
	int rc;

	for (;;) {
		struct pollfd p[1] = { { .fd = fd, .events = POLLIN } };
		ssize_t n;
		int k;

		if (sending && inpos == inlen && !in_eof) {
			/* a file or pipe: reading it blocks only briefly */
			while ((n = read(src, in, sizeof(in))) == -1 && errno == EINTR)
				;
			if (n == -1)
				die(EXIT_ERR, "reading %s: %s", file ? file : "stdin",
				    strerror(errno));
			inpos = 0;
			inlen = (size_t)n;
			if (n == 0) {
				in_eof = true;
				shutdown(fd, SHUT_WR);
				sending = false;
			}
		}
		if (sending)
			p[0].events |= POLLOUT;
		while ((k = poll(p, 1, IDLE_TIMEOUT * 1000)) == -1 && errno == EINTR)
			;
		if (k == 0)
			die(EXIT_TEMPFAIL, "no answer from chamoisd for %d seconds",
			    IDLE_TIMEOUT);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			while ((n = read(fd, buf, sizeof(buf))) == -1 && errno == EINTR)
				;
			if (n <= 0)
				break;		/* the whole answer is in */
			answer_feed(&a, buf, (size_t)n);
		}
		if (sending && (p[0].revents & POLLOUT)) {
			n = send(fd, in + inpos, inlen - inpos, MSG_NOSIGNAL);
			if (n == -1 && errno != EINTR && errno != EAGAIN)
				sending = false;	/* the answer tells why */
			else if (n > 0)
				inpos += (size_t)n;
		}
	}
	close(src);
	rc = answer_end(&a);
	free(a.buf);
	return rc;
}

/* quarantine_id - a name of the quarantine folder that is a message's */
static bool
quarantine_id(const char *name)
{
	size_t n = strlen(name);

	if (n != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)name[i]))
			return false;
	return true;
}

/* quarantine_show - one line about the quarantined message id in dir */
static void
quarantine_show(const char *dir, const char *id)
{
	char path[PATH_MAX + 300], line[ADMIN_LINE_MAX], reason[1024] = "";
	unsigned long long elen, blen;
	struct queue_msg m;
	char *env = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.reason", dir, id);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(reason, sizeof(reason), f) == NULL)
			reason[0] = '\0';
		reason[strcspn(reason, "\n")] = '\0';
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, id);
	if ((f = fopen(path, "r")) == NULL ||
	    fgets(line, sizeof(line), f) == NULL ||
	    fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "message %*s %llu %llu", &elen, &blen) != 2 ||
	    elen > ADMIN_ENVELOPE_MAX || (env = malloc(elen + 1)) == NULL ||
	    fread(env, 1, elen, f) != elen ||
	    queue_msg_decode(env, (size_t)elen, &m) == -1) {
		printf("%s (unreadable)\n", id);
		if (f)
			fclose(f);
		free(env);
		return;
	}
	fclose(f);
	free(env);
	{
		char when[32];
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
		    gmtime_r(&m.created, &tm));
		printf("%s %s size=%llu from=<%s> reason=\"%s\"\n", id, when,
		    blen, m.sender, reason);
	}
	for (size_t i = 0; i < m.nrcpts; i++)
		printf("    to=<%s>\n", m.rcpts[i].orig);
	queue_msg_free(&m);
}

/*
 * quarantine_cmd - "quarantine": the messages in queue_dir/quarantine
 * (doc/filters.md); "quarantine release ID": restore one into the queue
 * through the admin socket, then remove it from the folder
 */
static int
quarantine_cmd(const char *conf, int argc, char **argv)
{
	struct config *c;
	struct dirent **names;
	char dir[PATH_MAX], path[PATH_MAX + 300];
	int n, fd, src, rc;

	if (!(argc == 0 || (argc == 2 && strcmp(argv[0], "release") == 0)))
		usage();
	if ((c = config_load(conf, problem, NULL)) == NULL)
		return EXIT_ERR;
	snprintf(dir, sizeof(dir), "%s/%s", c->queue_dir, QUARANTINE_DIR);
	if (argc == 0) {
		config_free(c);
		if ((n = scandir(dir, &names, NULL, alphasort)) == -1) {
			if (errno == ENOENT)
				return EXIT_OK;		/* nothing was ever quarantined */
			die(EXIT_ERR, "%s: %s", dir, strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			if (quarantine_id(names[i]->d_name))
				quarantine_show(dir, names[i]->d_name);
			free(names[i]);
		}
		free(names);
		return EXIT_OK;
	}
	if (!quarantine_id(argv[1])) {
		config_free(c);
		fprintf(stderr, "chamoisctl: malformed message id\n");
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, argv[1]);
	if ((src = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die(EXIT_ERR, "%s: %s", path, strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	fd = connect_daemon(c->queue_dir);
	config_free(c);
	write_all(fd, "RESTORE\n", 8, NULL);
	if ((rc = restore(fd, src, path)) != EXIT_OK)
		return rc;
	/* in the queue now: the folder lets go of it */
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s.reason", dir, argv[1]);
	unlink(path);
	return EXIT_OK;
}

static void
quiet(void *arg, const char *line)
{
}

/* print_txt - "NAME. TXT" and txt in quoted strings of at most 255 octets */
static void
print_txt(const char *name, const char *txt)
{
	size_t len = strlen(txt);

	printf("%s. TXT", name);
	for (size_t i = 0; i < len; i += 255)
		printf(" \"%.*s\"", (int)(len - i < 255 ? len - i : 255), txt + i);
	printf("\n");
}

/*
 * dkim_keygen_cmd - dkim-keygen [-t rsa|ed25519] DOMAIN SELECTOR FILE
 * (chamoisctl(8)): the key into FILE, owned by the config's user when run
 * as root (SIGHUP rereads it as that user); then the dkim_key line and
 * the TXT record in zone-file form, in strings of at most 255 octets
 */
static int
dkim_keygen_cmd(const char *conf, int argc, char **argv)
{
	bool ed25519 = false;
	char domain[DOMAIN_MAX + 1], err[512], *txt, *abs;
	long uid = -1, gid = -1;
	struct config *c;

	if (argc >= 2 && strcmp(argv[0], "-t") == 0) {
		if (strcmp(argv[1], "ed25519") == 0)
			ed25519 = true;
		else if (strcmp(argv[1], "rsa") != 0)
			usage();
		argc -= 2;
		argv += 2;
	}
	if (argc != 3)
		usage();
	if (!addr_domain_key(argv[0], domain, sizeof(domain)) ||
	    strchr(domain, '.') == NULL)
		die(EXIT_USAGE, "'%s' is not a valid domain", argv[0]);
	if (!config_dkim_selector_ok(argv[1]))
		die(EXIT_USAGE, "'%s' is not a valid selector (letters, digits, "
		    "'-', labels joined by '.')", argv[1]);
	if (geteuid() == 0 && (c = config_load(conf, quiet, NULL)) != NULL) {
		struct passwd *pw = c->user ? getpwnam(c->user) : NULL;

		if (pw != NULL) {
			uid = (long)pw->pw_uid;
			gid = (long)pw->pw_gid;
		}
		config_free(c);
	}
	if (dkim_keygen(ed25519, argv[2], uid, gid, &txt, err, sizeof(err)) == -1)
		die(EXIT_ERR, "%s", err);
	abs = realpath(argv[2], NULL);
	printf("dkim_key %s %s %s\n", domain, argv[1], abs ? abs : argv[2]);
	snprintf(err, sizeof(err), "%s._domainkey.%s", argv[1], domain);
	print_txt(err, txt);
	free(abs);
	free(txt);
	return EXIT_OK;
}

/* one record the domains need, and (--check) what DNS says of it */
struct want {
	char name[DOMAIN_MAX + 80];	/* without the final dot */
	enum dns_rr rr;
	char *value;		/* as printed: "10 host.", "1.2.3.4", a TXT text */
	const char *prefix;	/* TXT: the records that count ("v=spf1") */
	char match[DOMAIN_MAX + 1];	/* MX, PTR: the host wanted */
	char addr[INET6_ADDRSTRLEN];	/* A/AAAA, PTR: the address */
	/* --check */
	const char *verdict;	/* "ok", "missing", "differs" */
	char *found;		/* what differs, or why missing */
	bool back_pending;	/* PTR: its name's A/AAAA asked */
};

struct wants {
	struct want *v;
	size_t n;
	unsigned pending;	/* look-ups not answered yet */
	struct resolver *res;
};

static struct want *
want_add(struct wants *w, enum dns_rr rr, const char *name, char *value)
{
	struct want *x;

	w->v = xreallocarray(w->v, w->n + 1, sizeof(*w->v));
	x = &w->v[w->n++];
	memset(x, 0, sizeof(*x));
	x->rr = rr;
	str_copy(x->name, name, sizeof(x->name));
	x->value = value;
	return x;
}

/*
 * host_wants - the host's A/AAAA and PTR records: every address of an
 * interface that is up, loopback and link-local left out (Gmail refuses
 * IPv6 mail from an address without a PTR that resolves back)
 */
static void
host_wants(struct wants *w, const char *hostname)
{
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa) == -1)
		return;
	for (i = ifa; i; i = i->ifa_next) {
		char a[INET6_ADDRSTRLEN], rev[80];
		const unsigned char *b;
		size_t k, o = 0;
		bool dup = false;
		int fam = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;
		struct want *x;

		if (!(i->ifa_flags & IFF_UP) || (fam != AF_INET && fam != AF_INET6))
			continue;
		if (fam == AF_INET) {
			const struct in_addr *in =
			    &((const struct sockaddr_in *)i->ifa_addr)->sin_addr;

			b = (const unsigned char *)in;
			if (b[0] == 127 || (b[0] == 169 && b[1] == 254))
				continue;
			inet_ntop(AF_INET, in, a, sizeof(a));
			snprintf(rev, sizeof(rev), "%u.%u.%u.%u.in-addr.arpa", b[3],
			    b[2], b[1], b[0]);
		} else {
			const struct in6_addr *in6 =
			    &((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;

			if (IN6_IS_ADDR_LOOPBACK(in6) || IN6_IS_ADDR_LINKLOCAL(in6))
				continue;
			b = (const unsigned char *)in6;
			inet_ntop(AF_INET6, in6, a, sizeof(a));
			for (k = 16; k-- > 0; )
				o += (size_t)snprintf(rev + o, sizeof(rev) - o,
				    "%x.%x.", b[k] & 0xf, b[k] >> 4);
			snprintf(rev + o, sizeof(rev) - o, "ip6.arpa");
		}
		for (k = 0; k < w->n; k++)
			dup = dup || (w->v[k].rr == DNS_RR_PTR &&
			    strcmp(w->v[k].addr, a) == 0);
		if (dup)
			continue;
		x = want_add(w, fam == AF_INET ? DNS_RR_A : DNS_RR_AAAA, hostname,
		    xstrdup(a));
		str_copy(x->addr, a, sizeof(x->addr));
		x = want_add(w, DNS_RR_PTR, rev, xasprintf("%s.", hostname));
		str_copy(x->match, hostname, sizeof(x->match));
		str_copy(x->addr, a, sizeof(x->addr));
	}
	freeifaddrs(ifa);
}

static const char *const rr_names[] = { [DNS_RR_A] = "A",
    [DNS_RR_AAAA] = "AAAA", [DNS_RR_MX] = "MX", [DNS_RR_TXT] = "TXT",
    [DNS_RR_PTR] = "PTR" };

/* print_want - the record in zone-file form, after the verdict if any */
static void
print_want(const struct want *x)
{
	if (x->verdict)
		printf("%-8s", x->verdict);
	if (x->rr == DNS_RR_TXT)
		print_txt(x->name, x->value);
	else
		printf("%s. %s %s\n", x->name, rr_names[x->rr], x->value);
	if (x->found)
		printf("        found: %s\n", x->found);
}

/* same_text - TXT texts equal but for blanks (tag-lists allow them) */
static bool
same_text(const char *a, const char *b)
{
	for (;;) {
		while (*a == ' ' || *a == '\t')
			a++;
		while (*b == ' ' || *b == '\t')
			b++;
		if (*a != *b)
			return false;
		if (*a == '\0')
			return true;
		a++, b++;
	}
}

/* same_host - two host names equal, any case, a final dot ignored */
static bool
same_host(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	la -= la && a[la - 1] == '.';
	lb -= lb && b[lb - 1] == '.';
	return la == lb && strncasecmp(a, b, la) == 0;
}

static void check_cb(void *arg, enum dns_status st, char **t, size_t n);

/* verdict - what DNS said of x (t[0..n) its records of x's type) */
static void
verdict(struct wants *w, struct want *x, enum dns_status st, char **t,
    size_t n)
{
	const char *other = NULL;

	if (st == DNS_TEMPFAIL) {
		x->verdict = "missing";
		x->found = xstrdup("(no answer: the look-up failed)");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		bool same = false;

		switch (x->rr) {
		case DNS_RR_TXT:
			if (strncasecmp(t[i], x->prefix, strlen(x->prefix)) != 0)
				continue;
			same = same_text(t[i], x->value);
			break;
		case DNS_RR_MX:
			same = strchr(t[i], ' ') && same_host(strchr(t[i], ' ') + 1,
			    x->match);
			break;
		case DNS_RR_A:
		case DNS_RR_AAAA:
			same = strcmp(t[i], x->addr) == 0;
			break;
		case DNS_RR_PTR:
			same = same_host(t[i], x->match);
			break;
		}
		if (same) {
			x->verdict = "ok";
			if (x->rr == DNS_RR_PTR && !x->back_pending) {
				/* and its name resolves back to the address */
				x->back_pending = true;
				w->pending++;
				resolver_records(w->res, x->match, strchr(x->addr,
				    ':') ? DNS_RR_AAAA : DNS_RR_A, check_cb, x);
			}
			return;
		}
		if (other == NULL)
			other = t[i];
	}
	x->verdict = other ? "differs" : "missing";
	if (other)
		x->found = xstrdup(other);
}

static struct wants *check_wants;

static void
check_cb(void *arg, enum dns_status st, char **t, size_t n)
{
	struct want *x = arg;

	check_wants->pending--;
	if (x->rr == DNS_RR_PTR && x->back_pending) {
		bool back = false;

		for (size_t i = 0; st == DNS_OK && i < n; i++)
			back = back || strcmp(t[i], x->addr) == 0;
		if (!back) {
			x->verdict = "differs";
			x->found = xasprintf("%s does not resolve back to %s",
			    x->match, x->addr);
		}
		return;
	}
	verdict(check_wants, x, st, t, n);
}

/*
 * dns_cmd - dns [--check] [DOMAIN...] (chamoisctl(8)): for each local
 * domain (or those named), its MX (the hostname), SPF, every DKIM key of
 * it or below it, DMARC, TLS-RPT (with tlsrpt_rua); then the host's
 * addresses and PTRs.  Zone-file
 * form; --check asks dns_server for each (c-ares, outbound/resolver.c)
 * and says ok, missing or differs.
 */
static int
dns_cmd(const char *conf, int argc, char **argv)
{
	struct wants w = { 0 };
	struct event_base *base = NULL;
	struct config *c;
	bool check = false, host = false;
	int rc = EXIT_OK;

	if (argc > 0 && strcmp(argv[0], "--check") == 0) {
		check = true;
		argc--;
		argv++;
	}
	if ((c = config_load(conf, problem, NULL)) == NULL)
		return EXIT_ERR;
	for (int a = 0; a < argc; a++) {
		char key[DOMAIN_MAX + 1];

		if (!addr_domain_key(argv[a], key, sizeof(key)) ||
		    !config_is_local_domain(c, key)) {
			fprintf(stderr, "chamoisctl: %s is not a local domain "
			    "(domains, chamois.conf(5))\n", argv[a]);
			config_free(c);
			return EXIT_USAGE;
		}
	}
	for (size_t d = 0; d < c->ndomains; d++) {
		const char *dom = c->domains[d];
		bool named = argc == 0;
		char name[DOMAIN_MAX + 80], *txt, err[512];
		struct want *x;

		for (int a = 0; a < argc; a++) {
			char key[DOMAIN_MAX + 1];

			named = named || (addr_domain_key(argv[a], key,
			    sizeof(key)) && strcmp(key, dom) == 0);
		}
		if (!named)
			continue;
		x = want_add(&w, DNS_RR_MX, dom, xasprintf("10 %s.", c->hostname));
		str_copy(x->match, c->hostname, sizeof(x->match));
		x = want_add(&w, DNS_RR_TXT, dom, xstrdup("v=spf1 mx -all"));
		x->prefix = "v=spf1";
		for (size_t k = 0; k < c->ndkim_keys; k++) {
			const struct dkim_key_conf *kc = &c->dkim_keys[k];

			if (!domain_within(kc->domain, dom))
				continue;
			snprintf(name, sizeof(name), "%s._domainkey.%s",
			    kc->selector, kc->domain);
			if (dkim_key_record(kc->file, &txt, err, sizeof(err)) == -1) {
				fprintf(stderr, "chamoisctl: %s:%d: dkim_key: %s\n",
				    c->path, kc->line, err);
				rc = EXIT_ERR;
				continue;
			}
			x = want_add(&w, DNS_RR_TXT, name, txt);
			x->prefix = "v=DKIM1";
		}
		snprintf(name, sizeof(name), "_dmarc.%s", dom);
		/* aggregate reports to the postmaster (RFC 7489 6.3) */
		x = want_add(&w, DNS_RR_TXT, name, c->postmaster ?
		    xasprintf("v=DMARC1; p=quarantine; rua=mailto:%s",
		    c->postmaster) : xasprintf("v=DMARC1; p=quarantine; "
		    "rua=mailto:postmaster@%s", dom));
		x->prefix = "v=DMARC1";
		/* TLS-RPT reports about our domains (RFC 8460 3), when asked for */
		if (c->tlsrpt_rua) {
			snprintf(name, sizeof(name), "_smtp._tls.%s", dom);
			x = want_add(&w, DNS_RR_TXT, name, xasprintf("v=TLSRPTv1; "
			    "rua=mailto:%s", c->tlsrpt_rua));
			x->prefix = "v=TLSRPTv1";
		}
	}
	host_wants(&w, c->hostname);

	if (check) {
		if ((base = event_base_new()) == NULL ||
		    (w.res = resolver_new(base, c->dns_server_len ?
		    (const struct sockaddr *)&c->dns_server : NULL,
		    c->dns_server_len)) == NULL)
			die(EXIT_ERR, "cannot set up the DNS resolver");
		check_wants = &w;
		w.pending = (unsigned)w.n;
		for (size_t i = 0; i < w.n; i++)
			resolver_records(w.res, w.v[i].name, w.v[i].rr, check_cb,
			    &w.v[i]);
		while (w.pending > 0)
			event_base_loop(base, EVLOOP_ONCE);
		resolver_free(w.res);
		event_base_free(base);
	}
	for (size_t i = 0; i <= w.n; i++) {
		const struct want *x = i < w.n ? &w.v[i] : NULL;
		static const char host_head[] = "; %s: its addresses, and their "
		    "PTR records (set where the addresses come from)\n";

		/* a heading before each domain, and one before the host's */
		if (x && x->rr == DNS_RR_MX)
			printf("; %s\n", x->name);
		else if (!host && (x == NULL || x->rr == DNS_RR_A ||
		    x->rr == DNS_RR_AAAA)) {
			printf(host_head, c->hostname);
			host = true;
		}
		if (x == NULL)
			break;
		print_want(x);
		if (x->verdict && strcmp(x->verdict, "ok") != 0)
			rc = EXIT_ERR;
	}
	for (size_t i = 0; i < w.n; i++) {
		free(w.v[i].value);
		free(w.v[i].found);
	}
	free(w.v);
	config_free(c);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name, *line;
		int minargs, maxargs;
	} cmds[] = {
		{ "queue", "QUEUE", 0, 0 }, { "show", "SHOW", 1, 1 },
		{ "flush", "FLUSH", 0, 0 }, { "delete", "DELETE", 1, 1 },
		{ "dump", "DUMP", 0, 1 }, { "restore", "RESTORE", 0, 1 },
		{ "tlsrpt", "TLSRPT", 1, 1 },
	};
	const char *conf = CHAMOIS_CONFIG_FILE, *arg;
	struct config *c;
	char line[ADMIN_LINE_MAX];
	size_t i;
	int ch, fd, nargs, src = STDIN_FILENO, out = STDOUT_FILENO;

	/* options stop at the command ("+"): dkim-keygen has its own */
	while ((ch = getopt(argc, argv, "+f:Vh")) != -1) {
		if (ch == 'V') {
			printf("chamoisctl %s\n", CHAMOIS_VERSION);
			return 0;
		}
		if (ch == 'h')
			usage_to(stdout, 0);
		if (ch != 'f')
			usage();
		conf = optarg;
	}
	if (optind >= argc)
		usage();
	if (strcmp(argv[optind], "dkim-keygen") == 0)
		return dkim_keygen_cmd(conf, argc - optind - 1, argv + optind + 1);
	if (strcmp(argv[optind], "quarantine") == 0)
		return quarantine_cmd(conf, argc - optind - 1, argv + optind + 1);
	if (strcmp(argv[optind], "dns") == 0)
		return dns_cmd(conf, argc - optind - 1, argv + optind + 1);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[optind], cmds[i].name) == 0)
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0]))
		usage();
	nargs = argc - optind - 1;
	if (nargs < cmds[i].minargs || nargs > cmds[i].maxargs)
		usage();
	arg = nargs ? argv[optind + 1] : NULL;
	if (arg && strcmp(arg, "-") == 0 && cmds[i].minargs == 0)
		arg = NULL;		/* dump - / restore -: stdout / stdin */
	if (strcmp(cmds[i].name, "tlsrpt") == 0 && strcmp(arg, "send") != 0)
		usage();
	if (arg && cmds[i].minargs == 1 && (strlen(arg) > 64 ||
	    strpbrk(arg, " \t\r\n") != NULL)) {
		fprintf(stderr, "chamoisctl: malformed message id\n");
		return EXIT_USAGE;
	}

	signal(SIGPIPE, SIG_IGN);
	if (arg && strcmp(cmds[i].name, "restore") == 0 &&
	    (src = open(arg, O_RDONLY | O_CLOEXEC)) == -1)
		die(EXIT_ERR, "%s: %s", arg, strerror(errno));
	if ((c = config_load(conf, problem, NULL)) == NULL)
		return EXIT_ERR;
	if (arg && strcmp(cmds[i].name, "dump") == 0)
		out = dump_file(arg);
	fd = connect_daemon(c->queue_dir);
	config_free(c);
	if (cmds[i].minargs == 1)
		snprintf(line, sizeof(line), "%s %s\n", cmds[i].line, arg);
	else
		snprintf(line, sizeof(line), "%s\n", cmds[i].line);
	write_all(fd, line, strlen(line), NULL);
	if (strcmp(cmds[i].name, "restore") == 0)
		return restore(fd, src, arg);
	if (strcmp(cmds[i].name, "dump") == 0)
		return dump(fd, out, arg);
	return plain(fd);
}
