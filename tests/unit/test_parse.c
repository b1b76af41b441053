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
	bool dsn;		/* DSN is offered (the submission roles) */
	enum dsn_ret ret;
	const char *envid;	/* NULL: "" */
	const char *bug;
};

#define R_BAD_RET	"501 5.5.4 Bad RET parameter"
#define R_BAD_ENVID	"501 5.5.4 Bad ENVID parameter"
#define R_BAD_NOTIFY	"501 5.5.4 Bad NOTIFY parameter"
#define R_BAD_ORCPT	"501 5.5.4 Bad ORCPT parameter"
/* X100: an ENVID of the most octets; "rfc822;" X490 "@eo": an ORCPT's */
#define X10	"xxxxxxxxxx"
#define X100	X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X490	X100 X100 X100 X100 X10 X10 X10 X10 X10 X10 X10 X10 X10

static const struct mail_case mail_cases[] = {
	/* RFC 3461 4.3, 4.4: the submission roles only */
	{ .label = "MAIL: RET=FULL", .in = "FROM:<a@example.org> RET=FULL",
	  .dsn = true, .ret = DSN_RET_FULL, .local = "a", .domain = "example.org" },
	{ .label = "MAIL: ret=hdrs", .in = "FROM:<a@example.org> ret=hdrs",
	  .dsn = true, .ret = DSN_RET_HDRS, .local = "a", .domain = "example.org" },
	{ .label = "MAIL: ENVID xtext decoded",
	  .in = "FROM:<a@example.org> ENVID=QQ+2B314+3Dx+20y RET=HDRS", .dsn = true,
	  .ret = DSN_RET_HDRS, .envid = "QQ+314=x y", .local = "a",
	  .domain = "example.org" },
	{ .label = "MAIL: ENVID of 100 octets", .in = "FROM:<a@example.org> ENVID=" X100,
	  .dsn = true, .envid = X100, .local = "a", .domain = "example.org" },
	{ .label = "MAIL: ENVID of 101 octets", .in = "FROM:<a@example.org> ENVID=" X100 "y",
	  .dsn = true, .reply = R_BAD_ENVID },
	{ .label = "MAIL: ENVID counted encoded", .in = "FROM:<a@example.org> ENVID="
	  X10 X10 X10 X10 X10 X10 X10 X10 X10 "+2B+2B+2B+2B", .dsn = true,
	  .reply = R_BAD_ENVID },
	{ .label = "MAIL: ENVID empty", .in = "FROM:<a@example.org> ENVID=", .dsn = true,
	  .reply = R_BAD_ENVID },
	{ .label = "MAIL: ENVID raw '='", .in = "FROM:<a@example.org> ENVID=a=b",
	  .dsn = true, .reply = R_BAD_ENVID },
	{ .label = "MAIL: ENVID bad hexchar", .in = "FROM:<a@example.org> ENVID=a+4",
	  .dsn = true, .reply = R_BAD_ENVID },
	{ .label = "MAIL: ENVID decodes to a control", .in = "FROM:<a@example.org> ENVID=a+0A",
	  .dsn = true, .reply = R_BAD_ENVID },
	{ .label = "MAIL: ENVID twice", .in = "FROM:<a@example.org> ENVID=a ENVID=b",
	  .dsn = true, .reply = R_BAD_ENVID },
	{ .label = "MAIL: RET twice", .in = "FROM:<a@example.org> RET=FULL RET=HDRS",
	  .dsn = true, .reply = R_BAD_RET },
	{ .label = "MAIL: RET=ALL", .in = "FROM:<a@example.org> RET=ALL",
	  .dsn = true, .reply = R_BAD_RET },
	{ .label = "MAIL: RET= without DSN (mx)", .in = "FROM:<a@example.org> RET=FULL",
	  .reply = R_UNSUPPORTED },
	{ .label = "MAIL: ENVID= without DSN (mx)", .in = "FROM:<a@example.org> ENVID=x",
	  .reply = R_UNSUPPORTED },
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
	reply = smtpd_parse_mail(arg, &m, c->max ? c->max : MAX_SIZE, c->auth,
	    c->dsn);
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
	assert_int_equal(m.ret, c->ret);
	assert_string_equal(m.envid, c->envid ? c->envid : "");
}

/* RCPT TO: */

struct rcpt_case {
	const char *label;
	const char *in;
	const char *reply;
	const char *local, *domain;
	bool dsn;		/* DSN is offered (the submission roles) */
	unsigned notify;
	const char *orcpt;	/* NULL: "" */
	const char *bug;
};

