/*
 * test_engine.c - the session engine (smtpd/) driven through its seam.
 *
 * A real session on a real event base, its client end a socketpair the
 * test writes commands to and reads replies from; the engine's router
 * sends every address to a fake route (route.h) that records each call
 * and answers at once, later, or not at all, as the test says.  What is
 * checked is what a client sees: the replies, their order, and which
 * route calls the commands caused.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/util.h"
#include "common/worker.h"
#include "local/local.h"
#include "smtpd/smtpd.h"
#include "scratch.h"
#include "unit.h"

/* the fake route: what it was asked, and how it answers */
enum answer { NOW, LATER };

static struct {
	char log[4096];			/* "rcpt <a>;data;body 12;end -;rset;" */
	char body[4096];
	size_t bodylen;
	enum answer rcpt, data, end;
	const char *rcpt_reply;		/* sync answer */
	const char *end_reply;
	struct smtpd_session *s;	/* the session of the last call */
	bool twice;			/* answer every RCPT twice */
} fake;

/* note_in - append one call to a fake's log */
static void
note_in(char *log, size_t size, const char *fmt, const char *arg)
{
	size_t o = strlen(log);

	snprintf(log + o, size - o, fmt, arg);
}

#define note(fmt, arg)	note_in(fake.log, sizeof(fake.log), (fmt), (arg))

static void
fake_rcpt(struct smtpd_session *s, const char *shown, const struct expansion *exp)
{
	fake.s = s;
	note("rcpt <%s>;", shown);
	if (fake.rcpt == NOW) {
		smtpd_rcpt_answer(s, "%s", fake.rcpt_reply);
		if (fake.twice)
			smtpd_rcpt_answer(s, "250 2.1.5 twice");
	}
}

static void
fake_data(struct smtpd_session *s)
{
	fake.s = s;
	note("data;%s", "");
	if (fake.data == NOW)
		smtpd_data_go(s);
}

static void
fake_body(struct smtpd_session *s, const char *text, size_t len)
{
	if (fake.bodylen + len < sizeof(fake.body)) {
		memcpy(fake.body + fake.bodylen, text, len);
		fake.bodylen += len;
	}
}

static void
fake_end(struct smtpd_session *s, const char *refusal)
{
	fake.s = s;
	note("end %s;", refusal ? refusal : "-");
	if (fake.end == NOW)
		smtpd_tx_done(s, "%s", refusal ? refusal : fake.end_reply);
}

static void
fake_rset(struct smtpd_session *s)
{
	note("rset;%s", "");
}

static void
fake_free(struct smtpd_session *s)
{
	note("free;%s", "");
}

static const struct smtpd_route_ops fake_route = {
	.name = "fake",
	.rcpt = fake_rcpt,
	.data = fake_data,
	.body = fake_body,
	.end = fake_end,
	.rset = fake_rset,
	.free = fake_free,
};

/* fake_router - every address to the fake route, one key per domain */
static bool
fake_router(struct smtpd_session *s, const struct mailaddr *a, const char *key,
    const char *shown, struct smtpd_route_pick *pick)
{
	if (strcmp(a->local, "local") == 0) {
		/* the real local route, one mailbox */
		pick->ops = &local_route;
		snprintf(pick->key, sizeof(pick->key), "local");
		pick->exp.mailboxes = xcalloc(1, sizeof(char *));
		pick->exp.mailboxes[pick->exp.nmailboxes++] = xstrdup(key);
		return true;
	}
	if (strcmp(a->local, "nobody") == 0) {
		snprintf(pick->refusal, sizeof(pick->refusal),
		    "550 5.1.1 <%s>: no such user", shown);
		return false;
	}
	pick->ops = &fake_route;
	snprintf(pick->key, sizeof(pick->key), "fake:%s", a->domain);
	return true;
}

/* the fake checks (smtpd_check_ops): what they were asked, how they answer */
static struct {
	char log[1024];
	char body[4096];		/* what the checks saw of the message */
	size_t bodylen;
	enum answer rcpt, end;
	const char *rcpt_refusal;	/* NULL: let it through */
	const char *end_refusal;
	const char *ar;			/* the field smtpd_check_done gives */
	struct smtpd_session *s;
} fc;

