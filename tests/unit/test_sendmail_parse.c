/*
 * test_sendmail_parse.c - the pure parts of chamois-sendmail
 * (queue/sendmail_parse.c): address lists (-t and the command line, read
 * by common/addrlist.c, bare names qualified with addr_qualify), the
 * stdin reader (the "." line, CRLF), the header section, Bcc removal and
 * the From: field.
 */
#include <string.h>

#include "common/addrlist.h"
#include "queue/sendmail_parse.h"
#include "unit.h"

#define MAXA 8

/* ---------------------------------------------------------- address lists */

struct addr_case {
	const char *label;
	const char *in;
	const char *domain;	/* NULL: "example.test" */
	const char *want[MAXA];	/* NULL-terminated */
	bool error;		/* -1 expected (want: what came before it) */
	const char *bug;
};

static const struct addr_case addr_cases[] = {
	{ .label = "list: one addr-spec", .in = "alice@example.org",
	  .want = { "alice@example.org" } },
	{ .label = "list: two, comma", .in = "a@x.org, b@y.org",
	  .want = { "a@x.org", "b@y.org" } },
	{ .label = "list: display name", .in = "Alice Example <alice@example.org>",
	  .want = { "alice@example.org" } },
	{ .label = "list: angle only", .in = "<alice@example.org>",
	  .want = { "alice@example.org" } },
	{ .label = "list: quoted display name with comma",
	  .in = "\"Doe, John\" <john@example.org>, jane@example.org",
	  .want = { "john@example.org", "jane@example.org" } },
	{ .label = "list: quoted name with escaped quote and comma",
	  .in = "\"A \\\"b\\\", c\" <a@x.org>",
	  .want = { "a@x.org" } },
	{ .label = "list: quoted local part keeps its quotes",
	  .in = "\"john doe\"@example.org",
	  .want = { "\"john doe\"@example.org" } },
	{ .label = "list: quoted local part with a comma and @",
	  .in = "\"a,b@c\"@example.org, d@example.org",
	  .want = { "\"a,b@c\"@example.org", "d@example.org" } },
	{ .label = "list: comment after", .in = "alice@example.org (Alice)",
	  .want = { "alice@example.org" } },
	{ .label = "list: comment inside addr-spec",
	  .in = "alice(the boss)@(here)example.org",
	  .want = { "alice@example.org" } },
	{ .label = "list: nested comment with comma and parens",
	  .in = "a@x.org (one, (two) \\) three), b@x.org",
	  .want = { "a@x.org", "b@x.org" } },
	{ .label = "list: group", .in = "Team: a@x.org, B <b@x.org>;",
	  .want = { "a@x.org", "b@x.org" } },
	{ .label = "list: empty group", .in = "undisclosed-recipients:;",
	  .want = { NULL } },
	{ .label = "list: group then mailbox",
	  .in = "Team: a@x.org; c@x.org",
	  .want = { "a@x.org", "c@x.org" } },
	{ .label = "list: unterminated group is taken",
	  .in = "Team: a@x.org, b@x.org",
	  .want = { "a@x.org", "b@x.org" } },
	{ .label = "list: folded lines (LF)",
	  .in = "a@x.org,\n b@x.org,\n\tC <c@x.org>",
	  .want = { "a@x.org", "b@x.org", "c@x.org" } },
	{ .label = "list: folded lines (CRLF)",
	  .in = "Alice\r\n <alice@x.org>,\r\n bob@x.org\r\n",
	  .want = { "alice@x.org", "bob@x.org" } },
	{ .label = "list: fold inside a quoted string",
	  .in = "\"Doe,\n John\" <j@x.org>",
	  .want = { "j@x.org" } },
	{ .label = "list: obs empty elements", .in = ", a@x.org,, ,b@x.org,",
	  .want = { "a@x.org", "b@x.org" } },
	{ .label = "list: obs route dropped", .in = "<@relay.org,@r2.org:a@x.org>",
	  .want = { "a@x.org" } },
	{ .label = "list: obs spaces around dots", .in = "john . doe @ example . org",
	  .want = { "john.doe@example.org" } },
	{ .label = "list: domain literal", .in = "a@[192.0.2.1]",
	  .want = { "a@[192.0.2.1]" } },
	{ .label = "list: UTF-8", .in = "Jürgen <jürgen@bücher.example>",
	  .want = { "jürgen@bücher.example" } },
	{ .label = "list: unquoted @ in a display name (common)",
	  .in = "alice@x.org <alice@x.org>",
	  .want = { "alice@x.org" } },
	{ .label = "bare: name qualified", .in = "root",
	  .want = { "root@example.test" } },
	{ .label = "bare: several, mixed", .in = "root, Admin <admin>, b@x.org",
	  .want = { "root@example.test", "admin@example.test", "b@x.org" } },
	{ .label = "bare: other domain", .in = "root", .domain = "mx.org",
	  .want = { "root@mx.org" } },
	{ .label = "bare: quoted name", .in = "\"a b\"",
	  .want = { "\"a b\"@example.test" } },
	{ .label = "bad: two words", .in = "John Smith", .error = true },
	{ .label = "bad: missing >", .in = "A <a@x.org", .error = true },
	{ .label = "bad: unterminated quote", .in = "\"A <a@x.org>", .error = true },
	{ .label = "bad: unterminated comment", .in = "a@x.org (x", .error = true },
	{ .label = "bad: two @", .in = "a@b@c.org", .error = true },
	{ .label = "bad: empty angle", .in = "<>", .error = true },
	{ .label = "bad: trailing dot", .in = "a@x.org.", .error = true },
	{ .label = "bad: text after angle", .in = "<a@x.org> junk",
	  .want = { "a@x.org" }, .error = true },
	{ .label = "bad: after good ones", .in = "a@x.org, John Smith",
	  .want = { "a@x.org" }, .error = true },
	{ .label = "empty input", .in = "", .want = { NULL } },
	{ .label = "blank input", .in = " \n ", .want = { NULL } },
};

