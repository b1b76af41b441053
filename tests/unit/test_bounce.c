/*
 * test_bounce.c - the RFC 3464 report (queue/bounce.c).
 *
 * Each row builds a report for one queue_msg and checks it three ways:
 *   1. in C: LF only, no line over 998 octets, the boundary only on its
 *      four delimiter lines, the strings the row wants (and not those it
 *      must not hold);
 *   2. with Python's MIME parser: tests/unit/check_dsn.py reads the report
 *      (email.message_from_bytes, email.policy.default), checks its
 *      structure and prints what it found as JSON, compared with
 *      tests/unit/golden/bounce_<row>.json;
 *   3. as text: the report with its boundary and Message-ID masked,
 *      compared with tests/unit/golden/bounce_<row>.eml (chasquid's
 *      dsn_test.go does the same).
 * UPDATE_GOLDEN=1 in the environment writes the golden files instead of
 * comparing (then read the diff before committing it).  Without
 * /usr/bin/python3 step 2 is skipped with a message.
 */
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "unit.h"

#define HOST	"mail.example.com"
#define CREATED	((time_t)1700000000)	/* Tue, 14 Nov 2023 22:13:20 UTC */
#define NOW	((time_t)1700003600)
#define PYTHON	"/usr/bin/python3"

struct rc {
	const char *addr, *orig, *status, *reply, *remote;
	unsigned attempts;
	const char *orcpt;		/* DSN ORCPT "type;address", NULL: none */
	bool local;
};

struct bounce_case {
	const char *label;
	const char *golden;		/* file name stem under golden/ */
	struct rc rcpts[3];
	size_t nrcpts;
	bool which[3];
	enum bounce_action action;
	const char *headers;		/* NULL: STD_HEADERS */
	size_t headers_len;		/* 0: strlen(headers) */
	const char *want[10];		/* substrings of the report */
	const char *not_want[6];
	const char *envid;		/* DSN ENVID, NULL: none */
	enum dsn_ret ret;
	const char *bug;
};

#define STD_HEADERS "Received: from localhost by mail.example.com\n" \
	"From: Alice <alice@example.com>\nTo: bob@example.org\n" \
	"Subject: lunch\nMessage-ID: <m1@example.com>\n" \
	"Date: Tue, 14 Nov 2023 22:13:19 +0000\n"

#define BOB	{ .addr = "bob@example.org", .orig = "bob@example.org", \
	.status = "5.1.1", .reply = "550 5.1.1 <bob@example.org>: no such user", \
	.remote = "mx.example.org", .attempts = 1 }

#define ODD_HEADERS "Subject: x\r\nX-B: --=_0123456789abcdef.0000000000000000--\n" \
	"X-Nul: a\0b\nX-Cr: a\rb\nX-Last: end\n\nbody: not a header\n"

/* a diagnostic of 3000 octets in words, and one word of 1500 */
static char long_words[3001], long_word[1600];