#define cnote(fmt, arg)	note_in(fc.log, sizeof(fc.log), (fmt), (arg))

static void
fc_connect(struct smtpd_session *s)
{
	cnote("connect;%s", "");
}

static void
fc_mail(struct smtpd_session *s)
{
	cnote("mail <%s>;", smtpd_tx_sender(s));
}

static void
fc_rcpt(struct smtpd_session *s, const struct mailaddr *a, const char *shown)
{
	fc.s = s;
	cnote("rcpt <%s>;", shown);
	if (fc.rcpt == NOW)
		smtpd_check_rcpt(s, fc.rcpt_refusal);
}

static void
fc_body(struct smtpd_session *s, const char *text, size_t len)
{
	if (fc.bodylen + len < sizeof(fc.body)) {
		memcpy(fc.body + fc.bodylen, text, len);
		fc.bodylen += len;
	}
}

/* fc_drop - an Authentication-Results field naming mx.example.test goes */
static bool
fc_drop(struct smtpd_session *s, const char *f, size_t len)
{
	return memmem(f, len, ": mx.example.test;", 18) != NULL;
}

static void
fc_end(struct smtpd_session *s, bool forwarded)
{
	fc.s = s;
	cnote("end %s;", forwarded ? "forwarded" : "kept");
	if (fc.end == NOW)
		smtpd_check_done(s, fc.end_refusal, fc.ar);
}

static void
fc_rset(struct smtpd_session *s)
{
	cnote("rset;%s", "");
}

static void
fc_free(struct smtpd_session *s)
{
	cnote("free;%s", "");
}

static const struct smtpd_check_ops fake_checks = {
	.connect = fc_connect,
	.mail = fc_mail,
	.rcpt = fc_rcpt,
	.body = fc_body,
	.drop_field = fc_drop,
	.end = fc_end,
	.rset = fc_rset,
	.free = fc_free,
};

static void wait_jobs(void);
static struct event_base *base;	/* the engine's loop */
static bool workers_on;		/* this test started the worker pool */

/* workers - the tests that deliver start one worker thread */
static void
workers(void)
{
	worker_init(base, 1);
	workers_on = true;
}

/* the engine and one client */
static char *dir;
static int client = -1;
static char got[8192];		/* what the client read, all of it */
static size_t gotlen;

static int
setup_with(const struct smtpd_check_ops *checks)
{
	struct sockaddr_in peer = { .sin_family = AF_INET };
	struct config *cfg;
	char *path;
	int sv[2];

	memset(&fake, 0, sizeof(fake));
	memset(&fc, 0, sizeof(fc));
	fake.rcpt_reply = "250 2.1.5 Ok";
	fake.end_reply = "250 2.0.0 Ok: fake";
	gotlen = 0;
	got[0] = '\0';
	dir = scratch_dir();
	assert_true(asprintf(&path, "%s/chamois.conf", dir) > 0);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fprintf(f, "hostname mx.example.test\nlisten mx 127.0.0.1:2525\n"
		    "domains example.test\nmailboxes %s/mailboxes\n"
		    "maildir_root %s/maildir\nqueue_dir %s\n", dir, dir, dir);
		fclose(f);
	}
	cfg = config_load(path, NULL, NULL);
	free(path);
	assert_non_null(cfg);
	base = event_base_new();
	smtpd_init(base);
	smtpd_configure(cfg, NULL, NULL, NULL);
	config_free(cfg);		/* the engine holds it */
	smtpd_set_router(ROLE_MX, fake_router);
	smtpd_set_checks(ROLE_MX, checks);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	client = sv[1];
	peer.sin_addr.s_addr = htonl(0xc0000201);	/* 192.0.2.1 */
	smtpd_session_new(sv[0], (struct sockaddr *)&peer, sizeof(peer), ROLE_MX);
	assert_int_equal(smtpd_session_count(), 1);
	return 0;
}

