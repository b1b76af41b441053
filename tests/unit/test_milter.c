/*
 * test_milter.c - the milter reply parser and reply mapping
 * (filter/milter.c milter_parse, milter_reply_line), the header changes
 * the filters ask for (smtpd/headedit.c head_edit, head_section_len) and
 * the body that reads with a changed header section (common/body.c
 * body_replace).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "common/body.h"
#include "filter/milter.h"
#include "smtpd/headedit.h"
#include "unit.h"

struct parse_case {
	const char *label;
	const char *pkt;	/* command and data */
	size_t len;
	bool ok;
	char cmd;
	uint32_t index;
	const char *name, *value, *text;
	const char *bug;
};

#define P(s) .pkt = s, .len = sizeof(s) - 1

static const struct parse_case parse_cases[] = {
	{ .label = "continue", P("c"), .ok = true, .cmd = 'c' },
	{ .label = "accept", P("a"), .ok = true, .cmd = 'a' },
	{ .label = "progress", P("p"), .ok = true, .cmd = 'p' },
	{ .label = "add header", P("hX-Spam\0yes\0"), .ok = true, .cmd = 'h',
	  .name = "X-Spam", .value = "yes" },
	{ .label = "insert header", P("i\0\0\0\1DKIM-Signature\0 v=1\0"),
	  .ok = true, .cmd = 'i', .index = 1, .name = "DKIM-Signature",
	  .value = " v=1" },
	{ .label = "change header: empty value", P("m\0\0\0\2X-Two\0\0"),
	  .ok = true, .cmd = 'm', .index = 2, .name = "X-Two", .value = "" },
	{ .label = "header name with a colon", P("hX:y\0v\0") },
	{ .label = "header name with a space", P("hX y\0v\0") },
	{ .label = "header name empty", P("h\0v\0") },
	{ .label = "header without value NUL", P("hX\0v") },
	{ .label = "insert header too short", P("i\0\0") },
	{ .label = "reply code", P("y554 5.7.1 Spam\0"), .ok = true, .cmd = 'y',
	  .text = "554 5.7.1 Spam" },
	{ .label = "reply multi-line", P("y451-4.7.1 a\r\n451 4.7.1 b\0"),
	  .ok = true, .cmd = 'y', .text = "451-4.7.1 a\r\n451 4.7.1 b" },
	{ .label = "reply of class 2", P("y250 ok\0") },
	{ .label = "reply codes differ", P("y451-a\r\n452 b\0") },
	{ .label = "reply last line with a dash", P("y451-a\r\n451-b\0") },
	{ .label = "reply without NUL", P("y550 no") },
	{ .label = "reply code short", P("y55\0") },
	{ .label = "quarantine", P("qheld\0"), .ok = true, .cmd = 'q',
	  .text = "held" },
	{ .label = "negotiation", P("O\0\0\0\6\0\0\0\x31\0\0\0\x10"), .ok = true,
	  .cmd = 'O' },
	{ .label = "negotiation short", P("O\0\0\0\6\0\0\0\x31") },
	{ .label = "add recipient: not offered", P("+<a@b>\0") },
	{ .label = "replace body: not offered", P("bxyz") },
	{ .label = "empty", P("") },
};

static void
run_parse_case(void **state)
{
	const struct parse_case *c = *state;
	struct milter_msg m;
	char *pkt = malloc(c->len + 1);
	bool ok;

	UNIT_BUG(c);
	memcpy(pkt, c->pkt, c->len);
	pkt[c->len] = '\0';
	ok = milter_parse(pkt, c->len, &m);
	assert_int_equal(ok, c->ok);
	if (ok) {
		assert_int_equal(m.cmd, c->cmd);
		assert_int_equal(m.index, c->index);
		if (c->name)
			assert_string_equal(m.name, c->name);
		if (c->value)
			assert_string_equal(m.value, c->value);
		if (c->text)
			assert_string_equal(m.text, c->text);
		if (c->cmd == 'O') {
			assert_int_equal(m.version, 6);
			assert_int_equal(m.actions, 0x31);
			assert_int_equal(m.protocol, 0x10);
		}
	}
	free(pkt);
}

struct reply_case {
	const char *label;
	const char *text;
	const char *want;
	const char *bug;
};

