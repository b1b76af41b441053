/*
 * test_checks.c - the pure parts of the inbound checks (checks/results.c):
 * the Authentication-Results field we write (RFC 8601, folded), the test
 * whether a field from outside names us (auth_results_names) on awkward
 * inputs, and the mx policy (auth_policy) row by row as
 * doc/forwarding.md "Checks" tables it (the From domain DMARC checks is
 * common/addrlist.c's, tested in test_addrlist.c).  The evaluators
 * themselves run against a real dnsmasq in
 * tests/integration/test_auth_checks.py.
 */
#include <stdbool.h>
#include <string.h>

#include "checks/checks.h"
#include "checks/eval.h"
#include "common/config.h"
#include "unit.h"

#define ID	"mx.chamois.test"

/* ---- auth_results_names ---- */

struct names_case {
	const char *label;
	const char *field;
	size_t len;		/* 0: strlen(field) */
	bool want;
};

static const struct names_case names_cases[] = {
	{ "names: plain", "Authentication-Results: mx.chamois.test; spf=pass", 0, true },
	{ "names: another host", "Authentication-Results: mx.other.test; spf=pass", 0, false },
	{ "names: any case", "authentication-results: MX.Chamois.TEST; none", 0, true },
	{ "names: no-result form", "Authentication-Results: mx.chamois.test; none", 0, true },
	{ "names: comment before the id", "Authentication-Results: (forged) mx.chamois.test; spf=pass", 0, true },
	{ "names: nested comments, quoted pair", "Authentication-Results: ((a)(b\\)c)) mx.chamois.test ; x=y", 0, true },
	{ "names: folded", "Authentication-Results:\n\tmx.chamois.test;\n\tspf=pass", 0, true },
	{ "names: folded with CRLF", "Authentication-Results:\r\n mx.chamois.test\r\n ;\r\n spf=pass", 0, true },
	{ "names: a version", "Authentication-Results: mx.chamois.test 1; spf=pass", 0, true },
	{ "names: a version between comments", "Authentication-Results: mx.chamois.test (c) 1 (d); none", 0, true },
	{ "names: a comment glued to the id", "Authentication-Results: mx.chamois.test(c); none", 0, true },
	{ "names: quoted id", "Authentication-Results: \"mx.chamois.test\"; none", 0, true },
	{ "names: quoted id with a quoted pair", "Authentication-Results: \"mx.cha\\mois.test\"; none", 0, true },
	{ "names: blanks before the colon", "Authentication-Results \t: mx.chamois.test; none", 0, true },
	{ "names: comment not closed", "Authentication-Results: (mx.chamois.test; spf=pass", 0, false },
	{ "names: quoted pair ends the field", "Authentication-Results: (a\\", 0, false },
	{ "names: quote not closed", "Authentication-Results: \"mx.chamois.test; none", 0, false },
	{ "names: no semicolon", "Authentication-Results: mx.chamois.test spf=pass", 0, false },
	{ "names: id only", "Authentication-Results: mx.chamois.test", 0, false },
	{ "names: our name as a prefix", "Authentication-Results: mx.chamois.test.evil.test; none", 0, false },
	{ "names: our name as a suffix", "Authentication-Results: evilmx.chamois.test; none", 0, false },
	{ "names: the parent domain", "Authentication-Results: chamois.test; none", 0, false },
	{ "names: another field", "Authentication-Results-Original: mx.chamois.test; none", 0, false },
	{ "names: no colon", "Authentication-Results mx.chamois.test; none", 0, false },
	{ "names: empty value", "Authentication-Results:", 0, false },
	{ "names: only blanks", "Authentication-Results:  \n\t ", 0, false },
	{ "names: a NUL in the id", "Authentication-Results: mx.chamois.test\0x; none", 46, false },
	{ "names: cut before the semicolon", "Authentication-Results: mx.chamois.test; none", 39, false },
	{ "names: an id too long",
	  "Authentication-Results: "
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.mx.chamois.test; none", 0, false },
};

static void
run_names_case(void **state)
{
	const struct names_case *c = *state;
	size_t n = c->len != 0 ? c->len : strlen(c->field);

	if (auth_results_names(c->field, n, ID) != c->want)
		fail_msg("auth_results_names(%s) is %s", c->field,
		    c->want ? "false" : "true");
}

/* ---- auth_results_field ---- */

struct field_case {
	const char *label;
	struct auth_results r;
	const char *want;
};

static const struct field_case field_cases[] = {
	{ "field: all pass, two signatures",
	  { .spf = AUTH_PASS, .spf_identity = "alice@example.test",
	    .spf_domain = "example.test", .ndkim = 2,
	    .dkim = { { AUTH_PASS, "example.test", "ed", "ed25519-sha256", "G17rx7If", "" },
		      { AUTH_PASS, "example.test", "rsa", "rsa-sha256", "CR/c7T+W", "" } },
	    .dmarc = AUTH_PASS, .from_domain = "example.test", .policy = DMARC_P_REJECT },
	  "Authentication-Results: mx.chamois.test;\n"
	  "\tspf=pass smtp.mailfrom=alice@example.test;\n"
	  "\tdkim=pass header.d=example.test header.s=ed header.a=ed25519-sha256\n"
	  "\t  header.b=G17rx7If;\n"
	  "\tdkim=pass header.d=example.test header.s=rsa header.a=rsa-sha256\n"
	  "\t  header.b=\"CR/c7T+W\";\n"
	  "\tdmarc=pass (p=reject) header.from=example.test\n" },
	{ "field: nothing to check",
	  { .spf = AUTH_NONE, .spf_helo = true, .dmarc = AUTH_NONE },
	  "Authentication-Results: mx.chamois.test;\n"
	  "\tspf=none;\n"
	  "\tdkim=none;\n"
	  "\tdmarc=none\n" },
	{ "field: the HELO identity, a failure with its reason, t=y",
	  { .spf = AUTH_FAIL, .spf_helo = true, .spf_identity = "mail.example.test",
	    .ndkim = 1,
	    .dkim = { { AUTH_FAIL, "example.test", "s", "rsa-sha256", "abc", "body hash (changed)" } },
	    .dmarc = AUTH_FAIL, .from_domain = "example.test", .policy = DMARC_P_QUARANTINE,
	    .testing = true },
	  "Authentication-Results: mx.chamois.test;\n"
	  "\tspf=fail smtp.helo=mail.example.test;\n"
	  "\tdkim=fail (body hash \\(changed\\)) header.d=example.test header.s=s\n"
	  "\t  header.a=rsa-sha256 header.b=abc;\n"
	  "\tdmarc=fail (p=quarantine t=y) header.from=example.test\n" },
	{ "field: an identity to quote",
	  { .spf = AUTH_SOFTFAIL, .spf_identity = "\"a b\"@example.test", .dmarc = AUTH_NONE },
	  "Authentication-Results: mx.chamois.test;\n"
	  "\tspf=softfail smtp.mailfrom=\"\\\"a b\\\"@example.test\";\n"
	  "\tdkim=none;\n"
	  "\tdmarc=none\n" },
	{ "field: temperror everywhere",
	  { .spf = AUTH_TEMPERROR, .spf_identity = "a@example.test", .ndkim = 1,
	    .dkim = { { AUTH_TEMPERROR, "example.test", "rsa", "rsa-sha256", "x", "key look-up failed" } },
	    .dmarc = AUTH_TEMPERROR, .from_domain = "example.test" },
	  "Authentication-Results: mx.chamois.test;\n"
	  "\tspf=temperror smtp.mailfrom=a@example.test;\n"
	  "\tdkim=temperror (key look-up failed) header.d=example.test header.s=rsa\n"
	  "\t  header.a=rsa-sha256 header.b=x;\n"
	  "\tdmarc=temperror header.from=example.test\n" },
};

static void
run_field_case(void **state)
{
	const struct field_case *c = *state;
	char *f = auth_results_field(&c->r, ID);

	assert_non_null(f);
	assert_string_equal(f, c->want);
	/* it names us, and no line is longer than 78 */
	assert_true(auth_results_names(f, strlen(f), ID));
	for (const char *l = f; *l; ) {
		const char *nl = strchr(l, '\n');

		assert_non_null(nl);
		assert_true(nl - l <= 78);
		l = nl + 1;
	}
	free(f);
}

/* ---- auth_policy: the table of doc/forwarding.md "Checks" ---- */

struct policy_case {
	const char *label;
	struct auth_results r;
	const char *mail_from;
	bool monitor;
	const char *local;	/* the reply's start, "" to accept */
	const char *forward;
};

#define SIG(res, dom)	{ (res), dom, "s", "rsa-sha256", "b", "" }

static const struct policy_case policy_cases[] = {
	{ "policy: all pass",
	  { .spf = AUTH_PASS, .spf_domain = "example.test", .ndkim = 1,
	    .dkim = { SIG(AUTH_PASS, "example.test") }, .dmarc = AUTH_PASS,
	    .from_domain = "example.test", .policy = DMARC_P_REJECT },
	  "a@example.test", false, "", "" },
	{ "policy: several From fields, all else passing",
	  { .spf = AUTH_PASS, .spf_domain = "example.test", .dmarc = AUTH_NONE,
	    .from_problem = "several From fields" },
	  "a@example.test", false, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: a From in several domains, monitor",
	  { .spf = AUTH_PASS, .spf_domain = "example.test", .dmarc = AUTH_NONE,
	    .from_problem = "a From with addresses in several domains" },
	  "a@example.test", true, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: nothing published",
	  { .spf = AUTH_NONE, .spf_domain = "evil.test", .dmarc = AUTH_NONE,
	    .from_domain = "evil.test" },
	  "a@evil.test", false, "", "" },
	{ "policy: DMARC fail, p=reject",
	  { .spf = AUTH_FAIL, .spf_domain = "example.test", .dmarc = AUTH_FAIL,
	    .from_domain = "example.test", .policy = DMARC_P_REJECT },
	  "a@example.test", false, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: DMARC fail, p=reject, monitor",
	  { .spf = AUTH_NONE, .spf_domain = "other.test", .dmarc = AUTH_FAIL,
	    .from_domain = "example.test", .policy = DMARC_P_REJECT },
	  "a@other.test", true, "", "" },
	{ "policy: DMARC fail, p=reject, t=y",
	  { .spf = AUTH_NONE, .spf_domain = "other.test", .dmarc = AUTH_FAIL,
	    .from_domain = "example.test", .policy = DMARC_P_REJECT, .testing = true },
	  "a@other.test", false, "", "550 5.7.1 " },
	{ "policy: DMARC fail, p=quarantine",
	  { .spf = AUTH_NONE, .spf_domain = "other.test", .dmarc = AUTH_FAIL,
	    .from_domain = "example.test", .policy = DMARC_P_QUARANTINE },
	  "a@other.test", false, "", "550 5.7.1 " },
	{ "policy: DMARC fail, p=none",
	  { .spf = AUTH_NONE, .spf_domain = "other.test", .dmarc = AUTH_FAIL,
	    .from_domain = "example.test", .policy = DMARC_P_NONE },
	  "a@other.test", false, "", "550 5.7.1 " },
	{ "policy: DMARC temperror, policy unknown",
	  { .spf = AUTH_PASS, .spf_domain = "other.test", .dmarc = AUTH_TEMPERROR,
	    .from_domain = "example.test" },
	  "a@other.test", false, "451 4.7.0 ", "451 4.7.0 " },
	{ "policy: DMARC temperror, p=none",
	  { .spf = AUTH_TEMPERROR, .spf_domain = "example.test", .dmarc = AUTH_TEMPERROR,
	    .from_domain = "example.test", .policy = DMARC_P_NONE },
	  "a@example.test", false, "", "451 4.7.0 " },
	{ "policy: DMARC temperror, monitor",
	  { .spf = AUTH_PASS, .spf_domain = "other.test", .dmarc = AUTH_TEMPERROR,
	    .from_domain = "example.test" },
	  "a@other.test", true, "", "" },
	{ "policy: SPF fail, no DKIM",
	  { .spf = AUTH_FAIL, .spf_domain = "other.test", .dmarc = AUTH_NONE,
	    .from_domain = "example.test" },
	  "a@other.test", false, "", "550 5.7.1 " },
	{ "policy: SPF fail, no DKIM, monitor",
	  { .spf = AUTH_FAIL, .spf_domain = "other.test", .dmarc = AUTH_NONE,
	    .from_domain = "example.test" },
	  "a@other.test", true, "", "550 5.7.1 " },
	{ "policy: SPF fail, a DKIM pass (not aligned)",
	  { .spf = AUTH_FAIL, .spf_domain = "other.test", .ndkim = 1,
	    .dkim = { SIG(AUTH_PASS, "list.test") }, .dmarc = AUTH_NONE,
	    .from_domain = "example.test" },
	  "a@other.test", false, "", "" },
	{ "policy: SPF fail, DKIM temperror",
	  { .spf = AUTH_FAIL, .spf_domain = "other.test", .ndkim = 1,
	    .dkim = { SIG(AUTH_TEMPERROR, "list.test") }, .dmarc = AUTH_NONE,
	    .from_domain = "example.test" },
	  "a@other.test", false, "", "451 4.7.0 " },
	{ "policy: SPF temperror, no DKIM",
	  { .spf = AUTH_TEMPERROR, .spf_domain = "other.test", .dmarc = AUTH_NONE,
	    .from_domain = "example.test" },
	  "a@other.test", false, "", "451 4.7.24 " },
	{ "policy: SPF softfail, no DKIM",
	  { .spf = AUTH_SOFTFAIL, .spf_domain = "other.test", .dmarc = AUTH_NONE,
	    .from_domain = "example.test" },
	  "a@other.test", false, "", "" },
	{ "policy: own From, nothing passes",
	  { .spf = AUTH_NONE, .spf_domain = "evil.test", .dmarc = AUTH_NONE,
	    .from_domain = "chamois.test" },
	  "attacker@evil.test", false, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: own From, nothing passes, monitor",
	  { .spf = AUTH_NONE, .spf_domain = "evil.test", .dmarc = AUTH_NONE,
	    .from_domain = "chamois.test" },
	  "attacker@evil.test", true, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: own From subdomain, nothing passes",
	  { .spf = AUTH_PASS, .spf_domain = "evil.test", .dmarc = AUTH_NONE,
	    .from_domain = "lists.chamois.test" },
	  "attacker@evil.test", false, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: own From, SPF pass of another domain",
	  { .spf = AUTH_PASS, .spf_domain = "evil.test", .ndkim = 1,
	    .dkim = { SIG(AUTH_PASS, "evil.test") }, .dmarc = AUTH_NONE,
	    .from_domain = "chamois.test" },
	  "attacker@evil.test", false, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: own From, DKIM pass d=ours",
	  { .spf = AUTH_NONE, .spf_domain = "evil.test", .ndkim = 1,
	    .dkim = { SIG(AUTH_PASS, "chamois.test") }, .dmarc = AUTH_PASS,
	    .from_domain = "chamois.test" },
	  "list@evil.test", false, "", "" },
	{ "policy: own From, DKIM temperror d=ours",
	  { .spf = AUTH_NONE, .spf_domain = "evil.test", .ndkim = 1,
	    .dkim = { SIG(AUTH_TEMPERROR, "chamois.test") }, .dmarc = AUTH_NONE,
	    .from_domain = "chamois.test" },
	  "list@evil.test", false, "451 4.7.0 ", "451 4.7.0 " },
	{ "policy: own envelope, SPF pass",
	  { .spf = AUTH_PASS, .spf_domain = "chamois.test", .dmarc = AUTH_PASS,
	    .from_domain = "chamois.test" },
	  "boss@chamois.test", false, "", "" },
	{ "policy: own envelope, SPF fail",
	  { .spf = AUTH_FAIL, .spf_domain = "chamois.test", .dmarc = AUTH_NONE,
	    .from_domain = "example.test" },
	  "boss@chamois.test", false, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: own envelope, SPF temperror",
	  { .spf = AUTH_TEMPERROR, .spf_domain = "chamois.test", .dmarc = AUTH_NONE,
	    .from_domain = "example.test" },
	  "boss@chamois.test", false, "451 4.7.24 ", "451 4.7.24 " },
	{ "policy: own HELO only, <>: not our MAIL FROM",
	  { .spf = AUTH_PASS, .spf_helo = true, .spf_domain = "mx.chamois.test",
	    .dmarc = AUTH_NONE, .from_domain = "chamois.test" },
	  "", false, "550 5.7.1 ", "550 5.7.1 " },
	{ "policy: a name that only ends like ours",
	  { .spf = AUTH_NONE, .spf_domain = "evil.test", .dmarc = AUTH_NONE,
	    .from_domain = "notchamois.test" },
	  "a@evil.test", false, "", "" },
};

static void
check_reply(const char *label, bool refused, const char *reply, const char *want)
{
	if (*want == '\0') {
		if (refused)
			fail_msg("%s: refused with '%s', want accepted", label, reply);
		return;
	}
	if (!refused)
		fail_msg("%s: accepted, want '%s...'", label, want);
	if (strncmp(reply, want, strlen(want)) != 0)
		fail_msg("%s: '%s', want '%s...'", label, reply, want);
	if (reply[0] == '5' && want[0] != '5')
		fail_msg("%s: a 5xx", label);
}

static void
run_policy_case(void **state)
{
	const struct policy_case *c = *state;
	char *domains[] = { "chamois.test", "other-ours.test" };
	struct config conf;
	char reply[256];
	bool refused;

	memset(&conf, 0, sizeof(conf));
	conf.domains = domains;
	conf.ndomains = nitems(domains);
	conf.dmarc_monitor = c->monitor;
	reply[0] = '\0';
	refused = auth_policy(&c->r, &conf, c->mail_from, false, reply, sizeof(reply));
	check_reply("local", refused, reply, c->local);
	reply[0] = '\0';
	refused = auth_policy(&c->r, &conf, c->mail_from, true, reply, sizeof(reply));
	check_reply("forward", refused, reply, c->forward);
}

/* ---- small things ---- */

static void
test_res_names(void **state)
{
	assert_string_equal(auth_res_name(AUTH_NONE), "none");
	assert_string_equal(auth_res_name(AUTH_PASS), "pass");
	assert_string_equal(auth_res_name(AUTH_FAIL), "fail");
	assert_string_equal(auth_res_name(AUTH_SOFTFAIL), "softfail");
	assert_string_equal(auth_res_name(AUTH_NEUTRAL), "neutral");
	assert_string_equal(auth_res_name(AUTH_TEMPERROR), "temperror");
	assert_string_equal(auth_res_name(AUTH_PERMERROR), "permerror");
	assert_string_equal(auth_res_name(AUTH_POLICY), "policy");
}

static void
test_tag_value(void **state)
{
	const char *sig = " v=1; a=rsa-sha256; d=Example.test;\n\t s = sel ;\n"
	    "\tb=abc\n\t def; bh=x";
	char v[64];

	assert_true(tag_value(sig, strlen(sig), "d", v, sizeof(v)));
	assert_string_equal(v, "Example.test");
	assert_true(tag_value(sig, strlen(sig), "s", v, sizeof(v)));
	assert_string_equal(v, "sel");
	assert_true(tag_value(sig, strlen(sig), "b", v, sizeof(v)));
	assert_string_equal(v, "abcdef");
	assert_true(tag_value(sig, strlen(sig), "bh", v, sizeof(v)));
	assert_string_equal(v, "x");
	assert_false(tag_value(sig, strlen(sig), "x", v, sizeof(v)));
	assert_false(tag_value(sig, strlen(sig), "a", v, 4));	/* too long */
}

int
main(void)
{
	struct CMUnitTest tests[nitems(names_cases) + nitems(field_cases) +
	    nitems(policy_cases) + 2];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_names_case, names_cases);
	UNIT_ROWS(tests, n, run_field_case, field_cases);
	UNIT_ROWS(tests, n, run_policy_case, policy_cases);
	UNIT_TEST(tests, n, test_res_names);
	UNIT_TEST(tests, n, test_tag_value);
	UNIT_RUN(tests, n);
}
