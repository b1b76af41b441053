/*
 * test_dkim.c - what decides whether a message is DKIM-signed and with
 * which key (doc/queue.md "Signing"): the From domain the queue reads
 * (queue_from_domain, queue/headers.c), the domain-or-below match and the
 * longest matching dkim_key domain (dkim/signer.c), the fields one
 * signature lists, and that both signatures (RSA and Ed25519, keys made
 * here with OpenSSL) of messages whose relaxed forms are easy to get wrong
 * pass libopendkim's verifier, the library of OpenDKIM, run in-process
 * with the keys' records handed to it, and fail it once the message is
 * changed.  tests/integration/test_dkim_sign.py has dkimpy and OpenDKIM
 * verify what chamoisd sends, the records served by dnsmasq.
 */
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <opendkim/dkim.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/util.h"
#include "dkim/signer.h"
#include "queue/queue.h"
#include "unit.h"

struct from_case {
	const char *label;
	const char *msg;
	const char *domain;	/* NULL: no signing domain */
};

static const struct from_case from_cases[] = {
	{ .label = "bare address",
	  .msg = "From: alice@example.org\nTo: b@x.org\n\nbody\n",
	  .domain = "example.org" },
	{ .label = "display name and angle address, any case",
	  .msg = "Subject: x\nfrom: \"Alice, A.\" <Alice@Mail.Example.ORG>\n\nb\n",
	  .domain = "mail.example.org" },
	{ .label = "folded field with a comment",
	  .msg = "From: Alice\n (work)\n <alice@example.org>\n\nb\n",
	  .domain = "example.org" },
	{ .label = "U-label becomes the A-label",
	  .msg = "From: jose@bücher.example\n\nb\n",
	  .domain = "xn--bcher-kva.example" },
	{ .label = "no From",
	  .msg = "To: b@x.org\n\nFrom: alice@example.org\n" },
	{ .label = "two From fields",
	  .msg = "From: a@example.org\nFrom: b@example.org\n\nb\n" },
	{ .label = "two addresses of one domain in one From",
	  .msg = "From: a@example.org, b@example.org\n\nb\n",
	  .domain = "example.org" },
	{ .label = "two addresses in two domains in one From",
	  .msg = "From: a@example.org, b@example.net\n\nb\n" },
	{ .label = "a group with no address",
	  .msg = "From: undisclosed:;\n\nb\n" },
	{ .label = "a group with one member (RFC 6854)",
	  .msg = "From: Team: alice@Example.org;\n\nb\n",
	  .domain = "example.org" },
	{ .label = "a final dot is dropped",
	  .msg = "From: <alice@example.org.>\n\nb\n",
	  .domain = "example.org" },
	{ .label = "a domain literal",
	  .msg = "From: alice@[192.0.2.1]\n\nb\n" },
	{ .label = "does not parse",
	  .msg = "From: <alice@example.org\n\nb\n" },
	{ .label = "no domain",
	  .msg = "From: alice\n\nb\n" },
	{ .label = "a From in the body does not count",
	  .msg = "Subject: x\n\nFrom: alice@example.org\n" },
};

static void
run_from_case(void **state)
{
	const struct from_case *c = *state;
	char out[256];
	const char *why = NULL, *got;

	got = queue_from_domain(c->msg, strlen(c->msg), out, sizeof(out), &why);
	if (c->domain == NULL) {
		assert_null(got);
		assert_non_null(why);
	} else {
		assert_non_null(got);
		assert_string_equal(got, c->domain);
	}
}

struct match_case {
	const char *label;
	const char *domain, *from;
	bool match;
};

static const struct match_case match_cases[] = {
	{ "the domain itself", "example.org", "example.org", true },
	{ "a subdomain", "example.org", "lists.example.org", true },
	{ "a deeper subdomain", "example.org", "a.b.example.org", true },
	{ "a name that only ends the same", "example.org", "badexample.org", false },
	{ "the parent", "lists.example.org", "example.org", false },
	{ "another domain", "example.org", "example.net", false },
	{ "empty from", "example.org", "", false },
};

static void
run_match_case(void **state)
{
	const struct match_case *c = *state;

	assert_int_equal(domain_within(c->from, c->domain), c->match);
}