static int
setup(void **state)
{
	return setup_with(NULL);
}

/* setup_checked - the session of the test has the fake checks */
static int
setup_checked(void **state)
{
	return setup_with(&fake_checks);
}

static int
teardown(void **state)
{
	if (client != -1)
		close(client);
	client = -1;
	smtpd_sessions_kill();
	if (workers_on) {
		wait_jobs();
		worker_shutdown();
		workers_on = false;
	}
	smtpd_set_checks(ROLE_MX, NULL);
	smtpd_shutdown();
	event_base_free(base);
	base = NULL;
	return scratch_teardown(state);
}

/* replies - complete final reply lines ("NNN " at a line start) read so far */
static size_t
replies(void)
{
	size_t n = 0;

	for (const char *p = got; *p; ) {
		const char *eol = strstr(p, "\r\n");

		if (eol == NULL)
			break;
		if (eol - p >= 4 && p[3] == ' ')
			n++;
		p = eol + 2;
	}
	return n;
}

/*
 * pump - run the loop until the client has read want replies in all, or
 * the loop has nothing more to do for a while (bounded)
 */
static void
pump(size_t want)
{
	for (int i = 0; i < 200 && replies() < want; i++) {
		ssize_t r;

		event_base_loop(base, EVLOOP_NONBLOCK);
		while ((r = read(client, got + gotlen, sizeof(got) - 1 - gotlen)) > 0) {
			gotlen += (size_t)r;
			got[gotlen] = '\0';
		}
		if (replies() < want)
			usleep(1000);
	}
}

/* say - send text, then wait for the total of replies to reach want */
static void
say(const char *text, size_t want)
{
	assert_int_equal(write(client, text, strlen(text)), (ssize_t)strlen(text));
	pump(want);
}

/* last - the n-th reply line (1-based) of everything read */
static const char *
reply_n(size_t n, char *out, size_t size)
{
	size_t k = 0;

	out[0] = '\0';
	for (const char *p = got; *p; ) {
		const char *eol = strstr(p, "\r\n");

		if (eol == NULL)
			break;
		if (eol - p >= 4 && p[3] == ' ' && ++k == n) {
			snprintf(out, size, "%.*s", (int)(eol - p), p);
			break;
		}
		p = eol + 2;
	}
	return out;
}

#define assert_reply(n, prefix) do {					\
	char r_[600];							\
	reply_n((n), r_, sizeof(r_));					\
	if (strncmp(r_, (prefix), strlen(prefix)) != 0)			\
		fail_msg("reply %d is \"%s\", want \"%s...\"\nall: %s",	\
		    (int)(n), r_, (prefix), got);			\
} while (0)

/* greeted - the 220, then EHLO and MAIL */
static void
greeted(void)
{
	pump(1);
	assert_reply(1, "220 mx.example.test ESMTP");
	say("EHLO client.example\r\nMAIL FROM:<a@client.example>\r\n", 3);
	assert_reply(3, "250 2.1.0 Ok");
}

static void
test_order_errors(void **state)
{
	pump(1);
	say("MAIL FROM:<a@b.example>\r\n", 2);
	assert_reply(2, "503 5.5.1 Send HELO/EHLO first");
	say("RCPT TO:<x@example.test>\r\n", 3);
	assert_reply(3, "503 5.5.1 Send HELO/EHLO first");
	say("HELO client.example\r\n", 4);
	say("RCPT TO:<x@example.test>\r\n", 5);
	assert_reply(5, "503 5.5.1 Need MAIL before RCPT");
	say("DATA\r\n", 6);
	assert_reply(6, "503 5.5.1 Need MAIL before DATA");
	say("MAIL FROM:<a@b.example>\r\n", 7);
	say("MAIL FROM:<a@b.example>\r\n", 8);
	assert_reply(8, "503 5.5.1 Nested MAIL command");
	say("DATA\r\n", 9);
	assert_reply(9, "503 5.5.1 No valid recipients");
	/* nothing of this reached the route */
	assert_string_equal(fake.log, "");
}