static const struct reply_case reply_cases[] = {
	{ .label = "kept", .text = "554 5.7.1 Spam is not welcome",
	  .want = "554 5.7.1 Spam is not welcome" },
	{ .label = "no enhanced code", .text = "550 go away",
	  .want = "550 5.0.0 go away" },
	{ .label = "enhanced code of another class", .text = "451 5.7.1 odd",
	  .want = "451 4.0.0 5.7.1 odd" },
	{ .label = "first line of several", .text = "451-4.7.1 a\r\n451 4.7.1 b",
	  .want = "451 4.7.1 a" },
	{ .label = "code alone", .text = "550",
	  .want = "550 5.0.0 Refused by a content filter" },
	{ .label = "control octets", .text = "550 5.7.1 a\tb\x01" "c\xc3\xa9",
	  .want = "550 5.7.1 a?b?c??" },
};

static void
run_reply_case(void **state)
{
	const struct reply_case *c = *state;
	char out[REPLY_LINE_MAX];

	UNIT_BUG(c);
	milter_reply_line(c->text, out, sizeof(out));
	assert_string_equal(out, c->want);
}

#define HEAD "Received: from a\n\tby b\nSubject: hello\nX-Two: 1\nx-two: 2\n"

struct edit_case {
	const char *label;
	enum head_op op;
	unsigned index;
	const char *name, *value;
	const char *want;	/* NULL: refused */
	const char *bug;
};

static const struct edit_case edit_cases[] = {
	{ .label = "add at the end", .op = HEAD_ADD, .name = "X-Spam",
	  .value = "yes", .want = HEAD "X-Spam: yes\n" },
	{ .label = "add keeps a leading space", .op = HEAD_ADD, .name = "X-A",
	  .value = " v", .want = HEAD "X-A: v\n" },
	{ .label = "add folded CRLF value", .op = HEAD_ADD, .name = "X-R",
	  .value = "a;\r\n\tb", .want = HEAD "X-R: a;\n\tb\n" },
	{ .label = "a value line without blank gets a tab", .op = HEAD_ADD,
	  .name = "X-E", .value = "a\nFrom: forged\n\nbody",
	  .want = HEAD "X-E: a\n\tFrom: forged\n\t\n\tbody\n" },
	{ .label = "bare CR refused", .op = HEAD_ADD, .name = "X-E",
	  .value = "a\rb" },
	{ .label = "bad name refused", .op = HEAD_ADD, .name = "X E",
	  .value = "v" },
	{ .label = "insert at the top", .op = HEAD_INSERT, .index = 0,
	  .name = "X-Top", .value = "1", .want = "X-Top: 1\n" HEAD },
	{ .label = "insert after the folded first field", .op = HEAD_INSERT,
	  .index = 1, .name = "X-2", .value = "2",
	  .want = "Received: from a\n\tby b\nX-2: 2\nSubject: hello\nX-Two: 1\n"
	      "x-two: 2\n" },
	{ .label = "insert past the end adds", .op = HEAD_INSERT, .index = 99,
	  .name = "X-E", .value = "e", .want = HEAD "X-E: e\n" },
	{ .label = "change the second of a name, any case", .op = HEAD_CHANGE,
	  .index = 2, .name = "X-TWO", .value = "two",
	  .want = "Received: from a\n\tby b\nSubject: hello\nX-Two: 1\n"
	      "X-TWO: two\n" },
	{ .label = "remove a folded field", .op = HEAD_CHANGE, .index = 1,
	  .name = "received", .value = NULL,
	  .want = "Subject: hello\nX-Two: 1\nx-two: 2\n" },
	{ .label = "remove one that is not there: unchanged", .op = HEAD_CHANGE,
	  .index = 3, .name = "X-Two", .value = NULL, .want = HEAD },
	{ .label = "change one that is not there: added", .op = HEAD_CHANGE,
	  .index = 1, .name = "X-New", .value = "n", .want = HEAD "X-New: n\n" },
	{ .label = "prefix of a name does not match", .op = HEAD_CHANGE,
	  .index = 1, .name = "X-Tw", .value = NULL, .want = HEAD },
};

static void
run_edit_case(void **state)
{
	const struct edit_case *c = *state;
	size_t len;
	char *out;

	UNIT_BUG(c);
	out = head_edit(HEAD, strlen(HEAD), c->op, c->index, c->name, c->value,
	    &len);
	if (c->want == NULL) {
		assert_null(out);
		return;
	}
	assert_non_null(out);
	assert_int_equal(len, strlen(c->want));
	assert_string_equal(out, c->want);
	free(out);
}