/* a config with dkim_key lines for keys made here */
struct keyed {
	struct config c;
	struct dkim_key_conf k[3];
	char dir[64];
};

static void
write_key(const char *path, bool rsa)
{
	EVP_PKEY *k = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) :
	    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *f = fopen(path, "w");

	assert_non_null(k);
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(k);
}

static void
keyed_init(struct keyed *t, bool rsa_first)
{
	static const char *const dom[] = { "example.org", "lists.example.org",
	    "example.org" };
	static const char *const sel[] = { "a", "l", "b" };

	memset(t, 0, sizeof(*t));
	strcpy(t->dir, "/tmp/chamois-test-dkim.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	t->c.path = "chamois.conf";
	t->c.dkim_keys = t->k;
	t->c.ndkim_keys = nitems(t->k);
	for (size_t i = 0; i < nitems(t->k); i++) {
		t->k[i].domain = (char *)dom[i];
		t->k[i].selector = (char *)sel[i];
		t->k[i].file = xasprintf("%s/%s.pem", t->dir, sel[i]);
		t->k[i].line = (int)i + 1;
		write_key(t->k[i].file, rsa_first && i == 0);
	}
}

static void
keyed_free(struct keyed *t)
{
	for (size_t i = 0; i < nitems(t->k); i++) {
		unlink(t->k[i].file);
		free(t->k[i].file);
	}
	rmdir(t->dir);
}

static void
no_problem(void *arg, const char *line)
{
	fail_msg("unexpected problem: %s", line);
}

static void
test_longest_domain_wins(void **state)
{
	struct keyed t;
	struct dkim_signer *s;
	int errors;

	(void)state;
	keyed_init(&t, false);
	s = dkim_signer_load(&t.c, no_problem, NULL, &errors);
	assert_int_equal(errors, 0);
	assert_int_equal(dkim_signer_keys(s), 3);
	assert_string_equal(dkim_signer_domain(s, "example.org"), "example.org");
	assert_string_equal(dkim_signer_domain(s, "x.example.org"), "example.org");
	assert_string_equal(dkim_signer_domain(s, "lists.example.org"),
	    "lists.example.org");
	assert_string_equal(dkim_signer_domain(s, "a.lists.example.org"),
	    "lists.example.org");
	assert_null(dkim_signer_domain(s, "example.net"));
	dkim_signer_free(s);
	keyed_free(&t);
}

static void
test_signature_fields(void **state)
{
	static const char msg[] = "Received: by mx.example.org; x\n"
	    "From: alice@example.org\nTo: bob@example.net\nSubject: hi\n"
	    "X-Mailer: not signed\n\nbody\n";
	struct keyed t;
	struct dkim_signer *s;
	char err[256];
	size_t len, nsigs;
	char *h, *second;
	int errors;

	(void)state;
	keyed_init(&t, false);
	s = dkim_signer_load(&t.c, no_problem, NULL, &errors);
	h = dkim_sign_message(s, "example.org", msg, strlen(msg), &len, &nsigs,
	    err, sizeof(err));
	assert_non_null(h);
	assert_string_equal(err, "");
	/* both keys of example.org, in dkim_key order, none of lists. */
	assert_true(strncmp(h, "DKIM-Signature: v=1; a=ed25519-sha256;", 38) == 0);
	assert_non_null(strstr(h, "s=a;"));
	assert_non_null(second = strstr(h + 1, "\nDKIM-Signature: "));
	assert_non_null(strstr(second, "s=b;"));
	assert_null(strstr(h, "s=l;"));
	assert_non_null(strstr(h, "c=relaxed/relaxed;"));
	assert_non_null(strstr(h, "d=example.org;"));
	/* present fields only, From over-signed; ours and unknown ones not */
	assert_non_null(strstr(h, "h=From:To:Subject:From;"));
	assert_null(strstr(h, "\r"));
	assert_int_equal(h[len - 1], '\n');
	free(h);
	assert_null(dkim_sign_message(s, "example.net", msg, strlen(msg), &len,
	    &nsigs, err, sizeof(err)));
	assert_int_equal(nsigs, 0);
	dkim_signer_free(s);
	keyed_free(&t);
}

/* messages whose relaxed forms are easy to get wrong (RFC 6376 3.4) */
struct canon_case {
	const char *label;
	const char *msg;	/* LF form, as the queue stores it */
	const char *tamper;	/* a substring changed to a different one... */
	const char *with;	/* ...this, which must break both signatures */
};

#define HEAD	"From: alice@example.org\nSubject: x\n\n"
#define LONG	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static const struct canon_case canon_cases[] = {
	{ "empty body", HEAD, "Subject: x", "Subject: y" },
	{ "one empty line", HEAD "\n", "\n\n\n", "\n\nz\n" },
	{ "empty lines at the end", HEAD "text\n\n\n\n", "text", "texT" },
	{ "blank-only lines at the end", HEAD "text\n \n\t\n  \t \n", "text",
	  "t ext" },
	{ "blank-only line inside", HEAD "a\n \t \nb\n", "a\n \t \nb",
	  "a\nb" },
	{ "runs of blanks", HEAD "a  b\t\tc \t d\n", "a  b", "ab" },
	{ "leading blanks", HEAD "  lead\n\tlead\n", "  lead", "lead" },
	{ "trailing blanks", HEAD "trail   \n\ttrail\t\n", "\ttrail", "trail" },
	{ "no line end at the end", HEAD "last line", "last line", "last  lime" },
	{ "no line end after blanks", HEAD "last  ", "last", "lost" },
	{ "dot lines", HEAD ".\n..\n.a\n", "..\n", ".\n" },
	{ "8-bit body", HEAD "Gr\xc3\xbc\xc3\x9f" "e \xff\xfe\n", "\xff", "\xfe" },
	{ "a 1000-octet line", HEAD LONG LONG LONG LONG LONG LONG LONG LONG LONG
	  LONG "\n", "xxxxx\n", "xxxxy\n" },
	{ "many lines", HEAD LONG "\n" LONG "\n" LONG "\n" LONG "\n" LONG "\n"
	  LONG "\n" LONG "\n" LONG "\n" LONG "\n" LONG "\n", "xx\nxx", "xx\n xx" },
	{ "folded fields, odd spacing, any case",
	  "fROM:   Alice\n   <alice@example.org>  \nsubject:\tx\t y\n"
	  "To: a@x.org,\n\tb@x.org\n\nbody\n", "b@x.org", "c@x.org" },
	{ "a field with nothing in it", "From: alice@example.org\nSubject:\n"
	  "Cc: \n\nbody\n", "Subject:\n", "Subject: 1\n" },
	{ "two To fields, the last signed", "From: alice@example.org\n"
	  "To: one@x.org\nTo: two@x.org\n\nbody\n", "two@", "twO@" },
	{ "8-bit header", "From: =?utf-8?q?J=C3=B6?= <alice@example.org>\n"
	  "Subject: Gr\xc3\xbc\xc3\x9f" "e\n\nbody\n", "\xc3\x9f", "\xc3\x9e" },
	{ "every field SPEC lists", "Received: by mx; x\nFrom: alice@example.org\n"
	  "To: t@x.org\nCc: c@x.org\nSubject: s\nDate: Thu, 3 Dec 2026 00:00:00 +0000\n"
	  "Message-ID: <1@x>\nReply-To: r@x.org\nIn-Reply-To: <0@x>\n"
	  "References: <0@x>\nMIME-Version: 1.0\nContent-Type: text/plain\n"
	  "Content-Transfer-Encoding: 8bit\n\nbody\n", "8bit", "7bit" },
	{ "a second From added after signing", HEAD "body\n", "From: alice",
	  "From: mallory@evil.test\nFrom: alice" },
	{ "no empty line, no body", "From: alice@example.org\nSubject: x\n",
	  "Subject: x", "Subject: z" },
};

