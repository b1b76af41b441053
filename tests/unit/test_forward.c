/*
 * test_forward.c - the outbound client's reply parser and reply-class
 * rule (smtp_reply_class/smtp_reply_status, what forward/ and queue/ do
 * with a remote reply) and forwarding's reply mapping (doc/forwarding.md,
 * "Replies: the mapping table") with the forwarding target hidden, row by
 * row.
 */
#include <string.h>

#include "common/util.h"
#include "forward/forward.h"
#include "outbound/client.h"
#include "unit.h"

struct parse_case {
	const char *label;
	const char *lines[4];		/* the reply, one line each */
	enum smtp_parse want;		/* after the last line */
	int code;
	const char *esc;
	const char *text;
	const char *bug;
};

static const struct parse_case parse_cases[] = {
	{ .label = "parse: one line with esc", .lines = { "250 2.1.5 Ok" },
	  .want = SMTP_PARSE_DONE, .code = 250, .esc = "2.1.5", .text = "Ok" },
	{ .label = "parse: no esc", .lines = { "250 OK" },
	  .want = SMTP_PARSE_DONE, .code = 250, .esc = "", .text = "OK" },
	{ .label = "parse: bare code", .lines = { "354" },
	  .want = SMTP_PARSE_DONE, .code = 354, .esc = "", .text = "" },
	{ .label = "parse: multi-line joined",
	  .lines = { "550-5.1.1 no such", "550-5.1.1 user", "550 5.1.1 here" },
	  .want = SMTP_PARSE_DONE, .code = 550, .esc = "5.1.1",
	  .text = "no such user here" },
	{ .label = "parse: continuation pending", .lines = { "250-first" },
	  .want = SMTP_PARSE_MORE, .code = 250, .esc = "", .text = "first" },
	{ .label = "parse: esc of another class is text",
	  .lines = { "550 4.1.1 odd" }, .want = SMTP_PARSE_DONE, .code = 550,
	  .esc = "", .text = "4.1.1 odd" },
	{ .label = "parse: three-digit esc parts",
	  .lines = { "452 4.123.456 x" }, .want = SMTP_PARSE_DONE, .code = 452,
	  .esc = "4.123.456", .text = "x" },
	{ .label = "parse: codes differ between lines",
	  .lines = { "250-a", "251 b" }, .want = SMTP_PARSE_ERROR },
	{ .label = "parse: not digits", .lines = { "2x0 nope" },
	  .want = SMTP_PARSE_ERROR },
	{ .label = "parse: bad separator", .lines = { "250_ok" },
	  .want = SMTP_PARSE_ERROR },
	{ .label = "parse: code out of range", .lines = { "199 x" },
	  .want = SMTP_PARSE_ERROR },
	{ .label = "parse: too short", .lines = { "25" },
	  .want = SMTP_PARSE_ERROR },
};

static void
run_parse_case(void **state)
{
	const struct parse_case *c = *state;
	struct smtp_reply r;
	enum smtp_parse st = SMTP_PARSE_ERROR;

	UNIT_BUG(c);
	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < nitems(c->lines) && c->lines[i]; i++)
		st = smtp_reply_parse(&r, c->lines[i], strlen(c->lines[i]));
	assert_int_equal(st, c->want);
	if (c->want == SMTP_PARSE_ERROR)
		return;
	assert_int_equal(r.code, c->code);
	assert_string_equal(r.esc, c->esc);
	assert_string_equal(r.text, c->text);
}

struct class_case {
	const char *label;
	struct smtp_reply in;
	enum smtp_class cls;
	const char *status;
	const char *bug;
};

static const struct class_case class_cases[] = {
	{ .label = "class: 2xx with its esc", .in = { 250, "2.1.5", "Ok" },
	  .cls = SMTP_CLASS_OK, .status = "2.1.5" },
	{ .label = "class: 2xx without esc", .in = { 250, "", "Ok" },
	  .cls = SMTP_CLASS_OK, .status = "2.0.0" },
	{ .label = "class: 4xx with its esc", .in = { 452, "4.2.2", "full" },
	  .cls = SMTP_CLASS_TEMP, .status = "4.2.2" },
	{ .label = "class: 4xx without esc", .in = { 421, "", "bye" },
	  .cls = SMTP_CLASS_TEMP, .status = "4.0.0" },
	{ .label = "class: 5xx with its esc", .in = { 550, "5.1.1", "no" },
	  .cls = SMTP_CLASS_PERM, .status = "5.1.1" },
	{ .label = "class: 5xx with an esc of another class",
	  .in = { 550, "4.1.1", "odd" }, .cls = SMTP_CLASS_PERM, .status = "5.0.0" },
	{ .label = "class: 3xx is off the protocol, a temporary failure",
	  .in = { 354, "3.0.0", "go ahead" }, .cls = SMTP_CLASS_ODD,
	  .status = "4.0.0" },
	{ .label = "class: no reply at all", .in = { 0, "", "" },
	  .cls = SMTP_CLASS_ODD, .status = "4.0.0" },
};

static void
run_class_case(void **state)
{
	const struct class_case *c = *state;
	char status[16];

	UNIT_BUG(c);
	assert_int_equal(smtp_reply_class(&c->in), c->cls);
	smtp_reply_status(&c->in, status, sizeof(status));
	assert_string_equal(status, c->status);
}

