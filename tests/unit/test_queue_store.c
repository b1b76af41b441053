/*
 * test_queue_store.c - the Berkeley DB queue store (queue/queue_db.c) in a
 * fresh mkdtemp directory per test: put, restart (close and open again,
 * which runs recovery), update, delete, walk, checkpoint, concurrent puts,
 * failures that must leave the store whole; and next_attempt() and
 * retry_plan() (queue/schedule.c) by table: the queue lifetime and the
 * delay notice at the second, with no clock and no sleep.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/body.h"
#include "common/util.h"
#include "queue/queue.h"
#include "scratch.h"
#include "unit.h"

/* scratch directories */

static struct queue_store *
open_store(const char *dir)
{
	char err[256] = "";
	struct queue_store *qs = qstore_open(dir, err, sizeof(err));

	if (qs == NULL)
		fail_msg("qstore_open: %s", err);
	return qs;
}

/* messages and bodies */

struct fixture {
	struct queue_msg msg;
	struct body body;
	char *data;		/* what the body holds */
	size_t len;
};

/* fixture_make - a message with nrcpts recipients and a body of len octets */
static void
fixture_make(struct fixture *f, const char *spool, size_t nrcpts, size_t len,
    unsigned seed)
{
	memset(f, 0, sizeof(*f));
	queue_new_id(f->msg.id);
	f->msg.version = QUEUE_RECORD_VERSION;
	f->msg.created = 1700000000 + seed;
	f->msg.sender = xasprintf("sender%u@chamois.test", seed);
	f->msg.owner = xstrdup("alice");
	f->msg.uid = -1;
	f->msg.size = len;
	f->msg.nrcpts = nrcpts;
	f->msg.rcpts = xcalloc(nrcpts ? nrcpts : 1, sizeof(*f->msg.rcpts));
	for (size_t i = 0; i < nrcpts; i++) {
		struct queue_rcpt *r = &f->msg.rcpts[i];

		r->addr = xasprintf("rcpt%zu@example.net", i);
		r->orig = xasprintf("rfc822;rcpt%zu@example.net", i);
		r->last_reply = xstrdup("");
		r->remote_mta = xstrdup("");
	}
	f->len = len;
	f->data = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		f->data[i] = (i % 73 == 72) ? '\n' : (char)('a' + (i * 7 + seed) % 26);
	body_init(&f->body, spool);
	/* in pieces, as a session appends them */
	for (size_t off = 0; off < len; off += 8192) {
		size_t n = len - off < 8192 ? len - off : 8192;

		assert_int_equal(body_append(&f->body, f->data + off, n), 0);
	}
}

static void
fixture_free(struct fixture *f)
{
	queue_msg_free(&f->msg);
	body_free(&f->body);
	free(f->data);
}

static void
put_ok(struct queue_store *qs, struct fixture *f)
{
	char err[256] = "";

	if (qstore_put(qs, &f->msg, &f->body, err, sizeof(err)) != 0)
		fail_msg("qstore_put %s: %s", f->msg.id, err);
}

static void
body_is(struct queue_store *qs, const struct fixture *f)
{
	char *buf;
	size_t len;

	assert_int_equal(qstore_get_body(qs, f->msg.id, &buf, &len), 0);
	assert_int_equal(len, f->len);
	assert_memory_equal(buf, f->data, len);
	free(buf);
}

/* what a walk saw: the records, re-encoded, in order */
struct seen {
	char **recs;
	char ids[64][QUEUE_ID_LEN + 1];
	char last[QUEUE_ID_LEN + 1];
	size_t n;
	size_t stop_after;	/* return 1 after this many (0: never) */
	struct queue_store *del;	/* delete each one seen from this store */
};

