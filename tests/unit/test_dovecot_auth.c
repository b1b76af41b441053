/*
 * test_dovecot_auth.c - the wire part of Dovecot's auth protocol
 * (submission/dovecot_auth.c): server lines as Dovecot 2.3 sends them
 * and the broken ones a hostile or confused peer could send, and the
 * AUTH/CONT lines we write, which must refuse a value that would add a
 * field or a line.
 */
#include <string.h>

#include "submission/dovecot_auth.h"
#include "unit.h"

struct parse_case {
	const char *label;
	const char *line;
	enum dav_kind want;
	unsigned long id;
	const char *arg;
	const char *user;
	bool temp;
	const char *bug;
};

static const struct parse_case parse_cases[] = {
	{ .label = "parse: VERSION 1.2", .line = "VERSION\t1\t2", .want = DAV_VERSION },
	{ .label = "parse: VERSION 2 refused", .line = "VERSION\t2\t0", .want = DAV_BAD },
	{ .label = "parse: VERSION without minor", .line = "VERSION\t1", .want = DAV_BAD },
	{ .label = "parse: MECH with flags", .line = "MECH\tPLAIN\tplaintext", .want = DAV_MECH, .arg = "PLAIN" },
	{ .label = "parse: MECH empty name", .line = "MECH\t", .want = DAV_BAD },
	{ .label = "parse: SPID", .line = "SPID\t4242", .want = DAV_SPID },
	{ .label = "parse: CUID", .line = "CUID\t7", .want = DAV_CUID },
	{ .label = "parse: COOKIE", .line = "COOKIE\t0123abcd", .want = DAV_COOKIE },
	{ .label = "parse: DONE", .line = "DONE", .want = DAV_DONE },
	{ .label = "parse: OK with user", .line = "OK\t1\tuser=alice@example.org", .want = DAV_OK, .id = 1, .user = "alice@example.org" },
	{ .label = "parse: OK temp ignored", .line = "OK\t3\ttemp", .want = DAV_OK, .id = 3 },
	{ .label = "parse: CONT with challenge", .line = "CONT\t2\tVXNlcm5hbWU6", .want = DAV_CONT, .id = 2, .arg = "VXNlcm5hbWU6" },
	{ .label = "parse: CONT empty challenge", .line = "CONT\t2\t", .want = DAV_CONT, .id = 2, .arg = "" },
	{ .label = "parse: CONT without challenge", .line = "CONT\t2", .want = DAV_BAD },
	{ .label = "parse: CONT extra field", .line = "CONT\t2\tabc\tdef", .want = DAV_BAD },
	{ .label = "parse: FAIL plain", .line = "FAIL\t5\tuser=bob", .want = DAV_FAIL, .id = 5, .user = "bob" },
	{ .label = "parse: FAIL temp", .line = "FAIL\t6\treason=db down\ttemp", .want = DAV_FAIL, .id = 6, .temp = true },
	{ .label = "parse: FAIL bad id", .line = "FAIL\tx\ttemp", .want = DAV_BAD },
	{ .label = "parse: FAIL no id", .line = "FAIL", .want = DAV_BAD },
	{ .label = "parse: id too large", .line = "OK\t99999999999", .want = DAV_BAD },
	{ .label = "parse: unknown line ignored", .line = "NOTICE\tsomething", .want = DAV_OTHER },
	{ .label = "parse: empty line", .line = "", .want = DAV_BAD },
	{ .label = "parse: too many fields", .line = "OK\t1\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta\ta", .want = DAV_BAD },
};

static void
test_parse(void **state)
{
	const struct parse_case *c = *state;
	char buf[256];
	struct dav_line l;
	size_t len = strlen(c->line);

	UNIT_BUG(c);
	memcpy(buf, c->line, len + 1);
	assert_int_equal(dav_parse(buf, len, &l), c->want);
	assert_int_equal(l.kind, c->want);
	if (c->want == DAV_BAD)
		return;
	assert_int_equal(l.id, c->id);
	assert_int_equal(l.temp, c->temp);
	if (c->arg != NULL)
		assert_string_equal(l.arg, c->arg);
	if (c->user != NULL)
		assert_string_equal(l.user, c->user);
	else
		assert_null(l.user);
}

