/*
 * latency.c - per-message latency from the client's final dot to the
 * remote server having the message (issue 8, scenario b).
 *
 * One process plays both ends, on one thread with poll():
 *  - a client that connects to the server under test, sends EHLO, then
 *    for each message MAIL FROM, RCPT TO, DATA (pipelined when the server
 *    offers PIPELINING), a message with a unique Message-ID
 *    <latN.TOKEN@bench.test> and a body of SIZE octets, and the final dot;
 *    t0 is taken right after the final ".\r\n" has been written;
 *  - a minimal SMTP sink, the remote the server relays to, which serves
 *    any number of connections at once (pipelining included) and takes t1
 *    when it has read a message's final dot, matching it to the client's
 *    message by the Message-ID in its header.
 * Only one message is in flight: the next starts when the server has
 * answered the final dot with 2xx and the sink has the message, in either
 * order (a queueing server answers first, a synchronous forwarder after).
 *
 * Usage:
 *	latency -c HOST:PORT -s ADDR:PORT -n COUNT -l SIZE -f FROM -t TO
 *	    [-w WARMUP] [-T TIMEOUT_SECONDS] [-H FILE] [-v]
 *	latency -P -l SIZE -f FROM -t TO
 * -H puts the header fields in FILE (LF or CRLF lines) on top of every
 * message: a DKIM-Signature made for "From: <FROM>", "To: <TO>" and the
 * body, which every message has the same (bench.py signs it with dkimpy,
 * h=from:to, so the fields that change from message to message are not
 * signed).  -P prints that part, "From: <FROM>\r\nTo: <TO>\r\n\r\n" and
 * the body of SIZE octets, and exits.
 * -c the server under test; -s where the sink listens (SO_REUSEADDR);
 * -n messages measured, after -w warm-up messages (default 5) that are
 * not; -l body octets; -T bounds the whole run (default 60 s). IPv6 as
 * [::1]:2525. Prints one line
 *	n=100 p50_us=210.4 p90_us=260.0 p99_us=400.2 max_us=512.9
 *	    mean_us=220.1 sink_first=100
 * (sink_first: messages the sink had before the client's 250), and with
 * -v one line a message before it:
 *	msg=7 latency_us=212.3 reply_us=240.1 sink_first=1
 * Exit status 1 (with the reason on stderr) on an unexpected reply, a
 * lost connection or the timeout; 2 on bad arguments.
 *
 * Build: make -C bench latency (libc only).
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_IN	(64 * 1024)	/* longest line either end accepts */
#define MSG_DOMAIN	"bench.test"

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

/* one connection from the server under test to the sink */
struct sink_conn {
	int		 fd;
	struct buf	 in, out;
	bool		 in_data;	/* between 354 and the final dot */
	bool		 in_header;	/* still in the message's header */
	long		 msg;		/* matched message, or -1 */
	bool		 closing;	/* QUIT answered: close once flushed */
};

enum client_state {
	C_GREETING,	/* waiting for 220 */
	C_EHLO,		/* waiting for the EHLO reply */
	C_ENVELOPE,	/* waiting for MAIL, RCPT and DATA replies */
	C_BODY,		/* writing the message */
	C_DOT,		/* waiting for the reply to the final dot (and sink) */
	C_QUIT,		/* waiting for 221 */
	C_DONE
};

static const char *const command_name[] = { "MAIL FROM", "RCPT TO", "DATA" };

static struct {
	int		 fd;
	enum client_state state;
	struct buf	 in, out;
	bool		 pipelining;
	int		 replies;	/* replies read in C_ENVELOPE */
	long		 msg;		/* message in flight */
	bool		 t0_pending;	/* take t0 when out is flushed */
	bool		 replied;	/* final dot answered */
} client;

static struct sink_conn **sinks;
static size_t nsinks, sinks_cap;
static int listen_fd = -1;

static const char *from_addr, *to_addr;
static long warmup = 5, count = -1, total;
static size_t body_size = (size_t)-1;
static bool verbose;
static char token[32];
static char *body;		/* the body, dot and CRLFs included */
static size_t body_len;
static struct buf head;		/* -H: fields put first, CRLF form */