/* the records of the keys, as DNS would serve them (dkim_key_record) */
static struct keyed *verify_keys;

static DKIM_CBSTAT
key_lookup(DKIM *d, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	const char *sel = (const char *)dkim_sig_getselector(sig);
	char err[256];
	char *txt;

	(void)d;
	for (size_t i = 0; i < nitems(verify_keys->k); i++) {
		if (strcmp(verify_keys->k[i].selector, sel) != 0)
			continue;
		assert_int_equal(dkim_key_record(verify_keys->k[i].file, &txt,
		    err, sizeof(err)), 0);
		snprintf((char *)buf, buflen, "%s", txt);
		free(txt);
		return DKIM_CBSTAT_CONTINUE;
	}
	return DKIM_CBSTAT_NOTFOUND;
}

/*
 * verify - libopendkim's verdict on each signature of sigs + msg (both
 * LF form, made CRLF as the outbound client sends them): passed[i] for
 * the i-th signature; returns how many it found
 */
static int
verify(struct keyed *t, const char *sigs, const char *msg, size_t len,
    bool passed[2])
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM_SIGINFO **list;
	struct strbuf crlf = { 0 };
	DKIM_STAT st;
	DKIM *d;
	int n = 0;

	assert_non_null(lib);
	verify_keys = t;
	assert_int_equal(dkim_set_key_lookup(lib, key_lookup), DKIM_STAT_OK);
	d = dkim_verify(lib, (u_char *)"test", NULL, &st);
	assert_non_null(d);
	for (const char *p = sigs; *p; p++)
		strbuf_add(&crlf, *p == '\n' ? "\r\n" : p, *p == '\n' ? 2 : 1);
	for (size_t i = 0; i < len; i++)
		strbuf_add(&crlf, msg[i] == '\n' ? "\r\n" : &msg[i],
		    msg[i] == '\n' ? 2 : 1);
	if (len > 0 && msg[len - 1] != '\n')
		strbuf_add(&crlf, "\r\n", 2);
	assert_int_equal(dkim_chunk(d, (u_char *)crlf.p, crlf.len), DKIM_STAT_OK);
	assert_int_equal(dkim_chunk(d, NULL, 0), DKIM_STAT_OK);
	(void)dkim_eom(d, NULL);	/* each verdict is in its DKIM_SIGINFO */
	if (dkim_getsiglist(d, &list, &n) == DKIM_STAT_OK)
		for (int i = 0; i < n && i < 2; i++)
			passed[i] = DKIM_SIG_CHECK(list[i]);
	dkim_free(d);
	dkim_close(lib);
	free(crlf.p);
	return n;
}

