/*
 * test_parse.c - the arguments of MAIL, RCPT and HELO/EHLO
 * (smtpd/parse.c): every reply each parser can give, and what it fills in.
 */
#include <string.h>

#include "common/limits.h"
#include "smtpd/smtpd.h"
#include "unit.h"

#define MAX_SIZE 1000000ULL

/* the replies, once */
#define R_MAIL_SYNTAX	"501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPT_SYNTAX	"501 5.5.4 Syntax: RCPT TO:<address>"
#define R_BAD_SENDER	"501 5.1.7 Bad sender address syntax"
#define R_LONG_SENDER	"501 5.1.7 Sender address too long"
#define R_BAD_RCPT	"501 5.1.3 Bad recipient address syntax"
#define R_LONG_RCPT	"501 5.1.3 Recipient address too long"
#define R_BAD_SIZE	"501 5.5.4 Bad SIZE parameter"
#define R_TOO_BIG	"552 5.3.4 Message size exceeds fixed maximum message size"
#define R_UNSUPPORTED	"555 5.5.4 Unsupported parameter"
#define R_NEED_UTF8	"553 5.6.7 Non-ASCII sender address requires SMTPUTF8"

/* a domain of 251 octets: with a local part of 5 or more, too long */
#define LONG_DOMAIN							\
	"dddddddddddddddddddddddddddddddddddddddddddddddddd."		\
	"dddddddddddddddddddddddddddddddddddddddddddddddddd."		\
	"dddddddddddddddddddddddddddddddddddddddddddddddddd."		\
	"dddddddddddddddddddddddddddddddddddddddddddddddddd."		\
	"ddddddddddddddddddddddddddddddddddddddddddddddd"

/* MAIL FROM: */

struct mail_case {
	const char *label;
	const char *in;		/* the argument after "MAIL " */
	uint64_t max;		/* 0: MAX_SIZE */
	const char *reply;	/* NULL: accepted */
	const char *local, *domain;
	bool null_sender, smtputf8, body8bit;
	uint64_t size;
	bool auth;		/* AUTH is offered (the submission roles) */
	const char *bug;
};