/* per message: t0 (final dot written), t1 (sink has it), reply time */
static int64_t *t0, *t1, *treply;
static bool *sink_first;

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void usage(void) __attribute__((noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("latency: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
usage(void)
{
	fprintf(stderr, "usage: latency -c SERVER_HOST:PORT -s SINK_ADDR:PORT"
	    " -n COUNT -l SIZE -f FROM -t TO\n"
	    "               [-w WARMUP] [-T TIMEOUT_SECONDS] [-H FILE] [-v]\n"
	    "       latency -P -l SIZE -f FROM -t TO\n");
	exit(2);
}

/* now_ns - CLOCK_MONOTONIC in nanoseconds */
static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL)
		die("out of memory");
	return p;
}

static void
buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + len)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

static void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		die("internal: line too long");
	buf_add(b, line, (size_t)n);
}

/* buf_consume - drop the first N octets */
static void
buf_consume(struct buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

/* buf_line - the length of the first line with its LF, or 0 */
static size_t
buf_line(const struct buf *b)
{
	const char *lf = b->len ? memchr(b->data, '\n', b->len) : NULL;

	return lf ? (size_t)(lf - b->data) + 1 : 0;
}

/* buf_read - read what FD has; false at EOF; dies on errors */
static bool
buf_read(struct buf *b, int fd, const char *who)
{
	for (;;) {
		ssize_t n;

		if (b->cap - b->len < 16384) {
			b->cap = b->cap ? b->cap * 2 : 32768;
			b->data = xrealloc(b->data, b->cap);
		}
		n = read(fd, b->data + b->len, b->cap - b->len);
		if (n > 0) {
			b->len += (size_t)n;
			if (b->len > LINE_MAX_IN && buf_line(b) == 0)
				die("%s sent a line longer than %d octets",
				    who, LINE_MAX_IN);
			continue;
		}
		if (n == 0)
			return false;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return true;
		if (errno == ECONNRESET)
			return false;
		die("read from %s: %s", who, strerror(errno));
	}
}

/* buf_flush - write what B holds; false if the peer is gone */
static bool
buf_flush(struct buf *b, int fd, const char *who)
{
	size_t off = 0;

	while (off < b->len) {
		ssize_t n = write(fd, b->data + off, b->len - off);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		if (errno == EPIPE || errno == ECONNRESET) {
			buf_consume(b, off);
			return false;
		}
		die("write to %s: %s", who, strerror(errno));
	}
	buf_consume(b, off);
	return true;
}

static void
set_socket_options(int fd)
{
	int one = 1;

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		die("fcntl: %s", strerror(errno));
	/* a small final write must not wait for an ACK (Nagle) */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* resolve - HOST:PORT or [V6]:PORT into an addrinfo list */
static struct addrinfo *
resolve(const char *arg, bool passive)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints, *res;
	size_t hlen;
	int e;

	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');

		if (close == NULL || close[1] != ':')
			die("bad address \"%s\" (want [V6]:PORT)", arg);
		hlen = (size_t)(close - arg - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			die("bad address \"%s\"", arg);
		memcpy(host, arg + 1, hlen);
		colon = close + 1;
	} else {
		if ((colon = strrchr(arg, ':')) == NULL)
			die("bad address \"%s\" (want HOST:PORT)", arg);
		hlen = (size_t)(colon - arg);
		if (hlen == 0 || hlen >= sizeof(host))
			die("bad address \"%s\" (want HOST:PORT)", arg);
		memcpy(host, arg, hlen);
	}
	host[hlen] = '\0';
	port = colon + 1;
	if (*port == '\0' || strspn(port, "0123456789") != strlen(port))
		die("bad port in \"%s\"", arg);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0)
		die("%s: %s", arg, gai_strerror(e));
	return res;
}

static void
sink_listen(const char *arg)
{
	struct addrinfo *res = resolve(arg, true), *ai;
	int one = 1, e = 0;

	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);

		if (fd == -1) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0) {
			listen_fd = fd;
			break;
		}
		e = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (listen_fd == -1)
		die("sink cannot listen on %s: %s", arg, strerror(e));
	set_socket_options(listen_fd);
}

static void
client_connect(const char *arg, int timeout_s)
{
	struct addrinfo *res = resolve(arg, false), *ai;
	struct timeval tv = { .tv_sec = timeout_s };
	int e = 0;

	client.fd = -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);

		if (fd == -1) {
			e = errno;
			continue;
		}
		/* bounds the blocking connect (Linux honours it) */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			client.fd = fd;
			break;
		}
		e = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (client.fd == -1)
		die("cannot connect to %s: %s", arg, strerror(e));
	set_socket_options(client.fd);
}

