/*
 * test_envelope.c - the queue record (queue/envelope.c): round trips of
 * every field (odd bytes included), one golden record, the version check,
 * malformed and truncated records, ids, copies and queue_msg_done.
 */
#include <string.h>

#include "common/util.h"
#include "queue/queue.h"
#include "unit.h"

/* msg_equal - every field of a and b alike (strings by content) */
static void
msg_equal(const struct queue_msg *a, const struct queue_msg *b)
{
	assert_int_equal(a->version, b->version);
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->created, b->created);
	assert_string_equal(a->sender ? a->sender : "", b->sender ? b->sender : "");
	assert_string_equal(a->owner ? a->owner : "", b->owner ? b->owner : "");
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->body8bit, b->body8bit);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_string_equal(a->envid ? a->envid : "", b->envid ? b->envid : "");
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->nrcpts, b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++) {
		const struct queue_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];

		assert_string_equal(x->addr ? x->addr : "", y->addr ? y->addr : "");
		assert_string_equal(x->orig ? x->orig : "", y->orig ? y->orig : "");
		assert_int_equal(x->local, y->local);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->attempts, y->attempts);
		assert_int_equal(x->next_attempt, y->next_attempt);
		assert_string_equal(x->status, y->status);
		assert_string_equal(x->last_reply ? x->last_reply : "",
		    y->last_reply ? y->last_reply : "");
		assert_string_equal(x->remote_mta ? x->remote_mta : "",
		    y->remote_mta ? y->remote_mta : "");
		assert_int_equal(x->reported, y->reported);
		assert_int_equal(x->notify, y->notify);
		assert_string_equal(x->orcpt ? x->orcpt : "", y->orcpt ? y->orcpt : "");
	}
}