static const struct mail_case mail_cases[] = {
	{ .label = "MAIL: plain", .in = "FROM:<alice@example.org>",
	  .local = "alice", .domain = "example.org" },
	{ .label = "MAIL: lower-case keyword", .in = "from:<alice@example.org>",
	  .local = "alice", .domain = "example.org" },
	{ .label = "MAIL: mixed-case keyword", .in = "From:<alice@example.org>",
	  .local = "alice", .domain = "example.org" },
	{ .label = "MAIL: space after the colon", .in = "FROM: <alice@example.org>",
	  .local = "alice", .domain = "example.org" },
	{ .label = "MAIL: spaces after the colon", .in = "FROM:   <alice@example.org>",
	  .local = "alice", .domain = "example.org" },
	{ .label = "MAIL: trailing space", .in = "FROM:<alice@example.org> ",
	  .local = "alice", .domain = "example.org" },
	{ .label = "MAIL: null sender", .in = "FROM:<>", .null_sender = true,
	  .local = "", .domain = "" },
	{ .label = "MAIL: null sender with SIZE", .in = "FROM:<> SIZE=100",
	  .null_sender = true, .size = 100 },
	{ .label = "MAIL: source route ignored", .in = "FROM:<@relay.example:alice@example.org>",
	  .local = "alice", .domain = "example.org" },
	{ .label = "MAIL: quoted local part", .in = "FROM:<\"john doe\"@example.org>",
	  .local = "\"john doe\"", .domain = "example.org" },
	/* 501 5.5.4: no FROM:<...> */
	{ .label = "MAIL: empty argument", .in = "", .reply = R_MAIL_SYNTAX },
	{ .label = "MAIL: FROM: alone", .in = "FROM:", .reply = R_MAIL_SYNTAX },
	{ .label = "MAIL: no colon", .in = "FROM <alice@example.org>", .reply = R_MAIL_SYNTAX },
	{ .label = "MAIL: no brackets", .in = "FROM:alice@example.org", .reply = R_MAIL_SYNTAX },
	{ .label = "MAIL: TO: instead of FROM:", .in = "TO:<alice@example.org>",
	  .reply = R_MAIL_SYNTAX },
	{ .label = "MAIL: space before the colon", .in = "FROM :<alice@example.org>",
	  .reply = R_MAIL_SYNTAX },
	{ .label = "MAIL: TAB after the colon", .in = "FROM:\t<alice@example.org>",
	  .reply = R_MAIL_SYNTAX },
	/* 501 5.1.7: the address */
	{ .label = "MAIL: bad domain", .in = "FROM:<alice@example..org>", .reply = R_BAD_SENDER },
	{ .label = "MAIL: trailing dot", .in = "FROM:<alice@example.org.>", .reply = R_BAD_SENDER },
	{ .label = "MAIL: no '>'", .in = "FROM:<alice@example.org", .reply = R_BAD_SENDER },
	{ .label = "MAIL: junk after '>'", .in = "FROM:<alice@example.org>x",
	  .reply = R_BAD_SENDER },
	{ .label = "MAIL: <postmaster> is no sender", .in = "FROM:<postmaster>",
	  .reply = R_BAD_SENDER },
	{ .label = "MAIL: invalid UTF-8", .in = "FROM:<j\xc3\xc3@example.org> SMTPUTF8",
	  .reply = R_BAD_SENDER },
	{ .label = "MAIL: address too long", .in = "FROM:<alice@" LONG_DOMAIN ">",
	  .reply = R_LONG_SENDER },
	/* SIZE (RFC 1870) */
	{ .label = "MAIL: SIZE", .in = "FROM:<a@example.org> SIZE=12345",
	  .local = "a", .domain = "example.org", .size = 12345 },
	{ .label = "MAIL: size= lower case", .in = "FROM:<a@example.org> size=12345",
	  .size = 12345 },
	{ .label = "MAIL: SIZE=0", .in = "FROM:<a@example.org> SIZE=0", .size = 0 },
	{ .label = "MAIL: SIZE equal to the maximum", .in = "FROM:<a@example.org> SIZE=1000000",
	  .size = 1000000 },
	{ .label = "MAIL: SIZE one over the maximum", .in = "FROM:<a@example.org> SIZE=1000001",
	  .reply = R_TOO_BIG },
	{ .label = "MAIL: SIZE over a small maximum", .in = "FROM:<a@example.org> SIZE=2048",
	  .max = 2047, .reply = R_TOO_BIG },
	{ .label = "MAIL: SIZE = UINT64_MAX", .in = "FROM:<a@example.org> SIZE=18446744073709551615",
	  .reply = R_TOO_BIG },
	{ .label = "MAIL: SIZE over UINT64_MAX", .in = "FROM:<a@example.org> SIZE=18446744073709551616",
	  .reply = R_BAD_SIZE },
	{ .label = "MAIL: SIZE empty", .in = "FROM:<a@example.org> SIZE=", .reply = R_BAD_SIZE },
	{ .label = "MAIL: SIZE with a space", .in = "FROM:<a@example.org> SIZE= 10",
	  .reply = R_BAD_SIZE },
	{ .label = "MAIL: SIZE negative", .in = "FROM:<a@example.org> SIZE=-1", .reply = R_BAD_SIZE },
	{ .label = "MAIL: SIZE with '+'", .in = "FROM:<a@example.org> SIZE=+1", .reply = R_BAD_SIZE },
	{ .label = "MAIL: SIZE with a suffix", .in = "FROM:<a@example.org> SIZE=10k",
	  .reply = R_BAD_SIZE },
	{ .label = "MAIL: SIZE not a number", .in = "FROM:<a@example.org> SIZE=abc",
	  .reply = R_BAD_SIZE },
	{ .label = "MAIL: SIZE of 21 digits", .in = "FROM:<a@example.org> SIZE=000000000000000000001",
	  .reply = R_BAD_SIZE },
	/* BODY (RFC 6152) and SMTPUTF8 (RFC 6531) */
	{ .label = "MAIL: BODY=8BITMIME", .in = "FROM:<a@example.org> BODY=8BITMIME",
	  .body8bit = true },
	{ .label = "MAIL: body=8bitmime lower case", .in = "FROM:<a@example.org> body=8bitmime",
	  .body8bit = true },
	{ .label = "MAIL: BODY=7BIT", .in = "FROM:<a@example.org> BODY=7BIT" },
	{ .label = "MAIL: BODY=BINARYMIME", .in = "FROM:<a@example.org> BODY=BINARYMIME",
	  .reply = R_UNSUPPORTED },
	{ .label = "MAIL: SMTPUTF8", .in = "FROM:<a@example.org> SMTPUTF8", .smtputf8 = true },
	{ .label = "MAIL: smtputf8 lower case", .in = "FROM:<a@example.org> smtputf8",
	  .smtputf8 = true },
	{ .label = "MAIL: everything", .in = "from:<a@example.org> size=10 body=8bitmime smtputf8",
	  .local = "a", .domain = "example.org", .size = 10, .body8bit = true, .smtputf8 = true },
	{ .label = "MAIL: two spaces between parameters",
	  .in = "FROM:<a@example.org>  SIZE=10  SMTPUTF8", .size = 10, .smtputf8 = true },
	/* 555 5.5.4 */
	{ .label = "MAIL: unknown parameter", .in = "FROM:<a@example.org> FOO=BAR",
	  .reply = R_UNSUPPORTED },
	{ .label = "MAIL: AUTH= (no AUTH on port 25)", .in = "FROM:<a@example.org> AUTH=<>",
	  .reply = R_UNSUPPORTED },
	{ .label = "MAIL: AUTH= where AUTH is offered (RFC 4954 5)", .auth = true,
	  .in = "FROM:<a@example.org> AUTH=<>", .local = "a", .domain = "example.org" },
	{ .label = "MAIL: RET= (no DSN)", .in = "FROM:<a@example.org> RET=HDRS",
	  .reply = R_UNSUPPORTED },
	{ .label = "MAIL: SMTPUTF8=yes", .in = "FROM:<a@example.org> SMTPUTF8=yes",
	  .reply = R_UNSUPPORTED },
	{ .label = "MAIL: unknown parameter after good ones",
	  .in = "FROM:<a@example.org> SIZE=10 BODY=8BITMIME X", .reply = R_UNSUPPORTED },
	/* 553 5.6.7: a UTF-8 sender needs SMTPUTF8 */
	{ .label = "MAIL: UTF-8 local part without SMTPUTF8", .in = "FROM:<j\xc3\xb6rg@example.org>",
	  .reply = R_NEED_UTF8 },
	{ .label = "MAIL: UTF-8 domain without SMTPUTF8", .in = "FROM:<u@b\xc3\xbc" "cher.example>",
	  .reply = R_NEED_UTF8 },
	{ .label = "MAIL: UTF-8 without SMTPUTF8 but with BODY",
	  .in = "FROM:<j\xc3\xb6rg@example.org> BODY=8BITMIME", .reply = R_NEED_UTF8 },
	{ .label = "MAIL: UTF-8 local part with SMTPUTF8",
	  .in = "FROM:<j\xc3\xb6rg@example.org> SMTPUTF8",
	  .local = "j\xc3\xb6rg", .domain = "example.org", .smtputf8 = true },
	{ .label = "MAIL: UTF-8 domain with SMTPUTF8",
	  .in = "FROM:<u@b\xc3\xbc" "cher.example> SMTPUTF8",
	  .local = "u", .domain = "b\xc3\xbc" "cher.example", .smtputf8 = true },
};