/* read_head - -H FILE's header fields into head, every line ended CRLF */
static void
read_head(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];

	if (f == NULL)
		die("cannot open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = strcspn(line, "\r\n");

		if (n == 0)
			break;		/* an empty line ends the fields */
		buf_add(&head, line, n);
		buf_add(&head, "\r\n", 2);
	}
	if (ferror(f))
		die("cannot read %s", path);
	fclose(f);
}

/* make_body - the body after the headers: SIZE octets of lines of at
 * most 78 characters that never start with '.', then the final dot */
static void
make_body(void)
{
	static const char alphabet[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	size_t left = body_size, line = 0;

	body = xrealloc(NULL, body_size + 8);
	body_len = 0;
	while (left > 0) {
		/* 76 characters and CRLF; a last line of 1 octet can't be:
		 * the one before takes it (77 characters) */
		size_t chars = left >= 78 ? 76 : left - 2;

		if (left == 79)
			chars = 77;
		else if (left == 1)
			die("internal: body split");
		for (size_t i = 0; i < chars; i++)
			body[body_len++] = alphabet[(line + i) %
			    (sizeof(alphabet) - 1)];
		body[body_len++] = '\r';
		body[body_len++] = '\n';
		left -= chars + 2;
		line++;
	}
	memcpy(body + body_len, ".\r\n", 3);
	body_len += 3;
}

/* client_send_envelope - MAIL, RCPT, DATA for the next message */
static void
client_send_envelope(void)
{
	client.state = C_ENVELOPE;
	client.replies = 0;
	client.replied = false;
	buf_printf(&client.out, "MAIL FROM:<%s>\r\n", from_addr);
	if (client.pipelining) {
		buf_printf(&client.out, "RCPT TO:<%s>\r\n", to_addr);
		buf_printf(&client.out, "DATA\r\n");
	}
}

static void
client_send_message(void)
{
	char date[64];
	time_t t = time(NULL);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_add(&client.out, head.data, head.len);
	buf_printf(&client.out,
	    "From: <%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: latency %ld\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <lat%ld.%s@" MSG_DOMAIN ">\r\n"
	    "\r\n", from_addr, to_addr, client.msg, date, client.msg, token);
	buf_add(&client.out, body, body_len);
	client.state = C_BODY;
	client.t0_pending = true;
}

/* client_next - start the next message, or QUIT after the last */
static void
client_next(void)
{
	client.msg++;
	if (client.msg < total) {
		client_send_envelope();
		return;
	}
	buf_printf(&client.out, "QUIT\r\n");
	client.state = C_QUIT;
}

/* maybe_advance - the message in flight is done when answered and seen */
static void
maybe_advance(void)
{
	if (client.state == C_DOT && client.replied && t1[client.msg] != 0)
		client_next();
}

/* client_reply - one complete reply: CODE and its last line */
static void
client_reply(int code, const char *text)
{
	const char *what;
	int want = 2;

	switch (client.state) {
	case C_GREETING:
		what = "the greeting";
		break;
	case C_EHLO:
		what = "EHLO";
		break;
	case C_ENVELOPE:
		what = command_name[client.replies];
		if (client.replies == 2)
			want = 3;
		break;
	case C_DOT:
		what = "the final dot";
		break;
	case C_QUIT:
		what = "QUIT";
		break;
	default:
		die("server sent a reply while none was due: %s", text);
	}
	if (code / 100 != want)
		die("server replied to %s (message %ld): %s", what,
		    client.msg, text);

	switch (client.state) {
	case C_GREETING:
		buf_printf(&client.out, "EHLO latency." MSG_DOMAIN "\r\n");
		client.state = C_EHLO;
		break;
	case C_EHLO:
		client.msg = -1;
		client_next();
		break;
	case C_ENVELOPE:
		client.replies++;
		if (!client.pipelining && client.replies == 1)
			buf_printf(&client.out, "RCPT TO:<%s>\r\n", to_addr);
		else if (!client.pipelining && client.replies == 2)
			buf_printf(&client.out, "DATA\r\n");
		else if (client.replies == 3)
			client_send_message();
		break;
	case C_DOT:
		treply[client.msg] = now_ns();
		client.replied = true;
		maybe_advance();
		break;
	case C_QUIT:
		client.state = C_DONE;
		break;
	default:
		break;
	}
}

/* client_input - parse the replies read so far */
static void
client_input(void)
{
	size_t n;

	while ((n = buf_line(&client.in)) > 0) {
		char *line = client.in.data;
		size_t len = n;
		int code;

		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			len--;
		line[len] = '\0';
		if (len < 3 || !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (len > 3 && line[3] != ' ' && line[3] != '-'))
			die("server sent a malformed reply: %s", line);
		code = atoi(line);
		if (client.state == C_EHLO && len > 4 &&
		    strncasecmp(line + 4, "PIPELINING", 10) == 0 &&
		    (len == 14 || line[14] == ' '))
			client.pipelining = true;
		if (len > 3 && line[3] == '-') {
			buf_consume(&client.in, n);
			continue;
		}
		client_reply(code, line);
		buf_consume(&client.in, n);
	}
}

/* sink_reply - one reply line; the sink's replies are all fixed strings */
static void
sink_reply(struct sink_conn *s, const char *line)
{
	buf_add(&s->out, line, strlen(line));
	buf_add(&s->out, "\r\n", 2);
}

/* sink_match - find <latN.TOKEN@bench.test> in a header line */
static void
sink_match(struct sink_conn *s, const char *line, size_t len)
{
	const char *p = line, *end = line + len;
	size_t tlen = strlen(token);

	while ((p = memmem(p, (size_t)(end - p), "<lat", 4)) != NULL) {
		char *q;
		unsigned long n;

		p += 4;
		if (!isdigit((unsigned char)*p))
			continue;
		n = strtoul(p, &q, 10);
		if ((size_t)(end - q) < 1 + tlen + sizeof("@" MSG_DOMAIN ">") -
		    1 || *q != '.' || memcmp(q + 1, token, tlen) != 0 ||
		    memcmp(q + 1 + tlen, "@" MSG_DOMAIN ">",
		    sizeof("@" MSG_DOMAIN ">") - 1) != 0)
			continue;
		if (n < (unsigned long)total && s->msg == -1)
			s->msg = (long)n;
		return;
	}
}

/* sink_message_end - the sink has message S->msg */
static void
sink_message_end(struct sink_conn *s)
{
	int64_t t = now_ns();

	if (s->msg < 0) {
		if (verbose)
			fprintf(stderr, "latency: sink got a message that is"
			    " not one of ours\n");
	} else if (t1[s->msg] == 0) {
		t1[s->msg] = t;
		sink_first[s->msg] = !(client.state == C_DOT &&
		    client.msg == s->msg && client.replied);
		if (s->msg != client.msg)
			fprintf(stderr, "latency: sink got message %ld while"
			    " message %ld was in flight\n", s->msg,
			    client.msg);
	}
	s->msg = -1;
	sink_reply(s, "250 2.0.0 Ok: queued");
	maybe_advance();
}

/* sink_command - one command line (CRLF removed) */
static void
sink_command(struct sink_conn *s, char *line)
{
	char verb[8];
	size_t i;

	for (i = 0; i < sizeof(verb) - 1 && isalpha((unsigned char)line[i]);
	    i++)
		verb[i] = (char)toupper((unsigned char)line[i]);
	verb[i] = '\0';
	if (strcmp(verb, "EHLO") == 0) {
		sink_reply(s, "250-sink." MSG_DOMAIN);
		sink_reply(s, "250-PIPELINING");
		sink_reply(s, "250-8BITMIME");
		sink_reply(s, "250 SIZE 1073741824");
	} else if (strcmp(verb, "HELO") == 0) {
		sink_reply(s, "250 sink." MSG_DOMAIN);
	} else if (strcmp(verb, "MAIL") == 0) {
		sink_reply(s, "250 2.1.0 Ok");
	} else if (strcmp(verb, "RCPT") == 0) {
		sink_reply(s, "250 2.1.5 Ok");
	} else if (strcmp(verb, "DATA") == 0) {
		sink_reply(s, "354 End data with <CR><LF>.<CR><LF>");
		s->in_data = true;
		s->in_header = true;
		s->msg = -1;
	} else if (strcmp(verb, "RSET") == 0 || strcmp(verb, "NOOP") == 0) {
		sink_reply(s, "250 2.0.0 Ok");
	} else if (strcmp(verb, "QUIT") == 0) {
		sink_reply(s, "221 2.0.0 Bye");
		s->closing = true;
	} else {
		sink_reply(s, "502 5.5.2 Error: command not recognized");
	}
}

/* sink_input - serve the lines read so far */
static void
sink_input(struct sink_conn *s)
{
	size_t n;

	while (!s->closing && (n = buf_line(&s->in)) > 0) {
		char *line = s->in.data;
		size_t len = n;

		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			len--;
		if (!s->in_data) {
			line[len] = '\0';
			sink_command(s, line);
		} else if (len == 1 && line[0] == '.') {
			s->in_data = false;
			sink_message_end(s);
		} else if (s->in_header) {
			if (len == 0)
				s->in_header = false;
			else
				sink_match(s, line, len);
		}
		buf_consume(&s->in, n);
	}
}

static void
sink_accept(void)
{
	for (;;) {
		struct sink_conn *s;
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			die("sink accept: %s", strerror(errno));
		}
		set_socket_options(fd);
		s = xrealloc(NULL, sizeof(*s));
		memset(s, 0, sizeof(*s));
		s->fd = fd;
		s->msg = -1;
		if (nsinks == sinks_cap) {
			sinks_cap = sinks_cap ? sinks_cap * 2 : 16;
			sinks = xrealloc(sinks, sinks_cap * sizeof(*sinks));
		}
		sinks[nsinks++] = s;
		sink_reply(s, "220 sink." MSG_DOMAIN " ESMTP latency sink");
		buf_flush(&s->out, fd, "the sink's peer");
	}
}