/* round_trip - encode, decode, compare, and encode again to the same bytes */
static void
round_trip(const struct queue_msg *m)
{
	struct queue_msg got;
	char *rec, *rec2;
	size_t len, len2;

	rec = queue_msg_encode(m, &len);
	assert_non_null(rec);
	assert_int_equal(strlen(rec), len);
	assert_int_equal(queue_msg_decode(rec, len, &got), 0);
	msg_equal(m, &got);
	rec2 = queue_msg_encode(&got, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(rec, rec2, len);
	free(rec2);
	free(rec);
	queue_msg_free(&got);
}

/* round trips */

static struct queue_rcpt rc_plain[] = {
	{ .addr = "bob@example.net", .orig = "rfc822;bob@example.net",
	  .state = RS_PENDING, .status = "", .last_reply = "", .remote_mta = "" },
};

static struct queue_rcpt rc_states[] = {
	{ .addr = "a@example.net", .orig = "", .state = RS_PENDING },
	{ .addr = "b@example.net", .orig = "", .state = RS_DEFERRED, .attempts = 3,
	  .next_attempt = 1700000900, .status = "4.4.1",
	  .last_reply = "connection refused", .remote_mta = "mx.example.net" },
	{ .addr = "c", .orig = "rfc822;c@chamois.test", .local = true,
	  .state = RS_DELIVERED, .attempts = 1, .status = "2.0.0" },
	{ .addr = "d@example.org", .orig = "rfc822;d@example.org",
	  .state = RS_FAILED, .attempts = 7, .status = "5.1.1", .reported = true,
	  .last_reply = "550 5.1.1 no such user", .remote_mta = "mx.example.org" },
};

static struct queue_rcpt rc_utf8[] = {
	{ .addr = "j\xc3\xb6rg@b\xc3\xbc" "cher.example", .orig = "utf-8;j\xc3\xb6rg@b\xc3\xbc" "cher.example",
	  .state = RS_DEFERRED, .status = "4.2.0",
	  .last_reply = "451 4.2.0 \xe2\x80\x9c" "busy\xe2\x80\x9d \xf0\x9f\x90\x90",
	  .remote_mta = "\xe4\xbe\x8b.example" },
};

static struct queue_rcpt rc_odd[] = {
	{ .addr = "x@y", .orig = " leading and trailing ",
	  .state = RS_DEFERRED, .status = "4.0.0",
	  .last_reply = "line one\nline two\r\nthree\ttab %41 100% \x01\x1f\x7f\xff\xfe end",
	  .remote_mta = "%%%" },
	{ .addr = "\n", .orig = "%", .state = RS_PENDING, .last_reply = " ",
	  .remote_mta = "\r" },
};

/* version 2: the DSN parameters (RFC 3461) */
static struct queue_rcpt rc_dsn[] = {
	{ .addr = "bob@example.net", .orig = "bob@example.net", .state = RS_PENDING,
	  .last_reply = "", .remote_mta = "", .notify = DSN_NOTIFY_SUCCESS |
	  DSN_NOTIFY_DELAY, .orcpt = "rfc822;Bob@Example.NET" },
	{ .addr = "carol@example.net", .orig = "carol@example.net", .state = RS_PENDING,
	  .last_reply = "", .remote_mta = "", .notify = DSN_NOTIFY_NEVER, .orcpt = "" },
	{ .addr = "dave@example.net", .orig = "dave@example.net", .state = RS_PENDING,
	  .last_reply = "", .remote_mta = "" },
};

struct rt_case {
	const char *label;
	struct queue_msg msg;
	const char *bug;
};

static const struct rt_case rt_cases[] = {
	{ .label = "round trip: one recipient", .msg = {
	    .version = 1, .id = "0123456789abcdef", .created = 1700000000,
	    .sender = "alice@chamois.test", .owner = "alice", .uid = -1,
	    .size = 1234, .rcpts = rc_plain, .nrcpts = nitems(rc_plain) } },
	{ .label = "round trip: empty sender, no recipients", .msg = {
	    .version = 1, .id = "ffffffffffffffff", .created = 0,
	    .sender = "", .owner = "postmaster", .uid = 0 } },
	{ .label = "round trip: every state", .msg = {
	    .version = 1, .id = "00000000000000a1", .created = 1700000000,
	    .sender = "a@chamois.test", .owner = "a", .uid = 1000, .size = 1,
	    .body8bit = true, .rcpts = rc_states, .nrcpts = nitems(rc_states) } },
	{ .label = "round trip: UTF-8 everywhere", .msg = {
	    .version = 1, .id = "abcdefabcdef0000", .created = 1700000000,
	    .sender = "\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.test", .owner = "\xc3\xa9l\xc3\xa8ve",
	    .uid = -1, .smtputf8 = true, .body8bit = true,
	    .rcpts = rc_utf8, .nrcpts = nitems(rc_utf8) } },
	{ .label = "round trip: newlines, CR, %, controls, 0xff, edge spaces", .msg = {
	    .version = 1, .id = "1111111111111111", .created = 1,
	    .sender = "%0A\n", .owner = " o w n e r ", .uid = -1,
	    .rcpts = rc_odd, .nrcpts = nitems(rc_odd) } },
	{ .label = "round trip: extreme numbers", .msg = {
	    .version = 1, .id = "2222222222222222", .created = -1,
	    .sender = "s", .owner = "o", .uid = -2147483648L - 5,
	    .size = UINT64_MAX, .rcpts = rc_plain, .nrcpts = nitems(rc_plain) } },
	{ .label = "round trip: DSN parameters (version 2)", .msg = {
	    .version = 2, .id = "4444444444444444", .created = 1700000000,
	    .sender = "alice@chamois.test", .owner = "alice", .uid = -1,
	    .envid = "QQ314 x=y", .ret = DSN_RET_HDRS,
	    .rcpts = rc_dsn, .nrcpts = nitems(rc_dsn) } },
	{ .label = "round trip: RET alone (version 2)", .msg = {
	    .version = 2, .id = "5555555555555555", .created = 1700000000,
	    .sender = "alice@chamois.test", .owner = "alice", .uid = -1,
	    .ret = DSN_RET_FULL, .rcpts = rc_plain, .nrcpts = nitems(rc_plain) } },
};

static void
run_rt_case(void **state)
{
	const struct rt_case *c = *state;

	UNIT_BUG(c);
	round_trip(&c->msg);
}

static void
test_many_recipients(void **state)
{
	struct queue_msg m = { .version = 1, .id = "3333333333333333",
	    .sender = "bulk@chamois.test", .owner = "bulk", .uid = -1 };

	(void)state;
	m.nrcpts = 2000;
	m.rcpts = calloc(m.nrcpts, sizeof(*m.rcpts));
	assert_non_null(m.rcpts);
	for (size_t i = 0; i < m.nrcpts; i++) {
		struct queue_rcpt *r = &m.rcpts[i];

		assert_true(asprintf(&r->addr, "user%zu@example%zu.net", i, i % 7) > 0);
		r->orig = xstrdup("");
		r->state = (enum rcpt_state)(i % 4);
		r->attempts = (unsigned)i;
		r->next_attempt = (time_t)(1700000000 + i);
		snprintf(r->status, sizeof(r->status), "4.%zu.%zu", i % 8, i % 10);
		assert_true(asprintf(&r->last_reply, "reply %zu\nsecond line", i) > 0);
		r->remote_mta = xstrdup("mx.example.net");
	}
	round_trip(&m);
	m.sender = m.owner = NULL;	/* not ours to free */
	queue_msg_free(&m);
	assert_null(m.rcpts);
	assert_int_equal(m.nrcpts, 0);
}

/* the record itself: changes to it need a new version */

static const char golden[] =
    "chamois-queue 1\n"
    "id 0123456789abcdef\n"
    "created 1700000000\n"
    "sender alice@chamois.test\n"
    "owner alice\n"
    "uid -1\n"
    "size 1234\n"
    "body8bit 0\n"
    "smtputf8 0\n"
    "rcpts 1\n"
    "rcpt\n"
    "addr bob@example.net\n"
    "orig rfc822;bob@example.net\n"
    "local 0\n"
    "state pending\n"
    "attempts 0\n"
    "next 0\n"
    "status \n"
    "reply \n"
    "remote \n"
    "reported 0\n"
    "end\n";

static void
test_golden(void **state)
{
	char *rec;
	size_t len;

	(void)state;
	rec = queue_msg_encode(&rt_cases[0].msg, &len);
	assert_string_equal(rec, golden);
	free(rec);
}

/* version 2: the DSN fields, where they go */
static void
test_golden_v2(void **state)
{
	char *rec;
	size_t len;

	(void)state;
	rec = queue_msg_encode(&rt_cases[6].msg, &len);
	assert_non_null(strstr(rec, "chamois-queue 2\n"));
	assert_non_null(strstr(rec, "\nsmtputf8 0\nenvid QQ314 x=y\nret HDRS\nrcpts 3\n"));
	assert_non_null(strstr(rec, "\nreported 0\nnotify SUCCESS,DELAY\n"
	    "orcpt rfc822;Bob@Example.NET\nrcpt\n"));
	assert_non_null(strstr(rec, "\nnotify NEVER\norcpt \nrcpt\n"));
	assert_non_null(strstr(rec, "\nnotify \norcpt \nend\n"));
	free(rec);
}

/* a version 1 record (an older chamoisd's) reads as no DSN parameters */
static void
test_v1_reads(void **state)
{
	struct queue_msg m;

	(void)state;
	assert_int_equal(queue_msg_decode(golden, strlen(golden), &m), 0);
	assert_int_equal(m.version, 1);
	assert_true(m.envid == NULL || m.envid[0] == '\0');
	assert_int_equal(m.ret, DSN_RET_DEFAULT);
	assert_int_equal(m.rcpts[0].notify, 0);
	assert_true(dsn_wants(m.rcpts[0].notify, DSN_NOTIFY_FAILURE));
	assert_true(dsn_wants(m.rcpts[0].notify, DSN_NOTIFY_DELAY));
	assert_false(dsn_wants(m.rcpts[0].notify, DSN_NOTIFY_SUCCESS));
	queue_msg_free(&m);
}

/* escaping in the record: one line per field whatever the value holds */
static void
test_escaped_form(void **state)
{
	struct queue_msg m = rt_cases[4].msg;
	char *rec, *line;
	size_t len;

	(void)state;
	rec = queue_msg_encode(&m, &len);
	assert_non_null(strstr(rec, "\nsender %250A%0A\n"));
	assert_non_null(strstr(rec, "\nowner %20o w n e r%20\n"));
	line = strstr(rec, "\nreply line one%0Aline two%0D%0Athree%09tab %2541 100%25 %01%1F%7F\xff\xfe end\n");
	assert_non_null(line);
	free(rec);
}

/* malformed records: each is the golden record with one change */

struct bad_case {
	const char *label;
	const char *from, *to;	/* replace from by to in the golden record */
	const char *raw;	/* or this record instead */
	size_t rawlen;		/* when raw holds NUL */
	const char *bug;
};

static const struct bad_case bad_cases[] = {
	{ .label = "bad: empty", .raw = "" },
	{ .label = "bad: version 2", .from = "chamois-queue 1", .to = "chamois-queue 2" },
	{ .label = "bad: version 0", .from = "chamois-queue 1", .to = "chamois-queue 0" },
	{ .label = "bad: version 01", .from = "chamois-queue 1", .to = "chamois-queue 01" },
	{ .label = "bad: no version", .from = "chamois-queue 1\n", .to = "" },
	{ .label = "bad: other magic", .from = "chamois-queue", .to = "chamois-queux" },
	{ .label = "bad: CRLF", .from = "chamois-queue 1\n", .to = "chamois-queue 1\r\n" },
	{ .label = "bad: short id", .from = "id 0123456789abcdef", .to = "id 0123456789abcde" },
	{ .label = "bad: upper-case id", .from = "id 0123456789abcdef", .to = "id 0123456789ABCDEF" },
	{ .label = "bad: id not hex", .from = "id 0123456789abcdef", .to = "id 0123456789abcdeg" },
	{ .label = "bad: field missing", .from = "owner alice\n", .to = "" },
	{ .label = "bad: fields swapped", .from = "sender alice@chamois.test\nowner alice\n",
	  .to = "owner alice\nsender alice@chamois.test\n" },
	{ .label = "bad: unknown field", .from = "uid -1\n", .to = "uid -1\ncolour blue\n" },
	{ .label = "bad: key without space", .from = "owner alice", .to = "owneralice" },
	{ .label = "bad: key alone", .from = "owner alice", .to = "owner" },
	{ .label = "bad: number with junk", .from = "created 1700000000", .to = "created 17x" },
	{ .label = "bad: empty number", .from = "created 1700000000", .to = "created " },
	{ .label = "bad: number overflows", .from = "created 1700000000",
	  .to = "created 99999999999999999999" },
	{ .label = "bad: negative size", .from = "size 1234", .to = "size -1" },
	{ .label = "bad: plus sign", .from = "size 1234", .to = "size +1" },
	{ .label = "bad: bool 2", .from = "body8bit 0", .to = "body8bit 2" },
	{ .label = "bad: negative attempts", .from = "attempts 0", .to = "attempts -1" },
	{ .label = "bad: attempts past unsigned", .from = "attempts 0", .to = "attempts 4294967296" },
	{ .label = "bad: unknown state", .from = "state pending", .to = "state lost" },
	{ .label = "bad: more blocks than the count", .from = "rcpts 1", .to = "rcpts 0" },
	{ .label = "bad: fewer blocks than the count", .from = "rcpts 1", .to = "rcpts 2" },
	{ .label = "bad: huge count", .from = "rcpts 1", .to = "rcpts 18446744073709551615" },
	{ .label = "bad: status too long", .from = "status \n", .to = "status 4.4.1-and-much-more\n" },
	{ .label = "bad: escape not hex", .from = "owner alice", .to = "owner al%zzce" },
	{ .label = "bad: escape cut short", .from = "owner alice", .to = "owner alice%4" },
	{ .label = "bad: escaped NUL", .from = "owner alice", .to = "owner al%00ice" },
	{ .label = "bad: raw tab", .from = "owner alice", .to = "owner al\tice" },
	{ .label = "bad: raw CR", .from = "owner alice", .to = "owner alice\r" },
	{ .label = "bad: no end", .from = "end\n", .to = "" },
	{ .label = "bad: end without newline", .from = "end\n", .to = "end" },
	{ .label = "bad: something after end", .from = "end\n", .to = "end\nrcpt\n" },
	{ .label = "bad: NUL inside", .raw = "chamois-queue 1\n\0id", .rawlen = 19 },
	{ .label = "bad: version 2 without its fields", .from = "chamois-queue 1",
	  .to = "chamois-queue 2" },
	{ .label = "bad: version 3", .from = "chamois-queue 1\n", .to = "chamois-queue 3\n" },
	{ .label = "bad: DSN fields in version 1", .from = "smtputf8 0\n",
	  .to = "smtputf8 0\nenvid x\nret \n" },
};

static char *
replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out;

	assert_non_null(p);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from)) > 0);
	return out;
}