struct map_case {
	const char *label;
	struct smtp_reply in;
	bool utf8;
	const char *want;
	const char *bug;
};

static const struct map_case map_cases[] = {
	{ .label = "map: 2xx kept", .in = { 250, "2.0.0", "queued as 42" },
	  .want = "250 2.0.0 queued as 42" },
	{ .label = "map: 5xx kept with its text",
	  .in = { 550, "5.1.1", "no such user carol" },
	  .want = "550 5.1.1 no such user carol" },
	{ .label = "map: 4xx kept", .in = { 450, "4.2.0", "greylisted" },
	  .want = "450 4.2.0 greylisted" },
	{ .label = "map: missing esc becomes X.0.0 (5)", .in = { 554, "", "no" },
	  .want = "554 5.0.0 no" },
	{ .label = "map: missing esc becomes X.0.0 (2)", .in = { 250, "", "OK" },
	  .want = "250 2.0.0 OK" },
	{ .label = "map: missing esc becomes X.0.0 (4)", .in = { 421, "", "bye" },
	  .want = "421 4.0.0 bye" },
	{ .label = "map: esc of the wrong class replaced",
	  .in = { 550, "4.1.1", "odd" }, .want = "550 5.0.0 odd" },
	{ .label = "map: 3xx is unexpected", .in = { 354, "", "go ahead" },
	  .want = "451 4.4.2 Unexpected reply from the next server (354)" },
	{ .label = "map: control characters blanked",
	  .in = { 550, "5.7.1", "bad\r\nMAIL FROM:<x>\x01" },
	  .want = "550 5.7.1 bad  MAIL FROM:<x> " },
	{ .label = "map: UTF-8 replaced for an ASCII client",
	  .in = { 550, "5.1.1", "J\xc3\xb6rg unknown" },
	  .want = "550 5.1.1 J??rg unknown" },
	{ .label = "map: UTF-8 kept for an SMTPUTF8 client",
	  .in = { 550, "5.1.1", "J\xc3\xb6rg unknown" }, .utf8 = true,
	  .want = "550 5.1.1 J\xc3\xb6rg unknown" },
	{ .label = "map: invalid UTF-8 replaced even for SMTPUTF8",
	  .in = { 550, "5.1.1", "bad \xff\xfe byte" }, .utf8 = true,
	  .want = "550 5.1.1 bad ?? byte" },
	{ .label = "map: empty text", .in = { 250, "2.0.0", "" },
	  .want = "250 2.0.0 (no text)" },
};

static void
run_map_case(void **state)
{
	const struct map_case *c = *state;
	char out[600];

	UNIT_BUG(c);
	fwd_map_reply(&c->in, c->utf8, out, sizeof(out));
	assert_string_equal(out, c->want);
}

static void
map_bounds_length(void **state)
{
	struct smtp_reply r = { .code = 550, .esc = "5.1.1" };
	char out[600];

	memset(r.text, 'x', sizeof(r.text) - 1);
	fwd_map_reply(&r, false, out, sizeof(out));
	assert_true(strlen(out) <= 400 + 10);
	assert_memory_equal(out, "550 5.1.1 xxx", 13);
}

struct hide_case {
	const char *label;
	const char *text;
	const char *addr;
	const char *shown;
	size_t size;			/* 0: room for 200 */
	const char *want;
	const char *bug;
};

static const struct hide_case hide_cases[] = {
	{ .label = "hide: sendmail's echo in angle brackets",
	  .text = "<carol@remote.test>... Recipient ok",
	  .addr = "carol@remote.test", .shown = "fwd@example.test",
	  .want = "<fwd@example.test>... Recipient ok" },
	{ .label = "hide: case ignored, without brackets, every occurrence",
	  .text = "CAROL@Remote.TEST: no (carol@remote.test)",
	  .addr = "carol@remote.test", .shown = "fwd@example.test",
	  .want = "fwd@example.test: no (fwd@example.test)" },
	{ .label = "hide: nothing to hide", .text = "Ok",
	  .addr = "carol@remote.test", .shown = "fwd@example.test",
	  .want = "Ok" },
	{ .label = "hide: a longer shown address is cut at the bound",
	  .text = "to a@b ok", .addr = "a@b", .shown = "longer@example.test",
	  .size = 12, .want = "to longer@e" },
};

static void
run_hide_case(void **state)
{
	const struct hide_case *c = *state;
	char text[200];
	size_t size = c->size ? c->size : sizeof(text);

	UNIT_BUG(c);
	str_copy(text, c->text, sizeof(text));
	fwd_hide_address(text, size, c->addr, c->shown);
	assert_string_equal(text, c->want);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(parse_cases) + nitems(class_cases) +
	    nitems(map_cases) + nitems(hide_cases) + 1];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_parse_case, parse_cases);
	UNIT_ROWS(tests, n, run_class_case, class_cases);
	UNIT_ROWS(tests, n, run_map_case, map_cases);
	UNIT_ROWS(tests, n, run_hide_case, hide_cases);
	UNIT_TEST(tests, n, map_bounds_length);
	UNIT_RUN(tests, n);
}