static void
sink_close(size_t i)
{
	struct sink_conn *s = sinks[i];

	close(s->fd);
	free(s->in.data);
	free(s->out.data);
	free(s);
	sinks[i] = sinks[--nsinks];
}

/* client_flushed - the client's output went out; take t0 if due */
static void
client_flushed(void)
{
	if (client.out.len == 0 && client.t0_pending) {
		t0[client.msg] = now_ns();
		client.t0_pending = false;
		client.state = C_DOT;
	}
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* percentile - nearest rank of sorted V[N], PM per mille */
static double
percentile(const int64_t *v, long n, long pm)
{
	long rank = (n * pm + 999) / 1000;

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e3;
}

static void
report(void)
{
	int64_t *lat = xrealloc(NULL, (size_t)count * sizeof(*lat));
	double sum = 0;
	long nfirst = 0;

	for (long i = 0; i < count; i++) {
		long m = warmup + i;

		lat[i] = t1[m] - t0[m];
		sum += (double)lat[i];
		nfirst += sink_first[m];
		if (verbose)
			printf("msg=%ld latency_us=%.1f reply_us=%.1f"
			    " sink_first=%d\n", i, (double)lat[i] / 1e3,
			    (double)(treply[m] - t0[m]) / 1e3, sink_first[m]);
	}
	qsort(lat, (size_t)count, sizeof(*lat), cmp_i64);
	printf("n=%ld p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f"
	    " mean_us=%.1f sink_first=%ld\n", count,
	    percentile(lat, count, 500), percentile(lat, count, 900),
	    percentile(lat, count, 990), (double)lat[count - 1] / 1e3,
	    sum / (double)count / 1e3, nfirst);
	free(lat);
}

static long
parse_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "latency: %s must be a whole number from %ld"
		    " to %ld, not \"%s\"\n", what, min, max, s);
		usage();
	}
	return v;
}