static void
run_bad_case(void **state)
{
	const struct bad_case *c = *state;
	struct queue_msg m;
	char *rec;
	size_t len;

	UNIT_BUG(c);
	if (c->raw != NULL) {
		rec = malloc(c->rawlen ? c->rawlen : strlen(c->raw) + 1);
		assert_non_null(rec);
		len = c->rawlen ? c->rawlen : strlen(c->raw);
		memcpy(rec, c->raw, len);
	} else {
		rec = replace(golden, c->from, c->to);
		len = strlen(rec);
	}
	memset(&m, 0xa5, sizeof(m));
	assert_int_equal(queue_msg_decode(rec, len, &m), -1);
	/* nothing left to free after a failure */
	assert_null(m.sender);
	assert_null(m.rcpts);
	assert_int_equal(m.nrcpts, 0);
	free(rec);
}

/* every proper prefix of a record is refused (a torn write) */
static void
test_truncated(void **state)
{
	struct queue_msg m;
	char *rec;
	size_t len;

	(void)state;
	rec = queue_msg_encode(&rt_cases[2].msg, &len);
	for (size_t n = 0; n < len; n++) {
		char *cut = malloc(n + 1);

		assert_non_null(cut);
		memcpy(cut, rec, n);
		if (queue_msg_decode(cut, n, &m) != -1)
			fail_msg("a prefix of %zu of %zu octets was accepted", n, len);
		free(cut);
	}
	assert_int_equal(queue_msg_decode(rec, len, &m), 0);
	queue_msg_free(&m);
	free(rec);
}