static const struct bounce_case bounce_cases[] = {
	/* DSN (RFC 3461): success reports, ENVID, ORCPT, RET=FULL */
	{ .label = "delivered: ENVID and ORCPT", .golden = "dsn_delivered",
	  .rcpts = { { .addr = "bob@example.com", .orig = "bob@example.com",
	    .status = "2.0.0", .reply = "delivered to Maildir", .remote = "",
	    .attempts = 1, .orcpt = "rfc822;Bob+x@Example.com", .local = true } },
	  .nrcpts = 1, .which = { true }, .action = BOUNCE_SUCCESS,
	  .envid = "QQ+314 x", .ret = DSN_RET_HDRS,
	  .want = { "Subject: Successful Mail Delivery Report\n",
		"\nOriginal-Envelope-Id: QQ+314 x\nReporting-MTA: dns; mail.example.com\n",
		"\nOriginal-Recipient: rfc822; Bob+x@Example.com\n"
		"Final-Recipient: rfc822; bob@example.com\nAction: delivered\n"
		"Status: 2.0.0\n",
		"it has been delivered\n",
		"Content-Type: text/rfc822-headers\n" },
	  .not_want = { "Action: relayed", "Will-Retry-Until" } },
	{ .label = "relayed", .golden = "dsn_relayed",
	  .rcpts = { { .addr = "bob@example.org", .orig = "bob@example.org",
	    .status = "2.0.0", .reply = "250 2.0.0 Ok: queued as 12",
	    .remote = "mx.example.org", .attempts = 1 } },
	  .nrcpts = 1, .which = { true }, .action = BOUNCE_SUCCESS,
	  .want = { "\nFinal-Recipient: rfc822; bob@example.org\nAction: relayed\n"
		"Status: 2.0.0\nRemote-MTA: dns; mx.example.org\n",
		"servers send no delivery reports" },
	  .not_want = { "Original-Envelope-Id", "Original-Recipient" } },
	{ .label = "failed with RET=FULL: the whole message", .golden = "dsn_ret_full",
	  .rcpts = { BOB }, .nrcpts = 1, .which = { true }, .action = BOUNCE_FAILED,
	  .ret = DSN_RET_FULL, .headers = STD_HEADERS "\nthe body\n",
	  .want = { "Content-Type: message/rfc822\n",
		"Content-Description: Undelivered Message\n",
		"\nSubject: lunch\n", "\n\nthe body\n",
		"The delivery report and your message are attached." },
	  .not_want = { "text/rfc822-headers" } },
	{ .label = "one failed recipient", .golden = "failed_one",
	  .rcpts = { BOB }, .nrcpts = 1, .which = { true },
	  .action = BOUNCE_FAILED,
	  .want = { "Subject: Undelivered Mail Returned to Sender\n",
		"To: <alice@example.com>\n",
		"From: Mail Delivery System <MAILER-DAEMON@mail.example.com>\n",
		"Auto-Submitted: auto-replied\n",
		"Content-Type: message/delivery-status\n",
		"\nFinal-Recipient: rfc822; bob@example.org\nAction: failed\n"
		"Status: 5.1.1\nRemote-MTA: dns; mx.example.org\n"
		"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: no such user\n"
		"Last-Attempt-Date: Tue, 14 Nov 2023 23:13:20 +0000\n",
		"Reporting-MTA: dns; mail.example.com\n"
		"X-Chamois-Queue-ID: 0123456789abcdef\n"
		"Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\n",
		"Content-Type: text/rfc822-headers\n"
		"Content-Transfer-Encoding: 7bit\n\n" STD_HEADERS "\n--" },
	  .not_want = { "Original-Recipient", "Will-Retry-Until",
		"Content-Transfer-Encoding: 8bit" } },
	{ .label = "two of three recipients selected", .golden = "failed_two_of_three",
	  .rcpts = { { .addr = "carol@example.net", .orig = "team@example.com",
			.status = "5.2.2", .reply = "552 5.2.2 mailbox full",
			.remote = "mx1.example.net", .attempts = 3 },
		{ .addr = "dave@example.net", .orig = "dave@example.net",
			.status = "4.4.1", .reply = "451 4.4.1 try later",
			.remote = "mx1.example.net", .attempts = 1 },
		{ .addr = "erin@example.org", .orig = "erin@example.org",
			.status = "5.7.1", .reply = "554 5.7.1 refused",
			.remote = "mx.example.org", .attempts = 1 } },
	  .nrcpts = 3, .which = { true, false, true }, .action = BOUNCE_FAILED,
	  .want = { "Original-Recipient: rfc822; team@example.com\n"
		"Final-Recipient: rfc822; carol@example.net\n",
		"Final-Recipient: rfc822; erin@example.org\n",
		"<carol@example.net> (you sent it to <team@example.com>)\n" },
	  .not_want = { "dave@", "try later" } },
	{ .label = "delayed", .golden = "delayed",
	  .rcpts = { { .addr = "bob@example.org", .orig = "bob@example.org",
			.status = "4.4.1", .reply = "451 4.4.1 greylisted, come back later",
			.remote = "mx.example.org", .attempts = 2 },
		{ .addr = "frank@example.org", .orig = "frank@example.org",
			.status = "", .reply = "connection refused",
			.remote = "", .attempts = 4 } },
	  .nrcpts = 2, .which = { true, true }, .action = BOUNCE_DELAYED,
	  .want = { "Subject: Delayed Mail (still being retried)\n",
		"Action: delayed\nStatus: 4.4.1\n",
		"Action: delayed\nStatus: 4.0.0\n",
		"Diagnostic-Code: X-Chamois; connection refused\n",
		"still trying" },
	  .not_want = { "Action: failed" } },
	{ .label = "UTF-8 recipient and headers", .golden = "utf8",
	  .rcpts = { { .addr = "j\xc3\xb6rg@ex\xc3\xa4mple.de",
			.orig = "J\xc3\x96RG@ex\xc3\xa4mple.de",
			.status = "5.1.1", .reply = "550 5.1.1 unbekannter Empf\xc3\xa4nger",
			.remote = "mx.xn--exmple-cua.de", .attempts = 1 },
		BOB },
	  .nrcpts = 2, .which = { true, true }, .action = BOUNCE_FAILED,
	  .headers = "From: alice@example.com\nSubject: Gr\xc3\xbc\xc3\x9f" "e\n",
	  .want = { "Content-Type: message/global-delivery-status\n"
		"Content-Transfer-Encoding: 8bit\n",
		"Original-Recipient: utf-8; J\xc3\x96RG@ex\xc3\xa4mple.de\n"
		"Final-Recipient: utf-8; j\xc3\xb6rg@ex\xc3\xa4mple.de\n",
		"Final-Recipient: rfc822; bob@example.org\n",
		"Content-Type: message/global-headers\n",
		"\nContent-Transfer-Encoding: 8bit\n\nThis is a MIME",
		"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n" } },
	{ .label = "odd characters in the reply", .golden = "odd_reply",
	  .rcpts = { { .addr = "bob@example.org", .orig = "bob@example.org",
			.status = "5.7.1",
			.reply = "554 5.7.1 no\r\nX-Injected: yes\n\nstill \x01\x7f"
				"tab\there latin1 caf\xe9 bad \xc0\xaf \xed\xa0\x80 "
				"--=_0123456789abcdef.0000000000000000 ok   ",
			.remote = "mx\n.example.org", .attempts = 1 } },
	  .nrcpts = 1, .which = { true }, .action = BOUNCE_FAILED,
	  .want = { "Diagnostic-Code: smtp; 554 5.7.1 no X-Injected: yes still tab here"
		" latin1 caf?\n bad ?? ??? --=_0123456789abcdef.0000000000000000 ok\n",
		"Remote-MTA: dns; mx .example.org\n",
		"Content-Type: message/delivery-status\n" },
	  .not_want = { "\nX-Injected", "\x01", "\x7f", "tab\there", "\xe9" } },
	{ .label = "empty last_reply and remote", .golden = "empty_reply",
	  .rcpts = { { .addr = "bob@example.org", .orig = "", .status = "",
			.reply = "", .remote = "", .attempts = 0 } },
	  .nrcpts = 1, .which = { true }, .action = BOUNCE_FAILED,
	  .want = { "Final-Recipient: rfc822; bob@example.org\nAction: failed\n"
		"Status: 5.0.0\n\n--",
		"    (not tried: no reason was recorded)\n" },
	  .not_want = { "Diagnostic-Code", "Remote-MTA", "Last-Attempt-Date",
		"Original-Recipient" } },
	{ .label = "long reply is folded and bounded", .golden = "long_reply",
	  .rcpts = { { .addr = "bob@example.org", .orig = "bob@example.org",
			.status = "5.0.0", .reply = long_words,
			.remote = "mx.example.org", .attempts = 1 },
		{ .addr = "carol@example.org", .orig = "carol@example.org",
			.status = "5.0.0", .reply = long_word,
			.remote = "mx.example.org", .attempts = 1 } },
	  .nrcpts = 2, .which = { true, true }, .action = BOUNCE_FAILED,
	  .want = { "Diagnostic-Code: smtp; 550 5.0.0 word0001 word0002 ",
		" word0226 word...\n", "XXXX\n XXXX", "550 5.0.0\n    XXXX" } },
	{ .label = "original headers: boundary-like line, no final newline, a body",
	  .golden = "odd_headers",
	  .rcpts = { BOB }, .nrcpts = 1, .which = { true }, .action = BOUNCE_FAILED,
	  .headers = ODD_HEADERS, .headers_len = sizeof(ODD_HEADERS) - 1,
	  .want = { "Subject: x\nX-B: --=_0123456789abcdef.0000000000000000--\n"
		"X-Nul: a?b\nX-Cr: a b\nX-Last: end\n\n--=_" },
	  .not_want = { "body: not a header", "\r" } },
	{ .label = "original headers without a final newline", .golden = "headers_no_newline",
	  .rcpts = { BOB }, .nrcpts = 1, .which = { true }, .action = BOUNCE_FAILED,
	  .headers = "Subject: x\nFrom: alice@example.com",
	  .want = { "\n\nSubject: x\nFrom: alice@example.com\n\n--=_" } },
	{ .label = "original headers end at a line that is no field", .golden = "headers_not_field",
	  .rcpts = { BOB }, .nrcpts = 1, .which = { true }, .action = BOUNCE_FAILED,
	  .headers = "Subject: x\n folded\n--=_0123456789abcdef.0000000000000000--\n"
		"From: alice@example.com\n",
	  .want = { "\n\nSubject: x\n folded\n\n--=_" },
	  .not_want = { "alice@example.com\n\n--=_",
		"0123456789abcdef.0000000000000000--" } },
	{ .label = "original headers missing and bad status", .golden = "no_headers",
	  .rcpts = { { .addr = "bob@example.org", .orig = "bob@example.org",
			.status = "5.1", .reply = "550 nope", .remote = "", .attempts = 1 } },
	  .nrcpts = 1, .which = { true }, .action = BOUNCE_FAILED,
	  .headers = "", .headers_len = 0,
	  .want = { "Status: 5.0.0\n", "Content-Type: text/rfc822-headers\n"
		"Content-Transfer-Encoding: 7bit\n\n\n--=_" } },
};