static int
collect(const struct queue_msg *m, void *arg)
{
	struct seen *s = arg;
	size_t len;

	/* id order */
	if (s->last[0] != '\0' && strcmp(s->last, m->id) >= 0)
		fail_msg("walk: %s after %s", m->id, s->last);
	memcpy(s->last, m->id, sizeof(s->last));
	if (s->n < nitems(s->ids)) {
		s->recs = xreallocarray(s->recs, s->n + 1, sizeof(*s->recs));
		s->recs[s->n] = queue_msg_encode(m, &len);
		memcpy(s->ids[s->n], m->id, sizeof(s->ids[0]));
	}
	s->n++;
	if (s->del != NULL)
		assert_int_equal(qstore_delete(s->del, m->id), 0);
	return s->stop_after != 0 && s->n >= s->stop_after;
}

static void
seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n && i < nitems(s->ids); i++)
		free(s->recs[i]);
	free(s->recs);
	memset(s, 0, sizeof(*s));
}

/* seen_has - the index of the envelope equal to m, or fail */
static size_t
seen_has(const struct seen *s, const struct queue_msg *m)
{
	char *want;
	size_t len;

	want = queue_msg_encode(m, &len);
	for (size_t i = 0; i < s->n && i < nitems(s->ids); i++)
		if (strcmp(s->ids[i], m->id) == 0) {
			assert_string_equal(s->recs[i], want);
			free(want);
			return i;
		}
	fail_msg("%s not seen by the walk", m->id);
	return 0;
}

static int
count_logs(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "log.", 4) == 0)
			n++;
	closedir(d);
	return n;
}

/* tests */

/* put a small and a spilled body, restart, read both back */
static void
test_put_restart(void **state)
{
	char *dir = scratch_dir();
	struct fixture f[2];
	struct queue_store *qs;
	struct seen s = { 0 };
	struct stat st;
	char *path;

	(void)state;
	qs = open_store(dir);
	fixture_make(&f[0], dir, 1, 300, 1);
	fixture_make(&f[1], dir, 3, 300 * 1024 + 17, 2);
	assert_int_not_equal(f[1].body.spool_fd, -1);	/* spilled past 256 KiB */
	assert_int_equal(f[0].body.spool_fd, -1);
	put_ok(qs, &f[0]);
	put_ok(qs, &f[1]);
	/* the body is still whole for the caller after a put */
	assert_int_equal(f[1].body.size, f[1].len);
	qstore_close(qs);

	qs = open_store(dir);
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, 2);
	seen_has(&s, &f[0].msg);
	seen_has(&s, &f[1].msg);
	/* id order */
	assert_true(strcmp(s.ids[0], s.ids[1]) < 0);
	body_is(qs, &f[0]);
	body_is(qs, &f[1]);
	seen_free(&s);
	qstore_close(qs);

	/* the files are the owner's only */
	path = xasprintf("%s/envelopes.db", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);
	path = xasprintf("%s/log.0000000001", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);
	fixture_free(&f[0]);
	fixture_free(&f[1]);
	scratch_remove(dir);
}

/* an empty body and a message with no recipients */
static void
test_put_empty(void **state)
{
	char *dir = scratch_dir();
	struct queue_store *qs = open_store(dir);
	struct fixture f;
	struct seen s = { 0 };

	(void)state;
	fixture_make(&f, dir, 0, 0, 3);
	put_ok(qs, &f);
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, 1);
	seen_has(&s, &f.msg);
	body_is(qs, &f);
	seen_free(&s);
	qstore_close(qs);
	fixture_free(&f);
	scratch_remove(dir);
}

