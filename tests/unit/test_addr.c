/*
 * test_addr.c - the mailbox parser (RFC 5321 4.1.2, RFC 6531 3.3) and the
 * table look-up keys (common/addr.c).
 */
#include <string.h>

#include "common/addr.h"
#include "common/limits.h"
#include "unit.h"

static const char *
status_name(enum addr_status st)
{
	switch (st) {
	case ADDR_OK:		return "ADDR_OK";
	case ADDR_NULL:		return "ADDR_NULL";
	case ADDR_SYNTAX:	return "ADDR_SYNTAX";
	case ADDR_TOOLONG:	return "ADDR_TOOLONG";
	case ADDR_NONASCII:	return "ADDR_NONASCII";
	}
	return "?";
}

#define assert_status(got, want) do {					\
	if ((got) != (want))						\
		fail_msg("status %s, want %s", status_name(got),	\
		    status_name(want));					\
} while (0)

/*
 * Long inputs are made, not written: "<" + local + "@" + domain + ">"
 * with a local part of gen_local 'l's and a domain of gen_domain octets
 * (labels of 49 'd's).  gen_quoted wraps the local part in quotes.
 */
struct gen {
	size_t local;
	size_t domain;
	bool quoted;
};

static char *
gen_path(const struct gen *g, bool brackets)
{
	size_t cap = g->local + g->domain + 16, o = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	if (brackets)
		s[o++] = '<';
	if (g->quoted)
		s[o++] = '"';
	memset(s + o, 'l', g->local);
	o += g->local;
	if (g->quoted)
		s[o++] = '"';
	s[o++] = '@';
	for (size_t i = 0; i < g->domain; i++)
		s[o++] = ((i + 1) % 50 == 0 && i + 1 != g->domain) ? '.' : 'd';
	if (brackets)
		s[o++] = '>';
	s[o] = '\0';
	return s;
}

/* addr_parse_path */

struct path_case {
	const char *label;
	const char *in;		/* NULL: made from gen */
	struct gen gen;
	int flags;
	enum addr_status want;
	const char *local;	/* on ADDR_OK */
	const char *domain;
	const char *rest;	/* what *sp points at afterwards (OK/NULL) */
	const char *bug;
};

#define UTF8 ADDR_F_UTF8
#define NODOM ADDR_F_NODOMAIN