static char *srcdir;		/* where this file is: golden/, check_dsn.py */

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (f == NULL)
		return NULL;
	do {
		cap = cap ? cap * 2 : 8192;
		buf = realloc(buf, cap + 1);
		assert_non_null(buf);
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (n == cap);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void
write_file(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
		fail_msg("cannot write %s", path);
}

/* golden - compare got with golden/<stem><ext>, or write it there */
static void
golden(const char *stem, const char *ext, const char *got, size_t len)
{
	char path[512], actual[512];
	size_t wlen;
	char *want;

	snprintf(path, sizeof(path), "%sgolden/bounce_%s%s", srcdir, stem, ext);
	if (getenv("UPDATE_GOLDEN") != NULL) {
		write_file(path, got, len);
		return;
	}
	want = read_file(path, &wlen);
	if (want != NULL && wlen == len && memcmp(want, got, len) == 0) {
		free(want);
		return;
	}
	free(want);
	snprintf(actual, sizeof(actual), "/tmp/bounce_%s%s", stem, ext);
	write_file(actual, got, len);
	fail_msg("%s differs: diff -u %s %s (UPDATE_GOLDEN=1 accepts it)",
	    path, path, actual);
}

/* replace every occurrence of from in *s by to (the result is malloc'd) */
static char *
replace_all(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = s; (p = strstr(p, from)) != NULL; p += fl)
		n++;
	out = o = malloc(strlen(s) + n * tl + 1);
	assert_non_null(out);
	for (p = s; *p != '\0';) {
		if (strncmp(p, from, fl) == 0) {
			memcpy(o, to, tl);
			o += tl;
			p += fl;
		} else
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

/* between - a copy of the text after start up to stop in s */
static char *
between(const char *s, const char *start, char stop)
{
	const char *p = strstr(s, start), *e;

	if (p == NULL)
		fail_msg("no %s", start);
	p += strlen(start);
	e = strchr(p, stop);
	assert_non_null(e);
	return strndup(p, (size_t)(e - p));
}

/* keep - the report in /tmp for a look at a failure; the file name */
static const char *
keep(const struct bounce_case *row, const char *r, size_t len)
{
	static char path[256];

	snprintf(path, sizeof(path), "/tmp/bounce_%s.failed.eml", row->golden);
	write_file(path, r, len);
	return path;
}

/* the checks in C that hold for every report */
static void
check_shape(const char *r, size_t len, const char *boundary)
{
	size_t col = 0, delims = 0, hits = 0;
	char delim[128];
	const char *p;

	assert_int_equal(strlen(r), len);
	for (size_t i = 0; i < len; i++) {
		if (r[i] == '\r')
			fail_msg("CR at %zu", i);
		col = r[i] == '\n' ? 0 : col + 1;
		if (col > 998)
			fail_msg("a line over 998 octets at %zu", i);
	}
	assert_int_equal(r[len - 1], '\n');
	assert_true(strlen(boundary) > 0 && strlen(boundary) <= 70);
	for (p = r; (p = strstr(p, boundary)) != NULL; p++)
		hits++;
	snprintf(delim, sizeof(delim), "\n--%s\n", boundary);
	for (p = r; (p = strstr(p, delim)) != NULL; p++)
		delims++;
	snprintf(delim, sizeof(delim), "\n--%s--\n", boundary);
	assert_non_null(strstr(r, delim));
	assert_int_equal(delims, 3);
	assert_int_equal(hits, 3 + 1 + 1);	/* + the close + Content-Type */
}

/* run check_dsn.py on the report; its JSON output (malloc'd) */
static char *
python_check(const char *r, size_t len, size_t *outlen)
{
	char tmp[] = "/tmp/test_bounce.XXXXXX", cmd[1024];
	int fd = mkstemp(tmp), status;
	FILE *p;
	char *out = NULL;
	size_t cap = 0, n = 0, got;

	assert_true(fd >= 0);
	if (write(fd, r, len) != (ssize_t)len)
		fail_msg("write %s", tmp);
	close(fd);
	snprintf(cmd, sizeof(cmd), "%s %scheck_dsn.py %s", PYTHON, srcdir, tmp);
	p = popen(cmd, "r");
	assert_non_null(p);
	do {
		cap = cap ? cap * 2 : 8192;
		out = realloc(out, cap + 1);
		assert_non_null(out);
		got = fread(out + n, 1, cap - n, p);
		n += got;
	} while (got > 0);
	out[n] = '\0';
	status = pclose(p);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free(out);
		fail_msg("check_dsn.py rejects the report, kept in %s", tmp);
	}
	unlink(tmp);
	*outlen = n;
	return out;
}

static void
run_bounce_case(void **state)
{
	const struct bounce_case *row = *state;
	struct queue_rcpt rcpts[3] = { 0 };
	struct queue_msg msg = {
		.version = QUEUE_RECORD_VERSION, .id = "0123456789abcdef",
		.created = CREATED, .sender = "alice@example.com",
		.owner = "alice@example.com", .uid = -1, .rcpts = rcpts,
		.nrcpts = row->nrcpts, .envid = (char *)row->envid, .ret = row->ret,
	};
	const char *headers = row->headers ? row->headers : STD_HEADERS;
	size_t hlen = row->headers_len ? row->headers_len : strlen(headers);
	char *r, *boundary, *msgid, *masked, *tmp, *json;
	size_t len, jlen;

	UNIT_BUG(row);
	for (size_t i = 0; i < row->nrcpts; i++) {
		const struct rc *c = &row->rcpts[i];

		rcpts[i].addr = (char *)c->addr;
		rcpts[i].orig = (char *)c->orig;
		rcpts[i].state = RS_FAILED;
		rcpts[i].attempts = c->attempts;
		snprintf(rcpts[i].status, sizeof(rcpts[i].status), "%s", c->status);
		rcpts[i].last_reply = (char *)c->reply;
		rcpts[i].remote_mta = (char *)c->remote;
		rcpts[i].orcpt = (char *)c->orcpt;
		rcpts[i].local = c->local;
		if (row->action == BOUNCE_SUCCESS)
			rcpts[i].state = RS_DELIVERED;
	}
	r = bounce_build(&msg, row->which, row->action, headers, hlen, HOST,
	    NOW, 0, &len);
	assert_non_null(r);

	boundary = between(r, "boundary=\"", '"');
	check_shape(r, len, boundary);
	for (size_t i = 0; i < nitems(row->want) && row->want[i]; i++)
		if (strstr(r, row->want[i]) == NULL)
			fail_msg("no [%s] in %s", row->want[i], keep(row, r, len));
	for (size_t i = 0; i < nitems(row->not_want) && row->not_want[i]; i++)
		if (strstr(r, row->not_want[i]) != NULL)
			fail_msg("[%s] in %s", row->not_want[i], keep(row, r, len));

	if (access(PYTHON, X_OK) == 0) {
		json = python_check(r, len, &jlen);
		golden(row->golden, ".json", json, jlen);
		free(json);
	} else
		print_message("[  SKIP    ] %s: no %s\n", row->label, PYTHON);

	msgid = between(r, "\nMessage-ID: <", '>');
	tmp = replace_all(r, boundary, "BOUNDARY");
	masked = replace_all(tmp, msgid, "MSGID");
	golden(row->golden, ".eml", masked, strlen(masked));
	free(masked);
	free(tmp);
	free(msgid);
	free(boundary);
	free(r);
}

/* nothing selected: no report */
static void
test_none_selected(void **state)
{
	struct queue_rcpt rc = { .addr = "bob@example.org", .orig = "",
		.status = "5.1.1", .last_reply = "", .remote_mta = "" };
	struct queue_msg msg = { .id = "0123456789abcdef", .owner = "alice",
		.rcpts = &rc, .nrcpts = 1 };
	bool which[1] = { false };
	size_t len = 99;

	(void)state;
	assert_null(bounce_build(&msg, which, BOUNCE_FAILED, "", 0, HOST, NOW, 0, &len));
	assert_int_equal(len, 0);
	msg.nrcpts = 0;
	assert_null(bounce_build(&msg, NULL, BOUNCE_FAILED, "", 0, HOST, NOW, 0, &len));
}

/* which NULL: every recipient; an owner without a domain gets the hostname */
static void
test_all_and_bare_owner(void **state)
{
	struct queue_rcpt rc[2] = {
		{ .addr = "bob@example.org", .orig = "", .status = "5.1.1",
		  .last_reply = "550 no", .remote_mta = "" },
		{ .addr = "carol@example.org", .orig = "", .status = "5.1.1",
		  .last_reply = "550 no", .remote_mta = "" },
	};
	struct queue_msg msg = { .id = "0123456789abcdef", .owner = "postmaster",
		.rcpts = rc, .nrcpts = 2 };
	size_t len;
	char *r;

	(void)state;
	r = bounce_build(&msg, NULL, BOUNCE_FAILED, "", 0, HOST, NOW, 0, &len);
	assert_non_null(r);
	assert_non_null(strstr(r, "\nTo: <postmaster@" HOST ">\n"));
	assert_non_null(strstr(r, "Final-Recipient: rfc822; bob@example.org\n"));
	assert_non_null(strstr(r, "Final-Recipient: rfc822; carol@example.org\n"));
	free(r);
}

/* two reports about one message: two Message-IDs, two boundaries */
static void
test_unique(void **state)
{
	struct queue_rcpt rc = { .addr = "bob@example.org", .orig = "",
		.status = "5.1.1", .last_reply = "550 no", .remote_mta = "" };
	struct queue_msg msg = { .id = "0123456789abcdef", .owner = "a@b",
		.rcpts = &rc, .nrcpts = 1 };
	size_t l1, l2;
	char *a = bounce_build(&msg, NULL, BOUNCE_FAILED, "", 0, HOST, NOW, 0, &l1);
	char *b = bounce_build(&msg, NULL, BOUNCE_FAILED, "", 0, HOST, NOW, 0, &l2);
	char *ida = between(a, "\nMessage-ID: <", '>');
	char *idb = between(b, "\nMessage-ID: <", '>');
	char *ba = between(a, "boundary=\"", '"');
	char *bb = between(b, "boundary=\"", '"');

	(void)state;
	assert_string_not_equal(ida, idb);
	assert_string_not_equal(ba, bb);
	assert_non_null(strstr(ida, "@" HOST));
	free(ida);
	free(idb);
	free(ba);
	free(bb);
	free(a);
	free(b);
}

static void
make_long_replies(void)
{
	size_t o = 0;

	o += (size_t)snprintf(long_words, sizeof(long_words), "550 5.0.0");
	for (int i = 1; o + 9 < sizeof(long_words) - 1; i++)
		o += (size_t)snprintf(long_words + o, sizeof(long_words) - o,
		    " word%04d", i);
	o = (size_t)snprintf(long_word, sizeof(long_word), "550 5.0.0 ");
	memset(long_word + o, 'X', 1500);
	long_word[o + 1500] = '\0';
}

int
main(void)
{
	struct CMUnitTest tests[nitems(bounce_cases) + 3];
	size_t n = 0;
	char *slash;

	setenv("TZ", "UTC0", 1);
	tzset();
	make_long_replies();
	srcdir = strdup(__FILE__);
	slash = strrchr(srcdir, '/');
	if (slash != NULL)
		slash[1] = '\0';
	else
		srcdir[0] = '\0';
	UNIT_ROWS(tests, n, run_bounce_case, bounce_cases);
	UNIT_TEST(tests, n, test_none_selected);
	UNIT_TEST(tests, n, test_all_and_bare_owner);
	UNIT_TEST(tests, n, test_unique);
	UNIT_RUN(tests, n);
}
