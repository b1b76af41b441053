/*
 * test_srs.c - the Sender Rewriting Scheme (forward/srs.c): the address
 * format against vectors computed apart from our code (Python's hmac and
 * base64.b32encode), round trips through common/addr.c's parser, every way
 * an address goes bad, the age window around the 1024-day wrap, secret
 * rotation, and the secret file in queue_dir.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/limits.h"
#include "forward/srs.h"
#include "unit.h"

#define SECRET_A	"0123456789abcdef0123456789abcdef"
#define SECRET_B	"fedcba9876543210-the-new-one"
#define SECRET_C	"a-secret-we-have-forgotten-since"
#define OUR_DOMAIN	"fwd.example"
/* day 20000 (2024-10-04): 20000 % 1024 = 544 = 17 * 32 + 0, TT "ra" */
#define DAY		20000

/* at_day - a moment in the middle of the given day */
static time_t
at_day(long day)
{
	return (time_t)day * 86400 + 13 * 3600 + 17;
}

static const char *
status_name(enum srs_status st)
{
	switch (st) {
	case SRS_OK:		return "SRS_OK";
	case SRS_NOT_SRS:	return "SRS_NOT_SRS";
	case SRS_BAD_HASH:	return "SRS_BAD_HASH";
	case SRS_STALE:		return "SRS_STALE";
	case SRS_LITERAL:	return "SRS_LITERAL";
	case SRS_SYNTAX:	return "SRS_SYNTAX";
	}
	return "?";
}

#define assert_status(got, want) do {					\
	if ((got) != (want))						\
		fail_msg("status %s, want %s", status_name(got),	\
		    status_name(want));					\
} while (0)

/* srs_with - an srs holding the NULL-terminated secrets */
static void
srs_with(struct srs *srs, const char *const *secrets)
{
	char err[256] = "";
	size_t n = 0;

	while (secrets[n] != NULL)
		n++;
	if (srs_init(srs, (char *const *)secrets, n, NULL, err, sizeof(err)) != 0)
		fail_msg("srs_init: %s", err);
}

/* srs_forward */

struct forward_case {
	const char *label;
	const char *sender;
	long day;		/* 0: DAY */
	size_t size;		/* of out; 0: plenty */
	const char *want;	/* NULL: false */
	const char *bug;
};

static const struct forward_case forward_cases[] = {
	{ .label = "forward: known answer", .sender = "alice@example.org",
	  .want = "SRS0=rfc3p5=ra=example.org=alice@" OUR_DOMAIN },
	{ .label = "forward: spelling kept, hash over lower case",
	  .sender = "Alice.Smith@Example.ORG",
	  .want = "SRS0=he5abe=ra=Example.ORG=Alice.Smith@" OUR_DOMAIN },
	{ .label = "forward: local part with '='", .sender = "a=b@example.org",
	  .want = "SRS0=mxiimp=ra=example.org=a=b@" OUR_DOMAIN },
	{ .label = "forward: quoted local part: quoted result",
	  .sender = "\"john doe\"@example.org",
	  .want = "\"SRS0=egfqqv=ra=example.org=john doe\"@" OUR_DOMAIN },
	/* doc/forwarding.md: an SRS address never leads to an address literal */
	{ .label = "forward: address literal refused",
	  .sender = "probe@[127.0.0.9]" },
	{ .label = "forward: quoted local part, address literal refused",
	  .sender = "\"john doe\"@[192.0.2.1]" },
	{ .label = "forward: IPv6 address literal refused",
	  .sender = "u@[IPv6:2001:db8::25]" },
	{ .label = "forward: TT is the day modulo 1024",
	  .sender = "alice@example.org", .day = DAY + 1024,
	  .want = "SRS0=rfc3p5=ra=example.org=alice@" OUR_DOMAIN },
	{ .label = "forward: out exactly big enough", .sender = "alice@example.org",
	  .size = sizeof("SRS0=rfc3p5=ra=example.org=alice@" OUR_DOMAIN),
	  .want = "SRS0=rfc3p5=ra=example.org=alice@" OUR_DOMAIN },
	{ .label = "forward: out one octet too small", .sender = "alice@example.org",
	  .size = sizeof("SRS0=rfc3p5=ra=example.org=alice@" OUR_DOMAIN) - 1 },
	{ .label = "forward: out of one octet", .sender = "alice@example.org",
	  .size = 1 },
	{ .label = "forward: no '@'", .sender = "alice" },
	{ .label = "forward: empty sender", .sender = "" },
	{ .label = "forward: empty local part", .sender = "@example.org" },
	{ .label = "forward: empty domain", .sender = "alice@" },
	{ .label = "forward: '=' in the domain", .sender = "alice@ex=ample.org" },
	{ .label = "forward: broken quoting", .sender = "\"alice@example.org" },
};