static const struct path_case path_cases[] = {
	/* plain forms */
	{ .label = "path: plain", .in = "<alice@example.org>",
	  .want = ADDR_OK, .local = "alice", .domain = "example.org", .rest = "" },
	{ .label = "path: spelling kept", .in = "<Alice.Smith@Example.ORG>",
	  .want = ADDR_OK, .local = "Alice.Smith", .domain = "Example.ORG", .rest = "" },
	{ .label = "path: parameters left after '>'", .in = "<a@example.org> SIZE=10",
	  .want = ADDR_OK, .local = "a", .domain = "example.org", .rest = " SIZE=10" },
	{ .label = "path: every atext special",
	  .in = "<a!#$%&'*+-/=?^_`{|}~z@example.org>",
	  .want = ADDR_OK, .local = "a!#$%&'*+-/=?^_`{|}~z", .domain = "example.org", .rest = "" },
	{ .label = "path: single-label domain", .in = "<root@localhost>",
	  .want = ADDR_OK, .local = "root", .domain = "localhost", .rest = "" },
	{ .label = "path: digits-only labels", .in = "<u@123.example>",
	  .want = ADDR_OK, .local = "u", .domain = "123.example", .rest = "" },
	{ .label = "path: hyphen inside a label", .in = "<u@ex-am--ple.org>",
	  .want = ADDR_OK, .local = "u", .domain = "ex-am--ple.org", .rest = "" },
	/* the null path */
	{ .label = "path: <> is the null path", .in = "<>",
	  .want = ADDR_NULL, .rest = "" },
	{ .label = "path: <> with parameters", .in = "<> BODY=8BITMIME",
	  .want = ADDR_NULL, .rest = " BODY=8BITMIME" },
	/* quoted local parts */
	{ .label = "quoted: space kept quoted", .in = "<\"john doe\"@example.org>",
	  .want = ADDR_OK, .local = "\"john doe\"", .domain = "example.org", .rest = "" },
	{ .label = "quoted: dot-atom unquoted", .in = "<\"alice\"@example.org>",
	  .want = ADDR_OK, .local = "alice", .domain = "example.org", .rest = "" },
	{ .label = "quoted: dotted dot-atom unquoted", .in = "<\"first.last\"@example.org>",
	  .want = ADDR_OK, .local = "first.last", .domain = "example.org", .rest = "" },
	{ .label = "quoted: double dot stays quoted", .in = "<\"a..b\"@example.org>",
	  .want = ADDR_OK, .local = "\"a..b\"", .domain = "example.org", .rest = "" },
	{ .label = "quoted: escaped quote", .in = "<\"a\\\"b\"@example.org>",
	  .want = ADDR_OK, .local = "\"a\\\"b\"", .domain = "example.org", .rest = "" },
	{ .label = "quoted: escaped backslash", .in = "<\"a\\\\b\"@example.org>",
	  .want = ADDR_OK, .local = "\"a\\\\b\"", .domain = "example.org", .rest = "" },
	{ .label = "quoted: needless escape dropped", .in = "<\"\\a\\l\\ice\"@example.org>",
	  .want = ADDR_OK, .local = "alice", .domain = "example.org", .rest = "" },
	{ .label = "quoted: empty string", .in = "<\"\"@example.org>",
	  .want = ADDR_OK, .local = "\"\"", .domain = "example.org", .rest = "" },
	{ .label = "quoted: '>' inside", .in = "<\"a>b\"@example.org>",
	  .want = ADDR_OK, .local = "\"a>b\"", .domain = "example.org", .rest = "" },
	{ .label = "quoted: unterminated", .in = "<\"john doe@example.org>",
	  .want = ADDR_SYNTAX },
	{ .label = "quoted: TAB is not qtext", .in = "<\"a\tb\"@example.org>",
	  .want = ADDR_SYNTAX },
	{ .label = "quoted: quoted-pair of a control", .in = "<\"a\\\tb\"@example.org>",
	  .want = ADDR_SYNTAX },
	{ .label = "quoted: DEL is not qtext", .in = "<\"a\x7f" "b\"@example.org>",
	  .want = ADDR_SYNTAX },
	{ .label = "quoted: text after the closing quote", .in = "<\"a\"b@example.org>",
	  .want = ADDR_SYNTAX },
	/* source routes: accepted and ignored (RFC 5321 4.1.2, C) */
	{ .label = "route: one hop", .in = "<@relay.example:u@d.example>",
	  .want = ADDR_OK, .local = "u", .domain = "d.example", .rest = "" },
	{ .label = "route: two hops", .in = "<@a.example,@b.example:u@d.example> X",
	  .want = ADDR_OK, .local = "u", .domain = "d.example", .rest = " X" },
	{ .label = "route: missing '@' on the second hop",
	  .in = "<@a.example,b.example:u@d.example>", .want = ADDR_SYNTAX },
	{ .label = "route: empty hop", .in = "<@:u@d.example>", .want = ADDR_SYNTAX },
	{ .label = "route: bad hop domain", .in = "<@a..example:u@d.example>",
	  .want = ADDR_SYNTAX },
	{ .label = "route: trailing comma", .in = "<@a.example,:u@d.example>",
	  .want = ADDR_SYNTAX },
	{ .label = "route: no colon", .in = "<@a.example>", .want = ADDR_SYNTAX },
	{ .label = "route: nothing after the colon", .in = "<@a.example:>",
	  .want = ADDR_SYNTAX },
	{ .label = "route: colon only after '>'", .in = "<@a.example> x:y",
	  .want = ADDR_SYNTAX },
	/* address literals */
	{ .label = "literal: IPv4", .in = "<u@[192.0.2.1]>",
	  .want = ADDR_OK, .local = "u", .domain = "[192.0.2.1]", .rest = "" },
	{ .label = "literal: IPv6 loopback", .in = "<u@[IPv6:::1]>",
	  .want = ADDR_OK, .local = "u", .domain = "[IPv6:::1]", .rest = "" },
	{ .label = "literal: IPv6 full", .in = "<u@[IPv6:2001:db8::25]>",
	  .want = ADDR_OK, .local = "u", .domain = "[IPv6:2001:db8::25]", .rest = "" },
	{ .label = "literal: IPv4 octet over 255", .in = "<u@[192.0.2.256]>",
	  .want = ADDR_SYNTAX },
	{ .label = "literal: three octets", .in = "<u@[192.0.2]>", .want = ADDR_SYNTAX },
	{ .label = "literal: IPv6 without the tag", .in = "<u@[::1]>", .want = ADDR_SYNTAX },
	{ .label = "literal: IPv6 tag on IPv4", .in = "<u@[IPv6:192.0.2.1]>",
	  .want = ADDR_SYNTAX },
	{ .label = "literal: bad IPv6", .in = "<u@[IPv6:2001:db8:::1]>",
	  .want = ADDR_SYNTAX },
	{ .label = "literal: empty", .in = "<u@[]>", .want = ADDR_SYNTAX },
	{ .label = "literal: unclosed", .in = "<u@[192.0.2.1>", .want = ADDR_SYNTAX },
	{ .label = "literal: general tag", .in = "<u@[x400:c=us]>", .want = ADDR_SYNTAX },
	{ .label = "literal: junk after ']'", .in = "<u@[192.0.2.1]x>", .want = ADDR_SYNTAX },
	/* domains */
	{ .label = "domain: trailing dot", .in = "<u@example.org.>", .want = ADDR_SYNTAX },
	{ .label = "domain: leading dot", .in = "<u@.example.org>", .want = ADDR_SYNTAX },
	{ .label = "domain: empty label", .in = "<u@example..org>", .want = ADDR_SYNTAX },
	{ .label = "domain: empty", .in = "<u@>", .want = ADDR_SYNTAX },
	{ .label = "domain: leading hyphen", .in = "<u@-example.org>", .want = ADDR_SYNTAX },
	{ .label = "domain: trailing hyphen", .in = "<u@example-.org>", .want = ADDR_SYNTAX },
	{ .label = "domain: trailing hyphen, last label", .in = "<u@example.org->",
	  .want = ADDR_SYNTAX },
	{ .label = "domain: underscore", .in = "<u@ex_ample.org>", .want = ADDR_SYNTAX },
	{ .label = "domain: two '@'", .in = "<u@v@example.org>", .want = ADDR_SYNTAX },
	{ .label = "domain: 63-octet label",
	  .in = "<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org>",
	  .want = ADDR_OK, .local = "u",
	  .domain = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org", .rest = "" },
	{ .label = "domain: 64-octet label",
	  .in = "<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org>",
	  .want = ADDR_SYNTAX },
	/* local parts and the path's shape */
	{ .label = "local: leading dot", .in = "<.u@example.org>", .want = ADDR_SYNTAX },
	{ .label = "local: trailing dot", .in = "<u.@example.org>", .want = ADDR_SYNTAX },
	{ .label = "local: double dot", .in = "<a..b@example.org>", .want = ADDR_SYNTAX },
	{ .label = "local: space", .in = "<a b@example.org>", .want = ADDR_SYNTAX },
	{ .label = "local: comment", .in = "<a(x)@example.org>", .want = ADDR_SYNTAX },
	{ .label = "local: empty", .in = "<@example.org>", .want = ADDR_SYNTAX },
	{ .label = "shape: no '<'", .in = "u@example.org", .want = ADDR_SYNTAX },
	{ .label = "shape: no '>'", .in = "<u@example.org", .want = ADDR_SYNTAX },
	{ .label = "shape: space before '>'", .in = "<u@example.org >", .want = ADDR_SYNTAX },
	{ .label = "shape: space after '<'", .in = "< u@example.org>", .want = ADDR_SYNTAX },
	{ .label = "shape: empty input", .in = "", .want = ADDR_SYNTAX },
	{ .label = "shape: no domain", .in = "<alice>", .want = ADDR_SYNTAX },
	/* <postmaster> (RFC 5321 4.1.1.3) */
	{ .label = "postmaster: with ADDR_F_NODOMAIN", .in = "<postmaster>", .flags = NODOM,
	  .want = ADDR_OK, .local = "postmaster", .domain = "", .rest = "" },
	{ .label = "postmaster: any case", .in = "<PostMaster>", .flags = NODOM,
	  .want = ADDR_OK, .local = "PostMaster", .domain = "", .rest = "" },
	{ .label = "postmaster: without ADDR_F_NODOMAIN", .in = "<postmaster>",
	  .want = ADDR_SYNTAX },
	{ .label = "postmaster: other names need a domain", .in = "<abuse>", .flags = NODOM,
	  .want = ADDR_SYNTAX },
	{ .label = "postmaster: with a domain as usual", .in = "<postmaster@example.org>",
	  .flags = NODOM, .want = ADDR_OK, .local = "postmaster", .domain = "example.org",
	  .rest = "" },
	/* UTF-8 (RFC 6531) */
	{ .label = "utf8: local part without the flag", .in = "<j\xc3\xb6rg@example.org>",
	  .want = ADDR_NONASCII },
	{ .label = "utf8: local part with the flag", .in = "<j\xc3\xb6rg@example.org>",
	  .flags = UTF8, .want = ADDR_OK, .local = "j\xc3\xb6rg", .domain = "example.org",
	  .rest = "" },
	{ .label = "utf8: U-label domain without the flag", .in = "<u@b\xc3\xbc" "cher.example>",
	  .want = ADDR_NONASCII },
	{ .label = "utf8: U-label domain with the flag, spelling kept",
	  .in = "<u@b\xc3\xbc" "cher.example>", .flags = UTF8, .want = ADDR_OK,
	  .local = "u", .domain = "b\xc3\xbc" "cher.example", .rest = "" },
	{ .label = "utf8: quoted non-ASCII with the flag", .in = "<\"j\xc3\xb6rg m\"@example.org>",
	  .flags = UTF8, .want = ADDR_OK, .local = "\"j\xc3\xb6rg m\"", .domain = "example.org",
	  .rest = "" },
	{ .label = "utf8: quoted non-ASCII without the flag", .in = "<\"j\xc3\xb6rg m\"@example.org>",
	  .want = ADDR_NONASCII },
	{ .label = "utf8: truncated sequence in local", .in = "<j\xc3@example.org>",
	  .flags = UTF8, .want = ADDR_SYNTAX },
	{ .label = "utf8: invalid local even without the flag", .in = "<j\xc3\xc3@example.org>",
	  .want = ADDR_SYNTAX },
	{ .label = "utf8: overlong '/' in local", .in = "<a\xc0\xaf" "b@example.org>",
	  .flags = UTF8, .want = ADDR_SYNTAX },
	{ .label = "utf8: surrogate in local", .in = "<a\xed\xa0\x80@example.org>",
	  .flags = UTF8, .want = ADDR_SYNTAX },
	{ .label = "utf8: Latin-1 domain", .in = "<u@b\xfc" "cher.example>",
	  .flags = UTF8, .want = ADDR_SYNTAX },
	{ .label = "utf8: Latin-1 domain without the flag", .in = "<u@b\xfc" "cher.example>",
	  .want = ADDR_SYNTAX },
	{ .label = "utf8: domain that is no IDNA name", .in = "<u@\xe2\x98\x83.example>",
	  .flags = UTF8, .want = ADDR_SYNTAX },
	/* IDNA drops U+00AD SOFT HYPHEN: these labels would come out empty */
	{ .label = "utf8: domain of a soft hyphen only", .in = "<u@\xc2\xad>",
	  .flags = UTF8, .want = ADDR_SYNTAX },
	{ .label = "utf8: a label of a soft hyphen only", .in = "<u@a.\xc2\xad.example>",
	  .flags = UTF8, .want = ADDR_SYNTAX },
	{ .label = "utf8: a soft hyphen inside a label", .in = "<u@ex\xc2\xad" "ample.test>",
	  .flags = UTF8, .want = ADDR_OK, .local = "u", .rest = "" },
	/* 20 x U+00FC then 30 'x': 70 octets of UTF-8, but the A-label
	 * xn--xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-3edaaaaaaaaaaaaaaaaaaa is 57 */
	{ .label = "utf8: U-label over 63 octets whose A-label fits",
	  .in = "<u@\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.example>",
	  .flags = UTF8, .want = ADDR_OK, .local = "u", .rest = "" },
	/* lengths (RFC 5321 4.5.3.1) */
	{ .label = "length: 64-octet local part", .gen = { .local = 64, .domain = 20 },
	  .want = ADDR_OK, .rest = "" },
	/* deliberately lenient: RFC 5321 4.5.3.1 (see common/limits.h) */
	{ .label = "length: 65-octet local part", .gen = { .local = 65, .domain = 20 },
	  .want = ADDR_OK, .rest = "" },
	{ .label = "length: 300-octet local part", .gen = { .local = 300, .domain = 20 },
	  .want = ADDR_TOOLONG },
	{ .label = "length: 300-octet quoted local part",
	  .gen = { .local = 300, .domain = 20, .quoted = true }, .want = ADDR_TOOLONG },
	{ .label = "length: 254-octet mailbox (256-octet path)", .gen = { .local = 64, .domain = 189 },
	  .want = ADDR_OK, .rest = "" },
	{ .label = "length: 255-octet mailbox (257-octet path)", .gen = { .local = 10, .domain = 244 },
	  .want = ADDR_TOOLONG },
	{ .label = "length: 257-octet mailbox", .gen = { .local = 10, .domain = 246 },
	  .want = ADDR_TOOLONG },
	{ .label = "length: 255-octet domain", .gen = { .local = 1, .domain = 255 },
	  .want = ADDR_TOOLONG },
	{ .label = "length: 256-octet domain", .gen = { .local = 1, .domain = 256 },
	  .want = ADDR_TOOLONG },
};

static void
run_path_case(void **state)
{
	const struct path_case *c = *state;
	struct mailaddr a;
	char *made = NULL;
	const char *in, *p;
	enum addr_status st;

	UNIT_BUG(c);
	in = c->in ? c->in : (made = gen_path(&c->gen, true));
	p = in;
	memset(&a, 0x5a, sizeof(a));
	st = addr_parse_path(&p, &a, c->flags);
	assert_status(st, c->want);
	if (st == ADDR_OK || st == ADDR_NULL) {
		assert_string_equal(p, c->rest);
	} else
		assert_ptr_equal(p, in);	/* *sp untouched on errors */
	if (st == ADDR_OK) {
		if (c->local)
			assert_string_equal(a.local, c->local);
		if (c->domain)
			assert_string_equal(a.domain, c->domain);
		if (made != NULL) {
			char *bare = gen_path(&c->gen, false);
			char fmt[PATH_MAX_OCTETS + 2];

			addr_format(&a, fmt, sizeof(fmt));
			assert_string_equal(fmt, bare);
			free(bare);
		}
	}
	free(made);
}

/* addr_parse: bare "local@domain", as in tables */

struct bare_case {
	const char *label;
	const char *in;
	int flags;
	enum addr_status want;
	const char *local;
	const char *domain;
	const char *key;	/* addr_key() of the result, when set */
	const char *bug;
};

static const struct bare_case bare_cases[] = {
	{ .label = "bare: plain", .in = "alice@example.org", .want = ADDR_OK,
	  .local = "alice", .domain = "example.org", .key = "alice@example.org" },
	{ .label = "bare: angle brackets refused", .in = "<alice@example.org>",
	  .want = ADDR_SYNTAX },
	{ .label = "bare: trailing space refused", .in = "alice@example.org ",
	  .want = ADDR_SYNTAX },
	{ .label = "bare: trailing dot refused", .in = "alice@example.org.",
	  .want = ADDR_SYNTAX },
	{ .label = "bare: empty", .in = "", .want = ADDR_SYNTAX },
	{ .label = "bare: no domain", .in = "alice", .want = ADDR_SYNTAX },
	{ .label = "bare: postmaster with ADDR_F_NODOMAIN", .in = "Postmaster", .flags = NODOM,
	  .want = ADDR_OK, .local = "Postmaster", .domain = "", .key = "postmaster" },
	{ .label = "bare: quoted unquoted", .in = "\"bob\"@example.org", .want = ADDR_OK,
	  .local = "bob", .domain = "example.org", .key = "bob@example.org" },
	{ .label = "bare: non-ASCII without the flag", .in = "j\xc3\xb6rg@example.org",
	  .want = ADDR_NONASCII },
	/* relay tricks: each parses, but to a local part that is no plain user */
	{ .label = "relay trick: percent hack", .in = "u%remote.example@local.example",
	  .want = ADDR_OK, .local = "u%remote.example", .domain = "local.example",
	  .key = "u%remote.example@local.example" },
	{ .label = "relay trick: bang path", .in = "remote.example!u@local.example",
	  .want = ADDR_OK, .local = "remote.example!u", .domain = "local.example",
	  .key = "remote.example!u@local.example" },
	{ .label = "relay trick: quoted '@'", .in = "\"u@remote.example\"@local.example",
	  .want = ADDR_OK, .local = "\"u@remote.example\"", .domain = "local.example",
	  .key = "\"u@remote.example\"@local.example" },
	{ .label = "relay trick: unquoted second '@'", .in = "u@remote.example@local.example",
	  .want = ADDR_SYNTAX },
	/* addr_key: ASCII case folding, IDNA A-labels */
	{ .label = "key: ASCII case folded", .in = "Alice.Smith@Example.ORG", .want = ADDR_OK,
	  .key = "alice.smith@example.org" },
	{ .label = "key: quoted local folded, quotes kept", .in = "\"John Doe\"@Example.org",
	  .want = ADDR_OK, .key = "\"john doe\"@example.org" },
	{ .label = "key: U-label to A-label", .in = "u@B\xc3\xbc" "cher.example", .flags = UTF8,
	  .want = ADDR_OK, .domain = "B\xc3\xbc" "cher.example", .key = "u@xn--bcher-kva.example" },
	{ .label = "key: upper-case U-label to A-label", .in = "u@B\xc3\x9c" "CHER.EXAMPLE",
	  .flags = UTF8, .want = ADDR_OK, .key = "u@xn--bcher-kva.example" },
	{ .label = "key: A-label folded", .in = "u@XN--BCHER-KVA.Example", .want = ADDR_OK,
	  .key = "u@xn--bcher-kva.example" },
	{ .label = "key: non-ASCII local folds ASCII only", .in = "J\xc3\x96rg@example.org",
	  .flags = UTF8, .want = ADDR_OK, .key = "j\xc3\x96rg@example.org" },
	{ .label = "key: IPv4 literal kept", .in = "u@[192.0.2.1]", .want = ADDR_OK,
	  .key = "u@[192.0.2.1]" },
};

static void
run_bare_case(void **state)
{
	const struct bare_case *c = *state;
	struct mailaddr a;
	enum addr_status st;

	UNIT_BUG(c);
	st = addr_parse(c->in, &a, c->flags);
	assert_status(st, c->want);
	if (st != ADDR_OK)
		return;
	if (c->local)
		assert_string_equal(a.local, c->local);
	if (c->domain)
		assert_string_equal(a.domain, c->domain);
	if (c->key) {
		char key[PATH_MAX_OCTETS + 1];

		assert_true(addr_key(&a, key, sizeof(key)));
		assert_string_equal(key, c->key);
		/* one octet less than the key and its NUL does not fit */
		assert_false(addr_key(&a, key, strlen(c->key)));
		if (a.domain[0] != '\0')
			assert_true(addr_key(&a, key, strlen(c->key) + 1));
	}
}

/* addr_domain_key */

struct domain_case {
	const char *label;
	const char *in;
	size_t size;		/* 0: a big buffer */
	bool want;
	const char *out;
	const char *bug;
};

static const struct domain_case domain_cases[] = {
	{ .label = "domain key: ASCII folded", .in = "Mail.Example.ORG", .want = true,
	  .out = "mail.example.org" },
	{ .label = "domain key: U-label", .in = "b\xc3\xbc" "cher.example", .want = true,
	  .out = "xn--bcher-kva.example" },
	{ .label = "domain key: mixed case U-label", .in = "B\xc3\xbc" "cher.Example", .want = true,
	  .out = "xn--bcher-kva.example" },
	{ .label = "domain key: NFD input normalised", .in = "bu\xcc\x88" "cher.example",
	  .want = true, .out = "xn--bcher-kva.example" },
	{ .label = "domain key: A-label folded", .in = "XN--BCHER-KVA.EXAMPLE", .want = true,
	  .out = "xn--bcher-kva.example" },
	{ .label = "domain key: disallowed code point", .in = "\xe2\x98\x83.example",
	  .want = false },
	{ .label = "domain key: invalid UTF-8", .in = "b\xfc" "cher.example", .want = false },
	{ .label = "domain key: buffer exactly big enough", .in = "Example.org", .size = 12,
	  .want = true, .out = "example.org" },
	{ .label = "domain key: buffer one short", .in = "Example.org", .size = 11,
	  .want = false },
	{ .label = "domain key: A-label buffer one short", .in = "b\xc3\xbc" "cher.example",
	  .size = 21, .want = false },
};

static void
run_domain_case(void **state)
{
	const struct domain_case *c = *state;
	char out[DOMAIN_MAX + 1];

	UNIT_BUG(c);
	assert_int_equal(addr_domain_key(c->in, out, c->size ? c->size : sizeof(out)),
	    c->want);
	if (c->want)
		assert_string_equal(out, c->out);
}

/* utf8_valid */

struct utf8_case {
	const char *label;
	const char *in;
	size_t len;		/* 0: strlen(in) */
	bool want;
	const char *bug;
};

static const struct utf8_case utf8_cases[] = {
	{ .label = "utf8: empty", .in = "", .want = true },
	{ .label = "utf8: ASCII", .in = "hello", .want = true },
	{ .label = "utf8: NUL counted by length", .in = "a\0b", .len = 3, .want = true },
	{ .label = "utf8: two octets", .in = "caf\xc3\xa9", .want = true },
	{ .label = "utf8: three octets", .in = "\xe2\x82\xac", .want = true },
	{ .label = "utf8: four octets", .in = "\xf0\x9f\x98\x80", .want = true },
	{ .label = "utf8: U+10FFFF", .in = "\xf4\x8f\xbf\xbf", .want = true },
	{ .label = "utf8: lone continuation", .in = "\x80", .want = false },
	{ .label = "utf8: truncated at the end", .in = "caf\xc3", .want = false },
	{ .label = "utf8: truncated by length", .in = "\xe2\x82\xac", .len = 2, .want = false },
	{ .label = "utf8: bad continuation", .in = "\xc3(", .want = false },
	{ .label = "utf8: overlong two octets", .in = "\xc0\xaf", .want = false },
	{ .label = "utf8: overlong three octets", .in = "\xe0\x80\xaf", .want = false },
	{ .label = "utf8: overlong four octets", .in = "\xf0\x80\x80\xaf", .want = false },
	{ .label = "utf8: surrogate", .in = "\xed\xa0\x80", .want = false },
	{ .label = "utf8: over U+10FFFF", .in = "\xf4\x90\x80\x80", .want = false },
	{ .label = "utf8: 0xff", .in = "\xff", .want = false },
};

static void
run_utf8_case(void **state)
{
	const struct utf8_case *c = *state;

	UNIT_BUG(c);
	assert_int_equal(utf8_valid(c->in, c->len ? c->len : strlen(c->in)), c->want);
}

/* addr_format round trip */
static void
test_addr_format(void **state)
{
	struct mailaddr a;
	char out[PATH_MAX_OCTETS + 2];

	(void)state;
	assert_int_equal(addr_parse("\"john doe\"@Example.org", &a, 0), ADDR_OK);
	addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "\"john doe\"@Example.org");
	assert_int_equal(addr_parse("postmaster", &a, ADDR_F_NODOMAIN), ADDR_OK);
	addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "postmaster");
}

int
main(void)
{
	struct CMUnitTest tests[nitems(path_cases) + nitems(bare_cases) +
	    nitems(domain_cases) + nitems(utf8_cases) + 1];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_path_case, path_cases);
	UNIT_ROWS(tests, n, run_bare_case, bare_cases);
	UNIT_ROWS(tests, n, run_domain_case, domain_cases);
	UNIT_ROWS(tests, n, run_utf8_case, utf8_cases);
	UNIT_TEST(tests, n, test_addr_format);
	UNIT_RUN(tests, n);
}
