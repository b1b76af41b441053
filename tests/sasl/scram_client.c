/*
 * scram_client.c - a real SMTP AUTH client for the integration tests:
 * libsasl2's client side (SCRAM-SHA-256 by default, any mechanism the
 * installed client plugins have) over STARTTLS or implicit TLS.
 *
 *     scram_client [-s] [-v] HOST PORT USER PASSWORD [MECH]
 *
 * Connects, reads the greeting, EHLO, STARTTLS (no certificate check),
 * EHLO, then AUTH MECH with the client's first message as the initial
 * response (RFC 4954 4) and answers each 334 with libsasl2's next step.
 * -s: TLS from the first byte (the submissions role, RFC 8314), no
 * STARTTLS.  -v: the dialog on stderr, SASL data left out.
 *
 * Prints the final reply line on stdout; exits 0 on 235, 1 otherwise
 * (also when the server says 235 before the mechanism finished, e.g.
 * without SCRAM's server signature, which the client checks).
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#define LINE_MAX_OCTETS	12288	/* RFC 4954 4: AUTH lines */
#define IO_TIMEOUT_SEC	30
#define EHLO_NAME	"scram-client.test"

/* sasl_callback_t.proc is int (*)(void); go through void (*)(void) */
#define CB_FN(f)	((int (*)(void))(void (*)(void))(f))

struct conn {
	int fd;
	SSL *ssl;
	char buf[4096];
	size_t off, len;
};

struct creds {
	const char *user;
	const char *pass;
	sasl_secret_t *secret;
};

static bool verbose;

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("scram_client: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void
usage(void)
{
	fputs("usage: scram_client [-s] [-v] HOST PORT USER PASSWORD [MECH]\n", stderr);
	exit(1);
}

static int
tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv = { .tv_sec = IO_TIMEOUT_SEC };
	int fd = -1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0)
		die("%s: %s", host, gai_strerror(e));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		die("cannot connect to %s port %s: %s", host, port, strerror(errno));
	return fd;
}

/* fill - more bytes from the peer; 0 at end of stream */
static ssize_t
fill(struct conn *c)
{
	ssize_t n;

	if (c->ssl != NULL) {
		n = SSL_read(c->ssl, c->buf, sizeof(c->buf));
		if (n <= 0)
			return SSL_get_error(c->ssl, (int)n) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
	} else {
		do
			n = read(c->fd, c->buf, sizeof(c->buf));
		while (n == -1 && errno == EINTR);
	}
	if (n > 0) {
		c->off = 0;
		c->len = (size_t)n;
	}
	return n;
}

/* read_line - one CRLF line without its end, or die */
static void
read_line(struct conn *c, char *line, size_t size)
{
	size_t n = 0;

	for (;;) {
		if (c->off == c->len) {
			ssize_t r = fill(c);

			if (r == 0)
				die("connection closed by the server");
			if (r < 0)
				die("read: %s", c->ssl != NULL ? "TLS error" : strerror(errno));
		}
		char ch = c->buf[c->off++];

		if (ch == '\n')
			break;
		if (n + 1 >= size)
			die("reply line too long");
		line[n++] = ch;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
}

/* read_reply - a whole (multi-line) reply; its code, last line in line */
static int
read_reply(struct conn *c, char *line, size_t size)
{
	for (;;) {
		read_line(c, line, size);
		if (verbose)
			fprintf(stderr, "S: %s\n", line);
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' ||
		    (line[3] != '\0' && line[3] != ' ' && line[3] != '-'))
			die("malformed reply: %s", line);
		if (line[3] != '-')
			return atoi(line);
	}
}

/* send_line - line + CRLF; secret: not echoed with -v */
static void
send_line(struct conn *c, const char *line, bool secret)
{
	size_t len = strlen(line) + 2, off = 0;
	char *buf = malloc(len + 1);

	if (buf == NULL)
		die("out of memory");
	snprintf(buf, len + 1, "%s\r\n", line);
	if (verbose)
		fprintf(stderr, "C: %s\n", secret ? "[SASL data]" : line);
	while (off < len) {
		ssize_t n;

		if (c->ssl != NULL)
			n = SSL_write(c->ssl, buf + off, (int)(len - off));
		else
			n = write(c->fd, buf + off, len - off);
		if (n <= 0) {
			if (c->ssl == NULL && n == -1 && errno == EINTR)
				continue;
			die("write failed");
		}
		off += (size_t)n;
	}
	free(buf);
}

static void
start_tls(struct conn *c, const char *host)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct addrinfo hints, *res;

	if (ctx == NULL)
		die("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if ((c->ssl = SSL_new(ctx)) == NULL)
		die("SSL_new failed");
	SSL_CTX_free(ctx);	/* the SSL keeps its own reference */
	/* SNI only for names, not address literals (RFC 6066 3) */
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(host, NULL, &hints, &res) == 0)
		freeaddrinfo(res);
	else
		SSL_set_tlsext_host_name(c->ssl, host);
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_connect(c->ssl) != 1) {
		ERR_print_errors_fp(stderr);
		die("TLS handshake failed");
	}
	c->off = c->len = 0;
}