static void
run_mail_case(void **state)
{
	const struct mail_case *c = *state;
	struct smtpd_mail_args m;
	char *arg;
	const char *reply;

	UNIT_BUG(c);
	arg = strdup(c->in);	/* the parser may write into its argument */
	assert_non_null(arg);
	memset(&m, 0x5a, sizeof(m));
	reply = smtpd_parse_mail(arg, &m, c->max ? c->max : MAX_SIZE, c->auth);
	free(arg);
	if (c->reply == NULL) {
		if (reply != NULL)
			fail_msg("got reply \"%s\", want none", reply);
	} else {
		if (reply == NULL)
			fail_msg("got no reply, want \"%s\"", c->reply);
		assert_string_equal(reply, c->reply);
		return;
	}
	if (c->local)
		assert_string_equal(m.addr.local, c->local);
	if (c->domain)
		assert_string_equal(m.addr.domain, c->domain);
	assert_int_equal(m.null_sender, c->null_sender);
	assert_int_equal(m.smtputf8, c->smtputf8);
	assert_int_equal(m.body8bit, c->body8bit);
	assert_int_equal(m.size, c->size);
}

/* RCPT TO: */

struct rcpt_case {
	const char *label;
	const char *in;
	const char *reply;
	const char *local, *domain;
	const char *bug;
};