static const struct rcpt_case rcpt_cases[] = {
	/* RFC 3461 4.1, 4.2: the submission roles only */
	{ .label = "RCPT: NOTIFY=NEVER", .in = "TO:<b@example.org> NOTIFY=NEVER",
	  .dsn = true, .notify = DSN_NOTIFY_NEVER, .local = "b", .domain = "example.org" },
	{ .label = "RCPT: NOTIFY list, any case",
	  .in = "TO:<b@example.org> notify=delay,Success,FAILURE", .dsn = true,
	  .notify = DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE,
	  .local = "b", .domain = "example.org" },
	{ .label = "RCPT: no parameter with DSN", .in = "TO:<b@example.org>",
	  .dsn = true, .local = "b", .domain = "example.org" },
	{ .label = "RCPT: ORCPT decoded", .in = "TO:<b@example.org> NOTIFY=SUCCESS "
	  "ORCPT=rfc822;b+2Bx@example.org", .dsn = true, .notify = DSN_NOTIFY_SUCCESS,
	  .orcpt = "rfc822;b+x@example.org", .local = "b", .domain = "example.org" },
	{ .label = "RCPT: ORCPT of 500 octets", .in = "TO:<b@example.org> ORCPT=rfc822;"
	  X490 "@eo", .dsn = true, .orcpt = "rfc822;" X490 "@eo", .local = "b",
	  .domain = "example.org" },
	{ .label = "RCPT: ORCPT of 501 octets", .in = "TO:<b@example.org> ORCPT=rfc822;"
	  X490 "@e.o", .dsn = true, .reply = R_BAD_ORCPT },
	{ .label = "RCPT: ORCPT without a type", .in = "TO:<b@example.org> ORCPT=b@example.org",
	  .dsn = true, .reply = R_BAD_ORCPT },
	{ .label = "RCPT: ORCPT empty type", .in = "TO:<b@example.org> ORCPT=;b@example.org",
	  .dsn = true, .reply = R_BAD_ORCPT },
	{ .label = "RCPT: ORCPT empty address", .in = "TO:<b@example.org> ORCPT=rfc822;",
	  .dsn = true, .reply = R_BAD_ORCPT },
	{ .label = "RCPT: ORCPT bad xtext", .in = "TO:<b@example.org> ORCPT=rfc822;b+zz",
	  .dsn = true, .reply = R_BAD_ORCPT },
	{ .label = "RCPT: ORCPT twice", .in = "TO:<b@example.org> ORCPT=rfc822;b "
	  "ORCPT=rfc822;c", .dsn = true, .reply = R_BAD_ORCPT },
	{ .label = "RCPT: NOTIFY=NEVER,SUCCESS", .in = "TO:<b@example.org> NOTIFY=NEVER,SUCCESS",
	  .dsn = true, .reply = R_BAD_NOTIFY },
	{ .label = "RCPT: NOTIFY twice the same", .in = "TO:<b@example.org> NOTIFY=DELAY,DELAY",
	  .dsn = true, .reply = R_BAD_NOTIFY },
	{ .label = "RCPT: NOTIFY empty", .in = "TO:<b@example.org> NOTIFY=",
	  .dsn = true, .reply = R_BAD_NOTIFY },
	{ .label = "RCPT: NOTIFY trailing comma", .in = "TO:<b@example.org> NOTIFY=DELAY,",
	  .dsn = true, .reply = R_BAD_NOTIFY },
	{ .label = "RCPT: NOTIFY= twice", .in = "TO:<b@example.org> NOTIFY=DELAY NOTIFY=SUCCESS",
	  .dsn = true, .reply = R_BAD_NOTIFY },
	{ .label = "RCPT: unknown parameter with DSN", .in = "TO:<b@example.org> FOO=1",
	  .dsn = true, .reply = R_UNSUPPORTED },
	{ .label = "RCPT: junk after '>' with DSN", .in = "TO:<b@example.org>x",
	  .dsn = true, .reply = R_BAD_RCPT },
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
	struct smtpd_rcpt_dsn d;
	char *arg;
	const char *reply;

	UNIT_BUG(c);
	arg = strdup(c->in);
	assert_non_null(arg);
	memset(&a, 0x5a, sizeof(a));
	memset(&d, 0x5a, sizeof(d));
	reply = smtpd_parse_rcpt(arg, &a, c->dsn ? &d : NULL);
	free(arg);
	if (c->reply == NULL) {
		if (reply != NULL)
			fail_msg("got reply \"%s\", want none", reply);
		assert_string_equal(a.local, c->local);
		assert_string_equal(a.domain, c->domain);
		if (c->dsn) {
			assert_int_equal(d.notify, c->notify);
			assert_string_equal(d.orcpt, c->orcpt ? c->orcpt : "");
		}
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