static void
test_parse_bounds(void **state)
{
	static char big[DAV_LINE_MAX + 2];
	struct dav_line l;
	char nul[] = "OK\t1\0x";

	(void)state;
	memset(big, 'A', sizeof(big));
	assert_int_equal(dav_parse(big, DAV_LINE_MAX + 1, &l), DAV_BAD);
	assert_int_equal(dav_parse(nul, sizeof(nul) - 1, &l), DAV_BAD);
}

static void
test_format(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(dav_format_auth(out, sizeof(out), 1, "PLAIN", true, "AGEAYg=="), 48);
	assert_string_equal(out, "AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=AGEAYg==\n");
	assert_true(dav_format_auth(out, sizeof(out), 2, "LOGIN", false, NULL) > 0);
	assert_string_equal(out, "AUTH\t2\tLOGIN\tservice=smtp\n");
	assert_true(dav_format_cont(out, sizeof(out), 2, "YWxpY2U=") > 0);
	assert_string_equal(out, "CONT\t2\tYWxpY2U=\n");
	/* no injected field or line, nothing that does not fit */
	assert_int_equal(dav_format_auth(out, sizeof(out), 3, "PLAIN", false, "x\tuser=root"), -1);
	assert_int_equal(dav_format_cont(out, sizeof(out), 3, "x\nAUTH\t9"), -1);
	assert_int_equal(dav_format_auth(out, sizeof(out), 3, "PL\rAIN", false, NULL), -1);
	assert_int_equal(dav_format_auth(out, sizeof(out), 3, "", false, NULL), -1);
	assert_int_equal(dav_format_auth(out, 10, 3, "PLAIN", false, NULL), -1);
}

/* what sasl_dovecot.c sends: the addresses and Dovecot's penalty off */
static void
test_format_from(void **state)
{
	char out[128], buf[64];
	struct dav_line l;

	(void)state;
	assert_true(dav_format_auth_from(out, sizeof(out), 7, "PLAIN", true,
	    "AGEAYg==", "127.0.0.1", "192.0.2.1", true) > 0);
	assert_string_equal(out, "AUTH\t7\tPLAIN\tservice=smtp\tsecured\t"
	    "no-penalty\tlip=127.0.0.1\trip=192.0.2.1\tresp=AGEAYg==\n");
	assert_true(dav_format_auth_from(out, sizeof(out), 8, "LOGIN", true,
	    NULL, NULL, "2001:db8::1", false) > 0);
	assert_string_equal(out, "AUTH\t8\tLOGIN\tservice=smtp\tsecured\t"
	    "rip=2001:db8::1\n");
	/* an address is a value too: no field of its own */
	assert_int_equal(dav_format_auth_from(out, sizeof(out), 9, "PLAIN", true,
	    NULL, "127.0.0.1\tuser=root", NULL, true), -1);
	/* MECH's private flag: a mechanism not to advertise */
	strcpy(buf, "MECH\tOTP\tprivate");
	assert_int_equal(dav_parse(buf, strlen(buf), &l), DAV_MECH);
	assert_true(l.private_mech);
	strcpy(buf, "MECH\tPLAIN\tplaintext");
	assert_int_equal(dav_parse(buf, strlen(buf), &l), DAV_MECH);
	assert_false(l.private_mech);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(parse_cases) + 3];
	size_t n = 0;

	UNIT_ROWS(tests, n, test_parse, parse_cases);
	UNIT_TEST(tests, n, test_parse_bounds);
	UNIT_TEST(tests, n, test_format);
	UNIT_TEST(tests, n, test_format_from);
	UNIT_RUN(tests, n);
}