static const struct rcpt_case rcpt_cases[] = {
	{ .label = "RCPT: plain", .in = "TO:<bob@example.org>",
	  .local = "bob", .domain = "example.org" },
	{ .label = "RCPT: lower-case keyword", .in = "to:<bob@example.org>",
	  .local = "bob", .domain = "example.org" },
	{ .label = "RCPT: space after the colon", .in = "TO: <bob@example.org>",
	  .local = "bob", .domain = "example.org" },
	{ .label = "RCPT: <postmaster>", .in = "TO:<postmaster>",
	  .local = "postmaster", .domain = "" },
	{ .label = "RCPT: <Postmaster>", .in = "TO:<Postmaster>",
	  .local = "Postmaster", .domain = "" },
	{ .label = "RCPT: source route ignored", .in = "TO:<@a.example,@b.example:bob@example.org>",
	  .local = "bob", .domain = "example.org" },
	{ .label = "RCPT: address literal", .in = "TO:<bob@[192.0.2.1]>",
	  .local = "bob", .domain = "[192.0.2.1]" },
	{ .label = "RCPT: UTF-8 left to the caller", .in = "TO:<j\xc3\xb6rg@example.org>",
	  .local = "j\xc3\xb6rg", .domain = "example.org" },
	{ .label = "RCPT: percent hack is just a local part",
	  .in = "TO:<u%remote.example@example.org>",
	  .local = "u%remote.example", .domain = "example.org" },
	/* 501 5.5.4 */
	{ .label = "RCPT: empty argument", .in = "", .reply = R_RCPT_SYNTAX },
	{ .label = "RCPT: TO: alone", .in = "TO:", .reply = R_RCPT_SYNTAX },
	{ .label = "RCPT: no brackets", .in = "TO:bob@example.org", .reply = R_RCPT_SYNTAX },
	{ .label = "RCPT: FROM: instead of TO:", .in = "FROM:<bob@example.org>",
	  .reply = R_RCPT_SYNTAX },
	{ .label = "RCPT: no colon", .in = "TO <bob@example.org>", .reply = R_RCPT_SYNTAX },
	/* 501 5.1.3 */
	{ .label = "RCPT: null path", .in = "TO:<>", .reply = R_BAD_RCPT },
	{ .label = "RCPT: <abuse> without a domain", .in = "TO:<abuse>", .reply = R_BAD_RCPT },
	{ .label = "RCPT: bad domain", .in = "TO:<bob@-example.org>", .reply = R_BAD_RCPT },
	{ .label = "RCPT: no '>'", .in = "TO:<bob@example.org", .reply = R_BAD_RCPT },
	{ .label = "RCPT: junk after '>'", .in = "TO:<bob@example.org>x", .reply = R_BAD_RCPT },
	{ .label = "RCPT: invalid UTF-8", .in = "TO:<j\xc3\xc3@example.org>", .reply = R_BAD_RCPT },
	{ .label = "RCPT: address too long", .in = "TO:<robert.smith@" LONG_DOMAIN ">",
	  .reply = R_LONG_RCPT },
	/* 555 5.5.4: no RCPT parameter is advertised */
	{ .label = "RCPT: NOTIFY= (no DSN)", .in = "TO:<bob@example.org> NOTIFY=NEVER",
	  .reply = R_UNSUPPORTED },
	{ .label = "RCPT: ORCPT= (no DSN)", .in = "TO:<bob@example.org> ORCPT=rfc822;bob@example.org",
	  .reply = R_UNSUPPORTED },
};

