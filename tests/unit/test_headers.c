/*
 * test_headers.c - Message-ID and Date added to messages that enter the
 * queue without them (queue/headers.c, RFC 5322 3.6), and the one reader
 * of header-field names they and every other header reader use
 * (header_field_name/header_field_is, common/util.c).
 *
 * Each row gives the message, whether a Message-ID and a Date are to be
 * added at the top, and what must follow them.  The Message-ID is random:
 * its form is checked, and that two calls give two.  Rows run at a fixed
 * time in a fixed time zone (tz, UTC0 unless set).
 */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "queue/queue.h"
#include "unit.h"

#define HOST	"mail.example.com"
#define NOW	((time_t)1700003600)	/* Tue, 14 Nov 2023 23:13:20 UTC */
#define DATE_UTC "Date: Tue, 14 Nov 2023 23:13:20 +0000\n"

struct fix_case {
	const char *label;
	const char *in;
	size_t len;		/* 0: strlen(in) */
	bool add_id;
	bool add_date;
	const char *date;	/* the Date line wanted; NULL: DATE_UTC */
	const char *rest;	/* what follows the added lines; NULL: in */
	const char *tz;		/* TZ for the row; NULL: UTC0 */
	const char *host;	/* NULL: HOST */
	const char *bug;
};

static const struct fix_case fix_cases[] = {
	{ .label = "missing both",
	  .in = "From: alice@example.com\nSubject: hi\n\nbody\n",
	  .add_id = true, .add_date = true },
	{ .label = "missing Date",
	  .in = "Message-ID: <1@example.com>\nSubject: hi\n\nbody\n",
	  .add_date = true },
	{ .label = "missing Message-ID",
	  .in = "Date: Mon, 13 Nov 2023 10:00:00 +0100\nSubject: hi\n\nbody\n",
	  .add_id = true },
	{ .label = "missing none: unchanged",
	  .in = "Subject: hi\nDate: Mon, 13 Nov 2023 10:00:00 +0100\n"
		"Message-ID: <1@example.com>\n\nbody\n" },
	{ .label = "names in any case",
	  .in = "message-id: <1@example.com>\nDATE: Mon, 13 Nov 2023 10:00:00 +0100\n\nbody\n" },
	{ .label = "Message-Id spelling",
	  .in = "Message-Id: <1@example.com>\ndAtE: x\n\n" },
	{ .label = "obsolete blank before the colon",
	  .in = "Message-ID : <1@example.com>\nDate\t: Mon, 13 Nov 2023 10:00:00 +0100\n\nb\n" },
	{ .label = "prefix or longer name does not count",
	  .in = "Dates: x\nMessage-IDs: y\nDat: z\nX-Date: w\n\nbody\n",
	  .add_id = true, .add_date = true },
	{ .label = "Resent- fields do not count",
	  .in = "Resent-Date: Mon, 13 Nov 2023 10:00:00 +0100\n"
		"Resent-Message-ID: <2@example.com>\n\nbody\n",
	  .add_id = true, .add_date = true },
	{ .label = "folded fields",
	  .in = "Subject: a subject\n that goes on\n\tand on\n"
		"Date: Mon, 13 Nov 2023\n 10:00:00 +0100\nTo: bob@example.org\n\nbody\n",
	  .add_id = true },
	{ .label = "a continuation line is not a field",
	  .in = "Subject: hi\n Date: Mon, 13 Nov 2023 10:00:00 +0100\n"
		"\tMessage-ID: <1@example.com>\n\nbody\n",
	  .add_id = true, .add_date = true },
	{ .label = "fields in the body do not count",
	  .in = "Subject: hi\n\nDate: Mon, 13 Nov 2023 10:00:00 +0100\n"
		"Message-ID: <1@example.com>\n",
	  .add_id = true, .add_date = true },
	{ .label = "no body, no separator",
	  .in = "Subject: hi\nDate: Mon, 13 Nov 2023 10:00:00 +0100\n",
	  .add_id = true },
	{ .label = "no final newline",
	  .in = "Subject: hi", .add_id = true, .add_date = true },
	{ .label = "header section only, with separator",
	  .in = "Subject: hi\n\n", .add_id = true, .add_date = true },
	{ .label = "empty message",
	  .in = "", .add_id = true, .add_date = true },
	{ .label = "starts with a blank line: all body",
	  .in = "\nDate: x\nMessage-ID: y\n",
	  .add_id = true, .add_date = true },
	{ .label = "no separator before the body: one is added",
	  .in = "Subject: hi\nDate: Mon, 13 Nov 2023 10:00:00 +0100\n"
		"Message-ID: <1@example.com>\nhello, this is the body\n\nmore\n",
	  .rest = "Subject: hi\nDate: Mon, 13 Nov 2023 10:00:00 +0100\n"
		"Message-ID: <1@example.com>\n\nhello, this is the body\n\nmore\n" },
	{ .label = "no header at all: the message is the body",
	  .in = "hello world\nDate: x\n",
	  .add_id = true, .add_date = true,
	  .rest = "\nhello world\nDate: x\n" },
	{ .label = "starts with a blank-led line: body",
	  .in = " Subject: hi\n", .add_id = true, .add_date = true,
	  .rest = "\n Subject: hi\n" },
	{ .label = "no name before the colon: body",
	  .in = "Subject: hi\n: x\n", .add_id = true, .add_date = true,
	  .rest = "Subject: hi\n\n: x\n" },
	{ .label = "8-bit field value (RFC 6532)",
	  .in = "Subject: h\xc3\xa9llo\nFrom: j\xc3\xb6rg@example.de\n\nb\n",
	  .add_id = true, .add_date = true },
	{ .label = "NUL in the body is kept",
	  .in = "Subject: hi\n\na\0b\n", .len = 17, .add_id = true, .add_date = true },
	{ .label = "CR-only line ends the header section",
	  .in = "Subject: hi\n\r\nDate: x\n", .add_id = true, .add_date = true },
	{ .label = "time zone east of UTC",
	  .in = "Subject: hi\n\n", .add_id = true, .add_date = true,
	  .tz = "CET-1", .date = "Date: Wed, 15 Nov 2023 00:13:20 +0100\n" },
	{ .label = "time zone west of UTC, half hour",
	  .in = "Subject: hi\n\n", .add_id = true, .add_date = true,
	  .tz = "NST3:30", .date = "Date: Tue, 14 Nov 2023 19:43:20 -0330\n" },
	{ .label = "no hostname: localhost",
	  .in = "Subject: hi\n\n", .add_id = true, .add_date = true, .host = "" },
};

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/*
 * check_msgid - line is "Message-ID: <YYYYMMDDhhmmss.<16 hex>@host>\n";
 * returns its length
 */
