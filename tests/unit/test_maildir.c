/*
 * test_maildir.c - Maildir names and delivery (maildir/maildir.c) with
 * bodies from common/body.c, in a fresh mkdtemp directory per test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/body.h"
#include "common/limits.h"
#include "maildir/maildir.h"
#include "scratch.h"
#include "unit.h"

/* scratch directories */

static char *
path_join(const char *a, const char *b)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", a, b) > 0);
	return p;
}

/* count_entries - entries of dir other than . and ..; -1 if it is not there */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* read_all - the whole file, malloc'd; *len its size */
static char *
read_all(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);
	size_t off = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);

		assert_true(r > 0);
		off += (size_t)r;
	}
	close(fd);
	*len = off;
	return buf;
}

/* maildir_unique */

#define UNIQUE_RE "^([0-9]+)\\.M([0-9]{6})P([0-9]+)Q([0-9]+)R([0-9a-f]{8})\\.(.*),S=([0-9]+)$"

struct unique_case {
	const char *label;
	const char *host;
	unsigned long long size;
	const char *want_host;	/* as it appears in the name */
	size_t bufsize;		/* 0: 512 */
	bool want;
	const char *bug;
};

static const struct unique_case unique_cases[] = {
	{ .label = "unique: plain host", .host = "mx.example.org", .size = 1234,
	  .want_host = "mx.example.org", .want = true },
	{ .label = "unique: size 0", .host = "mx.example.org", .size = 0,
	  .want_host = "mx.example.org", .want = true },
	{ .label = "unique: huge size", .host = "h", .size = 18446744073709551615ULL,
	  .want_host = "h", .want = true },
	{ .label = "unique: '/' escaped", .host = "a/b", .size = 7,
	  .want_host = "a\\057b", .want = true },
	{ .label = "unique: ':' escaped", .host = "mx:2525", .size = 7,
	  .want_host = "mx\\0722525", .want = true },
	{ .label = "unique: both, repeated", .host = "/:/:", .size = 7,
	  .want_host = "\\057\\072\\057\\072", .want = true },
	{ .label = "unique: buffer too small", .host = "mx.example.org", .size = 1,
	  .bufsize = 20, .want = false },
};