static void
run_rcpt_case(void **state)
{
	const struct rcpt_case *c = *state;
	struct mailaddr a;
	char *arg;
	const char *reply;

	UNIT_BUG(c);
	arg = strdup(c->in);
	assert_non_null(arg);
	memset(&a, 0x5a, sizeof(a));
	reply = smtpd_parse_rcpt(arg, &a);
	free(arg);
	if (c->reply == NULL) {
		if (reply != NULL)
			fail_msg("got reply \"%s\", want none", reply);
		assert_string_equal(a.local, c->local);
		assert_string_equal(a.domain, c->domain);
	} else {
		if (reply == NULL)
			fail_msg("got no reply, want \"%s\"", c->reply);
		assert_string_equal(reply, c->reply);
	}
}

/* HELO / EHLO */

struct helo_case {
	const char *label;
	const char *in;		/* NULL: made, gen octets of 'h' */
	size_t gen;
	size_t size;		/* 0: HELO_MAX + 1 */
	bool want;
	const char *out;	/* NULL: the same as in */
	const char *bug;
};

static const struct helo_case helo_cases[] = {
	{ .label = "HELO: host name", .in = "mx.example.org", .want = true },
	{ .label = "HELO: first word only", .in = "mx.example.org is here", .want = true,
	  .out = "mx.example.org" },
	{ .label = "HELO: address literal", .in = "[192.0.2.1]", .want = true },
	{ .label = "HELO: IPv6 literal", .in = "[IPv6:2001:db8::1]", .want = true },
	{ .label = "HELO: anything printable", .in = "not_a_valid-name!", .want = true },
	{ .label = "HELO: empty", .in = "", .want = false },
	{ .label = "HELO: leading space", .in = " mx.example.org", .want = false },
	{ .label = "HELO: TAB inside", .in = "mx\texample.org", .want = false },
	{ .label = "HELO: CR inside", .in = "mx\rexample.org", .want = false },
	{ .label = "HELO: DEL", .in = "mx\x7f", .want = false },
	{ .label = "HELO: non-ASCII", .in = "b\xc3\xbc" "cher.example", .want = false },
	{ .label = "HELO: 255 octets", .gen = 255, .want = true },
	{ .label = "HELO: 256 octets", .gen = 256, .want = false },
	{ .label = "HELO: fits the buffer exactly", .in = "abc", .size = 4, .want = true },
	{ .label = "HELO: buffer too small", .in = "abc", .size = 3, .want = false },
};

static void
run_helo_case(void **state)
{
	const struct helo_case *c = *state;
	char out[HELO_MAX + 1], *made = NULL;
	const char *in;

	UNIT_BUG(c);
	if (c->in)
		in = c->in;
	else {
		made = malloc(c->gen + 1);
		assert_non_null(made);
		memset(made, 'h', c->gen);
		made[c->gen] = '\0';
		in = made;
	}
	assert_int_equal(smtpd_parse_helo(in, out, c->size ? c->size : sizeof(out)), c->want);
	if (c->want)
		assert_string_equal(out, c->out ? c->out : in);
	free(made);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(mail_cases) + nitems(rcpt_cases) + nitems(helo_cases)];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_mail_case, mail_cases);
	UNIT_ROWS(tests, n, run_rcpt_case, rcpt_cases);
	UNIT_ROWS(tests, n, run_helo_case, helo_cases);
	UNIT_RUN(tests, n);
}