static size_t
check_msgid(const char *line, const char *host)
{
	const char *p = line;
	size_t hl = strlen(host);

	if (strncmp(p, "Message-ID: <", 13) != 0)
		fail_msg("no Message-ID line at the top: %.60s", line);
	p += 13;
	for (int i = 0; i < 14; i++, p++)
		if (!isdigit((unsigned char)*p))
			fail_msg("Message-ID stamp: %.60s", line);
	if (*p++ != '.')
		fail_msg("Message-ID: %.60s", line);
	for (int i = 0; i < 16; i++, p++)
		if (!isxdigit((unsigned char)*p))
			fail_msg("Message-ID random part: %.60s", line);
	if (*p++ != '@' || strncmp(p, host, hl) != 0 || strncmp(p + hl, ">\n", 2) != 0)
		fail_msg("Message-ID host: %.80s", line);
	if (strncmp(line + 13, "20231114231320", 14) != 0)
		fail_msg("Message-ID stamp is not the UTC time of now: %.60s", line);
	return (size_t)(p + hl + 2 - line);
}

struct name_case {
	const char *label;
	const char *line;	/* one line, its LF excluded */
	size_t name;		/* header_field_name */
	const char *is;		/* a name header_field_is must match, or NULL */
	const char *isnt;	/* one it must not match, or NULL */
	const char *bug;
};