static void
test_rcpt_reaches_the_route(void **state)
{
	greeted();
	say("RCPT TO:<x@example.test>\r\n", 4);
	assert_reply(4, "250 2.1.5 Ok");
	assert_string_equal(fake.log, "rcpt <x@example.test>;");
	/* the router's refusal never reaches the route */
	say("RCPT TO:<nobody@example.test>\r\n", 5);
	assert_reply(5, "550 5.1.1 <nobody@example.test>: no such user");
	/* one route key per transaction */
	say("RCPT TO:<y@other.example>\r\n", 6);
	assert_reply(6, "452 4.5.3 send this recipient in a separate transaction");
	assert_string_equal(fake.log, "rcpt <x@example.test>;");
}

static void
test_rcpt_answered_later_holds_input(void **state)
{
	greeted();
	fake.rcpt = LATER;
	/* pipelined: NOOP must wait for the RCPT's answer */
	say("RCPT TO:<x@example.test>\r\nNOOP\r\n", 4);
	assert_int_equal(replies(), 3);
	assert_non_null(fake.s);
	smtpd_rcpt_answer(fake.s, "250 2.1.5 Ok: later");
	pump(5);
	assert_reply(4, "250 2.1.5 Ok: later");
	assert_reply(5, "250 2.0.0 Ok");
}

static void
test_rcpt_refused_later(void **state)
{
	greeted();
	fake.rcpt = LATER;
	say("RCPT TO:<x@example.test>\r\n", 4);
	assert_int_equal(replies(), 3);
	smtpd_rcpt_answer(fake.s, "451 4.4.3 <x@example.test>: DNS failed");
	pump(4);
	assert_reply(4, "451 4.4.3");
	/* not accepted: the transaction has no recipient */
	say("DATA\r\n", 5);
	assert_reply(5, "503 5.5.1 No valid recipients");
}

static void
test_data_waits_for_the_route(void **state)
{
	greeted();
	say("RCPT TO:<x@example.test>\r\n", 4);
	fake.data = LATER;
	say("DATA\r\n", 5);
	assert_int_equal(replies(), 4);
	assert_string_equal(fake.log, "rcpt <x@example.test>;data;");
	smtpd_data_go(fake.s);
	pump(5);
	assert_reply(5, "354 End data with <CR><LF>.<CR><LF>");
}

static void
test_body_and_end(void **state)
{
	greeted();
	say("RCPT TO:<x@example.test>\r\nDATA\r\n", 5);
	assert_reply(5, "354 ");
	say("Subject: hi\r\n\r\n..dotted\r\nbody\r\n.\r\n", 6);
	assert_reply(6, "250 2.0.0 Ok: fake");
	assert_int_equal(fake.bodylen, strlen("Subject: hi\n\n.dotted\nbody\n"));
	assert_memory_equal(fake.body, "Subject: hi\n\n.dotted\nbody\n", fake.bodylen);
	assert_string_equal(fake.log, "rcpt <x@example.test>;data;end -;rset;");
	/* the transaction is over: a new one may start */
	say("MAIL FROM:<b@client.example>\r\n", 7);
	assert_reply(7, "250 2.1.0 Ok");
}

static void
test_end_answered_later(void **state)
{
	greeted();
	fake.end = LATER;
	say("RCPT TO:<x@example.test>\r\nDATA\r\n", 5);
	say("hello\r\n.\r\nNOOP\r\n", 6);
	assert_int_equal(replies(), 5);
	assert_string_equal(fake.log, "rcpt <x@example.test>;data;end -;");
	smtpd_tx_done(fake.s, "250 2.0.0 Ok: stored later");
	pump(7);
	assert_reply(6, "250 2.0.0 Ok: stored later");
	assert_reply(7, "250 2.0.0 Ok");
	assert_string_equal(fake.log, "rcpt <x@example.test>;data;end -;rset;");
}