/* wait_what - what the client is waiting for, for the timeout message */
static const char *
wait_what(void)
{
	switch (client.state) {
	case C_GREETING:
		return "the greeting";
	case C_EHLO:
		return "the reply to EHLO";
	case C_ENVELOPE:
		return command_name[client.replies];
	case C_BODY:
		return "the server to take the message";
	case C_DOT:
		return !client.replied ? "the reply to the final dot" :
		    "the sink to get the message";
	case C_QUIT:
		return "the reply to QUIT";
	default:
		return "nothing";
	}
}

int
main(int argc, char **argv)
{
	const char *server = NULL, *sink = NULL;
	struct pollfd *pfd = NULL;
	size_t pfd_cap = 0;
	long timeout_s = 60;
	int64_t deadline;
	const char *head_file = NULL;
	bool print_signed = false;
	int ch;

	while ((ch = getopt(argc, argv, "c:s:n:l:f:t:w:T:H:Pv")) != -1) {
		switch (ch) {
		case 'c':
			server = optarg;
			break;
		case 's':
			sink = optarg;
			break;
		case 'n':
			count = parse_long(optarg, "COUNT", 1, 10000000);
			break;
		case 'l':
			body_size = (size_t)parse_long(optarg, "SIZE", 0,
			    1L << 30);
			break;
		case 'f':
			from_addr = optarg;
			break;
		case 't':
			to_addr = optarg;
			break;
		case 'w':
			warmup = parse_long(optarg, "WARMUP", 0, 1000000);
			break;
		case 'T':
			timeout_s = parse_long(optarg, "TIMEOUT_SECONDS", 1,
			    86400);
			break;
		case 'H':
			head_file = optarg;
			break;
		case 'P':
			print_signed = true;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			usage();
		}
	}
	if (print_signed) {
		if (optind != argc || body_size == (size_t)-1 ||
		    body_size == 1 || from_addr == NULL || to_addr == NULL)
			usage();
		make_body();
		printf("From: <%s>\r\nTo: <%s>\r\n\r\n", from_addr, to_addr);
		fwrite(body, 1, body_len - 3, stdout);	/* not the final dot */
		return ferror(stdout) || fflush(stdout) ? 1 : 0;
	}
	if (head_file != NULL)
		read_head(head_file);
	if (optind != argc || server == NULL || sink == NULL || count < 0 ||
	    body_size == (size_t)-1 || from_addr == NULL || to_addr == NULL) {
		fprintf(stderr, "latency: -c, -s, -n, -l, -f and -t are"
		    " required\n");
		usage();
	}
	if (body_size == 1) {
		fprintf(stderr, "latency: SIZE must be 0 or at least 2 (a"
		    " line ends in CRLF)\n");
		usage();
	}
	if (strpbrk(from_addr, "<>\r\n") || strpbrk(to_addr, "<>\r\n") ||
	    strlen(from_addr) > 256 || strlen(to_addr) > 256) {
		fprintf(stderr, "latency: bad address in -f or -t\n");
		usage();
	}

	signal(SIGPIPE, SIG_IGN);
	deadline = now_ns() + (int64_t)timeout_s * 1000000000;
	total = warmup + count;
	t0 = xrealloc(NULL, (size_t)total * sizeof(*t0));
	t1 = xrealloc(NULL, (size_t)total * sizeof(*t1));
	treply = xrealloc(NULL, (size_t)total * sizeof(*treply));
	sink_first = xrealloc(NULL, (size_t)total * sizeof(*sink_first));
	memset(t1, 0, (size_t)total * sizeof(*t1));
	snprintf(token, sizeof(token), "%lx%llx", (long)getpid(),
	    (unsigned long long)now_ns() & 0xffffffffffULL);
	make_body();

	sink_listen(sink);
	client_connect(server, (int)timeout_s);
	client.state = C_GREETING;

	while (client.state != C_DONE) {
		int64_t left = deadline - now_ns();
		size_t n = 0, i;
		int r;

		if (left <= 0)
			die("timed out after %ld s waiting for %s (message"
			    " %ld of %ld)", timeout_s, wait_what(),
			    client.msg < 0 ? 0 : client.msg + 1, total);
		if (pfd_cap < nsinks + 2) {
			pfd_cap = (nsinks + 2) * 2;
			pfd = xrealloc(pfd, pfd_cap * sizeof(*pfd));
		}
		pfd[n++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = client.fd, .events = POLLIN |
		    (client.out.len ? POLLOUT : 0) };
		for (i = 0; i < nsinks; i++)
			pfd[n++] = (struct pollfd){ .fd = sinks[i]->fd,
			    .events = POLLIN |
			    (sinks[i]->out.len ? POLLOUT : 0) };
		r = poll(pfd, n, (int)((left + 999999) / 1000000));
		if (r == -1) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		/* the sinks first: what they read was sent before now */
		for (i = nsinks; i-- > 0;) {
			struct sink_conn *s = sinks[i];
			short re = pfd[2 + i].revents;
			bool open = true;

			if (re & (POLLIN | POLLHUP | POLLERR)) {
				open = buf_read(&s->in, s->fd,
				    "the server under test (sink side)");
				sink_input(s);
			}
			if (!buf_flush(&s->out, s->fd, "the sink's peer"))
				open = false;
			if (!open || (s->closing && s->out.len == 0))
				sink_close(i);
		}
		/* after the loop over pfd[2...], which new sinks would skew */
		if (pfd[0].revents & POLLIN)
			sink_accept();
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			bool open = buf_read(&client.in, client.fd,
			    "the server under test");

			client_input();
			if (!open && client.state != C_DONE)
				die("the server under test closed the"
				    " connection while the client waited for"
				    " %s (message %ld)", wait_what(),
				    client.msg);
		}
		if (client.out.len > 0) {
			if (!buf_flush(&client.out, client.fd,
			    "the server under test"))
				die("the server under test closed the"
				    " connection while the client waited for"
				    " %s", wait_what());
			client_flushed();
		}
	}
	close(client.fd);
	report();
	return 0;
}