static void
run_canon_case(void **state)
{
	const struct canon_case *c = *state;
	struct strbuf bad = { 0 };
	char err[256];
	struct keyed t;
	struct dkim_signer *s;
	size_t len, nsigs;
	bool passed[2] = { false, false };
	const char *at;
	char *h;
	int errors;

	keyed_init(&t, true);
	s = dkim_signer_load(&t.c, no_problem, NULL, &errors);
	h = dkim_sign_message(s, "example.org", c->msg, strlen(c->msg), &len,
	    &nsigs, err, sizeof(err));
	assert_non_null(h);
	assert_string_equal(err, "");
	assert_int_equal(nsigs, 2);
	assert_non_null(strstr(h, "a=rsa-sha256"));
	assert_non_null(strstr(h, "a=ed25519-sha256"));
	assert_int_equal(verify(&t, h, c->msg, strlen(c->msg), passed), 2);
	assert_true(passed[0]);
	assert_true(passed[1]);

	/* the same signatures on a changed message fail, both */
	assert_non_null(at = strstr(c->msg, c->tamper));
	strbuf_add(&bad, c->msg, (size_t)(at - c->msg));
	strbuf_add(&bad, c->with, strlen(c->with));
	strbuf_add(&bad, at + strlen(c->tamper), strlen(at + strlen(c->tamper)));
	passed[0] = passed[1] = true;
	assert_int_equal(verify(&t, h, bad.p, bad.len, passed), 2);
	assert_false(passed[0]);
	assert_false(passed[1]);
	free(bad.p);
	free(h);
	dkim_signer_free(s);
	keyed_free(&t);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(from_cases) + nitems(match_cases) +
	    nitems(canon_cases) + 2];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_from_case, from_cases);
	UNIT_ROWS(tests, n, run_match_case, match_cases);
	UNIT_ROWS(tests, n, run_canon_case, canon_cases);
	UNIT_TEST(tests, n, test_longest_domain_wins);
	UNIT_TEST(tests, n, test_signature_fields);
	UNIT_RUN(tests, n);
}