/* the same id twice is refused; a bad id too */
static void
test_put_twice(void **state)
{
	char *dir = scratch_dir();
	struct queue_store *qs = open_store(dir);
	struct fixture f;
	char err[256] = "";

	(void)state;
	fixture_make(&f, dir, 1, 100, 4);
	put_ok(qs, &f);
	assert_int_equal(qstore_put(qs, &f.msg, &f.body, err, sizeof(err)), -1);
	assert_int_equal(errno, EEXIST);
	assert_true(err[0] != '\0');
	memcpy(f.msg.id, "../etc/passwd", 14);
	assert_int_equal(qstore_put(qs, &f.msg, &f.body, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	qstore_close(qs);
	fixture_free(&f);
	scratch_remove(dir);
}

static void
test_update(void **state)
{
	char *dir = scratch_dir();
	struct queue_store *qs = open_store(dir);
	struct fixture f, other;
	struct seen s = { 0 };

	(void)state;
	fixture_make(&f, dir, 2, 1000, 5);
	put_ok(qs, &f);
	f.msg.rcpts[0].state = RS_DELIVERED;
	f.msg.rcpts[1].state = RS_DEFERRED;
	f.msg.rcpts[1].attempts = 2;
	f.msg.rcpts[1].next_attempt = 1700000600;
	str_copy(f.msg.rcpts[1].status, "4.4.1", sizeof(f.msg.rcpts[1].status));
	free(f.msg.rcpts[1].last_reply);
	f.msg.rcpts[1].last_reply = xstrdup("451 4.4.1 no answer\nfrom anyone");
	assert_int_equal(qstore_update(qs, &f.msg), 0);
	qstore_close(qs);

	qs = open_store(dir);
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, 1);
	seen_has(&s, &f.msg);
	body_is(qs, &f);	/* the body is untouched */
	seen_free(&s);

	/* an update of a message not stored */
	fixture_make(&other, dir, 1, 10, 6);
	assert_int_equal(qstore_update(qs, &other.msg), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, 1);
	seen_free(&s);
	qstore_close(qs);
	fixture_free(&f);
	fixture_free(&other);
	scratch_remove(dir);
}

static void
test_delete(void **state)
{
	char *dir = scratch_dir();
	struct queue_store *qs = open_store(dir);
	struct fixture f[3];
	struct seen s = { 0 };
	char *buf;
	size_t len;

	(void)state;
	for (size_t i = 0; i < nitems(f); i++) {
		fixture_make(&f[i], dir, 1, 500, 7 + (unsigned)i);
		put_ok(qs, &f[i]);
	}
	assert_int_equal(qstore_delete(qs, f[1].msg.id), 0);
	assert_int_equal(qstore_delete(qs, f[1].msg.id), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(qstore_get_body(qs, f[1].msg.id, &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
	qstore_close(qs);

	qs = open_store(dir);
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, 2);
	seen_has(&s, &f[0].msg);
	seen_has(&s, &f[2].msg);
	seen_free(&s);
	assert_int_equal(qstore_get_body(qs, f[1].msg.id, &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(qstore_get_body(qs, "not-an-id", &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
	qstore_close(qs);
	for (size_t i = 0; i < nitems(f); i++)
		fixture_free(&f[i]);
	scratch_remove(dir);
}

/* a walk longer than one batch; fn may stop it, or delete what it sees */
static void
test_walk(void **state)
{
	enum { N = 600 };
	char *dir = scratch_dir();
	struct queue_store *qs = open_store(dir);
	struct fixture f;
	struct seen s = { 0 };
	char err[256];

	(void)state;
	fixture_make(&f, dir, 1, 64, 9);
	for (size_t i = 0; i < N; i++) {
		queue_new_id(f.msg.id);
		assert_int_equal(qstore_put(qs, &f.msg, &f.body, err, sizeof(err)), 0);
	}
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, N);
	seen_free(&s);
	s.stop_after = 300;
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, 300);
	seen_free(&s);
	s.del = qs;
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, N);
	seen_free(&s);
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, 0);
	qstore_close(qs);
	fixture_free(&f);
	scratch_remove(dir);
}

/* enough writes for several log files; a checkpoint removes the old ones */
static void
test_checkpoint(void **state)
{
	char *dir = scratch_dir();
	struct queue_store *qs = open_store(dir);
	struct fixture f;
	char err[256];
	int before, after;

	(void)state;
	fixture_make(&f, dir, 1, 1024 * 1024, 10);
	for (size_t i = 0; i < 40; i++) {
		queue_new_id(f.msg.id);
		assert_int_equal(qstore_put(qs, &f.msg, &f.body, err, sizeof(err)), 0);
		assert_int_equal(qstore_delete(qs, f.msg.id), 0);
	}
	before = count_logs(dir);
	assert_true(before >= 3);
	assert_int_equal(qstore_checkpoint(qs), 0);
	after = count_logs(dir);
	assert_true(after < before);
	assert_true(after <= 2);
	/* the store still works, and after a restart */
	queue_new_id(f.msg.id);
	put_ok(qs, &f);
	qstore_close(qs);
	qs = open_store(dir);
	body_is(qs, &f);
	qstore_close(qs);
	fixture_free(&f);
	scratch_remove(dir);
}

/* eight threads putting at once: every message lands */

enum { PUT_THREADS = 8, PUT_EACH = 25 };

struct putter {
	struct queue_store *qs;
	const char *dir;
	unsigned seed;
	struct fixture f[PUT_EACH];
	int failures;
};

static void *
putter_run(void *arg)
{
	struct putter *p = arg;
	char err[256];

	for (size_t i = 0; i < PUT_EACH; i++)
		if (qstore_put(p->qs, &p->f[i].msg, &p->f[i].body, err, sizeof(err)) != 0)
			p->failures++;
	return NULL;
}

static void
test_concurrent_puts(void **state)
{
	char *dir = scratch_dir();
	struct queue_store *qs = open_store(dir);
	struct putter *p = xcalloc(PUT_THREADS, sizeof(*p));
	pthread_t t[PUT_THREADS];
	struct seen s = { 0 };

	(void)state;
	for (size_t i = 0; i < PUT_THREADS; i++) {
		p[i].qs = qs;
		for (size_t j = 0; j < PUT_EACH; j++)
			fixture_make(&p[i].f[j], dir, 1 + j % 3, 4096 + j * 100,
			    (unsigned)(i * PUT_EACH + j));
	}
	for (size_t i = 0; i < PUT_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, putter_run, &p[i]), 0);
	for (size_t i = 0; i < PUT_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (size_t i = 0; i < PUT_THREADS; i++)
		assert_int_equal(p[i].failures, 0);
	qstore_close(qs);

	qs = open_store(dir);
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, PUT_THREADS * PUT_EACH);
	seen_free(&s);
	for (size_t i = 0; i < PUT_THREADS; i++)
		for (size_t j = 0; j < PUT_EACH; j++) {
			body_is(qs, &p[i].f[j]);
			fixture_free(&p[i].f[j]);
		}
	qstore_close(qs);
	free(p);
	scratch_remove(dir);
}

/*
 * A directory the server cannot write: the open fails with a message and
 * nothing is left behind.  As root (the usual CI container) permissions do
 * not bind, so the check runs in a child that drops to nobody.
 */
static void
test_unwritable_dir(void **state)
{
	char *dir = scratch_dir();
	char *sub = xasprintf("%s/queue", dir);
	char *file = xasprintf("%s/plain", dir);
	char err[256] = "";
	int status;
	pid_t pid;
	FILE *fp;

	(void)state;
	/* under a regular file */
	fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	free(sub);
	sub = xasprintf("%s/queue", file);
	assert_null(qstore_open(sub, err, sizeof(err)));
	assert_int_equal(errno, ENOTDIR);
	assert_non_null(strstr(err, sub));

	/* a directory without write permission */
	free(sub);
	sub = xasprintf("%s/queue", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct queue_store *qs;

		if (geteuid() == 0 && (setgid(65534) == -1 || setuid(65534) == -1))
			_exit(10);
		qs = qstore_open(sub, err, sizeof(err));
		if (qs != NULL)
			_exit(11);
		if (errno != EACCES || err[0] == '\0')
			_exit(12);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(sub);
	free(file);
	scratch_remove(dir);
}

/*
 * A put whose writes fail (here: past RLIMIT_FSIZE, as a full disk fails
 * them with ENOSPC) returns -1 with the system's errno and an err text;
 * the child then dies without closing, and after recovery the store holds
 * exactly what was committed before.
 */
static void
test_put_write_fails(void **state)
{
	char *dir = scratch_dir();
	struct fixture small, big;
	struct seen s = { 0 };
	struct queue_store *qs;
	int status;
	pid_t pid;

	(void)state;
	fixture_make(&small, dir, 1, 100, 11);
	fixture_make(&big, dir, 1, 2 * 1024 * 1024, 12);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct rlimit rl = { 512 * 1024, 512 * 1024 };	/* < one log file */
		char err[256] = "";

		signal(SIGXFSZ, SIG_IGN);
		if ((qs = qstore_open(dir, err, sizeof(err))) == NULL)
			_exit(10);
		if (qstore_put(qs, &small.msg, &small.body, err, sizeof(err)) != 0)
			_exit(11);
		if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
			_exit(12);
		if (qstore_put(qs, &big.msg, &big.body, err, sizeof(err)) != -1)
			_exit(13);
		if (errno != EFBIG || strstr(err, big.msg.id) == NULL)
			_exit(14);
		_exit(0);	/* a crash: no close, no checkpoint */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	qs = open_store(dir);
	assert_int_equal(qstore_walk(qs, collect, &s), 0);
	assert_int_equal(s.n, 1);
	seen_has(&s, &small.msg);
	body_is(qs, &small);
	seen_free(&s);
	/* and it takes the big one now */
	put_ok(qs, &big);
	body_is(qs, &big);
	qstore_close(qs);
	fixture_free(&small);
	fixture_free(&big);
	scratch_remove(dir);
}

/* a second process may not open a store in use */
static void
test_open_twice(void **state)
{
	char *dir = scratch_dir();
	struct queue_store *qs = open_store(dir);
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		char err[256] = "";

		_exit(qstore_open(dir, err, sizeof(err)) == NULL &&
		    strstr(err, "in use") != NULL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	qstore_close(qs);
	scratch_remove(dir);
}

/* next_attempt */

#define MIN 60
#define HOUR (60 * MIN)

struct na_case {
	const char *label;
	unsigned attempts;
	double rnd;
	time_t now;
	time_t want_min, want_max;	/* after now */
	const char *bug;
};

static const struct na_case na_cases[] = {
	{ .label = "next_attempt: first failure", .attempts = 1, .rnd = 0,
	  .now = 1700000000, .want_min = 1 * MIN, .want_max = 1 * MIN },
	{ .label = "next_attempt: attempts 0 is the first", .attempts = 0, .rnd = 0,
	  .now = 1700000000, .want_min = 1 * MIN, .want_max = 1 * MIN },
	{ .label = "next_attempt: second", .attempts = 2, .rnd = 0,
	  .now = 1700000000, .want_min = 5 * MIN, .want_max = 5 * MIN },
	{ .label = "next_attempt: third, most jitter", .attempts = 3, .rnd = 0.9999,
	  .now = 1700000000, .want_min = 18 * MIN, .want_max = 15 * MIN * 5 / 4 },
	{ .label = "next_attempt: fourth", .attempts = 4, .rnd = 0.5,
	  .now = 1700000000, .want_min = 30 * MIN * 9 / 8, .want_max = 30 * MIN * 9 / 8 },
	{ .label = "next_attempt: fifth", .attempts = 5, .rnd = 0,
	  .now = 1700000000, .want_min = HOUR, .want_max = HOUR },
	{ .label = "next_attempt: sixth", .attempts = 6, .rnd = 0,
	  .now = 1700000000, .want_min = 2 * HOUR, .want_max = 2 * HOUR },
	{ .label = "next_attempt: seventh", .attempts = 7, .rnd = 0,
	  .now = 1700000000, .want_min = 4 * HOUR, .want_max = 4 * HOUR },
	{ .label = "next_attempt: hundredth", .attempts = 100, .rnd = 0.25,
	  .now = 1700000000, .want_min = 4 * HOUR + HOUR / 4, .want_max = 4 * HOUR + HOUR / 4 },
	{ .label = "next_attempt: huge attempts", .attempts = 4294967295u, .rnd = 0,
	  .now = 1700000000, .want_min = 4 * HOUR, .want_max = 4 * HOUR },
	{ .label = "next_attempt: rnd below 0 clamps", .attempts = 2, .rnd = -3,
	  .now = 1700000000, .want_min = 5 * MIN, .want_max = 5 * MIN },
	{ .label = "next_attempt: rnd of 1 or more clamps", .attempts = 2, .rnd = 7,
	  .now = 1700000000, .want_min = 5 * MIN, .want_max = 5 * MIN * 5 / 4 },
	{ .label = "next_attempt: at the epoch", .attempts = 1, .rnd = 0,
	  .now = 0, .want_min = MIN, .want_max = MIN },
};

static void
run_na_case(void **state)
{
	const struct na_case *c = *state;
	time_t got;

	UNIT_BUG(c);
	got = next_attempt(c->now - 3 * HOUR, c->attempts, c->now, c->rnd);
	if (got < c->now + c->want_min || got > c->now + c->want_max)
		fail_msg("got now+%lld, want now+[%lld, %lld]", (long long)(got - c->now),
		    (long long)c->want_min, (long long)c->want_max);
}

/* properties over a grid: never before now + interval, monotonic, bounded */
static void
test_next_attempt_grid(void **state)
{
	static const double rnds[] = { 0, 0.1, 0.5, 0.75, 0.999999 };
	const time_t now = 1700000000;

	(void)state;
	for (size_t r = 0; r < nitems(rnds); r++) {
		time_t prev = now;

		for (unsigned a = 0; a < 40; a++) {
			time_t got = next_attempt(now - 100, a, now, rnds[r]);
			time_t base = next_attempt(now - 100, a, now, 0);

			assert_true(got > now);
			assert_true(got >= base);
			assert_true(got - now <= (base - now) * 5 / 4);
			assert_true(got >= prev);	/* monotonic in attempts */
			prev = got;
		}
	}
	/* near the end of time_t: saturates, never wraps */
	assert_true(next_attempt(0, 7, INT64_MAX - 10, 0.5) >= INT64_MAX - 10);
	/* created does not matter; now does */
	assert_int_equal(next_attempt(0, 3, now, 0.3), next_attempt(now, 3, now, 0.3));
	assert_int_equal(next_attempt(0, 3, now + 50, 0.3) - 50, next_attempt(0, 3, now, 0.3));
}

/* retry_plan: the default lifetime (5 days) and delay notice (4 hours) */

#define DAY (24 * HOUR)
#define T0 1700000000		/* the message's arrival */

struct rp_case {
	const char *label;
	unsigned attempts;
	bool reported;
	time_t lifetime, warning;
	time_t age;		/* now - created */
	bool expired, notify;
	time_t next;		/* after created (when not expired) */
	const char *bug;
};

static const struct rp_case rp_cases[] = {
	{ .label = "retry_plan: first failure, a minute later", .attempts = 1,
	  .lifetime = 5 * DAY, .warning = 4 * HOUR, .age = 0, .next = MIN },
	{ .label = "retry_plan: a second before the lifetime: once more, at its end",
	  .attempts = 30, .lifetime = 5 * DAY, .warning = 4 * HOUR, .reported = true,
	  .age = 5 * DAY - 1, .next = 5 * DAY },
	{ .label = "retry_plan: at the lifetime exactly: expired", .attempts = 30,
	  .lifetime = 5 * DAY, .warning = 4 * HOUR, .reported = true,
	  .age = 5 * DAY, .expired = true },
	{ .label = "retry_plan: long past the lifetime: expired", .attempts = 1,
	  .lifetime = 5 * DAY, .warning = 4 * HOUR, .age = 9 * DAY, .expired = true },
	{ .label = "retry_plan: the retry waits no longer than the notice",
	  .attempts = 5, .lifetime = 5 * DAY, .warning = 4 * HOUR,
	  .age = 4 * HOUR - 10, .next = 4 * HOUR },
	{ .label = "retry_plan: a notice already sent does not pull the retry",
	  .attempts = 5, .reported = true, .lifetime = 5 * DAY, .warning = 4 * HOUR,
	  .age = 4 * HOUR - 10, .next = 4 * HOUR - 10 + HOUR },
	{ .label = "retry_plan: the notice is due at its time", .attempts = 6,
	  .lifetime = 5 * DAY, .warning = 4 * HOUR, .age = 4 * HOUR, .notify = true,
	  .next = 4 * HOUR + 2 * HOUR },
	{ .label = "retry_plan: the notice goes once", .attempts = 7, .reported = true,
	  .lifetime = 5 * DAY, .warning = 4 * HOUR, .age = 5 * HOUR,
	  .next = 5 * HOUR + 4 * HOUR },
	{ .label = "retry_plan: warning 0 sends no notice", .attempts = 7,
	  .lifetime = 5 * DAY, .warning = 0, .age = 5 * HOUR, .next = 9 * HOUR },
	{ .label = "retry_plan: a short lifetime (3s) ends before the minute",
	  .attempts = 1, .lifetime = 3, .warning = 4 * HOUR, .age = 0, .next = 3 },
	{ .label = "retry_plan: a notice due before the first retry (1s)",
	  .attempts = 1, .lifetime = 5 * DAY, .warning = 1, .age = 0, .next = 1 },
	{ .label = "retry_plan: notice and expiry at once: expired only",
	  .attempts = 2, .lifetime = 3, .warning = 1, .age = 3, .expired = true },
};

static void
run_rp_case(void **state)
{
	const struct rp_case *c = *state;
	struct retry_plan p;

	UNIT_BUG(c);
	retry_plan(T0, c->attempts, c->reported, c->lifetime, c->warning, T0 + c->age,
	    0, &p);
	assert_int_equal(p.expired, c->expired);
	assert_int_equal(p.notify, c->notify);
	if (!c->expired && p.next != T0 + c->next)
		fail_msg("next at created+%lld, want created+%lld",
		    (long long)(p.next - T0), (long long)c->next);
}

/* with jitter the plan still keeps the lifetime and the notice */
static void
test_retry_plan_grid(void **state)
{
	static const double rnds[] = { 0, 0.5, 0.999999 };
	struct retry_plan p;

	(void)state;
	for (size_t r = 0; r < nitems(rnds); r++)
		for (unsigned a = 1; a < 12; a++)
			for (time_t age = 0; age < 6 * DAY; age += 997) {
				retry_plan(T0, a, false, 5 * DAY, 4 * HOUR, T0 + age,
				    rnds[r], &p);
				assert_int_equal(p.expired, age >= 5 * DAY);
				if (p.expired)
					continue;
				assert_true(p.next > T0 + age);
				assert_true(p.next <= T0 + 5 * DAY);
				if (age < 4 * HOUR)
					assert_true(p.next <= T0 + 4 * HOUR);
				assert_int_equal(p.notify, age >= 4 * HOUR);
			}
}

int
main(void)
{
	struct CMUnitTest tests[nitems(na_cases) + nitems(rp_cases) + 13];
	size_t n = 0;

	UNIT_TEST(tests, n, test_put_restart);
	UNIT_TEST(tests, n, test_put_empty);
	UNIT_TEST(tests, n, test_put_twice);
	UNIT_TEST(tests, n, test_update);
	UNIT_TEST(tests, n, test_delete);
	UNIT_TEST(tests, n, test_walk);
	UNIT_TEST(tests, n, test_checkpoint);
	UNIT_TEST(tests, n, test_concurrent_puts);
	UNIT_TEST(tests, n, test_unwritable_dir);
	UNIT_TEST(tests, n, test_put_write_fails);
	UNIT_TEST(tests, n, test_open_twice);
	UNIT_ROWS(tests, n, run_na_case, na_cases);
	UNIT_TEST(tests, n, test_next_attempt_grid);
	UNIT_ROWS(tests, n, run_rp_case, rp_cases);
	UNIT_TEST(tests, n, test_retry_plan_grid);
	for (size_t i = 0; i < n; i++)
		tests[i].teardown_func = scratch_teardown;
	UNIT_RUN(tests, n);
}