/* the decoder does not need a NUL after the record */
static void
test_not_terminated(void **state)
{
	struct queue_msg m;
	char *rec, *exact;
	size_t len;

	(void)state;
	rec = queue_msg_encode(&rt_cases[0].msg, &len);
	exact = malloc(len);
	assert_non_null(exact);
	memcpy(exact, rec, len);
	assert_int_equal(queue_msg_decode(exact, len, &m), 0);
	msg_equal(&rt_cases[0].msg, &m);
	queue_msg_free(&m);
	free(exact);
	free(rec);
}

/* copies */
static void
test_copy(void **state)
{
	struct queue_msg a, b;

	(void)state;
	queue_msg_copy(&a, &rt_cases[2].msg);
	msg_equal(&rt_cases[2].msg, &a);
	assert_ptr_not_equal(a.sender, rt_cases[2].msg.sender);
	assert_ptr_not_equal(a.rcpts, rt_cases[2].msg.rcpts);
	assert_ptr_not_equal(a.rcpts[1].last_reply, rt_cases[2].msg.rcpts[1].last_reply);
	queue_msg_copy(&b, &a);
	a.rcpts[1].state = RS_DELIVERED;
	a.rcpts[1].last_reply[0] = 'X';
	assert_int_equal(b.rcpts[1].state, RS_DEFERRED);
	assert_string_equal(b.rcpts[1].last_reply, "connection refused");
	queue_msg_free(&a);
	queue_msg_free(&b);
	/* a message without recipients */
	queue_msg_copy(&a, &rt_cases[1].msg);
	assert_null(a.rcpts);
	queue_msg_free(&a);
}