static void
test_end_gets_the_refusal(void **state)
{
	char line[1100];

	greeted();
	say("RCPT TO:<x@example.test>\r\nDATA\r\n", 5);
	memset(line, 'a', 1001);
	strcpy(line + 1001, "\r\n.\r\n");
	say(line, 6);
	assert_reply(6, "554 5.6.0 Message refused: a line is longer");
	assert_non_null(strstr(fake.log, "end 554 5.6.0"));
}

static void
test_rset_reaches_the_route(void **state)
{
	greeted();
	say("RCPT TO:<x@example.test>\r\nRSET\r\n", 5);
	assert_reply(5, "250 2.0.0 Ok");
	assert_string_equal(fake.log, "rcpt <x@example.test>;rset;");
}

static void
test_route_cannot_misbehave(void **state)
{
	greeted();
	fake.twice = true;
	say("RCPT TO:<x@example.test>\r\nNOOP\r\n", 5);
	/* the second answer had no RCPT to answer: it is not sent */
	assert_reply(4, "250 2.1.5 Ok");
	assert_reply(5, "250 2.0.0 Ok");
	/* 354 outside DATA, a RCPT answer outside RCPT: ignored */
	smtpd_data_go(fake.s);
	smtpd_rcpt_answer(fake.s, "250 2.1.5 stray");
	say("NOOP\r\n", 6);
	assert_reply(6, "250 2.0.0 Ok");
	assert_null(strstr(got, "stray"));
	assert_null(strstr(got, "354"));
}