static void
run_forward_case(void **state)
{
	const struct forward_case *c = *state;
	static const char *const secrets[] = { SECRET_A, NULL };
	struct srs srs;
	char out[1024];
	size_t size = c->size ? c->size : sizeof(out);
	bool ok;

	UNIT_BUG(c);
	srs_with(&srs, secrets);
	memset(out, 'X', sizeof(out));
	ok = srs_forward(&srs, c->sender, OUR_DOMAIN, at_day(c->day ? c->day : DAY),
	    out, size);
	srs_free(&srs);
	if (c->want == NULL) {
		if (ok)
			fail_msg("true (\"%.*s\"), want false", (int)size, out);
		return;
	}
	if (!ok)
		fail_msg("false, want \"%s\"", c->want);
	assert_string_equal(out, c->want);
}

/* srs_forward then srs_reverse, with the address as it comes back */

enum mangle {
	M_NONE,
	M_UPPER,	/* a server folded it to upper case */
	M_LOWER,
	M_HASH,		/* one character of each field changed */
	M_HASH_LAST,
	M_TT,
	M_DOMAIN,
	M_LOCAL,
	M_QUOTE,	/* needlessly quoted: "SRS0=..." */
};

struct trip_case {
	const char *label;
	const char *sender;
	long sign_day;		/* 0: DAY */
	long verify_day;	/* 0: DAY */
	const char *sign;	/* NULL: SECRET_A */
	const char *verify[3];	/* { NULL }: SECRET_A only */
	enum mangle mangle;
	enum srs_status want;
	const char *orig;	/* on SRS_OK; NULL: sender */
	bool long_local;	/* the SRS local part passes 64 octets */
	const char *bug;
};

#define LONG60 "abcdefghij" "abcdefghij" "abcdefghij" "abcdefghij" "abcdefghij" "abcdefghij"