/* ids */
static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_ids(void **state)
{
	enum { N = 10000 };
	char (*ids)[QUEUE_ID_LEN + 1] = calloc(N, sizeof(*ids));

	(void)state;
	assert_non_null(ids);
	for (size_t i = 0; i < N; i++) {
		queue_new_id(ids[i]);
		assert_int_equal(strlen(ids[i]), QUEUE_ID_LEN);
		assert_int_equal(strspn(ids[i], "0123456789abcdef"), QUEUE_ID_LEN);
	}
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			fail_msg("id %s came twice", ids[i]);
	free(ids);
}

/* queue_msg_done */

struct done_case {
	const char *label;
	enum rcpt_state states[4];
	size_t n;
	bool want;
	const char *bug;
};

static const struct done_case done_cases[] = {
	{ .label = "done: no recipients", .n = 0, .want = true },
	{ .label = "done: one pending", .states = { RS_PENDING }, .n = 1, .want = false },
	{ .label = "done: one deferred", .states = { RS_DEFERRED }, .n = 1, .want = false },
	{ .label = "done: delivered and failed", .states = { RS_DELIVERED, RS_FAILED },
	  .n = 2, .want = true },
	{ .label = "done: last one deferred",
	  .states = { RS_DELIVERED, RS_FAILED, RS_DELIVERED, RS_DEFERRED }, .n = 4,
	  .want = false },
	{ .label = "done: first one pending",
	  .states = { RS_PENDING, RS_DELIVERED, RS_DELIVERED }, .n = 3, .want = false },
};

static void
run_done_case(void **state)
{
	const struct done_case *c = *state;
	struct queue_rcpt r[4] = { 0 };
	struct queue_msg m = { .rcpts = r, .nrcpts = c->n };

	UNIT_BUG(c);
	for (size_t i = 0; i < c->n; i++)
		r[i].state = c->states[i];
	assert_int_equal(queue_msg_done(&m), c->want);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(rt_cases) + nitems(bad_cases) +
	    nitems(done_cases) + 9];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_rt_case, rt_cases);
	UNIT_TEST(tests, n, test_many_recipients);
	UNIT_TEST(tests, n, test_golden);
	UNIT_TEST(tests, n, test_golden_v2);
	UNIT_TEST(tests, n, test_v1_reads);
	UNIT_TEST(tests, n, test_escaped_form);
	UNIT_ROWS(tests, n, run_bad_case, bad_cases);
	UNIT_TEST(tests, n, test_truncated);
	UNIT_TEST(tests, n, test_not_terminated);
	UNIT_TEST(tests, n, test_copy);
	UNIT_TEST(tests, n, test_ids);
	UNIT_ROWS(tests, n, run_done_case, done_cases);
	UNIT_RUN(tests, n);
}