static const struct name_case name_cases[] = {
	{ .label = "name: a field", .line = "Subject: hi", .name = 7,
	  .is = "subject", .isnt = "Subj" },
	{ .label = "name: an empty value", .line = "X-A:", .name = 3, .is = "X-A" },
	{ .label = "name: blanks before the colon (RFC 5322 4.5.3)",
	  .line = "Received \t: from a", .name = 8, .is = "RECEIVED" },
	{ .label = "name: a longer name is another field",
	  .line = "Received-SPF: pass", .name = 12, .is = "Received-SPF",
	  .isnt = "Received" },
	{ .label = "name: a continuation line", .line = " folded: no", .name = 0,
	  .isnt = "folded" },
	{ .label = "name: body text", .line = "hello world", .name = 0 },
	{ .label = "name: a blank inside the name", .line = "Sub ject: x", .name = 0,
	  .isnt = "Sub" },
	{ .label = "name: a colon first", .line = ": x", .name = 0 },
	{ .label = "name: the empty line", .line = "", .name = 0, .isnt = "" },
	{ .label = "name: no colon", .line = "Subject", .name = 0, .isnt = "Subject" },
	{ .label = "name: a control octet", .line = "Sub\x01ject: x", .name = 0 },
	{ .label = "name: a non-ASCII octet", .line = "Sub\xc3\xa9: x", .name = 0 },
	{ .label = "name: a CR is not a blank", .line = "Date\r: x", .name = 0,
	  .isnt = "Date" },
};

static void
run_name_case(void **state)
{
	const struct name_case *c = *state;
	size_t n = strlen(c->line);

	UNIT_BUG(c);
	assert_int_equal(header_field_name(c->line, n), c->name);
	if (c->is)
		assert_true(header_field_is(c->line, n, c->is));
	if (c->isnt)
		assert_false(header_field_is(c->line, n, c->isnt));
	/* only the n octets given count: the colon past them is not seen */
	if (c->name > 0)
		assert_int_equal(header_field_name(c->line, c->name), 0);
}

static void
run_fix_case(void **state)
{
	const struct fix_case *row = *state;
	size_t len = row->len ? row->len : strlen(row->in), outlen = 0, off = 0;
	const char *rest = row->rest ? row->rest : row->in;
	size_t restlen = row->rest ? strlen(row->rest) : len;
	const char *host = row->host ? row->host : HOST;
	const char *date = row->date ? row->date : DATE_UTC;
	char *out;

	UNIT_BUG(row);
	set_tz(row->tz ? row->tz : "UTC0");
	out = queue_fix_headers(row->in, len, host, NOW, &outlen);
	set_tz("UTC0");
	assert_non_null(out);
	if (row->add_id)
		off += check_msgid(out, host[0] ? host : "localhost");
	if (row->add_date) {
		if (outlen - off < strlen(date) ||
		    strncmp(out + off, date, strlen(date)) != 0)
			fail_msg("wanted %s got %.60s", date, out + off);
		off += strlen(date);
	}
	if (outlen - off != restlen || memcmp(out + off, rest, restlen) != 0)
		fail_msg("after the added lines:\n got  [%.*s]\n want [%.*s]",
		    (int)(outlen - off), out + off, (int)restlen, rest);
	assert_int_equal(out[outlen], '\0');
	free(out);
}

/* two messages get two Message-IDs */
static void
test_msgid_unique(void **state)
{
	size_t l1, l2;
	char *a = queue_fix_headers("", 0, HOST, NOW, &l1);
	char *b = queue_fix_headers("", 0, HOST, NOW, &l2);

	(void)state;
	check_msgid(a, HOST);
	check_msgid(b, HOST);
	assert_int_equal(l1, l2);
	if (strncmp(a, b, strchr(a, '\n') - a) == 0)
		fail_msg("the same Message-ID twice: %s", a);
	free(a);
	free(b);
}

/* the output is the input plus the added lines: a large message */
static void
test_large_body(void **state)
{
	size_t n = 1 << 20, outlen;
	char *in = malloc(n), *out;

	(void)state;
	assert_non_null(in);
	memcpy(in, "Date: x\nMessage-ID: <y@z>\n\n", 28);
	for (size_t i = 28; i < n; i++)
		in[i] = (i % 80 == 79) ? '\n' : 'a' + (char)(i % 26);
	out = queue_fix_headers(in, n, HOST, NOW, &outlen);
	assert_int_equal(outlen, n);
	assert_memory_equal(out, in, n);
	free(out);
	free(in);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(fix_cases) + nitems(name_cases) + 2];
	size_t n = 0;

	set_tz("UTC0");
	UNIT_ROWS(tests, n, run_fix_case, fix_cases);
	UNIT_ROWS(tests, n, run_name_case, name_cases);
	UNIT_TEST(tests, n, test_msgid_unique);
	UNIT_TEST(tests, n, test_large_body);
	UNIT_RUN(tests, n);
}