static void
run_unique_case(void **state)
{
	const struct unique_case *c = *state;
	char name[512], want_size[32];
	regmatch_t m[8];
	regex_t re;
	time_t before = time(NULL), after;
	bool ok;

	UNIT_BUG(c);
	ok = maildir_unique(name, c->bufsize ? c->bufsize : sizeof(name), c->host, c->size);
	after = time(NULL);
	assert_int_equal(ok, c->want);
	if (!ok)
		return;
	assert_int_equal(regcomp(&re, UNIQUE_RE, REG_EXTENDED), 0);
	if (regexec(&re, name, nitems(m), m, 0) != 0) {
		regfree(&re);
		fail_msg("'%s' is not a Maildir name", name);
	}
	regfree(&re);
	/* the time, the pid, the host as escaped, the size */
	assert_in_range(strtoll(name + m[1].rm_so, NULL, 10), before, after);
	assert_int_equal(strtol(name + m[3].rm_so, NULL, 10), getpid());
	assert_int_equal(m[6].rm_eo - m[6].rm_so, strlen(c->want_host));
	assert_memory_equal(name + m[6].rm_so, c->want_host, strlen(c->want_host));
	snprintf(want_size, sizeof(want_size), "%llu", c->size);
	assert_string_equal(name + m[7].rm_so, want_size);
	/* nothing that Maildir readers split on, outside the escapes */
	assert_null(strchr(name, '/'));
	assert_null(strchr(name, ':'));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1000 names in a row: all different, the counter always growing */
static void
test_unique_1000(void **state)
{
	enum { N = 1000 };
	char **names = calloc(N, sizeof(*names)), buf[512];
	unsigned long prevq = 0;

	(void)state;
	assert_non_null(names);
	for (int i = 0; i < N; i++) {
		const char *q;
		unsigned long qn;

		assert_true(maildir_unique(buf, sizeof(buf), "mx.example.org", 42));
		names[i] = strdup(buf);
		assert_non_null(names[i]);
		q = strchr(buf, 'Q');
		assert_non_null(q);
		qn = strtoul(q + 1, NULL, 10);
		if (i > 0)
			assert_true(qn > prevq);
		prevq = qn;
	}
	qsort(names, N, sizeof(*names), cmp_str);
	for (int i = 1; i < N; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			fail_msg("duplicate name %s", names[i]);
	for (int i = 0; i < N; i++)
		free(names[i]);
	free(names);
}

/* maildir_dir */

struct dir_case {
	const char *label;
	const char *root;
	const char *mailbox;
	size_t size;		/* 0: 4096 */
	bool want;
	const char *out;
	const char *bug;
};

static const struct dir_case dir_cases[] = {
	{ .label = "dir: root/domain/local", .root = "/var/mail", .mailbox = "alice@example.org",
	  .want = true, .out = "/var/mail/example.org/alice" },
	{ .label = "dir: table spelling kept", .root = "/m", .mailbox = "Bob@Example.TEST",
	  .want = true, .out = "/m/Example.TEST/Bob" },
	{ .label = "dir: U-label kept", .root = "/m", .mailbox = "j\xc3\xb6rg@b\xc3\xbc" "cher.example",
	  .want = true, .out = "/m/b\xc3\xbc" "cher.example/j\xc3\xb6rg" },
	{ .label = "dir: relative root", .root = "maildir", .mailbox = "a+b@x.test",
	  .want = true, .out = "maildir/x.test/a+b" },
	{ .label = "dir: no '@'", .root = "/m", .mailbox = "postmaster", .want = false },
	{ .label = "dir: exact fit", .root = "/m", .mailbox = "a@b", .size = 7, .want = true,
	  .out = "/m/b/a" },
	{ .label = "dir: one octet short", .root = "/m", .mailbox = "a@b", .size = 6,
	  .want = false },
};

static void
run_dir_case(void **state)
{
	const struct dir_case *c = *state;
	char out[4096];

	UNIT_BUG(c);
	assert_int_equal(maildir_dir(c->root, c->mailbox, out, c->size ? c->size : sizeof(out)),
	    c->want);
	if (c->want)
		assert_string_equal(out, c->out);
}

/* store_error_reply */
static void
test_store_error_reply(void **state)
{
	(void)state;
	assert_string_equal(store_error_reply(ENOSPC), "452 4.3.1 Insufficient system storage");
	assert_string_equal(store_error_reply(EDQUOT), "452 4.3.1 Insufficient system storage");
	assert_string_equal(store_error_reply(EIO), "451 4.3.0 Local delivery failed, try again later");
	assert_string_equal(store_error_reply(ENOTDIR),
	    "451 4.3.0 Local delivery failed, try again later");
}

/* maildir_deliver */

/* fill_body - len octets of a pattern, appended in chunks of step */
static char *
fill_body(struct body *b, const char *spool, size_t len, size_t step)
{
	char *want = malloc(len + 1);

	assert_non_null(want);
	for (size_t i = 0; i < len; i++)
		want[i] = (i % 61 == 60) ? '\n' : (char)('!' + (i * 7 + i / 61) % 90);
	body_init(b, spool);
	for (size_t off = 0; off < len; off += step)
		assert_int_equal(body_append(b, want + off, len - off < step ? len - off : step), 0);
	assert_int_equal(b->size, len);
	return want;
}

/* check_copy - the file of one delivered copy: where, what, how big */
static void
check_copy(const char *root, const struct maildir_copy *c, const char *body, size_t blen)
{
	char dir[4096], *newdir, *tmpdir, *curdir, *data, *comma;
	size_t len, plen = strlen(c->prefix);
	struct stat st;

	assert_true(maildir_dir(root, c->mailbox, dir, sizeof(dir)));
	newdir = path_join(dir, "new");
	tmpdir = path_join(dir, "tmp");
	curdir = path_join(dir, "cur");
	assert_non_null(c->path);
	assert_true(strncmp(c->path, newdir, strlen(newdir)) == 0);
	assert_int_equal(c->path[strlen(newdir)], '/');
	assert_null(strchr(c->path + strlen(newdir) + 1, '/'));
	assert_int_equal(stat(c->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	data = read_all(c->path, &len);
	assert_int_equal(len, plen + blen);
	assert_memory_equal(data, c->prefix, plen);
	if (blen)
		assert_memory_equal(data + plen, body, blen);
	free(data);
	comma = strstr(c->path, ",S=");
	assert_non_null(comma);
	assert_int_equal(strtoull(comma + 3, NULL, 10), (unsigned long long)st.st_size);
	assert_int_equal(count_entries(tmpdir), 0);
	assert_int_equal(count_entries(curdir), 0);
	free(newdir);
	free(tmpdir);
	free(curdir);
}

static void
free_copies(struct maildir_copy *copies, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(copies[i].path);
		copies[i].path = NULL;
	}
}

struct deliver_case {
	const char *label;
	size_t body_len;	/* a patterned body of this size */
	size_t step;		/* appended in chunks of this size */
	bool spilled;		/* the body must be in a spool file */
	const char *mailboxes[4];
	const char *bug;
};

static const struct deliver_case deliver_cases[] = {
	{ .label = "deliver: two mailboxes", .body_len = 5000, .step = 5000,
	  .mailboxes = { "alice@example.test", "Bob@Other.Test" } },
	{ .label = "deliver: empty body", .body_len = 0, .step = 1,
	  .mailboxes = { "alice@example.test" } },
	{ .label = "deliver: two copies in one mailbox", .body_len = 100, .step = 7,
	  .mailboxes = { "alice@example.test", "alice@example.test", "bob@example.test" } },
	{ .label = "deliver: body spilled past 256 KiB", .body_len = 3 * BODY_SPILL_BYTES + 12345,
	  .step = 4093, .spilled = true,
	  .mailboxes = { "alice@example.test", "bob@example.test" } },
	{ .label = "deliver: body spilled in one append", .body_len = BODY_SPILL_BYTES,
	  .step = BODY_SPILL_BYTES, .spilled = true,
	  .mailboxes = { "alice@example.test" } },
	{ .label = "deliver: body just under the spill", .body_len = BODY_SPILL_BYTES - 1,
	  .step = 65536, .spilled = false,
	  .mailboxes = { "alice@example.test" } },
};

static void
run_deliver_case(void **state)
{
	const struct deliver_case *c = *state;
	char *base, *root, *spool, *body;
	struct maildir_copy copies[4];
	struct maildir_delivery d;
	struct body b;
	size_t n = 0;

	UNIT_BUG(c);
	base = scratch_dir();
	root = path_join(base, "maildir");	/* made by the delivery */
	spool = path_join(base, "spool");
	assert_int_equal(mkdir(spool, 0700), 0);
	body = fill_body(&b, spool, c->body_len, c->step);
	assert_int_equal(b.spool_fd != -1, c->spilled);
	memset(copies, 0, sizeof(copies));
	for (; n < nitems(c->mailboxes) && c->mailboxes[n]; n++) {
		copies[n].mailbox = c->mailboxes[n];
		assert_true(asprintf(&copies[n].prefix, "Return-Path: <s@x.test>\n"
		    "Delivered-To: %s\nX-Copy: %zu\n", c->mailboxes[n], n) > 0);
	}
	d = (struct maildir_delivery){
		.root = root,
		.hostname = "mx.example.test",
		.copies = copies,
		.ncopies = n,
		.body = &b,
		.result = RES_PERMFAIL,
		.error = -1,
	};
	maildir_deliver(&d);
	if (d.result != RES_OK)
		fail_msg("result %d, error %s, step %s", d.result, strerror(d.error),
		    d.failed_step ? d.failed_step : "-");
	assert_int_equal(d.error, 0);
	assert_null(d.failed_step);
	for (size_t i = 0; i < n; i++) {
		check_copy(root, &copies[i], body, c->body_len);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(copies[i].path, copies[j].path);
	}
	/* the spool holds no named file: it is unlinked (or O_TMPFILE) */
	assert_int_equal(count_entries(spool), 0);
	/* the body can be written again: delivery did not drain it */
	{
		char *again = path_join(base, "again");
		int fd = open(again, O_WRONLY | O_CREAT | O_EXCL, 0600);
		size_t len;
		char *data;

		assert_true(fd >= 0);
		assert_int_equal(body_write_fd(&b, fd), 0);
		close(fd);
		data = read_all(again, &len);
		assert_int_equal(len, c->body_len);
		if (len)
			assert_memory_equal(data, body, len);
		free(data);
		free(again);
	}
	for (size_t i = 0; i < n; i++)
		free(copies[i].prefix);
	free_copies(copies, n);
	body_free(&b);
	body_free(&b);		/* twice is harmless */
	free(body);
	free(spool);
	free(root);
	scratch_remove(base);
}

/*
 * Failures: a message is in all its mailboxes or in none.  block names
 * what is in the way: the root itself is a file, or one Maildir's path.
 */
struct fail_case {
	const char *label;
	const char *block;	/* relative to base; a regular file is put there */
	const char *root;	/* relative to base */
	const char *mailboxes[4];
	int error;
	const char *step;
	const char *bug;
};

static const struct fail_case fail_cases[] = {
	{ .label = "deliver fails: root is a file", .block = "maildir", .root = "maildir",
	  .mailboxes = { "alice@example.test", "bob@example.test" },
	  .error = ENOTDIR, .step = "mkdir" },
	{ .label = "deliver fails: root under a file", .block = "file", .root = "file/maildir",
	  .mailboxes = { "alice@example.test" },
	  .error = ENOTDIR, .step = "mkdir" },
	{ .label = "deliver fails: second Maildir blocked, first one rolled back",
	  .block = "maildir/blocked.test/bob", .root = "maildir",
	  .mailboxes = { "alice@example.test", "bob@blocked.test" },
	  .error = ENOTDIR, .step = "mkdir" },
	{ .label = "deliver fails: first Maildir blocked",
	  .block = "maildir/blocked.test/bob", .root = "maildir",
	  .mailboxes = { "bob@blocked.test", "alice@example.test" },
	  .error = ENOTDIR, .step = "mkdir" },
	{ .label = "deliver fails: tmp/ is a file",
	  .block = "maildir/blocked.test/bob/tmp", .root = "maildir",
	  .mailboxes = { "alice@example.test", "carol@example.test", "bob@blocked.test" },
	  .error = ENOTDIR, .step = "mkdir" },
	{ .label = "deliver fails: mailbox without '@'", .root = "maildir",
	  .mailboxes = { "alice@example.test", "postmaster" },
	  .error = ENAMETOOLONG, .step = "path" },
};

static void
make_parents_and_file(const char *base, const char *rel)
{
	char *path = path_join(base, rel), *p;
	int fd;

	for (p = path + strlen(base) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
		*p = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	free(path);
}

static void
run_fail_case(void **state)
{
	const struct fail_case *c = *state;
	char *base, *root, *spool, *body;
	struct maildir_copy copies[4];
	struct maildir_delivery d;
	struct body b;
	size_t n = 0;

	UNIT_BUG(c);
	base = scratch_dir();
	root = path_join(base, c->root);
	spool = path_join(base, "spool");
	assert_int_equal(mkdir(spool, 0700), 0);
	if (c->block)
		make_parents_and_file(base, c->block);
	body = fill_body(&b, spool, 300, 300);
	memset(copies, 0, sizeof(copies));
	for (; n < nitems(c->mailboxes) && c->mailboxes[n]; n++) {
		copies[n].mailbox = c->mailboxes[n];
		copies[n].prefix = "Delivered-To: x\n";
	}
	d = (struct maildir_delivery){
		.root = root,
		.hostname = "mx.example.test",
		.copies = copies,
		.ncopies = n,
		.body = &b,
	};
	maildir_deliver(&d);
	assert_int_equal(d.result, RES_TEMPFAIL);
	if (d.error != c->error)
		fail_msg("error %s, want %s", strerror(d.error), strerror(c->error));
	assert_non_null(d.failed_step);
	assert_string_equal(d.failed_step, c->step);
	/* no copy anywhere: every new/ and tmp/ that exists is empty */
	for (size_t i = 0; i < n; i++) {
		char dir[4096];
		char *sub;

		if (!maildir_dir(root, c->mailboxes[i], dir, sizeof(dir)))
			continue;
		sub = path_join(dir, "new");
		assert_true(count_entries(sub) <= 0);
		free(sub);
		sub = path_join(dir, "tmp");
		assert_true(count_entries(sub) <= 0);
		free(sub);
		if (copies[i].path)
			assert_int_equal(access(copies[i].path, F_OK), -1);
	}
	free_copies(copies, n);
	body_free(&b);
	free(body);
	free(spool);
	free(root);
	scratch_remove(base);
}

/* body: reset, and a spool directory that is not there */
static void
test_body_reset_and_spool_failure(void **state)
{
	struct body b;
	char *big = calloc(1, BODY_SPILL_BYTES), *base = scratch_dir(), *spool;

	(void)state;
	assert_non_null(big);
	spool = path_join(base, "spool");
	assert_int_equal(mkdir(spool, 0700), 0);
	body_init(&b, spool);
	assert_int_equal(body_append(&b, big, BODY_SPILL_BYTES), 0);
	assert_true(b.spool_fd != -1);
	assert_int_equal(b.spool_len, BODY_SPILL_BYTES);
	body_reset(&b);
	assert_int_equal(b.size, 0);
	assert_int_equal(b.spool_fd, -1);
	assert_int_equal(b.spool_len, 0);
	assert_int_equal(body_append(&b, "abc", 3), 0);
	assert_int_equal(b.size, 3);
	body_free(&b);
	/* no spool directory: the append that must spill fails */
	free(spool);
	spool = path_join(base, "missing");
	body_init(&b, spool);
	assert_int_equal(body_append(&b, big, BODY_SPILL_BYTES - 1), 0);
	errno = 0;
	assert_int_equal(body_append(&b, "x", 1), -1);
	assert_int_not_equal(errno, 0);
	body_free(&b);
	free(spool);
	free(big);
	scratch_remove(base);
}

/*
 * body_read_at: the body read back from any offset, across the spool file
 * and the memory tail, in pieces of any size (the forward's held message)
 */
static void
test_body_read_at(void **state)
{
	size_t len = BODY_SPILL_BYTES + 5000;
	char *want = malloc(len), *got = malloc(len), *base = scratch_dir();
	static const size_t pieces[] = { 1, 7, 4096, 16384, BODY_SPILL_BYTES + 10 };
	struct body b;

	(void)state;
	assert_non_null(want);
	assert_non_null(got);
	for (size_t i = 0; i < len; i++)
		want[i] = (char)('a' + i % 26);
	body_init(&b, base);
	assert_int_equal(body_append(&b, want, BODY_SPILL_BYTES), 0);
	assert_int_equal(body_append(&b, want + BODY_SPILL_BYTES, len - BODY_SPILL_BYTES), 0);
	assert_true(b.spool_fd != -1);
	assert_true(b.spool_len > 0 && (size_t)b.spool_len < len);
	for (size_t p = 0; p < nitems(pieces); p++) {
		size_t off = 0;
		ssize_t r;

		memset(got, 0, len);
		while ((r = body_read_at(&b, off, got + off, pieces[p])) > 0)
			off += (size_t)r;
		assert_int_equal(r, 0);
		assert_int_equal(off, len);
		assert_memory_equal(got, want, len);
	}
	assert_int_equal(body_read_at(&b, len + 10, got, 10), 0);
	body_free(&b);
	free(want);
	free(got);
	scratch_remove(base);
}

/* body: the spool files of all bodies are bounded (spool_max_size) */
static void
test_body_spool_limit(void **state)
{
	struct body b[4];
	char *big = malloc(BODY_SPILL_BYTES), *base = scratch_dir(), *spool, *out;
	char buf[BODY_SPILL_BYTES + 8];
	int fd;
	ssize_t r;

	(void)state;
	assert_non_null(big);
	memset(big, 'b', BODY_SPILL_BYTES);
	spool = path_join(base, "spool");
	assert_int_equal(mkdir(spool, 0700), 0);
	body_spool_limit(3 * BODY_SPILL_BYTES);
	assert_int_equal(body_spool_in_use(), 0);
	for (int i = 0; i < 3; i++) {
		body_init(&b[i], spool);
		assert_false(body_spool_full());
		assert_int_equal(body_append(&b[i], big, BODY_SPILL_BYTES), 0);
		assert_true(b[i].spool_fd != -1);
		assert_int_equal(body_spool_in_use(), (uint64_t)(i + 1) * BODY_SPILL_BYTES);
	}
	assert_true(body_spool_full());
	/* past the bound: ENOSPC, nothing written, the body still whole */
	body_init(&b[3], spool);
	assert_int_equal(body_append(&b[3], "hd", 2), 0);
	errno = 0;
	assert_int_equal(body_append(&b[3], big, BODY_SPILL_BYTES), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(b[3].spool_fd, -1);
	assert_int_equal(body_spool_in_use(), 3 * BODY_SPILL_BYTES);
	out = path_join(base, "out");
	assert_true((fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600)) != -1);
	assert_int_equal(body_write_fd(&b[3], fd), 0);
	r = pread(fd, buf, sizeof(buf), 0);
	assert_int_equal(r, BODY_SPILL_BYTES + 2);
	assert_memory_equal(buf, "hd", 2);
	assert_memory_equal(buf + 2, big, BODY_SPILL_BYTES);
	close(fd);
	/* released when a body is reset or freed; then it fits */
	body_reset(&b[0]);
	body_free(&b[1]);
	assert_int_equal(body_spool_in_use(), BODY_SPILL_BYTES);
	assert_false(body_spool_full());
	assert_int_equal(body_append(&b[3], "x", 1), 0);
	assert_int_equal(b[3].size, BODY_SPILL_BYTES + 3);
	assert_int_equal(b[3].spool_len, BODY_SPILL_BYTES + 3);
	assert_int_equal(body_spool_in_use(), 2 * BODY_SPILL_BYTES + 3);
	/* one octet short of room for the next spill */
	errno = 0;
	assert_int_equal(body_append(&b[3], big, BODY_SPILL_BYTES), -1);
	assert_int_equal(errno, ENOSPC);
	body_free(&b[2]);
	assert_int_equal(body_append(&b[3], "y", 1), 0);
	assert_int_equal(body_spool_in_use(), 2 * BODY_SPILL_BYTES + 4);
	for (int i = 0; i < 4; i++)
		body_free(&b[i]);
	assert_int_equal(body_spool_in_use(), 0);
	body_spool_limit(UINT64_MAX);
	free(out);
	free(spool);
	free(big);
	scratch_remove(base);
}

/* new/ removed between prepare and commit: commit makes it again */
static void
test_commit_remakes_new(void **state)
{
	char *base = scratch_dir(), *spool = path_join(base, "spool");
	char *root = path_join(base, "mail"), *body, *newdir;
	struct maildir_copy copy = { .mailbox = "alice@example.test",
	    .prefix = "Delivered-To: alice@example.test\n" };
	struct maildir_delivery d;
	struct body b;

	(void)state;
	assert_int_equal(mkdir(spool, 0700), 0);
	body = fill_body(&b, spool, 300, 300);
	d = (struct maildir_delivery){ .root = root,
	    .hostname = "mx.example.test", .copies = &copy, .ncopies = 1,
	    .body = &b };
	maildir_prepare(&d);
	assert_int_equal(d.result, RES_OK);
	newdir = path_join(root, "example.test/alice/new");
	assert_int_equal(rmdir(newdir), 0);
	maildir_commit(&d);
	assert_int_equal(d.result, RES_OK);
	assert_int_equal(count_entries(newdir), 1);
	free(newdir);
	free_copies(&copy, 1);
	body_free(&b);
	free(body);
	free(spool);
	free(root);
	scratch_remove(base);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(unique_cases) + nitems(dir_cases) +
	    nitems(deliver_cases) + nitems(fail_cases) + 6];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_unique_case, unique_cases);
	UNIT_TEST(tests, n, test_unique_1000);
	UNIT_ROWS(tests, n, run_dir_case, dir_cases);
	UNIT_TEST(tests, n, test_store_error_reply);
	UNIT_ROWS(tests, n, run_deliver_case, deliver_cases);
	UNIT_ROWS(tests, n, run_fail_case, fail_cases);
	UNIT_TEST(tests, n, test_body_reset_and_spool_failure);
	UNIT_TEST(tests, n, test_body_spool_limit);
	UNIT_TEST(tests, n, test_body_read_at);
	UNIT_TEST(tests, n, test_commit_remakes_new);
	for (size_t i = 0; i < n; i++)
		tests[i].teardown_func = scratch_teardown;
	UNIT_RUN(tests, n);
}