static const struct trip_case trip_cases[] = {
	{ .label = "trip: round trip", .sender = "alice@example.org", .want = SRS_OK },
	{ .label = "trip: spelling kept", .sender = "Alice.Smith@Example.ORG",
	  .want = SRS_OK },
	{ .label = "trip: upper-cased on the way back", .sender = "alice@example.org",
	  .mangle = M_UPPER, .want = SRS_OK, .orig = "ALICE@EXAMPLE.ORG" },
	{ .label = "trip: lower-cased on the way back", .sender = "Alice@Example.org",
	  .mangle = M_LOWER, .want = SRS_OK, .orig = "alice@example.org" },
	{ .label = "trip: needlessly quoted on the way back",
	  .sender = "alice@example.org", .mangle = M_QUOTE, .want = SRS_OK },
	/* forgeries */
	{ .label = "tamper: hash", .sender = "alice@example.org",
	  .mangle = M_HASH, .want = SRS_BAD_HASH },
	{ .label = "tamper: last character of the hash", .sender = "alice@example.org",
	  .mangle = M_HASH_LAST, .want = SRS_BAD_HASH },
	{ .label = "tamper: timestamp", .sender = "alice@example.org",
	  .mangle = M_TT, .want = SRS_BAD_HASH },
	{ .label = "tamper: domain", .sender = "alice@example.org",
	  .mangle = M_DOMAIN, .want = SRS_BAD_HASH },
	{ .label = "tamper: local part", .sender = "alice@example.org",
	  .mangle = M_LOCAL, .want = SRS_BAD_HASH },
	{ .label = "tamper: local part after an '='", .sender = "a=b@example.org",
	  .mangle = M_LOCAL, .want = SRS_BAD_HASH },
	/* age */
	{ .label = "age: 21 days", .sender = "alice@example.org",
	  .sign_day = DAY - 21, .want = SRS_OK },
	{ .label = "age: 22 days is stale", .sender = "alice@example.org",
	  .sign_day = DAY - 22, .want = SRS_STALE },
	{ .label = "age: 500 days is stale", .sender = "alice@example.org",
	  .sign_day = DAY - 500, .want = SRS_STALE },
	{ .label = "age: stale and upper-cased", .sender = "alice@example.org",
	  .sign_day = DAY - 100, .mangle = M_UPPER, .want = SRS_STALE },
	{ .label = "age: forged and stale is a bad hash", .sender = "alice@example.org",
	  .sign_day = DAY - 100, .mangle = M_HASH, .want = SRS_BAD_HASH },
	{ .label = "future: 1 day ahead (clock skew)", .sender = "alice@example.org",
	  .sign_day = DAY + 1, .want = SRS_OK },
	{ .label = "future: 2 days ahead is stale", .sender = "alice@example.org",
	  .sign_day = DAY + 2, .want = SRS_STALE },
	{ .label = "future: 30 days ahead is stale", .sender = "alice@example.org",
	  .sign_day = DAY + 30, .want = SRS_STALE },
	/* the 1024-day cycle: DAY - 544 is a multiple of 1024 (TT "aa") */
	{ .label = "wrap: signed on day 1020 of the cycle, 9 days later",
	  .sender = "alice@example.org", .sign_day = DAY - 544 - 4,
	  .verify_day = DAY - 544 + 5, .want = SRS_OK },
	{ .label = "wrap: signed on day 1023, 21 days later",
	  .sender = "alice@example.org", .sign_day = DAY - 544 - 1,
	  .verify_day = DAY - 544 + 20, .want = SRS_OK },
	{ .label = "wrap: signed on day 1010, 30 days later is stale",
	  .sender = "alice@example.org", .sign_day = DAY - 544 - 14,
	  .verify_day = DAY - 544 + 16, .want = SRS_STALE },
	{ .label = "wrap: signed on day 0, verified on day 1023 (1 ahead)",
	  .sender = "alice@example.org", .sign_day = DAY - 544,
	  .verify_day = DAY - 544 - 1, .want = SRS_OK },
	{ .label = "wrap: signed on day 1, verified on day 1023 (2 ahead) is stale",
	  .sender = "alice@example.org", .sign_day = DAY - 544 + 1,
	  .verify_day = DAY - 544 - 1, .want = SRS_STALE },
	{ .label = "wrap: 1024 days old looks fresh (the scheme's limit)",
	  .sender = "alice@example.org", .sign_day = DAY - 1024, .want = SRS_OK },
	/* rotation */
	{ .label = "rotation: signed with B, verified with [A, B]",
	  .sender = "alice@example.org", .sign = SECRET_B,
	  .verify = { SECRET_A, SECRET_B }, .want = SRS_OK },
	{ .label = "rotation: signed with A, verified with [B, A]",
	  .sender = "alice@example.org", .sign = SECRET_A,
	  .verify = { SECRET_B, SECRET_A }, .want = SRS_OK },
	{ .label = "rotation: signed with a retired secret",
	  .sender = "alice@example.org", .sign = SECRET_C,
	  .verify = { SECRET_A, SECRET_B }, .want = SRS_BAD_HASH },
	{ .label = "rotation: tampered, verified with [A, B]",
	  .sender = "alice@example.org", .sign = SECRET_B,
	  .verify = { SECRET_A, SECRET_B }, .mangle = M_DOMAIN, .want = SRS_BAD_HASH },
	/* local parts */
	{ .label = "local: '=' kept", .sender = "a=b==c=@example.org", .want = SRS_OK },
	{ .label = "local: '=' kept, upper-cased", .sender = "a=b@example.org",
	  .mangle = M_UPPER, .want = SRS_OK, .orig = "A=B@EXAMPLE.ORG" },
	{ .label = "local: looks like SRS itself (forwarded twice)",
	  .sender = "SRS0=abcdef=ra=other.example=bob@relay.example", .want = SRS_OK },
	{ .label = "local: quoted", .sender = "\"john doe\"@example.org", .want = SRS_OK },
	{ .label = "local: quoted, upper-cased", .sender = "\"john doe\"@example.org",
	  .mangle = M_UPPER, .want = SRS_OK, .orig = "\"JOHN DOE\"@EXAMPLE.ORG" },
	{ .label = "local: quoted, tampered", .sender = "\"john doe\"@example.org",
	  .mangle = M_LOCAL, .want = SRS_BAD_HASH },
	{ .label = "local: quoted with an escaped quote and '@'",
	  .sender = "\"a\\\"b@c\"@example.org", .want = SRS_OK },
	{ .label = "local: empty quoted string", .sender = "\"\"@example.org",
	  .want = SRS_OK },
	{ .label = "local: UTF-8", .sender = "j\xc3\xb6rg@example.org", .want = SRS_OK },
	{ .label = "long: 60-octet local part gives an 87-octet SRS one",
	  .sender = LONG60 "@example.org", .want = SRS_OK, .long_local = true },
	{ .label = "long: upper-cased", .sender = LONG60 "@example.org",
	  .mangle = M_UPPER, .want = SRS_OK, .long_local = true,
	  .orig = "ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJ@EXAMPLE.ORG" },
};

