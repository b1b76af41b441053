/*
 * fuzz_dovecot_client - the Dovecot auth client as chamoisd runs it
 * (submission/sasl_dovecot.c, sasl_backend dovecot): its reading of what
 * the auth server sends (lines, the handshake, answers to requests, the
 * bounds), on a real event loop and a real Unix socket.
 *
 * Input: what the server sends, in chunks cut at NUL octets (a NUL is
 * never part of a line of the protocol).  Each chunk is written to the
 * client's connection and the loop run until it is read; between chunks,
 * as a session would, the harness starts an exchange when the client has
 * mechanisms (AUTH PLAIN with an initial response, or AUTH LOGIN without
 * one), answers a challenge with a step, and starts the next exchange
 * when one ends.  Request ids count from 1 for each input.  Checks: a
 * challenge handed to a session is a base64-like word that fits a 334
 * line; OK has a user name; every exchange started is answered by the
 * end (sub_dovecot_shutdown answers what is left with TEMP); nothing
 * leaks.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <event2/event.h>

#include "fuzz.h"
#include "common/limits.h"
#include "common/log.h"
#include "submission/submission.h"

static struct event_base *base;
static char sock_path[108];
static int listen_fd = -1;

static struct {
	struct sub_sasl *s;
	bool waiting;		/* an exchange is with the client */
	bool step;		/* a challenge came: send a response */
	unsigned started, answered;
} h;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz-dovecot-XXXXXX";
	struct sockaddr_un sun;

	(void)argc;
	(void)argv;
	log_init("fuzz_dovecot_client", 1, 0);
	FUZZ_CHECK((base = event_base_new()) != NULL);
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	snprintf(sock_path, sizeof(sock_path), "%s/auth-client", dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	FUZZ_CHECK((listen_fd = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	FUZZ_CHECK(bind(listen_fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	FUZZ_CHECK(listen(listen_fd, 64) == 0);
	FUZZ_CHECK(fcntl(listen_fd, F_SETFL, O_NONBLOCK) == 0);
	return 0;
}

static void
done(struct sub_sasl *s, enum sub_sasl_result r, const char *out, uint64_t ref)
{
	FUZZ_CHECK(s == h.s && h.waiting && ref == h.started);
	h.waiting = false;
	h.answered++;
	if (r == SUB_SASL_CONTINUE) {
		size_t n = strlen(out);

		FUZZ_CHECK(n < SUB_SASL_OUT_MAX);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK((unsigned char)out[i] > ' ' && out[i] != 0x7f);
		h.step = true;
		return;
	}
	if (r == SUB_SASL_OK)
		FUZZ_CHECK(sub_sasl_dovecot_ops.user(s) != NULL);
	sub_sasl_dovecot_ops.free(s);
	h.s = NULL;
}

/* next - what a session would do now */
static void
next(void)
{
	const char *mechs;

	if (h.waiting || h.started >= 8)
		return;
	if (h.step) {
		h.step = false;
		h.waiting = true;
		/* base64 of "alice@example.test" */
		sub_sasl_dovecot_ops.step_async(h.s, "YWxpY2VAZXhhbXBsZS50ZXN0",
		    done, h.started);
		return;
	}
	if (h.s != NULL)
		return;
	mechs = sub_sasl_dovecot_ops.mechs(NULL);
	if (mechs == NULL || *mechs == '\0')
		return;
	FUZZ_CHECK((h.s = sub_sasl_dovecot_ops.session(NULL, "127.0.0.1;25",
	    "192.0.2.1;4242", 256)) != NULL);
	h.started++;
	h.waiting = true;
	if (h.started % 2 == 1)
		/* "\0alice@example.test\0pw" */
		sub_sasl_dovecot_ops.start_async(h.s, "PLAIN",
		    "AGFsaWNlQGV4YW1wbGUudGVzdABwdw==", done, h.started);
	else
		sub_sasl_dovecot_ops.start_async(h.s, "LOGIN", NULL, done,
		    h.started);
}

/* drain - what the client wrote, and connections it made again */
static void
drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0;
	int fd, extra;

	memset(&h, 0, sizeof(h));
	sub_dovecot_init(base, sock_path);
	FUZZ_CHECK((fd = accept(listen_fd, NULL, NULL)) != -1);
	FUZZ_CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	while (start <= size) {
		const uint8_t *nul = memchr(data + start, '\0', size - start);
		size_t len = (nul != NULL ? (size_t)(nul - data) : size) - start;

		for (size_t off = 0; off < len; ) {
			ssize_t w = send(fd, data + start + off, len - off,
			    MSG_NOSIGNAL);

			if (w <= 0) {
				/* the client stopped reading (it dropped us) */
				FUZZ_CHECK(w == -1 && (errno == EAGAIN ||
				    errno == EPIPE || errno == ECONNRESET));
				break;
			}
			off += (size_t)w;
			event_base_loop(base, EVLOOP_NONBLOCK);
			drain(fd);
		}
		for (int i = 0; i < 4; i++)
			event_base_loop(base, EVLOOP_NONBLOCK);
		drain(fd);
		next();
		for (int i = 0; i < 2; i++)
			event_base_loop(base, EVLOOP_NONBLOCK);
		drain(fd);
		start += len + 1;
	}
	sub_dovecot_shutdown();
	FUZZ_CHECK(!h.waiting && h.answered >= h.started);
	if (h.s != NULL)
		sub_sasl_dovecot_ops.free(h.s);
	close(fd);
	/* connections made again after a drop: nobody answers them */
	while ((extra = accept(listen_fd, NULL, NULL)) != -1)
		close(extra);
	return 0;
}