static void
test_session_end_frees_the_route(void **state)
{
	greeted();
	say("RCPT TO:<x@example.test>\r\nQUIT\r\n", 5);
	assert_reply(5, "221 2.0.0 Bye");
	for (int i = 0; i < 200 && smtpd_session_count() > 0; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(smtpd_session_count(), 0);
	assert_non_null(strstr(fake.log, "free;"));
}

static void
test_session_find(void **state)
{
	struct smtpd_session *s;

	greeted();
	say("RCPT TO:<x@example.test>\r\n", 4);
	s = fake.s;
	assert_ptr_equal(smtpd_session_find(smtpd_session_id(s)), s);
	assert_null(smtpd_session_find(smtpd_session_id(s) + 1));
}

/* new_files - files in the mailbox's new/ */
static int
new_files(const char *mailbox_dir)
{
	DIR *d = opendir(mailbox_dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* wait_jobs - run the loop until every worker job has come back (bounded: 20 s) */
static void
wait_jobs(void)
{
	for (int i = 0; i < 20000 && worker_pending() > 0; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(worker_pending(), 0);
}

static void
test_local_route_delivers(void **state)
{
	char new_dir[600];

	workers();
	greeted();
	say("RCPT TO:<local@example.test>\r\nDATA\r\n", 5);
	assert_reply(5, "354 ");
	say("Subject: hi\r\n\r\nbody\r\n.\r\n", 6);
	assert_reply(6, "250 2.0.0 Ok: delivered as ");
	snprintf(new_dir, sizeof(new_dir), "%s/maildir/example.test/local/new", dir);
	assert_int_equal(new_files(new_dir), 1);
	/* the fake route was never asked */
	assert_string_equal(fake.log, "");
}

/* block_work - holds the one worker until the test writes to the pipe */
static void
block_work(void *arg)
{
	char c;

	(void)read(*(int *)arg, &c, 1);
}

static void
block_done(void *arg)
{
}

/*
 * the job owns the copies and finds the session by id: a session gone
 * while its delivery waits or runs costs nothing but the reply (the
 * message is in new/, as doc/security.md says of a lost 250)
 */
static void
test_local_job_outlives_the_session(void **state)
{
	char new_dir[600];
	int p[2];

	assert_int_equal(pipe(p), 0);
	workers();
	worker_submit(block_work, block_done, &p[0]);
	greeted();
	say("RCPT TO:<local@example.test>\r\nDATA\r\n", 5);
	say("Subject: hi\r\n\r\nbody\r\n.\r\n", 5);
	/* the final dot is read and the delivery queued behind the blocker */
	for (int i = 0; i < 200 && worker_pending() < 2; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(worker_pending(), 2);
	smtpd_sessions_kill();
	assert_int_equal(smtpd_session_count(), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	wait_jobs();
	close(p[0]);
	close(p[1]);
	snprintf(new_dir, sizeof(new_dir), "%s/maildir/example.test/local/new", dir);
	assert_int_equal(new_files(new_dir), 1);
}

/* a job that reads the session on its worker thread: the engine stops it */
static void
bad_work(void *arg)
{
	(void)smtpd_tx_id(arg);
}

static void
no_done(void *arg)
{
}

static void
test_worker_cannot_read_the_session(void **state)
{
	int status;
	pid_t pid;

	greeted();
	say("RCPT TO:<x@example.test>\r\n", 4);
	if ((pid = fork()) == 0) {
		/* a worker thread of the child's own */
		worker_init(base, 1);
		worker_submit(bad_work, no_done, fake.s);
		for (int i = 0; i < 2000; i++) {
			event_base_loop(base, EVLOOP_NONBLOCK);
			usleep(1000);
		}
		_exit(0);	/* not reached: fatalx on the worker thread */
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
}

/* the checks see each RCPT before its router: a refusal never reaches a route */
static void
test_checks_before_the_router(void **state)
{
	greeted();
	assert_string_equal(fc.log, "connect;mail <a@client.example>;");
	fc.rcpt_refusal = "554 5.7.1 Service unavailable; client [192.0.2.1] "
	    "listed by bl.example";
	say("RCPT TO:<x@example.test>\r\n", 4);
	assert_reply(4, "554 5.7.1 Service unavailable; client [192.0.2.1]");
	assert_string_equal(fake.log, "");
	fc.rcpt_refusal = NULL;
	say("RCPT TO:<y@example.test>\r\n", 5);
	assert_reply(5, "250 2.1.5 Ok");
	assert_string_equal(fake.log, "rcpt <y@example.test>;");
	assert_string_equal(fc.log, "connect;mail <a@client.example>;"
	    "rcpt <x@example.test>;rcpt <y@example.test>;");
}

/* a check that answers a RCPT later holds the session's input, in order */
static void
test_checks_rcpt_later(void **state)
{
	greeted();
	fc.rcpt = LATER;
	say("RCPT TO:<x@example.test>\r\nNOOP\r\n", 4);
	assert_int_equal(replies(), 3);
	assert_string_equal(fake.log, "");
	smtpd_check_rcpt(fc.s, NULL);
	pump(5);
	assert_reply(4, "250 2.1.5 Ok");
	assert_reply(5, "250 2.0.0 Ok");
	assert_string_equal(fake.log, "rcpt <x@example.test>;");
	/* a refusal that comes later */
	say("RCPT TO:<z@example.test>\r\nNOOP\r\n", 6);	/* pumps: none comes */
	assert_int_equal(replies(), 5);
	smtpd_check_rcpt(fc.s, "554 5.7.1 listed");
	pump(7);
	assert_reply(6, "554 5.7.1 listed");
	assert_reply(7, "250 2.0.0 Ok");
	assert_string_equal(fake.log, "rcpt <x@example.test>;");
	/* an answer when no RCPT waits is ignored */
	smtpd_check_rcpt(fc.s, "554 5.7.1 stray");
	say("NOOP\r\n", 8);
	assert_null(strstr(got, "stray"));
}

/*
 * the route's end runs only after the checks' verdict, and gets it as
 * its refusal; the checks saw the message as the client sent it
 */
static void
test_checks_verdict_before_the_end(void **state)
{
	greeted();
	fc.end = LATER;
	say("RCPT TO:<x@example.test>\r\nDATA\r\n", 5);
	say("Subject: hi\r\n\r\nbody\r\n.\r\nNOOP\r\n", 6);	/* none comes */
	assert_int_equal(replies(), 5);
	assert_string_equal(fake.log, "rcpt <x@example.test>;data;");
	assert_non_null(strstr(fc.log, "end kept;"));
	assert_memory_equal(fc.body, "Subject: hi\n\nbody\n", fc.bodylen);
	smtpd_check_done(fc.s, "550 5.7.1 forged", "Authentication-Results: x\n");
	pump(7);
	assert_reply(6, "550 5.7.1 forged");
	assert_reply(7, "250 2.0.0 Ok");
	assert_string_equal(fake.log, "rcpt <x@example.test>;data;end 550 5.7.1 "
	    "forged;rset;");
	assert_non_null(strstr(fc.log, "end kept;rset;"));
}

/* the engine's own refusal (a long line) needs no verdict */
static void
test_checks_engine_refusal_first(void **state)
{
	char line[1100];

	greeted();
	fc.end = LATER;
	say("RCPT TO:<x@example.test>\r\nDATA\r\n", 5);
	memset(line, 'a', 1001);
	strcpy(line + 1001, "\r\n.\r\n");
	say(line, 6);
	assert_reply(6, "554 5.6.0");
	assert_null(strstr(fc.log, "end "));
}

/* read_file - the whole of a small file */
static char *
read_file(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/*
 * the local copy: Return-Path, Delivered-To, the checks' field, our
 * Received, then the message without the forged field naming us (the
 * checks saw it; another host's field stays)
 */
static void
test_checks_field_in_the_local_copy(void **state)
{
	char new_dir[600], path[900];
	const char *msg;
	struct dirent *e;
	DIR *d;

	workers();
	greeted();
	fc.ar = "Authentication-Results: mx.example.test;\n\tspf=pass "
	    "smtp.mailfrom=a@client.example\n";
	say("RCPT TO:<local@example.test>\r\nDATA\r\n", 5);
	say("Authentication-Results: mx.example.test;\r\n\tdkim=pass header.d=x\r\n"
	    "Authentication-Results: other.example; spf=fail\r\n"
	    "Subject: hi\r\n\r\n"
	    "Authentication-Results: mx.example.test; in the body\r\n.\r\n", 6);
	assert_reply(6, "250 2.0.0 Ok: delivered as ");
	snprintf(new_dir, sizeof(new_dir), "%s/maildir/example.test/local/new", dir);
	assert_non_null(d = opendir(new_dir));
	while ((e = readdir(d)) != NULL && e->d_name[0] == '.')
		;
	assert_non_null(e);
	snprintf(path, sizeof(path), "%s/%s", new_dir, e->d_name);
	closedir(d);
	msg = read_file(path);
	assert_true(strncmp(msg, "Return-Path: <a@client.example>\n"
	    "Delivered-To: local@example.test\n"
	    "Authentication-Results: mx.example.test;\n\tspf=pass "
	    "smtp.mailfrom=a@client.example\nReceived: from client.example", 158) == 0);
	assert_null(strstr(msg, "dkim=pass header.d=x"));
	assert_non_null(strstr(msg, "\nAuthentication-Results: other.example; "
	    "spf=fail\nSubject: hi\n\nAuthentication-Results: mx.example.test; "
	    "in the body\n"));
	assert_non_null(memmem(fc.body, fc.bodylen, "dkim=pass header.d=x", 20));
}

/* smtpd_received_header: the exact field, as Maildir copies carry it */
static const struct rcv_case {
	const char *label;
	const char *helo, *peer;
	bool esmtp, tls, utf8;
	const char *user, *rcpt;
	const char *want;
} rcv_cases[] = {
	{ .label = "received: HELO, IPv4, one recipient",
	  .helo = "client.example", .peer = "192.0.2.1", .rcpt = "x@example.test",
	  .want = "Received: from client.example ([192.0.2.1])\n\tby mx.example.test "
	  "(chamois) with SMTP id 0123456789abcdef.1\n\tfor <x@example.test>;\n\t"
	  "Mon, 1 Jan 2024 00:00:00 +0000\n" },
	{ .label = "received: EHLO, IPv6, two recipients",
	  .helo = "c", .peer = "2001:db8::1", .esmtp = true,
	  .want = "Received: from c ([IPv6:2001:db8::1])\n\tby mx.example.test "
	  "(chamois) with ESMTP id 0123456789abcdef.1;\n\t"
	  "Mon, 1 Jan 2024 00:00:00 +0000\n" },
	{ .label = "received: TLS and a login",
	  .helo = "c", .peer = "192.0.2.1", .esmtp = true, .tls = true,
	  .user = "u@example.test",
	  .want = "Received: from c ([192.0.2.1])\n\t(authenticated as u@example.test)"
	  "\n\tby mx.example.test (chamois) with ESMTPSA id 0123456789abcdef.1\n\t"
	  "(using TLSv1.3 X);\n\tMon, 1 Jan 2024 00:00:00 +0000\n" },
	{ .label = "received: SMTPUTF8 over TLS",
	  .helo = "c", .peer = "192.0.2.1", .esmtp = true, .tls = true, .utf8 = true,
	  .want = "Received: from c ([192.0.2.1])\n\tby mx.example.test (chamois) "
	  "with UTF8SMTPS id 0123456789abcdef.1\n\t(using TLSv1.3 X);\n\t"
	  "Mon, 1 Jan 2024 00:00:00 +0000\n" },
};

static void
run_rcv_case(void **state)
{
	const struct rcv_case *c = *state;
	char *got_rcv = smtpd_received_header(c->helo, c->peer, c->esmtp, c->tls,
	    c->utf8, c->user, "mx.example.test", "0123456789abcdef.1",
	    "TLSv1.3 X", c->rcpt, "Mon, 1 Jan 2024 00:00:00 +0000");

	assert_string_equal(got_rcv, c->want);
	free(got_rcv);
}

#define ENGINE_TEST(tests, n, fn) do {					\
	(tests)[(n)++] = (struct CMUnitTest){				\
		.name = #fn, .test_func = (fn),				\
		.setup_func = setup, .teardown_func = teardown,		\
	};								\
} while (0)
#define CHECKED_TEST(tests, n, fn) do {					\
	(tests)[(n)++] = (struct CMUnitTest){				\
		.name = #fn, .test_func = (fn),				\
		.setup_func = setup_checked, .teardown_func = teardown,	\
	};								\
} while (0)

int
main(void)
{
	struct CMUnitTest tests[20 + nitems(rcv_cases)];
	size_t n = 0;

	log_init("test_engine", 0, 0);
	if (evthread_use_pthreads() == -1)
		return 1;
	ENGINE_TEST(tests, n, test_order_errors);
	ENGINE_TEST(tests, n, test_rcpt_reaches_the_route);
	ENGINE_TEST(tests, n, test_rcpt_answered_later_holds_input);
	ENGINE_TEST(tests, n, test_rcpt_refused_later);
	ENGINE_TEST(tests, n, test_data_waits_for_the_route);
	ENGINE_TEST(tests, n, test_body_and_end);
	ENGINE_TEST(tests, n, test_end_answered_later);
	ENGINE_TEST(tests, n, test_end_gets_the_refusal);
	ENGINE_TEST(tests, n, test_rset_reaches_the_route);
	ENGINE_TEST(tests, n, test_route_cannot_misbehave);
	ENGINE_TEST(tests, n, test_session_end_frees_the_route);
	ENGINE_TEST(tests, n, test_session_find);
	ENGINE_TEST(tests, n, test_local_route_delivers);
	ENGINE_TEST(tests, n, test_local_job_outlives_the_session);
	ENGINE_TEST(tests, n, test_worker_cannot_read_the_session);
	CHECKED_TEST(tests, n, test_checks_before_the_router);
	CHECKED_TEST(tests, n, test_checks_rcpt_later);
	CHECKED_TEST(tests, n, test_checks_verdict_before_the_end);
	CHECKED_TEST(tests, n, test_checks_engine_refusal_first);
	CHECKED_TEST(tests, n, test_checks_field_in_the_local_copy);
	UNIT_ROWS(tests, n, run_rcv_case, rcv_cases);
	UNIT_RUN(tests, n);
}