static int
cb_simple(void *context, int id, const char **result, unsigned *len)
{
	const struct creds *cr = context;

	*result = id == SASL_CB_AUTHNAME ? cr->user : "";	/* no authzid */
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int
cb_secret(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
	struct creds *cr = context;
	size_t n = strlen(cr->pass);

	if (cr->secret == NULL) {
		if ((cr->secret = calloc(1, sizeof(sasl_secret_t) + n + 1)) == NULL)
			return SASL_NOMEM;
		cr->secret->len = n;
		memcpy(cr->secret->data, cr->pass, n);
	}
	*psecret = cr->secret;
	return SASL_OK;
}

/* b64 - base64 of data into a static-sized buffer */
static void
b64(const char *data, unsigned len, char *out, size_t size)
{
	unsigned n;

	if (sasl_encode64(data, len, out, (unsigned)size, &n) != SASL_OK)
		die("SASL data too long");
}

int
main(int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	struct creds cr;
	sasl_callback_t cbs[] = {
		{ SASL_CB_AUTHNAME, CB_FN(cb_simple), &cr },
		{ SASL_CB_USER, CB_FN(cb_simple), &cr },
		{ SASL_CB_PASS, CB_FN(cb_secret), &cr },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	static char line[LINE_MAX_OCTETS + 1], enc[LINE_MAX_OCTETS + 1];
	static char cmd[LINE_MAX_OCTETS + 64], chal[LINE_MAX_OCTETS];
	const char *host, *port, *mech = "SCRAM-SHA-256", *out = NULL, *chosen = NULL;
	bool implicit_tls = false, client_done = false, complete = true;
	sasl_conn_t *sc = NULL;
	unsigned outlen = 0, chlen;
	int ch, code, r;

	while ((ch = getopt(argc, argv, "sv")) != -1) {
		switch (ch) {
		case 's':
			implicit_tls = true;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 4 && argc != 5)
		usage();
	host = argv[0];
	port = argv[1];
	cr = (struct creds){ .user = argv[2], .pass = argv[3] };
	if (argc == 5)
		mech = argv[4];

	if ((r = sasl_client_init(NULL)) != SASL_OK)
		die("sasl_client_init: %s", sasl_errstring(r, NULL, NULL));
	if ((r = sasl_client_new("smtp", host, NULL, NULL, cbs, 0, &sc)) != SASL_OK)
		die("sasl_client_new: %s", sasl_errstring(r, NULL, NULL));

	c.fd = tcp_connect(host, port);
	if (implicit_tls)
		start_tls(&c, host);
	if ((code = read_reply(&c, line, sizeof(line))) != 220)
		goto done;
	send_line(&c, "EHLO " EHLO_NAME, false);
	if ((code = read_reply(&c, line, sizeof(line))) != 250)
		goto done;
	if (!implicit_tls) {
		send_line(&c, "STARTTLS", false);
		if ((code = read_reply(&c, line, sizeof(line))) != 220)
			goto done;
		/* RFC 3207 4.2: nothing may follow the 220 before the handshake */
		if (c.off != c.len)
			die("data after the STARTTLS reply");
		start_tls(&c, host);
		send_line(&c, "EHLO " EHLO_NAME, false);
		if ((code = read_reply(&c, line, sizeof(line))) != 250)
			goto done;
	}

	r = sasl_client_start(sc, mech, NULL, &out, &outlen, &chosen);
	if (r != SASL_OK && r != SASL_CONTINUE)
		die("sasl_client_start %s: %s", mech, sasl_errdetail(sc));
	client_done = r == SASL_OK;
	if (out == NULL)		/* server-first mechanism: no initial response */
		snprintf(cmd, sizeof(cmd), "AUTH %s", mech);
	else if (outlen == 0)		/* RFC 4954 4: "=" is an empty response */
		snprintf(cmd, sizeof(cmd), "AUTH %s =", mech);
	else {
		b64(out, outlen, enc, sizeof(enc));
		snprintf(cmd, sizeof(cmd), "AUTH %s %s", mech, enc);
	}
	send_line(&c, cmd, out != NULL);
	while ((code = read_reply(&c, line, sizeof(line))) == 334) {
		const char *text = line[3] == ' ' ? line + 4 : "";

		if (sasl_decode64(text, (unsigned)strlen(text), chal, sizeof(chal),
		    &chlen) != SASL_OK) {
			send_line(&c, "*", false);
			read_reply(&c, line, sizeof(line));
			die("334 with bad base64");
		}
		r = sasl_client_step(sc, chal, chlen, NULL, &out, &outlen);
		if (r != SASL_OK && r != SASL_CONTINUE) {
			/* e.g. a wrong server signature: cancel (RFC 4954 4) */
			fprintf(stderr, "scram_client: %s\n", sasl_errdetail(sc));
			send_line(&c, "*", false);
			code = read_reply(&c, line, sizeof(line));
			complete = false;
			break;
		}
		client_done = r == SASL_OK;
		if (out == NULL || outlen == 0)
			enc[0] = '\0';
		else
			b64(out, outlen, enc, sizeof(enc));
		send_line(&c, enc, true);
	}
	if (code == 235 && !client_done) {
		fprintf(stderr, "scram_client: 235 before the %s exchange was complete\n",
		    mech);
		complete = false;
	}
done:
	printf("%s\n", line);
	fflush(stdout);
	if (code != 421)
		send_line(&c, "QUIT", false);	/* its 221 matters to nobody */
	if (c.ssl != NULL) {
		SSL_shutdown(c.ssl);
		SSL_free(c.ssl);
	}
	close(c.fd);
	sasl_dispose(&sc);
	sasl_client_done();
	if (cr.secret != NULL) {
		explicit_bzero(cr.secret->data, cr.secret->len);
		free(cr.secret);
	}
	return code == 235 && complete ? 0 : 1;
}