static void
test_section_len(void **state)
{
	size_t n;

	assert_true(head_section_len("A: 1\nB: 2\n\nbody\n", 17, true, &n));
	assert_int_equal(n, 10);
	assert_true(head_section_len("\nbody\n", 6, true, &n));
	assert_int_equal(n, 0);
	/* no blank line yet: more may come, or it is all header */
	assert_false(head_section_len("A: 1\nB: 2\n", 10, true, &n));
	assert_true(head_section_len("A: 1\nB: 2\n", 10, false, &n));
	assert_int_equal(n, 10);
}

/* head_read: the header section a piece at a time, past its first read */
static void
test_head_read(void **state)
{
	struct body b;
	size_t hlen, flen = 50000;	/* a field longer than the first read */
	bool toolong;
	char *field = malloc(flen + 1), *head;

	memset(field, 'x', flen);
	memcpy(field, "X-Long: ", 8);
	field[flen - 1] = '\n';
	field[flen] = '\0';
	body_init(&b, "/tmp");
	assert_int_equal(body_append(&b, "Received: r\n", 12), 0);
	assert_int_equal(body_append(&b, field, flen), 0);
	/* no blank line yet, more to come: wait */
	assert_null(head_read(&b, 12, false, &hlen, &toolong));
	assert_false(toolong);
	/* the message complete without a blank line: all header */
	head = head_read(&b, 12, true, &hlen, &toolong);
	assert_non_null(head);
	assert_int_equal(hlen, flen);
	free(head);
	assert_int_equal(body_append(&b, "Subject: s\n\nbody\n", 17), 0);
	head = head_read(&b, 12, false, &hlen, &toolong);
	assert_non_null(head);
	assert_int_equal(hlen, flen + 11);
	assert_int_equal(strlen(head), hlen);
	assert_string_equal(head + flen, "Subject: s\n");
	free(head);
	body_free(&b);
	/* over HEADER_EDIT_MAX without a blank line: too long, complete or not */
	body_init(&b, "/tmp");
	for (size_t i = 0; i < HEADER_EDIT_MAX / flen + 1; i++)
		assert_int_equal(body_append(&b, field, flen), 0);
	assert_null(head_read(&b, 0, false, &hlen, &toolong));
	assert_true(toolong);
	assert_null(head_read(&b, 0, true, &hlen, &toolong));
	assert_true(toolong);
	body_free(&b);
	free(field);
}

/* body_read_all - every octet of b through body_read_at, in small reads */
static char *
body_read_all(const struct body *b)
{
	char *out = calloc(1, b->size + 1);
	uint64_t off = 0;
	ssize_t n;

	while ((n = body_read_at(b, off, out + off, 7)) > 0)
		off += (uint64_t)n;
	assert_int_equal(off, b->size);
	return out;
}

static void
test_body_replace(void **state)
{
	const char *text = "Received: x\nSubject: a\n\nbody line\n";
	struct body b;
	char *got;
	FILE *f;
	char buf[256];
	size_t n;

	body_init(&b, "/tmp");
	assert_int_equal(body_append(&b, text, strlen(text)), 0);
	/* "Subject: a\n" (at 12, 11 octets) becomes two fields */
	assert_int_equal(body_replace(&b, 12, 11, "Subject: b\nX: y\n", 16), 0);
	assert_int_equal(b.size, strlen(text) + 5);
	got = body_read_all(&b);
	assert_string_equal(got, "Received: x\nSubject: b\nX: y\n\nbody line\n");
	free(got);
	/* once only */
	assert_int_equal(body_replace(&b, 0, 1, "z", 1), -1);
	/* body_write_fd writes the same */
	f = tmpfile();
	assert_non_null(f);
	assert_int_equal(body_write_fd(&b, fileno(f)), 0);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	assert_string_equal(buf, "Received: x\nSubject: b\nX: y\n\nbody line\n");
	fclose(f);
	body_free(&b);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(parse_cases) + nitems(reply_cases) +
	    nitems(edit_cases) + 3];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_parse_case, parse_cases);
	UNIT_ROWS(tests, n, run_reply_case, reply_cases);
	UNIT_ROWS(tests, n, run_edit_case, edit_cases);
	UNIT_TEST(tests, n, test_section_len);
	UNIT_TEST(tests, n, test_head_read);
	UNIT_TEST(tests, n, test_body_replace);
	UNIT_RUN(tests, n);
}