static void
check_addrs(const struct addr_list *got, const char *const *want)
{
	size_t n = 0;

	while (n < MAXA && want[n])
		n++;
	for (size_t i = 0; i < got->n; i++)
		print_message("   got[%zu] = %s\n", i, got->v[i]);
	assert_int_equal(got->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(got->v[i], want[i]);
}

static void
test_addrlist(void **state)
{
	const struct addr_case *c = *state;
	struct addr_list got = { 0 };
	char err[256] = "";
	int rc;

	UNIT_BUG(c);
	rc = addr_list_parse(c->in, strlen(c->in),
	    c->domain ? c->domain : "example.test", &got, err, sizeof(err));
	if (c->error) {
		assert_int_equal(rc, -1);
		assert_true(err[0] != '\0');
	} else {
		if (rc != 0)
			print_message("   error: %s\n", err);
		assert_int_equal(rc, 0);
	}
	check_addrs(&got, c->want);
	addr_list_free(&got);
}

/* ---------------------------------------------------------------- stdin */

struct input_case {
	const char *label;
	const char *in;
	bool ignore_dots;
	size_t max;		/* 0: none */
	const char *want;
	bool done;		/* the "." line ended it */
	bool too_big;
	size_t len;		/* 0: strlen(in) */
	size_t nul_line;	/* the line with a NUL; 0: none */
	const char *bug;
};

static const struct input_case input_cases[] = {
	{ .label = "input: LF kept", .in = "Subject: x\n\nbody\n",
	  .want = "Subject: x\n\nbody\n" },
	{ .label = "input: CRLF becomes LF", .in = "Subject: x\r\n\r\nbody\r\n",
	  .want = "Subject: x\n\nbody\n" },
	{ .label = "input: mixed line ends", .in = "a\r\nb\nc\r\n",
	  .want = "a\nb\nc\n" },
	{ .label = "input: bare CR inside a line kept (the daemon decides)",
	  .in = "a\rb\n", .want = "a\rb\n" },
	{ .label = "input: dot line ends", .in = "a\n.\nafter\n",
	  .want = "a\n", .done = true },
	{ .label = "input: dot CRLF line ends", .in = "a\r\n.\r\nafter\r\n",
	  .want = "a\n", .done = true },
	{ .label = "input: dot at EOF without LF ends", .in = "a\n.",
	  .want = "a\n", .done = true },
	{ .label = "input: -i keeps the dot line", .in = "a\n.\nb\n",
	  .ignore_dots = true, .want = "a\n.\nb\n" },
	{ .label = "input: two dots are not the end (no unstuffing)",
	  .in = "a\n..\nb\n", .want = "a\n..\nb\n" },
	{ .label = "input: dot with text is not the end", .in = "a\n.x\n. \nb\n",
	  .want = "a\n.x\n. \nb\n" },
	{ .label = "input: last line without LF gets one", .in = "a\nb",
	  .want = "a\nb\n" },
	{ .label = "input: last line CR only", .in = "a\nb\r",
	  .want = "a\nb\n" },
	{ .label = "input: empty", .in = "", .want = "" },
	{ .label = "input: only the dot", .in = ".\n", .want = "", .done = true },
	{ .label = "input: mbox From line dropped",
	  .in = "From alice Mon Jan  1 00:00:00 2024\nSubject: x\n\nb\n",
	  .want = "Subject: x\n\nb\n" },
	{ .label = "input: From: header kept", .in = "From: a@x.org\n\nb\n",
	  .want = "From: a@x.org\n\nb\n" },
	{ .label = "input: later From line kept", .in = "S: x\n\nFrom here\n",
	  .want = "S: x\n\nFrom here\n" },
	{ .label = "input: over max", .in = "0123456789\n0123456789\n", .max = 15,
	  .want = "0123456789\n", .too_big = true },
	{ .label = "input: exactly max", .in = "0123456789\n", .max = 11,
	  .want = "0123456789\n" },
	/* a NUL refuses the message: nothing from its line on is taken */
	{ .label = "input: NUL inside a line", .in = "S: x\n\nab\0cd\nmore\n", .len = 17,
	  .want = "S: x\n\n", .nul_line = 3 },
	{ .label = "input: <LF>NUL.<LF> smuggling",
	  .in = "S: x\n\nfirst\n\0.\nMAIL FROM:<bob@example.org>\n", .len = 43,
	  .want = "S: x\n\nfirst\n", .nul_line = 4 },
	{ .label = "input: NUL in the mbox From line", .in = "From a\0 b\nS: x\n", .len = 15,
	  .want = "", .nul_line = 1 },
	{ .label = "input: NUL in a last line without LF", .in = "a\nb\0", .len = 4,
	  .want = "a\n", .nul_line = 2 },
	{ .label = "input: NUL after the dot line not read", .in = "a\n.\n\0\n", .len = 6,
	  .want = "a\n", .done = true },
	{ .label = "input: NUL with -i", .in = "a\n\0.\n", .len = 5, .ignore_dots = true,
	  .want = "a\n", .nul_line = 2 },
};

/* feed in pieces of every size, so line ends split across reads count */
static void
test_input(void **state)
{
	const struct input_case *c = *state;
	size_t len = c->len ? c->len : strlen(c->in);

	UNIT_BUG(c);
	for (size_t chunk = 1; chunk <= len + 1; chunk++) {
		struct sm_input in;
		size_t off = 0;
		bool done = false;

		sm_input_init(&in, c->ignore_dots, c->max);
		while (off < len && !done) {
			size_t n = len - off < chunk ? len - off : chunk;

			done = sm_input_feed(&in, c->in + off, n);
			off += n;
		}
		sm_input_finish(&in);
		if (strcmp(in.buf, c->want) != 0)
			print_message("   chunk %zu: got \"%s\"\n", chunk, in.buf);
		assert_string_equal(in.buf, c->want);
		assert_int_equal(in.len, strlen(c->want));
		assert_int_equal(in.done, c->done);
		assert_int_equal(in.too_big, c->too_big);
		assert_int_equal(in.nul, c->nul_line != 0);
		assert_int_equal(in.nul_line, c->nul_line);
		sm_input_free(&in);
	}
}

/* --------------------------------------------------------- header section */

struct hdr_case {
	const char *label;
	const char *msg;
	size_t hlen;		/* sm_header_len */
	bool blank;
	const char *bug;
};

static const struct hdr_case hdr_cases[] = {
	{ .label = "hdr: with body", .msg = "A: 1\nB: 2\n\nbody\n", .hlen = 11,
	  .blank = true },
	{ .label = "hdr: folded field", .msg = "A: 1\n 2\n\tthree\n\nb\n",
	  .hlen = 16, .blank = true },
	{ .label = "hdr: no body", .msg = "A: 1\n", .hlen = 5 },
	{ .label = "hdr: body without blank line", .msg = "A: 1\nhello world\n",
	  .hlen = 5 },
	{ .label = "hdr: no header at all", .msg = "hello\n", .hlen = 0 },
	{ .label = "hdr: empty line first", .msg = "\nbody\n", .hlen = 1,
	  .blank = true },
	{ .label = "hdr: continuation first is body", .msg = " x\n", .hlen = 0 },
	{ .label = "hdr: obs blank before colon", .msg = "A : 1\n\nb\n", .hlen = 7,
	  .blank = true },
	{ .label = "hdr: CRLF blank line", .msg = "A: 1\r\n\r\nb\r\n", .hlen = 8,
	  .blank = true },
	{ .label = "hdr: 8-bit name is body", .msg = "A: 1\nÄ: 2\n", .hlen = 5 },
};

static void
test_header_len(void **state)
{
	const struct hdr_case *c = *state;
	bool blank;

	UNIT_BUG(c);
	assert_int_equal(sm_header_len(c->msg, strlen(c->msg), &blank), c->hlen);
	assert_int_equal(blank, c->blank);
}

/* -t: the recipients of To, Cc, Bcc; Bcc removed byte for byte */
struct t_case {
	const char *label;
	const char *msg;
	const char *want[MAXA];
	const char *nobcc;	/* the message after Bcc removal */
	bool has_from;
	const char *bug;
};

static const struct t_case t_cases[] = {
	{ .label = "-t: To Cc Bcc",
	  .msg = "From: me@x.org\nTo: a@x.org\nCc: B <b@x.org>\nBcc: c@x.org\n"
	      "Subject: s\n\nbody\nBcc: not a header\n",
	  .want = { "a@x.org", "b@x.org", "c@x.org" },
	  .nobcc = "From: me@x.org\nTo: a@x.org\nCc: B <b@x.org>\n"
	      "Subject: s\n\nbody\nBcc: not a header\n",
	  .has_from = true },
	{ .label = "-t: folded Bcc removed with its continuation lines",
	  .msg = "To: a@x.org\nBCC: b@x.org,\n  \"Doe, J\" <c@x.org>,\n\troot\n"
	      "X-Keep:  spacing  kept \n\nbody\n",
	  .want = { "a@x.org", "b@x.org", "c@x.org", "root@example.test" },
	  .nobcc = "To: a@x.org\nX-Keep:  spacing  kept \n\nbody\n" },
	{ .label = "-t: several Bcc fields, last one",
	  .msg = "Bcc: a@x.org\nTo: t@x.org\nbcc : b@x.org\n",
	  .want = { "a@x.org", "t@x.org", "b@x.org" },
	  .nobcc = "To: t@x.org\n" },
	{ .label = "-t: empty Bcc",
	  .msg = "To: t@x.org\nBcc:\nSubject: x\n\nb\n",
	  .want = { "t@x.org" },
	  .nobcc = "To: t@x.org\nSubject: x\n\nb\n" },
	{ .label = "-t: names that only start like To/Cc are not recipients",
	  .msg = "Tox: no@x.org\nCcc: no@x.org\nBccx: keep@x.org\nTo: yes@x.org\n\n",
	  .want = { "yes@x.org" },
	  .nobcc = "Tox: no@x.org\nCcc: no@x.org\nBccx: keep@x.org\nTo: yes@x.org\n\n" },
	{ .label = "-t: group and bare names",
	  .msg = "To: Friends: root, bob@x.org;\nCc: undisclosed-recipients:;\n\n",
	  .want = { "root@example.test", "bob@x.org" },
	  .nobcc = "To: Friends: root, bob@x.org;\nCc: undisclosed-recipients:;\n\n" },
	{ .label = "-t: To in the body is not read",
	  .msg = "Subject: x\n\nTo: body@x.org\n",
	  .want = { NULL },
	  .nobcc = "Subject: x\n\nTo: body@x.org\n" },
	{ .label = "-t: CRLF-free 8-bit kept byte for byte",
	  .msg = "To: a@x.org\nBcc: b@x.org\nSubject: caf\xc3\xa9\n\n\xff\xfe\n",
	  .want = { "a@x.org", "b@x.org" },
	  .nobcc = "To: a@x.org\nSubject: caf\xc3\xa9\n\n\xff\xfe\n" },
};

static void
test_t(void **state)
{
	const struct t_case *c = *state;
	struct addr_list got = { 0 };
	char err[256] = "", *out;
	size_t len = strlen(c->msg), outlen, hlen;
	bool blank;

	UNIT_BUG(c);
	hlen = sm_header_len(c->msg, len, &blank);
	if (sm_header_rcpts(c->msg, hlen, "example.test", &got, err, sizeof(err)) != 0)
		print_message("   error: %s\n", err);
	check_addrs(&got, c->want);
	out = sm_remove_field(c->msg, len, "Bcc", &outlen);
	assert_string_equal(out, c->nobcc);
	assert_int_equal(outlen, strlen(c->nobcc));
	assert_int_equal(sm_header_has(c->msg, hlen, "From"), c->has_from);
	free(out);
	addr_list_free(&got);
}

static void
test_t_bad_address(void **state)
{
	const char *msg = "To: a@x.org, John Smith\n\n";
	struct addr_list got = { 0 };
	char err[256] = "";

	assert_int_equal(sm_header_rcpts(msg, strlen(msg), "example.test", &got,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "To"));
	addr_list_free(&got);
}

/* ------------------------------------------------------------------ From */

struct from_case {
	const char *label;
	const char *name;
	const char *addr;
	const char *want;
	const char *bug;
};

static const struct from_case from_cases[] = {
	{ .label = "from: no name", .name = NULL, .addr = "root@x.org",
	  .want = "From: root@x.org\n" },
	{ .label = "from: empty name", .name = "  ", .addr = "root@x.org",
	  .want = "From: root@x.org\n" },
	{ .label = "from: cron's -FCronDaemon", .name = "CronDaemon",
	  .addr = "root@x.org", .want = "From: CronDaemon <root@x.org>\n" },
	{ .label = "from: words", .name = "Cron Daemon", .addr = "root@x.org",
	  .want = "From: Cron Daemon <root@x.org>\n" },
	{ .label = "from: specials quoted", .name = "Doe, John (admin)",
	  .addr = "j@x.org", .want = "From: \"Doe, John (admin)\" <j@x.org>\n" },
	{ .label = "from: quote and backslash escaped", .name = "a\"b\\c",
	  .addr = "j@x.org", .want = "From: \"a\\\"b\\\\c\" <j@x.org>\n" },
	{ .label = "from: control characters dropped", .name = "a\nb\r\tc",
	  .addr = "j@x.org", .want = "From: a b c <j@x.org>\n" },
	{ .label = "from: UTF-8 encoded (RFC 2047)", .name = "Jos\xc3\xa9",
	  .addr = "j@x.org", .want = "From: =?UTF-8?B?Sm9zw6k=?= <j@x.org>\n" },
};

static void
test_from(void **state)
{
	const struct from_case *c = *state;
	char *got;

	UNIT_BUG(c);
	got = sm_from_field(c->name, c->addr);
	assert_string_equal(got, c->want);
	free(got);
}

static void
test_qualify(void **state)
{
	char *s;

	s = addr_qualify("root", "example.test");
	assert_string_equal(s, "root@example.test");
	free(s);
	s = addr_qualify("a@b.org", "example.test");
	assert_string_equal(s, "a@b.org");
	free(s);
	s = addr_qualify("\"a@b\"", "example.test");
	assert_string_equal(s, "\"a@b\"@example.test");
	free(s);
	s = addr_qualify("root", NULL);
	assert_string_equal(s, "root");
	free(s);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(addr_cases) + nitems(input_cases) +
	    nitems(hdr_cases) + nitems(t_cases) + nitems(from_cases) + 2];
	size_t n = 0;

	UNIT_ROWS(tests, n, test_addrlist, addr_cases);
	UNIT_ROWS(tests, n, test_input, input_cases);
	UNIT_ROWS(tests, n, test_header_len, hdr_cases);
	UNIT_ROWS(tests, n, test_t, t_cases);
	UNIT_TEST(tests, n, test_t_bad_address);
	UNIT_ROWS(tests, n, test_from, from_cases);
	UNIT_TEST(tests, n, test_qualify);
	UNIT_RUN(tests, n);
}