/* field - where the n-th field (0: "SRS0") of the SRS local part starts */
static char *
field(char *local, int n)
{
	char *p = local + (local[0] == '"');

	for (; n > 0; n--) {
		p = strchr(p, '=');
		assert_non_null(p);
		p++;
	}
	return p;
}

/* change - alter one character so that no case folding undoes it */
static void
change(char *p)
{
	*p = (*p == 'x' || *p == 'X') ? 'y' : 'x';
}

static void
mangle(char *local, size_t size, enum mangle m)
{
	size_t n = strlen(local);

	switch (m) {
	case M_NONE:
		break;
	case M_UPPER:
		for (char *p = local; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		break;
	case M_LOWER:
		for (char *p = local; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		break;
	case M_HASH:
		change(field(local, 1));
		break;
	case M_HASH_LAST:
		change(field(local, 1) + 5);
		break;
	case M_TT:
		change(field(local, 2) + 1);
		break;
	case M_DOMAIN:
		change(field(local, 3));
		break;
	case M_LOCAL:
		change(local + n - 1 - (local[n - 1] == '"'));
		break;
	case M_QUOTE:
		assert_true(local[0] != '"' && n + 3 <= size);
		memmove(local + 1, local, n);
		local[0] = '"';
		local[n + 1] = '"';
		local[n + 2] = '\0';
		break;
	}
}

static void
run_trip_case(void **state)
{
	const struct trip_case *c = *state;
	const char *sign[] = { c->sign ? c->sign : SECRET_A, NULL };
	const char *const only_a[] = { SECRET_A, NULL };
	struct srs signer, verifier;
	struct mailaddr a;
	char out[PATH_MAX_OCTETS + 1], local[PATH_MAX_OCTETS + 4], orig[512];
	enum srs_status st;
	enum addr_status ast;

	UNIT_BUG(c);
	srs_with(&signer, sign);
	srs_with(&verifier, c->verify[0] ? c->verify : only_a);
	if (!srs_forward(&signer, c->sender, OUR_DOMAIN,
	    at_day(c->sign_day ? c->sign_day : DAY), out, sizeof(out)))
		fail_msg("srs_forward(%s) failed", c->sender);

	/* it must be an address our own parser takes back (the bounce's RCPT) */
	if ((ast = addr_parse(out, &a, ADDR_F_UTF8)) != ADDR_OK)
		fail_msg("addr_parse(%s) = %d", out, (int)ast);
	assert_string_equal(a.domain, OUR_DOMAIN);
	if (c->long_local)
		assert_true(strlen(a.local) > 64);	/* RFC 5321 4.5.3.1.1 */
	assert_true(strlen(a.local) < sizeof(local));
	strcpy(local, a.local);
	mangle(local, sizeof(local), c->mangle);

	memset(orig, 'X', sizeof(orig));
	st = srs_reverse(&verifier, local,
	    at_day(c->verify_day ? c->verify_day : DAY), orig, sizeof(orig));
	srs_free(&signer);
	srs_free(&verifier);
	if (st != c->want)
		fail_msg("%s: status %s, want %s", local, status_name(st),
		    status_name(c->want));
	if (st == SRS_OK)
		assert_string_equal(orig, c->orig ? c->orig : c->sender);
}

/* srs_reverse of given local parts (secret A, day DAY) */

struct reverse_case {
	const char *label;
	const char *in;
	size_t size;		/* of orig; 0: plenty */
	enum srs_status want;
	const char *orig;	/* on SRS_OK */
	const char *bug;
};

static const struct reverse_case reverse_cases[] = {
	{ .label = "reverse: known answer", .in = "SRS0=rfc3p5=ra=example.org=alice",
	  .want = SRS_OK, .orig = "alice@example.org" },
	{ .label = "reverse: known answer, upper case",
	  .in = "SRS0=RFC3P5=RA=EXAMPLE.ORG=ALICE",
	  .want = SRS_OK, .orig = "ALICE@EXAMPLE.ORG" },
	{ .label = "reverse: known answer, mixed case",
	  .in = "sRs0=RfC3p5=rA=Example.Org=aLiCe",
	  .want = SRS_OK, .orig = "aLiCe@Example.Org" },
	{ .label = "reverse: known answer with '=' in the local part",
	  .in = "SRS0=mxiimp=ra=example.org=a=b",
	  .want = SRS_OK, .orig = "a=b@example.org" },
	{ .label = "reverse: known answer, quoted",
	  .in = "\"SRS0=egfqqv=ra=example.org=john doe\"",
	  .want = SRS_OK, .orig = "\"john doe\"@example.org" },
	/* minted for a literal before srs_forward refused them: refused */
	{ .label = "literal: good hash, address literal",
	  .in = "SRS0=ndrbgx=ra=[127.0.0.9]=probe", .want = SRS_LITERAL },
	{ .label = "literal: good hash, quoted, address literal",
	  .in = "\"SRS0=q5ewzg=ra=[192.0.2.1]=john doe\"", .want = SRS_LITERAL },
	{ .label = "literal: good hash, IPv6 address literal, upper case",
	  .in = "SRS0=334BF6=RA=[IPV6:2001:DB8::25]=U", .want = SRS_LITERAL },
	{ .label = "literal: bad hash stays a bad hash",
	  .in = "SRS0=ndrbgy=ra=[127.0.0.9]=probe", .want = SRS_BAD_HASH },
	{ .label = "reverse: orig as long as the local part given",
	  .in = "SRS0=rfc3p5=ra=example.org=alice",
	  .size = sizeof("SRS0=rfc3p5=ra=example.org=alice"),
	  .want = SRS_OK, .orig = "alice@example.org" },
	{ .label = "reverse: orig exactly big enough",
	  .in = "SRS0=rfc3p5=ra=example.org=alice",
	  .size = sizeof("alice@example.org"),
	  .want = SRS_OK, .orig = "alice@example.org" },
	{ .label = "reverse: orig one octet too small",
	  .in = "SRS0=rfc3p5=ra=example.org=alice",
	  .size = sizeof("alice@example.org") - 1, .want = SRS_SYNTAX },
	/* not SRS: an ordinary local part, looked up as a mailbox */
	{ .label = "not SRS: a mailbox", .in = "alice", .want = SRS_NOT_SRS },
	{ .label = "not SRS: empty", .in = "", .want = SRS_NOT_SRS },
	{ .label = "not SRS: SRS0 without '='", .in = "srs0", .want = SRS_NOT_SRS },
	{ .label = "not SRS: SRS0 prefix of a name", .in = "srs0x=rfc3p5=ra=example.org=alice",
	  .want = SRS_NOT_SRS },
	{ .label = "not SRS: SRS1 (we never make it)",
	  .in = "SRS1=abcd=relay.example==rfc3p5=ra=example.org=alice",
	  .want = SRS_NOT_SRS },
	{ .label = "not SRS: quoted mailbox", .in = "\"john doe\"", .want = SRS_NOT_SRS },
	/* malformed */
	{ .label = "syntax: nothing after SRS0=", .in = "SRS0=", .want = SRS_SYNTAX },
	{ .label = "syntax: hash only", .in = "SRS0=rfc3p5", .want = SRS_SYNTAX },
	{ .label = "syntax: no domain", .in = "SRS0=rfc3p5=ra", .want = SRS_SYNTAX },
	{ .label = "syntax: no local part", .in = "SRS0=rfc3p5=ra=example.org",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: empty domain", .in = "SRS0=rfc3p5=ra==alice",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: empty hash", .in = "SRS0==ra=example.org=alice",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: empty timestamp", .in = "SRS0=rfc3p5==example.org=alice",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: 5-character hash", .in = "SRS0=rfc3p=ra=example.org=alice",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: 7-character hash", .in = "SRS0=rfc3p5a=ra=example.org=alice",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: '1' is no base32", .in = "SRS0=rfc3p1=ra=example.org=alice",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: '8' in the timestamp", .in = "SRS0=rfc3p5=r8=example.org=alice",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: 3-character timestamp", .in = "SRS0=rfc3p5=raa=example.org=alice",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: unterminated quote", .in = "\"SRS0=q5ewzg=ra=[192.0.2.1]=john doe",
	  .want = SRS_SYNTAX },
	{ .label = "syntax: backslash before the closing quote",
	  .in = "\"SRS0=q5ewzg=ra=[192.0.2.1]=john doe\\\"", .want = SRS_SYNTAX },
};

static void
run_reverse_case(void **state)
{
	const struct reverse_case *c = *state;
	static const char *const secrets[] = { SECRET_A, NULL };
	struct srs srs;
	char orig[512];
	enum srs_status st;

	UNIT_BUG(c);
	srs_with(&srs, secrets);
	memset(orig, 'X', sizeof(orig));
	st = srs_reverse(&srs, c->in, at_day(DAY), orig, c->size ? c->size : sizeof(orig));
	srs_free(&srs);
	assert_status(st, c->want);
	if (st == SRS_OK)
		assert_string_equal(orig, c->orig);
}

/* srs_init */

struct init_case {
	const char *label;
	const char *secrets[SRS_MAX_SECRETS + 2];	/* NULL-terminated */
	size_t n;		/* how many of secrets to pass */
	bool no_queue_dir;	/* queue_dir does not exist */
	const char *file;	/* queue_dir/srs.secret before the call */
	mode_t mode;
	int want;
	const char *secret0;	/* on success */
	size_t nsecrets;
	const char *err;	/* part of err on failure */
	const char *bug;
};

static const struct init_case init_cases[] = {
	{ .label = "init: secrets copied", .secrets = { SECRET_A, SECRET_B }, .n = 2,
	  .no_queue_dir = true, .want = 0, .secret0 = SECRET_A, .nsecrets = 2 },
	{ .label = "init: the most secrets",
	  .secrets = { SECRET_A, SECRET_B, SECRET_C, SECRET_A, SECRET_B, SECRET_C,
	      SECRET_A, SECRET_B }, .n = SRS_MAX_SECRETS,
	  .want = 0, .secret0 = SECRET_A, .nsecrets = SRS_MAX_SECRETS },
	{ .label = "init: too many secrets",
	  .secrets = { SECRET_A, SECRET_B, SECRET_C, SECRET_A, SECRET_B, SECRET_C,
	      SECRET_A, SECRET_B, SECRET_C }, .n = SRS_MAX_SECRETS + 1,
	  .want = -1, .err = "at most 8" },
	{ .label = "init: short secret", .secrets = { SECRET_A, "short" }, .n = 2,
	  .want = -1, .err = "at least 16" },
	{ .label = "init: no queue_dir", .no_queue_dir = true, .want = -1,
	  .err = "/missing/srs.secret: No such file or directory" },
	{ .label = "init: secret file read, newline and blanks dropped",
	  .file = SECRET_B " \n", .mode = 0600, .want = 0, .secret0 = SECRET_B,
	  .nsecrets = 1 },
	{ .label = "init: secret file without a newline",
	  .file = SECRET_B, .mode = 0400, .want = 0, .secret0 = SECRET_B,
	  .nsecrets = 1 },
	{ .label = "init: secret file readable by group is taken",
	  .file = SECRET_B "\n", .mode = 0640, .want = 0, .secret0 = SECRET_B,
	  .nsecrets = 1 },
	{ .label = "init: world-readable secret file refused",
	  .file = SECRET_B "\n", .mode = 0644, .want = -1, .err = "chmod 600" },
	{ .label = "init: group-writable secret file refused",
	  .file = SECRET_B "\n", .mode = 0660, .want = -1, .err = "chmod 600" },
	{ .label = "init: short secret file", .file = "short\n", .mode = 0600,
	  .want = -1, .err = "at least 16" },
	{ .label = "init: empty secret file", .file = "", .mode = 0600,
	  .want = -1, .err = "at least 16" },
};

/* tmpdir_remove - rmdir dir and the files in it */
static void
tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		assert_int_equal(unlink(path), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(dir), 0);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
run_init_case(void **state)
{
	const struct init_case *c = *state;
	char dir[] = "/tmp/test_srs.XXXXXX", qdir[64], path[128], err[512] = "";
	struct srs srs;
	int r;

	UNIT_BUG(c);
	assert_non_null(mkdtemp(dir));
	snprintf(qdir, sizeof(qdir), "%s%s", dir, c->no_queue_dir ? "/missing" : "");
	snprintf(path, sizeof(path), "%s/srs.secret", dir);
	if (c->file != NULL)
		write_file(path, c->file, c->mode);
	r = srs_init(&srs, c->n ? (char *const *)c->secrets : NULL, c->n, qdir,
	    err, sizeof(err));
	tmpdir_remove(dir);
	if (r != c->want) {
		srs_free(&srs);
		fail_msg("srs_init = %d (%s), want %d", r, err, c->want);
	}
	if (r == 0) {
		assert_int_equal(srs.nsecrets, c->nsecrets);
		assert_string_equal(srs.secrets[0], c->secret0);
		for (size_t i = 0; i < c->n; i++) {
			assert_string_equal(srs.secrets[i], c->secrets[i]);
			assert_ptr_not_equal(srs.secrets[i], c->secrets[i]);
		}
		srs_free(&srs);
		assert_int_equal(srs.nsecrets, 0);
		srs_free(&srs);		/* twice is harmless */
	} else {
		assert_int_equal(srs.nsecrets, 0);
		if (strstr(err, c->err) == NULL)
			fail_msg("err \"%s\", want it to hold \"%s\"", err, c->err);
	}
}

/* srs_init without secrets makes queue_dir/srs.secret, then reads it back */
static void
test_init_secret_file(void **state)
{
	char dir[] = "/tmp/test_srs.XXXXXX", path[128], buf[256], err[512] = "";
	char out[PATH_MAX_OCTETS + 1], orig[256];
	struct srs made, read_back;
	struct stat st;
	DIR *d;
	struct dirent *e;
	ssize_t n;
	int fd, entries = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/srs.secret", dir);

	if (srs_init(&made, NULL, 0, dir, err, sizeof(err)) != 0)
		fail_msg("srs_init (make): %s", err);
	assert_int_equal(made.nsecrets, 1);
	assert_int_equal(strlen(made.secrets[0]), 64);
	assert_int_equal(strspn(made.secrets[0], "0123456789abcdef"), 64);

	/* 0600, a regular file, the secret and a newline, no temp file left */
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true((fd = open(path, O_RDONLY)) != -1);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_int_equal(n, 65);
	buf[n] = '\0';
	assert_int_equal(buf[64], '\n');
	buf[64] = '\0';
	assert_string_equal(buf, made.secrets[0]);
	assert_non_null(d = opendir(dir));
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			assert_string_equal(e->d_name, "srs.secret");
			entries++;
		}
	closedir(d);
	assert_int_equal(entries, 1);

	/* the next start reads the same secret: old addresses still verify */
	if (srs_init(&read_back, NULL, 0, dir, err, sizeof(err)) != 0)
		fail_msg("srs_init (read): %s", err);
	assert_int_equal(read_back.nsecrets, 1);
	assert_string_equal(read_back.secrets[0], made.secrets[0]);
	assert_true(srs_forward(&made, "alice@example.org", OUR_DOMAIN, at_day(DAY),
	    out, sizeof(out)));
	*strrchr(out, '@') = '\0';
	assert_int_equal(srs_reverse(&read_back, out, at_day(DAY + 3), orig,
	    sizeof(orig)), SRS_OK);
	assert_string_equal(orig, "alice@example.org");
	srs_free(&made);
	srs_free(&read_back);

	/* a second directory makes a different secret */
	{
		char dir2[] = "/tmp/test_srs.XXXXXX";
		struct srs other;

		assert_non_null(mkdtemp(dir2));
		assert_int_equal(srs_init(&other, NULL, 0, dir2, err, sizeof(err)), 0);
		assert_int_equal(srs_init(&made, NULL, 0, dir, err, sizeof(err)), 0);
		assert_string_not_equal(other.secrets[0], made.secrets[0]);
		srs_free(&other);
		srs_free(&made);
		tmpdir_remove(dir2);
	}
	tmpdir_remove(dir);
}

/* no secret: nothing is signed */
static void
test_forward_without_secret(void **state)
{
	struct srs srs;
	char out[256];

	(void)state;
	memset(&srs, 0, sizeof(srs));
	assert_false(srs_forward(&srs, "alice@example.org", OUR_DOMAIN, at_day(DAY),
	    out, sizeof(out)));
	assert_int_equal(srs_reverse(&srs, "SRS0=rfc3p5=ra=example.org=alice",
	    at_day(DAY), out, sizeof(out)), SRS_BAD_HASH);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(forward_cases) + nitems(trip_cases) +
	    nitems(reverse_cases) + nitems(init_cases) + 2];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_forward_case, forward_cases);
	UNIT_ROWS(tests, n, run_trip_case, trip_cases);
	UNIT_ROWS(tests, n, run_reverse_case, reverse_cases);
	UNIT_ROWS(tests, n, run_init_case, init_cases);
	UNIT_TEST(tests, n, test_init_secret_file);
	UNIT_TEST(tests, n, test_forward_without_secret);
	UNIT_RUN(tests, n);
}
